//! Integration tests of kahu-tsdb: restart and replay, WAL damage, crashes of real processes,
//! model checks against a `BTreeMap` (contents, and select/seek/label_names/label_values under random
//! matchers and ranges), and concurrent appends and queries.

// Test code may fail loudly: a panic is how a test reports.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing, missing_docs)]

mod admin;
mod blocks;
mod common;
mod concurrency;
mod crash;
mod db;
mod fixture;
mod full_disk;
mod model;
mod query_model;
mod wal_damage;
