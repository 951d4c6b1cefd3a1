//! Faults injected by tests. This module exists only with the `fault-injection` cargo feature,
//! which the test suite enables and release builds never do: a release binary contains no
//! hook and reads no environment variable for it.
//!
//! Faults are read once from `PLUMB_FAULT`, several separated by commas (for example
//! `step=5,request=del-link:1`: a build step fails, then the rollback's first delete is refused):
//!
//! - `request=N`, `request=KIND:N`: the N-th netlink request (of that kind) that plumb sends is
//!   made one the kernel refuses (its message type is replaced by one past `RTM_MAX`, answered
//!   `EOPNOTSUPP` with no side effect), wherever it falls in a pipelined batch. Kinds:
//!   `create-link`, `tag` (a link change setting an alias), `set-link`, `del-link`, `add-addr`,
//!   `del-addr`, `add-route`, `del-route`, and `nft-rule` (an nf_tables rule in a
//!   transaction: its type is made one nfnetlink does not know, which refuses the whole
//!   transaction with `EINVAL`);
//! - `step=N`: the N-th step of a plan fails before the backend sees it (a failure at a batch
//!   boundary);
//! - `stall=N`: after N steps, print `plumb: stalled` on stderr and sleep, holding the lab's
//!   lock, for a test to SIGKILL the process at that instant;
//! - `stall-ns=N`: stall after the N-th namespace's placeholder file exists in `/run/netns`, the
//!   instant before it becomes a namespace.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Fault {
    Request { kind: Option<String>, n: usize },
    Step(usize),
    Stall(usize),
    StallNs(usize),
}

fn faults() -> &'static [Fault] {
    static F: OnceLock<Vec<Fault>> = OnceLock::new();
    F.get_or_init(|| {
        std::env::var("PLUMB_FAULT")
            .map(|v| v.split(',').filter_map(parse).collect())
            .unwrap_or_default()
    })
}

fn parse(spec: &str) -> Option<Fault> {
    let (what, arg) = spec.split_once('=')?;
    let num = |s: &str| s.parse::<usize>().ok().filter(|n| *n > 0);
    Some(match what {
        "request" => match arg.split_once(':') {
            Some((k, n)) => Fault::Request {
                kind: Some(k.to_string()),
                n: num(n)?,
            },
            None => Fault::Request {
                kind: None,
                n: num(arg)?,
            },
        },
        "step" => Fault::Step(num(arg)?),
        "stall" => Fault::Stall(num(arg)?),
        "stall-ns" => Fault::StallNs(num(arg)?),
        _ => return None,
    })
}

/// `RTM_*` message types from `include/uapi/linux/rtnetlink.h`.
const RTM_NEWLINK: u16 = 16;
const RTM_DELLINK: u16 = 17;
const RTM_NEWADDR: u16 = 20;
const RTM_DELADDR: u16 = 21;
const RTM_NEWROUTE: u16 = 24;
const RTM_DELROUTE: u16 = 25;
/// `IFLA_IFALIAS`.
const IFLA_IFALIAS: u16 = 20;
/// `NLM_F_CREATE`.
const NLM_F_CREATE: u16 = 0x400;
/// A message type past `RTM_MAX`: rtnetlink answers `EOPNOTSUPP` and does nothing.
const REFUSED_TYPE: u16 = 0x3ff;

fn kind_of(msg: &[u8]) -> &'static str {
    let ty = u16::from_ne_bytes([msg[4], msg[5]]);
    let flags = u16::from_ne_bytes([msg[6], msg[7]]);
    match ty {
        RTM_NEWLINK if flags & NLM_F_CREATE != 0 => "create-link",
        RTM_NEWLINK if has_alias(msg) => "tag",
        RTM_NEWLINK => "set-link",
        RTM_DELLINK => "del-link",
        RTM_NEWADDR => "add-addr",
        RTM_DELADDR => "del-addr",
        RTM_NEWROUTE => "add-route",
        RTM_DELROUTE => "del-route",
        _ => "other",
    }
}

/// Does this `RTM_NEWLINK` carry an `IFLA_IFALIAS` (top-level attributes after the 16-byte
/// header and the 16-byte `ifinfomsg`)?
fn has_alias(msg: &[u8]) -> bool {
    let mut off = 32;
    while off + 4 <= msg.len() {
        let len = u16::from_ne_bytes([msg[off], msg[off + 1]]) as usize;
        let ty = u16::from_ne_bytes([msg[off + 2], msg[off + 3]]) & 0x3fff;
        if ty == IFLA_IFALIAS {
            return true;
        }
        if len < 4 {
            return false;
        }
        off += (len + 3) & !3;
    }
    false
}

/// Called for every netlink request as it is encoded: makes the chosen one a refused one.
pub(crate) fn on_request(msg: &mut [u8]) {
    static SEEN: AtomicUsize = AtomicUsize::new(0);
    let seen = SEEN.fetch_add(1, Ordering::SeqCst) + 1;
    let kind = kind_of(msg);
    static SEEN_KIND: OnceLock<std::sync::Mutex<std::collections::HashMap<&'static str, usize>>> =
        OnceLock::new();
    let of_kind = {
        let mut m = SEEN_KIND
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let c = m.entry(kind).or_insert(0);
        *c += 1;
        *c
    };
    let hit = faults().iter().any(|f| match f {
        Fault::Request { kind: None, n } => seen == *n,
        Fault::Request { kind: Some(k), n } => kind == k && of_kind == *n,
        _ => false,
    });
    if hit {
        msg[4..6].copy_from_slice(&REFUSED_TYPE.to_ne_bytes());
    }
}

/// `NFT_MSG_NEWRULE` as a netlink type (`NFNL_SUBSYS_NFTABLES << 8 | 6`).
const NFT_NEWRULE: u16 = (10 << 8) | 6;
/// An nf_tables message type past `NFT_MSG_MAX`.
const NFT_REFUSED_TYPE: u16 = (10 << 8) | 0xff;

/// Called for every nf_tables message of a transaction as it is encoded.
pub(crate) fn on_nft_message(msg: &mut [u8]) {
    if u16::from_ne_bytes([msg[4], msg[5]]) != NFT_NEWRULE {
        return;
    }
    static SEEN: AtomicUsize = AtomicUsize::new(0);
    let seen = SEEN.fetch_add(1, Ordering::SeqCst) + 1;
    let hit = faults()
        .iter()
        .any(|f| matches!(f, Fault::Request { kind: Some(k), n } if k == "nft-rule" && seen == *n));
    if hit {
        msg[4..6].copy_from_slice(&NFT_REFUSED_TYPE.to_ne_bytes());
    }
}

/// The 1-based number of the step to fail before it runs, if any.
pub(crate) fn failing_step() -> Option<usize> {
    faults().iter().find_map(|f| match f {
        Fault::Step(n) => Some(*n),
        _ => None,
    })
}

/// The step count after which to stall, if any.
pub(crate) fn stall_after() -> Option<usize> {
    faults().iter().find_map(|f| match f {
        Fault::Stall(n) => Some(*n),
        _ => None,
    })
}

/// Stalls forever (until killed), saying so on stderr.
pub(crate) fn stall() -> ! {
    eprintln!("plumb: stalled");
    loop {
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
}

/// Called by the namespace worker once a placeholder file exists.
pub(crate) fn on_namespace_placeholder() {
    static SEEN: AtomicUsize = AtomicUsize::new(0);
    let seen = SEEN.fetch_add(1, Ordering::SeqCst) + 1;
    if faults()
        .iter()
        .any(|f| matches!(f, Fault::StallNs(n) if *n == seen))
    {
        stall();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fault_spec_parses_every_form_and_refuses_nonsense() {
        assert_eq!(
            parse("request=3"),
            Some(Fault::Request { kind: None, n: 3 })
        );
        assert_eq!(
            parse("request=tag:2"),
            Some(Fault::Request {
                kind: Some("tag".into()),
                n: 2
            })
        );
        assert_eq!(parse("step=1"), Some(Fault::Step(1)));
        assert_eq!(parse("stall=40"), Some(Fault::Stall(40)));
        assert_eq!(parse("stall-ns=7"), Some(Fault::StallNs(7)));
        assert_eq!(parse("step=0"), None);
        assert_eq!(parse("nonsense"), None);
    }
}
