//! Teardown of a lab, and recovery of an interrupted run from its journal.

use super::*;
use crate::ownership::journal::{Entry, Op, Record};
use crate::ownership::{lab_group, lab_tag, veth_tag};
use crate::plan::{recover, teardown};

/// A kernel holding lab seed, lab star, a foreign namespace and a foreign bridge.
fn shared_kernel() -> Kernel {
    let mut k = Kernel::host_only();
    k.snap.namespaces.extend([named(
        "foreign",
        None,
        vec![link(2, "eth0", LinkKind::Veth, None)],
    )]);
    k.snap
        .host
        .links
        .push(link(3, "docker0", LinkKind::Bridge, None));
    k.up(&topo(SEED));
    k.up(&topo(STAR));
    k
}

#[test]
fn teardown_in_shared_kernel_removes_only_the_labs_objects() {
    let mut k = shared_kernel();
    let star_before = k.snap.labs()["star"];
    let foreign_before = k.snap.namespaces[&ns("foreign")].clone();
    let seed = lab("seed");
    let plan = teardown(&seed, &k.snap);
    assert_eq!(
        plan.steps,
        [
            Step::DeleteGroup {
                group: lab_group(&seed)
            },
            Step::DeleteNs { ns: ns("ns1") },
            Step::DeleteNs { ns: ns("ns2") },
        ],
        "{}",
        show(&plan)
    );
    k.apply(&seed, &plan);
    assert!(!k.snap.labs().contains_key("seed"), "{:?}", labs(&k));
    assert_eq!(k.snap.labs()["star"], star_before);
    assert_eq!(k.snap.namespaces[&ns("foreign")], foreign_before);
    assert!(k.snap.host.link("docker0").is_some());
    assert_eq!(k.snap.host.links[..2], host().links[..]);
    assert!(diff(&topo(STAR), &k.snap).is_empty());
    assert!(teardown(&seed, &k.snap).is_empty());
}

#[test]
fn teardown_group_with_a_foreign_member_deletes_links_one_by_one() {
    let mut k = shared_kernel();
    let seed = lab("seed");
    // Something else put an interface into the group seed's name hashes to.
    let mut stray = link(90, "stray0", LinkKind::Device, None);
    stray.group = lab_group(&seed);
    k.snap.host.links.push(stray);
    let plan = teardown(&seed, &k.snap);
    let veth1 = k.snap.host.link("veth1").unwrap().index;
    assert_eq!(
        plan.steps,
        [
            Step::DeleteLink {
                node: NodeRef::Host,
                name: "veth1".into(),
                index: Some(veth1),
            },
            Step::DeleteNs { ns: ns("ns1") },
            Step::DeleteNs { ns: ns("ns2") },
        ],
        "{}",
        show(&plan)
    );
    k.apply(&seed, &plan);
    assert!(!k.snap.labs().contains_key("seed"));
    assert!(k.snap.host.link("stray0").is_some());
}

#[test]
fn teardown_group_member_of_another_lab_deletes_links_one_by_one() {
    let seed = lab("seed");
    let mut snap = host_only();
    let mut ours = link(
        3,
        "veth1",
        LinkKind::Veth,
        Some(&veth_tag(&seed, "aaaaaaaaaaaa")),
    );
    ours.group = lab_group(&seed);
    let mut theirs = link(4, "x0", LinkKind::Bridge, Some(&lab_tag(&lab("other"))));
    theirs.group = lab_group(&seed);
    snap.host.links.extend([ours, theirs]);
    let plan = teardown(&seed, &snap);
    assert_eq!(
        plan.steps,
        [Step::DeleteLink {
            node: NodeRef::Host,
            name: "veth1".into(),
            index: Some(3),
        }]
    );
}

#[test]
fn teardown_owned_link_outside_the_group_is_deleted_by_index() {
    let seed = lab("seed");
    let mut snap = host_only();
    let mut grouped = link(
        3,
        "veth1",
        LinkKind::Veth,
        Some(&veth_tag(&seed, "aaaaaaaaaaaa")),
    );
    grouped.group = lab_group(&seed);
    let ungrouped = link(4, "br9", LinkKind::Bridge, Some(&lab_tag(&seed)));
    snap.host.links.extend([grouped, ungrouped]);
    let plan = teardown(&seed, &snap);
    assert_eq!(
        plan.steps,
        [
            Step::DeleteGroup {
                group: lab_group(&seed)
            },
            Step::DeleteLink {
                node: NodeRef::Host,
                name: "br9".into(),
                index: Some(4),
            },
        ]
    );
}

#[test]
fn teardown_removes_the_host_table_first() {
    let mut k = Kernel::host_only();
    k.up(&topo(STAR));
    k.snap.host.nft_version = Some("abc".into());
    let plan = teardown(&lab("star"), &k.snap);
    assert!(
        matches!(plan.steps[0], Step::DeleteFirewall { .. }),
        "{}",
        show(&plan)
    );
}

#[test]
fn teardown_lab_that_owns_nothing_is_empty() {
    let k = shared_kernel();
    let plan = teardown(&lab("absent"), &k.snap);
    assert!(plan.is_empty(), "{}", show(&plan));
}

#[test]
fn teardown_lab_with_similar_name_is_not_matched_by_prefix() {
    let mut k = Kernel::host_only();
    k.up(&topo(STAR));
    let plan = teardown(&lab("sta"), &k.snap);
    assert!(plan.is_empty(), "{}", show(&plan));
}

fn entry(op: Op, records: Vec<Record>) -> Entry {
    Entry {
        op,
        pid: 1,
        records,
    }
}

/// The journal records a plan's build steps would write.
fn records_of(plan: &Plan) -> Vec<Record> {
    plan.steps.iter().flat_map(Step::journal_records).collect()
}

#[test]
fn recover_of_an_interrupted_build_removes_everything_it_made() {
    let t = topo(STAR);
    let plan = diff(&t, &host_only());
    // Killed after the bridge and two pairs: the journal names everything up to there.
    let cut = position(&plan, |s| matches!(s, Step::CreateVeth { .. }))[1] + 1;
    let mut k = Kernel::host_only();
    let done = Plan {
        steps: plan.steps[..cut].to_vec(),
        conflicts: vec![],
    };
    k.apply(&t.name, &done);
    let e = entry(Op::Up, records_of(&plan));
    let rec = recover(&t.name, &e, &k.snap);
    k.apply(&t.name, &rec);
    assert_eq!(
        kernel::normalized(&k.snap),
        kernel::normalized(&host_only()),
        "{}",
        show(&rec)
    );
}

#[test]
fn recover_of_an_interrupted_converge_keeps_the_lab_it_found() {
    let mut k = Kernel::host_only();
    k.up(&topo(SEED));
    let before = k.snap.clone();
    let after = edit(
        SEED,
        r#"endpoints = ["ns1:veth-ns2", "ns2:veth-ns1"]"#,
        r#"endpoints = ["ns1:veth-ns2", "ns3:veth-ns1"]"#,
    );
    let after = edit(
        &after,
        "[nodes.ns2.interfaces.veth-ns1]",
        "[nodes.ns3.interfaces.veth-ns1]",
    );
    let t = topo(&after);
    let plan = diff(&t, &k.snap);
    assert!(!parks(&plan).is_empty(), "{}", show(&plan));
    // Killed once every build step ran, before the commit removed anything.
    let build: Vec<Step> = plan
        .steps
        .iter()
        .filter(|s| s.phase() == crate::plan::Phase::Build)
        .cloned()
        .collect();
    k.apply(
        &t.name,
        &Plan {
            steps: build,
            conflicts: vec![],
        },
    );
    let rec = recover(&t.name, &entry(Op::Up, records_of(&plan)), &k.snap);
    k.apply(&t.name, &rec);
    // The parked end has its name back; only what the run made is gone. What the kernel
    // dropped when the parked end went down (addresses of IPv6, routes) is not put back by gc:
    // the next `up` adds it.
    assert!(k.state(&node("ns3")).is_none());
    assert!(k.link(&node("ns1"), "veth-ns2").is_some());
    assert_eq!(k.snap.labs()["seed"], before.labs()["seed"]);
    assert!(diff(&topo(SEED), &k.snap)
        .steps
        .iter()
        .all(|s| !s.is_delete()));
}

fn parks(plan: &Plan) -> Vec<String> {
    plan.steps
        .iter()
        .filter(|s| {
            matches!(
                s,
                Step::ParkLink {
                    parked: Some(_),
                    ..
                }
            )
        })
        .map(ToString::to_string)
        .collect()
}

#[test]
fn recover_removes_a_placeholder_and_an_untagged_interface_of_the_group_only() {
    let seed = lab("seed");
    let mut snap = host_only();
    // The instant before tagging: a file that is not a namespace yet, an interface in the
    // lab's group without its tag; and, untouched, a foreign interface the journal also names.
    snap.namespaces.insert(
        ns("ns1"),
        NamedNs {
            name: ns("ns1"),
            state: Err("not a network namespace".into()),
        },
    );
    let mut untagged = link(7, "veth1", LinkKind::Veth, None);
    untagged.group = lab_group(&seed);
    snap.host.links.push(untagged);
    snap.host.links.push(link(8, "veth9", LinkKind::Veth, None));
    let e = entry(
        Op::Up,
        vec![
            Record::Ns(ns("ns1")),
            Record::Link {
                node: NodeRef::Host,
                name: ifname("veth1"),
            },
            Record::Link {
                node: NodeRef::Host,
                name: ifname("veth9"),
            },
        ],
    );
    let plan = recover(&seed, &e, &snap);
    assert_eq!(
        plan.steps,
        [
            Step::DeleteLink {
                node: NodeRef::Host,
                name: "veth1".into(),
                index: Some(7)
            },
            Step::DeleteNs { ns: ns("ns1") },
        ]
    );
}

#[test]
fn recover_of_an_interrupted_down_finishes_it() {
    let mut k = Kernel::host_only();
    k.up(&topo(SEED));
    let seed = lab("seed");
    let plan = recover(&seed, &entry(Op::Down, vec![]), &k.snap);
    assert_eq!(plan, teardown(&seed, &k.snap));
    k.apply(&seed, &plan);
    assert!(!k.snap.labs().contains_key("seed"));
}
