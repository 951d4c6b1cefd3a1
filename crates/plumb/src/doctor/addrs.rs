//! Addresses: the same address twice behind one bridge, and subnets that overlap between
//! labs or with the host's other routes.

use std::collections::BTreeMap;

use ipnet::IpNet;

use super::paths::own_addrs;
use super::peers::Pairs;
use super::{Finding, Severity};
use crate::inspect::{LinkKind, Snapshot};

/// The same address on two interfaces attached to one bridge (the bridge itself, or the far
/// end of a veth plugged into it).
pub(crate) fn duplicates(pairs: &Pairs<'_>) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut done: Vec<&str> = Vec::new();
    for e in &pairs.ends {
        if done.contains(&e.place) {
            continue;
        }
        done.push(e.place);
        for b in e.state.links.iter().filter(|l| l.kind == LinkKind::Bridge) {
            let mut holders: BTreeMap<std::net::IpAddr, Vec<String>> = BTreeMap::new();
            for (ix, n) in own_addrs(e.state).filter(|(ix, _)| *ix == b.index) {
                let _ = ix;
                holders
                    .entry(n.addr())
                    .or_default()
                    .push(format!("{}/{}", e.place, b.name));
            }
            for port in e.state.links.iter().filter(|l| l.master == Some(b.index)) {
                let Some(peer) = pairs.peer_of(e.place, &port.name) else {
                    continue;
                };
                for (_, n) in own_addrs(peer.state).filter(|(ix, _)| *ix == peer.link.index) {
                    holders.entry(n.addr()).or_default().push(peer.label());
                }
            }
            for (ip, who) in holders.into_iter().filter(|(_, w)| w.len() > 1) {
                out.push(
                    Finding::new("duplicate-address", Severity::Error, format!("{}/{}", e.place, b.name))
                        .lab(b.owner())
                        .summary(format!("{ip} is on {} interfaces of bridge {}: {}", who.len(), b.name, who.join(", ")))
                        .with("address", ip.to_string())
                        .with("holders", who.len())
                        .with("interfaces", who.join(" "))
                        .why("two hosts answering for one address on one segment: neighbour entries flip between them, and each connection reaches whichever answered last")
                        .fix(format!("remove {ip} from all but one of them (ip -n NS addr del {ip}/LEN dev IF); plumb gives each network member its own address"))
                );
            }
        }
    }
    out
}

/// The networks each lab's interfaces are on (from their addresses).
fn lab_networks(snap: &Snapshot) -> BTreeMap<String, Vec<(IpNet, String)>> {
    let mut out: BTreeMap<String, Vec<(IpNet, String)>> = BTreeMap::new();
    let mut add = |lab: &str, net: IpNet, what: String| {
        let v = out.entry(lab.to_string()).or_default();
        if !v.iter().any(|(n, _)| *n == net) {
            v.push((net, what));
        }
    };
    for (ix, n) in own_addrs(&snap.host) {
        if let Some(l) = snap.host.link_by_index(ix) {
            if let Some(lab) = l.owner() {
                add(lab, n.trunc(), format!("host/{}", l.name));
            }
        }
    }
    for (name, ns) in &snap.namespaces {
        let Ok(st) = &ns.state else { continue };
        let Some(lab) = st.owner() else { continue };
        for (ix, n) in own_addrs(st) {
            let ifname = st.link_by_index(ix).map_or("?", |l| l.name.as_str());
            add(lab, n.trunc(), format!("{name}/{ifname}"));
        }
    }
    out
}

fn overlap(a: &IpNet, b: &IpNet) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// Subnets of two labs that overlap, and host routes not of a lab over a lab's subnet.
pub(crate) fn overlaps(snap: &Snapshot) -> Vec<Finding> {
    let nets = lab_networks(snap);
    let mut out = Vec::new();
    let labs: Vec<&String> = nets.keys().collect();
    for (i, a) in labs.iter().enumerate() {
        for b in &labs[i + 1..] {
            for (na, wa) in &nets[*a] {
                for (nb, wb) in &nets[*b] {
                    if !overlap(na, nb) {
                        continue;
                    }
                    out.push(
                        Finding::new("overlapping-subnets", Severity::Warning, format!("{na} / {nb}"))
                            .lab(Some(a))
                            .summary(format!("lab {a}'s {na} ({wa}) overlaps lab {b}'s {nb} ({wb})"))
                            .with("subnet_a", na.to_string())
                            .with("subnet_b", nb.to_string())
                            .with("lab_a", a.as_str())
                            .with("lab_b", b.as_str())
                            .why("the host routes each address to one interface only: members of one lab cannot reach the overlapping part of the other, and NAT'd replies may go to the wrong lab")
                            .fix("give one of the labs another subnet (`subnet = ...` in its file), then `plumb up` it"),
                    );
                }
            }
        }
    }
    for r in &snap.host.routes {
        if r.dst.prefix_len() == 0 {
            continue;
        }
        let oif = r.oif.and_then(|i| snap.host.link_by_index(i));
        if oif.is_some_and(|l| l.owner().is_some()) {
            continue;
        }
        for (lab, ns) in &nets {
            for (n, what) in ns {
                if !overlap(&r.dst, n) {
                    continue;
                }
                let dev = oif.map_or("?".to_string(), |l| l.name.clone());
                out.push(
                    Finding::new("overlapping-subnets", Severity::Warning, format!("host route {}", r.dst))
                        .lab(Some(lab))
                        .summary(format!("the host's route {} dev {dev} overlaps lab {lab}'s {n} ({what})", r.dst))
                        .with("host_route", r.dst.to_string())
                        .with("host_route_dev", dev)
                        .with("lab_subnet", n.to_string())
                        .why("the host sends traffic for the overlapping addresses by the most specific route: either the lab or whatever the other route leads to becomes unreachable from the host")
                        .fix(format!("move lab {lab} to a subnet no other route of the host covers")),
                );
            }
        }
    }
    out
}
