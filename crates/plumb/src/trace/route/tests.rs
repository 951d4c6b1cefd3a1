use super::*;
use crate::trace::fixtures::{diamond, egress};

fn out(oif: &str, via: Option<&str>) -> Result<Decision, String> {
    Ok(Decision::Out {
        oif: oif.into(),
        via: via.map(|v| v.parse().unwrap()),
    })
}

fn names(p: &[PathIface]) -> Vec<String> {
    p.iter()
        .map(|i| format!("{}/{}", i.label, i.iface))
        .collect()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn the_walk_goes_where_the_routes_send_it_not_the_first_way_found() {
    let mut asked = Vec::new();
    let p = follow(&diamond(), "a", ip("10.3.0.2"), |n, iif| {
        asked.push(format!("{n} {iif:?}"));
        match n {
            "a" => out("eth2", Some("10.2.0.1")),
            "r2" => out("right", Some("10.4.0.2")),
            _ => Err(format!("unexpected node {n}")),
        }
    })
    .unwrap();
    assert_eq!(names(&p), ["a/eth2", "r2/left", "r2/right", "b/eth2"]);
    assert_eq!(asked, ["a None", "r2 Some(\"left\")"]);
}

#[test]
fn the_walk_crosses_bridges_to_the_port_of_the_next_hop() {
    let v = egress();
    let p = follow(&v, "client", ip("203.0.113.2"), |n, iif| match (n, iif) {
        ("client", None) => out("eth0", Some("10.0.0.1")),
        ("host", Some("lan0")) => out("up0", None),
        _ => Err(format!("unexpected {n} {iif:?}")),
    })
    .unwrap();
    assert_eq!(
        names(&p),
        [
            "client/eth0",
            "host/veth-client",
            "host/lan0",
            "host/up0",
            "upstream/eth0"
        ]
    );
    // Member to member: on the bridge only, no routing in the host.
    let p = follow(&v, "client", ip("10.0.0.3"), |n, _| match n {
        "client" => out("eth0", None),
        _ => Err(format!("unexpected {n}")),
    })
    .unwrap();
    assert_eq!(
        names(&p),
        [
            "client/eth0",
            "host/veth-client",
            "host/lan0",
            "host/veth-web",
            "web/eth0"
        ]
    );
    // From the bridge's own node out of the bridge.
    let p = follow(&v, "host", ip("10.0.0.3"), |_, _| out("lan0", None)).unwrap();
    assert_eq!(names(&p), ["host/lan0", "host/veth-web", "web/eth0"]);
}

#[test]
fn the_walk_says_where_and_why_it_stopped() {
    let v = diamond();
    let e = follow(&v, "a", ip("10.3.0.2"), |n, _| match n {
        "a" => out("eth1", None),
        _ => Err("no route (EHOSTUNREACH)".into()),
    })
    .unwrap_err();
    assert_eq!(names(&e.path), ["a/eth1", "r1/left"]);
    assert_eq!(e.reason, "node r1: no route (EHOSTUNREACH)");
    // An interface the lab does not have.
    let e = follow(&v, "a", ip("10.3.0.2"), |_, _| out("wg0", None)).unwrap_err();
    assert!(e.reason.contains("wg0"), "{}", e.reason);
    // Two routers sending it to each other.
    let e = follow(&v, "a", ip("10.9.0.1"), |n, _| match n {
        "a" => out("eth1", None),
        "r1" => out("left", None),
        _ => out("eth1", None),
    })
    .unwrap_err();
    assert!(e.reason.contains("loop"), "{}", e.reason);
    // The destination is the source's own address.
    let e = follow(&v, "a", ip("10.1.0.2"), |_, _| Ok(Decision::Local)).unwrap_err();
    assert!(e.reason.contains("own address"), "{}", e.reason);
}
