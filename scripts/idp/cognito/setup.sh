#!/usr/bin/env bash
# Amazon Cognito set-up for Portcullis, with the aws CLI (`aws cognito-idp …`). See ../README.md.
set -euo pipefail
IDP_NAME=cognito
# shellcheck source=../lib.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/lib.sh"

usage() {
  cat <<'EOF'
Usage: scripts/idp/cognito/setup.sh [--dry-run] [--mode direct|broker|both] [--redirect-uri URI]...

Creates or updates, in one Cognito user pool:
  - a resource server (identifier COGNITO_RESOURCE_SERVER_ID) with the scope COGNITO_SCOPE:
    Cognito access tokens have no `aud`, so the scope <identifier>/<scope> is what marks a
    token as one for the gateway (and the gateway checks `client_id` and `token_use`);
  - the groups COGNITO_GROUPS (Cognito puts them in the built-in cognito:groups claim);
  - with COGNITO_DOMAIN_PREFIX, the pool's managed-login domain (the authorize endpoint needs one);
  direct: the public app client for MCP clients (no secret, authorization code flow, exact
          callback URLs; Cognito has no switch that makes PKCE mandatory, MCP clients send it);
  broker: the confidential app client (with a generated secret) with one callback URL,
          <PORTCULLIS_PUBLIC_URL>/oauth/callback; the secret is printed once (or written to
          $BROKER_CLIENT_SECRET_FILE) when the client is created.
Then prints the environment for `portcullis serve`.

AWS credentials come from the usual aws CLI sources (AWS_PROFILE, AWS_ACCESS_KEY_ID/…, SSO,
instance role); this script never reads them.

Cognito environment:
  COGNITO_USER_POOL_ID        (required) e.g. eu-west-1_AbCdEf123
  AWS_REGION                  the pool's region (default: the pool id's prefix)
  COGNITO_RESOURCE_SERVER_ID  resource server identifier (default: PORTCULLIS_IDP_AUDIENCE)
  COGNITO_SCOPE               its scope (default: mcp)
  COGNITO_GROUPS              comma-separated groups to create (default: mcp-admin,mcp-users)
  COGNITO_DOMAIN_PREFIX       create the managed-login domain <prefix>.auth.<region>.amazoncognito.com
  COGNITO_IDENTITY_PROVIDERS  comma-separated, for the clients (default: COGNITO)

EOF
  idp_common_usage
}

idp_parse_args "$@"
idp_common_inputs
idp_require COGNITO_USER_POOL_ID
POOL="$COGNITO_USER_POOL_ID"
[[ "$POOL" =~ ^[a-z0-9-]+_[A-Za-z0-9]+$ ]] || idp_die "COGNITO_USER_POOL_ID looks wrong: want <region>_<id>"
REGION="${AWS_REGION:-${POOL%%_*}}"
RS_ID="${COGNITO_RESOURCE_SERVER_ID:-$AUDIENCE}"
SCOPE="${COGNITO_SCOPE:-mcp}"
GROUPS_CSV="${COGNITO_GROUPS-mcp-admin,mcp-users}"
IDPS="${COGNITO_IDENTITY_PROVIDERS:-COGNITO}"
ISSUER="https://cognito-idp.$REGION.amazonaws.com/$POOL"
export RS_ID SCOPE
IFS=, read -r -a idps <<<"$IDPS"
ci=(cognito-idp)
pool=(--region "$REGION" --user-pool-id "$POOL")

idp_start

# --- resource server ------------------------------------------------------------------------
idp_aws '{"ResourceServers": []}' '' "${ci[@]}" list-resource-servers "${pool[@]}" --max-results 50
rs_exists="$(idp_resp 'any(x.get("Identifier") == env["RS_ID"] for x in r.get("ResourceServers", [])) and "yes" or ""')"
scopes_json="$(idp_py 'print(json.dumps([{"ScopeName": env["SCOPE"],
  "ScopeDescription": "Use MCP servers through the Portcullis gateway"}]))')"
idp_aws '{}' '' "${ci[@]}" "$([[ -n "$rs_exists" ]] && echo update || echo create)-resource-server" \
  "${pool[@]}" --identifier "$RS_ID" --name portcullis-mcp --scopes "$scopes_json"

# --- groups (cognito:groups is built in) ----------------------------------------------------
IFS=, read -r -a groups <<<"$GROUPS_CSV"
for group in "${groups[@]+"${groups[@]}"}"; do
  [[ -n "$group" ]] || continue
  idp_aws '{}' 'GroupExistsException' "${ci[@]}" create-group "${pool[@]}" --group-name "$group" \
    --description "Portcullis: map this group to registry scopes (/api/group-mappings)"
done

# --- managed-login domain -------------------------------------------------------------------
if [[ -n "${COGNITO_DOMAIN_PREFIX:-}" ]]; then
  idp_aws '{"DomainDescription": {}}' '' "${ci[@]}" describe-user-pool-domain --region "$REGION" \
    --domain "$COGNITO_DOMAIN_PREFIX"
  owner="$(idp_resp 'r.get("DomainDescription", {}).get("UserPoolId")')"
  if [[ -z "$owner" ]]; then
    idp_aws '{}' '' "${ci[@]}" create-user-pool-domain "${pool[@]}" --domain "$COGNITO_DOMAIN_PREFIX"
  elif [[ "$owner" != "$POOL" ]]; then
    idp_die "domain $COGNITO_DOMAIN_PREFIX belongs to another user pool"
  fi
fi

# --- app clients ----------------------------------------------------------------------------
idp_aws '{"UserPoolClients": []}' '' "${ci[@]}" list-user-pool-clients "${pool[@]}" --max-results 60
cp "$IDP_TMP/resp" "$IDP_TMP/clients"
# client_id_of NAME: the id of the pool's app client with that name, or empty.
client_id_of() {
  IDP_F="$IDP_TMP/clients" IDP_N="$1" idp_py '
print(next((c["ClientId"] for c in json.load(open(env["IDP_F"])).get("UserPoolClients", [])
            if c.get("ClientName") == env["IDP_N"]), ""))'
}

# upsert_client NAME SECRET(yes|no) CALLBACK_URL… -- SCOPE…: sets CLIENT_ID, CLIENT_CREATED.
upsert_client() {
  local name="$1" secret="$2" existing
  shift 2
  local callbacks=() scopes=()
  while [[ "$1" != -- ]]; do callbacks+=("$1"); shift; done
  shift
  scopes=("$@")
  local common=(--allowed-o-auth-flows code --allowed-o-auth-flows-user-pool-client
    --allowed-o-auth-scopes "${scopes[@]}" --callback-urls "${callbacks[@]}"
    --supported-identity-providers "${idps[@]}" --explicit-auth-flows ALLOW_REFRESH_TOKEN_AUTH
    --prevent-user-existence-errors ENABLED --enable-token-revocation)
  existing="$(client_id_of "$name")"
  if [[ -n "$existing" ]]; then
    # update-user-pool-client resets what it is not given: every setting is given.
    idp_aws '{}' '' "${ci[@]}" update-user-pool-client "${pool[@]}" --client-id "$existing" \
      --client-name "$name" "${common[@]}"
    CLIENT_ID="$existing"
    CLIENT_CREATED=0
  else
    local dry="{\"UserPoolClient\": {\"ClientId\": \"<$name client id>\"}}"
    [[ "$secret" == no ]] || dry="{\"UserPoolClient\": {\"ClientId\": \"<$name client id>\", \"ClientSecret\": \"<redacted>\"}}"
    idp_aws "$dry" '' "${ci[@]}" create-user-pool-client "${pool[@]}" --client-name "$name" \
      "$([[ "$secret" == yes ]] && echo --generate-secret || echo --no-generate-secret)" "${common[@]}"
    CLIENT_ID="$(idp_resp 'r["UserPoolClient"]["ClientId"]')"
    CLIENT_CREATED=1
  fi
}

if idp_wants_public; then
  mapfile -t redirects <<<"$REDIRECT_URIS"
  upsert_client "$PUBLIC_CLIENT_NAME" no "${redirects[@]}" -- openid email profile "$RS_ID/$SCOPE"
  PUBLIC_CLIENT_ID="$CLIENT_ID"
fi
if idp_wants_broker; then
  upsert_client "$BROKER_CLIENT_NAME" yes "$BROKER_CALLBACK" -- openid email profile
  BROKER_CLIENT_ID="$CLIENT_ID"
  if [[ "$CLIENT_CREATED" == 1 ]]; then
    idp_broker_secret "$(idp_resp 'r["UserPoolClient"].get("ClientSecret")')"
  else
    idp_log "app client $BROKER_CLIENT_NAME existed: its secret is unchanged and not shown"
  fi
fi

# --- what portcullis serve needs -----------------------------------------------------------
idp_env PORTCULLIS_AUTH_MODE "$([[ "$IDP_MODE" == broker ]] && echo broker || echo direct)"
idp_env PORTCULLIS_PUBLIC_URL "$PUBLIC_URL"
idp_env PORTCULLIS_IDP_PROFILE cognito
idp_env PORTCULLIS_IDP_ISSUER "$ISSUER"
idp_env PORTCULLIS_IDP_GROUPS_CLAIM cognito:groups
if idp_wants_public; then
  # Access tokens carry client_id and token_use, no aud: the gateway checks those instead.
  idp_env PORTCULLIS_IDP_CLIENT_IDS "$PUBLIC_CLIENT_ID"
  idp_env PORTCULLIS_IDP_TOKEN_USE access
  idp_env IDE_OAUTH_CLIENT_ID "$PUBLIC_CLIENT_ID"
  idp_env IDE_OAUTH_CALLBACK_PORT "$CALLBACK_PORT"
  idp_env PORTCULLIS_IDP_STRICT_REDIRECTS true
  # No offline_access in Cognito (asking for it is invalid_scope).
  idp_env MCP_ADVERTISED_SCOPES "openid email profile $RS_ID/$SCOPE"
fi
if idp_wants_broker; then idp_env PORTCULLIS_BROKER_CLIENT_ID "$BROKER_CLIENT_ID"; fi
idp_print_env
