//! Control-plane API tests: every route, on SQLite and (with `PORTCULLIS_TEST_POSTGRES_URL`,
//! see `scripts/postgres.sh`) on PostgreSQL. One test binary to keep link time down.

// Tests may unwrap: a panic is the failure report (the workspace lints deny it elsewhere).
#![allow(clippy::unwrap_used)]

#[macro_use]
mod common;
mod access;
mod authorization_server;
mod bad_input;
mod client_documents;
mod connect_config;
mod contract;
mod keys;
mod metadata;
mod ops;
mod sdk;
mod servers;
mod sync;
