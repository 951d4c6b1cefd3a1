//! TCP probes: a connect with a deadline (what `nc -z -w 1 ADDR PORT` does), and the responder,
//! a listener on `0.0.0.0:PORT` (or `[::]:PORT`) in the target node that accepts and closes.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::Verdict;

/// How often a responder looks at its stop flag while nobody connects.
const POLL: Duration = Duration::from_millis(5);

/// At most this many connections are accepted by one responder.
const MAX_ACCEPTS: usize = 16;

/// Connects to `addr:port` from the calling thread's namespace, waiting at most `timeout`.
pub(crate) fn connect(addr: IpAddr, port: u16, timeout: Duration) -> io::Result<Verdict> {
    let started = Instant::now();
    match TcpStream::connect_timeout(&SocketAddr::new(addr, port), timeout) {
        Ok(stream) => {
            let rtt = started.elapsed();
            drop(stream);
            Ok(Verdict::Connected { rtt })
        }
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
            ) =>
        {
            Ok(Verdict::Timeout {
                waited: started.elapsed(),
            })
        }
        Err(e) => Verdict::from_send_error(&e).ok_or(e),
    }
}

/// Listens on every address of the calling thread's namespace. `None` when the port is taken
/// (`EADDRINUSE`): something listens there already, and the probe goes to it.
pub(crate) fn listen(v6: bool, port: u16) -> io::Result<Option<TcpListener>> {
    let any: IpAddr = if v6 {
        Ipv6Addr::UNSPECIFIED.into()
    } else {
        Ipv4Addr::UNSPECIFIED.into()
    };
    match TcpListener::bind(SocketAddr::new(any, port)) {
        Ok(l) => {
            l.set_nonblocking(true)?;
            Ok(Some(l))
        }
        Err(e) if e.kind() == io::ErrorKind::AddrInUse => Ok(None),
        Err(e) => Err(e),
    }
}

/// Accepts and closes connections until `stop` is set or `until` passes.
pub(crate) fn serve(listener: &TcpListener, stop: &AtomicBool, until: Instant) {
    let mut accepted = 0;
    while !stop.load(Ordering::SeqCst) && Instant::now() < until && accepted < MAX_ACCEPTS {
        match listener.accept() {
            Ok((conn, _)) => {
                accepted += 1;
                drop(conn);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::sleep(POLL),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            // ECONNABORTED and friends: the client left before accept; keep serving.
            Err(e) if e.kind() == io::ErrorKind::ConnectionAborted => {}
            Err(e) => {
                tracing::debug!("tcp responder: accept failed: {e}");
                return;
            }
        }
    }
}
