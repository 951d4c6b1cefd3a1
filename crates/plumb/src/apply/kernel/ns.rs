//! Namespaces and sysctls.

use std::os::fd::OwnedFd;

use super::{ok_results, KernelBackend, NsHandle};
use crate::apply::StepError;
use crate::model::names::NsName;
use crate::model::NodeRef;
use crate::netlink::link::{self, LinkChange, Target};
use crate::netlink::NlSocket;
use crate::netns;
use crate::ownership;
use crate::plan::Step;

impl KernelBackend {
    /// `ip netns add` for each, with `lo` tagged and up before the namespace is published.
    pub(super) fn create_ns(&mut self, batch: &[Step]) -> Vec<Result<(), StepError>> {
        let names: Vec<NsName> = batch
            .iter()
            .filter_map(|s| match s {
                Step::CreateNs { ns } => Some(ns.clone()),
                _ => None,
            })
            .collect();
        let tag = ownership::lab_tag(&self.lab);
        // Runs inside each new namespace, before it appears in /run/netns:
        // `ip -n NS link set lo up alias plumb:LAB`.
        let prepare = |sock: &mut NlSocket| {
            let change = LinkChange {
                up: Some(true),
                alias: Some(tag.clone()),
                ..Default::default()
            };
            sock.execute(link::set(Target::Index(1), &change))
                .into_iter()
                .collect::<Result<Vec<()>, _>>()
                .map(|_| ())
        };
        let mut handles = Vec::new();
        let r = self.reg.create_each(&names, &prepare, |c| handles.push(c));
        let mut results: Vec<Result<(), StepError>> = Vec::with_capacity(names.len());
        for c in handles {
            let node = NodeRef::Ns(c.name.clone());
            self.index.insert((node.clone(), "lo".into()), 1);
            self.known.insert(node);
            self.ns.insert(
                c.name,
                NsHandle {
                    fd: c.fd,
                    sock: c.sock,
                    next_index: Some(2),
                },
            );
            results.push(Ok(()));
        }
        if let Err(e) = r {
            results.push(Err(e.into()));
        }
        // Namespaces after the first failure were not attempted.
        while results.len() < names.len() {
            let name = names[results.len()].to_string();
            results.push(Err(StepError::Netns(netns::NetnsError::Create {
                name,
                source: std::io::Error::from_raw_os_error(libc::ECANCELED),
            })));
        }
        results
    }

    /// `ip netns del` for each.
    pub(super) fn delete_ns(&mut self, batch: &[Step]) -> Vec<Result<(), StepError>> {
        batch
            .iter()
            .map(|s| {
                let Step::DeleteNs { ns } = s else {
                    return Ok(());
                };
                self.ns.remove(ns);
                let node = NodeRef::Ns(ns.clone());
                self.index.retain(|(n, _), _| *n != node);
                self.known.remove(&node);
                self.reg.remove(ns).map(|_| ()).map_err(StepError::from)
            })
            .collect()
    }

    /// `sysctl -w KEY=VALUE`, inside each node: the host's directly, the namespaces' from one
    /// thread that visits them in turn.
    pub(super) fn sysctls(&mut self, batch: &[Step]) -> Vec<Result<(), StepError>> {
        let mut results = ok_results(batch.len());
        let mut per_ns: Vec<(NsName, Vec<usize>)> = Vec::new();
        let write = |i: usize| match &batch[i] {
            Step::Sysctl { key, value, .. } => {
                netns::write_sysctl(key, value).map_err(|source| StepError::Sysctl {
                    key: key.clone(),
                    source,
                })
            }
            _ => Ok(()),
        };
        for (i, s) in batch.iter().enumerate() {
            let Step::Sysctl { node, .. } = s else {
                continue;
            };
            match node {
                NodeRef::Host => results[i] = write(i),
                NodeRef::Ns(n) => match per_ns.iter_mut().find(|(m, _)| m == n) {
                    Some((_, v)) => v.push(i),
                    None => per_ns.push((n.clone(), vec![i])),
                },
            }
        }
        let failures = self.open_nodes(per_ns.iter().map(|(n, _)| NodeRef::Ns(n.clone())));
        KernelBackend::fail_unopened(&failures, &mut results, |i| match &batch[i] {
            Step::Sysctl { node, .. } if *node != NodeRef::Host => vec![node.clone()],
            _ => Vec::new(),
        });
        let todo: Vec<(&OwnedFd, &Vec<usize>)> = per_ns
            .iter()
            .filter_map(|(n, idx)| self.ns.get(n).map(|h| (&h.fd, idx)))
            .collect();
        let fds: Vec<&OwnedFd> = todo.iter().map(|(f, _)| *f).collect();
        match netns::run_in_each(&fds, |k| {
            todo[k].1.iter().map(|&i| write(i)).collect::<Vec<_>>()
        }) {
            Ok(per) => {
                for ((_, idx), r) in todo.iter().zip(per) {
                    match r {
                        Ok(rs) => {
                            for (&i, r) in idx.iter().zip(rs) {
                                if let Err(e) = r {
                                    results[i] = Err(e);
                                }
                            }
                        }
                        Err(source) => {
                            let errno = source.raw_os_error().unwrap_or(libc::EIO);
                            for &i in idx.iter() {
                                results[i] = Err(StepError::Netns(netns::NetnsError::Enter {
                                    name: format!("{}", batch_node(&batch[i])),
                                    source: std::io::Error::from_raw_os_error(errno),
                                }));
                            }
                        }
                    }
                }
            }
            Err(_) => {
                for (_, idx) in &todo {
                    for &i in idx.iter() {
                        results[i] = Err(StepError::Netns(netns::NetnsError::Worker));
                    }
                }
            }
        }
        results
    }
}

fn batch_node(s: &Step) -> NodeRef {
    match s {
        Step::Sysctl { node, .. } => node.clone(),
        _ => NodeRef::Host,
    }
}
