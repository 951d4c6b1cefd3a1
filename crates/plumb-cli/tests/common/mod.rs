//! Shared setup and expectations for the end-to-end tests of the `plumb` binary.
//!
//! Every test makes its own [`Sandbox`] from `plumb sandbox`, so nothing here ever touches the
//! machine's network, and asserts through the test kit's `ip -j` oracle, not plumb's output.
#![allow(dead_code)] // each test binary uses a different part of this module

pub mod sockets;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use plumb_testkit::{describe, Sandbox};
use serde_json::Value;

/// How long the kernel may take to finish tearing down deleted namespaces.
pub const SETTLE: Duration = Duration::from_secs(10);

/// A fresh sandbox made by the `plumb` binary under test.
pub fn sandbox() -> Sandbox {
    Sandbox::new(Path::new(env!("CARGO_BIN_EXE_plumb")))
}

/// The absolute path of `examples/NAME`, which must exist.
pub fn example(name: &str) -> String {
    let path = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples")).join(name);
    let path = path
        .canonicalize()
        .unwrap_or_else(|e| panic!("example {} is missing: {e}", path.display()));
    path.to_string_lossy().into_owned()
}

/// stdout and stderr together, for "the output mentions X" checks.
pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Panics with the whole output unless the process exited with `code`.
pub fn assert_exit(out: &Output, code: i32, what: &str) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "{what}: expected exit {code}\n{}",
        describe(out)
    );
}

/// True if `link`'s flags include `flag` (for example `UP`).
pub fn has_flag(link: &Value, flag: &str) -> bool {
    link["flags"]
        .as_array()
        .is_some_and(|f| f.iter().any(|x| x == flag))
}

/// The named interface in `ns`; panics listing what is there if it is missing.
pub fn must_link(sb: &Sandbox, ns: Option<&str>, name: &str) -> Value {
    sb.link(ns, name).unwrap_or_else(|| {
        panic!(
            "no interface {name} in {}; it has {:?}",
            ns.unwrap_or("host"),
            sb.link_names(ns)
        )
    })
}

/// Asserts that `name` in `ns` is administratively up and, for veths, has a carrier
/// (operstate `UP`, waiting for the kernel's link watch).
pub fn assert_up(sb: &Sandbox, ns: Option<&str>, name: &str) {
    let link = must_link(sb, ns, name);
    assert!(
        has_flag(&link, "UP"),
        "{name} in {} is not up: {link}",
        ns.unwrap_or("host")
    );
    if link["linkinfo"]["info_kind"] == "veth" {
        sb.wait_until(
            Duration::from_secs(5),
            &format!("{name} has operstate UP"),
            |s| must_link(s, ns, name)["operstate"] == "UP",
        );
    }
}

/// Asserts that `a` (in `a_ns`) is a veth whose peer is `b` in `b_ns`: the peer's ifindex and
/// the namespace `link_netnsid` points to, as `a`'s namespace sees it.
pub fn assert_peers(sb: &Sandbox, a_ns: Option<&str>, a: &str, b_ns: Option<&str>, b: &str) {
    let la = must_link(sb, a_ns, a);
    let lb = must_link(sb, b_ns, b);
    assert_eq!(
        la["linkinfo"]["info_kind"], "veth",
        "{a} is not a veth: {la}"
    );
    assert_eq!(
        la["link_index"], lb["ifindex"],
        "{a}'s peer is not {b} (peer index {}, {b} is {})",
        la["link_index"], lb["ifindex"]
    );
    match b_ns {
        Some(b_ns) => {
            let id = sb.netns_id(a_ns, b_ns);
            assert!(id.is_some(), "{b_ns} has no nsid as seen from {a_ns:?}");
            assert_eq!(
                la["link_netnsid"].as_i64(),
                id,
                "{a}'s peer is not in {b_ns}: {la}"
            );
        }
        None => assert!(
            la.get("link_netnsid").is_some(),
            "{a}'s peer is not in another namespace: {la}"
        ),
    }
}

/// Asserts the IPv4 addresses of `dev` in `ns`, exactly.
pub fn assert_addrs(sb: &Sandbox, ns: Option<&str>, dev: &str, expected: &[&str]) {
    let mut expected: Vec<String> = expected.iter().map(|s| s.to_string()).collect();
    expected.sort();
    assert_eq!(
        sb.ipv4_addrs(ns, dev),
        expected,
        "IPv4 addresses of {dev} in {}",
        ns.unwrap_or("host")
    );
}

/// The objects of the seed lab (`examples/seed.toml`), for "the error names an object" checks.
pub const SEED_OBJECTS: &[&str] = &[
    "ns1",
    "ns2",
    "veth1",
    "eth1000",
    "veth-ns1",
    "veth-ns2",
    "10.66.77.24",
    "10.66.77.25",
    "10.66.78.1",
    "10.66.78.2",
];

/// Asserts that the seed lab exists exactly as `examples/seed.toml` describes it, through the
/// oracle: namespaces, interfaces, peers, addresses, states and tags, and nothing more.
pub fn assert_seed_built(sb: &Sandbox) {
    assert_eq!(sb.netns_list(), vec!["ns1", "ns2"], "ip netns list");
    assert_eq!(
        sb.link_names(None),
        vec!["lo", "veth1"],
        "interfaces in the host"
    );
    assert_eq!(
        sb.link_names(Some("ns1")),
        vec!["eth1000", "lo", "veth-ns2"],
        "interfaces in ns1"
    );
    assert_eq!(
        sb.link_names(Some("ns2")),
        vec!["lo", "veth-ns1"],
        "interfaces in ns2"
    );

    assert_up(sb, None, "veth1");
    assert_addrs(sb, None, "veth1", &["10.66.77.25/24"]);
    assert_peers(sb, None, "veth1", Some("ns1"), "eth1000");

    assert_up(sb, Some("ns1"), "lo");
    assert_up(sb, Some("ns1"), "eth1000");
    assert_addrs(sb, Some("ns1"), "eth1000", &["10.66.77.24/24"]);
    assert_peers(sb, Some("ns1"), "eth1000", None, "veth1");
    assert_up(sb, Some("ns1"), "veth-ns2");
    assert_addrs(sb, Some("ns1"), "veth-ns2", &["10.66.78.1/24"]);
    assert_peers(sb, Some("ns1"), "veth-ns2", Some("ns2"), "veth-ns1");

    assert_up(sb, Some("ns2"), "lo");
    assert_up(sb, Some("ns2"), "veth-ns1");
    assert_addrs(sb, Some("ns2"), "veth-ns1", &["10.66.78.2/24"]);

    assert_eq!(
        sb.tagged(),
        vec![
            "host/veth1=plumb:seed",
            "ns1/eth1000=plumb:seed",
            "ns1/lo=plumb:seed",
            "ns1/veth-ns2=plumb:seed",
            "ns2/lo=plumb:seed",
            "ns2/veth-ns1=plumb:seed",
        ],
        "interfaces tagged plumb:* (every plumb-made interface, and each namespace's lo)"
    );
}

/// Asserts that the star lab exists as `examples/star.toml` describes it: bridge `plumb0` with
/// 10.88.0.1/24 and one port per member; members web, db, cache with eth0 at .2, .3, .4 in
/// member order and a default route via 10.88.0.1.
pub fn assert_star_built(sb: &Sandbox) {
    assert_eq!(sb.netns_list(), vec!["cache", "db", "web"], "ip netns list");
    let bridge = must_link(sb, None, "plumb0");
    assert_eq!(
        bridge["linkinfo"]["info_kind"], "bridge",
        "plumb0 is not a bridge: {bridge}"
    );
    assert!(has_flag(&bridge, "UP"), "plumb0 is not up: {bridge}");
    assert_addrs(sb, None, "plumb0", &["10.88.0.1/24"]);
    let ports: Vec<Value> = sb
        .links(None)
        .into_iter()
        .filter(|l| l["master"] == "plumb0")
        .collect();
    assert_eq!(ports.len(), 3, "plumb0 should have 3 ports: {ports:#?}");
    for (i, member) in ["web", "db", "cache"].into_iter().enumerate() {
        let addr = format!("10.88.0.{}/24", i + 2);
        assert_up(sb, Some(member), "eth0");
        assert_up(sb, Some(member), "lo");
        assert_addrs(sb, Some(member), "eth0", &[addr.as_str()]);
        let eth0 = must_link(sb, Some(member), "eth0");
        assert!(
            ports.iter().any(|p| p["ifindex"] == eth0["link_index"]),
            "{member}'s eth0 peer is not a port of plumb0: {eth0}"
        );
        let default = sb.default_route(Some(member)).unwrap_or_else(|| {
            panic!(
                "{member} has no default route: {:?}",
                sb.routes(Some(member))
            )
        });
        assert_eq!(
            default["gateway"], "10.88.0.1",
            "{member}'s default route: {default}"
        );
        assert_eq!(
            default["dev"], "eth0",
            "{member}'s default route: {default}"
        );
    }
    for port in &ports {
        assert!(has_flag(port, "UP"), "bridge port is down: {port}");
        assert_eq!(
            port["ifalias"].as_str().and_then(plumb_testkit::alias_tag),
            Some("plumb:star"),
            "bridge port is not tagged: {port}"
        );
    }
}

/// True if `value` holds the string `needle` as a key or a string value anywhere.
pub fn json_mentions(value: &Value, needle: &str) -> bool {
    match value {
        Value::String(s) => s == needle,
        Value::Array(items) => items.iter().any(|v| json_mentions(v, needle)),
        Value::Object(map) => map
            .iter()
            .any(|(k, v)| k == needle || json_mentions(v, needle)),
        _ => false,
    }
}

/// The innermost object that describes `lab`: one with a string value equal to `lab` (such as
/// `{"name": "seed", ...}`), or the value under a key equal to `lab`.
pub fn find_lab_entry<'a>(value: &'a Value, lab: &str) -> Option<&'a Value> {
    match value {
        Value::Array(items) => items.iter().find_map(|v| find_lab_entry(v, lab)),
        Value::Object(map) => {
            if let Some(v) = map.get(lab) {
                return Some(v);
            }
            if map.values().any(|v| v == lab) {
                return Some(value);
            }
            map.values().find_map(|v| find_lab_entry(v, lab))
        }
        _ => None,
    }
}

/// True if `value` has, at any depth, a key containing one of `key_parts` whose value is the
/// number `n` or an array of `n` items.
pub fn json_has_count(value: &Value, key_parts: &[&str], n: u64) -> bool {
    match value {
        Value::Array(items) => items.iter().any(|v| json_has_count(v, key_parts, n)),
        Value::Object(map) => map.iter().any(|(k, v)| {
            (key_parts.iter().any(|p| k.contains(p))
                && (v.as_u64() == Some(n) || v.as_array().is_some_and(|a| a.len() as u64 == n)))
                || json_has_count(v, key_parts, n)
        }),
        _ => false,
    }
}

/// The steps of `plumb up FILE --dry-run`: its stdout lines, minus blank and `#` comment lines.
/// Also asserts that the dry run exits 1 (there are changes) or 0 (nothing to do).
pub fn dry_run_steps(sb: &Sandbox, file: &str) -> Vec<String> {
    let out = sb.plumb(&["up", file, "--dry-run"]);
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "up --dry-run\n{}",
        describe(&out)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect()
}

/// The names and addresses in a plan step written as an `ip` command: its words minus `ip`'s
/// own keywords and options.
pub fn step_objects(step: &str) -> Vec<String> {
    const KEYWORDS: &[&str] = &[
        "ip", "-n", "-6", "-4", "link", "set", "add", "del", "delete", "up", "down", "type",
        "veth", "bridge", "peer", "name", "netns", "addr", "address", "dev", "route", "via",
        "master", "nomaster", "alias", "default", "host", "mtu", "group", "exec", "sysctl", "-w",
        "on", "off", "table", "to", "replace",
    ];
    step.split_whitespace()
        .filter(|w| !KEYWORDS.contains(w) && w.len() > 1)
        .map(|w| w.trim_matches(|c| c == '"' || c == '\'').to_string())
        .collect()
}

/// Parses stdout as JSON, panicking with the output if it is not.
pub fn stdout_json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e})\n{}", describe(out)))
}

/// Every `LINE:COL` that follows `file_name:` in `text`, as numbers.
pub fn file_positions(text: &str, file_name: &str) -> Vec<(u32, u32)> {
    let pat = format!("{file_name}:");
    let mut out = Vec::new();
    for (i, _) in text.match_indices(&pat) {
        let rest = &text[i + pat.len()..];
        let mut parts = rest.splitn(3, ':');
        let line = parts.next().and_then(|l| l.parse::<u32>().ok());
        let col = parts.next().map(|c| {
            c.chars()
                .take_while(|ch| ch.is_ascii_digit())
                .collect::<String>()
        });
        if let (Some(line), Some(col)) = (line, col.and_then(|c| c.parse::<u32>().ok())) {
            out.push((line, col));
        }
    }
    out
}

/// Brings `file` up twice: the second `up` must say the lab is up to date and leave the kernel
/// state exactly as the first left it, interface indexes included.
pub fn assert_second_up_changes_nothing(sb: &Sandbox, file: &str) {
    sb.plumb_ok(&["up", file]);
    let before = sb.settled_snapshot();
    let out = sb.plumb(&["up", file]);
    assert_exit(&out, 0, "second plumb up");
    assert!(
        text(&out).to_lowercase().contains("up to date"),
        "second up should say the lab is up to date\n{}",
        describe(&out)
    );
    let after = sb.settled_snapshot();
    assert!(
        before == after,
        "the second up changed the kernel state (ifindexes included)\n{}",
        plumb_testkit::line_diff(&before, &after)
    );
}
