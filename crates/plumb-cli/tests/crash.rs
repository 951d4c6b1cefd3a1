//! Crashes: plumb killed with SIGKILL at any instant of `up` or `down`. `plumb gc` then
//! removes everything the interrupted run made and nothing else (no namespace, placeholder,
//! interface, nftables table, journal or lock left), and the lab's next `up` succeeds.
//!
//! Kill points come from plumb's test-only `fault-injection` feature: `stall=N` makes plumb
//! say `plumb: stalled` and wait after N steps (cutting a batch there), `stall-ns=N` after the
//! N-th namespace's placeholder file exists and before it is a namespace.

mod common;

use std::time::Duration;

use common::*;
use plumb_testkit::{describe, Sandbox};

/// Starts `CMD` with `PLUMB_FAULT=SPEC`, waits for `plumb: stalled` and kills it with SIGKILL.
fn crash(sb: &Sandbox, args: &[&str], spec: &str) {
    let mut cmd = sb.plumb_command(args);
    cmd.env("PLUMB_FAULT", spec);
    let mut child = sb.spawn_until_stderr(cmd, "plumb: stalled", Duration::from_secs(120));
    // nsenter without --pid execs the command, so the child is plumb itself.
    child.kill().expect("SIGKILL plumb");
    child.wait().expect("reap plumb");
}

fn crash_up_after(sb: &Sandbox, file: &str, n: usize) {
    crash(sb, &["up", file], &format!("stall={n}"));
}

/// Nothing of any lab is left: no namespace (nor a stray file in /run/netns), no interface but
/// `lo` in the sandbox, no nftables table, no journal or lock.
fn assert_nothing_left(sb: &Sandbox, what: &str) {
    let files = sb.run_ok(&["sh", "-c", "ls -A /run/netns 2>/dev/null || true"]);
    assert_eq!(files.trim(), "", "{what}: /run/netns is not empty");
    assert_eq!(sb.link_names(None), ["lo"], "{what}: interfaces left");
    assert_eq!(
        sb.nft_ruleset(None),
        serde_json::json!({ "nftables": [] }),
        "{what}: nftables tables left"
    );
    assert!(
        sb.plumb_state_files().is_empty(),
        "{what}: state files left: {:?}",
        sb.plumb_state_files()
    );
}

/// 300 members on one bridge, with NAT (a table in the host) and a firewall in c1 (a table in
/// a namespace).
fn big_lab(sb: &Sandbox) -> String {
    let f = sb.write_file(
        "crash.toml",
        r#"name = "crash"
[networks.big]
subnet = "10.40.0.0/22"
members = ["c[1..300]"]
nat = true
[nodes.c1.firewall]
ingress = "deny"
allow = ["icmp"]
"#,
    );
    f.to_str().unwrap().to_string()
}

/// The index (1-based) of the first and last step of `op` in a plan.
fn span(plan: &[serde_json::Value], op: &str) -> (usize, usize) {
    let idx: Vec<usize> = plan
        .iter()
        .enumerate()
        .filter(|(_, s)| s["op"] == op)
        .map(|(i, _)| i + 1)
        .collect();
    assert!(!idx.is_empty(), "no {op} step in the plan");
    (idx[0], *idx.last().unwrap_or(&0))
}

#[test]
fn sigkill_at_ten_points_of_a_300_member_up_then_gc_leaves_nothing() {
    let sb = sandbox();
    let file = big_lab(&sb);
    let plan = dry_run_plan(&sb, &file, 1);
    let (ns0, ns1) = span(&plan, "create_ns");
    let (v0, v1) = span(&plan, "create_veth");
    let (s0, _) = span(&plan, "set_link");
    let (a0, a1) = span(&plan, "add_addr");
    let (r0, r1) = span(&plan, "add_route");
    let (f0, _) = span(&plan, "firewall");
    assert_eq!((ns0, ns1), (1, 300), "the namespaces come first");
    let points = [
        // The first namespace is a placeholder file, not yet a namespace.
        "stall-ns=1".to_string(),
        // Half of the namespaces exist; the 150th is a placeholder.
        "stall-ns=150".to_string(),
        format!("stall={}", ns0 + 199),
        // The bridge exists, no pair yet.
        format!("stall={}", v0 - 1),
        format!("stall={}", v0 + 149),
        format!("stall={v1}"),
        format!("stall={}", s0 + 300),
        format!("stall={}", (a0 + a1) / 2),
        format!("stall={}", (r0 + r1) / 2),
        // The host's table is written, c1's not yet.
        format!("stall={f0}"),
    ];
    assert_eq!(points.len(), 10);
    for spec in &points {
        crash(&sb, &["up", &file], spec);
        let out = sb.plumb(&["gc"]);
        assert_exit(&out, 0, &format!("plumb gc after a crash at {spec}"));
        assert!(
            text(&out).contains("lab crash (interrupted)"),
            "gc does not name the lab after {spec}\n{}",
            describe(&out)
        );
        assert_nothing_left(&sb, &format!("after gc of a crash at {spec}"));
    }
    // The lab's next up succeeds, and goes down cleanly.
    sb.plumb_ok(&["up", &file]);
    assert_eq!(sb.netns_list().len(), 300);
    sb.plumb_ok(&["down", "crash"]);
    assert_nothing_left(&sb, "after down");
}

#[test]
fn sigkill_at_four_points_of_a_300_member_down_then_gc_leaves_nothing() {
    let sb = sandbox();
    let file = big_lab(&sb);
    // Teardown: the host's table, the group delete of the host interfaces, then the 300
    // namespaces.
    for n in [1, 2, 100, 250] {
        sb.plumb_ok(&["up", &file]);
        crash(&sb, &["down", "crash"], &format!("stall={n}"));
        let out = sb.plumb(&["gc"]);
        assert_exit(&out, 0, &format!("plumb gc after down killed at step {n}"));
        // Namespaces die in the kernel's background work; their veths' host ends go with them.
        sb.wait_until(
            Duration::from_secs(20),
            "the namespaces of the interrupted down are gone",
            |sb| sb.link_names(None) == ["lo"],
        );
        assert_nothing_left(&sb, &format!("after gc of down killed at step {n}"));
    }
    sb.plumb_ok(&["up", &file]);
    assert_eq!(sb.netns_list().len(), 300);
}

#[test]
fn up_after_a_crash_at_a_placeholder_recovers_and_completes_the_lab() {
    let sb = sandbox();
    let seed = example("seed.toml");
    crash(&sb, &["up", &seed], "stall-ns=2");
    // ns2 is a plain file in /run/netns: not a namespace, not tagged, but in seed's journal.
    let files = sb.run_ok(&["sh", "-c", "ls -A /run/netns"]);
    assert_eq!(files.split_whitespace().collect::<Vec<_>>(), ["ns1", "ns2"]);
    let out = sb.plumb(&["up", &seed]);
    assert_exit(&out, 0, "up over an interrupted up");
    assert!(
        text(&out).contains("removed what an interrupted change had left"),
        "{}",
        describe(&out)
    );
    assert_seed_built(&sb);
    assert!(
        sb.plumb_state_files().is_empty(),
        "{:?}",
        sb.plumb_state_files()
    );
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
        assert!(
            !ls_names(&sb).contains(&"seed".to_string()),
            "plumb ls --json still shows seed"
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

#[test]
fn gc_after_sigkill_mid_converge_undoes_the_run_and_keeps_the_lab() {
    let sb = sandbox();
    let seed = example("seed.toml");
    sb.plumb_ok(&["up", &seed]);
    let before = sb.settled_snapshot();
    // ns1's end of the pair to ns2 is kept by name but paired with a new node ns3: it is
    // parked (taken down, renamed) before the new pair takes its name.
    let edited = std::fs::read_to_string(&seed)
        .unwrap()
        .replace(
            r#"endpoints = ["ns1:veth-ns2", "ns2:veth-ns1"]"#,
            r#"endpoints = ["ns1:veth-ns2", "ns3:veth-ns1"]"#,
        )
        .replace(
            "[nodes.ns2.interfaces.veth-ns1]",
            "[nodes.ns3.interfaces.veth-ns1]",
        );
    assert!(edited.contains("ns3:veth-ns1"), "the seed example changed");
    let file = sb.write_file("seed-ns3.toml", &edited);
    let file = file.to_str().unwrap();
    let plan = dry_run_plan(&sb, file, 1);
    assert_eq!(plan[0]["op"], "park_link", "{plan:#?}");
    let builds = plan
        .iter()
        .filter(|s| !s["op"].as_str().unwrap_or_default().starts_with("del"))
        .count();
    // Killed after the park and a few more steps of the build: ns3 and the new pair exist,
    // veth-ns2 of the old pair is parked.
    crash(&sb, &["up", file], &format!("stall={}", builds - 1));
    // The journal stays (the lock files too, released by the kernel: gc removes them).
    assert!(
        sb.plumb_state_files().contains(&"seed.journal".to_string()),
        "{:?}",
        sb.plumb_state_files()
    );
    sb.plumb_ok(&["gc"]);
    // The run is undone: ns3 and the new pair are gone, the parked end has its name back.
    // What the kernel dropped when it went down (plumb's routes through it; seed has none)
    // would come back with the next up; links, addresses and namespaces are as before.
    sb.assert_state_eventually(&before, SETTLE, "gc of an interrupted converge");
    assert!(
        sb.plumb_state_files().is_empty(),
        "{:?}",
        sb.plumb_state_files()
    );
    // And the converge then runs.
    sb.plumb_ok(&["up", file]);
    assert_up_is_up_to_date(&sb, file, "seed");
}
