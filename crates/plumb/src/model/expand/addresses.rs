//! Addresses: which interface has which address, written or assigned, and the check that no two
//! nodes share one and no interface has one twice.
//!
//! Every address is recorded as a [`Claim`] with where it comes from in the file; the check walks
//! them in file order, so the later of two claims is the one reported, naming the first.

use std::collections::HashMap;
use std::net::IpAddr;

use super::{Expander, NodeId};
use crate::model::error::DiagnosticKind;
use crate::model::names::IfName;

/// How an interface got an address.
#[derive(Debug, Clone)]
pub(super) enum Source {
    /// Written in `addresses`.
    Written,
    /// Assigned to a member by a network.
    Member(String),
    /// A network's gateway, on its bridge.
    Gateway(String),
}

/// One address of one interface, and where in the file it comes from.
#[derive(Debug, Clone)]
pub(super) struct Claim {
    pub(super) at: usize,
    pub(super) ip: IpAddr,
    pub(super) node: NodeId,
    pub(super) ifname: IfName,
    pub(super) source: Source,
}

/// Link-local and loopback addresses belong to one link or one namespace: two nodes may each have
/// `fe80::1` or `127.0.0.1` without meeting.
fn node_local(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback() || v4.is_link_local(),
        IpAddr::V6(v6) => v6.is_loopback() || v6.segments()[0] & 0xffc0 == 0xfe80,
    }
}

impl Expander<'_, '_> {
    /// Records that `ifname` in node `id` has `ip`, from `source` written at `at`.
    pub(super) fn claim(
        &mut self,
        at: usize,
        ip: IpAddr,
        id: NodeId,
        ifname: &IfName,
        source: Source,
    ) {
        self.claims.push(Claim {
            at,
            ip,
            node: id,
            ifname: ifname.clone(),
            source,
        });
    }

    fn interface_name(&self, c: &Claim) -> String {
        format!("{}:{}", self.node(c.node).name, c.ifname)
    }

    /// How the claim got its address, for the claim being reported.
    fn how(c: &Claim) -> Option<String> {
        match &c.source {
            Source::Written => None,
            Source::Member(net) => Some(format!("assigned by network `{net}`")),
            Source::Gateway(net) => Some(format!("the gateway of network `{net}`")),
        }
    }

    /// How and where the first claim got its address: "line 4", "assigned by network `lan`, line 8".
    fn how_first(&self, c: &Claim) -> String {
        let line = self.sink.line(c.at);
        match Self::how(c) {
            None => format!("line {line}"),
            Some(how) => format!("{how}, line {line}"),
        }
    }

    /// Reports an address given to two nodes, or twice to one interface.
    pub(super) fn duplicate_addresses(&mut self) {
        let mut claims = std::mem::take(&mut self.claims);
        // Stable: claims written at one place (a range, a network's members) keep their order.
        claims.sort_by_key(|c| c.at);
        let mut by_ip: HashMap<IpAddr, usize> = HashMap::new();
        let mut by_iface: HashMap<(NodeId, &IfName, IpAddr), usize> = HashMap::new();
        let mut found = Vec::new();
        for (i, c) in claims.iter().enumerate() {
            if let Some(&first) = by_iface.get(&(c.node, &c.ifname, c.ip)) {
                let kind = DiagnosticKind::AddressTwice {
                    address: c.ip,
                    interface: self.interface_name(c),
                    how: Self::how(c),
                    first: self.how_first(&claims[first]),
                };
                found.push((c.at, kind));
                continue;
            }
            by_iface.insert((c.node, &c.ifname, c.ip), i);
            match by_ip.get(&c.ip) {
                Some(&first) if claims[first].node != c.node && !node_local(c.ip) => {
                    let f = &claims[first];
                    let here = match Self::how(c) {
                        Some(how) => format!("`{}` ({how})", self.interface_name(c)),
                        None => format!("`{}`", self.interface_name(c)),
                    };
                    let first = format!("`{}` ({})", self.interface_name(f), self.how_first(f));
                    let kind = DiagnosticKind::DuplicateAddress {
                        address: c.ip,
                        here,
                        first,
                    };
                    found.push((c.at, kind));
                }
                Some(_) => {}
                None => {
                    by_ip.insert(c.ip, i);
                }
            }
        }
        for (at, kind) in found {
            self.sink.report(at, kind);
        }
    }
}
