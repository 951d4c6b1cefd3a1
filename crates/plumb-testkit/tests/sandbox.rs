//! The test kit's own tests, on sandboxes made with `unshare` (no plumb needed).

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use plumb_testkit::{Sandbox, TempDir};

#[test]
fn sandbox_fresh_has_only_loopback_and_no_namespaces() {
    let sb = Sandbox::unshare();
    assert_eq!(sb.link_names(None), vec!["lo".to_string()]);
    assert!(sb.netns_list().is_empty());
    assert!(sb.tagged().is_empty());
}

#[test]
fn sandbox_objects_made_inside_stay_invisible_outside() {
    let sb = Sandbox::unshare();
    sb.sh_ok("ip link add tk-probe0 type veth peer name tk-probe1 && ip netns add tkns");
    assert!(sb.link(None, "tk-probe0").is_some());
    assert_eq!(sb.netns_list(), vec!["tkns".to_string()]);
    // Read-only look at the test's own namespace and /run.
    assert!(!Path::new("/sys/class/net/tk-probe0").exists());
    assert!(!Path::new("/run/netns/tkns").exists());
}

#[test]
fn sandbox_veth_pair_across_namespaces_pings() {
    let sb = Sandbox::unshare();
    sb.sh_ok(
        "ip netns add a && ip link add va type veth peer name eth0 netns a && \
         ip link set dev va alias plumb:tk && ip -n a link set dev lo alias plumb:tk && \
         ip addr add 10.99.0.1/24 dev va && ip link set va up && \
         ip -n a addr add 10.99.0.2/24 dev eth0 && ip -n a link set eth0 up && ip -n a link set lo up",
    );
    sb.ping_ok(Some("a"), "10.99.0.1");
    assert_eq!(
        sb.ipv4_addrs(Some("a"), "eth0"),
        vec!["10.99.0.2/24".to_string()]
    );
    assert_eq!(
        sb.tagged(),
        vec!["a/lo=plumb:tk".to_string(), "host/va=plumb:tk".to_string()]
    );
    let va = sb.link(None, "va").expect("va exists");
    assert_eq!(va["link_netnsid"].as_i64(), sb.netns_id(None, "a"));
}

#[test]
fn snapshot_unchanged_state_is_equal_and_changed_state_differs() {
    let sb = Sandbox::unshare();
    sb.sh_ok("ip netns add a && ip link add br0 type bridge && ip link set br0 up");
    let before = sb.settled_snapshot();
    assert_eq!(before, sb.settled_snapshot());
    sb.sh_ok("ip link del br0 && ip link add br0 type bridge && ip link set br0 up");
    assert_ne!(
        before,
        sb.settled_snapshot(),
        "a recreated bridge has a new ifindex"
    );
    sb.sh_ok("ip netns del a");
    let mut expected = before.clone();
    expected["netns"] = serde_json::json!([]);
    expected["nodes"].as_object_mut().unwrap().remove("a");
    let recreated = sb.snapshot()["nodes"]["host"].clone();
    expected["nodes"]["host"] = recreated;
    sb.assert_state_eventually(&expected, Duration::from_secs(5), "after ip netns del a");
}

#[test]
fn sandbox_drop_ends_the_holder() {
    let sb = Sandbox::unshare();
    let pid = sb.pid();
    assert!(Path::new(&format!("/proc/{pid}")).exists());
    drop(sb);
    assert!(!Path::new(&format!("/proc/{pid}/ns/net")).exists());
}

#[test]
fn wait_until_polls_until_the_condition_holds() {
    let sb = Sandbox::unshare();
    let mut calls = 0;
    sb.wait_until(Duration::from_secs(30), "the third look", |_| {
        calls += 1;
        calls == 3
    });
    assert_eq!(
        calls, 3,
        "wait_until must look again until the condition holds"
    );
}

#[test]
#[should_panic(expected = "timed out after 300ms waiting until never")]
fn wait_until_condition_never_met_panics() {
    let sb = Sandbox::unshare();
    sb.wait_until(Duration::from_millis(300), "never", |_| false);
}

/// Holds a TCP listener on 7001 and a UDP socket on 7002 until its stdin closes.
const LISTENER_PY: &str = r#"
import socket, sys
t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
t.bind(("0.0.0.0", 7001))
t.listen(4)
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.bind(("0.0.0.0", 7002))
print("ready", file=sys.stderr, flush=True)
sys.stdin.read()
"#;

#[test]
fn listening_and_pids_in_netns_see_a_listener_and_its_end() {
    let sb = Sandbox::unshare();
    sb.run_ok(&["ip", "netns", "add", "a"]);
    sb.run_ok(&["ip", "-n", "a", "link", "set", "lo", "up"]);
    assert!(sb.listening(Some("a")).is_empty());
    assert!(sb.pids_in_netns("a").is_empty());

    let mut cmd = sb.command(&["ip", "netns", "exec", "a", "python3", "-c", LISTENER_PY]);
    cmd.stdin(Stdio::piped());
    let mut child = sb.spawn_until_stderr(cmd, "ready", Duration::from_secs(30));
    assert_eq!(
        sb.listening(Some("a")),
        ["tcp 0.0.0.0:7001", "udp 0.0.0.0:7002"]
    );
    assert!(
        sb.listening(None).is_empty(),
        "the sandbox's own namespace has a's sockets"
    );
    // nsenter and `ip netns exec` both exec: the child is the python process itself.
    assert_eq!(sb.pids_in_netns("a"), [child.id()]);

    drop(child.stdin.take());
    let status = child.wait().expect("wait for the listener");
    assert!(status.success(), "the listener failed: {status}");
    assert!(sb.listening(Some("a")).is_empty());
    assert!(sb.pids_in_netns("a").is_empty());
}

#[test]
#[should_panic(expected = "is listed but cannot be read")]
fn tagged_listed_namespace_that_cannot_be_read_panics() {
    // A file in /run/netns that is not a namespace: `ip netns list` shows it, `ip -n` fails.
    // Skipping it silently could hide a leftover from a "nothing is tagged" assertion.
    let sb = Sandbox::unshare();
    sb.sh_ok("mkdir -p /run/netns && touch /run/netns/stale");
    assert_eq!(sb.netns_list(), ["stale"]);
    let _ = sb.tagged();
}

#[test]
#[should_panic(expected = "cannot create a sandbox")]
fn sandbox_missing_binary_panics() {
    let _ = Sandbox::new(Path::new("/nonexistent/plumb"));
}

#[test]
#[should_panic(expected = "not in a new")]
fn sandbox_binary_that_does_not_isolate_panics() {
    // A fake `plumb` that runs the holder in the test's own namespaces: the kit must refuse it.
    let dir = TempDir::new();
    let fake = dir.write("plumb", "#!/bin/sh\nshift 2\nexec \"$@\"\n");
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let _ = Sandbox::new(&fake);
}

#[test]
#[should_panic(expected = "exited before saying ready")]
fn sandbox_binary_that_exits_before_ready_panics() {
    let dir = TempDir::new();
    let fake = dir.write("plumb", "#!/bin/sh\necho 'no sandbox here'\nexit 3\n");
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let _ = Sandbox::new(&fake);
}

#[test]
fn sandbox_can_be_shared_between_a_tests_threads() {
    // Tests probe several paths at once from scoped threads that share one sandbox.
    fn shared<T: Send + Sync>() {}
    shared::<Sandbox>();
}
