//! Firewall tables: written, saved, restored and removed, one nf_tables transaction per
//! namespace, over a `NETLINK_NETFILTER` socket opened inside it (once per run, on one thread
//! that visits the namespaces in turn; the transactions then run from here). A namespace's
//! table version is then recorded in its `lo` tag (`plumb:LAB fw=VERSION`), so the next
//! snapshot knows it without reading the table.

use std::os::fd::OwnedFd;

use super::{ok_results, KernelBackend, NodeReq};
use crate::apply::StepError;
use crate::model::NodeRef;
use crate::netlink::link::{self, LinkChange, Target};
use crate::netns;
use crate::nftables::{self, NfSocket};
use crate::plan::Step;

impl KernelBackend {
    /// Opens the nf_tables sockets of `nodes` that are not open yet; failures by node.
    fn open_nf(&mut self, nodes: &[NodeRef]) -> Vec<(NodeRef, StepError)> {
        let mut failures = Vec::new();
        if nodes.contains(&NodeRef::Host) && self.host_nf.is_none() {
            match NfSocket::open() {
                Ok(s) => self.host_nf = Some(s),
                Err(e) => failures.push((NodeRef::Host, StepError::Netlink(e))),
            }
        }
        let missing: Vec<_> = nodes
            .iter()
            .filter_map(|n| match n {
                NodeRef::Ns(name) => self
                    .ns
                    .get(name)
                    .filter(|h| h.nf.is_none())
                    .map(|_| name.clone()),
                NodeRef::Host => None,
            })
            .collect();
        let fds: Vec<&OwnedFd> = missing
            .iter()
            .filter_map(|n| self.ns.get(n).map(|h| &h.fd))
            .collect();
        match netns::run_in_each(&fds, |_| NfSocket::open()) {
            Ok(socks) => {
                for (name, s) in missing.into_iter().zip(socks) {
                    let node = NodeRef::Ns(name.clone());
                    match s {
                        Ok(Ok(sock)) => {
                            if let Some(h) = self.ns.get_mut(&name) {
                                h.nf = Some(sock);
                            }
                        }
                        Ok(Err(e)) => failures.push((node, StepError::Netlink(e))),
                        Err(source) => failures.push((
                            node,
                            StepError::Netns(netns::NetnsError::Enter {
                                name: name.to_string(),
                                source,
                            }),
                        )),
                    }
                }
            }
            Err(_) => {
                for name in missing {
                    failures.push((
                        NodeRef::Ns(name),
                        StepError::Netns(netns::NetnsError::Worker),
                    ));
                }
            }
        }
        failures
    }

    fn nf(&mut self, node: &NodeRef) -> Option<&mut NfSocket> {
        match node {
            NodeRef::Host => self.host_nf.as_mut(),
            NodeRef::Ns(n) => self.ns.get_mut(n).and_then(|h| h.nf.as_mut()),
        }
    }

    /// Runs one firewall step on its node's socket.
    fn fw_step(&mut self, s: &Step) -> Result<(), StepError> {
        match s {
            Step::Firewall {
                node, rules, prev, ..
            } => {
                let sock = self.nf(node).ok_or_else(|| absent(node))?;
                let saved = if prev.is_some() {
                    nftables::save(sock, &rules.name)?
                } else {
                    None
                };
                nftables::replace(sock, rules)?;
                if let Some(saved) = saved {
                    self.saved_fw.insert(node.clone(), saved);
                }
                Ok(())
            }
            Step::DeleteFirewall { node, table } => {
                let sock = self.nf(node).ok_or_else(|| absent(node))?;
                Ok(nftables::delete(sock, table)?)
            }
            Step::RestoreFirewall { node, table, .. } => {
                let saved = self
                    .saved_fw
                    .remove(node)
                    .ok_or_else(|| StepError::Absent {
                        what: format!("the saved copy of table inet {table}"),
                    })?;
                let sock = self.nf(node).ok_or_else(|| absent(node))?;
                Ok(nftables::restore(sock, &saved)?)
            }
            _ => Err(StepError::Absent {
                what: "a firewall step".into(),
            }),
        }
    }

    pub(super) fn firewalls(&mut self, batch: &[Step]) -> Vec<Result<(), StepError>> {
        let mut results = ok_results(batch.len());
        let node_of = |s: &Step| match s {
            Step::Firewall { node, .. }
            | Step::DeleteFirewall { node, .. }
            | Step::RestoreFirewall { node, .. } => Some(node.clone()),
            _ => None,
        };
        let failures = self.open_nodes(batch.iter().filter_map(node_of));
        KernelBackend::fail_unopened(&failures, &mut results, |i| {
            node_of(&batch[i]).into_iter().collect()
        });
        let nodes: Vec<NodeRef> = batch.iter().filter_map(node_of).collect();
        let nf_failures = self.open_nf(&nodes);
        for (i, s) in batch.iter().enumerate() {
            let Some(node) = node_of(s) else { continue };
            if results[i].is_err() {
                continue;
            }
            if let Some((_, e)) = nf_failures.iter().find(|(n, _)| *n == node) {
                results[i] = Err(StepError::Absent {
                    what: format!("an nf_tables socket in {node} ({e})"),
                });
                continue;
            }
            results[i] = self.fw_step(s);
        }
        // Record the version in lo's tag, so the next snapshot knows the table is current.
        let mut tags: Vec<NodeReq> = Vec::new();
        for (i, s) in batch.iter().enumerate() {
            if results[i].is_err() {
                continue;
            }
            let (node, fw) = match s {
                Step::Firewall { node, version, .. }
                | Step::RestoreFirewall { node, version, .. } => (node, Some(version.as_str())),
                Step::DeleteFirewall { node, .. } => (node, None),
                _ => continue,
            };
            let NodeRef::Ns(ns) = node else {
                continue;
            };
            let change = LinkChange {
                alias: Some(self.lo_tag(ns, fw)),
                ..Default::default()
            };
            for r in link::set(Target::Index(1), &change) {
                tags.push((node.clone(), r, i));
            }
        }
        self.send(tags, &mut results);
        results
    }
}

fn absent(node: &NodeRef) -> StepError {
    StepError::Absent {
        what: format!("the nf_tables socket of {node}"),
    }
}
