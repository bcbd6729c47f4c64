#!/usr/bin/env bash
# Tests for the IdP set-up scripts: each runs in --dry-run with fixed inputs; its output is
# compared with testdata/<idp>.dry-run.txt (UPDATE_GOLDEN=1 rewrites them: review the diff)
# and checked field by field (exact redirect URIs, public client + PKCE, groups claim,
# audience, the printed environment). curl, aws and az are stubs that fail the test if a dry
# run calls them; secrets given through the environment must never show. Then the Keycloak
# script runs for real against a fake curl, to see where its secrets travel.
# Needs bash, python3 and coreutils only.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
work="$(mktemp -d "${TMPDIR:-/tmp}/portcullis-idp-test.XXXXXX")"
trap 'rm -rf -- "$work"' EXIT
mkdir -p "$work/stubs" "$work/home" "$work/tmp"
failures=0
fail() {
  printf 'FAIL: %s\n' "$*" >&2
  failures=$((failures + 1))
}
ok() { printf 'ok: %s\n' "$*" >&2; }

for tool in curl aws az wget; do
  printf '#!/bin/sh\necho "%s $*" >>"%s/network-calls"\nexit 97\n' "$tool" "$work" >"$work/stubs/$tool"
  chmod +x "$work/stubs/$tool"
done

# Secrets (sentinels): none of them may appear in any output.
SECRETS=(kc-SENTINEL-password-4711 okta-SENTINEL-token-4711 aws-SENTINEL-key-4711
  azure-SENTINEL-secret-4711)
common=(PATH="$work/stubs:$PATH" HOME="$work/home" TMPDIR="$work/tmp" LC_ALL=C.UTF-8
  PORTCULLIS_PUBLIC_URL=https://mcp.example.com/
  PORTCULLIS_IDP_AUDIENCE=https://mcp.example.com/gateway
  EXTRA_REDIRECT_URIS=http://127.0.0.1:33418/callback/codex-3f2a
  AWS_ACCESS_KEY_ID=AKIAEXAMPLE AWS_SECRET_ACCESS_KEY=aws-SENTINEL-key-4711)
env_keycloak=(KEYCLOAK_URL=https://keycloak.example.com KEYCLOAK_REALM=acme
  KEYCLOAK_ADMIN_PASSWORD=kc-SENTINEL-password-4711)
env_okta=(OKTA_ORG_URL=https://acme.okta.com OKTA_API_TOKEN=okta-SENTINEL-token-4711
  OKTA_ASSIGN_GROUP_IDS=00gEngineering)
env_cognito=(COGNITO_USER_POOL_ID=eu-west-1_AbCdEf123 COGNITO_DOMAIN_PREFIX=acme-mcp)
env_entra=(AZURE_TENANT_ID=11111111-2222-3333-4444-555555555555 AZURE_CLIENT_ID=graph-admin-app
  AZURE_CLIENT_SECRET=azure-SENTINEL-secret-4711)

# run IDP OUT_PREFIX [EXTRA_ENV…] -- ARGS…: run IDP's setup.sh with the fixed environment.
run() {
  local idp="$1" out="$2" rc=0
  shift 2
  local extra=()
  while [[ "$1" != -- ]]; do extra+=("$1"); shift; done
  shift
  local -n idp_env="env_$idp"
  env -i "${common[@]}" "${idp_env[@]}" "${extra[@]+"${extra[@]}"}" \
    bash "$here/$idp/setup.sh" "$@" >"$out.stdout" 2>"$out.stderr" || rc=$?
  printf '%s' "$rc" >"$out.rc"
}

no_secrets_in() {
  local f s
  for f in "$@"; do
    for s in "${SECRETS[@]}"; do
      if grep -qF -- "$s" "$f"; then fail "$f shows the secret $s"; fi
    done
  done
}

# --- 1. the dry runs, all four at once --------------------------------------------------------
idps=(keycloak okta cognito entra)
for idp in "${idps[@]}"; do
  run "$idp" "$work/$idp" -- --dry-run --mode both --redirect-uri http://localhost:33418/callback/extra &
done
wait
for idp in "${idps[@]}"; do
  out="$work/$idp"
  if [[ "$(cat "$out.rc")" != 0 ]]; then
    fail "$idp --dry-run exited $(cat "$out.rc"): $(cat "$out.stderr")"
    continue
  fi
  golden="$here/testdata/$idp.dry-run.txt"
  if [[ "${UPDATE_GOLDEN:-}" == 1 ]]; then
    cp "$out.stdout" "$golden"
    ok "$idp: golden file rewritten"
  elif ! diff -u "$golden" "$out.stdout" >"$out.diff"; then
    fail "$idp --dry-run differs from testdata/$idp.dry-run.txt (UPDATE_GOLDEN=1 to accept):"
    cat "$out.diff" >&2
  else
    ok "$idp: dry run matches the golden file"
  fi
  [[ ! -s "$out.stderr" ]] || fail "$idp --dry-run wrote to stderr: $(cat "$out.stderr")"
  no_secrets_in "$out.stdout" "$out.stderr"
done
if [[ -e "$work/network-calls" ]]; then
  fail "a dry run called the network tools: $(cat "$work/network-calls")"
else
  ok "no dry run called curl, aws, az or wget"
fi

# --- 2. field checks on the dry-run calls -----------------------------------------------------
WORK="$work" python3 - <<'PY' || failures=$((failures + 1))
import json, os, re, shlex, sys

work = os.environ["WORK"]
bad = []
def check(cond, what):
    if not cond:
        bad.append(what)

def calls(idp):
    """The calls of a dry run: (method, url, body) for HTTP, ("aws", argv, None) for the CLI."""
    out, cur, env = [], None, {}
    text = open(f"{work}/{idp}.stdout").read()
    main, _, tail = text.partition("\n# Environment for `portcullis serve`")
    for line in main.splitlines():
        m = re.match(r"^(GET|POST|PUT|PATCH|DELETE) (https://.+)$", line)
        if m:
            cur = [m.group(1), m.group(2), []]
            out.append(cur)
        elif line.startswith("aws "):
            out.append(["aws", shlex.split(line)[1:], []])
            cur = None
        elif line.startswith("  ") and cur is not None:
            cur[2].append(line[2:])
    for c in out:
        if c[0] != "aws":
            b = "\n".join(c[2])
            c[2] = json.loads(b) if b.startswith(("{", "[")) else b
    for line in tail.splitlines()[1:]:
        if line and not line.startswith("#"):
            k, _, v = line.partition("=")
            env[k] = shlex.split(v)[0] if v else ""
    return out, env

PUBLIC = ["http://127.0.0.1:33418/callback", "http://localhost:33418/callback",
          "http://127.0.0.1:33418/callback/codex-3f2a", "http://localhost:33418/callback/extra"]
BROKER = ["https://mcp.example.com/oauth/callback"]
AUD = "https://mcp.example.com/gateway"

def find(cs, method, suffix, pred=lambda b: True):
    hits = [c for c in cs if c[0] == method and c[1].split("?")[0].endswith(suffix) and pred(c[2])]
    check(len(hits) == 1, f"one {method} …{suffix} (found {len(hits)})")
    return hits[0][2] if hits else {}

# Keycloak
cs, env = calls("keycloak")
check(cs[0][:2] == ["POST", "https://keycloak.example.com/realms/master/protocol/openid-connect/token"],
      "keycloak: admin token from /realms/master/protocol/openid-connect/token")
check("password=<redacted>" in cs[0][2], "keycloak: password shown as <redacted>")
pub = find(cs, "POST", "/admin/realms/acme/clients", lambda b: b.get("clientId") == "portcullis-mcp")
check(pub.get("publicClient") is True and pub.get("standardFlowEnabled") is True
      and pub.get("implicitFlowEnabled") is False and pub.get("directAccessGrantsEnabled") is False
      and pub.get("serviceAccountsEnabled") is False, "keycloak: public client, code flow only")
check(pub.get("attributes", {}).get("pkce.code.challenge.method") == "S256", "keycloak: PKCE S256 required")
check(pub.get("redirectUris") == PUBLIC, f"keycloak: exact redirect URIs, got {pub.get('redirectUris')}")
brk = find(cs, "POST", "/admin/realms/acme/clients", lambda b: b.get("clientId") == "portcullis-broker")
check(brk.get("publicClient") is False and brk.get("redirectUris") == BROKER, "keycloak: broker client")
mappers = [c[2] for c in cs if c[0] == "POST" and c[1].endswith("/protocol-mappers/models")]
groups = [m for m in mappers if m.get("protocolMapper") == "oidc-group-membership-mapper"]
check(len(groups) == 2 and all(m["config"]["claim.name"] == "groups" and m["config"]["full.path"] == "false"
      and m["config"]["access.token.claim"] == "true" for m in groups), "keycloak: groups mappers (full path off)")
auds = [m for m in mappers if m.get("protocolMapper") == "oidc-audience-mapper"]
check(len(auds) == 1 and auds[0]["config"]["included.custom.audience"] == AUD
      and auds[0]["config"]["access.token.claim"] == "true", "keycloak: audience mapper with the MCP audience")
check(any(c[0] == "GET" and c[1].endswith("/clients/<uuid of portcullis-broker>/client-secret") for c in cs),
      "keycloak: broker secret read back")
check(env.get("PORTCULLIS_IDP_PROFILE") == "keycloak" and env.get("PORTCULLIS_IDP_ISSUER") ==
      "https://keycloak.example.com/realms/acme" and env.get("PORTCULLIS_IDP_AUDIENCE") == AUD
      and env.get("IDE_OAUTH_CLIENT_ID") == "portcullis-mcp" and env.get("IDE_OAUTH_CALLBACK_PORT") == "33418",
      f"keycloak: printed environment {env}")

# Okta
cs, env = calls("okta")
asv = find(cs, "POST", "/api/v1/authorizationServers")
check(asv.get("audiences") == [AUD], "okta: authorization server audience")
claims = [c[2] for c in cs if c[0] == "POST" and c[1].endswith("/claims")]
check(sorted(c["claimType"] for c in claims) == ["IDENTITY", "RESOURCE"] and all(
      c["name"] == "groups" and c["valueType"] == "GROUPS" and c["group_filter_type"] == "REGEX"
      and c["value"] == ".*" for c in claims), "okta: groups claims with a regex filter")
apps = {c[2]["label"]: c[2] for c in cs if c[0] == "POST" and c[1].endswith("/api/v1/apps")}
p = apps.get("portcullis-mcp", {})
check(p.get("credentials", {}).get("oauthClient") == {"token_endpoint_auth_method": "none",
      "pkce_required": True, "autoKeyRotation": True}, "okta: public client, PKCE required")
check(p.get("settings", {}).get("oauthClient", {}).get("redirect_uris") == PUBLIC, "okta: exact redirect URIs")
check(p.get("settings", {}).get("oauthClient", {}).get("application_type") == "native", "okta: native app")
b = apps.get("portcullis-broker", {})
check(b.get("credentials", {}).get("oauthClient", {}).get("token_endpoint_auth_method") == "client_secret_basic"
      and b.get("settings", {}).get("oauthClient", {}).get("redirect_uris") == BROKER, "okta: broker app")
check(any(c[0] == "PUT" and c[1].endswith("/groups/00gEngineering") for c in cs), "okta: group assignment")
pol = find(cs, "POST", "/policies")
check(pol["conditions"]["clients"]["include"] == ["<public client id>", "<broker client id>"], "okta: policy clients")
rule = find(cs, "POST", "/rules")
check(rule["conditions"]["grantTypes"]["include"] == ["authorization_code"], "okta: rule allows the code flow")
check(env.get("PORTCULLIS_IDP_PROFILE") == "okta" and env.get("PORTCULLIS_IDP_AUDIENCE") == AUD
      and env.get("PORTCULLIS_IDP_STRICT_REDIRECTS") == "true"
      and env.get("PORTCULLIS_IDP_ISSUER") == "https://acme.okta.com/oauth2/<authorization server id>",
      f"okta: printed environment {env}")

# Cognito
cs, env = calls("cognito")
aws = [c[1] for c in cs if c[0] == "aws"]
check(all(a[0] == "cognito-idp" for a in aws) and len(aws) == len(cs), "cognito: aws cognito-idp calls only")
def opt(a, name):
    i = a.index(name)
    vals = []
    for v in a[i + 1:]:
        if v.startswith("--"): break
        vals.append(v)
    return vals
rs = [a for a in aws if a[1] == "create-resource-server"]
check(len(rs) == 1 and opt(rs[0], "--identifier") == [AUD]
      and json.loads(opt(rs[0], "--scopes")[0])[0]["ScopeName"] == "mcp", "cognito: resource server + scope")
check(sorted(opt(a, "--group-name")[0] for a in aws if a[1] == "create-group") == ["mcp-admin", "mcp-users"],
      "cognito: groups created")
clients = {opt(a, "--client-name")[0]: a for a in aws if a[1] == "create-user-pool-client"}
p, b = clients.get("portcullis-mcp", []), clients.get("portcullis-broker", [])
check("--no-generate-secret" in p and "--generate-secret" not in p, "cognito: public client has no secret")
check(opt(p, "--callback-urls") == PUBLIC, "cognito: exact callback URLs")
check(opt(p, "--allowed-o-auth-flows") == ["code"] and "offline_access" not in opt(p, "--allowed-o-auth-scopes")
      and AUD + "/mcp" in opt(p, "--allowed-o-auth-scopes"), "cognito: code flow, scopes")
check("--generate-secret" in b and opt(b, "--callback-urls") == BROKER, "cognito: broker client")
check(env.get("PORTCULLIS_IDP_CLIENT_IDS") == "<portcullis-mcp client id>" and env.get("PORTCULLIS_IDP_TOKEN_USE")
      == "access" and env.get("PORTCULLIS_IDP_STRICT_REDIRECTS") == "true" and "PORTCULLIS_IDP_AUDIENCE" not in env
      and env.get("PORTCULLIS_IDP_GROUPS_CLAIM") == "cognito:groups"
      and env.get("PORTCULLIS_IDP_ISSUER") == "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbCdEf123",
      f"cognito: printed environment {env}")

# Entra
cs, env = calls("entra")
check(cs[0][:2] == ["POST", "https://login.microsoftonline.com/11111111-2222-3333-4444-555555555555/oauth2/v2.0/token"]
      and "client_secret=<redacted>" in cs[0][2], "entra: Graph token, secret redacted")
check(all(c[1].startswith("https://graph.microsoft.com/v1.0/") for c in cs[1:]), "entra: Graph v1.0 calls")
apps = {c[2]["displayName"]: c[2] for c in cs if c[0] == "POST" and c[1].endswith("/v1.0/applications")}
p = apps.get("portcullis-mcp", {})
check(p.get("isFallbackPublicClient") is True and p.get("publicClient", {}).get("redirectUris") == PUBLIC
      and "web" not in p, "entra: public client, exact redirect URIs")
check(p.get("groupMembershipClaims") == "SecurityGroup"
      and [c["name"] for c in p["optionalClaims"]["accessToken"]] == ["groups"], "entra: groups claim")
check(p.get("api", {}).get("requestedAccessTokenVersion") == 2
      and [s["value"] for s in p["api"]["oauth2PermissionScopes"]] == ["mcp.access"], "entra: exposed scope")
check(any(c[0] == "PATCH" and c[2] == {"identifierUris": ["api://<appId of portcullis-mcp>"]} for c in cs),
      "entra: App ID URI api://<appId>")
check(sum(1 for c in cs if c[0] == "POST" and c[1].endswith("/servicePrincipals")) == 2, "entra: service principals")
b = apps.get("portcullis-broker", {})
check(b.get("web", {}).get("redirectUris") == BROKER and b.get("isFallbackPublicClient") is False, "entra: broker app")
check(any(c[0] == "POST" and c[1].endswith("/addPassword") for c in cs), "entra: broker secret")
check(env.get("PORTCULLIS_IDP_AUDIENCE") == "<appId of portcullis-mcp>"
      and env.get("MCP_ADVERTISED_SCOPES") == "openid profile offline_access api://<appId of portcullis-mcp>/mcp.access"
      and env.get("PORTCULLIS_IDP_ISSUER") == "https://login.microsoftonline.com/11111111-2222-3333-4444-555555555555/v2.0"
      and env.get("PORTCULLIS_IDP_STRICT_REDIRECTS") == "true", f"entra: printed environment {env}")

for idp in ("keycloak", "okta", "cognito", "entra"):
    text = open(f"{work}/{idp}.stdout").read()
    check(text.count("PORTCULLIS_BROKER_CLIENT_SECRET=<redacted>\n") == 1, f"{idp}: broker secret line redacted")
for b in bad:
    print("FAIL: " + b, file=sys.stderr)
print("ok: field checks (%d failed)" % len(bad), file=sys.stderr)
sys.exit(1 if bad else 0)
PY

# --- 3. arguments, inputs, modes --------------------------------------------------------------
expect() { # expect NAME RC PATTERN FILE
  local name="$1" rc="$2" pat="$3" out="$4"
  if [[ "$(cat "$out.rc")" != "$rc" ]]; then
    fail "$name: exit $(cat "$out.rc"), want $rc: $(cat "$out.stderr")"
  elif [[ -n "$pat" ]] && ! grep -Eq -- "$pat" "$out.stdout" "$out.stderr"; then
    fail "$name: no /$pat/ in the output"
  else
    ok "$name"
  fi
}
for idp in "${idps[@]}"; do
  run "$idp" "$work/$idp-help" -- --help &
  run "$idp" "$work/$idp-arg" -- --dry-run --password=hunter2-SENTINEL &
  run "$idp" "$work/$idp-pos" -- --dry-run hunter2-SENTINEL &
done
run keycloak "$work/keycloak-direct" -- --dry-run &
run cognito "$work/cognito-direct" -- --dry-run &
run keycloak "$work/no-url" PORTCULLIS_PUBLIC_URL= -- --dry-run &
run okta "$work/bad-redirect" EXTRA_REDIRECT_URIS=http://evil.example.com/callback -- --dry-run &
run cognito "$work/wildcard" IDE_REDIRECT_URIS='http://localhost/*' -- --dry-run &
run keycloak "$work/account" PORTCULLIS_IDP_AUDIENCE=account -- --dry-run &
run entra "$work/tenant-domain" AZURE_TENANT_ID=acme.onmicrosoft.com -- --dry-run &
run keycloak "$work/no-secret" KEYCLOAK_ADMIN_PASSWORD= -- --dry-run &
run okta "$work/bad-mode" -- --dry-run --mode sideways &
wait
for idp in "${idps[@]}"; do
  expect "$idp --help" 0 'PORTCULLIS_PUBLIC_URL' "$work/$idp-help"
  grep -q -- '--dry-run' "$work/$idp-help.stdout" || fail "$idp --help does not mention --dry-run"
  expect "$idp refuses an unknown option, without echoing its value" 2 'unknown option --password' "$work/$idp-arg"
  expect "$idp refuses a positional argument" 2 'unexpected argument' "$work/$idp-pos"
  if grep -q hunter2 "$work/$idp-arg.stdout" "$work/$idp-arg.stderr" "$work/$idp-pos.stdout" "$work/$idp-pos.stderr"; then
    fail "$idp echoed an argument that could be a secret"
  fi
done
for idp in keycloak cognito; do
  expect "$idp: default mode is direct" 0 'PORTCULLIS_AUTH_MODE=direct' "$work/$idp-direct"
  if grep -q 'portcullis-broker\|BROKER' "$work/$idp-direct.stdout"; then
    fail "$idp: direct mode touched the broker client"
  fi
  no_secrets_in "$work/$idp-direct.stdout" "$work/$idp-direct.stderr"
done
expect "PORTCULLIS_PUBLIC_URL is required" 1 'PORTCULLIS_PUBLIC_URL is not set' "$work/no-url"
expect "a non-loopback http redirect URI is refused" 1 'redirect URI' "$work/bad-redirect"
expect "a wildcard redirect URI is refused" 1 'no wildcard' "$work/wildcard"
expect "aud: account is refused as the MCP audience" 1 'account' "$work/account"
expect "entra wants the tenant GUID" 1 'GUID' "$work/tenant-domain"
expect "dry run without the secret set" 0 'password=<redacted>' "$work/no-secret"
expect "an unknown mode is refused" 2 'direct, broker or both' "$work/bad-mode"

# The stubs do catch a real run (so their silence above means something).
run keycloak "$work/real" -- --mode direct
if [[ "$(cat "$work/real.rc")" == 0 || ! -e "$work/network-calls" ]]; then
  fail "a run without --dry-run did not reach the curl stub"
else
  ok "the curl stub catches a real run"
fi
no_secrets_in "$work/real.stdout" "$work/real.stderr"

# --- 4. Keycloak for real, against a fake curl: where do the secrets go? ----------------------
mkdir -p "$work/fake"
printf '#!/bin/sh\nexec python3 %q "$@"\n' "$here/testdata/fake_keycloak_curl.py" >"$work/fake/curl"
chmod +x "$work/fake/curl"
admin_token=kc-SENTINEL-admin-token-4711
client_secret=kc-SENTINEL-client-secret-4711
fake_run() { # fake_run OUT [ENV…]
  local out="$1" rc=0
  shift
  env -i PATH="$work/fake:$PATH" HOME="$work/home" TMPDIR="$work/tmp" FAKE_LOG="$out.log" \
    FAKE_ADMIN_TOKEN="$admin_token" FAKE_CLIENT_SECRET="$client_secret" \
    PORTCULLIS_PUBLIC_URL=https://mcp.example.com "${env_keycloak[@]}" "$@" \
    bash "$here/keycloak/setup.sh" --mode both >"$out.stdout" 2>"$out.stderr" || rc=$?
  printf '%s' "$rc" >"$out.rc"
}
fake_run "$work/kc-real"
fake_run "$work/kc-file" BROKER_CLIENT_SECRET_FILE="$work/broker-secret"
for out in "$work/kc-real" "$work/kc-file"; do
  [[ "$(cat "$out.rc")" == 0 ]] || fail "keycloak against the fake: exit $(cat "$out.rc"): $(cat "$out.stderr")"
done
SECRET_PW=kc-SENTINEL-password-4711 ADMIN_TOKEN="$admin_token" CLIENT_SECRET="$client_secret" WORK="$work" \
  python3 - <<'PY' || failures=$((failures + 1))
import json, os, stat, sys
w, pw, tok, sec = os.environ["WORK"], os.environ["SECRET_PW"], os.environ["ADMIN_TOKEN"], os.environ["CLIENT_SECRET"]
bad = []
for run in ("kc-real", "kc-file"):
    calls = [json.loads(l) for l in open(f"{w}/{run}.log")]
    for c in calls:
        argv = " ".join(c["argv"])
        if pw in argv or tok in argv:
            bad.append(f"{run}: a secret on curl's command line: {c['method']} {c['url']}")
        if c["url"].endswith("/token"):
            if "password=" + pw not in c["body"] or any("Authorization" in h for h in c["headers"]):
                bad.append(f"{run}: the token request should carry the password in its body, no auth header")
        elif "Authorization: Bearer " + tok not in c["headers"]:
            bad.append(f"{run}: {c['method']} {c['url']} without the admin token header (from a file)")
        elif pw in c["body"]:
            bad.append(f"{run}: the password sent beyond the token request")
    if [c["method"] for c in calls].count("POST") != 6:
        bad.append(f"{run}: expected 6 POSTs (token, 2 clients, 3 mappers), got {[c['method'] + ' ' + c['url'] for c in calls]}")
    err = open(f"{w}/{run}.stderr").read()
    for s in (pw, tok, sec):
        if s in err:
            bad.append(f"{run}: stderr shows a secret")
    out = open(f"{w}/{run}.stdout").read()
    if pw in out or tok in out:
        bad.append(f"{run}: stdout shows the admin password or token")
real = open(f"{w}/kc-real.stdout").read()
if real.count(sec) != 1 or f"PORTCULLIS_BROKER_CLIENT_SECRET={sec}\n" not in real:
    bad.append("kc-real: the new client secret should be printed exactly once, at the end")
if "IDE_OAUTH_CLIENT_ID=portcullis-mcp\n" not in real or "PORTCULLIS_BROKER_CLIENT_ID=portcullis-broker\n" not in real:
    bad.append("kc-real: printed environment")
f = open(f"{w}/kc-file.stdout").read()
if sec in f:
    bad.append("kc-file: secret printed although BROKER_CLIENT_SECRET_FILE is set")
st = os.stat(f"{w}/broker-secret")
if open(f"{w}/broker-secret").read() != sec + "\n" or stat.S_IMODE(st.st_mode) != 0o600:
    bad.append("kc-file: secret file content or mode (want 600)")
for b in bad:
    print("FAIL: " + b, file=sys.stderr)
print("ok: keycloak against a fake curl (%d failed)" % len(bad), file=sys.stderr)
sys.exit(1 if bad else 0)
PY
if [[ -n "$(ls -A "$work/tmp")" ]]; then fail "a script left files in TMPDIR: $(ls -A "$work/tmp")"; fi

if ((failures)); then
  printf '\nscripts/idp/test.sh: %d failure(s)\n' "$failures" >&2
  exit 1
fi
printf '\nscripts/idp/test.sh: all passed\n' >&2
