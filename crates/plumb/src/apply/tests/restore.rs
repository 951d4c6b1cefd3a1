//! A failed run restores the lab: real plans (builds and converges) run against the planner's
//! simulated kernel, which refuses one build step at a time; after the rollback, the kernel's
//! state must equal the state before the run, object for object.

use ipnet::IpNet;

use crate::apply::{run, Backend, Options, StepError};
use crate::inspect::Snapshot;
use crate::plan::tests::kernel::{normalized, Kernel};
use crate::plan::tests::{edit, show, topo, ROUTED, SEED, STAR};
use crate::plan::{diff, Phase, Step};

/// The state to compare: canonical order, and without IPv6 link-local addresses (the kernel
/// derives them anew when an interface comes back up).
fn comparable(snap: &Snapshot) -> Snapshot {
    let mut s = normalized(snap);
    let strip = |st: &mut crate::inspect::NsState| {
        st.addrs
            .retain(|a| !matches!(a.addr, IpNet::V6(v) if v.addr().segments()[0] == 0xfe80));
    };
    strip(&mut s.host);
    for ns in s.namespaces.values_mut() {
        if let Ok(st) = &mut ns.state {
            strip(st);
        }
    }
    s
}

/// Builds `before` (if any), then for every build step of the plan to `after`, runs the plan
/// with that step refused and checks that the kernel is as it was. Returns the number of
/// refusal points checked.
fn every_refusal_restores(before: Option<&str>, after: &str) -> usize {
    let mut base = Kernel::host_only();
    if let Some(b) = before {
        base.up(&topo(b));
    }
    let t = topo(after);
    let plan = diff(&t, &base.snap);
    assert!(plan.conflicts.is_empty(), "{}", show(&plan));
    let build = plan
        .steps
        .iter()
        .filter(|s| s.phase() == Phase::Build)
        .count();
    assert!(build > 0, "nothing to build:\n{}", show(&plan));
    for n in 1..=build {
        let mut k = base.clone();
        k.lab = Some(t.name.clone());
        k.refuse = vec![n];
        let r = run(
            &plan,
            &mut k,
            Options {
                progress: &mut |_, _| {},
                journal: None,
            },
        );
        let e = r.expect_err("a refused step fails the run");
        assert!(e.restored(), "refusing step {n}: {e}");
        assert_eq!(
            e.first().map(|f| &f.step),
            Some(&plan.steps[n - 1]),
            "the error names the refused step"
        );
        assert_eq!(
            comparable(&k.snap),
            comparable(&base.snap),
            "refusing step {n} `{}` did not restore the state; plan:\n{}",
            plan.steps[n - 1],
            show(&plan)
        );
    }
    // And with nothing refused, the run completes and converges.
    let mut k = base.clone();
    k.lab = Some(t.name.clone());
    run(
        &plan,
        &mut k,
        Options {
            progress: &mut |_, _| {},
            journal: None,
        },
    )
    .expect("the plan runs");
    assert!(diff(&t, &k.snap).is_empty());
    build
}

#[test]
fn restore_after_refusal_at_every_step_of_a_fresh_build() {
    for src in [SEED, STAR, ROUTED] {
        every_refusal_restores(None, src);
    }
}

#[test]
fn restore_after_refusal_at_every_step_of_a_converge_that_parks_an_ipv6_end_with_routes() {
    let after = edit(
        ROUTED,
        r#"endpoints = ["host:r1up", "r1:up0"]"#,
        r#"endpoints = ["host:r1up2", "r1:up0"]"#,
    );
    let after = edit(
        &after,
        "[nodes.host.interfaces.r1up]",
        "[nodes.host.interfaces.r1up2]",
    );
    let plan = diff(&topo(&after), &{
        let mut k = Kernel::host_only();
        k.up(&topo(ROUTED));
        k.snap
    });
    let parked = plan.steps.iter().find_map(|s| match s {
        Step::ParkLink {
            name,
            restore_addrs,
            restore_routes,
            ..
        } if name == "up0" => Some((restore_addrs.len(), restore_routes.len())),
        _ => None,
    });
    assert_eq!(
        parked,
        Some((1, 2)),
        "up0 keeps fd00:10::2 and two routes:\n{}",
        show(&plan)
    );
    assert!(every_refusal_restores(Some(ROUTED), &after) >= 6);
}

#[test]
fn restore_after_refusal_at_every_step_of_in_place_changes() {
    let after = edit(
        ROUTED,
        "[nodes.h1]\nroutes = [{ to = \"default\", via = \"10.20.0.1\" }]",
        "[nodes.h1]\nroutes = [{ to = \"default\", via = \"10.20.0.12\" }]",
    );
    let after = edit(
        &after,
        r#""net.ipv4.ip_forward" = 1"#,
        r#""net.ipv4.ip_forward" = 0"#,
    );
    let after = edit(
        &after,
        "mtu = 1400\n\n[nodes.h1",
        "mtu = 1380\nstp = true\n\n[nodes.h1",
    );
    let after = edit(&after, "02:00:00:00:00:11", "02:00:00:00:00:12");
    every_refusal_restores(Some(ROUTED), &after);
}

#[test]
fn restore_after_refusal_at_every_step_of_a_converge_with_many_edits() {
    let before = r#"name = "edit"
[networks.lan]
subnet = "10.30.0.0/24"
members = ["a", "b", "c"]
[nodes.a.firewall]
ingress = "deny"
allow = ["icmp"]
"#;
    let after = r#"name = "edit"
[networks.lan]
subnet = "10.30.0.0/24"
members = ["a", "b", "d", "e"]
mtu = 1400
[nodes.a.firewall]
ingress = "deny"
allow = ["icmp", "tcp/22"]
[nodes.b.interfaces.lo]
addresses = ["10.255.0.2/32"]
"#;
    every_refusal_restores(Some(before), after);
}

#[test]
fn restore_after_refusal_at_every_step_of_a_moved_endpoint() {
    let after = edit(
        SEED,
        r#"endpoints = ["ns1:veth-ns2", "ns2:veth-ns1"]"#,
        r#"endpoints = ["ns1:veth-ns2", "ns3:veth-ns1"]"#,
    );
    let after = edit(
        &after,
        "[nodes.ns2.interfaces.veth-ns1]",
        "[nodes.ns3.interfaces.veth-ns1]",
    );
    every_refusal_restores(Some(SEED), &after);
}

/// The simulator as an `apply` backend: steps whose number is in `refuse` fail with EPERM
/// without effect (a kernel refusal), every other step is applied.
impl Backend for Kernel {
    fn execute(
        &mut self,
        batch: &[Step],
        _progress: &mut dyn FnMut(usize),
    ) -> Vec<Result<(), StepError>> {
        let lab = self
            .lab
            .clone()
            .expect("Kernel::lab must be set to use it as a backend");
        // After a refusal, the rest of a batch is not attempted (a step later in a batch may
        // need the refused one, as a veth needs its namespace).
        let mut refused = false;
        batch
            .iter()
            .map(|s| {
                self.executed += 1;
                if refused {
                    return Err(StepError::Netlink(crate::netlink::NetlinkError::kernel(
                        libc::ECANCELED,
                        None,
                    )));
                }
                if self.refuse.contains(&self.executed) {
                    refused = true;
                    return Err(StepError::Netlink(crate::netlink::NetlinkError::kernel(
                        libc::EPERM,
                        Some("refused by the test".into()),
                    )));
                }
                let gone = self.gone.len();
                self.step(&lab, s);
                if self.gone.len() > gone {
                    return Err(StepError::Netlink(crate::netlink::NetlinkError::kernel(
                        libc::ENOENT,
                        None,
                    )));
                }
                Ok(())
            })
            .collect()
    }
}
