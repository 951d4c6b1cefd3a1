//! Which captured packets are the probe, hop by hop, and what changed between hops. Pure.
//!
//! A packet is recognised by what NAT leaves alone: the IPv4 identification, and per protocol
//! the ICMP type and echo sequence, the TCP sequence number, or a hash of the payload — never
//! by addresses or ports, which NAT rewrites.

use std::net::IpAddr;

use crate::capture::decode::{ip_summary, IpSummary, L4};
use crate::capture::Direction;
use crate::model::Service;

/// A packet seen at a point of the path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    /// Index of the point in the path.
    pub point: usize,
    /// Kernel timestamp (ns).
    pub ts_ns: u64,
    /// Direction at that point.
    pub direction: Direction,
    /// The frame.
    pub frame: Vec<u8>,
}

/// What identifies one packet across NAT.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Key {
    /// IPv4 identification (0 for IPv6).
    pub ip_id: u16,
    /// ICMP type, or the IP protocol for TCP/UDP.
    pub kind: u8,
    /// ICMP echo sequence, or the TCP sequence number (0 for UDP).
    pub seq: u32,
    /// Hash of the transport payload.
    pub payload_hash: u64,
}

/// The key of a packet.
pub fn key(s: &IpSummary) -> Key {
    let (kind, seq) = match &s.l4 {
        L4::Icmp { kind, seq, .. } => (*kind, u32::from(seq.unwrap_or(0))),
        L4::Tcp { seq, .. } => (6, *seq),
        L4::Udp { .. } => (17, 0),
        L4::Other { number } => (*number, 0),
    };
    Key {
        ip_id: s.id,
        kind,
        seq,
        payload_hash: s.payload_hash,
    }
}

/// Is `s` the probe `service` sends to `dst`: an echo request, a SYN to the port (any segment
/// to the port when following an existing flow), a datagram to the port?
pub fn is_probe(s: &IpSummary, dst: IpAddr, service: Service, follow: bool) -> bool {
    s.dst == dst
        && match (&s.l4, service) {
            (L4::Icmp { kind, .. }, Service::Icmp) => *kind == 8 || *kind == 128,
            (L4::Tcp { dport, flags, .. }, Service::Tcp(p)) => {
                *dport == p && (follow || flags == "S")
            }
            (L4::Udp { dport, .. }, Service::Udp(p)) => *dport == p,
            _ => false,
        }
}

/// The probe as the first point saw it leave: the first matching packet sent there.
pub fn probe(
    seen: &[Seen],
    dst: IpAddr,
    service: Service,
    follow: bool,
) -> Option<(usize, IpSummary)> {
    seen.iter()
        .enumerate()
        .filter(|(_, s)| s.point == 0 && s.direction == Direction::Out)
        .filter_map(|(i, s)| Some((i, ip_summary(&s.frame)?)))
        .filter(|(_, sum)| is_probe(sum, dst, service, follow))
        .min_by_key(|(i, _)| seen[*i].ts_ns)
}

/// Is `s` an answer to `probe`: the echo reply with its sequence and payload, the segment that
/// acknowledges it (a SYN-ACK or reset for a SYN), a datagram carrying its payload back?
fn is_answer(s: &IpSummary, probe: &IpSummary) -> bool {
    match (&s.l4, &probe.l4) {
        (L4::Icmp { kind, seq, .. }, L4::Icmp { seq: pseq, .. }) => {
            (*kind == 0 || *kind == 129) && seq == pseq && s.payload_hash == probe.payload_hash
        }
        (
            L4::Tcp { ack, flags, .. },
            L4::Tcp {
                seq, flags: pflags, ..
            },
        ) => {
            // SYN and FIN count as one byte of sequence space.
            let len = probe.payload_len as u32
                + u32::from(pflags.contains('S'))
                + u32::from(pflags.contains('F'));
            len > 0 && *ack == seq.wrapping_add(len) && (flags.contains('.') || flags.contains('R'))
        }
        (L4::Udp { .. }, L4::Udp { .. }) => {
            s.payload_hash == probe.payload_hash && key(s) != key(probe)
        }
        _ => false,
    }
}

/// A rewrite between two hops.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Rewrite {
    /// `SNAT` (the source changed) or `DNAT` (the destination changed).
    pub kind: String,
    /// Before, as `ADDR` or `ADDR:PORT` (or `ADDR id N` for an ICMP echo).
    pub from: String,
    /// After.
    pub to: String,
}

impl std::fmt::Display for Rewrite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} -> {}", self.kind, self.from, self.to)
    }
}

/// The source and destination "ports" of a packet: TCP/UDP ports, or the echo id (as NAT
/// treats it) for the source of an ICMP echo.
fn ports(s: &IpSummary) -> (Option<String>, Option<String>) {
    match &s.l4 {
        L4::Tcp { sport, dport, .. } | L4::Udp { sport, dport } => {
            (Some(format!(":{sport}")), Some(format!(":{dport}")))
        }
        // NAT treats an echo's id as the requester's port: the source of a request, the
        // destination of a reply.
        L4::Icmp {
            kind: 0 | 129,
            id: Some(id),
            ..
        } => (None, Some(format!(" id {id}"))),
        L4::Icmp { id: Some(id), .. } => (Some(format!(" id {id}")), None),
        _ => (None, None),
    }
}

/// What changed from `a` to `b`.
pub fn rewrites(a: &IpSummary, b: &IpSummary) -> Vec<Rewrite> {
    let (asp, adp) = ports(a);
    let (bsp, bdp) = ports(b);
    let mut out = Vec::new();
    for (kind, ax, bx, ap, bp) in [
        ("SNAT", a.src, b.src, asp, bsp),
        ("DNAT", a.dst, b.dst, adp, bdp),
    ] {
        if ax != bx || ap != bp {
            let (from, to) = if ap != bp {
                (
                    format!("{ax}{}", ap.unwrap_or_default()),
                    format!("{bx}{}", bp.unwrap_or_default()),
                )
            } else {
                (ax.to_string(), bx.to_string())
            };
            out.push(Rewrite {
                kind: kind.into(),
                from,
                to,
            });
        }
    }
    out
}

/// One sighting of the probe (or its answer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sighting {
    /// Index of the point in the path.
    pub point: usize,
    /// Kernel timestamp.
    pub ts_ns: u64,
    /// Direction.
    pub direction: Direction,
    /// The packet there.
    pub summary: IpSummary,
    /// Index in the captured packets.
    pub index: usize,
}

/// The sightings of the packet whose key is `k`, in path order (reversed for an answer),
/// then time.
/// The sightings of the packet `k`, in the order of the points it crossed: `order` lists the
/// points in that order (the answer's way back); points not in it come after, by index (or by
/// index backwards, `reverse`, for an answer taking the probe's way back).
fn sightings(seen: &[Seen], k: Key, reverse: bool, order: &[usize]) -> Vec<Sighting> {
    let mut v: Vec<Sighting> = seen
        .iter()
        .enumerate()
        .filter_map(|(i, s)| {
            let sum = ip_summary(&s.frame)?;
            (key(&sum) == k).then_some(Sighting {
                point: s.point,
                ts_ns: s.ts_ns,
                direction: s.direction,
                summary: sum,
                index: i,
            })
        })
        .collect();
    v.sort_by_key(|s| {
        let p = if reverse {
            usize::MAX - s.point
        } else {
            s.point
        };
        let listed = order.iter().position(|&o| o == s.point);
        (listed.is_none(), listed.unwrap_or(p), s.ts_ns)
    });
    v
}

/// The probe's sightings and its answer's, if the probe was seen leaving at all. `back` lists
/// the points of the answer's way back in order (empty: the probe's way, backwards).
pub fn journey(
    seen: &[Seen],
    dst: IpAddr,
    service: Service,
    follow: bool,
    back: &[usize],
) -> Option<(Vec<Sighting>, Vec<Sighting>)> {
    let (_, probe_sum) = probe(seen, dst, service, follow)?;
    let forward = sightings(seen, key(&probe_sum), false, &[]);
    let answer = seen
        .iter()
        .filter_map(|s| Some((s.ts_ns, ip_summary(&s.frame)?)))
        .filter(|(_, sum)| is_answer(sum, &probe_sum))
        .min_by_key(|(ts, _)| *ts)
        .map(|(_, sum)| sightings(seen, key(&sum), true, back))
        .unwrap_or_default();
    Some((forward, answer))
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::PacketBuilder;

    fn icmp(src: [u8; 4], dst: [u8; 4], ttl: u8, reply: bool, ip_id: u16, echo_id: u16) -> Vec<u8> {
        let b = PacketBuilder::ethernet2([2; 6], [4; 6]).ipv4(src, dst, ttl);
        let b = if reply {
            b.icmpv4_echo_reply(echo_id, 1)
        } else {
            b.icmpv4_echo_request(echo_id, 1)
        };
        let mut v = Vec::new();
        b.write(&mut v, b"plumb probe").unwrap();
        // etherparse writes identification 0: set it (the checksum is not checked here).
        v[18..20].copy_from_slice(&ip_id.to_be_bytes());
        v
    }

    fn at(point: usize, ts: u64, direction: Direction, frame: Vec<u8>) -> Seen {
        Seen {
            point,
            ts_ns: ts,
            direction,
            frame,
        }
    }

    #[test]
    fn journey_follows_the_probe_through_snat_and_back() {
        use Direction::*;
        let member = [10, 90, 0, 3];
        let uplink = [203, 0, 113, 1];
        let up = [203, 0, 113, 2];
        let seen = vec![
            at(0, 100, Out, icmp(member, up, 64, false, 7, 5)),
            at(1, 110, In, icmp(member, up, 64, false, 7, 5)),
            // Unrelated traffic on the way.
            at(2, 115, In, icmp(member, up, 64, false, 99, 5)),
            at(2, 120, Out, icmp(uplink, up, 63, false, 7, 9)),
            at(3, 130, In, icmp(uplink, up, 63, false, 7, 9)),
            at(3, 140, Out, icmp(up, uplink, 64, true, 300, 9)),
            at(2, 150, In, icmp(up, uplink, 64, true, 300, 9)),
            at(0, 170, In, icmp(up, member, 63, true, 300, 5)),
        ];
        let (fwd, back) = journey(&seen, IpAddr::from(up), Service::Icmp, false, &[]).unwrap();
        let pts: Vec<usize> = fwd.iter().map(|s| s.point).collect();
        assert_eq!(pts, [0, 1, 2, 3]);
        let rw = rewrites(&fwd[1].summary, &fwd[2].summary);
        assert_eq!(rw.len(), 1);
        assert_eq!(rw[0].to_string(), "SNAT 10.90.0.3 id 5 -> 203.0.113.1 id 9");
        assert_eq!(fwd[2].summary.ttl, 63);
        let back_pts: Vec<usize> = back.iter().map(|s| s.point).collect();
        assert_eq!(back_pts, [3, 2, 0]);
        assert_eq!(
            rewrites(&back[1].summary, &back[2].summary)[0].to_string(),
            "DNAT 203.0.113.1 id 9 -> 10.90.0.3 id 5"
        );
    }

    #[test]
    fn the_answer_is_ordered_along_its_own_way_back() {
        use Direction::*;
        let (a, b) = ([10, 2, 0, 2], [10, 3, 0, 2]);
        // Probe out through points 0-3; the answer back through 4-7 (another router), seen
        // out of order in time within the same microsecond.
        let seen = vec![
            at(0, 100, Out, icmp(a, b, 64, false, 7, 5)),
            at(1, 101, In, icmp(a, b, 64, false, 7, 5)),
            at(2, 102, Out, icmp(a, b, 63, false, 7, 5)),
            at(3, 103, In, icmp(a, b, 63, false, 7, 5)),
            at(5, 110, In, icmp(b, a, 64, true, 9, 5)),
            at(4, 110, Out, icmp(b, a, 64, true, 9, 5)),
            at(6, 111, Out, icmp(b, a, 63, true, 9, 5)),
            at(7, 112, In, icmp(b, a, 63, true, 9, 5)),
        ];
        let (_, back) = journey(&seen, IpAddr::from(b), Service::Icmp, false, &[4, 5, 6, 7])
            .expect("a journey");
        let pts: Vec<usize> = back.iter().map(|s| s.point).collect();
        assert_eq!(pts, [4, 5, 6, 7]);
    }

    #[test]
    fn journey_without_the_probe_leaving_is_none() {
        let seen = vec![at(
            1,
            1,
            Direction::In,
            icmp([1, 1, 1, 1], [2, 2, 2, 2], 64, false, 1, 1),
        )];
        assert!(journey(&seen, "2.2.2.2".parse().unwrap(), Service::Icmp, false, &[]).is_none());
    }
}
