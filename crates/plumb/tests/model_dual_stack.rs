//! Dual-stack networks: `subnet` and `gateway` as one value or a list of one per IP family.
//! What a valid file expands to (one address and one default route per family for every
//! member), and every new refusal at the exact line and column of the value that causes it.

use std::net::IpAddr;

use ipnet::IpNet;
use plumb::model::{self, Diagnostic, DiagnosticKind, NodeRef, Route, Topology};

const ORIGIN: &str = "lab.toml";

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

fn load(src: &str) -> Topology {
    model::parse_toml(src, ORIGIN).unwrap_or_else(|e| panic!("{e}\n{src}"))
}

fn diagnostics(src: &str) -> Vec<Diagnostic> {
    match model::parse_toml(src, ORIGIN) {
        Ok(_) => panic!("loaded, but it should be refused:\n{src}"),
        Err(e) => e.diagnostics().to_vec(),
    }
}

/// The 1-based line and column of the first occurrence of `needle` in `src`.
fn position(src: &str, needle: &str) -> (usize, usize) {
    let at = src
        .find(needle)
        .unwrap_or_else(|| panic!("{needle:?} is not in the source"));
    let line = src[..at].matches('\n').count() + 1;
    let column = at - src[..at].rfind('\n').map_or(0, |n| n + 1) + 1;
    (line, column)
}

/// Asserts that `src` is refused with exactly one diagnostic, written where `needle` first
/// occurs, whose message is exactly `message`, and returns it.
fn refused_at(src: &str, needle: &str, message: &str) -> Diagnostic {
    let found = diagnostics(src);
    let rendered: Vec<String> = found.iter().map(ToString::to_string).collect();
    assert_eq!(
        found.len(),
        1,
        "expected one diagnostic, got:\n{}",
        rendered.join("\n")
    );
    let d = found.into_iter().next().unwrap();
    assert_eq!((d.line(), d.column()), position(src, needle), "{d}");
    assert_eq!(d.kind().to_string(), message);
    assert!(d.help().len() > 10, "help too short: {}", d.help());
    d
}

fn node<'t>(t: &'t Topology, name: &str) -> &'t model::Node {
    let r = t.node_named(name).expect("node");
    t.node(&r).expect("node")
}

fn eth0_addresses(t: &Topology, member: &str) -> Vec<IpNet> {
    node(t, member)
        .interfaces
        .iter()
        .find(|i| i.name.as_str() == "eth0")
        .expect("eth0")
        .addresses
        .clone()
}

fn default_via(via: &str) -> Route {
    Route {
        to: None,
        via: Some(ip(via)),
        dev: None,
    }
}

const DUAL: &str = r#"name = "dual"

[networks.lan0]
subnet = ["10.90.0.0/24", "fd00:90::/64"]
members = ["web", "client"]
nat = true
publish = ["8080:web:80/tcp"]
"#;

#[test]
fn dual_stack_every_member_has_one_address_and_one_default_route_per_family() {
    let t = load(DUAL);
    let n = &t.networks[0];
    let subnets: Vec<IpNet> = n.subnets.iter().map(|s| s.net).collect();
    assert_eq!(subnets, [net("10.90.0.0/24"), net("fd00:90::/64")]);
    assert_eq!(n.subnets[0].gateway, ip("10.90.0.1"));
    assert_eq!(n.subnets[1].gateway, ip("fd00:90::1"));
    assert_eq!(n.subnets[0].addresses, [ip("10.90.0.2"), ip("10.90.0.3")]);
    assert_eq!(n.subnets[1].addresses, [ip("fd00:90::2"), ip("fd00:90::3")]);
    assert_eq!(
        t.bridges[0].addresses,
        [net("10.90.0.1/24"), net("fd00:90::1/64")]
    );
    assert_eq!(
        eth0_addresses(&t, "web"),
        [net("10.90.0.2/24"), net("fd00:90::2/64")]
    );
    assert_eq!(
        eth0_addresses(&t, "client"),
        [net("10.90.0.3/24"), net("fd00:90::3/64")]
    );
    for m in ["web", "client"] {
        assert_eq!(
            node(&t, m).routes,
            [default_via("10.90.0.1"), default_via("fd00:90::1")],
            "{m}"
        );
    }
    let web = model::names::NsName::new("web").unwrap();
    assert_eq!(n.addresses_of(&web), [ip("10.90.0.2"), ip("fd00:90::2")]);
    assert_eq!(n.subnet(true).map(|s| s.net), Some(net("fd00:90::/64")));
}

#[test]
fn dual_stack_a_single_string_keeps_working_for_either_family() {
    for (subnet, gateway) in [
        ("10.90.0.0/24", "10.90.0.1"),
        ("fd00:90::/64", "fd00:90::1"),
    ] {
        let t = load(&format!(
            "name = \"one\"\n[networks.lan0]\nsubnet = \"{subnet}\"\nmembers = [\"web\"]\nnat = true\n"
        ));
        assert_eq!(t.networks[0].subnets.len(), 1);
        assert_eq!(t.networks[0].subnets[0].gateway, ip(gateway));
        assert_eq!(node(&t, "web").routes, [default_via(gateway)]);
    }
}

#[test]
fn dual_stack_subnets_keep_the_order_they_are_written_in() {
    let t = load(&DUAL.replace(
        r#"["10.90.0.0/24", "fd00:90::/64"]"#,
        r#"["fd00:90::/64", "10.90.0.0/24"]"#,
    ));
    assert_eq!(
        eth0_addresses(&t, "web"),
        [net("fd00:90::2/64"), net("10.90.0.2/24")]
    );
    assert_eq!(
        node(&t, "web").routes,
        [default_via("fd00:90::1"), default_via("10.90.0.1")]
    );
}

#[test]
fn dual_stack_gateway_list_sets_one_per_family_and_a_single_one_sets_its_family() {
    let both = DUAL.replace(
        "members = [",
        "gateway = [\"fd00:90::fe\", \"10.90.0.254\"]\nmembers = [",
    );
    let t = load(&both);
    assert_eq!(t.networks[0].subnets[0].gateway, ip("10.90.0.254"));
    assert_eq!(t.networks[0].subnets[1].gateway, ip("fd00:90::fe"));
    assert_eq!(
        eth0_addresses(&t, "web"),
        [net("10.90.0.1/24"), net("fd00:90::1/64")]
    );

    let v6_only = DUAL.replace("members = [", "gateway = \"fd00:90::fe\"\nmembers = [");
    let t = load(&v6_only);
    assert_eq!(t.networks[0].subnets[0].gateway, ip("10.90.0.1"));
    assert_eq!(t.networks[0].subnets[1].gateway, ip("fd00:90::fe"));
    assert_eq!(
        node(&t, "client").routes,
        [default_via("10.90.0.1"), default_via("fd00:90::fe")]
    );
}

#[test]
fn dual_stack_a_member_with_a_default_route_of_one_family_gets_only_the_other() {
    let src =
        format!("{DUAL}[nodes.web]\nroutes = [{{ to = \"default\", via = \"fd00:90::99\" }}]\n");
    let t = load(&src);
    assert_eq!(
        node(&t, "web").routes,
        [default_via("fd00:90::99"), default_via("10.90.0.1")]
    );
}

#[test]
fn dual_stack_json_takes_the_same_lists() {
    let t = model::parse_json(
        r#"{"name": "j", "networks": {"lan0": {"subnet": ["10.90.0.0/24", "fd00:90::/64"],
            "gateway": ["10.90.0.9"], "members": ["a"]}}}"#,
        "lab.json",
    )
    .unwrap();
    assert_eq!(t.networks[0].subnets[0].gateway, ip("10.90.0.9"));
    assert_eq!(t.networks[0].subnets[1].gateway, ip("fd00:90::1"));
    assert_eq!(t.host.name, NodeRef::Host);
}

#[test]
fn dual_stack_two_prefixes_of_one_family_are_refused_at_the_second() {
    let src = DUAL.replace("\"fd00:90::/64\"]", "\"10.91.0.0/24\"]");
    let d = refused_at(
        &src,
        "\"10.91.0.0/24\"",
        "network `lan0` has two IPv4 subnets, 10.90.0.0/24 and 10.91.0.0/24: a network carries \
         at most one prefix of each IP family",
    );
    assert!(matches!(d.kind(), DiagnosticKind::SubnetFamilyTwice { .. }));
    assert!(d.help().contains("a network of its own"), "{}", d.help());

    let src = DUAL.replace("\"10.90.0.0/24\"", "\"fd00:91::/64\"");
    refused_at(
        &src,
        "\"fd00:90::/64\"",
        "network `lan0` has two IPv6 subnets, fd00:91::/64 and fd00:90::/64: a network carries \
         at most one prefix of each IP family",
    );
}

#[test]
fn dual_stack_an_empty_subnet_list_is_refused_at_the_list() {
    let src = DUAL.replace(r#"["10.90.0.0/24", "fd00:90::/64"]"#, "[]");
    let d = refused_at(&src, "[]", "`subnet` of network `lan0` lists no prefix");
    assert!(d.help().contains("subnet = ["), "{}", d.help());
}

#[test]
fn dual_stack_a_subnet_that_is_not_a_string_or_list_is_refused_at_the_value() {
    let src = DUAL.replace(r#"["10.90.0.0/24", "fd00:90::/64"]"#, "24");
    refused_at(
        &src,
        "24\n",
        "`networks.lan0.subnet` must be a string or a list of strings, not an integer",
    );
}

#[test]
fn dual_stack_a_bad_entry_is_refused_alone_at_that_entry() {
    // The network is refused, but its members get no second, consequential report.
    let src = DUAL.replace("\"fd00:90::/64\"", "\"fd00:90::1/64\"");
    refused_at(
        &src,
        "\"fd00:90::1/64\"",
        "subnet `fd00:90::1/64` has bits set after its /64-bit prefix",
    );
}

#[test]
fn dual_stack_two_gateways_of_one_family_are_refused_at_the_second() {
    let src = DUAL.replace(
        "members = [",
        "gateway = [\"10.90.0.1\", \"10.90.0.254\"]\nmembers = [",
    );
    let d = refused_at(
        &src,
        "\"10.90.0.254\"",
        "network `lan0` has two IPv4 gateways, 10.90.0.1 and 10.90.0.254: a network has one \
         gateway per subnet",
    );
    assert!(matches!(
        d.kind(),
        DiagnosticKind::GatewayFamilyTwice { .. }
    ));
}

#[test]
fn dual_stack_a_gateway_of_a_family_without_subnet_is_refused_at_the_gateway() {
    let src = "name = \"x\"\n[networks.lan0]\nsubnet = \"10.90.0.0/24\"\n\
               gateway = [\"10.90.0.1\", \"fd00:90::1\"]\nmembers = [\"web\"]\n";
    let d = refused_at(
        src,
        "\"fd00:90::1\"",
        "gateway fd00:90::1 is an IPv6 address, but network `lan0` has no IPv6 subnet \
         (10.90.0.0/24)",
    );
    assert!(d.help().contains("add an IPv6 prefix"), "{}", d.help());
}

#[test]
fn dual_stack_a_gateway_outside_its_familys_subnet_is_refused_at_that_gateway() {
    let src = DUAL.replace(
        "members = [",
        "gateway = [\"10.90.0.1\", \"fd00:99::1\"]\nmembers = [",
    );
    refused_at(
        &src,
        "\"fd00:99::1\"",
        "gateway fd00:99::1 is outside subnet fd00:90::/64",
    );
}

#[test]
fn dual_stack_overlap_is_checked_per_family_at_the_overlapping_prefix() {
    let src = format!(
        "{DUAL}[networks.lan1]\nsubnet = [\"10.91.0.0/24\", \"fd00:90:0:0:8000::/65\"]\n\
         members = [\"x\"]\n"
    );
    let d = refused_at(
        &src,
        "\"fd00:90:0:0:8000::/65\"",
        "subnet fd00:90:0:0:8000::/65 of network `lan1` overlaps fd00:90::/64 of network `lan0` \
         (line 3)",
    );
    assert!(matches!(
        d.kind(),
        DiagnosticKind::OverlappingSubnets { .. }
    ));
    // Another network's IPv4 prefix next to an IPv6-only network's is no overlap.
    let t = load(&format!(
        "{DUAL}[networks.lan1]\nsubnet = \"fd00:91::/64\"\nmembers = [\"x\"]\n"
    ));
    assert_eq!(t.networks.len(), 2);
}

#[test]
fn dual_stack_each_subnet_must_hold_every_member() {
    let src = "name = \"x\"\n[networks.lan0]\nsubnet = [\"10.90.0.0/24\", \"fd00:90::/126\"]\n\
               members = [\"a\", \"b\", \"c\"]\n";
    let d = refused_at(
        src,
        "\"fd00:90::/126\"",
        "subnet fd00:90::/126 of network `lan0` has room for 2 members, but 3 are listed",
    );
    assert!(d.help().contains("fd00:90::/125"), "{}", d.help());
}

#[test]
fn dual_stack_member_addresses_of_both_families_are_claimed() {
    // A written address equal to a member's IPv6 address is one address on two nodes.
    let src = format!("{DUAL}[nodes.other.interfaces.lo]\naddresses = [\"fd00:90::3/128\"]\n");
    let found = diagnostics(&src);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        matches!(found[0].kind(), DiagnosticKind::DuplicateAddress { address, .. } if *address == ip("fd00:90::3")),
        "{}",
        found[0]
    );
}
