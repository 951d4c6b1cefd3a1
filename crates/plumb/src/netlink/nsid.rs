//! Namespace ids (`ip netns list-id`): the numbers by which one namespace names others.
//!
//! An nsid is an alias in the viewer's own table, not an identity; the kernel allocates them
//! lazily (reporting a veth whose peer is elsewhere allocates one). Asking for the id of a
//! namespace by its fd never allocates one. With an nsid, a socket in the host can read objects
//! of another namespace (`IFLA_TARGET_NETNSID`) without entering it.

use std::os::fd::RawFd;

use netlink_packet_route::link::{LinkAttribute, LinkExtentMask, LinkMessage};
use netlink_packet_route::nsid::{NsidAttribute, NsidMessage};
use netlink_packet_route::RouteNetlinkMessage;

use super::link::{self, LinkState};
use super::{NetlinkError, NlSocket};

/// The nsid the socket's namespace has for each namespace in `fds` (`None`: none assigned),
/// pipelined. Equivalent to `ip netns list-id` restricted to those namespaces.
pub fn ids_of(sock: &mut NlSocket, fds: &[RawFd]) -> Vec<Result<Option<i32>, NetlinkError>> {
    let msgs = fds
        .iter()
        .map(|&fd| {
            let mut m = NsidMessage::default();
            m.attributes.push(NsidAttribute::Fd(fd as u32));
            RouteNetlinkMessage::GetNsId(m)
        })
        .collect();
    sock.get_many_map(msgs, |m| {
        Ok(match m {
            RouteNetlinkMessage::NewNsId(n) => n.attributes.iter().find_map(|a| match a {
                NsidAttribute::Id(id) if *id >= 0 => Some(*id),
                _ => None,
            }),
            _ => None,
        })
    })
}

/// Interface `index` of each namespace in `nsids` (of the socket's namespace), read through
/// the socket without entering them (`IFLA_TARGET_NETNSID`), pipelined. `None` where there is
/// no such interface.
pub fn link_in_each(
    sock: &mut NlSocket,
    nsids: &[i32],
    index: u32,
) -> Vec<Result<Option<LinkState>, NetlinkError>> {
    let msgs = nsids
        .iter()
        .map(|&id| {
            let mut m = LinkMessage::default();
            m.header.index = index;
            m.attributes.push(LinkAttribute::IfNetnsId(id));
            m.attributes
                .push(LinkAttribute::ExtMask(vec![LinkExtentMask::SkipStats]));
            RouteNetlinkMessage::GetLink(m)
        })
        .collect();
    sock.get_many_map(msgs, |m| {
        Ok(match m {
            RouteNetlinkMessage::NewLink(l) => Some(link::parse(&l)),
            _ => None,
        })
    })
    .into_iter()
    .map(|r| match r {
        Err(e) if e.errno() == Some(libc::ENODEV) => Ok(None),
        other => other,
    })
    .collect()
}
