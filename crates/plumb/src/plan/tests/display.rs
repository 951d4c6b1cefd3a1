//! Steps as the commands they replace: each is one valid shell line.

use super::*;
use crate::plan::{LinkSet, RouteSpec, VethEnd};

#[test]
fn step_display_renders_valid_ip_commands() {
    let veth = |a: (&str, &str), b: (&str, &str), mtu: Option<u32>, master: Option<&str>| {
        Step::CreateVeth {
            a: VethEnd {
                node: node(a.0),
                name: ifname(a.1),
                mtu,
                mac: None,
                master: None,
                ipv6: false,
            },
            b: VethEnd {
                node: node(b.0),
                name: ifname(b.1),
                mtu,
                mac: None,
                master: master.map(ifname),
                ipv6: false,
            },
            link_id: "0".into(),
        }
    };
    let route = |dst: &str, via: Option<&str>, dev: Option<&str>| RouteSpec {
        dst: net(dst),
        via: via.map(ip),
        dev: dev.map(str::to_string),
    };
    let cases = [
        (
            Step::CreateNs { ns: ns("ns1") },
            "ip netns add ns1 && ip -n ns1 link set lo up",
        ),
        (Step::DeleteNs { ns: ns("ns1") }, "ip netns del ns1"),
        (
            veth(("ns1", "veth-ns2"), ("ns2", "veth-ns1"), None, None),
            "ip -n ns1 link add veth-ns2 type veth peer name veth-ns1 netns ns2",
        ),
        (
            veth(("host", "a0"), ("host", "b0"), Some(1400), None),
            "ip link add a0 mtu 1400 type veth peer name b0",
        ),
        (
            veth(("web", "eth0"), ("host", "vweb"), None, Some("plumb0")),
            "ip link add vweb type veth peer name eth0 netns web && ip link set vweb master plumb0",
        ),
        (
            Step::AddAddr {
                node: node("ns1"),
                dev: "eth1000".into(),
                addr: net("10.66.77.24/24"),
            },
            "ip -n ns1 addr add 10.66.77.24/24 dev eth1000",
        ),
        (
            Step::DelAddr {
                node: NodeRef::Host,
                dev: "veth1".into(),
                addr: net("10.66.77.25/24"),
            },
            "ip addr del 10.66.77.25/24 dev veth1",
        ),
        (
            Step::AddRoute {
                node: node("web"),
                route: route("0.0.0.0/0", Some("10.88.0.1"), None),
                replaces: None,
            },
            "ip -n web route add default via 10.88.0.1 proto 250",
        ),
        (
            Step::AddRoute {
                node: node("web"),
                route: route("::/0", None, Some("eth0")),
                replaces: Some(route("::/0", None, Some("eth1"))),
            },
            "ip -n web route replace ::/0 dev eth0 proto 250",
        ),
        (
            Step::DelRoute {
                node: NodeRef::Host,
                route: route("10.20.0.0/24", Some("10.10.0.2"), Some("r1up")),
            },
            "ip route del 10.20.0.0/24 via 10.10.0.2 dev r1up proto 250",
        ),
        (
            Step::SetLink {
                node: node("ns1"),
                name: "eth1000".into(),
                set: LinkSet {
                    up: Some(true),
                    ..LinkSet::default()
                },
                prev: None,
            },
            "ip -n ns1 link set eth1000 up",
        ),
        (
            Step::SetLink {
                node: NodeRef::Host,
                name: "p1".into(),
                set: LinkSet {
                    mtu: Some(9000),
                    master: Some(None),
                    isolated: Some(true),
                    ..LinkSet::default()
                },
                prev: None,
            },
            "ip link set p1 mtu 9000 nomaster && ip link set p1 type bridge_slave isolated on",
        ),
        (
            Step::SetLink {
                node: NodeRef::Host,
                name: "br0".into(),
                set: LinkSet {
                    stp: Some(true),
                    ..LinkSet::default()
                },
                prev: None,
            },
            "ip link set br0 type bridge stp_state 1",
        ),
        (
            Step::CreateBridge {
                node: NodeRef::Host,
                name: ifname("plumb0"),
                mtu: None,
                stp: false,
                mac: MacAddr([2, 0, 0, 0, 0, 1]),
                ipv6: false,
            },
            "ip link add plumb0 type bridge stp_state 0 mcast_snooping 0",
        ),
        (
            Step::DeleteLink {
                node: node("ns1"),
                name: "eth1000".into(),
                index: Some(2),
            },
            "ip -n ns1 link del eth1000",
        ),
        (
            Step::DeleteGroup { group: 0x706c_0001 },
            "ip link del group 1886126081",
        ),
        (
            Step::Sysctl {
                node: node("r1"),
                key: "net.ipv4.ip_forward".into(),
                value: "1".into(),
                prev: None,
            },
            "ip netns exec r1 sysctl -w net.ipv4.ip_forward=1",
        ),
        (
            Step::ParkLink {
                node: node("h1"),
                name: "eth0".into(),
                parked: Some(ifname("plp0123456789ab")),
                up: true,
                restore_addrs: vec![],
                restore_routes: vec![],
            },
            "ip -n h1 link set eth0 down && ip -n h1 link set eth0 name plp0123456789ab",
        ),
        (
            Step::UnparkLink {
                node: node("h1"),
                parked: Some(ifname("plp0123456789ab")),
                name: "eth0".into(),
                up: true,
                restore_addrs: vec![],
                restore_routes: vec![],
            },
            "ip -n h1 link set plp0123456789ab name eth0 && ip -n h1 link set eth0 up",
        ),
    ];
    for (step, want) in cases {
        assert_eq!(step.to_string(), want);
    }
}

#[test]
fn step_inverse_restores_what_the_step_changed() {
    let add = Step::AddAddr {
        node: node("ns1"),
        dev: "eth0".into(),
        addr: net("10.0.0.1/24"),
    };
    assert_eq!(
        add.inverse(),
        Some(Step::DelAddr {
            node: node("ns1"),
            dev: "eth0".into(),
            addr: net("10.0.0.1/24")
        })
    );
    assert_eq!(
        Step::CreateNs { ns: ns("ns1") }.inverse(),
        Some(Step::DeleteNs { ns: ns("ns1") })
    );
    assert_eq!(Step::DeleteNs { ns: ns("ns1") }.inverse(), None);
    let mtu = |m| LinkSet {
        mtu: Some(m),
        ..LinkSet::default()
    };
    let set = Step::SetLink {
        node: NodeRef::Host,
        name: "x".into(),
        set: mtu(9000),
        prev: Some(mtu(1500)),
    };
    assert_eq!(
        set.inverse(),
        Some(Step::SetLink {
            node: NodeRef::Host,
            name: "x".into(),
            set: mtu(1500),
            prev: None,
        })
    );
    let new_link = Step::SetLink {
        node: NodeRef::Host,
        name: "x".into(),
        set: mtu(9000),
        prev: None,
    };
    assert_eq!(new_link.inverse(), None);
    let sysctl = Step::Sysctl {
        node: NodeRef::Host,
        key: "net.ipv4.ip_forward".into(),
        value: "1".into(),
        prev: Some("0".into()),
    };
    assert!(matches!(sysctl.inverse(), Some(Step::Sysctl { value, .. }) if value == "0"));
    let fw = Step::Firewall {
        node: NodeRef::Host,
        table: "plumb-x".into(),
        version: "new".into(),
        rules: crate::firewall::Table::empty("plumb-x"),
        prev: Some("old".into()),
    };
    assert_eq!(
        fw.inverse(),
        Some(Step::RestoreFirewall {
            node: NodeRef::Host,
            table: "plumb-x".into(),
            version: "old".into()
        })
    );
}
