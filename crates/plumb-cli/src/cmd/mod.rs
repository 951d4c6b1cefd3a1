//! One file per subcommand.

pub mod bench;
pub mod capture;
pub mod check;
pub mod cni;
pub mod completions;
pub mod doctor;
pub mod down;
pub mod exec;
pub mod gc;
pub mod inspect;
pub mod ls;
pub mod man;
pub mod ns;
pub mod ping;
pub mod sandbox;
pub mod show;
pub mod trace;
pub mod up;

use std::io::IsTerminal;
use std::path::Path;

use plumb::model::{self, Topology};

/// Loads and validates a topology file; the error already names file, line and column.
pub fn load(path: &Path) -> anyhow::Result<Topology> {
    model::load(path).map_err(|e| anyhow::anyhow!("{e}"))
}

/// A progress bar on stderr for long changes, when stderr is a terminal.
pub struct Progress {
    bar: Option<indicatif::ProgressBar>,
}

impl Progress {
    /// A bar for `total` steps; hidden for small changes or when stderr is not a terminal.
    pub fn new(total: usize) -> Self {
        let show = total > 300 && std::io::stderr().is_terminal();
        let bar = show.then(|| {
            let b = indicatif::ProgressBar::new(total as u64);
            b.set_style(
                indicatif::ProgressStyle::with_template(
                    "{spinner} {bar:40} {pos}/{len} steps {elapsed}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            b
        });
        Progress { bar }
    }

    /// Records progress.
    pub fn set(&self, done: usize) {
        if let Some(b) = &self.bar {
            b.set_position(done as u64);
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}
