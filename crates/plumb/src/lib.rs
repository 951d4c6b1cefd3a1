//! plumb: Linux container networking built from kernel primitives.
#![deny(missing_docs)]
#![deny(unsafe_code)]

pub mod model;
