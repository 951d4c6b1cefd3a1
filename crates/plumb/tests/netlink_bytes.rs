//! plumb's netlink messages against real bytes (STYLE.md, Tests, point 1).
//!
//! - Every request plumb sends, built with its public builders and encoded as `NlSocket` does,
//!   must equal a stored fixture of plumb's own bytes (`fixtures/netlink/sent/*.plumb.hex`: any
//!   change of encoding shows here), and must mean what iproute2's request for the same command
//!   means (`*.ip.hex`, captured with strace). Both are decoded with netlink-packet-route and
//!   compared field by field; every attribute where the two legitimately differ is listed, with
//!   why, next to the comparison.
//! - The same for the reads plumb sends (the link dump, single-object gets, namespace ids,
//!   gets targeted at another namespace by nsid): their fixtures are plumb's own bytes as its
//!   read functions sent them (recorded with strace, since the functions need a socket and
//!   build their messages with private helpers), compared with iproute2's where `ip` sends an
//!   equivalent.
//! - Every kind of kernel reply plumb parses (dumps of links, addresses and routes; answers to
//!   gets, namespace ids; acks and refusals) is decoded from bytes captured in a sandbox
//!   (`fixtures/netlink/dumps`, `answers`, `acks`) through plumb's decoders, every field
//!   asserted, then re-emitted and parsed again.
//!
//! Nothing here touches the kernel: `fixtures/netlink/capture/README.md` says how the bytes
//! were captured and how to capture them again.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;

use ipnet::IpNet;
use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST,
};
use netlink_packet_route::address::AddressAttribute;
use netlink_packet_route::link::{
    AfSpecInet6, AfSpecUnspec, InfoData, InfoPortData, InfoVeth, LinkAttribute, LinkExtentMask,
    LinkHeader, LinkInfo, LinkMessage,
};
use netlink_packet_route::nsid::{NsidAttribute, NsidMessage};
use netlink_packet_route::route::{RouteAttribute, RouteMessage, RouteType};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use plumb::model::MacAddr;
use plumb::netlink::addr::{self, AddrState};
use plumb::netlink::link::{self, BridgeSpec, LinkChange, LinkKind, LinkState, Target, VethEnd};
use plumb::netlink::route::{self, RouteSpec, RouteState};
use plumb::netlink::{DumpReader, NetlinkError, Request, NLMSG_DONE, NLMSG_ERROR};

// ---------------------------------------------------------------------------------------------
// Fixtures

/// Sequence number of plumb's first request, as a fresh `NlSocket` numbers it.
const SEQ: u32 = 1;
/// Namespace fds of the fixtures: the capture program had /run/netns/a and /run/netns/b open
/// as fds 7 and 8.
const NSA: i32 = 7;
const NSB: i32 = 8;

fn fixture_path(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/netlink")
        .join(rel)
}

/// The blocks of a hex fixture: `#` lines are comments, blank lines separate blocks (one
/// message, or one datagram).
fn load_hex(rel: &str) -> Vec<Vec<u8>> {
    let path = fixture_path(rel);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let mut blocks = Vec::new();
    let mut cur: Vec<u8> = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') {
            continue;
        }
        if line.is_empty() {
            if !cur.is_empty() {
                blocks.push(std::mem::take(&mut cur));
            }
            continue;
        }
        for byte in line.split_whitespace() {
            cur.push(
                u8::from_str_radix(byte, 16)
                    .unwrap_or_else(|e| panic!("{rel}: bad hex byte {byte:?}: {e}")),
            );
        }
    }
    if !cur.is_empty() {
        blocks.push(cur);
    }
    assert!(!blocks.is_empty(), "{rel} holds no bytes");
    blocks
}

fn hex(bytes: &[u8]) -> String {
    bytes
        .chunks(16)
        .map(|c| {
            c.iter()
                .map(|b| format!("{b:02x}"))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

// ---------------------------------------------------------------------------------------------
// Encoding as NlSocket does

/// One request encoded as `NlSocket::encode` does: `NLM_F_REQUEST | NLM_F_ACK | flags`, the
/// given sequence number, port 0, `finalize` then `serialize`.
fn encode(seq: u32, (msg, flags): Request) -> Vec<u8> {
    let mut header = NetlinkHeader::default();
    header.flags = NLM_F_REQUEST | NLM_F_ACK | flags;
    header.sequence_number = seq;
    let mut m = NetlinkMessage::new(header, NetlinkPayload::from(msg));
    m.finalize();
    let mut out = vec![0; m.buffer_len()];
    m.serialize(&mut out);
    out
}

/// Requests numbered from [`SEQ`], as a fresh socket sends them.
fn encode_all(reqs: Vec<Request>) -> Vec<Vec<u8>> {
    reqs.into_iter()
        .enumerate()
        .map(|(i, r)| encode(SEQ + i as u32, r))
        .collect()
}

fn decode(bytes: &[u8]) -> (NetlinkHeader, RouteNetlinkMessage) {
    let m = NetlinkMessage::<RouteNetlinkMessage>::deserialize(bytes)
        .unwrap_or_else(|e| panic!("cannot decode\n{}\n{e:?}", hex(bytes)));
    match m.payload {
        NetlinkPayload::InnerMessage(inner) => (m.header, inner),
        other => panic!("not a route message: {other:?}"),
    }
}

/// plumb's requests for a case: encoded, checked against `sent/<case>.plumb.hex` byte for
/// byte, and returned.
fn plumb_sent(case: &str, reqs: Vec<Request>) -> Vec<Vec<u8>> {
    assert_stored(case, encode_all(reqs))
}

/// A read encoded as `NlSocket` sends it: `get`/`get_many` with `NLM_F_REQUEST` only (the
/// answer is the object or a refusal, never an ack), `dump`/`dump_map` with `NLM_F_REQUEST |
/// NLM_F_DUMP`; sequence numbers from [`SEQ`], port 0.
fn encode_reads(msgs: Vec<RouteNetlinkMessage>, flags: u16) -> Vec<Vec<u8>> {
    msgs.into_iter()
        .enumerate()
        .map(|(i, msg)| {
            let mut header = NetlinkHeader::default();
            header.flags = flags;
            header.sequence_number = SEQ + i as u32;
            let mut m = NetlinkMessage::new(header, NetlinkPayload::from(msg));
            m.finalize();
            let mut out = vec![0; m.buffer_len()];
            m.serialize(&mut out);
            out
        })
        .collect()
}

/// plumb's encoded requests for a case, checked against `sent/<case>.plumb.hex` byte for byte.
fn assert_stored(case: &str, ours: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    let stored = load_hex(&format!("sent/{case}.plumb.hex"));
    assert_eq!(
        ours.len(),
        stored.len(),
        "{case}: plumb now sends {} requests, the fixture has {}",
        ours.len(),
        stored.len()
    );
    for (i, (o, s)) in ours.iter().zip(&stored).enumerate() {
        assert!(
            o == s,
            "{case}: request {i} is no longer encoded as stored\nnow:\n{}\nstored:\n{}",
            hex(o),
            hex(s)
        );
    }
    ours
}

fn ip_sent(case: &str) -> Vec<Vec<u8>> {
    load_hex(&format!("sent/{case}.ip.hex"))
}

// ---------------------------------------------------------------------------------------------
// The builders' inputs, with the fixtures' values

fn mac(last: u8) -> MacAddr {
    MacAddr([0x02, 0, 0, 0, 0, last])
}

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

fn end(name: &str) -> VethEnd<'_> {
    VethEnd {
        name,
        netns_fd: None,
        index: 0,
        mtu: None,
        mac: None,
        master: None,
        group: 0,
    }
}

fn rs(dst: &str, via: Option<&str>, oif: Option<u32>) -> RouteSpec {
    RouteSpec {
        dst: net(dst),
        via: via.map(|v| v.parse::<IpAddr>().unwrap()),
        oif,
    }
}

/// `set` on the fixtures' veth end `v0` (index 10).
fn set_v0(change: LinkChange) -> Vec<Request> {
    link::set(Target::Index(10), &change)
}

fn set_v0_by_name(change: LinkChange) -> Vec<Request> {
    link::set(Target::Name("v0"), &change)
}

// ---------------------------------------------------------------------------------------------
// Semantic comparison with iproute2

/// A decoded request reduced to what the kernel reads, as `path -> values`: the netlink
/// message type and flags, each field of the family header (`header.index`), and each
/// attribute by its netlink-packet-route name, nested attributes flattened into paths
/// (`LinkInfo/Data/Peer/IfName`). The kernel looks nested attributes up by type, so their order
/// carries no meaning and is dropped. Left out on purpose: the sequence number and the port,
/// which are per socket (iproute2 numbers its requests from the time of day).
type Meaning = BTreeMap<String, Vec<String>>;

fn put(m: &mut Meaning, path: String, value: String) {
    m.entry(path).or_default().push(value);
}

/// An attribute under `prefix`, named by its variant (`Mtu(1400)` is `Mtu`).
fn leaf(m: &mut Meaning, prefix: &str, a: &impl std::fmt::Debug) {
    let v = format!("{a:?}");
    let name = v
        .split(['(', ' ', '{'])
        .next()
        .unwrap_or_default()
        .to_string();
    put(m, format!("{prefix}{name}"), v);
}

fn link_header(m: &mut Meaning, prefix: &str, h: &LinkHeader) {
    put(
        m,
        format!("{prefix}header.family"),
        format!("{:?}", h.interface_family),
    );
    put(m, format!("{prefix}header.index"), h.index.to_string());
    put(
        m,
        format!("{prefix}header.type"),
        format!("{:?}", h.link_layer_type),
    );
    put(m, format!("{prefix}header.flags"), format!("{:?}", h.flags));
    put(
        m,
        format!("{prefix}header.change"),
        format!("{:?}", h.change_mask),
    );
}

fn link_attrs(m: &mut Meaning, prefix: &str, attrs: &[LinkAttribute]) {
    for a in attrs {
        match a {
            LinkAttribute::LinkInfo(infos) => {
                for i in infos {
                    match i {
                        LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(p))) => {
                            let prefix = format!("{prefix}LinkInfo/Data/Peer/");
                            link_header(m, &prefix, &p.header);
                            link_attrs(m, &prefix, &p.attributes);
                        }
                        LinkInfo::Data(InfoData::Bridge(opts)) => {
                            for o in opts {
                                leaf(m, &format!("{prefix}LinkInfo/Data/"), o);
                            }
                        }
                        LinkInfo::PortData(InfoPortData::BridgePort(opts)) => {
                            for o in opts {
                                leaf(m, &format!("{prefix}LinkInfo/PortData/"), o);
                            }
                        }
                        other => leaf(m, &format!("{prefix}LinkInfo/"), other),
                    }
                }
            }
            LinkAttribute::AfSpecUnspec(specs) => {
                for s in specs {
                    match s {
                        AfSpecUnspec::Inet(v) => {
                            for x in v {
                                leaf(m, &format!("{prefix}AfSpecUnspec/Inet/"), x);
                            }
                        }
                        AfSpecUnspec::Inet6(v) => {
                            for x in v {
                                leaf(m, &format!("{prefix}AfSpecUnspec/Inet6/"), x);
                            }
                        }
                        other => leaf(m, &format!("{prefix}AfSpecUnspec/"), other),
                    }
                }
            }
            other => leaf(m, prefix, other),
        }
    }
}

fn meaning(bytes: &[u8]) -> Meaning {
    use RouteNetlinkMessage as M;
    let (h, msg) = decode(bytes);
    let mut m = Meaning::new();
    put(&mut m, "nlmsg_type".into(), h.message_type.to_string());
    put(&mut m, "nlmsg_flags".into(), format!("{:#x}", h.flags));
    match &msg {
        M::NewLink(l) | M::DelLink(l) | M::GetLink(l) => {
            link_header(&mut m, "", &l.header);
            link_attrs(&mut m, "", &l.attributes);
        }
        M::GetNsId(n) => {
            put(
                &mut m,
                "header.family".into(),
                format!("{:?}", n.header.family),
            );
            for x in &n.attributes {
                leaf(&mut m, "", x);
            }
        }
        M::NewAddress(a) | M::DelAddress(a) => {
            let h = &a.header;
            put(&mut m, "header.family".into(), format!("{:?}", h.family));
            put(&mut m, "header.prefix_len".into(), h.prefix_len.to_string());
            put(&mut m, "header.flags".into(), format!("{:?}", h.flags));
            put(&mut m, "header.scope".into(), format!("{:?}", h.scope));
            put(&mut m, "header.index".into(), h.index.to_string());
            for x in &a.attributes {
                leaf(&mut m, "", x);
            }
        }
        M::NewRoute(r) | M::DelRoute(r) => {
            let h = &r.header;
            put(
                &mut m,
                "header.family".into(),
                format!("{:?}", h.address_family),
            );
            put(
                &mut m,
                "header.dst_len".into(),
                h.destination_prefix_length.to_string(),
            );
            put(
                &mut m,
                "header.src_len".into(),
                h.source_prefix_length.to_string(),
            );
            put(&mut m, "header.tos".into(), h.tos.to_string());
            put(&mut m, "header.table".into(), h.table.to_string());
            put(
                &mut m,
                "header.protocol".into(),
                format!("{:?}", h.protocol),
            );
            put(&mut m, "header.scope".into(), format!("{:?}", h.scope));
            put(&mut m, "header.kind".into(), format!("{:?}", h.kind));
            put(&mut m, "header.flags".into(), format!("{:?}", h.flags));
            for x in &r.attributes {
                leaf(&mut m, "", x);
            }
        }
        other => panic!("unexpected request {other:?}"),
    }
    m
}

/// Which side a listed difference is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    /// Only plumb sends it.
    Plumb,
    /// Only iproute2 sends it.
    Ip,
    /// Both send it, with different values.
    Both,
}

/// A legitimate difference between plumb's request and iproute2's: the path left out of the
/// comparison, and why the kernel reads both the same. The comparison checks that it still
/// differs that way, so the list cannot go stale.
#[derive(Debug, Clone, Copy)]
struct Diff {
    path: &'static str,
    side: Side,
    why: &'static str,
}

const fn plumb_only(path: &'static str, why: &'static str) -> Diff {
    Diff {
        path,
        side: Side::Plumb,
        why,
    }
}

const fn ip_only(path: &'static str, why: &'static str) -> Diff {
    Diff {
        path,
        side: Side::Ip,
        why,
    }
}

const fn differs(path: &'static str, why: &'static str) -> Diff {
    Diff {
        path,
        side: Side::Both,
        why,
    }
}

/// Asserts that two requests mean the same to the kernel, but for the listed differences.
fn assert_same_meaning(what: &str, plumb: &[u8], ip: &[u8], diffs: &[Diff]) {
    let (p, i) = (meaning(plumb), meaning(ip));
    for d in diffs {
        let side = match (p.get(d.path), i.get(d.path)) {
            (Some(a), Some(b)) if a != b => Side::Both,
            (Some(_), None) => Side::Plumb,
            (None, Some(_)) => Side::Ip,
            (a, b) => panic!(
                "{what}: the listed difference at {} ({}) is gone: plumb {a:?}, iproute2 {b:?}",
                d.path, d.why
            ),
        };
        assert_eq!(
            side, d.side,
            "{what}: {} differs otherwise than listed ({})",
            d.path, d.why
        );
    }
    let paths: std::collections::BTreeSet<&String> = p.keys().chain(i.keys()).collect();
    for path in paths {
        if diffs.iter().any(|d| d.path == path) {
            continue;
        }
        assert_eq!(
            p.get(path),
            i.get(path),
            "{what}: plumb and iproute2 differ at {path}\nplumb: {p:#?}\niproute2: {i:#?}"
        );
    }
}

/// plumb's single request for `case` (checked against its stored bytes) means what iproute2's
/// does, but for `diffs`.
fn assert_matches_iproute2(case: &str, diffs: &[Diff]) {
    let ours = plumb_sent(case, requests(case));
    let theirs = ip_sent(case);
    assert_eq!(
        (ours.len(), theirs.len()),
        (1, 1),
        "{case}: one request each"
    );
    assert_same_meaning(case, &ours[0], &theirs[0], diffs);
}

macro_rules! matches_iproute2 {
    ($test:ident, $case:literal $(, $diff:expr)* $(,)?) => {
        #[test]
        fn $test() {
            assert_matches_iproute2($case, &[$($diff),*]);
        }
    };
}

// The differences, each with why it is harmless; every one was also checked on the kernel: the
// state after plumb's request and after iproute2's was the same (capture/README.md).

const WHY_FD: &str = "an fd number is the sender's own: each process opened /run/netns/X into \
    its next free fd; both name the same namespace";
const NETNS_FD: Diff = differs("NetNsFd", WHY_FD);
const PEER_NETNS_FD: Diff = differs("LinkInfo/Data/Peer/NetNsFd", WHY_FD);

const WHY_BY_NAME: &str = "plumb targets the interface by name (index 0 and IFLA_IFNAME); \
    iproute2 resolves the name first (RTM_GETLINK) and targets the index. The kernel looks an \
    interface up by IFLA_IFNAME when the index is 0";
const BY_NAME: [Diff; 2] = [
    differs("header.index", WHY_BY_NAME),
    plumb_only("IfName", WHY_BY_NAME),
];

const WHY_QUEUES: &str = "plumb asks for one tx and one rx queue per veth end (a veth gets one \
    per CPU by default, which only costs setup time); `ip link add` without numtxqueues and \
    numrxqueues leaves the default";

const WHY_PROMOTE: &str = "net.ipv4.conf.DEV.promote_secondaries has no `ip` option: plumb sets \
    it over netlink in IFLA_AF_SPEC/AF_INET/IFLA_INET_CONF (checked by raw bytes in \
    netlink_link_set_promote_secondaries_encodes_devconf_20; netlink-packet-route decodes a \
    request's nested IFLA_INET_CONF as a dump's flat array, hence the odd DevConf value)";

const WHY_NODAD: &str = "plumb sends IFA_F_NODAD in IFA_FLAGS (a u32), iproute2 in the header's \
    u8 ifa_flags (it uses IFA_FLAGS only for flags above 0xff); the kernel reads IFA_FLAGS when \
    present and ifa_flags otherwise";

const WHY_V6_DEFAULT_DST: &str = "iproute2 sends RTA_DST :: with dst_len 0 for an IPv6 default \
    route, plumb leaves RTA_DST out for any default route (as iproute2 itself does for IPv4); \
    the kernel reads a missing RTA_DST as the all-zero prefix";

const WHY_V6_SCOPE: &str = "plumb sets rtm_scope link for a route without gateway and nowhere \
    for a delete in both families; iproute2 does so for IPv4 only and sends universe for IPv6. \
    The kernel's IPv6 routing ignores rtm_scope (rtm_to_fib6_config never reads it)";

const WHY_DEL_PROTO: &str = "plumb deletes with rtm_protocol 250, so the kernel deletes only a \
    route plumb installed; iproute2's `ip route del` without `proto` sends 0, which matches any.";
const WHY_DEL_TYPE: &str = "plumb's delete keeps rtm_type unicast, iproute2 sends RTN_UNSPEC; \
    IPv4 matches a route's type only when rtm_type is set (fib_table_delete), IPv6 deletes \
    ignore it, so plumb's delete can only remove unicast routes, the only ones it installs";

// ---------------------------------------------------------------------------------------------
// The request cases of fixtures/netlink/sent

/// plumb's requests for each case of `fixtures/netlink/sent`, by the fixture's name (the
/// fixture's first comment line spells out the same call).
fn requests(case: &str) -> Vec<Request> {
    let d = LinkChange::default;
    let tag = || LinkChange {
        alias: Some("plumb:lab1".into()),
        ipv6_addrgen_none: true,
        ipv4_promote_secondaries: true,
        master: Some(50),
        ..d()
    };
    match case {
        "veth_netns_fd" => vec![link::new_veth(
            &VethEnd {
                netns_fd: Some(NSA),
                ..end("va")
            },
            &VethEnd {
                netns_fd: Some(NSB),
                ..end("vb")
            },
        )],
        "veth_full" => vec![link::new_veth(
            &VethEnd {
                netns_fd: Some(NSA),
                index: 100,
                mtu: Some(1400),
                mac: Some(mac(1)),
                master: Some(50),
                group: 7,
                ..end("va")
            },
            &VethEnd {
                netns_fd: Some(NSB),
                index: 101,
                mtu: Some(1400),
                mac: Some(mac(2)),
                group: 7,
                ..end("vb")
            },
        )],
        "veth_exists" => vec![link::new_veth(&end("v0"), &end("vx"))],
        "bridge_stp_off" => vec![link::new_bridge(&BridgeSpec {
            name: "br1",
            netns_fd: None,
            mtu: Some(1500),
            mac: mac(3),
            stp: false,
            group: 7,
        })],
        "bridge_stp_on" => vec![link::new_bridge(&BridgeSpec {
            name: "br1",
            netns_fd: Some(NSA),
            mtu: None,
            mac: mac(4),
            stp: true,
            group: 0,
        })],
        "set_up" => set_v0(LinkChange {
            up: Some(true),
            ..d()
        }),
        "set_down" => set_v0(LinkChange {
            up: Some(false),
            ..d()
        }),
        "set_mtu" => set_v0(LinkChange {
            mtu: Some(1400),
            ..d()
        }),
        "set_mtu_invalid" => set_v0(LinkChange {
            mtu: Some(10),
            ..d()
        }),
        "set_mac" => set_v0(LinkChange {
            mac: Some(mac(5)),
            ..d()
        }),
        "set_master" => set_v0(LinkChange {
            master: Some(50),
            ..d()
        }),
        "set_nomaster" => set_v0(LinkChange {
            master: Some(0),
            ..d()
        }),
        "set_alias" => set_v0(LinkChange {
            alias: Some("plumb:lab1".into()),
            ..d()
        }),
        "set_name" => set_v0(LinkChange {
            name: Some("v0new".into()),
            ..d()
        }),
        "set_stp_on" => link::set(
            Target::Index(50),
            &LinkChange {
                stp: Some(true),
                ..d()
            },
        ),
        "set_stp_off" => link::set(
            Target::Index(50),
            &LinkChange {
                stp: Some(false),
                ..d()
            },
        ),
        "set_isolated_on" => set_v0(LinkChange {
            isolated: Some(true),
            ..d()
        }),
        "set_isolated_off" => set_v0(LinkChange {
            isolated: Some(false),
            ..d()
        }),
        "set_addrgen_none" => set_v0(LinkChange {
            ipv6_addrgen_none: true,
            ..d()
        }),
        "set_promote_secondaries" => set_v0(LinkChange {
            ipv4_promote_secondaries: true,
            ..d()
        }),
        "set_tag" => set_v0(tag()),
        "set_tag_by_name" => set_v0_by_name(tag()),
        "set_up_addrgen_none" => set_v0(LinkChange {
            up: Some(true),
            ipv6_addrgen_none: true,
            ..d()
        }),
        "set_lo_up_alias" => link::set(
            Target::Index(1),
            &LinkChange {
                up: Some(true),
                alias: Some("plumb:lab1".into()),
                ..d()
            },
        ),
        "set_up_by_name" => set_v0_by_name(LinkChange {
            up: Some(true),
            ..d()
        }),
        "set_mtu_by_name" => set_v0_by_name(LinkChange {
            mtu: Some(1400),
            ..d()
        }),
        "set_alias_by_name" => set_v0_by_name(LinkChange {
            alias: Some("plumb:lab1".into()),
            ..d()
        }),
        "set_name_by_name" => set_v0_by_name(LinkChange {
            name: Some("v0new".into()),
            ..d()
        }),
        "delete_index" => vec![link::delete(Target::Index(10))],
        "delete_name" => vec![link::delete(Target::Name("v0"))],
        "delete_group" => vec![link::delete_group(7)],
        "addr_add_v4" => vec![addr::add(10, &net("10.0.0.1/24"))],
        "addr_add_v4_31" => vec![addr::add(10, &net("10.0.0.1/31"))],
        "addr_add_v6" => vec![addr::add(10, &net("2001:db8::1/64"))],
        "addr_del_v4" => vec![addr::delete(10, &net("10.0.0.1/24"))],
        "addr_del_v6" => vec![addr::delete(10, &net("2001:db8::1/64"))],
        "route_add_v4_default_via" => {
            vec![route::add(&rs("0.0.0.0/0", Some("10.0.0.254"), None), 250)]
        }
        "route_add_v4_prefix_dev" => vec![route::add(&rs("10.1.0.0/24", None, Some(10)), 250)],
        "route_add_v4_prefix_via_dev" => vec![route::add(
            &rs("10.2.0.0/16", Some("10.0.0.254"), Some(10)),
            250,
        )],
        "route_replace_v4_default_via" => vec![route::replace(
            &rs("0.0.0.0/0", Some("10.0.0.253"), None),
            250,
        )],
        "route_del_v4_default_via" => {
            vec![route::delete(
                &rs("0.0.0.0/0", Some("10.0.0.254"), None),
                250,
            )]
        }
        "route_del_v4_prefix_dev" => vec![route::delete(&rs("10.1.0.0/24", None, Some(10)), 250)],
        "route_add_v6_default_via" => {
            vec![route::add(&rs("::/0", Some("2001:db8::fe"), Some(10)), 250)]
        }
        "route_add_v6_prefix_dev" => vec![route::add(&rs("2001:db8:1::/64", None, Some(10)), 250)],
        "route_add_v6_prefix_via" => vec![route::add(
            &rs("2001:db8:2::/48", Some("2001:db8::fe"), None),
            250,
        )],
        "route_replace_v6_default_via" => vec![route::replace(
            &rs("::/0", Some("2001:db8::fd"), Some(10)),
            250,
        )],
        "route_del_v6_default_via" => {
            vec![route::delete(
                &rs("::/0", Some("2001:db8::fe"), Some(10)),
                250,
            )]
        }
        "route_del_v6_prefix_dev" => {
            vec![route::delete(&rs("2001:db8:1::/64", None, Some(10)), 250)]
        }
        other => panic!("no case {other}"),
    }
}

// ---------------------------------------------------------------------------------------------
// What plumb sends

/// The fixtures of `sent/` with plumb's bytes, by case name.
fn stored_cases() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(fixture_path("sent"))
        .expect("fixtures/netlink/sent")
        .map(|e| {
            e.expect("a directory entry")
                .file_name()
                .into_string()
                .expect("utf-8")
        })
        .filter_map(|n| n.strip_suffix(".plumb.hex").map(String::from))
        .collect();
    names.sort();
    names
}

#[test]
fn netlink_requests_every_case_encodes_as_stored() {
    let cases = stored_cases();
    assert_eq!(cases.len(), 54, "a case was added or lost: {cases:?}");
    for case in &cases {
        match read_requests(case) {
            Some(ours) => assert_stored(case, ours),
            None => plumb_sent(case, requests(case)),
        };
    }
}

#[test]
fn netlink_requests_every_stored_ip_request_decodes() {
    for case in stored_cases() {
        let Ok(ip) = std::fs::metadata(fixture_path(&format!("sent/{case}.ip.hex"))) else {
            continue;
        };
        assert!(ip.is_file());
        for (i, bytes) in ip_sent(&case).iter().enumerate() {
            let decoded = NetlinkMessage::<RouteNetlinkMessage>::deserialize(bytes);
            if case.starts_with("set_isolated") {
                // See netlink_link_set_isolated_on_matches_iproute2.
                assert!(
                    decoded.is_err(),
                    "{case}: netlink-packet-route now decodes it"
                );
            } else {
                assert!(decoded.is_ok(), "{case}[{i}]: {decoded:?}");
            }
        }
    }
}

#[test]
fn netlink_link_set_without_changes_sends_nothing() {
    assert!(link::set(Target::Index(10), &LinkChange::default()).is_empty());
    assert!(link::set(Target::Name("v0"), &LinkChange::default()).is_empty());
}

// Links: creation.

matches_iproute2!(
    netlink_veth_both_ends_in_other_namespaces_matches_iproute2,
    "veth_netns_fd",
    NETNS_FD,
    PEER_NETNS_FD,
);
matches_iproute2!(
    netlink_veth_with_index_mtu_mac_master_group_matches_iproute2,
    "veth_full",
    NETNS_FD,
    PEER_NETNS_FD,
);
matches_iproute2!(
    netlink_veth_default_ends_differ_from_iproute2_only_in_queues,
    "veth_exists",
    plumb_only("NumTxQueues", WHY_QUEUES),
    plumb_only("NumRxQueues", WHY_QUEUES),
    plumb_only("LinkInfo/Data/Peer/NumTxQueues", WHY_QUEUES),
    plumb_only("LinkInfo/Data/Peer/NumRxQueues", WHY_QUEUES),
);
matches_iproute2!(netlink_bridge_stp_off_matches_iproute2, "bridge_stp_off");
matches_iproute2!(
    netlink_bridge_stp_on_in_namespace_matches_iproute2,
    "bridge_stp_on",
    NETNS_FD,
);

// Links: one setting at a time, by index.

matches_iproute2!(netlink_link_set_up_matches_iproute2, "set_up");
matches_iproute2!(netlink_link_set_down_matches_iproute2, "set_down");
matches_iproute2!(netlink_link_set_mtu_matches_iproute2, "set_mtu");
matches_iproute2!(
    netlink_link_set_mtu_below_minimum_matches_iproute2,
    "set_mtu_invalid"
);
matches_iproute2!(netlink_link_set_mac_matches_iproute2, "set_mac");
matches_iproute2!(netlink_link_set_master_matches_iproute2, "set_master");
matches_iproute2!(
    netlink_link_set_master_zero_matches_iproute2_nomaster,
    "set_nomaster"
);
matches_iproute2!(netlink_link_set_alias_matches_iproute2, "set_alias");
matches_iproute2!(netlink_link_set_name_matches_iproute2, "set_name");
matches_iproute2!(netlink_link_set_stp_on_matches_iproute2, "set_stp_on");
matches_iproute2!(netlink_link_set_stp_off_matches_iproute2, "set_stp_off");
matches_iproute2!(
    netlink_link_set_addrgen_none_matches_iproute2,
    "set_addrgen_none"
);

// Links: the combinations plumb sends.

matches_iproute2!(
    netlink_link_set_tag_matches_iproute2_but_promote_secondaries,
    "set_tag",
    plumb_only("AfSpecUnspec/Inet/DevConf", WHY_PROMOTE),
);
matches_iproute2!(
    netlink_link_set_lo_up_with_alias_matches_iproute2,
    "set_lo_up_alias"
);

// Links: by name.

matches_iproute2!(
    netlink_link_set_up_by_name_matches_iproute2,
    "set_up_by_name",
    BY_NAME[0],
    BY_NAME[1],
);
matches_iproute2!(
    netlink_link_set_mtu_by_name_matches_iproute2,
    "set_mtu_by_name",
    BY_NAME[0],
    BY_NAME[1],
);
matches_iproute2!(
    netlink_link_set_alias_by_name_matches_iproute2,
    "set_alias_by_name",
    BY_NAME[0],
    BY_NAME[1],
);
matches_iproute2!(
    netlink_link_set_tag_by_name_matches_iproute2_but_promote_secondaries,
    "set_tag_by_name",
    BY_NAME[0],
    BY_NAME[1],
    plumb_only("AfSpecUnspec/Inet/DevConf", WHY_PROMOTE),
);

// Links: deletion.

matches_iproute2!(
    netlink_link_delete_by_index_matches_iproute2,
    "delete_index"
);
matches_iproute2!(
    netlink_link_delete_by_name_matches_iproute2,
    "delete_name",
    BY_NAME[0],
    BY_NAME[1],
);
matches_iproute2!(netlink_link_delete_group_matches_iproute2, "delete_group");

/// `up` with `addrgenmode none`: plumb sends the settings first and the flags in a second
/// request (its doc: the kernel applies flags before IFLA_AF_SPEC); iproute2 sends one. Together
/// the two mean what iproute2's one does (and on this kernel left the same state, without a
/// link-local address, either way).
#[test]
fn netlink_link_set_up_with_addrgen_none_splits_what_iproute2_sends_at_once() {
    let ours = plumb_sent("set_up_addrgen_none", requests("set_up_addrgen_none"));
    let theirs = ip_sent("set_up_addrgen_none");
    assert_eq!((ours.len(), theirs.len()), (2, 1));
    const WHY_FLAGS: &str = "plumb raises the interface in its second request";
    assert_same_meaning(
        "set_up_addrgen_none, first request",
        &ours[0],
        &theirs[0],
        &[
            differs("header.flags", WHY_FLAGS),
            differs("header.change", WHY_FLAGS),
        ],
    );
    assert_same_meaning(
        "set_up_addrgen_none, second request",
        &ours[1],
        &theirs[0],
        &[ip_only(
            "AfSpecUnspec/Inet6/AddrGenMode",
            "plumb set it in its first request",
        )],
    );
}

// Links: what has no decodable or no iproute2 counterpart, checked by raw attributes.

/// The attributes of a netlink attribute stream: (type without NLA_F_NESTED, value).
fn nlas(mut b: &[u8]) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    while b.len() >= 4 {
        let len = usize::from(u16::from_ne_bytes([b[0], b[1]]));
        let kind = u16::from_ne_bytes([b[2], b[3]]) & 0x3fff;
        assert!((4..=b.len()).contains(&len), "bad attribute length {len}");
        out.push((kind, &b[4..len]));
        b = &b[((len + 3) & !3).min(b.len())..];
    }
    out
}

/// `struct ifinfomsg` of an RTM_NEWLINK, and its attributes.
fn ifinfo(msg: &[u8]) -> (&[u8], Vec<(u16, &[u8])>) {
    (&msg[16..32], nlas(&msg[32..]))
}

/// From `include/uapi/linux/if_link.h`.
const IFLA_LINKINFO: u16 = 18;
const IFLA_AF_SPEC: u16 = 26;
const IFLA_INFO_KIND: u16 = 1;
const IFLA_INFO_SLAVE_KIND: u16 = 4;
const IFLA_INFO_SLAVE_DATA: u16 = 5;
const IFLA_BRPORT_ISOLATED: u16 = 33;
const IFLA_INET_CONF: u16 = 1;
/// `AF_INET` from `include/linux/socket.h`.
const AF_INET: u16 = 2;
/// `IPV4_DEVCONF_PROMOTE_SECONDARIES` from `include/uapi/linux/ip.h`.
const IPV4_DEVCONF_PROMOTE_SECONDARIES: u16 = 20;

/// Bridge-port isolation. iproute2 (`ip link set DEV type bridge_slave isolated on`) sends
/// IFLA_INFO_KIND "bridge_slave" (without its NUL) and IFLA_INFO_SLAVE_DATA; plumb sends
/// IFLA_INFO_SLAVE_KIND "bridge" and IFLA_INFO_SLAVE_DATA. The kernel reads the slave data with
/// the operations of the port's master whatever kind is named, so both mean the same (and left
/// the same state). netlink-packet-route 0.34 cannot decode iproute2's form ("IFLA_INFO_PORT_DATA
/// is not preceded by an IFLA_INFO_PORT_KIND"), so this comparison is by raw attributes.
fn assert_isolation_matches_iproute2(case: &str, on: u8) {
    let ours = plumb_sent(case, requests(case));
    let theirs = ip_sent(case);
    assert_eq!((ours.len(), theirs.len()), (1, 1));
    assert_eq!(ours[0][4..8], theirs[0][4..8], "{case}: type and flags");
    let (p_hdr, p_attrs) = ifinfo(&ours[0]);
    let (i_hdr, i_attrs) = ifinfo(&theirs[0]);
    assert_eq!(p_hdr, i_hdr, "{case}: ifinfomsg");
    let linkinfo = |attrs: &[(u16, &[u8])]| {
        assert_eq!(attrs.len(), 1, "{case}: only IFLA_LINKINFO");
        assert_eq!(attrs[0].0, IFLA_LINKINFO);
        nlas(attrs[0].1)
            .into_iter()
            .map(|(k, v)| (k, v.to_vec()))
            .collect::<Vec<_>>()
    };
    let isolated = [(IFLA_BRPORT_ISOLATED, vec![on])];
    let p = linkinfo(&p_attrs);
    assert_eq!(p[0], (IFLA_INFO_SLAVE_KIND, b"bridge\0".to_vec()));
    assert_eq!(p[1].0, IFLA_INFO_SLAVE_DATA);
    let i = linkinfo(&i_attrs);
    assert_eq!(i[0], (IFLA_INFO_KIND, b"bridge_slave".to_vec()));
    assert_eq!(i[1].0, IFLA_INFO_SLAVE_DATA);
    for data in [&p[1].1, &i[1].1] {
        let inner: Vec<(u16, Vec<u8>)> = nlas(data)
            .into_iter()
            .map(|(k, v)| (k, v.to_vec()))
            .collect();
        assert_eq!(inner, isolated, "{case}");
    }
    assert_eq!((p.len(), i.len()), (2, 2));
}

#[test]
fn netlink_link_set_isolated_on_matches_iproute2() {
    assert_isolation_matches_iproute2("set_isolated_on", 1);
}

#[test]
fn netlink_link_set_isolated_off_matches_iproute2() {
    assert_isolation_matches_iproute2("set_isolated_off", 0);
}

/// `promote_secondaries` has no `ip` option: plumb's encoding, attribute by attribute. The
/// nest carries no NLA_F_NESTED flag; the kernel parses IFLA_AF_SPEC with the deprecated
/// (lenient) parser and accepted it: /proc/sys/net/ipv4/conf/v0/promote_secondaries read 1
/// afterwards (capture/README.md).
#[test]
fn netlink_link_set_promote_secondaries_encodes_devconf_20() {
    let ours = plumb_sent(
        "set_promote_secondaries",
        requests("set_promote_secondaries"),
    );
    assert_eq!(ours.len(), 1);
    let (hdr, attrs) = ifinfo(&ours[0]);
    assert_eq!(u32::from_ne_bytes(hdr[4..8].try_into().unwrap()), 10);
    assert_eq!(attrs.len(), 1);
    assert_eq!(attrs[0].0, IFLA_AF_SPEC);
    let af = nlas(attrs[0].1);
    assert_eq!(af.len(), 1);
    assert_eq!(af[0].0, AF_INET);
    let inet = nlas(af[0].1);
    assert_eq!(inet.len(), 1);
    assert_eq!(inet[0].0, IFLA_INET_CONF);
    let conf = nlas(inet[0].1);
    assert_eq!(
        conf,
        vec![(IPV4_DEVCONF_PROMOTE_SECONDARIES, &1u32.to_ne_bytes()[..])]
    );
    // The same nest inside the tag request, next to AF_INET6's address generation mode.
    let tag = plumb_sent("set_tag", requests("set_tag"));
    let (_, attrs) = ifinfo(&tag[0]);
    let spec = attrs
        .iter()
        .find(|(k, _)| *k == IFLA_AF_SPEC)
        .expect("IFLA_AF_SPEC");
    assert_eq!(nlas(spec.1)[0], af[0]);
}

/// Renaming requires an index target (documented on `LinkChange::name`), but the API does not
/// enforce it: by name, the request carries IFLA_IFNAME twice, the kernel looks the interface
/// up by the last one (the new name) and answers ENODEV (captured: acks/enodev_rename_by_name).
#[test]
fn netlink_link_set_name_by_name_repeats_ifname_and_is_refused() {
    let ours = plumb_sent("set_name_by_name", requests("set_name_by_name"));
    assert_eq!(ours.len(), 1);
    let m = meaning(&ours[0]);
    assert_eq!(m["header.index"], ["0"]);
    assert_eq!(m["IfName"], ["IfName(\"v0\")", "IfName(\"v0new\")"]);
    let err = feed_ack("acks/enodev_rename_by_name.hex").expect_err("a refusal");
    assert_eq!(err.errno(), Some(libc::ENODEV));
}

// Addresses.

matches_iproute2!(
    netlink_addr_add_ipv4_with_broadcast_matches_iproute2,
    "addr_add_v4"
);
matches_iproute2!(
    netlink_addr_add_ipv4_slash31_without_broadcast_matches_iproute2,
    "addr_add_v4_31"
);
matches_iproute2!(
    netlink_addr_add_ipv6_nodad_matches_iproute2,
    "addr_add_v6",
    differs("header.flags", WHY_NODAD),
    plumb_only("Flags", WHY_NODAD),
);
matches_iproute2!(netlink_addr_delete_ipv4_matches_iproute2, "addr_del_v4");
matches_iproute2!(netlink_addr_delete_ipv6_matches_iproute2, "addr_del_v6");

// Routes.

matches_iproute2!(
    netlink_route_add_ipv4_default_via_matches_iproute2,
    "route_add_v4_default_via"
);
matches_iproute2!(
    netlink_route_add_ipv4_prefix_dev_matches_iproute2,
    "route_add_v4_prefix_dev"
);
matches_iproute2!(
    netlink_route_add_ipv4_prefix_via_dev_matches_iproute2,
    "route_add_v4_prefix_via_dev"
);
matches_iproute2!(
    netlink_route_replace_ipv4_default_via_matches_iproute2,
    "route_replace_v4_default_via"
);
matches_iproute2!(
    netlink_route_delete_ipv4_default_via_matches_iproute2,
    "route_del_v4_default_via",
    differs("header.kind", WHY_DEL_TYPE),
    differs("header.protocol", WHY_DEL_PROTO),
);
matches_iproute2!(
    netlink_route_delete_ipv4_prefix_dev_matches_iproute2,
    "route_del_v4_prefix_dev",
    differs("header.kind", WHY_DEL_TYPE),
    differs("header.protocol", WHY_DEL_PROTO),
);
matches_iproute2!(
    netlink_route_add_ipv6_default_via_dev_matches_iproute2,
    "route_add_v6_default_via",
    ip_only("Destination", WHY_V6_DEFAULT_DST),
);
matches_iproute2!(
    netlink_route_add_ipv6_prefix_dev_matches_iproute2,
    "route_add_v6_prefix_dev",
    differs("header.scope", WHY_V6_SCOPE),
);
matches_iproute2!(
    netlink_route_add_ipv6_prefix_via_matches_iproute2,
    "route_add_v6_prefix_via"
);
matches_iproute2!(
    netlink_route_replace_ipv6_default_via_dev_matches_iproute2,
    "route_replace_v6_default_via",
    ip_only("Destination", WHY_V6_DEFAULT_DST),
);
matches_iproute2!(
    netlink_route_delete_ipv6_default_via_dev_matches_iproute2,
    "route_del_v6_default_via",
    ip_only("Destination", WHY_V6_DEFAULT_DST),
    differs("header.scope", WHY_V6_SCOPE),
    differs("header.kind", WHY_DEL_TYPE),
    differs("header.protocol", WHY_DEL_PROTO),
);
matches_iproute2!(
    netlink_route_delete_ipv6_prefix_dev_matches_iproute2,
    "route_del_v6_prefix_dev",
    differs("header.scope", WHY_V6_SCOPE),
    differs("header.kind", WHY_DEL_TYPE),
    differs("header.protocol", WHY_DEL_PROTO),
);

// ---------------------------------------------------------------------------------------------
// What plumb reads: the link dump, single-object gets, namespace ids, targeted gets

/// The nsid the capture gave namespace b (`ip netns set b 3`), and one no namespace has.
const NSID_B: i32 = 3;
const NSID_NONE: i32 = 99;

/// A link request as `link.rs`'s private `get_message()` builds it for `link::dump` and
/// `link::get`: a default header (but the index) and `IFLA_EXT_MASK` with
/// `RTEXT_FILTER_SKIP_STATS`.
fn link_read(index: u32) -> RouteNetlinkMessage {
    let mut m = LinkMessage::default();
    m.header.index = index;
    m.attributes
        .push(LinkAttribute::ExtMask(vec![LinkExtentMask::SkipStats]));
    RouteNetlinkMessage::GetLink(m)
}

/// `nsid::ids_of`'s request for one namespace fd: `RTM_GETNSID` with `NETNSA_FD`.
fn nsid_by_fd(fd: i32) -> RouteNetlinkMessage {
    let mut m = NsidMessage::default();
    m.attributes.push(NsidAttribute::Fd(fd as u32));
    RouteNetlinkMessage::GetNsId(m)
}

/// `nsid::link_in_each`'s request for interface `index` of namespace `nsid`:
/// `IFLA_IF_NETNSID` (the kernel's `IFLA_TARGET_NETNSID`), then the skip-stats mask.
fn link_in_nsid(nsid: i32, index: u32) -> RouteNetlinkMessage {
    let mut m = LinkMessage::default();
    m.header.index = index;
    m.attributes.push(LinkAttribute::IfNetnsId(nsid));
    m.attributes
        .push(LinkAttribute::ExtMask(vec![LinkExtentMask::SkipStats]));
    RouteNetlinkMessage::GetLink(m)
}

/// plumb's reads of `fixtures/netlink/sent`, by case, encoded as `NlSocket` sends them; `None`
/// for a change request (see [`requests`]).
///
/// plumb's read functions take a socket and build their messages with private helpers, so the
/// messages are written out here as the source builds them; the fixtures hold the bytes plumb's
/// own functions sent (`nlcap read CASE` under strace, capture/read.sh). That the two agree is
/// what this checks: a change of plumb's read requests shows when the fixtures are captured
/// again, not before.
fn read_requests(case: &str) -> Option<Vec<Vec<u8>>> {
    let get = |msgs| encode_reads(msgs, NLM_F_REQUEST);
    Some(match case {
        "link_dump" => encode_reads(vec![link_read(0)], NLM_F_REQUEST | NLM_F_DUMP),
        "link_get" => get(vec![link_read(1)]),
        "link_get_missing" => get(vec![link_read(999)]),
        "nsid_ids" => get(vec![nsid_by_fd(NSA), nsid_by_fd(NSB)]),
        "nsid_link" => get(vec![link_in_nsid(NSID_B, 1), link_in_nsid(NSID_NONE, 1)]),
        "nsid_link_missing" => get(vec![link_in_nsid(NSID_B, 999)]),
        _ => return None,
    })
}

fn plumb_read_sent(case: &str) -> Vec<Vec<u8>> {
    assert_stored(
        case,
        read_requests(case).unwrap_or_else(|| panic!("{case} is no read")),
    )
}

const WHY_LINK_FAMILY: &str = "`ip link` asks with ifi_family AF_PACKET, plumb with AF_UNSPEC. \
    Only PF_UNSPEC registers RTM_GETLINK, so rtnetlink_rcv_msg falls back to it for any family, \
    and neither rtnl_getlink nor rtnl_dump_ifinfo reads ifi_family (strict checking does not \
    check it either); the answers carry AF_UNSPEC whatever was asked";

const WHY_SKIP_STATS: &str = "plumb asks RTEXT_FILTER_SKIP_STATS: the answers leave out \
    statistics plumb never reads (on Linux 6.18 IPv6's per device only; from 6.19 on also \
    IFLA_STATS and IFLA_STATS64: see SKIPPED_STATISTICS). iproute2 6.1 asks RTEXT_FILTER_VF \
    (SR-IOV virtual-function attributes, sent only for devices with VFs: none of plumb's kinds \
    has any, and plumb reads none) and gets statistics it prints only with -s. Both answers \
    parse to the same links (netlink_link_dump_skipping_stats_parses_to_the_same_links)";

const WHY_GET_BY_NAME: &str = "`ip link show dev lo` names the interface (index 0 and \
    IFLA_IFNAME \"lo\"), in both of its requests; plumb's link::get asks for an index. The kernel \
    looks an interface up by IFLA_IFNAME when the index is 0; both answers describe lo, index 1";

const WHY_NSID_FD: &str = "an fd number is the sender's own: `ip netns list` opens each \
    /run/netns/X as its next free fd (6, closed after each request), plumb's caller had a and b \
    open as 7 and 8; the kernel resolves the fd to the namespace it names";

/// `link::dump` against `ip link show` (captured in the state of capture/rich.sh). iproute2
/// also sent two `RTM_GETNSID`s by fd: the peer of `vx` is in namespace b (nsid 0), and `ip`
/// looks for the name of the namespace that nsid belongs to, which is `nsid::ids_of`'s request.
#[test]
fn netlink_link_dump_request_matches_iproute2_ip_link_show() {
    let ours = plumb_read_sent("link_dump");
    let theirs = ip_sent("link_dump");
    assert_eq!((ours.len(), theirs.len()), (1, 3));
    assert_same_meaning(
        "link_dump",
        &ours[0],
        &theirs[0],
        &[
            differs("header.family", WHY_LINK_FAMILY),
            differs("ExtMask", WHY_SKIP_STATS),
        ],
    );
    let (p, i) = (meaning(&ours[0]), meaning(&theirs[0]));
    assert_eq!(
        p["nlmsg_flags"],
        [format!("{:#x}", NLM_F_REQUEST | NLM_F_DUMP)]
    );
    assert_eq!(p["ExtMask"], ["ExtMask([SkipStats])"]);
    assert_eq!(i["ExtMask"], ["ExtMask([Vf])"]);
    let nsid = encode_reads(vec![nsid_by_fd(6)], NLM_F_REQUEST);
    for (k, other) in theirs[1..].iter().enumerate() {
        assert_same_meaning(
            &format!("link_dump, ip's GETNSID {k}"),
            &nsid[0],
            other,
            &[],
        );
    }
}

/// `link::get(sock, 1)` against `ip link show dev lo`, which sends two requests, both by name:
/// the first resolves the name (iproute2's ll_link_get, which skips statistics too), the
/// second reads the link it prints. plumb's request means what the first does but for the
/// name, and what the second does but for the name, the family and the mask.
#[test]
fn netlink_link_get_request_matches_iproute2_ip_link_show_dev() {
    let ours = plumb_read_sent("link_get");
    let theirs = ip_sent("link_get");
    assert_eq!((ours.len(), theirs.len()), (1, 2));
    const WHY_VF: &str = "iproute2 also asks RTEXT_FILTER_VF (SR-IOV virtual-function \
        attributes, which lo, veths and bridges do not have, and plumb does not read)";
    let by_name = [
        differs("header.index", WHY_GET_BY_NAME),
        ip_only("IfName", WHY_GET_BY_NAME),
    ];
    let first = [by_name[0], by_name[1], differs("ExtMask", WHY_VF)];
    assert_same_meaning("link_get, ip's first", &ours[0], &theirs[0], &first);
    let second = [
        by_name[0],
        by_name[1],
        differs("header.family", WHY_LINK_FAMILY),
        differs("ExtMask", WHY_SKIP_STATS),
    ];
    assert_same_meaning("link_get, ip's second", &ours[0], &theirs[1], &second);
    let (p, i0) = (meaning(&ours[0]), meaning(&theirs[0]));
    assert_eq!(
        p["nlmsg_flags"],
        ["0x1"],
        "NLM_F_REQUEST only, as NlSocket::get sends it"
    );
    assert_eq!(p["header.index"], ["1"]);
    assert_eq!(i0["ExtMask"], ["ExtMask([Vf, SkipStats])"]);
}

/// `nsid::ids_of(&[a, b])` against `ip netns list`, which asks for each namespace's nsid by fd
/// (twice: once to build its map of names, once to print). The requests are the same but for
/// the fd numbers; plumb pipelines its two in one send.
#[test]
fn netlink_nsid_by_fd_matches_iproute2_ip_netns_list() {
    let ours = plumb_read_sent("nsid_ids");
    let theirs = ip_sent("nsid_ids");
    assert_eq!((ours.len(), theirs.len()), (2, 4));
    for (k, o) in ours.iter().enumerate() {
        for (j, t) in theirs.iter().enumerate() {
            assert_same_meaning(
                &format!("nsid_ids, plumb's {k}, ip's {j}"),
                o,
                t,
                &[differs("Fd", WHY_NSID_FD)],
            );
        }
    }
    let m = |b: &[u8]| meaning(b)["Fd"].clone();
    assert_eq!(
        (m(&ours[0]), m(&ours[1])),
        (vec!["Fd(7)".to_string()], vec!["Fd(8)".to_string()])
    );
    assert!(theirs.iter().all(|t| m(t) == ["Fd(6)"]));
    // struct rtgenmsg is one byte; both pad it to four before NETNSA_FD.
    assert_eq!(ours[0].len(), theirs[0].len());
    assert_eq!(ours[0][16..20], theirs[0][16..20]);
    assert_eq!(meaning(&ours[0])["nlmsg_flags"], ["0x1"]);
}

/// `IFLA_TARGET_NETNSID` in the uapi header; netlink-packet-route calls it `IfNetnsId`.
const IFLA_TARGET_NETNSID: u16 = 46;
/// `IFLA_EXT_MASK` and `RTEXT_FILTER_SKIP_STATS` from `include/uapi/linux/if_link.h` and
/// `rtnetlink.h`.
const IFLA_EXT_MASK: u16 = 29;
const RTEXT_FILTER_SKIP_STATS: u32 = 1 << 3;

/// `nsid::link_in_each`: `RTM_GETLINK` for one index of the namespace an nsid names. iproute2
/// 6.1 never sends `IFLA_TARGET_NETNSID` (`ip -n NS` enters the namespace instead; later
/// versions send it only to resolve a lower device's name for `ip link add … link-netns`), so
/// there is nothing to compare with: plumb's bytes, attribute by attribute. They are exactly
/// what the kernel's strict check of a link get allows (a zero header but the index;
/// IFLA_IFNAME, IFLA_ALT_IFNAME, IFLA_EXT_MASK, IFLA_TARGET_NETNSID), and it answered the
/// first (answers/nsid_link.hex).
#[test]
fn netlink_link_get_by_nsid_sends_target_netnsid_and_skip_stats() {
    let ours = plumb_read_sent("nsid_link");
    assert_eq!(ours.len(), 2);
    for (msg, nsid) in ours.iter().zip([NSID_B, NSID_NONE]) {
        assert_eq!(msg[4..8], [18, 0, 1, 0], "RTM_GETLINK, NLM_F_REQUEST only");
        let (hdr, attrs) = ifinfo(msg);
        let mut zero_but_index = [0u8; 16];
        zero_but_index[4..8].copy_from_slice(&1u32.to_ne_bytes());
        assert_eq!(hdr, zero_but_index, "ifinfomsg: index 1, the rest 0");
        assert_eq!(
            attrs,
            vec![
                (IFLA_TARGET_NETNSID, &nsid.to_ne_bytes()[..]),
                (IFLA_EXT_MASK, &RTEXT_FILTER_SKIP_STATS.to_ne_bytes()[..]),
            ]
        );
    }
    let missing = plumb_read_sent("nsid_link_missing");
    assert_eq!(meaning(&missing[0])["header.index"], ["999"]);
    assert_eq!(meaning(&missing[0])["IfNetnsId"], ["IfNetnsId(3)"]);
}

// ---------------------------------------------------------------------------------------------
// What plumb parses

/// `NLM_F_CAPPED` and `NLM_F_ACK_TLVS` from `include/uapi/linux/netlink.h`.
const NLM_F_CAPPED: u16 = 0x100;
const NLM_F_ACK_TLVS: u16 = 0x200;

/// The messages of one datagram: (nlmsg_type, nlmsg_flags, bytes).
fn messages(datagram: &[u8]) -> Vec<(u16, u16, &[u8])> {
    let mut out = Vec::new();
    let mut off = 0;
    while off + 16 <= datagram.len() {
        let len = u32::from_ne_bytes(datagram[off..off + 4].try_into().unwrap()) as usize;
        let kind = u16::from_ne_bytes(datagram[off + 4..off + 6].try_into().unwrap());
        let flags = u16::from_ne_bytes(datagram[off + 6..off + 8].try_into().unwrap());
        assert!(
            len >= 16 && off + len <= datagram.len(),
            "truncated message"
        );
        out.push((kind, flags, &datagram[off..off + len]));
        off += (len + 3) & !3;
    }
    assert_eq!(off, datagram.len(), "trailing bytes");
    out
}

fn seq_of(message: &[u8]) -> u32 {
    u32::from_ne_bytes(message[8..12].try_into().unwrap())
}

/// A captured dump fed datagram by datagram to a `DumpReader`, as `NlSocket::dump` does: the
/// dump completes exactly at the last datagram, which ends with NLMSG_DONE.
fn dump(rel: &str, seq: u32) -> Vec<RouteNetlinkMessage> {
    let datagrams = load_hex(rel);
    let mut reader = DumpReader::new(seq);
    for (i, d) in datagrams.iter().enumerate() {
        let last = i + 1 == datagrams.len();
        let done = reader
            .feed(d)
            .unwrap_or_else(|e| panic!("{rel}: datagram {i}: {e}"));
        assert_eq!(done, last, "{rel}: datagram {i} of {}", datagrams.len());
        if last {
            let msgs = messages(d);
            assert_eq!(msgs.last().map(|m| m.0), Some(NLMSG_DONE), "{rel}");
        }
    }
    assert!(!reader.interrupted, "{rel}: not marked NLM_F_DUMP_INTR");
    reader.replies
}

fn links() -> Vec<LinkState> {
    dump("dumps/link.hex", 100)
        .iter()
        .map(|m| match m {
            RouteNetlinkMessage::NewLink(l) => link::parse(l),
            other => panic!("not a link: {other:?}"),
        })
        .collect()
}

fn dumped_link(name: &str) -> LinkState {
    links()
        .into_iter()
        .find(|l| l.name == name)
        .unwrap_or_else(|| panic!("no link {name} in dumps/link.hex"))
}

/// A link as capture/rich.sh leaves most of them: a veth end, MTU 1500, no alias or master.
fn veth(index: u32, name: &str, mac_last: u8, peer: u32) -> LinkState {
    LinkState {
        index,
        name: name.into(),
        kind: LinkKind::Veth,
        alias: None,
        mtu: 1500,
        mac: Some(MacAddr([0x02, 0, 0, 0, 0, mac_last])),
        up: true,
        lower_up: true,
        operstate: "up".into(),
        master: None,
        peer_index: Some(peer),
        peer_netnsid: None,
        group: 0,
        isolated: false,
        stp: None,
    }
}

#[test]
fn netlink_link_dump_of_three_datagrams_yields_eight_links() {
    assert_eq!(load_hex("dumps/link.hex").len(), 3);
    let names: Vec<String> = links().into_iter().map(|l| l.name).collect();
    assert_eq!(names, ["lo", "v0", "v0p", "vx", "vd", "ve", "mv", "br0"]);
}

#[test]
fn netlink_link_parse_loopback_is_up_with_unknown_operstate() {
    assert_eq!(
        dumped_link("lo"),
        LinkState {
            index: 1,
            name: "lo".into(),
            kind: LinkKind::Loopback,
            alias: None,
            mtu: 65536,
            mac: Some(MacAddr([0; 6])),
            up: true,
            lower_up: true,
            operstate: "unknown".into(),
            master: None,
            peer_index: None,
            peer_netnsid: None,
            group: 0,
            isolated: false,
            stp: None,
        }
    );
}

#[test]
fn netlink_link_parse_veth_with_alias_and_group_reports_both() {
    assert_eq!(
        dumped_link("v0"),
        LinkState {
            alias: Some("plumb:lab1".into()),
            group: 7,
            ..veth(10, "v0", 0x10, 11)
        }
    );
}

#[test]
fn netlink_link_parse_isolated_bridge_port_reports_master_and_isolation() {
    assert_eq!(
        dumped_link("v0p"),
        LinkState {
            master: Some(50),
            isolated: true,
            ..veth(11, "v0p", 0x11, 10)
        }
    );
}

#[test]
fn netlink_link_parse_veth_with_peer_in_other_namespace_reports_netnsid() {
    // vy is index 2 in namespace b, which namespace main knows as nsid 0 (IFLA_LINK_NETNSID).
    assert_eq!(
        dumped_link("vx"),
        LinkState {
            lower_up: false,
            operstate: "down".into(),
            peer_netnsid: Some(0),
            ..veth(20, "vx", 0x20, 2)
        }
    );
}

#[test]
fn netlink_link_parse_down_veth_pair_reports_down() {
    let down = |index, name: &str, mac, peer| LinkState {
        up: false,
        lower_up: false,
        operstate: "down".into(),
        ..veth(index, name, mac, peer)
    };
    assert_eq!(dumped_link("vd"), down(30, "vd", 0x30, 31));
    assert_eq!(dumped_link("ve"), down(31, "ve", 0x31, 30));
}

#[test]
fn netlink_link_parse_macvlan_on_carrierless_link_is_other_kind_lowerlayerdown() {
    assert_eq!(
        dumped_link("mv"),
        LinkState {
            kind: LinkKind::Other("macvlan".into()),
            lower_up: false,
            operstate: "lowerlayerdown".into(),
            ..veth(40, "mv", 0x40, 20)
        }
    );
}

#[test]
fn netlink_link_parse_bridge_with_stp_reports_stp_on() {
    // Up, but its only port is still in STP's listening state: no carrier.
    assert_eq!(
        dumped_link("br0"),
        LinkState {
            index: 50,
            name: "br0".into(),
            kind: LinkKind::Bridge,
            alias: None,
            mtu: 1500,
            mac: Some(MacAddr([0x02, 0, 0, 0, 0, 0x50])),
            up: true,
            lower_up: false,
            operstate: "down".into(),
            master: None,
            peer_index: None,
            peer_netnsid: None,
            group: 0,
            isolated: false,
            stp: Some(true),
        }
    );
}

#[test]
fn netlink_addr_parse_dump_reports_every_address_with_its_prefix() {
    let addrs: Vec<AddrState> = dump("dumps/addr.hex", 101)
        .iter()
        .map(|m| match m {
            RouteNetlinkMessage::NewAddress(a) => addr::parse(a).expect("an address"),
            other => panic!("not an address: {other:?}"),
        })
        .collect();
    let a = |index, s: &str| AddrState {
        index,
        addr: net(s),
    };
    assert_eq!(
        addrs,
        [
            a(1, "127.0.0.1/8"),
            a(10, "10.0.0.1/24"),
            a(1, "::1/128"),
            a(10, "2001:db8::1/64"),
            a(10, "fe80::ff:fe00:10/64"),
            a(11, "fe80::ff:fe00:11/64"),
        ]
    );
}

#[test]
fn netlink_addr_parse_ipv6_without_ifa_local_uses_ifa_address() {
    // The kernel sends IPv6 addresses with IFA_ADDRESS only, IPv4 ones with both.
    for m in dump("dumps/addr.hex", 101) {
        let RouteNetlinkMessage::NewAddress(a) = m else {
            panic!("not an address")
        };
        let has_local = a
            .attributes
            .iter()
            .any(|x| matches!(x, AddressAttribute::Local(_)));
        assert_eq!(has_local, a.header.family == AddressFamily::Inet);
    }
}

fn routes() -> Vec<RouteMessage> {
    dump("dumps/route.hex", 102)
        .into_iter()
        .map(|m| match m {
            RouteNetlinkMessage::NewRoute(r) => r,
            other => panic!("not a route: {other:?}"),
        })
        .collect()
}

#[test]
fn netlink_route_parse_dump_keeps_main_table_unicast_routes() {
    let kept: Vec<RouteState> = routes().iter().filter_map(route::parse).collect();
    let r = |dst: &str, via: Option<&str>, oif, protocol| RouteState {
        dst: net(dst),
        via: via.map(|v| v.parse().unwrap()),
        oif: Some(oif),
        protocol,
    };
    assert_eq!(
        kept,
        [
            r("0.0.0.0/0", Some("10.0.0.254"), 10, 3), // RTPROT_BOOT: `ip route add`'s default
            r("10.0.0.0/24", None, 10, 2),             // connected, RTPROT_KERNEL
            r("10.1.0.0/24", None, 10, 250),
            r("10.2.0.0/16", Some("10.0.0.254"), 10, 250),
            r("2001:db8::/64", None, 10, 2),
            r("2001:db8:1::/64", None, 10, 250),
            r("fe80::/64", None, 10, 2),
            r("fe80::/64", None, 11, 2),
            r("::/0", Some("2001:db8::fe"), 10, 250),
        ]
    );
}

#[test]
fn netlink_route_parse_drops_other_tables_and_non_unicast() {
    let all = routes();
    assert_eq!(all.len(), 25);
    let dropped: Vec<&RouteMessage> = all.iter().filter(|r| route::parse(r).is_none()).collect();
    assert_eq!(dropped.len(), 16);
    for r in &dropped {
        let table = r
            .attributes
            .iter()
            .find_map(|a| match a {
                RouteAttribute::Table(t) => Some(*t),
                _ => None,
            })
            .expect("the kernel sends RTA_TABLE");
        assert!(
            table != 254 || r.header.kind != RouteType::Unicast,
            "a main-table unicast route was dropped: {r:?}"
        );
    }
    // Table 1000 does not fit rtm_table: the header says RT_TABLE_COMPAT (252), RTA_TABLE 1000.
    let t1000 = dropped
        .iter()
        .find(|r| r.attributes.contains(&RouteAttribute::Table(1000)))
        .expect("the table 1000 route");
    assert_eq!(t1000.header.table, 252);
    let kinds = |k: RouteType| dropped.iter().filter(|r| r.header.kind == k).count();
    assert_eq!(
        [
            kinds(RouteType::Unicast),     // tables 100 and 1000
            kinds(RouteType::Local),       // table local, both families
            kinds(RouteType::Broadcast),   // table local
            kinds(RouteType::Multicast),   // ff00::/8, table local
            kinds(RouteType::BlackHole),   // main table
            kinds(RouteType::Unreachable), // main table, both families
        ],
        [2, 7, 2, 2, 1, 2]
    );
}

/// Every message of a captured fixture, re-emitted with netlink-packet-route, gives the
/// kernel's bytes back and parses the same, for plumb too; returns how many there were.
fn assert_reemits(rel: &str) -> usize {
    let mut n = 0;
    for d in load_hex(rel) {
        for (_, _, bytes) in messages(&d) {
            let m = NetlinkMessage::<RouteNetlinkMessage>::deserialize(bytes)
                .unwrap_or_else(|e| panic!("{rel}: {e}"));
            let mut out = vec![0; m.buffer_len()];
            m.serialize(&mut out);
            assert!(
                out == bytes,
                "{rel}: re-emitted differently\nkernel:\n{}\nemitted:\n{}",
                hex(bytes),
                hex(&out)
            );
            let again = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&out)
                .expect("re-emitted bytes parse");
            assert_eq!(again, m, "{rel}");
            match (&m.payload, &again.payload) {
                (
                    NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(a)),
                    NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(b)),
                ) => assert_eq!(link::parse(a), link::parse(b)),
                (
                    NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewAddress(a)),
                    NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewAddress(b)),
                ) => assert_eq!(addr::parse(a), addr::parse(b)),
                (
                    NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewRoute(a)),
                    NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewRoute(b)),
                ) => assert_eq!(route::parse(a), route::parse(b)),
                (
                    NetlinkPayload::InnerMessage(a @ RouteNetlinkMessage::NewNsId(_)),
                    NetlinkPayload::InnerMessage(b @ RouteNetlinkMessage::NewNsId(_)),
                ) => assert_eq!(kept_nsid(a), kept_nsid(b)),
                (NetlinkPayload::Done(_), NetlinkPayload::Done(_))
                | (NetlinkPayload::Error(_), NetlinkPayload::Error(_)) => {
                    assert_eq!(outcome(&out), outcome(bytes), "{rel}")
                }
                (other, _) => panic!("{rel}: unexpected {other:?}"),
            }
            n += 1;
        }
    }
    n
}

/// What `DumpReader` makes of an NLMSG_DONE or NLMSG_ERROR: complete, or the kernel's
/// refusal (errno and extended-ack message).
fn outcome(message: &[u8]) -> Result<bool, (Option<i32>, Option<String>)> {
    DumpReader::new(seq_of(message))
        .feed(message)
        .map_err(|e| match e {
            NetlinkError::Kernel { errno, ext } => (errno.raw_os_error(), ext),
            other => panic!("not a kernel answer: {other}"),
        })
}

/// Every message of every captured dump re-emits byte for byte and parses the same.
#[test]
fn netlink_dump_messages_reemit_byte_for_byte_and_parse_the_same() {
    let n: usize = ["dumps/link.hex", "dumps/addr.hex", "dumps/route.hex"]
        .into_iter()
        .map(assert_reemits)
        .sum();
    assert_eq!(n, 8 + 1 + 6 + 1 + 25 + 1);
}

// Acknowledgements and refusals. `ack::iter` and `ack::decode` are not public (`mod ack` is
// private; only `Ack`, `NLMSG_ERROR` and `NLMSG_DONE` are re-exported), so they are read here
// through the public `DumpReader`, which decodes an NLMSG_ERROR for its sequence number with
// them: code 0 completes, a refusal is `NetlinkError::Kernel` with the errno and the
// extended-ack message.

/// A captured single-message ack datagram, fed to a `DumpReader` of its sequence number.
fn feed_ack(rel: &str) -> Result<bool, NetlinkError> {
    let blocks = load_hex(rel);
    assert_eq!(blocks.len(), 1, "{rel}: one datagram");
    let msgs = messages(&blocks[0]);
    assert_eq!(msgs.len(), 1, "{rel}: one message");
    assert_eq!(msgs[0].0, NLMSG_ERROR, "{rel}");
    DumpReader::new(seq_of(&blocks[0])).feed(&blocks[0])
}

fn flags_of(rel: &str) -> u16 {
    messages(&load_hex(rel)[0])[0].1
}

fn kernel_refusal(rel: &str) -> (i32, Option<String>) {
    match feed_ack(rel) {
        Err(NetlinkError::Kernel { errno, ext }) => (errno.raw_os_error().expect("an errno"), ext),
        other => panic!("{rel}: not a kernel refusal: {other:?}"),
    }
}

#[test]
fn netlink_ack_of_plumb_request_completes() {
    assert_eq!(flags_of("acks/ack_capped.hex"), NLM_F_CAPPED);
    assert!(feed_ack("acks/ack_capped.hex").expect("an ack"));
}

#[test]
fn netlink_ack_existing_name_is_eexist_without_message() {
    assert_eq!(flags_of("acks/eexist_capped.hex"), NLM_F_CAPPED);
    assert_eq!(flags_of("acks/eexist_uncapped.hex"), 0);
    for rel in ["acks/eexist_capped.hex", "acks/eexist_uncapped.hex"] {
        assert_eq!(kernel_refusal(rel), (libc::EEXIST, None), "{rel}");
    }
}

#[test]
fn netlink_ack_mtu_below_minimum_is_einval_with_extended_ack_message() {
    let msg = Some("mtu less than device minimum".to_string());
    assert_eq!(
        flags_of("acks/mtu_invalid_capped.hex"),
        NLM_F_CAPPED | NLM_F_ACK_TLVS
    );
    assert_eq!(flags_of("acks/mtu_invalid_uncapped.hex"), NLM_F_ACK_TLVS);
    assert_eq!(flags_of("acks/ip_mtu_invalid.hex"), NLM_F_ACK_TLVS);
    for rel in [
        "acks/mtu_invalid_capped.hex",
        "acks/mtu_invalid_uncapped.hex",
        "acks/ip_mtu_invalid.hex",
    ] {
        assert_eq!(kernel_refusal(rel), (libc::EINVAL, msg.clone()), "{rel}");
    }
    let e = feed_ack("acks/mtu_invalid_capped.hex").expect_err("a refusal");
    assert_eq!(e.errno(), Some(libc::EINVAL));
    assert!(
        e.to_string().contains("(mtu less than device minimum)"),
        "{e}"
    );
}

#[test]
fn netlink_ack_of_another_sequence_number_is_ignored() {
    let d = &load_hex("acks/mtu_invalid_capped.hex")[0];
    let mut reader = DumpReader::new(seq_of(d) + 1);
    assert!(!reader.feed(d).expect("nothing for this reader"));
    assert!(reader.replies.is_empty());
}

/// A dump refused under strict checking ends with an NLMSG_DONE carrying the errno and, with
/// NLM_F_ACK_TLVS, an extended-ack message right after it.
#[test]
fn netlink_dump_refused_reports_einval() {
    let rel = "dumps/link_filtered_by_index.hex";
    let d = &load_hex(rel)[0];
    let msgs = messages(d);
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0].0, NLMSG_DONE);
    assert_eq!(msgs[0].1, 0x2 | NLM_F_ACK_TLVS); // NLM_F_MULTI | NLM_F_ACK_TLVS
    let text = b"Filter by device index not supported for link dumps\0";
    assert_eq!(
        &d[24..24 + text.len()],
        text,
        "NLMSGERR_ATTR_MSG after the errno"
    );
    match DumpReader::new(103).feed(d) {
        Err(NetlinkError::Kernel { errno, ext }) => {
            assert_eq!(errno.raw_os_error(), Some(libc::EINVAL));
            // The kernel's explanation travels in the NLMSG_DONE's extended-ack attributes.
            assert_eq!(
                ext.as_deref(),
                Some("Filter by device index not supported for link dumps")
            );
        }
        other => panic!("not a kernel refusal: {other:?}"),
    }
}

/// Without `NETLINK_EXT_ACK` the same refused dump ends with an NLMSG_DONE that carries the
/// errno alone: no `NLM_F_ACK_TLVS`, no message. The flag decides, not the bytes: the refusal
/// above with its flag cleared reads as no message either.
#[test]
fn netlink_dump_refused_without_ext_ack_reports_einval_without_message() {
    let rel = "dumps/link_filtered_by_index_noext.hex";
    let blocks = load_hex(rel);
    assert_eq!(blocks.len(), 1);
    let d = &blocks[0];
    let msgs = messages(d);
    assert_eq!(msgs.len(), 1);
    assert_eq!((msgs[0].0, msgs[0].1), (NLMSG_DONE, 0x2)); // NLM_F_MULTI only
    assert_eq!(d.len(), 20, "the header and the errno, nothing after");
    assert_eq!(seq_of(d), 104);
    assert_eq!(refusal(d), (libc::EINVAL, None));
    let mut cleared = load_hex("dumps/link_filtered_by_index.hex").remove(0);
    let flags = u16::from_ne_bytes([cleared[6], cleared[7]]) & !NLM_F_ACK_TLVS;
    cleared[6..8].copy_from_slice(&flags.to_ne_bytes());
    assert_eq!(refusal(&cleared), (libc::EINVAL, None));
}

// Answers to plumb's reads: a get's link, namespace ids, a targeted get's link, refusals.
// `NlSocket::get` and `get_many` match answers by sequence number with the same private
// decoder as `DumpReader` (`ack::decode`), so refusals are read here through `DumpReader`.

/// The kernel's refusal in a datagram, as `DumpReader` (and `NlSocket::get`) reads it.
fn refusal(datagram: &[u8]) -> (i32, Option<String>) {
    match DumpReader::new(seq_of(datagram)).feed(datagram) {
        Err(NetlinkError::Kernel { errno, ext }) => (errno.raw_os_error().expect("an errno"), ext),
        other => panic!("not a kernel refusal: {other:?}\n{}", hex(datagram)),
    }
}

/// The datagrams of an answers fixture, each one message.
fn answer_datagrams(rel: &str) -> Vec<Vec<u8>> {
    let blocks = load_hex(rel);
    for (i, d) in blocks.iter().enumerate() {
        assert_eq!(
            messages(d).len(),
            1,
            "{rel}: datagram {i} holds one message"
        );
    }
    blocks
}

/// A get's answer: the object, alone in its datagram, neither `NLM_F_MULTI` nor followed by an
/// NLMSG_DONE.
fn answered_link(d: &[u8], seq: u32) -> LinkMessage {
    let (h, m) = decode(d);
    assert_eq!((h.sequence_number, h.flags), (seq, 0), "a get's answer");
    match m {
        RouteNetlinkMessage::NewLink(l) => l,
        other => panic!("not a link: {other:?}"),
    }
}

/// Which statistics a link answer carries: the device's (`IFLA_STATS`, `IFLA_STATS64`), and
/// IPv6's per device (`IFLA_INET6_STATS`, `IFLA_INET6_ICMP6STATS` in `IFLA_AF_SPEC`).
fn statistics(l: &LinkMessage) -> (bool, bool) {
    let device = l
        .attributes
        .iter()
        .any(|a| matches!(a, LinkAttribute::Stats(_) | LinkAttribute::Stats64(_)));
    let inet6 = l.attributes.iter().any(|a| match a {
        LinkAttribute::AfSpecUnspec(specs) => specs.iter().any(|s| match s {
            AfSpecUnspec::Inet6(v) => v
                .iter()
                .any(|x| matches!(x, AfSpecInet6::Stats(_) | AfSpecInet6::Icmp6Stats(_))),
            _ => false,
        }),
        _ => false,
    });
    (device, inet6)
}

/// What `RTEXT_FILTER_SKIP_STATS` leaves out on the kernel of the capture (Linux 6.18): IPv6's
/// per-device statistics (and VFs', which these links have none of); the device's own
/// `IFLA_STATS` and `IFLA_STATS64` are still sent. Linux leaves those out too only from 6.19
/// on (commit 105bae321862, "rtnetlink: honor RTEXT_FILTER_SKIP_STATS in IFLA_STATS").
///
/// What `RTEXT_FILTER_SKIP_STATS` leaves out on this kernel: before Linux 6.19, IPv6's
/// per-device statistics only (368 bytes of each link's ~1500 here), not the device counters
/// (netlink_link_dump_skipping_stats_parses_to_the_same_links).
const SKIPPED_STATISTICS: (bool, bool) = (true, false);

fn loopback(up: bool) -> LinkState {
    LinkState {
        index: 1,
        name: "lo".into(),
        kind: LinkKind::Loopback,
        alias: None,
        mtu: 65536,
        mac: Some(MacAddr([0; 6])),
        up,
        lower_up: up,
        operstate: if up { "unknown" } else { "down" }.into(),
        master: None,
        peer_index: None,
        peer_netnsid: None,
        group: 0,
        isolated: false,
        stp: None,
    }
}

#[test]
fn netlink_link_get_answer_is_the_link_without_ipv6_statistics() {
    let d = answer_datagrams("answers/link_get.hex");
    assert_eq!(d.len(), 1);
    let l = answered_link(&d[0], 1);
    assert_eq!(statistics(&l), SKIPPED_STATISTICS);
    assert_eq!(link::parse(&l), loopback(true));
}

/// `link::get` turns exactly this refusal into `Ok(None)`.
#[test]
fn netlink_link_get_of_missing_index_is_enodev_without_message() {
    let d = answer_datagrams("answers/link_get_missing.hex");
    assert_eq!(d.len(), 1);
    assert_eq!(messages(&d[0])[0].0, NLMSG_ERROR);
    assert_eq!(messages(&d[0])[0].1, NLM_F_CAPPED);
    assert_eq!(refusal(&d[0]), (libc::ENODEV, None));
}

/// What `nsid::ids_of` keeps of an answer: `NETNSA_NSID` when it is an id; the kernel answers
/// -1 (`NETNSA_NSID_NOT_ASSIGNED`) for a namespace it has no id for.
fn kept_nsid(m: &RouteNetlinkMessage) -> Option<i32> {
    match m {
        RouteNetlinkMessage::NewNsId(n) => n.attributes.iter().find_map(|a| match a {
            NsidAttribute::Id(id) if *id >= 0 => Some(*id),
            _ => None,
        }),
        _ => None,
    }
}

/// `nsid::ids_of(&[a, b])` after `ip netns set b 3`: a has no id (-1), b has 3. Asking
/// allocated none (`ip netns list-id` was the same afterwards: sent/nsid_ids.plumb.hex).
#[test]
fn netlink_nsid_answers_carry_the_id_or_minus_one() {
    let d = answer_datagrams("answers/nsid_ids.hex");
    assert_eq!(d.len(), 2);
    let mut kept = Vec::new();
    for (i, (dg, id)) in d.iter().zip([-1, NSID_B]).enumerate() {
        let (h, m) = decode(dg);
        assert_eq!(
            (h.message_type, h.flags),
            (88, 0),
            "RTM_NEWNSID, a get's answer"
        );
        assert_eq!(h.sequence_number, SEQ + i as u32);
        let RouteNetlinkMessage::NewNsId(n) = &m else {
            panic!("not an nsid: {m:?}")
        };
        assert_eq!(n.header.family, AddressFamily::Unspec);
        assert_eq!(n.attributes, [NsidAttribute::Id(id)]);
        kept.push(kept_nsid(&m));
    }
    assert_eq!(kept, [None, Some(NSID_B)]);
}

/// `nsid::link_in_each(&[3, 99], 1)`: lo of namespace b (down: `ip netns add` leaves it so),
/// answered with `IFLA_TARGET_NETNSID` 3 first, which `link::parse` passes over.
#[test]
fn netlink_link_get_by_nsid_answer_carries_the_nsid_and_parses_as_the_link() {
    let d = answer_datagrams("answers/nsid_link.hex");
    assert_eq!(d.len(), 2);
    let l = answered_link(&d[0], 1);
    assert_eq!(l.attributes[0], LinkAttribute::IfNetnsId(NSID_B));
    assert_eq!(statistics(&l), SKIPPED_STATISTICS);
    assert_eq!(link::parse(&l), loopback(false));
}

/// An nsid that names no namespace: `EINVAL` (rtnl_get_net_ns_capable), capped, without an
/// extended-ack message. `nsid::link_in_each` turns only `ENODEV` into `Ok(None)`, so this
/// stays an error, and `inspect::snapshot` then reads that namespace by entering it.
#[test]
fn netlink_link_get_by_unknown_nsid_is_einval_without_message() {
    let d = answer_datagrams("answers/nsid_link.hex");
    assert_eq!(seq_of(&d[1]), 2);
    assert_eq!(messages(&d[1])[0].0, NLMSG_ERROR);
    assert_eq!(messages(&d[1])[0].1, NLM_F_CAPPED);
    assert_eq!(refusal(&d[1]), (libc::EINVAL, None));
}

/// An index the namespace an nsid names does not have: `ENODEV`, which `nsid::link_in_each`
/// turns into `Ok(None)`.
#[test]
fn netlink_link_get_by_nsid_of_missing_index_is_enodev() {
    let d = answer_datagrams("answers/nsid_link_missing.hex");
    assert_eq!(d.len(), 1);
    assert_eq!(messages(&d[0])[0].1, NLM_F_CAPPED);
    assert_eq!(refusal(&d[0]), (libc::ENODEV, None));
}

/// The link dump as plumb sends it now (skipping statistics) against the one it sent before,
/// captured in two runs of capture/rich.sh: the same links, without IPv6's statistics (see
/// [`SKIPPED_STATISTICS`]), in fewer bytes.
#[test]
fn netlink_link_dump_skipping_stats_parses_to_the_same_links() {
    let now = dump("dumps/link_skip_stats.hex", 1);
    let before = dump("dumps/link.hex", 100);
    let parse_all = |msgs: &[RouteNetlinkMessage]| -> Vec<LinkState> {
        msgs.iter()
            .map(|m| match m {
                RouteNetlinkMessage::NewLink(l) => link::parse(l),
                other => panic!("not a link: {other:?}"),
            })
            .collect()
    };
    assert_eq!(parse_all(&now), parse_all(&before));
    let stats = |msgs: &[RouteNetlinkMessage]| -> Vec<(bool, bool)> {
        msgs.iter()
            .map(|m| match m {
                RouteNetlinkMessage::NewLink(l) => statistics(l),
                other => panic!("not a link: {other:?}"),
            })
            .collect()
    };
    assert_eq!(stats(&now), [SKIPPED_STATISTICS; 8]);
    assert_eq!(stats(&before), [(true, true); 8]);
    // Each link 368 bytes smaller: IFLA_INET6_STATS (4 + 38 u64) and IFLA_INET6_ICMP6STATS
    // (4 + 7 u64); the dump 12744 bytes before, 9800 now.
    let sizes = |rel| -> Vec<usize> {
        load_hex(rel)
            .iter()
            .flat_map(|d| {
                messages(d)
                    .into_iter()
                    .map(|m| m.2.len())
                    .collect::<Vec<_>>()
            })
            .collect()
    };
    let (now, before) = (sizes("dumps/link_skip_stats.hex"), sizes("dumps/link.hex"));
    assert_eq!(now.len(), before.len());
    for (n, b) in now.iter().zip(&before).take(now.len() - 1) {
        assert_eq!(b - n, 4 + 38 * 8 + 4 + 7 * 8);
    }
    assert_eq!(
        (now.iter().sum::<usize>(), before.iter().sum::<usize>()),
        (9800, 12744)
    );
}

/// Every answer to plumb's reads (links, namespace ids, refusals) and the link dump skipping
/// statistics re-emit byte for byte and parse the same.
#[test]
fn netlink_read_answers_reemit_byte_for_byte_and_parse_the_same() {
    let counts: Vec<usize> = [
        "dumps/link_skip_stats.hex",
        "answers/link_get.hex",
        "answers/link_get_missing.hex",
        "answers/nsid_ids.hex",
        "answers/nsid_link.hex",
        "answers/nsid_link_missing.hex",
    ]
    .into_iter()
    .map(assert_reemits)
    .collect();
    assert_eq!(counts, [8 + 1, 1, 1, 2, 2, 1]);
}
