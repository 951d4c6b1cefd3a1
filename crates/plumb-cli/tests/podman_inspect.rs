//! `plumb inspect` against a container runtime no one here wrote: Podman (Debian's package, CNI
//! backend, runc) runs a container from a busybox-static root filesystem built on the spot, and
//! `plumb inspect` must find the container's namespace, name the container, and resolve the
//! host-side veth to the container's `eth0`. Expectations come from `podman inspect` and
//! `/proc`, not from plumb.
//!
//! Podman runs as root inside a sandbox, as the rest of the suite's kernel tests do: a fresh
//! network + mount namespace with a private `/run` (the machine's `/sys` is kept: runc needs its
//! cgroup mounts), private storage directories, no image pulled. This test needs root and the
//! `podman`, `runc` and `busybox-static` packages (`.ci/run` installs them); without them it
//! fails and says so.

mod common;

use std::process::Command;

use common::*;
use plumb_testkit::describe;
use serde_json::Value;

const SCRIPT: &str = r#"
set -eu
mount -t tmpfs tmpfs /run
mkdir -p /run/netns && mount --bind /run/netns /run/netns && mount --make-shared /run/netns
W=$WORK
mkdir -p $W/rootfs/bin $W/cni
cp /bin/busybox $W/rootfs/bin/busybox
for app in sh sleep ip; do ln -s busybox $W/rootfs/bin/$app; done
hard=$(ulimit -Hn)
cat > $W/containers.conf <<EOF
[containers]
default_ulimits = ["nofile=$hard:$hard", "nproc=4096:4096"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
[network]
network_backend = "cni"
cni_plugin_dirs = ["/usr/lib/cni"]
network_config_dir = "$W/cni"
EOF
export CONTAINERS_CONF=$W/containers.conf
P="podman --root $W/root --runroot /run/podman-run --storage-driver vfs"
trap '$P rm -f -t 0 plumbtest >/dev/null 2>&1 || true' EXIT
tar -C $W/rootfs -c . | $P import -q - localhost/plumb-bb:1 >/dev/null
CID=$($P run -d --pull=never --name plumbtest localhost/plumb-bb:1 sleep 600)
PID=$($P inspect --format '{{.State.Pid}}' $CID)
echo "cid $CID"
echo "pid $PID"
echo "netns $(readlink /proc/$PID/ns/net)"
echo "eth0 $(nsenter -t $PID -n ip -j link show eth0)"
$PLUMB inspect --json > $W/inspect.json
$PLUMB inspect "podman:$(echo $CID | cut -c1-12):eth0" > $W/sentence.txt
"#;

#[test]
fn inspect_finds_a_podman_containers_namespace_and_its_veth() {
    let uid = Command::new("id").arg("-u").output().expect("id -u");
    assert_eq!(
        String::from_utf8_lossy(&uid.stdout).trim(),
        "0",
        "this test runs Podman and needs root (CI runs as root): run `cargo test` as root"
    );
    for tool in ["podman", "runc", "busybox"] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .expect("sh");
        assert!(
            found.status.success(),
            "{tool} is missing: apt-get install -y podman runc busybox-static"
        );
    }
    let work = plumb_testkit::TempDir::new();
    let out = Command::new("unshare")
        .args([
            "--net",
            "--mount",
            "--propagation",
            "private",
            "--",
            "sh",
            "-c",
            SCRIPT,
        ])
        .env("WORK", work.path())
        .env("PLUMB", env!("CARGO_BIN_EXE_plumb"))
        .output()
        .expect("run the Podman sandbox");
    assert_exit(&out, 0, "podman run + plumb inspect in a sandbox");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let field = |k: &str| -> String {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{k} ")))
            .unwrap_or_else(|| panic!("no {k} in {}", describe(&out)))
            .to_string()
    };
    let cid = field("cid");
    let pid: u64 = field("pid").parse().expect("a pid");
    let netns: u64 = field("netns")
        .trim_start_matches("net:[")
        .trim_end_matches(']')
        .parse()
        .expect("net:[INODE]");
    let eth0: Value = serde_json::from_str(&field("eth0")).expect("ip -j link");
    let eth0_peer_index = eth0[0]["link_index"].as_u64().expect("link_index");

    let doc: Value = serde_json::from_str(
        &std::fs::read_to_string(work.path().join("inspect.json")).expect("inspect.json"),
    )
    .expect("inspect --json is JSON");
    let nss = doc["namespaces"].as_array().expect("namespaces");
    let mine: Vec<&Value> = nss.iter().filter(|n| n["id"] == netns).collect();
    assert_eq!(mine.len(), 1, "the container's namespace once: {doc:#}");
    let ns = mine[0];
    assert_eq!(ns["container"]["runtime"], "podman", "{ns:#}");
    assert_eq!(ns["container"]["id"], cid.as_str(), "{ns:#}");
    assert!(
        ns["pids"].as_array().expect("pids").contains(&pid.into()),
        "the container's process is in it: {ns:#}"
    );
    let e = ns["interfaces"]
        .as_array()
        .expect("interfaces")
        .iter()
        .find(|i| i["name"] == "eth0")
        .unwrap_or_else(|| panic!("eth0 in {ns:#}"));
    let host = nss.iter().find(|n| n["current"] == true).expect("host");
    assert_eq!(e["peer"]["namespace"], host["id"]);
    assert_eq!(e["peer"]["index"], eth0_peer_index);
    assert_eq!(e["peer"]["confirmed"], true);
    let host_end = host["interfaces"]
        .as_array()
        .expect("interfaces")
        .iter()
        .find(|i| i["index"] == eth0_peer_index)
        .expect("the host end");
    assert_eq!(host_end["peer"]["namespace"], netns);
    assert_eq!(host_end["peer"]["name"], "eth0");
    assert!(
        host_end["master"].as_str().is_some(),
        "Podman's bridge holds the host end: {host_end:#}"
    );
    let sentence = std::fs::read_to_string(work.path().join("sentence.txt")).expect("sentence.txt");
    assert!(
        sentence.contains(&format!(
            "is cabled to {} (ifindex {eth0_peer_index}) in host",
            host_end["name"].as_str().expect("name")
        )) && sentence.contains(&format!("podman container {}", &cid[..12])),
        "{sentence}"
    );
}
