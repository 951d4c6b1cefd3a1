//! The file as written, format-neutral: a tree of values where every key and value carries the
//! byte offset it starts at. TOML and JSON are both read into this tree, so validation has one
//! code path and every problem has a position.

use serde_spanned::Spanned;
use toml::de::{DeTable, DeValue};

use super::error::{DiagnosticKind, Format};

/// A value and where it starts.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Item {
    pub(crate) value: Value,
    /// Byte offset of the value's first character (for a string, its opening quote).
    pub(crate) at: usize,
}

/// A key, its value, and where the key starts.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Entry {
    pub(crate) key: String,
    pub(crate) key_at: usize,
    pub(crate) item: Item,
}

/// A value as written.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    Str(String),
    Int(i128),
    Float(f64),
    Bool(bool),
    Array(Vec<Item>),
    /// Entries in file order.
    Table(Vec<Entry>),
    /// A TOML date-time, which no key of the format takes.
    Datetime,
    /// A JSON `null`, read as "not written".
    Null,
}

impl Value {
    /// The type's name with an article, for messages.
    pub(crate) fn type_name(&self) -> &'static str {
        match self {
            Value::Str(_) => "a string",
            Value::Int(_) => "an integer",
            Value::Float(_) => "a float",
            Value::Bool(_) => "a boolean",
            Value::Array(_) => "a list",
            Value::Table(_) => "a table",
            Value::Datetime => "a date-time",
            Value::Null => "null",
        }
    }
}

/// Reads a TOML document into the tree. A syntax error comes back with its byte offset.
pub(crate) fn from_toml(src: &str) -> Result<Item, (usize, DiagnosticKind)> {
    match DeTable::parse(src) {
        Ok(doc) => {
            let entries = toml_table(doc.into_inner());
            Ok(Item {
                value: Value::Table(entries),
                at: 0,
            })
        }
        Err(e) => {
            let at = e.span().map_or(0, |s| s.start);
            let message = e.message().trim().replace('\n', "; ");
            let kind = if message == "duplicate key" {
                let key = e
                    .span()
                    .and_then(|s| src.get(s))
                    .unwrap_or_default()
                    .trim_matches(|c| c == '"' || c == '\'')
                    .to_owned();
                DiagnosticKind::DuplicateKey { key }
            } else {
                DiagnosticKind::Syntax {
                    format: Format::Toml,
                    message,
                }
            };
            Err((at, kind))
        }
    }
}

fn toml_table(t: DeTable<'_>) -> Vec<Entry> {
    // The parser's map is sorted by key; the file's order is the order of the keys' positions.
    let mut entries: Vec<Entry> = t
        .into_iter()
        .map(|(k, v)| {
            let key_at = k.span().start;
            Entry {
                key: k.into_inner().into_owned(),
                key_at,
                item: toml_item(v),
            }
        })
        .collect();
    entries.sort_by_key(|e| e.key_at);
    entries
}

fn toml_item(v: Spanned<DeValue<'_>>) -> Item {
    let at = v.span().start;
    let value = match v.into_inner() {
        DeValue::String(s) => Value::Str(s.into_owned()),
        DeValue::Integer(i) => match i128::from_str_radix(i.as_str(), i.radix()) {
            Ok(n) => Value::Int(n),
            Err(_) => Value::Float(f64::INFINITY),
        },
        DeValue::Float(f) => Value::Float(f.as_str().parse().unwrap_or(f64::NAN)),
        DeValue::Boolean(b) => Value::Bool(b),
        DeValue::Datetime(_) => Value::Datetime,
        DeValue::Array(a) => Value::Array(a.into_iter().map(toml_item).collect()),
        DeValue::Table(t) => Value::Table(toml_table(t)),
    };
    Item { value, at }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_tree_keeps_file_order_and_offsets() {
        let src = "name = \"x\"\n[nodes.zz]\n[nodes.aa]\n";
        let doc = from_toml(src).unwrap();
        let Value::Table(top) = doc.value else {
            panic!("not a table")
        };
        assert_eq!(top[0].key, "name");
        assert_eq!(top[0].item.at, 7);
        let Value::Table(nodes) = &top[1].item.value else {
            panic!("not a table")
        };
        let keys: Vec<_> = nodes.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(keys, ["zz", "aa"]);
        assert_eq!(nodes[0].key_at, src.find("zz").unwrap());
    }

    #[test]
    fn toml_syntax_error_has_offset() {
        let (at, kind) = from_toml("name = x\n").unwrap_err();
        assert_eq!(at, 7);
        assert!(matches!(
            kind,
            DiagnosticKind::Syntax {
                format: Format::Toml,
                ..
            }
        ));
    }
}
