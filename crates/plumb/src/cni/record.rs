//! plumb's own record of each attachment, next to the IPAM store
//! (`DATA_DIR/NETWORK/plumb/CONTAINERID@IFNAME.json`): what ADD made, so DEL, CHECK and GC
//! tear down and verify from it rather than from what they find on live interfaces.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use ipnet::IpNet;

use super::error::CniError;
use super::nat::Entries;

/// One attachment.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Record {
    /// Container id.
    pub container_id: String,
    /// Interface name in the container.
    pub ifname: String,
    /// The host end of the veth pair.
    pub host_veth: String,
    /// Addresses given.
    pub ips: Vec<IpNet>,
    /// Elements in the network's nftables table.
    pub entries: Entries,
}

fn dir(store: &Path) -> PathBuf {
    store.join("plumb")
}

fn path(store: &Path, cid: &str, ifname: &str) -> PathBuf {
    dir(store).join(format!("{cid}@{ifname}.json"))
}

/// Writes the record (replacing an older one).
pub fn write(store: &Path, r: &Record) -> Result<(), CniError> {
    fs::create_dir_all(dir(store))
        .map_err(|e| CniError::io(format!("cannot create {}", dir(store).display()), &e))?;
    let p = path(store, &r.container_id, &r.ifname);
    let tmp = p.with_extension("tmp");
    let text = serde_json::to_vec(r).unwrap_or_default();
    fs::write(&tmp, text)
        .and_then(|()| fs::rename(&tmp, &p))
        .map_err(|e| CniError::io(format!("cannot write {}", p.display()), &e))
}

/// Reads an attachment's record: `None` if there is none (or it cannot be read as one).
pub fn read(store: &Path, cid: &str, ifname: &str) -> Option<Record> {
    let text = fs::read(path(store, cid, ifname)).ok()?;
    serde_json::from_slice(&text).ok()
}

/// Every record.
pub fn all(store: &Path) -> Vec<Record> {
    let Ok(rd) = fs::read_dir(dir(store)) else {
        return Vec::new();
    };
    rd.flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
        .filter_map(|e| serde_json::from_slice(&fs::read(e.path()).ok()?).ok())
        .collect()
}

/// Removes an attachment's record (none is no error).
pub fn remove(store: &Path, cid: &str, ifname: &str) -> Result<(), CniError> {
    let p = path(store, cid, ifname);
    match fs::remove_file(&p) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(CniError::io(format!("cannot remove {}", p.display()), &e)),
    }
}
