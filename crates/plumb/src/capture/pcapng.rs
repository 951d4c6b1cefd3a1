//! A pcapng writer (the IETF draft "PCAP Next Generation Dump File Format"): one section, one
//! interface description block per capture point (all with the same link type and snap length,
//! so tcpdump reads the file too), enhanced packet blocks with the direction in their flags,
//! and an interface statistics block per point at the end, carrying the kernel's drop count.
//! Little-endian, nanosecond timestamps (`if_tsresol` 9).

use std::io::{self, Write};

/// `LINKTYPE_ETHERNET`.
pub const LINKTYPE_ETHERNET: u16 = 1;

const SHB: u32 = 0x0A0D_0D0A;
const IDB: u32 = 0x0000_0001;
const EPB: u32 = 0x0000_0006;
const ISB: u32 = 0x0000_0005;
const BYTE_ORDER_MAGIC: u32 = 0x1A2B_3C4D;

const OPT_END: u16 = 0;
const OPT_COMMENT: u16 = 1;
const SHB_USERAPPL: u16 = 4;
const IF_NAME: u16 = 2;
const IF_DESCRIPTION: u16 = 3;
const IF_TSRESOL: u16 = 9;
const EPB_FLAGS: u16 = 2;
const ISB_STARTTIME: u16 = 2;
const ISB_ENDTIME: u16 = 3;
const ISB_IFRECV: u16 = 4;
const ISB_OSDROP: u16 = 7;
const ISB_USRDELIV: u16 = 8;

/// One capture point as the file describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    /// `if_name`: `NODE/IFACE`.
    pub name: String,
    /// `if_description`: the namespace's path and identity.
    pub description: String,
}

/// What the statistics block of a point says.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IfStats {
    /// When the capture started and ended (ns since the epoch).
    pub start_ns: u64,
    /// End.
    pub end_ns: u64,
    /// Packets the socket received (delivered + dropped).
    pub received: u64,
    /// Packets the kernel dropped because the ring was full.
    pub dropped: u64,
    /// Packets delivered to plumb.
    pub delivered: u64,
}

fn opt(buf: &mut Vec<u8>, code: u16, value: &[u8]) {
    buf.extend_from_slice(&code.to_le_bytes());
    buf.extend_from_slice(&(value.len() as u16).to_le_bytes());
    buf.extend_from_slice(value);
    buf.resize(buf.len().next_multiple_of(4), 0);
}

fn ts(v: &mut Vec<u8>, ns: u64) {
    v.extend_from_slice(&((ns >> 32) as u32).to_le_bytes());
    v.extend_from_slice(&(ns as u32).to_le_bytes());
}

/// Writes `body` framed as a block of type `kind`.
fn block(w: &mut impl Write, kind: u32, body: &[u8]) -> io::Result<()> {
    let total = (12 + body.len()) as u32;
    w.write_all(&kind.to_le_bytes())?;
    w.write_all(&total.to_le_bytes())?;
    w.write_all(body)?;
    w.write_all(&total.to_le_bytes())
}

/// A pcapng file being written.
#[derive(Debug)]
pub struct Writer<W: Write> {
    out: W,
    body: Vec<u8>,
}

/// Which way a packet went, as `epb_flags` encodes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flag {
    /// Unknown.
    Unknown,
    /// Received.
    Inbound,
    /// Sent.
    Outbound,
}

impl<W: Write> Writer<W> {
    /// Writes the section header and one interface block per point.
    pub fn new(mut out: W, app: &str, ifaces: &[Interface], snaplen: u32) -> io::Result<Self> {
        let mut b = Vec::new();
        b.extend_from_slice(&BYTE_ORDER_MAGIC.to_le_bytes());
        b.extend_from_slice(&1u16.to_le_bytes());
        b.extend_from_slice(&0u16.to_le_bytes());
        b.extend_from_slice(&(-1i64).to_le_bytes());
        opt(&mut b, SHB_USERAPPL, app.as_bytes());
        opt(&mut b, OPT_END, &[]);
        block(&mut out, SHB, &b)?;
        for i in ifaces {
            let mut b = Vec::new();
            b.extend_from_slice(&LINKTYPE_ETHERNET.to_le_bytes());
            b.extend_from_slice(&0u16.to_le_bytes());
            b.extend_from_slice(&snaplen.to_le_bytes());
            opt(&mut b, IF_NAME, i.name.as_bytes());
            opt(&mut b, IF_DESCRIPTION, i.description.as_bytes());
            opt(&mut b, IF_TSRESOL, &[9]);
            opt(&mut b, OPT_END, &[]);
            block(&mut out, IDB, &b)?;
        }
        Ok(Writer {
            out,
            body: Vec::with_capacity(2048),
        })
    }

    /// Writes one packet of interface `iface` (its index among those given to [`Writer::new`]).
    /// The frame is copied once, straight into the output's buffer.
    pub fn packet(
        &mut self,
        iface: u32,
        ts_ns: u64,
        data: &[u8],
        orig_len: u32,
        flag: Flag,
        comment: Option<&str>,
    ) -> io::Result<()> {
        let dir: u32 = match flag {
            Flag::Unknown => 0,
            Flag::Inbound => 1,
            Flag::Outbound => 2,
        };
        // The options after the frame: flags, the comment, the end marker.
        let o = &mut self.body;
        o.clear();
        opt(o, EPB_FLAGS, &dir.to_le_bytes());
        if let Some(c) = comment {
            opt(o, OPT_COMMENT, c.as_bytes());
        }
        opt(o, OPT_END, &[]);
        let padded = data.len().next_multiple_of(4);
        let total = (12 + 20 + padded + o.len()) as u32;
        let mut head = [0u8; 28];
        head[0..4].copy_from_slice(&EPB.to_le_bytes());
        head[4..8].copy_from_slice(&total.to_le_bytes());
        head[8..12].copy_from_slice(&iface.to_le_bytes());
        head[12..16].copy_from_slice(&((ts_ns >> 32) as u32).to_le_bytes());
        head[16..20].copy_from_slice(&(ts_ns as u32).to_le_bytes());
        head[20..24].copy_from_slice(&(data.len() as u32).to_le_bytes());
        head[24..28].copy_from_slice(&orig_len.to_le_bytes());
        self.out.write_all(&head)?;
        self.out.write_all(data)?;
        self.out.write_all(&[0u8; 3][..padded - data.len()])?;
        self.out.write_all(&self.body)?;
        self.out.write_all(&total.to_le_bytes())
    }

    /// Writes the statistics block of interface `iface`.
    pub fn stats(&mut self, iface: u32, s: &IfStats) -> io::Result<()> {
        let mut b = Vec::new();
        b.extend_from_slice(&iface.to_le_bytes());
        ts(&mut b, s.end_ns);
        let mut t = Vec::new();
        ts(&mut t, s.start_ns);
        opt(&mut b, ISB_STARTTIME, &t);
        t.clear();
        ts(&mut t, s.end_ns);
        opt(&mut b, ISB_ENDTIME, &t);
        opt(&mut b, ISB_IFRECV, &s.received.to_le_bytes());
        opt(&mut b, ISB_OSDROP, &s.dropped.to_le_bytes());
        opt(&mut b, ISB_USRDELIV, &s.delivered.to_le_bytes());
        opt(&mut b, OPT_END, &[]);
        block(&mut self.out, ISB, &b)
    }

    /// Flushes and returns the output.
    pub fn finish(mut self) -> io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Walks the blocks of a file: (type, total length) each, checking both length fields.
    fn blocks(b: &[u8]) -> Vec<(u32, usize)> {
        let mut out = Vec::new();
        let mut at = 0;
        while at < b.len() {
            let kind = u32::from_le_bytes(b[at..at + 4].try_into().unwrap());
            let len = u32::from_le_bytes(b[at + 4..at + 8].try_into().unwrap()) as usize;
            let trail = u32::from_le_bytes(b[at + len - 4..at + len].try_into().unwrap()) as usize;
            assert_eq!(
                len, trail,
                "block at {at}: leading and trailing lengths differ"
            );
            assert_eq!(len % 4, 0, "block at {at} is not 32-bit aligned");
            out.push((kind, len));
            at += len;
        }
        out
    }

    #[test]
    fn writer_blocks_are_framed_and_aligned() {
        let ifaces = [
            Interface {
                name: "ns1/eth1000".into(),
                description: "netns /run/netns/ns1".into(),
            },
            Interface {
                name: "host/veth1".into(),
                description: "netns host".into(),
            },
        ];
        let mut w = Writer::new(Vec::new(), "plumb", &ifaces, 262_144).unwrap();
        w.packet(1, 5, &[1, 2, 3], 60, Flag::Outbound, None)
            .unwrap();
        w.packet(0, 6, &[0; 14], 14, Flag::Inbound, Some("hop 1"))
            .unwrap();
        w.stats(0, &IfStats::default()).unwrap();
        let out = w.finish().unwrap();
        let kinds: Vec<u32> = blocks(&out).into_iter().map(|(k, _)| k).collect();
        assert_eq!(kinds, vec![SHB, IDB, IDB, EPB, EPB, ISB]);
    }
}
