//! CNI errors: every failure a plugin reports carries one of the spec's error codes
//! (<https://www.cni.dev/docs/spec/#error>), a message, and details.

use std::io;

use crate::netlink::NetlinkError;
use crate::nftables::NftError;

/// The spec's well-known error codes (CNI spec, "Error" section), and the reference library's
/// code for everything else (999).
pub mod code {
    /// Incompatible CNI version.
    pub const INCOMPATIBLE_VERSION: u32 = 1;
    /// Unsupported field in network configuration.
    pub const UNSUPPORTED_FIELD: u32 = 2;
    /// Container unknown or does not exist.
    pub const UNKNOWN_CONTAINER: u32 = 3;
    /// Invalid necessary environment variables, like `CNI_COMMAND`, `CNI_CONTAINERID`.
    pub const INVALID_ENVIRONMENT: u32 = 4;
    /// I/O failure.
    pub const IO_FAILURE: u32 = 5;
    /// Failed to decode content.
    pub const DECODING_FAILURE: u32 = 6;
    /// Invalid network config.
    pub const INVALID_NETWORK_CONFIG: u32 = 7;
    /// Try again later.
    pub const TRY_AGAIN_LATER: u32 = 11;
    /// The plugin is not available (STATUS): here, the address pool is exhausted.
    pub const PLUGIN_NOT_AVAILABLE: u32 = 50;
    /// Anything else (the reference library's `ErrInternal`).
    pub const INTERNAL: u32 = 999;
}

/// A CNI failure: the code the runtime sees, what happened, and the details.
#[derive(Debug, thiserror::Error)]
#[error("{msg}{}", if details.is_empty() { String::new() } else { format!(": {details}") })]
pub struct CniError {
    /// The spec's code.
    pub code: u32,
    /// What failed.
    pub msg: String,
    /// Why (the underlying error, with its errno).
    pub details: String,
}

impl CniError {
    /// An error with `code` and `msg`.
    pub fn new(code: u32, msg: impl Into<String>) -> CniError {
        CniError {
            code,
            msg: msg.into(),
            details: String::new(),
        }
    }

    /// The same error with `details`.
    pub fn details(mut self, details: impl std::fmt::Display) -> CniError {
        self.details = details.to_string();
        self
    }

    /// A kernel request refused while doing `what`.
    pub fn netlink(what: impl Into<String>, e: &NetlinkError) -> CniError {
        CniError::new(code::INTERNAL, what).details(e)
    }

    /// An nf_tables transaction refused while doing `what`.
    pub fn nft(what: impl Into<String>, e: &NftError) -> CniError {
        CniError::new(code::INTERNAL, what).details(e)
    }

    /// A file operation failed while doing `what`.
    pub fn io(what: impl Into<String>, e: &io::Error) -> CniError {
        CniError::new(code::IO_FAILURE, what).details(e)
    }

    /// The network configuration is invalid.
    pub fn config(msg: impl Into<String>) -> CniError {
        CniError::new(code::INVALID_NETWORK_CONFIG, msg)
    }

    /// The error as the spec's JSON object, in the configuration's version.
    pub fn to_json(&self, version: &str) -> serde_json::Value {
        let mut v = serde_json::json!({
            "cniVersion": version,
            "code": self.code,
            "msg": self.msg,
        });
        if !self.details.is_empty() {
            v["details"] = self.details.clone().into();
        }
        v
    }
}
