//! Whole-lab operations: `up`, `down`, `gc`, `ls`, `show`. Each change takes the lab's lock,
//! keeps a journal while it runs, reads a snapshot, plans, and applies; this is the API the CLI
//! (and later the CNI mode) calls.

use crate::apply::{self, ApplyError, KernelBackend, StepError, StepFailure};
use crate::inspect::{self, InspectError, Snapshot};
use crate::model::names::{LabName, NsName};
use crate::model::{NodeRef, Topology};
use crate::netns::Registry;
use crate::nftables::{self, NftError};
use crate::ownership::journal::{self, Journal, Op};
use crate::ownership::lock::{self, LabLock, LockError};
use crate::plan::{self, Conflict, Plan};

/// Why a lab operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LabError {
    /// Objects the lab needs are in the way.
    #[error("{} object(s) in the way, nothing was changed:\n{}", .0.len(), .0.iter().map(|c| format!("  - {c}")).collect::<Vec<_>>().join("\n"))]
    Conflicts(Vec<Conflict>),
    /// Reading the kernel's state failed.
    #[error(transparent)]
    Inspect(#[from] InspectError),
    /// The lab is locked, or the lock failed.
    #[error(transparent)]
    Lock(#[from] LockError),
    /// The lab's journal could not be read or written.
    #[error("cannot use the journal of lab `{lab}`: {source}")]
    Journal {
        /// The lab.
        lab: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// nftables could not be read.
    #[error(transparent)]
    Nft(#[from] NftError),
    /// A namespace could not be entered to read it.
    #[error(transparent)]
    Netns(#[from] crate::netns::NetnsError),
    /// Applying the plan failed.
    #[error(transparent)]
    Apply(#[from] ApplyError),
    /// The backend could not start.
    #[error("cannot start: {0}")]
    Backend(#[source] StepError),
    /// Some removals failed; the others ran.
    #[error("{} step(s) failed while removing lab `{lab}` (the others ran; run the command again to retry):{}", failures.len(), failures.iter().map(|f| format!("\n  - {f}")).collect::<String>())]
    Teardown {
        /// The lab.
        lab: String,
        /// Every failure.
        failures: Vec<StepFailure>,
    },
    /// No namespace or host interface carries the lab's tag.
    #[error("there is no lab `{lab}` on this machine{}", if .labs.is_empty() { String::new() } else { format!(" (labs here: {})", .labs.join(", ")) })]
    NoSuchLab {
        /// The lab asked for.
        lab: String,
        /// The labs that are here.
        labs: Vec<String>,
    },
    /// The lab has no node of that name.
    #[error("lab `{lab}` has no node `{node}`{}", if .nodes.is_empty() { String::new() } else { format!(" (its nodes: {})", .nodes.join(", ")) })]
    NoSuchNode {
        /// The lab.
        lab: String,
        /// The node asked for.
        node: String,
        /// The lab's nodes.
        nodes: Vec<String>,
    },
    /// plumb lacks the privilege to change the network.
    #[error("plumb needs CAP_NET_ADMIN and CAP_SYS_ADMIN to change the network: run it as root (sudo), or try the lab without root in a throwaway sandbox: `plumb sandbox FILE`")]
    Permission,
}

fn is_permission_errno(e: Option<i32>) -> bool {
    matches!(e, Some(libc::EPERM | libc::EACCES | libc::EROFS))
}

/// Options for [`up`].
pub struct UpOptions<'a> {
    /// Plan only.
    pub dry_run: bool,
    /// Wait for another plumb changing the same lab instead of failing.
    pub wait: bool,
    /// Progress callback: (done, total).
    pub progress: &'a mut dyn FnMut(usize, usize),
}

impl std::fmt::Debug for UpOptions<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpOptions")
            .field("dry_run", &self.dry_run)
            .field("wait", &self.wait)
            .finish()
    }
}

/// Takes the lab's lock; a lock directory plumb may not write means plumb lacks privilege.
fn acquire(lab: &LabName, wait: bool) -> Result<LabLock, LabError> {
    LabLock::acquire(lab, wait).map_err(|e| {
        if is_permission_errno(e.errno()) {
            LabError::Permission
        } else {
            LabError::Lock(e)
        }
    })
}

fn journal_err(lab: &LabName) -> impl FnOnce(std::io::Error) -> LabError + '_ {
    move |source| {
        if is_permission_errno(source.raw_os_error()) {
            LabError::Permission
        } else {
            LabError::Journal {
                lab: lab.to_string(),
                source,
            }
        }
    }
}

fn backend(lab: &LabName, reg: Registry, snap: &Snapshot) -> Result<KernelBackend, LabError> {
    KernelBackend::new(lab, reg, snap).map_err(|e| {
        if e.is_permission() {
            LabError::Permission
        } else {
            LabError::Backend(e)
        }
    })
}

/// Reads the machine's state, asking for the sysctls `topo` sets, and the version of the lab's
/// table in the host.
pub fn snapshot_for(lab: &LabName, topo: Option<&Topology>) -> Result<Snapshot, LabError> {
    snapshot_at(lab, topo, inspect::Depth::Full)
}

fn snapshot_at(
    lab: &LabName,
    topo: Option<&Topology>,
    depth: inspect::Depth,
) -> Result<Snapshot, LabError> {
    let wanted = |n: Option<&NsName>| match topo {
        Some(t) => {
            let node = n.map_or(NodeRef::Host, |n| NodeRef::Ns(n.clone()));
            plan::wanted_sysctls(t, &node)
        }
        None => Vec::new(),
    };
    let mut snap = inspect::snapshot(&Registry::default(), depth, &wanted).map_err(|e| {
        if is_permission_errno(e.errno()) {
            LabError::Permission
        } else {
            LabError::Inspect(e)
        }
    })?;
    snap.host.nft_version = nftables::current_version(&crate::firewall::table_name(lab.as_str()))?;
    Ok(snap)
}

/// What `up` did.
#[derive(Debug, Clone)]
pub struct UpReport {
    /// The plan that was (or, dry, would be) applied.
    pub plan: Plan,
    /// Things in the way that plumb may not fix (a foreign drop policy, say).
    pub warnings: Vec<String>,
    /// A change of this lab had been interrupted; what it left was removed first.
    pub recovered: Option<Plan>,
}

/// Brings `topo` up (or converges it). Returns the plan that was (or, dry, would be) applied.
/// If a previous change of the lab was interrupted, what it left is removed first (as `gc`
/// would), under the same lock.
pub fn up(topo: &Topology, opts: UpOptions<'_>) -> Result<UpReport, LabError> {
    let lab = &topo.name;
    let lock = if opts.dry_run {
        None
    } else {
        Some(acquire(lab, opts.wait)?)
    };
    let mut recovered = None;
    if let Some(l) = &lock {
        if let Some(entry) = journal::read(lab).map_err(journal_err(lab))? {
            let snap = snapshot_for(lab, None)?;
            recovered = Some(finish_interrupted(l, &entry, &snap)?);
        }
    }
    let t0 = std::time::Instant::now();
    let snap = snapshot_for(lab, Some(topo))?;
    let t_snap = t0.elapsed();
    // Members keep the addresses they have (the kernel is the IPAM's memory).
    let topo = &*plan::settle(topo, &snap);
    let plan = plan::diff(topo, &snap);
    tracing::debug!(?t_snap, diff = ?(t0.elapsed() - t_snap), steps = plan.steps.len(), "up: read and planned");
    if !plan.conflicts.is_empty() {
        return Err(LabError::Conflicts(plan.conflicts));
    }
    let table = crate::firewall::host_table(topo);
    let warnings: Vec<String> = if table.nat.is_empty() && table.publish.is_empty() {
        Vec::new()
    } else {
        nftables::foreign_forward_drops(&table.name)
            .into_iter()
            .map(|c| {
                format!(
                    "the foreign nftables chain {c} drops forwarded traffic by default: the lab's NAT and published ports may not work until it accepts traffic of the lab's networks (plumb never edits other tables)"
                )
            })
            .collect()
    };
    let report = |plan| UpReport {
        plan,
        warnings: warnings.clone(),
        recovered: recovered.clone(),
    };
    let Some(lock) = lock else {
        return Ok(report(plan));
    };
    if plan.is_empty() {
        return Ok(report(plan));
    }
    crate::sys::raise_nofile_limit();
    let mut journal = Journal::begin(&lock, Op::Up).map_err(journal_err(lab))?;
    let mut backend = backend(lab, Registry::default(), &snap)?.with_prefix(topo.prefix.clone());
    let r = apply::run(
        &plan,
        &mut backend,
        apply::Options {
            progress: opts.progress,
            journal: Some(&mut journal),
        },
    );
    match r {
        Ok(()) => {
            journal.finish().map_err(journal_err(lab))?;
            Ok(report(plan))
        }
        Err(e) => {
            // Restored (or built, with only removals left over): nothing for gc. Otherwise the
            // journal stays, and the error says to run gc.
            if e.restored() {
                let _ = journal.finish();
            }
            if e.is_permission() {
                return Err(LabError::Permission);
            }
            Err(LabError::Apply(e))
        }
    }
}

/// `topo` with its network members' addresses as the lab that is up has them (see
/// [`plan::settle`]): what `check` probes, so that it agrees with what `up` built.
pub fn settled(topo: &Topology) -> Result<Topology, LabError> {
    let snap = inspect::snapshot(&Registry::default(), inspect::Depth::Full, &|_| Vec::new())?;
    Ok(plan::settle(topo, &snap).into_owned())
}

/// Removes everything `lab` owns, found by tags. Returns the teardown plan that ran.
pub fn down(lab: &LabName, dry_run: bool) -> Result<Plan, LabError> {
    let lock = if dry_run {
        None
    } else {
        Some(acquire(lab, false)?)
    };
    let t0 = std::time::Instant::now();
    // A teardown needs the host's links and who owns each namespace, nothing else.
    let snap = snapshot_at(lab, None, inspect::Depth::Owners)?;
    let plan = plan::teardown(lab, &snap);
    tracing::debug!(elapsed = ?t0.elapsed(), namespaces = snap.namespaces.len(), "down: read and planned");
    match lock {
        None => Ok(plan),
        Some(l) => run_removal(&l, Op::Down, plan, &snap),
    }
}

/// Runs a removal plan under a journal; the journal is removed once every step succeeded.
fn run_removal(lock: &LabLock, op: Op, plan: Plan, snap: &Snapshot) -> Result<Plan, LabError> {
    let lab = lock.lab();
    if plan.is_empty() {
        journal::remove(lab).map_err(journal_err(lab))?;
        return Ok(plan);
    }
    let journal = Journal::begin(lock, op).map_err(journal_err(lab))?;
    let mut backend = backend(lab, Registry::default(), snap)?;
    let failures = apply::run_teardown(&plan, &mut backend);
    if failures.is_empty() {
        journal.finish().map_err(journal_err(lab))?;
        Ok(plan)
    } else if failures.iter().all(|f| f.error.is_permission()) {
        Err(LabError::Permission)
    } else {
        Err(LabError::Teardown {
            lab: lab.to_string(),
            failures,
        })
    }
}

/// Deals with an interrupted change of the locked lab, from its journal: finishes a `down`,
/// undoes an `up`. The journal is removed once that succeeded.
fn finish_interrupted(
    lock: &LabLock,
    entry: &journal::Entry,
    snap: &Snapshot,
) -> Result<Plan, LabError> {
    let plan = plan::recover(lock.lab(), entry, snap);
    // A `down` stays a `down` if this is interrupted too; an `up`'s recovery only removes
    // what the journal names, so its journal is kept as it is until the recovery completes.
    if entry.op == Op::Down {
        return run_removal(lock, Op::Down, plan, snap);
    }
    let lab = lock.lab();
    if !plan.is_empty() {
        let mut backend = backend(lab, Registry::default(), snap)?;
        let failures = apply::run_teardown(&plan, &mut backend);
        if !failures.is_empty() {
            return Err(LabError::Teardown {
                lab: lab.to_string(),
                failures,
            });
        }
    }
    journal::remove(lab).map_err(journal_err(lab))?;
    Ok(plan)
}

/// A lab found on the machine.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LabSummary {
    /// Its name.
    pub name: String,
    /// Objects it owns.
    pub counts: inspect::LabCounts,
    /// A change of it started and never completed (gc deals with it).
    pub interrupted: bool,
}

/// Labs that own objects on this machine, or whose change was interrupted.
pub fn list() -> Result<Vec<LabSummary>, LabError> {
    let snap = inspect::snapshot(&Registry::default(), inspect::Depth::Full, &|_| Vec::new())?;
    summaries(&snap)
}

fn summaries(snap: &Snapshot) -> Result<Vec<LabSummary>, LabError> {
    let mut labs = snap.labs();
    let pending = journal::labs().map_err(|source| LabError::Journal {
        lab: "*".into(),
        source,
    })?;
    for l in &pending {
        labs.entry(l.to_string()).or_default();
    }
    Ok(labs
        .into_iter()
        .map(|(name, counts)| {
            let interrupted =
                LabName::new(&name).is_ok_and(|l| pending.contains(&l) && !lock::is_locked(&l));
            LabSummary {
                name,
                counts,
                interrupted,
            }
        })
        .collect())
}

/// Deals with every lab whose last change was interrupted (a crash, a SIGKILL): an interrupted
/// `up` is undone, an interrupted `down` finished. Labs another plumb is changing right now are
/// left alone. Returns the labs dealt with (or, dry, that would be) and their plans.
pub fn gc(dry_run: bool) -> Result<Vec<(String, Plan)>, LabError> {
    let pending = journal::labs().map_err(|source| LabError::Journal {
        lab: "*".into(),
        source,
    })?;
    let mut out = Vec::new();
    let mut failures = Vec::new();
    for lab in pending {
        if lock::is_locked(&lab) {
            continue;
        }
        let lock = if dry_run {
            None
        } else {
            match LabLock::acquire(&lab, false) {
                Ok(l) => Some(l),
                Err(LockError::Busy { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        };
        // Read again under the lock: the journal may be gone (another gc, a successful up).
        let Some(entry) = journal::read(&lab).map_err(journal_err(&lab))? else {
            continue;
        };
        let snap = snapshot_for(&lab, None)?;
        let result = match &lock {
            None => Ok(plan::recover(&lab, &entry, &snap)),
            Some(l) => finish_interrupted(l, &entry, &snap),
        };
        match result {
            Ok(plan) => out.push((lab.to_string(), plan)),
            Err(LabError::Teardown { failures: f, .. }) => failures.extend(f),
            Err(e) => return Err(e),
        }
    }
    if failures.is_empty() {
        Ok(out)
    } else {
        Err(LabError::Teardown {
            lab: "(gc)".into(),
            failures,
        })
    }
}

/// Reads what `lab` owns, ready to print; a lab that owns nothing here is an error.
pub fn view(lab: &LabName) -> Result<inspect::lab::LabView, LabError> {
    let snap = inspect::snapshot(&Registry::default(), inspect::Depth::Full, &|_| Vec::new())?;
    let labs = snap.labs();
    if !labs.contains_key(lab.as_str()) {
        return Err(LabError::NoSuchLab {
            lab: lab.to_string(),
            labs: labs.into_keys().collect(),
        });
    }
    let mut snap = snap;
    read_tables(lab, &mut snap)?;
    Ok(inspect::lab::view(lab, &snap))
}

/// Reads the lab's nftables tables into `snap`: the host's, and that of each of the lab's
/// namespaces whose `lo` tag says it has one (read from inside it, on one short-lived thread).
fn read_tables(lab: &LabName, snap: &mut Snapshot) -> Result<(), LabError> {
    let table = crate::firewall::table_name(lab.as_str());
    snap.host.nft = nftables::listing(&table)?;
    let names: Vec<NsName> = snap
        .namespaces
        .iter()
        .filter(|(_, ns)| {
            let tag = ns
                .state
                .as_ref()
                .ok()
                .and_then(|s| s.loopback())
                .and_then(|l| l.tag());
            tag.is_some_and(|t| t.lab == lab.as_str() && t.fw.is_some())
        })
        .map(|(n, _)| n.clone())
        .collect();
    if names.is_empty() {
        return Ok(());
    }
    let reg = Registry::default();
    let fds = names
        .iter()
        .map(|n| reg.open(n))
        .collect::<Result<Vec<_>, _>>()?;
    let refs: Vec<&std::os::fd::OwnedFd> = fds.iter().collect();
    let listings = crate::netns::run_in_each(&refs, |_| nftables::listing(&table))?;
    for (name, l) in names.iter().zip(listings) {
        let l = l.map_err(|source| crate::netns::NetnsError::Enter {
            name: name.to_string(),
            source,
        })??;
        if let Some(Ok(st)) = snap.namespaces.get_mut(name).map(|ns| ns.state.as_mut()) {
            st.nft = l;
        }
    }
    Ok(())
}

/// One node of a lab found on the machine.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LabNode {
    /// The lab.
    pub lab: String,
    /// The node's name as the lab's file writes it.
    pub node: String,
    /// Its namespace (the node's name with the lab's `prefix`, if it has one).
    pub namespace: NsName,
}

/// The nodes of every lab (or of `lab`) on the machine, read from the namespaces' tags: the
/// node's name is in its `lo` tag when the lab has a `prefix`, and is the namespace's name
/// otherwise.
pub fn nodes(lab: Option<&LabName>) -> Result<Vec<LabNode>, LabError> {
    Ok(nodes_of(&owners_snapshot()?, lab))
}

/// Who owns what, without the nftables tables: namespaces' `lo` and the host's links.
fn owners_snapshot() -> Result<Snapshot, LabError> {
    inspect::snapshot(&Registry::default(), inspect::Depth::Owners, &|_| {
        Vec::new()
    })
    .map_err(|e| {
        if is_permission_errno(e.errno()) {
            LabError::Permission
        } else {
            LabError::Inspect(e)
        }
    })
}

fn nodes_of(snap: &Snapshot, lab: Option<&LabName>) -> Vec<LabNode> {
    let mut out = Vec::new();
    for (name, ns) in &snap.namespaces {
        let Some(tag) = ns
            .state
            .as_ref()
            .ok()
            .and_then(|st| st.loopback())
            .and_then(|l| l.tag())
        else {
            continue;
        };
        if lab.is_some_and(|l| l.as_str() != tag.lab) {
            continue;
        }
        out.push(LabNode {
            lab: tag.lab.to_owned(),
            node: tag.node.unwrap_or(name.as_str()).to_owned(),
            namespace: name.clone(),
        });
    }
    out
}

/// The namespace of node `node` of lab `lab` (`plumb exec LAB:NODE`).
pub fn resolve_node(lab: &LabName, node: &str) -> Result<NsName, LabError> {
    let snap = owners_snapshot()?;
    let all = nodes_of(&snap, Some(lab));
    if let Some(n) = all.iter().find(|n| n.node == node) {
        return Ok(n.namespace.clone());
    }
    if all.is_empty() && !snap.labs().contains_key(lab.as_str()) {
        return Err(LabError::NoSuchLab {
            lab: lab.to_string(),
            labs: snap.labs().into_keys().collect(),
        });
    }
    Err(LabError::NoSuchNode {
        lab: lab.to_string(),
        node: node.to_owned(),
        nodes: all.into_iter().map(|n| n.node).collect(),
    })
}
