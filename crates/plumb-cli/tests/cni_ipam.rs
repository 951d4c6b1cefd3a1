//! An IPAM type other than `host-local` is delegated to the plugin of that name in `CNI_PATH`,
//! as the spec says: here Debian's reference `static` IPAM plugin (containernetworking-plugins),
//! which hands out exactly the addresses its configuration lists. Driven as a runtime drives
//! plumb (environment + stdin, stdout parsed), in a sandbox; asserted through `ip -j`.

mod common;
#[path = "common/cni.rs"]
mod suite;

use serde_json::{json, Value};
use suite::{with_plumb, Cni, BRIDGE, GATEWAY};

fn static_ipam(address: &str) -> Value {
    json!({"ipam": {
        "type": "static",
        "addresses": [{"address": address, "gateway": GATEWAY}],
        "routes": [{"dst": "0.0.0.0/0"}],
    }})
}

fn addrs(c: &Cni<'_>, ns: Option<&str>, dev: &str) -> Vec<String> {
    c.v4(ns, dev)
}

#[test]
fn cni_static_ipam_is_delegated_and_its_address_lives_and_dies_with_the_attachment() {
    with_plumb(|c| {
        let conf = c.conf(static_ipam("10.55.0.77/24"));
        let r = c.add("c1", "ns1", &conf);
        assert_eq!(r["ips"][0]["address"], "10.55.0.77/24", "{r:#}");
        assert_eq!(r["ips"][0]["gateway"], GATEWAY, "{r:#}");
        assert_eq!(addrs(c, Some("ns1"), "eth0"), ["10.55.0.77/24"]);
        assert_eq!(
            addrs(c, None, BRIDGE),
            [format!("{GATEWAY}/24")],
            "the bridge carries the plugin's gateway"
        );
        // CHECK asks the IPAM plugin too, and passes.
        let chk = Cni::with_prev(&conf, &r);
        c.invoke("CHECK", "c1", "ns1", "eth0", &chk).ok("CHECK");
        // A second container asking the same static address is refused, and leaves nothing.
        c.sb.run_ok(&["ip", "netns", "add", "ns2"]);
        let dup = c.invoke("ADD", "c2", "ns2", "eth0", &conf);
        assert_ne!(dup.code, Some(0), "{}", dup.text);
        let left = c.ip(Some("ns2"), &["link", "show"]);
        assert_eq!(
            left.as_array().map(Vec::len),
            Some(1),
            "only lo in ns2 after the refused ADD: {left:#}"
        );
        // DEL (twice) removes the attachment and the reservation.
        let del = Cni::with_prev(&conf, &r);
        c.invoke("DEL", "c1", "ns1", "eth0", &del).ok("DEL");
        c.invoke("DEL", "c1", "ns1", "eth0", &del).ok("DEL again");
        c.settle();
        let links = c.ip(Some("ns1"), &["link", "show"]);
        assert_eq!(
            links.as_array().map(Vec::len),
            Some(1),
            "the container interface is gone: {links:#}"
        );
        assert!(c.reserved().is_empty(), "{:?}", c.reserved());
        // The address is free for another container now.
        c.invoke("ADD", "c2", "ns2", "eth0", &conf).ok("ADD c2");
        assert_eq!(addrs(c, Some("ns2"), "eth0"), ["10.55.0.77/24"]);
    });
}

#[test]
fn cni_unknown_ipam_plugin_is_an_error_naming_it() {
    with_plumb(|c| {
        c.sb.run_ok(&["ip", "netns", "add", "ns1"]);
        let conf = c.conf(json!({"ipam": {"type": "no-such-ipam"}}));
        let e = c
            .invoke("ADD", "c1", "ns1", "eth0", &conf)
            .error(999, "ADD");
        let msg = e["msg"].as_str().unwrap_or_default();
        assert!(msg.contains("no-such-ipam"), "{e:#}");
    });
}
