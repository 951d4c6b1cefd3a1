//! The command line itself: colours, closed pipes, `exec`'s arguments and node names, `ping` of
//! prefixed labs, `down`'s file errors, the manual page and shell completions.

mod common;

use std::process::{Command, Stdio};

use common::*;
use plumb_testkit::describe;

#[test]
fn logs_off_a_terminal_have_no_colour_escapes() {
    let sb = sandbox();
    for no_color in [None, Some("1")] {
        let mut cmd = sb.plumb_command(&["show", "nosuchlab"]);
        cmd.env("PLUMB_LOG", "debug");
        match no_color {
            Some(v) => cmd.env("NO_COLOR", v),
            None => cmd.env_remove("NO_COLOR"),
        };
        let out = sb.output(cmd);
        assert_exit(&out, 2, "plumb show of a lab that is not here");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.lines().any(|l| l.contains("DEBUG")),
            "PLUMB_LOG=debug logs nothing\n{}",
            describe(&out)
        );
        assert!(
            !out.stderr.contains(&0x1b),
            "an escape sequence on stderr that is not a terminal (NO_COLOR {no_color:?})\n{}",
            describe(&out)
        );
    }
}

#[test]
fn logs_on_a_terminal_are_coloured_unless_no_color_is_set() {
    let sb = sandbox();
    let plumb = env!("CARGO_BIN_EXE_plumb");
    // util-linux `script` gives the command a terminal; what it wrote comes back on stdout.
    let on_tty = |env: &str| {
        let line = format!("{env} PLUMB_LOG=debug '{plumb}' show nosuchlab");
        let mut cmd = sb.command(&["script", "-qec", &line, "/dev/null"]);
        cmd.env_remove("NO_COLOR");
        let out = sb.output(cmd);
        assert_exit(&out, 2, &format!("plumb show on a terminal ({line})"));
        let screen = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            screen.contains("DEBUG") && screen.contains("there is no lab `nosuchlab`"),
            "{line}\n{}",
            describe(&out)
        );
        out.stdout.contains(&0x1b)
    };
    assert!(on_tty(""), "no colours on a terminal");
    assert!(
        !on_tty("NO_COLOR=1"),
        "colours on a terminal with NO_COLOR=1"
    );
    // An empty NO_COLOR does not count (no-color.org).
    assert!(
        on_tty("NO_COLOR="),
        "no colours on a terminal with NO_COLOR empty"
    );
}

/// The write end of a pipe whose read end is already closed: the first write to it fails with
/// `EPIPE`, whatever the timing.
fn closed_pipe() -> Stdio {
    let mut reader = Command::new("true")
        .stdin(Stdio::piped())
        .spawn()
        .expect("spawn true");
    let write_end = reader.stdin.take().expect("piped stdin");
    // The read end was the child's only (std opens pipes close-on-exec): gone with it.
    assert!(reader.wait().expect("wait for true").success());
    Stdio::from(write_end)
}

#[test]
fn closed_pipe_on_stdout_exits_zero_quietly() {
    let sb = sandbox();
    sb.plumb_ok(&["up", &example("star.toml")]);
    for args in [
        &["show", "star", "--json"][..],
        &["show", "star"],
        &["ls"],
        &["ls", "--json"],
    ] {
        let mut cmd = sb.plumb_command(args);
        cmd.stdout(closed_pipe()).stderr(Stdio::piped());
        let out = cmd.output().expect("run plumb");
        assert_exit(
            &out,
            0,
            &format!("plumb {} into a closed pipe", args.join(" ")),
        );
        assert!(
            out.stderr.is_empty(),
            "plumb {} into a closed pipe said something\n{}",
            args.join(" "),
            describe(&out)
        );
    }
}

#[test]
fn exec_command_gets_default_sigpipe() {
    let sb = sandbox();
    sb.plumb_ok(&["up", &example("seed.toml")]);
    let out = sb.plumb_ok(&["exec", "ns1", "--", "grep", "^SigIgn:", "/proc/self/status"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let mask = stdout
        .trim()
        .strip_prefix("SigIgn:")
        .map(str::trim)
        .and_then(|m| u64::from_str_radix(m, 16).ok())
        .unwrap_or_else(|| panic!("no SigIgn mask\n{}", describe(&out)));
    // SIGPIPE is 13: bit 12 of the mask.
    assert_eq!(
        mask & (1 << 12),
        0,
        "the command plumb exec runs ignores SIGPIPE\n{}",
        describe(&out)
    );
}
