//! Broker mode logging people in at an upstream IdP, end to end: the IdP fixture
//! (`oidc-provider`, dressed in turn as Keycloak, Okta, Cognito and Entra ID: the real services
//! cannot run here) knows the broker as one confidential client with one exact redirect URI,
//! `<PUBLIC_URL>/oauth/callback`. The official TypeScript SDK client registers with the broker
//! (DCR), the person consents on the broker's page, logs in at the IdP's forms
//! (`tests/node/browser.mjs` is the browser), comes back through the broker's callback, and the
//! client calls a tool through Envoy with the broker's token, which carries the groups the IdP
//! stated. Whatever the IdP's quirks (no DCR, exact redirects, no `aud`, no `resource`), the
//! same client works against every profile: that is what the broker is for.

use std::time::Duration;

use portcullis_e2e::control_plane::ControlPlane;
use portcullis_e2e::gateway::Gateway;
use portcullis_e2e::oidc::{OidcIdp, ALICE, BOB, ENTRA_ENGINEERING};
use portcullis_e2e::util::{free_port, wait_until};
use portcullis_e2e::{ClientPlan, McpServer, Request, TestDir};
use serde_json::json;

const NAME: &str = "everything";

fn log_in_through_the_broker_at(profile: &str) {
    let dir = TestDir::new(&format!("broker-federation-{profile}"));
    let envoy_port = free_port();
    let public_url = format!("http://127.0.0.1:{envoy_port}");
    let callback = format!("{public_url}/oauth/callback");
    let idp = OidcIdp::start_as(
        dir.path(),
        &["--profile", profile, "--broker-redirect", &callback],
    );
    let issuer = idp.issuer();
    let cp = ControlPlane::start(
        dir.path(),
        &[
            ("PORTCULLIS_PUBLIC_URL", public_url.as_str()),
            ("PORTCULLIS_AUTH_MODE", "broker"),
            ("PORTCULLIS_IDP_ISSUER", issuer.as_str()),
            ("PORTCULLIS_IDP_PROFILE", profile),
            ("PORTCULLIS_BROKER_CLIENT_ID", "portcullis-broker"),
            (
                "PORTCULLIS_BROKER_CLIENT_SECRET",
                "portcullis-broker-secret",
            ),
            ("MCP_ADVERTISED_SCOPES", "openid profile"),
            // Cognito's access tokens have no `aud`; the broker's own tokens are what the
            // filter checks here, the IdP's client ids only matter for its direct tokens.
            ("PORTCULLIS_IDP_CLIENT_IDS", "portcullis-broker"),
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
    // The IdP's name for alice's group (Entra sends object ids).
    let group = if profile == "entra" {
        ENTRA_ENGINEERING
    } else {
        "engineering"
    };
    for (path, body) in [
        (
            "/api/scopes/everything-echo".to_string(),
            json!({"grants": [{"server": NAME, "methods": ["tools/call"], "tools": ["echo"]}]}),
        ),
        (
            format!("/api/group-mappings/{group}"),
            json!({"scopes": ["everything-echo"]}),
        ),
    ] {
        let r = cp.admin("PUT", &path, Some(&body));
        assert!(r.status < 300, "PUT {path}: {}", r.describe());
    }
    let gateway = Gateway::start_on(dir.path(), &cp, envoy_port);
    // Ready once the policy (with the broker's keys) has arrived.
    let ready = wait_until(Duration::from_secs(20), || {
        (gateway.send(Request::get("/everything/mcp")).status == 401).then_some(())
    });
    assert!(
        ready.is_some(),
        "Envoy never challenged:\n{}",
        gateway.log_tail(30)
    );

    let run = ClientPlan::new()
        .oauth(json!({"user": ALICE.0, "password": ALICE.1}))
        .connect()
        .call_tool("echo", json!({"message": "federated"}))
        .run(&dir, &url);
    assert_eq!(
        run.ok(1)["content"][0]["text"],
        "Echo: federated",
        "{profile}: {}\nbroker log:\n{}",
        run.describe(),
        tail_lines(&cp.log(), 40)
    );
    let claims = &run.summary["oauth"]["accessTokenClaims"];
    assert_eq!(claims["iss"], public_url.as_str(), "{profile}: {claims}");
    assert_eq!(claims["aud"], url.as_str(), "{profile}: {claims}");
    assert_eq!(claims["sub"], "idp:alice", "{profile}: {claims}");
    assert_eq!(claims["groups"], json!([group]), "{profile}: {claims}");
    assert_eq!(claims["name"], "alice", "{profile}: {claims}");

    // The person is on record with the groups the IdP stated, and no password.
    let users = cp.admin("GET", "/api/users", None).json();
    let alice = users["users"]
        .as_array()
        .and_then(|u| u.iter().find(|u| u["username"] == "idp:alice").cloned())
        .unwrap_or_else(|| panic!("{profile}: alice is not on record: {users}"));
    assert_eq!(alice["groups"], json!([group]));

    // Bob is in no group: he logs in at the IdP and is refused by the filter, with the group
    // that would let him in.
    let run = ClientPlan::new()
        .oauth(json!({"user": BOB.0, "password": BOB.1}))
        .connect()
        .run(&dir, &url);
    let refused = run.err(0);
    assert_eq!(refused["httpStatus"], 403, "{profile}: {}", run.describe());
    drop((gateway, server, cp, idp));
}

#[test]
fn every_idp_profile_logs_people_in_through_the_broker() {
    for profile in ["keycloak", "okta", "cognito", "entra"] {
        log_in_through_the_broker_at(profile);
        eprintln!("[broker-federation] {profile}: works");
    }
}

fn tail_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
