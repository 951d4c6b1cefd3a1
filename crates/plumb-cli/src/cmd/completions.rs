//! `plumb completions SHELL`.

use clap::CommandFactory;
use clap_complete::Shell;

use crate::Outcome;

/// Print a completion script for SHELL on stdout, generated from plumb's own argument
/// definitions. Install it where the shell looks, for example:
/// `plumb completions bash > ~/.local/share/bash-completion/completions/plumb`,
/// `plumb completions zsh > ~/.zfunc/_plumb`,
/// `plumb completions fish > ~/.config/fish/completions/plumb.fish`.
#[derive(clap::Args)]
pub struct Args {
    /// The shell.
    shell: Shell,
}

pub fn run(a: Args) -> anyhow::Result<Outcome> {
    let mut cmd = crate::Cli::command();
    let mut out = std::io::stdout().lock();
    // `generate` panics on a write error; write to memory, then to stdout, whose errors (a
    // closed pipe) are returned like any other command's.
    let mut script = Vec::new();
    clap_complete::generate(a.shell, &mut cmd, "plumb", &mut script);
    std::io::Write::write_all(&mut out, &script)?;
    Ok(Outcome::Ok)
}
