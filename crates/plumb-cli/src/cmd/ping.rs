//! `plumb ping LAB A B` (or `plumb ping LAB:A B`): one ICMP echo probe from node A to node B (or
//! to an address of the lab), run inside A. Exit 0 on a reply, 1 without one, 2 when the probe
//! could not run.

use std::io::Write;
use std::net::IpAddr;
use std::path::Path;

use anyhow::Context;
use plumb::lab::{LabError, LabNode};
use plumb::model::names::{LabName, NsName};
use plumb::model::{NodeRef, Service, Target, Topology};
use plumb::probe::{LabAddresses, ProbeError};

use crate::Outcome;

/// Send an ICMP echo from one node of a lab to another, from inside the first.
#[derive(clap::Args)]
#[command(override_usage = "plumb ping LAB A B\n       plumb ping LAB:A B")]
pub struct Args {
    /// The lab: its topology file, or its name (then its addresses are read from the kernel).
    /// With two arguments, `LAB:A`: the lab's name and the node that sends.
    lab: String,
    /// The node that sends (`host` for the namespace plumb runs in), as the lab's file names
    /// it; with `LAB:A` first, the node that should answer.
    from: String,
    /// The node that should answer (`NODE` or `LAB:NODE`), or an address that belongs to the
    /// lab.
    to: Option<String>,
}

/// How the lab's nodes are named: by its file, or by the kernel's tags.
enum Names {
    File(Box<Topology>),
    Kernel(Vec<LabNode>),
}

impl Names {
    /// The node the user calls `name` (as the file writes it, or its namespace's name). An
    /// unknown name is passed on as it is, for the probe to report.
    fn node(&self, name: &str) -> anyhow::Result<NodeRef> {
        if name == "host" {
            return Ok(NodeRef::Host);
        }
        let known = match self {
            Names::File(t) => t.node_named(name),
            Names::Kernel(nodes) => nodes
                .iter()
                .find(|n| n.node == name)
                .map(|n| NodeRef::Ns(n.namespace.clone())),
        };
        match known {
            Some(n) => Ok(n),
            None => Ok(NodeRef::Ns(
                NsName::new(name).with_context(|| format!("`{name}` is not a node name"))?,
            )),
        }
    }
}

/// `node` without a leading `LAB:` naming `lab`; another lab's name there is an error.
fn strip_lab<'a>(lab: &str, node: &'a str) -> anyhow::Result<&'a str> {
    match node.split_once(':') {
        Some((l, n)) if l == lab => Ok(n),
        Some((l, _)) if LabName::new(l).is_ok() => {
            anyhow::bail!(
                "`{node}` is a node of lab `{l}`, not of lab `{lab}`: a probe stays inside one lab"
            )
        }
        _ => Ok(node),
    }
}

pub fn run(a: Args) -> anyhow::Result<Outcome> {
    // `LAB A B`, or `LAB:A B` where B may be `LAB:B` too.
    let (lab, from, to) = match &a.to {
        Some(to) => (a.lab.as_str(), a.from.as_str(), to.as_str()),
        None => {
            let (lab, from) = a.lab.split_once(':').with_context(|| {
                format!(
                    "`{}`: give the lab and two nodes (`plumb ping LAB A B`), or `plumb ping LAB:A B`",
                    a.lab
                )
            })?;
            (lab, from, a.from.as_str())
        }
    };
    let path = Path::new(lab);
    let (book, names) = if path.is_file() {
        let topo = super::load(path)?;
        (
            LabAddresses::of_topology(&topo),
            Names::File(Box::new(topo)),
        )
    } else {
        let name = LabName::new(lab)
            .with_context(|| format!("`{lab}` is neither a topology file nor a lab name"))?;
        let book = match LabAddresses::from_kernel(&name) {
            Ok(b) => b,
            // A lab that is not here: say so, naming the labs that are.
            Err(ProbeError::Kernel { source, .. })
                if matches!(*source, LabError::NoSuchLab { .. }) =>
            {
                return Err((*source).into())
            }
            Err(e) => return Err(e.into()),
        };
        (book, Names::Kernel(plumb::lab::nodes(Some(&name))?))
    };
    // In `LAB:NODE`, LAB is the lab's name (the file's `name` when a file is given).
    let lab_name = match &names {
        Names::File(t) => t.name.to_string(),
        Names::Kernel(_) => lab.to_string(),
    };
    let from = strip_lab(&lab_name, from)?;
    let from_node = names.node(from)?;
    // The target as the user wrote it (without `LAB:`), and what it is.
    let (to, target) = match to.parse::<IpAddr>() {
        Ok(ip) => (to, Target::Addr(ip)),
        Err(_) => {
            let to = strip_lab(&lab_name, to)?;
            (to, Target::Node(names.node(to)?))
        }
    };
    let seen = book.probe(&from_node, &target, Service::Icmp)?;
    let mut out = std::io::stdout().lock();
    let shown = match &target {
        Target::Node(_) => format!("{to} ({})", seen.address),
        Target::Addr(ip) => ip.to_string(),
    };
    if seen.reach {
        writeln!(out, "{from} -> {shown}: {}", seen.verdict)?;
        Ok(Outcome::Ok)
    } else {
        writeln!(out, "{from} -> {shown}: no reply ({})", seen.verdict)?;
        Ok(Outcome::Difference)
    }
}
