//! plumb as a CNI plugin, driven as a runtime drives it (environment + stdin, stdout parsed as
//! JSON), each check in its own sandbox: the conformance checks shared with the reference
//! plugins (`common/cni_checks.rs`, also run against them by `cni_reference.rs`), then what only
//! plumb has: results in every spec version, a failed ADD undone, tags, STATUS, GC, DEL from
//! `prevResult` alone, the examples (masquerade and port mappings: `cni_nat.rs`). Needs
//! `python3` and `nft` (the oracle of the table's contents).

#[path = "common/cni_checks.rs"]
mod checks;
mod common;
#[path = "common/cni.rs"]
mod suite;

use std::path::Path;

use serde_json::{json, Value};
use suite::{table, with_plumb, Cni, BRIDGE, DATA_DIR, NET};

#[test]
fn cni_add_builds_the_attachment() {
    with_plumb(checks::add_builds_the_attachment);
}

#[test]
fn cni_second_add_errors_and_del_is_idempotent() {
    with_plumb(checks::second_add_errors_and_del_is_idempotent);
}

#[test]
fn cni_del_after_netns_gone_frees_the_address() {
    with_plumb(checks::del_after_netns_gone_frees_the_address);
}

#[test]
fn cni_check_follows_the_kernel() {
    with_plumb(checks::check_follows_the_kernel);
}

#[test]
fn cni_ipmasq_leaves_with_the_host_address() {
    with_plumb(checks::ipmasq_leaves_with_the_host_address);
}

#[test]
fn cni_concurrent_adds_get_distinct_addresses() {
    with_plumb(checks::concurrent_adds_get_distinct_addresses);
}

#[test]
fn cni_environment_is_validated() {
    with_plumb(checks::environment_is_validated);
}

#[test]
fn cni_port_mapping_is_reachable() {
    with_plumb(checks::port_mapping_is_reachable);
}

#[test]
fn cni_ipam_ranges_and_requested_addresses() {
    with_plumb(checks::ipam_ranges_and_requested_addresses);
}

#[test]
fn cni_results_are_written_in_the_requested_version() {
    with_plumb(|c| {
        for (i, v) in ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]
            .iter()
            .enumerate()
        {
            let conf = c.conf(json!({"cniVersion": v}));
            let r = c.add(&format!("c{i}"), &format!("c{i}"), &conf);
            assert_eq!(r["cniVersion"], *v);
            let ip = &r["ips"][0];
            if v.starts_with('0') {
                assert_eq!(ip["version"], "4", "{v}: {r:#}");
            } else {
                assert!(ip.get("version").is_none(), "{v}: {r:#}");
            }
        }
        // CHECK needs 0.4.0, STATUS and GC 1.1.0: older configurations get code 1.
        let old = c.conf(json!({"cniVersion": "0.3.1", "prevResult": {}}));
        c.invoke("CHECK", "c0", "c0", "eth0", &old)
            .error(1, "CHECK at 0.3.1");
        let v10 = c.conf(json!({"cniVersion": "1.0.0"}));
        c.invoke_env(&[("CNI_COMMAND", "STATUS")], &v10)
            .error(1, "STATUS at 1.0.0");
        // An error is written in the configuration's version.
        let e = c
            .invoke("ADD", "c0", "c0", "eth0", &old)
            .error(999, "ADD again");
        assert_eq!(e["cniVersion"], "0.3.1");
        // Another IPAM type is delegated to its plugin (tests/cni_ipam.rs); its refusal (no
        // DHCP daemon here) comes back with the plugin's code and message, and nothing is left.
        let other = c.conf(json!({"ipam": {"type": "dhcp"}}));
        c.sb.run_ok(&["ip", "netns", "add", "x"]);
        let e = c
            .invoke("ADD", "x", "x", "eth0", &other)
            .error(999, "ipam dhcp");
        assert!(
            e["msg"]
                .as_str()
                .unwrap_or_default()
                .starts_with("IPAM plugin dhcp ADD"),
            "{e:#}"
        );
        let links = c.ip(Some("x"), &["link", "show"]);
        assert_eq!(links.as_array().map(Vec::len), Some(1), "{links:#}");
    });
}

#[test]
fn cni_failed_add_undoes_what_it_made() {
    with_plumb(|c| {
        // A route whose gateway is not reachable from the container: refused by the kernel
        // after the address was reserved and the veth pair made.
        let conf = c.conf(json!({"ipMasq": true, "ipam": {"routes": [{"dst": "192.0.2.0/24", "gw": "198.51.100.1"}]}}));
        c.sb.run_ok(&["ip", "netns", "add", "c1"]);
        let e = c
            .invoke("ADD", "c1", "c1", "eth0", &conf)
            .error(999, "ADD with a bad route");
        assert!(e.to_string().contains("route"), "{e}");
        assert!(c.reserved().is_empty(), "{:?}", c.reserved());
        let links: Vec<String> = c
            .ip(None, &["link"])
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|l| l["ifname"].as_str().map(str::to_string))
            .collect();
        assert!(links.iter().all(|l| !l.starts_with("veth")), "{links:?}");
        let inner: Vec<String> = c
            .ip(Some("c1"), &["link"])
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|l| l["ifname"].as_str().map(str::to_string))
            .collect();
        assert_eq!(inner, vec!["lo"]);
        // The same container then attaches cleanly.
        c.invoke("ADD", "c1", "c1", "eth0", &c.conf(json!({})))
            .ok("ADD after the failure");
    });
}

#[test]
fn cni_everything_created_is_tagged() {
    with_plumb(|c| {
        let r = c.add("c1", "c1", &c.conf(json!({})));
        let host_end = r["interfaces"][1]["name"].as_str().unwrap().to_string();
        for (dev, want) in [
            (BRIDGE.to_string(), format!("plumb:cni net={NET}")),
            (host_end, format!("plumb:cni net={NET} cid=c1 if=eth0")),
        ] {
            let l = &c.ip(None, &["link", "show", &dev])[0];
            assert_eq!(l["ifalias"], want.as_str(), "{l}");
        }
        let routes = c.ip(Some("c1"), &["route", "show", "default"]);
        assert_eq!(routes[0]["protocol"], "250", "{routes}");
        // No IPv6 where no IPv6 address is wanted: the host end and, on an IPv4-only
        // network, the container's interface have no link-local address.
        let host_end = r["interfaces"][1]["name"].as_str().unwrap().to_string();
        for (ns, dev) in [(None, host_end.as_str()), (Some("c1"), "eth0")] {
            let a = c.ip(ns, &["-6", "addr", "show", "dev", dev]);
            let n = a
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|l| l["addr_info"].as_array().cloned().unwrap_or_default())
                .count();
            assert_eq!(n, 0, "{dev}: {a}");
        }
        // The bridge keeps its MAC across containers (fixed, not taken from a port).
        let mac0 = r["interfaces"][0]["mac"].clone();
        let r2 = c.add("c2", "c2", &c.conf(json!({})));
        assert_eq!(r2["interfaces"][0]["mac"], mac0);
        assert_eq!(c.ip(None, &["link", "show", BRIDGE])[0]["address"], mac0);
    });
}

#[test]
fn cni_status_reports_an_exhausted_pool() {
    with_plumb(|c| {
        let conf = c.conf(json!({"cniVersion": "1.1.0", "ipam": {"subnet": "10.56.0.0/30"}}));
        c.invoke_env(&[("CNI_COMMAND", "STATUS")], &conf)
            .ok("STATUS with a free address");
        let r = c.add("c1", "c1", &conf);
        assert_eq!(r["ips"][0]["address"], "10.56.0.2/30");
        c.invoke_env(&[("CNI_COMMAND", "STATUS")], &conf)
            .error(50, "STATUS of a full /30");
        c.sb.run_ok(&["ip", "netns", "add", "c2"]);
        let e = c
            .invoke("ADD", "c2", "c2", "eth0", &conf)
            .error(999, "ADD to a full /30");
        assert!(
            e["msg"]
                .as_str()
                .unwrap_or("")
                .contains("no IP addresses available"),
            "{e}"
        );
        c.invoke("DEL", "c1", "c1", "eth0", &Cni::with_prev(&conf, &r))
            .ok("DEL");
        c.invoke_env(&[("CNI_COMMAND", "STATUS")], &conf)
            .ok("STATUS after DEL");
    });
}

#[test]
fn cni_gc_frees_what_is_not_valid() {
    with_plumb(|c| {
        for key in ["cni.dev/valid-attachments", "cni.dev/attachments"] {
            let with_port = |port: u16| {
                c.conf(
                    json!({"cniVersion": "1.1.0", "ipMasq": true, "runtimeConfig":
                    {"portMappings": [{"hostPort": port, "containerPort": 80}]}}),
                )
            };
            let conf = with_port(9001);
            let keep = c.add("keep", &format!("keep{}", key.len()), &conf);
            let gone = c.add("gone", &format!("gone{}", key.len()), &with_port(9002));
            let keep_ip = keep["ips"][0]["address"]
                .as_str()
                .unwrap()
                .split('/')
                .next()
                .unwrap()
                .to_string();
            let gone_ip = gone["ips"][0]["address"]
                .as_str()
                .unwrap()
                .split('/')
                .next()
                .unwrap()
                .to_string();
            let gone_end = gone["interfaces"][1]["name"].as_str().unwrap().to_string();
            let mut gc = conf.clone();
            gc[key] = json!([{"containerID": "keep", "ifname": "eth0"}]);
            c.invoke_env(&[("CNI_COMMAND", "GC")], &gc).ok("GC");
            assert_eq!(c.reserved(), vec![keep_ip.clone()], "{key}");
            let links: Vec<String> = c
                .ip(None, &["link"])
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|l| l["ifname"].as_str().map(str::to_string))
                .collect();
            assert!(!links.contains(&gone_end), "{key}: {links:?}");
            let (_, sets) = table(c);
            assert_eq!(
                sets["tcp4"].as_array().map(Vec::len),
                Some(1),
                "{key}: {sets:#}"
            );
            assert!(common::json_mentions(&sets["tcp4"], &keep_ip), "{sets:#}");
            assert!(!common::json_mentions(&sets["tcp4"], &gone_ip), "{sets:#}");
            // Then nothing is valid: everything goes.
            let mut all = conf.clone();
            all[key] = json!([]);
            c.invoke_env(&[("CNI_COMMAND", "GC")], &all)
                .ok("GC of everything");
            assert!(c.reserved().is_empty());
        }
        let _ = DATA_DIR;
    });
}

#[test]
fn cni_plugin_name_and_about() {
    with_plumb(|c| {
        let link = c.sb.dir().join("plumb-cni");
        std::os::unix::fs::symlink(c.plumb, &link).expect("symlink");
        let link = link.to_string_lossy().into_owned();
        let about = c.sb.run(&[&link]);
        assert_eq!(about.status.code(), Some(0));
        assert!(String::from_utf8_lossy(&about.stderr)
            .contains("CNI protocol versions supported: 0.3.0, 0.3.1, 0.4.0, 1.0.0, 1.1.0"));
        let mut cmd = c.sb.command(&[&link]);
        cmd.env("CNI_COMMAND", "VERSION");
        let out = c.sb.output(cmd);
        let v: Value = serde_json::from_slice(&out.stdout).expect("VERSION prints JSON");
        assert_eq!(
            v["supportedVersions"],
            json!(["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"])
        );
    });
}

#[test]
fn cni_del_works_from_prev_result_without_records_or_reservation() {
    with_plumb(|c| {
        let conf = c.conf(json!({"ipMasq": true, "runtimeConfig":
            {"portMappings": [{"hostPort": 8080, "containerPort": 80}]}}));
        let r = c.add("c1", "c1", &conf);
        let host_end = r["interfaces"][1]["name"].as_str().unwrap().to_string();
        // plumb's record and the reservation are gone (a wiped store): DEL tears down from
        // prevResult and the attachment's tag.
        c.sb.sh_ok(&format!(
            "rm -r {DATA_DIR}/{NET}/plumb {DATA_DIR}/{NET}/10.55.0.2"
        ));
        c.invoke("DEL", "c1", "c1", "eth0", &Cni::with_prev(&conf, &r))
            .ok("DEL");
        let links: Vec<String> = c
            .ip(None, &["link"])
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|l| l["ifname"].as_str().map(str::to_string))
            .collect();
        assert!(!links.contains(&host_end), "{links:?}");
        let (_, sets) = table(c);
        assert_eq!(sets["tcp4"], json!([]), "{sets:#}");
        // An interface of the same name that is not this attachment's is left alone.
        c.sb.run_ok(&[
            "ip", "link", "add", &host_end, "type", "veth", "peer", "name", "other0",
        ]);
        c.invoke("DEL", "c1", "c1", "eth0", &Cni::with_prev(&conf, &r))
            .ok("DEL again");
        let links: Vec<String> = c
            .ip(None, &["link"])
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|l| l["ifname"].as_str().map(str::to_string))
            .collect();
        assert!(
            links.contains(&host_end),
            "DEL deleted an interface it does not own: {links:?}"
        );
    });
}

#[test]
fn cni_examples_attach_a_container() {
    with_plumb(|c| {
        // The single configuration as it is, and each conflist's plugin as a runtime hands it
        // over (the list's name and version copied in), with the store moved into the sandbox.
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/cni");
        let read = |name: &str| -> Value {
            let text = std::fs::read_to_string(dir.join(name))
                .unwrap_or_else(|e| panic!("examples/cni/{name}: {e}"));
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("examples/cni/{name}: {e}"))
        };
        let mut confs = vec![read("plumb-bridge.conf")];
        for list in ["10-plumb.conflist", "87-podman-plumb.conflist"] {
            let l = read(list);
            let mut p = l["plugins"][0].clone();
            p["name"] = l["name"].clone();
            p["cniVersion"] = l["cniVersion"].clone();
            confs.push(p);
        }
        for (i, mut conf) in confs.into_iter().enumerate() {
            assert_eq!(conf["type"], "plumb-cni");
            conf["ipam"]["dataDir"] = DATA_DIR.into();
            let ns = format!("e{i}");
            let r = c.add(&ns, &ns, &conf);
            let a = r["ips"][0]["address"]
                .as_str()
                .expect("an address")
                .to_string();
            assert_eq!(c.v4(Some(&ns), "eth0"), vec![a]);
            c.invoke("DEL", &ns, &ns, "eth0", &Cni::with_prev(&conf, &r))
                .ok("DEL");
        }
    });
}

#[test]
fn cni_requested_mac_is_the_container_interfaces() {
    with_plumb(checks::requested_mac_is_the_container_interfaces);
}
