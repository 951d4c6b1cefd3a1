//! The backend that changes the kernel: netlink for links, addresses and routes, `/run/netns`
//! for namespaces, `/proc/sys` for sysctls, nf_tables netlink for firewalls.
//!
//! One socket per namespace, opened inside it once and kept for the run; requests for one
//! namespace are pipelined through its socket. Interface indexes are cached from the snapshot
//! and from the indexes plumb chooses itself for interfaces in namespaces it creates.

mod addrs;
mod build;
mod firewall;
mod links;
mod ns;

use std::collections::{HashMap, HashSet};
use std::os::fd::{AsRawFd, OwnedFd};

use super::{Backend, StepError};
use crate::inspect::Snapshot;
use crate::model::names::{LabName, NsName};
use crate::model::NodeRef;
use crate::netlink::{link, NlSocket, Request};
use crate::netns::{self, Registry};
use crate::ownership;

/// A namespace plumb holds open while it works on it.
struct NsHandle {
    fd: OwnedFd,
    sock: NlSocket,
    /// Its nf_tables socket, once a firewall step needed it.
    nf: Option<crate::nftables::NfSocket>,
    /// For a namespace this run created: the next free interface index (`lo` is 1), so that
    /// plumb chooses indexes instead of asking for them afterwards. `None` once an index there
    /// was chosen by the kernel (plumb then no longer knows which are free).
    next_index: Option<u32>,
}

/// Carries out steps on the running kernel.
pub struct KernelBackend {
    lab: LabName,
    group: u32,
    reg: Registry,
    host: NlSocket,
    ns: HashMap<NsName, NsHandle>,
    index: HashMap<(NodeRef, String), u32>,
    /// Nodes whose index cache is complete (read from a dump).
    known: HashSet<NodeRef>,
    /// The lab's `prefix`: namespaces' `lo` tags then name their node as written.
    prefix: Option<String>,
    /// Firewall tables saved before a change replaced them, for rollback.
    saved_fw: HashMap<NodeRef, crate::nftables::Saved>,
    /// The host's nf_tables socket, once a firewall step needed it.
    host_nf: Option<crate::nftables::NfSocket>,
    /// Time spent scheduling, creating links and configuring (debug profile).
    timing: (
        std::time::Duration,
        std::time::Duration,
        std::time::Duration,
    ),
}

impl std::fmt::Debug for KernelBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KernelBackend")
            .field("lab", &self.lab)
            .finish()
    }
}

/// One request for the socket of `node`, answering for step `i` of a batch.
type NodeReq = (NodeRef, Request, usize);

fn ok_results(n: usize) -> Vec<Result<(), StepError>> {
    (0..n).map(|_| Ok(())).collect()
}

fn set_err(results: &mut [Result<(), StepError>], i: usize, e: StepError) {
    if results[i].is_ok() {
        results[i] = Err(e);
    }
}

impl KernelBackend {
    /// A backend for `lab`, seeded with interface indexes from `snap`.
    pub fn new(lab: &LabName, reg: Registry, snap: &Snapshot) -> Result<Self, StepError> {
        let host = NlSocket::open()?;
        let mut index = HashMap::new();
        for l in &snap.host.links {
            index.insert((NodeRef::Host, l.name.clone()), l.index);
        }
        let mut known = HashSet::from([NodeRef::Host]);
        for (name, ns) in &snap.namespaces {
            if let Ok(st) = &ns.state {
                let node = NodeRef::Ns(name.clone());
                for l in &st.links {
                    index.insert((node.clone(), l.name.clone()), l.index);
                }
                known.insert(node);
            }
        }
        Ok(KernelBackend {
            lab: lab.clone(),
            group: ownership::lab_group(lab),
            reg,
            host,
            ns: HashMap::new(),
            index,
            known,
            saved_fw: HashMap::new(),
            host_nf: None,
            prefix: None,
            timing: Default::default(),
        })
    }

    /// Sets the lab's `prefix` (see [`ownership::lo_tag`]).
    pub fn with_prefix(mut self, prefix: Option<String>) -> Self {
        self.prefix = prefix;
        self
    }

    /// The tag of `lo` in namespace `ns`, with firewall version `fw`.
    fn lo_tag(&self, ns: &NsName, fw: Option<&str>) -> String {
        let node = self
            .prefix
            .as_deref()
            .and_then(|p| ns.as_str().strip_prefix(p));
        ownership::lo_tag(&self.lab, node, fw)
    }

    /// Opens handles (namespace fd + socket) for existing namespaces among `nodes`, all on one
    /// thread that visits them in turn. Returns why each one that could not be opened failed.
    fn open_nodes(
        &mut self,
        nodes: impl IntoIterator<Item = NodeRef>,
    ) -> HashMap<NodeRef, StepError> {
        let mut failures: HashMap<NodeRef, StepError> = HashMap::new();
        let mut names = Vec::new();
        let mut seen = HashSet::new();
        for n in nodes {
            if let NodeRef::Ns(name) = n {
                if !self.ns.contains_key(&name) && seen.insert(name.clone()) {
                    names.push(name);
                }
            }
        }
        let mut fds = Vec::new();
        let mut opened = Vec::new();
        for name in names {
            match self.reg.open(&name) {
                Ok(fd) => {
                    fds.push(fd);
                    opened.push(name);
                }
                Err(e) => {
                    failures.insert(NodeRef::Ns(name), e.into());
                }
            }
        }
        let refs: Vec<&OwnedFd> = fds.iter().collect();
        let socks = match netns::open_sockets(&refs) {
            Ok(s) => s,
            Err(e) => {
                // The worker thread died: nothing was opened. Keep the first error's errno.
                let errno = e.errno();
                for name in opened {
                    let err = match errno {
                        Some(n) => crate::netns::NetnsError::Enter {
                            name: name.to_string(),
                            source: std::io::Error::from_raw_os_error(n),
                        },
                        None => crate::netns::NetnsError::Worker,
                    };
                    failures.insert(NodeRef::Ns(name), err.into());
                }
                return failures;
            }
        };
        for ((name, fd), sock) in opened.into_iter().zip(fds).zip(socks) {
            match sock {
                Ok(sock) => {
                    self.ns.insert(
                        name,
                        NsHandle {
                            fd,
                            sock,
                            nf: None,
                            next_index: None,
                        },
                    );
                }
                Err(e) => {
                    failures.insert(NodeRef::Ns(name), e.into());
                }
            }
        }
        failures
    }

    /// Marks steps `i` of `batch` whose node could not be opened as failed with that reason.
    fn fail_unopened(
        failures: &HashMap<NodeRef, StepError>,
        results: &mut [Result<(), StepError>],
        touches: impl Fn(usize) -> Vec<NodeRef>,
    ) {
        for i in 0..results.len() {
            for node in touches(i) {
                if let Some(e) = failures.get(&node) {
                    let copy = match e.errno() {
                        Some(n) => StepError::Netns(crate::netns::NetnsError::Enter {
                            name: node.to_string(),
                            source: std::io::Error::from_raw_os_error(n),
                        }),
                        None => StepError::Netns(crate::netns::NetnsError::Worker),
                    };
                    set_err(results, i, copy);
                }
            }
        }
    }

    fn sock(&mut self, node: &NodeRef) -> Option<&mut NlSocket> {
        match node {
            NodeRef::Host => Some(&mut self.host),
            NodeRef::Ns(n) => self.ns.get_mut(n).map(|h| &mut h.sock),
        }
    }

    /// The index of `name` in `node`, reading the node's links once if it is not cached.
    /// `Ok(None)` when the kernel's listing has no such interface.
    fn index_of(&mut self, node: &NodeRef, name: &str) -> Result<Option<u32>, StepError> {
        let key = (node.clone(), name.to_string());
        if let Some(i) = self.index.get(&key) {
            return Ok(Some(*i));
        }
        // Cached as complete but missing: a link created since by the kernel's choice.
        self.known.remove(node);
        let Some(sock) = self.sock(node) else {
            return Err(StepError::Absent {
                what: format!("namespace {node}"),
            });
        };
        let links = link::dump(sock)?;
        self.index.retain(|(n, _), _| n != node);
        for l in links {
            self.index.insert((node.clone(), l.name), l.index);
        }
        self.known.insert(node.clone());
        Ok(self.index.get(&key).copied())
    }

    /// Like [`Self::index_of`], but an interface that does not exist is an error.
    fn existing_index(&mut self, node: &NodeRef, name: &str) -> Result<u32, StepError> {
        self.index_of(node, name)?.ok_or_else(|| StepError::Absent {
            what: format!("interface {name} in {node}"),
        })
    }

    /// The next free index in a namespace this run created, reserving it for `name`; 0 to let
    /// the kernel choose.
    fn next_index(&mut self, node: &NodeRef, name: &str) -> u32 {
        let NodeRef::Ns(n) = node else { return 0 };
        let Some(h) = self.ns.get_mut(n) else {
            return 0;
        };
        let Some(next) = h.next_index.as_mut() else {
            return 0;
        };
        let i = *next;
        *next += 1;
        self.index.insert((node.clone(), name.to_string()), i);
        i
    }

    /// Forgets the free indexes of `node`: the kernel chose one there.
    fn kernel_chose_index(&mut self, node: &NodeRef) {
        if let NodeRef::Ns(n) = node {
            if let Some(h) = self.ns.get_mut(n) {
                h.next_index = None;
            }
        }
    }

    fn netns_fd(&self, node: &NodeRef) -> Option<i32> {
        match node {
            NodeRef::Host => None,
            NodeRef::Ns(n) => self.ns.get(n).map(|h| h.fd.as_raw_fd()),
        }
    }

    /// Sends requests grouped by the node whose socket must carry them, pipelined per socket,
    /// and merges each result into `results[step]`.
    fn send(&mut self, reqs: Vec<NodeReq>, results: &mut [Result<(), StepError>]) {
        let mut by_node: Vec<(NodeRef, Vec<(Request, usize)>)> = Vec::new();
        let mut pos: HashMap<NodeRef, usize> = HashMap::new();
        for (node, req, i) in reqs {
            let p = *pos.entry(node.clone()).or_insert_with(|| {
                by_node.push((node.clone(), Vec::new()));
                by_node.len() - 1
            });
            by_node[p].1.push((req, i));
        }
        for (node, list) in by_node {
            let (msgs, idx): (Vec<Request>, Vec<usize>) = list.into_iter().unzip();
            let Some(sock) = self.sock(&node) else {
                for i in idx {
                    set_err(
                        results,
                        i,
                        StepError::Absent {
                            what: format!("namespace {node}"),
                        },
                    );
                }
                continue;
            };
            for (r, i) in sock.execute(msgs).into_iter().zip(idx) {
                if let Err(e) = r {
                    set_err(results, i, e.into());
                }
            }
        }
    }
}

impl Backend for KernelBackend {
    fn execute(
        &mut self,
        batch: &[crate::plan::Step],
        progress: &mut dyn FnMut(usize),
    ) -> Vec<Result<(), StepError>> {
        use crate::plan::Step;
        let Some(first) = batch.first() else {
            return Vec::new();
        };
        match first {
            Step::CreateNs { .. }
            | Step::Sysctl { .. }
            | Step::CreateBridge { .. }
            | Step::CreateVeth { .. }
            | Step::SetLink { .. }
            | Step::AddAddr { .. }
            | Step::AddRoute { .. } => self.build(batch, progress),
            Step::DeleteNs { .. } | Step::DeleteGroup { .. } => self.remove(batch),
            Step::Firewall { .. } | Step::DeleteFirewall { .. } | Step::RestoreFirewall { .. } => {
                self.firewalls(batch)
            }
            Step::ParkLink { .. } | Step::UnparkLink { .. } => self.park_links(batch),
            Step::DeleteLink { .. } => self.delete_links(batch),
            Step::DelAddr { .. } | Step::DelRoute { .. } => self.addrs_routes(batch),
        }
    }
}
