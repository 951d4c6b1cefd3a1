//! Running a test body inside fresh namespaces, in-process: for library tests that call
//! plumb's API directly (a netlink socket must be opened inside the namespace it works on).
//!
//! The test re-executes its own test binary, filtered to itself, under `unshare --user
//! --map-root-user --net --mount` with a marker in the environment; the child runs the body,
//! the parent asserts that the child passed. No privilege is needed, and the machine's own
//! network is never touched.

use std::process::Command;

const MARKER: &str = "PLUMB_TESTKIT_INSIDE";

/// Runs `body` inside a fresh user + network + mount namespace (root inside, `lo` down, a
/// private `/run`). `test` must be the name of the calling test as the harness knows it
/// (`module::test_fn` for unit tests, `test_fn` in an integration test file). Panics if the
/// namespace cannot be made or the body fails in it.
pub fn in_fresh_netns(test: &str, body: impl FnOnce()) {
    if std::env::var(MARKER).as_deref() == Ok(test) {
        body();
        return;
    }
    let exe = std::env::current_exe().expect("the test binary's own path");
    let script = format!(
        "mount -t tmpfs -o mode=0755 tmpfs /run && exec \"$0\" --exact {test} --nocapture --test-threads=1"
    );
    let out = Command::new("unshare")
        .args([
            "--user",
            "--map-root-user",
            "--net",
            "--mount",
            "--propagation",
            "private",
            "--",
            "sh",
            "-c",
            &script,
        ])
        .arg(&exe)
        .env(MARKER, test)
        .output()
        .unwrap_or_else(|e| panic!("cannot run unshare (util-linux) for {test}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "{test} failed inside its namespace (tests never run outside one):\n{}",
        crate::describe(&out)
    );
}
