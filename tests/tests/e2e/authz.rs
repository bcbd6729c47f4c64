//! Authorization: real MCP sessions through the filter, tool- and method-level denials, batches,
//! GET/DELETE.

use portcullis_e2e::snapshot::{
    rpc, tool_call, GROUP_ADMINS, GROUP_DEVS, MCP_PATH, RESOURCE_METADATA, SCOPE_ALL,
};
use portcullis_e2e::{challenge_param, ClientPlan, Request};
use serde_json::json;

use crate::common::{assert_insufficient_scope, standard, token, Gate, McpGate};

/// The official TypeScript SDK client through Envoy + Portcullis to server-everything, as a
/// `devs` member: initialize, tools/list and tools/call `echo` pass; tools/call `get-sum` is a
/// 403 `insufficient_scope` naming `mcp:all`; the session DELETE passes.
#[test]
fn mcp_session_allows_granted_tool_and_denies_others() {
    let gate = McpGate::start("mcp_session", &standard().build());
    let url = gate.envoy.url(MCP_PATH);
    let run = ClientPlan::new()
        .bearer(&token("alice", &[GROUP_DEVS]))
        .connect()
        .list_tools()
        .call_tool("echo", json!({"message": "through portcullis"}))
        .call_tool("get-sum", json!({"a": 1, "b": 2}))
        .terminate_session()
        .run(&gate.dir, &url);

    let init = run.ok(0);
    assert!(init["sessionId"].is_string(), "{}", run.describe());
    let tools = run.ok(1);
    assert!(
        tools["tools"]
            .as_array()
            .is_some_and(|t| t.iter().any(|t| t["name"] == "echo")),
        "{tools}"
    );
    assert_eq!(run.ok(2)["content"][0]["text"], "Echo: through portcullis");
    let err = run.err(3);
    assert_eq!(err["httpStatus"], 403, "{}", run.describe());
    run.ok(4);

    // The 403 as the SDK received it.
    let denied: Vec<_> = run
        .http_for_method("tools/call")
        .into_iter()
        .filter(|e| e["status"] == 403)
        .collect();
    assert_eq!(denied.len(), 1, "{}", run.describe());
    let www = denied[0]["responseHeaders"]["www-authenticate"]
        .as_str()
        .unwrap_or_else(|| panic!("403 without WWW-Authenticate: {}", run.describe()))
        .to_string();
    assert_eq!(
        challenge_param(&www, "error").as_deref(),
        Some("insufficient_scope"),
        "{www}"
    );
    assert!(
        challenge_param(&www, "scope").is_some_and(|s| s.split(' ').any(|s| s == SCOPE_ALL)),
        "{www}"
    );
    assert_eq!(
        challenge_param(&www, "resource_metadata").as_deref(),
        Some(RESOURCE_METADATA)
    );

    // An admin may call it, in a fresh session through the same Envoy.
    let run = ClientPlan::new()
        .bearer(&token("root", &[GROUP_ADMINS]))
        .connect()
        .call_tool("get-sum", json!({"a": 1, "b": 2}))
        .run(&gate.dir, &url);
    assert_eq!(run.ok(1)["content"][0]["text"], "The sum of 1 and 2 is 3.");
}

/// A batch is allowed only when every message in it is.
#[test]
fn batch_with_one_forbidden_call_is_denied_whole() {
    let gate = Gate::start("batch", &standard().build());
    let t = token("alice", &[GROUP_DEVS]);
    let batch = json!([
        tool_call(1, "echo", json!({"message": "x"})),
        tool_call(2, "get-sum", json!({"a": 1, "b": 2})),
    ]);
    let resp = gate
        .envoy
        .send(Request::post(MCP_PATH).json(&batch).bearer(&t));
    assert_insufficient_scope(&resp, "batch with get-sum", SCOPE_ALL);
    gate.assert_upstream_untouched("denied batch");

    let batch = json!([
        tool_call(1, "echo", json!({"message": "x"})),
        rpc(2, "tools/list", json!({})),
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
    ]);
    let resp = gate
        .envoy
        .send(Request::post(MCP_PATH).json(&batch).bearer(&t));
    assert_eq!(resp.status, 200, "allowed batch: {}", resp.describe());
    let seen = gate.upstream.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(
        seen[0].json(),
        Some(batch),
        "the upstream gets the batch unchanged"
    );
}

/// Methods outside the grant are denied like tools.
#[test]
fn methods_outside_the_grant_are_denied() {
    let gate = Gate::start("methods", &standard().build());
    let t = token("alice", &[GROUP_DEVS]);
    for method in ["resources/list", "prompts/get", "completion/complete"] {
        let resp = gate.envoy.send(
            Request::post(MCP_PATH)
                .json(&rpc(1, method, json!({})))
                .bearer(&t),
        );
        assert_insufficient_scope(&resp, method, SCOPE_ALL);
    }
    gate.assert_upstream_untouched("denied methods");
    // Base methods (initialize, ping, notifications/*) need only access to the server.
    for msg in [
        rpc(
            1,
            "initialize",
            json!({"protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "e2e", "version": "0"}}),
        ),
        rpc(2, "ping", json!({})),
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        rpc(
            3,
            "tools/call",
            json!({"name": "echo", "arguments": {"message": "m"}}),
        ),
    ] {
        let resp = gate
            .envoy
            .send(Request::post(MCP_PATH).json(&msg).bearer(&t));
        assert_eq!(resp.status, 200, "{msg}: {}", resp.describe());
    }
    // A JSON-RPC response sent by the client (answer to a server request) is not a call.
    let answer = json!({"jsonrpc": "2.0", "id": 9, "result": {}});
    let resp = gate
        .envoy
        .send(Request::post(MCP_PATH).json(&answer).bearer(&t));
    assert_eq!(
        resp.status,
        200,
        "client response message: {}",
        resp.describe()
    );
}

/// GET (the SSE stream) and DELETE (end of session) carry no JSON-RPC: authentication is enough.
#[test]
fn get_and_delete_need_only_authentication() {
    let gate = Gate::start("get_delete", &standard().build());
    let t = token("alice", &[GROUP_DEVS]);
    let resp = gate.envoy.send(
        Request::get(MCP_PATH)
            .bearer(&t)
            .header("accept", "text/event-stream")
            .header("mcp-session-id", "s-1"),
    );
    assert_eq!(resp.status, 200, "GET: {}", resp.describe());
    let resp = gate.envoy.send(
        Request::delete(MCP_PATH)
            .bearer(&t)
            .header("mcp-session-id", "s-1"),
    );
    assert_eq!(resp.status, 200, "DELETE: {}", resp.describe());
    let seen = gate.upstream.requests();
    let methods: Vec<&str> = seen.iter().map(|r| r.method.as_str()).collect();
    assert_eq!(methods, vec!["GET", "DELETE"]);
    for r in &seen {
        assert!(
            r.header("authorization").is_none(),
            "{} forwarded the token",
            r.method
        );
        assert_eq!(r.header("mcp-session-id"), Some("s-1"));
    }

    gate.upstream.clear();
    for req in [Request::get(MCP_PATH), Request::delete(MCP_PATH)] {
        let m = req.method.clone();
        let resp = gate.envoy.send(req);
        assert_eq!(
            resp.status,
            401,
            "{m} without credentials: {}",
            resp.describe()
        );
    }
    gate.assert_upstream_untouched("GET/DELETE without credentials");
}

/// A browser `Origin` that is not allowed is refused (MCP: servers must validate Origin).
#[test]
fn foreign_origin_is_refused() {
    let gate = Gate::start("origin", &standard().build());
    let t = token("alice", &[GROUP_DEVS]);
    let resp = gate.envoy.send(
        Request::post(MCP_PATH)
            .json(&rpc(1, "tools/list", json!({})))
            .bearer(&t)
            .header("origin", "https://evil.example"),
    );
    assert_eq!(resp.status, 403, "{}", resp.describe());
    gate.assert_upstream_untouched("foreign origin");

    let snap = standard()
        .setting("allowed_origins", json!(["https://app.example"]))
        .build();
    drop(gate);
    let gate = Gate::start("origin_allowed", &snap);
    let resp = gate.envoy.send(
        Request::post(MCP_PATH)
            .json(&rpc(1, "tools/list", json!({})))
            .bearer(&t)
            .header("origin", "https://app.example"),
    );
    assert_eq!(resp.status, 200, "allowed origin: {}", resp.describe());
}
