//! rtnetlink over a synchronous socket, with pipelining.
//!
//! One [`NlSocket`] per network namespace, opened on a thread that is inside that namespace (a
//! netlink socket stays bound to the namespace it was created in, so it can then be used from any
//! thread). Requests are sent in batches — many messages in one `sendmsg`, the kernel processes them
//! in order — and their acknowledgements are collected afterwards, so a thousand-step change costs a
//! few dozen syscalls instead of thousands of round trips.
//!
//! Sub-modules build the messages, one file per kernel object: [`link`], [`addr`], [`route`].

pub mod addr;
pub mod link;
pub mod route;

use std::io;

use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST,
};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};

/// A netlink request failed, or the socket did.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NetlinkError {
    /// Opening or using the socket failed.
    #[error("netlink socket: {0}")]
    Socket(#[source] io::Error),
    /// The kernel refused a request.
    #[error("{errno}{}", ext.as_deref().map(|m| format!(" ({m})")).unwrap_or_default())]
    Kernel {
        /// The errno.
        #[source]
        errno: io::Error,
        /// The kernel's extended-ack message, if it sent one.
        ext: Option<String>,
    },
    /// A reply could not be decoded.
    #[error("cannot decode a netlink reply: {0}")]
    Decode(String),
}

impl NetlinkError {
    /// The errno of a kernel refusal.
    pub fn errno(&self) -> Option<i32> {
        match self {
            NetlinkError::Kernel { errno, .. } | NetlinkError::Socket(errno) => {
                errno.raw_os_error()
            }
            NetlinkError::Decode(_) => None,
        }
    }
}

/// Requests in flight per send: bounded so that the acks fit in the default receive buffer
/// (`net.core.rmem_default`, which an unprivileged user cannot raise).
const BATCH: usize = 128;

/// NETLINK_EXT_ACK and NETLINK_CAP_ACK make errors carry the kernel's message and not the request.
/// A `NETLINK_ROUTE` socket bound to the namespace it was opened in.
pub struct NlSocket {
    sock: Socket,
    seq: u32,
    buf: Vec<u8>,
}

impl std::fmt::Debug for NlSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NlSocket").field("seq", &self.seq).finish()
    }
}

impl NlSocket {
    /// Opens a socket in the calling thread's current network namespace.
    pub fn open() -> Result<Self, NetlinkError> {
        let mut sock = Socket::new(NETLINK_ROUTE).map_err(NetlinkError::Socket)?;
        sock.bind_auto().map_err(NetlinkError::Socket)?;
        sock.connect(&SocketAddr::new(0, 0))
            .map_err(NetlinkError::Socket)?;
        // Best effort: older kernels lack these; errors then carry fewer details.
        let _ = sock.set_ext_ack(true);
        let _ = sock.set_cap_ack(true);
        let _ = sock.set_netlink_get_strict_chk(true);
        let _ = sock.set_rx_buf_sz(1 << 20);
        Ok(NlSocket {
            sock,
            seq: 1,
            buf: vec![0; 1 << 16],
        })
    }

    /// Sends every request, then collects one result per request, in order.
    /// Equivalent to running the matching `ip` commands one after another, but pipelined.
    pub fn execute(
        &mut self,
        requests: Vec<(RouteNetlinkMessage, u16)>,
    ) -> Vec<Result<(), NetlinkError>> {
        let mut results = Vec::with_capacity(requests.len());
        let mut it = requests.into_iter().peekable();
        while it.peek().is_some() {
            let chunk: Vec<_> = it.by_ref().take(BATCH).collect();
            let n = chunk.len();
            let first = self.seq;
            let mut out = Vec::new();
            for (msg, flags) in chunk {
                let mut header = NetlinkHeader::default();
                header.flags = NLM_F_REQUEST | NLM_F_ACK | flags;
                header.sequence_number = self.seq;
                self.seq = self.seq.wrapping_add(1);
                let mut m = NetlinkMessage::new(header, NetlinkPayload::from(msg));
                m.finalize();
                let start = out.len();
                out.resize(start + m.buffer_len(), 0);
                m.serialize(&mut out[start..]);
            }
            let mut chunk_results: Vec<Option<Result<(), NetlinkError>>> =
                (0..n).map(|_| None).collect();
            if let Err(e) = self.send_all(&out) {
                let msg = e.to_string();
                results.extend(
                    (0..n)
                        .map(|_| Err(NetlinkError::Socket(io::Error::new(e.kind(), msg.clone())))),
                );
                continue;
            }
            let mut pending = n;
            while pending > 0 {
                let len = match self.sock.recv(&mut &mut self.buf[..], 0) {
                    Ok(len) => len,
                    Err(e) => {
                        for slot in chunk_results.iter_mut().filter(|s| s.is_none()) {
                            *slot = Some(Err(NetlinkError::Socket(io::Error::new(
                                e.kind(),
                                e.to_string(),
                            ))));
                        }
                        break;
                    }
                };
                let mut offset = 0;
                while offset < len {
                    let bytes = &self.buf[offset..len];
                    let msg = match NetlinkMessage::<RouteNetlinkMessage>::deserialize(bytes) {
                        Ok(m) => m,
                        Err(e) => {
                            for slot in chunk_results.iter_mut().filter(|s| s.is_none()) {
                                *slot = Some(Err(NetlinkError::Decode(e.to_string())));
                            }
                            pending = 0;
                            break;
                        }
                    };
                    let step = msg.header.length as usize;
                    let idx = msg.header.sequence_number.wrapping_sub(first) as usize;
                    if let NetlinkPayload::Error(err) = msg.payload {
                        if idx < n && chunk_results[idx].is_none() {
                            chunk_results[idx] = Some(match err.code {
                                None => Ok(()),
                                Some(code) => Err(NetlinkError::Kernel {
                                    errno: io::Error::from_raw_os_error(-code.get()),
                                    ext: ext_ack_message(&err.header),
                                }),
                            });
                            pending -= 1;
                        }
                    }
                    if step == 0 {
                        break;
                    }
                    offset += align4(step);
                }
            }
            results.extend(chunk_results.into_iter().map(|r| {
                r.unwrap_or_else(|| Err(NetlinkError::Decode("no acknowledgement received".into())))
            }));
        }
        results
    }

    /// Sends one request and waits for its ack.
    pub fn request(&mut self, msg: RouteNetlinkMessage, flags: u16) -> Result<(), NetlinkError> {
        self.execute(vec![(msg, flags)])
            .pop()
            .unwrap_or(Err(NetlinkError::Decode("no result".into())))
    }

    /// Runs a dump request (`NLM_F_DUMP`) and returns every message of the answer.
    pub fn dump(
        &mut self,
        msg: RouteNetlinkMessage,
    ) -> Result<Vec<RouteNetlinkMessage>, NetlinkError> {
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | NLM_F_DUMP;
        header.sequence_number = self.seq;
        let seq = self.seq;
        self.seq = self.seq.wrapping_add(1);
        let mut m = NetlinkMessage::new(header, NetlinkPayload::from(msg));
        m.finalize();
        let mut out = vec![0; m.buffer_len()];
        m.serialize(&mut out);
        self.send_all(&out).map_err(NetlinkError::Socket)?;
        let mut replies = Vec::new();
        loop {
            let len = self
                .sock
                .recv(&mut &mut self.buf[..], 0)
                .map_err(NetlinkError::Socket)?;
            let mut offset = 0;
            while offset < len {
                let msg =
                    NetlinkMessage::<RouteNetlinkMessage>::deserialize(&self.buf[offset..len])
                        .map_err(|e| NetlinkError::Decode(e.to_string()))?;
                let step = msg.header.length as usize;
                if msg.header.sequence_number == seq {
                    match msg.payload {
                        NetlinkPayload::Done(_) => return Ok(replies),
                        NetlinkPayload::Error(err) => {
                            if let Some(code) = err.code {
                                return Err(NetlinkError::Kernel {
                                    errno: io::Error::from_raw_os_error(-code.get()),
                                    ext: ext_ack_message(&err.header),
                                });
                            }
                            return Ok(replies);
                        }
                        NetlinkPayload::InnerMessage(inner) => replies.push(inner),
                        _ => {}
                    }
                }
                if step == 0 {
                    break;
                }
                offset += align4(step);
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

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// NLMSGERR_ATTR_MSG from `include/uapi/linux/netlink.h`.
const NLMSGERR_ATTR_MSG: u16 = 1;

/// Finds the extended-ack text after the echoed request header (16 bytes, NETLINK_CAP_ACK).
fn ext_ack_message(payload: &[u8]) -> Option<String> {
    let mut rest = payload.get(16..)?;
    while rest.len() >= 4 {
        let len = u16::from_ne_bytes([rest[0], rest[1]]) as usize;
        let kind = u16::from_ne_bytes([rest[2], rest[3]]);
        if len < 4 || len > rest.len() {
            return None;
        }
        if kind == NLMSGERR_ATTR_MSG {
            let text = &rest[4..len];
            let text = text.split(|b| *b == 0).next().unwrap_or_default();
            return Some(String::from_utf8_lossy(text).into_owned());
        }
        rest = &rest[align4(len).min(rest.len())..];
    }
    None
}
