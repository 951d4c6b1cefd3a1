//! Expansion stage: the lab as written -> the typed, expanded [`Topology`].
//!
//! Resolves every reference (link endpoints, bridge nodes, network members, probes), expands
//! `[networks.*]` into a bridge, veth pairs, addresses and default routes, and checks what needs
//! the whole lab: duplicate names, interfaces used twice, overlapping subnets, reachable gateways.
//! Every name lookup is a hash lookup, so a network of a thousand members costs a thousand steps.
//!
//! One file per concern: `nodes` (declarations and the interface names each node uses),
//! `bridges`, `links` (endpoints resolved into veth pairs), `networks` (a network expanded into a
//! bridge, members, addresses and routes) with its address `pool`, `addresses` (no address on two
//! nodes or twice on one interface), and `checks` (what can only be checked once everything is
//! placed: unconnected interfaces, routes, probes).
//!
//! A problem that may only follow from another one (an interface whose link was refused, a route
//! in a node whose network was refused) is reported as a consequence, listed after the others.

mod addresses;
mod bridges;
mod checks;
mod links;
mod networks;
mod nodes;
mod prefix;
mod sysctls;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet};

use super::error::Sink;
use super::names::LabName;
use super::raw::{RawLab, Refused};
use super::types::{Bridge, Link, Network, NodeRef, Topology};
use super::Machine;

use addresses::Claim;
use bridges::BridgeInfo;
use nodes::NodeBuild;

/// Expands and cross-checks `raw`. `None` when any problem was reported (here or before).
pub(crate) fn expand(
    raw: RawLab,
    sink: &mut Sink<'_>,
    machine: Option<&dyn Machine>,
) -> Option<Topology> {
    let lab = match &raw.name {
        Some(n) => n.v.clone(),
        // Reported already; a stand-in lets the rest of the file be checked.
        None => LabName::new("lab").expect("`lab` is a valid lab name"),
    };
    let mut x = Expander::new(sink, lab, raw.refused);
    x.prefix = raw.prefix.map(|p| p.v);
    for node in raw.nodes {
        x.declare(node);
    }
    let members: Vec<_> = raw.networks.iter().map(|n| x.members(n)).collect();
    for (node, ifname) in raw.broken_ends.iter().filter_map(|e| split_end(e)) {
        x.failed_end(&node, &ifname);
    }
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
    x.duplicate_addresses();
    x.unconnected();
    x.routes();
    if let Some(m) = machine {
        x.sysctls(m);
    }
    let expects = raw
        .expects
        .into_iter()
        .filter_map(|e| x.expect(e))
        .collect();
    if !x.sink.is_clean() {
        return None;
    }
    let host_uses = std::mem::take(&mut x.host.uses);
    let mut topo = Topology {
        name: x.lab,
        host: x.host.finish(),
        nodes: x.nodes.into_iter().map(NodeBuild::finish).collect(),
        bridges: x.bridges,
        links: x.links,
        networks: x.networks,
        expects,
        prefix: None,
        node_index: Default::default(),
    };
    if let Some(p) = &x.prefix {
        prefix::apply(&mut topo, p, &host_uses);
    }
    Some(topo.index_nodes())
}

/// The most ports a Linux bridge takes: `BR_MAX_PORTS` is 1024 (`1 << BR_PORT_BITS`, in the
/// kernel's net/bridge/br_private.h) and port number 0 is reserved, so adding the 1024th port
/// fails with EXFULL.
const BRIDGE_MAX_PORTS: usize = 1023;

/// A node of the lab being built: the host or an index into `Expander::nodes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum NodeId {
    Host,
    Ns(usize),
}

struct Expander<'a, 's> {
    sink: &'a mut Sink<'s>,
    lab: LabName,
    host: NodeBuild,
    nodes: Vec<NodeBuild>,
    index: HashMap<String, usize>,
    refused: Refused,
    /// `(node, ifname)` named by a link or a network that was refused: that such an interface
    /// is left unconnected is only a consequence.
    failed_ends: HashSet<(String, String)>,
    bridge_names: HashMap<String, BridgeInfo>,
    bridges: Vec<Bridge>,
    links: Vec<Link>,
    networks: Vec<Network>,
    /// Every address of every interface, with where it comes from.
    claims: Vec<Claim>,
    /// `prefix`, put before namespace and host-side interface names once all is checked.
    prefix: Option<String>,
}

impl<'a, 's> Expander<'a, 's> {
    fn new(sink: &'a mut Sink<'s>, lab: LabName, refused: impl Into<Refused>) -> Self {
        Expander {
            sink,
            lab,
            host: NodeBuild::new(NodeRef::Host, 0),
            nodes: Vec::new(),
            index: HashMap::new(),
            refused: refused.into(),
            failed_ends: HashSet::new(),
            bridge_names: HashMap::new(),
            bridges: Vec::new(),
            links: Vec::new(),
            networks: Vec::new(),
            claims: Vec::new(),
            prefix: None,
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

    /// Marks what a refused link end or network member names: the node may be missing what the
    /// file meant it to have, so problems found in it later are only consequences.
    fn failed_end(&mut self, node: &str, ifname: &str) {
        if let Some(id) = self.lookup(node) {
            self.node_mut(id).troubled = true;
        }
        self.failed_ends
            .insert((node.to_owned(), ifname.to_owned()));
    }

    fn lookup(&self, name: &str) -> Option<NodeId> {
        if name == "host" {
            return Some(NodeId::Host);
        }
        self.index.get(name).map(|&i| NodeId::Ns(i))
    }
}

/// `NODE:IFNAME` as two strings, as written.
fn split_end(text: &str) -> Option<(String, String)> {
    let (node, ifname) = text.rsplit_once(':')?;
    Some((node.to_owned(), ifname.to_owned()))
}
