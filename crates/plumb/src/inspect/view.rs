//! The machine as `plumb inspect` shows it: every namespace, what holds it, its interfaces with
//! each veth's other end resolved, its routes. Plain data (JSON version 1, documented in
//! `docs/schema/inspect.v1.json`) and the lookups the CLI needs.

use ipnet::IpNet;
use std::net::IpAddr;

use super::discover::{Container, Holder, NsIdentity};

/// JSON version of [`MachineView`].
pub const INSPECT_JSON_VERSION: u32 = 1;

/// Every network namespace plumb can see, read at one moment.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct MachineView {
    /// [`INSPECT_JSON_VERSION`].
    pub version: u32,
    /// plumb's own namespace first, then the others by label.
    pub namespaces: Vec<NsView>,
    /// Processes whose namespaces could not be read (another user's, without privilege).
    pub processes_not_examined: usize,
}

/// One namespace.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct NsView {
    /// Identity: the nsfs inode (`net:[ID]`).
    pub id: NsIdentity,
    /// The kernel's namespace cookie (`SO_NETNS_COOKIE`, Linux 5.14+), never reused while the
    /// kernel runs, unlike an inode.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cookie: Option<u64>,
    /// How to refer to it: `host`, its name, `docker:ID12`, `pid:PID`, `net:[ID]`.
    pub label: String,
    /// Whether plumb runs in it.
    pub current: bool,
    /// What keeps it alive.
    pub holders: Vec<Holder>,
    /// Processes in it.
    pub pids: Vec<u32>,
    /// The container it belongs to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container: Option<Container>,
    /// The plumb lab that owns it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lab: Option<String>,
    /// Why it could not be read (then it has no interfaces here).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Interfaces, by index.
    pub interfaces: Vec<IfView>,
    /// Main-table routes.
    pub routes: Vec<RouteView>,
    /// Neighbour (ARP/NDP) entries.
    pub neighbours: usize,
}

/// One interface.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct IfView {
    /// Index (in its namespace).
    pub index: u32,
    /// Name.
    pub name: String,
    /// `veth`, `bridge`, `loopback`, `device` or the kernel's kind.
    pub kind: String,
    /// Operational state (`up`, `down`, `lowerlayerdown`, `unknown`).
    pub state: String,
    /// Administratively up.
    pub up: bool,
    /// MTU.
    pub mtu: u32,
    /// MAC address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    /// The bridge it is a port of (a name in the same namespace).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub master: Option<String>,
    /// Addresses.
    pub addresses: Vec<IpNet>,
    /// For a bridge: its ports.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<String>,
    /// The plumb lab that owns it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lab: Option<String>,
    /// For a veth: the other end.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer: Option<PeerView>,
}

/// The other end of a veth.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PeerView {
    /// The namespace it is in (`None`: one plumb cannot see).
    pub namespace: Option<NsIdentity>,
    /// That namespace's label.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// Its index there (`IFLA_LINK`).
    pub index: u32,
    /// Its name, if its namespace was read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The nsid by which this end's namespace names the peer's (`IFLA_LINK_NETNSID`; absent
    /// when both ends are in one namespace). An alias in this namespace's table, not an
    /// identity.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nsid: Option<i32>,
    /// Whether the peer points back at this end (checked from its own namespace).
    pub confirmed: bool,
}

/// A route.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RouteView {
    /// Destination.
    pub dst: IpNet,
    /// Gateway.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub via: Option<IpAddr>,
    /// Output interface.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dev: Option<String>,
}

/// An interface was asked for that is not there.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LookupError {
    /// No namespace answers to the reference.
    #[error("no network namespace `{0}` (try `plumb ns ls`)")]
    NoNamespace(String),
    /// More than one namespace answers to it.
    #[error("`{reference}` names {count} namespaces: {examples}")]
    Ambiguous {
        /// The reference.
        reference: String,
        /// How many.
        count: usize,
        /// Some of their labels.
        examples: String,
    },
    /// The namespace has no such interface.
    #[error("no interface `{iface}` in {ns}")]
    NoInterface {
        /// The interface name.
        iface: String,
        /// The namespace's label.
        ns: String,
    },
}

impl NsView {
    /// Whether `reference` names this namespace: its label or name, `host`, `pid:PID` (any of
    /// its processes), `net:[ID]` or the bare identity, a container as `RUNTIME:ID` or
    /// `container:ID` (a prefix of at least 4 digits of the id), or a path that holds it.
    pub fn answers_to(&self, reference: &str) -> bool {
        super::discover::answers_to(
            reference,
            &super::discover::Identity {
                id: self.id,
                label: &self.label,
                current: self.current,
                pids: &self.pids,
                container: self.container.as_ref(),
                holders: &self.holders,
            },
        )
    }

    /// The interface named `name`.
    pub fn iface(&self, name: &str) -> Option<&IfView> {
        self.interfaces.iter().find(|i| i.name == name)
    }

    /// The interface with index `index`.
    pub fn iface_by_index(&self, index: u32) -> Option<&IfView> {
        self.interfaces.iter().find(|i| i.index == index)
    }

    /// Where it is held from and who is in it: `/run/netns/ns1, pids 4242, 4250`.
    pub fn whereabouts(&self) -> String {
        let mut parts: Vec<String> = self
            .holders
            .iter()
            .filter_map(|h| match h {
                Holder::Named { path, .. } => Some(path.display().to_string()),
                Holder::Mount { path, here, .. } => Some(if *here {
                    path.display().to_string()
                } else {
                    format!("{} (another mount namespace)", path.display())
                }),
                _ => None,
            })
            .collect();
        if let Some(c) = &self.container {
            parts.push(format!(
                "{} container {}",
                c.runtime,
                &c.id[..12.min(c.id.len())]
            ));
        }
        match self.pids.len() {
            0 => {}
            1 => parts.push(format!("pid {}", self.pids[0])),
            _ => parts.push(format!(
                "pids {}",
                self.pids
                    .iter()
                    .map(u32::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
        let fds = self
            .holders
            .iter()
            .filter(|h| matches!(h, Holder::Fd { .. }))
            .count();
        if fds > 0 && self.pids.is_empty() {
            parts.push(format!("held by {fds} open file descriptor(s)"));
        }
        if self.current {
            parts.insert(0, "plumb's own namespace".into());
        }
        parts.join(", ")
    }
}

impl MachineView {
    /// The namespace `reference` names (see [`NsView::answers_to`]).
    pub fn namespace(&self, reference: &str) -> Result<&NsView, LookupError> {
        let found: Vec<&NsView> = self
            .namespaces
            .iter()
            .filter(|n| n.answers_to(reference))
            .collect();
        match found.as_slice() {
            [one] => Ok(one),
            [] => Err(LookupError::NoNamespace(reference.into())),
            many => Err(LookupError::Ambiguous {
                reference: reference.into(),
                count: many.len(),
                examples: many
                    .iter()
                    .take(5)
                    .map(|n| n.label.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            }),
        }
    }

    /// The part of the machine a plumb lab owns: its namespaces, and in plumb's own namespace
    /// only the lab's interfaces (the view `plumb show` gives of one lab, without its rules).
    pub fn limited_to(mut self, lab: &str) -> MachineView {
        self.namespaces
            .retain(|n| n.current || n.lab.as_deref() == Some(lab));
        for n in self.namespaces.iter_mut().filter(|n| n.current) {
            n.interfaces.retain(|i| i.lab.as_deref() == Some(lab));
            let kept: Vec<String> = n.interfaces.iter().map(|i| i.name.clone()).collect();
            n.routes
                .retain(|r| r.dev.as_ref().is_some_and(|d| kept.contains(d)));
        }
        self
    }

    /// The namespace with identity `id`.
    pub fn by_id(&self, id: NsIdentity) -> Option<&NsView> {
        self.namespaces.iter().find(|n| n.id == id)
    }

    /// `NS:IFNAME` or `IFNAME` (in plumb's own namespace).
    pub fn find(&self, spec: &str) -> Result<(&NsView, &IfView), LookupError> {
        let (ns, iface) = match spec.rsplit_once(':') {
            // `pid:123` alone is a namespace, not an interface; `docker:ID:eth0` splits last.
            Some((ns, iface)) if !ns.is_empty() => (self.namespace(ns)?, iface),
            _ => (
                self.namespaces
                    .iter()
                    .find(|n| n.current)
                    .ok_or_else(|| LookupError::NoNamespace("host".into()))?,
                spec,
            ),
        };
        let i = ns.iface(iface).ok_or_else(|| LookupError::NoInterface {
            iface: iface.into(),
            ns: ns.label.clone(),
        })?;
        Ok((ns, i))
    }

    /// The seed's question answered in one line: "veth1 (ifindex 7, host) is cabled to eth1000
    /// (ifindex 12) in ns1 (/run/netns/ns1, pids 4242, 4250)".
    pub fn sentence(&self, ns: &NsView, i: &IfView) -> String {
        let mut me = format!("{} (ifindex {}, {}", i.name, i.index, ns.label);
        if let Some(c) = &ns.container {
            if !ns.label.starts_with(&format!("{}:", c.runtime)) {
                me.push_str(&format!(
                    ", {} container {}",
                    c.runtime,
                    &c.id[..12.min(c.id.len())]
                ));
            }
        }
        me.push(')');
        match (&i.peer, i.kind.as_str()) {
            (Some(p), _) => {
                let name = p.name.as_deref().unwrap_or("an interface");
                match p.namespace.and_then(|id| self.by_id(id)) {
                    Some(other) if other.id == ns.id => format!(
                        "{me} is cabled to {name} (ifindex {}) in the same namespace",
                        p.index
                    ),
                    Some(other) => {
                        let mut s = format!(
                            "{me} is cabled to {name} (ifindex {}) in {} ({})",
                            p.index,
                            other.label,
                            other.whereabouts()
                        );
                        if !p.confirmed {
                            s.push_str("; the other end does not point back (unconfirmed)");
                        }
                        s
                    }
                    None => format!(
                        "{me} is cabled to ifindex {} in a namespace plumb cannot see (nsid {} here)",
                        p.index,
                        p.nsid.map_or("none".into(), |n| n.to_string())
                    ),
                }
            }
            (None, "veth") => format!("{me} is a veth whose other end is gone"),
            (None, "bridge") => {
                let ports: Vec<String> = i
                    .ports
                    .iter()
                    .map(|p| match ns.iface(p).and_then(|pi| self.far_end(pi)) {
                        Some(far) => format!("{p} (to {far})"),
                        None => p.clone(),
                    })
                    .collect();
                if ports.is_empty() {
                    format!("{me} is a bridge without ports")
                } else {
                    format!("{me} is a bridge with ports {}", ports.join(", "))
                }
            }
            (None, kind) => format!("{me} is a {kind} interface, not a veth: it has no other end"),
        }
    }

    /// `NS:IFNAME` of a veth's other end, when it is known.
    pub fn far_end(&self, i: &IfView) -> Option<String> {
        let p = i.peer.as_ref()?;
        Some(format!(
            "{}:{}",
            p.label.as_deref()?,
            p.name.as_deref().unwrap_or("?")
        ))
    }
}
