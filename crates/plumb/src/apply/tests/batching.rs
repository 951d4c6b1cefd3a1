//! Batching, progress and journal records.

use std::cell::RefCell;

use super::*;
use crate::apply::{run, Options};
use crate::ownership::journal::Record;

/// A lab in 14 steps: two new namespaces, a bridge in the host with a port from `a`, a pair
/// between `a` and `b`, and changes to `eth9`, an interface that existed before the run.
pub(super) fn lab() -> Plan {
    plan(vec![
        /* 1 */ create_ns("a"),
        /* 2 */ create_ns("b"),
        /* 3 */ bridge("host", "br0"),
        /* 4 */ veth(end("a", "eth0", None), end("host", "pa0", Some("br0"))),
        /* 5 */ veth(end("a", "eth1", None), end("b", "eth1", None)),
        /* 6 */ up("a", "eth0"),
        /* 7 */ up("host", "pa0"),
        /* 8 */ mtu("host", "eth9", 9000),
        /* 9 */ add_addr("host", "br0", "10.0.0.1/24"),
        /* 10 */ add_addr("a", "eth0", "10.0.0.2/24"),
        /* 11 */ add_addr("host", "eth9", "192.0.2.1/24"),
        /* 12 */ add_route("a", "0.0.0.0/0", "10.0.0.1"),
        /* 13 */ add_route("host", "10.9.0.0/24", "10.0.0.2"),
        /* 14 */ add_route("host", "10.8.0.0/24", "10.0.0.2"),
    ])
}

/// The batches `lab()` runs in when nothing fails: one build batch (namespaces, bridge, pairs,
/// settings, addresses, routes), which the backend schedules.
pub(super) const LAB_SHAPE: [(&str, usize); 1] = [("build", 14)];

/// Runs `plan`, recording progress.
pub(super) fn apply(
    plan: &Plan,
    backend: &mut RecordingBackend,
) -> (Result<(), crate::apply::ApplyError>, Vec<(usize, usize)>) {
    let events = RefCell::new(Vec::new());
    let mut progress = |done, total| events.borrow_mut().push((done, total));
    let result = run(
        plan,
        backend,
        Options {
            progress: &mut progress,
            journal: None,
        },
    );
    (result, events.into_inner())
}

#[test]
fn run_consecutive_steps_of_one_class_arrive_as_one_batch_in_plan_order() {
    let p = lab();
    let mut b = RecordingBackend::default();
    let (r, events) = apply(&p, &mut b);
    assert!(r.is_ok(), "{r:?}");
    assert_eq!(b.shape(), LAB_SHAPE);
    assert_eq!(b.steps(), p.steps);
    assert_eq!(events, [(14, 14)], "progress after each batch");
}

#[test]
fn run_class_that_recurs_later_starts_a_new_batch() {
    let p = plan(vec![
        up("host", "x"),
        add_addr("host", "x", "10.1.0.1/24"),
        del_addr("host", "x", "10.1.0.9/24"),
        up("host", "z"),
    ]);
    let mut b = RecordingBackend::default();
    let (r, _) = apply(&p, &mut b);
    assert!(r.is_ok());
    assert_eq!(
        b.batches,
        [
            vec![up("host", "x"), add_addr("host", "x", "10.1.0.1/24")],
            vec![del_addr("host", "x", "10.1.0.9/24")],
            vec![up("host", "z")],
        ]
    );
}

#[test]
fn run_empty_plan_calls_nothing() {
    let mut b = RecordingBackend::default();
    let (r, events) = apply(&Plan::default(), &mut b);
    assert!(r.is_ok());
    assert!(b.batches.is_empty());
    assert!(events.is_empty(), "{events:?}");
}

#[test]
fn journal_records_name_every_object_a_build_creates_or_renames() {
    let recs: Vec<Record> = lab().steps.iter().flat_map(Step::journal_records).collect();
    let names: Vec<String> = recs
        .iter()
        .map(|r| match r {
            Record::Ns(n) => format!("ns {n}"),
            Record::Link { node, name } => format!("link {node} {name}"),
            other => format!("{other:?}"),
        })
        .collect();
    assert_eq!(
        names,
        [
            "ns a",
            "ns b",
            "link host br0",
            "link a eth0",
            "link host pa0",
            "link a eth1",
            "link b eth1"
        ]
    );
    let park = Step::ParkLink {
        node: node("a"),
        name: "eth0".into(),
        parked: Some(IfName::new("plp0123456789ab").unwrap()),
        up: true,
        restore_addrs: vec![],
        restore_routes: vec![],
    };
    assert_eq!(
        park.journal_records(),
        [Record::Park {
            node: node("a"),
            parked: Some(IfName::new("plp0123456789ab").unwrap()),
            name: IfName::new("eth0").unwrap(),
            up: true
        }]
    );
    let new_table = Step::Firewall {
        node: NodeRef::Host,
        table: "plumb-x".into(),
        version: "1".into(),
        rules: crate::firewall::Table::empty("plumb-x"),
        prev: None,
    };
    assert_eq!(
        new_table.journal_records(),
        [Record::Firewall {
            node: NodeRef::Host
        }]
    );
    let replaced = Step::Firewall {
        node: NodeRef::Host,
        table: "plumb-x".into(),
        version: "1".into(),
        rules: crate::firewall::Table::empty("plumb-x"),
        prev: Some("0".into()),
    };
    assert!(
        replaced.journal_records().is_empty(),
        "a replaced table is restored, not removed"
    );
}
