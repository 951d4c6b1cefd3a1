//! `plumb inspect [IFACE | NS:IFACE] [--json | --format tree|json|dot|svg]`.

use std::io::Write;

use anyhow::Context;
use plumb::inspect::discover::Roots;
use plumb::inspect::{self, render};

use crate::Outcome;

/// How `inspect` prints the machine.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum Format {
    /// A tree: plumb's own namespace, its bridges and ports with the namespace behind each,
    /// every cabled namespace, then the lone ones.
    Tree,
    /// JSON, version 1 (docs/schema/inspect.v1.json).
    Json,
    /// A Graphviz graph (`dot -Tsvg` draws it; so does `--format svg`).
    Dot,
    /// An SVG picture, laid out and drawn by plumb.
    Svg,
}

/// Every network namespace on the machine (named, Docker's, held by a process, a bind mount or
/// an open descriptor), its interfaces, and the other end of every veth.
#[derive(clap::Args)]
pub struct Args {
    /// One interface to explain: IFACE (in plumb's own namespace) or NS:IFACE, where NS is a
    /// name, host, pid:PID, docker:ID (or another runtime's), net:[INODE] or a path.
    iface: Option<String>,
    /// JSON output (the same as --format json).
    #[arg(long, conflicts_with = "format")]
    json: bool,
    /// Only what this plumb lab owns: its namespaces and, in plumb's own, its interfaces.
    #[arg(long, value_name = "LAB")]
    lab: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value = "tree")]
    format: Format,
}

pub fn run(a: Args) -> anyhow::Result<Outcome> {
    let mut view = inspect::machine(&Roots::default())?;
    if let Some(lab) = &a.lab {
        if !view
            .namespaces
            .iter()
            .any(|n| n.lab.as_deref() == Some(lab))
        {
            anyhow::bail!("no lab `{lab}` owns a namespace here (see `plumb ls`)");
        }
        view = view.limited_to(lab);
    }
    let format = if a.json { Format::Json } else { a.format };
    let mut out = std::io::stdout().lock();
    if let Some(spec) = &a.iface {
        let (ns, i) = view.find(spec)?;
        match format {
            Format::Json => {
                let v = serde_json::json!({
                    "version": view.version,
                    "namespace": ns.label,
                    "interface": i,
                    "sentence": view.sentence(ns, i),
                });
                serde_json::to_writer_pretty(&mut out, &v)?;
                writeln!(out)?;
            }
            _ => writeln!(out, "{}", view.sentence(ns, i))?,
        }
        return Ok(Outcome::Ok);
    }
    match format {
        Format::Tree => write!(out, "{}", render::tree(&view))?,
        Format::Json => {
            serde_json::to_writer_pretty(&mut out, &view)?;
            writeln!(out)?;
        }
        Format::Dot => write!(out, "{}", render::dot(&view))?,
        Format::Svg => {
            let svg = render::svg(&view)
                .map_err(|e| anyhow::anyhow!("{e}"))
                .context("cannot draw the picture")?;
            writeln!(out, "{svg}")?;
        }
    }
    Ok(Outcome::Ok)
}
