//! Reading the packets of one `TPACKET_V3` block (`struct tpacket_block_desc`, then a chain of
//! `struct tpacket3_hdr` each followed by its `struct sockaddr_ll` and the frame), with bounds
//! checked on every field: a malformed block ends the walk instead of reading past it.

use super::Direction;

/// One packet as the ring holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RingPacket<'a> {
    /// Seconds and nanoseconds of the kernel's timestamp.
    pub ts_ns: u64,
    /// The bytes captured (from the Ethernet header).
    pub data: &'a [u8],
    /// The length on the wire.
    pub orig_len: u32,
    /// Which way it went.
    pub direction: Direction,
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

/// `struct tpacket_block_desc`: `hdr.bh1.num_pkts` and `offset_to_first_pkt`.
const NUM_PKTS: usize = 12;
const FIRST_PKT: usize = 16;
/// `TPACKET_ALIGN(sizeof(struct tpacket3_hdr))`: where `struct sockaddr_ll` starts.
const SLL_OFFSET: usize = 48;
/// `sll_pkttype` inside `struct sockaddr_ll`.
const SLL_PKTTYPE: usize = 10;
/// `PACKET_OUTGOING` from `linux/if_packet.h`.
const PACKET_OUTGOING: u8 = 4;

/// The packets of a block, in order (an iterator: nothing is allocated per block).
pub fn packets(block: &[u8]) -> Packets<'_> {
    let (n, off) = match (u32_at(block, NUM_PKTS), u32_at(block, FIRST_PKT)) {
        (Some(n), Some(off)) => (n, off as usize),
        _ => (0, 0),
    };
    Packets {
        block,
        left: n,
        off,
    }
}

/// The iterator [`packets`] returns.
#[derive(Debug)]
pub struct Packets<'a> {
    block: &'a [u8],
    left: u32,
    off: usize,
}

impl<'a> Iterator for Packets<'a> {
    type Item = RingPacket<'a>;

    fn next(&mut self) -> Option<RingPacket<'a>> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let (block, at) = (self.block, self.off);
        let h = |k: usize| u32_at(block, at + k);
        let (Some(next), Some(sec), Some(nsec), Some(snap), Some(len), Some(mac)) =
            (h(0), h(4), h(8), h(12), h(16), u16_at(block, at + 24))
        else {
            self.left = 0;
            return None;
        };
        let start = at + mac as usize;
        let Some(data) = block.get(start..start + snap as usize) else {
            self.left = 0;
            return None;
        };
        let pkttype = block
            .get(at + SLL_OFFSET + SLL_PKTTYPE)
            .copied()
            .unwrap_or(0);
        if next == 0 {
            self.left = 0;
        }
        self.off += next as usize;
        Some(RingPacket {
            ts_ns: u64::from(sec) * 1_000_000_000 + u64::from(nsec),
            data,
            orig_len: len,
            direction: if pkttype == PACKET_OUTGOING {
                Direction::Out
            } else {
                Direction::In
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A block as the kernel lays it out: descriptor, then two packets 64 bytes apart.
    fn block() -> Vec<u8> {
        let mut b = vec![0u8; 512];
        b[NUM_PKTS..NUM_PKTS + 4].copy_from_slice(&2u32.to_ne_bytes());
        b[FIRST_PKT..FIRST_PKT + 4].copy_from_slice(&48u32.to_ne_bytes());
        let put = |b: &mut Vec<u8>, at: usize, next: u32, sec: u32, kind: u8, data: &[u8]| {
            b[at..at + 4].copy_from_slice(&next.to_ne_bytes());
            b[at + 4..at + 8].copy_from_slice(&sec.to_ne_bytes());
            b[at + 8..at + 12].copy_from_slice(&5u32.to_ne_bytes());
            b[at + 12..at + 16].copy_from_slice(&(data.len() as u32).to_ne_bytes());
            b[at + 16..at + 20].copy_from_slice(&100u32.to_ne_bytes());
            b[at + 24..at + 26].copy_from_slice(&66u16.to_ne_bytes());
            b[at + SLL_OFFSET + SLL_PKTTYPE] = kind;
            b[at + 66..at + 66 + data.len()].copy_from_slice(data);
        };
        put(&mut b, 48, 96, 7, PACKET_OUTGOING, b"abc");
        put(&mut b, 144, 0, 8, 0, b"defg");
        b
    }

    #[test]
    fn packets_two_in_a_block_are_read_with_directions() {
        let b = block();
        let p: Vec<_> = packets(&b).collect();
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].data, b"abc");
        assert_eq!(p[0].direction, Direction::Out);
        assert_eq!(p[0].ts_ns, 7_000_000_005);
        assert_eq!(p[0].orig_len, 100);
        assert_eq!(p[1].data, b"defg");
        assert_eq!(p[1].direction, Direction::In);
    }

    #[test]
    fn packets_of_random_bytes_never_panic() {
        use proptest::prelude::*;
        proptest!(|(b in prop::collection::vec(any::<u8>(), 0..600))| {
            for p in packets(&b) {
                prop_assert!(p.data.len() <= b.len());
            }
        });
    }

    #[test]
    fn packets_truncated_block_stops_without_reading_past_it() {
        let b = block();
        assert_eq!(packets(&b[..150]).count(), 1);
        assert_eq!(packets(&b[..10]).count(), 0);
    }
}
