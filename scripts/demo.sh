#!/usr/bin/env bash
# Runs the Portcullis demo on this machine, all on 127.0.0.1:
#   - a real MCP server (@modelcontextprotocol/server-everything) on :3001,
#   - the control plane (`portcullis serve`, SQLite under .portcullis/demo/data) on :8080, with the
#     server registered through its API and serving the OAuth discovery documents,
#   - Envoy with the Portcullis filter on :10000 (admin :9901), from envoy/demo.yaml,
#   - demo tokens signed by a key generated here (the control plane's login comes later).
# Installs what it needs first. Ctrl-C stops everything.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
say() { printf '[demo] %s\n' "$*" >&2; }

bash scripts/setup.sh
# shellcheck disable=SC1091
source .venv/portcullis-env

for port in 3001 8080 10000 9901; do
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

work="$root/.portcullis/demo"
mkdir -p "$work"
if [ ! -f "$work/keys/signing-key.pem" ]; then
  "$portcullis" dev keygen --alg RS256 --kid portcullis-demo --out "$work/keys" >&2
fi

# The shipped config trusts a placeholder key; put this machine's demo key in its place.
"$root/.venv/bin/python" - "$root/envoy/demo.yaml" "$work/keys/jwks.json" "$work/envoy.yaml" <<'PY'
import json, sys
template, jwks_path, out = sys.argv[1:]
jwks = json.load(open(jwks_path))
lines = open(template).read().split("\n")
for i, line in enumerate(lines):
    stripped = line.strip()
    if stripped.startswith("value: '{\"snapshot\""):
        indent = line[: len(line) - len(line.lstrip())]
        config = json.loads(stripped[len("value: '"):-1])
        config["snapshot"]["issuers"][0]["jwks"] = jwks
        lines[i] = indent + "value: '" + json.dumps(config, separators=(",", ":")) + "'"
        break
else:
    sys.exit("envoy/demo.yaml: no snapshot line found")
open(out, "w").write("\n".join(lines))
PY

pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT INT TERM

say "starting the MCP server on 127.0.0.1:3001 (log: $work/mcp.log)"
(PORT=3001 exec "$PORTCULLIS_NODE_DIR/node_modules/.bin/mcp-server-everything" streamableHttp >"$work/mcp.log" 2>&1) &
pids+=($!)
if [ ! -f "$work/admin.token" ]; then
  (umask 077 && head -c 24 /dev/urandom | base64 | tr -d '/+=' >"$work/admin.token")
fi
say "starting the control plane on 127.0.0.1:8080 (log: $work/portcullis.log)"
(
  export PORTCULLIS_DATA_DIR="$work/data" PORTCULLIS_PUBLIC_URL=http://127.0.0.1:10000 \
    PORTCULLIS_ADMIN_TOKEN="$(cat "$work/admin.token")" PORTCULLIS_AUTH_MODE=direct \
    PORTCULLIS_IDP_ISSUER=http://127.0.0.1:10000/demo-issuer MCP_ADVERTISED_SCOPES="openid profile"
  exec "$portcullis" serve --listen 127.0.0.1:8080 >"$work/portcullis.log" 2>&1
) &
pids+=($!)
say "starting Envoy on 127.0.0.1:10000 (log: $work/envoy.log)"
("$ENVOY_BIN" -c "$work/envoy.yaml" --concurrency 2 -l warning >"$work/envoy.log" 2>&1) &
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

# Register the MCP server (already there from an earlier run: 409, fine).
status=$(curl -s -o "$work/register.json" -w '%{http_code}' -X POST http://127.0.0.1:8080/api/servers/register \
  -H "Authorization: Bearer $(cat "$work/admin.token")" \
  -F name=everything -F path=/everything -F proxy_pass_url=http://127.0.0.1:3001 \
  -F "description=MCP reference server (server-everything)" -F tags=demo)
case "$status" in
  201|200|409) ;;
  *) say "registering the server failed ($status): $(cat "$work/register.json")"; exit 1 ;;
esac

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

  # the filter's counters
  curl -s http://127.0.0.1:9901/stats | grep wasmcustom

Ctrl-C stops the demo.
MSG
wait
