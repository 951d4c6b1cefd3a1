//! What can go wrong while a plan runs, with the errno, the object and the operation kept.

use std::fmt;
use std::io;

use crate::netlink::{is_gone_errno, NetlinkError};
use crate::netns::{NetnsError, SocketError};
use crate::nftables::NftError;
use crate::plan::Step;

/// A step's failure as the backend reports it. Every variant keeps the errno it came with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StepError {
    /// The kernel refused a netlink request (or the socket failed).
    #[error(transparent)]
    Netlink(#[from] NetlinkError),
    /// A namespace could not be created, opened, entered or removed.
    #[error(transparent)]
    Netns(#[from] NetnsError),
    /// A socket inside a namespace could not be had.
    #[error(transparent)]
    Socket(#[from] SocketError),
    /// A file under `/proc/sys` could not be written.
    #[error("cannot write sysctl {key}: {source}")]
    Sysctl {
        /// The key.
        key: String,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The kernel's own listing (a dump) does not have an object the step needs.
    #[error("{what} does not exist")]
    Absent {
        /// What.
        what: String,
    },
    /// nftables refused a batch.
    #[error(transparent)]
    Nft(#[from] NftError),
    /// A failure injected by a test (`fault-injection` builds only).
    #[cfg(feature = "fault-injection")]
    #[error("injected failure")]
    Injected,
}

impl StepError {
    /// The errno underneath, if any.
    pub fn errno(&self) -> Option<i32> {
        match self {
            StepError::Netlink(e) => e.errno(),
            StepError::Netns(e) => e.errno(),
            StepError::Socket(e) => e.errno(),
            StepError::Sysctl { source, .. } => source.raw_os_error(),
            // A dump is the kernel's answer: it said there is no such object.
            StepError::Absent { .. } => Some(libc::ENOENT),
            StepError::Nft(e) => e.errno(),
            #[cfg(feature = "fault-injection")]
            StepError::Injected => None,
        }
    }

    /// True when the kernel said the object is already gone, which deletions count as success.
    pub fn is_gone(&self) -> bool {
        self.errno().is_some_and(is_gone_errno)
    }

    /// True for a permission problem (EPERM, EACCES).
    pub fn is_permission(&self) -> bool {
        matches!(self.errno(), Some(libc::EPERM | libc::EACCES))
    }
}

/// One step that failed, and why.
#[derive(Debug)]
pub struct StepFailure {
    /// The step.
    pub step: Step,
    /// Why.
    pub error: StepError,
}

impl fmt::Display for StepFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}` failed: {}", self.step, self.error)
    }
}

impl std::error::Error for StepFailure {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

fn list(f: &[StepFailure]) -> String {
    f.iter()
        .map(|x| format!("\n  - {x}"))
        .collect::<Vec<_>>()
        .join("")
}

fn rollback_note(f: &[StepFailure]) -> String {
    if f.is_empty() {
        "; the lab was restored as it was before this run".into()
    } else {
        format!(
            "; restoring the lab as it was failed too (run `plumb gc` to remove what this run created):{}",
            list(f)
        )
    }
}

/// Why applying a plan failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApplyError {
    /// A build step failed; the run was undone (`rollback` lists what could not be undone).
    #[error("{failure}{}", rollback_note(.rollback))]
    Step {
        /// The step that failed (boxed: a step is large, and errors travel far).
        failure: Box<StepFailure>,
        /// Undo steps that failed too.
        rollback: Vec<StepFailure>,
    },
    /// The journal could not be written, so the next batch did not run; the run was undone.
    #[error("cannot write the lab's journal: {source}{}", rollback_note(.rollback))]
    Journal {
        /// Why.
        #[source]
        source: io::Error,
        /// Undo steps that failed too.
        rollback: Vec<StepFailure>,
    },
    /// Everything new is in place, but removing what the file no longer names failed for some
    /// objects (the others were removed); the next `up` tries again.
    #[error("the lab was built, but {} removal(s) failed (run `plumb up` again to retry them):{}", .failures.len(), list(.failures))]
    Commit {
        /// The removals that failed.
        failures: Vec<StepFailure>,
    },
}

impl ApplyError {
    /// The failure that stopped the run (the first, for commit failures).
    pub fn first(&self) -> Option<&StepFailure> {
        match self {
            ApplyError::Step { failure, .. } => Some(failure),
            ApplyError::Journal { .. } => None,
            ApplyError::Commit { failures } => failures.first(),
        }
    }

    /// True when the kernel is left as it was before the run (or, for commit failures, in the
    /// new state with only some removals missing), so nothing is left for `gc`.
    pub fn restored(&self) -> bool {
        match self {
            ApplyError::Step { rollback, .. } | ApplyError::Journal { rollback, .. } => {
                rollback.is_empty()
            }
            ApplyError::Commit { .. } => true,
        }
    }

    /// True when the run failed for lack of privilege.
    pub fn is_permission(&self) -> bool {
        match self {
            ApplyError::Journal { source, .. } => {
                matches!(source.raw_os_error(), Some(libc::EPERM | libc::EACCES))
            }
            _ => self.first().is_some_and(|f| f.error.is_permission()),
        }
    }
}
