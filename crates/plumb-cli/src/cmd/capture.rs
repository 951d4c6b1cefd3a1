//! `plumb capture POINT… [-w FILE] [-c COUNT] [--duration D] [FILTER]`: packets on any
//! interfaces of any namespaces at once, one line each (like tcpdump, prefixed by the point
//! and the direction), or into one pcapng file; a summary per point on stderr at the end.

use std::fs::File;
use std::io::{BufWriter, LineWriter, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use plumb::capture::pcapng::{self, Flag, IfStats, Interface};
use plumb::capture::{self, decode, filter, Capture, Direction, Flow, Options, PointSpec};
use plumb::model::names::{IfName, LabName, NsName};
use plumb::netns::{NsRef, Registry};

use crate::Outcome;

/// Capture packets on interfaces of any namespaces at once (AF_PACKET rings, a tcpdump-style
/// filter compiled to classic BPF in the kernel).
#[derive(clap::Args)]
#[command(override_usage = "plumb capture POINT… [-w FILE] [-c COUNT] [--duration D] [FILTER…]")]
pub struct Args {
    /// Capture points, then the filter. A point is NS:IFACE (NS as `plumb exec` takes it: a
    /// name in /run/netns, LAB:NODE, an nsfs path, pid:PID or host), LAB:NODE:IFACE, or LAB
    /// (every interface of a lab). The first word that is none of these starts the filter
    /// (`icmp`, `tcp port 80 and not host 10.0.0.1`…; see docs/capture.md).
    #[arg(required = true, value_name = "POINT… [FILTER…]")]
    words: Vec<String>,
    /// Write the packets to this pcapng file (one interface per point) instead of printing
    /// them.
    #[arg(short = 'w', long = "write", value_name = "FILE")]
    write: Option<PathBuf>,
    /// Print the lines even when writing a file.
    #[arg(long)]
    print: bool,
    /// Stop after this many packets (over all points).
    #[arg(short = 'c', long = "count")]
    count: Option<u64>,
    /// Stop after this long (`10s`, `500ms`, `2m`, or seconds).
    #[arg(long, value_parser = parse_duration)]
    duration: Option<Duration>,
    /// Ring buffer per point, in bytes (`4M`, `64K`, at least 4K). Small rings drop packets
    /// under load; drops are counted and reported.
    #[arg(long, value_parser = parse_size, default_value = "4M")]
    buffer: u32,
}

/// `10s`, `500ms`, `2m`, `1.5` (seconds).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let (num, unit) = match s.find(|c: char| c.is_ascii_alphabetic()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: f64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a duration (10s, 500ms, 2m)"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("`{s}`: the unit is ms, s, m or h")),
    };
    if !(secs.is_finite() && secs > 0.0) {
        return Err(format!("`{s}` is not a positive duration"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// `4M`, `64K`, `8192`.
fn parse_size(s: &str) -> Result<u32, String> {
    let (num, mul) = match s.chars().last() {
        Some('K' | 'k') => (&s[..s.len() - 1], 1u64 << 10),
        Some('M' | 'm') => (&s[..s.len() - 1], 1 << 20),
        Some('G' | 'g') => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    let n: u64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a size (4M, 64K, 8192)"))?;
    let bytes = n * mul;
    if bytes < u64::from(capture::MIN_BUFFER) || bytes > u64::from(u32::MAX) {
        return Err(format!("`{s}`: a ring is between 4K and 4G"));
    }
    Ok(bytes as u32)
}

/// The namespace a `NS` part names, and the node name to show for it.
fn resolve_ns(reg: &Registry, ns: &str) -> anyhow::Result<(NsRef, String)> {
    let r = super::exec::ns_ref(reg, ns)?;
    // `LAB:NODE` is shown as NODE; `pid:1`, paths and names as written.
    let shown = match ns.split_once(':') {
        Some((l, node)) if l != "pid" && !ns.starts_with('/') => node.to_string(),
        _ => ns.to_string(),
    };
    Ok((r, shown))
}

/// Every interface of a lab but loopbacks, as `plumb show` sees them.
fn lab_points(lab: &LabName) -> anyhow::Result<Vec<PointSpec>> {
    let view = plumb::lab::view(lab)?;
    let mut out = Vec::new();
    for node in &view.nodes {
        let ns = if node.node == "host" {
            NsRef::Current
        } else {
            NsRef::Name(NsName::new(&node.node)?)
        };
        for i in &node.interfaces {
            if i.name == "lo" {
                continue;
            }
            out.push(PointSpec {
                label: format!("{}/{}", node.label, i.name),
                ns: ns.clone(),
                iface: i.name.clone(),
            });
        }
    }
    Ok(out)
}

/// Splits the words into capture points and the filter.
pub fn points_and_filter(words: &[String]) -> anyhow::Result<(Vec<PointSpec>, String)> {
    let reg = Registry::default();
    let labs: Vec<String> = plumb::lab::list()
        .map(|l| l.into_iter().map(|s| s.name).collect())
        .unwrap_or_default();
    let mut points = Vec::new();
    let mut rest = words;
    while let Some((w, tail)) = rest.split_first() {
        if let Some((ns, iface)) = w.rsplit_once(':') {
            IfName::new(iface).with_context(|| format!("capture point `{w}`"))?;
            let (r, node) = resolve_ns(&reg, ns).with_context(|| format!("capture point `{w}`"))?;
            points.push(PointSpec {
                label: format!("{node}/{iface}"),
                ns: r,
                iface: iface.to_string(),
            });
        } else if labs.iter().any(|l| l == w) {
            let lab = LabName::new(w)?;
            let found = lab_points(&lab).with_context(|| format!("capture point `{w}`"))?;
            if found.is_empty() {
                anyhow::bail!("lab `{w}` has no interface to capture on");
            }
            points.extend(found);
        } else {
            break;
        }
        rest = tail;
    }
    // A point named twice (`seed` and `seed:ns1:eth1000`) is captured once.
    let mut seen = Vec::new();
    points.retain(|p: &PointSpec| {
        let key = (p.ns.clone(), p.iface.clone());
        let new = !seen.contains(&key);
        seen.push(key);
        new
    });
    if points.is_empty() {
        anyhow::bail!(
            "no capture point: give NS:IFACE, LAB:NODE:IFACE or a lab's name before the filter (`{}` is none of these)",
            words.first().map(String::as_str).unwrap_or_default()
        );
    }
    Ok((points, rest.join(" ")))
}

/// A packet's line: `ns1/eth1000 out IP 10.66.77.24 > 10.66.77.25: ICMP echo request, …`.
pub fn packet_line(label: &str, direction: Direction, data: &[u8]) -> String {
    format!("{label} {direction} {}", decode::line(data))
}

/// Sets `flag` on SIGINT and SIGTERM, so that a capture stops cleanly.
pub fn stop_flag() -> anyhow::Result<Arc<AtomicBool>> {
    let flag = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&flag)).context("cannot handle signals")?;
    }
    Ok(flag)
}

pub fn run(a: Args) -> anyhow::Result<Outcome> {
    let (points, filter_text) = points_and_filter(&a.words)?;
    let program = filter::compile(&filter_text)?;
    let stop = stop_flag()?;
    let mut cap = capture::open(
        &points,
        &Options {
            filter: program,
            buffer: a.buffer,
        },
    )?;
    let mut file = match &a.write {
        Some(path) => {
            let f =
                File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
            let ifaces: Vec<Interface> = cap
                .points
                .iter()
                .map(|p| Interface {
                    name: p.spec.label.clone(),
                    description: p.description(),
                })
                .collect();
            Some(pcapng::Writer::new(
                BufWriter::with_capacity(1 << 20, f),
                &format!("plumb {}", env!("CARGO_PKG_VERSION")),
                &ifaces,
                filter::bpf::SNAPLEN,
            )?)
        }
        None => None,
    };
    let print = a.print || file.is_none();
    let labels: Vec<String> = cap.points.iter().map(|p| p.spec.label.clone()).collect();
    let shown = if filter_text.is_empty() {
        "none".to_string()
    } else {
        filter_text.clone()
    };
    eprintln!(
        "plumb: capturing on {} (filter: {shown})",
        labels.join(", ")
    );
    let until = a.duration.map(|d| Instant::now() + d);
    let mut out = LineWriter::new(std::io::stdout().lock());
    let mut n = 0u64;
    let limit = a.count;
    cap.run(
        || stop.load(Ordering::Relaxed),
        until,
        |p| {
            if let Some(w) = file.as_mut() {
                let flag = match p.direction {
                    Direction::In => Flag::Inbound,
                    Direction::Out => Flag::Outbound,
                };
                w.packet(p.point as u32, p.ts_ns, p.data, p.orig_len, flag, None)?;
            }
            if print {
                writeln!(
                    out,
                    "{}",
                    packet_line(&labels[p.point], p.direction, p.data)
                )?;
            }
            n += 1;
            Ok(if limit.is_some_and(|c| n >= c) {
                Flow::Stop
            } else {
                Flow::Continue
            })
        },
    )?;
    out.flush()?;
    cap.read_stats()?;
    if let Some(mut w) = file {
        write_stats(&mut w, &cap)?;
        w.finish()?.flush()?;
    }
    summary(&cap);
    Ok(Outcome::Ok)
}

fn write_stats<W: Write>(w: &mut pcapng::Writer<W>, cap: &Capture) -> std::io::Result<()> {
    let end = capture::now_ns();
    for (i, p) in cap.points.iter().enumerate() {
        w.stats(
            i as u32,
            &IfStats {
                start_ns: cap.start_ns,
                end_ns: end,
                received: p.counts.received,
                dropped: p.counts.dropped,
                delivered: p.counts.captured,
            },
        )?;
    }
    Ok(())
}

/// One line per point on stderr: captured, and what the kernel dropped.
fn summary(cap: &Capture) {
    for p in &cap.points {
        let c = p.counts;
        let drops = if c.dropped > 0 {
            format!(
                "{} dropped by the kernel (the ring was full: --buffer)",
                c.dropped
            )
        } else {
            "0 dropped by the kernel".to_string()
        };
        eprintln!("{}: {} packets captured, {drops}", p.spec.label, c.captured);
    }
}
