//! The reads doctor makes besides the snapshot: a few sysctls, neighbour and conntrack counts,
//! nftables tables and forward chains, and which named namespaces hold a process. All of it is
//! read inside each namespace by one short-lived thread that visits them in turn (through
//! `/proc/sys`, which the kernel resolves by the reading thread's namespace, and netlink
//! sockets opened there); never through `/sys` of another namespace, never by a process.

use std::collections::{BTreeMap, BTreeSet};
use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt;

use netlink_packet_route::neighbour::{NeighbourMessage, NeighbourState};
use netlink_packet_route::neighbour_table::{NeighbourTableAttribute, NeighbourTableMessage};
use netlink_packet_route::RouteNetlinkMessage;

use super::{Extra, LimitSource, NeighTable, NsExtra};
use crate::inspect::discover::{Discovery, Holder};
use crate::inspect::{LinkKind, NsState, Snapshot};
use crate::model::names::NsName;
use crate::netlink::{NetlinkError, NlSocket};
use crate::netns::{self, NetnsError, Registry};
use crate::nftables::wire::{self, family, msg, nft_type, Msg};
use crate::nftables::{decode_forward_drops, NfSocket};

/// Doctor could not read what it needs.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DoctorError {
    /// The namespaces could not be opened or entered.
    #[error(transparent)]
    Netns(#[from] NetnsError),
}

/// The kernel's defaults for `gc_thresh1/2/3` (`net/ipv4/arp.c`, `net/ipv6/ndisc.c`).
pub const DEFAULT_GC_THRESH: (u64, u64, u64) = (128, 512, 1024);

/// The sysctls of a namespace that another namespace routes through (forwarding, reverse-path
/// filtering; per-interface `rp_filter` comes on top).
const ROUTER_KEYS: &[&str] = &[
    "net.ipv4.ip_forward",
    "net.ipv6.conf.all.forwarding",
    "net.ipv4.conf.all.rp_filter",
    "net.ipv4.conf.default.rp_filter",
];
/// The sysctls of a namespace with a bridge that has ports.
const BRIDGE_KEYS: &[&str] = &[
    "net.bridge.bridge-nf-call-iptables",
    "net.bridge.bridge-nf-call-ip6tables",
];
/// Connection tracking, when ctnetlink does not answer.
const CONNTRACK_KEYS: &[&str] = &[
    "net.netfilter.nf_conntrack_count",
    "net.netfilter.nf_conntrack_max",
];

/// The `rp_filter` key of interface `name` (`None` for names `/proc/sys` cannot spell).
pub(crate) fn rp_key(name: &str) -> Option<String> {
    (!name.contains('.') && !name.contains('/')).then(|| format!("net.ipv4.conf.{name}.rp_filter"))
}

/// What to read in one namespace: each `/proc/sys/net` subtree costs about half a millisecond
/// the first time a namespace's thread looks into it, so only what a check will use is read.
#[derive(Debug, Clone, Copy, Default)]
struct Needs {
    /// Another namespace routes through this one.
    router: bool,
    /// A bridge here has ports.
    bridge: bool,
}

fn needs(state: &NsState, gateways: &BTreeSet<std::net::IpAddr>) -> Needs {
    Needs {
        router: state
            .addrs
            .iter()
            .any(|a| gateways.contains(&a.addr.addr())),
        bridge: state.links.iter().any(|b| {
            b.kind == LinkKind::Bridge && state.links.iter().any(|l| l.master == Some(b.index))
        }),
    }
}

/// Reads everything of one namespace, from inside it (the calling thread's namespace).
fn read_here(state: &NsState, need: Needs, own_tables: &[String]) -> NsExtra {
    let mut x = NsExtra::default();
    let mut keys: Vec<String> = Vec::new();
    if need.router {
        keys.extend(ROUTER_KEYS.iter().map(|k| k.to_string()));
        keys.extend(
            state
                .links
                .iter()
                .filter(|l| l.kind != LinkKind::Loopback)
                .filter_map(|l| rp_key(&l.name)),
        );
    }
    if need.bridge {
        keys.extend(BRIDGE_KEYS.iter().map(|k| k.to_string()));
    }
    // Best effort, like the sysctls: a namespace whose neighbours cannot be listed counts 0.
    if let Ok(mut sock) = NlSocket::open() {
        x.neighbours = count_neighbours(&mut sock).unwrap_or(0);
    }
    if let Ok(mut nf) = NfSocket::open() {
        x.nft_tables = tables(&mut nf).unwrap_or_default();
        x.forward_drops = foreign_forward_drops(&mut nf, own_tables).unwrap_or_default();
        match conntrack_stats(&mut nf) {
            Some((count, max)) => {
                x.sysctls
                    .insert(CONNTRACK_KEYS[0].into(), count.to_string());
                x.sysctls.insert(CONNTRACK_KEYS[1].into(), max.to_string());
            }
            None => keys.extend(CONNTRACK_KEYS.iter().map(|k| k.to_string())),
        }
    }
    for k in keys {
        if let Ok(v) = netns::read_sysctl(&k) {
            x.sysctls.insert(k, v);
        }
    }
    x
}

/// `NFNL_SUBSYS_CTNETLINK` and `IPCTNL_MSG_CT_GET_STATS` (`linux/netfilter/nfnetlink.h`,
/// `linux/netfilter/nfnetlink_conntrack.h`).
const NFNL_SUBSYS_CTNETLINK: u16 = 1;
const IPCTNL_MSG_CT_GET_STATS: u16 = 5;
/// `CTA_STATS_GLOBAL_ENTRIES`, `CTA_STATS_GLOBAL_MAX_ENTRIES`.
const CTA_STATS_GLOBAL_ENTRIES: u16 = 1;
const CTA_STATS_GLOBAL_MAX_ENTRIES: u16 = 2;

/// This namespace's conntrack entries and the maximum, over ctnetlink: equivalent to
/// `conntrack -C` and `sysctl net.netfilter.nf_conntrack_max`.
fn conntrack_stats(nf: &mut NfSocket) -> Option<(u64, u64)> {
    let m = Msg::new(
        (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_GET_STATS,
        1,
        family::NFPROTO_UNSPEC,
        0,
    );
    let answer = nf.get(&m).ok()??;
    let r = wire::received(&answer)?;
    let count = wire::attr(r.attrs, CTA_STATS_GLOBAL_ENTRIES).and_then(wire::be32)?;
    let max = wire::attr(r.attrs, CTA_STATS_GLOBAL_MAX_ENTRIES).and_then(wire::be32)?;
    Some((u64::from(count), u64::from(max)))
}

/// Neighbour entries that count against `gc_thresh3`: all but permanent and NOARP ones.
/// Equivalent to `ip neigh show | grep -vc PERMANENT`.
fn count_neighbours(sock: &mut NlSocket) -> Result<u64, NetlinkError> {
    let counted = sock.dump_map(
        RouteNetlinkMessage::GetNeighbour(NeighbourMessage::default()),
        |m| match m {
            RouteNetlinkMessage::NewNeighbour(n) => Some(!matches!(
                n.header.state,
                NeighbourState::Permanent | NeighbourState::Noarp
            )),
            _ => None,
        },
    )?;
    Ok(counted.into_iter().filter(|&c| c).count() as u64)
}

/// Every nftables table, as `FAMILY NAME`. Equivalent to `nft list tables`.
fn tables(nf: &mut NfSocket) -> Result<Vec<String>, NetlinkError> {
    let m = Msg::new(
        nft_type(msg::NFT_MSG_GETTABLE),
        1, // NLM_F_REQUEST
        family::NFPROTO_UNSPEC,
        0,
    );
    Ok(nf
        .dump(&m)?
        .iter()
        .filter_map(|b| wire::received(b))
        .map(|r| {
            let name = wire::attr(r.attrs, 1).map(wire::text).unwrap_or_default(); // NFTA_TABLE_NAME
            format!("{} {name}", family_name(r.family))
        })
        .collect())
}

/// The family as `nft` spells it.
pub(crate) fn family_name(f: u8) -> &'static str {
    match f {
        1 => "inet",
        2 => "ip",
        3 => "arp",
        5 => "netdev",
        7 => "bridge",
        10 => "ip6",
        _ => "?",
    }
}

/// Base chains on the forward hook with a drop policy, of tables not plumb's.
fn foreign_forward_drops(nf: &mut NfSocket, own: &[String]) -> Result<Vec<String>, NetlinkError> {
    let m = Msg::new(
        nft_type(msg::NFT_MSG_GETCHAIN),
        1,
        family::NFPROTO_UNSPEC,
        0,
    );
    let chains = nf.dump(&m)?;
    // decode_forward_drops leaves out one table; plumb's own (`plumb-*`) are all left out here.
    Ok(decode_forward_drops(&chains, "")
        .into_iter()
        .filter(|c| {
            let table = c
                .split_once(' ')
                .map(|(_, t)| t.split('/').next().unwrap_or(""))
                .unwrap_or("");
            !own.iter().any(|o| o == table) && !table.starts_with("plumb-")
        })
        .collect())
}

/// The neighbour tables' limits and use. Limits: from pid 1's namespace when a thread may
/// enter it, else from the neighbour-table dump, else the defaults; use: from the dump.
fn neighbour_tables() -> Vec<NeighTable> {
    let root = root_thresholds();
    let dumped = NlSocket::open()
        .ok()
        .and_then(|mut s| dump_tables(&mut s).ok())
        .unwrap_or_default();
    ["ipv4", "ipv6"]
        .into_iter()
        .map(|fam| {
            let d = dumped.iter().find(|t| t.family == fam);
            let (t1, t2, t3, source) = match (root.as_ref().and_then(|r| r.get(fam)), d) {
                (Some(&(a, b, c)), _) => (a, b, c, LimitSource::RootNamespace),
                (None, Some(d)) => (
                    d.gc_thresh1,
                    d.gc_thresh2,
                    d.gc_thresh3,
                    LimitSource::NeighbourTableDump,
                ),
                (None, None) => {
                    let (a, b, c) = DEFAULT_GC_THRESH;
                    (a, b, c, LimitSource::AssumedDefaults)
                }
            };
            NeighTable {
                family: fam,
                gc_thresh1: t1,
                gc_thresh2: t2,
                gc_thresh3: t3,
                source,
                entries: d.and_then(|d| d.entries),
                table_fulls: d.and_then(|d| d.table_fulls),
            }
        })
        .collect()
}

/// `gc_thresh1/2/3` of both families from `/proc/sys` of pid 1's network namespace, read by
/// a thread that enters it and ends; `None` when it may not (in a user namespace, say).
fn root_thresholds() -> Option<BTreeMap<&'static str, (u64, u64, u64)>> {
    let fd: OwnedFd = std::fs::File::open("/proc/1/ns/net").ok()?.into();
    let read = || -> Option<BTreeMap<&'static str, (u64, u64, u64)>> {
        crate::sys::setns_net(&fd).ok()?;
        let mut out = BTreeMap::new();
        for (fam, dir) in [("ipv4", "ipv4"), ("ipv6", "ipv6")] {
            let get = |n: u8| -> Option<u64> {
                netns::read_sysctl(&format!("net.{dir}.neigh.default.gc_thresh{n}"))
                    .ok()?
                    .parse()
                    .ok()
            };
            out.insert(fam, (get(1)?, get(2)?, get(3)?));
        }
        Some(out)
    };
    std::thread::scope(|s| s.spawn(read).join().ok().flatten())
}

/// Equivalent to `ip -s ntable show`: the tables' limits, entries and overflow counts.
fn dump_tables(sock: &mut NlSocket) -> Result<Vec<NeighTable>, NetlinkError> {
    sock.dump_map(
        RouteNetlinkMessage::GetNeighbourTable(NeighbourTableMessage::default()),
        |m| {
            let RouteNetlinkMessage::NewNeighbourTable(t) = m else {
                return None;
            };
            let mut out = NeighTable {
                family: "",
                gc_thresh1: 0,
                gc_thresh2: 0,
                gc_thresh3: 0,
                source: LimitSource::NeighbourTableDump,
                entries: None,
                table_fulls: None,
            };
            let mut has_limits = false;
            for a in &t.attributes {
                match a {
                    NeighbourTableAttribute::Name(n) => {
                        out.family = match n.as_str() {
                            "arp_cache" => "ipv4",
                            "ndisc_cache" => "ipv6",
                            _ => "",
                        }
                    }
                    NeighbourTableAttribute::Threshold1(v) => out.gc_thresh1 = u64::from(*v),
                    NeighbourTableAttribute::Threshold2(v) => out.gc_thresh2 = u64::from(*v),
                    NeighbourTableAttribute::Threshold3(v) => {
                        out.gc_thresh3 = u64::from(*v);
                        has_limits = true;
                    }
                    NeighbourTableAttribute::Config(c) => out.entries = Some(u64::from(c.entries)),
                    NeighbourTableAttribute::Stats(s) => out.table_fulls = Some(s.table_fulls),
                    _ => {}
                }
            }
            // Per-device parameter messages carry no limits.
            (has_limits && !out.family.is_empty()).then_some(out)
        },
    )
}

/// The namespaces something other than their name in `/run/netns` holds alive: a process or
/// one of its threads, an open descriptor, another bind mount (inspect's discovery, which sees
/// every holder; a namespace held only so is in use, not leaked).
/// The namespaces (by inode) something other than a name holds: a process, a thread, an open
/// descriptor, a bind mount elsewhere.
fn held_otherwise(found: &Discovery) -> BTreeSet<u64> {
    found
        .namespaces
        .iter()
        .filter(|f| f.holders.iter().any(|h| !matches!(h, Holder::Named { .. })))
        .map(|f| f.id)
        .collect()
}

/// Reads what doctor needs besides `snap`: in the host and in each readable namespace, named
/// ones through `reg`, the others (added by [`crate::inspect::add_unnamed`]) through `paths`.
/// `found` is the machine's namespaces as discovery saw them (what holds each).
pub fn gather(
    snap: &Snapshot,
    reg: &Registry,
    paths: &BTreeMap<NsName, std::path::PathBuf>,
    found: &Discovery,
) -> Result<Extra, DoctorError> {
    let own: Vec<String> = snap
        .labs()
        .keys()
        .map(|l| crate::firewall::table_name(l))
        .collect();
    // Gateways: the addresses other namespaces route through.
    let gateways: BTreeSet<std::net::IpAddr> = std::iter::once(&snap.host)
        .chain(
            snap.namespaces
                .values()
                .filter_map(|n| n.state.as_ref().ok()),
        )
        .flat_map(|st| st.routes.iter().filter_map(|r| r.via))
        .collect();
    let host = std::thread::scope(|s| {
        s.spawn(|| read_here(&snap.host, needs(&snap.host, &gateways), &own))
            .join()
            .map_err(|_| NetnsError::Worker)
    })?;
    let with_procs = held_otherwise(found);
    let mut names = Vec::new();
    let mut fds = Vec::new();
    for (name, ns) in &snap.namespaces {
        let Ok(state) = &ns.state else { continue };
        // A namespace that vanished since the snapshot is left out.
        let fd = match paths.get(name) {
            Some(p) => std::fs::File::open(p).map(OwnedFd::from).ok(),
            None => reg.open(name).ok(),
        };
        if let Some(fd) = fd {
            names.push((name.clone(), state));
            fds.push(fd);
        }
    }
    let refs: Vec<&OwnedFd> = fds.iter().collect();
    let read = netns::run_in_each(&refs, |i| {
        read_here(names[i].1, needs(names[i].1, &gateways), &own)
    })?;
    let mut namespaces = BTreeMap::new();
    for ((name, _), r) in names.into_iter().zip(read) {
        let Ok(mut x) = r else { continue };
        // One found by discovery is held by something other than a name, by definition.
        x.has_process = paths.contains_key(&name)
            || std::fs::metadata(reg.path(&name))
                .map(|m| with_procs.contains(&m.ino()))
                .unwrap_or(false);
        namespaces.insert(name, x);
    }
    Ok(Extra {
        host,
        namespaces,
        neigh: neighbour_tables(),
    })
}
