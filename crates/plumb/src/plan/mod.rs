//! The pure stage: `diff(desired Topology, observed Snapshot) -> Plan`, an ordered list of steps.
//! No I/O happens here, so every decision about what to create, change or delete is testable
//! without privileges.
//!
//! Invariants of a plan:
//! - it never deletes or changes an object that does not carry the lab's tag; a desired object
//!   whose name is taken by a foreign one is a [`Conflict`], and a plan with conflicts has no
//!   steps;
//! - it has two phases ([`Phase`]): the build phase (rename out of the way, namespaces,
//!   sysctls, bridges, veth pairs, link settings, addresses, routes, firewalls), in which every
//!   step that changes something kept carries the values it replaces, so a failed run can be
//!   undone exactly; then the commit phase, which removes what the file no longer names
//!   (firewalls, routes, addresses, interfaces, namespaces), once everything else succeeded;
//! - each step's prerequisites come earlier;
//! - applying a plan and planning again against the result yields an empty plan.
//!
//! Files: [`step`] (the steps), `show` (each step as the `ip` command it replaces), `desired`
//! (what the file wants), `diff` (the comparison), `teardown` (removal of a lab, and recovery
//! of an interrupted run).

mod desired;
mod diff;
mod seen;
mod settle;
mod show;
pub mod step;
mod teardown;

use std::fmt;

pub use desired::DEFAULT_MTU;
pub use diff::diff;
pub use settle::settle;
pub use step::{LinkSet, Phase, RouteSpec, Step, VethEnd};
pub use teardown::{recover, teardown};

use crate::inspect::{NsState, Snapshot};
use crate::model::{NodeRef, Topology};

/// A desired object whose name is taken by something the lab does not own.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Conflict {
    /// Where.
    pub node: NodeRef,
    /// What ("namespace ns1", "interface veth1").
    pub object: String,
    /// Who owns it: another lab's name, or None for an object plumb did not create.
    pub owner: Option<String>,
}

impl fmt::Display for Conflict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let place = match &self.node {
            NodeRef::Host => "the host".to_string(),
            NodeRef::Ns(n) => format!("namespace {n}"),
        };
        match &self.owner {
            Some(lab) => write!(f, "{} in {place} already exists and belongs to lab `{lab}`; take that lab down or rename it in this file", self.object),
            None => write!(f, "{} in {place} already exists and was not created by plumb; plumb never changes it: remove it yourself or rename it in this file", self.object),
        }
    }
}

/// An ordered list of steps, or the conflicts that forbid it.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Plan {
    /// The steps, in order.
    pub steps: Vec<Step>,
    /// Objects in the way. A plan with conflicts must not be applied.
    pub conflicts: Vec<Conflict>,
}

impl Plan {
    /// Nothing to do.
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }
}

/// The sysctls of `node` that the topology sets (so that a snapshot reads their values).
pub fn wanted_sysctls(topo: &Topology, node: &NodeRef) -> Vec<String> {
    desired::sysctls_of(topo, node)
        .into_iter()
        .map(|(k, _)| k)
        .collect()
}

/// What a snapshot says about one node: its contents, if it exists and can be read.
fn observed<'a>(snap: &'a Snapshot, node: &NodeRef) -> Option<&'a NsState> {
    match node {
        NodeRef::Host => Some(&snap.host),
        NodeRef::Ns(n) => snap.namespaces.get(n).and_then(|ns| ns.state.as_ref().ok()),
    }
}

#[cfg(test)]
pub(crate) mod tests;
