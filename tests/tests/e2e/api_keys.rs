//! Static credentials: API keys by header or as an opaque bearer token.

use portcullis_e2e::snapshot::{rpc, GROUP_DEVS, MCP_PATH, RESOURCE_METADATA};
use portcullis_e2e::{challenge_param, ClientPlan, Request};
use serde_json::json;

use crate::common::{assert_invalid_token, list, standard, Gate, McpGate};

const KEY: &str = "pcl_test_3f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c";

fn snapshot() -> serde_json::Value {
    standard()
        .api_key("ci", KEY, "ci-bot", &[GROUP_DEVS], &[])
        .build()
}

#[test]
fn api_key_in_x_api_key_header_is_accepted() {
    let gate = Gate::start("api_key_header", &snapshot());
    let resp = gate.envoy.send(
        Request::post(MCP_PATH)
            .json(&rpc(1, "tools/list", json!({})))
            .header("x-api-key", KEY),
    );
    assert_eq!(resp.status, 200, "{}", resp.describe());
    let r = &gate.upstream.requests()[0];
    assert!(
        r.header("x-api-key").is_none(),
        "API key passed through: {:?}",
        r.headers
    );
    assert!(r.header("authorization").is_none());
    assert_eq!(r.header("x-portcullis-user"), Some("ci-bot"));
    assert!(list(r.header("x-portcullis-groups").unwrap_or("")).contains(&GROUP_DEVS.to_string()));
}

#[test]
fn api_key_as_opaque_bearer_is_accepted() {
    let gate = Gate::start("api_key_bearer", &snapshot());
    let resp = gate.envoy.send(
        Request::post(MCP_PATH)
            .json(&rpc(1, "tools/list", json!({})))
            .bearer(KEY),
    );
    assert_eq!(resp.status, 200, "{}", resp.describe());
    let r = &gate.upstream.requests()[0];
    assert!(r.header("authorization").is_none(), "{:?}", r.headers);
    assert_eq!(r.header("x-portcullis-user"), Some("ci-bot"));
    // The key's grants apply: get-sum is not among them.
    let resp = gate.envoy.send(
        Request::post(MCP_PATH)
            .json(&rpc(
                2,
                "tools/call",
                json!({"name": "get-sum", "arguments": {"a": 1, "b": 1}}),
            ))
            .bearer(KEY),
    );
    assert_eq!(resp.status, 403, "{}", resp.describe());
}

#[test]
fn wrong_or_expired_api_keys_are_refused() {
    let snap = standard()
        .api_key("ci", KEY, "ci-bot", &[GROUP_DEVS], &[])
        .api_key(
            "old",
            "pcl_test_expired_key_0000000000000000",
            "old-bot",
            &[GROUP_DEVS],
            &[],
        )
        .edit(|s| s["api_keys"][1]["expires_at"] = json!(1_000_000_000u64))
        .build();
    let gate = Gate::start("api_key_wrong", &snap);
    let req = || Request::post(MCP_PATH).json(&rpc(1, "tools/list", json!({})));
    let resp = gate.envoy.send(req().header("x-api-key", "pcl_test_wrong"));
    assert_eq!(resp.status, 401, "wrong X-API-Key: {}", resp.describe());
    let c = resp.header("www-authenticate").unwrap_or("").to_string();
    assert_eq!(
        challenge_param(&c, "resource_metadata").as_deref(),
        Some(RESOURCE_METADATA),
        "{c:?}"
    );
    assert_invalid_token(
        &gate.envoy.send(req().bearer("pcl_test_wrong")),
        "wrong opaque bearer",
    );
    let resp = gate
        .envoy
        .send(req().header("x-api-key", "pcl_test_expired_key_0000000000000000"));
    assert_eq!(resp.status, 401, "expired key: {}", resp.describe());
    // Case matters: a key is a secret, not a name.
    let resp = gate
        .envoy
        .send(req().header("x-api-key", &KEY.to_uppercase()));
    assert_eq!(resp.status, 401, "upper-cased key: {}", resp.describe());
    gate.assert_upstream_untouched("bad API keys");
}

/// The TypeScript SDK with a custom `X-API-Key` header, end to end.
#[test]
fn mcp_session_with_api_key() {
    let gate = McpGate::start("api_key_mcp", &snapshot());
    let run = ClientPlan::new()
        .header("X-API-Key", KEY)
        .connect()
        .call_tool("echo", json!({"message": "key"}))
        .call_tool("get-sum", json!({"a": 1, "b": 1}))
        .run(&gate.dir, &gate.envoy.url(MCP_PATH));
    run.ok(0);
    assert_eq!(run.ok(1)["content"][0]["text"], "Echo: key");
    assert_eq!(run.err(2)["httpStatus"], 403, "{}", run.describe());
}
