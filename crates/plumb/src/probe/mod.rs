//! Reachability probes: what `plumb check` and `plumb ping` run, one native socket per probe,
//! opened inside the source node.
//!
//! A probe is an ICMP echo (a raw socket), a TCP connect, or a UDP round trip, sent from one node
//! of a lab to another node (its address) or to an address of the lab. For TCP and UDP, plumb
//! first starts a responder inside the target node (a listener, or a socket that echoes
//! datagrams back), unless something already listens on that port there.
//!
//! Invariants:
//! - A probe only ever goes to an address of the lab: a node's own address, or a literal address
//!   that belongs to a node or lies inside one of the lab's subnets ([`LabAddresses::resolve`]).
//!   Anything else is refused with [`ProbeError::OutsideLab`] before a socket exists.
//! - Every probe is bounded: at most [`TRIES`] sends of [`TRY_TIMEOUT`] each (TCP: one connect
//!   of [`TRY_TIMEOUT`]), so a probe ends within 2 s. Responders stop at the latest after
//!   [`RESPONDER_LIMIT`], and always end (their threads joined) before the probe returns,
//!   on success or error.
//! - Work inside a namespace runs on a scoped thread that enters it and ends; the calling thread
//!   never changes namespace. The `host` node is the calling thread's namespace.

mod icmp;
mod target;
mod tcp;
mod udp;

use std::io;
use std::net::IpAddr;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::lab::LabError;
use crate::model::names::LabName;
use crate::model::{Expect, NodeRef, Service, Target, Topology};
use crate::netns::{NetnsError, Registry};
use crate::sys;

pub use icmp::{checksum, echo_request};
pub use target::{LabAddresses, Resolved};

/// How long one try waits for its answer (an echo reply, a connection, an echoed datagram).
pub const TRY_TIMEOUT: Duration = Duration::from_secs(1);

/// How many times an ICMP or UDP probe sends before it counts as blocked.
pub const TRIES: u32 = 2;

/// The longest a responder stays up, whatever happens to the probe.
pub const RESPONDER_LIMIT: Duration = Duration::from_secs(4);

/// A probe could not be run (as opposed to a probe that ran and found no way through).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProbeError {
    /// The lab has no node of that name.
    #[error("lab {lab} has no node `{node}`")]
    UnknownNode {
        /// The lab.
        lab: String,
        /// The node asked for.
        node: String,
    },
    /// The target node has no address a probe could use.
    #[error("node `{node}` has no address to probe (give it an address in the file)")]
    NoAddress {
        /// The node.
        node: String,
    },
    /// A literal target address that belongs to no node and lies in no subnet of the lab.
    #[error(
        "{addr} is not an address of lab {lab}: plumb probes only the lab's own nodes and subnets"
    )]
    OutsideLab {
        /// The address.
        addr: IpAddr,
        /// The lab.
        lab: String,
    },
    /// A literal target that is not one host's address (multicast, broadcast, unspecified, a
    /// subnet's network or broadcast address).
    #[error("{addr} is not a unicast host address: a probe goes to one node")]
    NotUnicast {
        /// The address.
        addr: IpAddr,
    },
    /// A node's namespace could not be opened (the lab is not up, or not all of it).
    #[error("cannot open node {node}'s namespace (is the lab up?): {source}")]
    Open {
        /// The node.
        node: String,
        /// Why.
        #[source]
        source: NetnsError,
    },
    /// A worker thread could not enter a node's namespace.
    #[error("cannot enter node {node}'s namespace: {source}")]
    Enter {
        /// The node.
        node: String,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The probe's own socket could not be made or used.
    #[error("cannot {op} in node {node}: {source}")]
    Socket {
        /// The node.
        node: String,
        /// What was being done ("open a raw ICMP socket").
        op: &'static str,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The responder could not listen in the target node.
    #[error("cannot start a {service} responder in node {node}: {source}")]
    Responder {
        /// The node.
        node: String,
        /// `tcp/8080` or `udp/53`.
        service: String,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// Reading the lab's addresses from the kernel failed.
    #[error("cannot read lab {lab} from the kernel: {source}")]
    Kernel {
        /// The lab.
        lab: String,
        /// Why.
        #[source]
        source: Box<LabError>,
    },
    /// A probe or responder thread panicked.
    #[error("a probe thread panicked")]
    Worker,
}

/// What a probe saw.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Verdict {
    /// An ICMP echo reply came back.
    Reply {
        /// Round-trip time.
        rtt: Duration,
    },
    /// The TCP connection was established.
    Connected {
        /// Time to establish it.
        rtt: Duration,
    },
    /// The UDP token came back.
    Echoed {
        /// Round-trip time.
        rtt: Duration,
    },
    /// Nothing came back in time.
    Timeout {
        /// How long the probe waited in all.
        waited: Duration,
    },
    /// The target answered with a TCP reset: nothing listens (or a firewall rejects).
    Refused,
    /// The target (or a router) said the UDP port is unreachable.
    PortUnreachable,
    /// The source node has no route to the address (`ENETUNREACH`).
    NoRoute,
    /// The address could not be resolved on the link (`EHOSTUNREACH`).
    HostUnreachable,
    /// An ICMP destination-unreachable (or time-exceeded) came back for the echo request.
    IcmpError {
        /// ICMPv6 (its types differ from ICMP's).
        v6: bool,
        /// ICMP type (`<linux/icmp.h>`, `<linux/icmpv6.h>`).
        kind: u8,
        /// ICMP code.
        code: u8,
    },
    /// The source node's own firewall refused the packet (`EPERM`/`EACCES` from `send`).
    Filtered,
    /// The send failed with another error.
    SendFailed {
        /// The errno.
        errno: i32,
    },
}

impl Verdict {
    /// True when the probe got through.
    pub fn reached(&self) -> bool {
        matches!(
            self,
            Verdict::Reply { .. } | Verdict::Connected { .. } | Verdict::Echoed { .. }
        )
    }

    /// Maps an error from `send`/`connect` onto what it says about the path, or `None` if it
    /// says nothing about it (then it is the probe's own failure).
    fn from_send_error(e: &io::Error) -> Option<Verdict> {
        Some(match e.raw_os_error()? {
            libc::ENETUNREACH => Verdict::NoRoute,
            libc::EHOSTUNREACH | libc::EHOSTDOWN => Verdict::HostUnreachable,
            libc::ECONNREFUSED => Verdict::Refused,
            libc::ETIMEDOUT => Verdict::Timeout {
                waited: TRY_TIMEOUT,
            },
            libc::EPERM | libc::EACCES => Verdict::Filtered,
            libc::EADDRNOTAVAIL | libc::ENETDOWN | libc::ENOBUFS => Verdict::SendFailed {
                errno: e.raw_os_error()?,
            },
            _ => return None,
        })
    }
}

/// A round-trip time in milliseconds with three significant digits where it matters: `0.042 ms`
/// (microseconds below 1 ms, where a veth's round trips are), `1.25 ms`, `12 ms`.
fn ms(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1000.0;
    if ms < 1.0 {
        format!("{ms:.3} ms")
    } else if ms < 10.0 {
        format!("{ms:.2} ms")
    } else {
        format!("{ms:.0} ms")
    }
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Verdict::Reply { rtt } => write!(f, "reply in {}", ms(*rtt)),
            Verdict::Connected { rtt } => write!(f, "connected in {}", ms(*rtt)),
            Verdict::Echoed { rtt } => write!(f, "echoed in {}", ms(*rtt)),
            Verdict::Timeout { waited } => write!(f, "timeout ({:.1} s)", waited.as_secs_f64()),
            Verdict::Refused => f.write_str("connection refused"),
            Verdict::PortUnreachable => f.write_str("port unreachable"),
            Verdict::NoRoute => f.write_str("no route"),
            Verdict::HostUnreachable => f.write_str("host unreachable"),
            Verdict::IcmpError { v6, kind, code } => {
                f.write_str(&icmp::describe_error(*v6, *kind, *code))
            }
            Verdict::Filtered => f.write_str("refused by the source node's firewall"),
            Verdict::SendFailed { errno } => {
                write!(f, "send failed: {}", io::Error::from_raw_os_error(*errno))
            }
        }
    }
}

/// The outcome of one probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    /// The address the probe went to.
    pub address: IpAddr,
    /// Did it get through?
    pub reach: bool,
    /// What it saw.
    pub verdict: Verdict,
}

/// One `[[expect]]` and what its probe found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeResult {
    /// The expectation.
    pub expect: Expect,
    /// The address probed.
    pub address: IpAddr,
    /// Did the probe get through?
    pub observed_reach: bool,
    /// What the probe saw, for people: "reply in 0.210 ms", "timeout (2.0 s)", "no route".
    pub detail: String,
    /// The observation matches the expectation.
    pub ok: bool,
}

/// `icmp`, `tcp/8080`, `udp/53`: the `proto` of the topology file.
pub fn service_label(service: Service) -> String {
    match service {
        Service::Icmp => "icmp".into(),
        Service::Tcp(p) => format!("tcp/{p}"),
        Service::Udp(p) => format!("udp/{p}"),
    }
}

/// Runs every expectation of `expects` against the lab `topo` describes; results in order.
///
/// Every target is resolved (and checked to belong to the lab) before the first probe is sent,
/// so a file with one target outside the lab sends nothing at all. Probes run concurrently, up
/// to [`MAX_PARALLEL`] at a time, except that two probes that need a responder on the same port
/// of the same node never overlap.
pub fn run(topo: &Topology, expects: &[Expect]) -> Result<Vec<ProbeResult>, ProbeError> {
    let book = LabAddresses::of_topology(topo);
    let resolved = expects
        .iter()
        .map(|e| book.resolve(&e.from, &e.to))
        .collect::<Result<Vec<_>, _>>()?;
    let reg = Registry::default();
    let mut seen: Vec<Option<Observed>> = vec![None; expects.len()];
    for wave in waves(expects, &resolved) {
        let observed = std::thread::scope(|s| {
            let handles: Vec<_> = wave
                .iter()
                .map(|&i| {
                    let (e, target, reg) = (&expects[i], &resolved[i], &reg);
                    s.spawn(move || probe_resolved(reg, &e.from, target, e.service))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().map_err(|_| ProbeError::Worker)?)
                .collect::<Result<Vec<_>, _>>()
        })?;
        for (i, o) in wave.into_iter().zip(observed) {
            seen[i] = Some(o);
        }
    }
    expects
        .iter()
        .zip(seen)
        .map(|(e, o)| {
            let o = o.ok_or(ProbeError::Worker)?;
            Ok(ProbeResult {
                expect: e.clone(),
                address: o.address,
                observed_reach: o.reach,
                detail: o.verdict.to_string(),
                ok: o.reach == e.reach,
            })
        })
        .collect()
}

/// How many probes `run` has in flight at most.
pub const MAX_PARALLEL: usize = 16;

/// Splits the probes into groups that may run at the same time: at most [`MAX_PARALLEL`] each,
/// and no two in one group with a responder on the same node, protocol and port (the second
/// would find the first's socket, which stops when the first probe ends).
fn waves(expects: &[Expect], resolved: &[Resolved]) -> Vec<Vec<usize>> {
    let key = |i: usize| match (expects[i].service, &resolved[i].node) {
        (Service::Tcp(_) | Service::Udp(_), Some(node)) => Some((node, expects[i].service)),
        _ => None,
    };
    let mut out = Vec::new();
    let mut pending: Vec<usize> = (0..expects.len()).collect();
    while !pending.is_empty() {
        let mut wave = Vec::new();
        let mut rest = Vec::new();
        let mut taken = Vec::new();
        for i in pending {
            let free = match key(i) {
                Some(k) if taken.contains(&k) => false,
                Some(k) => {
                    if wave.len() < MAX_PARALLEL {
                        taken.push(k);
                    }
                    true
                }
                None => true,
            };
            if free && wave.len() < MAX_PARALLEL {
                wave.push(i);
            } else {
                rest.push(i);
            }
        }
        out.push(wave);
        pending = rest;
    }
    out
}

/// Probes `to` from `from` once with `service`, in the lab `topo` describes.
pub fn probe_one(
    topo: &Topology,
    from: &NodeRef,
    to: &Target,
    service: Service,
) -> Result<Observed, ProbeError> {
    LabAddresses::of_topology(topo).probe(from, to, service)
}

impl LabAddresses {
    /// Probes `to` from `from` once with `service`, among these addresses.
    pub fn probe(
        &self,
        from: &NodeRef,
        to: &Target,
        service: Service,
    ) -> Result<Observed, ProbeError> {
        let target = self.resolve(from, to)?;
        probe_resolved(&Registry::default(), from, &target, service)
    }

    /// The addresses of `lab` as the kernel has them (for `plumb ping LAB` without a file).
    pub fn from_kernel(lab: &LabName) -> Result<LabAddresses, ProbeError> {
        let view = crate::lab::view(lab).map_err(|e| ProbeError::Kernel {
            lab: lab.to_string(),
            source: Box::new(e),
        })?;
        Ok(LabAddresses::of_view(&view))
    }
}

/// Opens a node's namespace; `None` for the host (the calling thread's namespace).
fn open_node(reg: &Registry, node: &NodeRef) -> Result<Option<OwnedFd>, ProbeError> {
    match node {
        NodeRef::Host => Ok(None),
        NodeRef::Ns(n) => reg.open(n).map(Some).map_err(|source| ProbeError::Open {
            node: node.to_string(),
            source,
        }),
    }
}

/// Moves the calling (throwaway) thread into `fd`'s namespace; nothing to do for the host.
fn enter(fd: Option<&OwnedFd>, node: &NodeRef) -> Result<(), ProbeError> {
    match fd {
        Some(fd) => sys::setns_net(fd).map_err(|source| ProbeError::Enter {
            node: node.to_string(),
            source,
        }),
        None => Ok(()),
    }
}

/// What a responder found when it tried to listen.
enum Listening {
    /// It listens; it serves until told to stop.
    Ours,
    /// The port was taken (`EADDRINUSE`): something else listens there; the responder ended.
    Existing,
}

fn probe_resolved(
    reg: &Registry,
    from: &NodeRef,
    target: &Resolved,
    service: Service,
) -> Result<Observed, ProbeError> {
    let src = open_node(reg, from)?;
    // A responder runs only where the target is a node of the lab, and only for TCP and UDP.
    let responder_node = match (service, &target.node) {
        (Service::Tcp(_) | Service::Udp(_), Some(n)) => Some(n),
        _ => None,
    };
    let dst = match responder_node {
        Some(n) => open_node(reg, n)?,
        None => None,
    };
    let stop = AtomicBool::new(false);
    let addr = target.addr;
    std::thread::scope(|s| {
        let responder = responder_node.map(|node| {
            let (tx, rx) = mpsc::sync_channel::<Result<Listening, ProbeError>>(1);
            let (dst, stop) = (dst.as_ref(), &stop);
            let handle = s.spawn(move || {
                if let Err(e) = enter(dst, node) {
                    let _ = tx.send(Err(e));
                    return;
                }
                let until = Instant::now() + RESPONDER_LIMIT;
                let err = |source| ProbeError::Responder {
                    node: node.to_string(),
                    service: service_label(service),
                    source,
                };
                match service {
                    Service::Tcp(port) => match tcp::listen(addr.is_ipv6(), port) {
                        Ok(Some(l)) => {
                            let _ = tx.send(Ok(Listening::Ours));
                            tcp::serve(&l, stop, until);
                        }
                        Ok(None) => {
                            let _ = tx.send(Ok(Listening::Existing));
                        }
                        Err(e) => {
                            let _ = tx.send(Err(err(e)));
                        }
                    },
                    Service::Udp(port) => match udp::bind(addr.is_ipv6(), port) {
                        Ok(Some(sock)) => {
                            let _ = tx.send(Ok(Listening::Ours));
                            udp::serve(&sock, stop, until);
                        }
                        Ok(None) => {
                            let _ = tx.send(Ok(Listening::Existing));
                        }
                        Err(e) => {
                            let _ = tx.send(Err(err(e)));
                        }
                    },
                    Service::Icmp => {}
                }
            });
            (handle, rx)
        });
        // Wait until the responder listens (or failed), so the probe never races it.
        let ready = match &responder {
            Some((_, rx)) => match rx.recv() {
                Ok(Ok(l)) => Ok(Some(l)),
                Ok(Err(e)) => Err(e),
                Err(_) => Err(ProbeError::Worker),
            },
            None => Ok(None),
        };
        let observed = ready.and_then(|listening| {
            if let Some(Listening::Existing) = listening {
                tracing::debug!(
                    "{}: port in use in the target, probing the existing listener",
                    service_label(service)
                );
            }
            let src = src.as_ref();
            s.spawn(move || -> Result<Observed, ProbeError> {
                enter(src, from)?;
                let sock_err = |op| {
                    move |source| ProbeError::Socket {
                        node: from.to_string(),
                        op,
                        source,
                    }
                };
                let verdict = match service {
                    Service::Icmp => icmp::ping(addr, TRY_TIMEOUT, TRIES)
                        .map_err(sock_err("send an ICMP echo request"))?,
                    Service::Tcp(port) => tcp::connect(addr, port, TRY_TIMEOUT)
                        .map_err(sock_err("connect over TCP"))?,
                    Service::Udp(port) => udp::round_trip(addr, port, TRY_TIMEOUT, TRIES)
                        .map_err(sock_err("send a UDP datagram"))?,
                };
                Ok(Observed {
                    address: addr,
                    reach: verdict.reached(),
                    verdict,
                })
            })
            .join()
            .map_err(|_| ProbeError::Worker)?
        });
        // Stop the responder whatever happened, and wait for it.
        stop.store(true, Ordering::SeqCst);
        if let Some((handle, _)) = responder {
            if handle.join().is_err() {
                return Err(ProbeError::Worker);
            }
        }
        observed
    })
}

/// A random 64-bit value (probe ids and tokens), from the standard library's per-process
/// random hash keys: unpredictable enough to tell one probe's answers from another's.
fn random_u64() -> u64 {
    use std::hash::BuildHasher;
    std::collections::hash_map::RandomState::new().hash_one(Instant::now())
}

#[cfg(test)]
mod tests;
