//! `prefix = "lab1-"`: once the whole lab is checked with the names as written, every
//! namespace and every host-side interface the file names gets the prefix, so two labs that
//! both have a node `web` and a network `plumb0` can run side by side. Generated bridge port
//! names (`pl` + a hash of lab, node and interface) are already unique per lab and stay as they
//! are; names inside a namespace are private to it and stay too. Lengths were checked where
//! each name was written (`occupy`, `add_node`), so every new name is valid.

use std::collections::HashMap;

use super::nodes::Use;
use crate::model::names::{IfName, NsName};
use crate::model::types::{NodeRef, Target, Topology};

/// Renames the lab's namespaces and the host-side interfaces in `uses` (the host's interface
/// names and what each is) with `prefix`.
pub(super) fn apply(topo: &mut Topology, prefix: &str, host_uses: &HashMap<IfName, Use>) {
    let ifmap: HashMap<&str, IfName> = host_uses
        .iter()
        .filter(|(_, u)| !matches!(u, Use::Port { .. } | Use::Loopback))
        .filter_map(|(n, _)| Some((n.as_str(), IfName::new(&format!("{prefix}{n}")).ok()?)))
        .collect();
    let rename_if = |n: &mut IfName| {
        if let Some(new) = ifmap.get(n.as_str()) {
            *n = new.clone();
        }
    };
    let rename_ns = |n: &mut NsName| {
        if let Ok(new) = NsName::new(&format!("{prefix}{n}")) {
            *n = new;
        }
    };
    let rename_node = |r: &mut NodeRef| {
        if let NodeRef::Ns(n) = r {
            rename_ns(n);
        }
    };

    for i in &mut topo.host.interfaces {
        rename_if(&mut i.name);
    }
    for r in &mut topo.host.routes {
        if let Some(dev) = &mut r.dev {
            rename_if(dev);
        }
    }
    for (key, _) in &mut topo.host.sysctls {
        *key = sysctl_key(key, &ifmap);
    }
    for n in &mut topo.nodes {
        rename_node(&mut n.name);
    }
    for b in &mut topo.bridges {
        if b.node == NodeRef::Host {
            rename_if(&mut b.name);
        }
        rename_node(&mut b.node);
    }
    for l in &mut topo.links {
        for e in [&mut l.a, &mut l.b] {
            if e.node == NodeRef::Host {
                rename_if(&mut e.ifname);
                if let Some(b) = &mut e.bridge {
                    rename_if(b);
                }
            }
            rename_node(&mut e.node);
        }
    }
    for net in &mut topo.networks {
        rename_if(&mut net.name);
        for m in &mut net.members {
            rename_ns(m);
        }
        for p in &mut net.publish {
            rename_ns(&mut p.member);
        }
    }
    for e in &mut topo.expects {
        rename_node(&mut e.from);
        if let Target::Node(n) = &mut e.to {
            rename_node(n);
        }
    }
    topo.prefix = Some(prefix.to_owned());
}

/// `net.ipv4.conf.IFACE.rp_filter` with IFACE renamed if it is one of the lab's host interfaces.
fn sysctl_key(key: &str, ifmap: &HashMap<&str, IfName>) -> String {
    let parts: Vec<&str> = key.split('.').collect();
    match parts.as_slice() {
        ["net", fam @ ("ipv4" | "ipv6"), kind @ ("conf" | "neigh"), iface, rest @ ..] => {
            match ifmap.get(iface) {
                Some(new) => {
                    let mut out = format!("net.{fam}.{kind}.{new}");
                    for r in rest {
                        out.push('.');
                        out.push_str(r);
                    }
                    out
                }
                None => key.to_owned(),
            }
        }
        _ => key.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sysctl_keys_of_lab_interfaces_are_renamed_and_others_kept() {
        let mut m = HashMap::new();
        m.insert("veth1", IfName::new("l1-veth1").unwrap());
        assert_eq!(
            sysctl_key("net.ipv4.conf.veth1.rp_filter", &m),
            "net.ipv4.conf.l1-veth1.rp_filter"
        );
        assert_eq!(
            sysctl_key("net.ipv6.conf.veth1.disable_ipv6", &m),
            "net.ipv6.conf.l1-veth1.disable_ipv6"
        );
        assert_eq!(sysctl_key("net.ipv4.ip_forward", &m), "net.ipv4.ip_forward");
        assert_eq!(
            sysctl_key("net.ipv4.conf.all.forwarding", &m),
            "net.ipv4.conf.all.forwarding"
        );
    }
}
