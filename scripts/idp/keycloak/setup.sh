#!/usr/bin/env bash
# Keycloak set-up for Portcullis, through the Admin REST API (curl). See ../README.md.
set -euo pipefail
IDP_NAME=keycloak
# shellcheck source=../lib.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/lib.sh"

usage() {
  cat <<'EOF'
Usage: scripts/idp/keycloak/setup.sh [--dry-run] [--mode direct|broker|both] [--redirect-uri URI]...

Creates or updates, in one Keycloak realm:
  direct: the public client for MCP clients (authorization code + PKCE S256, no secret, exact
          redirect URIs) with a "groups" Group Membership mapper (claim groups, full path off)
          and an Audience mapper adding PORTCULLIS_IDP_AUDIENCE to access tokens;
  broker: the confidential client the control plane logs people in with (one redirect URI,
          <PORTCULLIS_PUBLIC_URL>/oauth/callback) with the same groups mapper; its secret is
          printed once (or written to $BROKER_CLIENT_SECRET_FILE) when the client is created.
Then prints the environment for `portcullis serve`.

Keycloak environment:
  KEYCLOAK_URL             (required) base URL, e.g. https://keycloak.example.com
  KEYCLOAK_REALM           (required) the realm people log in to
  KEYCLOAK_ADMIN           admin user (default: admin)
  KEYCLOAK_ADMIN_PASSWORD  (secret) admin password, for a token from
                           <KEYCLOAK_URL>/realms/<KEYCLOAK_ADMIN_REALM>/protocol/openid-connect/token
  KEYCLOAK_ADMIN_REALM     realm of the admin user (default: master)
  KEYCLOAK_ADMIN_CLIENT_ID client for that token (default: admin-cli)
  KEYCLOAK_ACCESS_TOKEN    (secret) an admin access token to use instead of the password
  KEYCLOAK_ISSUER          the issuer tokens carry (default: <KEYCLOAK_URL>/realms/<realm>)

EOF
  idp_common_usage
}

idp_parse_args "$@"
idp_common_inputs
idp_require KEYCLOAK_URL KEYCLOAK_REALM
KC="${KEYCLOAK_URL%/}"
REALM="$KEYCLOAK_REALM"
ADMIN_REALM="${KEYCLOAK_ADMIN_REALM:-master}"
ISSUER="${KEYCLOAK_ISSUER:-$KC/realms/$REALM}"
API="$KC/admin/realms/$(idp_q "$REALM")"
export REDIRECT_URIS AUDIENCE BROKER_CALLBACK

idp_start

# --- admin token ---------------------------------------------------------------------------
if [[ -n "${KEYCLOAK_ACCESS_TOKEN:-}" ]]; then
  idp_secret KEYCLOAK_ACCESS_TOKEN
  TOKEN="$IDP_SECRET"
else
  idp_secret KEYCLOAK_ADMIN_PASSWORD
  form="$(IDP_PW="$IDP_SECRET" IDP_USER="${KEYCLOAK_ADMIN:-admin}" \
    IDP_CID="${KEYCLOAK_ADMIN_CLIENT_ID:-admin-cli}" idp_py '
print(urllib.parse.urlencode([("grant_type", "password"), ("client_id", env["IDP_CID"]),
                              ("username", env["IDP_USER"]), ("password", env["IDP_PW"])]))')"
  idp_http POST "$KC/realms/$(idp_q "$ADMIN_REALM")/protocol/openid-connect/token" form "$form" \
    '{"access_token": "<redacted>"}'
  TOKEN="$(idp_resp 'r.get("access_token")')"
  [[ -n "$TOKEN" ]] || idp_die "no access_token in the token answer"
  idp_register_secret "$TOKEN"
fi
idp_auth_header "Authorization: Bearer $TOKEN"

# --- helpers -------------------------------------------------------------------------------
# upsert_client CLIENT_ID BODY_JSON: create or update; sets CLIENT_UUID and CLIENT_CREATED.
upsert_client() {
  local client_id="$1" body="$2" uuid
  idp_http GET "$API/clients?clientId=$(idp_q "$client_id")" none "" '[]'
  uuid="$(IDP_CID="$client_id" idp_resp 'next((c["id"] for c in r if c.get("clientId") == env["IDP_CID"]), "")')"
  if [[ -n "$uuid" ]]; then
    idp_http PUT "$API/clients/$uuid" json "$body" ''
    CLIENT_CREATED=0
  else
    idp_http POST "$API/clients" json "$body" ''
    # 201 Created, Location: …/clients/<uuid>
    if [[ "$IDP_DRY_RUN" == 1 ]]; then
      uuid="<uuid of $client_id>"
    else
      uuid="$(tr -d '\r' <"$IDP_TMP/resp.hdr" | sed -n 's|^[Ll]ocation:.*/clients/\([^/]*\)$|\1|p' | tail -n 1)"
    fi
    [[ -n "$uuid" ]] || idp_die "client $client_id was created but its Location is missing"
    CLIENT_CREATED=1
  fi
  CLIENT_UUID="$uuid"
}

# upsert_mappers CLIENT_UUID NAME MAPPER_JSON [NAME MAPPER_JSON]…: create each protocol
# mapper, or update the client's mapper of that name.
upsert_mappers() {
  local uuid="$1" m name id existing
  shift
  idp_http GET "$API/clients/$uuid/protocol-mappers/models" none "" '[]'
  existing="$(idp_resp '"\n".join(x.get("name", "") + "\t" + x.get("id", "") for x in r)')"
  while (($#)); do
    name="$1" m="$2"
    shift 2
    id="$(awk -F '\t' -v n="$name" '$1 == n { print $2; exit }' <<<"$existing")"
    if [[ -n "$id" ]]; then
      idp_http PUT "$API/clients/$uuid/protocol-mappers/models/$id" json \
        "$(IDP_M="$m" IDP_ID="$id" idp_json 'dict(json.loads(env["IDP_M"]), id=env["IDP_ID"])')" ''
    else
      idp_http POST "$API/clients/$uuid/protocol-mappers/models" json "$m" ''
    fi
  done
}

# Groups in a "groups" claim, plain names (full path off), in the ID and access tokens.
GROUPS_MAPPER="$(idp_json '{
  "name": "groups", "protocol": "openid-connect",
  "protocolMapper": "oidc-group-membership-mapper", "consentRequired": false,
  "config": {"claim.name": "groups", "full.path": "false", "access.token.claim": "true",
             "id.token.claim": "true", "userinfo.token.claim": "true",
             "introspection.token.claim": "true"}}')"
# The MCP audience in access tokens: what the gateway checks instead of `aud: account`.
AUDIENCE_MAPPER="$(idp_json '{
  "name": "portcullis-audience", "protocol": "openid-connect",
  "protocolMapper": "oidc-audience-mapper", "consentRequired": false,
  "config": {"included.custom.audience": env["AUDIENCE"], "access.token.claim": "true",
             "id.token.claim": "false", "introspection.token.claim": "true"}}')"

# --- direct mode: the public client --------------------------------------------------------
if idp_wants_public; then
  body="$(IDP_CID="$PUBLIC_CLIENT_NAME" idp_json '{
    "clientId": env["IDP_CID"], "name": "Portcullis: MCP clients",
    "description": "Public client (authorization code + PKCE) MCP clients log in with. Not a secret.",
    "enabled": true, "protocol": "openid-connect",
    "publicClient": true, "standardFlowEnabled": true, "implicitFlowEnabled": false,
    "directAccessGrantsEnabled": false, "serviceAccountsEnabled": false,
    "consentRequired": false, "redirectUris": lines("REDIRECT_URIS"), "webOrigins": [],
    "attributes": {"pkce.code.challenge.method": "S256",
                   "oauth2.device.authorization.grant.enabled": "false"}}')"
  upsert_client "$PUBLIC_CLIENT_NAME" "$body"
  upsert_mappers "$CLIENT_UUID" groups "$GROUPS_MAPPER" portcullis-audience "$AUDIENCE_MAPPER"
fi

# --- broker mode: the confidential client --------------------------------------------------
if idp_wants_broker; then
  body="$(IDP_CID="$BROKER_CLIENT_NAME" idp_json '{
    "clientId": env["IDP_CID"], "name": "Portcullis: broker",
    "description": "Confidential client the Portcullis control plane logs people in with.",
    "enabled": true, "protocol": "openid-connect",
    "publicClient": false, "clientAuthenticatorType": "client-secret",
    "standardFlowEnabled": true, "implicitFlowEnabled": false,
    "directAccessGrantsEnabled": false, "serviceAccountsEnabled": false,
    "consentRequired": false, "redirectUris": [env["BROKER_CALLBACK"]], "webOrigins": [],
    "attributes": {"pkce.code.challenge.method": "S256",
                   "oauth2.device.authorization.grant.enabled": "false"}}')"
  upsert_client "$BROKER_CLIENT_NAME" "$body"
  BROKER_UUID="$CLIENT_UUID"
  upsert_mappers "$BROKER_UUID" groups "$GROUPS_MAPPER"
  if [[ "$CLIENT_CREATED" == 1 ]]; then
    idp_http GET "$API/clients/$BROKER_UUID/client-secret" none "" \
      '{"type": "secret", "value": "<redacted>"}'
    idp_broker_secret "$(idp_resp 'r.get("value")')"
  else
    idp_log "client $BROKER_CLIENT_NAME existed: its secret is unchanged and not shown (regenerate it in Keycloak to get a new one)"
  fi
fi

# --- what portcullis serve needs -----------------------------------------------------------
idp_env PORTCULLIS_AUTH_MODE "$([[ "$IDP_MODE" == broker ]] && echo broker || echo direct)"
idp_env PORTCULLIS_PUBLIC_URL "$PUBLIC_URL"
idp_env PORTCULLIS_IDP_PROFILE keycloak
idp_env PORTCULLIS_IDP_ISSUER "$ISSUER"
if idp_wants_public; then
  idp_env PORTCULLIS_IDP_AUDIENCE "$AUDIENCE"
  idp_env IDE_OAUTH_CLIENT_ID "$PUBLIC_CLIENT_NAME"
  idp_env IDE_OAUTH_CALLBACK_PORT "$CALLBACK_PORT"
  # The redirect URIs above are exact, port included: connect configs must pin the port.
  idp_env PORTCULLIS_IDP_STRICT_REDIRECTS true
fi
if idp_wants_broker; then idp_env PORTCULLIS_BROKER_CLIENT_ID "$BROKER_CLIENT_NAME"; fi
idp_print_env
