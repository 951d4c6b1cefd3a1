//! `doctor`: findings about the machine's container networking, computed from an inspect
//! [`Snapshot`] plus a few extra reads ([`Extra`]: sysctls, neighbour and conntrack counts,
//! nftables tables, which namespaces hold a process).
//!
//! Invariants:
//! - every check is a pure function of `(Snapshot, Extra, labs)`; only [`gather`] (in `read`)
//!   touches the kernel, and only to read. So the checks run unchanged on any snapshot, a wider
//!   one included;
//! - a finding names one object, gives its evidence as numbers or values read from the kernel,
//!   says why it matters and how to fix it; [`Severity::Error`] means traffic is (or is about to
//!   be) lost;
//! - the neighbour table's limits are shared by every namespace and visible only from the
//!   root namespace: `read` enters pid 1's namespace on a throwaway thread when it may, asks
//!   the kernel's neighbour-table dump otherwise, and says when it fell back to the defaults.
//!
//! Files: `read` (the extra reads), `peers` (veth pairs across namespaces), `limits`
//! (neighbour table, conntrack), `paths` (forwarding, rp_filter, bridge netfilter, MTU, peers,
//! leaked namespaces, duplicate addresses, overlapping subnets), `firewall` (foreign drop
//! chains, namespaces without a firewall), `lab` (a lab against its file, through the diff `up`
//! would apply).

mod addrs;
mod firewall;
mod lab;
mod limits;
mod paths;
mod peers;
mod read;

use std::collections::BTreeMap;

use crate::inspect::{NsState, Snapshot};
use crate::model::names::NsName;

pub use lab::lab_findings;
pub use read::{gather, DoctorError};

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Worth knowing; nothing is lost.
    Info,
    /// Something will misbehave under some traffic or load.
    Warning,
    /// Traffic is lost, or is about to be.
    Error,
}

impl std::fmt::Display for Severity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
        })
    }
}

/// One value read from the kernel that supports a finding.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(untagged)]
pub enum Value {
    /// A count or a setting.
    Number(u64),
    /// A name, an address, a state.
    Text(String),
}

impl std::fmt::Display for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Value::Number(n) => write!(f, "{n}"),
            Value::Text(t) => f.write_str(t),
        }
    }
}

impl From<u64> for Value {
    fn from(n: u64) -> Self {
        Value::Number(n)
    }
}

impl From<usize> for Value {
    fn from(n: usize) -> Self {
        Value::Number(n as u64)
    }
}

impl From<u32> for Value {
    fn from(n: u32) -> Self {
        Value::Number(u64::from(n))
    }
}

impl From<String> for Value {
    fn from(t: String) -> Self {
        Value::Text(t)
    }
}

impl From<&str> for Value {
    fn from(t: &str) -> Self {
        Value::Text(t.to_string())
    }
}

/// One diagnosis.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Finding {
    /// Which check found it (a stable identifier: `neighbour-table`, `mtu-mismatch`…).
    pub check: &'static str,
    /// How bad it is.
    pub severity: Severity,
    /// The lab it concerns, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lab: Option<String>,
    /// The object: `host`, a namespace, `NS/IFACE`, `family table/chain`…
    pub object: String,
    /// What is wrong, in one sentence.
    pub summary: String,
    /// The numbers and values read, by name.
    pub evidence: BTreeMap<String, Value>,
    /// Why it matters.
    pub why: String,
    /// What to do.
    pub fix: String,
}

impl Finding {
    fn new(check: &'static str, severity: Severity, object: impl Into<String>) -> Self {
        Finding {
            check,
            severity,
            lab: None,
            object: object.into(),
            summary: String::new(),
            evidence: BTreeMap::new(),
            why: String::new(),
            fix: String::new(),
        }
    }

    fn lab(mut self, lab: Option<&str>) -> Self {
        self.lab = lab.map(str::to_string);
        self
    }

    fn summary(mut self, s: impl Into<String>) -> Self {
        self.summary = s.into();
        self
    }

    fn with(mut self, key: &str, v: impl Into<Value>) -> Self {
        self.evidence.insert(key.to_string(), v.into());
        self
    }

    fn why(mut self, s: impl Into<String>) -> Self {
        self.why = s.into();
        self
    }

    fn fix(mut self, s: impl Into<String>) -> Self {
        self.fix = s.into();
        self
    }
}

/// Where the neighbour table's limits came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LimitSource {
    /// `/proc/sys` of the root namespace (pid 1's), read by a thread that entered it.
    RootNamespace,
    /// The kernel's neighbour-table dump (`RTM_GETNEIGHTBL`, what `ip ntable` shows).
    NeighbourTableDump,
    /// Neither could be read: the kernel's defaults (128/512/1024) were assumed.
    AssumedDefaults,
}

/// One neighbour table (ARP or NDISC), shared by every namespace of the machine.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct NeighTable {
    /// `ipv4` (ARP) or `ipv6` (NDISC).
    pub family: &'static str,
    /// `gc_thresh1`: below it, no garbage collection.
    pub gc_thresh1: u64,
    /// `gc_thresh2`: above it, entries older than 5 s are collected when a new one is made.
    pub gc_thresh2: u64,
    /// `gc_thresh3`: the hard limit; past it, new neighbours fail with ENOBUFS.
    pub gc_thresh3: u64,
    /// Where the three limits came from.
    pub source: LimitSource,
    /// Entries in the table, all namespaces together (the kernel's count), when it could be
    /// read.
    pub entries: Option<u64>,
    /// How often the table was found full since boot (`table_fulls`), when it could be read.
    pub table_fulls: Option<u64>,
}

/// What doctor reads besides the snapshot, for one namespace.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct NsExtra {
    /// The sysctls doctor looks at (`net.ipv4.ip_forward`, `rp_filter`s, `bridge-nf-call-*`,
    /// conntrack count and max), by key; a key that does not exist here is absent.
    pub sysctls: BTreeMap<String, String>,
    /// Neighbour entries in this namespace that count against `gc_thresh3` (not permanent).
    pub neighbours: u64,
    /// nftables tables here, as `FAMILY NAME`.
    pub nft_tables: Vec<String>,
    /// Base chains of tables other than plumb's on the forward hook with a drop policy.
    pub forward_drops: Vec<String>,
    /// Something besides its name holds it: a process or thread in it, an open descriptor,
    /// another bind mount.
    pub has_process: bool,
}

impl NsExtra {
    /// A sysctl as a number.
    pub fn num(&self, key: &str) -> Option<u64> {
        self.sysctls.get(key).and_then(|v| v.trim().parse().ok())
    }
}

/// Everything doctor reads besides the snapshot.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Extra {
    /// The namespace plumb runs in.
    pub host: NsExtra,
    /// Named namespaces.
    pub namespaces: BTreeMap<NsName, NsExtra>,
    /// The neighbour tables.
    pub neigh: Vec<NeighTable>,
}

/// One place of the snapshot, with what doctor read there.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Place<'a> {
    /// `host` or the namespace's name.
    pub name: &'a str,
    /// `None` for the host.
    pub ns: Option<&'a NsName>,
    pub state: &'a NsState,
    pub extra: Option<&'a NsExtra>,
}

impl<'a> Place<'a> {
    /// The lab that owns this namespace (never the host).
    pub fn owner(&self) -> Option<&'a str> {
        self.ns.and_then(|_| self.state.owner())
    }
}

/// The host and every readable named namespace, with their extra reads.
pub(crate) fn places<'a>(snap: &'a Snapshot, extra: &'a Extra) -> Vec<Place<'a>> {
    let mut out = vec![Place {
        name: "host",
        ns: None,
        state: &snap.host,
        extra: Some(&extra.host),
    }];
    for (name, ns) in &snap.namespaces {
        if let Ok(state) = &ns.state {
            out.push(Place {
                name: name.as_str(),
                ns: Some(name),
                state,
                extra: extra.namespaces.get(name),
            });
        }
    }
    out
}

/// Every snapshot-based finding, sorted errors first. `labs` restricts lab-specific findings
/// to those labs (empty: the whole machine); findings about no lab in particular (shared
/// limits, leaked namespaces, foreign objects) are always kept. A lab's file is compared with
/// the kernel by [`lab_findings`].
pub fn diagnose(snap: &Snapshot, extra: &Extra, labs: &[&str]) -> Vec<Finding> {
    let pairs = peers::pairs(snap);
    let mut out = Vec::new();
    out.extend(limits::neighbour(snap, extra));
    out.extend(limits::conntrack(snap, extra));
    out.extend(paths::forwarding(snap, extra));
    out.extend(paths::rp_filter(snap, extra));
    out.extend(paths::bridge_netfilter(snap, extra));
    out.extend(paths::mtu(snap, &pairs));
    out.extend(paths::lost_peers(snap, &pairs));
    out.extend(paths::leaked(snap, extra));
    out.extend(addrs::duplicates(&pairs));
    out.extend(addrs::overlaps(snap));
    out.extend(firewall::foreign_drops(snap, extra));
    out.extend(firewall::unprotected(snap, extra));
    if !labs.is_empty() {
        out.retain(|f| match &f.lab {
            Some(l) => labs.iter().any(|i| *i == l),
            None => true,
        });
    }
    sort(&mut out);
    out
}

/// Errors first, then by check and object.
pub fn sort(findings: &mut [Finding]) {
    findings.sort_by(|a, b| {
        b.severity
            .cmp(&a.severity)
            .then_with(|| a.check.cmp(b.check))
            .then_with(|| a.object.cmp(&b.object))
    });
}

#[cfg(test)]
mod tests;
