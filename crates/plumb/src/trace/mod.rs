//! `plumb trace`: one probe's journey.
