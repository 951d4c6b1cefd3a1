//! Addresses and routes.

use super::{ok_results, KernelBackend};
use crate::apply::StepError;
use crate::netlink::{addr, route};
use crate::ownership::RTPROT_PLUMB;
use crate::plan::Step;

impl KernelBackend {
    /// `ip addr del` and `ip route del` (removals; additions go with the configure batch),
    /// pipelined per namespace.
    pub(super) fn addrs_routes(&mut self, batch: &[Step]) -> Vec<Result<(), StepError>> {
        let mut results = ok_results(batch.len());
        let node_of = |i: usize| match &batch[i] {
            Step::AddAddr { node, .. }
            | Step::DelAddr { node, .. }
            | Step::AddRoute { node, .. }
            | Step::DelRoute { node, .. } => vec![node.clone()],
            _ => Vec::new(),
        };
        let failures = self.open_nodes((0..batch.len()).flat_map(node_of));
        let mut reqs = Vec::new();
        for (i, s) in batch.iter().enumerate() {
            let (node, dev) = match s {
                Step::AddAddr { node, dev, .. } | Step::DelAddr { node, dev, .. } => {
                    (node, Some(dev.as_str()))
                }
                Step::AddRoute { node, route, .. } | Step::DelRoute { node, route } => {
                    (node, route.dev.as_deref())
                }
                _ => continue,
            };
            if let Some(e) = failures.get(node) {
                // A removal from a namespace that no longer exists is done; anything else fails
                // with the reason the namespace could not be opened.
                if !(s.is_delete() && e.is_gone()) {
                    KernelBackend::fail_unopened(&failures, &mut results[i..=i], |_| {
                        vec![node.clone()]
                    });
                }
                continue;
            }
            let idx = match dev {
                Some(d) => match self.index_of(node, d) {
                    Ok(Some(x)) => Some(x),
                    // The interface is gone, and what was on it with it.
                    Ok(None) if s.is_delete() => continue,
                    Ok(None) => {
                        results[i] = Err(StepError::Absent {
                            what: format!("interface {d} in {node}"),
                        });
                        continue;
                    }
                    Err(e) => {
                        results[i] = Err(e);
                        continue;
                    }
                },
                None => None,
            };
            let spec = |r: &crate::plan::RouteSpec| route::RouteSpec {
                dst: r.dst,
                via: r.via,
                oif: idx,
            };
            let req = match s {
                Step::AddAddr { addr: a, .. } => addr::add(idx.unwrap_or(0), a),
                Step::DelAddr { addr: a, .. } => addr::delete(idx.unwrap_or(0), a),
                Step::AddRoute {
                    route: r,
                    replaces: None,
                    ..
                } => route::add(&spec(r), RTPROT_PLUMB),
                Step::AddRoute { route: r, .. } => route::replace(&spec(r), RTPROT_PLUMB),
                Step::DelRoute { route: r, .. } => route::delete(&spec(r), RTPROT_PLUMB),
                _ => continue,
            };
            reqs.push((node.clone(), req, i));
        }
        self.send(reqs, &mut results);
        results
    }
}
