//! The pure stage: `diff(desired Topology, observed Snapshot) -> Plan`, an ordered list of steps.
//! No I/O happens here, so every decision about what to create, change or delete is testable
//! without privileges.
//!
//! Invariants of a plan:
//! - it never deletes or changes an object that does not carry the lab's tag; a desired object
//!   whose name is taken by a foreign one is a [`Conflict`], and a plan with conflicts must not run;
//! - steps are ordered so that each one's prerequisites come earlier: deletions first, then
//!   namespaces, sysctls, bridges, veth pairs, link settings, addresses, routes;
//! - applying a plan and planning again against the result yields an empty plan.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;

use crate::inspect::{LinkKind, NsState, Snapshot, TAG_PREFIX};
use crate::model::names::{IfName, LabName, NsName};
use crate::model::{MacAddr, NodeRef, Topology};
use crate::netlink::route::RTPROT_PLUMB;

/// FNV-1a, 64 bit: a stable hash for identifiers derived from names.
fn fnv1a(data: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in data.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The link group of a lab's host-side interfaces, so that `down` removes them in one request.
/// The high half spells "pl"; `down` checks that every member carries the lab's tag before it
/// deletes by group, since two labs may hash alike.
pub fn lab_group(lab: &LabName) -> u32 {
    0x706c_0000 | (fnv1a(lab.as_str()) as u32 & 0xffff)
}

/// The tag written into the alias of a lab's bridges, and of `lo` in its namespaces.
pub fn tag(lab: &LabName) -> String {
    format!("{TAG_PREFIX}{lab}")
}

/// The tag of one end of a veth pair: the lab, plus an identifier of the pair's definition, so
/// that a changed definition (other ends, other MTU) is seen and the pair rebuilt, and so that
/// `show` can pair the ends without asking the kernel for nsids.
pub fn veth_tag(lab: &LabName, link_id: &str) -> String {
    format!("{TAG_PREFIX}{lab} link={link_id}")
}

/// The `link=` identifier in a veth end's alias.
pub fn alias_link_id(alias: &str) -> Option<&str> {
    alias.split(' ').find_map(|w| w.strip_prefix("link="))
}

/// A fixed, locally administered MAC for a bridge: the kernel otherwise re-derives the bridge's
/// MAC from its ports whenever one is added.
pub fn bridge_mac(lab: &LabName, node: &NodeRef, name: &IfName) -> MacAddr {
    let h = fnv1a(&format!("{lab}/{node}/{name}")).to_be_bytes();
    MacAddr([0x02, h[0], h[1], h[2], h[3], h[4]])
}

/// One end of a veth pair to create.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct VethEnd {
    /// Namespace of the end.
    pub node: NodeRef,
    /// Its name.
    pub name: IfName,
    /// MTU.
    pub mtu: Option<u32>,
    /// MAC.
    pub mac: Option<MacAddr>,
    /// Bridge to attach to.
    pub master: Option<IfName>,
    /// False when the end carries no IPv6 address: IPv6 address generation is then turned off.
    pub ipv6: bool,
}

/// A change to an existing interface.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct LinkSet {
    /// New administrative state.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub up: Option<bool>,
    /// New MTU.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    /// New MAC.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mac: Option<MacAddr>,
    /// New bridge (`Some(None)`: leave the bridge).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub master: Option<Option<IfName>>,
    /// New bridge-port isolation (`isolated = true` networks).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub isolated: Option<bool>,
}

/// A route as the plan handles it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
pub struct RouteSpec {
    /// Destination; `0.0.0.0/0` or `::/0` for default.
    pub dst: IpNet,
    /// Gateway.
    pub via: Option<IpAddr>,
    /// Output interface.
    pub dev: Option<String>,
}

/// One kernel change. Executed in plan order; consecutive steps of one kind form a batch that
/// the backend may pipeline.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Step {
    /// Delete every host interface in the lab's link group (all carry the lab's tag).
    DeleteGroup {
        /// The group.
        group: u32,
    },
    /// Delete an interface the lab owns (a veth's peer goes with it).
    DeleteLink {
        /// Where.
        node: NodeRef,
        /// Which.
        name: String,
    },
    /// Delete a named namespace the lab owns.
    DeleteNs {
        /// Which.
        ns: NsName,
    },
    /// Remove a route the lab installed.
    DelRoute {
        /// Where.
        node: NodeRef,
        /// Which.
        route: RouteSpec,
    },
    /// Remove an address from an interface the lab owns.
    DelAddr {
        /// Where.
        node: NodeRef,
        /// Interface.
        dev: String,
        /// Address.
        addr: IpNet,
    },
    /// Create a named namespace, tag it (its `lo` alias) and bring `lo` up.
    CreateNs {
        /// Which.
        ns: NsName,
    },
    /// Set a sysctl inside a node.
    Sysctl {
        /// Where.
        node: NodeRef,
        /// Key (`net.ipv4.ip_forward`).
        key: String,
        /// Value.
        value: String,
    },
    /// Create a tagged bridge.
    CreateBridge {
        /// Where.
        node: NodeRef,
        /// Name.
        name: IfName,
        /// MTU.
        mtu: Option<u32>,
        /// Spanning tree.
        stp: bool,
        /// Fixed MAC.
        mac: MacAddr,
        /// Carries IPv6 addresses.
        ipv6: bool,
    },
    /// Create a tagged veth pair, each end in its namespace with its final name.
    CreateVeth {
        /// First end.
        a: VethEnd,
        /// Second end.
        b: VethEnd,
        /// The pair's identifier (in both ends' alias).
        link_id: String,
    },
    /// Change an existing interface.
    SetLink {
        /// Where.
        node: NodeRef,
        /// Which.
        name: String,
        /// What.
        set: LinkSet,
    },
    /// Add an address.
    AddAddr {
        /// Where.
        node: NodeRef,
        /// Interface.
        dev: String,
        /// Address.
        addr: IpNet,
    },
    /// Add a route.
    AddRoute {
        /// Where.
        node: NodeRef,
        /// Which.
        route: RouteSpec,
    },
    /// Replace the lab's nftables table in a node, atomically (one `nft -j` transaction).
    Firewall {
        /// Where.
        node: NodeRef,
        /// `plumb-LAB`.
        table: String,
        /// The table's version marker.
        version: String,
        /// The nftables JSON batch.
        batch: String,
    },
    /// Remove the lab's nftables table from a node.
    DeleteFirewall {
        /// Where.
        node: NodeRef,
        /// `plumb-LAB`.
        table: String,
    },
}

impl Step {
    /// Steps of the same kind run in one batch.
    pub fn kind(&self) -> &'static str {
        match self {
            Step::DeleteGroup { .. } => "delete-group",
            Step::DeleteLink { .. } => "delete-link",
            Step::DeleteNs { .. } => "delete-netns",
            Step::DelRoute { .. } => "del-route",
            Step::DelAddr { .. } => "del-addr",
            Step::CreateNs { .. } => "create-netns",
            Step::Sysctl { .. } => "sysctl",
            Step::CreateBridge { .. } => "create-bridge",
            Step::CreateVeth { .. } => "create-veth",
            Step::SetLink { .. } => "set-link",
            Step::AddAddr { .. } => "add-addr",
            Step::AddRoute { .. } => "add-route",
            Step::Firewall { .. } => "firewall",
            Step::DeleteFirewall { .. } => "delete-firewall",
        }
    }

    /// The step that undoes this one, for rollback of objects this run created.
    pub fn inverse(&self) -> Option<Step> {
        match self {
            Step::CreateNs { ns } => Some(Step::DeleteNs { ns: ns.clone() }),
            Step::CreateBridge { node, name, .. } => Some(Step::DeleteLink {
                node: node.clone(),
                name: name.to_string(),
            }),
            Step::CreateVeth { a, .. } => Some(Step::DeleteLink {
                node: a.node.clone(),
                name: a.name.to_string(),
            }),
            Step::AddAddr { node, dev, addr } => Some(Step::DelAddr {
                node: node.clone(),
                dev: dev.clone(),
                addr: *addr,
            }),
            Step::AddRoute { node, route } => Some(Step::DelRoute {
                node: node.clone(),
                route: route.clone(),
            }),
            Step::Firewall { node, table, .. } => Some(Step::DeleteFirewall {
                node: node.clone(),
                table: table.clone(),
            }),
            _ => None,
        }
    }
}

fn opt<T: fmt::Display>(label: &str, v: &Option<T>) -> String {
    v.as_ref()
        .map(|v| format!(" {label} {v}"))
        .unwrap_or_default()
}

fn ns_arg(node: &NodeRef) -> String {
    match node {
        NodeRef::Host => String::new(),
        NodeRef::Ns(n) => format!("-n {n} "),
    }
}

impl fmt::Display for Step {
    /// The step as the `ip` command it replaces.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::DeleteGroup { group } => write!(f, "ip link del group {group}"),
            Step::DeleteLink { node, name } => write!(f, "ip {}link del {name}", ns_arg(node)),
            Step::DeleteNs { ns } => write!(f, "ip netns del {ns}"),
            Step::DelRoute { node, route } => write!(f, "ip {}route del {}", ns_arg(node), route),
            Step::DelAddr { node, dev, addr } => {
                write!(f, "ip {}addr del {addr} dev {dev}", ns_arg(node))
            }
            Step::CreateNs { ns } => write!(f, "ip netns add {ns}"),
            Step::Sysctl { node, key, value } => match node {
                NodeRef::Host => write!(f, "sysctl -w {key}={value}"),
                NodeRef::Ns(n) => write!(f, "ip netns exec {n} sysctl -w {key}={value}"),
            },
            Step::CreateBridge {
                node,
                name,
                mtu,
                stp,
                ..
            } => write!(
                f,
                "ip {}link add {name}{} type bridge stp_state {}",
                ns_arg(node),
                opt("mtu", mtu),
                u8::from(*stp)
            ),
            Step::CreateVeth { a, b, .. } => {
                // Written from the host's side when one end is there, as the seed writes it
                // (`ip link add veth1 type veth peer name eth1000 netns ns1`): `ip` has no name
                // for "the host" as a peer namespace.
                let (a, b) = if b.node == NodeRef::Host && a.node != NodeRef::Host {
                    (b, a)
                } else {
                    (a, b)
                };
                write!(f, "ip {}link add {}", ns_arg(&a.node), a.name)?;
                write!(f, "{} type veth peer name {}", opt("mtu", &a.mtu), b.name)?;
                if b.node != a.node {
                    write!(f, " netns {}", b.node)?;
                }
                if let Some(m) = &a.master {
                    write!(f, "; master {m}")?;
                }
                if let Some(m) = &b.master {
                    write!(f, "; peer master {m}")?;
                }
                Ok(())
            }
            Step::SetLink { node, name, set } => {
                write!(f, "ip {}link set {name}", ns_arg(node))?;
                if let Some(m) = set.mtu {
                    write!(f, " mtu {m}")?;
                }
                if let Some(m) = set.mac {
                    write!(f, " address {m}")?;
                }
                match &set.master {
                    Some(Some(m)) => write!(f, " master {m}")?,
                    Some(None) => write!(f, " nomaster")?,
                    None => {}
                }
                if let Some(iso) = set.isolated {
                    write!(f, " type bridge_slave isolated {}", if iso { "on" } else { "off" })?;
                }
                match set.up {
                    Some(true) => write!(f, " up"),
                    Some(false) => write!(f, " down"),
                    None => Ok(()),
                }
            }
            Step::AddAddr { node, dev, addr } => {
                write!(f, "ip {}addr add {addr} dev {dev}", ns_arg(node))
            }
            Step::AddRoute { node, route } => write!(f, "ip {}route add {}", ns_arg(node), route),
            Step::Firewall { node, table, version, .. } => match node {
                NodeRef::Host => write!(f, "nft -j -f - # replace table inet {table} (version {version})"),
                NodeRef::Ns(n) => write!(f, "ip netns exec {n} nft -j -f - # replace table inet {table} (version {version})"),
            },
            Step::DeleteFirewall { node, table } => match node {
                NodeRef::Host => write!(f, "nft delete table inet {table}"),
                NodeRef::Ns(n) => write!(f, "ip netns exec {n} nft delete table inet {table}"),
            },
        }
    }
}

impl fmt::Display for RouteSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.dst.prefix_len() == 0 {
            f.write_str("default")?;
        } else {
            write!(f, "{}", self.dst)?;
        }
        if let Some(v) = self.via {
            write!(f, " via {v}")?;
        }
        if let Some(d) = &self.dev {
            write!(f, " dev {d}")?;
        }
        Ok(())
    }
}

/// A desired object whose name is taken by something the lab does not own.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Conflict {
    /// Where.
    pub node: NodeRef,
    /// What ("namespace ns1", "interface veth1").
    pub object: String,
    /// Who owns it: another lab's name, or None for an object plumb did not create.
    pub owner: Option<String>,
}

impl fmt::Display for Conflict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let place = match &self.node {
            NodeRef::Host => "the host".to_string(),
            NodeRef::Ns(n) => format!("namespace {n}"),
        };
        match &self.owner {
            Some(lab) => write!(f, "{} in {place} already exists and belongs to lab `{lab}`; take that lab down or rename it in this file", self.object),
            None => write!(f, "{} in {place} already exists and was not created by plumb; plumb never changes it: remove it yourself or rename it in this file", self.object),
        }
    }
}

/// An ordered list of steps, or the conflicts that forbid it.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Plan {
    /// The steps, in order.
    pub steps: Vec<Step>,
    /// Objects in the way. A plan with conflicts must not be applied.
    pub conflicts: Vec<Conflict>,
}

impl Plan {
    /// Nothing to do.
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }
}

/// The sysctls of `node` that the topology sets (so that a snapshot reads their values).
pub fn wanted_sysctls(topo: &Topology, node: &NodeRef) -> Vec<String> {
    sysctls_of(topo, node).into_iter().map(|(k, _)| k).collect()
}

/// The sysctls a node needs: those the file sets, plus IPv4 forwarding in the host when a
/// network has NAT or published ports (as `nat = true` promises).
fn sysctls_of(topo: &Topology, node: &NodeRef) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = topo
        .node(node)
        .map(|n| n.sysctls.clone())
        .unwrap_or_default();
    const FWD: &str = "net.ipv4.ip_forward";
    if *node == NodeRef::Host
        && crate::firewall::needs_forwarding(topo)
        && !out.iter().any(|(k, _)| k == FWD)
    {
        out.push((FWD.to_string(), "1".to_string()));
    }
    out
}

/// One interface the topology wants in a node.
#[derive(Debug, Clone)]
struct WantLink {
    kind: LinkKind,
    /// For veth ends: the pair's identifier.
    link_id: Option<String>,
    mtu: Option<u32>,
    mac: Option<MacAddr>,
    master: Option<IfName>,
    /// A port of an `isolated = true` network's bridge.
    isolated: bool,
    up: bool,
    addrs: Vec<IpNet>,
}

/// Everything the topology wants, by node and interface name.
struct Desired {
    /// Nodes in creation order (host first).
    nodes: Vec<NodeRef>,
    links: HashMap<NodeRef, BTreeMap<String, WantLink>>,
    /// Link creation steps, in order.
    bridges: Vec<Step>,
    veths: Vec<(String, Step)>,
}

fn is_default_ignored(addr: &IpNet) -> bool {
    match addr {
        IpNet::V6(v6) => (v6.addr().segments()[0] & 0xffc0) == 0xfe80 || v6.addr().is_loopback(),
        IpNet::V4(v4) => v4.addr().is_loopback(),
    }
}

fn desired(topo: &Topology) -> Desired {
    let lab = &topo.name;
    let mut nodes = vec![NodeRef::Host];
    nodes.extend(topo.nodes.iter().map(|n| n.name.clone()));
    let mut links: HashMap<NodeRef, BTreeMap<String, WantLink>> = HashMap::new();
    let iface = |node: &NodeRef, name: &IfName| {
        topo.node(node)
            .and_then(|n| n.interfaces.iter().find(|i| &i.name == name))
    };
    let mut bridges = Vec::new();
    for b in &topo.bridges {
        let ipv6 = b.addresses.iter().any(|a| matches!(a, IpNet::V6(_)));
        bridges.push(Step::CreateBridge {
            node: b.node.clone(),
            name: b.name.clone(),
            mtu: b.mtu,
            stp: b.stp,
            mac: bridge_mac(lab, &b.node, &b.name),
            ipv6,
        });
        links.entry(b.node.clone()).or_default().insert(
            b.name.to_string(),
            WantLink {
                kind: LinkKind::Bridge,
                link_id: None,
                mtu: b.mtu,
                mac: None,
                master: None,
                isolated: false,
                up: true,
                addrs: b.addresses.clone(),
            },
        );
    }
    let mut veths = Vec::new();
    for l in &topo.links {
        let end = |e: &crate::model::Endpoint| {
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
        let id = format!(
            "{:012x}",
            fnv1a(&format!(
                "{}:{}:{:?}:{:?}<>{}:{}:{:?}:{:?}",
                a.node, a.name, a.mtu, a.master, b.node, b.name, b.mtu, b.master
            )) & 0xffff_ffff_ffff
        );
        for (e, src) in [(&a, &l.a), (&b, &l.b)] {
            let i = iface(&src.node, &src.ifname);
            links.entry(e.node.clone()).or_default().insert(
                e.name.to_string(),
                WantLink {
                    kind: LinkKind::Veth,
                    link_id: Some(id.clone()),
                    mtu: e.mtu,
                    mac: e.mac,
                    master: e.master.clone(),
                    isolated: e
                        .master
                        .as_ref()
                        .is_some_and(|m| topo.networks.iter().any(|n| n.isolated && &n.name == m)),
                    up: i.map(|i| i.up).unwrap_or(true),
                    addrs: i.map(|i| i.addresses.clone()).unwrap_or_default(),
                },
            );
        }
        // The end inside a namespace goes first: its index can then be chosen by plumb.
        let (a, b) = if a.node == NodeRef::Host && b.node != NodeRef::Host {
            (b, a)
        } else {
            (a, b)
        };
        veths.push((id.clone(), Step::CreateVeth { a, b, link_id: id }));
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

fn route_specs(topo: &Topology, node: &NodeRef) -> Vec<RouteSpec> {
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

/// What a state says about one node: its contents, if it exists and can be read.
fn observed<'a>(snap: &'a Snapshot, node: &NodeRef) -> Option<&'a NsState> {
    match node {
        NodeRef::Host => Some(&snap.host),
        NodeRef::Ns(n) => snap.namespaces.get(n).and_then(|ns| ns.state.as_ref().ok()),
    }
}

/// Plans the changes that make the kernel match `topo`, touching only what the lab owns.
pub fn diff(topo: &Topology, snap: &Snapshot) -> Plan {
    let lab = topo.name.as_str();
    let want = desired(topo);
    let mut plan = Plan::default();
    let mut deletes = Vec::new();
    let mut dels_addr_route = Vec::new();
    let mut creates_ns = Vec::new();
    let mut sysctls = Vec::new();
    let mut sets = Vec::new();
    let mut ups = Vec::new();
    let mut addrs = Vec::new();
    let mut routes = Vec::new();

    let desired_ns: HashSet<&NsName> = topo
        .nodes
        .iter()
        .filter_map(|n| match &n.name {
            NodeRef::Ns(x) => Some(x),
            NodeRef::Host => None,
        })
        .collect();

    // Namespaces the lab owns but the file no longer names.
    for (name, ns) in &snap.namespaces {
        if ns.owner() == Some(lab) && !desired_ns.contains(name) {
            deletes.push(Step::DeleteNs { ns: name.clone() });
        }
    }

    // Nodes that exist and are ours ("kept"), that must be created, or that are in the way.
    let mut fresh: HashSet<NodeRef> = HashSet::new();
    for node in &want.nodes {
        let NodeRef::Ns(name) = node else { continue };
        match snap.namespaces.get(name) {
            None => {
                creates_ns.push(Step::CreateNs { ns: name.clone() });
                fresh.insert(node.clone());
            }
            Some(ns) => match ns.owner() {
                Some(o) if o == lab => {}
                other => plan.conflicts.push(Conflict {
                    node: NodeRef::Host,
                    object: format!("namespace {name}"),
                    owner: other.map(str::to_string),
                }),
            },
        }
    }

    // Links: what exists and is ours, what is in the way, what is ours and unwanted.
    // `gone` holds veth ends that disappear because their pair is deleted or rebuilt.
    let mut rebuild: HashSet<String> = HashSet::new();
    let mut gone: HashSet<(NodeRef, String)> = HashSet::new();
    for node in &want.nodes {
        if fresh.contains(node) {
            continue;
        }
        let Some(st) = observed(snap, node) else {
            continue;
        };
        let empty = BTreeMap::new();
        let wanted = want.links.get(node).unwrap_or(&empty);
        for l in &st.links {
            let owned = l.owner() == Some(lab);
            match wanted.get(&l.name) {
                Some(w) if w.kind == LinkKind::Loopback => {}
                Some(w) => {
                    if !owned {
                        plan.conflicts.push(Conflict {
                            node: node.clone(),
                            object: format!("interface {}", l.name),
                            owner: l.owner().map(str::to_string),
                        });
                    } else if w.kind != l.kind
                        || w.link_id.as_deref() != l.alias.as_deref().and_then(alias_link_id)
                    {
                        // Same name, other definition: rebuild it.
                        deletes.push(Step::DeleteLink {
                            node: node.clone(),
                            name: l.name.clone(),
                        });
                        gone.insert((node.clone(), l.name.clone()));
                        if let Some(id) = l.alias.as_deref().and_then(alias_link_id) {
                            rebuild.insert(id.to_string());
                        }
                    }
                }
                None if owned && l.kind != LinkKind::Loopback => {
                    deletes.push(Step::DeleteLink {
                        node: node.clone(),
                        name: l.name.clone(),
                    });
                    gone.insert((node.clone(), l.name.clone()));
                    if let Some(id) = l.alias.as_deref().and_then(alias_link_id) {
                        rebuild.insert(id.to_string());
                    }
                }
                None => {}
            }
        }
    }
    // Namespaces deleted above take their links along; those links' peers in kept nodes go too.
    for (name, ns) in &snap.namespaces {
        if ns.owner() == Some(lab) && !desired_ns.contains(name) {
            if let Ok(st) = &ns.state {
                for l in &st.links {
                    if let Some(id) = l.alias.as_deref().and_then(alias_link_id) {
                        rebuild.insert(id.to_string());
                    }
                }
            }
        }
    }
    for node in &want.nodes {
        let Some(st) = (!fresh.contains(node))
            .then(|| observed(snap, node))
            .flatten()
        else {
            continue;
        };
        for l in &st.links {
            if let Some(id) = l.alias.as_deref().and_then(alias_link_id) {
                if rebuild.contains(id) && l.owner() == Some(lab) {
                    gone.insert((node.clone(), l.name.clone()));
                }
            }
        }
    }

    let exists = |node: &NodeRef, name: &str| -> bool {
        !fresh.contains(node)
            && !gone.contains(&(node.clone(), name.to_string()))
            && observed(snap, node).is_some_and(|st| st.link(name).is_some())
    };

    // Bridges and veths to create.
    let mut creates_link = Vec::new();
    for b in &want.bridges {
        if let Step::CreateBridge { node, name, .. } = b {
            if !exists(node, name.as_str()) {
                creates_link.push(b.clone());
            }
        }
    }
    for (_, v) in &want.veths {
        if let Step::CreateVeth { a, b, .. } = v {
            let ea = exists(&a.node, a.name.as_str());
            let eb = exists(&b.node, b.name.as_str());
            if !(ea && eb) {
                // Half a pair (its peer vanished with a namespace, say): remove the rest first.
                for (e, present) in [(a, ea), (b, eb)] {
                    if present {
                        deletes.push(Step::DeleteLink {
                            node: e.node.clone(),
                            name: e.name.to_string(),
                        });
                    }
                }
                creates_link.push(v.clone());
            }
        }
    }
    let created: HashSet<(NodeRef, String)> = creates_link
        .iter()
        .flat_map(|s| match s {
            Step::CreateBridge { node, name, .. } => vec![(node.clone(), name.to_string())],
            Step::CreateVeth { a, b, .. } => vec![
                (a.node.clone(), a.name.to_string()),
                (b.node.clone(), b.name.to_string()),
            ],
            _ => vec![],
        })
        .collect();

    // Settings, addresses, routes, sysctls per node.
    for node in &want.nodes {
        let st = if fresh.contains(node) {
            None
        } else {
            observed(snap, node)
        };
        let empty = BTreeMap::new();
        let wanted = want.links.get(node).unwrap_or(&empty);
        for (name, w) in wanted {
            let new = created.contains(&(node.clone(), name.clone()));
            let cur = if new {
                None
            } else {
                st.and_then(|s| s.link(name))
            };
            if w.kind == LinkKind::Loopback && fresh.contains(node) {
                // CreateNs brings lo up; only its addresses remain.
            } else if let Some(cur) = cur {
                let mut set = LinkSet::default();
                if let Some(m) = w.mtu.filter(|m| *m != cur.mtu) {
                    set.mtu = Some(m);
                }
                if let Some(m) = w.mac.filter(|m| Some(*m) != cur.mac) {
                    set.mac = Some(m);
                }
                let cur_master = cur
                    .master
                    .and_then(|i| st.and_then(|s| s.link_by_index(i)))
                    .map(|l| l.name.as_str());
                if w.kind == LinkKind::Veth && cur_master != w.master.as_ref().map(|m| m.as_str()) {
                    set.master = Some(w.master.clone());
                }
                if w.master.is_some() && cur.isolated != w.isolated {
                    set.isolated = Some(w.isolated);
                }
                if set != LinkSet::default() {
                    sets.push(Step::SetLink {
                        node: node.clone(),
                        name: name.clone(),
                        set,
                    });
                }
                if cur.up != w.up {
                    ups.push(Step::SetLink {
                        node: node.clone(),
                        name: name.clone(),
                        set: LinkSet {
                            up: Some(w.up),
                            ..Default::default()
                        },
                    });
                }
            } else if w.isolated {
                // A new port of an isolated network: isolate it before it comes up.
                sets.push(Step::SetLink {
                    node: node.clone(),
                    name: name.clone(),
                    set: LinkSet {
                        isolated: Some(true),
                        ..Default::default()
                    },
                });
            }
            if cur.is_none() && w.up && w.kind != LinkKind::Loopback {
                ups.push(Step::SetLink {
                    node: node.clone(),
                    name: name.clone(),
                    set: LinkSet {
                        up: Some(true),
                        ..Default::default()
                    },
                });
            }
            // Addresses.
            let have: Vec<IpNet> = cur
                .map(|c| {
                    st.map(|s| s.addrs_of(c.index).copied().collect())
                        .unwrap_or_default()
                })
                .unwrap_or_default();
            for a in &w.addrs {
                if !have.contains(a) {
                    addrs.push(Step::AddAddr {
                        node: node.clone(),
                        dev: name.clone(),
                        addr: *a,
                    });
                }
            }
            if cur.is_some_and(|c| {
                c.owner() == Some(lab) || c.kind == LinkKind::Loopback && *node != NodeRef::Host
            }) {
                for a in &have {
                    if !w.addrs.contains(a) && !is_default_ignored(a) {
                        dels_addr_route.push(Step::DelAddr {
                            node: node.clone(),
                            dev: name.clone(),
                            addr: *a,
                        });
                    }
                }
            }
        }
        // Routes: compare with what is installed; remove only plumb's own routes, and in the host
        // only those through interfaces this lab owns.
        let want_routes = route_specs(topo, node);
        let mut have_routes: Vec<(RouteSpec, bool)> = Vec::new();
        if let Some(st) = st {
            for r in &st.routes {
                let dev = r.oif.and_then(|i| st.link_by_index(i));
                let dev_gone = dev.is_some_and(|d| gone.contains(&(node.clone(), d.name.clone())));
                if dev_gone {
                    continue;
                }
                let ours = r.protocol == RTPROT_PLUMB
                    && (*node != NodeRef::Host || dev.is_some_and(|d| d.owner() == Some(lab)));
                have_routes.push((
                    RouteSpec {
                        dst: r.dst,
                        via: r.via,
                        dev: dev.map(|d| d.name.clone()),
                    },
                    ours,
                ));
            }
        }
        let matches = |w: &RouteSpec, h: &RouteSpec| {
            w.dst == h.dst && w.via == h.via && (w.dev.is_none() || w.dev == h.dev)
        };
        for w in &want_routes {
            if !have_routes.iter().any(|(h, _)| matches(w, h)) {
                routes.push(Step::AddRoute {
                    node: node.clone(),
                    route: w.clone(),
                });
            }
        }
        for (h, ours) in &have_routes {
            if *ours && !want_routes.iter().any(|w| matches(w, h)) {
                dels_addr_route.push(Step::DelRoute {
                    node: node.clone(),
                    route: h.clone(),
                });
            }
        }
        // Sysctls: set when new, or when the value read differs.
        {
            for (k, v) in &sysctls_of(topo, node) {
                let current = st.and_then(|s| s.sysctls.get(k));
                if current.map(|c| c.split_whitespace().collect::<Vec<_>>())
                    != Some(v.split_whitespace().collect())
                {
                    sysctls.push(Step::Sysctl {
                        node: node.clone(),
                        key: k.clone(),
                        value: v.clone(),
                    });
                }
            }
        }
    }

    if !plan.conflicts.is_empty() {
        // Nothing may run while something is in the way: a plan with conflicts has no steps, so
        // no caller can apply half of it and touch what the lab does not own.
        return plan;
    }
    plan.steps.extend(deletes);
    // Delete routes before addresses (a route may depend on an address).
    dels_addr_route.sort_by_key(|s| !matches!(s, Step::DelRoute { .. }));
    plan.steps.extend(dels_addr_route);
    plan.steps.extend(creates_ns);
    plan.steps.extend(sysctls);
    creates_link.sort_by_key(|s| !matches!(s, Step::CreateBridge { .. }));
    plan.steps.extend(creates_link);
    plan.steps.extend(sets);
    plan.steps.extend(ups);
    plan.steps.extend(addrs);
    plan.steps.extend(routes);
    plan.steps.extend(firewalls(topo, snap, &fresh));
    dedup_deletes(&mut plan.steps);
    plan
}

/// A link may be scheduled for deletion twice (as unwanted and as half a pair).
fn dedup_deletes(steps: &mut Vec<Step>) {
    let mut seen = HashSet::new();
    steps.retain(|s| match s {
        Step::DeleteLink { node, name } => seen.insert((node.clone(), name.clone())),
        _ => true,
    });
}

/// Plans the removal of everything `lab` owns, found by tags alone (no file needed).
/// Host interfaces go in one group delete when every member of the lab's group is the lab's;
/// namespaces are then unmounted (the kernel destroys them, and what is inside, in the background).
pub fn teardown(lab: &LabName, snap: &Snapshot) -> Plan {
    let mut plan = Plan::default();
    let group = lab_group(lab);
    let owned: Vec<_> = snap
        .host
        .links
        .iter()
        .filter(|l| l.owner() == Some(lab.as_str()))
        .collect();
    let group_is_ours = snap
        .host
        .links
        .iter()
        .filter(|l| l.group == group)
        .all(|l| l.owner() == Some(lab.as_str()));
    let in_group = owned.iter().filter(|l| l.group == group).count();
    if group_is_ours && in_group > 0 {
        plan.steps.push(Step::DeleteGroup { group });
    }
    for l in owned {
        if !(group_is_ours && l.group == group) {
            plan.steps.push(Step::DeleteLink {
                node: NodeRef::Host,
                name: l.name.clone(),
            });
        }
    }
    for (name, ns) in &snap.namespaces {
        if ns.owner() == Some(lab.as_str()) {
            plan.steps.push(Step::DeleteNs { ns: name.clone() });
        }
    }
    if snap.host.nft_version.is_some() {
        plan.steps.push(Step::DeleteFirewall {
            node: NodeRef::Host,
            table: crate::firewall::table_name(lab.as_str()),
        });
    }
    plan
}

/// Firewall tables to write (when missing or of another version) or remove (when the file no
/// longer needs them). A namespace's table goes with the namespace, so only kept nodes are
/// checked for removal.
fn firewalls(topo: &Topology, snap: &Snapshot, fresh: &HashSet<NodeRef>) -> Vec<Step> {
    let mut out = Vec::new();
    let mut nodes = vec![NodeRef::Host];
    nodes.extend(topo.nodes.iter().map(|n| n.name.clone()));
    for node in nodes {
        let want = match &node {
            NodeRef::Host => Some(crate::firewall::host_table(topo)).filter(|t| !t.is_empty()),
            NodeRef::Ns(_) => crate::firewall::node_table(topo, &node),
        };
        let have = if fresh.contains(&node) {
            None
        } else {
            observed(snap, &node).and_then(|s| s.nft_version.clone())
        };
        match (want, have) {
            (Some(t), have) => {
                let version = t.version();
                if have.as_deref() != Some(version.as_str()) {
                    out.push(Step::Firewall {
                        node,
                        table: t.name.clone(),
                        version,
                        batch: t.batch().to_string(),
                    });
                }
            }
            (None, Some(_)) => out.push(Step::DeleteFirewall {
                node,
                table: crate::firewall::table_name(topo.name.as_str()),
            }),
            (None, None) => {}
        }
    }
    out
}

#[cfg(test)]
mod tests;
