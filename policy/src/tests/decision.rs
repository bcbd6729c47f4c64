//! The decision table: group → scope → server / method / tool, default deny, wildcards, batches,
//! and routing.

use serde_json::json;

use super::*;
use crate::{parse_body, DenyReason, Identity, Route, RpcError, RpcMessage};

const EVERYTHING: usize = 0;
const FILES: usize = 1;

fn identity_with_groups(p: &Policy, groups: serde_json::Value) -> Identity {
    let mut c = claims();
    c["groups"] = groups;
    p.verify_jwt(&rs256(&rsa_key("a"), Some("k1"), &c), NOW)
        .expect("valid token")
}

fn call(method: &str, tool: Option<&str>) -> RpcMessage<'static> {
    RpcMessage::Call {
        method: method.to_owned().into(),
        tool: tool.map(|t| t.to_owned().into()),
        target: None,
    }
}

#[test]
fn group_maps_to_scope_that_grants_one_tool() {
    let p = compile(&snapshot());
    let eng = identity_with_groups(&p, json!(["eng"]));
    assert_eq!(p.authorize_server(&eng, EVERYTHING), Ok(()));
    assert_eq!(
        p.authorize_message(&eng, EVERYTHING, &call("tools/list", None)),
        Ok(())
    );
    assert_eq!(
        p.authorize_message(&eng, EVERYTHING, &call("tools/call", Some("echo"))),
        Ok(())
    );

    let deny = p
        .authorize_message(&eng, EVERYTHING, &call("tools/call", Some("get-sum")))
        .unwrap_err();
    assert_eq!(deny.reason, DenyReason::ToolNotAllowed);
    assert_eq!(deny.tool.as_deref(), Some("get-sum"));
    assert_eq!(deny.allowing_scopes, vec!["admin".to_string()]);
    assert_eq!(deny.allowing_groups, vec!["admins".to_string()]);
    assert_eq!(
        deny.description(&p),
        "tool \"get-sum\" is not granted on server \"everything\"; members of group \"admins\" may"
    );

    let deny = p
        .authorize_message(&eng, EVERYTHING, &call("resources/read", None))
        .unwrap_err();
    assert_eq!(deny.reason, DenyReason::MethodNotAllowed);
    assert_eq!(deny.allowing_scopes, vec!["admin".to_string()]);
}

#[test]
fn base_protocol_methods_need_only_server_access() {
    let p = compile(&snapshot());
    let eng = identity_with_groups(&p, json!(["eng"]));
    for method in [
        "initialize",
        "ping",
        "notifications/initialized",
        "notifications/cancelled",
        // MCP 2026-07-28: sessionless discovery (Claude Code sends it before anything else)
        // and the change-notification stream that replaces the GET stream.
        "server/discover",
        "subscriptions/listen",
    ] {
        assert_eq!(
            p.authorize_message(&eng, EVERYTHING, &call(method, None)),
            Ok(()),
            "{method}"
        );
    }
    assert_eq!(
        p.authorize_message(&eng, EVERYTHING, &RpcMessage::Response),
        Ok(())
    );
    // Data-carrying methods stay grant-controlled.
    for method in ["logging/setLevel", "tasks/result", "completion/complete"] {
        assert!(
            p.authorize_message(&eng, EVERYTHING, &call(method, None))
                .is_err(),
            "{method}"
        );
    }
}

#[test]
fn default_deny_explains_why() {
    let p = compile(&snapshot());
    let none = identity_with_groups(&p, json!([]));
    let deny = p.authorize_server(&none, EVERYTHING).unwrap_err();
    assert_eq!(deny.reason, DenyReason::NoGroups);
    // By name, whatever the order of the snapshot.
    assert_eq!(
        deny.allowing_scopes,
        vec!["admin".to_string(), "everything-echo".to_string()]
    );

    let unmapped = identity_with_groups(&p, json!(["marketing"]));
    assert_eq!(
        p.authorize_server(&unmapped, EVERYTHING)
            .unwrap_err()
            .reason,
        DenyReason::NoMappedScopes
    );

    let eng = identity_with_groups(&p, json!(["eng"]));
    let deny = p.authorize_server(&eng, FILES).unwrap_err();
    assert_eq!(deny.reason, DenyReason::NoServerAccess);
    assert_eq!(
        deny.allowing_scopes,
        vec!["admin".to_string(), "files-read".to_string()]
    );
}

#[test]
fn an_authorization_server_learns_which_groups_open_a_server() {
    let p = compile(&snapshot());
    assert_eq!(
        p.server_access_for_groups(RESOURCE_A, &["eng"]),
        Some(Ok(()))
    );
    assert_eq!(
        p.server_access_for_groups(RESOURCE_A, &["marketing", "admins"]),
        Some(Ok(()))
    );
    assert_eq!(
        p.server_access_for_groups(RESOURCE_B, &["eng"]),
        Some(Err(vec!["admins".to_string(), "readers".to_string()]))
    );
    assert_eq!(
        p.server_access_for_groups::<&str>(RESOURCE_A, &[]),
        Some(Err(vec!["admins".to_string(), "eng".to_string()]))
    );
    assert_eq!(
        p.server_access_for_groups(&format!("{RESOURCE_A}/"), &["eng"]),
        None
    );
}

#[test]
fn wildcard_and_prefix_grants() {
    let p = compile(&snapshot());
    let admin = identity_with_groups(&p, json!(["admins"]));
    for server in [EVERYTHING, FILES] {
        assert_eq!(p.authorize_server(&admin, server), Ok(()));
        assert_eq!(
            p.authorize_message(&admin, server, &call("tools/call", Some("anything"))),
            Ok(())
        );
        assert_eq!(
            p.authorize_message(&admin, server, &call("sampling/whatever", None)),
            Ok(())
        );
    }
    let reader = identity_with_groups(&p, json!(["readers"]));
    assert_eq!(
        p.authorize_message(&reader, FILES, &call("resources/read", None)),
        Ok(())
    );
    assert_eq!(
        p.authorize_message(&reader, FILES, &call("resources/list", None)),
        Ok(())
    );
    let deny = p
        .authorize_message(&reader, FILES, &call("tools/call", Some("write")))
        .unwrap_err();
    assert_eq!(deny.reason, DenyReason::MethodNotAllowed);
    // A method grant without tools allows no tool at all.
    let mut snap = snapshot();
    snap["scopes"][2]["grants"][0]["methods"] = json!(["tools/*"]);
    snap["scopes"][2]["grants"][0]["tools"] = json!(["read_*"]);
    let p = compile(&snap);
    let reader = identity_with_groups(&p, json!(["readers"]));
    assert_eq!(
        p.authorize_message(&reader, FILES, &call("tools/call", Some("read_file"))),
        Ok(())
    );
    let deny = p
        .authorize_message(&reader, FILES, &call("tools/call", Some("write_file")))
        .unwrap_err();
    assert_eq!(deny.reason, DenyReason::ToolNotAllowed);
    assert_eq!(deny.allowing_scopes, vec!["admin".to_string()]);
}

#[test]
fn scopes_from_several_groups_add_up() {
    let p = compile(&snapshot());
    let both = identity_with_groups(&p, json!(["eng", "readers"]));
    assert_eq!(both.headers.scopes, "everything-echo,files-read");
    assert_eq!(p.authorize_server(&both, FILES), Ok(()));
    assert_eq!(
        p.authorize_message(&both, EVERYTHING, &call("tools/call", Some("echo"))),
        Ok(())
    );
}

/// The control plane maps an API caller's groups with `snapshot::mapped_scopes`; the filter with
/// the compiled policy. Both must read the same mappings the same way.
#[test]
fn mapped_scopes_agrees_with_the_compiled_policy() {
    let raw = snapshot();
    let p = compile(&raw);
    let spec: crate::snapshot::Snapshot = serde_json::from_value(raw).unwrap();
    let mappings: Vec<(&str, &[String])> = spec
        .group_mappings
        .iter()
        .map(|m| (m.group.as_str(), m.scopes.as_slice()))
        .collect();
    for groups in [
        &[][..],
        &["eng"][..],
        &["readers"][..],
        &["eng", "readers"][..],
        &["nobody"][..],
        &["readers", "eng", "eng"][..],
    ] {
        let compiled: Vec<String> = p
            .scopes_for_groups(groups)
            .iter()
            .map(|i| p.scope_names[i].to_string())
            .collect();
        let mut compiled = compiled;
        compiled.sort();
        assert_eq!(
            crate::snapshot::mapped_scopes(mappings.iter().copied(), groups),
            compiled,
            "{groups:?}"
        );
    }
}

#[test]
fn batch_with_one_forbidden_call_is_denied() {
    let p = compile(&snapshot());
    let eng = identity_with_groups(&p, json!(["eng"]));
    let body = br#"[
        {"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"message":"hi"}}},
        {"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"get-sum","arguments":{"a":1,"b":2}}}
    ]"#;
    let messages = parse_body(body).expect("valid batch");
    assert_eq!(messages.len(), 2);
    let deny = p
        .authorize_messages(&eng, EVERYTHING, &messages)
        .unwrap_err();
    assert_eq!(deny.tool.as_deref(), Some("get-sum"));
    let allowed = parse_body(br#"[{"jsonrpc":"2.0","id":1,"method":"tools/list"},{"jsonrpc":"2.0","method":"notifications/initialized"}]"#).unwrap();
    assert_eq!(p.authorize_messages(&eng, EVERYTHING, &allowed), Ok(()));
}

#[test]
fn jsonrpc_bodies() {
    assert_eq!(
        parse_body(br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo"}}"#)
            .unwrap(),
        vec![call("tools/call", Some("echo"))]
    );
    assert_eq!(
        parse_body(br#"{"jsonrpc":"2.0","id":1,"result":{}}"#).unwrap(),
        vec![RpcMessage::Response]
    );
    assert!(matches!(parse_body(b"").unwrap_err(), RpcError::NotJson(_)));
    assert!(matches!(
        parse_body(b"{not json").unwrap_err(),
        RpcError::NotJson(_)
    ));
    assert_eq!(parse_body(b"42").unwrap_err(), RpcError::NotObjectOrArray);
    assert_eq!(parse_body(b"[]").unwrap_err(), RpcError::EmptyBatch);
    assert_eq!(
        parse_body(br#"{"id":1,"method":"ping"}"#).unwrap_err(),
        RpcError::BadVersion(0)
    );
    assert_eq!(
        parse_body(br#"{"jsonrpc":"2.0","id":1}"#).unwrap_err(),
        RpcError::NotAMessage(0)
    );
    assert_eq!(
        parse_body(br#"{"jsonrpc":"2.0","id":1,"method":"tools/call"}"#).unwrap_err(),
        RpcError::MissingToolName(0)
    );
    assert_eq!(
        parse_body(br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":7}}"#)
            .unwrap_err(),
        RpcError::MissingToolName(0)
    );
    assert!(matches!(
        parse_body(br#"{"jsonrpc":"2.0","id":1,"method":5}"#).unwrap_err(),
        RpcError::NotJson(_)
    ));
    // Two method members must not let a parser pick the harmless one.
    assert!(matches!(
        parse_body(br#"{"jsonrpc":"2.0","id":1,"method":"ping","method":"tools/call"}"#)
            .unwrap_err(),
        RpcError::NotJson(_)
    ));
    assert_eq!(
        parse_body(br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","name":"rm"}}"#).unwrap_err(),
        RpcError::MissingToolName(0)
    );
    assert!(parse_body(br#"[{"jsonrpc":"2.0","method":"ping","id":1}, 3]"#).is_err());
    // Escaped names are compared after unescaping.
    assert_eq!(
        parse_body(
            br#"{"jsonrpc":"2.0","id":1,"method":"tools\/call","params":{"name":"ec\u0068o"}}"#
        )
        .unwrap(),
        vec![call("tools/call", Some("echo"))]
    );
}

#[test]
fn routing() {
    let p = compile(&snapshot());
    assert_eq!(p.route("/everything/mcp"), Ok(Route::Server(EVERYTHING)));
    assert_eq!(p.route("/everything"), Ok(Route::Server(EVERYTHING)));
    assert_eq!(
        p.route("/everything/mcp?session=1"),
        Ok(Route::Server(EVERYTHING))
    );
    assert_eq!(p.route("/everything/"), Ok(Route::Server(EVERYTHING)));
    assert_eq!(p.route("/files/mcp"), Ok(Route::Server(FILES)));
    assert_eq!(p.route("/everythingelse/mcp"), Ok(Route::Unknown));
    assert_eq!(p.route("/"), Ok(Route::Unknown));
    let root = Ok(Route::Discovery { server: None });
    let everything = Ok(Route::Discovery {
        server: Some(EVERYTHING),
    });
    // The discovery documents, where clients look for them.
    for (path, expected) in [
        ("/.well-known/oauth-protected-resource", root),
        ("/.well-known/oauth-protected-resource/everything/mcp", root),
        ("/.well-known/oauth-authorization-server", root),
        ("/.well-known/oauth-authorization-server/realms/acme", root),
        ("/.well-known/openid-configuration?x=1", root),
        ("/realms/acme/.well-known/openid-configuration", root),
        (
            "/everything/.well-known/oauth-protected-resource",
            everything,
        ),
        (
            "/everything/mcp/.well-known/oauth-protected-resource",
            everything,
        ),
        (
            "/everything/mcp/.well-known/openid-configuration",
            everything,
        ),
    ] {
        assert_eq!(p.route(path), expected, "{path}");
    }
    // Anything else under a server is the server's, whatever segments it holds.
    for path in [
        "/everything/mcp/.well-known",
        "/everything/mcp/.well-known/",
        "/everything/x/.well-known/y",
        "/everything/mcp/.well-known/foo",
        "/everything/.well-known/foo",
        "/everything/x/.well-known/oauth-protected-resource",
        "/everything/mcp/.well-known/oauth-protected-resource/more",
        "/everything/.well-known/oauth-protected-resource/everything/mcp",
    ] {
        assert_eq!(p.route(path), Ok(Route::Server(EVERYTHING)), "{path}");
    }
    // Outside every server: only the documents themselves are discovery.
    for path in [
        "/.well-known/security.txt",
        "/.well-known/",
        "/x/.well-known/openid-configuration/more",
        "/x/.well-known/foo",
    ] {
        assert_eq!(p.route(path), Ok(Route::Unknown), "{path}");
    }
    for bad in [
        "/everything/../admin",
        "/everything/./mcp",
        "/.well-known/../everything/mcp",
        "/everything/.well-known/%2e%2e/mcp",
        "/everything%2fmcp",
        "//everything/mcp",
        "/everything//mcp",
        "/everything/mcp\\..",
        "everything/mcp",
        "",
    ] {
        assert!(p.route(bad).is_err(), "{bad:?} must be refused");
    }
}

#[test]
fn longest_prefix_wins() {
    let mut snap = snapshot();
    snap["servers"][1]["path_prefix"] = json!("/everything/files");
    let p = compile(&snap);
    assert_eq!(p.route("/everything/files/mcp"), Ok(Route::Server(FILES)));
    assert_eq!(p.route("/everything/filesx"), Ok(Route::Server(EVERYTHING)));
}
