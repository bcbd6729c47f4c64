#!/usr/bin/env bash
# Audit through control-plane outages (docs/benchmarks.md, "Audit through control-plane
# outages"): real Envoy (--concurrency 2) with the sync singleton, two `portcullis serve`
# (release) on one PostgreSQL, paced load of RATE decisions/s; for each outage of OUTAGES
# seconds both control planes are killed and restarted, and the trail is watched until it
# holds every decision. Prints one `BENCH {json}` line per outage: events lost, recovery time,
# drain rate, buffer size and Envoy's memory at the buffer's peak.
#
#   bash bench/audit/run.sh                      # OUTAGES="5 30 60" RATE=2000
#   OUTAGES=5 bash bench/audit/run.sh            # one short outage
#   CP_PROFILE=debug bash bench/audit/run.sh     # the debug control plane (no release build)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
# shellcheck disable=SC1091
source .venv/portcullis-env
nice -n 10 cargo build --release --target wasm32-wasip1 -p portcullis-filter
profile="${CP_PROFILE:-release}"
if [ "$profile" = release ]; then
  nice -n 10 cargo build --release -p portcullis-control-plane --bin portcullis
else
  nice -n 10 cargo build -p portcullis-control-plane --bin portcullis
fi
eval "$(bash scripts/postgres.sh)"
export PORTCULLIS_TEST_POSTGRES_URL
export PORTCULLIS_E2E_CP_BIN="$root/target/$profile/portcullis"
cargo test -p portcullis-e2e --test e2e audit_durability::bench_audit_outages -- --ignored --nocapture --test-threads 1 2>&1 \
  | grep -oE 'BENCH .*|panicked.*|test result.*'
