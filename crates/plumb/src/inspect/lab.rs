//! The whole-lab view behind `plumb show`: what a lab owns, read from a [`Snapshot`] through
//! its tags, with veth ends paired by their `link=` identifiers (no nsid lookups needed).

use std::collections::HashMap;
use std::fmt::Write as _;

use super::{LinkKind, NsState, RouteState, Snapshot};
use crate::firewall::Rule;
use crate::model::names::LabName;
use crate::nftables::Listing;

/// One interface of a lab, as `show` prints it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct IfaceView {
    /// Name.
    pub name: String,
    /// Interface index.
    pub index: u32,
    /// Type.
    pub kind: LinkKind,
    /// Administratively up.
    pub up: bool,
    /// Carrier.
    pub lower_up: bool,
    /// Operational state, as the kernel reports it (`up`, `lowerlayerdown`, `down`…).
    pub state: String,
    /// MTU.
    pub mtu: u32,
    /// MAC.
    pub mac: Option<String>,
    /// Addresses.
    pub addresses: Vec<String>,
    /// For a veth end: the other end, as `node:ifname`.
    pub peer: Option<String>,
    /// For a bridge port: the bridge.
    pub master: Option<String>,
    /// For a bridge: its ports.
    pub ports: Vec<String>,
    /// For a bridge port: isolated from the bridge's other isolated ports (a network with
    /// `isolated = true`).
    pub isolated: bool,
}

/// The lab's nftables rules in one node, read back from the kernel (each rule carries its
/// description as its comment).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct RulesView {
    /// Masquerading of the lab's networks (NAT to the outside, and hairpin NAT of published
    /// ports).
    pub nat: Vec<Rule>,
    /// Published ports.
    pub published: Vec<Rule>,
    /// Networks whose traffic to the lab's other networks is dropped.
    pub isolated_networks: Vec<String>,
    /// The inbound firewall's policy (`accept` or `drop`), if the node has one.
    pub ingress: Option<String>,
    /// Inbound traffic the firewall lets in.
    pub allow: Vec<Rule>,
    /// Rules of the table that are not described (not written by this version of plumb).
    pub unknown: usize,
}

/// One node of a lab, as `show` prints it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct NodeView {
    /// `host` or the namespace's name.
    pub node: String,
    /// The node's name as the lab's file writes it (without the lab's `prefix`).
    pub label: String,
    /// Interfaces (in the host: only the lab's).
    pub interfaces: Vec<IfaceView>,
    /// Routes (in the host: only those through the lab's interfaces), as `ip route` prints them.
    pub routes: Vec<String>,
    /// The lab's nftables rules here (NAT, published ports and isolation in the host, the
    /// firewall in a node), if it has a table here.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rules: Option<RulesView>,
}

/// A lab as it is in the kernel. Version 2 of `plumb show --json` (version 1 had no `label`,
/// `rules` and `isolated`).
#[derive(Debug, Clone, serde::Serialize)]
pub struct LabView {
    /// Format version.
    pub version: u32,
    /// The lab.
    pub lab: String,
    /// Host first, then namespaces by name.
    pub nodes: Vec<NodeView>,
}

/// A route as `ip route` prints it: `default via 10.0.0.1 dev eth0`.
fn route_text(r: &RouteState, st: &NsState) -> String {
    let mut s = if r.dst.prefix_len() == 0 {
        "default".to_string()
    } else {
        r.dst.to_string()
    };
    if let Some(v) = r.via {
        let _ = write!(s, " via {v}");
    }
    if let Some(d) = r.oif.and_then(|i| st.link_by_index(i)) {
        let _ = write!(s, " dev {}", d.name);
    }
    s
}

/// What `lab` owns in `snap`, ready to print.
pub fn view(lab: &LabName, snap: &Snapshot) -> LabView {
    let lab = lab.as_str();
    let mut states: Vec<(String, &NsState, bool)> = vec![("host".into(), &snap.host, true)];
    for (name, ns) in &snap.namespaces {
        if ns.owner() == Some(lab) {
            if let Ok(st) = &ns.state {
                states.push((name.to_string(), st, false));
            }
        }
    }
    // Pair veth ends by the link identifier in their tags.
    let mut ends: HashMap<&str, Vec<String>> = HashMap::new();
    for (node, st, _) in &states {
        for l in &st.links {
            if let Some(id) = l.tag().filter(|t| t.lab == lab).and_then(|t| t.link) {
                ends.entry(id)
                    .or_default()
                    .push(format!("{node}:{}", l.name));
            }
        }
    }
    let mut nodes = Vec::new();
    for (node, st, is_host) in &states {
        let mut interfaces = Vec::new();
        for l in &st.links {
            if *is_host && l.owner() != Some(lab) {
                continue;
            }
            let me = format!("{node}:{}", l.name);
            let peer = l
                .tag()
                .and_then(|t| t.link)
                .and_then(|id| ends.get(id))
                .and_then(|v| v.iter().find(|e| **e != me).cloned());
            interfaces.push(IfaceView {
                name: l.name.clone(),
                index: l.index,
                kind: l.kind.clone(),
                up: l.up,
                lower_up: l.lower_up,
                state: l.operstate.clone(),
                mtu: l.mtu,
                mac: l.mac.map(|m| m.to_string()),
                addresses: st.addrs_of(l.index).map(|a| a.to_string()).collect(),
                peer,
                master: l
                    .master
                    .and_then(|m| st.link_by_index(m))
                    .map(|b| b.name.clone()),
                ports: st
                    .links
                    .iter()
                    .filter(|p| p.master == Some(l.index))
                    .map(|p| p.name.clone())
                    .collect(),
                isolated: l.isolated,
            });
        }
        let routes = st
            .routes
            .iter()
            .filter(|r| {
                !*is_host
                    || r.oif
                        .and_then(|i| st.link_by_index(i))
                        .is_some_and(|d| d.owner() == Some(lab))
            })
            .map(|r| route_text(r, st))
            .collect();
        let rules = st.nft.as_ref().map(rules_view);
        if *is_host && interfaces.is_empty() && rules.is_none() {
            continue;
        }
        let label = st
            .loopback()
            .and_then(|l| l.tag())
            .and_then(|t| t.node)
            .filter(|_| !*is_host)
            .unwrap_or(node)
            .to_string();
        nodes.push(NodeView {
            node: node.clone(),
            label,
            interfaces,
            routes,
            rules,
        });
    }
    LabView {
        version: 2,
        lab: lab.to_string(),
        nodes,
    }
}

/// The rules of a table listing, by what they do (the output chain repeats each published port
/// for the host's own connections: listed once).
fn rules_view(l: &Listing) -> RulesView {
    let mut v = RulesView {
        ingress: l
            .chains
            .iter()
            .find(|c| c.hook.as_deref() == Some("input"))
            .and_then(|c| c.policy.clone()),
        ..RulesView::default()
    };
    for r in &l.rules {
        let Some(rule) = r.comment.as_deref().and_then(|c| c.parse::<Rule>().ok()) else {
            // The fixed rules of an input chain (established, loopback, neighbour discovery)
            // have no description.
            if r.chain != "input" {
                v.unknown += 1;
            }
            continue;
        };
        match rule {
            Rule::Masquerade { .. } | Rule::HairpinMasquerade { .. } => v.nat.push(rule),
            Rule::Publish { .. } if r.chain == "output" => {}
            Rule::Publish { .. } => v.published.push(rule),
            Rule::IsolateNetwork { bridge } => v.isolated_networks.push(bridge),
            Rule::Allow { .. } => v.allow.push(rule),
        }
    }
    v
}
