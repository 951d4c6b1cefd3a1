//! Reading a [`Snapshot`]: three dumps (links, addresses, routes) per namespace, each namespace
//! read through a socket opened inside it by one short-lived thread that visits them in turn.

use std::collections::BTreeMap;
use std::io;
use std::os::fd::OwnedFd;

use super::{LinkKind, NamedNs, NsState, Snapshot};
use crate::model::names::NsName;
use crate::netlink::{addr, link, route, NetlinkError, NlSocket};
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
    sysctls: &(dyn Fn(Option<&NsName>) -> Vec<String> + Sync),
) -> Result<Snapshot, InspectError> {
    let mut host_sock = NlSocket::open().map_err(InspectError::Host)?;
    let mut host = read_ns(&mut host_sock).map_err(InspectError::Host)?;
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
    let refs: Vec<&OwnedFd> = fds.iter().collect();
    let states = netns::run_in_each(&refs, |i| {
        let mut sock = NlSocket::open()?;
        let mut st = read_ns(&mut sock)?;
        read_sysctls(sysctls(Some(&opened[i])), &mut st.sysctls);
        Ok::<_, NetlinkError>(st)
    })?;
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
