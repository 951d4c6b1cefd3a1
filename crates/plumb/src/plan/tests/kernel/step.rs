//! The simulator's steps: what each plan step does to the simulated kernel.

use super::{connected, next_index, Kernel};
use crate::inspect::{LinkKind, LinkState};
use crate::model::names::LabName;
use crate::model::{MacAddr, NodeRef};
use crate::ownership::{lab_group, lab_tag, veth_tag, RTPROT_PLUMB};
use crate::plan::tests::{link, named, RTPROT_KERNEL};
use crate::plan::Step;

impl Kernel {
    pub fn step(&mut self, lab: &LabName, step: &Step) {
        let group = lab_group(lab);
        match step {
            Step::Firewall { node, version, .. } | Step::RestoreFirewall { node, version, .. } => {
                self.assert_may_add(lab, node, step);
                let st = self
                    .state_mut(node)
                    .expect("firewall in a missing namespace");
                st.nft_version = Some(version.clone());
            }
            Step::DeleteFirewall { node, .. } => {
                if let Some(st) = self.state_mut(node) {
                    if st.nft_version.take().is_none() {
                        self.gone.push(step.clone());
                    }
                }
            }
            Step::CreateNs { ns } => {
                assert!(
                    !self.snap.namespaces.contains_key(ns),
                    "`{step}`: exists (EEXIST)"
                );
                let (_, mut named) = named(ns.as_str(), Some(&lab_tag(lab)), vec![]);
                named.name = ns.clone();
                self.snap.namespaces.insert(ns.clone(), named);
            }
            Step::DeleteNs { ns } => {
                let Some(named) = self.snap.namespaces.get(ns) else {
                    self.gone.push(step.clone());
                    return;
                };
                assert!(
                    named.owner() == Some(lab.as_str()) || named.state.is_err(),
                    "`{step}` deletes a namespace that is not lab {lab}'s"
                );
                let n = NodeRef::Ns(ns.clone());
                let names: Vec<String> = named
                    .state
                    .iter()
                    .flat_map(|s| s.links.iter().map(|l| l.name.clone()))
                    .collect();
                for name in names {
                    self.remove_link(&n, &name);
                }
                self.snap.namespaces.remove(ns);
            }
            Step::Sysctl {
                node, key, value, ..
            } => {
                self.assert_may_add(lab, node, step);
                if let Some(st) = self.state_mut(node) {
                    st.sysctls.insert(key.clone(), value.clone());
                }
            }
            Step::CreateBridge {
                node,
                name,
                mtu,
                mac,
                ipv6,
                stp,
            } => {
                self.assert_may_add(lab, node, step);
                assert!(
                    self.link(node, name.as_str()).is_none(),
                    "`{step}`: exists (EEXIST)"
                );
                let st = self.state_mut(node).unwrap();
                st.links.push(LinkState {
                    mtu: mtu.unwrap_or(1500),
                    mac: Some(*mac),
                    up: false,
                    lower_up: false,
                    group,
                    stp: Some(*stp),
                    ..link(
                        next_index(st),
                        name.as_str(),
                        LinkKind::Bridge,
                        Some(&lab_tag(lab)),
                    )
                });
                if *ipv6 {
                    self.addrgen.insert((node.clone(), name.to_string()));
                }
            }
            Step::CreateVeth { a, b, link_id } => {
                assert!(
                    (&a.node, &a.name) != (&b.node, &b.name),
                    "`{step}`: both ends are one"
                );
                let alias = veth_tag(lab, link_id);
                let mut indexes = Vec::new();
                for e in [a, b] {
                    self.assert_may_add(lab, &e.node, step);
                    assert!(
                        self.link(&e.node, e.name.as_str()).is_none(),
                        "`{step}`: {} exists in {} (EEXIST)",
                        e.name,
                        e.node
                    );
                    let master = e.master.as_ref().map(|m| {
                        self.link(&e.node, m.as_str())
                            .filter(|l| l.kind == LinkKind::Bridge)
                            .unwrap_or_else(|| panic!("`{step}`: no bridge {m} in {}", e.node))
                            .index
                    });
                    let mac = e.mac.unwrap_or_else(|| {
                        let [hi, low] = self.serial().to_be_bytes();
                        MacAddr([0x02, 0x5e, 0, 0, hi, low])
                    });
                    let st = self.state_mut(&e.node).unwrap();
                    let index = next_index(st);
                    st.links.push(LinkState {
                        mtu: e.mtu.unwrap_or(1500),
                        mac: Some(mac),
                        up: false,
                        lower_up: false,
                        master,
                        group,
                        ..link(index, e.name.as_str(), LinkKind::Veth, Some(&alias))
                    });
                    indexes.push(index);
                    if e.ipv6 {
                        self.addrgen.insert((e.node.clone(), e.name.to_string()));
                    }
                }
                let ka = (a.node.clone(), a.name.to_string());
                let kb = (b.node.clone(), b.name.to_string());
                self.link_mut(&ka.0, &ka.1).unwrap().peer_index = Some(indexes[1]);
                self.link_mut(&kb.0, &kb.1).unwrap().peer_index = Some(indexes[0]);
                self.peers.insert(ka.clone(), kb.clone());
                self.peers.insert(kb, ka);
            }
            Step::SetLink {
                node, name, set, ..
            } => {
                self.owned_or_lo(lab, node, name, step);
                let master = set.master.as_ref().map(|m| {
                    m.as_ref().map(|m| {
                        self.link(node, m.as_str())
                            .unwrap_or_else(|| panic!("`{step}`: no bridge {m} in {node}"))
                            .index
                    })
                });
                let l = self.link_mut(node, name).unwrap();
                if let Some(m) = set.mtu {
                    l.mtu = m;
                }
                if let Some(m) = set.mac {
                    l.mac = Some(m);
                }
                if let Some(m) = master {
                    l.master = m;
                }
                if let Some(i) = set.isolated {
                    l.isolated = i;
                }
                if let Some(s) = set.stp {
                    assert_eq!(l.kind, LinkKind::Bridge, "`{step}`: stp on a non-bridge");
                    l.stp = Some(s);
                }
                if let Some(up) = set.up {
                    self.set_up(node, name, up);
                }
            }
            Step::ParkLink {
                node, name, parked, ..
            } => {
                self.owned_link(lab, node, name, step);
                self.set_up(node, name, false);
                if let Some(p) = parked {
                    self.rename(node, name, p.as_str(), step);
                }
            }
            Step::UnparkLink {
                node,
                parked,
                name,
                up,
                restore_addrs,
                restore_routes,
            } => {
                if let Some(p) = parked {
                    self.owned_link(lab, node, p.as_str(), step);
                    self.rename(node, p.as_str(), name, step);
                } else {
                    self.owned_link(lab, node, name, step);
                }
                if *up {
                    self.set_up(node, name, true);
                }
                for a in restore_addrs {
                    let index = self.link(node, name).unwrap().index;
                    if !self.state(node).unwrap().addrs_of(index).any(|x| x == a) {
                        self.add_addr(node, name, a, step);
                    }
                }
                for r in restore_routes {
                    self.add_route(node, r, false, step);
                }
            }
            Step::AddAddr { node, dev, addr } => {
                self.assert_may_add(lab, node, step);
                self.add_addr(node, dev, addr, step);
            }
            Step::DelAddr { node, dev, addr } => {
                let Some(l) = self.link(node, dev) else {
                    self.gone.push(step.clone());
                    return;
                };
                let index = l.index;
                self.owned_or_lo(lab, node, dev, step);
                let st = self.state_mut(node).unwrap();
                let before = st.addrs.len();
                st.addrs.retain(|a| !(a.index == index && a.addr == *addr));
                if st.addrs.len() == before {
                    self.gone.push(step.clone());
                    return;
                }
                if let Some(dst) = connected(addr) {
                    st.routes.retain(|r| {
                        !(r.dst == dst && r.oif == Some(index) && r.protocol == RTPROT_KERNEL)
                    });
                }
            }
            Step::AddRoute {
                node,
                route,
                replaces,
            } => {
                self.assert_may_add(lab, node, step);
                self.add_route(node, route, replaces.is_some(), step);
            }
            Step::DelRoute { node, route } => {
                let st = self.state(node).unwrap();
                let dev = route.dev.as_ref().map(|d| st.link(d).map(|l| l.index));
                let found = st.routes.iter().position(|r| {
                    r.dst == route.dst
                        && r.via == route.via
                        && dev.is_none_or(|i| i.is_some() && r.oif == i)
                });
                let Some(pos) = found else {
                    self.gone.push(step.clone());
                    return;
                };
                assert_eq!(
                    st.routes[pos].protocol, RTPROT_PLUMB,
                    "`{step}` deletes a route plumb did not install"
                );
                self.state_mut(node).unwrap().routes.remove(pos);
            }
            Step::DeleteLink { node, name, index } => {
                let found = match index {
                    Some(i) => self
                        .state(node)
                        .and_then(|s| s.link_by_index(*i))
                        .map(|l| l.name.clone()),
                    None => self.link(node, name).map(|l| l.name.clone()),
                };
                let Some(found) = found else {
                    self.gone.push(step.clone());
                    return;
                };
                assert_eq!(&found, name, "`{step}`: the index names another interface");
                self.owned_link(lab, node, name, step);
                self.remove_link(node, name);
            }
            Step::DeleteGroup { group } => {
                // The kernel deletes by group without looking at aliases.
                let names: Vec<String> = self
                    .snap
                    .host
                    .links
                    .iter()
                    .filter(|l| l.group == *group)
                    .map(|l| l.name.clone())
                    .collect();
                for name in names {
                    self.remove_link(&NodeRef::Host, &name);
                }
            }
        }
    }

    /// Like `owned_link`, but `lo` of the lab's namespace counts as the lab's.
    fn owned_or_lo(&self, lab: &LabName, node: &NodeRef, name: &str, step: &Step) {
        let is_lo = self
            .link(node, name)
            .is_some_and(|l| l.kind == LinkKind::Loopback);
        if is_lo && *node != NodeRef::Host {
            self.assert_may_add(lab, node, step);
        } else {
            self.owned_link(lab, node, name, step);
        }
    }
}
