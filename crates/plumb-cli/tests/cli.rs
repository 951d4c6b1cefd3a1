//! The command line itself: colours, closed pipes, `exec`'s arguments and node names, `ping` of
//! prefixed labs, `down`'s file errors, the manual page and shell completions.

mod common;

use std::process::{Command, Output, Stdio};

use common::*;
use plumb_testkit::{describe, Sandbox};

/// Two labs whose namespaces carry a `prefix`: each has nodes `web` and `db` on one network.
fn prefixed_lab(sb: &Sandbox, n: u8) -> String {
    let file = sb.write_file(
        &format!("lab{n}.toml"),
        &format!(
            "name = \"lab{n}\"\nprefix = \"lab{n}-\"\n\n[networks.br]\nsubnet = \"10.7{n}.0.0/24\"\nmembers = [\"web\", \"db\"]\n"
        ),
    );
    file.to_string_lossy().into_owned()
}

/// A sandbox with lab1 and lab2 (see [`prefixed_lab`]) up; returns lab1's file too.
fn two_prefixed_labs() -> (Sandbox, String) {
    let sb = sandbox();
    let lab1 = prefixed_lab(&sb, 1);
    let lab2 = prefixed_lab(&sb, 2);
    sb.plumb_ok(&["up", &lab1]);
    sb.plumb_ok(&["up", &lab2]);
    assert_eq!(
        sb.netns_list(),
        ["lab1-db", "lab1-web", "lab2-db", "lab2-web"],
        "ip netns list"
    );
    (sb, lab1)
}

fn stderr_lines(out: &Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .map(str::to_string)
        .collect()
}

/// Asserts that `out` failed with exit 2, printed nothing on stdout and one line on stderr that
/// is plumb's error, free of Rust debug formatting; returns that line.
fn one_error_line(out: &Output, what: &str) -> String {
    assert_exit(out, 2, what);
    assert!(out.stdout.is_empty(), "{what}\n{}", describe(out));
    let lines = stderr_lines(out);
    assert!(
        lines.len() == 1 && lines[0].starts_with("plumb: "),
        "{what}: one error line\n{}",
        describe(out)
    );
    for debug in ["Os {", "kind:", "Custom {", "code:", "\\\""] {
        assert!(
            !lines[0].contains(debug),
            "{what}: debug formatting ({debug}) in the error\n{}",
            describe(out)
        );
    }
    lines[0].clone()
}

/// The namespace `readlink /proc/self/ns/net` names when run by plumb with `args`.
fn net_ns_via_plumb(sb: &Sandbox, args: &[&str]) -> String {
    let out = sb.plumb(args);
    assert_exit(&out, 0, &format!("plumb {}", args.join(" ")));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The same, through `ip netns exec NAME` (the oracle).
fn net_ns_via_ip(sb: &Sandbox, name: &str) -> String {
    sb.run_ok(&["ip", "netns", "exec", name, "readlink", "/proc/self/ns/net"])
        .trim()
        .to_string()
}

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
        &["man"],
        &["completions", "bash"],
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
    let out = sb.plumb_ok(&["exec", "ns1", "grep", "^SigIgn:", "/proc/self/status"]);
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

#[test]
fn exec_without_double_dash_passes_options_to_the_command() {
    let sb = sandbox();
    sb.plumb_ok(&["up", &example("seed.toml")]);
    let oracle = sb.link_names(Some("ns1"));
    for args in [
        &["exec", "ns1", "ip", "-j", "link"][..],
        &["exec", "ns1", "--", "ip", "-j", "link"],
    ] {
        let out = sb.plumb(args);
        assert_exit(&out, 0, &args.join(" "));
        let links = stdout_json(&out);
        let mut names: Vec<String> = links
            .as_array()
            .unwrap_or_else(|| panic!("ip -j link is not an array: {links}"))
            .iter()
            .map(|l| l["ifname"].as_str().expect("ifname").to_string())
            .collect();
        names.sort();
        assert_eq!(names, oracle, "plumb {}", args.join(" "));
    }
    // A `--` after the command's name is the command's.
    let out = sb.plumb(&[
        "exec",
        "ns1",
        "sh",
        "-c",
        "for a; do echo \"[$a]\"; done",
        "sh",
        "--",
        "-x",
    ]);
    assert_exit(&out, 0, "exec with -- among the command's arguments");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "[--]\n[-x]\n");
}

#[test]
fn exec_lab_colon_node_finds_a_prefixed_namespace() {
    let (sb, _) = two_prefixed_labs();
    for (arg, ns) in [("lab1:web", "lab1-web"), ("lab2:db", "lab2-db")] {
        assert_eq!(
            net_ns_via_plumb(&sb, &["exec", arg, "readlink", "/proc/self/ns/net"]),
            net_ns_via_ip(&sb, ns),
            "plumb exec {arg} is not in {ns}"
        );
    }
    // A name in /run/netns still works, and a namespace literally named `lab1:web` wins.
    assert_eq!(
        net_ns_via_plumb(&sb, &["exec", "lab1-web", "readlink", "/proc/self/ns/net"]),
        net_ns_via_ip(&sb, "lab1-web")
    );
    sb.run_ok(&["ip", "netns", "add", "lab1:web"]);
    let literal = net_ns_via_ip(&sb, "lab1:web");
    assert_ne!(literal, net_ns_via_ip(&sb, "lab1-web"));
    assert_eq!(
        net_ns_via_plumb(&sb, &["exec", "lab1:web", "readlink", "/proc/self/ns/net"]),
        literal,
        "the namespace named lab1:web does not win over lab1's node web"
    );
}

#[test]
fn exec_unknown_names_are_errors_with_the_labs_nodes_as_hints() {
    let (sb, _) = two_prefixed_labs();
    let line = one_error_line(
        &sb.plumb(&["exec", "web", "--", "true"]),
        "exec of a node name that is no namespace",
    );
    assert!(
        line.contains("there is no network namespace `web`")
            && line.contains("/run/netns/web")
            && line.contains("(os error 2)")
            && line.contains("lab1:web, lab2:web"),
        "{line}"
    );
    // No node of that name anywhere: the nodes present.
    let line = one_error_line(
        &sb.plumb(&["exec", "cache", "true"]),
        "exec of a name no lab has",
    );
    assert!(
        line.contains("lab1:db, lab1:web, lab2:db, lab2:web"),
        "{line}"
    );
    let line = one_error_line(
        &sb.plumb(&["exec", "lab1:cache", "true"]),
        "exec of a node lab1 does not have",
    );
    assert_eq!(
        line,
        "plumb: lab `lab1` has no node `cache` (its nodes: db, web)"
    );
    let line = one_error_line(
        &sb.plumb(&["exec", "lab9:web", "true"]),
        "exec of a lab that is not here",
    );
    assert_eq!(
        line,
        "plumb: there is no lab `lab9` on this machine (labs here: lab1, lab2)"
    );
}

#[test]
fn exec_paths_that_are_no_network_namespace_are_clear_errors() {
    let sb = sandbox();
    let missing = format!("{}/notans", sb.dir().display());
    let line = one_error_line(
        &sb.plumb(&["exec", &missing, "--", "true"]),
        "exec of a path that does not exist",
    );
    assert_eq!(
        line,
        format!("plumb: `{missing}` does not exist: No such file or directory (os error 2)")
    );
    let plain = sb.write_file("plain", "not a namespace\n");
    let plain = plain.to_string_lossy();
    let line = one_error_line(
        &sb.plumb(&["exec", &plain, "--", "true"]),
        "exec of a plain file",
    );
    assert!(
        line.starts_with(&format!("plumb: `{plain}` is not a network namespace: ")),
        "{line}"
    );
    // A namespace file of another kind: the kernel's refusal, with its errno.
    let line = one_error_line(
        &sb.plumb(&["exec", "/proc/self/ns/mnt", "true"]),
        "exec of a mount namespace",
    );
    assert_eq!(
        line,
        "plumb: `/proc/self/ns/mnt` is a namespace, but not a network namespace: Invalid argument (os error 22)"
    );
    // pid:PID: the shell's own namespace, the sandbox's.
    let out = sb.run(&[
        "sh",
        "-c",
        &format!(
            "'{}' exec pid:$$ readlink /proc/self/ns/net && readlink /proc/self/ns/net",
            env!("CARGO_BIN_EXE_plumb")
        ),
    ]);
    assert_exit(&out, 0, "plumb exec pid:$$");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(
        lines.len() == 2 && lines[0] == lines[1] && lines[0].starts_with("net:["),
        "{}",
        describe(&out)
    );
}

/// `FROM -> TO (ADDRESS): reply in RTT ms`, split; panics unless it has that shape.
fn ping_reply(out: &Output) -> (String, String, String) {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "plumb ping prints one line\n{}",
        describe(out)
    );
    let (head, verdict) = lines[0]
        .split_once(": ")
        .unwrap_or_else(|| panic!("no `: ` in {}", lines[0]));
    let (route, addr) = head
        .strip_suffix(')')
        .and_then(|h| h.split_once(" ("))
        .unwrap_or_else(|| panic!("no (ADDRESS) in {head}"));
    let rtt = verdict
        .strip_prefix("reply in ")
        .and_then(|v| v.strip_suffix(" ms"))
        .unwrap_or_else(|| panic!("not a reply: {verdict}"));
    let value: f64 = rtt
        .parse()
        .unwrap_or_else(|_| panic!("round-trip time {rtt} is not a number"));
    let decimals = rtt.split_once('.').map_or(0, |(_, d)| d.len());
    let expected = if value < 1.0 {
        3
    } else if value < 10.0 {
        2
    } else {
        0
    };
    assert_eq!(decimals, expected, "decimals of {rtt} ms");
    // A round trip through two veths is never 0 (printed: 0.000) however fast the machine.
    assert!(value > 0.0, "round-trip time {rtt} ms");
    (route.to_string(), addr.to_string(), rtt.to_string())
}

#[test]
fn ping_prefixed_lab_takes_the_names_its_file_writes() {
    let (sb, lab1) = two_prefixed_labs();
    let db = sb.ipv4_addrs(Some("lab1-db"), "eth0");
    assert_eq!(db.len(), 1, "lab1-db's eth0: {db:?}");
    let db = db[0].split('/').next().expect("address").to_string();
    for args in [
        &["ping", lab1.as_str(), "web", "db"][..],
        &["ping", "lab1", "web", "db"],
        &["ping", "lab1:web", "db"],
        &["ping", "lab1:web", "lab1:db"],
    ] {
        let out = sb.plumb(args);
        assert_exit(&out, 0, &args.join(" "));
        let (route, addr, _) = ping_reply(&out);
        assert_eq!(route, "web -> db", "{}", args.join(" "));
        assert_eq!(addr, db, "{}", args.join(" "));
    }
    // iputils agrees.
    sb.ping_ok(Some("lab1-web"), &db);
    let line = one_error_line(
        &sb.plumb(&["ping", "lab1:web", "lab2:db"]),
        "ping across two labs",
    );
    assert!(line.contains("`lab2:db` is a node of lab `lab2`"), "{line}");
    let line = one_error_line(
        &sb.plumb(&["ping", "lab1", "web", "cache"]),
        "ping of a node the lab does not have",
    );
    assert_eq!(line, "plumb: lab lab1 has no node `cache`");
}

#[test]
fn ping_of_a_lab_that_is_not_here_is_an_error_naming_it() {
    let (sb, _) = two_prefixed_labs();
    for args in [
        &["ping", "nosuchlab", "web", "db"][..],
        &["ping", "nosuchlab:web", "db"],
    ] {
        let line = one_error_line(&sb.plumb(args), &args.join(" "));
        assert_eq!(
            line,
            "plumb: there is no lab `nosuchlab` on this machine (labs here: lab1, lab2)"
        );
    }
}

#[test]
fn down_file_that_does_not_load_shows_diagnostics_and_suggests_down_lab() {
    let (sb, _) = two_prefixed_labs();
    // Valid TOML, invalid topology: the lab's name can be read.
    let bad = sb.write_file(
        "bad.toml",
        "name = \"lab1\"\nprefix = \"lab1-\"\n\n[nodes.web.interfaces.eth-much-too-long-for-linux]\n",
    );
    let bad = bad.to_string_lossy().into_owned();
    let out = sb.plumb(&["down", &bad]);
    assert_exit(&out, 2, "down of a file that does not load");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let diags = diagnostics(&stderr, &bad);
    assert!(
        diags
            .iter()
            .any(|(line, _, m)| *line == 4 && m.contains("15")),
        "the file's diagnostics\n{}",
        describe(&out)
    );
    assert!(
        stderr.contains("`plumb down lab1`"),
        "no suggestion to remove the lab by name\n{}",
        describe(&out)
    );
    // Nothing was removed.
    assert_eq!(ls_names(&sb), ["lab1", "lab2"]);
    // Broken TOML: the generic form.
    let broken = sb.write_file("broken.toml", "name = \"lab1\n[[[\n");
    let broken = broken.to_string_lossy().into_owned();
    let out = sb.plumb(&["down", &broken]);
    assert_exit(&out, 2, "down of a file that is not TOML");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !diagnostics(&stderr, &broken).is_empty() && stderr.contains("`plumb down LAB`"),
        "{}",
        describe(&out)
    );
    assert_eq!(ls_names(&sb), ["lab1", "lab2"]);
}

#[test]
fn down_missing_file_says_the_file_does_not_exist() {
    let sb = sandbox();
    let missing = format!("{}/missing.toml", sb.dir().display());
    for target in [missing.as_str(), "missing.json", "./missing"] {
        let line = one_error_line(&sb.plumb(&["down", target]), &format!("down {target}"));
        assert_eq!(
            line,
            format!("plumb: `{target}` is neither a topology file nor a lab name: the file does not exist (os error 2)")
        );
    }
    assert_eq!(sb.plumb_state_files(), Vec::<String>::new());
}

#[test]
fn down_of_an_absent_lab_leaves_no_lock_file() {
    let sb = sandbox();
    let out = sb.plumb(&["down", "nosuchlab"]);
    assert_exit(&out, 0, "down of a lab that is not here");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "lab nosuchlab: nothing to remove\n"
    );
    // The lock was taken (the directory exists) and released with its file.
    assert!(
        sb.run(&["test", "-d", "/run/plumb"]).status.success(),
        "down took no lock"
    );
    assert_eq!(
        sb.plumb_state_files(),
        Vec::<String>::new(),
        "files left in /run/plumb (the lab's lock is /run/plumb/nosuchlab.lock)"
    );
    sb.plumb_ok(&["up", &example("seed.toml")]);
    sb.plumb_ok(&["down", "seed"]);
    assert_eq!(sb.plumb_state_files(), Vec::<String>::new());
}

/// The subcommands `plumb --help` lists (but `help`).
fn subcommands(sb: &Sandbox) -> Vec<String> {
    let out = sb.plumb_ok(&["--help"]);
    let help = String::from_utf8_lossy(&out.stdout).into_owned();
    let names: Vec<String> = help
        .lines()
        .skip_while(|l| l.trim() != "Commands:")
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| *n != "help")
        .map(str::to_string)
        .collect();
    assert!(names.len() >= 11, "subcommands in plumb --help: {names:?}");
    names
}

/// Checks that `page` is well-formed man(7) roff and returns its text with escapes resolved:
/// every control line is a request or macro of the man package, every escape is known.
fn roff_text(page: &str) -> String {
    const REQUESTS: &[&str] = &[
        "TH", "SH", "SS", "TP", "PP", "LP", "P", "IP", "RS", "RE", "B", "I", "BR", "BI", "IB",
        "IR", "RI", "RB", "br", "sp", "nf", "fi", "ie", "el", "ds", "in", "ti", "ft", "UR", "UE",
        "EX", "EE", "TQ",
    ];
    let mut text = String::new();
    for (n, line) in page.lines().enumerate() {
        let n = n + 1;
        let body = if let Some(control) = line.strip_prefix('.').or(line.strip_prefix('\'')) {
            let name = control.split_whitespace().next().unwrap_or("");
            assert!(
                REQUESTS.contains(&name),
                "line {n}: unknown request `{name}`: {line}"
            );
            control[name.len()..].trim_start()
        } else {
            line
        };
        let mut chars = body.chars().peekable();
        while let Some(c) = chars.next() {
            if c != '\\' {
                text.push(c);
                continue;
            }
            match chars.next() {
                Some('-') => text.push('-'),
                Some('\\') | Some('e') => text.push('\\'),
                Some('&') | Some('c') => {}
                Some(' ') | Some('~') => text.push(' '),
                Some('f') => match chars.next() {
                    Some('B' | 'I' | 'R' | 'P') => {}
                    other => panic!("line {n}: bad font escape \\f{other:?}: {line}"),
                },
                Some('(') => {
                    let glyph: String = chars.by_ref().take(2).collect();
                    assert_eq!(glyph.len(), 2, "line {n}: short \\( escape: {line}");
                    text.push('?');
                }
                Some('*') => {
                    // A string: \*x or \*(xx.
                    match chars.next() {
                        Some('(') => {
                            let name: String = chars.by_ref().take(2).collect();
                            assert_eq!(name.len(), 2, "line {n}: short \\*( escape: {line}");
                        }
                        Some(_) => {}
                        None => panic!("line {n}: \\* at the end of the line: {line}"),
                    }
                    text.push('\'');
                }
                Some('n') => {
                    // A number register: \n(xx (in the `.ie \n(.g` preamble).
                    if chars.next_if_eq(&'(').is_some() {
                        let _: String = chars.by_ref().take(2).collect();
                    } else {
                        chars.next();
                    }
                }
                other => panic!("line {n}: unknown escape \\{other:?}: {line}"),
            }
        }
        text.push('\n');
    }
    text
}

#[test]
fn man_page_is_roff_with_th_header_and_every_subcommand() {
    let sb = sandbox();
    let subs = subcommands(&sb);
    let out = sb.plumb_ok(&["man"]);
    let page = String::from_utf8(out.stdout.clone()).expect("the page is UTF-8");
    let th = page
        .lines()
        .find(|l| l.starts_with(".TH "))
        .unwrap_or_else(|| panic!("no .TH line\n{page}"));
    assert!(th.starts_with(".TH PLUMB 1 "), "{th}");
    let text = roff_text(&page);
    for s in &subs {
        assert!(
            text.contains(&format!("plumb-{s}(1)")),
            "the page does not mention plumb-{s}(1)\n{page}"
        );
    }
    // One page per command with --out-dir.
    let dir = format!("{}/man1", sb.dir().display());
    sb.run_ok(&["mkdir", &dir]);
    sb.plumb_ok(&["man", "--out-dir", &dir]);
    for s in std::iter::once("plumb".to_string()).chain(subs.iter().map(|s| format!("plumb-{s}"))) {
        let page = std::fs::read_to_string(format!("{dir}/{s}.1"))
            .unwrap_or_else(|e| panic!("no page {s}.1: {e}"));
        roff_text(&page);
        assert!(
            page.contains(&format!(".TH {} 1 ", s.to_uppercase())),
            "{s}.1 has no .TH {}\n{page}",
            s.to_uppercase()
        );
    }
}

#[test]
fn completions_for_each_shell_name_every_subcommand() {
    let sb = sandbox();
    let subs = subcommands(&sb);
    for shell in ["bash", "zsh", "fish"] {
        let out = sb.plumb_ok(&["completions", shell]);
        let script = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            script.contains("plumb"),
            "{shell} completion is empty or not plumb's\n{}",
            describe(&out)
        );
        for s in &subs {
            assert!(
                script
                    .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
                    .any(|w| w == s),
                "{shell} completion does not name `{s}`"
            );
        }
        if shell == "bash" {
            // bash itself parses it.
            let mut cmd = sb.command(&["bash", "-n"]);
            cmd.stdin(Stdio::piped());
            let mut child = cmd
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn bash -n");
            std::io::Write::write_all(&mut child.stdin.take().expect("stdin"), script.as_bytes())
                .expect("write the script to bash");
            let checked = child.wait_with_output().expect("bash -n");
            assert_exit(&checked, 0, "bash -n on the bash completion");
        }
    }
    let out = sb.plumb(&["completions", "nosuchshell"]);
    assert_exit(&out, 2, "completions for an unknown shell");
}
