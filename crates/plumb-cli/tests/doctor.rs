//! `plumb doctor`: one test per check that builds the fault in a sandbox and finds it in the
//! JSON report (check, severity, object, evidence read from the kernel), and a healthy lab
//! with no findings at all. Faults are made with `ip`, `nft`, `sysctl` and python inside the
//! sandbox; nothing touches the machine's own network. The neighbour test never changes the
//! kernel's limits: it fills the shared table to about 90% of `gc_thresh3` with fresh entries
//! and removes them.
//!
//! Needs `nft`, `python3` and `sysctl` (procps) besides what the test kit needs.

mod common;

use common::*;
use plumb_testkit::{describe, Sandbox};
use serde_json::Value;

/// Two members on a bridge and a routed chain a - r - b, every node with a firewall,
/// forwarding where it routes, reverse-path filtering off where paths are asymmetric.
const HEALTHY: &str = r#"name = "good"

[networks.plumb0]
subnet = "10.88.0.0/24"
members = ["web", "db"]

[nodes.web.firewall]
ingress = "deny"
allow = ["icmp"]

[nodes.db.firewall]
ingress = "deny"
allow = ["icmp"]

[nodes.a]
routes = [{ to = "10.3.0.0/24", via = "10.2.0.1" }]
[nodes.a.firewall]
ingress = "deny"
allow = ["icmp"]
[nodes.a.interfaces.e1]
addresses = ["10.1.0.2/24"]
[nodes.a.interfaces.e2]
addresses = ["10.2.0.2/24"]

[nodes.r]
sysctls = { "net.ipv4.ip_forward" = 1, "net.ipv4.conf.all.rp_filter" = 0, "net.ipv4.conf.default.rp_filter" = 0 }
[nodes.r.firewall]
ingress = "deny"
allow = ["icmp"]
[nodes.r.interfaces.x1]
addresses = ["10.1.0.1/24"]
[nodes.r.interfaces.x2]
addresses = ["10.2.0.1/24"]
[nodes.r.interfaces.y]
addresses = ["10.3.0.1/24"]

[nodes.b]
routes = [{ to = "default", via = "10.3.0.1" }]
[nodes.b.firewall]
ingress = "deny"
allow = ["icmp"]
[nodes.b.interfaces.eth0]
addresses = ["10.3.0.2/24"]

[[links]]
endpoints = ["a:e1", "r:x1"]
[[links]]
endpoints = ["a:e2", "r:x2"]
[[links]]
endpoints = ["r:y", "b:eth0"]
"#;

/// A plain star without firewalls.
const STAR: &str = r#"name = "star"

[networks.plumb0]
subnet = "10.88.0.0/24"
members = ["web", "db"]
"#;

/// A sandbox with `lab` up; returns the sandbox and the file's path.
fn with_lab(lab: &str) -> (Sandbox, String) {
    let sb = sandbox();
    let path = sb.write_file("lab.toml", lab);
    let path = path.to_string_lossy().into_owned();
    sb.plumb_ok(&["up", &path]);
    (sb, path)
}

/// `plumb doctor ARGS --json`, with its exit code checked; the parsed report.
fn doctor(sb: &Sandbox, args: &[&str], code: i32) -> Value {
    let mut argv = vec!["doctor"];
    argv.extend_from_slice(args);
    argv.push("--json");
    let out = sb.plumb(&argv);
    assert_exit(&out, code, &format!("plumb {argv:?}"));
    let v: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("doctor printed invalid JSON ({e})\n{}", describe(&out)));
    assert_matches_schema(&v);
    v
}

/// Panics with every error unless `v` matches `docs/schema/doctor.v1.json`.
fn assert_matches_schema(v: &Value) {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/schema/doctor.v1.json"
    );
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {path}: {e}")),
    )
    .expect("the schema is JSON");
    let validator = jsonschema::draft202012::options()
        .build(&schema)
        .expect("a usable schema");
    let errs: Vec<String> = validator
        .iter_errors(v)
        .map(|e| format!("at {}: {e}", e.instance_path()))
        .collect();
    assert!(
        errs.is_empty(),
        "doctor --json does not match doctor.v1.json:\n  {}\n{v:#}",
        errs.join("\n  ")
    );
    let count = |sev: &str| {
        v["findings"]
            .as_array()
            .expect("findings")
            .iter()
            .filter(|f| f["severity"] == sev)
            .count() as u64
    };
    assert_eq!(
        (num(&v["errors"]), num(&v["warnings"]), num(&v["infos"])),
        (count("error"), count("warning"), count("info")),
        "the counts do not match the findings: {v:#}"
    );
}

/// The findings of `check`.
fn of(report: &Value, check: &str) -> Vec<Value> {
    report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter(|f| f["check"] == check)
        .cloned()
        .collect()
}

/// The one finding of `check` on `object`; panics listing the report otherwise.
fn finding(report: &Value, check: &str, object: &str) -> Value {
    let found: Vec<Value> = of(report, check)
        .into_iter()
        .filter(|f| f["object"] == object)
        .collect();
    assert_eq!(
        found.len(),
        1,
        "expected one {check} finding on {object}:\n{report:#}"
    );
    let f = found.into_iter().next().expect("one");
    for key in ["summary", "why", "fix"] {
        assert!(
            f[key].as_str().is_some_and(|s| !s.is_empty()),
            "{key} is empty: {f:#}"
        );
    }
    f
}

fn num(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a number: {v}"))
}

#[test]
fn doctor_healthy_lab_has_no_findings() {
    let (sb, path) = with_lab(HEALTHY);
    for args in [vec![], vec![path.as_str()], vec!["good"]] {
        let r = doctor(&sb, &args, 0);
        assert_eq!(
            r["findings"],
            Value::Array(vec![]),
            "doctor {args:?}: {r:#}"
        );
        assert_eq!(r["errors"], 0);
    }
    let text = sb.plumb_ok(&["doctor"]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("0 error(s), 0 warning(s), 0 info"), "{text}");
    // Inside a user namespace pid 1's namespace is out of reach: doctor says where the limits
    // came from instead.
    assert!(text.contains("gc_thresh1/2/3"), "{text}");
}

/// `ip -s ntable show name arp_cache`: (gc_thresh3, entries), read by iproute2.
fn arp_table(sb: &Sandbox) -> (u64, u64) {
    let out = sb.run_ok(&["ip", "-s", "ntable", "show", "name", "arp_cache"]);
    let word_after = |w: &str| -> u64 {
        let mut it = out.split_whitespace();
        while let Some(x) = it.next() {
            if x == w {
                return it.next().and_then(|n| n.parse().ok()).unwrap_or_else(|| {
                    panic!("no number after {w} in `ip -s ntable show`:\n{out}")
                });
            }
        }
        panic!("no {w} in `ip -s ntable show`:\n{out}")
    };
    (word_after("thresh3"), word_after("entries"))
}

#[test]
fn doctor_neighbour_table_near_gc_thresh3_is_an_error() {
    let (sb, _) = with_lab(STAR);
    let (thresh3, before) = arp_table(&sb);
    let target = thresh3 * 9 / 10;
    assert!(
        before < target,
        "the machine's ARP table already holds {before} of {thresh3} entries: cannot fill it safely"
    );
    let add = target - before;
    // Fresh STALE entries (not permanent: those are exempt from the limit) in web only.
    let batch: String = (0..add)
        .map(|i| {
            format!(
                "neigh add 10.77.{}.{} lladdr 02:00:00:00:{:02x}:{:02x} dev eth0 nud stale\n",
                i / 250,
                i % 250 + 1,
                i / 250,
                i % 250
            )
        })
        .collect();
    let file = sb.write_file("neigh.batch", &batch);
    let file = file.to_string_lossy().into_owned();
    let filled = sb.run(&["ip", "-n", "web", "-batch", &file]);
    let r = if filled.status.success() {
        Some(doctor(&sb, &[], 1))
    } else {
        None
    };
    // Remove them whatever happened, before asserting anything.
    sb.run_ok(&["ip", "-n", "web", "neigh", "flush", "dev", "eth0"]);
    assert!(
        filled.status.success(),
        "filling the table failed\n{}",
        describe(&filled)
    );
    let r = r.expect("report");
    let f = finding(&r, "neighbour-table", "ipv4 neighbour table");
    assert_eq!(f["severity"], "error", "{f:#}");
    let entries = num(&f["evidence"]["entries"]);
    assert!(
        entries >= target - 20,
        "{entries} entries reported, {target} made: {f:#}"
    );
    assert_eq!(num(&f["evidence"]["gc_thresh3"]), thresh3, "{f:#}");
    assert!(
        num(&f["evidence"]["entries_in_namespaces_seen"]) >= add,
        "{f:#}"
    );
    // Every limit source is named, and here (a user namespace) pid 1's is out of reach.
    let t = &r["neighbour_tables"][0];
    assert_ne!(t["source"], "root_namespace", "{t:#}");
    let (_, after) = arp_table(&sb);
    assert!(
        after < before + 20,
        "entries left behind: {after} (before: {before})"
    );
}

#[test]
fn doctor_conntrack_table_filling_is_a_warning() {
    let (sb, _) = with_lab(STAR);
    let max: u64 = sb
        .run_ok(&[
            "ip",
            "netns",
            "exec",
            "web",
            "cat",
            "/proc/sys/net/netfilter/nf_conntrack_max",
        ])
        .trim()
        .parse()
        .expect("nf_conntrack_max");
    // 78% of the maximum, in web only: a rule that needs conntrack, then one UDP datagram per
    // flow to local addresses (unreplied flows live 30 s).
    let flows = max * 78 / 100;
    sb.run_ok(&["ip", "netns", "exec", "web", "nft", "add table ip cttest; add chain ip cttest out { type filter hook output priority 0; }; add rule ip cttest out ct state new counter"]);
    let script = format!(
        "import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\nfor i in range({flows}):\n    try:\n        s.sendto(b'x', ('127.0.%d.%d' % (i // 60000 // 250, i // 60000 % 250 + 1), 1024 + i % 60000))\n    except OSError:\n        pass\n"
    );
    sb.run_ok(&["ip", "netns", "exec", "web", "python3", "-c", &script]);
    let count: u64 = sb
        .run_ok(&[
            "ip",
            "netns",
            "exec",
            "web",
            "cat",
            "/proc/sys/net/netfilter/nf_conntrack_count",
        ])
        .trim()
        .parse()
        .expect("count");
    let r = doctor(&sb, &[], 0);
    let f = finding(&r, "conntrack", "web");
    assert_eq!(f["severity"], "warning", "{f:#}");
    assert_eq!(num(&f["evidence"]["nf_conntrack_max"]), max);
    let seen = num(&f["evidence"]["nf_conntrack_count"]);
    assert!(
        seen * 100 / max >= 75 && seen <= count + 100,
        "count {seen}, oracle {count}: {f:#}"
    );
    assert_eq!(f["lab"], "star");
}

#[test]
fn doctor_forwarding_off_on_a_router_is_an_error() {
    let (sb, path) = with_lab(HEALTHY);
    sb.run_ok(&[
        "ip",
        "netns",
        "exec",
        "r",
        "sysctl",
        "-qw",
        "net.ipv4.ip_forward=0",
    ]);
    // From the kernel alone (whole machine), and against the file, once.
    for args in [vec![], vec![path.as_str()]] {
        let r = doctor(&sb, &args, 1);
        let f = finding(&r, "forwarding-off", "r");
        assert_eq!(f["severity"], "error", "{f:#}");
        assert_eq!(f["evidence"]["sysctl"], "net.ipv4.ip_forward", "{f:#}");
        assert_eq!(f["lab"], "good");
        // a's route to b, and b's default route, both through r.
        assert_eq!(
            f["evidence"]["route_0"], "a: 10.3.0.0/24 via 10.2.0.1",
            "{f:#}"
        );
        assert_eq!(f["evidence"]["route_1"], "b: default via 10.3.0.1", "{f:#}");
    }
}

#[test]
fn doctor_strict_rp_filter_on_an_asymmetric_path_is_an_error() {
    let (sb, _) = with_lab(HEALTHY);
    sb.run_ok(&[
        "ip",
        "netns",
        "exec",
        "r",
        "sysctl",
        "-qw",
        "net.ipv4.conf.all.rp_filter=1",
    ]);
    let r = doctor(&sb, &["good"], 1);
    // a sends to b through x2, from its address on e1 too; r's way back to e1 is x1.
    let f = finding(&r, "rp-filter", "r/x2");
    assert_eq!(f["severity"], "error");
    assert_eq!(num(&f["evidence"]["rp_filter_all"]), 1);
    assert_eq!(f["evidence"]["route_back_through"], "x1", "{f:#}");
}

#[test]
fn doctor_bridge_netfilter_with_a_foreign_table_is_a_warning() {
    let (sb, _) = with_lab(STAR);
    sb.run_ok(&["sysctl", "-qw", "net.bridge.bridge-nf-call-iptables=1"]);
    sb.run_ok(&[
        "nft",
        "add table ip f; add chain ip f fw { type filter hook forward priority 0; policy accept; }",
    ]);
    let r = doctor(&sb, &[], 0);
    let f = finding(&r, "bridge-netfilter", "host");
    assert_eq!(f["severity"], "warning", "{f:#}");
    assert_eq!(num(&f["evidence"]["bridge-nf-call-iptables"]), 1);
    assert_eq!(f["evidence"]["foreign_tables"], "ip f");
}

#[test]
fn doctor_mtu_mismatch_on_a_veth_is_a_warning() {
    let (sb, _) = with_lab(STAR);
    sb.run_ok(&["ip", "-n", "web", "link", "set", "eth0", "mtu", "1400"]);
    let r = doctor(&sb, &["star"], 0);
    let f = of(&r, "mtu-mismatch");
    assert_eq!(f.len(), 1, "{r:#}");
    let ev = f[0]["evidence"].as_object().expect("evidence");
    let mut mtus: Vec<u64> = ev
        .iter()
        .filter(|(k, _)| k.starts_with("mtu "))
        .map(|(_, v)| num(v))
        .collect();
    mtus.sort();
    assert_eq!(mtus, vec![1400, 1500], "{f:#?}");
    assert!(ev.contains_key("mtu web/eth0"), "{f:#?}");
    // A bridge port with another MTU than its bridge (or than the others: the kernel may
    // lower the bridge to its smallest port); what doctor reports is what `ip` shows.
    let port = sb
        .links(None)
        .into_iter()
        .find(|l| l["master"] == "plumb0")
        .and_then(|l| l["ifname"].as_str().map(str::to_owned))
        .expect("a port of plumb0");
    sb.run_ok(&["ip", "link", "set", &port, "mtu", "1300"]);
    let links = sb.links(None);
    let bridge_mtu = links
        .iter()
        .find(|l| l["ifname"] == "plumb0")
        .map(|l| num(&l["mtu"]))
        .expect("plumb0");
    let differing: Vec<String> = links
        .iter()
        .filter(|l| l["master"] == "plumb0" && num(&l["mtu"]) != bridge_mtu)
        .map(|l| format!("{}={}", l["ifname"].as_str().expect("name"), num(&l["mtu"])))
        .collect();
    assert!(
        !differing.is_empty(),
        "the ports all have the bridge's MTU: {links:#?}"
    );
    let r = doctor(&sb, &["star"], 0);
    let f = finding(&r, "mtu-mismatch", "host/plumb0");
    assert_eq!(num(&f["evidence"]["bridge_mtu"]), bridge_mtu, "{f:#}");
    assert_eq!(
        f["evidence"]["ports_differing"],
        differing.join(" "),
        "{f:#}"
    );
}

#[test]
fn doctor_interface_down_that_the_lab_declares_up_is_an_error() {
    let (sb, path) = with_lab(STAR);
    sb.run_ok(&["ip", "-n", "db", "link", "set", "eth0", "down"]);
    let r = doctor(&sb, &[&path], 1);
    let f = finding(&r, "interface-down", "db/eth0");
    assert_eq!(f["severity"], "error");
    assert_eq!(f["lab"], "star");
}

#[test]
fn doctor_veth_whose_peer_left_every_named_namespace_is_a_warning() {
    let (sb, _) = with_lab(STAR);
    // db's namespace leaves /run/netns but stays alive through a bind mount elsewhere: for
    // `plumb doctor star` (the lab's namespaces, which are named), the lab's host end of its
    // veth now leads nowhere. A foreign veth into such a namespace (a container's, usually) is
    // only worth knowing.
    sb.sh_ok("touch /run/held && mount --bind /run/netns/db /run/held && ip netns del db");
    sb.sh_ok("ip netns add hidden && ip link add va type veth peer name vb netns hidden && touch /run/held2 && mount --bind /run/netns/hidden /run/held2 && ip netns del hidden");
    let r = doctor(&sb, &["star"], 0);
    let lab_ends: Vec<Value> = of(&r, "veth-peer-gone")
        .into_iter()
        .filter(|f| f["lab"] == "star")
        .collect();
    assert_eq!(lab_ends.len(), 1, "{r:#}");
    assert_eq!(lab_ends[0]["severity"], "warning", "{r:#}");
    let obj = lab_ends[0]["object"].as_str().expect("object");
    assert!(obj.starts_with("host/"), "{obj}");
    assert!(lab_ends[0]["evidence"]["peer_netnsid"] != "none", "{r:#}");
    let foreign = finding(&r, "veth-peer-gone", "host/va");
    assert_eq!(foreign["severity"], "info", "{foreign:#}");
}

#[test]
fn doctor_of_the_whole_machine_follows_veths_into_namespaces_outside_run_netns() {
    let sb = sandbox();
    // A namespace held only by a process (as a container's is), a veth into it whose ends
    // disagree on the MTU, and one held only by a bind mount outside /run/netns.
    let mut holder = spawn_ready(&sb, "exec unshare --net sh -c 'echo ready; exec sleep 600'");
    let pid = holder.id().to_string();
    sb.run_ok(&[
        "ip", "link", "add", "va", "mtu", "1400", "type", "veth", "peer", "name", "eth0", "netns",
        &pid,
    ]);
    sb.sh_ok("ip netns add hidden && ip link add vb type veth peer name eth1 netns hidden && touch /run/held && mount --bind /run/netns/hidden /run/held && ip netns del hidden");
    let inode = sb.sh_ok("stat -L -c %i /run/held").trim().to_string();
    let r = doctor(&sb, &[], 0);
    // Both far ends are found: no lost peer; the MTU mismatch names the process's namespace.
    assert!(of(&r, "veth-peer-gone").is_empty(), "{r:#}");
    let f = finding(&r, "mtu-mismatch", &format!("host/va <-> pid:{pid}/eth0"));
    assert_eq!(
        num(&f["evidence"][format!("mtu pid:{pid}/eth0")]),
        1500,
        "{f:#}"
    );
    assert_eq!(num(&f["evidence"]["mtu host/va"]), 1400, "{f:#}");
    // Neither is leaked: something other than a name holds each.
    assert!(of(&r, "leaked-namespace").is_empty(), "{r:#}");
    // A fault in the bind-mounted one is seen too, under its label.
    sb.run_ok(&["ip", "link", "set", "vb", "mtu", "1300"]);
    let r = doctor(&sb, &[], 0);
    finding(
        &r,
        "mtu-mismatch",
        &format!("host/vb <-> net:[{inode}]/eth1"),
    );
    let _ = holder.kill();
    let _ = holder.wait();
}

#[test]
fn doctor_empty_namespace_without_process_is_leaked() {
    let sb = sandbox();
    sb.run_ok(&["ip", "netns", "add", "empty"]);
    let r = doctor(&sb, &[], 0);
    let f = finding(&r, "leaked-namespace", "empty");
    assert_eq!(f["severity"], "warning");
    assert_eq!(num(&f["evidence"]["interfaces"]), 1);
}

#[test]
fn doctor_empty_namespace_held_by_an_open_descriptor_is_not_leaked() {
    let sb = sandbox();
    sb.run_ok(&["ip", "netns", "add", "held"]);
    // A process keeps the namespace open without being in it (as a runtime holding it does).
    let mut holder = spawn_ready(&sb, "exec 7</run/netns/held; echo ready; exec sleep 600");
    let r = doctor(&sb, &[], 0);
    let _ = holder.kill();
    let _ = holder.wait();
    assert!(
        of(&r, "leaked-namespace").is_empty(),
        "a namespace someone holds open is in use: {r:#}"
    );
}

#[test]
fn doctor_duplicate_address_on_one_bridge_is_an_error() {
    let (sb, _) = with_lab(STAR);
    let db = sb.ipv4_addrs(Some("db"), "eth0");
    assert_eq!(db.len(), 1, "{db:?}");
    sb.run_ok(&["ip", "-n", "web", "addr", "add", &db[0], "dev", "eth0"]);
    let r = doctor(&sb, &[], 1);
    let f = finding(&r, "duplicate-address", "host/plumb0");
    assert_eq!(f["severity"], "error");
    let ip = db[0].split('/').next().expect("ip");
    assert_eq!(f["evidence"]["address"], ip);
    assert_eq!(num(&f["evidence"]["holders"]), 2);
}

#[test]
fn doctor_overlapping_subnets_between_labs_and_host_routes_are_warnings() {
    let (sb, _) = with_lab(STAR);
    let other = sb.write_file(
        "other.toml",
        "name = \"other\"\n[networks.other0]\nsubnet = \"10.88.0.128/25\"\nmembers = [\"x\"]\n",
    );
    sb.plumb_ok(&["up", &other.to_string_lossy()]);
    sb.sh_ok("ip link add fa type veth peer name fb && ip link set fa up && ip link set fb up && ip route add 10.88.0.0/16 dev fa");
    let r = doctor(&sb, &[], 0);
    let f = of(&r, "overlapping-subnets");
    let between = f
        .iter()
        .find(|f| f["evidence"]["lab_b"].is_string())
        .unwrap_or_else(|| panic!("no overlap between labs: {r:#}"));
    let mut labs = [
        between["evidence"]["lab_a"].as_str().expect("a"),
        between["evidence"]["lab_b"].as_str().expect("b"),
    ];
    labs.sort();
    assert_eq!(labs, ["other", "star"]);
    // One finding per lab the route overlaps.
    let mut host: Vec<&Value> = f
        .iter()
        .filter(|f| f["object"] == "host route 10.88.0.0/16")
        .collect();
    host.sort_by_key(|f| f["lab"].as_str().map(str::to_owned));
    assert_eq!(host.len(), 2, "{r:#}");
    assert_eq!(
        (host[0]["lab"].as_str(), host[1]["lab"].as_str()),
        (Some("other"), Some("star"))
    );
    assert!(
        host.iter().all(|h| h["evidence"]["host_route_dev"] == "fa"),
        "{host:#?}"
    );
}

#[test]
fn doctor_member_without_default_route_is_an_error() {
    let (sb, path) = with_lab(STAR);
    assert!(
        sb.default_route(Some("web")).is_some(),
        "the star gives web a default route"
    );
    sb.run_ok(&["ip", "-n", "web", "route", "del", "default"]);
    let r = doctor(&sb, &[&path], 1);
    let f = finding(&r, "no-default-route", "web");
    assert_eq!(f["evidence"]["expected"], "default via 10.88.0.1", "{f:#}");
}

#[test]
fn doctor_foreign_forward_drop_chain_is_an_error() {
    let (sb, _) = with_lab(STAR);
    sb.run_ok(&["nft", "add table ip guard; add chain ip guard gate { type filter hook forward priority 0; policy drop; }"]);
    let r = doctor(&sb, &[], 1);
    let f = finding(&r, "foreign-drop-chain", "host: ip guard/gate");
    assert_eq!(f["evidence"]["policy"], "drop");
    assert_eq!(f["lab"], "star");
}

#[test]
fn doctor_lab_nodes_without_firewall_are_info() {
    let (sb, _) = with_lab(STAR);
    let r = doctor(&sb, &["star"], 0);
    let f = finding(&r, "no-firewall", "lab star");
    assert_eq!(f["severity"], "info");
    assert_eq!(num(&f["evidence"]["nodes_without_firewall"]), 2, "{f:#}");
    assert_eq!(f["evidence"]["nodes"], "db web", "{f:#}");
    // A node that gets a firewall is no longer listed.
    sb.run_ok(&["ip", "netns", "exec", "web", "nft", "add table inet mine"]);
    let r = doctor(&sb, &["star"], 0);
    let f = finding(&r, "no-firewall", "lab star");
    assert_eq!(f["evidence"]["nodes"], "db", "{f:#}");
}

#[test]
fn doctor_half_built_lab_is_an_error_listing_what_up_would_do() {
    let (sb, path) = with_lab(STAR);
    sb.run_ok(&["ip", "netns", "del", "db"]);
    let r = doctor(&sb, &[&path], 1);
    let f = finding(&r, "lab-incomplete", "star");
    assert!(num(&f["evidence"]["pending_steps"]) >= 2, "{f:#}");
    assert_eq!(num(&f["evidence"]["pending create-netns"]), 1, "{f:#}");
    let steps = f["evidence"]["first_steps"].as_str().expect("steps");
    assert!(steps.contains("ip netns add db"), "{steps}");
    // The same lab named without its file: nothing to compare with, and no error for it.
    let by_name = doctor(&sb, &["star"], 0);
    assert!(of(&by_name, "lab-incomplete").is_empty(), "{by_name:#}");
}

#[test]
fn doctor_unknown_lab_is_an_error_before_anything() {
    let sb = sandbox();
    let out = sb.plumb(&["doctor", "nosuchlab"]);
    assert_exit(&out, 2, "plumb doctor nosuchlab");
    assert!(
        text(&out).contains("lab `nosuchlab` is not here"),
        "{}",
        describe(&out)
    );
}

#[test]
fn doctor_reads_the_neighbour_limits_in_pid_1s_namespace_when_it_may_else_from_the_dump() {
    // As root in a fresh network + mount namespace (no user namespace), a thread may enter
    // pid 1's network namespace: doctor reads the limits there (read-only) instead of
    // falling back. Tests run as root (see the README); a failure to sandbox fails the test.
    let bin = env!("CARGO_BIN_EXE_plumb");
    let out = std::process::Command::new("unshare")
        .args([
            "--net",
            "--mount",
            "--propagation",
            "private",
            "--",
            "sh",
            "-c",
        ])
        .arg(format!(
            "mount -t tmpfs -o mode=0755 tmpfs /run && exec {bin} doctor --json"
        ))
        .stdin(std::process::Stdio::null())
        .output()
        .expect("cannot spawn unshare");
    assert!(
        out.status.code().is_some_and(|c| c == 0 || c == 1),
        "plumb doctor in a root network namespace sandbox (needs root)\n{}",
        describe(&out)
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_matches_schema(&v);
    let want: u64 = std::fs::read_to_string("/proc/sys/net/ipv4/neigh/default/gc_thresh3")
        .expect("the test runs in the root namespace, where gc_thresh3 is visible")
        .trim()
        .parse()
        .expect("a number");
    let t = &v["neighbour_tables"][0];
    assert_eq!(t["family"], "ipv4");
    // Where pid 1's namespace may be opened (a plain root machine), doctor reads the limits
    // there; where it may not (some containers deny even root access to pid 1's namespace
    // files), it falls back to the neighbour-table dump. Either way the values are the root
    // namespace's.
    let reachable = std::fs::File::open("/proc/1/ns/net").is_ok();
    let source = if reachable {
        "root_namespace"
    } else {
        "neighbour_table_dump"
    };
    assert_eq!(
        t["source"], source,
        "pid 1's namespace reachable: {reachable}\n{v:#}"
    );
    assert_eq!(num(&t["gc_thresh3"]), want);
}

#[test]
fn doctor_forwarding_off_on_a_nat_gateway_is_an_error_and_without_nat_is_not() {
    // With NAT, the lab expects egress through the host: forwarding off there is an error once
    // the host has a way out (a default route into the sandbox's "internet").
    let sb = sandbox();
    sb.plumb_ok(&["up", &example("egress.toml")]);
    sb.sh_ok("ip route add default via 203.0.113.2 && sysctl -qw net.ipv4.ip_forward=0");
    let r = doctor(&sb, &[], 1);
    let f = finding(&r, "forwarding-off", "host");
    assert_eq!(f["lab"], "egress", "{f:#}");
    let routes: Vec<&str> = f["evidence"]
        .as_object()
        .expect("evidence")
        .iter()
        .filter(|(k, _)| k.starts_with("route_"))
        .filter_map(|(_, v)| v.as_str())
        .collect();
    assert!(routes.contains(&"web: default via 10.90.0.1"), "{f:#}");
    // Without NAT, members' default routes through the host promise no egress.
    let (sb, _) = with_lab(STAR);
    sb.sh_ok("ip link add up0 type veth peer name up1 && ip addr add 192.0.2.1/24 dev up0 && ip link set up0 up && ip link set up1 up && ip route add default via 192.0.2.2 && sysctl -qw net.ipv4.ip_forward=0");
    let r = doctor(&sb, &[], 0);
    assert!(of(&r, "forwarding-off").is_empty(), "{r:#}");
}
