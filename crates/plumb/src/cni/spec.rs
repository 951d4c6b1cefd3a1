//! The CNI specification's data: spec versions, the network configuration plumb's bridge
//! network reads (keys of the reference `bridge` and `host-local` plugins), and the result,
//! written in the version the configuration asks for.

use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::error::{code, CniError};

/// The spec versions plumb speaks, oldest first.
pub const SUPPORTED_VERSIONS: [&str; 5] = ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];

/// The newest version plumb speaks.
pub const LATEST: &str = "1.1.0";

/// Whether version `v` is at least `min` (both of the form `MAJOR.MINOR.PATCH`).
pub fn at_least(v: &str, min: &str) -> bool {
    fn parse(s: &str) -> (u32, u32, u32) {
        let mut it = s.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
        (
            it.next().unwrap_or(0),
            it.next().unwrap_or(0),
            it.next().unwrap_or(0),
        )
    }
    parse(v) >= parse(min)
}

/// Refuses a configuration version plumb does not speak (code 1).
pub fn check_version(v: &str) -> Result<(), CniError> {
    if SUPPORTED_VERSIONS.contains(&v) {
        Ok(())
    } else {
        Err(
            CniError::new(code::INCOMPATIBLE_VERSION, "incompatible CNI versions").details(
                format!("config is {v:?}, plugin supports {:?}", SUPPORTED_VERSIONS),
            ),
        )
    }
}

/// A route, as results and `ipam.routes` write it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    /// Destination.
    pub dst: IpNet,
    /// Gateway (for `ipam.routes`, the range's gateway when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gw: Option<IpAddr>,
}

/// One address range of `host-local` (`ipam.ranges[][]`, or the flat `ipam.subnet` form).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RangeConf {
    /// The subnet.
    pub subnet: Option<IpNet>,
    /// First address to hand out.
    pub range_start: Option<IpAddr>,
    /// Last address to hand out.
    pub range_end: Option<IpAddr>,
    /// The gateway (default: the subnet's first address).
    pub gateway: Option<IpAddr>,
}

/// `ipam`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IpamConf {
    /// `host-local` (or empty) for plumb's own IPAM.
    #[serde(rename = "type", default)]
    pub kind: String,
    /// The flat form of one range.
    #[serde(flatten)]
    pub range: RangeConf,
    /// Range sets: one address from each set.
    #[serde(default)]
    pub ranges: Vec<Vec<RangeConf>>,
    /// Routes to install in the container.
    #[serde(default)]
    pub routes: Vec<Route>,
    /// Where reservations are kept (default `/var/lib/cni/networks`).
    pub data_dir: Option<String>,
}

/// One port mapping (`runtimeConfig.portMappings`, the `portMappings` capability).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PortMapping {
    /// Port on the host.
    pub host_port: u16,
    /// Port in the container.
    pub container_port: u16,
    /// `tcp` or `udp`.
    #[serde(default = "tcp")]
    pub protocol: String,
    /// Only this host address (default: every local address).
    #[serde(default, rename = "hostIP", skip_serializing_if = "Option::is_none")]
    pub host_ip: Option<String>,
}

fn tcp() -> String {
    "tcp".into()
}

/// `runtimeConfig`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RuntimeConfig {
    /// Port mappings.
    #[serde(default)]
    pub port_mappings: Vec<PortMapping>,
    /// Requested addresses (`ips` capability), with or without a prefix length.
    #[serde(default)]
    pub ips: Vec<String>,
    /// The container interface's MAC (`mac` capability).
    #[serde(default)]
    pub mac: Option<String>,
}

/// `args.cni`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ArgsCni {
    /// Requested addresses.
    #[serde(default)]
    pub ips: Vec<String>,
    /// The container interface's MAC.
    #[serde(default)]
    pub mac: Option<String>,
}

/// `args`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Args {
    /// `args.cni`.
    #[serde(default)]
    pub cni: ArgsCni,
}

/// One attachment a runtime still uses (GC's valid set).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Attachment {
    /// Container id.
    #[serde(rename = "containerID")]
    pub container_id: String,
    /// Interface name in the container.
    pub ifname: String,
}

fn cni0() -> String {
    "cni0".into()
}

/// The network configuration on stdin.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetConf {
    /// Spec version of the configuration (and of the result).
    #[serde(default)]
    pub cni_version: String,
    /// Network name.
    #[serde(default)]
    pub name: String,
    /// Plugin type.
    #[serde(rename = "type", default)]
    pub kind: String,
    /// Bridge name.
    #[serde(default = "cni0")]
    pub bridge: String,
    /// Give the bridge the gateway address.
    #[serde(default)]
    pub is_gateway: bool,
    /// Route the container's default route via the gateway (implies `isGateway`).
    #[serde(default)]
    pub is_default_gateway: bool,
    /// Masquerade the container's traffic leaving the network.
    #[serde(default)]
    pub ip_masq: bool,
    /// MTU of the bridge and the veth pair.
    pub mtu: Option<u32>,
    /// Hairpin mode on the bridge port.
    #[serde(default)]
    pub hairpin_mode: bool,
    /// The bridge in promiscuous mode.
    #[serde(default)]
    pub promisc_mode: bool,
    /// IPAM.
    #[serde(default)]
    pub ipam: IpamConf,
    /// Runtime configuration.
    #[serde(default)]
    pub runtime_config: RuntimeConfig,
    /// `args`.
    #[serde(default)]
    pub args: Args,
    /// The previous result (DEL, CHECK).
    pub prev_result: Option<serde_json::Value>,
    /// GC's valid attachments (1.1.0).
    #[serde(rename = "cni.dev/valid-attachments")]
    pub valid_attachments: Option<Vec<Attachment>>,
    /// GC's valid attachments (the draft's name).
    #[serde(rename = "cni.dev/attachments")]
    pub attachments: Option<Vec<Attachment>>,
}

impl NetConf {
    /// Parses stdin (code 6 if it is not a configuration).
    pub fn parse(bytes: &[u8]) -> Result<NetConf, CniError> {
        serde_json::from_slice(bytes).map_err(|e| {
            CniError::new(
                code::DECODING_FAILURE,
                "error parsing the network configuration",
            )
            .details(e)
        })
    }
}

/// Checks a network name as the reference library does: `^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$`.
pub fn valid_network_name(name: &str) -> Result<(), CniError> {
    if name.is_empty() {
        return Err(CniError::config("missing network name"));
    }
    let mut c = name.chars();
    let first = c.next().is_some_and(|c| c.is_ascii_alphanumeric());
    if !first || !c.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')) {
        return Err(CniError::config(format!(
            "invalid characters found in network name {name:?}"
        )));
    }
    Ok(())
}

/// One interface of a result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Interface {
    /// Name.
    pub name: String,
    /// MAC address.
    #[serde(default)]
    pub mac: String,
    /// The container's namespace path, for an interface inside it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<String>,
}

/// One address of a result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpConfig {
    /// Address with prefix length.
    pub address: IpNet,
    /// Gateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<IpAddr>,
    /// Index into `interfaces`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<usize>,
}

/// The result of ADD, version-independent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CniResult {
    /// Interfaces: the bridge, the host end, the container's interface.
    #[serde(default)]
    pub interfaces: Vec<Interface>,
    /// Addresses.
    #[serde(default)]
    pub ips: Vec<IpConfig>,
    /// Routes in the container.
    #[serde(default)]
    pub routes: Vec<Route>,
}

impl CniResult {
    /// Reads a `prevResult` of any supported version (0.3.x and 0.4.0 add a `version` field to
    /// each address, which is ignored).
    pub fn from_prev(v: &serde_json::Value) -> Result<CniResult, CniError> {
        serde_json::from_value(v.clone())
            .map_err(|e| CniError::new(code::DECODING_FAILURE, "cannot read prevResult").details(e))
    }

    /// The result as the spec's JSON in `version`: before 1.0.0 each address names its IP
    /// version (`"version": "4"`).
    pub fn to_json(&self, version: &str) -> serde_json::Value {
        let mut v = serde_json::to_value(self).unwrap_or_default();
        v["cniVersion"] = version.into();
        v["dns"] = serde_json::json!({});
        if !at_least(version, "1.0.0") {
            if let Some(ips) = v["ips"].as_array_mut() {
                for (ip, conf) in ips.iter_mut().zip(&self.ips) {
                    ip["version"] = if conf.address.addr().is_ipv4() {
                        "4"
                    } else {
                        "6"
                    }
                    .into();
                }
            }
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_compare_orders_numerically() {
        assert!(at_least("1.1.0", "1.0.0"));
        assert!(at_least("0.4.0", "0.4.0"));
        assert!(!at_least("0.3.1", "0.4.0"));
        assert!(at_least("0.10.0", "0.4.0"));
    }

    #[test]
    fn result_before_1_0_names_ip_versions() {
        let r = CniResult {
            interfaces: vec![],
            ips: vec![IpConfig {
                address: "10.1.0.2/24".parse().unwrap(),
                gateway: Some("10.1.0.1".parse().unwrap()),
                interface: Some(2),
            }],
            routes: vec![],
        };
        assert_eq!(r.to_json("0.3.1")["ips"][0]["version"], "4");
        assert!(r.to_json("1.0.0")["ips"][0].get("version").is_none());
        assert_eq!(CniResult::from_prev(&r.to_json("0.4.0")).unwrap(), r);
    }

    #[test]
    fn network_name_pattern_is_the_reference_one() {
        assert!(valid_network_name("my-net_1.2").is_ok());
        assert_eq!(valid_network_name("").unwrap_err().code, 7);
        assert_eq!(valid_network_name("-x").unwrap_err().code, 7);
        assert_eq!(valid_network_name("a b").unwrap_err().code, 7);
    }

    #[test]
    fn bridge_config_reads_reference_keys() {
        let c = NetConf::parse(br#"{"cniVersion":"1.0.0","name":"n","type":"bridge","bridge":"br9","isGateway":true,"ipMasq":true,"mtu":1400,"hairpinMode":true,"ipam":{"type":"host-local","subnet":"10.9.0.0/24","rangeStart":"10.9.0.10","routes":[{"dst":"0.0.0.0/0"}],"dataDir":"/tmp/x"}}"#).unwrap();
        assert_eq!(c.bridge, "br9");
        assert!(c.is_gateway && c.ip_masq && c.hairpin_mode);
        assert_eq!(c.mtu, Some(1400));
        assert_eq!(c.ipam.range.subnet, Some("10.9.0.0/24".parse().unwrap()));
        assert_eq!(c.ipam.routes.len(), 1);
    }
}
