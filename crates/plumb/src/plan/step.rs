//! The steps of a plan: one kernel change each, carrying what is needed to undo it.

use std::net::IpAddr;

use ipnet::IpNet;

use crate::model::names::{IfName, NsName};
use crate::model::{MacAddr, NodeRef};
use crate::ownership::journal::Record;

/// One end of a veth pair to create.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct VethEnd {
    /// Namespace of the end.
    pub node: NodeRef,
    /// Its name.
    pub name: IfName,
    /// MTU.
    pub mtu: Option<u32>,
    /// MAC.
    pub mac: Option<MacAddr>,
    /// Bridge to attach to.
    pub master: Option<IfName>,
    /// False when the end carries no IPv6 address: IPv6 address generation is then turned off.
    pub ipv6: bool,
}

/// Settings of an existing interface. Fields left `None` are not touched.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct LinkSet {
    /// Administrative state.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub up: Option<bool>,
    /// MTU.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    /// MAC.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mac: Option<MacAddr>,
    /// Bridge (`Some(None)`: leave the bridge).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub master: Option<Option<IfName>>,
    /// Bridge-port isolation (`isolated = true` networks).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub isolated: Option<bool>,
    /// For a bridge: spanning tree.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stp: Option<bool>,
}

impl LinkSet {
    /// Nothing to change.
    pub fn is_empty(&self) -> bool {
        *self == LinkSet::default()
    }
}

/// A route as the plan handles it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
pub struct RouteSpec {
    /// Destination; `0.0.0.0/0` or `::/0` for default.
    pub dst: IpNet,
    /// Gateway.
    pub via: Option<IpAddr>,
    /// Output interface.
    pub dev: Option<String>,
}

/// When a step runs, and what a failure means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Builds or changes the lab; undone, newest first, if any step of the run fails.
    Build,
    /// Removes what the file no longer names; runs only once every build step succeeded, never
    /// undone, continues past failures (the next `up` retries what is left).
    Commit,
}

/// One kernel change. Executed in plan order; consecutive steps of one kind form a batch that
/// the backend may pipeline.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Step {
    /// Take an interface of the lab that goes out of the way, before anything new is built:
    /// `down` (so its routes and addresses no longer compete with the new ones), and renamed to
    /// `parked` when a new interface takes its name (a veth pair whose ends changed keeps its
    /// names). Deleted at commit; renamed back and brought up again if the run fails.
    ParkLink {
        /// Where.
        node: NodeRef,
        /// Its name now.
        name: String,
        /// The temporary name, when its name is needed.
        parked: Option<IfName>,
        /// Whether it was up (restored when it is renamed back).
        up: bool,
        /// What taking it down makes the kernel drop, put back when it is renamed back: its
        /// IPv6 addresses and the routes through it.
        #[serde(skip_serializing_if = "Vec::is_empty")]
        restore_addrs: Vec<IpNet>,
        /// See `restore_addrs`.
        #[serde(skip_serializing_if = "Vec::is_empty")]
        restore_routes: Vec<RouteSpec>,
    },
    /// Rename a parked interface back and bring it up again (undoes [`Step::ParkLink`]).
    UnparkLink {
        /// Where.
        node: NodeRef,
        /// The temporary name, if it was renamed.
        parked: Option<IfName>,
        /// Its name before.
        name: String,
        /// Bring it up again.
        up: bool,
        /// Addresses to add again once it is up.
        #[serde(skip_serializing_if = "Vec::is_empty")]
        restore_addrs: Vec<IpNet>,
        /// Routes to add again once it is up.
        #[serde(skip_serializing_if = "Vec::is_empty")]
        restore_routes: Vec<RouteSpec>,
    },
    /// Create a named namespace, tag it (its `lo` alias) and bring `lo` up, then publish it in
    /// `/run/netns` (so a namespace is never visible untagged).
    CreateNs {
        /// Which.
        ns: NsName,
    },
    /// Set a sysctl inside a node.
    Sysctl {
        /// Where.
        node: NodeRef,
        /// Key (`net.ipv4.ip_forward`).
        key: String,
        /// Value.
        value: String,
        /// The value before, restored if the run fails (`None` in a namespace this run creates).
        prev: Option<String>,
    },
    /// Create a tagged bridge.
    CreateBridge {
        /// Where.
        node: NodeRef,
        /// Name.
        name: IfName,
        /// MTU.
        mtu: Option<u32>,
        /// Spanning tree.
        stp: bool,
        /// Fixed MAC.
        mac: MacAddr,
        /// Carries IPv6 addresses.
        ipv6: bool,
    },
    /// Create a tagged veth pair, each end in its namespace with its final name.
    CreateVeth {
        /// First end.
        a: VethEnd,
        /// Second end.
        b: VethEnd,
        /// The pair's identifier (in both ends' alias).
        link_id: String,
    },
    /// Change an existing interface.
    SetLink {
        /// Where.
        node: NodeRef,
        /// Which.
        name: String,
        /// What.
        set: LinkSet,
        /// The same fields as they were, restored if the run fails (`None` for an interface
        /// this run creates).
        prev: Option<LinkSet>,
    },
    /// Add an address.
    AddAddr {
        /// Where.
        node: NodeRef,
        /// Interface.
        dev: String,
        /// Address.
        addr: IpNet,
    },
    /// Add a route, or replace the lab's route to the same destination in one step.
    AddRoute {
        /// Where.
        node: NodeRef,
        /// Which.
        route: RouteSpec,
        /// The lab's route to the same destination that this one replaces.
        replaces: Option<RouteSpec>,
    },
    /// Replace the lab's nftables table in a node, atomically (one transaction).
    Firewall {
        /// Where.
        node: NodeRef,
        /// `plumb-LAB`.
        table: String,
        /// The table's version marker.
        version: String,
        /// The table's rules (applied as one nftables transaction).
        rules: crate::firewall::Table,
        /// The version of the table it replaces, if there is one (saved before the change and
        /// restored if the run fails).
        prev: Option<String>,
    },
    /// Put back the table a [`Step::Firewall`] replaced, as saved just before.
    RestoreFirewall {
        /// Where.
        node: NodeRef,
        /// `plumb-LAB`.
        table: String,
        /// Its version.
        version: String,
    },
    /// Delete every host interface in the lab's link group (all carry the lab's tag).
    DeleteGroup {
        /// The group.
        group: u32,
    },
    /// Delete an interface the lab owns (a veth's peer goes with it).
    DeleteLink {
        /// Where.
        node: NodeRef,
        /// Which.
        name: String,
        /// Its index when known (from the snapshot): deleting by index never hits another
        /// interface that took the name meanwhile.
        index: Option<u32>,
    },
    /// Delete a named namespace the lab owns.
    DeleteNs {
        /// Which.
        ns: NsName,
    },
    /// Remove a route the lab installed.
    DelRoute {
        /// Where.
        node: NodeRef,
        /// Which.
        route: RouteSpec,
    },
    /// Remove an address from an interface the lab owns.
    DelAddr {
        /// Where.
        node: NodeRef,
        /// Interface.
        dev: String,
        /// Address.
        addr: IpNet,
    },
    /// Remove the lab's nftables table from a node.
    DeleteFirewall {
        /// Where.
        node: NodeRef,
        /// `plumb-LAB`.
        table: String,
    },
}

impl Step {
    /// Steps of the same kind run in one batch.
    pub fn kind(&self) -> &'static str {
        match self {
            Step::ParkLink { .. } => "park-link",
            Step::UnparkLink { .. } => "unpark-link",
            Step::CreateNs { .. } => "create-netns",
            Step::Sysctl { .. } => "sysctl",
            Step::CreateBridge { .. } => "create-bridge",
            Step::CreateVeth { .. } => "create-veth",
            Step::SetLink { .. } => "set-link",
            Step::AddAddr { .. } => "add-addr",
            Step::AddRoute { .. } => "add-route",
            Step::Firewall { .. } => "firewall",
            Step::RestoreFirewall { .. } => "restore-firewall",
            Step::DeleteGroup { .. } => "delete-group",
            Step::DeleteLink { .. } => "delete-link",
            Step::DeleteNs { .. } => "delete-netns",
            Step::DelRoute { .. } => "del-route",
            Step::DelAddr { .. } => "del-addr",
            Step::DeleteFirewall { .. } => "delete-firewall",
        }
    }

    /// Removes something: a failure that says "already gone" counts as done.
    pub fn is_delete(&self) -> bool {
        matches!(
            self,
            Step::DeleteGroup { .. }
                | Step::DeleteLink { .. }
                | Step::DeleteNs { .. }
                | Step::DelAddr { .. }
                | Step::DelRoute { .. }
                | Step::DeleteFirewall { .. }
        )
    }

    /// Steps of one class run in one batch, which the backend may schedule as it likes as long
    /// as every step follows the earlier steps on the same object: `build` (namespaces,
    /// sysctls, bridges, veth pairs, link settings, addresses, routes) and `remove` (a group
    /// delete, namespaces) fuse several kinds so that their kernel work overlaps; any other
    /// step is a class of its kind.
    pub fn batch_class(&self) -> &'static str {
        match self {
            Step::CreateNs { .. }
            | Step::Sysctl { .. }
            | Step::CreateBridge { .. }
            | Step::CreateVeth { .. }
            | Step::SetLink { .. }
            | Step::AddAddr { .. }
            | Step::AddRoute { .. } => "build",
            // A group delete waits in the kernel for the network core while namespaces are
            // unmounted (another lock): the backend does both at once.
            Step::DeleteGroup { .. } | Step::DeleteNs { .. } => "remove",
            other => other.kind(),
        }
    }

    /// A failure that says "already gone" counts as done: for removals, and for taking an
    /// interface out of the way or back (one that vanished by itself — a veth whose peer's
    /// namespace is being destroyed — is out of the way, and cannot be brought back).
    pub fn tolerates_gone(&self) -> bool {
        self.is_delete() || matches!(self, Step::ParkLink { .. } | Step::UnparkLink { .. })
    }

    /// The phase the step belongs to in a plan from [`crate::plan::diff`].
    pub fn phase(&self) -> Phase {
        if self.is_delete() {
            Phase::Commit
        } else {
            Phase::Build
        }
    }

    /// The step that undoes this one, if it needs undoing when a later step fails.
    pub fn inverse(&self) -> Option<Step> {
        Some(match self {
            Step::ParkLink {
                node,
                name,
                parked,
                up,
                restore_addrs,
                restore_routes,
            } => Step::UnparkLink {
                node: node.clone(),
                parked: parked.clone(),
                name: name.clone(),
                up: *up,
                restore_addrs: restore_addrs.clone(),
                restore_routes: restore_routes.clone(),
            },
            Step::CreateNs { ns } => Step::DeleteNs { ns: ns.clone() },
            Step::Sysctl {
                node,
                key,
                prev: Some(p),
                ..
            } => Step::Sysctl {
                node: node.clone(),
                key: key.clone(),
                value: p.clone(),
                prev: None,
            },
            Step::CreateBridge { node, name, .. } => Step::DeleteLink {
                node: node.clone(),
                name: name.to_string(),
                index: None,
            },
            Step::CreateVeth { a, .. } => Step::DeleteLink {
                node: a.node.clone(),
                name: a.name.to_string(),
                index: None,
            },
            Step::SetLink {
                node,
                name,
                prev: Some(p),
                ..
            } => Step::SetLink {
                node: node.clone(),
                name: name.clone(),
                set: p.clone(),
                prev: None,
            },
            Step::AddAddr { node, dev, addr } => Step::DelAddr {
                node: node.clone(),
                dev: dev.clone(),
                addr: *addr,
            },
            Step::AddRoute {
                node,
                route,
                replaces: None,
            } => Step::DelRoute {
                node: node.clone(),
                route: route.clone(),
            },
            Step::AddRoute {
                node,
                route,
                replaces: Some(old),
            } => Step::AddRoute {
                node: node.clone(),
                route: old.clone(),
                replaces: Some(route.clone()),
            },
            Step::Firewall {
                node,
                table,
                prev: None,
                ..
            } => Step::DeleteFirewall {
                node: node.clone(),
                table: table.clone(),
            },
            Step::Firewall {
                node,
                table,
                prev: Some(v),
                ..
            } => Step::RestoreFirewall {
                node: node.clone(),
                table: table.clone(),
                version: v.clone(),
            },
            _ => return None,
        })
    }

    /// What the lab's journal must know before this step runs: the objects it creates or
    /// renames, so that `gc` can find them if the run is killed at any instant.
    pub fn journal_records(&self) -> Vec<Record> {
        match self {
            Step::CreateNs { ns } => vec![Record::Ns(ns.clone())],
            Step::CreateBridge { .. } | Step::CreateVeth { .. } => self
                .created_links()
                .into_iter()
                .map(|(node, name)| Record::Link {
                    node: node.clone(),
                    name: name.clone(),
                })
                .collect(),
            Step::ParkLink {
                node,
                name,
                parked,
                up,
                ..
            } => match IfName::new(name) {
                Ok(name) => vec![Record::Park {
                    node: node.clone(),
                    parked: parked.clone(),
                    name,
                    up: *up,
                }],
                Err(_) => Vec::new(),
            },
            Step::Firewall {
                node, prev: None, ..
            } => vec![Record::Firewall { node: node.clone() }],
            _ => Vec::new(),
        }
    }

    /// The interfaces this step creates, by node.
    pub fn created_links(&self) -> Vec<(&NodeRef, &IfName)> {
        match self {
            Step::CreateBridge { node, name, .. } => vec![(node, name)],
            Step::CreateVeth { a, b, .. } => vec![(&a.node, &a.name), (&b.node, &b.name)],
            _ => Vec::new(),
        }
    }
}
