//! Lab views for the tests of the trace's paths: builders, and two labs (a diamond of routers,
//! and examples/egress.toml as `show` sees it).

use crate::inspect::lab::{IfaceView, LabView, NodeView};
use crate::inspect::LinkKind;

pub(crate) fn iface(
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

pub(crate) fn veth(name: &str, addr: Option<&str>, peer: &str) -> IfaceView {
    iface(name, LinkKind::Veth, addr, Some(peer), None)
}

pub(crate) fn node(name: &str, interfaces: Vec<IfaceView>) -> NodeView {
    NodeView {
        node: name.into(),
        label: name.into(),
        interfaces,
        routes: vec![],
        rules: None,
    }
}

pub(crate) fn view(nodes: Vec<NodeView>) -> LabView {
    LabView {
        version: 2,
        lab: "t".into(),
        nodes,
    }
}

/// Two routers between a and b: a reaches b through r2, whatever the order of the interfaces.
pub(crate) fn diamond() -> LabView {
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
pub(crate) fn egress() -> LabView {
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
