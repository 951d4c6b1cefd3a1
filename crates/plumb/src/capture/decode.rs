//! Ethernet frames decoded (with `etherparse`) into what a person reads — one line, as
//! tcpdump prints it without `-v` — and what `trace` correlates: the IP identification, the TTL
//! and the transport keys that NAT does not change.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr};

use etherparse::{Icmpv4Type, Icmpv6Type, NetSlice, SlicedPacket, TransportSlice};

/// The transport part of a packet.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "proto", rename_all = "snake_case")]
pub enum L4 {
    /// TCP.
    Tcp {
        /// Source port.
        sport: u16,
        /// Destination port.
        dport: u16,
        /// Sequence number.
        seq: u32,
        /// Acknowledgement number.
        ack: u32,
        /// Flags as tcpdump writes them (`S.`).
        flags: String,
    },
    /// UDP.
    Udp {
        /// Source port.
        sport: u16,
        /// Destination port.
        dport: u16,
    },
    /// ICMP or ICMPv6.
    Icmp {
        /// Type.
        kind: u8,
        /// Code.
        code: u8,
        /// Echo identifier (what NAT rewrites as the "port" of an echo), if an echo.
        id: Option<u16>,
        /// Echo sequence.
        seq: Option<u16>,
    },
    /// Something else.
    Other {
        /// The IP protocol number.
        number: u8,
    },
}

/// The IP view of a packet.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct IpSummary {
    /// Source.
    pub src: IpAddr,
    /// Destination.
    pub dst: IpAddr,
    /// TTL or hop limit.
    pub ttl: u8,
    /// IPv4 identification (0 for IPv6).
    pub id: u16,
    /// Transport.
    pub l4: L4,
    /// FNV-1a hash of the transport payload (the bytes after the transport header).
    pub payload_hash: u64,
    /// The transport payload's length.
    pub payload_len: usize,
}

/// FNV-1a, 64 bits: a stable hash of a payload, equal wherever the payload is unchanged.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn tcp_flags(t: &etherparse::TcpSlice<'_>) -> String {
    let mut f = String::new();
    for (on, c) in [
        (t.syn(), 'S'),
        (t.fin(), 'F'),
        (t.rst(), 'R'),
        (t.psh(), 'P'),
        (t.ack(), '.'),
        (t.urg(), 'U'),
        (t.ece(), 'E'),
        (t.cwr(), 'W'),
    ] {
        if on {
            f.push(c);
        }
    }
    if f.is_empty() {
        f.push_str("none");
    }
    f
}

/// The IP view of an Ethernet frame, if it carries IPv4 or IPv6.
pub fn ip_summary(frame: &[u8]) -> Option<IpSummary> {
    let p = SlicedPacket::from_ethernet(frame).ok()?;
    let (src, dst, ttl, id) = match p.net.as_ref()? {
        NetSlice::Ipv4(v4) => {
            let h = v4.header();
            (
                IpAddr::V4(h.source_addr()),
                IpAddr::V4(h.destination_addr()),
                h.ttl(),
                h.identification(),
            )
        }
        NetSlice::Ipv6(v6) => {
            let h = v6.header();
            (
                IpAddr::V6(h.source_addr()),
                IpAddr::V6(h.destination_addr()),
                h.hop_limit(),
                0,
            )
        }
    };
    let (l4, payload): (L4, &[u8]) = match &p.transport {
        Some(TransportSlice::Tcp(t)) => (
            L4::Tcp {
                sport: t.source_port(),
                dport: t.destination_port(),
                seq: t.sequence_number(),
                ack: t.acknowledgment_number(),
                flags: tcp_flags(t),
            },
            t.payload(),
        ),
        Some(TransportSlice::Udp(u)) => (
            L4::Udp {
                sport: u.source_port(),
                dport: u.destination_port(),
            },
            u.payload(),
        ),
        Some(TransportSlice::Icmpv4(i)) => {
            let (id, seq) = match i.icmp_type() {
                Icmpv4Type::EchoRequest(e) | Icmpv4Type::EchoReply(e) => (Some(e.id), Some(e.seq)),
                _ => (None, None),
            };
            (
                L4::Icmp {
                    kind: i.type_u8(),
                    code: i.code_u8(),
                    id,
                    seq,
                },
                i.payload(),
            )
        }
        Some(TransportSlice::Icmpv6(i)) => {
            let (id, seq) = match i.icmp_type() {
                Icmpv6Type::EchoRequest(e) | Icmpv6Type::EchoReply(e) => (Some(e.id), Some(e.seq)),
                _ => (None, None),
            };
            (
                L4::Icmp {
                    kind: i.type_u8(),
                    code: i.code_u8(),
                    id,
                    seq,
                },
                i.payload(),
            )
        }
        None => {
            let number = p.net.as_ref()?.ip_payload_ref()?.ip_number.0;
            let payload = p.net.as_ref()?.ip_payload_ref()?.payload;
            (L4::Other { number }, payload)
        }
    };
    Some(IpSummary {
        src,
        dst,
        ttl,
        id,
        l4,
        payload_hash: fnv1a(payload),
        payload_len: payload.len(),
    })
}

fn mac(b: &[u8]) -> String {
    b.iter()
        .map(|x| format!("{x:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// An ARP packet (Ethernet/IPv4), as tcpdump prints it.
fn arp_line(body: &[u8]) -> String {
    let ip = |at: usize| {
        body.get(at..at + 4)
            .map(|b| Ipv4Addr::new(b[0], b[1], b[2], b[3]).to_string())
            .unwrap_or_else(|| "?".into())
    };
    let op = body.get(6..8).map(|b| u16::from_be_bytes([b[0], b[1]]));
    let len = body.len().min(28);
    match op {
        Some(1) => format!(
            "ARP, Request who-has {} tell {}, length {len}",
            ip(24),
            ip(14)
        ),
        Some(2) => format!(
            "ARP, Reply {} is-at {}, length {len}",
            ip(14),
            body.get(8..14).map(mac).unwrap_or_default()
        ),
        _ => format!("ARP, length {len}"),
    }
}

fn icmp6_name(kind: u8) -> &'static str {
    match kind {
        1 => "destination unreachable",
        2 => "packet too big",
        3 => "time exceeded in-transit",
        128 => "echo request",
        129 => "echo reply",
        133 => "router solicitation",
        134 => "router advertisement",
        135 => "neighbor solicitation",
        136 => "neighbor advertisement",
        143 => "multicast listener report v2",
        _ => "type",
    }
}

fn icmp4_text(i: &etherparse::Icmpv4Slice<'_>) -> String {
    match i.icmp_type() {
        Icmpv4Type::EchoRequest(e) => format!("ICMP echo request, id {}, seq {}", e.id, e.seq),
        Icmpv4Type::EchoReply(e) => format!("ICMP echo reply, id {}, seq {}", e.id, e.seq),
        Icmpv4Type::DestinationUnreachable(_) => {
            format!("ICMP destination unreachable, code {}", i.code_u8())
        }
        Icmpv4Type::TimeExceeded(_) => "ICMP time exceeded in-transit".into(),
        _ => format!("ICMP type {}, code {}", i.type_u8(), i.code_u8()),
    }
}

/// One line for a frame, as tcpdump prints it (`IP 10.0.0.1 > 10.0.0.2: ICMP echo request, id
/// 5, seq 1, length 64`).
pub fn line(frame: &[u8]) -> String {
    if frame.len() >= 14 && frame[12..14] == [0x08, 0x06] {
        return arp_line(&frame[14..]);
    }
    let Ok(p) = SlicedPacket::from_ethernet(frame) else {
        return ethernet_line(frame);
    };
    let Some(net) = &p.net else {
        return ethernet_line(frame);
    };
    let (family, src, dst, ip_len) = match net {
        NetSlice::Ipv4(v4) => {
            let h = v4.header();
            (
                "IP",
                IpAddr::V4(h.source_addr()),
                IpAddr::V4(h.destination_addr()),
                usize::from(h.total_len()).saturating_sub(usize::from(h.ihl()) * 4),
            )
        }
        NetSlice::Ipv6(v6) => {
            let h = v6.header();
            (
                "IP6",
                IpAddr::V6(h.source_addr()),
                IpAddr::V6(h.destination_addr()),
                usize::from(h.payload_length()),
            )
        }
    };
    let mut s = String::new();
    match &p.transport {
        Some(TransportSlice::Tcp(t)) => {
            let _ = write!(
                s,
                "{family} {src}.{} > {dst}.{}: Flags [{}], seq {}",
                t.source_port(),
                t.destination_port(),
                tcp_flags(t),
                t.sequence_number()
            );
            if t.ack() {
                let _ = write!(s, ", ack {}", t.acknowledgment_number());
            }
            let _ = write!(s, ", win {}, length {}", t.window_size(), t.payload().len());
        }
        Some(TransportSlice::Udp(u)) => {
            let _ = write!(
                s,
                "{family} {src}.{} > {dst}.{}: UDP, length {}",
                u.source_port(),
                u.destination_port(),
                u.payload().len()
            );
        }
        Some(TransportSlice::Icmpv4(i)) => {
            let _ = write!(
                s,
                "{family} {src} > {dst}: {}, length {ip_len}",
                icmp4_text(i)
            );
        }
        Some(TransportSlice::Icmpv6(i)) => {
            let _ = write!(
                s,
                "{family} {src} > {dst}: ICMP6, {}",
                icmp6_name(i.type_u8())
            );
            match i.icmp_type() {
                Icmpv6Type::EchoRequest(e) | Icmpv6Type::EchoReply(e) => {
                    let _ = write!(s, ", id {}, seq {}", e.id, e.seq);
                }
                _ if icmp6_name(i.type_u8()) == "type" => {
                    let _ = write!(s, " {}", i.type_u8());
                }
                _ => {}
            }
            let _ = write!(s, ", length {ip_len}");
        }
        None => {
            let number = net.ip_payload_ref().map_or(0, |p| p.ip_number.0);
            let _ = write!(s, "{family} {src} > {dst}: ip-proto-{number} {ip_len}");
        }
    }
    s
}

fn ethernet_line(frame: &[u8]) -> String {
    if frame.len() < 14 {
        return format!("[|ether] length {}", frame.len());
    }
    format!(
        "{} > {}, ethertype 0x{:04x}, length {}",
        mac(&frame[6..12]),
        mac(&frame[0..6]),
        u16::from_be_bytes([frame[12], frame[13]]),
        frame.len()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::PacketBuilder;

    macro_rules! frame {
        ($b:expr, $payload:expr $(,)?) => {{
            let mut v = Vec::new();
            $b.write(&mut v, $payload).unwrap();
            v
        }};
    }

    #[test]
    fn line_icmp_echo_request_reads_as_tcpdump() {
        let f = frame!(
            PacketBuilder::ethernet2([2; 6], [4; 6])
                .ipv4([10, 66, 77, 24], [10, 66, 77, 25], 64)
                .icmpv4_echo_request(5, 1),
            &[0; 56],
        );
        assert_eq!(
            line(&f),
            "IP 10.66.77.24 > 10.66.77.25: ICMP echo request, id 5, seq 1, length 64"
        );
    }

    #[test]
    fn line_tcp_syn_ack_shows_flags_seq_and_ack() {
        let f = frame!(
            PacketBuilder::ethernet2([2; 6], [4; 6])
                .ipv4([10, 0, 0, 2], [10, 0, 0, 1], 64)
                .tcp(80, 40000, 7, 512)
                .syn()
                .ack(9),
            &[],
        );
        assert_eq!(
            line(&f),
            "IP 10.0.0.2.80 > 10.0.0.1.40000: Flags [S.], seq 7, ack 9, win 512, length 0"
        );
    }

    #[test]
    fn line_arp_request_and_udp() {
        let mut arp = vec![0xff; 6];
        arp.extend([2; 6]);
        arp.extend([0x08, 0x06, 0, 1, 8, 0, 6, 4, 0, 1]);
        arp.extend([2; 6]);
        arp.extend([10, 66, 77, 24]);
        arp.extend([0; 6]);
        arp.extend([10, 66, 77, 25]);
        assert_eq!(
            line(&arp),
            "ARP, Request who-has 10.66.77.25 tell 10.66.77.24, length 28"
        );
        let f = frame!(
            PacketBuilder::ethernet2([2; 6], [4; 6])
                .ipv4([10, 0, 0, 2], [10, 0, 0, 1], 64)
                .udp(5353, 53),
            b"hello",
        );
        assert_eq!(line(&f), "IP 10.0.0.2.5353 > 10.0.0.1.53: UDP, length 5");
        let s = ip_summary(&f).unwrap();
        assert_eq!(s.payload_hash, fnv1a(b"hello"));
        assert_eq!(
            s.l4,
            L4::Udp {
                sport: 5353,
                dport: 53
            }
        );
    }

    #[test]
    fn line_icmp6_echo_and_truncated_frames_do_not_panic() {
        let f = frame!(
            PacketBuilder::ethernet2([2; 6], [4; 6])
                .ipv6([0xfd; 16], [0xfe; 16], 64)
                .icmpv6_echo_request(1, 2),
            &[0; 8],
        );
        assert!(
            line(&f).contains("ICMP6, echo request, id 1, seq 2, length 16"),
            "{}",
            line(&f)
        );
        for n in 0..f.len() {
            let _ = line(&f[..n]);
            let _ = ip_summary(&f[..n]);
        }
    }
}
