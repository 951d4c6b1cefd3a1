//! IPAM types other than `host-local`: delegated, as the CNI spec says, to the IPAM plugin of
//! that name found in `CNI_PATH`, run with the same environment (`CNI_COMMAND` and the rest)
//! and the same network configuration on stdin. This is the one process plumb starts, and
//! only in plugin mode: the spec makes the IPAM plugin the runtime's choice, not plumb's.
//!
//! The addresses a delegated IPAM hands out are also reserved in plumb's own store (a range of
//! exactly that address), so DEL, CHECK and GC find an attachment's addresses the same way
//! whichever IPAM gave them; DEL and CHECK then run the IPAM plugin's DEL and CHECK as well.

use std::io::Write;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use ipnet::IpNet;

use super::env::Env;
use super::error::{code, CniError};

/// Whether `kind` (`ipam.type`) is delegated: anything but plumb's built-in `host-local`.
pub fn is_delegated(kind: &str) -> bool {
    !matches!(kind, "" | "host-local")
}

/// The IPAM plugin's executable: the first `CNI_PATH` directory that has a file of that name.
fn find(env: &Env, kind: &str) -> Result<PathBuf, CniError> {
    if kind.contains('/') || kind == "." || kind == ".." {
        return Err(CniError::config(format!(
            "ipam type {kind:?} is not a plugin name"
        )));
    }
    env.path
        .split(':')
        .filter(|d| !d.is_empty())
        .map(|d| PathBuf::from(d).join(kind))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            CniError::new(
                code::INTERNAL,
                format!("failed to find plugin {kind:?} in path [{}]", env.path),
            )
        })
}

/// Runs the IPAM plugin for `verb` with `stdin`; its stdout as JSON (`Null` when empty), or
/// its error with the code it gave.
pub fn run(env: &Env, kind: &str, verb: &str, stdin: &[u8]) -> Result<serde_json::Value, CniError> {
    let bin = find(env, kind)?;
    let mut child = Command::new(&bin)
        .env("CNI_COMMAND", verb)
        .env("CNI_CONTAINERID", &env.container_id)
        .env("CNI_NETNS", &env.netns)
        .env("CNI_IFNAME", &env.ifname)
        .env("CNI_PATH", &env.path)
        .env(
            "CNI_ARGS",
            env.args
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(";"),
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| CniError::io(format!("cannot run IPAM plugin {}", bin.display()), &e))?;
    if let Some(mut i) = child.stdin.take() {
        // A plugin that exits without reading its configuration closes the pipe: its exit
        // status says what happened.
        let _ = i.write_all(stdin);
    }
    let out = child
        .wait_with_output()
        .map_err(|e| CniError::io(format!("IPAM plugin {}", bin.display()), &e))?;
    let json: serde_json::Value = if out.stdout.iter().all(u8::is_ascii_whitespace) {
        serde_json::Value::Null
    } else {
        serde_json::from_slice(&out.stdout).map_err(|e| {
            CniError::new(
                code::DECODING_FAILURE,
                format!("IPAM plugin {kind} printed something that is not JSON"),
            )
            .details(e)
        })?
    };
    if out.status.success() {
        return Ok(json);
    }
    let c = json
        .get("code")
        .and_then(serde_json::Value::as_u64)
        .map_or(code::INTERNAL, |c| c as u32);
    let msg = json
        .get("msg")
        .and_then(serde_json::Value::as_str)
        .unwrap_or("failed");
    let mut e = CniError::new(c, format!("IPAM plugin {kind} {verb}: {msg}"));
    if let Some(d) = json.get("details").and_then(serde_json::Value::as_str) {
        e = e.details(d);
    }
    Err(e)
}

/// ADD through the IPAM plugin: the addresses it gave, each with its gateway.
pub fn add(env: &Env, kind: &str, stdin: &[u8]) -> Result<Vec<(IpNet, Option<IpAddr>)>, CniError> {
    let r = run(env, kind, "ADD", stdin)?;
    let ips = r
        .get("ips")
        .and_then(serde_json::Value::as_array)
        .ok_or_else(|| {
            CniError::new(
                code::DECODING_FAILURE,
                format!("IPAM plugin {kind} returned no ips"),
            )
        })?;
    ips.iter()
        .map(|ip| {
            let address: IpNet = ip
                .get("address")
                .and_then(serde_json::Value::as_str)
                .and_then(|a| a.parse().ok())
                .ok_or_else(|| {
                    CniError::new(
                        code::DECODING_FAILURE,
                        format!("IPAM plugin {kind} returned an address plumb cannot read: {ip}"),
                    )
                })?;
            let gateway = ip
                .get("gateway")
                .and_then(serde_json::Value::as_str)
                .and_then(|g| g.parse().ok());
            Ok((address, gateway))
        })
        .collect()
}
