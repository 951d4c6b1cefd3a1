//! Capturing on the path while the probe goes (or while waiting for a packet of an existing
//! flow): the rings are open before the probe is sent, and stay open until the probe is done
//! or the followed packet had time to come back.

use std::cell::Cell;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::correlate::{self, Seen};
use super::{TraceError, LIMIT};
use crate::capture::{self, CaptureError, Direction, Flow, Options, PointSpec};
use crate::model::{NodeRef, Service, Target};
use crate::probe::{LabAddresses, Observed, ProbeError};

/// The probe to send (or the flow to follow).
pub(super) struct Probe<'a> {
    pub(super) book: &'a LabAddresses,
    pub(super) from: &'a NodeRef,
    pub(super) target: &'a Target,
    pub(super) address: IpAddr,
    pub(super) service: Service,
    pub(super) follow: Option<Duration>,
}

/// How long a followed packet is watched after it left: its answer comes within this.
const FOLLOW_AFTER: Duration = Duration::from_secs(1);

/// Opens the rings, sends the probe on another thread (or waits for a packet of the flow), and
/// collects what passes until the probe is done (or the followed packet had time to come back).
pub(super) fn watch(
    p: &Probe<'_>,
    specs: &[PointSpec],
    filter: &str,
    stop: &AtomicBool,
) -> Result<(Vec<Seen>, Option<Observed>), TraceError> {
    let mut cap = capture::open(
        specs,
        &Options {
            filter: capture::filter::compile(filter).map_err(CaptureError::from)?,
            buffer: 1 << 20,
        },
    )?;
    let done = AtomicBool::new(false);
    let left_at: Cell<Option<Instant>> = Cell::new(None);
    let mut seen = Vec::new();
    let until = Instant::now() + p.follow.map_or(LIMIT, |w| w + FOLLOW_AFTER);
    let ended = || {
        done.load(Ordering::Relaxed)
            || stop.load(Ordering::Relaxed)
            || left_at.get().is_some_and(|t| t.elapsed() >= FOLLOW_AFTER)
    };
    let mut each = |pkt: &capture::Packet<'_>| {
        if p.follow.is_some()
            && left_at.get().is_none()
            && pkt.point == 0
            && pkt.direction == Direction::Out
            && crate::capture::decode::ip_summary(pkt.data)
                .is_some_and(|s| correlate::is_probe(&s, p.address, p.service, true))
        {
            left_at.set(Some(Instant::now()));
        }
        seen.push(Seen {
            point: pkt.point,
            ts_ns: pkt.ts_ns,
            direction: pkt.direction,
            frame: pkt.data.to_vec(),
        });
        Ok(Flow::Continue)
    };
    if p.follow.is_some() {
        let captured = cap.run(ended, Some(until), &mut each);
        captured?;
        return Ok((seen, None));
    }
    let (captured, observed) = std::thread::scope(|s| {
        let probe = s.spawn(|| {
            let r = p.book.probe(p.from, p.target, p.service);
            done.store(true, Ordering::Relaxed);
            r
        });
        let captured = cap.run(ended, Some(until), &mut each);
        (captured, probe.join())
    });
    let observed = observed.map_err(|_| TraceError::Probe(ProbeError::Worker))?;
    captured?;
    Ok((seen, Some(observed?)))
}
