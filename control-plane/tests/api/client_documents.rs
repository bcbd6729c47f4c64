//! Client ID Metadata Documents through the router: documents fetched over https from a
//! server of the test's own (a CA made per test, trusted through `PORTCULLIS_CIMD_CA_FILE`,
//! its loopback address allowed through `PORTCULLIS_CIMD_ALLOWED_ADDRESSES`), a person logging
//! in with such a client, a newer copy's redirect URIs held until an operator approves them,
//! documents an operator pins, and every document or URL the rules refuse: the exact page,
//! nothing stored, nothing issued.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio_rustls::rustls;

use crate::authorization_server::{
    authorize_uri, broker, get, jwt_part, location, log_in, query, redeem, sign_in, REDIRECT,
};
use crate::common::*;

both_backends!(
    a_fetched_document_logs_a_person_in_and_its_new_redirects_wait_for_approval,
    operators_pin_documents_that_cannot_be_fetched
);

/// One answer of the document server.
#[derive(Clone)]
struct Doc {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

/// An https server on 127.0.0.1 answering each path with what the test set, counting fetches.
struct DocServer {
    base: String,
    ca_file: tempfile_path::TempPath,
    docs: Arc<Mutex<HashMap<String, Doc>>>,
    fetches: Arc<AtomicUsize>,
}

/// A file removed when dropped (the CA certificate the broker reads).
mod tempfile_path {
    pub struct TempPath(pub std::path::PathBuf);
    impl Drop for TempPath {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
}

impl DocServer {
    async fn start() -> DocServer {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let leaf_key = rcgen::KeyPair::generate().unwrap();
        let leaf = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()])
            .unwrap()
            .signed_by(&leaf_key, &ca_cert, &ca_key)
            .unwrap();
        let ca_file = std::env::temp_dir().join(format!(
            "portcullis-cimd-ca-{}-{}.pem",
            std::process::id(),
            rand_suffix()
        ));
        std::fs::write(&ca_file, ca_cert.pem()).unwrap();

        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![leaf.der().clone()],
                rustls::pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into()),
            )
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let docs: Arc<Mutex<HashMap<String, Doc>>> = Arc::default();
        let fetches = Arc::new(AtomicUsize::new(0));
        let (served, count) = (docs.clone(), fetches.clone());
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (acceptor, served, count) = (acceptor.clone(), served.clone(), count.clone());
                tokio::spawn(async move {
                    let Ok(mut stream) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let mut head = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match stream.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    let head = String::from_utf8_lossy(&head);
                    let path = head.split(' ').nth(1).unwrap_or("/").to_string();
                    count.fetch_add(1, Ordering::SeqCst);
                    let doc = served.lock().unwrap().get(&path).cloned().unwrap_or(Doc {
                        status: 404,
                        headers: vec![],
                        body: b"not here".to_vec(),
                    });
                    let mut out = format!(
                        "HTTP/1.1 {} X\r\ncontent-length: {}\r\nconnection: close\r\n",
                        doc.status,
                        doc.body.len()
                    );
                    for (k, v) in &doc.headers {
                        out.push_str(&format!("{k}: {v}\r\n"));
                    }
                    out.push_str("\r\n");
                    let _ = stream.write_all(out.as_bytes()).await;
                    let _ = stream.write_all(&doc.body).await;
                    let _ = stream.shutdown().await;
                });
            }
        });
        DocServer {
            base: format!("https://127.0.0.1:{port}"),
            ca_file: tempfile_path::TempPath(ca_file),
            docs,
            fetches,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn serve(&self, path: &str, status: u16, headers: &[(&str, &str)], body: Vec<u8>) {
        self.docs.lock().unwrap().insert(
            path.to_string(),
            Doc {
                status,
                headers: headers
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                body,
            },
        );
    }

    /// A good document at `path` with these redirect URIs (and `extra` members).
    fn serve_document(&self, path: &str, redirect_uris: &[&str], extra: Value) {
        let mut doc = json!({
            "client_id": self.url(path),
            "client_name": "Document CLI",
            "redirect_uris": redirect_uris,
            "grant_types": ["authorization_code", "refresh_token"],
            "token_endpoint_auth_method": "none",
        });
        for (k, v) in extra.as_object().unwrap() {
            doc[k] = v.clone();
        }
        self.serve(
            path,
            200,
            &[
                ("content-type", "application/json"),
                ("cache-control", "max-age=300"),
            ],
            doc.to_string().into_bytes(),
        );
    }

    fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }
}

fn rand_suffix() -> u64 {
    use std::hash::{BuildHasher as _, Hasher as _};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u8(0);
    h.finish()
}

/// A broker that trusts `docs`' CA and may fetch from 127.0.0.1.
async fn broker_reading(b: &Backend, docs: &DocServer) -> TestApp {
    let ca = docs.ca_file.0.clone();
    broker(b, move |c| {
        c.broker.cimd.mode = portcullis::config::CimdMode::On;
        c.broker.cimd.allowed_addresses = vec![IpAddr::V4(Ipv4Addr::LOCALHOST)];
        c.broker.cimd.ca_file = Some(ca);
    })
    .await
}

async fn clients(t: &TestApp) -> Vec<Value> {
    t.admin("GET", "/api/oauth-clients", None).await.ok(200)["clients"]
        .as_array()
        .unwrap()
        .clone()
}

fn encoded(id: &str) -> String {
    url::form_urlencoded::byte_serialize(id.as_bytes()).collect()
}

/// The error page `uri` gets: its status and that it says `why`.
async fn refused_page(t: &TestApp, client_id: &str, status: u16, why: &str) {
    let page = get(t, &authorize_uri(client_id, REDIRECT, &[])).await;
    assert_eq!(page.status.as_u16(), status, "{client_id}: {}", page.text);
    assert!(
        page.headers.get("location").is_none(),
        "never a redirect: {client_id}"
    );
    assert!(
        page.text.contains(why),
        "{client_id}: {why:?} not in {}",
        page.text
    );
    assert!(!page.text.contains("name=\"request\""), "no login form");
}

async fn a_fetched_document_logs_a_person_in_and_its_new_redirects_wait_for_approval(b: Backend) {
    let docs = DocServer::start().await;
    let t = broker_reading(&b, &docs).await;
    let meta = t
        .call("GET", "/.well-known/oauth-authorization-server", None, None)
        .await
        .ok(200);
    assert_eq!(
        meta["client_id_metadata_document_supported"], true,
        "{meta}"
    );

    let id = docs.url("/cli/client.json");
    docs.serve_document(
        "/cli/client.json",
        &[REDIRECT],
        json!({"client_uri": "https://cli.example"}),
    );

    // The page names the publishing host and warns: every redirect is on this machine.
    let page = get(
        &t,
        &authorize_uri(&id, "http://127.0.0.1:41234/callback", &[]),
    )
    .await;
    assert_eq!(page.status.as_u16(), 200, "{}", page.text);
    assert!(
        page.text
            .contains("published by <strong>127.0.0.1</strong>"),
        "{}",
        page.text
    );
    assert!(
        page.text.contains("any program on it can present itself"),
        "{}",
        page.text
    );
    assert!(page.text.contains("Document CLI"));
    assert_eq!(docs.fetches(), 1);

    // A person logs in; the token is the document client's.
    let code = log_in(&t, &id, REDIRECT).await;
    assert_eq!(
        docs.fetches(),
        1,
        "a fresh stored copy is not fetched again"
    );
    let tokens = redeem(&t, &id, &code, REDIRECT).await;
    assert_eq!(tokens.status.as_u16(), 200, "{}", tokens.text);
    let claims = jwt_part(tokens.json()["access_token"].as_str().unwrap(), 1);
    assert_eq!(claims["client_id"], id.as_str(), "{claims}");
    assert_eq!(claims["sub"], "alice");

    let listed = clients(&t).await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    let c = &listed[0];
    assert_eq!(c["client_id"], id.as_str());
    assert_eq!(c["registration_type"], "cimd");
    assert_eq!(c["client_name"], "Document CLI");
    assert_eq!(c["token_endpoint_auth_method"], "none");
    assert_eq!(c["redirect_uris"], json!([REDIRECT]));
    assert!(c.get("pinned").is_none(), "{c}");
    let fresh = c["document_fresh_until"].as_i64().unwrap();
    let now = i64::try_from(crate::authorization_server::now()).unwrap();
    assert!(
        (now + 290..=now + 301).contains(&fresh),
        "max-age=300: {fresh} vs {now}"
    );
    assert!(c["last_used_at"].is_i64(), "{c}");

    // A newer copy adds a redirect URI: held until an operator approves it.
    let other = "https://cli.example/oauth/done";
    docs.serve_document("/cli/client.json", &[REDIRECT, other], json!({}));
    age(&t, &id).await;
    let page = get(&t, &authorize_uri(&id, other, &[])).await;
    assert_eq!(page.status.as_u16(), 400, "{}", page.text);
    assert!(page.headers.get("location").is_none());
    assert_eq!(docs.fetches(), 2);
    let c = clients(&t).await[0].clone();
    assert_eq!(c["redirect_uris"], json!([REDIRECT]), "{c}");
    assert_eq!(c["pending_redirect_uris"], json!([other]), "{c}");
    // The approved one still works meanwhile.
    let page = get(&t, &authorize_uri(&id, REDIRECT, &[])).await;
    assert_eq!(page.status.as_u16(), 200, "{}", page.text);

    let approved = t
        .admin(
            "PUT",
            &format!("/api/oauth-clients/{}/approve-redirects", encoded(&id)),
            None,
        )
        .await
        .ok(200);
    assert_eq!(
        approved["redirect_uris"],
        json!([REDIRECT, other]),
        "{approved}"
    );
    assert!(
        approved.get("pending_redirect_uris").is_none(),
        "{approved}"
    );
    let page = get(&t, &authorize_uri(&id, other, &[])).await;
    assert_eq!(page.status.as_u16(), 200, "{}", page.text);
    assert!(
        !page.text.contains("any program on it"),
        "an https redirect: no loopback warning"
    );
    t.admin("PUT", "/api/oauth-clients/nobody/approve-redirects", None)
        .await
        .error(404);

    // A copy that drops a redirect URI stops it at once.
    docs.serve_document("/cli/client.json", &[other], json!({}));
    age(&t, &id).await;
    let page = get(&t, &authorize_uri(&id, REDIRECT, &[])).await;
    assert_eq!(page.status.as_u16(), 400, "{}", page.text);
    assert_eq!(clients(&t).await[0]["redirect_uris"], json!([other]));

    // A disabled document client is refused without a fetch.
    t.admin(
        "PUT",
        &format!("/api/oauth-clients/{}/status", encoded(&id)),
        Some(json!({"status": "disabled"})),
    )
    .await
    .ok(204);
    age(&t, &id).await;
    let before = docs.fetches();
    let page = get(&t, &authorize_uri(&id, other, &[])).await;
    assert_eq!(page.status.as_u16(), 403, "{}", page.text);
    assert_eq!(docs.fetches(), before);
}

/// Makes the stored copy of `id` stale, as time would.
async fn age(t: &TestApp, id: &str) {
    let mut c = t.state.db.get_oauth_client(id).await.unwrap().unwrap();
    c.document_fresh_until = Some(0);
    t.state.db.upsert_document_client(&c).await.unwrap();
}

#[tokio::test]
async fn documents_and_urls_that_break_the_rules_are_refused() {
    let docs = DocServer::start().await;
    let t = broker_reading(&Backend::Sqlite, &docs).await;

    let path_doc = |path: &str, extra: Value| {
        let mut d = json!({"client_id": docs.url(path), "redirect_uris": [REDIRECT]});
        for (k, v) in extra.as_object().unwrap() {
            d[k] = v.clone();
        }
        d.to_string().into_bytes()
    };
    docs.serve("/other-id", 200, &[], path_doc("/x", json!({})));
    docs.serve(
        "/secret",
        200,
        &[],
        path_doc("/secret", json!({"client_secret": "s"})),
    );
    docs.serve(
        "/basic",
        200,
        &[],
        path_doc(
            "/basic",
            json!({"token_endpoint_auth_method": "client_secret_basic"}),
        ),
    );
    docs.serve(
        "/js",
        200,
        &[],
        path_doc("/js", json!({"redirect_uris": ["javascript:alert(1)"]})),
    );
    docs.serve("/array", 200, &[], b"[1]".to_vec());
    let mut big = path_doc("/big", json!({"client_name": "x".repeat(100)}));
    big.truncate(big.len() - 1);
    big.extend(format!(",\"pad\":\"{}\"}}", "y".repeat(5200)).into_bytes());
    docs.serve("/big", 200, &[], big);
    docs.serve("/moved", 302, &[("location", "/secret")], vec![]);
    docs.serve("/gone", 404, &[], vec![]);

    for (path, status, why) in [
        (
            "/other-id",
            400,
            "its client_id is not the URL it was fetched from",
        ),
        ("/secret", 400, "client_secret is not allowed"),
        ("/basic", 400, "only none"),
        ("/js", 400, "redirect_uris:"),
        ("/array", 400, "not a JSON object"),
        ("/big", 400, "larger than 5120 bytes"),
        ("/moved", 502, "redirects are not followed"),
        ("/gone", 502, "404"),
    ] {
        refused_page(&t, &docs.url(path), status, why).await;
    }
    // A fetch failure tells the operator what to do.
    refused_page(&t, &docs.url("/gone"), 502, "POST /api/oauth-clients/cimd").await;
    refused_page(&t, &docs.url("/gone"), 502, "PORTCULLIS_CIMD=off").await;

    for (id, why) in [
        ("http://127.0.0.1/client.json", "must be https"),
        ("https://127.0.0.1/", "must have a path"),
        ("https://127.0.0.1/a/../b", "normal form"),
        ("https://user@127.0.0.1/c", "userinfo"),
        ("https://127.0.0.1/c#f", "fragment"),
        ("https://10.1.2.3/client.json", "special-use"),
        ("https://[::ffff:c0a8:1]/client.json", "special-use"),
        ("https://169.254.169.254/latest/meta-data", "special-use"),
    ] {
        refused_page(&t, id, 400, why).await;
    }
    assert!(clients(&t).await.is_empty(), "nothing stored");

    // Failures are not kept: the document appears, the next login works.
    docs.serve_document("/gone", &[REDIRECT], json!({}));
    let page = get(&t, &authorize_uri(&docs.url("/gone"), REDIRECT, &[])).await;
    assert_eq!(page.status.as_u16(), 200, "{}", page.text);

    // Loopback is refused unless allowed, even with a trusted certificate.
    let strict = broker(&Backend::Sqlite, |c| {
        c.broker.cimd.ca_file = Some(docs.ca_file.0.clone());
    })
    .await;
    refused_page(
        &strict,
        &docs.url("/gone"),
        400,
        "PORTCULLIS_CIMD_ALLOWED_ADDRESSES",
    )
    .await;
    // By what a name resolves to, not by the name.
    refused_page(&strict, "https://localhost/client.json", 400, "special-use").await;
    // An untrusted certificate is a fetch failure.
    let untrusting = broker(&Backend::Sqlite, |c| {
        c.broker.cimd.allowed_addresses = vec![IpAddr::V4(Ipv4Addr::LOCALHOST)];
    })
    .await;
    refused_page(&untrusting, &docs.url("/gone"), 502, "could not be fetched").await;

    // Fetches are limited per client address.
    let mut limited = None;
    for i in 0..40 {
        let page = get(
            &strict,
            &authorize_uri(&format!("https://10.9.9.9/c{i}"), REDIRECT, &[]),
        )
        .await;
        if page.status.as_u16() == 429 {
            limited = Some(i);
            break;
        }
    }
    // 30 per minute, two of them spent above.
    assert_eq!(limited, Some(28));
}

#[tokio::test]
async fn cimd_off_is_not_advertised_and_fetches_nothing() {
    let docs = DocServer::start().await;
    let ca = docs.ca_file.0.clone();
    let t = broker(&Backend::Sqlite, move |c| {
        c.broker.cimd.mode = portcullis::config::CimdMode::Off;
        c.broker.cimd.allowed_addresses = vec![IpAddr::V4(Ipv4Addr::LOCALHOST)];
        c.broker.cimd.ca_file = Some(ca);
    })
    .await;
    let meta = t
        .call("GET", "/.well-known/oauth-authorization-server", None, None)
        .await
        .ok(200);
    assert_eq!(
        meta["client_id_metadata_document_supported"], false,
        "{meta}"
    );
    docs.serve_document("/c", &[REDIRECT], json!({}));
    refused_page(&t, &docs.url("/c"), 400, "PORTCULLIS_CIMD=off").await;
    assert_eq!(docs.fetches(), 0);
}

/// Claude Code's document URL: unreachable here, as on an air-gapped site.
const CLAUDE_CODE: &str = "https://claude.ai/oauth/claude-code-client-metadata";

async fn operators_pin_documents_that_cannot_be_fetched(b: Backend) {
    let t = broker(&b, |_| {}).await;
    // Unreachable: the page says how to fix it.
    refused_page(&t, CLAUDE_CODE, 502, "POST /api/oauth-clients/cimd").await;

    let document = json!({
        "client_id": CLAUDE_CODE,
        "client_name": "Claude Code",
        "redirect_uris": ["http://localhost/callback", "http://127.0.0.1/callback"],
        "grant_types": ["authorization_code", "refresh_token"],
        "token_endpoint_auth_method": "none",
        "client_uri": "https://claude.ai",
    });
    t.call(
        "POST",
        "/api/oauth-clients/cimd",
        None,
        Some(document.clone()),
    )
    .await
    .error(401);
    let pinned = t
        .admin("POST", "/api/oauth-clients/cimd", Some(document.clone()))
        .await
        .ok(201);
    assert_eq!(pinned["registration_type"], "cimd", "{pinned}");
    assert_eq!(pinned["pinned"], true, "{pinned}");
    assert_eq!(pinned["client_id"], CLAUDE_CODE);
    assert!(
        pinned.get("expires_at").is_none_or(Value::is_null),
        "{pinned}"
    );
    t.admin("POST", "/api/oauth-clients/cimd", Some(document.clone()))
        .await
        .ok(200);

    // A person logs in with it, offline.
    let page = get(
        &t,
        &authorize_uri(CLAUDE_CODE, "http://127.0.0.1:54545/callback", &[]),
    )
    .await;
    assert_eq!(page.status.as_u16(), 200, "{}", page.text);
    assert!(
        page.text
            .contains("published by <strong>claude.ai</strong>"),
        "{}",
        page.text
    );
    let back = location(&sign_in(&t, &page, "alice", "alice-password").await);
    assert_eq!(back.port(), Some(54545));
    let code = query(&back, "code").unwrap();
    let tokens = redeem(&t, CLAUDE_CODE, &code, "http://127.0.0.1:54545/callback").await;
    assert_eq!(tokens.status.as_u16(), 200, "{}", tokens.text);
    assert_eq!(
        jwt_part(tokens.json()["access_token"].as_str().unwrap(), 1)["client_id"],
        CLAUDE_CODE
    );

    // Pinned documents are checked as fetched ones: refused, nothing changed.
    for (change, why) in [
        (json!({"client_id": "http://claude.ai/c"}), "must be https"),
        (json!({"client_id": null}), "client_id"),
        (
            json!({"client_secret": "x"}),
            "client_secret is not allowed",
        ),
        (
            json!({"redirect_uris": ["http://evil.example/cb"]}),
            "loopback",
        ),
        (
            json!({"token_endpoint_auth_method": "private_key_jwt"}),
            "only none",
        ),
    ] {
        let mut bad = document.clone();
        for (k, v) in change.as_object().unwrap() {
            if v.is_null() {
                bad.as_object_mut().unwrap().remove(k);
            } else {
                bad[k] = v.clone();
            }
        }
        let text = t
            .admin("POST", "/api/oauth-clients/cimd", Some(bad))
            .await
            .error(422);
        assert!(text.contains(why), "{change}: {text}");
    }
    let listed = clients(&t).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["redirect_uris"], document["redirect_uris"]);

    // PORTCULLIS_CIMD=auto (the default): advertised only once every assistant's document is at
    // hand, here pinned (Codex's too), and no longer once one goes.
    assert!(!advertised(&t).await);
    let codex = json!({
        "client_id": CODEX, "client_name": "Codex",
        "redirect_uris": ["http://127.0.0.1/callback"], "token_endpoint_auth_method": "none",
    });
    t.admin("POST", "/api/oauth-clients/cimd", Some(codex))
        .await
        .ok(201);
    assert!(
        advertised_within(&t, true).await,
        "advertised with both documents pinned"
    );

    // Deleting it forgets it: the next login needs the document again.
    t.admin(
        "DELETE",
        &format!("/api/oauth-clients/{}", encoded(CLAUDE_CODE)),
        None,
    )
    .await
    .ok(204);
    refused_page(&t, CLAUDE_CODE, 502, "could not be fetched").await;
    assert!(advertised_within(&t, false).await, "no longer advertised");
}

/// Codex's document URL.
const CODEX: &str = "https://chatgpt.com/oauth/codex/client.json";

async fn advertised(t: &TestApp) -> bool {
    t.call("GET", "/.well-known/oauth-authorization-server", None, None)
        .await
        .ok(200)["client_id_metadata_document_supported"]
        == true
}

/// Whether the metadata comes to say `want` within a few seconds (the check runs in the
/// background after an operator's change).
async fn advertised_within(t: &TestApp, want: bool) -> bool {
    for _ in 0..100 {
        if advertised(t).await == want {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    false
}
