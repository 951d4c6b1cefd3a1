//! The other subcommands: `exec`, `ls`, `show`, `sandbox`, file validation and exit codes.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;
use plumb_testkit::{alias_tag, describe, strip_volatile, Sandbox};
use serde_json::{json, Value};

#[test]
fn exec_ns1_ip_addr_shows_eth1000_address() {
    let sb = sandbox();
    sb.plumb_ok(&["up", &example("seed.toml")]);
    // Operstates settle a little after up: compare the two views once they have.
    settle_carriers(&sb);
    let out = sb.plumb(&["exec", "ns1", "--", "ip", "-j", "addr"]);
    assert_exit(&out, 0, "plumb exec ns1 -- ip -j addr");
    let mut via_plumb = stdout_json(&out);
    assert_eq!(
        sb.ipv4_addrs(Some("ns1"), "eth1000"),
        ["10.66.77.24/24"],
        "the oracle's view of eth1000"
    );
    let eth1000 = via_plumb
        .as_array()
        .and_then(|a| a.iter().find(|l| l["ifname"] == "eth1000"))
        .unwrap_or_else(|| panic!("no eth1000 in exec's view: {via_plumb}"));
    let inet: Vec<String> = eth1000["addr_info"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|a| a["family"] == "inet")
        .map(|a| format!("{}/{}", a["local"].as_str().unwrap_or("?"), a["prefixlen"]))
        .collect();
    assert_eq!(
        inet,
        ["10.66.77.24/24"],
        "eth1000 in exec's view: {eth1000}"
    );
    // Exactly the view `ip netns exec ns1 ip -j addr` has.
    let mut via_ip = sb.ip_json_in(Some("ns1"), &["addr"]);
    strip_volatile(&mut via_plumb);
    strip_volatile(&mut via_ip);
    assert_eq!(
        via_plumb, via_ip,
        "plumb exec ns1 and ip netns exec ns1 differ"
    );
    // The same namespace as `ip netns exec ns1 ...`.
    let oracle = sb.run_ok(&[
        "ip",
        "netns",
        "exec",
        "ns1",
        "readlink",
        "/proc/self/ns/net",
    ]);
    let via_plumb = sb.plumb_ok(&["exec", "ns1", "--", "readlink", "/proc/self/ns/net"]);
    assert_eq!(String::from_utf8_lossy(&via_plumb.stdout), oracle);
}

#[test]
fn exec_command_exit_status_is_passed_through() {
    let sb = sandbox();
    sb.plumb_ok(&["up", &example("seed.toml")]);
    let out = sb.plumb(&["exec", "ns2", "--", "sh", "-c", "exit 7"]);
    assert_exit(&out, 7, "plumb exec ns2 -- sh -c 'exit 7'");
    // A node that does not exist is plumb's error (2), not a status of the command.
    let out = sb.plumb(&["exec", "nosuchnode", "--", "true"]);
    assert_exit(&out, 2, "plumb exec in a missing node");
    assert!(out.stdout.is_empty(), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert!(
        lines.len() == 1
            && lines[0].starts_with("plumb: ")
            && lines[0].contains("/run/netns/nosuchnode"),
        "one error line naming the missing node's namespace\n{}",
        describe(&out)
    );
}

#[test]
fn exec_etc_netns_hosts_is_bind_mounted_like_ip_netns_exec() {
    let sb = sandbox();
    // Shadow /etc with an overlay inside the sandbox's own mount namespace, so /etc/netns can be
    // written without touching the machine's /etc. Refuse if mounts could propagate out.
    let propagation = sb.run_ok(&["findmnt", "-n", "-o", "PROPAGATION", "-T", "/etc"]);
    assert!(
        !propagation.contains("shared"),
        "/etc in the sandbox is a shared mount: {propagation}"
    );
    let dir = sb.dir().to_str().unwrap().to_string();
    sb.sh_ok(&format!(
        "mkdir -p {dir}/etc-up {dir}/etc-work && \
         mount -t overlay overlay -o lowerdir=/etc,upperdir={dir}/etc-up,workdir={dir}/etc-work /etc && \
         mkdir -p /etc/netns/ns1 && echo '10.66.77.25 plumb-marker-host' > /etc/netns/ns1/hosts"
    ));
    assert!(
        !Path::new("/etc/netns/ns1/hosts").exists(),
        "the overlay leaked out of the sandbox"
    );
    sb.plumb_ok(&["up", &example("seed.toml")]);
    let oracle = sb.run_ok(&["ip", "netns", "exec", "ns1", "cat", "/etc/hosts"]);
    assert!(
        oracle.contains("plumb-marker-host"),
        "ip netns exec itself does not see it: {oracle}"
    );
    let out = sb.plumb_ok(&["exec", "ns1", "--", "cat", "/etc/hosts"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        oracle,
        "plumb exec ns1 sees another /etc/hosts"
    );
    // ns2 has no /etc/netns/ns2: it sees the sandbox's own /etc/hosts, as ip netns exec does.
    let own = sb.run_ok(&["cat", "/etc/hosts"]);
    assert_ne!(own, oracle, "the overlay's ns1 file is not ns1's alone");
    assert_eq!(
        sb.run_ok(&["ip", "netns", "exec", "ns2", "cat", "/etc/hosts"]),
        own,
        "ip netns exec ns2 itself"
    );
    let out = sb.plumb_ok(&["exec", "ns2", "--", "cat", "/etc/hosts"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        own,
        "plumb exec ns2 sees another /etc/hosts than ip netns exec ns2"
    );
}

/// What `plumb ls` should count for `lab`, from the oracle's tags: its namespaces (a tagged
/// `lo`), its host interfaces, and its interfaces in namespaces other than `lo`.
fn oracle_counts(sb: &Sandbox, lab: &str) -> LsEntry {
    let tag = format!("=plumb:{lab}");
    let mut e = LsEntry {
        name: lab.to_string(),
        namespaces: 0,
        host_links: 0,
        ns_links: 0,
        interrupted: false,
    };
    for t in sb.tagged() {
        let Some(place) = t.strip_suffix(&tag) else {
            continue;
        };
        let (ns, ifname) = place.split_once('/').expect("NS/IFNAME");
        match (ns, ifname) {
            ("host", _) => e.host_links += 1,
            (_, "lo") => e.namespaces += 1,
            _ => e.ns_links += 1,
        }
    }
    e
}

/// `plumb ls`'s table: (name, namespaces, host interfaces, namespace interfaces, state).
fn ls_table(sb: &Sandbox) -> Vec<(String, u64, u64, u64, String)> {
    let out = sb.plumb(&["ls"]);
    assert_exit(&out, 0, "plumb ls");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let mut lines = stdout.lines();
    let header: Vec<&str> = lines.next().unwrap_or("").split_whitespace().collect();
    assert_eq!(
        header,
        ["LAB", "NAMESPACES", "HOST-IFS", "NS-IFS", "STATE"],
        "{}",
        describe(&out)
    );
    lines
        .map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            assert!(w.len() >= 5, "short row {l:?}");
            let n = |i: usize| -> u64 { w[i].parse().unwrap_or_else(|_| panic!("{l:?}")) };
            (w[0].to_string(), n(1), n(2), n(3), w[4..].join(" "))
        })
        .collect()
}

/// What `plumb show LAB --json` should say about the interfaces of `ns` (`None`: the host,
/// where only the lab's tagged interfaces count), read with `ip -j`: one object per interface
/// with `show`'s fields, sorted by name; `peers` maps an interface to its `node:ifname` peer.
fn oracle_interfaces(
    sb: &Sandbox,
    ns: Option<&str>,
    lab: &str,
    peers: &[(&str, &str)],
) -> Vec<Value> {
    let tag = format!("plumb:{lab}");
    let links = sb.links(ns);
    let addrs = sb.addrs(ns);
    let mut out: Vec<Value> = links
        .iter()
        .filter(|l| ns.is_some() || l["ifalias"].as_str().and_then(alias_tag) == Some(tag.as_str()))
        .map(|l| {
            let name = l["ifname"].as_str().expect("ifname");
            let kind = match l["linkinfo"]["info_kind"].as_str() {
                Some(k) => k.to_string(),
                None if l["link_type"] == "loopback" => "loopback".to_string(),
                None => panic!("an interface of unexpected kind: {l}"),
            };
            let mut addresses: Vec<String> = addrs
                .iter()
                .filter(|a| a["ifname"] == name)
                .flat_map(|a| a["addr_info"].as_array().cloned().unwrap_or_default())
                .map(|a| format!("{}/{}", a["local"].as_str().unwrap_or("?"), a["prefixlen"]))
                .collect();
            addresses.sort();
            let mut ports: Vec<&str> = links
                .iter()
                .filter(|p| p["master"] == name)
                .filter_map(|p| p["ifname"].as_str())
                .collect();
            ports.sort_unstable();
            json!({
                "name": name,
                "index": l["ifindex"],
                "kind": kind,
                "up": has_flag(l, "UP"),
                "lower_up": has_flag(l, "LOWER_UP"),
                // iproute2 prints the operational state in capitals (UP, LOWERLAYERDOWN).
                "state": l["operstate"].as_str().unwrap_or("?").to_lowercase(),
                "mtu": l["mtu"],
                "mac": l["address"],
                "addresses": addresses,
                "peer": peers.iter().find(|(i, _)| *i == name).map(|(_, p)| *p),
                "master": l.get("master").cloned().unwrap_or(Value::Null),
                "ports": ports,
                // `ip -d`: a bridge port's isolation flag.
                "isolated": l["linkinfo"]["info_slave_data"]["isolated"].as_bool().unwrap_or(false),
            })
        })
        .collect();
    out.sort_by_key(|i| i["name"].as_str().unwrap_or_default().to_string());
    out
}

/// The routes of the main tables of `ns` written as `show` writes them (`DST [via GW] [dev
/// DEV]`), sorted; in the host only those through `devs`.
fn oracle_routes(sb: &Sandbox, ns: Option<&str>, devs: &[&str]) -> Vec<String> {
    let mut routes = sb.routes(ns);
    if let Value::Array(v6) = sb.ip_json_in(ns, &["-6", "route", "show"]) {
        routes.extend(v6);
    }
    let mut out: Vec<String> = routes
        .iter()
        .filter(|r| ns.is_some() || devs.iter().any(|d| r["dev"] == *d))
        .map(|r| {
            let mut s = r["dst"].as_str().expect("dst").to_string();
            if let Some(gw) = r["gateway"].as_str() {
                s.push_str(&format!(" via {gw}"));
            }
            if let Some(dev) = r["dev"].as_str() {
                s.push_str(&format!(" dev {dev}"));
            }
            s
        })
        .collect();
    out.sort();
    out
}

/// `show --json`'s interfaces of one node, addresses and ports sorted, interfaces by name.
fn shown_interfaces(node: &Value) -> Vec<Value> {
    let mut ifs: Vec<Value> = node["interfaces"].as_array().cloned().unwrap_or_default();
    for i in &mut ifs {
        for k in ["addresses", "ports"] {
            if let Some(a) = i[k].as_array_mut() {
                a.sort_by_key(|v| v.as_str().unwrap_or_default().to_string());
            }
        }
    }
    ifs.sort_by_key(|i| i["name"].as_str().unwrap_or_default().to_string());
    ifs
}

#[test]
fn ls_and_show_json_list_the_lab_with_counts() {
    let sb = sandbox();
    assert_eq!(ls_labs(&sb), [], "ls --json on an empty sandbox");
    let empty_table = sb.plumb_ok(&["ls"]);
    assert_eq!(String::from_utf8_lossy(&empty_table.stdout), "no labs\n");

    sb.plumb_ok(&["up", &example("seed.toml")]);
    sb.plumb_ok(&["up", &example("star.toml")]);
    // show reports carriers: read both views once they have settled.
    settle_carriers(&sb);

    // ls: one entry per lab, its counts those of the kernel's tags.
    let mut ls = ls_labs(&sb);
    ls.sort_by(|a, b| a.name.cmp(&b.name));
    let want = vec![oracle_counts(&sb, "seed"), oracle_counts(&sb, "star")];
    assert_eq!(ls, want, "ls --json against the tags");
    // The tags themselves are what the files describe: seed 2 namespaces, veth1 in the host,
    // eth1000, veth-ns2 and veth-ns1 in them; star 3 members, the bridge and 3 ports in the
    // host, one eth0 in each member.
    assert_eq!(
        [
            (want[0].namespaces, want[0].host_links, want[0].ns_links),
            (want[1].namespaces, want[1].host_links, want[1].ns_links)
        ],
        [(2, 1, 3), (3, 4, 3)]
    );
    let mut table = ls_table(&sb);
    table.sort();
    let from_json: Vec<_> = ls
        .iter()
        .map(|e| {
            (
                e.name.clone(),
                e.namespaces,
                e.host_links,
                e.ns_links,
                "up".to_string(),
            )
        })
        .collect();
    assert_eq!(table, from_json, "plumb ls's table against ls --json");

    // show: the seed's nodes, interfaces, peers, addresses and routes, as ip -j sees them, and
    // nothing of star's.
    let show = stdout_json(&sb.plumb_ok(&["show", "seed", "--json"]));
    assert_eq!(show["version"], 2, "{show:#}");
    assert_eq!(show["lab"], "seed", "{show:#}");
    let nodes = show["nodes"].as_array().expect("nodes is an array");
    let names: Vec<&str> = nodes.iter().filter_map(|n| n["node"].as_str()).collect();
    assert_eq!(names, ["host", "ns1", "ns2"], "{show:#}");
    let peers = [
        ("veth1", "ns1:eth1000"),
        ("eth1000", "host:veth1"),
        ("veth-ns2", "ns2:veth-ns1"),
        ("veth-ns1", "ns1:veth-ns2"),
    ];
    for node in nodes {
        let name = node["node"].as_str().expect("node name");
        let ns = (name != "host").then_some(name);
        let expected = oracle_interfaces(&sb, ns, "seed", &peers);
        assert_eq!(
            shown_interfaces(node),
            expected,
            "show seed --json, interfaces of {name}, against ip -j"
        );
        let devs: Vec<&str> = expected.iter().filter_map(|i| i["name"].as_str()).collect();
        let mut routes: Vec<String> = node["routes"]
            .as_array()
            .expect("routes is an array")
            .iter()
            .map(|r| r.as_str().expect("a route is a string").to_string())
            .collect();
        routes.sort();
        assert_eq!(
            routes,
            oracle_routes(&sb, ns, &devs),
            "show seed --json, routes of {name}, against ip -j"
        );
    }
    let host_ifs: Vec<&str> = nodes[0]["interfaces"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| i["name"].as_str())
        .collect();
    assert_eq!(
        host_ifs,
        ["veth1"],
        "only the seed's own interface of the host (no plumb0)"
    );

    sb.plumb_ok(&["down", "seed"]);
    assert_eq!(ls_names(&sb), ["star"], "after plumb down seed");
    let star = &ls_labs(&sb)[0];
    assert_eq!(
        star,
        &oracle_counts(&sb, "star"),
        "star's counts after down seed"
    );
}

/// Writes `contents` as `bad.toml` and runs `up`: it must exit 2, create nothing, and report
/// a diagnostic `bad.toml:LINE:COL: MESSAGE` naming `mention` at exactly each of `lines`, with
/// COL pointing at the token (a key, or a quoted value) that holds `mention`. `up --dry-run`
/// must reject the file the same way.
fn assert_rejected(contents: &str, lines: &[u32], mention: &str) {
    let sb = sandbox();
    let empty = sb.snapshot();
    let file = sb.write_file("bad.toml", contents);
    let file = file.to_str().unwrap();
    for args in [&["up", file][..], &["up", file, "--dry-run"][..]] {
        let out = sb.plumb(args);
        assert_exit(&out, 2, &format!("plumb {args:?} of an invalid file"));
        assert!(out.stdout.is_empty(), "{}", describe(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        let found = diagnostics(&stderr, file);
        let naming: Vec<u32> = found
            .iter()
            .filter(|(_, _, message)| message.contains(mention))
            .map(|(line, _, _)| *line)
            .collect();
        assert_eq!(
            naming,
            lines,
            "lines of the diagnostics naming {mention:?} (all: {found:?})\n{}",
            describe(&out)
        );
        for (line, col, message) in found.iter().filter(|(_, _, m)| m.contains(mention)) {
            let text = contents
                .lines()
                .nth(*line as usize - 1)
                .unwrap_or_else(|| panic!("bad.toml has no line {line}"));
            let token: String = text
                .chars()
                .skip(*col as usize - 1)
                .take_while(|c| !matches!(c, ']' | ',' | '='))
                .collect();
            assert!(
                *col >= 1 && token.contains(mention),
                "bad.toml:{line}:{col} ({message}) points at {token:?}, not at {mention:?}"
            );
        }
    }
    sb.assert_state_eventually(&empty, SETTLE, "after an invalid file");
}

#[test]
fn up_interface_name_of_16_bytes_exits_2_with_position() {
    assert_rejected(
        r#"name = "bad"

[nodes.ns1.interfaces.eth0123456789abc]
addresses = ["10.0.0.1/24"]

[[links]]
endpoints = ["host:veth1", "ns1:eth0123456789abc"]
"#,
        &[3, 7],
        "eth0123456789abc",
    );
}

#[test]
fn up_address_not_a_cidr_exits_2_with_position() {
    assert_rejected(
        r#"name = "bad"

[nodes.ns1.interfaces.eth0]
addresses = ["10.0.0.300/24"]

[nodes.host.interfaces.veth1]
addresses = ["10.0.0.1/24"]

[[links]]
endpoints = ["host:veth1", "ns1:eth0"]
"#,
        &[4],
        "10.0.0.300",
    );
}

#[test]
fn up_endpoint_naming_undeclared_node_exits_2_with_position() {
    assert_rejected(
        r#"name = "bad"

[nodes.ns1.interfaces.eth0]
addresses = ["10.0.0.2/24"]

[[links]]
endpoints = ["ns1:eth0", "nosuch:eth0"]
"#,
        &[7],
        "nosuch",
    );
}

/// A lab is known only by the tags of its objects, so a lab that does not exist is a lab with
/// nothing: `down` has nothing to remove (exit 0, as `down` is idempotent) and `show` finds
/// nothing (exit 0, an empty `nodes` list); both change nothing. `up` of a missing file and a
/// name that is neither a file nor a lab name are errors (exit 2).
#[test]
fn missing_lab_or_file_exit_codes() {
    let sb = sandbox();
    sb.plumb_ok(&["up", &example("seed.toml")]);
    let before = sb.settled_snapshot();

    let one_line = |out: &std::process::Output| -> String {
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert_eq!(stdout.lines().count(), 1, "{}", describe(out));
        stdout.trim_end().to_string()
    };
    let out = sb.plumb(&["down", "nosuchlab"]);
    assert_exit(&out, 0, "down of an unknown lab");
    assert_eq!(one_line(&out), "lab nosuchlab: nothing to remove");
    let out = sb.plumb(&["down", "nosuchlab", "--dry-run"]);
    assert_exit(&out, 0, "down --dry-run of an unknown lab (nothing to do)");
    assert!(out.stdout.is_empty(), "{}", describe(&out));
    // show of a lab that is not here is an error that names the labs that are.
    for args in [&["show", "nosuchlab"][..], &["show", "nosuchlab", "--json"]] {
        let out = sb.plumb(args);
        assert_exit(&out, 2, "show of an unknown lab");
        assert!(out.stdout.is_empty(), "{}", describe(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("there is no lab `nosuchlab` on this machine (labs here: seed)"),
            "{}",
            describe(&out)
        );
    }
    sb.assert_state_eventually(&before, SETTLE, "after down and show of an unknown lab");

    for cmd in ["down", "show"] {
        let out = sb.plumb(&[cmd, "no/such/lab"]);
        assert_exit(
            &out,
            2,
            &format!("{cmd} of something neither a file nor a lab name"),
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.starts_with("plumb: `no/such/lab` is neither a topology file nor a lab name"),
            "{}",
            describe(&out)
        );
    }
    let missing = format!("{}/missing.toml", sb.dir().display());
    let out = sb.plumb(&["up", &missing]);
    assert_exit(&out, 2, "up of a missing file");
    assert!(out.stdout.is_empty(), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .starts_with(&format!("plumb: cannot read topology file `{missing}`")),
        "{}",
        describe(&out)
    );
    sb.assert_state_eventually(&before, SETTLE, "after the failed commands");
    assert_seed_built(&sb);
}

/// `plumb sandbox` run directly: its command runs in new namespaces and its status is passed
/// through. Isolation is checked before anything is built with it.
#[test]
fn sandbox_runs_command_in_fresh_namespaces_and_passes_status() {
    let plumb = env!("CARGO_BIN_EXE_plumb");
    let ns1_existed = Path::new("/run/netns/ns1").exists();
    let ours: Vec<String> = ["user", "net", "mnt"]
        .iter()
        .map(|ns| {
            std::fs::read_link(format!("/proc/self/ns/{ns}"))
                .unwrap()
                .display()
                .to_string()
        })
        .collect();
    let out = Command::new(plumb)
        .args([
            "sandbox",
            "--",
            "readlink",
            "/proc/self/ns/user",
            "/proc/self/ns/net",
            "/proc/self/ns/mnt",
        ])
        .output()
        .unwrap();
    assert_exit(&out, 0, "plumb sandbox -- readlink");
    let theirs: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(theirs.len(), 3, "{}", describe(&out));
    for (a, b) in ours.iter().zip(&theirs) {
        assert_ne!(
            a, b,
            "plumb sandbox did not make a new namespace; stopping before building anything"
        );
    }

    let out = Command::new(plumb)
        .args(["sandbox", "--", "sh", "-c", "exit 3"])
        .output()
        .unwrap();
    assert_exit(&out, 3, "plumb sandbox -- sh -c 'exit 3'");

    let out = Command::new(plumb)
        .args([
            "sandbox",
            &example("seed.toml"),
            "--",
            "ip",
            "-j",
            "netns",
            "list",
        ])
        .output()
        .unwrap();
    assert_exit(&out, 0, "plumb sandbox seed.toml -- ip -j netns list");
    let list = stdout_json(&out);
    let mut names: Vec<&str> = list
        .as_array()
        .unwrap_or_else(|| panic!("ip -j netns list is not an array: {list}"))
        .iter()
        .map(|n| n["name"].as_str().unwrap_or_else(|| panic!("{n}")))
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["ns1", "ns2"], "{list}");
    assert_eq!(
        Path::new("/run/netns/ns1").exists(),
        ns1_existed,
        "ns1 leaked out of the sandbox"
    );
}
