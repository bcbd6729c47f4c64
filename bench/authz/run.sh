#!/usr/bin/env bash
# The broker's token endpoint (code exchange, refresh) and /register against oidc-provider doing
# the same work on the same machine, in one run: Portcullis's release build on SQLite, and
# tests/node/oidc-idp.mjs (oidc-provider, in-memory storage). One driver for both
# (bench/authz/load.mjs). See docs/benchmarks.md.
#
#   bash bench/authz/run.sh                              # 10 s per measurement, 8 workers
#   SECONDS_PER=3 CONCURRENCY=4 bash bench/authz/run.sh  # a quick look
#
# Knobs: SECONDS_PER, CONCURRENCY, BATCH (codes minted per exchange round), ROUNDS (each pair of
# measurements repeated, alternating which server goes first), BENCH_SKIP_SETUP=1,
# BENCH_SKIP_BUILD=1. Both servers listen on 127.0.0.1 only; no Envoy in front (this measures
# the authorization servers, not the gateway).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
say() { printf '[bench-authz] %s\n' "$*" >&2; }

if [ "${BENCH_SKIP_SETUP:-0}" != 1 ]; then
  bash scripts/setup.sh
fi
# shellcheck disable=SC1091
source .venv/portcullis-env
if [ "${BENCH_SKIP_BUILD:-0}" != 1 ]; then
  say "building the portcullis CLI (release)"
  cargo build -q --release -p portcullis-control-plane --bin portcullis
fi
target_dir="${CARGO_TARGET_DIR:-$root/target}"
portcullis="$target_dir/release/portcullis"
seconds="${SECONDS_PER:-10}"
concurrency="${CONCURRENCY:-8}"
batch="${BATCH:-64}"
rounds="${ROUNDS:-2}"

work="$(mktemp -d)"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT INT TERM
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

cp_port="$(free_port)"
admin="$(head -c 18 /dev/urandom | base64 | tr -d '/+=')"
password="$(head -c 18 /dev/urandom | base64 | tr -d '/+=')"
say "starting Portcullis (broker, SQLite) on 127.0.0.1:$cp_port"
(
  export PORTCULLIS_DATA_DIR="$work/data" PORTCULLIS_PUBLIC_URL="http://127.0.0.1:$cp_port" \
    PORTCULLIS_ADMIN_TOKEN="$admin" PORTCULLIS_AUTH_MODE=broker PORTCULLIS_XDS_LISTEN=off \
    MCP_ADVERTISED_SCOPES="openid profile" RUST_LOG=warn \
    PORTCULLIS_DCR_PER_MINUTE=100000000 PORTCULLIS_LOGIN_FAILURES_PER_MINUTE=100000000
  exec "$portcullis" serve --listen "127.0.0.1:$cp_port" >"$work/portcullis.log" 2>&1
) &
pids+=($!)
for _ in $(seq 1 100); do
  curl -fs "http://127.0.0.1:$cp_port/readyz" >/dev/null 2>&1 && break
  sleep 0.1
done
api() {
  curl -fsS -X "$1" "http://127.0.0.1:$cp_port$2" -H @"$work/admin.header" -H 'content-type: application/json' --data-binary @- >/dev/null
}
(umask 077 && printf 'Authorization: Bearer %s\n' "$admin" >"$work/admin.header")
printf '%s' '{"name": "bench", "path": "/bench", "proxy_pass_url": "http://127.0.0.1:9/", "append_mcp_path": true}' \
  | api POST /api/servers/register
printf '{"password": "%s", "groups": ["engineering"]}' "$password" | api PUT /api/users/alice

say "starting oidc-provider (tests/node/oidc-idp.mjs)"
(cd tests/node && exec node oidc-idp.mjs 0 --profile generic >"$work/idp.out" 2>"$work/idp.log") &
pids+=($!)
for _ in $(seq 1 100); do
  grep -q '^ready ' "$work/idp.out" 2>/dev/null && break
  sleep 0.1
done
idp_port="$(awk '/^ready /{print $2}' "$work/idp.out")"

load() { # name issuer mode options-json
  local line
  line="$(node bench/authz/load.mjs "$2" "$3" "$4")"
  printf '%s\n' "$line" | python3 -c 'import json,sys; d=json.load(sys.stdin); d["server"]=sys.argv[1]; print(json.dumps(d))' "$1" >>"$work/results.jsonl"
  say "$1 $3: $line"
}
common="\"concurrency\": $concurrency, \"seconds\": $seconds, \"batch\": $batch"
ours="{$common, \"user\": \"alice\", \"password\": \"$password\", \"resource\": \"http://127.0.0.1:$cp_port/bench/mcp\", \"scope\": \"openid\"}"
theirs="{$common, \"user\": \"alice\", \"password\": \"alice-password\", \"resource\": \"http://127.0.0.1:1/mcp\", \"scope\": \"openid offline_access\", \"prompt\": \"consent\"}"
for round in $(seq 1 "$rounds"); do
  for mode in register exchange refresh; do
    if [ $((round % 2)) = 1 ]; then
      load portcullis "http://127.0.0.1:$cp_port" "$mode" "$ours"
      load oidc-provider "http://127.0.0.1:$idp_port" "$mode" "$theirs"
    else
      load oidc-provider "http://127.0.0.1:$idp_port" "$mode" "$theirs"
      load portcullis "http://127.0.0.1:$cp_port" "$mode" "$ours"
    fi
  done
done

# Medians over the rounds, one row per (mode, server).
python3 - "$work/results.jsonl" "$concurrency" "$seconds" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print(f"\n{sys.argv[2]} workers, {sys.argv[3]} s per measurement, medians of {len(rows) // 6} rounds\n")
print("| endpoint | server | requests/s | p50 ms | p99 ms | errors |")
print("|---|---|---:|---:|---:|---:|")
names = {"register": "/register (DCR)", "exchange": "/token code exchange", "refresh": "/token refresh"}
for mode in ["register", "exchange", "refresh"]:
    for server in ["portcullis", "oidc-provider"]:
        sel = [r for r in rows if r["mode"] == mode and r["server"] == server]
        med = lambda k: statistics.median(r[k] for r in sel)
        errors = sum(r["errors"] for r in sel)
        print(f"| {names[mode]} | {server} | {med('rps'):.0f} | {med('p50_ms'):.1f} | {med('p99_ms'):.1f} | {errors} |")
        for r in sel:
            if r.get("first_error"):
                print(f"<!-- {server} {mode}: {json.dumps(r['first_error'])} -->")
PY
