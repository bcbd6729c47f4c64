#!/usr/bin/env bash
# Policy sync and audit benchmark: how long a policy change made through the control plane's API
# takes to decide requests in Envoy (p50/p95/p99/max over many changes), and what shipping the
# audit trail costs Envoy (throughput and CPU per request, audit on vs off). Real parts only:
# `portcullis serve` (release, SQLite), Envoy from envoy/bootstrap-xds.yaml (xDS routes, the sync
# singleton, the filter in shared_snapshot mode, `--concurrency 2`), wrk. See docs/benchmarks.md,
# "Policy sync and audit".
#
#   bash bench/sync/run.sh                                   # CHANGES=200 ROUNDS=8 DURATION=5
#   CHANGES=20 ROUNDS=1 DURATION=2 WARMUP=1 bash bench/sync/run.sh   # smoke run, about a minute
#   PHASES=propagation bash bench/sync/run.sh                # only one half (or PHASES=audit)
#   REGISTRY_SERVERS="10 1000 10000" PHASES=propagation POLLERS=1 bash bench/sync/run.sh
#       # issue 9: the propagation phase once per registry size (seeded straight into SQLite),
#       # with the control plane's compile steps, the filter's load times, Envoy's RSS and
#       # policy/examples/snapshot_load (native and on V8 through Node) on the served snapshot;
#       # ends with one table over the sizes (GRANTS_PER_SERVER=10, MAPPINGS_PER_SERVER=1)
#
# Other knobs: POLLERS="1 2" (propagation series: one, then two keep-alive connections),
# GAP_MS=200 (pause between changes), POLL_INTERVAL_MS=1, CHANGE_TIMEOUT=5 (s),
# WARMUP=2 (s per configuration), CONNECTIONS=16, THREADS=1, ACCESS_LOG=1 (0 drops the shipped
# config's stdout access log), BENCH_SKIP_SETUP=1, BENCH_SKIP_BUILD=1, PORTCULLIS_BIN=path,
# FILTER_WASM=path. Everything listens on 127.0.0.1; every load run is bounded by DURATION; every
# process the benchmark starts is stopped at the end, by its own pid.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
say() { printf '[sync-bench] %s\n' "$*" >&2; }

if [ "${BENCH_SKIP_SETUP:-0}" != 1 ]; then
  bash scripts/setup.sh
fi
# shellcheck disable=SC1091
source .venv/portcullis-env
command -v wrk >/dev/null || { say "wrk is not installed (apt-get install wrk)"; exit 1; }

target_dir="${CARGO_TARGET_DIR:-$root/target}"
export BENCH_OUT="${BENCH_OUT:-$target_dir/bench}"
mkdir -p "$BENCH_OUT"

if [ "${BENCH_SKIP_BUILD:-0}" != 1 ]; then
  if [ -z "${PORTCULLIS_BIN:-}" ]; then
    say "building portcullis (release, LTO: a few minutes from clean)"
    cargo build --release -p portcullis-control-plane --bin portcullis
  fi
  if [ -z "${FILTER_WASM:-}" ]; then
    say "building the Portcullis filter (release, wasm32-wasip1)"
    cargo build --release --target wasm32-wasip1 -p portcullis-filter
  fi
  if [ -n "${REGISTRY_SERVERS:-}" ]; then
    say "building policy/examples/snapshot_load (native and wasm32-wasip1)"
    cargo build --release -p portcullis-policy --example snapshot_load
    cargo build --release --target wasm32-wasip1 -p portcullis-policy --example snapshot_load
  fi
fi
export ENVOY_BIN
export PORTCULLIS_BIN="${PORTCULLIS_BIN:-$target_dir/release/portcullis}"
export FILTER_WASM="${FILTER_WASM:-$target_dir/wasm32-wasip1/release/portcullis_filter.wasm}"

export SNAPSHOT_LOAD_BIN="${SNAPSHOT_LOAD_BIN:-$target_dir/release/examples/snapshot_load}"
export SNAPSHOT_LOAD_WASM="${SNAPSHOT_LOAD_WASM:-$target_dir/wasm32-wasip1/release/examples/snapshot_load.wasm}"

py=python3
[ -x .venv/bin/python3 ] && py=.venv/bin/python3
sizes="${REGISTRY_SERVERS:-}"
if [ "$(echo "$sizes" | wc -w)" -le 1 ]; then
  exec "$py" bench/sync/bench.py
fi
# Several registry sizes: one run each (each its own control plane and Envoy), then one table.
files=()
for n in $sizes; do
  say "registry of $n seeded servers"
  REGISTRY_SERVERS="$n" "$py" bench/sync/bench.py
  files+=("$BENCH_OUT/sync-scale-$n.json")
done
REGISTRY_SERVERS= "$py" bench/sync/bench.py --scale-table "${files[@]}" | tee "$BENCH_OUT/sync-scale.md"
