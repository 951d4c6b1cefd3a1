//! Reading the answer to a dump.

use netlink_packet_core::{NetlinkMessage, NetlinkPayload, NLM_F_DUMP_INTR};
use netlink_packet_route::RouteNetlinkMessage;

use super::{ack, Ack, NetlinkError};

/// Collects the answer to one dump, datagram by datagram.
#[derive(Debug)]
pub struct DumpReader {
    seq: u32,
    /// The messages of the answer so far.
    pub replies: Vec<RouteNetlinkMessage>,
    /// The kernel marked a message `NLM_F_DUMP_INTR`: the table changed while it was read,
    /// so the answer mixes two states and must be read again.
    pub interrupted: bool,
}

impl DumpReader {
    /// A reader for the dump sent with sequence number `seq`.
    pub fn new(seq: u32) -> Self {
        DumpReader {
            seq,
            replies: Vec::new(),
            interrupted: false,
        }
    }

    /// Reads one datagram; `Ok(true)` once the dump is complete. Messages of other sequence
    /// numbers are ignored.
    pub fn feed(&mut self, datagram: &[u8]) -> Result<bool, NetlinkError> {
        for (hdr, bytes) in ack::messages(datagram) {
            if hdr.seq != self.seq {
                continue;
            }
            self.interrupted |= hdr.flags & NLM_F_DUMP_INTR != 0;
            match ack::decode(hdr, bytes) {
                Ack::Done { code: 0, .. } | Ack::Error { code: 0, .. } => return Ok(true),
                Ack::Done { code, ext } | Ack::Error { code, ext, .. } => {
                    return Err(NetlinkError::kernel(-code, ext))
                }
                Ack::Other => {
                    let m = NetlinkMessage::<RouteNetlinkMessage>::deserialize(bytes)
                        .map_err(|e| NetlinkError::Decode(e.to_string()))?;
                    if let NetlinkPayload::InnerMessage(inner) = m.payload {
                        self.replies.push(inner);
                    }
                }
            }
        }
        Ok(false)
    }
}
