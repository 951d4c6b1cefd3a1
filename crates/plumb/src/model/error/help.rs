//! [`DiagnosticKind::help`]: for every problem, one sentence saying what to change in the file.

use std::net::IpAddr;

use ipnet::IpNet;

use super::kind::quoted_list;
use super::{DiagnosticKind, Format, RangeProblem};
use crate::model::names::NameError;

impl DiagnosticKind {
    /// One sentence saying what to change in the file.
    pub fn help(&self) -> String {
        use DiagnosticKind as K;
        match self {
            K::Syntax { format: Format::Toml, .. } => {
                "fix the TOML here: strings need quotes, tables are `[name]`, lists are `[a, b]`".into()
            }
            K::Syntax { format: Format::Json, .. } => {
                "fix the JSON here: keys and strings need double quotes, and no comma may trail".into()
            }
            K::DuplicateKey { key } => format!("keep one `{key}` and remove the other"),
            K::UnknownKey { suggestion: Some(s), allowed, .. } => {
                format!("did you mean `{s}`? The keys allowed here are {}", quoted_list(allowed))
            }
            K::UnknownKey { allowed, .. } => {
                format!("remove it; the keys allowed here are {}", quoted_list(allowed))
            }
            K::MissingKey { example, .. } => format!("add it, for example `{example}`"),
            K::WrongType { expected, example, .. } => {
                format!("write {expected} here, for example `{example}`")
            }
            K::NotOneOf { key, allowed, .. } => {
                format!("set `{key}` to one of {}", quoted_list(allowed))
            }
            K::BadName(e) => name_help(e),
            K::BadRange { problem: RangeProblem::TooLarge, .. } => {
                "split it into several ranges of at most 65536 nodes each".into()
            }
            K::BadRange { .. } => {
                "write the range as `PREFIX[FIRST..LAST]` with decimal numbers and FIRST <= LAST, \
                 for example `c[1..100]`"
                    .into()
            }
            K::NotCidr { text, missing_prefix: true } => {
                format!("add the prefix length, for example `{text}/24`")
            }
            K::NotCidr { .. } => "write an address with its prefix length, for example `10.0.0.1/24`".into(),
            K::HostBitsSet { what, network, .. } => format!("write the {what} as `{network}`"),
            K::NotIp { .. } => "write a plain IP address, for example `10.0.0.1` or `fd00::1`".into(),
            K::MtuOutOfRange { .. } => "use an MTU between 68 and 65535, for example 1500".into(),
            K::BadMac { .. } => "write six hex bytes separated by `:`, for example `02:00:00:00:00:01`".into(),
            K::MulticastMac { .. } => {
                "clear the lowest bit of the first byte; locally administered unicast addresses start \
                 with `02`, for example `02:00:00:00:00:01`"
                    .into()
            }
            K::BadSysctl { .. } => {
                "use a dotted `net.` key with letters, digits, `_` and `-` between the dots, \
                 for example `net.ipv4.ip_forward`"
                    .into()
            }
            K::UnknownSysctl { key, .. } => format!(
                "check the spelling against `/proc/sys/{}` (`sysctl -a` lists what this kernel \
                 has); keys of a kernel module (`net.netfilter.*`, say) exist once it is loaded",
                key.replace('.', "/")
            ),
            K::EndpointCount { .. } => {
                "list two endpoints, for example `endpoints = [\"host:veth1\", \"ns1:eth0\"]`".into()
            }
            K::EndpointWithoutColon { text, names_node: true } => {
                format!("name the interface too, for example `{text}:eth0`")
            }
            K::EndpointWithoutColon { .. } => {
                "write `NODE:IFNAME` (for example `ns1:eth0`) or the name of a declared bridge".into()
            }
            K::UnknownEndpoint { name, .. } => {
                format!("declare `[nodes.{name}]` or `[bridges.{name}]`, or fix the name")
            }
            K::SelfLink { .. } => "connect the link to another node or another interface".into(),
            K::UnknownNode { name, .. } => format!("declare `[nodes.{name}]` or fix the name"),
            K::DuplicateNode { .. } => {
                "remove one of the declarations, or change the ranges so they do not overlap".into()
            }
            K::DuplicateBridge { .. } => "rename one of them: bridges and networks share names".into(),
            K::DuplicateMember { .. } => "list each member once".into(),
            K::InterfaceReused { .. } => {
                "give this end its own interface name; an interface can be one end of one link only, \
                 and a bridge's settings belong under `[bridges.NAME]`"
                    .into()
            }
            K::PortNameCollision { .. } => {
                "name one of the two ports explicitly with `BRIDGE:IFNAME`".into()
            }
            K::UnconnectedInterface { node, name } => {
                format!("add a link with the endpoint `{node}:{name}`, or remove the interface")
            }
            K::HostMember { .. } => {
                "remove `host` from `members`; the host reaches the network through its bridge".into()
            }
            K::DuplicateAddress { .. } => {
                "give each node its own address; an address written under a range \
                 `[nodes.\"c[1..N]\"]` is given to every node of the range, so let a \
                 `[networks.*]` assign addresses there instead"
                    .into()
            }
            K::AddressTwice { .. } => "keep one of the two; an interface has each address once".into(),
            K::TooManyMembers { .. } => {
                "split the members into several networks of at most 1023 members each, each with \
                 its own subnet, for example `members = [\"c[1..1000]\"]` and \
                 `members = [\"c[1001..2000]\"]`"
                    .into()
            }
            K::BadPrefix { .. } => {
                "use a short prefix of letters, digits, `-`, `_` or `.`, for example \
                 `prefix = \"lab1-\"`"
                    .into()
            }
            K::PrefixedNameTooLong { max, prefix, .. } => format!(
                "shorten the name or the prefix: `{prefix}` and the name together must fit in \
                 {max} bytes"
            ),
            K::TooManyPorts { .. } => {
                "connect the other nodes to another bridge or network: a bridge takes at most \
                 1023 ports"
                    .into()
            }
            K::HostFirewall => {
                "remove the firewall of `host` and put firewalls on the lab's nodes instead, for \
                 example `[nodes.web.firewall]`"
                    .into()
            }
            K::NoSubnet { .. } => {
                "write one prefix, or one IPv4 and one IPv6 prefix for a dual-stack network: \
                 `subnet = \"10.88.0.0/24\"` or `subnet = [\"10.88.0.0/24\", \"fd00:88::/64\"]`"
                    .into()
            }
            K::SubnetFamilyTwice { .. } => {
                "keep one IPv4 and at most one IPv6 prefix, for example \
                 `subnet = [\"10.88.0.0/24\", \"fd00:88::/64\"]`, and give the other prefix a \
                 network of its own"
                    .into()
            }
            K::GatewayFamilyTwice { .. } => {
                "keep one gateway per IP family, for example \
                 `gateway = [\"10.88.0.1\", \"fd00:88::1\"]`"
                    .into()
            }
            K::GatewayWithoutSubnet { gateway, .. } => format!(
                "remove {gateway} from `gateway`, or add an {} prefix to the network's `subnet`",
                if gateway.is_ipv6() { "IPv6" } else { "IPv4" }
            ),
            K::GatewayOutsideSubnet { subnet, .. } | K::GatewayNotHost { subnet, .. } => {
                match first_host(subnet) {
                    Some(first) => format!(
                        "use an address inside {subnet} other than its network and broadcast \
                         addresses, for example {first}, or leave `gateway` out"
                    ),
                    None => format!("use a host address inside {subnet}, or leave `gateway` out"),
                }
            }
            K::OverlappingSubnets { .. } => {
                "give the networks disjoint subnets, for example 10.88.0.0/24 and 10.89.0.0/24".into()
            }
            K::SubnetTooSmall { members, fits: Some(fits), .. } => format!(
                "{} addresses are needed ({members} member{} and the gateway); use a subnet of \
                 prefix /{} or shorter, such as {fits}",
                members + 1,
                if *members == 1 { "" } else { "s" },
                fits.prefix_len()
            ),
            K::SubnetTooSmall { members, .. } => {
                format!("{} addresses are needed; use fewer members", members + 1)
            }
            K::PublishPortReused { .. } => "publish this service on another host port".into(),
            K::BadPublish { .. } => {
                "write `HOSTPORT:MEMBER:PORT` with an optional `/tcp` or `/udp`, for example \
                 `8080:web:80/tcp`"
                    .into()
            }
            K::PublishNotMember { network, .. } => {
                format!("add the node to the members of `{network}`, or publish a member")
            }
            K::BadService { firewall: true, .. } => {
                "write `icmp`, `tcp/PORT` or `udp/PORT`, optionally followed by `from CIDR`, \
                 for example `udp/53 from 10.88.0.0/16`"
                    .into()
            }
            K::BadService { .. } => "write `icmp`, `tcp/PORT` or `udp/PORT`, for example `tcp/80`".into(),
            K::BadRouteDestination { .. } => {
                "write `default` or a prefix, for example `to = \"10.1.0.0/16\"`".into()
            }
            K::RouteWithoutNextHop => {
                "add `via = ADDRESS` (a gateway on one of the node's subnets) or `dev = IFNAME`".into()
            }
            K::RouteFamilyMismatch { .. } => "use a gateway of the same IP family as the destination".into(),
            K::RouteViaUnreachable { .. } => {
                "use a gateway inside one of the node's subnets, or give the node an address in the \
                 gateway's subnet"
                    .into()
            }
            K::RouteDevUnknown { .. } => {
                "name one of the node's interfaces: a link end, a network interface, a bridge in \
                 the node, or `lo`"
                    .into()
            }
        }
    }
}

fn first_host(subnet: &IpNet) -> Option<IpAddr> {
    subnet.hosts().next()
}

fn name_help(e: &NameError) -> String {
    match e {
        NameError::Empty { what } => format!("give the {what} a name"),
        NameError::TooLong { what: "interface", max, .. } => {
            format!("shorten it to at most {max} bytes (IFNAMSIZ); `veth-a-b` style names fit")
        }
        NameError::TooLong { what: "lab", max, .. } => {
            format!("shorten the lab name to at most {max} characters")
        }
        NameError::TooLong { what, max, .. } => format!("shorten the {what} name to at most {max} bytes"),
        NameError::Invalid { what: "interface", .. } => {
            "use letters, digits, `-`, `_` and `.` only, for example `eth0`".into()
        }
        NameError::Invalid { what: "namespace", .. } => {
            "use a plain name without `/` or `..`, for example `ns1`".into()
        }
        NameError::Invalid { what: "lab", .. } => {
            "use lowercase letters, digits and `-`, starting with a letter or digit, for example `seed`"
                .into()
        }
        NameError::Invalid { what, .. } => format!("choose another {what} name"),
    }
}
