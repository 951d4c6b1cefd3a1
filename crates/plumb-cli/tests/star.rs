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
    assert_second_up_changes_nothing(&sb, &star, "star");
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
