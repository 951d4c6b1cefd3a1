//! Schema stage: the located tree -> the lab as written, with every key known, every value of the
//! right type and every single value (name, address, MTU, MAC, protocol…) parsed.
//!
//! Problems are reported and the offending piece is left out, so one pass finds as many problems
//! as it can. Cross-references (does this node exist? does this address fit that subnet?) are
//! the next stage's work, in `expand`.
//!
//! One file per section of the topology file (`nodes`, `bridges`, `links`, `networks`, `expect`),
//! the typed accessors they share in `reader`, and the parsers of single values in `value`.

mod bridges;
mod expect;
mod links;
mod networks;
mod nodes;
mod reader;
mod refused;
mod value;

use std::net::IpAddr;

use ipnet::IpNet;

use super::error::{DiagnosticKind, Sink};
use super::names::{IfName, LabName, NsName};
use super::tree::Item;
use super::types::{Firewall, Interface, Publish, Route, Service};

pub(crate) use refused::Refused;

/// A value and the byte offset it was written at.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct At<T> {
    pub(crate) v: T,
    pub(crate) at: usize,
}

/// The lab as written.
#[derive(Debug, Default)]
pub(crate) struct RawLab {
    pub(crate) name: Option<At<LabName>>,
    /// `prefix = "lab1-"`: put before every namespace name and host-side interface name.
    pub(crate) prefix: Option<At<String>>,
    pub(crate) nodes: Vec<RawNode>,
    pub(crate) bridges: Vec<RawBridge>,
    pub(crate) links: Vec<RawLink>,
    pub(crate) networks: Vec<RawNetwork>,
    pub(crate) expects: Vec<RawExpect>,
    /// Node and bridge names whose declaration was refused: references to them are not reported
    /// again as unknown.
    pub(crate) refused: Refused,
    /// The endpoints of links refused as a whole (not two endpoints): what they name is not
    /// reported again as unconnected.
    pub(crate) broken_ends: Vec<String>,
}

/// Which namespaces a `[nodes.KEY]` declares.
#[derive(Debug)]
pub(crate) enum NodeKey {
    /// `[nodes.host]`.
    Host,
    /// One name, or a range's names (empty when the key was refused).
    Names(Vec<NsName>),
}

/// `[nodes.KEY]`.
#[derive(Debug)]
pub(crate) struct RawNode {
    pub(crate) at: usize,
    pub(crate) key: NodeKey,
    pub(crate) interfaces: Vec<RawInterface>,
    pub(crate) routes: Vec<RawRoute>,
    pub(crate) sysctls: Vec<(String, String)>,
    /// Where each of `sysctls` is written (its key), in the same order.
    pub(crate) sysctl_at: Vec<usize>,
    pub(crate) firewall: Option<Firewall>,
    /// Problems were reported in this declaration: what depends on it is only a consequence.
    pub(crate) troubled: bool,
}

/// `[nodes.KEY.interfaces.IFNAME]`, with where each address was written.
#[derive(Debug, Clone)]
pub(crate) struct RawInterface {
    pub(crate) v: Interface,
    /// Where the interface's key is.
    pub(crate) at: usize,
    /// Where each of `v.addresses` is, in the same order.
    pub(crate) addr_at: Vec<usize>,
}

/// One entry of `routes`, with where its parts were written.
#[derive(Debug, Clone)]
pub(crate) struct RawRoute {
    pub(crate) route: Route,
    /// Its `via` (or the route, without one).
    pub(crate) via_at: usize,
    /// Its `dev` (or the route, without one).
    pub(crate) dev_at: usize,
}

/// `[bridges.NAME]`.
#[derive(Debug)]
pub(crate) struct RawBridge {
    pub(crate) at: usize,
    pub(crate) name: IfName,
    pub(crate) node: Option<At<String>>,
    pub(crate) addresses: Vec<At<IpNet>>,
    pub(crate) mtu: Option<u32>,
    pub(crate) stp: bool,
}

/// `[[links]]`.
#[derive(Debug)]
pub(crate) struct RawLink {
    pub(crate) ends: [At<String>; 2],
    pub(crate) mtu: Option<u32>,
}

/// `[networks.NAME]`.
#[derive(Debug)]
pub(crate) struct RawNetwork {
    pub(crate) at: usize,
    pub(crate) name: IfName,
    /// The prefixes as written, at most one per IP family. `None` when missing or refused (an
    /// empty list, an entry that is not a prefix, two prefixes of one family): the network is
    /// then only a name.
    pub(crate) subnets: Option<Vec<At<IpNet>>>,
    /// The gateways as written, at most one per IP family (the others default).
    pub(crate) gateways: Vec<At<IpAddr>>,
    /// Members as written, each with the names it expands to.
    pub(crate) members: Vec<At<Vec<NsName>>>,
    /// Where the `members` key is (the network's key when there is none).
    pub(crate) members_at: usize,
    pub(crate) interface: IfName,
    pub(crate) mtu: Option<u32>,
    pub(crate) nat: bool,
    pub(crate) publish: Vec<At<Publish>>,
    pub(crate) isolated: bool,
}

/// `[[expect]]`.
#[derive(Debug)]
pub(crate) struct RawExpect {
    pub(crate) from: At<String>,
    pub(crate) to: At<String>,
    pub(crate) service: Service,
    pub(crate) reach: bool,
}

const TOP_KEYS: &[&str] = &[
    "name", "prefix", "nodes", "bridges", "links", "networks", "expect",
];

/// Reads the whole document.
pub(crate) fn read(doc: &Item, sink: &mut Sink<'_>) -> RawLab {
    let mut r = Reader {
        sink,
        lab: RawLab::default(),
    };
    r.top(doc);
    r.lab
}

/// Reads one document into a [`RawLab`], reporting into the sink.
struct Reader<'a, 's> {
    sink: &'a mut Sink<'s>,
    lab: RawLab,
}

impl Reader<'_, '_> {
    fn top(&mut self, doc: &Item) {
        let Some(entries) = self.table(doc, "(the document)", "name = \"seed\"") else {
            return;
        };
        let mut has_name = false;
        for e in self.known(entries, "the top level", TOP_KEYS) {
            match e.key.as_str() {
                "name" => {
                    has_name = true;
                    if let Some(s) = self.string(&e.item, "name", "name = \"seed\"") {
                        match LabName::new(s.v) {
                            Ok(v) => self.lab.name = Some(At { v, at: s.at }),
                            Err(err) => self.report(s.at, DiagnosticKind::BadName(err)),
                        }
                    }
                }
                "prefix" => {
                    if let Some(s) = self.string(&e.item, "prefix", "prefix = \"lab1-\"") {
                        match prefix_problem(s.v) {
                            None => {
                                self.lab.prefix = Some(At {
                                    v: s.v.to_owned(),
                                    at: s.at,
                                })
                            }
                            Some(reason) => self.report(
                                s.at,
                                DiagnosticKind::BadPrefix {
                                    prefix: s.v.to_owned(),
                                    reason,
                                },
                            ),
                        }
                    }
                }
                "nodes" => self.nodes(&e.item),
                "bridges" => self.bridges(&e.item),
                "links" => {
                    for item in self.list(&e.item, "links", "[[links]]") {
                        self.link(item);
                    }
                }
                "networks" => self.networks(&e.item),
                "expect" => {
                    for item in self.list(&e.item, "expect", "[[expect]]") {
                        self.expect(item);
                    }
                }
                _ => {}
            }
        }
        if !has_name {
            let kind = DiagnosticKind::MissingKey {
                key: "name",
                context: "the file".into(),
                example: "name = \"seed\"",
            };
            self.report(0, kind);
        }
    }
}

/// The longest `prefix`: a one-byte name still fits an interface name after it.
pub(crate) const PREFIX_MAX: usize = super::names::IFNAME_MAX - 1;

/// Why `prefix` cannot start namespace and interface names, if it cannot.
fn prefix_problem(prefix: &str) -> Option<&'static str> {
    if prefix.is_empty() {
        Some("is empty (leave `prefix` out to keep the names as written)")
    } else if prefix.len() > PREFIX_MAX {
        Some("is longer than 14 bytes, and interface names are at most 15")
    } else if prefix
        .chars()
        .any(|c| c == '/' || c == ':' || c == '\0' || c.is_whitespace())
    {
        Some("contains `/`, `:`, NUL or whitespace, which names may not contain")
    } else if prefix.contains("..") || prefix == "." {
        Some("contains `..`, which would leave /run/netns")
    } else {
        None
    }
}
