//! The sandbox: a holder process in fresh user + network + mount namespaces, and the means to run
//! commands inside it.

use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crate::fixture::TempDir;
use crate::output::describe;

/// The command the sandbox keeps running: says it is ready, then waits for its stdin to close.
const HOLDER: &str = "echo ready; exec cat";

/// How long a sandbox may take to say it is ready.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// How long any one command inside a sandbox may run before it is killed and the test fails.
/// Generous: a hung `plumb` must fail the test, not hang the suite.
pub(crate) const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);

/// A fresh user + network + mount namespace with a private tmpfs on `/run`, alive as long as this
/// value. See the crate documentation for the invariants every constructor checks.
///
/// Commands are run inside with `nsenter --target PID --user --net --mount
/// --preserve-credentials`. The mount namespace changes the working directory, so pass absolute
/// paths.
#[derive(Debug)]
pub struct Sandbox {
    holder: Child,
    stdin: Option<ChildStdin>,
    pid: u32,
    plumb: Option<PathBuf>,
    holder_stderr: Arc<Mutex<String>>,
    /// Says when the holder's stderr has been read to its end (the pipe closed). In a mutex so
    /// that a sandbox can be shared between a test's threads.
    stderr_done: Option<Mutex<mpsc::Receiver<()>>>,
    dir: TempDir,
}

impl Sandbox {
    /// Starts `PLUMB_BIN sandbox -- sh -c 'echo ready; exec cat'` and waits for `ready`.
    ///
    /// The `plumb sandbox` process itself must live in the new namespaces: its pid is the
    /// `nsenter` target. Panics with the reason if the sandbox cannot be made or is not isolated.
    pub fn new(plumb_bin: &Path) -> Sandbox {
        let mut cmd = Command::new(plumb_bin);
        cmd.args(["sandbox", "--", "sh", "-c", HOLDER]);
        Sandbox::start(cmd, Some(plumb_bin.to_path_buf()), "plumb sandbox")
    }

    /// Makes a sandbox with util-linux `unshare` instead of `plumb sandbox`, independent of plumb.
    ///
    /// Equivalent to `unshare --user --map-root-user --net --mount --propagation private` followed
    /// by `mount -t tmpfs tmpfs /run`. Used by this crate's own tests and by tests that must not
    /// depend on `plumb sandbox` being correct. [`Sandbox::plumb`] panics on such a sandbox unless
    /// it was given a binary with [`Sandbox::with_plumb`].
    pub fn unshare() -> Sandbox {
        let mut cmd = Command::new("unshare");
        cmd.args([
            "--user",
            "--map-root-user",
            "--net",
            "--mount",
            "--propagation",
            "private",
            "--",
            "sh",
            "-c",
            "mount -t tmpfs -o mode=0755 tmpfs /run && echo ready && exec cat",
        ]);
        Sandbox::start(cmd, None, "unshare")
    }

    /// Sets the plumb binary that [`Sandbox::plumb`] runs.
    pub fn with_plumb(mut self, plumb_bin: &Path) -> Sandbox {
        self.plumb = Some(plumb_bin.to_path_buf());
        self
    }

    fn start(mut cmd: Command, plumb: Option<PathBuf>, what: &str) -> Sandbox {
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut holder = spawn_retrying_etxtbsy(&mut cmd).unwrap_or_else(|e| {
            panic!("cannot create a sandbox: spawning {cmd:?} failed: {e} (tests never run outside a sandbox)")
        });
        let pid = holder.id();
        let stdin = holder.stdin.take();
        let holder_stderr = Arc::new(Mutex::new(String::new()));
        let stderr_done = holder.stderr.take().map(|err| {
            let sink = Arc::clone(&holder_stderr);
            let (done_tx, done_rx) = mpsc::channel();
            thread::spawn(move || {
                drain_into(err, &sink);
                let _ = done_tx.send(());
            });
            Mutex::new(done_rx)
        });
        let (tx, rx) = mpsc::channel();
        if let Some(out) = holder.stdout.take() {
            thread::spawn(move || {
                let mut seen = String::new();
                let mut lines = BufReader::new(out).lines();
                for line in lines.by_ref() {
                    let Ok(line) = line else { break };
                    if line.trim() == "ready" {
                        let _ = tx.send(Ok(seen.clone()));
                        // Keep draining so the holder never blocks on a full pipe.
                        for _ in lines.by_ref() {}
                        return;
                    }
                    seen.push_str(&line);
                    seen.push('\n');
                }
                let _ = tx.send(Err(seen));
            });
        }
        let mut sandbox = Sandbox {
            holder,
            stdin,
            pid,
            plumb,
            holder_stderr,
            stderr_done,
            dir: TempDir::new(),
        };
        match rx.recv_timeout(READY_TIMEOUT) {
            Ok(Ok(_)) => {}
            Ok(Err(stdout)) => sandbox.fail(
                what,
                &format!("it exited before saying ready; stdout:\n{stdout}"),
            ),
            Err(_) => sandbox.fail(
                what,
                &format!("it did not say ready within {READY_TIMEOUT:?}"),
            ),
        }
        sandbox.check_isolation(what);
        sandbox
    }

    /// Kills the holder and panics with everything known about why the sandbox is unusable.
    fn fail(&mut self, what: &str, reason: &str) -> ! {
        let _ = self.holder.kill();
        let status = self.holder.wait();
        // Wait for the drain to reach the end of the pipe, so the message holds everything the
        // holder said; bounded, since a grandchild may still hold the pipe open.
        if let Some(Ok(done)) = self.stderr_done.as_ref().map(Mutex::lock) {
            let _ = done.recv_timeout(Duration::from_secs(2));
        }
        let stderr = self
            .holder_stderr
            .lock()
            .map(|s| s.clone())
            .unwrap_or_default();
        panic!(
            "cannot create a sandbox with {what}: {reason}\nholder status: {status:?}\nholder stderr:\n{stderr}\n\
             (plumb's kernel tests never run outside a sandbox and never skip)"
        );
    }

    /// Refuses a "sandbox" that shares the test's user, network or mount namespace or its `/run`:
    /// running the suite there would touch the machine's real network.
    fn check_isolation(&mut self, what: &str) {
        for ns in ["user", "net", "mnt"] {
            let ours = std::fs::read_link(format!("/proc/self/ns/{ns}"));
            let theirs = std::fs::read_link(format!("/proc/{}/ns/{ns}", self.pid));
            match (ours, theirs) {
                (Ok(a), Ok(b)) if a != b => {}
                (a, b) => self.fail(
                    what,
                    &format!(
                        "process {} is not in a new {ns} namespace (test: {a:?}, sandbox: {b:?}); \
                         refusing to run tests against the real network",
                        self.pid
                    ),
                ),
            }
        }
        let inside = self.run(&["stat", "-c", "%d", "/run"]);
        let inside_dev = String::from_utf8_lossy(&inside.stdout).trim().to_string();
        let outside_dev = std::fs::metadata("/run")
            .map(|m| m.dev().to_string())
            .unwrap_or_default();
        if !inside.status.success() || inside_dev.is_empty() || inside_dev == outside_dev {
            self.fail(
                what,
                &format!(
                    "/run inside is not a private filesystem (device {inside_dev:?}, outside {outside_dev:?}); {}",
                    describe(&inside)
                ),
            );
        }
    }

    /// The pid of the process holding the namespaces (the `nsenter --target`).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// A temporary directory on the host filesystem, readable inside, removed with the sandbox.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Writes a fixture (for example a topology file) to the sandbox's temporary directory and
    /// returns its absolute path.
    pub fn write_file(&self, name: &str, contents: &str) -> PathBuf {
        self.dir.write(name, contents)
    }

    /// A [`Command`] that runs `argv` inside the sandbox, with stdin from `/dev/null`. Add
    /// environment variables or pipes, then run it with [`Sandbox::output`] or spawn it.
    pub fn command(&self, argv: &[&str]) -> Command {
        let mut cmd = Command::new("nsenter");
        cmd.arg("--target")
            .arg(self.pid.to_string())
            .args(["--user", "--net", "--mount", "--preserve-credentials", "--"])
            .args(argv)
            .stdin(Stdio::null());
        cmd
    }

    /// A [`Command`] that runs the plumb binary with `args` inside the sandbox.
    pub fn plumb_command(&self, args: &[&str]) -> Command {
        let bin = self.plumb.as_ref().unwrap_or_else(|| {
            panic!("this sandbox has no plumb binary; make it with Sandbox::new")
        });
        let mut argv: Vec<&str> = vec![bin.to_str().expect("plumb binary path is not UTF-8")];
        argv.extend_from_slice(args);
        self.command(&argv)
    }

    /// Runs `cmd` to completion and returns its output; kills it and panics if it runs longer
    /// than two minutes.
    pub fn output(&self, mut cmd: Command) -> Output {
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot spawn {cmd:?}: {e}"));
        let pid = child.id();
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let _ = tx.send(child.wait_with_output());
        });
        match rx.recv_timeout(COMMAND_TIMEOUT) {
            Ok(Ok(output)) => output,
            Ok(Err(e)) => panic!("waiting for {cmd:?} failed: {e}"),
            Err(_) => {
                // The child is not reaped until it dies, so its pid cannot have been reused.
                let _ = Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status();
                let late = rx.recv_timeout(Duration::from_secs(5));
                let shown = match late {
                    Ok(Ok(o)) => describe(&o),
                    _ => String::from("(no output)"),
                };
                panic!("{cmd:?} ran longer than {COMMAND_TIMEOUT:?} and was killed\n{shown}");
            }
        }
    }

    /// Runs `argv` inside the sandbox and returns its output, whatever its status.
    pub fn run(&self, argv: &[&str]) -> Output {
        self.output(self.command(argv))
    }

    /// Runs `argv` inside the sandbox; panics with its output unless it exits 0. Returns stdout.
    pub fn run_ok(&self, argv: &[&str]) -> String {
        let out = self.run(argv);
        assert!(
            out.status.success(),
            "{argv:?} failed inside the sandbox\n{}",
            describe(&out)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs a `sh -c` script inside the sandbox and returns its output, whatever its status.
    pub fn sh(&self, script: &str) -> Output {
        self.run(&["sh", "-c", script])
    }

    /// Runs a `sh -c` script inside the sandbox; panics with its output unless it exits 0.
    /// Returns stdout.
    pub fn sh_ok(&self, script: &str) -> String {
        self.run_ok(&["sh", "-c", script])
    }

    /// Runs plumb with `args` inside the sandbox and returns its output, whatever its status.
    pub fn plumb(&self, args: &[&str]) -> Output {
        self.output(self.plumb_command(args))
    }

    /// Runs plumb with `args` inside the sandbox; panics with its output unless it exits 0.
    pub fn plumb_ok(&self, args: &[&str]) -> Output {
        let out = self.plumb(args);
        assert!(
            out.status.success(),
            "plumb {args:?} failed\n{}",
            describe(&out)
        );
        out
    }

    /// Spawns `cmd` with stderr piped and returns it once a line of its stderr contains `needle`.
    /// Panics (after killing it) if it exits first or `timeout` passes. The rest of its stderr
    /// keeps being drained; it is returned with the panic message if needed.
    pub fn spawn_until_stderr(&self, mut cmd: Command, needle: &str, timeout: Duration) -> Child {
        cmd.stdout(Stdio::null()).stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot spawn {cmd:?}: {e}"));
        let err = child.stderr.take().expect("stderr is piped");
        let (tx, rx) = mpsc::channel();
        let needle_owned = needle.to_string();
        thread::spawn(move || {
            let mut seen = String::new();
            let mut lines = BufReader::new(err).lines();
            for line in lines.by_ref() {
                let Ok(line) = line else { break };
                seen.push_str(&line);
                seen.push('\n');
                if line.contains(&needle_owned) {
                    let _ = tx.send(Ok(()));
                    for _ in lines.by_ref() {}
                    return;
                }
            }
            let _ = tx.send(Err(seen));
        });
        match rx.recv_timeout(timeout) {
            Ok(Ok(())) => child,
            Ok(Err(stderr)) => {
                let _ = child.kill();
                let status = child.wait();
                panic!("{cmd:?} never printed {needle:?} (status {status:?}); stderr:\n{stderr}")
            }
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{cmd:?} did not print {needle:?} within {timeout:?}")
            }
        }
    }

    /// Polls `check` every 100 ms until it returns true; panics naming `what` after `timeout`.
    ///
    /// For kernel work that finishes asynchronously, such as the destruction of a deleted
    /// namespace's interfaces (and with them their veth peers in other namespaces).
    pub fn wait_until(
        &self,
        timeout: Duration,
        what: &str,
        mut check: impl FnMut(&Sandbox) -> bool,
    ) {
        let deadline = Instant::now() + timeout;
        loop {
            if check(self) {
                return;
            }
            if Instant::now() >= deadline {
                panic!("timed out after {timeout:?} waiting until {what}");
            }
            thread::sleep(Duration::from_millis(100));
        }
    }
}

fn drain_into(mut from: impl Read, sink: &Mutex<String>) {
    let mut buf = [0u8; 4096];
    while let Ok(n) = from.read(&mut buf) {
        if n == 0 {
            break;
        }
        if let Ok(mut s) = sink.lock() {
            s.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    }
}

impl Drop for Sandbox {
    /// Closes the holder's stdin (so `cat` and with it the sandbox exit), then kills it if it is
    /// still there after five seconds, and reaps it. The namespaces die with their last process.
    fn drop(&mut self) {
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            match self.holder.try_wait() {
                Ok(Some(_)) | Err(_) => return,
                Ok(None) => thread::sleep(Duration::from_millis(20)),
            }
        }
        let _ = self.holder.kill();
        let _ = self.holder.wait();
    }
}

/// Spawns `cmd`, retrying a few times on ETXTBSY: an executable written by one test thread can
/// still be open for writing in a child that another test thread is forking at that moment,
/// until that child execs (a known Linux race, not a sandbox failure).
fn spawn_retrying_etxtbsy(cmd: &mut Command) -> std::io::Result<std::process::Child> {
    const ETXTBSY: i32 = 26;
    let mut tries = 0;
    loop {
        match cmd.spawn() {
            Err(e) if e.raw_os_error() == Some(ETXTBSY) && tries < 50 => {
                tries += 1;
                thread::sleep(std::time::Duration::from_millis(20));
            }
            r => return r,
        }
    }
}
