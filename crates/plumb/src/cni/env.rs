//! The plugin's environment (`CNI_COMMAND`, `CNI_CONTAINERID`, `CNI_NETNS`, `CNI_IFNAME`,
//! `CNI_ARGS`, `CNI_PATH`), validated as the reference library (`skel`) validates it: the
//! variables each verb requires (code 4), the container id pattern (code 3 when missing, 4 when
//! malformed), and the interface name (code 4).

use std::net::IpAddr;

use super::error::{code, CniError};

/// A verb.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    /// Attach a container.
    Add,
    /// Detach it.
    Del,
    /// Verify an attachment.
    Check,
    /// Report the versions spoken.
    Version,
    /// Is the plugin ready for ADDs.
    Status,
    /// Release what is not in the valid set.
    Gc,
}

impl Verb {
    fn parse(s: &str) -> Option<Verb> {
        Some(match s {
            "ADD" => Verb::Add,
            "DEL" => Verb::Del,
            "CHECK" => Verb::Check,
            "VERSION" => Verb::Version,
            "STATUS" => Verb::Status,
            "GC" => Verb::Gc,
            _ => return None,
        })
    }
}

/// The environment of one invocation.
#[derive(Debug, Clone)]
pub struct Env {
    /// The verb.
    pub verb: Verb,
    /// `CNI_CONTAINERID`.
    pub container_id: String,
    /// `CNI_NETNS`: the path of the container's network namespace.
    pub netns: String,
    /// `CNI_IFNAME`.
    pub ifname: String,
    /// `CNI_ARGS`, as `KEY=VALUE` pairs.
    pub args: Vec<(String, String)>,
    /// `CNI_PATH`.
    pub path: String,
}

/// Which variables a verb requires (the reference library's table).
fn required(verb: Verb) -> &'static [&'static str] {
    match verb {
        Verb::Add | Verb::Check => &["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_PATH"],
        Verb::Del => &["CNI_CONTAINERID", "CNI_IFNAME", "CNI_PATH"],
        Verb::Gc | Verb::Status => &["CNI_PATH"],
        Verb::Version => &[],
    }
}

impl Env {
    /// Reads the environment through `get` (an empty variable counts as missing).
    pub fn read(get: impl Fn(&str) -> Option<String>) -> Result<Env, CniError> {
        let var = |k: &str| get(k).filter(|v| !v.is_empty()).unwrap_or_default();
        let cmd = var("CNI_COMMAND");
        if cmd.is_empty() {
            return Err(CniError::new(
                code::INVALID_ENVIRONMENT,
                "required env variables [CNI_COMMAND] missing",
            ));
        }
        let verb = Verb::parse(&cmd).ok_or_else(|| {
            CniError::new(
                code::INVALID_ENVIRONMENT,
                format!("unknown CNI_COMMAND: {cmd}"),
            )
        })?;
        let missing: Vec<&str> = required(verb)
            .iter()
            .copied()
            .filter(|k| var(k).is_empty())
            .collect();
        if !missing.is_empty() {
            return Err(CniError::new(
                code::INVALID_ENVIRONMENT,
                format!("required env variables [{}] missing", missing.join(",")),
            ));
        }
        Ok(Env {
            verb,
            container_id: var("CNI_CONTAINERID"),
            netns: var("CNI_NETNS"),
            ifname: var("CNI_IFNAME"),
            args: parse_args(&var("CNI_ARGS")),
            path: var("CNI_PATH"),
        })
    }

    /// The container id and interface name checks, for the verbs that name one attachment.
    pub fn validate_attachment(&self) -> Result<(), CniError> {
        valid_container_id(&self.container_id)?;
        valid_ifname(&self.ifname)
    }

    /// The addresses `CNI_ARGS` asks for (`IP=A[,B]`).
    pub fn requested_ips(&self) -> Result<Vec<IpAddr>, CniError> {
        let mut out = Vec::new();
        for (k, v) in &self.args {
            if k == "IP" {
                for s in v.split(',').filter(|s| !s.is_empty()) {
                    out.push(s.trim().parse().map_err(|_| {
                        CniError::new(
                            code::INVALID_ENVIRONMENT,
                            format!("CNI_ARGS IP={s} is not an IP address"),
                        )
                    })?);
                }
            }
        }
        Ok(out)
    }

    /// Opens the container's namespace (`CNI_NETNS`); code 3 (unknown container) if it cannot be.
    pub fn open_netns(&self) -> Result<std::os::fd::OwnedFd, CniError> {
        super::link::open_netns(&self.netns).map_err(|e| {
            CniError::new(
                code::UNKNOWN_CONTAINER,
                format!("cannot open netns {}", self.netns),
            )
            .details(e)
        })
    }

    /// The container interface's MAC `CNI_ARGS` asks for (`MAC=`), as it is written.
    pub fn requested_mac(&self) -> Option<&str> {
        self.args
            .iter()
            .rev()
            .find(|(k, v)| k == "MAC" && !v.is_empty())
            .map(|(_, v)| v.as_str())
    }
}

/// `K1=V1;K2=V2`: pairs without `=` are ignored.
fn parse_args(s: &str) -> Vec<(String, String)> {
    s.split(';')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The reference library's container id rule: present (code 3), and
/// `^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$` (code 4).
pub fn valid_container_id(id: &str) -> Result<(), CniError> {
    if id.is_empty() {
        return Err(CniError::new(
            code::UNKNOWN_CONTAINER,
            "missing containerID",
        ));
    }
    let mut c = id.chars();
    let first = c.next().is_some_and(|c| c.is_ascii_alphanumeric());
    if !first || !c.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')) {
        return Err(CniError::new(
            code::INVALID_ENVIRONMENT,
            "invalid characters in containerID",
        )
        .details(id));
    }
    Ok(())
}

/// The reference library's interface name rule (code 4): not empty, at most 15 bytes, not `.`
/// or `..`, no `/`, `:` or whitespace.
pub fn valid_ifname(name: &str) -> Result<(), CniError> {
    let bad = |msg: &str| Err(CniError::new(code::INVALID_ENVIRONMENT, msg).details(name));
    if name.is_empty() {
        return bad("interface name is empty");
    }
    if name.len() > 15 {
        return bad("interface name is too long");
    }
    if name == "." || name == ".." {
        return bad("interface name is . or ..");
    }
    if name
        .chars()
        .any(|c| c == '/' || c == ':' || c.is_whitespace())
    {
        return bad("interface name contains / or : or whitespace characters");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &[(&str, &str)]) -> Result<Env, CniError> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Env::read(|k| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()))
    }

    #[test]
    fn add_without_netns_and_path_is_code_4_naming_both() {
        let e = env(&[
            ("CNI_COMMAND", "ADD"),
            ("CNI_CONTAINERID", "c1"),
            ("CNI_IFNAME", "eth0"),
        ])
        .unwrap_err();
        assert_eq!(e.code, 4);
        assert_eq!(e.msg, "required env variables [CNI_NETNS,CNI_PATH] missing");
    }

    #[test]
    fn del_does_not_require_netns() {
        let e = env(&[
            ("CNI_COMMAND", "DEL"),
            ("CNI_CONTAINERID", "c1"),
            ("CNI_IFNAME", "eth0"),
            ("CNI_PATH", "/x"),
        ])
        .unwrap();
        assert_eq!(e.verb, Verb::Del);
    }

    #[test]
    fn container_id_and_ifname_rules() {
        assert_eq!(valid_container_id("").unwrap_err().code, 3);
        assert_eq!(valid_container_id("-abc").unwrap_err().code, 4);
        assert_eq!(valid_container_id("a/b").unwrap_err().code, 4);
        assert!(valid_container_id("abc_1.2-3").is_ok());
        assert!(valid_ifname("eth0").is_ok());
        assert!(valid_ifname("a23456789012345").is_ok());
        for bad in ["a234567890123456", "a/b", "a:b", "a b", "..", ""] {
            assert_eq!(valid_ifname(bad).unwrap_err().code, 4, "{bad}");
        }
    }

    #[test]
    fn cni_args_ip_is_read() {
        let e = env(&[
            ("CNI_COMMAND", "VERSION"),
            ("CNI_ARGS", "IgnoreUnknown=1;K8S_POD_NAME=x;IP=10.1.0.9"),
        ])
        .unwrap();
        assert_eq!(
            e.requested_ips().unwrap(),
            vec!["10.1.0.9".parse::<IpAddr>().unwrap()]
        );
    }
}
