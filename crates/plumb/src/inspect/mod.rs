//! Read-only views of kernel network state: the [`Snapshot`] that `plan` diffs against, and the
//! whole-lab view ([`lab::LabView`]) that `show` prints (and later `inspect` and `doctor`).
//!
//! [`machine`] reads every network namespace on the machine, whatever holds it ([`discover`]),
//! with each veth's other end resolved across namespaces: what `plumb inspect` shows ([`view`],
//! drawn by [`render`]).
//!
//! A snapshot never changes the kernel. Reading a foreign namespace enters it on a short-lived
//! thread and opens a socket there; nothing plumb does not own is ever modified. The netlink
//! layer decodes each object into its own types ([`LinkState`], [`AddrState`], [`RouteState`]);
//! this module aggregates them per namespace and attributes them to labs through
//! [`crate::ownership`].

pub mod discover;
pub mod lab;
mod machine;
mod procfs;
pub mod render;
mod snapshot;
pub mod view;
mod world;

use std::collections::BTreeMap;

use ipnet::IpNet;

pub use crate::netlink::addr::AddrState;
pub use crate::netlink::link::{LinkKind, LinkState};
pub use crate::netlink::route::RouteState;
pub use machine::KernelMachine;
pub use snapshot::{add_unnamed, snapshot, Depth, InspectError};
pub use view::MachineView;
pub use world::{machine, MachineError};

use crate::model::names::NsName;
use crate::ownership::{self, Tag};

impl LinkState {
    /// The lab that owns this link, if plumb created it.
    pub fn owner(&self) -> Option<&str> {
        ownership::owner(self.alias.as_deref())
    }

    /// The parsed tag, if plumb created it.
    pub fn tag(&self) -> Option<Tag<'_>> {
        self.alias.as_deref().and_then(Tag::parse)
    }
}

/// Everything plumb reads from one network namespace.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct NsState {
    /// Interfaces, by index order.
    pub links: Vec<LinkState>,
    /// Addresses.
    pub addrs: Vec<AddrState>,
    /// Main-table unicast routes.
    pub routes: Vec<RouteState>,
    /// Values of the sysctls that were asked for, by key (a key that does not exist in the
    /// namespace is absent).
    pub sysctls: BTreeMap<String, String>,
    /// The version marker of the lab's nftables table here, if it has one (`Some("")` for a
    /// table without a marker).
    pub nft_version: Option<String>,
    /// The lab's nftables table here, when it was asked for (`show`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nft: Option<crate::nftables::Listing>,
}

impl NsState {
    /// The interface called `name`.
    pub fn link(&self, name: &str) -> Option<&LinkState> {
        self.links.iter().find(|l| l.name == name)
    }

    /// The interface with index `index`.
    pub fn link_by_index(&self, index: u32) -> Option<&LinkState> {
        self.links.iter().find(|l| l.index == index)
    }

    /// Addresses on interface `index`.
    pub fn addrs_of(&self, index: u32) -> impl Iterator<Item = &IpNet> {
        self.addrs
            .iter()
            .filter(move |a| a.index == index)
            .map(|a| &a.addr)
    }

    /// `lo`.
    pub fn loopback(&self) -> Option<&LinkState> {
        self.links.iter().find(|l| l.kind == LinkKind::Loopback)
    }

    /// The lab named by `lo`'s alias: the owner of the namespace itself.
    pub fn owner(&self) -> Option<&str> {
        self.loopback().and_then(|l| l.owner())
    }
}

/// A named namespace found in `/run/netns`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct NamedNs {
    /// Its name.
    pub name: NsName,
    /// Its contents, or why this entry is not a usable namespace (a stale file left by a crash,
    /// say).
    pub state: Result<NsState, String>,
}

impl NamedNs {
    /// The lab that owns the namespace, if plumb created it.
    pub fn owner(&self) -> Option<&str> {
        self.state.as_ref().ok().and_then(|s| s.owner())
    }
}

/// The host namespace and every named namespace, read at one moment.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Snapshot {
    /// The namespace plumb runs in.
    pub host: NsState,
    /// Named namespaces by name.
    pub namespaces: BTreeMap<NsName, NamedNs>,
}

impl Snapshot {
    /// Labs that own at least one object, with the number of objects each owns.
    pub fn labs(&self) -> BTreeMap<String, LabCounts> {
        let mut out: BTreeMap<String, LabCounts> = BTreeMap::new();
        for l in &self.host.links {
            if let Some(o) = l.owner() {
                out.entry(o.to_string()).or_default().host_links += 1;
            }
        }
        for ns in self.namespaces.values() {
            if let Some(o) = ns.owner() {
                let c = out.entry(o.to_string()).or_default();
                c.namespaces += 1;
                if let Ok(st) = &ns.state {
                    c.ns_links += st
                        .links
                        .iter()
                        .filter(|l| l.kind != LinkKind::Loopback && l.owner() == Some(o))
                        .count();
                }
            }
        }
        out
    }
}

/// How many objects a lab owns.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct LabCounts {
    /// Named namespaces.
    pub namespaces: usize,
    /// Interfaces (veth ends, bridges) in the host.
    pub host_links: usize,
    /// Interfaces inside the lab's namespaces (loopback not counted).
    pub ns_links: usize,
}
