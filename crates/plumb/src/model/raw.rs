//! Schema stage: the located tree -> the lab as written, with every key known, every value of the
//! right type and every single value (name, address, MTU, MAC, protocol…) parsed.
//!
//! Problems are reported and the offending piece is left out, so one pass finds as many problems
//! as it can. Cross-references (does this node exist? does this address fit that subnet?) are
//! the next stage's work, in `expand`.

use std::collections::HashSet;
use std::net::IpAddr;
use std::str::FromStr;

use ipnet::IpNet;

use super::error::{DiagnosticKind, Sink};
use super::names::{IfName, LabName, NsName};
use super::range;
use super::tree::{Entry, Item, Value};
use super::types::{Firewall, FirewallRule, Interface, MacAddr, Proto, Publish, Route, Service};

/// A value and the byte offset it was written at.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct At<T> {
    pub(crate) v: T,
    pub(crate) at: usize,
}

/// The lab as written.
#[derive(Debug, Default)]
pub(crate) struct RawLab {
    pub(crate) name: Option<At<LabName>>,
    pub(crate) nodes: Vec<RawNode>,
    pub(crate) bridges: Vec<RawBridge>,
    pub(crate) links: Vec<RawLink>,
    pub(crate) networks: Vec<RawNetwork>,
    pub(crate) expects: Vec<RawExpect>,
    /// Node and bridge names whose declaration was refused: references to them are not reported
    /// again as unknown.
    pub(crate) refused: HashSet<String>,
}

/// Which namespaces a `[nodes.KEY]` declares.
#[derive(Debug)]
pub(crate) enum NodeKey {
    /// `[nodes.host]`.
    Host,
    /// One name, or a range's names (empty when the key was refused).
    Names(Vec<NsName>),
}

/// `[nodes.KEY]`.
#[derive(Debug)]
pub(crate) struct RawNode {
    pub(crate) at: usize,
    pub(crate) key: NodeKey,
    pub(crate) interfaces: Vec<At<Interface>>,
    pub(crate) routes: Vec<RawRoute>,
    pub(crate) sysctls: Vec<(String, String)>,
    pub(crate) firewall: Option<Firewall>,
}

/// One entry of `routes`, with where its parts were written.
#[derive(Debug, Clone)]
pub(crate) struct RawRoute {
    pub(crate) route: Route,
    /// Its `via` (or the route, without one).
    pub(crate) via_at: usize,
    /// Its `dev` (or the route, without one).
    pub(crate) dev_at: usize,
}

/// `[bridges.NAME]`.
#[derive(Debug)]
pub(crate) struct RawBridge {
    pub(crate) at: usize,
    pub(crate) name: IfName,
    pub(crate) node: Option<At<String>>,
    pub(crate) addresses: Vec<IpNet>,
    pub(crate) mtu: Option<u32>,
    pub(crate) stp: bool,
}

/// `[[links]]`.
#[derive(Debug)]
pub(crate) struct RawLink {
    pub(crate) ends: [At<String>; 2],
    pub(crate) mtu: Option<u32>,
}

/// `[networks.NAME]`.
#[derive(Debug)]
pub(crate) struct RawNetwork {
    pub(crate) at: usize,
    pub(crate) name: IfName,
    /// `None` when missing or refused: the network is then only a name.
    pub(crate) subnet: Option<At<IpNet>>,
    pub(crate) gateway: Option<At<IpAddr>>,
    /// Members as written, each with the names it expands to.
    pub(crate) members: Vec<At<Vec<NsName>>>,
    pub(crate) interface: IfName,
    pub(crate) mtu: Option<u32>,
    pub(crate) nat: bool,
    pub(crate) publish: Vec<At<Publish>>,
    pub(crate) isolated: bool,
}

/// `[[expect]]`.
#[derive(Debug)]
pub(crate) struct RawExpect {
    pub(crate) from: At<String>,
    pub(crate) to: At<String>,
    pub(crate) service: Service,
    pub(crate) reach: bool,
}

const TOP_KEYS: &[&str] = &["name", "nodes", "bridges", "links", "networks", "expect"];
const NODE_KEYS: &[&str] = &["interfaces", "routes", "sysctls", "firewall"];
const IFACE_KEYS: &[&str] = &["addresses", "mtu", "mac", "up"];
const ROUTE_KEYS: &[&str] = &["to", "via", "dev"];
const BRIDGE_KEYS: &[&str] = &["node", "addresses", "mtu", "stp"];
const LINK_KEYS: &[&str] = &["endpoints", "mtu"];
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
const FIREWALL_KEYS: &[&str] = &["ingress", "allow"];
const EXPECT_KEYS: &[&str] = &["from", "to", "proto", "result"];

/// The smallest and largest MTU the kernel accepts on an Ethernet-like device.
const MTU_MIN: i128 = 68;
const MTU_MAX: i128 = 65535;

/// Reads the whole document.
pub(crate) fn read(doc: &Item, sink: &mut Sink<'_>) -> RawLab {
    let mut r = Reader {
        sink,
        lab: RawLab::default(),
    };
    r.top(doc);
    r.lab
}

struct Reader<'a, 's> {
    sink: &'a mut Sink<'s>,
    lab: RawLab,
}

/// `a.b` with the key quoted when it is not a bare TOML key.
fn join(path: &str, key: &str) -> String {
    let bare = !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    match (path.is_empty(), bare) {
        (true, true) => key.to_owned(),
        (true, false) => format!("\"{key}\""),
        (false, true) => format!("{path}.{key}"),
        (false, false) => format!("{path}.\"{key}\""),
    }
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, &cb) in b.iter().enumerate() {
            let cost = usize::from(ca != cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

fn suggest(key: &str, allowed: &'static [&'static str]) -> Option<&'static str> {
    allowed
        .iter()
        .map(|k| (edit_distance(key, k), *k))
        .filter(|(d, k)| *d <= 2 && *d < k.len())
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

impl Reader<'_, '_> {
    fn report(&mut self, at: usize, kind: DiagnosticKind) {
        self.sink.report(at, kind);
    }

    fn wrong_type(
        &mut self,
        item: &Item,
        key: &str,
        expected: &'static str,
        example: &'static str,
    ) {
        let kind = DiagnosticKind::WrongType {
            key: key.to_owned(),
            expected,
            found: item.value.type_name(),
            example,
        };
        self.report(item.at, kind);
    }

    /// The entries of a table, or a report that `item` is not one.
    fn table<'v>(
        &mut self,
        item: &'v Item,
        path: &str,
        example: &'static str,
    ) -> Option<&'v [Entry]> {
        match &item.value {
            Value::Table(entries) => Some(entries),
            _ => {
                self.wrong_type(item, path, "a table", example);
                None
            }
        }
    }

    /// Entries of a table whose keys are names (nodes, interfaces…): drops duplicates and nulls.
    fn named<'v>(&mut self, entries: &'v [Entry]) -> Vec<&'v Entry> {
        let mut seen = HashSet::new();
        let mut out = Vec::with_capacity(entries.len());
        for e in entries {
            if !seen.insert(e.key.as_str()) {
                self.report(
                    e.key_at,
                    DiagnosticKind::DuplicateKey { key: e.key.clone() },
                );
            } else if e.item.value != Value::Null {
                out.push(e);
            }
        }
        out
    }

    /// Entries of a table with a fixed set of keys: reports unknown and duplicate keys.
    fn known<'v>(
        &mut self,
        entries: &'v [Entry],
        context: &str,
        allowed: &'static [&'static str],
    ) -> Vec<&'v Entry> {
        let named = self.named(entries);
        let mut out = Vec::with_capacity(named.len());
        for e in named {
            if allowed.contains(&e.key.as_str()) {
                out.push(e);
            } else {
                let kind = DiagnosticKind::UnknownKey {
                    key: e.key.clone(),
                    context: context.to_owned(),
                    allowed,
                    suggestion: suggest(&e.key, allowed),
                };
                self.report(e.key_at, kind);
            }
        }
        out
    }

    fn string<'v>(
        &mut self,
        item: &'v Item,
        path: &str,
        example: &'static str,
    ) -> Option<At<&'v str>> {
        match &item.value {
            Value::Str(s) => Some(At {
                v: s.as_str(),
                at: item.at,
            }),
            _ => {
                self.wrong_type(item, path, "a string", example);
                None
            }
        }
    }

    fn boolean(&mut self, item: &Item, path: &str, example: &'static str) -> Option<bool> {
        match item.value {
            Value::Bool(b) => Some(b),
            _ => {
                self.wrong_type(item, path, "a boolean (true or false)", example);
                None
            }
        }
    }

    fn list<'v>(&mut self, item: &'v Item, path: &str, example: &'static str) -> &'v [Item] {
        match &item.value {
            Value::Array(items) => items,
            _ => {
                self.wrong_type(item, path, "a list", example);
                &[]
            }
        }
    }

    fn strings<'v>(
        &mut self,
        item: &'v Item,
        path: &str,
        example: &'static str,
    ) -> Vec<At<&'v str>> {
        let items = self.list(item, path, example);
        items
            .iter()
            .filter_map(|i| self.string(i, path, example))
            .collect()
    }

    fn mtu(&mut self, item: &Item, path: &str) -> Option<u32> {
        match item.value {
            Value::Int(n) if (MTU_MIN..=MTU_MAX).contains(&n) => u32::try_from(n).ok(),
            Value::Int(value) => {
                self.report(item.at, DiagnosticKind::MtuOutOfRange { value });
                None
            }
            _ => {
                self.wrong_type(item, path, "an integer", "mtu = 1500");
                None
            }
        }
    }

    fn addresses(&mut self, item: &Item, path: &str) -> Vec<IpNet> {
        let strings = self.strings(item, path, "addresses = [\"10.0.0.1/24\"]");
        let mut out = Vec::with_capacity(strings.len());
        for s in strings {
            match parse_cidr(s.v) {
                Ok(net) => out.push(net),
                Err(kind) => self.report(s.at, kind),
            }
        }
        out
    }

    fn ifname(&mut self, text: &str, at: usize) -> Option<IfName> {
        IfName::new(text)
            .map_err(|e| self.report(at, DiagnosticKind::BadName(e)))
            .ok()
    }

    /// Plain names and ranges, for node keys and network members.
    fn ns_names(&mut self, text: &str, at: usize) -> Vec<NsName> {
        let written = match range::expand(text) {
            Ok(None) => vec![text.to_owned()],
            Ok(Some(names)) => names,
            Err(problem) => {
                self.lab.refused.insert(text.to_owned());
                self.report(
                    at,
                    DiagnosticKind::BadRange {
                        text: text.to_owned(),
                        problem,
                    },
                );
                return Vec::new();
            }
        };
        let mut out = Vec::with_capacity(written.len());
        for name in written {
            match NsName::new(&name) {
                Ok(n) => out.push(n),
                Err(e) => {
                    self.lab.refused.insert(text.to_owned());
                    self.lab.refused.insert(name);
                    self.report(at, DiagnosticKind::BadName(e));
                    return Vec::new();
                }
            }
        }
        out
    }

    fn top(&mut self, doc: &Item) {
        let Some(entries) = self.table(doc, "(the document)", "name = \"seed\"") else {
            return;
        };
        let mut has_name = false;
        for e in self.known(entries, "the top level", TOP_KEYS) {
            match e.key.as_str() {
                "name" => {
                    has_name = true;
                    if let Some(s) = self.string(&e.item, "name", "name = \"seed\"") {
                        match LabName::new(s.v) {
                            Ok(v) => self.lab.name = Some(At { v, at: s.at }),
                            Err(err) => self.report(s.at, DiagnosticKind::BadName(err)),
                        }
                    }
                }
                "nodes" => self.nodes(&e.item),
                "bridges" => self.bridges(&e.item),
                "links" => {
                    for item in self.list(&e.item, "links", "[[links]]") {
                        self.link(item);
                    }
                }
                "networks" => self.networks(&e.item),
                "expect" => {
                    for item in self.list(&e.item, "expect", "[[expect]]") {
                        self.expect(item);
                    }
                }
                _ => {}
            }
        }
        if !has_name {
            let kind = DiagnosticKind::MissingKey {
                key: "name",
                context: "the file".into(),
                example: "name = \"seed\"",
            };
            self.report(0, kind);
        }
    }

    fn nodes(&mut self, item: &Item) {
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
                continue;
            };
            let mut node = RawNode {
                at: e.key_at,
                key,
                interfaces: Vec::new(),
                routes: Vec::new(),
                sysctls: Vec::new(),
                firewall: None,
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
                    "sysctls" => node.sysctls = self.sysctls(&f.item, &fpath),
                    "firewall" => node.firewall = self.firewall(&f.item, &fpath),
                    _ => {}
                }
            }
            self.lab.nodes.push(node);
        }
    }

    fn interfaces(&mut self, item: &Item, path: &str) -> Vec<At<Interface>> {
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
            for f in self.known(body, &format!("`[{ipath}]`"), IFACE_KEYS) {
                let fpath = join(&ipath, &f.key);
                match f.key.as_str() {
                    "addresses" => iface.addresses = self.addresses(&f.item, &fpath),
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
                out.push(At {
                    v: iface,
                    at: e.key_at,
                });
            }
        }
        out
    }

    fn route(&mut self, item: &Item, path: &str) -> Option<RawRoute> {
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

    fn sysctls(&mut self, item: &Item, path: &str) -> Vec<(String, String)> {
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
            out.push((e.key.clone(), value));
        }
        out
    }

    fn firewall(&mut self, item: &Item, path: &str) -> Option<Firewall> {
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

    fn bridges(&mut self, item: &Item) {
        let Some(entries) = self.table(item, "bridges", "[bridges.br0]") else {
            return;
        };
        for e in self.named(entries) {
            let name = self.ifname(&e.key, e.key_at);
            if name.is_none() {
                self.lab.refused.insert(e.key.clone());
            }
            let path = join("bridges", &e.key);
            let Some(body) = self.table(&e.item, &path, "[bridges.br0]") else {
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

    fn link(&mut self, item: &Item) {
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
                    } else if let Ok(pair) = <[At<String>; 2]>::try_from(strings) {
                        ends = Some(pair);
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

    fn networks(&mut self, item: &Item) {
        let Some(entries) = self.table(item, "networks", "[networks.plumb0]") else {
            return;
        };
        for e in self.named(entries) {
            let name = self.ifname(&e.key, e.key_at);
            if name.is_none() {
                self.lab.refused.insert(e.key.clone());
            }
            let path = join("networks", &e.key);
            let Some(body) = self.table(&e.item, &path, "[networks.plumb0]") else {
                continue;
            };
            let mut net = RawNetwork {
                at: e.key_at,
                name: IfName::new("lo").expect("`lo` is a valid interface name"),
                subnet: None,
                gateway: None,
                members: Vec::new(),
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
                    "nat" => net.nat = self.boolean(&f.item, &fpath, "nat = true").unwrap_or(false),
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
            if let Some(name) = name {
                net.name = name;
                self.lab.networks.push(net);
            }
        }
    }

    fn expect(&mut self, item: &Item) {
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

/// `10.0.0.1/24`; a bare address is refused with a hint that only the prefix is missing.
pub(crate) fn parse_cidr(text: &str) -> Result<IpNet, DiagnosticKind> {
    IpNet::from_str(text).map_err(|_| DiagnosticKind::NotCidr {
        text: text.to_owned(),
        missing_prefix: IpAddr::from_str(text).is_ok(),
    })
}

/// A CIDR prefix with no bits set after the prefix (`10.0.0.0/24`, not `10.0.0.5/24`).
fn parse_network(text: &str, what: &'static str) -> Result<IpNet, DiagnosticKind> {
    let net = parse_cidr(text)?;
    if net.trunc() != net {
        return Err(DiagnosticKind::HostBitsSet {
            what,
            text: text.to_owned(),
            network: net.trunc(),
        });
    }
    Ok(net)
}

fn parse_destination(text: &str) -> Result<IpNet, DiagnosticKind> {
    match parse_network(text, "route destination") {
        Err(DiagnosticKind::NotCidr {
            missing_prefix: false,
            ..
        }) => Err(DiagnosticKind::BadRouteDestination {
            text: text.to_owned(),
        }),
        other => other,
    }
}

fn parse_ip(text: &str, what: &'static str) -> Result<IpAddr, DiagnosticKind> {
    IpAddr::from_str(text).map_err(|_| DiagnosticKind::NotIp {
        what,
        text: text.to_owned(),
    })
}

fn parse_mac(text: &str) -> Result<MacAddr, DiagnosticKind> {
    let mac = MacAddr::from_str(text).map_err(|()| DiagnosticKind::BadMac {
        text: text.to_owned(),
    })?;
    if mac.0[0] & 1 == 1 {
        return Err(DiagnosticKind::MulticastMac {
            text: text.to_owned(),
        });
    }
    Ok(mac)
}

/// `net.` then dot-separated segments of `[a-zA-Z0-9_-]`.
fn check_sysctl(key: &str) -> Result<(), &'static str> {
    if !key.starts_with("net.") {
        return Err("is not a `net.` sysctl: only network sysctls are per namespace");
    }
    let segment_ok = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    };
    if !key.split('.').all(segment_ok) {
        return Err(
            "must be dot-separated words of letters, digits, `_` and `-` (no `..`, no `/`)",
        );
    }
    Ok(())
}

fn parse_port(text: &str) -> Option<u16> {
    if !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok().filter(|&p| p != 0)
}

/// `icmp`, `tcp/PORT`, `udp/PORT`.
fn parse_service(text: &str) -> Result<Service, DiagnosticKind> {
    service(text, false)
}

fn service(text: &str, firewall: bool) -> Result<Service, DiagnosticKind> {
    let bad = |reason| DiagnosticKind::BadService {
        text: text.to_owned(),
        reason,
        firewall,
    };
    if text == "icmp" {
        return Ok(Service::Icmp);
    }
    let (proto, port) = text
        .split_once('/')
        .ok_or_else(|| bad("it is not `icmp` and has no `/PORT`"))?;
    let port = parse_port(port).ok_or_else(|| bad("the port is not a number from 1 to 65535"))?;
    match proto {
        "tcp" => Ok(Service::Tcp(port)),
        "udp" => Ok(Service::Udp(port)),
        _ => Err(bad("the protocol is not `tcp` or `udp`")),
    }
}

/// `udp/53 from 10.88.0.0/16`.
fn parse_rule(text: &str) -> Result<FirewallRule, DiagnosticKind> {
    let mut words = text.split_whitespace();
    let bad = |reason| DiagnosticKind::BadService {
        text: text.to_owned(),
        reason,
        firewall: true,
    };
    let service =
        service(words.next().ok_or_else(|| bad("it is empty"))?, true).map_err(|e| match e {
            DiagnosticKind::BadService { reason, .. } => bad(reason),
            other => other,
        })?;
    let from = match (words.next(), words.next(), words.next()) {
        (None, _, _) => None,
        (Some("from"), Some(cidr), None) => Some(
            IpNet::from_str(cidr)
                .map_err(|_| bad("the address after `from` is not a CIDR prefix"))?,
        ),
        _ => return Err(bad("only `from CIDR` may follow the protocol")),
    };
    Ok(FirewallRule { service, from })
}

/// `8080:web:80/tcp`.
fn parse_publish(text: &str) -> Result<Publish, DiagnosticKind> {
    let bad = |reason| DiagnosticKind::BadPublish {
        text: text.to_owned(),
        reason,
    };
    let (spec, proto) = match text.rsplit_once('/') {
        Some((spec, "tcp")) => (spec, Proto::Tcp),
        Some((spec, "udp")) => (spec, Proto::Udp),
        Some(_) => return Err(bad("has a protocol other than `tcp` or `udp`")),
        None => (text, Proto::Tcp),
    };
    let mut parts = spec.split(':');
    let (Some(host_port), Some(member), Some(port), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad("is not of the form `HOSTPORT:MEMBER:PORT`"));
    };
    let host_port = parse_port(host_port)
        .ok_or_else(|| bad("has a host port that is not a number from 1 to 65535"))?;
    let port = parse_port(port)
        .ok_or_else(|| bad("has a member port that is not a number from 1 to 65535"))?;
    let member = NsName::new(member).map_err(DiagnosticKind::BadName)?;
    Ok(Publish {
        host_port,
        member,
        port,
        proto,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_cidr_bare_address_says_prefix_missing() {
        assert_eq!(
            parse_cidr("10.0.0.1"),
            Err(DiagnosticKind::NotCidr {
                text: "10.0.0.1".into(),
                missing_prefix: true
            })
        );
        assert!(matches!(
            parse_cidr("10.0.0/8"),
            Err(DiagnosticKind::NotCidr {
                missing_prefix: false,
                ..
            })
        ));
        assert!(parse_cidr("fd00::1/64").is_ok());
    }

    #[test]
    fn parse_network_host_bits_are_refused() {
        assert!(matches!(
            parse_network("10.0.0.5/24", "subnet"),
            Err(DiagnosticKind::HostBitsSet { .. })
        ));
        assert!(parse_network("10.0.0.0/24", "subnet").is_ok());
    }

    #[test]
    fn parse_publish_defaults_to_tcp() {
        let p = parse_publish("8080:web:80").unwrap();
        assert_eq!(
            (p.host_port, p.member.as_str(), p.port, p.proto),
            (8080, "web", 80, Proto::Tcp)
        );
        assert_eq!(parse_publish("53:dns:53/udp").unwrap().proto, Proto::Udp);
        assert!(parse_publish("8080:web").is_err());
        assert!(parse_publish("0:web:80").is_err());
        assert!(parse_publish("8080:web:80/sctp").is_err());
    }

    #[test]
    fn parse_rule_accepts_from_prefix() {
        let r = parse_rule("udp/53 from 10.88.0.0/16").unwrap();
        assert_eq!(r.service, Service::Udp(53));
        assert_eq!(r.from, Some("10.88.0.0/16".parse().unwrap()));
        assert_eq!(parse_rule("icmp").unwrap().service, Service::Icmp);
        assert!(parse_rule("tcp/80 to 10.0.0.0/8").is_err());
        assert!(parse_rule("tcp/x").is_err());
    }

    #[test]
    fn check_sysctl_requires_net_dotted_words() {
        assert!(check_sysctl("net.ipv4.ip_forward").is_ok());
        assert!(check_sysctl("net.ipv4.conf.all.rp_filter").is_ok());
        assert!(check_sysctl("kernel.panic").is_err());
        assert!(check_sysctl("net.ipv4..x").is_err());
        assert!(check_sysctl("net.ipv4/../x").is_err());
    }

    #[test]
    fn parse_mac_multicast_is_refused() {
        assert!(parse_mac("02:00:00:00:00:01").is_ok());
        assert!(matches!(
            parse_mac("01:00:5e:00:00:01"),
            Err(DiagnosticKind::MulticastMac { .. })
        ));
        assert!(matches!(
            parse_mac("02:00:00:00:00"),
            Err(DiagnosticKind::BadMac { .. })
        ));
    }

    #[test]
    fn suggest_close_key_is_offered() {
        assert_eq!(suggest("adresses", IFACE_KEYS), Some("addresses"));
        assert_eq!(suggest("zzzzzzzz", IFACE_KEYS), None);
    }
}
