//! The CNI conformance suite's driver, shared by `tests/cni*.rs`: a plugin in a sandbox, driven
//! as a runtime drives it — environment variables and the configuration on stdin — with its
//! stdout parsed as JSON, and independent views to assert through (`ip -j`, `nft -j`, the IPAM
//! store's files). The checks both plumb and the reference plugins must pass are in
//! `cni_checks.rs`. Everything runs inside a sandbox; "the internet" is a namespace `upstream`.
#![allow(dead_code)] // each test binary uses a different part of this module

use std::path::Path;
use std::process::Output;

use plumb_testkit::{describe, Sandbox};
use serde_json::{json, Value};

/// The network every check uses.
pub const NET: &str = "testnet";
/// Its bridge.
pub const BRIDGE: &str = "cni0";
/// Its subnet and gateway.
pub const SUBNET: &str = "10.55.0.0/24";
/// The gateway.
pub const GATEWAY: &str = "10.55.0.1";
/// The IPAM store (inside the sandbox's private /run).
pub const DATA_DIR: &str = "/run/cni-ipam";
/// The host's address on its uplink, and the internet's.
pub const HOST_UP: &str = "203.0.113.1";
/// The internet's address.
pub const UPSTREAM: &str = "203.0.113.2";

/// Which implementation is under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Impl {
    /// plumb in plugin mode.
    Plumb,
    /// `/usr/lib/cni/bridge` with `host-local`.
    Reference,
}

/// Runs `check` against plumb in plugin mode, in a fresh sandbox.
pub fn with_plumb(check: impl FnOnce(&Cni<'_>)) {
    let sb = crate::common::sandbox();
    check(&Cni {
        sb: &sb,
        imp: Impl::Plumb,
        plumb: Path::new(env!("CARGO_BIN_EXE_plumb")),
    });
}

/// A plugin in a sandbox.
pub struct Cni<'a> {
    /// The sandbox.
    pub sb: &'a Sandbox,
    /// The implementation.
    pub imp: Impl,
    /// The plumb binary (the plugin itself for [`Impl::Plumb`]).
    pub plumb: &'a Path,
}

/// What one invocation printed and how it exited.
#[derive(Debug)]
pub struct Reply {
    /// Exit code.
    pub code: Option<i32>,
    /// stdout as JSON (`Null` when empty).
    pub json: Value,
    /// Everything, for messages.
    pub text: String,
}

impl Reply {
    /// Panics unless it succeeded.
    pub fn ok(self, what: &str) -> Value {
        assert_eq!(self.code, Some(0), "{what} failed:\n{}", self.text);
        self.json
    }

    /// Panics unless it failed with exit 1 and a spec error object with `code`; returns it.
    pub fn error(self, code: u64, what: &str) -> Value {
        assert_ne!(
            self.code,
            Some(0),
            "{what} should have failed:\n{}",
            self.text
        );
        assert_eq!(
            self.json["code"].as_u64(),
            Some(code),
            "{what}: expected error code {code}:\n{}",
            self.text
        );
        assert!(
            self.json["msg"].is_string(),
            "{what}: no msg:\n{}",
            self.text
        );
        self.json
    }
}

fn merge(base: &mut Value, extra: &Value) {
    if let (Some(b), Some(e)) = (base.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            if v.is_object() && b.get(k).is_some_and(Value::is_object) {
                merge(&mut b[k], v);
            } else {
                b.insert(k.clone(), v.clone());
            }
        }
    }
}

impl Cni<'_> {
    /// The plugin's configuration: the reference bridge's keys, with `extra` merged in.
    pub fn conf(&self, extra: Value) -> Value {
        let mut c = json!({
            "cniVersion": "1.0.0",
            "name": NET,
            "type": if self.imp == Impl::Plumb { "plumb-cni" } else { "bridge" },
            "bridge": BRIDGE,
            "isGateway": true,
            "isDefaultGateway": true,
            "ipam": {"type": "host-local", "subnet": SUBNET, "dataDir": DATA_DIR},
        });
        merge(&mut c, &extra);
        c
    }

    fn binary(&self) -> String {
        match self.imp {
            Impl::Plumb => self.plumb.to_string_lossy().into_owned(),
            Impl::Reference => "/usr/lib/cni/bridge".into(),
        }
    }

    /// Runs the plugin with `env` (`CNI_PATH` is always set) and `conf` on stdin.
    pub fn invoke_env(&self, env: &[(&str, &str)], conf: &Value) -> Reply {
        self.invoke_bin(&self.binary(), env, conf)
    }

    /// Runs `bin` (a plugin) with `env` and `conf` on stdin.
    pub fn invoke_bin(&self, bin: &str, env: &[(&str, &str)], conf: &Value) -> Reply {
        let file = self.sb.write_file(
            &format!("conf-{}.json", unique()),
            &serde_json::to_string(conf).expect("config serialises"),
        );
        let file = file.to_string_lossy().into_owned();
        let mut cmd = self
            .sb
            .command(&["sh", "-c", "exec \"$0\" < \"$1\"", bin, &file]);
        cmd.env("CNI_PATH", "/usr/lib/cni");
        for (k, v) in env {
            cmd.env(k, v);
        }
        reply(self.sb.output(cmd))
    }

    /// Runs `verb` for container `cid` in namespace `ns` (a name in /run/netns), interface
    /// `ifname`.
    pub fn invoke(&self, verb: &str, cid: &str, ns: &str, ifname: &str, conf: &Value) -> Reply {
        let netns = format!("/run/netns/{ns}");
        self.invoke_env(
            &[
                ("CNI_COMMAND", verb),
                ("CNI_CONTAINERID", cid),
                ("CNI_NETNS", &netns),
                ("CNI_IFNAME", ifname),
            ],
            conf,
        )
    }

    /// ADD for `cid` in a new namespace `ns`, interface `eth0`; panics unless it succeeds.
    pub fn add(&self, cid: &str, ns: &str, conf: &Value) -> Value {
        self.sb.run_ok(&["ip", "netns", "add", ns]);
        self.invoke("ADD", cid, ns, "eth0", conf)
            .ok(&format!("ADD {cid}"))
    }

    /// `conf` with `prevResult`.
    pub fn with_prev(conf: &Value, prev: &Value) -> Value {
        let mut c = conf.clone();
        c["prevResult"] = prev.clone();
        c
    }

    /// The addresses reserved in the IPAM store (file names that are addresses).
    pub fn reserved(&self) -> Vec<String> {
        let out = self
            .sb
            .sh_ok(&format!("ls {DATA_DIR}/{NET} 2>/dev/null || true"));
        out.lines()
            .filter(|l| l.parse::<std::net::IpAddr>().is_ok())
            .map(str::to_string)
            .collect()
    }

    /// The host's interfaces a DEL of plumb has detached and not yet removed (their tag ends
    /// with `detaching`): `(name, up, master)`.
    pub fn detaching(&self) -> Vec<(String, bool, Option<String>)> {
        self.ip(None, &["link"])
            .as_array()
            .into_iter()
            .flatten()
            .filter(|l| {
                l["ifalias"]
                    .as_str()
                    .is_some_and(|a| a.starts_with("plumb:cni ") && a.ends_with(" detaching"))
            })
            .map(|l| {
                let up = l["flags"]
                    .as_array()
                    .is_some_and(|f| f.iter().any(|x| x == "UP"));
                let master = l["master"].as_str().map(str::to_string);
                (l["ifname"].as_str().unwrap_or("?").to_string(), up, master)
            })
            .collect()
    }

    /// Waits until every pair plumb's DELs detached is removed: plumb answers DEL once the
    /// attachment is detached and removes the pair after answering, in a child of the plugin
    /// (the reference removes it before answering: nothing to wait for). Fails with the
    /// interfaces left if that takes more than 30 s (a liveness bound, not a measurement).
    pub fn settle(&self) {
        if self.imp != Impl::Plumb {
            return;
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let left = self.detaching();
            if left.is_empty() {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "detached pairs still there after 30 s: {left:?}"
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }

    /// `ip -j ARGS` in `ns` (or the host), parsed.
    pub fn ip(&self, ns: Option<&str>, args: &[&str]) -> Value {
        let mut argv = Vec::new();
        if let Some(n) = ns {
            argv.extend(["ip", "netns", "exec", n]);
        }
        argv.extend(["ip", "-j"]);
        argv.extend_from_slice(args);
        let out = self.sb.run_ok(&argv);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("ip -j {args:?}: {e}\n{out}"))
    }

    /// The IPv4 addresses (`A/LEN`) on `dev` in `ns`.
    pub fn v4(&self, ns: Option<&str>, dev: &str) -> Vec<String> {
        self.ip(ns, &["-4", "addr", "show", "dev", dev])
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|l| l["addr_info"].as_array().cloned().unwrap_or_default())
            .map(|a| format!("{}/{}", a["local"].as_str().unwrap_or("?"), a["prefixlen"]))
            .collect()
    }

    /// An uplink to "the internet": namespace `upstream` with 203.0.113.2, the host 203.0.113.1.
    pub fn upstream(&self) {
        self.sb.sh_ok(&format!(
            "ip netns add upstream && ip link add up0 type veth peer name eth0 netns upstream && \
             ip addr add {HOST_UP}/24 dev up0 && ip link set up0 up && \
             ip -n upstream addr add {UPSTREAM}/24 dev eth0 && ip -n upstream link set eth0 up && \
             ip -n upstream link set lo up"
        ));
    }
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

fn reply(out: Output) -> Reply {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let json = if stdout.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", describe(&out)))
    };
    Reply {
        code: out.status.code(),
        json,
        text: describe(&out),
    }
}

/// `nft -j list table inet plumb-cni-testnet`: (rule count, elements of set/map NAME).
pub fn table(c: &Cni<'_>) -> (usize, Value) {
    let out = c.sb.run_ok(&[
        "nft",
        "-j",
        "list",
        "table",
        "inet",
        &format!("plumb-cni-{NET}"),
    ]);
    let v: Value = serde_json::from_str(&out).expect("nft -j prints JSON");
    let objs = v["nftables"].as_array().cloned().unwrap_or_default();
    let rules = objs.iter().filter(|o| o.get("rule").is_some()).count();
    let mut sets = serde_json::Map::new();
    for o in &objs {
        let s = o.get("set").or_else(|| o.get("map"));
        if let Some(s) = s {
            sets.insert(
                s["name"].as_str().unwrap_or("?").to_string(),
                s.get("elem").cloned().unwrap_or(Value::Array(vec![])),
            );
        }
    }
    (rules, Value::Object(sets))
}
