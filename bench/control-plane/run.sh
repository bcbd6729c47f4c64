#!/usr/bin/env bash
# Control-plane read benchmark: requests/s, p50/p99 and server CPU per request of the discovery
# documents and connect configs `portcullis serve` answers, on SQLite. See docs/benchmarks.md,
# "Control plane: metadata and connect-config reads (SQLite)".
#
#   bash bench/control-plane/run.sh                      # ROUNDS=5 DURATION=10 (about 5 minutes
#                                                         # after the build)
#   ROUNDS=5 DURATION=5 bash bench/control-plane/run.sh  # what docs/benchmarks.md reports
#   ROUNDS=1 DURATION=1 WARMUP=0 bash bench/control-plane/run.sh   # smoke run
#
# Other knobs: WARMUP=2 (s per endpoint before round 1), CONNECTIONS=16, THREADS=1, SERVERS=20
# (registered servers), ENDPOINTS="a b c d e f" (a subset), BENCH_SKIP_BUILD=1,
# PORTCULLIS_BIN=path (a prebuilt release binary), RUST_LOG (default info, as in production).
# Everything listens on 127.0.0.1; every load run is bounded by DURATION; every process the
# benchmark starts is stopped at the end, by its own pid.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
say() { printf '[cp-bench] %s\n' "$*" >&2; }

command -v wrk >/dev/null || { say "wrk is not installed (apt-get install wrk)"; exit 1; }

target_dir="${CARGO_TARGET_DIR:-$root/target}"
export BENCH_OUT="${BENCH_OUT:-$target_dir/bench}"
mkdir -p "$BENCH_OUT"

if [ "${BENCH_SKIP_BUILD:-0}" != 1 ] && [ -z "${PORTCULLIS_BIN:-}" ]; then
  say "building portcullis (release, LTO: a few minutes from clean)"
  cargo build --release -p portcullis-control-plane --bin portcullis
fi
export PORTCULLIS_BIN="${PORTCULLIS_BIN:-$target_dir/release/portcullis}"

py=python3
[ -x .venv/bin/python3 ] && py=.venv/bin/python3
exec "$py" bench/control-plane/bench.py
