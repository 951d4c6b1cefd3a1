//! Expression builders and constants shared by the tables plumb writes (the labs' tables in
//! `compile`, the CNI networks' in `cni::nat`): one spelling of each match, so the bytes both
//! send for the same match are the same (the fixtures check `compile`'s against nft's).

use std::net::IpAddr;

use super::expr::{cmp, meta, Expr, NFT_REG_1};
use super::wire::family;

/// `NF_INET_*` hooks (`linux/netfilter.h`).
pub const NF_INET_PRE_ROUTING: u32 = 0;
/// Input.
pub const NF_INET_LOCAL_IN: u32 = 1;
/// Forward.
pub const NF_INET_FORWARD: u32 = 2;
/// Output.
pub const NF_INET_LOCAL_OUT: u32 = 3;
/// Postrouting.
pub const NF_INET_POST_ROUTING: u32 = 4;
/// `IPPROTO_TCP`.
pub const IPPROTO_TCP: u8 = 6;
/// `IPPROTO_UDP`.
pub const IPPROTO_UDP: u8 = 17;
/// `IPS_DST_NAT` (`linux/netfilter/nf_conntrack_common.h`): the connection was DNATed.
pub const IPS_DST_NAT: u32 = 0x20;

/// An address's bytes, in network order.
pub fn addr_bytes(a: IpAddr) -> Vec<u8> {
    match a {
        IpAddr::V4(v) => v.octets().to_vec(),
        IpAddr::V6(v) => v.octets().to_vec(),
    }
}

fn meta_eq(key: u32, value: u8) -> [Expr; 2] {
    [
        Expr::Meta {
            key,
            dreg: NFT_REG_1,
        },
        Expr::Cmp {
            sreg: NFT_REG_1,
            op: cmp::NFT_CMP_EQ,
            data: vec![value],
        },
    ]
}

/// `meta nfproto ipv4|ipv6`, the dependency nft adds before a network-header match in an inet
/// table.
pub fn nfproto(v6: bool) -> [Expr; 2] {
    let p = if v6 {
        family::NFPROTO_IPV6
    } else {
        family::NFPROTO_IPV4
    };
    meta_eq(meta::NFT_META_NFPROTO, p)
}

/// `meta l4proto P`.
pub fn l4proto(p: u8) -> [Expr; 2] {
    meta_eq(meta::NFT_META_L4PROTO, p)
}

/// `ct KEY & MASK != 0` (`ct state established,related`, `ct status dnat`).
pub fn ct_bits(key: u32, mask: u32) -> [Expr; 3] {
    [
        Expr::Ct {
            key,
            dreg: NFT_REG_1,
        },
        Expr::Bitwise {
            sreg: NFT_REG_1,
            dreg: NFT_REG_1,
            len: 4,
            mask: mask.to_ne_bytes().to_vec(),
            xor: vec![0; 4],
        },
        Expr::Cmp {
            sreg: NFT_REG_1,
            op: cmp::NFT_CMP_NEQ,
            data: vec![0; 4],
        },
    ]
}
