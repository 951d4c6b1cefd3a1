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
fn refusal_ipv6_nat_and_publish_are_no_longer_refused() {
    let src = "name = \"x\"\n[networks.six]\nsubnet = \"fd00:1::/64\"\nmembers = [\"a\"]\n\
               nat = true\npublish = [\"8080:a:80\"]\n[networks.four]\nsubnet = \"10.1.0.0/24\"\n\
               members = [\"b\"]\nnat = true\npublish = [\"8081:b:80\"]\n";
    let t = model::parse_toml(src, ORIGIN).unwrap();
    assert_eq!(t.networks.len(), 2);
    assert!(t.networks.iter().all(|n| n.nat && n.publish.len() == 1));
}

const DUPLICATE_HELP: &str = "give each node its own address";

#[test]
fn refusal_same_written_address_on_two_nodes_is_refused_at_the_second() {
    let src = "name = \"x\"\n[nodes.a.interfaces.eth0]\naddresses = [\"10.0.0.1/24\"]\n\
               [nodes.b.interfaces.eth0]\naddresses = [\"10.0.0.1/24\"]\n\
               [[links]]\nendpoints = [\"a:eth0\", \"b:eth0\"]\n";
    let d = refused(
        src,
        5,
        14,
        "address 10.0.0.1 of `b:eth0` is already the address of `a:eth0` (line 3)",
    );
    assert!(d.help().starts_with(DUPLICATE_HELP), "{}", d.help());
}

#[test]
fn refusal_written_address_taken_by_a_network_member_is_refused_at_the_member() {
    let src = "name = \"x\"\n[nodes.r.interfaces.eth1]\naddresses = [\"10.1.0.3/24\"]\n\
               [[links]]\nendpoints = [\"lan\", \"r:eth1\"]\n[networks.lan]\n\
               subnet = \"10.1.0.0/24\"\nmembers = [\"web\", \"db\"]\n";
    refused(
        src,
        8,
        19,
        "address 10.1.0.3 of `db:eth0` (assigned by network `lan`) is already the address of \
         `r:eth1` (line 3)",
    );
}

#[test]
fn refusal_written_address_equal_to_a_gateway_is_refused_at_the_address() {
    let src = "name = \"x\"\n[networks.lan]\nsubnet = \"10.2.0.0/24\"\ngateway = \"10.2.0.9\"\n\
               members = [\"web\"]\n[nodes.web.interfaces.eth1]\n\
               addresses = [\"10.2.0.9/24\"]\n[[links]]\nendpoints = [\"web:eth1\", \"lan\"]\n";
    refused(
        src,
        7,
        14,
        "address 10.2.0.9 of `web:eth1` is already the address of `host:lan` (the gateway of \
         network `lan`, line 4)",
    );
}

#[test]
fn refusal_address_under_a_range_is_refused_once() {
    let src = "name = \"x\"\n[nodes.\"c[1..3]\".interfaces.eth0]\naddresses = [\"10.0.0.5/24\"]\n\
               [bridges.br0]\n[[links]]\nendpoints = [\"br0\", \"c1:eth0\"]\n\
               [[links]]\nendpoints = [\"br0\", \"c2:eth0\"]\n\
               [[links]]\nendpoints = [\"br0\", \"c3:eth0\"]\n";
    let d = refused(
        src,
        3,
        14,
        "address 10.0.0.5 of `c2:eth0` is already the address of `c1:eth0` (line 3)",
    );
    assert!(d.help().contains("`[networks.*]`"), "{}", d.help());
}

#[test]
fn refusal_same_address_twice_on_one_interface_is_refused_at_the_second() {
    // The same address with another prefix length is still the same address.
    let src = "name = \"x\"\n[nodes.a.interfaces.eth0]\n\
               addresses = [\"10.0.0.1/24\", \"fd00::1/64\", \"10.0.0.1/16\"]\n\
               [[links]]\nendpoints = [\"a:eth0\", \"host:va\"]\n";
    let d = refused(
        src,
        3,
        43,
        "address 10.0.0.1 is given to `a:eth0` twice: it already has it (line 3)",
    );
    assert!(d.help().contains("keep one"), "{}", d.help());
}

#[test]
fn refusal_written_address_equal_to_the_assigned_one_is_refused() {
    let src = "name = \"x\"\n[networks.lan]\nsubnet = \"10.1.0.0/24\"\nmembers = [\"web\"]\n\
               [nodes.web.interfaces.eth0]\naddresses = [\"10.1.0.2/24\"]\n";
    refused(
        src,
        6,
        14,
        "address 10.1.0.2 is given to `web:eth0` twice: it already has it (assigned by network \
         `lan`, line 4)",
    );
}

#[test]
fn refusal_link_local_and_same_node_addresses_may_repeat() {
    // fe80::1 on two links, and one node with one address on two of its interfaces: accepted.
    let src =
        "name = \"x\"\n[nodes.a.interfaces.eth0]\naddresses = [\"fe80::1/64\", \"10.0.0.1/24\"]\n\
               [nodes.a.interfaces.eth1]\naddresses = [\"10.0.0.1/24\"]\n\
               [nodes.b.interfaces.eth0]\naddresses = [\"fe80::1/64\"]\n\
               [[links]]\nendpoints = [\"a:eth0\", \"host:va\"]\n\
               [[links]]\nendpoints = [\"a:eth1\", \"b:eth0\"]\n";
    model::parse_toml(src, ORIGIN).unwrap();
}

fn network_of(members: &str) -> String {
    format!("name = \"x\"\n[networks.big]\nsubnet = \"10.0.0.0/16\"\n  members = [\"{members}\"]\n")
}

#[test]
fn refusal_network_of_1024_members_is_refused_at_the_members_key() {
    let d = refused(
        &network_of("c[1..1024]"),
        4,
        3,
        "network `big` has 1024 members, but a Linux bridge takes at most 1023 ports (the kernel \
         refuses the 1024th with EXFULL)",
    );
    assert!(d.help().contains("several networks"), "{}", d.help());
}

#[test]
fn refusal_network_of_1023_members_is_accepted() {
    let t = model::parse_toml(&network_of("c[1..1023]"), ORIGIN).unwrap();
    assert_eq!(t.networks[0].members.len(), 1023);
}

#[test]
fn refusal_network_members_and_links_over_1023_ports_are_refused() {
    let mut src = "name = \"x\"\n[networks.big]\nsubnet = \"10.0.0.0/16\"\n\
                   members = [\"c[1..1000]\"]\n[nodes.\"r[0..23]\"]\n"
        .to_owned();
    for i in 0..24 {
        src += &format!("[[links]]\nendpoints = [\"big\", \"r{i}:eth1\"]\n");
    }
    refused(
        &src,
        4,
        1,
        "bridge `big` would have 1024 ports (1000 network members and 24 links), but a Linux \
         bridge takes at most 1023 (the kernel refuses the 1024th with EXFULL)",
    );
}

#[test]
fn refusal_bridge_1024th_link_port_is_refused_at_its_endpoint() {
    let mut src = "name = \"x\"\n[bridges.br0]\n[nodes.\"r[0..1023]\"]\n".to_owned();
    for i in 0..1024 {
        src += &format!("[[links]]\nendpoints = [\"br0\", \"r{i}:eth1\"]\n");
    }
    // Link i has its endpoints on line 5 + 2i: the 1024th link is i = 1023.
    refused(
        &src,
        5 + 2 * 1023,
        14,
        "bridge `br0` would have 1024 ports, but a Linux bridge takes at most 1023 (the kernel \
         refuses the 1024th with EXFULL)",
    );
}
