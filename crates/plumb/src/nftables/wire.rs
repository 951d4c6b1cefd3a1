//! nfnetlink framing, written and read by hand: a netlink header, `struct nfgenmsg`, then
//! attributes (TLVs, nested ones flagged `NLA_F_NESTED`). nf_tables integers are big-endian
//! on the wire; lengths and types of the netlink and attribute headers are in host order.
//!
//! Constants carry their names from the kernel's UAPI headers (`linux/netfilter/nfnetlink.h`,
//! `linux/netfilter/nf_tables.h`, `linux/netfilter.h`), where their values are defined.

/// `NFNL_SUBSYS_NFTABLES`: the high byte of every nf_tables message type.
pub const NFNL_SUBSYS_NFTABLES: u16 = 10;
/// `NFNL_MSG_BATCH_BEGIN` (`NLMSG_MIN_TYPE`): opens a transaction.
pub const NFNL_MSG_BATCH_BEGIN: u16 = 16;
/// `NFNL_MSG_BATCH_END`: commits it.
pub const NFNL_MSG_BATCH_END: u16 = 17;
/// `NFNETLINK_V0`.
pub const NFNETLINK_V0: u8 = 0;

/// `enum nf_tables_msg_types`.
#[allow(missing_docs)]
pub mod msg {
    pub const NFT_MSG_NEWTABLE: u16 = 0;
    pub const NFT_MSG_GETTABLE: u16 = 1;
    pub const NFT_MSG_DELTABLE: u16 = 2;
    pub const NFT_MSG_NEWCHAIN: u16 = 3;
    pub const NFT_MSG_GETCHAIN: u16 = 4;
    pub const NFT_MSG_DELCHAIN: u16 = 5;
    pub const NFT_MSG_NEWRULE: u16 = 6;
    pub const NFT_MSG_GETRULE: u16 = 7;
    pub const NFT_MSG_DELRULE: u16 = 8;
    pub const NFT_MSG_NEWSET: u16 = 9;
    pub const NFT_MSG_GETSET: u16 = 10;
    pub const NFT_MSG_DELSET: u16 = 11;
    pub const NFT_MSG_NEWSETELEM: u16 = 12;
    pub const NFT_MSG_GETSETELEM: u16 = 13;
    pub const NFT_MSG_DELSETELEM: u16 = 14;
    pub const NFT_MSG_NEWGEN: u16 = 15;
    pub const NFT_MSG_GETGEN: u16 = 16;
    pub const NFT_MSG_TRACE: u16 = 17;
}

/// `NFPROTO_*` from `linux/netfilter.h`: the family in `nfgenmsg`.
#[allow(missing_docs)]
pub mod family {
    pub const NFPROTO_UNSPEC: u8 = 0;
    pub const NFPROTO_INET: u8 = 1;
    pub const NFPROTO_IPV4: u8 = 2;
    pub const NFPROTO_IPV6: u8 = 10;
}

/// `NLA_F_NESTED`.
pub const NLA_F_NESTED: u16 = 1 << 15;
/// `NLA_F_NET_BYTEORDER`.
pub const NLA_F_NET_BYTEORDER: u16 = 1 << 14;
/// The type bits of an attribute header.
pub const NLA_TYPE_MASK: u16 = !(NLA_F_NESTED | NLA_F_NET_BYTEORDER);

/// `sizeof(struct nlmsghdr)`.
pub const NLMSG_HDRLEN: usize = 16;
/// `sizeof(struct nfgenmsg)`.
pub const NFGENMSG_LEN: usize = 4;

/// The full netlink type of nf_tables message `m`.
pub fn nft_type(m: u16) -> u16 {
    (NFNL_SUBSYS_NFTABLES << 8) | m
}

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// One message being written: header, `nfgenmsg`, attributes. The length and sequence number
/// are filled in by [`Msg::finish`].
#[derive(Debug, Clone)]
pub struct Msg {
    buf: Vec<u8>,
}

impl Msg {
    /// A message of netlink type `kind` with `flags`, for `family`, with `res_id` (big-endian
    /// in `nfgenmsg`).
    pub fn new(kind: u16, flags: u16, family: u8, res_id: u16) -> Msg {
        let mut buf = Vec::with_capacity(128);
        buf.extend_from_slice(&0u32.to_ne_bytes());
        buf.extend_from_slice(&kind.to_ne_bytes());
        buf.extend_from_slice(&flags.to_ne_bytes());
        buf.extend_from_slice(&0u32.to_ne_bytes()); // seq
        buf.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel's
        buf.push(family);
        buf.push(NFNETLINK_V0);
        buf.extend_from_slice(&res_id.to_be_bytes());
        Msg { buf }
    }

    /// An attribute with raw contents (padded to 4 bytes).
    pub fn put(&mut self, kind: u16, data: &[u8]) -> &mut Msg {
        let len = 4 + data.len();
        self.buf.extend_from_slice(&(len as u16).to_ne_bytes());
        self.buf.extend_from_slice(&kind.to_ne_bytes());
        self.buf.extend_from_slice(data);
        self.buf.resize(align4(self.buf.len()), 0);
        self
    }

    /// A NUL-terminated string attribute.
    pub fn put_str(&mut self, kind: u16, s: &str) -> &mut Msg {
        let mut data = Vec::with_capacity(s.len() + 1);
        data.extend_from_slice(s.as_bytes());
        data.push(0);
        self.put(kind, &data)
    }

    /// A big-endian u32 attribute.
    pub fn put_u32(&mut self, kind: u16, v: u32) -> &mut Msg {
        self.put(kind, &v.to_be_bytes())
    }

    /// A big-endian u64 attribute.
    pub fn put_u64(&mut self, kind: u16, v: u64) -> &mut Msg {
        self.put(kind, &v.to_be_bytes())
    }

    /// Opens a nested attribute; returns where it starts, for [`Msg::end`].
    pub fn begin(&mut self, kind: u16) -> usize {
        let at = self.buf.len();
        self.buf.extend_from_slice(&0u16.to_ne_bytes());
        self.buf
            .extend_from_slice(&(kind | NLA_F_NESTED).to_ne_bytes());
        at
    }

    /// Closes the nested attribute opened at `at`.
    pub fn end(&mut self, at: usize) -> &mut Msg {
        let len = (self.buf.len() - at) as u16;
        self.buf[at..at + 2].copy_from_slice(&len.to_ne_bytes());
        self
    }

    /// The message's bytes with its length and sequence number set.
    pub fn finish(mut self, seq: u32) -> Vec<u8> {
        let len = self.buf.len() as u32;
        self.buf[0..4].copy_from_slice(&len.to_ne_bytes());
        self.buf[8..12].copy_from_slice(&seq.to_ne_bytes());
        self.buf
    }

    /// The netlink type.
    pub fn kind(&self) -> u16 {
        u16::from_ne_bytes([self.buf[4], self.buf[5]])
    }

    /// The bytes after the header and `nfgenmsg`: the attributes.
    pub fn attrs(&self) -> &[u8] {
        &self.buf[NLMSG_HDRLEN + NFGENMSG_LEN..]
    }

    /// A message from a received one's attributes (dump answers turned into requests).
    pub fn with_attrs(kind: u16, flags: u16, family: u8, attrs: &[u8]) -> Msg {
        let mut m = Msg::new(kind, flags, family, 0);
        m.buf.extend_from_slice(attrs);
        m
    }
}

/// Iterates over the attributes in `buf`: (type without flags, payload). Stops at the first
/// malformed one.
pub fn attrs(buf: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    let mut rest = buf;
    std::iter::from_fn(move || {
        if rest.len() < 4 {
            return None;
        }
        let len = u16::from_ne_bytes([rest[0], rest[1]]) as usize;
        let kind = u16::from_ne_bytes([rest[2], rest[3]]) & NLA_TYPE_MASK;
        if len < 4 || len > rest.len() {
            return None;
        }
        let data = &rest[4..len];
        rest = rest.get(align4(len)..).unwrap_or_default();
        Some((kind, data))
    })
}

/// Iterates over the attributes in `buf` whole: (type without flags, header and payload
/// without padding), to copy them unchanged.
pub fn raw_attrs(buf: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    let mut rest = buf;
    std::iter::from_fn(move || {
        if rest.len() < 4 {
            return None;
        }
        let len = u16::from_ne_bytes([rest[0], rest[1]]) as usize;
        let kind = u16::from_ne_bytes([rest[2], rest[3]]) & NLA_TYPE_MASK;
        if len < 4 || len > rest.len() {
            return None;
        }
        let whole = &rest[..len];
        rest = rest.get(align4(len)..).unwrap_or_default();
        Some((kind, whole))
    })
}

/// Appends an attribute to raw attribute bytes (`nested` sets `NLA_F_NESTED`).
pub fn push_attr(out: &mut Vec<u8>, kind: u16, nested: bool, data: &[u8]) {
    let flag = if nested { NLA_F_NESTED } else { 0 };
    out.extend_from_slice(&((4 + data.len()) as u16).to_ne_bytes());
    out.extend_from_slice(&(kind | flag).to_ne_bytes());
    out.extend_from_slice(data);
    out.resize(align4(out.len()), 0);
}

/// The first attribute of type `kind` in `buf`.
pub fn attr(buf: &[u8], kind: u16) -> Option<&[u8]> {
    attrs(buf).find(|(k, _)| *k == kind).map(|(_, d)| d)
}

/// A NUL-terminated string attribute's text.
pub fn text(data: &[u8]) -> String {
    let end = data.iter().position(|b| *b == 0).unwrap_or(data.len());
    String::from_utf8_lossy(&data[..end]).into_owned()
}

/// A big-endian u32 attribute.
pub fn be32(data: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(data.get(..4)?.try_into().ok()?))
}

/// A big-endian u64 attribute.
pub fn be64(data: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(data.get(..8)?.try_into().ok()?))
}

/// A received message split into its parts.
#[derive(Debug, Clone, Copy)]
pub struct Received<'a> {
    /// Netlink type.
    pub kind: u16,
    /// Netlink flags.
    pub flags: u16,
    /// Sequence number.
    pub seq: u32,
    /// `nfgenmsg.nfgen_family`.
    pub family: u8,
    /// The attributes.
    pub attrs: &'a [u8],
}

/// Splits a received nf_tables message (`None` if it is too short for `nfgenmsg`).
pub fn received(bytes: &[u8]) -> Option<Received<'_>> {
    if bytes.len() < NLMSG_HDRLEN + NFGENMSG_LEN {
        return None;
    }
    Some(Received {
        kind: u16::from_ne_bytes([bytes[4], bytes[5]]),
        flags: u16::from_ne_bytes([bytes[6], bytes[7]]),
        seq: u32::from_ne_bytes(bytes[8..12].try_into().ok()?),
        family: bytes[NLMSG_HDRLEN],
        attrs: &bytes[NLMSG_HDRLEN + NFGENMSG_LEN..],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_with_a_nested_attribute_round_trips() {
        let mut m = Msg::new(
            nft_type(msg::NFT_MSG_NEWCHAIN),
            0x405,
            family::NFPROTO_INET,
            0,
        );
        m.put_str(1, "plumb-x");
        let hook = m.begin(4);
        m.put_u32(1, 4);
        m.put_u32(2, 100);
        m.end(hook);
        let bytes = m.finish(7);
        assert_eq!(bytes.len() % 4, 0);
        assert_eq!(
            u32::from_ne_bytes(bytes[0..4].try_into().unwrap()) as usize,
            bytes.len()
        );
        let r = received(&bytes).unwrap();
        assert_eq!((r.kind, r.flags, r.seq, r.family), (0x0a03, 0x405, 7, 1));
        assert_eq!(text(attr(r.attrs, 1).unwrap()), "plumb-x");
        let hook = attr(r.attrs, 4).unwrap();
        assert_eq!(be32(attr(hook, 1).unwrap()), Some(4));
        assert_eq!(be32(attr(hook, 2).unwrap()), Some(100));
        // The nested flag is on the wire and masked when read.
        let raw_type = u16::from_ne_bytes([bytes[34], bytes[35]]);
        assert_eq!(raw_type, 4 | NLA_F_NESTED);
    }
}
