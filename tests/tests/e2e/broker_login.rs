//! Broker mode with people logging in, end to end: `portcullis serve` in broker mode is the
//! authorization server (built-in user store), Envoy from the shipped bootstrap with the
//! filter passes `/oauth/…` to it and checks every MCP request against the tokens it issues,
//! and a real `mcp-server-everything` answers. The official TypeScript SDK client discovers
//! the authorization server from the 401, registers itself (DCR), logs in through the login
//! page with `tests/node/browser.mjs` as its browser, and calls a tool.

use std::time::Duration;

use portcullis_e2e::control_plane::ControlPlane;
use portcullis_e2e::gateway::Gateway;
use portcullis_e2e::util::{free_port, wait_until};
use portcullis_e2e::{ClientPlan, McpServer, Request, TestDir};
use serde_json::{json, Value};

const NAME: &str = "everything";
const ALICE: (&str, &str) = ("alice", "alice-password-1");
const BOB: (&str, &str) = ("bob", "bob-password-12");

/// The stack: control plane (broker), MCP server, Envoy.
struct Broker {
    url: String,
    public_url: String,
    gateway: Gateway,
    cp: ControlPlane,
    #[allow(dead_code)]
    server: McpServer,
    dir: TestDir,
}

impl Broker {
    fn start() -> Broker {
        let dir = TestDir::new("broker-login");
        let envoy_port = free_port();
        let public_url = format!("http://127.0.0.1:{envoy_port}");
        let cp = ControlPlane::start(
            dir.path(),
            &[
                ("PORTCULLIS_PUBLIC_URL", public_url.as_str()),
                ("PORTCULLIS_AUTH_MODE", "broker"),
                ("MCP_ADVERTISED_SCOPES", "openid profile"),
            ],
        );
        let server = McpServer::start(&dir);
        let registered = cp.register(&json!({
            "name": NAME,
            "path": "/everything",
            "proxy_pass_url": format!("http://127.0.0.1:{}/", server.port()),
            "append_mcp_path": true,
        }));
        let url = registered["mcp_url"].as_str().expect("mcp_url").to_string();
        for (path, body) in [
            (
                "/api/scopes/everything-safe".to_string(),
                json!({"grants": [{"server": NAME, "methods": ["tools/list", "tools/call"], "tools": ["echo"]}]}),
            ),
            (
                "/api/group-mappings/engineering".to_string(),
                json!({"scopes": ["everything-safe"]}),
            ),
            (
                format!("/api/users/{}", ALICE.0),
                json!({"password": ALICE.1, "groups": ["engineering"]}),
            ),
            (
                format!("/api/users/{}", BOB.0),
                json!({"password": BOB.1, "groups": []}),
            ),
        ] {
            let r = cp.admin("PUT", &path, Some(&body));
            assert!(r.status < 300, "PUT {path}: {}", r.describe());
        }
        let gateway = Gateway::start_on(dir.path(), &cp, envoy_port);
        let challenged = wait_until(Duration::from_secs(20), || {
            (gateway.send(Request::get("/everything/mcp")).status == 401).then_some(())
        });
        assert!(
            challenged.is_some(),
            "Envoy never challenged:\n{}",
            gateway.log_tail(30)
        );
        Broker {
            url,
            public_url,
            gateway,
            cp,
            server,
            dir,
        }
    }
}

fn oauth(user: (&str, &str)) -> Value {
    json!({"user": user.0, "password": user.1})
}

#[test]
fn ts_sdk_client_registers_logs_in_and_calls_a_tool_through_envoy() {
    let b = Broker::start();

    // Discovery through Envoy: the challenge, the metadata, the JWKS, all without credentials.
    let meta = b
        .gateway
        .send(Request::get("/.well-known/oauth-authorization-server"));
    assert_eq!(meta.status, 200, "{}", meta.describe());
    let meta = meta.json();
    assert_eq!(meta["issuer"], b.public_url.as_str());
    assert_eq!(
        meta["token_endpoint"],
        format!("{}/oauth/token", b.public_url)
    );
    let jwks = b.gateway.send(Request::get("/oauth/jwks"));
    assert_eq!(jwks.status, 200, "{}", jwks.describe());

    let run = ClientPlan::new()
        .oauth(oauth(ALICE))
        .connect()
        .call_tool("echo", json!({"message": "hello from broker mode"}))
        .call_tool("get-env", json!({}))
        .run(&b.dir, &b.url);
    let echoed = run.ok(1);
    assert_eq!(
        echoed["content"][0]["text"],
        "Echo: hello from broker mode",
        "{}",
        run.describe()
    );
    // Alice's group grants echo only.
    assert_eq!(run.err(2)["httpStatus"], 403, "{}", run.describe());
    let claims = &run.summary["oauth"]["accessTokenClaims"];
    assert_eq!(claims["iss"], b.public_url.as_str(), "{claims}");
    assert_eq!(claims["aud"], b.url.as_str(), "{claims}");
    assert_eq!(claims["sub"], ALICE.0);
    assert_eq!(claims["groups"], json!(["engineering"]));

    // The client registered itself and shows up for operators.
    let clients = b.cp.admin("GET", "/api/oauth-clients", None).json();
    let listed = clients["clients"].as_array().expect("clients");
    assert_eq!(listed.len(), 1, "{clients}");
    assert_eq!(listed[0]["registration_type"], "dcr");

    // A person without a mapped group logs in, and is refused with a clear 403.
    let run = ClientPlan::new()
        .oauth(oauth(BOB))
        .connect()
        .call_tool("echo", json!({"message": "x"}))
        .run(&b.dir, &b.url);
    let refused = run.err(0);
    assert_eq!(refused["httpStatus"], 403, "{}", run.describe());
}
