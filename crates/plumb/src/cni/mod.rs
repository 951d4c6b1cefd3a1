//! plumb as a CNI plugin: the Container Network Interface protocol (configuration on stdin,
//! result on stdout, errors as `{cniVersion, code, msg, details}`), spec versions 0.3.0 to
//! 1.1.0, and a bridge network compatible with the reference `bridge` + `host-local` plugins,
//! mapped onto plumb's netlink and nf_tables layers. The only process it ever starts is the
//! IPAM plugin a configuration names when that is not `host-local` (`delegate`, as the spec
//! requires).
//!
//! Files: [`spec`] (versions, configuration, results), [`env`] (the environment, validated as
//! the reference library does), `delegate` (another IPAM plugin), [`error`] (the spec's error codes), [`ipam`] (the
//! host-local-compatible store), [`link`] (bridge, veth pair, addresses, routes), [`nat`]
//! (masquerade and port mappings as set and map elements), [`record`] (plumb's record of each
//! attachment), `add` and `teardown` (the verbs).
//!
//! Invariants:
//! - everything is tagged: the bridge's and the host veth end's alias read `plumb:cni net=NET`
//!   (the veth end adds `cid=… if=…`); routes carry plumb's route protocol; the nftables table
//!   is `inet plumb-cni-NET`; DEL and GC delete only interfaces whose tag names the attachment;
//! - one operation per network at a time: the IPAM store's lock (the same file `host-local`
//!   locks) is held for the whole of ADD, DEL, CHECK and GC, so concurrent ADDs never hand out
//!   an address twice and the bridge, its gateway and the table are made once;
//! - ADD undoes what it made when it fails after allocating (addresses released, veth deleted,
//!   table elements removed); DEL is idempotent and works when the namespace is gone.

mod add;
mod delegate;
pub mod env;
pub mod error;
pub mod ipam;
pub mod link;
pub mod nat;
pub mod record;
pub mod spec;
mod teardown;

use std::path::PathBuf;

pub use env::{Env, Verb};
pub use error::{code, CniError};
use spec::NetConf;

/// What the plugin prints on stdout and whether it succeeded (exit 0) or failed (exit 1).
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    /// The JSON to print, if any (STATUS, DEL and GC print nothing on success).
    pub stdout: Option<serde_json::Value>,
    /// Success.
    pub ok: bool,
}

/// The configuration's version, if stdin is a JSON object that names one plumb speaks (errors
/// are written in it); otherwise the newest.
fn reply_version(stdin: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(stdin)
        .ok()
        .and_then(|v| v.get("cniVersion")?.as_str().map(str::to_string))
        .filter(|v| spec::SUPPORTED_VERSIONS.contains(&v.as_str()))
        .unwrap_or_else(|| spec::LATEST.to_string())
}

/// Runs one invocation: the environment through `get`, the configuration in `stdin`.
pub fn run(get: impl Fn(&str) -> Option<String>, stdin: &[u8]) -> Reply {
    let version = reply_version(stdin);
    match dispatch(get, stdin) {
        Ok(out) => Reply {
            stdout: out,
            ok: true,
        },
        Err(e) => {
            tracing::debug!(code = e.code, "{e}");
            Reply {
                stdout: Some(e.to_json(&version)),
                ok: false,
            }
        }
    }
}

fn dispatch(
    get: impl Fn(&str) -> Option<String>,
    stdin: &[u8],
) -> Result<Option<serde_json::Value>, CniError> {
    let env = Env::read(get)?;
    if env.verb == Verb::Version {
        return Ok(Some(serde_json::json!({
            "cniVersion": reply_version(stdin),
            "supportedVersions": spec::SUPPORTED_VERSIONS,
        })));
    }
    let conf = NetConf::parse(stdin)?;
    spec::valid_network_name(&conf.name)?;
    if matches!(env.verb, Verb::Add | Verb::Del | Verb::Check) {
        env.validate_attachment()?;
    }
    spec::check_version(&conf.cni_version)?;
    let needs = |min: &str, verb: &str| {
        if spec::at_least(&conf.cni_version, min) {
            Ok(())
        } else {
            Err(CniError::new(
                code::INCOMPATIBLE_VERSION,
                format!("config version does not allow {verb}"),
            ))
        }
    };
    match env.verb {
        Verb::Check => needs("0.4.0", "CHECK")?,
        Verb::Status => needs("1.1.0", "STATUS")?,
        Verb::Gc => needs("1.1.0", "GC")?,
        _ => {}
    }
    let kind = conf.ipam.kind.as_str();
    let delegated = delegate::is_delegated(kind);
    // What the IPAM plugin itself has to say, for the verbs that are not ADD (ADD leases
    // inside `add`, which gives the lease back if it fails).
    let ipam = |verb: &str| -> Result<(), CniError> {
        if delegated {
            delegate::run(&env, kind, verb, stdin)?;
        }
        Ok(())
    };
    match env.verb {
        Verb::Add => add::add(&env, &conf, stdin).map(|r| Some(r.to_json(&conf.cni_version))),
        Verb::Del => {
            teardown::del(&env, &conf)?;
            ipam("DEL").map(|()| None)
        }
        Verb::Check => {
            teardown::check(&env, &conf)?;
            ipam("CHECK").map(|()| None)
        }
        // A delegated IPAM's pool is the plugin's to judge.
        Verb::Status if delegated => ipam("STATUS").map(|()| None),
        Verb::Status => teardown::status(&conf).map(|()| None),
        Verb::Gc => {
            teardown::gc(&conf)?;
            ipam("GC").map(|()| None)
        }
        Verb::Version => Ok(None),
    }
}

/// The network's IPAM store directory's parent (`ipam.dataDir`, or host-local's default).
fn data_dir(conf: &NetConf) -> PathBuf {
    PathBuf::from(
        conf.ipam
            .data_dir
            .clone()
            .unwrap_or_else(|| ipam::DEFAULT_DATA_DIR.to_string()),
    )
}

/// Help printed when plumb is started as `plumb-cni` without `CNI_COMMAND`, as the reference
/// plugins print theirs.
pub fn about() -> String {
    format!(
        "plumb CNI plugin (bridge network with host-local IPAM, ipMasq and portMappings)\nCNI protocol versions supported: {}",
        spec::SUPPORTED_VERSIONS.join(", ")
    )
}
