//! Expansion of whole files: ranges, networks, links, ports, and what is refused.

use std::collections::HashSet;
use std::net::IpAddr;

use ipnet::IpNet;

use super::nodes::Use;
use super::*;
use crate::model::error::DiagnosticKind;
use crate::model::names::{IfName, NsName};
use crate::model::port_name::host_port_name;
use crate::model::types::{Endpoint, Interface, Node, Proto, Route, Service, Target};

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn load(src: &str) -> Topology {
    match crate::model::parse_toml(src, "test.toml") {
        Ok(t) => t,
        Err(e) => panic!("does not load:\n{e}"),
    }
}

fn errors(src: &str) -> Vec<DiagnosticKind> {
    let err = crate::model::parse_toml(src, "test.toml").unwrap_err();
    err.diagnostics().iter().map(|d| d.kind().clone()).collect()
}

fn find<'t>(t: &'t Topology, name: &str) -> &'t Node {
    t.nodes.iter().find(|n| n.name.to_string() == name).unwrap()
}

fn iface<'n>(n: &'n Node, name: &str) -> &'n Interface {
    n.interfaces
        .iter()
        .find(|i| i.name.as_str() == name)
        .unwrap()
}

#[test]
fn expand_range_declares_each_node_with_the_same_settings() {
    let t = load(
        r#"
        name = "r"
        [nodes."c[1..12]".interfaces.eth0]
        mtu = 9000
        [nodes."c[1..12]".sysctls]
        "net.ipv4.ip_forward" = 1
        [networks.br0]
        subnet = "10.0.0.0/24"
        members = ["c[1..12]"]
        "#,
    );
    let names: Vec<String> = t.nodes.iter().map(|n| n.name.to_string()).collect();
    assert_eq!(names.len(), 12);
    assert_eq!(&names[..3], ["c1", "c2", "c3"]);
    assert_eq!(names[11], "c12");
    assert!(t
        .nodes
        .iter()
        .all(|n| n.sysctls == [("net.ipv4.ip_forward".to_owned(), "1".to_owned())]));
    assert_eq!(iface(&t.nodes[0], "eth0").mtu, Some(9000));
}

#[test]
fn expand_unconnected_interface_in_range_is_reported_once() {
    let kinds = errors("name = \"r\"\n[nodes.\"c[1..100]\".interfaces.eth0]\n");
    assert_eq!(kinds.len(), 1);
    assert!(matches!(&kinds[0], DiagnosticKind::UnconnectedInterface { node, .. } if node == "c1"));
}

#[test]
fn expand_network_gateway_defaults_to_first_address_on_the_bridge() {
    let t =
        load("name = \"n\"\n[networks.br0]\nsubnet = \"10.1.2.0/24\"\nmembers = [\"a\", \"b\"]\n");
    let net = &t.networks[0];
    assert_eq!(net.subnets[0].gateway, ip("10.1.2.1"));
    assert_eq!(t.bridges[0].addresses, [self::net("10.1.2.1/24")]);
    assert_eq!(
        iface(find(&t, "a"), "eth0").addresses,
        [self::net("10.1.2.2/24")]
    );
    assert_eq!(
        iface(find(&t, "b"), "eth0").addresses,
        [self::net("10.1.2.3/24")]
    );
}

#[test]
fn expand_network_member_addresses_skip_an_explicit_gateway() {
    let t = load(
        "name = \"n\"\n[networks.br0]\nsubnet = \"10.1.2.0/29\"\ngateway = \"10.1.2.2\"\n\
         members = [\"a\", \"b\", \"c\"]\ninterface = \"net0\"\nmtu = 1400\n",
    );
    let got: Vec<_> = ["a", "b", "c"]
        .iter()
        .map(|m| iface(find(&t, m), "net0").addresses[0])
        .collect();
    assert_eq!(
        got,
        [net("10.1.2.1/29"), net("10.1.2.3/29"), net("10.1.2.4/29")]
    );
    assert_eq!(
        find(&t, "a").routes,
        [Route {
            to: None,
            via: Some(ip("10.1.2.2")),
            dev: None
        }]
    );
    assert_eq!(iface(find(&t, "a"), "net0").mtu, Some(1400));
    assert_eq!(t.bridges[0].mtu, Some(1400));
    assert!(t.links.iter().all(|l| l.mtu == Some(1400)));
}

#[test]
fn expand_default_route_is_not_added_twice_per_family() {
    let t = load(
        r#"
        name = "n"
        [nodes.a]
        [nodes.b]
        routes = [{ to = "default", via = "10.2.0.1" }]
        [networks.one]
        subnet = "10.1.0.0/24"
        members = ["a", "b"]
        [networks.two]
        subnet = "10.2.0.0/24"
        members = ["a", "b"]
        interface = "eth1"
        [networks.six]
        subnet = "fd00:6::/64"
        members = ["a"]
        interface = "eth2"
        "#,
    );
    let a = find(&t, "a");
    // From the first network only, then the IPv6 one.
    assert_eq!(
        a.routes,
        [
            Route {
                to: None,
                via: Some(ip("10.1.0.1")),
                dev: None
            },
            Route {
                to: None,
                via: Some(ip("fd00:6::1")),
                dev: None
            },
        ]
    );
    assert_eq!(iface(a, "eth2").addresses, [net("fd00:6::2/64")]);
    // b declared its own default route: none added.
    assert_eq!(
        find(&t, "b").routes,
        [Route {
            to: None,
            via: Some(ip("10.2.0.1")),
            dev: None
        }]
    );
}

#[test]
fn expand_undeclared_members_come_after_declared_nodes() {
    let t = load(
        "name = \"n\"\n[nodes.z]\n[networks.br0]\nsubnet = \"10.1.0.0/24\"\nmembers = [\"m[1..2]\", \"z\"]\n",
    );
    let names: Vec<String> = t.nodes.iter().map(|n| n.name.to_string()).collect();
    assert_eq!(names, ["z", "m1", "m2"]);
    assert_eq!(iface(find(&t, "z"), "eth0").addresses, [net("10.1.0.4/24")]);
    let members: Vec<&str> = t.networks[0].members.iter().map(|m| m.as_str()).collect();
    assert_eq!(members, ["m1", "m2", "z"]);
}

#[test]
fn expand_member_interface_settings_are_merged() {
    let t = load(
        r#"
        name = "n"
        [nodes.web.interfaces.eth0]
        mac = "02:00:00:00:00:07"
        addresses = ["fd00::7/64"]
        mtu = 9000
        [networks.br0]
        subnet = "10.1.0.0/24"
        members = ["web"]
        mtu = 1400
        "#,
    );
    let eth0 = iface(find(&t, "web"), "eth0");
    assert_eq!(eth0.addresses, [net("fd00::7/64"), net("10.1.0.2/24")]);
    assert_eq!(eth0.mtu, Some(9000));
    assert_eq!(
        eth0.mac.map(|m| m.to_string()),
        Some("02:00:00:00:00:07".to_owned())
    );
    assert_eq!(find(&t, "web").interfaces.len(), 1);
}

#[test]
fn expand_bare_bridge_endpoint_gets_a_generated_port() {
    let t = load(
        r#"
        name = "b"
        [bridges.br0]
        addresses = ["10.5.0.1/24"]
        [nodes.ns1.interfaces.eth0]
        addresses = ["10.5.0.2/24"]
        [[links]]
        endpoints = ["br0", "ns1:eth0"]
        mtu = 1300
        "#,
    );
    let link = &t.links[0];
    let ns1 = NodeRef::Ns(NsName::new("ns1").unwrap());
    let port = host_port_name(&t.name, &ns1, &IfName::new("eth0").unwrap());
    assert_eq!(
        link.a,
        Endpoint {
            node: NodeRef::Host,
            ifname: port.clone(),
            bridge: Some(IfName::new("br0").unwrap())
        }
    );
    assert_eq!(link.b.node, ns1);
    assert_eq!(iface(&t.host, port.as_str()).mtu, Some(1300));
    assert_eq!(iface(find(&t, "ns1"), "eth0").mtu, Some(1300));
}

#[test]
fn expand_bridge_colon_ifname_is_a_named_port_in_the_bridges_node() {
    let t = load(
        r#"
        name = "b"
        [nodes.r1]
        [bridges.lan]
        node = "r1"
        [[links]]
        endpoints = ["lan:p1", "ns2:eth0"]
        [nodes.ns2]
        "#,
    );
    let r1 = NodeRef::Ns(NsName::new("r1").unwrap());
    assert_eq!(t.bridges[0].node, r1);
    let a = &t.links[0].a;
    assert_eq!((&a.node, a.ifname.as_str()), (&r1, "p1"));
    assert_eq!(a.bridge.as_ref().map(IfName::as_str), Some("lan"));
    assert_eq!(iface(find(&t, "r1"), "p1").name.as_str(), "p1");
}

#[test]
fn expand_link_mtu_yields_to_the_interfaces_own() {
    let t = load(
        r#"
        name = "m"
        [nodes.ns1.interfaces.eth0]
        mtu = 9000
        [[links]]
        endpoints = ["host:veth0", "ns1:eth0"]
        mtu = 1500
        "#,
    );
    assert_eq!(iface(find(&t, "ns1"), "eth0").mtu, Some(9000));
    assert_eq!(iface(&t.host, "veth0").mtu, Some(1500));
    assert_eq!(t.links[0].mtu, Some(1500));
}

#[test]
fn expand_publish_firewall_and_expect_are_typed() {
    let t = load(
        r#"
        name = "f"
        [networks.front]
        subnet = "10.88.0.0/24"
        members = ["web", "dns"]
        nat = true
        isolated = true
        publish = ["8080:web:80/tcp", "53:dns:53/udp", "8443:web:443"]
        [nodes.web.firewall]
        ingress = "deny"
        allow = ["icmp", "tcp/80", "udp/53 from 10.88.0.0/16"]
        [[expect]]
        from = "dns"
        to = "web"
        proto = "tcp/80"
        result = "reach"
        [[expect]]
        from = "host"
        to = "10.88.0.2"
        result = "blocked"
        "#,
    );
    let net = &t.networks[0];
    assert!(net.nat && net.isolated);
    let published: Vec<_> = net
        .publish
        .iter()
        .map(|p| (p.host_port, p.member.as_str(), p.port, p.proto))
        .collect();
    assert_eq!(
        published,
        [
            (8080, "web", 80, Proto::Tcp),
            (53, "dns", 53, Proto::Udp),
            (8443, "web", 443, Proto::Tcp)
        ]
    );
    let fw = find(&t, "web").firewall.clone().unwrap();
    assert!(!fw.ingress_allow);
    assert_eq!(fw.allow.len(), 3);
    assert_eq!(fw.allow[2].from, Some(net_("10.88.0.0/16")));
    assert_eq!(t.expects[0].service, Service::Tcp(80));
    assert_eq!(
        t.expects[0].to,
        Target::Node(NodeRef::Ns(NsName::new("web").unwrap()))
    );
    assert_eq!(t.expects[1].from, NodeRef::Host);
    assert_eq!(
        (t.expects[1].to.clone(), t.expects[1].reach),
        (Target::Addr(ip("10.88.0.2")), false)
    );
    assert_eq!(t.expects[1].service, Service::Icmp);
}

fn net_(s: &str) -> IpNet {
    net(s)
}

#[test]
fn expand_route_via_a_network_gateway_and_link_local_with_dev_are_accepted() {
    let t = load(
        r#"
        name = "r"
        [nodes.web]
        routes = [
          { to = "10.9.0.0/16", via = "10.88.0.1" },
          { to = "fd00:9::/48", via = "fe80::1", dev = "eth0" },
          { to = "192.0.2.0/24", dev = "lo" },
        ]
        [networks.front]
        subnet = "10.88.0.0/24"
        members = ["web"]
        "#,
    );
    // Declared routes first, the network's default route after them.
    assert_eq!(find(&t, "web").routes.len(), 4);
}

#[test]
fn expand_generated_port_names_colliding_are_reported() {
    let src = "";
    let mut sink = Sink::new(src);
    let lab = LabName::new("x").unwrap();
    let mut x = Expander::new(&mut sink, lab, HashSet::new());
    let name = IfName::new("pl0000000000000").unwrap();
    assert!(x.occupy(
        NodeId::Host,
        &name,
        Use::Port {
            seed: "x/a/eth0".into(),
            line: 1
        },
        0
    ));
    assert!(!x.occupy(
        NodeId::Host,
        &name,
        Use::Port {
            seed: "x/b/eth0".into(),
            line: 2
        },
        0
    ));
    let err = sink.into_error("t");
    assert!(matches!(
        err.diagnostics()[0].kind(),
        DiagnosticKind::PortNameCollision { .. }
    ));
}

#[test]
fn expand_member_of_two_networks_on_one_interface_is_reported() {
    let kinds = errors(
        "name = \"n\"\n[networks.a]\nsubnet = \"10.1.0.0/24\"\nmembers = [\"w\"]\n\
         [networks.b]\nsubnet = \"10.2.0.0/24\"\nmembers = [\"w\"]\n",
    );
    assert_eq!(kinds.len(), 1);
    assert!(
        matches!(&kinds[0], DiagnosticKind::InterfaceReused { first, .. } if first.contains("network `a`"))
    );
}

#[test]
fn expand_link_using_lo_is_reported() {
    let kinds = errors("name = \"n\"\n[nodes.a]\n[[links]]\nendpoints = [\"a:lo\", \"host:v\"]\n");
    assert!(
        matches!(&kinds[0], DiagnosticKind::InterfaceReused { first, .. } if first.contains("loopback"))
    );
}

#[test]
fn expand_json_null_means_not_written() {
    let t = crate::model::parse_json(
        r#"{"name": "j", "networks": {"br0": {"subnet": "10.1.0.0/24", "gateway": null, "members": ["a"]}}}"#,
        "t.json",
    )
    .unwrap();
    assert_eq!(t.networks[0].subnets[0].gateway, ip("10.1.0.1"));
}
