//! Per-lab lock and the "being changed" marker, under `/run/plumb`.
//!
//! Ownership lives in the kernel (tags), never here. This directory only answers two questions
//! that tags cannot: is another plumb changing this lab right now (the lock, an `flock` released
//! by the kernel when its holder dies), and did the last change of this lab stop half-way (the
//! marker, written before a change starts and removed when it completes). `/run` is a tmpfs, so
//! both vanish at reboot together with the namespaces they describe.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::PathBuf;

use rustix::fs::FlockOperation;

use crate::model::names::LabName;

/// Where locks and markers live.
pub const STATE_DIR: &str = "/run/plumb";

/// Lock errors.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LockError {
    /// Another plumb process holds the lab's lock.
    #[error("lab `{lab}` is being changed by another plumb process (lock {})", path.display())]
    Busy {
        /// The lab.
        lab: String,
        /// The lock file.
        path: PathBuf,
    },
    /// The lock file could not be created or locked.
    #[error("cannot lock {}: {source}", path.display())]
    Io {
        /// The lock file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
}

/// An exclusive lock on one lab, held until dropped (or until the process dies).
#[derive(Debug)]
pub struct LabLock {
    _file: File,
    marker: PathBuf,
}

fn lock_path(lab: &LabName) -> PathBuf {
    PathBuf::from(STATE_DIR).join(format!("{lab}.lock"))
}

fn marker_path(lab: &LabName) -> PathBuf {
    PathBuf::from(STATE_DIR).join(format!("{lab}.changing"))
}

impl LabLock {
    /// Takes the lab's lock without waiting.
    pub fn acquire(lab: &LabName) -> Result<Self, LockError> {
        let path = lock_path(lab);
        let io_err = |source| LockError::Io {
            path: path.clone(),
            source,
        };
        fs::create_dir_all(STATE_DIR).map_err(io_err)?;
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io_err)?;
        match rustix::fs::flock(&file, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => Ok(LabLock {
                _file: file,
                marker: marker_path(lab),
            }),
            Err(rustix::io::Errno::WOULDBLOCK) => Err(LockError::Busy {
                lab: lab.to_string(),
                path,
            }),
            Err(e) => Err(io_err(e.into())),
        }
    }

    /// Records that a change has started (for `gc`, should this process die before it ends).
    pub fn begin_change(&self) -> io::Result<()> {
        fs::write(&self.marker, std::process::id().to_string())
    }

    /// Records that the change completed.
    pub fn end_change(&self) -> io::Result<()> {
        match fs::remove_file(&self.marker) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

/// True when a change of `lab` started and never completed (and nobody holds its lock).
pub fn change_interrupted(lab: &LabName) -> bool {
    marker_path(lab).exists()
}
