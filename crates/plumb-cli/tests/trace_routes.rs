//! `plumb trace` follows the routing tables: in a lab with two routers between `a` and `b`,
//! where `a` sends through `r2` and `b` answers through `r1` (asymmetric routing), the journey's
//! path and hops are those of the routes, not of the first way through the lab's graph, and the
//! answer is seen on its own way back. When a router does not forward, the journey says where
//! the routing tables stop. In a sandbox; needs `nft` and `python3` besides the test kit's.

mod common;

use common::*;
use plumb_testkit::{describe, Sandbox};
use serde_json::Value;

fn diamond(r2_forwards: bool) -> String {
    format!(
        r#"name = "diamond"

[nodes.a]
routes = [{{ to = "10.3.0.0/24", via = "10.2.0.1" }}]
[nodes.a.interfaces.eth1]
addresses = ["10.1.0.2/24"]
[nodes.a.interfaces.eth2]
addresses = ["10.2.0.2/24"]

[nodes.r1]
sysctls = {{ "net.ipv4.ip_forward" = 1 }}
routes = [{{ to = "10.2.0.0/24", via = "10.1.0.2" }}]
[nodes.r1.interfaces.left]
addresses = ["10.1.0.1/24"]
[nodes.r1.interfaces.right]
addresses = ["10.3.0.1/24"]

[nodes.r2]
sysctls = {{ "net.ipv4.ip_forward" = {} }}
routes = [{{ to = "10.3.0.0/24", via = "10.4.0.2" }}]
[nodes.r2.interfaces.left]
addresses = ["10.2.0.1/24"]
[nodes.r2.interfaces.right]
addresses = ["10.4.0.1/24"]

[nodes.b]
routes = [{{ to = "10.2.0.0/24", via = "10.3.0.1" }}]
[nodes.b.interfaces.eth1]
addresses = ["10.3.0.2/24"]
[nodes.b.interfaces.eth2]
addresses = ["10.4.0.2/24"]

[[links]]
endpoints = ["a:eth1", "r1:left"]
[[links]]
endpoints = ["a:eth2", "r2:left"]
[[links]]
endpoints = ["r1:right", "b:eth1"]
[[links]]
endpoints = ["r2:right", "b:eth2"]
"#,
        u8::from(r2_forwards)
    )
}

fn up(sb: &Sandbox, r2_forwards: bool) {
    let file = sb.write_file("diamond.toml", &diamond(r2_forwards));
    sb.plumb_ok(&["up", file.to_str().expect("utf-8")]);
    settle_carriers(sb);
}

/// `plumb trace diamond a 10.3.0.2 --json`, exit status `code`, checked against the schema.
fn trace(sb: &Sandbox, code: i32) -> Value {
    let out = sb.plumb(&["trace", "diamond", "a", "10.3.0.2", "--json"]);
    assert_exit(&out, code, "plumb trace");
    let doc: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e})\n{}", describe(&out)));
    assert_schema("trace.v1.json", &doc);
    doc
}

fn points(doc: &Value, key: &str) -> Vec<String> {
    doc[key]
        .as_array()
        .unwrap_or_else(|| panic!("no {key} in {doc:#}"))
        .iter()
        .map(|p| {
            format!(
                "{}/{}{}",
                p["node"].as_str().unwrap_or("?"),
                p["iface"].as_str().unwrap_or("?"),
                p["direction"]
                    .as_str()
                    .map(|d| format!(" {d}"))
                    .unwrap_or_default()
            )
        })
        .collect()
}

#[test]
fn trace_follows_the_routes_there_and_the_answer_back_its_own_way() {
    let sb = sandbox();
    up(&sb, true);
    let doc = trace(&sb, 0);
    assert_eq!(doc["reached"], true, "{doc:#}");
    assert_eq!(doc["path_note"], Value::Null, "{doc:#}");
    assert_eq!(
        points(&doc, "path"),
        ["a/eth2", "r2/left", "r2/right", "b/eth2"]
    );
    assert_eq!(
        points(&doc, "reply_path"),
        ["b/eth1", "r1/right", "r1/left", "a/eth1"]
    );
    assert_eq!(
        points(&doc, "hops"),
        ["a/eth2 out", "r2/left in", "r2/right out", "b/eth2 in"]
    );
    assert_eq!(
        points(&doc, "reply"),
        ["b/eth1 out", "r1/right in", "r1/left out", "a/eth1 in"]
    );
    // The oracle agrees: a's kernel sends to 10.3.0.2 through eth2.
    let get = sb.run_ok(&["ip", "-n", "a", "-j", "route", "get", "10.3.0.2"]);
    let get: Value = serde_json::from_str(&get).expect("ip -j");
    assert_eq!(get[0]["dev"], "eth2", "{get:#}");
    // The text says the answer's way.
    let out = sb.plumb(&["trace", "diamond", "a", "10.3.0.2"]);
    assert_exit(&out, 0, "plumb trace");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.lines()
            .any(|l| l == "reply path: b/eth1 -> r1/right -> r1/left -> a/eth1"),
        "{text}"
    );
}

#[test]
fn trace_says_where_the_routing_tables_stop() {
    let sb = sandbox();
    up(&sb, false);
    let doc = trace(&sb, 1);
    assert_eq!(doc["reached"], false, "{doc:#}");
    let note = doc["path_note"]
        .as_str()
        .unwrap_or_else(|| panic!("{doc:#}"));
    assert!(note.contains("node r2"), "{note}");
    // The probe left a and entered r2, and went no further.
    let hops = points(&doc, "hops");
    assert_eq!(
        hops.first().map(String::as_str),
        Some("a/eth2 out"),
        "{hops:?}"
    );
    assert_eq!(
        hops.last().map(String::as_str),
        Some("r2/left in"),
        "{hops:?}"
    );
}

/// (kind, from, to) of every rewrite of `key`'s hops.
fn rewrites(doc: &Value, key: &str) -> Vec<(String, String, String)> {
    doc[key]
        .as_array()
        .unwrap_or_else(|| panic!("no {key} in {doc:#}"))
        .iter()
        .flat_map(|h| h["rewrites"].as_array().cloned().unwrap_or_default())
        .map(|r| {
            let s = |k: &str| r[k].as_str().unwrap_or("?").to_string();
            (s("kind"), s("from"), s("to"))
        })
        .collect()
}

#[test]
fn trace_to_a_published_port_follows_the_dnat_to_the_member() {
    let sb = sandbox();
    sb.plumb_ok(&["up", &example("egress.toml")]);
    settle_carriers(&sb);
    // web serves port 80, which the host publishes as 8080/tcp.
    let server = common::sockets::serve(&sb, Some("web"), "tcp", 80, 1, "3");
    let out = sb.plumb(&[
        "trace",
        "egress",
        "upstream",
        "203.0.113.1",
        "--proto",
        "tcp/8080",
        "--json",
    ]);
    server.finish();
    assert_exit(&out, 0, "plumb trace to a published port");
    let doc: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e})\n{}", describe(&out)));
    assert_eq!(doc["reached"], true, "{doc:#}");
    let path = points(&doc, "path");
    assert_eq!(
        &path[..3],
        ["upstream/eth0", "host/up0", "host/lan0"],
        "{path:?}"
    );
    assert_eq!(
        path.last().map(String::as_str),
        Some("web/eth0"),
        "{path:?}"
    );
    let hops = points(&doc, "hops");
    assert_eq!(
        hops.last().map(String::as_str),
        Some("web/eth0 in"),
        "{hops:?}"
    );
    assert_eq!(
        rewrites(&doc, "hops"),
        [(
            "DNAT".to_string(),
            "203.0.113.1:8080".to_string(),
            "10.90.0.2:80".to_string()
        )],
        "{doc:#}"
    );
    let reply = points(&doc, "reply");
    assert_eq!(
        reply.first().map(String::as_str),
        Some("web/eth0 out"),
        "{reply:?}"
    );
    assert_eq!(
        reply.last().map(String::as_str),
        Some("upstream/eth0 in"),
        "{reply:?}"
    );
    assert!(
        rewrites(&doc, "reply")
            .iter()
            .any(|(k, f, t)| k == "SNAT" && f == "10.90.0.2:80" && t == "203.0.113.1:8080"),
        "{doc:#}"
    );
}
