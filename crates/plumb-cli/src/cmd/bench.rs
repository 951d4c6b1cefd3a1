//! `plumb bench [--hops A..K] [--json] [--svg FILE]`, and `plumb bench --lab LAB --from A --to B`.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use plumb::bench::{self, Options, Report, OBJECTS};

use crate::Outcome;

/// Measure what namespace crossings cost: UDP round-trip latency (median, 99th percentile) and
/// single-stream TCP throughput over loopback, one veth, one bridge and chains of routed
/// namespaces; and plumb's time per namespace, veth, address and route. Builds its own
/// temporary labs in named namespaces (run it inside `plumb sandbox`). With `--lab`, measures
/// between two nodes of a lab that is up instead, leaving the lab as it is.
#[derive(clap::Args)]
pub struct Args {
    /// Measure between two nodes of this lab (up already) instead of building labs: the
    /// routing tables' path from `--from` to `--to`, one row.
    #[arg(long, requires_all = ["from", "to"], conflicts_with_all = ["hops", "control", "no_control", "svg"])]
    lab: Option<String>,
    /// With `--lab`: the node the pings and the stream leave from.
    #[arg(long, requires = "lab")]
    from: Option<String>,
    /// With `--lab`: the node, or an address of the lab, they go to.
    #[arg(long, requires = "lab")]
    to: Option<String>,
    /// Hop counts to measure: `A..K` or `K` (from 0): 0 is loopback, 1 one veth and one
    /// bridge, 2..K routed namespace chains.
    #[arg(long, default_value = "0..4", value_parser = parse_hops)]
    hops: (u32, u32),
    /// Pings per path (after 10 warm-up pings).
    #[arg(long, default_value_t = 2000)]
    pings: usize,
    /// MiB sent by the TCP stream per path.
    #[arg(long, default_value_t = 256)]
    stream_mib: u64,
    /// Lab sizes at which the control plane is measured, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "10,100,1000")]
    control: Vec<usize>,
    /// Skip the control-plane measurement.
    #[arg(long)]
    no_control: bool,
    /// JSON output (version 1, docs/schema/bench.v1.json).
    #[arg(long)]
    json: bool,
    /// Also write the chart (latency and throughput against hops) as SVG to FILE.
    #[arg(long, value_name = "FILE")]
    svg: Option<PathBuf>,
}

fn parse_hops(s: &str) -> Result<(u32, u32), String> {
    let num = |t: &str| {
        t.trim()
            .parse::<u32>()
            .map_err(|_| format!("`{t}` is not a hop count"))
    };
    let (a, b) = match s.split_once("..") {
        Some((a, b)) => (num(a)?, num(b.trim_start_matches('='))?),
        None => (0, num(s)?),
    };
    if a > b {
        return Err(format!("{a}..{b} is empty: write the smaller count first"));
    }
    if b > bench::MAX_HOPS {
        return Err(format!("at most {} hops", bench::MAX_HOPS));
    }
    Ok((a, b))
}

pub fn run(a: Args) -> anyhow::Result<Outcome> {
    let o = Options {
        min_hops: a.hops.0,
        max_hops: a.hops.1,
        pings: a.pings,
        stream_bytes: a.stream_mib.saturating_mul(1 << 20),
        control: if a.no_control { Vec::new() } else { a.control },
    };
    let r = match (&a.lab, &a.from, &a.to) {
        (Some(lab), Some(from), Some(to)) => {
            let lab = plumb::model::names::LabName::new(lab)?;
            bench::run_lab(
                &o,
                &bench::LabPair {
                    lab: &lab,
                    from,
                    to,
                },
            )?
        }
        _ => bench::run(&o)?,
    };
    if let Some(path) = &a.svg {
        std::fs::write(path, bench::svg::render(&r))
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    let mut out = std::io::stdout().lock();
    if a.json {
        serde_json::to_writer_pretty(&mut out, &r)?;
        writeln!(out)?;
    } else {
        write_table(&mut out, &r)?;
    }
    Ok(Outcome::Ok)
}

fn write_table(out: &mut impl Write, r: &Report) -> std::io::Result<()> {
    writeln!(
        out,
        "{:>4}  {:<8}  {:>11}  {:>11}  {:>6}  {:>14}",
        "hops", "path", "rtt p50 us", "rtt p99 us", "lost", "tcp Mbit/s"
    )?;
    for h in &r.hops {
        writeln!(
            out,
            "{:>4}  {:<8}  {:>11.1}  {:>11.1}  {:>6}  {:>14.0}",
            h.hops, h.path, h.rtt_median_us, h.rtt_p99_us, h.lost, h.throughput_mbit_s
        )?;
        if let (Some(b), Some(t)) = (&h.between, &h.through) {
            writeln!(out, "      {b}: {}", t.join(" -> "))?;
        }
    }
    if r.control.is_empty() {
        return Ok(());
    }
    writeln!(out)?;
    write!(out, "{:>6}", "N")?;
    for o in OBJECTS {
        write!(out, "  {:>13}", format!("us/{o}"))?;
    }
    writeln!(out, "  {:>12}", "no-op up s")?;
    for c in &r.control {
        write!(out, "{:>6}", c.n)?;
        for v in c.per_object_us {
            write!(out, "  {v:>13.1}")?;
        }
        writeln!(out, "  {:>12.3}", c.noop_up_s)?;
    }
    Ok(())
}
