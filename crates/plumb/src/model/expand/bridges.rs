//! Bridges: `[bridges.*]` and the bridges `[networks.*]` make, which share one set of names.

use super::addresses::Source;
use super::nodes::Use;
use super::{Expander, NodeId};
use crate::model::error::DiagnosticKind;
use crate::model::names::IfName;
use crate::model::raw::{RawBridge, RawNetwork};
use crate::model::types::Bridge;

pub(super) struct BridgeInfo {
    pub(super) name: IfName,
    pub(super) node: NodeId,
    pub(super) what: &'static str,
    pub(super) line: usize,
    /// Ports made by links so far.
    pub(super) ports: usize,
}

impl Expander<'_, '_> {
    pub(super) fn bridge(&mut self, raw: RawBridge) {
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
                    self.refused.insert(raw.name.as_str());
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
            ports: 0,
        };
        self.bridge_names.insert(raw.name.to_string(), info);
        for a in &raw.addresses {
            self.claim(a.at, a.v.addr(), id, &raw.name, Source::Written);
        }
        self.bridges.push(Bridge {
            name: raw.name,
            node: self.node(id).name.clone(),
            addresses: raw.addresses.into_iter().map(|a| a.v).collect(),
            mtu: raw.mtu,
            stp: raw.stp,
        });
    }

    pub(super) fn network_name(&mut self, net: &RawNetwork) {
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
            ports: 0,
        };
        self.bridge_names.insert(net.name.to_string(), info);
    }
}
