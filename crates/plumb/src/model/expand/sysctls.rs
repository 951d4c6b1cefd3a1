//! Every sysctl must exist where it is set: asked of the [`Machine`] while loading, so that a
//! misspelt key, or one of a module that is not loaded, is refused at its line instead of by the
//! kernel half-way through `up`.

use std::collections::{HashMap, HashSet};

use super::Expander;
use crate::model::error::DiagnosticKind;
use crate::model::{Machine, SysctlPlace};

impl Expander<'_, '_> {
    /// Asks `machine` about every sysctl of every node; a key set by many nodes of one range is
    /// asked and reported once.
    pub(super) fn sysctls(&mut self, machine: &dyn Machine) {
        let mut known: HashMap<(SysctlPlace, String), bool> = HashMap::new();
        let mut reported: HashSet<usize> = HashSet::new();
        let mut found = Vec::new();
        for node in std::iter::once(&self.host).chain(&self.nodes) {
            let place = match node.name {
                crate::model::NodeRef::Host => SysctlPlace::Host,
                crate::model::NodeRef::Ns(_) => SysctlPlace::Namespace,
            };
            for ((key, _), &at) in node.sysctls.iter().zip(&node.sysctl_at) {
                if reported.contains(&at) {
                    continue;
                }
                // The lab creates its interfaces: their own keys are as `default` has them.
                let ask = as_default(key, |i| {
                    i != "lo" && node.uses.keys().any(|n| n.as_str() == i)
                });
                let exists = *known
                    .entry((place, ask.clone()))
                    .or_insert_with(|| machine.has_sysctl(place, &ask));
                if !exists {
                    reported.insert(at);
                    found.push((
                        at,
                        DiagnosticKind::UnknownSysctl {
                            key: key.clone(),
                            node: node.name.to_string(),
                        },
                    ));
                }
            }
        }
        for (at, kind) in found {
            self.sink.report(at, kind);
        }
    }
}

/// `net.ipv4.conf.IFACE.x` (or `net.ipv6.conf`, `net.ipv4.neigh`, `net.ipv6.neigh`) as
/// `net.ipv4.conf.default.x` when `is_lab_iface(IFACE)`; any other key as it is.
fn as_default(key: &str, is_lab_iface: impl Fn(&str) -> bool) -> String {
    let parts: Vec<&str> = key.split('.').collect();
    match parts.as_slice() {
        ["net", fam @ ("ipv4" | "ipv6"), kind @ ("conf" | "neigh"), iface, rest @ ..]
            if !rest.is_empty() && is_lab_iface(iface) =>
        {
            format!("net.{fam}.{kind}.default.{}", rest.join("."))
        }
        _ => key.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::as_default;

    #[test]
    fn interface_keys_of_lab_interfaces_are_asked_as_default() {
        let lab = |i: &str| i == "eth0";
        assert_eq!(
            as_default("net.ipv4.conf.eth0.rp_filter", lab),
            "net.ipv4.conf.default.rp_filter"
        );
        assert_eq!(
            as_default("net.ipv6.neigh.eth0.base_reachable_time_ms", lab),
            "net.ipv6.neigh.default.base_reachable_time_ms"
        );
        assert_eq!(
            as_default("net.ipv4.conf.eth9.rp_filter", lab),
            "net.ipv4.conf.eth9.rp_filter"
        );
        assert_eq!(
            as_default("net.ipv4.ip_forward", lab),
            "net.ipv4.ip_forward"
        );
        assert_eq!(as_default("net.ipv4.conf.eth0", lab), "net.ipv4.conf.eth0");
    }
}
