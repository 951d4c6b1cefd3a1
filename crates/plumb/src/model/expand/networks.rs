//! Networks: a `[networks.NAME]` expanded into its bridge, one veth pair per member, the members'
//! addresses from each subnet's pool (one subnet per IP family) and their default routes.

use std::collections::{HashMap, HashSet};

use ipnet::IpNet;

use super::addresses::Source;
use super::nodes::Use;
use super::{Expander, NodeId, BRIDGE_MAX_PORTS};
use crate::model::error::DiagnosticKind;
use crate::model::names::{IfName, NsName};
use crate::model::pool::{fitting_subnet, Pool};
use crate::model::port_name::{host_port_name, port_seed};
use crate::model::raw::RawNetwork;
use crate::model::types::{Bridge, Endpoint, Link, Network, NodeRef, Proto, Route, Subnet};

impl Expander<'_, '_> {
    /// A network's members in order, each with where it was written; undeclared ones become nodes.
    pub(super) fn members(&mut self, net: &RawNetwork) -> Vec<(NsName, usize, usize)> {
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        for entry in &net.members {
            for name in &entry.v {
                if name.as_str() == "host" {
                    let kind = DiagnosticKind::HostMember {
                        network: net.name.to_string(),
                    };
                    self.sink.report(entry.at, kind);
                    continue;
                }
                if !seen.insert(name.as_str()) {
                    let kind = DiagnosticKind::DuplicateMember {
                        network: net.name.to_string(),
                        member: name.to_string(),
                    };
                    self.sink.report(entry.at, kind);
                    continue;
                }
                let i = match self.index.get(name.as_str()) {
                    Some(&i) => i,
                    None => self.add_node(name.clone(), entry.at),
                };
                out.push((name.clone(), entry.at, i));
            }
        }
        out
    }

    /// Marks the interfaces a refused network would have given its members.
    fn failed_members(&mut self, interface: &IfName, members: &[(NsName, usize, usize)]) {
        for (member, _, _) in members {
            self.failed_end(member.as_str(), interface.as_str());
        }
    }

    pub(super) fn network(
        &mut self,
        net: RawNetwork,
        members: Vec<(NsName, usize, usize)>,
        subnets: &mut Vec<(IfName, IpNet, usize)>,
        published: &mut HashMap<(u16, Proto), usize>,
    ) {
        let Some(prefixes) = net.subnets else {
            self.failed_members(&net.interface, &members);
            return;
        };
        let line = self.sink.line(net.at);
        let mut ok = true;
        for p in &prefixes {
            let overlapped = subnets
                .iter()
                .find(|(_, other, _)| p.v.contains(other) || other.contains(&p.v));
            if let Some((other, other_subnet, other_line)) = overlapped {
                let kind = DiagnosticKind::OverlappingSubnets {
                    network: net.name.to_string(),
                    subnet: p.v,
                    other: other.to_string(),
                    other_subnet: *other_subnet,
                    other_line: *other_line,
                };
                self.sink.report(p.at, kind);
                ok = false;
            }
        }
        subnets.extend(prefixes.iter().map(|p| (net.name.clone(), p.v, line)));

        // Each subnet with its gateway (written, or its first host) and where that is written.
        let mut gateway_ok = true;
        for g in &net.gateways {
            if !prefixes
                .iter()
                .any(|p| p.v.addr().is_ipv6() == g.v.is_ipv6())
            {
                let kind = DiagnosticKind::GatewayWithoutSubnet {
                    gateway: g.v,
                    network: net.name.to_string(),
                    subnets: prefixes.iter().map(|p| p.v).collect(),
                };
                self.sink.report(g.at, kind);
                gateway_ok = false;
            }
        }
        let mut families = Vec::with_capacity(prefixes.len());
        for p in &prefixes {
            let pool = Pool::new(p.v);
            let written = net
                .gateways
                .iter()
                .find(|g| g.v.is_ipv6() == p.v.addr().is_ipv6());
            let (gateway, gateway_at) = match written {
                Some(g) => {
                    if let Err(kind) = pool.check_gateway(g.v) {
                        self.sink.report(g.at, kind);
                        gateway_ok = false;
                    }
                    (g.v, g.at)
                }
                None => (pool.first(), p.at),
            };
            families.push((p, pool, gateway, gateway_at));
        }
        if !gateway_ok {
            self.failed_members(&net.interface, &members);
            return;
        }
        for (p, pool, gateway, _) in &families {
            let free = pool.free(*gateway);
            if members.len() as u128 > free {
                let kind = DiagnosticKind::SubnetTooSmall {
                    network: net.name.to_string(),
                    subnet: p.v,
                    members: members.len(),
                    free,
                    fits: fitting_subnet(p.v, members.len()),
                };
                self.sink.report(p.at, kind);
                ok = false;
            }
        }
        let links = self
            .bridge_names
            .get(net.name.as_str())
            .filter(|b| b.what == "network")
            .map_or(0, |b| b.ports);
        if members.len() > BRIDGE_MAX_PORTS {
            let kind = DiagnosticKind::TooManyMembers {
                network: net.name.to_string(),
                members: members.len(),
            };
            self.sink.report(net.members_at, kind);
            ok = false;
        } else if members.len() + links > BRIDGE_MAX_PORTS {
            let kind = DiagnosticKind::TooManyPorts {
                bridge: net.name.to_string(),
                ports: members.len() + links,
                members: members.len(),
            };
            self.sink.report(net.members_at, kind);
            ok = false;
        }

        let member_set: HashSet<&str> = members.iter().map(|(n, _, _)| n.as_str()).collect();
        for p in &net.publish {
            let member = p.v.member.as_str();
            // A member whose entry in `members` was refused is reported there.
            if !member_set.contains(member) && !self.refused.contains(member) {
                let kind = DiagnosticKind::PublishNotMember {
                    member: p.v.member.to_string(),
                    network: net.name.to_string(),
                };
                self.sink.report(p.at, kind);
            }
            match published.get(&(p.v.host_port, p.v.proto)) {
                Some(&first_line) => {
                    let kind = DiagnosticKind::PublishPortReused {
                        port: p.v.host_port,
                        proto: p.v.proto,
                        first_line,
                    };
                    self.sink.report(p.at, kind);
                }
                None => {
                    published.insert((p.v.host_port, p.v.proto), self.sink.line(p.at));
                }
            }
        }
        if !ok {
            self.failed_members(&net.interface, &members);
            return;
        }

        let network_name = net.name.to_string();
        let mut gateways = Vec::with_capacity(families.len());
        for (p, _, gateway, gateway_at) in &families {
            self.claim(
                *gateway_at,
                *gateway,
                NodeId::Host,
                &net.name,
                Source::Gateway(network_name.clone()),
            );
            gateways.push(
                IpNet::new(*gateway, p.v.prefix_len())
                    .expect("the subnet's own prefix length fits its family"),
            );
        }
        self.bridges.push(Bridge {
            name: net.name.clone(),
            node: NodeRef::Host,
            addresses: gateways,
            mtu: net.mtu,
            stp: false,
        });
        let mut pools: Vec<_> = families
            .iter()
            .map(|(_, pool, gateway, _)| pool.addresses(*gateway))
            .collect();
        let mut assigned = vec![Vec::with_capacity(members.len()); families.len()];
        'members: for (member, at, i) in &members {
            let mut addrs = Vec::with_capacity(families.len());
            for ((p, ..), pool) in families.iter().zip(&mut pools) {
                let Some(addr) = pool.next() else {
                    break 'members;
                };
                addrs.push(
                    IpNet::new(addr, p.v.prefix_len())
                        .expect("the subnet's own prefix length fits its family"),
                );
            }
            for (list, addr) in assigned.iter_mut().zip(&addrs) {
                list.push(addr.addr());
            }
            let id = NodeId::Ns(*i);
            let mline = self.sink.line(*at);
            let what = Use::Member {
                network: net.name.to_string(),
                line: mline,
            };
            if !self.attach(id, &net.interface, what, *at, net.mtu, &addrs) {
                continue;
            }
            for addr in &addrs {
                self.claim(
                    *at,
                    addr.addr(),
                    id,
                    &net.interface,
                    Source::Member(network_name.clone()),
                );
            }
            let node_ref = NodeRef::Ns(member.clone());
            let port = host_port_name(&self.lab, &node_ref, &net.interface);
            let seed = port_seed(&self.lab, &node_ref, &net.interface);
            if !self.attach(
                NodeId::Host,
                &port,
                Use::Port { seed, line: mline },
                *at,
                net.mtu,
                &[],
            ) {
                continue;
            }
            self.links.push(Link {
                a: Endpoint {
                    node: node_ref,
                    ifname: net.interface.clone(),
                    bridge: None,
                },
                b: Endpoint {
                    node: NodeRef::Host,
                    ifname: port,
                    bridge: Some(net.name.clone()),
                },
                mtu: net.mtu,
            });
            // A default route of each family, via that family's gateway, unless the member has
            // one of that family already.
            let node = &mut self.nodes[*i];
            for (_, _, gateway, _) in &families {
                let has_default = if gateway.is_ipv6() {
                    &mut node.default_v6
                } else {
                    &mut node.default_v4
                };
                if !*has_default {
                    *has_default = true;
                    node.network_routes.push(Route {
                        to: None,
                        via: Some(*gateway),
                        dev: None,
                    });
                }
            }
        }
        self.networks.push(Network {
            name: net.name,
            subnets: families
                .iter()
                .zip(assigned)
                .map(|((p, _, gateway, _), addresses)| Subnet {
                    net: p.v,
                    gateway: *gateway,
                    addresses,
                })
                .collect(),
            members: members.into_iter().map(|(n, _, _)| n).collect(),
            interface: net.interface,
            mtu: net.mtu,
            nat: net.nat,
            publish: net.publish.into_iter().map(|p| p.v).collect(),
            isolated: net.isolated,
        });
    }
}
