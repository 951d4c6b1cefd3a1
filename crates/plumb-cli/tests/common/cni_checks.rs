//! The CNI conformance checks that plumb (`tests/cni.rs`) and Debian's reference `bridge` +
//! `host-local` plugins (`tests/cni_reference.rs`) must both pass: each drives the plugin through
//! [`Cni`] and asserts through independent views (`ip -j`, the IPAM store's files, sockets).
#![allow(dead_code)] // each test binary uses a different part of this module

use std::collections::HashSet;

use serde_json::{json, Value};

use crate::common::sockets::{send, serve, Server};
use crate::suite::{Cni, Impl, Reply, BRIDGE, GATEWAY, HOST_UP, NET, UPSTREAM};

/// ADD's result: three interfaces (the bridge, the host end, the container's with `sandbox`),
/// the address on interface 2 with the gateway, a default route; the kernel agrees: the bridge
/// carries the gateway, the container's interface is up with its address and a default route
/// via the gateway; MTU and hairpin mode are applied.
pub fn add_builds_the_attachment(c: &Cni<'_>) {
    let conf = c.conf(json!({"mtu": 1400, "hairpinMode": true}));
    let r = c.add("c1", "c1", &conf);
    let ifs = r["interfaces"].as_array().expect("interfaces");
    assert_eq!(ifs.len(), 3, "{r:#}");
    assert_eq!(ifs[0]["name"], BRIDGE);
    assert_eq!(ifs[2]["name"], "eth0");
    assert_eq!(ifs[2]["sandbox"], "/run/netns/c1", "{r:#}");
    assert!(ifs[0].get("sandbox").is_none() && ifs[1].get("sandbox").is_none());
    let ip = &r["ips"][0];
    assert_eq!(ip["address"], "10.55.0.2/24", "{r:#}");
    assert_eq!(ip["gateway"], GATEWAY);
    assert_eq!(ip["interface"], 2);
    assert!(
        r["routes"].as_array().is_some_and(|rs| rs
            .iter()
            .any(|x| x["dst"] == "0.0.0.0/0" && x["gw"] == GATEWAY)),
        "{r:#}"
    );
    assert_eq!(c.v4(None, BRIDGE), vec![format!("{GATEWAY}/24")]);
    assert_eq!(c.v4(Some("c1"), "eth0"), vec!["10.55.0.2/24"]);
    let eth0 = &c.ip(Some("c1"), &["link", "show", "eth0"])[0];
    assert!(
        eth0["flags"]
            .as_array()
            .is_some_and(|f| f.iter().any(|x| x == "UP")),
        "{eth0}"
    );
    assert_eq!(eth0["mtu"], 1400);
    assert_eq!(eth0["address"], ifs[2]["mac"]);
    let routes = c.ip(Some("c1"), &["route", "show", "default"]);
    assert_eq!(routes[0]["gateway"], GATEWAY, "{routes}");
    assert_eq!(routes[0]["dev"], "eth0");
    let host_end = ifs[1]["name"].as_str().expect("host end name");
    let l = &c.ip(None, &["-d", "link", "show", host_end])[0];
    assert_eq!(l["master"], BRIDGE, "{l}");
    assert_eq!(l["mtu"], 1400);
    assert_eq!(l["linkinfo"]["info_slave_data"]["hairpin"], true, "{l}");
    assert_eq!(c.reserved(), vec!["10.55.0.2"]);
}

/// A second ADD for the same interface fails; DEL twice succeeds and frees the address.
pub fn second_add_errors_and_del_is_idempotent(c: &Cni<'_>) {
    let conf = c.conf(json!({}));
    let r = c.add("c1", "c1", &conf);
    let again = c.invoke("ADD", "c1", "c1", "eth0", &conf);
    assert_ne!(again.code, Some(0), "{}", again.text);
    assert!(again.json["code"].is_u64(), "{}", again.text);
    let conf = Cni::with_prev(&conf, &r);
    c.invoke("DEL", "c1", "c1", "eth0", &conf).ok("DEL");
    c.invoke("DEL", "c1", "c1", "eth0", &conf).ok("second DEL");
    assert!(c.reserved().is_empty(), "{:?}", c.reserved());
    c.settle();
    let names: Vec<String> = c
        .ip(Some("c1"), &["link"])
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|l| l["ifname"].as_str().map(str::to_string))
        .collect();
    assert_eq!(names, vec!["lo"]);
}

/// DEL after the namespace is gone (`ip netns del`) succeeds and frees the address; an ADD in
/// a new namespace then gets an address again.
pub fn del_after_netns_gone_frees_the_address(c: &Cni<'_>) {
    let conf = c.conf(json!({}));
    let r = c.add("c1", "c1", &conf);
    c.sb.run_ok(&["ip", "netns", "del", "c1"]);
    let conf = Cni::with_prev(&conf, &r);
    c.invoke("DEL", "c1", "c1", "eth0", &conf)
        .ok("DEL without its netns");
    assert!(c.reserved().is_empty(), "{:?}", c.reserved());
    c.invoke("DEL", "c1", "c1", "eth0", &conf).ok("DEL again");
}

/// CHECK after ADD succeeds; after someone deletes the container's address it fails.
pub fn check_follows_the_kernel(c: &Cni<'_>) {
    let conf = c.conf(json!({}));
    let r = c.add("c1", "c1", &conf);
    let conf = Cni::with_prev(&conf, &r);
    c.invoke("CHECK", "c1", "c1", "eth0", &conf)
        .ok("CHECK after ADD");
    c.sb.run_ok(&[
        "ip",
        "-n",
        "c1",
        "addr",
        "del",
        "10.55.0.2/24",
        "dev",
        "eth0",
    ]);
    let bad = c.invoke("CHECK", "c1", "c1", "eth0", &conf);
    assert_ne!(bad.code, Some(0), "CHECK should fail:\n{}", bad.text);
    assert!(bad.json["code"].is_u64(), "{}", bad.text);
    // A second container loses its default route: CHECK says so too.
    let base = c.conf(json!({}));
    let r2 = c.add("c2", "c2", &base);
    let conf2 = Cni::with_prev(&base, &r2);
    c.invoke("CHECK", "c2", "c2", "eth0", &conf2)
        .ok("CHECK of c2");
    c.sb.run_ok(&["ip", "-n", "c2", "route", "del", "default"]);
    let bad = c.invoke("CHECK", "c2", "c2", "eth0", &conf2);
    assert_ne!(
        bad.code,
        Some(0),
        "CHECK without the default route should fail:\n{}",
        bad.text
    );
    assert!(bad.json["code"].is_u64(), "{}", bad.text);
}

/// With ipMasq, the container's traffic reaches the upstream namespace from the host's address.
pub fn ipmasq_leaves_with_the_host_address(c: &Cni<'_>) {
    c.upstream();
    let conf = c.conf(json!({"ipMasq": true}));
    c.add("c1", "c1", &conf);
    let server: Server = serve(c.sb, Some("upstream"), "tcp", 7000, 1, "5");
    let reply = send(c.sb, Some("c1"), "tcp", UPSTREAM, 7000, "hello", "4");
    let lines = server.finish();
    assert!(
        reply
            .as_deref()
            .is_ok_and(|r| r.starts_with("reply echo:hello")),
        "{reply:?} {lines:?}"
    );
    assert_eq!(
        Server::peers(&lines),
        vec![HOST_UP.to_string()],
        "{lines:?}"
    );
}

/// 16 concurrent ADDs for 16 containers get 16 distinct addresses; the bridge and its gateway
/// exist once.
pub fn concurrent_adds_get_distinct_addresses(c: &Cni<'_>) {
    let conf = c.conf(json!({"ipMasq": true}));
    let n = 16;
    for i in 0..n {
        c.sb.run_ok(&["ip", "netns", "add", &format!("p{i}")]);
    }
    let results: Vec<Reply> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..n)
            .map(|i| {
                let conf = &conf;
                s.spawn(move || c.invoke("ADD", &format!("cid{i}"), &format!("p{i}"), "eth0", conf))
            })
            .collect();
        hs.into_iter().map(|h| h.join().expect("thread")).collect()
    });
    let mut seen = HashSet::new();
    for (i, r) in results.into_iter().enumerate() {
        let v = r.ok(&format!("concurrent ADD {i}"));
        let a = v["ips"][0]["address"]
            .as_str()
            .expect("address")
            .to_string();
        assert!(seen.insert(a.clone()), "address {a} handed out twice");
        assert_eq!(c.v4(Some(&format!("p{i}")), "eth0"), vec![a]);
    }
    assert_eq!(seen.len(), n);
    assert_eq!(c.reserved().len(), n);
    let bridges: Vec<Value> = c
        .ip(None, &["-d", "link", "show", "type", "bridge"])
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(bridges.len(), 1, "{bridges:?}");
    assert_eq!(c.v4(None, BRIDGE), vec![format!("{GATEWAY}/24")]);
}

/// Environment validation as the reference library does it (codes 3, 4) and an unsupported
/// version (code 1).
pub fn environment_is_validated(c: &Cni<'_>) {
    c.sb.run_ok(&["ip", "netns", "add", "c1"]);
    let conf = c.conf(json!({}));
    let base = [
        ("CNI_COMMAND", "ADD"),
        ("CNI_CONTAINERID", "c1"),
        ("CNI_NETNS", "/run/netns/c1"),
        ("CNI_IFNAME", "eth0"),
    ];
    let with = |k: &str, v: &str| -> Vec<(&str, String)> {
        base.iter()
            .map(|(bk, bv)| {
                (
                    *bk,
                    if *bk == k {
                        v.to_string()
                    } else {
                        bv.to_string()
                    },
                )
            })
            .filter(|(_, v)| !v.is_empty())
            .collect()
    };
    let run = |env: Vec<(&str, String)>, conf: &Value| {
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        c.invoke_env(&env, conf)
    };
    let e = run(with("CNI_NETNS", ""), &conf).error(4, "ADD without CNI_NETNS");
    assert!(e["msg"].as_str().unwrap_or("").contains("CNI_NETNS"), "{e}");
    run(with("CNI_IFNAME", "a234567890123456"), &conf).error(4, "16-byte ifname");
    run(with("CNI_IFNAME", "eth:0"), &conf).error(4, "ifname with ':'");
    run(with("CNI_IFNAME", "eth/0"), &conf).error(4, "ifname with '/'");
    run(with("CNI_IFNAME", "eth 0"), &conf).error(4, "ifname with a space");
    run(with("CNI_CONTAINERID", "-bad"), &conf).error(4, "container id pattern");
    run(with("CNI_CONTAINERID", "a/b"), &conf).error(4, "container id with '/'");
    run(with("CNI_COMMAND", "FROB"), &conf).error(4, "unknown command");
    let mut v9 = conf.clone();
    v9["cniVersion"] = "9.9.9".into();
    run(with("CNI_IFNAME", "eth0"), &v9).error(1, "unsupported version");
    let mut unnamed = conf.clone();
    if let Some(o) = unnamed.as_object_mut() {
        o.remove("name");
    }
    run(with("CNI_IFNAME", "eth0"), &unnamed).error(7, "a configuration without a name");
    let not_conf = json!("not a configuration");
    run(with("CNI_IFNAME", "eth0"), &not_conf).error(6, "not an object");
    assert!(
        c.reserved().is_empty(),
        "a refused ADD reserved {:?}",
        c.reserved()
    );
    let v = c
        .invoke_env(
            &[("CNI_COMMAND", "VERSION")],
            &json!({"cniVersion": "1.0.0"}),
        )
        .ok("VERSION");
    let vs: Vec<&str> = v["supportedVersions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    for want in ["0.3.0", "0.3.1", "0.4.0", "1.0.0"] {
        assert!(vs.contains(&want), "{v}");
    }
}

/// `ipam` ranges and requested addresses, as host-local does them: `rangeStart`/`rangeEnd`
/// bound the pool, `CNI_ARGS` `IP=` and `runtimeConfig.ips` pick an address, allocation goes
/// round robin after the last reservation and wraps, an exhausted pool refuses, `ipam.routes`
/// go into the container via the gateway.
pub fn ipam_ranges_and_requested_addresses(c: &Cni<'_>) {
    c.sb.run_ok(&["ip", "netns", "add", "x"]);
    let both = c.conf(json!({"hairpinMode": true, "promiscMode": true}));
    let refused = c.invoke("ADD", "x", "x", "eth0", &both);
    assert_ne!(
        refused.code,
        Some(0),
        "hairpin and promiscuous together:\n{}",
        refused.text
    );
    assert!(refused.json["code"].is_u64(), "{}", refused.text);
    let conf = c.conf(
        json!({"promiscMode": true, "ipam": {"rangeStart": "10.55.0.10",
        "rangeEnd": "10.55.0.12", "routes": [{"dst": "192.0.2.0/24"}]}}),
    );
    let add = |cid: &str, args: &str, conf: &Value| {
        c.sb.run_ok(&["ip", "netns", "add", cid]);
        let netns = format!("/run/netns/{cid}");
        let mut env = vec![
            ("CNI_COMMAND", "ADD"),
            ("CNI_CONTAINERID", cid),
            ("CNI_NETNS", netns.as_str()),
            ("CNI_IFNAME", "eth0"),
        ];
        if !args.is_empty() {
            env.push(("CNI_ARGS", args));
        }
        c.invoke_env(&env, conf)
    };
    let a = add("a", "IgnoreUnknown=1;K8S_POD_NAME=x;IP=10.55.0.12", &conf).ok("ADD with IP=");
    assert_eq!(a["ips"][0]["address"], "10.55.0.12/24", "{a:#}");
    let b = add("b", "", &conf).ok("ADD after .12");
    assert_eq!(
        b["ips"][0]["address"], "10.55.0.10/24",
        "round robin wraps: {b:#}"
    );
    let mut with_ips = conf.clone();
    with_ips["runtimeConfig"] = json!({"ips": ["10.55.0.11/24"]});
    let d = add("d", "", &with_ips).ok("ADD with runtimeConfig.ips");
    assert_eq!(d["ips"][0]["address"], "10.55.0.11/24", "{d:#}");
    let full = add("e", "", &conf);
    assert_ne!(
        full.code,
        Some(0),
        "an exhausted pool must refuse:\n{}",
        full.text
    );
    assert_eq!(c.reserved().len(), 3, "{:?}", c.reserved());
    let br = &c.ip(None, &["link", "show", BRIDGE])[0];
    assert!(
        br["flags"]
            .as_array()
            .is_some_and(|f| f.iter().any(|x| x == "PROMISC")),
        "{br}"
    );
    let routes = c.ip(Some("b"), &["route", "show", "192.0.2.0/24"]);
    assert_eq!(routes[0]["gateway"], GATEWAY, "{routes}");
    assert_eq!(routes[0]["dev"], "eth0");
}

/// A port mapping (`runtimeConfig.portMappings`) is reachable from the internet on the host's
/// address, and no longer once the container is detached. The reference needs its `portmap`
/// plugin chained after `bridge`, as a runtime's configuration list would.
pub fn port_mapping_is_reachable(c: &Cni<'_>) {
    c.upstream();
    let mappings =
        json!({"portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]});
    let conf = c.conf(json!({"ipMasq": true, "runtimeConfig": mappings}));
    let r = c.add("c1", "c1", &conf);
    let portmap = |verb: &str, prev: &Value| {
        let pm = json!({"cniVersion": "1.0.0", "name": NET, "type": "portmap",
            "capabilities": {"portMappings": true}, "runtimeConfig": mappings, "prevResult": prev});
        c.invoke_bin(
            "/usr/lib/cni/portmap",
            &[
                ("CNI_COMMAND", verb),
                ("CNI_CONTAINERID", "c1"),
                ("CNI_NETNS", "/run/netns/c1"),
                ("CNI_IFNAME", "eth0"),
            ],
            &pm,
        )
        .ok(&format!("portmap {verb}"))
    };
    if c.imp == Impl::Reference {
        portmap("ADD", &r);
    }
    let server = serve(c.sb, Some("c1"), "tcp", 80, 1, "5");
    let reply = send(c.sb, Some("upstream"), "tcp", HOST_UP, 8080, "knock", "4");
    let lines = server.finish();
    assert!(
        reply
            .as_deref()
            .is_ok_and(|r| r.starts_with("reply echo:knock")),
        "{reply:?} {lines:?}"
    );
    assert_eq!(
        Server::peers(&lines),
        vec![UPSTREAM.to_string()],
        "{lines:?}"
    );
    if c.imp == Impl::Reference {
        portmap("DEL", &r);
    }
    c.invoke("DEL", "c1", "c1", "eth0", &Cni::with_prev(&conf, &r))
        .ok("DEL");
    // Another container without mappings takes the same address: the port must not reach it.
    let ip = r["ips"][0]["address"]
        .as_str()
        .expect("address")
        .split('/')
        .next()
        .unwrap_or("")
        .to_string();
    c.sb.run_ok(&["ip", "netns", "add", "c2"]);
    let args = format!("IgnoreUnknown=1;IP={ip}");
    c.invoke_env(
        &[
            ("CNI_COMMAND", "ADD"),
            ("CNI_CONTAINERID", "c2"),
            ("CNI_NETNS", "/run/netns/c2"),
            ("CNI_IFNAME", "eth0"),
            ("CNI_ARGS", &args),
        ],
        &c.conf(json!({"ipMasq": true})),
    )
    .ok("ADD c2 on the freed address");
    let server = serve(c.sb, Some("c2"), "tcp", 80, 1, "2");
    let after = send(c.sb, Some("upstream"), "tcp", HOST_UP, 8080, "knock", "1");
    let lines = server.finish();
    assert!(
        after.is_err(),
        "the port is still mapped after DEL: {after:?} {lines:?}"
    );
}

/// A requested MAC is the container interface's, in the kernel and in the result: from
/// `CNI_ARGS` `MAC=`, and from `runtimeConfig.mac` (which wins over `CNI_ARGS`). What is not a
/// MAC, or is a multicast one, is refused and leaves nothing behind.
pub fn requested_mac_is_the_container_interfaces(c: &Cni<'_>) {
    let conf = c.conf(json!({}));
    let attach = |cid: &str, conf: &Value, args: &str| {
        c.sb.run_ok(&["ip", "netns", "add", cid]);
        let netns = format!("/run/netns/{cid}");
        c.invoke_env(
            &[
                ("CNI_COMMAND", "ADD"),
                ("CNI_CONTAINERID", cid),
                ("CNI_NETNS", &netns),
                ("CNI_IFNAME", "eth0"),
                ("CNI_ARGS", args),
            ],
            conf,
        )
    };
    let mac_of = |ns: &str| c.ip(Some(ns), &["link", "show", "dev", "eth0"])[0]["address"].clone();
    let r =
        attach("m1", &conf, "IgnoreUnknown=1;MAC=02:00:5e:10:00:01").ok("ADD with CNI_ARGS MAC");
    assert_eq!(mac_of("m1"), "02:00:5e:10:00:01");
    assert_eq!(r["interfaces"][2]["mac"], "02:00:5e:10:00:01", "{r:#}");
    let rc = c.conf(json!({"runtimeConfig": {"mac": "02:00:5e:10:00:02"}}));
    let r =
        attach("m2", &rc, "IgnoreUnknown=1;MAC=02:00:5e:10:00:03").ok("ADD with runtimeConfig.mac");
    assert_eq!(mac_of("m2"), "02:00:5e:10:00:02");
    assert_eq!(r["interfaces"][2]["mac"], "02:00:5e:10:00:02", "{r:#}");
    // Not a MAC, and a multicast address (which no interface may have).
    for (ns, mac) in [("m3", "not-a-mac"), ("m4", "03:00:5e:10:00:04")] {
        let e = attach(ns, &conf, &format!("IgnoreUnknown=1;MAC={mac}"));
        assert_ne!(e.code, Some(0), "{}", e.text);
        assert!(e.json["code"].is_u64(), "{}", e.text);
        let names = c.ip(Some(ns), &["link"]);
        assert_eq!(
            names.as_array().map(Vec::len),
            Some(1),
            "only lo: {names:#}"
        );
    }
    assert_eq!(c.reserved().len(), 2, "{:?}", c.reserved());
}
