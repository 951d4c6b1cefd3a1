//! `plumb trace`: one probe's journey through a lab, hop by hop. The path is the routing
//! tables' way through the lab ([`route`]: the kernel's decision in every node), or the lab's
//! shortest path when they do not lead there ([`path`]); a capture point on every interface of it sees the probe pass
//! ([`correlate`] recognises it by what NAT leaves alone and names the rewrites between hops);
//! plumb's own nftables trace table in every namespace on the path ([`nftrace`]) names the
//! table, chain and rule that dropped it, if one did.
//!
//! Invariants: the probe is sent only after every ring and trace table is in place; every trace
//! table is removed when the trace ends, on every path out of [`run`] (and by the kernel when
//! plumb's socket closes, whatever ends plumb).

pub mod correlate;
#[cfg(test)]
mod fixtures;
pub mod nftrace;
pub mod path;
pub mod route;
mod watch;

use std::net::IpAddr;
use std::os::fd::OwnedFd;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use crate::capture::decode::{IpSummary, L4};
use crate::capture::{CaptureError, Direction, PointSpec};
use crate::inspect::lab::LabView;
use crate::lab::LabError;
use crate::model::names::{LabName, NsName};
use crate::model::{NodeRef, Service, Target};
use crate::netns::{NetnsError, NsRef, Registry};
use crate::nftables::trace::{TraceEvent, TraceType};
use crate::nftables::NftError;
use crate::probe::{LabAddresses, ProbeError};
use correlate::{Key, Rewrite, Seen, Sighting};
use nftrace::NsTrace;
use path::PathIface;

/// The longest a trace waits for its probe to end.
const LIMIT: Duration = Duration::from_secs(15);

/// A trace failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TraceError {
    /// The lab could not be read.
    #[error(transparent)]
    Lab(#[from] LabError),
    /// A node the lab does not have.
    #[error("lab {lab} has no node `{node}` (its nodes: {})", nodes.join(", "))]
    NoNode {
        /// The lab.
        lab: String,
        /// The node asked for.
        node: String,
        /// The nodes it has.
        nodes: Vec<String>,
    },
    /// An address no node of the lab has.
    #[error(
        "no node of lab {lab} has the address {addr}: a trace follows a probe to a node of the lab"
    )]
    NoOwner {
        /// The lab.
        lab: String,
        /// The address.
        addr: IpAddr,
    },
    /// No path joins the two nodes.
    #[error(
        "no path from {from} to {to} in the lab (veth pairs, bridges and routing inside nodes)"
    )]
    NoPath {
        /// Source.
        from: String,
        /// Destination.
        to: String,
    },
    /// The probe could not run.
    #[error(transparent)]
    Probe(#[from] ProbeError),
    /// A capture point could not be opened.
    #[error(transparent)]
    Capture(#[from] CaptureError),
    /// A namespace on the path could not be entered.
    #[error(transparent)]
    Netns(#[from] NetnsError),
    /// The trace table of a node could not be made or removed.
    #[error("nftables trace in node {node}: {source}")]
    Nft {
        /// The node.
        node: String,
        /// Why.
        #[source]
        source: NftError,
    },
}

/// One sighting of a packet, as the journey prints it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Hop {
    /// The node as the lab's file names it.
    pub node: String,
    /// Its network namespace (`host` for plumb's own).
    pub namespace: String,
    /// The interface.
    pub iface: String,
    /// Which way the packet went through it.
    pub direction: Direction,
    /// Microseconds since the probe's first hop (for the reply too).
    pub t_us: f64,
    /// TTL (hop limit).
    pub ttl: u8,
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// IPv4 identification.
    pub ip_id: u16,
    /// Transport.
    pub l4: L4,
    /// What changed since the previous hop.
    pub rewrites: Vec<Rewrite>,
    /// The frame (for `-w`).
    #[serde(skip)]
    pub frame: Vec<u8>,
    /// Kernel timestamp (ns since the epoch).
    #[serde(skip)]
    pub ts_ns: u64,
}

/// The rule (or chain policy) that dropped the probe, from the nftables trace.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DropRule {
    /// The node where it happened.
    pub node: String,
    /// The table's family (`inet`, `ip`, `ip6`…).
    pub family: String,
    /// The table.
    pub table: String,
    /// The chain.
    pub chain: String,
    /// The rule's handle (none for a chain's policy).
    pub handle: Option<u64>,
    /// The rule's comment (plumb writes each rule's description there).
    pub comment: Option<String>,
    /// True when the chain's policy dropped it (no rule matched).
    pub policy: bool,
}

impl std::fmt::Display for DropRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "table {} {} chain {}",
            self.family, self.table, self.chain
        )?;
        if self.policy {
            return f.write_str(": policy drop");
        }
        match (&self.comment, self.handle) {
            (Some(c), Some(h)) => write!(f, ": rule \"{c}\" (handle {h}) drop"),
            (None, Some(h)) => write!(f, ": rule handle {h} drop"),
            _ => f.write_str(": drop"),
        }
    }
}

/// A probe's journey. Version 1 of `plumb trace --json`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Journey {
    /// Format version.
    pub version: u32,
    /// The lab.
    pub lab: String,
    /// The source node.
    pub from: String,
    /// The destination, as given.
    pub to: String,
    /// The probe (`icmp`, `tcp/80`, `udp/53`).
    pub proto: String,
    /// The address probed.
    pub address: IpAddr,
    /// The interfaces on the path, in order: the routing tables' way (see [`route`]).
    pub path: Vec<PathIface>,
    /// The interfaces of the answer's way back by the routing tables, from the destination
    /// (empty when they do not lead back).
    pub reply_path: Vec<PathIface>,
    /// Set when the routing tables do not lead to the destination: why, and that the capture
    /// is on the lab's shortest path instead.
    pub path_note: Option<String>,
    /// What identifies the probe across NAT, if it was seen leaving.
    pub probe: Option<Key>,
    /// The probe, hop by hop.
    pub hops: Vec<Hop>,
    /// The answer, hop by hop (back from the destination).
    pub reply: Vec<Hop>,
    /// Did the probe get an answer?
    pub reached: bool,
    /// What the probe saw (`reply in 0.210 ms`, `timeout (2.0 s)`).
    pub outcome: String,
    /// Where the probe was last seen, when it did not reach the destination's interface.
    pub last_seen: Option<String>,
    /// The rule that dropped it, if the nftables trace saw one.
    pub dropped_by: Option<DropRule>,
}

impl Journey {
    /// Every capture point: the path's, then those only the answer's way back crosses.
    pub fn points(&self) -> Vec<PathIface> {
        let mut out = self.path.clone();
        for p in &self.reply_path {
            if !out.contains(p) {
                out.push(p.clone());
            }
        }
        out
    }
}

/// What to trace.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    /// The lab.
    pub lab: &'a LabName,
    /// The source node (as the file names it, or its namespace).
    pub from: &'a str,
    /// The destination: a node or an address of the lab.
    pub to: &'a str,
    /// The probe.
    pub service: Service,
    /// Send nothing: wait at most this long for a packet of an existing flow from FROM to TO
    /// (`--follow`), and follow it.
    pub follow: Option<Duration>,
}

fn find_node<'v>(view: &'v LabView, name: &str) -> Option<&'v crate::inspect::lab::NodeView> {
    view.nodes
        .iter()
        .find(|n| n.label == name)
        .or_else(|| view.nodes.iter().find(|n| n.node == name))
}

fn node_ref(node: &str) -> Result<NodeRef, TraceError> {
    if node == "host" {
        return Ok(NodeRef::Host);
    }
    NsName::new(node)
        .map(NodeRef::Ns)
        .map_err(|_| TraceError::NoPath {
            from: node.into(),
            to: node.into(),
        })
}

/// Resolves the request against the lab's view: the source, the destination node and target,
/// the path.
pub(crate) fn plan(
    view: &LabView,
    req: &Request<'_>,
) -> Result<(NodeRef, Target, String, Vec<PathIface>), TraceError> {
    let no_node = |node: &str| TraceError::NoNode {
        lab: view.lab.clone(),
        node: node.into(),
        nodes: view.nodes.iter().map(|n| n.label.clone()).collect(),
    };
    let from = find_node(view, req.from).ok_or_else(|| no_node(req.from))?;
    let (to_node, target) = match req.to.parse::<IpAddr>() {
        Ok(ip) => {
            let owner = view
                .nodes
                .iter()
                .find(|n| {
                    n.interfaces.iter().any(|i| {
                        i.addresses
                            .iter()
                            .any(|a| a.split('/').next() == Some(&ip.to_string()))
                    })
                })
                .ok_or(TraceError::NoOwner {
                    lab: view.lab.clone(),
                    addr: ip,
                })?;
            (owner, Target::Addr(ip))
        }
        Err(_) => {
            let n = find_node(view, req.to).ok_or_else(|| no_node(req.to))?;
            (n, Target::Node(node_ref(&n.node)?))
        }
    };
    let path = path::find(view, &from.node, &to_node.node).ok_or_else(|| TraceError::NoPath {
        from: from.label.clone(),
        to: to_node.label.clone(),
    })?;
    Ok((node_ref(&from.node)?, target, to_node.label.clone(), path))
}

fn ns_of(node: &str) -> NsRef {
    match NsName::new(node) {
        Ok(n) if node != "host" => NsRef::Name(n),
        _ => NsRef::Current,
    }
}

/// Opens plumb's trace table in every namespace on the path (one thread visits them).
fn open_traces(path: &[PathIface], l4proto: u8) -> Result<Vec<NsTrace>, TraceError> {
    let mut nodes: Vec<&PathIface> = Vec::new();
    for p in path {
        if !nodes.iter().any(|n| n.node == p.node) {
            nodes.push(p);
        }
    }
    let reg = Registry::default();
    let fds = nodes
        .iter()
        .map(|p| match ns_of(&p.node) {
            NsRef::Current => std::fs::File::open("/proc/self/ns/net")
                .map(OwnedFd::from)
                .map_err(|source| NetnsError::Enter {
                    name: "host".into(),
                    source,
                }),
            r => r.open(&reg),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let refs: Vec<&OwnedFd> = fds.iter().collect();
    let table = nftrace::table_name();
    let opened = crate::netns::run_in_each(&refs, |i| {
        NsTrace::open_here(&nodes[i].label, &table, l4proto)
    })?;
    let mut out = Vec::new();
    let mut failed = None;
    for (p, r) in nodes.iter().zip(opened) {
        match r {
            Ok(Ok(t)) => out.push(t),
            Ok(Err(source)) => {
                failed.get_or_insert(TraceError::Nft {
                    node: p.label.clone(),
                    source,
                });
            }
            Err(source) => {
                failed.get_or_insert(TraceError::Netns(NetnsError::Enter {
                    name: p.label.clone(),
                    source,
                }));
            }
        }
    }
    match failed {
        None => Ok(out),
        Some(e) => {
            for t in out {
                let _ = t.remove();
            }
            Err(e)
        }
    }
}

/// Does a trace event's packet (its headers) match the probe's key?
fn event_matches(e: &TraceEvent, k: &Key) -> bool {
    let nh = &e.network_header;
    let th = &e.transport_header;
    let (ip_id, proto) = match nh.first().map(|b| b >> 4) {
        Some(4) if nh.len() >= 20 => (u16::from_be_bytes([nh[4], nh[5]]), nh[9]),
        Some(6) if nh.len() >= 40 => (0, nh[6]),
        _ => return false,
    };
    if ip_id != k.ip_id {
        return false;
    }
    match proto {
        1 | 58 => {
            th.len() >= 8
                && th[0] == k.kind
                && u32::from(u16::from_be_bytes([th[6], th[7]])) == k.seq
        }
        6 => th.len() >= 8 && u32::from_be_bytes([th[4], th[5], th[6], th[7]]) == k.seq,
        _ => proto == k.kind,
    }
}

fn family_name(f: u8) -> String {
    match f {
        1 => "inet",
        2 => "ip",
        10 => "ip6",
        7 => "bridge",
        3 => "arp",
        5 => "netdev",
        _ => "unknown",
    }
    .into()
}

/// The first drop the trace events of the probe show, with the rule's comment.
fn find_drop(traces: &mut [NsTrace], events: &[Vec<TraceEvent>], k: &Key) -> Option<DropRule> {
    for (t, evs) in traces.iter_mut().zip(events) {
        let ours: std::collections::HashSet<u32> = evs
            .iter()
            .filter(|e| event_matches(e, k))
            .map(|e| e.id)
            .collect();
        let drop = evs.iter().find(|e| {
            ours.contains(&e.id)
                && matches!(e.kind, TraceType::Rule | TraceType::Policy)
                && e.verdict.as_ref().is_some_and(|v| v.code == 0)
        });
        if let Some(e) = drop {
            let policy = e.kind == TraceType::Policy;
            let comment = match (policy, e.rule_handle) {
                (false, Some(h)) => t.rule_comment(e.family, &e.table, &e.chain, h),
                _ => None,
            };
            return Some(DropRule {
                node: t.node.clone(),
                family: family_name(e.family),
                table: e.table.clone(),
                chain: e.chain.clone(),
                handle: if policy { None } else { e.rule_handle },
                comment,
                policy,
            });
        }
    }
    None
}

/// The sightings as hops, timed from `first` (the probe's first sighting).
fn hops(s: &[Sighting], seen: &[Seen], path: &[PathIface], first: u64) -> Vec<Hop> {
    let mut prev: Option<&IpSummary> = None;
    let mut out = Vec::new();
    for x in s {
        let p = &path[x.point];
        out.push(Hop {
            node: p.label.clone(),
            namespace: p.node.clone(),
            iface: p.iface.clone(),
            direction: x.direction,
            t_us: x.ts_ns.saturating_sub(first) as f64 / 1000.0,
            ttl: x.summary.ttl,
            src: x.summary.src,
            dst: x.summary.dst,
            ip_id: x.summary.id,
            l4: x.summary.l4.clone(),
            rewrites: prev
                .map(|a| correlate::rewrites(a, &x.summary))
                .unwrap_or_default(),
            frame: seen[x.index].frame.clone(),
            ts_ns: x.ts_ns,
        });
        prev = Some(&x.summary);
    }
    out
}

/// Sends one probe and follows it. `stop` ends the wait early (Ctrl-C).
pub fn run(req: &Request<'_>, stop: &AtomicBool) -> Result<Journey, TraceError> {
    let view = crate::lab::view(req.lab)?;
    let (from, target, to_label, graph) = plan(&view, req)?;
    let book = LabAddresses::of_view(&view);
    let address = book.resolve(&from, &target)?.addr;
    // The way the routing tables send the probe, and its answer back; the lab's shortest path
    // when they do not lead to the destination (the capture then shows where it stops).
    let routed = route::paths(&view, &graph[0].node, address, req.service)?;
    // Where the routing tables stop short, the capture follows them as far as they go (the
    // probe goes no further), or the lab's shortest path if they stop in the source itself.
    let (path, path_note, complete) = match (routed.forward, routed.stopped) {
        (Some(p), _) if !p.is_empty() => (p, None, true),
        (_, Some(s)) if s.path.len() >= 2 => (
            s.path,
            Some(format!("the routing tables stop there: {}", s.reason)),
            false,
        ),
        (_, Some(s)) => (
            graph,
            Some(format!(
                "the routing tables do not lead there ({}); capturing on the lab's shortest path",
                s.reason
            )),
            true,
        ),
        _ => (graph, None, true),
    };
    // The answer's way matters only if the probe can get there.
    let back_path = if complete { routed.back } else { Vec::new() };
    let mut points = path.clone();
    for p in &back_path {
        if !points.contains(p) {
            points.push(p.clone());
        }
    }
    let (filter, l4proto) = match (req.service, address.is_ipv4()) {
        (Service::Icmp, true) => ("icmp", 1),
        (Service::Icmp, false) => ("icmp6", 58),
        (Service::Tcp(_), _) => ("tcp", 6),
        (Service::Udp(_), _) => ("udp", 17),
    };
    let specs: Vec<PointSpec> = points
        .iter()
        .map(|p| PointSpec {
            label: format!("{}/{}", p.label, p.iface),
            ns: ns_of(&p.node),
            iface: p.iface.clone(),
        })
        .collect();
    let mut traces = open_traces(&points, l4proto)?;
    let probe = watch::Probe {
        book: &book,
        from: &from,
        target: &target,
        address,
        service: req.service,
        follow: req.follow,
    };
    let result = watch::watch(&probe, &specs, filter, stop);
    let events: Vec<Vec<TraceEvent>> = traces.iter_mut().map(NsTrace::events).collect();
    let (seen, observed) = match result {
        Ok(r) => r,
        Err(e) => {
            for t in traces {
                let _ = t.remove();
            }
            return Err(e);
        }
    };
    let back: Vec<usize> = back_path
        .iter()
        .filter_map(|b| points.iter().position(|p| p == b))
        .collect();
    let journey = correlate::journey(&seen, address, req.service, req.follow.is_some(), &back);
    let key = journey
        .as_ref()
        .and_then(|(f, _)| f.first())
        .map(|s| correlate::key(&s.summary));
    let dropped_by = key.and_then(|k| find_drop(&mut traces, &events, &k));
    let mut removal = Ok(());
    for t in traces {
        let node = t.node.clone();
        if let Err(source) = t.remove() {
            removal = Err(TraceError::Nft { node, source });
        }
    }
    removal?;
    let (fwd, back) = journey.unwrap_or_default();
    let first = fwd.first().map_or(0, |x| x.ts_ns);
    let hops_fwd = hops(&fwd, &seen, &points, first);
    let hops_back = hops(&back, &seen, &points, first);
    let last = path.len() - 1;
    let arrived = complete && fwd.iter().any(|s| s.point == last);
    let last_seen = (!arrived)
        .then(|| {
            fwd.last().map(|s| {
                format!(
                    "{}/{} {}",
                    points[s.point].label, points[s.point].iface, s.direction
                )
            })
        })
        .flatten();
    Ok(Journey {
        version: 1,
        lab: req.lab.to_string(),
        from: req.from.to_string(),
        to: if req.to.parse::<IpAddr>().is_ok() {
            req.to.to_string()
        } else {
            to_label
        },
        proto: crate::probe::service_label(req.service),
        address,
        path: path.clone(),
        reply_path: back_path,
        path_note,
        probe: key,
        hops: hops_fwd,
        reply: hops_back,
        reached: observed.as_ref().map_or(!back.is_empty(), |o| o.reach),
        outcome: match (&observed, req.follow) {
            (Some(o), _) => o.verdict.to_string(),
            (None, Some(wait)) if fwd.is_empty() => format!(
                "no packet of the flow left {}/{} in {:.1} s",
                path[0].label,
                path[0].iface,
                wait.as_secs_f64()
            ),
            (None, _) if back.is_empty() => "no answer seen (following an existing flow)".into(),
            (None, _) => "answer seen (following an existing flow)".into(),
        },
        last_seen,
        dropped_by,
    })
}
