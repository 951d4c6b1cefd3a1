//! rtnetlink over a synchronous socket, with pipelining.
//!
//! One [`NlSocket`] per network namespace, opened on a thread that is inside that namespace (a
//! netlink socket stays bound to the namespace it was created in, so it can then be used from any
//! thread). Requests are sent in batches — many messages in one `sendmsg`, which the kernel
//! processes in order before `sendmsg` returns — and their acknowledgements are collected
//! afterwards, so a thousand-step change costs a few dozen syscalls instead of thousands of round
//! trips.
//!
//! Robustness, each covered by a test:
//! - a dump the kernel marks `NLM_F_DUMP_INTR` (the table changed while it was being read) is
//!   read again, so a snapshot is never a mix of two states;
//! - if acknowledgements are lost (`ENOBUFS`: the receive buffer overflowed), the requests whose
//!   acks are missing are sent again to learn their fate: an exclusive create answered `EEXIST`
//!   and a delete answered "not found" took effect the first time; anything else is answered
//!   anew. So no request that the kernel applied is ever reported as failed (rollback sees it);
//! - extended acks are read according to each message's own flags (`NLM_F_CAPPED`,
//!   `NLM_F_ACK_TLVS`), so the kernel's explanation is found whether or not it echoed the request.
//!
//! Sub-modules build and decode the messages, one file per kernel object: [`link`], [`addr`],
//! [`route`]. They decode into their own types ([`link::LinkState`], …), which `inspect`
//! aggregates.

pub(crate) mod ack;
pub mod addr;
mod dump;
mod error;
pub mod link;
pub mod neigh;
pub mod nsid;
pub mod route;

use std::io;

use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL,
    NLM_F_REQUEST,
};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};

pub use ack::{Ack, NLMSG_DONE, NLMSG_ERROR};
pub use dump::DumpReader;
pub use error::NetlinkError;

/// One request: a message and the header flags it needs besides `NLM_F_REQUEST | NLM_F_ACK`.
pub type Request = (RouteNetlinkMessage, u16);

/// Requests in flight per send: bounded so that the acks fit in the receive buffer.
const BATCH: usize = 128;

/// How often a dump interrupted by concurrent changes is read again.
const DUMP_ATTEMPTS: usize = 8;

/// How a request whose acknowledgement was lost is judged when it is sent again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Replay {
    /// `NLM_F_CREATE | NLM_F_EXCL`: `EEXIST` means the first send created it.
    Create,
    /// A delete: "not found" means the first send deleted it.
    Delete,
    /// Idempotent (a change of settings): the second answer is the answer.
    Same,
}

fn replay_kind(msg: &RouteNetlinkMessage, flags: u16) -> Replay {
    use RouteNetlinkMessage as M;
    match msg {
        M::DelLink(_) | M::DelAddress(_) | M::DelRoute(_) => Replay::Delete,
        _ if flags & (NLM_F_CREATE | NLM_F_EXCL) == NLM_F_CREATE | NLM_F_EXCL => Replay::Create,
        _ => Replay::Same,
    }
}

/// Errnos that mean "the object is not there".
pub fn is_gone_errno(errno: i32) -> bool {
    matches!(
        errno,
        libc::ENOENT | libc::ENODEV | libc::ESRCH | libc::EADDRNOTAVAIL
    )
}

/// A `NETLINK_ROUTE` socket bound to the namespace it was opened in.
pub struct NlSocket {
    sock: Socket,
    seq: u32,
    replayed: usize,
}

thread_local! {
    /// The receive buffer of every socket used on this thread: a lab of thousands of
    /// namespaces holds a socket for each, and a buffer each would cost a page or more apiece.
    static RECV_BUF: std::cell::Cell<Vec<u8>> = const { std::cell::Cell::new(Vec::new()) };
}

/// This thread's receive buffer, given back when dropped.
struct RecvBuf(Vec<u8>);

impl RecvBuf {
    fn take() -> RecvBuf {
        let mut v = RECV_BUF.with(|b| b.take());
        if v.is_empty() {
            v = vec![0; 1 << 16];
        }
        RecvBuf(v)
    }
}

impl Drop for RecvBuf {
    fn drop(&mut self) {
        let v = std::mem::take(&mut self.0);
        RECV_BUF.with(|b| b.set(v));
    }
}

impl std::os::fd::AsFd for NlSocket {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        std::os::fd::AsFd::as_fd(&self.sock)
    }
}

impl std::fmt::Debug for NlSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NlSocket").field("seq", &self.seq).finish()
    }
}

/// Requests encoded back to back, with where each one is.
struct Encoded {
    bytes: Vec<u8>,
    /// (start, end, sequence number, replay kind) per request.
    spans: Vec<(usize, usize, u32, Replay)>,
}

impl NlSocket {
    /// Opens a socket in the calling thread's current network namespace. Extended acks
    /// (`NETLINK_EXT_ACK`) and capped acks (`NETLINK_CAP_ACK`) are asked for; an older kernel
    /// may refuse either, and acks are parsed by their own flags, so that is no error.
    pub fn open() -> Result<Self, NetlinkError> {
        let err = |op| move |source| NetlinkError::Socket { op, source };
        let mut sock = Socket::new(NETLINK_ROUTE).map_err(err("open"))?;
        sock.bind_auto().map_err(err("bind"))?;
        sock.connect(&SocketAddr::new(0, 0))
            .map_err(err("connect"))?;
        let _ = sock.set_ext_ack(true);
        let _ = sock.set_cap_ack(true);
        let _ = sock.set_netlink_get_strict_chk(true);
        // Capped by net.core.rmem_max for an unprivileged user; BATCH keeps well below it.
        let _ = sock.set_rx_buf_sz(1usize << 20);
        Ok(NlSocket {
            sock,
            seq: 1,
            replayed: 0,
        })
    }

    /// How many requests were sent again because their acknowledgements were lost.
    pub fn replayed(&self) -> usize {
        self.replayed
    }

    /// Sets the receive buffer size (`SO_RCVBUF`): tests shrink it to make acks overflow.
    #[doc(hidden)]
    pub fn set_receive_buffer(&self, bytes: usize) -> io::Result<()> {
        self.sock.set_rx_buf_sz(bytes)
    }

    /// The receive buffer size the kernel granted (`SO_RCVBUF`).
    pub fn receive_buffer(&self) -> io::Result<usize> {
        self.sock.get_rx_buf_sz()
    }

    fn encode(&mut self, requests: impl IntoIterator<Item = Request>) -> Encoded {
        let mut bytes = Vec::new();
        let mut spans = Vec::new();
        for (msg, flags) in requests {
            let replay = replay_kind(&msg, flags);
            let mut header = NetlinkHeader::default();
            header.flags = NLM_F_REQUEST | NLM_F_ACK | flags;
            header.sequence_number = self.seq;
            let seq = self.seq;
            self.seq = self.seq.wrapping_add(1);
            let mut m = NetlinkMessage::new(header, NetlinkPayload::from(msg));
            m.finalize();
            let start = bytes.len();
            bytes.resize(start + m.buffer_len(), 0);
            m.serialize(&mut bytes[start..]);
            #[cfg(feature = "fault-injection")]
            crate::fault::on_request(&mut bytes[start..]);
            spans.push((start, bytes.len(), seq, replay));
        }
        Encoded { bytes, spans }
    }

    /// Sends every request, then collects one result per request, in order.
    /// Equivalent to running the matching `ip` commands one after another, but pipelined.
    pub fn execute(&mut self, requests: Vec<Request>) -> Vec<Result<(), NetlinkError>> {
        let mut results = Vec::with_capacity(requests.len());
        let mut it = requests.into_iter().peekable();
        while it.peek().is_some() {
            let enc = self.encode(it.by_ref().take(BATCH));
            results.extend(self.exchange(&enc));
        }
        results
    }

    /// Sends one encoded batch and reads its acks; requests whose acks were lost are replayed.
    fn exchange(&mut self, enc: &Encoded) -> Vec<Result<(), NetlinkError>> {
        let n = enc.spans.len();
        if let Err(source) = self.send_all(&enc.bytes) {
            // The kernel processes a batch only once it has all of it: nothing was applied.
            let errno = source.raw_os_error();
            return (0..n)
                .map(|_| {
                    Err(NetlinkError::Socket {
                        op: "send",
                        source: errno.map_or_else(
                            || io::Error::new(source.kind(), source.to_string()),
                            io::Error::from_raw_os_error,
                        ),
                    })
                })
                .collect();
        }
        let first = enc.spans[0].2;
        let mut slots: Vec<Option<Result<(), NetlinkError>>> = (0..n).map(|_| None).collect();
        let lost = self.read_acks(first, &mut slots);
        match lost {
            Ok(false) => {}
            Ok(true) => self.replay(enc, &mut slots),
            Err(e) => {
                let errno = e.raw_os_error().unwrap_or(libc::EIO);
                for s in slots.iter_mut().filter(|s| s.is_none()) {
                    *s = Some(Err(NetlinkError::Socket {
                        op: "recv",
                        source: io::Error::from_raw_os_error(errno),
                    }));
                }
            }
        }
        slots
            .into_iter()
            .map(|s| {
                s.unwrap_or_else(|| Err(NetlinkError::Decode("no acknowledgement received".into())))
            })
            .collect()
    }

    /// Reads acks for sequence numbers `first..first+slots.len()` into `slots` until each has
    /// one. Returns `Ok(true)` if the kernel reported lost messages (`ENOBUFS`); the socket has
    /// then been drained of every ack that survived.
    fn read_acks(
        &mut self,
        first: u32,
        slots: &mut [Option<Result<(), NetlinkError>>],
    ) -> io::Result<bool> {
        let mut buf = RecvBuf::take();
        let mut pending = slots.iter().filter(|s| s.is_none()).count();
        let mut lost = false;
        while pending > 0 {
            let flags = if lost { libc::MSG_DONTWAIT } else { 0 };
            let len = match self.sock.recv(&mut &mut buf.0[..], flags) {
                Ok(len) => len,
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                    lost = true;
                    continue;
                }
                Err(e) if lost && e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e),
            };
            for ack in ack::iter(&buf.0[..len]) {
                let Ack::Error { seq, code, ext, .. } = ack else {
                    continue;
                };
                let idx = seq.wrapping_sub(first) as usize;
                if idx < slots.len() && slots[idx].is_none() {
                    slots[idx] = Some(match code {
                        0 => Ok(()),
                        c => Err(NetlinkError::kernel(-c, ext)),
                    });
                    pending -= 1;
                }
            }
        }
        Ok(lost)
    }

    /// Sends again the requests whose acks were lost, and judges each by its replay kind.
    fn replay(&mut self, enc: &Encoded, slots: &mut [Option<Result<(), NetlinkError>>]) {
        let missing: Vec<usize> = (0..slots.len()).filter(|&i| slots[i].is_none()).collect();
        if missing.is_empty() {
            return;
        }
        tracing::debug!(
            lost = missing.len(),
            "netlink acks lost (ENOBUFS): replaying"
        );
        self.replayed += missing.len();
        // One at a time: a replay must not overflow the buffer again.
        for i in missing {
            let (start, end, _, replay) = enc.spans[i];
            let mut bytes = enc.bytes[start..end].to_vec();
            let seq = self.seq;
            self.seq = self.seq.wrapping_add(1);
            bytes[8..12].copy_from_slice(&seq.to_ne_bytes());
            let mut one = [None];
            let r = match self.send_all(&bytes) {
                Err(source) => Err(NetlinkError::Socket { op: "send", source }),
                Ok(()) => match self.read_acks(seq, &mut one) {
                    Ok(_) => one[0]
                        .take()
                        .unwrap_or_else(|| Err(NetlinkError::Decode("no acknowledgement".into()))),
                    Err(source) => Err(NetlinkError::Socket { op: "recv", source }),
                },
            };
            slots[i] = Some(match (replay, r) {
                (Replay::Create, Err(e)) if e.errno() == Some(libc::EEXIST) => Ok(()),
                (Replay::Delete, Err(e)) if e.errno().is_some_and(is_gone_errno) => Ok(()),
                (_, r) => r,
            });
        }
    }

    /// Sends one request and waits for its ack.
    pub fn request(&mut self, msg: RouteNetlinkMessage, flags: u16) -> Result<(), NetlinkError> {
        self.execute(vec![(msg, flags)])
            .pop()
            .unwrap_or_else(|| Err(NetlinkError::Decode("no result".into())))
    }

    /// Sends one `GET` request for a single object and returns the kernel's answer (one
    /// message), or its refusal.
    pub fn get(&mut self, msg: RouteNetlinkMessage) -> Result<RouteNetlinkMessage, NetlinkError> {
        let mut buf = RecvBuf::take();
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST;
        header.sequence_number = self.seq;
        let seq = self.seq;
        self.seq = self.seq.wrapping_add(1);
        let mut m = NetlinkMessage::new(header, NetlinkPayload::from(msg));
        m.finalize();
        let mut out = vec![0; m.buffer_len()];
        m.serialize(&mut out);
        self.send_all(&out)
            .map_err(|source| NetlinkError::Socket { op: "send", source })?;
        loop {
            let len = loop {
                match self.sock.recv(&mut &mut buf.0[..], 0) {
                    Ok(len) => break len,
                    Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
                    Err(source) => return Err(NetlinkError::Socket { op: "recv", source }),
                }
            };
            for (hdr, bytes) in ack::messages(&buf.0[..len]) {
                if hdr.seq != seq {
                    continue;
                }
                match ack::decode(hdr, bytes) {
                    Ack::Error { code, ext, .. } | Ack::Done { code, ext } if code != 0 => {
                        return Err(NetlinkError::kernel(-code, ext))
                    }
                    Ack::Other => {
                        let m = NetlinkMessage::<RouteNetlinkMessage>::deserialize(bytes)
                            .map_err(|e| NetlinkError::Decode(e.to_string()))?;
                        if let NetlinkPayload::InnerMessage(inner) = m.payload {
                            return Ok(inner);
                        }
                    }
                    _ => {}
                }
            }
        }
    }

    /// Sends many `GET` requests for single objects, pipelined, and returns each one's answer
    /// (a message, or the kernel's refusal), in order. An answer lost to a full receive buffer
    /// is asked for again: a `GET` changes nothing.
    pub fn get_many(
        &mut self,
        msgs: Vec<RouteNetlinkMessage>,
    ) -> Vec<Result<RouteNetlinkMessage, NetlinkError>> {
        self.get_many_map(msgs, Ok)
    }

    /// Like [`NlSocket::get_many`], turning each answer into what the caller keeps as soon as
    /// it arrives (thousands of decoded answers are never held at once).
    pub fn get_many_map<T>(
        &mut self,
        msgs: Vec<RouteNetlinkMessage>,
        mut f: impl FnMut(RouteNetlinkMessage) -> Result<T, NetlinkError>,
    ) -> Vec<Result<T, NetlinkError>> {
        let mut buf = RecvBuf::take();
        /// Answers are larger than acks: fewer in flight.
        const GETS: usize = 32;
        let mut out = Vec::with_capacity(msgs.len());
        for chunk in msgs.chunks(GETS) {
            let mut slots: Vec<Option<Result<T, NetlinkError>>> =
                (0..chunk.len()).map(|_| None).collect();
            for _attempt in 0..4 {
                let missing: Vec<usize> =
                    (0..chunk.len()).filter(|&i| slots[i].is_none()).collect();
                if missing.is_empty() {
                    break;
                }
                let first = self.seq;
                let mut bytes = Vec::new();
                for &i in &missing {
                    let mut header = NetlinkHeader::default();
                    header.flags = NLM_F_REQUEST;
                    header.sequence_number = self.seq;
                    self.seq = self.seq.wrapping_add(1);
                    let mut m = NetlinkMessage::new(header, NetlinkPayload::from(chunk[i].clone()));
                    m.finalize();
                    let start = bytes.len();
                    bytes.resize(start + m.buffer_len(), 0);
                    m.serialize(&mut bytes[start..]);
                }
                if let Err(source) = self.send_all(&bytes) {
                    let errno = source.raw_os_error().unwrap_or(libc::EIO);
                    for &i in &missing {
                        slots[i] = Some(Err(NetlinkError::Socket {
                            op: "send",
                            source: io::Error::from_raw_os_error(errno),
                        }));
                    }
                    break;
                }
                let mut pending = missing.len();
                let mut lost = false;
                while pending > 0 {
                    let flags = if lost { libc::MSG_DONTWAIT } else { 0 };
                    let len = match self.sock.recv(&mut &mut buf.0[..], flags) {
                        Ok(len) => len,
                        Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
                        Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                            lost = true;
                            continue;
                        }
                        Err(e) if lost && e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(source) => {
                            let errno = source.raw_os_error().unwrap_or(libc::EIO);
                            for &i in &missing {
                                slots[i].get_or_insert_with(|| {
                                    Err(NetlinkError::Socket {
                                        op: "recv",
                                        source: io::Error::from_raw_os_error(errno),
                                    })
                                });
                            }
                            pending = 0;
                            continue;
                        }
                    };
                    for (hdr, bytes) in ack::messages(&buf.0[..len]) {
                        let k = hdr.seq.wrapping_sub(first) as usize;
                        let Some(&i) = missing.get(k) else { continue };
                        if slots[i].is_some() {
                            continue;
                        }
                        let answer = match ack::decode(hdr, bytes) {
                            Ack::Error { code, ext, .. } | Ack::Done { code, ext } if code != 0 => {
                                Err(NetlinkError::kernel(-code, ext))
                            }
                            Ack::Other => NetlinkMessage::<RouteNetlinkMessage>::deserialize(bytes)
                                .map_err(|e| NetlinkError::Decode(e.to_string()))
                                .and_then(|m| match m.payload {
                                    NetlinkPayload::InnerMessage(inner) => f(inner),
                                    _ => Err(NetlinkError::Decode("not an answer".into())),
                                }),
                            _ => continue,
                        };
                        slots[i] = Some(answer);
                        pending -= 1;
                    }
                }
            }
            out.extend(slots.into_iter().map(|s| {
                s.unwrap_or_else(|| Err(NetlinkError::Decode("no answer received".into())))
            }));
        }
        out
    }

    /// Runs a dump request (`NLM_F_DUMP`) and returns every message of the answer. A dump the
    /// kernel marks as interrupted by a concurrent change is read again from the start.
    pub fn dump(
        &mut self,
        msg: RouteNetlinkMessage,
    ) -> Result<Vec<RouteNetlinkMessage>, NetlinkError> {
        self.dump_map(msg, Some)
    }

    /// Like [`NlSocket::dump`], turning each message into what the caller keeps as soon as it
    /// arrives: a dump of thousands of interfaces never holds thousands of fully decoded
    /// messages.
    pub fn dump_map<T>(
        &mut self,
        msg: RouteNetlinkMessage,
        mut f: impl FnMut(RouteNetlinkMessage) -> Option<T>,
    ) -> Result<Vec<T>, NetlinkError> {
        for _ in 0..DUMP_ATTEMPTS {
            let (replies, interrupted) = self.dump_once(msg.clone(), &mut f)?;
            if !interrupted {
                return Ok(replies);
            }
            tracing::debug!("netlink dump interrupted by a concurrent change: reading it again");
        }
        Err(NetlinkError::DumpInterrupted(DUMP_ATTEMPTS))
    }

    fn dump_once<T>(
        &mut self,
        msg: RouteNetlinkMessage,
        f: &mut impl FnMut(RouteNetlinkMessage) -> Option<T>,
    ) -> Result<(Vec<T>, bool), NetlinkError> {
        let mut buf = RecvBuf::take();
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | NLM_F_DUMP;
        header.sequence_number = self.seq;
        let seq = self.seq;
        self.seq = self.seq.wrapping_add(1);
        let mut m = NetlinkMessage::new(header, NetlinkPayload::from(msg));
        m.finalize();
        let mut out = vec![0; m.buffer_len()];
        m.serialize(&mut out);
        self.send_all(&out)
            .map_err(|source| NetlinkError::Socket { op: "send", source })?;
        let mut reader = DumpReader::new(seq);
        let mut kept = Vec::new();
        loop {
            let len = loop {
                match self.sock.recv(&mut &mut buf.0[..], 0) {
                    Ok(len) => break len,
                    Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
                    Err(source) => return Err(NetlinkError::Socket { op: "recv", source }),
                }
            };
            let done = reader.feed(&buf.0[..len])?;
            kept.extend(reader.replies.drain(..).filter_map(&mut *f));
            if done {
                return Ok((kept, reader.interrupted));
            }
        }
    }

    fn send_all(&self, bytes: &[u8]) -> io::Result<()> {
        let sent = self.sock.send(bytes, 0)?;
        if sent != bytes.len() {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                "short netlink send",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
