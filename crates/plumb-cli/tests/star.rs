//! The star network (`examples/star.toml`): a bridge with a gateway and three members.

mod common;

use common::*;

#[test]
fn star_up_builds_bridge_members_and_routes() {
    let sb = sandbox();
    let out = sb.plumb(&["up", &example("star.toml")]);
    assert_exit(&out, 0, "plumb up star.toml");
    assert_star_built(&sb);
}

#[test]
fn star_up_members_ping_each_other_and_the_gateway() {
    let sb = sandbox();
    sb.plumb_ok(&["up", &example("star.toml")]);
    let db = sb.ipv4_addrs(Some("db"), "eth0");
    let cache = sb.ipv4_addrs(Some("cache"), "eth0");
    assert_eq!(
        (db.len(), cache.len()),
        (1, 1),
        "db {db:?}, cache {cache:?}"
    );
    let host = |cidr: &str| cidr.split('/').next().unwrap_or_default().to_string();
    sb.ping_ok(Some("web"), &host(&db[0]));
    sb.ping_ok(Some("web"), &host(&cache[0]));
    sb.ping_ok(Some("db"), "10.88.0.2");
    sb.ping_ok(Some("cache"), "10.88.0.1");
    sb.ping_ok(None, "10.88.0.4");
}

#[test]
fn star_up_twice_second_changes_nothing() {
    let sb = sandbox();
    let star = example("star.toml");
    sb.plumb_ok(&["up", &star]);
    let before = sb.settled_snapshot();
    let out = sb.plumb(&["up", &star]);
    assert_exit(&out, 0, "second plumb up");
    assert!(
        text(&out).to_lowercase().contains("up to date"),
        "second up should say the lab is up to date\n{}",
        plumb_testkit::describe(&out)
    );
    let after = sb.settled_snapshot();
    assert!(
        before == after,
        "the second up changed the kernel state\n{}",
        plumb_testkit::line_diff(&before, &after)
    );
}

#[test]
fn star_down_by_name_leaves_nothing() {
    let sb = sandbox();
    let empty = sb.snapshot();
    sb.plumb_ok(&["up", &example("star.toml")]);
    let out = sb.plumb(&["down", "star"]);
    assert_exit(&out, 0, "plumb down star");
    sb.assert_state_eventually(&empty, SETTLE, "after plumb down star");
}
