#!/usr/bin/env bash
# Runs every Portcullis check: formatting, lints (host and wasm32-wasip1), unit tests, and the
# end-to-end tests against real Envoy, real MCP servers and clients, and schemathesis against the
# API's OpenAPI document. Installs what it needs first.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
step() { printf '\n==> %s\n' "$*" >&2; }

step "setup"
PORTCULLIS_SETUP_POSTGRES=1 bash scripts/setup.sh
# shellcheck disable=SC1091
source .venv/portcullis-env
export ENVOY_BIN PORTCULLIS_NODE_DIR

step "cargo fmt --check"
cargo fmt --all -- --check

step "IdP set-up scripts (dry runs, no network)"
bash scripts/idp/test.sh

step "clippy (host, every crate and target)"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "clippy (wasm32-wasip1: the filter and the benchmark baselines)"
cargo clippy --locked --target wasm32-wasip1 -p portcullis-filter -p portcullis-policy -p portcullis-bench-noop -- -D warnings

step "build the filter (release, wasm32-wasip1) and the portcullis binary"
cargo build --locked --release --target wasm32-wasip1 -p portcullis-filter
# The demo test runs scripts/demo.sh, which uses the binary (nested cargo would wait on our lock).
cargo build --locked -p portcullis-control-plane --bin portcullis
export PORTCULLIS_FILTER_WASM="$root/target/wasm32-wasip1/release/portcullis_filter.wasm"
ls -l "$PORTCULLIS_FILTER_WASM" >&2

step "PostgreSQL for the control-plane tests (loopback)"
eval "$(bash scripts/postgres.sh)"
export PORTCULLIS_TEST_POSTGRES_URL
trap 'bash scripts/postgres.sh stop' EXIT

step "tests (unit, then end-to-end with real Envoy)"
cargo test --workspace --locked

step "schemathesis: the API against its OpenAPI document (a real server on SQLite)"
PORTCULLIS_BIN="$root/target/debug/portcullis" bash scripts/schemathesis.sh
