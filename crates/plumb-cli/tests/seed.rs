//! The seed's lab (`examples/seed.toml`) end to end: build, ping, idempotency, dry run, drift
//! repair and teardown, all checked through `ip -j` inside a sandbox.

mod common;

use common::*;

#[test]
fn seed_up_builds_exactly_the_lab() {
    let sb = sandbox();
    let out = sb.plumb(&["up", &example("seed.toml")]);
    assert_exit(&out, 0, "plumb up seed.toml");
    assert_seed_built(&sb);
}

#[test]
fn seed_up_ns1_pings_host_and_ns2() {
    let sb = sandbox();
    sb.plumb_ok(&["up", &example("seed.toml")]);
    // The seed's own proof: `ip netns exec ns1 ping -c 1 -W 2 10.66.77.25`.
    sb.ping_ok(Some("ns1"), "10.66.77.25");
    sb.ping_ok(Some("ns1"), "10.66.78.2");
    sb.ping_ok(Some("ns2"), "10.66.78.1");
    sb.ping_ok(None, "10.66.77.24");
}

#[test]
fn seed_up_twice_second_changes_nothing() {
    let sb = sandbox();
    let seed = example("seed.toml");
    assert_second_up_changes_nothing(&sb, &seed);
}

#[test]
fn seed_up_dry_run_changes_nothing_and_prints_the_plan() {
    let sb = sandbox();
    let empty = sb.snapshot();
    // Exit 1 means "there are changes" (STYLE: 1 when a diff found a difference), 0 "none".
    let out = sb.plumb(&["up", &example("seed.toml"), "--dry-run"]);
    assert_exit(&out, 1, "plumb up --dry-run on an empty sandbox");
    let plan = String::from_utf8_lossy(&out.stdout);
    for name in ["ns1", "ns2", "veth1", "eth1000"] {
        assert!(
            plan.contains(name),
            "the plan on stdout does not mention {name}:\n{plan}"
        );
    }
    sb.assert_state_eventually(&empty, SETTLE, "after up --dry-run on an empty sandbox");

    // A dry run over a built lab plans nothing and changes nothing either.
    sb.plumb_ok(&["up", &example("seed.toml")]);
    let built = sb.settled_snapshot();
    let out = sb.plumb(&["up", &example("seed.toml"), "--dry-run"]);
    assert_exit(&out, 0, "plumb up --dry-run on a built lab");
    sb.assert_state_eventually(&built, SETTLE, "after up --dry-run on a built lab");
}

#[test]
fn seed_down_by_file_leaves_nothing() {
    let sb = sandbox();
    let empty = sb.snapshot();
    sb.plumb_ok(&["up", &example("seed.toml")]);
    let out = sb.plumb(&["down", &example("seed.toml")]);
    assert_exit(&out, 0, "plumb down seed.toml");
    sb.assert_state_eventually(&empty, SETTLE, "after plumb down seed.toml");
}

#[test]
fn seed_down_after_ns1_deleted_by_hand_exits_zero_and_leaves_nothing() {
    let sb = sandbox();
    let empty = sb.snapshot();
    sb.plumb_ok(&["up", &example("seed.toml")]);
    sb.run_ok(&["ip", "netns", "del", "ns1"]);
    let out = sb.plumb(&["down", "seed"]);
    assert_exit(&out, 0, "plumb down seed after ip netns del ns1");
    sb.assert_state_eventually(&empty, SETTLE, "after plumb down seed");
    assert!(sb.tagged().is_empty());
}

#[test]
fn seed_up_after_drift_by_hand_repairs_the_lab() {
    let sb = sandbox();
    let seed = example("seed.toml");
    sb.plumb_ok(&["up", &seed]);
    // Drift: a namespace deleted, an address removed, an interface set down.
    sb.run_ok(&["ip", "netns", "del", "ns2"]);
    sb.run_ok(&["ip", "addr", "del", "10.66.77.25/24", "dev", "veth1"]);
    sb.run_ok(&["ip", "-n", "ns1", "link", "set", "eth1000", "down"]);
    // Let the kernel finish destroying ns2 (and with it veth-ns2, the peer left in ns1).
    sb.wait_until(SETTLE, "veth-ns2 is gone from ns1", |s| {
        s.link(Some("ns1"), "veth-ns2").is_none()
    });
    let out = sb.plumb(&["up", &seed]);
    assert_exit(&out, 0, "plumb up over a drifted lab");
    assert_seed_built(&sb);
    sb.ping_ok(Some("ns1"), "10.66.78.2");
    sb.ping_ok(Some("ns1"), "10.66.77.25");
}

#[test]
fn down_two_labs_removes_only_the_named_one() {
    let sb = sandbox();
    // A foreign interface in the host, made by hand: no lab may touch it.
    sb.run_ok(&["ip", "link", "add", "foreign0", "type", "bridge"]);
    sb.plumb_ok(&["up", &example("star.toml")]);
    let star_only = sb.settled_snapshot();
    sb.plumb_ok(&["up", &example("seed.toml")]);
    assert_eq!(sb.netns_list(), vec!["cache", "db", "ns1", "ns2", "web"]);
    sb.plumb_ok(&["down", "seed"]);
    sb.assert_state_eventually(
        &star_only,
        SETTLE,
        "after plumb down seed with star still up",
    );
    assert_star_built(&sb);
}
