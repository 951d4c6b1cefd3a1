//! Small socket servers and clients run inside the sandbox's nodes (python3, bounded by timeouts),
//! shared by the NAT, publishing and isolation tests.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

use plumb_testkit::{describe, Sandbox};

/// Serves `want` distinct messages on `proto`/`port` (or stops after `secs`), echoing each back
/// as `echo:MSG` and printing `peer ADDR MSG` for each: the server's own view of its peer.
/// An optional fifth argument is the address to bind (`0.0.0.0` unless given; an IPv6 one such
/// as `::` serves IPv6 only, so its peers are never IPv4-mapped).
pub const SERVER_PY: &str = r#"
import socket, sys, time
sys.stderr = sys.stdout
proto, port, want, secs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
bind = sys.argv[5] if len(sys.argv) > 5 else "0.0.0.0"
deadline = time.monotonic() + secs
kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
family = socket.AF_INET6 if ":" in bind else socket.AF_INET
s = socket.socket(family, kind)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
if family == socket.AF_INET6:
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
s.bind((bind, port))
if proto == "tcp":
    s.listen(16)
print("ready", flush=True)
seen = set()
while len(seen) < want:
    left = deadline - time.monotonic()
    if left <= 0:
        break
    s.settimeout(left)
    try:
        if proto == "tcp":
            c, peer = s.accept()
            c.settimeout(2)
            data = c.recv(4096)
            c.sendall(b"echo:" + data)
            c.close()
        else:
            data, peer = s.recvfrom(4096)
            s.sendto(b"echo:" + data, peer)
    except socket.timeout:
        break
    except OSError as e:
        print("error", e, flush=True)
        continue
    print("peer", peer[0], data.decode(errors="replace"), flush=True)
    seen.add(data)
"#;

/// Sends one message over `proto` to `host`:`port` and prints `reply TEXT local ADDR`; exits 1
/// with `error ...` if no reply came within `secs` (UDP is sent up to three times). `host` may
/// be an IPv4 or an IPv6 address.
pub const CLIENT_PY: &str = r#"
import socket, sys
sys.stderr = sys.stdout
proto, host, port, msg, secs = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4].encode(), float(sys.argv[5])
try:
    if proto == "tcp":
        c = socket.create_connection((host, port), timeout=secs)
        c.sendall(msg)
        reply = c.recv(4096)
    else:
        c = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM)
        c.settimeout(secs / 3)
        reply = b""
        for _ in range(3):
            c.sendto(msg, (host, port))
            try:
                reply, _ = c.recvfrom(4096)
                break
            except socket.timeout:
                pass
except OSError as e:
    print("error", e)
    sys.exit(1)
if not reply:
    print("error no reply")
    sys.exit(1)
print("reply", reply.decode(errors="replace"), "local", c.getsockname()[0])
"#;

/// `argv` run inside `ns` (`None`: the sandbox's own namespace, plumb's host) under `timeout 5`.
pub fn in_node<'a>(ns: Option<&'a str>, argv: &[&'a str]) -> Vec<&'a str> {
    let mut out = Vec::new();
    if let Some(ns) = ns {
        out.extend(["ip", "netns", "exec", ns]);
    }
    out.extend(["timeout", "5"]);
    out.extend_from_slice(argv);
    out
}

/// A running echo server and the lines it prints.
pub struct Server {
    child: Child,
    lines: Receiver<String>,
    what: String,
}

/// Starts [`SERVER_PY`] in `ns` on IPv4, serving for at most `secs`, and waits until it listens.
pub fn serve(
    sb: &Sandbox,
    ns: Option<&str>,
    proto: &str,
    port: u16,
    want: usize,
    secs: &str,
) -> Server {
    serve_on(sb, ns, "0.0.0.0", proto, port, want, secs)
}

/// [`serve`] bound to `bind`: `::` serves IPv6 (only), `0.0.0.0` IPv4.
pub fn serve_on(
    sb: &Sandbox,
    ns: Option<&str>,
    bind: &str,
    proto: &str,
    port: u16,
    want: usize,
    secs: &str,
) -> Server {
    let (port, want) = (port.to_string(), want.to_string());
    let argv = in_node(
        ns,
        &["python3", "-c", SERVER_PY, proto, &port, &want, secs, bind],
    );
    let what = format!("{proto} server on {}:[{bind}]:{port}", ns.unwrap_or("host"));
    let mut cmd: Command = sb.command(&argv);
    cmd.stdout(Stdio::piped()).stderr(Stdio::null());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start the {what}: {e}"));
    let out = child.stdout.take().expect("stdout is piped");
    let (tx, lines) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    match lines.recv_timeout(Duration::from_secs(5)) {
        Ok(l) if l == "ready" => {}
        other => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the {what} did not start: {other:?}");
        }
    }
    Server { child, lines, what }
}

impl Server {
    /// Waits (at most 6 s) until the server exits and returns what it printed after `ready`.
    pub fn finish(mut self) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(6);
        let mut out = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => out.push(l),
                Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => {
                    let _ = self.child.kill();
                    out.push(format!("({} killed: still running after 6 s)", self.what));
                    break;
                }
            }
        }
        let _ = self.child.wait();
        out
    }

    /// The peers the server saw, from its `peer ADDR MSG` lines.
    pub fn peers(lines: &[String]) -> Vec<String> {
        lines
            .iter()
            .filter_map(|l| l.strip_prefix("peer "))
            .filter_map(|l| l.split_whitespace().next())
            .map(str::to_string)
            .collect()
    }
}

/// Sends `msg` with [`CLIENT_PY`] from `ns`, waiting at most `secs` for a reply; `Ok(reply line)`
/// or `Err(what happened)`.
pub fn send(
    sb: &Sandbox,
    ns: Option<&str>,
    proto: &str,
    host: &str,
    port: u16,
    msg: &str,
    secs: &str,
) -> Result<String, String> {
    let port = port.to_string();
    let argv = in_node(
        ns,
        &["python3", "-c", CLIENT_PY, proto, host, &port, msg, secs],
    );
    let out = sb.run(&argv);
    let stdout = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if out.status.success() {
        Ok(stdout)
    } else {
        Err(describe(&out))
    }
}
