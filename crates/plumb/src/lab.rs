//! Whole-lab operations: `up`, `down`, `gc`, `ls`. Each one takes the lab's lock, reads a
//! snapshot, plans, and applies; this is the API the CLI (and later the CNI mode) calls.

use crate::apply::lock::{self, LabLock, LockError};
use crate::apply::{self, ApplyError, Backend, KernelBackend, StepError};
use crate::inspect::{self, InspectError, Snapshot};
use crate::model::names::LabName;
use crate::model::{NodeRef, Topology};
use crate::netns::Registry;
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
    /// Applying the plan failed (and was rolled back).
    #[error(transparent)]
    Apply(#[from] ApplyError),
    /// The backend could not start.
    #[error("cannot start: {0}")]
    Backend(#[source] StepError),
    /// Some teardown steps failed; the others ran.
    #[error("{} step(s) failed while removing lab `{lab}`:\n{}", failures.len(), failures.iter().map(|(op, e)| format!("  - {op}: {e}")).collect::<Vec<_>>().join("\n"))]
    Teardown {
        /// The lab.
        lab: String,
        /// (operation, error) for each failure.
        failures: Vec<(String, String)>,
    },
    /// plumb lacks the privilege to change the network.
    #[error("plumb needs CAP_NET_ADMIN and CAP_SYS_ADMIN to change the network: run it as root (sudo), or try the lab without root in a throwaway sandbox: `plumb sandbox FILE`")]
    Permission,
}

impl LabError {
    fn from_apply(e: ApplyError) -> Self {
        let ApplyError::Step { source, .. } = &e;
        if matches!(source.errno(), Some(libc::EPERM | libc::EACCES)) {
            return LabError::Permission;
        }
        LabError::Apply(e)
    }
}

/// Hooks for `up`.
pub struct UpOptions<'a> {
    /// Plan only.
    pub dry_run: bool,
    /// Fail the N-th step (tests).
    pub fail_at: Option<usize>,
    /// Call `on_stall` after N steps (tests).
    pub stall_after: Option<usize>,
    /// Progress callback: (done, total).
    pub progress: &'a mut dyn FnMut(usize, usize),
    /// Stall callback.
    pub on_stall: &'a mut dyn FnMut(),
}

impl std::fmt::Debug for UpOptions<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpOptions")
            .field("dry_run", &self.dry_run)
            .finish()
    }
}

/// Takes the lab's lock; a lock directory plumb may not write means plumb lacks privilege.
fn acquire(lab: &LabName) -> Result<LabLock, LabError> {
    LabLock::acquire(lab).map_err(|e| match &e {
        LockError::Io { source, .. }
            if matches!(
                source.raw_os_error(),
                Some(libc::EACCES | libc::EPERM | libc::EROFS)
            ) =>
        {
            LabError::Permission
        }
        _ => LabError::Lock(e),
    })
}

/// Reads the machine's state, asking for the sysctls `topo` sets.
pub fn snapshot_for(reg: &Registry, topo: Option<&Topology>) -> Result<Snapshot, InspectError> {
    let wanted = |n: Option<&crate::model::names::NsName>| match topo {
        Some(t) => {
            let node = n.map_or(NodeRef::Host, |n| NodeRef::Ns(n.clone()));
            plan::wanted_sysctls(t, &node)
        }
        None => Vec::new(),
    };
    inspect::snapshot(reg, &wanted)
}

/// Brings `topo` up (or converges it). Returns the plan that was (or, dry, would be) applied.
pub fn up(topo: &Topology, opts: UpOptions<'_>) -> Result<UpReport, LabError> {
    let reg = Registry::default();
    let _lock = if opts.dry_run {
        None
    } else {
        Some(acquire(&topo.name)?)
    };
    let mut snap = snapshot_for(&reg, Some(topo))?;
    read_host_firewall(&topo.name, &mut snap)?;
    let plan = plan::diff(topo, &snap);
    if !plan.conflicts.is_empty() {
        return Err(LabError::Conflicts(plan.conflicts));
    }
    let table = crate::firewall::host_table(topo);
    let warnings: Vec<String> = if table.nat.is_empty() && table.publish.is_empty() {
        Vec::new()
    } else {
        crate::firewall::foreign_forward_drops(&table.name)
            .into_iter()
            .map(|c| {
                format!(
                    "the foreign nftables chain {c} drops forwarded traffic by default: the lab's NAT and published ports may not work until it accepts traffic of the lab's networks (plumb never edits other tables)"
                )
            })
            .collect()
    };
    if opts.dry_run || plan.is_empty() {
        return Ok(UpReport { plan, warnings });
    }
    crate::sys::raise_nofile_limit();
    let lock = _lock.as_ref();
    if let Some(l) = lock {
        // Best effort: without the marker, gc cannot tell an interrupted run, nothing else.
        let _ = l.begin_change();
    }
    let mut backend = KernelBackend::new(&topo.name, reg, &snap).map_err(|e| match e.errno() {
        Some(libc::EPERM | libc::EACCES) => LabError::Permission,
        _ => LabError::Backend(e),
    })?;
    let r = apply::run(
        &plan,
        &mut backend,
        apply::Options {
            fail_at: opts.fail_at,
            stall_after: opts.stall_after,
            progress: opts.progress,
            on_stall: opts.on_stall,
        },
    );
    if let Some(l) = lock {
        let _ = l.end_change();
    }
    r.map_err(LabError::from_apply)?;
    Ok(UpReport { plan, warnings })
}

/// What `up` did.
#[derive(Debug, Clone)]
pub struct UpReport {
    /// The plan that was (or, dry, would be) applied.
    pub plan: Plan,
    /// Things in the way that plumb may not fix (a foreign drop policy, say).
    pub warnings: Vec<String>,
}

/// Reads whether the host has the lab's nftables table, and its version.
fn read_host_firewall(lab: &LabName, snap: &mut Snapshot) -> Result<(), LabError> {
    snap.host.nft_version =
        crate::firewall::current_version(&crate::firewall::table_name(lab.as_str()))
            .map_err(|e| LabError::Backend(StepError::Io(e)))?;
    Ok(())
}

/// Removes everything `lab` owns, found by tags. Returns the teardown plan that ran.
pub fn down(lab: &LabName, dry_run: bool) -> Result<Plan, LabError> {
    let reg = Registry::default();
    let lock = if dry_run { None } else { Some(acquire(lab)?) };
    let mut snap = snapshot_for(&reg, None)?;
    read_host_firewall(lab, &mut snap)?;
    teardown_with(lab, &snap, reg, lock.as_ref(), dry_run)
}

fn teardown_with(
    lab: &LabName,
    snap: &Snapshot,
    reg: Registry,
    lock: Option<&LabLock>,
    dry_run: bool,
) -> Result<Plan, LabError> {
    let plan = plan::teardown(lab, snap);
    if dry_run {
        return Ok(plan);
    }
    if let Some(l) = lock {
        let _ = l.begin_change();
    }
    let mut failures = Vec::new();
    if !plan.is_empty() {
        let mut backend: Box<dyn Backend> = match KernelBackend::new(lab, reg, snap) {
            Ok(b) => Box::new(b),
            Err(e) if matches!(e.errno(), Some(libc::EPERM | libc::EACCES)) => {
                return Err(LabError::Permission)
            }
            Err(e) => return Err(LabError::Backend(e)),
        };
        failures = apply::run_teardown(&plan, backend.as_mut());
    }
    if failures.is_empty() {
        if let Some(l) = lock {
            let _ = l.end_change();
        }
        Ok(plan)
    } else if failures
        .iter()
        .all(|(_, e)| e.contains("Operation not permitted") || e.contains("Permission denied"))
    {
        Err(LabError::Permission)
    } else {
        Err(LabError::Teardown {
            lab: lab.to_string(),
            failures,
        })
    }
}

/// A lab found on the machine.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LabSummary {
    /// Its name.
    pub name: String,
    /// Objects it owns.
    pub counts: inspect::LabCounts,
    /// A change of it started and never completed (gc removes it).
    pub interrupted: bool,
}

/// Labs that own objects on this machine.
pub fn list() -> Result<Vec<LabSummary>, LabError> {
    let snap = snapshot_for(&Registry::default(), None)?;
    Ok(summaries(&snap))
}

fn summaries(snap: &Snapshot) -> Vec<LabSummary> {
    snap.labs()
        .into_iter()
        .map(|(name, counts)| {
            let interrupted = LabName::new(&name).is_ok_and(|l| interrupted(&l));
            LabSummary {
                name,
                counts,
                interrupted,
            }
        })
        .collect()
}

/// True when a change of `lab` started, never completed, and no process is working on it.
fn interrupted(lab: &LabName) -> bool {
    if !lock::change_interrupted(lab) {
        return false;
    }
    // The marker is stale only if nobody holds the lock.
    LabLock::acquire(lab).is_ok()
}

/// Removes every lab whose last change was interrupted (a crash, a SIGKILL). Returns the labs
/// removed (or, dry, that would be).
pub fn gc(dry_run: bool) -> Result<Vec<(String, Plan)>, LabError> {
    let reg = Registry::default();
    // One snapshot for all labs; only the host's table version is read per lab.
    let mut snap = snapshot_for(&reg, None)?;
    let mut out = Vec::new();
    let mut failures = Vec::new();
    for s in summaries(&snap) {
        let Ok(lab) = LabName::new(&s.name) else {
            continue;
        };
        if !s.interrupted {
            continue;
        }
        let lock = if dry_run {
            None
        } else {
            match LabLock::acquire(&lab) {
                Ok(l) => Some(l),
                Err(_) => continue,
            }
        };
        read_host_firewall(&lab, &mut snap)?;
        match teardown_with(&lab, &snap, reg.clone(), lock.as_ref(), dry_run) {
            Ok(plan) => out.push((s.name.clone(), plan)),
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

/// One interface of a lab, as `show` prints it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct IfaceView {
    /// Name.
    pub name: String,
    /// Interface index.
    pub index: u32,
    /// Type.
    pub kind: inspect::LinkKind,
    /// Up.
    pub up: bool,
    /// Carrier.
    pub lower_up: bool,
    /// MTU.
    pub mtu: u32,
    /// MAC.
    pub mac: Option<String>,
    /// Addresses.
    pub addresses: Vec<String>,
    /// For a veth end: the other end, as `node:ifname`.
    pub peer: Option<String>,
    /// For a bridge port: the bridge.
    pub master: Option<String>,
    /// For a bridge: its ports.
    pub ports: Vec<String>,
}

/// One node of a lab, as `show` prints it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct NodeView {
    /// `host` or the namespace's name.
    pub node: String,
    /// Interfaces (in the host: only the lab's).
    pub interfaces: Vec<IfaceView>,
    /// Routes (in the host: only those through the lab's interfaces).
    pub routes: Vec<String>,
}

/// A lab as it is in the kernel. Version 1 of `plumb show --json`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LabView {
    /// Format version.
    pub version: u32,
    /// The lab.
    pub lab: String,
    /// Host first, then namespaces by name.
    pub nodes: Vec<NodeView>,
}

/// Reads what `lab` owns, ready to print.
pub fn view(lab: &LabName) -> Result<LabView, LabError> {
    let snap = snapshot_for(&Registry::default(), None)?;
    Ok(view_of(lab, &snap))
}

fn view_of(lab: &LabName, snap: &Snapshot) -> LabView {
    let mut states: Vec<(String, &inspect::NsState, bool)> =
        vec![("host".into(), &snap.host, true)];
    for (name, ns) in &snap.namespaces {
        if ns.owner() == Some(lab.as_str()) {
            if let Ok(st) = &ns.state {
                states.push((name.to_string(), st, false));
            }
        }
    }
    // Pair veth ends by the link identifier in their tags.
    let mut ends: std::collections::HashMap<String, Vec<String>> = std::collections::HashMap::new();
    for (node, st, _) in &states {
        for l in &st.links {
            if l.owner() == Some(lab.as_str()) {
                if let Some(id) = l.alias.as_deref().and_then(plan::alias_link_id) {
                    ends.entry(id.to_string())
                        .or_default()
                        .push(format!("{node}:{}", l.name));
                }
            }
        }
    }
    let mut nodes = Vec::new();
    for (node, st, is_host) in &states {
        let mut interfaces = Vec::new();
        for l in &st.links {
            if *is_host && l.owner() != Some(lab.as_str()) {
                continue;
            }
            let me = format!("{node}:{}", l.name);
            let peer = l
                .alias
                .as_deref()
                .and_then(plan::alias_link_id)
                .and_then(|id| ends.get(id))
                .and_then(|v| v.iter().find(|e| **e != me).cloned());
            interfaces.push(IfaceView {
                name: l.name.clone(),
                index: l.index,
                kind: l.kind.clone(),
                up: l.up,
                lower_up: l.lower_up,
                mtu: l.mtu,
                mac: l.mac.map(|m| m.to_string()),
                addresses: st.addrs_of(l.index).map(|a| a.to_string()).collect(),
                peer,
                master: l
                    .master
                    .and_then(|m| st.link_by_index(m))
                    .map(|b| b.name.clone()),
                ports: st
                    .links
                    .iter()
                    .filter(|p| p.master == Some(l.index))
                    .map(|p| p.name.clone())
                    .collect(),
            });
        }
        let routes = st
            .routes
            .iter()
            .filter(|r| {
                !*is_host
                    || r.oif
                        .and_then(|i| st.link_by_index(i))
                        .is_some_and(|d| d.owner() == Some(lab.as_str()))
            })
            .map(|r| {
                let dev = r
                    .oif
                    .and_then(|i| st.link_by_index(i))
                    .map(|d| d.name.clone());
                plan::RouteSpec {
                    dst: r.dst,
                    via: r.via,
                    dev,
                }
                .to_string()
            })
            .collect();
        if *is_host && interfaces.is_empty() {
            continue;
        }
        nodes.push(NodeView {
            node: node.clone(),
            interfaces,
            routes,
        });
    }
    LabView {
        version: 1,
        lab: lab.to_string(),
        nodes,
    }
}
