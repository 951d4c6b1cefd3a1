//! `diff(Topology, Snapshot) -> Plan`: what to create, change, rename out of the way and remove
//! so that the kernel matches the file, touching only what the lab owns.
//!
//! How a converge stays undoable: nothing the lab keeps is removed before everything new exists
//! and every change is made. Objects the file no longer names are deleted in the commit phase,
//! at the end. The only thing that cannot wait is an interface whose name a new interface takes
//! (a veth pair whose ends changed, or the surviving half of a pair): it is parked — taken down
//! and renamed — before the new one is created, and deleted at commit; a failed run renames it
//! back.

use std::collections::{BTreeMap, HashMap, HashSet};

use ipnet::IpNet;

use super::desired::{desired, is_kernel_address, route_specs, sysctls_of, WantLink};
use super::seen::Seen;
use super::step::{LinkSet, RouteSpec, Step};
use super::{observed, Conflict, Plan};
use crate::inspect::{LinkKind, LinkState, Snapshot};
use crate::model::names::NsName;
use crate::model::{NodeRef, Topology};
use crate::ownership::{self, RTPROT_PLUMB};

/// A link that does not survive the run, by node and current name.
#[derive(Debug, Clone)]
struct Gone {
    index: u32,
    up: bool,
    link_id: Option<String>,
}

/// What the kernel drops when `index` goes down in `st` and plumb puts back if it brings it up
/// again: its IPv6 addresses, and plumb's routes through it (the kernel's own come back with
/// the addresses; another tool's route through a lab interface is that tool's to restore).
fn dropped_on_down(seen: &Seen<'_>, index: u32) -> (Vec<IpNet>, Vec<RouteSpec>) {
    let dev = seen.link_by_index(index).map(|l| l.name.clone());
    let addrs = seen
        .addrs_of(index)
        .iter()
        .filter(|a| matches!(a, IpNet::V6(_)) && !is_kernel_address(a))
        .copied()
        .collect();
    let routes = seen
        .st
        .routes
        .iter()
        .filter(|r| r.oif == Some(index) && r.protocol == RTPROT_PLUMB)
        .map(|r| RouteSpec {
            dst: r.dst,
            via: r.via,
            dev: dev.clone(),
        })
        .collect();
    (addrs, routes)
}

/// The plan under construction, one bucket per position in the plan.
#[derive(Default)]
struct Draft {
    conflicts: Vec<Conflict>,
    parks: Vec<Step>,
    creates_ns: Vec<Step>,
    sysctls: Vec<Step>,
    creates_link: Vec<Step>,
    settings: Vec<Step>,
    ups: Vec<Step>,
    addrs: Vec<Step>,
    routes: Vec<Step>,
    firewalls: Vec<Step>,
    // Commit.
    del_firewalls: Vec<Step>,
    del_routes: Vec<Step>,
    del_addrs: Vec<Step>,
    del_links: Vec<Step>,
    del_ns: Vec<Step>,
}

impl Draft {
    fn into_plan(self) -> Plan {
        if !self.conflicts.is_empty() {
            // Nothing may run while something is in the way: a plan with conflicts has no steps,
            // so no caller can apply half of it and touch what the lab does not own.
            return Plan {
                steps: Vec::new(),
                conflicts: self.conflicts,
            };
        }
        let steps = [
            self.parks,
            self.creates_ns,
            self.sysctls,
            self.creates_link,
            self.settings,
            self.ups,
            self.addrs,
            self.routes,
            self.firewalls,
            self.del_firewalls,
            self.del_routes,
            self.del_addrs,
            self.del_links,
            self.del_ns,
        ]
        .into_iter()
        .flatten()
        .collect();
        Plan {
            steps,
            conflicts: Vec::new(),
        }
    }
}

fn link_id(l: &LinkState) -> Option<String> {
    l.tag().and_then(|t| t.link).map(str::to_string)
}

/// Plans the changes that make the kernel match `topo`, touching only what the lab owns.
pub fn diff(topo: &Topology, snap: &Snapshot) -> Plan {
    let lab = topo.name.as_str();
    let want = desired(topo);
    let mut d = Draft::default();

    // Namespaces: the lab's that the file no longer names go at commit; missing ones are
    // created ("fresh"); a name taken by anything else is a conflict.
    let desired_ns: HashSet<&NsName> = topo
        .nodes
        .iter()
        .filter_map(|n| match &n.name {
            NodeRef::Ns(x) => Some(x),
            NodeRef::Host => None,
        })
        .collect();
    let mut dying: HashSet<NodeRef> = HashSet::new();
    for (name, ns) in &snap.namespaces {
        if ns.owner() == Some(lab) && !desired_ns.contains(name) {
            d.del_ns.push(Step::DeleteNs { ns: name.clone() });
            dying.insert(NodeRef::Ns(name.clone()));
        }
    }
    let mut fresh: HashSet<NodeRef> = HashSet::new();
    for node in &want.nodes {
        let NodeRef::Ns(name) = node else { continue };
        match snap.namespaces.get(name) {
            None => {
                d.creates_ns.push(Step::CreateNs { ns: name.clone() });
                fresh.insert(node.clone());
            }
            Some(ns) => match (&ns.state, ns.owner()) {
                (Ok(_), Some(o)) if o == lab => {}
                (Err(why), _) => d.conflicts.push(Conflict {
                    node: NodeRef::Host,
                    object: format!("/run/netns/{name} ({why})"),
                    owner: None,
                }),
                (Ok(_), other) => d.conflicts.push(Conflict {
                    node: NodeRef::Host,
                    object: format!("namespace {name}"),
                    owner: other.map(str::to_string),
                }),
            },
        }
    }
    let kept = |node: &NodeRef| !fresh.contains(node) && !dying.contains(node);
    // The kept nodes' observed state, with its lookups made once.
    let seen: HashMap<NodeRef, Seen<'_>> = want
        .nodes
        .iter()
        .filter(|n| kept(n))
        .filter_map(|n| observed(snap, n).map(|st| (n.clone(), Seen::new(st))))
        .collect();

    // Links: what is ours and stays, what is in the way, what is ours and goes.
    let empty = BTreeMap::new();
    let mut gone: HashMap<(NodeRef, String), Gone> = HashMap::new();
    let mut dead_ids: HashSet<String> = HashSet::new();
    for node in want.nodes.iter().filter(|n| kept(n)) {
        let Some(st) = observed(snap, node) else {
            continue;
        };
        let wanted = want.links.get(node).unwrap_or(&empty);
        for l in &st.links {
            let owned = l.owner() == Some(lab);
            let goes = match wanted.get(&l.name) {
                Some(w) if w.kind == LinkKind::Loopback => false,
                Some(_) if !owned => {
                    d.conflicts.push(Conflict {
                        node: node.clone(),
                        object: format!("interface {}", l.name),
                        owner: l.owner().map(str::to_string),
                    });
                    false
                }
                // Same name, other definition: it makes way for the new one.
                Some(w) => w.kind != l.kind || w.link_id != link_id(l),
                None => owned && l.kind != LinkKind::Loopback,
            };
            if goes {
                if let Some(id) = link_id(l) {
                    dead_ids.insert(id);
                }
                gone.insert(
                    (node.clone(), l.name.clone()),
                    Gone {
                        index: l.index,
                        up: l.up,
                        link_id: link_id(l),
                    },
                );
            }
        }
    }
    // Pairs with an end in a namespace that goes die with it, wherever their other end is.
    for node in &dying {
        if let Some(st) = observed(snap, node) {
            dead_ids.extend(st.links.iter().filter_map(link_id));
        }
    }
    let mark_dead_pairs = |gone: &mut HashMap<(NodeRef, String), Gone>, ids: &HashSet<String>| {
        for node in want.nodes.iter().filter(|n| kept(n)) {
            let Some(st) = observed(snap, node) else {
                continue;
            };
            for l in &st.links {
                if l.owner() == Some(lab) && link_id(l).is_some_and(|id| ids.contains(&id)) {
                    gone.entry((node.clone(), l.name.clone())).or_insert(Gone {
                        index: l.index,
                        up: l.up,
                        link_id: link_id(l),
                    });
                }
            }
        }
    };
    mark_dead_pairs(&mut gone, &dead_ids);

    let present = |gone: &HashMap<(NodeRef, String), Gone>, node: &NodeRef, name: &str| {
        kept(node)
            && !gone.contains_key(&(node.clone(), name.to_string()))
            && seen.get(node).is_some_and(|v| v.link(name).is_some())
    };

    // Bridges and veth pairs to create. A pair with only one end left is made anew: the end
    // that is left goes too.
    let mut half_ids = HashSet::new();
    for v in &want.veths {
        if let Step::CreateVeth { a, b, link_id } = v {
            let pa = present(&gone, &a.node, a.name.as_str());
            let pb = present(&gone, &b.node, b.name.as_str());
            if pa != pb {
                half_ids.insert(link_id.clone());
            }
        }
    }
    mark_dead_pairs(&mut gone, &half_ids);
    for b in &want.bridges {
        if let Step::CreateBridge { node, name, .. } = b {
            if !present(&gone, node, name.as_str()) {
                d.creates_link.push(b.clone());
            }
        }
    }
    for v in &want.veths {
        if let Step::CreateVeth { a, b, link_id } = v {
            if !present(&gone, &a.node, a.name.as_str()) {
                // The end in a namespace this run creates goes first: plumb then chooses the
                // indexes of both ends. Otherwise an end inside a namespace goes first.
                let first_is_a = fresh.contains(&a.node)
                    || (!fresh.contains(&b.node) && a.node != NodeRef::Host);
                let (a, b) = if first_is_a {
                    (a.clone(), b.clone())
                } else {
                    (b.clone(), a.clone())
                };
                d.creates_link.push(Step::CreateVeth {
                    a,
                    b,
                    link_id: link_id.clone(),
                });
            }
        }
    }
    let created: HashSet<(NodeRef, String)> = d
        .creates_link
        .iter()
        .flat_map(|s| s.created_links())
        .map(|(n, name)| (n.clone(), name.to_string()))
        .collect();

    // Gone links: parked now (down, and renamed when a new link takes their name), deleted at
    // commit. One end of a pair is enough for the delete: its peer goes with it.
    let mut gone_sorted: Vec<_> = gone.iter().collect();
    gone_sorted.sort_by(|x, y| x.0.cmp(y.0));
    let mut deleted_ids = HashSet::new();
    for ((node, name), g) in gone_sorted {
        let parked = created
            .contains(&(node.clone(), name.clone()))
            .then(|| ownership::parked_name(node, name));
        let (restore_addrs, restore_routes) = seen
            .get(node)
            .map(|v| dropped_on_down(v, g.index))
            .unwrap_or_default();
        d.parks.push(Step::ParkLink {
            node: node.clone(),
            name: name.clone(),
            parked: parked.clone(),
            up: g.up,
            restore_addrs,
            restore_routes,
        });
        if let Some(id) = &g.link_id {
            if !deleted_ids.insert(id.clone()) {
                continue;
            }
        }
        d.del_links.push(Step::DeleteLink {
            node: node.clone(),
            name: parked.map_or_else(|| name.clone(), |p| p.to_string()),
            index: Some(g.index),
        });
    }

    // Settings, addresses, routes and sysctls, node by node.
    for node in &want.nodes {
        let view = seen.get(node);
        let wanted = want.links.get(node).unwrap_or(&empty);
        for (name, w) in wanted {
            let key = (node.clone(), name.clone());
            let cur = if created.contains(&key) || gone.contains_key(&key) {
                None
            } else {
                view.and_then(|v| v.link(name))
            };
            link_settings(&mut d, node, name, w, cur, view, fresh.contains(node));
            addresses(&mut d, lab, node, name, w, cur, view);
        }
        routes(&mut d, topo, node, view, &gone);
        for (k, v) in &sysctls_of(topo, node) {
            let current = view.and_then(|s| s.st.sysctls.get(k));
            let same = current.map(|c| c.split_whitespace().collect::<Vec<_>>())
                == Some(v.split_whitespace().collect());
            if !same {
                d.sysctls.push(Step::Sysctl {
                    node: node.clone(),
                    key: k.clone(),
                    value: v.clone(),
                    prev: current.cloned(),
                });
            }
        }
    }
    firewalls(&mut d, topo, snap, &kept);
    d.into_plan()
}

/// Settings of one wanted interface: in place for an existing one (with the values before, for
/// undo), isolation and `up` for a new one.
fn link_settings(
    d: &mut Draft,
    node: &NodeRef,
    name: &str,
    w: &WantLink,
    cur: Option<&LinkState>,
    st: Option<&Seen<'_>>,
    fresh_node: bool,
) {
    let step = |set: LinkSet, prev: Option<LinkSet>| Step::SetLink {
        node: node.clone(),
        name: name.to_string(),
        set,
        prev,
    };
    match cur {
        Some(cur) => {
            let mut set = LinkSet::default();
            let mut prev = LinkSet::default();
            if let Some(m) = w.mtu.filter(|m| *m != cur.mtu) {
                set.mtu = Some(m);
                prev.mtu = Some(cur.mtu);
            }
            if let Some(m) = w.mac.filter(|m| Some(*m) != cur.mac) {
                set.mac = Some(m);
                prev.mac = cur.mac;
            }
            let master_of = |l: &LinkState| {
                l.master
                    .and_then(|i| st.and_then(|s| s.link_by_index(i)))
                    .map(|b| b.name.clone())
            };
            let cur_master = master_of(cur);
            if w.kind == LinkKind::Veth
                && cur_master.as_deref() != w.master.as_ref().map(|m| m.as_str())
            {
                set.master = Some(w.master.clone());
                prev.master =
                    Some(cur_master.and_then(|m| crate::model::names::IfName::new(&m).ok()));
            }
            if w.master.is_some() && cur.isolated != w.isolated {
                set.isolated = Some(w.isolated);
                prev.isolated = Some(cur.isolated);
            }
            if let Some(stp) = w.stp.filter(|s| Some(*s) != cur.stp) {
                set.stp = Some(stp);
                prev.stp = cur.stp;
            }
            if !set.is_empty() {
                d.settings.push(step(set, Some(prev)));
            }
            if cur.up != w.up {
                d.ups.push(step(
                    LinkSet {
                        up: Some(w.up),
                        ..Default::default()
                    },
                    Some(LinkSet {
                        up: Some(cur.up),
                        ..Default::default()
                    }),
                ));
            }
        }
        None if w.kind == LinkKind::Loopback => {
            // `lo` of a namespace this run creates is brought up with it.
            if !fresh_node && w.up {
                d.ups.push(step(
                    LinkSet {
                        up: Some(true),
                        ..Default::default()
                    },
                    None,
                ));
            }
        }
        None => {
            if w.isolated {
                // A new port of an isolated network: isolated before it comes up.
                d.settings.push(step(
                    LinkSet {
                        isolated: Some(true),
                        ..Default::default()
                    },
                    None,
                ));
            }
            if w.up {
                d.ups.push(step(
                    LinkSet {
                        up: Some(true),
                        ..Default::default()
                    },
                    None,
                ));
            }
        }
    }
}

/// Addresses of one wanted interface: the missing ones added, the lab's extra ones removed at
/// commit (after the new ones exist, so an interface is never left without an address).
fn addresses(
    d: &mut Draft,
    lab: &str,
    node: &NodeRef,
    name: &str,
    w: &WantLink,
    cur: Option<&LinkState>,
    st: Option<&Seen<'_>>,
) {
    let have: Vec<IpNet> = match (cur, st) {
        (Some(c), Some(s)) => s.addrs_of(c.index).to_vec(),
        _ => Vec::new(),
    };
    for a in &w.addrs {
        if !have.contains(a) {
            d.addrs.push(Step::AddAddr {
                node: node.clone(),
                dev: name.to_string(),
                addr: *a,
            });
        }
    }
    let ours = cur.is_some_and(|c| {
        c.owner() == Some(lab) || (c.kind == LinkKind::Loopback && *node != NodeRef::Host)
    });
    if ours {
        for a in &have {
            if !w.addrs.contains(a) && !is_kernel_address(a) {
                d.del_addrs.push(Step::DelAddr {
                    node: node.clone(),
                    dev: name.to_string(),
                    addr: *a,
                });
            }
        }
    }
}

/// Routes of a node: compared with what is installed. Only plumb's own routes are replaced or
/// removed, and in the host only those through interfaces this lab owns.
fn routes(
    d: &mut Draft,
    topo: &Topology,
    node: &NodeRef,
    st: Option<&Seen<'_>>,
    gone: &HashMap<(NodeRef, String), Gone>,
) {
    let lab = topo.name.as_str();
    let want = route_specs(topo, node);
    let mut have: Vec<(RouteSpec, bool)> = Vec::new();
    if let Some(st) = st {
        for r in &st.st.routes {
            let dev = r.oif.and_then(|i| st.link_by_index(i));
            // Routes through an interface that goes, go with it.
            if dev.is_some_and(|d| gone.contains_key(&(node.clone(), d.name.clone()))) {
                continue;
            }
            let ours = r.protocol == RTPROT_PLUMB
                && (*node != NodeRef::Host || dev.is_some_and(|d| d.owner() == Some(lab)));
            have.push((
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
    let mut replaced: Vec<RouteSpec> = Vec::new();
    for w in &want {
        if have.iter().any(|(h, _)| matches(w, h)) {
            continue;
        }
        // The lab's route to the same destination that the file no longer wants: replaced in
        // one step, so the destination is never without a route.
        let old = have.iter().find(|(h, ours)| {
            *ours && h.dst == w.dst && !want.iter().any(|x| matches(x, h)) && !replaced.contains(h)
        });
        let replaces = old.map(|(h, _)| h.clone());
        if let Some(r) = &replaces {
            replaced.push(r.clone());
        }
        d.routes.push(Step::AddRoute {
            node: node.clone(),
            route: w.clone(),
            replaces,
        });
    }
    for (h, ours) in &have {
        if *ours && !want.iter().any(|w| matches(w, h)) && !replaced.contains(h) {
            d.del_routes.push(Step::DelRoute {
                node: node.clone(),
                route: h.clone(),
            });
        }
    }
}

/// Firewall tables to write (when missing or of another version, saving the one replaced) or to
/// remove at commit (when the file no longer needs them). A namespace's table goes with the
/// namespace, so only kept nodes are checked for removal.
fn firewalls(d: &mut Draft, topo: &Topology, snap: &Snapshot, kept: &dyn Fn(&NodeRef) -> bool) {
    let mut nodes = vec![NodeRef::Host];
    nodes.extend(topo.nodes.iter().map(|n| n.name.clone()));
    for node in nodes {
        let want = match &node {
            NodeRef::Host => Some(crate::firewall::host_table(topo)).filter(|t| !t.is_empty()),
            NodeRef::Ns(_) => crate::firewall::node_table(topo, &node),
        };
        let have = if kept(&node) {
            observed(snap, &node).and_then(|s| s.nft_version.clone())
        } else {
            None
        };
        match (want, have) {
            (Some(t), have) => {
                let version = t.version();
                if have.as_deref() != Some(version.as_str()) {
                    d.firewalls.push(Step::Firewall {
                        node,
                        table: t.name.clone(),
                        version,
                        rules: t.clone(),
                        prev: have,
                    });
                }
            }
            (None, Some(_)) => d.del_firewalls.push(Step::DeleteFirewall {
                node,
                table: crate::firewall::table_name(topo.name.as_str()),
            }),
            (None, None) => {}
        }
    }
}
