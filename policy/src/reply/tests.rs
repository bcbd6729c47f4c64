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
        allowing_groups: vec!["admins".into()],
    };
    let reply = forbidden(&p, &p.servers[0], &deny, &[]);
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
    assert_eq!(body["allowing_groups"], serde_json::json!(["admins"]));
    assert_eq!(reply.reason, "tool_not_allowed");
}

/// Direct mode: the IdP knows no registry scopes, so the 403 asks for none (a client would
/// retry a step-up in vain and hide the message); it says which group would allow the call.
#[test]
fn without_step_up_the_403_names_groups_not_scopes() {
    let snapshot = serde_json::json!({
        "format": 1, "version": 1,
        "servers": [{"name": "srv", "path_prefix": "/srv", "resource": "https://gw.test/srv/mcp",
                     "resource_metadata": "https://gw.test/.well-known/oauth-protected-resource/srv/mcp"}],
        "scopes": [
            {"name": "srv-admin", "grants": [{"server": "srv", "methods": ["*"], "tools": ["*"]}]},
            {"name": "srv-read", "grants": [{"server": "srv", "methods": ["tools/list"], "tools": []}]}
        ],
        "group_mappings": [
            {"group": "ops", "scopes": ["srv-admin"]},
            {"group": "devs", "scopes": ["srv-read"]},
            {"group": "sre", "scopes": ["srv-admin", "srv-read"]}
        ],
        "settings": {"step_up_scopes": false}
    });
    let p = Policy::from_json(snapshot.to_string().as_bytes()).unwrap();
    let call = crate::RpcMessage::Call {
        method: "tools/call".into(),
        tool: Some("deploy".into()),
        target: None,
    };
    let groups = ["devs".to_string()];
    let identity = crate::Identity {
        subject: "dev".into(),
        username: "dev".into(),
        issuer: "https://idp.test".into(),
        client_id: None,
        groups: groups.clone().into(),
        scopes: p.scopes_for_groups(&groups),
        token_scopes: Box::default(),
        audience_servers: crate::IdSet::full(p.servers.len()),
        expires_at: None,
        headers: crate::identity::IdentityHeaders::build(
            "dev",
            &groups,
            std::iter::empty::<&str>(),
        ),
    };
    let deny = p.authorize_message(&identity, 0, &call).unwrap_err();
    assert_eq!(deny.allowing_scopes, ["srv-admin"]);
    assert_eq!(deny.allowing_groups, ["ops", "sre"]);
    let reply = forbidden(&p, &p.servers[0], &deny, &[]);
    assert_eq!(reply.status, 403);
    let challenge = reply.www_authenticate.unwrap();
    assert!(!challenge.contains("scope=\""), "{challenge}");
    assert!(
        challenge.contains("error=\"insufficient_scope\""),
        "{challenge}"
    );
    let body = json(&reply.body);
    assert_eq!(body.get("scope"), None, "{body}");
    assert_eq!(body["allowing_groups"], serde_json::json!(["ops", "sre"]));
    assert_eq!(
        body["error_description"],
        "method \"tools/call\" is not granted on server \"srv\"; members of groups \"ops\", \"sre\" may"
    );
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

/// MCP 2026-07-28: the step-up challenge asks for what the token had plus what is missing.
#[test]
fn a_step_up_challenge_keeps_the_scopes_the_token_had() {
    let p = policy();
    let mut deny = Deny {
        reason: DenyReason::ToolNotAllowed,
        server: 0,
        method: Some("tools/call".into()),
        tool: Some("t".into()),
        allowing_scopes: vec!["srv-admin".into(), "openid".into()],
        allowing_groups: vec!["admins".into()],
    };
    let had = ["openid".to_string(), "profile".to_string()];
    let body = json(&forbidden(&p, &p.servers[0], &deny, &had).body);
    assert_eq!(body["scope"], "openid profile srv-admin", "{body}");
    // Nothing would allow it: no step-up to ask for.
    deny.allowing_scopes.clear();
    let reply = forbidden(&p, &p.servers[0], &deny, &had);
    assert!(json(&reply.body).get("scope").is_none(), "{}", reply.body);
    assert!(!reply.www_authenticate.unwrap().contains("scope=\""));
}

#[test]
fn a_refusal_names_a_bounded_number_of_groups() {
    let p = policy();
    let deny = Deny {
        reason: DenyReason::ToolNotAllowed,
        server: 0,
        method: Some("tools/call".into()),
        tool: Some("t".into()),
        allowing_scopes: vec!["srv-admin".into()],
        allowing_groups: (0..500).map(|i| format!("group-{i:03}")).collect(),
    };
    let reply = forbidden(&p, &p.servers[0], &deny, &[]);
    let body = json(&reply.body);
    assert_eq!(
        body["allowing_groups"].as_array().unwrap().len(),
        MAX_GROUPS_IN_BODY
    );
    let description = body["error_description"].as_str().unwrap();
    assert!(
        description.ends_with("\"group-004\", 495 more may"),
        "{description}"
    );
    assert!(reply.body.len() < 4096, "{}", reply.body.len());
}
