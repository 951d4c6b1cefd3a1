//! Drawing a [`MachineView`]: the text tree of `plumb inspect`, Graphviz DOT, and SVG laid out
//! and drawn by plumb itself (through `layout-rs`, no `dot` process).

use std::collections::BTreeSet;
use std::fmt::Write as _;

use super::view::{IfView, MachineView, NsView};

fn addrs(i: &IfView) -> String {
    i.addresses
        .iter()
        .map(|a| a.to_string())
        .collect::<Vec<_>>()
        .join(" ")
}

fn state(i: &IfView) -> String {
    if i.up && i.state != "up" && i.state != "unknown" {
        format!("UP,{}", i.state.to_uppercase())
    } else if i.up {
        "UP".into()
    } else {
        "DOWN".into()
    }
}

/// Whether a namespace has a veth to another namespace.
fn connected(n: &NsView) -> bool {
    n.interfaces
        .iter()
        .any(|i| i.peer.as_ref().is_some_and(|p| p.namespace != Some(n.id)))
}

fn far(view: &MachineView, i: &IfView) -> String {
    let Some(p) = &i.peer else {
        return String::new();
    };
    let mut s = match (&p.label, &p.name) {
        (Some(l), Some(n)) => format!("-> {l}:{n}"),
        (Some(l), None) => format!("-> {l}:ifindex {}", p.index),
        _ => format!(
            "-> ifindex {} in an unseen namespace (nsid {})",
            p.index,
            p.nsid.map_or("-".into(), |n| n.to_string())
        ),
    };
    if let (Some(id), Some(name)) = (p.namespace, &p.name) {
        if let Some(other) = view.by_id(id).and_then(|n| n.iface(name)) {
            if !other.addresses.is_empty() {
                let _ = write!(s, " ({})", addrs(other));
            }
        }
    }
    if !p.confirmed && p.namespace.is_some() {
        s.push_str(" [unconfirmed]");
    }
    s
}

fn write_ns(out: &mut String, view: &MachineView, n: &NsView) {
    let mut head = n.label.clone();
    let w = n.whereabouts();
    if !w.is_empty() {
        let _ = write!(head, "  ({w})");
    }
    if let Some(l) = &n.lab {
        let _ = write!(head, "  lab {l}");
    }
    let _ = writeln!(out, "{head}");
    if let Some(e) = &n.error {
        let _ = writeln!(out, "  ! {e}");
        return;
    }
    let width = n
        .interfaces
        .iter()
        .map(|i| i.name.len() + 2)
        .max()
        .unwrap_or(0);
    for i in n.interfaces.iter().filter(|i| i.master.is_none()) {
        let _ = writeln!(
            out,
            "  {:<width$} {:<8} {:<4} mtu {} {} {}",
            i.name,
            i.kind,
            state(i),
            i.mtu,
            addrs(i),
            far(view, i),
            width = width
        );
        for p in &i.ports {
            if let Some(pi) = n.iface(p) {
                let _ = writeln!(
                    out,
                    "    {:<width$} port     {:<4} {}",
                    pi.name,
                    state(pi),
                    far(view, pi),
                    width = width.saturating_sub(2)
                );
            }
        }
    }
    // Ports of a bridge plumb did not list above (their master is not in this namespace).
    for i in n
        .interfaces
        .iter()
        .filter(|i| i.master.as_ref().is_some_and(|m| n.iface(m).is_none()))
    {
        let _ = writeln!(out, "  {:<width$} {} {}", i.name, i.kind, far(view, i));
    }
    if !n.routes.is_empty() {
        let default = n
            .routes
            .iter()
            .filter(|r| r.dst.prefix_len() == 0)
            .map(|r| {
                format!(
                    "default{}{}",
                    r.via.map_or(String::new(), |v| format!(" via {v}")),
                    r.dev
                        .as_ref()
                        .map_or(String::new(), |d| format!(" dev {d}"))
                )
            })
            .collect::<Vec<_>>();
        let _ = writeln!(
            out,
            "  routes: {}{}; neighbours: {}",
            n.routes.len(),
            if default.is_empty() {
                String::new()
            } else {
                format!(" ({})", default.join(", "))
            },
            n.neighbours
        );
    }
}

/// The tree `plumb inspect` prints: plumb's own namespace with its bridges, each port and the
/// namespace behind it, other veth links; then every namespace cabled to another; then the lone
/// ones (nothing cabled to them).
pub fn tree(view: &MachineView) -> String {
    let mut out = tree_lines(view);
    // Columns left empty leave trailing blanks.
    out = out
        .lines()
        .map(str::trim_end)
        .collect::<Vec<_>>()
        .join("\n");
    out.push('\n');
    out
}

fn tree_lines(view: &MachineView) -> String {
    let mut out = String::new();
    let (lone, linked): (Vec<&NsView>, Vec<&NsView>) = view
        .namespaces
        .iter()
        .partition(|n| !n.current && !connected(n));
    for n in linked {
        write_ns(&mut out, view, n);
    }
    if !lone.is_empty() {
        let _ = writeln!(out, "\nlone namespaces (no veth to another namespace):");
        for n in lone {
            let ifs: Vec<&str> = n
                .interfaces
                .iter()
                .filter(|i| i.kind != "loopback")
                .map(|i| i.name.as_str())
                .collect();
            let _ = writeln!(
                out,
                "  {}  ({}){}",
                n.label,
                n.whereabouts(),
                if ifs.is_empty() {
                    " lo only".to_string()
                } else {
                    format!(" {}", ifs.join(" "))
                }
            );
        }
    }
    if view.processes_not_examined > 0 {
        let _ = writeln!(
            out,
            "\n{} processes could not be examined (permission): run as root to see their namespaces",
            view.processes_not_examined
        );
    }
    out
}

/// Escapes a name for a DOT string (`\` and `"`).
fn esc(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

/// A DOT string of parts already escaped (they may hold `\n` line breaks).
fn q(s: &str) -> String {
    format!("\"{s}\"")
}

fn ns_node(n: &NsView) -> String {
    q(&format!("ns{}", n.id))
}

fn bridge_node(n: &NsView, b: &str) -> String {
    q(&format!("br{}:{}", n.id, esc(b)))
}

/// The view as a Graphviz graph: a box per namespace (its label and addresses), an ellipse per
/// bridge, an edge per veth pair (labelled with both ends' names), bridge ports as edges from
/// the bridge to the namespace behind the port. Lone namespaces are left out.
pub fn dot(view: &MachineView) -> String {
    let mut out = String::from("graph plumb {\n  rankdir=LR;\n  node [shape=box];\n");
    let shown: Vec<&NsView> = view
        .namespaces
        .iter()
        .filter(|n| n.current || connected(n))
        .collect();
    for n in &shown {
        let mut label = esc(&n.label);
        for i in n
            .interfaces
            .iter()
            .filter(|i| i.kind != "loopback" && i.kind != "bridge" && i.master.is_none())
        {
            for a in &i.addresses {
                let _ = write!(label, "\\n{} {a}", esc(&i.name));
            }
        }
        let _ = writeln!(out, "  {} [label={}];", ns_node(n), q(&label));
        for b in n.interfaces.iter().filter(|i| i.kind == "bridge") {
            let mut l = esc(&b.name);
            for a in &b.addresses {
                let _ = write!(l, "\\n{a}");
            }
            let _ = writeln!(
                out,
                "  {} [shape=ellipse, label={}];",
                bridge_node(n, &b.name),
                q(&l)
            );
            let _ = writeln!(out, "  {} -- {};", ns_node(n), bridge_node(n, &b.name));
        }
    }
    // One edge per pair, drawn from the end that sorts first.
    let mut drawn: BTreeSet<((u64, u32), (u64, u32))> = BTreeSet::new();
    for n in &shown {
        for i in &n.interfaces {
            let Some(p) = &i.peer else { continue };
            let Some(pid) = p.namespace else { continue };
            if pid == n.id {
                continue;
            }
            let a = (n.id, i.index);
            let b = (pid, p.index);
            if !drawn.insert((a.min(b), a.max(b))) {
                continue;
            }
            let Some(other) = view.by_id(pid) else {
                continue;
            };
            let other_if = p.name.clone().unwrap_or_default();
            let from = match &i.master {
                Some(m) if n.iface(m).is_some() => bridge_node(n, m),
                _ => ns_node(n),
            };
            let to = match other.iface(&other_if).and_then(|o| o.master.clone()) {
                Some(m) if other.iface(&m).is_some() => bridge_node(other, &m),
                _ => ns_node(other),
            };
            let _ = writeln!(
                out,
                "  {from} -- {to} [label={}];",
                q(&format!("{} - {}", esc(&i.name), esc(&other_if)))
            );
        }
    }
    out.push_str("}\n");
    out
}

/// The view drawn as SVG: [`dot`], laid out and rendered by plumb.
pub fn svg(view: &MachineView) -> Result<String, String> {
    svg_of_dot(&dot(view))
}

/// Renders a DOT graph as SVG.
pub fn svg_of_dot(dot: &str) -> Result<String, String> {
    use layout::backends::svg::SVGWriter;
    use layout::gv;
    let mut parser = gv::DotParser::new(dot);
    let graph = parser.process()?;
    let mut builder = gv::GraphBuilder::new();
    builder.visit_graph(&graph);
    let mut vg = builder.get();
    let mut svg = SVGWriter::new();
    vg.do_it(false, false, false, &mut svg);
    Ok(svg.finalize())
}
