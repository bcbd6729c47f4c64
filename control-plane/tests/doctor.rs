//! `portcullis doctor` against fixture servers on 127.0.0.1: one correct setup, one fixture per
//! known mistake, and an unreachable URL. Every test runs the real binary and checks its exit
//! code and its `--json` report.

// Tests may unwrap: a panic is the failure report (the workspace lints deny it elsewhere).
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::process::Command;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use axum::Router;
use serde_json::{json, Value};

/// One canned answer. `{base}` in headers and body becomes `http://<Host header>`, so the same
/// fixture is consistent under any host name (see `--resolve`).
#[derive(Clone, Debug)]
struct Canned {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

/// A fixture HTTP server on 127.0.0.1 answering `METHOD path` from a table; 404 otherwise.
struct Fixture {
    port: u16,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Fixture {
    fn start(routes: HashMap<String, Canned>) -> Fixture {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind fixture");
        listener.set_nonblocking(true).expect("nonblocking");
        let port = listener.local_addr().expect("addr").port();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let routes = Arc::new(routes);
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                let app = Router::new().fallback(answer).with_state(routes);
                axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = rx.await;
                    })
                    .await
                    .expect("serve");
            });
        });
        Fixture {
            port,
            stop: Some(tx),
            thread: Some(thread),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn answer(State(routes): State<Arc<HashMap<String, Canned>>>, req: Request) -> Response {
    let key = format!("{} {}", req.method(), req.uri().path());
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1")
        .to_string();
    let base = format!("http://{host}");
    let Some(c) = routes.get(&key) else {
        return Response::builder()
            .status(404)
            .header("content-type", "text/plain")
            .body(Body::from("not found"))
            .expect("response");
    };
    let mut resp = Response::builder().status(StatusCode::from_u16(c.status).expect("status"));
    for (k, v) in &c.headers {
        resp = resp.header(
            k.as_str(),
            HeaderValue::from_str(&v.replace("{base}", &base)).expect("header value"),
        );
    }
    resp.body(Body::from(c.body.replace("{base}", &base)))
        .expect("response")
}

/// The parts of a setup the tests break one at a time.
struct Setup {
    /// Status for requests without a token.
    no_token_status: u16,
    /// `WWW-Authenticate` on that answer (POST and GET), if any.
    challenge: Option<String>,
    /// Status of the GET probe, when different from the POST's (then without a challenge).
    get_status: Option<u16>,
    prm: Value,
    /// Where the protected-resource metadata is served.
    prm_paths: Vec<String>,
    as_meta: Value,
    as_path: String,
    as_content_type: String,
    /// Served instead of `as_meta` when set.
    as_raw: Option<String>,
    extra: Vec<(String, Canned)>,
}

impl Setup {
    /// Everything right: 401 + challenge, PRM at the challenge URL, path-suffixed and root, AS
    /// metadata (RFC 8414 path insertion) with S256, DCR and offline_access.
    fn good() -> Setup {
        Setup {
            no_token_status: 401,
            challenge: Some(
                r#"Bearer resource_metadata="{base}/.well-known/oauth-protected-resource/mcp", scope="openid mcp offline_access""#
                    .into(),
            ),
            get_status: None,
            prm: json!({
                "resource": "{base}/mcp",
                "authorization_servers": ["{base}/as"],
                "scopes_supported": ["openid", "mcp", "offline_access"],
                "bearer_methods_supported": ["header"],
            }),
            prm_paths: vec![
                "/.well-known/oauth-protected-resource/mcp".into(),
                "/.well-known/oauth-protected-resource".into(),
            ],
            as_meta: json!({
                "issuer": "{base}/as",
                "authorization_endpoint": "{base}/as/authorize",
                "token_endpoint": "{base}/as/token",
                "registration_endpoint": "{base}/as/register",
                "response_types_supported": ["code"],
                "code_challenge_methods_supported": ["S256"],
                "scopes_supported": ["openid", "mcp", "offline_access"],
            }),
            as_path: "/.well-known/oauth-authorization-server/as".into(),
            as_content_type: "application/json".into(),
            as_raw: None,
            extra: Vec::new(),
        }
    }

    fn start(&self) -> Fixture {
        let mut routes = HashMap::new();
        let mut headers = Vec::new();
        if let Some(c) = &self.challenge {
            headers.push(("www-authenticate".to_string(), c.clone()));
        }
        let probe = Canned {
            status: self.no_token_status,
            headers: headers.clone(),
            body: r#"{"error":"unauthorized"}"#.into(),
        };
        routes.insert("POST /mcp".to_string(), probe.clone());
        let get = match self.get_status {
            Some(status) => Canned {
                status,
                headers: Vec::new(),
                body: String::new(),
            },
            None => probe,
        };
        routes.insert("GET /mcp".to_string(), get);
        for p in &self.prm_paths {
            routes.insert(format!("GET {p}"), json_doc(&self.prm, "application/json"));
        }
        let as_doc = match &self.as_raw {
            Some(raw) => Canned {
                status: 200,
                headers: vec![("content-type".into(), self.as_content_type.clone())],
                body: raw.clone(),
            },
            None => json_doc(&self.as_meta, &self.as_content_type),
        };
        routes.insert(format!("GET {}", self.as_path), as_doc);
        for (k, v) in &self.extra {
            routes.insert(k.clone(), v.clone());
        }
        Fixture::start(routes)
    }
}

fn json_doc(v: &Value, content_type: &str) -> Canned {
    Canned {
        status: 200,
        headers: vec![("content-type".into(), content_type.into())],
        body: v.to_string(),
    }
}

/// What one run of the binary gave.
struct Run {
    code: i32,
    report: Value,
    stdout: String,
    stderr: String,
}

impl Run {
    fn codes(&self) -> Vec<String> {
        self.report["findings"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|f| f["code"].as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn has(&self, code: &str) -> bool {
        self.codes().iter().any(|c| c == code)
    }

    fn severity(&self, code: &str) -> String {
        self.report["findings"]
            .as_array()
            .and_then(|a| a.iter().find(|f| f["code"] == code))
            .and_then(|f| f["severity"].as_str())
            .unwrap_or("")
            .to_string()
    }

    fn errors(&self) -> Vec<String> {
        self.report["findings"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter(|f| f["severity"] == "error")
                    .filter_map(|f| f["code"].as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn explain(&self) -> String {
        format!(
            "exit {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

fn doctor(url: &str, extra: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_portcullis"));
    cmd.arg("doctor")
        .arg(url)
        .arg("--json")
        .args(["--timeout", "5"])
        .args(extra)
        .env_remove("IDE_OAUTH_CLIENT_ID");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run portcullis doctor");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    Run {
        code: out.status.code().unwrap_or(-1),
        report: serde_json::from_str(&stdout).unwrap_or(Value::Null),
        stdout,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The text report of `portcullis doctor ARGS`, which must exit 0.
fn doctor_text(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .arg("doctor")
        .args(args)
        .env_remove("IDE_OAUTH_CLIENT_ID")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs the doctor on `setup` and checks it names `code` with `severity` and exits `exit`.
fn expect(setup: Setup, extra: &[&str], code: &str, severity: &str, exit: i32) -> Run {
    let fx = setup.start();
    let r = doctor(&fx.url("/mcp"), extra, &[]);
    assert!(
        r.has(code),
        "expected finding {code}, got {:?}\n{}",
        r.codes(),
        r.explain()
    );
    assert_eq!(r.severity(code), severity, "{}", r.explain());
    assert_eq!(r.code, exit, "{}", r.explain());
    assert_eq!(r.report["summary"]["exit_code"], exit);
    r
}

#[test]
fn correct_setup_passes_with_every_step() {
    let fx = Setup::good().start();
    let url = fx.url("/mcp");
    let r = doctor(&url, &[], &[]);
    assert_eq!(r.code, 0, "{}", r.explain());
    assert!(r.codes().is_empty(), "{:?}", r.codes());
    let steps: Vec<(&str, &str)> = r.report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["id"].as_str().unwrap(), s["status"].as_str().unwrap()))
        .collect();
    assert_eq!(
        steps,
        [
            ("probe", "ok"),
            ("challenge", "ok"),
            ("resource_metadata", "ok"),
            ("authorization_server", "ok"),
            ("client_registration", "ok"),
        ]
    );
    let probe = &r.report["steps"][0]["requests"];
    assert_eq!(probe[0]["method"], "POST");
    assert_eq!(probe[0]["status"], 401);
    assert_eq!(probe[1]["method"], "GET");
    assert_eq!(probe[1]["status"], 401);
    let s = &r.report["summary"];
    let base = fx.url("");
    assert_eq!(s["reachable"], true);
    assert_eq!(s["auth_required"], true);
    assert_eq!(s["challenge"]["scheme"], "Bearer");
    assert_eq!(
        s["challenge"]["resource_metadata"],
        format!("{base}/.well-known/oauth-protected-resource/mcp")
    );
    assert_eq!(s["challenge"]["scope"], "openid mcp offline_access");
    assert_eq!(s["resource_metadata_source"], "challenge");
    assert_eq!(
        s["resource_metadata_found_at"],
        json!(["challenge", "path_suffixed", "root"]),
        "the challenge names the path-suffixed URL"
    );
    assert_eq!(
        s["authorization_servers"][0]["issuer"],
        format!("{base}/as")
    );
    assert_eq!(s["authorization_servers"][0]["source"], "oauth");
    assert_eq!(s["authorization_servers"][0]["registration_endpoint"], true);
    assert_eq!(s["client_registration"], "dcr");
    assert_eq!(s["errors"], 0);
    assert_eq!(s["warnings"], 0);
    let ide = s["ide"].as_array().unwrap();
    assert!(ide
        .iter()
        .any(|o| o["client"] == "Claude Code" && o["outcome"].as_str().unwrap().contains("DCR")));

    // The text report says the same, step by step.
    let text = doctor_text(&[&url]);
    for needle in [
        "1. Connect without a token (POST initialize, GET) [ok]",
        "2. Read the WWW-Authenticate challenge [ok]",
        "3. Protected-resource metadata (RFC 9728) [ok]",
        "4. Authorization-server metadata [ok]",
        "5. How an IDE gets a client id [ok]",
        "WWW-Authenticate: Bearer resource_metadata=",
        "Claude Code: registers itself with DCR",
        "exit code 0",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in\n{text}");
    }
}

#[test]
fn oidc_discovery_by_path_appending_is_found_last() {
    let mut s = Setup::good();
    s.as_path = "/as/.well-known/openid-configuration".into();
    let fx = s.start();
    let r = doctor(&fx.url("/mcp"), &[], &[]);
    assert_eq!(r.code, 0, "{}", r.explain());
    let reqs: Vec<&str> = r.report["steps"][3]["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["url"].as_str().unwrap())
        .collect();
    let base = fx.url("");
    assert_eq!(
        reqs,
        [
            format!("{base}/.well-known/oauth-authorization-server/as"),
            format!("{base}/.well-known/openid-configuration/as"),
            format!("{base}/as/.well-known/openid-configuration"),
        ]
    );
    assert_eq!(
        r.report["summary"]["authorization_servers"][0]["source"],
        "oidc_appended"
    );
}

#[test]
fn prm_resource_mismatch() {
    let mut s = Setup::good();
    s.prm["resource"] = json!("{base}/mcp/");
    let r = expect(s, &[], "prm_resource_mismatch", "error", 1);
    assert!(r.stdout.contains("trailing slash"), "{}", r.stdout);
}

#[test]
fn prm_without_authorization_servers() {
    let mut s = Setup::good();
    s.prm
        .as_object_mut()
        .unwrap()
        .remove("authorization_servers");
    let r = expect(s, &[], "prm_no_authorization_servers", "error", 1);
    assert_eq!(r.report["steps"][3]["status"], "skipped");
}

#[test]
fn as_issuer_mismatch() {
    let mut s = Setup::good();
    s.as_meta["issuer"] = json!("{base}/as/");
    let r = expect(s, &[], "as_issuer_mismatch", "error", 1);
    let codex = r.report["summary"]["ide"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["client"] == "Codex")
        .unwrap()["outcome"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(codex.contains("issuer mismatch"), "{codex}");
}

#[test]
fn pkce_without_s256() {
    let mut s = Setup::good();
    s.as_meta["code_challenge_methods_supported"] = json!(["plain"]);
    expect(s, &[], "pkce_s256_missing", "error", 1);
}

#[test]
fn pkce_methods_absent() {
    let mut s = Setup::good();
    s.as_meta
        .as_object_mut()
        .unwrap()
        .remove("code_challenge_methods_supported");
    let r = expect(s, &[], "pkce_methods_absent", "error", 1);
    assert!(r.stdout.contains("refuse"), "{}", r.stdout);
}

fn without_dcr() -> Setup {
    let mut s = Setup::good();
    s.as_meta
        .as_object_mut()
        .unwrap()
        .remove("registration_endpoint");
    s
}

#[test]
fn no_registration_endpoint_no_cimd_no_client_id() {
    let r = expect(without_dcr(), &[], "no_client_registration", "error", 1);
    assert_eq!(r.report["summary"]["client_registration"], "manual");
}

#[test]
fn a_pre_registered_client_id_fixes_missing_dcr() {
    let fx = without_dcr().start();
    let r = doctor(&fx.url("/mcp"), &["--client-id", "ide-public"], &[]);
    assert_eq!(r.code, 0, "{}", r.explain());
    assert_eq!(r.report["summary"]["client_registration"], "prereg");
    let r = doctor(&fx.url("/mcp"), &[], &[("IDE_OAUTH_CLIENT_ID", "from-env")]);
    assert_eq!(r.code, 0, "{}", r.explain());
    assert_eq!(r.report["summary"]["client_registration"], "prereg");
    assert!(r.stdout.contains("from-env"));
}

#[test]
fn cimd_is_a_registration_method() {
    let mut s = without_dcr();
    s.as_meta["client_id_metadata_document_supported"] = json!(true);
    let fx = s.start();
    let r = doctor(&fx.url("/mcp"), &[], &[]);
    assert_eq!(r.code, 0, "{}", r.explain());
    assert_eq!(r.report["summary"]["client_registration"], "cimd");
}

#[test]
fn offline_access_advertised_but_not_supported() {
    let mut s = Setup::good();
    s.as_meta["scopes_supported"] = json!(["openid", "email", "mcp"]);
    expect(s, &[], "offline_access_unsupported", "error", 1);
}

#[test]
fn challenge_without_resource_metadata() {
    let mut s = Setup::good();
    s.challenge = Some(r#"Bearer scope="openid mcp offline_access""#.into());
    let r = expect(s, &[], "challenge_no_resource_metadata", "error", 1);
    // Still found at the well-known location.
    assert_eq!(
        r.report["summary"]["resource_metadata_source"],
        "path_suffixed"
    );
}

#[test]
fn forbidden_instead_of_unauthorized() {
    let mut s = Setup::good();
    s.no_token_status = 403;
    expect(s, &[], "forbidden_without_token", "error", 1);
}

#[test]
fn challenge_without_scope_is_a_warning_and_strict_fails() {
    let mut s = Setup::good();
    s.challenge = Some(
        r#"Bearer resource_metadata="{base}/.well-known/oauth-protected-resource/mcp""#.into(),
    );
    expect(s, &[], "challenge_no_scope", "warning", 0);
    let mut s = Setup::good();
    s.challenge = Some(
        r#"Bearer resource_metadata="{base}/.well-known/oauth-protected-resource/mcp""#.into(),
    );
    expect(s, &["--strict"], "challenge_no_scope", "warning", 1);
}

#[test]
fn challenge_missing_and_malformed() {
    let mut s = Setup::good();
    s.challenge = None;
    expect(s, &[], "challenge_missing", "error", 1);
    let mut s = Setup::good();
    s.challenge = Some(r#"Bearer resource_metadata="{base}/x"#.into());
    let r = expect(s, &[], "challenge_malformed", "error", 1);
    assert!(
        r.stdout.contains("unterminated quoted string"),
        "{}",
        r.stdout
    );
    let mut s = Setup::good();
    s.challenge = Some(r#"Basic realm="x""#.into());
    expect(s, &[], "challenge_missing", "error", 1);
}

#[test]
fn as_metadata_not_json() {
    let mut s = Setup::good();
    s.as_raw = Some("<html>login</html>".into());
    s.as_content_type = "text/html".into();
    let r = expect(s, &[], "as_metadata_not_json", "error", 1);
    assert!(r.has("as_metadata_not_found"), "{:?}", r.codes());
}

#[test]
fn as_metadata_wrong_content_type() {
    let mut s = Setup::good();
    s.as_content_type = "text/plain".into();
    let r = expect(s, &[], "as_metadata_content_type", "warning", 0);
    assert_eq!(r.report["summary"]["client_registration"], "dcr");
}

#[test]
fn tls_less_url_to_a_host_that_is_not_loopback() {
    let fx = Setup::good().start();
    let url = format!("http://mcp.doctor.test:{}/mcp", fx.port);
    let r = doctor(&url, &["--resolve", "mcp.doctor.test=127.0.0.1"], &[]);
    assert_eq!(r.code, 1, "{}", r.explain());
    assert!(r.has("insecure_transport"), "{:?}", r.codes());
    assert_eq!(r.severity("insecure_transport"), "error");
    // Everything else is right (the fixture follows the Host header).
    assert!(
        r.errors().iter().all(|c| c == "insecure_transport"),
        "{:?}",
        r.errors()
    );
}

fn jwt(claims: &Value) -> String {
    use base64::Engine as _;
    let b = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    format!(
        "{}.{}.c2lnbmF0dXJlLW5vdC1jaGVja2Vk",
        b(&json!({"alg": "RS256", "kid": "k"})),
        b(claims)
    )
}

#[test]
fn token_without_groups_claim() {
    let token =
        jwt(&json!({"iss": "https://idp", "sub": "alice", "aud": "x", "exp": 4_000_000_000u64}));
    let r = expect(
        Setup::good(),
        &["--token", &token],
        "token_no_groups",
        "error",
        1,
    );
    assert!(!r.stdout.contains(&token) && !r.stderr.contains(&token));
    assert_eq!(r.report["summary"]["token"]["jwt"], true);
}

#[test]
fn token_with_groups_claims_passes_and_is_never_printed() {
    let fx = Setup::good().start();
    for groups in [
        json!({"groups": ["devs"]}),
        json!({"cognito:groups": ["devs", "ops"]}),
        json!({"roles": "admin"}),
        json!({"realm_access": {"roles": ["devs"]}}),
    ] {
        let mut claims = json!({
            "iss": fx.url("/as"), "sub": "a", "aud": fx.url("/mcp"), "exp": 4_000_000_000u64
        });
        for (k, v) in groups.as_object().unwrap() {
            claims[k] = v.clone();
        }
        let token = jwt(&claims);
        let r = doctor(&fx.url("/mcp"), &["--token", &token], &[]);
        assert_eq!(r.code, 0, "{claims}: {}", r.explain());
        assert!(!r.stdout.contains(&token) && !r.stderr.contains(&token));
        assert_eq!(
            r.report["summary"]["token"]["groups_claims"]
                .as_object()
                .unwrap()
                .len(),
            1
        );
    }
}

/// `Setup::good()` plus a control plane: server `github` at `{base}/mcp`; group `devs` maps to
/// `github-read` (a grant on it), `writers` to `docs-all` (a grant on another server).
fn with_control_plane() -> Setup {
    let mut s = Setup::good();
    for (path, body) in [
        (
            "/api/servers",
            json!({"total_count": 1, "servers": [{"name": "github", "mcp_url": "{base}/mcp"}]}),
        ),
        (
            "/api/group-mappings",
            json!({"group_mappings": [{"group": "devs", "scopes": ["github-read"]},
                                      {"group": "writers", "scopes": ["docs-all"]}]}),
        ),
        (
            "/api/scopes",
            json!({"scopes": [{"name": "github-read", "grants": [{"server": "github"}]},
                              {"name": "docs-all", "grants": [{"server": "docs"}]}]}),
        ),
    ] {
        s.extra
            .push((format!("GET {path}"), json_doc(&body, "application/json")));
    }
    s
}

#[test]
fn token_checked_against_the_servers_policy_and_group_mappings() {
    let fx = with_control_plane().start();
    let url = fx.url("/mcp");
    let admin = "admin-token-not-to-be-printed";
    let cp = ["--control-plane", &fx.url("/")];
    let cp_args = |token: &str| -> Vec<String> {
        [
            "--token",
            token,
            cp[0],
            cp[1],
            "--admin-token-env",
            "DOCTOR_TEST_ADMIN",
        ]
        .iter()
        .map(ToString::to_string)
        .collect()
    };
    let run = |token: &str| {
        let args = cp_args(token);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        doctor(&url, &args, &[("DOCTOR_TEST_ADMIN", admin)])
    };

    // A Cognito access token: no aud, a client_id, token_use access; its group grants the server.
    let token = jwt(&json!({
        "iss": fx.url("/as"), "sub": "a", "exp": 4_000_000_000u64, "client_id": "7abc",
        "token_use": "access", "cognito:groups": ["devs"],
    }));
    let r = run(&token);
    assert_eq!(r.code, 0, "{}", r.explain());
    assert_eq!(r.codes(), ["token_no_audience"], "{}", r.explain());
    assert_eq!(r.severity("token_no_audience"), "warning");
    let t = &r.report["summary"]["token"];
    assert_eq!(t["audience"], "absent");
    assert_eq!(t["client_id"], "7abc");
    assert_eq!(t["issuer_listed"], true);
    assert_eq!(t["mapping"]["checked"], true);
    assert_eq!(t["mapping"]["server"], "github");
    assert_eq!(
        t["mapping"]["scopes_by_group"]["devs"],
        json!(["github-read"])
    );
    assert_eq!(t["mapping"]["granting"], json!(["github-read"]));
    let token_step = r.report["steps"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    let reqs: Vec<&str> = token_step["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["url"].as_str().unwrap())
        .collect();
    assert_eq!(
        reqs,
        [
            fx.url("/api/servers"),
            fx.url("/api/group-mappings"),
            fx.url("/api/scopes")
        ]
    );
    for secret in [&token, admin] {
        assert!(!r.stdout.contains(secret) && !r.stderr.contains(secret));
    }

    // An ID token from another issuer, for Keycloak's `account`, whose group grants nothing here.
    let token = jwt(&json!({
        "iss": "https://other.example/realms/x", "sub": "a", "exp": 4_000_000_000u64,
        "aud": "account", "token_use": "id", "groups": ["writers"],
    }));
    let r = run(&token);
    assert_eq!(r.code, 1, "{}", r.explain());
    for (code, severity) in [
        ("token_issuer_other", "error"),
        ("token_is_id_token", "error"),
        ("token_weak_audience", "warning"),
        ("token_no_server_access", "error"),
    ] {
        assert_eq!(r.severity(code), severity, "{code}: {}", r.explain());
    }

    // Without --control-plane the report says the mapping was not checked, and how.
    let token = jwt(&json!({
        "iss": fx.url("/as"), "sub": "a", "exp": 4_000_000_000u64, "aud": ["mcp-gateway"],
        "groups": ["0b6a2f54-1c3e-4d7a-9f00-aa12bc34de56"],
    }));
    let text = doctor_text(&[&url, "--token", &token]);
    for needle in [
        "WARN token_audience_other: aud is mcp-gateway,",
        "The token (claims only, not verified):",
        "group mappings: not checked (pass --control-plane URL",
        "must name the ids, not display names",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in\n{text}");
    }
    assert!(!text.contains(&token));

    // The admin token comes from the environment variable named, which must be set.
    let args = cp_args(&token);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let r = doctor(&url, &args, &[]);
    assert_eq!(r.code, 2, "{}", r.explain());
    assert!(r.stderr.contains("DOCTOR_TEST_ADMIN"), "{}", r.explain());
}

#[test]
fn metadata_only_through_the_challenge() {
    let mut s = Setup::good();
    s.challenge = Some(r#"Bearer resource_metadata="{base}/meta/prm", scope="openid mcp""#.into());
    s.prm_paths = vec!["/meta/prm".into()];
    let r = expect(s, &[], "prm_only_via_challenge", "warning", 0);
    let claude = r.report["summary"]["ide"][0]["outcome"].as_str().unwrap();
    assert!(claude.contains("will not find"), "{claude}");
}

#[test]
fn challenge_url_that_does_not_serve_metadata() {
    let mut s = Setup::good();
    s.challenge = Some(r#"Bearer resource_metadata="{base}/nowhere", scope="openid mcp""#.into());
    let r = expect(s, &[], "prm_challenge_url_failed", "error", 1);
    assert_eq!(
        r.report["summary"]["resource_metadata_source"],
        "path_suffixed"
    );
}

#[test]
fn no_metadata_anywhere() {
    let mut s = Setup::good();
    s.prm_paths.clear();
    expect(s, &[], "prm_not_found", "error", 1);
}

#[test]
fn get_without_the_challenge_warns_for_codex() {
    let mut s = Setup::good();
    s.get_status = Some(405);
    expect(s, &[], "get_no_challenge", "warning", 0);
}

#[test]
fn no_auth_at_all() {
    let mut s = Setup::good();
    s.no_token_status = 200;
    s.challenge = None;
    let r = expect(s, &[], "no_auth", "warning", 0);
    assert_eq!(r.report["summary"]["client_registration"], "none");
    assert_eq!(r.report["summary"]["auth_required"], false);
}

#[test]
fn wrong_url_gets_unexpected_status() {
    let fx = Setup::good().start();
    let r = doctor(&fx.url("/not-mcp"), &[], &[]);
    assert_eq!(r.code, 1, "{}", r.explain());
    assert!(r.has("unexpected_status"), "{:?}", r.codes());
}

#[test]
fn metadata_redirects_are_reported_and_followed() {
    let mut s = Setup::good();
    s.prm_paths = vec!["/moved/prm".into()];
    s.extra.push((
        "GET /.well-known/oauth-protected-resource/mcp".into(),
        Canned {
            status: 301,
            headers: vec![("location".into(), "/moved/prm".into())],
            body: String::new(),
        },
    ));
    let r = expect(s, &[], "redirect", "warning", 0);
    let reqs = r.report["steps"][2]["requests"].as_array().unwrap();
    assert_eq!(reqs[0]["status"], 301);
    assert_eq!(reqs[0]["location"], "/moved/prm");
    assert_eq!(reqs[1]["status"], 200);
}

#[test]
fn oversized_metadata_is_not_read() {
    let mut s = Setup::good();
    s.prm["padding"] = json!("x".repeat(300 * 1024));
    expect(s, &[], "response_too_large", "error", 1);
}

#[test]
fn unreachable_url_exits_2() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let r = doctor(&format!("http://127.0.0.1:{port}/mcp"), &[], &[]);
    assert_eq!(r.code, 2, "{}", r.explain());
    assert!(r.has("unreachable"), "{:?}", r.codes());
    assert_eq!(r.report["summary"]["reachable"], false);
}

#[test]
fn invalid_url_exits_2() {
    let r = doctor("not a url", &[], &[]);
    assert_eq!(r.code, 2, "{}", r.explain());
    assert!(r.has("invalid_url"));
}
