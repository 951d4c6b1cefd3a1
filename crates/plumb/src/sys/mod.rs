//! The only module that may use `unsafe`: thin wrappers over the syscalls plumb needs that no
//! safe API covers (`unshare`), plus the mount and namespace calls, so that the rest of the crate
//! speaks in owned file descriptors and typed errors.
//!
//! Invariant: every function here acts on the calling *thread* (network namespaces belong to
//! threads); callers that change a thread's network namespace do so on a thread they own and end.
#![allow(unsafe_code)]

pub mod packet;

use std::fs;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use rustix::mount::{MountFlags, MountPropagationFlags, UnmountFlags};
use rustix::thread::{LinkNameSpaceType, UnshareFlags};

/// Moves the calling thread into a new, empty network namespace.
///
/// Equivalent to the kernel half of `ip netns add`: `unshare(CLONE_NEWNET)`.
pub fn unshare_net() -> io::Result<()> {
    // SAFETY: CLONE_NEWNET only changes the calling thread's network namespace; it does not
    // unshare the file table (CLONE_FILES), which is the flag that makes unshare unsafe.
    unsafe { rustix::thread::unshare_unsafe(UnshareFlags::NEWNET) }.map_err(io::Error::from)
}

/// Moves the calling thread into the network namespace `fd` refers to (`setns(fd, CLONE_NEWNET)`).
pub fn setns_net(fd: impl AsFd) -> io::Result<()> {
    rustix::thread::move_into_link_name_space(fd.as_fd(), Some(LinkNameSpaceType::Network))
        .map_err(io::Error::from)
}

/// Opens the calling thread's current network namespace (`/proc/thread-self/ns/net`).
pub fn open_current_net() -> io::Result<OwnedFd> {
    Ok(fs::File::open("/proc/thread-self/ns/net")?.into())
}

/// Whether `fd` is a network namespace file (`ioctl(fd, NS_GET_NSTYPE) == CLONE_NEWNET`): a
/// descriptor opened through a bind mount reads as a path, not `net:[…]`, in `/proc/PID/fd`.
pub fn is_net_namespace(fd: impl AsFd) -> bool {
    /// `NS_GET_NSTYPE` from `<linux/nsfs.h>`: `_IO(0xb7, 0x3)`.
    const NS_GET_NSTYPE: libc::c_ulong = 0xb703;
    let fd = fd.as_fd();
    // SAFETY: NS_GET_NSTYPE takes no argument and only reads the descriptor's namespace type;
    // on any other file it fails with ENOTTY. The descriptor is borrowed for the call.
    let r = unsafe { libc::ioctl(std::os::fd::AsRawFd::as_raw_fd(&fd), NS_GET_NSTYPE) };
    r == libc::CLONE_NEWNET
}

/// The network namespace cookie of the namespace a socket belongs to (`SO_NETNS_COOKIE`,
/// Linux 5.14 and later): a 64-bit identity the kernel never reuses while it runs.
pub fn netns_cookie(sock: impl AsFd) -> io::Result<u64> {
    /// `SO_NETNS_COOKIE` from `<asm-generic/socket.h>`.
    const SO_NETNS_COOKIE: libc::c_int = 71;
    let mut cookie: u64 = 0;
    let mut len = std::mem::size_of::<u64>() as libc::socklen_t;
    // SAFETY: the kernel writes at most `len` bytes into `cookie`, a u64 that lives across the
    // call; the descriptor is borrowed for the call.
    let r = unsafe {
        libc::getsockopt(
            std::os::fd::AsRawFd::as_raw_fd(&sock.as_fd()),
            libc::SOL_SOCKET,
            SO_NETNS_COOKIE,
            std::ptr::addr_of_mut!(cookie).cast(),
            &mut len,
        )
    };
    if r == 0 {
        Ok(cookie)
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Bind-mounts `source` onto `target` (`mount --bind`).
pub fn bind_mount(source: &Path, target: &Path) -> io::Result<()> {
    rustix::mount::mount_bind(source, target).map_err(io::Error::from)
}

/// Recursive bind mount (`mount --rbind`).
pub fn rbind_mount(source: &Path, target: &Path) -> io::Result<()> {
    rustix::mount::mount_bind_recursive(source, target).map_err(io::Error::from)
}

/// Makes the mount at `target` shared (`mount --make-shared`).
pub fn make_shared(target: &Path) -> io::Result<()> {
    rustix::mount::mount_change(target, MountPropagationFlags::SHARED).map_err(io::Error::from)
}

/// Makes every mount below `target` private, recursively (`mount --make-rprivate`).
pub fn make_rprivate(target: &Path) -> io::Result<()> {
    rustix::mount::mount_change(
        target,
        MountPropagationFlags::PRIVATE | MountPropagationFlags::REC,
    )
    .map_err(io::Error::from)
}

/// Makes every mount below `target` a slave, recursively (`mount --make-rslave`).
pub fn make_rslave(target: &Path) -> io::Result<()> {
    rustix::mount::mount_change(
        target,
        MountPropagationFlags::DOWNSTREAM | MountPropagationFlags::REC,
    )
    .map_err(io::Error::from)
}

/// Lazily unmounts `target` (`umount -l`).
pub fn detach_mount(target: &Path) -> io::Result<()> {
    rustix::mount::unmount(target, UnmountFlags::DETACH).map_err(io::Error::from)
}

/// Mounts a fresh filesystem of type `fstype` at `target`.
pub fn mount_fs(fstype: &str, target: &Path, data: Option<&str>) -> io::Result<()> {
    let data = data
        .map(std::ffi::CString::new)
        .transpose()
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    rustix::mount::mount(fstype, target, fstype, MountFlags::empty(), data.as_deref())
        .map_err(io::Error::from)
}

/// Leaves the current mount namespace for a private copy (`unshare(CLONE_NEWNS)`).
/// Fails in a multi-threaded process (the kernel refuses it), so call it before spawning threads.
pub fn unshare_mount() -> io::Result<()> {
    // SAFETY: CLONE_NEWNS does not touch the file table.
    unsafe { rustix::thread::unshare_unsafe(UnshareFlags::NEWNS) }.map_err(io::Error::from)
}

/// Enters new user, network and mount namespaces, mapping the caller to root inside.
/// Must be called while the process is single-threaded.
pub fn unshare_user_net_mount() -> io::Result<()> {
    let uid = rustix::process::getuid().as_raw();
    let gid = rustix::process::getgid().as_raw();
    // SAFETY: no CLONE_FILES; the process is single-threaded (the kernel refuses CLONE_NEWUSER
    // otherwise, with EINVAL), so no other thread can observe the change.
    unsafe {
        rustix::thread::unshare_unsafe(
            UnshareFlags::NEWUSER | UnshareFlags::NEWNET | UnshareFlags::NEWNS,
        )
    }
    .map_err(io::Error::from)?;
    // An unprivileged process must deny setgroups before it may write a gid map.
    match fs::write("/proc/self/setgroups", "deny") {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    fs::write("/proc/self/uid_map", format!("0 {uid} 1"))?;
    fs::write("/proc/self/gid_map", format!("0 {gid} 1"))?;
    Ok(())
}

/// Raises the soft limit on open files to the hard limit: a lab of a thousand namespaces holds
/// a namespace file and a netlink socket for each.
pub fn raise_nofile_limit() {
    let lim = rustix::process::getrlimit(rustix::process::Resource::Nofile);
    if lim.current < lim.maximum {
        let new = rustix::process::Rlimit {
            current: lim.maximum,
            maximum: lim.maximum,
        };
        // Best effort: with the old limit plumb still works, only for smaller labs.
        let _ = rustix::process::setrlimit(rustix::process::Resource::Nofile, new);
    }
}

/// The number of threads of the calling process (`Threads:` in `/proc/self/status`).
pub fn thread_count() -> io::Result<usize> {
    let status = fs::read_to_string("/proc/self/status")?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no Threads: line"))
}

/// Runs `f` in a child process that outlives the caller: a copy of this process (`fork`, no
/// new program) in its own session, with standard input, output and error on `/dev/null` and
/// every other inherited descriptor closed, which ends with `f` (`_exit(0)`, no destructors,
/// no buffered output flushed twice). Whoever waits for the caller's exit or for the end of
/// its output does not wait for `f`.
///
/// Refused (`EBUSY`) unless the process has a single thread: a child forked from a threaded
/// process may inherit a lock (of the allocator, of stdio) that another thread held.
pub fn run_detached(f: impl FnOnce()) -> io::Result<()> {
    if thread_count()? != 1 {
        return Err(io::Error::from_raw_os_error(libc::EBUSY));
    }
    let null = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")?;
    // SAFETY: the process has one thread (checked above), so the child's copy of the heap and
    // of every lock is consistent; the child only rearranges its own descriptors, runs `f` and
    // leaves with `_exit`, never returning into the caller's frames.
    match unsafe { libc::fork() } {
        -1 => Err(io::Error::last_os_error()),
        0 => {
            let null = std::os::fd::AsRawFd::as_raw_fd(&null);
            // SAFETY: plain descriptor calls on the child's own table; descriptors 0-2 are
            // replaced, the rest (the caller's locks, pipes and sockets) closed, so nothing of
            // the parent's is held for longer than the parent holds it. `f` opens what it uses.
            unsafe {
                libc::setsid();
                for fd in 0..3 {
                    libc::dup2(null, fd);
                }
                libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32);
            }
            f();
            // SAFETY: ends the child without running the parent's destructors or atexit
            // handlers (which belong to the parent's objects).
            unsafe { libc::_exit(0) }
        }
        _ => Ok(()),
    }
}

/// Is `errno` of `err` equal to `code`?
pub fn is_errno(err: &io::Error, code: i32) -> bool {
    err.raw_os_error() == Some(code)
}

pub use libc::{EINVAL, ENOENT};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_threaded_process_is_not_forked() {
        // A second thread, alive until the refusal has been seen.
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let t = std::thread::spawn(move || rx.recv().ok());
        assert!(thread_count().expect("reads /proc/self/status") >= 2);
        let e = run_detached(|| {}).expect_err("a fork from a threaded process");
        assert_eq!(e.raw_os_error(), Some(libc::EBUSY), "{e}");
        tx.send(()).expect("the thread waits");
        t.join().expect("the thread ends");
    }
}
