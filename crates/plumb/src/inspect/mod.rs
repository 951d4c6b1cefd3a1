//! Read-only snapshots of kernel network state: what `plan` diffs against and what `show`
//! (and later `inspect` and `doctor`) print.
//!
//! A snapshot never changes the kernel. Reading a foreign namespace enters it on a short-lived
//! thread and opens a socket there; nothing plumb does not own is ever modified.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;

use crate::model::names::NsName;
use crate::model::MacAddr;
use crate::netlink::{NetlinkError, NlSocket};

/// The prefix of every tag plumb writes into an interface alias: `plumb:LAB`.
pub const TAG_PREFIX: &str = "plumb:";

/// The lab an alias names, if the alias is a plumb tag.
pub fn tag_owner(alias: Option<&str>) -> Option<&str> {
    let rest = alias?.strip_prefix(TAG_PREFIX)?;
    let lab = rest.split(' ').next().unwrap_or_default();
    (!lab.is_empty()).then_some(lab)
}

/// The alias that tags an object as owned by `lab`.
pub fn tag_for(lab: &str) -> String {
    format!("{TAG_PREFIX}{lab}")
}

/// A link's type, as the kernel reports it in `IFLA_INFO_KIND`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum LinkKind {
    /// The loopback device.
    Loopback,
    /// One end of a veth pair.
    Veth,
    /// A Linux bridge.
    Bridge,
    /// A kind plumb does not model, by its kernel name.
    Other(String),
    /// A device without a kind (for example a physical NIC).
    Device,
}

/// One interface.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct LinkState {
    /// Interface index (per namespace).
    pub index: u32,
    /// Name.
    pub name: String,
    /// Type.
    pub kind: LinkKind,
    /// `IFLA_IFALIAS`: where plumb's tag lives.
    pub alias: Option<String>,
    /// MTU.
    pub mtu: u32,
    /// MAC address.
    pub mac: Option<MacAddr>,
    /// Administratively up (`IFF_UP`).
    pub up: bool,
    /// Carrier present (`IFF_LOWER_UP`).
    pub lower_up: bool,
    /// The bridge this interface is a port of.
    pub master: Option<u32>,
    /// `IFLA_LINK`: for a veth, the peer's index (in the peer's namespace).
    pub peer_index: Option<u32>,
    /// `IFLA_LINK_NETNSID`: the peer's namespace as an nsid of this namespace, if elsewhere.
    pub peer_netnsid: Option<i32>,
    /// `IFLA_GROUP`.
    pub group: u32,
    /// For a bridge port: isolated from the other isolated ports (`IFLA_BRPORT_ISOLATED`).
    pub isolated: bool,
}

impl LinkState {
    /// The lab that owns this link, if plumb created it.
    pub fn owner(&self) -> Option<&str> {
        tag_owner(self.alias.as_deref())
    }
}

/// One address on an interface.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AddrState {
    /// The interface's index.
    pub index: u32,
    /// Address and prefix length.
    pub addr: IpNet,
}

/// One route of the main table.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RouteState {
    /// Destination (`0.0.0.0/0` or `::/0` for default).
    pub dst: IpNet,
    /// Gateway.
    pub via: Option<IpAddr>,
    /// Output interface index.
    pub oif: Option<u32>,
    /// `rtm_protocol`: who installed it.
    pub protocol: u8,
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
    /// Values of the sysctls that were asked for, by key.
    pub sysctls: BTreeMap<String, String>,
    /// The version marker of the lab's nftables table here, if it has one (`Some("")` for a
    /// table without a marker).
    pub nft_version: Option<String>,
}

impl NsState {
    /// Reads links, addresses and routes through `sock` (three dumps).
    /// Equivalent to `ip link; ip addr; ip route` in that namespace.
    pub fn read(sock: &mut NlSocket) -> Result<Self, NetlinkError> {
        let links = crate::netlink::link::dump(sock)?;
        let addrs = crate::netlink::addr::dump(sock)?;
        let routes = crate::netlink::route::dump(sock)?;
        // The version of the lab's firewall table in a namespace is kept in `lo`'s tag.
        let nft_version = links
            .iter()
            .find(|l| l.kind == LinkKind::Loopback)
            .and_then(|l| l.alias.as_deref())
            .and_then(|a| a.split(' ').find_map(|w| w.strip_prefix("fw=")))
            .map(str::to_string);
        Ok(NsState {
            links,
            addrs,
            routes,
            sysctls: BTreeMap::new(),
            nft_version,
        })
    }

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

    /// The lab named by `lo`'s alias: the owner of the namespace itself.
    pub fn owner(&self) -> Option<&str> {
        self.links
            .iter()
            .find(|l| l.kind == LinkKind::Loopback)
            .and_then(|l| l.owner())
    }
}

/// A named namespace found in `/run/netns`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct NamedNs {
    /// Its name.
    pub name: NsName,
    /// Its contents, or why they could not be read (a stale mount, say).
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

/// Reading the kernel's state failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InspectError {
    /// The host namespace could not be read.
    #[error("cannot read the host's network state: {0}")]
    Host(#[source] NetlinkError),
    /// `/run/netns` could not be listed, or a worker failed.
    #[error(transparent)]
    Netns(#[from] crate::netns::NetnsError),
}

/// Reads the host namespace and every named namespace. For each node, `sysctls` names the
/// sysctl keys whose values to read as well. Namespaces that cannot be entered (a stale file
/// in `/run/netns`) are listed with the reason instead of failing the whole snapshot.
pub fn snapshot(
    reg: &crate::netns::Registry,
    sysctls: &(dyn Fn(Option<&NsName>) -> Vec<String> + Sync),
) -> Result<Snapshot, InspectError> {
    let mut host_sock = NlSocket::open().map_err(InspectError::Host)?;
    let mut host = NsState::read(&mut host_sock).map_err(InspectError::Host)?;
    for key in sysctls(None) {
        if let Ok(v) = crate::netns::read_sysctl(&key) {
            host.sysctls.insert(key, v);
        }
    }
    let names = reg.list()?;
    let mut namespaces = BTreeMap::new();
    let mut fds = Vec::new();
    let mut opened = Vec::new();
    for name in names {
        match reg.open(&name) {
            Ok(fd) => {
                fds.push(fd);
                opened.push(name);
            }
            Err(e) => {
                namespaces.insert(
                    name.clone(),
                    NamedNs {
                        name,
                        state: Err(e.to_string()),
                    },
                );
            }
        }
    }
    let refs: Vec<&std::os::fd::OwnedFd> = fds.iter().collect();
    let states = crate::netns::run_in_each(&refs, |i| {
        let mut sock = NlSocket::open()?;
        let mut st = NsState::read(&mut sock)?;
        for key in sysctls(Some(&opened[i])) {
            if let Ok(v) = crate::netns::read_sysctl(&key) {
                st.sysctls.insert(key, v);
            }
        }
        Ok::<_, NetlinkError>(st)
    })?;
    for (name, st) in opened.iter().zip(states) {
        let state = match st {
            Ok(Ok(s)) => Ok(s),
            Ok(Err(e)) => Err(e.to_string()),
            Err(e) => Err(format!("cannot enter: {e}")),
        };
        namespaces.insert(
            name.clone(),
            NamedNs {
                name: name.clone(),
                state,
            },
        );
    }
    Ok(Snapshot { host, namespaces })
}
