//! Sandboxes and an independent oracle for plumb's kernel and end-to-end tests.
//!
//! # The sandbox
//! [`Sandbox`] is a fresh user + network + mount namespace with a private tmpfs on `/run`,
//! kept alive by a child process. Every command a test runs "inside" enters those namespaces with
//! `nsenter --target PID --user --net --mount --preserve-credentials`, so fixed names such as
//! `ns1`, `veth1` or `br0` are safe, tests run in parallel, and everything vanishes when the
//! [`Sandbox`] is dropped.
//!
//! Invariants, checked by every constructor before it returns:
//! - the holder process is in a user, network *and* mount namespace different from the test's;
//! - `/run` inside is a different filesystem from the test's `/run`.
//!
//! If any of that cannot be established the constructor **panics** with the reason. It never
//! skips, never returns early and never falls back to the real network: a test that cannot get a
//! sandbox fails loudly, always. No environment variable changes that.
//!
//! The mount namespace shares the host's filesystem except `/run`, so files written under the
//! temporary directory from [`Sandbox::write_file`] are readable inside.
//!
//! # The oracle
//! Assertions go through `ip -j` (iproute2's JSON output), run inside the sandbox: see
//! [`Sandbox::ip_json`], [`Sandbox::links`], [`Sandbox::addrs`], [`Sandbox::routes`],
//! [`Sandbox::netns_list`] and [`Sandbox::snapshot`]; sockets waiting for peers through `ss`
//! ([`Sandbox::listening`]) and the processes inside a namespace through `/proc`
//! ([`Sandbox::pids_in_netns`]). None of it uses plumb's own code, so a test that passes through
//! the oracle does not merely agree with itself.
//!
//! Requires `nsenter` and `unshare` (util-linux), `ip` and `ss` (iproute2) and `ping`
//! (iputils-ping).
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod fixture;
mod inside;
mod oracle;
mod output;
mod sandbox;

pub use fixture::TempDir;
pub use inside::in_fresh_netns;
pub use oracle::{alias_tag, line_diff, strip_volatile, PLUMB_ALIAS_PREFIX};
pub use output::describe;
pub use sandbox::Sandbox;
