//! `plumb man [--out-dir DIR]`.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::CommandFactory;

use crate::Outcome;

/// Print plumb's manual page (roff, section 1) on stdout, generated from its own argument
/// definitions: `plumb man | sudo tee /usr/local/share/man/man1/plumb.1 >/dev/null`. With
/// `--out-dir`, write instead one page per command there (`plumb.1`, `plumb-up.1`, …).
#[derive(clap::Args)]
pub struct Args {
    /// Write plumb.1 and one plumb-COMMAND.1 per command into this directory.
    #[arg(long, value_name = "DIR")]
    out_dir: Option<PathBuf>,
}

/// The page of `cmd`, titled as man pages are (`PLUMB`, `PLUMB-UP`).
fn page(cmd: clap::Command) -> clap_mangen::Man {
    let title = cmd
        .get_display_name()
        .unwrap_or_else(|| cmd.get_name())
        .to_uppercase();
    clap_mangen::Man::new(cmd)
        .title(title)
        .source(concat!("plumb ", env!("CARGO_PKG_VERSION")))
}

pub fn run(a: Args) -> anyhow::Result<Outcome> {
    let mut cmd = crate::Cli::command().disable_help_subcommand(true);
    // Gives each subcommand its display name (`plumb-up`), which names its page.
    cmd.build();
    if let Some(dir) = a.out_dir {
        let subs: Vec<clap::Command> = cmd.get_subcommands().cloned().collect();
        for c in std::iter::once(cmd).chain(subs) {
            page(c)
                .generate_to(&dir)
                .with_context(|| format!("cannot write a manual page into {}", dir.display()))?;
        }
        return Ok(Outcome::Ok);
    }
    let mut roff = Vec::new();
    page(cmd).render(&mut roff)?;
    std::io::stdout().lock().write_all(&roff)?;
    Ok(Outcome::Ok)
}
