//! The example labs in `examples/` load and expand as documented.

use std::collections::HashSet;
use std::net::IpAddr;
use std::path::PathBuf;

use ipnet::IpNet;
use plumb::model::{self, host_port_name, Node, NodeRef, Topology};

fn example(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples")
        .join(name)
}

fn load(name: &str) -> Topology {
    match model::load(&example(name)) {
        Ok(t) => t,
        Err(e) => panic!("{name} does not load:\n{e}"),
    }
}

fn node<'t>(t: &'t Topology, name: &str) -> &'t Node {
    t.nodes
        .iter()
        .find(|n| n.name.to_string() == name)
        .unwrap_or_else(|| panic!("no node {name}"))
}

fn addrs(n: &Node, ifname: &str) -> Vec<IpNet> {
    let iface = n.interfaces.iter().find(|i| i.name.as_str() == ifname);
    iface
        .unwrap_or_else(|| panic!("{} has no {ifname}", n.name))
        .addresses
        .clone()
}

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

#[test]
fn examples_seed_loads_with_ns1_ns2_and_the_host_veth() {
    let t = load("seed.toml");
    assert_eq!(t.name.as_str(), "seed");
    let names: Vec<String> = t.nodes.iter().map(|n| n.name.to_string()).collect();
    assert_eq!(names, ["ns1", "ns2"]);
    assert_eq!(addrs(&t.host, "veth1"), [net("10.66.77.25/24")]);
    assert_eq!(addrs(node(&t, "ns1"), "eth1000"), [net("10.66.77.24/24")]);
    assert_eq!(addrs(node(&t, "ns1"), "veth-ns2"), [net("10.66.78.1/24")]);
    assert_eq!(addrs(node(&t, "ns2"), "veth-ns1"), [net("10.66.78.2/24")]);
    assert_eq!(t.links.len(), 2);
    let first = &t.links[0];
    assert_eq!(
        (first.a.node.clone(), first.a.ifname.as_str()),
        (NodeRef::Host, "veth1")
    );
    assert_eq!(
        (first.b.node.to_string(), first.b.ifname.as_str()),
        ("ns1".to_owned(), "eth1000")
    );
    assert!(t.bridges.is_empty() && t.networks.is_empty());
}

#[test]
fn examples_star_expands_bridge_addresses_and_default_routes() {
    let t = load("star.toml");
    assert_eq!(t.name.as_str(), "star");
    assert_eq!(t.bridges.len(), 1);
    let br = &t.bridges[0];
    assert_eq!((br.name.as_str(), &br.node), ("plumb0", &NodeRef::Host));
    assert_eq!(br.addresses, [net("10.88.0.1/24")]);
    let gw: IpAddr = "10.88.0.1".parse().unwrap();
    for (name, addr) in [
        ("web", "10.88.0.2/24"),
        ("db", "10.88.0.3/24"),
        ("cache", "10.88.0.4/24"),
    ] {
        let n = node(&t, name);
        assert_eq!(addrs(n, "eth0"), [net(addr)]);
        assert_eq!(n.routes.len(), 1);
        assert_eq!((n.routes[0].to, n.routes[0].via), (None, Some(gw)));
    }
    assert_eq!(t.links.len(), 3);
    let lab = t.name.clone();
    for link in &t.links {
        assert_eq!(link.b.node, NodeRef::Host);
        assert_eq!(link.b.bridge.as_ref().map(|b| b.as_str()), Some("plumb0"));
        assert_eq!(
            link.b.ifname,
            host_port_name(&lab, &link.a.node, &link.a.ifname)
        );
    }
    assert_eq!(t.host.interfaces.len(), 3);
}

#[test]
fn examples_dual_stack_expands_an_address_and_a_default_route_per_family() {
    let t = load("dual-stack.toml");
    assert_eq!(t.name.as_str(), "dual-stack");
    assert_eq!(
        t.bridges[0].addresses,
        [net("10.96.0.1/24"), net("fd00:96::1/64")]
    );
    let gw4: IpAddr = "10.96.0.1".parse().unwrap();
    let gw6: IpAddr = "fd00:96::1".parse().unwrap();
    for (name, v4, v6) in [
        ("web", "10.96.0.2/24", "fd00:96::2/64"),
        ("client", "10.96.0.3/24", "fd00:96::3/64"),
    ] {
        let n = node(&t, name);
        assert_eq!(addrs(n, "eth0"), [net(v4), net(v6)]);
        let routes: Vec<_> = n.routes.iter().map(|r| (r.to, r.via)).collect();
        assert_eq!(routes, [(None, Some(gw4)), (None, Some(gw6))]);
    }
    assert_eq!(
        addrs(&t.host, "up6"),
        [net("198.51.100.1/24"), net("2001:db8:100::1/64")]
    );
    assert_eq!(
        addrs(node(&t, "upstream"), "eth0"),
        [net("198.51.100.2/24"), net("2001:db8:100::2/64")]
    );
    let n = &t.networks[0];
    assert!(n.nat);
    assert_eq!(n.subnets.len(), 2);
    assert_eq!(n.publish.len(), 2);
}

#[test]
fn examples_star_1000_expands_to_1000_members_with_distinct_addresses() {
    let t = load("star-1000.toml");
    assert_eq!(t.nodes.len(), 1000);
    assert_eq!(t.nodes[0].name.to_string(), "c1");
    assert_eq!(t.nodes[999].name.to_string(), "c1000");
    let gw: IpAddr = "10.200.0.1".parse().unwrap();
    let subnet = net("10.200.0.0/20");
    let mut seen = HashSet::new();
    for n in &t.nodes {
        let a = addrs(n, "eth0");
        assert_eq!(a.len(), 1);
        assert!(subnet.contains(&a[0].addr()) && a[0].addr() != gw);
        assert!(seen.insert(a[0].addr()), "address {} given twice", a[0]);
        assert_eq!(n.routes.len(), 1);
        assert_eq!((n.routes[0].to, n.routes[0].via), (None, Some(gw)));
    }
    let ports: HashSet<_> = t.links.iter().map(|l| l.b.ifname.clone()).collect();
    assert_eq!(ports.len(), 1000);
    assert_eq!(t.networks[0].members.len(), 1000);
}

#[test]
fn examples_star_1000_text_expands_the_same_every_time() {
    // How fast it expands is measured by the benchmarks (bench/), not asserted in a test.
    let src = std::fs::read_to_string(example("star-1000.toml")).unwrap();
    let first = model::parse_toml(&src, "star-1000.toml").unwrap();
    let again = model::parse_toml(&src, "star-1000.toml").unwrap();
    assert_eq!(first, again);
    assert_eq!(first, load("star-1000.toml"));
    assert_eq!(first.links.len(), 1000);
}

#[test]
fn examples_json_and_toml_of_the_seed_give_the_same_topology() {
    let toml = load("seed.toml");
    let json = r#"{
      "name": "seed",
      "nodes": {
        "ns1": { "interfaces": { "eth1000": { "addresses": ["10.66.77.24/24"] },
                                 "veth-ns2": { "addresses": ["10.66.78.1/24"] } } },
        "host": { "interfaces": { "veth1": { "addresses": ["10.66.77.25/24"] } } },
        "ns2": { "interfaces": { "veth-ns1": { "addresses": ["10.66.78.2/24"] } } }
      },
      "links": [
        { "endpoints": ["host:veth1", "ns1:eth1000"] },
        { "endpoints": ["ns1:veth-ns2", "ns2:veth-ns1"] }
      ]
    }"#;
    let from_json = model::parse_json(json, "seed.json").unwrap();
    assert_eq!(from_json, toml);
}
