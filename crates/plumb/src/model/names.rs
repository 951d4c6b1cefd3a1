//! Validated newtypes for the names the kernel and plumb accept.
//!
//! Every name is checked when a topology is loaded, so a user sees "interface name `…` is 17 bytes,
//! the kernel allows 15" before anything is created instead of `EINVAL` from netlink.

use std::fmt;

/// Why a name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NameError {
    /// The name is empty.
    #[error("{what} name is empty")]
    Empty {
        /// What kind of name ("interface", "namespace", "lab").
        what: &'static str,
    },
    /// The name is longer than the kernel allows.
    #[error("{what} name `{name}` is {len} bytes, the kernel allows {max}")]
    TooLong {
        /// What kind of name.
        what: &'static str,
        /// The offending name.
        name: String,
        /// Its length in bytes.
        len: usize,
        /// The maximum length.
        max: usize,
    },
    /// The name contains a character or sequence that is not allowed.
    #[error("{what} name `{name}` {reason}")]
    Invalid {
        /// What kind of name.
        what: &'static str,
        /// The offending name.
        name: String,
        /// What is wrong, as the end of a sentence.
        reason: &'static str,
    },
}

/// An interface name: 1 to 15 bytes (IFNAMSIZ - 1, `include/uapi/linux/if.h`), no `/`, no
/// whitespace, no `:`, not `.` or `..`. Mirrors the kernel's `dev_valid_name()`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct IfName(String);

/// IFNAMSIZ from `include/uapi/linux/if.h`, minus the terminating NUL.
pub const IFNAME_MAX: usize = 15;

impl IfName {
    /// Checks `name` against the kernel's rules for interface names.
    pub fn new(name: &str) -> Result<Self, NameError> {
        const WHAT: &str = "interface";
        if name.is_empty() {
            return Err(NameError::Empty { what: WHAT });
        }
        if name.len() > IFNAME_MAX {
            return Err(NameError::TooLong {
                what: WHAT,
                name: name.into(),
                len: name.len(),
                max: IFNAME_MAX,
            });
        }
        if name == "." || name == ".." {
            return Err(NameError::Invalid {
                what: WHAT,
                name: name.into(),
                reason: "is reserved",
            });
        }
        if name
            .chars()
            .any(|c| c == '/' || c == ':' || c == '\0' || c.is_whitespace())
        {
            return Err(NameError::Invalid {
                what: WHAT,
                name: name.into(),
                reason: "contains `/`, `:`, NUL or whitespace, which the kernel refuses",
            });
        }
        Ok(IfName(name.to_owned()))
    }

    /// The name as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for IfName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A network namespace name as iproute2 accepts it (`ip netns add NAME`): 1 to 255 bytes, no `/`,
/// not `.` or `..`, no NUL. It becomes the file `/run/netns/NAME`, so these rules are what keep a
/// name from escaping that directory.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct NsName(String);

/// NAME_MAX: the longest file name, and so the longest namespace name.
pub const NSNAME_MAX: usize = 255;

impl NsName {
    /// Checks `name` against the rules for namespace names.
    pub fn new(name: &str) -> Result<Self, NameError> {
        const WHAT: &str = "namespace";
        if name.is_empty() {
            return Err(NameError::Empty { what: WHAT });
        }
        if name.len() > NSNAME_MAX {
            return Err(NameError::TooLong {
                what: WHAT,
                name: name.into(),
                len: name.len(),
                max: NSNAME_MAX,
            });
        }
        if name == "." || name == ".." || name.contains("..") {
            return Err(NameError::Invalid {
                what: WHAT,
                name: name.into(),
                reason: "contains `..`, which would leave /run/netns",
            });
        }
        if name.contains('/') || name.contains('\0') {
            return Err(NameError::Invalid {
                what: WHAT,
                name: name.into(),
                reason: "contains `/` or NUL, which would leave /run/netns",
            });
        }
        Ok(NsName(name.to_owned()))
    }

    /// The name as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for NsName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A lab name: `[a-z0-9][a-z0-9-]{0,31}`. It tags every object the lab owns.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct LabName(String);

/// The longest lab name.
pub const LABNAME_MAX: usize = 32;

impl LabName {
    /// Checks `name` against `[a-z0-9][a-z0-9-]{0,31}`.
    pub fn new(name: &str) -> Result<Self, NameError> {
        const WHAT: &str = "lab";
        if name.is_empty() {
            return Err(NameError::Empty { what: WHAT });
        }
        if name.len() > LABNAME_MAX {
            return Err(NameError::TooLong {
                what: WHAT,
                name: name.into(),
                len: name.len(),
                max: LABNAME_MAX,
            });
        }
        let mut chars = name.chars();
        let first_ok = chars
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
        let rest_ok = chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !first_ok || !rest_ok {
            return Err(NameError::Invalid {
                what: WHAT,
                name: name.into(),
                reason:
                    "must be lowercase letters, digits and `-`, starting with a letter or digit",
            });
        }
        Ok(LabName(name.to_owned()))
    }

    /// The name as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for LabName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// FNV-1a, 64 bit: the one stable hash plumb derives names and identifiers from (generated
/// port names here; link groups, pair ids, bridge MACs and firewall versions in `ownership`).
/// Stable across runs and versions: changing it changes every derived name of every running lab.
pub fn stable_hash(bytes: &[u8]) -> u64 {
    const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;
    bytes.iter().fold(FNV_OFFSET, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(FNV_PRIME)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ifname_sixteen_bytes_is_refused_with_length() {
        let err = IfName::new("abcdefghijklmnop").unwrap_err();
        assert_eq!(
            err.to_string(),
            "interface name `abcdefghijklmnop` is 16 bytes, the kernel allows 15"
        );
    }

    #[test]
    fn ifname_fifteen_bytes_is_accepted() {
        assert!(IfName::new("abcdefghijklmno").is_ok());
    }

    #[test]
    fn ifname_slash_or_space_is_refused() {
        assert!(IfName::new("a/b").is_err());
        assert!(IfName::new("a b").is_err());
        assert!(IfName::new("..").is_err());
    }

    #[test]
    fn nsname_path_traversal_is_refused() {
        assert!(NsName::new("../etc").is_err());
        assert!(NsName::new("a/b").is_err());
        assert!(NsName::new("..").is_err());
        assert!(NsName::new("ok-name.1").is_ok());
    }

    #[test]
    fn labname_uppercase_is_refused() {
        assert!(LabName::new("Seed").is_err());
        assert!(LabName::new("-seed").is_err());
        assert!(LabName::new("seed-1").is_ok());
        assert!(LabName::new(&"a".repeat(33)).is_err());
    }
}
