//! Request bodies: malformed JSON and oversized bodies are refused before the upstream.

use portcullis_e2e::snapshot::{rpc, GROUP_DEVS, MCP_PATH};
use portcullis_e2e::Request;
use serde_json::json;

use crate::common::{assert_json_error, standard, token, Gate};

#[test]
fn malformed_json_body_is_a_400() {
    let gate = Gate::start("malformed_json", &standard().build());
    let t = token("alice", &[GROUP_DEVS]);
    for (what, body) in [
        ("truncated", &b"{\"jsonrpc\": \"2.0\", \"method\":"[..]),
        ("not JSON", &b"hello"[..]),
        ("empty", &b""[..]),
        ("empty batch", &b"[]"[..]),
        ("a JSON string", &b"\"tools/call\""[..]),
        (
            "no method or result",
            &b"{\"jsonrpc\": \"2.0\", \"id\": 1}"[..],
        ),
    ] {
        let resp = gate
            .envoy
            .send(Request::post(MCP_PATH).raw_json(body.to_vec()).bearer(&t));
        assert_eq!(resp.status, 400, "{what}: {}", resp.describe());
        assert_json_error(&resp, 400, None);
    }
    gate.assert_upstream_untouched("malformed bodies");
}

#[test]
fn body_larger_than_max_body_bytes_is_a_413() {
    let snap = standard().setting("max_body_bytes", json!(2048)).build();
    let gate = Gate::start("oversized_body", &snap);
    let t = token("alice", &[GROUP_DEVS]);
    let big = rpc(
        1,
        "tools/call",
        json!({"name": "echo", "arguments": {"message": "x".repeat(8192)}}),
    );
    let resp = gate
        .envoy
        .send(Request::post(MCP_PATH).json(&big).bearer(&t));
    assert_eq!(resp.status, 413, "{}", resp.describe());
    assert_json_error(&resp, 413, None);
    gate.assert_upstream_untouched("oversized body");

    // Just under the limit passes.
    let small = rpc(
        1,
        "tools/call",
        json!({"name": "echo", "arguments": {"message": "x".repeat(1500)}}),
    );
    let resp = gate
        .envoy
        .send(Request::post(MCP_PATH).json(&small).bearer(&t));
    assert_eq!(resp.status, 200, "{}", resp.describe());
    assert_eq!(gate.upstream.requests()[0].json(), Some(small));
}

/// A body sent in chunks (no Content-Length) is still inspected as a whole.
#[test]
fn chunked_body_is_inspected() {
    let gate = Gate::start("chunked_body", &standard().build());
    let t = token("alice", &[GROUP_DEVS]);
    let msg = serde_json::to_vec(&rpc(
        1,
        "tools/call",
        json!({"name": "get-sum", "arguments": {"a": 1, "b": 2}}),
    ))
    .unwrap();
    let (a, b) = msg.split_at(msg.len() / 2);
    let mut chunked = Vec::new();
    for part in [a, b] {
        chunked.extend_from_slice(format!("{:x}\r\n", part.len()).as_bytes());
        chunked.extend_from_slice(part);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let resp = gate.envoy.send(
        Request::post(MCP_PATH)
            .bearer(&t)
            .header("content-type", "application/json")
            .header("transfer-encoding", "chunked")
            .body(chunked),
    );
    assert_eq!(resp.status, 403, "chunked get-sum: {}", resp.describe());
    gate.assert_upstream_untouched("chunked forbidden call");
}
