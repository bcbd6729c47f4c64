//! Broker mode logging people in at an upstream IdP, end to end: the IdP fixture
//! (`oidc-provider`, dressed in turn as Keycloak, Okta, Cognito and Entra ID: the real services
//! cannot run here) knows the broker as one confidential client with one exact redirect URI,
//! `<PUBLIC_URL>/oauth/callback`. Every client people use, run exactly as the broker-mode
//! connect config emits it (`assistants`): the official TypeScript SDK client, mcp-remote
//! (Claude Desktop's `npx mcp-remote …`), Claude Code (`claude mcp add …`, `claude mcp login`)
//! and Codex (`codex mcp add …`, which logs in at once, and `codex mcp login`). Each registers
//! with the broker by DCR (the default `PORTCULLIS_CIMD=auto` does not advertise CIMD offline),
//! the person consents on the broker's page, logs in at the IdP's forms (`tests/node/browser.mjs`
//! is the browser), comes back through the broker's callback, and the client calls `echo`
//! through Envoy with the broker's token: issued by the broker for the MCP URL, to `idp:alice`,
//! with the group the IdP stated (Entra's is an object id); `get-env`, which that group lacks,
//! is refused with 403. The CLIs run in the offline sandbox: its proxy, which refuses and
//! records, must have seen nothing (Claude Code honours it; Codex and mcp-remote do not, and find
//! no DNS here), and every hop of the browser stays on loopback. Whatever the IdP's quirks (no DCR,
//! exact redirects, no `aud`, no `resource`), the same clients work against every profile: that
//! is what the broker is for. One stack per profile serves all its clients; bob, in no group,
//! logs in and is refused by the filter.
//!
//! Also: a refresh at the broker re-reads the person's groups at the IdP.

use portcullis_e2e::oidc::{OidcIdp, ALICE, BOB, ENTRA_ENGINEERING};
use portcullis_e2e::util::free_port;
use portcullis_e2e::{ClientPlan, Request, TestDir};
use serde_json::json;
use sha2::Digest as _;

use crate::assistants::{claim_summary, serve_everything_on, Clients, Expect, Login, Stack, NAME};

/// What the echo tool is asked to echo.
const MESSAGE: &str = "federated";
/// A tool of the server that alice's group does not grant.
const DENIED_TOOL: &str = "get-env";

/// The stack of one profile: the IdP fixture, the broker, a real MCP server, Envoy; alice's
/// group (the IdP's name for `engineering`) may list tools and call `echo`.
struct Federated {
    profile: &'static str,
    stack: Stack,
    idp: OidcIdp,
    /// The IdP's name for alice's group.
    group: &'static str,
    /// Holds the files until the processes above are gone (fields drop in order).
    dir: TestDir,
}

impl Federated {
    fn start(profile: &'static str) -> Federated {
        let dir = TestDir::new(&format!("broker-federation-{profile}"));
        // The IdP knows the broker's callback, on Envoy's public URL, before the broker starts.
        let envoy_port = free_port();
        let callback = format!("http://127.0.0.1:{envoy_port}/oauth/callback");
        let idp = OidcIdp::start_as(
            dir.path(),
            &["--profile", profile, "--broker-redirect", &callback],
        );
        let issuer = idp.issuer();
        // The IdP's name for alice's group (Entra sends object ids).
        let group = if profile == "entra" {
            ENTRA_ENGINEERING
        } else {
            "engineering"
        };
        let stack = serve_everything_on(
            &dir,
            envoy_port,
            &[
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
            &[
                (
                    "/api/scopes/everything-echo".to_string(),
                    json!({"grants": [{"server": NAME, "methods": ["tools/list", "tools/call"], "tools": ["echo"]}]}),
                ),
                (
                    format!("/api/group-mappings/{group}"),
                    json!({"scopes": ["everything-echo"]}),
                ),
            ],
        );
        Federated {
            profile,
            stack,
            idp,
            group,
            dir,
        }
    }

    /// Alice's clients, run from the broker-mode connect config; each is also refused the tool
    /// her group lacks, and what the CLIs try to reach is recorded.
    fn clients(&self) -> Clients<'_> {
        Clients {
            denied_tool: Some(DENIED_TOOL),
            record_outbound: true,
            ..self
                .stack
                .clients(&self.dir, self.profile, "broker-federation", MESSAGE)
        }
    }

    /// Discovery offline with the default `PORTCULLIS_CIMD=auto`: no CIMD advertised, and the
    /// connect config sends every assistant the broker's way (the URL, no client id, DCR).
    fn check_discovery(&self) {
        let meta = self.stack.authorization_server_metadata();
        assert_eq!(
            meta["client_id_metadata_document_supported"], false,
            "{}: {meta:#}",
            self.profile
        );
        let connect = &self.stack.connect;
        assert_eq!(connect["url"], self.stack.url.as_str(), "{connect:#}");
        assert!(connect["oauth_client_id"].is_null(), "{connect:#}");
        for ide in ["claude-desktop", "claude-code", "codex"] {
            assert_eq!(
                connect["rendered"][ide]["login_method"], "dcr",
                "{} / {ide}: {:#}",
                self.profile, connect["rendered"][ide]
            );
        }
    }

    /// What `who`'s login must have done: a token from the broker for the MCP URL, to
    /// `idp:alice` with the IdP's group; its client registered by DCR as `client_name`; the
    /// person logged in at the IdP (the browser went there and back through the broker's
    /// callback); nothing but loopback reached by the CLI or the browser.
    fn check_login(&self, who: &str, login: Option<Login>, client_name: &str) {
        let who = format!("{} / {who}", self.profile);
        let claims =
            self.stack
                .check_broker_claims(&who, &login, "idp:alice", &json!([self.group]));
        assert_eq!(claims["name"], "alice", "{who}: {claims}");
        let client = self.stack.dcr_client(&who, claims, client_name);
        let login = login.as_ref().expect("checked above");
        for hop in [
            format!("{}/", self.idp.issuer()),
            format!("{}/oauth/callback", self.stack.public_url),
        ] {
            assert!(
                login.browser.contains(&hop),
                "{who}: the browser never went to {hop}:\n{}",
                login.browser
            );
        }
        let outside = login.outside_loopback();
        assert!(
            outside.is_empty(),
            "{who}: went beyond loopback: {outside:?}"
        );
        eprintln!(
            "[broker-federation] {who}: DCR client {:?} ({client_name}), claims {}",
            client["client_id"],
            claim_summary(claims),
        );
    }

    /// The TS SDK client logs alice in and calls `echo`; she is on record with the groups the
    /// IdP stated and no password; bob logs in and is refused by the filter.
    fn ts_sdk_logs_alice_in_and_refuses_bob(&self) {
        let (profile, cp, dir) = (self.profile, &self.stack.cp, &self.dir);
        let (url, public_url, group) = (&self.stack.url, &self.stack.public_url, self.group);
        let run = ClientPlan::new()
            .oauth(json!({"user": ALICE.0, "password": ALICE.1}))
            .connect()
            .call_tool("echo", json!({"message": MESSAGE}))
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
        eprintln!("[broker-federation] {profile} / TS SDK: works; bob refused");
    }
}

/// One profile's row: the TS SDK client (and bob), then mcp-remote, Claude Code and Codex (both
/// commands), each logging alice in at the IdP through the broker and calling `echo`.
fn every_client_logs_in_through_the_broker_at(profile: &'static str) {
    let started = std::time::Instant::now();
    let f = Federated::start(profile);
    f.check_discovery();
    f.ts_sdk_logs_alice_in_and_refuses_bob();
    let clients = f.clients();
    f.check_login(
        "mcp-remote",
        clients.mcp_remote(Expect::Works),
        "MCP CLI Proxy",
    );
    f.check_login(
        "Claude Code",
        clients.claude_code(Expect::Works),
        &format!("Claude Code ({NAME})"),
    );
    let [added, logged_in] = clients.codex(Expect::Works);
    f.check_login("Codex (mcp add)", added, "Codex");
    f.check_login("Codex (mcp login)", logged_in, "Codex");

    // Every client the broker heard of registered by DCR (bob's and the TS SDK's included), and
    // it was asked to authorize none but those.
    let registered = f.stack.oauth_clients();
    assert_eq!(registered.len(), 6, "{profile}: {registered:#?}");
    for c in &registered {
        assert_eq!(c["registration_type"], "dcr", "{profile}: {c}");
    }
    f.stack.check_only_registered_clients_authorized(profile);
    eprintln!(
        "[broker-federation] {profile}: every client works ({:.0?})",
        started.elapsed()
    );
}

#[test]
fn every_client_logs_in_through_the_broker_at_keycloak() {
    every_client_logs_in_through_the_broker_at("keycloak");
}

#[test]
fn every_client_logs_in_through_the_broker_at_okta() {
    every_client_logs_in_through_the_broker_at("okta");
}

#[test]
fn every_client_logs_in_through_the_broker_at_cognito() {
    every_client_logs_in_through_the_broker_at("cognito");
}

#[test]
fn every_client_logs_in_through_the_broker_at_entra() {
    every_client_logs_in_through_the_broker_at("entra");
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
    let port = f.stack.gateway.port();
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
        f.stack.public_url,
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
            ("resource", &f.stack.url),
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
            tail_lines(&f.stack.cp.log(), 30)
        )
    });
    let token = |fields: &[(&str, &str)]| Request::post("/oauth/token").form(fields).send(port);
    let tokens = token(&[
        ("grant_type", "authorization_code"),
        ("code", &code),
        ("code_verifier", &verifier),
        ("redirect_uri", &callback.redirect_uri()),
        ("client_id", &client_id),
        ("resource", &f.stack.url),
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
        tail_lines(&f.stack.cp.log(), 30)
    );
    let refreshed = refreshed.json();
    let access = refreshed["access_token"].as_str().expect("access_token");
    assert_eq!(claims_of(access)["groups"], json!(["sales"]));
    assert_eq!(claims_of(access)["sub"], "idp:alice");
    let users = f.stack.cp.admin("GET", "/api/users", None).json();
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
}
