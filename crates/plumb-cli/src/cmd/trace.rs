//! `plumb trace LAB FROM TO`: one probe's journey.

use crate::Outcome;

/// Send one probe from a node of a lab to another and show its journey hop by hop.
#[derive(clap::Args)]
pub struct Args {
    /// The lab.
    lab: String,
}

pub fn run(_a: Args) -> anyhow::Result<Outcome> {
    anyhow::bail!("not yet")
}
