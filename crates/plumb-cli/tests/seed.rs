//! The seed's lab (`examples/seed.toml`) end to end: build, ping, idempotency, dry run, drift
//! repair and teardown, all checked through `ip -j` inside a sandbox.

mod common;

use common::*;
use serde_json::{json, Value};

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
    assert_second_up_changes_nothing(&sb, &seed, "seed");
}

/// A step of the plan without the pair identifier plumb draws for each veth pair.
fn without_link_id(step: &Value) -> Value {
    let mut step = step.clone();
    if let Some(map) = step.as_object_mut() {
        map.remove("link_id");
    }
    step
}

/// One end of a veth pair as the plan writes it: no MTU, MAC or bridge, and no IPv6.
fn end(node: &str, name: &str) -> Value {
    json!({ "node": node, "name": name, "mtu": null, "mac": null, "master": null, "ipv6": false })
}

/// `ip` or `ip -n NODE`, as the text plan writes a command run in `node`.
fn ip_in(node: &Value) -> String {
    match node.as_str() {
        Some("host") => "ip".to_string(),
        Some(ns) => format!("ip -n {ns}"),
        None => panic!("node is not a string: {node}"),
    }
}

/// The `ip` commands a plan step may be written as in the text plan (a veth pair can be made
/// from either end).
fn ip_commands(step: &Value) -> Vec<String> {
    let s = |k: &str| step[k].as_str().unwrap_or_else(|| panic!("{k}: {step}"));
    match s("op") {
        "create_ns" => vec![format!(
            "ip netns add {} && ip -n {} link set lo up",
            s("ns"),
            s("ns")
        )],
        "set_link" if step["set"] == json!({ "up": true }) => {
            vec![format!(
                "{} link set {} up",
                ip_in(&step["node"]),
                s("name")
            )]
        }
        "add_addr" => vec![format!(
            "{} addr add {} dev {}",
            ip_in(&step["node"]),
            s("addr"),
            s("dev")
        )],
        "create_veth" => {
            let (a, b) = (&step["a"], &step["b"]);
            [(a, b), (b, a)]
                .into_iter()
                .filter(|(_, peer)| peer["node"] != "host")
                .map(|(me, peer)| {
                    format!(
                        "{} link add {} type veth peer name {} netns {}",
                        ip_in(&me["node"]),
                        me["name"].as_str().unwrap_or("?"),
                        peer["name"].as_str().unwrap_or("?"),
                        peer["node"].as_str().unwrap_or("?")
                    )
                })
                .collect()
        }
        other => panic!("the seed's plan should not hold a {other} step: {step}"),
    }
}

/// Where `(node, name)` is touched by a step: created, set or addressed.
fn touches(step: &Value, node: &str, name: &str) -> bool {
    let is = |v: &Value| v["node"] == node && v["name"] == name;
    is(step) || is(&step["a"]) || is(&step["b"]) || (step["node"] == node && step["dev"] == name)
}

#[test]
fn seed_up_dry_run_changes_nothing_and_prints_the_plan() {
    let sb = sandbox();
    let seed = example("seed.toml");
    let empty = sb.snapshot();
    // Exit 1 means "there are changes" (STYLE: 1 when a diff found a difference), 0 "none".
    let steps = dry_run_plan(&sb, &seed, 1);
    let mut link_ids: Vec<&str> = steps.iter().filter_map(|s| s["link_id"].as_str()).collect();
    link_ids.sort_unstable();
    link_ids.dedup();
    assert_eq!(
        link_ids.len(),
        2,
        "two veth pairs, each with its own id: {steps:#?}"
    );
    // The steps, as a set: what the seed does by hand, nothing more, nothing less.
    let mut want = vec![
        // A new interface's `up` has nothing to restore: `prev` is null.
        json!({ "op": "create_ns", "ns": "ns1" }),
        json!({ "op": "create_ns", "ns": "ns2" }),
        json!({ "op": "create_veth", "a": end("ns1", "eth1000"), "b": end("host", "veth1") }),
        json!({ "op": "create_veth", "a": end("ns1", "veth-ns2"), "b": end("ns2", "veth-ns1") }),
        json!({ "op": "set_link", "node": "host", "name": "veth1", "set": { "up": true }, "prev": null }),
        json!({ "op": "set_link", "node": "ns1", "name": "eth1000", "set": { "up": true }, "prev": null }),
        json!({ "op": "set_link", "node": "ns1", "name": "veth-ns2", "set": { "up": true }, "prev": null }),
        json!({ "op": "set_link", "node": "ns2", "name": "veth-ns1", "set": { "up": true }, "prev": null }),
        json!({ "op": "add_addr", "node": "host", "dev": "veth1", "addr": "10.66.77.25/24" }),
        json!({ "op": "add_addr", "node": "ns1", "dev": "eth1000", "addr": "10.66.77.24/24" }),
        json!({ "op": "add_addr", "node": "ns1", "dev": "veth-ns2", "addr": "10.66.78.1/24" }),
        json!({ "op": "add_addr", "node": "ns2", "dev": "veth-ns1", "addr": "10.66.78.2/24" }),
    ];
    let mut got: Vec<Value> = steps.iter().map(without_link_id).collect();
    let key = |v: &Value| v.to_string();
    got.sort_by_key(key);
    want.sort_by_key(key);
    assert_eq!(got, want, "the seed's plan (in any order): {steps:#?}");
    // In an order that works: a namespace before anything in it, an interface made before it
    // is set up or addressed.
    let first = |pred: &dyn Fn(&Value) -> bool| steps.iter().position(pred);
    for ns in ["ns1", "ns2"] {
        let made = first(&|s| s["op"] == "create_ns" && s["ns"] == ns).expect("created");
        let used = first(&|s| s["node"] == ns || s["a"]["node"] == ns || s["b"]["node"] == ns);
        assert!(
            used > Some(made),
            "{ns} is used before it is made: {steps:#?}"
        );
    }
    for (node, name) in [
        ("host", "veth1"),
        ("ns1", "eth1000"),
        ("ns1", "veth-ns2"),
        ("ns2", "veth-ns1"),
    ] {
        let made = first(&|s| s["op"] == "create_veth" && touches(s, node, name));
        let used = first(&|s| s["op"] != "create_veth" && touches(s, node, name));
        assert!(
            made.is_some() && used > made,
            "{node}:{name} is set up or addressed before it is made: {steps:#?}"
        );
    }
    // The text plan is the same plan, step for step, as `ip` commands.
    let lines = dry_run_steps(&sb, &seed);
    assert_eq!(lines.len(), steps.len(), "{lines:#?}");
    for (line, step) in lines.iter().zip(&steps) {
        let commands = ip_commands(step);
        assert!(
            commands.contains(line),
            "the text plan says {line:?} where the JSON plan has {step} ({commands:?})"
        );
    }
    sb.assert_state_eventually(&empty, SETTLE, "after up --dry-run on an empty sandbox");

    // A dry run over a built lab plans nothing and changes nothing either.
    sb.plumb_ok(&["up", &seed]);
    let built = sb.settled_snapshot();
    assert!(dry_run_plan(&sb, &seed, 0).is_empty());
    let out = sb.plumb(&["up", &seed, "--dry-run"]);
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
