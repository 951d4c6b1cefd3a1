//! Reading nf_tables back through dumps: a table's chains and rules as `show` needs them
//! ([`Listing`]), its version mark, the whole table as the requests that recreate it (for
//! rollback), and other tables' base chains (for the forward-drop warning).

use super::compile::flags::{NLM_F_APPEND, NLM_F_CREATE, NLM_F_REQUEST};
use super::socket::NfSocket;
use std::collections::HashMap;

use super::wire::{
    attr, attrs, be32, family, msg, nft_type, push_attr, raw_attrs, received, text, Msg,
};
use super::{ChainListing, Listing, RuleListing};
use crate::netlink::NetlinkError;

/// `NFTA_TABLE_NAME`, `NFTA_CHAIN_*`, `NFTA_HOOK_*`, `NFTA_RULE_*`, `NFTA_SET_*`.
mod a {
    pub const TABLE_NAME: u16 = 1;
    pub const TABLE_USE: u16 = 3;
    pub const TABLE_HANDLE: u16 = 4;
    pub const TABLE_PAD: u16 = 5;
    pub const TABLE_OWNER: u16 = 7;
    pub const CHAIN_TABLE: u16 = 1;
    pub const CHAIN_HANDLE: u16 = 2;
    pub const CHAIN_NAME: u16 = 3;
    pub const CHAIN_HOOK: u16 = 4;
    pub const CHAIN_POLICY: u16 = 5;
    pub const CHAIN_USE: u16 = 6;
    pub const CHAIN_COUNTERS: u16 = 8;
    pub const CHAIN_PAD: u16 = 9;
    pub const CHAIN_FLAGS: u16 = 10;
    pub const CHAIN_ID: u16 = 11;
    pub const HOOK_HOOKNUM: u16 = 1;
    pub const RULE_TABLE: u16 = 1;
    pub const RULE_CHAIN: u16 = 2;
    pub const RULE_HANDLE: u16 = 3;
    pub const RULE_POSITION: u16 = 6;
    pub const RULE_USERDATA: u16 = 7;
    pub const RULE_PAD: u16 = 8;
    pub const RULE_ID: u16 = 9;
    pub const SET_TABLE: u16 = 1;
    pub const SET_NAME: u16 = 2;
    pub const SET_ID: u16 = 10;
    pub const SET_PAD: u16 = 15;
    pub const SET_HANDLE: u16 = 16;
    pub const SET_TYPE: u16 = 19;
    pub const SET_COUNT: u16 = 20;
    pub const SETELEM_ELEMENTS: u16 = 3;
    pub const SETELEM_SET_ID: u16 = 4;
    pub const SET_FLAGS: u16 = 3;
    pub const RULE_EXPRESSIONS: u16 = 4;
    pub const LIST_ELEM: u16 = 1;
    pub const EXPR_NAME: u16 = 1;
    pub const EXPR_DATA: u16 = 2;
    pub const LOOKUP_SET: u16 = 1;
    pub const LOOKUP_SET_ID: u16 = 4;
    pub const SETELEM_TABLE: u16 = 1;
    pub const SETELEM_SET: u16 = 2;
}

/// `NFTNL_UDATA_RULE_COMMENT`.
const UDATA_RULE_COMMENT: u8 = 0;

/// The name of an inet hook number.
fn hook_name(n: u32) -> &'static str {
    match n {
        0 => "prerouting",
        1 => "input",
        2 => "forward",
        3 => "output",
        4 => "postrouting",
        _ => "?",
    }
}

fn policy_name(p: u32) -> String {
    match p {
        0 => "drop".into(),
        1 => "accept".into(),
        other => other.to_string(),
    }
}

fn get(kind: u16, fam: u8) -> Msg {
    Msg::new(nft_type(kind), NLM_F_REQUEST, fam, 0)
}

/// Whether table `inet NAME` exists.
fn exists(sock: &mut NfSocket, name: &str) -> Result<bool, NetlinkError> {
    let mut m = get(msg::NFT_MSG_GETTABLE, family::NFPROTO_INET);
    m.put_str(a::TABLE_NAME, name);
    Ok(sock.get(&m)?.is_some())
}

/// The chains of `inet TABLE` (every table's, for `None`, in every family).
fn chains(sock: &mut NfSocket, table: Option<&str>) -> Result<Vec<Vec<u8>>, NetlinkError> {
    let fam = if table.is_some() {
        family::NFPROTO_INET
    } else {
        family::NFPROTO_UNSPEC
    };
    let mut m = get(msg::NFT_MSG_GETCHAIN, fam);
    if let Some(t) = table {
        m.put_str(a::CHAIN_TABLE, t);
    }
    sock.dump(&m)
}

fn chain_listing(attrs_: &[u8]) -> ChainListing {
    let hook = attr(attrs_, a::CHAIN_HOOK);
    ChainListing {
        name: attr(attrs_, a::CHAIN_NAME).map(text).unwrap_or_default(),
        hook: hook
            .and_then(|h| attr(h, a::HOOK_HOOKNUM))
            .and_then(be32)
            .map(|n| hook_name(n).to_string()),
        policy: attr(attrs_, a::CHAIN_POLICY)
            .and_then(be32)
            .filter(|_| hook.is_some())
            .map(policy_name),
    }
}

/// The comment in a rule's user data.
fn comment(udata: &[u8]) -> Option<String> {
    let mut rest = udata;
    while rest.len() >= 2 {
        let (kind, len) = (rest[0], rest[1] as usize);
        let value = rest.get(2..2 + len)?;
        if kind == UDATA_RULE_COMMENT {
            return Some(text(value));
        }
        rest = &rest[2 + len..];
    }
    None
}

/// The messages of a dump answer as they are received.
pub type Dumped = [Vec<u8>];

/// A [`Listing`] from the answers to a chain dump and a rule dump of one table.
pub fn decode_listing(chains_: &Dumped, rules: &Dumped) -> Listing {
    let mut out = Listing::default();
    for c in chains_ {
        if let Some(r) = received(c) {
            out.chains.push(chain_listing(r.attrs));
        }
    }
    for r in rules {
        if let Some(r) = received(r) {
            out.rules.push(RuleListing {
                chain: attr(r.attrs, a::RULE_CHAIN).map(text).unwrap_or_default(),
                comment: attr(r.attrs, a::RULE_USERDATA).and_then(comment),
            });
        }
    }
    out
}

/// The version in the name of a table's `v-VERSION` chain, from a chain dump (`""` if none).
pub fn decode_version(chains_: &Dumped) -> String {
    chains_
        .iter()
        .filter_map(|c| received(c))
        .filter_map(|r| attr(r.attrs, a::CHAIN_NAME).map(text))
        .find_map(|n| n.strip_prefix("v-").map(str::to_string))
        .unwrap_or_default()
}

/// From a dump of every chain: base chains of other tables than `own` (any family) on the
/// forward hook with a drop policy, as `FAMILY TABLE/CHAIN`.
pub fn decode_forward_drops(chains_: &Dumped, own: &str) -> Vec<String> {
    let mut out = Vec::new();
    for c in chains_ {
        let Some(r) = received(c) else { continue };
        let l = chain_listing(r.attrs);
        let table = attr(r.attrs, a::CHAIN_TABLE).map(text).unwrap_or_default();
        if l.hook.as_deref() == Some("forward")
            && l.policy.as_deref() == Some("drop")
            && table != own
        {
            let fam = match r.family {
                family::NFPROTO_INET => "inet",
                family::NFPROTO_IPV4 => "ip",
                family::NFPROTO_IPV6 => "ip6",
                3 => "arp",
                7 => "bridge",
                5 => "netdev",
                _ => "?",
            };
            out.push(format!("{fam} {table}/{}", l.name));
        }
    }
    out
}

fn rules_of(sock: &mut NfSocket, table: &str) -> Result<Vec<Vec<u8>>, NetlinkError> {
    let mut m = get(msg::NFT_MSG_GETRULE, family::NFPROTO_INET);
    m.put_str(a::RULE_TABLE, table);
    sock.dump(&m)
}

/// `inet TABLE`'s chains and rules, or `None` if there is no such table.
pub fn listing(sock: &mut NfSocket, table: &str) -> Result<Option<Listing>, NetlinkError> {
    if !exists(sock, table)? {
        return Ok(None);
    }
    let c = chains(sock, Some(table))?;
    let r = rules_of(sock, table)?;
    Ok(Some(decode_listing(&c, &r)))
}

/// The version mark of `inet TABLE` (its `v-VERSION` chain): `None` without the table,
/// `Some("")` for a table without a mark.
pub fn version(sock: &mut NfSocket, table: &str) -> Result<Option<String>, NetlinkError> {
    if !exists(sock, table)? {
        return Ok(None);
    }
    Ok(Some(decode_version(&chains(sock, Some(table))?)))
}

/// Base chains of other tables on the forward hook with a drop policy (see
/// [`decode_forward_drops`]).
pub fn forward_drops(sock: &mut NfSocket, own: &str) -> Result<Vec<String>, NetlinkError> {
    Ok(decode_forward_drops(&chains(sock, None)?, own))
}

/// A table as the requests that recreate it exactly: the objects a dump lists, without the
/// attributes the kernel assigns (handles, use counts, positions).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Saved {
    /// The table's name.
    pub table: String,
    /// (nf_tables message type, attributes), in the order to send them.
    pub objects: Vec<(u16, Vec<u8>)>,
}

/// `attrs_` without the attributes of the types in `drop`; the others are copied whole (nested
/// ones keep their flag).
fn without(attrs_: &[u8], drop: &[u16]) -> Vec<u8> {
    let mut out = Vec::new();
    for (k, whole) in raw_attrs(attrs_) {
        if drop.contains(&k) {
            continue;
        }
        out.extend_from_slice(whole);
        out.resize((out.len() + 3) & !3, 0);
    }
    out
}

/// `NFT_SET_ANONYMOUS`.
const NFT_SET_ANONYMOUS: u32 = 0x1;
/// The name an anonymous set is created with: the kernel picks the number.
const ANONYMOUS_NAME: &str = "__set%d";

fn name_attr(kind: u16, name: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let mut s = name.as_bytes().to_vec();
    s.push(0);
    push_attr(&mut out, kind, false, &s);
    out
}

/// An anonymous set is recreated the way `nft` creates one: named `__set%d` (the kernel picks
/// the number) and referred to in the same transaction by an id, since the name it had is not
/// the one it gets.
fn anonymous_set(attrs_: &[u8], id: u32) -> Vec<u8> {
    let mut out = Vec::new();
    for (k, whole) in raw_attrs(attrs_) {
        if k == a::SET_NAME {
            out.extend(name_attr(a::SET_NAME, ANONYMOUS_NAME));
        } else {
            out.extend_from_slice(whole);
            out.resize((out.len() + 3) & !3, 0);
        }
    }
    push_attr(&mut out, a::SET_ID, false, &id.to_be_bytes());
    out
}

fn anonymous_elements(attrs_: &[u8], id: u32) -> Vec<u8> {
    let mut out = Vec::new();
    for (k, whole) in raw_attrs(attrs_) {
        if k == a::SETELEM_SET {
            out.extend(name_attr(a::SETELEM_SET, ANONYMOUS_NAME));
        } else {
            out.extend_from_slice(whole);
            out.resize((out.len() + 3) & !3, 0);
        }
    }
    push_attr(&mut out, a::SETELEM_SET_ID, false, &id.to_be_bytes());
    out
}

/// A rule's attributes with its lookups of anonymous sets pointed at the sets' new ids.
fn rule_with_set_ids(attrs_: &[u8], ids: &HashMap<String, u32>) -> Vec<u8> {
    let mut out = Vec::new();
    for (k, whole) in raw_attrs(attrs_) {
        if k != a::RULE_EXPRESSIONS {
            out.extend_from_slice(whole);
            out.resize((out.len() + 3) & !3, 0);
            continue;
        }
        let mut list = Vec::new();
        for (_, elem) in attrs(&whole[4..]) {
            let name = attr(elem, a::EXPR_NAME).map(text).unwrap_or_default();
            let data = attr(elem, a::EXPR_DATA).unwrap_or_default();
            let set = attr(data, a::LOOKUP_SET).map(text);
            let id = set.as_ref().and_then(|s| ids.get(s));
            let mut e = Vec::new();
            match (name.as_str(), id) {
                ("lookup", Some(id)) => {
                    for (dk, dwhole) in raw_attrs(elem) {
                        if dk != a::EXPR_DATA {
                            e.extend_from_slice(dwhole);
                            e.resize((e.len() + 3) & !3, 0);
                            continue;
                        }
                        let mut d = Vec::new();
                        for (lk, lwhole) in raw_attrs(data) {
                            if lk == a::LOOKUP_SET || lk == a::LOOKUP_SET_ID {
                                continue;
                            }
                            d.extend_from_slice(lwhole);
                            d.resize((d.len() + 3) & !3, 0);
                        }
                        d.extend(name_attr(a::LOOKUP_SET, ANONYMOUS_NAME));
                        push_attr(&mut d, a::LOOKUP_SET_ID, false, &id.to_be_bytes());
                        push_attr(&mut e, a::EXPR_DATA, true, &d);
                    }
                }
                _ => e.extend_from_slice(elem),
            }
            push_attr(&mut list, a::LIST_ELEM, true, &e);
        }
        push_attr(&mut out, a::RULE_EXPRESSIONS, true, &list);
    }
    out
}

/// A table's dumps: the table, its chains, its sets each with its elements, its rules.
#[derive(Debug, Clone, Default)]
pub struct TableDump {
    /// The answer to `GETTABLE`.
    pub table: Vec<u8>,
    /// The answers to the chain dump.
    pub chains: Vec<Vec<u8>>,
    /// Each set (the answer to the set dump) with the answers to its element dump.
    pub sets: Vec<(Vec<u8>, Vec<Vec<u8>>)>,
    /// The answers to the rule dump.
    pub rules: Vec<Vec<u8>>,
}

/// A table's dumps as the requests that recreate it.
pub fn decode_saved(name: &str, d: &TableDump) -> Saved {
    let mut saved = Saved {
        table: name.to_string(),
        objects: Vec::new(),
    };
    if let Some(r) = received(&d.table) {
        let keep = without(
            r.attrs,
            &[a::TABLE_USE, a::TABLE_HANDLE, a::TABLE_PAD, a::TABLE_OWNER],
        );
        saved.objects.push((msg::NFT_MSG_NEWTABLE, keep));
    }
    for c in &d.chains {
        if let Some(r) = received(c) {
            let keep = without(
                r.attrs,
                &[
                    a::CHAIN_HANDLE,
                    a::CHAIN_USE,
                    a::CHAIN_COUNTERS,
                    a::CHAIN_PAD,
                    a::CHAIN_FLAGS,
                    a::CHAIN_ID,
                ],
            );
            saved.objects.push((msg::NFT_MSG_NEWCHAIN, keep));
        }
    }
    let mut anonymous: HashMap<String, u32> = HashMap::new();
    for (s, elems) in &d.sets {
        let Some(r) = received(s) else { continue };
        let name = attr(r.attrs, a::SET_NAME).map(text).unwrap_or_default();
        // The backend's name and the element count are what the kernel reports, not settings.
        let keep = without(
            r.attrs,
            &[
                a::SET_HANDLE,
                a::SET_PAD,
                a::SET_ID,
                a::SET_TYPE,
                a::SET_COUNT,
            ],
        );
        let flags = attr(r.attrs, a::SET_FLAGS).and_then(be32).unwrap_or(0);
        let id = (flags & NFT_SET_ANONYMOUS != 0).then(|| {
            let id = anonymous.len() as u32 + 1;
            anonymous.insert(name.clone(), id);
            id
        });
        let keep = match id {
            Some(id) => anonymous_set(&keep, id),
            None => keep,
        };
        saved.objects.push((msg::NFT_MSG_NEWSET, keep));
        for el in elems {
            // A dump ends with a message without elements.
            if let Some(r) = received(el)
                .filter(|r| attr(r.attrs, a::SETELEM_ELEMENTS).is_some_and(|e| !e.is_empty()))
            {
                let elems = match id {
                    Some(id) => anonymous_elements(r.attrs, id),
                    None => r.attrs.to_vec(),
                };
                saved.objects.push((msg::NFT_MSG_NEWSETELEM, elems));
            }
        }
    }
    for r in &d.rules {
        if let Some(r) = received(r) {
            let keep = without(
                r.attrs,
                &[a::RULE_HANDLE, a::RULE_POSITION, a::RULE_PAD, a::RULE_ID],
            );
            saved
                .objects
                .push((msg::NFT_MSG_NEWRULE, rule_with_set_ids(&keep, &anonymous)));
        }
    }
    saved
}

/// Reads `inet TABLE` whole, to put it back later; `None` if there is no such table.
pub fn save(sock: &mut NfSocket, table: &str) -> Result<Option<Saved>, NetlinkError> {
    let mut m = get(msg::NFT_MSG_GETTABLE, family::NFPROTO_INET);
    m.put_str(a::TABLE_NAME, table);
    let Some(t) = sock.get(&m)? else {
        return Ok(None);
    };
    let mut d = TableDump {
        table: t,
        chains: chains(sock, Some(table))?,
        ..TableDump::default()
    };
    let mut m = get(msg::NFT_MSG_GETSET, family::NFPROTO_INET);
    m.put_str(a::SET_TABLE, table);
    for s in sock.dump(&m)? {
        let Some(r) = received(&s) else { continue };
        let name = attr(r.attrs, a::SET_NAME).map(text).unwrap_or_default();
        let mut e = get(msg::NFT_MSG_GETSETELEM, family::NFPROTO_INET);
        e.put_str(a::SETELEM_TABLE, table);
        e.put_str(a::SETELEM_SET, &name);
        let elems = sock.dump(&e)?;
        d.sets.push((s, elems));
    }
    d.rules = rules_of(sock, table)?;
    Ok(Some(decode_saved(table, &d)))
}

impl Saved {
    /// The transaction that replaces the table with what was saved.
    pub fn restore(&self) -> Vec<Msg> {
        let mut out = super::compile::delete_table(&self.table);
        for (kind, attrs_) in &self.objects {
            let extra = match *kind {
                msg::NFT_MSG_NEWRULE => NLM_F_CREATE | NLM_F_APPEND,
                msg::NFT_MSG_NEWTABLE => 0,
                _ => NLM_F_CREATE,
            };
            out.push(Msg::with_attrs(
                nft_type(*kind),
                NLM_F_REQUEST | extra,
                family::NFPROTO_INET,
                attrs_,
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::super::wire::attrs;
    use super::*;

    #[test]
    fn a_rule_comment_is_found_in_its_user_data() {
        let mut u = vec![0u8, 3, b'h', b'i', 0];
        assert_eq!(comment(&u).as_deref(), Some("hi"));
        u.splice(0..0, [1u8, 1, 9]);
        assert_eq!(comment(&u).as_deref(), Some("hi"));
        assert_eq!(comment(&[0, 9, b'x']), None);
    }

    #[test]
    fn without_drops_only_the_named_attributes_and_keeps_nesting() {
        let mut m = Msg::new(0, 0, 0, 0);
        m.put_str(1, "t");
        m.put_u32(2, 7);
        let n = m.begin(4);
        m.put_u32(1, 1);
        m.end(n);
        let all = m.attrs().to_vec();
        let kept = without(&all, &[2]);
        let kinds: Vec<u16> = attrs(&kept).map(|(k, _)| k).collect();
        assert_eq!(kinds, [1, 4]);
        let hook = attr(&kept, 4).unwrap();
        assert_eq!(be32(attr(hook, 1).unwrap()), Some(1));
        // The nested flag is still on the copied header.
        assert_ne!(
            u16::from_ne_bytes([kept[10], kept[11]]) & super::super::wire::NLA_F_NESTED,
            0
        );
    }
}
