//! `[networks.NAME]`.

use std::net::IpAddr;

use ipnet::IpNet;

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
                subnets: None,
                gateways: Vec::new(),
                members: Vec::new(),
                members_at: e.key_at,
                interface: IfName::new("eth0").expect("`eth0` is a valid interface name"),
                mtu: None,
                nat: false,
                publish: Vec::new(),
                isolated: false,
            };
            let mut has_subnet = false;
            for f in self.known(body, &format!("`[{path}]`"), NETWORK_KEYS) {
                let fpath = join(&path, &f.key);
                match f.key.as_str() {
                    "subnet" => {
                        has_subnet = true;
                        net.subnets = self.subnets(&f.item, &fpath, &e.key);
                    }
                    "gateway" => net.gateways = self.gateways(&f.item, &fpath, &e.key),
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
                    }
                    "publish" => {
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

impl Reader<'_, '_> {
    /// `KEY = "x"` or `KEY = ["x", "y"]`: the strings, or `None` (reported) when the value is
    /// neither or an entry is not a string.
    fn one_or_many<'v>(
        &mut self,
        item: &'v Item,
        path: &str,
        example: &'static str,
    ) -> Option<Vec<At<&'v str>>> {
        match &item.value {
            Value::Str(s) => Some(vec![At {
                v: s.as_str(),
                at: item.at,
            }]),
            Value::Array(items) => {
                let mut out = Vec::with_capacity(items.len());
                let mut ok = true;
                for i in items {
                    match self.string(i, path, example) {
                        Some(s) => out.push(s),
                        None => ok = false,
                    }
                }
                ok.then_some(out)
            }
            _ => {
                self.wrong_type(item, path, "a string or a list of strings", example);
                None
            }
        }
    }

    /// `subnet = "10.88.0.0/24"` or `subnet = ["10.88.0.0/24", "fd00:88::/64"]`: one prefix,
    /// or one of each IP family. `None` (reported) when anything in it is refused.
    fn subnets(&mut self, item: &Item, path: &str, network: &str) -> Option<Vec<At<IpNet>>> {
        let texts = self.one_or_many(item, path, "subnet = \"10.88.0.0/24\"")?;
        if texts.is_empty() {
            let kind = DiagnosticKind::NoSubnet {
                network: network.to_owned(),
            };
            self.report(item.at, kind);
            return None;
        }
        let mut ok = true;
        let mut out: Vec<At<IpNet>> = Vec::with_capacity(texts.len());
        for s in texts {
            match parse_network(s.v, "subnet") {
                Ok(v) => match out
                    .iter()
                    .find(|o| o.v.addr().is_ipv6() == v.addr().is_ipv6())
                {
                    Some(first) => {
                        let kind = DiagnosticKind::SubnetFamilyTwice {
                            network: network.to_owned(),
                            first: first.v,
                            second: v,
                        };
                        self.report(s.at, kind);
                        ok = false;
                    }
                    None => out.push(At { v, at: s.at }),
                },
                Err(kind) => {
                    self.report(s.at, kind);
                    ok = false;
                }
            }
        }
        ok.then_some(out)
    }

    /// `gateway = "10.88.0.1"` or a list of one per IP family; what is refused is reported and
    /// left out (its subnet's gateway then defaults, and the file is refused anyway).
    fn gateways(&mut self, item: &Item, path: &str, network: &str) -> Vec<At<IpAddr>> {
        let Some(texts) = self.one_or_many(item, path, "gateway = \"10.88.0.1\"") else {
            return Vec::new();
        };
        let mut out: Vec<At<IpAddr>> = Vec::with_capacity(texts.len());
        for s in texts {
            match parse_ip(s.v, "gateway") {
                Ok(v) => match out.iter().find(|o| o.v.is_ipv6() == v.is_ipv6()) {
                    Some(first) => {
                        let kind = DiagnosticKind::GatewayFamilyTwice {
                            network: network.to_owned(),
                            first: first.v,
                            second: v,
                        };
                        self.report(s.at, kind);
                    }
                    None => out.push(At { v, at: s.at }),
                },
                Err(kind) => self.report(s.at, kind),
            }
        }
        out
    }
}
