//! Node ranges: `c[1..100]` stands for `c1` … `c100`.
//!
//! The bounds are inclusive decimal numbers; a first bound written with leading zeros
//! (`c[01..10]`) pads every number to its width (`c01` … `c10`). Text after the `]` is a suffix
//! (`r[1..3]-edge` is `r1-edge` … `r3-edge`).

use super::error::RangeProblem;

/// The most names one range may declare, so that a typo cannot ask for a billion namespaces.
pub(crate) const RANGE_MAX: u64 = 65_536;

/// Expands `text` if it is a range. `Ok(None)` means it is a plain name (it has no `[`).
pub(crate) fn expand(text: &str) -> Result<Option<Vec<String>>, RangeProblem> {
    let Some((prefix, rest)) = text.split_once('[') else {
        return Ok(None);
    };
    let (inner, suffix) = rest.split_once(']').ok_or(RangeProblem::Shape)?;
    let (first, last) = inner.split_once("..").ok_or(RangeProblem::Shape)?;
    if first.is_empty() || last.is_empty() || suffix.contains(['[', ']']) {
        return Err(RangeProblem::Shape);
    }
    let number = |s: &str| -> Result<u64, RangeProblem> {
        if !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(RangeProblem::NotNumber);
        }
        s.parse().map_err(|_| RangeProblem::TooLarge)
    };
    let (lo, hi) = (number(first)?, number(last)?);
    if lo > hi {
        return Err(RangeProblem::Reversed);
    }
    if hi - lo >= RANGE_MAX {
        return Err(RangeProblem::TooLarge);
    }
    let width = if first.len() > 1 && first.starts_with('0') {
        first.len()
    } else {
        0
    };
    Ok(Some(
        (lo..=hi)
            .map(|n| format!("{prefix}{n:0width$}{suffix}"))
            .collect(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_plain_name_is_not_a_range() {
        assert_eq!(expand("ns1"), Ok(None));
    }

    #[test]
    fn range_inclusive_bounds_expand_in_numeric_order() {
        let names = expand("c[1..100]").unwrap().unwrap();
        assert_eq!(names.len(), 100);
        assert_eq!(names[0], "c1");
        assert_eq!(names[9], "c10");
        assert_eq!(names[99], "c100");
    }

    #[test]
    fn range_leading_zero_and_suffix_are_kept() {
        assert_eq!(
            expand("r[08..10]-x").unwrap().unwrap(),
            ["r08-x", "r09-x", "r10-x"]
        );
        assert_eq!(expand("[3..3]").unwrap().unwrap(), ["3"]);
    }

    #[test]
    fn range_malformed_is_refused_with_reason() {
        assert_eq!(expand("c[5..1]"), Err(RangeProblem::Reversed));
        assert_eq!(expand("c[1..x]"), Err(RangeProblem::NotNumber));
        assert_eq!(expand("c[1-5]"), Err(RangeProblem::Shape));
        assert_eq!(expand("c[1..5"), Err(RangeProblem::Shape));
        assert_eq!(expand("c[..5]"), Err(RangeProblem::Shape));
        assert_eq!(expand("c[0..65536]"), Err(RangeProblem::TooLarge));
        assert!(expand("c[0..65535]").is_ok());
    }
}
