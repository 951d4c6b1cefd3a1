//! The data-path probes between two nodes of a lab that is up (`plumb bench --lab LAB --from A
//! --to B`): the lab is read, never changed; the destination is resolved as `plumb trace`
//! resolves it (a node, or an address of the lab), and the row says which interfaces the
//! routing tables send the pings through.

use super::{measure, BenchError, Options, Report};
use crate::model::names::LabName;
use crate::netns::Registry;
use crate::probe::LabAddresses;
use crate::trace::{self, route};

/// Two nodes of an existing lab.
#[derive(Debug, Clone)]
pub struct LabPair<'a> {
    /// The lab.
    pub lab: &'a LabName,
    /// The node the pings and the stream leave from (as the file names it, or its namespace).
    pub from: &'a str,
    /// The node (or an address of the lab) they go to.
    pub to: &'a str,
}

/// Measures round trips and one TCP stream from `pair.from` to `pair.to`: one `lab` row.
/// The echo and the sink listen in the destination's namespace on ports 7101 (UDP) and 7102
/// (TCP) of the destination address for the time of the measurement.
pub fn run_lab(o: &Options, pair: &LabPair<'_>) -> Result<Report, BenchError> {
    if o.pings == 0 || o.stream_bytes == 0 {
        return Err(BenchError::Options(
            "pings and stream bytes must be positive".into(),
        ));
    }
    let view = crate::lab::view(pair.lab)?;
    let req = trace::Request {
        lab: pair.lab,
        from: pair.from,
        to: pair.to,
        service: crate::model::Service::Icmp,
        follow: None,
    };
    let (from, target, to_label, graph) = trace::plan(&view, &req)?;
    let addr = LabAddresses::of_view(&view).resolve(&from, &target)?.addr;
    let (first, last) = (graph[0].node.clone(), graph[graph.len() - 1].node.clone());
    let through = route::paths(&view, &first, addr, crate::model::Service::Icmp)?
        .forward
        .unwrap_or(graph);
    let mut nodes: Vec<&str> = through.iter().map(|p| p.node.as_str()).collect();
    nodes.dedup();
    let reg = Registry::default();
    let (from_fd, to_fd) = (
        route::open_node(&reg, &first)?,
        route::open_node(&reg, &last)?,
    );
    let mut row = measure(o, nodes.len() as u32 - 1, "lab", &from_fd, &to_fd, addr)?;
    let from_label = view
        .nodes
        .iter()
        .find(|n| n.node == first)
        .map_or(first.as_str(), |n| n.label.as_str());
    row.between = Some(format!("{from_label} -> {to_label} ({addr})"));
    row.through = Some(
        through
            .iter()
            .map(|p| format!("{}/{}", p.label, p.iface))
            .collect(),
    );
    Ok(Report {
        version: 1,
        hops: vec![row],
        control: Vec::new(),
    })
}
