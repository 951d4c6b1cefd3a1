//! Isolation (`examples/isolation.toml`): two networks that never reach each other, an isolated
//! network, and a node firewall. `plumb check` must confirm every `[[expect]]` and fail on a
//! flipped one; the blocked paths are also verified independently with ping and real sockets,
//! where the server's own view says whether anything arrived.
//!
//! Needs `nft` (nftables) and `python3` besides what the test kit needs.

mod common;

use std::thread;

use common::sockets::*;
use common::*;
use plumb_testkit::{describe, line_diff, Sandbox};
use serde_json::Value;

/// plumb's table for the lab `isolation`.
const TABLE: &str = "plumb-isolation";

/// The expectation that the flipped copy turns from `blocked` into `reach`: tcp/22 from the
/// host to b over mgmt0, which b's firewall drops.
const FLIPPED_FROM: &str =
    "from = \"host\"\nto = \"10.93.0.2\"\nproto = \"tcp/22\"\nresult = \"blocked\"";
const FLIPPED_TO: &str =
    "from = \"host\"\nto = \"10.93.0.2\"\nproto = \"tcp/22\"\nresult = \"reach\"";

/// Two pings from `ns` to `addr`, one second each; `Some(complaint)` if a reply came.
fn ping_gets_reply(sb: &Sandbox, ns: &str, addr: &str) -> Option<String> {
    let out = sb.run(&[
        "ip", "netns", "exec", ns, "ping", "-n", "-c", "2", "-i", "0.2", "-W", "1", addr,
    ]);
    out.status.success().then(|| {
        format!(
            "{ns} -> {addr} should be blocked, but ping got a reply\n{}",
            describe(&out)
        )
    })
}

/// `nft -j list ruleset` inside `ns`, parsed.
fn ruleset(sb: &Sandbox, ns: Option<&str>) -> Value {
    let mut argv = Vec::new();
    if let Some(ns) = ns {
        argv.extend(["ip", "netns", "exec", ns]);
    }
    argv.extend(["nft", "-j", "list", "ruleset"]);
    let stdout = sb.run_ok(&argv);
    serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("nft -j list ruleset printed invalid JSON ({e}):\n{stdout}"))
}

/// The `(family, name)` of every table in a `nft -j` listing.
fn tables(ruleset: &Value) -> Vec<(String, String)> {
    ruleset["nftables"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|o| o.get("table"))
        .map(|t| {
            (
                t["family"].as_str().unwrap_or("?").to_string(),
                t["name"].as_str().unwrap_or("?").to_string(),
            )
        })
        .collect()
}

/// The example with [`FLIPPED_FROM`] turned into [`FLIPPED_TO`], written to the sandbox's
/// directory; its path.
fn flipped_copy(sb: &Sandbox) -> String {
    let original = std::fs::read_to_string(example("isolation.toml")).expect("read the example");
    assert_eq!(
        original.matches(FLIPPED_FROM).count(),
        1,
        "examples/isolation.toml must hold exactly one expectation\n{FLIPPED_FROM}"
    );
    let flipped = original.replace(FLIPPED_FROM, FLIPPED_TO);
    let path = sb.write_file("isolation-flipped.toml", &flipped);
    path.to_string_lossy().into_owned()
}

/// The `[[expect]]` entries of a topology file, in order, as (from, to, proto, result): read
/// from the text itself (`key = "value"` lines after each `[[expect]]` header), so that the
/// comparison does not depend on plumb's parser.
fn file_expectations(text: &str) -> Vec<[String; 4]> {
    let mut out = Vec::new();
    let mut current: Option<[Option<String>; 4]> = None;
    let mut flush = |current: &mut Option<[Option<String>; 4]>| {
        if let Some(e) = current.take() {
            out.push(e.map(|v| v.expect("an [[expect]] without from, to, proto or result")));
        }
    };
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            flush(&mut current);
            if line.starts_with("[[expect]]") {
                current = Some([None, None, None, None]);
            }
            continue;
        }
        let (Some(e), Some((key, value))) = (current.as_mut(), line.split_once('=')) else {
            continue;
        };
        let slot = match key.trim() {
            "from" => 0,
            "to" => 1,
            "proto" => 2,
            "result" => 3,
            other => panic!("unexpected key {other:?} in an [[expect]]"),
        };
        let value = value
            .trim()
            .strip_prefix('"')
            .and_then(|v| v.split_once('"'))
            .map(|(v, _)| v.to_string())
            .unwrap_or_else(|| panic!("not a quoted string: {line:?}"));
        e[slot] = Some(value);
    }
    flush(&mut current);
    out
}

/// Runs `plumb check FILE --json`, asserts exit `code`, and returns its results (checked for
/// version, lab and summary) and the output.
fn check_json(sb: &Sandbox, file: &str, code: i32) -> (Vec<CheckRow>, std::process::Output) {
    let out = sb.plumb(&["check", file, "--json"]);
    assert_exit(&out, code, &format!("plumb check {file} --json"));
    let (rows, _) = check_results(&stdout_json(&out), "isolation");
    (rows, out)
}

/// Asserts that `rows` are the results of `expects`, in order: same from, to, proto and
/// expectation, the address a literal target names, and `observed`/`ok` as given by
/// `observed(i, expected)`.
fn assert_results_match(
    rows: &[CheckRow],
    expects: &[[String; 4]],
    observed: impl Fn(usize, &str) -> String,
) {
    assert_eq!(
        rows.len(),
        expects.len(),
        "one result per [[expect]]: {rows:#?}"
    );
    for (i, (r, [from, to, proto, result])) in rows.iter().zip(expects).enumerate() {
        let what = format!("result {i}: {r:?}");
        assert_eq!(
            (&r.0, &r.1, &r.3, &r.4),
            (from, to, proto, result),
            "{what}"
        );
        if to.parse::<std::net::IpAddr>().is_ok() {
            assert_eq!(&r.2, to, "{what}: a literal target is probed as written");
        }
        let want = observed(i, result);
        assert_eq!(r.5, want, "{what}: observed");
        assert_eq!(r.6, want == *result, "{what}: ok");
    }
}

#[test]
fn isolation_check_every_expectation_holds() {
    let sb = sandbox();
    let file = example("isolation.toml");
    let expects = file_expectations(&std::fs::read_to_string(&file).expect("read the example"));
    assert_eq!(
        expects.len(),
        23,
        "the example's [[expect]] entries: {expects:#?}"
    );
    sb.plumb_ok(&["up", &file]);
    let (rows, out) = check_json(&sb, &file, 0);
    assert_results_match(&rows, &expects, |_, result| result.to_string());
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("plumb: mismatch"),
        "{}",
        describe(&out)
    );
}

#[test]
fn isolation_check_flipped_expectation_exits_1_and_names_the_probe() {
    let sb = sandbox();
    let file = example("isolation.toml");
    sb.plumb_ok(&["up", &file]);
    let flipped = flipped_copy(&sb);
    let expects = file_expectations(&std::fs::read_to_string(&flipped).expect("read the copy"));
    let at = expects
        .iter()
        .position(|e| e == &["host", "10.93.0.2", "tcp/22", "reach"].map(String::from))
        .expect("the flipped expectation is in the copy");
    let (rows, out) = check_json(&sb, &flipped, 1);
    // Every result as in the original file, except that the flipped one no longer holds.
    assert_results_match(&rows, &expects, |i, result| {
        if i == at {
            "blocked".to_string()
        } else {
            result.to_string()
        }
    });
    let mismatches: Vec<String> = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| l.starts_with("plumb: mismatch: "))
        .map(str::to_string)
        .collect();
    assert_eq!(mismatches.len(), 1, "{}", describe(&out));
    assert!(
        mismatches[0].starts_with(
            "plumb: mismatch: host -> 10.93.0.2 (10.93.0.2) tcp/22: expected reach, observed blocked ("
        ),
        "{}",
        describe(&out)
    );
}

#[test]
fn isolation_blocked_paths_are_blocked_on_the_wire() {
    let sb = sandbox();
    sb.plumb_ok(&["up", &example("isolation.toml")]);

    // The allowed neighbours of every blocked path answer, so "blocked" below is not merely
    // "broken".
    sb.ping_ok(Some("c"), "10.92.0.1");
    sb.ping_ok(Some("d"), "10.92.0.1");
    sb.ping_ok(Some("a"), "10.91.0.3");
    sb.ping_ok(None, "10.93.0.2");
    sb.ping_ok(Some("b"), "10.91.0.2");

    let b80 = serve(&sb, Some("b"), "tcp", 80, 1, "4.5");
    let b22 = serve(&sb, Some("b"), "tcp", 22, 1, "2.5");
    let b53 = serve(&sb, Some("b"), "udp", 53, 1, "2.5");
    let d80 = serve(&sb, Some("d"), "tcp", 80, 1, "4.5");

    // Every blocked attempt at once, each waiting about 1.5 s for an answer that must not come.
    let blocked: [(Option<&str>, &str, &str, u16, &str); 6] = [
        (None, "tcp", "10.93.0.2", 80, "host-mgmt-80"),
        (None, "tcp", "10.93.0.2", 22, "host-mgmt-22"),
        (Some("a"), "tcp", "10.91.0.3", 22, "a-b-22"),
        (Some("a"), "udp", "10.91.0.3", 53, "a-b-53"),
        (Some("c"), "tcp", "10.92.0.3", 80, "c-d-80"),
        (Some("a"), "tcp", "10.92.0.3", 80, "a-d-80"),
    ];
    let pings = [
        ("c", "10.92.0.3"), // isolated members
        ("d", "10.92.0.2"),
        ("a", "10.92.0.2"), // front -> back
        ("c", "10.91.0.2"), // back -> front
    ];
    let sb_ref = &sb;
    let results: Vec<String> = thread::scope(|s| {
        let mut handles = Vec::new();
        for (from, proto, to, port, msg) in blocked {
            handles.push(s.spawn(move || {
                let r = send(sb_ref, from, proto, to, port, msg, "1.5");
                r.ok().map(|reply| {
                    format!(
                        "{} -> {to}:{port}/{proto} should be blocked, got {reply:?}",
                        from.unwrap_or("host")
                    )
                })
            }));
        }
        for (from, to) in pings {
            handles.push(s.spawn(move || ping_gets_reply(sb_ref, from, to)));
        }
        handles
            .into_iter()
            .filter_map(|h| h.join().expect("probe thread"))
            .collect()
    });

    // The allowed paths to the same listeners.
    let host_b80 = send(&sb, None, "tcp", "10.91.0.3", 80, "host-b-80", "3");
    let host_d80 = send(&sb, None, "tcp", "10.92.0.3", 80, "host-d-80", "3");
    let (b80, b22, b53, d80) = (b80.finish(), b22.finish(), b53.finish(), d80.finish());

    assert!(results.is_empty(), "{}", results.join("\n"));
    assert!(
        host_b80.is_ok(),
        "host -> 10.91.0.3:80 (from 10.91.0.1, inside the allowed prefix) failed: {host_b80:?}\n\
         b:80 saw {b80:?}"
    );
    assert!(
        host_d80.is_ok(),
        "host -> 10.92.0.3:80 (the gateway to an isolated member) failed: {host_d80:?}\n\
         d:80 saw {d80:?}"
    );
    assert_eq!(
        Server::peers(&b80),
        ["10.91.0.1"],
        "b:80 must see only the host's front address, not 10.93.0.1: {b80:?}"
    );
    assert_eq!(
        Server::peers(&d80),
        ["10.92.0.1"],
        "d:80 must see only the gateway, not c or a: {d80:?}"
    );
    assert!(
        Server::peers(&b22).is_empty(),
        "b:22 is behind b's firewall but saw {b22:?}"
    );
    assert!(
        Server::peers(&b53).is_empty(),
        "b:53/udp is behind b's firewall but saw {b53:?}"
    );
}

#[test]
fn isolation_down_leaves_the_ruleset_as_before_up() {
    let sb = sandbox();
    let empty = sb.snapshot();
    let before = ruleset(&sb, None);
    let file = example("isolation.toml");
    sb.plumb_ok(&["up", &file]);

    // b's firewall lives in b, in plumb's table, and nowhere else in the members.
    let in_b = tables(&ruleset(&sb, Some("b")));
    assert_eq!(
        in_b,
        [("inet".to_string(), TABLE.to_string())],
        "b's tables"
    );
    for ns in ["a", "c", "d"] {
        let foreign: Vec<_> = tables(&ruleset(&sb, Some(ns)))
            .into_iter()
            .filter(|(f, n)| !(f == "inet" && n == TABLE))
            .collect();
        assert!(
            foreign.is_empty(),
            "{ns} has tables plumb should not have made: {foreign:?}"
        );
    }

    let out = sb.plumb(&["down", &file]);
    assert_exit(&out, 0, "plumb down examples/isolation.toml");
    let after = ruleset(&sb, None);
    assert!(
        after == before,
        "down left nftables objects behind in the host\n{}",
        line_diff(&before, &after)
    );
    sb.assert_state_eventually(&empty, SETTLE, "after plumb down isolation");
}

#[test]
fn isolation_ping_exits_0_on_reply_and_1_when_blocked() {
    let sb = sandbox();
    let file = example("isolation.toml");
    sb.plumb_ok(&["up", &file]);
    // By file and by lab name (then the addresses are read from the kernel). A blocked probe
    // waits for its timeout, so there are only two.
    let probes: [(&str, &str, &str, i32, &str); 4] = [
        (&file, "a", "b", 0, "front members"),
        (&file, "c", "d", 1, "isolated members"),
        (
            "isolation",
            "c",
            "10.92.0.1",
            0,
            "isolated member to its gateway",
        ),
        ("isolation", "a", "c", 1, "front -> back"),
    ];
    for (lab, from, to, code, what) in probes {
        let out = sb.plumb(&["ping", lab, from, to]);
        assert_exit(
            &out,
            code,
            &format!("plumb ping {lab} {from} {to} ({what})"),
        );
    }
}
