//! Portcullis end-to-end test harness: starts the real parts (Envoy with the Portcullis wasm
//! filter, `mcp-server-everything`, an echo upstream of our own, the TypeScript SDK's MCP client)
//! on 127.0.0.1 and gives tests typed handles to them. Every process is killed on drop; every
//! test gets its own directory (see [`TestDir`]) with the configs and logs, kept when it fails.
//!
//! Environment (all optional when `bash scripts/setup.sh` has run; missing parts fail the tests
//! with a message saying what to run):
//! - `ENVOY_BIN` (else read from `.venv/portcullis-env`)
//! - `PORTCULLIS_FILTER_WASM` (else `target/wasm32-wasip1/release/portcullis_filter.wasm`)
//! - `PORTCULLIS_NODE_DIR` (else `tests/node`), `NODE_BIN` (else `node` on `PATH`)
//! - `openssl` on `PATH` (the certificates of [`documents::DocumentHost`])
//! - `PORTCULLIS_E2E_TMP` (where test directories go), `PORTCULLIS_E2E_KEEP=1` (keep them)
//! - `PORTCULLIS_E2E_ENVOY_LOG_LEVEL` (Envoy's `-l`, default `info`; `debug` shows every
//!   filter decision and stream event)

pub mod control_plane;
pub mod documents;
pub mod eating_proxy;
pub mod envoy;
pub mod gateway;
pub mod h2;
pub mod http;
pub mod login;
pub mod mcp;
pub mod oidc;
pub mod paths;
pub mod snapshot;
pub mod sync_stand_in;
pub mod upstream;
pub mod util;

pub use envoy::{Envoy, EnvoyConfig, EnvoyError};
pub use h2::{H2Error, H2Request};
pub use http::{challenge_param, parse_bearer_challenge, Request, Response};
pub use mcp::{ClientPlan, ClientRun, McpServer};
pub use snapshot::SnapshotBuilder;
pub use upstream::{EchoUpstream, RecordedRequest};
pub use util::TestDir;
