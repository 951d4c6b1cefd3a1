//! plumb: Linux container networking built from kernel primitives.
#![deny(missing_docs)]
#![deny(unsafe_code)]

pub mod model;
pub mod inspect;
pub mod netlink;
pub mod sys;
pub mod netns;
pub mod plan;
pub mod apply;
pub mod lab;
