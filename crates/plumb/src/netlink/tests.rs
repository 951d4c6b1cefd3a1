//! Unit tests of the socket layer.

use super::*;
use netlink_packet_core::NLM_F_DUMP_INTR;
use netlink_packet_route::link::LinkMessage;

#[test]
fn replay_kind_classifies_creates_deletes_and_changes() {
    let m = RouteNetlinkMessage::NewLink(LinkMessage::default());
    assert_eq!(replay_kind(&m, NLM_F_CREATE | NLM_F_EXCL), Replay::Create);
    assert_eq!(replay_kind(&m, 0), Replay::Same);
    let d = RouteNetlinkMessage::DelLink(LinkMessage::default());
    assert_eq!(replay_kind(&d, 0), Replay::Delete);
}

/// A dump reply as the kernel sends it: one `RTM_NEWLINK` (flags as given) then `NLMSG_DONE`.
fn dump_datagram(seq: u32, flags: u16) -> Vec<u8> {
    let mut link = LinkMessage::default();
    link.header.index = 1;
    link.attributes
        .push(netlink_packet_route::link::LinkAttribute::IfName(
            "lo".into(),
        ));
    let mut header = NetlinkHeader::default();
    header.flags = flags;
    header.sequence_number = seq;
    let mut m = NetlinkMessage::new(
        header,
        NetlinkPayload::from(RouteNetlinkMessage::NewLink(link)),
    );
    m.finalize();
    let mut out = vec![0; m.buffer_len()];
    m.serialize(&mut out);
    // NLMSG_DONE with a 0 error code.
    let mut done = Vec::new();
    done.extend_from_slice(&20u32.to_ne_bytes());
    done.extend_from_slice(&NLMSG_DONE.to_ne_bytes());
    done.extend_from_slice(&(flags & NLM_F_DUMP_INTR | 2).to_ne_bytes());
    done.extend_from_slice(&seq.to_ne_bytes());
    done.extend_from_slice(&0u32.to_ne_bytes());
    done.extend_from_slice(&0i32.to_ne_bytes());
    out.extend_from_slice(&done);
    out
}

#[test]
fn dump_reader_collects_until_done_and_notices_dump_intr() {
    let mut r = DumpReader::new(5);
    assert!(r.feed(&dump_datagram(5, 2)).unwrap());
    assert_eq!(r.replies.len(), 1);
    assert!(!r.interrupted);
    let mut r = DumpReader::new(5);
    assert!(r.feed(&dump_datagram(5, 2 | NLM_F_DUMP_INTR)).unwrap());
    assert!(
        r.interrupted,
        "NLM_F_DUMP_INTR must make the dump be read again"
    );
    // Another request's messages are not part of this dump.
    let mut r = DumpReader::new(6);
    assert!(!r.feed(&dump_datagram(5, 2)).unwrap());
    assert!(r.replies.is_empty());
}

#[test]
fn errno_is_kept_typed() {
    let e = NetlinkError::kernel(libc::EEXIST, Some("File exists".into()));
    assert_eq!(e.errno(), Some(libc::EEXIST));
    assert!(e.to_string().contains("File exists"));
    assert!(is_gone_errno(libc::ENODEV));
    assert!(!is_gone_errno(libc::EPERM));
}
