//! The netlink layer against a real kernel, in a fresh namespace of its own (no privilege
//! needed; see `plumb_testkit::in_fresh_netns`): pipelining, lost acknowledgements, dumps.

use ipnet::IpNet;
use plumb::model::MacAddr;
use plumb::netlink::link::{self, BridgeSpec, LinkKind, Target};
use plumb::netlink::{addr, NlSocket};
use plumb_testkit::in_fresh_netns;

/// Creates a bridge `br0` and returns its index.
fn bridge(sock: &mut NlSocket) -> u32 {
    let (msg, flags) = link::new_bridge(&BridgeSpec {
        name: "br0",
        netns_fd: None,
        mtu: Some(1500),
        mac: MacAddr([2, 0, 0, 0, 0, 1]),
        stp: false,
        group: 0,
    });
    sock.request(msg, flags)
        .expect("ip link add br0 type bridge");
    link::dump(sock)
        .expect("ip link show")
        .into_iter()
        .find(|l| l.name == "br0" && l.kind == LinkKind::Bridge)
        .expect("br0 exists")
        .index
}

fn addresses(n: u32) -> Vec<IpNet> {
    (0..n)
        .map(|i| {
            format!("10.50.{}.{}/32", i / 250, i % 250 + 1)
                .parse()
                .unwrap()
        })
        .collect()
}

fn ours(sock: &mut NlSocket, index: u32) -> usize {
    addr::dump(sock)
        .expect("ip addr show")
        .iter()
        .filter(|a| a.index == index && a.addr.to_string().starts_with("10.50."))
        .count()
}

#[test]
fn netlink_acks_lost_to_enobufs_are_replayed_and_every_result_is_right() {
    in_fresh_netns(
        "netlink_acks_lost_to_enobufs_are_replayed_and_every_result_is_right",
        || {
            let mut sock = NlSocket::open().expect("a netlink socket");
            let br0 = bridge(&mut sock);
            // The smallest receive buffer the kernel allows holds only a few acks: a pipelined
            // batch of them overflows it, and the kernel drops acks (ENOBUFS).
            sock.set_receive_buffer(0).expect("SO_RCVBUF");
            assert!(sock.receive_buffer().expect("SO_RCVBUF") < 4096);
            let addrs = addresses(1000);
            let mut reqs: Vec<_> = addrs.iter().map(|a| addr::add(br0, a)).collect();
            // One request the kernel refuses (no interface 9999), in the middle of the batch.
            reqs.insert(500, addr::add(9999, &"10.51.0.1/32".parse().unwrap()));
            let results = sock.execute(reqs);
            assert_eq!(results.len(), 1001);
            assert!(
                sock.replayed() > 0,
                "no ack was lost: the test did not exercise the replay"
            );
            for (i, r) in results.iter().enumerate() {
                if i == 500 {
                    let e = r.as_ref().expect_err("the refused request stays refused");
                    assert_eq!(e.errno(), Some(libc::ENODEV), "{e}");
                } else {
                    assert!(r.is_ok(), "request {i}: {r:?}");
                }
            }
            assert_eq!(ours(&mut sock, br0), 1000, "every address was added");
            // Deletions through the same small buffer: all done, none left.
            let before = sock.replayed();
            let dels = addrs.iter().map(|a| addr::delete(br0, a)).collect();
            let results = sock.execute(dels);
            assert!(sock.replayed() > before);
            assert!(results.iter().all(Result::is_ok), "{results:?}");
            assert_eq!(ours(&mut sock, br0), 0);
        },
    );
}

#[test]
fn netlink_pipelined_batch_reports_each_refusal_at_its_place() {
    in_fresh_netns(
        "netlink_pipelined_batch_reports_each_refusal_at_its_place",
        || {
            let mut sock = NlSocket::open().expect("a netlink socket");
            let br0 = bridge(&mut sock);
            let a: IpNet = "10.60.0.1/24".parse().unwrap();
            let reqs = vec![
                addr::add(br0, &a),
                // The same address again: EEXIST, with the kernel's reason.
                addr::add(br0, &a),
                link::set(
                    Target::Name("nosuch0"),
                    &link::LinkChange {
                        up: Some(true),
                        ..Default::default()
                    },
                )
                .remove(0),
                addr::delete(br0, &a),
            ];
            let r = sock.execute(reqs);
            assert!(r[0].is_ok(), "{:?}", r[0]);
            assert_eq!(r[1].as_ref().unwrap_err().errno(), Some(libc::EEXIST));
            assert_eq!(r[2].as_ref().unwrap_err().errno(), Some(libc::ENODEV));
            assert!(r[3].is_ok(), "{:?}", r[3]);
            assert_eq!(sock.replayed(), 0);
        },
    );
}

/// A converge deletes what it parked by index, so that it never deletes another interface that
/// took the name. But a parked interface can vanish on its own before the commit (its veth
/// peer's namespace was deleted by hand, which the kernel finishes asynchronously), and the
/// kernel may then give its index to an interface the run just made. The delete must notice
/// that the index now names another interface and leave it alone.
#[test]
fn a_delete_by_index_leaves_an_interface_that_took_the_index_alone() {
    use plumb::apply::{self, KernelBackend};
    use plumb::inspect::Snapshot;
    use plumb::model::names::LabName;
    use plumb::model::NodeRef;
    use plumb::netns::Registry;
    use plumb::plan::{Plan, Step};

    in_fresh_netns(
        "a_delete_by_index_leaves_an_interface_that_took_the_index_alone",
        || {
            let mut sock = NlSocket::open().expect("netlink socket");
            let index = bridge(&mut sock);
            let lab = LabName::new("t").unwrap();
            let mut backend =
                KernelBackend::new(&lab, Registry::default(), &Snapshot::default()).unwrap();
            // The plan saw `plp0` at br0's index; br0 must survive.
            let plan = Plan {
                steps: vec![Step::DeleteLink {
                    node: NodeRef::Host,
                    name: "plp0".into(),
                    index: Some(index),
                }],
                conflicts: Vec::new(),
            };
            let failures = apply::run_teardown(&plan, &mut backend);
            assert!(failures.is_empty(), "{failures:?}");
            let names: Vec<String> = link::dump(&mut sock)
                .unwrap()
                .into_iter()
                .map(|l| l.name)
                .collect();
            assert!(names.contains(&"br0".to_string()), "{names:?}");
            // With the name it had in the plan, the same delete does delete it.
            let plan = Plan {
                steps: vec![Step::DeleteLink {
                    node: NodeRef::Host,
                    name: "br0".into(),
                    index: Some(index),
                }],
                conflicts: Vec::new(),
            };
            let failures = apply::run_teardown(&plan, &mut backend);
            assert!(failures.is_empty(), "{failures:?}");
            let names: Vec<String> = link::dump(&mut sock)
                .unwrap()
                .into_iter()
                .map(|l| l.name)
                .collect();
            assert!(!names.contains(&"br0".to_string()), "{names:?}");
        },
    );
}
