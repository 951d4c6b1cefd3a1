//! Namespace deletion and sysctls (namespaces are created by the fused build, `build.rs`).

use std::os::fd::OwnedFd;

use super::KernelBackend;
use crate::apply::StepError;
use crate::model::names::NsName;
use crate::model::NodeRef;
use crate::netns;
use crate::plan::Step;

impl KernelBackend {
    /// The remove batch: `ip link del group N` through the host's socket while another thread
    /// does `ip netns del` for each namespace (unmount and unlink: the mount lock, not the
    /// network core's, so the two overlap).
    pub(super) fn remove(&mut self, batch: &[Step]) -> Vec<Result<(), StepError>> {
        let mut results = super::ok_results(batch.len());
        let mut names = Vec::new();
        let mut gone = std::collections::HashSet::new();
        for (i, s) in batch.iter().enumerate() {
            if let Step::DeleteNs { ns } = s {
                self.ns.remove(ns);
                let node = NodeRef::Ns(ns.clone());
                self.known.remove(&node);
                gone.insert(node);
                names.push((i, ns.clone()));
            }
        }
        // One pass over the index cache for all of them (one per namespace would be quadratic).
        self.index.retain(|(n, _), _| !gone.contains(n));
        let groups: Vec<usize> = (0..batch.len())
            .filter(|&i| matches!(batch[i], Step::DeleteGroup { .. }))
            .collect();
        let reg = self.reg.clone();
        let ns_results = std::thread::scope(|s| {
            let worker = s.spawn(|| {
                names
                    .iter()
                    .map(|(i, n)| (*i, reg.remove(n).map(|_| ()).map_err(StepError::from)))
                    .collect::<Vec<_>>()
            });
            if !groups.is_empty() {
                let sub: Vec<Step> = groups.iter().map(|&i| batch[i].clone()).collect();
                for (&i, r) in groups.iter().zip(self.delete_links(&sub)) {
                    results[i] = r;
                }
            }
            worker.join()
        });
        match ns_results {
            Ok(rs) => {
                for (i, r) in rs {
                    results[i] = r;
                }
            }
            Err(_) => {
                for (i, _) in &names {
                    results[*i] = Err(StepError::Netns(netns::NetnsError::Worker));
                }
            }
        }
        results
    }

    /// `sysctl -w KEY=VALUE` for the steps at `idx`, inside each node: the host's directly, the
    /// namespaces' from one thread that visits them in turn.
    pub(super) fn sysctls_for(
        &mut self,
        batch: &[Step],
        idx: &[usize],
        results: &mut [Result<(), StepError>],
    ) {
        let mut per_ns: Vec<(NsName, Vec<usize>)> = Vec::new();
        let write = |i: usize| write_sysctl_step(batch, i);
        for &i in idx {
            let Step::Sysctl { node, .. } = &batch[i] else {
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
        KernelBackend::fail_unopened(&failures, results, |i| match &batch[i] {
            Step::Sysctl { node, .. } if *node != NodeRef::Host && idx.contains(&i) => {
                vec![node.clone()]
            }
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
    }
}

/// Writes the sysctl of step `i` in the calling thread's namespace.
pub(super) fn write_sysctl_step(batch: &[Step], i: usize) -> Result<(), StepError> {
    match &batch[i] {
        Step::Sysctl { key, value, .. } => {
            netns::write_sysctl(key, value).map_err(|source| StepError::Sysctl {
                key: key.clone(),
                source,
            })
        }
        _ => Ok(()),
    }
}

fn batch_node(s: &Step) -> NodeRef {
    match s {
        Step::Sysctl { node, .. } => node.clone(),
        _ => NodeRef::Host,
    }
}
