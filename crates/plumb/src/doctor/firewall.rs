//! Firewalls: foreign chains that drop a lab's forwarded traffic, and lab namespaces without
//! any firewall (the seed's hardening section: a namespace is isolation, not protection).

use super::{places, Extra, Finding, Severity};
use crate::inspect::Snapshot;

/// Foreign base chains on the forward hook with a drop policy, where a lab's traffic is
/// forwarded: in the host when a lab has interfaces there, in a lab's own namespace.
pub(crate) fn foreign_drops(snap: &Snapshot, extra: &Extra) -> Vec<Finding> {
    let mut out = Vec::new();
    for p in places(snap, extra) {
        let Some(x) = p.extra else { continue };
        let labs: Vec<&str> = match p.owner() {
            Some(l) => vec![l],
            None => {
                let mut v: Vec<&str> = p.state.links.iter().filter_map(|l| l.owner()).collect();
                v.sort();
                v.dedup();
                v
            }
        };
        if labs.is_empty() {
            continue;
        }
        for chain in &x.forward_drops {
            out.push(
                Finding::new("foreign-drop-chain", Severity::Error, format!("{}: {chain}", p.name))
                    .lab(labs.first().copied())
                    .summary(format!(
                        "the foreign chain {chain} in {} drops forwarded traffic by default, on the path of lab {}",
                        p.name,
                        labs.join(", ")
                    ))
                    .with("chain", chain.as_str())
                    .with("hook", "forward")
                    .with("policy", "drop")
                    .with("labs", labs.join(" "))
                    .why("a base chain's policy applies whatever other tables accept: plumb's own table cannot override it, so the lab's NAT, published ports and routed traffic are dropped here")
                    .fix(format!(
                        "accept the lab's traffic in {chain} (for example `iifname BRIDGE accept` and `oifname BRIDGE ct state established,related accept`) or change its policy; plumb never edits other tables"
                    )),
            );
        }
    }
    out
}

/// How many node names a finding lists.
const LISTED: usize = 20;

/// Lab namespaces with no nftables table at all: one finding per lab.
pub(crate) fn unprotected(snap: &Snapshot, extra: &Extra) -> Vec<Finding> {
    let mut by_lab: std::collections::BTreeMap<&str, Vec<&str>> = Default::default();
    for p in places(snap, extra) {
        let (Some(lab), Some(x)) = (p.owner(), p.extra) else {
            continue;
        };
        if x.nft_tables.is_empty() {
            by_lab.entry(lab).or_default().push(p.name);
        }
    }
    let mut out = Vec::new();
    for (lab, nodes) in by_lab {
        let mut listed = nodes
            .iter()
            .take(LISTED)
            .copied()
            .collect::<Vec<_>>()
            .join(" ");
        if nodes.len() > LISTED {
            listed.push_str(" …");
        }
        out.push(
            Finding::new("no-firewall", Severity::Info, format!("lab {lab}"))
                .lab(Some(lab))
                .summary(format!("{} node(s) of lab {lab} have no firewall at all", nodes.len()))
                .with("nodes_without_firewall", nodes.len())
                .with("nodes", listed)
                .with("nft_tables", 0u64)
                .why("a network namespace isolates addresses and routes, not services: anything listening in it is reachable from every namespace that can route to it (the hardening section of container networking: firewalls inside namespaces and on the host)")
                .fix("give the nodes a firewall in the lab's file: [nodes.NODE.firewall] ingress = \"deny\", allow = [\"icmp\", ...] (a range such as [nodes.\"c[1..100]\".firewall] covers many)"),
        );
    }
    out
}
