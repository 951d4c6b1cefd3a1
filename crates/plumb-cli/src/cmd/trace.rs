//! `plumb trace LAB FROM TO [--proto icmp|tcp/PORT|udp/PORT] [--follow] [--json] [-w FILE]`:
//! one probe's journey (or, with `--follow`, the next packet of an existing flow's) hop by hop, with the NAT rewrites between hops and, if it is lost, where it was last
//! seen and the nftables rule that dropped it. Exit 0 when the probe was answered, 1 when not.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::sync::atomic::Ordering;

use anyhow::Context;
use plumb::capture::pcapng::{self, Flag, Interface};
use plumb::capture::{filter, Direction};
use plumb::model::names::LabName;
use plumb::model::Service;
use plumb::trace::{self, Hop, Journey, Request};

use crate::Outcome;

/// Send one probe between two nodes of a lab and show its journey hop by hop: every interface
/// on the path the routing tables give (and on the answer's way back), NAT rewrites (a
/// published port is followed to its member), and the nftables rule that dropped it.
#[derive(clap::Args)]
pub struct Args {
    /// The lab (its name).
    lab: String,
    /// The node that sends, as the lab's file names it (`host` for plumb's own namespace).
    from: String,
    /// The node (or an address of a node) the probe goes to.
    to: String,
    /// The probe: icmp, tcp/PORT or udp/PORT.
    #[arg(long, default_value = "icmp", value_parser = parse_service)]
    proto: Service,
    /// Send nothing: follow the next packet of an existing flow from FROM to TO (of --proto)
    /// instead.
    #[arg(long)]
    follow: bool,
    /// With --follow, how long to wait for a packet of the flow (`10s`, `500ms`).
    #[arg(long, default_value = "10s", value_parser = super::capture::parse_duration)]
    wait: std::time::Duration,
    /// Print the journey as JSON (docs/schema/trace.v1.json).
    #[arg(long)]
    json: bool,
    /// Write the hops' packets to this pcapng file (one interface per point of the path).
    #[arg(short = 'w', long = "write", value_name = "FILE")]
    write: Option<PathBuf>,
}

fn parse_service(s: &str) -> Result<Service, String> {
    let port = |p: &str| {
        p.parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| format!("`{p}` is not a port (1-65535)"))
    };
    match s.split_once('/') {
        None if s == "icmp" => Ok(Service::Icmp),
        Some(("tcp", p)) => Ok(Service::Tcp(port(p)?)),
        Some(("udp", p)) => Ok(Service::Udp(port(p)?)),
        _ => Err(format!("`{s}`: the probe is icmp, tcp/PORT or udp/PORT")),
    }
}

fn l4_text(h: &Hop) -> String {
    use plumb::capture::decode::L4;
    match &h.l4 {
        L4::Icmp { kind, id, seq, .. } => match (kind, id, seq) {
            (8 | 128, Some(i), Some(s)) => format!("echo request id {i} seq {s}"),
            (0 | 129, Some(i), Some(s)) => format!("echo reply id {i} seq {s}"),
            (k, _, _) => format!("icmp type {k}"),
        },
        L4::Tcp {
            sport,
            dport,
            flags,
            ..
        } => format!("tcp {sport} > {dport} [{flags}]"),
        L4::Udp { sport, dport } => format!("udp {sport} > {dport}"),
        L4::Other { number } => format!("ip proto {number}"),
    }
}

fn print_hops(out: &mut impl Write, hops: &[Hop]) -> std::io::Result<()> {
    let width = hops
        .iter()
        .map(|h| h.node.len() + h.iface.len() + 1)
        .max()
        .unwrap_or(0);
    for h in hops {
        let point = format!("{}/{}", h.node, h.iface);
        writeln!(
            out,
            "  {:>9.3} ms  {point:<width$}  {:<3}  {} > {}  ttl {:<3}  {}",
            h.t_us / 1000.0,
            h.direction.to_string(),
            h.src,
            h.dst,
            h.ttl,
            l4_text(h)
        )?;
        for r in &h.rewrites {
            writeln!(out, "  {:>12}  {:width$}       {r}", "", "")?;
        }
    }
    Ok(())
}

fn print(j: &Journey) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "trace {}: {} -> {} ({}), {}",
        j.lab, j.from, j.to, j.address, j.proto
    )?;
    let path: Vec<String> = j
        .path
        .iter()
        .map(|p| format!("{}/{}", p.label, p.iface))
        .collect();
    writeln!(out, "path: {}", path.join(" -> "))?;
    if let Some(n) = &j.path_note {
        writeln!(out, "note: {n}")?;
    }
    // The answer's way, when it is not the path backwards (asymmetric routing).
    let back: Vec<String> = j
        .reply_path
        .iter()
        .map(|p| format!("{}/{}", p.label, p.iface))
        .collect();
    if !back.is_empty() && !back.iter().eq(path.iter().rev()) {
        writeln!(out, "reply path: {}", back.join(" -> "))?;
    }
    if j.hops.is_empty() {
        writeln!(
            out,
            "the probe was not seen leaving {}",
            path.first().map_or("", |s| s)
        )?;
    } else {
        print_hops(&mut out, &j.hops)?;
    }
    if !j.reply.is_empty() {
        writeln!(out, "reply:")?;
        print_hops(&mut out, &j.reply)?;
    }
    if let Some(l) = &j.last_seen {
        writeln!(out, "lost: last seen at {l}")?;
    }
    if let Some(d) = &j.dropped_by {
        writeln!(out, "dropped in {} by {d}", d.node)?;
    }
    writeln!(out, "result: {}", j.outcome)
}

fn write_file(path: &PathBuf, j: &Journey) -> anyhow::Result<()> {
    let f = File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    let points = j.points();
    let ifaces: Vec<Interface> = points
        .iter()
        .map(|p| Interface {
            name: format!("{}/{}", p.label, p.iface),
            description: format!("{} in node {} of lab {}", p.iface, p.node, j.lab),
        })
        .collect();
    let mut w = pcapng::Writer::new(
        BufWriter::new(f),
        "plumb trace",
        &ifaces,
        filter::bpf::SNAPLEN,
    )?;
    let index = |h: &Hop| {
        points
            .iter()
            .position(|p| p.label == h.node && p.iface == h.iface)
            .unwrap_or(0) as u32
    };
    for (what, hops) in [("probe", &j.hops), ("reply", &j.reply)] {
        for (n, h) in hops.iter().enumerate() {
            let flag = match h.direction {
                Direction::In => Flag::Inbound,
                Direction::Out => Flag::Outbound,
            };
            let rewrites: Vec<String> = h.rewrites.iter().map(ToString::to_string).collect();
            let mut comment = format!("{what} hop {}", n + 1);
            if !rewrites.is_empty() {
                comment.push_str(&format!(": {}", rewrites.join(", ")));
            }
            w.packet(
                index(h),
                h.ts_ns,
                &h.frame,
                h.frame.len() as u32,
                flag,
                Some(&comment),
            )?;
        }
    }
    w.finish()?.flush()?;
    Ok(())
}

pub fn run(a: Args) -> anyhow::Result<Outcome> {
    let lab = LabName::new(&a.lab).with_context(|| format!("`{}` is not a lab name", a.lab))?;
    let stop = super::capture::stop_flag()?;
    let journey = trace::run(
        &Request {
            lab: &lab,
            from: &a.from,
            to: &a.to,
            service: a.proto,
            follow: a.follow.then_some(a.wait),
        },
        &stop,
    )?;
    if let Some(path) = &a.write {
        write_file(path, &journey)?;
    }
    if a.json {
        let mut out = std::io::stdout().lock();
        serde_json::to_writer_pretty(&mut out, &journey)?;
        writeln!(out)?;
    } else {
        print(&journey)?;
    }
    if stop.load(Ordering::Relaxed) {
        eprintln!("plumb: interrupted; the trace tables are removed");
    }
    Ok(if journey.reached {
        Outcome::Ok
    } else {
        Outcome::Difference
    })
}
