//! [`DiagnosticKind`]: every problem a topology file can have, and the sentence saying what it is.

use std::net::IpAddr;

use ipnet::IpNet;

use super::{Format, RangeProblem};
use crate::model::names::NameError;
use crate::model::types::Proto;

/// What a problem in a topology file is. `Display` says what is wrong; [`DiagnosticKind::help`]
/// says what to change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DiagnosticKind {
    /// The file is not valid TOML or JSON.
    #[error("{format} syntax error: {message}")]
    Syntax {
        /// Which format was being read.
        format: Format,
        /// The parser's description of the error.
        message: String,
    },
    /// The same key is written twice in one table (or JSON object).
    #[error("key `{key}` is written twice")]
    DuplicateKey {
        /// The key.
        key: String,
    },
    /// A key that the topology format does not have.
    #[error("unknown key `{key}` in {context}")]
    UnknownKey {
        /// The key as written.
        key: String,
        /// Where it was found, such as `[nodes.ns1]`.
        context: String,
        /// The keys allowed there.
        allowed: &'static [&'static str],
        /// The allowed key the user probably meant.
        suggestion: Option<&'static str>,
    },
    /// A required key is missing.
    #[error("{context} has no `{key}`")]
    MissingKey {
        /// The missing key.
        key: &'static str,
        /// The table it is missing from.
        context: String,
        /// A line that would fix it.
        example: &'static str,
    },
    /// A value has the wrong type.
    #[error("`{key}` must be {expected}, not {found}")]
    WrongType {
        /// Where the value is, as a dotted key path.
        key: String,
        /// The type wanted, with an article ("a boolean").
        expected: &'static str,
        /// The type found, with an article ("a string").
        found: &'static str,
        /// A correct example.
        example: &'static str,
    },
    /// A string is not one of the allowed words.
    #[error("`{key}` is `{found}`, which is not one of {}", quoted_list(allowed))]
    NotOneOf {
        /// The key.
        key: &'static str,
        /// The value written.
        found: String,
        /// The allowed values.
        allowed: &'static [&'static str],
    },
    /// An interface, namespace or lab name the kernel or plumb refuses.
    #[error("{0}")]
    BadName(NameError),
    /// A `prefix` that cannot start a name.
    #[error("prefix `{prefix}` {reason}")]
    BadPrefix {
        /// The prefix as written.
        prefix: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A name that is too long once the lab's `prefix` is put before it.
    #[error("{what} name `{name}` is {len} bytes with the lab's prefix (`{prefix}{name}`), the kernel allows {max}")]
    PrefixedNameTooLong {
        /// "interface" or "namespace".
        what: &'static str,
        /// The name as written.
        name: String,
        /// The prefix.
        prefix: String,
        /// Its length with the prefix.
        len: usize,
        /// The kernel's limit.
        max: usize,
    },
    /// A malformed node range.
    #[error("node range `{text}` {}", range_reason(*.problem))]
    BadRange {
        /// The range as written.
        text: String,
        /// What is wrong with it.
        problem: RangeProblem,
    },
    /// An address that is not `ADDRESS/PREFIX`.
    #[error("`{text}` is not an address with a prefix length (CIDR){}", if *.missing_prefix { ": the `/PREFIX` is missing" } else { "" })]
    NotCidr {
        /// The text written.
        text: String,
        /// It is a valid IP address, only without `/PREFIX`.
        missing_prefix: bool,
    },
    /// A subnet or route destination whose address has bits set beyond its prefix.
    #[error("{what} `{text}` has bits set after its /{}-bit prefix", .network.prefix_len())]
    HostBitsSet {
        /// "subnet" or "route destination".
        what: &'static str,
        /// The text written.
        text: String,
        /// The network it should be.
        network: IpNet,
    },
    /// A value that should be a plain IP address.
    #[error("{what} `{text}` is not an IP address")]
    NotIp {
        /// What the value is ("gateway", "route via").
        what: &'static str,
        /// The text written.
        text: String,
    },
    /// An MTU outside 68..=65535.
    #[error("MTU {value} is out of range: the kernel accepts 68 to 65535")]
    MtuOutOfRange {
        /// The value written.
        value: i128,
    },
    /// A MAC address that does not parse.
    #[error("`{text}` is not a MAC address")]
    BadMac {
        /// The text written.
        text: String,
    },
    /// A multicast MAC address, which no interface may have.
    #[error(
        "MAC address `{text}` is a multicast address (the lowest bit of its first byte is set)"
    )]
    MulticastMac {
        /// The text written.
        text: String,
    },
    /// A sysctl key plumb does not accept.
    #[error("sysctl `{key}` {reason}")]
    BadSysctl {
        /// The key written.
        key: String,
        /// What is wrong, as the end of a sentence.
        reason: &'static str,
    },
    /// A sysctl that does not exist where it is set.
    #[error("sysctl `{key}` does not exist in {}", if .node == "host" { "the host namespace".to_string() } else { format!("the namespace of node `{}`", .node) })]
    UnknownSysctl {
        /// The key as written.
        key: String,
        /// The node (`host` for the host).
        node: String,
    },
    /// A link without exactly two endpoints.
    #[error("a link needs exactly two endpoints, this one has {found}")]
    EndpointCount {
        /// How many were written.
        found: usize,
    },
    /// An endpoint with no `:` that is not a bridge's name.
    #[error("link endpoint `{text}` has no `:` and is not a declared bridge")]
    EndpointWithoutColon {
        /// The endpoint written.
        text: String,
        /// The text names a node (so `NODE:IFNAME` was probably meant).
        names_node: bool,
    },
    /// An endpoint whose node part names neither a node nor a bridge.
    #[error(
        "link endpoint `{text}` names `{name}`, which is neither a declared node nor a bridge"
    )]
    UnknownEndpoint {
        /// The endpoint written.
        text: String,
        /// The node part.
        name: String,
    },
    /// A link whose two ends are the same interface.
    #[error("this link connects `{node}:{ifname}` to itself")]
    SelfLink {
        /// The node.
        node: String,
        /// The interface.
        ifname: String,
    },
    /// A reference to a node that does not exist.
    #[error("{role} names `{name}`, which is not a declared node")]
    UnknownNode {
        /// What refers to it ("the bridge's `node`", "expect `from`").
        role: &'static str,
        /// The name written.
        name: String,
    },
    /// A node declared twice (directly or through overlapping ranges).
    #[error("node `{name}` is declared twice (first on line {first_line})")]
    DuplicateNode {
        /// The node.
        name: String,
        /// Line of the first declaration.
        first_line: usize,
    },
    /// A bridge name used twice (a bridge and a network share one namespace of names).
    #[error(
        "bridge name `{name}` is used twice: this {what} and the {first_what} on line {first_line}"
    )]
    DuplicateBridge {
        /// The name.
        name: String,
        /// "bridge" or "network".
        what: &'static str,
        /// "bridge" or "network".
        first_what: &'static str,
        /// Line of the first.
        first_line: usize,
    },
    /// A member listed twice in one network.
    #[error("`{member}` is listed twice in the members of network `{network}`")]
    DuplicateMember {
        /// The network.
        network: String,
        /// The member.
        member: String,
    },
    /// An interface name used twice in one node (a bridge counts as an interface).
    #[error("interface `{name}` in node `{node}` is already {first}")]
    InterfaceReused {
        /// The node.
        node: String,
        /// The interface.
        name: String,
        /// What already uses it ("used by the link on line 7", "the bridge declared on line 3").
        first: String,
    },
    /// Two generated bridge-port names collided.
    #[error("generated port name `{name}` for `{second}` collides with the one for `{first}`")]
    PortNameCollision {
        /// The generated name.
        name: String,
        /// `lab/node/ifname` of the first.
        first: String,
        /// `lab/node/ifname` of the second.
        second: String,
    },
    /// A declared interface that no link or network connects.
    #[error("interface `{name}` of node `{node}` is declared but not connected by any link")]
    UnconnectedInterface {
        /// The node.
        node: String,
        /// The interface.
        name: String,
    },
    /// `host` listed as a network member.
    #[error(
        "`host` cannot be a member of network `{network}`: it is where the network's bridge lives"
    )]
    HostMember {
        /// The network.
        network: String,
    },
    /// A `[nodes.host.firewall]`: a firewall in the namespace plumb runs in.
    #[error(
        "a firewall on `host` is refused: a deny-by-default policy in the machine's own namespace \
         would cut its management access (SSH, the admin's own connections), and a safe form of \
         it is not designed yet"
    )]
    HostFirewall,
    /// `subnet = []`: a network with no prefix.
    #[error("`subnet` of network `{network}` lists no prefix")]
    NoSubnet {
        /// The network.
        network: String,
    },
    /// Two subnets of one IP family in one network.
    #[error(
        "network `{network}` has two {} subnets, {first} and {second}: a network carries at most \
         one prefix of each IP family",
        family(.first.addr())
    )]
    SubnetFamilyTwice {
        /// The network.
        network: String,
        /// The first subnet of that family.
        first: IpNet,
        /// The second one.
        second: IpNet,
    },
    /// Two gateways of one IP family in one network.
    #[error(
        "network `{network}` has two {} gateways, {first} and {second}: a network has one \
         gateway per subnet",
        family(*.first)
    )]
    GatewayFamilyTwice {
        /// The network.
        network: String,
        /// The first gateway of that family.
        first: IpAddr,
        /// The second one.
        second: IpAddr,
    },
    /// A gateway of an IP family the network has no subnet of.
    #[error(
        "gateway {gateway} is an {} address, but network `{network}` has no {} subnet{}",
        family(*.gateway),
        family(*.gateway),
        subnet_list(subnets)
    )]
    GatewayWithoutSubnet {
        /// The gateway.
        gateway: IpAddr,
        /// The network.
        network: String,
        /// The network's subnets.
        subnets: Vec<IpNet>,
    },
    /// One address on two nodes (written, or assigned by a network).
    #[error("address {address} of {here} is already the address of {first}")]
    DuplicateAddress {
        /// The address.
        address: IpAddr,
        /// The interface that has it here, and how when it is not written:
        /// "`db:eth0` (assigned by network `lan`)".
        here: String,
        /// The interface that had it first, and how and where it got it: "`r:eth1` (line 3)".
        first: String,
    },
    /// One address twice on one interface.
    #[error(
        "address {address} is given to `{interface}` twice{}: it already has it ({first})",
        parenthesized(how)
    )]
    AddressTwice {
        /// The address.
        address: IpAddr,
        /// `node:ifname`.
        interface: String,
        /// How it has it here, when it is not written: "assigned by network `lan`".
        how: Option<String>,
        /// How and where it got it first: "line 4", "assigned by network `lan`, line 8".
        first: String,
    },
    /// A network with more members than a bridge takes ports.
    #[error(
        "network `{network}` has {members} members, but a Linux bridge takes at most 1023 ports \
         (the kernel refuses the 1024th with EXFULL)"
    )]
    TooManyMembers {
        /// The network.
        network: String,
        /// How many members it has.
        members: usize,
    },
    /// A bridge that would get more ports than the kernel allows.
    #[error(
        "bridge `{bridge}` would have {ports} ports{}, but a Linux bridge takes at most 1023 \
         (the kernel refuses the 1024th with EXFULL)",
        if *.members > 0 { format!(" ({members} network members and {} links)", .ports - .members) } else { String::new() }
    )]
    TooManyPorts {
        /// The bridge (or network).
        bridge: String,
        /// How many ports it would have.
        ports: usize,
        /// How many of them are network members.
        members: usize,
    },
    /// A gateway that is not inside its subnet.
    #[error("gateway {gateway} is outside subnet {subnet}")]
    GatewayOutsideSubnet {
        /// The gateway.
        gateway: IpAddr,
        /// The subnet.
        subnet: IpNet,
    },
    /// A gateway that is the subnet's network or broadcast address.
    #[error("gateway {gateway} is the {which} address of subnet {subnet}")]
    GatewayNotHost {
        /// The gateway.
        gateway: IpAddr,
        /// "network" or "broadcast".
        which: &'static str,
        /// The subnet.
        subnet: IpNet,
    },
    /// Two networks whose subnets overlap.
    #[error("subnet {subnet} of network `{network}` overlaps {other_subnet} of network `{other}` (line {other_line})")]
    OverlappingSubnets {
        /// This network.
        network: String,
        /// Its subnet.
        subnet: IpNet,
        /// The earlier network.
        other: String,
        /// Its subnet.
        other_subnet: IpNet,
        /// Where the earlier network is.
        other_line: usize,
    },
    /// A subnet without enough addresses for the gateway and every member.
    #[error(
        "subnet {subnet} of network `{network}` has room for {free} member{}, but {members} {} listed",
        if *.free == 1 { "" } else { "s" },
        if *.members == 1 { "is" } else { "are" }
    )]
    SubnetTooSmall {
        /// The network.
        network: String,
        /// Its subnet.
        subnet: IpNet,
        /// How many members there are.
        members: usize,
        /// How many member addresses the subnet has (after network, gateway and broadcast).
        free: u128,
        /// The longest prefix that would fit, as a subnet, if any does.
        fits: Option<IpNet>,
    },
    /// A host port published twice.
    #[error("host port {port}/{} is published twice (first on line {first_line})", proto_name(*.proto))]
    PublishPortReused {
        /// The port.
        port: u16,
        /// Its protocol.
        proto: Proto,
        /// Line of the first.
        first_line: usize,
    },
    /// A malformed `publish` entry.
    #[error("publish entry `{text}` {reason}")]
    BadPublish {
        /// The entry written.
        text: String,
        /// What is wrong, as the end of a sentence.
        reason: &'static str,
    },
    /// A publish entry naming a node that is not a member.
    #[error("publish entry names `{member}`, which is not a member of network `{network}`")]
    PublishNotMember {
        /// The node named.
        member: String,
        /// The network.
        network: String,
    },
    /// A malformed protocol (`icmp`, `tcp/PORT`, `udp/PORT`), optionally with `from CIDR`.
    #[error("`{text}` is not a protocol: {reason}")]
    BadService {
        /// The text written.
        text: String,
        /// What is wrong.
        reason: &'static str,
        /// Whether `from CIDR` is allowed here (firewall rules).
        firewall: bool,
    },
    /// A route destination that is neither `default` nor a CIDR prefix.
    #[error("route destination `{text}` is neither `default` nor a prefix such as 10.1.0.0/16")]
    BadRouteDestination {
        /// The text written.
        text: String,
    },
    /// A route with neither `via` nor `dev`.
    #[error("route has neither `via` nor `dev`")]
    RouteWithoutNextHop,
    /// A route whose destination and gateway are of different families.
    #[error("route to {to} goes via {via}, an address of the other IP family")]
    RouteFamilyMismatch {
        /// The destination.
        to: IpNet,
        /// The gateway.
        via: IpAddr,
    },
    /// A route `via` an address that no subnet of the node contains.
    #[error(
        "route via {via} in node `{node}` is not inside any subnet of the node's addresses{}",
        subnet_list(subnets)
    )]
    RouteViaUnreachable {
        /// The node.
        node: String,
        /// The gateway.
        via: IpAddr,
        /// The subnets the node has.
        subnets: Vec<IpNet>,
    },
    /// A route `dev` naming an interface the node does not have.
    #[error("route dev `{dev}` is not an interface of node `{node}`")]
    RouteDevUnknown {
        /// The node.
        node: String,
        /// The interface named.
        dev: String,
    },
}

pub(super) fn quoted_list(items: &[&str]) -> String {
    items
        .iter()
        .map(|s| format!("`{s}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn parenthesized(text: &Option<String>) -> String {
    text.as_ref().map(|t| format!(" ({t})")).unwrap_or_default()
}

fn range_reason(p: RangeProblem) -> &'static str {
    match p {
        RangeProblem::Shape => "is not of the form `PREFIX[FIRST..LAST]`",
        RangeProblem::NotNumber => "has a bound that is not a number",
        RangeProblem::Reversed => "counts down: its first number is greater than its last",
        RangeProblem::TooLarge => "declares more than 65536 nodes",
    }
}

/// `IPv4` or `IPv6`.
fn family(a: IpAddr) -> &'static str {
    if a.is_ipv6() {
        "IPv6"
    } else {
        "IPv4"
    }
}

fn proto_name(p: Proto) -> &'static str {
    match p {
        Proto::Tcp => "tcp",
        Proto::Udp => "udp",
    }
}

fn subnet_list(subnets: &[IpNet]) -> String {
    if subnets.is_empty() {
        " (it has no addresses)".to_owned()
    } else {
        format!(
            " ({})",
            subnets
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        )
    }
}
