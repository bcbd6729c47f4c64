//! `portcullis doctor` against our own control plane: the real `portcullis serve` binary
//! (direct mode, SQLite in a temporary directory) with one registered server, behind a small
//! stand-in gateway that answers the MCP URL the way the filter does (401 + challenge) and
//! forwards everything else (the well-known documents) to the control plane. The IdP is a
//! fixture serving OIDC discovery at its issuer path (as Keycloak does).

// Tests may unwrap: a panic is the failure report (the workspace lints deny it elsewhere).
#![allow(clippy::unwrap_used)]

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Router;
use serde_json::{json, Value};

const ADMIN_TOKEN: &str = "doctor-serve-admin-token-0123456789";
const SCOPES: &str = "openid email offline_access";

/// Runs an axum app on 127.0.0.1 on a thread of its own; returns the port.
fn spawn(app: Router) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
            let _ = axum::serve(listener, app).await;
        });
    });
    port
}

fn json_response(status: u16, v: &Value) -> Response {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Body::from(v.to_string()))
        .expect("response")
}

/// The IdP's OIDC discovery document; `scopes` and `pkce` are switchable per test step.
#[derive(Clone)]
struct Idp {
    base: Arc<Mutex<String>>,
    scopes: Arc<Mutex<Vec<&'static str>>>,
}

async fn idp(State(s): State<Idp>, req: Request) -> Response {
    let base = s.base.lock().unwrap().clone();
    if req.uri().path() != "/realms/acme/.well-known/openid-configuration" {
        return json_response(404, &json!({"error": "not_found"}));
    }
    let issuer = format!("{base}/realms/acme");
    json_response(
        200,
        &json!({
            "issuer": issuer,
            "authorization_endpoint": format!("{issuer}/protocol/openid-connect/auth"),
            "token_endpoint": format!("{issuer}/protocol/openid-connect/token"),
            "jwks_uri": format!("{issuer}/protocol/openid-connect/certs"),
            "registration_endpoint": format!("{issuer}/clients-registrations/openid-connect"),
            "response_types_supported": ["code"],
            "code_challenge_methods_supported": ["plain", "S256"],
            "scopes_supported": *s.scopes.lock().unwrap(),
        }),
    )
}

/// The stand-in gateway: the MCP path gets the filter's 401; the rest goes to the control plane.
#[derive(Clone)]
struct Gateway {
    upstream: Arc<Mutex<u16>>,
    mcp_path: Arc<Mutex<String>>,
    public_url: Arc<Mutex<String>>,
}

async fn gateway(State(g): State<Gateway>, req: Request) -> Response {
    let path = req.uri().path().to_string();
    let mcp_path = g.mcp_path.lock().unwrap().clone();
    if path == mcp_path {
        let public = g.public_url.lock().unwrap().clone();
        return Response::builder()
            .status(401)
            .header(
                "www-authenticate",
                format!(
                    r#"Bearer resource_metadata="{public}/.well-known/oauth-protected-resource{mcp_path}", scope="{SCOPES}""#
                ),
            )
            .body(Body::empty())
            .expect("response");
    }
    let port = *g.upstream.lock().unwrap();
    let url = format!(
        "http://127.0.0.1:{port}{}",
        req.uri()
            .path_and_query()
            .map_or("/", axum::http::uri::PathAndQuery::as_str)
    );
    let resp = reqwest::Client::new()
        .get(url)
        .send()
        .await
        .expect("control plane");
    let status = resp.status().as_u16();
    let ct = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/octet-stream")
        .to_string();
    let body = resp.bytes().await.unwrap_or_default();
    Response::builder()
        .status(StatusCode::from_u16(status).unwrap())
        .header("content-type", ct)
        .body(Body::from(body))
        .expect("response")
}

/// `portcullis serve`, killed on drop.
struct Serve {
    child: Child,
    dir: std::path::PathBuf,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

async fn start_serve(public_url: &str, issuer: &str) -> (Serve, u16) {
    let dir = std::env::temp_dir().join(format!("portcullis-doctor-serve-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .env("PORTCULLIS_DATA_DIR", &dir)
        .env("PORTCULLIS_ADMIN_TOKEN", ADMIN_TOKEN)
        .env("PORTCULLIS_PUBLIC_URL", public_url)
        .env("PORTCULLIS_AUTH_MODE", "direct")
        .env("PORTCULLIS_IDP_ISSUER", issuer)
        .env("MCP_ADVERTISED_SCOPES", SCOPES)
        .env("PORTCULLIS_XDS_LISTEN", "off")
        .env_remove("DATABASE_URL")
        .env_remove("IDE_OAUTH_CLIENT_ID")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start portcullis serve");
    let serve = Serve { child, dir };
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ok = http
            .get(format!("http://127.0.0.1:{port}/healthz"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        if ok {
            return (serve, port);
        }
        assert!(Instant::now() < deadline, "portcullis serve did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn doctor(url: &str) -> (i32, Value) {
    let url = url.to_string();
    tokio::task::spawn_blocking(move || {
        let out = Command::new(env!("CARGO_BIN_EXE_portcullis"))
            .args(["doctor", &url, "--json", "--timeout", "5"])
            .env_remove("IDE_OAUTH_CLIENT_ID")
            .output()
            .expect("run doctor");
        let report: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        (out.status.code().unwrap_or(-1), report)
    })
    .await
    .expect("join")
}

fn codes(report: &Value) -> Vec<String> {
    report["findings"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|f| f["code"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_passes_our_own_metadata_and_names_what_the_idp_gets_wrong() {
    let idp_state = Idp {
        base: Arc::new(Mutex::new(String::new())),
        scopes: Arc::new(Mutex::new(vec!["openid", "email", "offline_access"])),
    };
    let idp_port = spawn(Router::new().fallback(idp).with_state(idp_state.clone()));
    let idp_base = format!("http://127.0.0.1:{idp_port}");
    *idp_state.base.lock().unwrap() = idp_base.clone();
    let issuer = format!("{idp_base}/realms/acme");

    let gw = Gateway {
        upstream: Arc::new(Mutex::new(0)),
        mcp_path: Arc::new(Mutex::new(String::new())),
        public_url: Arc::new(Mutex::new(String::new())),
    };
    let gw_port = spawn(Router::new().fallback(gateway).with_state(gw.clone()));
    let public_url = format!("http://127.0.0.1:{gw_port}");
    *gw.public_url.lock().unwrap() = public_url.clone();

    let (_serve, cp_port) = start_serve(&public_url, &issuer).await;
    *gw.upstream.lock().unwrap() = cp_port;

    // Register a server the way the reference registry's users do.
    let registered: Value = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{cp_port}/api/servers/register"))
        .bearer_auth(ADMIN_TOKEN)
        .form(&[
            ("name", "github"),
            ("path", "/github"),
            ("proxy_pass_url", "http://127.0.0.1:9/mcp"),
        ])
        .send()
        .await
        .expect("register")
        .json()
        .await
        .expect("register answer");
    let mcp_url = registered["mcp_url"]
        .as_str()
        .unwrap_or_else(|| panic!("no mcp_url in {registered}"))
        .to_string();
    assert!(mcp_url.starts_with(&public_url), "{mcp_url}");
    *gw.mcp_path.lock().unwrap() = mcp_url[public_url.len()..].to_string();

    // Our metadata is right: resource = the URL, at the path-suffixed location and the root.
    let (code, report) = doctor(&mcp_url).await;
    assert_eq!(code, 0, "{report:#}");
    assert!(codes(&report).is_empty(), "{:?}", codes(&report));
    let s = &report["summary"];
    assert_eq!(
        s["resource_metadata_found_at"],
        json!(["challenge", "path_suffixed", "path_appended", "root"]),
        "{report:#}"
    );
    assert_eq!(s["authorization_servers"][0]["issuer"], issuer);
    assert_eq!(s["authorization_servers"][0]["source"], "oidc_appended");
    assert_eq!(s["client_registration"], "dcr");

    // A Cognito-like IdP that does not accept offline_access: named, exit 1.
    *idp_state.scopes.lock().unwrap() = vec!["openid", "email"];
    let (code, report) = doctor(&mcp_url).await;
    assert_eq!(code, 1, "{report:#}");
    assert_eq!(codes(&report), ["offline_access_unsupported"], "{report:#}");
}
