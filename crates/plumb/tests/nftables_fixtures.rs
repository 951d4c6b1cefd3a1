//! The nf_tables reference bytes (`fixtures/nftables`): what `nft` sent to the kernel for
//! plumb's tables, one netlink message per file, and what the kernel answered to the dumps
//! plumb will read.
//!
//! This file checks that:
//! - every case script (`fixtures/nftables/cases/*.nft`) is exactly what plumb renders for the
//!   case's [`Table`] (`Table::nft_script`), so the bytes stored for a case are the bytes of a
//!   table plumb really makes;
//! - plumb's own encoder sends, message by message, the bytes nft sent for each case;
//! - every fixture is well-formed netlink: one message per file, its length, a type in the
//!   `NFNL_SUBSYS_NFTABLES` range (or a batch delimiter, `NLMSG_DONE`), a batch framed by
//!   `NFNL_MSG_BATCH_BEGIN`/`END`, attributes whose TLVs nest properly;
//! - the messages of a case say what its script says: one `NEWRULE` per rule, in order, each
//!   carrying its rule's comment; the chains and sets the script adds.
//!
//! On a failure it prints the message as a tree of named attributes. Comparison tests against
//! plumb's encoder get the bytes from [`fixture_messages`]; `fixtures/nftables/README.md` lists
//! the bytes that differ from run to run and must be masked.
//!
//! Nothing here touches the kernel: `fixtures/nftables/capture/capture.sh` captures the bytes
//! again, in a sandbox.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use plumb::firewall::{self, Rule, Table};
use plumb::model::{self, Proto, Service};

// ---------------------------------------------------------------------------------------------
// Fixtures

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/nftables")
}

/// One message of a fixture directory: its file name (`NN-TYPE.hex`) and its bytes.
struct Fixture {
    name: String,
    bytes: Vec<u8>,
}

/// The hex of one fixture file: `#` lines are comments, the rest is one netlink message in hex.
fn load_hex(path: &Path) -> Vec<u8> {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let mut out = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.starts_with('#') {
            continue;
        }
        for byte in line.split_whitespace() {
            out.push(
                u8::from_str_radix(byte, 16)
                    .unwrap_or_else(|e| panic!("{}: bad hex byte {byte:?}: {e}", path.display())),
            );
        }
    }
    assert!(!out.is_empty(), "{} holds no bytes", path.display());
    out
}

/// The messages of a fixture directory, in order (`sent/CASE` or `dump/CASE`).
fn fixture_files(case: &str) -> Vec<Fixture> {
    let dir = fixtures().join(case);
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|e| {
            e.expect("directory entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|n| n.ends_with(".hex"))
        .collect();
    names.sort();
    for (i, n) in names.iter().enumerate() {
        assert!(
            n.starts_with(&format!("{:02}-", i + 1)),
            "{case}: {n} is out of sequence (expected {:02}-…)",
            i + 1
        );
    }
    names
        .into_iter()
        .map(|name| {
            let bytes = load_hex(&dir.join(&name));
            Fixture { name, bytes }
        })
        .collect()
}

/// The netlink messages of a case, in the order they went over the socket: for `sent/CASE`,
/// the batch nft sent (`NFNL_MSG_BATCH_BEGIN` … `NFNL_MSG_BATCH_END`); for `dump/CASE`, nft's
/// requests and the kernel's answers, each message as its own buffer.
fn fixture_messages(case: &str) -> Vec<Vec<u8>> {
    fixture_files(case).into_iter().map(|f| f.bytes).collect()
}

/// The case directories under `sent/` or `dump/`.
fn case_dirs(kind: &str) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(fixtures().join(kind))
        .unwrap_or_else(|e| panic!("cannot read {kind}: {e}"))
        .map(|e| e.expect("directory entry"))
        .filter(|e| e.path().is_dir())
        .map(|e| format!("{kind}/{}", e.file_name().to_string_lossy()))
        .collect();
    out.sort();
    assert!(!out.is_empty(), "no case under {kind}");
    out
}

// ---------------------------------------------------------------------------------------------
// The cases: plumb's tables

const TABLE: &str = "plumb-x";

fn net(s: &str) -> ipnet::IpNet {
    s.parse().unwrap()
}

fn table(f: impl FnOnce(&mut Table)) -> Table {
    let mut t = Table::empty(TABLE);
    f(&mut t);
    t
}

fn masq(subnet: &str, bridge: &str) -> Rule {
    Rule::Masquerade {
        subnet: net(subnet),
        bridge: bridge.into(),
    }
}

fn hairpin(subnet: &str, bridge: &str) -> Rule {
    Rule::HairpinMasquerade {
        subnet: net(subnet),
        bridge: bridge.into(),
    }
}

fn publish(proto: Proto, host_port: u16, to: &str, port: u16) -> Rule {
    Rule::Publish {
        proto,
        host_port,
        to: to.parse().unwrap(),
        port,
    }
}

fn allow(service: Service, from: Option<&str>) -> Rule {
    Rule::Allow {
        service,
        from: from.map(net),
    }
}

/// The host's table of a lab with two NAT networks (one with published ports, one with an
/// unaligned /20): masquerade, hairpin, publish, and isolation between the networks.
const HOST_LAB: &str = r#"name = "x"
[networks.lan0]
subnet = "10.90.0.0/24"
members = ["web", "client"]
nat = true
publish = ["8080:web:80/tcp", "5353:web:53/udp"]
[networks.lan1]
subnet = "10.91.16.0/20"
members = ["db"]
nat = true
"#;

/// A node's firewall: deny by default, ICMP, ports from anywhere and from IPv4 and IPv6
/// prefixes, byte-aligned or not.
const NODE_LAB: &str = r#"name = "x"
[networks.lan0]
subnet = "10.90.0.0/24"
members = ["web"]
[nodes.web.firewall]
ingress = "deny"
allow = ["icmp", "tcp/22", "udp/53 from 10.0.0.0/8", "tcp/80 from 10.90.0.0/24",
         "tcp/443 from 10.16.0.0/12", "tcp/8080 from fd00:90::/64",
         "udp/5353 from fd00:90:0:80::/57"]
"#;

fn host_full() -> Table {
    let topo = model::parse_toml(HOST_LAB, "host_full.toml").expect("valid lab");
    firewall::host_table(&topo)
}

fn node_full() -> Table {
    let topo = model::parse_toml(NODE_LAB, "node_full.toml").expect("valid lab");
    let web = topo
        .nodes
        .iter()
        .find(|n| n.name.to_string() == "web")
        .expect("node web");
    firewall::node_table(&topo, &web.name).expect("web has a firewall")
}

/// Every case made from a [`Table`]: `cases/CASE.nft` is its `nft_script()`, `cases/CASE.json`
/// its `batch()`, and `sent/CASE` the batch nft sent for the script.
fn table_cases() -> Vec<(&'static str, Table)> {
    use Proto::{Tcp, Udp};
    vec![
        // The replacement sequence alone: add, delete, add, the version chain.
        ("empty", Table::empty(TABLE)),
        (
            "masquerade_v4",
            table(|t| {
                t.nat = vec![
                    masq("10.88.0.0/24", "plumb0"),
                    masq("10.88.16.0/20", "plumb1"),
                    masq("10.0.0.0/8", "plumb2"),
                    masq("10.16.0.0/12", "plumb3"),
                ]
            }),
        ),
        (
            "masquerade_v6",
            table(|t| {
                t.nat = vec![
                    masq("fd00:88::/64", "plumb0"),
                    masq("fd00:88:0:80::/57", "plumb1"),
                    masq("fd00:89::/48", "plumb2"),
                ]
            }),
        ),
        (
            "hairpin_v4",
            table(|t| {
                t.nat = vec![
                    hairpin("10.88.0.0/24", "plumb0"),
                    hairpin("10.88.16.0/20", "plumb1"),
                ]
            }),
        ),
        (
            "hairpin_v6",
            table(|t| {
                t.nat = vec![
                    hairpin("fd00:88::/64", "plumb0"),
                    hairpin("fd00:88:0:80::/57", "plumb1"),
                ]
            }),
        ),
        (
            "publish_v4",
            table(|t| {
                t.publish = vec![
                    publish(Tcp, 8080, "10.88.0.2", 80),
                    publish(Udp, 5353, "10.88.0.2", 53),
                ]
            }),
        ),
        (
            "publish_v6",
            table(|t| {
                t.publish = vec![
                    publish(Tcp, 8080, "fd00:88::2", 80),
                    publish(Udp, 5353, "fd00:88::2", 53),
                ]
            }),
        ),
        (
            "isolate",
            table(|t| {
                t.bridges = vec!["plumb0".into(), "plumb1".into()];
                t.forward = vec![
                    Rule::IsolateNetwork {
                        bridge: "plumb0".into(),
                    },
                    Rule::IsolateNetwork {
                        bridge: "plumb1".into(),
                    },
                ];
            }),
        ),
        ("input_accept", table(|t| t.input_accept = Some(true))),
        (
            "input_deny",
            table(|t| {
                t.input_accept = Some(false);
                t.allow = vec![
                    allow(Service::Icmp, None),
                    allow(Service::Tcp(22), None),
                    allow(Service::Udp(53), None),
                    allow(Service::Tcp(80), Some("10.88.0.0/24")),
                    allow(Service::Tcp(443), Some("10.88.16.0/20")),
                    allow(Service::Udp(53), Some("10.0.0.0/8")),
                    allow(Service::Tcp(8443), Some("10.16.0.0/12")),
                    allow(Service::Tcp(8080), Some("fd00:88::/64")),
                    allow(Service::Udp(5353), Some("fd00:88:0:80::/57")),
                ];
            }),
        ),
        ("host_full", host_full()),
        ("node_full", node_full()),
    ]
}

/// Set `PLUMB_WRITE_NFT_CASES=1` to (re)write `cases/*.nft` from the tables
/// above (then capture the bytes again: `capture/capture.sh`).
const WRITE_CASES: &str = "PLUMB_WRITE_NFT_CASES";

/// The header of a generated case script (`#` lines, which nft ignores).
fn script_header(case: &str) -> String {
    format!(
        "# {case}: generated by tests/nftables_fixtures.rs ({WRITE_CASES}=1) from the case's\n\
         # Table; it is that table's nft_script(). Do not edit: change the case and write it again.\n"
    )
}

fn without_comments(text: &str) -> String {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| format!("{l}\n"))
        .collect()
}

#[test]
fn the_case_scripts_are_plumbs_own_rendering_of_the_cases() {
    let write = std::env::var_os(WRITE_CASES).is_some();
    let dir = fixtures().join("cases");
    for (case, t) in table_cases() {
        let script = t.nft_script();
        let nft_path = dir.join(format!("{case}.nft"));
        if write {
            std::fs::create_dir_all(&dir).expect("cases directory");
            std::fs::write(&nft_path, format!("{}{script}", script_header(case)))
                .expect("write the script");
            continue;
        }
        let stored = std::fs::read_to_string(&nft_path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", nft_path.display()));
        assert_eq!(
            without_comments(&stored),
            script,
            "cases/{case}.nft is no longer what plumb renders for the case: write the cases \
             again ({WRITE_CASES}=1) and capture the bytes again (capture/capture.sh)"
        );
    }
}

/// The sequence number of a message (bytes 8..12), which the encoder numbers its own way.
fn mask_seq(mut m: Vec<u8>) -> Vec<u8> {
    m[8..12].copy_from_slice(&[0; 4]);
    m
}

/// plumb's encoder against nft: for every table case, the transaction plumb sends (batch
/// framing included) is, message by message, the bytes nft sent for the same script, sequence
/// numbers aside (see the README for what else may differ, and the assertions below for what
/// does).
#[test]
fn plumbs_encoder_sends_the_bytes_nft_sends_for_every_case() {
    let mut compared = 0;
    for (case, t) in table_cases() {
        let theirs: Vec<Vec<u8>> = fixture_messages(&format!("sent/{case}"))
            .into_iter()
            .map(mask_seq)
            .collect();
        let ours: Vec<Vec<u8>> =
            plumb::nftables::batch_bytes(plumb::nftables::replace_table(&t), 0)
                .into_iter()
                .map(mask_seq)
                .collect();
        assert_eq!(
            ours.len(),
            theirs.len(),
            "{case}: plumb sends {} messages, nft sent {}",
            ours.len(),
            theirs.len()
        );
        for (k, (a, b)) in ours.iter().zip(&theirs).enumerate() {
            assert!(
                a == b,
                "{case}: message {k} differs\n--- plumb ---\n{}\n--- nft ---\n{}",
                tree(a),
                tree(b)
            );
            compared += 1;
        }
    }
    let theirs: Vec<Vec<u8>> = fixture_messages("sent/remove_table")
        .into_iter()
        .map(mask_seq)
        .collect();
    let ours: Vec<Vec<u8>> = plumb::nftables::batch_bytes(plumb::nftables::delete_table(TABLE), 0)
        .into_iter()
        .map(mask_seq)
        .collect();
    assert_eq!(ours, theirs, "remove_table");
    assert!(compared > 100, "{compared}");
}

// ---------------------------------------------------------------------------------------------
// nf_tables over netlink, as far as the fixtures need it: the numbers are those of the kernel's
// UAPI headers (linux/netlink.h, linux/netfilter/nfnetlink.h, linux/netfilter/nf_tables.h).

const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NFNL_MSG_BATCH_BEGIN: u16 = 0x10;
const NFNL_MSG_BATCH_END: u16 = 0x11;
const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_MULTI: u16 = 0x2;
const NLM_F_ACK: u16 = 0x4;
/// `NLM_F_ROOT | NLM_F_MATCH`.
const NLM_F_DUMP: u16 = 0x300;
/// On an `NLMSG_ERROR`: the request is echoed as its header only.
const NLM_F_CAPPED: u16 = 0x100;
const NLA_F_NESTED: u16 = 0x8000;
const NLA_TYPE_MASK: u16 = 0x3fff;
const NFPROTO_INET: u8 = 1;
/// `NF_DROP`, as a base chain's `NFTA_CHAIN_POLICY`.
const NF_DROP: u32 = 0;
/// `NF_INET_FORWARD`, as `NFTA_HOOK_HOOKNUM`.
const NF_INET_FORWARD: u32 = 2;

/// `enum nf_tables_msg_types`, in order.
const NFT_MSG: [&str; 25] = [
    "NEWTABLE",
    "GETTABLE",
    "DELTABLE",
    "NEWCHAIN",
    "GETCHAIN",
    "DELCHAIN",
    "NEWRULE",
    "GETRULE",
    "DELRULE",
    "NEWSET",
    "GETSET",
    "DELSET",
    "NEWSETELEM",
    "GETSETELEM",
    "DELSETELEM",
    "NEWGEN",
    "GETGEN",
    "TRACE",
    "NEWOBJ",
    "GETOBJ",
    "DELOBJ",
    "GETOBJ_RESET",
    "NEWFLOWTABLE",
    "GETFLOWTABLE",
    "DELFLOWTABLE",
];

/// The name of a message type as the fixtures' file names spell it (`NEWRULE`, `BATCH_BEGIN`,
/// `DONE`), or `None` for a type outside what the fixtures may hold.
fn type_name(ty: u16) -> Option<&'static str> {
    match ty {
        NLMSG_ERROR => Some("ERROR"),
        NLMSG_DONE => Some("DONE"),
        NFNL_MSG_BATCH_BEGIN => Some("BATCH_BEGIN"),
        NFNL_MSG_BATCH_END => Some("BATCH_END"),
        _ if ty >> 8 == NFNL_SUBSYS_NFTABLES => NFT_MSG.get(usize::from(ty & 0xff)).copied(),
        _ => None,
    }
}

/// Where an attribute sits, which says what its number means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ctx {
    Table,
    Chain,
    Hook,
    Rule,
    /// `NFTA_RULE_EXPRESSIONS`, `NFTA_SET_EXPRESSIONS`: a list of expressions.
    ExprList,
    Expr,
    /// `NFTA_EXPR_DATA` of the expression at this index of [`EXPRS`].
    ExprData(usize),
    Data,
    Verdict,
    Set,
    SetDesc,
    ElemList,
    /// `NFTA_SET_ELEM_LIST_ELEMENTS`: a list of elements.
    Elems,
    Elem,
    Gen,
    Batch,
    /// A nest this file does not know the insides of.
    Opaque,
}

/// How an attribute's payload reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A NUL-terminated string.
    Str,
    /// Big-endian.
    U32,
    /// Big-endian.
    U64,
    Bytes,
    /// libnftnl's user data: TLVs of a one-byte type and a one-byte length.
    Udata,
    Nest(Ctx),
}

type Schema = &'static [(u16, &'static str, Kind)];

use Kind::{Bytes, Nest, Str, Udata, U32, U64};

const TABLE_ATTRS: Schema = &[
    (1, "NAME", Str),
    (2, "FLAGS", U32),
    (3, "USE", U32),
    (4, "HANDLE", U64),
    (5, "PAD", Bytes),
    (6, "USERDATA", Udata),
    (7, "OWNER", U32),
];
const CHAIN_ATTRS: Schema = &[
    (1, "TABLE", Str),
    (2, "HANDLE", U64),
    (3, "NAME", Str),
    (4, "HOOK", Nest(Ctx::Hook)),
    (5, "POLICY", U32),
    (6, "USE", U32),
    (7, "TYPE", Str),
    (8, "COUNTERS", Nest(Ctx::Opaque)),
    (9, "PAD", Bytes),
    (10, "FLAGS", U32),
    (11, "ID", U32),
    (12, "USERDATA", Udata),
];
const HOOK_ATTRS: Schema = &[
    (1, "HOOKNUM", U32),
    (2, "PRIORITY", U32),
    (3, "DEV", Str),
    (4, "DEVS", Nest(Ctx::Opaque)),
];
const RULE_ATTRS: Schema = &[
    (1, "TABLE", Str),
    (2, "CHAIN", Str),
    (3, "HANDLE", U64),
    (4, "EXPRESSIONS", Nest(Ctx::ExprList)),
    (5, "COMPAT", Nest(Ctx::Opaque)),
    (6, "POSITION", U64),
    (7, "USERDATA", Udata),
    (8, "PAD", Bytes),
    (9, "ID", U32),
    (10, "POSITION_ID", U32),
    (11, "CHAIN_ID", U32),
];
const EXPR_ATTRS: Schema = &[(1, "NAME", Str), (2, "DATA", Nest(Ctx::Opaque))];
const SET_ATTRS: Schema = &[
    (1, "TABLE", Str),
    (2, "NAME", Str),
    (3, "FLAGS", U32),
    (4, "KEY_TYPE", U32),
    (5, "KEY_LEN", U32),
    (6, "DATA_TYPE", U32),
    (7, "DATA_LEN", U32),
    (8, "POLICY", U32),
    (9, "DESC", Nest(Ctx::SetDesc)),
    (10, "ID", U32),
    (11, "TIMEOUT", U64),
    (12, "GC_INTERVAL", U32),
    (13, "USERDATA", Udata),
    (14, "PAD", Bytes),
    (15, "OBJ_TYPE", U32),
    (16, "HANDLE", U64),
    (17, "EXPR", Nest(Ctx::Expr)),
    (18, "EXPRESSIONS", Nest(Ctx::ExprList)),
    // Newer than Linux 6.1's headers: only in the kernel's answers (Linux 6.16 and later).
    (19, "TYPE", Str),
    (20, "COUNT", U32),
];
const SET_DESC_ATTRS: Schema = &[(1, "SIZE", U32), (2, "CONCAT", Nest(Ctx::Opaque))];
const ELEM_LIST_ATTRS: Schema = &[
    (1, "TABLE", Str),
    (2, "SET", Str),
    (3, "ELEMENTS", Nest(Ctx::Elems)),
    (4, "SET_ID", U32),
];
const ELEM_ATTRS: Schema = &[
    (1, "KEY", Nest(Ctx::Data)),
    (2, "DATA", Nest(Ctx::Data)),
    (3, "FLAGS", U32),
    (4, "TIMEOUT", U64),
    (5, "EXPIRATION", U64),
    (6, "USERDATA", Udata),
    (7, "EXPR", Nest(Ctx::Expr)),
    (8, "PAD", Bytes),
    (9, "OBJREF", Str),
    (10, "KEY_END", Nest(Ctx::Data)),
    (11, "EXPRESSIONS", Nest(Ctx::ExprList)),
];
const DATA_ATTRS: Schema = &[(1, "VALUE", Bytes), (2, "VERDICT", Nest(Ctx::Verdict))];
const VERDICT_ATTRS: Schema = &[(1, "CODE", U32), (2, "CHAIN", Str), (3, "CHAIN_ID", U32)];
const GEN_ATTRS: Schema = &[(1, "ID", U32), (2, "PROC_PID", U32), (3, "PROC_NAME", Str)];
const BATCH_ATTRS: Schema = &[(1, "GENID", U32)];

/// The expressions plumb's rules use, with their `NFTA_EXPR_DATA` attributes.
const EXPRS: &[(&str, Schema)] = &[
    (
        "payload",
        &[
            (1, "DREG", U32),
            (2, "BASE", U32),
            (3, "OFFSET", U32),
            (4, "LEN", U32),
            (5, "SREG", U32),
            (6, "CSUM_TYPE", U32),
            (7, "CSUM_OFFSET", U32),
            (8, "CSUM_FLAGS", U32),
        ],
    ),
    (
        "cmp",
        &[
            (1, "SREG", U32),
            (2, "OP", U32),
            (3, "DATA", Nest(Ctx::Data)),
        ],
    ),
    (
        "meta",
        &[(1, "DREG", U32), (2, "KEY", U32), (3, "SREG", U32)],
    ),
    (
        "bitwise",
        &[
            (1, "SREG", U32),
            (2, "DREG", U32),
            (3, "LEN", U32),
            (4, "MASK", Nest(Ctx::Data)),
            (5, "XOR", Nest(Ctx::Data)),
            (6, "OP", U32),
            (7, "DATA", Nest(Ctx::Data)),
        ],
    ),
    (
        "lookup",
        &[
            (1, "SET", Str),
            (2, "SREG", U32),
            (3, "DREG", U32),
            (4, "SET_ID", U32),
            (5, "FLAGS", U32),
        ],
    ),
    (
        "ct",
        &[
            (1, "DREG", U32),
            (2, "KEY", U32),
            (3, "DIRECTION", Bytes),
            (4, "SREG", U32),
        ],
    ),
    (
        "immediate",
        &[(1, "DREG", U32), (2, "DATA", Nest(Ctx::Data))],
    ),
    (
        "masq",
        &[
            (1, "FLAGS", U32),
            (2, "REG_PROTO_MIN", U32),
            (3, "REG_PROTO_MAX", U32),
        ],
    ),
    (
        "nat",
        &[
            (1, "TYPE", U32),
            (2, "FAMILY", U32),
            (3, "REG_ADDR_MIN", U32),
            (4, "REG_ADDR_MAX", U32),
            (5, "REG_PROTO_MIN", U32),
            (6, "REG_PROTO_MAX", U32),
            (7, "FLAGS", U32),
        ],
    ),
    (
        "fib",
        &[(1, "DREG", U32), (2, "RESULT", U32), (3, "FLAGS", U32)],
    ),
];

fn schema(ctx: Ctx) -> Schema {
    match ctx {
        Ctx::Table => TABLE_ATTRS,
        Ctx::Chain => CHAIN_ATTRS,
        Ctx::Hook => HOOK_ATTRS,
        Ctx::Rule => RULE_ATTRS,
        Ctx::Expr => EXPR_ATTRS,
        Ctx::ExprData(i) => EXPRS[i].1,
        Ctx::Data => DATA_ATTRS,
        Ctx::Verdict => VERDICT_ATTRS,
        Ctx::Set => SET_ATTRS,
        Ctx::SetDesc => SET_DESC_ATTRS,
        Ctx::ElemList => ELEM_LIST_ATTRS,
        Ctx::Elem => ELEM_ATTRS,
        Ctx::Gen => GEN_ATTRS,
        Ctx::Batch => BATCH_ATTRS,
        Ctx::ExprList | Ctx::Elems | Ctx::Opaque => &[],
    }
}

/// The attributes of a message of this type.
fn top_ctx(ty: u16) -> Ctx {
    match type_name(ty).unwrap_or("") {
        "BATCH_BEGIN" | "BATCH_END" => Ctx::Batch,
        n if n.ends_with("FLOWTABLE") || n.contains("OBJ") => Ctx::Opaque,
        n if n.ends_with("SETELEM") => Ctx::ElemList,
        n if n.ends_with("TABLE") => Ctx::Table,
        n if n.ends_with("CHAIN") => Ctx::Chain,
        n if n.ends_with("RULE") => Ctx::Rule,
        n if n.ends_with("SET") => Ctx::Set,
        n if n.ends_with("GEN") => Ctx::Gen,
        _ => Ctx::Opaque,
    }
}

/// One attribute, decoded.
#[derive(Debug, Clone)]
struct Attr {
    /// `TABLE`, `EXPRESSIONS`, `ELEM`, or the number where this file has no name for it.
    name: String,
    payload: Vec<u8>,
    children: Vec<Attr>,
}

impl Attr {
    fn child(&self, name: &str) -> Option<&Attr> {
        self.children.iter().find(|a| a.name == name)
    }

    fn str(&self) -> String {
        String::from_utf8_lossy(self.payload.strip_suffix(&[0]).unwrap_or(&self.payload))
            .into_owned()
    }

    fn u32(&self) -> u32 {
        u32::from_be_bytes(self.payload[..4].try_into().expect("4 bytes"))
    }
}

fn find<'a>(attrs: &'a [Attr], name: &str) -> Option<&'a Attr> {
    attrs.iter().find(|a| a.name == name)
}

/// What a message is.
#[derive(Debug, Clone)]
enum Body {
    /// `struct nfgenmsg` and attributes.
    Nfgen {
        family: u8,
        res_id: u16,
        attrs: Vec<Attr>,
    },
    /// `NLMSG_ERROR`: the errno and the echoed request (its header alone if capped).
    Error {
        errno: i32,
        request: Vec<u8>,
    },
    Done,
}

#[derive(Debug, Clone)]
struct Msg {
    ty: u16,
    flags: u16,
    seq: u32,
    pid: u32,
    body: Body,
}

impl Msg {
    fn name(&self) -> &'static str {
        type_name(self.ty).unwrap_or("?")
    }

    fn attrs(&self) -> &[Attr] {
        match &self.body {
            Body::Nfgen { attrs, .. } => attrs,
            _ => &[],
        }
    }

    fn attr(&self, name: &str) -> Option<&Attr> {
        find(self.attrs(), name)
    }
}

/// Reads the TLVs of `m[start..end]` in context `ctx`, appending a line per attribute to `out`.
/// `flagged`: every nest must carry `NLA_F_NESTED` (nft sets it; the kernel's answers leave it
/// off many nests).
fn parse_attrs(
    m: &[u8],
    start: usize,
    end: usize,
    ctx: Ctx,
    flagged: bool,
    depth: usize,
    out: &mut String,
) -> Result<Vec<Attr>, String> {
    let indent = "  ".repeat(depth);
    let mut attrs = Vec::new();
    let mut off = start;
    let mut expr = None;
    while off < end {
        if end - off < 4 {
            return Err(format!("{} stray bytes at offset {off}", end - off));
        }
        let len = usize::from(u16::from_ne_bytes([m[off], m[off + 1]]));
        let raw = u16::from_ne_bytes([m[off + 2], m[off + 3]]);
        let ty = raw & NLA_TYPE_MASK;
        let nested = raw & NLA_F_NESTED != 0;
        if len < 4 || off + len > end {
            return Err(format!(
                "attribute {ty} at offset {off}: nla_len {len} does not fit in its parent \
                 (bytes {start}..{end})"
            ));
        }
        let payload = &m[off + 4..off + len];
        let (name, kind) = match ctx {
            Ctx::ExprList => (elem_name(ty), Nest(Ctx::Expr)),
            Ctx::Elems => (elem_name(ty), Nest(Ctx::Elem)),
            Ctx::Expr if ty == 2 => (
                "DATA".to_string(),
                Nest(expr.map_or(Ctx::Opaque, Ctx::ExprData)),
            ),
            _ => match schema(ctx).iter().find(|(n, _, _)| *n == ty) {
                Some((_, name, kind)) => (name.to_string(), *kind),
                None if nested => (ty.to_string(), Nest(Ctx::Opaque)),
                None => (ty.to_string(), Bytes),
            },
        };
        let at = format!("{name} (offset {off})");
        let children = if let Nest(inner) = kind {
            if flagged && !nested {
                return Err(format!("{at}: a nest without NLA_F_NESTED"));
            }
            let _ = writeln!(
                out,
                "{indent}{name}{}",
                if nested { "" } else { " (no NLA_F_NESTED)" }
            );
            parse_attrs(m, off + 4, off + len, inner, flagged, depth + 1, out)
                .map_err(|e| format!("in {at}: {e}"))?
        } else {
            if nested {
                return Err(format!(
                    "{at}: NLA_F_NESTED on an attribute that is no nest"
                ));
            }
            let _ = writeln!(out, "{indent}{name} {}", show(kind, payload));
            check_leaf(kind, payload).map_err(|e| format!("{at}: {e}"))?;
            Vec::new()
        };
        if ctx == Ctx::Expr && ty == 1 {
            let n = String::from_utf8_lossy(payload.strip_suffix(&[0]).unwrap_or(payload));
            expr = EXPRS.iter().position(|(e, _)| *e == n);
        }
        attrs.push(Attr {
            name,
            payload: payload.to_vec(),
            children,
        });
        // The next attribute starts 4-aligned; the padding is inside the parent.
        off += (len + 3) & !3;
    }
    if off != end {
        return Err(format!(
            "the last attribute's padding runs past its parent ({off} > {end})"
        ));
    }
    Ok(attrs)
}

/// A list's entries: the kernel reads every nest whatever its number; nft numbers expressions
/// 1 (`NFTA_LIST_ELEM`) and set elements 1, 2, 3...
fn elem_name(ty: u16) -> String {
    if ty == 1 {
        "ELEM".into()
    } else {
        format!("ELEM#{ty}")
    }
}

fn check_leaf(kind: Kind, p: &[u8]) -> Result<(), String> {
    match kind {
        Str if p.last() != Some(&0) => Err("a string without its NUL".into()),
        U32 if p.len() != 4 => Err(format!("a u32 of {} bytes", p.len())),
        U64 if p.len() != 8 => Err(format!("a u64 of {} bytes", p.len())),
        Udata => {
            let mut i = 0;
            while i < p.len() {
                if i + 2 > p.len() || i + 2 + usize::from(p[i + 1]) > p.len() {
                    return Err(format!("user data TLV at {i} overruns {} bytes", p.len()));
                }
                i += 2 + usize::from(p[i + 1]);
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

fn show(kind: Kind, p: &[u8]) -> String {
    match kind {
        Str if p.last() == Some(&0) => format!("{:?}", String::from_utf8_lossy(&p[..p.len() - 1])),
        U32 if p.len() == 4 => u32::from_be_bytes(p.try_into().expect("4")).to_string(),
        U64 if p.len() == 8 => u64::from_be_bytes(p.try_into().expect("8")).to_string(),
        Udata => {
            let mut parts = Vec::new();
            let mut i = 0;
            while i + 2 <= p.len() {
                let end = (i + 2 + usize::from(p[i + 1])).min(p.len());
                let v = &p[i + 2..end];
                parts.push(match (p[i], v.strip_suffix(&[0])) {
                    (0, Some(s)) if s.iter().all(|c| c.is_ascii_graphic() || *c == b' ') => {
                        format!("{}={:?}", p[i], String::from_utf8_lossy(s))
                    }
                    _ => format!("{}={}", p[i], hex_line(v)),
                });
                i = end;
            }
            format!("[{}]", parts.join(", "))
        }
        _ => hex_line(p),
    }
}

fn hex_line(b: &[u8]) -> String {
    b.iter()
        .map(|x| format!("{x:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn hex(bytes: &[u8]) -> String {
    bytes
        .chunks(16)
        .map(hex_line)
        .collect::<Vec<_>>()
        .join("\n")
}

/// Decodes one message, checking that it is well-formed: `nlmsg_len` is its length (a
/// multiple of 4), its type is one the fixtures may hold, its attributes nest properly. `out`
/// gets the readable tree, as far as it could be read.
fn parse_msg(m: &[u8], flagged: bool, out: &mut String) -> Result<Msg, String> {
    if m.len() < 16 {
        return Err(format!("{} bytes: shorter than a netlink header", m.len()));
    }
    let len = u32::from_ne_bytes(m[0..4].try_into().expect("4")) as usize;
    let ty = u16::from_ne_bytes([m[4], m[5]]);
    let flags = u16::from_ne_bytes([m[6], m[7]]);
    let seq = u32::from_ne_bytes(m[8..12].try_into().expect("4"));
    let pid = u32::from_ne_bytes(m[12..16].try_into().expect("4"));
    let name = type_name(ty);
    let _ = writeln!(
        out,
        "{} (0x{ty:04x}) len {len} flags 0x{flags:04x} seq {seq} pid {pid}",
        name.unwrap_or("?")
    );
    if len != m.len() {
        return Err(format!(
            "nlmsg_len {len}, but the message has {} bytes",
            m.len()
        ));
    }
    if len % 4 != 0 {
        return Err(format!("nlmsg_len {len} is not a multiple of 4"));
    }
    if name.is_none() {
        return Err(format!(
            "type 0x{ty:04x} is neither NFNL_SUBSYS_NFTABLES's (0x0a00..0x0a18), a batch \
             delimiter, NLMSG_DONE nor NLMSG_ERROR"
        ));
    }
    let body = match ty {
        NLMSG_DONE => Body::Done,
        NLMSG_ERROR => {
            if len < 20 + 16 {
                return Err("an NLMSG_ERROR without the request's header".into());
            }
            let errno = i32::from_ne_bytes(m[16..20].try_into().expect("4"));
            let olen = u32::from_ne_bytes(m[20..24].try_into().expect("4")) as usize;
            let echoed = if flags & NLM_F_CAPPED != 0 { 16 } else { olen };
            if 20 + echoed > len {
                return Err(format!(
                    "the echoed request ({echoed} bytes) overruns the message"
                ));
            }
            let _ = writeln!(out, "  error {errno}, echoed request of {olen} bytes");
            // What follows are the extended ack's TLVs (NLMSGERR_ATTR_*).
            parse_attrs(m, 20 + echoed, len, Ctx::Opaque, false, 1, out)?;
            Body::Error {
                errno,
                request: m[20..20 + echoed].to_vec(),
            }
        }
        _ => {
            if len < 20 {
                return Err("no room for struct nfgenmsg".into());
            }
            let (family, version) = (m[16], m[17]);
            let res_id = u16::from_be_bytes([m[18], m[19]]);
            let _ = writeln!(
                out,
                "  nfgenmsg family {family} version {version} res_id {res_id}"
            );
            if version != 0 {
                return Err(format!("nfgenmsg version {version}, not NFNETLINK_V0"));
            }
            let attrs = parse_attrs(m, 20, len, top_ctx(ty), flagged, 2, out)?;
            Body::Nfgen {
                family,
                res_id,
                attrs,
            }
        }
    };
    Ok(Msg {
        ty,
        flags,
        seq,
        pid,
        body,
    })
}

/// Decodes a fixture's message, or fails with the tree as far as it could be read and the hex.
fn decode(case: &str, f: &Fixture, flagged: bool) -> Msg {
    let mut tree = String::new();
    match parse_msg(&f.bytes, flagged, &mut tree) {
        Ok(m) => {
            let want = format!("-{}.hex", m.name());
            assert!(
                f.name.ends_with(&want),
                "{case}/{}: the file is named for another type than {}\n{tree}",
                f.name,
                m.name()
            );
            m
        }
        Err(e) => panic!(
            "{case}/{} is not well-formed: {e}\n{tree}\n{}",
            f.name,
            hex(&f.bytes)
        ),
    }
}

/// A readable tree of a message, for failure messages.
fn tree(bytes: &[u8]) -> String {
    let mut out = String::new();
    if let Err(e) = parse_msg(bytes, false, &mut out) {
        let _ = writeln!(out, "!! {e}");
    }
    out
}

// ---------------------------------------------------------------------------------------------
// capture/cases.sh: which case is which

/// One line of `capture/cases.sh`.
#[derive(Debug)]
struct Capture {
    /// `sent`, `fails` or `dump`.
    kind: String,
    name: String,
    /// The script (`sent`, `fails`) or nft's arguments (`dump`).
    what: String,
    /// Scripts applied before, uncaptured.
    setup: Vec<String>,
}

/// Splits a line of `cases.sh` into words (`'...'` quotes one word).
fn words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut any = false;
    for c in line.chars() {
        match c {
            '\'' => {
                quoted = !quoted;
                any = true;
            }
            ' ' if !quoted => {
                if any {
                    out.push(std::mem::take(&mut cur));
                    any = false;
                }
            }
            c => {
                cur.push(c);
                any = true;
            }
        }
    }
    if any {
        out.push(cur);
    }
    out
}

fn captures() -> Vec<Capture> {
    let path = fixtures().join("capture/cases.sh");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    text.lines()
        .filter(|l| l.starts_with("sent ") || l.starts_with("fails ") || l.starts_with("dump "))
        .map(|l| {
            let w = words(l);
            Capture {
                kind: w[0].clone(),
                name: w[1].clone(),
                what: w[2].clone(),
                setup: w[3..].to_vec(),
            }
        })
        .collect()
}

/// The commands of a case script, without comments and blank lines.
fn script(name: &str) -> Vec<String> {
    let path = fixtures().join("cases").join(name);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect()
}

/// The object a script command names: `add chain inet plumb-x NAME …` → `NAME`.
fn object(line: &str) -> String {
    line.split_whitespace().nth(4).unwrap_or("").to_owned()
}

/// A rule command's comment, if it has one.
fn comment(line: &str) -> Option<String> {
    let (_, rest) = line.split_once(" comment \"")?;
    Some(rest.strip_suffix('"').unwrap_or(rest).to_owned())
}

/// The elements of a set command: `elements = { "a", "b" }` → `["a", "b"]`.
fn elements(line: &str) -> Vec<String> {
    let Some((_, rest)) = line.split_once("elements = {") else {
        return Vec::new();
    };
    let list = rest.split('}').next().unwrap_or("");
    list.split(',')
        .map(|e| e.trim().trim_matches('"').to_owned())
        .filter(|e| !e.is_empty())
        .collect()
}

/// A rule's comment, from its `NFTA_RULE_USERDATA` (libnftnl's `NFTNL_UDATA_RULE_COMMENT`,
/// type 0).
fn rule_comment(m: &Msg) -> Option<String> {
    let p = &m.attr("USERDATA")?.payload;
    let mut i = 0;
    while i + 2 <= p.len() {
        let end = (i + 2 + usize::from(p[i + 1])).min(p.len());
        if p[i] == 0 {
            let v = &p[i + 2..end];
            return Some(String::from_utf8_lossy(v.strip_suffix(&[0]).unwrap_or(v)).into_owned());
        }
        i = end;
    }
    None
}

/// The values of the keys of a NEWSETELEM, as strings (interface names).
fn element_keys(m: &Msg) -> Vec<String> {
    let Some(list) = m.attr("ELEMENTS") else {
        return Vec::new();
    };
    list.children
        .iter()
        .filter_map(|e| e.child("KEY")?.child("VALUE"))
        .map(|v| {
            let s = v.payload.split(|b| *b == 0).next().unwrap_or(&[]);
            String::from_utf8_lossy(s).into_owned()
        })
        .collect()
}

/// Every `lookup` expression's `SET_ID` in a rule.
fn lookup_set_ids(m: &Msg) -> Vec<u32> {
    let Some(exprs) = m.attr("EXPRESSIONS") else {
        return Vec::new();
    };
    exprs
        .children
        .iter()
        .filter(|e| e.child("NAME").map(Attr::str).as_deref() == Some("lookup"))
        .filter_map(|e| e.child("DATA")?.child("SET_ID").map(Attr::u32))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The checks

#[test]
fn every_captured_case_has_its_fixtures_and_no_fixture_is_left_over() {
    let caps = captures();
    let names = |kinds: &[&str], dir: &str| -> Vec<String> {
        let mut v: Vec<String> = caps
            .iter()
            .filter(|c| kinds.contains(&c.kind.as_str()))
            .map(|c| format!("{dir}/{}", c.name))
            .collect();
        v.sort();
        v
    };
    assert_eq!(case_dirs("sent"), names(&["sent", "fails"], "sent"));
    assert_eq!(case_dirs("dump"), names(&["dump"], "dump"));
    assert_eq!(case_dirs("answer"), names(&["fails"], "answer"));
    // Every table case is captured, under its own name, from its own script.
    for (case, _) in table_cases() {
        assert!(
            caps.iter()
                .any(|c| c.kind == "sent" && c.name == case && c.what == format!("{case}.nft")),
            "capture/cases.sh does not capture the table case {case}"
        );
    }
}

#[test]
fn sent_batches_are_well_formed_batches() {
    for case in case_dirs("sent") {
        let files = fixture_files(&case);
        assert_eq!(
            fixture_messages(&case).len(),
            files.len(),
            "{case}: one message per file"
        );
        let msgs: Vec<Msg> = files.iter().map(|f| decode(&case, f, true)).collect();
        let last = msgs.len() - 1;
        assert!(last >= 2, "{case}: a batch with nothing in it");
        let mut sets = Vec::new();
        for (i, (m, f)) in msgs.iter().zip(&files).enumerate() {
            let at = || format!("{case}/{}\n{}", f.name, tree(&f.bytes));
            let delimiter = match i {
                0 => NFNL_MSG_BATCH_BEGIN,
                i if i == last => NFNL_MSG_BATCH_END,
                _ => 0,
            };
            assert_eq!(m.flags & NLM_F_REQUEST, NLM_F_REQUEST, "{}", at());
            assert_eq!(m.pid, 0, "{}", at());
            assert_eq!(m.seq, msgs[0].seq + i as u32, "{}: seq", at());
            let Body::Nfgen { family, res_id, .. } = m.body else {
                panic!("{}: not an nfnetlink message", at());
            };
            if delimiter != 0 {
                assert_eq!(m.ty, delimiter, "{}: the batch is not framed", at());
                assert_eq!(
                    (family, res_id),
                    (0, NFNL_SUBSYS_NFTABLES),
                    "{}: a batch delimiter names the subsystem in res_id",
                    at()
                );
                continue;
            }
            assert_eq!(m.ty >> 8, NFNL_SUBSYS_NFTABLES, "{}", at());
            assert_eq!((family, res_id), (NFPROTO_INET, 0), "{}", at());
            assert_eq!(m.flags & NLM_F_ACK, 0, "{}: nft asks for no ack", at());
            // Sets are referred to by the ID the batch gives them, before the kernel names them.
            match m.name() {
                "NEWSET" => sets.push(m.attr("ID").expect("a new set's ID").u32()),
                "NEWSETELEM" => {
                    let id = m
                        .attr("SET_ID")
                        .expect("elements name their set's ID")
                        .u32();
                    assert!(sets.contains(&id), "{}: set id {id} is unknown", at());
                }
                "NEWRULE" => {
                    for id in lookup_set_ids(m) {
                        assert!(sets.contains(&id), "{}: set id {id} is unknown", at());
                    }
                }
                _ => {}
            }
        }
    }
}

#[test]
fn sent_batches_say_what_their_scripts_say() {
    for c in captures()
        .into_iter()
        .filter(|c| c.kind == "sent" || c.kind == "fails")
    {
        let case = format!("sent/{}", c.name);
        let lines = script(&c.what);
        let msgs: Vec<Msg> = fixture_files(&case)
            .iter()
            .map(|f| decode(&case, f, true))
            .collect();
        let of = |name: &str| -> Vec<&Msg> { msgs.iter().filter(|m| m.name() == name).collect() };
        let lines_of = |prefix: &str| -> Vec<&String> {
            lines.iter().filter(|l| l.starts_with(prefix)).collect()
        };
        let names = |ms: Vec<&Msg>, attr: &str| -> Vec<String> {
            ms.iter()
                .map(|m| m.attr(attr).map(Attr::str).unwrap_or_default())
                .collect()
        };
        for (kind, prefix) in [("NEWTABLE", "add table"), ("DELTABLE", "delete table")] {
            assert_eq!(of(kind).len(), lines_of(prefix).len(), "{case}: {kind}");
            for m in of(kind) {
                assert_eq!(m.attr("NAME").map(Attr::str).as_deref(), Some(TABLE));
            }
        }
        let want: Vec<String> = lines_of("add chain").iter().map(|l| object(l)).collect();
        assert_eq!(names(of("NEWCHAIN"), "NAME"), want, "{case}: chains");
        // Named sets, and the anonymous ones of `{ … }` in rules, which nft names `__set%d`
        // for the kernel to number.
        let (anon, named): (Vec<&Msg>, Vec<&Msg>) = of("NEWSET")
            .into_iter()
            .partition(|m| m.attr("NAME").map(Attr::str).as_deref() == Some("__set%d"));
        let want: Vec<String> = lines_of("add set").iter().map(|l| object(l)).collect();
        assert_eq!(names(named, "NAME"), want, "{case}: named sets");
        let braces = lines_of("add rule")
            .iter()
            .map(|l| l.matches(" { ").count())
            .sum::<usize>();
        assert_eq!(anon.len(), braces, "{case}: anonymous sets");
        let elems: Vec<Vec<String>> = of("NEWSETELEM")
            .into_iter()
            .filter(|m| m.attr("SET").map(Attr::str).as_deref() != Some("__set%d"))
            .map(element_keys)
            .collect();
        let want: Vec<Vec<String>> = lines_of("add set").iter().map(|l| elements(l)).collect();
        assert_eq!(elems, want, "{case}: elements of named sets");
        let rules: Vec<(String, Option<String>)> = of("NEWRULE")
            .into_iter()
            .map(|m| {
                (
                    m.attr("CHAIN").map(Attr::str).unwrap_or_default(),
                    rule_comment(m),
                )
            })
            .collect();
        let want: Vec<(String, Option<String>)> = lines_of("add rule")
            .iter()
            .map(|l| (object(l), comment(l)))
            .collect();
        assert_eq!(rules, want, "{case}: rules (chain, comment)");
    }
}

/// The `NEW…` type answering a `GET…` request.
fn answer_type(request: u16) -> u16 {
    match type_name(request) {
        Some("GETGEN") => (NFNL_SUBSYS_NFTABLES << 8) | 15,
        _ => request - 1,
    }
}

#[test]
fn dumps_are_well_formed_conversations() {
    for case in case_dirs("dump") {
        let files = fixture_files(&case);
        let mut i = 0;
        let mut port = None;
        while i < files.len() {
            let req = decode(&case, &files[i], true);
            let at = |f: &Fixture| format!("{case}/{}\n{}", f.name, tree(&f.bytes));
            assert_eq!(
                req.flags & NLM_F_REQUEST,
                NLM_F_REQUEST,
                "{}",
                at(&files[i])
            );
            assert!(req.name().starts_with("GET"), "{}", at(&files[i]));
            assert_eq!(req.pid, 0, "{}", at(&files[i]));
            let dump = req.flags & NLM_F_DUMP == NLM_F_DUMP;
            i += 1;
            let mut objects = 0;
            loop {
                let f = files
                    .get(i)
                    .unwrap_or_else(|| panic!("{case}: the last request is not answered"));
                let m = decode(&case, f, false);
                assert_eq!(m.flags & NLM_F_REQUEST, 0, "{}", at(f));
                assert_eq!(m.seq, req.seq, "{}: seq", at(f));
                assert_eq!(*port.get_or_insert(m.pid), m.pid, "{}: port", at(f));
                i += 1;
                match m.body {
                    Body::Done => {
                        assert!(dump, "{}: NLMSG_DONE answers a dump", at(f));
                        break;
                    }
                    Body::Error { errno, .. } => {
                        assert_eq!(errno, 0, "{}: a refusal", at(f));
                        assert!(req.flags & NLM_F_ACK != 0, "{}: an unasked ack", at(f));
                        break;
                    }
                    Body::Nfgen { .. } => {
                        assert_eq!(m.ty, answer_type(req.ty), "{}", at(f));
                        assert_eq!(
                            m.flags & NLM_F_MULTI != 0,
                            dump,
                            "{}: NLM_F_MULTI on a dump's answers only",
                            at(f)
                        );
                        objects += 1;
                        if !dump && req.flags & NLM_F_ACK == 0 {
                            break;
                        }
                    }
                }
            }
            assert!(dump || objects == 1, "{case}: a get answered by {objects}");
        }
    }
}

/// The answers of a dump of this type, decoded.
fn answers(case: &str, name: &str) -> Vec<Msg> {
    fixture_files(case)
        .iter()
        .map(|f| decode(case, f, false))
        .filter(|m| m.name() == name && m.flags & NLM_F_REQUEST == 0)
        .collect()
}

#[test]
fn the_listed_tables_hold_what_their_scripts_made() {
    for c in captures()
        .into_iter()
        .filter(|c| c.kind == "dump" && c.what.starts_with("list table"))
    {
        let case = format!("dump/{}", c.name);
        let lines: Vec<String> = c.setup.iter().flat_map(|s| script(s)).collect();
        let chains: Vec<String> = answers(&case, "NEWCHAIN")
            .iter()
            .map(|m| m.attr("NAME").map(Attr::str).unwrap_or_default())
            .collect();
        let want: Vec<String> = lines
            .iter()
            .filter(|l| l.starts_with("add chain"))
            .map(|l| object(l))
            .collect();
        assert_eq!(chains, want, "{case}: chains");
        // The kernel lists rules chain by chain, each chain's in order.
        let rules: Vec<(String, Option<String>)> = answers(&case, "NEWRULE")
            .iter()
            .map(|m| {
                (
                    m.attr("CHAIN").map(Attr::str).unwrap_or_default(),
                    rule_comment(m),
                )
            })
            .collect();
        let mut want: Vec<(String, Option<String>)> = Vec::new();
        for chain in &chains {
            want.extend(
                lines
                    .iter()
                    .filter(|l| l.starts_with("add rule") && object(l) == *chain)
                    .map(|l| (object(l), comment(l))),
            );
        }
        assert_eq!(rules, want, "{case}: rules (chain, comment)");
        // A hash set's elements come in the order of its hash: compare them as sets.
        for line in lines.iter().filter(|l| l.starts_with("add set")) {
            let mut got: Vec<String> = answers(&case, "NEWSETELEM")
                .iter()
                .filter(|m| m.attr("SET").map(Attr::str) == Some(object(line)))
                .flat_map(element_keys)
                .collect();
            got.sort();
            let mut want = elements(line);
            want.sort();
            assert_eq!(got, want, "{case}: elements of {}", object(line));
        }
        for m in answers(&case, "NEWTABLE") {
            assert_eq!(m.attr("NAME").map(Attr::str).as_deref(), Some(TABLE));
        }
    }
}

#[test]
fn the_chain_listing_shows_foreign_forward_chains_that_drop() {
    let chains = answers("dump/chains_foreign", "NEWCHAIN");
    let drops: Vec<(u8, String, String)> = chains
        .iter()
        .filter(|m| {
            let hook = m
                .attr("HOOK")
                .and_then(|h| h.child("HOOKNUM"))
                .map(Attr::u32);
            hook == Some(NF_INET_FORWARD) && m.attr("POLICY").map(Attr::u32) == Some(NF_DROP)
        })
        .map(|m| {
            let Body::Nfgen { family, .. } = m.body else {
                unreachable!()
            };
            (
                family,
                m.attr("TABLE").map(Attr::str).unwrap_or_default(),
                m.attr("NAME").map(Attr::str).unwrap_or_default(),
            )
        })
        .collect();
    // NFPROTO_INET `inet filter forward`, NFPROTO_IPV4 (2) `ip filter FORWARD`; plumb's own
    // forward chain accepts.
    assert_eq!(
        drops,
        vec![
            (NFPROTO_INET, "filter".to_string(), "forward".to_string()),
            (2, "filter".to_string(), "FORWARD".to_string()),
        ]
    );
    let ours: Vec<&Msg> = chains
        .iter()
        .filter(|m| m.attr("TABLE").map(Attr::str).as_deref() == Some(TABLE))
        .collect();
    assert_eq!(
        ours.len(),
        5,
        "plumb-x's chains: the marker and four base chains"
    );
}

#[test]
fn refusals_echo_the_request_they_refuse() {
    for case in case_dirs("answer") {
        let sent = case.replace("answer/", "sent/");
        let batch = fixture_messages(&sent);
        for f in fixture_files(&case) {
            let m = decode(&case, &f, false);
            let Body::Error { errno, request } = &m.body else {
                panic!("{case}/{}: not an NLMSG_ERROR\n{}", f.name, tree(&f.bytes));
            };
            assert!(*errno < 0, "{case}/{}: not a refusal", f.name);
            let refused = batch
                .iter()
                .find(|b| b[8..12] == m.seq.to_ne_bytes())
                .unwrap_or_else(|| panic!("{case}: no sent message has seq {}", m.seq));
            // nft sets no NETLINK_CAP_ACK: the request is echoed whole.
            assert_eq!(m.flags & NLM_F_CAPPED, 0);
            assert_eq!(
                request,
                refused,
                "{case}/{}: the echo is not the refused request\n{}",
                f.name,
                tree(refused)
            );
        }
    }
    let m = decode(
        "answer/delete_missing",
        &fixture_files("answer/delete_missing")[0],
        false,
    );
    assert!(matches!(m.body, Body::Error { errno: -2, .. }), "ENOENT");
}

// ---------------------------------------------------------------------------------------------
// plumb's decoders against the kernel's captured answers

/// The kernel's answers to the `n`-th request of type `request` (`GETCHAIN`, `GETRULE`…) of a
/// captured conversation: the messages after it, up to its `DONE` (or its one answer).
fn answers_to(case: &str, request: &str, n: usize) -> Vec<Vec<u8>> {
    let files = fixture_files(case);
    let at = files
        .iter()
        .enumerate()
        .filter(|(_, f)| f.name.ends_with(&format!("-{request}.hex")))
        .nth(n)
        .map(|(i, _)| i)
        .unwrap_or_else(|| panic!("{case}: no request {request} #{n}"));
    files[at + 1..]
        .iter()
        .take_while(|f| !f.name.contains("-GET") && !f.name.ends_with("-DONE.hex"))
        .filter(|f| !f.name.ends_with("-ERROR.hex"))
        .map(|f| f.bytes.clone())
        .collect()
}

#[test]
fn plumbs_decoders_read_the_captured_dumps() {
    for (case, t) in [("host_full", host_full()), ("node_full", node_full())] {
        let dump = format!("dump/{case}");
        let chains = answers_to(&dump, "GETCHAIN", 0);
        let rules = answers_to(&dump, "GETRULE", 0);
        // The version mark names the table's contents.
        assert_eq!(
            plumb::nftables::decode_version(&chains),
            t.version(),
            "{case}"
        );
        // show's listing: every rule of the lab's own parses back to the table's rule, in
        // order; the input chain's policy is read.
        let l = plumb::nftables::decode_listing(&chains, &rules);
        let described: Vec<(String, Rule)> = plumb::nftables::described_rules(&l)
            .map(|(r, rule)| (r.chain.clone(), rule))
            .collect();
        let mut want: Vec<(String, Rule)> = Vec::new();
        want.extend(t.nat.iter().map(|r| ("postrouting".to_string(), r.clone())));
        // A dump lists the rules chain by chain.
        want.extend(
            t.publish
                .iter()
                .map(|r| ("prerouting".to_string(), r.clone())),
        );
        want.extend(t.publish.iter().map(|r| ("output".to_string(), r.clone())));
        want.extend(t.forward.iter().map(|r| ("forward".to_string(), r.clone())));
        want.extend(t.allow.iter().map(|r| ("input".to_string(), r.clone())));
        assert_eq!(described, want, "{case}");
        let input = l.chains.iter().find(|c| c.name == "input");
        match t.input_accept {
            Some(accept) => {
                let c = input.expect("an input chain");
                assert_eq!(c.hook.as_deref(), Some("input"));
                assert_eq!(
                    c.policy.as_deref(),
                    Some(if accept { "accept" } else { "drop" })
                );
            }
            None => assert!(input.is_none(), "{case}"),
        }
        // The whole table as the requests that recreate it: one object per dumped one,
        // anonymous sets named for the kernel to number and bound by id.
        let table = answers_to(&dump, "GETTABLE", 0).remove(0);
        let sets = answers_to(&dump, "GETSET", 0);
        let elems: Vec<Vec<Vec<u8>>> = (0..sets.len())
            .map(|k| answers_to(&dump, "GETSETELEM", k))
            .collect();
        let d = plumb::nftables::TableDump {
            table,
            chains: chains.clone(),
            sets: sets.into_iter().zip(elems).collect(),
            rules: rules.clone(),
        };
        let saved = plumb::nftables::decode_saved(TABLE, &d);
        let kinds: Vec<u16> = saved.objects.iter().map(|(k, _)| *k).collect();
        assert_eq!(
            kinds.iter().filter(|k| **k == 3).count(),
            chains.len(),
            "{case}"
        );
        assert_eq!(
            kinds.iter().filter(|k| **k == 6).count(),
            rules.len(),
            "{case}"
        );
        let restore = saved.restore();
        for m in &restore {
            // Every request is one plumb may send: a type and attributes the kernel reads.
            let kind = m.kind() & 0xff;
            assert!([0, 2, 3, 6, 9, 12].contains(&kind), "{case}: type {kind}");
        }
        for (k, attrs) in &saved.objects {
            if *k == 9 {
                let name = plumb::nftables::wire::attr(attrs, 2).map(plumb::nftables::wire::text);
                let anon = name.as_deref().is_some_and(|n| n.starts_with("__set"));
                if anon {
                    assert_eq!(name.as_deref(), Some("__set%d"), "{case}");
                    assert!(
                        plumb::nftables::wire::attr(attrs, 10).is_some(),
                        "{case}: no id"
                    );
                }
                // What only the kernel reports is left out: handle, backend, count.
                for dropped in [16u16, 19, 20] {
                    assert!(
                        plumb::nftables::wire::attr(attrs, dropped).is_none(),
                        "{case}"
                    );
                }
            }
        }
    }
    let chains = answers_to("dump/chains_foreign", "GETCHAIN", 0);
    assert_eq!(
        plumb::nftables::decode_forward_drops(&chains, TABLE),
        ["inet filter/forward", "ip filter/FORWARD"]
    );
}

/// The trace events of `trace/` (capture/trace.sh: two pings out of a sandbox whose output
/// chain marks echo requests for tracing, accepts by policy and drops those to 127.0.0.2):
/// every one decodes, with its table, chain, rule handle, verdict and the packet's headers.
#[test]
fn trace_events_decode_from_the_captured_bytes() {
    use plumb::nftables::trace::{self, TraceType};
    let events: Vec<_> = fixture_messages("trace")
        .iter()
        .map(|m| trace::decode(m).expect("every captured message is a trace event"))
        .collect();
    let listing = std::fs::read_to_string(fixtures().join("trace/nft-output.txt")).expect("output");
    // One line per event in nft's own output, plus the "packet:" line of each packet's first.
    let packets: Vec<u32> = events.iter().fold(Vec::new(), |mut ids, e| {
        if !ids.contains(&e.id) {
            ids.push(e.id);
        }
        ids
    });
    assert_eq!(packets.len(), 2, "{events:#?}");
    // The kernel also reports reaching the end of a chain's rules (a rule event without a
    // handle, before the policy); nft does not print those.
    let printed = events
        .iter()
        .filter(|e| !(e.kind == TraceType::Rule && e.rule_handle.is_none()))
        .count();
    let lines = listing
        .lines()
        .filter(|l| l.starts_with("trace id"))
        .count();
    assert_eq!(lines, printed + packets.len(), "{listing}");
    for e in &events {
        assert_eq!(
            (e.table.as_str(), e.chain.as_str(), e.family),
            ("trace", "out", 1)
        );
        assert_eq!(e.nfproto, Some(2), "an IPv4 packet");
        assert!(listing.contains(&format!("trace id {:08x} inet trace out", e.id)));
        // The kernel dumps the packet (interfaces, headers) with its first event only.
        let first = events.iter().find(|f| f.id == e.id).expect("event");
        if !std::ptr::eq(first, e) {
            assert!(e.network_header.is_empty() && e.transport_header.is_empty());
            continue;
        }
        assert_eq!(e.oif, Some(1), "out through lo");
        // The network header is the IPv4 header of the ping: 127.0.0.1 to 127.0.0.x, ICMP.
        let ip = &e.network_header;
        assert!(ip.len() >= 20 && ip[0] >> 4 == 4 && ip[9] == 1, "{ip:02x?}");
        assert_eq!(ip[12..16], [127, 0, 0, 1]);
        // The transport header starts with the ICMP echo request's type and code.
        assert_eq!(e.transport_header.get(..2), Some(&[8u8, 0][..]));
    }
    let journey = |id: u32| -> Vec<(TraceType, Option<u64>, String)> {
        events
            .iter()
            .filter(|e| e.id == id)
            .map(|e| {
                let verdict = e.verdict.as_ref().map(|v| v.name()).unwrap_or_default();
                (e.kind, e.rule_handle, verdict)
            })
            .collect()
    };
    let first = journey(packets[0]);
    let second = journey(packets[1]);
    let to = |e: &trace::TraceEvent| e.network_header[16..20].to_vec();
    let first_to = to(events.iter().find(|e| e.id == packets[0]).expect("event"));
    assert_eq!(first_to, [127, 0, 0, 1]);
    // Rule handles: the table got handle 1, the chain 1, the marking rule 2, the drop rule 3
    // (per-table counter; the listing shows them with `nft -a`).
    let continues = |handle| (TraceType::Rule, handle, "continue".to_string());
    assert_eq!(
        first,
        [
            continues(Some(2)),
            continues(None),
            (TraceType::Policy, None, "accept".into())
        ]
    );
    assert_eq!(
        second,
        [
            continues(Some(2)),
            (TraceType::Rule, Some(3), "drop".into())
        ]
    );
    let policy = events
        .iter()
        .find(|e| e.kind == TraceType::Policy)
        .expect("a policy event");
    assert_eq!(policy.policy, Some(1), "NF_ACCEPT");
}
