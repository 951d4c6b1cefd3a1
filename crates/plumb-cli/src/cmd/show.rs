//! `plumb show LAB [--json]`.

use std::io::Write;

use crate::Outcome;

/// Show what a lab owns, as the kernel has it.
#[derive(clap::Args)]
pub struct Args {
    /// A lab's name, or its topology file.
    target: String,
    /// JSON output (version 1, see `plumb::lab::LabView`).
    #[arg(long)]
    json: bool,
}

pub fn run(a: Args) -> anyhow::Result<Outcome> {
    let lab = super::down::lab_of(&a.target)?;
    let view = plumb::lab::view(&lab)?;
    let mut out = std::io::stdout().lock();
    if a.json {
        serde_json::to_writer_pretty(&mut out, &view)?;
        writeln!(out)?;
        return Ok(Outcome::Ok);
    }
    if view.nodes.is_empty() {
        writeln!(out, "lab {lab}: nothing found")?;
        return Ok(Outcome::Ok);
    }
    for n in &view.nodes {
        writeln!(out, "{}", n.node)?;
        for i in &n.interfaces {
            let state = if i.up {
                if i.lower_up {
                    "UP"
                } else {
                    "UP(no carrier)"
                }
            } else {
                "DOWN"
            };
            let mut extra = Vec::new();
            if let Some(p) = &i.peer {
                extra.push(format!("peer {p}"));
            }
            if let Some(m) = &i.master {
                extra.push(format!("port of {m}"));
            }
            if !i.ports.is_empty() {
                extra.push(format!("ports {}", i.ports.join(",")));
            }
            writeln!(
                out,
                "  {:>4}: {:<16} {:<7} {:<14} mtu {:<5} {:<30} {}",
                i.index,
                i.name,
                format!("{:?}", i.kind).to_lowercase(),
                state,
                i.mtu,
                i.addresses.join(" "),
                extra.join("  ")
            )?;
        }
        for r in &n.routes {
            writeln!(out, "        route {r}")?;
        }
    }
    Ok(Outcome::Ok)
}
