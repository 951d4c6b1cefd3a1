//! `[networks.NAME]`.

use super::reader::join;
use super::value::{parse_ip, parse_network, parse_publish};
use super::{At, RawNetwork, Reader};
use crate::model::error::DiagnosticKind;
use crate::model::names::IfName;
use crate::model::tree::{Item, Value};

const NETWORK_KEYS: &[&str] = &[
    "subnet",
    "gateway",
    "members",
    "interface",
    "mtu",
    "nat",
    "publish",
    "isolated",
];

impl Reader<'_, '_> {
    pub(super) fn networks(&mut self, item: &Item) {
        let Some(entries) = self.table(item, "networks", "[networks.plumb0]") else {
            return;
        };
        for e in self.named(entries) {
            let name = self.ifname(&e.key, e.key_at);
            if name.is_none() {
                self.lab.refused.insert(&e.key);
            }
            let path = join("networks", &e.key);
            let Some(body) = self.table(&e.item, &path, "[networks.plumb0]") else {
                self.lab.refused.insert(&e.key);
                continue;
            };
            let mut net = RawNetwork {
                at: e.key_at,
                name: IfName::new("lo").expect("`lo` is a valid interface name"),
                subnet: None,
                gateway: None,
                members: Vec::new(),
                members_at: e.key_at,
                interface: IfName::new("eth0").expect("`eth0` is a valid interface name"),
                mtu: None,
                nat: false,
                publish: Vec::new(),
                isolated: false,
            };
            let mut has_subnet = false;
            // Where `nat = true` and a non-empty `publish` are written: IPv4 only for now.
            let (mut nat_at, mut publish_at) = (None, None);
            for f in self.known(body, &format!("`[{path}]`"), NETWORK_KEYS) {
                let fpath = join(&path, &f.key);
                match f.key.as_str() {
                    "subnet" => {
                        has_subnet = true;
                        if let Some(s) = self.string(&f.item, &fpath, "subnet = \"10.88.0.0/24\"") {
                            match parse_network(s.v, "subnet") {
                                Ok(v) => net.subnet = Some(At { v, at: s.at }),
                                Err(kind) => self.report(s.at, kind),
                            }
                        }
                    }
                    "gateway" => {
                        if let Some(s) = self.string(&f.item, &fpath, "gateway = \"10.88.0.1\"") {
                            match parse_ip(s.v, "gateway") {
                                Ok(v) => net.gateway = Some(At { v, at: s.at }),
                                Err(kind) => self.report(s.at, kind),
                            }
                        }
                    }
                    "members" => {
                        net.members_at = f.key_at;
                        for s in self.strings(&f.item, &fpath, "members = [\"web\", \"db\"]") {
                            let names = self.ns_names(s.v, s.at);
                            if !names.is_empty() {
                                net.members.push(At { v: names, at: s.at });
                            }
                        }
                    }
                    "interface" => {
                        if let Some(s) = self.string(&f.item, &fpath, "interface = \"eth0\"") {
                            if let Some(n) = self.ifname(s.v, s.at) {
                                net.interface = n;
                            }
                        }
                    }
                    "mtu" => net.mtu = self.mtu(&f.item, &fpath),
                    "nat" => {
                        net.nat = self.boolean(&f.item, &fpath, "nat = true").unwrap_or(false);
                        nat_at = net.nat.then_some(f.key_at);
                    }
                    "publish" => {
                        if matches!(&f.item.value, Value::Array(items) if !items.is_empty()) {
                            publish_at = Some(f.key_at);
                        }
                        for s in self.strings(&f.item, &fpath, "publish = [\"8080:web:80/tcp\"]") {
                            match parse_publish(s.v) {
                                Ok(p) => net.publish.push(At { v: p, at: s.at }),
                                Err(kind) => self.report(s.at, kind),
                            }
                        }
                    }
                    "isolated" => {
                        net.isolated = self
                            .boolean(&f.item, &fpath, "isolated = true")
                            .unwrap_or(false);
                    }
                    _ => {}
                }
            }
            if !has_subnet {
                let kind = DiagnosticKind::MissingKey {
                    key: "subnet",
                    context: format!("`[{path}]`"),
                    example: "subnet = \"10.88.0.0/24\"",
                };
                self.report(e.key_at, kind);
            }
            if let Some(subnet) = net.subnet.as_ref().filter(|s| s.v.addr().is_ipv6()) {
                for (key, at) in [("nat", nat_at), ("publish", publish_at)] {
                    if let Some(at) = at {
                        let kind = DiagnosticKind::Ipv6Nat {
                            key,
                            network: e.key.clone(),
                            subnet: subnet.v,
                        };
                        self.report(at, kind);
                    }
                }
            }
            match name {
                Some(name) => {
                    net.name = name;
                    self.lab.networks.push(net);
                }
                // The members of a refused network are not declared: references to them are
                // not reported as unknown.
                None => {
                    for name in net.members.iter().flat_map(|m| &m.v) {
                        self.lab.refused.insert(name.as_str());
                    }
                }
            }
        }
    }
}
