//! `bench`: what a namespace crossing costs, measured. The data path: round-trip latency
//! (median and 99th percentile of a bounded UDP ping-pong) and single-stream TCP throughput
//! over loopback, one veth, one bridge, and chains of 2..K routed namespaces. The control
//! plane: the time plumb takes per namespace, veth, address and route at several lab sizes.
//!
//! Invariants:
//! - the bench builds its own labs with plumb's engine ([`crate::lab::up`]) and removes them
//!   ([`crate::lab::down`]) whatever happens; everything lives in named namespaces (bridges
//!   included), so the namespace plumb runs in gets nothing but `/run/netns` entries (run it
//!   inside `plumb sandbox` and even those vanish);
//! - every probe is bounded in count, size and time, runs on threads that enter the
//!   namespaces and end, and talks only to addresses of the bench's own lab.
//!
//! Files: `topo` (the labs as topology text), `probe` (the ping-pong and the stream), `svg`
//! (the chart), `existing` (the same probes between two nodes of a lab that is up).

mod existing;
pub mod probe;
pub mod svg;
pub mod topo;

pub use existing::{run_lab, LabPair};

use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use crate::lab::{self, LabError, UpOptions};
use crate::model::names::{LabName, NsName};
use crate::model::{self, ModelError};
use crate::netns::{NetnsError, Registry};
use topo::Stage;

/// The bench failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BenchError {
    /// A generated lab did not load (a bug, with the loader's words).
    #[error("the bench's lab does not load: {0}")]
    Model(#[from] ModelError),
    /// Building or removing a lab failed.
    #[error(transparent)]
    Lab(#[from] LabError),
    /// A namespace could not be opened.
    #[error(transparent)]
    Netns(#[from] NetnsError),
    /// A probe failed.
    #[error("{what} failed: {source}")]
    Probe {
        /// Which probe, between which nodes.
        what: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Bad options.
    #[error("{0}")]
    Options(String),
    /// The nodes of an existing lab could not be resolved.
    #[error(transparent)]
    Trace(#[from] crate::trace::TraceError),
    /// The destination has no address to measure.
    #[error(transparent)]
    Address(#[from] crate::probe::ProbeError),
}

/// What to measure.
#[derive(Debug, Clone)]
pub struct Options {
    /// Smallest hop count (0: loopback).
    pub min_hops: u32,
    /// Largest hop count (routed chain length).
    pub max_hops: u32,
    /// Pings per row (after a short warm-up).
    pub pings: usize,
    /// Bytes of the TCP stream per row.
    pub stream_bytes: u64,
    /// Lab sizes for the control plane (empty: not measured).
    pub control: Vec<usize>,
}

/// The most hops the routed chain may have (its links are `10.202.0.0/30` … `10.202.63.0/30`).
pub const MAX_HOPS: u32 = 64;
/// The largest control-plane lab: its /31 pairs, two addresses each, fit in `10.210.0.0/16`.
pub const MAX_CONTROL: usize = 30000;

/// One row: a path of some hop count.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct HopRow {
    /// Namespace crossings between the two ends.
    pub hops: u32,
    /// `loopback`, `veth`, `bridge` or `routed`; `lab` between two nodes of an existing lab.
    pub path: &'static str,
    /// For `lab`: the two nodes and the address (`a -> b (10.3.0.2)`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub between: Option<String>,
    /// For `lab`: the interfaces the routing tables send the pings through (`node/iface`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub through: Option<Vec<String>>,
    /// Pings answered.
    pub pings: usize,
    /// Pings lost.
    pub lost: usize,
    /// Median round trip, microseconds.
    pub rtt_median_us: f64,
    /// 99th percentile round trip, microseconds.
    pub rtt_p99_us: f64,
    /// Bytes streamed.
    pub stream_bytes: u64,
    /// Single-stream TCP throughput, Mbit/s.
    pub throughput_mbit_s: f64,
}

/// The control plane at one lab size.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ControlRow {
    /// Objects of each kind.
    pub n: usize,
    /// The `up` that added them, seconds: namespaces, veths, addresses, routes.
    pub up_s: [f64; 4],
    /// An `up` with nothing to change (reading and comparing the lab), seconds.
    pub noop_up_s: f64,
    /// Microseconds per namespace, veth, address (both ends of a veth: two addresses) and
    /// route: (`up` − no-op `up`) / number of objects.
    pub per_object_us: [f64; 4],
}

/// Everything measured.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Report {
    /// Format version.
    pub version: u32,
    /// One row per hop count (two at 1 hop: veth and bridge).
    pub hops: Vec<HopRow>,
    /// One row per lab size.
    pub control: Vec<ControlRow>,
}

/// The object kinds of [`ControlRow`], in order.
pub const OBJECTS: [&str; 4] = ["namespace", "veth", "address", "route"];

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// The `p`-th percentile (nearest rank) of sorted `v`.
fn percentile(v: &[Duration], p: f64) -> Duration {
    if v.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1]
}

fn up(text: &str) -> Result<(), BenchError> {
    let topo = model::parse_toml(text, "bench.toml")?;
    lab::up(
        &topo,
        UpOptions {
            dry_run: false,
            wait: false,
            progress: &mut |_, _| {},
        },
    )?;
    Ok(())
}

/// Removes a bench lab when dropped, whatever happened.
struct Teardown(LabName);

impl Drop for Teardown {
    fn drop(&mut self) {
        if let Err(e) = lab::down(&self.0, false) {
            tracing::warn!("could not remove the bench lab {}: {e}", self.0);
        }
    }
}

fn lab_name(s: &str) -> Result<LabName, BenchError> {
    LabName::new(s).map_err(|e| BenchError::Options(e.to_string()))
}

fn open(reg: &Registry, prefix: &str, node: &str) -> Result<OwnedFd, BenchError> {
    let name =
        NsName::new(&format!("{prefix}{node}")).map_err(|e| BenchError::Options(e.to_string()))?;
    Ok(reg.open(&name)?)
}

pub(crate) fn measure(
    o: &Options,
    hops: u32,
    path: &'static str,
    from: &OwnedFd,
    to: &OwnedFd,
    addr: IpAddr,
) -> Result<HopRow, BenchError> {
    let what = |p: &str| format!("the {p} over {hops} hop(s) ({path}) to {addr}");
    let pp = probe::ping_pong(Some(from), Some(to), addr, o.pings).map_err(|source| {
        BenchError::Probe {
            what: what("ping-pong"),
            source,
        }
    })?;
    let took = probe::stream(Some(from), Some(to), addr, o.stream_bytes).map_err(|source| {
        BenchError::Probe {
            what: what("TCP stream"),
            source,
        }
    })?;
    let mut rtts = pp.rtts;
    rtts.sort();
    Ok(HopRow {
        hops,
        path,
        between: None,
        through: None,
        pings: rtts.len(),
        lost: pp.lost,
        rtt_median_us: us(percentile(&rtts, 50.0)),
        rtt_p99_us: us(percentile(&rtts, 99.0)),
        stream_bytes: o.stream_bytes,
        throughput_mbit_s: o.stream_bytes as f64 * 8.0 / took.as_secs_f64().max(1e-9) / 1e6,
    })
}

/// Runs the data-path bench, then the control-plane bench.
pub fn run(o: &Options) -> Result<Report, BenchError> {
    if o.min_hops > o.max_hops || o.max_hops > MAX_HOPS {
        return Err(BenchError::Options(format!(
            "hops {}..{}: the range must be ascending and end at {MAX_HOPS} at most",
            o.min_hops, o.max_hops
        )));
    }
    if o.pings == 0 || o.stream_bytes == 0 {
        return Err(BenchError::Options(
            "pings and stream bytes must be positive".into(),
        ));
    }
    if let Some(n) = o.control.iter().find(|&&n| n == 0 || n > MAX_CONTROL) {
        return Err(BenchError::Options(format!(
            "control-plane size {n}: between 1 and {MAX_CONTROL}"
        )));
    }
    crate::sys::raise_nofile_limit();
    let hops = data_path(o)?;
    let mut control = Vec::new();
    for &n in &o.control {
        control.push(control_plane(n)?);
    }
    Ok(Report {
        version: 1,
        hops,
        control,
    })
}

fn data_path(o: &Options) -> Result<Vec<HopRow>, BenchError> {
    let reg = Registry::default();
    let _down = Teardown(lab_name(topo::DATA_LAB)?);
    up(&topo::data_lab(o.max_hops))?;
    let p = topo::DATA_PREFIX;
    let r0 = open(&reg, p, "r0")?;
    let mut rows = Vec::new();
    for h in o.min_hops..=o.max_hops {
        match h {
            0 => rows.push(measure(
                o,
                0,
                "loopback",
                &r0,
                &r0,
                IpAddr::V4(Ipv4Addr::LOCALHOST),
            )?),
            1 => {
                let r1 = open(&reg, p, "r1")?;
                rows.push(measure(o, 1, "veth", &r0, &r1, topo::left_addr(1).into())?);
                let (b1, b2) = (open(&reg, p, "b1")?, open(&reg, p, "b2")?);
                rows.push(measure(o, 1, "bridge", &b1, &b2, topo::BRIDGE_B.into())?);
            }
            h => {
                let rh = open(&reg, p, &format!("r{h}"))?;
                rows.push(measure(
                    o,
                    h,
                    "routed",
                    &r0,
                    &rh,
                    topo::left_addr(h).into(),
                )?);
            }
        }
    }
    Ok(rows)
}

fn timed_up(text: &str) -> Result<f64, BenchError> {
    let t0 = Instant::now();
    up(text)?;
    Ok(t0.elapsed().as_secs_f64())
}

fn control_plane(n: usize) -> Result<ControlRow, BenchError> {
    let _down = Teardown(lab_name(topo::CONTROL_LAB)?);
    let mut up_s = [0.0; 4];
    for (i, st) in [
        Stage::Namespaces,
        Stage::Veths,
        Stage::Addresses,
        Stage::Routes,
    ]
    .into_iter()
    .enumerate()
    {
        up_s[i] = timed_up(&topo::control_lab(n, st))?;
    }
    let noop = timed_up(&topo::control_lab(n, Stage::Routes))?;
    // Objects per stage: n namespaces (plus the hub, at the veth stage), n veths, 2n
    // addresses, n routes.
    let counts = [n as f64, n as f64, 2.0 * n as f64, n as f64];
    let mut per = [0.0; 4];
    for i in 0..4 {
        // The first stage has no lab to read back yet: nothing to subtract.
        let base = if i == 0 { 0.0 } else { noop };
        per[i] = ((up_s[i] - base).max(0.0) / counts[i]) * 1e6;
    }
    Ok(ControlRow {
        n,
        up_s,
        noop_up_s: noop,
        per_object_us: per,
    })
}
