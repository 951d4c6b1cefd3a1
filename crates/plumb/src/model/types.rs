//! The typed, validated, expanded topology that the planner consumes.
//!
//! Invariants (established by [`crate::model::load`], relied on by `plan`):
//! - ranges (`c[1..100]`) and `[networks.*]` are expanded: every namespace, bridge, veth pair,
//!   address and route the lab needs is listed explicitly here;
//! - every name is a validated newtype; every endpoint names a node or bridge that exists;
//! - no interface name is used twice in one node (bridges included), no two networks overlap.

use std::net::IpAddr;

use ipnet::IpNet;

use super::names::{IfName, LabName, NsName};

/// Where an object lives: the namespace plumb runs in, or a named node.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(untagged)]
pub enum NodeRef {
    /// The namespace plumb runs in (the reserved node name `host`).
    #[serde(serialize_with = "ser_host")]
    Host,
    /// A named network namespace, a bind mount at `/run/netns/NAME`.
    Ns(NsName),
}

fn ser_host<S: serde::Serializer>(s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str("host")
}

impl std::fmt::Display for NodeRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NodeRef::Host => f.write_str("host"),
            NodeRef::Ns(n) => f.write_str(n.as_str()),
        }
    }
}

/// A 48-bit Ethernet address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MacAddr(pub [u8; 6]);

impl std::fmt::Display for MacAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

impl serde::Serialize for MacAddr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl std::str::FromStr for MacAddr {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        let mut out = [0u8; 6];
        let mut parts = s.split(':');
        for byte in &mut out {
            let p = parts.next().ok_or(())?;
            if p.len() != 2 {
                return Err(());
            }
            *byte = u8::from_str_radix(p, 16).map_err(|_| ())?;
        }
        if parts.next().is_some() {
            return Err(());
        }
        Ok(MacAddr(out))
    }
}

/// A whole lab, expanded and validated.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Topology {
    /// The lab's name; tags every object plumb creates for it.
    pub name: LabName,
    /// Settings for the namespace plumb runs in (`[nodes.host]`). Interfaces listed here are
    /// the host ends of links and bridges' ports, plus addresses on bridges (see `bridges`).
    pub host: Node,
    /// Named namespaces in declaration order (ranges expanded in numeric order, network members
    /// that were not declared appended in member order).
    pub nodes: Vec<Node>,
    /// Linux bridges, in declaration order (networks' bridges after `[bridges.*]`).
    pub bridges: Vec<Bridge>,
    /// veth pairs, in declaration order (networks' member links after `[[links]]`).
    pub links: Vec<Link>,
    /// Docker-style networks, kept for the features that need the network as a whole
    /// (NAT, publishing, isolation). Their bridges, links, addresses and routes are already
    /// expanded into `bridges`, `links` and the nodes.
    pub networks: Vec<Network>,
    /// Probes for `plumb check`.
    pub expects: Vec<Expect>,
    /// `prefix`: already put before every namespace name and host-side interface name above.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// Where each node is in `nodes`, so that [`Topology::node`] is a hash lookup (a lab of
    /// thousands of nodes asks it once per interface, route and sysctl).
    #[serde(skip)]
    pub(crate) node_index: std::collections::HashMap<NsName, usize>,
}

/// A namespace (or the host) and what is configured inside it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Node {
    /// Which namespace.
    pub name: NodeRef,
    /// Interfaces inside this node that are ends of links, or `lo`. Settings here apply to them.
    pub interfaces: Vec<Interface>,
    /// Static routes, in file order (a network's default route appended).
    pub routes: Vec<Route>,
    /// `net.*` sysctls applied inside the node, in file order. Values as written (`1`, `"0 2147483647"`).
    pub sysctls: Vec<(String, String)>,
    /// The node's inbound firewall, if declared.
    pub firewall: Option<Firewall>,
}

/// An interface's settings.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Interface {
    /// Its name inside the node.
    pub name: IfName,
    /// Addresses with prefix length, IPv4 and IPv6.
    pub addresses: Vec<IpNet>,
    /// MTU, if set (by the interface, its link or its network).
    pub mtu: Option<u32>,
    /// MAC address, if set.
    pub mac: Option<MacAddr>,
    /// Administrative state; default true.
    pub up: bool,
}

/// A static route.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Route {
    /// Destination: `None` is `default` (0.0.0.0/0 or ::/0 by the family of `via`).
    pub to: Option<IpNet>,
    /// Next hop.
    pub via: Option<IpAddr>,
    /// Output interface.
    pub dev: Option<IfName>,
}

/// A Linux bridge.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Bridge {
    /// Its name.
    pub name: IfName,
    /// The node it lives in (the host unless `node = "X"`).
    pub node: NodeRef,
    /// Addresses on the bridge itself (a network's gateway lands here).
    pub addresses: Vec<IpNet>,
    /// MTU, if set.
    pub mtu: Option<u32>,
    /// Spanning tree; default false.
    pub stp: bool,
}

/// One end of a veth pair.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Endpoint {
    /// The node the end lives in (for a bridge port: the bridge's node).
    pub node: NodeRef,
    /// The end's interface name (for a bridge port without `BRIDGE:IFNAME`: generated).
    pub ifname: IfName,
    /// For a bridge port, the bridge it is enslaved to.
    pub bridge: Option<IfName>,
}

/// A veth pair.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Link {
    /// The two ends, in file order.
    pub a: Endpoint,
    /// The other end.
    pub b: Endpoint,
    /// MTU for both ends, if set.
    pub mtu: Option<u32>,
}

/// A Docker-style network (a star around a bridge), as written after validation.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Network {
    /// Network name, which is also the bridge's name.
    pub name: IfName,
    /// Its subnets, in the order written: one, or one IPv4 and one IPv6 (dual stack), never
    /// two of one IP family. Each has its gateway and every member's address in it.
    pub subnets: Vec<Subnet>,
    /// Members in order, ranges expanded.
    pub members: Vec<NsName>,
    /// The interface name inside each member.
    pub interface: IfName,
    /// MTU, if set.
    pub mtu: Option<u32>,
    /// Masquerade traffic leaving the subnets.
    pub nat: bool,
    /// Published ports (on every subnet: a dual-stack network publishes on both families).
    pub publish: Vec<Publish>,
    /// Members cannot reach each other.
    pub isolated: bool,
}

/// One subnet of a network: its prefix, its gateway and the members' addresses in it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Subnet {
    /// The prefix, without bits set after its length.
    pub net: IpNet,
    /// The gateway address (on the bridge), of the prefix's family.
    pub gateway: IpAddr,
    /// Each member's address in this subnet, in member order (without the prefix length,
    /// which is the subnet's). From the file alone these are the lowest free addresses in
    /// member order; a lab that is up keeps its members' addresses (see `plan::settle`).
    pub addresses: Vec<IpAddr>,
}

impl Network {
    /// The network's subnet of one IP family (`ipv6`), if it has one.
    pub fn subnet(&self, ipv6: bool) -> Option<&Subnet> {
        self.subnets.iter().find(|s| s.net.addr().is_ipv6() == ipv6)
    }

    /// The addresses of `member` in the network, one per subnet, in the order of `subnets`;
    /// empty if it is not a member.
    pub fn addresses_of(&self, member: &NsName) -> Vec<IpAddr> {
        match self.members.iter().position(|m| m == member) {
            Some(i) => self
                .subnets
                .iter()
                .filter_map(|s| s.addresses.get(i).copied())
                .collect(),
            None => Vec::new(),
        }
    }
}

/// Transport protocol of a published port or firewall rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

/// `publish = ["8080:web:80/tcp"]`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Publish {
    /// Host port.
    pub host_port: u16,
    /// Member that receives the traffic.
    pub member: NsName,
    /// Port on the member.
    pub port: u16,
    /// Protocol.
    pub proto: Proto,
}

/// `[nodes.X.firewall]`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Firewall {
    /// `ingress = "deny"` when false.
    pub ingress_allow: bool,
    /// Allowed inbound traffic.
    pub allow: Vec<FirewallRule>,
}

/// What a firewall allow entry or a probe matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "proto", content = "port", rename_all = "lowercase")]
pub enum Service {
    /// ICMP (echo).
    Icmp,
    /// TCP port.
    Tcp(u16),
    /// UDP port.
    Udp(u16),
}

/// `"udp/53 from 10.88.0.0/16"`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FirewallRule {
    /// Protocol and port.
    pub service: Service,
    /// Source prefix, if restricted.
    pub from: Option<IpNet>,
}

/// Where a probe goes.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(untagged)]
pub enum Target {
    /// A node (its first address).
    Node(NodeRef),
    /// An address.
    Addr(IpAddr),
}

/// `[[expect]]`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Expect {
    /// Source node.
    pub from: NodeRef,
    /// Destination.
    pub to: Target,
    /// What to send.
    pub service: Service,
    /// `result = "reach"` when true, `"blocked"` when false.
    pub reach: bool,
}

impl Topology {
    /// The node called `r` (the host included), if the lab has it.
    pub fn node(&self, r: &NodeRef) -> Option<&Node> {
        match r {
            NodeRef::Host => Some(&self.host),
            NodeRef::Ns(n) => self.node_index.get(n).and_then(|&i| self.nodes.get(i)),
        }
    }

    /// The node the file calls `name` (`host`, or a node's name as written, without the lab's
    /// prefix), if the lab has it.
    pub fn node_named(&self, name: &str) -> Option<NodeRef> {
        if name == "host" {
            return Some(NodeRef::Host);
        }
        let full = match &self.prefix {
            Some(p) => format!("{p}{name}"),
            None => name.to_owned(),
        };
        let n = NsName::new(&full).ok()?;
        self.node_index.contains_key(&n).then_some(NodeRef::Ns(n))
    }

    /// The node's name as the file writes it (its namespace's name without the lab's prefix).
    pub fn label<'r>(&self, r: &'r NodeRef) -> std::borrow::Cow<'r, str> {
        match (r, &self.prefix) {
            (NodeRef::Ns(n), Some(p)) => match n.as_str().strip_prefix(p.as_str()) {
                Some(rest) => std::borrow::Cow::Borrowed(rest),
                None => std::borrow::Cow::Borrowed(n.as_str()),
            },
            _ => std::borrow::Cow::Owned(r.to_string()),
        }
    }

    /// The node `r` refers to, to change it (the index stays valid: names do not change).
    pub(crate) fn node_mut(&mut self, r: &NodeRef) -> Option<&mut Node> {
        match r {
            NodeRef::Host => Some(&mut self.host),
            NodeRef::Ns(n) => match self.node_index.get(n) {
                Some(&i) => self.nodes.get_mut(i),
                None => None,
            },
        }
    }

    /// Indexes `nodes` for [`Topology::node`]: called by whoever builds a topology.
    pub(crate) fn index_nodes(mut self) -> Self {
        self.node_index = self
            .nodes
            .iter()
            .enumerate()
            .filter_map(|(i, n)| match &n.name {
                NodeRef::Ns(name) => Some((name.clone(), i)),
                NodeRef::Host => None,
            })
            .collect();
        self
    }
}
