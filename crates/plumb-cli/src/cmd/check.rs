//! `plumb check FILE [--json]`: runs every `[[expect]]` of a topology file against the lab as
//! it is in the kernel, and says which expectations hold.
//!
//! Exit status: 0 when every expectation holds, 1 when at least one does not (each mismatch is
//! also named on stderr), 2 when a probe could not run (the lab is not up, a target outside the
//! lab, no privilege).
//!
//! # `--json`, version 1
//!
//! ```json
//! {
//!   "version": 1,
//!   "lab": "seed",
//!   "results": [
//!     {
//!       "from": "ns1", "to": "ns2", "address": "10.66.78.2", "proto": "tcp/8080",
//!       "expected": "reach", "observed": "reach", "ok": true, "detail": "connected in 0.12 ms"
//!     }
//!   ],
//!   "summary": { "total": 1, "ok": 1, "mismatches": 0 }
//! }
//! ```
//!
//! `from` and `to` are as written in the file (`to` is a node name or an address), `address`
//! is where the probe went, `proto` is `icmp`, `tcp/PORT` or `udp/PORT`, `expected` and
//! `observed` are `reach` or `blocked`, `detail` is for people and may change between versions.
//! Fields may be added in later versions of format 1; none will be removed or change meaning.

use std::io::Write;
use std::path::Path;

use anyhow::bail;
use plumb::model::names::LabName;
use plumb::model::{Target, Topology};
use plumb::probe::{self, ProbeResult};
use serde_json::json;

use crate::Outcome;

/// Probe every `[[expect]]` of a topology file and compare with what it expects.
#[derive(clap::Args)]
pub struct Args {
    /// The lab's topology file, with its `[[expect]]` entries (the expectations live in the
    /// file, so a lab's name alone is not enough).
    target: String,
    /// JSON output (version 1, documented in `plumb check`'s source).
    #[arg(long)]
    json: bool,
}

fn reach_word(reach: bool) -> &'static str {
    if reach {
        "reach"
    } else {
        "blocked"
    }
}

/// A probe's destination as the file writes it (a node without the lab's prefix).
fn to_text(topo: &Topology, to: &Target) -> String {
    match to {
        Target::Node(n) => topo.label(n).into_owned(),
        Target::Addr(a) => a.to_string(),
    }
}

/// Loads the file `target` names, or explains why a lab's name will not do.
fn load(target: &str) -> anyhow::Result<Topology> {
    let path = Path::new(target);
    if path.is_file() {
        return super::load(path);
    }
    if LabName::new(target).is_ok() && !path.exists() {
        bail!(
            "`plumb check` needs the topology file of lab `{target}`, not its name: \
             the expectations ([[expect]]) live in the file. Run `plumb check FILE`"
        );
    }
    bail!("{target} is not a topology file")
}

pub fn run(a: Args) -> anyhow::Result<Outcome> {
    let topo = load(&a.target)?;
    if topo.expects.is_empty() {
        let _ = writeln!(
            std::io::stderr(),
            "plumb: {} has no [[expect]] entries: nothing to check",
            a.target
        );
    }
    // Probe the addresses the members have, which removals and additions may have moved
    // from the file's own order.
    let topo = plumb::lab::settled(&topo)?;
    let results = probe::run(&topo, &topo.expects)?;
    let mismatches = results.iter().filter(|r| !r.ok).count();

    let mut out = std::io::stdout().lock();
    if a.json {
        serde_json::to_writer_pretty(&mut out, &document(&topo, &results))?;
        writeln!(out)?;
    } else if !results.is_empty() {
        write_table(&mut out, &topo, &results)?;
        if mismatches == 0 {
            writeln!(
                out,
                "lab {}: all {} expectation(s) hold",
                topo.name,
                results.len()
            )?;
        } else {
            writeln!(
                out,
                "lab {}: {mismatches} of {} expectation(s) do not hold",
                topo.name,
                results.len()
            )?;
        }
    }
    out.flush()?;
    drop(out);

    let mut err = std::io::stderr().lock();
    for r in results.iter().filter(|r| !r.ok) {
        let e = &r.expect;
        let _ = writeln!(
            err,
            "plumb: mismatch: {} -> {} ({}) {}: expected {}, observed {} ({})",
            topo.label(&e.from),
            to_text(&topo, &e.to),
            r.address,
            probe::service_label(e.service),
            reach_word(e.reach),
            reach_word(r.observed_reach),
            r.detail
        );
    }
    Ok(if mismatches == 0 {
        Outcome::Ok
    } else {
        Outcome::Difference
    })
}

/// The `--json` document, version 1.
fn document(topo: &Topology, results: &[ProbeResult]) -> serde_json::Value {
    let ok = results.iter().filter(|r| r.ok).count();
    json!({
        "version": 1,
        "lab": topo.name.to_string(),
        "results": results.iter().map(|r| json!({
            "from": topo.label(&r.expect.from),
            "to": to_text(topo, &r.expect.to),
            "address": r.address.to_string(),
            "proto": probe::service_label(r.expect.service),
            "expected": reach_word(r.expect.reach),
            "observed": reach_word(r.observed_reach),
            "ok": r.ok,
            "detail": r.detail,
        })).collect::<Vec<_>>(),
        "summary": {
            "total": results.len(),
            "ok": ok,
            "mismatches": results.len() - ok,
        },
    })
}

fn write_table(
    out: &mut impl Write,
    topo: &Topology,
    results: &[ProbeResult],
) -> std::io::Result<()> {
    let header = [
        "FROM", "TO", "ADDRESS", "PROTO", "EXPECTED", "OBSERVED", "OK", "DETAIL",
    ];
    let rows: Vec<[String; 8]> = results
        .iter()
        .map(|r| {
            [
                topo.label(&r.expect.from).into_owned(),
                to_text(topo, &r.expect.to),
                r.address.to_string(),
                probe::service_label(r.expect.service),
                reach_word(r.expect.reach).to_string(),
                reach_word(r.observed_reach).to_string(),
                if r.ok { "yes" } else { "NO" }.to_string(),
                r.detail.clone(),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let line = |cells: &[&str]| {
        let mut s = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            if i + 1 == cells.len() {
                s.push_str(cell);
            } else {
                s.push_str(&format!("{cell:<w$}  "));
            }
        }
        s
    };
    writeln!(out, "{}", line(&header))?;
    for row in &rows {
        let cells: Vec<&str> = row.iter().map(String::as_str).collect();
        writeln!(out, "{}", line(&cells))?;
    }
    Ok(())
}
