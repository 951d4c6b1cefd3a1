//! Executes a [`Plan`](crate::plan::Plan) through a [`Backend`], with rollback.
//!
//! Invariants:
//! - steps run in plan order; consecutive steps of one kind are handed to the backend as one
//!   batch, which it may pipeline (they never depend on each other);
//! - when a step fails, every object this run created is removed again, newest first, and the
//!   error names the object and the operation;
//! - teardown ([`run_teardown`]) never stops at a failure: it attempts every step and reports
//!   every failure; "already gone" counts as done.

mod kernel;
pub mod lock;

pub use kernel::KernelBackend;

use std::fmt;

use crate::plan::{Plan, Step};

/// A step's failure as the backend reports it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StepError {
    /// A netlink request was refused.
    #[error(transparent)]
    Netlink(#[from] crate::netlink::NetlinkError),
    /// A namespace operation failed.
    #[error(transparent)]
    Netns(#[from] crate::netns::NetnsError),
    /// A file under /proc/sys could not be written.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// An interface or namespace the step needs is missing.
    #[error("{what} not found")]
    Missing {
        /// What.
        what: String,
    },
    /// nftables refused a batch.
    #[error(transparent)]
    Firewall(#[from] crate::firewall::FirewallError),
    /// A failure injected for testing (`PLUMB_INJECT_FAILURE`).
    #[error("injected failure")]
    Injected,
}

impl StepError {
    /// The errno underneath, if any.
    pub fn errno(&self) -> Option<i32> {
        match self {
            StepError::Netlink(e) => e.errno(),
            StepError::Netns(e) => e.errno(),
            StepError::Io(e) => e.raw_os_error(),
            StepError::Missing { .. } => Some(libc::ENOENT),
            StepError::Firewall(_) => None,
            StepError::Injected => None,
        }
    }

    /// True for "the object is already gone", which deletions count as success.
    pub fn is_gone(&self) -> bool {
        matches!(
            self.errno(),
            Some(libc::ENOENT | libc::ENODEV | libc::ESRCH | libc::EADDRNOTAVAIL)
        )
    }
}

/// Something that can carry out steps: the kernel, or a recording fake in tests.
pub trait Backend {
    /// Runs a batch of steps of one kind; returns one result per step, in order.
    fn execute(&mut self, batch: &[Step]) -> Vec<Result<(), StepError>>;
}

/// Why `up` failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApplyError {
    /// A step failed; what this run created has been removed again.
    #[error("{op} failed: {source}{}", rollback_note(.rollback_failures))]
    Step {
        /// The step, as the `ip` command it stands for.
        op: String,
        /// Why.
        #[source]
        source: StepError,
        /// Rollback steps that failed too (objects possibly left behind).
        rollback_failures: Vec<(String, String)>,
    },
}

fn rollback_note(f: &[(String, String)]) -> String {
    if f.is_empty() {
        "; everything this run created was removed again".into()
    } else {
        let list: Vec<String> = f.iter().map(|(op, e)| format!("{op}: {e}")).collect();
        format!(
            "; rollback could not undo: {} (run `plumb gc`)",
            list.join("; ")
        )
    }
}

/// Test hooks and progress reporting for [`run`].
pub struct Options<'a> {
    /// Make the N-th step (1-based) fail with [`StepError::Injected`] instead of running.
    pub fail_at: Option<usize>,
    /// Call `on_stall` once after this many steps have run.
    pub stall_after: Option<usize>,
    /// Called with (steps done, steps total) after each batch.
    pub progress: &'a mut dyn FnMut(usize, usize),
    /// Called when `stall_after` is reached.
    pub on_stall: &'a mut dyn FnMut(),
}

impl fmt::Debug for Options<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Options")
            .field("fail_at", &self.fail_at)
            .field("stall_after", &self.stall_after)
            .finish()
    }
}

/// Splits `steps` into batches of one kind, also cut at the given step counts.
fn batches(steps: &[Step], cuts: &[usize]) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let mut start = 0;
    for i in 1..=steps.len() {
        let cut = i == steps.len() || steps[i].kind() != steps[start].kind() || cuts.contains(&i);
        if cut {
            out.push(start..i);
            start = i;
        }
    }
    out
}

/// Applies `plan`. On failure, rolls back what this run created and returns the error.
pub fn run(plan: &Plan, backend: &mut dyn Backend, opts: Options<'_>) -> Result<(), ApplyError> {
    let steps = &plan.steps;
    let mut cuts = Vec::new();
    if let Some(n) = opts.fail_at {
        cuts.push(n.saturating_sub(1));
        cuts.push(n);
    }
    if let Some(n) = opts.stall_after {
        cuts.push(n);
    }
    let mut done: Vec<&Step> = Vec::new();
    let total = steps.len();
    for range in batches(steps, &cuts) {
        let batch = &steps[range.clone()];
        let t0 = std::time::Instant::now();
        let results: Vec<Result<(), StepError>> =
            if opts.fail_at.is_some_and(|n| range.start + 1 == n) {
                std::iter::once(Err(StepError::Injected))
                    .chain(batch[1..].iter().map(|_| Ok(())))
                    .collect()
            } else {
                backend.execute(batch)
            };
        tracing::debug!(kind = batch[0].kind(), steps = batch.len(), elapsed = ?t0.elapsed(), "batch");
        let mut failure = None;
        for (step, r) in batch.iter().zip(results) {
            match r {
                Ok(()) => done.push(step),
                Err(e) if is_delete(step) && e.is_gone() => done.push(step),
                Err(e) => {
                    if failure.is_none() {
                        failure = Some((step, e));
                    }
                }
            }
        }
        if let Some((step, source)) = failure {
            let rollback_failures = rollback(&done, backend);
            return Err(ApplyError::Step {
                op: step.to_string(),
                source,
                rollback_failures,
            });
        }
        (opts.progress)(range.end, total);
        if opts.stall_after == Some(range.end) {
            (opts.on_stall)();
        }
    }
    Ok(())
}

fn is_delete(step: &Step) -> bool {
    matches!(
        step,
        Step::DeleteGroup { .. }
            | Step::DeleteLink { .. }
            | Step::DeleteNs { .. }
            | Step::DelAddr { .. }
            | Step::DelRoute { .. }
            | Step::DeleteFirewall { .. }
    )
}

/// Undoes the creations in `done`, newest first. Addresses and routes on objects that are being
/// deleted anyway are skipped; "already gone" counts as done.
fn rollback(done: &[&Step], backend: &mut dyn Backend) -> Vec<(String, String)> {
    let created_links: std::collections::HashSet<(String, String)> = done
        .iter()
        .flat_map(|s| match s {
            Step::CreateVeth { a, b, .. } => vec![
                (a.node.to_string(), a.name.to_string()),
                (b.node.to_string(), b.name.to_string()),
            ],
            Step::CreateBridge { node, name, .. } => vec![(node.to_string(), name.to_string())],
            _ => vec![],
        })
        .collect();
    let created_ns: std::collections::HashSet<String> = done
        .iter()
        .filter_map(|s| match s {
            Step::CreateNs { ns } => Some(ns.to_string()),
            _ => None,
        })
        .collect();
    let inverses: Vec<Step> = done
        .iter()
        .rev()
        .filter(|s| match s {
            Step::AddAddr { node, dev, .. } => {
                !created_links.contains(&(node.to_string(), dev.clone()))
                    && !created_ns.contains(&node.to_string())
            }
            Step::AddRoute { node, .. } => !created_ns.contains(&node.to_string()),
            Step::CreateVeth { a, b, .. } => {
                !created_ns.contains(&a.node.to_string())
                    || !created_ns.contains(&b.node.to_string())
            }
            Step::CreateBridge { node, .. } => !created_ns.contains(&node.to_string()),
            _ => true,
        })
        .filter_map(|s| s.inverse())
        .collect();
    run_teardown(
        &Plan {
            steps: inverses,
            conflicts: Vec::new(),
        },
        backend,
    )
}

/// Runs every step, continuing past failures; returns the failures as (operation, error).
pub fn run_teardown(plan: &Plan, backend: &mut dyn Backend) -> Vec<(String, String)> {
    let mut failures = Vec::new();
    for range in batches(&plan.steps, &[]) {
        let batch = &plan.steps[range];
        for (step, r) in batch.iter().zip(backend.execute(batch)) {
            if let Err(e) = r {
                if !e.is_gone() {
                    failures.push((step.to_string(), e.to_string()));
                }
            }
        }
    }
    failures
}

#[cfg(test)]
mod tests;
