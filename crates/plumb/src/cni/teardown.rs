//! DEL, CHECK, STATUS and GC.

use std::collections::HashSet;
use std::net::IpAddr;

use super::env::Env;
use super::error::{code, CniError};
use super::ipam::{self, Store};
use super::link;
use super::nat::{self, Entries};
use super::record::{self, Record};
use super::spec::{CniResult, NetConf};
use crate::netlink::link::{LinkChange, LinkKind, LinkState, Target};
use crate::netlink::{addr, route, NlSocket};
use crate::nftables::NfSocket;

fn host_sock() -> Result<NlSocket, CniError> {
    NlSocket::open().map_err(|e| CniError::netlink("cannot open netlink", &e))
}

/// How DEL removes a veth pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Removal {
    /// `RTM_DELLINK` before answering. The kernel's removal of a device ends with an RCU
    /// barrier in the caller (14-20 ms on the machines measured), whatever else is done.
    Now,
    /// Detached before answering (both ends down and renamed out of the way, the host end
    /// tagged as detaching) and removed after answering, by [`finish_detached`].
    Detach,
}

/// Equivalent to `ip link set HOST down; ip link set HOST name vdel… alias "… detaching"` and,
/// in the container's namespace, the same for the container's end if it is the host end's
/// peer: nothing reaches the container through the pair any more, and the interface names it
/// held are free for the next ADD. Returns the host end's new name.
fn detach(
    sock: &mut NlSocket,
    network: &str,
    att: (&str, &str),
    host: &LinkState,
    netns: Option<&str>,
) -> Result<String, CniError> {
    let gone = link::detaching_name(host.index);
    let mut reqs = crate::netlink::link::set(Target::Index(host.index), &down());
    reqs.extend(crate::netlink::link::set(
        Target::Index(host.index),
        &LinkChange {
            name: Some(gone.clone()),
            alias: Some(link::detaching_tag(network, att)),
            ..Default::default()
        },
    ));
    link::exec(sock, &format!("cannot detach veth {}", host.name), reqs)?;
    let Some(ns) = netns.and_then(|p| link::open_netns(p).ok()) else {
        return Ok(gone);
    };
    let (ifname, peer) = (att.1, host.index);
    link::in_netns(&ns, |s| {
        let what = || format!("cannot detach {ifname} in the container");
        match link::by_name(s, ifname).map_err(|e| CniError::netlink(what(), &e))? {
            Some(l) if l.kind == LinkKind::Veth && l.peer_index == Some(peer) => {
                let mut reqs = crate::netlink::link::set(Target::Index(l.index), &down());
                reqs.extend(crate::netlink::link::set(
                    Target::Index(l.index),
                    &LinkChange {
                        name: Some(link::detaching_name(l.index)),
                        ..Default::default()
                    },
                ));
                link::exec(s, &what(), reqs)
            }
            _ => Ok(()),
        }
    })?;
    Ok(gone)
}

fn down() -> LinkChange {
    LinkChange {
        up: Some(false),
        ..Default::default()
    }
}

/// Removes the pairs DEL detached, after the plugin has answered: in a child process that
/// outlives the plugin (so the runtime does not wait for the kernel's RCU barrier), or here if
/// the process cannot fork. A pair whose removal never happens (the child killed) keeps its
/// detaching tag: GC removes it.
fn finish_detached(names: &[String]) {
    if names.is_empty() {
        return;
    }
    let remove = || {
        if let Ok(mut s) = NlSocket::open() {
            for n in names {
                // Gone already (the container's namespace deleted with the pair) is fine.
                let _ = s.request(crate::netlink::link::delete(Target::Name(n)).0, 0);
            }
        }
    };
    if let Err(e) = crate::sys::run_detached(remove) {
        tracing::debug!("removing detached veths in the plugin itself: {e}");
        remove();
    }
}

/// Removes host veth ends found by name, each only if its tag names this attachment (a veth
/// end already gone counts as removed): now, or detached with the names to remove later
/// pushed onto `later`. Returns whether one was removed or detached.
fn delete_host_ends(
    sock: &mut NlSocket,
    network: &str,
    att: (&str, &str),
    names: &[String],
    how: (Removal, Option<&str>),
    later: &mut Vec<String>,
) -> Result<bool, CniError> {
    let mut deleted = false;
    for n in names {
        let Some(l) =
            link::by_name(sock, n).map_err(|e| CniError::netlink(format!("veth {n}"), &e))?
        else {
            continue;
        };
        let ours = l
            .alias
            .as_deref()
            .and_then(link::parse_tag)
            .is_some_and(|(net, a)| net == network && a == Some(att));
        if !ours {
            continue;
        }
        if how.0 == Removal::Detach {
            match detach(sock, network, att, &l, how.1) {
                Ok(gone) => {
                    later.push(gone);
                    deleted = true;
                    continue;
                }
                // Removed now instead (by index: the end may already carry its new name).
                Err(e) => tracing::debug!("{e}; removing the pair now"),
            }
        }
        match sock.request(crate::netlink::link::delete(Target::Index(l.index)).0, 0) {
            Ok(()) => deleted = true,
            Err(e) if e.errno().is_some_and(crate::netlink::is_gone_errno) => {}
            Err(e) => return Err(CniError::netlink(format!("cannot delete veth {n}"), &e)),
        }
    }
    Ok(deleted)
}

/// The elements an attachment has in the table: from its record, and from `prevResult` with
/// the configuration (`runtimeConfig.portMappings`).
fn entries_of(conf: &NetConf, rec: Option<&Record>, prev: Option<&CniResult>) -> Entries {
    let mut e = rec.map(|r| r.entries.clone()).unwrap_or_default();
    if let Some(p) = prev {
        let ips: Vec<IpAddr> = p.ips.iter().map(|c| c.address.addr()).collect();
        // A mapping no address of prevResult can take has no element to remove or check.
        let from_prev = nat::entries_for(&conf.runtime_config.port_mappings, &ips);
        for x in from_prev.map(|f| f.ports).unwrap_or_default() {
            if !e.ports.contains(&x) {
                e.ports.push(x);
            }
        }
    }
    e
}

fn prev_result(conf: &NetConf) -> Option<CniResult> {
    conf.prev_result
        .as_ref()
        .and_then(|v| CniResult::from_prev(v).ok())
}

/// Removes one attachment: host veth end (its peer goes with it), the container's interface if
/// the host end was not found, table elements, reservations, record.
fn remove_attachment(
    conf: &NetConf,
    store: &Store,
    host: &mut NlSocket,
    att: (&str, &str),
    (netns, removal): (Option<&str>, Removal),
    prev: Option<&CniResult>,
    later: &mut Vec<String>,
) -> Result<(), CniError> {
    let (cid, ifname) = att;
    let rec = record::read(store.dir(), cid, ifname);
    let mut names = vec![link::host_veth_name(&conf.name, cid, ifname)];
    if let Some(r) = &rec {
        names.push(r.host_veth.clone());
    }
    if let Some(p) = prev {
        names.extend(
            p.interfaces
                .iter()
                .filter(|i| i.sandbox.is_none() && i.name != conf.bridge)
                .map(|i| i.name.clone()),
        );
    }
    names.dedup();
    let mut errors = Vec::new();
    let deleted = delete_host_ends(host, &conf.name, att, &names, (removal, netns), later)
        .unwrap_or_else(|e| {
            errors.push(e);
            false
        });
    if !deleted {
        if let Some(ns) = netns.and_then(|p| link::open_netns(p).ok()) {
            let r = link::in_netns(&ns, |s| match link::by_name(s, ifname) {
                Ok(Some(l)) if l.kind == LinkKind::Veth => s
                    .request(crate::netlink::link::delete(Target::Index(l.index)).0, 0)
                    .or_else(|e| {
                        if e.errno().is_some_and(crate::netlink::is_gone_errno) {
                            Ok(())
                        } else {
                            Err(e)
                        }
                    })
                    .map_err(|e| CniError::netlink(format!("cannot delete {ifname}"), &e)),
                Ok(_) => Ok(()),
                Err(e) => Err(CniError::netlink(
                    "cannot read the container's interfaces",
                    &e,
                )),
            });
            if let Err(e) = r {
                errors.push(e);
            }
        }
    }
    let entries = entries_of(conf, rec.as_ref(), prev);
    if !entries.is_empty() {
        match NfSocket::open() {
            Ok(mut nf) => {
                if let Err(e) = nat::remove(&mut nf, &conf.name, &entries) {
                    errors.push(e);
                }
            }
            Err(e) => errors.push(CniError::netlink("cannot open nf_tables", &e)),
        }
    }
    let mut known: Vec<IpAddr> = rec
        .as_ref()
        .map(|r| r.ips.iter().map(|n| n.addr()).collect())
        .unwrap_or_default();
    known.extend(
        prev.iter()
            .flat_map(|p| p.ips.iter().map(|c| c.address.addr())),
    );
    if let Err(e) = store.release_known(cid, ifname, &known) {
        errors.push(e);
    }
    if errors.is_empty() {
        record::remove(store.dir(), cid, ifname)?;
    }
    match errors.len() {
        0 => Ok(()),
        1 => Err(errors.remove(0)),
        _ => {
            let first = errors.remove(0);
            let rest: Vec<String> = errors.iter().map(ToString::to_string).collect();
            Err(
                CniError::new(first.code, first.msg.clone()).details(format!(
                    "{}; also: {}",
                    first.details,
                    rest.join("; ")
                )),
            )
        }
    }
}

/// DEL: idempotent; works when the namespace, the interface or the reservation is gone.
///
/// Answers once the attachment is detached and released (the pair down and renamed, its table
/// elements, reservations and record gone); the pair itself is removed after the answer, see
/// [`finish_detached`].
pub fn del(env: &Env, conf: &NetConf) -> Result<(), CniError> {
    let mut later = Vec::new();
    let r = (|| {
        // The store's lock is held until the attachment is detached and released, and no
        // longer: the child that removes the pair does not inherit it.
        let store = Store::open(&super::data_dir(conf), &conf.name)?;
        let mut host = host_sock()?;
        let prev = prev_result(conf);
        let netns = Some(env.netns.as_str()).filter(|s| !s.is_empty());
        remove_attachment(
            conf,
            &store,
            &mut host,
            (&env.container_id, &env.ifname),
            (netns, Removal::Detach),
            prev.as_ref(),
            &mut later,
        )
    })();
    finish_detached(&later);
    r
}

fn failed(msg: String) -> CniError {
    CniError::new(code::INTERNAL, msg)
}

/// CHECK: the container's interface, addresses and routes, the host end on the bridge, the
/// gateway, the table elements and the reservations, against `prevResult`.
pub fn check(env: &Env, conf: &NetConf) -> Result<(), CniError> {
    let prev_v = conf
        .prev_result
        .as_ref()
        .ok_or_else(|| CniError::config("CHECK needs prevResult"))?;
    let prev = CniResult::from_prev(prev_v)?;
    let ns = env.open_netns()?;
    let store = Store::open(&super::data_dir(conf), &conf.name)?;
    for ip in &prev.ips {
        let a = ip.address.addr();
        if store.holder(a)?.as_ref() != Some(&(env.container_id.clone(), env.ifname.clone())) {
            return Err(failed(format!(
                "the reservation of {a} for {}/{} is missing",
                env.container_id, env.ifname
            )));
        }
    }
    let want_mac = prev
        .interfaces
        .iter()
        .find(|i| i.name == env.ifname && i.sandbox.is_some())
        .map(|i| i.mac.to_ascii_lowercase());
    let ifname = env.ifname.clone();
    let prev_c = prev.clone();
    link::in_netns(&ns, move |s| {
        let l = link::by_name(s, &ifname)
            .map_err(|e| CniError::netlink("cannot read the container's interfaces", &e))?
            .ok_or_else(|| failed(format!("container interface {ifname} is missing")))?;
        let mac = l.mac.map(|m| m.to_string()).unwrap_or_default();
        if let Some(w) = want_mac.filter(|w| !w.is_empty()) {
            if w != mac {
                return Err(failed(format!(
                    "{ifname} has MAC {mac}, prevResult says {w}"
                )));
            }
        }
        if !l.up {
            return Err(failed(format!("{ifname} is down")));
        }
        let addrs = addr::dump(s).map_err(|e| CniError::netlink("cannot read addresses", &e))?;
        for ip in &prev_c.ips {
            if !addrs
                .iter()
                .any(|a| a.index == l.index && a.addr == ip.address)
            {
                return Err(failed(format!("{ifname} lacks its address {}", ip.address)));
            }
        }
        let routes = route::dump(s).map_err(|e| CniError::netlink("cannot read routes", &e))?;
        for r in &prev_c.routes {
            if !routes.iter().any(|x| {
                x.dst == r.dst && (r.gw.is_none() || x.via == r.gw) && x.oif == Some(l.index)
            }) {
                return Err(failed(format!(
                    "route to {} is missing in the container",
                    r.dst
                )));
            }
        }
        Ok(())
    })?;
    let mut host = host_sock()?;
    let br = link::by_name(&mut host, &conf.bridge)
        .map_err(|e| CniError::netlink("cannot read the bridge", &e))?
        .filter(|l| l.kind == LinkKind::Bridge)
        .ok_or_else(|| failed(format!("bridge {} is missing", conf.bridge)))?;
    if conf.is_gateway || conf.is_default_gateway {
        let addrs =
            addr::dump(&mut host).map_err(|e| CniError::netlink("cannot read addresses", &e))?;
        for ip in &prev.ips {
            if let Some(gw) = ip.gateway {
                if !addrs
                    .iter()
                    .any(|a| a.index == br.index && a.addr.addr() == gw)
                {
                    return Err(failed(format!("bridge {} lacks gateway {gw}", conf.bridge)));
                }
            }
        }
    }
    let rec = record::read(store.dir(), &env.container_id, &env.ifname);
    let veth = rec
        .as_ref()
        .map(|r| r.host_veth.clone())
        .unwrap_or_else(|| link::host_veth_name(&conf.name, &env.container_id, &env.ifname));
    let v = link::by_name(&mut host, &veth)
        .map_err(|e| CniError::netlink("cannot read the host end", &e))?
        .ok_or_else(|| failed(format!("host end {veth} is missing")))?;
    if v.master != Some(br.index) {
        return Err(failed(format!(
            "host end {veth} is not a port of {}",
            conf.bridge
        )));
    }
    let entries = entries_of(conf, rec.as_ref(), Some(&prev));
    if conf.ip_masq || !entries.is_empty() {
        let mut nf =
            NfSocket::open().map_err(|e| CniError::netlink("cannot open nf_tables", &e))?;
        if !nat::table_exists(&mut nf, &conf.name)? {
            return Err(failed(format!(
                "table inet {} (masquerade and port mappings) is missing",
                nat::table_name(&conf.name)
            )));
        }
        nat::check(&mut nf, &conf.name, &entries)?;
    }
    Ok(())
}

/// STATUS: code 50 when a range set has no free address.
pub fn status(conf: &NetConf) -> Result<(), CniError> {
    let sets = ipam::range_sets(&conf.ipam)?;
    let store = Store::open(&super::data_dir(conf), &conf.name)?;
    for (free, set) in store.free(&sets)?.iter().zip(&sets) {
        if *free == 0 {
            let r: Vec<String> = set
                .iter()
                .map(|r| format!("{}-{}", r.start, r.end))
                .collect();
            return Err(CniError::new(
                code::PLUGIN_NOT_AVAILABLE,
                format!("no IP addresses available in range set {}", r.join(",")),
            ));
        }
    }
    Ok(())
}

/// GC: removes every attachment (reservation, record, tagged host veth end, table elements)
/// that is not in the valid set.
pub fn gc(conf: &NetConf) -> Result<(), CniError> {
    let valid: HashSet<(String, String)> = conf
        .valid_attachments
        .iter()
        .chain(&conf.attachments)
        .flatten()
        .map(|a| (a.container_id.clone(), a.ifname.clone()))
        .collect();
    let store = Store::open(&super::data_dir(conf), &conf.name)?;
    let mut host = host_sock()?;
    let mut stale: Vec<(String, String)> = Vec::new();
    let mut note = |cid: &str, ifname: &str| {
        let k = (cid.to_string(), ifname.to_string());
        if !valid.contains(&k) && !stale.contains(&k) {
            stale.push(k);
        }
    };
    for r in store.reservations()? {
        note(&r.container_id, &r.ifname);
    }
    for r in record::all(store.dir()) {
        note(&r.container_id, &r.ifname);
    }
    let links = crate::netlink::link::dump(&mut host)
        .map_err(|e| CniError::netlink("cannot list interfaces", &e))?;
    for l in &links {
        if let Some((net, Some((cid, ifname)))) = l.alias.as_deref().and_then(link::parse_tag) {
            if net == conf.name {
                note(cid, ifname);
            }
        }
    }
    let mut first = None;
    let mut later = Vec::new();
    for (cid, ifname) in &stale {
        let how = (None, Removal::Now);
        if let Err(e) = remove_attachment(
            conf,
            &store,
            &mut host,
            (cid, ifname),
            how,
            None,
            &mut later,
        ) {
            first.get_or_insert(e);
        }
    }
    // Pairs a DEL detached whose removal did not happen (or has not yet): removed now.
    for l in &links {
        let ours = l.alias.as_deref().is_some_and(|a| {
            link::is_detaching(a) && link::parse_tag(a).is_some_and(|(net, _)| net == conf.name)
        });
        if !ours {
            continue;
        }
        match host.request(crate::netlink::link::delete(Target::Index(l.index)).0, 0) {
            Ok(()) => {}
            Err(e) if e.errno().is_some_and(crate::netlink::is_gone_errno) => {}
            Err(e) => {
                first.get_or_insert(CniError::netlink(
                    format!("cannot delete detached veth {}", l.name),
                    &e,
                ));
            }
        }
    }
    first.map_or(Ok(()), Err)
}
