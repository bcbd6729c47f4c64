//! Unit tests: configuration, the URL rule, thumbprints, key selection, the diff, and refreshes
//! against a scripted IdP on loopback with a SQLite database (the real-IdP and PostgreSQL cases
//! are in `control-plane/tests/idp_keys.rs`).

use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use super::*;
use crate::config::{Config, IdpConfig, DEFAULT_ALGORITHMS};
use crate::devtools::{DevAlg, DevKey};

const ISSUER: &str = "https://idp.test/realms/acme";

fn lookup(vars: &[(&str, &str)]) -> anyhow::Result<IdpKeysConfig> {
    let vars: Vec<(String, String)> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    IdpKeysConfig::from_lookup(&|name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()))
}

#[test]
fn config_defaults_and_overrides() {
    let c = lookup(&[]).unwrap();
    assert_eq!(c, IdpKeysConfig::default());
    assert_eq!(c.refresh_interval, Duration::from_secs(300));
    assert_eq!(c.overlap, Duration::from_secs(86_400));
    assert_eq!(c.min_refresh_interval, Duration::from_secs(10));
    assert_eq!(c.jwks_uri, None);

    let c = lookup(&[
        ("PORTCULLIS_IDP_JWKS_REFRESH_SECONDS", "60"),
        ("PORTCULLIS_IDP_KEY_OVERLAP_SECONDS", "0"),
        ("PORTCULLIS_IDP_JWKS_MIN_REFRESH_SECONDS", " 5 "),
        ("PORTCULLIS_IDP_JWKS_URI", "http://127.0.0.1:8080/jwks"),
    ])
    .unwrap();
    assert_eq!(c.refresh_interval, Duration::from_secs(60));
    assert_eq!(c.overlap, Duration::ZERO);
    assert_eq!(c.min_refresh_interval, Duration::from_secs(5));
    assert_eq!(c.jwks_uri.unwrap().as_str(), "http://127.0.0.1:8080/jwks");

    // Empty values count as unset.
    assert_eq!(
        lookup(&[("PORTCULLIS_IDP_JWKS_URI", "  ")]).unwrap(),
        IdpKeysConfig::default()
    );

    for (bad, needle) in [
        (
            ("PORTCULLIS_IDP_JWKS_REFRESH_SECONDS", "0"),
            "REFRESH_SECONDS",
        ),
        (
            ("PORTCULLIS_IDP_JWKS_REFRESH_SECONDS", "soon"),
            "REFRESH_SECONDS",
        ),
        (
            ("PORTCULLIS_IDP_KEY_OVERLAP_SECONDS", "-1"),
            "OVERLAP_SECONDS",
        ),
        (
            ("PORTCULLIS_IDP_JWKS_MIN_REFRESH_SECONDS", "0"),
            "MIN_REFRESH",
        ),
        (
            ("PORTCULLIS_IDP_JWKS_MIN_REFRESH_SECONDS", "301"),
            "must not exceed",
        ),
        (
            ("PORTCULLIS_IDP_JWKS_URI", "http://idp.example.com/jwks"),
            "must be https",
        ),
        (("PORTCULLIS_IDP_JWKS_URI", "not a url"), "not a URL"),
    ] {
        let err = format!("{:#}", lookup(&[bad]).unwrap_err());
        assert!(err.contains(needle), "{bad:?}: {err}");
    }
}

#[test]
fn jwks_uri_must_be_https_or_loopback_http() {
    for ok in [
        "https://idp.example.com/jwks",
        "https://10.0.0.5/keys",
        "http://127.0.0.1:4444/jwks",
        "http://127.1.2.3/jwks",
        "http://[::1]:8080/jwks",
        "http://localhost/jwks",
        "http://LOCALHOST:9/jwks",
    ] {
        assert!(check_jwks_uri(ok).is_ok(), "{ok}");
    }
    for (bad, needle) in [
        ("http://idp.example.com/jwks", "must be https"),
        ("http://10.0.0.5/jwks", "must be https"),
        ("http://localhost.example.com/jwks", "must be https"),
        ("ftp://idp.example.com/jwks", "https"),
        ("file:///etc/jwks.json", "https"),
        ("https://user:pw@idp.example.com/jwks", "credentials"),
        ("/jwks", "not a URL"),
    ] {
        let err = check_jwks_uri(bad).unwrap_err();
        assert!(
            matches!(err, IdpKeysError::JwksUri { .. }),
            "{bad}: {err:?}"
        );
        let text = err.to_string();
        assert!(text.contains(needle) && text.contains(bad), "{bad}: {text}");
    }
}

#[test]
fn thumbprint_follows_rfc_7638() {
    // RFC 7638 §3.1.
    let jwk = json!({
        "kty": "RSA",
        "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
        "e": "AQAB",
        "alg": "RS256",
        "kid": "2011-04-29"
    });
    assert_eq!(
        thumbprint(&jwk).as_deref(),
        Some("NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs")
    );
    // Optional members do not change it.
    let mut bare = jwk.clone();
    bare.as_object_mut().unwrap().remove("kid");
    bare.as_object_mut().unwrap().remove("alg");
    assert_eq!(thumbprint(&bare), thumbprint(&jwk));
    // Different key types use their own members.
    let ec = DevKey::generate(DevAlg::ES256, "ec").public_jwk();
    let okp = DevKey::generate(DevAlg::EdDSA, "okp").public_jwk();
    assert_ne!(thumbprint(&ec), thumbprint(&okp));
    assert_eq!(thumbprint(&ec).unwrap().len(), 43);
    assert_eq!(thumbprint(&json!({"kty": "RSA", "e": "AQAB"})), None);
    assert_eq!(thumbprint(&json!({"kty": "XYZ"})), None);
    assert_eq!(thumbprint(&json!("RSA")), None);
}

fn algorithms() -> Vec<String> {
    DEFAULT_ALGORITHMS.split(',').map(String::from).collect()
}

/// A 1024-bit RSA modulus (odd, top bit set): well-formed but too weak.
fn weak_rsa() -> Value {
    let mut n = vec![0xC5u8; 128];
    n[127] = 0x01;
    json!({"kty": "RSA", "kid": "weak", "e": "AQAB",
           "n": base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(n)})
}

#[test]
fn select_keys_keeps_good_keys_and_leaves_out_the_rest() {
    let rsa = DevKey::generate(DevAlg::RS256, "rsa-1").public_jwk();
    let ec = DevKey::generate(DevAlg::ES256, "ec-1").public_jwk();
    let mut kidless = DevKey::generate(DevAlg::EdDSA, "ignored").public_jwk();
    kidless.as_object_mut().unwrap().remove("kid");
    let mut encryption = DevKey::generate(DevAlg::RS256, "enc-1").public_jwk();
    encryption["use"] = json!("enc");
    encryption["alg"] = json!("RSA-OAEP");
    let mut with_private = DevKey::generate(DevAlg::ES256, "leaky").public_jwk();
    with_private["d"] = json!("c2VjcmV0");
    let mut bad_base64 = rsa.clone();
    bad_base64["kid"] = json!("broken");
    bad_base64["n"] = json!("***");
    let duplicate = DevKey::generate(DevAlg::ES256, "rsa-1").public_jwk();
    let doc = json!({"keys": [
        rsa,
        ec,
        kidless,
        encryption,
        {"kty": "EC", "kid": "p521", "crv": "P-521", "x": "AA", "y": "AA"},
        {"kty": "oct", "kid": "shared", "k": "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0"},
        with_private,
        bad_base64,
        weak_rsa(),
        duplicate,
        "not-an-object",
        {"kty": "RSA", "kid": 7, "n": "AQAB", "e": "AQAB"},
    ]});
    let s = select_keys(&doc, &algorithms(), "https://idp.test/jwks").unwrap();

    let kids: Vec<&str> = s.keys.iter().map(|k| k.kid.as_str()).collect();
    let synthetic = thumbprint(&kidless).unwrap();
    assert_eq!(kids, ["rsa-1", "ec-1", synthetic.as_str()]);
    // Stored as published: the kidless key keeps having no kid.
    let stored: Value = serde_json::from_str(&s.keys[2].jwk).unwrap();
    assert_eq!(stored, kidless);
    assert!(stored.get("kid").is_none());

    let refused: Vec<&str> = s.refused.iter().map(|(w, _)| w.as_str()).collect();
    assert_eq!(
        refused,
        [
            "keys[5] (kid \"shared\")",
            "keys[6] (kid \"leaky\")",
            "keys[7] (kid \"broken\")",
            "keys[8] (kid \"weak\")",
            "keys[9] (kid \"rsa-1\")",
            "keys[10]",
            "keys[11]",
        ],
        "{:?}",
        s.refused
    );
    let why = |i: usize| s.refused[i].1.as_str();
    assert!(why(0).contains("\"k\""), "{}", why(0));
    assert!(why(1).contains("\"d\""), "{}", why(1));
    assert!(why(2).contains("base64"), "{}", why(2));
    assert!(why(3).contains("too small"), "{}", why(3));
    assert!(why(4).contains("duplicate kid"), "{}", why(4));
    assert!(why(5).contains("not a JSON object"), "{}", why(5));
    assert!(why(6).contains("not a JWK"), "{}", why(6));

    let skipped: Vec<&str> = s.skipped.iter().map(|(w, _)| w.as_str()).collect();
    assert_eq!(
        skipped,
        ["keys[3] (kid \"enc-1\")", "keys[4] (kid \"p521\")"]
    );
}

#[test]
fn select_keys_honours_the_issuers_algorithms() {
    let ec = DevKey::generate(DevAlg::ES256, "ec-1").public_jwk();
    let rsa = DevKey::generate(DevAlg::RS256, "rsa-1").public_jwk();
    let doc = json!({"keys": [ec, rsa]});
    let s = select_keys(&doc, &["RS256".to_string()], "u").unwrap();
    assert_eq!(s.keys.len(), 1);
    assert_eq!(s.keys[0].kid, "rsa-1");
    assert!(s.skipped[0].1.contains("PORTCULLIS_IDP_ALGORITHMS"));

    let only_ec = json!({"keys": [DevKey::generate(DevAlg::ES256, "ec-1").public_jwk()]});
    let err = select_keys(&only_ec, &["RS256".to_string()], "u").unwrap_err();
    assert!(
        matches!(err, IdpKeysError::NoUsableKeys { published: 1, .. }),
        "{err}"
    );
}

#[test]
fn select_keys_refuses_documents_that_are_not_a_jwks() {
    let uri = "https://idp.test/jwks";
    for (doc, needle) in [
        (json!([1, 2]), "not a JSON object"),
        (json!({"jwks": []}), "no \"keys\" array"),
        (json!({"keys": {"kty": "RSA"}}), "no \"keys\" array"),
        (
            json!({"keys": vec![json!({"kty": "EC"}); MAX_JWKS_KEYS + 1]}),
            "at most 100",
        ),
    ] {
        let err = select_keys(&doc, &algorithms(), uri).unwrap_err();
        assert!(matches!(err, IdpKeysError::InvalidJwks { .. }), "{err:?}");
        let text = err.to_string();
        assert!(text.contains(needle) && text.contains(uri), "{text}");
    }
    // A set in which nothing survives is an error, never an empty key set.
    for doc in [
        json!({"keys": []}),
        json!({"keys": [weak_rsa()]}),
        json!({"keys": [{"kty": "RSA", "use": "enc", "n": "AQAB", "e": "AQAB"}]}),
    ] {
        let err = select_keys(&doc, &algorithms(), uri).unwrap_err();
        assert!(matches!(err, IdpKeysError::NoUsableKeys { .. }), "{err:?}");
    }
    let err = select_keys(&json!({"keys": [weak_rsa()]}), &algorithms(), uri).unwrap_err();
    assert!(err.to_string().contains("too small"), "{err}");
}

fn key(kid: &str, jwk: &str) -> PublishedKey {
    PublishedKey {
        kid: kid.into(),
        jwk: jwk.into(),
    }
}

fn row(kid: &str, jwk: &str, retired_at: Option<i64>) -> StoredKey {
    StoredKey {
        kid: kid.into(),
        jwk: jwk.into(),
        first_seen: 1,
        retired_at,
    }
}

#[test]
fn plan_diffs_stored_and_published_keys() {
    let now = 10_000;
    let overlap = 100;
    // Nothing stored: everything is new.
    let p = plan(&[], &[key("a", "A"), key("b", "B")], now, overlap);
    assert_eq!(p.upsert, [key("a", "A"), key("b", "B")]);
    assert!(p.retire.is_empty() && p.delete.is_empty());

    // Same keys again: nothing to do.
    let stored = [row("a", "A", None), row("b", "B", None)];
    assert!(plan(&stored, &[key("a", "A"), key("b", "B")], now, overlap).is_empty());

    // Rotation: a new key appears, an old one leaves.
    let p = plan(&stored, &[key("b", "B"), key("c", "C")], now, overlap);
    assert_eq!(p.upsert, [key("c", "C")]);
    assert_eq!(p.retire, ["a"]);
    assert!(p.delete.is_empty());

    // A retired key within the overlap stays as it is; past it, it goes.
    let stored = [
        row("old", "O", Some(now - overlap)),
        row("older", "OO", Some(now - overlap - 1)),
        row("b", "B", None),
    ];
    let p = plan(&stored, &[key("b", "B")], now, overlap);
    assert!(p.upsert.is_empty() && p.retire.is_empty());
    assert_eq!(p.delete, ["older"]);

    // A retired key published again comes back; a kid with new material is replaced.
    let stored = [row("a", "A", Some(now - 5)), row("b", "B", None)];
    let p = plan(&stored, &[key("a", "A"), key("b", "B2")], now, overlap);
    assert_eq!(p.upsert, [key("a", "A"), key("b", "B2")]);
    assert!(p.retire.is_empty() && p.delete.is_empty());

    // Overlap zero: retired in one refresh, deleted by a later one.
    let p = plan(&[row("a", "A", Some(now - 1))], &[key("b", "B")], now, 0);
    assert_eq!(p.delete, ["a"]);
}

// --- refreshes against a scripted IdP, on SQLite ---------------------------------------------

#[derive(Clone)]
struct Canned {
    status: StatusCode,
    content_type: Option<&'static str>,
    body: String,
    location: Option<String>,
}

impl Canned {
    fn json(value: &Value) -> Canned {
        Canned {
            status: StatusCode::OK,
            content_type: Some("application/json"),
            body: value.to_string(),
            location: None,
        }
    }
    fn with(status: u16, content_type: Option<&'static str>, body: impl Into<String>) -> Canned {
        Canned {
            status: StatusCode::from_u16(status).unwrap(),
            content_type,
            body: body.into(),
            location: None,
        }
    }
    fn into_response(self) -> Response {
        let mut r = (self.status, self.body).into_response();
        r.headers_mut().remove(header::CONTENT_TYPE);
        if let Some(ct) = self.content_type {
            r.headers_mut()
                .insert(header::CONTENT_TYPE, ct.parse().unwrap());
        }
        if let Some(location) = self.location {
            r.headers_mut()
                .insert(header::LOCATION, location.parse().unwrap());
        }
        r
    }
}

struct Scripted {
    discovery: std::sync::Mutex<Canned>,
    jwks: std::sync::Mutex<Canned>,
    discovery_hits: AtomicUsize,
    jwks_hits: AtomicUsize,
}

/// An IdP on loopback whose discovery document and JWKS the test sets.
struct FakeIdp {
    origin: String,
    script: Arc<Scripted>,
}

impl FakeIdp {
    async fn start() -> FakeIdp {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let origin = format!("http://{}", listener.local_addr().unwrap());
        let script = Arc::new(Scripted {
            discovery: std::sync::Mutex::new(Canned::with(404, None, "")),
            jwks: std::sync::Mutex::new(Canned::with(404, None, "")),
            discovery_hits: AtomicUsize::new(0),
            jwks_hits: AtomicUsize::new(0),
        });
        let app = axum::Router::new()
            .route(
                "/discovery",
                axum::routing::get(|State(s): State<Arc<Scripted>>| async move {
                    s.discovery_hits.fetch_add(1, Ordering::SeqCst);
                    let canned = s.discovery.lock().unwrap().clone();
                    canned.into_response()
                }),
            )
            .route(
                "/jwks",
                axum::routing::get(|State(s): State<Arc<Scripted>>| async move {
                    s.jwks_hits.fetch_add(1, Ordering::SeqCst);
                    let canned = s.jwks.lock().unwrap().clone();
                    canned.into_response()
                }),
            )
            .with_state(script.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let idp = FakeIdp { origin, script };
        idp.set_discovery(Canned::json(
            &idp.discovery_doc(&format!("{}/jwks", idp.origin)),
        ));
        idp
    }

    fn discovery_doc(&self, jwks_uri: &str) -> Value {
        json!({
            "issuer": ISSUER,
            "authorization_endpoint": format!("{ISSUER}/auth"),
            "token_endpoint": format!("{ISSUER}/token"),
            "jwks_uri": jwks_uri,
        })
    }

    fn set_discovery(&self, canned: Canned) {
        *self.script.discovery.lock().unwrap() = canned;
    }

    fn set_jwks(&self, canned: Canned) {
        *self.script.jwks.lock().unwrap() = canned;
    }

    fn publish(&self, keys: &[&DevKey]) {
        let keys: Vec<Value> = keys.iter().map(|k| k.public_jwk()).collect();
        self.set_jwks(Canned::json(&json!({ "keys": keys })));
    }

    fn jwks_hits(&self) -> usize {
        self.script.jwks_hits.load(Ordering::SeqCst)
    }

    fn discovery_hits(&self) -> usize {
        self.script.discovery_hits.load(Ordering::SeqCst)
    }
}

static DIRS: AtomicU32 = AtomicU32::new(0);

/// A configuration with the IdP at `discovery_url` and a fresh SQLite data directory.
fn test_config(discovery_url: &str) -> Config {
    let dir = std::env::temp_dir().join(format!(
        "portcullis-idp-keys-{}-{}",
        std::process::id(),
        DIRS.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    Config {
        data_dir: dir,
        idp: Some(IdpConfig {
            issuer: ISSUER.into(),
            jwks: None,
            audiences: vec!["portcullis-api".into()],
            api_audiences: vec!["portcullis-api".into()],
            api_audience_is_shared: true,
            algorithms: algorithms(),
            groups_claim: "groups".into(),
            discovery_url: discovery_url.into(),
            profile: crate::config::IdpProfile::Generic,
            client_ids: Vec::new(),
            token_use: None,
            accepts_resource: true,
            scope_prefix: None,
        }),
        ..Config::default()
    }
}

async fn keys_for(config: &Config, keys_config: IdpKeysConfig) -> IdpKeys {
    let db = Db::connect(config).await.unwrap();
    idp_keys(&db, config, keys_config)
}

fn kids(jwks: &Value) -> Vec<String> {
    jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            k["kid"]
                .as_str()
                .map_or_else(|| format!("#{}", thumbprint(k).unwrap()), String::from)
        })
        .collect()
}

#[tokio::test]
async fn refresh_stores_rotates_and_expires_keys() {
    let idp = FakeIdp::start().await;
    let config = test_config(&format!("{}/discovery", idp.origin));
    let keys = keys_for(&config, IdpKeysConfig::default()).await;
    let a = DevKey::generate(DevAlg::ES256, "key-a");
    let b = DevKey::generate(DevAlg::EdDSA, "key-b");

    // Before any refresh: no keys, and the snapshot leaves the issuer out.
    assert_eq!(keys.jwks(ISSUER).await.unwrap(), json!({"keys": []}));
    assert_eq!(keys.snapshot_jwks(ISSUER).await.unwrap(), None);

    idp.publish(&[&a]);
    assert!(keys.refresh().await.unwrap());
    assert_eq!(
        keys.jwks(ISSUER).await.unwrap(),
        json!({"keys": [a.public_jwk()]})
    );
    assert!(!keys.refresh().await.unwrap(), "same keys: no change");

    // Rotation: b first in the IdP's JWKS; ours is ordered by kid.
    idp.publish(&[&b, &a]);
    assert!(keys.refresh().await.unwrap());
    assert_eq!(kids(&keys.jwks(ISSUER).await.unwrap()), ["key-a", "key-b"]);

    // a leaves the IdP's JWKS: retired, still trusted within the overlap.
    idp.publish(&[&b]);
    assert!(keys.refresh().await.unwrap());
    let rows = keys.stored(ISSUER).await.unwrap();
    let row_a = rows.iter().find(|r| r.kid == "key-a").unwrap();
    let retired_at = row_a.retired_at.expect("key-a retired");
    assert!((now() - retired_at).abs() <= 2);
    assert!(rows
        .iter()
        .find(|r| r.kid == "key-b")
        .unwrap()
        .retired_at
        .is_none());
    assert_eq!(kids(&keys.jwks(ISSUER).await.unwrap()), ["key-a", "key-b"]);
    assert!(!keys.refresh().await.unwrap(), "already retired: no change");

    // The overlap passes (the row is aged): left out at once, deleted by the next refresh.
    sqlx::query("UPDATE idp_keys SET retired_at = $1 WHERE kid = 'key-a'")
        .bind(now() - 86_400 - 10)
        .execute(keys.0.db.pool())
        .await
        .unwrap();
    assert_eq!(kids(&keys.jwks(ISSUER).await.unwrap()), ["key-b"]);
    assert!(keys.refresh().await.unwrap());
    let rows = keys.stored(ISSUER).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].kid, "key-b");

    // A key coming back is trusted again.
    idp.publish(&[&a, &b]);
    assert!(keys.refresh().await.unwrap());
    assert_eq!(kids(&keys.jwks(ISSUER).await.unwrap()), ["key-a", "key-b"]);

    // Another issuer's keys are its own.
    assert_eq!(
        keys.jwks("https://other.test").await.unwrap(),
        json!({"keys": []})
    );

    // The snapshot's keys compile with the policy crate and verify tokens.
    let jwks = keys.snapshot_jwks(ISSUER).await.unwrap().unwrap();
    let snapshot = json!({"format": 1, "version": 1, "issuers": [{
        "issuer": ISSUER, "jwks": jwks, "algorithms": algorithms(), "audiences": ["portcullis-api"],
    }]});
    let policy = policy::Policy::from_json(snapshot.to_string().as_bytes()).unwrap();
    let spec = crate::devtools::TokenSpec::new(ISSUER, "portcullis-api", "alice");
    let now = crate::devtools::unix_now();
    policy.verify_jwt(&b.sign(&spec.claims()), now).unwrap();
    policy.verify_jwt(&a.sign(&spec.claims()), now).unwrap();
    let _ = std::fs::remove_dir_all(&config.data_dir);
}

#[tokio::test]
async fn kidless_keys_are_stored_under_their_thumbprint() {
    let idp = FakeIdp::start().await;
    let config = test_config(&format!("{}/discovery", idp.origin));
    let keys = keys_for(&config, IdpKeysConfig::default()).await;
    let mut jwk = DevKey::generate(DevAlg::EdDSA, "x").public_jwk();
    jwk.as_object_mut().unwrap().remove("kid");
    idp.set_jwks(Canned::json(&json!({"keys": [jwk.clone()]})));
    assert!(keys.refresh().await.unwrap());
    let rows = keys.stored(ISSUER).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].kid, thumbprint(&jwk).unwrap());
    // Published as it was: no kid added.
    assert_eq!(keys.jwks(ISSUER).await.unwrap(), json!({"keys": [jwk]}));
    assert!(!keys.refresh().await.unwrap());
    let _ = std::fs::remove_dir_all(&config.data_dir);
}

#[tokio::test]
async fn a_failed_refresh_changes_nothing() {
    let idp = FakeIdp::start().await;
    let config = test_config(&format!("{}/discovery", idp.origin));
    let good = DevKey::generate(DevAlg::ES256, "good");
    idp.publish(&[&good]);
    let first = keys_for(&config, IdpKeysConfig::default()).await;
    assert!(first.refresh().await.unwrap());
    let before = first.stored(ISSUER).await.unwrap();
    let db = Db::connect(&config).await.unwrap();

    // Each case runs on a fresh IdpKeys (no cached discovery document) over the same database.
    let big = format!(
        "{{\"keys\": [], \"pad\": \"{}\"}}",
        "x".repeat(MAX_JWKS_BYTES)
    );
    let cases: Vec<(&str, Canned, Option<Canned>, &str)> = vec![
        (
            "discovery down",
            Canned::with(503, Some("text/plain"), "maintenance"),
            None,
            "discovery document is unavailable",
        ),
        (
            "discovery for another issuer",
            Canned::json(
                &json!({"issuer": "https://evil.test", "authorization_endpoint": "a",
                                 "token_endpoint": "t", "jwks_uri": format!("{}/jwks", idp.origin)}),
            ),
            None,
            "issuer",
        ),
        (
            "discovery without jwks_uri",
            Canned::json(
                &json!({"issuer": ISSUER, "authorization_endpoint": "a", "token_endpoint": "t"}),
            ),
            None,
            "no jwks_uri",
        ),
        (
            "jwks_uri over plain http",
            Canned::json(&idp.discovery_doc("http://idp.example.com/jwks")),
            None,
            "must be https",
        ),
        (
            "JWKS missing",
            Canned::json(&idp.discovery_doc(&format!("{}/jwks", idp.origin))),
            Some(Canned::with(404, Some("text/plain"), "no")),
            "HTTP 404",
        ),
        (
            "JWKS is an HTML page",
            Canned::json(&idp.discovery_doc(&format!("{}/jwks", idp.origin))),
            Some(Canned::with(
                200,
                Some("text/html; charset=utf-8"),
                "<html>login</html>",
            )),
            "is not JSON",
        ),
        (
            "JWKS oversized",
            Canned::json(&idp.discovery_doc(&format!("{}/jwks", idp.origin))),
            Some(Canned::with(200, Some("application/json"), big)),
            "larger than 1048576 bytes",
        ),
        (
            "JWKS garbage",
            Canned::json(&idp.discovery_doc(&format!("{}/jwks", idp.origin))),
            Some(Canned::with(
                200,
                Some("application/jwk-set+json"),
                "{\"keys\": [",
            )),
            "not JSON",
        ),
        (
            "JWKS without usable keys",
            Canned::json(&idp.discovery_doc(&format!("{}/jwks", idp.origin))),
            Some(Canned::json(&json!({"keys": [weak_rsa()]}))),
            "none of the 1 published keys",
        ),
        (
            "JWKS redirects to plain http",
            Canned::json(&idp.discovery_doc(&format!("{}/jwks", idp.origin))),
            Some(Canned {
                location: Some("http://idp.example.com/jwks".into()),
                ..Canned::with(302, None, "")
            }),
            "must be https",
        ),
    ];
    for (name, discovery, jwks, needle) in cases {
        idp.set_discovery(discovery);
        if let Some(jwks) = jwks {
            idp.set_jwks(jwks);
        }
        let keys = idp_keys(&db, &config, IdpKeysConfig::default());
        let err = keys.refresh().await.expect_err(name);
        assert!(!matches!(err, IdpKeysError::Database(_)), "{name}: {err:?}");
        let text = err.to_string();
        assert!(text.contains(needle), "{name}: {text}");
        assert_eq!(keys.stored(ISSUER).await.unwrap(), before, "{name}");
        assert_eq!(kids(&keys.jwks(ISSUER).await.unwrap()), ["good"], "{name}");
    }
    let _ = std::fs::remove_dir_all(&config.data_dir);
}

#[tokio::test]
async fn unknown_kid_refreshes_are_rate_limited() {
    let idp = FakeIdp::start().await;
    let config = test_config(&format!("{}/discovery", idp.origin));
    let keys_config = IdpKeysConfig {
        min_refresh_interval: Duration::from_secs(1),
        ..IdpKeysConfig::default()
    };
    let keys = keys_for(&config, keys_config).await;
    let changes = Arc::new(AtomicUsize::new(0));
    let a = DevKey::generate(DevAlg::ES256, "a");
    let b = DevKey::generate(DevAlg::ES256, "b");
    idp.publish(&[&a]);

    // The schedule's first refresh runs at once and reports the change.
    let counter = changes.clone();
    let task = keys.clone().spawn(move || {
        counter.fetch_add(1, Ordering::SeqCst);
    });
    for _ in 0..100 {
        if changes.load(Ordering::SeqCst) == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(changes.load(Ordering::SeqCst), 1);
    assert_eq!(idp.jwks_hits(), 1);

    // An unknown kid right after: too soon, nothing fetched.
    idp.publish(&[&b, &a]);
    assert!(!keys.refresh_if_due_for_unknown_kid().await);
    assert_eq!(idp.jwks_hits(), 1);

    // Once the minimum interval has passed: fetched, changed, callback called.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert!(keys.refresh_if_due_for_unknown_kid().await);
    assert_eq!(idp.jwks_hits(), 2);
    assert_eq!(changes.load(Ordering::SeqCst), 2);
    assert_eq!(kids(&keys.jwks(ISSUER).await.unwrap()), ["a", "b"]);
    // And again too soon.
    assert!(!keys.refresh_if_due_for_unknown_kid().await);
    assert_eq!(idp.jwks_hits(), 2);
    task.abort();
    let _ = std::fs::remove_dir_all(&config.data_dir);
}

#[tokio::test]
async fn a_configured_jwks_uri_skips_discovery() {
    let idp = FakeIdp::start().await;
    let config = test_config(&format!("{}/discovery", idp.origin));
    idp.set_discovery(Canned::with(500, None, ""));
    let a = DevKey::generate(DevAlg::EdDSA, "a");
    idp.publish(&[&a]);
    let keys_config =
        lookup(&[("PORTCULLIS_IDP_JWKS_URI", &format!("{}/jwks", idp.origin))]).unwrap();
    let keys = keys_for(&config, keys_config).await;
    assert!(keys.refresh().await.unwrap());
    assert_eq!(idp.discovery_hits(), 0);
    assert_eq!(kids(&keys.jwks(ISSUER).await.unwrap()), ["a"]);
    let _ = std::fs::remove_dir_all(&config.data_dir);
}

#[tokio::test]
async fn a_static_jwks_wins_and_nothing_is_fetched() {
    let idp = FakeIdp::start().await;
    let mut config = test_config(&format!("{}/discovery", idp.origin));
    let fixed = DevKey::generate(DevAlg::EdDSA, "fixed");
    config.idp.as_mut().unwrap().jwks = Some(fixed.jwks());
    idp.publish(&[&DevKey::generate(DevAlg::EdDSA, "fetched")]);
    let keys = keys_for(&config, IdpKeysConfig::default()).await;
    assert!(keys.is_static());
    assert!(!keys.refresh().await.unwrap());
    assert!(!keys.refresh_if_due_for_unknown_kid().await);
    let task = keys.clone().spawn(|| panic!("a static JWKS never changes"));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(task.is_finished(), "nothing scheduled");
    assert_eq!(idp.jwks_hits() + idp.discovery_hits(), 0);
    assert_eq!(keys.jwks(ISSUER).await.unwrap(), fixed.jwks());
    assert_eq!(
        keys.snapshot_jwks(ISSUER).await.unwrap(),
        Some(fixed.jwks())
    );
    assert!(keys.stored(ISSUER).await.unwrap().is_empty());
    let _ = std::fs::remove_dir_all(&config.data_dir);
}

#[tokio::test]
async fn without_an_idp_refresh_says_so() {
    let mut config = test_config("https://unused.test/discovery");
    config.idp = None;
    let keys = keys_for(&config, IdpKeysConfig::default()).await;
    assert!(matches!(
        keys.refresh().await,
        Err(IdpKeysError::NotConfigured)
    ));
    assert!(!keys.refresh_if_due_for_unknown_kid().await);
    let _ = std::fs::remove_dir_all(&config.data_dir);
}

#[test]
fn backoff_doubles_up_to_the_refresh_interval() {
    let min = Duration::from_secs(10);
    let max = Duration::from_secs(300);
    for (failures, base) in [(1, 10), (2, 20), (3, 40), (5, 160), (6, 300), (40, 300)] {
        let d = backoff(failures, min, max).as_secs_f64();
        let base = base as f64;
        assert!(d >= base * 0.8 && d <= base * 1.2, "{failures}: {d}");
    }
}

/// The keys of `config`'s IdP, with a discovery cache of their own.
fn idp_keys(db: &Db, config: &Config, keys_config: IdpKeysConfig) -> IdpKeys {
    let client = crate::outbound::client_builder(std::time::Duration::from_secs(5))
        .build()
        .unwrap();
    let metadata = Arc::new(IdpMetadata::new(client, config.idp_metadata_ttl));
    IdpKeys::new(db, config.idp.clone(), keys_config, metadata).unwrap()
}
