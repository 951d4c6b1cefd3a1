//! The test kit's own tests, on sandboxes made with `unshare` (no plumb needed).

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
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
fn wait_until_condition_met_returns() {
    let sb = Sandbox::unshare();
    sb.wait_until(Duration::from_secs(1), "lo exists", |s| {
        s.link(None, "lo").is_some()
    });
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
