//! Per-lab and per-group locks under `/run/plumb`.
//!
//! Ownership lives in the kernel (tags), never here. Locks answer one question tags cannot: is
//! another plumb changing this lab right now. Each is an `flock` on a file, which the kernel
//! releases when its holder dies, so a crash never leaves a lab locked. `/run` is a tmpfs, so
//! everything here vanishes at reboot together with the namespaces it describes.
//!
//! - The **lab lock** (`LAB.lock`) is held by every change of the lab (`up`, `down`, `gc`).
//! - The **group lock** (`group-XXXXXXXX.lock`) is held with it: two labs whose names hash to the
//!   same link group ([`super::lab_group`]) never change interfaces of that group at the same
//!   time, so a teardown that checked "every member of the group is mine" can delete by group.
//!
//! A lock file is removed by the holder that releases it, so nothing is left behind once no
//! plumb runs; a waiter that locked a file removed meanwhile retries on the new one.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use rustix::fs::FlockOperation;

use crate::model::names::LabName;

/// Where locks and journals live.
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

impl LockError {
    /// The errno underneath, if any.
    pub fn errno(&self) -> Option<i32> {
        match self {
            LockError::Busy { .. } => None,
            LockError::Io { source, .. } => source.raw_os_error(),
        }
    }
}

/// One locked file; unlinked and unlocked on drop.
#[derive(Debug)]
struct Held {
    file: File,
    path: PathBuf,
}

impl Drop for Held {
    fn drop(&mut self) {
        // Unlink while still holding the lock: a waiter that locks the old inode afterwards sees
        // that the path no longer names it and retries.
        let _ = fs::remove_file(&self.path);
        let _ = rustix::fs::flock(&self.file, FlockOperation::Unlock);
    }
}

/// Locks `path`; `Ok(None)` when `wait` is false and someone else holds it.
fn lock_file(path: &Path, wait: bool) -> io::Result<Option<Held>> {
    loop {
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)?;
        let op = if wait {
            FlockOperation::LockExclusive
        } else {
            FlockOperation::NonBlockingLockExclusive
        };
        match rustix::fs::flock(&file, op) {
            Ok(()) => {}
            Err(rustix::io::Errno::WOULDBLOCK) => return Ok(None),
            Err(e) => return Err(e.into()),
        }
        // The previous holder may have removed the file between our open and our lock.
        let ours = file.metadata()?;
        match fs::metadata(path) {
            Ok(now) if now.ino() == ours.ino() && now.dev() == ours.dev() => {
                return Ok(Some(Held {
                    file,
                    path: path.to_path_buf(),
                }))
            }
            Ok(_) => continue,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        }
    }
}

/// An exclusive lock on one lab and on its link group, held until dropped (or until the
/// process dies).
#[derive(Debug)]
pub struct LabLock {
    // Dropped in declaration order: the group first, then the lab.
    _group: Held,
    _lab: Held,
    lab: LabName,
}

/// The lab's lock file.
pub fn lock_path(lab: &LabName) -> PathBuf {
    PathBuf::from(STATE_DIR).join(format!("{lab}.lock"))
}

fn group_lock_path(lab: &LabName) -> PathBuf {
    PathBuf::from(STATE_DIR).join(format!("group-{:08x}.lock", super::lab_group(lab)))
}

impl LabLock {
    /// Takes the lab's lock: at once, or fails with [`LockError::Busy`]; with `wait`, blocks
    /// until the other plumb is done. Then takes the group lock, waiting for it (a lab that
    /// shares the group holds it only while it changes).
    pub fn acquire(lab: &LabName, wait: bool) -> Result<Self, LockError> {
        let path = lock_path(lab);
        let io_err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| LockError::Io { path, source }
        };
        fs::create_dir_all(STATE_DIR).map_err(io_err(Path::new(STATE_DIR)))?;
        let lab_held = lock_file(&path, wait)
            .map_err(io_err(&path))?
            .ok_or_else(|| LockError::Busy {
                lab: lab.to_string(),
                path: path.clone(),
            })?;
        let gpath = group_lock_path(lab);
        let group = lock_file(&gpath, true)
            .map_err(io_err(&gpath))?
            .ok_or_else(|| LockError::Busy {
                lab: lab.to_string(),
                path: gpath.clone(),
            })?;
        Ok(LabLock {
            _group: group,
            _lab: lab_held,
            lab: lab.clone(),
        })
    }

    /// The locked lab.
    pub fn lab(&self) -> &LabName {
        &self.lab
    }
}

/// True when some plumb process holds `lab`'s lock right now.
pub fn is_locked(lab: &LabName) -> bool {
    let path = lock_path(lab);
    if !path.exists() {
        return false;
    }
    // Probe without creating: open the existing file and try a non-blocking shared lock.
    match File::open(&path) {
        Ok(f) => match rustix::fs::flock(&f, FlockOperation::NonBlockingLockShared) {
            Ok(()) => {
                let _ = rustix::fs::flock(&f, FlockOperation::Unlock);
                false
            }
            Err(_) => true,
        },
        Err(_) => false,
    }
}
