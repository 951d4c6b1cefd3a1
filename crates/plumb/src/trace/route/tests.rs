use super::*;
use crate::inspect::lab::{IfaceView, NodeView};

fn iface(
    name: &str,
    kind: LinkKind,
    addr: Option<&str>,
    peer: Option<&str>,
    master: Option<&str>,
) -> IfaceView {
    IfaceView {
        name: name.into(),
        index: 0,
        kind,
        up: true,
        lower_up: true,
        state: "up".into(),
        mtu: 1500,
        mac: None,
        addresses: addr.map(|a| vec![a.to_string()]).unwrap_or_default(),
        peer: peer.map(Into::into),
        master: master.map(Into::into),
        ports: vec![],
        isolated: false,
    }
}

fn veth(name: &str, addr: Option<&str>, peer: &str) -> IfaceView {
    iface(name, LinkKind::Veth, addr, Some(peer), None)
}

fn node(name: &str, interfaces: Vec<IfaceView>) -> NodeView {
    NodeView {
        node: name.into(),
        label: name.into(),
        interfaces,
        routes: vec![],
        rules: None,
    }
}

fn view(nodes: Vec<NodeView>) -> LabView {
    LabView {
        version: 2,
        lab: "t".into(),
        nodes,
    }
}

/// Two routers between a and b: a reaches b through r2, whatever the order of the interfaces.
fn diamond() -> LabView {
    view(vec![
        node(
            "a",
            vec![
                veth("eth1", Some("10.1.0.2/24"), "r1:left"),
                veth("eth2", Some("10.2.0.2/24"), "r2:left"),
            ],
        ),
        node(
            "r1",
            vec![
                veth("left", Some("10.1.0.1/24"), "a:eth1"),
                veth("right", Some("10.3.0.1/24"), "b:eth1"),
            ],
        ),
        node(
            "r2",
            vec![
                veth("left", Some("10.2.0.1/24"), "a:eth2"),
                veth("right", Some("10.4.0.1/24"), "b:eth2"),
            ],
        ),
        node(
            "b",
            vec![
                veth("eth1", Some("10.3.0.2/24"), "r1:right"),
                veth("eth2", Some("10.4.0.2/24"), "r2:right"),
            ],
        ),
    ])
}

/// examples/egress.toml as `show` sees it: members on bridge lan0 of the host, an uplink.
fn egress() -> LabView {
    view(vec![
        node(
            "host",
            vec![
                iface("lan0", LinkKind::Bridge, Some("10.0.0.1/24"), None, None),
                iface(
                    "veth-web",
                    LinkKind::Veth,
                    None,
                    Some("web:eth0"),
                    Some("lan0"),
                ),
                iface(
                    "veth-client",
                    LinkKind::Veth,
                    None,
                    Some("client:eth0"),
                    Some("lan0"),
                ),
                veth("up0", Some("203.0.113.1/24"), "upstream:eth0"),
            ],
        ),
        node(
            "client",
            vec![veth("eth0", Some("10.0.0.2/24"), "host:veth-client")],
        ),
        node(
            "web",
            vec![veth("eth0", Some("10.0.0.3/24"), "host:veth-web")],
        ),
        node(
            "upstream",
            vec![veth("eth0", Some("203.0.113.2/24"), "host:up0")],
        ),
    ])
}

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
