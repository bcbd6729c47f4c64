# Shared helpers for scripts/idp/<idp>/setup.sh. Sourced, never run.
# shellcheck shell=bash
#
# What every setup script gets from here:
#   - argument parsing: --dry-run, --mode direct|broker|both, --redirect-uri URI, --help;
#     anything else is refused without echoing it (a secret pasted as an argument stays unseen);
#   - the inputs shared by the four IdPs (public URL, audience, client names, redirect URIs),
#     validated;
#   - idp_http (curl) and idp_aws (aws CLI): in --dry-run they print the call (method, URL,
#     body; or the command line) and return a canned answer instead of running anything;
#   - secrets: they come only from the environment, are registered with idp_secret, and every
#     line this file prints goes through the redaction of those values; request bodies and
#     auth headers go to curl through files in a private directory, never on its command line;
#   - idp_env / idp_print_env: the `portcullis serve` environment printed at the end, with the
#     broker client secret (if one was created) printed once or written to
#     $BROKER_CLIENT_SECRET_FILE.

IDP_DRY_RUN=0
IDP_MODE="${PORTCULLIS_AUTH_MODE:-direct}"
IDP_CLI_REDIRECTS=()
IDP_ENV_LINES=()
IDP_BROKER_SECRET=""
IDP_BROKER_SECRET_NAME="PORTCULLIS_BROKER_CLIENT_SECRET"
IDP_HTTP_STATUS=""

IDP_SECRET_VALUES=()
IDP_TMP="$(umask 077 && mktemp -d "${TMPDIR:-/tmp}/portcullis-idp.XXXXXX")"
trap 'rm -rf -- "$IDP_TMP"' EXIT

idp_log() { printf '%s: %s\n' "$IDP_NAME" "$(idp_redact "$*")" >&2; }
idp_die() {
  printf '%s: error: %s\n' "$IDP_NAME" "$(idp_redact "$*")" >&2
  exit 1
}

# Python with a small prelude; values reach it through the environment, never through argv.
# (Each start costs tens of milliseconds, so the plain string work below stays in bash.)
IDP_PY_PRELUDE='
import json, os, sys, uuid, urllib.parse
env = os.environ
true, false, null = True, False, None
def lines(k): return [l for l in env.get(k, "").split("\n") if l]
def csv(k): return [x.strip() for x in env.get(k, "").split(",") if x.strip()]
'
idp_py() { python3 -S -c "$IDP_PY_PRELUDE"$'\n'"$1"; }

# idp_json EXPR: the JSON of a Python expression (true/false/null, env, lines(), csv()),
# indented as the dry run prints it.
idp_json() { idp_py "print(json.dumps($1, indent=2))"; }

# idp_resp EXPR: evaluate EXPR with r = the last answer (parsed JSON); print a string result.
idp_resp() {
  IDP_RESP="$IDP_TMP/resp" idp_py "r = json.load(open(env['IDP_RESP']))
v = ($1)
print('' if v is None else (v if isinstance(v, str) else json.dumps(v)))"
}

# idp_redact TEXT: TEXT with every registered secret replaced by <redacted>.
idp_redact() {
  local text="$1" v
  for v in "${IDP_SECRET_VALUES[@]+"${IDP_SECRET_VALUES[@]}"}"; do
    text="${text//"$v"/<redacted>}"
  done
  printf '%s' "$text"
}

# idp_q VALUE: percent-encode for a URL path segment or query value.
idp_q() {
  if [[ "$1" =~ ^[A-Za-z0-9._~-]*$ ]]; then
    printf '%s' "$1"
  else
    IDP_V="$1" idp_py 'print(urllib.parse.quote(env["IDP_V"], safe=""))'
  fi
}

# idp_shq VALUE: VALUE quoted for a POSIX shell (bare when it is plainly safe).
idp_shq() {
  local sq="'" esc="'\\''"
  if [[ "$1" =~ ^[A-Za-z0-9_@%+=:,./-]+$ ]]; then
    printf '%s' "$1"
  else
    printf "'%s'" "${1//$sq/$esc}"
  fi
}

# idp_secret VAR: sets IDP_SECRET to the value of the secret environment variable VAR and
# registers it for redaction. In --dry-run an unset secret reads as "<redacted>"; otherwise
# it is required. (Not through $(…): the registration must happen in this shell.)
idp_secret() {
  local name="$1"
  IDP_SECRET="${!1:-}"
  if [[ -z "$IDP_SECRET" ]]; then
    [[ "$IDP_DRY_RUN" == 1 ]] || idp_die "$name is not set (secrets are read from the environment only)"
    IDP_SECRET="<redacted>"
  fi
  idp_register_secret "$IDP_SECRET"
}
idp_register_secret() {
  # Short values would redact ordinary text; the placeholder needs no redaction.
  if ((${#1} >= 4)) && [[ "$1" != "<redacted>" ]]; then IDP_SECRET_VALUES+=("$1"); fi
}

idp_require() {
  local name
  for name in "$@"; do
    [[ -n "${!name:-}" ]] || idp_die "$name is not set (see --help)"
  done
}

idp_common_usage() {
  cat <<'EOF'
Options (no secrets here: secrets are read from the environment only):
  --dry-run          print every call it would make (method, URL, body; secrets as <redacted>)
                     and make none
  --mode MODE        direct (default, or $PORTCULLIS_AUTH_MODE): the public client for MCP
                     clients; broker: the confidential client the control plane logs people in
                     with; both
  --redirect-uri URI one more exact redirect URI for the public client (repeatable)
  -h, --help         this text

Shared environment:
  PORTCULLIS_PUBLIC_URL     (required) the gateway origin, e.g. https://mcp.example.com; the
                            broker client's one callback is <PORTCULLIS_PUBLIC_URL>/oauth/callback
  PORTCULLIS_IDP_AUDIENCE   the MCP audience put in access tokens (default: PORTCULLIS_PUBLIC_URL)
  IDP_PUBLIC_CLIENT_NAME    public client name (default: portcullis-mcp)
  IDP_BROKER_CLIENT_NAME    confidential client name (default: portcullis-broker)
  IDE_OAUTH_CALLBACK_PORT   the pinned loopback port (default: 33418)
  IDE_REDIRECT_URIS         the public client's redirect URIs, space-separated; default
                            http://127.0.0.1:<port>/callback http://localhost:<port>/callback
                            (the second is Claude Code's --callback-port form)
  EXTRA_REDIRECT_URIS       more, space-separated, e.g. Codex's http://127.0.0.1:<port>/callback/<id>
                            (its callback_url in ~/.codex/config.toml, with the pinned port)
  BROKER_CLIENT_SECRET_FILE write the new broker client secret to this file (mode 600) instead
                            of printing it
EOF
}

# idp_parse_args "$@": needs IDP_NAME and a function `usage`.
idp_parse_args() {
  while (($#)); do
    case "$1" in
      --dry-run) IDP_DRY_RUN=1 ;;
      -h | --help)
        usage
        exit 0
        ;;
      --mode)
        (($# >= 2)) || idp_usage_error "--mode needs a value"
        IDP_MODE="$2"
        shift
        ;;
      --mode=*) IDP_MODE="${1#--mode=}" ;;
      --redirect-uri)
        (($# >= 2)) || idp_usage_error "--redirect-uri needs a value"
        IDP_CLI_REDIRECTS+=("$2")
        shift
        ;;
      --redirect-uri=*) IDP_CLI_REDIRECTS+=("${1#--redirect-uri=}") ;;
      -*) idp_usage_error "unknown option ${1%%=*} (secrets are never arguments: see --help)" ;;
      *) idp_usage_error "unexpected argument (not shown; secrets are never arguments: see --help)" ;;
    esac
    shift
  done
  case "$IDP_MODE" in
    direct | broker | both) ;;
    *) idp_usage_error "--mode must be direct, broker or both" ;;
  esac
}
idp_usage_error() {
  printf '%s: %s\n' "$IDP_NAME" "$1" >&2
  exit 2
}

idp_wants_public() { [[ "$IDP_MODE" != broker ]]; }
idp_wants_broker() { [[ "$IDP_MODE" != direct ]]; }

# idp_common_inputs: validate and normalise the shared inputs. Sets PUBLIC_URL, AUDIENCE,
# PUBLIC_CLIENT_NAME, BROKER_CLIENT_NAME, CALLBACK_PORT, REDIRECT_URIS (newline-separated),
# BROKER_CALLBACK.
idp_common_inputs() {
  idp_require PORTCULLIS_PUBLIC_URL
  PUBLIC_URL="$(IDP_V="$PORTCULLIS_PUBLIC_URL" idp_py '
u = urllib.parse.urlsplit(env["IDP_V"].rstrip("/"))
loop = u.hostname in ("127.0.0.1", "localhost", "::1")
if not (u.scheme == "https" or (u.scheme == "http" and loop)) or not u.hostname \
        or u.path or u.query or u.fragment or u.username or u.password:
    sys.exit("PORTCULLIS_PUBLIC_URL must be an https origin (http only on loopback), no path")
print(urllib.parse.urlunsplit((u.scheme, u.netloc, "", "", "")))')" ||
    idp_die "bad PORTCULLIS_PUBLIC_URL"
  AUDIENCE="${PORTCULLIS_IDP_AUDIENCE:-$PUBLIC_URL}"
  [[ "$AUDIENCE" != *,* && "$AUDIENCE" != *[[:space:]]* ]] ||
    idp_die "PORTCULLIS_IDP_AUDIENCE: one audience, no commas or spaces"
  [[ "$AUDIENCE" != account ]] ||
    idp_die "PORTCULLIS_IDP_AUDIENCE=account is what every Keycloak token carries; use an audience of its own"
  PUBLIC_CLIENT_NAME="${IDP_PUBLIC_CLIENT_NAME:-portcullis-mcp}"
  BROKER_CLIENT_NAME="${IDP_BROKER_CLIENT_NAME:-portcullis-broker}"
  CALLBACK_PORT="${IDE_OAUTH_CALLBACK_PORT:-33418}"
  [[ "$CALLBACK_PORT" =~ ^[0-9]+$ ]] && ((CALLBACK_PORT >= 1 && CALLBACK_PORT <= 65535)) ||
    idp_die "IDE_OAUTH_CALLBACK_PORT must be a port number (1-65535)"
  local defaults="http://127.0.0.1:${CALLBACK_PORT}/callback http://localhost:${CALLBACK_PORT}/callback"
  local cli=""
  ((${#IDP_CLI_REDIRECTS[@]} == 0)) || cli="$(printf '%s\n' "${IDP_CLI_REDIRECTS[@]}")"
  REDIRECT_URIS="$(IDP_A="${IDE_REDIRECT_URIS:-$defaults}" IDP_B="${EXTRA_REDIRECT_URIS:-}" IDP_C="$cli" idp_py '
out = []
for u in env["IDP_A"].split() + env["IDP_B"].split() + env["IDP_C"].split("\n"):
    if not u: continue
    p = urllib.parse.urlsplit(u)
    loop = p.hostname in ("127.0.0.1", "localhost", "::1")
    if "*" in u or p.fragment or not p.hostname or not p.path \
            or not (p.scheme == "https" or (p.scheme == "http" and loop)):
        sys.exit("redirect URI %r: exact https URL, or http on loopback; a path; no wildcard or fragment" % u)
    if u not in out: out.append(u)
if not out: sys.exit("no redirect URI")
print("\n".join(out))')" || idp_die "bad redirect URI list"
  BROKER_CALLBACK="${PUBLIC_URL}/oauth/callback"
}

# idp_print_call METHOD URL KIND BODY: the dry-run form of one HTTP call.
#   JSON bodies come from idp_json, already indented; a form is shown one field a line.
idp_print_call() {
  local method="$1" url="$2" kind="$3" body="$4" text line
  text="$method $url"
  if [[ -n "$body" && "$kind" == form ]]; then
    body="$(IDP_B="$body" idp_py '
print("\n".join(a + "=" + v for a, v in urllib.parse.parse_qsl(env["IDP_B"], keep_blank_values=True)))')"
  fi
  if [[ -n "$body" ]]; then
    while IFS= read -r line; do text+=$'\n'"  $line"; done <<<"$body"
  fi
  printf '%s\n' "$(idp_redact "$text")"
}

# idp_auth_header "Authorization: …": the header later calls send, kept in a private file.
idp_auth_header() { printf '%s\n' "$1" >"$IDP_TMP/auth.hdr"; }

# idp_http METHOD URL KIND BODY DRY_ANSWER [OK_STATUS…]
#   KIND: none | json | form (form: no Authorization header, e.g. a token request).
#   The answer is left in $IDP_TMP/resp (read it with idp_resp), its status in IDP_HTTP_STATUS.
#   A status outside 2xx and the OK_STATUS list stops the script.
idp_http() {
  local method="$1" url="$2" kind="$3" body="$4" dry="$5"
  shift 5
  if [[ "$IDP_DRY_RUN" == 1 ]]; then
    idp_print_call "$method" "$url" "$kind" "$body"
    printf '%s' "$dry" >"$IDP_TMP/resp"
    IDP_HTTP_STATUS=200
    return 0
  fi
  local args=(-sS -X "$method" -o "$IDP_TMP/resp" -D "$IDP_TMP/resp.hdr" -w '%{http_code}'
    -H 'Accept: application/json')
  if [[ "$kind" != form && -s "$IDP_TMP/auth.hdr" ]]; then args+=(-H "@$IDP_TMP/auth.hdr"); fi
  if [[ -n "$body" ]]; then
    printf '%s' "$body" >"$IDP_TMP/req"
    case "$kind" in
      json) args+=(-H 'Content-Type: application/json') ;;
      form) args+=(-H 'Content-Type: application/x-www-form-urlencoded') ;;
    esac
    args+=(--data-binary "@$IDP_TMP/req")
  fi
  : >"$IDP_TMP/resp"
  IDP_HTTP_STATUS="$(curl "${args[@]}" "$url")" || idp_die "$method $url: request failed"
  rm -f "$IDP_TMP/req"
  idp_log "$method $url -> $IDP_HTTP_STATUS"
  local ok
  [[ "$IDP_HTTP_STATUS" == 2?? ]] && return 0
  for ok in "$@"; do [[ "$IDP_HTTP_STATUS" == "$ok" ]] && return 0; done
  idp_die "$method $url answered $IDP_HTTP_STATUS: $(head -c 2000 "$IDP_TMP/resp")"
}

# idp_aws DRY_ANSWER OK_ERROR_PATTERN ARG…: run `aws ARG… --output json` (credentials from the
# usual AWS environment/profile). An error whose text matches OK_ERROR_PATTERN (empty: none)
# is tolerated (IDP_AWS_TOLERATED=1). In --dry-run, print the command and answer DRY_ANSWER.
idp_aws() {
  local dry="$1" okpat="$2"
  shift 2
  IDP_AWS_TOLERATED=0
  if [[ "$IDP_DRY_RUN" == 1 ]]; then
    local text="aws" a
    for a in "$@"; do text+=" $(idp_shq "$a")"; done
    printf '%s\n' "$(idp_redact "$text")"
    printf '%s' "$dry" >"$IDP_TMP/resp"
    return 0
  fi
  if aws "$@" --output json >"$IDP_TMP/resp" 2>"$IDP_TMP/err"; then
    idp_log "aws $1 $2: ok"
    return 0
  fi
  if [[ -n "$okpat" ]] && grep -Eq -- "$okpat" "$IDP_TMP/err"; then
    IDP_AWS_TOLERATED=1
    idp_log "aws $1 $2: $(grep -Eo -- "$okpat" "$IDP_TMP/err" | head -n 1) (fine)"
    return 0
  fi
  idp_die "aws $1 $2 failed: $(head -c 2000 "$IDP_TMP/err")"
}

# idp_env NAME VALUE: one line of the `portcullis serve` environment printed at the end.
idp_env() { IDP_ENV_LINES+=("$1=$2"); }
# idp_broker_secret VALUE: the new confidential client's secret, emitted once by idp_print_env.
idp_broker_secret() {
  IDP_BROKER_SECRET="$1"
  idp_register_secret "$1"
}

idp_print_env() {
  local line name value
  printf '\n# Environment for `portcullis serve` (%s%s):\n' "$IDP_NAME" \
    "$([[ "$IDP_DRY_RUN" == 1 ]] && printf ', dry run: <…> are placeholders')"
  for line in "${IDP_ENV_LINES[@]}"; do
    name="${line%%=*}"
    value="${line#*=}"
    printf '%s\n' "$(idp_redact "$name=$(idp_shq "$value")")"
  done
  [[ -n "$IDP_BROKER_SECRET" ]] || return 0
  if [[ "$IDP_DRY_RUN" == 1 ]]; then
    printf '%s=<redacted>\n' "$IDP_BROKER_SECRET_NAME"
  elif [[ -n "${BROKER_CLIENT_SECRET_FILE:-}" ]]; then
    (umask 077 && : >"$BROKER_CLIENT_SECRET_FILE" && chmod 600 "$BROKER_CLIENT_SECRET_FILE" &&
      printf '%s\n' "$IDP_BROKER_SECRET" >"$BROKER_CLIENT_SECRET_FILE")
    printf '# %s: written to %s (mode 600)\n' "$IDP_BROKER_SECRET_NAME" "$BROKER_CLIENT_SECRET_FILE"
  else
    # The one place a secret is printed: the new client's, once, to stdout.
    printf '%s=%s\n' "$IDP_BROKER_SECRET_NAME" "$IDP_BROKER_SECRET"
  fi
}

idp_start() {
  if [[ "$IDP_DRY_RUN" == 1 ]]; then
    printf '# %s setup, dry run: nothing is sent; answers are placeholders in <…>\n' "$IDP_NAME"
  fi
}
