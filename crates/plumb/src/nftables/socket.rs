//! A `NETLINK_NETFILTER` socket bound to the namespace it was opened in: transactions (a batch
//! framed by `NFNL_MSG_BATCH_BEGIN` and `NFNL_MSG_BATCH_END`, sent in one `sendmsg`, which the
//! kernel applies or refuses as a whole before `sendmsg` returns), and dumps.

use std::io;
use std::time::Duration;

use netlink_sys::{Socket, SocketAddr};

use super::compile::flags::{NLM_F_ACK, NLM_F_REQUEST};
use super::wire::{family, Msg, NFNL_MSG_BATCH_BEGIN, NFNL_MSG_BATCH_END};
use super::wire::{NFNL_SUBSYS_NFTABLES, NLMSG_HDRLEN};
use crate::netlink::ack::{self, Ack};
use crate::netlink::NetlinkError;

/// `NETLINK_NETFILTER` from `linux/netlink.h`.
const NETLINK_NETFILTER: isize = 12;
/// `NLM_F_DUMP` (`NLM_F_ROOT | NLM_F_MATCH`).
const NLM_F_DUMP: u16 = 0x300;
/// `NLM_F_DUMP_INTR`.
const NLM_F_DUMP_INTR: u16 = 0x10;
/// How often a dump interrupted by a concurrent change is read again.
const DUMP_ATTEMPTS: usize = 8;
/// How long a reply may take: the kernel answers a batch before `sendmsg` returns, so only a
/// kernel that never answers makes this matter.
const REPLY_TIMEOUT: Duration = Duration::from_secs(10);

/// A transaction the kernel refused: which message, and why. The whole transaction had no
/// effect.
#[derive(Debug)]
pub struct Refused {
    /// The index of the refused message among those given to [`NfSocket::transact`].
    pub index: usize,
    /// The kernel's answer.
    pub error: NetlinkError,
}

/// A `NETLINK_NETFILTER` socket.
pub struct NfSocket {
    sock: Socket,
    seq: u32,
    buf: Vec<u8>,
}

impl std::fmt::Debug for NfSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NfSocket").field("seq", &self.seq).finish()
    }
}

fn sock_err(op: &'static str) -> impl Fn(io::Error) -> NetlinkError {
    move |source| NetlinkError::Socket { op, source }
}

impl NfSocket {
    /// Opens a socket in the calling thread's current network namespace.
    pub fn open() -> Result<NfSocket, NetlinkError> {
        let mut sock = Socket::new(NETLINK_NETFILTER).map_err(sock_err("open"))?;
        sock.bind_auto().map_err(sock_err("bind"))?;
        sock.connect(&SocketAddr::new(0, 0))
            .map_err(sock_err("connect"))?;
        let _ = sock.set_ext_ack(true);
        let _ = sock.set_cap_ack(true);
        let _ = sock.set_rx_buf_sz(1usize << 20);
        set_recv_timeout(&sock, REPLY_TIMEOUT);
        Ok(NfSocket {
            sock,
            seq: 1,
            buf: vec![0; 1 << 16],
        })
    }

    fn next_seq(&mut self) -> u32 {
        let s = self.seq;
        self.seq = self.seq.wrapping_add(1);
        s
    }

    /// Runs `msgs` as one transaction: all of them take effect, or none does and the refused
    /// message is named. As with `nft`, no acknowledgement is asked for: nfnetlink processes a
    /// batch inside `sendmsg` and queues an error for each message it refuses before
    /// `sendmsg` returns, so what is queued then is the whole answer.
    pub fn transact(&mut self, msgs: Vec<Msg>) -> Result<(), Refused> {
        let first = self.seq;
        let n = msgs.len() as u32;
        self.seq = self.seq.wrapping_add(n + 2);
        let seqs: Vec<u32> = (1..=n).map(|k| first.wrapping_add(k)).collect();
        let mut bytes = Vec::new();
        for one in batch_bytes(msgs, first) {
            bytes.extend(one);
        }
        let whole = |error| Refused {
            index: usize::MAX,
            error,
        };
        let sent = self
            .sock
            .send(&bytes, 0)
            .map_err(sock_err("send"))
            .map_err(whole)?;
        if sent != bytes.len() {
            return Err(whole(NetlinkError::Socket {
                op: "send",
                source: io::Error::new(io::ErrorKind::WriteZero, "short netlink send"),
            }));
        }
        let mut refused: Option<Refused> = None;
        while let Some(len) = self.recv_queued().map_err(whole)? {
            for (h, b) in ack::messages(&self.buf[..len]) {
                let Some(i) = seqs.iter().position(|s| *s == h.seq) else {
                    continue;
                };
                if let Ack::Error { code, ext, .. } = ack::decode(h, b) {
                    if code != 0 && refused.is_none() {
                        refused = Some(Refused {
                            index: i,
                            error: NetlinkError::kernel(-code, ext),
                        });
                    }
                }
            }
        }
        match refused {
            Some(r) => Err(r),
            None => Ok(()),
        }
    }

    /// A datagram already queued, without waiting: `None` when there is none.
    fn recv_queued(&mut self) -> Result<Option<usize>, NetlinkError> {
        loop {
            match self.sock.recv(&mut &mut self.buf[..], libc::MSG_DONTWAIT) {
                Ok(len) => return Ok(Some(len)),
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
                Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => return Ok(None),
                Err(e) => {
                    return Err(NetlinkError::Socket {
                        op: "recv",
                        source: e,
                    })
                }
            }
        }
    }

    fn recv(&mut self) -> Result<usize, NetlinkError> {
        loop {
            match self.sock.recv(&mut &mut self.buf[..], 0) {
                Ok(len) => return Ok(len),
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
                Err(e) => {
                    return Err(NetlinkError::Socket {
                        op: "recv",
                        source: e,
                    })
                }
            }
        }
    }

    /// Sends a dump request and returns every message of the answer (whole messages, header
    /// included). An answer the kernel marks as interrupted by a concurrent change is read
    /// again.
    pub fn dump(&mut self, m: &Msg) -> Result<Vec<Vec<u8>>, NetlinkError> {
        for _ in 0..DUMP_ATTEMPTS {
            let (msgs, interrupted) = self.dump_once(m)?;
            if !interrupted {
                return Ok(msgs);
            }
        }
        Err(NetlinkError::DumpInterrupted(DUMP_ATTEMPTS))
    }

    fn dump_once(&mut self, m: &Msg) -> Result<(Vec<Vec<u8>>, bool), NetlinkError> {
        let seq = self.next_seq();
        let req = Msg::with_attrs(
            m.kind(),
            NLM_F_REQUEST | NLM_F_DUMP,
            family_of(m),
            m.attrs(),
        );
        let bytes = req.finish(seq);
        self.sock.send(&bytes, 0).map_err(sock_err("send"))?;
        let mut out = Vec::new();
        let mut interrupted = false;
        loop {
            let len = self.recv()?;
            for (h, b) in ack::messages(&self.buf[..len]) {
                if h.seq != seq {
                    continue;
                }
                interrupted |= h.flags & NLM_F_DUMP_INTR != 0;
                match ack::decode(h, b) {
                    Ack::Done { code: 0, .. } | Ack::Error { code: 0, .. } => {
                        return Ok((out, interrupted))
                    }
                    Ack::Done { code, ext } | Ack::Error { code, ext, .. } => {
                        return Err(NetlinkError::kernel(-code, ext))
                    }
                    Ack::Other => out.push(b.to_vec()),
                }
            }
        }
    }

    /// Sends one request that answers with one message (`GETTABLE` of a table by name):
    /// `Ok(None)` when the kernel answers that it does not exist (`ENOENT`).
    pub fn get(&mut self, m: &Msg) -> Result<Option<Vec<u8>>, NetlinkError> {
        let seq = self.next_seq();
        let req = Msg::with_attrs(m.kind(), NLM_F_REQUEST | NLM_F_ACK, family_of(m), m.attrs());
        self.sock
            .send(&req.finish(seq), 0)
            .map_err(sock_err("send"))?;
        let mut answer = None;
        loop {
            let len = self.recv()?;
            for (h, b) in ack::messages(&self.buf[..len]) {
                if h.seq != seq {
                    continue;
                }
                match ack::decode(h, b) {
                    Ack::Error { code: 0, .. } => return Ok(answer),
                    Ack::Error { code, .. } if -code == libc::ENOENT => return Ok(None),
                    Ack::Error { code, ext, .. } | Ack::Done { code, ext } => {
                        return Err(NetlinkError::kernel(-code, ext))
                    }
                    Ack::Other => answer = Some(b.to_vec()),
                }
            }
        }
    }
}

/// The messages of one transaction as sent: `BATCH_BEGIN` with sequence number `first`,
/// `msgs` numbered after it, `BATCH_END`.
pub fn batch_bytes(msgs: Vec<Msg>, first: u32) -> Vec<Vec<u8>> {
    let mut out = Vec::with_capacity(msgs.len() + 2);
    out.push(framing(NFNL_MSG_BATCH_BEGIN).finish(first));
    let mut seq = first;
    for m in msgs {
        seq = seq.wrapping_add(1);
        #[allow(unused_mut)]
        let mut one = m.finish(seq);
        #[cfg(feature = "fault-injection")]
        crate::fault::on_nft_message(&mut one);
        out.push(one);
    }
    out.push(framing(NFNL_MSG_BATCH_END).finish(seq.wrapping_add(1)));
    out
}

/// `BATCH_BEGIN` / `BATCH_END`: `nfgenmsg.res_id` names the subsystem the batch is for.
fn framing(kind: u16) -> Msg {
    Msg::new(
        kind,
        NLM_F_REQUEST,
        family::NFPROTO_UNSPEC,
        NFNL_SUBSYS_NFTABLES,
    )
}

fn family_of(m: &Msg) -> u8 {
    let bytes = m.clone().finish(0);
    bytes
        .get(NLMSG_HDRLEN)
        .copied()
        .unwrap_or(family::NFPROTO_UNSPEC)
}

/// `SO_RCVTIMEO`: a kernel that never answers becomes an error instead of a hang.
fn set_recv_timeout(sock: &Socket, t: Duration) {
    let _ = rustix::net::sockopt::set_socket_timeout(
        sock,
        rustix::net::sockopt::Timeout::Recv,
        Some(t),
    );
}

#[cfg(test)]
mod tests {
    use super::super::wire;
    use super::*;

    #[test]
    fn batch_framing_names_the_nftables_subsystem() {
        let b = framing(NFNL_MSG_BATCH_BEGIN).finish(5);
        assert_eq!(b.len(), 20);
        let r = wire::received(&b).unwrap();
        assert_eq!((r.kind, r.seq, r.family), (16, 5, 0));
        assert_eq!(&b[18..20], &10u16.to_be_bytes());
    }
}
