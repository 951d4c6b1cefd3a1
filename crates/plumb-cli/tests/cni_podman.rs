//! End to end with a real container runtime that speaks CNI: Podman (Debian's 4.3, with
//! `network_backend = "cni"`) runs a container from a busybox-static root filesystem imported
//! locally, on a network plumb provides as `plumb-cni`; the container is reached directly and
//! through a published port from an upstream namespace, and removing it detaches it.
//!
//! Runs as root inside `unshare --net --mount --propagation private` with a private `/run` (and
//! `/run/netns` shared, as iproute2 leaves it), keeping the machine's `/sys` for the cgroups
//! runc needs; Podman's storage is private (`--root` in a temporary directory, `--runroot` in
//! the private `/run`, vfs driver). Needs `podman`, `runc`, `busybox-static`, `python3`,
//! `nftables`, `util-linux`, `iproute2`.

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

use plumb_testkit::describe;
use serde_json::Value;

/// The whole scenario; `$1` is the plumb binary. Prints `KEY VALUE` lines.
const SCRIPT: &str = r#"set -eu
PLUMB=$1
mount -t tmpfs -o mode=0755 tmpfs /run
mkdir -p /run/netns && mount --bind /run/netns /run/netns && mount --make-shared /run/netns
ip link set lo up
W=$(mktemp -d /tmp/plumb-podman.XXXXXX)
mkdir -p $W/rootfs/bin $W/rootfs/www $W/plugins $W/net.d
cp /bin/busybox $W/rootfs/bin/
for c in sh httpd wget sleep cat; do ln -s busybox $W/rootfs/bin/$c; done
echo hello-from-plumb > $W/rootfs/www/index.html
tar -C $W/rootfs -cf $W/rootfs.tar .
ln -s "$PLUMB" $W/plugins/plumb-cni
cat > $W/net.d/plumbnet.conflist <<JSON
{"cniVersion": "1.0.0", "name": "plumbnet", "plugins": [{"type": "plumb-cni", "bridge": "cni-plumb0",
 "isGateway": true, "isDefaultGateway": true, "ipMasq": true,
 "ipam": {"type": "host-local", "subnet": "10.77.0.0/24", "routes": [{"dst": "0.0.0.0/0"}], "dataDir": "$W/ipam"},
 "capabilities": {"portMappings": true}}]}
JSON
hard=$(ulimit -Hn)
cat > $W/containers.conf <<TOML
[containers]
default_ulimits = ["nofile=$hard:$hard", "nproc=4096:4096"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
[network]
network_backend = "cni"
cni_plugin_dirs = ["$W/plugins", "/usr/lib/cni"]
network_config_dir = "$W/net.d"
TOML
export CONTAINERS_CONF=$W/containers.conf
P="podman --root $W/root --runroot /run/podman-run --storage-driver vfs --cgroup-manager cgroupfs"
cleanup() { $P rm -af -t 0 >/dev/null 2>&1 || true; grep -o " $W[^ ]*" /proc/self/mounts | sort -r | xargs -r -n1 umount 2>/dev/null || true; rm -rf "$W"; }
trap cleanup EXIT
ip netns add upstream
ip link add up0 type veth peer name eth0 netns upstream
ip addr add 203.0.113.1/24 dev up0; ip link set up0 up
ip -n upstream addr add 203.0.113.2/24 dev eth0; ip -n upstream link set eth0 up; ip -n upstream link set lo up
$P import -q $W/rootfs.tar localhost/bb:latest >/dev/null
$P run -d --name web --network plumbnet --pull=never -p 203.0.113.1:8080:80 localhost/bb:latest httpd -f -p 80 -h /www
ip=$($P inspect web --format '{{.NetworkSettings.Networks.plumbnet.IPAddress}}')
echo "ip $ip"
get() { python3 -c 'import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=2).read().decode().strip())' "$1"; }
direct=""
for _ in $(seq 50); do direct=$(get "http://$ip/index.html" 2>/dev/null) && break; sleep 0.1; done
echo "direct $direct"
echo "published $(ip netns exec upstream python3 -c 'import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=2).read().decode().strip())' http://203.0.113.1:8080/index.html 2>&1 | tail -n 1)"
echo "reserved_before $(ls $W/ipam/plumbnet | tr '\n' ' ')"
echo "veths_before $(ip -j link show type veth)"
PORTS_BEFORE=$(nft -j list map inet plumb-cni-plumbnet tcp4h)
$P rm -f -t 0 web >/dev/null
echo "reserved_after $(ls $W/ipam/plumbnet | tr '\n' ' ')"
echo "veths_after $(ip -j link show type veth)"
echo "ports_before_rm $PORTS_BEFORE"
echo "ports_after $(nft -j list map inet plumb-cni-plumbnet tcp4h)"
"#;

fn lines(stdout: &str) -> HashMap<String, String> {
    stdout
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(k, v)| (k.to_string(), v.trim().to_string()))
        .collect()
}

fn json(map: &HashMap<String, String>, key: &str) -> Value {
    let text = map.get(key).unwrap_or_else(|| panic!("no {key} line"));
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{key}: {e}: {text}"))
}

/// The host veth ends plumb tagged for the CNI network.
fn plumb_veths(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter(|l| {
            l["ifalias"]
                .as_str()
                .is_some_and(|a| a.starts_with("plumb:cni net=plumbnet "))
        })
        .filter_map(|l| l["ifname"].as_str().map(str::to_string))
        .collect()
}

#[test]
fn podman_runs_a_container_on_a_plumb_network() {
    let uid = Command::new("id").arg("-u").output().expect("id -u");
    assert_eq!(
        String::from_utf8_lossy(&uid.stdout).trim(),
        "0",
        "the Podman end-to-end test runs as root (inside its own network + mount namespace)"
    );
    for tool in ["podman", "runc", "busybox", "unshare", "nft", "python3"] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output();
        assert!(
            found.is_ok_and(|o| o.status.success()),
            "{tool} is missing: apt-get install -y podman runc busybox-static nftables python3 util-linux"
        );
    }
    let plumb = Path::new(env!("CARGO_BIN_EXE_plumb"));
    let out = Command::new("unshare")
        .args([
            "--net",
            "--mount",
            "--propagation",
            "private",
            "--",
            "bash",
            "-c",
            SCRIPT,
            "podman-e2e",
        ])
        .arg(plumb)
        .output()
        .expect("cannot start unshare");
    assert!(
        out.status.success(),
        "the Podman scenario failed\n{}",
        describe(&out)
    );
    let m = lines(&String::from_utf8_lossy(&out.stdout));
    let ip = m.get("ip").cloned().unwrap_or_default();
    assert!(
        ip.starts_with("10.77.0."),
        "container address {ip:?}\n{}",
        describe(&out)
    );
    assert_eq!(
        m.get("direct").map(String::as_str),
        Some("hello-from-plumb"),
        "{}",
        describe(&out)
    );
    assert_eq!(
        m.get("published").map(String::as_str),
        Some("hello-from-plumb"),
        "{}",
        describe(&out)
    );
    let before: Vec<&str> = m["reserved_before"].split_whitespace().collect();
    assert!(
        before.contains(&ip.as_str()),
        "plumb's store should hold {ip}: {before:?}"
    );
    assert_eq!(
        plumb_veths(&json(&m, "veths_before")).len(),
        1,
        "{}",
        describe(&out)
    );
    let after: Vec<&str> = m["reserved_after"].split_whitespace().collect();
    assert!(
        !after.contains(&ip.as_str()),
        "podman rm should release {ip}: {after:?}"
    );
    assert!(
        plumb_veths(&json(&m, "veths_after")).is_empty(),
        "{}",
        describe(&out)
    );
    let map = |key: &str| -> Value {
        json(&m, key)["nftables"]
            .as_array()
            .into_iter()
            .flatten()
            .find_map(|o| o.get("map"))
            .cloned()
            .unwrap_or_else(|| panic!("{key}: no map tcp4h"))
    };
    let before = map("ports_before_rm");
    assert!(
        common::json_mentions(&before["elem"], &ip),
        "the published port should map to {ip}: {before}"
    );
    let after = map("ports_after");
    assert!(
        after.get("elem").is_none(),
        "elements left after podman rm: {after}"
    );
}
