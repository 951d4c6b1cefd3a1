//! What can be wrong with a topology file, and where.
//!
//! Every problem is a [`Diagnostic`]: the file, the 1-based line and column, a typed
//! [`DiagnosticKind`] whose `Display` says what is wrong, and a help sentence saying what to change.
//! Loading gathers every problem it can find into one [`ModelError::Invalid`] instead of stopping
//! at the first.
//!
//! `kind` lists what can be wrong (the message of each), `help` what to change for each, and
//! `sink` gathers the problems by byte offset and turns offsets into lines and columns.

mod help;
mod kind;
mod sink;

use std::fmt;
use std::path::PathBuf;

pub use kind::DiagnosticKind;
pub(crate) use sink::{LineIndex, Sink};

/// Why a topology could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ModelError {
    /// The file could not be read.
    #[error("cannot read topology file `{}`: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// The file was read but has one or more problems; nothing may be created from it.
    #[error("{}", DiagnosticList(diagnostics))]
    Invalid {
        /// Every problem found, in file order, except that problems which may only be
        /// consequences of another one come after all the others; never empty.
        diagnostics: Vec<Diagnostic>,
    },
}

impl ModelError {
    /// The problems found in the file (empty for [`ModelError::Read`]): in file order, problems
    /// that may only be consequences of another one last.
    pub fn diagnostics(&self) -> &[Diagnostic] {
        match self {
            ModelError::Read { .. } => &[],
            ModelError::Invalid { diagnostics } => diagnostics,
        }
    }
}

struct DiagnosticList<'a>(&'a [Diagnostic]);

impl fmt::Display for DiagnosticList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

/// One problem in a topology file, with its position.
///
/// Displays as `FILE:LINE:COL: what is wrong` followed by a line `  help: what to change`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{origin}:{line}:{column}: {kind}\n  help: {}", kind.help())]
pub struct Diagnostic {
    origin: String,
    line: usize,
    column: usize,
    kind: DiagnosticKind,
}

impl Diagnostic {
    pub(crate) fn new(origin: &str, line: usize, column: usize, kind: DiagnosticKind) -> Self {
        Diagnostic {
            origin: origin.to_owned(),
            line,
            column,
            kind,
        }
    }

    /// The file name the problem is in, as given to the loader.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The 1-based line.
    pub fn line(&self) -> usize {
        self.line
    }

    /// The 1-based column, in characters.
    pub fn column(&self) -> usize {
        self.column
    }

    /// What is wrong.
    pub fn kind(&self) -> &DiagnosticKind {
        &self.kind
    }

    /// A sentence saying what to change.
    pub fn help(&self) -> String {
        self.kind.help()
    }
}

/// The two accepted file formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// TOML, the usual format.
    Toml,
    /// JSON, for generated labs.
    Json,
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::Toml => "TOML",
            Format::Json => "JSON",
        })
    }
}

/// Why a node range such as `c[1..100]` was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeProblem {
    /// No `]` closes the `[`, or no `..` separates the bounds.
    Shape,
    /// A bound is not a decimal number.
    NotNumber,
    /// The first bound is greater than the last.
    Reversed,
    /// The range declares more names than plumb allows in one range.
    TooLarge,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diagnostic_display_has_position_and_help_line() {
        let d = Diagnostic::new("lab.toml", 3, 7, DiagnosticKind::RouteWithoutNextHop);
        let text = d.to_string();
        assert!(
            text.starts_with("lab.toml:3:7: route has neither `via` nor `dev`\n  help: "),
            "{text}"
        );
    }
}
