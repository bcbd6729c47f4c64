#!/usr/bin/env bash
# Holds the control plane to its OpenAPI document (/api/openapi.json): starts a real
# `portcullis serve` (SQLite in a temporary directory, admin and sync tokens, loopback only),
# registers the resources the document's examples name, and runs schemathesis's examples and
# coverage phases against it with a fixed seed. Fails on any 5xx, an undocumented status, a
# response that does not match its schema, or a wrong content type. About a minute.
#
# Installs schemathesis into .venv/schemathesis (PyPI) on first use. The binary is
# target/debug/portcullis, built unless PORTCULLIS_BIN names one.
#
#   SCHEMATHESIS_SEED=N   another seed (default 9)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
say() { printf '[schemathesis] %s\n' "$*" >&2; }

# 1. schemathesis, pinned, in its own venv.
version="4.32.5"
venv=.venv/schemathesis
if ! "$venv/bin/st" --version 2>/dev/null | grep -qF "$version"; then
  say "installing schemathesis==$version into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check "schemathesis==$version"
fi

# 2. The binary.
bin="${PORTCULLIS_BIN:-}"
if [ -z "$bin" ]; then
  cargo build --locked -q -p portcullis-control-plane --bin portcullis
  bin="$root/target/debug/portcullis"
fi

# 3. A server of our own on a free loopback port, with a stand-in IdP (a static discovery
#    document served on loopback; the signing keys from `portcullis dev keygen`).
work="$(mktemp -d)"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_for() {
  for _ in $(seq 100); do
    curl -fsS "$1" >/dev/null 2>&1 && return 0
    kill -0 "$2" 2>/dev/null || break
    sleep 0.1
  done
  cat "$work"/*.log >&2 || true
  say "$1 did not answer"
  exit 1
}
idp_port="$(free_port)"
issuer="http://127.0.0.1:$idp_port/realms/test"
mkdir -p "$work/idp/realms/test/.well-known"
cat >"$work/idp/realms/test/.well-known/openid-configuration" <<JSON
{"issuer": "$issuer", "authorization_endpoint": "$issuer/auth", "token_endpoint": "$issuer/token",
 "jwks_uri": "$issuer/certs", "registration_endpoint": "$issuer/register",
 "response_types_supported": ["code"], "code_challenge_methods_supported": ["S256"]}
JSON
python3 -m http.server --bind 127.0.0.1 --directory "$work/idp" "$idp_port" >"$work/idp.log" 2>&1 &
pids+=($!)
wait_for "$issuer/.well-known/openid-configuration" "${pids[-1]}"
"$bin" dev keygen --alg EdDSA --kid schemathesis --out "$work/keys" >/dev/null 2>&1
port="$(free_port)"
admin="$(python3 -c 'import secrets; print(secrets.token_hex(24))')"
sync="$(python3 -c 'import secrets; print(secrets.token_hex(24))')"
base="http://127.0.0.1:$port"
PORTCULLIS_DATA_DIR="$work/data" PORTCULLIS_ADMIN_TOKEN="$admin" PORTCULLIS_SYNC_TOKEN="$sync" \
  PORTCULLIS_PUBLIC_URL=https://gw.example.test PORTCULLIS_XDS_LISTEN=off RUST_LOG=warn \
  PORTCULLIS_IDP_ISSUER="$issuer" PORTCULLIS_IDP_JWKS_FILE="$work/keys/jwks.json" \
  PORTCULLIS_API_AUDIENCE=portcullis-schemathesis \
  "$bin" serve --listen "127.0.0.1:$port" >"$work/serve.log" 2>&1 &
pid=$!
pids+=("$pid")
wait_for "$base/readyz" "$pid"

# 4. What the document's examples name (path parameters github, team/docs, readers, …).
api() {
  local status
  status="$(curl -sS -o "$work/seed.json" -w '%{http_code}' -X "$1" "$base$2" \
    -H "Authorization: Bearer $admin" -H 'Content-Type: application/json' -d "$3")"
  case "$status" in 2??) ;; *) say "seeding $1 $2 failed ($status): $(cat "$work/seed.json")"; exit 1 ;; esac
}
api POST /api/servers/register '{"name": "GitHub", "path": "/github", "proxy_pass_url": "http://127.0.0.1:9/", "tags": ["code"]}'
api POST /api/servers/register '{"name": "Docs", "path": "/team/docs", "proxy_pass_url": "http://127.0.0.1:9/mcp"}'
api PUT /api/scopes/readers '{"description": "read", "grants": [{"server": "GitHub", "methods": ["tools/list"], "tools": ["*"]}]}'
api PUT /api/group-mappings/engineering '{"scopes": ["readers"]}'
api POST /api/keys '{"name": "ci", "scopes": ["readers"]}'

# 5. schemathesis: the API with the admin token, the sync routes with the sync token.
run() {
  local token="$1"
  shift
  # From the temporary directory: schemathesis keeps a cache in its working directory.
  (cd "$work" && "$root/$venv/bin/st" run "$base/api/openapi.json" \
    --phases examples,coverage \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,response_headers_conformance \
    --seed "${SCHEMATHESIS_SEED:-9}" \
    --workers 1 \
    --request-timeout 10 \
    --max-failures 20 \
    --no-color \
    --warnings off \
    --generation-database none \
    -H "Authorization: Bearer $token" \
    "$@")
}
start=$SECONDS
status=0
run "$admin" --exclude-path-regex '^/v1/' || status=$?
run "$sync" --include-path-regex '^/v1/' || status=$?
if ! kill -0 "$pid" 2>/dev/null; then
  say "portcullis serve died during the run"
  status=1
fi
if grep -q 'panicked' "$work/serve.log"; then
  grep -B2 -A10 'panicked' "$work/serve.log" >&2
  say "portcullis serve panicked"
  status=1
fi
say "done in $((SECONDS - start)) s (status $status)"
exit "$status"
