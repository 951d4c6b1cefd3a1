//! Reading `/proc` and `mountinfo` for [`super::discover`]: namespace links, descriptors,
//! container ids in cgroup paths, nsfs mounts. Pure parsing where it can be, so it is tested
//! without a kernel.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::discover::{Container, NsIdentity};

/// `net:[4026531840]` -> 4026531840 (also `mnt:[…]`).
pub(super) fn ns_inode(link: &str, kind: &str) -> Option<u64> {
    link.strip_prefix(kind)?
        .strip_prefix(":[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

pub(super) fn read_link_inode(path: &Path, kind: &str) -> Result<Option<u64>, std::io::Error> {
    let l = fs::read_link(path)?;
    Ok(l.to_str().and_then(|s| ns_inode(s, kind)))
}

/// The namespace an open descriptor (`/proc/PID/fd/N`) refers to, if it is a network
/// namespace. One opened through `/proc/…/ns/net` reads `net:[INODE]`; one opened through a bind
/// mount reads as the mount's path (or `/` once unmounted): those on nsfs (`nsfs_dev`) are asked
/// their type.
pub(super) fn fd_namespace(link: &Path, nsfs_dev: Option<u64>) -> Option<NsIdentity> {
    let target = fs::read_link(link).ok()?;
    let t = target.to_str()?;
    if let Some(n) = ns_inode(t, "net") {
        return Some(n);
    }
    if !t.starts_with('/') {
        return None;
    }
    let m = fs::metadata(link).ok()?;
    if Some(m.dev()) != nsfs_dev {
        return None;
    }
    let f = fs::File::open(link).ok()?;
    crate::sys::is_net_namespace(&f).then(|| m.ino())
}

/// The Docker sandbox id of a bind mount under `…/docker/netns/ID`.
pub(super) fn docker_sandbox(path: &Path) -> Option<&str> {
    let parent = path.parent()?;
    (parent.ends_with("docker/netns"))
        .then(|| path.file_name()?.to_str())
        .flatten()
}

pub(super) fn is_hex_id(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The container a process belongs to, from the lines of `/proc/PID/cgroup`: systemd scopes
/// (`docker-ID.scope`, `cri-containerd-ID.scope`, `crio-ID.scope`, `libpod-ID.scope`) and
/// cgroupfs paths (`/docker/ID`, `/libpod_parent/libpod-ID`, `…/kubepods/…/ID`).
pub fn container_of_cgroup(cgroup: &str) -> Option<Container> {
    for line in cgroup.lines() {
        let path = line.splitn(3, ':').nth(2).unwrap_or("");
        let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
        for (i, part) in parts.iter().enumerate() {
            let part = part.strip_suffix(".scope").unwrap_or(part);
            for (prefix, runtime) in [
                ("docker-", "docker"),
                ("cri-containerd-", "containerd"),
                ("crio-", "cri-o"),
                ("libpod-", "podman"),
            ] {
                if let Some(id) = part.strip_prefix(prefix) {
                    if is_hex_id(id) {
                        return Some(Container {
                            runtime: runtime.into(),
                            id: id.into(),
                        });
                    }
                }
            }
            if is_hex_id(part) && i > 0 {
                let runtime = match parts[i - 1] {
                    "docker" => "docker",
                    p if p.starts_with("kubepods") || p.starts_with("pod") => "containerd",
                    _ => continue,
                };
                return Some(Container {
                    runtime: runtime.into(),
                    id: part.to_string(),
                });
            }
        }
    }
    None
}

/// The nsfs mounts of network namespaces in a `mountinfo`: (mount point, namespace).
pub fn nsfs_mounts(mountinfo: &str) -> Vec<(PathBuf, NsIdentity)> {
    mountinfo
        .lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            if right.split(' ').next()? != "nsfs" {
                return None;
            }
            let f: Vec<&str> = left.split(' ').collect();
            let id = ns_inode(f.get(3)?, "net")?;
            Some((PathBuf::from(unescape(f.get(4)?)), id))
        })
        .collect()
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
pub(super) fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() && b[i + 1..=i + 3].iter().all(u8::is_ascii_digit) {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgroups_name_their_containers() {
        let id = "a".repeat(64);
        let cases = [
            (format!("0::/system.slice/docker-{id}.scope"), "docker"),
            (format!("12:pids:/docker/{id}"), "docker"),
            (
                format!("0::/kubepods.slice/kubepods-besteffort.slice/cri-containerd-{id}.scope"),
                "containerd",
            ),
            (
                format!("0::/machine.slice/libpod-{id}.scope/container"),
                "podman",
            ),
            (format!("0::/libpod_parent/libpod-{id}"), "podman"),
            (
                format!("0::/kubepods/besteffort/pod1234/{id}"),
                "containerd",
            ),
            (format!("0::/system.slice/crio-{id}.scope"), "cri-o"),
        ];
        for (cg, runtime) in cases {
            let c = container_of_cgroup(&cg).unwrap_or_else(|| panic!("{cg}"));
            assert_eq!((c.runtime.as_str(), c.id.as_str()), (runtime, id.as_str()));
        }
        assert_eq!(container_of_cgroup("0::/user.slice/session-1.scope"), None);
        assert_eq!(
            container_of_cgroup(&format!("0::/libpod_parent/libpod-conmon-{id}")),
            None
        );
    }

    #[test]
    fn mountinfo_nsfs_entries_of_network_namespaces() {
        let info = "\
36 35 0:4 net:[4026532281] /run/netns/ns1 rw shared:5 - nsfs nsfs rw
37 35 0:4 mnt:[4026532100] /run/mnt1 rw - nsfs nsfs rw
38 35 0:4 net:[4026532300] /run/docker/netns/abc\\040def rw - nsfs nsfs rw
39 35 0:30 / /run rw - tmpfs tmpfs rw";
        assert_eq!(
            nsfs_mounts(info),
            [
                (PathBuf::from("/run/netns/ns1"), 4026532281),
                (PathBuf::from("/run/docker/netns/abc def"), 4026532300)
            ]
        );
        assert_eq!(
            docker_sandbox(Path::new("/run/docker/netns/abc")),
            Some("abc")
        );
        assert_eq!(docker_sandbox(Path::new("/run/netns/abc")), None);
    }
}
