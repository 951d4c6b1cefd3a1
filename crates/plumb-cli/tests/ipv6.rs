//! IPv6 NAT, published ports and dual-stack networks (`examples/dual-stack.toml`), through
//! independent views: what a server sees as its peer, bytes echoed over real sockets, `ip -j`
//! and `nft -j list ruleset` run inside the sandbox, and `/proc/sys`. "The internet" is the
//! sandbox namespace `upstream`; nothing here touches the machine's own network or nftables.
//!
//! Every address plumb gives is added with `nodad`, so it is usable at once. The kernel's own
//! link-local addresses go through duplicate address detection (about a second) after `up`,
//! and until the bridge's is done, the host does not send the neighbour solicitation for a
//! packet it forwards (it needs a link-local source): such a packet waits for the retransmit.
//! Tests that send traffic first wait until no address of the sandbox is tentative
//! ([`wait_for_dad`]), a condition, not a sleep.
//!
//! Needs `nft` (nftables) and `python3` besides what the test kit needs.

mod common;

use std::time::Duration;

use common::sockets::*;
use common::*;
use plumb_testkit::{describe, line_diff, Sandbox};
use serde_json::Value;

/// The lab of `examples/dual-stack.toml` and its table.
const LAB: &str = "dual-stack";
const TABLE: &str = "plumb-dual-stack";
const BRIDGE: &str = "dual0";

/// The host's uplink addresses: NAT'd traffic leaves with them, published ports are reached
/// on them from outside.
const HOST4: &str = "198.51.100.1";
const HOST6: &str = "2001:db8:100::1";
/// The internet's addresses.
const UPSTREAM4: &str = "198.51.100.2";
const UPSTREAM6: &str = "2001:db8:100::2";
/// The gateways of dual0, on the bridge in the host.
const GATEWAY4: &str = "10.96.0.1";
const GATEWAY6: &str = "fd00:96::1";
/// The members' addresses, in member order.
const WEB4: &str = "10.96.0.2";
const WEB6: &str = "fd00:96::2";
const CLIENT4: &str = "10.96.0.3";
const CLIENT6: &str = "fd00:96::3";

const SUBNETS: &str = r#"subnet = ["10.96.0.0/24", "fd00:96::/64"]"#;

/// The example with `from` replaced by `to` (which must occur exactly once), written to the
/// sandbox's directory; its path.
fn edited_example(sb: &Sandbox, name: &str, from: &str, to: &str) -> String {
    let original = std::fs::read_to_string(example("dual-stack.toml")).expect("read the example");
    assert_eq!(
        original.matches(from).count(),
        1,
        "examples/dual-stack.toml must contain exactly one {from:?}"
    );
    let path = sb.write_file(name, &original.replace(from, to));
    path.to_string_lossy().into_owned()
}

/// The example with an IPv6 subnet only: IPv6 NAT and publishing without any IPv4 next to it.
fn ipv6_only(sb: &Sandbox) -> String {
    edited_example(sb, "ipv6-only.toml", SUBNETS, r#"subnet = "fd00:96::/64""#)
}

/// Waits until no address in the sandbox's namespace or any named one is tentative (IPv6
/// duplicate address detection of the kernel's link-local addresses is over).
fn wait_for_dad(sb: &Sandbox) {
    sb.wait_until(
        Duration::from_secs(10),
        "no IPv6 address is tentative",
        |s| {
            let mut places: Vec<Option<String>> = vec![None];
            places.extend(s.netns_list().into_iter().map(Some));
            places.iter().all(|ns| {
                s.addrs(ns.as_deref())
                    .iter()
                    .flat_map(|l| l["addr_info"].as_array().cloned().unwrap_or_default())
                    .all(|a| a.get("tentative").is_none())
            })
        },
    );
}

/// `plumb up FILE`, then [`wait_for_dad`].
fn up(sb: &Sandbox, file: &str) {
    sb.plumb_ok(&["up", file]);
    wait_for_dad(sb);
}

/// A sysctl of the sandbox's own namespace (plumb's host), as `/proc/sys` has it.
fn host_sysctl(sb: &Sandbox, key: &str) -> String {
    let path = format!("/proc/sys/{}", key.replace('.', "/"));
    sb.run_ok(&["cat", &path]).trim().to_string()
}

const FORWARD4: &str = "net.ipv4.ip_forward";
const FORWARD6: &str = "net.ipv6.conf.all.forwarding";

/// `nft -j list ruleset` of the sandbox's own namespace, parsed.
fn ruleset(sb: &Sandbox) -> Value {
    let stdout = sb.run_ok(&["nft", "-j", "list", "ruleset"]);
    serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("nft -j list ruleset printed invalid JSON ({e}):\n{stdout}"))
}

fn objects(ruleset: &Value) -> Vec<Value> {
    ruleset["nftables"].as_array().cloned().unwrap_or_default()
}

/// The listing without table `inet NAME` and everything in it.
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

/// The rules of `chain` in plumb's table, in order, each as (comment, expressions).
fn rules(ruleset: &Value, chain: &str) -> Vec<(String, Vec<Value>)> {
    objects(ruleset)
        .iter()
        .filter_map(|o| o.get("rule"))
        .filter(|r| r["family"] == "inet" && r["table"] == TABLE && r["chain"] == chain)
        .map(|r| {
            (
                r["comment"].as_str().unwrap_or("").to_string(),
                r["expr"].as_array().cloned().unwrap_or_default(),
            )
        })
        .collect()
}

/// The address family a rule matches its source on (`ip` or `ip6`), from its payload match.
fn saddr_family(expr: &[Value]) -> Option<String> {
    expr.iter().find_map(|e| {
        let left = &e["match"]["left"]["payload"];
        (left["field"] == "saddr").then(|| left["protocol"].as_str().unwrap_or("?").to_string())
    })
}

/// The `dnat` statement of a rule: (family, address, port).
fn dnat(expr: &[Value]) -> Option<(String, String, u64)> {
    expr.iter().find_map(|e| {
        let d = e.get("dnat")?;
        Some((
            d["family"].as_str().unwrap_or("?").to_string(),
            d["addr"].as_str().unwrap_or("?").to_string(),
            d["port"].as_u64().unwrap_or(0),
        ))
    })
}

/// The global addresses of `dev` in `ns` of one family (`inet` or `inet6`), as `ADDR/LEN`,
/// sorted: the kernel's own link-local addresses left out.
fn global_addrs(sb: &Sandbox, ns: Option<&str>, dev: &str, family: &str) -> Vec<String> {
    let mut out: Vec<String> = sb
        .addrs(ns)
        .iter()
        .filter(|l| l["ifname"] == dev)
        .flat_map(|l| l["addr_info"].as_array().cloned().unwrap_or_default())
        .filter(|a| a["family"] == family && a["scope"] == "global")
        .map(|a| format!("{}/{}", a["local"].as_str().unwrap_or("?"), a["prefixlen"]))
        .collect();
    out.sort();
    out
}

/// The gateways of the default routes of one family (`-4` or `-6`) in `ns`, each with its
/// device.
fn default_routes(sb: &Sandbox, ns: &str, family: &str) -> Vec<(String, String)> {
    let routes = sb.ip_json_in(Some(ns), &[family, "route", "show"]);
    routes
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter(|r| r["dst"] == "default")
        .map(|r| {
            (
                r["gateway"].as_str().unwrap_or("").to_string(),
                r["dev"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

/// Sends one message from `from` to `to`:`port` over `proto` and asserts that its echo comes
/// back and that the server saw it from `peer`, and from no one else.
fn echo_from(
    sb: &Sandbox,
    server_ns: &str,
    from: &str,
    to: &str,
    port: u16,
    proto: &str,
    peer: &str,
) {
    let bind = if to.contains(':') { "::" } else { "0.0.0.0" };
    let server = serve_on(sb, Some(server_ns), bind, proto, port, 1, "4.5");
    let msg = format!("{proto}-{from}-to-{to}");
    let reply = send(sb, Some(from), proto, to, port, &msg, "3");
    let seen = server.finish();
    assert!(
        reply
            .as_deref()
            .is_ok_and(|r| r.starts_with(&format!("reply echo:{msg} "))),
        "{from} -> [{to}]:{port}/{proto} got no echo: {reply:?}\n{server_ns} saw: {seen:?}"
    );
    assert_eq!(
        Server::peers(&seen),
        [peer],
        "{server_ns}'s server should see {peer} as its only peer for {from} -> [{to}]:{port}/{proto}: \
         {seen:?}"
    );
}

#[test]
fn ipv6_nat_member_reaches_upstream_with_the_hosts_ipv6_address() {
    let sb = sandbox();
    assert_eq!(
        host_sysctl(&sb, FORWARD6),
        "0",
        "a fresh sandbox forwards no IPv6"
    );
    assert_eq!(
        host_sysctl(&sb, FORWARD4),
        "0",
        "a fresh sandbox forwards no IPv4"
    );
    let file = ipv6_only(&sb);
    up(&sb, &file);

    // The internet has no way back to the private subnet but through NAT.
    let routes = sb.ip_json_in(Some("upstream"), &["-6", "route", "show"]);
    let routes = routes.as_array().cloned().unwrap_or_default();
    assert!(
        routes
            .iter()
            .all(|r| r["dst"] != "default" && !r["dst"].as_str().unwrap_or("").starts_with("fd00:")),
        "upstream must know only its connected IPv6 subnets: {routes:#?}"
    );

    echo_from(&sb, "upstream", "client", UPSTREAM6, 7000, "tcp", HOST6);
    echo_from(&sb, "upstream", "web", UPSTREAM6, 7001, "udp", HOST6);
    sb.ping_ok(Some("client"), UPSTREAM6);
    // Inside the subnet nothing is rewritten: web sees the client's own address.
    echo_from(&sb, "web", "client", WEB6, 7002, "tcp", CLIENT6);

    // IPv6 forwarding is on in the host, IPv4 forwarding is not needed and stays off.
    assert_eq!(host_sysctl(&sb, FORWARD6), "1", "nat on an IPv6 subnet");
    assert_eq!(
        host_sysctl(&sb, FORWARD4),
        "0",
        "an IPv6-only lab turned IPv4 forwarding on"
    );

    // The table masquerades the IPv6 subnet, in IPv6 only.
    let nat = rules(&ruleset(&sb), "postrouting");
    let masquerades: Vec<(&str, Option<String>)> = nat
        .iter()
        .map(|(c, e)| (c.as_str(), saddr_family(e)))
        .collect();
    assert_eq!(
        masquerades,
        [
            (
                "masquerade from fd00:96::/64 unless out dual0",
                Some("ip6".to_string())
            ),
            (
                "hairpin-masquerade from fd00:96::/64 out dual0",
                Some("ip6".to_string())
            ),
        ],
        "the postrouting chain of table inet {TABLE}"
    );
}

/// Sends one message per path to the published `host_port` of the dual-stack lab and asserts
/// that each arrives at `web:web_port` from the peer it should (the server's own view) and
/// that its echo comes back, in both families.
fn publish_reaches_web(proto: &str, host_port: u16, web_port: u16) {
    let sb = sandbox();
    up(&sb, &example("dual-stack.toml"));
    // (from, to, the peers web may see): the internet keeps its own address (the port is
    // published, not proxied); the host's own connections come from one of its addresses; a
    // member's (hairpin) are masqueraded to the gateway, or web's reply would skip the host.
    let host6: &[&str] = &[HOST6, GATEWAY6];
    let paths: [(Option<&str>, &str, &[&str]); 7] = [
        (Some("upstream"), HOST6, &[UPSTREAM6]),
        (None, HOST6, host6),
        (None, GATEWAY6, host6),
        (Some("client"), GATEWAY6, &[GATEWAY6]),
        (Some("client"), HOST6, &[GATEWAY6]),
        // The IPv4 side of the same entry.
        (Some("upstream"), HOST4, &[UPSTREAM4]),
        (Some("client"), HOST4, &[GATEWAY4]),
    ];
    let want6 = paths.iter().filter(|p| p.1.contains(':')).count();
    let servers = [
        serve_on(&sb, Some("web"), "::", proto, web_port, want6, "6"),
        serve_on(
            &sb,
            Some("web"),
            "0.0.0.0",
            proto,
            web_port,
            paths.len() - want6,
            "6",
        ),
    ];
    let mut failures = Vec::new();
    let mut sent = Vec::new();
    for (from, to, peers) in paths {
        let who = from.unwrap_or("host");
        let msg = format!("{proto}-{who}-to-{to}");
        match send(&sb, from, proto, to, host_port, &msg, "3") {
            Ok(r) if r.starts_with(&format!("reply echo:{msg} ")) => {}
            other => failures.push(format!(
                "{who} -> [{to}]:{host_port}/{proto}: no echo: {other:?}"
            )),
        }
        sent.push((msg, peers));
    }
    let seen: Vec<String> = servers.into_iter().flat_map(Server::finish).collect();
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
        "published {host_port}/{proto} -> web:{web_port}:\n{}\nweb's servers saw: {seen:#?}",
        failures.join("\n")
    );
}

#[test]
fn ipv6_publish_tcp_8080_reaches_web_80_from_upstream_host_and_members_in_both_families() {
    publish_reaches_web("tcp", 8080, 80);
}

#[test]
fn ipv6_publish_udp_5353_reaches_web_53_from_upstream_host_and_members_in_both_families() {
    publish_reaches_web("udp", 5353, 53);
}

#[test]
fn dual_stack_members_have_an_address_and_a_default_route_per_family_and_reach_upstream_in_both() {
    let sb = sandbox();
    up(&sb, &example("dual-stack.toml"));

    assert_eq!(
        global_addrs(&sb, None, BRIDGE, "inet"),
        [format!("{GATEWAY4}/24")]
    );
    assert_eq!(
        global_addrs(&sb, None, BRIDGE, "inet6"),
        [format!("{GATEWAY6}/64")]
    );
    for (member, v4, v6) in [("web", WEB4, WEB6), ("client", CLIENT4, CLIENT6)] {
        assert_eq!(
            global_addrs(&sb, Some(member), "eth0", "inet"),
            [format!("{v4}/24")],
            "{member}'s IPv4 addresses"
        );
        assert_eq!(
            global_addrs(&sb, Some(member), "eth0", "inet6"),
            [format!("{v6}/64")],
            "{member}'s IPv6 addresses"
        );
        assert_eq!(
            default_routes(&sb, member, "-4"),
            [(GATEWAY4.to_string(), "eth0".to_string())],
            "{member}'s IPv4 default route"
        );
        assert_eq!(
            default_routes(&sb, member, "-6"),
            [(GATEWAY6.to_string(), "eth0".to_string())],
            "{member}'s IPv6 default route"
        );
    }

    // Both families reach the internet, each with the host's address of its family.
    echo_from(&sb, "upstream", "client", UPSTREAM4, 7000, "tcp", HOST4);
    echo_from(&sb, "upstream", "client", UPSTREAM6, 7000, "tcp", HOST6);
    echo_from(&sb, "upstream", "web", UPSTREAM4, 7001, "udp", HOST4);
    echo_from(&sb, "upstream", "web", UPSTREAM6, 7001, "udp", HOST6);
    assert_eq!(host_sysctl(&sb, FORWARD4), "1");
    assert_eq!(host_sysctl(&sb, FORWARD6), "1");
}

#[test]
fn dual_stack_table_has_each_rule_once_per_family_and_down_removes_only_it() {
    let sb = sandbox();
    let before = ruleset(&sb);
    let file = example("dual-stack.toml");
    sb.plumb_ok(&["up", &file]);
    let after = ruleset(&sb);

    let nat: Vec<(String, Option<String>)> = rules(&after, "postrouting")
        .into_iter()
        .map(|(c, e)| (c, saddr_family(&e)))
        .collect();
    let expected_nat: Vec<(String, Option<String>)> = [
        ("masquerade from 10.96.0.0/24 unless out dual0", "ip"),
        ("masquerade from fd00:96::/64 unless out dual0", "ip6"),
        ("hairpin-masquerade from 10.96.0.0/24 out dual0", "ip"),
        ("hairpin-masquerade from fd00:96::/64 out dual0", "ip6"),
    ]
    .into_iter()
    .map(|(c, f)| (c.to_string(), Some(f.to_string())))
    .collect();
    assert_eq!(
        nat, expected_nat,
        "the postrouting chain of table inet {TABLE}"
    );

    let expected_dnat: Vec<(String, String, u64)> = [
        ("ip", WEB4, 80),
        ("ip6", WEB6, 80),
        ("ip", WEB4, 53),
        ("ip6", WEB6, 53),
    ]
    .into_iter()
    .map(|(f, a, p)| (f.to_string(), a.to_string(), p))
    .collect();
    for chain in ["prerouting", "output"] {
        let dnats: Vec<(String, String, u64)> = rules(&after, chain)
            .iter()
            .filter_map(|(_, e)| dnat(e))
            .collect();
        assert_eq!(
            dnats, expected_dnat,
            "the {chain} chain of table inet {TABLE}"
        );
    }
    let rest = without_table(&after, TABLE);
    assert!(
        rest == before,
        "up changed the host's ruleset outside table inet {TABLE}\n{}",
        line_diff(&before, &rest)
    );

    let out = sb.plumb(&["down", LAB]);
    assert_exit(&out, 0, "plumb down dual-stack");
    let gone = ruleset(&sb);
    assert!(
        gone == before,
        "down left nftables objects behind\n{}",
        line_diff(&before, &gone)
    );
}

#[test]
fn dual_stack_up_twice_second_changes_nothing() {
    let sb = sandbox();
    let file = example("dual-stack.toml");
    // Once duplicate address detection is over, nothing changes by itself any more.
    up(&sb, &file);
    let before = sb.settled_snapshot();
    // Handles included: a table that was deleted and made again would get new ones.
    let first = sb.run_ok(&["nft", "-j", "-a", "list", "ruleset"]);
    assert_up_is_up_to_date(&sb, &file, LAB);
    let second = sb.run_ok(&["nft", "-j", "-a", "list", "ruleset"]);
    let after = sb.settled_snapshot();
    assert!(
        before == after,
        "the second up changed the kernel state (ifindexes included)\n{}",
        line_diff(&before, &after)
    );
    assert_eq!(first, second, "the second up changed the ruleset");
}

#[test]
fn ipv6_failed_up_puts_ipv6_forwarding_back() {
    let sb = sandbox();
    let file = ipv6_only(&sb);
    let empty = sb.snapshot();
    let steps = dry_run_steps(&sb, &file);
    let sysctl = steps
        .iter()
        .position(|s| s.contains(FORWARD6))
        .unwrap_or_else(|| panic!("the plan does not turn {FORWARD6} on: {steps:#?}"));
    assert!(
        sysctl + 1 < steps.len(),
        "the sysctl should not be the last step: {steps:#?}"
    );
    // Fail the last step, after the sysctl was written.
    let mut cmd = sb.plumb_command(&["up", &file]);
    cmd.env("PLUMB_FAULT", format!("step={}", steps.len()));
    let out = sb.output(cmd);
    assert_exit(&out, 2, "up with its last step failing");
    assert_eq!(
        host_sysctl(&sb, FORWARD6),
        "0",
        "a failed up left IPv6 forwarding on\n{}",
        describe(&out)
    );
    sb.assert_state_eventually(&empty, SETTLE, "after the failed up");
}

#[test]
fn dual_stack_show_reads_back_the_rules_of_both_families() {
    let sb = sandbox();
    sb.plumb_ok(&["up", &example("dual-stack.toml")]);
    let out = sb.plumb(&["show", LAB, "--json"]);
    assert_exit(&out, 0, "plumb show dual-stack --json");
    let doc = stdout_json(&out);
    let host = doc["nodes"]
        .as_array()
        .and_then(|n| n.iter().find(|n| n["node"] == "host"))
        .unwrap_or_else(|| panic!("no host in show --json: {doc:#}"))
        .clone();
    let published: Vec<(String, u64, String, u64)> = host["rules"]["published"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|p| {
            (
                p["proto"].as_str().unwrap_or("?").to_string(),
                p["host_port"].as_u64().unwrap_or(0),
                p["to"].as_str().unwrap_or("?").to_string(),
                p["port"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    let expected: Vec<(String, u64, String, u64)> = [
        ("tcp", 8080, WEB4, 80),
        ("tcp", 8080, WEB6, 80),
        ("udp", 5353, WEB4, 53),
        ("udp", 5353, WEB6, 53),
    ]
    .into_iter()
    .map(|(p, h, a, m)| (p.to_string(), h, a.to_string(), m))
    .collect();
    assert_eq!(published, expected, "{host:#}");
    let nat: Vec<(String, String)> = host["rules"]["nat"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|r| {
            (
                r["rule"].as_str().unwrap_or("?").to_string(),
                r["subnet"].as_str().unwrap_or("?").to_string(),
            )
        })
        .collect();
    let expected: Vec<(String, String)> = [
        ("masquerade", "10.96.0.0/24"),
        ("masquerade", "fd00:96::/64"),
        ("hairpin_masquerade", "10.96.0.0/24"),
        ("hairpin_masquerade", "fd00:96::/64"),
    ]
    .into_iter()
    .map(|(r, s)| (r.to_string(), s.to_string()))
    .collect();
    assert_eq!(nat, expected, "{host:#}");
}

#[test]
fn dual_stack_check_probes_both_families_through_nat() {
    let sb = sandbox();
    let mut text = std::fs::read_to_string(example("dual-stack.toml")).expect("read the example");
    for (from, to, proto, result) in [
        ("client", UPSTREAM6, "icmp", "reach"),
        ("client", UPSTREAM4, "icmp", "reach"),
        ("client", WEB6, "tcp/80", "reach"),
        ("web", CLIENT6, "udp/53", "reach"),
        // The internet has no route to the private subnets.
        ("upstream", WEB6, "icmp", "blocked"),
        ("upstream", WEB4, "icmp", "blocked"),
    ] {
        text.push_str(&format!(
            "\n[[expect]]\nfrom = \"{from}\"\nto = \"{to}\"\nproto = \"{proto}\"\nresult = \"{result}\"\n"
        ));
    }
    let file = sb.write_file("dual-stack-check.toml", &text);
    let file = file.to_str().expect("UTF-8 path");
    up(&sb, file);
    let out = sb.plumb(&["check", file, "--json"]);
    assert_exit(&out, 0, "plumb check with expectations in both families");
    let (rows, details) = check_results(&stdout_json(&out), LAB);
    assert_eq!(rows.len(), 6, "{}", describe(&out));
    let addresses: Vec<&str> = rows.iter().map(|r| r.2.as_str()).collect();
    assert_eq!(
        addresses,
        [UPSTREAM6, UPSTREAM4, WEB6, CLIENT6, WEB6, WEB4],
        "each probe goes to the address it names"
    );
    assert!(rows.iter().all(|r| r.6), "{rows:#?}\n{details:#?}");
}
