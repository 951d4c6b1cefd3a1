//! `plumb check` and `plumb ping` on the seed's lab, in a sandbox: real probes with real
//! outcomes, cross-checked with iputils `ping` and `ss` where an independent view exists.
//!
//! The lab is brought up from `examples/seed.toml`; the expectations go in a second file, the
//! same lab plus `[[expect]]` entries, which is what `plumb check` reads.

mod common;

use std::time::{Duration, Instant};

use common::*;
use plumb_testkit::{describe, Sandbox};

/// One `[[expect]]` entry.
fn expect(from: &str, to: &str, proto: &str, result: &str) -> String {
    format!("\n[[expect]]\nfrom = \"{from}\"\nto = \"{to}\"\nproto = \"{proto}\"\nresult = \"{result}\"\n")
}

/// The seed's file plus `expects`, written into the sandbox's directory.
fn seed_with(sb: &Sandbox, name: &str, expects: &[String]) -> String {
    let mut text = std::fs::read_to_string(example("seed.toml")).expect("read seed.toml");
    for e in expects {
        text.push_str(e);
    }
    sb.write_file(name, &text).to_string_lossy().into_owned()
}

/// A sandbox with the seed's lab up.
fn seed_up() -> Sandbox {
    let sb = sandbox();
    sb.plumb_ok(&["up", &example("seed.toml")]);
    sb
}

/// The four probes of the brief, all as the seed's lab really behaves.
fn seed_expectations() -> Vec<String> {
    vec![
        expect("ns1", "host", "icmp", "reach"),
        expect("ns2", "host", "icmp", "blocked"),
        expect("ns1", "ns2", "tcp/8080", "reach"),
        expect("ns1", "ns2", "udp/5353", "reach"),
    ]
}

/// The stdout line of the table for `from`, `to` and `proto`; panics if there is none.
fn row<'a>(stdout: &'a str, from: &str, to: &str, proto: &str) -> &'a str {
    stdout
        .lines()
        .find(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            w.len() > 3 && w[0] == from && w[1] == to && w[3] == proto
        })
        .unwrap_or_else(|| panic!("no row {from} {to} {proto} in:\n{stdout}"))
}

#[test]
fn check_seed_expectations_hold_exit_zero() {
    let sb = seed_up();
    let file = seed_with(&sb, "seed-check.toml", &seed_expectations());
    let out = sb.plumb(&["check", &file]);
    assert_exit(&out, 0, "plumb check on the seed's true expectations");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let header: Vec<&str> = stdout
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    for col in ["FROM", "TO", "PROTO", "EXPECTED", "OBSERVED", "OK"] {
        assert!(header.contains(&col), "no {col} column:\n{stdout}");
    }
    let icmp = row(&stdout, "ns1", "host", "icmp");
    assert!(
        icmp.contains("10.66.77.25") && icmp.contains("reply"),
        "{icmp}"
    );
    let blocked = row(&stdout, "ns2", "host", "icmp");
    assert!(blocked.contains("no route"), "{blocked}");
    let tcp = row(&stdout, "ns1", "ns2", "tcp/8080");
    assert!(
        tcp.contains("10.66.78.2") && tcp.contains("connected"),
        "{tcp}"
    );
    let udp = row(&stdout, "ns1", "ns2", "udp/5353");
    assert!(udp.contains("echoed"), "{udp}");
    // The same paths seen by iputils ping: ns1 reaches the host, ns2 has no route to it.
    sb.ping_ok(Some("ns1"), "10.66.77.25");
    assert!(
        !sb.ping(Some("ns2"), "10.66.77.25").status.success(),
        "iputils ping from ns2 reached the host: the seed's lab is not what the test assumes"
    );
}

#[test]
fn check_json_is_version_1_with_every_result() {
    let sb = seed_up();
    let file = seed_with(&sb, "seed-check.toml", &seed_expectations());
    let out = sb.plumb(&["check", &file, "--json"]);
    assert_exit(&out, 0, "plumb check --json");
    let doc = stdout_json(&out);
    assert_eq!(doc["version"], 1, "{doc}");
    assert_eq!(doc["lab"], "seed", "{doc}");
    let results = doc["results"].as_array().expect("results is an array");
    assert_eq!(results.len(), 4, "{doc}");
    let want = [
        ("ns1", "host", "10.66.77.25", "icmp", "reach"),
        ("ns2", "host", "10.66.77.25", "icmp", "blocked"),
        ("ns1", "ns2", "10.66.78.2", "tcp/8080", "reach"),
        ("ns1", "ns2", "10.66.78.2", "udp/5353", "reach"),
    ];
    for (r, (from, to, addr, proto, result)) in results.iter().zip(want) {
        assert_eq!(r["from"], from, "{r}");
        assert_eq!(r["to"], to, "{r}");
        assert_eq!(r["address"], addr, "{r}");
        assert_eq!(r["proto"], proto, "{r}");
        assert_eq!(r["expected"], result, "{r}");
        assert_eq!(r["observed"], result, "{r}");
        assert_eq!(r["ok"], true, "{r}");
        assert!(r["detail"].is_string(), "{r}");
    }
    assert_eq!(doc["summary"]["mismatches"], 0, "{doc}");
}

#[test]
fn check_wrong_expectation_exits_one_and_names_the_mismatch() {
    let sb = seed_up();
    let mut expects = seed_expectations();
    // ns2 has no route to the host: expecting a reply is wrong.
    expects.push(expect("ns2", "host", "icmp", "reach"));
    let file = seed_with(&sb, "seed-wrong.toml", &expects);
    let out = sb.plumb(&["check", &file]);
    assert_exit(&out, 1, "plumb check with one wrong expectation");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let named: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("ns2") && l.contains("host") && l.contains("icmp"))
        .collect();
    assert_eq!(
        named.len(),
        1,
        "stderr should name the one mismatched probe\n{}",
        describe(&out)
    );
    assert!(named[0].contains("mismatch"), "{}", named[0]);
    // Only that one row says NO.
    let stdout = String::from_utf8_lossy(&out.stdout);
    let no_rows: Vec<&str> = stdout
        .lines()
        .filter(|l| l.split_whitespace().any(|w| w == "NO"))
        .collect();
    assert_eq!(no_rows.len(), 1, "{stdout}");
    assert!(no_rows[0].starts_with("ns2"), "{stdout}");
}

#[test]
fn check_tcp_and_udp_without_route_are_blocked_within_bounds() {
    let sb = seed_up();
    let file = seed_with(
        &sb,
        "seed-blocked.toml",
        &[
            expect("ns2", "host", "tcp/80", "blocked"),
            expect("ns2", "host", "udp/53", "blocked"),
            // On the link, but nobody has the address: no answer, until the deadline.
            expect("ns1", "10.66.78.99", "udp/53", "blocked"),
            expect("ns1", "10.66.78.99", "icmp", "blocked"),
        ],
    );
    let started = Instant::now();
    let out = sb.plumb(&["check", &file]);
    let took = started.elapsed();
    assert_exit(&out, 0, "plumb check on paths without a route or a host");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        row(&stdout, "ns2", "host", "tcp/80").contains("no route"),
        "{stdout}"
    );
    assert!(
        row(&stdout, "ns2", "host", "udp/53").contains("no route"),
        "{stdout}"
    );
    assert!(
        row(&stdout, "ns1", "10.66.78.99", "icmp").contains("timeout"),
        "{stdout}"
    );
    // Each probe ends within 2 s, and they run side by side.
    assert!(
        took < Duration::from_secs(6),
        "plumb check took {took:?} for four bounded probes"
    );
}

#[test]
fn check_leaves_no_responder_behind() {
    let sb = seed_up();
    let file = seed_with(&sb, "seed-check.toml", &seed_expectations());
    sb.plumb_ok(&["check", &file]);
    // Independent view: no TCP listener or UDP socket is left in ns2 once check has exited.
    let sockets = sb.run_ok(&[
        "ip", "netns", "exec", "ns2", "ss", "-H", "-a", "-t", "-u", "-n",
    ]);
    assert!(
        !sockets.contains(":8080") && !sockets.contains(":5353"),
        "sockets left in ns2 after plumb check:\n{sockets}"
    );
}

/// Holds `proto`/`port` in the calling namespace, says `ready` on stderr, and exits 0 once one
/// connection (tcp) or one datagram (udp) arrived, 3 if none came within 8 s. Never answers.
const HOLDER_PY: &str = r#"
import socket, sys
proto, port = sys.argv[1], int(sys.argv[2])
kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
s = socket.socket(socket.AF_INET, kind)
s.bind(("0.0.0.0", port))
if proto == "tcp":
    s.listen(4)
print("ready", file=sys.stderr, flush=True)
s.settimeout(8)
try:
    if proto == "tcp":
        s.accept()
    else:
        s.recvfrom(4096)
except socket.timeout:
    sys.exit(3)
"#;

/// Starts [`HOLDER_PY`] in `ns` and returns once it holds the port. Needs `python3`.
fn hold_port(sb: &Sandbox, ns: &str, proto: &str, port: &str) -> std::process::Child {
    let cmd = sb.command(&[
        "ip", "netns", "exec", ns, "timeout", "10", "python3", "-c", HOLDER_PY, proto, port,
    ]);
    sb.spawn_until_stderr(cmd, "ready", Duration::from_secs(10))
}

#[test]
fn check_port_already_bound_probes_the_existing_socket() {
    let sb = seed_up();
    let tcp = hold_port(&sb, "ns2", "tcp", "8080");
    let udp = hold_port(&sb, "ns2", "udp", "5353");
    // The TCP holder accepts (a listening socket completes the handshake); the UDP holder
    // reads and never answers, so that probe finds no echo: plumb probed what was there
    // instead of failing to bind its own responder.
    let file = seed_with(
        &sb,
        "seed-taken.toml",
        &[
            expect("ns1", "ns2", "tcp/8080", "reach"),
            expect("ns1", "ns2", "udp/5353", "blocked"),
        ],
    );
    let out = sb.plumb(&["check", &file]);
    assert_exit(&out, 0, "plumb check with both ports already bound in ns2");
    for (mut child, what) in [(tcp, "tcp/8080"), (udp, "udp/5353")] {
        let status = child.wait().expect("wait for the holder");
        assert!(
            status.success(),
            "the {what} holder in ns2 never saw plumb's probe ({status})\n{}",
            describe(&out)
        );
    }
}

#[test]
fn check_lab_name_without_file_exits_two_and_asks_for_the_file() {
    let sb = seed_up();
    let out = sb.plumb(&["check", "seed"]);
    assert_exit(&out, 2, "plumb check seed");
    let all = text(&out);
    assert!(all.contains("file") && all.contains("expect"), "{all}");
}

#[test]
fn check_lab_not_up_exits_two() {
    let sb = sandbox();
    let file = seed_with(&sb, "seed-check.toml", &seed_expectations());
    let out = sb.plumb(&["check", &file]);
    assert_exit(&out, 2, "plumb check with the lab down");
    assert!(text(&out).contains("is the lab up"), "{}", describe(&out));
}

#[test]
fn check_target_outside_the_lab_is_refused_and_nothing_is_probed() {
    let sb = seed_up();
    let file = seed_with(
        &sb,
        "seed-outside.toml",
        &[
            expect("ns1", "ns2", "icmp", "reach"),
            expect("ns1", "192.0.2.1", "icmp", "blocked"),
        ],
    );
    let out = sb.plumb(&["check", &file]);
    assert_exit(&out, 2, "plumb check with a target outside the lab");
    let all = text(&out);
    assert!(
        all.contains("192.0.2.1") && all.contains("not an address of lab seed"),
        "{}",
        describe(&out)
    );
    // Refused before the first probe: no table at all.
    assert!(out.stdout.is_empty(), "{}", describe(&out));

    let out = sb.plumb(&["ping", "seed", "ns1", "192.0.2.1"]);
    assert_exit(&out, 2, "plumb ping to an address outside the lab");
    assert!(
        text(&out).contains("not an address of lab seed"),
        "{}",
        describe(&out)
    );
    let out = sb.plumb(&["ping", "seed", "ns1", "10.66.78.255"]);
    assert_exit(&out, 2, "plumb ping to a subnet's broadcast address");
}

#[test]
fn ping_seed_ns1_ns2_exits_zero() {
    let sb = seed_up();
    let out = sb.plumb(&["ping", "seed", "ns1", "ns2"]);
    assert_exit(&out, 0, "plumb ping seed ns1 ns2");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("10.66.78.2") && stdout.contains("reply"),
        "{stdout}"
    );
    // The same lab named by its file.
    let out = sb.plumb(&["ping", &example("seed.toml"), "host", "ns1"]);
    assert_exit(&out, 0, "plumb ping seed.toml host ns1");
}

#[test]
fn ping_seed_ns2_host_exits_one_without_reply() {
    let sb = seed_up();
    let out = sb.plumb(&["ping", "seed", "ns2", "host"]);
    assert_exit(&out, 1, "plumb ping seed ns2 host");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("no route"),
        "{}",
        describe(&out)
    );
    let out = sb.plumb(&["ping", "seed", "ns1", "nosuchnode"]);
    assert_exit(&out, 2, "plumb ping to a node the lab does not have");
}
