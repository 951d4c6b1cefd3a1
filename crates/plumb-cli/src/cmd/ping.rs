//! `plumb ping LAB A B`: one ICMP echo probe from node A to node B (or to an address of the
//! lab), run inside A. Exit 0 on a reply, 1 without one, 2 when the probe could not run.

use std::io::Write;
use std::net::IpAddr;
use std::path::Path;

use anyhow::Context;
use plumb::model::names::{LabName, NsName};
use plumb::model::{NodeRef, Service, Target};
use plumb::probe::LabAddresses;

use crate::Outcome;

/// Send an ICMP echo from one node of a lab to another, from inside the first.
#[derive(clap::Args)]
pub struct Args {
    /// The lab: its topology file, or its name (then its addresses are read from the kernel).
    lab: String,
    /// The node that sends (`host` for the namespace plumb runs in).
    from: String,
    /// The node that should answer, or an address that belongs to the lab.
    to: String,
}

fn node(name: &str) -> anyhow::Result<NodeRef> {
    if name == "host" {
        return Ok(NodeRef::Host);
    }
    Ok(NodeRef::Ns(
        NsName::new(name).with_context(|| format!("`{name}` is not a node name"))?,
    ))
}

pub fn run(a: Args) -> anyhow::Result<Outcome> {
    let path = Path::new(&a.lab);
    let book = if path.is_file() {
        LabAddresses::of_topology(&super::load(path)?)
    } else {
        let lab = LabName::new(&a.lab)
            .with_context(|| format!("`{}` is neither a topology file nor a lab name", a.lab))?;
        LabAddresses::from_kernel(&lab)?
    };
    let from = node(&a.from)?;
    let to = match a.to.parse::<IpAddr>() {
        Ok(ip) => Target::Addr(ip),
        Err(_) => Target::Node(node(&a.to)?),
    };
    let seen = book.probe(&from, &to, Service::Icmp)?;
    let mut out = std::io::stdout().lock();
    let target = match &to {
        Target::Node(n) => format!("{n} ({})", seen.address),
        Target::Addr(ip) => ip.to_string(),
    };
    if seen.reach {
        writeln!(out, "{} -> {target}: {}", a.from, seen.verdict)?;
        Ok(Outcome::Ok)
    } else {
        writeln!(out, "{} -> {target}: no reply ({})", a.from, seen.verdict)?;
        Ok(Outcome::Difference)
    }
}
