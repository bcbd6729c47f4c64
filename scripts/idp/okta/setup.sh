#!/usr/bin/env bash
# Okta set-up for Portcullis, through the Okta Management API (curl). See ../README.md.
set -euo pipefail
IDP_NAME=okta
# shellcheck source=../lib.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/lib.sh"

usage() {
  cat <<'EOF'
Usage: scripts/idp/okta/setup.sh [--dry-run] [--mode direct|broker|both] [--redirect-uri URI]...

Creates or updates, in one Okta org:
  - a custom authorization server whose audience is PORTCULLIS_IDP_AUDIENCE (or reuses
    OKTA_AUTH_SERVER_ID), with a "groups" claim (groups filtered by OKTA_GROUPS_REGEX) in
    access and ID tokens, and an access policy + rule letting the clients below use the
    authorization code flow;
  direct: the public OIDC app for MCP clients (native, token_endpoint_auth_method none,
          PKCE required, exact redirect URIs);
  broker: the confidential OIDC app (web, client_secret_basic, PKCE required) with one redirect
          URI, <PORTCULLIS_PUBLIC_URL>/oauth/callback; its secret is printed once (or written to
          $BROKER_CLIENT_SECRET_FILE) when the app is created.
  Okta grants nothing to people not assigned to an app: OKTA_ASSIGN_GROUP_IDS assigns groups.
Then prints the environment for `portcullis serve`.

Okta environment:
  OKTA_ORG_URL            (required) e.g. https://acme.okta.com
  OKTA_API_TOKEN          (secret) an API token (sent as Authorization: SSWS …)
  OKTA_AUTH_SERVER_ID     use this existing authorization server instead of creating one
  OKTA_AUTH_SERVER_NAME   name of the one created or reused (default: Portcullis)
  OKTA_GROUPS_REGEX       which groups go into the groups claim (default: .*)
  OKTA_ASSIGN_GROUP_IDS   comma-separated Okta group ids to assign to the app(s)

EOF
  idp_common_usage
}

idp_parse_args "$@"
idp_common_inputs
idp_require OKTA_ORG_URL
ORG="${OKTA_ORG_URL%/}"
AS_NAME="${OKTA_AUTH_SERVER_NAME:-Portcullis}"
GROUPS_REGEX="${OKTA_GROUPS_REGEX:-.*}"
export REDIRECT_URIS AUDIENCE BROKER_CALLBACK GROUPS_REGEX AS_NAME

idp_start
idp_secret OKTA_API_TOKEN
idp_auth_header "Authorization: SSWS $IDP_SECRET"

# --- authorization server (audience, issuer) -----------------------------------------------
if [[ -n "${OKTA_AUTH_SERVER_ID:-}" ]]; then
  AS_ID="$OKTA_AUTH_SERVER_ID"
  idp_http GET "$ORG/api/v1/authorizationServers/$(idp_q "$AS_ID")" none "" \
    "{\"id\": \"$AS_ID\", \"issuer\": \"$ORG/oauth2/$AS_ID\", \"audiences\": [\"$AUDIENCE\"]}"
else
  idp_http GET "$ORG/api/v1/authorizationServers?q=$(idp_q "$AS_NAME")" none "" '[]'
  AS_ID="$(idp_resp 'next((a["id"] for a in r if a.get("name") == env["AS_NAME"]), "")')"
  if [[ -n "$AS_ID" ]]; then
    idp_http GET "$ORG/api/v1/authorizationServers/$AS_ID" none "" ''
  else
    idp_http POST "$ORG/api/v1/authorizationServers" json "$(idp_json '{
      "name": env["AS_NAME"],
      "description": "Issues the tokens MCP clients present to the Portcullis gateway.",
      "audiences": [env["AUDIENCE"]]}')" \
      "{\"id\": \"<authorization server id>\", \"issuer\": \"$ORG/oauth2/<authorization server id>\", \"audiences\": [\"$AUDIENCE\"]}"
    AS_ID="$(idp_resp 'r["id"]')"
  fi
fi
ISSUER="$(idp_resp 'r.get("issuer")')"
AS_AUDIENCES="$(idp_resp '",".join(r.get("audiences", []))')"
if [[ ",$AS_AUDIENCES," != *",$AUDIENCE,"* ]]; then
  idp_log "authorization server $AS_ID has audiences '$AS_AUDIENCES', not '$AUDIENCE': using its own"
  AUDIENCE="$AS_AUDIENCES"
fi
AS="$ORG/api/v1/authorizationServers/$AS_ID"

# --- groups claim, in access tokens (RESOURCE) and ID tokens (IDENTITY) --------------------
idp_http GET "$AS/claims" none "" '[]'
EXISTING_CLAIMS="$(idp_resp '" ".join(c.get("name", "") + "/" + c.get("claimType", "") for c in r)')"
for claim_type in RESOURCE IDENTITY; do
  if [[ " $EXISTING_CLAIMS " == *" groups/$claim_type "* ]]; then
    idp_log "claim groups ($claim_type) exists: left as it is"
    continue
  fi
  idp_http POST "$AS/claims" json "$(IDP_T="$claim_type" idp_json '{
    "name": "groups", "status": "ACTIVE", "claimType": env["IDP_T"],
    "valueType": "GROUPS", "group_filter_type": "REGEX", "value": env["GROUPS_REGEX"],
    "alwaysIncludeInToken": true, "conditions": {"scopes": []}}')" '{}'
done

# --- apps ----------------------------------------------------------------------------------
# find_app LABEL: sets APP_ID and CLIENT_ID of the OIDC app with that label, or empty.
find_app() {
  idp_http GET "$ORG/api/v1/apps?q=$(idp_q "$1")&limit=200" none "" '[]'
  local found
  found="$(IDP_L="$1" idp_resp 'next((a["id"] + " " + a["credentials"]["oauthClient"]["client_id"]
    for a in r if a.get("label") == env["IDP_L"] and a.get("signOnMode") == "OPENID_CONNECT"), "")')"
  APP_ID="${found%% *}"
  CLIENT_ID="${found#* }"
}

assign_groups() {
  local gid gids=()
  IFS=, read -r -a gids <<<"${OKTA_ASSIGN_GROUP_IDS:-}"
  for gid in "${gids[@]+"${gids[@]}"}"; do
    [[ -n "$gid" ]] || continue
    idp_http PUT "$ORG/api/v1/apps/$1/groups/$(idp_q "$gid")" json '{}' '{}'
  done
}

CLIENT_IDS=()
if idp_wants_public; then
  find_app "$PUBLIC_CLIENT_NAME"
  body="$(IDP_L="$PUBLIC_CLIENT_NAME" idp_json '{
    "name": "oidc_client", "label": env["IDP_L"], "signOnMode": "OPENID_CONNECT",
    "credentials": {"oauthClient": {"token_endpoint_auth_method": "none",
                                    "pkce_required": true, "autoKeyRotation": true}},
    "settings": {"oauthClient": {"application_type": "native",
                                 "grant_types": ["authorization_code", "refresh_token"],
                                 "response_types": ["code"],
                                 "redirect_uris": lines("REDIRECT_URIS"),
                                 "post_logout_redirect_uris": []}}}')"
  if [[ -n "$APP_ID" ]]; then
    body="$(IDP_B="$body" IDP_C="$CLIENT_ID" idp_json '(lambda b: (b["credentials"]["oauthClient"].update(client_id=env["IDP_C"]), b)[1])(json.loads(env["IDP_B"]))')"
    idp_http PUT "$ORG/api/v1/apps/$APP_ID" json "$body" '{}'
  else
    idp_http POST "$ORG/api/v1/apps" json "$body" \
      '{"id": "<public app id>", "credentials": {"oauthClient": {"client_id": "<public client id>"}}}'
    APP_ID="$(idp_resp 'r["id"]')"
    CLIENT_ID="$(idp_resp 'r["credentials"]["oauthClient"]["client_id"]')"
  fi
  PUBLIC_CLIENT_ID="$CLIENT_ID"
  CLIENT_IDS+=("$CLIENT_ID")
  assign_groups "$APP_ID"
fi

if idp_wants_broker; then
  find_app "$BROKER_CLIENT_NAME"
  if [[ -n "$APP_ID" ]]; then
    # A replace (PUT) without the secret could drop it: an existing broker app is left alone.
    idp_log "app $BROKER_CLIENT_NAME exists: left unchanged, its secret not shown (its redirect URI must be $BROKER_CALLBACK)"
  else
    idp_http POST "$ORG/api/v1/apps" json "$(IDP_L="$BROKER_CLIENT_NAME" idp_json '{
      "name": "oidc_client", "label": env["IDP_L"], "signOnMode": "OPENID_CONNECT",
      "credentials": {"oauthClient": {"token_endpoint_auth_method": "client_secret_basic",
                                      "pkce_required": true, "autoKeyRotation": true}},
      "settings": {"oauthClient": {"application_type": "web",
                                   "grant_types": ["authorization_code", "refresh_token"],
                                   "response_types": ["code"],
                                   "redirect_uris": [env["BROKER_CALLBACK"]],
                                   "post_logout_redirect_uris": []}}}')" \
      '{"id": "<broker app id>", "credentials": {"oauthClient": {"client_id": "<broker client id>", "client_secret": "<redacted>"}}}'
    APP_ID="$(idp_resp 'r["id"]')"
    CLIENT_ID="$(idp_resp 'r["credentials"]["oauthClient"]["client_id"]')"
    idp_broker_secret "$(idp_resp 'r["credentials"]["oauthClient"].get("client_secret")')"
  fi
  BROKER_CLIENT_ID="$CLIENT_ID"
  CLIENT_IDS+=("$CLIENT_ID")
  assign_groups "$APP_ID"
fi

# --- access policy + rule: these clients may use the authorization code flow ---------------
CLIENTS_CSV="$(IFS=,; printf '%s' "${CLIENT_IDS[*]}")"
export CLIENTS_CSV
idp_http GET "$AS/policies" none "" '[]'
POLICY_ID="$(idp_resp 'next((p["id"] for p in r if p.get("name") == "Portcullis"), "")')"
policy="$(idp_json '{
  "type": "OAUTH_AUTHORIZATION_POLICY", "status": "ACTIVE", "name": "Portcullis",
  "description": "Clients of the Portcullis gateway.", "priority": 1,
  "conditions": {"clients": {"include": csv("CLIENTS_CSV")}}}')"
if [[ -n "$POLICY_ID" ]]; then
  # Keep the clients already in the policy (another mode's run put them there).
  idp_http PUT "$AS/policies/$POLICY_ID" json "$(IDP_B="$policy" IDP_R="$IDP_TMP/resp" IDP_P="$POLICY_ID" idp_json '
(lambda b, old: (b["conditions"]["clients"].update(include=sorted(set(b["conditions"]["clients"]["include"]) | set(old))), b)[1])(
  json.loads(env["IDP_B"]),
  next(p for p in json.load(open(env["IDP_R"])) if p["id"] == env["IDP_P"])["conditions"]["clients"]["include"])')" '{}'
else
  idp_http POST "$AS/policies" json "$policy" '{"id": "<policy id>"}'
  POLICY_ID="$(idp_resp 'r["id"]')"
fi
idp_http GET "$AS/policies/$POLICY_ID/rules" none "" '[]'
RULE_ID="$(idp_resp 'next((x["id"] for x in r if x.get("name") == "Portcullis sign-in"), "")')"
rule="$(idp_json '{
  "type": "RESOURCE_ACCESS", "status": "ACTIVE", "name": "Portcullis sign-in", "priority": 1,
  "conditions": {"people": {"groups": {"include": ["EVERYONE"]}},
                 "grantTypes": {"include": ["authorization_code"]},
                 "scopes": {"include": ["*"]}},
  "actions": {"token": {"accessTokenLifetimeMinutes": 60, "refreshTokenLifetimeMinutes": 0,
                        "refreshTokenWindowMinutes": 10080}}}')"
if [[ -n "$RULE_ID" ]]; then
  idp_http PUT "$AS/policies/$POLICY_ID/rules/$RULE_ID" json "$rule" '{}'
else
  idp_http POST "$AS/policies/$POLICY_ID/rules" json "$rule" '{"id": "<rule id>"}'
fi

# --- what portcullis serve needs -----------------------------------------------------------
idp_env PORTCULLIS_AUTH_MODE "$([[ "$IDP_MODE" == broker ]] && echo broker || echo direct)"
idp_env PORTCULLIS_PUBLIC_URL "$PUBLIC_URL"
idp_env PORTCULLIS_IDP_PROFILE okta
idp_env PORTCULLIS_IDP_ISSUER "$ISSUER"
if idp_wants_public; then
  idp_env PORTCULLIS_IDP_AUDIENCE "$AUDIENCE"
  idp_env IDE_OAUTH_CLIENT_ID "$PUBLIC_CLIENT_ID"
  idp_env IDE_OAUTH_CALLBACK_PORT "$CALLBACK_PORT"
  idp_env PORTCULLIS_IDP_STRICT_REDIRECTS true
fi
if idp_wants_broker; then idp_env PORTCULLIS_BROKER_CLIENT_ID "$BROKER_CLIENT_ID"; fi
idp_print_env
