//! Problems gathered by byte offset while loading, and the offsets turned into lines and columns.

use std::collections::HashSet;

use super::{Diagnostic, DiagnosticKind, ModelError};

/// Turns byte offsets into 1-based lines and columns.
pub(crate) struct LineIndex<'s> {
    src: &'s str,
    starts: Vec<usize>,
}

impl<'s> LineIndex<'s> {
    pub(crate) fn new(src: &'s str) -> Self {
        let mut starts = vec![0];
        starts.extend(
            src.bytes()
                .enumerate()
                .filter(|&(_, b)| b == b'\n')
                .map(|(i, _)| i + 1),
        );
        LineIndex { src, starts }
    }

    /// The byte offset where 1-based `line` starts (the end of the text past the last line).
    pub(crate) fn line_start(&self, line: usize) -> usize {
        self.starts
            .get(line.saturating_sub(1))
            .copied()
            .unwrap_or(self.src.len())
    }

    /// The 1-based line of a byte offset.
    pub(crate) fn line(&self, offset: usize) -> usize {
        self.starts.partition_point(|&s| s <= offset).max(1)
    }

    /// The 1-based line and column (in characters) of a byte offset. An offset inside a
    /// character (a parser counting bytes may give one) is that character's column.
    pub(crate) fn line_col(&self, offset: usize) -> (usize, usize) {
        let mut offset = offset.min(self.src.len());
        while !self.src.is_char_boundary(offset) {
            offset -= 1;
        }
        let line = self.line(offset);
        let start = self.starts[line - 1];
        let col = self.src[start..offset].chars().count();
        (line, col + 1)
    }
}

/// Problems found so far, by byte offset; turned into [`Diagnostic`]s at the end.
///
/// Problems come in two tiers: real errors, and consequences, which may only follow from a real
/// error elsewhere (a route via a gateway of a network whose subnet was refused, an interface
/// whose link was refused). Consequences are listed after every real error, so that they never
/// drown it.
pub(crate) struct Sink<'s> {
    pub(crate) index: LineIndex<'s>,
    found: Vec<(usize, DiagnosticKind)>,
    consequences: Vec<(usize, DiagnosticKind)>,
}

impl<'s> Sink<'s> {
    pub(crate) fn new(src: &'s str) -> Self {
        Sink {
            index: LineIndex::new(src),
            found: Vec::new(),
            consequences: Vec::new(),
        }
    }

    /// Records a problem at byte offset `at`.
    pub(crate) fn report(&mut self, at: usize, kind: DiagnosticKind) {
        self.found.push((at, kind));
    }

    /// Records a problem at byte offset `at` that may only be a consequence of another one.
    pub(crate) fn report_consequence(&mut self, at: usize, kind: DiagnosticKind) {
        self.consequences.push((at, kind));
    }

    /// How many problems have been recorded so far.
    pub(crate) fn count(&self) -> usize {
        self.found.len() + self.consequences.len()
    }

    /// The line of byte offset `at`.
    pub(crate) fn line(&self, at: usize) -> usize {
        self.index.line(at)
    }

    pub(crate) fn is_clean(&self) -> bool {
        self.count() == 0
    }

    /// The problems: real errors in file order, then consequences in file order.
    pub(crate) fn into_error(self, origin: &str) -> ModelError {
        let mut seen = HashSet::new();
        let mut diagnostics = Vec::with_capacity(self.count());
        for mut tier in [self.found, self.consequences] {
            // Stable: problems at the same place keep the order they were found in.
            tier.sort_by_key(|(at, _)| *at);
            // A range declares many nodes from one line; a problem in it is reported once per
            // place.
            tier.retain(|(at, kind)| seen.insert((*at, std::mem::discriminant(kind))));
            diagnostics.extend(tier.into_iter().map(|(at, kind)| {
                let (line, col) = self.index.line_col(at);
                Diagnostic::new(origin, line, col, kind)
            }));
        }
        ModelError::Invalid { diagnostics }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_index_offsets_map_to_one_based_positions() {
        let idx = LineIndex::new("ab\ncd\n\nxé z");
        assert_eq!(idx.line_col(0), (1, 1));
        assert_eq!(idx.line_col(1), (1, 2));
        assert_eq!(idx.line_col(3), (2, 1));
        assert_eq!(idx.line_col(6), (3, 1));
        // `é` is two bytes but one column.
        assert_eq!(idx.line_col(11), (4, 4));
        // Inside `é`: its own column, not a column counted in bytes.
        assert_eq!(idx.line_col(9), (4, 2));
        assert_eq!(idx.line_col(99), (4, 5));
    }

    #[test]
    fn sink_consequences_follow_every_real_error() {
        let mut sink = Sink::new("a\nb\nc\n");
        sink.report_consequence(0, DiagnosticKind::RouteWithoutNextHop);
        sink.report(4, DiagnosticKind::EndpointCount { found: 3 });
        sink.report(2, DiagnosticKind::EndpointCount { found: 1 });
        assert_eq!(sink.count(), 3);
        let err = sink.into_error("t");
        let lines: Vec<_> = err.diagnostics().iter().map(Diagnostic::line).collect();
        assert_eq!(lines, [2, 3, 1]);
    }
}
