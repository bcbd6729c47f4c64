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

/// The shipped configs set `allow_on_headers_stop_iteration`, so the filter holds a POST's
/// headers until it has judged the body: a refused POST never reaches the upstream, not even its
/// headers.
#[test]
fn denied_posts_never_reach_the_upstream() {
    use portcullis_e2e::{EchoUpstream, Envoy, EnvoyConfig, TestDir};
    let dir = TestDir::new("denied_posts_held");
    let upstream = EchoUpstream::start();
    let config = EnvoyConfig::portcullis(&standard().build(), upstream.port());
    let envoy = Envoy::start(&config, &dir);
    let t = token("alice", &[GROUP_DEVS]);
    for _ in 0..3 {
        let forbidden = rpc(
            1,
            "tools/call",
            json!({"name": "get-sum", "arguments": {"a": 1, "b": 2}}),
        );
        let resp = envoy.send(Request::post(MCP_PATH).json(&forbidden).bearer(&t));
        assert_eq!(resp.status, 403, "{}", resp.describe());
        let resp = envoy.send(Request::post(MCP_PATH).raw_json(&b"{nope"[..]).bearer(&t));
        assert_eq!(resp.status, 400, "{}", resp.describe());
    }
    let seen = upstream.all_requests();
    assert!(
        seen.is_empty(),
        "the upstream saw {} request(s): {seen:?}",
        seen.len()
    );
    let allowed = rpc(
        2,
        "tools/call",
        json!({"name": "echo", "arguments": {"message": "m"}}),
    );
    let resp = envoy.send(Request::post(MCP_PATH).json(&allowed).bearer(&t));
    assert_eq!(resp.status, 200, "{}", resp.describe());
    assert_eq!(upstream.requests()[0].json(), Some(allowed));
}

/// Without `allow_on_headers_stop_iteration`, Envoy never hands a held POST's body to the
/// filter. The request stays closed (fail closed: nothing reaches the upstream) and the filter
/// tells the operator what is missing.
#[test]
fn missing_stop_iteration_setting_is_named_in_the_log() {
    use portcullis_e2e::{EchoUpstream, Envoy, EnvoyConfig, TestDir};
    use std::time::Duration;
    let dir = TestDir::new("no_stop_iteration");
    let upstream = EchoUpstream::start();
    let mut config = EnvoyConfig::portcullis(&standard().build(), upstream.port());
    if let Some(filter) = config.filter.as_mut() {
        filter.hold_headers_for_body = false;
    }
    let envoy = Envoy::start(&config, &dir);
    let t = token("alice", &[GROUP_DEVS]);
    let call = rpc(
        1,
        "tools/call",
        json!({"name": "echo", "arguments": {"message": "m"}}),
    );
    let outcome = Request::post(MCP_PATH)
        .json(&call)
        .bearer(&t)
        .timeout(Duration::from_secs(2))
        .try_send(envoy.port());
    assert!(outcome.is_err(), "the POST must not complete: {outcome:?}");
    assert!(
        envoy.wait_for_log("set `allow_on_headers_stop_iteration: true`"),
        "{}",
        envoy.interesting_log_lines(20)
    );
    assert!(upstream.all_requests().is_empty());
}
