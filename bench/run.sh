#!/usr/bin/env bash
# Portcullis benchmarks: Envoy with no filter, no-op wasm filters, the Portcullis filter and
# Envoy's native jwt_authn, under the same load. See docs/benchmarks.md.
#
#   bash bench/run.sh                      # full run: ROUNDS=12 DURATION=5 (about 15 minutes)
#   ROUNDS=2 DURATION=1 bash bench/run.sh  # quick smoke run (a couple of minutes)
#   CONFIGS="1 2 3 8 9" bash bench/run.sh  # a subset (12-16: POST tools/call)
#
# Other knobs: WARMUP=2 (s per config), STARTS=3 (start-time samples), CONNECTIONS=16,
# THREADS=1, BENCH_SKIP_SETUP=1, BENCH_SKIP_BUILD=1, FILTER_WASM=path (use a prebuilt module).
# Everything listens on 127.0.0.1; every load run is bounded by DURATION.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
say() { printf '[bench] %s\n' "$*" >&2; }

if [ "${BENCH_SKIP_SETUP:-0}" != 1 ]; then
  bash scripts/setup.sh
fi
# shellcheck disable=SC1091
source .venv/portcullis-env

target_dir="${CARGO_TARGET_DIR:-$root/target}"
out="$target_dir/bench"
mkdir -p "$out"
wasm_dir="$target_dir/wasm32-wasip1/release"

if [ "${BENCH_SKIP_BUILD:-0}" != 1 ]; then
  say "building the no-op modules (release, wasm32-wasip1)"
  cargo build -q --release --target wasm32-wasip1 -p portcullis-bench-noop
  cp "$wasm_dir/portcullis_bench_noop.wasm" "$out/noop.wasm"
  cargo build -q --release --target wasm32-wasip1 -p portcullis-bench-noop --features read-auth
  cp "$wasm_dir/portcullis_bench_noop.wasm" "$out/noop-read-auth.wasm"
  cargo build -q --release --target wasm32-wasip1 -p portcullis-bench-noop --features mimic
  cp "$wasm_dir/portcullis_bench_noop.wasm" "$out/noop-mimic.wasm"
  cargo build -q --release --target wasm32-wasip1 -p portcullis-bench-noop --features mimic-map
  cp "$wasm_dir/portcullis_bench_noop.wasm" "$out/noop-mimic-map.wasm"
  cargo build -q --release --target wasm32-wasip1 -p portcullis-bench-noop --features read-body
  cp "$wasm_dir/portcullis_bench_noop.wasm" "$out/noop-read-body.wasm"
  cargo build -q --release --target wasm32-wasip1 -p portcullis-bench-noop --features read-body,mimic-map
  cp "$wasm_dir/portcullis_bench_noop.wasm" "$out/noop-map-read-body.wasm"
  cargo build -q --release --target wasm32-wasip1 -p portcullis-bench-noop --features read-body,mimic-map,parse-body
  cp "$wasm_dir/portcullis_bench_noop.wasm" "$out/noop-map-parse-body.wasm"

  if [ -z "${FILTER_WASM:-}" ]; then
    rm -f "$out/portcullis_filter.wasm"
    if [ -f filter/Cargo.toml ]; then
      say "building the Portcullis filter (release, wasm32-wasip1)"
      if cargo build -q --release --target wasm32-wasip1 -p portcullis-filter; then
        cp "$wasm_dir/portcullis_filter.wasm" "$out/portcullis_filter.wasm"
      else
        say "the Portcullis filter does not build: its configurations will be skipped"
      fi
    else
      say "no filter/ crate: its configurations will be skipped"
    fi
  fi

  say "building the portcullis CLI (dev keys and tokens)"
  cargo build -q -p portcullis-control-plane --bin portcullis
fi

export ENVOY_BIN
export PORTCULLIS_BIN="$target_dir/debug/portcullis"
export NOOP_WASM="${NOOP_WASM:-$out/noop.wasm}"
export NOOP_READ_AUTH_WASM="${NOOP_READ_AUTH_WASM:-$out/noop-read-auth.wasm}"
export NOOP_MIMIC_WASM="${NOOP_MIMIC_WASM:-$out/noop-mimic.wasm}"
export NOOP_MIMIC_MAP_WASM="${NOOP_MIMIC_MAP_WASM:-$out/noop-mimic-map.wasm}"
export NOOP_READ_BODY_WASM="${NOOP_READ_BODY_WASM:-$out/noop-read-body.wasm}"
export NOOP_MAP_READ_BODY_WASM="${NOOP_MAP_READ_BODY_WASM:-$out/noop-map-read-body.wasm}"
export NOOP_MAP_PARSE_BODY_WASM="${NOOP_MAP_PARSE_BODY_WASM:-$out/noop-map-parse-body.wasm}"
export FILTER_WASM="${FILTER_WASM:-$out/portcullis_filter.wasm}"
export BENCH_OUT="$out"

py=python3
[ -x .venv/bin/python3 ] && py=.venv/bin/python3
exec "$py" bench/bench.py
