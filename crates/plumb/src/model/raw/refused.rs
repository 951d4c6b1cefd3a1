//! Names whose declaration was refused, so that references to them are not reported again as
//! unknown: the real error is at the declaration.

use std::collections::HashSet;

/// Refused node, bridge and network names, and refused ranges as patterns.
#[derive(Debug, Default)]
pub(crate) struct Refused {
    names: HashSet<String>,
    /// The prefix and suffix of each refused range: `c[1..x]-e` refuses every `cN-e`.
    ranges: Vec<(String, String)>,
}

impl Refused {
    /// Refuses `text`: a name, or a node range that could not be expanded.
    pub(crate) fn insert(&mut self, text: &str) {
        if let Some((prefix, rest)) = text.split_once('[') {
            let suffix = rest.rsplit_once(']').map_or("", |(_, s)| s);
            self.ranges.push((prefix.to_owned(), suffix.to_owned()));
        }
        self.names.insert(text.to_owned());
    }

    /// Whether a reference to `name` may be one to a refused declaration.
    pub(crate) fn contains(&self, name: &str) -> bool {
        self.names.contains(name)
            || self.ranges.iter().any(|(prefix, suffix)| {
                name.strip_prefix(prefix.as_str())
                    .and_then(|rest| rest.strip_suffix(suffix.as_str()))
                    .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
            })
    }
}

impl From<HashSet<String>> for Refused {
    fn from(names: HashSet<String>) -> Self {
        let mut refused = Refused::default();
        for name in &names {
            refused.insert(name);
        }
        refused
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_range_covers_the_names_it_would_declare() {
        let mut r = Refused::default();
        r.insert("c[1..x]");
        r.insert("r[5..1]-edge");
        r.insert("ns/1");
        assert!(r.contains("c1") && r.contains("c200") && r.contains("c[1..x]"));
        assert!(r.contains("r3-edge") && r.contains("ns/1"));
        assert!(!r.contains("c") && !r.contains("cx") && !r.contains("r3") && !r.contains("d1"));
    }
}
