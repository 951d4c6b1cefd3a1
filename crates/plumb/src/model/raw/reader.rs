//! The typed accessors every section of the reader uses: tables with known keys, strings, lists,
//! booleans, MTUs, addresses and names, each reporting what is wrong at its position.

use std::collections::HashSet;

use ipnet::IpNet;

use super::value::parse_cidr;
use super::{At, Reader};
use crate::model::error::DiagnosticKind;
use crate::model::names::{IfName, NsName};
use crate::model::range;
use crate::model::tree::{Entry, Item, Value};

/// The smallest and largest MTU the kernel accepts on an Ethernet-like device.
const MTU_MIN: i128 = 68;
const MTU_MAX: i128 = 65535;

/// `a.b` with the key quoted when it is not a bare TOML key.
pub(super) fn join(path: &str, key: &str) -> String {
    let bare = !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    match (path.is_empty(), bare) {
        (true, true) => key.to_owned(),
        (true, false) => format!("\"{key}\""),
        (false, true) => format!("{path}.{key}"),
        (false, false) => format!("{path}.\"{key}\""),
    }
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, &cb) in b.iter().enumerate() {
            let cost = usize::from(ca != cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

fn suggest(key: &str, allowed: &'static [&'static str]) -> Option<&'static str> {
    allowed
        .iter()
        .map(|k| (edit_distance(key, k), *k))
        .filter(|(d, k)| *d <= 2 && *d < k.len())
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

impl Reader<'_, '_> {
    pub(super) fn report(&mut self, at: usize, kind: DiagnosticKind) {
        self.sink.report(at, kind);
    }

    pub(super) fn wrong_type(
        &mut self,
        item: &Item,
        key: &str,
        expected: &'static str,
        example: &'static str,
    ) {
        let kind = DiagnosticKind::WrongType {
            key: key.to_owned(),
            expected,
            found: item.value.type_name(),
            example,
        };
        self.report(item.at, kind);
    }

    /// The entries of a table, or a report that `item` is not one.
    pub(super) fn table<'v>(
        &mut self,
        item: &'v Item,
        path: &str,
        example: &'static str,
    ) -> Option<&'v [Entry]> {
        match &item.value {
            Value::Table(entries) => Some(entries),
            _ => {
                self.wrong_type(item, path, "a table", example);
                None
            }
        }
    }

    /// Entries of a table whose keys are names (nodes, interfaces…): drops duplicates and nulls.
    pub(super) fn named<'v>(&mut self, entries: &'v [Entry]) -> Vec<&'v Entry> {
        let mut seen = HashSet::new();
        let mut out = Vec::with_capacity(entries.len());
        for e in entries {
            if !seen.insert(e.key.as_str()) {
                self.report(
                    e.key_at,
                    DiagnosticKind::DuplicateKey { key: e.key.clone() },
                );
            } else if e.item.value != Value::Null {
                out.push(e);
            }
        }
        out
    }

    /// Entries of a table with a fixed set of keys: reports unknown and duplicate keys.
    pub(super) fn known<'v>(
        &mut self,
        entries: &'v [Entry],
        context: &str,
        allowed: &'static [&'static str],
    ) -> Vec<&'v Entry> {
        let named = self.named(entries);
        let mut out = Vec::with_capacity(named.len());
        for e in named {
            if allowed.contains(&e.key.as_str()) {
                out.push(e);
            } else {
                let kind = DiagnosticKind::UnknownKey {
                    key: e.key.clone(),
                    context: context.to_owned(),
                    allowed,
                    suggestion: suggest(&e.key, allowed),
                };
                self.report(e.key_at, kind);
            }
        }
        out
    }

    pub(super) fn string<'v>(
        &mut self,
        item: &'v Item,
        path: &str,
        example: &'static str,
    ) -> Option<At<&'v str>> {
        match &item.value {
            Value::Str(s) => Some(At {
                v: s.as_str(),
                at: item.at,
            }),
            _ => {
                self.wrong_type(item, path, "a string", example);
                None
            }
        }
    }

    pub(super) fn boolean(
        &mut self,
        item: &Item,
        path: &str,
        example: &'static str,
    ) -> Option<bool> {
        match item.value {
            Value::Bool(b) => Some(b),
            _ => {
                self.wrong_type(item, path, "a boolean (true or false)", example);
                None
            }
        }
    }

    pub(super) fn list<'v>(
        &mut self,
        item: &'v Item,
        path: &str,
        example: &'static str,
    ) -> &'v [Item] {
        match &item.value {
            Value::Array(items) => items,
            _ => {
                self.wrong_type(item, path, "a list", example);
                &[]
            }
        }
    }

    pub(super) fn strings<'v>(
        &mut self,
        item: &'v Item,
        path: &str,
        example: &'static str,
    ) -> Vec<At<&'v str>> {
        let items = self.list(item, path, example);
        items
            .iter()
            .filter_map(|i| self.string(i, path, example))
            .collect()
    }

    pub(super) fn mtu(&mut self, item: &Item, path: &str) -> Option<u32> {
        match item.value {
            Value::Int(n) if (MTU_MIN..=MTU_MAX).contains(&n) => u32::try_from(n).ok(),
            Value::Int(value) => {
                self.report(item.at, DiagnosticKind::MtuOutOfRange { value });
                None
            }
            _ => {
                self.wrong_type(item, path, "an integer", "mtu = 1500");
                None
            }
        }
    }

    pub(super) fn addresses(&mut self, item: &Item, path: &str) -> Vec<At<IpNet>> {
        let strings = self.strings(item, path, "addresses = [\"10.0.0.1/24\"]");
        let mut out = Vec::with_capacity(strings.len());
        for s in strings {
            match parse_cidr(s.v) {
                Ok(v) => out.push(At { v, at: s.at }),
                Err(kind) => self.report(s.at, kind),
            }
        }
        out
    }

    pub(super) fn ifname(&mut self, text: &str, at: usize) -> Option<IfName> {
        IfName::new(text)
            .map_err(|e| self.report(at, DiagnosticKind::BadName(e)))
            .ok()
    }

    /// Plain names and ranges, for node keys and network members.
    pub(super) fn ns_names(&mut self, text: &str, at: usize) -> Vec<NsName> {
        let written = match range::expand(text) {
            Ok(None) => vec![text.to_owned()],
            Ok(Some(names)) => names,
            Err(problem) => {
                self.lab.refused.insert(text);
                self.report(
                    at,
                    DiagnosticKind::BadRange {
                        text: text.to_owned(),
                        problem,
                    },
                );
                return Vec::new();
            }
        };
        let mut out = Vec::with_capacity(written.len());
        for name in written {
            match NsName::new(&name) {
                Ok(n) => out.push(n),
                Err(e) => {
                    self.lab.refused.insert(text);
                    self.lab.refused.insert(&name);
                    self.report(at, DiagnosticKind::BadName(e));
                    return Vec::new();
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::super::nodes::IFACE_KEYS;
    use super::*;

    #[test]
    pub(super) fn suggest_close_key_is_offered() {
        assert_eq!(suggest("adresses", IFACE_KEYS), Some("addresses"));
        assert_eq!(suggest("zzzzzzzz", IFACE_KEYS), None);
    }
}
