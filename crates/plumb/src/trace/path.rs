//! The interfaces a packet crosses from one node of a lab to another, computed from the lab's
//! own view (what `plumb show` reads): veth pairs join two nodes, a bridge joins its ports, and
//! inside a node any two interfaces that are not bridge ports are joined by routing. The path
//! is a shortest one over that graph, from any interface of the source node to any of the
//! destination node: what `plumb trace` captures on when the routing tables ([`super::route`])
//! give no way out of the source, and the check that the two nodes are connected at all.

use std::collections::{HashMap, VecDeque};

use crate::inspect::lab::LabView;

/// One interface on a path.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PathIface {
    /// The node's namespace (`host` for the namespace plumb runs in).
    pub node: String,
    /// The node as the lab's file names it.
    pub label: String,
    /// The interface.
    pub iface: String,
}

/// The path from node `from` to node `to` (names as the file writes them, or namespace names),
/// or `None` if they are not connected.
pub fn find(view: &LabView, from: &str, to: &str) -> Option<Vec<PathIface>> {
    let mut ifaces: Vec<PathIface> = Vec::new();
    let mut ports: Vec<bool> = Vec::new();
    let mut index: HashMap<(String, String), usize> = HashMap::new();
    for n in &view.nodes {
        for i in &n.interfaces {
            if i.name == "lo" {
                continue;
            }
            index.insert((n.node.clone(), i.name.clone()), ifaces.len());
            ifaces.push(PathIface {
                node: n.node.clone(),
                label: n.label.clone(),
                iface: i.name.clone(),
            });
            ports.push(i.master.is_some());
        }
    }
    let mut edges: Vec<Vec<usize>> = vec![Vec::new(); ifaces.len()];
    let join = |a: usize, b: usize, edges: &mut Vec<Vec<usize>>| {
        edges[a].push(b);
        edges[b].push(a);
    };
    for n in &view.nodes {
        for i in &n.interfaces {
            let Some(&me) = index.get(&(n.node.clone(), i.name.clone())) else {
                continue;
            };
            if let Some((pn, pi)) = i.peer.as_deref().and_then(|p| p.split_once(':')) {
                if let Some(&peer) = index.get(&(pn.to_string(), pi.to_string())) {
                    if me < peer {
                        join(me, peer, &mut edges);
                    }
                }
            }
            if let Some(m) = &i.master {
                if let Some(&bridge) = index.get(&(n.node.clone(), m.clone())) {
                    join(me, bridge, &mut edges);
                }
            }
        }
        // Routing inside the node, between interfaces that are not bridge ports.
        let routed: Vec<usize> = n
            .interfaces
            .iter()
            .filter_map(|i| index.get(&(n.node.clone(), i.name.clone())).copied())
            .filter(|&k| !ports[k])
            .collect();
        for (x, &a) in routed.iter().enumerate() {
            for &b in &routed[x + 1..] {
                join(a, b, &mut edges);
            }
        }
    }
    let is = |k: usize, name: &str| ifaces[k].label == name || ifaces[k].node == name;
    let mut prev: Vec<Option<usize>> = vec![None; ifaces.len()];
    let mut seen = vec![false; ifaces.len()];
    let mut queue = VecDeque::new();
    for (k, s) in seen.iter_mut().enumerate() {
        if is(k, from) {
            *s = true;
            queue.push_back(k);
        }
    }
    while let Some(k) = queue.pop_front() {
        if is(k, to) && !is(k, from) {
            let mut path = vec![ifaces[k].clone()];
            let mut at = k;
            while let Some(p) = prev[at] {
                path.push(ifaces[p].clone());
                at = p;
            }
            path.reverse();
            return Some(path);
        }
        for &n in &edges[k] {
            // A path leaves the source node once: never back through another of its
            // interfaces.
            if !seen[n] && !is(n, from) {
                seen[n] = true;
                prev[n] = Some(k);
                queue.push_back(n);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inspect::LinkKind;
    use crate::trace::fixtures::{egress, iface, node};

    fn names(p: &[PathIface]) -> Vec<String> {
        p.iter()
            .map(|i| format!("{}/{}", i.label, i.iface))
            .collect()
    }

    #[test]
    fn find_member_to_upstream_crosses_veth_bridge_and_uplink() {
        let p = find(&egress(), "client", "upstream").unwrap();
        assert_eq!(
            names(&p),
            [
                "client/eth0",
                "host/veth-client",
                "host/lan0",
                "host/up0",
                "upstream/eth0"
            ]
        );
    }

    #[test]
    fn find_member_to_member_stays_on_the_bridge() {
        let p = find(&egress(), "client", "web").unwrap();
        assert_eq!(
            names(&p),
            [
                "client/eth0",
                "host/veth-client",
                "host/lan0",
                "host/veth-web",
                "web/eth0"
            ]
        );
    }

    #[test]
    fn find_unconnected_or_unknown_nodes_is_none() {
        let mut v = egress();
        v.nodes.push(node(
            "island",
            vec![iface("eth0", LinkKind::Veth, None, None, None)],
        ));
        assert!(find(&v, "client", "island").is_none());
        assert!(find(&v, "client", "nowhere").is_none());
    }
}
