//! Reading a [`Snapshot`]: three dumps (links, addresses, routes) per namespace, each namespace
//! read through a socket opened inside it by one short-lived thread that visits them in turn.

use std::collections::BTreeMap;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use super::{LinkKind, NamedNs, NsState, Snapshot};
use crate::model::names::NsName;
use crate::netlink::{addr, link, nsid, route, NetlinkError, NlSocket};
use crate::netns::{self, NetnsError, Registry};
use crate::ownership::Tag;

/// Reading the kernel's state failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InspectError {
    /// The host namespace could not be read.
    #[error("cannot read the host's network state: {0}")]
    Host(#[source] NetlinkError),
    /// A named namespace could not be read for a reason other than "it is not a namespace"
    /// (too many open files, no permission…): a snapshot without it would be wrong.
    #[error("cannot read namespace {name}: {source}")]
    Namespace {
        /// The namespace.
        name: NsName,
        /// Why.
        #[source]
        source: NetlinkError,
    },
    /// `/run/netns` could not be listed, a namespace could not be opened, or a worker failed.
    #[error(transparent)]
    Netns(#[from] NetnsError),
}

impl InspectError {
    /// The errno underneath, if any.
    pub fn errno(&self) -> Option<i32> {
        match self {
            InspectError::Host(e) | InspectError::Namespace { source: e, .. } => e.errno(),
            InspectError::Netns(e) => e.errno(),
        }
    }
}

/// How much of each named namespace a snapshot reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Depth {
    /// Links, addresses, routes (and the sysctls asked for): what planning needs.
    Full,
    /// Only the host's links and each namespace's `lo` (which tells who owns the namespace):
    /// what a teardown needs. Read through the host's socket by nsid where the host has one
    /// for the namespace, without entering it.
    Owners,
}

/// Reads links, addresses and routes through `sock` (three dumps).
/// Equivalent to `ip link; ip addr; ip route` in that namespace.
pub fn read_ns(sock: &mut NlSocket) -> Result<NsState, NetlinkError> {
    let links = link::dump(sock)?;
    let addrs = addr::dump(sock)?;
    let routes = route::dump(sock)?;
    // The version of the lab's firewall table in a namespace is kept in `lo`'s tag.
    let nft_version = links
        .iter()
        .find(|l| l.kind == LinkKind::Loopback)
        .and_then(|l| l.alias.as_deref())
        .and_then(Tag::parse)
        .and_then(|t| t.fw)
        .map(str::to_string);
    Ok(NsState {
        links,
        addrs,
        routes,
        sysctls: BTreeMap::new(),
        nft_version,
        nft: None,
    })
}

/// Errors that mean "this entry of /run/netns is not a usable namespace" (a file that vanished,
/// or a plain file that is not a namespace mount), as opposed to a failure to read one.
fn not_a_namespace(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOENT | libc::EINVAL))
}

fn read_sysctls(keys: Vec<String>, into: &mut BTreeMap<String, String>) {
    for key in keys {
        // A key that does not exist here is left out: the plan then knows there is no value to
        // restore, and writing it fails with the kernel's own errno.
        if let Ok(v) = netns::read_sysctl(&key) {
            into.insert(key, v);
        }
    }
}

/// Reads the host namespace and every named namespace. For each node, `sysctls` names the
/// sysctl keys whose values to read as well. An entry of `/run/netns` that is not a namespace
/// (a stale file) is listed with the reason; any other failure fails the snapshot.
pub fn snapshot(
    reg: &Registry,
    depth: Depth,
    sysctls: &(dyn Fn(Option<&NsName>) -> Vec<String> + Sync),
) -> Result<Snapshot, InspectError> {
    let t0 = std::time::Instant::now();
    let mut host_sock = NlSocket::open().map_err(InspectError::Host)?;
    let mut host = match depth {
        Depth::Full => read_ns(&mut host_sock),
        // A teardown needs the host's links (owners, groups), not its addresses or routes.
        Depth::Owners => link::dump(&mut host_sock).map(|links| NsState {
            links,
            ..NsState::default()
        }),
    }
    .map_err(InspectError::Host)?;
    let t_host = t0.elapsed();
    read_sysctls(sysctls(None), &mut host.sysctls);
    let mut namespaces = BTreeMap::new();
    let mut fds: Vec<OwnedFd> = Vec::new();
    let mut opened = Vec::new();
    for name in reg.list()? {
        match reg.open(&name) {
            Ok(fd) => {
                fds.push(fd);
                opened.push(name);
            }
            Err(NetnsError::Enter { source, .. }) if not_a_namespace(&source) => {
                let state = Err(source.to_string());
                namespaces.insert(name.clone(), NamedNs { name, state });
            }
            Err(e) => return Err(e.into()),
        }
    }
    // Owners only: through the host's socket, by nsid, without entering any namespace; a
    // namespace the host has no nsid for (or that refuses) is entered below like the others.
    let mut known: Vec<Option<NsState>> = (0..opened.len()).map(|_| None).collect();
    if depth == Depth::Owners && !fds.is_empty() {
        let raw: Vec<RawFd> = fds.iter().map(|f| f.as_raw_fd()).collect();
        let ids = nsid::ids_of(&mut host_sock, &raw);
        let with_id: Vec<(usize, i32)> = ids
            .iter()
            .enumerate()
            .filter_map(|(i, r)| r.as_ref().ok().copied().flatten().map(|id| (i, id)))
            .collect();
        let nsids: Vec<i32> = with_id.iter().map(|(_, id)| *id).collect();
        for ((i, _), lo) in with_id
            .iter()
            .zip(nsid::link_in_each(&mut host_sock, &nsids, 1))
        {
            if let Ok(lo) = lo {
                known[*i] = Some(NsState {
                    links: lo.into_iter().collect(),
                    ..NsState::default()
                });
            }
        }
    }
    let todo: Vec<usize> = (0..opened.len()).filter(|&i| known[i].is_none()).collect();
    tracing::debug!(?t_host, opened = opened.len(), by_nsid = opened.len() - todo.len(), elapsed = ?t0.elapsed(), "snapshot: host read, namespaces opened");
    let refs: Vec<&OwnedFd> = todo.iter().map(|&i| &fds[i]).collect();
    let entered = netns::run_in_each(&refs, |k| {
        let i = todo[k];
        let mut sock = NlSocket::open()?;
        let mut st = match depth {
            Depth::Full => read_ns(&mut sock)?,
            Depth::Owners => NsState {
                links: link::get(&mut sock, 1)?.into_iter().collect(),
                ..NsState::default()
            },
        };
        read_sysctls(sysctls(Some(&opened[i])), &mut st.sysctls);
        Ok::<_, NetlinkError>(st)
    })?;
    let mut entered = entered.into_iter();
    let states: Vec<Result<Result<NsState, NetlinkError>, std::io::Error>> = known
        .into_iter()
        .map(|k| match k {
            Some(st) => Ok(Ok(st)),
            None => entered
                .next()
                .unwrap_or_else(|| Err(std::io::Error::from_raw_os_error(libc::EIO))),
        })
        .collect();
    for (name, st) in opened.into_iter().zip(states) {
        let state = match st {
            Ok(Ok(s)) => Ok(s),
            Ok(Err(source)) => {
                return Err(InspectError::Namespace { name, source });
            }
            // setns refused: the file is not a network namespace.
            Err(e) if not_a_namespace(&e) => Err(format!("not a network namespace: {e}")),
            Err(source) => {
                return Err(NetnsError::Enter {
                    name: name.to_string(),
                    source,
                }
                .into())
            }
        };
        namespaces.insert(name.clone(), NamedNs { name, state });
    }
    Ok(Snapshot { host, namespaces })
}

/// Adds to `snap` every network namespace of the machine it lacks: a container's, one held by
/// a process, a thread, an open descriptor or a bind mount outside `/run/netns`, as `found`
/// ([`super::discover::discover`]) lists them, read like the named ones; each under its label (`docker:ID12`,
/// `pid:PID`, `net:[INODE]`…), which never names a file in `/run/netns`. Returns where each
/// added namespace can be opened. One that cannot be opened any more (gone since discovery) is
/// left out; one that cannot be read is added with the reason.
pub fn add_unnamed(
    snap: &mut Snapshot,
    found: &super::discover::Discovery,
) -> Result<BTreeMap<NsName, std::path::PathBuf>, InspectError> {
    let mut paths = BTreeMap::new();
    let mut fds: Vec<OwnedFd> = Vec::new();
    let mut names: Vec<NsName> = Vec::new();
    for f in &found.namespaces {
        if f.current
            || f.name()
                .is_some_and(|n| NsName::new(n).is_ok_and(|n| snap.namespaces.contains_key(&n)))
        {
            continue;
        }
        let Ok(name) = NsName::new(&f.label()) else {
            continue;
        };
        if snap.namespaces.contains_key(&name) || paths.contains_key(&name) {
            continue;
        }
        let Ok(file) = std::fs::File::open(&f.open_path) else {
            continue;
        };
        fds.push(OwnedFd::from(file));
        names.push(name.clone());
        paths.insert(name, f.open_path.clone());
    }
    let refs: Vec<&OwnedFd> = fds.iter().collect();
    let read = netns::run_in_each(&refs, |_| {
        NlSocket::open().and_then(|mut s| read_ns(&mut s))
    })?;
    for (name, r) in names.into_iter().zip(read) {
        let state = match r {
            Ok(Ok(st)) => Ok(st),
            Ok(Err(e)) => Err(e.to_string()),
            Err(e) => Err(format!("cannot enter: {e}")),
        };
        snap.namespaces
            .insert(name.clone(), NamedNs { name, state });
    }
    Ok(paths)
}
