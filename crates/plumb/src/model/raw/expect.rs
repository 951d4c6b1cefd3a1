//! `[[expect]]`.

use super::reader::join;
use super::value::parse_service;
use super::{At, RawExpect, Reader};
use crate::model::error::DiagnosticKind;
use crate::model::tree::Item;
use crate::model::types::Service;

const EXPECT_KEYS: &[&str] = &["from", "to", "proto", "result"];

impl Reader<'_, '_> {
    pub(super) fn expect(&mut self, item: &Item) {
        let Some(body) = self.table(item, "expect", "[[expect]]") else {
            return;
        };
        let (mut from, mut to) = (None, None);
        let mut service = Some(Service::Icmp);
        let mut reach = Some(true);
        for f in self.known(body, "`[[expect]]`", EXPECT_KEYS) {
            let fpath = join("expect", &f.key);
            match f.key.as_str() {
                "from" => {
                    from = self.string(&f.item, &fpath, "from = \"ns1\"").map(|s| At {
                        v: s.v.to_owned(),
                        at: s.at,
                    });
                }
                "to" => {
                    to = self.string(&f.item, &fpath, "to = \"ns2\"").map(|s| At {
                        v: s.v.to_owned(),
                        at: s.at,
                    });
                }
                "proto" => {
                    service = self
                        .string(&f.item, &fpath, "proto = \"tcp/80\"")
                        .and_then(|s| {
                            parse_service(s.v)
                                .map_err(|kind| self.report(s.at, kind))
                                .ok()
                        });
                }
                "result" => {
                    reach =
                        self.string(&f.item, &fpath, "result = \"reach\"")
                            .and_then(|s| match s.v {
                                "reach" => Some(true),
                                "blocked" => Some(false),
                                other => {
                                    let kind = DiagnosticKind::NotOneOf {
                                        key: "result",
                                        found: other.to_owned(),
                                        allowed: &["reach", "blocked"],
                                    };
                                    self.report(s.at, kind);
                                    None
                                }
                            });
                }
                _ => {}
            }
        }
        for (key, value, example) in [
            ("from", &from, "from = \"ns1\""),
            ("to", &to, "to = \"ns2\""),
        ] {
            if value.is_none() && !body.iter().any(|e| e.key == key) {
                let kind = DiagnosticKind::MissingKey {
                    key,
                    context: "this expect".into(),
                    example,
                };
                self.report(item.at, kind);
            }
        }
        if let (Some(from), Some(to), Some(service), Some(reach)) = (from, to, service, reach) {
            self.lab.expects.push(RawExpect {
                from,
                to,
                service,
                reach,
            });
        }
    }
}
