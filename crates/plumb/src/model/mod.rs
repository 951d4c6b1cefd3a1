//! The topology file: TOML (or JSON) as written -> validated, expanded [`Topology`].
//!
//! This stage never touches the kernel. Everything a user can get wrong in a file is found here,
//! with the line and column, before any object exists.

pub mod names;
mod types;

pub use types::*;
