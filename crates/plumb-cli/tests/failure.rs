//! Failures: a kernel refusal at any step of a build or a converge restores what was there
//! before, exactly (compared through `ip -j` and `nft -j`); a failed removal after a successful
//! build is reported and retried; objects plumb did not make are never taken over or removed.
//!
//! Faults come from plumb's test-only `fault-injection` feature (`PLUMB_FAULT`): `step=N`
//! fails a step at a batch boundary, `request=KIND:N` makes the kernel really refuse the N-th
//! netlink request of a kind wherever it falls inside a pipelined batch.

mod common;

use common::*;
use plumb_testkit::{describe, Sandbox};

/// Upper bound on the steps of a small lab: past it, `PLUMB_FAULT=step=N` is not being honoured.
const MAX_STEPS: usize = 200;

/// `up FILE` with `PLUMB_FAULT=SPEC`.
fn up_with_fault(sb: &Sandbox, file: &str, spec: &str) -> std::process::Output {
    let mut cmd = sb.plumb_command(&["up", file]);
    cmd.env("PLUMB_FAULT", spec);
    sb.output(cmd)
}

/// Runs `up FILE` with `step=N` for N = 1, 2, ... until an `up` succeeds (N is past the last
/// step). Every failing N must exit 2, name the object of the N-th step of the dry-run plan in
/// its error, and leave the sandbox exactly as it was. The number of steps must be the number of
/// plan lines. Returns it.
fn every_injected_failure_rolls_back(sb: &Sandbox, file: &str) -> usize {
    let before = sb.settled_snapshot();
    let plan = dry_run_steps(sb, file);
    for n in 1..=MAX_STEPS {
        let out = up_with_fault(sb, file, &format!("step={n}"));
        if out.status.success() {
            assert!(n > 1, "step=1 did not make up fail\n{}", describe(&out));
            assert_eq!(
                n - 1,
                plan.len(),
                "steps counted by injection vs plan lines {plan:#?}"
            );
            return n - 1;
        }
        assert_exit(&out, 2, &format!("up with step={n}"));
        let stderr = String::from_utf8_lossy(&out.stderr);
        let step = plan.get(n - 1).map(String::as_str).unwrap_or("");
        let objects = step_objects(step);
        assert!(
            objects.iter().any(|o| stderr.contains(o.as_str())),
            "the error for injected failure {n} names none of {objects:?} (step {step:?})\n{}",
            describe(&out)
        );
        assert!(
            stderr.contains("restored as it was before this run"),
            "{}",
            describe(&out)
        );
        sb.assert_state_eventually(
            &before,
            SETTLE,
            &format!("after rollback of injected failure {n}"),
        );
        assert!(
            sb.plumb_state_files().is_empty(),
            "{:?}",
            sb.plumb_state_files()
        );
    }
    panic!("up still failed with step={MAX_STEPS}");
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

/// A lab with a network, NAT (a host table), a node firewall and a sysctl.
const BEFORE: &str = r#"name = "edit"
[networks.lan]
subnet = "10.30.0.0/24"
members = ["a", "b", "c"]
nat = true
[nodes.a.firewall]
ingress = "deny"
allow = ["icmp"]
"#;

/// BEFORE edited: a member removed, two added, an address added, an MTU changed, a firewall
/// changed, a sysctl set in a kept node.
const AFTER: &str = r#"name = "edit"
[networks.lan]
subnet = "10.30.0.0/24"
members = ["a", "b", "d", "e"]
nat = true
mtu = 1400
[nodes.a.firewall]
ingress = "deny"
allow = ["icmp", "tcp/22"]
[nodes.b]
sysctls = { "net.ipv4.ip_forward" = 1 }
[nodes.b.interfaces.lo]
addresses = ["10.255.0.2/32"]
"#;

/// Brings BEFORE up and returns its settled state and the AFTER file.
fn before_lab(sb: &Sandbox) -> (serde_json::Value, String) {
    let before = sb.write_file("before.toml", BEFORE);
    sb.plumb_ok(&["up", before.to_str().unwrap()]);
    let state = sb.settled_snapshot();
    let after = sb.write_file("after.toml", AFTER);
    (state, after.to_str().unwrap().to_string())
}

/// A converge refused part-way: the error names the refused step, and every namespace, link,
/// address, route, MTU, sysctl and firewall is as before, through `ip -j` and `nft -j`.
fn assert_refused_converge_restores(
    sb: &Sandbox,
    state: &serde_json::Value,
    after: &str,
    spec: &str,
) {
    let out = up_with_fault(sb, after, spec);
    assert_exit(&out, 2, &format!("converging up with {spec}"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("Operation not supported") || stderr.contains("injected failure"),
        "the kernel's refusal is not in the error ({spec})\n{}",
        describe(&out)
    );
    assert!(
        stderr.contains("restored as it was before this run"),
        "{}",
        describe(&out)
    );
    sb.assert_state_eventually(
        state,
        SETTLE,
        &format!("after the converge refused with {spec}"),
    );
    assert!(
        sb.plumb_state_files().is_empty(),
        "{:?}",
        sb.plumb_state_files()
    );
}

#[test]
fn converge_refused_by_the_kernel_part_way_restores_everything() {
    let sb = sandbox();
    let (state, after) = before_lab(&sb);
    let plan = dry_run_plan(&sb, &after, 1);
    // The converge takes down and deletes c's port, creates d and e, changes MTUs, adds an
    // address, sets a sysctl and replaces a's firewall: refused at different depths.
    assert!(plan.len() >= 20, "{plan:#?}");
    const REMOVALS: [&str; 6] = [
        "delete_group",
        "delete_link",
        "delete_ns",
        "del_route",
        "del_addr",
        "delete_firewall",
    ];
    let build = plan
        .iter()
        .filter(|s| !REMOVALS.contains(&s["op"].as_str().unwrap_or_default()))
        .count();
    assert_eq!(
        plan[build - 1]["op"],
        "firewall",
        "the build ends with a's firewall: {plan:#?}"
    );
    for spec in [
        // A request in the middle of a pipelined batch of link settings (the MTU changes).
        "request=set-link:3",
        // The tag request of a new interface: it exists, untagged, when the run fails.
        "request=tag:2",
        // Late: the last route, after every link and address is in place.
        "request=add-route:2",
        // The last step: the firewall table of node a, saved and then replaced.
        &format!("step={build}"),
    ] {
        assert_refused_converge_restores(&sb, &state, &after, spec);
    }
    // Then the converge runs, and a second one finds nothing to do.
    sb.plumb_ok(&["up", &after]);
    assert_up_is_up_to_date(&sb, &after, "edit");
}

#[test]
fn converge_with_a_sysctl_the_kernel_does_not_have_restores_everything() {
    let sb = sandbox();
    let (state, _) = before_lab(&sb);
    let bad = AFTER.replace(
        r#"sysctls = { "net.ipv4.ip_forward" = 1 }"#,
        r#"sysctls = { "net.ipv4.ip_forward" = 1, "net.ipv4.conf.all.no_such_setting" = 1 }"#,
    );
    let bad = sb.write_file("bad.toml", &bad);
    let out = sb.plumb(&["up", bad.to_str().unwrap()]);
    assert_exit(&out, 2, "a converge with a sysctl the kernel does not have");
    assert!(
        text(&out).contains("net.ipv4.conf.all.no_such_setting"),
        "{}",
        describe(&out)
    );
    sb.assert_state_eventually(&state, SETTLE, "after the refused sysctl");
}

#[test]
fn converge_with_a_failed_removal_reports_it_and_the_next_up_finishes() {
    let sb = sandbox();
    let (_, after) = before_lab(&sb);
    // The first interface deletion of the commit (c's port) is refused by the kernel.
    let out = up_with_fault(&sb, &after, "request=del-link:1");
    assert_exit(&out, 2, "a converge whose removal is refused");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("removal(s) failed"), "{}", describe(&out));
    assert!(stderr.contains("plumb up` again"), "{}", describe(&out));
    // Everything new is in place; c, whose port could not be deleted, still exists (its
    // namespace went: the deletions after the failed one ran).
    let names = sb.netns_list();
    for n in ["a", "b", "d", "e"] {
        assert!(names.contains(&n.to_string()), "{n} missing: {names:?}");
    }
    assert!(!names.contains(&"c".to_string()), "{names:?}");
    assert!(
        sb.plumb_state_files().is_empty(),
        "nothing is left for gc: {:?}",
        sb.plumb_state_files()
    );
    // The next up removes what is left and converges.
    sb.plumb_ok(&["up", &after]);
    assert_up_is_up_to_date(&sb, &after, "edit");
}

#[test]
fn failed_up_whose_rollback_fails_keeps_its_journal_for_gc() {
    let sb = sandbox();
    let empty = sb.settled_snapshot();
    let seed = example("seed.toml");
    let plan = dry_run_steps(&sb, &seed);
    // The last step fails; then the rollback's first interface deletion is refused too.
    let out = up_with_fault(
        &sb,
        &seed,
        &format!("step={},request=del-link:1", plan.len()),
    );
    assert_exit(&out, 2, "up whose rollback fails");
    assert!(text(&out).contains("plumb gc"), "{}", describe(&out));
    assert_eq!(sb.plumb_state_files(), ["seed.journal"]);
    let ls = ls_labs(&sb);
    let seed_entry = ls.iter().find(|e| e.name == "seed").expect("ls lists seed");
    assert!(seed_entry.interrupted, "{:?}", ls);
    sb.plumb_ok(&["gc"]);
    sb.assert_state_eventually(&empty, SETTLE, "after gc of a failed up");
    assert!(
        sb.plumb_state_files().is_empty(),
        "{:?}",
        sb.plumb_state_files()
    );
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

    // Neither down nor gc may take the foreign namespace for the lab's: lab seed owns
    // nothing, so down has nothing to remove (exit 0).
    let out = sb.plumb(&["down", "seed"]);
    assert_exit(&out, 0, "plumb down seed when seed owns nothing");
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
    assert_exit(&out, 0, "plumb down seed when seed owns nothing");
    sb.plumb_ok(&["gc"]);
    sb.assert_state_eventually(&before, SETTLE, "after down seed and gc");
    assert!(
        sb.tagged().is_empty(),
        "foreign objects were tagged: {:?}",
        sb.tagged()
    );
}
