//! Executes a [`Plan`] through a [`Backend`], with rollback.
//!
//! Invariants:
//! - steps run in plan order; consecutive steps of one class are handed to the backend as one
//!   batch ([`Step::batch_class`]), which it may pipeline and overlap, keeping every step after
//!   the earlier steps on the same object;
//! - before a batch runs, what it will create or rename is written to the lab's journal (when
//!   one is given), so a crash at any instant leaves `gc` a record of it;
//! - when a build-phase step fails, every step of the run that succeeded is undone, newest first:
//!   creations are removed, renamed interfaces get their names back, and link settings, sysctls,
//!   routes and firewalls get the values recorded before the change; the error names the
//!   object, the operation and the errno;
//! - commit-phase steps (removals of what the file no longer names) run only after every build
//!   step succeeded; they continue past failures and report every one;
//! - teardown ([`run_teardown`]) never stops at a failure either; "already gone" counts as done.

mod error;
mod kernel;

pub use error::{ApplyError, StepError, StepFailure};
pub use kernel::KernelBackend;

use std::collections::HashSet;
use std::fmt;

use crate::model::NodeRef;
use crate::ownership::journal::{Journal, Record};
use crate::plan::{Phase, Plan, Step};

/// Something that can carry out steps: the kernel, or a recording fake in tests.
pub trait Backend {
    /// Runs a batch of steps of one class; returns one result per step, in order. May call
    /// `progress` with the number of steps of the batch done so far.
    fn execute(
        &mut self,
        batch: &[Step],
        progress: &mut dyn FnMut(usize),
    ) -> Vec<Result<(), StepError>>;
}

/// Progress reporting and the crash journal for [`run`].
pub struct Options<'a> {
    /// Called with (steps done, steps total) after each batch.
    pub progress: &'a mut dyn FnMut(usize, usize),
    /// Where to record what each batch creates before it runs.
    pub journal: Option<&'a mut Journal>,
}

impl fmt::Debug for Options<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Options")
            .field("journal", &self.journal.is_some())
            .finish()
    }
}

/// Splits `steps` into batches of one class ([`Step::batch_class`]), also cut at the given step
/// counts.
fn batches(steps: &[Step], cuts: &[usize]) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let mut start = 0;
    for i in 1..=steps.len() {
        let cut = i == steps.len()
            || steps[i].batch_class() != steps[start].batch_class()
            || cuts.contains(&i);
        if cut {
            out.push(start..i);
            start = i;
        }
    }
    out
}

/// Step counts at which test faults cut batches (none in a build without fault injection).
fn fault_cuts() -> Vec<usize> {
    #[cfg(feature = "fault-injection")]
    {
        let mut cuts = Vec::new();
        if let Some(n) = crate::fault::failing_step() {
            cuts.extend([n - 1, n]);
        }
        if let Some(n) = crate::fault::stall_after() {
            cuts.push(n);
        }
        cuts
    }
    #[cfg(not(feature = "fault-injection"))]
    Vec::new()
}

fn execute(
    backend: &mut dyn Backend,
    batch: &[Step],
    _range: &std::ops::Range<usize>,
    progress: &mut dyn FnMut(usize),
) -> Vec<Result<(), StepError>> {
    #[cfg(feature = "fault-injection")]
    if crate::fault::failing_step().is_some_and(|n| _range.start + 1 == n) {
        return std::iter::once(Err(StepError::Injected))
            .chain(batch[1..].iter().map(|_| Ok(())))
            .collect();
    }
    backend.execute(batch, progress)
}

/// Applies `plan`. On a build failure, undoes what this run did and returns the error; commit
/// failures are gathered and returned once every removal has been tried.
pub fn run(
    plan: &Plan,
    backend: &mut dyn Backend,
    mut opts: Options<'_>,
) -> Result<(), ApplyError> {
    let steps = &plan.steps;
    let total = steps.len();
    let mut done: Vec<&Step> = Vec::new();
    let mut commit_failures = Vec::new();
    for range in batches(steps, &fault_cuts()) {
        let batch = &steps[range.clone()];
        let phase = batch[0].phase();
        let records: Vec<Record> = batch.iter().flat_map(Step::journal_records).collect();
        if let Some(j) = opts.journal.as_deref_mut() {
            if let Err(source) = j.record(&records) {
                let rollback = rollback(&done, backend);
                return Err(ApplyError::Journal { source, rollback });
            }
        }
        let t0 = std::time::Instant::now();
        let start = range.start;
        let results = execute(backend, batch, &range, &mut |n| {
            (opts.progress)(start + n, total)
        });
        tracing::debug!(kind = batch[0].batch_class(), steps = batch.len(), elapsed = ?t0.elapsed(), "batch");
        let mut failure = None;
        for (step, r) in batch.iter().zip(results) {
            match r {
                Ok(()) => done.push(step),
                Err(e) if step.tolerates_gone() && e.is_gone() => done.push(step),
                Err(error) if phase == Phase::Commit => commit_failures.push(StepFailure {
                    step: step.clone(),
                    error,
                }),
                Err(error) => {
                    if failure.is_none() {
                        failure = Some(StepFailure {
                            step: step.clone(),
                            error,
                        });
                    }
                }
            }
        }
        if let Some(failure) = failure {
            let rollback = rollback(&done, backend);
            return Err(ApplyError::Step {
                failure: Box::new(failure),
                rollback,
            });
        }
        (opts.progress)(range.end, total);
        #[cfg(feature = "fault-injection")]
        if crate::fault::stall_after() == Some(range.end) {
            crate::fault::stall();
        }
    }
    if commit_failures.is_empty() {
        Ok(())
    } else {
        Err(ApplyError::Commit {
            failures: commit_failures,
        })
    }
}

/// Undoes `done`, newest first. What lives inside a namespace or on an interface that the run
/// created goes with it, so it is not undone one by one; "already gone" counts as undone.
fn rollback(done: &[&Step], backend: &mut dyn Backend) -> Vec<StepFailure> {
    let created_ns: HashSet<NodeRef> = done
        .iter()
        .filter_map(|s| match s {
            Step::CreateNs { ns } => Some(NodeRef::Ns(ns.clone())),
            _ => None,
        })
        .collect();
    let created_links: HashSet<(NodeRef, String)> = done
        .iter()
        .flat_map(|s| s.created_links())
        .map(|(n, name)| (n.clone(), name.to_string()))
        .collect();
    let in_new_ns = |n: &NodeRef| created_ns.contains(n);
    let on_new_link = |n: &NodeRef, dev: &str| {
        in_new_ns(n) || created_links.contains(&(n.clone(), dev.to_string()))
    };
    let inverses: Vec<Step> = done
        .iter()
        .rev()
        .filter(|s| match s {
            Step::CreateNs { .. } => true,
            Step::AddAddr { node, dev, .. }
            | Step::SetLink {
                node, name: dev, ..
            } => !on_new_link(node, dev),
            Step::CreateVeth { a, b, .. } => !in_new_ns(&a.node) || !in_new_ns(&b.node),
            Step::CreateBridge { node, .. }
            | Step::AddRoute { node, .. }
            | Step::Sysctl { node, .. }
            | Step::Firewall { node, .. }
            | Step::ParkLink { node, .. } => !in_new_ns(node),
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

/// Runs every step, continuing past failures; returns every failure. A removal of something
/// already gone counts as done.
pub fn run_teardown(plan: &Plan, backend: &mut dyn Backend) -> Vec<StepFailure> {
    let mut failures = Vec::new();
    for range in batches(&plan.steps, &fault_cuts()) {
        let batch = &plan.steps[range.clone()];
        let t0 = std::time::Instant::now();
        let results = execute(backend, batch, &range, &mut |_| {});
        tracing::debug!(kind = batch[0].batch_class(), steps = batch.len(), elapsed = ?t0.elapsed(), "teardown batch");
        for (step, r) in batch.iter().zip(results) {
            match r {
                Err(e) if !(step.tolerates_gone() && e.is_gone()) => failures.push(StepFailure {
                    step: step.clone(),
                    error: e,
                }),
                _ => {}
            }
        }
        #[cfg(feature = "fault-injection")]
        if crate::fault::stall_after() == Some(range.end) {
            crate::fault::stall();
        }
    }
    failures
}

#[cfg(test)]
mod tests;
