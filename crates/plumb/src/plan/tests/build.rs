//! Labs built from nothing, and the simulator's own strictness.

use super::*;
use crate::ownership::RTPROT_PLUMB;
use crate::plan::RouteSpec;

#[test]
#[should_panic(expected = "which is not lab seed's")]
fn kernel_delete_of_a_foreign_interface_panics() {
    let mut k = Kernel::host_only();
    let step = Step::DeleteLink {
        node: NodeRef::Host,
        name: "eth0".into(),
        index: Some(2),
    };
    k.apply(
        &lab("seed"),
        &Plan {
            steps: vec![step],
            conflicts: vec![],
        },
    );
}

#[test]
#[should_panic(expected = "ENETUNREACH")]
fn kernel_route_before_its_address_panics() {
    let t = topo(STAR);
    let mut plan = diff(&t, &host_only());
    plan.steps.retain(|s| !matches!(s, Step::AddAddr { .. }));
    Kernel::host_only().apply(&t.name, &plan);
}

#[test]
#[should_panic(expected = "EBUSY")]
fn kernel_rename_of_an_interface_that_is_up_panics() {
    let mut k = Kernel::host_only();
    k.up(&topo(SEED));
    // eth1000 is up: the kernel refuses to rename it.
    k.step(
        &lab("seed"),
        &Step::UnparkLink {
            node: node("ns1"),
            parked: Some(ifname("eth1000")),
            name: "eth0".into(),
            up: true,
            restore_addrs: vec![],
            restore_routes: vec![],
        },
    );
}

#[test]
fn diff_seed_from_empty_orders_namespaces_veths_then_addresses() {
    let plan = diff(&topo(SEED), &host_only());
    assert!(plan.conflicts.is_empty(), "{}", show(&plan));
    assert_order(&plan);
    assert_eq!(plan.steps[0], Step::CreateNs { ns: ns("ns1") });
    let creates_ns = position(&plan, |s| matches!(s, Step::CreateNs { .. }));
    let veths = position(&plan, |s| matches!(s, Step::CreateVeth { .. }));
    let addrs = position(&plan, |s| matches!(s, Step::AddAddr { .. }));
    assert_eq!(creates_ns, [0, 1], "{}", show(&plan));
    assert_eq!(plan.steps[1], Step::CreateNs { ns: ns("ns2") });
    assert_eq!(veths.len(), 2);
    assert_eq!(addrs.len(), 4);
    assert!(creates_ns.iter().max() < veths.iter().min());
    assert!(veths.iter().max() < addrs.iter().min());
    assert!(!plan.steps.iter().any(|s| s.is_delete()));
    let mut added: Vec<String> = plan
        .steps
        .iter()
        .filter_map(|s| match s {
            Step::AddAddr { node, dev, addr } => Some(format!("{node}/{dev}/{addr}")),
            _ => None,
        })
        .collect();
    added.sort();
    assert_eq!(
        added,
        [
            "host/veth1/10.66.77.25/24",
            "ns1/eth1000/10.66.77.24/24",
            "ns1/veth-ns2/10.66.78.1/24",
            "ns2/veth-ns1/10.66.78.2/24",
        ]
    );
}

#[test]
fn diff_seed_from_empty_brings_every_veth_end_up_but_not_lo() {
    let plan = diff(&topo(SEED), &host_only());
    let mut ups: Vec<String> = plan
        .steps
        .iter()
        .filter_map(|s| match s {
            Step::SetLink {
                node,
                name,
                set,
                prev,
            } if set.up == Some(true) => {
                assert_eq!(prev, &None, "a new interface has nothing to restore: {s}");
                Some(format!("{node}/{name}"))
            }
            _ => None,
        })
        .collect();
    ups.sort();
    assert_eq!(
        ups,
        ["host/veth1", "ns1/eth1000", "ns1/veth-ns2", "ns2/veth-ns1"]
    );
}

#[test]
fn diff_star_from_empty_creates_bridge_before_ports_and_routes_last() {
    let plan = diff(&topo(STAR), &host_only());
    assert!(plan.conflicts.is_empty(), "{}", show(&plan));
    assert_order(&plan);
    let bridge = position(&plan, |s| matches!(s, Step::CreateBridge { .. }));
    let veths = position(&plan, |s| matches!(s, Step::CreateVeth { .. }));
    let addrs = position(&plan, |s| matches!(s, Step::AddAddr { .. }));
    let routes = position(&plan, |s| matches!(s, Step::AddRoute { .. }));
    assert_eq!(bridge.len(), 1);
    assert_eq!((veths.len(), addrs.len(), routes.len()), (3, 4, 3));
    assert!(bridge[0] < veths[0]);
    assert!(addrs.iter().max() < routes.iter().min());
    for s in &plan.steps {
        if let Step::CreateVeth { a, b, .. } = s {
            // The end inside the member (a namespace this run creates) goes first; the host
            // end is the bridge's port.
            assert!(matches!(a.node, NodeRef::Ns(_)), "{s}");
            assert_eq!(
                (&b.node, b.master.as_ref()),
                (&NodeRef::Host, Some(&ifname("plumb0")))
            );
        }
        if let Step::AddRoute {
            node,
            route,
            replaces,
        } = s
        {
            assert_ne!(node, &NodeRef::Host);
            assert_eq!(replaces, &None);
            assert_eq!(
                route,
                &RouteSpec {
                    dst: net("0.0.0.0/0"),
                    via: Some(ip("10.88.0.1")),
                    dev: None
                }
            );
        }
    }
}

#[test]
fn diff_seed_applied_then_diffed_again_is_empty() {
    let k = assert_converges(SEED);
    // The host's own interfaces and routes are still there, untouched.
    assert_eq!(k.snap.host.links[..2], host().links[..]);
    for r in host().routes {
        assert!(k.snap.host.routes.contains(&r));
    }
}

#[test]
fn diff_star_applied_then_diffed_again_is_empty() {
    let k = assert_converges(STAR);
    assert_eq!(
        labs(&k),
        [(
            "star".to_string(),
            crate::inspect::LabCounts {
                namespaces: 3,
                host_links: 4,
                ns_links: 3
            }
        )]
    );
}

#[test]
fn diff_range_network_of_fifty_applied_then_diffed_again_is_empty() {
    let k = assert_converges(MANY);
    let counts = k.snap.labs()["many"];
    assert_eq!((counts.namespaces, counts.host_links), (50, 51));
    let m50 = k.state(&node("m50")).unwrap();
    let eth0 = m50.link("eth0").unwrap();
    assert_eq!(
        m50.addrs_of(eth0.index).collect::<Vec<_>>(),
        [&net("10.50.0.51/24")]
    );
}

#[test]
fn diff_routed_lab_applied_then_diffed_again_is_empty() {
    let k = assert_converges(ROUTED);
    let r1 = k.state(&node("r1")).unwrap();
    assert_eq!(r1.sysctls["net.ipv4.ip_forward"], "1");
    assert_eq!(r1.link("lan").unwrap().mtu, 1400);
    let p1 = r1.link("p1").unwrap();
    assert_eq!(p1.master, Some(r1.link("lan").unwrap().index));
    let h1 = k.state(&node("h1")).unwrap().link("eth0").unwrap();
    assert_eq!(h1.mac, Some(MacAddr([2, 0, 0, 0, 0, 0x11])));
    // IPv6 link-local addresses appeared where IPv6 is on; planning ignores them.
    let up0 = r1.link("up0").unwrap();
    assert!(r1
        .addrs_of(up0.index)
        .any(|a| a.to_string().starts_with("fe80::")));
    let host_route = k
        .snap
        .host
        .routes
        .iter()
        .find(|r| r.dst == net("10.20.0.0/24"))
        .unwrap();
    assert_eq!(host_route.protocol, RTPROT_PLUMB);
}

#[test]
fn diff_fresh_namespace_end_goes_first_when_joining_an_existing_node() {
    // a exists; b and c join it: each new pair's end in a new namespace goes first, so plumb
    // can choose the indexes there.
    let one = "name = \"j\"\n[nodes.a]\n";
    let three = r#"name = "j"
[nodes.a]
[nodes.b]
[nodes.c]
[[links]]
endpoints = ["a:to-b", "b:to-a"]
[[links]]
endpoints = ["b:to-c", "c:to-b"]
"#;
    let (plan, _) = converge(one, three);
    let firsts: Vec<String> = plan
        .steps
        .iter()
        .filter_map(|s| match s {
            Step::CreateVeth { a, .. } => Some(format!("{}:{}", a.node, a.name)),
            _ => None,
        })
        .collect();
    assert_eq!(firsts, ["b:to-a", "b:to-c"], "{}", show(&plan));
}

/// Host forwarding sysctls the plan of `src` (from the host alone, where both are 0) sets, with
/// the value each step would restore.
fn forwarding_steps(src: &str) -> Vec<(String, Option<String>)> {
    let mut snap = host_only();
    for key in ["net.ipv4.ip_forward", "net.ipv6.conf.all.forwarding"] {
        snap.host.sysctls.insert(key.into(), "0".into());
    }
    diff(&topo(src), &snap)
        .steps
        .iter()
        .filter_map(|s| match s {
            Step::Sysctl {
                node: NodeRef::Host,
                key,
                value,
                prev,
            } if value == "1" => Some((key.clone(), prev.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn diff_nat_turns_on_forwarding_of_each_family_its_subnets_have() {
    let lab = |subnet: &str| {
        format!(
            "name = \"fwd\"\n[networks.lan0]\nsubnet = {subnet}\nmembers = [\"web\"]\n\
             nat = true\n"
        )
    };
    let zero = Some("0".to_string());
    assert_eq!(
        forwarding_steps(&lab(r#""10.90.0.0/24""#)),
        [("net.ipv4.ip_forward".to_string(), zero.clone())]
    );
    assert_eq!(
        forwarding_steps(&lab(r#""fd00:90::/64""#)),
        [("net.ipv6.conf.all.forwarding".to_string(), zero.clone())]
    );
    assert_eq!(
        forwarding_steps(&lab(r#"["10.90.0.0/24", "fd00:90::/64"]"#)),
        [
            ("net.ipv4.ip_forward".to_string(), zero.clone()),
            ("net.ipv6.conf.all.forwarding".to_string(), zero)
        ]
    );
    // Publishing alone needs forwarding too; a network with neither needs none.
    let published = lab(r#""fd00:90::/64""#).replace("nat = true", "publish = [\"80:web:80\"]");
    assert_eq!(forwarding_steps(&published).len(), 1);
    assert!(forwarding_steps(&lab(r#""fd00:90::/64""#).replace("nat = true\n", "")).is_empty());
}

#[test]
fn diff_dual_stack_nat_lab_applied_then_diffed_again_is_empty() {
    let k = assert_converges(
        r#"name = "dual"
[networks.lan0]
subnet = ["10.90.0.0/24", "fd00:90::/64"]
members = ["web", "client"]
nat = true
publish = ["8080:web:80/tcp"]
"#,
    );
    assert_eq!(k.snap.host.sysctls["net.ipv4.ip_forward"], "1");
    assert_eq!(k.snap.host.sysctls["net.ipv6.conf.all.forwarding"], "1");
    let web = k.state(&node("web")).unwrap();
    let eth0 = web.link("eth0").unwrap();
    let global: Vec<String> = web
        .addrs_of(eth0.index)
        .filter(|a| !crate::plan::desired::is_kernel_address(a))
        .map(ToString::to_string)
        .collect();
    assert_eq!(global, ["10.90.0.2/24", "fd00:90::2/64"]);
    let defaults: Vec<Option<IpAddr>> = web
        .routes
        .iter()
        .filter(|r| r.dst.prefix_len() == 0)
        .map(|r| r.via)
        .collect();
    assert_eq!(defaults, [Some(ip("10.90.0.1")), Some(ip("fd00:90::1"))]);
}
