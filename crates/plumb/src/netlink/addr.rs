//! Addresses (`ip addr`).

use std::net::IpAddr;

use ipnet::IpNet;
use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL};
use netlink_packet_route::address::{AddressAttribute, AddressFlags, AddressMessage};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use super::{NetlinkError, NlSocket};

/// One address on an interface, as `RTM_NEWADDR` describes it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AddrState {
    /// The interface's index.
    pub index: u32,
    /// Address and prefix length.
    pub addr: IpNet,
}

fn message(index: u32, net: &IpNet) -> AddressMessage {
    let mut msg = AddressMessage::default();
    msg.header.index = index;
    msg.header.prefix_len = net.prefix_len();
    msg.header.family = match net {
        IpNet::V4(_) => AddressFamily::Inet,
        IpNet::V6(_) => AddressFamily::Inet6,
    };
    msg.attributes.push(AddressAttribute::Local(net.addr()));
    msg.attributes.push(AddressAttribute::Address(net.addr()));
    msg
}

/// Equivalent to `ip addr add ADDR/LEN dev DEV` (IPv6 with `nodad`: a lab's addresses are
/// unique by construction, and waiting for duplicate detection only delays the first packet).
pub fn add(index: u32, net: &IpNet) -> (RouteNetlinkMessage, u16) {
    let mut msg = message(index, net);
    if let IpNet::V4(v4) = net {
        if v4.prefix_len() < 31 {
            msg.attributes
                .push(AddressAttribute::Broadcast(v4.broadcast()));
        }
    } else {
        msg.attributes
            .push(AddressAttribute::Flags(AddressFlags::Nodad));
    }
    (
        RouteNetlinkMessage::NewAddress(msg),
        NLM_F_CREATE | NLM_F_EXCL,
    )
}

/// Equivalent to `ip addr del ADDR/LEN dev DEV`.
pub fn delete(index: u32, net: &IpNet) -> (RouteNetlinkMessage, u16) {
    (RouteNetlinkMessage::DelAddress(message(index, net)), 0)
}

/// Equivalent to `ip addr show`.
pub fn dump(sock: &mut NlSocket) -> Result<Vec<AddrState>, NetlinkError> {
    sock.dump_map(
        RouteNetlinkMessage::GetAddress(AddressMessage::default()),
        |m| match m {
            RouteNetlinkMessage::NewAddress(a) => parse(&a),
            _ => None,
        },
    )
}

/// Decodes a `RTM_NEWADDR` into plumb's view of an address (`IFA_LOCAL`, or `IFA_ADDRESS` for
/// an address without a local one); `None` if it carries neither.
pub fn parse(a: &AddressMessage) -> Option<AddrState> {
    let mut ip: Option<IpAddr> = None;
    for attr in &a.attributes {
        match attr {
            AddressAttribute::Local(l) => ip = Some(*l),
            AddressAttribute::Address(x) if ip.is_none() => ip = Some(*x),
            _ => {}
        }
    }
    let net = IpNet::new(ip?, a.header.prefix_len).ok()?;
    Some(AddrState {
        index: a.header.index,
        addr: net,
    })
}
