//! `plumb sandbox [FILE] [-- CMD…]`.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use plumb::lab::{self, UpOptions};

use crate::Outcome;

/// Enter a throwaway sandbox: new user, network and mount namespaces (no root needed) with a
/// private /run. The lab in FILE, if given, is brought up inside; then CMD (or a shell) runs.
/// When it exits, everything vanishes.
#[derive(clap::Args)]
pub struct Args {
    /// A topology file to bring up inside the sandbox.
    file: Option<PathBuf>,
    /// The command to run (default: $SHELL, interactive).
    #[arg(last = true)]
    cmd: Vec<String>,
}

pub fn run(a: Args) -> anyhow::Result<Outcome> {
    // Validate before entering, so a bad file is reported against the real filesystem.
    let topo = a.file.as_deref().map(super::load).transpose()?;
    plumb::netns::enter_sandbox().context(
        "cannot create the sandbox (unprivileged user namespaces must be enabled: sysctl kernel.unprivileged_userns_clone=1 / user.max_user_namespaces > 0)",
    )?;
    if let Some(topo) = &topo {
        let mut progress = |_: usize, _: usize| {};
        let report = lab::up(
            topo,
            UpOptions {
                dry_run: false,
                wait: false,
                progress: &mut progress,
            },
        )?;
        let _ = writeln!(
            std::io::stderr(),
            "plumb sandbox: lab {} is up ({} steps); it vanishes when this shell exits",
            topo.name,
            report.plan.steps.len()
        );
    }
    let (prog, args) = match a.cmd.split_first() {
        Some((p, rest)) => (p.clone(), rest.to_vec()),
        None => (
            std::env::var("SHELL").unwrap_or_else(|_| "/bin/sh".into()),
            Vec::new(),
        ),
    };
    let status = std::process::Command::new(&prog)
        .args(&args)
        .env("PLUMB_SANDBOX", "1")
        .status()
        .with_context(|| format!("cannot run {prog}"))?;
    Ok(Outcome::Code(
        status.code().map_or(1, |c| c.clamp(0, 255) as u8),
    ))
}
