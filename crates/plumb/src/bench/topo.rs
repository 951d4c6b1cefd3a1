//! The labs the bench builds, as topology files (pure text generation). Everything lives in
//! named namespaces (bridges included): the namespace plumb runs in gets nothing but the
//! `/run/netns` entries.

use std::fmt::Write;
use std::net::Ipv4Addr;

/// The data-path lab's name, and the prefix of its namespaces.
pub const DATA_LAB: &str = "plumb-bench";
/// See [`DATA_LAB`].
pub const DATA_PREFIX: &str = "pb-";
/// The control-plane lab's name, and the prefix of its namespaces.
pub const CONTROL_LAB: &str = "plumb-bench-cp";
/// See [`CONTROL_LAB`].
pub const CONTROL_PREFIX: &str = "pbc-";

/// The address of router `i`'s left end (towards `r(i-1)`), for `i >= 1`: link `i-1` is
/// `10.202.(i-1).0/30`, `.1` on the left node, `.2` on the right one.
pub fn left_addr(i: u32) -> Ipv4Addr {
    Ipv4Addr::new(10, 202, (i - 1) as u8, 2)
}

fn right_addr(i: u32) -> Ipv4Addr {
    Ipv4Addr::new(10, 202, i as u8, 1)
}

/// The bridge members' addresses.
pub const BRIDGE_A: Ipv4Addr = Ipv4Addr::new(10, 201, 2, 2);
/// See [`BRIDGE_A`].
pub const BRIDGE_B: Ipv4Addr = Ipv4Addr::new(10, 201, 2, 3);

/// The data-path lab: a chain `r0 - r1 - ... - rK` of routed namespaces (each veth a /30, every
/// inner node forwarding, static routes both ways), and two members `b1`, `b2` of a bridge that
/// lives in node `sw`. `max_hops` (K) is at least 1.
pub fn data_lab(max_hops: u32) -> String {
    let k = max_hops.max(1);
    let mut s = format!("name = \"{DATA_LAB}\"\nprefix = \"{DATA_PREFIX}\"\n\n");
    for i in 0..=k {
        let _ = writeln!(s, "[nodes.r{i}]");
        if i > 0 && i < k {
            s.push_str("sysctls = { \"net.ipv4.ip_forward\" = 1 }\n");
        }
        let mut routes = Vec::new();
        for j in 0..k {
            // Link j joins r(j) and r(j+1); a node on it needs no route.
            if j == i || j + 1 == i {
                continue;
            }
            let via = if j > i {
                left_addr(i + 1)
            } else {
                right_addr(i - 1)
            };
            routes.push(format!("{{ to = \"10.202.{j}.0/30\", via = \"{via}\" }}"));
        }
        if !routes.is_empty() {
            let _ = writeln!(s, "routes = [{}]", routes.join(", "));
        }
        if i > 0 {
            let _ = writeln!(
                s,
                "[nodes.r{i}.interfaces.left]\naddresses = [\"{}/30\"]",
                left_addr(i)
            );
        }
        if i < k {
            let _ = writeln!(
                s,
                "[nodes.r{i}.interfaces.right]\naddresses = [\"{}/30\"]",
                right_addr(i)
            );
        }
        s.push('\n');
    }
    for i in 0..k {
        let _ = writeln!(
            s,
            "[[links]]\nendpoints = [\"r{i}:right\", \"r{}:left\"]\n",
            i + 1
        );
    }
    let _ = writeln!(
        s,
        "[nodes.sw]\n[bridges.sw0]\nnode = \"sw\"\n\n[nodes.b1.interfaces.eth0]\naddresses = [\"{BRIDGE_A}/24\"]\n[nodes.b2.interfaces.eth0]\naddresses = [\"{BRIDGE_B}/24\"]\n\n[[links]]\nendpoints = [\"sw0\", \"b1:eth0\"]\n[[links]]\nendpoints = [\"sw0\", \"b2:eth0\"]"
    );
    s
}

/// What the control-plane lab has at each stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stage {
    /// N bare namespaces.
    Namespaces,
    /// Plus a veth from a hub namespace to each.
    Veths,
    /// Plus an address on both ends of each veth.
    Addresses,
    /// Plus a route in each namespace.
    Routes,
}

/// The two addresses of pair `i` (a /31 each): hub side, node side.
fn pair_addrs(i: usize) -> (Ipv4Addr, Ipv4Addr) {
    let base = u32::from(Ipv4Addr::new(10, 210, 0, 0)) + 2 * i as u32;
    (Ipv4Addr::from(base), Ipv4Addr::from(base + 1))
}

/// The control-plane lab at `stage`: nodes `c1..cN` and, from [`Stage::Veths`] on, a hub
/// node with one veth to each.
pub fn control_lab(n: usize, stage: Stage) -> String {
    let mut s = format!("name = \"{CONTROL_LAB}\"\nprefix = \"{CONTROL_PREFIX}\"\n\n");
    // From the address stage on, each node is declared by its interface's section.
    if stage < Stage::Addresses {
        let _ = writeln!(s, "[nodes.\"c[1..{n}]\"]");
    }
    if stage == Stage::Namespaces {
        return s;
    }
    s.push_str("[nodes.hub]\n");
    for i in 0..n {
        let (h, c) = pair_addrs(i);
        let node = i + 1;
        let _ = writeln!(
            s,
            "[[links]]\nendpoints = [\"hub:h{node}\", \"c{node}:eth0\"]"
        );
        if stage >= Stage::Addresses {
            let _ = writeln!(
                s,
                "[nodes.hub.interfaces.h{node}]\naddresses = [\"{h}/31\"]\n[nodes.c{node}.interfaces.eth0]\naddresses = [\"{c}/31\"]"
            );
        }
        if stage >= Stage::Routes {
            let _ = writeln!(
                s,
                "[[nodes.c{node}.routes]]\nto = \"10.250.0.0/16\"\nvia = \"{h}\""
            );
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_lab_loads_with_routes_both_ways() {
        let t = crate::model::parse_toml(&data_lab(4), "bench.toml").expect("loads");
        // r0..r4, sw, b1, b2.
        assert_eq!(t.nodes.len(), 8);
        let r2 = t
            .nodes
            .iter()
            .find(|n| n.name.to_string() == "pb-r2")
            .expect("r2");
        // Links 0 and 3 are not adjacent to r2.
        assert_eq!(r2.routes.len(), 2);
    }

    #[test]
    fn control_lab_loads_at_every_stage() {
        for st in [
            Stage::Namespaces,
            Stage::Veths,
            Stage::Addresses,
            Stage::Routes,
        ] {
            let t = crate::model::parse_toml(&control_lab(5, st), "cp.toml").expect("loads");
            assert!(t.nodes.len() >= 5, "{st:?}");
        }
    }
}
