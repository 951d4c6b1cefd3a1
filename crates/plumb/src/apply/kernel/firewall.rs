//! Firewall tables: written, saved, restored and removed, one transaction per namespace, run
//! from a thread inside it. A namespace's table version is then recorded in its `lo` tag
//! (`plumb:LAB fw=VERSION`), so the next snapshot knows it without reading the table.

use std::os::fd::OwnedFd;

use serde_json::Value;

use super::{ok_results, KernelBackend, NodeReq};
use crate::apply::StepError;
use crate::model::NodeRef;
use crate::netlink::link::{self, LinkChange, Target};
use crate::netns;
use crate::nftables;
use crate::plan::Step;

/// One table operation, ready to run inside its namespace.
enum FwOp {
    /// Replace the table; save the one it replaces first when `save`.
    Replace {
        table: String,
        batch: Value,
        save: bool,
    },
    /// Delete the table.
    Delete { table: String },
    /// Put back a saved table (`None`: nothing was saved, which is an error).
    Restore { table: String, batch: Option<Value> },
}

/// Runs `op` in the calling thread's namespace. Returns the table saved before a replace.
fn run(op: &FwOp) -> Result<Option<Value>, StepError> {
    match op {
        FwOp::Replace { table, batch, save } => {
            let saved = if *save { nftables::save(table)? } else { None };
            nftables::apply(table, batch)?;
            Ok(saved)
        }
        FwOp::Delete { table } => {
            nftables::apply(table, &crate::firewall::Table::delete_batch(table))?;
            Ok(None)
        }
        FwOp::Restore { table, batch } => match batch {
            Some(b) => nftables::apply(table, b).map(|()| None).map_err(Into::into),
            None => Err(StepError::Absent {
                what: format!("the saved copy of table inet {table}"),
            }),
        },
    }
}

impl KernelBackend {
    fn fw_op(&mut self, s: &Step) -> Result<FwOp, StepError> {
        Ok(match s {
            Step::Firewall {
                table, rules, prev, ..
            } => FwOp::Replace {
                table: table.clone(),
                batch: rules.batch(),
                save: prev.is_some(),
            },
            Step::DeleteFirewall { table, .. } => FwOp::Delete {
                table: table.clone(),
            },
            Step::RestoreFirewall { node, table, .. } => FwOp::Restore {
                table: table.clone(),
                batch: self.saved_fw.remove(node).flatten(),
            },
            _ => {
                return Err(StepError::Absent {
                    what: "a firewall step".into(),
                })
            }
        })
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
        let mut ops: Vec<(usize, NodeRef, FwOp)> = Vec::new();
        for (i, s) in batch.iter().enumerate() {
            let Some(node) = node_of(s) else { continue };
            if results[i].is_err() {
                continue;
            }
            match self.fw_op(s) {
                Ok(op) => ops.push((i, node, op)),
                Err(e) => results[i] = Err(e),
            }
        }
        // The host's run here; the namespaces' on one thread that visits them in turn.
        let (host, in_ns): (Vec<_>, Vec<_>) =
            ops.into_iter().partition(|(_, n, _)| *n == NodeRef::Host);
        let mut saved: Vec<(NodeRef, Option<Value>)> = Vec::new();
        for (i, node, op) in &host {
            match run(op) {
                Ok(s) => saved.push((node.clone(), s)),
                Err(e) => results[*i] = Err(e),
            }
        }
        let fds: Vec<&OwnedFd> = in_ns
            .iter()
            .filter_map(|(_, n, _)| match n {
                NodeRef::Ns(name) => self.ns.get(name).map(|h| &h.fd),
                NodeRef::Host => None,
            })
            .collect();
        match netns::run_in_each(&fds, |k| run(&in_ns[k].2)) {
            Ok(rs) => {
                for ((i, node, _), r) in in_ns.iter().zip(rs) {
                    match r {
                        Ok(Ok(s)) => saved.push((node.clone(), s)),
                        Ok(Err(e)) => results[*i] = Err(e),
                        Err(source) => {
                            results[*i] = Err(StepError::Netns(netns::NetnsError::Enter {
                                name: node.to_string(),
                                source,
                            }))
                        }
                    }
                }
            }
            Err(_) => {
                for (i, _, _) in &in_ns {
                    results[*i] = Err(StepError::Netns(netns::NetnsError::Worker));
                }
            }
        }
        for (node, s) in saved {
            if s.is_some() {
                self.saved_fw.insert(node, s);
            }
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
