//! `plumb ns link` / `unlink`: giving namespaces that have no name (Docker's, a process's) one in
//! `/run/netns`, so that `ip netns` and every tool built on it sees them, and taking back
//! exactly those names.
//!
//! A linked name is a bind mount like `ip netns add` makes, of a namespace plumb did not create
//! and must not tag; what plumb linked is recorded in `/run/plumb/linked/NAME` (the namespace's
//! identity, its nsfs inode), on the same tmpfs as the mounts, so both vanish together at
//! reboot. `unlink` removes a name only while it still holds the recorded namespace.

use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::{NetnsError, Registry};
use crate::model::names::NsName;
use crate::sys;

/// Where plumb records the names it linked.
pub const LINKED_DIR: &str = "/run/plumb/linked";

/// What `unlink` did with one recorded name.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Unlinked {
    /// The name was removed.
    Removed(String),
    /// The name no longer held the recorded namespace (someone replaced or removed it): left
    /// as it is, only the record was dropped.
    NotOurs(String),
}

impl Registry {
    /// Equivalent to `touch /run/netns/NAME && mount --bind SOURCE /run/netns/NAME`, recording
    /// it in `records` as plumb's with the namespace's identity `id`. Refuses a name in use.
    pub fn link(
        &self,
        records: &Path,
        name: &NsName,
        source: &Path,
        id: u64,
    ) -> Result<(), NetnsError> {
        let target = self.path(name);
        let err = |source| NetnsError::Create {
            name: name.to_string(),
            source,
        };
        self.prepare()?;
        fs::create_dir_all(records).map_err(err)?;
        fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&target)
            .map_err(err)?;
        if let Err(e) = sys::bind_mount(source, &target) {
            let _ = fs::remove_file(&target);
            return Err(err(e));
        }
        // The record comes after the mount: a crash in between leaves a name `unlink` does not
        // know, never a record of a name plumb did not make.
        fs::write(records.join(name.as_str()), format!("{id}\n")).map_err(err)
    }

    /// Removes every name `link` recorded in `records` that still holds its namespace.
    pub fn unlink_all(&self, records: &Path) -> Result<Vec<Unlinked>, NetnsError> {
        let mut out = Vec::new();
        let entries = match fs::read_dir(records) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
            Err(source) => {
                return Err(NetnsError::Prepare {
                    dir: records.to_path_buf(),
                    source,
                })
            }
        };
        let mut names: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
        names.sort();
        for rec in names {
            let Some(name) = rec
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| NsName::new(n).ok())
            else {
                continue;
            };
            let recorded: Option<u64> = fs::read_to_string(&rec)
                .ok()
                .and_then(|s| s.trim().parse().ok());
            let now = fs::metadata(self.path(&name)).ok().map(|m| m.ino());
            if recorded.is_some() && now == recorded {
                self.remove(&name)?;
                out.push(Unlinked::Removed(name.to_string()));
            } else {
                out.push(Unlinked::NotOurs(name.to_string()));
            }
            fs::remove_file(&rec).map_err(|source| NetnsError::Delete {
                name: name.to_string(),
                source,
            })?;
        }
        // Nothing recorded any more: the directory goes too (it fails harmlessly if not empty).
        let _ = fs::remove_dir(records);
        Ok(out)
    }
}
