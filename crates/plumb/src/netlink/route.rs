//! Routes of the main table (`ip route`).

use std::net::IpAddr;

use ipnet::IpNet;
use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use super::{NetlinkError, NlSocket};

/// One route of the main table, as `RTM_NEWROUTE` describes it.
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

/// RT_TABLE_MAIN from `include/uapi/linux/rtnetlink.h`.
const RT_TABLE_MAIN: u8 = 254;

fn addr(ip: IpAddr) -> RouteAddress {
    match ip {
        IpAddr::V4(a) => RouteAddress::Inet(a),
        IpAddr::V6(a) => RouteAddress::Inet6(a),
    }
}

/// A route to install or remove.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteSpec {
    /// Destination (`0.0.0.0/0` for default).
    pub dst: IpNet,
    /// Gateway.
    pub via: Option<IpAddr>,
    /// Output interface index.
    pub oif: Option<u32>,
}

fn message(r: &RouteSpec, protocol: u8) -> RouteMessage {
    let mut msg = RouteMessage::default();
    msg.header = RouteHeader {
        address_family: match r.dst {
            IpNet::V4(_) => AddressFamily::Inet,
            IpNet::V6(_) => AddressFamily::Inet6,
        },
        destination_prefix_length: r.dst.prefix_len(),
        table: RT_TABLE_MAIN,
        protocol: RouteProtocol::from(protocol),
        scope: if r.via.is_some() {
            RouteScope::Universe
        } else {
            RouteScope::Link
        },
        kind: RouteType::Unicast,
        ..msg.header
    };
    if r.dst.prefix_len() > 0 {
        msg.attributes
            .push(RouteAttribute::Destination(addr(r.dst.network())));
    }
    if let Some(via) = r.via {
        msg.attributes.push(RouteAttribute::Gateway(addr(via)));
    }
    if let Some(oif) = r.oif {
        msg.attributes.push(RouteAttribute::Oif(oif));
    }
    msg
}

/// Equivalent to `ip route add DST [via GW] [dev DEV] proto PROTOCOL`.
pub fn add(r: &RouteSpec, protocol: u8) -> (RouteNetlinkMessage, u16) {
    (
        RouteNetlinkMessage::NewRoute(message(r, protocol)),
        NLM_F_CREATE | NLM_F_EXCL,
    )
}

/// Equivalent to `ip route replace DST [via GW] [dev DEV] proto PROTOCOL`: the route to `DST`
/// (same table and metric) is replaced in one step, so there is no instant without one.
pub fn replace(r: &RouteSpec, protocol: u8) -> (RouteNetlinkMessage, u16) {
    (
        RouteNetlinkMessage::NewRoute(message(r, protocol)),
        NLM_F_CREATE | NLM_F_REPLACE,
    )
}

/// Equivalent to `ip route del DST [via GW] [dev DEV] proto PROTOCOL`: the kernel deletes only a
/// route installed with that protocol, so plumb (which passes [`crate::ownership::RTPROT_PLUMB`])
/// can never delete another tool's route to the same destination.
pub fn delete(r: &RouteSpec, protocol: u8) -> (RouteNetlinkMessage, u16) {
    let mut msg = message(r, protocol);
    msg.header.scope = RouteScope::NoWhere;
    (RouteNetlinkMessage::DelRoute(msg), 0)
}

/// Equivalent to `ip route show table main` (both families).
pub fn dump(sock: &mut NlSocket) -> Result<Vec<RouteState>, NetlinkError> {
    sock.dump_map(
        RouteNetlinkMessage::GetRoute(RouteMessage::default()),
        |m| match m {
            RouteNetlinkMessage::NewRoute(r) => parse(&r),
            _ => None,
        },
    )
}

/// Decodes a `RTM_NEWROUTE` of the main table's unicast routes into plumb's view of a route;
/// `None` for any other table or type.
pub fn parse(r: &RouteMessage) -> Option<RouteState> {
    if r.header.table != RT_TABLE_MAIN || r.header.kind != RouteType::Unicast {
        return None;
    }
    let mut dst = None;
    let mut via = None;
    let mut oif = None;
    let mut table = u32::from(r.header.table);
    for a in &r.attributes {
        match a {
            RouteAttribute::Destination(RouteAddress::Inet(d)) => dst = Some(IpAddr::V4(*d)),
            RouteAttribute::Destination(RouteAddress::Inet6(d)) => dst = Some(IpAddr::V6(*d)),
            RouteAttribute::Gateway(RouteAddress::Inet(g)) => via = Some(IpAddr::V4(*g)),
            RouteAttribute::Gateway(RouteAddress::Inet6(g)) => via = Some(IpAddr::V6(*g)),
            RouteAttribute::Oif(o) => oif = Some(*o),
            RouteAttribute::Table(t) => table = *t,
            _ => {}
        }
    }
    if table != u32::from(RT_TABLE_MAIN) {
        return None;
    }
    let base = dst.unwrap_or(match r.header.address_family {
        AddressFamily::Inet6 => IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
        _ => IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
    });
    let dst = IpNet::new(base, r.header.destination_prefix_length).ok()?;
    Some(RouteState {
        dst,
        via,
        oif,
        protocol: u8::from(r.header.protocol),
    })
}

/// The kernel's answer to a route lookup (`ip route get`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteAnswer {
    /// The route's type: `Local` when the address is the namespace's own, `Unicast` when the
    /// packet leaves, `Unreachable`, `Blackhole`, `Prohibit`… when it is refused.
    pub kind: RouteType,
    /// The interface it leaves through.
    pub oif: Option<u32>,
    /// The gateway, if not on-link.
    pub via: Option<IpAddr>,
    /// The source address the namespace would choose.
    pub prefsrc: Option<IpAddr>,
}

/// Equivalent to `ip route get DST [from SRC] [iif DEV]`: the kernel's own decision, policy
/// rules included. With `iif`, the decision for a packet from `src` arriving on interface `iif`
/// (forwarding: refused with `EHOSTUNREACH` or `ENETUNREACH` when the namespace does not
/// forward IPv4).
pub fn get(
    sock: &mut NlSocket,
    dst: IpAddr,
    src: Option<IpAddr>,
    iif: Option<u32>,
) -> Result<RouteAnswer, NetlinkError> {
    let full = if dst.is_ipv4() { 32 } else { 128 };
    let mut msg = RouteMessage::default();
    msg.header.address_family = if dst.is_ipv4() {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    };
    msg.header.destination_prefix_length = full;
    msg.attributes.push(RouteAttribute::Destination(addr(dst)));
    if let Some(s) = src {
        msg.header.source_prefix_length = full;
        msg.attributes.push(RouteAttribute::Source(addr(s)));
    }
    if let Some(i) = iif {
        msg.attributes.push(RouteAttribute::Iif(i));
    }
    let answer = match sock.get(RouteNetlinkMessage::GetRoute(msg))? {
        RouteNetlinkMessage::NewRoute(r) => r,
        other => {
            return Err(NetlinkError::Decode(format!(
                "route get answered with {other:?}"
            )))
        }
    };
    let mut out = RouteAnswer {
        kind: answer.header.kind,
        oif: None,
        via: None,
        prefsrc: None,
    };
    let ip = |a: &RouteAddress| match a {
        RouteAddress::Inet(v) => Some(IpAddr::V4(*v)),
        RouteAddress::Inet6(v) => Some(IpAddr::V6(*v)),
        _ => None,
    };
    for a in &answer.attributes {
        match a {
            RouteAttribute::Oif(o) => out.oif = Some(*o),
            RouteAttribute::Gateway(g) => out.via = ip(g),
            RouteAttribute::PrefSource(p) => out.prefsrc = ip(p),
            _ => {}
        }
    }
    Ok(out)
}
