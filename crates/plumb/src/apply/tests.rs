//! `run` and `run_teardown` against a recording backend: batching, rollback, failure
//! injection, progress, and teardown's "keep going".

use std::cell::RefCell;
use std::io;

use super::{run, run_teardown, ApplyError, Backend, Options, StepError};
use crate::model::names::{IfName, NsName};
use crate::model::NodeRef;
use crate::plan::{LinkSet, Plan, RouteSpec, Step, VethEnd};

/// A backend that records every batch it is handed and answers from a script.
#[derive(Debug, Default)]
struct RecordingBackend {
    batches: Vec<Vec<Step>>,
    /// Steps that fail, with the errno they fail with.
    failures: Vec<(Step, i32)>,
    /// Every deletion answers ENOENT, as if the object were already gone.
    deletes_gone: bool,
}

impl RecordingBackend {
    fn failing(mut self, step: &Step, errno: i32) -> Self {
        self.failures.push((step.clone(), errno));
        self
    }

    /// Kind and size of each batch, in order.
    fn shape(&self) -> Vec<(&'static str, usize)> {
        self.batches
            .iter()
            .map(|b| (b[0].kind(), b.len()))
            .collect()
    }

    /// Every step handed over, in order.
    fn steps(&self) -> Vec<Step> {
        self.batches.iter().flatten().cloned().collect()
    }
}

fn is_delete(step: &Step) -> bool {
    matches!(
        step,
        Step::DeleteGroup { .. }
            | Step::DeleteLink { .. }
            | Step::DeleteNs { .. }
            | Step::DelAddr { .. }
            | Step::DelRoute { .. }
    )
}

impl Backend for RecordingBackend {
    fn execute(&mut self, batch: &[Step]) -> Vec<Result<(), StepError>> {
        assert!(!batch.is_empty(), "an empty batch was sent");
        assert!(
            batch.iter().all(|s| s.kind() == batch[0].kind()),
            "a batch mixes kinds: {batch:?}"
        );
        self.batches.push(batch.to_vec());
        batch
            .iter()
            .map(|s| {
                let errno = self
                    .failures
                    .iter()
                    .find(|(f, _)| f == s)
                    .map(|(_, e)| *e)
                    .or_else(|| (self.deletes_gone && is_delete(s)).then_some(libc::ENOENT));
                match errno {
                    Some(e) => Err(StepError::Io(io::Error::from_raw_os_error(e))),
                    None => Ok(()),
                }
            })
            .collect()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Event {
    Progress(usize, usize),
    Stall,
}

/// Runs `plan` with the given hooks, recording progress and stall calls.
fn apply(
    plan: &Plan,
    backend: &mut RecordingBackend,
    fail_at: Option<usize>,
    stall_after: Option<usize>,
) -> (Result<(), ApplyError>, Vec<Event>) {
    let events = RefCell::new(Vec::new());
    let mut progress = |done, total| events.borrow_mut().push(Event::Progress(done, total));
    let mut on_stall = || events.borrow_mut().push(Event::Stall);
    let result = run(
        plan,
        backend,
        Options {
            fail_at,
            stall_after,
            progress: &mut progress,
            on_stall: &mut on_stall,
        },
    );
    (result, events.into_inner())
}

fn node(name: &str) -> NodeRef {
    if name == "host" {
        NodeRef::Host
    } else {
        NodeRef::Ns(NsName::new(name).unwrap())
    }
}

fn plan(steps: Vec<Step>) -> Plan {
    Plan {
        steps,
        conflicts: Vec::new(),
    }
}

fn create_ns(name: &str) -> Step {
    Step::CreateNs {
        ns: NsName::new(name).unwrap(),
    }
}

fn delete_ns(name: &str) -> Step {
    Step::DeleteNs {
        ns: NsName::new(name).unwrap(),
    }
}

fn bridge(at: &str, name: &str) -> Step {
    Step::CreateBridge {
        node: node(at),
        name: IfName::new(name).unwrap(),
        mtu: None,
        stp: false,
        mac: crate::model::MacAddr([2, 0, 0, 0, 0, 1]),
        ipv6: false,
    }
}

fn end(at: &str, name: &str, master: Option<&str>) -> VethEnd {
    VethEnd {
        node: node(at),
        name: IfName::new(name).unwrap(),
        mtu: None,
        mac: None,
        master: master.map(|m| IfName::new(m).unwrap()),
        ipv6: false,
    }
}

fn veth(a: VethEnd, b: VethEnd) -> Step {
    Step::CreateVeth {
        a,
        b,
        link_id: "000000000001".into(),
    }
}

fn set(at: &str, name: &str, set: LinkSet) -> Step {
    Step::SetLink {
        node: node(at),
        name: name.into(),
        set,
    }
}

fn up(at: &str, name: &str) -> Step {
    set(
        at,
        name,
        LinkSet {
            up: Some(true),
            ..LinkSet::default()
        },
    )
}

fn mtu(at: &str, name: &str, mtu: u32) -> Step {
    set(
        at,
        name,
        LinkSet {
            mtu: Some(mtu),
            ..LinkSet::default()
        },
    )
}

fn add_addr(at: &str, dev: &str, addr: &str) -> Step {
    Step::AddAddr {
        node: node(at),
        dev: dev.into(),
        addr: addr.parse().unwrap(),
    }
}

fn del_addr(at: &str, dev: &str, addr: &str) -> Step {
    Step::DelAddr {
        node: node(at),
        dev: dev.into(),
        addr: addr.parse().unwrap(),
    }
}

fn route_spec(dst: &str, via: &str) -> RouteSpec {
    RouteSpec {
        dst: dst.parse().unwrap(),
        via: Some(via.parse().unwrap()),
        dev: None,
    }
}

fn add_route(at: &str, dst: &str, via: &str) -> Step {
    Step::AddRoute {
        node: node(at),
        route: route_spec(dst, via),
    }
}

fn del_route(at: &str, dst: &str, via: &str) -> Step {
    Step::DelRoute {
        node: node(at),
        route: route_spec(dst, via),
    }
}

fn delete_link(at: &str, name: &str) -> Step {
    Step::DeleteLink {
        node: node(at),
        name: name.into(),
    }
}

/// A lab in 14 steps: two new namespaces, a bridge in the host with a port from `a`, a pair
/// between `a` and `b`, and changes to `eth9`, an interface that existed before the run.
fn lab() -> Plan {
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

/// The batches `lab()` runs in when nothing fails.
const LAB_SHAPE: [(&str, usize); 6] = [
    ("create-netns", 2),
    ("create-bridge", 1),
    ("create-veth", 2),
    ("set-link", 3),
    ("add-addr", 3),
    ("add-route", 3),
];

fn errno(e: &ApplyError) -> Option<i32> {
    let ApplyError::Step { source, .. } = e;
    source.errno()
}

// ---------------------------------------------------------------------------------------------
// Batching and progress.

#[test]
fn run_consecutive_same_kind_steps_arrive_as_one_batch_in_plan_order() {
    let p = lab();
    let mut b = RecordingBackend::default();
    let (r, events) = apply(&p, &mut b, None, None);
    assert!(r.is_ok(), "{r:?}");
    assert_eq!(b.shape(), LAB_SHAPE);
    assert_eq!(b.steps(), p.steps);
    assert_eq!(
        events,
        [2, 3, 5, 8, 11, 14].map(|n| Event::Progress(n, 14)),
        "progress after each batch"
    );
}

#[test]
fn run_kind_that_recurs_later_starts_a_new_batch() {
    let p = plan(vec![
        up("host", "x"),
        up("host", "y"),
        add_addr("host", "x", "10.1.0.1/24"),
        up("host", "z"),
    ]);
    let mut b = RecordingBackend::default();
    let (r, _) = apply(&p, &mut b, None, None);
    assert!(r.is_ok());
    assert_eq!(
        b.batches,
        [
            vec![up("host", "x"), up("host", "y")],
            vec![add_addr("host", "x", "10.1.0.1/24")],
            vec![up("host", "z")],
        ]
    );
}

#[test]
fn run_empty_plan_calls_nothing() {
    let mut b = RecordingBackend::default();
    let (r, events) = apply(&Plan::default(), &mut b, None, Some(0));
    assert!(r.is_ok());
    assert!(b.batches.is_empty());
    assert!(events.is_empty(), "{events:?}");
}

#[test]
fn run_stall_after_inside_a_batch_splits_it_and_stalls_once() {
    let p = lab();
    let mut b = RecordingBackend::default();
    // Step 7 is in the middle of the three set-link steps.
    let (r, events) = apply(&p, &mut b, None, Some(7));
    assert!(r.is_ok());
    assert_eq!(
        events,
        [
            Event::Progress(2, 14),
            Event::Progress(3, 14),
            Event::Progress(5, 14),
            Event::Progress(7, 14),
            Event::Stall,
            Event::Progress(8, 14),
            Event::Progress(11, 14),
            Event::Progress(14, 14),
        ]
    );
    assert_eq!(b.steps(), p.steps);
    let sizes: Vec<usize> = b.batches.iter().map(Vec::len).collect();
    assert_eq!(sizes, [2, 1, 2, 2, 1, 3, 3]);
}

#[test]
fn run_stall_after_on_a_batch_boundary_stalls_once() {
    let p = lab();
    let mut b = RecordingBackend::default();
    let (r, events) = apply(&p, &mut b, None, Some(5));
    assert!(r.is_ok());
    assert_eq!(events.iter().filter(|e| **e == Event::Stall).count(), 1);
    let at = events.iter().position(|e| *e == Event::Stall).unwrap();
    assert_eq!(events[at - 1], Event::Progress(5, 14));
    assert_eq!(b.shape(), LAB_SHAPE);
}

#[test]
fn run_stall_after_beyond_the_plan_never_stalls() {
    let mut b = RecordingBackend::default();
    let (r, events) = apply(&lab(), &mut b, None, Some(15));
    assert!(r.is_ok());
    assert!(!events.contains(&Event::Stall));
}

#[test]
fn run_progress_counts_increase_and_end_at_total() {
    for stall in [None, Some(1), Some(4), Some(9), Some(14)] {
        let mut b = RecordingBackend::default();
        let (r, events) = apply(&lab(), &mut b, None, stall);
        assert!(r.is_ok());
        let done: Vec<usize> = events
            .iter()
            .filter_map(|e| match e {
                Event::Progress(d, t) => {
                    assert_eq!(*t, 14);
                    Some(*d)
                }
                Event::Stall => None,
            })
            .collect();
        assert!(done.windows(2).all(|w| w[0] < w[1]), "{stall:?}: {done:?}");
        assert_eq!(done.last(), Some(&14), "{stall:?}");
        // Each count is the number of steps handed to the backend so far.
        let mut sum = 0;
        let cumulative: Vec<usize> = b
            .batches
            .iter()
            .map(|x| {
                sum += x.len();
                sum
            })
            .collect();
        assert_eq!(done, cumulative, "{stall:?}");
        assert_eq!(
            events.iter().filter(|e| **e == Event::Stall).count(),
            usize::from(stall.is_some())
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Failure and rollback.

#[test]
fn run_failure_mid_plan_rolls_back_what_was_created_newest_first() {
    let p = lab();
    let failing = p.steps[12].clone(); // step 13: ip route add 10.9.0.0/24 via 10.0.0.2
    let mut b = RecordingBackend::default().failing(&failing, libc::EEXIST);
    let (r, events) = apply(&p, &mut b, None, None);
    let e = r.unwrap_err();
    let ApplyError::Step {
        op,
        rollback_failures,
        ..
    } = &e;
    assert_eq!(op, "ip route add 10.9.0.0/24 via 10.0.0.2");
    assert_eq!(errno(&e), Some(libc::EEXIST));
    assert!(rollback_failures.is_empty(), "{rollback_failures:?}");
    assert!(
        e.to_string()
            .ends_with("; everything this run created was removed again"),
        "{e}"
    );
    // The whole plan ran (the route batch included), then the rollback.
    assert_eq!(b.batches[..6].concat(), p.steps);
    assert_eq!(
        b.batches[6..],
        [
            // Step 14 ran in the failing batch and is undone first.
            vec![del_route("host", "10.8.0.0/24", "10.0.0.2")],
            // The address on eth9, which existed before the run; not the ones on br0 or on
            // a's eth0, which go with their interface and namespace.
            vec![del_addr("host", "eth9", "192.0.2.1/24")],
            // The a<->b pair goes with its namespaces; the pair into the host and the bridge
            // are deleted.
            vec![delete_link("a", "eth0"), delete_link("host", "br0")],
            // Namespaces last, newest first.
            vec![delete_ns("b"), delete_ns("a")],
        ]
    );
    // No progress is reported for the failing batch.
    assert_eq!(events.last(), Some(&Event::Progress(11, 14)));
}

#[test]
fn run_failure_in_a_batch_undoes_later_successes_of_that_batch() {
    let p = lab();
    let failing = p.steps[9].clone(); // step 10: ip -n a addr add 10.0.0.2/24 dev eth0
    let mut b = RecordingBackend::default().failing(&failing, libc::EEXIST);
    let (r, _) = apply(&p, &mut b, None, None);
    let e = r.unwrap_err();
    let ApplyError::Step { op, .. } = &e;
    assert_eq!(op, "ip -n a addr add 10.0.0.2/24 dev eth0");
    assert_eq!(b.shape()[..5], LAB_SHAPE[..5], "no route was attempted");
    assert_eq!(
        b.batches[5..],
        [
            // Step 11 succeeded after the failure in the same batch: it is undone too.
            vec![del_addr("host", "eth9", "192.0.2.1/24")],
            vec![delete_link("a", "eth0"), delete_link("host", "br0")],
            vec![delete_ns("b"), delete_ns("a")],
        ]
    );
}

#[test]
fn run_create_that_exists_fails_and_rollback_spares_the_existing_object() {
    let p = plan(vec![create_ns("a"), create_ns("b"), create_ns("c")]);
    let mut b = RecordingBackend::default().failing(&create_ns("b"), libc::EEXIST);
    let (r, _) = apply(&p, &mut b, None, None);
    let e = r.unwrap_err();
    assert_eq!(errno(&e), Some(libc::EEXIST));
    assert_eq!(
        b.batches,
        [p.steps.clone(), vec![delete_ns("c"), delete_ns("a")]]
    );
}

#[test]
fn run_rollback_failures_are_reported_and_gone_ones_are_not() {
    let p = lab();
    let mut b = RecordingBackend::default()
        .failing(&p.steps[12], libc::EEXIST)
        .failing(&delete_link("host", "br0"), libc::EBUSY)
        .failing(&delete_ns("b"), libc::ENOENT);
    let (r, _) = apply(&p, &mut b, None, None);
    let e = r.unwrap_err();
    let ApplyError::Step {
        rollback_failures, ..
    } = &e;
    assert_eq!(
        rollback_failures,
        &[(
            "ip link del br0".to_string(),
            io::Error::from_raw_os_error(libc::EBUSY).to_string()
        )]
    );
    let msg = e.to_string();
    assert!(
        msg.contains("rollback could not undo: ip link del br0"),
        "{msg}"
    );
    assert!(msg.contains("plumb gc"), "{msg}");
    // The rollback went on past the failure.
    assert_eq!(
        b.batches.last(),
        Some(&vec![delete_ns("b"), delete_ns("a")])
    );
}

#[test]
fn run_delete_of_a_gone_object_counts_as_done() {
    let p = plan(vec![
        delete_link("host", "old0"),
        delete_ns("old"),
        del_addr("host", "eth9", "192.0.2.7/24"),
        create_ns("a"),
    ]);
    let mut b = RecordingBackend {
        deletes_gone: true,
        ..RecordingBackend::default()
    };
    let (r, events) = apply(&p, &mut b, None, None);
    assert!(r.is_ok(), "{r:?}");
    assert_eq!(b.steps(), p.steps, "no rollback");
    assert_eq!(events.last(), Some(&Event::Progress(4, 4)));
}

#[test]
fn run_enoent_on_a_create_is_a_failure() {
    let p = plan(vec![create_ns("a"), add_addr("a", "eth0", "10.0.0.2/24")]);
    let mut b = RecordingBackend::default().failing(&p.steps[1], libc::ENOENT);
    let (r, _) = apply(&p, &mut b, None, None);
    assert_eq!(errno(&r.unwrap_err()), Some(libc::ENOENT));
    assert_eq!(b.batches.last(), Some(&vec![delete_ns("a")]));
}

// ---------------------------------------------------------------------------------------------
// Injected failures.

#[test]
fn run_fail_at_injects_without_calling_the_backend_and_rolls_back() {
    let p = lab();
    let mut b = RecordingBackend::default();
    let (r, events) = apply(&p, &mut b, Some(7), None);
    let e = r.unwrap_err();
    let ApplyError::Step { op, source, .. } = &e;
    assert!(matches!(source, StepError::Injected), "{source:?}");
    assert_eq!(op, "ip link set pa0 up");
    assert!(
        !b.steps().contains(&p.steps[6]),
        "step 7 reached the backend"
    );
    assert_eq!(
        b.batches,
        [
            p.steps[0..2].to_vec(),
            p.steps[2..3].to_vec(),
            p.steps[3..5].to_vec(),
            p.steps[5..6].to_vec(),
            vec![delete_link("a", "eth0"), delete_link("host", "br0")],
            vec![delete_ns("b"), delete_ns("a")],
        ]
    );
    assert_eq!(events.last(), Some(&Event::Progress(6, 14)));
}

#[test]
fn run_fail_at_first_step_runs_nothing() {
    let p = lab();
    let mut b = RecordingBackend::default();
    let (r, events) = apply(&p, &mut b, Some(1), None);
    let ApplyError::Step { op, source, .. } = r.unwrap_err();
    assert!(matches!(source, StepError::Injected));
    assert_eq!(op, "ip netns add a");
    assert!(b.batches.is_empty(), "{:?}", b.batches);
    assert!(events.is_empty());
}

#[test]
fn run_fail_at_beyond_the_plan_changes_nothing() {
    let p = lab();
    let mut b = RecordingBackend::default();
    let (r, _) = apply(&p, &mut b, Some(15), None);
    assert!(r.is_ok());
    assert_eq!(b.shape(), LAB_SHAPE);
}

// ---------------------------------------------------------------------------------------------
// Teardown.

fn teardown_plan() -> Plan {
    plan(vec![
        Step::DeleteGroup { group: 0x706c_0001 },
        delete_link("host", "x0"),
        delete_link("host", "y0"),
        delete_ns("a"),
        delete_ns("b"),
        delete_ns("c"),
    ])
}

#[test]
fn run_teardown_continues_past_failures_and_reports_them_all() {
    let p = teardown_plan();
    let mut b = RecordingBackend::default()
        .failing(&delete_link("host", "x0"), libc::EBUSY)
        .failing(&delete_ns("a"), libc::ENOENT)
        .failing(&delete_ns("c"), libc::EPERM);
    let failures = run_teardown(&p, &mut b);
    assert_eq!(b.steps(), p.steps, "every step was attempted");
    assert_eq!(
        b.shape(),
        [("delete-group", 1), ("delete-link", 2), ("delete-netns", 3)]
    );
    let os = |e| io::Error::from_raw_os_error(e).to_string();
    assert_eq!(
        failures,
        [
            ("ip link del x0".to_string(), os(libc::EBUSY)),
            ("ip netns del c".to_string(), os(libc::EPERM)),
        ]
    );
}

#[test]
fn run_teardown_of_what_is_already_gone_succeeds() {
    let p = teardown_plan();
    let mut b = RecordingBackend {
        deletes_gone: true,
        ..RecordingBackend::default()
    };
    assert!(run_teardown(&p, &mut b).is_empty());
    let mut b = RecordingBackend::default().failing(&delete_link("host", "y0"), libc::ENODEV);
    assert!(run_teardown(&p, &mut b).is_empty());
    assert_eq!(b.steps(), p.steps);
}
