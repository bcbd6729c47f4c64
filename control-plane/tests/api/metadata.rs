//! Discovery documents: RFC 9728 protected-resource metadata and the mirrored IdP metadata.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use serde_json::{json, Value};

use crate::common::*;

both_backends!(protected_resource_per_server, root_and_modes);

fn assert_metadata_headers(a: &Answer) {
    assert_eq!(
        a.headers["access-control-allow-origin"], "*",
        "{:?}",
        a.headers
    );
    assert!(
        a.headers["cache-control"]
            .to_str()
            .unwrap()
            .contains("max-age"),
        "{:?}",
        a.headers
    );
}

async fn protected_resource_per_server(b: Backend) {
    let t = app(&b).await;
    t.register("GitHub", "/github", &[]).await;
    t.register("Docs", "/team/docs", &[("append_mcp_path", "false")])
        .await;
    t.register(
        "Custom",
        "/custom",
        &[("mcp_endpoint", "https://gw.example.com/elsewhere/mcp")],
    )
    .await;

    for (uri, resource, name) in [
        (
            "/.well-known/oauth-protected-resource/github/mcp",
            "https://gw.example.com/github/mcp",
            "GitHub",
        ),
        (
            "/.well-known/oauth-protected-resource/github",
            "https://gw.example.com/github/mcp",
            "GitHub",
        ),
        (
            "/github/.well-known/oauth-protected-resource",
            "https://gw.example.com/github/mcp",
            "GitHub",
        ),
        (
            "/github/mcp/.well-known/oauth-protected-resource",
            "https://gw.example.com/github/mcp",
            "GitHub",
        ),
        (
            "/.well-known/oauth-protected-resource/team/docs",
            "https://gw.example.com/team/docs",
            "Docs",
        ),
        (
            "/.well-known/oauth-protected-resource/team/docs/mcp",
            "https://gw.example.com/team/docs",
            "Docs",
        ),
        (
            "/.well-known/oauth-protected-resource/custom",
            "https://gw.example.com/elsewhere/mcp",
            "Custom",
        ),
        (
            "/.well-known/oauth-protected-resource/elsewhere/mcp",
            "https://gw.example.com/elsewhere/mcp",
            "Custom",
        ),
    ] {
        let a = t.call("GET", uri, None, None).await;
        let v = a.ok(200);
        assert_metadata_headers(&a);
        assert_eq!(v["resource"], resource, "{uri}");
        assert_eq!(v["resource_name"], name, "{uri}");
        assert_eq!(v["authorization_servers"], json!([ISSUER]), "{uri}");
        assert_eq!(
            v["scopes_supported"],
            json!(["openid", "email", "profile", "offline_access"])
        );
        assert_eq!(v["bearer_methods_supported"], json!(["header"]));
    }
    // Every server's resource_metadata_url answers with its own resource.
    let list = t.admin("GET", "/api/servers", None).await.ok(200);
    for s in list["servers"].as_array().unwrap() {
        let url = s["resource_metadata_url"].as_str().unwrap();
        let path = url.strip_prefix(PUBLIC_URL).unwrap();
        assert_eq!(
            t.call("GET", path, None, None).await.ok(200)["resource"],
            s["mcp_url"]
        );
    }

    // Several servers: no root document.
    let a = t
        .call("GET", "/.well-known/oauth-protected-resource", None, None)
        .await;
    a.error(404);
    assert_eq!(a.headers["access-control-allow-origin"], "*");
    for uri in [
        "/.well-known/oauth-protected-resource/nope",
        "/nope/.well-known/oauth-protected-resource",
    ] {
        let a = t.call("GET", uri, None, None).await;
        a.error(404);
        assert_eq!(a.headers["access-control-allow-origin"], "*");
    }
    // CORS preflight.
    for uri in [
        "/.well-known/oauth-protected-resource/github/mcp",
        "/github/.well-known/oauth-protected-resource",
    ] {
        let a = t.call("OPTIONS", uri, None, None).await;
        assert_eq!(a.status, StatusCode::NO_CONTENT, "{uri}");
        assert_eq!(a.headers["access-control-allow-origin"], "*");
        assert!(a.headers["access-control-allow-methods"]
            .to_str()
            .unwrap()
            .contains("GET"));
    }
}

async fn root_and_modes(b: Backend) {
    // One server: the root document is its document.
    let t = app_with(&b, |c| {
        c.advertised_scopes = vec!["openid".into(), "email".into()];
    })
    .await;
    t.register("GitHub", "/github", &[]).await;
    let v = t
        .call("GET", "/.well-known/oauth-protected-resource", None, None)
        .await
        .ok(200);
    assert_eq!(v["resource"], "https://gw.example.com/github/mcp");
    assert_eq!(v["scopes_supported"], json!(["openid", "email"]));
    drop(t);

    // No server at all.
    let t = app(&b).await;
    t.call("GET", "/.well-known/oauth-protected-resource", None, None)
        .await
        .error(404);
    drop(t);

    // Broker mode: we are the authorization server.
    let t = app_with(&b, |c| c.auth_mode = portcullis::config::AuthMode::Broker).await;
    t.register("GitHub", "/github", &[]).await;
    let v = t
        .call(
            "GET",
            "/.well-known/oauth-protected-resource/github/mcp",
            None,
            None,
        )
        .await
        .ok(200);
    assert_eq!(v["authorization_servers"], json!([PUBLIC_URL]));
    for path in [
        "/.well-known/oauth-authorization-server",
        "/.well-known/openid-configuration",
    ] {
        let m = t.call("GET", path, None, None).await.ok(200);
        assert_eq!(m["issuer"], PUBLIC_URL, "{m}");
        assert_eq!(
            m["authorization_endpoint"],
            format!("{PUBLIC_URL}/oauth/authorize")
        );
        assert_eq!(m["token_endpoint"], format!("{PUBLIC_URL}/oauth/token"));
        assert_eq!(
            m["registration_endpoint"],
            format!("{PUBLIC_URL}/oauth/register")
        );
        assert_eq!(m["jwks_uri"], format!("{PUBLIC_URL}/oauth/jwks"));
        assert_eq!(m["code_challenge_methods_supported"], json!(["S256"]));
        assert_eq!(m["response_types_supported"], json!(["code"]));
        assert_eq!(m["authorization_response_iss_parameter_supported"], true);
        assert!(m["token_endpoint_auth_methods_supported"]
            .as_array()
            .unwrap()
            .contains(&json!("none")));
    }
    drop(t);

    // Direct mode without an IdP cannot name an authorization server.
    let t = app_with(&b, |c| c.idp = None).await;
    t.register("GitHub", "/github", &[]).await;
    let e = t
        .call(
            "GET",
            "/.well-known/oauth-protected-resource/github/mcp",
            None,
            None,
        )
        .await
        .error(503);
    assert!(e.contains("PORTCULLIS_IDP_ISSUER"), "{e}");
    t.call("GET", "/.well-known/openid-configuration", None, None)
        .await
        .error(404);
}

type IdpState = (Arc<AtomicUsize>, Arc<Mutex<(u16, Value)>>);

/// A fake IdP on 127.0.0.1 serving a discovery document, counting fetches.
struct FakeIdp {
    url: String,
    hits: Arc<AtomicUsize>,
    doc: Arc<Mutex<(u16, Value)>>,
}

async fn fake_idp(doc: Value) -> FakeIdp {
    let hits = Arc::new(AtomicUsize::new(0));
    let shared = Arc::new(Mutex::new((200u16, doc)));
    let state = (hits.clone(), shared.clone());
    let app = axum::Router::new()
        .route(
            "/realms/acme/.well-known/openid-configuration",
            axum::routing::get(|State((hits, doc)): State<IdpState>| async move {
                hits.fetch_add(1, Ordering::SeqCst);
                let (status, body) = doc.lock().unwrap().clone();
                (StatusCode::from_u16(status).unwrap(), Json(body)).into_response()
            }),
        )
        .with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    FakeIdp {
        url: format!("http://{addr}/realms/acme/.well-known/openid-configuration"),
        hits,
        doc: shared,
    }
}

fn idp_doc() -> Value {
    json!({
        "issuer": ISSUER,
        "authorization_endpoint": "https://idp.test/realms/acme/protocol/openid-connect/auth",
        "token_endpoint": "https://idp.test/realms/acme/protocol/openid-connect/token",
        "jwks_uri": "https://idp.test/realms/acme/protocol/openid-connect/certs",
        "registration_endpoint": "https://idp.test/realms/acme/clients-registrations/openid-connect",
        "response_types_supported": ["code"],
    })
}

#[tokio::test]
async fn authorization_server_metadata_mirrors_the_idp() {
    let idp = fake_idp(idp_doc()).await;
    let url = idp.url.clone();
    let t = app_with(&Backend::Sqlite, move |c| {
        c.idp.as_mut().unwrap().discovery_url = url;
    })
    .await;
    for uri in [
        "/.well-known/oauth-authorization-server",
        "/.well-known/oauth-authorization-server/realms/acme",
        "/.well-known/openid-configuration",
        "/.well-known/openid-configuration/realms/acme",
        "/realms/acme/.well-known/openid-configuration",
    ] {
        let a = t.call("GET", uri, None, None).await;
        let v = a.ok(200);
        assert_metadata_headers(&a);
        assert_eq!(v["issuer"], ISSUER, "{uri}");
        assert_eq!(
            v["authorization_endpoint"],
            idp_doc()["authorization_endpoint"]
        );
        assert_eq!(
            v["registration_endpoint"],
            idp_doc()["registration_endpoint"]
        );
        assert_eq!(
            v["code_challenge_methods_supported"],
            json!(["S256"]),
            "{uri}"
        );
    }
    // Cached: one fetch for all of those.
    assert_eq!(idp.hits.load(Ordering::SeqCst), 1);
    for uri in [
        "/.well-known/oauth-authorization-server/realms/other",
        "/.well-known/openid-configuration/realms",
        "/realms/other/.well-known/openid-configuration",
    ] {
        t.call("GET", uri, None, None).await.error(404);
    }
    let a = t
        .call(
            "OPTIONS",
            "/.well-known/oauth-authorization-server",
            None,
            None,
        )
        .await;
    assert_eq!(a.status, StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn idp_metadata_errors_and_stale_copy() {
    // Wrong issuer in the IdP's document: 502, never a document with another issuer.
    let mut doc = idp_doc();
    doc["issuer"] = json!("https://evil.test");
    let idp = fake_idp(doc).await;
    let url = idp.url.clone();
    let t = app_with(&Backend::Sqlite, move |c| {
        c.idp.as_mut().unwrap().discovery_url = url;
    })
    .await;
    let e = t
        .call("GET", "/.well-known/oauth-authorization-server", None, None)
        .await
        .error(502);
    assert!(!e.contains("evil"), "the cause is logged, not sent: {e}");
    drop(t);

    // Unreachable IdP.
    let t = app_with(&Backend::Sqlite, |c| {
        c.idp.as_mut().unwrap().discovery_url =
            "http://127.0.0.1:9/.well-known/openid-configuration".into();
    })
    .await;
    t.call("GET", "/.well-known/oauth-authorization-server", None, None)
        .await
        .error(502);
    drop(t);

    // TTL 0: every request refetches; when the IdP fails, the last good copy is served.
    let idp = fake_idp(idp_doc()).await;
    let url = idp.url.clone();
    let t = app_with(&Backend::Sqlite, move |c| {
        c.idp.as_mut().unwrap().discovery_url = url;
        c.idp_metadata_ttl = Duration::ZERO;
    })
    .await;
    t.call("GET", "/.well-known/oauth-authorization-server", None, None)
        .await
        .ok(200);
    t.call("GET", "/.well-known/oauth-authorization-server", None, None)
        .await
        .ok(200);
    assert_eq!(idp.hits.load(Ordering::SeqCst), 2);
    idp.doc.lock().unwrap().0 = 500;
    let v = t
        .call("GET", "/.well-known/oauth-authorization-server", None, None)
        .await
        .ok(200);
    assert_eq!(v["issuer"], ISSUER);
    assert_eq!(idp.hits.load(Ordering::SeqCst), 3);
}

/// MCP 2026-07-28: in broker mode the resource's metadata leaves `offline_access` to the
/// authorization server's (the broker gives refresh tokens by grant type); direct mode keeps it
/// for 2025-11-25 clients, which ask the IdP for what the resource lists.
#[tokio::test]
async fn broker_resource_metadata_leaves_offline_access_to_the_authorization_server() {
    let t = app_with(&Backend::Sqlite, |c| {
        c.auth_mode = portcullis::config::AuthMode::Broker;
    })
    .await;
    t.register("GitHub", "/github", &[]).await;
    let prm = t
        .call(
            "GET",
            "/.well-known/oauth-protected-resource/github/mcp",
            None,
            None,
        )
        .await
        .ok(200);
    assert_eq!(
        prm["scopes_supported"],
        json!(["openid", "email", "profile"]),
        "{prm}"
    );
    let asm = t
        .call("GET", "/.well-known/oauth-authorization-server", None, None)
        .await
        .ok(200);
    assert!(
        asm["scopes_supported"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s == "offline_access"),
        "{asm}"
    );
}
