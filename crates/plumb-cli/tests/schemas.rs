//! The `--json` outputs match their published JSON Schemas (`docs/schema/*.vN.json`, draft
//! 2020-12): each command runs in a sandbox, its stdout is parsed as JSON and validated against
//! its schema, and a failure prints every validation error with the document.
//!
//! `plumb up --json` is driven through a fresh build, a converge, a converge killed mid-way and a
//! `down` killed mid-way, so that every kind of step that can appear in its output does; `plumb
//! check --json` gets both `reach` and `blocked` results, and a mismatch. Kill points come from
//! the test-only `fault-injection` feature (`stall=N`: plumb says `plumb: stalled` and waits
//! after N steps).

mod common;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use common::*;
use jsonschema::Validator;
use plumb::model::names::{IfName, NsName};
use plumb::model::{MacAddr, NodeRef};
use plumb::plan::{LinkSet, RouteSpec, Step, VethEnd};
use plumb_testkit::{describe, Sandbox};
use serde_json::{json, Value};

/// The draft every schema declares.
const DRAFT_2020_12: &str = "https://json-schema.org/draft/2020-12/schema";

/// The schema files, by the command whose output each describes.
const SCHEMAS: &[&str] = &[
    "bench.v1.json",
    "check.v1.json",
    "doctor.v1.json",
    "inspect.v1.json",
    "ls.v2.json",
    "show.v2.json",
    "trace.v1.json",
    "up.v2.json",
];

fn schema_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/schema"))
}

fn read_schema(file: &str) -> Value {
    let path = schema_dir().join(file);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

/// A validator for `docs/schema/FILE`, with `format` (ipv4, ipv6) checked as an assertion.
fn validator(file: &str) -> Validator {
    jsonschema::draft202012::options()
        .should_validate_formats(true)
        .build(&read_schema(file))
        .unwrap_or_else(|e| panic!("{file} is not a usable schema: {e}"))
}

/// Every error of `doc` against `docs/schema/FILE`, as `at PATH: MESSAGE` lines.
fn errors(file: &str, doc: &Value) -> Vec<String> {
    validator(file)
        .iter_errors(doc)
        .map(|e| format!("at {}: {e}", e.instance_path()))
        .collect()
}

/// Panics with every validation error, and the document, unless `doc` matches the schema.
fn assert_matches(file: &str, doc: &Value, what: &str) {
    let errs = errors(file, doc);
    assert!(
        errs.is_empty(),
        "{what} does not match docs/schema/{file}:\n  {}\n{doc:#}",
        errs.join("\n  ")
    );
}

/// Runs plumb with `args`, asserts its exit status, and returns stdout parsed as JSON after
/// checking it against `docs/schema/FILE`.
fn json_of(sb: &Sandbox, args: &[&str], code: i32, file: &str) -> Value {
    let out = sb.plumb(args);
    let what = format!("plumb {}", args.join(" "));
    assert_exit(&out, code, &what);
    let doc = stdout_json(&out);
    assert_matches(file, &doc, &what);
    doc
}

/// The `op` of every step of an `up --json` document, in `steps` and in `recovered`.
fn ops(doc: &Value) -> BTreeSet<String> {
    ["steps", "recovered"]
        .iter()
        .flat_map(|k| doc[k].as_array().cloned().unwrap_or_default())
        .map(|s| s["op"].as_str().unwrap_or("(no op)").to_owned())
        .collect()
}

/// The step kinds `up.v2.json` lists (its `op` enum).
fn schema_ops() -> BTreeSet<String> {
    let schema = read_schema("up.v2.json");
    schema["$defs"]["step"]["properties"]["op"]["enum"]
        .as_array()
        .expect("up.v2.json lists the step kinds in $defs.step.properties.op.enum")
        .iter()
        .map(|v| v.as_str().expect("a step kind is a string").to_owned())
        .collect()
}

#[test]
fn schemas_every_file_is_a_valid_draft_2020_12_schema_with_its_version() {
    let mut found: Vec<String> = std::fs::read_dir(schema_dir())
        .expect("docs/schema exists")
        .map(|e| e.expect("a directory entry").file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .collect();
    found.sort();
    assert_eq!(
        found, SCHEMAS,
        "docs/schema holds exactly the schemas this test knows"
    );
    for file in SCHEMAS {
        let schema = read_schema(file);
        assert_eq!(
            schema["$schema"], DRAFT_2020_12,
            "{file} declares draft 2020-12"
        );
        if let Err(e) = jsonschema::draft202012::meta::validate(&schema) {
            panic!("{file} is not a valid draft 2020-12 schema: {e}");
        }
        validator(file);
        // `NAME.vN.json` describes version N of the output.
        let version: u64 = file
            .strip_suffix(".json")
            .and_then(|s| s.rsplit_once(".v"))
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or_else(|| panic!("{file} is not named NAME.vN.json"));
        assert_eq!(
            schema["properties"]["version"]["const"],
            json!(version),
            "{file} has a `version` const of {version}"
        );
        let required = schema["required"].as_array().cloned().unwrap_or_default();
        assert!(
            required.contains(&json!("version")),
            "{file} requires `version`"
        );
    }
}

#[test]
fn schemas_refuse_documents_that_break_the_format() {
    let up = json!({
        "version": 2, "lab": "seed", "dry_run": false,
        "steps": [{ "op": "create_ns", "ns": "ns1" }],
        "recovered": [], "warnings": [], "elapsed_ms": 3
    });
    assert_matches("up.v2.json", &up, "a minimal up document");
    let broken = |f: &dyn Fn(&mut Value)| {
        let mut d = up.clone();
        f(&mut d);
        d
    };
    let refused = [
        (
            "an unknown step kind",
            broken(&|d| d["steps"][0]["op"] = json!("explode")),
        ),
        (
            "a step without its fields",
            broken(&|d| d["steps"][0] = json!({ "op": "add_addr", "node": "ns1" })),
        ),
        (
            "a step with a field it does not have",
            broken(&|d| d["steps"][0]["dev"] = json!("eth0")),
        ),
        (
            "an interface name over 15 bytes",
            broken(&|d| {
                d["steps"][0] = json!({
                    "op": "delete_link", "node": "host",
                    "name": "abcdefghijklmnop", "index": null
                })
            }),
        ),
        ("version 1", broken(&|d| d["version"] = json!(1))),
        (
            "a missing field",
            broken(&|d| {
                d.as_object_mut().map(|o| o.remove("lab"));
            }),
        ),
        (
            "an unknown top-level field",
            broken(&|d| d["extra"] = json!(1)),
        ),
    ];
    for (what, doc) in &refused {
        assert!(
            !errors("up.v2.json", doc).is_empty(),
            "up.v2.json accepts {what}: {doc:#}"
        );
    }

    let check = json!({
        "version": 1, "lab": "seed",
        "results": [{
            "from": "ns1", "to": "host", "address": "10.66.77.25", "proto": "icmp",
            "expected": "reach", "observed": "blocked", "ok": false, "detail": "no reply"
        }],
        "summary": { "total": 1, "ok": 0, "mismatches": 1 }
    });
    assert_matches("check.v1.json", &check, "a minimal check document");
    let mut maybe = check.clone();
    maybe["results"][0]["observed"] = json!("maybe");
    assert!(
        !errors("check.v1.json", &maybe).is_empty(),
        "check accepts `maybe`"
    );
    let mut not_ip = check.clone();
    not_ip["results"][0]["address"] = json!("10.66.77");
    assert!(
        !errors("check.v1.json", &not_ip).is_empty(),
        "check accepts `10.66.77`"
    );

    let show = json!({ "version": 2, "lab": "seed", "nodes": [], "nat": [] });
    assert_matches("show.v2.json", &show, "show with a new top-level field");
    assert!(
        !errors("show.v2.json", &json!({ "lab": "seed", "nodes": [] })).is_empty(),
        "show accepts a document without `version`"
    );

    assert_matches(
        "ls.v2.json",
        &json!({"version": 2, "labs": []}),
        "ls with no lab",
    );
    assert!(
        !errors("ls.v2.json", &json!([])).is_empty(),
        "ls accepts version 1's bare array"
    );
    let ls = json!({"version": 2, "labs": [{ "name": "seed", "counts": { "namespaces": 2 }, "interrupted": false }]});
    assert!(
        !errors("ls.v2.json", &ls).is_empty(),
        "ls accepts incomplete counts"
    );
}

/// The schema's name for every kind of step. A new kind of step does not compile here until it
/// is added, and then `up.v2.json` must describe it.
fn op_of(step: &Step) -> &'static str {
    match step {
        Step::ParkLink { .. } => "park_link",
        Step::UnparkLink { .. } => "unpark_link",
        Step::CreateNs { .. } => "create_ns",
        Step::Sysctl { .. } => "sysctl",
        Step::CreateBridge { .. } => "create_bridge",
        Step::CreateVeth { .. } => "create_veth",
        Step::SetLink { .. } => "set_link",
        Step::AddAddr { .. } => "add_addr",
        Step::AddRoute { .. } => "add_route",
        Step::Firewall { .. } => "firewall",
        Step::RestoreFirewall { .. } => "restore_firewall",
        Step::DeleteGroup { .. } => "delete_group",
        Step::DeleteLink { .. } => "delete_link",
        Step::DeleteNs { .. } => "delete_ns",
        Step::DelRoute { .. } => "del_route",
        Step::DelAddr { .. } => "del_addr",
        Step::DeleteFirewall { .. } => "delete_firewall",
    }
}

/// One step of every kind, with optional fields both set and unset.
fn one_step_of_each_kind() -> Vec<Step> {
    let ns = |n: &str| NsName::new(n).expect("a namespace name");
    let ifn = |n: &str| IfName::new(n).expect("an interface name");
    let node = NodeRef::Ns(ns("web"));
    let route = RouteSpec {
        dst: "10.1.0.0/24".parse().expect("a prefix"),
        via: Some("10.0.0.1".parse().expect("an address")),
        dev: Some("eth0".into()),
    };
    let default_v6 = RouteSpec {
        dst: "::/0".parse().expect("a prefix"),
        via: None,
        dev: Some("eth0".into()),
    };
    let end = |node: NodeRef, name: &str, master: Option<&str>| VethEnd {
        node,
        name: ifn(name),
        mtu: Some(1400),
        mac: Some(MacAddr([2, 0, 0, 0, 0, 1])),
        master: master.map(ifn),
        ipv6: true,
    };
    let all = LinkSet {
        up: Some(true),
        mtu: Some(9000),
        mac: Some(MacAddr([2, 0, 0, 0, 0, 2])),
        master: Some(None),
        isolated: Some(true),
        stp: Some(false),
    };
    let table = "plumb-star".to_owned();
    vec![
        Step::ParkLink {
            node: node.clone(),
            name: "eth1".into(),
            parked: Some(ifn("plpark0")),
            up: true,
            restore_addrs: vec!["fd00::2/64".parse().expect("a prefix")],
            restore_routes: vec![default_v6.clone()],
        },
        Step::UnparkLink {
            node: node.clone(),
            parked: None,
            name: "eth1".into(),
            up: false,
            restore_addrs: Vec::new(),
            restore_routes: Vec::new(),
        },
        Step::CreateNs { ns: ns("web") },
        Step::Sysctl {
            node: NodeRef::Host,
            key: "net.ipv4.ip_forward".into(),
            value: "1".into(),
            prev: Some("0".into()),
        },
        Step::CreateBridge {
            node: NodeRef::Host,
            name: ifn("plumb0"),
            mtu: Some(1500),
            stp: true,
            mac: MacAddr([2, 0, 0, 0, 0, 3]),
            ipv6: false,
        },
        Step::CreateVeth {
            a: end(node.clone(), "eth0", None),
            b: end(NodeRef::Host, "pl0123456789abc", Some("plumb0")),
            link_id: "8eac02b2841a".into(),
        },
        Step::SetLink {
            node: node.clone(),
            name: "eth0".into(),
            set: all.clone(),
            prev: Some(LinkSet::default()),
        },
        Step::SetLink {
            node: NodeRef::Host,
            name: "plumb0".into(),
            set: LinkSet {
                master: Some(Some(ifn("br0"))),
                ..LinkSet::default()
            },
            prev: None,
        },
        Step::AddAddr {
            node: node.clone(),
            dev: "eth0".into(),
            addr: "10.88.0.2/24".parse().expect("a prefix"),
        },
        Step::AddRoute {
            node: node.clone(),
            route: route.clone(),
            replaces: Some(default_v6.clone()),
        },
        Step::Firewall {
            node: NodeRef::Host,
            table: table.clone(),
            version: "v-0123".into(),
            rules: every_rule(&table),
            prev: None,
        },
        Step::RestoreFirewall {
            node: node.clone(),
            table: table.clone(),
            version: "v-0123".into(),
        },
        Step::DeleteGroup { group: u32::MAX },
        Step::DeleteLink {
            node: NodeRef::Host,
            name: "plumb0".into(),
            index: Some(7),
        },
        Step::DeleteNs { ns: ns("web") },
        Step::DelRoute {
            node: node.clone(),
            route,
        },
        Step::DelAddr {
            node: node.clone(),
            dev: "eth0".into(),
            addr: "fd00::2/64".parse().expect("a prefix"),
        },
        Step::DeleteFirewall {
            node: NodeRef::Host,
            table,
        },
    ]
}

#[test]
fn schemas_up_describes_every_kind_of_step_as_it_serializes() {
    let steps = one_step_of_each_kind();
    let kinds: BTreeSet<String> = steps.iter().map(|s| op_of(s).to_owned()).collect();
    assert_eq!(kinds, schema_ops(), "up.v2.json lists every kind of step");
    for s in &steps {
        let serialized = serde_json::to_value(s).expect("a step serializes");
        assert_eq!(serialized["op"], op_of(s), "{serialized:#}");
    }
    let doc = json!({
        "version": 2, "lab": "star", "dry_run": true,
        "steps": steps, "recovered": steps, "warnings": ["a warning"], "elapsed_ms": 0
    });
    assert_matches("up.v2.json", &doc, "one step of every kind");
}

/// A lab whose build has every kind of build step: namespaces, sysctls (in a node, and IPv4
/// forwarding in the host for NAT), a bridge, veth pairs, link settings, addresses, routes and
/// firewall tables (NAT in the host, a node's own).
const KINDS_V1: &str = r#"name = "kinds"

[networks.lan]
subnet = "10.95.0.0/24"
members = ["web", "db"]
nat = true

[nodes.web.firewall]
ingress = "deny"
allow = ["icmp"]

[nodes.db]
routes = [{ to = "10.99.0.0/24", via = "10.95.0.1" }]

[nodes.r]
sysctls = { "net.ipv4.ip_forward" = 1 }

[nodes.r.interfaces.eth0]
addresses = ["10.96.0.1/24"]

[nodes.s.interfaces.eth0]
addresses = ["10.96.0.2/24"]

[[links]]
endpoints = ["r:eth0", "s:eth0"]

[nodes.host.interfaces.hv]
addresses = ["10.94.0.1/24"]

[nodes.u.interfaces.eth0]
addresses = ["10.94.0.2/24"]

[[links]]
endpoints = ["host:hv", "u:eth0"]

[bridges.br0]
addresses = ["10.98.0.1/24"]
"#;

/// KINDS_V1 edited so that the converge has every kind of change: r's `eth0` is paired with a
/// new node `t` instead of `s` (parked, then a new pair; `s` and the old pair deleted), db's
/// route and web's firewall are gone, u's address changed, and the host's `hv` has a new MTU.
const KINDS_V2: &str = r#"name = "kinds"

[networks.lan]
subnet = "10.95.0.0/24"
members = ["web", "db"]
nat = true

[nodes.r]
sysctls = { "net.ipv4.ip_forward" = 1 }

[nodes.r.interfaces.eth0]
addresses = ["10.96.0.1/24"]

[nodes.t.interfaces.eth0]
addresses = ["10.96.0.2/24"]

[[links]]
endpoints = ["r:eth0", "t:eth0"]

[nodes.host.interfaces.hv]
addresses = ["10.94.0.1/24"]
mtu = 1400

[nodes.u.interfaces.eth0]
addresses = ["10.94.0.3/24"]

[[links]]
endpoints = ["host:hv", "u:eth0"]

[bridges.br0]
addresses = ["10.98.0.1/24"]
"#;

/// Starts plumb with `args` and `PLUMB_FAULT=stall=N`, waits until it stalls, and kills it with
/// SIGKILL: its change is left interrupted, with its journal.
fn kill_after(sb: &Sandbox, args: &[&str], n: usize) {
    let mut cmd = sb.plumb_command(args);
    cmd.env("PLUMB_FAULT", format!("stall={n}"));
    let mut child = sb.spawn_until_stderr(cmd, "plumb: stalled", Duration::from_secs(120));
    child.kill().expect("SIGKILL plumb");
    child.wait().expect("reap plumb");
}

/// `plumb ls --json`, checked against its schema; the entry of lab `lab`, if listed.
fn ls_entry(sb: &Sandbox, lab: &str) -> Option<Value> {
    let doc = json_of(sb, &["ls", "--json"], 0, "ls.v2.json");
    let entries = doc["labs"].as_array().expect("ls --json has a labs array");
    entries.iter().find(|e| e["name"] == lab).cloned()
}

#[test]
fn schemas_up_and_ls_json_match_through_build_converge_and_crashes() {
    let sb = sandbox();
    let v1 = sb.write_file("kinds-v1.toml", KINDS_V1);
    let v2 = sb.write_file("kinds-v2.toml", KINDS_V2);
    let (v1, v2) = (v1.to_str().expect("UTF-8"), v2.to_str().expect("UTF-8"));
    let mut seen = BTreeSet::new();
    assert_eq!(ls_entry(&sb, "kinds"), None, "no lab yet");

    // A fresh build: planned, then run.
    let dry = json_of(&sb, &["up", v1, "--dry-run", "--json"], 1, "up.v2.json");
    assert_eq!(dry["dry_run"], true, "{dry:#}");
    seen.extend(ops(&dry));
    let built = json_of(&sb, &["up", v1, "--json"], 0, "up.v2.json");
    assert_eq!(built["dry_run"], false, "{built:#}");
    assert_eq!(
        built["steps"], dry["steps"],
        "the build ran what was planned"
    );
    seen.extend(ops(&built));
    let entry = ls_entry(&sb, "kinds").expect("ls lists the lab");
    assert_eq!(entry["interrupted"], false, "{entry}");
    // Up to date: no step.
    let again = json_of(&sb, &["up", v1, "--json"], 0, "up.v2.json");
    assert_eq!(again["steps"], json!([]), "{again:#}");

    // The converge, planned; then killed after its last build step, before any removal.
    let plan = json_of(&sb, &["up", v2, "--dry-run", "--json"], 1, "up.v2.json");
    seen.extend(ops(&plan));
    let steps = plan["steps"].as_array().expect("steps");
    assert_eq!(steps[0]["op"], "park_link", "{plan:#}");
    let builds = steps
        .iter()
        .filter(|s| !s["op"].as_str().unwrap_or_default().starts_with("del"))
        .count();
    kill_after(&sb, &["up", v2], builds - 1);
    let entry = ls_entry(&sb, "kinds").expect("ls lists the interrupted lab");
    assert_eq!(entry["interrupted"], true, "{entry}");
    // The next up first undoes the interrupted one (recovered), then converges.
    let converged = json_of(&sb, &["up", v2, "--json"], 0, "up.v2.json");
    let recovered = converged["recovered"].as_array().expect("recovered");
    assert!(
        recovered.iter().any(|s| s["op"] == "unpark_link"),
        "the parked interface is renamed back first: {converged:#}"
    );
    seen.extend(ops(&converged));

    // A down killed after its first step (the host's table): the lab's host interfaces are
    // still in its link group, which the next up's recovery deletes in one step.
    kill_after(&sb, &["down", "kinds"], 1);
    let entry = ls_entry(&sb, "kinds").expect("ls lists the interrupted lab");
    assert_eq!(entry["interrupted"], true, "{entry}");
    let rebuilt = json_of(&sb, &["up", v2, "--json"], 0, "up.v2.json");
    assert!(
        rebuilt["recovered"]
            .as_array()
            .expect("recovered")
            .iter()
            .any(|s| s["op"] == "delete_group"),
        "the interrupted down is finished by a group delete: {rebuilt:#}"
    );
    seen.extend(ops(&rebuilt));

    // Every kind of step but one appeared in a real output. `restore_firewall` is only ever an
    // undo step of a failed run, which reports an error instead of JSON: it is checked by
    // `schemas_up_describes_every_kind_of_step_as_it_serializes`.
    let mut expected = schema_ops();
    expected.remove("restore_firewall");
    assert_eq!(
        seen, expected,
        "the step kinds seen in up --json outputs, against the schema's"
    );
    sb.plumb_ok(&["down", "kinds"]);
    assert_eq!(
        json_of(&sb, &["ls", "--json"], 0, "ls.v2.json"),
        json!({"version": 2, "labs": []})
    );
}

#[test]
fn schemas_show_and_check_json_match_with_reach_blocked_and_a_mismatch() {
    let sb = sandbox();
    let isolation = example("isolation.toml");
    sb.plumb_ok(&["up", &isolation]);
    settle_carriers(&sb);

    let show = json_of(&sb, &["show", "isolation", "--json"], 0, "show.v2.json");
    assert_eq!(show["lab"], "isolation", "{show:#}");
    let kinds: BTreeSet<String> = show["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .flat_map(|n| n["interfaces"].as_array().cloned().unwrap_or_default())
        .filter_map(|i| i["kind"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(
        kinds,
        BTreeSet::from([
            "bridge".to_owned(),
            "loopback".to_owned(),
            "veth".to_owned()
        ]),
        "show lists bridges, veth ends and the namespaces' lo: {show:#}"
    );

    let check = json_of(&sb, &["check", &isolation, "--json"], 0, "check.v1.json");
    let (rows, _) = check_results(&check, "isolation");
    for word in ["reach", "blocked"] {
        assert!(
            rows.iter().any(|r| r.4 == word && r.5 == word),
            "no result expected and observed `{word}`: {check:#}"
        );
    }
    assert!(rows.iter().all(|r| r.6), "{check:#}");

    // One wrong expectation: c and d are isolated from each other.
    let mut text = std::fs::read_to_string(&isolation).expect("read isolation.toml");
    text.push_str(
        "\n[[expect]]\nfrom = \"c\"\nto = \"d\"\nproto = \"udp/53\"\nresult = \"reach\"\n",
    );
    let wrong = sb.write_file("isolation-wrong.toml", &text);
    let wrong = wrong.to_str().expect("UTF-8");
    let check = json_of(&sb, &["check", wrong, "--json"], 1, "check.v1.json");
    let (rows, _) = check_results(&check, "isolation");
    let last = rows.last().expect("a result per expectation");
    assert_eq!(
        (last.4.as_str(), last.5.as_str(), last.6),
        ("reach", "blocked", false),
        "{check:#}"
    );
    let out = sb.plumb(&["ls", "--json"]);
    assert_exit(&out, 0, "plumb ls --json");
    assert_matches("ls.v2.json", &stdout_json(&out), "plumb ls --json");
    let listed = stdout_json(&out);
    assert_eq!(listed["labs"][0]["name"], "isolation", "{}", describe(&out));
}

/// A table with a rule of every kind.
fn every_rule(name: &str) -> plumb::firewall::Table {
    let rule =
        |text: &str| -> plumb::firewall::Rule { text.parse().unwrap_or_else(|e| panic!("{e}")) };
    let mut t = plumb::firewall::Table::empty(name);
    t.bridges = vec!["plumb0".into(), "back".into()];
    t.nat = vec![
        rule("masquerade from 10.88.0.0/24 unless out plumb0"),
        rule("hairpin-masquerade from 10.88.0.0/24 out plumb0"),
    ];
    t.publish = vec![rule("publish tcp 8080 to 10.88.0.2 port 80")];
    t.forward = vec![rule("isolate plumb0")];
    t.input_accept = Some(false);
    t.allow = vec![rule("allow icmp"), rule("allow udp/53 from fd00::/64")];
    t
}
