//! End-to-end tests: real Envoy + the Portcullis wasm filter + real MCP servers and clients.
//!
//! One test binary (one link) with a module per area. Every test starts its own processes on
//! loopback ports Envoy or the OS picks; see `portcullis_e2e` for the harness and the
//! environment it needs.

#[path = "e2e/common.rs"]
mod common;

#[path = "e2e/assistants.rs"]
mod assistants;

#[path = "e2e/api_keys.rs"]
mod api_keys;
#[path = "e2e/audit_durability.rs"]
mod audit_durability;
#[path = "e2e/authn.rs"]
mod authn;
#[path = "e2e/authz.rs"]
mod authz;
#[path = "e2e/body.rs"]
mod body;
#[path = "e2e/broker_federation.rs"]
mod broker_federation;
#[path = "e2e/broker_login.rs"]
mod broker_login;
#[path = "e2e/config.rs"]
mod config;
#[path = "e2e/demo.rs"]
mod demo;
#[path = "e2e/direct_login.rs"]
mod direct_login;
#[path = "e2e/doctor.rs"]
mod doctor;
#[path = "e2e/headers.rs"]
mod headers;
#[path = "e2e/hostile.rs"]
mod hostile;
#[path = "e2e/live.rs"]
mod live;
#[path = "e2e/smoke.rs"]
mod smoke;
#[path = "e2e/stats.rs"]
mod stats;
#[path = "e2e/sync.rs"]
mod sync;
#[path = "e2e/validate.rs"]
mod validate;
#[path = "e2e/xds.rs"]
mod xds;
