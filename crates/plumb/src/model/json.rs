//! JSON into the located tree.
//!
//! `serde_json` checks the syntax (its messages and positions are good) but keeps no positions in
//! its values, so once the text is known to be valid a small scanner reads it again and records
//! the byte offset of every key and value.

use super::error::{DiagnosticKind, Format, LineIndex};
use super::tree::{Entry, Item, Value};

/// Reads a JSON document into the tree. A syntax error comes back with its byte offset.
pub(crate) fn from_json(src: &str) -> Result<Item, (usize, DiagnosticKind)> {
    if let Err(e) = serde_json::from_str::<serde::de::IgnoredAny>(src) {
        let index = LineIndex::new(src);
        // serde_json counts columns in bytes from 1 (0 at the very start of an empty input).
        let at = index.line_start(e.line()) + e.column().saturating_sub(1);
        let full = e.to_string();
        let suffix = format!(" at line {} column {}", e.line(), e.column());
        let message = full.strip_suffix(&suffix).unwrap_or(&full).to_owned();
        return Err((
            at,
            DiagnosticKind::Syntax {
                format: Format::Json,
                message,
            },
        ));
    }
    let mut s = Scanner {
        src: src.as_bytes(),
        text: src,
        pos: 0,
    };
    s.skip_ws();
    s.value().ok_or_else(|| {
        (
            s.pos,
            DiagnosticKind::Syntax {
                format: Format::Json,
                message: "unexpected input".into(),
            },
        )
    })
}

/// Reads text that `serde_json` accepted; returns `None` only if that were not so.
struct Scanner<'s> {
    src: &'s [u8],
    text: &'s str,
    pos: usize,
}

impl Scanner<'_> {
    fn peek(&self) -> Option<u8> {
        self.src.get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    fn eat(&mut self, b: u8) -> Option<()> {
        if self.peek() == Some(b) {
            self.pos += 1;
            Some(())
        } else {
            None
        }
    }

    fn value(&mut self) -> Option<Item> {
        let at = self.pos;
        let value = match self.peek()? {
            b'{' => self.object()?,
            b'[' => self.array()?,
            b'"' => Value::Str(self.string()?),
            b't' => self.word("true", Value::Bool(true))?,
            b'f' => self.word("false", Value::Bool(false))?,
            b'n' => self.word("null", Value::Null)?,
            _ => self.number()?,
        };
        Some(Item { value, at })
    }

    fn word(&mut self, w: &str, v: Value) -> Option<Value> {
        if self.src[self.pos..].starts_with(w.as_bytes()) {
            self.pos += w.len();
            Some(v)
        } else {
            None
        }
    }

    fn number(&mut self) -> Option<Value> {
        let start = self.pos;
        while matches!(
            self.peek(),
            Some(b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9')
        ) {
            self.pos += 1;
        }
        let lexeme = self.text.get(start..self.pos)?;
        if lexeme.is_empty() {
            return None;
        }
        if lexeme.contains(['.', 'e', 'E']) {
            lexeme.parse().ok().map(Value::Float)
        } else {
            Some(
                lexeme
                    .parse()
                    .map_or(Value::Float(f64::INFINITY), Value::Int),
            )
        }
    }

    fn string(&mut self) -> Option<String> {
        self.eat(b'"')?;
        let mut out = String::new();
        loop {
            let start = self.pos;
            while !matches!(self.peek()?, b'"' | b'\\') {
                self.pos += 1;
            }
            out.push_str(self.text.get(start..self.pos)?);
            if self.eat(b'"').is_some() {
                return Some(out);
            }
            self.eat(b'\\')?;
            let esc = self.peek()?;
            self.pos += 1;
            match esc {
                b'"' => out.push('"'),
                b'\\' => out.push('\\'),
                b'/' => out.push('/'),
                b'b' => out.push('\u{8}'),
                b'f' => out.push('\u{c}'),
                b'n' => out.push('\n'),
                b'r' => out.push('\r'),
                b't' => out.push('\t'),
                b'u' => {
                    let hi = self.hex4()?;
                    let c = if (0xD800..0xDC00).contains(&hi) {
                        self.eat(b'\\')?;
                        self.eat(b'u')?;
                        let lo = self.hex4()?;
                        char::from_u32(0x10000 + ((hi - 0xD800) << 10) + (lo.checked_sub(0xDC00)?))
                    } else {
                        char::from_u32(hi)
                    };
                    out.push(c.unwrap_or(char::REPLACEMENT_CHARACTER));
                }
                _ => return None,
            }
        }
    }

    fn hex4(&mut self) -> Option<u32> {
        let digits = self.text.get(self.pos..self.pos + 4)?;
        self.pos += 4;
        u32::from_str_radix(digits, 16).ok()
    }

    fn array(&mut self) -> Option<Value> {
        self.eat(b'[')?;
        let mut items = Vec::new();
        self.skip_ws();
        if self.eat(b']').is_some() {
            return Some(Value::Array(items));
        }
        loop {
            self.skip_ws();
            items.push(self.value()?);
            self.skip_ws();
            if self.eat(b']').is_some() {
                return Some(Value::Array(items));
            }
            self.eat(b',')?;
        }
    }

    fn object(&mut self) -> Option<Value> {
        self.eat(b'{')?;
        let mut entries = Vec::new();
        self.skip_ws();
        if self.eat(b'}').is_some() {
            return Some(Value::Table(entries));
        }
        loop {
            self.skip_ws();
            let key_at = self.pos;
            let key = self.string()?;
            self.skip_ws();
            self.eat(b':')?;
            self.skip_ws();
            let item = self.value()?;
            entries.push(Entry { key, key_at, item });
            self.skip_ws();
            if self.eat(b'}').is_some() {
                return Some(Value::Table(entries));
            }
            self.eat(b',')?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_tree_records_key_and_value_offsets() {
        let src = "{\n  \"name\": \"x\",\n  \"n\": [1, 2.5, true, null, \"a\\u00e9\\n\"]\n}";
        let doc = from_json(src).unwrap();
        let Value::Table(top) = doc.value else {
            panic!("not a table")
        };
        assert_eq!(top[0].key_at, 4);
        assert_eq!(top[0].item.at, 12);
        let Value::Array(items) = &top[1].item.value else {
            panic!("not a list")
        };
        let values: Vec<_> = items.iter().map(|i| i.value.clone()).collect();
        assert_eq!(
            values,
            [
                Value::Int(1),
                Value::Float(2.5),
                Value::Bool(true),
                Value::Null,
                Value::Str("aé\n".into())
            ]
        );
    }

    #[test]
    fn json_syntax_error_points_at_offending_character() {
        let src = "{\n  \"name\": x\n}";
        let (at, kind) = from_json(src).unwrap_err();
        assert_eq!(at, src.find('x').unwrap());
        assert_eq!(
            kind,
            DiagnosticKind::Syntax {
                format: Format::Json,
                message: "expected value".into()
            }
        );
    }
}
