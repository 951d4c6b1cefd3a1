//! `plumb gc [--dry-run]`.

use std::io::Write;

use crate::Outcome;

/// Remove labs whose last `up` or `down` never completed.
#[derive(clap::Args)]
pub struct Args {
    /// Print what would be removed and change nothing.
    #[arg(long)]
    dry_run: bool,
}

pub fn run(a: Args) -> anyhow::Result<Outcome> {
    let removed = plumb::lab::gc(a.dry_run)?;
    let mut out = std::io::stdout().lock();
    if removed.is_empty() {
        writeln!(out, "nothing to collect")?;
        return Ok(Outcome::Ok);
    }
    for (lab, plan) in &removed {
        if a.dry_run {
            writeln!(out, "lab {lab} (interrupted) would be removed:")?;
            for s in &plan.steps {
                writeln!(out, "  {s}")?;
            }
        } else {
            writeln!(
                out,
                "lab {lab} (interrupted): removed ({} step(s))",
                plan.steps.len()
            )?;
        }
    }
    Ok(if a.dry_run {
        Outcome::Difference
    } else {
        Outcome::Ok
    })
}
