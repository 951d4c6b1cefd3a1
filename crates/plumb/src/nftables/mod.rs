//! nf_tables over netlink, without a process: plumb's own tables (`inet plumb-LAB`) are
//! written as one transaction per namespace and read back through dumps, on a
//! `NETLINK_NETFILTER` socket opened inside the namespace. plumb writes only its own tables and
//! never flushes or edits anyone else's rules.
//!
//! Files: `wire` (nfnetlink framing and attributes), `expr` (expressions), `compile` (a
//! [`Table`] as the messages of one transaction, the same `nft` sends for the same rules),
//! `socket` ([`NfSocket`]: transactions and dumps), `read` (listings, the version mark, a
//! table saved for rollback, other tables' forward chains), `trace` (nf_tables trace events).

pub mod build;
mod compile;
pub mod expr;
mod read;
pub mod sets;
mod socket;
pub mod trace;
pub mod wire;

pub use compile::{delete_table, replace_table};
pub use read::{
    decode_forward_drops, decode_listing, decode_saved, decode_version, Saved, TableDump,
};
pub use socket::{batch_bytes, NfSocket, Refused};

use crate::firewall::{Rule, Table};
use crate::netlink::NetlinkError;

/// A firewall operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NftError {
    /// The kernel refused a transaction: nothing of it took effect. `what` names the object
    /// the kernel refused (`rule "allow tcp/80" in chain input`).
    #[error("nf_tables refused to write table inet {table} ({what}): {source}")]
    Refused {
        /// The table.
        table: String,
        /// The refused object.
        what: String,
        /// The kernel's answer, with its errno.
        #[source]
        source: NetlinkError,
    },
    /// Reading a table (or opening the socket) failed.
    #[error("cannot read nf_tables table inet {table}: {source}")]
    Read {
        /// The table (`*` for every table).
        table: String,
        /// Why, with its errno.
        #[source]
        source: NetlinkError,
    },
}

impl NftError {
    /// The errno underneath, if any.
    pub fn errno(&self) -> Option<i32> {
        match self {
            NftError::Refused { source, .. } | NftError::Read { source, .. } => source.errno(),
        }
    }
}

/// What a table holds, as `show` needs it: its chains (with their policies) and each rule's
/// chain and comment.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Listing {
    /// Chains in listing order.
    pub chains: Vec<ChainListing>,
    /// Rules in listing order.
    pub rules: Vec<RuleListing>,
}

/// One chain of a [`Listing`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ChainListing {
    /// Its name.
    pub name: String,
    /// Its hook, for a base chain.
    pub hook: Option<String>,
    /// Its policy (`accept`, `drop`), for a base chain.
    pub policy: Option<String>,
}

/// One rule of a [`Listing`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RuleListing {
    /// Its chain.
    pub chain: String,
    /// Its comment, if it has one.
    pub comment: Option<String>,
}

fn read_err(table: &str) -> impl FnOnce(NetlinkError) -> NftError + '_ {
    move |source| NftError::Read {
        table: table.to_string(),
        source,
    }
}

/// Opens a socket in the calling thread's namespace.
pub fn open(table: &str) -> Result<NfSocket, NftError> {
    NfSocket::open().map_err(read_err(table))
}

/// What the message at `index` of a transaction that writes `t` is, for an error.
fn describe(msgs: &[wire::Msg], index: usize, t: Option<&Table>) -> String {
    let Some(m) = msgs.get(index) else {
        return "the transaction".into();
    };
    let kind = m.kind() & 0xff;
    let name = wire::attr(m.attrs(), 3)
        .or_else(|| wire::attr(m.attrs(), 2))
        .map(wire::text);
    match kind {
        wire::msg::NFT_MSG_NEWTABLE | wire::msg::NFT_MSG_DELTABLE => "the table".into(),
        wire::msg::NFT_MSG_NEWCHAIN => format!("chain {}", name.unwrap_or_default()),
        wire::msg::NFT_MSG_NEWSET | wire::msg::NFT_MSG_NEWSETELEM => "a set".into(),
        wire::msg::NFT_MSG_NEWRULE => {
            let chain = wire::attr(m.attrs(), 2).map(wire::text).unwrap_or_default();
            // The rule's description is its comment; the fixed rules of an input chain have
            // none, so count them instead.
            let text = t.and_then(|_| comment_of(m));
            match text {
                Some(c) => format!("rule \"{c}\" in chain {chain}"),
                None => format!("a rule of chain {chain}"),
            }
        }
        _ => format!("message type {kind}"),
    }
}

fn comment_of(m: &wire::Msg) -> Option<String> {
    let u = wire::attr(m.attrs(), 7)?;
    (u.len() > 2 && u[0] == 0).then(|| wire::text(&u[2..]))
}

fn run(
    sock: &mut NfSocket,
    table: &str,
    msgs: Vec<wire::Msg>,
    t: Option<&Table>,
) -> Result<(), NftError> {
    let copy = msgs.clone();
    sock.transact(msgs).map_err(|r| NftError::Refused {
        table: table.to_string(),
        what: describe(&copy, r.index, t),
        source: r.error,
    })
}

/// Replaces table `t` with exactly its contents, in one transaction.
pub fn replace(sock: &mut NfSocket, t: &Table) -> Result<(), NftError> {
    run(sock, &t.name, replace_table(t), Some(t))
}

/// Deletes table `inet NAME` (no error if there is none).
pub fn delete(sock: &mut NfSocket, name: &str) -> Result<(), NftError> {
    run(sock, name, delete_table(name), None)
}

/// Puts back a table as [`save`] read it.
pub fn restore(sock: &mut NfSocket, saved: &Saved) -> Result<(), NftError> {
    run(sock, &saved.table, saved.restore(), None)
}

/// Reads table `inet NAME` whole, to put it back with [`restore`]; `None` if there is none.
pub fn save(sock: &mut NfSocket, name: &str) -> Result<Option<Saved>, NftError> {
    read::save(sock, name).map_err(read_err(name))
}

/// Table `inet NAME`'s chains and rule comments; `None` if there is no such table.
pub fn listing_in(sock: &mut NfSocket, name: &str) -> Result<Option<Listing>, NftError> {
    read::listing(sock, name).map_err(read_err(name))
}

/// [`listing_in`] the calling thread's namespace.
pub fn listing(name: &str) -> Result<Option<Listing>, NftError> {
    listing_in(&mut open(name)?, name)
}

/// The version mark of table `inet NAME` (its `v-VERSION` chain) in the calling thread's
/// namespace: `None` when the table does not exist, `Some("")` for a table without a mark.
pub fn current_version(name: &str) -> Result<Option<String>, NftError> {
    read::version(&mut open(name)?, name).map_err(read_err(name))
}

/// Foreign base chains with a `drop` policy on the forward hook: they would drop a lab's
/// forwarded traffic whatever plumb's table accepts. Returns "family table/chain" for each.
/// Best effort: a warning, so a failure to read is no warning.
pub fn foreign_forward_drops(own_table: &str) -> Vec<String> {
    NfSocket::open()
        .and_then(|mut s| read::forward_drops(&mut s, own_table))
        .unwrap_or_default()
}

/// The rules of a listing that carry plumb's descriptions, parsed.
pub fn described_rules(l: &Listing) -> impl Iterator<Item = (&RuleListing, Rule)> {
    l.rules
        .iter()
        .filter_map(|r| Some((r, r.comment.as_deref()?.parse::<Rule>().ok()?)))
}
