//! What the topology wants, by node and interface name: the left side of the diff.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use ipnet::IpNet;

use super::step::{RouteSpec, Step, VethEnd};
use crate::inspect::LinkKind;
use crate::model::names::IfName;
use crate::model::{Endpoint, Interface, MacAddr, NodeRef, Topology};
use crate::ownership;

/// The MTU the kernel gives a new veth or bridge, and the one plumb sets when the file says
/// none: so removing an `mtu` from the file converges back to it.
pub const DEFAULT_MTU: u32 = 1500;

/// One interface the topology wants in a node.
#[derive(Debug, Clone)]
pub(crate) struct WantLink {
    pub kind: LinkKind,
    /// For veth ends: the pair's identifier.
    pub link_id: Option<String>,
    pub mtu: Option<u32>,
    pub mac: Option<MacAddr>,
    pub master: Option<IfName>,
    /// A port of an `isolated = true` network's bridge.
    pub isolated: bool,
    /// For a bridge: spanning tree.
    pub stp: Option<bool>,
    pub up: bool,
    pub addrs: Vec<IpNet>,
}

/// Everything the topology wants.
pub(crate) struct Desired {
    /// Nodes in creation order (host first).
    pub nodes: Vec<NodeRef>,
    pub links: HashMap<NodeRef, BTreeMap<String, WantLink>>,
    /// Bridge creation steps, in order.
    pub bridges: Vec<Step>,
    /// Veth creation steps, in order.
    pub veths: Vec<Step>,
}

pub(crate) fn desired(topo: &Topology) -> Desired {
    let lab = &topo.name;
    let mut nodes = vec![NodeRef::Host];
    nodes.extend(topo.nodes.iter().map(|n| n.name.clone()));
    let mut links: HashMap<NodeRef, BTreeMap<String, WantLink>> = HashMap::new();
    // Interfaces by node and name: the host alone may list thousands (every bridge port).
    let by_name: HashMap<(&NodeRef, &IfName), &Interface> = std::iter::once(&topo.host)
        .chain(&topo.nodes)
        .flat_map(|n| n.interfaces.iter().map(move |i| ((&n.name, &i.name), i)))
        .collect();
    let iface = |node: &NodeRef, name: &IfName| by_name.get(&(node, name)).copied();
    let mut bridges = Vec::new();
    for b in &topo.bridges {
        let ipv6 = b.addresses.iter().any(|a| matches!(a, IpNet::V6(_)));
        bridges.push(Step::CreateBridge {
            node: b.node.clone(),
            name: b.name.clone(),
            mtu: b.mtu,
            stp: b.stp,
            mac: ownership::bridge_mac(lab, &b.node, &b.name),
            ipv6,
        });
        links.entry(b.node.clone()).or_default().insert(
            b.name.to_string(),
            WantLink {
                kind: LinkKind::Bridge,
                link_id: None,
                mtu: Some(b.mtu.unwrap_or(DEFAULT_MTU)),
                mac: None,
                master: None,
                isolated: false,
                stp: Some(b.stp),
                up: true,
                addrs: b.addresses.clone(),
            },
        );
    }
    let mut veths = Vec::new();
    for l in &topo.links {
        let end = |e: &Endpoint| {
            let i = iface(&e.node, &e.ifname);
            let addrs = i.map(|i| i.addresses.clone()).unwrap_or_default();
            VethEnd {
                node: e.node.clone(),
                name: e.ifname.clone(),
                mtu: i.and_then(|i| i.mtu).or(l.mtu),
                mac: i.and_then(|i| i.mac),
                master: e.bridge.clone(),
                ipv6: addrs.iter().any(|a| matches!(a, IpNet::V6(_))),
            }
        };
        let (a, b) = (end(&l.a), end(&l.b));
        let id = ownership::link_id((&a.node, &a.name), (&b.node, &b.name));
        for (e, src) in [(&a, &l.a), (&b, &l.b)] {
            let i = iface(&src.node, &src.ifname);
            links.entry(e.node.clone()).or_default().insert(
                e.name.to_string(),
                WantLink {
                    kind: LinkKind::Veth,
                    link_id: Some(id.clone()),
                    mtu: Some(e.mtu.unwrap_or(DEFAULT_MTU)),
                    mac: e.mac,
                    master: e.master.clone(),
                    isolated: e
                        .master
                        .as_ref()
                        .is_some_and(|m| topo.networks.iter().any(|n| n.isolated && &n.name == m)),
                    stp: None,
                    up: i.map(|i| i.up).unwrap_or(true),
                    addrs: i.map(|i| i.addresses.clone()).unwrap_or_default(),
                },
            );
        }
        veths.push(Step::CreateVeth { a, b, link_id: id });
    }
    // `lo` settings (addresses on loopback).
    for n in std::iter::once(&topo.host).chain(&topo.nodes) {
        for i in &n.interfaces {
            if i.name.as_str() == "lo" {
                links.entry(n.name.clone()).or_default().insert(
                    "lo".into(),
                    WantLink {
                        kind: LinkKind::Loopback,
                        link_id: None,
                        mtu: i.mtu,
                        mac: None,
                        master: None,
                        isolated: false,
                        stp: None,
                        up: true,
                        addrs: i.addresses.clone(),
                    },
                );
            }
        }
    }
    Desired {
        nodes,
        links,
        bridges,
        veths,
    }
}

/// The routes the topology wants in `node`.
pub(crate) fn route_specs(topo: &Topology, node: &NodeRef) -> Vec<RouteSpec> {
    let Some(n) = topo.node(node) else {
        return Vec::new();
    };
    n.routes
        .iter()
        .map(|r| {
            let v6 = matches!(r.via, Some(IpAddr::V6(_)))
                || r.to.is_some_and(|t| matches!(t, IpNet::V6(_)));
            let dst = r.to.unwrap_or_else(|| {
                if v6 {
                    IpNet::V6(ipnet::Ipv6Net::default())
                } else {
                    IpNet::V4(ipnet::Ipv4Net::default())
                }
            });
            RouteSpec {
                dst: dst.trunc(),
                via: r.via,
                dev: r.dev.as_ref().map(|d| d.to_string()),
            }
        })
        .collect()
}

/// The sysctls a node needs: those the file sets, plus forwarding in the host for each IP
/// family whose subnets have NAT or published ports (as `nat = true` promises):
/// `net.ipv4.ip_forward` for IPv4, `net.ipv6.conf.all.forwarding` for IPv6.
pub(crate) fn sysctls_of(topo: &Topology, node: &NodeRef) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = topo
        .node(node)
        .map(|n| n.sysctls.clone())
        .unwrap_or_default();
    if *node != NodeRef::Host {
        return out;
    }
    for (key, ipv6) in [
        ("net.ipv4.ip_forward", false),
        ("net.ipv6.conf.all.forwarding", true),
    ] {
        if crate::firewall::needs_forwarding(topo, ipv6) && !out.iter().any(|(k, _)| k == key) {
            out.push((key.to_string(), "1".to_string()));
        }
    }
    out
}

/// Link-local IPv6 and loopback addresses: the kernel's own, never added or removed by plumb.
pub(crate) fn is_kernel_address(addr: &IpNet) -> bool {
    match addr {
        IpNet::V6(v6) => (v6.addr().segments()[0] & 0xffc0) == 0xfe80 || v6.addr().is_loopback(),
        IpNet::V4(v4) => v4.addr().is_loopback(),
    }
}
