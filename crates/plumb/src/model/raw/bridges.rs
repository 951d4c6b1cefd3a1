//! `[bridges.NAME]`.

use super::reader::join;
use super::{At, RawBridge, Reader};
use crate::model::tree::Item;

const BRIDGE_KEYS: &[&str] = &["node", "addresses", "mtu", "stp"];

impl Reader<'_, '_> {
    pub(super) fn bridges(&mut self, item: &Item) {
        let Some(entries) = self.table(item, "bridges", "[bridges.br0]") else {
            return;
        };
        for e in self.named(entries) {
            let name = self.ifname(&e.key, e.key_at);
            if name.is_none() {
                self.lab.refused.insert(&e.key);
            }
            let path = join("bridges", &e.key);
            let Some(body) = self.table(&e.item, &path, "[bridges.br0]") else {
                self.lab.refused.insert(&e.key);
                continue;
            };
            let (mut node, mut addresses, mut mtu, mut stp) = (None, Vec::new(), None, false);
            for f in self.known(body, &format!("`[{path}]`"), BRIDGE_KEYS) {
                let fpath = join(&path, &f.key);
                match f.key.as_str() {
                    "node" => {
                        node = self.string(&f.item, &fpath, "node = \"ns1\"").map(|s| At {
                            v: s.v.to_owned(),
                            at: s.at,
                        });
                    }
                    "addresses" => addresses = self.addresses(&f.item, &fpath),
                    "mtu" => mtu = self.mtu(&f.item, &fpath),
                    "stp" => {
                        stp = self
                            .boolean(&f.item, &fpath, "stp = false")
                            .unwrap_or(false)
                    }
                    _ => {}
                }
            }
            if let Some(name) = name {
                self.lab.bridges.push(RawBridge {
                    at: e.key_at,
                    name,
                    node,
                    addresses,
                    mtu,
                    stp,
                });
            }
        }
    }
}
