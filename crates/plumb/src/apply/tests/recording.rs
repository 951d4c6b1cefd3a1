//! Failure, rollback, the commit phase and teardown, with a scripted backend.

use super::batching::{apply, lab, LAB_SHAPE};
use super::*;
use crate::apply::{run_teardown, ApplyError};

fn errno(e: &ApplyError) -> Option<i32> {
    e.first().and_then(|f| f.error.errno())
}

fn failed_op(e: &ApplyError) -> String {
    e.first().map(|f| f.step.to_string()).unwrap_or_default()
}

#[test]
fn run_failure_mid_plan_undoes_the_run_newest_first() {
    let p = lab();
    let failing = p.steps[12].clone(); // step 13: ip route add 10.9.0.0/24 via 10.0.0.2
    let mut b = RecordingBackend::default().failing(&failing, libc::EEXIST);
    let (r, events) = apply(&p, &mut b);
    let e = r.unwrap_err();
    assert_eq!(
        failed_op(&e),
        "ip route add 10.9.0.0/24 via 10.0.0.2 proto 250"
    );
    assert_eq!(errno(&e), Some(libc::EEXIST));
    assert!(e.restored(), "{e}");
    assert!(
        e.to_string()
            .ends_with("; the lab was restored as it was before this run"),
        "{e}"
    );
    // The whole plan ran (one build batch), then the rollback.
    assert_eq!(b.batches[0], p.steps);
    assert_eq!(
        b.batches[1..],
        [
            // Step 14 ran in the failing batch and is undone first.
            vec![del_route("host", "10.8.0.0/24", "10.0.0.2")],
            // The address on eth9, which existed before the run; not the ones on br0 or on
            // a's eth0, which go with their interface and namespace.
            vec![del_addr("host", "eth9", "192.0.2.1/24")],
            // eth9's MTU goes back to what it was; `up` of new interfaces needs no undoing.
            vec![set("host", "eth9", mtu_set(1500), None)],
            // The a<->b pair goes with its namespaces; the pair into the host and the bridge
            // are deleted.
            vec![delete_link("a", "eth0"), delete_link("host", "br0")],
            // Namespaces last, newest first.
            vec![delete_ns("b"), delete_ns("a")],
        ]
    );
    // No progress is reported for the failing batch.
    assert!(events.is_empty(), "{events:?}");
}

#[test]
fn run_failure_in_a_batch_undoes_later_successes_of_that_batch() {
    let p = lab();
    let failing = p.steps[9].clone(); // step 10: ip -n a addr add 10.0.0.2/24 dev eth0
    let mut b = RecordingBackend::default().failing(&failing, libc::EEXIST);
    let (r, _) = apply(&p, &mut b);
    let e = r.unwrap_err();
    assert_eq!(failed_op(&e), "ip -n a addr add 10.0.0.2/24 dev eth0");
    assert_eq!(b.shape()[..1], LAB_SHAPE, "the build batch ran whole");
    assert_eq!(
        b.batches[1..],
        [
            // Steps 11, 13 and 14 succeeded after the failure in the same batch: undone too
            // (step 12's route went with namespace a).
            vec![
                del_route("host", "10.8.0.0/24", "10.0.0.2"),
                del_route("host", "10.9.0.0/24", "10.0.0.2")
            ],
            vec![del_addr("host", "eth9", "192.0.2.1/24")],
            vec![set("host", "eth9", mtu_set(1500), None)],
            vec![delete_link("a", "eth0"), delete_link("host", "br0")],
            vec![delete_ns("b"), delete_ns("a")],
        ]
    );
}

#[test]
fn run_create_that_exists_fails_and_rollback_spares_the_existing_object() {
    let p = plan(vec![create_ns("a"), create_ns("b"), create_ns("c")]);
    let mut b = RecordingBackend::default().failing(&create_ns("b"), libc::EEXIST);
    let (r, _) = apply(&p, &mut b);
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
    let (r, _) = apply(&p, &mut b);
    let e = r.unwrap_err();
    let ApplyError::Step { rollback, .. } = &e else {
        panic!("{e:?}")
    };
    assert_eq!(rollback.len(), 1, "{rollback:?}");
    assert_eq!(rollback[0].step, delete_link("host", "br0"));
    assert_eq!(rollback[0].error.errno(), Some(libc::EBUSY));
    assert!(!e.restored());
    let msg = e.to_string();
    assert!(msg.contains("`ip link del br0` failed"), "{msg}");
    assert!(msg.contains("plumb gc"), "{msg}");
    // The rollback went on past the failure.
    assert_eq!(
        b.batches.last(),
        Some(&vec![delete_ns("b"), delete_ns("a")])
    );
}

#[test]
fn run_enoent_on_a_create_is_a_failure() {
    let p = plan(vec![create_ns("a"), add_addr("a", "eth0", "10.0.0.2/24")]);
    let mut b = RecordingBackend::default().failing(&p.steps[1], libc::ENOENT);
    let (r, _) = apply(&p, &mut b);
    assert_eq!(errno(&r.unwrap_err()), Some(libc::ENOENT));
    assert_eq!(b.batches.last(), Some(&vec![delete_ns("a")]));
}

#[test]
fn run_commit_removals_wait_for_the_build_and_are_not_attempted_when_it_fails() {
    let p = plan(vec![
        create_ns("n"),
        add_addr("host", "eth9", "192.0.2.9/24"),
        del_addr("host", "eth9", "192.0.2.1/24"),
        delete_link("host", "old0"),
        delete_ns("old"),
    ]);
    let mut b = RecordingBackend::default().failing(&p.steps[1], libc::EINVAL);
    let (r, _) = apply(&p, &mut b);
    assert!(r.unwrap_err().restored());
    assert!(
        !b.steps().iter().any(|s| p.steps[2..].contains(s)),
        "a removal ran although the build failed: {:?}",
        b.batches
    );
}

#[test]
fn run_commit_failures_are_all_reported_and_nothing_is_undone() {
    let p = plan(vec![
        create_ns("n"),
        del_addr("host", "eth9", "192.0.2.1/24"),
        delete_link("host", "old0"),
        delete_link("host", "old1"),
        delete_ns("old"),
    ]);
    let mut b = RecordingBackend::default()
        .failing(&p.steps[2], libc::EBUSY)
        .failing(&p.steps[4], libc::EPERM);
    let (r, events) = apply(&p, &mut b);
    let e = r.unwrap_err();
    let ApplyError::Commit { failures } = &e else {
        panic!("{e:?}")
    };
    let failed: Vec<&Step> = failures.iter().map(|f| &f.step).collect();
    assert_eq!(failed, [&p.steps[2], &p.steps[4]]);
    assert!(e.restored(), "the new lab is in place: nothing for gc");
    assert!(e.to_string().contains("run `plumb up` again"), "{e}");
    // Every step ran once, and nothing was undone.
    assert_eq!(b.steps(), p.steps);
    assert_eq!(events.last(), Some(&(5, 5)));
}

#[test]
fn run_delete_of_a_gone_object_counts_as_done() {
    let p = plan(vec![
        create_ns("a"),
        del_addr("host", "eth9", "192.0.2.7/24"),
        delete_link("host", "old0"),
        delete_ns("old"),
    ]);
    let mut b = RecordingBackend {
        deletes_gone: true,
        ..RecordingBackend::default()
    };
    let (r, events) = apply(&p, &mut b);
    assert!(r.is_ok(), "{r:?}");
    assert_eq!(b.steps(), p.steps, "no rollback");
    assert_eq!(events.last(), Some(&(4, 4)));
}

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
        [("remove", 1), ("delete-link", 2), ("remove", 3)]
    );
    let got: Vec<(String, Option<i32>)> = failures
        .iter()
        .map(|f| (f.step.to_string(), f.error.errno()))
        .collect();
    assert_eq!(
        got,
        [
            ("ip link del x0".to_string(), Some(libc::EBUSY)),
            ("ip netns del c".to_string(), Some(libc::EPERM)),
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
