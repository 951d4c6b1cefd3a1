//! Plugin mode: with `CNI_COMMAND` in the environment (or started as `plumb-cni`), plumb speaks
//! the CNI protocol instead of parsing arguments: configuration on stdin, the result (or the
//! error object) on stdout, logs on stderr (`PLUMB_LOG=debug`); exit 0 on success, 1 on error.

use std::io::{Read, Write};
use std::path::Path;
use std::process::ExitCode;

/// The name the packaging installs plumb under in CNI plugin directories.
pub const PLUGIN_NAME: &str = "plumb-cni";

/// `Some(exit code)` when this process is a CNI plugin invocation (and has been handled);
/// `None` to go on as the ordinary command line.
pub fn plugin_mode() -> Option<ExitCode> {
    let as_plugin = std::env::args_os()
        .next()
        .and_then(|a| Path::new(&a).file_name().map(|n| n == PLUGIN_NAME))
        .unwrap_or(false);
    let has_command = std::env::var_os("CNI_COMMAND").is_some();
    if !has_command && !as_plugin {
        return None;
    }
    if !has_command {
        // What the reference plugins do when started by hand: say what they are.
        let _ = writeln!(std::io::stderr(), "{}", plumb::cni::about());
        return Some(ExitCode::SUCCESS);
    }
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_env("PLUMB_LOG"))
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
    let mut stdin = Vec::new();
    if let Err(e) = std::io::stdin().read_to_end(&mut stdin) {
        let err =
            plumb::cni::CniError::new(plumb::cni::code::IO_FAILURE, "error reading from stdin")
                .details(e);
        return Some(print(Some(err.to_json(plumb::cni::spec::LATEST)), false));
    }
    let reply = plumb::cni::run(|k| std::env::var(k).ok(), &stdin);
    Some(print(reply.stdout, reply.ok))
}

fn print(out: Option<serde_json::Value>, ok: bool) -> ExitCode {
    if let Some(v) = out {
        let mut stdout = std::io::stdout().lock();
        let text = serde_json::to_string_pretty(&v).unwrap_or_default();
        let _ = writeln!(stdout, "{text}");
        let _ = stdout.flush();
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
