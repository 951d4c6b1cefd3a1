//! Network namespaces: the iproute2-compatible registry in `/run/netns`, one way to refer to a
//! namespace (name, path or pid), and running work inside namespaces on threads that own them.
//!
//! Invariants:
//! - A named namespace is a bind mount of an nsfs file at `/run/netns/NAME`, made exactly as
//!   `ip netns add` makes it (the directory is a shared mount point), so `ip netns list`,
//!   `ip netns exec` and plumb see the same namespaces.
//! - No thread that entered another namespace is ever reused for other work: each batch of
//!   work runs on a scoped thread that ends with it.

pub mod linked;

use std::fs;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use crate::model::names::NsName;
use crate::netlink::{NetlinkError, NlSocket};
use crate::sys;

/// How many created namespaces [`Registry::create_each`] hands over at a time (the last group
/// may be smaller): large enough that the two threads do not alternate on the kernel's
/// configuration lock for every namespace, small enough that the work overlaps.
pub const CREATE_GROUP: usize = 64;

/// Where iproute2 keeps named namespaces.
pub const NETNS_RUN_DIR: &str = "/run/netns";

/// A namespace operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NetnsError {
    /// `/run/netns` could not be prepared.
    #[error("cannot prepare {}: {source}", dir.display())]
    Prepare {
        /// The directory.
        dir: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// Creating a named namespace failed.
    #[error("cannot create namespace {name}: {source}")]
    Create {
        /// The namespace.
        name: String,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// A namespace could not be opened or entered.
    #[error("cannot enter namespace {name}: {source}")]
    Enter {
        /// The namespace.
        name: String,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// Removing a named namespace failed.
    #[error("cannot delete namespace {name}: {source}")]
    Delete {
        /// The namespace.
        name: String,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// A new namespace could not be tagged before it was published.
    #[error("cannot tag new namespace {name}: {source}")]
    Tag {
        /// The namespace.
        name: String,
        /// Why.
        #[source]
        source: NetlinkError,
    },
    /// A netlink socket inside a namespace could not be opened.
    #[error("cannot open a netlink socket in namespace {name}: {source}")]
    Socket {
        /// The namespace.
        name: String,
        /// Why.
        #[source]
        source: NetlinkError,
    },
    /// A worker thread died.
    #[error("a namespace worker thread panicked")]
    Worker,
}

impl NetnsError {
    /// The errno underneath, if any.
    pub fn errno(&self) -> Option<i32> {
        match self {
            NetnsError::Prepare { source, .. }
            | NetnsError::Create { source, .. }
            | NetnsError::Enter { source, .. }
            | NetnsError::Delete { source, .. } => source.raw_os_error(),
            NetnsError::Socket { source, .. } | NetnsError::Tag { source, .. } => source.errno(),
            NetnsError::Worker => None,
        }
    }
}

/// One way to refer to any network namespace on the machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NsRef {
    /// The namespace plumb runs in.
    Current,
    /// A name in `/run/netns`.
    Name(NsName),
    /// An nsfs file anywhere (`/var/run/docker/netns/…`, `/proc/PID/ns/net`).
    Path(PathBuf),
    /// The namespace of a process.
    Pid(u32),
}

impl std::fmt::Display for NsRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NsRef::Current => f.write_str("host"),
            NsRef::Name(n) => write!(f, "{n}"),
            NsRef::Path(p) => write!(f, "{}", p.display()),
            NsRef::Pid(p) => write!(f, "pid:{p}"),
        }
    }
}

impl NsRef {
    /// Parses `pid:1234`, an absolute path, `host`, or a name.
    pub fn parse(s: &str) -> Result<Self, crate::model::names::NameError> {
        if s == "host" {
            return Ok(NsRef::Current);
        }
        if let Some(pid) = s.strip_prefix("pid:").and_then(|p| p.parse().ok()) {
            return Ok(NsRef::Pid(pid));
        }
        if s.starts_with('/') {
            return Ok(NsRef::Path(PathBuf::from(s)));
        }
        NsName::new(s).map(NsRef::Name)
    }

    /// The nsfs file this reference points at.
    pub fn path(&self, reg: &Registry) -> PathBuf {
        match self {
            NsRef::Current => PathBuf::from("/proc/self/ns/net"),
            NsRef::Name(n) => reg.path(n),
            NsRef::Path(p) => p.clone(),
            NsRef::Pid(p) => PathBuf::from(format!("/proc/{p}/ns/net")),
        }
    }

    /// Opens the namespace (read-only; opening never changes it).
    pub fn open(&self, reg: &Registry) -> Result<OwnedFd, NetnsError> {
        let path = self.path(reg);
        fs::File::open(&path)
            .map(OwnedFd::from)
            .map_err(|source| NetnsError::Enter {
                name: path.display().to_string(),
                source,
            })
    }
}

/// The `/run/netns` directory.
#[derive(Debug, Clone)]
pub struct Registry {
    dir: PathBuf,
}

impl Default for Registry {
    fn default() -> Self {
        Registry {
            dir: PathBuf::from(NETNS_RUN_DIR),
        }
    }
}

/// A namespace plumb just created, with a socket opened inside it.
#[derive(Debug)]
pub struct Created {
    /// The namespace's name.
    pub name: NsName,
    /// The namespace itself.
    pub fd: OwnedFd,
    /// A netlink socket bound to it.
    pub sock: NlSocket,
}

impl Registry {
    /// A registry in another directory (tests).
    pub fn at(dir: impl Into<PathBuf>) -> Self {
        Registry { dir: dir.into() }
    }

    /// `/run/netns/NAME`.
    pub fn path(&self, name: &NsName) -> PathBuf {
        self.dir.join(name.as_str())
    }

    /// The names present, sorted. A missing directory is an empty list.
    pub fn list(&self) -> Result<Vec<NsName>, NetnsError> {
        let rd = match fs::read_dir(&self.dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => {
                return Err(NetnsError::Prepare {
                    dir: self.dir.clone(),
                    source,
                })
            }
        };
        let mut out: Vec<NsName> = rd
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().to_str().and_then(|n| NsName::new(n).ok()))
            .collect();
        out.sort();
        Ok(out)
    }

    /// Makes the directory a shared mount point, as `ip netns add` does, so that namespace
    /// mounts made later propagate into mount namespaces copied from this one.
    pub fn prepare(&self) -> Result<(), NetnsError> {
        let err = |source| NetnsError::Prepare {
            dir: self.dir.clone(),
            source,
        };
        fs::create_dir_all(&self.dir).map_err(err)?;
        match sys::make_shared(&self.dir) {
            Ok(()) => Ok(()),
            Err(e) if sys::is_errno(&e, sys::EINVAL) => {
                // Not a mount point yet: bind it onto itself, then share it.
                sys::rbind_mount(&self.dir, &self.dir).map_err(err)?;
                sys::make_shared(&self.dir).map_err(err)
            }
            Err(e) => Err(err(e)),
        }
    }

    /// Opens `/run/netns/NAME`.
    pub fn open(&self, name: &NsName) -> Result<OwnedFd, NetnsError> {
        fs::File::open(self.path(name))
            .map(OwnedFd::from)
            .map_err(|source| NetnsError::Enter {
                name: name.to_string(),
                source,
            })
    }

    /// Equivalent to `ip netns del NAME`: detaches the mount and removes the file. The kernel
    /// destroys the namespace once nothing else holds it. Returns false if it was already gone.
    pub fn remove(&self, name: &NsName) -> Result<bool, NetnsError> {
        let path = self.path(name);
        let err = |source| NetnsError::Delete {
            name: name.to_string(),
            source,
        };
        match sys::detach_mount(&path) {
            Ok(()) => {}
            // EINVAL: not a mount point (someone unmounted it); ENOENT: gone already.
            Err(e) if sys::is_errno(&e, sys::EINVAL) || sys::is_errno(&e, sys::ENOENT) => {}
            Err(e) => return Err(err(e)),
        }
        match fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(err(e)),
        }
    }

    /// Creates named namespaces on one worker thread, which `unshare`s into each new namespace
    /// in turn, opens a netlink socket inside it, runs `prepare` on that socket (plumb tags the
    /// namespace there), and only then bind-mounts it into place: a namespace is never visible
    /// in `/run/netns` before it is prepared. Each result is handed to `each` on the calling
    /// thread, with whatever `prepare` returned, in groups of [`CREATE_GROUP`], so netlink work
    /// on the namespaces created so far overlaps the creation of the next ones.
    /// Stops at the first failure, which it returns after `each` has seen everything created
    /// before it.
    pub fn create_each<T: Send>(
        &self,
        names: &[NsName],
        prepare: &(dyn Fn(&NsName, &mut NlSocket) -> Result<T, NetlinkError> + Sync),
        mut each: impl FnMut(Vec<(Created, T)>),
    ) -> Result<(), NetnsError> {
        if names.is_empty() {
            return Ok(());
        }
        self.prepare()?;
        // Unbounded: the worker never waits for the calling thread, which takes what has
        // arrived in one go while the worker goes on.
        let (tx, rx) = mpsc::channel::<Result<(Created, T), NetnsError>>();
        std::thread::scope(|s| {
            let worker = s.spawn(move || {
                for name in names {
                    let r = self.create_here(name, prepare);
                    let failed = r.is_err();
                    if tx.send(r).is_err() || failed {
                        return;
                    }
                }
            });
            let mut first_err = None;
            let mut ready = Vec::new();
            loop {
                let done = match rx.recv() {
                    Ok(Ok(c)) => {
                        ready.push(c);
                        false
                    }
                    Ok(Err(e)) => {
                        first_err = Some(e);
                        false
                    }
                    Err(_) => true,
                };
                // Work on the created namespaces in groups: small groups make both threads
                // take the kernel's configuration lock in turn for every namespace.
                if (done && !ready.is_empty()) || ready.len() >= CREATE_GROUP {
                    each(std::mem::take(&mut ready));
                }
                if done {
                    break;
                }
            }
            if worker.join().is_err() {
                return Err(NetnsError::Worker);
            }
            first_err.map_or(Ok(()), Err)
        })
    }

    /// Runs on a worker thread: moves it into a new namespace, prepares it, and publishes it.
    fn create_here<T>(
        &self,
        name: &NsName,
        prepare: &(dyn Fn(&NsName, &mut NlSocket) -> Result<T, NetlinkError> + Sync),
    ) -> Result<(Created, T), NetnsError> {
        let path = self.path(name);
        let err = |source| NetnsError::Create {
            name: name.to_string(),
            source,
        };
        // The placeholder that the bind mount will cover; `create_new` never takes over a name.
        fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(err)?;
        #[cfg(feature = "fault-injection")]
        crate::fault::on_namespace_placeholder();
        let made = (|| {
            sys::unshare_net().map_err(err)?;
            let mut sock = NlSocket::open().map_err(|source| NetnsError::Socket {
                name: name.to_string(),
                source,
            })?;
            let extra = prepare(name, &mut sock).map_err(|source| NetnsError::Tag {
                name: name.to_string(),
                source,
            })?;
            sys::bind_mount(Path::new("/proc/thread-self/ns/net"), &path).map_err(err)?;
            let fd = sys::open_current_net().map_err(err)?;
            Ok((fd, sock, extra))
        })();
        match made {
            Ok((fd, sock, extra)) => Ok((
                Created {
                    name: name.clone(),
                    fd,
                    sock,
                },
                extra,
            )),
            Err(e) => {
                // Nothing holds the new namespace but this thread and the socket: it dies when
                // the thread moves on. Only the placeholder needs removing.
                let _ = fs::remove_file(&path);
                Err(e)
            }
        }
    }
}

/// Runs `f` once inside each namespace in `fds`, all on one scoped thread that enters them in
/// turn (the thread ends afterwards, so no other work ever runs in a borrowed namespace).
/// Returns one result per namespace, in order.
pub fn run_in_each<F, R>(
    fds: &[&OwnedFd],
    mut f: F,
) -> Result<Vec<Result<R, io::Error>>, NetnsError>
where
    F: FnMut(usize) -> R + Send,
    R: Send,
{
    std::thread::scope(|s| {
        s.spawn(|| {
            fds.iter()
                .enumerate()
                .map(|(i, fd)| sys::setns_net(fd.as_fd()).map(|()| f(i)))
                .collect::<Vec<_>>()
        })
        .join()
        .map_err(|_| NetnsError::Worker)
    })
}

/// Why a socket inside a namespace could not be had: entering it, or opening the socket.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SocketError {
    /// `setns` failed.
    #[error("cannot enter: {0}")]
    Enter(#[source] io::Error),
    /// The socket could not be opened.
    #[error(transparent)]
    Open(#[from] NetlinkError),
}

impl SocketError {
    /// The errno underneath, if any.
    pub fn errno(&self) -> Option<i32> {
        match self {
            SocketError::Enter(e) => e.raw_os_error(),
            SocketError::Open(e) => e.errno(),
        }
    }
}

/// Opens one netlink socket inside each namespace (on one thread that visits them in turn).
pub fn open_sockets(fds: &[&OwnedFd]) -> Result<Vec<Result<NlSocket, SocketError>>, NetnsError> {
    let results = run_in_each(fds, |_| NlSocket::open())?;
    Ok(results
        .into_iter()
        .map(|r| match r {
            Ok(Ok(s)) => Ok(s),
            Ok(Err(e)) => Err(SocketError::Open(e)),
            Err(e) => Err(SocketError::Enter(e)),
        })
        .collect())
}

/// Writes a sysctl of the calling thread's network namespace:
/// equivalent to `sysctl -w net.ipv4.ip_forward=1` run inside it.
pub fn write_sysctl(key: &str, value: &str) -> io::Result<()> {
    let rel: PathBuf = key.split('.').collect();
    fs::write(Path::new("/proc/sys").join(rel), value)
}

/// Reads a sysctl of the calling thread's network namespace.
pub fn read_sysctl(key: &str) -> io::Result<String> {
    let rel: PathBuf = key.split('.').collect();
    Ok(fs::read_to_string(Path::new("/proc/sys").join(rel))?
        .trim()
        .to_string())
}

/// Prepares the calling process to run a program inside `name`, the way `ip netns exec` does:
/// a private mount namespace, the network namespace, a fresh `/sys` that shows it, and the
/// files of `/etc/netns/NAME/` bind-mounted over their `/etc` counterparts.
/// The process must be single-threaded, and should `exec` right after: there is no way back.
pub fn enter_for_exec(reg: &Registry, r: &NsRef) -> Result<(), NetnsError> {
    let label = r.to_string();
    let err = |source| NetnsError::Enter {
        name: label.clone(),
        source,
    };
    let fd = r.open(reg)?;
    sys::unshare_mount().map_err(err)?;
    // Keep our mounts from propagating back to the parent mount namespace.
    sys::make_rslave(Path::new("/")).map_err(err)?;
    sys::setns_net(&fd).map_err(err)?;
    // /sys shows the namespace of whoever mounted it: mount one for this namespace, over the
    // old one whether or not that could be detached (as `ip netns exec` does). Best effort, as
    // iproute2: a failure leaves the old /sys, which only affects tools that read it.
    let _ = sys::detach_mount(Path::new("/sys"));
    let _ = sys::mount_fs("sysfs", Path::new("/sys"), None);
    if let NsRef::Name(n) = r {
        let etc = Path::new("/etc/netns").join(n.as_str());
        if let Ok(rd) = fs::read_dir(&etc) {
            for e in rd.flatten() {
                let target = Path::new("/etc").join(e.file_name());
                // Like iproute2: a file without a counterpart in /etc is skipped.
                let _ = sys::bind_mount(&e.path(), &target);
            }
        }
    }
    Ok(())
}

/// Turns the calling process into a sandbox: new user, network and mount namespaces (no
/// privilege needed), mounts private to it, a tmpfs on `/run` (so `/run/netns` and plumb's locks
/// are its own), a `/sys` of its network namespace, and `lo` up. Everything vanishes when the
/// last process inside exits. Must be called while single-threaded.
pub fn enter_sandbox() -> Result<(), NetnsError> {
    let err = |source| NetnsError::Enter {
        name: "sandbox".into(),
        source,
    };
    sys::unshare_user_net_mount().map_err(err)?;
    sys::make_rprivate(Path::new("/")).map_err(err)?;
    sys::mount_fs("tmpfs", Path::new("/run"), Some("mode=0755")).map_err(err)?;
    fs::create_dir_all(NETNS_RUN_DIR).map_err(err)?;
    let _ = sys::detach_mount(Path::new("/sys"));
    let _ = sys::mount_fs("sysfs", Path::new("/sys"), None);
    let mut sock = NlSocket::open().map_err(|source| NetnsError::Socket {
        name: "sandbox".into(),
        source,
    })?;
    let up = crate::netlink::link::LinkChange {
        up: Some(true),
        ..Default::default()
    };
    for r in sock.execute(crate::netlink::link::set(
        crate::netlink::link::Target::Index(1),
        &up,
    )) {
        r.map_err(|source| NetnsError::Socket {
            name: "sandbox".into(),
            source,
        })?;
    }
    Ok(())
}
