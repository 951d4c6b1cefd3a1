//! One bad file per validation rule (`tests/fixtures/bad/`): each is refused with exactly one
//! diagnostic, at the exact line and column, saying what is wrong and what to change.

use std::path::PathBuf;

use plumb::model::{self, Diagnostic, DiagnosticKind, ModelError};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/bad")
        .join(name)
}

fn diagnostics(name: &str) -> Vec<Diagnostic> {
    match model::load(&fixture(name)) {
        Ok(_) => panic!("{name} loaded, but it has an error"),
        Err(e @ ModelError::Read { .. }) => panic!("{name}: {e}"),
        Err(e) => e.diagnostics().to_vec(),
    }
}

/// Asserts that `name` has exactly one problem, at `line`:`column`, whose message contains
/// `fragment`, and that its rendering has the position and a help line.
fn check(name: &str, line: usize, column: usize, fragment: &str) -> Diagnostic {
    let found = diagnostics(name);
    let rendered: Vec<String> = found.iter().map(ToString::to_string).collect();
    assert_eq!(
        found.len(),
        1,
        "{name}: expected one diagnostic, got:\n{}",
        rendered.join("\n")
    );
    let d = found.into_iter().next().unwrap();
    assert_eq!(
        (d.line(), d.column()),
        (line, column),
        "{name}: wrong position:\n{d}"
    );
    let message = d.kind().to_string();
    assert!(
        message.contains(fragment),
        "{name}: `{message}` does not contain `{fragment}`"
    );
    let text = d.to_string();
    let head = format!(
        "{}:{line}:{column}: {message}\n  help: ",
        fixture(name).display()
    );
    assert!(text.starts_with(&head), "{name}: rendered as:\n{text}");
    assert!(d.help().len() > 10, "{name}: help too short: {}", d.help());
    d
}

#[test]
fn validation_unknown_key_is_reported_with_line() {
    let d = check("unknown_key.toml", 4, 1, "unknown key `adresses`");
    assert!(
        d.help().contains("did you mean `addresses`?"),
        "{}",
        d.help()
    );
    assert!(d.help().contains("`mtu`, `mac`, `up`"), "{}", d.help());
}

#[test]
fn validation_unknown_key_json_is_reported_with_line() {
    let d = check("json_unknown_key.json", 6, 7, "unknown key `memebers`");
    assert!(d.help().contains("`members`"), "{}", d.help());
}

#[test]
fn validation_toml_syntax_is_reported_with_line() {
    let d = check("toml_syntax.toml", 5, 12, "TOML syntax error");
    assert!(d.kind().to_string().contains("must be quoted"));
}

#[test]
fn validation_json_syntax_is_reported_with_line() {
    check(
        "json_syntax.json",
        5,
        3,
        "JSON syntax error: key must be a string",
    );
}

#[test]
fn validation_json_duplicate_key_is_reported_with_line() {
    check(
        "json_duplicate_key.json",
        5,
        5,
        "key `ns1` is written twice",
    );
}

#[test]
fn validation_missing_name_is_reported_with_line() {
    check("missing_name.toml", 1, 1, "has no `name`");
}

#[test]
fn validation_duplicate_node_range_is_reported_with_line() {
    check(
        "duplicate_node_range.toml",
        5,
        8,
        "node `c3` is declared twice (first on line 3)",
    );
}

#[test]
fn validation_bridge_network_same_name_is_reported_with_line() {
    check(
        "bridge_network_same_name.toml",
        5,
        11,
        "bridge name `br0` is used twice",
    );
}

#[test]
fn validation_interface_bridge_same_name_is_reported_with_line() {
    check(
        "interface_bridge_same_name.toml",
        9,
        28,
        "is already the name of the bridge on line 5",
    );
}

#[test]
fn validation_endpoint_undeclared_node_is_reported_with_line() {
    check(
        "endpoint_undeclared_node.toml",
        6,
        26,
        "names `ns9`, which is neither a declared node nor a bridge",
    );
}

#[test]
fn validation_interface_in_two_links_is_reported_with_line() {
    check(
        "interface_in_two_links.toml",
        10,
        26,
        "`eth0` in node `ns1` is already used by the link on line 7",
    );
}

#[test]
fn validation_ifname_too_long_is_reported_with_line() {
    check(
        "ifname_too_long.toml",
        6,
        28,
        "is 16 bytes, the kernel allows 15",
    );
}

#[test]
fn validation_nsname_traversal_is_reported_with_line() {
    check(
        "nsname_traversal.toml",
        3,
        8,
        "namespace name `../etc` contains `..`",
    );
}

#[test]
fn validation_lab_name_invalid_is_reported_with_line() {
    check("lab_name_invalid.toml", 1, 8, "lab name `My Lab`");
}

#[test]
fn validation_address_not_cidr_is_reported_with_line() {
    let d = check("address_not_cidr.toml", 4, 14, "the `/PREFIX` is missing");
    assert!(d.help().contains("`10.0.0.1/24`"), "{}", d.help());
}

#[test]
fn validation_gateway_outside_subnet_is_reported_with_line() {
    check(
        "gateway_outside_subnet.toml",
        5,
        11,
        "gateway 10.89.0.1 is outside subnet 10.88.0.0/24",
    );
}

#[test]
fn validation_gateway_not_host_is_reported_with_line() {
    check(
        "gateway_not_host.toml",
        5,
        11,
        "is the broadcast address of subnet 10.88.0.0/24",
    );
}

#[test]
fn validation_overlapping_subnets_is_reported_with_line() {
    check(
        "overlapping_subnets.toml",
        8,
        10,
        "10.88.5.0/24 of network `back` overlaps 10.88.0.0/16",
    );
}

#[test]
fn validation_subnet_too_small_is_reported_with_line() {
    let d = check(
        "subnet_too_small.toml",
        4,
        10,
        "has room for 1 member, but 3 are listed",
    );
    assert!(d.help().contains("4 addresses are needed"), "{}", d.help());
    assert!(d.help().contains("/29 or shorter"), "{}", d.help());
}

#[test]
fn validation_subnet_host_bits_is_reported_with_line() {
    let d = check(
        "subnet_host_bits.toml",
        4,
        10,
        "has bits set after its /24-bit prefix",
    );
    assert!(d.help().contains("`10.88.0.0/24`"), "{}", d.help());
}

#[test]
fn validation_publish_port_twice_is_reported_with_line() {
    check(
        "publish_port_twice.toml",
        11,
        28,
        "host port 8080/tcp is published twice (first on line 6)",
    );
}

#[test]
fn validation_publish_non_member_is_reported_with_line() {
    check(
        "publish_non_member.toml",
        8,
        12,
        "`db`, which is not a member of network `front`",
    );
}

#[test]
fn validation_publish_bad_syntax_is_reported_with_line() {
    check(
        "publish_bad_syntax.toml",
        6,
        12,
        "is not of the form `HOSTPORT:MEMBER:PORT`",
    );
}

#[test]
fn validation_route_via_unreachable_is_reported_with_line() {
    // The first route's gateway is on the network's subnet, which the node has through it.
    check(
        "route_via_unreachable.toml",
        10,
        32,
        "route via 10.77.0.1 in node `web` is not inside any subnet",
    );
}

#[test]
fn validation_route_via_unreachable_json_is_reported_with_line() {
    check(
        "json_route_via_unreachable.json",
        8,
        35,
        "route via 192.168.1.1 in node `ns1`",
    );
}

#[test]
fn validation_route_without_next_hop_is_reported_with_line() {
    check(
        "route_without_next_hop.toml",
        6,
        1,
        "route has neither `via` nor `dev`",
    );
}

#[test]
fn validation_route_dev_unknown_is_reported_with_line() {
    check(
        "route_dev_unknown.toml",
        4,
        39,
        "route dev `eth7` is not an interface of node `ns1`",
    );
}

#[test]
fn validation_host_as_member_is_reported_with_line() {
    check(
        "host_as_member.toml",
        5,
        19,
        "`host` cannot be a member of network `plumb0`",
    );
}

#[test]
fn validation_endpoint_missing_colon_is_reported_with_line() {
    let d = check(
        "endpoint_missing_colon.toml",
        6,
        28,
        "link endpoint `ns1` has no `:`",
    );
    assert!(d.help().contains("`ns1:eth0`"), "{}", d.help());
}

#[test]
fn validation_self_link_is_reported_with_line() {
    check("self_link.toml", 6, 26, "connects `ns1:eth0` to itself");
}

#[test]
fn validation_link_endpoint_count_is_reported_with_line() {
    check(
        "link_endpoint_count.toml",
        6,
        13,
        "exactly two endpoints, this one has 3",
    );
}

#[test]
fn validation_stp_not_bool_is_reported_with_line() {
    check(
        "stp_not_bool.toml",
        4,
        7,
        "`bridges.br0.stp` must be a boolean (true or false), not a string",
    );
}

#[test]
fn validation_mtu_out_of_range_is_reported_with_line() {
    check("mtu_out_of_range.toml", 7, 7, "MTU 70000 is out of range");
}

#[test]
fn validation_range_reversed_is_reported_with_line() {
    check(
        "range_reversed.toml",
        3,
        8,
        "node range `c[5..1]` counts down",
    );
}

#[test]
fn validation_range_not_number_is_reported_with_line() {
    check(
        "range_not_number.toml",
        5,
        19,
        "node range `c[1..x]` has a bound that is not a number",
    );
}

#[test]
fn validation_unconnected_interface_is_reported_with_line() {
    check(
        "unconnected_interface.toml",
        6,
        23,
        "interface `eth1` of node `ns1` is declared but not connected by any link",
    );
}

#[test]
fn validation_mac_multicast_is_reported_with_line() {
    check("mac_multicast.toml", 4, 7, "is a multicast address");
}

#[test]
fn validation_sysctl_bad_key_is_reported_with_line() {
    check(
        "sysctl_bad_key.toml",
        5,
        1,
        "sysctl `net.ipv4/../../kernel/panic` must be dot-separated words",
    );
}

#[test]
fn validation_firewall_bad_rule_is_reported_with_line() {
    check(
        "firewall_bad_rule.toml",
        5,
        18,
        "`tcp/http` is not a protocol",
    );
}

#[test]
fn validation_expect_unknown_node_is_reported_with_line() {
    check(
        "expect_unknown_node.toml",
        7,
        6,
        "expect `to` names `ns2`, which is not a declared node",
    );
}

#[test]
fn validation_many_problems_are_all_reported_in_file_order() {
    let found = diagnostics("many_problems.toml");
    let positions: Vec<(usize, usize)> = found.iter().map(|d| (d.line(), d.column())).collect();
    assert_eq!(positions, [(4, 14), (5, 7), (8, 7), (12, 1)]);
    assert!(matches!(
        found[0].kind(),
        DiagnosticKind::NotCidr {
            missing_prefix: true,
            ..
        }
    ));
    assert!(matches!(
        found[1].kind(),
        DiagnosticKind::MtuOutOfRange { value: 9 }
    ));
    assert!(matches!(found[2].kind(), DiagnosticKind::WrongType { .. }));
    assert!(matches!(found[3].kind(), DiagnosticKind::UnknownKey { .. }));
}

#[test]
fn validation_missing_file_is_a_read_error() {
    let err = model::load(&fixture("no_such_file.toml")).unwrap_err();
    assert!(matches!(err, ModelError::Read { .. }), "{err}");
    assert!(err.diagnostics().is_empty());
}

#[test]
fn validation_prefix_that_cannot_start_a_name_is_refused() {
    let d = check("prefix_bad.toml", 2, 10, "prefix `lab 1/` contains");
    assert!(d.help().contains("prefix = \"lab1-\""), "{}", d.help());
}

#[test]
fn validation_host_interface_too_long_with_the_prefix_is_refused_at_its_name() {
    let d = check(
        "prefix_ifname_too_long.toml",
        4,
        11,
        "interface name `frontend-net` is 17 bytes with the lab's prefix (`lab1-frontend-net`)",
    );
    assert!(d.help().contains("15 bytes"), "{}", d.help());
}

#[test]
fn prefix_names_namespaces_and_host_interfaces_but_not_generated_ports_or_node_insides() {
    let t = model::parse_toml(
        r#"
name = "lab1"
prefix = "l1-"
[nodes.host.interfaces.up0]
addresses = ["10.9.0.1/30"]
[nodes.host]
routes = [{ to = "10.9.9.0/24", dev = "up0" }]
sysctls = { "net.ipv4.conf.up0.rp_filter" = 0 }
[nodes.r.interfaces.eth0]
addresses = ["10.9.0.2/30"]
[[links]]
endpoints = ["host:up0", "r:eth0"]
[networks.plumb0]
subnet = "10.88.0.0/24"
members = ["web"]
publish = ["8080:web:80/tcp"]
[[expect]]
from = "r"
to = "web"
proto = "icmp"
"#,
        "prefix.toml",
    )
    .unwrap();
    let names: Vec<String> = t.nodes.iter().map(|n| n.name.to_string()).collect();
    assert_eq!(names, ["l1-r", "l1-web"]);
    assert_eq!(t.host.interfaces[0].name.as_str(), "l1-up0");
    assert_eq!(t.host.routes[0].dev.as_ref().unwrap().as_str(), "l1-up0");
    assert_eq!(t.host.sysctls[0].0, "net.ipv4.conf.l1-up0.rp_filter");
    assert_eq!(t.bridges[0].name.as_str(), "l1-plumb0");
    assert_eq!(t.networks[0].name.as_str(), "l1-plumb0");
    assert_eq!(t.networks[0].members[0].as_str(), "l1-web");
    assert_eq!(t.networks[0].publish[0].member.as_str(), "l1-web");
    // Inside a namespace, names stay as written; the generated port keeps its `pl` form.
    let member_link = &t.links[1];
    assert_eq!(member_link.a.ifname.as_str(), "eth0");
    assert_eq!(member_link.a.node.to_string(), "l1-web");
    assert!(member_link.b.ifname.as_str().starts_with("pl"));
    assert_eq!(member_link.b.bridge.as_ref().unwrap().as_str(), "l1-plumb0");
    assert_eq!(t.expects[0].from.to_string(), "l1-r");
    // The file's own names still find the nodes.
    assert_eq!(t.node_named("web").unwrap().to_string(), "l1-web");
    assert_eq!(t.label(&t.node_named("web").unwrap()), "web");
    assert!(t.node_named("l1-web").is_none());
}

/// A machine whose namespaces have only the keys listed.
struct Fake {
    host: &'static [&'static str],
    ns: &'static [&'static str],
}

impl model::Machine for Fake {
    fn has_sysctl(&self, place: model::SysctlPlace, key: &str) -> bool {
        match place {
            model::SysctlPlace::Host => self.host.contains(&key),
            model::SysctlPlace::Namespace => self.ns.contains(&key),
        }
    }
}

#[test]
fn validation_sysctl_missing_where_it_is_set_is_refused_at_its_key_once_per_declaration() {
    let machine = Fake {
        host: &["net.ipv4.ip_forward", "net.ipv4.conf.default.rp_filter"],
        ns: &["net.ipv4.ip_forward", "net.ipv4.conf.default.rp_filter"],
    };
    let src = r#"name = "s"
[nodes.host]
sysctls = { "net.ipv4.ip_forward" = 1, "net.ipv4.conf.up0.rp_filter" = 0 }
[nodes.host.interfaces.up0]
addresses = ["10.0.0.1/24"]
[nodes."c[1..50]"]
sysctls = { "net.core.wmem_max" = 1, "net.ipv4.ip_forward" = 1 }
[nodes.r]
sysctls = { "net.ipv4.conf.eth0.rp_filter" = 2 }
[nodes.r.interfaces.eth0]
addresses = ["10.0.0.2/24"]
[[links]]
endpoints = ["host:up0", "r:eth0"]
"#;
    let err = model::parse_toml_for(src, "s.toml", &machine).unwrap_err();
    let found: Vec<String> = err.diagnostics().iter().map(ToString::to_string).collect();
    // One report for the range's declaration, not fifty; the interface's own key is asked as
    // `default` (the lab creates eth0), so only the key that does not exist is refused.
    assert_eq!(found.len(), 1, "{found:#?}");
    assert!(
        found[0].starts_with(
            "s.toml:7:13: sysctl `net.core.wmem_max` does not exist in the namespace of node `c1`"
        ),
        "{}",
        found[0]
    );
    assert!(found[0].contains("help: "), "{}", found[0]);
    // Loading without a machine asks nothing.
    assert!(model::parse_toml(src, "s.toml").is_ok());
}
