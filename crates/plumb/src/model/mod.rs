//! The topology file: TOML (or JSON) as written -> validated, expanded [`Topology`].
//!
//! This stage never touches the kernel. Everything a user can get wrong in a file is found here,
//! with the line and column, before any object exists.
//!
//! The pipeline, one module per stage:
//! 1. `tree` (TOML) or `json`: the text into a format-neutral tree where every key and value
//!    carries its byte offset; a syntax error stops here.
//! 2. `raw`: the schema. Unknown keys, wrong types and every single value (names, addresses,
//!    MTUs, MACs, protocols, ranges) are checked; what is wrong is reported and left out.
//! 3. `expand`: references are resolved, ranges and `[networks.*]` expanded, and the rules that
//!    need the whole lab checked (duplicates, overlapping subnets, reachable gateways…).
//!
//! Every problem found on the way is a [`Diagnostic`]; a file with any problem gives
//! [`ModelError::Invalid`] with all of them, in file order. A reference to a declaration that was
//! itself refused is not reported again, and a problem that may only follow from another one (a
//! route via the gateway of a refused network, an interface whose link was refused) is listed
//! after every other problem, so the real error always comes first.

mod error;
mod expand;
mod json;
pub mod names;
pub(crate) mod pool;
mod port_name;
mod range;
mod raw;
mod tree;
mod types;

use std::path::Path;

pub use error::{Diagnostic, DiagnosticKind, Format, ModelError, RangeProblem};
pub use port_name::host_port_name;
pub use types::*;

use error::Sink;
use tree::Item;

/// Where a sysctl of the file is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SysctlPlace {
    /// In the namespace plumb runs in (`[nodes.host]`).
    Host,
    /// In a node's namespace (a fresh one if the lab is not up yet).
    Namespace,
}

/// What loading a file may ask of the machine the lab is for, so that what the kernel would
/// refuse half-way through `up` is refused at its line instead. Loading stays pure: the
/// caller decides what the machine is (the kernel, or a fake in tests).
pub trait Machine {
    /// Whether sysctl `key` (`net.ipv4.ip_forward`) exists at `place`. An interface's own keys
    /// (`net.ipv4.conf.IFACE.x`) are asked as `default` for an interface the lab creates.
    fn has_sysctl(&self, place: SysctlPlace, key: &str) -> bool;
}

/// Reads and loads a topology file: JSON if its extension is `.json`, TOML otherwise.
///
/// Messages name the file as `path` is written.
pub fn load(path: &Path) -> Result<Topology, ModelError> {
    load_impl(path, None)
}

/// [`load`], also checking what the file needs from `machine` (every sysctl exists where it
/// is set).
pub fn load_for(path: &Path, machine: &dyn Machine) -> Result<Topology, ModelError> {
    load_impl(path, Some(machine))
}

fn load_impl(path: &Path, machine: Option<&dyn Machine>) -> Result<Topology, ModelError> {
    let src = std::fs::read_to_string(path).map_err(|source| ModelError::Read {
        path: path.to_owned(),
        source,
    })?;
    let origin = path.display().to_string();
    let is_json = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"));
    let doc = if is_json {
        json::from_json(&src)
    } else {
        tree::from_toml(&src)
    };
    build(&src, &origin, doc, machine)
}

/// Loads a topology from TOML text. `origin` names the text in messages (usually its file name).
pub fn parse_toml(src: &str, origin: &str) -> Result<Topology, ModelError> {
    build(src, origin, tree::from_toml(src), None)
}

/// [`parse_toml`], also checking what the file needs from `machine`.
pub fn parse_toml_for(
    src: &str,
    origin: &str,
    machine: &dyn Machine,
) -> Result<Topology, ModelError> {
    build(src, origin, tree::from_toml(src), Some(machine))
}

/// Loads a topology from JSON text with the same structure as the TOML format.
/// `origin` names the text in messages.
pub fn parse_json(src: &str, origin: &str) -> Result<Topology, ModelError> {
    build(src, origin, json::from_json(src), None)
}

fn build(
    src: &str,
    origin: &str,
    doc: Result<Item, (usize, DiagnosticKind)>,
    machine: Option<&dyn Machine>,
) -> Result<Topology, ModelError> {
    let mut sink = Sink::new(src);
    match doc {
        Ok(doc) => {
            let raw = raw::read(&doc, &mut sink);
            match expand::expand(raw, &mut sink, machine) {
                Some(topology) if sink.is_clean() => Ok(topology),
                _ => Err(sink.into_error(origin)),
            }
        }
        Err((at, kind)) => {
            sink.report(at, kind);
            Err(sink.into_error(origin))
        }
    }
}
