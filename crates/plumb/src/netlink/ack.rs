//! Netlink message framing and acknowledgements, read by hand: the header, `NLMSG_ERROR` (an
//! ack or a refusal, with the kernel's extended-ack message) and `NLMSG_DONE`.
//!
//! Layout (`include/uapi/linux/netlink.h`): an error message is `struct nlmsgerr` — the errno
//! (negative, 0 for an ack) and the header of the request it answers, followed by the rest of
//! that request unless the kernel capped it (`NLM_F_CAPPED`), followed by extended-ack
//! attributes when `NLM_F_ACK_TLVS` is set. Each message says which by its own flags.

/// `NLMSG_ERROR` from `include/uapi/linux/netlink.h`.
pub const NLMSG_ERROR: u16 = 2;
/// `NLMSG_DONE` from `include/uapi/linux/netlink.h`.
pub const NLMSG_DONE: u16 = 3;
/// `NLM_F_CAPPED`: the error echoes only the request's header.
const NLM_F_CAPPED: u16 = 0x100;
/// `NLM_F_ACK_TLVS`: extended-ack attributes follow.
const NLM_F_ACK_TLVS: u16 = 0x200;
/// `NLMSGERR_ATTR_MSG`: the kernel's explanation, a NUL-terminated string.
const NLMSGERR_ATTR_MSG: u16 = 1;
/// `sizeof(struct nlmsghdr)`.
const HDRLEN: usize = 16;

/// A netlink message header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// `nlmsg_len`: the message's length, header included.
    pub len: u32,
    /// `nlmsg_type`.
    pub kind: u16,
    /// `nlmsg_flags`.
    pub flags: u16,
    /// `nlmsg_seq`.
    pub seq: u32,
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

fn header(b: &[u8]) -> Option<Header> {
    Some(Header {
        len: u32_at(b, 0)?,
        kind: u16_at(b, 4)?,
        flags: u16_at(b, 6)?,
        seq: u32_at(b, 8)?,
    })
}

/// The messages in one datagram, each with its header and its bytes (header included). Stops at
/// the first malformed length.
pub fn messages(buf: &[u8]) -> impl Iterator<Item = (Header, &[u8])> {
    let mut off = 0;
    std::iter::from_fn(move || {
        let rest = buf.get(off..)?;
        let h = header(rest)?;
        let len = h.len as usize;
        if len < HDRLEN || len > rest.len() {
            return None;
        }
        off += align4(len);
        Some((h, &rest[..len]))
    })
}

/// What a message says about a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ack {
    /// `NLMSG_ERROR`: code 0 is an ack, a negative code a refusal.
    Error {
        /// The request's sequence number.
        seq: u32,
        /// 0 or a negative errno.
        code: i32,
        /// The kernel's explanation.
        ext: Option<String>,
    },
    /// `NLMSG_DONE`, the end of a dump: code 0, or a negative errno if the dump failed.
    Done {
        /// 0 or a negative errno.
        code: i32,
        /// The kernel's explanation of a failed dump.
        ext: Option<String>,
    },
    /// Anything else (a dump's data).
    Other,
}

/// Decodes one message.
pub fn decode(h: Header, bytes: &[u8]) -> Ack {
    match h.kind {
        NLMSG_ERROR => {
            let code = u32_at(bytes, HDRLEN).map_or(-libc::EBADMSG, |c| c as i32);
            Ack::Error {
                seq: h.seq,
                code,
                ext: ext_ack_message(h.flags, bytes),
            }
        }
        NLMSG_DONE => Ack::Done {
            code: u32_at(bytes, HDRLEN).map_or(0, |c| c as i32),
            // A failed dump's NLMSG_DONE carries its extended-ack attributes right after the
            // error code (there is no echoed request).
            ext: if h.flags & NLM_F_ACK_TLVS != 0 {
                tlv_message(bytes.get(HDRLEN + 4..).unwrap_or_default())
            } else {
                None
            },
        },
        _ => Ack::Other,
    }
}

/// Decodes every message of a datagram.
pub fn iter(buf: &[u8]) -> impl Iterator<Item = Ack> + '_ {
    messages(buf).map(|(h, b)| decode(h, b))
}

/// The extended-ack text of an error message, located by the message's own flags.
fn ext_ack_message(flags: u16, msg: &[u8]) -> Option<String> {
    if flags & NLM_F_ACK_TLVS == 0 {
        return None;
    }
    // struct nlmsgerr: int error; struct nlmsghdr msg; then the request's payload unless capped.
    let echoed = HDRLEN + 4;
    let tlvs = if flags & NLM_F_CAPPED != 0 {
        echoed + HDRLEN
    } else {
        echoed + align4(u32_at(msg, echoed)? as usize)
    };
    tlv_message(msg.get(tlvs..)?)
}

/// The `NLMSGERR_ATTR_MSG` among extended-ack attributes.
fn tlv_message(mut rest: &[u8]) -> Option<String> {
    while rest.len() >= 4 {
        let len = u16_at(rest, 0)? as usize;
        let kind = u16_at(rest, 2)? & 0x3fff;
        if len < 4 || len > rest.len() {
            return None;
        }
        if kind == NLMSGERR_ATTR_MSG {
            let text = rest[4..len].split(|b| *b == 0).next().unwrap_or_default();
            return Some(String::from_utf8_lossy(text).into_owned());
        }
        rest = rest.get(align4(len)..)?;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An error message as the kernel builds it: header, errno, the echoed request (`payload`
    /// bytes after its header, unless capped), then a `NLMSGERR_ATTR_MSG`.
    fn error_msg(flags: u16, code: i32, payload: &[u8], text: Option<&str>) -> Vec<u8> {
        let mut req = Vec::new();
        req.extend_from_slice(&((HDRLEN + payload.len()) as u32).to_ne_bytes());
        req.extend_from_slice(&16u16.to_ne_bytes()); // RTM_NEWLINK
        req.extend_from_slice(&0x605u16.to_ne_bytes());
        req.extend_from_slice(&7u32.to_ne_bytes());
        req.extend_from_slice(&0u32.to_ne_bytes());
        let mut body = Vec::new();
        body.extend_from_slice(&code.to_ne_bytes());
        body.extend_from_slice(&req);
        if flags & NLM_F_CAPPED == 0 {
            body.extend_from_slice(payload);
            while body.len() % 4 != 0 {
                body.push(0);
            }
        }
        if let Some(t) = text {
            let mut a = t.as_bytes().to_vec();
            a.push(0);
            let len = 4 + a.len();
            body.extend_from_slice(&(len as u16).to_ne_bytes());
            body.extend_from_slice(&NLMSGERR_ATTR_MSG.to_ne_bytes());
            body.extend_from_slice(&a);
            while body.len() % 4 != 0 {
                body.push(0);
            }
        }
        let mut out = Vec::new();
        out.extend_from_slice(&((HDRLEN + body.len()) as u32).to_ne_bytes());
        out.extend_from_slice(&NLMSG_ERROR.to_ne_bytes());
        out.extend_from_slice(&flags.to_ne_bytes());
        out.extend_from_slice(&7u32.to_ne_bytes());
        out.extend_from_slice(&0u32.to_ne_bytes());
        out.extend_from_slice(&body);
        out
    }

    #[test]
    fn ext_ack_is_found_in_capped_and_uncapped_errors() {
        let payload = [1u8, 2, 3, 4, 5, 6];
        for flags in [NLM_F_CAPPED | NLM_F_ACK_TLVS, NLM_F_ACK_TLVS] {
            let m = error_msg(flags, -libc::EEXIST, &payload, Some("File exists"));
            let acks: Vec<Ack> = iter(&m).collect();
            assert_eq!(
                acks,
                vec![Ack::Error {
                    seq: 7,
                    code: -libc::EEXIST,
                    ext: Some("File exists".into())
                }],
                "flags {flags:#x}"
            );
        }
    }

    #[test]
    fn ext_ack_is_none_without_ack_tlvs_flag() {
        let m = error_msg(NLM_F_CAPPED, -libc::EINVAL, &[], None);
        assert_eq!(
            iter(&m).collect::<Vec<_>>(),
            vec![Ack::Error {
                seq: 7,
                code: -libc::EINVAL,
                ext: None
            }]
        );
    }

    #[test]
    fn messages_stop_at_a_truncated_message() {
        let mut m = error_msg(NLM_F_CAPPED, 0, &[], None);
        let two = [m.clone(), m.clone()].concat();
        assert_eq!(messages(&two).count(), 2);
        m.truncate(m.len() - 2);
        assert_eq!(messages(&m).count(), 0);
    }

    #[test]
    fn done_carries_its_code() {
        let mut m = Vec::new();
        m.extend_from_slice(&20u32.to_ne_bytes());
        m.extend_from_slice(&NLMSG_DONE.to_ne_bytes());
        m.extend_from_slice(&2u16.to_ne_bytes());
        m.extend_from_slice(&9u32.to_ne_bytes());
        m.extend_from_slice(&0u32.to_ne_bytes());
        m.extend_from_slice(&(-libc::EINTR).to_ne_bytes());
        assert_eq!(
            iter(&m).collect::<Vec<_>>(),
            vec![Ack::Done {
                code: -libc::EINTR,
                ext: None
            }]
        );
    }
}
