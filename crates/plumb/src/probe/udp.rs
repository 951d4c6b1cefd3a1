//! UDP probes: a random token sent to `addr:port` that must come back (what a UDP echo
//! service answers), and the responder, a socket on `0.0.0.0:PORT` in the target node that
//! sends every datagram back to where it came from.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::Verdict;

/// How long a responder blocks in `recv` before it looks at its stop flag again.
const POLL: Duration = Duration::from_millis(10);

/// At most this many datagrams are echoed by one responder.
const MAX_ECHOES: usize = 16;

fn unspecified(v6: bool, port: u16) -> SocketAddr {
    let any: IpAddr = if v6 {
        Ipv6Addr::UNSPECIFIED.into()
    } else {
        Ipv4Addr::UNSPECIFIED.into()
    };
    SocketAddr::new(any, port)
}

/// The token of one try: a fixed prefix and 16 random hex digits.
fn token() -> Vec<u8> {
    format!("plumb probe {:016x}", super::random_u64()).into_bytes()
}

/// Sends a token to `addr:port` up to `tries` times from the calling thread's namespace, each
/// waiting `per_try` for it to come back.
pub(crate) fn round_trip(
    addr: IpAddr,
    port: u16,
    per_try: Duration,
    tries: u32,
) -> io::Result<Verdict> {
    let started = Instant::now();
    // The whole probe ends by then, however slow the sends were.
    let overall = started + per_try * tries;
    let sock = UdpSocket::bind(unspecified(addr.is_ipv6(), 0))?;
    // A connected socket receives only from the target, and learns of ICMP port unreachable.
    if let Err(e) = sock.connect(SocketAddr::new(addr, port)) {
        return Verdict::from_send_error(&e).ok_or(e);
    }
    let mut tokens = Vec::new();
    let mut buf = [0u8; 512];
    for _ in 0..tries {
        let t = token();
        let sent_at = Instant::now();
        if let Err(e) = sock.send(&t) {
            return Verdict::from_send_error(&e).ok_or(e);
        }
        tokens.push(t);
        let deadline = (sent_at + per_try).min(overall);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            sock.set_read_timeout(Some(left.max(Duration::from_millis(1))))?;
            match sock.recv(&mut buf) {
                Ok(n) if tokens.iter().any(|t| t.as_slice() == &buf[..n]) => {
                    return Ok(Verdict::Echoed {
                        rtt: sent_at.elapsed(),
                    });
                }
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    break
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                    return Ok(Verdict::PortUnreachable)
                }
                Err(e) => return Verdict::from_send_error(&e).ok_or(e),
            }
        }
    }
    Ok(Verdict::Timeout {
        waited: started.elapsed(),
    })
}

/// Binds `0.0.0.0:PORT` (or `[::]:PORT`) in the calling thread's namespace. `None` when the
/// port is taken (`EADDRINUSE`): something listens there already, and the probe goes to it.
pub(crate) fn bind(v6: bool, port: u16) -> io::Result<Option<UdpSocket>> {
    match UdpSocket::bind(unspecified(v6, port)) {
        Ok(s) => {
            s.set_read_timeout(Some(POLL))?;
            Ok(Some(s))
        }
        Err(e) if e.kind() == io::ErrorKind::AddrInUse => Ok(None),
        Err(e) => Err(e),
    }
}

/// Echoes datagrams until `stop` is set or `until` passes.
pub(crate) fn serve(sock: &UdpSocket, stop: &AtomicBool, until: Instant) {
    let mut buf = [0u8; 512];
    let mut echoed = 0;
    while !stop.load(Ordering::SeqCst) && Instant::now() < until && echoed < MAX_ECHOES {
        match sock.recv_from(&mut buf) {
            Ok((n, peer)) => {
                echoed += 1;
                if let Err(e) = sock.send_to(&buf[..n], peer) {
                    tracing::debug!("udp responder: echo to {peer} failed: {e}");
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) => {}
            // An ICMP error from an earlier echo; keep serving.
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {}
            Err(e) => {
                tracing::debug!("udp responder: recv failed: {e}");
                return;
            }
        }
    }
}
