//! The backend that changes the kernel: netlink for links, addresses and routes, `/run/netns`
//! for namespaces, `/proc/sys` for sysctls.

use std::collections::{HashMap, HashSet};
use std::os::fd::{AsRawFd, OwnedFd};

use netlink_packet_route::RouteNetlinkMessage;

use super::{Backend, StepError};
use crate::inspect::Snapshot;
use crate::model::names::{LabName, NsName};
use crate::model::NodeRef;
use crate::netlink::link::{self, BridgeSpec, LinkChange, Target, VethEnd as NlEnd};
use crate::netlink::{addr, route, NlSocket};
use crate::netns::{self, Registry};
use crate::plan::{self, Step};

/// A namespace plumb holds open while it works on it.
struct NsHandle {
    fd: OwnedFd,
    sock: NlSocket,
    /// For a namespace this run created: the next free interface index (`lo` is 1), so that
    /// plumb chooses indexes instead of asking for them afterwards.
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
}

impl std::fmt::Debug for KernelBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KernelBackend")
            .field("lab", &self.lab)
            .finish()
    }
}

type Req = (RouteNetlinkMessage, u16);

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
            group: plan::lab_group(lab),
            reg,
            host,
            ns: HashMap::new(),
            index,
            known,
        })
    }

    /// Opens handles (namespace fd + socket) for existing namespaces among `nodes`, all on one
    /// thread that visits them in turn.
    fn open_nodes(
        &mut self,
        nodes: impl IntoIterator<Item = NodeRef>,
    ) -> HashMap<NodeRef, StepError> {
        let mut failures = HashMap::new();
        let mut names: Vec<NsName> = Vec::new();
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
                let msg = e.to_string();
                for name in opened {
                    failures.insert(
                        NodeRef::Ns(name),
                        StepError::Io(std::io::Error::other(msg.clone())),
                    );
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

    fn sock(&mut self, node: &NodeRef) -> Option<&mut NlSocket> {
        match node {
            NodeRef::Host => Some(&mut self.host),
            NodeRef::Ns(n) => self.ns.get_mut(n).map(|h| &mut h.sock),
        }
    }

    /// The index of `name` in `node`, reading the node's links once if it is not cached.
    fn index_of(&mut self, node: &NodeRef, name: &str) -> Option<u32> {
        let key = (node.clone(), name.to_string());
        if let Some(i) = self.index.get(&key) {
            return Some(*i);
        }
        if self.known.contains(node) {
            // Cached as complete but missing: a link created since by the kernel's choice.
            self.known.remove(node);
        }
        let sock = self.sock(node)?;
        let links = link::dump(sock).ok()?;
        for l in links {
            self.index.insert((node.clone(), l.name), l.index);
        }
        self.known.insert(node.clone());
        self.index.get(&key).copied()
    }

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

    fn netns_fd(&self, node: &NodeRef) -> Option<i32> {
        match node {
            NodeRef::Host => None,
            NodeRef::Ns(n) => self.ns.get(n).map(|h| h.fd.as_raw_fd()),
        }
    }

    /// Sends requests grouped by the node whose socket must carry them, pipelined per socket,
    /// and merges each result into `results[step]`.
    fn send(&mut self, reqs: Vec<(NodeRef, Req, usize)>, results: &mut [Result<(), StepError>]) {
        let mut by_node: Vec<(NodeRef, Vec<(Req, usize)>)> = Vec::new();
        let mut pos: HashMap<NodeRef, usize> = HashMap::new();
        for (node, req, i) in reqs {
            let p = *pos.entry(node.clone()).or_insert_with(|| {
                by_node.push((node.clone(), Vec::new()));
                by_node.len() - 1
            });
            by_node[p].1.push((req, i));
        }
        for (node, list) in by_node {
            let (msgs, idx): (Vec<Req>, Vec<usize>) = list.into_iter().unzip();
            let Some(sock) = self.sock(&node) else {
                for i in idx {
                    set_err(
                        results,
                        i,
                        StepError::Missing {
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

    fn create_ns(&mut self, batch: &[Step]) -> Vec<Result<(), StepError>> {
        let names: Vec<NsName> = batch
            .iter()
            .filter_map(|s| {
                if let Step::CreateNs { ns } = s {
                    Some(ns.clone())
                } else {
                    None
                }
            })
            .collect();
        let tag = plan::tag(&self.lab);
        let mut results: Vec<Result<(), StepError>> = Vec::with_capacity(names.len());
        let mut handles = Vec::new();
        let r = self.reg.create_each(&names, |mut c| {
            // Tag the namespace (lo's alias) and bring lo up: `ip -n NS link set lo up alias …`.
            let change = LinkChange {
                up: Some(true),
                alias: Some(tag.clone()),
                ..Default::default()
            };
            let res = c.sock.execute(link::set(Target::Index(1), &change));
            results.push(
                res.into_iter()
                    .find_map(Result::err)
                    .map_or(Ok(()), |e| Err(e.into())),
            );
            handles.push(c);
        });
        for c in handles {
            let node = NodeRef::Ns(c.name.clone());
            self.index.insert((node.clone(), "lo".into()), 1);
            self.known.insert(node);
            self.ns.insert(
                c.name,
                NsHandle {
                    fd: c.fd,
                    sock: c.sock,
                    next_index: Some(2),
                },
            );
        }
        if let Err(e) = r {
            results.push(Err(e.into()));
        }
        while results.len() < names.len() {
            results.push(Err(StepError::Missing {
                what: "namespace (not attempted)".into(),
            }));
        }
        results
    }

    fn sysctls(&mut self, batch: &[Step]) -> Vec<Result<(), StepError>> {
        let mut results: Vec<Result<(), StepError>> = (0..batch.len()).map(|_| Ok(())).collect();
        let mut per_ns: Vec<(NsName, Vec<usize>)> = Vec::new();
        for (i, s) in batch.iter().enumerate() {
            let Step::Sysctl { node, key, value } = s else {
                continue;
            };
            match node {
                NodeRef::Host => {
                    if let Err(e) = netns::write_sysctl(key, value) {
                        results[i] = Err(e.into());
                    }
                }
                NodeRef::Ns(n) => match per_ns.iter_mut().find(|(m, _)| m == n) {
                    Some((_, v)) => v.push(i),
                    None => per_ns.push((n.clone(), vec![i])),
                },
            }
        }
        let failures = self.open_nodes(per_ns.iter().map(|(n, _)| NodeRef::Ns(n.clone())));
        let mut todo: Vec<(&OwnedFd, Vec<usize>)> = Vec::new();
        for (n, idx) in &per_ns {
            if let Some(e) = failures.get(&NodeRef::Ns(n.clone())) {
                for &i in idx {
                    results[i] = Err(StepError::Missing {
                        what: format!("namespace {n}: {e}"),
                    });
                }
            } else if let Some(h) = self.ns.get(n) {
                todo.push((&h.fd, idx.clone()));
            }
        }
        let fds: Vec<&OwnedFd> = todo.iter().map(|(f, _)| *f).collect();
        let out = netns::run_in_each(&fds, |k| {
            todo[k]
                .1
                .iter()
                .map(|&i| match &batch[i] {
                    Step::Sysctl { key, value, .. } => netns::write_sysctl(key, value),
                    _ => Ok(()),
                })
                .collect::<Vec<_>>()
        });
        match out {
            Ok(per) => {
                for ((_, idx), r) in todo.iter().zip(per) {
                    match r {
                        Ok(rs) => {
                            for (&i, r) in idx.iter().zip(rs) {
                                if let Err(e) = r {
                                    results[i] = Err(e.into());
                                }
                            }
                        }
                        Err(e) => {
                            for &i in idx {
                                results[i] = Err(StepError::Io(std::io::Error::new(
                                    e.kind(),
                                    e.to_string(),
                                )));
                            }
                        }
                    }
                }
            }
            Err(e) => {
                let msg = e.to_string();
                for (_, idx) in &todo {
                    for &i in idx {
                        results[i] = Err(StepError::Io(std::io::Error::other(msg.clone())));
                    }
                }
            }
        }
        results
    }

    fn create_links(&mut self, batch: &[Step]) -> Vec<Result<(), StepError>> {
        let mut results: Vec<Result<(), StepError>> = (0..batch.len()).map(|_| Ok(())).collect();
        let nodes: Vec<NodeRef> = batch
            .iter()
            .flat_map(|s| match s {
                Step::CreateBridge { node, .. } => vec![node.clone()],
                Step::CreateVeth { a, b, .. } => vec![a.node.clone(), b.node.clone()],
                _ => vec![],
            })
            .collect();
        for (node, e) in self.open_nodes(nodes) {
            for (i, s) in batch.iter().enumerate() {
                let touches = match s {
                    Step::CreateBridge { node: n, .. } => *n == node,
                    Step::CreateVeth { a, b, .. } => a.node == node || b.node == node,
                    _ => false,
                };
                if touches {
                    results[i] = Err(StepError::Missing {
                        what: format!("namespace {node}: {e}"),
                    });
                }
            }
        }
        // 1. Create, all through the host's socket: each device is born in its namespace.
        let mut creates: Vec<Req> = Vec::new();
        let mut create_idx = Vec::new();
        let mut tags: Vec<(NodeRef, Req, usize)> = Vec::new();
        let lab_tag = plan::tag(&self.lab);
        for (i, s) in batch.iter().enumerate() {
            if results[i].is_err() {
                continue;
            }
            match s {
                Step::CreateBridge {
                    node,
                    name,
                    mtu,
                    stp,
                    mac,
                    ipv6,
                } => {
                    let spec = BridgeSpec {
                        name: name.as_str(),
                        netns_fd: self.netns_fd(node),
                        // A fixed MTU (ETH_DATA_LEN unless set) stops the bridge from recomputing it
                        // from its ports on every new port.
                        mtu: Some(mtu.unwrap_or(1500)),
                        mac: *mac,
                        stp: *stp,
                        group: self.group,
                    };
                    let (mut msg, flags) = link::new_bridge(&spec);
                    let idx = self.next_index(node, name.as_str());
                    if let RouteNetlinkMessage::NewLink(m) = &mut msg {
                        m.header.index = idx;
                    }
                    creates.push((msg, flags));
                    create_idx.push(i);
                    let change = LinkChange {
                        alias: Some(lab_tag.clone()),
                        ipv6_addrgen_none: !ipv6,
                        ..Default::default()
                    };
                    let target = if idx != 0 {
                        Target::Index(idx)
                    } else {
                        Target::Name(name.as_str())
                    };
                    for r in link::set(target, &change) {
                        tags.push((node.clone(), r, i));
                    }
                }
                Step::CreateVeth { a, b, link_id } => {
                    let tag = plan::veth_tag(&self.lab, link_id);
                    let mut ends = Vec::new();
                    let mut missing = None;
                    for e in [a, b] {
                        let master = match &e.master {
                            Some(m) => match self.index_of(&e.node, m.as_str()) {
                                Some(x) => Some(x),
                                None => {
                                    missing = Some(format!("bridge {m} in {}", e.node));
                                    None
                                }
                            },
                            None => None,
                        };
                        ends.push(master);
                    }
                    if let Some(what) = missing {
                        results[i] = Err(StepError::Missing { what });
                        continue;
                    }
                    let ia = self.next_index(&a.node, a.name.as_str());
                    // The kernel honours the peer's index only when the first end's is set.
                    let ib = if ia != 0 {
                        self.next_index(&b.node, b.name.as_str())
                    } else {
                        0
                    };
                    let end_a = NlEnd {
                        name: a.name.as_str(),
                        netns_fd: self.netns_fd(&a.node),
                        index: ia,
                        mtu: a.mtu,
                        mac: a.mac,
                        master: ends[0],
                        group: self.group,
                    };
                    let end_b = NlEnd {
                        name: b.name.as_str(),
                        netns_fd: self.netns_fd(&b.node),
                        index: ib,
                        mtu: b.mtu,
                        mac: b.mac,
                        master: None,
                        group: self.group,
                    };
                    creates.push(link::new_veth(&end_a, &end_b));
                    create_idx.push(i);
                    // The kernel ignores IFLA_MASTER in the peer's attributes at creation, so
                    // the peer joins its bridge in the tagging request.
                    for (e, idx, master) in [(a, ia, None), (b, ib, ends[1])] {
                        let change = LinkChange {
                            alias: Some(tag.clone()),
                            ipv6_addrgen_none: !e.ipv6,
                            master,
                            ..Default::default()
                        };
                        let target = if idx != 0 {
                            Target::Index(idx)
                        } else {
                            Target::Name(e.name.as_str())
                        };
                        for r in link::set(target, &change) {
                            tags.push((e.node.clone(), r, i));
                        }
                    }
                }
                _ => {}
            }
        }
        for (r, i) in self.host.execute(creates).into_iter().zip(create_idx) {
            if let Err(e) = r {
                results[i] = Err(e.into());
            }
        }
        // 2. Tag every new device and turn IPv6 address generation off where no IPv6 address
        //    is wanted, before anything brings it up.
        let tags: Vec<_> = tags
            .into_iter()
            .filter(|(_, _, i)| results[*i].is_ok())
            .collect();
        self.send(tags, &mut results);
        results
    }

    fn set_links(&mut self, batch: &[Step]) -> Vec<Result<(), StepError>> {
        let mut results: Vec<Result<(), StepError>> = (0..batch.len()).map(|_| Ok(())).collect();
        let failures = self.open_nodes(batch.iter().filter_map(|s| match s {
            Step::SetLink { node, .. } => Some(node.clone()),
            _ => None,
        }));
        let mut reqs = Vec::new();
        for (i, s) in batch.iter().enumerate() {
            let Step::SetLink { node, name, set } = s else {
                continue;
            };
            if let Some(e) = failures.get(node) {
                results[i] = Err(StepError::Missing {
                    what: format!("namespace {node}: {e}"),
                });
                continue;
            }
            let master = match &set.master {
                Some(Some(m)) => match self.index_of(node, m.as_str()) {
                    Some(x) => Some(x),
                    None => {
                        results[i] = Err(StepError::Missing {
                            what: format!("bridge {m} in {node}"),
                        });
                        continue;
                    }
                },
                Some(None) => Some(0),
                None => None,
            };
            let change = LinkChange {
                up: set.up,
                mtu: set.mtu,
                mac: set.mac,
                master,
                isolated: set.isolated,
                ..Default::default()
            };
            let target = match self.index.get(&(node.clone(), name.clone())) {
                Some(&x) => Target::Index(x),
                None => Target::Name(name.as_str()),
            };
            for r in link::set(target, &change) {
                reqs.push((node.clone(), r, i));
            }
        }
        self.send(reqs, &mut results);
        results
    }

    fn addrs_routes(&mut self, batch: &[Step]) -> Vec<Result<(), StepError>> {
        let mut results: Vec<Result<(), StepError>> = (0..batch.len()).map(|_| Ok(())).collect();
        let failures = self.open_nodes(batch.iter().filter_map(|s| match s {
            Step::AddAddr { node, .. }
            | Step::DelAddr { node, .. }
            | Step::AddRoute { node, .. }
            | Step::DelRoute { node, .. } => Some(node.clone()),
            _ => None,
        }));
        let mut reqs = Vec::new();
        for (i, s) in batch.iter().enumerate() {
            let (node, dev) = match s {
                Step::AddAddr { node, dev, .. } | Step::DelAddr { node, dev, .. } => {
                    (node, Some(dev.as_str()))
                }
                Step::AddRoute { node, route } | Step::DelRoute { node, route } => {
                    (node, route.dev.as_deref())
                }
                _ => continue,
            };
            if let Some(e) = failures.get(node) {
                results[i] = Err(StepError::Missing {
                    what: format!("namespace {node}: {e}"),
                });
                continue;
            }
            let idx = match dev {
                Some(d) => match self.index_of(node, d) {
                    Some(x) => Some(x),
                    None => {
                        results[i] = Err(StepError::Missing {
                            what: format!("interface {d} in {node}"),
                        });
                        continue;
                    }
                },
                None => None,
            };
            let req = match s {
                Step::AddAddr { addr: a, .. } => addr::add(idx.unwrap_or(0), a),
                Step::DelAddr { addr: a, .. } => addr::delete(idx.unwrap_or(0), a),
                Step::AddRoute { route: r, .. } => route::add(&route::RouteSpec {
                    dst: r.dst,
                    via: r.via,
                    oif: idx,
                }),
                Step::DelRoute { route: r, .. } => route::delete(&route::RouteSpec {
                    dst: r.dst,
                    via: r.via,
                    oif: idx,
                }),
                _ => continue,
            };
            reqs.push((node.clone(), req, i));
        }
        self.send(reqs, &mut results);
        results
    }

    fn delete_links(&mut self, batch: &[Step]) -> Vec<Result<(), StepError>> {
        let mut results: Vec<Result<(), StepError>> = (0..batch.len()).map(|_| Ok(())).collect();
        let failures = self.open_nodes(batch.iter().filter_map(|s| match s {
            Step::DeleteLink { node, .. } => Some(node.clone()),
            _ => None,
        }));
        let mut reqs = Vec::new();
        for (i, s) in batch.iter().enumerate() {
            match s {
                Step::DeleteLink { node, name } => {
                    if let Some(e) = failures.get(node) {
                        results[i] = if e.is_gone() {
                            Ok(())
                        } else {
                            Err(StepError::Missing {
                                what: format!("namespace {node}: {e}"),
                            })
                        };
                        continue;
                    }
                    reqs.push((node.clone(), link::delete(Target::Name(name)), i));
                }
                Step::DeleteGroup { group } => {
                    reqs.push((NodeRef::Host, link::delete_group(*group), i))
                }
                _ => {}
            }
        }
        self.send(reqs, &mut results);
        // A deleted veth takes its peer along, wherever it is: every cached index may be stale.
        self.known.clear();
        self.index.clear();
        results
    }

    fn delete_ns(&mut self, batch: &[Step]) -> Vec<Result<(), StepError>> {
        batch
            .iter()
            .map(|s| {
                let Step::DeleteNs { ns } = s else {
                    return Ok(());
                };
                self.ns.remove(ns);
                let node = NodeRef::Ns(ns.clone());
                self.index.retain(|(n, _), _| *n != node);
                self.known.remove(&node);
                self.reg.remove(ns).map(|_| ()).map_err(StepError::from)
            })
            .collect()
    }
}

impl KernelBackend {
    /// Writes or removes nftables tables: one `nft -j` transaction per namespace, run from a
    /// thread inside it (the child inherits the thread's network namespace). A namespace's
    /// table version is then recorded in its `lo` tag (`plumb:LAB fw=VERSION`).
    fn firewalls(&mut self, batch: &[Step]) -> Vec<Result<(), StepError>> {
        let mut results: Vec<Result<(), StepError>> = (0..batch.len()).map(|_| Ok(())).collect();
        let failures = self.open_nodes(batch.iter().filter_map(|s| match s {
            Step::Firewall { node, .. } | Step::DeleteFirewall { node, .. } => Some(node.clone()),
            _ => None,
        }));
        let doc = |s: &Step| -> Result<(String, serde_json::Value), StepError> {
            match s {
                Step::Firewall { table, batch, .. } => serde_json::from_str(batch)
                    .map(|v| (table.clone(), v))
                    .map_err(|e| StepError::Io(std::io::Error::other(e))),
                Step::DeleteFirewall { table, .. } => {
                    Ok((table.clone(), crate::firewall::Table::delete_batch(table)))
                }
                _ => Err(StepError::Missing {
                    what: "firewall step".into(),
                }),
            }
        };
        let mut in_ns: Vec<usize> = Vec::new();
        for (i, s) in batch.iter().enumerate() {
            let (Step::Firewall { node, .. } | Step::DeleteFirewall { node, .. }) = s else {
                continue;
            };
            if let Some(e) = failures.get(node) {
                results[i] = Err(StepError::Missing {
                    what: format!("namespace {node}: {e}"),
                });
                continue;
            }
            match node {
                NodeRef::Host => {
                    results[i] = doc(s)
                        .and_then(|(t, d)| crate::firewall::apply(&t, &d).map_err(StepError::from));
                }
                NodeRef::Ns(_) => in_ns.push(i),
            }
        }
        let fds: Vec<&OwnedFd> = in_ns
            .iter()
            .filter_map(|&i| match &batch[i] {
                Step::Firewall {
                    node: NodeRef::Ns(n),
                    ..
                }
                | Step::DeleteFirewall {
                    node: NodeRef::Ns(n),
                    ..
                } => self.ns.get(n).map(|h| &h.fd),
                _ => None,
            })
            .collect();
        if fds.len() == in_ns.len() {
            let docs: Vec<_> = in_ns.iter().map(|&i| doc(&batch[i])).collect();
            let out = netns::run_in_each(&fds, |k| match &docs[k] {
                Ok((t, d)) => crate::firewall::apply(t, d).map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            });
            match out {
                Ok(rs) => {
                    for (&i, r) in in_ns.iter().zip(rs) {
                        match r {
                            Ok(Ok(())) => {}
                            Ok(Err(msg)) => {
                                results[i] = Err(StepError::Io(std::io::Error::other(msg)))
                            }
                            Err(e) => results[i] = Err(e.into()),
                        }
                    }
                }
                Err(e) => {
                    for &i in &in_ns {
                        results[i] = Err(StepError::Io(std::io::Error::other(e.to_string())));
                    }
                }
            }
        } else {
            for &i in &in_ns {
                results[i] = Err(StepError::Missing {
                    what: "namespace".into(),
                });
            }
        }
        // Record the version in lo's tag, so the next snapshot knows the table is current.
        let mut tags = Vec::new();
        for &i in &in_ns {
            if results[i].is_err() {
                continue;
            }
            let (node, alias) = match &batch[i] {
                Step::Firewall { node, version, .. } => {
                    (node, format!("{} fw={version}", plan::tag(&self.lab)))
                }
                Step::DeleteFirewall { node, .. } => (node, plan::tag(&self.lab)),
                _ => continue,
            };
            let change = LinkChange {
                alias: Some(alias),
                ..Default::default()
            };
            for r in link::set(Target::Index(1), &change) {
                tags.push((node.clone(), r, i));
            }
        }
        self.send(tags, &mut results);
        results
    }
}

fn set_err(results: &mut [Result<(), StepError>], i: usize, e: StepError) {
    if results[i].is_ok() {
        results[i] = Err(e);
    }
}

impl Backend for KernelBackend {
    fn execute(&mut self, batch: &[Step]) -> Vec<Result<(), StepError>> {
        let Some(first) = batch.first() else {
            return Vec::new();
        };
        match first {
            Step::CreateNs { .. } => self.create_ns(batch),
            Step::DeleteNs { .. } => self.delete_ns(batch),
            Step::Sysctl { .. } => self.sysctls(batch),
            Step::CreateBridge { .. } | Step::CreateVeth { .. } => self.create_links(batch),
            Step::Firewall { .. } | Step::DeleteFirewall { .. } => self.firewalls(batch),
            Step::SetLink { .. } => self.set_links(batch),
            Step::DeleteLink { .. } | Step::DeleteGroup { .. } => self.delete_links(batch),
            Step::AddAddr { .. }
            | Step::DelAddr { .. }
            | Step::AddRoute { .. }
            | Step::DelRoute { .. } => self.addrs_routes(batch),
        }
    }
}
