//! `GET /api/openapi.json`: the OpenAPI 3.1 description of every route: the contract. Written
//! here by hand, then [`complete`] adds the answers every operation of a kind can give (400 for
//! a bad parameter, 413/415 for a body, 401 for a credential). Kept true by
//! `control-plane/tests/api/contract.rs` (routes, parameters and body fields against the
//! router and the handlers' types; the error answers against the server) and by
//! `scripts/schemathesis.sh` (a real server, generated requests: no 5xx, no undocumented status,
//! every answer matching its schema).

use axum::response::IntoResponse;
use axum::Json;
use serde_json::{json, Map, Value};

use crate::http::api::servers::FORM_FIELDS;

fn err(description: &str) -> Value {
    json!({"description": description, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}})
}

fn ok(description: &str, schema: Value) -> Value {
    json!({"description": description, "content": {"application/json": {"schema": schema}}})
}

fn r(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

/// The broker mode's admin paths: the built-in users and the authorization server's clients
/// (apart: one `json!` cannot hold every path). The `/oauth/…` endpoints themselves are OAuth's,
/// described by the RFC 8414 metadata, not here.
fn broker_paths() -> Value {
    json!({
            "/api/users": {
                "get": op("List the built-in users (broker mode; never their passwords)", true, json!({"200": ok("The users", json!({"type": "object", "properties": {"users": {"type": "array", "items": r("User")}}}))})),
            },
            "/api/users/{username}": {
                "parameters": [path_param("username", "Username: letters, digits, . _ - @", "alice")],
                "put": with_body(op("Create or replace a built-in user (password required on creation)", true, json!({
                    "200": ok("Replaced", r("User")), "201": ok("Created", r("User")),
                    "400": err("Malformed JSON or unknown field"), "422": err("Invalid field")})),
                    json!({"type": "object", "additionalProperties": false, "properties": {
                        "password": text(8, 1024, NO_CONTROL), "groups": {"type": "array", "items": group_name()},
                        "display_name": {"type": ["string", "null"], "maxLength": 128, "pattern": NO_CONTROL},
                        "disabled": {"type": "boolean"}}})),
                "delete": op("Delete a built-in user", true, json!({"204": {"description": "Deleted"}, "404": err("No such user")})),
            },
            "/api/oauth-clients": {
                "get": op("List the authorization server's clients (broker mode)", true, json!({"200": ok("The clients", json!({"type": "object", "properties": {"clients": {"type": "array", "items": r("OAuthClient")}}}))})),
                "post": with_body(op("Pre-register a client (broker mode); a confidential client's client_secret is in this answer only", true, json!({
                    "201": ok("Registered", r("OAuthClient")), "400": err("Malformed JSON or unknown field"),
                    "404": err("Not broker mode"), "422": err("Invalid field")})),
                    json!({"type": "object", "required": ["client_name"], "additionalProperties": false, "properties": {
                        "client_name": text(1, 200, NO_CONTROL), "redirect_uris": {"type": "array", "items": {"type": "string"}},
                        "confidential": {"type": "boolean"},
                        "grant_types": {"type": ["array", "null"], "items": {"type": "string", "enum": ["authorization_code", "refresh_token", "client_credentials"]}},
                        "groups": {"type": "array", "items": group_name()}}})),
            },
            "/api/oauth-clients/{client_id}": {
                "parameters": [path_param("client_id", "Client id", "pc_example")],
                "delete": op("Delete a client; its refresh tokens and unused codes are revoked", true, json!({"204": {"description": "Deleted"}, "404": err("No such client")})),
            },
            "/api/oauth-clients/cimd": {
                "post": with_body(op("Store a client's metadata document (broker mode): a client whose client_id is that https URL, checked as a fetched document, never fetched", true, json!({
                    "200": ok("Replaced the stored copy", r("OAuthClient")), "201": ok("Stored", r("OAuthClient")),
                    "400": err("Malformed JSON"), "404": err("Not broker mode"), "422": err("Invalid document")})),
                    json!({"type": "object", "required": ["client_id", "redirect_uris"], "properties": {
                        "client_id": {"type": "string", "format": "uri", "pattern": "^https://"},
                        "client_name": text(1, 200, NO_CONTROL),
                        "redirect_uris": {"type": "array", "minItems": 1, "maxItems": 20, "items": {"type": "string"}},
                        "token_endpoint_auth_method": {"type": "string", "enum": ["none"]},
                        "grant_types": {"type": "array", "items": {"type": "string", "enum": ["authorization_code", "refresh_token"]}}}})),
            },
            "/api/oauth-clients/{client_id}/approve-redirects": {
                "parameters": [path_param("client_id", "Client id (a metadata document's URL, percent-encoded)", "pc_example")],
                "put": op("Approve the redirect URIs a newer copy of a client's metadata document added", true, json!({
                    "200": ok("The client with its redirect URIs", r("OAuthClient")), "404": err("No such client, or not broker mode")})),
            },
            "/api/oauth-clients/{client_id}/status": {
                "parameters": [path_param("client_id", "Client id", "pc_example")],
                "put": with_body(op("Enable, approve (a pending DCR client) or disable a client (disabling revokes its grants)", true, json!({
                    "204": {"description": "Changed"}, "400": err("Malformed JSON or unknown field"),
                    "404": err("No such client"), "422": err("Invalid status")})),
                    json!({"type": "object", "required": ["status"], "additionalProperties": false, "properties": {
                        "status": {"type": "string", "enum": ["active", "disabled"]}}})),
            },
    })
}

fn op(summary: &str, auth: bool, responses: Value) -> Value {
    let mut responses = responses.as_object().cloned().unwrap_or_default();
    let mut o = Map::new();
    o.insert("summary".into(), summary.into());
    if auth {
        o.insert("security".into(), json!([{"bearer": []}]));
        responses.insert("401".into(), err("No or invalid credentials"));
        responses.insert("403".into(), err("Not allowed (admin credential needed)"));
    } else {
        o.insert("security".into(), json!([]));
    }
    o.insert("responses".into(), Value::Object(responses));
    Value::Object(o)
}

fn with_body(mut op: Value, schema: Value) -> Value {
    op["requestBody"] =
        json!({"required": true, "content": {"application/json": {"schema": schema}}});
    op
}

fn param(name: &str, location: &str, description: &str) -> Value {
    typed_param(name, location, description, json!({"type": "string"}))
}

/// A path parameter with an example (what `scripts/schemathesis.sh` registers first, so the
/// generated requests reach a resource).
fn path_param(name: &str, description: &str, example: &str) -> Value {
    let mut p = param(name, "path", description);
    p["example"] = example.into();
    p
}

/// One segment of a server path (`registry::validate::path`).
fn segment_param(name: &str, description: &str, example: &str) -> Value {
    let mut p = path_param(name, description, example);
    p["schema"] = json!({"type": "string", "minLength": 1, "maxLength": 127, "pattern": "^[A-Za-z0-9_~-][A-Za-z0-9._~-]*$"});
    p
}

fn typed_param(name: &str, location: &str, description: &str, schema: Value) -> Value {
    json!({"name": name, "in": location, "required": location == "path", "schema": schema, "description": description})
}

/// Control characters (Unicode `Cc`) except tab and line feed: what
/// `registry::validate::check_text` refuses.
const NO_CONTROL_BUT_TAB_LF: &str = "^[^\\u0000-\\u0008\\u000b-\\u001f\\u007f-\\u009f]*$";
/// No control character at all.
const NO_CONTROL: &str = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$";
/// Scope names (`registry::validate::scope_name`): no whitespace, control character, `"`, `,`
/// or backslash.
const SCOPE_NAME: &str = "^[^\\s\\u0000-\\u001f\\u007f-\\u009f\",\\\\]*$";

/// A string of at most `max` characters; `min` 1 for a required, non-empty one.
fn text(min: u64, max: u64, pattern: &str) -> Value {
    json!({"type": "string", "minLength": min, "maxLength": max, "pattern": pattern})
}

fn scope_name() -> Value {
    json!({"type": "string", "minLength": 1, "maxLength": 128, "pattern": SCOPE_NAME, "description": "1-128 bytes; no whitespace, control character, quote, comma or backslash"})
}

fn group_name() -> Value {
    text(1, 256, NO_CONTROL)
}

fn server_ops(params: Vec<Value>) -> Value {
    let server = r("Server");
    json!({
        "parameters": params,
        "get": op("Read a server", true, json!({"200": ok("The server", server.clone()), "404": err("No such server (or not visible to the caller)")})),
        "put": with_body(op("Replace a server: omitted fields are cleared to unset", true, json!({
            "200": ok("The server", server.clone()), "400": err("Malformed JSON or unknown field"),
            "404": err("No such server"), "409": err("Name taken, or a path another server claims"), "413": err("Body too large"), "422": err("Invalid field")})), r("ServerInput")),
        "patch": with_body(op("Update some fields of a server (null clears an optional field)", true, json!({
            "200": ok("The server", server), "400": err("Malformed JSON or unknown field"),
            "404": err("No such server"), "409": err("Name taken, or a path another server claims"), "422": err("Invalid field")})), r("ServerPatch")),
        "delete": op("Delete a server", true, json!({"204": {"description": "Deleted"}, "404": err("No such server")})),
    })
}

fn connect_config_op(mut params: Vec<Value>) -> Value {
    params.push(json!({"name": "ide", "in": "query", "required": false,
        "schema": {"type": "string", "enum": crate::connect::Ide::ALL.map(crate::connect::Ide::as_str)},
        "description": "One assistant (other spellings such as claude_code are accepted); absent or empty: every assistant"}));
    json!({
        "parameters": params,
        "get": {
            "summary": "Connect configs of a server: resolved URL and client id, the config to paste per assistant, warnings (docs/connect.md)",
            "security": [{"bearer": []}],
            "responses": {
                "200": ok("The connect config (Cache-Control: no-store; an admin's may embed the static token)", r("ConnectConfig")),
                "400": err("Unknown assistant in ide, or unknown query parameter"),
                "401": err("No or invalid credentials"),
                "404": err("No such server (or not visible to the caller)"),
            },
        },
    })
}

fn metadata_op(summary: &str, schema: Value, params: Vec<Value>) -> Value {
    json!({
        "parameters": params,
        "get": op(summary, false, json!({"200": ok("The document", schema), "404": err("Nothing here"), "502": err("The IdP could not be reached"), "503": err("Not configured")})),
        "options": op("CORS preflight", false, json!({"204": {"description": "CORS headers"}})),
    })
}

/// The answers every operation of a kind can give, added where the table leaves them out: 400
/// for a malformed parameter or body, 404 when a path parameter names nothing, 413 and 415 for a
/// body, 401 for a credential.
fn complete(doc: &mut Value) {
    let Some(paths) = doc["paths"].as_object_mut() else {
        return;
    };
    for item in paths.values_mut() {
        let nonempty =
            |v: Option<&Value>| v.and_then(Value::as_array).is_some_and(|a| !a.is_empty());
        let path_params = nonempty(item.get("parameters"));
        let Some(item) = item.as_object_mut() else {
            continue;
        };
        for (method, op) in item.iter_mut() {
            if method == "parameters" {
                continue;
            }
            let has_params = path_params || nonempty(op.get("parameters"));
            let has_body = op.get("requestBody").is_some();
            let secured = nonempty(op.get("security"));
            let Some(responses) = op.get_mut("responses").and_then(Value::as_object_mut) else {
                continue;
            };
            let mut add = |code: &str, description: &str| {
                responses.entry(code).or_insert_with(|| err(description));
            };
            if has_params || has_body {
                add("400", "Malformed request: a parameter or body that does not parse, is not UTF-8, or has an unknown field");
            }
            if path_params {
                add("404", "Nothing at this path");
            }
            if has_body {
                add("413", "Body too large");
                add("415", "Content type not accepted (JSON bodies: application/json, optionally with charset=utf-8)");
            }
            if secured {
                add("401", "No or invalid credentials");
            }
        }
    }
}

/// The document.
pub fn document() -> Value {
    let mut doc = table();
    if let (Some(paths), Value::Object(more)) = (doc["paths"].as_object_mut(), broker_paths()) {
        paths.extend(more);
    }
    // PATCH takes any of the writable fields of a server (the read-only ones are refused).
    let schemas = &mut doc["components"]["schemas"];
    let mut patch = schemas["ServerInput"]["properties"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    patch.retain(|_, v| v.get("type").is_some() || v.get("oneOf").is_some());
    schemas["ServerPatch"]["properties"] = Value::Object(patch);
    complete(&mut doc);
    doc
}

fn table() -> Value {
    let prm = r("ProtectedResourceMetadata");
    let asm = json!({"type": "object", "description": "The IdP's OIDC discovery document, normalised (code_challenge_methods_supported added when missing)."});
    let mut form_props = Map::new();
    for f in FORM_FIELDS {
        let schema = match *f {
            "name" => text(1, 128, NO_CONTROL_BUT_TAB_LF),
            "path" => {
                json!({"type": "string", "minLength": 2, "maxLength": 128, "pattern": "^/[A-Za-z0-9_~-][A-Za-z0-9._~-]*(/[A-Za-z0-9_~-][A-Za-z0-9._~-]*)?$"})
            }
            "proxy_pass_url" => {
                json!({"type": "string", "minLength": 1, "maxLength": 2048, "format": "iri", "pattern": "^https?://"})
            }
            "description" => text(0, 4096, NO_CONTROL_BUT_TAB_LF),
            "append_mcp_path" => json!({"type": "string", "enum": ["", "true", "false"]}),
            "num_tools" => json!({"type": "string", "pattern": "^[0-9]{0,18}$"}),
            _ => json!({"type": "string"}),
        };
        form_props.insert((*f).into(), schema);
    }
    let server_path = vec![segment_param(
        "path",
        "Server path without the leading slash (one segment)",
        "github",
    )];
    let server_path2 = vec![
        segment_param(
            "prefix",
            "First segment of a two-segment server path",
            "team",
        ),
        segment_param("name", "Second segment", "docs"),
    ];
    // Built apart: one more level inside the document's `json!` exceeds the macro's recursion.
    let audit_gap = json!({"type": "object", "required": ["id", "reason", "from_ms", "to_ms", "lost"],
        "description": "lost decisions an Envoy could not deliver", "properties": {
        "id": {"type": "string"}, "reason": {"enum": ["buffer_full", "refused", "malformed"]},
        "from_ms": {"type": "integer"}, "to_ms": {"type": "integer"}, "lost": {"type": "integer", "minimum": 1}}});
    let audit_event = json!({"type": "object", "required": ["time_ms", "policy_version", "decision", "status", "reason", "http_method", "path"], "properties": {
                    "time_ms": {"type": "integer"}, "request_id": {"type": ["string", "null"]}, "policy_version": {"type": "integer"},
                    "decision": {"enum": ["allow", "deny"]}, "status": {"type": "integer"}, "reason": {"type": "string"},
                    "sub": {"type": ["string", "null"]}, "username": {"type": ["string", "null"]}, "issuer": {"type": ["string", "null"]},
                    "client_id": {"type": ["string", "null"]}, "groups": {"type": "array", "items": {"type": "string"}},
                    "scopes": {"type": "array", "items": {"type": "string"}}, "server": {"type": ["string", "null"]},
                    "method": {"type": ["string", "null"]}, "tool": {"type": ["string", "null"]}, "http_method": {"type": "string"}, "path": {"type": "string"},
                    "event_id": {"type": ["string", "null"], "description": "made by the filter; stored once (a batch sent again stores nothing twice)"}}});
    let audit_batch = json!({"type": "object", "required": ["events"], "additionalProperties": false,
        "properties": {"events": {"type": "array", "items": r("AuditEvent")}, "dropped": {"type": "integer", "minimum": 0},
        "gaps": {"type": "array", "items": r("AuditGap")}}});
    let audit_stored = json!({"type": "object", "properties": {"accepted": {"type": "integer"},
        "duplicates": {"type": "integer", "description": "events whose event_id was stored already"},
        "refused": {"type": "integer"}, "gaps": {"type": "integer"}}});
    let audit_page = json!({"type": "object", "required": ["events", "gaps", "next_cursor"], "properties": {
        "events": {"type": "array", "items": r("AuditRecord")},
        "gaps": {"type": "array", "items": r("AuditGapRecord"), "description": "where the trail is incomplete in the window asked for"},
        "next_cursor": {"type": ["string", "null"]}}});
    let audit_gap_record = json!({"allOf": [r("AuditGap"), {"type": "object", "required": ["received_ms"],
        "properties": {"received_ms": {"type": "integer"}}}]});
    let mut document = json!({
        "openapi": "3.1.0",
        "info": {"title": "Portcullis control plane", "version": env!("CARGO_PKG_VERSION"),
                  "description": "MCP server registry, access scopes, group mappings and OAuth discovery metadata. See docs/control-plane.md."},
        "paths": {
            "/healthz": {"get": op("Liveness (always 200)", false, json!({"200": ok("Alive", json!({"type": "object"}))}))},
            "/readyz": {"get": op("Readiness: the database answers", false, json!({"200": ok("Ready", json!({"type": "object"})), "503": err("Database unreachable")}))},
            "/metrics": {"get": op("Prometheus metrics", false, json!({"200": {"description": "Prometheus text format", "content": {"text/plain": {"schema": {"type": "string"}}}}}))},
            "/api/openapi.json": {"get": op("This document", false, json!({"200": ok("OpenAPI 3.1", json!({"type": "object"}))}))},
            "/api/servers/register": {"post": {
                "summary": "Register a server (form fields, like the reference registry; or JSON)",
                "security": [{"bearer": []}],
                "requestBody": {"required": true, "content": {
                    "multipart/form-data": {"schema": {"type": "object", "properties": form_props.clone(), "required": ["name", "path", "proxy_pass_url"]}},
                    "application/x-www-form-urlencoded": {"schema": {"type": "object", "properties": form_props, "required": ["name", "path", "proxy_pass_url"]}},
                    "application/json": {"schema": r("ServerInput")}}},
                "responses": {"201": ok("Registered", r("Server")), "400": err("Unknown or repeated field"), "401": err("No or invalid credentials"),
                              "403": err("Not an admin"), "409": err("Path or name already registered, or a path another server claims (<path>/mcp, mcp_endpoint)"), "413": err("Body too large"),
                              "415": err("Unsupported content type"), "422": err("Invalid field")}}},
            "/api/servers": {"get": {
                "summary": "List the servers the caller may access (all for an admin)",
                "security": [{"bearer": []}],
                "parameters": [param("q", "query", "Case-insensitive substring of the name"), param("tag", "query", "Exact tag")],
                "responses": {"200": ok("Servers", json!({"type": "object", "properties": {"total_count": {"type": "integer"}, "servers": {"type": "array", "items": r("Server")}}})),
                              "400": err("Unknown query parameter"), "401": err("No or invalid credentials")}}},
            "/api/servers/{path}": server_ops(server_path.clone()),
            "/api/servers/{prefix}/{name}": server_ops(server_path2.clone()),
            "/api/servers/{path}/connect-config": connect_config_op(server_path.clone()),
            "/api/servers/{prefix}/{name}/connect-config": connect_config_op(server_path2),
            "/api/scopes": {"get": op("List scopes", true, json!({"200": ok("Scopes", json!({"type": "object", "properties": {"scopes": {"type": "array", "items": r("Scope")}}}))}))},
            "/api/scopes/{name}": {
                "parameters": [path_param("name", "Scope name", "readers")],
                "get": op("Read a scope", true, json!({"200": ok("The scope", r("Scope")), "404": err("No such scope")})),
                "put": with_body(op("Create (201) or replace (200) a scope", true, json!({"200": ok("Replaced", r("Scope")), "201": ok("Created", r("Scope")),
                    "400": err("Malformed JSON or unknown field"), "422": err("Invalid field (unknown server, bad pattern)")})), r("ScopeInput")),
                "delete": op("Delete a scope", true, json!({"204": {"description": "Deleted"}, "404": err("No such scope")})),
            },
            "/api/group-mappings": {"get": op("List group mappings", true, json!({"200": ok("Mappings", json!({"type": "object", "properties": {"group_mappings": {"type": "array", "items": r("GroupMapping")}}}))}))},
            "/api/group-mappings/{group}": {
                "parameters": [path_param("group", "IdP group name (percent-encode a /)", "engineering")],
                "get": op("Read a group's scopes", true, json!({"200": ok("The mapping", r("GroupMapping")), "404": err("No such mapping")})),
                "put": with_body(op("Set a group's scopes", true, json!({"200": ok("Replaced", r("GroupMapping")), "201": ok("Created", r("GroupMapping")),
                    "400": err("Malformed JSON or unknown field"), "422": err("Unknown scope")})), json!({"type": "object", "required": ["scopes"], "additionalProperties": false,
                    "properties": {"group": {"oneOf": [group_name(), {"type": "null"}], "description": "Must equal the URL's group"},
                    "scopes": {"type": "array", "maxItems": 256, "items": scope_name()}, "updated_at": {"description": "read-only, ignored"}}})),
                "delete": op("Delete a mapping", true, json!({"204": {"description": "Deleted"}, "404": err("No such mapping")})),
            },
            "/api/keys": {
                "get": op("List API keys (never the keys themselves)", true, json!({"200": ok("The keys", json!({"type": "object", "properties": {"keys": {"type": "array", "items": r("ApiKey")}}}))})),
                "post": with_body(op("Create an API key; the answer's `key` is the only time it is shown", true, json!({
                    "201": ok("Created", r("ApiKey")), "400": err("Malformed JSON or unknown field"), "409": err("Name taken"), "422": err("Invalid field")})),
                    json!({"type": "object", "required": ["name"], "additionalProperties": false, "properties": {
                        "name": scope_name(), "subject": text(1, 256, NO_CONTROL), "groups": {"type": "array", "items": group_name()},
                        "scopes": {"type": "array", "items": scope_name()},
                        "expires_at": {"type": ["integer", "null"], "format": "int64", "maximum": i64::MAX, "description": "unix seconds, in the future"}}})),
            },
            "/api/keys/{name}": {
                "parameters": [path_param("name", "Key name", "ci")],
                "delete": op("Revoke an API key", true, json!({"204": {"description": "Revoked"}, "404": err("No such key")})),
            },
            "/api/audit": {
                "get": {
                    "summary": "The decision trail, newest first (admins only)",
                    "security": [{"bearer": []}],
                    "parameters": [
                        param("user", "query", "sub or preferred username, exact"),
                        param("server", "query", "registry server name"),
                        param("tool", "query", "tool name"),
                        typed_param("decision", "query", "allow or deny", json!({"type": "string", "enum": ["allow", "deny"]})),
                        typed_param("since", "query", "unix milliseconds, inclusive", json!({"type": "integer", "format": "int64"})),
                        typed_param("until", "query", "unix milliseconds, exclusive (after since)", json!({"type": "integer", "format": "int64"})),
                        typed_param("limit", "query", "1 to 1000 (default 100)", json!({"type": "integer", "minimum": 1, "maximum": 1000})),
                        param("cursor", "query", "next_cursor of the previous page"),
                    ],
                    "responses": {
                        "200": ok("One page", audit_page),
                        "400": err("Unknown parameter, or a value of the wrong type"), "401": err("No or invalid credentials"),
                        "403": err("Not an admin"), "422": err("Invalid parameter value (range, decision, cursor)"),
                    },
                },
            },
            "/v1/policy": {
                "get": {
                    "summary": "The current policy snapshot for Envoy's sync service; long-polls with If-None-Match",
                    "security": [{"sync": []}],
                    "parameters": [
                        typed_param("wait", "query", "seconds (0-60) to hold the request while the client's ETag is current", json!({"type": "integer", "minimum": 0, "maximum": 60})),
                        typed_param("deltas", "query", "1: the client applies deltas; with an If-None-Match naming a recent version the answer is the changes since it (application/x-ndjson)", json!({"type": "integer", "minimum": 0, "maximum": 1})),
                        {"name": "If-None-Match", "in": "header", "required": false, "schema": {"type": "string"}, "description": "ETag of the snapshot the client has"},
                    ],
                    "responses": {
                        "200": {"description": "Policy snapshot v1 (docs/policy.md), or with deltas=1 the deltas since the client's version, one JSON object per line; ETag and x-portcullis-policy-version headers", "content": {"application/json": {"schema": {"type": "object"}}, "application/x-ndjson": {"schema": {"type": "string"}}}},
                        "304": {"description": "Unchanged after waiting"},
                        "400": err("Unknown parameter, or wait not a number"), "401": err("No or invalid sync token"), "422": err("wait or deltas out of range"),
                        "503": err("Sync disabled (no PORTCULLIS_SYNC_TOKEN) or no snapshot yet"),
                    },
                },
            },
            "/v1/audit": {
                "post": {
                    "summary": "A batch of decisions from Envoy's sync service",
                    "security": [{"sync": []}],
                    "requestBody": {"required": true, "content": {"application/json": {"schema": audit_batch}}},
                    "responses": {
                        "202": ok("Stored", audit_stored),
                        "400": err("Malformed batch; nothing stored"), "401": err("No or invalid sync token"),
                        "413": err("Batch too large"), "415": err("Not application/json"), "503": err("Sync disabled"),
                    },
                },
            },
            "/.well-known/oauth-protected-resource": metadata_op("RFC 9728 metadata of the only registered server", prm.clone(), vec![]),
            "/.well-known/oauth-protected-resource/{path}": metadata_op(
                "RFC 9728 metadata of the server at this path (its path, <path>/mcp, or its mcp_endpoint's path); also served at <server path>/.well-known/oauth-protected-resource",
                prm, vec![path_param("path", "Server path (may contain /)", "github/mcp")]),
            "/.well-known/oauth-authorization-server": metadata_op("RFC 8414 metadata (direct mode: the IdP's, normalised)", asm.clone(), vec![]),
            "/.well-known/oauth-authorization-server/{issuer_path}": metadata_op("RFC 8414 metadata at the issuer's path-inserted location", asm.clone(),
                vec![path_param("issuer_path", "The IdP issuer's path", "realms/test")]),
            "/.well-known/openid-configuration": metadata_op("OIDC discovery (direct mode: the IdP's, normalised)", asm.clone(), vec![]),
            "/.well-known/openid-configuration/{issuer_path}": metadata_op("OIDC discovery at the path-inserted location; also served at <issuer path>/.well-known/openid-configuration", asm,
                vec![path_param("issuer_path", "The IdP issuer's path", "realms/test")]),
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "description": "PORTCULLIS_ADMIN_TOKEN, or an IdP access token"},
                "sync": {"type": "http", "scheme": "bearer", "description": "PORTCULLIS_SYNC_TOKEN (Envoy's sync service)"}},
            "schemas": {
                "User": {"type": "object", "required": ["username", "groups", "disabled", "created_at", "updated_at"], "properties": {
                    "username": {"type": "string"}, "groups": {"type": "array", "items": {"type": "string"}},
                    "display_name": {"type": ["string", "null"]}, "disabled": {"type": "boolean"},
                    "created_at": {"type": "integer"}, "updated_at": {"type": "integer"}}},
                "OAuthClient": {"type": "object", "required": ["client_id", "registration_type", "redirect_uris", "token_endpoint_auth_method", "status", "created_at"], "properties": {
                    "client_id": {"type": "string"}, "registration_type": {"type": "string", "enum": ["dcr", "prereg", "cimd"]},
                    "client_name": {"type": ["string", "null"]}, "redirect_uris": {"type": "array", "items": {"type": "string"}},
                    "token_endpoint_auth_method": {"type": "string"}, "status": {"type": "string", "enum": ["active", "disabled", "pending"], "description": "pending: registered by DCR with PORTCULLIS_DCR_APPROVAL=on, not approved yet (set it active to approve)"},
                    "created_at": {"type": "integer"}, "expires_at": {"type": ["integer", "null"]}, "last_used_at": {"type": ["integer", "null"]},
                    "pending_redirect_uris": {"type": "array", "items": {"type": "string"}, "description": "metadata-document clients: redirect URIs a newer copy added, unused until approved"},
                    "document_fresh_until": {"type": "integer", "description": "metadata-document clients: the stored copy is used until then"},
                    "pinned": {"type": "boolean", "description": "metadata-document clients: an administrator stored the document"}}},
                "ApiKey": {"type": "object", "required": ["name", "subject", "groups", "scopes", "created_at"], "properties": {
                    "name": {"type": "string"}, "subject": {"type": "string"}, "groups": {"type": "array", "items": {"type": "string"}},
                    "scopes": {"type": "array", "items": {"type": "string"}}, "expires_at": {"type": ["integer", "null"]}, "created_at": {"type": "integer"},
                    "key": {"type": "string", "description": "only in the answer to POST"}}},
                "AuditEvent": audit_event,
                "AuditRecord": {"allOf": [r("AuditEvent"), {"type": "object", "required": ["id", "received_ms"], "properties": {"id": {"type": "string"}, "received_ms": {"type": "integer"}}}]},
                "Error": {"type": "object", "required": ["error", "error_description"], "properties": {"error": {"type": "string"}, "error_description": {"type": "string"}}},
                "ServerInput": {"type": "object", "required": ["name", "proxy_pass_url"], "additionalProperties": false, "properties": {
                    "name": text(1, 128, NO_CONTROL_BUT_TAB_LF), "description": {"type": ["string", "null"], "maxLength": 4096, "pattern": NO_CONTROL_BUT_TAB_LF},
                    "path": {"type": ["string", "null"], "maxLength": 128, "description": "Required to register; must equal the URL's path on PUT"},
                    "proxy_pass_url": {"type": "string", "minLength": 1, "maxLength": 2048, "format": "iri", "pattern": "^https?://"},
                    "tags": {"oneOf": [{"type": "array", "maxItems": 32, "items": text(0, 64, NO_CONTROL_BUT_TAB_LF)}, text(0, 2048, NO_CONTROL_BUT_TAB_LF), {"type": "null"}]},
                    "oauth_client_id": {"type": ["string", "null"], "maxLength": 512, "pattern": "^[^\\s\\u0000-\\u001f\\u007f-\\u009f]*$"}, "append_mcp_path": {"type": ["boolean", "null"]},
                    "mcp_endpoint": {"type": ["string", "null"], "maxLength": 2048, "format": "iri"}, "license": {"type": ["string", "null"], "maxLength": 128, "pattern": NO_CONTROL_BUT_TAB_LF},
                    "num_tools": {"type": ["integer", "null"], "format": "int64", "minimum": 0, "maximum": i64::MAX},
                    "mcp_url": {"description": "read-only, ignored"}, "resource_metadata_url": {"description": "read-only, ignored"},
                    "created_at": {"description": "read-only, ignored"}, "updated_at": {"description": "read-only, ignored"}}},
                "ServerPatch": {"type": "object", "additionalProperties": false, "description": "Any subset of ServerInput's writable fields"},
                "Server": {"type": "object", "properties": {
                    "name": {"type": "string"}, "description": {"type": "string"}, "path": {"type": "string"}, "proxy_pass_url": {"type": "string"},
                    "tags": {"type": "array", "items": {"type": "string"}}, "oauth_client_id": {"type": ["string", "null"]},
                    "append_mcp_path": {"type": ["boolean", "null"]}, "mcp_endpoint": {"type": ["string", "null"]}, "license": {"type": ["string", "null"]},
                    "num_tools": {"type": ["integer", "null"]}, "created_at": {"type": "integer"}, "updated_at": {"type": "integer"},
                    "mcp_url": {"type": "string", "description": "The URL MCP clients connect to (the RFC 9728 resource)"},
                    "resource_metadata_url": {"type": "string"}}},
                "ConnectConfig": {"type": "object", "required": ["name", "url", "oauth_client_id", "append_mcp_path", "rendered", "warnings"], "properties": {
                    "name": {"type": "string", "description": "The name the configs register the server under"},
                    "url": {"type": "string", "description": "The URL clients connect to (equals the protected-resource metadata's resource)"},
                    "oauth_client_id": {"type": ["string", "null"], "description": "The server's oauth_client_id, else IDE_OAUTH_CLIENT_ID"},
                    "append_mcp_path": {"type": "boolean", "description": "Resolved (configured or auto-detected)"},
                    "append_mcp_path_source": {"type": "string", "enum": ["configured", "auto_detected", "mcp_endpoint"]},
                    "mcp_endpoint": {"type": "string"}, "callback_port": {"type": "integer"},
                    "scopes": {"type": "array", "items": {"type": "string"}},
                    "idp": {"type": ["object", "null"], "description": "The IdP's capabilities as used; null when its metadata could not be fetched", "properties": {
                        "issuer": {"type": ["string", "null"]}, "registration_endpoint": {"type": ["string", "null"]},
                        "cimd_supported": {"type": "boolean"}, "strict_redirects": {"type": "boolean"}}},
                    "login_method": {"type": "string", "enum": ["dcr", "cimd", "pre_registered", "static_token", "none"], "description": "Present when ide was given"},
                    "rendered": {"type": "object", "description": "Per assistant (keys: cursor, claude-code, …)", "additionalProperties": r("IdeConfig")},
                    "warnings": {"type": "array", "items": r("ConnectWarning")}}},
                "IdeConfig": {"type": "object", "properties": {
                    "ide": {"type": "string"}, "label": {"type": "string"},
                    "login_method": {"type": "string", "enum": ["dcr", "cimd", "pre_registered", "static_token", "none"]},
                    "format": {"type": "string", "enum": ["shell", "json", "yaml"]}, "target": {"type": "string"},
                    "text": {"type": "string", "description": "What to paste"}, "argv": {"type": "array", "items": {"type": "string"}},
                    "env": {"type": "object", "additionalProperties": {"type": "string"}},
                    "warnings": {"type": "array", "items": r("ConnectWarning")}}},
                "ConnectWarning": {"type": "object", "required": ["code", "message"], "properties": {
                    "code": {"type": "string", "description": "Stable code (docs/connect.md)"}, "ide": {"type": "string"}, "message": {"type": "string"}}},
                "Grant": {"type": "object", "required": ["server"], "additionalProperties": false, "properties": {
                    "server": {"type": "string", "description": "Server name or *"}, "methods": {"type": "array", "items": {"type": "string"}},
                    "tools": {"type": "array", "items": {"type": "string"}}}},
                "ScopeInput": {"type": "object", "required": ["grants"], "additionalProperties": false, "properties": {
                    "name": {"oneOf": [scope_name(), {"type": "null"}], "description": "Must equal the URL's name"},
                    "description": {"type": ["string", "null"], "maxLength": 4096, "pattern": NO_CONTROL_BUT_TAB_LF},
                    "grants": {"type": "array", "maxItems": 256, "items": r("Grant")},
                    "updated_at": {"description": "read-only, ignored"}}},
                "Scope": {"type": "object", "properties": {"name": {"type": "string"}, "description": {"type": "string"},
                    "grants": {"type": "array", "items": r("Grant")}, "updated_at": {"type": "integer"}}},
                "GroupMapping": {"type": "object", "properties": {"group": {"type": "string"}, "scopes": {"type": "array", "items": {"type": "string"}}, "updated_at": {"type": "integer"}}},
                "ProtectedResourceMetadata": {"type": "object", "required": ["resource", "authorization_servers"], "properties": {
                    "resource": {"type": "string"}, "resource_name": {"type": "string"}, "authorization_servers": {"type": "array", "items": {"type": "string"}},
                    "scopes_supported": {"type": "array", "items": {"type": "string"}}, "bearer_methods_supported": {"type": "array", "items": {"type": "string"}}}},
            },
        },
    });
    document["components"]["schemas"]["AuditGap"] = audit_gap;
    document["components"]["schemas"]["AuditGapRecord"] = audit_gap_record;
    document
}

pub async fn handler() -> impl IntoResponse {
    Json(document())
}
