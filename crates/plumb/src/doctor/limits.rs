//! Shared kernel limits: the neighbour tables (one per family for the whole machine, whatever
//! the namespace) and each namespace's connection tracking table.

use super::{places, Extra, Finding, LimitSource, Severity};
use crate::inspect::Snapshot;

/// Above this share of `gc_thresh3` a burst of new neighbours (a few hundred containers
/// starting, a scan) reaches the limit before garbage collection may free anything: fresh
/// entries (under 5 s old) are never collected.
pub const NEIGH_IMMINENT_PCT: u64 = 85;
/// Conntrack use that deserves a warning, and an error.
pub const CONNTRACK_WARN_PCT: u64 = 75;
/// See [`CONNTRACK_WARN_PCT`].
pub const CONNTRACK_ERROR_PCT: u64 = 90;

fn source_text(s: LimitSource) -> &'static str {
    match s {
        LimitSource::RootNamespace => "root namespace /proc/sys",
        LimitSource::NeighbourTableDump => "neighbour table dump",
        LimitSource::AssumedDefaults => "kernel defaults assumed",
    }
}

/// Neighbour table use against `gc_thresh2/3`, all namespaces together.
pub(crate) fn neighbour(snap: &Snapshot, extra: &Extra) -> Vec<Finding> {
    let seen: u64 = places(snap, extra)
        .iter()
        .filter_map(|p| p.extra)
        .map(|x| x.neighbours)
        .sum();
    let busiest = places(snap, extra)
        .iter()
        .filter_map(|p| p.extra.map(|x| (x.neighbours, p.name)))
        .max();
    let mut out = Vec::new();
    for t in &extra.neigh {
        // The kernel's own count covers every namespace; without it, what doctor could see.
        let entries = t.entries.unwrap_or(seen);
        let pct = entries * 100 / t.gc_thresh3.max(1);
        let (severity, summary) = if entries >= t.gc_thresh3 {
            (
                Severity::Error,
                format!(
                    "the {} neighbour table is full: new neighbours fail with \"No buffer space available\" now",
                    t.family
                ),
            )
        } else if pct >= NEIGH_IMMINENT_PCT {
            (
                Severity::Error,
                format!(
                    "the {} neighbour table is at {pct}% of gc_thresh3: \"No buffer space available\" is imminent",
                    t.family
                ),
            )
        } else if entries > t.gc_thresh2 {
            (
                Severity::Warning,
                format!(
                    "the {} neighbour table is above gc_thresh2: the kernel collects entries on every new neighbour",
                    t.family
                ),
            )
        } else {
            continue;
        };
        let mut f = Finding::new(
            "neighbour-table",
            severity,
            format!("{} neighbour table", t.family),
        )
        .summary(summary)
        .with("entries", entries)
        .with("percent_of_gc_thresh3", pct)
        .with("gc_thresh1", t.gc_thresh1)
        .with("gc_thresh2", t.gc_thresh2)
        .with("gc_thresh3", t.gc_thresh3)
        .with("limits_from", source_text(t.source))
        .with("entries_in_namespaces_seen", seen);
        if let Some(n) = t.table_fulls {
            f = f.with("table_fulls_since_boot", n);
        }
        if let Some((n, name)) = busiest {
            f = f.with("busiest_namespace", format!("{name} ({n} entries)"));
        }
        out.push(
            f.why("every namespace shares one neighbour table and its limits; past gc_thresh3 the kernel refuses new entries, and packets to new neighbours are dropped with ENOBUFS in every namespace, the host's own included")
            .fix(format!(
                "raise the limits in the root namespace (sysctl -w net.{fam}.neigh.default.gc_thresh3={} net.{fam}.neigh.default.gc_thresh2={}), or run fewer neighbours per machine",
                (t.gc_thresh3 * 4).max(entries * 2),
                (t.gc_thresh2 * 4).max(entries),
                fam = t.family
            )),
        );
    }
    out
}

/// Each namespace's connection tracking table against its maximum.
pub(crate) fn conntrack(snap: &Snapshot, extra: &Extra) -> Vec<Finding> {
    let mut out = Vec::new();
    for p in places(snap, extra) {
        let Some(x) = p.extra else { continue };
        let (Some(count), Some(max)) = (
            x.num("net.netfilter.nf_conntrack_count"),
            x.num("net.netfilter.nf_conntrack_max"),
        ) else {
            continue;
        };
        if max == 0 {
            continue;
        }
        let pct = count * 100 / max;
        let severity = if pct >= CONNTRACK_ERROR_PCT {
            Severity::Error
        } else if pct >= CONNTRACK_WARN_PCT {
            Severity::Warning
        } else {
            continue;
        };
        out.push(
            Finding::new("conntrack", severity, p.name)
                .lab(p.owner())
                .summary(format!(
                    "{pct}% of the connection tracking table is in use in {}",
                    p.name
                ))
                .with("nf_conntrack_count", count)
                .with("nf_conntrack_max", max)
                .with("percent", pct)
                .why("when the table is full the kernel drops new connections (\"nf_conntrack: table full, dropping packet\"); NAT and stateful firewalls stop working for new flows")
                .fix("raise net.netfilter.nf_conntrack_max in the root namespace, or shorten the timeouts of idle flows (net.netfilter.nf_conntrack_udp_timeout, nf_conntrack_tcp_timeout_established)"),
        );
    }
    out
}
