//! ADD: bridge (once), addresses from the store, the veth pair, the container's addresses and
//! routes, masquerade and port mappings; undone if it fails after allocating.

use std::net::IpAddr;

use ipnet::IpNet;

use super::delegate;
use super::env::Env;
use super::error::{code, CniError};
use super::ipam::{self, Range, Store};
use super::link::{self, BridgeWanted};
use super::nat::{self, Entries};
use super::record::{self, Record};
use super::spec::{CniResult, Interface, IpConfig, NetConf, Route};
use crate::model::MacAddr;
use crate::netlink::link::{LinkChange, Target, VethEnd};
use crate::netlink::NlSocket;
use crate::netns;
use crate::nftables::NfSocket;

/// The addresses asked for: `CNI_ARGS` `IP=`, `args.cni.ips`, `runtimeConfig.ips` (with or
/// without a prefix length).
fn requested(env: &Env, conf: &NetConf) -> Result<Vec<IpAddr>, CniError> {
    let mut out = env.requested_ips()?;
    for s in conf.args.cni.ips.iter().chain(&conf.runtime_config.ips) {
        let a = s
            .parse::<IpAddr>()
            .or_else(|_| s.parse::<IpNet>().map(|n| n.addr()))
            .map_err(|_| CniError::config(format!("requested IP {s:?} is not an address")))?;
        if !out.contains(&a) {
            out.push(a);
        }
    }
    Ok(out)
}

/// The container interface's MAC, if one is asked for: `runtimeConfig.mac` (the `mac`
/// capability), else `args.cni.mac`, else `CNI_ARGS` `MAC=` (the reference bridge's order). A
/// multicast address cannot be an interface's.
fn requested_mac(env: &Env, conf: &NetConf) -> Result<Option<MacAddr>, CniError> {
    let rc = conf.runtime_config.mac.as_deref().filter(|m| !m.is_empty());
    let args = conf.args.cni.mac.as_deref().filter(|m| !m.is_empty());
    let (text, bad): (&str, fn(String) -> CniError) = match (rc, args, env.requested_mac()) {
        (Some(m), _, _) | (None, Some(m), _) => (m, CniError::config),
        (None, None, Some(m)) => (m, |msg| CniError::new(code::INVALID_ENVIRONMENT, msg)),
        (None, None, None) => return Ok(None),
    };
    let mac: MacAddr = text.parse().map_err(|()| {
        bad(format!(
            "MAC {text:?} is not a MAC address (six hex bytes, aa:bb:…)"
        ))
    })?;
    if mac.0[0] & 1 == 1 {
        return Err(bad(format!(
            "MAC {text} is a multicast address: an interface cannot have it"
        )));
    }
    Ok(Some(mac))
}

/// The container's routes: `ipam.routes` (via the gateway of their family when they name
/// none) and, with `isDefaultGateway`, a default route via each gateway.
fn routes(conf: &NetConf, gateways: &[IpAddr]) -> (Vec<Route>, Vec<(IpNet, Option<IpAddr>)>) {
    let gw_of = |v4: bool| gateways.iter().copied().find(|g| g.is_ipv4() == v4);
    let mut result: Vec<Route> = conf.ipam.routes.clone();
    if conf.is_default_gateway {
        for g in gateways {
            let dst: IpNet = if g.is_ipv4() {
                "0.0.0.0/0".parse().unwrap_or_default()
            } else {
                "::/0".parse().unwrap_or_default()
            };
            if !result.iter().any(|r| r.dst == dst) {
                result.push(Route { dst, gw: Some(*g) });
            }
        }
    }
    let install = result
        .iter()
        .map(|r| (r.dst, r.gw.or_else(|| gw_of(r.dst.addr().is_ipv4()))))
        .collect();
    (result, install)
}

/// What ADD has made so far, for its undo.
#[derive(Default)]
struct Made {
    ips: Vec<IpAddr>,
    veth: Option<String>,
    entries: Option<Entries>,
}

/// ADD.
pub fn add(env: &Env, conf: &NetConf, stdin: &[u8]) -> Result<CniResult, CniError> {
    let delegated = delegate::is_delegated(&conf.ipam.kind);
    let (sets, asked) = if delegated {
        (Vec::new(), Vec::new())
    } else {
        (ipam::range_sets(&conf.ipam)?, requested(env, conf)?)
    };
    requested_mac(env, conf)?;
    // The mappings' protocols and host addresses, checked before anything is touched.
    let probe = [IpAddr::from([0, 0, 0, 0]), IpAddr::from([0u16; 8])];
    nat::validate(&nat::entries_for(
        &conf.runtime_config.port_mappings,
        &probe,
    )?)?;
    if conf.hairpin_mode && conf.promisc_mode {
        // As the reference bridge: a hairpin port already sees its own frames.
        return Err(CniError::config(
            "cannot set hairpin mode and promiscuous mode at the same time.",
        ));
    }
    if let Some(m) = conf.mtu {
        if !(68..=65535).contains(&m) {
            return Err(CniError::config(format!(
                "mtu {m} is out of range (68-65535)"
            )));
        }
    }
    let ns = env.open_netns()?;
    let store = Store::open(&super::data_dir(conf), &conf.name)?;
    let mut cont = link::socket_in(&ns)?;
    let exists = link::by_name(&mut cont, &env.ifname)
        .map_err(|e| CniError::netlink("cannot read the container's interfaces", &e))?;
    if exists.is_some() {
        return Err(CniError::new(
            code::INTERNAL,
            format!("container interface {} already exists", env.ifname),
        ));
    }
    // host-local refuses a second allocation to one attachment; plumb's record says whether it
    // holds one (read in O(1), whatever the number of containers).
    if super::record::read(store.dir(), &env.container_id, &env.ifname).is_some() {
        return Err(CniError::new(
            code::INTERNAL,
            format!(
                "{}/{} already has an address in network {}, duplicate allocation is not allowed",
                env.container_id, env.ifname, conf.name
            ),
        ));
    }
    if !delegated {
        return build(env, conf, &sets, &asked, &store, &ns, &mut cont);
    }
    // The IPAM plugin leases the addresses; plumb's store reserves exactly those, and whatever
    // fails from here on gives them back to the plugin too.
    let kind = conf.ipam.kind.as_str();
    let leased = delegate::add(env, kind, stdin)?;
    let sets: Vec<Vec<Range>> = leased
        .iter()
        .map(|(a, gw)| {
            let subnet = a.trunc();
            vec![Range {
                subnet,
                start: a.addr(),
                end: a.addr(),
                gateway: gw.unwrap_or_else(|| first_host(subnet)),
            }]
        })
        .collect();
    let asked: Vec<IpAddr> = leased.iter().map(|(a, _)| a.addr()).collect();
    let res = build(env, conf, &sets, &asked, &store, &ns, &mut cont);
    if res.is_err() {
        let _ = delegate::run(env, kind, "DEL", stdin);
    }
    res
}

/// The first address after a subnet's network address (host-local's default gateway).
fn first_host(subnet: IpNet) -> IpAddr {
    match subnet.network() {
        IpAddr::V4(v) => IpAddr::from(u32::from(v).wrapping_add(1).to_be_bytes()),
        IpAddr::V6(v) => IpAddr::from(u128::from(v).wrapping_add(1).to_be_bytes()),
    }
}

/// Builds the attachment once its addresses are known: the bridge and its gateway, the veth
/// pair, addresses, routes, table elements, the record. Undoes what it made if it fails.
fn build(
    env: &Env,
    conf: &NetConf,
    sets: &[Vec<Range>],
    asked: &[IpAddr],
    store: &Store,
    ns: &std::os::fd::OwnedFd,
    cont: &mut NlSocket,
) -> Result<CniResult, CniError> {
    let mut host = NlSocket::open().map_err(|e| CniError::netlink("cannot open netlink", &e))?;
    let is_gateway = conf.is_gateway || conf.is_default_gateway;
    let gateways: Vec<IpNet> = sets
        .iter()
        .map(|s| IpNet::new(s[0].gateway, s[0].subnet.prefix_len()).unwrap_or(s[0].subnet))
        .collect();
    let mut bridge = None;
    for (i, gw) in gateways.iter().enumerate() {
        let b = link::ensure_bridge(
            &mut host,
            &BridgeWanted {
                network: &conf.name,
                name: &conf.bridge,
                mtu: conf.mtu,
                promisc: conf.promisc_mode && i == 0,
                gateway: is_gateway.then_some(*gw),
            },
        )?;
        bridge = Some(b);
    }
    let Some(bridge) = bridge else {
        return Err(CniError::config("ipam: no range set"));
    };
    if is_gateway {
        enable_forwarding(&gateways)?;
    }
    // From here on, what fails is undone.
    let mut made = Made::default();
    let mut socks = Socks {
        host: &mut host,
        cont,
    };
    let res = attach(
        env, conf, sets, asked, store, ns, &mut socks, &bridge, &mut made,
    );
    if res.is_err() {
        if let Some(v) = &made.veth {
            let _ = host.execute(vec![crate::netlink::link::delete(Target::Name(v))]);
        }
        if let Some(e) = &made.entries {
            if let Ok(mut nf) = NfSocket::open() {
                let _ = nat::remove(&mut nf, &conf.name, e);
            }
        }
        let _ = store.release_known(&env.container_id, &env.ifname, &made.ips);
        let _ = record::remove(store.dir(), &env.container_id, &env.ifname);
    }
    res
}

fn enable_forwarding(gateways: &[IpNet]) -> Result<(), CniError> {
    for (v4, key) in [
        (true, "net.ipv4.ip_forward"),
        (false, "net.ipv6.conf.all.forwarding"),
    ] {
        if gateways.iter().any(|g| g.addr().is_ipv4() == v4)
            && netns::read_sysctl(key).ok().as_deref() != Some("1")
        {
            netns::write_sysctl(key, "1")
                .map_err(|e| CniError::io(format!("cannot set {key}=1"), &e))?;
        }
    }
    Ok(())
}

/// The netlink sockets of the host and of the container.
struct Socks<'a> {
    host: &'a mut NlSocket,
    cont: &'a mut NlSocket,
}

#[allow(clippy::too_many_arguments)]
fn attach(
    env: &Env,
    conf: &NetConf,
    sets: &[Vec<Range>],
    asked: &[IpAddr],
    store: &Store,
    ns: &std::os::fd::OwnedFd,
    socks: &mut Socks<'_>,
    bridge: &crate::netlink::link::LinkState,
    made: &mut Made,
) -> Result<CniResult, CniError> {
    let mut ips = Vec::new();
    for (i, set) in sets.iter().enumerate() {
        let want = asked
            .iter()
            .copied()
            .find(|a| set.iter().any(|r| r.contains(*a)));
        let (addr, range) = store.allocate(set, i, want, &env.container_id, &env.ifname)?;
        made.ips.push(addr.addr());
        ips.push((addr, range));
    }
    if let Some(a) = asked
        .iter()
        .find(|a| !ips.iter().any(|(n, _)| n.addr() == **a))
    {
        return Err(CniError::new(
            code::INTERNAL,
            format!(
                "requested IP address {a} is not in any range of network {}",
                conf.name
            ),
        ));
    }
    let gateways: Vec<IpAddr> = ips.iter().map(|(_, r)| r.gateway).collect();
    let (result_routes, install) = routes(conf, &gateways);

    let veth = link::host_veth_name(&conf.name, &env.container_id, &env.ifname);
    let host_end = VethEnd {
        name: &veth,
        netns_fd: None,
        index: 0,
        mtu: conf.mtu,
        mac: None,
        master: Some(bridge.index),
        group: 0,
    };
    let cont_end = VethEnd {
        name: &env.ifname,
        netns_fd: Some(std::os::fd::AsRawFd::as_raw_fd(ns)),
        index: 0,
        mtu: conf.mtu,
        mac: requested_mac(env, conf)?,
        master: None,
        group: 0,
    };
    let (m, f) = crate::netlink::link::new_veth(&host_end, &cont_end);
    let host = &mut *socks.host;
    host.request(m, f).map_err(|e| {
        CniError::netlink(
            format!("cannot create veth pair {veth} / {}", env.ifname),
            &e,
        )
    })?;
    made.veth = Some(veth.clone());
    let mut reqs = crate::netlink::link::set(
        Target::Name(&veth),
        &LinkChange {
            alias: Some(link::tag(
                &conf.name,
                Some((&env.container_id, &env.ifname)),
            )),
            up: Some(true),
            // The host end carries no address: without IPv6 address generation it sends no
            // duplicate-address probes and multicast reports that the bridge would flood to
            // every other port (a cost that grows with the number of containers).
            ipv6_addrgen_none: true,
            ..Default::default()
        },
    );
    let host_state = link::by_name(host, &veth)
        .map_err(|e| CniError::netlink(format!("veth {veth}"), &e))?
        .ok_or_else(|| CniError::new(code::INTERNAL, format!("veth {veth} vanished")))?;
    if conf.hairpin_mode {
        reqs.push(link::hairpin(host_state.index));
    }
    link::exec(host, &format!("cannot set up {veth}"), reqs)?;

    let addrs: Vec<IpNet> = ips.iter().map(|(a, _)| *a).collect();
    let cont_mac = link::configure_container(socks.cont, &env.ifname, &addrs, &install)?;

    let plain: Vec<IpAddr> = addrs.iter().map(IpNet::addr).collect();
    let entries = nat::entries_for(&conf.runtime_config.port_mappings, &plain)?;
    if conf.ip_masq || !entries.is_empty() {
        let mut nf =
            NfSocket::open().map_err(|e| CniError::netlink("cannot open nf_tables", &e))?;
        let subnets: Vec<IpNet> = sets.iter().map(|s| s[0].subnet).collect();
        nat::ensure_table(&mut nf, &conf.name, &subnets, conf.ip_masq)?;
        nat::add(&mut nf, &conf.name, &entries)?;
        made.entries = Some(entries.clone());
    }
    record::write(
        store.dir(),
        &Record {
            container_id: env.container_id.clone(),
            ifname: env.ifname.clone(),
            host_veth: veth.clone(),
            ips: addrs.clone(),
            entries,
        },
    )?;
    let mac = |m: Option<crate::model::MacAddr>| m.map(|m| m.to_string()).unwrap_or_default();
    Ok(CniResult {
        interfaces: vec![
            Interface {
                name: conf.bridge.clone(),
                mac: mac(bridge.mac),
                sandbox: None,
            },
            Interface {
                name: veth,
                mac: mac(host_state.mac),
                sandbox: None,
            },
            Interface {
                name: env.ifname.clone(),
                mac: cont_mac,
                sandbox: Some(env.netns.clone()),
            },
        ],
        ips: ips
            .iter()
            .map(|(a, r)| IpConfig {
                address: *a,
                gateway: Some(r.gateway),
                interface: Some(2),
            })
            .collect(),
        routes: result_routes,
    })
}
