//! What the loader refuses on purpose, before anything is touched: each refusal is one diagnostic
//! at the exact line and column of the key or value that causes it, with a sentence saying why
//! and a help line saying what to change.

use plumb::model::{self, Diagnostic, DiagnosticKind};

const ORIGIN: &str = "lab.toml";

fn diagnostics(src: &str) -> Vec<Diagnostic> {
    match model::parse_toml(src, ORIGIN) {
        Ok(_) => panic!("loaded, but it should be refused:\n{src}"),
        Err(e) => e.diagnostics().to_vec(),
    }
}

/// Asserts that `src` is refused with exactly one diagnostic, at `line`:`column`, whose message
/// is exactly `message`, and returns it.
fn refused(src: &str, line: usize, column: usize, message: &str) -> Diagnostic {
    let found = diagnostics(src);
    let rendered: Vec<String> = found.iter().map(ToString::to_string).collect();
    assert_eq!(
        found.len(),
        1,
        "expected one diagnostic, got:\n{}",
        rendered.join("\n")
    );
    let d = found.into_iter().next().unwrap();
    assert_eq!(
        (d.line(), d.column()),
        (line, column),
        "wrong position:\n{d}"
    );
    assert_eq!(d.kind().to_string(), message);
    let head = format!("{ORIGIN}:{line}:{column}: {message}\n  help: ");
    assert!(d.to_string().starts_with(&head), "rendered as:\n{d}");
    d
}

const HOST_FIREWALL: &str = "a firewall on `host` is refused: a deny-by-default policy in the \
    machine's own namespace would cut its management access (SSH, the admin's own connections), \
    and a safe form of it is not designed yet";

#[test]
fn refusal_host_firewall_table_is_refused_at_its_key() {
    let src = "name = \"x\"\n\n[nodes.host.firewall]\ningress = \"deny\"\nallow = [\"tcp/22\"]\n";
    let d = refused(src, 3, 13, HOST_FIREWALL);
    assert!(matches!(d.kind(), DiagnosticKind::HostFirewall));
    assert!(d.help().contains("`[nodes.web.firewall]`"), "{}", d.help());
}

#[test]
fn refusal_host_firewall_inline_is_refused_at_its_key() {
    let src = "name = \"x\"\n[nodes.host]\nfirewall = { ingress = \"allow\" }\n";
    refused(src, 3, 1, HOST_FIREWALL);
}

#[test]
fn refusal_host_firewall_json_is_refused_at_its_key() {
    let src = "{\"name\": \"x\",\n \"nodes\": {\"host\": {\"firewall\": {\"ingress\": \"deny\"}}}}";
    let d = model::parse_json(src, "lab.json")
        .unwrap_err()
        .diagnostics()[0]
        .clone();
    assert_eq!((d.line(), d.column()), (2, 21), "{d}");
    assert_eq!(d.kind(), &DiagnosticKind::HostFirewall);
}

#[test]
fn refusal_node_firewall_is_still_accepted() {
    let src = "name = \"x\"\n[nodes.web.firewall]\ningress = \"deny\"\nallow = [\"tcp/80\"]\n";
    let t = model::parse_toml(src, ORIGIN).unwrap();
    assert!(t.nodes[0].firewall.is_some());
    assert!(t.host.firewall.is_none());
}

#[test]
fn refusal_ipv6_nat_is_refused_at_the_nat_key() {
    let src = "name = \"x\"\n[networks.six]\nsubnet = \"fd00:1::/64\"\nmembers = [\"web\"]\n\
               nat = true\n";
    let d = refused(
        src,
        5,
        1,
        "`nat` on network `six` is refused: its subnet fd00:1::/64 is IPv6, and plumb builds NAT \
         and published ports for IPv4 only (no IPv6 forwarding or IPv6 NAT rules yet)",
    );
    assert!(d.help().contains("IPv4 subnet"), "{}", d.help());
}

#[test]
fn refusal_ipv6_publish_is_refused_at_the_publish_key() {
    let src = "name = \"x\"\n[networks.six]\nsubnet = \"fd00:1::/64\"\nmembers = [\"web\"]\n\
               isolated = true\n  publish = [\"8080:web:80/tcp\"]\n";
    let d = refused(
        src,
        6,
        3,
        "`publish` on network `six` is refused: its subnet fd00:1::/64 is IPv6, and plumb builds \
         NAT and published ports for IPv4 only (no IPv6 forwarding or IPv6 NAT rules yet)",
    );
    assert!(d.help().contains("remove `publish`"), "{}", d.help());
}

#[test]
fn refusal_ipv6_nat_and_publish_are_both_reported() {
    let src = "name = \"x\"\n[networks.six]\nsubnet = \"fd00:1::/64\"\nmembers = [\"web\"]\n\
               publish = [\"8080:web:80\"]\nnat = true\n";
    let found = diagnostics(src);
    let at: Vec<_> = found.iter().map(|d| (d.line(), d.column())).collect();
    assert_eq!(at, [(5, 1), (6, 1)]);
    assert!(found
        .iter()
        .all(|d| matches!(d.kind(), DiagnosticKind::Ipv6Nat { .. })));
}

#[test]
fn refusal_ipv6_without_nat_and_ipv4_with_nat_are_accepted() {
    let src = "name = \"x\"\n[networks.six]\nsubnet = \"fd00:1::/64\"\nmembers = [\"a\"]\n\
               nat = false\npublish = []\n[networks.four]\nsubnet = \"10.1.0.0/24\"\n\
               members = [\"b\"]\nnat = true\npublish = [\"8080:b:80\"]\n";
    let t = model::parse_toml(src, ORIGIN).unwrap();
    assert_eq!(t.networks.len(), 2);
    assert!(!t.networks[0].nat && t.networks[1].nat);
}
