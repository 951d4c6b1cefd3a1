//! Planner tests. Pure: snapshots are built by hand, and a small in-memory kernel ([`Kernel`])
//! applies a plan's steps to a snapshot the way the kernel backend would, so that a plan can be
//! checked against its own result (idempotency, convergence, teardown).
//!
//! The simulated kernel is strict where the real one would refuse a step (EEXIST on a create,
//! ENODEV on a missing interface, ENETUNREACH for a gateway without a connected route), so that
//! running a plan in it also checks that every step's prerequisites come earlier. It panics as
//! well when a step changes or deletes an object the lab does not own, or adds anything to a
//! namespace the lab does not own: the planner's first invariant. Deleting something that is
//! already gone is tolerated (apply counts it as done) and recorded in [`Kernel::gone`].

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

use ipnet::IpNet;

use super::{diff, lab_group, tag, teardown, veth_tag, Conflict, LinkSet, Plan, RouteSpec, Step};
use crate::inspect::{AddrState, LinkKind, LinkState, NamedNs, NsState, RouteState, Snapshot};
use crate::model::names::{IfName, LabName, NsName};
use crate::model::{parse_toml, MacAddr, NodeRef, Topology};
use crate::netlink::route::RTPROT_PLUMB;

/// RTPROT_KERNEL from `include/uapi/linux/rtnetlink.h`: connected routes.
const RTPROT_KERNEL: u8 = 2;
/// RTPROT_STATIC from `include/uapi/linux/rtnetlink.h`: routes an administrator added.
const RTPROT_STATIC: u8 = 4;

const SEED: &str = include_str!("../../../../examples/seed.toml");
const STAR: &str = include_str!("../../../../examples/star.toml");

/// A router between the host and a bridge inside a namespace: loopback addresses, IPv6,
/// sysctls, MTUs, a fixed MAC, routes by gateway and by device, in the host and in namespaces.
const ROUTED: &str = r#"
name = "routed"

[nodes.host]
routes = [{ to = "10.20.0.0/24", via = "10.10.0.2" }]

[nodes.host.interfaces.r1up]
addresses = ["10.10.0.1/30", "fd00:10::1/64"]

[nodes.r1]
sysctls = { "net.ipv4.ip_forward" = 1, "net.ipv6.conf.all.forwarding" = "1" }
routes = [{ to = "default", via = "10.10.0.1" }, { to = "10.99.0.0/24", dev = "up0" }]

[nodes.r1.interfaces.lo]
addresses = ["10.255.0.1/32"]

[nodes.r1.interfaces.up0]
addresses = ["10.10.0.2/30", "fd00:10::2/64"]

[bridges.lan]
node = "r1"
addresses = ["10.20.0.1/24"]
mtu = 1400

[nodes.h1.interfaces.eth0]
addresses = ["10.20.0.11/24"]
mac = "02:00:00:00:00:11"

[nodes.h1]
routes = [{ to = "default", via = "10.20.0.1" }]

[nodes.h2.interfaces.eth0]
addresses = ["10.20.0.12/24"]

[nodes.h2]
routes = [{ to = "default", via = "10.20.0.1" }]

[[links]]
endpoints = ["host:r1up", "r1:up0"]
mtu = 1450

[[links]]
endpoints = ["lan:p1", "h1:eth0"]
mtu = 1400

[[links]]
endpoints = ["lan:p2", "h2:eth0"]
mtu = 1400
"#;

const MANY: &str = r#"
name = "many"

[networks.br50]
subnet = "10.50.0.0/24"
members = ["m[1..50]"]
"#;

// ---------------------------------------------------------------------------------------------
// Names, topologies, hand-built snapshots.

fn lab(name: &str) -> LabName {
    LabName::new(name).unwrap()
}

fn ns(name: &str) -> NsName {
    NsName::new(name).unwrap()
}

fn node(name: &str) -> NodeRef {
    if name == "host" {
        NodeRef::Host
    } else {
        NodeRef::Ns(ns(name))
    }
}

fn ifname(name: &str) -> IfName {
    IfName::new(name).unwrap()
}

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn topo(src: &str) -> Topology {
    parse_toml(src, "test.toml").unwrap_or_else(|e| panic!("topology does not load:\n{e}"))
}

/// `src` with `from` replaced by `to`; `from` must occur exactly once.
fn edit(src: &str, from: &str, to: &str) -> String {
    assert_eq!(
        src.matches(from).count(),
        1,
        "`{from}` is not in the file once"
    );
    src.replace(from, to)
}

fn link(index: u32, name: &str, kind: LinkKind, alias: Option<&str>) -> LinkState {
    LinkState {
        index,
        name: name.into(),
        kind,
        alias: alias.map(str::to_string),
        mtu: 1500,
        mac: None,
        up: true,
        lower_up: true,
        master: None,
        peer_index: None,
        peer_netnsid: None,
        group: 0,
        isolated: false,
    }
}

fn lo(alias: Option<&str>) -> LinkState {
    LinkState {
        mtu: 65536,
        ..link(1, "lo", LinkKind::Loopback, alias)
    }
}

fn addr(index: u32, a: &str) -> AddrState {
    AddrState {
        index,
        addr: net(a),
    }
}

fn route(dst: &str, via: Option<&str>, oif: u32, protocol: u8) -> RouteState {
    RouteState {
        dst: net(dst),
        via: via.map(ip),
        oif: Some(oif),
        protocol,
    }
}

/// A namespace whose `lo` carries `alias` (None: not plumb's).
fn named(name: &str, alias: Option<&str>, more: Vec<LinkState>) -> (NsName, NamedNs) {
    let mut links = vec![lo(alias)];
    links.extend(more);
    (
        ns(name),
        NamedNs {
            name: ns(name),
            state: Ok(NsState {
                links,
                addrs: vec![addr(1, "127.0.0.1/8"), addr(1, "::1/128")],
                ..NsState::default()
            }),
        },
    )
}

/// A host as found on a machine: `lo`, `eth0` with an address, its connected route and a
/// default route from DHCP. None of it is plumb's.
fn host() -> NsState {
    NsState {
        links: vec![
            lo(None),
            LinkState {
                mac: Some(MacAddr([0x52, 0x54, 0, 0x12, 0x34, 0x56])),
                ..link(2, "eth0", LinkKind::Device, None)
            },
        ],
        addrs: vec![
            addr(1, "127.0.0.1/8"),
            addr(1, "::1/128"),
            addr(2, "192.168.1.10/24"),
        ],
        routes: vec![
            route("192.168.1.0/24", None, 2, RTPROT_KERNEL),
            route("0.0.0.0/0", Some("192.168.1.1"), 2, 16),
        ],
        ..NsState::default()
    }
}

fn host_only() -> Snapshot {
    Snapshot {
        host: host(),
        ..Snapshot::default()
    }
}

fn show(plan: &Plan) -> String {
    let mut out: Vec<String> = plan.steps.iter().map(ToString::to_string).collect();
    out.extend(plan.conflicts.iter().map(|c| format!("conflict: {c}")));
    out.join("\n")
}

/// Where a step acts: the namespaces it touches.
fn nodes_of(step: &Step) -> Vec<NodeRef> {
    match step {
        Step::DeleteGroup { .. } => vec![NodeRef::Host],
        Step::CreateNs { ns } | Step::DeleteNs { ns } => vec![NodeRef::Ns(ns.clone())],
        Step::CreateVeth { a, b, .. } => vec![a.node.clone(), b.node.clone()],
        Step::DeleteLink { node, .. }
        | Step::DelRoute { node, .. }
        | Step::DelAddr { node, .. }
        | Step::Sysctl { node, .. }
        | Step::CreateBridge { node, .. }
        | Step::SetLink { node, .. }
        | Step::AddAddr { node, .. }
        | Step::AddRoute { node, .. }
        | Step::Firewall { node, .. }
        | Step::DeleteFirewall { node, .. } => vec![node.clone()],
    }
}

/// The interfaces a step creates, changes or deletes by name.
fn links_of(step: &Step) -> Vec<(NodeRef, String)> {
    match step {
        Step::CreateVeth { a, b, .. } => vec![
            (a.node.clone(), a.name.to_string()),
            (b.node.clone(), b.name.to_string()),
        ],
        Step::CreateBridge { node, name, .. } => vec![(node.clone(), name.to_string())],
        Step::DeleteLink { node, name } | Step::SetLink { node, name, .. } => {
            vec![(node.clone(), name.clone())]
        }
        Step::DelAddr { node, dev, .. } | Step::AddAddr { node, dev, .. } => {
            vec![(node.clone(), dev.clone())]
        }
        Step::DelRoute { node, route } | Step::AddRoute { node, route } => route
            .dev
            .iter()
            .map(|d| (node.clone(), d.clone()))
            .collect(),
        _ => vec![],
    }
}

/// The phase a step belongs to; a plan's phases never go backwards.
fn phase(step: &Step) -> u8 {
    match step {
        Step::DeleteGroup { .. } | Step::DeleteLink { .. } | Step::DeleteNs { .. } => 0,
        Step::DelRoute { .. } => 1,
        Step::DelAddr { .. } => 2,
        Step::CreateNs { .. } => 3,
        Step::Sysctl { .. } => 4,
        Step::CreateBridge { .. } => 5,
        Step::CreateVeth { .. } => 6,
        Step::SetLink { .. } => 7,
        Step::AddAddr { .. } => 8,
        Step::AddRoute { .. } => 9,
        Step::Firewall { .. } | Step::DeleteFirewall { .. } => 10,
    }
}

fn assert_phases_in_order(plan: &Plan) {
    for w in plan.steps.windows(2) {
        assert!(
            phase(&w[0]) <= phase(&w[1]),
            "`{}` comes before `{}` in\n{}",
            w[0],
            w[1],
            show(plan)
        );
    }
}

fn position(plan: &Plan, f: impl Fn(&Step) -> bool) -> Vec<usize> {
    plan.steps
        .iter()
        .enumerate()
        .filter(|(_, s)| f(s))
        .map(|(i, _)| i)
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The simulated kernel.

/// A snapshot that steps can be applied to.
struct Kernel {
    snap: Snapshot,
    /// veth pairs, both ways: deleting one end deletes the other.
    peers: HashMap<(NodeRef, String), (NodeRef, String)>,
    /// Interfaces created with IPv6 address generation on: they get a link-local address when
    /// they come up.
    addrgen: HashSet<(NodeRef, String)>,
    /// Deletions of objects that were already gone (the kernel says ENOENT/ENODEV/ESRCH).
    gone: Vec<Step>,
    /// Counter for generated MACs and link-local addresses.
    serial: u16,
}

fn next_index(st: &NsState) -> u32 {
    st.links.iter().map(|l| l.index).max().unwrap_or(0) + 1
}

/// The prefix route the kernel adds for an address, if it adds one.
fn connected(a: &IpNet) -> Option<IpNet> {
    (a.prefix_len() < a.max_prefix_len()).then(|| a.trunc())
}

impl Kernel {
    fn new(snap: Snapshot) -> Self {
        Kernel {
            snap,
            peers: HashMap::new(),
            addrgen: HashSet::new(),
            gone: Vec::new(),
            serial: 0,
        }
    }

    fn host_only() -> Self {
        Kernel::new(host_only())
    }

    /// Plans `topo` against the current state, applies the plan and returns it.
    fn up(&mut self, topo: &Topology) -> Plan {
        let plan = diff(topo, &self.snap);
        assert!(
            plan.conflicts.is_empty(),
            "unexpected conflicts:\n{}",
            show(&plan)
        );
        self.apply(&topo.name, &plan);
        plan
    }

    fn apply(&mut self, lab: &LabName, plan: &Plan) {
        assert!(
            plan.conflicts.is_empty(),
            "a plan with conflicts must not run:\n{}",
            show(plan)
        );
        for step in &plan.steps {
            self.step(lab, step);
        }
    }

    fn state(&self, node: &NodeRef) -> Option<&NsState> {
        match node {
            NodeRef::Host => Some(&self.snap.host),
            NodeRef::Ns(n) => self
                .snap
                .namespaces
                .get(n)
                .and_then(|ns| ns.state.as_ref().ok()),
        }
    }

    fn state_mut(&mut self, node: &NodeRef) -> Option<&mut NsState> {
        match node {
            NodeRef::Host => Some(&mut self.snap.host),
            NodeRef::Ns(n) => self
                .snap
                .namespaces
                .get_mut(n)
                .and_then(|ns| ns.state.as_mut().ok()),
        }
    }

    fn link(&self, node: &NodeRef, name: &str) -> Option<&LinkState> {
        self.state(node).and_then(|s| s.link(name))
    }

    fn link_mut(&mut self, node: &NodeRef, name: &str) -> Option<&mut LinkState> {
        self.state_mut(node)
            .and_then(|s| s.links.iter_mut().find(|l| l.name == name))
    }

    /// Steps may add to the host and to the lab's own namespaces only.
    fn assert_may_add(&self, lab: &LabName, node: &NodeRef, step: &Step) {
        if let NodeRef::Ns(n) = node {
            let Some(named) = self.snap.namespaces.get(n) else {
                panic!("`{step}`: namespace {n} does not exist (ENOENT)");
            };
            assert_eq!(
                named.owner(),
                Some(lab.as_str()),
                "`{step}` adds to namespace {n}, which is not lab {lab}'s"
            );
        }
    }

    /// The interface a step changes: it must exist and be the lab's. Returns its index.
    fn owned_link(&self, lab: &LabName, node: &NodeRef, name: &str, step: &Step) -> u32 {
        let Some(l) = self.link(node, name) else {
            panic!("`{step}`: no interface {name} in {node} (ENODEV)");
        };
        assert_eq!(
            l.owner(),
            Some(lab.as_str()),
            "`{step}` changes {name} in {node}, which is not lab {lab}'s"
        );
        l.index
    }

    fn serial(&mut self) -> u16 {
        self.serial += 1;
        self.serial
    }

    /// What the kernel does when an interface comes up or goes down.
    fn set_up(&mut self, node: &NodeRef, name: &str, up: bool) {
        let key = (node.clone(), name.to_string());
        let ll = self.addrgen.contains(&key).then(|| self.serial());
        let Some(st) = self.state_mut(node) else {
            return;
        };
        let Some(l) = st.links.iter_mut().find(|l| l.name == name) else {
            return;
        };
        if l.up == up {
            return;
        }
        l.up = up;
        let index = l.index;
        if !up {
            st.routes.retain(|r| r.oif != Some(index));
            return;
        }
        if let Some(n) = ll {
            if !st
                .addrs_of(index)
                .any(|a| matches!(a, IpNet::V6(v) if v.addr().segments()[0] == 0xfe80))
            {
                st.addrs.push(AddrState {
                    index,
                    addr: net(&format!("fe80::{n:x}/64")),
                });
            }
        }
        let prefixes: Vec<IpNet> = st.addrs_of(index).filter_map(connected).collect();
        for dst in prefixes {
            add_connected(st, dst, index);
        }
    }

    /// Removes an interface, its addresses and routes, releases its ports if it is a bridge,
    /// and removes its veth peer wherever that is.
    fn remove_link(&mut self, node: &NodeRef, name: &str) {
        let key = (node.clone(), name.to_string());
        if let Some(st) = self.state_mut(node) {
            if let Some(pos) = st.links.iter().position(|l| l.name == name) {
                let l = st.links.remove(pos);
                st.addrs.retain(|a| a.index != l.index);
                st.routes.retain(|r| r.oif != Some(l.index));
                for p in &mut st.links {
                    if p.master == Some(l.index) {
                        p.master = None;
                    }
                }
            }
        }
        self.addrgen.remove(&key);
        if let Some(peer) = self.peers.remove(&key) {
            self.peers.remove(&peer);
            self.remove_link(&peer.0, &peer.1);
        }
    }

    fn step(&mut self, lab: &LabName, step: &Step) {
        let group = lab_group(lab);
        match step {
            Step::Firewall { node, version, .. } => {
                let st = self
                    .state_mut(node)
                    .expect("firewall in a missing namespace");
                st.nft_version = Some(version.clone());
            }
            Step::DeleteFirewall { node, .. } => {
                if let Some(st) = self.state_mut(node) {
                    st.nft_version = None;
                }
            }
            Step::CreateNs { ns } => {
                assert!(
                    !self.snap.namespaces.contains_key(ns),
                    "`{step}`: exists (EEXIST)"
                );
                let (_, mut named) = named(ns.as_str(), Some(&tag(lab)), vec![]);
                named.name = ns.clone();
                self.snap.namespaces.insert(ns.clone(), named);
            }
            Step::DeleteNs { ns } => {
                let Some(named) = self.snap.namespaces.get(ns) else {
                    self.gone.push(step.clone());
                    return;
                };
                assert_eq!(
                    named.owner(),
                    Some(lab.as_str()),
                    "`{step}` deletes a namespace that is not lab {lab}'s"
                );
                let n = NodeRef::Ns(ns.clone());
                let names: Vec<String> = named
                    .state
                    .iter()
                    .flat_map(|s| s.links.iter().map(|l| l.name.clone()))
                    .collect();
                for name in names {
                    self.remove_link(&n, &name);
                }
                self.snap.namespaces.remove(ns);
            }
            Step::Sysctl { node, key, value } => {
                self.assert_may_add(lab, node, step);
                if let Some(st) = self.state_mut(node) {
                    st.sysctls.insert(key.clone(), value.clone());
                }
            }
            Step::CreateBridge {
                node,
                name,
                mtu,
                mac,
                ipv6,
                ..
            } => {
                self.assert_may_add(lab, node, step);
                assert!(
                    self.link(node, name.as_str()).is_none(),
                    "`{step}`: exists (EEXIST)"
                );
                let st = self.state_mut(node).unwrap();
                st.links.push(LinkState {
                    mtu: mtu.unwrap_or(1500),
                    mac: Some(*mac),
                    up: false,
                    lower_up: false,
                    group,
                    ..link(
                        next_index(st),
                        name.as_str(),
                        LinkKind::Bridge,
                        Some(&tag(lab)),
                    )
                });
                if *ipv6 {
                    self.addrgen.insert((node.clone(), name.to_string()));
                }
            }
            Step::CreateVeth { a, b, link_id } => {
                assert!(
                    (&a.node, &a.name) != (&b.node, &b.name),
                    "`{step}`: both ends are one"
                );
                let alias = veth_tag(lab, link_id);
                let mut indexes = Vec::new();
                for e in [a, b] {
                    self.assert_may_add(lab, &e.node, step);
                    assert!(
                        self.link(&e.node, e.name.as_str()).is_none(),
                        "`{step}`: {} exists in {} (EEXIST)",
                        e.name,
                        e.node
                    );
                    let master = e.master.as_ref().map(|m| {
                        self.link(&e.node, m.as_str())
                            .filter(|l| l.kind == LinkKind::Bridge)
                            .unwrap_or_else(|| panic!("`{step}`: no bridge {m} in {}", e.node))
                            .index
                    });
                    let mac = e.mac.unwrap_or_else(|| {
                        let [hi, low] = self.serial().to_be_bytes();
                        MacAddr([0x02, 0x5e, 0, 0, hi, low])
                    });
                    let st = self.state_mut(&e.node).unwrap();
                    let index = next_index(st);
                    st.links.push(LinkState {
                        mtu: e.mtu.unwrap_or(1500),
                        mac: Some(mac),
                        up: false,
                        lower_up: false,
                        master,
                        group,
                        ..link(index, e.name.as_str(), LinkKind::Veth, Some(&alias))
                    });
                    indexes.push(index);
                    if e.ipv6 {
                        self.addrgen.insert((e.node.clone(), e.name.to_string()));
                    }
                }
                let ka = (a.node.clone(), a.name.to_string());
                let kb = (b.node.clone(), b.name.to_string());
                self.link_mut(&ka.0, &ka.1).unwrap().peer_index = Some(indexes[1]);
                self.link_mut(&kb.0, &kb.1).unwrap().peer_index = Some(indexes[0]);
                self.peers.insert(ka.clone(), kb.clone());
                self.peers.insert(kb, ka);
            }
            Step::SetLink { node, name, set } => {
                self.owned_link(lab, node, name, step);
                let master = set.master.as_ref().map(|m| {
                    m.as_ref().map(|m| {
                        self.link(node, m.as_str())
                            .unwrap_or_else(|| panic!("`{step}`: no bridge {m} in {node}"))
                            .index
                    })
                });
                let l = self.link_mut(node, name).unwrap();
                if let Some(m) = set.mtu {
                    l.mtu = m;
                }
                if let Some(m) = set.mac {
                    l.mac = Some(m);
                }
                if let Some(m) = master {
                    l.master = m;
                }
                if let Some(up) = set.up {
                    self.set_up(node, name, up);
                }
            }
            Step::AddAddr { node, dev, addr } => {
                self.assert_may_add(lab, node, step);
                let Some(l) = self.link(node, dev) else {
                    panic!("`{step}`: no interface {dev} in {node} (ENODEV)");
                };
                let (index, up) = (l.index, l.up);
                let st = self.state_mut(node).unwrap();
                assert!(
                    !st.addrs_of(index).any(|a| a == addr),
                    "`{step}`: exists (EEXIST)"
                );
                st.addrs.push(AddrState { index, addr: *addr });
                if let (true, Some(dst)) = (up, connected(addr)) {
                    add_connected(st, dst, index);
                }
            }
            Step::DelAddr { node, dev, addr } => {
                let index = self.owned_link(lab, node, dev, step);
                let st = self.state_mut(node).unwrap();
                let before = st.addrs.len();
                st.addrs.retain(|a| !(a.index == index && a.addr == *addr));
                if st.addrs.len() == before {
                    self.gone.push(step.clone());
                    return;
                }
                if let Some(dst) = connected(addr) {
                    st.routes.retain(|r| {
                        !(r.dst == dst && r.oif == Some(index) && r.protocol == RTPROT_KERNEL)
                    });
                }
            }
            Step::AddRoute { node, route } => {
                self.assert_may_add(lab, node, step);
                let st = self.state(node).unwrap();
                let oif = match (&route.dev, route.via) {
                    (Some(d), _) => {
                        st.link(d)
                            .unwrap_or_else(|| panic!("`{step}`: no interface {d} (ENODEV)"))
                            .index
                    }
                    (None, Some(via)) => {
                        st.addrs
                            .iter()
                            .find(|a| {
                                a.addr.contains(&via)
                                    && st.link_by_index(a.index).is_some_and(|l| l.up)
                            })
                            .unwrap_or_else(|| {
                                panic!("`{step}`: gateway unreachable (ENETUNREACH)")
                            })
                            .index
                    }
                    (None, None) => panic!("`{step}`: neither gateway nor device"),
                };
                let clash = st.routes.iter().any(|r| {
                    r.dst == route.dst
                        && (matches!(r.dst, IpNet::V4(_))
                            || (r.via, r.oif) == (route.via, Some(oif)))
                });
                assert!(!clash, "`{step}`: exists (EEXIST)");
                self.state_mut(node).unwrap().routes.push(RouteState {
                    dst: route.dst,
                    via: route.via,
                    oif: Some(oif),
                    protocol: RTPROT_PLUMB,
                });
            }
            Step::DelRoute { node, route } => {
                let st = self.state(node).unwrap();
                let dev = route.dev.as_ref().map(|d| st.link(d).map(|l| l.index));
                let found = st.routes.iter().position(|r| {
                    r.dst == route.dst
                        && r.via == route.via
                        && dev.is_none_or(|i| i.is_some() && r.oif == i)
                });
                let Some(pos) = found else {
                    self.gone.push(step.clone());
                    return;
                };
                assert_eq!(
                    st.routes[pos].protocol, RTPROT_PLUMB,
                    "`{step}` deletes a route plumb did not install"
                );
                self.state_mut(node).unwrap().routes.remove(pos);
            }
            Step::DeleteLink { node, name } => {
                if self.link(node, name).is_none() {
                    self.gone.push(step.clone());
                    return;
                }
                self.owned_link(lab, node, name, step);
                self.remove_link(node, name);
            }
            Step::DeleteGroup { group } => {
                // The kernel deletes by group without looking at aliases.
                let names: Vec<String> = self
                    .snap
                    .host
                    .links
                    .iter()
                    .filter(|l| l.group == *group)
                    .map(|l| l.name.clone())
                    .collect();
                for name in names {
                    self.remove_link(&NodeRef::Host, &name);
                }
            }
        }
    }
}

fn add_connected(st: &mut NsState, dst: IpNet, index: u32) {
    let exists = st
        .routes
        .iter()
        .any(|r| r.dst == dst && r.oif == Some(index) && r.protocol == RTPROT_KERNEL);
    if !exists {
        st.routes.push(RouteState {
            dst,
            via: None,
            oif: Some(index),
            protocol: RTPROT_KERNEL,
        });
    }
}

/// Builds `src` from the host alone, checks the plan's order, and checks that planning again
/// finds nothing to do.
fn assert_converges(src: &str) -> Kernel {
    let t = topo(src);
    let mut k = Kernel::host_only();
    let plan = k.up(&t);
    assert!(!plan.is_empty());
    assert_phases_in_order(&plan);
    let again = diff(&t, &k.snap);
    assert!(
        again.is_empty() && again.conflicts.is_empty(),
        "planning {} again after applying its plan is not empty:\n{}",
        t.name,
        show(&again)
    );
    assert!(
        k.gone.is_empty(),
        "deleted what was not there: {:?}",
        k.gone
    );
    k
}

fn labs(k: &Kernel) -> Vec<(String, crate::inspect::LabCounts)> {
    k.snap.labs().into_iter().collect()
}

// The simulator itself: it refuses what the kernel would refuse and what the planner must
// never ask for, so that the tests below can rely on it.

#[test]
#[should_panic(expected = "which is not lab seed's")]
fn kernel_delete_of_a_foreign_interface_panics() {
    let mut k = Kernel::host_only();
    let step = Step::DeleteLink {
        node: NodeRef::Host,
        name: "eth0".into(),
    };
    k.apply(
        &lab("seed"),
        &Plan {
            steps: vec![step],
            conflicts: vec![],
        },
    );
}

#[test]
#[should_panic(expected = "ENETUNREACH")]
fn kernel_route_before_its_address_panics() {
    let t = topo(STAR);
    let mut plan = diff(&t, &host_only());
    plan.steps.retain(|s| !matches!(s, Step::AddAddr { .. }));
    Kernel::host_only().apply(&t.name, &plan);
}

// ---------------------------------------------------------------------------------------------
// Building from nothing.

#[test]
fn diff_seed_from_empty_orders_namespaces_veths_then_addresses() {
    let plan = diff(&topo(SEED), &host_only());
    assert!(plan.conflicts.is_empty(), "{}", show(&plan));
    assert_phases_in_order(&plan);
    assert_eq!(plan.steps[0], Step::CreateNs { ns: ns("ns1") });
    let creates_ns = position(&plan, |s| matches!(s, Step::CreateNs { .. }));
    let veths = position(&plan, |s| matches!(s, Step::CreateVeth { .. }));
    let addrs = position(&plan, |s| matches!(s, Step::AddAddr { .. }));
    assert_eq!(creates_ns, [0, 1], "{}", show(&plan));
    assert_eq!(plan.steps[1], Step::CreateNs { ns: ns("ns2") });
    assert_eq!(veths.len(), 2);
    assert_eq!(addrs.len(), 4);
    assert!(creates_ns.iter().max() < veths.iter().min());
    assert!(veths.iter().max() < addrs.iter().min());
    assert!(!plan
        .steps
        .iter()
        .any(|s| matches!(s, Step::DeleteLink { .. } | Step::DeleteNs { .. })));
    let mut added: Vec<String> = plan
        .steps
        .iter()
        .filter_map(|s| match s {
            Step::AddAddr { node, dev, addr } => Some(format!("{node}/{dev}/{addr}")),
            _ => None,
        })
        .collect();
    added.sort();
    assert_eq!(
        added,
        [
            "host/veth1/10.66.77.25/24",
            "ns1/eth1000/10.66.77.24/24",
            "ns1/veth-ns2/10.66.78.1/24",
            "ns2/veth-ns1/10.66.78.2/24",
        ]
    );
}

#[test]
fn diff_seed_from_empty_brings_every_veth_end_up_but_not_lo() {
    let plan = diff(&topo(SEED), &host_only());
    let mut ups: Vec<String> = plan
        .steps
        .iter()
        .filter_map(|s| match s {
            Step::SetLink { node, name, set } if set.up == Some(true) => {
                Some(format!("{node}/{name}"))
            }
            _ => None,
        })
        .collect();
    ups.sort();
    assert_eq!(
        ups,
        ["host/veth1", "ns1/eth1000", "ns1/veth-ns2", "ns2/veth-ns1"]
    );
}

#[test]
fn diff_star_from_empty_creates_bridge_before_ports_and_routes_last() {
    let plan = diff(&topo(STAR), &host_only());
    assert!(plan.conflicts.is_empty(), "{}", show(&plan));
    assert_phases_in_order(&plan);
    let bridge = position(&plan, |s| matches!(s, Step::CreateBridge { .. }));
    let veths = position(&plan, |s| matches!(s, Step::CreateVeth { .. }));
    let addrs = position(&plan, |s| matches!(s, Step::AddAddr { .. }));
    let routes = position(&plan, |s| matches!(s, Step::AddRoute { .. }));
    assert_eq!(bridge.len(), 1);
    assert_eq!((veths.len(), addrs.len(), routes.len()), (3, 4, 3));
    assert!(bridge[0] < veths[0]);
    assert!(addrs.iter().max() < routes.iter().min());
    for s in &plan.steps {
        if let Step::CreateVeth { a, b, .. } = s {
            // The end inside the member goes first; the host end is the bridge's port.
            assert!(matches!(a.node, NodeRef::Ns(_)), "{s}");
            assert_eq!(
                (&b.node, b.master.as_ref()),
                (&NodeRef::Host, Some(&ifname("plumb0")))
            );
        }
        if let Step::AddRoute { node, route } = s {
            assert_ne!(node, &NodeRef::Host);
            assert_eq!(
                route,
                &RouteSpec {
                    dst: net("0.0.0.0/0"),
                    via: Some(ip("10.88.0.1")),
                    dev: None
                }
            );
        }
    }
}

#[test]
fn diff_seed_applied_then_diffed_again_is_empty() {
    let k = assert_converges(SEED);
    // The host's own interfaces and routes are still there, untouched.
    assert_eq!(k.snap.host.links[..2], host().links[..]);
    for r in host().routes {
        assert!(k.snap.host.routes.contains(&r));
    }
}

#[test]
fn diff_star_applied_then_diffed_again_is_empty() {
    let k = assert_converges(STAR);
    assert_eq!(
        labs(&k),
        [(
            "star".to_string(),
            crate::inspect::LabCounts {
                namespaces: 3,
                host_links: 4,
                ns_links: 3
            }
        )]
    );
}

#[test]
fn diff_range_network_of_fifty_applied_then_diffed_again_is_empty() {
    let k = assert_converges(MANY);
    let counts = k.snap.labs()["many"];
    assert_eq!((counts.namespaces, counts.host_links), (50, 51));
    let m50 = k.state(&node("m50")).unwrap();
    let eth0 = m50.link("eth0").unwrap();
    assert_eq!(
        m50.addrs_of(eth0.index).collect::<Vec<_>>(),
        [&net("10.50.0.51/24")]
    );
}

#[test]
fn diff_routed_lab_applied_then_diffed_again_is_empty() {
    let k = assert_converges(ROUTED);
    let r1 = k.state(&node("r1")).unwrap();
    assert_eq!(r1.sysctls["net.ipv4.ip_forward"], "1");
    assert_eq!(r1.link("lan").unwrap().mtu, 1400);
    let p1 = r1.link("p1").unwrap();
    assert_eq!(p1.master, Some(r1.link("lan").unwrap().index));
    let h1 = k.state(&node("h1")).unwrap().link("eth0").unwrap();
    assert_eq!(h1.mac, Some(MacAddr([2, 0, 0, 0, 0, 0x11])));
    // IPv6 link-local addresses appeared where IPv6 is on; planning ignores them.
    let up0 = r1.link("up0").unwrap();
    assert!(r1
        .addrs_of(up0.index)
        .any(|a| a.to_string().starts_with("fe80::")));
    let host_route = k
        .snap
        .host
        .routes
        .iter()
        .find(|r| r.dst == net("10.20.0.0/24"))
        .unwrap();
    assert_eq!(host_route.protocol, RTPROT_PLUMB);
}

// ---------------------------------------------------------------------------------------------
// Converging a built lab to an edited file.

/// Builds `before`, plans `after` against the result, applies it and checks that planning
/// `after` once more is empty. Returns the plan.
fn converge(before: &str, after: &str) -> (Plan, Kernel) {
    let mut k = Kernel::host_only();
    k.up(&topo(before));
    let t = topo(after);
    let plan = k.up(&t);
    assert_phases_in_order(&plan);
    let again = diff(&t, &k.snap);
    assert!(again.is_empty(), "not converged:\n{}", show(&again));
    (plan, k)
}

#[test]
fn diff_seed_without_ns2_deletes_ns2_and_its_peer_only() {
    let without_ns2 = r#"
        name = "seed"
        [nodes.ns1.interfaces.eth1000]
        addresses = ["10.66.77.24/24"]
        [nodes.host.interfaces.veth1]
        addresses = ["10.66.77.25/24"]
        [[links]]
        endpoints = ["host:veth1", "ns1:eth1000"]
    "#;
    let (plan, k) = converge(SEED, without_ns2);
    let deleted_ns = position(&plan, |s| s == &Step::DeleteNs { ns: ns("ns2") });
    assert_eq!(deleted_ns.len(), 1, "{}", show(&plan));
    for s in &plan.steps {
        match s {
            Step::DeleteNs { ns: n } => assert_eq!(n.as_str(), "ns2"),
            Step::DeleteLink { node: n, name } => {
                assert_eq!((n, name.as_str()), (&node("ns1"), "veth-ns2"))
            }
            other => panic!("unexpected step `{other}` in\n{}", show(&plan)),
        }
    }
    assert!(k.state(&node("ns2")).is_none());
    assert!(k.link(&node("ns1"), "veth-ns2").is_none());
    assert!(k.link(&node("ns1"), "eth1000").is_some());
}

#[test]
fn diff_seed_changed_address_replaces_only_that_address() {
    let after = edit(
        SEED,
        r#"addresses = ["10.66.78.2/24"]"#,
        r#"addresses = ["10.66.78.3/24"]"#,
    );
    let (plan, _) = converge(SEED, &after);
    assert_eq!(
        plan.steps,
        [
            Step::DelAddr {
                node: node("ns2"),
                dev: "veth-ns1".into(),
                addr: net("10.66.78.2/24")
            },
            Step::AddAddr {
                node: node("ns2"),
                dev: "veth-ns1".into(),
                addr: net("10.66.78.3/24")
            },
        ],
        "{}",
        show(&plan)
    );
}

/// Checks that `plan` rebuilds exactly the pair between `old` ends (deleting at least one of
/// them) into the pair between `new` ends, and that every other step is about the new ends.
fn assert_rebuilds_pair(plan: &Plan, old: [(&str, &str); 2], new: [(&str, &str); 2]) {
    let old: Vec<(NodeRef, String)> = old.iter().map(|(n, i)| (node(n), i.to_string())).collect();
    let new: Vec<(NodeRef, String)> = new.iter().map(|(n, i)| (node(n), i.to_string())).collect();
    let deletes: Vec<(NodeRef, String)> = plan
        .steps
        .iter()
        .filter_map(|s| match s {
            Step::DeleteLink { node, name } => Some((node.clone(), name.clone())),
            _ => None,
        })
        .collect();
    assert!(!deletes.is_empty(), "nothing deleted:\n{}", show(plan));
    for d in &deletes {
        assert!(old.contains(d), "deletes {d:?}:\n{}", show(plan));
    }
    let creates: Vec<&Step> = plan
        .steps
        .iter()
        .filter(|s| matches!(s, Step::CreateVeth { .. }))
        .collect();
    assert_eq!(creates.len(), 1, "{}", show(plan));
    let mut created = links_of(creates[0]);
    created.sort();
    let mut want = new.clone();
    want.sort();
    assert_eq!(created, want);
    for s in &plan.steps {
        match s {
            Step::DeleteLink { .. } | Step::CreateVeth { .. } => {}
            Step::SetLink { .. } | Step::AddAddr { .. } => {
                assert!(new.contains(&links_of(s)[0]), "`{s}` in\n{}", show(plan))
            }
            other => panic!("unexpected step `{other}` in\n{}", show(plan)),
        }
    }
}

#[test]
fn diff_seed_moved_endpoint_rebuilds_only_that_pair() {
    let after = edit(
        SEED,
        r#"endpoints = ["ns1:veth-ns2", "ns2:veth-ns1"]"#,
        r#"endpoints = ["ns1:veth-ns2", "ns2:eth7"]"#,
    );
    let after = edit(
        &after,
        "[nodes.ns2.interfaces.veth-ns1]",
        "[nodes.ns2.interfaces.eth7]",
    );
    let (plan, k) = converge(SEED, &after);
    assert_rebuilds_pair(
        &plan,
        [("ns1", "veth-ns2"), ("ns2", "veth-ns1")],
        [("ns1", "veth-ns2"), ("ns2", "eth7")],
    );
    assert!(k.link(&node("ns2"), "veth-ns1").is_none());
    let adds = position(&plan, |s| matches!(s, Step::AddAddr { .. }));
    assert_eq!(
        adds.len(),
        2,
        "both ends get their addresses back:\n{}",
        show(&plan)
    );
}

#[test]
fn diff_seed_endpoint_moved_to_other_namespace_rebuilds_only_that_pair() {
    let after = edit(
        SEED,
        r#"endpoints = ["host:veth1", "ns1:eth1000"]"#,
        r#"endpoints = ["host:veth1", "ns2:eth1000"]"#,
    );
    let after = edit(
        &after,
        "[nodes.ns1.interfaces.eth1000]",
        "[nodes.ns2.interfaces.eth1000]",
    );
    let (plan, k) = converge(SEED, &after);
    assert_rebuilds_pair(
        &plan,
        [("host", "veth1"), ("ns1", "eth1000")],
        [("host", "veth1"), ("ns2", "eth1000")],
    );
    assert!(k.link(&node("ns1"), "eth1000").is_none());
    assert!(k.link(&node("ns1"), "veth-ns2").is_some());
}

#[test]
fn diff_seed_changed_link_mtu_rebuilds_only_that_pair() {
    let line = r#"endpoints = ["ns1:veth-ns2", "ns2:veth-ns1"]"#;
    let after = edit(SEED, line, &format!("{line}\nmtu = 1400"));
    let (plan, k) = converge(SEED, &after);
    assert_rebuilds_pair(
        &plan,
        [("ns1", "veth-ns2"), ("ns2", "veth-ns1")],
        [("ns1", "veth-ns2"), ("ns2", "veth-ns1")],
    );
    assert_eq!(k.link(&node("ns1"), "veth-ns2").unwrap().mtu, 1400);
    assert_eq!(k.link(&node("ns2"), "veth-ns1").unwrap().mtu, 1400);
    assert_eq!(k.link(&node("ns1"), "eth1000").unwrap().mtu, 1500);
}

#[test]
fn diff_bridge_mtu_changed_sets_it_in_place() {
    let after = edit(ROUTED, "mtu = 1400\n\n[nodes.h1", "mtu = 1380\n\n[nodes.h1");
    let (plan, _) = converge(ROUTED, &after);
    assert_eq!(
        plan.steps,
        [Step::SetLink {
            node: node("r1"),
            name: "lan".into(),
            set: LinkSet {
                mtu: Some(1380),
                ..LinkSet::default()
            }
        }],
        "{}",
        show(&plan)
    );
}

#[test]
fn diff_changed_mac_sets_it_in_place() {
    let after = edit(ROUTED, "02:00:00:00:00:11", "02:00:00:00:00:12");
    let (plan, _) = converge(ROUTED, &after);
    assert_eq!(
        plan.steps,
        [Step::SetLink {
            node: node("h1"),
            name: "eth0".into(),
            set: LinkSet {
                mac: Some(MacAddr([2, 0, 0, 0, 0, 0x12])),
                ..LinkSet::default()
            }
        }],
        "{}",
        show(&plan)
    );
}

#[test]
fn diff_changed_sysctl_sets_only_that_sysctl() {
    let after = edit(
        ROUTED,
        r#""net.ipv4.ip_forward" = 1"#,
        r#""net.ipv4.ip_forward" = 0"#,
    );
    let (plan, _) = converge(ROUTED, &after);
    assert_eq!(
        plan.steps,
        [Step::Sysctl {
            node: node("r1"),
            key: "net.ipv4.ip_forward".into(),
            value: "0".into()
        }],
        "{}",
        show(&plan)
    );
}

#[test]
fn diff_rebuilt_pair_gets_its_routes_back() {
    let from = "endpoints = [\"lan:p1\", \"h1:eth0\"]\nmtu = 1400";
    let after = edit(
        ROUTED,
        from,
        "endpoints = [\"lan:p1\", \"h1:eth0\"]\nmtu = 1300",
    );
    let (plan, k) = converge(ROUTED, &after);
    let deletes: Vec<&Step> = plan.steps.iter().filter(|s| phase(s) == 0).collect();
    assert!(!deletes.is_empty());
    for s in deletes {
        let l = &links_of(s)[0];
        assert!(
            *l == (node("r1"), "p1".into()) || *l == (node("h1"), "eth0".into()),
            "`{s}` in\n{}",
            show(&plan)
        );
    }
    // The kernel removed h1's default route with the old eth0; the plan puts it back.
    assert!(plan.steps.contains(&Step::AddRoute {
        node: node("h1"),
        route: RouteSpec {
            dst: net("0.0.0.0/0"),
            via: Some(ip("10.20.0.1")),
            dev: None
        }
    }));
    assert!(!plan.steps.iter().any(|s| nodes_of(s).contains(&node("h2"))));
    assert_eq!(k.link(&node("h1"), "eth0").unwrap().mtu, 1300);
}

#[test]
fn diff_namespace_removed_from_routed_lab_takes_its_bridge_port_along() {
    let after = edit(
        ROUTED,
        "[nodes.h2.interfaces.eth0]\naddresses = [\"10.20.0.12/24\"]\n\n\
         [nodes.h2]\nroutes = [{ to = \"default\", via = \"10.20.0.1\" }]\n",
        "",
    );
    let after = edit(
        &after,
        "[[links]]\nendpoints = [\"lan:p2\", \"h2:eth0\"]\nmtu = 1400\n",
        "",
    );
    let (plan, k) = converge(ROUTED, &after);
    for s in &plan.steps {
        assert!(
            *s == Step::DeleteNs { ns: ns("h2") }
                || *s
                    == Step::DeleteLink {
                        node: node("r1"),
                        name: "p2".into()
                    },
            "unexpected `{s}` in\n{}",
            show(&plan)
        );
    }
    assert!(k.state(&node("h2")).is_none());
    assert!(k.link(&node("r1"), "p2").is_none());
    assert!(k.link(&node("r1"), "p1").is_some());
}

#[test]
fn diff_route_removed_from_file_deletes_only_plumbs_route() {
    let mut k = Kernel::host_only();
    k.up(&topo(ROUTED));
    // An administrator's own route in a lab namespace is not plumb's to remove.
    let h1 = node("h1");
    let eth0 = k.link(&h1, "eth0").unwrap().index;
    k.state_mut(&h1).unwrap().routes.push(route(
        "10.77.0.0/16",
        Some("10.20.0.1"),
        eth0,
        RTPROT_STATIC,
    ));
    let after = edit(
        ROUTED,
        "[nodes.h1]\nroutes = [{ to = \"default\", via = \"10.20.0.1\" }]",
        "[nodes.h1]",
    );
    let t = topo(&after);
    let plan = k.up(&t);
    assert_eq!(
        plan.steps,
        [Step::DelRoute {
            node: h1.clone(),
            route: RouteSpec {
                dst: net("0.0.0.0/0"),
                via: Some(ip("10.20.0.1")),
                dev: Some("eth0".into())
            }
        }],
        "{}",
        show(&plan)
    );
    assert!(diff(&t, &k.snap).is_empty());
    assert!(k
        .state(&h1)
        .unwrap()
        .routes
        .iter()
        .any(|r| r.protocol == RTPROT_STATIC));
}

#[test]
fn diff_interface_taken_down_in_file_sets_it_down() {
    let line = "[nodes.ns2.interfaces.veth-ns1]\n";
    let after = edit(SEED, line, &format!("{line}up = false\n"));
    let (plan, _) = converge(SEED, &after);
    assert_eq!(
        plan.steps,
        [Step::SetLink {
            node: node("ns2"),
            name: "veth-ns1".into(),
            set: LinkSet {
                up: Some(false),
                ..LinkSet::default()
            }
        }],
        "{}",
        show(&plan)
    );
}

#[test]
fn diff_two_labs_in_one_kernel_leave_each_other_alone() {
    let mut k = Kernel::host_only();
    k.up(&topo(STAR));
    let star_before = k.snap.labs()["star"];
    let plan = k.up(&topo(SEED));
    for s in &plan.steps {
        for n in nodes_of(s) {
            assert!(
                !["web", "db", "cache"].contains(&n.to_string().as_str()),
                "`{s}` touches lab star"
            );
        }
    }
    assert_eq!(k.snap.labs()["star"], star_before);
    assert!(diff(&topo(STAR), &k.snap).is_empty());
    assert!(diff(&topo(SEED), &k.snap).is_empty());
}

// ---------------------------------------------------------------------------------------------
// Objects in the way.

#[test]
fn diff_foreign_namespace_conflicts_and_is_never_touched() {
    let mut snap = host_only();
    snap.namespaces.extend([named("ns1", None, vec![])]);
    let plan = diff(&topo(SEED), &snap);
    assert_eq!(
        plan.conflicts,
        [Conflict {
            node: NodeRef::Host,
            object: "namespace ns1".into(),
            owner: None
        }]
    );
    let msg = plan.conflicts[0].to_string();
    assert!(
        msg.contains("namespace ns1") && msg.contains("not created by plumb"),
        "{msg}"
    );
    for s in &plan.steps {
        assert!(
            !nodes_of(s).contains(&node("ns1")),
            "`{s}` touches the foreign namespace ns1 in\n{}",
            show(&plan)
        );
    }
}

#[test]
fn diff_foreign_host_interface_conflicts_and_is_never_touched() {
    let mut snap = host_only();
    snap.host.links.push(link(3, "veth1", LinkKind::Veth, None));
    snap.host.addrs.push(addr(3, "172.17.0.1/16"));
    let plan = diff(&topo(SEED), &snap);
    assert_eq!(
        plan.conflicts,
        [Conflict {
            node: NodeRef::Host,
            object: "interface veth1".into(),
            owner: None
        }]
    );
    for s in &plan.steps {
        assert!(
            !links_of(s).contains(&(NodeRef::Host, "veth1".into())),
            "`{s}` touches the foreign interface veth1 in\n{}",
            show(&plan)
        );
    }
}

#[test]
fn diff_other_labs_namespace_conflicts_with_that_labs_name() {
    let mut snap = host_only();
    snap.namespaces
        .extend([named("ns2", Some(&tag(&lab("other"))), vec![])]);
    let plan = diff(&topo(SEED), &snap);
    assert_eq!(
        plan.conflicts,
        [Conflict {
            node: NodeRef::Host,
            object: "namespace ns2".into(),
            owner: Some("other".into())
        }]
    );
    assert!(plan.conflicts[0]
        .to_string()
        .contains("belongs to lab `other`"));
    assert!(!plan
        .steps
        .iter()
        .any(|s| matches!(s, Step::DeleteNs { .. } | Step::DeleteLink { .. })));
}

#[test]
fn diff_other_labs_interface_in_host_conflicts_with_that_labs_name() {
    let mut snap = host_only();
    snap.host.links.push(link(
        3,
        "veth1",
        LinkKind::Veth,
        Some(&veth_tag(&lab("other"), "0123456789ab")),
    ));
    let plan = diff(&topo(SEED), &snap);
    assert_eq!(
        plan.conflicts,
        [Conflict {
            node: NodeRef::Host,
            object: "interface veth1".into(),
            owner: Some("other".into())
        }]
    );
}

// ---------------------------------------------------------------------------------------------
// Teardown.

/// A kernel holding lab seed, lab star, a foreign namespace and a foreign bridge.
fn shared_kernel() -> Kernel {
    let mut k = Kernel::host_only();
    k.snap.namespaces.extend([named(
        "foreign",
        None,
        vec![link(2, "eth0", LinkKind::Veth, None)],
    )]);
    k.snap
        .host
        .links
        .push(link(3, "docker0", LinkKind::Bridge, None));
    k.up(&topo(SEED));
    k.up(&topo(STAR));
    k
}

#[test]
fn teardown_in_shared_kernel_removes_only_the_labs_objects() {
    let mut k = shared_kernel();
    let star_before = k.snap.labs()["star"];
    let foreign_before = k.snap.namespaces[&ns("foreign")].clone();
    let seed = lab("seed");
    let plan = teardown(&seed, &k.snap);
    assert_eq!(
        plan.steps,
        [
            Step::DeleteGroup {
                group: lab_group(&seed)
            },
            Step::DeleteNs { ns: ns("ns1") },
            Step::DeleteNs { ns: ns("ns2") },
        ],
        "{}",
        show(&plan)
    );
    k.apply(&seed, &plan);
    assert!(!k.snap.labs().contains_key("seed"), "{:?}", labs(&k));
    assert_eq!(k.snap.labs()["star"], star_before);
    assert_eq!(k.snap.namespaces[&ns("foreign")], foreign_before);
    assert!(k.snap.host.link("docker0").is_some());
    assert_eq!(k.snap.host.links[..2], host().links[..]);
    assert!(diff(&topo(STAR), &k.snap).is_empty());
    assert!(teardown(&seed, &k.snap).is_empty());
}

#[test]
fn teardown_group_with_a_foreign_member_deletes_links_one_by_one() {
    let mut k = shared_kernel();
    let seed = lab("seed");
    // Something else put an interface into the group seed's name hashes to.
    let mut stray = link(90, "stray0", LinkKind::Device, None);
    stray.group = lab_group(&seed);
    k.snap.host.links.push(stray);
    let plan = teardown(&seed, &k.snap);
    assert_eq!(
        plan.steps,
        [
            Step::DeleteLink {
                node: NodeRef::Host,
                name: "veth1".into()
            },
            Step::DeleteNs { ns: ns("ns1") },
            Step::DeleteNs { ns: ns("ns2") },
        ],
        "{}",
        show(&plan)
    );
    k.apply(&seed, &plan);
    assert!(!k.snap.labs().contains_key("seed"));
    assert!(k.snap.host.link("stray0").is_some());
}

#[test]
fn teardown_group_member_of_another_lab_deletes_links_one_by_one() {
    let seed = lab("seed");
    let mut snap = host_only();
    let mut ours = link(
        3,
        "veth1",
        LinkKind::Veth,
        Some(&veth_tag(&seed, "aaaaaaaaaaaa")),
    );
    ours.group = lab_group(&seed);
    let mut theirs = link(4, "x0", LinkKind::Bridge, Some(&tag(&lab("other"))));
    theirs.group = lab_group(&seed);
    snap.host.links.extend([ours, theirs]);
    let plan = teardown(&seed, &snap);
    assert_eq!(
        plan.steps,
        [Step::DeleteLink {
            node: NodeRef::Host,
            name: "veth1".into()
        }]
    );
}

#[test]
fn teardown_owned_link_outside_the_group_is_deleted_by_name() {
    let seed = lab("seed");
    let mut snap = host_only();
    let mut grouped = link(
        3,
        "veth1",
        LinkKind::Veth,
        Some(&veth_tag(&seed, "aaaaaaaaaaaa")),
    );
    grouped.group = lab_group(&seed);
    let ungrouped = link(4, "br9", LinkKind::Bridge, Some(&tag(&seed)));
    snap.host.links.extend([grouped, ungrouped]);
    let plan = teardown(&seed, &snap);
    assert_eq!(
        plan.steps,
        [
            Step::DeleteGroup {
                group: lab_group(&seed)
            },
            Step::DeleteLink {
                node: NodeRef::Host,
                name: "br9".into()
            },
        ]
    );
}

#[test]
fn teardown_lab_that_owns_nothing_is_empty() {
    let k = shared_kernel();
    let plan = teardown(&lab("absent"), &k.snap);
    assert!(plan.is_empty(), "{}", show(&plan));
}

#[test]
fn teardown_lab_with_similar_name_is_not_matched_by_prefix() {
    let mut k = Kernel::host_only();
    k.up(&topo(STAR));
    let plan = teardown(&lab("sta"), &k.snap);
    assert!(plan.is_empty(), "{}", show(&plan));
}

// ---------------------------------------------------------------------------------------------
// Display.

#[test]
fn step_display_renders_the_ip_command() {
    let veth = |a: (&str, &str), b: (&str, &str), mtu: Option<u32>| Step::CreateVeth {
        a: super::VethEnd {
            node: node(a.0),
            name: ifname(a.1),
            mtu,
            mac: None,
            master: None,
            ipv6: false,
        },
        b: super::VethEnd {
            node: node(b.0),
            name: ifname(b.1),
            mtu,
            mac: None,
            master: None,
            ipv6: false,
        },
        link_id: "0".into(),
    };
    let cases = [
        (Step::CreateNs { ns: ns("ns1") }, "ip netns add ns1"),
        (Step::DeleteNs { ns: ns("ns1") }, "ip netns del ns1"),
        (
            veth(("ns1", "veth-ns2"), ("ns2", "veth-ns1"), None),
            "ip -n ns1 link add veth-ns2 type veth peer name veth-ns1 netns ns2",
        ),
        (
            veth(("host", "a0"), ("host", "b0"), Some(1400)),
            "ip link add a0 mtu 1400 type veth peer name b0",
        ),
        (
            Step::AddAddr {
                node: node("ns1"),
                dev: "eth1000".into(),
                addr: net("10.66.77.24/24"),
            },
            "ip -n ns1 addr add 10.66.77.24/24 dev eth1000",
        ),
        (
            Step::DelAddr {
                node: NodeRef::Host,
                dev: "veth1".into(),
                addr: net("10.66.77.25/24"),
            },
            "ip addr del 10.66.77.25/24 dev veth1",
        ),
        (
            Step::AddRoute {
                node: node("web"),
                route: RouteSpec {
                    dst: net("0.0.0.0/0"),
                    via: Some(ip("10.88.0.1")),
                    dev: None,
                },
            },
            "ip -n web route add default via 10.88.0.1",
        ),
        (
            Step::DelRoute {
                node: NodeRef::Host,
                route: RouteSpec {
                    dst: net("10.20.0.0/24"),
                    via: Some(ip("10.10.0.2")),
                    dev: Some("r1up".into()),
                },
            },
            "ip route del 10.20.0.0/24 via 10.10.0.2 dev r1up",
        ),
        (
            Step::SetLink {
                node: node("ns1"),
                name: "eth1000".into(),
                set: LinkSet {
                    up: Some(true),
                    ..LinkSet::default()
                },
            },
            "ip -n ns1 link set eth1000 up",
        ),
        (
            Step::SetLink {
                node: NodeRef::Host,
                name: "p1".into(),
                set: LinkSet {
                    mtu: Some(9000),
                    master: Some(None),
                    ..LinkSet::default()
                },
            },
            "ip link set p1 mtu 9000 nomaster",
        ),
        (
            Step::CreateBridge {
                node: NodeRef::Host,
                name: ifname("plumb0"),
                mtu: None,
                stp: false,
                mac: MacAddr([2, 0, 0, 0, 0, 1]),
                ipv6: false,
            },
            "ip link add plumb0 type bridge stp_state 0",
        ),
        (
            Step::DeleteLink {
                node: node("ns1"),
                name: "eth1000".into(),
            },
            "ip -n ns1 link del eth1000",
        ),
        (
            Step::DeleteGroup { group: 0x706c_0001 },
            "ip link del group 1886126081",
        ),
        (
            Step::Sysctl {
                node: node("r1"),
                key: "net.ipv4.ip_forward".into(),
                value: "1".into(),
            },
            "ip netns exec r1 sysctl -w net.ipv4.ip_forward=1",
        ),
    ];
    for (step, want) in cases {
        assert_eq!(step.to_string(), want);
    }
}

#[test]
fn step_inverse_undoes_creations_only() {
    let add = Step::AddAddr {
        node: node("ns1"),
        dev: "eth0".into(),
        addr: net("10.0.0.1/24"),
    };
    assert_eq!(
        add.inverse(),
        Some(Step::DelAddr {
            node: node("ns1"),
            dev: "eth0".into(),
            addr: net("10.0.0.1/24")
        })
    );
    assert_eq!(
        Step::CreateNs { ns: ns("ns1") }.inverse(),
        Some(Step::DeleteNs { ns: ns("ns1") })
    );
    assert_eq!(Step::DeleteNs { ns: ns("ns1") }.inverse(), None);
    let set = Step::SetLink {
        node: NodeRef::Host,
        name: "x".into(),
        set: LinkSet::default(),
    };
    assert_eq!(set.inverse(), None);
}
