//! The interfaces a packet crosses, by the routing decisions of the namespaces it enters: in
//! the source node the decision for a packet it sends, in every node after it the decision for
//! a packet arriving on the interface it came in by (`ip route get DST from SRC iif DEV`, the
//! kernel's own, policy rules included); a veth leads to its peer, and a bridge to the port
//! behind which the next hop (the gateway, or the destination itself) lives. So a lab with more
//! than one way between two nodes is followed the way its packets go, and the answer's way back
//! may differ from the probe's.
//!
//! The walk is pure over the lab's view and a `decide` function; [`super`] gives it the
//! kernel's answers, the tests a table.

use std::net::IpAddr;

use super::path::PathIface;
use crate::inspect::lab::{IfaceView, LabView, NodeView};
use crate::inspect::LinkKind;

/// One routing decision: where a node sends the packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// The destination is the node's own address.
    Local,
    /// Out through `oif`, to `via` (or on-link to the destination).
    Out {
        /// The interface.
        oif: String,
        /// The gateway.
        via: Option<IpAddr>,
    },
}

/// Where and why the walk stopped short of the destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stopped {
    /// The interfaces up to there.
    pub path: Vec<PathIface>,
    /// Why (`node r: no route (EHOSTUNREACH)`, `leaves the lab through …`).
    pub reason: String,
}

/// The most nodes a walk enters before it calls the path a loop.
const MAX_NODES: usize = 64;

fn node<'v>(view: &'v LabView, name: &str) -> Option<&'v NodeView> {
    view.nodes.iter().find(|n| n.node == name)
}

fn iface<'v>(n: &'v NodeView, name: &str) -> Option<&'v IfaceView> {
    n.interfaces.iter().find(|i| i.name == name)
}

fn has_addr(i: &IfaceView, a: IpAddr) -> bool {
    i.addresses
        .iter()
        .any(|s| s.split('/').next().and_then(|x| x.parse().ok()) == Some(a))
}

fn holds(n: &NodeView, a: IpAddr) -> bool {
    n.interfaces.iter().any(|i| has_addr(i, a))
}

fn at(n: &NodeView, i: &str) -> PathIface {
    PathIface {
        node: n.node.clone(),
        label: n.label.clone(),
        iface: i.into(),
    }
}

/// `node:iface` of a veth's peer, inside the lab.
fn peer<'v>(view: &'v LabView, i: &IfaceView) -> Option<(&'v NodeView, &'v IfaceView)> {
    let (pn, pi) = i.peer.as_deref()?.split_once(':')?;
    let n = node(view, pn)?;
    Some((n, iface(n, pi)?))
}

/// From bridge `br` of node `n`, the L2 way to the interface that holds `nh`: the port, then
/// the far end of its veth (and, if that end is itself a bridge port, on through that bridge).
/// `from_port` is the port the frame came in by (never sent back out of it). Returns the
/// interfaces crossed and where the frame is taken in by L3 (the node and its interface).
fn bridge_to<'v>(
    view: &'v LabView,
    n: &'v NodeView,
    br: &str,
    from_port: Option<&str>,
    nh: IpAddr,
    depth: usize,
) -> Option<(Vec<PathIface>, &'v NodeView, String)> {
    if depth > MAX_NODES {
        return None;
    }
    let ports = n
        .interfaces
        .iter()
        .filter(|p| p.master.as_deref() == Some(br) && Some(p.name.as_str()) != from_port);
    for p in ports {
        let Some((pn, pi)) = peer(view, p) else {
            continue;
        };
        let mut crossed = vec![at(n, &p.name), at(pn, &pi.name)];
        if has_addr(pi, nh) {
            return Some((crossed, pn, pi.name.clone()));
        }
        if let Some(m) = &pi.master {
            crossed.push(at(pn, m));
            let bridge = iface(pn, m)?;
            if has_addr(bridge, nh) {
                return Some((crossed, pn, m.clone()));
            }
            if let Some((more, end, taken)) = bridge_to(view, pn, m, Some(&pi.name), nh, depth + 1)
            {
                crossed.extend(more);
                return Some((crossed, end, taken));
            }
        }
    }
    None
}

/// The path of a packet from node `from` to `dst`, asking `decide(node, iif)` for each routing
/// decision (`iif` is `None` in the source node). `Ok` when it reaches a node that holds `dst`.
pub fn follow(
    view: &LabView,
    from: &str,
    dst: IpAddr,
    decide: impl FnMut(&str, Option<&str>) -> Result<Decision, String>,
) -> Result<Vec<PathIface>, Stopped> {
    follow_from(view, from, None, dst, decide)
}

/// [`follow`] for a packet that is in node `from` already, having come in by `iif` (`None`:
/// sent by `from` itself): how it goes on once a node has rewritten its destination.
pub fn follow_from(
    view: &LabView,
    from: &str,
    iif: Option<&str>,
    dst: IpAddr,
    mut decide: impl FnMut(&str, Option<&str>) -> Result<Decision, String>,
) -> Result<Vec<PathIface>, Stopped> {
    let mut path: Vec<PathIface> = Vec::new();
    let stop = |path: &[PathIface], reason: String| Stopped {
        path: path.to_vec(),
        reason,
    };
    let mut n = node(view, from).ok_or_else(|| stop(&path, format!("no node {from}")))?;
    let mut iif: Option<String> = iif.map(str::to_string);
    for _ in 0..MAX_NODES {
        if iif.is_some() && holds(n, dst) {
            return Ok(path);
        }
        let d = decide(&n.node, iif.as_deref())
            .map_err(|e| stop(&path, format!("node {}: {e}", n.label)))?;
        let (oif, via) = match d {
            Decision::Local if iif.is_none() => {
                return Err(stop(&path, format!("{dst} is {}'s own address", n.label)))
            }
            Decision::Local => return Ok(path),
            Decision::Out { oif, via } => (oif, via),
        };
        let nh = via.unwrap_or(dst);
        let out = iface(n, &oif).ok_or_else(|| {
            stop(
                &path,
                format!(
                    "node {} sends it out of {oif}, which is not the lab's",
                    n.label
                ),
            )
        })?;
        path.push(at(n, &out.name));
        let (next, taken) = if out.kind == LinkKind::Bridge {
            let (crossed, end, taken) =
                bridge_to(view, n, &out.name, None, nh, 0).ok_or_else(|| {
                    stop(
                        &path,
                        format!("no port of bridge {}/{} leads to {nh}", n.label, out.name),
                    )
                })?;
            path.extend(crossed);
            (end, taken)
        } else {
            let (pn, pi) = peer(view, out).ok_or_else(|| {
                stop(
                    &path,
                    format!("{}/{} leads out of the lab", n.label, out.name),
                )
            })?;
            path.push(at(pn, &pi.name));
            match &pi.master {
                // A bridge port: the bridge takes the frame in if the next hop is its own
                // address (or the node's), else forwards it out of another port.
                Some(m) => {
                    path.push(at(pn, m));
                    let bridge = iface(pn, m).map(|b| has_addr(b, nh)).unwrap_or(false);
                    if bridge || holds(pn, nh) {
                        (pn, m.clone())
                    } else {
                        let (crossed, end, taken) = bridge_to(view, pn, m, Some(&pi.name), nh, 0)
                            .ok_or_else(|| {
                            stop(
                                &path,
                                format!("no port of bridge {}/{m} leads to {nh}", pn.label),
                            )
                        })?;
                        path.extend(crossed);
                        (end, taken)
                    }
                }
                None => (pn, pi.name.clone()),
            }
        };
        n = next;
        iif = Some(taken);
    }
    Err(stop(
        &path,
        format!("more than {MAX_NODES} nodes: a routing loop"),
    ))
}

mod kernel;
pub use kernel::{open_node, paths, Paths};

#[cfg(test)]
mod tests;
