//! A [`Table`] compiled into the nf_tables messages of one transaction: the same objects and
//! the same expressions `nft` makes from the script [`Table::nft_script`] prints (the unit
//! tests compare them with bytes `nft` sent), with each rule's description as its comment.

use ipnet::IpNet;

use super::build::{
    addr_bytes, ct_bits, l4proto, nfproto, IPPROTO_TCP, IPPROTO_UDP, IPS_DST_NAT, NF_INET_FORWARD,
    NF_INET_LOCAL_IN, NF_INET_LOCAL_OUT, NF_INET_POST_ROUTING, NF_INET_PRE_ROUTING,
};
use super::expr::{base, cmp, ct, fib, meta, verdict, Expr, NFTA_DATA_VALUE, NFTA_LIST_ELEM};
use super::expr::{NFT_REG_1, NFT_REG_2};
use super::wire::{family, msg, nft_type, Msg};
use crate::firewall::{Rule, Table};
use crate::model::{Proto, Service};

/// Netlink flags (`linux/netlink.h`).
pub mod flags {
    /// `NLM_F_REQUEST`.
    pub const NLM_F_REQUEST: u16 = 0x1;
    /// `NLM_F_ACK`.
    pub const NLM_F_ACK: u16 = 0x4;
    /// `NLM_F_CREATE`.
    pub const NLM_F_CREATE: u16 = 0x400;
    /// `NLM_F_APPEND`.
    pub const NLM_F_APPEND: u16 = 0x800;
}
use flags::{NLM_F_APPEND, NLM_F_CREATE, NLM_F_REQUEST};

/// `NFTA_TABLE_*`.
mod table_attr {
    pub const NAME: u16 = 1;
    pub const FLAGS: u16 = 2;
}
/// `NFTA_CHAIN_*` and `NFTA_HOOK_*`.
mod chain_attr {
    pub const TABLE: u16 = 1;
    pub const NAME: u16 = 3;
    pub const HOOK: u16 = 4;
    pub const POLICY: u16 = 5;
    pub const TYPE: u16 = 7;
    pub const HOOK_HOOKNUM: u16 = 1;
    pub const HOOK_PRIORITY: u16 = 2;
}
/// `NFTA_RULE_*`.
mod rule_attr {
    pub const TABLE: u16 = 1;
    pub const CHAIN: u16 = 2;
    pub const EXPRESSIONS: u16 = 4;
    pub const USERDATA: u16 = 7;
}
/// `NFTA_SET_*`, `NFTA_SET_DESC_SIZE`, `NFTA_SET_ELEM_*`.
mod set_attr {
    pub const TABLE: u16 = 1;
    pub const NAME: u16 = 2;
    pub const FLAGS: u16 = 3;
    pub const KEY_TYPE: u16 = 4;
    pub const KEY_LEN: u16 = 5;
    pub const DESC: u16 = 9;
    pub const ID: u16 = 10;
    pub const USERDATA: u16 = 13;
    pub const DESC_SIZE: u16 = 1;
    pub const ELEM_LIST_TABLE: u16 = 1;
    pub const ELEM_LIST_SET: u16 = 2;
    pub const ELEM_LIST_ELEMENTS: u16 = 3;
    pub const ELEM_LIST_SET_ID: u16 = 4;
    pub const ELEM_KEY: u16 = 1;
}

/// `NFT_SET_ANONYMOUS | NFT_SET_CONSTANT`.
const ANONYMOUS_CONSTANT: u32 = 0x1 | 0x2;
/// nft's data types of set keys (`enum datatypes` in nftables' `datatype.h`, recorded in the
/// set's user data so that `nft list` prints the elements by their names).
const TYPE_INET_PROTOCOL: u32 = 12;
const TYPE_ICMP6_TYPE: u32 = 29;
const TYPE_IFNAME: u32 = 41;
/// `NFTNL_UDATA_SET_KEYBYTEORDER` and nft's `BYTEORDER_HOST_ENDIAN`, `BYTEORDER_BIG_ENDIAN`.
const UDATA_SET_KEYBYTEORDER: u8 = 0;
const BYTEORDER_HOST_ENDIAN: u32 = 1;
const BYTEORDER_BIG_ENDIAN: u32 = 2;
/// `NFTNL_UDATA_RULE_COMMENT`.
const UDATA_RULE_COMMENT: u8 = 0;

/// `NFTNL_UDATA_SET_KEY_TYPEOF`: the expression the key of an anonymous set was written as,
/// which `nft list` uses to print its elements. nft's own encoding, as it sends it: the
/// expression's type, then its description (for `icmpv6 type`: payload of protocol
/// `icmpv6`, field `type`; for `meta l4proto`: meta key `l4proto`).
fn key_typeof(key_type: u32) -> &'static [u8] {
    match key_type {
        TYPE_ICMP6_TYPE => &[
            3, 20, 0, 4, 7, 0, 0, 0, 1, 12, 0, 4, 14, 0, 0, 0, 1, 4, 1, 0, 0, 0,
        ],
        TYPE_INET_PROTOCOL => &L4PROTO_TYPEOF,
        _ => &[],
    }
}

/// `meta l4proto` as a set key's typeof (see [`key_typeof`]).
const L4PROTO_TYPEOF: [u8; 16] = [3, 14, 0, 4, 9, 0, 0, 0, 1, 6, 0, 4, 16, 0, 0, 0];

/// `IPPROTO_*`.
const IPPROTO_ICMP: u8 = 1;
const IPPROTO_ICMPV6: u8 = 58;
/// ICMPv6 neighbour discovery: router advertisement, neighbour solicitation, advertisement.
const ND_ROUTER_ADVERT: u8 = 134;
const ND_NEIGHBOR_SOLICIT: u8 = 135;
const ND_NEIGHBOR_ADVERT: u8 = 136;
/// `IP_CT_ESTABLISHED` and `IP_CT_RELATED` as ct state bits.
const CT_STATE_ESTABLISHED_RELATED: u32 = 0x2 | 0x4;

/// `IFNAMSIZ`: interface names are compared as 16 bytes.
const IFNAMSIZ: usize = 16;

/// A message of a transaction, with the flags `nft` gives it: no acknowledgement is asked for
/// (the kernel answers only what it refuses, before `sendmsg` returns).
fn request(kind: u16, extra: u16) -> Msg {
    Msg::new(
        nft_type(kind),
        NLM_F_REQUEST | extra,
        family::NFPROTO_INET,
        0,
    )
}

/// The messages that add table `name` if it is missing and then delete it (so that a
/// missing table is no error): `nft add table inet NAME; nft delete table inet NAME`.
pub fn delete_table(name: &str) -> Vec<Msg> {
    let mut add = request(msg::NFT_MSG_NEWTABLE, 0);
    add.put_str(table_attr::NAME, name);
    add.put_u32(table_attr::FLAGS, 0);
    let mut del = request(msg::NFT_MSG_DELTABLE, 0);
    del.put_str(table_attr::NAME, name);
    vec![add, del]
}

/// One transaction's messages (without the batch's begin and end) that replace table `t`
/// with exactly its contents.
pub fn replace_table(t: &Table) -> Vec<Msg> {
    let mut c = Compiler {
        table: &t.name,
        out: delete_table(&t.name),
        next_set_id: 1,
        bridges: None,
    };
    let mut add = request(msg::NFT_MSG_NEWTABLE, 0);
    add.put_str(table_attr::NAME, &t.name);
    add.put_u32(table_attr::FLAGS, 0);
    c.out.push(add);
    c.chain(&format!("v-{}", t.version()), None);
    if !t.bridges.is_empty() {
        let elems: Vec<Vec<u8>> = t.bridges.iter().map(|b| ifname(b)).collect();
        c.bridges = Some(c.set("bridges", false, TYPE_IFNAME, IFNAMSIZ as u32, &elems));
    }
    if !t.nat.is_empty() {
        c.chain(
            "postrouting",
            Some(("nat", NF_INET_POST_ROUTING, 100, true)),
        );
        for r in &t.nat {
            c.rule("postrouting", r);
        }
    }
    if !t.publish.is_empty() {
        c.chain("prerouting", Some(("nat", NF_INET_PRE_ROUTING, -100, true)));
        c.chain("output", Some(("nat", NF_INET_LOCAL_OUT, -100, true)));
        for r in &t.publish {
            c.rule("prerouting", r);
            c.rule("output", r);
        }
    }
    if !t.forward.is_empty() {
        c.chain("forward", Some(("filter", NF_INET_FORWARD, 0, true)));
        for r in &t.forward {
            c.rule("forward", r);
        }
    }
    if let Some(accept) = t.input_accept {
        c.chain("input", Some(("filter", NF_INET_LOCAL_IN, 0, accept)));
        c.fixed_input_rules();
        for r in &t.allow {
            c.rule("input", r);
        }
    }
    c.out
}

struct Compiler<'t> {
    table: &'t str,
    out: Vec<Msg>,
    next_set_id: u32,
    /// The named set of the lab's network bridges: its id and name.
    bridges: Option<(u32, String)>,
}

/// An interface name as nft compares it: padded with NULs to `IFNAMSIZ`.
fn ifname(name: &str) -> Vec<u8> {
    let mut v = name.as_bytes().to_vec();
    v.resize(IFNAMSIZ, 0);
    v
}

/// `ip saddr PREFIX` / `ip6 saddr PREFIX`: a byte-aligned prefix loads only its bytes; any
/// other loads the whole address and masks it.
fn saddr(net: &IpNet) -> Vec<Expr> {
    let v6 = matches!(net, IpNet::V6(_));
    let mut e = nfproto(v6).to_vec();
    let (offset, width) = if v6 { (8, 16) } else { (12, 4) };
    let plen = u32::from(net.prefix_len());
    let network = addr_bytes(net.network());
    if plen % 8 == 0 && plen > 0 {
        let len = plen / 8;
        e.push(Expr::Payload {
            dreg: NFT_REG_1,
            base: base::NFT_PAYLOAD_NETWORK_HEADER,
            offset,
            len,
        });
        e.push(Expr::Cmp {
            sreg: NFT_REG_1,
            op: cmp::NFT_CMP_EQ,
            data: network[..len as usize].to_vec(),
        });
    } else {
        e.push(Expr::Payload {
            dreg: NFT_REG_1,
            base: base::NFT_PAYLOAD_NETWORK_HEADER,
            offset,
            len: width,
        });
        e.push(Expr::Bitwise {
            sreg: NFT_REG_1,
            dreg: NFT_REG_1,
            len: width,
            mask: addr_bytes(net.netmask()),
            xor: vec![0; width as usize],
        });
        e.push(Expr::Cmp {
            sreg: NFT_REG_1,
            op: cmp::NFT_CMP_EQ,
            data: network,
        });
    }
    e
}

fn iface(key: u32, op: u32, name: &str) -> [Expr; 2] {
    [
        Expr::Meta {
            key,
            dreg: NFT_REG_1,
        },
        Expr::Cmp {
            sreg: NFT_REG_1,
            op,
            data: ifname(name),
        },
    ]
}

/// `tcp dport N` / `udp dport N`.
fn dport(l4: u8, port: u16) -> [Expr; 4] {
    let [m, c] = l4proto(l4);
    [
        m,
        c,
        Expr::Payload {
            dreg: NFT_REG_1,
            base: base::NFT_PAYLOAD_TRANSPORT_HEADER,
            offset: 2,
            len: 2,
        },
        Expr::Cmp {
            sreg: NFT_REG_1,
            op: cmp::NFT_CMP_EQ,
            data: port.to_be_bytes().to_vec(),
        },
    ]
}

fn l4(p: Proto) -> u8 {
    match p {
        Proto::Tcp => IPPROTO_TCP,
        Proto::Udp => IPPROTO_UDP,
    }
}

impl Compiler<'_> {
    /// A chain: a regular one, or a base chain (type, hook, priority, accept policy).
    fn chain(&mut self, name: &str, hook: Option<(&str, u32, i32, bool)>) {
        let mut m = request(msg::NFT_MSG_NEWCHAIN, NLM_F_CREATE);
        m.put_str(chain_attr::TABLE, self.table);
        m.put_str(chain_attr::NAME, name);
        if let Some((kind, hooknum, prio, accept)) = hook {
            m.put_str(chain_attr::TYPE, kind);
            let policy = if accept {
                verdict::NF_ACCEPT
            } else {
                verdict::NF_DROP
            };
            m.put_u32(chain_attr::POLICY, policy as u32);
            let h = m.begin(chain_attr::HOOK);
            m.put_u32(chain_attr::HOOK_HOOKNUM, hooknum);
            m.put(chain_attr::HOOK_PRIORITY, &prio.to_be_bytes());
            m.end(h);
        }
        self.out.push(m);
    }

    /// A set and its elements; returns its id in this transaction and the name rules refer to
    /// it by.
    fn set(
        &mut self,
        name: &str,
        anonymous: bool,
        key_type: u32,
        key_len: u32,
        elems: &[Vec<u8>],
    ) -> (u32, String) {
        let id = self.next_set_id;
        self.next_set_id += 1;
        let name = if anonymous { "__set%d" } else { name }.to_string();
        let mut s = request(msg::NFT_MSG_NEWSET, NLM_F_CREATE);
        s.put_str(set_attr::TABLE, self.table);
        s.put_str(set_attr::NAME, &name);
        s.put_u32(
            set_attr::FLAGS,
            if anonymous { ANONYMOUS_CONSTANT } else { 0 },
        );
        s.put_u32(set_attr::KEY_TYPE, key_type);
        s.put_u32(set_attr::KEY_LEN, key_len);
        s.put_u32(set_attr::ID, id);
        if anonymous {
            let d = s.begin(set_attr::DESC);
            s.put_u32(set_attr::DESC_SIZE, elems.len() as u32);
            s.end(d);
        }
        // As nft records them: an interface name and `meta l4proto` in host order, an
        // `icmpv6 type` (a packet field) in network order.
        let order = if key_type == TYPE_ICMP6_TYPE {
            BYTEORDER_BIG_ENDIAN
        } else {
            BYTEORDER_HOST_ENDIAN
        };
        let mut udata = vec![UDATA_SET_KEYBYTEORDER, 4];
        udata.extend_from_slice(&order.to_ne_bytes());
        udata.extend_from_slice(key_typeof(key_type));
        s.put(set_attr::USERDATA, &udata);
        self.out.push(s);
        let mut e = request(msg::NFT_MSG_NEWSETELEM, NLM_F_CREATE);
        e.put_str(set_attr::ELEM_LIST_TABLE, self.table);
        e.put_str(set_attr::ELEM_LIST_SET, &name);
        e.put_u32(set_attr::ELEM_LIST_SET_ID, id);
        let list = e.begin(set_attr::ELEM_LIST_ELEMENTS);
        // nft numbers the elements of the list (1, 2, …) where the kernel reads any type.
        for (k, v) in elems.iter().enumerate() {
            let el = e.begin(NFTA_LIST_ELEM + k as u16);
            let k = e.begin(set_attr::ELEM_KEY);
            e.put(NFTA_DATA_VALUE, v);
            e.end(k);
            e.end(el);
        }
        e.end(list);
        self.out.push(e);
        (id, name)
    }

    fn push_rule(&mut self, chain: &str, exprs: &[Expr], comment: Option<&str>) {
        let mut m = request(msg::NFT_MSG_NEWRULE, NLM_F_CREATE | NLM_F_APPEND);
        m.put_str(rule_attr::TABLE, self.table);
        m.put_str(rule_attr::CHAIN, chain);
        let list = m.begin(rule_attr::EXPRESSIONS);
        for e in exprs {
            e.encode(&mut m);
        }
        m.end(list);
        if let Some(text) = comment {
            let mut u = vec![UDATA_RULE_COMMENT, (text.len() + 1) as u8];
            u.extend_from_slice(text.as_bytes());
            u.push(0);
            m.put(rule_attr::USERDATA, &u);
        }
        self.out.push(m);
    }

    fn lookup(&mut self, key_type: u32, elems: &[Vec<u8>]) -> Expr {
        let (set_id, set) = self.set("", true, key_type, 1, elems);
        Expr::Lookup {
            sreg: NFT_REG_1,
            set,
            set_id,
        }
    }

    /// The input chain's rules that every firewall has: replies, loopback, neighbour discovery.
    fn fixed_input_rules(&mut self) {
        let accept = Expr::Verdict(verdict::NF_ACCEPT);
        let mut e = ct_bits(ct::NFT_CT_STATE, CT_STATE_ESTABLISHED_RELATED).to_vec();
        e.push(accept.clone());
        self.push_rule("input", &e, None);
        let mut e = iface(meta::NFT_META_IIFNAME, cmp::NFT_CMP_EQ, "lo").to_vec();
        e.push(accept.clone());
        self.push_rule("input", &e, None);
        let nd = [ND_NEIGHBOR_SOLICIT, ND_NEIGHBOR_ADVERT, ND_ROUTER_ADVERT].map(|t| vec![t]);
        let lookup = self.lookup(TYPE_ICMP6_TYPE, &nd);
        let mut e = nfproto(true).to_vec();
        e.extend(l4proto(IPPROTO_ICMPV6));
        e.extend([
            Expr::Payload {
                dreg: NFT_REG_1,
                base: base::NFT_PAYLOAD_TRANSPORT_HEADER,
                offset: 0,
                len: 1,
            },
            lookup,
            accept,
        ]);
        self.push_rule("input", &e, None);
    }

    fn rule(&mut self, chain: &str, r: &Rule) {
        let comment = r.to_string();
        let mut e = Vec::new();
        match r {
            Rule::Masquerade { subnet, bridge } => {
                e.extend(saddr(subnet));
                e.extend(iface(meta::NFT_META_OIFNAME, cmp::NFT_CMP_NEQ, bridge));
                e.push(Expr::Masq);
            }
            Rule::HairpinMasquerade { subnet, bridge } => {
                e.extend(saddr(subnet));
                e.extend(iface(meta::NFT_META_OIFNAME, cmp::NFT_CMP_EQ, bridge));
                e.extend(ct_bits(ct::NFT_CT_STATUS, IPS_DST_NAT));
                e.push(Expr::Masq);
            }
            Rule::Publish {
                proto,
                host_port,
                to,
                port,
            } => {
                e.push(Expr::FibDaddrType { dreg: NFT_REG_1 });
                e.push(Expr::Cmp {
                    sreg: NFT_REG_1,
                    op: cmp::NFT_CMP_EQ,
                    data: fib::RTN_LOCAL.to_ne_bytes().to_vec(),
                });
                e.extend(dport(l4(*proto), *host_port));
                e.push(Expr::Value {
                    dreg: NFT_REG_1,
                    data: addr_bytes(*to),
                });
                e.push(Expr::Value {
                    dreg: NFT_REG_2,
                    data: port.to_be_bytes().to_vec(),
                });
                let fam = if to.is_ipv6() {
                    family::NFPROTO_IPV6
                } else {
                    family::NFPROTO_IPV4
                };
                e.push(Expr::Dnat {
                    family: u32::from(fam),
                    addr: NFT_REG_1,
                    port: NFT_REG_2,
                });
            }
            Rule::IsolateNetwork { bridge } => {
                e.extend(iface(meta::NFT_META_IIFNAME, cmp::NFT_CMP_EQ, bridge));
                e.extend(iface(meta::NFT_META_OIFNAME, cmp::NFT_CMP_NEQ, bridge));
                e.push(Expr::Meta {
                    key: meta::NFT_META_OIFNAME,
                    dreg: NFT_REG_1,
                });
                let (set_id, set) = self.bridges.clone().unwrap_or((0, "bridges".into()));
                e.push(Expr::Lookup {
                    sreg: NFT_REG_1,
                    set,
                    set_id,
                });
                e.push(Expr::Verdict(verdict::NF_DROP));
            }
            Rule::Allow { service, from } => {
                if let Some(f) = from {
                    e.extend(saddr(f));
                }
                match service {
                    Service::Icmp => {
                        let lookup = self.lookup(
                            TYPE_INET_PROTOCOL,
                            &[vec![IPPROTO_ICMP], vec![IPPROTO_ICMPV6]],
                        );
                        e.push(Expr::Meta {
                            key: meta::NFT_META_L4PROTO,
                            dreg: NFT_REG_1,
                        });
                        e.push(lookup);
                    }
                    Service::Tcp(p) => e.extend(dport(IPPROTO_TCP, *p)),
                    Service::Udp(p) => e.extend(dport(IPPROTO_UDP, *p)),
                }
                e.push(Expr::Verdict(verdict::NF_ACCEPT));
            }
        }
        self.push_rule(chain, &e, Some(&comment));
    }
}
