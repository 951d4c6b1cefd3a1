//! Editing a lab that is up, the way a declarative tool is used: nodes join existing ones with
//! new cables, members leave and join (keeping their addresses), a node deleted by hand comes
//! back, addresses and firewalls change. After every step `up` exits 0, a dry run of the same
//! file has nothing to do, and the data path works. Also: two labs with the same node names
//! side by side (`prefix`), sysctls refused at their line, `exec`'s own /sys, `show` of rules,
//! and the dry run as a shell script equivalent to `up`.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::*;
use plumb_testkit::{describe, Sandbox};
use serde_json::{json, Value};

/// `up FILE` exits 0, and afterwards a dry run of FILE finds nothing to do.
fn up_converged(sb: &Sandbox, file: &str) {
    let out = sb.plumb(&["up", file]);
    assert_exit(&out, 0, "up of an edited file");
    let steps = dry_run_plan(sb, file, 0);
    assert!(steps.is_empty(), "{steps:#?}");
}

/// The one IPv4 address of `dev` in `ns`.
fn addr_of(sb: &Sandbox, ns: &str, dev: &str) -> String {
    let a = sb.ipv4_addrs(Some(ns), dev);
    assert_eq!(a.len(), 1, "{ns}:{dev} has {a:?}");
    a[0].clone()
}

/// The address part of `10.0.0.2/24`.
fn host_part(cidr: &str) -> &str {
    cidr.split('/').next().unwrap_or(cidr)
}

const JOIN_A: &str = r#"name = "join"
[nodes.a]
"#;

const JOIN_ABC: &str = r#"name = "join"
[nodes.a.interfaces.to-b]
addresses = ["10.20.1.1/30"]
[nodes.b.interfaces.to-a]
addresses = ["10.20.1.2/30"]
[nodes.b.interfaces.to-c]
addresses = ["10.20.2.1/30"]
[nodes.c.interfaces.to-b]
addresses = ["10.20.2.2/30"]
[[links]]
endpoints = ["a:to-b", "b:to-a"]
[[links]]
endpoints = ["b:to-c", "c:to-b"]
"#;

#[test]
fn nodes_joining_an_existing_node_with_new_cables_converge_and_survive_a_deleted_node() {
    let sb = sandbox();
    let a = sb.write_file("a.toml", JOIN_A);
    let abc = sb.write_file("abc.toml", JOIN_ABC);
    let (a, abc) = (a.to_str().unwrap(), abc.to_str().unwrap());
    sb.plumb_ok(&["up", a]);
    up_converged(&sb, abc);
    settle_carriers(&sb);
    sb.ping_ok(Some("a"), "10.20.1.2");
    sb.ping_ok(Some("c"), "10.20.2.1");
    // The middle node deleted by hand, with both its cables: the next up restores it.
    sb.run_ok(&["ip", "netns", "del", "b"]);
    up_converged(&sb, abc);
    settle_carriers(&sb);
    sb.ping_ok(Some("a"), "10.20.1.2");
    sb.ping_ok(Some("b"), "10.20.2.2");
    assert_eq!(sb.netns_list(), ["a", "b", "c"]);
}

#[test]
fn star_members_edited_keep_their_addresses_and_routes() {
    let sb = sandbox();
    let star = std::fs::read_to_string(example("star.toml")).unwrap();
    let edited = star.replace(r#"["web", "db", "cache"]"#, r#"["web", "cache", "api"]"#);
    assert_ne!(star, edited, "the example's members line changed");
    let v1 = sb.write_file("star.toml", &star);
    let v2 = sb.write_file("star2.toml", &edited);
    let (v1, v2) = (v1.to_str().unwrap(), v2.to_str().unwrap());
    up_converged(&sb, v1);
    let web = addr_of(&sb, "web", "eth0");
    let cache = addr_of(&sb, "cache", "eth0");
    assert_eq!(
        (web.as_str(), cache.as_str()),
        ("10.88.0.2/24", "10.88.0.4/24")
    );
    up_converged(&sb, v2);
    // Nobody renumbered; the new member took the address db left.
    assert_eq!(addr_of(&sb, "web", "eth0"), web);
    assert_eq!(addr_of(&sb, "cache", "eth0"), cache);
    assert_eq!(addr_of(&sb, "api", "eth0"), "10.88.0.3/24");
    let route = sb
        .default_route(Some("cache"))
        .expect("cache keeps its default route");
    assert_eq!(route["gateway"], "10.88.0.1", "{route}");
    settle_carriers(&sb);
    sb.ping_ok(Some("cache"), "10.88.0.1");
    sb.ping_ok(Some("api"), host_part(&web));
    sb.ping_ok(Some("web"), host_part(&cache));
}

/// A lab edited step by step (see the steps below).
fn multi(step: u32) -> String {
    let mut s = String::from(
        r#"name = "multi"
[nodes.host.interfaces.r0]
addresses = ["10.71.0.1/30"]
[nodes.r.interfaces.eth1]
addresses = ["10.71.0.2/30"]
[[links]]
endpoints = ["host:r0", "r:eth1"]
"#,
    );
    let members = match step {
        1 => r#"["m1", "m2", "m3"]"#,
        2..=4 => r#"["m1", "m3", "m4"]"#,
        _ => r#"["m2", "m1", "m3", "m4"]"#,
    };
    s.push_str(&format!(
        "[networks.net0]\nsubnet = \"10.70.0.0/24\"\nmembers = {members}\n"
    ));
    if step >= 2 {
        let (rx, xr) = if step >= 4 {
            ("10.72.0.5/30", "10.72.0.6/30")
        } else {
            ("10.72.0.1/30", "10.72.0.2/30")
        };
        s.push_str(&format!(
            r#"[nodes.r.interfaces.to-x]
addresses = ["{rx}"]
[nodes.x.interfaces.to-r]
addresses = ["{xr}"]
[nodes.x.interfaces.to-y]
addresses = ["10.73.0.1/30"]
[nodes.y.interfaces.to-x]
addresses = ["10.73.0.2/30"]
[[links]]
endpoints = ["r:to-x", "x:to-r"]
[[links]]
endpoints = ["x:to-y", "y:to-x"]
"#
        ));
    }
    if step >= 4 {
        let allow = if step >= 5 {
            r#"["icmp from 10.70.0.0/24", "tcp/80"]"#
        } else {
            r#"["icmp from 10.70.0.0/24"]"#
        };
        s.push_str(&format!(
            "[nodes.m1.firewall]\ningress = \"deny\"\nallow = {allow}\n"
        ));
    }
    s
}

/// The firewall of `node` as `show --json` reads it back from the kernel.
fn shown_firewall(sb: &Sandbox, lab: &str, node: &str) -> Option<(Value, Value)> {
    let show = stdout_json(&sb.plumb_ok(&["show", lab, "--json"]));
    let n = show["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .find(|n| n["node"] == node)
        .unwrap_or_else(|| panic!("{node} is not shown: {show:#}"))
        .clone();
    let rules = n.get("rules")?;
    Some((rules["ingress"].clone(), rules["allow"].clone()))
}

#[test]
fn a_sequence_of_edits_converges_at_every_step_and_keeps_member_addresses() {
    let sb = sandbox();
    let file = sb.dir().join("multi.toml");
    let file = file.to_str().unwrap().to_string();
    let mut kept: BTreeMap<String, String> = BTreeMap::new();
    for step in 1..=5 {
        sb.write_file("multi.toml", &multi(step));
        if step == 3 {
            // A node deleted by hand; the file is unchanged and the next up restores it.
            sb.run_ok(&["ip", "netns", "del", "x"]);
        }
        up_converged(&sb, &file);
        settle_carriers(&sb);
        let members: &[&str] = match step {
            1 => &["m1", "m2", "m3"],
            2..=4 => &["m1", "m3", "m4"],
            _ => &["m2", "m1", "m3", "m4"],
        };
        let mut now = BTreeMap::new();
        for m in members {
            let a = addr_of(&sb, m, "eth0");
            if let Some(before) = kept.get(*m) {
                assert_eq!(&a, before, "step {step}: {m} was renumbered");
            }
            sb.ping_ok(Some(m), "10.70.0.1");
            now.insert(m.to_string(), a);
        }
        let distinct: BTreeSet<&String> = now.values().collect();
        assert_eq!(distinct.len(), now.len(), "step {step}: {now:?}");
        kept = now;
        sb.ping_ok(Some("r"), "10.71.0.1");
        if step >= 2 {
            let (rx, xr) = if step >= 4 {
                ("10.72.0.5", "10.72.0.6")
            } else {
                ("10.72.0.1", "10.72.0.2")
            };
            sb.ping_ok(Some("r"), xr);
            sb.ping_ok(Some("x"), rx);
            sb.ping_ok(Some("y"), "10.73.0.1");
        }
        let fw = shown_firewall(&sb, "multi", "m1");
        match step {
            1..=3 => assert_eq!(fw, None, "step {step}"),
            4 => assert_eq!(
                fw,
                Some((
                    json!("drop"),
                    json!([{"rule": "allow", "service": {"proto": "icmp"}, "from": "10.70.0.0/24"}])
                )),
                "step {step}"
            ),
            _ => assert_eq!(
                fw,
                Some((
                    json!("drop"),
                    json!([
                        {"rule": "allow", "service": {"proto": "icmp"}, "from": "10.70.0.0/24"},
                        {"rule": "allow", "service": {"proto": "tcp", "port": 80}, "from": null}
                    ])
                )),
                "step {step}"
            ),
        }
        if step >= 4 {
            // m1's firewall: pings from its network pass, from the host (10.71.0.1, outside
            // the allowed prefix) they do not.
            let m1 = host_part(&kept["m1"]).to_string();
            sb.ping_ok(Some("m3"), &m1);
            let out = sb.ping(Some("r"), &m1);
            assert!(
                !out.status.success(),
                "r reached m1 through its firewall\n{}",
                describe(&out)
            );
        }
    }
    // The member that came back got the lowest free address (.3 is m4's since step 2).
    assert_eq!(kept["m4"], "10.70.0.3/24");
    assert_eq!(kept["m2"], "10.70.0.5/24");
}

#[test]
fn two_labs_with_the_same_node_names_run_side_by_side_with_prefixes() {
    let sb = sandbox();
    let lab = |n: u32| {
        format!(
            "name = \"p{n}\"\nprefix = \"p{n}-\"\n[networks.plumb0]\nsubnet = \"10.6{n}.0.0/24\"\nmembers = [\"web\", \"db\"]\n"
        )
    };
    let f1 = sb.write_file("p1.toml", &lab(1));
    let f2 = sb.write_file("p2.toml", &lab(2));
    let (f1, f2) = (f1.to_str().unwrap(), f2.to_str().unwrap());
    up_converged(&sb, f1);
    up_converged(&sb, f2);
    assert_eq!(sb.netns_list(), ["p1-db", "p1-web", "p2-db", "p2-web"]);
    let hosts: Vec<String> = sb.link_names(None);
    assert!(
        hosts.contains(&"p1-plumb0".to_string()) && hosts.contains(&"p2-plumb0".to_string()),
        "{hosts:?}"
    );
    settle_carriers(&sb);
    sb.ping_ok(Some("p1-web"), "10.61.0.3");
    sb.ping_ok(Some("p2-web"), "10.62.0.3");
    let show = stdout_json(&sb.plumb_ok(&["show", "p1", "--json"]));
    let labels: Vec<(String, String)> = show["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["label"].as_str().unwrap().to_string(),
                n["node"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        labels,
        [
            ("host".to_string(), "host".to_string()),
            ("db".to_string(), "p1-db".to_string()),
            ("web".to_string(), "p1-web".to_string())
        ]
    );
    sb.plumb_ok(&["down", "p1"]);
    assert_eq!(sb.netns_list(), ["p2-db", "p2-web"]);
    let steps = dry_run_plan(&sb, f2, 0);
    assert!(steps.is_empty(), "{steps:#?}");
}

#[test]
fn a_sysctl_that_does_not_exist_is_refused_at_its_line_before_anything_is_touched() {
    let sb = sandbox();
    let before = sb.settled_snapshot();
    let f = sb.write_file(
        "sys.toml",
        r#"name = "sys"
[nodes.a]
sysctls = { "net.ipv4.ip_forward" = 1, "net.ipv4.ip_forwrd" = 1 }
"#,
    );
    let f = f.to_str().unwrap();
    let out = sb.plumb(&["up", f]);
    assert_exit(&out, 2, "up with a sysctl that does not exist");
    let found = diagnostics(&String::from_utf8_lossy(&out.stderr), f);
    assert_eq!(found.len(), 1, "{}", describe(&out));
    let (line, col, message) = &found[0];
    assert_eq!((*line, *col), (3, 40), "{}", describe(&out));
    assert!(
        message.contains("sysctl `net.ipv4.ip_forwrd` does not exist in the namespace of node `a`"),
        "{message}"
    );
    sb.assert_state_eventually(&before, SETTLE, "after a refused up");
}

#[test]
fn exec_shows_the_nodes_own_sys_like_ip_netns_exec() {
    let sb = sandbox();
    sb.plumb_ok(&["up", &example("seed.toml")]);
    let out = sb.plumb_ok(&["exec", "ns1", "--", "ls", "/sys/class/net"]);
    let names: BTreeSet<String> = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(str::to_string)
        .collect();
    let want: BTreeSet<String> = ["eth1000", "lo", "veth-ns2"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(names, want, "{}", describe(&out));
    // And the oracle agrees with the same command through iproute2.
    let ip = sb.run_ok(&["ip", "netns", "exec", "ns1", "ls", "/sys/class/net"]);
    let ip: BTreeSet<String> = ip.split_whitespace().map(str::to_string).collect();
    assert_eq!(ip, want);
}

#[test]
fn show_reads_nat_isolation_and_firewalls_back_from_the_kernel() {
    let sb = sandbox();
    sb.plumb_ok(&["up", &example("isolation.toml")]);
    let show = stdout_json(&sb.plumb_ok(&["show", "isolation", "--json"]));
    assert_eq!(show["version"], 2);
    let node = |name: &str| -> Value {
        show["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["node"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("{name} not shown: {show:#}"))
    };
    let host = node("host");
    assert_eq!(
        host["rules"]["nat"],
        json!([
            {"rule": "masquerade", "subnet": "10.91.0.0/24", "bridge": "front"},
            {"rule": "masquerade", "subnet": "10.92.0.0/24", "bridge": "back"}
        ]),
        "{host:#}"
    );
    assert_eq!(host["rules"]["isolated_networks"], json!(["front", "back"]));
    assert_eq!(host["rules"]["published"], json!([]));
    assert_eq!(host["rules"]["unknown"], 0);
    // Bridge ports: those of `back` (isolated = true) are isolated, those of `front` not, as
    // the kernel reports them.
    for i in host["interfaces"].as_array().unwrap() {
        let master = i["master"].as_str();
        if master.is_some() {
            let l = must_link(&sb, None, i["name"].as_str().unwrap());
            let kernel = l["linkinfo"]["info_slave_data"]["isolated"] == true;
            assert_eq!(i["isolated"] == true, kernel, "{i}");
            assert_eq!(kernel, master == Some("back"), "{i}");
        }
    }
    let b = node("b");
    assert_eq!(b["rules"]["ingress"], "drop");
    assert_eq!(
        b["rules"]["allow"],
        json!([
            {"rule": "allow", "service": {"proto": "icmp"}, "from": null},
            {"rule": "allow", "service": {"proto": "tcp", "port": 80}, "from": "10.91.0.0/24"}
        ])
    );
    assert!(node("a").get("rules").is_none(), "a has no table");
    // The oracle: the comments show read are on the kernel's rules.
    let ruleset = sb.nft_ruleset(Some("b"));
    let comments: Vec<&str> = ruleset["nftables"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|o| o.get("rule"))
        .filter_map(|r| r["comment"].as_str())
        .collect();
    assert_eq!(comments, ["allow icmp", "allow tcp/80 from 10.91.0.0/24"]);
}

/// What a namespace's network looks like, without what is allowed to differ between `up` and
/// the dry run's commands run by hand: indexes, tags, groups, MACs, nsids.
fn normal_form(sb: &Sandbox, ns: Option<&str>) -> Value {
    let mut links: Vec<Value> = sb
        .links(ns)
        .iter()
        .map(|l| {
            json!({
                "name": l["ifname"],
                "kind": l["linkinfo"]["info_kind"],
                "mtu": l["mtu"],
                "up": has_flag(l, "UP"),
                "master": l.get("master").cloned().unwrap_or(Value::Null),
                "isolated": l["linkinfo"]["info_slave_data"]["isolated"],
                "stp": l["linkinfo"]["info_data"]["stp_state"],
            })
        })
        .collect();
    links.sort_by_key(|l| l["name"].to_string());
    let mut addrs: Vec<String> = sb
        .addrs(ns)
        .iter()
        .flat_map(|a| {
            let dev = a["ifname"].as_str().unwrap_or("?").to_string();
            a["addr_info"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .filter(|i| i["scope"] != "link")
                .map(move |i| {
                    format!(
                        "{dev} {}/{}",
                        i["local"].as_str().unwrap_or("?"),
                        i["prefixlen"]
                    )
                })
        })
        .collect();
    addrs.sort();
    let mut routes: Vec<String> = sb
        .routes(ns)
        .iter()
        .map(|r| {
            format!(
                "{} {} {} {}",
                r["dst"], r["gateway"], r["dev"], r["protocol"]
            )
        })
        .collect();
    routes.sort();
    json!({
        "links": links,
        "addrs": addrs,
        "routes": routes,
        "nft": sb.nft_ruleset(ns),
        "forwarding": sb.run_ok(&["sh", "-c", &match ns {
            Some(n) => format!("ip netns exec {n} cat /proc/sys/net/ipv4/ip_forward"),
            None => "cat /proc/sys/net/ipv4/ip_forward".to_string(),
        }]).trim().to_string(),
    })
}

fn whole_normal_form(sb: &Sandbox) -> Value {
    let mut out = serde_json::Map::new();
    out.insert("host".into(), normal_form(sb, None));
    for ns in sb.netns_list() {
        out.insert(ns.clone(), normal_form(sb, Some(&ns)));
    }
    Value::Object(out)
}

#[test]
fn the_dry_run_is_a_shell_script_that_builds_what_up_builds() {
    for lab in ["egress.toml", "isolation.toml", "seed.toml"] {
        let by_hand = sandbox();
        let out = by_hand.plumb(&["up", "--dry-run", &example(lab)]);
        assert_exit(&out, 1, "dry run with changes");
        let script = by_hand.write_file("dry-run.sh", &String::from_utf8_lossy(&out.stdout));
        by_hand.run_ok(&["sh", "-e", script.to_str().unwrap()]);
        let by_plumb = sandbox();
        by_plumb.plumb_ok(&["up", &example(lab)]);
        let (a, b) = (whole_normal_form(&by_hand), whole_normal_form(&by_plumb));
        assert!(
            a == b,
            "{lab}: the dry run run by hand and up differ:\n{}",
            plumb_testkit::line_diff(&b, &a)
        );
    }
}
