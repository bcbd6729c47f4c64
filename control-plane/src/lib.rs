//! Portcullis control plane: the `portcullis` binary.
//!
//! Layers, top to bottom; a module imports only from layers below it (and `config`):
//!
//! ```text
//!  cli, serve          commands: parse flags, wire the parts, run
//!  http, xds           edges: the HTTP API + discovery documents (axum), the xDS server (tonic)
//!  registry  sync  audit  idp  connect  discovery  auth      domains (no axum)
//!  storage, outbound, strict_json   the database and migrations; the HTTP client; JSON reading
//!  config              settings, read once from the environment
//! ```
//!
//! - [`cli`]: the command line (`serve`, `doctor`, `devtools`).
//! - [`serve`]: `portcullis serve`, starting every part and stopping it cleanly.
//! - [`http`]: router, shared state, caller extraction, the one error type, metrics, handlers.
//! - [`xds`]: Envoy's routes and clusters by ADS.
//! - [`registry`]: MCP servers, scopes, group mappings, API keys, their SQL, the server URL
//!   rules (RFC 8707), and the registry compiled into a policy snapshot.
//! - [`sync`]: versioned snapshots published to the filters (long-poll) and the xDS server.
//! - [`audit`]: the filters' decisions, validated, stored and kept for a retention period.
//! - [`idp`]: the IdP's discovery document and signing keys.
//! - [`authz`]: the OAuth 2.1 authorization server's rules (broker mode), not wired to HTTP yet.
//! - [`auth`]: who an API caller is (admin token, IdP token + group mappings, sync token).
//! - [`connect`]: connect configs for each coding assistant.
//! - [`discovery`]: the protected-resource metadata we publish.
//! - [`storage`]: the SQLite/PostgreSQL connection and migrations.
//! - [`outbound`]: the one HTTP client builder and the rules for what we fetch.
//! - [`strict_json`]: structs read only from JSON objects (serde also takes arrays).
//! - [`config`]: every setting.
//! - [`devtools`]: demo/test signing keys and tokens (not the authorization server).
//!
//! `portcullis doctor` is a client-side check of a deployment, in its own crate
//! (`portcullis-doctor`, `doctor/`); [`cli`] runs it.

#![forbid(unsafe_code)]

pub mod audit;
pub mod auth;
pub mod authz;
pub mod cli;
pub mod config;
pub mod connect;
pub mod devtools;
pub mod discovery;
pub mod http;
pub mod idp;
pub mod outbound;
pub mod registry;
pub mod serve;
pub mod storage;
pub mod strict_json;
pub mod sync;
pub mod xds;
