//! The build phase's fused batch — namespaces, sysctls, bridges, veth pairs, link settings,
//! addresses and routes — scheduled so that independent kernel work overlaps: a worker thread
//! creates the new namespaces one after the other (tagging each and writing its sysctls inside
//! it before it is published), while this thread builds everything that waited only for the
//! namespaces that exist so far: their veth pairs, then every namespace's settings, addresses
//! and routes in one pipelined exchange through its socket.
//!
//! Order is kept where it matters. A step is sent only when its namespaces exist, when the
//! links it names are created (a bridge before its ports, a pair before its settings), and
//! after every earlier step of the batch on the same link — or, for a route (which may need any
//! address of its node), on the same node.

use std::collections::{HashMap, HashSet, VecDeque};

use super::{ok_results, KernelBackend, NodeReq, NsHandle};
use crate::apply::StepError;
use crate::model::names::NsName;
use crate::model::NodeRef;
use crate::netlink::link::{self, LinkChange, Target};
use crate::netlink::{addr, route, NetlinkError, NlSocket, Request};
use crate::netns::NetnsError;
use crate::ownership::RTPROT_PLUMB;
use crate::plan::Step;

/// A link, by node and name.
type LinkKey = (NodeRef, String);

/// The results of the sysctl steps a worker wrote inside a new namespace, by step.
type InsideResults = Vec<(usize, Result<(), StepError>)>;

/// The nodes a step needs to exist.
fn nodes_of(s: &Step) -> Vec<&NodeRef> {
    match s {
        Step::Sysctl { node, .. }
        | Step::CreateBridge { node, .. }
        | Step::SetLink { node, .. }
        | Step::AddAddr { node, .. }
        | Step::AddRoute { node, .. } => vec![node],
        Step::CreateVeth { a, b, .. } => vec![&a.node, &b.node],
        _ => Vec::new(),
    }
}

/// The links a step needs to exist, besides those it creates.
fn needs(s: &Step) -> Vec<LinkKey> {
    match s {
        Step::CreateVeth { a, b, .. } => [a, b]
            .into_iter()
            .filter_map(|e| e.master.as_ref().map(|m| (e.node.clone(), m.to_string())))
            .collect(),
        Step::SetLink {
            node, name, set, ..
        } => {
            let mut v = vec![(node.clone(), name.clone())];
            if let Some(Some(m)) = &set.master {
                v.push((node.clone(), m.to_string()));
            }
            v
        }
        Step::AddAddr { node, dev, .. } => vec![(node.clone(), dev.clone())],
        Step::AddRoute { node, route, .. } => route
            .dev
            .iter()
            .map(|d| (node.clone(), d.clone()))
            .collect(),
        _ => Vec::new(),
    }
}

fn is_create(s: &Step) -> bool {
    matches!(s, Step::CreateBridge { .. } | Step::CreateVeth { .. })
}

/// What the build batch is waiting for, kept so that each step is looked at again only when
/// something it waits for happens (a namespace arrives, a link is created, the step before it
/// on its link is sent, the last non-route step of its node is sent): a batch of tens of
/// thousands of steps costs a few checks per step, not a scan per group of namespaces.
struct Sched {
    /// Steps not sent yet.
    pending: HashSet<usize>,
    /// Namespaces this batch creates.
    fresh: HashSet<NodeRef>,
    /// New namespaces that exist now.
    arrived: HashSet<NodeRef>,
    /// Links this batch creates that are not sent yet.
    to_create: HashSet<LinkKey>,
    /// Settings and addresses of each link, in plan order (the first one goes first).
    queue: HashMap<LinkKey, VecDeque<usize>>,
    /// Steps other than routes still to send in each node.
    before_routes: HashMap<NodeRef, usize>,
    /// Each node's routes (they go after everything else of their node).
    routes: HashMap<NodeRef, Vec<usize>>,
    /// Steps to look at again when a namespace arrives, or a link is created.
    on_arrival: HashMap<NodeRef, Vec<usize>>,
    on_created: HashMap<LinkKey, Vec<usize>>,
    /// Steps to look at now.
    candidates: Vec<usize>,
}

/// The link a setting or an address is about.
fn queue_key(s: &Step) -> Option<LinkKey> {
    match s {
        Step::SetLink { node, name, .. } => Some((node.clone(), name.clone())),
        Step::AddAddr { node, dev, .. } => Some((node.clone(), dev.clone())),
        _ => None,
    }
}

impl Sched {
    fn new(batch: &[Step], work: Vec<usize>, fresh: HashSet<NodeRef>) -> Sched {
        let to_create: HashSet<LinkKey> = work
            .iter()
            .flat_map(|&i| batch[i].created_links())
            .map(|(n, name)| (n.clone(), name.to_string()))
            .collect();
        let mut sched = Sched {
            pending: work.iter().copied().collect(),
            fresh,
            arrived: HashSet::new(),
            to_create,
            queue: HashMap::new(),
            before_routes: HashMap::new(),
            routes: HashMap::new(),
            on_arrival: HashMap::new(),
            on_created: HashMap::new(),
            candidates: work.clone(),
        };
        for &i in &work {
            let s = &batch[i];
            for n in nodes_of(s) {
                if sched.fresh.contains(n) {
                    sched.on_arrival.entry(n.clone()).or_default().push(i);
                }
            }
            for l in needs(s) {
                if sched.to_create.contains(&l) {
                    sched.on_created.entry(l).or_default().push(i);
                }
            }
            if let Some(k) = queue_key(s) {
                sched.queue.entry(k).or_default().push_back(i);
            }
            match s {
                Step::AddRoute { node, .. } => {
                    sched.routes.entry(node.clone()).or_default().push(i)
                }
                _ => {
                    for n in nodes_of(s) {
                        *sched.before_routes.entry(n.clone()).or_default() += 1;
                    }
                }
            }
        }
        sched
    }

    fn present(&self, n: &NodeRef) -> bool {
        !self.fresh.contains(n) || self.arrived.contains(n)
    }

    fn is_ready(&self, batch: &[Step], i: usize) -> bool {
        let s = &batch[i];
        self.pending.contains(&i)
            && nodes_of(s).into_iter().all(|n| self.present(n))
            && needs(s).iter().all(|l| !self.to_create.contains(l))
            && queue_key(s).is_none_or(|k| self.queue.get(&k).and_then(|q| q.front()) == Some(&i))
            && match s {
                Step::AddRoute { node, .. } => {
                    self.before_routes.get(node).copied().unwrap_or(0) == 0
                }
                _ => true,
            }
    }

    /// A namespace exists now.
    fn arrive(&mut self, n: NodeRef) {
        if let Some(v) = self.on_arrival.remove(&n) {
            self.candidates.extend(v);
        }
        self.arrived.insert(n);
    }

    /// The ready candidates, creations and the rest, in plan order.
    fn take_ready(&mut self, batch: &[Step]) -> (Vec<usize>, Vec<usize>) {
        let mut c = std::mem::take(&mut self.candidates);
        c.sort_unstable();
        c.dedup();
        let ready: Vec<usize> = c.into_iter().filter(|&i| self.is_ready(batch, i)).collect();
        for &i in &ready {
            self.pending.remove(&i);
        }
        ready.into_iter().partition(|&i| is_create(&batch[i]))
    }

    /// Step `i` was sent: what waited for it may go.
    fn sent(&mut self, batch: &[Step], i: usize) {
        let s = &batch[i];
        for (n, name) in s.created_links() {
            let key = (n.clone(), name.to_string());
            self.to_create.remove(&key);
            if let Some(v) = self.on_created.remove(&key) {
                self.candidates.extend(v);
            }
        }
        if let Some(k) = queue_key(s) {
            if let Some(q) = self.queue.get_mut(&k) {
                q.pop_front();
                if let Some(&next) = q.front() {
                    self.candidates.push(next);
                }
            }
        }
        if !matches!(s, Step::AddRoute { .. }) {
            for n in nodes_of(s) {
                if let Some(left) = self.before_routes.get_mut(n) {
                    *left -= 1;
                    if *left == 0 {
                        if let Some(r) = self.routes.get(n) {
                            self.candidates.extend(r.iter().copied());
                        }
                    }
                }
            }
        }
    }
}

impl KernelBackend {
    /// The build batch: see the module docs.
    pub(super) fn build(
        &mut self,
        batch: &[Step],
        progress: &mut dyn FnMut(usize),
    ) -> Vec<Result<(), StepError>> {
        let mut results = ok_results(batch.len());
        let fresh: Vec<(usize, NsName)> = batch
            .iter()
            .enumerate()
            .filter_map(|(i, s)| match s {
                Step::CreateNs { ns } => Some((i, ns.clone())),
                _ => None,
            })
            .collect();
        let fresh_nodes: HashSet<NodeRef> =
            fresh.iter().map(|(_, n)| NodeRef::Ns(n.clone())).collect();
        // Sysctls inside new namespaces are written by the worker, inside them.
        let mut inside: HashMap<NsName, Vec<usize>> = HashMap::new();
        let mut here = Vec::new();
        let mut work = Vec::new();
        for (i, s) in batch.iter().enumerate() {
            match s {
                Step::CreateNs { .. } => {}
                Step::Sysctl {
                    node: NodeRef::Ns(n),
                    ..
                } if fresh_nodes.contains(&NodeRef::Ns(n.clone())) => {
                    inside.entry(n.clone()).or_default().push(i)
                }
                Step::Sysctl { .. } => here.push(i),
                _ => work.push(i),
            }
        }
        // Existing namespaces the batch touches.
        let outside = |i: usize| -> Vec<NodeRef> {
            nodes_of(&batch[i])
                .into_iter()
                .filter(|n| !fresh_nodes.contains(*n))
                .cloned()
                .collect()
        };
        let failures = self.open_nodes(work.iter().flat_map(|&i| outside(i)));
        KernelBackend::fail_unopened(&failures, &mut results, |i| {
            if work.contains(&i) {
                outside(i)
            } else {
                Vec::new()
            }
        });
        // Sysctls outside new namespaces, first, as the plan orders them.
        if !here.is_empty() {
            self.sysctls_for(batch, &here, &mut results);
        }
        let mut sched = Sched::new(batch, work, fresh_nodes);
        let total = batch.len();
        let done = |sched: &Sched| {
            total
                - sched.pending.len()
                - (fresh.len() - sched.arrived.len())
                - sched_left(&inside, sched)
        };
        self.build_ready(batch, &mut sched, &mut results);
        progress(done(&sched));
        if !fresh.is_empty() {
            self.build_with_new_namespaces(
                batch,
                &fresh,
                &inside,
                &mut sched,
                &mut results,
                &mut |s| progress(done(s)),
            );
        }
        // Whatever still waits needed a namespace that was not made.
        let mut left: Vec<usize> = std::mem::take(&mut sched.pending).into_iter().collect();
        left.sort_unstable();
        for i in left {
            if results[i].is_ok() {
                results[i] = Err(not_made(&batch[i], &sched));
            }
        }
        for (n, idx) in inside {
            if !sched.arrived.contains(&NodeRef::Ns(n.clone())) {
                for i in idx {
                    if results[i].is_ok() {
                        results[i] = Err(cancelled(&n));
                    }
                }
            }
        }
        results
    }

    /// Creates the new namespaces on a worker thread and builds what each group of them
    /// unblocks as it arrives.
    fn build_with_new_namespaces(
        &mut self,
        batch: &[Step],
        fresh: &[(usize, NsName)],
        inside: &HashMap<NsName, Vec<usize>>,
        sched: &mut Sched,
        results: &mut [Result<(), StepError>],
        progress: &mut dyn FnMut(&Sched),
    ) {
        let names: Vec<NsName> = fresh.iter().map(|(_, n)| n.clone()).collect();
        let tags: HashMap<&NsName, String> =
            names.iter().map(|n| (n, self.lo_tag(n, None))).collect();
        let prepare = |name: &NsName, sock: &mut NlSocket| -> Result<InsideResults, NetlinkError> {
            // `ip -n NS link set lo up alias plumb:LAB`, before /run/netns shows it.
            let change = LinkChange {
                up: Some(true),
                alias: tags.get(name).cloned(),
                ..Default::default()
            };
            for r in sock.execute(link::set(Target::Index(1), &change)) {
                r?;
            }
            Ok(inside
                .get(name)
                .into_iter()
                .flatten()
                .map(|&i| (i, super::ns::write_sysctl_step(batch, i)))
                .collect())
        };
        let reg = self.reg.clone();
        let (mut groups, mut busy) = (0usize, std::time::Duration::ZERO);
        let t0 = std::time::Instant::now();
        let r = reg.create_each(&names, &prepare, |arrivals| {
            let tb = std::time::Instant::now();
            groups += 1;
            for (c, sysctls) in arrivals {
                for (i, r) in sysctls {
                    results[i] = r;
                }
                let node = NodeRef::Ns(c.name.clone());
                self.index.insert((node.clone(), "lo".into()), 1);
                self.known.insert(node.clone());
                self.ns.insert(
                    c.name,
                    NsHandle {
                        fd: c.fd,
                        sock: c.sock,
                        nf: None,
                        next_index: Some(2),
                    },
                );
                sched.arrive(node);
            }
            self.build_ready(batch, sched, results);
            progress(sched);
            busy += tb.elapsed();
        });
        tracing::debug!(groups, ?busy, total = ?t0.elapsed(), sched = ?self.timing.0, creates = ?self.timing.1, configure = ?self.timing.2, "build: work done while namespaces were created");
        if let Err(e) = r {
            // The worker stopped at the first namespace it could not make; the ones after it
            // were not attempted.
            let mut first = true;
            for (i, name) in fresh {
                if sched.arrived.contains(&NodeRef::Ns(name.clone())) {
                    continue;
                }
                results[*i] = Err(if first {
                    first = false;
                    StepError::Netns(clone_netns_error(&e))
                } else {
                    cancelled(name)
                });
            }
        }
    }

    /// Sends every pending step that can go now, creations first, then configuration,
    /// repeating while a round unblocks more.
    fn build_ready(
        &mut self,
        batch: &[Step],
        sched: &mut Sched,
        results: &mut [Result<(), StepError>],
    ) {
        while !sched.candidates.is_empty() {
            let t = std::time::Instant::now();
            let (creates, config) = sched.take_ready(batch);
            self.timing.0 += t.elapsed();
            let t = std::time::Instant::now();
            if !creates.is_empty() {
                self.create_links_for(batch, &creates, results);
            }
            self.timing.1 += t.elapsed();
            let t = std::time::Instant::now();
            if !config.is_empty() {
                self.configure(batch, &config, results);
            }
            self.timing.2 += t.elapsed();
            for i in creates.into_iter().chain(config) {
                sched.sent(batch, i);
            }
        }
    }

    /// Link settings, addresses and routes of the steps at `idx`: one pipelined exchange per
    /// namespace, in plan order within each.
    fn configure(&mut self, batch: &[Step], idx: &[usize], results: &mut [Result<(), StepError>]) {
        let mut reqs: Vec<NodeReq> = Vec::new();
        for &i in idx {
            if results[i].is_err() {
                continue;
            }
            match self.requests_of(&batch[i]) {
                Ok(rs) => reqs.extend(rs.into_iter().map(|(n, r)| (n, r, i))),
                Err(e) => results[i] = Err(e),
            }
        }
        self.send(reqs, results);
    }

    /// The netlink requests of one configuration step.
    fn requests_of(&mut self, s: &Step) -> Result<Vec<(NodeRef, Request)>, StepError> {
        Ok(match s {
            Step::SetLink {
                node, name, set, ..
            } => {
                let master = match &set.master {
                    Some(Some(m)) => Some(self.existing_index(node, m.as_str())?),
                    Some(None) => Some(0),
                    None => None,
                };
                let change = LinkChange {
                    up: set.up,
                    mtu: set.mtu,
                    mac: set.mac,
                    master,
                    isolated: set.isolated,
                    stp: set.stp,
                    ..Default::default()
                };
                let t = match self.index.get(&(node.clone(), name.clone())) {
                    Some(&x) => Target::Index(x),
                    None => Target::Name(name.as_str()),
                };
                link::set(t, &change)
                    .into_iter()
                    .map(|r| (node.clone(), r))
                    .collect()
            }
            Step::AddAddr { node, dev, addr: a } => {
                let idx = self.existing_index(node, dev)?;
                vec![(node.clone(), addr::add(idx, a))]
            }
            Step::AddRoute {
                node,
                route: r,
                replaces,
            } => {
                let oif = match &r.dev {
                    Some(d) => Some(self.existing_index(node, d)?),
                    None => None,
                };
                let spec = route::RouteSpec {
                    dst: r.dst,
                    via: r.via,
                    oif,
                };
                let req = if replaces.is_some() {
                    route::replace(&spec, RTPROT_PLUMB)
                } else {
                    route::add(&spec, RTPROT_PLUMB)
                };
                vec![(node.clone(), req)]
            }
            _ => Vec::new(),
        })
    }
}

/// Sysctls inside new namespaces that have not arrived yet.
fn sched_left(inside: &HashMap<NsName, Vec<usize>>, sched: &Sched) -> usize {
    inside
        .iter()
        .filter(|(n, _)| !sched.arrived.contains(&NodeRef::Ns((*n).clone())))
        .map(|(_, v)| v.len())
        .sum()
}

/// "Not attempted: namespace `n` was not made."
fn cancelled(n: &NsName) -> StepError {
    StepError::Netns(NetnsError::Create {
        name: n.to_string(),
        source: std::io::Error::from_raw_os_error(libc::ECANCELED),
    })
}

/// Why a step that waited for a new namespace never ran.
fn not_made(s: &Step, sched: &Sched) -> StepError {
    match nodes_of(s)
        .into_iter()
        .find(|n| sched.fresh.contains(*n) && !sched.arrived.contains(*n))
    {
        Some(NodeRef::Ns(n)) => cancelled(n),
        _ => StepError::Netns(NetnsError::Worker),
    }
}

/// A copy of a namespace error for the step it belongs to (errors are not `Clone`; the errno
/// and the object are kept).
fn clone_netns_error(e: &NetnsError) -> NetnsError {
    let errno = e.errno().unwrap_or(libc::EIO);
    match e {
        NetnsError::Create { name, .. } => NetnsError::Create {
            name: name.clone(),
            source: std::io::Error::from_raw_os_error(errno),
        },
        NetnsError::Tag { name, .. } | NetnsError::Socket { name, .. } => NetnsError::Create {
            name: name.clone(),
            source: std::io::Error::from_raw_os_error(errno),
        },
        NetnsError::Prepare { dir, .. } => NetnsError::Prepare {
            dir: dir.clone(),
            source: std::io::Error::from_raw_os_error(errno),
        },
        _ => NetnsError::Worker,
    }
}
