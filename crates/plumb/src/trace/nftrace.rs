//! nftables tracing for one namespace: plumb's own trace table (`inet plumb-trace-PID`, base
//! chains on `prerouting` and `output` at priority -350, before every other table, with one
//! rule `meta l4proto P meta nftrace set 1`), a `NETLINK_NETFILTER` socket subscribed to
//! `NFNLGRP_NFTRACE` that collects the kernel's trace events, and the lookup of a rule's
//! comment by its handle.
//!
//! The table is created with `NFT_TABLE_F_OWNER`: the kernel removes it when the socket that
//! made it closes, so it is gone on exit whatever ends plumb (Ctrl-C, a panic, SIGKILL); it is
//! also deleted explicitly when the trace ends.

use netlink_sys::Socket;

use crate::netlink::NetlinkError;
use crate::nftables::expr::{cmp, meta, Expr, NFTA_LIST_ELEM, NFT_REG_1};
use crate::nftables::trace::{self, TraceEvent, NFNLGRP_NFTRACE};
use crate::nftables::wire::{attr, be64, family, msg, nft_type, received, text, Msg};
use crate::nftables::NfSocket;

/// `NETLINK_NETFILTER` from `linux/netlink.h`.
const NETLINK_NETFILTER: isize = 12;
/// `NLM_F_REQUEST`, `NLM_F_CREATE`, `NLM_F_APPEND` from `linux/netlink.h`.
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_CREATE: u16 = 0x400;
const NLM_F_APPEND: u16 = 0x800;
/// `NFT_TABLE_F_OWNER` (`enum nft_table_flags`).
const NFT_TABLE_F_OWNER: u32 = 0x2;
/// `NFT_META_NFTRACE` (`enum nft_meta_keys`).
const NFT_META_NFTRACE: u32 = 12;
/// `NF_INET_PRE_ROUTING`, `NF_INET_LOCAL_OUT`.
const HOOKS: [(&str, u32); 2] = [("pre", 0), ("out", 3)];
/// Before conntrack (-200) and raw (-300).
const PRIORITY: i32 = -350;

/// The name of this process's trace table.
pub fn table_name() -> String {
    format!("plumb-trace-{}", std::process::id())
}

fn request(kind: u16, flags: u16) -> Msg {
    Msg::new(
        nft_type(kind),
        NLM_F_REQUEST | flags,
        family::NFPROTO_INET,
        0,
    )
}

/// The messages that create the trace table.
pub fn table_msgs(table: &str, l4proto: u8) -> Vec<Msg> {
    let mut out = Vec::new();
    let mut t = request(msg::NFT_MSG_NEWTABLE, NLM_F_CREATE);
    t.put_str(1, table); // NFTA_TABLE_NAME
    t.put_u32(2, NFT_TABLE_F_OWNER); // NFTA_TABLE_FLAGS
    out.push(t);
    for (chain, hook) in HOOKS {
        let mut c = request(msg::NFT_MSG_NEWCHAIN, NLM_F_CREATE);
        c.put_str(1, table); // NFTA_CHAIN_TABLE
        c.put_str(3, chain); // NFTA_CHAIN_NAME
        let h = c.begin(4); // NFTA_CHAIN_HOOK
        c.put_u32(1, hook); // NFTA_HOOK_HOOKNUM
        c.put_u32(2, PRIORITY as u32); // NFTA_HOOK_PRIORITY
        c.end(h);
        c.put_u32(5, 1); // NFTA_CHAIN_POLICY: NF_ACCEPT
        c.put_str(7, "filter"); // NFTA_CHAIN_TYPE
        out.push(c);
        let mut r = request(msg::NFT_MSG_NEWRULE, NLM_F_CREATE | NLM_F_APPEND);
        r.put_str(1, table); // NFTA_RULE_TABLE
        r.put_str(2, chain); // NFTA_RULE_CHAIN
        let list = r.begin(4); // NFTA_RULE_EXPRESSIONS
        Expr::Meta {
            key: meta::NFT_META_L4PROTO,
            dreg: NFT_REG_1,
        }
        .encode(&mut r);
        Expr::Cmp {
            sreg: NFT_REG_1,
            op: cmp::NFT_CMP_EQ,
            data: vec![l4proto],
        }
        .encode(&mut r);
        Expr::Value {
            dreg: NFT_REG_1,
            data: vec![1],
        }
        .encode(&mut r);
        // `meta nftrace set reg 1`: NFTA_META_KEY = 2, NFTA_META_SREG = 3.
        let elem = r.begin(NFTA_LIST_ELEM);
        r.put_str(1, "meta");
        let data = r.begin(2);
        r.put_u32(2, NFT_META_NFTRACE);
        r.put_u32(3, NFT_REG_1);
        r.end(data);
        r.end(elem);
        r.end(list);
        out.push(r);
    }
    out
}

/// Tracing in one namespace.
pub struct NsTrace {
    /// The namespace's node (as the path names it).
    pub node: String,
    sock: NfSocket,
    listener: Socket,
    table: String,
    buf: Vec<u8>,
}

impl std::fmt::Debug for NsTrace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NsTrace").field("node", &self.node).finish()
    }
}

fn sock_err(op: &'static str) -> impl Fn(std::io::Error) -> NetlinkError {
    move |source| NetlinkError::Socket { op, source }
}

impl NsTrace {
    /// In the calling thread's namespace: subscribes to trace events, then creates the trace
    /// table (so no event of a marked packet is missed).
    pub fn open_here(
        node: &str,
        table: &str,
        l4proto: u8,
    ) -> Result<NsTrace, crate::nftables::NftError> {
        let read = |source| crate::nftables::NftError::Read {
            table: table.to_string(),
            source,
        };
        let mut listener = Socket::new(NETLINK_NETFILTER)
            .map_err(sock_err("open"))
            .map_err(read)?;
        listener
            .bind_auto()
            .map_err(sock_err("bind"))
            .map_err(read)?;
        listener
            .add_membership(NFNLGRP_NFTRACE)
            .map_err(sock_err("join NFNLGRP_NFTRACE"))
            .map_err(read)?;
        let _ = listener.set_rx_buf_sz(4usize << 20);
        listener
            .set_non_blocking(true)
            .map_err(sock_err("set non-blocking"))
            .map_err(read)?;
        let mut sock = crate::nftables::open(table)?;
        sock.transact(table_msgs(table, l4proto)).map_err(|r| {
            crate::nftables::NftError::Refused {
                table: table.to_string(),
                what: "the trace table".into(),
                source: r.error,
            }
        })?;
        Ok(NsTrace {
            node: node.to_string(),
            sock,
            listener,
            table: table.to_string(),
            buf: vec![0; 1 << 16],
        })
    }

    /// The events received so far (none of plumb's own trace table).
    pub fn events(&mut self) -> Vec<TraceEvent> {
        let mut out = Vec::new();
        while let Ok(n) = self.listener.recv(&mut &mut self.buf[..], 0) {
            if n == 0 {
                break;
            }
            for (_, m) in crate::netlink::ack::messages(&self.buf[..n]) {
                if let Some(e) = trace::decode(m) {
                    out.push(e);
                }
            }
        }
        out
    }

    /// The comment of rule `handle` of `family table chain`, if it has one.
    pub fn rule_comment(
        &mut self,
        fam: u8,
        table: &str,
        chain: &str,
        handle: u64,
    ) -> Option<String> {
        let mut m = Msg::new(nft_type(msg::NFT_MSG_GETRULE), NLM_F_REQUEST, fam, 0);
        m.put_str(1, table);
        m.put_str(2, chain);
        let msgs = self.sock.dump(&m).ok()?;
        msgs.iter().find_map(|b| {
            let r = received(b)?;
            if attr(r.attrs, 3).and_then(be64) != Some(handle) {
                return None;
            }
            // NFTA_RULE_USERDATA: TLVs, type 0 is the comment (NUL-terminated).
            let u = attr(r.attrs, 7)?;
            (u.len() > 2 && u[0] == 0).then(|| text(&u[2..2 + usize::from(u[1]).min(u.len() - 2)]))
        })
    }

    /// The trace table's name.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// Deletes the trace table (the kernel also does when the socket closes).
    /// `nft delete table inet NAME` (not plumb's add-then-delete, which would try to change
    /// the owner flag of the table).
    pub fn remove(mut self) -> Result<(), crate::nftables::NftError> {
        let mut del = request(msg::NFT_MSG_DELTABLE, 0);
        del.put_str(1, &self.table);
        self.sock
            .transact(vec![del])
            .map_err(|r| crate::nftables::NftError::Refused {
                table: self.table.clone(),
                what: "the trace table".into(),
                source: r.error,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_msgs_are_a_table_two_hooked_chains_and_two_rules() {
        let m = table_msgs("plumb-trace-1", 1);
        let kinds: Vec<u16> = m.iter().map(|m| m.kind() & 0xff).collect();
        assert_eq!(
            kinds,
            [
                msg::NFT_MSG_NEWTABLE,
                msg::NFT_MSG_NEWCHAIN,
                msg::NFT_MSG_NEWRULE,
                msg::NFT_MSG_NEWCHAIN,
                msg::NFT_MSG_NEWRULE
            ]
        );
        let exprs = attr(m[2].attrs(), 4).unwrap();
        let names: Vec<String> = crate::nftables::expr::decode_list(exprs)
            .into_iter()
            .map(|d| d.name)
            .collect();
        assert_eq!(names, ["meta", "cmp", "immediate", "meta"]);
    }
}
