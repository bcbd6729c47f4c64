//! IdP capability discovery against a small HTTP server on 127.0.0.1: the metadata locations in
//! the specification's order, the issuer check, and the TTL cache that never keeps failures.

// Tests may unwrap: a panic is the failure report (the workspace lints deny it elsewhere).
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use portcullis::connect::{
    discover_capabilities, CapabilityCache, DiscoveryError, IdpCapabilities,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Serves fixed responses by path; counts requests per path.
#[derive(Clone, Default)]
struct Idp {
    routes: Arc<Mutex<HashMap<String, (u16, String)>>>,
    hits: Arc<Mutex<Vec<String>>>,
    total: Arc<AtomicUsize>,
}

impl Idp {
    fn set(&self, path: &str, status: u16, body: impl Into<String>) {
        self.routes
            .lock()
            .unwrap()
            .insert(path.into(), (status, body.into()));
    }
    fn hits(&self) -> Vec<String> {
        self.hits.lock().unwrap().clone()
    }
    fn total(&self) -> usize {
        self.total.load(Ordering::SeqCst)
    }
}

async fn start() -> (String, Idp) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let idp = Idp::default();
    let state = idp.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let state = state.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 1024];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match sock.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&buf).to_string();
                let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
                state.total.fetch_add(1, Ordering::SeqCst);
                state.hits.lock().unwrap().push(path.clone());
                let (status, body) = state
                    .routes
                    .lock()
                    .unwrap()
                    .get(&path)
                    .cloned()
                    .unwrap_or((404, "{\"error\":\"not found\"}".into()));
                let resp = format!(
                    "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = sock.write_all(resp.as_bytes()).await;
                let _ = sock.shutdown().await;
            });
        }
    });
    (base, idp)
}

fn metadata(issuer: &str, extra: &str) -> String {
    format!(
        r#"{{"issuer":"{issuer}","authorization_endpoint":"{issuer}/authorize","token_endpoint":"{issuer}/token"{extra}}}"#
    )
}

#[tokio::test]
async fn rfc8414_path_insertion_first() {
    let (base, idp) = start().await;
    let issuer = format!("{base}/realms/acme");
    idp.set(
        "/.well-known/oauth-authorization-server/realms/acme",
        200,
        metadata(
            &issuer,
            &format!(r#","registration_endpoint":"{issuer}/register""#),
        ),
    );
    let caps = discover_capabilities(&issuer).await.unwrap();
    assert_eq!(
        caps,
        IdpCapabilities {
            issuer: Some(issuer.clone()),
            registration_endpoint: Some(format!("{issuer}/register").parse().unwrap()),
            cimd_supported: false,
            strict_redirects: false,
        }
    );
    assert!(caps.dcr_supported());
    assert_eq!(
        idp.hits(),
        ["/.well-known/oauth-authorization-server/realms/acme"]
    );
}

#[tokio::test]
async fn falls_through_to_oidc_path_appending() {
    // Keycloak-style: only `<issuer>/.well-known/openid-configuration`; no DCR advertised.
    let (base, idp) = start().await;
    let issuer = format!("{base}/realms/acme");
    idp.set(
        "/realms/acme/.well-known/openid-configuration",
        200,
        metadata(&issuer, ""),
    );
    let caps = discover_capabilities(&issuer).await.unwrap();
    assert!(!caps.dcr_supported());
    assert!(!caps.cimd_supported);
    assert_eq!(
        idp.hits(),
        [
            "/.well-known/oauth-authorization-server/realms/acme",
            "/.well-known/openid-configuration/realms/acme",
            "/realms/acme/.well-known/openid-configuration",
        ]
    );
}

#[tokio::test]
async fn cimd_from_metadata_and_direct_metadata_url() {
    let (base, idp) = start().await;
    idp.set(
        "/.well-known/openid-configuration",
        200,
        metadata(&base, r#","client_id_metadata_document_supported":true"#),
    );
    // Issuer without a path.
    let caps = discover_capabilities(&base).await.unwrap();
    assert!(caps.cimd_supported);
    assert!(!caps.dcr_supported());
    assert_eq!(
        idp.hits(),
        [
            "/.well-known/oauth-authorization-server",
            "/.well-known/openid-configuration"
        ]
    );
    // The metadata URL itself: fetched as is, no issuer comparison with the URL.
    let direct = format!("{base}/.well-known/openid-configuration");
    let caps = discover_capabilities(&direct).await.unwrap();
    assert!(caps.cimd_supported);
    assert_eq!(idp.hits().len(), 3);
}

#[tokio::test]
async fn issuer_mismatch_and_missing_metadata_are_errors() {
    let (base, idp) = start().await;
    let issuer = format!("{base}/realms/acme");
    idp.set(
        "/.well-known/oauth-authorization-server/realms/acme",
        200,
        metadata("https://elsewhere.example.com", ""),
    );
    match discover_capabilities(&issuer).await {
        Err(DiscoveryError::IssuerMismatch { found, .. }) => {
            assert_eq!(found, "https://elsewhere.example.com");
        }
        other => panic!("{other:?}"),
    }

    let other = format!("{base}/realms/none");
    match discover_capabilities(&other).await {
        Err(DiscoveryError::NoMetadata { attempts }) => {
            assert_eq!(attempts.len(), 3, "{attempts:?}");
            assert!(attempts[0].contains("HTTP 404"), "{attempts:?}");
        }
        other => panic!("{other:?}"),
    }

    idp.set(
        "/.well-known/oauth-authorization-server/realms/junk",
        200,
        "<html>",
    );
    match discover_capabilities(&format!("{base}/realms/junk")).await {
        Err(DiscoveryError::NoMetadata { attempts }) => {
            assert!(attempts[0].contains("not metadata JSON"), "{attempts:?}");
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        discover_capabilities("not a url").await,
        Err(DiscoveryError::InvalidUrl(_))
    ));
}

#[tokio::test]
async fn unreachable_idp_is_an_error() {
    // A port nothing listens on (bound, then released).
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    let err = discover_capabilities(&format!("http://{addr}"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("request failed"), "{err}");
}

#[tokio::test]
async fn cache_keeps_successes_for_the_ttl_and_never_failures() {
    let (base, idp) = start().await;
    let issuer = format!("{base}/realms/acme");
    let path = "/.well-known/oauth-authorization-server/realms/acme";
    let cache = CapabilityCache::new(Duration::from_millis(300));

    // Failure (500 everywhere): not cached, each call tries again.
    idp.set(path, 500, "{}");
    assert!(cache.get(&issuer).await.is_err());
    let after_first = idp.total();
    assert_eq!(after_first, 3);
    assert!(cache.get(&issuer).await.is_err());
    assert_eq!(idp.total(), 6);
    assert!(cache.is_empty());

    // Success: cached.
    idp.set(
        path,
        200,
        metadata(
            &issuer,
            &format!(r#","registration_endpoint":"{issuer}/reg""#),
        ),
    );
    let a = cache.get(&issuer).await.unwrap();
    assert_eq!(idp.total(), 7);
    let b = cache.get(&issuer).await.unwrap();
    assert_eq!(a, b);
    assert_eq!(idp.total(), 7, "second call served from the cache");
    assert_eq!(cache.cached(&issuer), Some(a.clone()));

    // The IdP turns DCR off; the cache still answers until the TTL has passed.
    idp.set(path, 200, metadata(&issuer, ""));
    assert!(cache.get(&issuer).await.unwrap().dcr_supported());
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert!(cache.cached(&issuer).is_none());
    assert!(!cache.get(&issuer).await.unwrap().dcr_supported());
    assert_eq!(idp.total(), 8);

    // A failure after expiry does not evict into a cached failure either.
    tokio::time::sleep(Duration::from_millis(350)).await;
    idp.set(path, 503, "{}");
    assert!(cache.get(&issuer).await.is_err());
    idp.set(path, 200, metadata(&issuer, ""));
    assert!(cache.get(&issuer).await.is_ok());

    cache.invalidate(&issuer);
    assert!(cache.cached(&issuer).is_none());
}
