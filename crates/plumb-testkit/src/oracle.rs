//! The independent oracle: iproute2's JSON views of the sandbox's kernel state.
//!
//! Everything here runs `ip -j` (or `ping`) inside the sandbox and never uses plumb's code. `ns`
//! arguments are `None` for the sandbox's own namespace (plumb's "host") or `Some(name)` for a
//! named namespace under `/run/netns`, reached with `ip -n NAME`.

use std::thread;
use std::time::Duration;

use serde_json::{json, Map, Value};

use crate::output::describe;
use crate::sandbox::Sandbox;

/// Every interface plumb creates carries the alias `plumb:LAB`; a namespace's tag is its `lo`
/// alias. plumb may append its own metadata after a space (`plumb:LAB link=ID`).
pub const PLUMB_ALIAS_PREFIX: &str = "plumb:";

/// The tag in an interface alias, `plumb:LAB`, without anything plumb appended after a space;
/// `None` if the alias is not a plumb tag.
pub fn alias_tag(alias: &str) -> Option<&str> {
    let tag = alias.split_whitespace().next()?;
    (tag.len() > PLUMB_ALIAS_PREFIX.len() && tag.starts_with(PLUMB_ALIAS_PREFIX)).then_some(tag)
}

/// Removes the values that change on their own while nothing is being configured: timers,
/// address lifetimes, route expiry and counters. What remains (ifindexes, names, flags,
/// addresses, MACs, masters, peers, routes) changes only when something reconfigures it.
pub fn strip_volatile(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.retain(|k, _| {
                !(k.ends_with("_timer")
                    || k == "expires"
                    || k == "valid_life_time"
                    || k == "preferred_life_time"
                    || k == "used"
                    || k.starts_with("stats"))
            });
            map.values_mut().for_each(strip_volatile);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_volatile),
        _ => {}
    }
}

fn ip_argv<'a>(ns: Option<&'a str>, args: &[&'a str]) -> Vec<&'a str> {
    let mut argv = vec!["ip", "-j"];
    if let Some(ns) = ns {
        argv.extend(["-n", ns]);
    }
    argv.extend_from_slice(args);
    argv
}

fn parse_json(argv: &[&str], stdout: &[u8]) -> Value {
    let text = String::from_utf8_lossy(stdout);
    if text.trim().is_empty() {
        // `ip -j netns list` prints nothing at all when there is no namespace.
        return Value::Array(Vec::new());
    }
    serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{argv:?} printed invalid JSON ({e}):\n{text}"))
}

fn array(value: Value) -> Vec<Value> {
    match value {
        Value::Array(items) => items,
        other => vec![other],
    }
}

impl Sandbox {
    /// Runs `ip -j ARGS` inside the sandbox and parses its output; panics if it fails.
    /// Empty output is an empty array.
    pub fn ip_json(&self, args: &[&str]) -> Value {
        self.ip_json_in(None, args)
    }

    /// Runs `ip -j [-n NS] ARGS` inside the sandbox and parses its output; panics if it fails.
    pub fn ip_json_in(&self, ns: Option<&str>, args: &[&str]) -> Value {
        self.try_ip_json_in(ns, args)
            .unwrap_or_else(|out| panic!("{:?} failed\n{out}", ip_argv(ns, args)))
    }

    /// Like [`Sandbox::ip_json_in`], but returns the failure (as [`describe`] text) instead of
    /// panicking, for namespaces that may vanish while being looked at.
    pub fn try_ip_json_in(&self, ns: Option<&str>, args: &[&str]) -> Result<Value, String> {
        let argv = ip_argv(ns, args);
        let out = self.run(&argv);
        if !out.status.success() {
            return Err(describe(&out));
        }
        Ok(parse_json(&argv, &out.stdout))
    }

    /// Named namespaces, sorted, as `ip netns list` shows them (bind mounts under `/run/netns`).
    pub fn netns_list(&self) -> Vec<String> {
        let mut names: Vec<String> = array(self.ip_json(&["netns", "list"]))
            .iter()
            .filter_map(|n| n["name"].as_str().map(str::to_string))
            .collect();
        names.sort();
        names
    }

    /// The nsid by which `viewer` (the sandbox's own namespace for `None`) knows the named
    /// namespace, if one is allocated: `ip [-n VIEWER] netns list` shows it as `id`. Compare it
    /// with an interface's `link_netnsid` to find which namespace its veth peer is in.
    pub fn netns_id(&self, viewer: Option<&str>, name: &str) -> Option<i64> {
        array(self.ip_json_in(viewer, &["netns", "list"]))
            .iter()
            .find(|n| n["name"] == name)
            .and_then(|n| n["id"].as_i64())
    }

    /// Every interface in `ns`, with details: `ip -d -j link show`.
    pub fn links(&self, ns: Option<&str>) -> Vec<Value> {
        array(self.ip_json_in(ns, &["-d", "link", "show"]))
    }

    /// One interface in `ns` by name, if it exists.
    pub fn link(&self, ns: Option<&str>, name: &str) -> Option<Value> {
        self.links(ns).into_iter().find(|l| l["ifname"] == name)
    }

    /// Interface names in `ns`, sorted.
    pub fn link_names(&self, ns: Option<&str>) -> Vec<String> {
        let mut names: Vec<String> = self
            .links(ns)
            .iter()
            .filter_map(|l| l["ifname"].as_str().map(str::to_string))
            .collect();
        names.sort();
        names
    }

    /// Every interface in `ns` with its addresses: `ip -j addr show`.
    pub fn addrs(&self, ns: Option<&str>) -> Vec<Value> {
        array(self.ip_json_in(ns, &["addr", "show"]))
    }

    /// The IPv4 addresses of `dev` in `ns` as `A.B.C.D/LEN`, sorted; empty if `dev` is absent.
    pub fn ipv4_addrs(&self, ns: Option<&str>, dev: &str) -> Vec<String> {
        let mut out: Vec<String> = self
            .addrs(ns)
            .iter()
            .filter(|l| l["ifname"] == dev)
            .flat_map(|l| l["addr_info"].as_array().cloned().unwrap_or_default())
            .filter(|a| a["family"] == "inet")
            .map(|a| format!("{}/{}", a["local"].as_str().unwrap_or("?"), a["prefixlen"]))
            .collect();
        out.sort();
        out
    }

    /// The IPv4 routes of the main table in `ns`: `ip -j route show`.
    pub fn routes(&self, ns: Option<&str>) -> Vec<Value> {
        array(self.ip_json_in(ns, &["route", "show"]))
    }

    /// The IPv4 default route of `ns`, if any.
    pub fn default_route(&self, ns: Option<&str>) -> Option<Value> {
        self.routes(ns).into_iter().find(|r| r["dst"] == "default")
    }

    /// Every interface, in the sandbox's namespace and in every named namespace, whose alias
    /// is a plumb tag, as `NS/IFNAME=plumb:LAB` (NS is `host` for the sandbox's own; see
    /// [`alias_tag`]), sorted.
    pub fn tagged(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut places: Vec<Option<String>> = vec![None];
        places.extend(self.netns_list().into_iter().map(Some));
        for ns in places {
            let links = match self.try_ip_json_in(ns.as_deref(), &["link", "show"]) {
                Ok(links) => links,
                // Deleted while we looked: it holds nothing any more.
                Err(_) if ns.as_ref().is_some_and(|n| !self.netns_list().contains(n)) => continue,
                // Still listed but unreadable: hiding it could hide a leftover.
                Err(e) => panic!(
                    "namespace {} is listed but cannot be read\n{e}",
                    ns.as_deref().unwrap_or("host")
                ),
            };
            for l in array(links) {
                if let Some(tag) = l["ifalias"].as_str().and_then(alias_tag) {
                    out.push(format!(
                        "{}/{}={tag}",
                        ns.as_deref().unwrap_or("host"),
                        l["ifname"].as_str().unwrap_or("?")
                    ));
                }
            }
        }
        out.sort();
        out
    }

    /// One ping from `ns` to `addr` (`ip netns exec NS ping -c 1 -W 2 ADDR`), tried up to three
    /// times so that a first ARP or bridge-learning hiccup does not fail a test. Returns the last
    /// attempt's output.
    pub fn ping(&self, ns: Option<&str>, addr: &str) -> std::process::Output {
        let mut argv = Vec::new();
        if let Some(ns) = ns {
            argv.extend(["ip", "netns", "exec", ns]);
        }
        argv.extend(["ping", "-n", "-c", "1", "-W", "2", addr]);
        let mut last = self.run(&argv);
        for _ in 0..2 {
            if last.status.success() {
                break;
            }
            thread::sleep(Duration::from_millis(200));
            last = self.run(&argv);
        }
        last
    }

    /// The sockets in `ns` that wait for peers, as `ss -H -l -n -t -u` (iproute2) lists them: TCP
    /// listeners and bound, unconnected UDP sockets, each as `PROTO LOCAL` (`tcp 0.0.0.0:8080`,
    /// `udp [::]:53`), sorted. Panics if `ss` fails or prints a line it cannot read.
    pub fn listening(&self, ns: Option<&str>) -> Vec<String> {
        let mut argv = Vec::new();
        if let Some(ns) = ns {
            argv.extend(["ip", "netns", "exec", ns]);
        }
        argv.extend(["ss", "-H", "-l", "-n", "-t", "-u"]);
        let out = self.run(&argv);
        assert!(
            out.status.success(),
            "{argv:?} failed inside the sandbox\n{}",
            describe(&out)
        );
        let mut found: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                // Netid State Recv-Q Send-Q Local:Port Peer:Port [Process]
                let cols: Vec<&str> = l.split_whitespace().collect();
                assert!(
                    cols.len() >= 6 && matches!(cols[0], "tcp" | "udp"),
                    "{argv:?} printed a line this oracle cannot read: {l:?}"
                );
                format!("{} {}", cols[0], cols[4])
            })
            .collect();
        found.sort();
        found
    }

    /// The processes with a thread in the named namespace `/run/netns/NAME`, sorted and without
    /// duplicates: every `/proc/PID/task/TID/ns/net` that links to the namespace's inode, read
    /// inside the sandbox. Panics if the namespace does not exist.
    pub fn pids_in_netns(&self, name: &str) -> Vec<u32> {
        let script = format!(
            "ino=$(stat -L -c %i /run/netns/{name}) || exit 3; \
             for t in /proc/[0-9]*/task/[0-9]*; do \
               [ \"$(readlink \"$t/ns/net\" 2>/dev/null)\" = \"net:[$ino]\" ] && echo \"$t\"; \
             done; exit 0"
        );
        let stdout = self.sh_ok(&script);
        let mut pids: Vec<u32> = stdout
            .lines()
            .map(|l| {
                l.strip_prefix("/proc/")
                    .and_then(|rest| rest.split('/').next())
                    .and_then(|pid| pid.parse().ok())
                    .unwrap_or_else(|| panic!("unexpected /proc path {l:?}"))
            })
            .collect();
        pids.sort_unstable();
        pids.dedup();
        pids
    }

    /// [`Sandbox::ping`], panicking with the output if no reply came.
    pub fn ping_ok(&self, ns: Option<&str>, addr: &str) {
        let out = self.ping(ns, addr);
        assert!(
            out.status.success(),
            "ping from {} to {addr} got no reply\n{}",
            ns.unwrap_or("host"),
            describe(&out)
        );
    }

    /// `nft -j list ruleset` in the sandbox (`None`) or inside a named namespace, without the
    /// handles the kernel numbers objects with (a table that is deleted and recreated with the
    /// same content gets new ones) and without nft's own `metainfo`.
    pub fn nft_ruleset(&self, ns: Option<&str>) -> Value {
        self.try_nft_ruleset(ns).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Like [`Sandbox::nft_ruleset`], but returns the failure instead of panicking.
    pub fn try_nft_ruleset(&self, ns: Option<&str>) -> Result<Value, String> {
        let mut argv = Vec::new();
        if let Some(ns) = ns {
            argv.extend(["ip", "netns", "exec", ns]);
        }
        argv.extend(["nft", "-j", "list", "ruleset"]);
        let out = self.run(&argv);
        if !out.status.success() {
            return Err(format!("{argv:?} failed\n{}", describe(&out)));
        }
        let mut v = parse_json(&argv, &out.stdout);
        fn strip(v: &mut Value) {
            match v {
                Value::Object(m) => {
                    m.remove("handle");
                    m.values_mut().for_each(strip);
                }
                Value::Array(items) => {
                    items.retain(|i| i.get("metainfo").is_none());
                    items.iter_mut().for_each(strip);
                }
                _ => {}
            }
        }
        strip(&mut v);
        Ok(v)
    }

    /// The files plumb keeps in its state directory (`/run/plumb`): locks and journals. Empty
    /// when no plumb runs and no change was interrupted.
    pub fn plumb_state_files(&self) -> Vec<String> {
        let out = self.run(&["sh", "-c", "ls -A /run/plumb 2>/dev/null || true"]);
        let mut v: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect();
        v.sort();
        v
    }

    /// The whole observable state, volatile values stripped (see [`strip_volatile`]):
    /// `{"netns": [names], "nodes": {"host"|NAME: {"link", "addr", "route4", "route6", "nft"}}}`,
    /// where each view is the `ip -j` dump (`-d link`, `addr`, `-4 route show table all`,
    /// `-6 route show table all`) and `nft -j list ruleset` without handles. Two snapshots are
    /// equal when nothing was reconfigured, ifindexes included.
    pub fn snapshot(&self) -> Value {
        let netns = self.netns_list();
        let mut nodes = Map::new();
        let mut places: Vec<Option<&str>> = vec![None];
        places.extend(netns.iter().map(|s| Some(s.as_str())));
        for ns in places {
            let mut views = Map::new();
            for (key, args) in [
                ("link", &["-d", "link", "show"][..]),
                ("addr", &["addr", "show"][..]),
                ("route4", &["-4", "route", "show", "table", "all"][..]),
                ("route6", &["-6", "route", "show", "table", "all"][..]),
            ] {
                let mut view = self
                    .try_ip_json_in(ns, args)
                    .unwrap_or_else(|e| json!({ "error": e }));
                if key.starts_with("route") {
                    // Routes to one prefix are listed in the order they were inserted: a port
                    // taken down and up again moves its (kernel-made) routes to the end. The
                    // order is not configuration; the set of routes is.
                    if let Value::Array(routes) = &mut view {
                        routes.sort_by_key(|r| r.to_string());
                    }
                }
                views.insert(key.to_string(), view);
            }
            let nft = self
                .try_nft_ruleset(ns)
                .unwrap_or_else(|e| json!({ "error": e }));
            views.insert("nft".to_string(), nft);
            nodes.insert(ns.unwrap_or("host").to_string(), Value::Object(views));
        }
        let mut snap = json!({ "netns": netns, "nodes": nodes });
        strip_volatile(&mut snap);
        snap
    }

    /// Polls [`Sandbox::snapshot`] for up to `timeout` until it equals `expected`; panics with
    /// `what` and the lines that differ otherwise. The wait covers the kernel's asynchronous
    /// cleanup of deleted namespaces (their veths' peers elsewhere vanish a little later).
    pub fn assert_state_eventually(&self, expected: &Value, timeout: Duration, what: &str) {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let now = self.snapshot();
            if &now == expected {
                return;
            }
            if std::time::Instant::now() >= deadline {
                panic!(
                    "{what}: the state differs from the expected one\n{}",
                    line_diff(expected, &now)
                );
            }
            thread::sleep(Duration::from_millis(100));
        }
    }

    /// A [`Sandbox::snapshot`] taken once the state has stopped changing by itself (operstate
    /// settling, IPv6 duplicate address detection, asynchronous namespace cleanup): two equal
    /// snapshots 300 ms apart, or the last one after about six seconds.
    pub fn settled_snapshot(&self) -> Value {
        let mut last = self.snapshot();
        for _ in 0..20 {
            thread::sleep(Duration::from_millis(300));
            let next = self.snapshot();
            if next == last {
                return next;
            }
            last = next;
        }
        last
    }
}

/// The lines of the pretty-printed `expected` and `actual` that the other lacks, marked `-` and
/// `+`: enough to see which object changed in a failed comparison.
pub fn line_diff(expected: &Value, actual: &Value) -> String {
    let pretty = |v: &Value| serde_json::to_string_pretty(v).unwrap_or_default();
    let (a, b) = (pretty(expected), pretty(actual));
    let a_lines: Vec<&str> = a.lines().collect();
    let b_lines: Vec<&str> = b.lines().collect();
    let mut out = String::new();
    for l in &a_lines {
        if !b_lines.contains(l) {
            out.push_str(&format!("- {}\n", l.trim()));
        }
    }
    for l in &b_lines {
        if !a_lines.contains(l) {
            out.push_str(&format!("+ {}\n", l.trim()));
        }
    }
    if out.is_empty() {
        out.push_str("(same lines in a different order)\n");
    }
    out.push_str(&format!("--- actual ---\n{b}\n"));
    out
}
