//! Named sets and maps, and their elements: what lets a table keep a fixed number of rules while
//! the things it applies to come and go (the CNI plugin adds one element per container instead
//! of rules). Builders for the messages of a table made once (`NFT_MSG_NEWTABLE` with
//! `NLM_F_EXCL`, so that of two plugins racing to make it exactly one succeeds), its chains,
//! sets, maps and rules; and transactions that add, delete and look up elements.

use super::compile::flags::{NLM_F_APPEND, NLM_F_CREATE, NLM_F_REQUEST};
use super::expr::{verdict, Expr, NFTA_DATA_VALUE, NFTA_LIST_ELEM};
use super::wire::{family, msg, nft_type, Msg};
use super::{NfSocket, NftError};

/// `NLM_F_EXCL` (`linux/netlink.h`).
const NLM_F_EXCL: u16 = 0x200;
/// `NFT_SET_MAP` (`linux/netfilter/nf_tables.h`).
const NFT_SET_MAP: u32 = 0x8;

/// `NFTA_SET_*` and `NFTA_SET_ELEM_*`.
mod attr {
    pub const TABLE_NAME: u16 = 1;
    pub const TABLE_FLAGS: u16 = 2;
    pub const CHAIN_TABLE: u16 = 1;
    pub const CHAIN_NAME: u16 = 3;
    pub const CHAIN_HOOK: u16 = 4;
    pub const CHAIN_POLICY: u16 = 5;
    pub const CHAIN_TYPE: u16 = 7;
    pub const HOOK_HOOKNUM: u16 = 1;
    pub const HOOK_PRIORITY: u16 = 2;
    pub const RULE_TABLE: u16 = 1;
    pub const RULE_CHAIN: u16 = 2;
    pub const RULE_EXPRESSIONS: u16 = 4;
    pub const SET_TABLE: u16 = 1;
    pub const SET_NAME: u16 = 2;
    pub const SET_FLAGS: u16 = 3;
    pub const SET_KEY_TYPE: u16 = 4;
    pub const SET_KEY_LEN: u16 = 5;
    pub const SET_DATA_TYPE: u16 = 6;
    pub const SET_DATA_LEN: u16 = 7;
    pub const SET_ID: u16 = 10;
    pub const ELEM_LIST_TABLE: u16 = 1;
    pub const ELEM_LIST_SET: u16 = 2;
    pub const ELEM_LIST_ELEMENTS: u16 = 3;
    pub const ELEM_KEY: u16 = 1;
    pub const ELEM_DATA: u16 = 2;
}

/// nft's data types (`enum datatypes` in nftables' `datatype.h`), recorded in a set so that
/// `nft list` prints its elements by their names; a concatenation is `(a << 6) | b`.
pub mod datatype {
    /// `ipv4_addr`.
    pub const IPV4_ADDR: u32 = 7;
    /// `ipv6_addr`.
    pub const IPV6_ADDR: u32 = 8;
    /// `inet_service` (a port).
    pub const INET_SERVICE: u32 = 13;
    /// `ipv4_addr . inet_service`.
    pub const IPV4_ADDR_SERVICE: u32 = (IPV4_ADDR << 6) | INET_SERVICE;
    /// `ipv6_addr . inet_service`.
    pub const IPV6_ADDR_SERVICE: u32 = (IPV6_ADDR << 6) | INET_SERVICE;
}

fn request(kind: u16, extra: u16) -> Msg {
    Msg::new(
        nft_type(kind),
        NLM_F_REQUEST | extra,
        family::NFPROTO_INET,
        0,
    )
}

/// `nft create table inet NAME`: refused with `EEXIST` when the table exists.
pub fn create_table(name: &str) -> Msg {
    let mut m = request(msg::NFT_MSG_NEWTABLE, NLM_F_CREATE | NLM_F_EXCL);
    m.put_str(attr::TABLE_NAME, name);
    m.put_u32(attr::TABLE_FLAGS, 0);
    m
}

/// A base chain: `chain NAME { type KIND hook HOOK priority PRIO; policy accept; }`.
pub fn base_chain(table: &str, name: &str, kind: &str, hooknum: u32, prio: i32) -> Msg {
    let mut m = request(msg::NFT_MSG_NEWCHAIN, NLM_F_CREATE);
    m.put_str(attr::CHAIN_TABLE, table);
    m.put_str(attr::CHAIN_NAME, name);
    m.put_str(attr::CHAIN_TYPE, kind);
    m.put_u32(attr::CHAIN_POLICY, verdict::NF_ACCEPT as u32);
    let h = m.begin(attr::CHAIN_HOOK);
    m.put_u32(attr::HOOK_HOOKNUM, hooknum);
    m.put(attr::HOOK_PRIORITY, &prio.to_be_bytes());
    m.end(h);
    m
}

/// What a named set holds: its key, and for a map its data.
#[derive(Debug, Clone, Copy)]
pub struct SetSpec<'a> {
    /// The set's name.
    pub name: &'a str,
    /// Its id in the transaction that makes it.
    pub id: u32,
    /// The key's nft data type and length in bytes.
    pub key: (u32, u32),
    /// For a map: the data's type and length.
    pub data: Option<(u32, u32)>,
}

/// `set NAME { type KEY; }` or `map NAME { type KEY : DATA; }`.
pub fn named_set(table: &str, s: &SetSpec<'_>) -> Msg {
    let mut m = request(msg::NFT_MSG_NEWSET, NLM_F_CREATE);
    m.put_str(attr::SET_TABLE, table);
    m.put_str(attr::SET_NAME, s.name);
    m.put_u32(
        attr::SET_FLAGS,
        if s.data.is_some() { NFT_SET_MAP } else { 0 },
    );
    m.put_u32(attr::SET_KEY_TYPE, s.key.0);
    m.put_u32(attr::SET_KEY_LEN, s.key.1);
    if let Some((t, len)) = s.data {
        m.put_u32(attr::SET_DATA_TYPE, t);
        m.put_u32(attr::SET_DATA_LEN, len);
    }
    m.put_u32(attr::SET_ID, s.id);
    m
}

/// A rule appended to `chain`.
pub fn rule(table: &str, chain: &str, exprs: &[Expr]) -> Msg {
    let mut m = request(msg::NFT_MSG_NEWRULE, NLM_F_CREATE | NLM_F_APPEND);
    m.put_str(attr::RULE_TABLE, table);
    m.put_str(attr::RULE_CHAIN, chain);
    let list = m.begin(attr::RULE_EXPRESSIONS);
    for e in exprs {
        e.encode(&mut m);
    }
    m.end(list);
    m
}

/// One element: a key and, in a map, its data.
pub type Element = (Vec<u8>, Option<Vec<u8>>);

fn elements_msg(kind: u16, flags: u16, table: &str, set: &str, elems: &[Element]) -> Msg {
    let mut m = request(kind, flags);
    m.put_str(attr::ELEM_LIST_TABLE, table);
    m.put_str(attr::ELEM_LIST_SET, set);
    let list = m.begin(attr::ELEM_LIST_ELEMENTS);
    for (key, data) in elems {
        let el = m.begin(NFTA_LIST_ELEM);
        let k = m.begin(attr::ELEM_KEY);
        m.put(NFTA_DATA_VALUE, key);
        m.end(k);
        if let Some(d) = data {
            let dd = m.begin(attr::ELEM_DATA);
            m.put(NFTA_DATA_VALUE, d);
            m.end(dd);
        }
        m.end(el);
    }
    m.end(list);
    m
}

fn refused(table: &str, what: String) -> impl FnOnce(super::Refused) -> NftError + '_ {
    move |r| NftError::Refused {
        table: table.to_string(),
        what,
        source: r.error,
    }
}

/// Runs the messages that make a table as one transaction. `Ok(false)` when the table already
/// existed (the transaction starts with [`create_table`], refused with `EEXIST`): nothing of it
/// took effect, and whoever made the table made all of it.
pub fn create_once(sock: &mut NfSocket, table: &str, msgs: Vec<Msg>) -> Result<bool, NftError> {
    match sock.transact(msgs) {
        Ok(()) => Ok(true),
        Err(r) if r.index == 0 && r.error.errno() == Some(libc::EEXIST) => Ok(false),
        Err(r) => Err(refused(
            table,
            format!("message {} of its creation", r.index),
        )(r)),
    }
}

/// `nft add element inet TABLE SET { … }` in one transaction: elements already there are no
/// error.
pub fn add_elements(
    sock: &mut NfSocket,
    table: &str,
    set: &str,
    elems: &[Element],
) -> Result<(), NftError> {
    if elems.is_empty() {
        return Ok(());
    }
    let m = elements_msg(msg::NFT_MSG_NEWSETELEM, NLM_F_CREATE, table, set, elems);
    sock.transact(vec![m])
        .map_err(refused(table, format!("elements of set {set}")))
}

/// Elements of several sets and maps added in one transaction: all of them, or none (an
/// element whose key is already there with other data is refused with `EEXIST`).
pub fn add_to_sets(
    sock: &mut NfSocket,
    table: &str,
    groups: &[(String, Vec<Element>)],
) -> Result<(), NftError> {
    let msgs: Vec<Msg> = groups
        .iter()
        .filter(|(_, e)| !e.is_empty())
        .map(|(set, elems)| elements_msg(msg::NFT_MSG_NEWSETELEM, NLM_F_CREATE, table, set, elems))
        .collect();
    if msgs.is_empty() {
        return Ok(());
    }
    let names: Vec<&str> = groups.iter().map(|(s, _)| s.as_str()).collect();
    sock.transact(msgs)
        .map_err(refused(table, format!("elements of {}", names.join(", "))))
}

/// `nft delete element inet TABLE SET { KEY }`, one transaction per element so that one
/// already gone (`ENOENT`, which counts as done) does not keep the others. Every element is
/// tried; the first failure is returned.
pub fn delete_elements(
    sock: &mut NfSocket,
    table: &str,
    set: &str,
    keys: &[Vec<u8>],
) -> Result<(), NftError> {
    let mut first = None;
    for k in keys {
        let m = elements_msg(msg::NFT_MSG_DELSETELEM, 0, table, set, &[(k.clone(), None)]);
        match sock.transact(vec![m]) {
            Ok(()) => {}
            Err(r) if r.error.errno() == Some(libc::ENOENT) => {}
            Err(r) => {
                if first.is_none() {
                    first = Some(refused(table, format!("an element of set {set}"))(r));
                }
            }
        }
    }
    first.map_or(Ok(()), Err)
}

/// The element of `SET` in table `inet TABLE` whose key is `key` (`nft get element`):
/// `None` when there is none (or no such table or set), else its data (`None` in a set).
pub fn element(
    sock: &mut NfSocket,
    table: &str,
    set: &str,
    key: &[u8],
) -> Result<Option<Option<Vec<u8>>>, NftError> {
    let m = elements_msg(
        msg::NFT_MSG_GETSETELEM,
        0,
        table,
        set,
        &[(key.to_vec(), None)],
    );
    let answer = match sock.get(&m) {
        Ok(a) => a,
        Err(e) if e.errno() == Some(libc::ENOENT) => None,
        Err(source) => {
            return Err(NftError::Read {
                table: table.to_string(),
                source,
            })
        }
    };
    let Some(bytes) = answer else {
        return Ok(None);
    };
    let data = super::wire::received(&bytes)
        .and_then(|r| super::wire::attr(r.attrs, attr::ELEM_LIST_ELEMENTS))
        .and_then(|l| super::wire::attr(l, NFTA_LIST_ELEM))
        .and_then(|e| super::wire::attr(e, attr::ELEM_DATA))
        .and_then(|d| super::wire::attr(d, NFTA_DATA_VALUE))
        .map(<[u8]>::to_vec);
    Ok(Some(data))
}

/// Whether set `SET` of table `inet TABLE` holds `key`. A missing table or set counts as "no".
pub fn has_element(
    sock: &mut NfSocket,
    table: &str,
    set: &str,
    key: &[u8],
) -> Result<bool, NftError> {
    element(sock, table, set, key).map(|e| e.is_some())
}

/// Whether table `inet NAME` exists (`nft list table inet NAME`, without its contents): a
/// read, not a transaction.
pub fn table_exists(sock: &mut NfSocket, name: &str) -> Result<bool, NftError> {
    let mut m = Msg::new(
        nft_type(msg::NFT_MSG_GETTABLE),
        NLM_F_REQUEST,
        family::NFPROTO_INET,
        0,
    );
    m.put_str(attr::TABLE_NAME, name);
    sock.get(&m)
        .map(|t| t.is_some())
        .map_err(|source| NftError::Read {
            table: name.to_string(),
            source,
        })
}

/// Deletes table `inet NAME` (no error when there is none).
pub fn delete_table(sock: &mut NfSocket, name: &str) -> Result<(), NftError> {
    super::delete(sock, name)
}
