//! Stable addresses for network members, with no state file.
//!
//! From the file alone, a network's members get the lowest free addresses of its subnet in
//! member order. Once the lab is up, the kernel remembers what each member has, and this is
//! what `settle` reads: a member keeps the address its interface has while that address is
//! still valid for the network, and only members without one get new addresses. So removing a
//! member never renumbers the others, and a member added later gets a free address instead of
//! taking one in use (what Docker's and CNI's IPAM do with a database, done here from the
//! kernel's own state).
//!
//! The rule, per subnet of each network (the IPv4 and IPv6 subnets of a dual-stack network are
//! settled independently: a member may keep one family's address and get a new one of the
//! other), members in file order:
//! 1. a member keeps the first address of its network interface (in its namespace, which
//!    must belong to the lab) that is in the subnet with the subnet's prefix length, is a host
//!    address of the subnet, is not the subnet's gateway, is not written anywhere in the file,
//!    and was not kept by an earlier member;
//! 2. every other member gets the lowest address of the subnet that is none of those (not the
//!    gateway, not written in the file, not kept, not given to an earlier member).
//!
//! With nothing up, rule 1 keeps nothing and rule 2 gives exactly the file's own addresses, so
//! a fresh `up` is deterministic; `up`, `check` and `ping` settle against the same kernel
//! state and so agree on every member's address.

use std::borrow::Cow;
use std::collections::HashSet;
use std::net::IpAddr;

use ipnet::IpNet;

use crate::inspect::Snapshot;
use crate::model::names::IfName;
use crate::model::pool::Pool;
use crate::model::{Network, NodeRef, Subnet, Topology};

/// `topo` with every network member's addresses settled against the kernel's state (see the
/// module's rule). Borrowed when nothing moves, as for a fresh `up`.
pub fn settle<'t>(topo: &'t Topology, snap: &Snapshot) -> Cow<'t, Topology> {
    let written = written_addresses(topo);
    // (network, subnet, the subnet's settled addresses) wherever they differ from the file's.
    let mut changes: Vec<(usize, usize, Vec<IpAddr>)> = Vec::new();
    for (n, net) in topo.networks.iter().enumerate() {
        for (s, subnet) in net.subnets.iter().enumerate() {
            let settled = settle_subnet(topo, net, subnet, snap, &written);
            if settled != subnet.addresses {
                changes.push((n, s, settled));
            }
        }
    }
    if changes.is_empty() {
        return Cow::Borrowed(topo);
    }
    let mut out = topo.clone();
    for (n, s, settled) in changes {
        let net = &out.networks[n];
        let subnet = &net.subnets[s];
        let prefix = subnet.net.prefix_len();
        let moves: Vec<(NodeRef, IpAddr, IpAddr)> = net
            .members
            .iter()
            .zip(&subnet.addresses)
            .zip(&settled)
            .filter(|((_, old), new)| old != new)
            .map(|((m, old), new)| (NodeRef::Ns(m.clone()), *old, *new))
            .collect();
        let ifname = net.interface.clone();
        for (member, old, new) in moves {
            let Some(node) = out.node_mut(&member) else {
                continue;
            };
            let Some(iface) = node.interfaces.iter_mut().find(|i| i.name == ifname) else {
                continue;
            };
            for a in &mut iface.addresses {
                if a.addr() == old && a.prefix_len() == prefix {
                    *a = IpNet::new(new, prefix).expect("the subnet's own prefix length fits");
                }
            }
        }
        out.networks[n].subnets[s].addresses = settled;
    }
    Cow::Owned(out)
}

/// Every address the file writes itself (interfaces, bridges, gateways), that is every address
/// of the topology except the members' own.
fn written_addresses(topo: &Topology) -> HashSet<IpAddr> {
    let members: HashSet<IpAddr> = topo
        .networks
        .iter()
        .flat_map(|n| &n.subnets)
        .flat_map(|s| s.addresses.iter().copied())
        .collect();
    let nodes = std::iter::once(&topo.host).chain(&topo.nodes);
    nodes
        .flat_map(|n| &n.interfaces)
        .flat_map(|i| &i.addresses)
        .chain(topo.bridges.iter().flat_map(|b| &b.addresses))
        .map(IpNet::addr)
        .filter(|a| !members.contains(a))
        .chain(
            topo.networks
                .iter()
                .flat_map(|n| &n.subnets)
                .map(|s| s.gateway),
        )
        .collect()
}

/// The settled addresses of one network's members in one of its subnets, in member order.
fn settle_subnet(
    topo: &Topology,
    net: &Network,
    subnet: &Subnet,
    snap: &Snapshot,
    written: &HashSet<IpAddr>,
) -> Vec<IpAddr> {
    let pool = Pool::new(subnet.net);
    let usable = |a: IpAddr| pool.contains_host(a) && a != subnet.gateway && !written.contains(&a);
    let mut taken: HashSet<IpAddr> = HashSet::new();
    let mut kept: Vec<Option<IpAddr>> = Vec::with_capacity(net.members.len());
    for member in &net.members {
        let current = current_addresses(topo, snap, member, &net.interface, subnet.net);
        let keep = current
            .into_iter()
            .find(|&a| usable(a) && !taken.contains(&a));
        if let Some(a) = keep {
            taken.insert(a);
        }
        kept.push(keep);
    }
    let mut free = pool
        .addresses(subnet.gateway)
        .filter(|a| !written.contains(a) && !taken.contains(a));
    kept.into_iter()
        .zip(&subnet.addresses)
        .map(|(k, fresh)| {
            // The pool always has enough: the file's own assignment fits without any written
            // address, and every kept address displaces exactly one member.
            k.or_else(|| free.next()).unwrap_or(*fresh)
        })
        .collect()
}

/// The addresses `member`'s network interface `ifname` has in `subnet` (with the subnet's
/// prefix length), if its namespace belongs to the lab.
fn current_addresses(
    topo: &Topology,
    snap: &Snapshot,
    member: &crate::model::names::NsName,
    ifname: &IfName,
    subnet: IpNet,
) -> Vec<IpAddr> {
    let Some(ns) = snap.namespaces.get(member) else {
        return Vec::new();
    };
    let Ok(state) = &ns.state else {
        return Vec::new();
    };
    if state.owner() != Some(topo.name.as_str()) {
        return Vec::new();
    }
    let Some(link) = state.link(ifname.as_str()) else {
        return Vec::new();
    };
    state
        .addrs_of(link.index)
        .filter(|a| a.prefix_len() == subnet.prefix_len() && subnet.contains(&a.addr()))
        .map(IpNet::addr)
        .collect()
}
