//! plumb as a CNI plugin: masquerade and port mappings in the network's nftables table, driven
//! as a runtime drives the plugin, each check in its own sandbox, asserted through `nft -j` and
//! real sockets (a port mapped from the upstream namespace, hairpin from containers), plus
//! dual-stack range sets. Needs `python3` and `nft`.

mod common;
#[path = "common/cni.rs"]
mod suite;

use serde_json::{json, Value};
use suite::{table, with_plumb, Cni, BRIDGE, HOST_UP, NET};

#[test]
fn cni_port_mapping_is_reachable_and_rules_do_not_grow() {
    with_plumb(|c| {
        c.upstream();
        let pm = |host: u16| {
            json!({"ipMasq": true, "hairpinMode": true, "runtimeConfig": {"portMappings": [
                {"hostPort": host, "containerPort": 80, "protocol": "tcp"}]}})
        };
        let r1 = c.add("c1", "c1", &c.conf(pm(8080)));
        let (rules1, sets1) = table(c);
        let a1 = r1["ips"][0]["address"]
            .as_str()
            .unwrap()
            .split('/')
            .next()
            .unwrap()
            .to_string();
        assert_eq!(sets1["tcp4"].as_array().map(Vec::len), Some(1), "{sets1:#}");
        for i in 2..=4 {
            c.add(
                &format!("c{i}"),
                &format!("c{i}"),
                &c.conf(pm(8080 + i as u16)),
            );
        }
        let (rules4, sets4) = table(c);
        assert_eq!(rules1, rules4, "the rule count grew with containers");
        assert_eq!(sets4["tcp4"].as_array().map(Vec::len), Some(4), "{sets4:#}");
        // From the internet to the host's address, port 8080: the first container's port 80.
        let server = common::sockets::serve(c.sb, Some("c1"), "tcp", 80, 1, "5");
        let reply =
            common::sockets::send(c.sb, Some("upstream"), "tcp", HOST_UP, 8080, "knock", "4");
        let lines = server.finish();
        assert!(
            reply
                .as_deref()
                .is_ok_and(|r| r.starts_with("reply echo:knock")),
            "{reply:?} {lines:?}"
        );
        assert_eq!(
            common::sockets::Server::peers(&lines),
            vec![suite::UPSTREAM.to_string()]
        );
        // Hairpin: another container of the network, and the container itself (its port is in
        // hairpin mode), reach the mapped port through the host's address; the answer comes
        // back through the host.
        for client in ["c2", "c1"] {
            let server = common::sockets::serve(c.sb, Some("c1"), "tcp", 80, 1, "5");
            let reply =
                common::sockets::send(c.sb, Some(client), "tcp", HOST_UP, 8080, "hairpin", "4");
            let lines = server.finish();
            assert!(
                reply
                    .as_deref()
                    .is_ok_and(|r| r.starts_with("reply echo:hairpin")),
                "from {client}: {reply:?} {lines:?}"
            );
            assert_eq!(
                common::sockets::Server::peers(&lines),
                vec![suite::GATEWAY.to_string()],
                "from {client}: masqueraded to the bridge's address"
            );
        }
        // DEL takes the container's elements out, and only them.
        let conf = Cni::with_prev(&c.conf(pm(8080)), &r1);
        c.invoke("DEL", "c1", "c1", "eth0", &conf).ok("DEL c1");
        let (rules_after, sets_after) = table(c);
        assert_eq!(rules_after, rules1);
        assert_eq!(sets_after["tcp4"].as_array().map(Vec::len), Some(3));
        assert!(
            !common::json_mentions(&sets_after["tcp4"], &a1),
            "{sets_after:#}"
        );
    });
}

#[test]
fn cni_check_covers_nat_state_and_the_reservation() {
    with_plumb(|c| {
        let conf = c.conf(json!({"ipMasq": true, "runtimeConfig":
            {"portMappings": [{"hostPort": 8080, "containerPort": 80}]}}));
        let r = c.add("c1", "c1", &conf);
        let conf = Cni::with_prev(&conf, &r);
        c.invoke("CHECK", "c1", "c1", "eth0", &conf)
            .ok("CHECK after ADD");
        // Someone removes the container's port mapping: CHECK says so.
        let table_name = format!("plumb-cni-{NET}");
        c.sb.run_ok(&[
            "nft",
            "delete",
            "element",
            "inet",
            &table_name,
            "tcp4",
            "{ 8080 }",
        ]);
        let e = c
            .invoke("CHECK", "c1", "c1", "eth0", &conf)
            .error(999, "CHECK without the port mapping");
        assert!(
            e["msg"].as_str().unwrap_or("").contains("port mapping"),
            "{e}"
        );
        // Someone deletes the table (masquerade with it): CHECK says so.
        c.sb.run_ok(&["nft", "delete", "table", "inet", &table_name]);
        let e = c
            .invoke("CHECK", "c1", "c1", "eth0", &conf)
            .error(999, "CHECK without the table");
        assert!(
            e["msg"].as_str().unwrap_or("").contains("masquerade"),
            "{e}"
        );
        // DEL still succeeds with the element gone, then CHECK finds no reservation.
        c.invoke("DEL", "c1", "c1", "eth0", &conf).ok("DEL");
        let e = c
            .invoke("CHECK", "c1", "c1", "eth0", &conf)
            .error(999, "CHECK after DEL");
        assert!(
            e["msg"].as_str().unwrap_or("").contains("reservation"),
            "{e}"
        );
    });
}

#[test]
fn cni_port_conflict_is_refused_and_leaves_the_owner_alone() {
    with_plumb(|c| {
        let pm = json!({"runtimeConfig": {"portMappings": [
            {"hostPort": 8080, "containerPort": 80, "protocol": "tcp"},
            {"hostPort": 5353, "containerPort": 53, "protocol": "udp"}]}});
        let a = c.add("a", "a", &c.conf(pm.clone()));
        let a_ip = a["ips"][0]["address"]
            .as_str()
            .unwrap()
            .split('/')
            .next()
            .unwrap()
            .to_string();
        let (_, before) = table(c);
        // b asks for a free udp port and a tcp port a holds: refused, nothing of b stays.
        let pb = json!({"runtimeConfig": {"portMappings": [
            {"hostPort": 5454, "containerPort": 53, "protocol": "udp"},
            {"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]}});
        c.sb.run_ok(&["ip", "netns", "add", "b"]);
        let e = c
            .invoke("ADD", "b", "b", "eth0", &c.conf(pb))
            .error(999, "conflicting ADD");
        assert!(
            e["msg"].as_str().unwrap_or("").contains("already mapped"),
            "{e}"
        );
        let (_, after) = table(c);
        assert_eq!(before, after, "a failed ADD changed the maps");
        assert!(common::json_mentions(&after["tcp4"], &a_ip), "{after:#}");
        assert_eq!(c.reserved(), vec![a_ip.clone()]);
        // a leaves, b takes the port; a repeated DEL of a leaves b's mapping alone.
        let conf_a = Cni::with_prev(&c.conf(pm.clone()), &a);
        c.invoke("DEL", "a", "a", "eth0", &conf_a).ok("DEL a");
        let b = c
            .invoke("ADD", "b", "b", "eth0", &c.conf(pm))
            .ok("ADD b on the freed ports");
        let b_ip = b["ips"][0]["address"]
            .as_str()
            .unwrap()
            .split('/')
            .next()
            .unwrap()
            .to_string();
        c.invoke("DEL", "a", "a", "eth0", &conf_a).ok("DEL a again");
        let (_, now) = table(c);
        assert!(common::json_mentions(&now["tcp4"], &b_ip), "{now:#}");
        assert!(common::json_mentions(&now["udp4"], &b_ip), "{now:#}");
        let conf_b = Cni::with_prev(&c.conf(json!({})), &b);
        c.invoke("CHECK", "b", "b", "eth0", &conf_b).ok("CHECK b");
    });
}

#[test]
fn cni_dual_stack_range_sets_give_one_address_each() {
    with_plumb(|c| {
        let conf = c.conf(json!({"ipMasq": true, "ipam": {"subnet": null, "ranges": [
            [{"subnet": "10.55.0.0/24"}], [{"subnet": "fd00:55::/64"}]]}}));
        let r = c.add("c1", "c1", &conf);
        let ips: Vec<&str> = r["ips"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|i| i["address"].as_str())
            .collect();
        assert_eq!(ips, vec!["10.55.0.2/24", "fd00:55::2/64"], "{r:#}");
        assert_eq!(r["ips"][1]["gateway"], "fd00:55::1");
        let v6 = c.ip(
            Some("c1"),
            &["-6", "addr", "show", "dev", "eth0", "scope", "global"],
        );
        assert!(common::json_mentions(&v6, "fd00:55::2"), "{v6}");
        let r6 = c.ip(Some("c1"), &["-6", "route", "show", "default"]);
        assert_eq!(r6[0]["gateway"], "fd00:55::1", "{r6}");
        let br6 = c.ip(
            None,
            &["-6", "addr", "show", "dev", BRIDGE, "scope", "global"],
        );
        assert!(common::json_mentions(&br6, "fd00:55::1"), "{br6}");
        // Both subnets are masqueraded: one rule each in the table.
        let out = c.sb.run_ok(&[
            "nft",
            "-j",
            "list",
            "chain",
            "inet",
            &format!("plumb-cni-{NET}"),
            "postrouting",
        ]);
        let v: Value = serde_json::from_str(&out).expect("nft -j");
        let rules: Vec<&Value> = v["nftables"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|o| o.get("rule"))
            .collect();
        // Per family: the masquerade and the hairpin masquerade.
        assert_eq!(rules.len(), 4, "{v:#}");
        assert!(common::json_mentions(&v, "fd00:55::"), "{v:#}");
        assert!(common::json_mentions(&v, "10.55.0.0"), "{v:#}");
        c.invoke("DEL", "c1", "c1", "eth0", &Cni::with_prev(&conf, &r))
            .ok("DEL");
        assert!(c.reserved().is_empty(), "{:?}", c.reserved());
    });
}

/// The host's IPv6 address on its uplink, and the internet's.
const HOST_UP6: &str = "2001:db8:1::1";
const UPSTREAM6: &str = "2001:db8:1::2";

#[test]
fn cni_ipv6_ports_are_mapped_on_a_dual_stack_network() {
    with_plumb(|c| {
        c.upstream();
        c.sb.sh_ok(&format!(
            "ip addr add {HOST_UP6}/64 dev up0 nodad && \
             ip -n upstream addr add {UPSTREAM6}/64 dev eth0 nodad"
        ));
        let ranges = json!({"ipMasq": true, "hairpinMode": true, "ipam": {"subnet": null,
            "ranges": [[{"subnet": "10.55.0.0/24"}], [{"subnet": "fd00:55::/64"}]]}});
        // tcp 8080 on every host address (both families); udp 5353 on the IPv6 one only.
        let mut conf = c.conf(ranges.clone());
        conf["runtimeConfig"] = json!({"portMappings": [
            {"hostPort": 8080, "containerPort": 80, "protocol": "tcp"},
            {"hostPort": 5353, "containerPort": 53, "protocol": "udp", "hostIP": HOST_UP6}]});
        let r = c.add("c1", "c1", &conf);
        c.add("c2", "c2", &c.conf(ranges));
        let (_, sets) = table(c);
        let len = |m: &str| sets[m].as_array().map(Vec::len);
        assert_eq!(
            [
                len("tcp4"),
                len("tcp6"),
                len("udp6h"),
                len("udp4h"),
                len("udp6")
            ],
            [Some(1), Some(1), Some(1), Some(0), Some(0)],
            "{sets:#}"
        );
        assert!(
            common::json_mentions(&sets["tcp6"], "fd00:55::2"),
            "{sets:#}"
        );
        // From the internet, over each family, to the host's address: c1's port, with the
        // client's own address (no masquerade on the way in).
        for (proto, host, port, from, bind) in [
            ("tcp", HOST_UP6, 8080, UPSTREAM6, "::"),
            ("tcp", HOST_UP, 8080, suite::UPSTREAM, "0.0.0.0"),
            ("udp", HOST_UP6, 5353, UPSTREAM6, "::"),
        ] {
            let cport = if proto == "tcp" { 80 } else { 53 };
            let server = common::sockets::serve_on(c.sb, Some("c1"), bind, proto, cport, 1, "5");
            let reply =
                common::sockets::send(c.sb, Some("upstream"), proto, host, port, "knock", "4");
            let lines = server.finish();
            assert!(
                reply
                    .as_deref()
                    .is_ok_and(|r| r.starts_with("reply echo:knock")),
                "{proto} to {host}:{port}: {reply:?} {lines:?}"
            );
            assert_eq!(
                common::sockets::Server::peers(&lines),
                vec![from.to_string()]
            );
        }
        // Hairpin over IPv6: c2 reaches c1's mapped port through the host's address, and is
        // seen from the bridge's address.
        let server = common::sockets::serve_on(c.sb, Some("c1"), "::", "tcp", 80, 1, "5");
        let reply = common::sockets::send(c.sb, Some("c2"), "tcp", HOST_UP6, 8080, "hp", "4");
        let lines = server.finish();
        assert!(
            reply
                .as_deref()
                .is_ok_and(|r| r.starts_with("reply echo:hp")),
            "{reply:?} {lines:?}"
        );
        assert_eq!(
            common::sockets::Server::peers(&lines),
            vec!["fd00:55::1".to_string()]
        );
        // CHECK sees every element; DEL takes them all out.
        let with_prev = Cni::with_prev(&conf, &r);
        c.invoke("CHECK", "c1", "c1", "eth0", &with_prev)
            .ok("CHECK");
        c.invoke("DEL", "c1", "c1", "eth0", &with_prev).ok("DEL");
        let (_, sets) = table(c);
        for m in ["tcp4", "tcp6", "udp6h"] {
            assert_eq!(sets[m], json!([]), "{m}: {sets:#}");
        }
    });
}

#[test]
fn cni_a_mapping_without_an_address_of_its_family_is_refused() {
    with_plumb(|c| {
        // An IPv4-only network, a mapping bound to an IPv6 host address.
        let conf = c.conf(json!({"runtimeConfig": {"portMappings": [
            {"hostPort": 8080, "containerPort": 80, "hostIP": "2001:db8:1::1"}]}}));
        c.sb.run_ok(&["ip", "netns", "add", "c1"]);
        let e = c
            .invoke("ADD", "c1", "c1", "eth0", &conf)
            .error(2, "ADD with an IPv6 hostIP on an IPv4 network");
        assert!(
            e["msg"].as_str().unwrap_or("").contains("2001:db8:1::1"),
            "{e}"
        );
        assert!(c.reserved().is_empty(), "{:?}", c.reserved());
        let names = c.ip(Some("c1"), &["link"]);
        assert_eq!(
            names.as_array().map(Vec::len),
            Some(1),
            "only lo: {names:#}"
        );
    });
}
