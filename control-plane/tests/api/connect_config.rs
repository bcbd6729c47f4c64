//! `GET /api/servers/{path}/connect-config` (and the two-segment form): authentication and
//! visibility like the other reads, the `ide` parameter, the resolved client id and URL (the same
//! string as the protected-resource metadata's `resource`), the static-token fallback per caller,
//! and the IdP's capabilities (from a fixture IdP on 127.0.0.1) deciding the login method.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use portcullis::config::{Config, Secret};
use serde_json::{json, Value};

use crate::common::*;

both_backends!(
    admin_and_reader_both_path_forms,
    client_id_and_callback_port,
    codex_callback_port_warns,
    bad_ide_unknown_server_no_credentials,
    reader_without_access_gets_404,
    static_token_only_for_admins_and_only_when_enabled,
    url_equals_protected_resource,
    idp_capabilities_choose_the_login_method,
);

const STATIC_TOKEN: &str = "static-gateway-token-0123456789";
/// Nothing listens there: connection refused at once.
const UNREACHABLE_IDP: &str = "http://127.0.0.1:9/.well-known/openid-configuration";

/// An app whose IdP metadata is unreachable (fast failure) unless `tweak` says otherwise.
async fn connect_app(b: &Backend, tweak: impl FnOnce(&mut Config)) -> TestApp {
    app_with(b, |c| {
        c.idp.as_mut().unwrap().discovery_url = UNREACHABLE_IDP.into();
        tweak(c);
    })
    .await
}

/// Grants `server` to IdP group `group` through a scope named after the group.
async fn grant(t: &TestApp, group: &str, server: &str) {
    t.admin(
        "PUT",
        &format!("/api/scopes/{group}-scope"),
        Some(json!({"grants": [{"server": server, "methods": ["*"], "tools": ["*"]}]})),
    )
    .await
    .ok(201);
    t.admin(
        "PUT",
        &format!("/api/group-mappings/{group}"),
        Some(json!({"scopes": [format!("{group}-scope")]})),
    )
    .await
    .ok(201);
}

fn codes(v: &Value) -> Vec<String> {
    v["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["code"].as_str().unwrap().to_string())
        .collect()
}

fn argv(v: &Value, ide: &str) -> Vec<String> {
    v["rendered"][ide]["argv"]
        .as_array()
        .unwrap_or_else(|| panic!("no argv for {ide}: {v}"))
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect()
}

async fn admin_and_reader_both_path_forms(b: Backend) {
    let t = connect_app(&b, |_| {}).await;
    t.register("GitHub", "/github", &[]).await;
    t.register("Docs", "/team/docs", &[]).await;
    grant(&t, "engineering", "GitHub").await;
    grant(&t, "writers", "Docs").await;
    let eng = token("bob", &["engineering"]);
    let writer = token("wendy", &["writers"]);

    for (uri, url, reader) in [
        (
            "/api/servers/github/connect-config",
            "https://gw.example.com/github/mcp",
            &eng,
        ),
        (
            "/api/servers/team/docs/connect-config",
            "https://gw.example.com/team/docs/mcp",
            &writer,
        ),
    ] {
        for bearer in [ADMIN_TOKEN, reader.as_str()] {
            let a = t.call("GET", uri, Some(bearer), None).await;
            let v = a.ok(200);
            assert_eq!(a.headers["cache-control"], "no-store", "{uri}");
            assert_eq!(v["url"], url, "{uri}");
            assert_eq!(v["append_mcp_path"], true);
            assert_eq!(v["append_mcp_path_source"], "auto_detected");
            assert_eq!(v["oauth_client_id"], Value::Null);
            // No ide: every assistant, no top-level login method.
            let rendered = v["rendered"].as_object().unwrap();
            assert_eq!(rendered.len(), 10, "{uri}");
            for ide in ["cursor", "claude-code", "codex", "vscode", "curl"] {
                assert!(rendered.contains_key(ide), "{ide} missing");
            }
            assert!(v.get("login_method").is_none());
            // The unreachable IdP is a warning, not a failure.
            assert_eq!(v["idp"], Value::Null);
            assert!(codes(&v).contains(&"idp_metadata_unavailable".to_string()));
        }
    }
    // One assistant: only its config, and its login method at the top.
    let v = t
        .call(
            "GET",
            "/api/servers/team/docs/connect-config?ide=claude_code",
            Some(&writer),
            None,
        )
        .await
        .ok(200);
    assert_eq!(
        v["rendered"]
            .as_object()
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        ["claude-code"]
    );
    assert_eq!(
        v["login_method"],
        v["rendered"]["claude-code"]["login_method"]
    );
    // An empty ide is the same as none.
    let v = t
        .call(
            "GET",
            "/api/servers/github/connect-config?ide=",
            Some(&eng),
            None,
        )
        .await
        .ok(200);
    assert_eq!(v["rendered"].as_object().unwrap().len(), 10);
}

async fn client_id_and_callback_port(b: Backend) {
    let t = connect_app(&b, |c| {
        c.ide_oauth_client_id = Some("mcp-gateway-ide".into());
        c.ide_oauth_callback_port = Some(33418);
    })
    .await;
    t.register("GitHub", "/github", &[("oauth_client_id", "github-ide")])
        .await;
    t.register("Docs", "/team/docs", &[]).await;

    // The server's own client id wins over IDE_OAUTH_CLIENT_ID.
    let v = t
        .admin(
            "GET",
            "/api/servers/github/connect-config?ide=claude-code",
            None,
        )
        .await
        .ok(200);
    assert_eq!(v["oauth_client_id"], "github-ide");
    assert_eq!(v["callback_port"], 33418);
    assert_eq!(v["login_method"], "pre_registered");
    let cc = &v["rendered"]["claude-code"];
    assert_eq!(cc["format"], "shell");
    assert_eq!(
        cc["text"],
        "claude mcp add --transport http --client-id github-ide --callback-port 33418 GitHub https://gw.example.com/github/mcp"
    );
    assert_eq!(
        argv(&v, "claude-code"),
        [
            "claude",
            "mcp",
            "add",
            "--transport",
            "http",
            "--client-id",
            "github-ide",
            "--callback-port",
            "33418",
            "GitHub",
            "https://gw.example.com/github/mcp"
        ]
    );

    // Without its own: the registry-wide default.
    let v = t
        .admin(
            "GET",
            "/api/servers/team/docs/connect-config?ide=claude-code",
            None,
        )
        .await
        .ok(200);
    assert_eq!(v["oauth_client_id"], "mcp-gateway-ide");
    let text = v["rendered"]["claude-code"]["text"].as_str().unwrap();
    assert!(text.starts_with("claude mcp add "), "{text}");
    assert!(
        text.contains("--client-id mcp-gateway-ide --callback-port 33418"),
        "{text}"
    );
    drop(t);

    // No callback port configured: no --callback-port.
    let t = connect_app(&b, |c| {
        c.ide_oauth_client_id = Some("mcp-gateway-ide".into());
    })
    .await;
    t.register("GitHub", "/github", &[]).await;
    let v = t
        .admin(
            "GET",
            "/api/servers/github/connect-config?ide=claude-code",
            None,
        )
        .await
        .ok(200);
    assert!(v.get("callback_port").is_none(), "{v}");
    assert_eq!(
        v["rendered"]["claude-code"]["text"],
        "claude mcp add --transport http --client-id mcp-gateway-ide GitHub https://gw.example.com/github/mcp"
    );
}

async fn codex_callback_port_warns(b: Backend) {
    let t = connect_app(&b, |c| {
        c.ide_oauth_client_id = Some("mcp-gateway-ide".into());
        c.ide_oauth_callback_port = Some(33418);
    })
    .await;
    t.register("GitHub", "/github", &[]).await;
    let v = t
        .admin("GET", "/api/servers/github/connect-config?ide=codex", None)
        .await
        .ok(200);
    let text = v["rendered"]["codex"]["text"].as_str().unwrap();
    assert!(!text.contains("33418"), "Codex cannot pin the port: {text}");
    let w = v["rendered"]["codex"]["warnings"].as_array().unwrap();
    assert!(
        w.iter()
            .any(|w| w["code"] == "callback_port_ignored" && w["ide"] == "codex"),
        "{v}"
    );
    assert!(codes(&v).contains(&"callback_port_ignored".to_string()));

    // Strict-redirect IdP: the port cannot work for Codex at all.
    let idp = fixture_idp(false).await;
    let url = idp.url.clone();
    let t = connect_app(&b, move |c| {
        c.idp.as_mut().unwrap().discovery_url = url;
        c.ide_oauth_client_id = Some("mcp-gateway-ide".into());
        c.ide_oauth_callback_port = Some(33418);
        c.idp_strict_redirects = true;
    })
    .await;
    t.register("GitHub", "/github", &[]).await;
    let v = t
        .admin("GET", "/api/servers/github/connect-config?ide=codex", None)
        .await
        .ok(200);
    assert_eq!(v["idp"]["strict_redirects"], true);
    // Codex can pin its port but not its path (it appends /callback/<id>): the warning says so.
    assert!(
        codes(&v).contains(&"callback_path_unmatchable".to_string()),
        "{v}"
    );
    assert!(!codes(&v).contains(&"callback_port_unpinnable".to_string()));
    let w = v["rendered"]["codex"]["warnings"].as_array().unwrap();
    let message = w
        .iter()
        .find(|w| w["code"] == "callback_path_unmatchable")
        .and_then(|w| w["message"].as_str())
        .unwrap();
    assert!(
        message.contains("mcp_oauth_callback_port") && message.contains("/callback/<id>"),
        "{message}"
    );
}

async fn bad_ide_unknown_server_no_credentials(b: Backend) {
    let t = connect_app(&b, |_| {}).await;
    t.register("GitHub", "/github", &[]).await;
    let e = t
        .admin("GET", "/api/servers/github/connect-config?ide=emacs", None)
        .await
        .error(400);
    assert!(e.contains("ide") && e.contains("emacs"), "{e}");
    let e = t
        .admin("GET", "/api/servers/github/connect-config?editor=vim", None)
        .await
        .error(400);
    assert!(e.contains("editor"), "{e}");
    for uri in [
        "/api/servers/nosuch/connect-config",
        "/api/servers/team/nosuch/connect-config",
        "/api/servers/nosuch/connect-config?ide=cursor",
        "/api/servers/api/connect-config",
    ] {
        t.admin("GET", uri, None).await.error(404);
    }
    for uri in [
        "/api/servers/github/connect-config",
        "/api/servers/github/connect-config?ide=emacs",
        "/api/servers/nosuch/connect-config",
    ] {
        t.call("GET", uri, None, None).await.error(401);
        t.call("GET", uri, Some("not-a-valid-token"), None)
            .await
            .error(401);
    }
}

async fn reader_without_access_gets_404(b: Backend) {
    let t = connect_app(&b, |_| {}).await;
    t.register("GitHub", "/github", &[]).await;
    t.register("Docs", "/team/docs", &[]).await;
    grant(&t, "engineering", "GitHub").await;
    let eng = token("bob", &["engineering"]);
    let nobody = token("frank", &[]);
    t.call(
        "GET",
        "/api/servers/github/connect-config",
        Some(&eng),
        None,
    )
    .await
    .ok(200);
    // Same answer as for a server that does not exist.
    let hidden = t
        .call(
            "GET",
            "/api/servers/team/docs/connect-config",
            Some(&eng),
            None,
        )
        .await
        .error(404);
    let absent = t
        .call(
            "GET",
            "/api/servers/team/nope/connect-config",
            Some(&eng),
            None,
        )
        .await
        .error(404);
    assert_eq!(
        hidden.replace("/team/docs", "X"),
        absent.replace("/team/nope", "X")
    );
    t.call(
        "GET",
        "/api/servers/github/connect-config?ide=cursor",
        Some(&nobody),
        None,
    )
    .await
    .error(404);
}

async fn static_token_only_for_admins_and_only_when_enabled(b: Backend) {
    let enabled = |c: &mut Config| {
        c.static_token_fallback = true;
        c.static_token = Some(Secret::new(STATIC_TOKEN));
    };
    let t = connect_app(&b, enabled).await;
    t.register("GitHub", "/github", &[]).await;
    grant(&t, "engineering", "GitHub").await;
    let eng = token("bob", &["engineering"]);

    // Admin (bootstrap token, and an IdP token mapped to the admin scope): embedded.
    t.admin(
        "PUT",
        "/api/scopes/mcp-admin",
        Some(json!({"grants": [{"server": "*", "methods": ["*"], "tools": ["*"]}]})),
    )
    .await
    .ok(201);
    t.admin(
        "PUT",
        "/api/group-mappings/platform-admins",
        Some(json!({"scopes": ["mcp-admin"]})),
    )
    .await
    .ok(201);
    let idp_admin = token("carol", &["platform-admins"]);
    for bearer in [ADMIN_TOKEN, idp_admin.as_str()] {
        let v = t
            .call(
                "GET",
                "/api/servers/github/connect-config?ide=claude-code",
                Some(bearer),
                None,
            )
            .await
            .ok(200);
        assert_eq!(v["login_method"], "static_token", "{v}");
        let text = v["rendered"]["claude-code"]["text"].as_str().unwrap();
        assert!(text.contains(STATIC_TOKEN), "{text}");
        assert!(codes(&v).contains(&"static_token_fallback".to_string()));
    }

    // A reader: the fallback applies, but with a placeholder, never the token.
    for ide in [
        "",
        "?ide=claude-code",
        "?ide=codex",
        "?ide=cursor",
        "?ide=vscode",
    ] {
        let a = t
            .call(
                "GET",
                &format!("/api/servers/github/connect-config{ide}"),
                Some(&eng),
                None,
            )
            .await;
        let v = a.ok(200);
        assert!(!a.text.contains(STATIC_TOKEN), "{ide}: {}", a.text);
        assert!(
            codes(&v).contains(&"static_token_hidden".to_string()),
            "{ide}: {v}"
        );
    }
    let v = t
        .call(
            "GET",
            "/api/servers/github/connect-config?ide=claude-code",
            Some(&eng),
            None,
        )
        .await
        .ok(200);
    assert_eq!(v["login_method"], "static_token");
    let text = v["rendered"]["claude-code"]["text"].as_str().unwrap();
    assert!(text.contains("${MCP_AUTH_TOKEN}"), "{text}");
    drop(t);

    // Token configured but the fallback off (the default): nobody gets it, not even an admin.
    let t = connect_app(&b, |c| c.static_token = Some(Secret::new(STATIC_TOKEN))).await;
    t.register("GitHub", "/github", &[]).await;
    let a = t
        .admin("GET", "/api/servers/github/connect-config", None)
        .await;
    let v = a.ok(200);
    assert!(!a.text.contains(STATIC_TOKEN), "{}", a.text);
    assert!(!codes(&v).contains(&"static_token_fallback".to_string()));
    assert!(!codes(&v).contains(&"static_token_hidden".to_string()));
    let v = t
        .admin(
            "GET",
            "/api/servers/github/connect-config?ide=claude-code",
            None,
        )
        .await
        .ok(200);
    assert_eq!(v["login_method"], "none");
    assert!(codes(&v).contains(&"no_login_method".to_string()));
    // And the state's configuration never shows the token in logs.
    assert!(!format!("{:?}", t.state.config).contains(STATIC_TOKEN));
}

/// Server name, path, extra register fields.
type Case = (
    &'static str,
    &'static str,
    &'static [(&'static str, &'static str)],
);

async fn url_equals_protected_resource(b: Backend) {
    let t = connect_app(&b, |_| {}).await;
    let cases: [Case; 6] = [
        ("Auto", "/auto", &[]),
        (
            "AtMcp",
            "/at-mcp",
            &[("proxy_pass_url", "http://127.0.0.1:9/v1/mcp/")],
        ),
        ("NoSuffix", "/no-suffix", &[("append_mcp_path", "false")]),
        (
            "Forced",
            "/forced",
            &[
                ("proxy_pass_url", "http://127.0.0.1:9/sse"),
                ("append_mcp_path", "true"),
            ],
        ),
        (
            "Custom",
            "/custom",
            &[("mcp_endpoint", "https://gw.example.com/elsewhere/stream/")],
        ),
        (
            "Two",
            "/team/two",
            &[("proxy_pass_url", "http://127.0.0.1:9/mcp")],
        ),
    ];
    for (name, path, extra) in cases {
        let server = t.register(name, path, extra).await;
        let v = t
            .admin(
                "GET",
                &format!("/api/servers{path}/connect-config?ide=cursor"),
                None,
            )
            .await
            .ok(200);
        let metadata_uri = server["resource_metadata_url"]
            .as_str()
            .unwrap()
            .strip_prefix(PUBLIC_URL)
            .unwrap()
            .to_string();
        let prm = t.call("GET", &metadata_uri, None, None).await.ok(200);
        assert_eq!(v["url"], prm["resource"], "{name}");
        assert_eq!(v["url"], server["mcp_url"], "{name}");
        // And it is the URL the assistant's config carries.
        let cursor = v["rendered"]["cursor"]["text"].as_str().unwrap();
        let doc: Value = serde_json::from_str(cursor).unwrap();
        assert_eq!(doc["mcpServers"][name]["url"], v["url"], "{name}: {cursor}");
    }
    let v = t
        .admin("GET", "/api/servers/custom/connect-config", None)
        .await
        .ok(200);
    assert_eq!(v["url"], "https://gw.example.com/elsewhere/stream");
    assert_eq!(v["append_mcp_path_source"], "mcp_endpoint");
    let v = t
        .admin("GET", "/api/servers/at-mcp/connect-config", None)
        .await
        .ok(200);
    assert_eq!(v["url"], "https://gw.example.com/at-mcp");
    assert_eq!(v["append_mcp_path"], false);
}

type FixtureState = (Arc<AtomicUsize>, Arc<Mutex<Value>>);

/// A fixture IdP on 127.0.0.1 serving OIDC discovery metadata, with or without a
/// `registration_endpoint`; counts fetches.
struct FixtureIdp {
    url: String,
    hits: Arc<AtomicUsize>,
}

async fn fixture_idp(dcr: bool) -> FixtureIdp {
    let mut doc = json!({
        "issuer": ISSUER,
        "authorization_endpoint": format!("{ISSUER}/protocol/openid-connect/auth"),
        "token_endpoint": format!("{ISSUER}/protocol/openid-connect/token"),
        "jwks_uri": format!("{ISSUER}/protocol/openid-connect/certs"),
        "response_types_supported": ["code"],
    });
    if dcr {
        doc["registration_endpoint"] =
            json!(format!("{ISSUER}/clients-registrations/openid-connect"));
    }
    let hits = Arc::new(AtomicUsize::new(0));
    let state: FixtureState = (hits.clone(), Arc::new(Mutex::new(doc)));
    let app = axum::Router::new()
        .route(
            "/realms/acme/.well-known/openid-configuration",
            axum::routing::get(|State((hits, doc)): State<FixtureState>| async move {
                hits.fetch_add(1, Ordering::SeqCst);
                let body = doc.lock().unwrap().clone();
                (StatusCode::OK, Json(body)).into_response()
            }),
        )
        .with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    FixtureIdp {
        url: format!("http://{addr}/realms/acme/.well-known/openid-configuration"),
        hits,
    }
}

async fn idp_capabilities_choose_the_login_method(b: Backend) {
    // DCR on: Claude Code registers itself; no client id needed.
    let idp = fixture_idp(true).await;
    let url = idp.url.clone();
    let t = connect_app(&b, move |c| c.idp.as_mut().unwrap().discovery_url = url).await;
    t.register("GitHub", "/github", &[]).await;
    let v = t
        .admin(
            "GET",
            "/api/servers/github/connect-config?ide=claude-code",
            None,
        )
        .await
        .ok(200);
    assert_eq!(v["login_method"], "dcr", "{v}");
    assert_eq!(v["idp"]["issuer"], ISSUER);
    assert_eq!(
        v["idp"]["registration_endpoint"],
        format!("{ISSUER}/clients-registrations/openid-connect")
    );
    assert_eq!(v["idp"]["strict_redirects"], false);
    assert!(!codes(&v).contains(&"idp_metadata_unavailable".to_string()));
    assert!(!codes(&v).contains(&"no_login_method".to_string()));
    assert_eq!(
        v["rendered"]["claude-code"]["text"],
        "claude mcp add --transport http GitHub https://gw.example.com/github/mcp"
    );
    // The capabilities are cached (shared across requests).
    t.admin("GET", "/api/servers/github/connect-config", None)
        .await
        .ok(200);
    assert_eq!(idp.hits.load(Ordering::SeqCst), 1);
    drop(t);

    // DCR off: no login method for Claude Code without a client id...
    let idp = fixture_idp(false).await;
    let url = idp.url.clone();
    let t = connect_app(&b, move |c| {
        c.idp.as_mut().unwrap().discovery_url = url;
        c.idp_expect_dcr = true;
    })
    .await;
    t.register("GitHub", "/github", &[]).await;
    t.register("Docs", "/docs", &[("oauth_client_id", "docs-ide")])
        .await;
    let v = t
        .admin(
            "GET",
            "/api/servers/github/connect-config?ide=claude-code",
            None,
        )
        .await
        .ok(200);
    assert_eq!(v["login_method"], "none", "{v}");
    assert_eq!(v["idp"]["registration_endpoint"], Value::Null);
    let c = codes(&v);
    assert!(c.contains(&"no_login_method".to_string()), "{c:?}");
    // ...and the operator's expectation of DCR is contradicted by the metadata.
    assert!(c.contains(&"dcr_expected_but_absent".to_string()), "{c:?}");
    // ...while a pre-registered client id works.
    let v = t
        .admin(
            "GET",
            "/api/servers/docs/connect-config?ide=claude-code",
            None,
        )
        .await
        .ok(200);
    assert_eq!(v["login_method"], "pre_registered");
    assert!(v["rendered"]["claude-code"]["text"]
        .as_str()
        .unwrap()
        .contains("--client-id docs-ide"));
    drop(t);

    // DCR off and the fallback on: the static token (for an admin).
    let idp = fixture_idp(false).await;
    let url = idp.url.clone();
    let t = connect_app(&b, move |c| {
        c.idp.as_mut().unwrap().discovery_url = url;
        c.static_token_fallback = true;
        c.static_token = Some(Secret::new(STATIC_TOKEN));
    })
    .await;
    t.register("GitHub", "/github", &[]).await;
    let v = t
        .admin(
            "GET",
            "/api/servers/github/connect-config?ide=claude-code",
            None,
        )
        .await
        .ok(200);
    assert_eq!(v["login_method"], "static_token");
    drop(t);

    // Broker mode: no IdP capabilities are looked up (the control plane is the authorization
    // server, and it knows what it offers: DCR, any loopback port, and metadata documents when
    // it advertises them; by default only while the assistants' documents are at hand, which
    // they are not here).
    let idp = fixture_idp(true).await;
    let url = idp.url.clone();
    let t = connect_app(&b, move |c| {
        c.idp.as_mut().unwrap().discovery_url = url;
        c.auth_mode = portcullis::config::AuthMode::Broker;
    })
    .await;
    t.register("GitHub", "/github", &[]).await;
    let v = t
        .admin(
            "GET",
            "/api/servers/github/connect-config?ide=claude-code",
            None,
        )
        .await
        .ok(200);
    assert_eq!(v["idp"]["issuer"], PUBLIC_URL, "{v}");
    assert_eq!(
        v["idp"]["registration_endpoint"],
        format!("{PUBLIC_URL}/oauth/register")
    );
    assert_eq!(v["login_method"], "dcr", "{v}");
    assert_eq!(v["idp"]["cimd_supported"], false, "{v}");
    let codes: Vec<&str> = v["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|w| w["code"].as_str())
        .collect();
    assert!(
        codes.is_empty(),
        "broker mode needs no workaround: {codes:?}"
    );
    assert_eq!(idp.hits.load(Ordering::SeqCst), 0);

    // With PORTCULLIS_CIMD=on, Claude Code is sent its metadata document's way.
    let t = connect_app(&b, move |c| {
        c.auth_mode = portcullis::config::AuthMode::Broker;
        c.broker.cimd.mode = portcullis::config::CimdMode::On;
    })
    .await;
    t.register("GitHub", "/github", &[]).await;
    let v = t
        .admin(
            "GET",
            "/api/servers/github/connect-config?ide=claude-code",
            None,
        )
        .await
        .ok(200);
    assert_eq!(v["login_method"], "cimd", "{v}");
    assert_eq!(v["idp"]["cimd_supported"], true, "{v}");
}
