//! Planner tests. Pure: snapshots are built by hand, and a small in-memory kernel
//! ([`kernel::Kernel`]) applies a plan's steps to a snapshot the way the kernel backend would,
//! so that a plan can be checked against its own result (idempotency, convergence, teardown,
//! and — with `apply` — that undoing a failed run restores the state exactly).
//!
//! Files: `kernel` (the simulator), `build` (labs from nothing), `converge` (edits of a built
//! lab), `conflicts`, `teardown` (down and crash recovery), `display` (steps as commands).

mod build;
mod conflicts;
mod converge;
mod display;
pub(crate) mod kernel;
mod settle;
mod teardown;

use std::net::IpAddr;

use ipnet::IpNet;

use super::{diff, Plan, Step};
use crate::inspect::{AddrState, LinkKind, LinkState, NamedNs, NsState, RouteState, Snapshot};
use crate::model::names::{IfName, LabName, NsName};
use crate::model::{parse_toml, MacAddr, NodeRef, Topology};
pub(crate) use kernel::Kernel;

/// RTPROT_KERNEL from `include/uapi/linux/rtnetlink.h`: connected routes.
pub(crate) const RTPROT_KERNEL: u8 = 2;
/// RTPROT_STATIC from `include/uapi/linux/rtnetlink.h`: routes an administrator added.
pub(crate) const RTPROT_STATIC: u8 = 4;

pub(crate) const SEED: &str = include_str!("../../../../../examples/seed.toml");
pub(crate) const STAR: &str = include_str!("../../../../../examples/star.toml");

/// A router between the host and a bridge inside a namespace: loopback addresses, IPv6,
/// sysctls, MTUs, a fixed MAC, routes by gateway and by device, in the host and in namespaces.
pub(crate) const ROUTED: &str = r#"
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

pub(crate) const MANY: &str = r#"
name = "many"

[networks.br50]
subnet = "10.50.0.0/24"
members = ["m[1..50]"]
"#;

// ---------------------------------------------------------------------------------------------
// Names, topologies, hand-built snapshots.

pub(crate) fn lab(name: &str) -> LabName {
    LabName::new(name).unwrap()
}

pub(crate) fn ns(name: &str) -> NsName {
    NsName::new(name).unwrap()
}

pub(crate) fn node(name: &str) -> NodeRef {
    if name == "host" {
        NodeRef::Host
    } else {
        NodeRef::Ns(ns(name))
    }
}

pub(crate) fn ifname(name: &str) -> IfName {
    IfName::new(name).unwrap()
}

pub(crate) fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

pub(crate) fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

pub(crate) fn topo(src: &str) -> Topology {
    parse_toml(src, "test.toml").unwrap_or_else(|e| panic!("topology does not load:\n{e}"))
}

/// `src` with `from` replaced by `to`; `from` must occur exactly once.
pub(crate) fn edit(src: &str, from: &str, to: &str) -> String {
    assert_eq!(
        src.matches(from).count(),
        1,
        "`{from}` is not in the file once"
    );
    src.replace(from, to)
}

pub(crate) fn link(index: u32, name: &str, kind: LinkKind, alias: Option<&str>) -> LinkState {
    LinkState {
        index,
        name: name.into(),
        kind,
        alias: alias.map(str::to_string),
        mtu: 1500,
        mac: None,
        up: true,
        lower_up: true,
        operstate: "up".into(),
        master: None,
        peer_index: None,
        peer_netnsid: None,
        group: 0,
        isolated: false,
        stp: None,
    }
}

pub(crate) fn lo(alias: Option<&str>) -> LinkState {
    LinkState {
        mtu: 65536,
        ..link(1, "lo", LinkKind::Loopback, alias)
    }
}

pub(crate) fn addr(index: u32, a: &str) -> AddrState {
    AddrState {
        index,
        addr: net(a),
    }
}

pub(crate) fn route(dst: &str, via: Option<&str>, oif: u32, protocol: u8) -> RouteState {
    RouteState {
        dst: net(dst),
        via: via.map(ip),
        oif: Some(oif),
        protocol,
    }
}

/// A namespace whose `lo` carries `alias` (None: not plumb's).
pub(crate) fn named(name: &str, alias: Option<&str>, more: Vec<LinkState>) -> (NsName, NamedNs) {
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
pub(crate) fn host() -> NsState {
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

pub(crate) fn host_only() -> Snapshot {
    Snapshot {
        host: host(),
        ..Snapshot::default()
    }
}

pub(crate) fn show(plan: &Plan) -> String {
    let mut out: Vec<String> = plan.steps.iter().map(ToString::to_string).collect();
    out.extend(plan.conflicts.iter().map(|c| format!("conflict: {c}")));
    out.join("\n")
}

/// Where a step acts: the namespaces it touches.
pub(crate) fn nodes_of(step: &Step) -> Vec<NodeRef> {
    match step {
        Step::DeleteGroup { .. } => vec![NodeRef::Host],
        Step::CreateNs { ns } | Step::DeleteNs { ns } => vec![NodeRef::Ns(ns.clone())],
        Step::CreateVeth { a, b, .. } => vec![a.node.clone(), b.node.clone()],
        Step::DeleteLink { node, .. }
        | Step::ParkLink { node, .. }
        | Step::UnparkLink { node, .. }
        | Step::DelRoute { node, .. }
        | Step::DelAddr { node, .. }
        | Step::Sysctl { node, .. }
        | Step::CreateBridge { node, .. }
        | Step::SetLink { node, .. }
        | Step::AddAddr { node, .. }
        | Step::AddRoute { node, .. }
        | Step::Firewall { node, .. }
        | Step::RestoreFirewall { node, .. }
        | Step::DeleteFirewall { node, .. } => vec![node.clone()],
    }
}

/// The interfaces a step creates, changes or deletes by name.
pub(crate) fn links_of(step: &Step) -> Vec<(NodeRef, String)> {
    match step {
        Step::CreateVeth { a, b, .. } => vec![
            (a.node.clone(), a.name.to_string()),
            (b.node.clone(), b.name.to_string()),
        ],
        Step::CreateBridge { node, name, .. } => vec![(node.clone(), name.to_string())],
        Step::DeleteLink { node, name, .. }
        | Step::SetLink { node, name, .. }
        | Step::ParkLink { node, name, .. }
        | Step::UnparkLink { node, name, .. } => vec![(node.clone(), name.clone())],
        Step::DelAddr { node, dev, .. } | Step::AddAddr { node, dev, .. } => {
            vec![(node.clone(), dev.clone())]
        }
        Step::DelRoute { node, route } | Step::AddRoute { node, route, .. } => route
            .dev
            .iter()
            .map(|d| (node.clone(), d.clone()))
            .collect(),
        _ => vec![],
    }
}

/// The position of a step's kind in a plan from `diff`; a plan's order never goes backwards.
pub(crate) fn order(step: &Step) -> u8 {
    match step {
        Step::ParkLink { .. } | Step::UnparkLink { .. } => 0,
        Step::CreateNs { .. } => 1,
        Step::Sysctl { .. } => 2,
        Step::CreateBridge { .. } => 3,
        Step::CreateVeth { .. } => 4,
        Step::SetLink { .. } => 5,
        Step::AddAddr { .. } => 6,
        Step::AddRoute { .. } => 7,
        Step::Firewall { .. } | Step::RestoreFirewall { .. } => 8,
        Step::DeleteFirewall { .. } => 9,
        Step::DelRoute { .. } => 10,
        Step::DelAddr { .. } => 11,
        Step::DeleteLink { .. } | Step::DeleteGroup { .. } => 12,
        Step::DeleteNs { .. } => 13,
    }
}

pub(crate) fn assert_order(plan: &Plan) {
    for w in plan.steps.windows(2) {
        assert!(
            order(&w[0]) <= order(&w[1]),
            "`{}` comes before `{}` in\n{}",
            w[0],
            w[1],
            show(plan)
        );
    }
}

pub(crate) fn position(plan: &Plan, f: impl Fn(&Step) -> bool) -> Vec<usize> {
    plan.steps
        .iter()
        .enumerate()
        .filter(|(_, s)| f(s))
        .map(|(i, _)| i)
        .collect()
}

/// Builds `src` from the host alone, checks the plan's order, and checks that planning again
/// finds nothing to do.
pub(crate) fn assert_converges(src: &str) -> Kernel {
    let t = topo(src);
    let mut k = Kernel::host_only();
    let plan = k.up(&t);
    assert!(!plan.is_empty());
    assert_order(&plan);
    let settled = crate::plan::settle(&t, &k.snap);
    assert_eq!(
        *settled, t,
        "a fresh lab's members have the file's own addresses"
    );
    let again = diff(&settled, &k.snap);
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

/// Builds `before`, plans `after` against the result, applies it and checks that planning
/// `after` once more is empty. Returns the plan.
pub(crate) fn converge(before: &str, after: &str) -> (Plan, Kernel) {
    let mut k = Kernel::host_only();
    k.up(&topo(before));
    let t = topo(after);
    let plan = k.up(&t);
    assert_order(&plan);
    let again = diff(&crate::plan::settle(&t, &k.snap), &k.snap);
    assert!(again.is_empty(), "not converged:\n{}", show(&again));
    (plan, k)
}

pub(crate) fn labs(k: &Kernel) -> Vec<(String, crate::inspect::LabCounts)> {
    k.snap.labs().into_iter().collect()
}
