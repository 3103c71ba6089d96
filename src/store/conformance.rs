//! The store conformance suite: one set of checks every [`Store`] back end must pass.
//! `tests/store.rs` runs it on redb (and, in Postgres mode, on PostgreSQL).
