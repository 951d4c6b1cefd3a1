//! NAT egress and published ports (`examples/egress.toml`), through independent views: what a
//! server sees as its peer, bytes echoed over real sockets, and `nft -j list ruleset` run inside
//! the sandbox. "The internet" is the sandbox namespace `upstream`; nothing here touches the
//! machine's own network or nftables.
//!
//! Needs `nft` (nftables) and `python3` besides what the test kit needs.

mod common;

use std::time::Duration;

use common::sockets::*;
use common::*;
use plumb_testkit::{describe, line_diff, Sandbox};
use serde_json::Value;

/// plumb's table for the lab `egress`.
const TABLE: &str = "plumb-egress";

/// The host's address on its uplink: NAT'd traffic leaves with it.
const HOST_UP: &str = "203.0.113.1";
/// The internet's address.
const UPSTREAM: &str = "203.0.113.2";
/// The gateway of lan0, on the bridge in the host.
const GATEWAY: &str = "10.90.0.1";

/// A foreign table with an input chain, a set and a rule: no counters, so its JSON listing is
/// stable byte for byte.
const FOREIGN: &str = "table inet foreign {
    set blocked {
        type ipv4_addr
        elements = { 192.0.2.7, 198.51.100.9 }
    }
    chain c {
        type filter hook input priority 0; policy accept;
        ip saddr @blocked drop
    }
}
";

/// A foreign table that drops everything forwarded: plumb must warn about it at `up`.
const GUARD: &str = "table ip guard {
    chain gatekeeper {
        type filter hook forward priority 0; policy drop;
    }
}
";

/// `nft -j ARGS` inside `ns`, parsed; panics with the output if it fails.
fn nft_json(sb: &Sandbox, ns: Option<&str>, args: &[&str]) -> Value {
    let stdout = nft_text(sb, ns, args);
    serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("nft -j {args:?} printed invalid JSON ({e}):\n{stdout}"))
}

/// The raw stdout of `nft -j ARGS` inside `ns`; panics with the output if it fails.
fn nft_text(sb: &Sandbox, ns: Option<&str>, args: &[&str]) -> String {
    let mut argv = Vec::new();
    if let Some(ns) = ns {
        argv.extend(["ip", "netns", "exec", ns]);
    }
    argv.extend(["nft", "-j"]);
    argv.extend_from_slice(args);
    sb.run_ok(&argv)
}

/// The whole ruleset of `ns`: `nft -j list ruleset`.
fn ruleset(sb: &Sandbox, ns: Option<&str>) -> Value {
    nft_json(sb, ns, &["list", "ruleset"])
}

/// The `(family, name)` of every table in a `nft -j` listing.
fn tables(ruleset: &Value) -> Vec<(String, String)> {
    objects(ruleset)
        .iter()
        .filter_map(|o| o.get("table"))
        .map(|t| {
            (
                t["family"].as_str().unwrap_or("?").to_string(),
                t["name"].as_str().unwrap_or("?").to_string(),
            )
        })
        .collect()
}

fn objects(ruleset: &Value) -> Vec<Value> {
    ruleset["nftables"].as_array().cloned().unwrap_or_default()
}

/// The listing without table `inet NAME` and everything in it (chains, rules, sets, maps,
/// elements...).
fn without_table(ruleset: &Value, name: &str) -> Value {
    let keep: Vec<Value> = objects(ruleset)
        .into_iter()
        .filter(|o| {
            let Some((kind, body)) = o.as_object().and_then(|m| m.iter().next()) else {
                return true;
            };
            let table = if kind == "table" {
                &body["name"]
            } else {
                &body["table"]
            };
            !(body["family"] == "inet" && table == name)
        })
        .collect();
    serde_json::json!({ "nftables": keep })
}

fn has_table(ruleset: &Value, family: &str, name: &str) -> bool {
    tables(ruleset)
        .iter()
        .any(|(f, n)| f == family && n == name)
}

/// The warnings plumb printed: its stderr lines after `plumb: warning: `.
fn warnings(out: &std::process::Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter_map(|l| l.strip_prefix("plumb: warning: "))
        .map(str::to_string)
        .collect()
}

/// Loads an nftables script inside the sandbox's own namespace (never the machine's).
fn nft_load(sb: &Sandbox, file: &str, script: &str) {
    let path = sb.write_file(file, script);
    sb.run_ok(&["nft", "-f", path.to_str().expect("UTF-8 path")]);
}

/// Starts `up FILE` with `PLUMB_STALL_AFTER=n`, waits for `plumb: stalled` and kills it with
/// SIGKILL, leaving a crashed, half-built lab.
fn crash_up_after(sb: &Sandbox, file: &str, n: usize) {
    let mut cmd = sb.plumb_command(&["up", file]);
    cmd.env("PLUMB_FAULT", format!("stall={n}"));
    let mut child = sb.spawn_until_stderr(cmd, "plumb: stalled", Duration::from_secs(30));
    child.kill().expect("SIGKILL plumb up");
    child.wait().expect("reap plumb up");
}

/// Asserts that only plumb's table (if any) exists in each of the lab's namespaces.
fn assert_only_plumb_tables_in_nodes(sb: &Sandbox) {
    for ns in ["web", "client", "upstream"] {
        let foreign: Vec<_> = tables(&ruleset(sb, Some(ns)))
            .into_iter()
            .filter(|(f, n)| !(f == "inet" && n == TABLE))
            .collect();
        assert!(
            foreign.is_empty(),
            "{ns} has tables plumb should not have made: {foreign:?}"
        );
    }
}

#[test]
fn egress_nat_member_reaches_upstream_with_the_host_address() {
    let sb = sandbox();
    let before = ruleset(&sb, None);
    sb.plumb_ok(&["up", &example("egress.toml")]);

    // The internet has no way back to the private subnet but through NAT.
    let routes = sb.routes(Some("upstream"));
    assert!(
        routes
            .iter()
            .all(|r| r["dst"] != "default" && !r["dst"].as_str().unwrap_or("").starts_with("10.")),
        "upstream must know only its connected subnet: {routes:#?}"
    );

    let server = serve(&sb, Some("upstream"), "tcp", 7000, 1, "4.5");
    let reply = send(
        &sb,
        Some("client"),
        "tcp",
        UPSTREAM,
        7000,
        "nat-tcp-client",
        "3",
    );
    let seen = server.finish();
    assert!(
        reply
            .as_deref()
            .is_ok_and(|r| r.starts_with("reply echo:nat-tcp-client ")),
        "client -> {UPSTREAM}:7000/tcp got no echo: {reply:?}\nserver saw: {seen:?}"
    );
    assert_eq!(
        Server::peers(&seen),
        [HOST_UP],
        "the upstream server should see the host's address {HOST_UP} as its only peer: {seen:?}"
    );

    let server = serve(&sb, Some("upstream"), "udp", 7001, 1, "4.5");
    let reply = send(&sb, Some("web"), "udp", UPSTREAM, 7001, "nat-udp-web", "3");
    let seen = server.finish();
    assert!(
        reply
            .as_deref()
            .is_ok_and(|r| r.starts_with("reply echo:nat-udp-web ")),
        "web -> {UPSTREAM}:7001/udp got no echo: {reply:?}\nserver saw: {seen:?}"
    );
    assert_eq!(
        Server::peers(&seen),
        [HOST_UP],
        "the upstream server should see the host's address {HOST_UP} as its only peer: {seen:?}"
    );
    sb.ping_ok(Some("client"), UPSTREAM);

    // Inside the subnet nothing is rewritten: web sees the client's own address.
    let server = serve(&sb, Some("web"), "tcp", 7002, 1, "4.5");
    let reply = send(
        &sb,
        Some("client"),
        "tcp",
        "10.90.0.2",
        7002,
        "lan-tcp",
        "3",
    );
    let seen = server.finish();
    assert!(
        reply
            .as_deref()
            .is_ok_and(|r| r.starts_with("reply echo:lan-tcp ")),
        "client -> web:7002/tcp inside lan0 got no echo: {reply:?}\nweb saw: {seen:?}"
    );
    assert_eq!(
        Server::peers(&seen),
        ["10.90.0.3"],
        "client -> web inside lan0 should keep the source 10.90.0.3: {seen:?}"
    );

    // plumb's table is there, and nothing else in the host's ruleset changed.
    let after = ruleset(&sb, None);
    assert!(
        has_table(&after, "inet", TABLE),
        "no table inet {TABLE} in the host after up: {:?}",
        tables(&after)
    );
    let rest = without_table(&after, TABLE);
    assert!(
        rest == before,
        "up changed the host's ruleset outside table inet {TABLE}\n{}",
        line_diff(&before, &rest)
    );
    assert_only_plumb_tables_in_nodes(&sb);
}

/// Sends one message per path to the published `host_port` and asserts that each arrives at
/// `web:web_port` from the peer it should (the server's own view) and that its echo comes back.
fn publish_reaches_web(proto: &str, host_port: u16, web_port: u16) {
    let sb = sandbox();
    sb.plumb_ok(&["up", &example("egress.toml")]);
    // (from, to, the peers web may see): the internet keeps its own address (the port is
    // published, not proxied); the host's own connections come from one of its addresses; a
    // member's (hairpin) are masqueraded to the gateway, or web's reply would skip the host.
    let host_addrs: &[&str] = &[HOST_UP, GATEWAY];
    let paths: [(Option<&str>, &str, &[&str]); 5] = [
        (Some("upstream"), HOST_UP, &[UPSTREAM]),
        (None, HOST_UP, host_addrs),
        (None, GATEWAY, host_addrs),
        (Some("client"), GATEWAY, &[GATEWAY]),
        (Some("client"), HOST_UP, &[GATEWAY]),
    ];
    let server = serve(&sb, Some("web"), proto, web_port, paths.len(), "4.5");
    let mut failures = Vec::new();
    let mut sent = Vec::new();
    for (from, to, peers) in paths {
        let who = from.unwrap_or("host");
        let msg = format!("{proto}-{who}-to-{to}");
        match send(&sb, from, proto, to, host_port, &msg, "3") {
            Ok(r) if r.starts_with(&format!("reply echo:{msg} ")) => {}
            other => failures.push(format!(
                "{who} -> {to}:{host_port}/{proto}: no echo: {other:?}"
            )),
        }
        sent.push((msg, peers));
    }
    let seen = server.finish();
    for (msg, peers) in &sent {
        // `peer ADDR MSG`, exactly once per message.
        let from: Vec<&str> = seen
            .iter()
            .filter_map(|l| l.strip_prefix("peer "))
            .filter_map(|l| l.split_once(' '))
            .filter(|(_, m)| m == msg)
            .map(|(addr, _)| addr)
            .collect();
        match from.as_slice() {
            [addr] if peers.contains(addr) => {}
            [] => failures.push(format!("web:{web_port} never received {msg:?}")),
            other => failures.push(format!(
                "web:{web_port} received {msg:?} from {other:?}, expected one of {peers:?}"
            )),
        }
    }
    assert!(
        failures.is_empty(),
        "published {host_port}/{proto} -> web:{web_port}:\n{}\nweb's server saw: {seen:#?}",
        failures.join("\n")
    );
}

#[test]
fn egress_publish_tcp_8080_reaches_web_80_from_upstream_host_and_members() {
    publish_reaches_web("tcp", 8080, 80);
}

#[test]
fn egress_publish_udp_5353_reaches_web_53_from_upstream_host_and_members() {
    publish_reaches_web("udp", 5353, 53);
}

#[test]
fn egress_foreign_table_survives_up_and_down_byte_for_byte() {
    let sb = sandbox();
    nft_load(&sb, "foreign.nft", FOREIGN);
    let table_before = nft_text(&sb, None, &["list", "table", "inet", "foreign"]);
    let before = ruleset(&sb, None);
    let egress = example("egress.toml");

    let out = sb.plumb(&["up", &egress]);
    assert_exit(&out, 0, "plumb up next to a foreign table");
    assert_eq!(
        warnings(&out),
        Vec::<String>::new(),
        "table inet foreign drops nothing forwarded: nothing to warn about"
    );
    let table_up = nft_text(&sb, None, &["list", "table", "inet", "foreign"]);
    assert_eq!(table_up, table_before, "up changed table inet foreign");
    let after_up = ruleset(&sb, None);
    assert!(
        has_table(&after_up, "inet", TABLE),
        "no table inet {TABLE} after up: {:?}",
        tables(&after_up)
    );
    let rest = without_table(&after_up, TABLE);
    assert!(
        rest == before,
        "up changed the ruleset outside its own table\n{}",
        line_diff(&before, &rest)
    );

    sb.plumb_ok(&["down", &egress]);
    let table_down = nft_text(&sb, None, &["list", "table", "inet", "foreign"]);
    assert_eq!(table_down, table_before, "down changed table inet foreign");
    let after_down = ruleset(&sb, None);
    assert!(
        after_down == before,
        "the ruleset after down differs from the one before up\n{}",
        line_diff(&before, &after_down)
    );
}

#[test]
fn egress_foreign_drop_forward_chain_is_warned_about_at_up() {
    let sb = sandbox();
    nft_load(&sb, "guard.nft", GUARD);
    let table_before = nft_text(&sb, None, &["list", "table", "ip", "guard"]);
    let egress = example("egress.toml");

    let out = sb.plumb(&["up", &egress]);
    assert_exit(&out, 0, "up next to a foreign policy-drop forward chain");
    let warned = warnings(&out);
    assert_eq!(
        warned.len(),
        1,
        "up should warn once, about table ip guard's chain gatekeeper (policy drop on the \
         forward hook drops the lab's forwarded traffic)\n{}",
        describe(&out)
    );
    assert!(
        warned[0].starts_with("the foreign nftables chain ip guard/gatekeeper "),
        "the warning should name family, table and chain: {:?}",
        warned[0]
    );
    assert_eq!(
        nft_text(&sb, None, &["list", "table", "ip", "guard"]),
        table_before,
        "up changed table ip guard"
    );

    sb.plumb_ok(&["down", &egress]);
    assert_eq!(
        nft_text(&sb, None, &["list", "table", "ip", "guard"]),
        table_before,
        "down changed table ip guard"
    );
}

#[test]
fn egress_down_leaves_the_ruleset_as_before_up() {
    let sb = sandbox();
    let empty = sb.snapshot();
    let before = ruleset(&sb, None);
    let egress = example("egress.toml");

    let plan = dry_run_steps(&sb, &egress);
    assert!(
        !plan.is_empty(),
        "up --dry-run on an empty sandbox planned nothing"
    );
    assert!(
        ruleset(&sb, None) == before,
        "up --dry-run changed the ruleset"
    );

    sb.plumb_ok(&["up", &egress]);
    assert!(
        has_table(&ruleset(&sb, None), "inet", TABLE),
        "no table inet {TABLE} after up"
    );
    let out = sb.plumb(&["down", "egress"]);
    assert_exit(&out, 0, "plumb down egress");
    let after = ruleset(&sb, None);
    assert!(
        after == before,
        "down left nftables objects behind\n{}",
        line_diff(&before, &after)
    );
    sb.assert_state_eventually(&empty, SETTLE, "after plumb down egress");
}

#[test]
fn egress_gc_after_sigkill_mid_up_leaves_no_table() {
    let sb = sandbox();
    // A foreign table must survive the crash and the cleanup too.
    nft_load(&sb, "foreign.nft", FOREIGN);
    let empty = sb.snapshot();
    let before = ruleset(&sb, None);
    let egress = example("egress.toml");
    // Crash after the first step, in the middle, one step short of the end and after the last
    // step. The plan is counted again each time: a host sysctl such as net.ipv4.ip_forward may
    // stay set after gc, so later plans can be shorter.
    let mut table_seen = false;
    let mut last_steps = 0;
    for point in 0..4 {
        let steps = dry_run_steps(&sb, &egress).len();
        assert!(steps >= 2, "the egress lab cannot take fewer than 2 steps");
        last_steps = steps;
        let n = [1, steps / 2, steps - 1, steps][point];
        crash_up_after(&sb, &egress, n);
        table_seen |= has_table(&ruleset(&sb, None), "inet", TABLE);

        let out = sb.plumb(&["gc"]);
        assert_exit(&out, 0, &format!("plumb gc after a crash after {n} steps"));
        let after = ruleset(&sb, None);
        assert!(
            after == before,
            "gc after a crash after {n} of {steps} steps left the ruleset changed\n{}",
            line_diff(&before, &after)
        );
        sb.assert_state_eventually(
            &empty,
            SETTLE,
            &format!("after gc of a crash after {n} of {steps} steps"),
        );
    }
    assert!(
        table_seen,
        "table inet {TABLE} never existed at any crash point (even after all {last_steps} \
         planned steps): the nftables transaction should be a step of the plan, so that a crash can \
         leave it behind and gc must remove it"
    );
}

#[test]
fn egress_up_twice_second_changes_no_rule() {
    let sb = sandbox();
    let egress = example("egress.toml");
    sb.plumb_ok(&["up", &egress]);
    // Handles included: a table that was deleted and made again would get new ones.
    let first = nft_text(&sb, None, &["-a", "list", "ruleset"]);
    assert_up_is_up_to_date(&sb, &egress, "egress");
    let second = nft_text(&sb, None, &["-a", "list", "ruleset"]);
    assert_eq!(first, second, "the second up changed the ruleset");
}

/// The example with `from` replaced by `to` (which must occur exactly once), written to the
/// sandbox's directory; its path.
fn edited_example(sb: &Sandbox, name: &str, from: &str, to: &str) -> String {
    let original = std::fs::read_to_string(example("egress.toml")).expect("read the example");
    assert_eq!(
        original.matches(from).count(),
        1,
        "examples/egress.toml must contain exactly one {from:?}"
    );
    let path = sb.write_file(name, &original.replace(from, to));
    path.to_string_lossy().into_owned()
}

#[test]
fn egress_up_after_edits_converges_the_table() {
    let sb = sandbox();
    let before = ruleset(&sb, None);
    sb.plumb_ok(&["up", &example("egress.toml")]);

    // Unpublish 5353/udp: it stops reaching web, 8080/tcp still does.
    const PUBLISH: &str = r#"publish = ["8080:web:80/tcp", "5353:web:53/udp"]"#;
    let tcp_only = edited_example(
        &sb,
        "tcp-only.toml",
        PUBLISH,
        r#"publish = ["8080:web:80/tcp"]"#,
    );
    sb.plumb_ok(&["up", &tcp_only]);
    // The UDP server gives up soon after the client's 1.5 s: nothing should arrive.
    let udp = serve(&sb, Some("web"), "udp", 53, 1, "2");
    let tcp = serve(&sb, Some("web"), "tcp", 80, 1, "4.5");
    let udp_reply = send(
        &sb,
        Some("upstream"),
        "udp",
        HOST_UP,
        5353,
        "unpublished",
        "1.5",
    );
    let tcp_reply = send(
        &sb,
        Some("upstream"),
        "tcp",
        HOST_UP,
        8080,
        "still-published",
        "3",
    );
    let (udp_seen, tcp_seen) = (udp.finish(), tcp.finish());
    assert!(
        udp_reply.is_err() && !udp_seen.iter().any(|l| l.starts_with("peer ")),
        "5353/udp still reaches web after it was removed from publish: {udp_reply:?}, \
         web:53 saw {udp_seen:?}"
    );
    assert!(
        tcp_reply
            .as_deref()
            .is_ok_and(|r| r.starts_with("reply echo:still-published ")),
        "8080/tcp stopped reaching web when only 5353/udp was removed: {tcp_reply:?}, \
         web:80 saw {tcp_seen:?}"
    );
    assert_eq!(
        Server::peers(&tcp_seen),
        [UPSTREAM],
        "web:80 should see upstream's connection, and only it: {tcp_seen:?}"
    );

    // Neither nat nor publish: the lab needs no rule, so its table goes.
    let plain = edited_example(&sb, "plain.toml", &format!("nat = true\n{PUBLISH}\n"), "");
    sb.plumb_ok(&["up", &plain]);
    let after = ruleset(&sb, None);
    assert!(
        after == before,
        "the lab's table should be gone once the file needs no rule\n{}",
        line_diff(&before, &after)
    );
}
