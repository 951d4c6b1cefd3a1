//! `plumb check` and `plumb ping` on the seed's lab, in a sandbox: real probes with real
//! outcomes, cross-checked with iputils `ping` and `ss` where an independent view exists.
//!
//! The lab is brought up from `examples/seed.toml`; the expectations go in a second file, the
//! same lab plus `[[expect]]` entries, which is what `plumb check` reads.

mod common;

use std::process::Stdio;
use std::time::Duration;

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

fn row(from: &str, to: &str, addr: &str, proto: &str, expected: &str, observed: &str) -> CheckRow {
    (
        from.into(),
        to.into(),
        addr.into(),
        proto.into(),
        expected.into(),
        observed.into(),
        expected == observed,
    )
}

/// The four rows of the seed's true expectations, in file order.
fn seed_rows() -> Vec<CheckRow> {
    vec![
        row("ns1", "host", "10.66.77.25", "icmp", "reach", "reach"),
        row("ns2", "host", "10.66.77.25", "icmp", "blocked", "blocked"),
        row("ns1", "ns2", "10.66.78.2", "tcp/8080", "reach", "reach"),
        row("ns1", "ns2", "10.66.78.2", "udp/5353", "reach", "reach"),
    ]
}

/// `plumb check`'s table parsed: the header must be FROM TO ADDRESS PROTO EXPECTED OBSERVED OK
/// DETAIL; cells are cut at the header's column starts. Returns the rows (OK `yes`/`NO` as a
/// bool), their details, and the summary line that follows the table.
fn table_results(stdout: &str) -> (Vec<CheckRow>, Vec<String>, String) {
    let mut lines = stdout.lines();
    let header = lines
        .next()
        .unwrap_or_else(|| panic!("no table:\n{stdout}"));
    let names: Vec<&str> = header.split_whitespace().collect();
    assert_eq!(
        names,
        ["FROM", "TO", "ADDRESS", "PROTO", "EXPECTED", "OBSERVED", "OK", "DETAIL"],
        "table header:\n{stdout}"
    );
    let starts: Vec<usize> = names
        .iter()
        .scan(0, |from, name| {
            let at = *from + header[*from..].find(name).expect("header word");
            *from = at + name.len();
            Some(at)
        })
        .collect();
    let (mut rows, mut details) = (Vec::new(), Vec::new());
    for line in lines.by_ref() {
        if line.starts_with("lab ") {
            return (rows, details, line.to_string());
        }
        let cell = |i: usize| -> String {
            let end = starts
                .get(i + 1)
                .copied()
                .unwrap_or(line.len())
                .min(line.len());
            line.get(starts[i]..end)
                .unwrap_or_else(|| panic!("row too short for column {}: {line:?}", names[i]))
                .trim()
                .to_string()
        };
        let ok = match cell(6).as_str() {
            "yes" => true,
            "NO" => false,
            other => panic!("OK column is {other:?} in {line:?}"),
        };
        rows.push((cell(0), cell(1), cell(2), cell(3), cell(4), cell(5), ok));
        details.push(cell(7));
    }
    panic!("no summary line after the table:\n{stdout}")
}

/// Asserts that each detail says what its probe saw: `reply in `, `connected in `, `echoed in `
/// and `timeout (` are prefixes, anything else (`no route`) must be the whole detail.
fn assert_details(details: &[String], want: &[&str]) {
    assert_eq!(details.len(), want.len(), "{details:?}");
    for (d, w) in details.iter().zip(want) {
        let ok = if w.ends_with(' ') || w.ends_with('(') {
            d.starts_with(w)
        } else {
            d == w
        };
        assert!(ok, "detail {d:?} should be {w:?}… (all: {details:?})");
    }
}

/// The `plumb: mismatch: ` lines of stderr.
fn mismatch_lines(out: &std::process::Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| l.starts_with("plumb: mismatch: "))
        .map(str::to_string)
        .collect()
}

#[test]
fn check_seed_expectations_hold_exit_zero() {
    let sb = seed_up();
    let file = seed_with(&sb, "seed-check.toml", &seed_expectations());
    let out = sb.plumb(&["check", &file]);
    assert_exit(&out, 0, "plumb check on the seed's true expectations");
    let (rows, details, summary) = table_results(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(rows, seed_rows(), "{}", describe(&out));
    assert_details(
        &details,
        &["reply in ", "no route", "connected in ", "echoed in "],
    );
    assert_eq!(summary, "lab seed: all 4 expectation(s) hold");
    assert!(mismatch_lines(&out).is_empty(), "{}", describe(&out));
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
    let (rows, details) = check_results(&stdout_json(&out), "seed");
    assert_eq!(rows, seed_rows(), "{}", describe(&out));
    assert_details(
        &details,
        &["reply in ", "no route", "connected in ", "echoed in "],
    );
}

#[test]
fn check_wrong_expectation_exits_one_and_names_the_mismatch() {
    let sb = seed_up();
    let mut expects = seed_expectations();
    // ns2 has no route to the host: expecting a reply is wrong.
    expects.push(expect("ns2", "host", "icmp", "reach"));
    let file = seed_with(&sb, "seed-wrong.toml", &expects);
    let mut want = seed_rows();
    want.push(row(
        "ns2",
        "host",
        "10.66.77.25",
        "icmp",
        "reach",
        "blocked",
    ));
    const MISMATCH: &str =
        "plumb: mismatch: ns2 -> host (10.66.77.25) icmp: expected reach, observed blocked (no route)";

    let out = sb.plumb(&["check", &file, "--json"]);
    assert_exit(&out, 1, "plumb check --json with one wrong expectation");
    let (rows, _) = check_results(&stdout_json(&out), "seed");
    assert_eq!(rows, want, "{}", describe(&out));
    assert_eq!(mismatch_lines(&out), [MISMATCH], "{}", describe(&out));

    let out = sb.plumb(&["check", &file]);
    assert_exit(&out, 1, "plumb check with one wrong expectation");
    let (rows, _, summary) = table_results(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(rows, want, "{}", describe(&out));
    assert_eq!(summary, "lab seed: 1 of 5 expectation(s) do not hold");
    assert_eq!(mismatch_lines(&out), [MISMATCH], "{}", describe(&out));
}

#[test]
fn check_tcp_and_udp_without_route_or_host_are_blocked() {
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
    let out = sb.plumb(&["check", &file, "--json"]);
    assert_exit(&out, 0, "plumb check on paths without a route or a host");
    let (rows, details) = check_results(&stdout_json(&out), "seed");
    assert_eq!(
        rows,
        [
            row("ns2", "host", "10.66.77.25", "tcp/80", "blocked", "blocked"),
            row("ns2", "host", "10.66.77.25", "udp/53", "blocked", "blocked"),
            row(
                "ns1",
                "10.66.78.99",
                "10.66.78.99",
                "udp/53",
                "blocked",
                "blocked"
            ),
            row(
                "ns1",
                "10.66.78.99",
                "10.66.78.99",
                "icmp",
                "blocked",
                "blocked"
            ),
        ],
        "{}",
        describe(&out)
    );
    // Why each is blocked: no route from ns2; from ns1 nobody answers (for UDP the kernel may
    // also report the failed neighbour resolution, so only ICMP's wait is pinned down).
    assert_eq!(details[0], "no route", "{details:?}");
    assert_eq!(details[1], "no route", "{details:?}");
    assert!(details[3].starts_with("timeout ("), "{details:?}");
}

/// Binds `proto`/`port` in the calling namespace, says `ready` on stderr and waits for its
/// stdin to close; then exits 0 if a connection (tcp) or a datagram (udp) is queued, 3 if none
/// is. Never answers. A probe that ran has finished by the time `plumb check` returns, so what
/// it sent is queued by then: no waiting, no race.
const WITNESS_PY: &str = r#"
import socket, sys
proto, port = sys.argv[1], int(sys.argv[2])
kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
s = socket.socket(socket.AF_INET, kind)
s.bind(("0.0.0.0", port))
if proto == "tcp":
    s.listen(16)
print("ready", file=sys.stderr, flush=True)
sys.stdin.read()
s.setblocking(False)
try:
    if proto == "tcp":
        s.accept()
    else:
        s.recvfrom(4096)
except BlockingIOError:
    sys.exit(3)
"#;

/// A [`WITNESS_PY`] holding a port in a node.
struct Witness {
    child: std::process::Child,
    what: String,
}

impl Witness {
    /// Starts [`WITNESS_PY`] in `ns` and returns once it holds the port. Needs `python3`.
    fn start(sb: &Sandbox, ns: &str, proto: &str, port: &str) -> Witness {
        let mut cmd = sb.command(&[
            "ip", "netns", "exec", ns, "timeout", "60", "python3", "-c", WITNESS_PY, proto, port,
        ]);
        cmd.stdin(Stdio::piped());
        let child = sb.spawn_until_stderr(cmd, "ready", Duration::from_secs(30));
        Witness {
            child,
            what: format!("{proto}/{port} in {ns}"),
        }
    }

    /// Ends the witness: true if a probe reached it.
    fn probed(mut self) -> bool {
        drop(self.child.stdin.take());
        let status = self.child.wait().expect("wait for the witness");
        match status.code() {
            Some(0) => true,
            Some(3) => false,
            _ => panic!("the witness on {} failed: {status}", self.what),
        }
    }
}

#[test]
fn check_leaves_no_responder_behind() {
    let sb = seed_up();
    let nodes = ["ns1", "ns2"];
    for ns in nodes {
        assert!(
            sb.listening(Some(ns)).is_empty(),
            "{ns} listens before check"
        );
        assert!(
            sb.pids_in_netns(ns).is_empty(),
            "{ns} has processes before check"
        );
    }
    // The two views see a responder left in ns2: sockets waiting on tcp/8080 and udp/5353 and
    // the process holding them. This one is left by hand, and ended.
    let tcp = Witness::start(&sb, "ns2", "tcp", "8080");
    let udp = Witness::start(&sb, "ns2", "udp", "5353");
    assert_eq!(
        sb.listening(Some("ns2")),
        ["tcp 0.0.0.0:8080", "udp 0.0.0.0:5353"]
    );
    let pids = sb.pids_in_netns("ns2");
    for w in [&tcp, &udp] {
        assert!(
            pids.contains(&w.child.id()),
            "the witness on {} (pid {}) is not among ns2's processes {pids:?}",
            w.what,
            w.child.id()
        );
    }
    assert!(!tcp.probed(), "nothing probed ns2 yet");
    assert!(!udp.probed(), "nothing probed ns2 yet");
    sb.wait_until(SETTLE, "the witnesses are gone from ns2", |s| {
        s.pids_in_netns("ns2").is_empty()
    });

    // plumb's own responders answer the probes in ns2 (nothing else listens there)...
    let file = seed_with(&sb, "seed-check.toml", &seed_expectations());
    let out = sb.plumb(&["check", &file, "--json"]);
    assert_exit(&out, 0, "plumb check");
    let (rows, _) = check_results(&stdout_json(&out), "seed");
    assert_eq!(rows, seed_rows(), "{}", describe(&out));
    // ... and once check has returned, none of them is left in any node: no socket waiting for
    // peers, no process (a helper or a forked responder) in the node's namespace.
    for ns in nodes {
        assert_eq!(
            sb.listening(Some(ns)),
            Vec::<String>::new(),
            "sockets left waiting in {ns} after plumb check"
        );
        assert_eq!(
            sb.pids_in_netns(ns),
            Vec::<u32>::new(),
            "processes left in {ns} after plumb check"
        );
    }
    assert_eq!(
        sb.listening(None),
        Vec::<String>::new(),
        "sockets left waiting in the host after plumb check"
    );
}

#[test]
fn check_port_already_bound_probes_the_existing_socket() {
    let sb = seed_up();
    let tcp = Witness::start(&sb, "ns2", "tcp", "8080");
    let udp = Witness::start(&sb, "ns2", "udp", "5353");
    // The TCP witness listens (the kernel completes the handshake); the UDP witness never
    // answers, so that probe finds no echo: plumb probed what was there instead of failing to
    // bind its own responder.
    let file = seed_with(
        &sb,
        "seed-taken.toml",
        &[
            expect("ns1", "ns2", "tcp/8080", "reach"),
            expect("ns1", "ns2", "udp/5353", "blocked"),
        ],
    );
    let out = sb.plumb(&["check", &file, "--json"]);
    assert_exit(&out, 0, "plumb check with both ports already bound in ns2");
    let (rows, _) = check_results(&stdout_json(&out), "seed");
    assert_eq!(
        rows,
        [
            row("ns1", "ns2", "10.66.78.2", "tcp/8080", "reach", "reach"),
            row("ns1", "ns2", "10.66.78.2", "udp/5353", "blocked", "blocked"),
        ],
        "{}",
        describe(&out)
    );
    assert!(
        tcp.probed(),
        "the tcp/8080 witness in ns2 never saw plumb's probe"
    );
    assert!(
        udp.probed(),
        "the udp/5353 witness in ns2 never saw plumb's probe"
    );
}

/// stderr's lines.
fn stderr_lines(out: &std::process::Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn check_lab_name_without_file_exits_two_and_asks_for_the_file() {
    let sb = seed_up();
    let out = sb.plumb(&["check", "seed"]);
    assert_exit(&out, 2, "plumb check seed");
    assert!(out.stdout.is_empty(), "{}", describe(&out));
    let err = stderr_lines(&out);
    assert_eq!(err.len(), 1, "one error line\n{}", describe(&out));
    assert!(
        err[0].starts_with("plumb: `plumb check` needs the topology file of lab `seed`")
            && err[0].contains("[[expect]]"),
        "the error should ask for lab seed's file, where the [[expect]] entries live\n{}",
        describe(&out)
    );
}

#[test]
fn check_lab_not_up_exits_two() {
    let sb = sandbox();
    let file = seed_with(&sb, "seed-check.toml", &seed_expectations());
    let out = sb.plumb(&["check", &file]);
    assert_exit(&out, 2, "plumb check with the lab down");
    // No table at all: a half-run check is not a result.
    assert!(out.stdout.is_empty(), "{}", describe(&out));
    let err = stderr_lines(&out);
    assert_eq!(err.len(), 1, "one error line\n{}", describe(&out));
    // The first expectation's source is ns1, which does not exist.
    assert!(
        err[0].starts_with("plumb: cannot open node ns1's namespace (is the lab up?)"),
        "{}",
        describe(&out)
    );
}

#[test]
fn check_target_outside_the_lab_is_refused_and_nothing_is_probed() {
    let sb = seed_up();
    let inside = expect("ns1", "ns2", "tcp/8080", "reach");
    let refused = seed_with(
        &sb,
        "seed-outside.toml",
        &[
            inside.clone(),
            expect("ns1", "192.0.2.1", "icmp", "blocked"),
        ],
    );
    // A witness on tcp/8080 in ns2 sees the probe of the first expectation if it is sent.
    let witness = Witness::start(&sb, "ns2", "tcp", "8080");
    let out = sb.plumb(&["check", &refused]);
    assert_exit(&out, 2, "plumb check with a target outside the lab");
    assert!(out.stdout.is_empty(), "{}", describe(&out));
    assert_eq!(
        stderr_lines(&out),
        ["plumb: 192.0.2.1 is not an address of lab seed: plumb probes only the lab's own nodes and subnets"],
        "{}",
        describe(&out)
    );
    assert!(
        !witness.probed(),
        "the expectation inside the lab was probed although the file was refused"
    );
    // The witness does see that probe when the file is accepted.
    let accepted = seed_with(&sb, "seed-inside.toml", &[inside]);
    let witness = Witness::start(&sb, "ns2", "tcp", "8080");
    let out = sb.plumb(&["check", &accepted]);
    assert_exit(
        &out,
        0,
        "plumb check with the expectation inside the lab only",
    );
    assert!(witness.probed(), "the witness in ns2 never saw the probe");

    let out = sb.plumb(&["ping", "seed", "ns1", "192.0.2.1"]);
    assert_exit(&out, 2, "plumb ping to an address outside the lab");
    assert!(out.stdout.is_empty(), "{}", describe(&out));
    assert_eq!(
        stderr_lines(&out),
        ["plumb: 192.0.2.1 is not an address of lab seed: plumb probes only the lab's own nodes and subnets"],
        "{}",
        describe(&out)
    );
    let out = sb.plumb(&["ping", "seed", "ns1", "10.66.78.255"]);
    assert_exit(&out, 2, "plumb ping to a subnet's broadcast address");
    assert_eq!(
        stderr_lines(&out),
        ["plumb: 10.66.78.255 is not a unicast host address: a probe goes to one node"],
        "{}",
        describe(&out)
    );
}

/// `plumb ping`'s one line, `FROM -> TARGET: VERDICT`, split at `: ` after the target.
fn ping_line(out: &std::process::Output) -> (String, String) {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "plumb ping prints one line\n{}",
        describe(out)
    );
    let (head, verdict) = lines[0]
        .split_once(": ")
        .unwrap_or_else(|| panic!("no `: ` in {:?}", lines[0]));
    (head.to_string(), verdict.to_string())
}

#[test]
fn ping_seed_ns1_ns2_exits_zero() {
    let sb = seed_up();
    let out = sb.plumb(&["ping", "seed", "ns1", "ns2"]);
    assert_exit(&out, 0, "plumb ping seed ns1 ns2");
    let (head, verdict) = ping_line(&out);
    assert_eq!(head, "ns1 -> ns2 (10.66.78.2)");
    assert!(verdict.starts_with("reply in "), "{verdict:?}");
    // The same lab named by its file.
    let out = sb.plumb(&["ping", &example("seed.toml"), "host", "ns1"]);
    assert_exit(&out, 0, "plumb ping seed.toml host ns1");
    let (head, verdict) = ping_line(&out);
    assert_eq!(head, "host -> ns1 (10.66.77.24)");
    assert!(verdict.starts_with("reply in "), "{verdict:?}");
    // iputils agrees.
    sb.ping_ok(Some("ns1"), "10.66.78.2");
    sb.ping_ok(None, "10.66.77.24");
}

#[test]
fn ping_seed_ns2_host_exits_one_without_reply() {
    let sb = seed_up();
    let out = sb.plumb(&["ping", "seed", "ns2", "host"]);
    assert_exit(&out, 1, "plumb ping seed ns2 host");
    assert_eq!(
        ping_line(&out),
        (
            "ns2 -> host (10.66.77.25)".to_string(),
            "no reply (no route)".to_string()
        )
    );
    assert!(
        !sb.ping(Some("ns2"), "10.66.77.25").status.success(),
        "iputils ping from ns2 reached the host"
    );
    let out = sb.plumb(&["ping", "seed", "ns1", "nosuchnode"]);
    assert_exit(&out, 2, "plumb ping to a node the lab does not have");
    assert!(out.stdout.is_empty(), "{}", describe(&out));
    assert_eq!(
        stderr_lines(&out),
        ["plumb: lab seed has no node `nosuchnode`"],
        "{}",
        describe(&out)
    );
}
