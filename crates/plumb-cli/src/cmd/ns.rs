//! `plumb ns ls | link | unlink`.

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use plumb::inspect::discover::{self, Found, Holder, Roots};
use plumb::model::names::NsName;
use plumb::netns::linked::{Unlinked, LINKED_DIR};
use plumb::netns::Registry;

use crate::Outcome;

/// Network namespaces: list them with what holds each, give unnamed ones a name in /run/netns.
#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    cmd: NsCmd,
}

#[derive(clap::Subcommand)]
enum NsCmd {
    /// List every network namespace with how it is held (name, mount, process, descriptor).
    Ls {
        /// JSON output: the namespaces as `plumb inspect --json` describes them, without
        /// their interfaces.
        #[arg(long)]
        json: bool,
    },
    /// Give namespaces without a name one in /run/netns (so `ip netns` sees them): a
    /// container's as RUNTIME-ID12, a process's as pid-PID. Removed again by `ns unlink`.
    Link {
        /// Only the namespaces of Docker containers and sandboxes.
        #[arg(long, conflicts_with = "all")]
        docker: bool,
        /// Every namespace without a name (the default is containers of every runtime).
        #[arg(long)]
        all: bool,
    },
    /// Remove the names `ns link` gave, and only those.
    Unlink,
}

pub fn run(a: Args) -> anyhow::Result<Outcome> {
    match a.cmd {
        NsCmd::Ls { json } => ls(json),
        NsCmd::Link { docker, all } => link(docker, all),
        NsCmd::Unlink => unlink(),
    }
}

fn holders(f: &Found) -> String {
    let mut v: Vec<String> = Vec::new();
    let pids = f.pids();
    for h in &f.holders {
        match h {
            Holder::Named { path, .. } => v.push(format!("name {}", path.display())),
            Holder::Mount { path, here, .. } => v.push(if *here {
                format!("mount {}", path.display())
            } else {
                format!("mount {} (another mount namespace)", path.display())
            }),
            Holder::Fd { pid, fd } => v.push(format!("fd {fd} of pid {pid}")),
            Holder::Process { .. } => {}
        }
    }
    if !pids.is_empty() {
        let shown: Vec<String> = pids.iter().take(6).map(u32::to_string).collect();
        let more = if pids.len() > 6 {
            format!(" (+{})", pids.len() - 6)
        } else {
            String::new()
        };
        v.push(format!("pids {}{more}", shown.join(",")));
    }
    if v.is_empty() && f.current {
        v.push("plumb".into());
    }
    v.join("; ")
}

fn ls(json: bool) -> anyhow::Result<Outcome> {
    let d = discover::discover(&Roots::default());
    let mut out = std::io::stdout().lock();
    if json {
        let v = serde_json::json!({"version": 1, "namespaces": d.namespaces.iter().map(|f| serde_json::json!({
            "id": f.id,
            "label": f.label(),
            "current": f.current,
            "holders": f.holders,
            "pids": f.pids(),
            "container": f.container,
        })).collect::<Vec<_>>(), "processes_not_examined": d.processes_not_examined});
        serde_json::to_writer_pretty(&mut out, &v)?;
        writeln!(out)?;
        return Ok(Outcome::Ok);
    }
    let w = d
        .namespaces
        .iter()
        .map(|f| f.label().len())
        .max()
        .unwrap_or(4)
        .max(4);
    writeln!(out, "{:<12} {:<w$}  HELD BY", "ID", "NAME")?;
    for f in &d.namespaces {
        writeln!(out, "{:<12} {:<w$}  {}", f.id, f.label(), holders(f))?;
    }
    if d.processes_not_examined > 0 {
        writeln!(
            out,
            "({} processes could not be examined: permission)",
            d.processes_not_examined
        )?;
    }
    Ok(Outcome::Ok)
}

/// The name `ns link` gives: the label with `:` and brackets made safe for /run/netns.
fn link_name(f: &Found) -> String {
    f.label()
        .replace("docker-sandbox:", "docker-")
        .replace("net:[", "net-")
        .replace([':', ']'], "-")
        .trim_end_matches('-')
        .to_string()
}

fn link(docker: bool, all: bool) -> anyhow::Result<Outcome> {
    let d = discover::discover(&Roots::default());
    let reg = Registry::default();
    let mut out = std::io::stdout().lock();
    let mut n = 0;
    for f in &d.namespaces {
        if f.current || f.name().is_some() {
            continue;
        }
        let is_docker = f.container.as_ref().is_some_and(|c| c.runtime == "docker")
            || f.label().starts_with("docker-sandbox:");
        let wanted = if docker {
            is_docker
        } else {
            all || f.container.is_some() || is_docker
        };
        if !wanted {
            continue;
        }
        let name = NsName::new(&link_name(f))
            .with_context(|| format!("cannot name {} in /run/netns", f.label()))?;
        reg.link(Path::new(LINKED_DIR), &name, &f.open_path, f.id)
            .with_context(|| format!("cannot link {}", f.label()))?;
        writeln!(out, "linked {} as /run/netns/{name}", f.label())?;
        n += 1;
    }
    if n == 0 {
        writeln!(out, "nothing to link: every such namespace has a name")?;
    }
    Ok(Outcome::Ok)
}

fn unlink() -> anyhow::Result<Outcome> {
    let reg = Registry::default();
    let mut out = std::io::stdout().lock();
    let done = reg.unlink_all(Path::new(LINKED_DIR))?;
    for u in &done {
        match u {
            Unlinked::Removed(n) => writeln!(out, "unlinked /run/netns/{n}")?,
            Unlinked::NotOurs(n) => writeln!(
                out,
                "left /run/netns/{n}: it no longer holds the namespace plumb linked"
            )?,
        }
    }
    if done.is_empty() {
        writeln!(out, "nothing to unlink")?;
    }
    Ok(Outcome::Ok)
}
