//! Probe tests: resolution of targets, waves, verdicts (pure parts).
use super::*;

#[test]
fn verdict_reached_only_for_answers() {
    let rtt = Duration::from_micros(200);
    assert!(Verdict::Reply { rtt }.reached());
    assert!(Verdict::Connected { rtt }.reached());
    assert!(Verdict::Echoed { rtt }.reached());
    for v in [
        Verdict::Timeout { waited: rtt },
        Verdict::Refused,
        Verdict::PortUnreachable,
        Verdict::NoRoute,
        Verdict::HostUnreachable,
        Verdict::Filtered,
        Verdict::IcmpError {
            v6: false,
            kind: 3,
            code: 1,
        },
    ] {
        assert!(!v.reached(), "{v}");
    }
}

#[test]
fn verdict_display_reads_as_a_detail() {
    assert_eq!(
        Verdict::Reply {
            rtt: Duration::from_micros(210)
        }
        .to_string(),
        "reply in 0.210 ms"
    );
    for (rtt, shown) in [
        (Duration::from_micros(42), "reply in 0.042 ms"),
        (Duration::from_nanos(999_400), "reply in 0.999 ms"),
        (Duration::from_micros(1_250), "reply in 1.25 ms"),
        (Duration::from_micros(12_400), "reply in 12 ms"),
    ] {
        assert_eq!(Verdict::Reply { rtt }.to_string(), shown);
    }
    assert_eq!(Verdict::NoRoute.to_string(), "no route");
    assert_eq!(Verdict::Refused.to_string(), "connection refused");
    assert_eq!(
        Verdict::Timeout {
            waited: Duration::from_secs(2)
        }
        .to_string(),
        "timeout (2.0 s)"
    );
}

#[test]
fn verdict_from_send_error_maps_path_errors() {
    let e = |n| io::Error::from_raw_os_error(n);
    assert_eq!(
        Verdict::from_send_error(&e(libc::ENETUNREACH)),
        Some(Verdict::NoRoute)
    );
    assert_eq!(
        Verdict::from_send_error(&e(libc::ECONNREFUSED)),
        Some(Verdict::Refused)
    );
    assert_eq!(
        Verdict::from_send_error(&e(libc::EPERM)),
        Some(Verdict::Filtered)
    );
    assert_eq!(Verdict::from_send_error(&e(libc::EBADF)), None);
}

#[test]
fn service_label_matches_the_file_syntax() {
    assert_eq!(service_label(Service::Icmp), "icmp");
    assert_eq!(service_label(Service::Tcp(8080)), "tcp/8080");
    assert_eq!(service_label(Service::Udp(53)), "udp/53");
}

fn expect(to: &str, service: Service) -> (Expect, Resolved) {
    let node = NodeRef::Ns(crate::model::names::NsName::new(to).unwrap());
    let e = Expect {
        from: NodeRef::Host,
        to: Target::Node(node.clone()),
        service,
        reach: true,
    };
    let r = Resolved {
        addr: "10.0.0.2".parse().unwrap(),
        node: Some(node),
    };
    (e, r)
}

#[test]
fn waves_never_share_a_responder_port() {
    let (e, r): (Vec<_>, Vec<_>) = [
        expect("a", Service::Tcp(80)),
        expect("a", Service::Tcp(80)),
        expect("a", Service::Udp(80)),
        expect("b", Service::Tcp(80)),
        expect("a", Service::Icmp),
        expect("a", Service::Icmp),
        expect("a", Service::Tcp(80)),
    ]
    .into_iter()
    .unzip();
    assert_eq!(waves(&e, &r), vec![vec![0, 2, 3, 4, 5], vec![1], vec![6]]);
}

#[test]
fn waves_hold_at_most_max_parallel() {
    let (e, r): (Vec<_>, Vec<_>) = (0..MAX_PARALLEL * 2 + 1)
        .map(|_| expect("a", Service::Icmp))
        .unzip();
    let w = waves(&e, &r);
    assert_eq!(
        w.iter().map(Vec::len).collect::<Vec<_>>(),
        vec![MAX_PARALLEL, MAX_PARALLEL, 1]
    );
    assert_eq!(w.concat(), (0..e.len()).collect::<Vec<_>>());
}

#[test]
fn random_u64_differs_between_calls() {
    assert_ne!(random_u64(), random_u64());
}
