//! Local answers: status, `WWW-Authenticate`, extra headers and a JSON body. The filter sends
//! them as they are; building them here keeps every answer unit-testable.

use crate::compiled::{Policy, Server};
use crate::decision::Deny;
use crate::jsonrpc::RpcError;
use crate::token::TokenError;

/// A local reply the filter sends instead of forwarding the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u32,
    pub www_authenticate: Option<String>,
    /// Headers beyond `content-type`, `cache-control` and `www-authenticate` (`allow`, CORS).
    pub headers: Vec<(&'static str, String)>,
    /// JSON; empty for a `204`.
    pub body: String,
    /// Machine-readable reason, for stats and the audit trail.
    pub reason: &'static str,
}

/// A string fit for an RFC 7235 quoted-string: printable ASCII, with `"` and `\` escaped.
fn quoted(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            ' '..='~' => out.push(c),
            _ => out.push('?'),
        }
    }
    out
}

fn oauth_body(error: &str, description: &str, scope: Option<&str>) -> String {
    let mut body = serde_json::json!({ "error": error, "error_description": description });
    if let Some(scope) = scope {
        body["scope"] = scope.into();
    }
    body.to_string()
}

/// 401 without an error code: the client sent no credentials (RFC 6750 §3.1).
pub fn missing_credentials(server: &Server) -> Reply {
    Reply {
        status: 401,
        www_authenticate: Some(server.challenge.clone()),
        headers: Vec::new(),
        body: oauth_body("invalid_request", "authentication required", None),
        reason: "missing_credentials",
    }
}

/// 401 `invalid_request`: credentials that are not one well-formed bearer token or API key.
pub fn not_bearer(server: &Server, description: &str) -> Reply {
    Reply {
        status: 401,
        www_authenticate: Some(format!(
            "{}, error=\"invalid_request\", error_description=\"{description}\"",
            server.challenge
        )),
        headers: Vec::new(),
        body: oauth_body("invalid_request", description, None),
        reason: "not_bearer",
    }
}

/// 401 `invalid_token`.
pub fn invalid_token(server: &Server, error: &TokenError) -> Reply {
    let description = error.to_string();
    Reply {
        status: 401,
        www_authenticate: Some(format!(
            "{}, error=\"invalid_token\", error_description=\"{}\"",
            server.challenge,
            quoted(&description)
        )),
        headers: Vec::new(),
        body: oauth_body("invalid_token", &description, None),
        reason: error.reason(),
    }
}

/// Most groups a 403's body lists (its `error_description` names five and counts the rest).
pub const MAX_GROUPS_IN_BODY: usize = 50;

/// 403 `insufficient_scope`. Its `error_description` (and the body's `allowing_groups`) says
/// which groups would allow the request. The challenge names the scopes that would allow it
/// (`scope="…"`, a step-up request) only when the authorization server can issue them
/// (`settings.step_up_scopes`): a client asked for scopes its authorization server does not
/// know retries in vain and hides this message. Those are added to the scopes the token
/// already had (MCP 2026-07-28): a client that asks for exactly what the challenge names keeps
/// what it had, and asks once.
/// `token_scopes`: the refused token's own ([`crate::Identity::token_scopes`]).
pub fn forbidden(policy: &Policy, server: &Server, deny: &Deny, token_scopes: &[String]) -> Reply {
    let description = deny.description(policy);
    let scope = if policy.settings.step_up_scopes && !deny.allowing_scopes.is_empty() {
        let mut union: Vec<&str> = token_scopes.iter().map(String::as_str).collect();
        for s in &deny.allowing_scopes {
            if !union.contains(&s.as_str()) {
                union.push(s);
            }
        }
        union.join(" ")
    } else {
        String::new()
    };
    let mut challenge = format!(
        "Bearer error=\"insufficient_scope\", resource_metadata=\"{}\"",
        server.resource_metadata
    );
    if !scope.is_empty() {
        challenge.push_str(&format!(", scope=\"{}\"", quoted(&scope)));
    }
    challenge.push_str(&format!(", error_description=\"{}\"", quoted(&description)));
    // Bounded: a scope mapped from thousands of groups must not make every refusal huge.
    let groups: Vec<&String> = deny
        .allowing_groups
        .iter()
        .take(MAX_GROUPS_IN_BODY)
        .collect();
    let mut body = serde_json::json!({
        "error": "insufficient_scope",
        "error_description": description,
        "allowing_groups": groups,
    });
    if !scope.is_empty() {
        body["scope"] = scope.into();
    }
    Reply {
        status: 403,
        www_authenticate: Some(challenge),
        headers: Vec::new(),
        body: body.to_string(),
        reason: deny.reason.reason(),
    }
}

fn jsonrpc_error(code: i32, message: &str, reason: &'static str) -> Reply {
    let body = serde_json::json!({
        "jsonrpc": "2.0",
        "id": null,
        "error": { "code": code, "message": message },
    });
    Reply {
        status: 400,
        www_authenticate: None,
        headers: Vec::new(),
        body: body.to_string(),
        reason,
    }
}

/// 400 for a body that is not JSON-RPC, in JSON-RPC's own error shape.
pub fn malformed_jsonrpc(error: &RpcError) -> Reply {
    jsonrpc_error(
        -32700,
        &format!("invalid JSON-RPC request: {error}"),
        "malformed_jsonrpc",
    )
}

/// JSON-RPC error code for `Mcp-Method` / `Mcp-Name` headers that disagree with the body
/// (MCP 2026-07-28, the code the official SDKs answer with).
pub const HEADER_MISMATCH_CODE: i32 = -32020;

/// 400: a transport header says something else than the body it came with.
pub fn header_mismatch(description: &str) -> Reply {
    jsonrpc_error(HEADER_MISMATCH_CODE, description, "header_mismatch")
}

/// Other plain refusals with an OAuth-style JSON body.
pub fn plain(status: u32, error: &str, description: &str, reason: &'static str) -> Reply {
    Reply {
        status,
        www_authenticate: None,
        headers: Vec::new(),
        body: oauth_body(error, description, None),
        reason,
    }
}

/// 400 for a request the filter cannot read safely (path, method, a header it needs).
pub fn bad_request(description: &str, reason: &'static str) -> Reply {
    plain(400, "invalid_request", description, reason)
}

/// 503 while there is no policy to decide with: fail closed, and say why.
pub fn no_policy(why: &str) -> Reply {
    plain(
        503,
        "temporarily_unavailable",
        &format!("{why}; Portcullis refuses every request until it has one"),
        "no_policy",
    )
}

/// 413: the declared or received body is larger than `max_body_bytes`.
pub fn body_too_large(limit: usize) -> Reply {
    plain(
        413,
        "request_too_large",
        &format!("request body is larger than {limit} bytes"),
        "body_too_large",
    )
}

/// 400: a body on a method that carries none in MCP (only `POST` carries JSON-RPC).
pub fn body_not_allowed(method: &str) -> Reply {
    bad_request(
        &format!("only POST carries a JSON-RPC body; this {method} request has one"),
        "body_not_allowed",
    )
}

/// 500: Envoy could not hand over or take back part of the request (`what`); the request is
/// refused rather than passed on unchecked.
pub fn host_error(what: &str) -> Reply {
    plain(
        500,
        "server_error",
        &format!("the gateway could not {what}"),
        "host_error",
    )
}

/// 404: the path belongs to no registered server.
pub fn unknown_server() -> Reply {
    plain(
        404,
        "not_found",
        "no MCP server is registered at this path",
        "unknown_server",
    )
}

/// 405 for a discovery document asked for with a method other than `GET`, `HEAD`, `OPTIONS`.
pub fn discovery_method_not_allowed() -> Reply {
    let mut reply = plain(
        405,
        "invalid_request",
        "discovery documents are read with GET",
        "discovery_method",
    );
    reply.headers.push(("allow", DISCOVERY_METHODS.into()));
    reply
}

/// Methods a discovery document answers.
pub const DISCOVERY_METHODS: &str = "GET, HEAD, OPTIONS";

/// 403: a browser `Origin` that is not in `settings.allowed_origins`.
pub fn origin_not_allowed() -> Reply {
    plain(
        403,
        "forbidden_origin",
        "requests from this Origin are not allowed",
        "origin_not_allowed",
    )
}

/// Request headers a browser MCP client may send (CORS preflight answer).
const CORS_REQUEST_HEADERS: &str = "authorization, content-type, accept, mcp-protocol-version, mcp-session-id, mcp-method, mcp-name, last-event-id";
/// Response headers a browser MCP client must be able to read.
const CORS_EXPOSED_HEADERS: &str = "www-authenticate, mcp-session-id, mcp-protocol-version";

/// Headers every answer to a request from an allowed `Origin` carries.
pub fn cors_headers(origin: &str) -> [(&'static str, String); 3] {
    [
        ("access-control-allow-origin", origin.to_owned()),
        (
            "access-control-expose-headers",
            CORS_EXPOSED_HEADERS.to_owned(),
        ),
        ("vary", "origin".to_owned()),
    ]
}

/// 204 answer to a CORS preflight from an allowed origin (no credentials needed: browsers
/// send none on a preflight).
pub fn cors_preflight(policy: &Policy, origin: &str) -> Reply {
    let mut headers: Vec<(&'static str, String)> = cors_headers(origin).into();
    headers.push((
        "access-control-allow-methods",
        "GET, POST, DELETE, OPTIONS".into(),
    ));
    headers.push((
        "access-control-allow-headers",
        format!("{CORS_REQUEST_HEADERS}, {}", policy.settings.api_key_header),
    ));
    headers.push(("access-control-max-age", "600".into()));
    Reply {
        status: 204,
        www_authenticate: None,
        headers,
        body: String::new(),
        reason: "cors_preflight",
    }
}

#[cfg(test)]
mod tests;
