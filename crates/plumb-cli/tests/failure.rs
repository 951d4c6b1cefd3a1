//! Failures: an injected kernel error at every step rolls back, a SIGKILL mid-`up` is cleaned by
//! `gc`, and objects plumb did not make are never taken over or removed.

mod common;

use std::time::Duration;

use common::*;
use plumb_testkit::{describe, Sandbox};

/// Upper bound on the steps of a small lab: past it, `PLUMB_INJECT_FAILURE` is not being honoured.
const MAX_STEPS: usize = 200;

/// Runs `up FILE` with `PLUMB_INJECT_FAILURE=N` for N = 1, 2, ... until an `up` succeeds (N is
/// past the last step). Every failing N must exit 2, name the object of the N-th step of the
/// dry-run plan in its error, and leave the sandbox exactly as it was. The number of steps must
/// be the number of plan lines. Returns it.
fn every_injected_failure_rolls_back(sb: &Sandbox, file: &str) -> usize {
    let before = sb.settled_snapshot();
    let plan = dry_run_steps(sb, file);
    assert!(
        !plan.is_empty(),
        "up --dry-run on an empty sandbox printed no steps"
    );
    for n in 1..=MAX_STEPS {
        let mut cmd = sb.plumb_command(&["up", file]);
        cmd.env("PLUMB_FAULT", format!("step={n}"));
        let out = sb.output(cmd);
        if out.status.success() {
            assert!(
                n > 1,
                "PLUMB_INJECT_FAILURE=1 did not make up fail\n{}",
                describe(&out)
            );
            assert_eq!(
                n - 1,
                plan.len(),
                "steps counted by injection vs plan lines {plan:#?}"
            );
            return n - 1;
        }
        assert_exit(&out, 2, &format!("up with PLUMB_INJECT_FAILURE={n}"));
        let stderr = String::from_utf8_lossy(&out.stderr);
        let step = plan.get(n - 1).map(String::as_str).unwrap_or("");
        let objects = step_objects(step);
        assert!(
            objects.iter().any(|o| stderr.contains(o.as_str())),
            "the error for injected failure {n} names none of {objects:?} (step {step:?})\n{}",
            describe(&out)
        );
        sb.assert_state_eventually(
            &before,
            SETTLE,
            &format!("after rollback of injected failure {n}"),
        );
    }
    panic!("up still failed with PLUMB_INJECT_FAILURE={MAX_STEPS}");
}

#[test]
fn seed_up_injected_failure_at_every_step_rolls_back() {
    let sb = sandbox();
    let seed = example("seed.toml");
    let steps = every_injected_failure_rolls_back(&sb, &seed);
    assert!(
        steps >= 6,
        "the seed lab cannot take fewer than 6 kernel steps, counted {steps}"
    );
    // The run with N past the last step built the whole lab.
    assert_seed_built(&sb);
}

#[test]
fn star_up_injected_failure_at_every_step_rolls_back() {
    let sb = sandbox();
    let star = example("star.toml");
    every_injected_failure_rolls_back(&sb, &star);
    assert_star_built(&sb);
}

/// Starts `up FILE` with `PLUMB_STALL_AFTER=n`, waits for `plumb: stalled` and kills it with
/// SIGKILL, leaving a crashed, half-built lab.
fn crash_up_after(sb: &Sandbox, file: &str, n: usize) {
    let mut cmd = sb.plumb_command(&["up", file]);
    cmd.env("PLUMB_FAULT", format!("stall={n}"));
    let mut child = sb.spawn_until_stderr(cmd, "plumb: stalled", Duration::from_secs(60));
    // nsenter without --pid execs the command, so the child is plumb itself.
    child.kill().expect("SIGKILL plumb up");
    child.wait().expect("reap plumb up");
}

#[test]
fn gc_after_sigkill_mid_up_removes_everything() {
    let sb = sandbox();
    let seed = example("seed.toml");
    let empty = sb.snapshot();
    for n in [1, 2, 4, 6] {
        crash_up_after(&sb, &seed, n);
        let crashed = sb.settled_snapshot();
        assert_ne!(crashed, empty, "after {n} steps something should exist");

        // Like `up --dry-run`, `gc --dry-run` exits 1 when it found something to do.
        let out = sb.plumb(&["gc", "--dry-run"]);
        assert_exit(&out, 1, "plumb gc --dry-run with a crashed lab");
        assert!(
            text(&out).contains("seed"),
            "gc --dry-run does not name the crashed lab\n{}",
            describe(&out)
        );
        sb.assert_state_eventually(&crashed, SETTLE, "after gc --dry-run");

        let out = sb.plumb(&["gc"]);
        assert_exit(&out, 0, &format!("plumb gc after a crash after {n} steps"));
        sb.assert_state_eventually(
            &empty,
            SETTLE,
            &format!("after gc of a crash after {n} steps"),
        );

        let ls = sb.plumb_ok(&["ls"]);
        assert!(
            !text(&ls).contains("seed"),
            "plumb ls still shows seed\n{}",
            describe(&ls)
        );
        let ls = sb.plumb_ok(&["ls", "--json"]);
        assert!(
            !json_mentions(&stdout_json(&ls), "seed"),
            "plumb ls --json still shows seed\n{}",
            describe(&ls)
        );
    }
}

#[test]
fn gc_with_crashed_and_complete_labs_removes_only_the_crashed_one() {
    let sb = sandbox();
    sb.plumb_ok(&["up", &example("star.toml")]);
    let star_only = sb.settled_snapshot();
    let out = sb.plumb(&["gc", "--dry-run"]);
    assert_exit(&out, 0, "plumb gc --dry-run with only a complete lab");
    sb.plumb_ok(&["gc"]);
    sb.assert_state_eventually(&star_only, SETTLE, "gc with only a complete lab");

    crash_up_after(&sb, &example("seed.toml"), 4);
    sb.plumb_ok(&["gc"]);
    sb.assert_state_eventually(
        &star_only,
        SETTLE,
        "gc of the crashed seed next to a complete star",
    );
    assert_star_built(&sb);
}

#[test]
fn up_foreign_namespace_ns1_fails_and_keeps_it() {
    let sb = sandbox();
    sb.run_ok(&["ip", "netns", "add", "ns1"]);
    sb.run_ok(&["ip", "-n", "ns1", "link", "set", "lo", "up"]);
    let inode = sb.run_ok(&["stat", "-L", "-c", "%i", "/run/netns/ns1"]);
    let before = sb.settled_snapshot();

    let out = sb.plumb(&["up", &example("seed.toml")]);
    assert_exit(&out, 2, "up with a foreign ns1");
    assert!(
        text(&out).contains("ns1"),
        "the error does not name ns1\n{}",
        describe(&out)
    );
    sb.assert_state_eventually(&before, SETTLE, "after the refused up");

    // Neither down nor gc may take the foreign namespace for the lab's.
    let out = sb.plumb(&["down", "seed"]);
    assert!(
        matches!(out.status.code(), Some(0 | 2)),
        "{}",
        describe(&out)
    );
    let out = sb.plumb(&["gc"]);
    assert_exit(&out, 0, "plumb gc");
    sb.assert_state_eventually(&before, SETTLE, "after down seed and gc");
    assert_eq!(
        sb.run_ok(&["stat", "-L", "-c", "%i", "/run/netns/ns1"]),
        inode,
        "ns1 was replaced"
    );
    assert!(
        sb.tagged().is_empty(),
        "foreign objects were tagged: {:?}",
        sb.tagged()
    );
}

#[test]
fn up_foreign_host_interface_veth1_fails_and_keeps_it() {
    let sb = sandbox();
    sb.run_ok(&[
        "ip", "link", "add", "veth1", "type", "veth", "peer", "name", "x",
    ]);
    let before = sb.settled_snapshot();

    let out = sb.plumb(&["up", &example("seed.toml")]);
    assert_exit(&out, 2, "up with a foreign veth1");
    assert!(
        text(&out).contains("veth1"),
        "the error does not name veth1\n{}",
        describe(&out)
    );
    sb.assert_state_eventually(&before, SETTLE, "after the refused up");

    let out = sb.plumb(&["down", "seed"]);
    assert!(
        matches!(out.status.code(), Some(0 | 2)),
        "{}",
        describe(&out)
    );
    sb.plumb_ok(&["gc"]);
    sb.assert_state_eventually(&before, SETTLE, "after down seed and gc");
    assert!(
        sb.tagged().is_empty(),
        "foreign objects were tagged: {:?}",
        sb.tagged()
    );
}

#[test]
fn up_after_sigkill_mid_up_completes_the_lab() {
    let sb = sandbox();
    let seed = example("seed.toml");
    crash_up_after(&sb, &seed, 4);
    let out = sb.plumb(&["up", &seed]);
    assert_exit(&out, 0, "plumb up over a crashed half-built lab");
    assert_seed_built(&sb);
    sb.ping_ok(Some("ns1"), "10.66.78.2");
    // The lab is complete again, so gc leaves it alone.
    let built = sb.settled_snapshot();
    sb.plumb_ok(&["gc"]);
    sb.assert_state_eventually(&built, SETTLE, "gc after the completing up");
}

/// The seed lab plus a third namespace joined to ns2: a converge that only adds objects.
const SEED_PLUS_NS3: &str = r#"name = "seed"

[nodes.ns1.interfaces.eth1000]
addresses = ["10.66.77.24/24"]

[nodes.host.interfaces.veth1]
addresses = ["10.66.77.25/24"]

[[links]]
endpoints = ["host:veth1", "ns1:eth1000"]

[nodes.ns1.interfaces.veth-ns2]
addresses = ["10.66.78.1/24"]

[nodes.ns2.interfaces.veth-ns1]
addresses = ["10.66.78.2/24"]

[[links]]
endpoints = ["ns1:veth-ns2", "ns2:veth-ns1"]

[nodes.ns2.interfaces.veth-ns3]
addresses = ["10.66.79.1/24"]

[nodes.ns3.interfaces.veth-ns2]
addresses = ["10.66.79.2/24"]

[[links]]
endpoints = ["ns2:veth-ns3", "ns3:veth-ns2"]
"#;

#[test]
fn up_converge_that_adds_with_injected_failure_restores_the_previous_lab() {
    let sb = sandbox();
    sb.plumb_ok(&["up", &example("seed.toml")]);
    let seed_state = sb.settled_snapshot();
    let file = sb.write_file("seed-plus.toml", SEED_PLUS_NS3);
    let file = file.to_str().unwrap();
    let plan = dry_run_steps(&sb, file);
    assert!(
        plan.len() >= 3,
        "adding ns3 and a link takes at least 3 steps: {plan:#?}"
    );
    for n in [1, plan.len() / 2 + 1, plan.len()] {
        let mut cmd = sb.plumb_command(&["up", file]);
        cmd.env("PLUMB_FAULT", format!("step={n}"));
        let out = sb.output(cmd);
        assert_exit(
            &out,
            2,
            &format!("converging up with PLUMB_INJECT_FAILURE={n}"),
        );
        sb.assert_state_eventually(
            &seed_state,
            SETTLE,
            &format!("after rollback of injected failure {n}"),
        );
    }
    sb.plumb_ok(&["up", file]);
    sb.ping_ok(Some("ns3"), "10.66.79.1");
}
