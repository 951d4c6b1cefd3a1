//! Pure tests of the checks on hand-made snapshots.

use std::collections::BTreeMap;

use super::*;
use crate::inspect::{AddrState, LinkKind, LinkState, NamedNs, RouteState};

fn link(index: u32, name: &str, kind: LinkKind) -> LinkState {
    LinkState {
        index,
        name: name.into(),
        kind,
        alias: None,
        mtu: 1500,
        mac: None,
        up: true,
        lower_up: true,
        operstate: "up".into(),
        master: None,
        peer_index: None,
        peer_netnsid: None,
        group: 0,
        isolated: false,
        stp: None,
    }
}

fn ns(links: Vec<LinkState>, addrs: &[(u32, &str)], routes: &[(&str, &str)]) -> NsState {
    NsState {
        links,
        addrs: addrs
            .iter()
            .map(|(i, a)| AddrState {
                index: *i,
                addr: a.parse().expect("address"),
            })
            .collect(),
        routes: routes
            .iter()
            .map(|(d, v)| RouteState {
                dst: d.parse().expect("dst"),
                via: Some(v.parse().expect("via")),
                oif: Some(2),
                protocol: 4,
            })
            .collect(),
        ..NsState::default()
    }
}

fn named(n: &str, st: NsState) -> (NsName, NamedNs) {
    let name = NsName::new(n).expect("name");
    (
        name.clone(),
        NamedNs {
            name,
            state: Ok(st),
        },
    )
}

fn extra_with(sysctls: &[(&str, &str, &str)]) -> Extra {
    let mut x = Extra::default();
    for (place, k, v) in sysctls {
        let e = if *place == "host" {
            &mut x.host
        } else {
            x.namespaces
                .entry(NsName::new(place).expect("name"))
                .or_default()
        };
        e.sysctls.insert(k.to_string(), v.to_string());
        e.has_process = true;
    }
    x
}

fn veth(index: u32, name: &str, peer: u32, elsewhere: bool) -> LinkState {
    let mut l = link(index, name, LinkKind::Veth);
    l.peer_index = Some(peer);
    l.peer_netnsid = elsewhere.then_some(0);
    l
}

/// a -- r -- b, a routes 10.3.0.0/24 via r.
fn chain() -> Snapshot {
    let lo = || link(1, "lo", LinkKind::Loopback);
    Snapshot {
        host: NsState::default(),
        namespaces: BTreeMap::from([
            named(
                "a",
                ns(
                    vec![lo(), veth(2, "e0", 2, true)],
                    &[(2, "10.1.0.2/24")],
                    &[("10.3.0.0/24", "10.1.0.1")],
                ),
            ),
            named(
                "r",
                ns(
                    vec![lo(), veth(2, "x0", 2, true), veth(3, "y0", 2, true)],
                    &[(2, "10.1.0.1/24"), (3, "10.3.0.1/24")],
                    &[],
                ),
            ),
            named(
                "b",
                ns(
                    vec![lo(), veth(2, "e0", 3, true)],
                    &[(2, "10.3.0.2/24")],
                    &[("10.1.0.0/24", "10.3.0.1")],
                ),
            ),
        ]),
    }
}

#[test]
fn forwarding_off_on_a_router_is_an_error() {
    let x = extra_with(&[("r", "net.ipv4.ip_forward", "0")]);
    let f = diagnose(&chain(), &x, &[]);
    let fw: Vec<_> = f.iter().filter(|f| f.check == "forwarding-off").collect();
    assert_eq!(fw.len(), 1, "{f:#?}");
    assert_eq!(fw[0].object, "r");
    assert_eq!(fw[0].severity, Severity::Error);
}

#[test]
fn forwarding_on_a_router_is_no_finding() {
    let x = extra_with(&[("r", "net.ipv4.ip_forward", "1")]);
    let f = diagnose(&chain(), &x, &[]);
    assert!(f.iter().all(|f| f.check != "forwarding-off"), "{f:#?}");
}

#[test]
fn neighbour_table_near_thresh3_is_an_error() {
    let mut x = Extra::default();
    x.neigh.push(NeighTable {
        family: "ipv4",
        gc_thresh1: 128,
        gc_thresh2: 512,
        gc_thresh3: 1024,
        source: LimitSource::AssumedDefaults,
        entries: Some(930),
        table_fulls: Some(0),
    });
    let f = diagnose(&Snapshot::default(), &x, &[]);
    assert_eq!(f.len(), 1, "{f:#?}");
    assert_eq!(f[0].severity, Severity::Error);
    assert_eq!(f[0].evidence["entries"], Value::Number(930));
}

#[test]
fn veth_pairs_by_index_both_ways() {
    let snap = chain();
    let p = peers::pairs(&snap);
    // a/e0 (2, peer 2) and r/x0 (2, peer 2) match both ways; r/y0 (3, peer 2) and b/e0
    // (2, peer 3).
    assert_eq!(p.peer_of("r", "y0").map(|e| e.label()), Some("b/e0".into()));
}

#[test]
fn lab_missing_entirely_is_one_incomplete_finding_with_its_steps() {
    let topo = crate::model::parse_toml(
        "name = \"two\"\n[nodes.a.interfaces.e0]\naddresses = [\"10.9.0.1/24\"]\n[nodes.b.interfaces.e0]\naddresses = [\"10.9.0.2/24\"]\n[[links]]\nendpoints = [\"a:e0\", \"b:e0\"]\n",
        "two.toml",
    )
    .expect("loads");
    let f = lab_findings(&topo, &Snapshot::default());
    assert_eq!(f.len(), 1, "{f:#?}");
    assert_eq!(f[0].check, "lab-incomplete");
    assert_eq!(f[0].evidence["pending create-netns"], Value::Number(2));
    let Value::Text(steps) = &f[0].evidence["first_steps"] else {
        panic!("steps: {f:#?}")
    };
    assert!(steps.contains("ip netns add a"), "{steps}");
}

#[test]
fn mtu_differences_between_veth_ends_are_found_once() {
    let mut snap = chain();
    if let Some(NamedNs { state: Ok(st), .. }) =
        snap.namespaces.get_mut(&NsName::new("b").expect("name"))
    {
        st.links[1].mtu = 1400;
    }
    let f = diagnose(&snap, &Extra::default(), &[]);
    let m: Vec<_> = f.iter().filter(|f| f.check == "mtu-mismatch").collect();
    assert_eq!(m.len(), 1, "{f:#?}");
    assert_eq!(m[0].object, "b/e0 <-> r/y0");
}
