//! Masquerade and port mappings of a CNI network, in plumb's own nftables table
//! `inet plumb-cni-NETWORK`: a fixed set of rules made once per network. Masquerade is one rule
//! per subnet of the network (every address of the subnet is a container's); port mappings are
//! rules that look up named maps, and each attachment only adds and removes map elements. So
//! the rule count never grows with the number of containers, an ADD without port mappings
//! writes nothing to nf_tables (closing a socket after a transaction waits for an RCU grace
//! period in the kernel), and no `nft` process is started.
//!
//! ```text
//! table inet plumb-cni-NET {
//!   map tcp4  { type inet_service : ipv4_addr . inet_service }      (and udp4)
//!   map tcp4h { type ipv4_addr . inet_service : ipv4_addr . inet_service }  (and udp4h)
//!   chain postrouting { type nat hook postrouting priority 100;
//!     ip saddr SUBNET ip daddr != SUBNET ip daddr != 224.0.0.0/4 masquerade   (with ipMasq)
//!     ct status dnat ip saddr SUBNET ip daddr SUBNET masquerade              (hairpin)
//!     (the same for an IPv6 subnet) }
//!   chain prerouting { type nat hook prerouting priority -100;           (and output)
//!     meta l4proto tcp dnat ip to ip daddr . tcp dport map @tcp4h
//!     meta l4proto tcp fib daddr type local dnat ip to tcp dport map @tcp4
//!     (the same for udp) }
//! }
//! ```

use std::net::IpAddr;

use ipnet::IpNet;

use super::error::{code, CniError};
use super::spec::PortMapping;
use crate::nftables::expr::{base, cmp, ct, fib, meta, Expr, NFT_REG_1};
use crate::nftables::sets::{self, datatype, Element, SetSpec};
use crate::nftables::wire::{family, Msg};
use crate::nftables::NfSocket;

/// `NFT_REG32_00` and `NFT_REG32_01` (`linux/netfilter/nf_tables.h`): the 4-byte registers
/// that overlap `NFT_REG_1`, where a concatenation's parts go.
const NFT_REG32_00: u32 = 8;
const NFT_REG32_01: u32 = 9;
/// `NF_INET_*` hooks.
const NF_INET_PRE_ROUTING: u32 = 0;
const NF_INET_LOCAL_OUT: u32 = 3;
const NF_INET_POST_ROUTING: u32 = 4;
/// `IPS_DST_NAT` (`linux/netfilter/nf_conntrack_common.h`): the connection was DNATed.
const IPS_DST_NAT: u32 = 0x20;
/// `IPPROTO_TCP`, `IPPROTO_UDP`.
const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;

/// The network's table.
pub fn table_name(network: &str) -> String {
    format!("plumb-cni-{network}")
}

fn nfproto(p: u8) -> [Expr; 2] {
    [
        Expr::Meta {
            key: meta::NFT_META_NFPROTO,
            dreg: NFT_REG_1,
        },
        Expr::Cmp {
            sreg: NFT_REG_1,
            op: cmp::NFT_CMP_EQ,
            data: vec![p],
        },
    ]
}

fn l4proto(p: u8) -> [Expr; 2] {
    [
        Expr::Meta {
            key: meta::NFT_META_L4PROTO,
            dreg: NFT_REG_1,
        },
        Expr::Cmp {
            sreg: NFT_REG_1,
            op: cmp::NFT_CMP_EQ,
            data: vec![p],
        },
    ]
}

fn payload(base: u32, offset: u32, len: u32, dreg: u32) -> Expr {
    Expr::Payload {
        dreg,
        base,
        offset,
        len,
    }
}

/// `ip saddr NET` / `ip6 daddr NET` (`daddr`: destination), as a masked compare.
fn addr_match(net: &IpNet, daddr: bool, op: u32) -> Vec<Expr> {
    let v4 = net.addr().is_ipv4();
    let (off, len) = match (v4, daddr) {
        (true, false) => (12, 4),
        (true, true) => (16, 4),
        (false, false) => (8, 16),
        (false, true) => (24, 16),
    };
    vec![
        payload(base::NFT_PAYLOAD_NETWORK_HEADER, off, len, NFT_REG_1),
        Expr::Bitwise {
            sreg: NFT_REG_1,
            dreg: NFT_REG_1,
            len,
            mask: ip_bytes(net.netmask()),
            xor: vec![0; len as usize],
        },
        Expr::Cmp {
            sreg: NFT_REG_1,
            op,
            data: ip_bytes(net.network()),
        },
    ]
}

/// The table's messages, for a network whose subnets are `subnets` (masqueraded when `masq`).
fn create_msgs(table: &str, subnets: &[IpNet], masq: bool) -> Vec<Msg> {
    let mut out = vec![sets::create_table(table)];
    let ports = (datatype::IPV4_ADDR_SERVICE, 8);
    let specs = [
        SetSpec {
            name: "tcp4",
            id: 1,
            key: (datatype::INET_SERVICE, 2),
            data: Some(ports),
        },
        SetSpec {
            name: "udp4",
            id: 2,
            key: (datatype::INET_SERVICE, 2),
            data: Some(ports),
        },
        SetSpec {
            name: "tcp4h",
            id: 3,
            key: ports,
            data: Some(ports),
        },
        SetSpec {
            name: "udp4h",
            id: 4,
            key: ports,
            data: Some(ports),
        },
    ];
    out.extend(specs.iter().map(|s| sets::named_set(table, s)));
    out.push(sets::base_chain(
        table,
        "postrouting",
        "nat",
        NF_INET_POST_ROUTING,
        100,
    ));
    for net in subnets {
        let (fam, multicast): (u8, IpNet) = if net.addr().is_ipv4() {
            (family::NFPROTO_IPV4, "224.0.0.0/4".parse().unwrap_or(*net))
        } else {
            (family::NFPROTO_IPV6, "ff00::/8".parse().unwrap_or(*net))
        };
        if masq {
            let mut e = nfproto(fam).to_vec();
            e.extend(addr_match(net, false, cmp::NFT_CMP_EQ));
            e.extend(addr_match(net, true, cmp::NFT_CMP_NEQ));
            e.extend(addr_match(&multicast, true, cmp::NFT_CMP_NEQ));
            e.push(Expr::Masq);
            out.push(sets::rule(table, "postrouting", &e));
        }
        // Hairpin: a container reaching a port mapped to a container of the same network (itself
        // included) through a host address; without the masquerade the answer would go straight
        // back, from an address the client never spoke to.
        let mut e = nfproto(fam).to_vec();
        e.extend([
            Expr::Ct {
                key: ct::NFT_CT_STATUS,
                dreg: NFT_REG_1,
            },
            Expr::Bitwise {
                sreg: NFT_REG_1,
                dreg: NFT_REG_1,
                len: 4,
                mask: IPS_DST_NAT.to_ne_bytes().to_vec(),
                xor: vec![0; 4],
            },
            Expr::Cmp {
                sreg: NFT_REG_1,
                op: cmp::NFT_CMP_NEQ,
                data: vec![0; 4],
            },
        ]);
        e.extend(addr_match(net, false, cmp::NFT_CMP_EQ));
        e.extend(addr_match(net, true, cmp::NFT_CMP_EQ));
        e.push(Expr::Masq);
        out.push(sets::rule(table, "postrouting", &e));
    }
    for chain in ["prerouting", "output"] {
        let hook = if chain == "prerouting" {
            NF_INET_PRE_ROUTING
        } else {
            NF_INET_LOCAL_OUT
        };
        out.push(sets::base_chain(table, chain, "nat", hook, -100));
        for (proto, any, host) in [
            (IPPROTO_TCP, "tcp4", "tcp4h"),
            (IPPROTO_UDP, "udp4", "udp4h"),
        ] {
            let dnat = Expr::Dnat {
                family: u32::from(family::NFPROTO_IPV4),
                addr: NFT_REG_1,
                port: NFT_REG32_01,
            };
            // ip daddr . th dport map @host
            let mut e = nfproto(family::NFPROTO_IPV4).to_vec();
            e.extend(l4proto(proto));
            e.push(payload(
                base::NFT_PAYLOAD_NETWORK_HEADER,
                16,
                4,
                NFT_REG32_00,
            ));
            e.push(payload(
                base::NFT_PAYLOAD_TRANSPORT_HEADER,
                2,
                2,
                NFT_REG32_01,
            ));
            e.push(Expr::LookupMap {
                sreg: NFT_REG32_00,
                dreg: NFT_REG_1,
                set: host.into(),
            });
            e.push(dnat.clone());
            out.push(sets::rule(table, chain, &e));
            // fib daddr type local th dport map @any
            let mut e = nfproto(family::NFPROTO_IPV4).to_vec();
            e.extend(l4proto(proto));
            e.push(Expr::FibDaddrType { dreg: NFT_REG_1 });
            e.push(Expr::Cmp {
                sreg: NFT_REG_1,
                op: cmp::NFT_CMP_EQ,
                data: fib::RTN_LOCAL.to_ne_bytes().to_vec(),
            });
            e.push(payload(base::NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2, NFT_REG_1));
            e.push(Expr::LookupMap {
                sreg: NFT_REG_1,
                dreg: NFT_REG_1,
                set: any.into(),
            });
            e.push(dnat);
            out.push(sets::rule(table, chain, &e));
        }
    }
    out
}

/// Makes the network's table if it is not there: a read first (no transaction when it
/// exists), then one transaction (of racing plugins one makes it, the others find it).
pub fn ensure_table(
    sock: &mut NfSocket,
    network: &str,
    subnets: &[IpNet],
    masq: bool,
) -> Result<(), CniError> {
    let table = table_name(network);
    let err = |e| CniError::nft(format!("cannot create table inet {table}"), &e);
    if sets::table_exists(sock, &table).map_err(err)? {
        return Ok(());
    }
    sets::create_once(sock, &table, create_msgs(&table, subnets, masq))
        .map(|_| ())
        .map_err(err)
}

/// Whether the network's table exists.
pub fn table_exists(sock: &mut NfSocket, network: &str) -> Result<bool, CniError> {
    let table = table_name(network);
    sets::table_exists(sock, &table)
        .map_err(|e| CniError::nft(format!("cannot read table inet {table}"), &e))
}

/// What one attachment puts into the table.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Entries {
    /// Port mappings and the container address they go to.
    #[serde(default)]
    pub ports: Vec<(PortMapping, IpAddr)>,
}

impl Entries {
    /// True if there is nothing.
    pub fn is_empty(&self) -> bool {
        self.ports.is_empty()
    }
}

fn ip_bytes(a: IpAddr) -> Vec<u8> {
    match a {
        IpAddr::V4(v) => v.octets().to_vec(),
        IpAddr::V6(v) => v.octets().to_vec(),
    }
}

fn port4(p: u16) -> Vec<u8> {
    let mut v = p.to_be_bytes().to_vec();
    v.extend([0, 0]);
    v
}

/// The set and element of one port mapping.
fn port_element(pm: &PortMapping, to: IpAddr) -> Result<(String, Element), CniError> {
    let IpAddr::V4(_) = to else {
        return Err(CniError::new(
            code::UNSUPPORTED_FIELD,
            "portMappings: only IPv4 container addresses can be mapped",
        ));
    };
    let proto = match pm.protocol.to_ascii_lowercase().as_str() {
        "tcp" => "tcp4",
        "udp" => "udp4",
        other => {
            return Err(CniError::new(
                code::UNSUPPORTED_FIELD,
                format!("portMappings: protocol {other:?} is not tcp or udp"),
            ))
        }
    };
    let mut data = ip_bytes(to);
    data.extend(port4(pm.container_port));
    match pm.host_ip.as_deref().filter(|s| !s.is_empty()) {
        None => Ok((
            proto.to_string(),
            (pm.host_port.to_be_bytes().to_vec(), Some(data)),
        )),
        Some(h) => {
            let host: IpAddr = h.parse().map_err(|_| {
                CniError::config(format!("portMappings: hostIP {h:?} is not an address"))
            })?;
            let IpAddr::V4(_) = host else {
                return Err(CniError::new(
                    code::UNSUPPORTED_FIELD,
                    "portMappings: only IPv4 host addresses can be mapped",
                ));
            };
            let mut key = ip_bytes(host);
            key.extend(port4(pm.host_port));
            Ok((format!("{proto}h"), (key, Some(data))))
        }
    }
}

/// Checks the port mappings before anything is touched.
pub fn validate(e: &Entries) -> Result<(), CniError> {
    for (pm, to) in &e.ports {
        port_element(pm, *to)?;
    }
    Ok(())
}

/// Adds an attachment's elements.
pub fn add(sock: &mut NfSocket, network: &str, e: &Entries) -> Result<(), CniError> {
    let table = table_name(network);
    let err = |x: crate::nftables::NftError| {
        CniError::nft(format!("cannot add to table inet {table}"), &x)
    };
    let mut groups: Vec<(String, Vec<Element>)> = Vec::new();
    for (pm, to) in &e.ports {
        let (set, el) = port_element(pm, *to)?;
        match groups.iter_mut().find(|(s, _)| *s == set) {
            Some((_, els)) => els.push(el),
            None => groups.push((set, vec![el])),
        }
    }
    // One transaction: all of the attachment's mappings, or none (so a failure never leaves
    // half of them, and never touches another container's).
    sets::add_to_sets(sock, &table, &groups).map_err(|x| {
        if x.errno() == Some(libc::EEXIST) {
            let ports: Vec<String> = e
                .ports
                .iter()
                .map(|(p, _)| format!("{}/{}", p.host_port, p.protocol))
                .collect();
            CniError::new(
                code::INTERNAL,
                format!(
                    "host port {} is already mapped to another container",
                    ports.join(", ")
                ),
            )
        } else {
            err(x)
        }
    })
}

/// Removes an attachment's elements (those already gone count as removed); every element is
/// tried, the first failure returned.
pub fn remove(sock: &mut NfSocket, network: &str, e: &Entries) -> Result<(), CniError> {
    let table = table_name(network);
    let mut first = None;
    let mut note = |r: Result<(), crate::nftables::NftError>| {
        if let Err(x) = r {
            first.get_or_insert(CniError::nft(
                format!("cannot remove from table inet {table}"),
                &x,
            ));
        }
    };
    for (pm, to) in &e.ports {
        let Ok((set, (key, data))) = port_element(pm, *to) else {
            continue;
        };
        // Only an element that still maps to this container: the host port may have gone to
        // another container since.
        match sets::element(sock, &table, &set, &key) {
            Ok(Some(found)) if found == data => {
                note(sets::delete_elements(sock, &table, &set, &[key]));
            }
            Ok(_) => {}
            Err(x) => note(Err(x)),
        }
    }
    first.map_or(Ok(()), Err)
}

/// Checks that every element of an attachment is in the table.
pub fn check(sock: &mut NfSocket, network: &str, e: &Entries) -> Result<(), CniError> {
    let table = table_name(network);
    let missing = |what: String| {
        CniError::new(
            code::INTERNAL,
            format!("{what} is missing from table inet {table}"),
        )
    };
    let read =
        |x: crate::nftables::NftError| CniError::nft(format!("cannot read table inet {table}"), &x);
    for (pm, to) in &e.ports {
        let (set, (key, data)) = port_element(pm, *to)?;
        if sets::element(sock, &table, &set, &key).map_err(read)? != Some(data) {
            return Err(missing(format!(
                "port mapping {}/{}",
                pm.host_port, pm.protocol
            )));
        }
    }
    Ok(())
}
