//! Reading every namespace discovery found, and resolving each veth's other end across them.
//!
//! Each namespace is read over a netlink socket opened inside it (one thread visits them all
//! to open the sockets; the dumps then run from the calling thread), never through `/sys`.
//! A veth reports its peer as an index (`IFLA_LINK`) and, when the peer is elsewhere, an nsid
//! (`IFLA_LINK_NETNSID`) that is an alias in the reporting namespace's own table. The nsid is
//! interpreted where it was given: the namespaces holding a candidate end (that index, pointing
//! back at this one's index) are asked for their nsid in the reporter's table (`RTM_GETNSID`
//! by fd, which never allocates one), and the one whose nsid matches is the peer's. The pair is
//! confirmed when the peer's own report resolves back to this end.

use std::collections::HashMap;
use std::fs::File;
use std::os::fd::{AsRawFd, OwnedFd};

use super::discover::{self, Discovery, Roots};
use super::snapshot::read_ns;
use super::view::{IfView, MachineView, NsView, PeerView, RouteView, INSPECT_JSON_VERSION};
use super::{LinkKind, NsState};
use crate::netlink::{neigh, nsid, NetlinkError, NlSocket};
use crate::netns::{self, NetnsError};

/// Reading the machine failed as a whole (a single namespace that cannot be read is reported
/// in its [`NsView::error`] instead).
#[derive(Debug, thiserror::Error)]
pub enum MachineError {
    /// plumb's own namespace could not be read.
    #[error("cannot read the network state of plumb's own namespace: {0}")]
    Own(#[source] NetlinkError),
    /// The worker that enters namespaces failed.
    #[error(transparent)]
    Netns(#[from] NetnsError),
}

struct Read {
    state: Result<NsState, String>,
    cookie: Option<u64>,
    neighbours: usize,
    sock: Option<NlSocket>,
    fd: Option<OwnedFd>,
}

/// Discovers every namespace (see [`discover::discover`]), reads each, and resolves veth peers.
pub fn machine(roots: &Roots) -> Result<MachineView, MachineError> {
    crate::sys::raise_nofile_limit();
    let found = discover::discover(roots);
    view_of(found)
}

fn read_one(sock: &mut NlSocket) -> Result<(NsState, usize), NetlinkError> {
    let st = read_ns(sock)?;
    let n = neigh::count(sock)?;
    Ok((st, n))
}

fn view_of(d: Discovery) -> Result<MachineView, MachineError> {
    // Open every namespace's file; plumb's own is read through a socket opened right here.
    let mut reads: Vec<Read> = Vec::with_capacity(d.namespaces.len());
    let mut to_enter: Vec<usize> = Vec::new();
    for (i, f) in d.namespaces.iter().enumerate() {
        let fd = File::open(&f.open_path).map(OwnedFd::from);
        let mut r = Read {
            state: Err(String::new()),
            cookie: None,
            neighbours: 0,
            sock: None,
            fd: None,
        };
        match fd {
            Ok(fd) => {
                r.fd = Some(fd);
                if f.current {
                    let mut s = NlSocket::open().map_err(MachineError::Own)?;
                    let (st, n) = read_one(&mut s).map_err(MachineError::Own)?;
                    r.state = Ok(st);
                    r.neighbours = n;
                    r.cookie = crate::sys::netns_cookie(&s).ok();
                    r.sock = Some(s);
                } else {
                    to_enter.push(i);
                }
            }
            Err(e) => {
                r.state = Err(format!("cannot open {}: {e}", f.open_path.display()));
            }
        }
        reads.push(r);
    }
    let fds: Vec<&OwnedFd> = to_enter
        .iter()
        .map(|&i| reads[i].fd.as_ref().expect("opened above"))
        .collect();
    let socks = netns::open_sockets(&fds)?;
    for (&i, s) in to_enter.iter().zip(socks) {
        match s {
            Ok(mut s) => match read_one(&mut s) {
                Ok((st, n)) => {
                    reads[i].state = Ok(st);
                    reads[i].neighbours = n;
                    reads[i].cookie = crate::sys::netns_cookie(&s).ok();
                    reads[i].sock = Some(s);
                }
                Err(e) => reads[i].state = Err(format!("cannot read it: {e}")),
            },
            Err(e) => reads[i].state = Err(format!("cannot enter it: {e}")),
        }
    }
    let peers = resolve_peers(&mut reads);
    let labels: Vec<String> = d.namespaces.iter().map(|f| f.label()).collect();
    let mut namespaces = Vec::with_capacity(reads.len());
    for (i, (f, r)) in d.namespaces.iter().zip(&reads).enumerate() {
        let (interfaces, routes, lab, error) = match &r.state {
            Ok(st) => {
                let ifaces = st
                    .links
                    .iter()
                    .map(|l| {
                        let peer = peers.get(&(i, l.index)).map(|p| {
                            let (ns, name) = match p.at {
                                Some((w, index)) => (
                                    Some(d.namespaces[w].id),
                                    reads[w].state.as_ref().ok().and_then(|s| {
                                        s.link_by_index(index).map(|l| l.name.clone())
                                    }),
                                ),
                                None => (None, None),
                            };
                            PeerView {
                                namespace: ns,
                                label: p.at.map(|(w, _)| labels[w].clone()),
                                index: l.peer_index.unwrap_or(0),
                                name,
                                nsid: l.peer_netnsid,
                                confirmed: p.confirmed,
                            }
                        });
                        IfView {
                            index: l.index,
                            name: l.name.clone(),
                            kind: l.kind.to_string(),
                            state: l.operstate.clone(),
                            up: l.up,
                            mtu: l.mtu,
                            mac: l.mac.map(|m| m.to_string()),
                            master: l
                                .master
                                .and_then(|m| st.link_by_index(m))
                                .map(|m| m.name.clone()),
                            addresses: st.addrs_of(l.index).copied().collect(),
                            ports: if l.kind == LinkKind::Bridge {
                                st.links
                                    .iter()
                                    .filter(|p| p.master == Some(l.index))
                                    .map(|p| p.name.clone())
                                    .collect()
                            } else {
                                Vec::new()
                            },
                            lab: l.owner().map(str::to_string),
                            peer,
                        }
                    })
                    .collect();
                let routes = st
                    .routes
                    .iter()
                    .map(|r| RouteView {
                        dst: r.dst,
                        via: r.via,
                        dev: r
                            .oif
                            .and_then(|o| st.link_by_index(o))
                            .map(|l| l.name.clone()),
                    })
                    .collect();
                (ifaces, routes, st.owner().map(str::to_string), None)
            }
            Err(e) => (Vec::new(), Vec::new(), None, Some(e.clone())),
        };
        namespaces.push(NsView {
            id: f.id,
            cookie: r.cookie,
            label: labels[i].clone(),
            current: f.current,
            holders: f.holders.clone(),
            pids: f.pids(),
            container: f.container.clone(),
            lab,
            error,
            interfaces,
            routes,
            neighbours: r.neighbours,
        });
    }
    Ok(MachineView {
        version: INSPECT_JSON_VERSION,
        namespaces,
        processes_not_examined: d.processes_not_examined,
    })
}

struct Resolved {
    /// (namespace position, ifindex) of the other end, when found.
    at: Option<(usize, u32)>,
    confirmed: bool,
}

/// For every veth end (namespace position, ifindex), where its other end is.
fn resolve_peers(reads: &mut [Read]) -> HashMap<(usize, u32), Resolved> {
    // Every veth end: (namespace, index) -> (peer index, nsid).
    let mut ends: HashMap<(usize, u32), (u32, Option<i32>)> = HashMap::new();
    for (v, r) in reads.iter().enumerate() {
        if let Ok(st) = &r.state {
            for l in &st.links {
                if l.kind == LinkKind::Veth {
                    if let Some(p) = l.peer_index {
                        ends.insert((v, l.index), (p, l.peer_netnsid));
                    }
                }
            }
        }
    }
    // Candidates: the ends elsewhere with the peer's index that point back at this index.
    let mut by_index: HashMap<(u32, u32), Vec<usize>> = HashMap::new();
    for (&(w, index), &(peer, _)) in &ends {
        by_index.entry((index, peer)).or_default().push(w);
    }
    let mut asks: HashMap<usize, Vec<usize>> = HashMap::new();
    for (&(v, index), &(peer, nsid)) in &ends {
        if nsid.is_some() {
            for &w in by_index.get(&(peer, index)).into_iter().flatten() {
                if w != v {
                    asks.entry(v).or_default().push(w);
                }
            }
        }
    }
    // Each viewer's nsid for each candidate namespace, asked through the viewer's socket.
    let mut nsid_of: HashMap<(usize, usize), i32> = HashMap::new();
    for (v, mut ws) in asks {
        ws.sort_unstable();
        ws.dedup();
        let raw: Vec<_> = ws
            .iter()
            .filter_map(|&w| reads[w].fd.as_ref().map(|f| (w, f.as_raw_fd())))
            .collect();
        let Some(sock) = reads[v].sock.as_mut() else {
            continue;
        };
        let fds: Vec<_> = raw.iter().map(|(_, fd)| *fd).collect();
        for ((w, _), id) in raw.iter().zip(nsid::ids_of(sock, &fds)) {
            if let Ok(Some(id)) = id {
                nsid_of.insert((v, *w), id);
            }
        }
    }
    let mut at: HashMap<(usize, u32), Option<(usize, u32)>> = HashMap::new();
    for (&(v, index), &(peer, nsid)) in &ends {
        let found = match nsid {
            None => ends.contains_key(&(v, peer)).then_some((v, peer)),
            Some(id) => by_index
                .get(&(peer, index))
                .into_iter()
                .flatten()
                .find(|&&w| w != v && nsid_of.get(&(v, w)) == Some(&id))
                .map(|&w| (w, peer)),
        };
        at.insert((v, index), found);
    }
    at.iter()
        .map(|(&end, &found)| {
            let confirmed = found.is_some_and(|other| at.get(&other) == Some(&Some(end)));
            (
                end,
                Resolved {
                    at: found,
                    confirmed,
                },
            )
        })
        .collect()
}
