//! Packet capture on any interfaces of any namespaces at once: an `AF_PACKET` socket per
//! capture point, opened inside the point's namespace, with a `TPACKET_V3` memory-mapped ring
//! and the filter compiled to classic BPF ([`filter`]) attached in the kernel; one thread waits
//! on every ring with `poll` and hands each packet over in ring order per point.
//!
//! Files: `filter` (the tcpdump-style language and its BPF compiler), `ring` (reading a block
//! of the ring), `pcapng` (the file), `decode` (one line per packet; keys for `trace`).
//! The unsafe parts (socket options, `mmap`, the block hand-over) are in
//! [`crate::sys::packet`].
//!
//! Invariants: every socket is bound to its interface only after its filter is attached, so
//! no unfiltered packet is ever queued; the kernel's drop counters are read once per point at
//! the end and reported, never hidden; everything a capture opened is closed when the
//! [`Capture`] is dropped.

pub mod decode;
pub mod filter;
pub mod pcapng;
mod ring;

use std::io;
use std::os::fd::OwnedFd;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::netns::{NetnsError, NsRef, Registry};
use crate::sys::packet::{self, Ring, RingSize};

pub use filter::{FilterError, Program};

/// The default ring: 4 blocks of 1 MiB (tcpdump's default buffer is 2 MiB).
pub const DEFAULT_BUFFER: u32 = 4 << 20;
/// The smallest ring (one page).
pub const MIN_BUFFER: u32 = 4096;
/// How long the kernel keeps a partly filled block before handing it over (ms): the delay of
/// live lines.
const RETIRE_MS: u32 = 20;
/// How often the stop flag and the deadline are looked at while no packet comes.
const TICK: Duration = Duration::from_millis(100);

/// Which way a packet went through the interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Received by the interface (or looped back).
    In,
    /// Sent by the interface.
    Out,
}

impl std::fmt::Display for Direction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Direction::In => "in",
            Direction::Out => "out",
        })
    }
}

/// A capture failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CaptureError {
    /// The namespace of a point could not be opened or entered.
    #[error("capture point {point}: {source}")]
    Namespace {
        /// The point.
        point: String,
        /// Why.
        #[source]
        source: NetnsError,
    },
    /// The interface is not in the namespace.
    #[error("capture point {point}: no interface `{iface}` in namespace {ns}: {source}")]
    NoInterface {
        /// The point.
        point: String,
        /// The interface.
        iface: String,
        /// The namespace.
        ns: String,
        /// The errno.
        #[source]
        source: io::Error,
    },
    /// The socket or its ring could not be set up (`CAP_NET_RAW` is needed).
    #[error("capture point {point}: cannot open an AF_PACKET ring: {source}")]
    Socket {
        /// The point.
        point: String,
        /// The errno.
        #[source]
        source: io::Error,
    },
    /// The filter does not compile.
    #[error(transparent)]
    Filter(#[from] FilterError),
    /// Waiting for packets failed.
    #[error("cannot wait for packets: {0}")]
    Poll(#[source] io::Error),
    /// The consumer of the packets failed (writing the file or the lines).
    #[error("cannot write the capture: {0}")]
    Write(#[source] io::Error),
}

/// What to capture on: an interface of a namespace, and how to call it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PointSpec {
    /// `NODE/IFACE`: the name in lines, summaries and the file.
    pub label: String,
    /// The namespace.
    pub ns: NsRef,
    /// The interface's name in it.
    pub iface: String,
}

/// How to capture.
#[derive(Debug, Clone)]
pub struct Options {
    /// The compiled filter.
    pub filter: Program,
    /// Bytes of ring per point.
    pub buffer: u32,
}

/// The geometry of a ring of `buffer` bytes: 1 MiB blocks when it holds at least four of
/// them, otherwise four blocks (at least one page each).
pub fn ring_size(buffer: u32) -> RingSize {
    let page = 4096u32;
    let buffer = buffer.max(MIN_BUFFER);
    let block = if buffer >= 4 << 20 {
        1 << 20
    } else {
        (buffer / 4 / page).max(1) * page
    };
    RingSize {
        block_size: block,
        block_nr: (buffer / block).max(1),
        retire_ms: RETIRE_MS,
    }
}

/// An open capture point.
#[derive(Debug)]
pub struct Point {
    /// The spec it was opened from.
    pub spec: PointSpec,
    /// The namespace's nsfs path as given, and its identity (device and inode of the nsfs
    /// file, which `ls -iL` and `lsns` show).
    pub ns_path: String,
    /// Device and inode of the namespace.
    pub ns_id: (u64, u64),
    /// Interface index in its namespace.
    pub ifindex: u32,
    ring: Ring,
    /// Counters.
    pub counts: Counts,
}

/// What happened at a point.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Counts {
    /// Packets handed to the consumer.
    pub captured: u64,
    /// Packets the filter accepted, as the kernel counts them (captured + dropped + still in
    /// the ring when the capture stopped).
    pub received: u64,
    /// Packets the kernel dropped because the ring was full.
    pub dropped: u64,
}

impl Point {
    /// The file's description of the point.
    pub fn description(&self) -> String {
        format!(
            "{} in network namespace {} (nsfs dev {} inode {})",
            self.spec.iface, self.ns_path, self.ns_id.0, self.ns_id.1
        )
    }
}

/// One packet.
#[derive(Debug, Clone, Copy)]
pub struct Packet<'a> {
    /// Index of its point.
    pub point: usize,
    /// Kernel timestamp, ns since the epoch.
    pub ts_ns: u64,
    /// The bytes captured.
    pub data: &'a [u8],
    /// Length on the wire.
    pub orig_len: u32,
    /// Direction.
    pub direction: Direction,
}

/// Whether to go on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// More.
    Continue,
    /// Enough.
    Stop,
}

/// A set of open capture points.
#[derive(Debug)]
pub struct Capture {
    /// The points, in the order given.
    pub points: Vec<Point>,
    /// When the rings were opened (ns since the epoch).
    pub start_ns: u64,
}

/// Nanoseconds since the epoch, now.
pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// Opens a ring on every point, each inside its namespace (one thread visits them in turn).
pub fn open(specs: &[PointSpec], opts: &Options) -> Result<Capture, CaptureError> {
    let reg = Registry::default();
    let mut fds: Vec<OwnedFd> = Vec::new();
    let mut info = Vec::new();
    for s in specs {
        let path = match &s.ns {
            NsRef::Current => "/proc/self/ns/net".into(),
            r => r.path(&reg),
        };
        let fd: OwnedFd = std::fs::File::open(&path)
            .map(OwnedFd::from)
            .map_err(|source| CaptureError::Namespace {
                point: s.label.clone(),
                source: NetnsError::Enter {
                    name: path.display().to_string(),
                    source,
                },
            })?;
        let st = rustix::fs::fstat(&fd).map_err(|e| CaptureError::Namespace {
            point: s.label.clone(),
            source: NetnsError::Enter {
                name: path.display().to_string(),
                source: e.into(),
            },
        })?;
        let shown = match &s.ns {
            NsRef::Current => "of plumb (host)".to_string(),
            _ => path.display().to_string(),
        };
        info.push((shown, (st.st_dev, st.st_ino)));
        fds.push(fd);
    }
    let refs: Vec<&OwnedFd> = fds.iter().collect();
    let size = ring_size(opts.buffer);
    let opened = crate::netns::run_in_each(&refs, |i| {
        let idx = packet::if_index(&specs[i].iface).map_err(|e| (true, e))?;
        let ring = Ring::open(idx, &opts.filter.0, size).map_err(|e| (false, e))?;
        Ok::<_, (bool, io::Error)>((idx, ring))
    })
    .map_err(|source| CaptureError::Namespace {
        point: specs.first().map(|s| s.label.clone()).unwrap_or_default(),
        source,
    })?;
    let mut points = Vec::new();
    for ((spec, (ns_path, ns_id)), r) in specs.iter().zip(info).zip(opened) {
        let r = r.map_err(|source| CaptureError::Namespace {
            point: spec.label.clone(),
            source: NetnsError::Enter {
                name: ns_path.clone(),
                source,
            },
        })?;
        let (ifindex, ring) = r.map_err(|(no_iface, source)| {
            if no_iface {
                CaptureError::NoInterface {
                    point: spec.label.clone(),
                    iface: spec.iface.clone(),
                    ns: spec.ns.to_string(),
                    source,
                }
            } else {
                CaptureError::Socket {
                    point: spec.label.clone(),
                    source,
                }
            }
        })?;
        points.push(Point {
            spec: spec.clone(),
            ns_path,
            ns_id,
            ifindex,
            ring,
            counts: Counts::default(),
        });
    }
    Ok(Capture {
        points,
        start_ns: now_ns(),
    })
}

impl Capture {
    /// Hands every packet that arrives to `each` until it says stop, `stop` says so (Ctrl-C),
    /// or `until` passes. On a stop by flag or deadline, the packets still in partly filled
    /// blocks are collected first (the kernel hands them over within 20 ms).
    pub fn run(
        &mut self,
        stop: impl Fn() -> bool,
        until: Option<Instant>,
        mut each: impl FnMut(&Packet<'_>) -> io::Result<Flow>,
    ) -> Result<(), CaptureError> {
        loop {
            if self.drain(&mut each)? == Flow::Stop {
                return Ok(());
            }
            let now = Instant::now();
            if stop() || until.is_some_and(|u| now >= u) {
                std::thread::sleep(Duration::from_millis(u64::from(RETIRE_MS) + 10));
                self.drain(&mut each)?;
                return Ok(());
            }
            let wait = until.map_or(TICK, |u| (u - now).min(TICK));
            let mut fds: Vec<rustix::event::PollFd<'_>> = self
                .points
                .iter()
                .map(|p| rustix::event::PollFd::new(&p.ring, rustix::event::PollFlags::IN))
                .collect();
            let ts = rustix::event::Timespec {
                tv_sec: wait.as_secs() as i64,
                tv_nsec: i64::from(wait.subsec_nanos()),
            };
            match rustix::event::poll(&mut fds, Some(&ts)) {
                Ok(_) | Err(rustix::io::Errno::INTR) => {}
                Err(e) => return Err(CaptureError::Poll(e.into())),
            }
        }
    }

    /// Hands over every packet of every block the kernel has handed over.
    fn drain(
        &mut self,
        each: &mut impl FnMut(&Packet<'_>) -> io::Result<Flow>,
    ) -> Result<Flow, CaptureError> {
        for (i, p) in self.points.iter_mut().enumerate() {
            while let Some(block) = p.ring.next_block() {
                for rp in ring::packets(block.bytes()) {
                    p.counts.captured += 1;
                    let pkt = Packet {
                        point: i,
                        ts_ns: rp.ts_ns,
                        data: rp.data,
                        orig_len: rp.orig_len,
                        direction: rp.direction,
                    };
                    if each(&pkt).map_err(CaptureError::Write)? == Flow::Stop {
                        return Ok(Flow::Stop);
                    }
                }
            }
        }
        Ok(Flow::Continue)
    }

    /// Reads the kernel's counters of every point into its [`Counts`] (reading resets the
    /// kernel's; this adds them up).
    pub fn read_stats(&mut self) -> Result<(), CaptureError> {
        for p in &mut self.points {
            let st = p.ring.stats().map_err(|source| CaptureError::Socket {
                point: p.spec.label.clone(),
                source,
            })?;
            p.counts.received += u64::from(st.packets);
            p.counts.dropped += u64::from(st.drops);
        }
        Ok(())
    }
}
