//! ICMP echo over a raw socket (`socket(AF_INET, SOCK_RAW, IPPROTO_ICMP)`, or `AF_INET6` with
//! `IPPROTO_ICMPV6`): what `ping -c 2 -W 1 ADDR` does, with the answer matched by id, sequence
//! number and a random payload, so other pings in the same namespace never count.
//!
//! An IPv4 raw socket receives whole IP packets (header included) and sends the ICMP message we
//! build, checksum included; an ICMPv6 raw socket receives the ICMPv6 message only, and the
//! kernel computes its checksum (RFC 3542, 3.1).

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use rustix::io::Errno;
use rustix::net::{
    self as rnet, ipproto, sockopt, AddressFamily, RecvFlags, SendFlags, SocketFlags, SocketType,
};

use super::Verdict;

/// `ICMP_ECHOREPLY`, `<linux/icmp.h>`.
const ICMP_ECHOREPLY: u8 = 0;
/// `ICMP_DEST_UNREACH`, `<linux/icmp.h>`.
const ICMP_DEST_UNREACH: u8 = 3;
/// `ICMP_ECHO`, `<linux/icmp.h>`.
const ICMP_ECHO: u8 = 8;
/// `ICMP_TIME_EXCEEDED`, `<linux/icmp.h>`.
const ICMP_TIME_EXCEEDED: u8 = 11;
/// `ICMPV6_DEST_UNREACH`, `<linux/icmpv6.h>`.
const ICMPV6_DEST_UNREACH: u8 = 1;
/// `ICMPV6_TIME_EXCEED`, `<linux/icmpv6.h>`.
const ICMPV6_TIME_EXCEED: u8 = 3;
/// `ICMPV6_ECHO_REQUEST`, `<linux/icmpv6.h>`.
const ICMPV6_ECHO_REQUEST: u8 = 128;
/// `ICMPV6_ECHO_REPLY`, `<linux/icmpv6.h>`.
const ICMPV6_ECHO_REPLY: u8 = 129;
/// `IPPROTO_ICMP` and `IPPROTO_ICMPV6` (`<linux/in.h>`, `<linux/in6.h>`) as header fields.
const PROTO_ICMP: u8 = 1;
const PROTO_ICMPV6: u8 = 58;

/// Length of the ICMP echo header: type, code, checksum, identifier, sequence number.
const ECHO_HEADER: usize = 8;

/// The Internet checksum (RFC 1071): the ones' complement of the ones' complement sum of the
/// 16-bit big-endian words of `data` (an odd last byte padded with zero).
pub fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    let mut words = data.chunks_exact(2);
    for w in &mut words {
        sum += u32::from(u16::from_be_bytes([w[0], w[1]]));
    }
    if let [last] = words.remainder() {
        sum += u32::from(*last) << 8;
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An ICMP echo request: type, code 0, checksum, `id`, `seq`, then `payload`.
///
/// For IPv4 the checksum is filled in; for IPv6 it is left zero for the kernel, which must
/// include the pseudo-header it alone knows the source address for.
pub fn echo_request(v6: bool, id: u16, seq: u16, payload: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(ECHO_HEADER + payload.len());
    p.push(if v6 { ICMPV6_ECHO_REQUEST } else { ICMP_ECHO });
    p.push(0);
    p.extend_from_slice(&[0, 0]);
    p.extend_from_slice(&id.to_be_bytes());
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(payload);
    if !v6 {
        let c = checksum(&p);
        p[2..4].copy_from_slice(&c.to_be_bytes());
    }
    p
}

/// What a received packet means for our probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Answer {
    /// Our echo came back; the sequence number it answers.
    Reply { seq: u16 },
    /// An ICMP error about our echo request.
    Error { kind: u8, code: u8 },
}

/// The probe's identity, for matching answers.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Echo<'a> {
    /// Where the requests went.
    pub target: IpAddr,
    /// Identifier.
    pub id: u16,
    /// Payload every request carries.
    pub payload: &'a [u8],
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

impl Echo<'_> {
    /// Is `icmp` (an echo request we sent, as quoted in an ICMP error) ours?
    fn is_our_request(&self, icmp: &[u8], request_type: u8) -> bool {
        icmp.first() == Some(&request_type) && be16(icmp, 4) == Some(self.id)
    }

    /// An ICMP message (from its type byte on) that came from `from`.
    fn classify(&self, from: IpAddr, icmp: &[u8], v6: bool) -> Option<Answer> {
        let (reply, unreach, exceeded) = if v6 {
            (ICMPV6_ECHO_REPLY, ICMPV6_DEST_UNREACH, ICMPV6_TIME_EXCEED)
        } else {
            (ICMP_ECHOREPLY, ICMP_DEST_UNREACH, ICMP_TIME_EXCEEDED)
        };
        let kind = *icmp.first()?;
        let code = *icmp.get(1)?;
        if kind == reply {
            let ours = from == self.target
                && be16(icmp, 4)? == self.id
                && icmp.get(ECHO_HEADER..)? == self.payload;
            return ours.then_some(Answer::Reply {
                seq: be16(icmp, 6)?,
            });
        }
        if kind != unreach && kind != exceeded {
            return None;
        }
        // An error quotes the offending packet's IP header and at least 8 bytes after it.
        let quoted = icmp.get(ECHO_HEADER..)?;
        let (dst, inner) = if v6 {
            if *quoted.get(6)? != PROTO_ICMPV6 {
                return None;
            }
            let dst: [u8; 16] = quoted.get(24..40)?.try_into().ok()?;
            (IpAddr::from(dst), quoted.get(40..)?)
        } else {
            let ihl = usize::from(quoted.first()? & 0x0f) * 4;
            if *quoted.get(9)? != PROTO_ICMP {
                return None;
            }
            let dst: [u8; 4] = quoted.get(16..20)?.try_into().ok()?;
            (IpAddr::from(dst), quoted.get(ihl..)?)
        };
        let request = if v6 { ICMPV6_ECHO_REQUEST } else { ICMP_ECHO };
        (dst == self.target && self.is_our_request(inner, request))
            .then_some(Answer::Error { kind, code })
    }

    /// A packet read from an IPv4 raw ICMP socket: the IP header, then the ICMP message.
    pub(crate) fn classify_v4(&self, packet: &[u8]) -> Option<Answer> {
        let first = *packet.first()?;
        if first >> 4 != 4 || *packet.get(9)? != PROTO_ICMP {
            return None;
        }
        let ihl = usize::from(first & 0x0f) * 4;
        let src: [u8; 4] = packet.get(12..16)?.try_into().ok()?;
        self.classify(IpAddr::from(src), packet.get(ihl..)?, false)
    }

    /// A message read from an ICMPv6 raw socket (no IP header), sent by `from`.
    pub(crate) fn classify_v6(&self, from: IpAddr, message: &[u8]) -> Option<Answer> {
        self.classify(from, message, true)
    }
}

/// "destination unreachable (host unreachable)" and friends. The type numbers of ICMP and
/// ICMPv6 overlap (3 is "destination unreachable" in one, "time exceeded" in the other).
pub(crate) fn describe_error(v6: bool, kind: u8, code: u8) -> String {
    const UNREACH: &str = "destination unreachable";
    const PROHIBITED: &str = "administratively prohibited";
    let (what, why) = match (v6, kind, code) {
        (false, ICMP_DEST_UNREACH, 0) => (UNREACH, "net unreachable"),
        (false, ICMP_DEST_UNREACH, 1) => (UNREACH, "host unreachable"),
        (false, ICMP_DEST_UNREACH, 3) => (UNREACH, "port unreachable"),
        (false, ICMP_DEST_UNREACH, 9 | 10 | 13) => (UNREACH, PROHIBITED),
        (false, ICMP_DEST_UNREACH, _) => (UNREACH, ""),
        (false, ICMP_TIME_EXCEEDED, _) => ("time exceeded", ""),
        (true, ICMPV6_DEST_UNREACH, 0) => (UNREACH, "no route"),
        (true, ICMPV6_DEST_UNREACH, 1) => (UNREACH, PROHIBITED),
        (true, ICMPV6_DEST_UNREACH, 3) => (UNREACH, "address unreachable"),
        (true, ICMPV6_DEST_UNREACH, 4) => (UNREACH, "port unreachable"),
        (true, ICMPV6_DEST_UNREACH, _) => (UNREACH, ""),
        (true, ICMPV6_TIME_EXCEED, _) => ("time exceeded", ""),
        _ => ("ICMP error", ""),
    };
    if why.is_empty() {
        format!("{what} (type {kind} code {code})")
    } else {
        format!("{what} ({why})")
    }
}

fn open(v6: bool) -> io::Result<OwnedFd> {
    let (family, proto) = if v6 {
        (AddressFamily::INET6, ipproto::ICMPV6)
    } else {
        (AddressFamily::INET, ipproto::ICMP)
    };
    Ok(rnet::socket_with(
        family,
        SocketType::RAW,
        SocketFlags::CLOEXEC,
        Some(proto),
    )?)
}

/// Sends up to `tries` echo requests to `addr` from the calling thread's namespace, each
/// waiting `per_try` for its answer. A reply to any of them counts.
pub(crate) fn ping(addr: IpAddr, per_try: Duration, tries: u32) -> io::Result<Verdict> {
    let v6 = addr.is_ipv6();
    let fd = open(v6)?;
    let random = super::random_u64().to_be_bytes();
    let id = u16::from_be_bytes([random[0], random[1]]);
    let first_seq = u16::from_be_bytes([random[2], random[3]]);
    let payload = *b"plumb probe\0\0\0\0\0";
    let mut payload = payload;
    payload[12..16].copy_from_slice(&random[4..8]);
    let echo = Echo {
        target: addr,
        id,
        payload: &payload,
    };
    let dest = SocketAddr::new(addr, 0);
    let started = Instant::now();
    // The whole probe ends by then, however slow the sends were.
    let overall = started + per_try * tries;
    let mut sent: Vec<(u16, Instant)> = Vec::new();
    let mut buf = [0u8; 1500];
    for n in 0..tries {
        let seq = first_seq.wrapping_add(n as u16);
        let packet = echo_request(v6, id, seq, &payload);
        // Taken before the send: over a veth the reply is often queued to this socket before
        // `sendto` returns (the kernel processes it on the way out), so a clock started after
        // it would measure only the `recvfrom`.
        let at = Instant::now();
        if let Err(e) = rnet::sendto(&fd, &packet, SendFlags::empty(), &dest) {
            let e = io::Error::from(e);
            return Verdict::from_send_error(&e).ok_or(e);
        }
        sent.push((seq, at));
        let deadline = (at + per_try).min(overall);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            // A zero timeout would mean "wait forever".
            sockopt::set_socket_timeout(
                &fd,
                sockopt::Timeout::Recv,
                Some(left.max(Duration::from_millis(1))),
            )?;
            let (len, from) = match rnet::recvfrom(&fd, &mut buf[..], RecvFlags::empty()) {
                Ok((_, len, from)) => (len.min(buf.len()), from),
                Err(Errno::AGAIN) => break,
                Err(Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            };
            let answer = if v6 {
                let from = from.and_then(|a| SocketAddr::try_from(a).ok());
                match from {
                    Some(f) => echo.classify_v6(f.ip(), &buf[..len]),
                    None => None,
                }
            } else {
                echo.classify_v4(&buf[..len])
            };
            match answer {
                Some(Answer::Reply { seq }) => {
                    let sent_at = sent.iter().find(|(s, _)| *s == seq).map_or(at, |(_, t)| *t);
                    return Ok(Verdict::Reply {
                        rtt: sent_at.elapsed(),
                    });
                }
                Some(Answer::Error { kind, code }) => {
                    return Ok(Verdict::IcmpError { v6, kind, code });
                }
                None => {}
            }
        }
    }
    Ok(Verdict::Timeout {
        waited: started.elapsed(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_rfc1071_example_matches() {
        // RFC 1071, 3: the words 0001 f203 f4f5 f6f7 sum to ddf2 (with carries); the checksum
        // is its complement.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(checksum(&data), !0xddf2);
    }

    #[test]
    fn checksum_odd_length_pads_with_zero() {
        assert_eq!(
            checksum(&[0x12, 0x34, 0x56]),
            checksum(&[0x12, 0x34, 0x56, 0x00])
        );
    }

    #[test]
    fn checksum_of_a_packet_including_its_checksum_is_zero() {
        let p = echo_request(false, 0x1234, 7, b"hello, plumb");
        assert_eq!(checksum(&p), 0);
    }

    #[test]
    fn echo_request_v4_matches_ping_bytes() {
        // Type 8, code 0, id 0x1c46, seq 1, no payload (what `ping -s 0` sends).
        // Checksum by hand: !(0x0800 + 0x1c46 + 0x0001) = !0x2447 = 0xdbb8.
        let p = echo_request(false, 0x1c46, 1, &[]);
        assert_eq!(p, vec![0x08, 0x00, 0xdb, 0xb8, 0x1c, 0x46, 0x00, 0x01]);
    }

    #[test]
    fn echo_request_v6_leaves_the_checksum_to_the_kernel() {
        let p = echo_request(true, 0xbeef, 0x0102, b"xy");
        assert_eq!(p, vec![128, 0, 0, 0, 0xbe, 0xef, 0x01, 0x02, b'x', b'y']);
    }

    /// An IPv4 header (20 bytes, protocol ICMP) from `src` to `dst`, then `icmp`.
    fn ipv4(src: [u8; 4], dst: [u8; 4], icmp: &[u8]) -> Vec<u8> {
        let mut p = vec![0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, PROTO_ICMP, 0, 0];
        p.extend_from_slice(&src);
        p.extend_from_slice(&dst);
        p.extend_from_slice(icmp);
        p
    }

    fn reply_to(req: &[u8]) -> Vec<u8> {
        let mut r = req.to_vec();
        r[0] = ICMP_ECHOREPLY;
        r[2..4].copy_from_slice(&[0, 0]);
        let c = checksum(&r);
        r[2..4].copy_from_slice(&c.to_be_bytes());
        r
    }

    const PAYLOAD: &[u8] = b"plumb probe\0abcd";

    fn echo() -> Echo<'static> {
        Echo {
            target: "10.66.78.2".parse().unwrap(),
            id: 0x4242,
            payload: PAYLOAD,
        }
    }

    #[test]
    fn classify_v4_matching_reply_is_a_reply() {
        let req = echo_request(false, 0x4242, 9, PAYLOAD);
        let pkt = ipv4([10, 66, 78, 2], [10, 66, 78, 1], &reply_to(&req));
        assert_eq!(echo().classify_v4(&pkt), Some(Answer::Reply { seq: 9 }));
    }

    #[test]
    fn classify_v4_foreign_replies_are_ignored() {
        // Another id, another payload, another source, our own request looped back.
        let other_id = echo_request(false, 0x4243, 9, PAYLOAD);
        let other_payload = echo_request(false, 0x4242, 9, b"ping's own data!");
        let ours = echo_request(false, 0x4242, 9, PAYLOAD);
        for pkt in [
            ipv4([10, 66, 78, 2], [10, 66, 78, 1], &reply_to(&other_id)),
            ipv4([10, 66, 78, 2], [10, 66, 78, 1], &reply_to(&other_payload)),
            ipv4([10, 66, 78, 3], [10, 66, 78, 1], &reply_to(&ours)),
            ipv4([10, 66, 78, 1], [10, 66, 78, 2], &ours),
        ] {
            assert_eq!(echo().classify_v4(&pkt), None, "{pkt:02x?}");
        }
    }

    #[test]
    fn classify_v4_unreachable_quoting_our_request_is_an_error() {
        let req = echo_request(false, 0x4242, 9, PAYLOAD);
        let quoted = ipv4([10, 66, 78, 1], [10, 66, 78, 2], &req[..8]);
        let mut err = vec![ICMP_DEST_UNREACH, 1, 0, 0, 0, 0, 0, 0];
        err.extend_from_slice(&quoted);
        let pkt = ipv4([10, 66, 78, 1], [10, 66, 78, 1], &err);
        assert_eq!(
            echo().classify_v4(&pkt),
            Some(Answer::Error {
                kind: ICMP_DEST_UNREACH,
                code: 1
            })
        );
        // The same error about someone else's request is not ours.
        let other = echo_request(false, 0x9999, 9, PAYLOAD);
        let quoted = ipv4([10, 66, 78, 1], [10, 66, 78, 2], &other[..8]);
        let mut err = vec![ICMP_DEST_UNREACH, 1, 0, 0, 0, 0, 0, 0];
        err.extend_from_slice(&quoted);
        let pkt = ipv4([10, 66, 78, 1], [10, 66, 78, 1], &err);
        assert_eq!(echo().classify_v4(&pkt), None);
    }

    #[test]
    fn classify_truncated_packets_are_ignored() {
        let req = echo_request(false, 0x4242, 9, PAYLOAD);
        let pkt = ipv4([10, 66, 78, 2], [10, 66, 78, 1], &reply_to(&req));
        for n in 0..pkt.len() {
            assert_eq!(echo().classify_v4(&pkt[..n]), None, "first {n} bytes");
        }
    }

    #[test]
    fn classify_v6_reply_and_error() {
        let e = Echo {
            target: "fd00::2".parse().unwrap(),
            id: 7,
            payload: PAYLOAD,
        };
        let mut reply = echo_request(true, 7, 3, PAYLOAD);
        reply[0] = ICMPV6_ECHO_REPLY;
        assert_eq!(
            e.classify_v6("fd00::2".parse().unwrap(), &reply),
            Some(Answer::Reply { seq: 3 })
        );
        assert_eq!(e.classify_v6("fd00::9".parse().unwrap(), &reply), None);
        // Destination unreachable quoting a 40-byte IPv6 header and our request.
        let mut ip6 = vec![0x60, 0, 0, 0, 0, 16, PROTO_ICMPV6, 64];
        ip6.extend_from_slice(&"fd00::1".parse::<std::net::Ipv6Addr>().unwrap().octets());
        ip6.extend_from_slice(&"fd00::2".parse::<std::net::Ipv6Addr>().unwrap().octets());
        ip6.extend_from_slice(&echo_request(true, 7, 3, PAYLOAD)[..8]);
        let mut err = vec![ICMPV6_DEST_UNREACH, 3, 0, 0, 0, 0, 0, 0];
        err.extend_from_slice(&ip6);
        assert_eq!(
            e.classify_v6("fd00::1".parse().unwrap(), &err),
            Some(Answer::Error {
                kind: ICMPV6_DEST_UNREACH,
                code: 3
            })
        );
    }

    #[test]
    fn describe_error_names_the_common_codes() {
        assert_eq!(
            describe_error(false, ICMP_DEST_UNREACH, 1),
            "destination unreachable (host unreachable)"
        );
        assert_eq!(
            describe_error(false, ICMP_TIME_EXCEEDED, 0),
            "time exceeded (type 11 code 0)"
        );
        assert_eq!(
            describe_error(true, ICMPV6_TIME_EXCEED, 0),
            "time exceeded (type 3 code 0)"
        );
    }
}
