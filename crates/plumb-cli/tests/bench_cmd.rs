//! `plumb bench` in a sandbox, with small bounded counts: a well-formed table, JSON (checked
//! against docs/schema/bench.v1.json) and SVG with one row per hop count and positive figures,
//! and nothing left behind. No assertion on the timings themselves.

mod common;

use common::*;
use plumb_testkit::{describe, Sandbox};
use serde_json::Value;

/// Small enough to keep the test fast, large enough to measure something.
const SMALL: &[&str] = &["--pings", "30", "--stream-mib", "2", "--control", "3,6"];

fn bench(sb: &Sandbox, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["bench", "--hops", "0..3"];
    args.extend_from_slice(SMALL);
    args.extend_from_slice(extra);
    let out = sb.plumb(&args);
    assert_exit(&out, 0, &format!("plumb {args:?}"));
    out
}

fn schema_errors(v: &Value) -> Vec<String> {
    common::schema_errors("bench.v1.json", v)
}

fn f64_of(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

/// Asserts that the bench's labs are gone: no namespace, no lab, no interface but `lo`.
fn assert_nothing_left(sb: &Sandbox) {
    assert_eq!(sb.netns_list(), Vec::<String>::new(), "namespaces left");
    assert_eq!(
        sb.link_names(None),
        vec!["lo".to_string()],
        "interfaces left in the sandbox"
    );
    let ls: Value = serde_json::from_slice(&sb.plumb_ok(&["ls", "--json"]).stdout).expect("ls");
    assert_eq!(ls["labs"], Value::Array(vec![]), "labs left: {ls:#}");
}

#[test]
fn bench_json_and_svg_have_one_row_per_hop_count_with_positive_figures() {
    let sb = sandbox();
    let svg = sb.dir().join("bench.svg");
    let svg_arg = svg.to_string_lossy().into_owned();
    let out = bench(&sb, &["--json", "--svg", &svg_arg]);
    let v: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("bench printed invalid JSON ({e})\n{}", describe(&out)));
    let errs = schema_errors(&v);
    assert!(errs.is_empty(), "{}\n{v:#}", errs.join("\n"));
    let rows = v["hops"].as_array().expect("hops");
    let shape: Vec<(u64, &str)> = rows
        .iter()
        .map(|r| {
            (
                r["hops"].as_u64().expect("hops"),
                r["path"].as_str().expect("path"),
            )
        })
        .collect();
    assert_eq!(
        shape,
        [
            (0, "loopback"),
            (1, "veth"),
            (1, "bridge"),
            (2, "routed"),
            (3, "routed")
        ],
        "{v:#}"
    );
    for r in rows {
        let (p50, p99) = (f64_of(&r["rtt_median_us"]), f64_of(&r["rtt_p99_us"]));
        assert!(p50 > 0.0 && p99 >= p50, "{r}");
        assert!(f64_of(&r["throughput_mbit_s"]) > 0.0, "{r}");
        assert_eq!(
            r["pings"].as_u64().expect("pings") + r["lost"].as_u64().expect("lost"),
            30,
            "{r}"
        );
        assert_eq!(r["stream_bytes"], 2 << 20, "{r}");
    }
    let control = v["control"].as_array().expect("control");
    let ns: Vec<u64> = control
        .iter()
        .map(|c| c["n"].as_u64().expect("n"))
        .collect();
    assert_eq!(ns, [3, 6]);
    for c in control {
        assert!(
            c["up_s"]
                .as_array()
                .expect("up_s")
                .iter()
                .all(|t| f64_of(t) > 0.0),
            "{c}"
        );
    }
    // The chart: an SVG document with one latency bar and one throughput bar per row, the
    // p99 whiskers, and one bar per object kind and lab size.
    let chart = std::fs::read_to_string(&svg).expect("the SVG was written");
    assert!(
        chart.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""),
        "{chart}"
    );
    assert!(chart.trim_end().ends_with("</svg>"), "{chart}");
    let bars = chart.matches("<rect x=").count();
    assert_eq!(bars, 2 * rows.len() + 4 * control.len(), "{chart}");
    for label in [
        ">0 lo<",
        ">1 veth<",
        ">1 bridge<",
        ">2<",
        ">3<",
        ">namespace<",
        ">route<",
        ">N=3<",
        ">N=6<",
    ] {
        assert!(chart.contains(label), "no {label} in the chart:\n{chart}");
    }
    assert_nothing_left(&sb);
}

#[test]
fn bench_table_has_a_row_per_hop_count() {
    let sb = sandbox();
    let out = bench(&sb, &["--no-control"]);
    let table = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = table.lines().collect();
    assert!(
        lines[0].contains("rtt p50 us") && lines[0].contains("tcp Mbit/s"),
        "{table}"
    );
    assert_eq!(
        lines.len(),
        6,
        "a header and five rows, no control plane:\n{table}"
    );
    for (line, (hops, path)) in lines[1..].iter().zip([
        ("0", "loopback"),
        ("1", "veth"),
        ("1", "bridge"),
        ("2", "routed"),
        ("3", "routed"),
    ]) {
        let cols: Vec<&str> = line.split_whitespace().collect();
        assert_eq!((cols[0], cols[1]), (hops, path), "{table}");
        let figures: Vec<f64> = [cols[2], cols[3], cols[5]]
            .iter()
            .map(|c| {
                c.parse()
                    .unwrap_or_else(|_| panic!("`{c}` is not a number:\n{table}"))
            })
            .collect();
        assert!(figures.iter().all(|f| *f > 0.0), "{table}");
    }
    assert_nothing_left(&sb);
}

#[test]
fn bench_bad_hops_is_refused_before_anything() {
    let sb = sandbox();
    let out = sb.plumb(&["bench", "--hops", "3..1"]);
    assert_exit(&out, 2, "plumb bench --hops 3..1");
    assert!(text(&out).contains("is empty"), "{}", describe(&out));
    assert_eq!(sb.netns_list(), Vec::<String>::new());
}

#[test]
fn bench_between_two_nodes_of_a_lab_measures_the_routed_path_and_leaves_the_lab_alone() {
    let sb = sandbox();
    sb.plumb_ok(&["up", &example("egress.toml")]);
    settle_carriers(&sb);
    let show = |sb: &Sandbox| -> Value {
        serde_json::from_slice(&sb.plumb_ok(&["show", "egress", "--json"]).stdout).expect("show")
    };
    let before = show(&sb);
    let out = sb.plumb(&[
        "bench",
        "--lab",
        "egress",
        "--from",
        "client",
        "--to",
        "web",
        "--pings",
        "40",
        "--stream-mib",
        "2",
        "--json",
    ]);
    assert_exit(&out, 0, "plumb bench --lab");
    let v: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e})\n{}", describe(&out)));
    let errs = schema_errors(&v);
    assert!(errs.is_empty(), "{errs:?}\n{v:#}");
    let rows = v["hops"].as_array().expect("hops");
    assert_eq!(rows.len(), 1, "{v:#}");
    let r = &rows[0];
    assert_eq!(r["path"], "lab");
    assert_eq!(v["control"], Value::Array(vec![]));
    // client and web are members of one bridge in the host: three nodes on the path.
    assert_eq!(r["hops"], 2, "{r:#}");
    let through: Vec<&str> = r["through"]
        .as_array()
        .expect("through")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(through.first(), Some(&"client/eth0"), "{through:?}");
    assert_eq!(through.last(), Some(&"web/eth0"), "{through:?}");
    assert!(through.contains(&"host/lan0"), "{through:?}");
    assert!(
        r["between"]
            .as_str()
            .is_some_and(|b| b.starts_with("client -> web (")),
        "{r:#}"
    );
    assert_eq!(
        r["pings"].as_u64().unwrap() + r["lost"].as_u64().unwrap(),
        40
    );
    assert!(f64_of(&r["rtt_median_us"]) > 0.0 && f64_of(&r["throughput_mbit_s"]) > 0.0);
    // Read, never changed.
    assert_eq!(show(&sb), before);
    // An unknown node is refused with the lab's nodes named.
    let out = sb.plumb(&[
        "bench", "--lab", "egress", "--from", "client", "--to", "nowhere",
    ]);
    assert_exit(&out, 2, "plumb bench --lab with an unknown node");
    assert!(text(&out).contains("nowhere"), "{}", describe(&out));
}
