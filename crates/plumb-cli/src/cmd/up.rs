//! `plumb up FILE [--dry-run] [--json] [--wait]`.

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use plumb::lab::{self, UpOptions};
use plumb::plan::Step;

use crate::Outcome;

/// Build (or converge) a lab.
#[derive(clap::Args)]
pub struct Args {
    /// The topology file (TOML, or JSON with a .json name).
    file: PathBuf,
    /// Print the plan as `ip` commands and change nothing; exit 1 if there are changes.
    #[arg(long)]
    dry_run: bool,
    /// Print what was done (or, with --dry-run, would be) as JSON.
    #[arg(long)]
    json: bool,
    /// If another plumb is changing the same lab, wait for it instead of failing.
    #[arg(long)]
    wait: bool,
}

/// Version 2 of `plumb up --json` (`docs/schema/up.v2.json`; version 1 carried a firewall
/// step's rules as a JSON string).
#[derive(serde::Serialize)]
struct UpJson<'a> {
    /// Format version.
    version: u32,
    /// The lab.
    lab: &'a str,
    /// Nothing was changed (a dry run).
    dry_run: bool,
    /// The steps that ran (or would run), in order.
    steps: &'a [Step],
    /// Steps that removed what an interrupted earlier change had left, before this one.
    recovered: &'a [Step],
    /// Things in the way that plumb may not fix.
    warnings: &'a [String],
    /// Wall time, milliseconds (0 for a dry run).
    elapsed_ms: u128,
}

pub fn run(a: Args) -> anyhow::Result<Outcome> {
    let started = Instant::now();
    // Loading asks the kernel too: a sysctl that does not exist is refused at its line.
    let machine = plumb::inspect::KernelMachine::default();
    let topo = plumb::model::load_for(&a.file, &machine).map_err(|e| anyhow::anyhow!("{e}"))?;
    tracing::debug!(elapsed = ?started.elapsed(), "up: file loaded");
    let mut bar: Option<super::Progress> = None;
    let mut progress = |done: usize, total: usize| {
        bar.get_or_insert_with(|| super::Progress::new(total))
            .set(done);
    };
    let report = lab::up(
        &topo,
        UpOptions {
            dry_run: a.dry_run,
            wait: a.wait,
            progress: &mut progress,
        },
    )?;
    drop(bar);
    for w in &report.warnings {
        let _ = writeln!(std::io::stderr(), "plumb: warning: {w}");
    }
    let plan = &report.plan;
    let recovered: &[Step] = report.recovered.as_ref().map_or(&[], |p| &p.steps);
    let mut out = std::io::stdout().lock();
    if a.json {
        let doc = UpJson {
            version: 2,
            lab: topo.name.as_str(),
            dry_run: a.dry_run,
            steps: &plan.steps,
            recovered,
            warnings: &report.warnings,
            elapsed_ms: if a.dry_run {
                0
            } else {
                started.elapsed().as_millis()
            },
        };
        serde_json::to_writer_pretty(&mut out, &doc)?;
        writeln!(out)?;
    } else if a.dry_run {
        if plan.is_empty() {
            writeln!(out, "lab {}: up to date, nothing to do", topo.name)?;
        } else {
            for s in &plan.steps {
                writeln!(out, "{s}")?;
            }
            writeln!(out, "# {} step(s) would run", plan.steps.len())?;
        }
    } else {
        if !recovered.is_empty() {
            writeln!(
                out,
                "lab {}: removed what an interrupted change had left ({} step(s))",
                topo.name,
                recovered.len()
            )?;
        }
        if plan.is_empty() {
            writeln!(out, "lab {}: up to date, nothing changed", topo.name)?;
        } else {
            writeln!(
                out,
                "lab {}: {} step(s) applied in {:.1} ms ({} namespace(s), {} link(s))",
                topo.name,
                plan.steps.len(),
                started.elapsed().as_secs_f64() * 1000.0,
                topo.nodes.len(),
                topo.links.len() + topo.bridges.len()
            )?;
        }
    }
    Ok(if a.dry_run && !plan.is_empty() {
        Outcome::Difference
    } else {
        Outcome::Ok
    })
}
