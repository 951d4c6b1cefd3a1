//! What can be wrong with a topology file, and where.
//!
//! Every problem is a [`Diagnostic`]: the file, the 1-based line and column, a typed
//! [`DiagnosticKind`] whose `Display` says what is wrong, and a help sentence saying what to change.
//! Loading gathers every problem it can find into one [`ModelError::Invalid`] instead of stopping
//! at the first.

use std::collections::HashSet;
use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;

use ipnet::IpNet;

use super::names::NameError;
use super::types::Proto;

/// Why a topology could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ModelError {
    /// The file could not be read.
    #[error("cannot read topology file `{}`: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// The file was read but has one or more problems; nothing may be created from it.
    #[error("{}", DiagnosticList(diagnostics))]
    Invalid {
        /// Every problem found, in file order; never empty.
        diagnostics: Vec<Diagnostic>,
    },
}

impl ModelError {
    /// The problems found in the file, in file order (empty for [`ModelError::Read`]).
    pub fn diagnostics(&self) -> &[Diagnostic] {
        match self {
            ModelError::Read { .. } => &[],
            ModelError::Invalid { diagnostics } => diagnostics,
        }
    }
}

struct DiagnosticList<'a>(&'a [Diagnostic]);

impl fmt::Display for DiagnosticList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

/// One problem in a topology file, with its position.
///
/// Displays as `FILE:LINE:COL: what is wrong` followed by a line `  help: what to change`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{origin}:{line}:{column}: {kind}\n  help: {}", kind.help())]
pub struct Diagnostic {
    origin: String,
    line: usize,
    column: usize,
    kind: DiagnosticKind,
}

impl Diagnostic {
    pub(crate) fn new(origin: &str, line: usize, column: usize, kind: DiagnosticKind) -> Self {
        Diagnostic {
            origin: origin.to_owned(),
            line,
            column,
            kind,
        }
    }

    /// The file name the problem is in, as given to the loader.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The 1-based line.
    pub fn line(&self) -> usize {
        self.line
    }

    /// The 1-based column, in characters.
    pub fn column(&self) -> usize {
        self.column
    }

    /// What is wrong.
    pub fn kind(&self) -> &DiagnosticKind {
        &self.kind
    }

    /// A sentence saying what to change.
    pub fn help(&self) -> String {
        self.kind.help()
    }
}

/// The two accepted file formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// TOML, the usual format.
    Toml,
    /// JSON, for generated labs.
    Json,
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::Toml => "TOML",
            Format::Json => "JSON",
        })
    }
}

/// Why a node range such as `c[1..100]` was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeProblem {
    /// No `]` closes the `[`, or no `..` separates the bounds.
    Shape,
    /// A bound is not a decimal number.
    NotNumber,
    /// The first bound is greater than the last.
    Reversed,
    /// The range declares more names than plumb allows in one range.
    TooLarge,
}

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

fn quoted_list(items: &[&str]) -> String {
    items
        .iter()
        .map(|s| format!("`{s}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn range_reason(p: RangeProblem) -> &'static str {
    match p {
        RangeProblem::Shape => "is not of the form `PREFIX[FIRST..LAST]`",
        RangeProblem::NotNumber => "has a bound that is not a number",
        RangeProblem::Reversed => "counts down: its first number is greater than its last",
        RangeProblem::TooLarge => "declares more than 65536 nodes",
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

/// Turns byte offsets into 1-based lines and columns.
pub(crate) struct LineIndex<'s> {
    src: &'s str,
    starts: Vec<usize>,
}

impl<'s> LineIndex<'s> {
    pub(crate) fn new(src: &'s str) -> Self {
        let mut starts = vec![0];
        starts.extend(
            src.bytes()
                .enumerate()
                .filter(|&(_, b)| b == b'\n')
                .map(|(i, _)| i + 1),
        );
        LineIndex { src, starts }
    }

    /// The byte offset where 1-based `line` starts (the end of the text past the last line).
    pub(crate) fn line_start(&self, line: usize) -> usize {
        self.starts
            .get(line.saturating_sub(1))
            .copied()
            .unwrap_or(self.src.len())
    }

    /// The 1-based line of a byte offset.
    pub(crate) fn line(&self, offset: usize) -> usize {
        self.starts.partition_point(|&s| s <= offset).max(1)
    }

    /// The 1-based line and column (in characters) of a byte offset.
    pub(crate) fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.src.len());
        let line = self.line(offset);
        let start = self.starts[line - 1];
        let col = match self.src.get(start..offset) {
            Some(s) => s.chars().count(),
            None => offset - start,
        };
        (line, col + 1)
    }
}

/// Problems found so far, by byte offset; turned into [`Diagnostic`]s at the end.
pub(crate) struct Sink<'s> {
    pub(crate) index: LineIndex<'s>,
    found: Vec<(usize, DiagnosticKind)>,
}

impl<'s> Sink<'s> {
    pub(crate) fn new(src: &'s str) -> Self {
        Sink {
            index: LineIndex::new(src),
            found: Vec::new(),
        }
    }

    /// Records a problem at byte offset `at`.
    pub(crate) fn report(&mut self, at: usize, kind: DiagnosticKind) {
        self.found.push((at, kind));
    }

    /// The line of byte offset `at`.
    pub(crate) fn line(&self, at: usize) -> usize {
        self.index.line(at)
    }

    pub(crate) fn is_clean(&self) -> bool {
        self.found.is_empty()
    }

    /// The problems, in file order.
    pub(crate) fn into_error(self, origin: &str) -> ModelError {
        let mut found = self.found;
        // Stable: problems at the same place keep the order they were found in.
        found.sort_by_key(|(at, _)| *at);
        // A range declares many nodes from one line; a problem in it is reported once per place.
        let mut seen = HashSet::new();
        found.retain(|(at, kind)| seen.insert((*at, std::mem::discriminant(kind))));
        let diagnostics = found
            .into_iter()
            .map(|(at, kind)| {
                let (line, col) = self.index.line_col(at);
                Diagnostic::new(origin, line, col, kind)
            })
            .collect();
        ModelError::Invalid { diagnostics }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_index_offsets_map_to_one_based_positions() {
        let idx = LineIndex::new("ab\ncd\n\nxé z");
        assert_eq!(idx.line_col(0), (1, 1));
        assert_eq!(idx.line_col(1), (1, 2));
        assert_eq!(idx.line_col(3), (2, 1));
        assert_eq!(idx.line_col(6), (3, 1));
        // `é` is two bytes but one column.
        assert_eq!(idx.line_col(11), (4, 4));
    }

    #[test]
    fn diagnostic_display_has_position_and_help_line() {
        let d = Diagnostic::new("lab.toml", 3, 7, DiagnosticKind::RouteWithoutNextHop);
        let text = d.to_string();
        assert!(
            text.starts_with("lab.toml:3:7: route has neither `via` nor `dev`\n  help: "),
            "{text}"
        );
    }
}
