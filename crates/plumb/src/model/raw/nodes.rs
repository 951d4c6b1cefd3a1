//! `[nodes.KEY]`: interfaces, routes, sysctls and the firewall of a node (or of the host).

use std::net::IpAddr;

use ipnet::IpNet;

use super::reader::join;
use super::value::{check_sysctl, parse_destination, parse_ip, parse_mac, parse_rule};
use super::{At, NodeKey, RawInterface, RawNode, RawRoute, Reader};
use crate::model::error::DiagnosticKind;
use crate::model::names::IfName;
use crate::model::tree::{Item, Value};
use crate::model::types::{Firewall, Interface, Route};

const NODE_KEYS: &[&str] = &["interfaces", "routes", "sysctls", "firewall"];
pub(super) const IFACE_KEYS: &[&str] = &["addresses", "mtu", "mac", "up"];
const ROUTE_KEYS: &[&str] = &["to", "via", "dev"];
const FIREWALL_KEYS: &[&str] = &["ingress", "allow"];

impl Reader<'_, '_> {
    pub(super) fn nodes(&mut self, item: &Item) {
        let Some(entries) = self.table(item, "nodes", "[nodes.ns1]") else {
            return;
        };
        for e in self.named(entries) {
            let key = if e.key == "host" {
                NodeKey::Host
            } else {
                NodeKey::Names(self.ns_names(&e.key, e.key_at))
            };
            let path = join("nodes", &e.key);
            let Some(body) = self.table(&e.item, &path, "[nodes.ns1]") else {
                if let NodeKey::Names(names) = &key {
                    self.lab.refused.insert(&e.key);
                    for name in names {
                        self.lab.refused.insert(name.as_str());
                    }
                }
                continue;
            };
            let problems = self.sink.count();
            let mut node = RawNode {
                at: e.key_at,
                key,
                interfaces: Vec::new(),
                routes: Vec::new(),
                sysctls: Vec::new(),
                sysctl_at: Vec::new(),
                firewall: None,
                troubled: false,
            };
            for f in self.known(body, &format!("`[{path}]`"), NODE_KEYS) {
                let fpath = join(&path, &f.key);
                match f.key.as_str() {
                    "interfaces" => node.interfaces = self.interfaces(&f.item, &fpath),
                    "routes" => {
                        let example = "routes = [{ to = \"default\", via = \"10.0.0.1\" }]";
                        for r in self.list(&f.item, &fpath, example) {
                            if let Some(route) = self.route(r, &fpath) {
                                node.routes.push(route);
                            }
                        }
                    }
                    "sysctls" => {
                        (node.sysctls, node.sysctl_at) =
                            self.sysctls(&f.item, &fpath).into_iter().unzip();
                    }
                    "firewall" if matches!(node.key, NodeKey::Host) => {
                        self.report(f.key_at, DiagnosticKind::HostFirewall);
                    }
                    "firewall" => node.firewall = self.firewall(&f.item, &fpath),
                    _ => {}
                }
            }
            node.troubled = self.sink.count() > problems;
            self.lab.nodes.push(node);
        }
    }

    pub(super) fn interfaces(&mut self, item: &Item, path: &str) -> Vec<RawInterface> {
        let Some(entries) = self.table(item, path, "[nodes.ns1.interfaces.eth0]") else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for e in self.named(entries) {
            let name = self.ifname(&e.key, e.key_at);
            let ipath = join(path, &e.key);
            let Some(body) = self.table(&e.item, &ipath, "[nodes.ns1.interfaces.eth0]") else {
                continue;
            };
            let mut iface = Interface {
                name: IfName::new("lo").expect("`lo` is a valid interface name"),
                addresses: Vec::new(),
                mtu: None,
                mac: None,
                up: true,
            };
            let mut addr_at = Vec::new();
            for f in self.known(body, &format!("`[{ipath}]`"), IFACE_KEYS) {
                let fpath = join(&ipath, &f.key);
                match f.key.as_str() {
                    "addresses" => {
                        let addresses = self.addresses(&f.item, &fpath);
                        addr_at = addresses.iter().map(|a| a.at).collect();
                        iface.addresses = addresses.into_iter().map(|a| a.v).collect();
                    }
                    "mtu" => iface.mtu = self.mtu(&f.item, &fpath),
                    "mac" => {
                        if let Some(s) = self.string(&f.item, &fpath, "mac = \"02:00:00:00:00:01\"")
                        {
                            match parse_mac(s.v) {
                                Ok(mac) => iface.mac = Some(mac),
                                Err(kind) => self.report(s.at, kind),
                            }
                        }
                    }
                    "up" => iface.up = self.boolean(&f.item, &fpath, "up = true").unwrap_or(true),
                    _ => {}
                }
            }
            if let Some(name) = name {
                iface.name = name;
                out.push(RawInterface {
                    v: iface,
                    at: e.key_at,
                    addr_at,
                });
            }
        }
        out
    }

    pub(super) fn route(&mut self, item: &Item, path: &str) -> Option<RawRoute> {
        let body = self.table(item, path, "{ to = \"default\", via = \"10.0.0.1\" }")?;
        let mut ok = true;
        let mut to: Option<Option<At<IpNet>>> = None;
        let mut via: Option<At<IpAddr>> = None;
        let mut dev = None;
        let mut dev_at = item.at;
        for f in self.known(body, "a route", ROUTE_KEYS) {
            let fpath = join(path, &f.key);
            match f.key.as_str() {
                "to" => match self.string(&f.item, &fpath, "to = \"default\"") {
                    Some(s) if s.v == "default" => to = Some(None),
                    Some(s) => match parse_destination(s.v) {
                        Ok(net) => to = Some(Some(At { v: net, at: s.at })),
                        Err(kind) => {
                            ok = false;
                            self.report(s.at, kind);
                        }
                    },
                    None => ok = false,
                },
                "via" => match self.string(&f.item, &fpath, "via = \"10.0.0.1\"") {
                    Some(s) => match parse_ip(s.v, "route via") {
                        Ok(ip) => via = Some(At { v: ip, at: s.at }),
                        Err(kind) => {
                            ok = false;
                            self.report(s.at, kind);
                        }
                    },
                    None => ok = false,
                },
                "dev" => match self.string(&f.item, &fpath, "dev = \"eth0\"") {
                    Some(s) => {
                        dev_at = s.at;
                        dev = self.ifname(s.v, s.at);
                        ok &= dev.is_some();
                    }
                    None => ok = false,
                },
                _ => {}
            }
        }
        if !ok {
            return None;
        }
        let Some(to) = to else {
            let kind = DiagnosticKind::MissingKey {
                key: "to",
                context: "this route".into(),
                example: "to = \"default\"",
            };
            self.report(item.at, kind);
            return None;
        };
        if via.is_none() && dev.is_none() {
            self.report(item.at, DiagnosticKind::RouteWithoutNextHop);
            return None;
        }
        if let (Some(to), Some(via)) = (&to, &via) {
            if to.v.addr().is_ipv4() != via.v.is_ipv4() {
                self.report(
                    via.at,
                    DiagnosticKind::RouteFamilyMismatch {
                        to: to.v,
                        via: via.v,
                    },
                );
                return None;
            }
        }
        let via_at = via.as_ref().map_or(item.at, |v| v.at);
        let route = Route {
            to: to.map(|t| t.v),
            via: via.map(|v| v.v),
            dev,
        };
        Some(RawRoute {
            route,
            via_at,
            dev_at,
        })
    }

    /// Each sysctl with where its key is written.
    pub(super) fn sysctls(&mut self, item: &Item, path: &str) -> Vec<((String, String), usize)> {
        let Some(entries) = self.table(item, path, "sysctls = { \"net.ipv4.ip_forward\" = 1 }")
        else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for e in self.named(entries) {
            if let Err(reason) = check_sysctl(&e.key) {
                self.report(
                    e.key_at,
                    DiagnosticKind::BadSysctl {
                        key: e.key.clone(),
                        reason,
                    },
                );
                continue;
            }
            let value = match &e.item.value {
                Value::Int(n) => n.to_string(),
                Value::Str(s) => s.clone(),
                _ => {
                    let kpath = join(path, &e.key);
                    self.wrong_type(
                        &e.item,
                        &kpath,
                        "an integer or a string",
                        "\"net.ipv4.ip_forward\" = 1",
                    );
                    continue;
                }
            };
            out.push(((e.key.clone(), value), e.key_at));
        }
        out
    }

    pub(super) fn firewall(&mut self, item: &Item, path: &str) -> Option<Firewall> {
        let body = self.table(item, path, "[nodes.ns1.firewall]")?;
        let mut fw = Firewall {
            ingress_allow: true,
            allow: Vec::new(),
        };
        for f in self.known(body, &format!("`[{path}]`"), FIREWALL_KEYS) {
            let fpath = join(path, &f.key);
            match f.key.as_str() {
                "ingress" => {
                    if let Some(s) = self.string(&f.item, &fpath, "ingress = \"deny\"") {
                        match s.v {
                            "allow" => fw.ingress_allow = true,
                            "deny" => fw.ingress_allow = false,
                            other => {
                                let kind = DiagnosticKind::NotOneOf {
                                    key: "ingress",
                                    found: other.to_owned(),
                                    allowed: &["allow", "deny"],
                                };
                                self.report(s.at, kind);
                            }
                        }
                    }
                }
                "allow" => {
                    for s in self.strings(&f.item, &fpath, "allow = [\"tcp/80\"]") {
                        match parse_rule(s.v) {
                            Ok(rule) => fw.allow.push(rule),
                            Err(kind) => self.report(s.at, kind),
                        }
                    }
                }
                _ => {}
            }
        }
        Some(fw)
    }
}
