//! How plumb's DEL removes a veth pair: it answers once the attachment is detached (both ends
//! down and renamed out of the way, the host end tagged `… detaching`, the address and the
//! table elements released) and removes the pair after answering, in a child of the plugin,
//! so the runtime does not wait for the kernel's RCU barrier. These tests check what holds
//! at the answer, that the pair does go, that the names are free for an immediate ADD whose
//! new pair the late removal leaves alone, and that GC removes a pair whose removal never ran.

mod common;
#[path = "common/cni.rs"]
mod suite;

use serde_json::{json, Value};
use suite::{with_plumb, Cni, BRIDGE, NET};

/// The names of the interfaces in `ns` (or the host).
fn names(c: &Cni<'_>, ns: Option<&str>) -> Vec<String> {
    c.ip(ns, &["link"])
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|l| l["ifname"].as_str().map(str::to_string))
        .collect()
}

/// The host's interfaces whose tag names attachment `cid`.
fn tagged(c: &Cni<'_>, cid: &str) -> Vec<Value> {
    let word = format!(" cid={cid} ");
    c.ip(None, &["link"])
        .as_array()
        .into_iter()
        .flatten()
        .filter(|l| l["ifalias"].as_str().is_some_and(|a| a.contains(&word)))
        .cloned()
        .collect()
}

#[test]
fn cni_del_answers_detached_and_the_pair_is_removed_after() {
    with_plumb(|c| {
        let conf = c.conf(json!({}));
        let r = c.add("c1", "c1", &conf);
        let host_end = r["interfaces"][1]["name"].as_str().unwrap().to_string();
        c.invoke("DEL", "c1", "c1", "eth0", &Cni::with_prev(&conf, &r))
            .ok("DEL");
        // At the answer: the names are free, the address released, and whatever of the pair
        // is left is down (nothing reaches the container through it).
        assert!(
            !names(c, Some("c1")).contains(&"eth0".to_string()),
            "{:?}",
            names(c, Some("c1"))
        );
        assert!(!names(c, None).contains(&host_end), "{:?}", names(c, None));
        assert!(c.reserved().is_empty(), "{:?}", c.reserved());
        for (name, up, _) in c.detaching() {
            assert!(!up, "detached {name} is still up");
        }
        // After: the pair is gone from both namespaces, nothing of the attachment is left.
        c.settle();
        assert_eq!(names(c, Some("c1")), vec!["lo"]);
        assert!(tagged(c, "c1").is_empty(), "{:#?}", tagged(c, "c1"));
    });
}

#[test]
fn cni_add_right_after_del_gets_the_names_and_keeps_its_pair() {
    with_plumb(|c| {
        let conf = c.conf(json!({}));
        // Five times over: the same container, namespace and interface attached again as soon
        // as DEL answers, while the removal of the old pair may still be under way.
        let mut r = c.add("c1", "c1", &conf);
        for round in 0..5 {
            c.invoke("DEL", "c1", "c1", "eth0", &Cni::with_prev(&conf, &r))
                .ok(&format!("DEL {round}"));
            r = c
                .invoke("ADD", "c1", "c1", "eth0", &conf)
                .ok(&format!("ADD {round} right after DEL"));
        }
        c.settle();
        // The late removals took the old pairs only: the new one is whole.
        let host_end = r["interfaces"][1]["name"].as_str().unwrap();
        let a = r["ips"][0]["address"].as_str().unwrap();
        assert_eq!(c.v4(Some("c1"), "eth0"), vec![a.to_string()]);
        let link = c.ip(None, &["link", "show", "dev", host_end]);
        assert_eq!(link[0]["master"], BRIDGE, "{link:#}");
        assert!(
            link[0]["flags"]
                .as_array()
                .is_some_and(|f| f.iter().any(|x| x == "UP")),
            "{link:#}"
        );
        assert_eq!(tagged(c, "c1").len(), 1, "{:#?}", tagged(c, "c1"));
        assert_eq!(names(c, Some("c1")), vec!["lo", "eth0"]);
        c.invoke("CHECK", "c1", "c1", "eth0", &Cni::with_prev(&conf, &r))
            .ok("CHECK");
    });
}

#[test]
fn cni_gc_removes_detached_pairs_whose_removal_never_ran() {
    with_plumb(|c| {
        // As a DEL leaves them when its child is killed before removing them: a pair down,
        // renamed, tagged as detaching; one of this network, one of another network.
        c.sb.sh_ok(&format!(
            "ip link add vdel000000aa type veth peer name vdel000000ab && \
             ip link set vdel000000aa alias 'plumb:cni net={NET} cid=gone if=eth0 detaching' && \
             ip link add vdel000000ba type veth peer name vdel000000bb && \
             ip link set vdel000000ba alias 'plumb:cni net=other cid=gone if=eth0 detaching'"
        ));
        let conf = c.conf(json!({"cniVersion": "1.1.0"}));
        c.invoke_env(&[("CNI_COMMAND", "GC")], &conf).ok("GC");
        let left: Vec<String> = c.detaching().into_iter().map(|(n, _, _)| n).collect();
        assert_eq!(left, vec!["vdel000000ba"], "GC of {NET}");
    });
}
