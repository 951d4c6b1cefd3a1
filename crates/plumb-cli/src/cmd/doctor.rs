//! `plumb doctor [LAB|FILE]... [--json]`.

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use plumb::doctor::{self, Finding, LimitSource, NeighTable, Severity};
use plumb::inspect::{self, Depth};
use plumb::model::Topology;
use plumb::netns::Registry;

use crate::Outcome;

/// Diagnose the machine's container networking, or some labs: shared limits (neighbour table,
/// conntrack), forwarding, rp_filter, bridge netfilter, MTUs, lost veth peers, leaked
/// namespaces, duplicate addresses, overlapping subnets, foreign drop chains, namespaces
/// without a firewall, and labs that differ from their file. Exits 1 if any finding is an
/// error.
#[derive(clap::Args)]
pub struct Args {
    /// Labs to look at, by name or by topology file (a file also compares the lab with it,
    /// as `plumb up` would). None: the whole machine.
    targets: Vec<String>,
    /// JSON output (version 1, docs/schema/doctor.v1.json).
    #[arg(long)]
    json: bool,
}

#[derive(serde::Serialize)]
struct Report<'a> {
    version: u32,
    neighbour_tables: &'a [NeighTable],
    findings: &'a [Finding],
    errors: usize,
    warnings: usize,
    infos: usize,
}

fn is_file(target: &str) -> bool {
    Path::new(target).is_file()
}

pub fn run(a: Args) -> anyhow::Result<Outcome> {
    let reg = Registry::default();
    let mut topos: Vec<Topology> = Vec::new();
    let mut names: Vec<String> = Vec::new();
    for t in &a.targets {
        if is_file(t) {
            let topo = super::load(Path::new(t))?;
            names.push(topo.name.to_string());
            topos.push(topo);
        } else {
            names.push(super::down::lab_of(t)?.to_string());
        }
    }
    let t0 = std::time::Instant::now();
    let mut snap = inspect::snapshot(&reg, Depth::Full, &|_| Vec::new())
        .context("cannot read the machine's network state")?;
    // The whole machine unless labs were named: containers' namespaces, and any other one not
    // in /run/netns, are examined too. Discovery (every process and mount) runs once.
    let found = inspect::discover::discover(&inspect::discover::Roots::default());
    let paths = if a.targets.is_empty() {
        inspect::add_unnamed(&mut snap, &found)
            .context("cannot read the machine's other namespaces")?
    } else {
        Default::default()
    };
    let present = snap.labs();
    for (t, n) in a.targets.iter().zip(&names) {
        if !is_file(t) && !present.contains_key(n) {
            anyhow::bail!("lab `{n}` is not here (`plumb ls` lists the labs)");
        }
    }
    let t_snap = t0.elapsed();
    let extra =
        doctor::gather(&snap, &reg, &paths, &found).context("cannot read what doctor needs")?;
    let t_extra = t0.elapsed() - t_snap;
    let labs: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut findings = doctor::diagnose(&snap, &extra, &labs);
    tracing::debug!(?t_snap, ?t_extra, checks = ?(t0.elapsed() - t_snap - t_extra), "doctor: read and diagnosed");
    for topo in &topos {
        let lab_snap = plumb::lab::snapshot_for(&topo.name, Some(topo))?;
        for f in doctor::lab_findings(topo, &lab_snap) {
            // The same symptom seen both ways (forwarding off) is reported once.
            if !findings
                .iter()
                .any(|g| g.check == f.check && g.object == f.object)
            {
                findings.push(f);
            }
        }
    }
    doctor::sort(&mut findings);
    let count = |s: Severity| findings.iter().filter(|f| f.severity == s).count();
    let (errors, warnings, infos) = (
        count(Severity::Error),
        count(Severity::Warning),
        count(Severity::Info),
    );
    let mut out = std::io::stdout().lock();
    if a.json {
        let r = Report {
            version: 1,
            neighbour_tables: &extra.neigh,
            findings: &findings,
            errors,
            warnings,
            infos,
        };
        serde_json::to_writer_pretty(&mut out, &r)?;
        writeln!(out)?;
    } else {
        for t in &extra.neigh {
            let from = match t.source {
                LimitSource::RootNamespace => "limits read in the root namespace".to_string(),
                LimitSource::NeighbourTableDump => {
                    "limits from the kernel's neighbour table dump; the root namespace is out of reach".to_string()
                }
                LimitSource::AssumedDefaults => {
                    "limits not readable here: the kernel's defaults were assumed".to_string()
                }
            };
            writeln!(
                out,
                "{} neighbour table: {} entries, gc_thresh1/2/3 {}/{}/{} ({from})",
                t.family,
                t.entries.map_or("?".to_string(), |e| e.to_string()),
                t.gc_thresh1,
                t.gc_thresh2,
                t.gc_thresh3
            )?;
        }
        for f in &findings {
            write_finding(&mut out, f)?;
        }
        writeln!(
            out,
            "{errors} error(s), {warnings} warning(s), {infos} info"
        )?;
    }
    Ok(if errors > 0 {
        Outcome::Difference
    } else {
        Outcome::Ok
    })
}

fn write_finding(out: &mut impl Write, f: &Finding) -> std::io::Result<()> {
    let lab = f
        .lab
        .as_deref()
        .map_or(String::new(), |l| format!(" (lab {l})"));
    writeln!(out, "\n{:<7} {} {}{lab}", f.severity, f.check, f.object)?;
    writeln!(out, "  {}", f.summary)?;
    for (k, v) in &f.evidence {
        let v = v.to_string();
        if v.contains('\n') {
            writeln!(out, "  {k}:")?;
            for line in v.lines() {
                writeln!(out, "      {line}")?;
            }
        } else {
            writeln!(out, "  {k}: {v}")?;
        }
    }
    writeln!(out, "  why: {}", f.why)?;
    writeln!(out, "  fix: {}", f.fix)
}
