//! Steps as the commands they replace: every line `up --dry-run` prints is a valid shell
//! command (several `ip` commands joined by `&&` where one step takes several).

use std::fmt;

use super::step::{LinkSet, RouteSpec, Step};
use crate::model::NodeRef;

fn opt<T: fmt::Display>(label: &str, v: &Option<T>) -> String {
    v.as_ref()
        .map(|v| format!(" {label} {v}"))
        .unwrap_or_default()
}

/// `ip` or `ip -n NS`.
fn ip(node: &NodeRef) -> String {
    match node {
        NodeRef::Host => "ip".into(),
        NodeRef::Ns(n) => format!("ip -n {n}"),
    }
}

/// A command run inside a node: `CMD` or `ip netns exec NS CMD`.
fn inside(node: &NodeRef, cmd: &str) -> String {
    match node {
        NodeRef::Host => cmd.to_string(),
        NodeRef::Ns(n) => format!("ip netns exec {n} {cmd}"),
    }
}

fn link_set(f: &mut fmt::Formatter<'_>, node: &NodeRef, name: &str, set: &LinkSet) -> fmt::Result {
    let mut cmds = Vec::new();
    let mut base = String::new();
    if let Some(m) = set.mtu {
        base.push_str(&format!(" mtu {m}"));
    }
    if let Some(m) = set.mac {
        base.push_str(&format!(" address {m}"));
    }
    match &set.master {
        Some(Some(m)) => base.push_str(&format!(" master {m}")),
        Some(None) => base.push_str(" nomaster"),
        None => {}
    }
    match set.up {
        Some(true) => base.push_str(" up"),
        Some(false) => base.push_str(" down"),
        None => {}
    }
    if !base.is_empty() {
        cmds.push(format!("{} link set {name}{base}", ip(node)));
    }
    if let Some(iso) = set.isolated {
        cmds.push(format!(
            "{} link set {name} type bridge_slave isolated {}",
            ip(node),
            if iso { "on" } else { "off" }
        ));
    }
    if let Some(stp) = set.stp {
        cmds.push(format!(
            "{} link set {name} type bridge stp_state {}",
            ip(node),
            u8::from(stp)
        ));
    }
    if cmds.is_empty() {
        cmds.push(format!("{} link set {name}", ip(node)));
    }
    f.write_str(&cmds.join(" && "))
}

impl fmt::Display for Step {
    /// The step as the command it replaces.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::ParkLink {
                node, name, parked, ..
            } => {
                write!(f, "{} link set {name} down", ip(node))?;
                if let Some(p) = parked {
                    write!(f, " && {} link set {name} name {p}", ip(node))?;
                }
                Ok(())
            }
            Step::UnparkLink {
                node,
                parked,
                name,
                up,
                ..
            } => {
                let mut cmds = Vec::new();
                if let Some(p) = parked {
                    cmds.push(format!("{} link set {p} name {name}", ip(node)));
                }
                if *up {
                    cmds.push(format!("{} link set {name} up", ip(node)));
                }
                if cmds.is_empty() {
                    cmds.push(format!("{} link set {name}", ip(node)));
                }
                f.write_str(&cmds.join(" && "))
            }
            Step::DeleteGroup { group } => write!(f, "ip link del group {group}"),
            Step::DeleteLink { node, name, .. } => write!(f, "{} link del {name}", ip(node)),
            Step::DeleteNs { ns } => write!(f, "ip netns del {ns}"),
            Step::DelRoute { node, route } => {
                write!(f, "{} route del {route} proto 250", ip(node))
            }
            Step::DelAddr { node, dev, addr } => {
                write!(f, "{} addr del {addr} dev {dev}", ip(node))
            }
            // plumb brings `lo` up in every namespace it makes.
            Step::CreateNs { ns } => write!(f, "ip netns add {ns} && ip -n {ns} link set lo up"),
            Step::Sysctl {
                node, key, value, ..
            } => f.write_str(&inside(node, &format!("sysctl -w {key}={value}"))),
            Step::CreateBridge {
                node,
                name,
                mtu,
                stp,
                ..
            } => write!(
                f,
                "{} link add {name}{} type bridge stp_state {} mcast_snooping 0",
                ip(node),
                opt("mtu", mtu),
                u8::from(*stp)
            ),
            Step::CreateVeth { a, b, .. } => {
                // Written from the host's side when one end is there, as the seed writes it
                // (`ip link add veth1 type veth peer name eth1000 netns ns1`): `ip` has no name
                // for "the host" as a peer namespace.
                let (a, b) = if b.node == NodeRef::Host && a.node != NodeRef::Host {
                    (b, a)
                } else {
                    (a, b)
                };
                write!(f, "{} link add {}", ip(&a.node), a.name)?;
                write!(f, "{} type veth peer name {}", opt("mtu", &a.mtu), b.name)?;
                if let NodeRef::Ns(n) = &b.node {
                    if b.node != a.node {
                        write!(f, " netns {n}")?;
                    }
                }
                for e in [a, b] {
                    if let Some(m) = &e.master {
                        write!(f, " && {} link set {} master {m}", ip(&e.node), e.name)?;
                    }
                }
                Ok(())
            }
            Step::SetLink {
                node, name, set, ..
            } => link_set(f, node, name, set),
            Step::AddAddr { node, dev, addr } => {
                write!(f, "{} addr add {addr} dev {dev}", ip(node))
            }
            Step::AddRoute {
                node,
                route,
                replaces: None,
            } => write!(f, "{} route add {route} proto 250", ip(node)),
            Step::AddRoute { node, route, .. } => {
                write!(f, "{} route replace {route} proto 250", ip(node))
            }
            // The transaction as an `nft -f` script in a here-document: the whole dry run
            // stays a valid shell script.
            Step::Firewall { node, rules, .. } => write!(
                f,
                "{} <<'NFT'\n{}NFT",
                inside(node, "nft -f -"),
                rules.nft_script()
            ),
            Step::RestoreFirewall {
                node,
                table,
                version,
            } => f.write_str(&inside(
                node,
                &format!("nft -f - # put back table inet {table} as it was (version {version})"),
            )),
            Step::DeleteFirewall { node, table } => {
                f.write_str(&inside(node, &format!("nft delete table inet {table}")))
            }
        }
    }
}

impl fmt::Display for RouteSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.dst.prefix_len() == 0 && self.dst.addr().is_ipv4() {
            f.write_str("default")?;
        } else {
            // `::/0`, not `default`: without a gateway, `ip` would read `default` as IPv4.
            write!(f, "{}", self.dst)?;
        }
        if let Some(v) = self.via {
            write!(f, " via {v}")?;
        }
        if let Some(d) = &self.dev {
            write!(f, " dev {d}")?;
        }
        Ok(())
    }
}
