//! `plumb inspect` and `plumb ns` against a machine built by hand inside a sandbox: two named
//! namespaces, one bind-mounted under Docker's `/run/docker/netns/ID`, one held only by a
//! sleeping process, one held only by an open descriptor; a veth from the sandbox's host into
//! each of them, every one named `eth0` at index 2 on the far side (so indexes alone cannot
//! tell them apart); a bridge with two of the host ends as ports; and a veth between the two
//! named namespaces. Expectations come from `ip`, `stat` and `/proc` run in the sandbox, not
//! from plumb; the JSON is validated against `docs/schema/inspect.v1.json`, the DOT drawn by
//! Graphviz's own `dot` and the SVG parsed as XML by python.

mod common;

use std::collections::BTreeMap;
use std::process::Child;

use common::*;
use plumb_testkit::{describe, Sandbox};
use serde_json::Value;

const DOCKER_ID: &str = "0123456789ab";

/// The machine under test, and the processes that hold two of its namespaces.
struct Machine {
    sb: Sandbox,
    sleeper: Child,
    fd_holder: Child,
}

impl Drop for Machine {
    fn drop(&mut self) {
        let _ = self.sleeper.kill();
        let _ = self.fd_holder.kill();
        let _ = self.sleeper.wait();
        let _ = self.fd_holder.wait();
    }
}

fn sh(sb: &Sandbox, script: &str) -> String {
    let out = sb.output(sb.command(&["bash", "-euc", script]));
    assert_exit(&out, 0, script);
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn build() -> Machine {
    let sb = sandbox();
    sh(
        &sb,
        &format!(
            "ip netns add a; ip netns add b
             mkdir -p /run/docker/netns; touch /run/docker/netns/{DOCKER_ID}
             unshare --net=/run/docker/netns/{DOCKER_ID} true
             ip netns add tmp-fd"
        ),
    );
    // A namespace only a process holds, and one only an open descriptor holds.
    let sleeper = spawn_ready(&sb, "exec unshare --net sh -c 'echo ready; exec sleep 600'");
    let fd_holder = spawn_ready(
        &sb,
        "exec 7</run/netns/tmp-fd; ip netns del tmp-fd; echo ready; exec sleep 600",
    );
    let m = Machine {
        sb,
        sleeper,
        fd_holder,
    };
    let sp = sleeper_pid(&m);
    let fp = m.fd_holder.id();
    sh(
        &m.sb,
        &format!(
            "ip link add h-a type veth peer name eth0 netns a
             ip link add h-b type veth peer name eth0 netns b
             ip link add h-dock type veth peer name eth0 netns /run/docker/netns/{DOCKER_ID}
             ip link add h-proc type veth peer name eth0 netns {sp}
             ip link add h-fd type veth peer name eth0 netns /proc/{fp}/fd/7
             ip link add br0 type bridge
             ip link set h-a master br0; ip link set h-b master br0
             ip addr add 10.9.0.1/24 dev br0; ip link set br0 up
             ip -n a link add ab type veth peer name ba netns b
             ip -n a addr add 10.9.0.2/24 dev eth0"
        ),
    );
    m
}

/// The pid of the `sleep` that holds the process-only namespace (the spawned `nsenter`'s
/// descendant: found by its namespace, which differs from the sandbox's).
fn sleeper_pid(m: &Machine) -> u32 {
    // Other tests' sandboxes run sleeps too: their namespaces are not readable from this one.
    sh(
        &m.sb,
        "me=$(readlink /proc/self/ns/net)
         for p in $(pgrep -x sleep); do
           n=$(readlink /proc/$p/ns/net 2>/dev/null) || continue
           if [ \"$n\" != \"$me\" ]; then echo $p; fi
         done",
    )
    .lines()
    .find_map(|p| p.trim().parse().ok())
    .expect("the sleeping holder of a namespace")
}

fn inode_of(sb: &Sandbox, path: &str) -> u64 {
    sh(sb, &format!("stat -L -c %i {path}"))
        .parse()
        .expect("an inode")
}

fn inspect_json(sb: &Sandbox) -> Value {
    let out = sb.plumb(&["inspect", "--json"]);
    assert_exit(&out, 0, "plumb inspect --json");
    stdout_json(&out)
}

fn by_id(doc: &Value) -> BTreeMap<u64, Value> {
    doc["namespaces"]
        .as_array()
        .expect("namespaces")
        .iter()
        .map(|n| (n["id"].as_u64().expect("id"), n.clone()))
        .collect()
}

fn iface<'a>(ns: &'a Value, name: &str) -> &'a Value {
    ns["interfaces"]
        .as_array()
        .expect("interfaces")
        .iter()
        .find(|i| i["name"] == name)
        .unwrap_or_else(|| panic!("no {name} in {ns:#}"))
}

#[test]
fn inspect_finds_every_namespace_once_and_resolves_every_peer_both_ways() {
    let m = build();
    let sb = &m.sb;
    let doc = inspect_json(sb);
    let ids: Vec<u64> = doc["namespaces"]
        .as_array()
        .expect("namespaces")
        .iter()
        .map(|n| n["id"].as_u64().expect("id"))
        .collect();
    let mut unique = ids.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), ids.len(), "a namespace listed twice: {ids:?}");
    let nss = by_id(&doc);

    let host = inode_of(sb, "/proc/self/ns/net");
    let a = inode_of(sb, "/run/netns/a");
    let b = inode_of(sb, "/run/netns/b");
    let dock = inode_of(sb, &format!("/run/docker/netns/{DOCKER_ID}"));
    let sp = sleeper_pid(&m);
    let proc_ns = inode_of(sb, &format!("/proc/{sp}/ns/net"));
    let fp = m.fd_holder.id();
    let fd_ns = inode_of(sb, &format!("/proc/{fp}/fd/7"));
    let all = [host, a, b, dock, proc_ns, fd_ns];
    let mut distinct = all.to_vec();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(
        distinct.len(),
        6,
        "the six namespaces are distinct: {all:?}"
    );
    for id in all {
        assert!(nss.contains_key(&id), "namespace {id} not found: {doc:#}");
    }
    assert_eq!(nss.len(), 6, "exactly the sandbox's namespaces: {doc:#}");

    // Each has its kernel cookie, and no two share one.
    let mut cookies: Vec<u64> = nss
        .values()
        .map(|n| n["cookie"].as_u64().expect("a cookie (Linux 5.14+)"))
        .collect();
    cookies.sort_unstable();
    cookies.dedup();
    assert_eq!(cookies.len(), 6, "{doc:#}");

    // Holders.
    let kinds = |id: u64| -> Vec<String> {
        nss[&id]["holders"]
            .as_array()
            .expect("holders")
            .iter()
            .map(|h| h["kind"].as_str().expect("kind").to_string())
            .collect()
    };
    assert_eq!(nss[&host]["current"], true);
    assert_eq!(nss[&host]["label"], "host");
    assert_eq!(nss[&a]["label"], "a");
    assert_eq!(kinds(a), ["named"]);
    assert_eq!(nss[&a]["holders"][0]["path"], "/run/netns/a");
    assert_eq!(kinds(dock), ["mount"]);
    assert_eq!(
        nss[&dock]["holders"][0]["path"],
        format!("/run/docker/netns/{DOCKER_ID}")
    );
    assert_eq!(nss[&dock]["label"], format!("docker-sandbox:{DOCKER_ID}"));
    assert_eq!(kinds(proc_ns), ["process"]);
    assert_eq!(nss[&proc_ns]["pids"], serde_json::json!([sp]));
    assert_eq!(nss[&proc_ns]["holders"][0]["comm"], "sleep");
    assert_eq!(kinds(fd_ns), ["fd"]);
    assert_eq!(nss[&fd_ns]["holders"][0]["pid"], fp);
    assert_eq!(nss[&fd_ns]["holders"][0]["fd"], 7);
    assert!(
        nss[&fd_ns]["pids"].as_array().expect("pids").is_empty(),
        "no process is in the descriptor-held namespace"
    );

    // Every host end resolves to eth0 (index 2) in the right namespace, and back.
    for (host_end, far) in [
        ("h-a", a),
        ("h-b", b),
        ("h-dock", dock),
        ("h-proc", proc_ns),
        ("h-fd", fd_ns),
    ] {
        let h = iface(&nss[&host], host_end);
        let p = &h["peer"];
        assert_eq!(p["namespace"], far, "{host_end}: {h:#}");
        assert_eq!(p["name"], "eth0", "{host_end}");
        assert_eq!(p["index"], 2, "{host_end}");
        assert_eq!(p["confirmed"], true, "{host_end}");
        let e = iface(&nss[&far], "eth0");
        assert_eq!(e["index"], 2);
        assert_eq!(e["peer"]["namespace"], host, "eth0 in {far} points back");
        assert_eq!(e["peer"]["name"], host_end);
        assert_eq!(e["peer"]["index"], h["index"]);
        assert_eq!(e["peer"]["confirmed"], true);
        // The kernel's own view: ip's link_index of the far end is the host end's index.
        let ipv = sb.ip_json_in(None, &["-d", "link", "show", host_end]);
        assert_eq!(ipv[0]["ifindex"], h["index"]);
    }
    // Between two named namespaces, neither of them plumb's own.
    let ab = iface(&nss[&a], "ab");
    assert_eq!(ab["peer"]["namespace"], b);
    assert_eq!(ab["peer"]["name"], "ba");
    assert_eq!(ab["peer"]["confirmed"], true);
    assert_eq!(iface(&nss[&b], "ba")["peer"]["namespace"], a);
    // The bridge's ports, and each port's master.
    let br = iface(&nss[&host], "br0");
    assert_eq!(br["kind"], "bridge");
    assert_eq!(br["ports"], serde_json::json!(["h-a", "h-b"]));
    assert_eq!(br["addresses"], serde_json::json!(["10.9.0.1/24"]));
    assert_eq!(iface(&nss[&host], "h-a")["master"], "br0");
    assert_eq!(
        iface(&nss[&a], "eth0")["addresses"],
        serde_json::json!(["10.9.0.2/24"])
    );

    // The JSON matches its published schema.
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../docs/schema/inspect.v1.json"
        ))
        .expect("schema"),
    )
    .expect("schema is JSON");
    let v = jsonschema::draft202012::options()
        .build(&schema)
        .expect("usable schema");
    let errs: Vec<String> = v.iter_errors(&doc).map(|e| e.to_string()).collect();
    assert!(errs.is_empty(), "{errs:#?}\n{doc:#}");
}

#[test]
fn inspect_answers_whose_is_it_in_one_line() {
    let m = build();
    let sb = &m.sb;
    let h_a = sb.ip_json_in(None, &["link", "show", "h-a"])[0]["ifindex"]
        .as_u64()
        .expect("ifindex");
    let out = sb.plumb(&["inspect", "h-a"]);
    assert_exit(&out, 0, "plumb inspect h-a");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("h-a (ifindex {h_a}, host) is cabled to eth0 (ifindex 2) in a (/run/netns/a)")
    );
    let sp = sleeper_pid(&m);
    let h_proc = sb.ip_json_in(None, &["link", "show", "h-proc"])[0]["ifindex"]
        .as_u64()
        .expect("ifindex");
    let out = sb.plumb(&["inspect", &format!("pid:{sp}:eth0")]);
    assert_exit(&out, 0, "plumb inspect pid:PID:eth0");
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with(&format!(
            "eth0 (ifindex 2, pid:{sp}) is cabled to h-proc (ifindex {h_proc}) in host"
        )),
        "{}",
        describe(&out)
    );
    // `plumb exec` takes the same references: Docker's sandbox by its id, a namespace by inode.
    let dock = inode_of(sb, &format!("/run/docker/netns/{DOCKER_ID}"));
    for r in [format!("docker:{DOCKER_ID}"), format!("net:[{dock}]")] {
        let out = sb.plumb(&["exec", &r, "stat", "-L", "-c", "%i", "/proc/self/ns/net"]);
        assert_exit(&out, 0, &format!("plumb exec {r}"));
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            dock.to_string()
        );
    }
    let out = sb.plumb(&["inspect", "nowhere:eth0"]);
    assert_exit(&out, 2, "an unknown namespace");
    assert!(
        text(&out).contains("no network namespace `nowhere`"),
        "{}",
        describe(&out)
    );
}

#[test]
fn inspect_draws_dot_that_graphviz_reads_and_well_formed_svg() {
    let m = build();
    let sb = &m.sb;
    let out = sb.plumb(&["inspect", "--format", "dot"]);
    assert_exit(&out, 0, "plumb inspect --format dot");
    let dot_file = sb.write_file("machine.dot", &String::from_utf8_lossy(&out.stdout));
    let svg_by_graphviz =
        sb.output(sb.command(&["dot", "-Tsvg", dot_file.to_str().expect("path")]));
    assert_exit(&svg_by_graphviz, 0, "Graphviz's dot reads plumb's DOT");
    let dot = String::from_utf8_lossy(&out.stdout);
    for label in ["\"h-a - eth0\"", "\"ab - ba\"", "\"h-fd - eth0\""] {
        assert!(dot.contains(label), "{label} in {dot}");
    }
    let out = sb.plumb(&["inspect", "--format", "svg"]);
    assert_exit(&out, 0, "plumb inspect --format svg");
    let svg = sb.write_file("machine.svg", &String::from_utf8_lossy(&out.stdout));
    let parsed = sb.output(sb.command(&[
        "python3",
        "-c",
        "import sys, xml.etree.ElementTree as E; r = E.parse(sys.argv[1]).getroot(); \
         assert r.tag.endswith('svg'), r.tag; \
         print(sum(1 for t in r.iter() if t.tag.endswith('text') and 'h-a' in ''.join(t.itertext())))",
        svg.to_str().expect("path"),
    ]));
    assert_exit(&parsed, 0, "python parses plumb's SVG");
    let labels: u32 = String::from_utf8_lossy(&parsed.stdout)
        .trim()
        .parse()
        .expect("a count");
    assert!(labels >= 1, "the picture names h-a: {}", describe(&parsed));
}

#[test]
fn ns_link_names_unnamed_namespaces_and_unlink_puts_run_netns_back() {
    let m = build();
    let sb = &m.sb;
    let listing = "ls -lA --time-style=+ /run/netns | tail -n +2; ip netns list";
    let before = sh(sb, listing);
    let out = sb.plumb(&["ns", "link", "--all"]);
    assert_exit(&out, 0, "plumb ns link --all");
    let names = sb.netns_list();
    let sp = sleeper_pid(&m);
    for want in [format!("docker-{DOCKER_ID}"), format!("pid-{sp}")] {
        assert!(
            names.contains(&want),
            "{want} in {names:?}: {}",
            describe(&out)
        );
        // The name is the namespace: its inode is the original's.
        assert_eq!(
            inode_of(sb, &format!("/run/netns/{want}")),
            if want.starts_with("pid") {
                inode_of(sb, &format!("/proc/{sp}/ns/net"))
            } else {
                inode_of(sb, &format!("/run/docker/netns/{DOCKER_ID}"))
            }
        );
    }
    assert_eq!(names.len(), 5, "a, b and the three unnamed ones: {names:?}");
    // `ip netns exec` works on a linked name.
    let e = sb.output(sb.command(&[
        "ip",
        "netns",
        "exec",
        &format!("docker-{DOCKER_ID}"),
        "ip",
        "-j",
        "link",
        "show",
        "eth0",
    ]));
    assert_exit(&e, 0, "ip netns exec on a linked name");
    // A name someone else made is never taken by unlink.
    sh(sb, "ip netns add mine");
    let out = sb.plumb(&["ns", "unlink"]);
    assert_exit(&out, 0, "plumb ns unlink");
    sh(sb, "ip netns del mine");
    assert_eq!(sh(sb, listing), before, "/run/netns as it was");
}

#[test]
fn inspect_lab_limits_the_machine_to_what_a_lab_owns() {
    let m = build();
    let sb = &m.sb;
    sb.plumb_ok(&["up", &example("seed.toml")]);
    let out = sb.plumb(&["inspect", "--lab", "seed", "--json"]);
    assert_exit(&out, 0, "plumb inspect --lab seed --json");
    let doc = stdout_json(&out);
    let labels: Vec<&str> = doc["namespaces"]
        .as_array()
        .expect("namespaces")
        .iter()
        .map(|n| n["label"].as_str().expect("label"))
        .collect();
    assert_eq!(labels, ["host", "ns1", "ns2"]);
    let host_ifaces: Vec<&str> = doc["namespaces"][0]["interfaces"]
        .as_array()
        .expect("interfaces")
        .iter()
        .map(|i| i["name"].as_str().expect("name"))
        .collect();
    assert_eq!(
        host_ifaces,
        ["veth1"],
        "only the lab's interfaces of the host"
    );
    let out = sb.plumb(&["inspect", "--lab", "nolab"]);
    assert_exit(&out, 2, "an unknown lab");
}
