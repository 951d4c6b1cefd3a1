//! The CNI conformance suite's shared checks run against Debian's reference plugins
//! (`containernetworking-plugins`: `/usr/lib/cni/bridge` with `host-local`), so that plumb's
//! reading of the spec is checked against an independent implementation. Each check runs in
//! its own sandbox. Needs `containernetworking-plugins`, `iptables` (the reference bridge's
//! ipMasq), `python3`.

#[path = "common/cni_checks.rs"]
mod checks;
mod common;
#[path = "common/cni.rs"]
mod suite;

use std::path::Path;

use suite::{Cni, Impl};

fn with_reference(check: fn(&Cni<'_>)) {
    assert!(
        Path::new("/usr/lib/cni/bridge").exists() && Path::new("/usr/lib/cni/host-local").exists(),
        "the reference CNI plugins are missing: apt-get install -y containernetworking-plugins"
    );
    let sb = common::sandbox();
    let plumb = Path::new(env!("CARGO_BIN_EXE_plumb"));
    check(&Cni {
        sb: &sb,
        imp: Impl::Reference,
        plumb,
    });
}

#[test]
fn reference_add_builds_the_attachment() {
    with_reference(checks::add_builds_the_attachment);
}

#[test]
fn reference_second_add_errors_and_del_is_idempotent() {
    with_reference(checks::second_add_errors_and_del_is_idempotent);
}

#[test]
fn reference_del_after_netns_gone_frees_the_address() {
    with_reference(checks::del_after_netns_gone_frees_the_address);
}

#[test]
fn reference_check_follows_the_kernel() {
    with_reference(checks::check_follows_the_kernel);
}

#[test]
fn reference_ipmasq_leaves_with_the_host_address() {
    with_reference(checks::ipmasq_leaves_with_the_host_address);
}

#[test]
fn reference_concurrent_adds_get_distinct_addresses() {
    with_reference(checks::concurrent_adds_get_distinct_addresses);
}

#[test]
fn reference_environment_is_validated() {
    with_reference(checks::environment_is_validated);
}

#[test]
fn reference_port_mapping_is_reachable() {
    with_reference(checks::port_mapping_is_reachable);
}

#[test]
fn reference_ipam_ranges_and_requested_addresses() {
    with_reference(checks::ipam_ranges_and_requested_addresses);
}

#[test]
fn reference_requested_mac_is_the_container_interfaces() {
    with_reference(checks::requested_mac_is_the_container_interfaces);
}
