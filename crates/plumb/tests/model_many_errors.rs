//! Files with several errors: every error is reported, each with its own `file:line:col`, real
//! errors in file order first, and problems that only follow from them (a reference to a refused
//! declaration, an interface whose link was refused) either left out or listed after them.

use plumb::model::{self, Diagnostic, DiagnosticKind as K};

const ORIGIN: &str = "lab.toml";

fn diagnostics(src: &str) -> Vec<Diagnostic> {
    let err = model::parse_toml(src, ORIGIN).expect_err("the file has errors");
    let found = err.diagnostics().to_vec();
    // The whole error renders every diagnostic with its own position, in the same order.
    let text = err.to_string();
    let heads: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with("  help: "))
        .collect();
    assert_eq!(heads.len(), found.len(), "{text}");
    for (head, d) in heads.iter().zip(&found) {
        let prefix = format!("{ORIGIN}:{}:{}: {}", d.line(), d.column(), d.kind());
        assert_eq!(*head, prefix);
    }
    found
}

fn positions(found: &[Diagnostic]) -> Vec<(usize, usize)> {
    found.iter().map(|d| (d.line(), d.column())).collect()
}

#[test]
fn many_errors_references_to_a_refused_range_are_not_reported() {
    let src = "name = \"x\"\n[[links]]\nendpoints = [\"c1:eth0\", \"host:v1\"]\n\
               [[expect]]\nfrom = \"c2\"\nto = \"c1\"\n[nodes.\"c[1..x]\"]\n";
    let found = diagnostics(src);
    assert_eq!(positions(&found), [(7, 8)]);
    assert!(matches!(found[0].kind(), K::BadRange { .. }));
}

#[test]
fn many_errors_references_to_a_node_that_is_not_a_table_are_not_reported() {
    let src =
        "name = \"x\"\n[[links]]\nendpoints = [\"ns1:eth0\", \"host:v1\"]\n[nodes]\nns1 = 5\n";
    let found = diagnostics(src);
    assert_eq!(positions(&found), [(5, 7)]);
    assert!(matches!(found[0].kind(), K::WrongType { .. }));
}

#[test]
fn many_errors_members_of_a_refused_network_are_not_reported_as_unknown() {
    let src = "name = \"x\"\n[[expect]]\nfrom = \"web\"\nto = \"db\"\n\
               [networks.this-name-is-way-too-long]\nsubnet = \"10.88.0.0/24\"\n\
               members = [\"web\", \"db\"]\npublish = [\"8080:web:80\"]\n";
    let found = diagnostics(src);
    assert_eq!(positions(&found), [(5, 11)]);
    assert!(matches!(found[0].kind(), K::BadName(_)));
}

#[test]
fn many_errors_publish_of_a_member_in_a_refused_range_is_not_reported() {
    let src = "name = \"x\"\n[networks.front]\nsubnet = \"10.88.0.0/24\"\n\
               publish = [\"8080:w1:80\"]\nmembers = [\"w[1..z]\"]\n";
    let found = diagnostics(src);
    assert_eq!(positions(&found), [(5, 12)]);
    assert!(matches!(found[0].kind(), K::BadRange { .. }));
}

#[test]
fn many_errors_refused_subnet_comes_before_what_follows_from_it() {
    // web's route goes via the gateway of a network whose subnet is refused, and its eth0 was
    // to be the network's interface: both are listed, after the real error.
    let src =
        "name = \"x\"\n[nodes.web]\nroutes = [{ to = \"10.9.0.0/16\", via = \"10.88.0.1\" }]\n\
               [nodes.web.interfaces.eth0]\nmtu = 1400\n[networks.front]\n\
               subnet = \"10.88.0.0/33\"\nmembers = [\"web\"]\n";
    let found = diagnostics(src);
    assert_eq!(positions(&found), [(7, 10), (3, 39), (4, 23)]);
    assert!(matches!(found[0].kind(), K::NotCidr { .. }));
    assert!(matches!(found[1].kind(), K::RouteViaUnreachable { .. }));
    assert!(matches!(found[2].kind(), K::UnconnectedInterface { .. }));
}

#[test]
fn many_errors_subnet_too_small_and_overlapping_come_before_their_consequences() {
    let src =
        "name = \"x\"\n[nodes.db]\nroutes = [{ to = \"10.9.0.0/16\", via = \"10.88.1.1\" }]\n\
               [networks.a]\nsubnet = \"10.88.0.0/16\"\nmembers = [\"web\"]\n\
               [networks.b]\nsubnet = \"10.88.1.0/24\"\nmembers = [\"db\"]\n\
               [networks.c]\nsubnet = \"10.90.0.0/31\"\nmembers = [\"x1\", \"x2\", \"x3\"]\n\
               [nodes.x1.interfaces.eth0]\nmtu = 1400\n";
    let found = diagnostics(src);
    assert_eq!(positions(&found), [(8, 10), (11, 10), (3, 39), (13, 22)]);
    assert!(matches!(found[0].kind(), K::OverlappingSubnets { .. }));
    assert!(matches!(found[1].kind(), K::SubnetTooSmall { .. }));
    assert!(matches!(found[2].kind(), K::RouteViaUnreachable { .. }));
    assert!(matches!(found[3].kind(), K::UnconnectedInterface { .. }));
}

#[test]
fn many_errors_refused_link_comes_before_its_unconnected_interfaces() {
    let src = "name = \"x\"\n[nodes.host.interfaces.veth1]\naddresses = [\"10.0.0.1/24\"]\n\
               [nodes.ns1.interfaces.eth0]\naddresses = [\"10.0.0.2/24\"]\n\
               [[links]]\nendpoints = [\"host:veth1\", \"ns1:eth0\", \"ns2:eth0\"]\n\
               [nodes.ns3.interfaces.eth0]\n";
    let found = diagnostics(src);
    // ns3:eth0 is unconnected on its own account: a real error, in file order.
    assert_eq!(positions(&found), [(7, 13), (8, 23), (2, 24), (4, 23)]);
    assert!(matches!(found[0].kind(), K::EndpointCount { found: 3 }));
    assert!(found[1..]
        .iter()
        .all(|d| matches!(d.kind(), K::UnconnectedInterface { .. })));
}

#[test]
fn many_errors_unknown_endpoint_comes_before_the_other_end_left_unconnected() {
    let src = "name = \"x\"\n[nodes.host.interfaces.veth1]\naddresses = [\"10.0.0.1/24\"]\n\
               [[links]]\nendpoints = [\"host:veth1\", \"nosuch:eth0\"]\n";
    let found = diagnostics(src);
    assert_eq!(positions(&found), [(5, 28), (2, 24)]);
    assert!(matches!(found[0].kind(), K::UnknownEndpoint { .. }));
    assert!(matches!(found[1].kind(), K::UnconnectedInterface { .. }));
}

#[test]
fn many_errors_refused_address_comes_before_the_route_it_would_reach() {
    let src = "name = \"x\"\n[nodes.a]\nroutes = [{ to = \"default\", via = \"10.0.0.254\" }]\n\
               [nodes.a.interfaces.eth0]\naddresses = [\"10.0.0.1\"]\n\
               [[links]]\nendpoints = [\"a:eth0\", \"host:va\"]\n";
    let found = diagnostics(src);
    assert_eq!(positions(&found), [(5, 14), (3, 35)]);
    assert!(matches!(
        found[0].kind(),
        K::NotCidr {
            missing_prefix: true,
            ..
        }
    ));
    assert!(matches!(found[1].kind(), K::RouteViaUnreachable { .. }));
}

#[test]
fn many_errors_independent_errors_of_both_stages_are_in_file_order() {
    // A duplicate node (found while expanding) before a bad MTU and an unknown key (found while
    // reading), and a route via an unreachable gateway in a node with no other problem.
    let src = "name = \"x\"\n[nodes.\"a[1..2]\"]\n[nodes.a2]\n[nodes.c]\n\
               routes = [{ to = \"default\", via = \"10.9.9.9\" }]\n\
               [nodes.b.interfaces.eth0]\nmtu = 9\ncolour = \"red\"\n\
               [[links]]\nendpoints = [\"b:eth0\", \"host:vb\"]\n";
    let found = diagnostics(src);
    assert_eq!(positions(&found), [(3, 8), (5, 35), (7, 7), (8, 1)]);
    assert!(matches!(found[0].kind(), K::DuplicateNode { .. }));
    assert!(matches!(found[1].kind(), K::RouteViaUnreachable { .. }));
    assert!(matches!(found[2].kind(), K::MtuOutOfRange { value: 9 }));
    assert!(matches!(found[3].kind(), K::UnknownKey { .. }));
}
