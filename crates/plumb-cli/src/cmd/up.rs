//! `plumb up FILE [--dry-run]`.

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use plumb::lab::{self, UpOptions};

use crate::Outcome;

/// Build (or converge) a lab.
#[derive(clap::Args)]
pub struct Args {
    /// The topology file (TOML, or JSON with a .json name).
    file: PathBuf,
    /// Print the plan as `ip` commands and change nothing; exit 1 if there are changes.
    #[arg(long)]
    dry_run: bool,
    /// Print the plan as JSON (with --dry-run).
    #[arg(long)]
    json: bool,
}

pub fn run(a: Args) -> anyhow::Result<Outcome> {
    let topo = super::load(&a.file)?;
    let started = Instant::now();
    let fail_at = super::env_usize("PLUMB_INJECT_FAILURE")?;
    let stall_after = super::env_usize("PLUMB_STALL_AFTER")?;
    let mut bar: Option<super::Progress> = None;
    let mut progress = |done: usize, total: usize| {
        bar.get_or_insert_with(|| super::Progress::new(total))
            .set(done);
    };
    let mut on_stall = || {
        let _ = writeln!(std::io::stderr(), "plumb: stalled");
        loop {
            std::thread::sleep(std::time::Duration::from_secs(3600));
        }
    };
    let report = lab::up(
        &topo,
        UpOptions {
            dry_run: a.dry_run,
            fail_at,
            stall_after,
            progress: &mut progress,
            on_stall: &mut on_stall,
        },
    )?;
    for w in &report.warnings {
        let _ = writeln!(std::io::stderr(), "plumb: warning: {w}");
    }
    let plan = report.plan;
    let mut out = std::io::stdout().lock();
    if a.dry_run {
        if a.json {
            serde_json::to_writer_pretty(&mut out, &plan)?;
            writeln!(out)?;
        } else if plan.is_empty() {
            writeln!(out, "lab {}: up to date, nothing to do", topo.name)?;
        } else {
            for s in &plan.steps {
                writeln!(out, "{s}")?;
            }
            writeln!(out, "# {} step(s) would run", plan.steps.len())?;
        }
        return Ok(if plan.is_empty() {
            Outcome::Ok
        } else {
            Outcome::Difference
        });
    }
    if plan.is_empty() {
        writeln!(out, "lab {}: up to date, nothing changed", topo.name)?;
    } else {
        writeln!(
            out,
            "lab {}: {} step(s) applied in {:.2?} ({} namespace(s), {} link(s))",
            topo.name,
            plan.steps.len(),
            started.elapsed(),
            topo.nodes.len(),
            topo.links.len() + topo.bridges.len()
        )?;
    }
    Ok(Outcome::Ok)
}
