//! Plans that remove: the teardown of a whole lab (`down`), and the undoing of a run that was
//! interrupted (`gc`), from its journal.

use std::collections::HashSet;

use super::step::Step;
use super::{observed, Plan};
use crate::inspect::Snapshot;
use crate::model::names::LabName;
use crate::model::NodeRef;
use crate::ownership::journal::{Entry, Op, Record};
use crate::ownership::{self, lab_group};

/// Plans the removal of everything `lab` owns, found by tags alone (no file needed).
/// Host interfaces go in one group delete when every member of the lab's group is the lab's
/// (the group lock keeps other labs of the same group from changing it meanwhile); otherwise
/// each is deleted by index. Namespaces are then unmounted (the kernel destroys them, and what
/// is inside, in the background).
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
    if snap.host.nft_version.is_some() {
        plan.steps.push(Step::DeleteFirewall {
            node: NodeRef::Host,
            table: crate::firewall::table_name(lab.as_str()),
        });
    }
    let in_group = owned.iter().filter(|l| l.group == group).count();
    if group_is_ours && in_group > 0 {
        plan.steps.push(Step::DeleteGroup { group });
    }
    for l in owned {
        if !(group_is_ours && l.group == group) {
            plan.steps.push(Step::DeleteLink {
                node: NodeRef::Host,
                name: l.name.clone(),
                index: Some(l.index),
            });
        }
    }
    for (name, ns) in &snap.namespaces {
        if ns.owner() == Some(lab.as_str()) {
            plan.steps.push(Step::DeleteNs { ns: name.clone() });
        }
    }
    plan
}

/// Plans what `gc` does for a lab whose change was interrupted: a `down` is finished; an `up`
/// is undone — everything its journal says it was creating is removed if it exists and is the
/// lab's (tagged, or for the instant before tagging: an interface in the lab's link group, a
/// file in `/run/netns` that is not a namespace yet), and interfaces it renamed out of the way
/// get their names back. Nothing else is touched: an interrupted converge leaves the rest of
/// the lab as it was, for the next `up` to finish.
pub fn recover(lab: &LabName, entry: &Entry, snap: &Snapshot) -> Plan {
    if entry.op == Op::Down {
        return teardown(lab, snap);
    }
    let lab_s = lab.as_str();
    let group = lab_group(lab);
    let mut plan = Plan::default();
    let mut dying: HashSet<NodeRef> = HashSet::new();
    let mut del_ns = Vec::new();
    for r in &entry.records {
        if let Record::Ns(n) = r {
            let Some(ns) = snap.namespaces.get(n) else {
                continue;
            };
            // A placeholder (not a namespace yet) or the lab's own namespace.
            if ns.state.is_err() || ns.owner() == Some(lab_s) {
                dying.insert(NodeRef::Ns(n.clone()));
                del_ns.push(Step::DeleteNs { ns: n.clone() });
            }
        }
    }
    let kept = |node: &NodeRef| !dying.contains(node);
    let mut seen = HashSet::new();
    for r in &entry.records {
        match r {
            Record::Firewall { node } if kept(node) => {
                let has = observed(snap, node).is_some_and(|s| s.nft_version.is_some());
                let ours = *node == NodeRef::Host
                    || observed(snap, node).is_some_and(|s| s.owner() == Some(lab_s));
                if has && ours && seen.insert(("fw", node.clone(), String::new())) {
                    plan.steps.push(Step::DeleteFirewall {
                        node: node.clone(),
                        table: crate::firewall::table_name(lab_s),
                    });
                }
            }
            _ => {}
        }
    }
    for r in &entry.records {
        let Record::Link { node, name } = r else {
            continue;
        };
        if !kept(node) {
            continue;
        }
        let Some(l) = observed(snap, node).and_then(|s| s.link(name.as_str())) else {
            continue;
        };
        let untagged = l.alias.as_deref().and_then(ownership::Tag::parse).is_none();
        let ours = l.owner() == Some(lab_s) || (untagged && l.group == group);
        if ours && seen.insert(("link", node.clone(), name.to_string())) {
            plan.steps.push(Step::DeleteLink {
                node: node.clone(),
                name: name.to_string(),
                index: Some(l.index),
            });
        }
    }
    plan.steps.extend(del_ns);
    for r in &entry.records {
        let Record::Park {
            node,
            parked,
            name,
            up,
        } = r
        else {
            continue;
        };
        if !kept(node) {
            continue;
        }
        let Some(st) = observed(snap, node) else {
            continue;
        };
        let now = parked.as_ref().unwrap_or(name);
        let parked_ours = st
            .link(now.as_str())
            .is_some_and(|l| l.owner() == Some(lab_s));
        // The name is free, or held by an interface this plan deletes.
        let name_free = parked.is_none()
            || st.link(name.as_str()).is_none()
            || seen.contains(&("link", node.clone(), name.to_string()));
        if parked_ours && name_free {
            plan.steps.push(Step::UnparkLink {
                node: node.clone(),
                parked: parked.clone(),
                name: name.to_string(),
                up: *up,
                restore_addrs: Vec::new(),
                restore_routes: Vec::new(),
            });
        }
    }
    plan
}
