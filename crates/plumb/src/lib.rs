//! plumb: Linux container networking built from kernel primitives.
//!
//! The architecture, as data flows through it (dependencies point one way, down this list):
//!
//! - [`model`]: the topology file (TOML or JSON) → a validated, expanded [`model::Topology`].
//!   Names are validated newtypes ([`model::names::IfName`] ≤ 15 bytes, [`model::names::NsName`]
//!   that cannot leave `/run/netns`); every error carries its line and column. No I/O on the kernel.
//! - [`doctor`]: findings (severity, object, evidence, why, fix) computed as pure functions of
//!   an [`inspect::Snapshot`] and a few extra reads, and a lab against its file through the
//!   diff `up` would apply; [`bench`](mod@bench): latency and throughput per namespace crossing and the
//!   control plane's cost per object, on labs it builds and removes.
//! - [`lab`]: whole-lab operations (`up`, `down`, `gc`, `list`, `view`) under the per-lab lock
//!   and journal: the API the CLI calls.
//! - [`plan`]: pure `diff(Topology, Snapshot) -> Plan` — a build phase whose every step can be
//!   undone, then a commit phase of removals — or conflicts with objects the lab does not own.
//!   Also `teardown(lab, Snapshot)` and `recover(lab, journal, Snapshot)`.
//! - [`firewall`]: the lab's nftables table as typed rules, rendered (purely) as one batch.
//! - [`apply`]: runs a plan through a [`apply::Backend`] (the kernel, or a fake in tests), in
//!   batches, journaled, undoing the whole run if a build step fails; teardown that reports
//!   every failure.
//! - [`inspect`]: a read-only [`inspect::Snapshot`] of the host and every named namespace
//!   (links, addresses, routes, selected sysctls), and the whole-lab view behind `show`.
//! - [`ownership`]: how plumb knows what is its own — tags, the lab's link group, the route
//!   protocol, firewall version marks, the per-lab lock and the crash journal.
//! - [`netlink`]: one `NETLINK_ROUTE` socket per namespace, requests pipelined; message builders
//!   and decoders for links, addresses and routes, into netlink's own types.
//! - [`nftables`]: nf_tables over netlink: applying, reading and tracing plumb's own tables.
//! - [`netns`]: the iproute2-compatible `/run/netns` registry, [`netns::NsRef`] (one way to name
//!   any namespace: name, path or pid), work inside namespaces on threads that end with it,
//!   the sandbox.
//! - [`probe`]: reachability probes for `check` and `ping`: only to the lab's own addresses,
//!   bounded in count and time, run on throwaway threads inside the source node.
//! - [`capture`]: `AF_PACKET` rings inside any namespaces, filters compiled to classic BPF,
//!   pcapng, one line per packet; [`trace`]: one probe's journey hop by hop, with NAT rewrites
//!   and the nftables rule that dropped it.
//! - [`cni`]: plumb as a CNI plugin: the protocol, and a bridge network with host-local IPAM,
//!   masquerade and port mappings, on the netlink and nf_tables layers.
//! - [`sys`]: the only module allowed `unsafe`: `unshare`, `AF_PACKET` rings and friends.
//!
//! Errors: one enum per module that names the object and the operation and keeps the errno,
//! gathered into [`Error`].
#![deny(missing_docs)]
#![deny(unsafe_code)]

pub mod apply;
pub mod bench;
pub mod capture;
pub mod cni;
pub mod doctor;
#[cfg(feature = "fault-injection")]
mod fault;
pub mod firewall;
pub mod inspect;
pub mod lab;
pub mod model;
pub mod netlink;
pub mod netns;
pub mod nftables;
pub mod ownership;
pub mod plan;
pub mod probe;
pub mod sys;
pub mod trace;

/// Any error of the library.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The topology file.
    #[error(transparent)]
    Model(#[from] model::ModelError),
    /// A whole-lab operation.
    #[error(transparent)]
    Lab(#[from] lab::LabError),
    /// A namespace operation.
    #[error(transparent)]
    Netns(#[from] netns::NetnsError),
    /// Reading the kernel's state.
    #[error(transparent)]
    Inspect(#[from] inspect::InspectError),
    /// Applying a plan.
    #[error(transparent)]
    Apply(#[from] apply::ApplyError),
    /// A probe.
    #[error(transparent)]
    Probe(#[from] probe::ProbeError),
    /// The CNI plugin.
    #[error(transparent)]
    Cni(#[from] cni::CniError),
}
