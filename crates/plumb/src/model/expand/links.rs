//! Links: each `[[links]]` endpoint resolved to a node's interface or a bridge port, then the
//! veth pair with both ends placed.

use super::nodes::Use;
use super::{split_end, Expander, NodeId, BRIDGE_MAX_PORTS};
use crate::model::error::DiagnosticKind;
use crate::model::names::IfName;
use crate::model::port_name::{host_port_name, port_seed};
use crate::model::raw::At;
use crate::model::types::{Endpoint, Link};

/// One resolved link endpoint, before port names are generated.
pub(super) enum End {
    Node(NodeId, IfName),
    /// A bare bridge name: a new port with a generated name.
    BarePort(String),
    /// `BRIDGE:IFNAME`.
    NamedPort(String, IfName),
}

impl Expander<'_, '_> {
    pub(super) fn resolve(&mut self, end: &At<String>) -> Option<End> {
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
    pub(super) fn identity(&self, end: &End) -> (NodeId, IfName) {
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
    pub(super) fn endpoint(&self, end: &End, other: &End) -> (NodeId, Endpoint, Option<String>) {
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

    /// Counts a new port of the bridge `end` names, if it names one; reports the 1024th.
    fn count_port(&mut self, end: &End, at: usize) {
        let (End::BarePort(bridge) | End::NamedPort(bridge, _)) = end else {
            return;
        };
        let Some(info) = self.bridge_names.get_mut(bridge) else {
            return;
        };
        info.ports += 1;
        if info.ports == BRIDGE_MAX_PORTS + 1 {
            let kind = DiagnosticKind::TooManyPorts {
                bridge: bridge.clone(),
                ports: info.ports,
                members: 0,
            };
            self.sink.report(at, kind);
        }
    }

    pub(super) fn link(&mut self, ends: &[At<String>; 2], mtu: Option<u32>) {
        let line = self.sink.line(ends[0].at);
        let (a, b) = (self.resolve(&ends[0]), self.resolve(&ends[1]));
        let (Some(a), Some(b)) = (a, b) else {
            self.failed_link(ends);
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
            self.failed_link(ends);
            return;
        }
        let what = |seed: Option<String>| match seed {
            Some(seed) => Use::Port { seed, line },
            None => Use::Link { line },
        };
        let a_ok = self.attach(a_id, &a_end.ifname, what(a_seed), ends[0].at, mtu, &[]);
        let b_ok = self.attach(b_id, &b_end.ifname, what(b_seed), ends[1].at, mtu, &[]);
        if a_ok && b_ok {
            for (end, at) in [(&a, ends[0].at), (&b, ends[1].at)] {
                self.count_port(end, at);
            }
            self.links.push(Link {
                a: a_end,
                b: b_end,
                mtu,
            });
        } else {
            self.failed_link(ends);
        }
    }

    /// Marks the interfaces a refused link names.
    fn failed_link(&mut self, ends: &[At<String>; 2]) {
        for end in ends {
            if let Some((node, ifname)) = split_end(&end.v) {
                self.failed_end(&node, &ifname);
            }
        }
    }
}
