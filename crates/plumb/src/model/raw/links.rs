//! `[[links]]`.

use super::{At, RawLink, Reader};
use crate::model::error::DiagnosticKind;
use crate::model::tree::{Item, Value};

const LINK_KEYS: &[&str] = &["endpoints", "mtu"];

impl Reader<'_, '_> {
    pub(super) fn link(&mut self, item: &Item) {
        let Some(body) = self.table(item, "links", "[[links]]") else {
            return;
        };
        let mut ends = None;
        let mut mtu = None;
        let mut has_endpoints = false;
        for f in self.known(body, "`[[links]]`", LINK_KEYS) {
            match f.key.as_str() {
                "endpoints" => {
                    has_endpoints = true;
                    let example = "endpoints = [\"host:veth1\", \"ns1:eth0\"]";
                    let items = self.list(&f.item, "links.endpoints", example);
                    let strings: Vec<_> = items
                        .iter()
                        .filter_map(|i| self.string(i, "links.endpoints", example))
                        .map(|s| At {
                            v: s.v.to_owned(),
                            at: s.at,
                        })
                        .collect();
                    if matches!(f.item.value, Value::Array(_)) && items.len() != 2 {
                        self.report(
                            f.item.at,
                            DiagnosticKind::EndpointCount { found: items.len() },
                        );
                    }
                    match <[At<String>; 2]>::try_from(strings) {
                        Ok(pair) if items.len() == 2 => ends = Some(pair),
                        Ok(pair) => self.lab.broken_ends.extend(pair.map(|s| s.v)),
                        Err(strings) => {
                            self.lab
                                .broken_ends
                                .extend(strings.into_iter().map(|s| s.v));
                        }
                    }
                }
                "mtu" => mtu = self.mtu(&f.item, "links.mtu"),
                _ => {}
            }
        }
        if !has_endpoints {
            let kind = DiagnosticKind::MissingKey {
                key: "endpoints",
                context: "this link".into(),
                example: "endpoints = [\"host:veth1\", \"ns1:eth0\"]",
            };
            self.report(item.at, kind);
        }
        if let Some(ends) = ends {
            self.lab.links.push(RawLink { ends, mtu });
        }
    }
}
