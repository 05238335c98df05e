//! Acceptance tests of `sitebackup master` (issue 14): a real
//! `master serve` on loopback, the rig's Garage as provider storage, and
//! independent checks with `aws s3api`, `sqlite3` and Python's
//! `cryptography` (the reference Fernet implementation).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../common/mod.rs"]
mod common;

mod bad_input;
mod crypto;
mod lifecycle;
mod node_api;
mod reconcile;
mod serve;
mod support;
