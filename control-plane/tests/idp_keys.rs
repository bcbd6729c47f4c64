//! IdP key rotation against a real OpenID Provider: `oidc-provider` from npm
//! (`tests/node/oidc-idp.mjs`) on loopback, which rotates and retires its signing key on request.
//! Access tokens come from its token endpoint (client_credentials, RFC 9068 JWTs) and are
//! verified with the policy crate against a snapshot built from `IdpKeys::jwks`, as the filter
//! does. Runs on SQLite and, with `PORTCULLIS_TEST_POSTGRES_URL` (`scripts/postgres.sh`), on
//! PostgreSQL.
//!
//! Needs node and the npm fixtures (`bash scripts/setup.sh`); fails without them.

// Tests may unwrap: a panic is the failure report (the workspace lints deny it elsewhere).
#![allow(clippy::unwrap_used)]

use std::io::{BufRead as _, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use std::sync::Arc;

use portcullis::config::Config;
use portcullis::idp::keys::{IdpKeys, IdpKeysConfig};
use portcullis::idp::metadata::IdpMetadata;
use portcullis::storage::Db;
use serde_json::{json, Value};
use sqlx::Connection as _;

const RESOURCE: &str = "https://gw.example.com/github/mcp";
const CLIENT_ID: &str = "portcullis-test";
const CLIENT_SECRET: &str = "portcullis-test-secret";
/// Short, so the test sees a retired key expire.
const OVERLAP_SECONDS: u64 = 3;

fn node_dir() -> PathBuf {
    let dir = std::env::var_os("PORTCULLIS_NODE_DIR").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/node"),
        PathBuf::from,
    );
    assert!(
        dir.join("node_modules/oidc-provider/package.json")
            .is_file(),
        "oidc-provider is not installed in {}: run `bash scripts/setup.sh` (npm ci in tests/node)",
        dir.display()
    );
    dir
}

/// `node tests/node/oidc-idp.mjs` on a free loopback port; killed on drop.
struct OidcIdp {
    child: Child,
    port: u16,
    log: PathBuf,
    http: reqwest::Client,
}

impl OidcIdp {
    fn start(log_dir: &std::path::Path) -> OidcIdp {
        let dir = node_dir();
        let log = log_dir.join("oidc-idp.log");
        let mut child = Command::new("node")
            .arg(dir.join("oidc-idp.mjs"))
            .arg("0")
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).expect("create oidc-idp.log"))
            .spawn()
            .expect("start node (is Node.js installed?)");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(port) = line.strip_prefix("ready ") {
                    let _ = tx.send(port.trim().parse::<u16>().ok());
                    return;
                }
            }
            let _ = tx.send(None);
        });
        let port = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(Some(port)) => port,
            other => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "oidc-idp.mjs did not print `ready <port>` ({other:?}):\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
        };
        OidcIdp {
            child,
            port,
            log,
            http: reqwest::Client::new(),
        }
    }

    fn issuer(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// An access token for RESOURCE from the token endpoint (client_credentials).
    async fn token(&self) -> String {
        let response = self
            .http
            .post(format!("{}/token", self.issuer()))
            .basic_auth(CLIENT_ID, Some(CLIENT_SECRET))
            .form(&[
                ("grant_type", "client_credentials"),
                ("resource", RESOURCE),
                ("scope", "mcp"),
            ])
            .send()
            .await
            .expect("token request");
        let status = response.status();
        let body: Value = response.json().await.expect("token response is JSON");
        assert!(status.is_success(), "token endpoint: {status} {body}");
        body["access_token"]
            .as_str()
            .unwrap_or_else(|| panic!("no access_token: {body}"))
            .to_string()
    }

    /// `POST /admin/<action>` (`rotate`, `retire`) or `GET /admin/state`: the current and the
    /// published kids.
    async fn admin(&self, action: &str) -> (String, Vec<String>) {
        let url = format!("{}/admin/{action}", self.issuer());
        let request = if action == "state" {
            self.http.get(url)
        } else {
            self.http.post(url)
        };
        let state: Value = request
            .send()
            .await
            .expect("admin request")
            .json()
            .await
            .expect("admin JSON");
        let published = state["published"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k.as_str().unwrap().to_string())
            .collect();
        (state["current"].as_str().unwrap().to_string(), published)
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for OidcIdp {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The kid in a JWT's header.
fn kid_of(token: &str) -> String {
    use base64::Engine as _;
    let header = token.split('.').next().unwrap();
    let header: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(header)
            .unwrap(),
    )
    .unwrap();
    header["kid"].as_str().unwrap().to_string()
}

fn kids(jwks: &Value) -> Vec<String> {
    jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_string())
        .collect()
}

fn sorted(mut kids: Vec<String>) -> Vec<String> {
    kids.sort();
    kids
}

/// The snapshot's issuer entry as `compile_snapshot` writes it, with the fetched keys, compiled
/// by the policy crate exactly as the filter does.
async fn policy_from(keys: &IdpKeys, config: &Config) -> policy::Policy {
    let idp = config.idp.as_ref().unwrap();
    let jwks = keys
        .snapshot_jwks(&idp.issuer)
        .await
        .unwrap()
        .expect("keys known");
    let jwks = serde_json::from_value(jwks).expect("a JWKS");
    let mut snapshot: policy::snapshot::Snapshot =
        serde_json::from_value(json!({"format": 1, "version": 1})).unwrap();
    snapshot.issuers.push(policy::snapshot::IssuerSpec {
        audiences: idp.audiences.clone(),
        ..portcullis::registry::issuer_spec(idp, jwks)
    });
    policy::Policy::compile(snapshot.clone())
        .unwrap_or_else(|e| panic!("snapshot refused: {e}\n{snapshot:#?}"))
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

fn unique(prefix: &str) -> String {
    format!(
        "{prefix}_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    )
}

enum Backend {
    Sqlite,
    Postgres(String),
}

/// The PostgreSQL URL from `PORTCULLIS_TEST_POSTGRES_URL`. Missing: a failure under CI, a loud
/// skip locally (as the API tests do).
fn postgres() -> Option<Backend> {
    match std::env::var("PORTCULLIS_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => Some(Backend::Postgres(url)),
        _ if std::env::var_os("CI").is_some() => panic!(
            "PORTCULLIS_TEST_POSTGRES_URL is not set and CI is: start PostgreSQL with \
             eval \"$(bash scripts/postgres.sh)\""
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

/// The database URL for a fresh database: a SQLite file in `dir`, or a new schema.
async fn database_url(backend: &Backend, dir: &std::path::Path) -> String {
    match backend {
        Backend::Sqlite => format!("sqlite://{}?mode=rwc", dir.join("portcullis.db").display()),
        Backend::Postgres(url) => {
            let schema = unique("idpkeys");
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
            format!("{url}{sep}options=-c%20search_path%3D{schema}")
        }
    }
}

async fn rotation(backend: Backend) {
    let dir = std::env::temp_dir().join(unique("portcullis-idp-keys-it"));
    std::fs::create_dir_all(&dir).unwrap();
    let mut idp = OidcIdp::start(&dir);
    let (key_a, published) = idp.admin("state").await;
    assert_eq!(published, [key_a.as_str()]);

    // The IdP as an operator configures it: issuer and audience, keys from discovery.
    let vars = [
        ("PORTCULLIS_IDP_ISSUER", idp.issuer()),
        ("PORTCULLIS_IDP_AUDIENCE", RESOURCE.to_string()),
        ("DATABASE_URL", database_url(&backend, &dir).await),
        (
            "PORTCULLIS_IDP_KEY_OVERLAP_SECONDS",
            OVERLAP_SECONDS.to_string(),
        ),
        ("PORTCULLIS_IDP_JWKS_MIN_REFRESH_SECONDS", "1".to_string()),
    ];
    let get = |name: &str| {
        vars.iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.clone())
    };
    let config = Config::from_lookup(get).unwrap();
    let keys_config = IdpKeysConfig::from_lookup(&get).unwrap();
    let db = Db::connect(&config).await.expect("database");
    let keys = idp_keys(&db, &config, keys_config);
    let issuer = idp.issuer();

    // 1. First fetch: the IdP's one key.
    assert!(keys.refresh().await.unwrap(), "log:\n{}", idp.log());
    assert_eq!(kids(&keys.jwks(&issuer).await.unwrap()), [key_a.as_str()]);
    let token_a = idp.token().await;
    assert_eq!(kid_of(&token_a), key_a);
    let identity = policy_from(&keys, &config)
        .await
        .verify_jwt(&token_a, unix_now())
        .expect("token signed with key A");
    assert_eq!(identity.subject, CLIENT_ID);
    assert_eq!(&*identity.groups, ["engineering", "mcp-users"]);

    // 2. Rotation: the IdP signs with a new key B, A stays published. Before we refresh, a
    //    B token is an unknown kid (what the filter reports); the report triggers a refresh.
    let (key_b, published) = idp.admin("rotate").await;
    assert_eq!(published, [key_b.clone(), key_a.clone()]);
    let token_b = idp.token().await;
    assert_eq!(kid_of(&token_b), key_b);
    let err = policy_from(&keys, &config)
        .await
        .verify_jwt(&token_b, unix_now())
        .unwrap_err();
    assert_eq!(err.reason(), "unknown_kid");
    tokio::time::sleep(Duration::from_millis(1100)).await; // past the minimum interval
    assert!(keys.refresh_if_due_for_unknown_kid().await);
    let jwks = keys.jwks(&issuer).await.unwrap();
    assert_eq!(kids(&jwks), sorted(vec![key_a.clone(), key_b.clone()]));
    let policy = policy_from(&keys, &config).await;
    policy
        .verify_jwt(&token_b, unix_now())
        .expect("B token after rotation");
    policy
        .verify_jwt(&token_a, unix_now())
        .expect("A token still valid after rotation");
    assert!(!keys.refresh().await.unwrap(), "nothing new at the IdP");

    // 3. The IdP retires A: still trusted during the overlap ...
    let (_, published) = idp.admin("retire").await;
    assert_eq!(published, [key_b.as_str()]);
    assert!(keys.refresh().await.unwrap());
    assert_eq!(
        kids(&keys.jwks(&issuer).await.unwrap()),
        sorted(vec![key_a.clone(), key_b.clone()])
    );
    policy_from(&keys, &config)
        .await
        .verify_jwt(&token_a, unix_now())
        .expect("A token within the overlap");

    // ... and not after it.
    tokio::time::sleep(Duration::from_secs(OVERLAP_SECONDS + 2)).await;
    assert_eq!(kids(&keys.jwks(&issuer).await.unwrap()), [key_b.as_str()]);
    let policy = policy_from(&keys, &config).await;
    let err = policy.verify_jwt(&token_a, unix_now()).unwrap_err();
    assert_eq!(err.reason(), "unknown_kid");
    policy.verify_jwt(&token_b, unix_now()).expect("B token");
    assert!(keys.refresh().await.unwrap(), "the expired row is deleted");
    let rows = keys.stored(&issuer).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].kid, key_b);
    assert_eq!(rows[0].retired_at, None);

    // 4. The IdP goes down: the refresh fails and the keys stay.
    idp.stop();
    let err = keys.refresh().await.unwrap_err();
    let text = err.to_string();
    assert!(text.contains(&issuer), "{text}");
    assert_eq!(keys.stored(&issuer).await.unwrap(), rows);
    assert_eq!(kids(&keys.jwks(&issuer).await.unwrap()), [key_b.as_str()]);
    policy_from(&keys, &config)
        .await
        .verify_jwt(&token_b, unix_now())
        .expect("B token while the IdP is down");

    // 5. A second replica on the same database compiles the same key set without fetching.
    let replica = idp_keys(&db, &config, IdpKeysConfig::default());
    assert_eq!(
        replica.jwks(&issuer).await.unwrap(),
        keys.jwks(&issuer).await.unwrap()
    );

    db.close().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_rotation_with_oidc_provider_on_sqlite() {
    rotation(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_rotation_with_oidc_provider_on_postgres() {
    if let Some(backend) = postgres() {
        rotation(backend).await;
    }
}

/// The schedule: the first refresh runs at once, and a rotation at the IdP reaches the stored
/// keys (and the change callback) by the next scheduled refresh, without any call from outside.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_schedule_follows_a_rotation() {
    let dir = std::env::temp_dir().join(unique("portcullis-idp-keys-it"));
    std::fs::create_dir_all(&dir).unwrap();
    let idp = OidcIdp::start(&dir);
    let vars = [
        ("PORTCULLIS_IDP_ISSUER", idp.issuer()),
        ("PORTCULLIS_IDP_AUDIENCE", RESOURCE.to_string()),
        ("DATABASE_URL", database_url(&Backend::Sqlite, &dir).await),
        ("PORTCULLIS_IDP_JWKS_REFRESH_SECONDS", "1".to_string()),
        ("PORTCULLIS_IDP_JWKS_MIN_REFRESH_SECONDS", "1".to_string()),
        // The discovery document is cached; the JWKS is fetched on every refresh regardless.
        ("PORTCULLIS_IDP_METADATA_TTL_SECONDS", "300".to_string()),
    ];
    let get = |name: &str| {
        vars.iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.clone())
    };
    let config = Config::from_lookup(get).unwrap();
    let db = Db::connect(&config).await.unwrap();
    let keys = idp_keys(&db, &config, IdpKeysConfig::from_lookup(&get).unwrap());
    let (changes_tx, mut changes) = tokio::sync::mpsc::unbounded_channel();
    let task = keys.clone().spawn(move || {
        let _ = changes_tx.send(());
    });
    let issuer = idp.issuer();

    tokio::time::timeout(Duration::from_secs(10), changes.recv())
        .await
        .expect("first refresh reported a change")
        .unwrap();
    let (key_a, _) = idp.admin("state").await;
    assert_eq!(kids(&keys.jwks(&issuer).await.unwrap()), [key_a.as_str()]);

    let (key_b, _) = idp.admin("rotate").await;
    tokio::time::timeout(Duration::from_secs(10), changes.recv())
        .await
        .expect("the rotation reported a change")
        .unwrap();
    assert_eq!(
        kids(&keys.jwks(&issuer).await.unwrap()),
        sorted(vec![key_a, key_b])
    );
    task.abort();
    db.close().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// The keys of `config`'s IdP, with a discovery cache of their own.
fn idp_keys(db: &Db, config: &Config, keys_config: IdpKeysConfig) -> IdpKeys {
    let client = portcullis::outbound::client_builder(Duration::from_secs(5))
        .build()
        .unwrap();
    let metadata = Arc::new(IdpMetadata::new(client, config.idp_metadata_ttl));
    IdpKeys::new(db, config.idp.clone(), keys_config, metadata).unwrap()
}
