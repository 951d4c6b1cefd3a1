//! plumb: Linux container networking built from kernel primitives.
//!
//! The architecture, as data flows through it (dependencies point one way, down this list):
//!
//! - [`model`]: the topology file (TOML or JSON) → a validated, expanded [`model::Topology`].
//!   Names are validated newtypes ([`model::names::IfName`] ≤ 15 bytes, [`model::names::NsName`]
//!   that cannot leave `/run/netns`); every error carries its line and column. No I/O on the kernel.
//! - [`inspect`]: a read-only [`inspect::Snapshot`] of the host and every named namespace
//!   (links, addresses, routes, selected sysctls), the shared view of `plan`, `show` and later
//!   `inspect`/`doctor`.
//! - [`plan`]: pure `diff(Topology, Snapshot) -> Plan` — ordered steps, or conflicts with objects
//!   the lab does not own. Also `teardown(lab, Snapshot)`.
//! - [`apply`]: runs a plan through a [`apply::Backend`] (the kernel, or a fake in tests), in
//!   batches, with rollback of what the run created; teardown that reports every failure.
//! - [`lab`]: whole-lab operations (`up`, `down`, `gc`, `list`, `view`) with the per-lab lock.
//! - [`netlink`]: one `NETLINK_ROUTE` socket per namespace, requests pipelined; message builders
//!   for links, addresses and routes.
//! - [`netns`]: the iproute2-compatible `/run/netns` registry, [`netns::NsRef`] (one way to name any
//!   namespace: name, path or pid), work inside namespaces on threads that end with it, the sandbox.
//! - [`firewall`]: the lab's nftables table as typed rules, rendered as one atomic batch.
//! - [`probe`]: reachability probes for `check` and `ping`: only to the lab's own addresses,
//!   bounded in count and time, run on throwaway threads inside the source node.
//! - [`sys`]: the only module allowed `unsafe`: `unshare` and friends.
//!
//! Ownership lives in the kernel, not in a state file: every interface plumb creates has the
//! alias `plumb:LAB` (veth ends add `link=ID`), a namespace is tagged through its `lo`'s alias.
#![deny(missing_docs)]
#![deny(unsafe_code)]

pub mod apply;
pub mod firewall;
pub mod inspect;
pub mod lab;
pub mod model;
pub mod netlink;
pub mod netns;
pub mod plan;
pub mod probe;
pub mod sys;
