#!/usr/bin/env bash
# Runs the Portcullis demo on this machine, all on 127.0.0.1:
#   - a real MCP server (@modelcontextprotocol/server-everything) on :3001,
#   - the control plane (`portcullis serve`, SQLite under .portcullis/demo/data) on :8080 (xDS on
#     :18000): the server, its scopes and group mappings are set through its API,
#   - Envoy on :10000 (admin :9901) from envoy/bootstrap-xds.yaml: routes and clusters by xDS,
#     the policy through the sync singleton, the Portcullis filter on every request, decisions
#     shipped to the control plane's audit trail,
#   - demo tokens signed by a key generated here (the control plane's login comes later).
# Installs what it needs first. Ctrl-C stops everything.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
say() { printf '[demo] %s\n' "$*" >&2; }

bash scripts/setup.sh
# shellcheck disable=SC1091
source .venv/portcullis-env

for port in 3001 8080 18000 10000 9901; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    say "port $port is already in use on 127.0.0.1; stop what listens there first"
    exit 1
  fi
done

if [ "${PORTCULLIS_DEMO_SKIP_BUILD:-0}" != 1 ]; then
  say "building the filter (release, wasm32-wasip1) and the portcullis CLI"
  cargo build -q --release --target wasm32-wasip1 -p portcullis-filter
  cargo build -q -p portcullis-control-plane --bin portcullis
fi
portcullis="$root/target/debug/portcullis"

# Its state (SQLite database, keys, tokens, logs) lives here; PORTCULLIS_DEMO_DIR moves it (the
# demo test uses a fresh directory so a demo you ran before cannot change what it sees).
work="${PORTCULLIS_DEMO_DIR:-$root/.portcullis/demo}"
mkdir -p "$work"
if [ ! -f "$work/keys/signing-key.pem" ]; then
  "$portcullis" dev keygen --alg RS256 --kid portcullis-demo --out "$work/keys" >&2
fi

if [ ! -f "$work/admin.token" ]; then
  (umask 077 && head -c 24 /dev/urandom | base64 | tr -d '/+=' >"$work/admin.token")
fi
if [ ! -f "$work/sync.token" ]; then
  (umask 077 && head -c 24 /dev/urandom | base64 | tr -d '/+=' >"$work/sync.token")
fi
# The shipped bootstrap with this machine's sync token (the file stays private: mode 600).
(umask 077 && sed "s/REPLACE_WITH_THE_SYNC_TOKEN/$(cat "$work/sync.token")/g" envoy/bootstrap-xds.yaml >"$work/envoy.yaml")

pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT INT TERM

say "starting the MCP server on 127.0.0.1:3001 (log: $work/mcp.log)"
(PORT=3001 exec "$PORTCULLIS_NODE_DIR/node_modules/.bin/mcp-server-everything" streamableHttp >"$work/mcp.log" 2>&1) &
pids+=($!)
say "starting the control plane on 127.0.0.1:8080 (log: $work/portcullis.log)"
(
  export PORTCULLIS_DATA_DIR="$work/data" PORTCULLIS_PUBLIC_URL=http://127.0.0.1:10000 \
    PORTCULLIS_ADMIN_TOKEN="$(cat "$work/admin.token")" PORTCULLIS_SYNC_TOKEN="$(cat "$work/sync.token")" \
    PORTCULLIS_XDS_LISTEN=127.0.0.1:18000 PORTCULLIS_AUTH_MODE=direct \
    PORTCULLIS_IDP_ISSUER=http://127.0.0.1:10000/demo-issuer PORTCULLIS_IDP_JWKS_FILE="$work/keys/jwks.json" \
    PORTCULLIS_API_AUDIENCE=portcullis-demo-api MCP_ADVERTISED_SCOPES="openid profile"
  exec "$portcullis" serve --listen 127.0.0.1:8080 >"$work/portcullis.log" 2>&1
) &
pids+=($!)
say "starting Envoy on 127.0.0.1:10000 (log: $work/envoy.log)"
# --use-dynamic-base-id: Envoy picks a free base id (hot-restart shared memory and domain socket),
# so the demo starts next to an Envoy already running on this machine (base id 0 by default),
# which would otherwise stop it with "unable to bind domain socket with base_id=0".
("$ENVOY_BIN" -c "$work/envoy.yaml" --concurrency 2 --use-dynamic-base-id --base-id-path "$work/envoy.base-id" \
  -l warning >"$work/envoy.log" 2>&1) &
pids+=($!)

for _ in $(seq 1 100); do
  if curl -fs http://127.0.0.1:9901/ready >/dev/null 2>&1 && curl -fs http://127.0.0.1:8080/readyz >/dev/null 2>&1 \
    && (exec 3<>/dev/tcp/127.0.0.1/3001) 2>/dev/null; then
    ready=1
    break
  fi
  sleep 0.2
done
if [ -z "${ready:-}" ]; then
  say "Envoy, the control plane or the MCP server did not start; last lines of the logs:"
  tail -n 20 "$work/envoy.log" "$work/portcullis.log" "$work/mcp.log" >&2
  exit 1
fi

api() { # method path [json body]; fails loudly on anything but 2xx (and 409 for register)
  local status
  status=$(curl -s -o "$work/api.json" -w '%{http_code}' -X "$1" "http://127.0.0.1:8080$2" \
    -H "Authorization: Bearer $(cat "$work/admin.token")" ${3:+-H 'content-type: application/json' -d "$3"})
  case "$status" in
    2??) ;;
    409) [ "$2" = /api/servers/register ] || { say "$1 $2 failed ($status): $(cat "$work/api.json")"; exit 1; } ;;
    *) say "$1 $2 failed ($status): $(cat "$work/api.json")"; exit 1 ;;
  esac
}
# The MCP server (already there from an earlier run: 409, fine), then who may do what.
api POST /api/servers/register '{"name": "everything", "path": "/everything", "proxy_pass_url": "http://127.0.0.1:3001", "description": "MCP reference server (server-everything)", "tags": ["demo"]}'
api PUT /api/scopes/everything-safe '{"description": "list and call the harmless tools", "grants": [{"server": "everything", "methods": ["tools/list", "tools/call", "resources/*", "prompts/*"], "tools": ["echo", "get-sum", "get-tiny-image"]}]}'
api PUT /api/scopes/everything-admin '{"grants": [{"server": "everything", "methods": ["*"], "tools": ["*"]}]}'
api PUT /api/group-mappings/engineering '{"scopes": ["everything-safe"]}'
api PUT /api/group-mappings/platform-admins '{"scopes": ["everything-admin"]}'

# Envoy is ready once the route and the policy have arrived (the singleton's first long-poll).
for _ in $(seq 1 100); do
  code=$(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:10000/everything/mcp -X POST -d '{}' || true)
  if [ "$code" = 401 ]; then synced=1; break; fi
  sleep 0.1
done
if [ -z "${synced:-}" ]; then
  say "Envoy did not get its routes and policy from the control plane (last answer: $code); logs:"
  tail -n 20 "$work/envoy.log" "$work/portcullis.log" >&2
  exit 1
fi

url="http://127.0.0.1:10000/everything/mcp"
token() {
  "$portcullis" dev token --key "$work/keys/signing-key.pem" --kid portcullis-demo \
    --iss http://127.0.0.1:10000/demo-issuer --aud "$url" --ttl 28800 "$@"
}
alice=$(token --sub alice --groups engineering)
root_token=$(token --sub root --name root --groups platform-admins)
echo "$alice" >"$work/alice.token"
echo "$root_token" >"$work/root.token"

cat <<MSG

Portcullis demo is running. MCP server URL: $url

The demo signs its own tokens (the login through an authorization server comes with the broker).
Tokens (8 hours; also in $work/*.token):
  alice, group engineering (echo, get-sum, get-tiny-image):  \$(cat $work/alice.token)
  root,  group platform-admins (every tool):                 \$(cat $work/root.token)

Try it:
  # no token: 401 with the WWW-Authenticate challenge MCP clients follow
  curl -si -X POST $url -H 'content-type: application/json' -d '{}'

  # a real MCP client (official TypeScript SDK): list tools, call echo, then a tool alice lacks
  node tests/node/mcp-client.mjs $url '{"headers":{"Authorization":"Bearer '"\$(cat $work/alice.token)"'"},"steps":[{"op":"connect"},{"op":"listTools"},{"op":"callTool","name":"echo","arguments":{"message":"hi"}},{"op":"callTool","name":"get-env","arguments":{}}]}'

  # Claude Code
  claude mcp add --transport http everything $url --header "Authorization: Bearer \$(cat $work/alice.token)"

  # discovery, as an MCP client does it (401 challenge → metadata → authorization server)
  curl -s http://127.0.0.1:10000/.well-known/oauth-protected-resource/everything/mcp
  target/debug/portcullis doctor $url

  # what the Connect dialog shows for Claude Code (admin token in $work/admin.token)
  curl -s "http://127.0.0.1:8080/api/servers/everything/connect-config?ide=claude-code" -H "Authorization: Bearer \$(cat $work/admin.token)"

  # every decision, newest first (who, which tool, allowed or why not, which policy version)
  curl -s "http://127.0.0.1:8080/api/audit?limit=5" -H "Authorization: Bearer \$(cat $work/admin.token)"

  # change who may do what: takes effect in Envoy within a second, no restart
  curl -s -X PUT http://127.0.0.1:8080/api/group-mappings/engineering -H "Authorization: Bearer \$(cat $work/admin.token)" \\
    -H 'content-type: application/json' -d '{"scopes": ["everything-admin"]}'

  # the filter's and the sync service's counters
  curl -s http://127.0.0.1:9901/stats | grep wasmcustom

Ctrl-C stops the demo.
MSG
wait
