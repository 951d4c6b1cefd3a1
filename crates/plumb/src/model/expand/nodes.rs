//! Nodes: their declarations, and the interface names each one uses (a name is one interface).

use std::collections::HashMap;

use ipnet::IpNet;

use super::addresses::Source;
use super::{Expander, NodeId};
use crate::model::error::DiagnosticKind;
use crate::model::names::{IfName, NsName};
use crate::model::raw::{NodeKey, RawInterface, RawNode, RawRoute};
use crate::model::types::{Firewall, Interface, Node, NodeRef, Route};

/// What occupies an interface name in a node.
#[derive(Debug, Clone)]
pub(super) enum Use {
    Loopback,
    Link { line: usize },
    Bridge { what: &'static str, line: usize },
    Member { network: String, line: usize },
    Port { seed: String, line: usize },
}

impl Use {
    pub(super) fn describe(&self) -> String {
        match self {
            Use::Loopback => "the loopback interface".into(),
            Use::Link { line } => format!("used by the link on line {line}"),
            Use::Bridge { what, line } => format!("the name of the {what} on line {line}"),
            Use::Member { network, line } => format!("used by network `{network}` (line {line})"),
            Use::Port { seed, line } => format!("the generated port for `{seed}` (line {line})"),
        }
    }
}

pub(super) struct NodeBuild {
    pub(super) name: NodeRef,
    pub(super) line: usize,
    pub(super) declared: Vec<RawInterface>,
    pub(super) declared_used: Vec<bool>,
    pub(super) declared_idx: HashMap<IfName, usize>,
    pub(super) implied: Vec<Interface>,
    pub(super) uses: HashMap<IfName, Use>,
    pub(super) routes: Vec<RawRoute>,
    pub(super) network_routes: Vec<Route>,
    pub(super) sysctls: Vec<(String, String)>,
    /// Where each of `sysctls` is written.
    pub(super) sysctl_at: Vec<usize>,
    pub(super) firewall: Option<Firewall>,
    pub(super) default_v4: bool,
    pub(super) default_v6: bool,
    /// Something this node depends on was refused (its own declaration had a problem, or a link
    /// or network meant to connect it): later problems in it are only consequences.
    pub(super) troubled: bool,
}

fn lo() -> IfName {
    IfName::new("lo").expect("`lo` is a valid interface name")
}

impl NodeBuild {
    pub(super) fn new(name: NodeRef, line: usize) -> Self {
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
            sysctl_at: Vec::new(),
            firewall: None,
            default_v4: false,
            default_v6: false,
            troubled: false,
        }
    }

    pub(super) fn fill(&mut self, raw: &RawNode) {
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
        self.troubled |= raw.troubled;
        self.routes.extend(raw.routes.iter().cloned());
        self.sysctls.extend(raw.sysctls.iter().cloned());
        self.sysctl_at.extend(raw.sysctl_at.iter().copied());
        if raw.firewall.is_some() {
            self.firewall.clone_from(&raw.firewall);
        }
    }

    pub(super) fn addresses(&self) -> impl Iterator<Item = &IpNet> {
        self.declared
            .iter()
            .map(|d| &d.v)
            .chain(&self.implied)
            .flat_map(|i| &i.addresses)
    }

    pub(super) fn finish(self) -> Node {
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

impl Expander<'_, '_> {
    /// Adds a node that is not declared yet.
    pub(super) fn add_node(&mut self, name: NsName, at: usize) -> usize {
        let line = self.sink.line(at);
        if let Some(prefix) = &self.prefix {
            if NsName::new(&format!("{prefix}{name}")).is_err() {
                let kind = DiagnosticKind::PrefixedNameTooLong {
                    what: "namespace",
                    name: name.to_string(),
                    prefix: prefix.clone(),
                    len: prefix.len() + name.as_str().len(),
                    max: crate::model::names::NSNAME_MAX,
                };
                self.sink.report(at, kind);
            }
        }
        let i = self.nodes.len();
        self.index.insert(name.as_str().to_owned(), i);
        self.nodes.push(NodeBuild::new(NodeRef::Ns(name), line));
        i
    }

    pub(super) fn declare(&mut self, raw: RawNode) {
        let line = self.sink.line(raw.at);
        match &raw.key {
            NodeKey::Host => {
                self.host.line = line;
                self.host.fill(&raw);
                self.claim_written(NodeId::Host, &raw);
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
                    let i = self.add_node(name.clone(), raw.at);
                    self.nodes[i].fill(&raw);
                    self.claim_written(NodeId::Ns(i), &raw);
                }
            }
        }
    }

    /// Records the addresses written for the interfaces of `raw`, declared as node `id`.
    fn claim_written(&mut self, id: NodeId, raw: &RawNode) {
        for iface in &raw.interfaces {
            for (addr, &at) in iface.v.addresses.iter().zip(&iface.addr_at) {
                self.claim(at, addr.addr(), id, &iface.v.name, Source::Written);
            }
        }
    }

    /// Takes interface name `name` in node `id` for `what`; reports and refuses a second use.
    pub(super) fn occupy(&mut self, id: NodeId, name: &IfName, what: Use, at: usize) -> bool {
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
        if let (NodeId::Host, Some(prefix)) = (id, &self.prefix) {
            let generated = matches!(what, Use::Port { .. } | Use::Loopback);
            let len = prefix.len() + name.as_str().len();
            if !generated && len > crate::model::names::IFNAME_MAX {
                let kind = DiagnosticKind::PrefixedNameTooLong {
                    what: "interface",
                    name: name.to_string(),
                    prefix: prefix.clone(),
                    len,
                    max: crate::model::names::IFNAME_MAX,
                };
                self.sink.report(at, kind);
                return false;
            }
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
    pub(super) fn attach(
        &mut self,
        id: NodeId,
        name: &IfName,
        what: Use,
        at: usize,
        mtu: Option<u32>,
        addrs: &[IpNet],
    ) -> bool {
        if !self.occupy(id, name, what, at) {
            return false;
        }
        let node = self.node_mut(id);
        if let Some(&i) = node.declared_idx.get(name) {
            node.declared_used[i] = true;
            let iface = &mut node.declared[i].v;
            iface.mtu = iface.mtu.or(mtu);
            iface.addresses.extend_from_slice(addrs);
        } else {
            node.implied.push(Interface {
                name: name.clone(),
                addresses: addrs.to_vec(),
                mtu,
                mac: None,
                up: true,
            });
        }
        true
    }
}
