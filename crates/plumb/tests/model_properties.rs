//! Property tests of the topology loader: whatever the text, TOML or JSON, loading it never
//! panics, gives the same answer twice, and every problem it reports is a diagnostic whose line
//! and column lie inside the text.
//!
//! The texts are the repository's examples mutated (lines deleted, duplicated and swapped,
//! characters flipped, keys and values inserted, the text truncated), topologies generated from
//! random parts, and random text. `cargo test` runs a few hundred cases in all;
//! `scripts/fuzz-model.sh` runs the same properties with many more (`PROPTEST_CASES`).

use plumb::model::{self, ModelError};
use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence};

const EXAMPLES: &[&str] = &[
    include_str!("../../../examples/seed.toml"),
    include_str!("../../../examples/star.toml"),
    include_str!("../../../examples/star-1000.toml"),
    include_str!("../../../examples/egress.toml"),
    include_str!("../../../examples/dual-stack.toml"),
    include_str!("../../../examples/isolation.toml"),
];

/// Cases per property in a plain `cargo test`; `PROPTEST_CASES` overrides it.
const DEFAULT_CASES: u32 = 128;

fn config() -> Config {
    let mut config = Config {
        // A failing case is saved next to this file and tried first by every later run.
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource(
            "proptest-regressions",
        ))),
        ..Config::default()
    };
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = DEFAULT_CASES;
    }
    config
}

#[derive(Debug, Clone, Copy)]
enum Format {
    Toml,
    Json,
}

fn load(src: &str, format: Format) -> Result<model::Topology, ModelError> {
    match format {
        Format::Toml => model::parse_toml(src, "fuzz.toml"),
        Format::Json => model::parse_json(src, "fuzz.json"),
    }
}

/// The property: no panic, the same result twice, and every diagnostic inside the text.
fn check(src: &str, format: Format) -> Result<(), TestCaseError> {
    let first = load(src, format);
    let second = load(src, format);
    match (&first, &second) {
        (Ok(a), Ok(b)) => prop_assert_eq!(a, b, "two loads differ"),
        (Err(a), Err(b)) => prop_assert_eq!(a.diagnostics(), b.diagnostics(), "two loads differ"),
        _ => prop_assert!(false, "one load failed and the other did not"),
    }
    let err = match first {
        Ok(topology) => {
            // A loaded topology always has a name, and it serializes.
            prop_assert!(!topology.name.as_str().is_empty());
            prop_assert!(serde_json::to_string(&topology).is_ok());
            return Ok(());
        }
        Err(err) => err,
    };
    let ModelError::Invalid { diagnostics } = &err else {
        return Err(TestCaseError::fail(format!(
            "not ModelError::Invalid: {err}"
        )));
    };
    prop_assert!(!diagnostics.is_empty(), "an error without a diagnostic");
    let lines: Vec<&str> = src.split('\n').collect();
    for d in diagnostics {
        // Rendering and help never panic and always say something.
        let text = d.to_string();
        prop_assert!(!d.help().is_empty(), "no help: {}", text);
        let (line, column) = (d.line(), d.column());
        prop_assert!(
            (1..=lines.len()).contains(&line),
            "line {} outside the text of {} lines: {}",
            line,
            lines.len(),
            text
        );
        let width = lines[line - 1].chars().count();
        prop_assert!(
            (1..=width + 1).contains(&column),
            "column {} outside line {} of {} characters: {}",
            column,
            line,
            width,
            text
        );
    }
    Ok(())
}

// ---- Pieces of topology files ------------------------------------------------------------------

/// `text` as a quoted string that TOML and JSON both read back as `text`.
fn q(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A list of quoted strings.
fn q_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|i| q(i)).collect();
    format!("[{}]", quoted.join(", "))
}

fn name() -> BoxedStrategy<String> {
    prop_oneof![
        prop::sample::select(vec![
            "host", "ns1", "ns2", "web", "db", "a", "b", "c1", "c2", "br0", "lan0", "plumb0", "lo",
            "eth0", "eth1", "veth1", "x/y", "..", "",
        ])
        .prop_map(str::to_owned),
        "[a-z][a-z0-9-]{0,17}",
        "[a-z]\\[[0-9]{1,2}\\.\\.[0-9]{1,2}\\]",
        "\\PC{0,8}",
    ]
    .boxed()
}

fn address() -> BoxedStrategy<String> {
    prop_oneof![
        (0u8..=255, 0u8..=255, 0u8..=255, 0u8..=40)
            .prop_map(|(a, b, c, p)| format!("10.{a}.{b}.{c}/{p}")),
        (0u8..=255, 0u8..=3, 0u8..=255).prop_map(|(a, b, c)| format!("10.{a}.{b}.{c}")),
        (0u16..=0xffff, 0u8..=130).prop_map(|(h, p)| format!("fd00:{h:x}::1/{p}")),
        (0u8..=130).prop_map(|p| format!("fe80::1/{p}")),
        (0u8..=130).prop_map(|p| format!("fd00::/{p}")),
        (0u8..=33).prop_map(|p| format!("0.0.0.0/{p}")),
        Just("default".to_owned()),
        Just("255.255.255.255/32".to_owned()),
        "[0-9./:a-f]{0,20}",
    ]
    .boxed()
}

fn scalar() -> BoxedStrategy<String> {
    prop_oneof![
        name().prop_map(|n| q(&n)),
        address().prop_map(|a| q(&a)),
        (name(), name()).prop_map(|(n, i)| format!("\"{n}:{i}\"")),
        prop::sample::select(vec![
            "true",
            "false",
            "0",
            "-1",
            "68",
            "1500",
            "65536",
            "9223372036854775807",
            "99999999999999999999999",
            "1.5",
            "nan",
            "inf",
            "1979-05-27T07:32:00Z",
            "\"icmp\"",
            "\"tcp/80\"",
            "\"udp/53 from 10.0.0.0/8\"",
            "\"tcp/0\"",
            "\"8080:web:80/tcp\"",
            "\"53:db:53/udp\"",
            "\"1:a:1/sctp\"",
            "\"allow\"",
            "\"deny\"",
            "\"reach\"",
            "\"blocked\"",
            "\"02:00:00:00:00:01\"",
            "\"01:00:5e:00:00:01\"",
            "\"zz:zz\"",
            "\"net.ipv4.ip_forward\"",
            "''",
            "\"\"",
            "'''x'''",
            "\"\\u00e9\"",
        ])
        .prop_map(str::to_owned),
        any::<i64>().prop_map(|n| n.to_string()),
    ]
    .boxed()
}

fn value() -> BoxedStrategy<String> {
    scalar()
        .prop_recursive(2, 12, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4)
                    .prop_map(|v| format!("[{}]", v.join(", "))),
                prop::collection::vec((key(), inner), 0..3).prop_map(|kv| {
                    let body: Vec<String> =
                        kv.into_iter().map(|(k, v)| format!("{k} = {v}")).collect();
                    format!("{{ {} }}", body.join(", "))
                }),
            ]
        })
        .boxed()
}

fn key() -> BoxedStrategy<String> {
    prop_oneof![
        prop::sample::select(vec![
            "name",
            "nodes",
            "bridges",
            "links",
            "networks",
            "expect",
            "interfaces",
            "routes",
            "sysctls",
            "firewall",
            "addresses",
            "mtu",
            "mac",
            "up",
            "to",
            "via",
            "dev",
            "node",
            "stp",
            "endpoints",
            "subnet",
            "gateway",
            "members",
            "interface",
            "nat",
            "publish",
            "isolated",
            "ingress",
            "allow",
            "from",
            "proto",
            "result",
            "\"net.ipv4.ip_forward\"",
            "\"net.ipv6..x\"",
            "\"kernel.panic\"",
            "adresses",
        ])
        .prop_map(str::to_owned),
        name().prop_map(|n| q(&n)),
    ]
    .boxed()
}

fn header() -> BoxedStrategy<String> {
    (name(), name())
        .prop_flat_map(|(n, i)| {
            let (n, i) = (q(&n), q(&i));
            prop::sample::select(vec![
                format!("[nodes.{n}]"),
                format!("[nodes.{n}.interfaces.{i}]"),
                format!("[nodes.{n}.sysctls]"),
                format!("[nodes.{n}.firewall]"),
                format!("[[nodes.{n}.routes]]"),
                format!("[bridges.{n}]"),
                format!("[networks.{n}]"),
                "[[links]]".to_owned(),
                "[[expect]]".to_owned(),
                "[nodes.host.interfaces.veth9]".to_owned(),
                format!("[{n}]"),
            ])
        })
        .boxed()
}

/// A line of a TOML file: a header, `key = value`, a comment, or nothing much.
fn toml_line() -> BoxedStrategy<String> {
    prop_oneof![
        3 => (key(), value()).prop_map(|(k, v)| format!("{k} = {v}")),
        2 => header(),
        1 => "#\\PC{0,10}",
        1 => "\\PC{0,12}",
        1 => Just(String::new()),
    ]
    .boxed()
}

/// A fragment of a JSON document.
fn json_fragment() -> BoxedStrategy<String> {
    prop_oneof![
        (key(), value()).prop_map(|(k, v)| format!("{}: {},", q(k.trim_matches('"')), q(&v))),
        (name(), scalar()).prop_map(|(k, v)| format!("{}: {v},", q(&k))),
        prop::sample::select(vec![
            "{",
            "}",
            "[",
            "]",
            ",",
            ":",
            "null",
            "true",
            "\"\\ud83d\\ude00\"",
            "\"\\ud800\"",
            "\"\\u00\"",
            "1e400",
            "-0",
            "123456789012345678901234567890",
            "\"a\\\"b\"",
            "{\"name\": \"j\"}",
            "\"nodes\": {\"a\": null},",
            "[1, 2.5, \"x\"]",
        ])
        .prop_map(str::to_owned),
        "\\PC{0,8}",
    ]
    .boxed()
}

// ---- Mutations ---------------------------------------------------------------------------------

/// A position in a text or a list, whatever its length: `Pick(n)` is item `n % len`.
#[derive(Debug, Clone, Copy)]
struct Pick(usize);

impl Pick {
    fn index(self, len: usize) -> usize {
        self.0 % len.max(1)
    }
}

fn pick() -> impl Strategy<Value = Pick> {
    any::<usize>().prop_map(Pick)
}

#[derive(Debug, Clone)]
enum Mutation {
    DeleteLine(Pick),
    DuplicateLine(Pick),
    SwapLines(Pick, Pick),
    FlipChar(Pick, char),
    InsertLine(Pick, String),
    InsertText(Pick, String),
    Truncate(Pick),
}

fn flip_char() -> impl Strategy<Value = char> {
    prop_oneof![
        prop::sample::select(vec![
            '"', '\'', '[', ']', '{', '}', '=', ',', '.', ':', '/', '\\', '#', '\n', '\r', '\t',
            ' ', '0', '1', '9', 'a', 'z', '-', '_', 'é', '😀', '\u{0}', '\u{7f}',
        ]),
        any::<char>(),
    ]
}

fn mutation(line: BoxedStrategy<String>) -> impl Strategy<Value = Mutation> {
    prop_oneof![
        2 => pick().prop_map(Mutation::DeleteLine),
        1 => pick().prop_map(Mutation::DuplicateLine),
        1 => (pick(), pick()).prop_map(|(a, b)| Mutation::SwapLines(a, b)),
        3 => (pick(), flip_char()).prop_map(|(i, c)| Mutation::FlipChar(i, c)),
        3 => (pick(), line.clone()).prop_map(|(i, l)| Mutation::InsertLine(i, l)),
        1 => (pick(), line).prop_map(|(i, l)| Mutation::InsertText(i, l)),
        1 => pick().prop_map(Mutation::Truncate),
    ]
}

/// The byte offset of the character `i` selects in `text` (the end included).
fn char_offset(text: &str, i: Pick) -> usize {
    let offsets: Vec<usize> = text
        .char_indices()
        .map(|(o, _)| o)
        .chain([text.len()])
        .collect();
    offsets[i.index(offsets.len())]
}

fn apply(text: &str, mutations: &[Mutation]) -> String {
    let mut text = text.to_owned();
    for m in mutations {
        let mut lines: Vec<String> = text.split('\n').map(str::to_owned).collect();
        match m {
            Mutation::DeleteLine(i) => {
                lines.remove(i.index(lines.len()));
            }
            Mutation::DuplicateLine(i) => {
                let at = i.index(lines.len());
                lines.insert(at, lines[at].clone());
            }
            Mutation::SwapLines(a, b) => {
                let (a, b) = (a.index(lines.len()), b.index(lines.len()));
                lines.swap(a, b);
            }
            Mutation::InsertLine(i, line) => lines.insert(i.index(lines.len() + 1), line.clone()),
            Mutation::FlipChar(i, c) => {
                let at = char_offset(&text, *i);
                let end = text[at..]
                    .chars()
                    .next()
                    .map_or(at, |old| at + old.len_utf8());
                text.replace_range(at..end, c.encode_utf8(&mut [0; 4]));
                continue;
            }
            Mutation::InsertText(i, s) => {
                let at = char_offset(&text, *i);
                text.insert_str(at, s);
                continue;
            }
            Mutation::Truncate(i) => {
                let at = char_offset(&text, *i);
                text.truncate(at);
                continue;
            }
        }
        text = lines.join("\n");
    }
    text
}

/// The examples as JSON documents with the same structure.
fn json_examples() -> Vec<String> {
    EXAMPLES
        .iter()
        .map(|src| {
            let value: serde_json::Value = toml::from_str(src).expect("the examples are TOML");
            serde_json::to_string_pretty(&value).expect("a JSON value serializes")
        })
        .collect()
}

/// A topology assembled from valid-looking parts, so that the checks of the whole lab (networks,
/// address pools, links, routes, duplicates) see many more files than a mutation reaches.
fn generated_topology() -> impl Strategy<Value = String> {
    // `subnet` and `gateway` as one string or a list (dual stack, or refused).
    let one_or_list = |items: Vec<String>| match items.as_slice() {
        [one] => q(one),
        _ => q_list(&items),
    };
    let network = (
        name(),
        prop::collection::vec(address(), 1..4),
        prop::option::of(prop::collection::vec(address(), 1..3)),
        prop::collection::vec(name(), 0..5),
        any::<bool>(),
        prop::collection::vec(scalar(), 0..3),
    )
        .prop_map(move |(n, subnets, gateways, members, nat, publish)| {
            let mut s = format!("[networks.{}]\nsubnet = {}\n", q(&n), one_or_list(subnets));
            if let Some(g) = gateways {
                let g = g
                    .iter()
                    .map(|a| a.split('/').next().unwrap_or_default().to_string())
                    .collect();
                s += &format!("gateway = {}\n", one_or_list(g));
            }
            s += &format!(
                "members = {}\nnat = {nat}\npublish = [{}]\n",
                q_list(&members),
                publish.join(", ")
            );
            s
        });
    let node = (
        name(),
        name(),
        prop::collection::vec(address(), 0..3),
        address(),
    )
        .prop_map(|(n, i, addrs, via)| {
            let (n, i) = (q(&n), q(&i));
            format!(
                "[nodes.{n}.interfaces.{i}]\naddresses = {}\n\
                 [[nodes.{n}.routes]]\nto = \"default\"\nvia = {}\n",
                q_list(&addrs),
                q(via.split('/').next().unwrap_or_default())
            )
        });
    let link = (name(), name(), name(), name()).prop_map(|(a, i, b, j)| {
        let ends = [format!("{a}:{i}"), format!("{b}:{j}")];
        format!("[[links]]\nendpoints = {}\n", q_list(&ends))
    });
    let bridge = (name(), prop::collection::vec(address(), 0..2))
        .prop_map(|(n, addrs)| format!("[bridges.{}]\naddresses = {}\n", q(&n), q_list(&addrs)));
    let expect = (name(), name(), scalar()).prop_map(|(f, t, p)| {
        format!(
            "[[expect]]\nfrom = {}\nto = {}\nproto = {p}\n",
            q(&f),
            q(&t)
        )
    });
    let section = prop_oneof![network, node, link, bridge, expect];
    prop::collection::vec(section, 0..8)
        .prop_map(|sections| format!("name = \"gen\"\n{}", sections.concat()))
}

// ---- Properties --------------------------------------------------------------------------------

proptest! {
    #![proptest_config(config())]

    #[test]
    fn loader_mutated_toml_examples_are_refused_cleanly(
        example in 0..EXAMPLES.len(),
        mutations in prop::collection::vec(mutation(toml_line()), 1..8),
    ) {
        check(&apply(EXAMPLES[example], &mutations), Format::Toml)?;
    }

    #[test]
    fn loader_random_toml_is_refused_cleanly(
        lines in prop::collection::vec(toml_line(), 0..24),
    ) {
        check(&lines.join("\n"), Format::Toml)?;
    }

    #[test]
    fn loader_generated_topologies_are_refused_cleanly(
        src in generated_topology(),
        mutations in prop::collection::vec(mutation(toml_line()), 0..2),
    ) {
        check(&apply(&src, &mutations), Format::Toml)?;
    }

    #[test]
    fn loader_mutated_json_examples_are_refused_cleanly(
        example in 0..EXAMPLES.len(),
        mutations in prop::collection::vec(mutation(json_fragment()), 1..8),
    ) {
        let examples = json_examples();
        check(&apply(&examples[example], &mutations), Format::Json)?;
    }

    #[test]
    fn loader_random_json_is_refused_cleanly(
        fragments in prop::collection::vec(json_fragment(), 0..24),
    ) {
        check(&fragments.join("\n"), Format::Json)?;
    }

    #[test]
    fn loader_arbitrary_text_is_refused_cleanly(src in any::<String>()) {
        check(&src, Format::Toml)?;
        check(&src, Format::Json)?;
    }
}

#[test]
fn loader_examples_load_as_toml_and_as_json() {
    // The JSON texts have their keys sorted, so the order of nodes may differ, not the lab.
    for (src, json) in EXAMPLES.iter().zip(json_examples()) {
        let toml = model::parse_toml(src, "example.toml").unwrap();
        let json = model::parse_json(&json, "example.json").unwrap();
        assert_eq!(toml.name, json.name);
        assert_eq!(toml.nodes.len(), json.nodes.len());
        assert_eq!(toml.links.len(), json.links.len());
        assert_eq!(toml.networks.len(), json.networks.len());
        assert_eq!(toml.expects, json.expects);
    }
}

// ---- Regressions: inputs the properties found, kept as plain tests -----------------------------

/// Asserts that `src` is refused with a first diagnostic at `line`:`column`.
fn refused_at(src: &str, format: Format, line: usize, column: usize) {
    check(src, format).unwrap();
    let err = load(src, format).unwrap_err();
    let d = &err.diagnostics()[0];
    assert_eq!((d.line(), d.column()), (line, column), "{d}");
}

#[test]
fn regression_json_eof_in_a_string_after_a_wide_character_is_inside_the_line() {
    // serde_json counts columns in bytes: the 4-byte character made column 5 of a 2-character
    // line.
    refused_at("\"🌀", Format::Json, 1, 2);
}

#[test]
fn loader_mutations_change_the_text_as_described() {
    let text = "a\nb\nc";
    let (first, last) = (Pick(0), Pick(2));
    assert_eq!(apply(text, &[Mutation::DeleteLine(first)]), "b\nc");
    assert_eq!(apply(text, &[Mutation::DuplicateLine(last)]), "a\nb\nc\nc");
    assert_eq!(apply(text, &[Mutation::SwapLines(first, last)]), "c\nb\na");
    assert_eq!(apply(text, &[Mutation::FlipChar(first, 'é')]), "é\nb\nc");
    assert_eq!(
        apply(text, &[Mutation::InsertLine(Pick(3), "x = 1".into())]),
        "a\nb\nc\nx = 1"
    );
    // Offsets are character boundaries: `é` is two bytes, and `Pick(1)` is the end of `é`.
    assert_eq!(apply("é", &[Mutation::Truncate(Pick(1))]), "é");
    assert_eq!(apply("éa", &[Mutation::Truncate(Pick(1))]), "é");
    assert_eq!(apply("éa", &[Mutation::FlipChar(Pick(1), 'b')]), "éb");
}
