//! Names for the bridge ports plumb generates.
//!
//! A port made by a bare bridge endpoint or by a network member lives in the bridge's node and needs
//! a name there that fits IFNAMSIZ and does not change between runs, so that `plumb down` and a
//! second `plumb up` find the same device. The name is `pl` followed by 13 hex digits of a 64-bit
//! FNV-1a hash of `lab/node/ifname`, the far end's identity: 15 bytes, the kernel's limit.

use super::names::{stable_hash as fnv1a64, IfName, LabName};
use super::types::NodeRef;

/// What a generated port name is derived from: `lab/node/ifname`.
pub(crate) fn port_seed(lab: &LabName, node: &NodeRef, ifname: &IfName) -> String {
    format!("{lab}/{node}/{ifname}")
}

/// The name of the bridge port whose veth peer is `ifname` in `node`, in lab `lab`.
///
/// Deterministic and at most 15 bytes: `pl` + 13 hex digits of the FNV-1a hash of
/// `lab/node/ifname`. For example the port for `web:eth0` in lab `star` is always the same name.
pub fn host_port_name(lab: &LabName, node: &NodeRef, ifname: &IfName) -> IfName {
    let hash = fnv1a64(port_seed(lab, node, ifname).as_bytes());
    // 13 hex digits are 52 bits: the top 52 bits of the hash.
    let name = format!("pl{:013x}", hash >> 12);
    IfName::new(&name).expect("`pl` and 13 hex digits are always a valid interface name")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::names::NsName;

    fn names() -> (LabName, NodeRef, IfName) {
        let lab = LabName::new("star").unwrap();
        let node = NodeRef::Ns(NsName::new("web").unwrap());
        (lab, node, IfName::new("eth0").unwrap())
    }

    #[test]
    fn fnv1a64_matches_reference_vectors() {
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn host_port_name_is_fifteen_bytes_and_stable() {
        let (lab, node, ifname) = names();
        let a = host_port_name(&lab, &node, &ifname);
        assert_eq!(a.as_str().len(), 15);
        assert!(a.as_str().starts_with("pl"));
        assert_eq!(a, host_port_name(&lab, &node, &ifname));
        // Pinned: a change here renames every port of every existing lab.
        let expected = format!("pl{:013x}", fnv1a64(b"star/web/eth0") >> 12);
        assert_eq!(a.as_str(), expected);
    }

    #[test]
    fn host_port_name_differs_by_lab_node_and_ifname() {
        let (lab, node, ifname) = names();
        let base = host_port_name(&lab, &node, &ifname);
        let other_lab = LabName::new("star2").unwrap();
        let other_node = NodeRef::Ns(NsName::new("db").unwrap());
        let other_if = IfName::new("eth1").unwrap();
        assert_ne!(base, host_port_name(&other_lab, &node, &ifname));
        assert_ne!(base, host_port_name(&lab, &other_node, &ifname));
        assert_ne!(base, host_port_name(&lab, &node, &other_if));
        assert_ne!(base, host_port_name(&lab, &NodeRef::Host, &ifname));
    }
}
