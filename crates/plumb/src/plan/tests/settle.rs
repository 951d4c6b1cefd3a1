//! Stable member addresses: what `settle` keeps, what it gives, and that a lab converged with
//! settled addresses plans nothing more.

use std::borrow::Cow;

use super::*;
use crate::plan::settle;

/// The addresses of `member`'s `eth0` as the simulated kernel has it, without the IPv6
/// link-local one the kernel gives an interface of its own.
fn kernel_addr(k: &Kernel, member: &str) -> Vec<String> {
    let st = k.state(&node(member)).expect("member namespace");
    let l = st.link("eth0").expect("eth0");
    st.addrs_of(l.index)
        .filter(|a| !crate::plan::desired::is_kernel_address(a))
        .map(|a| a.to_string())
        .collect()
}

fn star(members: &str) -> String {
    edit(STAR, r#"["web", "db", "cache"]"#, members)
}

#[test]
fn fresh_lab_keeps_the_files_own_addresses_and_borrows() {
    let t = topo(STAR);
    let s = settle(&t, &host_only());
    assert!(matches!(s, Cow::Borrowed(_)));
    assert_eq!(
        t.networks[0].subnets[0].addresses,
        [ip("10.88.0.2"), ip("10.88.0.3"), ip("10.88.0.4")]
    );
}

#[test]
fn removing_a_member_renumbers_nobody_and_a_new_member_takes_the_free_address() {
    let (_, k) = converge(STAR, &star(r#"["web", "cache", "api"]"#));
    assert_eq!(kernel_addr(&k, "web"), ["10.88.0.2/24"]);
    assert_eq!(kernel_addr(&k, "cache"), ["10.88.0.4/24"]);
    assert_eq!(kernel_addr(&k, "api"), ["10.88.0.3/24"]);
    // The file's own order would have given cache .3: settling is what kept .4.
    let t = topo(&star(r#"["web", "cache", "api"]"#));
    assert_eq!(t.networks[0].subnets[0].addresses[1], ip("10.88.0.3"));
    let s = settle(&t, &k.snap);
    assert_eq!(
        s.networks[0].subnets[0].addresses,
        [ip("10.88.0.2"), ip("10.88.0.4"), ip("10.88.0.3")]
    );
}

#[test]
fn every_edit_of_the_members_keeps_the_remaining_ones_in_place() {
    let mut k = Kernel::host_only();
    k.up(&topo(STAR));
    let steps: [&str; 4] = [
        r#"["web", "cache"]"#,
        r#"["web", "cache", "api", "db"]"#,
        r#"["db", "api"]"#,
        r#"["x", "db", "y", "api", "web"]"#,
    ];
    let mut before: std::collections::HashMap<String, String> = [
        ("web", "10.88.0.2/24"),
        ("db", "10.88.0.3/24"),
        ("cache", "10.88.0.4/24"),
    ]
    .into_iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    for members in steps {
        let t = topo(&star(members));
        k.up(&t);
        let again = diff(&settle(&t, &k.snap), &k.snap);
        assert!(
            again.is_empty(),
            "{members}: not converged:\n{}",
            show(&again)
        );
        let mut now = std::collections::HashMap::new();
        for m in &t.networks[0].members {
            let a = kernel_addr(&k, m.as_str());
            assert_eq!(a.len(), 1, "{m}: {a:?}");
            if let Some(old) = before.get(m.as_str()) {
                assert_eq!(&a[0], old, "{m} was renumbered by {members}");
            }
            now.insert(m.to_string(), a[0].clone());
        }
        let distinct: std::collections::HashSet<_> = now.values().collect();
        assert_eq!(distinct.len(), now.len(), "{members}: {now:?}");
        before = now;
    }
}

#[test]
fn a_member_gives_up_an_address_the_file_now_writes_or_makes_the_gateway() {
    let (_, k) = converge(STAR, STAR);
    // The gateway moves onto db's address: db must move, the others stay.
    let t = topo(&edit(
        STAR,
        r#"subnet = "10.88.0.0/24""#,
        r#"subnet = "10.88.0.0/24"
gateway = "10.88.0.3""#,
    ));
    let s = settle(&t, &k.snap);
    let a = &s.networks[0].subnets[0].addresses;
    assert_eq!(a[0], ip("10.88.0.2"));
    assert_eq!(a[2], ip("10.88.0.4"));
    // The lowest free address: the old gateway's, which the file no longer writes.
    assert_eq!(a[1], ip("10.88.0.1"));
    // The member's interface address follows its settled address.
    let db = s.node(&node("db")).unwrap();
    assert_eq!(db.interfaces[0].addresses, [IpNet::new(a[1], 24).unwrap()]);
}

#[test]
fn a_namespace_of_another_owner_keeps_nothing() {
    let (_, mut k) = converge(STAR, STAR);
    // Someone else's namespace named cache, with cache's old address: not the lab's memory.
    let st = k.state_mut(&node("cache")).unwrap();
    let lo = st
        .links
        .iter_mut()
        .find(|l| l.kind == LinkKind::Loopback)
        .unwrap();
    lo.alias = None;
    let t = topo(&star(r#"["web", "cache"]"#));
    let s = settle(&t, &k.snap);
    assert_eq!(
        s.networks[0].subnets[0].addresses,
        [ip("10.88.0.2"), ip("10.88.0.3")]
    );
}

/// The star with an IPv6 subnet next to its IPv4 one.
fn dual(members: &str) -> String {
    edit(
        &star(members),
        r#"subnet = "10.88.0.0/24""#,
        r#"subnet = ["10.88.0.0/24", "fd00:88::/64"]"#,
    )
}

#[test]
fn dual_stack_removing_a_member_renumbers_nobody_in_either_family() {
    let all = r#"["web", "db", "cache"]"#;
    let (_, k) = converge(&dual(all), &dual(r#"["web", "cache", "api"]"#));
    assert_eq!(kernel_addr(&k, "web"), ["10.88.0.2/24", "fd00:88::2/64"]);
    assert_eq!(kernel_addr(&k, "cache"), ["10.88.0.4/24", "fd00:88::4/64"]);
    // The new member takes the address db left, in each family.
    assert_eq!(kernel_addr(&k, "api"), ["10.88.0.3/24", "fd00:88::3/64"]);
    let t = topo(&dual(r#"["web", "cache", "api"]"#));
    let s = settle(&t, &k.snap);
    assert_eq!(
        s.networks[0].subnets[1].addresses,
        [ip("fd00:88::2"), ip("fd00:88::4"), ip("fd00:88::3")]
    );
}

#[test]
fn dual_stack_families_settle_independently() {
    // An IPv4 lab gains an IPv6 subnet and a new member order: the IPv4 addresses the kernel
    // has are kept, the IPv6 ones (none yet) are the file's own, in the new order.
    let (_, k) = converge(STAR, &dual(r#"["cache", "web", "db"]"#));
    assert_eq!(kernel_addr(&k, "cache"), ["10.88.0.4/24", "fd00:88::2/64"]);
    assert_eq!(kernel_addr(&k, "web"), ["10.88.0.2/24", "fd00:88::3/64"]);
    assert_eq!(kernel_addr(&k, "db"), ["10.88.0.3/24", "fd00:88::4/64"]);
}

#[test]
fn dual_stack_a_gateway_moving_onto_a_members_ipv6_address_moves_only_that_address() {
    let all = r#"["web", "db", "cache"]"#;
    let (_, k) = converge(&dual(all), &dual(all));
    let t = topo(&edit(
        &dual(all),
        r#"members = ["web""#,
        r#"gateway = ["fd00:88::3"]
members = ["web""#,
    ));
    let s = settle(&t, &k.snap);
    let net = &s.networks[0];
    assert_eq!(
        net.subnets[0].addresses,
        [ip("10.88.0.2"), ip("10.88.0.3"), ip("10.88.0.4")],
        "the IPv4 addresses stay"
    );
    // db gives up fd00:88::3 for the lowest free one: the old gateway's.
    assert_eq!(
        net.subnets[1].addresses,
        [ip("fd00:88::2"), ip("fd00:88::1"), ip("fd00:88::4")]
    );
    let db = s.node(&node("db")).unwrap();
    assert_eq!(
        db.interfaces[0].addresses,
        [net_of("10.88.0.3/24"), net_of("fd00:88::1/64")]
    );
    let mut k = k;
    k.up(&t);
    let again = diff(&settle(&t, &k.snap), &k.snap);
    assert!(again.is_empty(), "not converged:\n{}", show(&again));
    assert_eq!(kernel_addr(&k, "db"), ["10.88.0.3/24", "fd00:88::1/64"]);
}

fn net_of(s: &str) -> IpNet {
    s.parse().unwrap()
}
