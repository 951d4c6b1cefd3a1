//! plumb's nftables rules: a typed model of what a lab needs ([`Table`] of [`Rule`]s), which
//! `nftables` compiles into one atomic nf_tables transaction that replaces plumb's own table
//! `inet plumb-LAB` and nothing else, and which `text` renders as the `nft` script a dry run
//! prints. Pure.
//!
//! Invariants:
//! - plumb writes only tables named `plumb-LAB`; a transaction first adds the table (a no-op if
//!   it exists), deletes it, and recreates it with all its contents, so a change never leaves a
//!   half-written table and never touches another table;
//! - the number of rules depends on the number of networks, published ports and firewall
//!   entries, never on the number of members;
//! - every table carries a marker chain `v-HASH` naming the hash of its contents, so a snapshot
//!   can tell whether the table is current without comparing rules;
//! - every rule of the lab's own carries its description ([`Rule`]'s `Display`) as its comment,
//!   which is how `show` reads the rules back.

use ipnet::IpNet;

mod text;

pub use text::NotARule;

use crate::model::{NodeRef, Proto, Service, Topology};

/// The name of the lab's table (family `inet`) in every namespace where it has rules.
pub fn table_name(lab: &str) -> String {
    format!("plumb-{lab}")
}

/// One rule, as typed values.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "rule", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Rule {
    /// Masquerade traffic from `subnet` leaving through anything but `bridge`.
    Masquerade {
        /// Source subnet.
        subnet: IpNet,
        /// The network's bridge.
        bridge: String,
    },
    /// Masquerade published traffic that comes back out of the bridge it came in on (hairpin).
    HairpinMasquerade {
        /// Source subnet.
        subnet: IpNet,
        /// The network's bridge.
        bridge: String,
    },
    /// DNAT a port of any local address to a member's address and port.
    Publish {
        /// Protocol.
        proto: Proto,
        /// Host port.
        host_port: u16,
        /// Member address.
        to: std::net::IpAddr,
        /// Member port.
        port: u16,
    },
    /// Drop forwarded traffic from `bridge` to any other of the lab's network bridges.
    IsolateNetwork {
        /// The bridge.
        bridge: String,
    },
    /// Accept inbound traffic matching `service` (and `from`).
    Allow {
        /// What.
        service: Service,
        /// From where.
        from: Option<IpNet>,
    },
}

/// The whole table for one namespace.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Table {
    /// `plumb-LAB`.
    pub name: String,
    /// Network bridges of the lab (the set `bridges`).
    pub bridges: Vec<String>,
    /// NAT rules (postrouting).
    pub nat: Vec<Rule>,
    /// Published ports (prerouting and output).
    pub publish: Vec<Rule>,
    /// Forward filter rules.
    pub forward: Vec<Rule>,
    /// Input policy: `Some(false)` = drop unless allowed; `None` = no input chain.
    pub input_accept: Option<bool>,
    /// Input allow rules.
    pub allow: Vec<Rule>,
}

impl Table {
    /// A table named `name` with nothing in it.
    pub fn empty(name: &str) -> Table {
        Table {
            name: name.to_owned(),
            bridges: Vec::new(),
            nat: Vec::new(),
            publish: Vec::new(),
            forward: Vec::new(),
            input_accept: None,
            allow: Vec::new(),
        }
    }

    /// A stable hash of the contents: the `v-HASH` marker.
    pub fn version(&self) -> String {
        // The format's own revision first: a table written before rules carried their
        // descriptions is rewritten once.
        let text = format!("2 {}", serde_json::to_string(self).unwrap_or_default());
        format!("{:012x}", crate::ownership::hash(&text) & 0xffff_ffff_ffff)
    }

    /// Nothing to enforce.
    pub fn is_empty(&self) -> bool {
        self.nat.is_empty()
            && self.publish.is_empty()
            && self.forward.is_empty()
            && self.input_accept.is_none()
    }
}

/// The host's table for `topo`: NAT, published ports and isolation between networks.
pub fn host_table(topo: &Topology) -> Table {
    let mut t = Table {
        name: table_name(topo.name.as_str()),
        bridges: Vec::new(),
        nat: Vec::new(),
        publish: Vec::new(),
        forward: Vec::new(),
        input_accept: None,
        allow: Vec::new(),
    };
    for n in &topo.networks {
        if n.nat {
            for s in &n.subnets {
                t.nat.push(Rule::Masquerade {
                    subnet: s.net,
                    bridge: n.name.to_string(),
                });
            }
        }
        // A published port of a dual-stack network is reached over both families: one DNAT
        // per family, to the member's address of that family (the kernel applies a DNAT of
        // an `inet` table only to packets of its own family).
        for p in &n.publish {
            for addr in n.addresses_of(&p.member) {
                t.publish.push(Rule::Publish {
                    proto: p.proto,
                    host_port: p.host_port,
                    to: addr,
                    port: p.port,
                });
            }
        }
        if !n.publish.is_empty() {
            for s in &n.subnets {
                t.nat.push(Rule::HairpinMasquerade {
                    subnet: s.net,
                    bridge: n.name.to_string(),
                });
            }
        }
    }
    if topo.networks.len() > 1 {
        t.bridges = topo.networks.iter().map(|n| n.name.to_string()).collect();
        for n in &topo.networks {
            t.forward.push(Rule::IsolateNetwork {
                bridge: n.name.to_string(),
            });
        }
    }
    t
}

/// The firewall table of a node, if it declares `[nodes.X.firewall]`.
pub fn node_table(topo: &Topology, node: &NodeRef) -> Option<Table> {
    let fw = topo.node(node)?.firewall.as_ref()?;
    Some(Table {
        name: table_name(topo.name.as_str()),
        bridges: Vec::new(),
        nat: Vec::new(),
        publish: Vec::new(),
        forward: Vec::new(),
        input_accept: Some(fw.ingress_allow),
        allow: fw
            .allow
            .iter()
            .map(|a| Rule::Allow {
                service: a.service,
                from: a.from,
            })
            .collect(),
    })
}

/// True when the lab needs the host to forward packets of one IP family (`ipv6`): a network
/// with NAT or published ports has a subnet of that family.
pub fn needs_forwarding(topo: &Topology, ipv6: bool) -> bool {
    topo.networks
        .iter()
        .filter(|n| n.nat || !n.publish.is_empty())
        .any(|n| n.subnet(ipv6).is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topo() -> Topology {
        crate::model::parse_toml(
            r#"name = "egress"
[networks.lan0]
subnet = "10.90.0.0/24"
members = ["web", "client"]
nat = true
publish = ["8080:web:80/tcp", "5353:web:53/udp"]
[networks.lan1]
subnet = "10.91.0.0/24"
members = ["x[1..100]"]
nat = true
[nodes.web.firewall]
ingress = "deny"
allow = ["icmp", "tcp/80 from 10.90.0.0/24"]
"#,
            "t.toml",
        )
        .expect("valid")
    }

    #[test]
    fn host_table_rule_count_does_not_grow_with_members() {
        let t = host_table(&topo());
        // 2 masquerades + 1 hairpin, 2 publishes, 2 isolation rules: none per member.
        assert_eq!(t.nat.len(), 3);
        assert_eq!(t.publish.len(), 2);
        assert_eq!(t.forward.len(), 2);
        assert_eq!(
            t.publish[0],
            Rule::Publish {
                proto: Proto::Tcp,
                host_port: 8080,
                to: "10.90.0.2".parse().unwrap(),
                port: 80
            }
        );
    }

    const DUAL: &str = r#"name = "dual"
[networks.lan0]
subnet = ["10.90.0.0/24", "fd00:90::/64"]
members = ["web", "client"]
nat = true
publish = ["8080:web:80/tcp", "5353:client:53/udp"]
"#;

    #[test]
    fn host_table_dual_stack_has_a_masquerade_and_hairpin_per_subnet_and_publishes_on_both() {
        let topo = crate::model::parse_toml(DUAL, "t.toml").expect("valid");
        let t = host_table(&topo);
        let (v4, v6): (IpNet, IpNet) = (
            "10.90.0.0/24".parse().unwrap(),
            "fd00:90::/64".parse().unwrap(),
        );
        let bridge = || "lan0".to_string();
        assert_eq!(
            t.nat,
            [
                Rule::Masquerade {
                    subnet: v4,
                    bridge: bridge()
                },
                Rule::Masquerade {
                    subnet: v6,
                    bridge: bridge()
                },
                Rule::HairpinMasquerade {
                    subnet: v4,
                    bridge: bridge()
                },
                Rule::HairpinMasquerade {
                    subnet: v6,
                    bridge: bridge()
                },
            ]
        );
        let publish = |proto, host_port, to: &str, port| Rule::Publish {
            proto,
            host_port,
            to: to.parse().unwrap(),
            port,
        };
        assert_eq!(
            t.publish,
            [
                publish(Proto::Tcp, 8080, "10.90.0.2", 80),
                publish(Proto::Tcp, 8080, "fd00:90::2", 80),
                publish(Proto::Udp, 5353, "10.90.0.3", 53),
                publish(Proto::Udp, 5353, "fd00:90::3", 53),
            ]
        );
        let script = t.nft_script();
        assert!(script.contains("dnat ip6 to [fd00:90::2]:80"), "{script}");
        assert!(script.contains("dnat ip to 10.90.0.2:80"), "{script}");
    }

    #[test]
    fn host_table_ipv6_only_network_masquerades_and_publishes_in_ipv6() {
        let src = DUAL.replace(r#"["10.90.0.0/24", "fd00:90::/64"]"#, r#""fd00:90::/64""#);
        let topo = crate::model::parse_toml(&src, "t.toml").expect("valid");
        let t = host_table(&topo);
        assert_eq!(t.nat.len(), 2);
        assert!(t
            .nat
            .iter()
            .all(|r| matches!(r, Rule::Masquerade { subnet, .. } | Rule::HairpinMasquerade { subnet, .. } if subnet.addr().is_ipv6())));
        assert!(t
            .publish
            .iter()
            .all(|r| matches!(r, Rule::Publish { to, .. } if to.is_ipv6())));
        assert!(needs_forwarding(&topo, true) && !needs_forwarding(&topo, false));
        let dual = crate::model::parse_toml(DUAL, "t.toml").expect("valid");
        assert!(needs_forwarding(&dual, true) && needs_forwarding(&dual, false));
    }
}
