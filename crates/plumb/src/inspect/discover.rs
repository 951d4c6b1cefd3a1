//! Finding every network namespace on the machine, and what holds each one alive.
//!
//! A network namespace lives while something refers to it: a process (or one of its threads),
//! an open file descriptor, or a bind mount of its nsfs file (`/run/netns/NAME` is one; Docker
//! keeps its own under `/run/docker/netns`). `ip netns list` sees only the first directory;
//! this module looks at all of them, without entering any namespace and without a process:
//! `/proc/PID/ns/net` and `/proc/PID/task/TID/ns/net` of every process, `/proc/PID/fd/*`, and
//! the nsfs entries of every mount namespace's `mountinfo`. A namespace's identity is its nsfs
//! inode (all nsfs files share one device), so each is found exactly once whatever holds it.

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

pub use super::procfs::{container_of_cgroup, nsfs_mounts};
use super::procfs::{docker_sandbox, fd_namespace, read_link_inode};

/// A namespace's identity: the inode of its nsfs file (`ls -i /run/netns/X`, `net:[INODE]`).
pub type NsIdentity = u64;

/// Something that keeps a namespace alive.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Holder {
    /// A bind mount in `/run/netns` (what `ip netns add` makes): the namespace has a name.
    Named {
        /// The name.
        name: String,
        /// The file.
        path: PathBuf,
    },
    /// A bind mount of the namespace's file anywhere else (Docker's `/run/docker/netns/ID`,
    /// another mount namespace's `/run/netns`…).
    Mount {
        /// The mount point, as the mount namespace that has it sees it.
        path: PathBuf,
        /// That mount namespace's identity (`mnt:[INODE]`).
        mount_ns: u64,
        /// Whether it is plumb's own mount namespace (else the path is reached through
        /// `/proc/PID/root`).
        here: bool,
    },
    /// A process whose network namespace it is.
    Process {
        /// The process.
        pid: u32,
        /// The thread, when only one of the process's threads is in it.
        #[serde(skip_serializing_if = "Option::is_none")]
        tid: Option<u32>,
        /// `/proc/PID/comm`.
        comm: String,
    },
    /// An open file descriptor of a process.
    Fd {
        /// The process.
        pid: u32,
        /// The descriptor.
        fd: u32,
    },
}

/// A container engine's container, as a process's cgroup names it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Container {
    /// `docker`, `containerd`, `cri-o` or `podman`.
    pub runtime: String,
    /// The container's id (64 hex digits).
    pub id: String,
}

impl Container {
    /// `docker:0123456789ab`: the runtime and the id's first 12 digits.
    pub fn short(&self) -> String {
        format!("{}:{}", self.runtime, &self.id[..self.id.len().min(12)])
    }
}

/// One namespace found, with everything that holds it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Found {
    /// Its identity.
    pub id: NsIdentity,
    /// Whether plumb runs in it.
    pub current: bool,
    /// What holds it, in a stable order (names first).
    pub holders: Vec<Holder>,
    /// The container its processes belong to, if their cgroup says so.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container: Option<Container>,
    /// A path through which it can be opened (not serialised: it may be a `/proc` path).
    #[serde(skip)]
    pub open_path: PathBuf,
}

impl Found {
    /// The processes in it (whole processes and single threads), sorted, without repeats.
    pub fn pids(&self) -> Vec<u32> {
        let mut p: Vec<u32> = self
            .holders
            .iter()
            .filter_map(|h| match h {
                Holder::Process { pid, .. } => Some(*pid),
                _ => None,
            })
            .collect();
        p.sort_unstable();
        p.dedup();
        p
    }

    /// Its name in `/run/netns`, if it has one.
    pub fn name(&self) -> Option<&str> {
        self.holders.iter().find_map(|h| match h {
            Holder::Named { name, .. } => Some(name.as_str()),
            _ => None,
        })
    }

    /// How a person refers to it: `host` for plumb's own, its name, its container, the Docker
    /// sandbox file, `pid:PID`, or `net:[INODE]`.
    pub fn label(&self) -> String {
        if self.current {
            return "host".into();
        }
        if let Some(n) = self.name() {
            return n.to_string();
        }
        if let Some(c) = &self.container {
            return c.short();
        }
        for h in &self.holders {
            if let Holder::Mount { path, .. } = h {
                if let Some(id) = docker_sandbox(path) {
                    return format!("docker-sandbox:{id}");
                }
            }
        }
        match self.pids().first() {
            Some(p) => format!("pid:{p}"),
            None => format!("net:[{}]", self.id),
        }
    }
}

/// What a namespace reference is matched against.
pub struct Identity<'a> {
    /// The nsfs inode.
    pub id: NsIdentity,
    /// Its label.
    pub label: &'a str,
    /// Whether it is plumb's own.
    pub current: bool,
    /// Its processes.
    pub pids: &'a [u32],
    /// Its container.
    pub container: Option<&'a Container>,
    /// What holds it.
    pub holders: &'a [Holder],
}

/// The container engines a cgroup path can name, as references spell them (`docker:ID`).
pub const RUNTIMES: [&str; 4] = ["docker", "containerd", "cri-o", "podman"];

/// Whether `reference` can only be resolved by discovery: a container (`RUNTIME:ID`,
/// `container:ID`, `docker-sandbox:ID`) or an inode (`net:[ID]`), not a name, path or pid.
pub fn is_machine_reference(reference: &str) -> bool {
    reference.starts_with("net:[")
        || reference.split_once(':').is_some_and(|(kind, _)| {
            RUNTIMES.contains(&kind) || kind == "container" || kind == "docker-sandbox"
        })
}

/// Whether `reference` names a namespace: its label or name, `host`, `pid:PID` (any of its
/// processes), `net:[ID]` or the bare identity, a container as `RUNTIME:ID` or `container:ID`
/// (at least 4 leading digits of the id), or a path that holds it (in plumb's mount namespace).
pub fn answers_to(reference: &str, ns: &Identity<'_>) -> bool {
    if reference == ns.label || (reference == "host" && ns.current) {
        return true;
    }
    if reference == format!("net:[{}]", ns.id) || reference == ns.id.to_string() {
        return true;
    }
    if let Some(p) = reference.strip_prefix("pid:") {
        return p.parse().is_ok_and(|p: u32| ns.pids.contains(&p));
    }
    if let (Some((runtime, id)), Some(c)) = (reference.split_once(':'), ns.container) {
        if (runtime == c.runtime || runtime == "container") && id.len() >= 4 {
            return c.id.starts_with(id);
        }
    }
    ns.holders.iter().any(|h| match h {
        Holder::Named { name, path } => name == reference || path.as_os_str() == reference,
        Holder::Mount { path, here, .. } => {
            *here && path.as_os_str() == reference
                || docker_sandbox(path).is_some_and(|id| reference == format!("docker:{id}"))
        }
        _ => false,
    })
}

impl Discovery {
    /// The namespaces `reference` names (see [`answers_to`]).
    pub fn find(&self, reference: &str) -> Vec<&Found> {
        self.namespaces
            .iter()
            .filter(|f| {
                let pids = f.pids();
                answers_to(
                    reference,
                    &Identity {
                        id: f.id,
                        label: &f.label(),
                        current: f.current,
                        pids: &pids,
                        container: f.container.as_ref(),
                        holders: &f.holders,
                    },
                )
            })
            .collect()
    }
}

/// What discovery saw, and what it could not look at.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Discovery {
    /// Every namespace, plumb's own first, then by label.
    pub namespaces: Vec<Found>,
    /// Processes whose namespaces could not be read (permission: another user's processes
    /// when plumb is not privileged).
    pub processes_not_examined: usize,
}

/// Where to look: `/proc` and the `/run/netns` directory (tests point them elsewhere).
#[derive(Debug, Clone)]
pub struct Roots {
    /// The proc filesystem.
    pub proc: PathBuf,
    /// The named-namespace directory.
    pub run_netns: PathBuf,
}

impl Default for Roots {
    fn default() -> Self {
        Roots {
            proc: PathBuf::from("/proc"),
            run_netns: PathBuf::from(crate::netns::NETNS_RUN_DIR),
        }
    }
}

#[derive(Default)]
struct Acc {
    holders: BTreeMap<NsIdentity, Vec<Holder>>,
    open: BTreeMap<NsIdentity, PathBuf>,
    container: BTreeMap<NsIdentity, Container>,
}

impl Acc {
    fn add(&mut self, id: NsIdentity, h: Holder, open: impl FnOnce() -> PathBuf) {
        let v = self.holders.entry(id).or_default();
        if !v.contains(&h) {
            v.push(h);
        }
        self.open.entry(id).or_insert_with(open);
    }
}

fn pids(proc: &Path) -> Vec<u32> {
    let mut v: Vec<u32> = fs::read_dir(proc)
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    v.sort_unstable();
    v
}

/// Finds every network namespace plumb can see. Reads only `/proc` and `/run/netns`; never
/// enters a namespace, never changes anything.
pub fn discover(roots: &Roots) -> Discovery {
    let proc = &roots.proc;
    let mut acc = Acc::default();
    let current = read_link_inode(&proc.join("self/ns/net"), "net")
        .ok()
        .flatten();
    let my_mnt = read_link_inode(&proc.join("self/ns/mnt"), "mnt")
        .ok()
        .flatten();
    let nsfs_dev = fs::metadata(proc.join("self/ns/net")).ok().map(|m| m.dev());
    let mut not_examined = 0;
    let mut mount_nss: HashSet<u64> = HashSet::new();
    let me = std::process::id();
    // plumb's own mount namespace first, so that its paths are the ones used to open.
    let mut order = pids(proc);
    if let Some(pos) = order.iter().position(|&p| p == me) {
        order.remove(pos);
        order.insert(0, me);
    }
    for pid in order {
        let base = proc.join(pid.to_string());
        let net = match read_link_inode(&base.join("ns/net"), "net") {
            Ok(Some(n)) => Some(n),
            Ok(None) => None,
            // A kernel thread has no namespace links to read; a process that ended is gone.
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
            Err(_) => {
                not_examined += 1;
                continue;
            }
        };
        if pid == me {
            // plumb's own process holds nothing a user cares about: only its mounts count.
        } else if let Some(net) = net {
            let comm = fs::read_to_string(base.join("comm"))
                .map(|s| s.trim_end().to_string())
                .unwrap_or_default();
            acc.add(
                net,
                Holder::Process {
                    pid,
                    tid: None,
                    comm: comm.clone(),
                },
                || base.join("ns/net"),
            );
            if let std::collections::btree_map::Entry::Vacant(e) = acc.container.entry(net) {
                if let Some(c) = fs::read_to_string(base.join("cgroup"))
                    .ok()
                    .and_then(|s| container_of_cgroup(&s))
                {
                    e.insert(c);
                }
            }
            // Threads in another namespace than their process.
            if let Ok(tasks) = fs::read_dir(base.join("task")) {
                for t in tasks.flatten() {
                    let Some(tid) = t.file_name().to_str().and_then(|s| s.parse::<u32>().ok())
                    else {
                        continue;
                    };
                    if tid == pid {
                        continue;
                    }
                    let tpath = t.path().join("ns/net");
                    if let Ok(Some(tn)) = read_link_inode(&tpath, "net") {
                        if tn != net {
                            acc.add(
                                tn,
                                Holder::Process {
                                    pid,
                                    tid: Some(tid),
                                    comm: comm.clone(),
                                },
                                || tpath.clone(),
                            );
                        }
                    }
                }
            }
            // Open descriptors of namespaces.
            if let Ok(fds) = fs::read_dir(base.join("fd")) {
                for f in fds.flatten() {
                    let Some(n) = fd_namespace(&f.path(), nsfs_dev) else {
                        continue;
                    };
                    let Some(fd) = f.file_name().to_str().and_then(|s| s.parse().ok()) else {
                        continue;
                    };
                    acc.add(n, Holder::Fd { pid, fd }, || f.path());
                }
            }
        }
        // Bind mounts, once per mount namespace.
        let Ok(Some(mnt)) = read_link_inode(&base.join("ns/mnt"), "mnt") else {
            continue;
        };
        if !mount_nss.insert(mnt) {
            continue;
        }
        let Ok(info) = fs::read_to_string(base.join("mountinfo")) else {
            continue;
        };
        let here = Some(mnt) == my_mnt;
        for (path, id) in nsfs_mounts(&info) {
            let open = if here {
                path.clone()
            } else {
                base.join("root")
                    .join(path.strip_prefix("/").unwrap_or(&path))
            };
            let h = match (here, path.parent()) {
                (true, Some(dir)) if dir == roots.run_netns => Holder::Named {
                    name: path
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default(),
                    path: path.clone(),
                },
                _ => Holder::Mount {
                    path: path.clone(),
                    mount_ns: mnt,
                    here,
                },
            };
            acc.add(id, h, || open);
        }
    }
    // plumb's own namespace, even when nothing else holds it.
    if let Some(c) = current {
        acc.holders.entry(c).or_default();
        acc.open
            .entry(c)
            .or_insert_with(|| proc.join("self/ns/net"));
    }
    let mut namespaces: Vec<Found> = acc
        .holders
        .into_iter()
        .map(|(id, mut holders)| {
            holders.sort();
            Found {
                id,
                current: Some(id) == current,
                holders,
                container: acc.container.get(&id).cloned(),
                open_path: acc.open.get(&id).cloned().unwrap_or_default(),
            }
        })
        .collect();
    namespaces.sort_by_cached_key(|f| (!f.current, natural(&f.label()), f.id));
    Discovery {
        namespaces,
        processes_not_examined: not_examined,
    }
}

/// A sort key that puts `c2` before `c10`: runs of digits compare as numbers.
fn natural(s: &str) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    let mut text = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() {
            let mut n = u64::from(c as u8 - b'0');
            while let Some(d) = chars.peek().and_then(|d| d.to_digit(10)) {
                n = n.saturating_mul(10).saturating_add(u64::from(d));
                chars.next();
            }
            out.push((std::mem::take(&mut text), n));
        } else {
            text.push(c);
        }
    }
    out.push((text, u64::MAX));
    out
}

/// The identity of the namespace file at `path`.
pub fn identity_of(path: &Path) -> std::io::Result<NsIdentity> {
    fs::metadata(path).map(|m| m.ino())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn machine_references_are_containers_and_inodes_not_names_or_pids() {
        for r in [
            "docker:abcd",
            "podman:0123",
            "container:beef",
            "docker-sandbox:x",
            "net:[4026531840]",
        ] {
            assert!(is_machine_reference(r), "{r}");
        }
        for r in ["ns1", "pid:42", "/run/netns/a", "host", "lab:node"] {
            assert!(!is_machine_reference(r), "{r}");
        }
    }

    #[test]
    fn labels_sort_with_numbers_as_numbers() {
        let mut v = vec!["c10", "c2", "host", "c1"];
        v.sort_by_cached_key(|s| natural(s));
        assert_eq!(v, ["c1", "c2", "c10", "host"]);
    }
}
