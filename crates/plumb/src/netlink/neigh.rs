//! Neighbour (ARP / NDP) entries: how many a namespace holds (`ip neigh | wc -l`).

use netlink_packet_route::neighbour::NeighbourMessage;
use netlink_packet_route::RouteNetlinkMessage;

use super::{NetlinkError, NlSocket};

/// The number of neighbour entries of the socket's namespace, every family (one dump).
pub fn count(sock: &mut NlSocket) -> Result<usize, NetlinkError> {
    Ok(sock
        .dump_map(
            RouteNetlinkMessage::GetNeighbour(NeighbourMessage::default()),
            |m| matches!(m, RouteNetlinkMessage::NewNeighbour(_)).then_some(()),
        )?
        .len())
}
