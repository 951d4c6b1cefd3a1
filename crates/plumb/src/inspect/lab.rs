//! The whole-lab view behind `plumb show`: what a lab owns, read from a [`Snapshot`] through
//! its tags, with veth ends paired by their `link=` identifiers (no nsid lookups needed).

use std::collections::HashMap;
use std::fmt::Write as _;

use super::{LinkKind, NsState, RouteState, Snapshot};
use crate::model::names::LabName;

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
}

/// One node of a lab, as `show` prints it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct NodeView {
    /// `host` or the namespace's name.
    pub node: String,
    /// Interfaces (in the host: only the lab's).
    pub interfaces: Vec<IfaceView>,
    /// Routes (in the host: only those through the lab's interfaces), as `ip route` prints them.
    pub routes: Vec<String>,
}

/// A lab as it is in the kernel. Version 1 of `plumb show --json`.
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
        if *is_host && interfaces.is_empty() {
            continue;
        }
        nodes.push(NodeView {
            node: node.clone(),
            interfaces,
            routes,
        });
    }
    LabView {
        version: 1,
        lab: lab.to_string(),
        nodes,
    }
}
