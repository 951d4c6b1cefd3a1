//! `plumb down FILE|LAB`.

use std::io::{self, Write};
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

/// True when `target` is written as a path (it has a `/` or a topology file's extension), so a
/// missing file is reported as such rather than as a bad lab name.
fn looks_like_path(target: &str) -> bool {
    target.contains('/') || target.ends_with(".toml") || target.ends_with(".json")
}

/// A lab's name from a file or from the argument itself.
pub fn lab_of(target: &str) -> anyhow::Result<LabName> {
    let p = Path::new(target);
    let what = format!("`{target}` is neither a topology file nor a lab name");
    match std::fs::metadata(p) {
        Ok(m) if m.is_file() => return Ok(super::load(p)?.name),
        Ok(m) if m.is_dir() && looks_like_path(target) => {
            anyhow::bail!("{what}: it is a directory")
        }
        Err(e) if looks_like_path(target) => {
            if e.kind() == io::ErrorKind::NotFound {
                let errno = e.raw_os_error().unwrap_or(0);
                anyhow::bail!("{what}: the file does not exist (os error {errno})");
            }
            return Err(anyhow::Error::new(e).context(format!("{what}: cannot read it")));
        }
        _ => {}
    }
    LabName::new(target).with_context(|| what)
}

/// The lab's name as a file that does not load writes it, if its `name` can still be read.
fn written_name(p: &Path) -> Option<LabName> {
    let src = std::fs::read_to_string(p).ok()?;
    let is_json = p
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"));
    let name = if is_json {
        serde_json::from_str::<serde_json::Value>(&src)
            .ok()?
            .get("name")?
            .as_str()?
            .to_owned()
    } else {
        toml::from_str::<toml::Table>(&src)
            .ok()?
            .get("name")?
            .as_str()?
            .to_owned()
    };
    LabName::new(&name).ok()
}

/// The lab `down` removes. A file that does not load is reported with its diagnostics and the
/// command that removes the lab by name, since the lab is found by its tags anyway.
fn lab_to_remove(target: &str) -> anyhow::Result<LabName> {
    let p = Path::new(target);
    if !p.is_file() {
        return lab_of(target);
    }
    match plumb::model::load(p) {
        Ok(topo) => Ok(topo.name),
        Err(e) => {
            let by_name = match written_name(p) {
                Some(lab) => format!("`plumb down {lab}`"),
                None => "`plumb down LAB` (`plumb ls` lists the labs here)".to_string(),
            };
            anyhow::bail!(
                "{e}\nplumb: {target} does not load, so nothing was removed; a lab is removed by its name whatever its file says: {by_name}"
            )
        }
    }
}

pub fn run(a: Args) -> anyhow::Result<Outcome> {
    let lab = lab_to_remove(&a.target)?;
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
