#!/usr/bin/env bash
# Microsoft Entra ID set-up for Portcullis, through Microsoft Graph (curl). See ../README.md.
set -euo pipefail
IDP_NAME=entra
# shellcheck source=../lib.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/lib.sh"

usage() {
  cat <<'EOF'
Usage: scripts/idp/entra/setup.sh [--dry-run] [--mode direct|broker|both] [--redirect-uri URI]...

Creates or updates, in one Entra tenant (app registrations + their service principals):
  direct: the public app for MCP clients: isFallbackPublicClient, exact publicClient redirect
          URIs (authorization code + PKCE, no secret), groupMembershipClaims SecurityGroup and
          a groups optional claim, v2 access tokens, an App ID URI (api://<appId> unless
          ENTRA_APP_ID_URI) exposing the delegated scope ENTRA_SCOPE. MCP clients must ask for
          <App ID URI>/<scope>: the printed MCP_ADVERTISED_SCOPES does that;
  broker: the confidential app with one web redirect URI, <PORTCULLIS_PUBLIC_URL>/oauth/callback,
          the same groups claim, and a client secret (addPassword) printed once (or written to
          $BROKER_CLIENT_SECRET_FILE) when the app is created.
Then prints the environment for `portcullis serve`.

Entra environment:
  AZURE_TENANT_ID       (required) the tenant id (a GUID: tokens' issuer carries it)
  AZURE_ACCESS_TOKEN    (secret) a Microsoft Graph token with Application.ReadWrite.All, e.g.
                        from `az account get-access-token --resource-type ms-graph`; or:
  AZURE_CLIENT_ID       an app with that permission, and
  AZURE_CLIENT_SECRET   (secret) its secret (client credentials at the token endpoint)
  ENTRA_SCOPE           the exposed delegated scope (default: mcp.access)
  ENTRA_APP_ID_URI      the App ID URI (default: api://<appId>)
  AZURE_AUTHORITY_HOST  default https://login.microsoftonline.com
  GRAPH_URL             default https://graph.microsoft.com/v1.0

EOF
  idp_common_usage
}

idp_parse_args "$@"
idp_common_inputs
idp_require AZURE_TENANT_ID
TENANT="$AZURE_TENANT_ID"
[[ "$TENANT" =~ ^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$ ]] ||
  idp_die "AZURE_TENANT_ID must be the tenant's GUID (token issuers carry the GUID, not a domain)"
AUTHORITY="${AZURE_AUTHORITY_HOST:-https://login.microsoftonline.com}"
AUTHORITY="${AUTHORITY%/}"
G="${GRAPH_URL:-https://graph.microsoft.com/v1.0}"
G="${G%/}"
SCOPE="${ENTRA_SCOPE:-mcp.access}"
export REDIRECT_URIS BROKER_CALLBACK SCOPE

idp_start

# --- Graph token ----------------------------------------------------------------------------
if [[ -n "${AZURE_ACCESS_TOKEN:-}" ]]; then
  idp_secret AZURE_ACCESS_TOKEN
  TOKEN="$IDP_SECRET"
else
  idp_require AZURE_CLIENT_ID
  idp_secret AZURE_CLIENT_SECRET
  form="$(IDP_CS="$IDP_SECRET" idp_py '
print(urllib.parse.urlencode([("grant_type", "client_credentials"),
  ("client_id", env["AZURE_CLIENT_ID"]), ("client_secret", env["IDP_CS"]),
  ("scope", "https://graph.microsoft.com/.default")]))')"
  idp_http POST "$AUTHORITY/$(idp_q "$TENANT")/oauth2/v2.0/token" form "$form" \
    '{"access_token": "<redacted>"}'
  TOKEN="$(idp_resp 'r.get("access_token")')"
  [[ -n "$TOKEN" ]] || idp_die "no access_token in the token answer"
  idp_register_secret "$TOKEN"
fi
idp_auth_header "Authorization: Bearer $TOKEN"

# odata_filter FIELD VALUE: ?$filter=FIELD eq 'VALUE', encoded.
odata_filter() {
  IDP_F="$1" IDP_V="$2" idp_py '
print("?$filter=" + urllib.parse.quote(env["IDP_F"] + " eq \x27" + env["IDP_V"].replace("\x27", "\x27\x27") + "\x27", safe="\x27"))'
}

# upsert_app NAME BODY_JSON: create or update (PATCH) the app registration of that displayName,
# and make sure it has a service principal. Sets APP_OBJECT_ID, APP_ID, APP_CREATED.
upsert_app() {
  local name="$1" body="$2" found
  idp_http GET "$G/applications$(odata_filter displayName "$name")" none "" '{"value": []}'
  found="$(idp_resp '" ".join(a["id"] + " " + a["appId"] for a in r.get("value", [])[:1])')"
  if [[ -n "$found" ]]; then
    APP_OBJECT_ID="${found%% *}"
    APP_ID="${found#* }"
    idp_http PATCH "$G/applications/$APP_OBJECT_ID" json "$body" ''
    APP_CREATED=0
  else
    idp_http POST "$G/applications" json "$body" \
      "{\"id\": \"<object id of $name>\", \"appId\": \"<appId of $name>\"}"
    APP_OBJECT_ID="$(idp_resp 'r["id"]')"
    APP_ID="$(idp_resp 'r["appId"]')"
    APP_CREATED=1
  fi
  idp_http GET "$G/servicePrincipals$(odata_filter appId "$APP_ID")" none "" '{"value": []}'
  if [[ -z "$(idp_resp '"yes" if r.get("value") else ""')" ]]; then
    idp_http POST "$G/servicePrincipals" json "$(IDP_A="$APP_ID" idp_json '{"appId": env["IDP_A"]}')" '{}'
  fi
}

# Group object ids in a "groups" claim (security groups), in ID and access tokens.
GROUP_CLAIMS='"groupMembershipClaims": "SecurityGroup",
  "optionalClaims": {
    "accessToken": [{"name": "groups", "essential": false, "additionalProperties": []}],
    "idToken": [{"name": "groups", "essential": false, "additionalProperties": []}]}'

# --- direct mode: the public app -----------------------------------------------------------
if idp_wants_public; then
  body="$(IDP_N="$PUBLIC_CLIENT_NAME" idp_json '{
    "displayName": env["IDP_N"], "signInAudience": "AzureADMyOrg",
    "isFallbackPublicClient": true,
    "publicClient": {"redirectUris": lines("REDIRECT_URIS")},
    '"$GROUP_CLAIMS"',
    "api": {"requestedAccessTokenVersion": 2,
            "oauth2PermissionScopes": [{
              "id": str(uuid.uuid5(uuid.NAMESPACE_URL, "portcullis:" + env["IDP_N"] + ":" + env["SCOPE"])),
              "value": env["SCOPE"], "type": "User", "isEnabled": true,
              "adminConsentDisplayName": "Use MCP servers through Portcullis",
              "adminConsentDescription": "Lets the app call MCP servers behind the Portcullis gateway as the signed-in user.",
              "userConsentDisplayName": "Use MCP servers through Portcullis",
              "userConsentDescription": "Lets the app call MCP servers behind the Portcullis gateway as you."}]}}')"
  upsert_app "$PUBLIC_CLIENT_NAME" "$body"
  PUBLIC_APP_ID="$APP_ID"
  APP_ID_URI="${ENTRA_APP_ID_URI:-api://$PUBLIC_APP_ID}"
  idp_http PATCH "$G/applications/$APP_OBJECT_ID" json \
    "$(IDP_U="$APP_ID_URI" idp_json '{"identifierUris": [env["IDP_U"]]}')" ''
fi

# --- broker mode: the confidential app -----------------------------------------------------
if idp_wants_broker; then
  body="$(IDP_N="$BROKER_CLIENT_NAME" idp_json '{
    "displayName": env["IDP_N"], "signInAudience": "AzureADMyOrg",
    "isFallbackPublicClient": false,
    "web": {"redirectUris": [env["BROKER_CALLBACK"]],
            "implicitGrantSettings": {"enableIdTokenIssuance": false,
                                      "enableAccessTokenIssuance": false}},
    '"$GROUP_CLAIMS"'}')"
  upsert_app "$BROKER_CLIENT_NAME" "$body"
  BROKER_APP_ID="$APP_ID"
  if [[ "$APP_CREATED" == 1 ]]; then
    idp_http POST "$G/applications/$APP_OBJECT_ID/addPassword" json \
      "$(idp_json '{"passwordCredential": {"displayName": "portcullis-broker"}}')" \
      '{"keyId": "<key id>", "secretText": "<redacted>"}'
    idp_broker_secret "$(idp_resp 'r.get("secretText")')"
  else
    idp_log "app $BROKER_CLIENT_NAME existed: no new secret added (addPassword in Entra for one)"
  fi
fi

# --- what portcullis serve needs -----------------------------------------------------------
idp_env PORTCULLIS_AUTH_MODE "$([[ "$IDP_MODE" == broker ]] && echo broker || echo direct)"
idp_env PORTCULLIS_PUBLIC_URL "$PUBLIC_URL"
idp_env PORTCULLIS_IDP_PROFILE entra
idp_env PORTCULLIS_IDP_ISSUER "$AUTHORITY/$TENANT/v2.0"
if idp_wants_public; then
  # v2 access tokens for this app's own scope carry aud = its appId.
  idp_env PORTCULLIS_IDP_AUDIENCE "$PUBLIC_APP_ID"
  idp_env IDE_OAUTH_CLIENT_ID "$PUBLIC_APP_ID"
  idp_env IDE_OAUTH_CALLBACK_PORT "$CALLBACK_PORT"
  idp_env PORTCULLIS_IDP_STRICT_REDIRECTS true
  idp_env MCP_ADVERTISED_SCOPES "openid profile offline_access $APP_ID_URI/$SCOPE"
fi
if idp_wants_broker; then idp_env PORTCULLIS_BROKER_CLIENT_ID "$BROKER_APP_ID"; fi
idp_print_env
