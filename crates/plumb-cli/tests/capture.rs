//! `plumb capture`, end to end in a sandbox, checked through independent readers: `tshark`
//! and `tcpdump -r` read the files plumb writes (run outside the sandbox, on the file only),
//! `python3` makes the traffic and counts what it sent.
//!
//! Needs `tcpdump`, `tshark` and `python3` besides what the test kit needs.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::*;
use plumb_testkit::{describe, Sandbox};

/// How long a capture may take to end on its own (it ends on a packet count or SIGINT).
const END: Duration = Duration::from_secs(30);

/// A capture running in the background, its output collected by two threads.
struct Running {
    child: Child,
    stdout: JoinHandle<String>,
    stderr: JoinHandle<String>,
}

/// Starts `plumb ARGS` inside the sandbox and returns once its rings are open (it says
/// "capturing on" on stderr).
fn start(sb: &Sandbox, args: &[&str]) -> Running {
    let mut cmd = sb.plumb_command(args);
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn plumb capture");
    let mut out = child.stdout.take().expect("stdout");
    let err = child.stderr.take().expect("stderr");
    let (tx, rx) = mpsc::channel();
    let stderr = std::thread::spawn(move || {
        let mut seen = String::new();
        for line in BufReader::new(err).lines() {
            let Ok(line) = line else { break };
            if line.contains("capturing on") {
                let _ = tx.send(());
            }
            seen.push_str(&line);
            seen.push('\n');
        }
        seen
    });
    let stdout = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    if rx.recv_timeout(Duration::from_secs(20)).is_err() {
        let _ = child.kill();
        let _ = child.wait();
        panic!(
            "plumb {args:?} never said it was capturing; stderr:\n{}",
            stderr.join().unwrap_or_default()
        );
    }
    Running {
        child,
        stdout,
        stderr,
    }
}

/// Waits for a capture to exit 0 (killing it and failing after [`END`]); returns its stdout
/// and stderr.
fn finish(mut r: Running, what: &str) -> (String, String) {
    let deadline = Instant::now() + END;
    let status = loop {
        match r.child.try_wait() {
            Ok(Some(st)) => break Some(st),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            _ => {
                let _ = r.child.kill();
                let _ = r.child.wait();
                break None;
            }
        }
    };
    let out = r.stdout.join().unwrap_or_default();
    let err = r.stderr.join().unwrap_or_default();
    match status {
        Some(st) if st.code() == Some(0) => (out, err),
        Some(st) => panic!("{what} exited with {st}\nstdout:\n{out}\nstderr:\n{err}"),
        None => panic!("{what} did not end within {END:?}\nstdout:\n{out}\nstderr:\n{err}"),
    }
}

/// Stops a capture as Ctrl-C does.
fn interrupt(r: &Running) {
    let child = &r.child;
    let st = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(st.success(), "kill -INT {} failed", child.id());
}

/// `tshark -r FILE -T fields -e F…`: one row of fields per packet. Fails loudly if tshark is
/// missing or refuses the file.
fn tshark(file: &Path, fields: &[&str], filter: Option<&str>) -> Vec<Vec<String>> {
    let mut cmd = Command::new("tshark");
    cmd.arg("-r").arg(file).args(["-T", "fields"]);
    for f in fields {
        cmd.args(["-e", f]);
    }
    if let Some(f) = filter {
        cmd.args(["-Y", f]);
    }
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run tshark (apt-get install tshark): {e}"));
    assert!(
        out.status.success(),
        "tshark -r {} failed\n{}",
        file.display(),
        describe(&out)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.split('\t').map(str::to_string).collect())
        .collect()
}

/// `tcpdump -n -r FILE`: its lines. Fails loudly if tcpdump is missing or refuses the file.
fn tcpdump_read(file: &Path) -> Vec<String> {
    let out = Command::new("tcpdump")
        .args(["-n", "-r"])
        .arg(file)
        .output()
        .unwrap_or_else(|e| panic!("cannot run tcpdump (apt-get install tcpdump): {e}"));
    assert!(
        out.status.success(),
        "tcpdump -r {} failed\n{}",
        file.display(),
        describe(&out)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

fn seed(sb: &Sandbox) {
    sb.plumb_ok(&["up", &example("seed.toml")]);
    settle_carriers(sb);
}

/// The sorted (point, direction, what) of the ICMP lines plumb printed.
fn icmp_lines(stdout: &str) -> Vec<(String, String, String)> {
    let mut v: Vec<_> = stdout
        .lines()
        .map(|l| {
            let mut w = l.splitn(3, ' ');
            let point = w.next().unwrap_or_default().to_string();
            let dir = w.next().unwrap_or_default().to_string();
            let rest = w.next().unwrap_or_default();
            let kind = if rest.contains("ICMP echo request") {
                "request"
            } else if rest.contains("ICMP echo reply") {
                "reply"
            } else {
                rest
            };
            (point, dir, kind.to_string())
        })
        .collect();
    v.sort();
    v
}

fn t(p: &str, d: &str, k: &str) -> (String, String, String) {
    (p.into(), d.into(), k.into())
}

#[test]
fn capture_seed_ping_is_seen_on_both_points_with_directions_and_the_file_reads_in_tshark_and_tcpdump(
) {
    let sb = sandbox();
    seed(&sb);
    let file = sb.dir().join("seed.pcapng");
    let file_s = file.to_str().expect("utf-8 path");
    let cap = start(
        &sb,
        &[
            "capture",
            "ns1:eth1000",
            "host:veth1",
            "-c",
            "4",
            "-w",
            file_s,
            "--print",
            "icmp",
        ],
    );
    sb.run_ok(&[
        "ip",
        "netns",
        "exec",
        "ns1",
        "ping",
        "-c",
        "1",
        "-W",
        "5",
        "10.66.77.25",
    ]);
    let (stdout, err) = finish(cap, "plumb capture -c 4");
    let expected = vec![
        t("host/veth1", "in", "request"),
        t("host/veth1", "out", "reply"),
        t("ns1/eth1000", "in", "reply"),
        t("ns1/eth1000", "out", "request"),
    ];
    assert_eq!(icmp_lines(&stdout), expected, "{stdout}\n{err}");
    for p in ["ns1/eth1000", "host/veth1"] {
        assert!(
            err.contains(&format!("{p}: 2 packets captured, 0 dropped by the kernel")),
            "summary of {p}: {err}"
        );
    }

    // tshark: interface names intact, directions from the packet flags (1 in, 2 out).
    let mut rows: Vec<(String, String, String)> = tshark(
        &file,
        &[
            "frame.interface_name",
            "frame.packet_flags_direction",
            "icmp.type",
        ],
        None,
    )
    .into_iter()
    .map(|r| {
        let dir = match r[1].as_str() {
            "0x1" | "1" | "0x00000001" => "in",
            "0x2" | "2" | "0x00000002" => "out",
            other => panic!("direction {other} in {r:?}"),
        };
        let kind = match r[2].as_str() {
            "8" => "request",
            "0" => "reply",
            other => panic!("ICMP type {other} in {r:?}"),
        };
        t(&r[0], dir, kind)
    })
    .collect();
    rows.sort();
    assert_eq!(rows, expected, "what tshark reads");
    let descs = tshark(&file, &["frame.interface_description"], None);
    assert!(
        descs
            .iter()
            .any(|d| d[0].contains("/run/netns/ns1") && d[0].contains("inode")),
        "interface descriptions: {descs:?}"
    );

    // tcpdump reads it too (one link type and snap length for all points).
    let lines = tcpdump_read(&file);
    assert_eq!(lines.len(), 4, "tcpdump -r: {lines:?}");
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.contains("ICMP echo request"))
            .count(),
        2,
        "{lines:?}"
    );
}

#[test]
fn capture_icmp_filter_drops_the_arp_and_tcp_of_a_mixed_stream() {
    let sb = sandbox();
    seed(&sb);
    let all = sb.dir().join("all.pcapng");
    let icmp = sb.dir().join("icmp.pcapng");
    let everything = start(&sb, &["capture", "host:veth1", "-w", all.to_str().unwrap()]);
    let filtered = start(
        &sb,
        &[
            "capture",
            "host:veth1",
            "-w",
            icmp.to_str().unwrap(),
            "icmp",
        ],
    );
    // ARP (the neighbour is forgotten first), two pings, a refused TCP connection.
    sb.run_ok(&[
        "ip", "netns", "exec", "ns1", "sh", "-c",
        "ip neigh flush all && ping -c 2 -W 5 10.66.77.25 >/dev/null && \
         python3 -c 'import socket\ntry: socket.create_connection((\"10.66.77.25\", 9), 5)\nexcept ConnectionRefusedError: pass'",
    ]);
    interrupt(&everything);
    interrupt(&filtered);
    finish(everything, "unfiltered capture");
    finish(filtered, "icmp capture");
    let count = |file: &Path, f: &str| tshark(file, &["frame.number"], Some(f)).len();
    assert!(count(&all, "arp") >= 2, "no ARP in the unfiltered capture");
    assert!(count(&all, "tcp") >= 2, "no TCP in the unfiltered capture");
    assert_eq!(count(&all, "icmp"), 4, "ICMP in the unfiltered capture");
    assert_eq!(count(&icmp, "frame"), 4, "packets in the filtered capture");
    assert_eq!(count(&icmp, "icmp"), 4, "ICMP in the filtered capture");
}

#[test]
fn capture_tiny_ring_counts_and_reports_drops() {
    let sb = sandbox();
    seed(&sb);
    // The neighbour is resolved first, so every datagram leaves at once.
    sb.run_ok(&[
        "ip",
        "netns",
        "exec",
        "ns1",
        "ping",
        "-c",
        "1",
        "-W",
        "5",
        "10.66.77.25",
    ]);
    let file = sb.dir().join("tiny.pcapng");
    let cap = start(
        &sb,
        &[
            "capture",
            "ns1:eth1000",
            "--buffer",
            "4K",
            "-w",
            file.to_str().unwrap(),
            "udp",
            "port",
            "9999",
        ],
    );
    let sent = sb.run_ok(&[
        "ip", "netns", "exec", "ns1", "python3", "-c",
        "import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\nn = 0\nfor _ in range(5000):\n    try:\n        s.sendto(b'x' * 1400, ('10.66.77.25', 9999)); n += 1\n    except OSError:\n        pass\nprint(n)",
    ]);
    let sent: u64 = sent.trim().parse().expect("count of datagrams sent");
    interrupt(&cap);
    let (_, err) = finish(cap, "capture with a 4K ring");
    let line = err
        .lines()
        .find(|l| l.starts_with("ns1/eth1000: "))
        .unwrap_or_else(|| panic!("no summary for ns1/eth1000: {err}"));
    let nums: Vec<u64> = line["ns1/eth1000: ".len()..]
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|w| w.parse().ok())
        .collect();
    // "ns1/eth1000: N packets captured, D dropped by the kernel …".
    let (captured, dropped) = (nums[0], nums[1]);
    assert!(
        dropped > 0,
        "a 4K ring under {sent} datagrams of 1400 bytes dropped none: {line}"
    );
    assert_eq!(
        captured + dropped,
        sent,
        "every datagram is captured or counted as dropped: {line}"
    );
    let in_file = tcpdump_read(&file).len() as u64;
    assert_eq!(in_file, captured, "packets in the file");
}

#[test]
fn capture_lab_and_lab_node_iface_points_cover_every_interface_of_the_lab_once() {
    let sb = sandbox();
    seed(&sb);
    let cap = start(
        &sb,
        &["capture", "seed:ns1:eth1000", "seed", "-c", "4", "icmp"],
    );
    sb.run_ok(&[
        "ip",
        "netns",
        "exec",
        "ns1",
        "ping",
        "-c",
        "1",
        "-W",
        "5",
        "10.66.77.25",
    ]);
    let (stdout, err) = finish(cap, "plumb capture seed");
    let points = err
        .lines()
        .find_map(|l| l.strip_prefix("plumb: capturing on "))
        .and_then(|l| l.split(" (filter").next())
        .unwrap_or_else(|| panic!("no start line: {err}"));
    let mut points: Vec<&str> = points.split(", ").collect();
    points.sort();
    assert_eq!(
        points,
        ["host/veth1", "ns1/eth1000", "ns1/veth-ns2", "ns2/veth-ns1"],
        "every non-loopback interface of the lab, once"
    );
    assert_eq!(
        icmp_lines(&stdout),
        vec![
            t("host/veth1", "in", "request"),
            t("host/veth1", "out", "reply"),
            t("ns1/eth1000", "in", "reply"),
            t("ns1/eth1000", "out", "request"),
        ]
    );
}

#[test]
fn capture_bad_points_and_filters_are_errors_that_name_them() {
    let sb = sandbox();
    seed(&sb);
    for (args, needle) in [
        (vec!["capture", "ns1:eth9", "icmp"], "no interface `eth9`"),
        (vec!["capture", "nosuch:eth0"], "nosuch"),
        (
            vec!["capture", "ns1:eth1000", "port", "http"],
            "`http` is not a port number",
        ),
        (vec!["capture", "icmp"], "no capture point"),
    ] {
        let out = sb.plumb(&args);
        assert_exit(&out, 2, &format!("plumb {args:?}"));
        assert!(
            text(&out).contains(needle),
            "plumb {args:?}: {}",
            text(&out)
        );
    }
}
