//! Objects in the way: a plan never touches what the lab does not own.

use super::*;
use crate::ownership::{lab_tag, veth_tag};
use crate::plan::Conflict;

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
        .extend([named("ns2", Some(&lab_tag(&lab("other"))), vec![])]);
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
    assert!(!plan.steps.iter().any(|s| s.is_delete()));
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

#[test]
fn diff_stale_file_in_run_netns_conflicts() {
    let mut snap = host_only();
    snap.namespaces.insert(
        ns("ns1"),
        NamedNs {
            name: ns("ns1"),
            state: Err("not a network namespace".into()),
        },
    );
    let plan = diff(&topo(SEED), &snap);
    assert_eq!(plan.conflicts.len(), 1, "{}", show(&plan));
    assert!(plan.conflicts[0].object.contains("/run/netns/ns1"));
    assert!(plan.steps.is_empty());
}
