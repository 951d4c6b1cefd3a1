//! `plumb`: build Linux container networks from kernel primitives, and explain them.
//!
//! A thin layer over the `plumb` library: argument parsing, printing, exit codes
//! (0 ok, 1 a difference was found, 2 error).

mod cmd;

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "plumb",
    version,
    about = "Linux container networking from kernel primitives: namespaces, veths, bridges, addresses and routes over netlink",
    after_help = "Exit codes: 0 ok, 1 a difference was found (a dry run with changes, a failed check, no reply), 2 error. PLUMB_LOG=debug prints what plumb does on stderr; NO_COLOR turns its colours off."
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
    /// Every network namespace on the machine and the other end of every veth, as a tree, JSON
    /// or a picture; or one interface explained in a sentence.
    Inspect(cmd::inspect::Args),
    /// Network namespaces: list them with what holds each; name unnamed ones in /run/netns.
    Ns(cmd::ns::Args),
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
    /// Capture packets on interfaces of any namespaces at once, as lines or into one pcapng file.
    Capture(cmd::capture::Args),
    /// Send one probe between two nodes of a lab and show its journey hop by hop.
    Trace(cmd::trace::Args),
    /// Diagnose container networking: shared limits, forwarding, MTUs, peers, firewalls, labs against their files.
    Doctor(cmd::doctor::Args),
    /// Measure latency and throughput per namespace crossing, and the control plane's cost per object.
    Bench(cmd::bench::Args),
    /// Print a shell completion script for bash, zsh or fish.
    Completions(cmd::completions::Args),
    /// Print plumb's manual page (roff), or write one page per command into a directory.
    Man(cmd::man::Args),
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

/// Colours on stderr only for a person at a terminal, and never when `NO_COLOR` is set
/// (<https://no-color.org>: any non-empty value).
fn colours() -> bool {
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    !no_color && std::io::stderr().is_terminal()
}

fn main() -> ExitCode {
    // CNI plugin mode (`CNI_COMMAND` set, or started as `plumb-cni`): the CNI protocol, not
    // the command line.
    if let Some(code) = cmd::cni::plugin_mode() {
        return code;
    }
    // `sandbox` needs a single-threaded process (a new user namespace): nothing may start
    // threads before it.
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_env("PLUMB_LOG"))
        .with_writer(std::io::stderr)
        .with_ansi(colours())
        .init();
    let r = match cli.cmd {
        Command::Up(a) => cmd::up::run(a),
        Command::Down(a) => cmd::down::run(a),
        Command::Ls(a) => cmd::ls::run(a),
        Command::Show(a) => cmd::show::run(a),
        Command::Inspect(a) => cmd::inspect::run(a),
        Command::Ns(a) => cmd::ns::run(a),
        Command::Exec(a) => cmd::exec::run(a),
        Command::Gc(a) => cmd::gc::run(a),
        Command::Sandbox(a) => cmd::sandbox::run(a),
        Command::Check(a) => cmd::check::run(a),
        Command::Ping(a) => cmd::ping::run(a),
        Command::Capture(a) => cmd::capture::run(a),
        Command::Trace(a) => cmd::trace::run(a),
        Command::Doctor(a) => cmd::doctor::run(a),
        Command::Bench(a) => cmd::bench::run(a),
        Command::Completions(a) => cmd::completions::run(a),
        Command::Man(a) => cmd::man::run(a),
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

/// True when the error comes from writing to a closed pipe (`plumb show LAB --json | head -1`):
/// the reader has what it wanted, so plumb exits 0 quietly. Rust's runtime ignores SIGPIPE, so a
/// write to a closed pipe fails with `EPIPE` instead of killing plumb; children plumb starts get
/// the default disposition back (`std::process::Command` restores it before `exec`).
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    use std::io::ErrorKind::BrokenPipe;
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == BrokenPipe)
            // serde_json's writer errors wrap the io::Error without exposing it as a source.
            || c.downcast_ref::<serde_json::Error>()
                .is_some_and(|j| j.io_error_kind() == Some(BrokenPipe))
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
