//! The other subcommands: `exec`, `ls`, `show`, `sandbox`, file validation and exit codes.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;
use plumb_testkit::describe;

#[test]
fn exec_ns1_ip_addr_shows_eth1000_address() {
    let sb = sandbox();
    sb.plumb_ok(&["up", &example("seed.toml")]);
    let out = sb.plumb(&["exec", "ns1", "--", "ip", "-j", "addr"]);
    assert_exit(&out, 0, "plumb exec ns1 -- ip -j addr");
    let addrs = stdout_json(&out);
    let eth1000 = addrs
        .as_array()
        .and_then(|a| a.iter().find(|l| l["ifname"] == "eth1000"))
        .unwrap_or_else(|| panic!("no eth1000 in exec's view: {addrs}"));
    assert!(
        eth1000["addr_info"].as_array().is_some_and(|a| a
            .iter()
            .any(|x| x["local"] == "10.66.77.24" && x["prefixlen"] == 24)),
        "eth1000 lacks 10.66.77.24/24: {eth1000}"
    );
    // The same view as `ip netns exec ns1 ...`.
    let oracle = sb.run_ok(&[
        "ip",
        "netns",
        "exec",
        "ns1",
        "readlink",
        "/proc/self/ns/net",
    ]);
    let via_plumb = sb.plumb_ok(&["exec", "ns1", "--", "readlink", "/proc/self/ns/net"]);
    assert_eq!(String::from_utf8_lossy(&via_plumb.stdout), oracle);
}

#[test]
fn exec_command_exit_status_is_passed_through() {
    let sb = sandbox();
    sb.plumb_ok(&["up", &example("seed.toml")]);
    let out = sb.plumb(&["exec", "ns2", "--", "sh", "-c", "exit 7"]);
    assert_exit(&out, 7, "plumb exec ns2 -- sh -c 'exit 7'");
    let out = sb.plumb(&["exec", "nosuchnode", "--", "true"]);
    assert!(
        !out.status.success(),
        "exec in a missing node succeeded\n{}",
        describe(&out)
    );
}

#[test]
fn exec_etc_netns_hosts_is_bind_mounted_like_ip_netns_exec() {
    let sb = sandbox();
    // Shadow /etc with an overlay inside the sandbox's own mount namespace, so /etc/netns can be
    // written without touching the machine's /etc. Refuse if mounts could propagate out.
    let propagation = sb.run_ok(&["findmnt", "-n", "-o", "PROPAGATION", "-T", "/etc"]);
    assert!(
        !propagation.contains("shared"),
        "/etc in the sandbox is a shared mount: {propagation}"
    );
    let dir = sb.dir().to_str().unwrap().to_string();
    sb.sh_ok(&format!(
        "mkdir -p {dir}/etc-up {dir}/etc-work && \
         mount -t overlay overlay -o lowerdir=/etc,upperdir={dir}/etc-up,workdir={dir}/etc-work /etc && \
         mkdir -p /etc/netns/ns1 && echo '10.66.77.25 plumb-marker-host' > /etc/netns/ns1/hosts"
    ));
    assert!(
        !Path::new("/etc/netns/ns1/hosts").exists(),
        "the overlay leaked out of the sandbox"
    );
    sb.plumb_ok(&["up", &example("seed.toml")]);
    let oracle = sb.run_ok(&["ip", "netns", "exec", "ns1", "cat", "/etc/hosts"]);
    assert!(
        oracle.contains("plumb-marker-host"),
        "ip netns exec itself does not see it: {oracle}"
    );
    let out = sb.plumb_ok(&["exec", "ns1", "--", "cat", "/etc/hosts"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        oracle,
        "plumb exec ns1 sees another /etc/hosts"
    );
    let out = sb.plumb_ok(&["exec", "ns2", "--", "cat", "/etc/hosts"]);
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("plumb-marker-host"),
        "ns2 got ns1's hosts file"
    );
}

#[test]
fn ls_and_show_json_list_the_lab_with_counts() {
    let sb = sandbox();
    let ls = stdout_json(&sb.plumb_ok(&["ls", "--json"]));
    assert!(
        !json_mentions(&ls, "seed"),
        "ls --json on an empty sandbox mentions seed: {ls}"
    );

    sb.plumb_ok(&["up", &example("seed.toml")]);
    sb.plumb_ok(&["up", &example("star.toml")]);
    let ls = stdout_json(&sb.plumb_ok(&["ls", "--json"]));
    for lab in ["seed", "star"] {
        let entry =
            find_lab_entry(&ls, lab).unwrap_or_else(|| panic!("ls --json has no {lab}: {ls:#}"));
        // The seed has 2 namespaces and star 3: a count of namespaces must say so.
        let want = if lab == "seed" { 2 } else { 3 };
        assert!(
            json_has_count(entry, &["namespace", "netns", "node"], want),
            "ls --json entry for {lab} has no namespace count of {want}: {entry:#}"
        );
    }
    let text_ls = sb.plumb_ok(&["ls"]);
    let text_ls = String::from_utf8_lossy(&text_ls.stdout);
    assert!(
        text_ls.contains("seed") && text_ls.contains("star"),
        "plumb ls: {text_ls}"
    );

    let show = stdout_json(&sb.plumb_ok(&["show", "seed", "--json"]));
    for name in ["ns1", "ns2", "veth1", "eth1000", "veth-ns1", "veth-ns2"] {
        assert!(
            serde_json::to_string(&show).unwrap().contains(name),
            "show seed --json does not mention {name}: {show:#}"
        );
    }
    assert!(
        !json_mentions(&show, "plumb0"),
        "show seed --json mentions star's bridge: {show:#}"
    );

    sb.plumb_ok(&["down", "seed"]);
    let ls = stdout_json(&sb.plumb_ok(&["ls", "--json"]));
    assert!(
        find_lab_entry(&ls, "seed").is_none(),
        "seed is still listed after down: {ls:#}"
    );
    assert!(
        find_lab_entry(&ls, "star").is_some(),
        "star vanished from ls: {ls:#}"
    );
}

/// Writes `contents` as `bad.toml`, runs `up`, and checks exit 2, a `bad.toml:LINE:COL` in
/// stderr with LINE one of `lines`, stderr mentioning `mention`, and nothing created.
fn assert_rejected(contents: &str, lines: &[u32], mention: &str) {
    let sb = sandbox();
    let empty = sb.snapshot();
    let file = sb.write_file("bad.toml", contents);
    let out = sb.plumb(&["up", file.to_str().unwrap()]);
    assert_exit(&out, 2, "up of an invalid file");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let positions = file_positions(&stderr, "bad.toml");
    assert!(
        positions.iter().any(|(l, c)| lines.contains(l) && *c >= 1),
        "stderr has no bad.toml:LINE:COL with LINE in {lines:?} (found {positions:?})\n{}",
        describe(&out)
    );
    assert!(
        stderr.contains(mention),
        "stderr does not mention {mention:?}\n{}",
        describe(&out)
    );
    sb.assert_state_eventually(&empty, SETTLE, "after an invalid file");
    // --dry-run validates the same way.
    let out = sb.plumb(&["up", file.to_str().unwrap(), "--dry-run"]);
    assert_exit(&out, 2, "up --dry-run of an invalid file");
}

#[test]
fn up_interface_name_of_16_bytes_exits_2_with_position() {
    assert_rejected(
        r#"name = "bad"

[nodes.ns1.interfaces.eth0123456789abc]
addresses = ["10.0.0.1/24"]

[[links]]
endpoints = ["host:veth1", "ns1:eth0123456789abc"]
"#,
        &[3, 7],
        "eth0123456789abc",
    );
}

#[test]
fn up_address_not_a_cidr_exits_2_with_position() {
    assert_rejected(
        r#"name = "bad"

[nodes.ns1.interfaces.eth0]
addresses = ["10.0.0.300/24"]

[nodes.host.interfaces.veth1]
addresses = ["10.0.0.1/24"]

[[links]]
endpoints = ["host:veth1", "ns1:eth0"]
"#,
        &[4],
        "10.0.0.300",
    );
}

#[test]
fn up_endpoint_naming_undeclared_node_exits_2_with_position() {
    assert_rejected(
        r#"name = "bad"

[nodes.ns1.interfaces.eth0]
addresses = ["10.0.0.2/24"]

[[links]]
endpoints = ["ns1:eth0", "nosuch:eth0"]
"#,
        &[7],
        "nosuch",
    );
}

/// Exit codes asserted here: `down` and `show` of a lab that does not exist exit 0 and say so
/// (or exit 2 naming it) and change nothing; `up` of a missing file exits 2 naming it.
#[test]
fn missing_lab_or_file_exit_codes() {
    let sb = sandbox();
    sb.plumb_ok(&["up", &example("seed.toml")]);
    let before = sb.settled_snapshot();

    for cmd in ["down", "show"] {
        let out = sb.plumb(&[cmd, "nosuchlab"]);
        assert!(
            matches!(out.status.code(), Some(0 | 2)) && text(&out).contains("nosuchlab"),
            "{cmd} of an unknown lab must exit 0 or 2 and name it\n{}",
            describe(&out)
        );
        sb.assert_state_eventually(&before, SETTLE, &format!("after {cmd} of an unknown lab"));
    }
    let missing = format!("{}/missing.toml", sb.dir().display());
    let out = sb.plumb(&["up", &missing]);
    assert_exit(&out, 2, "up of a missing file");
    assert!(text(&out).contains("missing.toml"), "{}", describe(&out));
    sb.assert_state_eventually(&before, SETTLE, "after the failed commands");
}

/// `plumb sandbox` run directly: its command runs in new namespaces and its status is passed
/// through. Isolation is checked before anything is built with it.
#[test]
fn sandbox_runs_command_in_fresh_namespaces_and_passes_status() {
    let plumb = env!("CARGO_BIN_EXE_plumb");
    let ns1_existed = Path::new("/run/netns/ns1").exists();
    let ours: Vec<String> = ["user", "net", "mnt"]
        .iter()
        .map(|ns| {
            std::fs::read_link(format!("/proc/self/ns/{ns}"))
                .unwrap()
                .display()
                .to_string()
        })
        .collect();
    let out = Command::new(plumb)
        .args([
            "sandbox",
            "--",
            "readlink",
            "/proc/self/ns/user",
            "/proc/self/ns/net",
            "/proc/self/ns/mnt",
        ])
        .output()
        .unwrap();
    assert_exit(&out, 0, "plumb sandbox -- readlink");
    let theirs: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(theirs.len(), 3, "{}", describe(&out));
    for (a, b) in ours.iter().zip(&theirs) {
        assert_ne!(
            a, b,
            "plumb sandbox did not make a new namespace; stopping before building anything"
        );
    }

    let out = Command::new(plumb)
        .args(["sandbox", "--", "sh", "-c", "exit 3"])
        .output()
        .unwrap();
    assert_exit(&out, 3, "plumb sandbox -- sh -c 'exit 3'");

    let out = Command::new(plumb)
        .args([
            "sandbox",
            &example("seed.toml"),
            "--",
            "ip",
            "-j",
            "netns",
            "list",
        ])
        .output()
        .unwrap();
    assert_exit(&out, 0, "plumb sandbox seed.toml -- ip -j netns list");
    let list = stdout_json(&out);
    assert!(
        json_mentions(&list, "ns1") && json_mentions(&list, "ns2"),
        "{list}"
    );
    assert_eq!(
        Path::new("/run/netns/ns1").exists(),
        ns1_existed,
        "ns1 leaked out of the sandbox"
    );
}
