//! `run` and `run_teardown`: batching, journal records, rollback that restores, the commit
//! phase, and teardown's "keep going". `recording` drives them with a scripted backend and
//! checks the exact batches; `restore` runs real plans against the planner's simulated kernel
//! and checks that a refusal at any build step leaves the kernel exactly as it was.

mod batching;
mod recording;
mod restore;

use super::{Backend, StepError};
use crate::model::names::{IfName, NsName};
use crate::model::NodeRef;
use crate::netlink::NetlinkError;
use crate::plan::{LinkSet, Plan, RouteSpec, Step, VethEnd};

/// A backend that records every batch it is handed and answers from a script.
#[derive(Debug, Default)]
pub(super) struct RecordingBackend {
    pub batches: Vec<Vec<Step>>,
    /// Steps that fail, with the errno they fail with.
    pub failures: Vec<(Step, i32)>,
    /// Every deletion answers ENOENT, as if the object were already gone.
    pub deletes_gone: bool,
}

impl RecordingBackend {
    pub fn failing(mut self, step: &Step, errno: i32) -> Self {
        self.failures.push((step.clone(), errno));
        self
    }

    /// Class and size of each batch, in order.
    pub fn shape(&self) -> Vec<(&'static str, usize)> {
        self.batches
            .iter()
            .map(|b| (b[0].batch_class(), b.len()))
            .collect()
    }

    /// Every step handed over, in order.
    pub fn steps(&self) -> Vec<Step> {
        self.batches.iter().flatten().cloned().collect()
    }
}

impl Backend for RecordingBackend {
    fn execute(
        &mut self,
        batch: &[Step],
        _progress: &mut dyn FnMut(usize),
    ) -> Vec<Result<(), StepError>> {
        assert!(!batch.is_empty(), "an empty batch was sent");
        assert!(
            batch
                .iter()
                .all(|s| s.batch_class() == batch[0].batch_class()),
            "a batch mixes classes: {batch:?}"
        );
        self.batches.push(batch.to_vec());
        batch
            .iter()
            .map(|s| {
                let errno = self
                    .failures
                    .iter()
                    .find(|(f, _)| f == s)
                    .map(|(_, e)| *e)
                    .or_else(|| (self.deletes_gone && s.is_delete()).then_some(libc::ENOENT));
                match errno {
                    Some(e) => Err(StepError::Netlink(NetlinkError::kernel(e, None))),
                    None => Ok(()),
                }
            })
            .collect()
    }
}

pub(super) fn node(name: &str) -> NodeRef {
    if name == "host" {
        NodeRef::Host
    } else {
        NodeRef::Ns(NsName::new(name).unwrap())
    }
}

pub(super) fn plan(steps: Vec<Step>) -> Plan {
    Plan {
        steps,
        conflicts: Vec::new(),
    }
}

pub(super) fn create_ns(name: &str) -> Step {
    Step::CreateNs {
        ns: NsName::new(name).unwrap(),
    }
}

pub(super) fn delete_ns(name: &str) -> Step {
    Step::DeleteNs {
        ns: NsName::new(name).unwrap(),
    }
}

pub(super) fn bridge(at: &str, name: &str) -> Step {
    Step::CreateBridge {
        node: node(at),
        name: IfName::new(name).unwrap(),
        mtu: None,
        stp: false,
        mac: crate::model::MacAddr([2, 0, 0, 0, 0, 1]),
        ipv6: false,
    }
}

pub(super) fn end(at: &str, name: &str, master: Option<&str>) -> VethEnd {
    VethEnd {
        node: node(at),
        name: IfName::new(name).unwrap(),
        mtu: None,
        mac: None,
        master: master.map(|m| IfName::new(m).unwrap()),
        ipv6: false,
    }
}

pub(super) fn veth(a: VethEnd, b: VethEnd) -> Step {
    Step::CreateVeth {
        a,
        b,
        link_id: "000000000001".into(),
    }
}

pub(super) fn set(at: &str, name: &str, set: LinkSet, prev: Option<LinkSet>) -> Step {
    Step::SetLink {
        node: node(at),
        name: name.into(),
        set,
        prev,
    }
}

/// `up` of an interface this run created: nothing to restore.
pub(super) fn up(at: &str, name: &str) -> Step {
    set(
        at,
        name,
        LinkSet {
            up: Some(true),
            ..LinkSet::default()
        },
        None,
    )
}

pub(super) fn mtu_set(m: u32) -> LinkSet {
    LinkSet {
        mtu: Some(m),
        ..LinkSet::default()
    }
}

/// An MTU change of an interface that existed before the run, from 1500.
pub(super) fn mtu(at: &str, name: &str, m: u32) -> Step {
    set(at, name, mtu_set(m), Some(mtu_set(1500)))
}

pub(super) fn add_addr(at: &str, dev: &str, addr: &str) -> Step {
    Step::AddAddr {
        node: node(at),
        dev: dev.into(),
        addr: addr.parse().unwrap(),
    }
}

pub(super) fn del_addr(at: &str, dev: &str, addr: &str) -> Step {
    Step::DelAddr {
        node: node(at),
        dev: dev.into(),
        addr: addr.parse().unwrap(),
    }
}

pub(super) fn route_spec(dst: &str, via: &str) -> RouteSpec {
    RouteSpec {
        dst: dst.parse().unwrap(),
        via: Some(via.parse().unwrap()),
        dev: None,
    }
}

pub(super) fn add_route(at: &str, dst: &str, via: &str) -> Step {
    Step::AddRoute {
        node: node(at),
        route: route_spec(dst, via),
        replaces: None,
    }
}

pub(super) fn del_route(at: &str, dst: &str, via: &str) -> Step {
    Step::DelRoute {
        node: node(at),
        route: route_spec(dst, via),
    }
}

pub(super) fn delete_link(at: &str, name: &str) -> Step {
    Step::DeleteLink {
        node: node(at),
        name: name.into(),
        index: None,
    }
}
