//! `plumb down FILE|LAB`.

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use plumb::model::names::LabName;

use crate::Outcome;

/// Remove everything a lab owns (found by the tags on its objects, no file needed).
#[derive(clap::Args)]
pub struct Args {
    /// A topology file, or a lab's name.
    target: String,
    /// Print what would be removed and change nothing.
    #[arg(long)]
    dry_run: bool,
}

/// A lab's name from a file or from the argument itself.
pub fn lab_of(target: &str) -> anyhow::Result<LabName> {
    let p = Path::new(target);
    if p.is_file() {
        return Ok(super::load(p)?.name);
    }
    LabName::new(target)
        .with_context(|| format!("`{target}` is neither a topology file nor a lab name"))
}

pub fn run(a: Args) -> anyhow::Result<Outcome> {
    let lab = lab_of(&a.target)?;
    let plan = plumb::lab::down(&lab, a.dry_run)?;
    let mut out = std::io::stdout().lock();
    if a.dry_run {
        for s in &plan.steps {
            writeln!(out, "{s}")?;
        }
        return Ok(if plan.is_empty() {
            Outcome::Ok
        } else {
            Outcome::Difference
        });
    }
    if plan.is_empty() {
        writeln!(out, "lab {lab}: nothing to remove")?;
    } else {
        writeln!(out, "lab {lab}: removed ({} step(s))", plan.steps.len())?;
    }
    Ok(Outcome::Ok)
}
