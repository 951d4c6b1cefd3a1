//! The data path: forwarding where routes need it, strict reverse-path filtering on
//! asymmetric paths, bridge netfilter, MTU along veths and bridges, veths without a peer,
//! leaked namespaces.

use std::net::IpAddr;

use ipnet::IpNet;

use super::peers::Pairs;
use super::{places, Extra, Finding, Place, Severity};
use crate::inspect::{LinkKind, NsState, Snapshot};

/// Addresses of a place that identify it (not loopback, not link-local IPv6).
pub(crate) fn own_addrs(st: &NsState) -> impl Iterator<Item = (u32, IpNet)> + '_ {
    st.addrs
        .iter()
        .filter(|a| {
            let ip = a.addr.addr();
            !ip.is_loopback()
                && !matches!(ip, IpAddr::V6(v6) if (v6.segments()[0] & 0xffc0) == 0xfe80)
        })
        .map(|a| (a.index, a.addr))
}

/// The output interface the place's routing table picks for `dst` (longest prefix among its
/// connected networks and main-table routes).
fn route_oif(st: &NsState, dst: IpAddr) -> Option<u32> {
    let connected = own_addrs(st).map(|(i, n)| (n.trunc(), Some(i)));
    let routes = st.routes.iter().map(|r| (r.dst, r.oif));
    connected
        .chain(routes)
        .filter(|(n, _)| n.contains(&dst))
        .max_by_key(|(n, _)| n.prefix_len())
        .and_then(|(_, oif)| oif)
}

/// Who owns each address: (place index, interface index, address).
fn address_owners<'a>(ps: &'a [Place<'a>]) -> Vec<(usize, u32, IpNet)> {
    ps.iter()
        .enumerate()
        .flat_map(|(i, p)| own_addrs(p.state).map(move |(ix, n)| (i, ix, n)))
        .collect()
}

/// One route of place `from` through a gateway in another place, which must then forward.
struct Transit {
    from: usize,
    via_place: usize,
    via_if: u32,
    route: String,
    v6: bool,
    /// Only because the gateway has a default route of its own (egress), no node of the
    /// source's lab behind it.
    egress_only: bool,
}

/// Routes whose gateway is another place that must forward the traffic: the destination
/// holds an address of a third place (outside the source's connected networks), or the
/// route is a default route and the gateway has a default route of its own.
fn transits(ps: &[Place<'_>]) -> Vec<Transit> {
    let owners = address_owners(ps);
    let mut out = Vec::new();
    for (pi, p) in ps.iter().enumerate() {
        let connected: Vec<IpNet> = own_addrs(p.state).map(|(_, n)| n.trunc()).collect();
        for r in &p.state.routes {
            let Some(via) = r.via else { continue };
            let Some(&(qi, qif, _)) = owners.iter().find(|(i, _, n)| *i != pi && n.addr() == via)
            else {
                continue;
            };
            let q = ps[qi].state;
            let default = r.dst.prefix_len() == 0;
            let third = owners.iter().any(|(zi, _, n)| {
                *zi != pi
                    && *zi != qi
                    && r.dst.contains(&n.addr())
                    && !connected.iter().any(|c| c.contains(&n.addr()))
                    // A default route is a lab's way out, not a promise to reach every
                    // other lab: through it, only the same lab's other nodes count.
                    && (!default
                        || (ps[*zi].owner().is_some()
                            && ps[*zi].owner() == p.owner()
                            && route_oif(q, n.addr()).is_some_and(|o| o != qif)))
            });
            let onward = default
                && q.routes
                    .iter()
                    .any(|qr| qr.dst.prefix_len() == 0 && qr.dst.addr().is_ipv6() == via.is_ipv6());
            if third || onward {
                out.push(Transit {
                    from: pi,
                    via_place: qi,
                    via_if: qif,
                    route: format!(
                        "{} via {via}",
                        if default {
                            "default".to_string()
                        } else {
                            r.dst.to_string()
                        }
                    ),
                    v6: via.is_ipv6(),
                    egress_only: !third,
                });
            }
        }
    }
    out
}

/// Forwarding off in a place that a route of another place sends traffic through.
pub(crate) fn forwarding(snap: &Snapshot, extra: &Extra) -> Vec<Finding> {
    let ps = places(snap, extra);
    let mut out: Vec<Finding> = Vec::new();
    for t in transits(&ps) {
        let q = &ps[t.via_place];
        let Some(x) = q.extra else { continue };
        let key = if t.v6 {
            "net.ipv6.conf.all.forwarding"
        } else {
            "net.ipv4.ip_forward"
        };
        if x.num(key) != Some(0) {
            continue;
        }
        // A lab expects egress through a gateway only where it has NAT (plumb's table of the
        // lab there); a foreign namespace's default route says it expects it anyway.
        if let (true, Some(lab)) = (t.egress_only, ps[t.from].owner()) {
            let table = format!("inet {}", crate::firewall::table_name(lab));
            if !x.nft_tables.contains(&table) {
                continue;
            }
        }
        let from = ps[t.from].name;
        if let Some(f) = out.iter_mut().find(|f| {
            f.object == q.name
                && f.evidence.get("sysctl").map(|v| v.to_string()) == Some(key.to_string())
        }) {
            let n = f
                .evidence
                .keys()
                .filter(|k| k.starts_with("route_"))
                .count();
            f.evidence
                .insert(format!("route_{n}"), format!("{from}: {}", t.route).into());
            continue;
        }
        out.push(
            Finding::new("forwarding-off", Severity::Error, q.name)
                .lab(q.owner().or(ps[t.from].owner()))
                .summary(format!("{} does not forward, but {from} routes through it", q.name))
                .with("sysctl", key)
                .with("value", 0u64)
                .with("route_0", format!("{from}: {}", t.route))
                .why("a namespace with forwarding off drops every packet that is not for itself: the routes through it lead nowhere")
                .fix(format!(
                    "set {key}=1 in {} (for a lab node: `sysctls = {{ \"{key}\" = 1 }}` in its file, then `plumb up`)",
                    q.name
                )),
        );
    }
    out
}

/// Strict reverse-path filtering (`rp_filter=1`) on an interface where traffic of a source
/// arrives that the place's routes send back through another interface.
pub(crate) fn rp_filter(snap: &Snapshot, extra: &Extra) -> Vec<Finding> {
    let ps = places(snap, extra);
    let mut out: Vec<Finding> = Vec::new();
    for t in transits(&ps) {
        if t.v6 {
            continue; // rp_filter is IPv4's
        }
        let q = &ps[t.via_place];
        let Some(x) = q.extra else { continue };
        let Some(link) = q.state.link_by_index(t.via_if) else {
            continue;
        };
        let all = x.num("net.ipv4.conf.all.rp_filter").unwrap_or(0);
        let dev = super::read::rp_key(&link.name)
            .and_then(|k| x.num(&k))
            .unwrap_or(0);
        // The kernel uses the larger of `all` and the interface's value.
        if all.max(dev) != 1 {
            continue;
        }
        let p = &ps[t.from];
        for (_, src) in own_addrs(p.state).filter(|(_, n)| n.addr().is_ipv4()) {
            let back = route_oif(q.state, src.addr());
            if back == Some(t.via_if) {
                continue;
            }
            let object = format!("{}/{}", q.name, link.name);
            if out.iter().any(|f| f.object == object) {
                break;
            }
            let back_name = back
                .and_then(|i| q.state.link_by_index(i))
                .map_or("no route".to_string(), |l| l.name.clone());
            out.push(
                Finding::new("rp-filter", Severity::Error, object)
                    .lab(q.owner().or(p.owner()))
                    .summary(format!(
                        "strict rp_filter on {}/{} drops {}'s traffic from {}: the way back to it is {back_name}",
                        q.name, link.name, p.name, src.addr()
                    ))
                    .with("rp_filter_all", all)
                    .with("rp_filter_dev", dev)
                    .with("source", src.addr().to_string())
                    .with("arrives_on", link.name.clone())
                    .with("route_back_through", back_name)
                    .why("with rp_filter=1 the kernel drops a packet whose source it would not route back through the interface it came in on: asymmetric paths lose all their traffic, silently")
                    .fix(format!(
                        "use loose mode in {}: net.ipv4.conf.all.rp_filter=2 and net.ipv4.conf.{}.rp_filter=2 (or make the path symmetric)",
                        q.name, link.name
                    )),
            );
            break;
        }
    }
    out
}

/// Bridged traffic sent through IP-level firewalls (`bridge-nf-call-iptables`) where a
/// foreign table would see it.
pub(crate) fn bridge_netfilter(snap: &Snapshot, extra: &Extra) -> Vec<Finding> {
    let mut out = Vec::new();
    for p in places(snap, extra) {
        let Some(x) = p.extra else { continue };
        let bridges: Vec<&str> = p
            .state
            .links
            .iter()
            .filter(|b| {
                b.kind == LinkKind::Bridge
                    && p.state.links.iter().any(|l| l.master == Some(b.index))
            })
            .map(|b| b.name.as_str())
            .collect();
        if bridges.is_empty() {
            continue;
        }
        let v4 = x.num("net.bridge.bridge-nf-call-iptables") == Some(1);
        let v6 = x.num("net.bridge.bridge-nf-call-ip6tables") == Some(1);
        if !v4 && !v6 {
            continue;
        }
        let foreign: Vec<&String> = x
            .nft_tables
            .iter()
            .filter(|t| {
                let (fam, name) = t.split_once(' ').unwrap_or(("", t));
                matches!(fam, "ip" | "ip6" | "inet") && !name.starts_with("plumb-")
            })
            .collect();
        if foreign.is_empty() {
            continue;
        }
        let dropping = !x.forward_drops.is_empty();
        let owner = bridges
            .iter()
            .find_map(|b| p.state.link(b).and_then(|l| l.owner()));
        let mut f = Finding::new(
            "bridge-netfilter",
            if dropping { Severity::Error } else { Severity::Warning },
            p.name,
        )
        .lab(owner)
        .summary(format!(
            "traffic between ports of {} goes through the IP firewall of {} (bridge-nf-call-iptables)",
            bridges.join(", "),
            p.name
        ))
        .with("bridge-nf-call-iptables", u64::from(v4))
        .with("bridge-nf-call-ip6tables", u64::from(v6))
        .with("bridges", bridges.join(" "))
        .with("foreign_tables", foreign.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", "));
        if dropping {
            f = f.with("forward_drop_chains", x.forward_drops.join(", "));
        }
        out.push(
            f.why("with bridge netfilter on, frames switched between two ports of one bridge also traverse the forward chains of iptables and of ip/inet nftables tables: a drop policy there cuts members of one network off from each other, and every bridged packet pays for the rules and for conntrack")
            .fix(format!("in {}: sysctl -w net.bridge.bridge-nf-call-iptables=0 net.bridge.bridge-nf-call-ip6tables=0, or accept the bridges' traffic in those chains (iifname {} oifname {} accept)", p.name, bridges[0], bridges[0])),
        );
    }
    out
}

/// MTU differences between the two ends of a veth, and between a bridge and its ports.
pub(crate) fn mtu(snap: &Snapshot, pairs: &Pairs<'_>) -> Vec<Finding> {
    let _ = snap;
    let mut out = Vec::new();
    for (i, e) in pairs.ends.iter().enumerate() {
        let Some(j) = pairs.peer[i] else { continue };
        let p = &pairs.ends[j];
        if i > j || e.link.mtu == p.link.mtu {
            continue;
        }
        out.push(
            Finding::new("mtu-mismatch", Severity::Warning, format!("{} <-> {}", e.label(), p.label()))
                .lab(e.link.owner().or(p.link.owner()))
                .summary(format!("the two ends of a veth have different MTUs ({} and {})", e.link.mtu, p.link.mtu))
                .with(&format!("mtu {}", e.label()), e.link.mtu)
                .with(&format!("mtu {}", p.label()), p.link.mtu)
                .why("the end with the larger MTU sends frames the other end drops as too long: small packets (ping, handshakes) pass, full-size ones vanish, so connections hang mid-transfer")
                .fix(format!("give both ends the same MTU (ip link set dev IF mtu {}; in a lab file, `mtu` on the link or network)", e.link.mtu.min(p.link.mtu))),
        );
    }
    // Bridges and their ports, in every place.
    let mut seen_places: Vec<&str> = Vec::new();
    for e in &pairs.ends {
        if seen_places.contains(&e.place) {
            continue;
        }
        seen_places.push(e.place);
        for b in e.state.links.iter().filter(|l| l.kind == LinkKind::Bridge) {
            let ports: Vec<_> = e
                .state
                .links
                .iter()
                .filter(|l| l.master == Some(b.index))
                .collect();
            let odd: Vec<String> = ports
                .iter()
                .filter(|l| l.mtu != b.mtu)
                .map(|l| format!("{}={}", l.name, l.mtu))
                .collect();
            if odd.is_empty() {
                continue;
            }
            out.push(
                Finding::new("mtu-mismatch", Severity::Warning, format!("{}/{}", e.place, b.name))
                    .lab(b.owner())
                    .summary(format!("ports of bridge {} have an MTU other than the bridge's {}", b.name, b.mtu))
                    .with("bridge_mtu", b.mtu)
                    .with("ports_differing", odd.join(" "))
                    .with("ports", ports.len())
                    .why("a bridge forwards frames up to its ports' MTU: a port with a smaller MTU drops the larger frames other ports send, a larger one sends frames the others drop")
                    .fix(format!("give every port of {} the bridge's MTU (ip link set dev PORT mtu {})", b.name, b.mtu)),
            );
        }
    }
    out
}

/// Veths whose peer is nowhere in the snapshot.
pub(crate) fn lost_peers(snap: &Snapshot, pairs: &Pairs<'_>) -> Vec<Finding> {
    let _ = snap;
    let mut out = Vec::new();
    for (i, e) in pairs.ends.iter().enumerate() {
        if pairs.peer[i].is_some() {
            continue;
        }
        let elsewhere = e.link.peer_netnsid.is_some();
        // A lab's veth must end in one of the lab's namespaces; a foreign one whose peer is in
        // a namespace outside /run/netns is usually a container's, and only worth knowing.
        let severity = if elsewhere && e.link.owner().is_none() {
            Severity::Info
        } else {
            Severity::Warning
        };
        out.push(
            Finding::new("veth-peer-gone", severity, e.label())
                .lab(e.link.owner())
                .summary(if elsewhere {
                    format!("the peer of {} is in a namespace that is not in /run/netns (or is gone)", e.label())
                } else {
                    format!("the peer of {} is gone", e.label())
                })
                .with("ifindex", e.link.index)
                .with("peer_ifindex", e.link.peer_index.map_or("none".to_string(), |p| p.to_string()))
                .with("peer_netnsid", e.link.peer_netnsid.map_or("none".to_string(), |p| p.to_string()))
                .with("operstate", e.link.operstate.clone())
                .why("a veth is a cable: whatever is sent into this end comes out where nobody on this machine's named namespaces listens; usually the other side's namespace was removed from /run/netns while a process still holds it, or the end was moved away by hand")
                .fix(format!(
                    "find the namespace holding the peer (ip link show {} shows link-netnsid), or delete this end: {}link del {}{}",
                    e.link.name,
                    match e.ns {
                        None => "ip ".to_string(),
                        // A namespace outside /run/netns goes by its label (pid:PID, docker:ID…).
                        Some(n) if n.contains(':') => format!("plumb exec {n} -- ip "),
                        Some(n) => format!("ip -n {n} "),
                    },
                    e.link.name,
                    e.link.owner().map_or(String::new(), |l| format!(" (or `plumb up` lab {l} again)")),
                )),
        );
    }
    out
}

/// Named namespaces with nothing in them but `lo` and no process.
pub(crate) fn leaked(snap: &Snapshot, extra: &Extra) -> Vec<Finding> {
    let mut out = Vec::new();
    for p in places(snap, extra) {
        let (Some(_), Some(x)) = (p.ns, p.extra) else {
            continue;
        };
        let only_lo = p.state.links.iter().all(|l| l.kind == LinkKind::Loopback);
        if !only_lo || x.has_process || own_addrs(p.state).next().is_some() {
            continue;
        }
        let owner = p.owner();
        out.push(
            Finding::new("leaked-namespace", if owner.is_some() { Severity::Info } else { Severity::Warning }, p.name)
                .lab(owner)
                .summary(format!("namespace {} holds nothing but lo, and nothing but its name holds it", p.name))
                .with("interfaces", p.state.links.len())
                .with("processes", 0u64)
                .why("an empty namespace is usually left over from a container or a script that died; each one still costs kernel memory and a mount, and thousands slow every namespace operation")
                .fix(match owner {
                    Some(l) => format!("if lab {l} declares no interface for it, nothing to do; otherwise `plumb up` its file, or `plumb down {l}`"),
                    None => format!("ip netns del {}", p.name),
                }),
        );
    }
    out
}
