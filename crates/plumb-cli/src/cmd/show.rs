//! `plumb show LAB [--json]`.

use std::io::Write;

use plumb::firewall::Rule;
use plumb::inspect::lab::{IfaceView, NodeView, RulesView};

use crate::Outcome;

/// Show what a lab owns, as the kernel has it: interfaces, addresses, routes, veth peers,
/// bridge ports, NAT, published ports, isolation and each node's firewall.
#[derive(clap::Args)]
pub struct Args {
    /// A lab's name, or its topology file.
    target: String,
    /// JSON output (version 2, see `plumb::inspect::lab::LabView`).
    #[arg(long)]
    json: bool,
}

pub fn run(a: Args) -> anyhow::Result<Outcome> {
    let lab = super::down::lab_of(&a.target)?;
    let view = plumb::lab::view(&lab)?;
    let mut out = std::io::stdout().lock();
    if a.json {
        serde_json::to_writer_pretty(&mut out, &view)?;
        writeln!(out)?;
        return Ok(Outcome::Ok);
    }
    for n in &view.nodes {
        write_node(&mut out, n)?;
    }
    Ok(Outcome::Ok)
}

fn write_node(out: &mut impl Write, n: &NodeView) -> std::io::Result<()> {
    if n.label == n.node {
        writeln!(out, "{}", n.node)?;
    } else {
        writeln!(out, "{} (namespace {})", n.label, n.node)?;
    }
    for i in &n.interfaces {
        write_iface(out, i)?;
    }
    for r in &n.routes {
        writeln!(out, "        route {r}")?;
    }
    if let Some(r) = &n.rules {
        write_rules(out, r)?;
    }
    Ok(())
}

/// The state as `ip` shows it: the kernel's operational state, and NO-CARRIER for an interface
/// that is up without a carrier.
fn state(i: &IfaceView) -> String {
    let mut s = i.state.to_uppercase();
    if i.up && !i.lower_up {
        s.push_str(",NO-CARRIER");
    }
    if !i.up {
        s = "DOWN".into();
    }
    s
}

fn write_iface(out: &mut impl Write, i: &IfaceView) -> std::io::Result<()> {
    let mut extra = Vec::new();
    if let Some(p) = &i.peer {
        extra.push(format!("peer {p}"));
    }
    if let Some(m) = &i.master {
        extra.push(format!("port of {m}"));
    }
    if i.isolated {
        extra.push("isolated".to_string());
    }
    if !i.ports.is_empty() {
        extra.push(format!("ports {}", i.ports.join(",")));
    }
    let line = format!(
        "  {:>4}: {:<16} {:<8} {:<20} mtu {:<5} {:<30} {}",
        i.index,
        i.name,
        i.kind.to_string(),
        state(i),
        i.mtu,
        i.addresses.join(" "),
        extra.join("  ")
    );
    writeln!(out, "{}", line.trim_end())
}

fn write_rules(out: &mut impl Write, r: &RulesView) -> std::io::Result<()> {
    for rule in &r.nat {
        writeln!(out, "        nat {rule}")?;
    }
    for rule in &r.published {
        if let Rule::Publish {
            proto,
            host_port,
            to,
            port,
        } = rule
        {
            let proto = serde_json::to_value(proto)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            let to = if to.is_ipv6() {
                format!("[{to}]:{port}")
            } else {
                format!("{to}:{port}")
            };
            writeln!(out, "        publish {proto} port {host_port} -> {to}")?;
        }
    }
    for b in &r.isolated_networks {
        writeln!(
            out,
            "        network {b} is isolated from the lab's other networks"
        )?;
    }
    if let Some(policy) = &r.ingress {
        let allowed: Vec<String> = r
            .allow
            .iter()
            .map(|a| a.to_string().trim_start_matches("allow ").to_owned())
            .collect();
        let verdict = if policy == "drop" { "deny" } else { "allow" };
        if allowed.is_empty() {
            writeln!(out, "        firewall: ingress {verdict}")?;
        } else {
            writeln!(
                out,
                "        firewall: ingress {verdict}, allow {}",
                allowed.join(", ")
            )?;
        }
    }
    if r.unknown > 0 {
        writeln!(
            out,
            "        ({} rule(s) of the lab's table not described)",
            r.unknown
        )?;
    }
    Ok(())
}
