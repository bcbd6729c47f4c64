#!/usr/bin/env bash
# Runs the Portcullis demo on this machine, all on 127.0.0.1:
#   - a real MCP server (@modelcontextprotocol/server-everything) on :3001,
#   - the control plane (`portcullis serve`, SQLite under .portcullis/demo/data) on :8080 (xDS on
#     :18000): the server, its scopes and group mappings are set through its API,
#   - Envoy on :10000 (admin :9901) from envoy/bootstrap-xds.yaml: routes and clusters by xDS,
#     the policy through the sync singleton, the Portcullis filter on every request, decisions
#     shipped to the control plane's audit trail,
#   - broker mode: the control plane is the OAuth authorization server, with the built-in user
#     store (alice in group engineering, root in platform-admins; their passwords are made
#     here and printed), so any MCP client logs in for real: Claude Code, Codex, the SDKs.
# Installs what it needs first. Ctrl-C stops everything. The ports above are defaults: one
# already in use (another Envoy on 10000/9901, say) is replaced by the next free one, and
# PORTCULLIS_DEMO_{MCP,CP,XDS,ENVOY,ADMIN}_PORT pick them outright.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
say() { printf '[demo] %s\n' "$*" >&2; }

bash scripts/setup.sh
# shellcheck disable=SC1091
source .venv/portcullis-env

in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
taken=()
# demo_port NAME DEFAULT: the port from PORTCULLIS_DEMO_<NAME>_PORT (which must be free), else
# DEFAULT, else the next free one after it (said aloud), never one another demo part took.
demo_port() {
  local var="PORTCULLIS_DEMO_$1_PORT" port
  if [ -n "${!var:-}" ]; then
    port="${!var}"
    if in_use "$port"; then
      say "port $port ($var) is already in use on 127.0.0.1; stop what listens there or pick another"
      exit 1
    fi
  else
    port="$2"
    while in_use "$port" || [[ " ${taken[*]} " == *" $port "* ]]; do port=$((port + 1)); done
    [ "$port" = "$2" ] || say "port $2 is in use on 127.0.0.1 (another Envoy?): using $port instead ($var picks one)"
  fi
  taken+=("$port")
  printf -v "$3" '%s' "$port"
}
demo_port MCP 3001 mcp_port
demo_port CP 8080 cp_port
demo_port XDS 18000 xds_port
demo_port ENVOY 10000 envoy_port
demo_port ADMIN 9901 admin_port

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
# Secrets made once and kept private (mode 600): the admin and sync tokens, the demo users'
# passwords.
for secret in admin.token sync.token alice.password root.password; do
  if [ ! -f "$work/$secret" ]; then
    (umask 077 && head -c 18 /dev/urandom | base64 | tr -d '/+=' >"$work/$secret")
  fi
done
# The shipped bootstrap with this machine's sync token and the demo's ports (the file stays
# private: mode 600). The demo runs one control plane, so the cluster lists one replica: a
# second endpoint that never answers would take part of the traffic until the first health
# check, and again whenever the one replica is briefly unhealthy.
(umask 077 && sed -e "s/REPLACE_WITH_THE_SYNC_TOKEN/$(cat "$work/sync.token")/g" \
  -e '/port_value: 8081/d' \
  -e "s/port_value: 8080}/port_value: $cp_port}/; s/\"authority\": \"127.0.0.1:8080\"/\"authority\": \"127.0.0.1:$cp_port\"/" \
  -e "s/port_value: 18000}/port_value: $xds_port}/; s/port_value: 10000}/port_value: $envoy_port}/" \
  -e "s/port_value: 9901}/port_value: $admin_port}/" \
  envoy/bootstrap-xds.yaml >"$work/envoy.yaml")
for expected in "port_value: $cp_port}" "\"authority\": \"127.0.0.1:$cp_port\"" "port_value: $xds_port}" \
  "port_value: $envoy_port}" "port_value: $admin_port}"; do
  grep -qF "$expected" "$work/envoy.yaml" || { say "envoy/bootstrap-xds.yaml changed: no $expected after rendering"; exit 1; }
done
if grep -q 'port_value: 8081' "$work/envoy.yaml"; then say "could not drop the second control-plane endpoint"; exit 1; fi

pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT INT TERM

say "starting the MCP server on 127.0.0.1:$mcp_port (log: $work/mcp.log)"
(PORT=$mcp_port exec "$PORTCULLIS_NODE_DIR/node_modules/.bin/mcp-server-everything" streamableHttp >"$work/mcp.log" 2>&1) &
pids+=($!)
say "starting the control plane on 127.0.0.1:$cp_port (log: $work/portcullis.log)"
# PORTCULLIS_CIMD=off: Claude Code and Codex would log in with their metadata documents on
# claude.ai and chatgpt.com, which a machine without internet cannot fetch; with it off they
# register by DCR, which needs nothing outside (docs/broker.md, "Client ID Metadata Documents").
(
  export PORTCULLIS_DATA_DIR="$work/data" PORTCULLIS_PUBLIC_URL=http://127.0.0.1:$envoy_port \
    PORTCULLIS_ADMIN_TOKEN="$(cat "$work/admin.token")" PORTCULLIS_SYNC_TOKEN="$(cat "$work/sync.token")" \
    PORTCULLIS_XDS_LISTEN=127.0.0.1:$xds_port PORTCULLIS_AUTH_MODE=broker PORTCULLIS_CIMD=off \
    MCP_ADVERTISED_SCOPES="openid profile"
  exec "$portcullis" serve --listen "127.0.0.1:$cp_port" >"$work/portcullis.log" 2>&1
) &
pids+=($!)
say "starting Envoy on 127.0.0.1:$envoy_port (log: $work/envoy.log)"
# --use-dynamic-base-id: Envoy picks a free base id (hot-restart shared memory and domain socket),
# so the demo starts next to an Envoy already running on this machine (base id 0 by default),
# which would otherwise stop it with "unable to bind domain socket with base_id=0".
("$ENVOY_BIN" -c "$work/envoy.yaml" --concurrency 2 --use-dynamic-base-id --base-id-path "$work/envoy.base-id" \
  -l warning >"$work/envoy.log" 2>&1) &
pids+=($!)

for _ in $(seq 1 100); do
  if curl -fs "http://127.0.0.1:$admin_port/ready" >/dev/null 2>&1 && curl -fs "http://127.0.0.1:$cp_port/readyz" >/dev/null 2>&1 \
    && (exec 3<>"/dev/tcp/127.0.0.1/$mcp_port") 2>/dev/null; then
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

(umask 077 && printf 'Authorization: Bearer %s\n' "$(cat "$work/admin.token")" >"$work/admin.header")
api() { # method path [json body]; fails loudly on anything but 2xx (and 409 for register)
  local status
  # The admin token and the body (passwords) go through files and stdin, not curl's arguments
  # (which any local user can read in the process list).
  status=$(printf '%s' "${3:-}" | curl -s -o "$work/api.json" -w '%{http_code}' -X "$1" "http://127.0.0.1:$cp_port$2" \
    -H @"$work/admin.header" ${3:+-H 'content-type: application/json' --data-binary @-})
  case "$status" in
    2??) ;;
    409) [ "$2" = /api/servers/register ] || { say "$1 $2 failed ($status): $(cat "$work/api.json")"; exit 1; } ;;
    *) say "$1 $2 failed ($status): $(cat "$work/api.json")"; exit 1 ;;
  esac
}
# The MCP server (already there from an earlier run: 409, fine), then who may do what.
api POST /api/servers/register '{"name": "everything", "path": "/everything", "proxy_pass_url": "http://127.0.0.1:'"$mcp_port"'", "description": "MCP reference server (server-everything)", "tags": ["demo"]}'
api PUT /api/scopes/everything-safe '{"description": "list and call the harmless tools", "grants": [{"server": "everything", "methods": ["tools/list", "tools/call", "resources/*", "prompts/*"], "tools": ["echo", "get-sum", "get-tiny-image"]}]}'
api PUT /api/scopes/everything-admin '{"grants": [{"server": "everything", "methods": ["*"], "tools": ["*"]}]}'
api PUT /api/group-mappings/engineering '{"scopes": ["everything-safe"]}'
api PUT /api/group-mappings/platform-admins '{"scopes": ["everything-admin"]}'
api PUT /api/users/alice '{"password": "'"$(cat "$work/alice.password")"'", "groups": ["engineering"], "display_name": "Alice"}'
api PUT /api/users/root '{"password": "'"$(cat "$work/root.password")"'", "groups": ["platform-admins"], "display_name": "Root"}'

# Envoy is ready once the route and the policy have arrived (the singleton's first long-poll)
# and its health check has seen the control plane (discovery documents go through Envoy to it).
for _ in $(seq 1 100); do
  code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$envoy_port/everything/mcp" -X POST -d '{}' || true)
  if [ "$code" = 401 ] && curl -s "http://127.0.0.1:$admin_port/clusters" \
    | grep -qF "portcullis_control_plane::127.0.0.1:$cp_port::health_flags::healthy"; then
    synced=1
    break
  fi
  sleep 0.1
done
if [ -z "${synced:-}" ]; then
  say "Envoy did not get its routes and policy from the control plane (last answer: $code); logs:"
  tail -n 20 "$work/envoy.log" "$work/portcullis.log" >&2
  exit 1
fi

url="http://127.0.0.1:$envoy_port/everything/mcp"
# What the Connect dialog hands out for Claude Code and Codex.
for ide in claude-code codex; do
  api GET "/api/servers/everything/connect-config?ide=$ide"
  python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["rendered"][sys.argv[2]]["text"])' \
    "$work/api.json" "$ide" >"$work/connect-$ide.txt"
done

cat <<MSG

Portcullis demo is running. MCP server URL: $url

Log in as (broker mode, the built-in user store; passwords in $work/*.password):
  alice / $(cat "$work/alice.password")   group engineering: echo, get-sum, get-tiny-image
  root  / $(cat "$work/root.password")   group platform-admins: every tool

Connect an assistant (it opens the login page; sign in as alice):
  # Claude Code, then /mcp in a session (or: claude mcp login everything)
  $(cat "$work/connect-claude-code.txt")
  # Codex (logs in at once; or: codex mcp login everything)
  $(cat "$work/connect-codex.txt")

  # the official TypeScript SDK client, logging in through a headless browser as alice
  node tests/node/mcp-client.mjs $url '{"oauth":{"user":"alice","password":"'"\$(cat $work/alice.password)"'"},"steps":[{"op":"connect"},{"op":"callTool","name":"echo","arguments":{"message":"hi"}},{"op":"callTool","name":"get-env","arguments":{}}]}'

  # no token: 401 with the WWW-Authenticate challenge MCP clients follow
  curl -si -X POST $url -H 'content-type: application/json' -d '{}'

  # discovery, as an MCP client does it (401 challenge → metadata → authorization server)
  curl -s http://127.0.0.1:$envoy_port/.well-known/oauth-protected-resource/everything/mcp
  curl -s http://127.0.0.1:$envoy_port/.well-known/oauth-authorization-server
  target/debug/portcullis doctor $url

  # every decision, newest first; the clients that registered; the users
  curl -s "http://127.0.0.1:$cp_port/api/audit?limit=5" -H @$work/admin.header
  curl -s http://127.0.0.1:$cp_port/api/oauth-clients -H @$work/admin.header
  curl -s http://127.0.0.1:$cp_port/api/users -H @$work/admin.header

  # change who may do what: takes effect in Envoy within a second, no restart
  curl -s -X PUT http://127.0.0.1:$cp_port/api/group-mappings/engineering -H @$work/admin.header \\
    -H 'content-type: application/json' -d '{"scopes": ["everything-admin"]}'

  # the filter's and the sync service's counters
  curl -s http://127.0.0.1:$admin_port/stats | grep wasmcustom

Ctrl-C stops the demo.
MSG
wait
