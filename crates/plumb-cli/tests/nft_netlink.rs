//! nf_tables over netlink: plumb never starts `nft` (a recording `nft` first on PATH that fails
//! is never called), the tables it writes are what the `nft -j` oracle lists, and a refused
//! transaction after another node's table was replaced puts that table back exactly.

mod common;

use std::path::Path;

use common::*;
use plumb_testkit::{describe, Sandbox};

/// A fake `nft` that records its arguments and fails, in a directory to put first on PATH.
fn recording_nft(sb: &Sandbox) -> (String, std::path::PathBuf) {
    let bin = sb.dir().join("fakebin");
    std::fs::create_dir_all(&bin).unwrap();
    let log = sb.dir().join("nft-calls.log");
    let script = format!("#!/bin/sh\necho \"nft $*\" >> {}\nexit 1\n", log.display());
    let nft = bin.join("nft");
    std::fs::write(&nft, script).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&nft, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    (path, log)
}

fn plumb_with_path(sb: &Sandbox, path: &str, args: &[&str], code: i32) -> std::process::Output {
    let mut cmd = sb.plumb_command(args);
    cmd.env("PATH", path);
    let out = sb.output(cmd);
    assert_exit(&out, code, &format!("plumb {}", args.join(" ")));
    out
}

fn assert_no_calls(log: &Path) {
    assert!(
        !log.exists(),
        "plumb ran nft:\n{}",
        std::fs::read_to_string(log).unwrap_or_default()
    );
}

#[test]
fn egress_and_isolation_run_their_whole_life_without_an_nft_process() {
    for (file, lab) in [("egress.toml", "egress"), ("isolation.toml", "isolation")] {
        let sb = sandbox();
        let (path, log) = recording_nft(&sb);
        // The fake is really first on PATH: running `nft` there records the call.
        let mut probe = sb.command(&["sh", "-c", "nft --version"]);
        probe.env("PATH", &path);
        let out = sb.output(probe);
        assert_exit(&out, 1, "the recording nft");
        assert!(log.exists(), "the recording nft did not record");
        std::fs::remove_file(&log).unwrap();

        let f = example(file);
        plumb_with_path(&sb, &path, &["up", &f], 0);
        // The oracle (the real nft, not on the fake PATH) sees plumb's table.
        let tables = sb.nft_ruleset(None);
        let names: Vec<&str> = tables["nftables"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|o| o.get("table"))
            .filter_map(|t| t["name"].as_str())
            .collect();
        assert_eq!(names, [format!("plumb-{lab}")], "{tables:#}");
        plumb_with_path(&sb, &path, &["check", &f], 0);
        let again = plumb_with_path(&sb, &path, &["up", &f], 0);
        assert!(
            String::from_utf8_lossy(&again.stdout).contains("up to date"),
            "{}",
            describe(&again)
        );
        plumb_with_path(&sb, &path, &["up", "--dry-run", &f], 0);
        plumb_with_path(&sb, &path, &["show", lab], 0);
        plumb_with_path(&sb, &path, &["ls"], 0);
        plumb_with_path(&sb, &path, &["down", lab], 0);
        plumb_with_path(&sb, &path, &["gc"], 0);
        assert_no_calls(&log);
        let after = sb.nft_ruleset(None);
        assert_eq!(
            after["nftables"].as_array().map(Vec::len),
            Some(0),
            "down left a table: {after:#}"
        );
    }
}

const BEFORE: &str = r#"name = "fw2"
[networks.lan]
subnet = "10.31.0.0/24"
members = ["a", "b"]
[nodes.a.firewall]
ingress = "deny"
allow = ["icmp"]
[nodes.b.firewall]
ingress = "deny"
allow = ["tcp/22"]
"#;

/// Both firewalls change: a's is replaced first (4 rules: 3 fixed, then tcp/80), then b's
/// transaction (rules 5 to 8) is refused at its second rule.
const AFTER: &str = r#"name = "fw2"
[networks.lan]
subnet = "10.31.0.0/24"
members = ["a", "b"]
[nodes.a.firewall]
ingress = "deny"
allow = ["tcp/80"]
[nodes.b.firewall]
ingress = "deny"
allow = ["udp/53"]
"#;

#[test]
fn a_refused_table_after_a_replaced_one_puts_the_replaced_one_back_exactly() {
    let sb = sandbox();
    let before = sb.write_file("before.toml", BEFORE);
    let after = sb.write_file("after.toml", AFTER);
    sb.plumb_ok(&["up", before.to_str().unwrap()]);
    let (a0, b0) = (sb.nft_ruleset(Some("a")), sb.nft_ruleset(Some("b")));
    let state = sb.settled_snapshot();
    let mut cmd = sb.plumb_command(&["up", after.to_str().unwrap()]);
    cmd.env("PLUMB_FAULT", "request=nft-rule:6");
    let out = sb.output(cmd);
    assert_exit(&out, 2, "up with b's transaction refused");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("nf_tables refused to write table inet plumb-fw2")
            && err.contains("Invalid argument")
            && err.contains("restored as it was before this run"),
        "{}",
        describe(&out)
    );
    assert_eq!(sb.nft_ruleset(Some("a")), a0, "a's table was not put back");
    assert_eq!(sb.nft_ruleset(Some("b")), b0, "b's table changed");
    sb.assert_state_eventually(&state, SETTLE, "after the refused converge");
    // Then the converge runs.
    sb.plumb_ok(&["up", after.to_str().unwrap()]);
    assert_ne!(sb.nft_ruleset(Some("a")), a0);
    assert_up_is_up_to_date(&sb, after.to_str().unwrap(), "fw2");
}
