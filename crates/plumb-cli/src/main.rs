//! `plumb`: build Linux container networks from kernel primitives, and explain them.
//!
//! A thin layer over the `plumb` library: argument parsing, printing, exit codes
//! (0 ok, 1 a difference was found, 2 error).

mod cmd;

use std::io::Write;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "plumb",
    version,
    about = "Linux container networking from kernel primitives: namespaces, veths, bridges, addresses and routes over netlink"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Build (or converge) the lab a topology file describes.
    Up(cmd::up::Args),
    /// Remove everything a lab owns.
    Down(cmd::down::Args),
    /// List the labs on this machine, with their object counts.
    Ls(cmd::ls::Args),
    /// Show a lab: nodes, interfaces, addresses, routes, veth peers, bridge ports.
    Show(cmd::show::Args),
    /// Run a command inside a node, as `ip netns exec` does.
    Exec(cmd::exec::Args),
    /// Remove labs whose last change was interrupted (a crash, a kill).
    Gc(cmd::gc::Args),
    /// Enter a throwaway sandbox (no root needed), optionally with a lab up inside.
    Sandbox(cmd::sandbox::Args),
    /// Run the `[[expect]]` probes of a topology file and report which expectations hold.
    Check(cmd::check::Args),
    /// Send one ICMP echo from a node of a lab to another node, from inside the first.
    Ping(cmd::ping::Args),
}

/// What a command reports back to `main`.
pub enum Outcome {
    /// Success.
    Ok,
    /// A difference was found (a dry run with changes, a failed check).
    Difference,
    /// A child's exit status to pass on.
    Code(u8),
}

fn main() -> ExitCode {
    // `exec` and `sandbox` need a single-threaded process: nothing may start threads before them.
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_env("PLUMB_LOG"))
        .with_writer(std::io::stderr)
        .init();
    let r = match cli.cmd {
        Command::Up(a) => cmd::up::run(a),
        Command::Down(a) => cmd::down::run(a),
        Command::Ls(a) => cmd::ls::run(a),
        Command::Show(a) => cmd::show::run(a),
        Command::Exec(a) => cmd::exec::run(a),
        Command::Gc(a) => cmd::gc::run(a),
        Command::Sandbox(a) => cmd::sandbox::run(a),
        Command::Check(a) => cmd::check::run(a),
        Command::Ping(a) => cmd::ping::run(a),
    };
    match r {
        Ok(Outcome::Ok) => ExitCode::SUCCESS,
        Ok(Outcome::Difference) => ExitCode::from(1),
        Ok(Outcome::Code(c)) => ExitCode::from(c),
        Err(e) => {
            if is_broken_pipe(&e) {
                return ExitCode::SUCCESS;
            }
            let _ = writeln!(std::io::stderr(), "plumb: {}", chain(&e));
            ExitCode::from(2)
        }
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// The error and its causes, skipping a cause whose text the message before it already contains
/// (library errors name their source in their own message).
fn chain(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if !out.contains(&text) {
            if !out.is_empty() {
                out.push_str(": ");
            }
            out.push_str(&text);
        }
    }
    out
}
