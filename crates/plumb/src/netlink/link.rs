//! Links: veth pairs, bridges, and the settings of any interface (`ip link`).

use std::os::fd::RawFd;

use netlink_packet_core::DefaultNla;
use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL};
use netlink_packet_route::link::{
    AfSpecInet, AfSpecInet6, AfSpecUnspec, BridgeStpState, In6AddrGenMode, InfoBridge,
    InfoBridgePort, InfoData, InfoKind, InfoPortData, InfoPortKind, InfoVeth, LinkAttribute,
    LinkExtentMask, LinkFlags, LinkInfo, LinkMessage,
};
use netlink_packet_route::RouteNetlinkMessage;

use super::{NetlinkError, NlSocket};
use crate::model::MacAddr;

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

impl std::fmt::Display for LinkKind {
    /// The kernel's name for the kind (`veth`, `bridge`), `loopback`, or `device`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            LinkKind::Loopback => "loopback",
            LinkKind::Veth => "veth",
            LinkKind::Bridge => "bridge",
            LinkKind::Other(k) => k,
            LinkKind::Device => "device",
        })
    }
}

/// One interface, as `RTM_NEWLINK` describes it.
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
    /// `IFLA_OPERSTATE` as the kernel names it (`up`, `down`, `lowerlayerdown`, `unknown`…).
    pub operstate: String,
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
    /// For a bridge: spanning tree on (`IFLA_BR_STP_STATE`).
    pub stp: Option<bool>,
}

/// One end of a veth pair to create.
#[derive(Debug, Clone)]
pub struct VethEnd<'a> {
    /// Final name of the end.
    pub name: &'a str,
    /// The namespace to create the end in (`IFLA_NET_NS_FD`); `None` for the socket's namespace.
    pub netns_fd: Option<RawFd>,
    /// Requested interface index, or 0 to let the kernel choose.
    pub index: u32,
    /// MTU.
    pub mtu: Option<u32>,
    /// MAC address.
    pub mac: Option<MacAddr>,
    /// Bridge to enslave the end to (index in the end's namespace).
    pub master: Option<u32>,
    /// Link group (`IFLA_GROUP`).
    pub group: u32,
}

fn end_attrs(end: &VethEnd<'_>) -> Vec<LinkAttribute> {
    let mut attrs = vec![
        LinkAttribute::IfName(end.name.to_string()),
        // One queue each way: a veth end gets one per CPU by default, which only costs setup time here.
        LinkAttribute::NumTxQueues(1),
        LinkAttribute::NumRxQueues(1),
    ];
    if end.group != 0 {
        attrs.push(LinkAttribute::Group(end.group));
    }
    if let Some(fd) = end.netns_fd {
        attrs.push(LinkAttribute::NetNsFd(fd));
    }
    if let Some(mtu) = end.mtu {
        attrs.push(LinkAttribute::Mtu(mtu));
    }
    if let Some(mac) = end.mac {
        attrs.push(LinkAttribute::Address(mac.0.to_vec()));
    }
    if let Some(master) = end.master {
        attrs.push(LinkAttribute::Controller(master));
    }
    attrs
}

/// Equivalent to `ip link add A [netns X] type veth peer name B netns Y`: both ends are born in
/// their namespaces with their final names, so nothing is renamed or moved afterwards.
pub fn new_veth(a: &VethEnd<'_>, b: &VethEnd<'_>) -> (RouteNetlinkMessage, u16) {
    let mut peer = LinkMessage::default();
    peer.header.index = b.index;
    peer.attributes = end_attrs(b);
    let mut msg = LinkMessage::default();
    msg.header.index = a.index;
    msg.attributes = end_attrs(a);
    msg.attributes.push(LinkAttribute::LinkInfo(vec![
        LinkInfo::Kind(InfoKind::Veth),
        LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer))),
    ]));
    (RouteNetlinkMessage::NewLink(msg), NLM_F_CREATE | NLM_F_EXCL)
}

/// What a new bridge looks like.
#[derive(Debug, Clone)]
pub struct BridgeSpec<'a> {
    /// Name.
    pub name: &'a str,
    /// Namespace, if not the socket's.
    pub netns_fd: Option<RawFd>,
    /// MTU.
    pub mtu: Option<u32>,
    /// MAC: fixed, so the bridge does not re-derive it from its ports on every change.
    pub mac: MacAddr,
    /// Spanning tree.
    pub stp: bool,
    /// Link group.
    pub group: u32,
}

/// Equivalent to `ip link add NAME type bridge stp_state 0 mcast_snooping 0`, with a fixed MAC.
/// Multicast snooping is off: with it on every new port re-arms timers on all ports, and a
/// lab's bridge has no multicast routers to learn from.
pub fn new_bridge(b: &BridgeSpec<'_>) -> (RouteNetlinkMessage, u16) {
    let mut msg = LinkMessage::default();
    msg.attributes
        .push(LinkAttribute::IfName(b.name.to_string()));
    msg.attributes
        .push(LinkAttribute::Address(b.mac.0.to_vec()));
    if b.group != 0 {
        msg.attributes.push(LinkAttribute::Group(b.group));
    }
    if let Some(fd) = b.netns_fd {
        msg.attributes.push(LinkAttribute::NetNsFd(fd));
    }
    if let Some(mtu) = b.mtu {
        msg.attributes.push(LinkAttribute::Mtu(mtu));
    }
    let stp = if b.stp {
        BridgeStpState::KernelStp
    } else {
        BridgeStpState::Disabled
    };
    msg.attributes.push(LinkAttribute::LinkInfo(vec![
        LinkInfo::Kind(InfoKind::Bridge),
        LinkInfo::Data(InfoData::Bridge(vec![
            InfoBridge::StpState(stp),
            InfoBridge::MulticastSnooping(false),
        ])),
    ]));
    (RouteNetlinkMessage::NewLink(msg), NLM_F_CREATE | NLM_F_EXCL)
}

/// `IFLA_INET_CONF` from `include/uapi/linux/if_link.h`: per-device IPv4 settings, nested by
/// `IPV4_DEVCONF_*` index.
const IFLA_INET_CONF: u16 = 1;
/// `IPV4_DEVCONF_PROMOTE_SECONDARIES` from `include/uapi/linux/ip.h`.
const IPV4_DEVCONF_PROMOTE_SECONDARIES: u16 = 20;

/// One nested `IPV4_DEVCONF_*` attribute: a u32 value.
fn devconf(index: u16, value: u32) -> Vec<u8> {
    let mut b = Vec::with_capacity(8);
    b.extend_from_slice(&8u16.to_ne_bytes());
    b.extend_from_slice(&index.to_ne_bytes());
    b.extend_from_slice(&value.to_ne_bytes());
    b
}

/// Which interface a request is about: by index, or by name (index 0 and `IFLA_IFNAME`).
#[derive(Debug, Clone, Copy)]
pub enum Target<'a> {
    /// By interface index.
    Index(u32),
    /// By name.
    Name(&'a str),
}

fn target_msg(t: Target<'_>) -> LinkMessage {
    let mut msg = LinkMessage::default();
    match t {
        Target::Index(i) => msg.header.index = i,
        Target::Name(n) => msg.attributes.push(LinkAttribute::IfName(n.to_string())),
    }
    msg
}

/// Settings changed on an existing interface. Fields left `None` are not touched.
#[derive(Debug, Clone, Default)]
pub struct LinkChange {
    /// Administrative state.
    pub up: Option<bool>,
    /// MTU.
    pub mtu: Option<u32>,
    /// MAC.
    pub mac: Option<MacAddr>,
    /// Bridge to enslave to (index), or `Some(0)` to release.
    pub master: Option<u32>,
    /// Alias (the ownership tag).
    pub alias: Option<String>,
    /// New name (`ip link set DEV name NEW`); the kernel requires the interface to be down,
    /// and the target must be an index (a name target would be read as the new name).
    pub name: Option<String>,
    /// For a bridge: spanning tree on or off.
    pub stp: Option<bool>,
    /// IPv6 address generation off (`addrgenmode none`): no link-local address, no DAD, no MLD.
    pub ipv6_addrgen_none: bool,
    /// `net.ipv4.conf.DEV.promote_secondaries = 1`, set over netlink: removing an interface's
    /// primary IPv4 address then keeps the other addresses of its subnet (by default the kernel
    /// deletes them along), so an address can be replaced by adding the new one first.
    pub ipv4_promote_secondaries: bool,
    /// Bridge port isolation (`bridge link set dev X isolated on`).
    pub isolated: Option<bool>,
}

/// Equivalent to `ip link set DEV [up|down] [name NEW] [mtu N] [address M] [master B]
/// [alias A] [addrgenmode none] [type bridge stp_state S]`.
///
/// Sent as `RTM_NEWLINK` without `NLM_F_CREATE`, as iproute2 does: unlike `RTM_SETLINK`, it
/// also applies `IFLA_LINKINFO` (bridge-port options such as isolation).
///
/// The kernel applies flags (up) before `IFLA_AF_SPEC`, so a change that both disables IPv6
/// address generation and sets the link up must be sent as two requests; [`set`] does so.
pub fn set(t: Target<'_>, change: &LinkChange) -> Vec<(RouteNetlinkMessage, u16)> {
    let mut out = Vec::new();
    let mut msg = target_msg(t);
    if let Some(n) = &change.name {
        msg.attributes.push(LinkAttribute::IfName(n.clone()));
    }
    if let Some(mtu) = change.mtu {
        msg.attributes.push(LinkAttribute::Mtu(mtu));
    }
    if let Some(mac) = change.mac {
        msg.attributes.push(LinkAttribute::Address(mac.0.to_vec()));
    }
    if let Some(m) = change.master {
        msg.attributes.push(LinkAttribute::Controller(m));
    }
    if let Some(iso) = change.isolated {
        msg.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::PortKind(InfoPortKind::Bridge),
            LinkInfo::PortData(InfoPortData::BridgePort(vec![InfoBridgePort::Isolated(
                iso,
            )])),
        ]));
    }
    if let Some(a) = &change.alias {
        msg.attributes.push(LinkAttribute::IfAlias(a.clone()));
    }
    if let Some(stp) = change.stp {
        msg.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::Bridge),
            LinkInfo::Data(InfoData::Bridge(vec![InfoBridge::StpState(if stp {
                BridgeStpState::KernelStp
            } else {
                BridgeStpState::Disabled
            })])),
        ]));
    }
    let mut af = Vec::new();
    if change.ipv4_promote_secondaries {
        af.push(AfSpecUnspec::Inet(vec![AfSpecInet::Other(
            DefaultNla::new(IFLA_INET_CONF, devconf(IPV4_DEVCONF_PROMOTE_SECONDARIES, 1)),
        )]));
    }
    if change.ipv6_addrgen_none {
        af.push(AfSpecUnspec::Inet6(vec![AfSpecInet6::AddrGenMode(
            In6AddrGenMode::None,
        )]));
    }
    if !af.is_empty() {
        msg.attributes.push(LinkAttribute::AfSpecUnspec(af));
    }
    let has_attrs = msg.attributes.len() > usize::from(matches!(t, Target::Name(_)));
    if let Some(up) = change.up {
        if has_attrs && (change.ipv6_addrgen_none || change.ipv4_promote_secondaries) {
            out.push((RouteNetlinkMessage::NewLink(msg), 0));
            msg = target_msg(t);
        }
        msg.header.change_mask = LinkFlags::Up;
        if up {
            msg.header.flags = LinkFlags::Up;
        }
        out.push((RouteNetlinkMessage::NewLink(msg), 0));
    } else if has_attrs {
        out.push((RouteNetlinkMessage::NewLink(msg), 0));
    }
    out
}

/// Equivalent to `ip link del DEV`.
pub fn delete(t: Target<'_>) -> (RouteNetlinkMessage, u16) {
    (RouteNetlinkMessage::DelLink(target_msg(t)), 0)
}

/// Equivalent to `ip link del group N`: the kernel removes every member in one pass, with one
/// wait for the network core instead of one per device.
pub fn delete_group(group: u32) -> (RouteNetlinkMessage, u16) {
    let mut msg = LinkMessage::default();
    msg.attributes.push(LinkAttribute::Group(group));
    (RouteNetlinkMessage::DelLink(msg), 0)
}

/// Equivalent to `ip link show dev INDEX`: one interface, `None` if there is none.
pub fn get(sock: &mut NlSocket, index: u32) -> Result<Option<LinkState>, NetlinkError> {
    let mut msg = get_message();
    msg.header.index = index;
    match sock.get(RouteNetlinkMessage::GetLink(msg)) {
        Ok(RouteNetlinkMessage::NewLink(l)) => Ok(Some(parse(&l))),
        Ok(_) => Ok(None),
        Err(e) if e.errno() == Some(libc::ENODEV) => Ok(None),
        Err(e) => Err(e),
    }
}

/// A link request that asks the kernel to leave statistics out (`RTEXT_FILTER_SKIP_STATS`),
/// which plumb never reads: before Linux 6.19 this drops IPv6's per-device statistics (about
/// a quarter of each answer's bytes), from 6.19 on the device counters too.
fn get_message() -> LinkMessage {
    let mut msg = LinkMessage::default();
    msg.attributes
        .push(LinkAttribute::ExtMask(vec![LinkExtentMask::SkipStats]));
    msg
}

/// Equivalent to `ip link show`.
pub fn dump(sock: &mut NlSocket) -> Result<Vec<LinkState>, NetlinkError> {
    sock.dump_map(RouteNetlinkMessage::GetLink(get_message()), |m| match m {
        RouteNetlinkMessage::NewLink(l) => Some(parse(&l)),
        _ => None,
    })
}

/// The operational state as iproute2 prints it (lower case): `up`, `down`, `lowerlayerdown`…
fn operstate_name(s: netlink_packet_route::link::State) -> String {
    use netlink_packet_route::link::State;
    match s {
        State::Unknown => "unknown".into(),
        State::NotPresent => "notpresent".into(),
        State::Down => "down".into(),
        State::LowerLayerDown => "lowerlayerdown".into(),
        State::Testing => "testing".into(),
        State::Dormant => "dormant".into(),
        State::Up => "up".into(),
        State::Other(n) => format!("state-{n}"),
        _ => "unknown".into(),
    }
}

/// Decodes a `RTM_NEWLINK` into plumb's view of a link.
pub fn parse(msg: &LinkMessage) -> LinkState {
    let mut st = LinkState {
        index: msg.header.index,
        name: String::new(),
        kind: if msg.header.flags.contains(LinkFlags::Loopback) {
            LinkKind::Loopback
        } else {
            LinkKind::Device
        },
        alias: None,
        mtu: 0,
        mac: None,
        up: msg.header.flags.contains(LinkFlags::Up),
        lower_up: msg.header.flags.contains(LinkFlags::LowerUp),
        operstate: String::from("unknown"),
        master: None,
        peer_index: None,
        peer_netnsid: None,
        group: 0,
        isolated: false,
        stp: None,
    };
    for a in &msg.attributes {
        match a {
            LinkAttribute::IfName(n) => st.name = n.clone(),
            LinkAttribute::IfAlias(a) => st.alias = Some(a.clone()),
            LinkAttribute::Mtu(m) => st.mtu = *m,
            LinkAttribute::Address(m) if m.len() == 6 => {
                let mut b = [0u8; 6];
                b.copy_from_slice(m);
                st.mac = Some(MacAddr(b));
            }
            LinkAttribute::Controller(m) => st.master = Some(*m),
            LinkAttribute::Link(p) => st.peer_index = Some(*p),
            LinkAttribute::LinkNetNsId(id) => st.peer_netnsid = Some(*id),
            LinkAttribute::Group(g) => st.group = *g,
            LinkAttribute::OperState(o) => st.operstate = operstate_name(*o),
            LinkAttribute::LinkInfo(infos) => {
                for i in infos {
                    if let LinkInfo::PortData(InfoPortData::BridgePort(opts)) = i {
                        st.isolated = opts
                            .iter()
                            .any(|o| matches!(o, InfoBridgePort::Isolated(true)));
                    }
                    if let LinkInfo::Data(InfoData::Bridge(opts)) = i {
                        for o in opts {
                            if let InfoBridge::StpState(s) = o {
                                st.stp = Some(*s != BridgeStpState::Disabled);
                            }
                        }
                    }
                    if let LinkInfo::Kind(k) = i {
                        st.kind = match k {
                            InfoKind::Veth => LinkKind::Veth,
                            InfoKind::Bridge => LinkKind::Bridge,
                            other => LinkKind::Other(other.to_string()),
                        };
                    }
                }
            }
            _ => {}
        }
    }
    st
}
