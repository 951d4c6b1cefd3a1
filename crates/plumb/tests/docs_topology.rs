//! `docs/topology.md` stays true: every complete file in it loads, and its error example is
//! reported exactly as the document shows.
//!
//! A ```toml block whose first line starts with `name =` is a complete file and must load with
//! [`plumb::model::parse_toml`]; every ```json block must load with [`plumb::model::parse_json`].
//! A ```toml block whose first line is `# file: NAME` must be refused, with the diagnostics in
//! the ```text block right after it.

use std::path::PathBuf;

use plumb::model;

/// A fenced code block: its language and its text.
#[derive(Debug)]
struct Block {
    lang: String,
    text: String,
    /// The 1-based line of the opening fence, for messages.
    line: usize,
}

fn doc() -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/topology.md");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// Every fenced block of a Markdown text, in order. Panics on a fence left open.
fn blocks(md: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let mut open: Option<Block> = None;
    for (i, line) in md.lines().enumerate() {
        match (&mut open, line.strip_prefix("```")) {
            (None, Some(lang)) => {
                open = Some(Block {
                    lang: lang.trim().to_owned(),
                    text: String::new(),
                    line: i + 1,
                });
            }
            (Some(_), Some(rest)) if rest.trim().is_empty() => {
                out.extend(open.take());
            }
            (Some(b), _) => {
                b.text.push_str(line);
                b.text.push('\n');
            }
            (None, None) => {}
        }
    }
    assert!(open.is_none(), "a code block is never closed: {open:?}");
    out
}

fn is_complete_file(b: &Block) -> bool {
    b.lang == "toml" && b.text.starts_with("name =")
}

#[test]
fn docs_topology_every_complete_toml_file_loads() {
    let blocks = blocks(&doc());
    let files: Vec<&Block> = blocks.iter().filter(|b| is_complete_file(b)).collect();
    // The document shows a complete file for every section; fewer means the marker was lost.
    assert!(
        files.len() >= 15,
        "only {} complete files found in docs/topology.md",
        files.len()
    );
    let mut failures = Vec::new();
    for b in &files {
        let origin = format!("docs/topology.md:{}", b.line);
        if let Err(e) = model::parse_toml(&b.text, &origin) {
            failures.push(format!("the block at line {}:\n{}\n{e}", b.line, b.text));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn docs_topology_every_json_file_loads() {
    let blocks = blocks(&doc());
    let files: Vec<&Block> = blocks.iter().filter(|b| b.lang == "json").collect();
    assert!(!files.is_empty(), "no ```json block in docs/topology.md");
    for b in files {
        let origin = format!("docs/topology.md:{}", b.line);
        if let Err(e) = model::parse_json(&b.text, &origin) {
            panic!("the JSON block at line {} does not load:\n{e}", b.line);
        }
    }
}

#[test]
fn docs_topology_toml_blocks_are_complete_files_or_error_examples() {
    // A TOML block that is neither would be tested by nothing.
    for b in blocks(&doc()).iter().filter(|b| b.lang == "toml") {
        assert!(
            is_complete_file(b) || b.text.starts_with("# file: "),
            "the TOML block at line {} is neither a complete file (`name =` first) nor an \
             error example (`# file: NAME` first):\n{}",
            b.line,
            b.text
        );
    }
}

#[test]
fn docs_topology_error_example_is_reported_as_shown() {
    let blocks = blocks(&doc());
    let mut examples = 0;
    for (i, b) in blocks.iter().enumerate() {
        if b.lang != "toml" {
            continue;
        }
        let Some(first) = b.text.lines().next() else {
            continue;
        };
        let Some(name) = first.strip_prefix("# file: ") else {
            continue;
        };
        examples += 1;
        let shown = blocks
            .get(i + 1)
            .filter(|n| n.lang == "text")
            .unwrap_or_else(|| {
                panic!(
                    "the error example at line {} has no ```text block after it",
                    b.line
                )
            });
        let err = match model::parse_toml(&b.text, name.trim()) {
            Ok(_) => panic!("the error example at line {} loads", b.line),
            Err(e) => e,
        };
        assert_eq!(
            format!("{err}\n"),
            shown.text,
            "the error example at line {} is reported differently",
            b.line
        );
    }
    assert_eq!(examples, 1, "docs/topology.md has one error example");
}
