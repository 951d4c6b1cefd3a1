//! `plumb ls [--json]`.

use std::io::Write;

use crate::Outcome;

/// List labs present on this machine.
#[derive(clap::Args)]
pub struct Args {
    /// JSON output (version 2: {version, labs: [{name, counts, interrupted}]}).
    #[arg(long)]
    json: bool,
}

pub fn run(a: Args) -> anyhow::Result<Outcome> {
    let labs = plumb::lab::list()?;
    let mut out = std::io::stdout().lock();
    if a.json {
        let doc = serde_json::json!({ "version": 2, "labs": labs });
        serde_json::to_writer_pretty(&mut out, &doc)?;
        writeln!(out)?;
        return Ok(Outcome::Ok);
    }
    if labs.is_empty() {
        writeln!(out, "no labs")?;
        return Ok(Outcome::Ok);
    }
    writeln!(
        out,
        "{:<32} {:>10} {:>10} {:>10}  STATE",
        "LAB", "NAMESPACES", "HOST-IFS", "NS-IFS"
    )?;
    for l in labs {
        writeln!(
            out,
            "{:<32} {:>10} {:>10} {:>10}  {}",
            l.name,
            l.counts.namespaces,
            l.counts.host_links,
            l.counts.ns_links,
            if l.interrupted {
                "interrupted (plumb gc removes it)"
            } else {
                "up"
            }
        )?;
    }
    Ok(Outcome::Ok)
}
