//! The harness itself, with no Portcullis filter: these pass without the filter module.

use portcullis_e2e::envoy::{self, EnvoyConfig};
use portcullis_e2e::snapshot::MCP_PATH;
use portcullis_e2e::{ClientPlan, EchoUpstream, Envoy, McpServer, Request, TestDir};
use serde_json::json;

/// Envoy (no wasm filter) in front of the real MCP server, driven by the real TypeScript SDK
/// client: initialize, tools/list, tools/call, session DELETE.
#[test]
fn harness_smoke() {
    let dir = TestDir::new("harness_smoke");
    let server = McpServer::start(&dir);
    let envoy = Envoy::start(&EnvoyConfig::plain(server.port()), &dir);

    let run = ClientPlan::new()
        .header("X-Test", "smoke")
        .connect()
        .list_tools()
        .call_tool("echo", json!({"message": "hello through envoy"}))
        .call_tool("get-sum", json!({"a": 2, "b": 3}))
        .terminate_session()
        .run(&dir, &envoy.url(MCP_PATH));

    let init = run.ok(0);
    assert!(init["sessionId"].is_string(), "no session id: {init}");
    let tools = run.ok(1);
    let names: Vec<&str> = tools["tools"]
        .as_array()
        .expect("tools array")
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    for expected in ["echo", "get-sum"] {
        assert!(
            names.contains(&expected),
            "server-everything lists {names:?}"
        );
    }
    assert_eq!(
        run.ok(2)["content"][0]["text"],
        "Echo: hello through envoy",
        "{}",
        run.describe()
    );
    assert_eq!(run.ok(3)["content"][0]["text"], "The sum of 2 and 3 is 5.");
    run.ok(4);

    // What the SDK put on the wire, as the client saw it.
    let http = run.http();
    let init_post = &run.http_for_method("initialize")[0];
    assert_eq!(init_post["method"], "POST");
    assert_eq!(init_post["status"], 200);
    assert_eq!(
        init_post["requestHeaders"]["x-test"], "smoke",
        "requestInit headers are sent"
    );
    assert_eq!(
        init_post["requestHeaders"]["content-type"],
        "application/json"
    );
    assert_eq!(
        init_post["requestHeaders"]["accept"],
        "application/json, text/event-stream"
    );
    assert!(
        init_post["requestHeaders"].get("mcp-session-id").is_none(),
        "initialize carries no session id"
    );
    let notif = &run.http_for_method("notifications/initialized")[0];
    assert_eq!(notif["status"], 202);
    assert!(notif["requestHeaders"]["mcp-session-id"].is_string());
    assert!(notif["requestHeaders"]["mcp-protocol-version"].is_string());
    assert!(
        http.iter()
            .any(|e| e["method"] == "DELETE" && e["status"] == 200),
        "terminateSession sends DELETE: {}",
        run.describe()
    );

    // And as Envoy saw it.
    let log = envoy.access_log();
    assert!(
        log.iter()
            .any(|e| e["method"] == "POST" && e["path"] == MCP_PATH && e["status"] == 200),
        "access log: {log:#?}"
    );
    assert!(
        log.iter().any(|e| e["method"] == "DELETE"),
        "access log: {log:#?}"
    );
    drop(envoy);
    assert!(
        server.log().contains("Session initialized"),
        "{}",
        server.log()
    );
}

/// The echo upstream records what Envoy forwards; `/srv/…` is forwarded as `/…`.
#[test]
fn harness_echo_upstream_records_requests() {
    let dir = TestDir::new("harness_echo_upstream");
    let upstream = EchoUpstream::start();
    let envoy = Envoy::start(&EnvoyConfig::plain(upstream.port()), &dir);

    let body = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/list"});
    let resp = envoy.send(
        Request::post(MCP_PATH)
            .json(&body)
            .bearer("opaque")
            .header("x-portcullis-user", "mallory"),
    );
    assert_eq!(resp.status, 200, "{}", resp.describe());
    assert_eq!(resp.header("x-echo-upstream"), Some("1"));
    assert_eq!(resp.json()["id"], 7);
    assert_eq!(resp.json()["result"]["method"], "tools/list");

    let big = vec![b'x'; 200_000];
    let resp = envoy.send(Request::post("/srv/big").body(big.clone()));
    assert_eq!(resp.status, 200, "{}", resp.describe());

    let seen = upstream.requests();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(seen[0].method, "POST");
    assert_eq!(seen[0].path, "/mcp");
    assert_eq!(seen[0].header("authorization"), Some("Bearer opaque"));
    assert_eq!(seen[0].header_all("x-portcullis-user"), vec!["mallory"]);
    assert_eq!(seen[0].json(), Some(body));
    assert_eq!(seen[1].body.len(), big.len());
}

/// `envoy --mode validate` accepts what the harness renders and rejects garbage.
#[test]
fn harness_validate_mode() {
    let dir = TestDir::new("harness_validate");
    let good = dir.join("good.yaml");
    let rendered = EnvoyConfig::plain(9).render(&dir.join("access.log"));
    std::fs::write(&good, serde_json::to_string_pretty(&rendered).unwrap()).unwrap();
    let (status, out) = envoy::validate(&good);
    assert!(
        status.success(),
        "validate failed on the harness config:\n{out}"
    );

    let bad = dir.join("bad.yaml");
    std::fs::write(
        &bad,
        "static_resources:\n  listeners:\n  - name: x\n    no_such_field: 1\n",
    )
    .unwrap();
    let (status, out) = envoy::validate(&bad);
    assert!(
        !status.success(),
        "validate should reject an unknown field:\n{out}"
    );
    assert!(out.contains("no_such_field"), "{out}");
}
