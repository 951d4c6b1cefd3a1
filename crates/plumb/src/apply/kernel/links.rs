//! Links: creation (bridges and veth pairs, tagged right after), settings, parking, deletion.

use netlink_packet_route::RouteNetlinkMessage;

use super::{ok_results, set_err, KernelBackend, NodeReq};
use crate::apply::StepError;
use crate::model::NodeRef;
use crate::netlink::link::{self, BridgeSpec, LinkChange, Target, VethEnd as NlEnd};
use crate::netlink::{addr, route, Request};
use crate::ownership::{self, RTPROT_PLUMB};
use crate::plan::{Step, VethEnd, DEFAULT_MTU};

/// One creation request and the tagging requests that follow it.
struct Create {
    step: usize,
    req: Request,
    tags: Vec<(NodeRef, Request)>,
    /// Interface indexes plumb chose for it (empty when the kernel chooses).
    preset: Vec<NodeRef>,
}

fn target(index: u32, name: &str) -> Target<'_> {
    if index != 0 {
        Target::Index(index)
    } else {
        Target::Name(name)
    }
}

impl KernelBackend {
    /// The tag request of a new interface: its alias, IPv6 address generation off where it
    /// carries no IPv6 address, IPv4 secondaries promoted, and (for a veth peer, whose
    /// `IFLA_MASTER` the kernel ignores at creation) its bridge.
    fn tag_requests(
        node: &NodeRef,
        t: Target<'_>,
        alias: &str,
        ipv6: bool,
        master: Option<u32>,
    ) -> Vec<(NodeRef, Request)> {
        let change = LinkChange {
            alias: Some(alias.to_string()),
            ipv6_addrgen_none: !ipv6,
            ipv4_promote_secondaries: true,
            master,
            ..Default::default()
        };
        link::set(t, &change)
            .into_iter()
            .map(|r| (node.clone(), r))
            .collect()
    }

    fn bridge_create(&mut self, i: usize, s: &Step, choose: bool) -> Create {
        let Step::CreateBridge {
            node,
            name,
            mtu,
            stp,
            mac,
            ipv6,
        } = s
        else {
            unreachable!("bridge_create is called with bridges")
        };
        let spec = BridgeSpec {
            name: name.as_str(),
            netns_fd: self.netns_fd(node),
            // A fixed MTU stops the bridge from recomputing it from its ports on every new port.
            mtu: Some(mtu.unwrap_or(DEFAULT_MTU)),
            mac: *mac,
            stp: *stp,
            group: self.group,
        };
        let (mut msg, flags) = link::new_bridge(&spec);
        let idx = if choose {
            self.next_index(node, name.as_str())
        } else {
            0
        };
        if let RouteNetlinkMessage::NewLink(m) = &mut msg {
            m.header.index = idx;
        }
        let tag = ownership::lab_tag(&self.lab);
        Create {
            step: i,
            req: (msg, flags),
            tags: Self::tag_requests(node, target(idx, name.as_str()), &tag, *ipv6, None),
            preset: if idx != 0 {
                vec![node.clone()]
            } else {
                Vec::new()
            },
        }
    }

    fn veth_create(
        &mut self,
        i: usize,
        a: &VethEnd,
        b: &VethEnd,
        link_id: &str,
        masters: [Option<u32>; 2],
        choose: bool,
    ) -> Create {
        let ia = if choose {
            self.next_index(&a.node, a.name.as_str())
        } else {
            0
        };
        // The kernel honours the peer's index only when the first end's is set.
        let ib = if ia != 0 {
            self.next_index(&b.node, b.name.as_str())
        } else {
            0
        };
        for (e, idx) in [(a, ia), (b, ib)] {
            if idx == 0 {
                self.kernel_chose_index(&e.node);
                self.index.remove(&(e.node.clone(), e.name.to_string()));
            }
        }
        let group = self.group;
        fn end<'e>(
            e: &'e VethEnd,
            index: u32,
            master: Option<u32>,
            netns_fd: Option<i32>,
            group: u32,
        ) -> NlEnd<'e> {
            NlEnd {
                name: e.name.as_str(),
                netns_fd,
                index,
                mtu: e.mtu,
                mac: e.mac,
                master,
                group,
            }
        }
        let req = link::new_veth(
            &end(a, ia, masters[0], self.netns_fd(&a.node), group),
            &end(b, ib, None, self.netns_fd(&b.node), group),
        );
        let tag = ownership::veth_tag(&self.lab, link_id);
        let mut tags = Self::tag_requests(&a.node, target(ia, a.name.as_str()), &tag, a.ipv6, None);
        tags.extend(Self::tag_requests(
            &b.node,
            target(ib, b.name.as_str()),
            &tag,
            b.ipv6,
            masters[1],
        ));
        let mut preset = Vec::new();
        if ia != 0 {
            preset.push(a.node.clone());
        }
        if ib != 0 {
            preset.push(b.node.clone());
        }
        Create {
            step: i,
            req,
            tags,
            preset,
        }
    }

    /// `ip link add` for the bridges and veth pairs at `idx` in `batch` (their namespaces are
    /// open), all through the host's socket (each device is born in its namespace, in the lab's
    /// link group), then one tag request per new device. Results go to `results[i]`.
    pub(super) fn create_links_for(
        &mut self,
        batch: &[Step],
        idx: &[usize],
        results: &mut [Result<(), StepError>],
    ) {
        let mut creates = Vec::new();
        let mut masters_of = Vec::new();
        for &i in idx {
            if results[i].is_err() {
                continue;
            }
            let s = &batch[i];
            match s {
                Step::CreateBridge { .. } => creates.push(self.bridge_create(i, s, true)),
                Step::CreateVeth { a, b, link_id } => {
                    let mut masters = [None, None];
                    for (k, e) in [a, b].into_iter().enumerate() {
                        if let Some(m) = &e.master {
                            match self.existing_index(&e.node, m.as_str()) {
                                Ok(x) => masters[k] = Some(x),
                                Err(err) => set_err(results, i, err),
                            }
                        }
                    }
                    if results[i].is_ok() {
                        creates.push(self.veth_create(i, a, b, link_id, masters, true));
                        masters_of.push((i, masters));
                    }
                }
                _ => {}
            }
        }
        let sent: Vec<Request> = creates.iter().map(|c| c.req.clone()).collect();
        let answers = self.host.execute(sent);
        // An index plumb chose may be taken after all (by an interface plumb does not know
        // of): such a create is sent again with the kernel choosing, never failing the lab.
        let mut retry = Vec::new();
        let mut done = Vec::new();
        for (c, r) in creates.into_iter().zip(answers) {
            match r {
                Err(e) if e.errno() == Some(libc::EEXIST) && !c.preset.is_empty() => {
                    retry.push(c.step)
                }
                Err(e) => set_err(results, c.step, e.into()),
                Ok(()) => done.push(c),
            }
        }
        if !retry.is_empty() {
            tracing::debug!(
                creates = retry.len(),
                "preset interface index taken: retrying"
            );
            let mut again = Vec::new();
            for i in retry {
                match &batch[i] {
                    Step::CreateBridge { .. } => {
                        if let Step::CreateBridge { node, name, .. } = &batch[i] {
                            self.kernel_chose_index(node);
                            self.index.remove(&(node.clone(), name.to_string()));
                        }
                        again.push(self.bridge_create(i, &batch[i], false));
                    }
                    Step::CreateVeth { a, b, link_id } => {
                        let masters = masters_of
                            .iter()
                            .find(|(k, _)| *k == i)
                            .map(|(_, m)| *m)
                            .unwrap_or_default();
                        again.push(self.veth_create(i, a, b, link_id, masters, false));
                    }
                    _ => {}
                }
            }
            let sent: Vec<Request> = again.iter().map(|c| c.req.clone()).collect();
            for (c, r) in again.into_iter().zip(self.host.execute(sent)) {
                match r {
                    Err(e) => set_err(results, c.step, e.into()),
                    Ok(()) => done.push(c),
                }
            }
        }
        // Tag every new device, turn IPv6 address generation off where no IPv6 address is
        // wanted, and attach veth peers to their bridges, before anything brings them up.
        let tags: Vec<NodeReq> = done
            .into_iter()
            .flat_map(|c| c.tags.into_iter().map(move |(n, r)| (n, r, c.step)))
            .collect();
        self.send(tags, results);
    }

    /// Parks (down, renamed out of the way) or unparks (renamed back, up again, with what the
    /// kernel dropped when it went down) interfaces.
    pub(super) fn park_links(&mut self, batch: &[Step]) -> Vec<Result<(), StepError>> {
        let mut results = ok_results(batch.len());
        let node_of = |i: usize| match &batch[i] {
            Step::ParkLink { node, .. } | Step::UnparkLink { node, .. } => vec![node.clone()],
            _ => Vec::new(),
        };
        let failures = self.open_nodes((0..batch.len()).flat_map(node_of));
        KernelBackend::fail_unopened(&failures, &mut results, node_of);
        let mut reqs = Vec::new();
        let mut restore = Vec::new();
        for (i, s) in batch.iter().enumerate() {
            if results[i].is_err() {
                continue;
            }
            let (node, from, to, up_after) = match s {
                Step::ParkLink {
                    node, name, parked, ..
                } => (
                    node,
                    name.clone(),
                    parked.as_ref().map(|p| p.to_string()),
                    false,
                ),
                Step::UnparkLink {
                    node,
                    parked,
                    name,
                    up,
                    ..
                } => (
                    node,
                    parked
                        .as_ref()
                        .map_or_else(|| name.clone(), |p| p.to_string()),
                    parked.is_some().then(|| name.clone()),
                    *up,
                ),
                _ => continue,
            };
            let idx = match self.existing_index(node, &from) {
                Ok(x) => x,
                Err(e) => {
                    results[i] = Err(e);
                    continue;
                }
            };
            let down = LinkChange {
                up: Some(false),
                ..Default::default()
            };
            for r in link::set(Target::Index(idx), &down) {
                reqs.push((node.clone(), r, i));
            }
            if let Some(to) = &to {
                let rename = LinkChange {
                    name: Some(to.clone()),
                    ..Default::default()
                };
                for r in link::set(Target::Index(idx), &rename) {
                    reqs.push((node.clone(), r, i));
                }
            }
            if up_after {
                let up = LinkChange {
                    up: Some(true),
                    ..Default::default()
                };
                for r in link::set(Target::Index(idx), &up) {
                    reqs.push((node.clone(), r, i));
                }
            }
            if let Some(to) = to {
                self.index.remove(&(node.clone(), from));
                self.index.insert((node.clone(), to), idx);
            }
            if let Step::UnparkLink {
                restore_addrs,
                restore_routes,
                ..
            } = s
            {
                for a in restore_addrs {
                    restore.push((node.clone(), addr::add(idx, a)));
                }
                for r in restore_routes {
                    let spec = route::RouteSpec {
                        dst: r.dst,
                        via: r.via,
                        oif: Some(idx),
                    };
                    restore.push((node.clone(), route::add(&spec, RTPROT_PLUMB)));
                }
            }
        }
        self.send(reqs, &mut results);
        // Best effort, after the interface is back: an address or route that exists already
        // (EEXIST) is what was wanted.
        let mut scratch = ok_results(restore.len());
        let restore: Vec<NodeReq> = restore
            .into_iter()
            .enumerate()
            .map(|(k, (n, r))| (n, r, k))
            .collect();
        self.send(restore, &mut scratch);
        for r in scratch {
            if let Err(e) = r {
                if e.errno() != Some(libc::EEXIST) {
                    tracing::warn!("restoring an address or route of a renamed interface: {e}");
                }
            }
        }
        results
    }

    /// Whether interface `index` in `node` is still called `name` (`ip link show` by index).
    fn still_named(&mut self, node: &NodeRef, index: u32, name: &str) -> Result<bool, StepError> {
        let Some(sock) = self.sock(node) else {
            return Ok(false);
        };
        Ok(link::get(sock, index)?.is_some_and(|l| l.name == name))
    }

    /// `ip link del` by index (or name), and `ip link del group N`. An interface deleted by
    /// index is first checked to still be the one the plan saw.
    pub(super) fn delete_links(&mut self, batch: &[Step]) -> Vec<Result<(), StepError>> {
        let mut results = ok_results(batch.len());
        let failures = self.open_nodes(batch.iter().filter_map(|s| match s {
            Step::DeleteLink { node, .. } => Some(node.clone()),
            _ => None,
        }));
        let mut reqs = Vec::new();
        for (i, s) in batch.iter().enumerate() {
            match s {
                Step::DeleteLink { node, name, index } => {
                    if let Some(e) = failures.get(node) {
                        // The namespace is gone (ENOENT on open), and the link with it: done.
                        if !e.is_gone() {
                            KernelBackend::fail_unopened(&failures, &mut results[i..=i], |_| {
                                vec![node.clone()]
                            });
                        }
                        continue;
                    }
                    let t = match index {
                        Some(x) => match self.still_named(node, *x, name) {
                            Ok(true) => Target::Index(*x),
                            // It is gone already (a namespace deleted by hand takes its veth
                            // peers along, asynchronously), and the kernel may have given its
                            // index to a new interface: nothing to delete.
                            Ok(false) => continue,
                            Err(e) => {
                                results[i] = Err(e);
                                continue;
                            }
                        },
                        None => Target::Name(name),
                    };
                    reqs.push((node.clone(), link::delete(t), i));
                }
                Step::DeleteGroup { group } => {
                    reqs.push((NodeRef::Host, link::delete_group(*group), i))
                }
                _ => {}
            }
        }
        self.send(reqs, &mut results);
        // A deleted veth takes its peer along, wherever it is: every cached index may be stale.
        self.known.clear();
        self.index.clear();
        results
    }
}
