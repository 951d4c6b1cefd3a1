//! The walk with the kernel's decisions: one netlink socket inside each node the walk enters
//! (opened when it first gets there), `RTM_GETROUTE` for each decision.

use std::collections::HashMap;
use std::net::IpAddr;
use std::os::fd::OwnedFd;

use netlink_packet_route::route::RouteType;

use super::{follow, follow_from, Decision, Stopped};
use crate::firewall::Rule;
use crate::inspect::lab::LabView;
use crate::model::{Proto, Service};
use crate::netlink::{route, NlSocket};
use crate::netns::{self, NetnsError, NsRef, Registry};
use crate::trace::path::PathIface;

/// The ways of a probe and of its answer, by the routing tables.
#[derive(Debug, Clone, Default)]
pub struct Paths {
    /// The probe's way, when the walk reached the destination.
    pub forward: Option<Vec<PathIface>>,
    /// Why the probe's walk stopped short, if it did.
    pub stopped: Option<Stopped>,
    /// The answer's way back (empty if its walk stopped short).
    pub back: Vec<PathIface>,
}

/// Opens `node`'s namespace (`host` is the one plumb runs in).
pub fn open_node(reg: &Registry, node: &str) -> Result<OwnedFd, NetnsError> {
    match super::super::ns_of(node) {
        NsRef::Current => std::fs::File::open("/proc/self/ns/net")
            .map(OwnedFd::from)
            .map_err(|source| NetnsError::Enter {
                name: "host".into(),
                source,
            }),
        r => r.open(reg),
    }
}

fn errno_name(e: &crate::netlink::NetlinkError) -> String {
    match e.errno() {
        Some(libc::ENETUNREACH) => "no route (ENETUNREACH)".into(),
        Some(libc::EHOSTUNREACH) => {
            "no route (EHOSTUNREACH: no route, or the node does not forward)".into()
        }
        Some(libc::EINVAL) => "refused (EINVAL: a martian source or destination)".into(),
        _ => e.to_string(),
    }
}

/// The member address `node`'s published ports send `service` to (the lab's own DNAT, as
/// `show` lists it).
fn published(view: &LabView, node: &str, service: Service) -> Option<IpAddr> {
    let (proto, port) = match service {
        Service::Tcp(p) => (Proto::Tcp, p),
        Service::Udp(p) => (Proto::Udp, p),
        Service::Icmp => return None,
    };
    let rules = view.nodes.iter().find(|n| n.node == node)?.rules.as_ref()?;
    rules.published.iter().find_map(|r| match r {
        Rule::Publish {
            proto: pr,
            host_port,
            to,
            ..
        } if *pr == proto && *host_port == port => Some(*to),
        _ => None,
    })
}

/// Walks from `from` to `dst` (on to a member when the node reached publishes the probe's
/// port) and back from where it ends to the probe's source, with the kernel's decisions in
/// every node of `view`.
pub fn paths(
    view: &LabView,
    from: &str,
    dst: IpAddr,
    service: Service,
) -> Result<Paths, NetnsError> {
    let reg = Registry::default();
    // A socket inside each node the walks enter (a few, whatever the lab's size), opened the
    // first time it is asked a decision; `None` when it cannot be had.
    let mut socks: HashMap<String, Option<NlSocket>> = HashMap::new();
    let index_of = |node: &str, name: &str| {
        view.nodes
            .iter()
            .find(|n| n.node == node)
            .and_then(|n| n.interfaces.iter().find(|i| i.name == name))
            .map(|i| i.index)
    };
    let name_of = |node: &str, index: u32| {
        view.nodes
            .iter()
            .find(|n| n.node == node)
            .and_then(|n| n.interfaces.iter().find(|i| i.index == index))
            .map_or_else(|| format!("ifindex {index}"), |i| i.name.clone())
    };
    // One decision: the source's own (no iif; it tells the source address), or a forwarding
    // one for a packet from `src`.
    let mut decide = |node: &str, iif: Option<&str>, dst: IpAddr, src: &mut Option<IpAddr>| {
        let sock = socks
            .entry(node.to_string())
            .or_insert_with(|| {
                let fd = open_node(&reg, node).ok()?;
                netns::open_sockets(&[&fd]).ok()?.pop()?.ok()
            })
            .as_mut()
            .ok_or_else(|| "cannot read its routes".to_string())?;
        let iif = match iif {
            Some(i) => Some(index_of(node, i).ok_or_else(|| format!("no interface {i}"))?),
            None => None,
        };
        let a = route::get(sock, dst, if iif.is_some() { *src } else { None }, iif)
            .map_err(|e| errno_name(&e))?;
        if iif.is_none() && src.is_none() {
            *src = a.prefsrc;
        }
        match a.kind {
            RouteType::Local => Ok(Decision::Local),
            RouteType::Unicast => Ok(Decision::Out {
                oif: a
                    .oif
                    .map(|o| name_of(node, o))
                    .ok_or_else(|| "a route without an interface".to_string())?,
                via: a.via,
            }),
            other => Err(format!("{other:?} route to {dst}").to_lowercase()),
        }
    };
    let mut src = None;
    let mut out = Paths::default();
    let mut reached = dst;
    match follow(view, from, dst, |n, i| decide(n, i, dst, &mut src)) {
        Ok(mut p) => {
            let at = p.last().cloned();
            let dnat = at
                .as_ref()
                .and_then(|a| Some((a, published(view, &a.node, service)?)));
            match dnat {
                Some((a, member)) => {
                    let on = follow_from(view, &a.node, Some(&a.iface), member, |n, i| {
                        decide(n, i, member, &mut src)
                    });
                    reached = member;
                    match on {
                        Ok(more) => {
                            // Out of the bridge it came in by (hairpin): listed once.
                            let skip = usize::from(more.first() == p.last());
                            p.extend(more.into_iter().skip(skip));
                            out.forward = Some(p);
                        }
                        Err(mut s) => {
                            p.append(&mut s.path);
                            s.path = p;
                            out.stopped = Some(s);
                        }
                    }
                }
                None => out.forward = Some(p),
            }
        }
        Err(s) => out.stopped = Some(s),
    }
    let end = out
        .forward
        .as_ref()
        .and_then(|p| p.last())
        .map(|p| p.node.clone());
    if let (Some(back_to), Some(end)) = (src, end) {
        let mut back_src = Some(reached);
        if let Ok(p) = follow(view, &end, back_to, |n, i| {
            decide(n, i, back_to, &mut back_src)
        }) {
            out.back = p;
        }
    }
    Ok(out)
}
