//! nf_tables expressions: the register machine a rule is made of (`meta`, `cmp`, `payload`,
//! `bitwise`, `ct`, `lookup`, `immediate`, `nat`, `masq`, `fib`), encoded as the kernel reads
//! them (`NFTA_LIST_ELEM { NFTA_EXPR_NAME, NFTA_EXPR_DATA { … } }`), attributes in the order
//! `nft` writes them, and decoded from a dump.

use super::wire::{attr, attrs, be32, text, Msg};

/// `NFTA_LIST_ELEM`.
pub const NFTA_LIST_ELEM: u16 = 1;
/// `NFTA_EXPR_NAME`.
const NFTA_EXPR_NAME: u16 = 1;
/// `NFTA_EXPR_DATA`.
const NFTA_EXPR_DATA: u16 = 2;
/// `NFTA_DATA_VALUE`.
pub const NFTA_DATA_VALUE: u16 = 1;
/// `NFTA_DATA_VERDICT`.
const NFTA_DATA_VERDICT: u16 = 2;
/// `NFTA_VERDICT_CODE`.
const NFTA_VERDICT_CODE: u16 = 1;

/// `NFT_REG_VERDICT`.
pub const NFT_REG_VERDICT: u32 = 0;
/// `NFT_REG_1` (a 16-byte register).
pub const NFT_REG_1: u32 = 1;
/// `NFT_REG_2`.
pub const NFT_REG_2: u32 = 2;

/// `enum nft_meta_keys` (the ones plumb uses).
#[allow(missing_docs)]
pub mod meta {
    pub const NFT_META_IIFNAME: u32 = 6;
    pub const NFT_META_OIFNAME: u32 = 7;
    pub const NFT_META_NFPROTO: u32 = 15;
    pub const NFT_META_L4PROTO: u32 = 16;
}

/// `enum nft_ct_keys` (the ones plumb uses).
#[allow(missing_docs)]
pub mod ct {
    pub const NFT_CT_STATE: u32 = 0;
    pub const NFT_CT_STATUS: u32 = 2;
}

/// `enum nft_payload_bases`.
#[allow(missing_docs)]
pub mod base {
    pub const NFT_PAYLOAD_NETWORK_HEADER: u32 = 1;
    pub const NFT_PAYLOAD_TRANSPORT_HEADER: u32 = 2;
}

/// `enum nft_cmp_ops`.
#[allow(missing_docs)]
pub mod cmp {
    pub const NFT_CMP_EQ: u32 = 0;
    pub const NFT_CMP_NEQ: u32 = 1;
}

/// Verdict codes (`NF_DROP`, `NF_ACCEPT` from `linux/netfilter.h`).
#[allow(missing_docs)]
pub mod verdict {
    pub const NF_DROP: i32 = 0;
    pub const NF_ACCEPT: i32 = 1;
}

/// `enum nft_nat_types`, and `NF_NAT_RANGE_PROTO_SPECIFIED`.
#[allow(missing_docs)]
pub mod nat {
    pub const NFT_NAT_DNAT: u32 = 1;
    pub const NF_NAT_RANGE_PROTO_SPECIFIED: u32 = 2;
}

/// `enum nft_fib_result` and `enum nft_fib_flags`; `RTN_LOCAL` from `linux/rtnetlink.h`.
#[allow(missing_docs)]
pub mod fib {
    pub const NFT_FIB_RESULT_ADDRTYPE: u32 = 3;
    pub const NFTA_FIB_F_DADDR: u32 = 2;
    pub const RTN_LOCAL: u32 = 2;
}

/// One expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expr {
    /// `meta load KEY => reg`.
    Meta {
        /// `NFT_META_*`.
        key: u32,
        /// Destination register.
        dreg: u32,
    },
    /// `cmp OP reg DATA`.
    Cmp {
        /// Source register.
        sreg: u32,
        /// `NFT_CMP_*`.
        op: u32,
        /// The value compared with.
        data: Vec<u8>,
    },
    /// `payload load LEN @ BASE + OFFSET => reg`.
    Payload {
        /// Destination register.
        dreg: u32,
        /// `NFT_PAYLOAD_*_HEADER`.
        base: u32,
        /// Byte offset.
        offset: u32,
        /// Bytes.
        len: u32,
    },
    /// `bitwise reg = (reg & MASK) ^ XOR`.
    Bitwise {
        /// Source register.
        sreg: u32,
        /// Destination register.
        dreg: u32,
        /// Bytes.
        len: u32,
        /// Mask.
        mask: Vec<u8>,
        /// Xor.
        xor: Vec<u8>,
    },
    /// `ct load KEY => reg`.
    Ct {
        /// `NFT_CT_*`.
        key: u32,
        /// Destination register.
        dreg: u32,
    },
    /// `lookup reg set NAME`.
    Lookup {
        /// Source register.
        sreg: u32,
        /// The set's name.
        set: String,
        /// The set's id in this transaction.
        set_id: u32,
    },
    /// `lookup reg map NAME => dreg`: the data of the element whose key is in `sreg` (a named
    /// map that already exists, such as one of the CNI plugin's port maps).
    LookupMap {
        /// Source register (the key).
        sreg: u32,
        /// Destination register (the element's data).
        dreg: u32,
        /// The map's name.
        set: String,
    },
    /// `immediate reg DATA` (a value).
    Value {
        /// Destination register.
        dreg: u32,
        /// The value.
        data: Vec<u8>,
    },
    /// `immediate reg 0 VERDICT`.
    Verdict(i32),
    /// `nat dnat FAMILY addr_min reg proto_min reg flags`.
    Dnat {
        /// `NFPROTO_IPV4` or `NFPROTO_IPV6`.
        family: u32,
        /// Register with the address.
        addr: u32,
        /// Register with the port.
        port: u32,
    },
    /// `masq`.
    Masq,
    /// `fib daddr type => reg`.
    FibDaddrType {
        /// Destination register.
        dreg: u32,
    },
}

impl Expr {
    /// The expression's name (`NFTA_EXPR_NAME`).
    pub fn name(&self) -> &'static str {
        match self {
            Expr::Meta { .. } => "meta",
            Expr::Cmp { .. } => "cmp",
            Expr::Payload { .. } => "payload",
            Expr::Bitwise { .. } => "bitwise",
            Expr::Ct { .. } => "ct",
            Expr::Lookup { .. } | Expr::LookupMap { .. } => "lookup",
            Expr::Value { .. } | Expr::Verdict(_) => "immediate",
            Expr::Dnat { .. } => "nat",
            Expr::Masq => "masq",
            Expr::FibDaddrType { .. } => "fib",
        }
    }

    /// Appends `NFTA_LIST_ELEM { NAME, DATA { … } }`.
    pub fn encode(&self, m: &mut Msg) {
        let elem = m.begin(NFTA_LIST_ELEM);
        m.put_str(NFTA_EXPR_NAME, self.name());
        let data = m.begin(NFTA_EXPR_DATA);
        let value = |m: &mut Msg, kind: u16, v: &[u8]| {
            let n = m.begin(kind);
            m.put(NFTA_DATA_VALUE, v);
            m.end(n);
        };
        match self {
            // NFTA_META_KEY = 2, NFTA_META_DREG = 1.
            Expr::Meta { key, dreg } => {
                m.put_u32(2, *key);
                m.put_u32(1, *dreg);
            }
            // NFTA_CMP_SREG = 1, NFTA_CMP_OP = 2, NFTA_CMP_DATA = 3.
            Expr::Cmp { sreg, op, data } => {
                m.put_u32(1, *sreg);
                m.put_u32(2, *op);
                value(m, 3, data);
            }
            // NFTA_PAYLOAD_DREG = 1, BASE = 2, OFFSET = 3, LEN = 4.
            Expr::Payload {
                dreg,
                base,
                offset,
                len,
            } => {
                m.put_u32(1, *dreg);
                m.put_u32(2, *base);
                m.put_u32(3, *offset);
                m.put_u32(4, *len);
            }
            // NFTA_BITWISE_SREG = 1, DREG = 2, LEN = 3, MASK = 4, XOR = 5.
            Expr::Bitwise {
                sreg,
                dreg,
                len,
                mask,
                xor,
            } => {
                m.put_u32(1, *sreg);
                m.put_u32(2, *dreg);
                m.put_u32(3, *len);
                value(m, 4, mask);
                value(m, 5, xor);
            }
            // NFTA_CT_KEY = 2, NFTA_CT_DREG = 1.
            Expr::Ct { key, dreg } => {
                m.put_u32(2, *key);
                m.put_u32(1, *dreg);
            }
            // NFTA_LOOKUP_SET = 1, SREG = 2, SET_ID = 4.
            Expr::Lookup { sreg, set, set_id } => {
                m.put_u32(2, *sreg);
                m.put_str(1, set);
                m.put_u32(4, *set_id);
            }
            // NFTA_LOOKUP_SET = 1, SREG = 2, DREG = 3.
            Expr::LookupMap { sreg, dreg, set } => {
                m.put_str(1, set);
                m.put_u32(2, *sreg);
                m.put_u32(3, *dreg);
            }
            // NFTA_IMMEDIATE_DREG = 1, NFTA_IMMEDIATE_DATA = 2.
            Expr::Value { dreg, data } => {
                m.put_u32(1, *dreg);
                value(m, 2, data);
            }
            Expr::Verdict(code) => {
                m.put_u32(1, NFT_REG_VERDICT);
                let d = m.begin(2);
                let v = m.begin(NFTA_DATA_VERDICT);
                m.put(NFTA_VERDICT_CODE, &code.to_be_bytes());
                m.end(v);
                m.end(d);
            }
            // NFTA_NAT_TYPE = 1, FAMILY = 2, REG_ADDR_MIN = 3, REG_PROTO_MIN = 5, FLAGS = 7.
            Expr::Dnat { family, addr, port } => {
                m.put_u32(1, nat::NFT_NAT_DNAT);
                m.put_u32(2, *family);
                m.put_u32(3, *addr);
                m.put_u32(5, *port);
                m.put_u32(7, nat::NF_NAT_RANGE_PROTO_SPECIFIED);
            }
            Expr::Masq => {}
            // NFTA_FIB_FLAGS = 3, RESULT = 2, DREG = 1.
            Expr::FibDaddrType { dreg } => {
                m.put_u32(3, fib::NFTA_FIB_F_DADDR);
                m.put_u32(2, fib::NFT_FIB_RESULT_ADDRTYPE);
                m.put_u32(1, *dreg);
            }
        }
        m.end(data);
        m.end(elem);
    }
}

/// An expression as a dump shows it: its name and the attributes of its data, decoded only as
/// far as `show` and the tests need (the verdict of an `immediate`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dumped {
    /// `NFTA_EXPR_NAME`.
    pub name: String,
    /// The verdict, for an `immediate` into the verdict register.
    pub verdict: Option<i32>,
}

/// The expressions of a rule's `NFTA_RULE_EXPRESSIONS`.
pub fn decode_list(list: &[u8]) -> Vec<Dumped> {
    attrs(list)
        .filter(|(k, _)| *k == NFTA_LIST_ELEM)
        .map(|(_, e)| {
            let name = attr(e, NFTA_EXPR_NAME).map(text).unwrap_or_default();
            let verdict = attr(e, NFTA_EXPR_DATA)
                .filter(|_| name == "immediate")
                .and_then(|d| attr(d, 2))
                .and_then(|d| attr(d, NFTA_DATA_VERDICT))
                .and_then(|v| attr(v, NFTA_VERDICT_CODE))
                .and_then(be32)
                .map(|c| c as i32);
            Dumped { name, verdict }
        })
        .collect()
}
