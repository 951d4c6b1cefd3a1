//! Converging a built lab to an edited file: only what changed is touched, kept objects are
//! changed in place with the values they had (for undo), and removals wait for the commit.

use super::*;
use crate::plan::{LinkSet, Phase, RouteSpec};

/// Interfaces the plan renames out of the way (a new one takes their name).
fn parks(plan: &Plan) -> Vec<(NodeRef, String)> {
    plan.steps
        .iter()
        .filter_map(|s| match s {
            Step::ParkLink {
                node,
                name,
                parked: Some(_),
                ..
            } => Some((node.clone(), name.clone())),
            _ => None,
        })
        .collect()
}

/// Interfaces the plan takes down before building (every one that goes), sorted.
fn downs(plan: &Plan) -> Vec<(NodeRef, String)> {
    let mut v: Vec<_> = plan
        .steps
        .iter()
        .filter_map(|s| match s {
            Step::ParkLink { node, name, .. } => Some((node.clone(), name.clone())),
            _ => None,
        })
        .collect();
    v.sort();
    v
}

#[test]
fn diff_seed_without_ns2_deletes_ns2_and_its_peer_at_commit() {
    let without_ns2 = r#"
        name = "seed"
        [nodes.ns1.interfaces.eth1000]
        addresses = ["10.66.77.24/24"]
        [nodes.host.interfaces.veth1]
        addresses = ["10.66.77.25/24"]
        [[links]]
        endpoints = ["host:veth1", "ns1:eth1000"]
    "#;
    let (plan, k) = converge(SEED, without_ns2);
    assert_eq!(plan.steps.len(), 3, "{}", show(&plan));
    // ns1's end of the pair into ns2 is taken down first; then, at commit, deleted.
    assert_eq!(downs(&plan), [(node("ns1"), "veth-ns2".to_string())]);
    assert!(matches!(
        &plan.steps[1],
        Step::DeleteLink { node: n, name, index: Some(_) } if *n == node("ns1") && name == "veth-ns2"
    ));
    assert_eq!(plan.steps[2], Step::DeleteNs { ns: ns("ns2") });
    assert!(plan.steps[1..].iter().all(|s| s.phase() == Phase::Commit));
    assert!(k.state(&node("ns2")).is_none());
    assert!(k.link(&node("ns1"), "veth-ns2").is_none());
    assert!(k.link(&node("ns1"), "eth1000").is_some());
}

#[test]
fn diff_seed_changed_address_adds_the_new_one_before_removing_the_old() {
    let after = edit(
        SEED,
        r#"addresses = ["10.66.78.2/24"]"#,
        r#"addresses = ["10.66.78.3/24"]"#,
    );
    let (plan, _) = converge(SEED, &after);
    assert_eq!(
        plan.steps,
        [
            Step::AddAddr {
                node: node("ns2"),
                dev: "veth-ns1".into(),
                addr: net("10.66.78.3/24")
            },
            Step::DelAddr {
                node: node("ns2"),
                dev: "veth-ns1".into(),
                addr: net("10.66.78.2/24")
            },
        ],
        "{}",
        show(&plan)
    );
}

/// Checks that `plan` replaces exactly the pair between `old` ends by the pair between `new`
/// ends: the old ends whose names the new pair takes are parked first, the old pair is deleted
/// once at commit (by its index), and every other step is about the new ends.
fn assert_rebuilds_pair(plan: &Plan, old: [(&str, &str); 2], new: [(&str, &str); 2]) {
    let old: Vec<(NodeRef, String)> = old.iter().map(|(n, i)| (node(n), i.to_string())).collect();
    let new: Vec<(NodeRef, String)> = new.iter().map(|(n, i)| (node(n), i.to_string())).collect();
    let mut want_parks: Vec<_> = old.iter().filter(|o| new.contains(o)).cloned().collect();
    want_parks.sort();
    let mut got_parks = parks(plan);
    got_parks.sort();
    assert_eq!(got_parks, want_parks, "{}", show(plan));
    let mut want_downs = old.clone();
    want_downs.sort();
    assert_eq!(
        downs(plan),
        want_downs,
        "both old ends go down first:
{}",
        show(plan)
    );
    let deletes: Vec<&Step> = plan
        .steps
        .iter()
        .filter(|s| matches!(s, Step::DeleteLink { .. }))
        .collect();
    assert_eq!(deletes.len(), 1, "one end of the old pair:\n{}", show(plan));
    let Step::DeleteLink { index, .. } = deletes[0] else {
        unreachable!()
    };
    assert!(index.is_some(), "deleted by index: {}", deletes[0]);
    let creates: Vec<&Step> = plan
        .steps
        .iter()
        .filter(|s| matches!(s, Step::CreateVeth { .. }))
        .collect();
    assert_eq!(creates.len(), 1, "{}", show(plan));
    let mut created = links_of(creates[0]);
    created.sort();
    let mut want = new.clone();
    want.sort();
    assert_eq!(created, want);
    for s in &plan.steps {
        match s {
            Step::DeleteLink { .. } | Step::CreateVeth { .. } | Step::ParkLink { .. } => {}
            Step::SetLink { .. } | Step::AddAddr { .. } => {
                assert!(new.contains(&links_of(s)[0]), "`{s}` in\n{}", show(plan))
            }
            Step::AddRoute { .. } => {}
            other => panic!("unexpected step `{other}` in\n{}", show(plan)),
        }
    }
}

#[test]
fn diff_seed_moved_endpoint_rebuilds_only_that_pair() {
    let after = edit(
        SEED,
        r#"endpoints = ["ns1:veth-ns2", "ns2:veth-ns1"]"#,
        r#"endpoints = ["ns1:veth-ns2", "ns2:eth7"]"#,
    );
    let after = edit(
        &after,
        "[nodes.ns2.interfaces.veth-ns1]",
        "[nodes.ns2.interfaces.eth7]",
    );
    let (plan, k) = converge(SEED, &after);
    assert_rebuilds_pair(
        &plan,
        [("ns1", "veth-ns2"), ("ns2", "veth-ns1")],
        [("ns1", "veth-ns2"), ("ns2", "eth7")],
    );
    assert!(k.link(&node("ns2"), "veth-ns1").is_none());
    let adds = position(&plan, |s| matches!(s, Step::AddAddr { .. }));
    assert_eq!(
        adds.len(),
        2,
        "both ends get their addresses:\n{}",
        show(&plan)
    );
}

#[test]
fn diff_seed_endpoint_moved_to_other_namespace_rebuilds_only_that_pair() {
    let after = edit(
        SEED,
        r#"endpoints = ["host:veth1", "ns1:eth1000"]"#,
        r#"endpoints = ["host:veth1", "ns2:eth1000"]"#,
    );
    let after = edit(
        &after,
        "[nodes.ns1.interfaces.eth1000]",
        "[nodes.ns2.interfaces.eth1000]",
    );
    let (plan, k) = converge(SEED, &after);
    assert_rebuilds_pair(
        &plan,
        [("host", "veth1"), ("ns1", "eth1000")],
        [("host", "veth1"), ("ns2", "eth1000")],
    );
    assert!(k.link(&node("ns1"), "eth1000").is_none());
    assert!(k.link(&node("ns1"), "veth-ns2").is_some());
}

#[test]
fn diff_seed_changed_link_mtu_sets_both_ends_in_place() {
    let line = r#"endpoints = ["ns1:veth-ns2", "ns2:veth-ns1"]"#;
    let after = edit(SEED, line, &format!("{line}\nmtu = 1400"));
    let (plan, k) = converge(SEED, &after);
    let mut steps: Vec<String> = plan.steps.iter().map(ToString::to_string).collect();
    steps.sort();
    assert_eq!(
        steps,
        [
            "ip -n ns1 link set veth-ns2 mtu 1400",
            "ip -n ns2 link set veth-ns1 mtu 1400"
        ]
    );
    for s in &plan.steps {
        let Step::SetLink { prev, .. } = s else {
            panic!("{s}")
        };
        assert_eq!(
            prev,
            &Some(LinkSet {
                mtu: Some(1500),
                ..LinkSet::default()
            })
        );
    }
    assert_eq!(k.link(&node("ns1"), "veth-ns2").unwrap().mtu, 1400);
    assert_eq!(k.link(&node("ns2"), "veth-ns1").unwrap().mtu, 1400);
    assert_eq!(k.link(&node("ns1"), "eth1000").unwrap().mtu, 1500);
    // Removing the mtu again goes back to the kernel's default.
    let (back, k) = converge(&after, SEED);
    assert_eq!(back.steps.len(), 2, "{}", show(&back));
    assert_eq!(k.link(&node("ns1"), "veth-ns2").unwrap().mtu, 1500);
}

#[test]
fn diff_bridge_mtu_changed_sets_it_in_place() {
    let after = edit(ROUTED, "mtu = 1400\n\n[nodes.h1", "mtu = 1380\n\n[nodes.h1");
    let (plan, _) = converge(ROUTED, &after);
    assert_eq!(
        plan.steps,
        [Step::SetLink {
            node: node("r1"),
            name: "lan".into(),
            set: LinkSet {
                mtu: Some(1380),
                ..LinkSet::default()
            },
            prev: Some(LinkSet {
                mtu: Some(1400),
                ..LinkSet::default()
            }),
        }],
        "{}",
        show(&plan)
    );
}

#[test]
fn diff_bridge_stp_changed_sets_it_in_place() {
    let after = edit(
        ROUTED,
        "mtu = 1400\n\n[nodes.h1",
        "mtu = 1400\nstp = true\n\n[nodes.h1",
    );
    let (plan, k) = converge(ROUTED, &after);
    assert_eq!(
        plan.steps,
        [Step::SetLink {
            node: node("r1"),
            name: "lan".into(),
            set: LinkSet {
                stp: Some(true),
                ..LinkSet::default()
            },
            prev: Some(LinkSet {
                stp: Some(false),
                ..LinkSet::default()
            }),
        }],
        "{}",
        show(&plan)
    );
    assert_eq!(k.link(&node("r1"), "lan").unwrap().stp, Some(true));
}

#[test]
fn diff_changed_mac_sets_it_in_place() {
    let after = edit(ROUTED, "02:00:00:00:00:11", "02:00:00:00:00:12");
    let (plan, _) = converge(ROUTED, &after);
    assert_eq!(
        plan.steps,
        [Step::SetLink {
            node: node("h1"),
            name: "eth0".into(),
            set: LinkSet {
                mac: Some(MacAddr([2, 0, 0, 0, 0, 0x12])),
                ..LinkSet::default()
            },
            prev: Some(LinkSet {
                mac: Some(MacAddr([2, 0, 0, 0, 0, 0x11])),
                ..LinkSet::default()
            }),
        }],
        "{}",
        show(&plan)
    );
}

#[test]
fn diff_changed_sysctl_sets_only_that_sysctl_and_keeps_the_old_value() {
    let after = edit(
        ROUTED,
        r#""net.ipv4.ip_forward" = 1"#,
        r#""net.ipv4.ip_forward" = 0"#,
    );
    let (plan, _) = converge(ROUTED, &after);
    assert_eq!(
        plan.steps,
        [Step::Sysctl {
            node: node("r1"),
            key: "net.ipv4.ip_forward".into(),
            value: "0".into(),
            prev: Some("1".into()),
        }],
        "{}",
        show(&plan)
    );
}

#[test]
fn diff_rebuilt_pair_gets_its_routes_back_and_parks_the_old_end() {
    let after = edit(
        ROUTED,
        "endpoints = [\"lan:p1\", \"h1:eth0\"]",
        "endpoints = [\"lan:p3\", \"h1:eth0\"]",
    );
    let (plan, k) = converge(ROUTED, &after);
    assert_eq!(
        parks(&plan),
        [(node("h1"), "eth0".to_string())],
        "{}",
        show(&plan)
    );
    assert_eq!(
        downs(&plan),
        [
            (node("h1"), "eth0".to_string()),
            (node("r1"), "p1".to_string())
        ]
    );
    let Some(restore_routes) = plan.steps.iter().find_map(|s| match s {
        Step::ParkLink {
            parked: Some(_),
            restore_routes,
            ..
        } => Some(restore_routes),
        _ => None,
    }) else {
        panic!("{}", show(&plan))
    };
    // The kernel removes h1's default route when eth0 goes down: undoing the park restores it.
    assert_eq!(
        restore_routes,
        &[RouteSpec {
            dst: net("0.0.0.0/0"),
            via: Some(ip("10.20.0.1")),
            dev: Some("eth0".into())
        }]
    );
    // And the new eth0 gets it anew.
    assert!(plan.steps.contains(&Step::AddRoute {
        node: node("h1"),
        route: RouteSpec {
            dst: net("0.0.0.0/0"),
            via: Some(ip("10.20.0.1")),
            dev: None
        },
        replaces: None,
    }));
    assert!(!plan.steps.iter().any(|s| nodes_of(s).contains(&node("h2"))));
    assert!(k.link(&node("r1"), "p3").is_some());
    assert!(k.link(&node("r1"), "p1").is_none());
}

#[test]
fn diff_namespace_removed_from_routed_lab_takes_its_bridge_port_along() {
    let after = edit(
        ROUTED,
        "[nodes.h2.interfaces.eth0]\naddresses = [\"10.20.0.12/24\"]\n\n\
         [nodes.h2]\nroutes = [{ to = \"default\", via = \"10.20.0.1\" }]\n",
        "",
    );
    let after = edit(
        &after,
        "[[links]]\nendpoints = [\"lan:p2\", \"h2:eth0\"]\nmtu = 1400\n",
        "",
    );
    let (plan, k) = converge(ROUTED, &after);
    assert_eq!(plan.steps.len(), 3, "{}", show(&plan));
    assert_eq!(downs(&plan), [(node("r1"), "p2".to_string())]);
    assert!(
        matches!(&plan.steps[1], Step::DeleteLink { node: n, name, .. } if *n == node("r1") && name == "p2")
    );
    assert_eq!(plan.steps[2], Step::DeleteNs { ns: ns("h2") });
    assert!(k.state(&node("h2")).is_none());
    assert!(k.link(&node("r1"), "p2").is_none());
    assert!(k.link(&node("r1"), "p1").is_some());
}

#[test]
fn diff_route_removed_from_file_deletes_only_plumbs_route() {
    let mut k = Kernel::host_only();
    k.up(&topo(ROUTED));
    // An administrator's own route in a lab namespace is not plumb's to remove.
    let h1 = node("h1");
    let eth0 = k.link(&h1, "eth0").unwrap().index;
    k.state_mut(&h1).unwrap().routes.push(route(
        "10.77.0.0/16",
        Some("10.20.0.1"),
        eth0,
        RTPROT_STATIC,
    ));
    let after = edit(
        ROUTED,
        "[nodes.h1]\nroutes = [{ to = \"default\", via = \"10.20.0.1\" }]",
        "[nodes.h1]",
    );
    let t = topo(&after);
    let plan = k.up(&t);
    assert_eq!(
        plan.steps,
        [Step::DelRoute {
            node: h1.clone(),
            route: RouteSpec {
                dst: net("0.0.0.0/0"),
                via: Some(ip("10.20.0.1")),
                dev: Some("eth0".into())
            }
        }],
        "{}",
        show(&plan)
    );
    assert!(diff(&t, &k.snap).is_empty());
    assert!(k
        .state(&h1)
        .unwrap()
        .routes
        .iter()
        .any(|r| r.protocol == RTPROT_STATIC));
}

#[test]
fn diff_changed_gateway_replaces_the_route_in_one_step() {
    let after = edit(
        ROUTED,
        "[nodes.h1]\nroutes = [{ to = \"default\", via = \"10.20.0.1\" }]",
        "[nodes.h1]\nroutes = [{ to = \"default\", via = \"10.20.0.12\" }]",
    );
    let (plan, _) = converge(ROUTED, &after);
    assert_eq!(
        plan.steps,
        [Step::AddRoute {
            node: node("h1"),
            route: RouteSpec {
                dst: net("0.0.0.0/0"),
                via: Some(ip("10.20.0.12")),
                dev: None
            },
            replaces: Some(RouteSpec {
                dst: net("0.0.0.0/0"),
                via: Some(ip("10.20.0.1")),
                dev: Some("eth0".into())
            }),
        }],
        "{}",
        show(&plan)
    );
}

#[test]
fn diff_interface_taken_down_in_file_sets_it_down() {
    let line = "[nodes.ns2.interfaces.veth-ns1]\n";
    let after = edit(SEED, line, &format!("{line}up = false\n"));
    let (plan, _) = converge(SEED, &after);
    assert_eq!(
        plan.steps,
        [Step::SetLink {
            node: node("ns2"),
            name: "veth-ns1".into(),
            set: LinkSet {
                up: Some(false),
                ..LinkSet::default()
            },
            prev: Some(LinkSet {
                up: Some(true),
                ..LinkSet::default()
            }),
        }],
        "{}",
        show(&plan)
    );
}

#[test]
fn diff_new_nodes_joining_an_existing_one_converge() {
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
    let (plan, k) = converge(one, three);
    assert!(!plan.steps.iter().any(|s| s.is_delete()), "{}", show(&plan));
    assert!(k.link(&node("c"), "to-b").is_some());
}

#[test]
fn diff_two_labs_in_one_kernel_leave_each_other_alone() {
    let mut k = Kernel::host_only();
    k.up(&topo(STAR));
    let star_before = k.snap.labs()["star"];
    let plan = k.up(&topo(SEED));
    for s in &plan.steps {
        for n in nodes_of(s) {
            assert!(
                !["web", "db", "cache"].contains(&n.to_string().as_str()),
                "`{s}` touches lab star"
            );
        }
    }
    assert_eq!(k.snap.labs()["star"], star_before);
    assert!(diff(&topo(STAR), &k.snap).is_empty());
    assert!(diff(&topo(SEED), &k.snap).is_empty());
}

#[test]
fn diff_many_edits_at_once_converge_in_one_run() {
    // Remove a node, add two, add an address, change an MTU and a firewall: one plan.
    let before = r#"name = "edit"
[networks.lan]
subnet = "10.30.0.0/24"
members = ["a", "b", "c"]
[nodes.a.firewall]
ingress = "deny"
allow = ["icmp"]
"#;
    let after = r#"name = "edit"
[networks.lan]
subnet = "10.30.0.0/24"
members = ["a", "b", "d", "e"]
mtu = 1400
[nodes.a.firewall]
ingress = "deny"
allow = ["icmp", "tcp/22"]
[nodes.b.interfaces.lo]
addresses = ["10.255.0.2/32"]
"#;
    let (plan, k) = converge(before, after);
    assert!(plan
        .steps
        .iter()
        .any(|s| matches!(s, Step::Firewall { prev: Some(_), .. })));
    assert!(plan.steps.contains(&Step::DeleteNs { ns: ns("c") }));
    assert!(k.state(&node("c")).is_none());
    assert!(k.state(&node("e")).is_some());
}
