//! A simulated kernel: a snapshot that steps can be applied to.
//!
//! It is strict where the real one would refuse a step (EEXIST on a create, ENODEV on a missing
//! interface, ENETUNREACH for a gateway without a connected route, EBUSY for renaming an
//! interface that is up), so that running a plan in it also checks that every step's
//! prerequisites come earlier. It panics as well when a step changes or deletes an object the
//! lab does not own, or adds anything to a namespace the lab does not own: the planner's first
//! invariant. Deleting something that is already gone is tolerated (apply counts it as done)
//! and recorded in [`Kernel::gone`]. It also does what the kernel does on its own: a link
//! taken down loses its routes and IPv6 addresses; one brought up gets a link-local address
//! (where IPv6 address generation is on) and connected routes.

mod step;

use std::collections::{HashMap, HashSet};

use ipnet::IpNet;

use super::{net, show, RTPROT_KERNEL};
use crate::inspect::{AddrState, LinkState, NsState, RouteState, Snapshot};
use crate::model::names::LabName;
use crate::model::{NodeRef, Topology};
use crate::ownership::RTPROT_PLUMB;
use crate::plan::{diff, Plan, Step};

/// A snapshot that steps can be applied to.
#[derive(Clone)]
pub(crate) struct Kernel {
    pub snap: Snapshot,
    /// veth pairs, both ways: deleting one end deletes the other.
    pub peers: HashMap<(NodeRef, String), (NodeRef, String)>,
    /// Interfaces created with IPv6 address generation on: they get a link-local address when
    /// they come up.
    pub addrgen: HashSet<(NodeRef, String)>,
    /// Deletions of objects that were already gone (the kernel says ENOENT/ENODEV/ESRCH).
    pub gone: Vec<Step>,
    /// Counter for generated MACs and link-local addresses.
    serial: u16,
    /// For [`Backend`]: the lab whose steps run, and the 1-based numbers of steps to refuse.
    pub lab: Option<LabName>,
    pub refuse: Vec<usize>,
    pub executed: usize,
}

pub(super) fn next_index(st: &NsState) -> u32 {
    st.links.iter().map(|l| l.index).max().unwrap_or(0) + 1
}

/// The prefix route the kernel adds for an address, if it adds one.
pub(super) fn connected(a: &IpNet) -> Option<IpNet> {
    (a.prefix_len() < a.max_prefix_len()).then(|| a.trunc())
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

fn is_link_local(a: &IpNet) -> bool {
    matches!(a, IpNet::V6(v) if v.addr().segments()[0] == 0xfe80)
}

/// A snapshot in a canonical order, for comparing two states.
pub(crate) fn normalized(snap: &Snapshot) -> Snapshot {
    let mut s = snap.clone();
    let norm = |st: &mut NsState| {
        st.links.sort_by_key(|l| l.index);
        st.addrs.sort_by_key(|a| (a.index, a.addr.to_string()));
        st.routes
            .sort_by_key(|r| (r.dst.to_string(), r.oif, r.via, r.protocol));
    };
    norm(&mut s.host);
    for ns in s.namespaces.values_mut() {
        if let Ok(st) = &mut ns.state {
            norm(st);
        }
    }
    s
}

impl Kernel {
    pub fn new(snap: Snapshot) -> Self {
        Kernel {
            snap,
            peers: HashMap::new(),
            addrgen: HashSet::new(),
            gone: Vec::new(),
            serial: 0,
            lab: None,
            refuse: Vec::new(),
            executed: 0,
        }
    }

    pub fn host_only() -> Self {
        Kernel::new(super::host_only())
    }

    /// Settles `topo`'s member addresses and plans it against the current state (as
    /// `lab::up` does), applies the plan and returns it.
    pub fn up(&mut self, topo: &Topology) -> Plan {
        let topo = &*crate::plan::settle(topo, &self.snap);
        let plan = diff(topo, &self.snap);
        assert!(
            plan.conflicts.is_empty(),
            "unexpected conflicts:\n{}",
            show(&plan)
        );
        self.apply(&topo.name, &plan);
        plan
    }

    pub fn apply(&mut self, lab: &LabName, plan: &Plan) {
        assert!(
            plan.conflicts.is_empty(),
            "a plan with conflicts must not run:\n{}",
            show(plan)
        );
        for step in &plan.steps {
            self.step(lab, step);
        }
    }

    pub fn state(&self, node: &NodeRef) -> Option<&NsState> {
        match node {
            NodeRef::Host => Some(&self.snap.host),
            NodeRef::Ns(n) => self
                .snap
                .namespaces
                .get(n)
                .and_then(|ns| ns.state.as_ref().ok()),
        }
    }

    pub fn state_mut(&mut self, node: &NodeRef) -> Option<&mut NsState> {
        match node {
            NodeRef::Host => Some(&mut self.snap.host),
            NodeRef::Ns(n) => self
                .snap
                .namespaces
                .get_mut(n)
                .and_then(|ns| ns.state.as_mut().ok()),
        }
    }

    pub fn link(&self, node: &NodeRef, name: &str) -> Option<&LinkState> {
        self.state(node).and_then(|s| s.link(name))
    }

    pub fn link_mut(&mut self, node: &NodeRef, name: &str) -> Option<&mut LinkState> {
        self.state_mut(node)
            .and_then(|s| s.links.iter_mut().find(|l| l.name == name))
    }

    /// Steps may add to the host and to the lab's own namespaces only.
    pub(super) fn assert_may_add(&self, lab: &LabName, node: &NodeRef, step: &Step) {
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
    pub(super) fn owned_link(&self, lab: &LabName, node: &NodeRef, name: &str, step: &Step) -> u32 {
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

    pub(super) fn serial(&mut self) -> u16 {
        self.serial += 1;
        self.serial
    }

    /// What the kernel does when an interface comes up or goes down.
    pub fn set_up(&mut self, node: &NodeRef, name: &str, up: bool) {
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
            st.addrs
                .retain(|a| !(a.index == index && matches!(a.addr, IpNet::V6(_))));
            return;
        }
        if let Some(n) = ll {
            if !st.addrs_of(index).any(is_link_local) {
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
    pub fn remove_link(&mut self, node: &NodeRef, name: &str) {
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

    /// Renames an interface (it must be down), keeping the pair bookkeeping straight.
    pub(super) fn rename(&mut self, node: &NodeRef, from: &str, to: &str, step: &Step) {
        assert!(
            self.link(node, to).is_none(),
            "`{step}`: {to} exists in {node} (EEXIST)"
        );
        let l = self
            .link_mut(node, from)
            .unwrap_or_else(|| panic!("`{step}`: no interface {from} in {node} (ENODEV)"));
        assert!(!l.up, "`{step}`: {from} is up (EBUSY)");
        l.name = to.to_string();
        let old = (node.clone(), from.to_string());
        let new = (node.clone(), to.to_string());
        if let Some(peer) = self.peers.remove(&old) {
            self.peers.insert(peer.clone(), new.clone());
            self.peers.insert(new.clone(), peer);
        }
        if self.addrgen.remove(&old) {
            self.addrgen.insert(new);
        }
    }

    pub(super) fn add_route(
        &mut self,
        node: &NodeRef,
        route: &crate::plan::RouteSpec,
        replace: bool,
        step: &Step,
    ) {
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
                        a.addr.contains(&via) && st.link_by_index(a.index).is_some_and(|l| l.up)
                    })
                    .unwrap_or_else(|| panic!("`{step}`: gateway unreachable (ENETUNREACH)"))
                    .index
            }
            (None, None) => panic!("`{step}`: neither gateway nor device"),
        };
        // One route per destination (plumb sets no metric): in IPv6 too, an exclusive add of a
        // second gateway is EEXIST and a replace takes the old route's place (the kernel's
        // fib6_add_rt2node with NLM_F_EXCL / NLM_F_REPLACE, as `ip -6 route replace` shows).
        let clash = st.routes.iter().position(|r| r.dst == route.dst);
        let st = self.state_mut(node).unwrap();
        match (clash, replace) {
            (Some(pos), true) => {
                assert_eq!(
                    st.routes[pos].protocol, RTPROT_PLUMB,
                    "`{step}` replaces a route plumb did not install"
                );
                st.routes.remove(pos);
            }
            (Some(_), false) => panic!("`{step}`: exists (EEXIST)"),
            (None, _) => {}
        }
        st.routes.push(RouteState {
            dst: route.dst,
            via: route.via,
            oif: Some(oif),
            protocol: RTPROT_PLUMB,
        });
    }

    pub(super) fn add_addr(&mut self, node: &NodeRef, dev: &str, addr: &IpNet, step: &Step) {
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
}
