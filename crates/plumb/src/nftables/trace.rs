//! nf_tables trace events (`NFT_MSG_TRACE`, multicast group `NFNLGRP_NFTRACE`): for a packet
//! marked `meta nftrace set 1`, the kernel reports every rule, chain policy and return it
//! meets, with the verdict and the packet's headers. `plumb trace` listens to them; this file
//! decodes one event.

use super::wire::{attr, be32, be64, msg, nft_type, received, text};

/// `NFNLGRP_NFTRACE`: the multicast group of trace events.
pub const NFNLGRP_NFTRACE: u32 = 9;

/// `enum nft_trace_attributes`.
mod a {
    pub const TABLE: u16 = 1;
    pub const CHAIN: u16 = 2;
    pub const RULE_HANDLE: u16 = 3;
    pub const TYPE: u16 = 4;
    pub const VERDICT: u16 = 5;
    pub const ID: u16 = 6;
    pub const LL_HEADER: u16 = 7;
    pub const NETWORK_HEADER: u16 = 8;
    pub const TRANSPORT_HEADER: u16 = 9;
    pub const IIF: u16 = 10;
    pub const OIF: u16 = 12;
    pub const MARK: u16 = 14;
    pub const NFPROTO: u16 = 15;
    pub const POLICY: u16 = 16;
    pub const VERDICT_CODE: u16 = 1;
    pub const VERDICT_CHAIN: u16 = 2;
}

/// `enum nft_trace_types`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TraceType {
    /// `NFT_TRACETYPE_POLICY`: the chain's policy decided.
    Policy,
    /// `NFT_TRACETYPE_RETURN`: the end of a chain was reached (back to the caller).
    Return,
    /// `NFT_TRACETYPE_RULE`: a rule matched.
    Rule,
    /// Another value.
    Other(u32),
}

/// A verdict, as the kernel encodes it (`NF_DROP`, `NF_ACCEPT`, `NFT_CONTINUE`, `NFT_JUMP`…).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Verdict {
    /// The code.
    pub code: i32,
    /// The chain of a jump or goto.
    pub chain: Option<String>,
}

impl Verdict {
    /// `accept`, `drop`, `continue`, `jump CHAIN`…
    pub fn name(&self) -> String {
        match (self.code, &self.chain) {
            (0, _) => "drop".into(),
            (1, _) => "accept".into(),
            (-1, _) => "continue".into(),
            (-2, _) => "break".into(),
            (-3, Some(c)) => format!("jump {c}"),
            (-4, Some(c)) => format!("goto {c}"),
            (-5, _) => "return".into(),
            (c, _) => format!("verdict {c}"),
        }
    }
}

/// One trace event.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TraceEvent {
    /// The packet's trace id (the same for every event of one packet).
    pub id: u32,
    /// The family of the table (`NFPROTO_*`).
    pub family: u8,
    /// The table.
    pub table: String,
    /// The chain.
    pub chain: String,
    /// What happened.
    pub kind: TraceType,
    /// The handle of the rule that matched (for [`TraceType::Rule`]); a rule event without a
    /// handle says the packet went past the chain's last rule (the policy or a return follows).
    pub rule_handle: Option<u64>,
    /// The verdict (a rule's, or the policy's).
    pub verdict: Option<Verdict>,
    /// The chain's policy, for [`TraceType::Policy`].
    pub policy: Option<u32>,
    /// The protocol family of the packet (`NFPROTO_IPV4`, …).
    pub nfproto: Option<u32>,
    /// Input and output interface indexes.
    pub iif: Option<u32>,
    /// Output interface index.
    pub oif: Option<u32>,
    /// The packet mark.
    pub mark: Option<u32>,
    /// The link-layer header's bytes (when the hook has one). The kernel sends the packet's
    /// headers with the first event of each packet only; later events have them empty.
    pub ll_header: Vec<u8>,
    /// The network header's bytes.
    pub network_header: Vec<u8>,
    /// The transport header's bytes.
    pub transport_header: Vec<u8>,
}

/// Decodes one received message; `None` if it is not a trace event.
pub fn decode(bytes: &[u8]) -> Option<TraceEvent> {
    let r = received(bytes)?;
    if r.kind != nft_type(msg::NFT_MSG_TRACE) {
        return None;
    }
    let s = |k| attr(r.attrs, k).map(text).unwrap_or_default();
    let u = |k| attr(r.attrs, k).and_then(be32);
    let bytes_of = |k| attr(r.attrs, k).map(<[u8]>::to_vec).unwrap_or_default();
    let kind = match u(a::TYPE) {
        Some(1) => TraceType::Policy,
        Some(2) => TraceType::Return,
        Some(3) => TraceType::Rule,
        other => TraceType::Other(other.unwrap_or(0)),
    };
    let verdict = attr(r.attrs, a::VERDICT).map(|v| Verdict {
        code: attr(v, a::VERDICT_CODE)
            .and_then(be32)
            .map_or(0, |c| c as i32),
        chain: attr(v, a::VERDICT_CHAIN).map(text),
    });
    Some(TraceEvent {
        id: u(a::ID).unwrap_or(0),
        family: r.family,
        table: s(a::TABLE),
        chain: s(a::CHAIN),
        kind,
        rule_handle: attr(r.attrs, a::RULE_HANDLE).and_then(be64),
        // A policy event carries the policy (NF_ACCEPT or NF_DROP), not a verdict: it is one.
        verdict: verdict.or_else(|| {
            u(a::POLICY).map(|p| Verdict {
                code: p as i32,
                chain: None,
            })
        }),
        policy: u(a::POLICY),
        nfproto: u(a::NFPROTO),
        iif: u(a::IIF),
        oif: u(a::OIF),
        mark: u(a::MARK),
        ll_header: bytes_of(a::LL_HEADER),
        network_header: bytes_of(a::NETWORK_HEADER),
        transport_header: bytes_of(a::TRANSPORT_HEADER),
    })
}
