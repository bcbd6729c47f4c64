//! Local answers: status, `WWW-Authenticate` and a JSON body, built without host calls so they
//! can be unit-tested.

use policy::{Deny, Policy, RpcError, Server, TokenError};

/// A local reply the filter sends instead of forwarding the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u32,
    pub www_authenticate: Option<String>,
    pub body: String,
    /// Machine-readable reason, for stats.
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
        body: oauth_body("invalid_request", "authentication required", None),
        reason: "missing_credentials",
    }
}

/// 401 `invalid_request`: an `Authorization` header that is not a bearer token.
pub fn not_bearer(server: &Server) -> Reply {
    let description = "the Authorization header must be a Bearer token";
    Reply {
        status: 401,
        www_authenticate: Some(format!(
            "{}, error=\"invalid_request\", error_description=\"{description}\"",
            server.challenge
        )),
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
        body: oauth_body("invalid_token", &description, None),
        reason: error.reason(),
    }
}

/// 403 `insufficient_scope`, naming the scopes that would allow the request.
pub fn forbidden(policy: &Policy, server: &Server, deny: &Deny) -> Reply {
    let description = deny.description(policy);
    let scope = deny.allowing_scopes.join(" ");
    let mut challenge = format!(
        "Bearer error=\"insufficient_scope\", resource_metadata=\"{}\"",
        server.resource_metadata
    );
    if !scope.is_empty() {
        challenge.push_str(&format!(", scope=\"{}\"", quoted(&scope)));
    }
    challenge.push_str(&format!(", error_description=\"{}\"", quoted(&description)));
    Reply {
        status: 403,
        www_authenticate: Some(challenge),
        body: oauth_body(
            "insufficient_scope",
            &description,
            (!scope.is_empty()).then_some(&scope),
        ),
        reason: deny.reason.reason(),
    }
}

/// 400 for a body that is not JSON-RPC, in JSON-RPC's own error shape.
pub fn malformed_jsonrpc(error: &RpcError) -> Reply {
    let body = serde_json::json!({
        "jsonrpc": "2.0",
        "id": null,
        "error": { "code": -32700, "message": format!("invalid JSON-RPC request: {error}") },
    });
    Reply {
        status: 400,
        www_authenticate: None,
        body: body.to_string(),
        reason: "malformed_jsonrpc",
    }
}

/// Other plain refusals with an OAuth-style JSON body.
pub fn plain(status: u32, error: &str, description: &str, reason: &'static str) -> Reply {
    Reply {
        status,
        www_authenticate: None,
        body: oauth_body(error, description, None),
        reason,
    }
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

pub fn body_too_large(limit: usize) -> Reply {
    plain(
        413,
        "request_too_large",
        &format!("request body is larger than {limit} bytes"),
        "body_too_large",
    )
}

#[cfg(test)]
mod tests;
