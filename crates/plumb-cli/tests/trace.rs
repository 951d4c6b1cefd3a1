//! `plumb trace` through `examples/egress.toml` in a sandbox: the journey's hops against the
//! lab as `ip -j` sees it, the SNAT rewrite, the rule that drops the probe (plumb's own
//! firewall, and a foreign table's rule with a comment), the `--json` output against its
//! schema, the `-w` file through tshark, and no trace table left behind (`nft -j`).
//!
//! Needs `nft`, `tshark` and `python3` besides what the test kit needs.

mod common;

use std::process::Command;

use common::*;
use plumb_testkit::{describe, Sandbox};
use serde_json::Value;

const EGRESS_FIREWALL: &str = "
[nodes.upstream.firewall]
ingress = \"deny\"
allow = [\"tcp/80\"]
";

/// A foreign table in the host that drops pings forwarded to the internet.
const GUARD: &str = "table inet guard {
    chain outward {
        type filter hook forward priority 0; policy accept;
        icmp type echo-request oifname \"up0\" drop comment \"no pings out\"
    }
}
";

fn egress(sb: &Sandbox, extra: &str) {
    let base = std::fs::read_to_string(example("egress.toml")).expect("examples/egress.toml");
    let file = sb.write_file("egress.toml", &format!("{base}{extra}"));
    sb.plumb_ok(&["up", file.to_str().expect("utf-8")]);
    settle_carriers(sb);
}

/// `plumb trace ARGS --json`, with its exit status checked and its output checked against
/// docs/schema/trace.v1.json.
fn trace_json(sb: &Sandbox, args: &[&str], code: i32) -> Value {
    let mut argv = vec!["trace"];
    argv.extend_from_slice(args);
    argv.push("--json");
    let out = sb.plumb(&argv);
    assert_exit(&out, code, &format!("plumb {argv:?}"));
    let doc: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e})\n{}", describe(&out)));
    assert_schema("trace.v1.json", &doc);
    doc
}

/// (node, iface, direction) of each hop; the namespace is the node's in egress (no prefix).
fn hops(doc: &Value, key: &str) -> Vec<(String, String, String)> {
    doc[key]
        .as_array()
        .unwrap_or_else(|| panic!("no {key} in {doc:#}"))
        .iter()
        .map(|h| {
            (
                h["node"].as_str().unwrap_or("?").to_string(),
                h["iface"].as_str().unwrap_or("?").to_string(),
                h["direction"].as_str().unwrap_or("?").to_string(),
            )
        })
        .collect()
}

fn h(n: &str, i: &str, d: &str) -> (String, String, String) {
    (n.into(), i.into(), d.into())
}

/// The host-side end of `client`'s eth0, by the oracle: the host link whose index is eth0's
/// peer index.
fn client_peer(sb: &Sandbox) -> String {
    let eth0 = must_link(sb, Some("client"), "eth0");
    let peer = eth0["link_index"].as_i64().expect("eth0 has a peer index");
    sb.links(None)
        .into_iter()
        .find(|l| l["ifindex"].as_i64() == Some(peer))
        .and_then(|l| l["ifname"].as_str().map(str::to_string))
        .unwrap_or_else(|| panic!("no host link with index {peer}"))
}

/// Tables whose name starts with `plumb-trace` in the host and every namespace.
fn trace_tables(sb: &Sandbox) -> Vec<String> {
    let mut out = Vec::new();
    let mut places: Vec<Option<String>> = vec![None];
    places.extend(sb.netns_list().into_iter().map(Some));
    for ns in places {
        let rs = sb.nft_ruleset(ns.as_deref());
        for o in rs["nftables"].as_array().into_iter().flatten() {
            if let Some(name) = o["table"]["name"].as_str() {
                if name.starts_with("plumb-trace") {
                    out.push(format!("{}: {name}", ns.clone().unwrap_or("host".into())));
                }
            }
        }
    }
    out
}

#[test]
fn trace_egress_member_to_upstream_shows_every_hop_and_the_snat() {
    let sb = sandbox();
    egress(&sb, "");
    let file = sb.dir().join("journey.pcapng");
    let doc = trace_json(
        &sb,
        &["egress", "client", "upstream", "-w", file.to_str().unwrap()],
        0,
    );
    let veth = client_peer(&sb);
    assert_eq!(
        hops(&doc, "hops"),
        vec![
            h("client", "eth0", "out"),
            h("host", &veth, "in"),
            h("host", "lan0", "in"),
            h("host", "up0", "out"),
            h("upstream", "eth0", "in"),
        ],
        "{doc:#}"
    );
    let rewrites: Vec<(usize, String, String, String)> = doc["hops"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
        .flat_map(|(i, hop)| {
            hop["rewrites"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .map(move |r| {
                    (
                        i,
                        r["kind"].as_str().unwrap_or("?").to_string(),
                        r["from"].as_str().unwrap_or("?").to_string(),
                        r["to"].as_str().unwrap_or("?").to_string(),
                    )
                })
        })
        .collect();
    assert_eq!(
        rewrites.len(),
        1,
        "exactly one rewrite on the way out: {rewrites:?}"
    );
    let (at, kind, from, to) = &rewrites[0];
    assert_eq!(
        (*at, kind.as_str()),
        (3, "SNAT"),
        "the SNAT shows at the uplink"
    );
    assert!(
        from.starts_with("10.90.0.3"),
        "SNAT from the member's address: {from}"
    );
    assert!(
        to.starts_with("203.0.113.1"),
        "SNAT to the uplink's address: {to}"
    );
    let hop_ttls: Vec<i64> = doc["hops"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["ttl"].as_i64().unwrap())
        .collect();
    assert_eq!(hop_ttls, [64, 64, 64, 63, 63], "the host routes once");
    assert_eq!(doc["reached"], true);
    let back = hops(&doc, "reply");
    assert_eq!(back.first(), Some(&h("upstream", "eth0", "out")), "{doc:#}");
    assert_eq!(back.last(), Some(&h("client", "eth0", "in")), "{doc:#}");
    assert!(
        doc["dropped_by"].is_null() && doc["last_seen"].is_null(),
        "{doc:#}"
    );

    // The hops' packets, by tshark: one interface per point of the path, names intact.
    let out = Command::new("tshark")
        .arg("-r")
        .arg(&file)
        .args(["-T", "fields", "-e", "frame.interface_name", "-e", "ip.src"])
        .output()
        .unwrap_or_else(|e| panic!("cannot run tshark (apt-get install tshark): {e}"));
    assert!(out.status.success(), "tshark\n{}", describe(&out));
    let rows: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(rows.len(), 10, "5 hops out and 5 back: {rows:?}");
    assert_eq!(rows[3], "host/up0\t203.0.113.1", "{rows:?}");
    // tcpdump reads it too.
    let out = Command::new("tcpdump")
        .args(["-n", "-r"])
        .arg(&file)
        .output()
        .unwrap_or_else(|e| panic!("cannot run tcpdump (apt-get install tcpdump): {e}"));
    assert!(out.status.success(), "tcpdump -r\n{}", describe(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).lines().count(),
        10,
        "tcpdump -r"
    );
    assert!(
        trace_tables(&sb).is_empty(),
        "trace tables left: {:?}",
        trace_tables(&sb)
    );
}

#[test]
fn trace_probe_dropped_by_the_upstream_firewall_names_its_chain_policy() {
    let sb = sandbox();
    egress(&sb, EGRESS_FIREWALL);
    let doc = trace_json(&sb, &["egress", "client", "upstream"], 1);
    assert_eq!(doc["reached"], false);
    assert_eq!(
        hops(&doc, "hops").last(),
        Some(&h("upstream", "eth0", "in")),
        "the probe arrives, then is dropped: {doc:#}"
    );
    let d = &doc["dropped_by"];
    assert_eq!(d["node"], "upstream", "{doc:#}");
    assert_eq!(d["family"], "inet");
    assert_eq!(d["table"], "plumb-egress");
    assert_eq!(d["chain"], "input");
    assert_eq!(d["policy"], true);
    assert!(
        trace_tables(&sb).is_empty(),
        "trace tables left: {:?}",
        trace_tables(&sb)
    );
    // A TCP probe to the allowed port gets through the same firewall.
    let ok = trace_json(
        &sb,
        &["egress", "client", "upstream", "--proto", "tcp/80"],
        0,
    );
    assert!(ok["dropped_by"].is_null(), "{ok:#}");
}

#[test]
fn trace_probe_dropped_by_a_foreign_rule_names_the_rule_and_where_it_was_lost() {
    let sb = sandbox();
    egress(&sb, "");
    let rules = sb.write_file("guard.nft", GUARD);
    sb.run_ok(&["nft", "-f", rules.to_str().unwrap()]);
    let doc = trace_json(&sb, &["egress", "client", "upstream"], 1);
    let d = &doc["dropped_by"];
    assert_eq!(d["node"], "host", "{doc:#}");
    assert_eq!(
        (d["table"].as_str(), d["chain"].as_str()),
        (Some("guard"), Some("outward"))
    );
    assert_eq!(d["comment"], "no pings out", "{doc:#}");
    assert_eq!(d["policy"], false);
    let handle = d["handle"].as_u64().expect("a rule's handle");
    let listed: Value =
        serde_json::from_str(&sb.run_ok(&["nft", "-j", "-a", "list", "table", "inet", "guard"]))
            .expect("nft -j prints JSON");
    let rule = listed["nftables"]
        .as_array()
        .into_iter()
        .flatten()
        .find_map(|o| o.get("rule").filter(|r| r["table"] == "guard"))
        .cloned()
        .expect("nft lists the guard's rule");
    assert_eq!(
        rule["handle"].as_u64(),
        Some(handle),
        "the handle nft lists"
    );
    assert_eq!(doc["last_seen"], "host/lan0 in", "{doc:#}");
    assert!(
        trace_tables(&sb).is_empty(),
        "trace tables left: {:?}",
        trace_tables(&sb)
    );
}

/// Waits until a trace table exists in `upstream` (the trace is under way), then ends the
/// trace with `signal` and checks that no trace table is left anywhere.
fn interrupted_trace_leaves_no_table(signal: &str) {
    let sb = sandbox();
    egress(&sb, EGRESS_FIREWALL);
    let mut child = sb
        .plumb_command(&["trace", "egress", "client", "upstream"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn plumb trace");
    sb.wait_until(
        std::time::Duration::from_secs(20),
        "the trace table is in upstream",
        |s| {
            s.run_ok(&["ip", "netns", "exec", "upstream", "nft", "list", "tables"])
                .contains("plumb-trace")
        },
    );
    let st = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(st.success());
    let status = child.wait().expect("wait");
    if signal == "-INT" {
        assert_eq!(
            status.code(),
            Some(1),
            "an interrupted trace reports a probe without answer"
        );
    }
    sb.wait_until(
        std::time::Duration::from_secs(5),
        "the kernel has removed the trace tables",
        |s| trace_tables(s).is_empty(),
    );
}

#[test]
fn trace_interrupted_by_ctrl_c_removes_its_trace_tables() {
    interrupted_trace_leaves_no_table("-INT");
}

#[test]
fn trace_killed_leaves_no_trace_table_behind() {
    // NFT_TABLE_F_OWNER: the kernel removes the table with the socket that made it.
    interrupted_trace_leaves_no_table("-KILL");
}

#[test]
fn trace_follow_picks_up_an_existing_ping_flow_and_its_snat() {
    let sb = sandbox();
    egress(&sb, "");
    // An existing flow: a ping every 0.2 s from client, for as long as the trace may wait.
    let mut ping = sb
        .command(&[
            "ip",
            "netns",
            "exec",
            "client",
            "ping",
            "-i",
            "0.2",
            "-c",
            "100",
            "203.0.113.2",
        ])
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("spawn ping");
    let doc = trace_json(
        &sb,
        &["egress", "client", "upstream", "--follow", "--wait", "10s"],
        0,
    );
    let _ = ping.kill();
    let _ = ping.wait();
    assert_eq!(doc["hops"].as_array().map(Vec::len), Some(5), "{doc:#}");
    assert_eq!(doc["hops"][3]["rewrites"][0]["kind"], "SNAT", "{doc:#}");
    assert_eq!(doc["reached"], true);
    assert_eq!(doc["outcome"], "answer seen (following an existing flow)");
    assert_eq!(
        hops(&doc, "reply").last(),
        Some(&h("client", "eth0", "in")),
        "{doc:#}"
    );
}

#[test]
fn trace_follow_without_a_flow_says_so_and_exits_1() {
    let sb = sandbox();
    egress(&sb, "");
    let doc = trace_json(
        &sb,
        &[
            "egress", "client", "upstream", "--follow", "--wait", "500ms",
        ],
        1,
    );
    assert!(doc["hops"].as_array().is_some_and(Vec::is_empty), "{doc:#}");
    assert_eq!(
        doc["outcome"],
        "no packet of the flow left client/eth0 in 0.5 s"
    );
    assert!(trace_tables(&sb).is_empty());
}
