//! The compiler against tcpdump: both run on the same packets (a file written here, read by
//! `tcpdump -r FILE FILTER`, which compiles the filter with libpcap), and must accept exactly
//! the same ones. Needs `tcpdump`: the test fails, naming it, when it is missing.

use std::collections::BTreeSet;
use std::process::Command;

use etherparse::PacketBuilder;

use super::*;
use crate::capture::pcapng::{Flag, Interface, Writer};

const A: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0a];
const B: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0b];

macro_rules! build {
    ($b:expr, $payload:expr $(,)?) => {{
        let mut v = Vec::new();
        $b.write(&mut v, $payload).expect("packet");
        v
    }};
}

fn arp(op: u16, spa: [u8; 4], tpa: [u8; 4]) -> Vec<u8> {
    let mut f = vec![0xff; 6];
    f.extend(A);
    f.extend([0x08, 0x06, 0, 1, 8, 0, 6, 4]);
    f.extend(op.to_be_bytes());
    f.extend(A);
    f.extend(spa);
    f.extend([0; 6]);
    f.extend(tpa);
    f
}

/// A mixed stream: IPv4 and IPv6 ICMP, TCP and UDP on several ports and hosts, ARP, a non-first
/// fragment, an unknown EtherType.
fn packets() -> Vec<Vec<u8>> {
    let e = || PacketBuilder::ethernet2(A, B);
    let v6a = [0xfd, 0, 0, 0x90, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];
    let v6b = [0xfd, 0, 0, 0x91, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7];
    let mut v = vec![
        build!(
            e().ipv4([10, 66, 77, 24], [10, 66, 77, 25], 64)
                .icmpv4_echo_request(5, 1),
            &[1; 56]
        ),
        build!(
            e().ipv4([10, 66, 77, 25], [10, 66, 77, 24], 64)
                .icmpv4_echo_reply(5, 1),
            &[1; 56]
        ),
        build!(
            e().ipv4([10, 90, 0, 2], [203, 0, 113, 2], 63)
                .tcp(40000, 80, 1, 100)
                .syn(),
            &[]
        ),
        build!(
            e().ipv4([203, 0, 113, 2], [10, 90, 0, 2], 63)
                .tcp(80, 40000, 9, 100)
                .syn()
                .ack(2),
            &[]
        ),
        build!(
            e().ipv4([10, 90, 0, 3], [10, 90, 0, 1], 64)
                .tcp(22, 1022, 1, 100),
            b"x"
        ),
        build!(
            e().ipv4([10, 90, 0, 3], [8, 8, 8, 8], 64).udp(5353, 53),
            b"q"
        ),
        build!(
            e().ipv4([192, 168, 1, 9], [10, 90, 0, 3], 64)
                .udp(1000, 8080),
            b"q"
        ),
        build!(
            e().ipv4([192, 168, 1, 9], [10, 90, 0, 3], 64)
                .udp(2000, 2100),
            b"q"
        ),
        build!(e().ipv6(v6a, v6b, 64).tcp(443, 50000, 1, 100), &[]),
        build!(e().ipv6(v6b, v6a, 64).udp(53, 5353), b"r"),
        build!(e().ipv6(v6a, v6b, 64).icmpv6_echo_request(3, 4), &[0; 8]),
        arp(1, [10, 66, 77, 24], [10, 66, 77, 25]),
        arp(2, [10, 66, 77, 25], [10, 66, 77, 24]),
    ];
    // A non-first fragment of a UDP datagram to port 53: no ports to look at.
    let mut frag = build!(
        e().ipv4([10, 90, 0, 3], [8, 8, 8, 8], 64).udp(5353, 53),
        b"qqqqqqqq"
    );
    frag[20] = 0x00;
    frag[21] = 0x10; // fragment offset 16 * 8
    v.push(frag);
    // An unknown EtherType.
    let mut other = vec![0xff; 6];
    other.extend(B);
    other.extend([0x88, 0xb5]);
    other.extend([0; 46]);
    v.push(other);
    v
}

const FILTERS: &[&str] = &[
    "",
    "icmp",
    "arp",
    "tcp",
    "udp",
    "ip",
    "ip6",
    "icmp6",
    "not arp",
    "icmp or arp",
    "tcp and port 80",
    "port 53",
    "udp port 53",
    "src port 5353",
    "dst port 80 or dst port 8080",
    "portrange 2000-2200",
    "tcp portrange 1-1024",
    "host 10.66.77.24",
    "src host 10.66.77.25",
    "dst 10.90.0.1",
    "ip host 10.66.77.24",
    "arp host 10.66.77.25",
    "net 10.90.0.0/24",
    "src net 192.168.0.0/16 and udp",
    "dst net 203.0.113.0/24",
    "host fd00:90::2",
    "net fd00:91::/32",
    "ip proto 6",
    "proto 17",
    "ip6 proto 58",
    "not (tcp or udp)",
    "!(icmp) && !arp",
    "host 10.90.0.2 or 10.90.0.3",
    "port 80 or 443",
    "ether proto 0x88b5",
    "ether src 02:00:00:00:00:0a",
    "ether dst 02:00:00:00:00:0b and not ip6",
    "less 60",
    "greater 90",
    "(tcp or udp) and not (src net 10.0.0.0/8 or dst port 53)",
];

/// The indexes tcpdump accepts: each packet's timestamp is its index in seconds.
fn tcpdump_accepts(file: &std::path::Path, filter: &str) -> BTreeSet<usize> {
    let out = Command::new("tcpdump")
        .args(["-n", "-tt", "-r"])
        .arg(file)
        .arg(filter)
        .output()
        .unwrap_or_else(|e| panic!("cannot run tcpdump (apt-get install tcpdump): {e}"));
    assert!(
        out.status.success(),
        "tcpdump -r with `{filter}` failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split('.').next()?.parse().ok())
        .collect()
}

#[test]
fn compile_accepts_what_tcpdump_accepts_on_a_mixed_stream() {
    let pkts = packets();
    let dir = std::env::temp_dir().join(format!("plumb-filter-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("mixed.pcapng");
    let iface = Interface {
        name: "t/eth0".into(),
        description: "test".into(),
    };
    let f = std::fs::File::create(&file).unwrap();
    let mut w = Writer::new(f, "plumb test", &[iface], bpf::SNAPLEN).unwrap();
    for (i, p) in pkts.iter().enumerate() {
        let ts = i as u64 * 1_000_000_000;
        w.packet(0, ts, p, p.len() as u32, Flag::Inbound, None)
            .unwrap();
    }
    w.finish().unwrap();
    let mut failures = Vec::new();
    for filter in FILTERS {
        let prog = compile(filter).unwrap_or_else(|e| panic!("{e}"));
        let ours: BTreeSet<usize> = pkts
            .iter()
            .enumerate()
            .filter(|(_, p)| prog.run(p) > 0)
            .map(|(i, _)| i)
            .collect();
        let theirs = tcpdump_accepts(&file, filter);
        if ours != theirs {
            failures.push(format!("`{filter}`: plumb {ours:?}, tcpdump {theirs:?}"));
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        failures.is_empty(),
        "filters disagree:\n{}",
        failures.join("\n")
    );
}

#[test]
fn compile_every_program_passes_the_kernels_checker() {
    for filter in FILTERS {
        let prog = compile(filter).unwrap();
        crate::sys::packet::check_filter(&prog.0)
            .unwrap_or_else(|e| panic!("the kernel refuses `{filter}`: {e}\n{}", prog.to_ddd()));
    }
}

#[test]
fn compile_random_words_never_panics() {
    use proptest::prelude::*;
    let words = prop::sample::select(vec![
        "host",
        "net",
        "port",
        "portrange",
        "proto",
        "src",
        "dst",
        "and",
        "or",
        "not",
        "(",
        ")",
        "tcp",
        "udp",
        "icmp",
        "arp",
        "ip",
        "ip6",
        "ether",
        "less",
        "10.0.0.1",
        "10.0.0.0/8",
        "fd00::1",
        "53",
        "1-1024",
        "0x800",
        "02:00:00:00:00:01",
        "!",
        "&&",
        "||",
    ]);
    proptest!(|(v in prop::collection::vec(words, 0..12))| {
        let text = v.join(" ");
        if let Ok(p) = compile(&text) {
            prop_assert!(crate::sys::packet::check_filter(&p.0).is_ok(), "kernel refuses `{}`", text);
            for pkt in packets() {
                let _ = p.run(&pkt);
            }
        }
    });
}

#[test]
fn compile_every_filter_accepts_at_least_one_and_not_all_packets() {
    // Guards the comparison above against a stream that cannot tell filters apart.
    let pkts = packets();
    for filter in FILTERS.iter().filter(|f| !f.is_empty()) {
        let prog = compile(filter).unwrap();
        let n = pkts.iter().filter(|p| prog.run(p) > 0).count();
        assert!(
            n > 0 && n < pkts.len(),
            "`{filter}` accepts {n} of {}",
            pkts.len()
        );
    }
}

#[test]
fn compile_icmp_program_reads_as_tcpdump_ddd() {
    // `tcpdump -ddd icmp` on Ethernet: the same instructions.
    assert_eq!(
        compile("icmp").unwrap().to_ddd(),
        "6\n40 0 0 12\n21 0 3 2048\n48 0 0 23\n21 0 1 1\n6 0 0 262144\n6 0 0 0\n"
    );
}

#[test]
fn parse_errors_name_the_word() {
    for (f, needle) in [
        ("host", "a value is missing"),
        ("host 10.0.0.300", "`10.0.0.300` is not an IP address"),
        ("port http", "`http` is not a port number"),
        ("(tcp", "not closed"),
        ("tcp udp", "unexpected `udp`"),
        ("net 10.0.0.1/8", "non-network bits"),
        ("icmp host 10.0.0.1", "`host` and `net` take"),
        ("portrange 10", "a port range"),
    ] {
        let e = compile(f).expect_err(f).to_string();
        assert!(e.contains(needle), "`{f}`: {e}");
    }
}
