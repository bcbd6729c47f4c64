use super::*;
use crate::{DenyReason, Policy, RpcError, TokenError};

fn policy() -> Policy {
    let snapshot = serde_json::json!({
        "format": 1, "version": 1,
        "servers": [{"name": "srv", "path_prefix": "/srv", "resource": "https://gw.test/srv/mcp",
                     "resource_metadata": "https://gw.test/.well-known/oauth-protected-resource/srv/mcp",
                     "scopes_supported": ["openid", "profile"]}],
        "scopes": [{"name": "srv-admin", "grants": [{"server": "srv", "methods": ["*"], "tools": ["*"]}]}],
    });
    Policy::from_json(snapshot.to_string().as_bytes()).unwrap()
}

fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).expect("error bodies are JSON")
}

#[test]
fn challenge_without_credentials() {
    let p = policy();
    let reply = missing_credentials(&p.servers[0]);
    assert_eq!(reply.status, 401);
    assert_eq!(
        reply.www_authenticate.as_deref(),
        Some("Bearer resource_metadata=\"https://gw.test/.well-known/oauth-protected-resource/srv/mcp\", scope=\"openid profile\"")
    );
    assert_eq!(json(&reply.body)["error"], "invalid_request");
}

#[test]
fn invalid_token_carries_error_and_description() {
    let p = policy();
    let reply = invalid_token(&p.servers[0], &TokenError::Expired);
    assert_eq!(reply.status, 401);
    let challenge = reply.www_authenticate.unwrap();
    assert!(
        challenge.starts_with("Bearer resource_metadata=\""),
        "{challenge}"
    );
    assert!(
        challenge.ends_with(", error=\"invalid_token\", error_description=\"token has expired\""),
        "{challenge}"
    );
    assert_eq!(
        json(&reply.body),
        serde_json::json!({"error": "invalid_token", "error_description": "token has expired"})
    );
    assert_eq!(reply.reason, "expired");
}

#[test]
fn forbidden_names_the_scope_and_escapes_hostile_tool_names() {
    let p = policy();
    let deny = Deny {
        reason: DenyReason::ToolNotAllowed,
        server: 0,
        method: Some("tools/call".into()),
        tool: Some("x\"y\r\nz".into()),
        allowing_scopes: vec!["srv-admin".into()],
    };
    let reply = forbidden(&p, &p.servers[0], &deny);
    assert_eq!(reply.status, 403);
    let challenge = reply.www_authenticate.unwrap();
    assert!(
        challenge.starts_with(
            "Bearer error=\"insufficient_scope\", resource_metadata=\"https://gw.test/"
        ),
        "{challenge}"
    );
    assert!(challenge.contains(", scope=\"srv-admin\""), "{challenge}");
    assert!(
        !challenge.contains('\r') && !challenge.contains('\n'),
        "{challenge}"
    );
    let body = json(&reply.body);
    assert_eq!(body["error"], "insufficient_scope");
    assert_eq!(body["scope"], "srv-admin");
    assert_eq!(reply.reason, "tool_not_allowed");
}

#[test]
fn malformed_jsonrpc_is_a_jsonrpc_error() {
    let reply = malformed_jsonrpc(&RpcError::EmptyBatch);
    assert_eq!(reply.status, 400);
    let body = json(&reply.body);
    assert_eq!(body["error"]["code"], -32700);
    assert_eq!(body["id"], serde_json::Value::Null);
}

#[test]
fn quoted_strings_stay_printable_ascii() {
    assert_eq!(quoted("a\"b\\c\u{7f}é\t"), "a\\\"b\\\\c???");
}

#[test]
fn no_policy_is_a_503_that_says_why() {
    let reply = no_policy("the control plane has not delivered a policy yet");
    assert_eq!(reply.status, 503);
    assert_eq!(reply.reason, "no_policy");
    let body = json(&reply.body);
    assert_eq!(body["error"], "temporarily_unavailable");
    let description = body["error_description"].as_str().unwrap();
    assert!(
        description.contains("control plane has not delivered a policy yet"),
        "{description}"
    );
}
