//! The kernel objects of one attachment, over plumb's netlink layer: the bridge (made once,
//! with a fixed MAC derived from the network and bridge names), the veth pair (the container
//! end born inside the container's namespace with its final name), addresses and routes, and
//! work inside the container's namespace on a thread that enters it and ends.

use std::net::IpAddr;
use std::os::fd::OwnedFd;

use ipnet::IpNet;
use netlink_packet_route::link::{
    InfoBridgePort, InfoPortData, InfoPortKind, LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
};
use netlink_packet_route::RouteNetlinkMessage;

use super::error::{code, CniError};
use crate::model::MacAddr;
use crate::netlink::link::{self, LinkChange, LinkState, Target};
use crate::netlink::route::RouteSpec;
use crate::netlink::{addr, route, NetlinkError, NlSocket};
use crate::ownership::{self, TAG_PREFIX};
use crate::sys;

/// The tag of everything the CNI plugin makes: `plumb:cni net=NETWORK`, plus ` cid=ID if=IFNAME`
/// on a host veth end (which is how DEL and GC know the end is theirs).
pub fn tag(network: &str, attachment: Option<(&str, &str)>) -> String {
    let mut t = format!("{TAG_PREFIX}cni net={network}");
    if let Some((cid, ifname)) = attachment {
        t.push_str(&format!(" cid={cid} if={ifname}"));
    }
    t
}

/// The word a tag ends with while its veth pair is being removed after DEL returned.
const DETACHING: &str = "detaching";

/// The tag of a host veth end DEL has detached and whose removal is under way.
pub fn detaching_tag(network: &str, attachment: (&str, &str)) -> String {
    format!("{} {DETACHING}", tag(network, Some(attachment)))
}

/// Whether a tag is that of a detached host end (see [`detaching_tag`]).
pub fn is_detaching(alias: &str) -> bool {
    parse_tag(alias).is_some() && alias.split(' ').any(|w| w == DETACHING)
}

/// The name an interface takes while its removal is under way: `vdel` and its index in 8 hex
/// digits, unique among the live interfaces of its namespace and never one plumb creates.
pub fn detaching_name(index: u32) -> String {
    format!("vdel{index:08x}")
}

/// Reads `(network, container id, ifname)` back from a host veth end's alias.
pub fn parse_tag(alias: &str) -> Option<(&str, Option<(&str, &str)>)> {
    let rest = alias.strip_prefix(TAG_PREFIX)?.strip_prefix("cni ")?;
    let mut net = None;
    let mut cid = None;
    let mut ifname = None;
    for w in rest.split(' ') {
        if let Some(v) = w.strip_prefix("net=") {
            net = Some(v);
        } else if let Some(v) = w.strip_prefix("cid=") {
            cid = Some(v);
        } else if let Some(v) = w.strip_prefix("if=") {
            ifname = Some(v);
        }
    }
    Some((net?, cid.zip(ifname)))
}

/// The host end's name: `veth` and 8 hex digits of a hash of the attachment, so DEL can find
/// it without reading the container's interface.
pub fn host_veth_name(network: &str, cid: &str, ifname: &str) -> String {
    let h = ownership::hash(&format!("cni/{network}/{cid}/{ifname}"));
    format!("veth{:08x}", h as u32)
}

/// The bridge's fixed, locally administered MAC.
pub fn bridge_mac(network: &str, bridge: &str) -> MacAddr {
    let h = ownership::hash(&format!("cni/{network}/{bridge}")).to_be_bytes();
    MacAddr([0x02, h[0], h[1], h[2], h[3], h[4]])
}

/// Equivalent to `ip link show dev NAME`: `None` if there is none.
pub fn by_name(sock: &mut NlSocket, name: &str) -> Result<Option<LinkState>, NetlinkError> {
    let mut msg = LinkMessage::default();
    msg.attributes.push(LinkAttribute::IfName(name.to_string()));
    match sock.get(RouteNetlinkMessage::GetLink(msg)) {
        Ok(RouteNetlinkMessage::NewLink(l)) => Ok(Some(link::parse(&l))),
        Ok(_) => Ok(None),
        Err(e) if e.errno() == Some(libc::ENODEV) => Ok(None),
        Err(e) => Err(e),
    }
}

/// One result per request, the first failure returned with what was being done.
pub fn exec(
    sock: &mut NlSocket,
    what: &str,
    reqs: Vec<crate::netlink::Request>,
) -> Result<(), CniError> {
    for r in sock.execute(reqs) {
        r.map_err(|e| CniError::netlink(what.to_string(), &e))?;
    }
    Ok(())
}

/// What the bridge looks like.
#[derive(Debug, Clone)]
pub struct BridgeWanted<'a> {
    /// Network name (in the tag and the MAC).
    pub network: &'a str,
    /// Bridge name.
    pub name: &'a str,
    /// MTU.
    pub mtu: Option<u32>,
    /// Promiscuous mode.
    pub promisc: bool,
    /// Gateway address to carry (`isGateway`).
    pub gateway: Option<IpNet>,
}

/// Equivalent to `ip link add NAME type bridge` (once), `ip link set NAME up [promisc on]` and
/// `ip addr add GATEWAY dev NAME` (once). An existing interface of that name that is not a
/// bridge is an error.
pub fn ensure_bridge(sock: &mut NlSocket, b: &BridgeWanted<'_>) -> Result<LinkState, CniError> {
    let what = format!("bridge {}", b.name);
    let found = by_name(sock, b.name).map_err(|e| CniError::netlink(&what, &e))?;
    let br = match found {
        Some(l) if l.kind == link::LinkKind::Bridge => l,
        Some(l) => {
            return Err(CniError::new(
                code::INTERNAL,
                format!(
                    "{} already exists and is a {}, not a bridge",
                    b.name, l.kind
                ),
            ))
        }
        None => {
            let spec = link::BridgeSpec {
                name: b.name,
                netns_fd: None,
                mtu: b.mtu,
                mac: bridge_mac(b.network, b.name),
                stp: false,
                group: 0,
            };
            let (m, f) = link::new_bridge(&spec);
            match sock.request(m, f) {
                Ok(()) => {}
                Err(e) if e.errno() == Some(libc::EEXIST) => {}
                Err(e) => return Err(CniError::netlink(format!("cannot create {what}"), &e)),
            }
            let change = LinkChange {
                alias: Some(tag(b.network, None)),
                up: Some(true),
                ..Default::default()
            };
            exec(
                sock,
                &format!("cannot set up {what}"),
                link::set(Target::Name(b.name), &change),
            )?;
            by_name(sock, b.name)
                .map_err(|e| CniError::netlink(&what, &e))?
                .ok_or_else(|| CniError::new(code::INTERNAL, format!("{what} vanished")))?
        }
    };
    if !br.up {
        let change = LinkChange {
            up: Some(true),
            ..Default::default()
        };
        exec(
            sock,
            &format!("cannot set up {what}"),
            link::set(Target::Index(br.index), &change),
        )?;
    }
    if b.promisc {
        let mut msg = LinkMessage::default();
        msg.header.index = br.index;
        msg.header.flags = LinkFlags::Promisc;
        msg.header.change_mask = LinkFlags::Promisc;
        exec(
            sock,
            &format!("cannot set {what} promiscuous"),
            vec![(RouteNetlinkMessage::NewLink(msg), 0)],
        )?;
    }
    if let Some(gw) = b.gateway {
        let (m, f) = addr::add(br.index, &gw);
        match sock.request(m, f) {
            Ok(()) => {}
            Err(e) if e.errno() == Some(libc::EEXIST) => {}
            Err(e) => {
                return Err(CniError::netlink(
                    format!("cannot add gateway {gw} to {what}"),
                    &e,
                ))
            }
        }
    }
    Ok(br)
}

/// Equivalent to `bridge link set dev PORT hairpin on`.
pub fn hairpin(index: u32) -> crate::netlink::Request {
    let mut msg = LinkMessage::default();
    msg.header.index = index;
    msg.attributes.push(LinkAttribute::LinkInfo(vec![
        LinkInfo::PortKind(InfoPortKind::Bridge),
        LinkInfo::PortData(InfoPortData::BridgePort(vec![InfoBridgePort::HairpinMode(
            true,
        )])),
    ]));
    (RouteNetlinkMessage::NewLink(msg), 0)
}

/// Runs `f` inside the namespace `ns` with a netlink socket of that namespace, on a thread that
/// enters it and ends with the work.
pub fn in_netns<R: Send>(
    ns: &OwnedFd,
    f: impl FnOnce(&mut NlSocket) -> Result<R, CniError> + Send,
) -> Result<R, CniError> {
    std::thread::scope(|s| {
        s.spawn(|| {
            sys::setns_net(ns).map_err(|e| {
                CniError::new(code::INTERNAL, "cannot enter the container's namespace").details(e)
            })?;
            let mut sock = NlSocket::open()
                .map_err(|e| CniError::netlink("cannot open netlink in the container", &e))?;
            f(&mut sock)
        })
        .join()
        .unwrap_or_else(|_| Err(CniError::new(code::INTERNAL, "a worker thread panicked")))
    })
}

/// A netlink socket inside the namespace `ns`, opened on a thread that enters it and ends
/// (the socket stays bound to that namespace and is then used from the calling thread).
pub fn socket_in(ns: &OwnedFd) -> Result<NlSocket, CniError> {
    std::thread::scope(|s| {
        s.spawn(|| {
            sys::setns_net(ns).map_err(|e| {
                CniError::new(code::INTERNAL, "cannot enter the container's namespace").details(e)
            })?;
            NlSocket::open()
                .map_err(|e| CniError::netlink("cannot open netlink in the container", &e))
        })
        .join()
        .unwrap_or_else(|_| Err(CniError::new(code::INTERNAL, "a worker thread panicked")))
    })
}

/// Opens the container's namespace by path.
pub fn open_netns(path: &str) -> Result<OwnedFd, std::io::Error> {
    Ok(std::fs::File::open(path)?.into())
}

/// The container side of ADD: the interface up, its addresses, its routes (through it, via
/// their gateways). Returns the interface's MAC.
pub fn configure_container(
    sock: &mut NlSocket,
    ifname: &str,
    addrs: &[IpNet],
    routes: &[(IpNet, Option<IpAddr>)],
) -> Result<String, CniError> {
    let l = by_name(sock, ifname)
        .map_err(|e| CniError::netlink(format!("container interface {ifname}"), &e))?
        .ok_or_else(|| {
            CniError::new(
                code::INTERNAL,
                format!("container interface {ifname} was not created"),
            )
        })?;
    let mut reqs = link::set(
        Target::Index(l.index),
        &LinkChange {
            up: Some(true),
            // No IPv6 address wanted: no link-local address either (no probes, no multicast
            // reports flooded over the bridge).
            ipv6_addrgen_none: !addrs.iter().any(|a| a.addr().is_ipv6()),
            ..Default::default()
        },
    );
    reqs.extend(addrs.iter().map(|a| addr::add(l.index, a)));
    exec(
        sock,
        &format!("cannot configure {ifname} in the container"),
        reqs,
    )?;
    let reqs = routes
        .iter()
        .map(|(dst, via)| {
            route::add(
                &RouteSpec {
                    dst: *dst,
                    via: *via,
                    oif: Some(l.index),
                },
                ownership::RTPROT_PLUMB,
            )
        })
        .collect();
    exec(
        sock,
        &format!("cannot add routes through {ifname} in the container"),
        reqs,
    )?;
    Ok(l.mac.map(|m| m.to_string()).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_detaching_tag_still_names_its_attachment() {
        let t = detaching_tag("net1", ("c1", "eth0"));
        assert!(is_detaching(&t));
        assert_eq!(parse_tag(&t), Some(("net1", Some(("c1", "eth0")))));
        assert!(!is_detaching(&tag("net1", Some(("c1", "eth0")))));
        // Only plumb's tags count.
        assert!(!is_detaching("someone else's detaching"));
    }

    #[test]
    fn detaching_names_fit_the_kernel_and_are_not_host_ends() {
        for index in [1, 0x2a, u32::MAX] {
            let n = detaching_name(index);
            assert!(n.len() <= 15, "{n}");
            assert!(crate::model::names::IfName::new(&n).is_ok(), "{n}");
            assert_ne!(&n[..4], &host_veth_name("n", "c", "eth0")[..4]);
        }
        assert_eq!(detaching_name(0x2a), "vdel0000002a");
    }
}
