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
use sha2::Digest as _;

const NAME: &str = "everything";

/// The stack of one profile: the IdP fixture, the broker, a real MCP server, Envoy; alice's
/// group (the IdP's name for `engineering`) may call `echo`.
struct Federated {
    gateway: Gateway,
    server: McpServer,
    cp: ControlPlane,
    idp: OidcIdp,
    public_url: String,
    /// The MCP server's URL (the broker's tokens' audience).
    url: String,
    group: &'static str,
    dir: TestDir,
}

impl Federated {
    fn start(profile: &str) -> Federated {
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
        Federated {
            gateway,
            server,
            cp,
            idp,
            public_url,
            url,
            group,
            dir,
        }
    }
}

fn log_in_through_the_broker_at(profile: &str) {
    let f = Federated::start(profile);
    let (cp, dir, url, public_url, group) = (&f.cp, &f.dir, &f.url, &f.public_url, f.group);
    let run = ClientPlan::new()
        .oauth(json!({"user": ALICE.0, "password": ALICE.1}))
        .connect()
        .call_tool("echo", json!({"message": "federated"}))
        .run(dir, url);
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
        .run(dir, url);
    let refused = run.err(0);
    assert_eq!(refused["httpStatus"], 403, "{profile}: {}", run.describe());
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

/// Catches the browser's redirect to a client's loopback callback: the query of each.
struct Callback {
    port: u16,
    queries: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Callback {
    fn start() -> Callback {
        use std::io::{Read as _, Write as _};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let queries = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = queries.clone();
        std::thread::spawn(move || {
            for mut stream in listener.incoming().flatten() {
                let mut buf = [0u8; 4096];
                let n = stream.read(&mut buf).unwrap_or(0);
                let head = String::from_utf8_lossy(&buf[..n]).to_string();
                if let Some(target) = head.split(' ').nth(1) {
                    let query = target.split_once('?').map(|(_, q)| q).unwrap_or("");
                    seen.lock().expect("lock").push(query.to_string());
                }
                let _ = stream.write_all(
                    b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
                );
            }
        });
        Callback { port, queries }
    }

    fn redirect_uri(&self) -> String {
        format!("http://127.0.0.1:{}/callback", self.port)
    }

    fn code(&self) -> Option<String> {
        let queries = self.queries.lock().expect("lock");
        queries.last().and_then(|q| {
            q.split('&')
                .find_map(|kv| kv.strip_prefix("code="))
                .map(str::to_string)
        })
    }
}

fn claims_of(token: &str) -> serde_json::Value {
    let payload = token.split('.').nth(1).expect("a JWT");
    serde_json::from_slice(&portcullis_e2e::util::b64url_decode(payload).expect("base64url"))
        .expect("claims")
}

/// Groups live at the IdP: a refresh at the broker refreshes there and takes the person's
/// groups as they are now, so a group removed there stops working within one access-token
/// lifetime; a person the IdP no longer knows cannot refresh at all.
#[test]
fn a_refresh_re_reads_the_groups_at_the_idp() {
    let f = Federated::start("keycloak");
    let port = f.gateway.port();
    let callback = Callback::start();
    let registered = Request::post("/oauth/register")
        .json(&json!({
            "client_name": "refresh test", "redirect_uris": [callback.redirect_uri()],
            "grant_types": ["authorization_code", "refresh_token"],
            "token_endpoint_auth_method": "none",
        }))
        .send(port);
    assert_eq!(registered.status, 201, "{}", registered.describe());
    let client_id = registered.json()["client_id"]
        .as_str()
        .expect("client_id")
        .to_string();
    let verifier = "v".repeat(50);
    let authorize = format!(
        "{}/oauth/authorize?{}",
        f.public_url,
        portcullis_e2e::http::form_urlencoded(&[
            ("response_type", "code"),
            ("client_id", &client_id),
            ("redirect_uri", &callback.redirect_uri()),
            (
                "code_challenge",
                &portcullis_e2e::util::b64url(&sha2::Sha256::digest(verifier.as_bytes())),
            ),
            ("code_challenge_method", "S256"),
            ("state", "s"),
            ("resource", &f.url),
        ])
    );
    let browsed = std::process::Command::new(portcullis_e2e::paths::node_bin())
        .arg(portcullis_e2e::login::browser())
        .arg(&authorize)
        .env("PORTCULLIS_TEST_LOGIN_USER", ALICE.0)
        .env("PORTCULLIS_TEST_LOGIN_PASSWORD", ALICE.1)
        .output()
        .expect("run the browser");
    let code = callback.code().unwrap_or_else(|| {
        panic!(
            "no code came back: {}\nbroker log:\n{}",
            String::from_utf8_lossy(&browsed.stderr),
            tail_lines(&f.cp.log(), 30)
        )
    });
    let token = |fields: &[(&str, &str)]| Request::post("/oauth/token").form(fields).send(port);
    let tokens = token(&[
        ("grant_type", "authorization_code"),
        ("code", &code),
        ("code_verifier", &verifier),
        ("redirect_uri", &callback.redirect_uri()),
        ("client_id", &client_id),
        ("resource", &f.url),
    ]);
    assert_eq!(tokens.status, 200, "{}", tokens.describe());
    let tokens = tokens.json();
    let access = tokens["access_token"].as_str().expect("access_token");
    assert_eq!(claims_of(access)["groups"], json!(["engineering"]));

    // Alice leaves engineering at the IdP: the next refresh carries her groups as they are.
    f.idp.set_groups(ALICE.0, &["sales"]);
    let refresh = tokens["refresh_token"].as_str().expect("refresh_token");
    let refreshed = token(&[
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh),
        ("client_id", &client_id),
    ]);
    assert_eq!(
        refreshed.status,
        200,
        "{}\nbroker log:\n{}",
        refreshed.describe(),
        tail_lines(&f.cp.log(), 30)
    );
    let refreshed = refreshed.json();
    let access = refreshed["access_token"].as_str().expect("access_token");
    assert_eq!(claims_of(access)["groups"], json!(["sales"]));
    assert_eq!(claims_of(access)["sub"], "idp:alice");
    let users = f.cp.admin("GET", "/api/users", None).json();
    let alice = users["users"]
        .as_array()
        .and_then(|u| u.iter().find(|u| u["username"] == "idp:alice").cloned())
        .expect("alice on record");
    assert_eq!(alice["groups"], json!(["sales"]));
    // And Envoy refuses her the tool engineering had.
    let call = Request::post("/everything/mcp")
        .header("authorization", &format!("Bearer {access}"))
        .header("accept", "application/json, text/event-stream")
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                      "params": {"name": "echo", "arguments": {"message": "x"}}}))
        .send(port);
    assert_eq!(call.status, 403, "{}", call.describe());

    // The IdP no longer knows her: the refresh is refused, and nothing it made lives on.
    f.idp.remove_user(ALICE.0);
    let next = refreshed["refresh_token"].as_str().expect("refresh_token");
    let refused = token(&[
        ("grant_type", "refresh_token"),
        ("refresh_token", next),
        ("client_id", &client_id),
    ]);
    assert_eq!(refused.status, 400, "{}", refused.describe());
    assert_eq!(refused.json()["error"], "invalid_grant");
    assert!(
        refused.json()["error_description"]
            .as_str()
            .unwrap_or_default()
            .contains("log in again"),
        "{}",
        refused.describe()
    );
    let _ = (&f.server, &f.dir);
}
