//! The netlink layer's error.

use std::io;

/// A netlink request failed, or the socket did.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NetlinkError {
    /// Opening or using the socket failed.
    #[error("netlink {op}: {source}")]
    Socket {
        /// `open`, `send`, `recv`.
        op: &'static str,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The kernel refused a request.
    #[error("{errno}{}", ext.as_deref().map(|m| format!(" ({m})")).unwrap_or_default())]
    Kernel {
        /// The errno, typed (`raw_os_error()` gives the number).
        #[source]
        errno: io::Error,
        /// The kernel's extended-ack message, if it sent one.
        ext: Option<String>,
    },
    /// A reply could not be decoded.
    #[error("cannot decode a netlink reply: {0}")]
    Decode(String),
    /// A dump was interrupted by concurrent changes more times than plumb retries.
    #[error("the kernel's table kept changing while it was read ({0} attempts)")]
    DumpInterrupted(usize),
}

impl NetlinkError {
    /// The errno of a kernel refusal or socket failure.
    pub fn errno(&self) -> Option<i32> {
        match self {
            NetlinkError::Kernel { errno, .. } | NetlinkError::Socket { source: errno, .. } => {
                errno.raw_os_error()
            }
            NetlinkError::Decode(_) => None,
            NetlinkError::DumpInterrupted(_) => Some(libc::EINTR),
        }
    }

    pub(crate) fn kernel(errno: i32, ext: Option<String>) -> Self {
        NetlinkError::Kernel {
            errno: io::Error::from_raw_os_error(errno),
            ext,
        }
    }
}
