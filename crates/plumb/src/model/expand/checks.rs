//! What can only be checked once every node, link and network is placed: declared interfaces
//! nothing connects, routes (is the `dev` there, is the `via` reachable), and the nodes probes name.

use std::collections::HashMap;
use std::net::IpAddr;

use ipnet::IpNet;

use super::Expander;
use crate::model::error::DiagnosticKind;
use crate::model::raw::RawExpect;
use crate::model::types::{Expect, NodeRef, Target};

impl Expander<'_, '_> {
    pub(super) fn unconnected(&mut self) {
        let mut found = Vec::new();
        for node in std::iter::once(&self.host).chain(&self.nodes) {
            for (d, used) in node.declared.iter().zip(&node.declared_used) {
                if !used {
                    let (node, name) = (node.name.to_string(), d.v.name.to_string());
                    // A link or network meant to connect it was refused: that is the error.
                    let consequence = self.failed_ends.contains(&(node.clone(), name.clone()));
                    let kind = DiagnosticKind::UnconnectedInterface { node, name };
                    found.push((d.at, kind, consequence));
                }
            }
        }
        for (at, kind, consequence) in found {
            if consequence {
                self.sink.report_consequence(at, kind);
            } else {
                self.sink.report(at, kind);
            }
        }
    }

    pub(super) fn routes(&mut self) {
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
                        found.push((r.dev_at, kind, node.troubled));
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
                        found.push((r.via_at, kind, node.troubled));
                    }
                }
            }
        }
        // In a node that is missing something the file meant it to have (a refused address, a
        // refused link or network), an unreachable gateway or a missing `dev` is only a
        // consequence.
        for (at, kind, consequence) in found {
            if consequence {
                self.sink.report_consequence(at, kind);
            } else {
                self.sink.report(at, kind);
            }
        }
    }

    pub(super) fn expect(&mut self, e: RawExpect) -> Option<Expect> {
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
