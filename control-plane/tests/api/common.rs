//! Test harness: an app on a fresh database per test, request helpers, tokens.

use std::sync::atomic::{AtomicU32, Ordering};

use axum::body::Body;
use axum::http::{header, HeaderMap, Method, Request, StatusCode};
use axum::Router;
use portcullis::config::Config;
use portcullis::devtools::{DevAlg, DevKey, TokenSpec};
use portcullis::http::router;
use portcullis::http::state::AppState;
use portcullis::storage::Db;
use serde_json::Value;
use sqlx::Connection as _;
use tower::ServiceExt as _;

pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";
pub const ISSUER: &str = "https://idp.test/realms/acme";
pub const AUDIENCE: &str = "portcullis-api";
pub const PUBLIC_URL: &str = "https://gw.example.com";

#[derive(Debug, Clone)]
pub enum Backend {
    Sqlite,
    Postgres(String),
}

/// Runs each listed `async fn(Backend)` once per backend.
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name($crate::common::Backend::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    if let Some(b) = $crate::common::postgres() {
                        super::$name(b).await
                    }
                }
            )*
        }
    };
}

/// The PostgreSQL backend, from `PORTCULLIS_TEST_POSTGRES_URL`. Missing: a failure under CI,
/// a loud skip locally.
pub fn postgres() -> Option<Backend> {
    match std::env::var("PORTCULLIS_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => Some(Backend::Postgres(url)),
        _ if std::env::var_os("CI").is_some() => panic!(
            "PORTCULLIS_TEST_POSTGRES_URL is not set and CI is: start PostgreSQL with \
             eval \"$(bash scripts/postgres.sh)\" (scripts/test.sh does)"
        ),
        _ => {
            eprintln!(
                "\n!!! SKIPPING the PostgreSQL variant: PORTCULLIS_TEST_POSTGRES_URL is not set \
                 (eval \"$(bash scripts/postgres.sh)\" to run it) !!!\n"
            );
            None
        }
    }
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

fn unique(prefix: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{prefix}_{}_{n}_{nanos}", std::process::id())
}

/// A signing key for the test IdP, shared by every test.
pub fn idp_key() -> &'static DevKey {
    static KEY: std::sync::OnceLock<DevKey> = std::sync::OnceLock::new();
    KEY.get_or_init(|| DevKey::generate(DevAlg::EdDSA, "test-key"))
}

/// An IdP access token for the given groups.
pub fn token(sub: &str, groups: &[&str]) -> String {
    let mut spec = TokenSpec::new(ISSUER, AUDIENCE, sub);
    spec.groups = Some(
        groups
            .iter()
            .map(std::string::ToString::to_string)
            .collect(),
    );
    idp_key().sign(&spec.claims())
}

pub struct TestApp {
    pub app: Router,
    pub state: AppState,
    pub config: Config,
    cleanup: Option<std::path::PathBuf>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(dir) = self.cleanup.take() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// The configuration every test starts from: admin token, an IdP whose tokens we verify, a
/// public URL. `tweak` changes it.
pub fn base_config() -> Config {
    let jwks_dir = std::env::temp_dir().join(unique("portcullis-jwks"));
    std::fs::create_dir_all(&jwks_dir).unwrap();
    let jwks_file = jwks_dir.join("jwks.json");
    std::fs::write(&jwks_file, idp_key().jwks().to_string()).unwrap();
    let vars = [
        ("PORTCULLIS_ADMIN_TOKEN", ADMIN_TOKEN.to_string()),
        ("PORTCULLIS_IDP_ISSUER", ISSUER.to_string()),
        ("PORTCULLIS_IDP_JWKS_FILE", jwks_file.display().to_string()),
        ("PORTCULLIS_IDP_AUDIENCE", AUDIENCE.to_string()),
        ("PORTCULLIS_PUBLIC_URL", PUBLIC_URL.to_string()),
        // Broker mode on PostgreSQL needs one (replicas share it); 32 bytes of 42.
        (
            "PORTCULLIS_SECRET_KEY",
            "KioqKioqKioqKioqKioqKioqKioqKioqKioqKioqKio".to_string(),
        ),
    ];
    let config =
        Config::from_lookup(|k| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone()))
            .unwrap();
    let _ = std::fs::remove_dir_all(jwks_dir);
    config
}

pub async fn app(backend: &Backend) -> TestApp {
    app_with(backend, |_| {}).await
}

pub async fn app_with(backend: &Backend, tweak: impl FnOnce(&mut Config)) -> TestApp {
    let mut config = base_config();
    let mut cleanup = None;
    match backend {
        Backend::Sqlite => {
            // A data directory that does not exist yet: created on first start.
            let dir = std::env::temp_dir()
                .join(unique("portcullis-test"))
                .join("data");
            config.data_dir = dir.clone();
            cleanup = dir.parent().map(std::path::Path::to_path_buf);
        }
        Backend::Postgres(url) => {
            let schema = unique("t");
            sqlx::any::install_default_drivers();
            let mut conn = sqlx::AnyConnection::connect(url)
                .await
                .expect("connecting to PostgreSQL");
            sqlx::query(&format!("CREATE SCHEMA {schema}"))
                .execute(&mut conn)
                .await
                .unwrap();
            conn.close().await.unwrap();
            let sep = if url.contains('?') { '&' } else { '?' };
            config.database_url = Some(format!("{url}{sep}options=-c%20search_path%3D{schema}"));
        }
    }
    tweak(&mut config);
    let db = Db::connect(&config).await.expect("opening the database");
    let authorization_server = match config.auth_mode {
        portcullis::config::AuthMode::Broker => Some(
            portcullis::authz::server::AuthorizationServer::start(&config, db.clone())
                .await
                .expect("authorization server"),
        ),
        portcullis::config::AuthMode::Direct => None,
    };
    let state = AppState::new(config.clone(), db, authorization_server).expect("state");
    TestApp {
        app: router(state.clone()),
        state,
        config,
        cleanup,
    }
}

pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub text: String,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }

    /// Asserts the status and that the body is our JSON error; returns the description.
    pub fn error(&self, status: u16) -> String {
        assert_eq!(self.status.as_u16(), status, "body: {}", self.text);
        let v = self.json();
        assert!(v["error"].is_string(), "{v}");
        v["error_description"]
            .as_str()
            .unwrap_or_else(|| panic!("{v}"))
            .to_string()
    }

    pub fn ok(&self, status: u16) -> Value {
        assert_eq!(self.status.as_u16(), status, "body: {}", self.text);
        if self.text.is_empty() {
            Value::Null
        } else {
            self.json()
        }
    }
}

impl TestApp {
    /// Another handle on the same app (for a request held in a spawned task); the original
    /// cleans up.
    pub fn share(&self) -> TestApp {
        TestApp {
            app: self.app.clone(),
            state: self.state.clone(),
            config: self.config.clone(),
            cleanup: None,
        }
    }

    pub async fn send(&self, request: Request<Body>) -> Answer {
        let response = self.app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), 16 << 20)
            .await
            .unwrap();
        Answer {
            status,
            headers,
            text: String::from_utf8_lossy(&bytes).into_owned(),
        }
    }

    /// A JSON request (`body` `None` → no body) with an optional bearer credential.
    pub async fn call(
        &self,
        method: &str,
        uri: &str,
        bearer: Option<&str>,
        body: Option<Value>,
    ) -> Answer {
        let mut b = Request::builder()
            .method(Method::from_bytes(method.as_bytes()).unwrap())
            .uri(uri);
        if let Some(t) = bearer {
            b = b.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let request = match body {
            Some(v) => b
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(v.to_string()))
                .unwrap(),
            None => b.body(Body::empty()).unwrap(),
        };
        self.send(request).await
    }

    pub async fn admin(&self, method: &str, uri: &str, body: Option<Value>) -> Answer {
        self.call(method, uri, Some(ADMIN_TOKEN), body).await
    }

    /// `POST /api/servers/register` as an urlencoded form.
    pub async fn register_form(&self, bearer: Option<&str>, fields: &[(&str, &str)]) -> Answer {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(fields)
            .finish();
        let mut b = Request::post("/api/servers/register")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        if let Some(t) = bearer {
            b = b.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        self.send(b.body(Body::from(body)).unwrap()).await
    }

    /// `POST /api/servers/register` as multipart/form-data (what `curl -F` sends).
    pub async fn register_multipart(
        &self,
        bearer: Option<&str>,
        fields: &[(&str, &str)],
    ) -> Answer {
        let boundary = "----portcullis-test-boundary";
        let mut body = String::new();
        for (k, v) in fields {
            body.push_str(&format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n"
            ));
        }
        body.push_str(&format!("--{boundary}--\r\n"));
        let mut b = Request::post("/api/servers/register").header(
            header::CONTENT_TYPE,
            format!("multipart/form-data; boundary={boundary}"),
        );
        if let Some(t) = bearer {
            b = b.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        self.send(b.body(Body::from(body)).unwrap()).await
    }

    /// Registers a server as admin; panics unless 201.
    pub async fn register(&self, name: &str, path: &str, extra: &[(&str, &str)]) -> Value {
        let mut fields: Vec<(&str, &str)> = vec![
            ("name", name),
            ("path", path),
            ("proxy_pass_url", "http://127.0.0.1:9/"),
        ];
        fields.retain(|(k, _)| !extra.iter().any(|(e, _)| e == k));
        fields.extend_from_slice(extra);
        self.register_form(Some(ADMIN_TOKEN), &fields).await.ok(201)
    }
}
