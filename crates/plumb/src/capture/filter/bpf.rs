//! Compiling a filter [`Expr`] to classic BPF for Ethernet frames (`SO_ATTACH_FILTER`).
//!
//! Each primitive is lowered to a small tree of [`Test`]s (load, optional mask, compare) joined
//! by and/or/not; the tree is emitted with short-circuit jumps to a true and a false label, which
//! are always ahead of the jump (classic BPF jumps only forward). Like tcpdump's, the accepting
//! return gives the whole packet (`ret #262144`) and the refusing one `ret #0`. No optimizer:
//! a load may repeat; the kernel's verifier bounds the program at 4096 instructions.

use std::net::IpAddr;

use super::{Dir, Expr, FilterError, Prim, Proto};
use crate::sys::packet::SockFilter;

/// The snap length every capture point uses, as tcpdump's default.
pub const SNAPLEN: u32 = 262_144;

// Opcodes from `linux/bpf_common.h` and `linux/filter.h`.
const BPF_LD: u16 = 0x00;
const BPF_LDX: u16 = 0x01;
const BPF_ALU: u16 = 0x04;
const BPF_JMP: u16 = 0x05;
const BPF_RET: u16 = 0x06;
const BPF_W: u16 = 0x00;
const BPF_H: u16 = 0x08;
const BPF_B: u16 = 0x10;
const BPF_ABS: u16 = 0x20;
const BPF_IND: u16 = 0x40;
const BPF_LEN: u16 = 0x80;
const BPF_MSH: u16 = 0xa0;
const BPF_AND: u16 = 0x50;
const BPF_JA: u16 = 0x00;
const BPF_JEQ: u16 = 0x10;
const BPF_JGT: u16 = 0x20;
const BPF_JGE: u16 = 0x30;
const BPF_JSET: u16 = 0x40;
const BPF_K: u16 = 0x00;
/// `BPF_MAXINSNS`.
const BPF_MAXINSNS: usize = 4096;

/// EtherTypes.
const ETH_IP: u32 = 0x0800;
const ETH_IP6: u32 = 0x86dd;
const ETH_ARP: u32 = 0x0806;

/// A compiled program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Program(pub Vec<SockFilter>);

/// Where a value is loaded from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Load {
    /// `ld[b|h] [off]`.
    Abs(u16, u32),
    /// `ldxb 4*([14]&0xf)` then `ld[b|h] [x + off]`: past the IPv4 header.
    PastIp4(u16, u32),
    /// `ld #len`.
    Len,
}

/// Comparisons.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cmp {
    Eq,
    Gt,
    Ge,
    Set,
}

/// One test: load, mask, compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Test {
    load: Load,
    mask: Option<u32>,
    cmp: Cmp,
    k: u32,
}

/// A tree of tests.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Node {
    And(Vec<Node>),
    Or(Vec<Node>),
    Not(Box<Node>),
    Test(Test),
}

fn eq(load: Load, k: u32) -> Node {
    Node::Test(Test {
        load,
        mask: None,
        cmp: Cmp::Eq,
        k,
    })
}

fn masked_eq(load: Load, mask: u32, k: u32) -> Node {
    if mask == u32::MAX {
        return eq(load, k);
    }
    Node::Test(Test {
        load,
        mask: Some(mask),
        cmp: Cmp::Eq,
        k: k & mask,
    })
}

fn cmp(load: Load, cmp: Cmp, k: u32) -> Node {
    Node::Test(Test {
        load,
        mask: None,
        cmp,
        k,
    })
}

fn ethertype(t: u32) -> Node {
    eq(Load::Abs(BPF_H, 12), t)
}

fn ip_proto(n: u8) -> Node {
    Node::And(vec![ethertype(ETH_IP), eq(Load::Abs(BPF_B, 23), n.into())])
}

fn ip6_next(n: u8) -> Node {
    Node::And(vec![ethertype(ETH_IP6), eq(Load::Abs(BPF_B, 20), n.into())])
}

/// Either direction: `Any` is src or dst.
fn dirs(dir: Dir, one: impl Fn(bool) -> Node) -> Node {
    match dir {
        Dir::Src => one(true),
        Dir::Dst => one(false),
        Dir::Any => Node::Or(vec![one(true), one(false)]),
    }
}

/// The address `ip` with the first `len` bits compared, at `off` (4 bytes per word).
fn addr_test(ip: IpAddr, len: u8, off: u32) -> Node {
    let bytes: Vec<u8> = match ip {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    };
    let mut tests = Vec::new();
    for (i, w) in bytes.chunks(4).enumerate() {
        let bits = (u32::from(len)).saturating_sub(i as u32 * 32).min(32);
        if bits == 0 {
            break;
        }
        let mask = if bits == 32 {
            u32::MAX
        } else {
            u32::MAX << (32 - bits)
        };
        let word = u32::from_be_bytes([w[0], w[1], w[2], w[3]]);
        tests.push(masked_eq(Load::Abs(BPF_W, off + 4 * i as u32), mask, word));
    }
    match tests.len() {
        0 => Node::And(vec![]),
        1 => tests.remove(0),
        _ => Node::And(tests),
    }
}

fn host_or_net(proto: Option<Proto>, dir: Dir, ip: IpAddr, len: u8) -> Node {
    match ip {
        IpAddr::V4(_) => {
            let ipv4 = || {
                Node::And(vec![
                    ethertype(ETH_IP),
                    dirs(dir, |src| addr_test(ip, len, if src { 26 } else { 30 })),
                ])
            };
            // ARP for IPv4 over Ethernet: sender address at 28, target at 38.
            let arp = || {
                Node::And(vec![
                    ethertype(ETH_ARP),
                    dirs(dir, |src| addr_test(ip, len, if src { 28 } else { 38 })),
                ])
            };
            match proto {
                Some(Proto::Ip) => ipv4(),
                Some(Proto::Arp) => arp(),
                _ => Node::Or(vec![ipv4(), arp()]),
            }
        }
        IpAddr::V6(_) => Node::And(vec![
            ethertype(ETH_IP6),
            dirs(dir, |src| addr_test(ip, len, if src { 22 } else { 38 })),
        ]),
    }
}

fn port(proto: Option<Proto>, dir: Dir, lo: u16, hi: u16) -> Node {
    let protos: Vec<u8> = match proto {
        Some(p) => p.ip_number().into_iter().collect(),
        None => vec![6, 17, 132],
    };
    let range = |load: Load| {
        if lo == hi {
            eq(load, lo.into())
        } else {
            Node::And(vec![
                cmp(load, Cmp::Ge, lo.into()),
                Node::Not(Box::new(cmp(load, Cmp::Gt, hi.into()))),
            ])
        }
    };
    let any_of = |f: &dyn Fn(u8) -> Node| Node::Or(protos.iter().map(|&p| f(p)).collect());
    let v4 = Node::And(vec![
        ethertype(ETH_IP),
        any_of(&|p| eq(Load::Abs(BPF_B, 23), p.into())),
        // Only the first fragment carries the ports.
        Node::Not(Box::new(Node::Test(Test {
            load: Load::Abs(BPF_H, 20),
            mask: None,
            cmp: Cmp::Set,
            k: 0x1fff,
        }))),
        dirs(dir, |src| {
            range(Load::PastIp4(BPF_H, if src { 14 } else { 16 }))
        }),
    ]);
    let v6 = Node::And(vec![
        ethertype(ETH_IP6),
        any_of(&|p| eq(Load::Abs(BPF_B, 20), p.into())),
        dirs(dir, |src| {
            range(Load::Abs(BPF_H, if src { 54 } else { 56 }))
        }),
    ]);
    Node::Or(vec![v4, v6])
}

fn lower(e: &Expr) -> Node {
    match e {
        Expr::And(a, b) => Node::And(vec![lower(a), lower(b)]),
        Expr::Or(a, b) => Node::Or(vec![lower(a), lower(b)]),
        Expr::Not(a) => Node::Not(Box::new(lower(a))),
        Expr::Prim(p) => match *p {
            Prim::Proto(Proto::Ether) => Node::And(vec![]),
            Prim::Proto(Proto::Ip) => ethertype(ETH_IP),
            Prim::Proto(Proto::Ip6) => ethertype(ETH_IP6),
            Prim::Proto(Proto::Arp) => ethertype(ETH_ARP),
            Prim::Proto(Proto::Icmp) => ip_proto(1),
            Prim::Proto(Proto::Icmp6) => ip6_next(58),
            Prim::Proto(p) => {
                let n = p.ip_number().unwrap_or(0);
                Node::Or(vec![ip_proto(n), ip6_next(n)])
            }
            Prim::Host(proto, dir, ip) => {
                let len = if ip.is_ipv4() { 32 } else { 128 };
                host_or_net(proto, dir, ip, len)
            }
            Prim::Net(proto, dir, ip, len) => host_or_net(proto, dir, ip, len),
            Prim::EtherHost(dir, m) => dirs(dir, |src| {
                let off = if src { 6 } else { 0 };
                Node::And(vec![
                    eq(
                        Load::Abs(BPF_W, off + 2),
                        u32::from_be_bytes([m[2], m[3], m[4], m[5]]),
                    ),
                    eq(
                        Load::Abs(BPF_H, off),
                        u32::from(u16::from_be_bytes([m[0], m[1]])),
                    ),
                ])
            }),
            Prim::Port(proto, dir, lo, hi) => port(proto, dir, lo, hi),
            Prim::IpProto(Some(Proto::Ip), n) => ip_proto(n),
            Prim::IpProto(Some(Proto::Ip6), n) => ip6_next(n),
            Prim::IpProto(_, n) => Node::Or(vec![ip_proto(n), ip6_next(n)]),
            Prim::EtherType(t) => ethertype(t.into()),
            Prim::Len(true, n) => Node::Not(Box::new(cmp(Load::Len, Cmp::Gt, n))),
            Prim::Len(false, n) => cmp(Load::Len, Cmp::Ge, n),
        },
    }
}

/// Instructions with symbolic jump targets.
#[derive(Debug, Clone, Copy)]
enum Ins {
    Stmt(u16, u32),
    Jump(u16, u32, usize, usize),
    Always(usize),
    Ret(u32),
    Label(usize),
}

struct Gen {
    out: Vec<Ins>,
    labels: usize,
}

impl Gen {
    fn label(&mut self) -> usize {
        self.labels += 1;
        self.labels - 1
    }

    fn node(&mut self, n: &Node, t: usize, f: usize) {
        match n {
            Node::And(v) if v.is_empty() => self.out.push(Ins::Always(t)),
            Node::Or(v) if v.is_empty() => self.out.push(Ins::Always(f)),
            Node::And(v) => {
                for (i, c) in v.iter().enumerate() {
                    if i + 1 == v.len() {
                        self.node(c, t, f);
                    } else {
                        let next = self.label();
                        self.node(c, next, f);
                        self.out.push(Ins::Label(next));
                    }
                }
            }
            Node::Or(v) => {
                for (i, c) in v.iter().enumerate() {
                    if i + 1 == v.len() {
                        self.node(c, t, f);
                    } else {
                        let next = self.label();
                        self.node(c, t, next);
                        self.out.push(Ins::Label(next));
                    }
                }
            }
            Node::Not(c) => self.node(c, f, t),
            Node::Test(x) => {
                match x.load {
                    Load::Abs(size, off) => self.out.push(Ins::Stmt(BPF_LD | size | BPF_ABS, off)),
                    Load::PastIp4(size, off) => {
                        self.out.push(Ins::Stmt(BPF_LDX | BPF_B | BPF_MSH, 14));
                        self.out.push(Ins::Stmt(BPF_LD | size | BPF_IND, off));
                    }
                    Load::Len => self.out.push(Ins::Stmt(BPF_LD | BPF_W | BPF_LEN, 0)),
                }
                if let Some(m) = x.mask {
                    self.out.push(Ins::Stmt(BPF_ALU | BPF_AND | BPF_K, m));
                }
                let op = match x.cmp {
                    Cmp::Eq => BPF_JEQ,
                    Cmp::Gt => BPF_JGT,
                    Cmp::Ge => BPF_JGE,
                    Cmp::Set => BPF_JSET,
                };
                self.out.push(Ins::Jump(BPF_JMP | op | BPF_K, x.k, t, f));
            }
        }
    }
}

/// Compiles a filter (`None`: every packet) to a program that accepts [`SNAPLEN`] bytes of a
/// matching packet.
pub fn compile(filter: &str) -> Result<Program, FilterError> {
    let expr = super::parse(filter)?;
    let node = expr.as_ref().map_or(Node::And(vec![]), lower);
    let mut g = Gen {
        out: Vec::new(),
        labels: 0,
    };
    let (t, f) = (g.label(), g.label());
    g.node(&node, t, f);
    g.out.push(Ins::Label(t));
    g.out.push(Ins::Ret(SNAPLEN));
    g.out.push(Ins::Label(f));
    g.out.push(Ins::Ret(0));
    // Where each label lands.
    let mut at = vec![0usize; g.labels];
    let mut pc = 0;
    for i in &g.out {
        match i {
            Ins::Label(l) => at[*l] = pc,
            _ => pc += 1,
        }
    }
    let too_long = || {
        FilterError {
        filter: filter.to_string(),
        what: "the filter is too long for classic BPF (a jump spans more than 255 instructions, or the program more than 4096): split it".into(),
    }
    };
    let mut prog = Vec::new();
    for i in &g.out {
        let pc = prog.len();
        let rel = |l: usize| at[l].checked_sub(pc + 1);
        let ins = match *i {
            Ins::Label(_) => continue,
            Ins::Stmt(code, k) => SockFilter {
                code,
                jt: 0,
                jf: 0,
                k,
            },
            Ins::Ret(k) => SockFilter {
                code: BPF_RET | BPF_K,
                jt: 0,
                jf: 0,
                k,
            },
            Ins::Always(l) => SockFilter {
                code: BPF_JMP | BPF_JA,
                jt: 0,
                jf: 0,
                k: rel(l).ok_or_else(too_long)? as u32,
            },
            Ins::Jump(code, k, t, f) => {
                let jt = rel(t)
                    .and_then(|d| u8::try_from(d).ok())
                    .ok_or_else(too_long)?;
                let jf = rel(f)
                    .and_then(|d| u8::try_from(d).ok())
                    .ok_or_else(too_long)?;
                SockFilter { code, jt, jf, k }
            }
        };
        prog.push(ins);
    }
    if prog.len() > BPF_MAXINSNS {
        return Err(too_long());
    }
    Ok(Program(prog))
}

impl Program {
    /// Runs the program on a frame as the kernel would: the number of bytes to keep (0: the
    /// packet is refused). Used to filter packets read back from a file.
    pub fn run(&self, pkt: &[u8]) -> u32 {
        let (mut a, mut x) = (0u32, 0u32);
        let mut pc = 0usize;
        let load = |off: usize, size: u16| -> Option<u32> {
            let n = match size {
                BPF_W => 4,
                BPF_H => 2,
                _ => 1,
            };
            let b = pkt.get(off..off.checked_add(n)?)?;
            Some(b.iter().fold(0u32, |acc, &v| (acc << 8) | u32::from(v)))
        };
        while let Some(i) = self.0.get(pc) {
            pc += 1;
            let class = i.code & 0x07;
            match class {
                BPF_RET => return i.k,
                BPF_LD | BPF_LDX => {
                    let mode = i.code & 0xe0;
                    let size = i.code & 0x18;
                    match (class, mode) {
                        (BPF_LDX, BPF_MSH) => match load(i.k as usize, BPF_B) {
                            Some(v) => x = 4 * (v & 0xf),
                            None => return 0,
                        },
                        (BPF_LD, BPF_LEN) => a = pkt.len() as u32,
                        (BPF_LD, BPF_ABS) => match load(i.k as usize, size) {
                            Some(v) => a = v,
                            None => return 0,
                        },
                        (BPF_LD, BPF_IND) => match load((x + i.k) as usize, size) {
                            Some(v) => a = v,
                            None => return 0,
                        },
                        _ => return 0,
                    }
                }
                BPF_ALU if i.code & 0xf0 == BPF_AND => a &= i.k,
                BPF_JMP => {
                    let taken = match i.code & 0xf0 {
                        BPF_JA => {
                            pc += i.k as usize;
                            continue;
                        }
                        BPF_JEQ => a == i.k,
                        BPF_JGT => a > i.k,
                        BPF_JGE => a >= i.k,
                        BPF_JSET => a & i.k != 0,
                        _ => return 0,
                    };
                    pc += usize::from(if taken { i.jt } else { i.jf });
                }
                _ => return 0,
            }
        }
        0
    }

    /// As `tcpdump -ddd` prints it: the count, then `code jt jf k` per line.
    pub fn to_ddd(&self) -> String {
        let mut s = format!("{}\n", self.0.len());
        for i in &self.0 {
            s.push_str(&format!("{} {} {} {}\n", i.code, i.jt, i.jf, i.k));
        }
        s
    }
}
