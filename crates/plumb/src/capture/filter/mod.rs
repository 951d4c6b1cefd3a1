//! Capture filters: a tcpdump-style expression (`pcap-filter(7)`) parsed by recursive descent
//! into an [`Expr`], then compiled ([`bpf`]) to classic BPF that the kernel runs on every packet
//! before it reaches the ring, for Ethernet frames.
//!
//! The language: primitives `host`, `net` (CIDR), `port`, `portrange A-B`, `proto N|NAME`,
//! `ether host|src|dst MAC`, `ether proto N`, `less N`, `greater N` and the protocols `ether`,
//! `ip`, `ip6`, `arp`, `icmp`, `icmp6`, `tcp`, `udp`, `sctp`; qualifiers `src`, `dst`;
//! `and`/`&&`, `or`/`||`, `not`/`!` and parentheses. As in tcpdump, a bare value after `and` or
//! `or` takes the qualifiers of the value before it (`host a or b` is `host a or host b`), and
//! `not` binds tighter than `and`, which binds as tight as `or` (left to right).

pub mod bpf;
#[cfg(test)]
mod tests;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub use bpf::{compile, Program};

/// A filter that cannot be compiled, with the position (in words) where it went wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("filter `{filter}`: {what}")]
pub struct FilterError {
    /// The filter as given.
    pub filter: String,
    /// What is wrong, naming the word.
    pub what: String,
}

/// Protocol qualifiers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    /// `ether`
    Ether,
    /// `ip`
    Ip,
    /// `ip6`
    Ip6,
    /// `arp`
    Arp,
    /// `icmp`
    Icmp,
    /// `icmp6`
    Icmp6,
    /// `tcp`
    Tcp,
    /// `udp`
    Udp,
    /// `sctp`
    Sctp,
}

impl Proto {
    fn parse(w: &str) -> Option<Proto> {
        Some(match w {
            "ether" => Proto::Ether,
            "ip" => Proto::Ip,
            "ip6" => Proto::Ip6,
            "arp" => Proto::Arp,
            "icmp" => Proto::Icmp,
            "icmp6" => Proto::Icmp6,
            "tcp" => Proto::Tcp,
            "udp" => Proto::Udp,
            "sctp" => Proto::Sctp,
            _ => return None,
        })
    }

    /// The IP protocol number of a transport protocol.
    pub fn ip_number(self) -> Option<u8> {
        match self {
            Proto::Icmp => Some(1),
            Proto::Tcp => Some(6),
            Proto::Udp => Some(17),
            Proto::Icmp6 => Some(58),
            Proto::Sctp => Some(132),
            _ => None,
        }
    }
}

/// Direction qualifiers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    /// Either (no qualifier).
    Any,
    /// `src`
    Src,
    /// `dst`
    Dst,
}

/// A value with its kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Prim {
    /// The protocol alone (`tcp`, `arp`…).
    Proto(Proto),
    /// `[proto] [dir] host ADDR`.
    Host(Option<Proto>, Dir, IpAddr),
    /// `[proto] [dir] net ADDR/LEN`.
    Net(Option<Proto>, Dir, IpAddr, u8),
    /// `ether [dir] host MAC`.
    EtherHost(Dir, [u8; 6]),
    /// `[tcp|udp|sctp] [dir] port N` / `portrange A-B`: the inclusive range.
    Port(Option<Proto>, Dir, u16, u16),
    /// `[ip|ip6] proto N`.
    IpProto(Option<Proto>, u8),
    /// `ether proto N`.
    EtherType(u16),
    /// `less N` (true) or `greater N` (false).
    Len(bool, u32),
}

/// A filter expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expr {
    /// Both.
    And(Box<Expr>, Box<Expr>),
    /// Either.
    Or(Box<Expr>, Box<Expr>),
    /// Not.
    Not(Box<Expr>),
    /// A primitive.
    Prim(Prim),
}

fn tokens(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = s.chars().peekable();
    let flush = |cur: &mut String, out: &mut Vec<String>| {
        if !cur.is_empty() {
            out.push(std::mem::take(cur));
        }
    };
    while let Some(c) = chars.next() {
        match c {
            '(' | ')' => {
                flush(&mut cur, &mut out);
                out.push(c.to_string());
            }
            '!' => {
                flush(&mut cur, &mut out);
                out.push("not".into());
            }
            '&' | '|' if chars.peek() == Some(&c) => {
                chars.next();
                flush(&mut cur, &mut out);
                out.push(if c == '&' { "and" } else { "or" }.into());
            }
            c if c.is_whitespace() => flush(&mut cur, &mut out),
            c => cur.push(c),
        }
    }
    flush(&mut cur, &mut out);
    out
}

/// The qualifiers in force, which a bare value after `and`/`or` inherits.
#[derive(Debug, Clone, Copy)]
struct Quals {
    proto: Option<Proto>,
    dir: Dir,
    kind: Kind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Host,
    Net,
    Port,
    PortRange,
    Proto,
}

struct Parser<'a> {
    words: Vec<String>,
    at: usize,
    filter: &'a str,
    last: Option<Quals>,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&str> {
        self.words.get(self.at).map(String::as_str)
    }

    fn next(&mut self) -> Option<String> {
        let w = self.words.get(self.at).cloned();
        self.at += 1;
        w
    }

    fn err(&self, what: impl Into<String>) -> FilterError {
        FilterError {
            filter: self.filter.to_string(),
            what: what.into(),
        }
    }

    fn or(&mut self) -> Result<Expr, FilterError> {
        let mut e = self.unary()?;
        loop {
            match self.peek() {
                Some("and") => {
                    self.next();
                    e = Expr::And(Box::new(e), Box::new(self.unary()?));
                }
                Some("or") => {
                    self.next();
                    e = Expr::Or(Box::new(e), Box::new(self.unary()?));
                }
                _ => return Ok(e),
            }
        }
    }

    fn unary(&mut self) -> Result<Expr, FilterError> {
        match self.peek() {
            Some("not") => {
                self.next();
                Ok(Expr::Not(Box::new(self.unary()?)))
            }
            Some("(") => {
                self.next();
                let e = self.or()?;
                match self.next().as_deref() {
                    Some(")") => Ok(e),
                    Some(w) => Err(self.err(format!("expected `)` before `{w}`"))),
                    None => Err(self.err("a `(` is not closed")),
                }
            }
            Some(_) => self.primitive(),
            None => Err(self.err("the expression ends where a primitive was expected")),
        }
    }

    fn primitive(&mut self) -> Result<Expr, FilterError> {
        let mut proto = None;
        let mut dir = None;
        let mut kind = None;
        if let Some(p) = self.peek().and_then(Proto::parse) {
            self.next();
            proto = Some(p);
        }
        if let Some(d) = match self.peek() {
            Some("src") => Some(Dir::Src),
            Some("dst") => Some(Dir::Dst),
            _ => None,
        } {
            self.next();
            dir = Some(d);
        }
        if let Some(k) = match self.peek() {
            Some("host") => Some(Kind::Host),
            Some("net") => Some(Kind::Net),
            Some("port") => Some(Kind::Port),
            Some("portrange") => Some(Kind::PortRange),
            Some("proto") => Some(Kind::Proto),
            _ => None,
        } {
            self.next();
            kind = Some(k);
        }
        if let (Some(p), None, None) = (proto, dir, kind) {
            // A protocol alone, unless a bare value follows (`ether 00:11:…` is not supported).
            return Ok(Expr::Prim(Prim::Proto(p)));
        }
        if proto.is_none() && dir.is_none() && kind.is_none() {
            match self.peek() {
                Some("less") | Some("greater") => {
                    let less = self.next().as_deref() == Some("less");
                    let n = self.next().unwrap_or_default();
                    let n = n
                        .parse()
                        .map_err(|_| self.err(format!("`{n}` is not a length")))?;
                    return Ok(Expr::Prim(Prim::Len(less, n)));
                }
                _ => {}
            }
        }
        let q = match (proto, dir, kind, self.last) {
            // A bare value inherits the qualifiers before it.
            (None, None, None, Some(last)) => last,
            _ => Quals {
                proto,
                dir: dir.unwrap_or(Dir::Any),
                kind: kind.unwrap_or(Kind::Host),
            },
        };
        let Some(value) = self.next() else {
            return Err(self.err("a value is missing at the end"));
        };
        if value == "(" || value == ")" || value == "and" || value == "or" || value == "not" {
            return Err(self.err(format!("a value is missing before `{value}`")));
        }
        self.last = Some(q);
        self.value(q, &value).map(Expr::Prim)
    }

    fn value(&self, q: Quals, v: &str) -> Result<Prim, FilterError> {
        let bad = |what: &str| self.err(format!("`{v}` is not {what}"));
        match q.kind {
            Kind::Host if q.proto == Some(Proto::Ether) => Ok(Prim::EtherHost(
                q.dir,
                mac(v).ok_or_else(|| bad("a MAC address"))?,
            )),
            Kind::Host => {
                let ip: IpAddr = v
                    .parse()
                    .map_err(|_| bad("an IP address (names are not looked up)"))?;
                check_family(q.proto, ip).map_err(|w| self.err(w))?;
                Ok(Prim::Host(q.proto, q.dir, ip))
            }
            Kind::Net => {
                let (addr, len) = match v.split_once('/') {
                    Some((a, l)) => (a, l.parse::<u8>().map_err(|_| bad("a prefix"))?),
                    None => (v, 255),
                };
                let ip: IpAddr = addr.parse().map_err(|_| bad("a network (ADDR/LEN)"))?;
                let max = if ip.is_ipv4() { 32 } else { 128 };
                let len = if len == 255 { max } else { len };
                if len > max {
                    return Err(bad("a network: the prefix is too long"));
                }
                if masked(ip, len) != ip {
                    return Err(self.err(format!("`{v}`: non-network bits set in the address")));
                }
                check_family(q.proto, ip).map_err(|w| self.err(w))?;
                Ok(Prim::Net(q.proto, q.dir, ip, len))
            }
            Kind::Port | Kind::PortRange => {
                let (a, b) = if q.kind == Kind::PortRange {
                    let (a, b) = v.split_once('-').ok_or_else(|| bad("a port range (A-B)"))?;
                    (a, b)
                } else {
                    (v, v)
                };
                let a: u16 = a.parse().map_err(|_| bad("a port number"))?;
                let b: u16 = b.parse().map_err(|_| bad("a port number"))?;
                if !matches!(
                    q.proto,
                    None | Some(Proto::Tcp) | Some(Proto::Udp) | Some(Proto::Sctp)
                ) {
                    return Err(self.err(format!(
                        "`port` applies to tcp, udp or sctp, not `{v}`'s protocol"
                    )));
                }
                Ok(Prim::Port(q.proto, q.dir, a.min(b), a.max(b)))
            }
            Kind::Proto => {
                let v = v.trim_start_matches('\\');
                if q.proto == Some(Proto::Ether) {
                    let n = match v {
                        "ip" => 0x0800,
                        "ip6" => 0x86dd,
                        "arp" => 0x0806,
                        _ => parse_num(v).ok_or_else(|| bad("an EtherType"))?,
                    };
                    let n = u16::try_from(n).map_err(|_| bad("an EtherType"))?;
                    return Ok(Prim::EtherType(n));
                }
                if !matches!(q.proto, None | Some(Proto::Ip) | Some(Proto::Ip6)) {
                    return Err(self.err("`proto` applies to ether, ip or ip6"));
                }
                let n = match Proto::parse(v).and_then(Proto::ip_number) {
                    Some(n) => n,
                    None => parse_num(v)
                        .and_then(|n| u8::try_from(n).ok())
                        .ok_or_else(|| bad("a protocol number or name"))?,
                };
                Ok(Prim::IpProto(q.proto, n))
            }
        }
    }
}

fn parse_num(v: &str) -> Option<u32> {
    match v.strip_prefix("0x") {
        Some(h) => u32::from_str_radix(h, 16).ok(),
        None => v.parse().ok(),
    }
}

fn check_family(proto: Option<Proto>, ip: IpAddr) -> Result<(), String> {
    match (proto, ip) {
        (Some(Proto::Ip6), IpAddr::V4(_)) | (Some(Proto::Arp), IpAddr::V6(_)) => {
            Err(format!("`{ip}` is not an address of that protocol"))
        }
        (Some(Proto::Ip), IpAddr::V6(_)) => Err(format!("`{ip}` is an IPv6 address: use `ip6`")),
        (Some(Proto::Tcp | Proto::Udp | Proto::Icmp | Proto::Icmp6 | Proto::Sctp), _) => {
            Err("`host` and `net` take ip, ip6, arp or ether as protocol".into())
        }
        _ => Ok(()),
    }
}

/// `ip` with every bit past the first `len` cleared.
pub fn masked(ip: IpAddr, len: u8) -> IpAddr {
    match ip {
        IpAddr::V4(a) => {
            let m = if len == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(len))
            };
            IpAddr::V4(Ipv4Addr::from(u32::from(a) & m))
        }
        IpAddr::V6(a) => {
            let m = if len == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(len))
            };
            IpAddr::V6(Ipv6Addr::from(u128::from(a) & m))
        }
    }
}

fn mac(v: &str) -> Option<[u8; 6]> {
    let parts: Vec<&str> = v.split([':', '-']).collect();
    if parts.len() != 6 {
        return None;
    }
    let mut out = [0u8; 6];
    for (o, p) in out.iter_mut().zip(parts) {
        *o = u8::from_str_radix(p, 16).ok()?;
    }
    Some(out)
}

/// Parses a filter; an empty one is `None` (every packet).
pub fn parse(filter: &str) -> Result<Option<Expr>, FilterError> {
    let words = tokens(filter);
    if words.is_empty() {
        return Ok(None);
    }
    let mut p = Parser {
        words,
        at: 0,
        filter,
        last: None,
    };
    let e = p.or()?;
    if let Some(w) = p.peek() {
        return Err(p.err(format!(
            "unexpected `{w}` (expected `and`, `or` or the end)"
        )));
    }
    Ok(Some(e))
}
