//! `plumb up` over an edited file converges the kernel to the new file: added objects appear,
//! changed ones change, removed ones go, and untouched ones keep their identity (ifindex).

mod common;

use common::*;

const V1: &str = r#"name = "conv"

[nodes.host.interfaces.va]
addresses = ["10.1.0.1/24"]

[nodes.a.interfaces.eth0]
addresses = ["10.1.0.2/24"]

[nodes.a.interfaces.eth1]
addresses = ["10.2.0.1/24"]

[nodes.b.interfaces.eth0]
addresses = ["10.2.0.2/24"]

[[links]]
endpoints = ["host:va", "a:eth0"]

[[links]]
endpoints = ["a:eth1", "b:eth0"]
"#;

/// V1 edited: a's address changed, the a-b link removed, node c and a b-c link added, and a
/// route added in a.
const V2: &str = r#"name = "conv"

[nodes.host.interfaces.va]
addresses = ["10.1.0.1/24"]

[nodes.a.interfaces.eth0]
addresses = ["10.1.0.3/24"]

[[nodes.a.routes]]
to = "10.3.0.0/24"
via = "10.1.0.1"

[nodes.b.interfaces.eth1]
addresses = ["10.3.0.1/24"]

[nodes.c.interfaces.eth0]
addresses = ["10.3.0.2/24"]

[[links]]
endpoints = ["host:va", "a:eth0"]

[[links]]
endpoints = ["b:eth1", "c:eth0"]
"#;

/// V2 edited: nodes b and c, their link and a's route removed.
const V3: &str = r#"name = "conv"

[nodes.host.interfaces.va]
addresses = ["10.1.0.1/24"]

[nodes.a.interfaces.eth0]
addresses = ["10.1.0.3/24"]

[[links]]
endpoints = ["host:va", "a:eth0"]
"#;

#[test]
fn up_after_edit_converges_to_the_new_file() {
    let sb = sandbox();
    let empty = sb.snapshot();
    let file = sb.write_file("conv.toml", V1);
    let file = file.to_str().unwrap();
    sb.plumb_ok(&["up", file]);
    assert_eq!(sb.netns_list(), vec!["a", "b"]);
    assert_addrs(&sb, Some("a"), "eth0", &["10.1.0.2/24"]);
    assert_peers(&sb, Some("a"), "eth1", Some("b"), "eth0");
    sb.ping_ok(Some("a"), "10.2.0.2");
    let va_index = must_link(&sb, None, "va")["ifindex"].clone();
    let a_eth0_index = must_link(&sb, Some("a"), "eth0")["ifindex"].clone();

    // Edit: change an address, remove a link, add a node and a link, add a route.
    std::fs::write(file, V2).unwrap();
    let out = sb.plumb(&["up", file]);
    assert_exit(&out, 0, "plumb up after the edit");
    assert_eq!(sb.netns_list(), vec!["a", "b", "c"]);
    assert_eq!(sb.link_names(None), vec!["lo", "va"]);
    assert_eq!(
        sb.link_names(Some("a")),
        vec!["eth0", "lo"],
        "a's eth1 (removed link) is gone"
    );
    assert_eq!(
        sb.link_names(Some("b")),
        vec!["eth1", "lo"],
        "b's eth0 (removed link) is gone"
    );
    assert_eq!(sb.link_names(Some("c")), vec!["eth0", "lo"]);
    assert_addrs(&sb, Some("a"), "eth0", &["10.1.0.3/24"]);
    assert_addrs(&sb, None, "va", &["10.1.0.1/24"]);
    assert_addrs(&sb, Some("b"), "eth1", &["10.3.0.1/24"]);
    assert_addrs(&sb, Some("c"), "eth0", &["10.3.0.2/24"]);
    assert_peers(&sb, Some("b"), "eth1", Some("c"), "eth0");
    assert_up(&sb, Some("c"), "eth0");
    assert_up(&sb, Some("c"), "lo");
    let route = sb
        .routes(Some("a"))
        .into_iter()
        .find(|r| r["dst"] == "10.3.0.0/24")
        .unwrap_or_else(|| panic!("a has no route to 10.3.0.0/24: {:?}", sb.routes(Some("a"))));
    assert_eq!(route["gateway"], "10.1.0.1", "{route}");
    assert_eq!(route["dev"], "eth0", "{route}");
    // plumb's routes carry protocol 250 (`ip route show proto 250`).
    assert_eq!(route["protocol"], "250", "{route}");
    assert_eq!(
        sb.tagged(),
        vec![
            "a/eth0=plumb:conv",
            "a/lo=plumb:conv",
            "b/eth1=plumb:conv",
            "b/lo=plumb:conv",
            "c/eth0=plumb:conv",
            "c/lo=plumb:conv",
            "host/va=plumb:conv",
        ]
    );
    assert_eq!(
        must_link(&sb, None, "va")["ifindex"],
        va_index,
        "unchanged va was recreated"
    );
    assert_eq!(
        must_link(&sb, Some("a"), "eth0")["ifindex"],
        a_eth0_index,
        "a's eth0 (only its address changed) was recreated"
    );
    sb.ping_ok(Some("a"), "10.1.0.1");
    sb.ping_ok(Some("b"), "10.3.0.2");
    sb.ping_ok(None, "10.1.0.3");

    // Edit again: remove two nodes, their link and the route.
    std::fs::write(file, V3).unwrap();
    sb.plumb_ok(&["up", file]);
    sb.wait_until(SETTLE, "only namespace a is left", |s| {
        s.netns_list() == vec!["a"]
    });
    let a_routes: Vec<String> = sb
        .routes(Some("a"))
        .iter()
        .map(|r| r["dst"].as_str().unwrap_or("?").to_string())
        .collect();
    assert_eq!(
        a_routes,
        ["10.1.0.0/24"],
        "a keeps only its connected route (the route to 10.3.0.0/24 is removed)"
    );
    assert_eq!(
        sb.tagged(),
        vec!["a/eth0=plumb:conv", "a/lo=plumb:conv", "host/va=plumb:conv"]
    );
    let same = sb.settled_snapshot();
    assert_up_is_up_to_date(&sb, file, "conv");
    sb.assert_state_eventually(&same, SETTLE, "a third up of the same file");

    sb.plumb_ok(&["down", file]);
    sb.assert_state_eventually(&empty, SETTLE, "after plumb down");
}

/// A bridge with STP off, and the same with STP on.
const STP_OFF: &str = r#"name = "stp"
[bridges.br0]
addresses = ["10.9.0.1/24"]
[nodes.a.interfaces.eth0]
addresses = ["10.9.0.2/24"]
[[links]]
endpoints = ["br0", "a:eth0"]
"#;

fn stp_state(sb: &plumb_testkit::Sandbox) -> i64 {
    let l = must_link(sb, None, "br0");
    l["linkinfo"]["info_data"]["stp_state"]
        .as_i64()
        .unwrap_or_else(|| panic!("no stp_state in ip -d -j link show br0: {l}"))
}

#[test]
fn up_after_stp_turned_on_converges_the_bridge_in_place() {
    let sb = sandbox();
    let off = sb.write_file("stp-off.toml", STP_OFF);
    let off = off.to_str().unwrap();
    sb.plumb_ok(&["up", off]);
    assert_eq!(stp_state(&sb), 0);
    let index = must_link(&sb, None, "br0")["ifindex"].clone();
    let on = sb.write_file(
        "stp-on.toml",
        &STP_OFF.replace("[bridges.br0]\n", "[bridges.br0]\nstp = true\n"),
    );
    let on = on.to_str().unwrap();
    let plan = dry_run_plan(&sb, on, 1);
    assert_eq!(plan.len(), 1, "{plan:#?}");
    assert_eq!(plan[0]["op"], "set_link");
    assert_eq!(plan[0]["set"], serde_json::json!({ "stp": true }));
    assert_eq!(plan[0]["prev"], serde_json::json!({ "stp": false }));
    sb.plumb_ok(&["up", on]);
    assert_eq!(stp_state(&sb), 1, "the kernel runs STP on br0 now");
    assert_eq!(
        must_link(&sb, None, "br0")["ifindex"],
        index,
        "br0 was changed in place, not rebuilt"
    );
    assert_up_is_up_to_date(&sb, on, "stp");
    // And back.
    sb.plumb_ok(&["up", off]);
    assert_eq!(stp_state(&sb), 0);
}

#[test]
fn up_json_reports_the_steps_that_ran() {
    let sb = sandbox();
    let seed = example("seed.toml");
    let planned = dry_run_plan(&sb, &seed, 1);
    let out = sb.plumb(&["up", &seed, "--json"]);
    assert_exit(&out, 0, "plumb up --json");
    let doc = stdout_json(&out);
    assert_eq!(doc["version"], 2);
    assert_eq!(doc["lab"], "seed");
    assert_eq!(doc["dry_run"], false);
    assert_eq!(doc["recovered"], serde_json::json!([]));
    assert_eq!(doc["warnings"], serde_json::json!([]));
    assert_eq!(
        doc["steps"].as_array().expect("steps"),
        &planned,
        "the steps that ran are the ones the dry run planned"
    );
    assert!(doc["elapsed_ms"].as_u64().is_some(), "{doc:#}");
    assert_seed_built(&sb);
    // A second up --json ran nothing.
    let out = sb.plumb(&["up", &seed, "--json"]);
    assert_exit(&out, 0, "second plumb up --json");
    assert_eq!(stdout_json(&out)["steps"], serde_json::json!([]));
}
