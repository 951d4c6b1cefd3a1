//! `plumb exec NODE -- CMD…`.

use std::os::unix::process::CommandExt;

use anyhow::Context;
use plumb::netns::{self, NsRef, Registry};

use crate::Outcome;

/// Run a command inside a node, as `ip netns exec NODE CMD` does (private mounts, a /sys of the
/// node, /etc/netns/NODE/* over /etc).
#[derive(clap::Args)]
pub struct Args {
    /// The node: a name in /run/netns, an nsfs path, or pid:PID.
    node: String,
    /// The command and its arguments.
    #[arg(last = true, required = true)]
    cmd: Vec<String>,
}

pub fn run(a: Args) -> anyhow::Result<Outcome> {
    let r = NsRef::parse(&a.node).with_context(|| format!("bad node `{}`", a.node))?;
    netns::enter_for_exec(&Registry::default(), &r)?;
    let err = std::process::Command::new(&a.cmd[0])
        .args(&a.cmd[1..])
        .exec();
    Err(anyhow::Error::new(err).context(format!("cannot run {}", a.cmd[0])))
}
