//! The bench's probes, native to plumb: a UDP ping-pong (round-trip time of each of a bounded
//! number of datagrams) and one TCP stream of a bounded size. Each side runs on its own
//! thread that enters its namespace and ends with the measurement.

use std::io::{self, Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::OwnedFd;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The UDP echo's port inside the bench's namespaces.
pub const UDP_PORT: u16 = 7101;
/// The TCP sink's port.
pub const TCP_PORT: u16 = 7102;
/// Pings sent (and not counted) before measuring: neighbour resolution, caches.
const WARMUP: usize = 10;
/// How long one reply may take before it counts as lost.
const REPLY_TIMEOUT: Duration = Duration::from_secs(1);
/// How long a server waits for its client.
const IDLE_TIMEOUT: Duration = Duration::from_secs(10);
const STOP: &[u8] = b"stop";

/// Round-trip times of a ping-pong.
#[derive(Debug, Clone, Default)]
pub struct PingPong {
    /// One per answered ping, in order.
    pub rtts: Vec<Duration>,
    /// Pings that got no answer in time.
    pub lost: usize,
}

/// Runs `f` on a thread inside the namespace `fd` (or the current one for `None`).
fn in_ns<'s, 'e, T: Send + 's>(
    s: &'s std::thread::Scope<'s, 'e>,
    fd: Option<&'e OwnedFd>,
    f: impl FnOnce() -> io::Result<T> + Send + 's,
) -> std::thread::ScopedJoinHandle<'s, io::Result<T>>
where
    'e: 's,
{
    s.spawn(move || {
        if let Some(fd) = fd {
            crate::sys::setns_net(fd)?;
        }
        f()
    })
}

fn joined<T>(h: std::thread::ScopedJoinHandle<'_, io::Result<T>>) -> io::Result<T> {
    h.join()
        .unwrap_or_else(|_| Err(io::Error::other("a probe thread panicked")))
}

/// `count` UDP pings of 64 bytes from a thread in `from` to an echo on `to_addr` in `to`.
pub fn ping_pong(
    from: Option<&OwnedFd>,
    to: Option<&OwnedFd>,
    to_addr: IpAddr,
    count: usize,
) -> io::Result<PingPong> {
    let target = SocketAddr::new(to_addr, UDP_PORT);
    std::thread::scope(|s| {
        let (ready_tx, ready_rx) = mpsc::channel::<()>();
        let server = in_ns(s, to, move || {
            let sock = UdpSocket::bind(target)?;
            sock.set_read_timeout(Some(IDLE_TIMEOUT))?;
            let _ = ready_tx.send(());
            let mut buf = [0u8; 256];
            loop {
                let (n, peer) = match sock.recv_from(&mut buf) {
                    Ok(r) => r,
                    // The client went away without saying stop: done.
                    Err(e)
                        if matches!(
                            e.kind(),
                            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                        ) =>
                    {
                        return Ok(())
                    }
                    Err(e) => return Err(e),
                };
                if &buf[..n] == STOP {
                    return Ok(());
                }
                sock.send_to(&buf[..n], peer)?;
            }
        });
        if ready_rx.recv().is_err() {
            // The server failed before binding: its error says why.
            return joined(server).map(|()| PingPong::default());
        }
        let client = in_ns(s, from, move || {
            let bind: SocketAddr = if to_addr.is_ipv6() {
                "[::]:0"
            } else {
                "0.0.0.0:0"
            }
            .parse()
            .map_err(io::Error::other)?;
            let sock = UdpSocket::bind(bind)?;
            sock.connect(target)?;
            sock.set_read_timeout(Some(REPLY_TIMEOUT))?;
            let mut out = PingPong::default();
            let mut msg = [0u8; 64];
            let mut buf = [0u8; 256];
            for seq in 0..(WARMUP + count) as u64 {
                msg[..8].copy_from_slice(&seq.to_be_bytes());
                let t0 = Instant::now();
                sock.send(&msg)?;
                let answered = loop {
                    match sock.recv(&mut buf) {
                        Ok(n) if n >= 8 && buf[..8] == msg[..8] => break true,
                        Ok(_) => continue, // a late answer to an earlier ping
                        Err(e)
                            if matches!(
                                e.kind(),
                                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                            ) =>
                        {
                            break false
                        }
                        Err(e) => return Err(e),
                    }
                };
                let rtt = t0.elapsed();
                if seq as usize >= WARMUP {
                    if answered {
                        out.rtts.push(rtt);
                    } else {
                        out.lost += 1;
                    }
                }
            }
            for _ in 0..3 {
                let _ = sock.send(STOP);
            }
            Ok(out)
        });
        let r = joined(client);
        let s = joined(server);
        let r = r?;
        s?;
        Ok(r)
    })
}

/// Sends `bytes` over one TCP connection from `from` to a sink on `to_addr` in `to`; returns
/// the time from the first write until the sink acknowledged the last byte.
pub fn stream(
    from: Option<&OwnedFd>,
    to: Option<&OwnedFd>,
    to_addr: IpAddr,
    bytes: u64,
) -> io::Result<Duration> {
    let target = SocketAddr::new(to_addr, TCP_PORT);
    std::thread::scope(|s| {
        let (ready_tx, ready_rx) = mpsc::channel::<()>();
        let server = in_ns(s, to, move || {
            let l = TcpListener::bind(target)?;
            l.set_nonblocking(true)?;
            let _ = ready_tx.send(());
            let deadline = Instant::now() + IDLE_TIMEOUT;
            let mut conn = loop {
                match l.accept() {
                    Ok((c, _)) => break c,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        if Instant::now() > deadline {
                            return Err(io::Error::new(io::ErrorKind::TimedOut, "no client came"));
                        }
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    Err(e) => return Err(e),
                }
            };
            conn.set_nonblocking(false)?;
            conn.set_read_timeout(Some(IDLE_TIMEOUT))?;
            let mut buf = vec![0u8; 1 << 17];
            let mut got = 0u64;
            loop {
                let n = conn.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                got += n as u64;
            }
            conn.write_all(&[1])?;
            Ok(got)
        });
        if ready_rx.recv().is_err() {
            return joined(server).map(|_| Duration::ZERO);
        }
        let client = in_ns(s, from, move || {
            let mut c = TcpStream::connect_timeout(&target, IDLE_TIMEOUT)?;
            c.set_read_timeout(Some(IDLE_TIMEOUT))?;
            let chunk = vec![0x5au8; 1 << 17];
            let t0 = Instant::now();
            let mut sent = 0u64;
            while sent < bytes {
                let n = (bytes - sent).min(chunk.len() as u64) as usize;
                c.write_all(&chunk[..n])?;
                sent += n as u64;
            }
            c.shutdown(Shutdown::Write)?;
            let mut ack = [0u8; 1];
            c.read_exact(&mut ack)?;
            Ok(t0.elapsed())
        });
        let took = joined(client);
        let got = joined(server);
        let took = took?;
        let got = got?;
        if got != bytes {
            return Err(io::Error::other(format!(
                "the sink received {got} of {bytes} bytes"
            )));
        }
        Ok(took)
    })
}
