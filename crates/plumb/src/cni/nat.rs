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
//!   map tcp6, udp6, tcp6h, udp6h: the same with ipv6_addr   (the maps and dnat rules of a
//!                                                            family only if the network has it)
//!   chain postrouting { type nat hook postrouting priority 100;
//!     ip saddr SUBNET ip daddr != SUBNET ip daddr != 224.0.0.0/4 masquerade   (with ipMasq)
//!     ct status dnat ip saddr SUBNET ip daddr SUBNET masquerade              (hairpin)
//!     (the same for an IPv6 subnet) }
//!   chain prerouting { type nat hook prerouting priority -100;           (and output)
//!     meta l4proto tcp dnat ip to ip daddr . tcp dport map @tcp4h
//!     meta l4proto tcp fib daddr type local dnat ip to tcp dport map @tcp4
//!     (the same for udp, and for IPv6 with ip6 daddr, dnat ip6 and the maps …6) }
//! }
//! ```

use std::net::IpAddr;

use ipnet::IpNet;

use super::error::{code, CniError};
use super::spec::PortMapping;
use crate::nftables::build::{
    addr_bytes, ct_bits, l4proto, nfproto, IPPROTO_TCP, IPPROTO_UDP, IPS_DST_NAT,
    NF_INET_LOCAL_OUT, NF_INET_POST_ROUTING, NF_INET_PRE_ROUTING,
};
use crate::nftables::expr::{base, cmp, ct, fib, Expr, NFT_REG_1};
use crate::nftables::sets::{self, datatype, Element, SetSpec};
use crate::nftables::wire::{family, Msg};
use crate::nftables::NfSocket;

/// `NFT_REG32_00`, `NFT_REG32_01` and `NFT_REG32_04` (`linux/netfilter/nf_tables.h`): 4-byte
/// registers, where a concatenation's parts go. `NFT_REG32_00`..`03` overlap `NFT_REG_1`, so
/// an IPv4 address and its port are `00` and `01`, an IPv6 address and its port `00`-`03`
/// and `04`.
const NFT_REG32_00: u32 = 8;
const NFT_REG32_01: u32 = 9;
const NFT_REG32_04: u32 = 12;

/// The network's table.
pub fn table_name(network: &str) -> String {
    format!("plumb-cni-{network}")
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
            mask: addr_bytes(net.netmask()),
            xor: vec![0; len as usize],
        },
        Expr::Cmp {
            sreg: NFT_REG_1,
            op,
            data: addr_bytes(net.network()),
        },
    ]
}

/// The table's messages, for a network whose subnets are `subnets` (masqueraded when `masq`).
fn create_msgs(table: &str, subnets: &[IpNet], masq: bool) -> Vec<Msg> {
    let mut out = vec![sets::create_table(table)];
    // The maps and dnat rules of the families the network has addresses of, only.
    let has = |v4: bool| subnets.iter().any(|n| n.addr().is_ipv4() == v4);
    let mut specs = Vec::new();
    for (v, ports) in [
        ("4", (datatype::IPV4_ADDR_SERVICE, 8)),
        ("6", (datatype::IPV6_ADDR_SERVICE, 20)),
    ] {
        if !has(v == "4") {
            continue;
        }
        for (proto, host) in [("tcp", false), ("udp", false), ("tcp", true), ("udp", true)] {
            specs.push((
                format!("{proto}{v}{}", if host { "h" } else { "" }),
                if host {
                    ports
                } else {
                    (datatype::INET_SERVICE, 2)
                },
                ports,
            ));
        }
    }
    let specs: Vec<SetSpec<'_>> = specs
        .iter()
        .zip(1..)
        .map(|((name, key, data), id)| SetSpec {
            name,
            id,
            key: *key,
            data: Some(*data),
        })
        .collect();
    out.extend(specs.iter().map(|s| sets::named_set(table, s)));
    out.push(sets::base_chain(
        table,
        "postrouting",
        "nat",
        NF_INET_POST_ROUTING,
        100,
    ));
    for net in subnets {
        let v6 = net.addr().is_ipv6();
        let multicast: IpNet = if v6 { "ff00::/8" } else { "224.0.0.0/4" }
            .parse()
            .unwrap_or(*net);
        if masq {
            let mut e = nfproto(v6).to_vec();
            e.extend(addr_match(net, false, cmp::NFT_CMP_EQ));
            e.extend(addr_match(net, true, cmp::NFT_CMP_NEQ));
            e.extend(addr_match(&multicast, true, cmp::NFT_CMP_NEQ));
            e.push(Expr::Masq);
            out.push(sets::rule(table, "postrouting", &e));
        }
        // Hairpin: a container reaching a port mapped to a container of the same network (itself
        // included) through a host address; without the masquerade the answer would go straight
        // back, from an address the client never spoke to.
        let mut e = nfproto(v6).to_vec();
        e.extend(ct_bits(ct::NFT_CT_STATUS, IPS_DST_NAT));
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
        for (fam, daddr, port_reg) in [
            (family::NFPROTO_IPV4, (16, 4), NFT_REG32_01),
            (family::NFPROTO_IPV6, (24, 16), NFT_REG32_04),
        ] {
            if !has(fam == family::NFPROTO_IPV4) {
                continue;
            }
            let v = if fam == family::NFPROTO_IPV4 { 4 } else { 6 };
            for (proto, name) in [(IPPROTO_TCP, "tcp"), (IPPROTO_UDP, "udp")] {
                out.extend(dnat_rules(
                    table,
                    chain,
                    (fam, daddr, port_reg),
                    proto,
                    &format!("{name}{v}"),
                ));
            }
        }
    }
    out
}

/// The two port mapping rules of one family and protocol in `chain`: `dnat ip to ip daddr . th
/// dport map @MAPh` (mappings with a host address), then `fib daddr type local dnat ip to th
/// dport map @MAP`; `(family, (offset, length) of the destination address, the register of
/// the port after it)`.
fn dnat_rules(
    table: &str,
    chain: &str,
    fam: (u8, (u32, u32), u32),
    proto: u8,
    map: &str,
) -> [Msg; 2] {
    let (fam, (off, len), port_reg) = fam;
    let dnat = Expr::Dnat {
        family: u32::from(fam),
        addr: NFT_REG_1,
        port: port_reg,
    };
    let mut host = nfproto(fam == family::NFPROTO_IPV6).to_vec();
    host.extend(l4proto(proto));
    host.push(payload(
        base::NFT_PAYLOAD_NETWORK_HEADER,
        off,
        len,
        NFT_REG32_00,
    ));
    host.push(payload(base::NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2, port_reg));
    host.push(Expr::LookupMap {
        sreg: NFT_REG32_00,
        dreg: NFT_REG_1,
        set: format!("{map}h"),
    });
    host.push(dnat.clone());
    let mut any = nfproto(fam == family::NFPROTO_IPV6).to_vec();
    any.extend(l4proto(proto));
    any.push(Expr::FibDaddrType { dreg: NFT_REG_1 });
    any.push(Expr::Cmp {
        sreg: NFT_REG_1,
        op: cmp::NFT_CMP_EQ,
        data: fib::RTN_LOCAL.to_ne_bytes().to_vec(),
    });
    any.push(payload(base::NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2, NFT_REG_1));
    any.push(Expr::LookupMap {
        sreg: NFT_REG_1,
        dreg: NFT_REG_1,
        set: map.into(),
    });
    any.push(dnat);
    [
        sets::rule(table, chain, &host),
        sets::rule(table, chain, &any),
    ]
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

fn port4(p: u16) -> Vec<u8> {
    let mut v = p.to_be_bytes().to_vec();
    v.extend([0, 0]);
    v
}

/// The host address of a mapping (`hostIP`), if it names one.
fn host_ip(pm: &PortMapping) -> Result<Option<IpAddr>, CniError> {
    pm.host_ip
        .as_deref()
        .filter(|s| !s.is_empty())
        .map(|h| {
            h.parse().map_err(|_| {
                CniError::config(format!("portMappings: hostIP {h:?} is not an address"))
            })
        })
        .transpose()
}

/// The elements of an attachment with addresses `addrs`: each mapping goes to the container's
/// address of each family (IPv4 and IPv6 on a dual-stack network, as Docker publishes), or
/// only of its `hostIP`'s family. A mapping that no address can take is an error.
pub fn entries_for(mappings: &[PortMapping], addrs: &[IpAddr]) -> Result<Entries, CniError> {
    let mut ports = Vec::new();
    for pm in mappings {
        let host = host_ip(pm)?;
        let mut families_seen = Vec::new();
        for a in addrs {
            let same = host.is_none_or(|h| h.is_ipv4() == a.is_ipv4());
            if same && !families_seen.contains(&a.is_ipv4()) {
                families_seen.push(a.is_ipv4());
                ports.push((pm.clone(), *a));
            }
        }
        if families_seen.is_empty() {
            return Err(CniError::new(
                code::UNSUPPORTED_FIELD,
                format!(
                    "portMappings: host port {}/{} has no container address of its family{}",
                    pm.host_port,
                    pm.protocol,
                    host.map(|h| format!(" (hostIP {h})")).unwrap_or_default()
                ),
            ));
        }
    }
    Ok(Entries { ports })
}

/// The map and element of one port mapping: `tcp4`/`udp4`/`tcp6`/`udp6` by host port, or
/// `…h` by host address and port when the mapping names a `hostIP`.
fn port_element(pm: &PortMapping, to: IpAddr) -> Result<(String, Element), CniError> {
    let v = if to.is_ipv4() { "4" } else { "6" };
    let proto = match pm.protocol.to_ascii_lowercase().as_str() {
        "tcp" => "tcp",
        "udp" => "udp",
        other => {
            return Err(CniError::new(
                code::UNSUPPORTED_FIELD,
                format!("portMappings: protocol {other:?} is not tcp or udp"),
            ))
        }
    };
    let mut data = addr_bytes(to);
    data.extend(port4(pm.container_port));
    match host_ip(pm)? {
        None => Ok((
            format!("{proto}{v}"),
            (pm.host_port.to_be_bytes().to_vec(), Some(data)),
        )),
        Some(host) if host.is_ipv4() == to.is_ipv4() => {
            let mut key = addr_bytes(host);
            key.extend(port4(pm.host_port));
            Ok((format!("{proto}{v}h"), (key, Some(data))))
        }
        Some(host) => Err(CniError::new(
            code::UNSUPPORTED_FIELD,
            format!("portMappings: hostIP {host} cannot be mapped to {to}"),
        )),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn pm(proto: &str, host_ip: Option<&str>) -> PortMapping {
        PortMapping {
            host_port: 8080,
            container_port: 80,
            protocol: proto.into(),
            host_ip: host_ip.map(str::to_string),
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("an address")
    }

    #[test]
    fn a_mapping_goes_to_one_address_of_each_family_its_host_address_allows() {
        let dual = [ip("10.0.0.2"), ip("10.1.0.2"), ip("fd00::2")];
        let to = |m: &PortMapping| -> Vec<IpAddr> {
            entries_for(std::slice::from_ref(m), &dual)
                .expect("mapped")
                .ports
                .into_iter()
                .map(|(_, a)| a)
                .collect()
        };
        assert_eq!(to(&pm("tcp", None)), [ip("10.0.0.2"), ip("fd00::2")]);
        assert_eq!(to(&pm("tcp", Some("2001:db8::1"))), [ip("fd00::2")]);
        assert_eq!(to(&pm("udp", Some("192.0.2.1"))), [ip("10.0.0.2")]);
        let e = entries_for(&[pm("tcp", Some("2001:db8::1"))], &[ip("10.0.0.2")])
            .expect_err("no IPv6 address to map to");
        assert_eq!(e.code, code::UNSUPPORTED_FIELD);
        assert!(entries_for(&[pm("tcp", Some("not-an-ip"))], &dual).is_err());
    }

    #[test]
    fn elements_name_their_map_and_carry_big_endian_ports() {
        let (set, (key, data)) = port_element(&pm("UDP", None), ip("fd00::2")).expect("element");
        assert_eq!(set, "udp6");
        assert_eq!(key, 8080u16.to_be_bytes());
        let mut want = addr_bytes(ip("fd00::2"));
        want.extend([0, 80, 0, 0]);
        assert_eq!(data, Some(want));
        let (set, (key, _)) =
            port_element(&pm("tcp", Some("192.0.2.1")), ip("10.0.0.2")).expect("element");
        assert_eq!(set, "tcp4h");
        assert_eq!(key, [192, 0, 2, 1, 0x1f, 0x90, 0, 0]);
        assert!(port_element(&pm("sctp", None), ip("10.0.0.2")).is_err());
        assert!(port_element(&pm("tcp", Some("192.0.2.1")), ip("fd00::2")).is_err());
    }
}
