//! Expansion stage: the lab as written -> the typed, expanded [`Topology`].
//!
//! Resolves every reference (link endpoints, bridge nodes, network members, probes), expands
//! `[networks.*]` into a bridge, veth pairs, addresses and default routes, and checks what needs
//! the whole lab: duplicate names, interfaces used twice, overlapping subnets, reachable gateways.
//! Every name lookup is a hash lookup, so a network of a thousand members costs a thousand steps.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

use super::error::{DiagnosticKind, Sink};
use super::names::{IfName, LabName, NsName};
use super::port_name::{host_port_name, port_seed};
use super::raw::{At, NodeKey, RawLab, RawNetwork, RawNode, RawRoute};
use super::types::{
    Bridge, Endpoint, Expect, Firewall, Interface, Link, Network, Node, NodeRef, Proto, Route,
    Target, Topology,
};

/// Expands and cross-checks `raw`. `None` when any problem was reported (here or before).
pub(crate) fn expand(raw: RawLab, sink: &mut Sink<'_>) -> Option<Topology> {
    let lab = match &raw.name {
        Some(n) => n.v.clone(),
        // Reported already; a stand-in lets the rest of the file be checked.
        None => LabName::new("lab").expect("`lab` is a valid lab name"),
    };
    let mut x = Expander::new(sink, lab, raw.refused);
    for node in raw.nodes {
        x.declare(node);
    }
    let members: Vec<_> = raw.networks.iter().map(|n| x.members(n)).collect();
    for b in raw.bridges {
        x.bridge(b);
    }
    for net in &raw.networks {
        x.network_name(net);
    }
    for link in raw.links {
        x.link(&link.ends, link.mtu);
    }
    let mut published = HashMap::new();
    let mut subnets = Vec::new();
    for (net, members) in raw.networks.into_iter().zip(members) {
        x.network(net, members, &mut subnets, &mut published);
    }
    x.unconnected();
    x.routes();
    let expects = raw
        .expects
        .into_iter()
        .filter_map(|e| x.expect(e))
        .collect();
    if !x.sink.is_clean() {
        return None;
    }
    Some(Topology {
        name: x.lab,
        host: x.host.finish(),
        nodes: x.nodes.into_iter().map(NodeBuild::finish).collect(),
        bridges: x.bridges,
        links: x.links,
        networks: x.networks,
        expects,
    })
}

/// A node of the lab being built: the host or an index into `Expander::nodes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum NodeId {
    Host,
    Ns(usize),
}

/// What occupies an interface name in a node.
#[derive(Debug, Clone)]
enum Use {
    Loopback,
    Link { line: usize },
    Bridge { what: &'static str, line: usize },
    Member { network: String, line: usize },
    Port { seed: String, line: usize },
}

impl Use {
    fn describe(&self) -> String {
        match self {
            Use::Loopback => "the loopback interface".into(),
            Use::Link { line } => format!("used by the link on line {line}"),
            Use::Bridge { what, line } => format!("the name of the {what} on line {line}"),
            Use::Member { network, line } => format!("used by network `{network}` (line {line})"),
            Use::Port { seed, line } => format!("the generated port for `{seed}` (line {line})"),
        }
    }
}

struct NodeBuild {
    name: NodeRef,
    line: usize,
    declared: Vec<At<Interface>>,
    declared_used: Vec<bool>,
    declared_idx: HashMap<IfName, usize>,
    implied: Vec<Interface>,
    uses: HashMap<IfName, Use>,
    routes: Vec<RawRoute>,
    network_routes: Vec<Route>,
    sysctls: Vec<(String, String)>,
    firewall: Option<Firewall>,
    default_v4: bool,
    default_v6: bool,
}

fn lo() -> IfName {
    IfName::new("lo").expect("`lo` is a valid interface name")
}

impl NodeBuild {
    fn new(name: NodeRef, line: usize) -> Self {
        let mut uses = HashMap::new();
        uses.insert(lo(), Use::Loopback);
        NodeBuild {
            name,
            line,
            declared: Vec::new(),
            declared_used: Vec::new(),
            declared_idx: HashMap::new(),
            implied: Vec::new(),
            uses,
            routes: Vec::new(),
            network_routes: Vec::new(),
            sysctls: Vec::new(),
            firewall: None,
            default_v4: false,
            default_v6: false,
        }
    }

    fn fill(&mut self, raw: &RawNode) {
        for iface in &raw.interfaces {
            let is_lo = iface.v.name.as_str() == "lo";
            self.declared_idx
                .insert(iface.v.name.clone(), self.declared.len());
            self.declared.push(iface.clone());
            self.declared_used.push(is_lo);
        }
        for r in &raw.routes {
            let route = &r.route;
            if route.to.is_none_or(|t| t.prefix_len() == 0) {
                // The family of a default route is its gateway's (or its destination's); a
                // `dev`-only `default` is IPv4, as with `ip route add default dev X`.
                let v6 = match (route.via, route.to) {
                    (Some(via), _) => via.is_ipv6(),
                    (None, Some(to)) => to.addr().is_ipv6(),
                    (None, None) => false,
                };
                if v6 {
                    self.default_v6 = true;
                } else {
                    self.default_v4 = true;
                }
            }
        }
        self.routes.extend(raw.routes.iter().cloned());
        self.sysctls.extend(raw.sysctls.iter().cloned());
        if raw.firewall.is_some() {
            self.firewall.clone_from(&raw.firewall);
        }
    }

    fn addresses(&self) -> impl Iterator<Item = &IpNet> {
        self.declared
            .iter()
            .map(|d| &d.v)
            .chain(&self.implied)
            .flat_map(|i| &i.addresses)
    }

    fn finish(self) -> Node {
        let mut routes: Vec<Route> = self.routes.into_iter().map(|r| r.route).collect();
        routes.extend(self.network_routes);
        let mut interfaces: Vec<Interface> = self.declared.into_iter().map(|d| d.v).collect();
        interfaces.extend(self.implied);
        Node {
            name: self.name,
            interfaces,
            routes,
            sysctls: self.sysctls,
            firewall: self.firewall,
        }
    }
}

struct BridgeInfo {
    name: IfName,
    node: NodeId,
    what: &'static str,
    line: usize,
}

/// One resolved link endpoint, before port names are generated.
enum End {
    Node(NodeId, IfName),
    /// A bare bridge name: a new port with a generated name.
    BarePort(String),
    /// `BRIDGE:IFNAME`.
    NamedPort(String, IfName),
}

struct Expander<'a, 's> {
    sink: &'a mut Sink<'s>,
    lab: LabName,
    host: NodeBuild,
    nodes: Vec<NodeBuild>,
    index: HashMap<String, usize>,
    refused: HashSet<String>,
    bridge_names: HashMap<String, BridgeInfo>,
    bridges: Vec<Bridge>,
    links: Vec<Link>,
    networks: Vec<Network>,
}

impl<'a, 's> Expander<'a, 's> {
    fn new(sink: &'a mut Sink<'s>, lab: LabName, refused: HashSet<String>) -> Self {
        Expander {
            sink,
            lab,
            host: NodeBuild::new(NodeRef::Host, 0),
            nodes: Vec::new(),
            index: HashMap::new(),
            refused,
            bridge_names: HashMap::new(),
            bridges: Vec::new(),
            links: Vec::new(),
            networks: Vec::new(),
        }
    }

    fn node(&self, id: NodeId) -> &NodeBuild {
        match id {
            NodeId::Host => &self.host,
            NodeId::Ns(i) => &self.nodes[i],
        }
    }

    fn node_mut(&mut self, id: NodeId) -> &mut NodeBuild {
        match id {
            NodeId::Host => &mut self.host,
            NodeId::Ns(i) => &mut self.nodes[i],
        }
    }

    fn lookup(&self, name: &str) -> Option<NodeId> {
        if name == "host" {
            return Some(NodeId::Host);
        }
        self.index.get(name).map(|&i| NodeId::Ns(i))
    }

    /// Adds a node that is not declared yet.
    fn add_node(&mut self, name: NsName, line: usize) -> usize {
        let i = self.nodes.len();
        self.index.insert(name.as_str().to_owned(), i);
        self.nodes.push(NodeBuild::new(NodeRef::Ns(name), line));
        i
    }

    fn declare(&mut self, raw: RawNode) {
        let line = self.sink.line(raw.at);
        match &raw.key {
            NodeKey::Host => {
                self.host.line = line;
                self.host.fill(&raw);
            }
            NodeKey::Names(names) => {
                for name in names {
                    if let Some(&i) = self.index.get(name.as_str()) {
                        let first_line = self.nodes[i].line;
                        let kind = DiagnosticKind::DuplicateNode {
                            name: name.to_string(),
                            first_line,
                        };
                        self.sink.report(raw.at, kind);
                        continue;
                    }
                    let i = self.add_node(name.clone(), line);
                    self.nodes[i].fill(&raw);
                }
            }
        }
    }

    /// A network's members in order, each with where it was written; undeclared ones become nodes.
    fn members(&mut self, net: &RawNetwork) -> Vec<(NsName, usize, usize)> {
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        for entry in &net.members {
            for name in &entry.v {
                if name.as_str() == "host" {
                    let kind = DiagnosticKind::HostMember {
                        network: net.name.to_string(),
                    };
                    self.sink.report(entry.at, kind);
                    continue;
                }
                if !seen.insert(name.as_str()) {
                    let kind = DiagnosticKind::DuplicateMember {
                        network: net.name.to_string(),
                        member: name.to_string(),
                    };
                    self.sink.report(entry.at, kind);
                    continue;
                }
                let i = match self.index.get(name.as_str()) {
                    Some(&i) => i,
                    None => {
                        let line = self.sink.line(entry.at);
                        self.add_node(name.clone(), line)
                    }
                };
                out.push((name.clone(), entry.at, i));
            }
        }
        out
    }

    /// Takes interface name `name` in node `id` for `what`; reports and refuses a second use.
    fn occupy(&mut self, id: NodeId, name: &IfName, what: Use, at: usize) -> bool {
        let node = self.node(id);
        if let Some(prev) = node.uses.get(name) {
            let kind = match (prev, &what) {
                (Use::Port { seed: first, .. }, Use::Port { seed: second, .. })
                    if first != second =>
                {
                    DiagnosticKind::PortNameCollision {
                        name: name.to_string(),
                        first: first.clone(),
                        second: second.clone(),
                    }
                }
                _ => DiagnosticKind::InterfaceReused {
                    node: node.name.to_string(),
                    name: name.to_string(),
                    first: prev.describe(),
                },
            };
            self.sink.report(at, kind);
            return false;
        }
        if let Use::Bridge { .. } = what {
            if let Some(&i) = node.declared_idx.get(name) {
                let kind = DiagnosticKind::InterfaceReused {
                    node: node.name.to_string(),
                    name: name.to_string(),
                    first: what.describe(),
                };
                let iface_at = node.declared[i].at;
                self.sink.report(iface_at, kind);
                // Reported once: not also as an unconnected interface.
                self.node_mut(id).declared_used[i] = true;
            }
        }
        self.node_mut(id).uses.insert(name.clone(), what);
        true
    }

    /// Makes `name` in node `id` a veth end, with the declared settings if there are any.
    fn attach(
        &mut self,
        id: NodeId,
        name: &IfName,
        what: Use,
        at: usize,
        mtu: Option<u32>,
        addr: Option<IpNet>,
    ) -> bool {
        if !self.occupy(id, name, what, at) {
            return false;
        }
        let node = self.node_mut(id);
        if let Some(&i) = node.declared_idx.get(name) {
            node.declared_used[i] = true;
            let iface = &mut node.declared[i].v;
            iface.mtu = iface.mtu.or(mtu);
            iface.addresses.extend(addr);
        } else {
            node.implied.push(Interface {
                name: name.clone(),
                addresses: addr.into_iter().collect(),
                mtu,
                mac: None,
                up: true,
            });
        }
        true
    }

    fn bridge(&mut self, raw: super::raw::RawBridge) {
        let line = self.sink.line(raw.at);
        let id = match &raw.node {
            None => NodeId::Host,
            Some(n) => match self.lookup(&n.v) {
                Some(id) => id,
                None => {
                    if !self.refused.contains(&n.v) {
                        let kind = DiagnosticKind::UnknownNode {
                            role: "the bridge's `node`",
                            name: n.v.clone(),
                        };
                        self.sink.report(n.at, kind);
                    }
                    self.refused.insert(raw.name.to_string());
                    return;
                }
            },
        };
        self.occupy(
            id,
            &raw.name,
            Use::Bridge {
                what: "bridge",
                line,
            },
            raw.at,
        );
        let info = BridgeInfo {
            name: raw.name.clone(),
            node: id,
            what: "bridge",
            line,
        };
        self.bridge_names.insert(raw.name.to_string(), info);
        self.bridges.push(Bridge {
            name: raw.name,
            node: self.node(id).name.clone(),
            addresses: raw.addresses,
            mtu: raw.mtu,
            stp: raw.stp,
        });
    }

    fn network_name(&mut self, net: &RawNetwork) {
        let line = self.sink.line(net.at);
        if let Some(first) = self.bridge_names.get(net.name.as_str()) {
            let kind = DiagnosticKind::DuplicateBridge {
                name: net.name.to_string(),
                what: "network",
                first_what: first.what,
                first_line: first.line,
            };
            self.sink.report(net.at, kind);
            return;
        }
        self.occupy(
            NodeId::Host,
            &net.name,
            Use::Bridge {
                what: "network",
                line,
            },
            net.at,
        );
        let info = BridgeInfo {
            name: net.name.clone(),
            node: NodeId::Host,
            what: "network",
            line,
        };
        self.bridge_names.insert(net.name.to_string(), info);
    }

    fn resolve(&mut self, end: &At<String>) -> Option<End> {
        let text = end.v.as_str();
        let Some((left, right)) = text.rsplit_once(':') else {
            if self.bridge_names.contains_key(text) {
                return Some(End::BarePort(text.to_owned()));
            }
            if !self.refused.contains(text) {
                let names_node = self.lookup(text).is_some();
                let kind = DiagnosticKind::EndpointWithoutColon {
                    text: text.to_owned(),
                    names_node,
                };
                self.sink.report(end.at, kind);
            }
            return None;
        };
        let ifname = match IfName::new(right) {
            Ok(n) => n,
            Err(e) => {
                self.sink.report(end.at, DiagnosticKind::BadName(e));
                return None;
            }
        };
        if let Some(id) = self.lookup(left) {
            return Some(End::Node(id, ifname));
        }
        if self.bridge_names.contains_key(left) {
            return Some(End::NamedPort(left.to_owned(), ifname));
        }
        if !self.refused.contains(left) {
            let kind = DiagnosticKind::UnknownEndpoint {
                text: text.to_owned(),
                name: left.to_owned(),
            };
            self.sink.report(end.at, kind);
        }
        None
    }

    /// The node and interface name that identify an end (a bare port by its bridge).
    fn identity(&self, end: &End) -> (NodeId, IfName) {
        match end {
            End::Node(id, n) => (*id, n.clone()),
            End::NamedPort(b, n) => (self.bridge_names[b].node, n.clone()),
            End::BarePort(b) => {
                let info = &self.bridge_names[b];
                (info.node, info.name.clone())
            }
        }
    }

    /// The final endpoint, its node, and the seed of its generated name if it has one.
    fn endpoint(&self, end: &End, other: &End) -> (NodeId, Endpoint, Option<String>) {
        match end {
            End::Node(id, n) => (
                *id,
                Endpoint {
                    node: self.node(*id).name.clone(),
                    ifname: n.clone(),
                    bridge: None,
                },
                None,
            ),
            End::NamedPort(b, n) => {
                let info = &self.bridge_names[b];
                let node = self.node(info.node).name.clone();
                (
                    info.node,
                    Endpoint {
                        node,
                        ifname: n.clone(),
                        bridge: Some(info.name.clone()),
                    },
                    None,
                )
            }
            End::BarePort(b) => {
                let info = &self.bridge_names[b];
                let (far_id, far_if) = self.identity(other);
                let far = &self.node(far_id).name;
                let ifname = host_port_name(&self.lab, far, &far_if);
                let seed = port_seed(&self.lab, far, &far_if);
                let node = self.node(info.node).name.clone();
                (
                    info.node,
                    Endpoint {
                        node,
                        ifname,
                        bridge: Some(info.name.clone()),
                    },
                    Some(seed),
                )
            }
        }
    }

    fn link(&mut self, ends: &[At<String>; 2], mtu: Option<u32>) {
        let line = self.sink.line(ends[0].at);
        let (a, b) = (self.resolve(&ends[0]), self.resolve(&ends[1]));
        let (Some(a), Some(b)) = (a, b) else {
            return;
        };
        let (a_id, a_end, a_seed) = self.endpoint(&a, &b);
        let (b_id, b_end, b_seed) = self.endpoint(&b, &a);
        if a_id == b_id && a_end.ifname == b_end.ifname {
            let kind = DiagnosticKind::SelfLink {
                node: a_end.node.to_string(),
                ifname: a_end.ifname.to_string(),
            };
            self.sink.report(ends[1].at, kind);
            return;
        }
        let what = |seed: Option<String>| match seed {
            Some(seed) => Use::Port { seed, line },
            None => Use::Link { line },
        };
        let a_ok = self.attach(a_id, &a_end.ifname, what(a_seed), ends[0].at, mtu, None);
        let b_ok = self.attach(b_id, &b_end.ifname, what(b_seed), ends[1].at, mtu, None);
        if a_ok && b_ok {
            self.links.push(Link {
                a: a_end,
                b: b_end,
                mtu,
            });
        }
    }

    fn network(
        &mut self,
        net: RawNetwork,
        members: Vec<(NsName, usize, usize)>,
        subnets: &mut Vec<(IfName, IpNet, usize)>,
        published: &mut HashMap<(u16, Proto), usize>,
    ) {
        let Some(subnet) = net.subnet else {
            return;
        };
        let line = self.sink.line(net.at);
        let mut ok = true;
        for (other, other_subnet, other_line) in subnets.iter() {
            if subnet.v.contains(other_subnet) || other_subnet.contains(&subnet.v) {
                let kind = DiagnosticKind::OverlappingSubnets {
                    network: net.name.to_string(),
                    subnet: subnet.v,
                    other: other.to_string(),
                    other_subnet: *other_subnet,
                    other_line: *other_line,
                };
                self.sink.report(subnet.at, kind);
                ok = false;
                break;
            }
        }
        subnets.push((net.name.clone(), subnet.v, line));

        let pool = Pool::new(subnet.v);
        let gateway = match net.gateway {
            Some(g) => {
                if let Err(kind) = pool.check_gateway(g.v) {
                    self.sink.report(g.at, kind);
                    return;
                }
                g.v
            }
            None => pool.first(),
        };
        let free = pool.free(gateway);
        if members.len() as u128 > free {
            let kind = DiagnosticKind::SubnetTooSmall {
                network: net.name.to_string(),
                subnet: subnet.v,
                members: members.len(),
                free,
                fits: fitting_subnet(subnet.v, members.len()),
            };
            self.sink.report(subnet.at, kind);
            ok = false;
        }

        let member_set: HashSet<&str> = members.iter().map(|(n, _, _)| n.as_str()).collect();
        for p in &net.publish {
            if !member_set.contains(p.v.member.as_str()) {
                let kind = DiagnosticKind::PublishNotMember {
                    member: p.v.member.to_string(),
                    network: net.name.to_string(),
                };
                self.sink.report(p.at, kind);
            }
            match published.get(&(p.v.host_port, p.v.proto)) {
                Some(&first_line) => {
                    let kind = DiagnosticKind::PublishPortReused {
                        port: p.v.host_port,
                        proto: p.v.proto,
                        first_line,
                    };
                    self.sink.report(p.at, kind);
                }
                None => {
                    published.insert((p.v.host_port, p.v.proto), self.sink.line(p.at));
                }
            }
        }
        if !ok {
            return;
        }

        let prefix = subnet.v.prefix_len();
        let gw_net =
            IpNet::new(gateway, prefix).expect("the subnet's own prefix length fits its family");
        self.bridges.push(Bridge {
            name: net.name.clone(),
            node: NodeRef::Host,
            addresses: vec![gw_net],
            mtu: net.mtu,
            stp: false,
        });
        let mut addrs = pool.addresses(gateway);
        let v6 = gateway.is_ipv6();
        for (member, at, i) in &members {
            let Some(addr) = addrs.next() else {
                break;
            };
            let addr =
                IpNet::new(addr, prefix).expect("the subnet's own prefix length fits its family");
            let id = NodeId::Ns(*i);
            let mline = self.sink.line(*at);
            let what = Use::Member {
                network: net.name.to_string(),
                line: mline,
            };
            if !self.attach(id, &net.interface, what, *at, net.mtu, Some(addr)) {
                continue;
            }
            let node_ref = NodeRef::Ns(member.clone());
            let port = host_port_name(&self.lab, &node_ref, &net.interface);
            let seed = port_seed(&self.lab, &node_ref, &net.interface);
            if !self.attach(
                NodeId::Host,
                &port,
                Use::Port { seed, line: mline },
                *at,
                net.mtu,
                None,
            ) {
                continue;
            }
            self.links.push(Link {
                a: Endpoint {
                    node: node_ref,
                    ifname: net.interface.clone(),
                    bridge: None,
                },
                b: Endpoint {
                    node: NodeRef::Host,
                    ifname: port,
                    bridge: Some(net.name.clone()),
                },
                mtu: net.mtu,
            });
            let node = &mut self.nodes[*i];
            let has_default = if v6 {
                &mut node.default_v6
            } else {
                &mut node.default_v4
            };
            if !*has_default {
                *has_default = true;
                node.network_routes.push(Route {
                    to: None,
                    via: Some(gateway),
                    dev: None,
                });
            }
        }
        self.networks.push(Network {
            name: net.name,
            subnet: subnet.v,
            gateway,
            members: members.into_iter().map(|(n, _, _)| n).collect(),
            interface: net.interface,
            mtu: net.mtu,
            nat: net.nat,
            publish: net.publish.into_iter().map(|p| p.v).collect(),
            isolated: net.isolated,
        });
    }

    fn unconnected(&mut self) {
        let mut found = Vec::new();
        for node in std::iter::once(&self.host).chain(&self.nodes) {
            for (d, used) in node.declared.iter().zip(&node.declared_used) {
                if !used {
                    let kind = DiagnosticKind::UnconnectedInterface {
                        node: node.name.to_string(),
                        name: d.v.name.to_string(),
                    };
                    found.push((d.at, kind));
                }
            }
        }
        for (at, kind) in found {
            self.sink.report(at, kind);
        }
    }

    fn routes(&mut self) {
        let mut bridge_addrs: HashMap<NodeRef, Vec<IpNet>> = HashMap::new();
        for b in &self.bridges {
            bridge_addrs
                .entry(b.node.clone())
                .or_default()
                .extend(&b.addresses);
        }
        let mut found = Vec::new();
        for node in std::iter::once(&self.host).chain(&self.nodes) {
            if node.routes.is_empty() {
                continue;
            }
            let mut subnets: Vec<IpNet> = node.addresses().map(IpNet::trunc).collect();
            subnets.extend(
                bridge_addrs
                    .get(&node.name)
                    .into_iter()
                    .flatten()
                    .map(IpNet::trunc),
            );
            subnets.sort();
            subnets.dedup();
            for r in &node.routes {
                if let Some(dev) = &r.route.dev {
                    if !node.uses.contains_key(dev) && !node.declared_idx.contains_key(dev) {
                        let kind = DiagnosticKind::RouteDevUnknown {
                            node: node.name.to_string(),
                            dev: dev.to_string(),
                        };
                        found.push((r.dev_at, kind));
                    }
                }
                if let Some(via) = r.route.via {
                    let link_local = match via {
                        IpAddr::V6(v6) => v6.segments()[0] & 0xffc0 == 0xfe80,
                        IpAddr::V4(_) => false,
                    };
                    // A link-local gateway is on the link named by `dev`, whatever the addresses.
                    let reachable = subnets.iter().any(|s| s.contains(&via))
                        || (link_local && r.route.dev.is_some());
                    if !reachable {
                        let kind = DiagnosticKind::RouteViaUnreachable {
                            node: node.name.to_string(),
                            via,
                            subnets: subnets.clone(),
                        };
                        found.push((r.via_at, kind));
                    }
                }
            }
        }
        for (at, kind) in found {
            self.sink.report(at, kind);
        }
    }

    fn expect(&mut self, e: super::raw::RawExpect) -> Option<Expect> {
        let from = match self.lookup(&e.from.v) {
            Some(id) => self.node(id).name.clone(),
            None => {
                if !self.refused.contains(&e.from.v) {
                    let kind = DiagnosticKind::UnknownNode {
                        role: "expect `from`",
                        name: e.from.v.clone(),
                    };
                    self.sink.report(e.from.at, kind);
                }
                return None;
            }
        };
        let to = if let Ok(ip) = e.to.v.parse::<IpAddr>() {
            Target::Addr(ip)
        } else if let Some(id) = self.lookup(&e.to.v) {
            Target::Node(self.node(id).name.clone())
        } else {
            if !self.refused.contains(&e.to.v) {
                let kind = DiagnosticKind::UnknownNode {
                    role: "expect `to`",
                    name: e.to.v.clone(),
                };
                self.sink.report(e.to.at, kind);
            }
            return None;
        };
        Some(Expect {
            from,
            to,
            service: e.service,
            reach: e.reach,
        })
    }
}

/// The host addresses of a subnet as integers: `first..=last` are usable, the network address
/// (and for IPv4 the broadcast address) excluded, except in /31, /32 and /128.
#[derive(Debug, Clone, Copy)]
struct Pool {
    subnet: IpNet,
    v6: bool,
    network: u128,
    broadcast: u128,
    first: u128,
    last: u128,
}

fn to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

fn from_u128(n: u128, v6: bool) -> IpAddr {
    if v6 {
        IpAddr::V6(Ipv6Addr::from(n))
    } else {
        // Pool values of an IPv4 subnet are below 2^32.
        IpAddr::V4(Ipv4Addr::from(u32::try_from(n).unwrap_or(u32::MAX)))
    }
}

impl Pool {
    fn new(subnet: IpNet) -> Self {
        let v6 = subnet.addr().is_ipv6();
        let network = to_u128(subnet.network());
        let broadcast = to_u128(subnet.broadcast());
        let (first, last) = match (v6, subnet.prefix_len()) {
            (false, 31) | (false, 32) | (true, 128) => (network, broadcast),
            (false, _) => (network + 1, broadcast - 1),
            (true, _) => (network + 1, broadcast),
        };
        Pool {
            subnet,
            v6,
            network,
            broadcast,
            first,
            last,
        }
    }

    fn first(&self) -> IpAddr {
        from_u128(self.first, self.v6)
    }

    fn check_gateway(&self, gw: IpAddr) -> Result<(), DiagnosticKind> {
        let subnet = self.subnet;
        let n = to_u128(gw);
        if gw.is_ipv6() != self.v6 || n < self.network || n > self.broadcast {
            return Err(DiagnosticKind::GatewayOutsideSubnet {
                gateway: gw,
                subnet,
            });
        }
        if n < self.first || n > self.last {
            let which = if n == self.network {
                "network"
            } else {
                "broadcast"
            };
            return Err(DiagnosticKind::GatewayNotHost {
                gateway: gw,
                which,
                subnet,
            });
        }
        Ok(())
    }

    /// Usable addresses left for members once the gateway has its own.
    fn free(&self, gateway: IpAddr) -> u128 {
        let count = (self.last - self.first).saturating_add(1);
        let g = to_u128(gateway);
        if (self.first..=self.last).contains(&g) {
            count - 1
        } else {
            count
        }
    }

    /// Member addresses in order, skipping the gateway.
    fn addresses(&self, gateway: IpAddr) -> impl Iterator<Item = IpAddr> {
        let g = to_u128(gateway);
        let (v6, first, last) = (self.v6, self.first, self.last);
        (first..=last)
            .filter(move |&n| n != g)
            .map(move |n| from_u128(n, v6))
    }
}

/// The longest-prefix subnet at the same address that holds `members` and a gateway.
fn fitting_subnet(subnet: IpNet, members: usize) -> Option<IpNet> {
    let needed = members as u128 + 1;
    let max = subnet.max_prefix_len();
    (0..=max).rev().find_map(|prefix| {
        let candidate = IpNet::new(subnet.network(), prefix).ok()?.trunc();
        (Pool::new(candidate).free(Pool::new(candidate).first()) + 1 >= needed).then_some(candidate)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::types::{Node, Service};

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn load(src: &str) -> Topology {
        match crate::model::parse_toml(src, "test.toml") {
            Ok(t) => t,
            Err(e) => panic!("does not load:\n{e}"),
        }
    }

    fn errors(src: &str) -> Vec<DiagnosticKind> {
        let err = crate::model::parse_toml(src, "test.toml").unwrap_err();
        err.diagnostics().iter().map(|d| d.kind().clone()).collect()
    }

    fn find<'t>(t: &'t Topology, name: &str) -> &'t Node {
        t.nodes.iter().find(|n| n.name.to_string() == name).unwrap()
    }

    fn iface<'n>(n: &'n Node, name: &str) -> &'n Interface {
        n.interfaces
            .iter()
            .find(|i| i.name.as_str() == name)
            .unwrap()
    }

    #[test]
    fn expand_range_declares_each_node_with_the_same_settings() {
        let t = load(
            r#"
            name = "r"
            [nodes."c[1..12]".interfaces.eth0]
            mtu = 9000
            [nodes."c[1..12]".sysctls]
            "net.ipv4.ip_forward" = 1
            [networks.br0]
            subnet = "10.0.0.0/24"
            members = ["c[1..12]"]
            "#,
        );
        let names: Vec<String> = t.nodes.iter().map(|n| n.name.to_string()).collect();
        assert_eq!(names.len(), 12);
        assert_eq!(&names[..3], ["c1", "c2", "c3"]);
        assert_eq!(names[11], "c12");
        assert!(t
            .nodes
            .iter()
            .all(|n| n.sysctls == [("net.ipv4.ip_forward".to_owned(), "1".to_owned())]));
        assert_eq!(iface(&t.nodes[0], "eth0").mtu, Some(9000));
    }

    #[test]
    fn expand_unconnected_interface_in_range_is_reported_once() {
        let kinds = errors("name = \"r\"\n[nodes.\"c[1..100]\".interfaces.eth0]\n");
        assert_eq!(kinds.len(), 1);
        assert!(
            matches!(&kinds[0], DiagnosticKind::UnconnectedInterface { node, .. } if node == "c1")
        );
    }

    #[test]
    fn expand_network_gateway_defaults_to_first_address_on_the_bridge() {
        let t = load(
            "name = \"n\"\n[networks.br0]\nsubnet = \"10.1.2.0/24\"\nmembers = [\"a\", \"b\"]\n",
        );
        let net = &t.networks[0];
        assert_eq!(net.gateway, ip("10.1.2.1"));
        assert_eq!(t.bridges[0].addresses, [self::net("10.1.2.1/24")]);
        assert_eq!(
            iface(find(&t, "a"), "eth0").addresses,
            [self::net("10.1.2.2/24")]
        );
        assert_eq!(
            iface(find(&t, "b"), "eth0").addresses,
            [self::net("10.1.2.3/24")]
        );
    }

    #[test]
    fn expand_network_member_addresses_skip_an_explicit_gateway() {
        let t = load(
            "name = \"n\"\n[networks.br0]\nsubnet = \"10.1.2.0/29\"\ngateway = \"10.1.2.2\"\n\
             members = [\"a\", \"b\", \"c\"]\ninterface = \"net0\"\nmtu = 1400\n",
        );
        let got: Vec<_> = ["a", "b", "c"]
            .iter()
            .map(|m| iface(find(&t, m), "net0").addresses[0])
            .collect();
        assert_eq!(
            got,
            [net("10.1.2.1/29"), net("10.1.2.3/29"), net("10.1.2.4/29")]
        );
        assert_eq!(
            find(&t, "a").routes,
            [Route {
                to: None,
                via: Some(ip("10.1.2.2")),
                dev: None
            }]
        );
        assert_eq!(iface(find(&t, "a"), "net0").mtu, Some(1400));
        assert_eq!(t.bridges[0].mtu, Some(1400));
        assert!(t.links.iter().all(|l| l.mtu == Some(1400)));
    }

    #[test]
    fn expand_default_route_is_not_added_twice_per_family() {
        let t = load(
            r#"
            name = "n"
            [nodes.a]
            [nodes.b]
            routes = [{ to = "default", via = "10.2.0.1" }]
            [networks.one]
            subnet = "10.1.0.0/24"
            members = ["a", "b"]
            [networks.two]
            subnet = "10.2.0.0/24"
            members = ["a", "b"]
            interface = "eth1"
            [networks.six]
            subnet = "fd00:6::/64"
            members = ["a"]
            interface = "eth2"
            "#,
        );
        let a = find(&t, "a");
        // From the first network only, then the IPv6 one.
        assert_eq!(
            a.routes,
            [
                Route {
                    to: None,
                    via: Some(ip("10.1.0.1")),
                    dev: None
                },
                Route {
                    to: None,
                    via: Some(ip("fd00:6::1")),
                    dev: None
                },
            ]
        );
        assert_eq!(iface(a, "eth2").addresses, [net("fd00:6::2/64")]);
        // b declared its own default route: none added.
        assert_eq!(
            find(&t, "b").routes,
            [Route {
                to: None,
                via: Some(ip("10.2.0.1")),
                dev: None
            }]
        );
    }

    #[test]
    fn expand_undeclared_members_come_after_declared_nodes() {
        let t = load(
            "name = \"n\"\n[nodes.z]\n[networks.br0]\nsubnet = \"10.1.0.0/24\"\nmembers = [\"m[1..2]\", \"z\"]\n",
        );
        let names: Vec<String> = t.nodes.iter().map(|n| n.name.to_string()).collect();
        assert_eq!(names, ["z", "m1", "m2"]);
        assert_eq!(iface(find(&t, "z"), "eth0").addresses, [net("10.1.0.4/24")]);
        let members: Vec<&str> = t.networks[0].members.iter().map(|m| m.as_str()).collect();
        assert_eq!(members, ["m1", "m2", "z"]);
    }

    #[test]
    fn expand_member_interface_settings_are_merged() {
        let t = load(
            r#"
            name = "n"
            [nodes.web.interfaces.eth0]
            mac = "02:00:00:00:00:07"
            addresses = ["fd00::7/64"]
            mtu = 9000
            [networks.br0]
            subnet = "10.1.0.0/24"
            members = ["web"]
            mtu = 1400
            "#,
        );
        let eth0 = iface(find(&t, "web"), "eth0");
        assert_eq!(eth0.addresses, [net("fd00::7/64"), net("10.1.0.2/24")]);
        assert_eq!(eth0.mtu, Some(9000));
        assert_eq!(
            eth0.mac.map(|m| m.to_string()),
            Some("02:00:00:00:00:07".to_owned())
        );
        assert_eq!(find(&t, "web").interfaces.len(), 1);
    }

    #[test]
    fn expand_bare_bridge_endpoint_gets_a_generated_port() {
        let t = load(
            r#"
            name = "b"
            [bridges.br0]
            addresses = ["10.5.0.1/24"]
            [nodes.ns1.interfaces.eth0]
            addresses = ["10.5.0.2/24"]
            [[links]]
            endpoints = ["br0", "ns1:eth0"]
            mtu = 1300
            "#,
        );
        let link = &t.links[0];
        let ns1 = NodeRef::Ns(NsName::new("ns1").unwrap());
        let port = host_port_name(&t.name, &ns1, &IfName::new("eth0").unwrap());
        assert_eq!(
            link.a,
            Endpoint {
                node: NodeRef::Host,
                ifname: port.clone(),
                bridge: Some(IfName::new("br0").unwrap())
            }
        );
        assert_eq!(link.b.node, ns1);
        assert_eq!(iface(&t.host, port.as_str()).mtu, Some(1300));
        assert_eq!(iface(find(&t, "ns1"), "eth0").mtu, Some(1300));
    }

    #[test]
    fn expand_bridge_colon_ifname_is_a_named_port_in_the_bridges_node() {
        let t = load(
            r#"
            name = "b"
            [nodes.r1]
            [bridges.lan]
            node = "r1"
            [[links]]
            endpoints = ["lan:p1", "ns2:eth0"]
            [nodes.ns2]
            "#,
        );
        let r1 = NodeRef::Ns(NsName::new("r1").unwrap());
        assert_eq!(t.bridges[0].node, r1);
        let a = &t.links[0].a;
        assert_eq!((&a.node, a.ifname.as_str()), (&r1, "p1"));
        assert_eq!(a.bridge.as_ref().map(IfName::as_str), Some("lan"));
        assert_eq!(iface(find(&t, "r1"), "p1").name.as_str(), "p1");
    }

    #[test]
    fn expand_link_mtu_yields_to_the_interfaces_own() {
        let t = load(
            r#"
            name = "m"
            [nodes.ns1.interfaces.eth0]
            mtu = 9000
            [[links]]
            endpoints = ["host:veth0", "ns1:eth0"]
            mtu = 1500
            "#,
        );
        assert_eq!(iface(find(&t, "ns1"), "eth0").mtu, Some(9000));
        assert_eq!(iface(&t.host, "veth0").mtu, Some(1500));
        assert_eq!(t.links[0].mtu, Some(1500));
    }

    #[test]
    fn expand_publish_firewall_and_expect_are_typed() {
        let t = load(
            r#"
            name = "f"
            [networks.front]
            subnet = "10.88.0.0/24"
            members = ["web", "dns"]
            nat = true
            isolated = true
            publish = ["8080:web:80/tcp", "53:dns:53/udp", "8443:web:443"]
            [nodes.web.firewall]
            ingress = "deny"
            allow = ["icmp", "tcp/80", "udp/53 from 10.88.0.0/16"]
            [[expect]]
            from = "dns"
            to = "web"
            proto = "tcp/80"
            result = "reach"
            [[expect]]
            from = "host"
            to = "10.88.0.2"
            result = "blocked"
            "#,
        );
        let net = &t.networks[0];
        assert!(net.nat && net.isolated);
        let published: Vec<_> = net
            .publish
            .iter()
            .map(|p| (p.host_port, p.member.as_str(), p.port, p.proto))
            .collect();
        assert_eq!(
            published,
            [
                (8080, "web", 80, Proto::Tcp),
                (53, "dns", 53, Proto::Udp),
                (8443, "web", 443, Proto::Tcp)
            ]
        );
        let fw = find(&t, "web").firewall.clone().unwrap();
        assert!(!fw.ingress_allow);
        assert_eq!(fw.allow.len(), 3);
        assert_eq!(fw.allow[2].from, Some(net_("10.88.0.0/16")));
        assert_eq!(t.expects[0].service, Service::Tcp(80));
        assert_eq!(
            t.expects[0].to,
            Target::Node(NodeRef::Ns(NsName::new("web").unwrap()))
        );
        assert_eq!(t.expects[1].from, NodeRef::Host);
        assert_eq!(
            (t.expects[1].to.clone(), t.expects[1].reach),
            (Target::Addr(ip("10.88.0.2")), false)
        );
        assert_eq!(t.expects[1].service, Service::Icmp);
    }

    fn net_(s: &str) -> IpNet {
        net(s)
    }

    #[test]
    fn expand_route_via_a_network_gateway_and_link_local_with_dev_are_accepted() {
        let t = load(
            r#"
            name = "r"
            [nodes.web]
            routes = [
              { to = "10.9.0.0/16", via = "10.88.0.1" },
              { to = "fd00:9::/48", via = "fe80::1", dev = "eth0" },
              { to = "192.0.2.0/24", dev = "lo" },
            ]
            [networks.front]
            subnet = "10.88.0.0/24"
            members = ["web"]
            "#,
        );
        // Declared routes first, the network's default route after them.
        assert_eq!(find(&t, "web").routes.len(), 4);
    }

    #[test]
    fn expand_generated_port_names_colliding_are_reported() {
        let src = "";
        let mut sink = Sink::new(src);
        let lab = LabName::new("x").unwrap();
        let mut x = Expander::new(&mut sink, lab, HashSet::new());
        let name = IfName::new("pl0000000000000").unwrap();
        assert!(x.occupy(
            NodeId::Host,
            &name,
            Use::Port {
                seed: "x/a/eth0".into(),
                line: 1
            },
            0
        ));
        assert!(!x.occupy(
            NodeId::Host,
            &name,
            Use::Port {
                seed: "x/b/eth0".into(),
                line: 2
            },
            0
        ));
        let err = sink.into_error("t");
        assert!(matches!(
            err.diagnostics()[0].kind(),
            DiagnosticKind::PortNameCollision { .. }
        ));
    }

    #[test]
    fn expand_member_of_two_networks_on_one_interface_is_reported() {
        let kinds = errors(
            "name = \"n\"\n[networks.a]\nsubnet = \"10.1.0.0/24\"\nmembers = [\"w\"]\n\
             [networks.b]\nsubnet = \"10.2.0.0/24\"\nmembers = [\"w\"]\n",
        );
        assert_eq!(kinds.len(), 1);
        assert!(
            matches!(&kinds[0], DiagnosticKind::InterfaceReused { first, .. } if first.contains("network `a`"))
        );
    }

    #[test]
    fn expand_link_using_lo_is_reported() {
        let kinds =
            errors("name = \"n\"\n[nodes.a]\n[[links]]\nendpoints = [\"a:lo\", \"host:v\"]\n");
        assert!(
            matches!(&kinds[0], DiagnosticKind::InterfaceReused { first, .. } if first.contains("loopback"))
        );
    }

    #[test]
    fn expand_json_null_means_not_written() {
        let t = crate::model::parse_json(
            r#"{"name": "j", "networks": {"br0": {"subnet": "10.1.0.0/24", "gateway": null, "members": ["a"]}}}"#,
            "t.json",
        )
        .unwrap();
        assert_eq!(t.networks[0].gateway, ip("10.1.0.1"));
    }

    #[test]
    fn pool_ipv4_skips_network_gateway_and_broadcast() {
        let pool = Pool::new(net("10.0.0.0/29"));
        assert_eq!(pool.first(), ip("10.0.0.1"));
        let addrs: Vec<_> = pool.addresses(ip("10.0.0.1")).collect();
        assert_eq!(addrs.first(), Some(&ip("10.0.0.2")));
        assert_eq!(addrs.last(), Some(&ip("10.0.0.6")));
        assert_eq!(addrs.len(), 5);
        assert_eq!(pool.free(ip("10.0.0.1")), 5);
    }

    #[test]
    fn pool_gateway_in_the_middle_is_skipped() {
        let pool = Pool::new(net("10.0.0.0/29"));
        let addrs: Vec<_> = pool.addresses(ip("10.0.0.3")).collect();
        assert_eq!(
            addrs,
            [
                ip("10.0.0.1"),
                ip("10.0.0.2"),
                ip("10.0.0.4"),
                ip("10.0.0.5"),
                ip("10.0.0.6")
            ]
        );
    }

    #[test]
    fn pool_ipv6_has_no_broadcast() {
        let pool = Pool::new(net("fd00::/126"));
        let addrs: Vec<_> = pool.addresses(pool.first()).collect();
        assert_eq!(addrs, [ip("fd00::2"), ip("fd00::3")]);
    }

    #[test]
    fn pool_gateway_outside_or_on_network_address_is_refused() {
        let pool = Pool::new(net("10.0.0.0/24"));
        assert!(matches!(
            pool.check_gateway(ip("10.0.1.1")),
            Err(DiagnosticKind::GatewayOutsideSubnet { .. })
        ));
        assert!(matches!(
            pool.check_gateway(ip("fd00::1")),
            Err(DiagnosticKind::GatewayOutsideSubnet { .. })
        ));
        assert!(matches!(
            pool.check_gateway(ip("10.0.0.0")),
            Err(DiagnosticKind::GatewayNotHost {
                which: "network",
                ..
            })
        ));
        assert!(matches!(
            pool.check_gateway(ip("10.0.0.255")),
            Err(DiagnosticKind::GatewayNotHost {
                which: "broadcast",
                ..
            })
        ));
        assert!(pool.check_gateway(ip("10.0.0.254")).is_ok());
    }

    #[test]
    fn fitting_subnet_is_the_longest_prefix_that_holds_members_and_gateway() {
        // 3 members + gateway = 4 hosts: a /29 (6 hosts); a /30 has only 2.
        assert_eq!(
            fitting_subnet(net("10.0.0.0/30"), 3),
            Some(net("10.0.0.0/29"))
        );
        // 1000 members + gateway: /22 has 1022 hosts.
        assert_eq!(
            fitting_subnet(net("10.200.0.0/24"), 1000),
            Some(net("10.200.0.0/22"))
        );
        assert_eq!(
            fitting_subnet(net("10.200.0.0/24"), 1022),
            Some(net("10.200.0.0/21"))
        );
    }
}
