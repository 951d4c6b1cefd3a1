//! Where a probe goes: a node's address, or a literal address that must belong to the lab.
//!
//! Invariant: [`LabAddresses::resolve`] only ever returns an address that is a node's own
//! address or lies inside a subnet of the lab (never loopback, multicast, broadcast or
//! unspecified). This is the one gate between a topology file and a packet on the wire.

use std::net::IpAddr;

use ipnet::IpNet;

use super::ProbeError;
use crate::inspect::lab::LabView;
use crate::model::names::NsName;
use crate::model::{NodeRef, Target, Topology};

/// A probe's destination, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The address to send to.
    pub addr: IpAddr,
    /// The node that owns it, if it is a node's address (a responder can run there).
    pub node: Option<NodeRef>,
}

/// Every node of a lab with its addresses, and the lab's subnets: what probes may target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabAddresses {
    lab: String,
    /// Host first, then the namespaces; each with the addresses of its interfaces and bridges.
    nodes: Vec<(NodeRef, Vec<IpNet>)>,
    /// Subnets of the lab: of every address above, and of every `[networks.*]`.
    subnets: Vec<IpNet>,
}

/// Loopback, link-local IPv6 (needs a scope), multicast and unspecified addresses are never a
/// node's address for a probe.
fn usable(a: &IpNet) -> bool {
    let ip = a.addr();
    let link_local_v6 = matches!(ip, IpAddr::V6(v6) if (v6.segments()[0] & 0xffc0) == 0xfe80);
    !(ip.is_loopback() || ip.is_unspecified() || ip.is_multicast() || link_local_v6)
}

/// Both addresses are on one link: each one's prefix contains the other.
fn shares_link(a: &IpNet, b: &IpNet) -> bool {
    a.contains(&b.addr()) && b.contains(&a.addr())
}

impl LabAddresses {
    /// The addresses the file declares: interfaces of each node (host included) and bridges in
    /// the node they live in; subnets of those addresses and of the networks.
    pub fn of_topology(topo: &Topology) -> LabAddresses {
        let mut nodes = Vec::with_capacity(topo.nodes.len() + 1);
        for node in std::iter::once(&topo.host).chain(&topo.nodes) {
            let mut addrs: Vec<IpNet> = node
                .interfaces
                .iter()
                .flat_map(|i| i.addresses.iter().copied())
                .collect();
            addrs.extend(
                topo.bridges
                    .iter()
                    .filter(|b| b.node == node.name)
                    .flat_map(|b| b.addresses.iter().copied()),
            );
            nodes.push((node.name.clone(), addrs));
        }
        let networks = topo.networks.iter().flat_map(|n| &n.subnets).map(|s| s.net);
        LabAddresses::new(topo.name.to_string(), nodes, networks)
    }

    /// The addresses the kernel has for a lab (`plumb show`'s view of it).
    pub(crate) fn of_view(view: &LabView) -> LabAddresses {
        let mut nodes = vec![(NodeRef::Host, Vec::new())];
        for n in &view.nodes {
            let name = if n.node == "host" {
                NodeRef::Host
            } else {
                match NsName::new(&n.node) {
                    Ok(ns) => NodeRef::Ns(ns),
                    Err(_) => continue,
                }
            };
            let addrs: Vec<IpNet> = n
                .interfaces
                .iter()
                .flat_map(|i| i.addresses.iter().filter_map(|a| a.parse().ok()))
                .collect();
            match nodes.iter_mut().find(|(r, _)| *r == name) {
                Some((_, v)) => v.extend(addrs),
                None => nodes.push((name, addrs)),
            }
        }
        LabAddresses::new(view.lab.clone(), nodes, std::iter::empty())
    }

    /// Builds the table from nodes and extra subnets.
    pub fn new(
        lab: String,
        nodes: Vec<(NodeRef, Vec<IpNet>)>,
        networks: impl IntoIterator<Item = IpNet>,
    ) -> LabAddresses {
        let mut subnets: Vec<IpNet> = nodes
            .iter()
            .flat_map(|(_, a)| a.iter())
            .filter(|a| usable(a))
            .map(IpNet::trunc)
            .chain(networks)
            .collect();
        subnets.sort();
        subnets.dedup();
        LabAddresses {
            lab,
            nodes,
            subnets,
        }
    }

    fn addrs_of(&self, node: &NodeRef) -> Result<&[IpNet], ProbeError> {
        self.nodes
            .iter()
            .find(|(n, _)| n == node)
            .map(|(_, a)| a.as_slice())
            .ok_or_else(|| ProbeError::UnknownNode {
                lab: self.lab.clone(),
                node: node.to_string(),
            })
    }

    /// Where a probe from `from` to `to` goes.
    ///
    /// A node: its first IPv4 address, preferring one on a link `from` is on too; IPv6 only if
    /// it has no IPv4 address. A literal address: refused unless it is a node's address or lies
    /// in a subnet of the lab (and is one host's address, not a broadcast or network address).
    pub fn resolve(&self, from: &NodeRef, to: &Target) -> Result<Resolved, ProbeError> {
        let mine = self.addrs_of(from)?;
        match to {
            Target::Node(node) => {
                let theirs: Vec<&IpNet> =
                    self.addrs_of(node)?.iter().filter(|a| usable(a)).collect();
                for v4 in [true, false] {
                    let family: Vec<&IpNet> = theirs
                        .iter()
                        .copied()
                        .filter(|a| a.addr().is_ipv4() == v4)
                        .collect();
                    let Some(first) = family.first() else {
                        continue;
                    };
                    let chosen = family
                        .iter()
                        .find(|a| mine.iter().any(|m| shares_link(m, a)))
                        .unwrap_or(first);
                    return Ok(Resolved {
                        addr: chosen.addr(),
                        node: Some(node.clone()),
                    });
                }
                Err(ProbeError::NoAddress {
                    node: node.to_string(),
                })
            }
            Target::Addr(ip) => self.check_literal(*ip),
        }
    }

    /// A literal target: a node's address, or a host address inside a subnet of the lab.
    fn check_literal(&self, ip: IpAddr) -> Result<Resolved, ProbeError> {
        let limited_broadcast = matches!(ip, IpAddr::V4(v4) if v4.is_broadcast());
        if ip.is_unspecified() || ip.is_multicast() || limited_broadcast {
            return Err(ProbeError::NotUnicast { addr: ip });
        }
        if !ip.is_loopback() {
            for (node, addrs) in &self.nodes {
                if addrs.iter().any(|a| a.addr() == ip) {
                    return Ok(Resolved {
                        addr: ip,
                        node: Some(node.clone()),
                    });
                }
            }
            if let Some(net) = self.subnets.iter().find(|s| s.contains(&ip)) {
                // IPv4 subnets larger than /31 keep their first and last address for the
                // network and broadcast.
                if let IpNet::V4(v4) = net {
                    if v4.prefix_len() < 31 && (ip == v4.network() || ip == v4.broadcast()) {
                        return Err(ProbeError::NotUnicast { addr: ip });
                    }
                }
                return Ok(Resolved {
                    addr: ip,
                    node: None,
                });
            }
        }
        Err(ProbeError::OutsideLab {
            addr: ip,
            lab: self.lab.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED: &str = r#"
name = "seed"
[nodes.ns1.interfaces.eth1000]
addresses = ["10.66.77.24/24"]
[nodes.host.interfaces.veth1]
addresses = ["10.66.77.25/24"]
[[links]]
endpoints = ["host:veth1", "ns1:eth1000"]
[nodes.ns2]
[nodes.ns1.interfaces.veth-ns2]
addresses = ["10.66.78.1/24"]
[nodes.ns2.interfaces.veth-ns1]
addresses = ["10.66.78.2/24"]
[[links]]
endpoints = ["ns1:veth-ns2", "ns2:veth-ns1"]
"#;

    fn seed() -> LabAddresses {
        let topo = crate::model::parse_toml(SEED, "seed.toml").expect("valid seed");
        LabAddresses::of_topology(&topo)
    }

    fn ns(n: &str) -> NodeRef {
        NodeRef::Ns(NsName::new(n).expect("valid name"))
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("valid address")
    }

    #[test]
    fn resolve_node_prefers_an_address_on_a_shared_link() {
        let book = seed();
        // ns2 has one address; ns1 shares its link.
        let r = book.resolve(&ns("ns1"), &Target::Node(ns("ns2"))).unwrap();
        assert_eq!(r.addr, ip("10.66.78.2"));
        assert_eq!(r.node, Some(ns("ns2")));
        // ns1 has two: from ns2 the one on their link, from the host the one on the host's.
        let r = book.resolve(&ns("ns2"), &Target::Node(ns("ns1"))).unwrap();
        assert_eq!(r.addr, ip("10.66.78.1"));
        let r = book
            .resolve(&NodeRef::Host, &Target::Node(ns("ns1")))
            .unwrap();
        assert_eq!(r.addr, ip("10.66.77.24"));
    }

    #[test]
    fn resolve_node_without_shared_link_takes_the_first_address() {
        let r = seed()
            .resolve(&ns("ns2"), &Target::Node(NodeRef::Host))
            .unwrap();
        assert_eq!(r.addr, ip("10.66.77.25"));
        assert_eq!(r.node, Some(NodeRef::Host));
    }

    #[test]
    fn resolve_node_prefers_ipv4_and_skips_link_local() {
        let book = LabAddresses::new(
            "t".into(),
            vec![
                (NodeRef::Host, vec!["fd00::1/64".parse().unwrap()]),
                (
                    ns("a"),
                    vec![
                        "fe80::2/64".parse().unwrap(),
                        "fd00::2/64".parse().unwrap(),
                        "10.0.0.2/24".parse().unwrap(),
                    ],
                ),
                (
                    ns("b"),
                    vec!["fe80::3/64".parse().unwrap(), "fd00::3/64".parse().unwrap()],
                ),
            ],
            [],
        );
        let r = book
            .resolve(&NodeRef::Host, &Target::Node(ns("a")))
            .unwrap();
        assert_eq!(r.addr, ip("10.0.0.2"));
        let r = book
            .resolve(&NodeRef::Host, &Target::Node(ns("b")))
            .unwrap();
        assert_eq!(r.addr, ip("fd00::3"));
    }

    #[test]
    fn resolve_node_without_address_is_an_error() {
        let book = LabAddresses::new(
            "t".into(),
            vec![
                (NodeRef::Host, vec![]),
                (ns("a"), vec!["127.0.0.1/8".parse().unwrap()]),
            ],
            [],
        );
        let e = book
            .resolve(&NodeRef::Host, &Target::Node(ns("a")))
            .unwrap_err();
        assert!(matches!(e, ProbeError::NoAddress { .. }), "{e}");
    }

    #[test]
    fn resolve_unknown_node_is_an_error() {
        let book = seed();
        let e = book
            .resolve(&ns("nope"), &Target::Node(ns("ns1")))
            .unwrap_err();
        assert!(matches!(e, ProbeError::UnknownNode { ref node, .. } if node == "nope"));
        let e = book
            .resolve(&ns("ns1"), &Target::Node(ns("nope")))
            .unwrap_err();
        assert!(matches!(e, ProbeError::UnknownNode { .. }));
    }

    #[test]
    fn resolve_literal_node_address_names_its_owner() {
        let r = seed()
            .resolve(&ns("ns1"), &Target::Addr(ip("10.66.77.25")))
            .unwrap();
        assert_eq!(r.node, Some(NodeRef::Host));
    }

    #[test]
    fn resolve_literal_inside_a_lab_subnet_is_allowed_without_owner() {
        let r = seed()
            .resolve(&ns("ns1"), &Target::Addr(ip("10.66.78.99")))
            .unwrap();
        assert_eq!(r.addr, ip("10.66.78.99"));
        assert_eq!(r.node, None);
    }

    #[test]
    fn resolve_literal_outside_the_lab_is_refused() {
        let book = seed();
        for a in [
            "192.0.2.1",
            "8.8.8.8",
            "10.66.79.1",
            "127.0.0.1",
            "::1",
            "2001:db8::1",
        ] {
            let e = book.resolve(&ns("ns1"), &Target::Addr(ip(a))).unwrap_err();
            assert!(
                matches!(e, ProbeError::OutsideLab { addr, .. } if addr == ip(a)),
                "{a}: {e}"
            );
        }
    }

    #[test]
    fn resolve_literal_broadcast_or_network_address_is_refused() {
        let book = seed();
        for a in [
            "10.66.77.255",
            "10.66.77.0",
            "255.255.255.255",
            "224.0.0.1",
            "0.0.0.0",
        ] {
            let e = book.resolve(&ns("ns1"), &Target::Addr(ip(a))).unwrap_err();
            assert!(matches!(e, ProbeError::NotUnicast { .. }), "{a}: {e}");
        }
    }

    #[test]
    fn of_topology_counts_bridge_and_network_addresses() {
        let topo = crate::model::parse_toml(
            "name = \"star\"\n[networks.plumb0]\nsubnet = \"10.88.0.0/24\"\nmembers = [\"web\", \"db\"]\n",
            "star.toml",
        )
        .expect("valid star");
        let book = LabAddresses::of_topology(&topo);
        // The gateway lives on the bridge in the host.
        let r = book
            .resolve(&ns("web"), &Target::Node(NodeRef::Host))
            .unwrap();
        assert_eq!(r.addr, ip("10.88.0.1"));
        let r = book.resolve(&ns("web"), &Target::Node(ns("db"))).unwrap();
        assert_eq!(r.addr, ip("10.88.0.3"));
        let r = book
            .resolve(&ns("web"), &Target::Addr(ip("10.88.0.200")))
            .unwrap();
        assert_eq!(r.node, None);
    }
}
