//! Broker mode's authorization server through the router: register (DCR), authorize with the
//! built-in login page, tokens the policy accepts, refresh rotation, revocation; and what a
//! hostile or broken client gets: the exact error, nothing issued.

use axum::body::Body;
use axum::http::{header, Request};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};

use crate::common::*;

both_backends!(
    registrations_wait_for_approval_where_an_administrator_approves_them,
    a_person_logs_in_and_the_filter_accepts_the_token,
    codes_and_refresh_tokens_are_single_use,
    bad_authorization_requests_never_reach_a_bad_redirect,
    bad_token_requests_issue_nothing,
    registration_is_validated_and_rate_limited,
    disabled_and_deleted_clients_lose_their_grants,
    operators_preregister_clients_and_machines_use_client_credentials
);

pub(crate) const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
pub(crate) const REDIRECT: &str = "http://127.0.0.1/callback";
pub(crate) const RESOURCE: &str = "https://gw.example.com/github/mcp";

pub(crate) fn challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

pub(crate) fn form_encode(pairs: &[(&str, &str)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

/// A broker-mode app with one server and one user (alice, group engineering).
pub(crate) async fn broker(
    b: &Backend,
    tweak: impl FnOnce(&mut portcullis::config::Config),
) -> TestApp {
    let t = app_with(b, |c| {
        c.auth_mode = portcullis::config::AuthMode::Broker;
        tweak(c);
    })
    .await;
    t.register("GitHub", "/github", &[]).await;
    let created = t
        .admin(
            "PUT",
            "/api/users/alice",
            Some(json!({"password": "alice-password", "groups": ["engineering"], "display_name": "Alice"})),
        )
        .await
        .ok(201);
    assert!(created.get("password").is_none() && created.get("password_hash").is_none());
    t
}

pub(crate) async fn form(
    t: &TestApp,
    path: &str,
    pairs: &[(&str, &str)],
    basic: Option<&str>,
) -> Answer {
    let mut b = Request::builder()
        .method("POST")
        .uri(path)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    if let Some(basic) = basic {
        b = b.header(header::AUTHORIZATION, format!("Basic {basic}"));
    }
    t.send(b.body(Body::from(form_encode(pairs))).unwrap())
        .await
}

/// The login form posted from the browser that got `page` (with its binding cookie).
pub(crate) async fn login_form(t: &TestApp, page: &Answer, pairs: &[(&str, &str)]) -> Answer {
    let cookie = page
        .headers
        .get(header::SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .expect("the page sets its binding cookie")
        .to_string();
    let b = Request::builder()
        .method("POST")
        .uri("/oauth/authorize")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::COOKIE, cookie);
    t.send(b.body(Body::from(form_encode(pairs))).unwrap())
        .await
}

/// The login page's form posted back with `user`'s password and *Allow*.
pub(crate) async fn sign_in(t: &TestApp, page: &Answer, user: &str, password: &str) -> Answer {
    login_form(
        t,
        page,
        &[
            ("request", &hidden_request(&page.text)),
            ("username", user),
            ("password", password),
            ("decision", "approve"),
        ],
    )
    .await
}

pub(crate) async fn get(t: &TestApp, uri: &str) -> Answer {
    t.send(Request::get(uri).body(Body::empty()).unwrap()).await
}

pub(crate) async fn register_client(t: &TestApp, extra: Value) -> Value {
    let mut body = json!({
        "redirect_uris": [REDIRECT],
        "token_endpoint_auth_method": "none",
        "grant_types": ["authorization_code", "refresh_token"],
        "client_name": "Test CLI",
    });
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    t.call("POST", "/oauth/register", None, Some(body))
        .await
        .ok(201)
}

pub(crate) fn authorize_uri(client_id: &str, redirect: &str, extra: &[(&str, &str)]) -> String {
    let challenge = challenge(VERIFIER);
    let mut pairs = vec![
        ("response_type", "code"),
        ("client_id", client_id),
        ("redirect_uri", redirect),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
        ("state", "st-1"),
        ("resource", RESOURCE),
        ("scope", "openid"),
    ];
    for (name, value) in extra {
        pairs.retain(|(n, _)| n != name);
        if !value.is_empty() {
            pairs.push((name, value));
        }
    }
    format!("/oauth/authorize?{}", form_encode(&pairs))
}

/// The signed request in the login page's hidden field.
pub(crate) fn hidden_request(html: &str) -> String {
    let at = html
        .find("name=\"request\" value=\"")
        .expect("the login form")
        + 22;
    html[at..].split('"').next().unwrap().to_string()
}

pub(crate) fn location(a: &Answer) -> url::Url {
    assert_eq!(a.status.as_u16(), 303, "{}", a.text);
    url::Url::parse(a.headers[header::LOCATION].to_str().unwrap()).unwrap()
}

pub(crate) fn query(url: &url::Url, name: &str) -> Option<String> {
    url.query_pairs()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.into_owned())
}

/// The page, then the form with alice's password: the code.
pub(crate) async fn log_in(t: &TestApp, client_id: &str, redirect: &str) -> String {
    let page = get(t, &authorize_uri(client_id, redirect, &[])).await;
    assert_eq!(page.status.as_u16(), 200, "{}", page.text);
    let back = location(&sign_in(t, &page, "alice", "alice-password").await);
    assert_eq!(query(&back, "state").as_deref(), Some("st-1"));
    assert_eq!(query(&back, "iss").as_deref(), Some(PUBLIC_URL));
    query(&back, "code").expect("a code")
}

pub(crate) async fn redeem(t: &TestApp, client_id: &str, code: &str, redirect: &str) -> Answer {
    form(
        t,
        "/oauth/token",
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("code_verifier", VERIFIER),
            ("redirect_uri", redirect),
            ("client_id", client_id),
            ("resource", RESOURCE),
        ],
        None,
    )
    .await
}

pub(crate) async fn refresh(t: &TestApp, client_id: &str, token: &str) -> Answer {
    form(
        t,
        "/oauth/token",
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", token),
            ("client_id", client_id),
        ],
        None,
    )
    .await
}

pub(crate) fn oauth_error(a: &Answer, status: u16, code: &str) -> String {
    assert_eq!(a.status.as_u16(), status, "{}", a.text);
    let v = a.json();
    assert_eq!(v["error"], code, "{v}");
    assert_eq!(a.headers[header::CACHE_CONTROL], "no-store");
    v["error_description"].as_str().unwrap().to_string()
}

pub(crate) fn jwt_part(token: &str, i: usize) -> Value {
    let part = token.split('.').nth(i).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

pub(crate) async fn policy_of(t: &TestApp) -> policy::Policy {
    let snapshot = portcullis::sync::compile_snapshot(t.state.publisher.sources(), 1)
        .await
        .unwrap();
    policy::Policy::from_json(&serde_json::to_vec(&snapshot).unwrap()).unwrap()
}

pub(crate) fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

async fn a_person_logs_in_and_the_filter_accepts_the_token(b: Backend) {
    let t = broker(&b, |_| {}).await;
    let client = register_client(&t, json!({})).await;
    let client_id = client["client_id"].as_str().unwrap();
    assert!(client.get("client_secret").is_none(), "a public client");
    assert_eq!(client["token_endpoint_auth_method"], "none");

    // The login page: escaped, unframeable, no scripts.
    let page = get(
        &t,
        &authorize_uri(client_id, "http://127.0.0.1:5555/callback", &[]),
    )
    .await;
    assert_eq!(page.status.as_u16(), 200, "{}", page.text);
    let csp = page.headers[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap();
    assert!(csp.contains("frame-ancestors 'none'") && csp.contains("default-src 'none'"));
    assert_eq!(page.headers[header::X_FRAME_OPTIONS], "DENY");
    assert!(page.text.contains("Test CLI") && page.text.contains(RESOURCE));
    assert!(!page.text.contains("<script"));
    let request = hidden_request(&page.text);

    // A wrong password: the form again, 401, no code.
    let wrong = login_form(
        &t,
        &page,
        &[
            ("request", &request),
            ("username", "alice"),
            ("password", "nope-nope"),
            ("decision", "approve"),
        ],
    )
    .await;
    assert_eq!(wrong.status.as_u16(), 401);
    assert!(wrong.text.contains("Wrong username or password"));
    assert!(wrong.headers.get(header::LOCATION).is_none());

    // Any loopback port works for a registered loopback redirect (RFC 8252).
    let back = location(
        &login_form(
            &t,
            &page,
            &[
                ("request", &request),
                ("username", "alice"),
                ("password", "alice-password"),
                ("decision", "approve"),
            ],
        )
        .await,
    );
    assert_eq!(back.port(), Some(5555));
    assert_eq!(query(&back, "iss").as_deref(), Some(PUBLIC_URL));
    let code = query(&back, "code").unwrap();

    let tokens = redeem(&t, client_id, &code, "http://127.0.0.1:5555/callback")
        .await
        .ok(200);
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(tokens["expires_in"], 600);
    assert_eq!(tokens["scope"], "openid");
    let access = tokens["access_token"].as_str().unwrap();
    assert!(tokens["refresh_token"].is_string());
    let header = jwt_part(access, 0);
    assert_eq!(header["alg"], "ES256");
    assert_eq!(header["typ"], "at+jwt");
    let claims = jwt_part(access, 1);
    assert_eq!(claims["iss"], PUBLIC_URL);
    assert_eq!(claims["aud"], RESOURCE);
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["client_id"], client_id);
    assert_eq!(claims["groups"], json!(["engineering"]));
    assert_eq!(claims["name"], "Alice");
    assert_eq!(
        claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(),
        600
    );

    // The JWKS names the key, and the policy every filter runs accepts the token for the
    // server it was issued for.
    let jwks = t.call("GET", "/oauth/jwks", None, None).await.ok(200);
    assert!(jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .any(|k| k["kid"] == header["kid"] && k.get("d").is_none()));
    let policy = policy_of(&t).await;
    let identity = policy
        .verify_jwt(access, now())
        .expect("the filter accepts it");
    assert_eq!(identity.subject, "alice");
    assert_eq!(&*identity.groups, ["engineering".to_string()]);
    assert!(identity.audience_servers.contains(0));

    // The client shows up for operators, with its last use.
    let clients = t.admin("GET", "/api/oauth-clients", None).await.ok(200);
    let listed = &clients["clients"][0];
    assert_eq!(listed["client_id"], client_id);
    assert_eq!(listed["registration_type"], "dcr");
    assert!(listed["last_used_at"].is_i64());
    assert!(listed.get("secret_sha256").is_none());

    // Groups are read at every issue: a changed group shows in the next refresh.
    t.admin(
        "PUT",
        "/api/users/alice",
        Some(json!({"groups": ["platform"]})),
    )
    .await
    .ok(200);
    let next = refresh(&t, client_id, tokens["refresh_token"].as_str().unwrap())
        .await
        .ok(200);
    assert_eq!(
        jwt_part(next["access_token"].as_str().unwrap(), 1)["groups"],
        json!(["platform"])
    );
    assert_ne!(next["refresh_token"], tokens["refresh_token"], "rotated");

    // A deleted user's grant stops at the next refresh.
    t.admin("DELETE", "/api/users/alice", None).await;
    let gone = refresh(&t, client_id, next["refresh_token"].as_str().unwrap()).await;
    oauth_error(&gone, 400, "invalid_grant");
}

async fn codes_and_refresh_tokens_are_single_use(b: Backend) {
    let t = broker(&b, |_| {}).await;
    let client = register_client(&t, json!({})).await;
    let client_id = client["client_id"].as_str().unwrap();

    // A replayed code is refused and revokes what it issued.
    let code = log_in(&t, client_id, REDIRECT).await;
    let first = redeem(&t, client_id, &code, REDIRECT).await.ok(200);
    let replay = redeem(&t, client_id, &code, REDIRECT).await;
    let why = oauth_error(&replay, 400, "invalid_grant");
    assert!(why.contains("already used"), "{why}");
    let after = refresh(&t, client_id, first["refresh_token"].as_str().unwrap()).await;
    oauth_error(&after, 400, "invalid_grant");
    // Its access token is listed in the next snapshot: every filter refuses it at once.
    let refused = policy_of(&t)
        .await
        .verify_jwt(first["access_token"].as_str().unwrap(), now())
        .unwrap_err();
    assert_eq!(refused, policy::TokenError::Revoked);

    // Rotation: a retry within the grace window gets the same pair; the new token works.
    let code = log_in(&t, client_id, REDIRECT).await;
    let tokens = redeem(&t, client_id, &code, REDIRECT).await.ok(200);
    let old = tokens["refresh_token"].as_str().unwrap();
    let rotated = refresh(&t, client_id, old).await.ok(200);
    let retried = refresh(&t, client_id, old).await.ok(200);
    assert_eq!(retried["refresh_token"], rotated["refresh_token"]);
    // The same access token: its claims (jti, expiry) are the same; ES256 signatures differ.
    let claims = |v: &Value| jwt_part(v["access_token"].as_str().unwrap(), 1);
    assert_eq!(claims(&retried), claims(&rotated));
    let newer = refresh(&t, client_id, rotated["refresh_token"].as_str().unwrap())
        .await
        .ok(200);
    // The first token, used again once the pair moved on, revokes the family.
    oauth_error(&refresh(&t, client_id, old).await, 400, "invalid_grant");
    oauth_error(
        &refresh(&t, client_id, newer["refresh_token"].as_str().unwrap()).await,
        400,
        "invalid_grant",
    );

    // RFC 7009: a revoked refresh token is dead; an unknown token is answered the same.
    let code = log_in(&t, client_id, REDIRECT).await;
    let tokens = redeem(&t, client_id, &code, REDIRECT).await.ok(200);
    let rt = tokens["refresh_token"].as_str().unwrap();
    for token in ["no-such-token", rt] {
        let a = form(
            &t,
            "/oauth/revoke",
            &[("token", token), ("client_id", client_id)],
            None,
        )
        .await;
        assert_eq!(a.status.as_u16(), 200, "{}", a.text);
    }
    oauth_error(&refresh(&t, client_id, rt).await, 400, "invalid_grant");
}

async fn bad_authorization_requests_never_reach_a_bad_redirect(b: Backend) {
    let t = broker(&b, |_| {}).await;
    let client = register_client(&t, json!({})).await;
    let id = client["client_id"].as_str().unwrap();

    // Before the redirect URI is trusted: our own error page, never a redirect.
    for (uri, says) in [
        (authorize_uri("pc_nobody", REDIRECT, &[]), "not registered"),
        (
            authorize_uri(id, "https://evil.example/callback", &[]),
            "not registered",
        ),
        (
            authorize_uri(id, "http://127.0.0.1/other", &[]),
            "not registered",
        ),
        (
            authorize_uri(id, "javascript:alert(1)", &[]),
            "not registered",
        ),
        (
            authorize_uri(id, "http://127.0.0.1/callback#x", &[]),
            "not registered",
        ),
        (
            format!("{}&client_id={id}", authorize_uri(id, REDIRECT, &[])),
            "more than once",
        ),
    ] {
        let a = get(&t, &uri).await;
        assert_eq!(a.status.as_u16(), 400, "{uri}: {}", a.text);
        assert!(a.headers.get(header::LOCATION).is_none(), "{uri}");
        assert!(a.text.contains(says), "{uri}: {}", a.text);
        assert!(!a.text.contains("<script"), "{uri}");
    }

    // After: the error goes back to the client with state and iss, and no code.
    for (extra, code) in [
        (vec![("code_challenge", "")], "invalid_request"),
        (vec![("code_challenge_method", "plain")], "invalid_request"),
        (vec![("code_challenge", "short")], "invalid_request"),
        (
            vec![("resource", "https://gw.example.com/nope/mcp")],
            "invalid_target",
        ),
        (vec![("resource", "")], "invalid_target"),
        (vec![("response_type", "token")], "invalid_request"),
    ] {
        let a = get(&t, &authorize_uri(id, REDIRECT, &extra)).await;
        let back = location(&a);
        assert_eq!(back.as_str().split('?').next(), Some(REDIRECT), "{extra:?}");
        assert_eq!(query(&back, "error").as_deref(), Some(code), "{extra:?}");
        assert_eq!(query(&back, "state").as_deref(), Some("st-1"));
        assert_eq!(query(&back, "iss").as_deref(), Some(PUBLIC_URL));
        assert!(query(&back, "code").is_none());
    }

    // The login form: altered or denied.
    let page = get(&t, &authorize_uri(id, REDIRECT, &[])).await;
    let request = hidden_request(&page.text);
    let mut altered = request.clone();
    altered.insert(3, 'x');
    let a = login_form(
        &t,
        &page,
        &[
            ("request", &altered),
            ("username", "alice"),
            ("password", "alice-password"),
            ("decision", "approve"),
        ],
    )
    .await;
    assert_eq!(a.status.as_u16(), 400);
    assert!(a.headers.get(header::LOCATION).is_none());
    let denied =
        location(&login_form(&t, &page, &[("request", &request), ("decision", "deny")]).await);
    assert_eq!(query(&denied, "error").as_deref(), Some("access_denied"));
    assert!(query(&denied, "code").is_none());

    // The form is bound to the browser that opened the page: a post from elsewhere (a page
    // that auto-submits a consent, without the cookie or with another page's) gets nothing.
    let page = get(&t, &authorize_uri(id, REDIRECT, &[])).await;
    let set = page.headers[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .to_string();
    for attr in ["HttpOnly", "SameSite=Lax", "Path=/", "Max-Age=600"] {
        assert!(set.contains(attr), "{set}");
    }
    let other = get(&t, &authorize_uri(id, REDIRECT, &[])).await;
    let fields = [
        ("request", hidden_request(&page.text)),
        ("username", "alice".to_string()),
        ("password", "alice-password".to_string()),
        ("decision", "approve".to_string()),
    ];
    let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
    for cookie in [None, other.headers[header::SET_COOKIE].to_str().ok()] {
        let mut b = Request::post("/oauth/authorize")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        if let Some(c) = cookie {
            b = b.header(header::COOKIE, c.split(';').next().unwrap());
        }
        let a = t
            .send(b.body(Body::from(form_encode(&fields))).unwrap())
            .await;
        assert_eq!(a.status.as_u16(), 403, "{cookie:?}: {}", a.text);
        assert!(a.text.contains("started elsewhere"), "{}", a.text);
        assert!(a.headers.get(header::LOCATION).is_none());
    }
}

async fn bad_token_requests_issue_nothing(b: Backend) {
    let t = broker(&b, |_| {}).await;
    let client = register_client(&t, json!({})).await;
    let id = client["client_id"].as_str().unwrap();

    // A wrong verifier burns the code.
    let code = log_in(&t, id, REDIRECT).await;
    let wrong = form(
        &t,
        "/oauth/token",
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("code_verifier", &"x".repeat(43)),
            ("redirect_uri", REDIRECT),
            ("client_id", id),
        ],
        None,
    )
    .await;
    oauth_error(&wrong, 400, "invalid_grant");
    oauth_error(&redeem(&t, id, &code, REDIRECT).await, 400, "invalid_grant");

    // No verifier at all; another redirect URI; another resource; another client.
    let code = log_in(&t, id, REDIRECT).await;
    let none = form(
        &t,
        "/oauth/token",
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("client_id", id),
        ],
        None,
    )
    .await;
    assert_eq!(none.status.as_u16(), 400);
    let code = log_in(&t, id, REDIRECT).await;
    oauth_error(
        &redeem(&t, id, &code, "http://127.0.0.1/elsewhere").await,
        400,
        "invalid_grant",
    );
    let other = register_client(&t, json!({})).await;
    let code = log_in(&t, id, REDIRECT).await;
    oauth_error(
        &redeem(&t, other["client_id"].as_str().unwrap(), &code, REDIRECT).await,
        400,
        "invalid_grant",
    );

    // Grant types, clients, bodies.
    oauth_error(
        &form(
            &t,
            "/oauth/token",
            &[("grant_type", "password"), ("client_id", id)],
            None,
        )
        .await,
        400,
        "unsupported_grant_type",
    );
    oauth_error(
        &form(
            &t,
            "/oauth/token",
            &[("grant_type", "client_credentials"), ("client_id", id)],
            None,
        )
        .await,
        400,
        // For confidential pre-registered clients only, not this one.
        "unauthorized_client",
    );
    let unknown = form(
        &t,
        "/oauth/token",
        &[
            ("grant_type", "authorization_code"),
            ("code", "x"),
            ("client_id", "pc_nobody"),
        ],
        None,
    )
    .await;
    oauth_error(&unknown, 401, "invalid_client");
    assert!(unknown.headers.get(header::WWW_AUTHENTICATE).is_some());
    oauth_error(
        &form(
            &t,
            "/oauth/token",
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", "x"),
                ("client_id", id),
                ("client_secret", "s"),
            ],
            None,
        )
        .await,
        401,
        "invalid_client",
    );
    let json_body = t
        .call(
            "POST",
            "/oauth/token",
            None,
            Some(json!({"grant_type": "authorization_code"})),
        )
        .await;
    oauth_error(&json_body, 400, "invalid_request");
    let twice = t
        .send(
            Request::post("/oauth/token")
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(Body::from(
                    "grant_type=refresh_token&grant_type=authorization_code",
                ))
                .unwrap(),
        )
        .await;
    oauth_error(&twice, 400, "invalid_request");
    let garbage = t
        .send(
            Request::post("/oauth/token")
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .header(header::AUTHORIZATION, "Basic %%%")
                .body(Body::from(vec![0xff, 0xfe, b'=', 0x80]))
                .unwrap(),
        )
        .await;
    oauth_error(&garbage, 401, "invalid_client");

    // A confidential client must show its secret, and only it.
    let confidential = register_client(
        &t,
        json!({"token_endpoint_auth_method": "client_secret_basic"}),
    )
    .await;
    let cid = confidential["client_id"].as_str().unwrap();
    let secret = confidential["client_secret"].as_str().unwrap();
    assert_eq!(confidential["client_secret_expires_at"], 0);
    let code = log_in(&t, cid, REDIRECT).await;
    let pairs = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("code_verifier", VERIFIER),
        ("redirect_uri", REDIRECT),
    ];
    let basic = |s: &str| base64::engine::general_purpose::STANDARD.encode(format!("{cid}:{s}"));
    oauth_error(
        &form(&t, "/oauth/token", &pairs, Some(&basic("wrong"))).await,
        401,
        "invalid_client",
    );
    let no_secret = [&pairs[..], &[("client_id", cid)]].concat();
    oauth_error(
        &form(&t, "/oauth/token", &no_secret, None).await,
        401,
        "invalid_client",
    );
    // The code survived client-authentication failures (they come first), and works.
    form(&t, "/oauth/token", &pairs, Some(&basic(secret)))
        .await
        .ok(200);
    // Nothing stored holds a raw secret.
    let clients = t.admin("GET", "/api/oauth-clients", None).await;
    assert!(!clients.text.contains(secret));
}

async fn registration_is_validated_and_rate_limited(b: Backend) {
    let t = broker(&b, |c| c.broker.dcr_per_minute = 4).await;
    for (i, (body, code)) in [
        (
            json!({"redirect_uris": ["javascript:alert(1)"]}),
            "invalid_redirect_uri",
        ),
        (
            json!({"redirect_uris": ["http://evil.example/cb"]}),
            "invalid_redirect_uri",
        ),
        (
            json!({"redirect_uris": ["https://app.example/cb#frag"]}),
            "invalid_redirect_uri",
        ),
        (json!({"redirect_uris": []}), "invalid_redirect_uri"),
        (
            json!({"redirect_uris": [REDIRECT], "grant_types": ["implicit"]}),
            "invalid_client_metadata",
        ),
        (
            json!({"redirect_uris": [REDIRECT], "response_types": ["token"]}),
            "invalid_client_metadata",
        ),
        (
            json!({"redirect_uris": [REDIRECT], "token_endpoint_auth_method": "private_key_jwt"}),
            "invalid_client_metadata",
        ),
        (
            json!({"redirect_uris": "http://127.0.0.1/cb"}),
            "invalid_client_metadata",
        ),
        (json!(["not", "an", "object"]), "invalid_client_metadata"),
        (
            json!({"redirect_uris": [REDIRECT], "application_type": "desktop"}),
            "invalid_client_metadata",
        ),
        (
            json!({"redirect_uris": [REDIRECT], "client_name": 7}),
            "invalid_client_metadata",
        ),
    ]
    .into_iter()
    .enumerate()
    {
        // Each from its own address: refused attempts count against the limit too.
        let a = t
            .send(
                Request::post("/oauth/register")
                    .header(header::CONTENT_TYPE, "application/json")
                    .header("x-forwarded-for", format!("192.0.2.{i}"))
                    .body(Body::from(body.to_string()))
                    .unwrap(),
            )
            .await;
        oauth_error(&a, 400, code);
    }
    let before = t.admin("GET", "/api/oauth-clients", None).await.ok(200);
    assert_eq!(before["clients"], json!([]), "nothing was registered");

    // The limit counts every attempt from one address (4 per minute here).
    let flood = |ip: &'static str| {
        Request::post("/oauth/register")
            .header(header::CONTENT_TYPE, "application/json")
            .header("x-forwarded-for", format!("203.0.113.9, {ip}"))
            .body(Body::from(
                json!({"redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none"})
                    .to_string(),
            ))
            .unwrap()
    };
    for _ in 0..4 {
        assert_eq!(t.send(flood("198.51.100.7")).await.status.as_u16(), 201);
    }
    let refused = t.send(flood("198.51.100.7")).await;
    assert_eq!(refused.status.as_u16(), 429, "{}", refused.text);
    let retry: u64 = refused.headers[header::RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry));
    assert_eq!(
        t.send(flood("198.51.100.8")).await.status.as_u16(),
        201,
        "another address"
    );
    let after = t.admin("GET", "/api/oauth-clients", None).await.ok(200);
    assert_eq!(after["clients"].as_array().unwrap().len(), 5);
}

async fn disabled_and_deleted_clients_lose_their_grants(b: Backend) {
    let t = broker(&b, |_| {}).await;
    let client = register_client(&t, json!({})).await;
    let id = client["client_id"].as_str().unwrap();
    let code = log_in(&t, id, REDIRECT).await;
    let tokens = redeem(&t, id, &code, REDIRECT).await.ok(200);
    let access = tokens["access_token"].as_str().unwrap();
    assert!(policy_of(&t).await.verify_jwt(access, now()).is_ok());
    let unused_code = log_in(&t, id, REDIRECT).await;

    t.admin(
        "PUT",
        &format!("/api/oauth-clients/{id}/status"),
        Some(json!({"status": "disabled"})),
    )
    .await;
    let a = refresh(&t, id, tokens["refresh_token"].as_str().unwrap()).await;
    oauth_error(&a, 401, "invalid_client");
    let page = get(&t, &authorize_uri(id, REDIRECT, &[])).await;
    assert_eq!(page.status.as_u16(), 403);
    // Its live access token stops working with the next snapshot, not when it expires.
    assert_eq!(
        policy_of(&t).await.verify_jwt(access, now()).unwrap_err(),
        policy::TokenError::Revoked
    );

    // Enabled again, what it held before stays revoked.
    t.admin(
        "PUT",
        &format!("/api/oauth-clients/{id}/status"),
        Some(json!({"status": "active"})),
    )
    .await;
    oauth_error(
        &refresh(&t, id, tokens["refresh_token"].as_str().unwrap()).await,
        400,
        "invalid_grant",
    );
    oauth_error(
        &redeem(&t, id, &unused_code, REDIRECT).await,
        400,
        "invalid_grant",
    );

    // Deleted: the client must register again.
    let code = log_in(&t, id, REDIRECT).await;
    t.admin("DELETE", &format!("/api/oauth-clients/{id}"), None)
        .await;
    let gone = redeem(&t, id, &code, REDIRECT).await;
    let why = oauth_error(&gone, 401, "invalid_client");
    assert!(why.contains("register again"), "{why}");
    assert_eq!(
        get(&t, &authorize_uri(id, REDIRECT, &[]))
            .await
            .status
            .as_u16(),
        400
    );
    t.admin("DELETE", &format!("/api/oauth-clients/{id}"), None)
        .await
        .error(404);
}

#[tokio::test]
async fn a_single_sqlite_installation_makes_its_secret_key_once() {
    use std::os::unix::fs::PermissionsExt as _;
    let t = app_with(&Backend::Sqlite, |c| {
        c.auth_mode = portcullis::config::AuthMode::Broker;
        c.broker.secret_key = None;
    })
    .await;
    let path = t.config.data_dir.join("secret.key");
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "only the control plane's user reads it");
    let first = t.call("GET", "/oauth/jwks", None, None).await.ok(200);
    // Started again on the same data: the same key opens the stored signing key.
    let again =
        portcullis::authz::server::AuthorizationServer::start(&t.config, t.state.db.clone())
            .await
            .unwrap();
    assert_eq!(json!(again.keys().jwks()), first);
    // Another key cannot open it: a clear refusal, not a silent new key.
    let mut other = t.config.clone();
    other.broker.secret_key = Some(portcullis::config::Secret::new(
        URL_SAFE_NO_PAD.encode([7u8; 32]),
    ));
    let err = portcullis::authz::server::AuthorizationServer::start(&other, t.state.db.clone())
        .await
        .unwrap_err();
    assert!(format!("{err:#}").contains("does not open"), "{err:#}");
}

#[tokio::test]
async fn broker_mode_on_postgresql_needs_a_shared_secret_key() {
    let Some(b) = postgres() else { return };
    let t = app(&b).await;
    let mut config = t.config.clone();
    config.auth_mode = portcullis::config::AuthMode::Broker;
    config.broker.secret_key = None;
    let err = portcullis::authz::server::AuthorizationServer::start(&config, t.state.db.clone())
        .await
        .unwrap_err();
    assert!(
        format!("{err:#}").contains("PORTCULLIS_SECRET_KEY"),
        "{err:#}"
    );
}

#[tokio::test]
async fn an_upstream_login_asks_consent_first_and_its_callback_is_single_use() {
    let t = broker(&Backend::Sqlite, |c| {
        c.broker.upstream_client = Some((
            "portcullis-broker".into(),
            portcullis::config::Secret::new("broker-secret"),
        ));
        // An IdP that cannot be reached: its metadata is unavailable.
        c.idp.as_mut().unwrap().discovery_url =
            "http://127.0.0.1:9/.well-known/openid-configuration".into();
    })
    .await;
    let client = register_client(&t, json!({})).await;
    let id = client["client_id"].as_str().unwrap();

    // Consent only: no password field; nothing has gone to the IdP yet.
    let page = get(&t, &authorize_uri(id, REDIRECT, &[])).await;
    assert_eq!(page.status.as_u16(), 200, "{}", page.text);
    assert!(!page.text.contains("type=\"password\""), "{}", page.text);
    assert!(page.text.contains("Allow and sign in at"), "{}", page.text);

    // Approved, but the IdP's metadata cannot be had: the client hears so, no code.
    let back = location(
        &login_form(
            &t,
            &page,
            &[
                ("request", &hidden_request(&page.text)),
                ("decision", "approve"),
            ],
        )
        .await,
    );
    assert_eq!(
        query(&back, "error").as_deref(),
        Some("temporarily_unavailable")
    );
    assert_eq!(query(&back, "state").as_deref(), Some("st-1"));
    assert!(query(&back, "code").is_none());

    // Callbacks that no login of ours started.
    for uri in [
        "/oauth/callback",
        "/oauth/callback?code=c",
        "/oauth/callback?code=c&state=never-issued",
        "/oauth/callback?error=access_denied&state=never-issued",
    ] {
        let a = get(&t, uri).await;
        assert_eq!(a.status.as_u16(), 400, "{uri}: {}", a.text);
        assert!(a.headers.get(header::LOCATION).is_none(), "{uri}");
    }
}

#[tokio::test]
async fn the_callback_is_not_there_without_an_upstream_idp() {
    let t = broker(&Backend::Sqlite, |_| {}).await;
    let a = get(&t, "/oauth/callback?code=c&state=s").await;
    assert_eq!(a.status.as_u16(), 404, "{}", a.text);
    let t = app(&Backend::Sqlite).await;
    oauth_error(
        &get(&t, "/oauth/callback?code=c&state=s").await,
        404,
        "invalid_request",
    );
}

async fn operators_preregister_clients_and_machines_use_client_credentials(b: Backend) {
    let t = broker(&b, |_| {}).await;
    let bot = t
        .admin(
            "POST",
            "/api/oauth-clients",
            Some(json!({"client_name": "CI bot", "confidential": true,
                        "grant_types": ["client_credentials"], "groups": ["engineering"]})),
        )
        .await
        .ok(201);
    assert_eq!(bot["registration_type"], "prereg");
    assert_eq!(bot["grant_types"], json!(["client_credentials"]));
    let id = bot["client_id"].as_str().unwrap().to_string();
    let secret = bot["client_secret"].as_str().unwrap().to_string();
    let basic = |s: &str| base64::engine::general_purpose::STANDARD.encode(format!("{id}:{s}"));

    let tokens = form(
        &t,
        "/oauth/token",
        &[("grant_type", "client_credentials"), ("resource", RESOURCE)],
        Some(&basic(&secret)),
    )
    .await
    .ok(200);
    assert!(
        tokens.get("refresh_token").is_none(),
        "no refresh for a machine"
    );
    let access = tokens["access_token"].as_str().unwrap();
    let claims = jwt_part(access, 1);
    assert_eq!(claims["sub"], format!("client:{id}"));
    assert_eq!(claims["aud"], RESOURCE);
    assert_eq!(claims["groups"], json!(["engineering"]));
    let identity = policy_of(&t)
        .await
        .verify_jwt(access, now())
        .expect("accepted");
    assert_eq!(&*identity.groups, ["engineering".to_string()]);

    // Wrong secret, no or an unknown resource: nothing issued.
    oauth_error(
        &form(
            &t,
            "/oauth/token",
            &[("grant_type", "client_credentials"), ("resource", RESOURCE)],
            Some(&basic("nope")),
        )
        .await,
        401,
        "invalid_client",
    );
    oauth_error(
        &form(
            &t,
            "/oauth/token",
            &[("grant_type", "client_credentials")],
            Some(&basic(&secret)),
        )
        .await,
        400,
        "invalid_target",
    );
    oauth_error(
        &form(
            &t,
            "/oauth/token",
            &[
                ("grant_type", "client_credentials"),
                ("resource", "https://gw.example.com/other/mcp"),
            ],
            Some(&basic(&secret)),
        )
        .await,
        400,
        "invalid_target",
    );

    // A public client cannot have client_credentials; bad redirect URIs are refused.
    for body in [
        json!({"client_name": "x", "grant_types": ["client_credentials"]}),
        json!({"client_name": "x", "redirect_uris": ["javascript:alert(1)"]}),
        json!({"client_name": "x"}),
        json!({"client_name": "", "redirect_uris": [REDIRECT]}),
        json!({"client_name": "x", "redirect_uris": [REDIRECT], "grant_types": ["password"]}),
    ] {
        t.admin("POST", "/api/oauth-clients", Some(body.clone()))
            .await
            .error(422);
    }

    // A pre-registered public client logs people in like any other.
    let desk = t
        .admin(
            "POST",
            "/api/oauth-clients",
            Some(json!({"client_name": "Desk app", "redirect_uris": [REDIRECT]})),
        )
        .await
        .ok(201);
    assert!(desk.get("client_secret").is_none());
    let desk_id = desk["client_id"].as_str().unwrap();
    let code = log_in(&t, desk_id, REDIRECT).await;
    redeem(&t, desk_id, &code, REDIRECT).await.ok(200);

    let listed = t.admin("GET", "/api/oauth-clients", None).await;
    assert!(!listed.text.contains(&secret), "the secret is shown once");
    let prereg = listed.json()["clients"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["registration_type"] == "prereg")
        .count();
    assert_eq!(prereg, 2);
    // Only broker mode has clients.
    let direct = app(&b).await;
    direct
        .admin(
            "POST",
            "/api/oauth-clients",
            Some(json!({"client_name": "x", "redirect_uris": [REDIRECT]})),
        )
        .await
        .error(404);
}

#[tokio::test]
async fn unused_dcr_registrations_expire_and_are_removed() {
    let t = broker(&Backend::Sqlite, |c| c.broker.dcr_client_days = 1).await;
    let client = register_client(&t, json!({})).await;
    let id = client["client_id"].as_str().unwrap();
    let code = log_in(&t, id, REDIRECT).await;
    let tokens = redeem(&t, id, &code, REDIRECT).await.ok(200);
    let listed = t.admin("GET", "/api/oauth-clients", None).await.ok(200);
    let expires = listed["clients"][0]["expires_at"]
        .as_i64()
        .expect("an expiry");
    let now = now() as i64;
    assert!(
        (now + 86_400 - 5..=now + 86_400 + 5).contains(&expires),
        "a day from its last use"
    );
    // A pre-registered client never expires.
    let prereg = t
        .admin(
            "POST",
            "/api/oauth-clients",
            Some(json!({"client_name": "Desk", "redirect_uris": [REDIRECT]})),
        )
        .await
        .ok(201);
    assert!(prereg["expires_at"].is_null());

    // Two days on, the clean-up removes it and what it held.
    let server = t.state.authorization_server.clone().unwrap();
    let removed = server
        .remove_expired_clients((now as u64 + 2 * 86_400) * 1000)
        .await
        .unwrap();
    assert_eq!(removed, 1);
    let after = t.admin("GET", "/api/oauth-clients", None).await.ok(200);
    assert_eq!(
        after["clients"].as_array().unwrap().len(),
        1,
        "only the pre-registered one"
    );
    let why = oauth_error(
        &refresh(&t, id, tokens["refresh_token"].as_str().unwrap()).await,
        401,
        "invalid_client",
    );
    assert!(why.contains("register again"), "{why}");
}

/// Many token requests at once (what a benchmark at 8 connections found: SQLite refused
/// interleaved read-then-write transactions with "database is locked"): every one is answered,
/// and a code or refresh token raced by two requests is honoured once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_token_requests_are_all_answered_and_races_won_once() {
    use tower::ServiceExt as _;
    for b in [Some(Backend::Sqlite), postgres()].into_iter().flatten() {
        let t = broker(&b, |_| {}).await;
        let client = register_client(&t, json!({})).await;
        let id = client["client_id"].as_str().unwrap().to_string();
        let mut codes = Vec::new();
        for _ in 0..12 {
            codes.push(log_in(&t, &id, REDIRECT).await);
        }
        let token_request = |pairs: Vec<(&str, String)>| {
            let body = url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(pairs)
                .finish();
            Request::post("/oauth/token")
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(Body::from(body))
                .unwrap()
        };
        // Each code twice, all at once: 12 answers 200, 12 answers invalid_grant.
        let mut tasks = tokio::task::JoinSet::new();
        for code in codes.iter().chain(codes.iter()) {
            let request = token_request(vec![
                ("grant_type", "authorization_code".into()),
                ("code", code.clone()),
                ("code_verifier", VERIFIER.into()),
                ("redirect_uri", REDIRECT.into()),
                ("client_id", id.clone()),
            ]);
            let app = t.app.clone();
            tasks.spawn(async move {
                let response = app.oneshot(request).await.unwrap();
                let status = response.status().as_u16();
                let body = axum::body::to_bytes(response.into_body(), 1 << 20)
                    .await
                    .unwrap();
                (status, serde_json::from_slice::<Value>(&body).unwrap())
            });
        }
        let mut answers = Vec::new();
        while let Some(done) = tasks.join_next().await {
            answers.push(done.unwrap());
        }
        // What a failure prints: statuses and error codes, never the tokens.
        let summary: Vec<(u16, &Value)> = answers.iter().map(|(s, v)| (*s, &v["error"])).collect();
        let ok: Vec<&Value> = answers
            .iter()
            .filter(|(s, _)| *s == 200)
            .map(|(_, v)| v)
            .collect();
        assert_eq!(ok.len(), 12, "{summary:?}");
        assert!(
            answers
                .iter()
                .filter(|(s, _)| *s != 200)
                .all(|(s, v)| *s == 400 && v["error"] == "invalid_grant"),
            "{summary:?}"
        );
        // The replays revoked what the winners got (RFC 6749 §4.1.2): refreshing those fails.
        let refresh_all = |families: Vec<String>| {
            let mut tasks = tokio::task::JoinSet::new();
            for refresh in families {
                let request = token_request(vec![
                    ("grant_type", "refresh_token".into()),
                    ("refresh_token", refresh),
                    ("client_id", id.clone()),
                ]);
                let app = t.app.clone();
                tasks.spawn(async move { app.oneshot(request).await.unwrap().status().as_u16() });
            }
            tasks
        };
        let replayed: Vec<String> = ok
            .iter()
            .map(|v| v["refresh_token"].as_str().unwrap().to_string())
            .collect();
        let mut tasks = refresh_all(replayed);
        while let Some(status) = tasks.join_next().await {
            assert_eq!(status.unwrap(), 400);
        }
        // Twelve fresh families, redeemed once, then refreshed all at once: every one rotates.
        let mut fresh = Vec::new();
        for _ in 0..12 {
            let code = log_in(&t, &id, REDIRECT).await;
            let tokens = redeem(&t, &id, &code, REDIRECT).await.ok(200);
            fresh.push(tokens["refresh_token"].as_str().unwrap().to_string());
        }
        let mut tasks = refresh_all(fresh);
        while let Some(status) = tasks.join_next().await {
            assert_eq!(status.unwrap(), 200);
        }
    }
}

/// The `Set-Cookie` named `name=` among an answer's, as a `Cookie` header value.
pub(crate) fn cookie_named(a: &Answer, name: &str) -> Option<String> {
    a.headers
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(str::to_string)
}

async fn get_with(t: &TestApp, uri: &str, cookie: &str) -> Answer {
    t.send(
        Request::get(uri)
            .header(header::COOKIE, cookie)
            .body(Body::empty())
            .unwrap(),
    )
    .await
}

#[tokio::test]
async fn a_signed_in_browser_is_not_asked_again_for_a_client_it_allowed() {
    let t = broker(&Backend::Sqlite, |_| {}).await;
    let first = register_client(&t, json!({})).await;
    let first_id = first["client_id"].as_str().unwrap();
    let page = get(&t, &authorize_uri(first_id, REDIRECT, &[])).await;
    let signed_in = sign_in(&t, &page, "alice", "alice-password").await;
    assert_eq!(signed_in.status.as_u16(), 303, "{}", signed_in.text);
    let set = signed_in
        .headers
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("__Host-portcullis-session="))
        .unwrap_or_else(|| panic!("a session after the sign-in: {:?}", signed_in.headers))
        .to_string();
    // Behind https (this test's issuer): `__Host-` and Secure.
    for attr in [
        "HttpOnly",
        "SameSite=Lax",
        "Path=/",
        "Max-Age=43200",
        "Secure",
    ] {
        assert!(set.contains(attr), "{set}");
    }
    assert!(!set.contains("alice"), "sealed: {set}");
    let session = cookie_named(&signed_in, "__Host-portcullis-session").unwrap();

    // The same client again: the code at once, no page.
    let again = get_with(&t, &authorize_uri(first_id, REDIRECT, &[]), &session).await;
    let back = location(&again);
    let code = query(&back, "code").expect("a code without a page");
    assert_eq!(query(&back, "iss").as_deref(), Some(PUBLIC_URL));
    let tokens = redeem(&t, first_id, &code, REDIRECT).await.ok(200);
    assert_eq!(
        jwt_part(tokens["access_token"].as_str().unwrap(), 1)["sub"],
        "alice"
    );
    // prompt=login asks again.
    let asked = get_with(
        &t,
        &authorize_uri(first_id, REDIRECT, &[("prompt", "login")]),
        &session,
    )
    .await;
    assert_eq!(asked.status.as_u16(), 200);
    assert!(asked.text.contains("type=\"password\""));

    // Another client: the approval is asked, the password is not.
    let second = register_client(&t, json!({"client_name": "Other CLI"})).await;
    let second_id = second["client_id"].as_str().unwrap();
    let page = get_with(&t, &authorize_uri(second_id, REDIRECT, &[]), &session).await;
    assert_eq!(page.status.as_u16(), 200, "{}", page.text);
    assert!(
        page.text.contains("signed in as <strong>alice</strong>"),
        "{}",
        page.text
    );
    assert!(!page.text.contains("type=\"password\""));
    let binding = cookie_named(&page, "__Host-portcullis-login").unwrap();
    let approved = t
        .send(
            Request::post("/oauth/authorize")
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .header(header::COOKIE, format!("{binding}; {session}"))
                .body(Body::from(form_encode(&[
                    ("request", &hidden_request(&page.text)),
                    ("decision", "approve"),
                ])))
                .unwrap(),
        )
        .await;
    assert!(query(&location(&approved), "code").is_some());
    // Without the session, that same form needs the password.
    let page = get(&t, &authorize_uri(second_id, REDIRECT, &[])).await;
    let no_session = login_form(
        &t,
        &page,
        &[
            ("request", &hidden_request(&page.text)),
            ("decision", "approve"),
        ],
    )
    .await;
    assert_eq!(no_session.status.as_u16(), 401, "{}", no_session.text);

    // A forged or foreign session is no session; a deleted person's session opens nothing.
    for forged in [
        "__Host-portcullis-session=AAAA",
        "__Host-portcullis-session=garbage",
    ] {
        let a = get_with(&t, &authorize_uri(first_id, REDIRECT, &[]), forged).await;
        assert_eq!(a.status.as_u16(), 200, "{forged}");
    }
    t.admin("DELETE", "/api/users/alice", None).await;
    let gone = get_with(&t, &authorize_uri(first_id, REDIRECT, &[]), &session).await;
    assert_eq!(gone.status.as_u16(), 200, "a login page again");
}

async fn registrations_wait_for_approval_where_an_administrator_approves_them(b: Backend) {
    let t = broker(&b, |c| c.broker.dcr_approval = true).await;
    let client = register_client(&t, json!({})).await;
    let id = client["client_id"].as_str().unwrap();
    let listed = t.admin("GET", "/api/oauth-clients", None).await.ok(200);
    assert_eq!(listed["clients"][0]["status"], "pending", "{listed}");

    let page = get(&t, &authorize_uri(id, REDIRECT, &[])).await;
    assert_eq!(page.status.as_u16(), 403, "{}", page.text);
    assert!(page.text.contains("waiting for approval"), "{}", page.text);
    assert!(
        page.text.contains(id),
        "names the client for the administrator"
    );
    assert!(page.headers.get(header::LOCATION).is_none());
    assert!(page.headers.get(header::SET_COOKIE).is_none());
    let refused = redeem(&t, id, "some-code", REDIRECT).await;
    assert!(
        oauth_error(&refused, 401, "invalid_client").contains("approval"),
        "{}",
        refused.text
    );

    t.admin(
        "PUT",
        &format!("/api/oauth-clients/{id}/status"),
        Some(json!({"status": "active"})),
    )
    .await
    .ok(204);
    let code = log_in(&t, id, REDIRECT).await;
    let tokens = redeem(&t, id, &code, REDIRECT).await;
    assert_eq!(tokens.status.as_u16(), 200, "{}", tokens.text);
}

/// Group `engineering` (alice's) may do anything on the GitHub server.
async fn open_github_to_engineering(t: &TestApp) {
    t.admin(
        "PUT",
        "/api/scopes/github-all",
        Some(json!({"grants": [{"server": "GitHub", "methods": ["*"]}]})),
    )
    .await
    .ok(201);
    t.admin(
        "PUT",
        "/api/group-mappings/engineering",
        Some(json!({"scopes": ["github-all"]})),
    )
    .await
    .ok(201);
}

/// Runs the snapshot publisher (as `portcullis serve` does) until it has published: the
/// broker learns who may use what from it.
async fn publish(t: &TestApp) {
    t.state.publisher.spawn();
    for _ in 0..100 {
        if t.state.publisher.current().is_some() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("no snapshot published");
}

/// A person whose groups do not open the server signs in, is told on the consent page which
/// group they lack, and goes on if they choose: the login works (the 403s say the same).
#[tokio::test]
async fn a_person_without_the_group_is_told_which_one_at_sign_in() {
    let t = broker(&Backend::Sqlite, |_| {}).await;
    open_github_to_engineering(&t).await;
    t.admin(
        "PUT",
        "/api/users/bob",
        Some(json!({"password": "bob-password", "groups": ["sales"]})),
    )
    .await
    .ok(201);
    publish(&t).await;

    let client = register_client(&t, json!({})).await;
    let id = client["client_id"].as_str().unwrap();
    // Alice has the group: straight back with a code.
    log_in(&t, id, REDIRECT).await;

    let page = get(&t, &authorize_uri(id, REDIRECT, &[])).await;
    let binding = cookie_named(&page, "__Host-portcullis-login").unwrap();
    let told = sign_in(&t, &page, "bob", "bob-password").await;
    assert_eq!(told.status.as_u16(), 200, "{}", told.text);
    assert!(told.headers.get(header::LOCATION).is_none());
    assert!(
        told.text.contains(
            "None of your groups gives access to <code>https://gw.example.com/github/mcp</code>"
        ) && told
            .text
            .contains("one of these groups: <strong>engineering</strong>")
            && told.text.contains("signed in as <strong>bob</strong>")
            && told.text.contains("Continue anyway")
            && !told.text.contains("type=\"password\""),
        "{}",
        told.text
    );
    let session = cookie_named(&told, "__Host-portcullis-session").expect("signed in");
    let went_on = t
        .send(
            Request::post("/oauth/authorize")
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .header(header::COOKIE, format!("{binding}; {session}"))
                .body(Body::from(form_encode(&[
                    ("request", &hidden_request(&told.text)),
                    ("acknowledged", "yes"),
                    ("decision", "approve"),
                ])))
                .unwrap(),
        )
        .await;
    let code = query(&location(&went_on), "code").expect("the login works");
    let tokens = redeem(&t, id, &code, REDIRECT).await.ok(200);
    let claims = jwt_part(tokens["access_token"].as_str().unwrap(), 1);
    assert_eq!(claims["sub"], "bob");
    assert_eq!(claims["groups"], json!(["sales"]));
    // And the filter's answer says the same.
    let policy = policy_of(&t).await;
    let identity = policy
        .verify_jwt(tokens["access_token"].as_str().unwrap(), now())
        .unwrap();
    let server = policy
        .servers
        .iter()
        .position(|s| s.name == "GitHub")
        .unwrap();
    let deny = policy.authorize_server(&identity, server).unwrap_err();
    assert_eq!(deny.allowing_groups, vec!["engineering".to_string()]);

    // Signed in and the client allowed: still told, not sent through silently.
    let again = get_with(&t, &authorize_uri(id, REDIRECT, &[]), &session).await;
    assert_eq!(again.status.as_u16(), 200, "{}", again.text);
    assert!(again.text.contains("None of your groups"), "{}", again.text);
}

/// RFC 7009 for one access token: its client revokes it and the next snapshot refuses it;
/// another client may not; anything that is not a live token of ours changes nothing.
#[tokio::test]
async fn a_client_revokes_one_access_token() {
    let t = broker(&Backend::Sqlite, |_| {}).await;
    open_github_to_engineering(&t).await;
    publish(&t).await;
    let client = register_client(&t, json!({})).await;
    let id = client["client_id"].as_str().unwrap();
    let other = register_client(&t, json!({})).await;
    let other_id = other["client_id"].as_str().unwrap();
    let code = log_in(&t, id, REDIRECT).await;
    let tokens = redeem(&t, id, &code, REDIRECT).await.ok(200);
    let access = tokens["access_token"].as_str().unwrap();
    let revoke = |client: &str, token: &str| {
        let (client, token) = (client.to_string(), token.to_string());
        let t = t.share();
        async move {
            form(
                &t,
                "/oauth/revoke",
                &[("token", &token), ("client_id", &client)],
                None,
            )
            .await
        }
    };

    let refused = revoke(other_id, access).await;
    oauth_error(&refused, 400, "unauthorized_client");
    policy_of(&t)
        .await
        .verify_jwt(access, now())
        .expect("still valid");
    for junk in ["a.b.c", "eyJhbGciOiJFUzI1NiJ9.e30.AAAA"] {
        assert_eq!(revoke(id, junk).await.status.as_u16(), 200);
    }

    let done = revoke(id, access).await;
    assert_eq!(done.status.as_u16(), 200, "{}", done.text);
    assert_eq!(
        policy_of(&t).await.verify_jwt(access, now()).unwrap_err(),
        policy::TokenError::Revoked
    );
    // Once more: already revoked, answered the same.
    assert_eq!(revoke(id, access).await.status.as_u16(), 200);
    // Only that token: the refresh token still works.
    let refreshed = refresh(&t, id, tokens["refresh_token"].as_str().unwrap()).await;
    assert_eq!(refreshed.status.as_u16(), 200, "{}", refreshed.text);
}

/// `PORTCULLIS_USERS_FILE`: its users are in the store at start and sign in; a mistake in the
/// file stops the start with the entry named.
#[tokio::test]
async fn users_from_the_users_file_sign_in() {
    let dir = std::env::temp_dir().join(format!("portcullis-users-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("users.json");
    let hash = portcullis::authz::users::hash_password("carol-password").unwrap();
    std::fs::write(
        &path,
        json!({"users": [{"username": "carol", "password_hash": hash, "groups": ["engineering"]}]})
            .to_string(),
    )
    .unwrap();
    let file = path.clone();
    let t = broker(&Backend::Sqlite, move |c| c.broker.users_file = Some(file)).await;
    let users = t.admin("GET", "/api/users", None).await.ok(200);
    let carol = users["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["username"] == "carol")
        .cloned()
        .unwrap_or_else(|| panic!("{users}"));
    assert_eq!(carol["groups"], json!(["engineering"]));
    assert!(carol.get("password_hash").is_none());

    let client = register_client(&t, json!({})).await;
    let id = client["client_id"].as_str().unwrap();
    let page = get(&t, &authorize_uri(id, REDIRECT, &[])).await;
    let back = location(&sign_in(&t, &page, "carol", "carol-password").await);
    assert!(query(&back, "code").is_some(), "{back}");

    std::fs::write(
        &path,
        r#"{"users": [{"username": "dave", "password": "plain"}]}"#,
    )
    .unwrap();
    let mut config = t.config.clone();
    config.broker.users_file = Some(path.clone());
    let err = portcullis::authz::server::AuthorizationServer::start(&config, t.state.db.clone())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("PORTCULLIS_USERS_FILE") && err.contains("unknown field `password`"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// In broker mode Envoy takes the broker's tokens only: a valid IdP token for the server's
/// URL, which direct mode accepts, is refused as from an unknown issuer (clients go through
/// the broker, so what it disables or revokes stays so). The API still takes IdP tokens.
#[tokio::test]
async fn broker_mode_accepts_only_the_brokers_own_tokens() {
    let idp_token = |groups: &[&str]| {
        let mut spec = portcullis::devtools::TokenSpec::new(ISSUER, RESOURCE, "alice");
        spec.groups = Some(groups.iter().map(ToString::to_string).collect());
        idp_key().sign(&spec.claims())
    };
    let direct = app_with(&Backend::Sqlite, |_| {}).await;
    direct.register("GitHub", "/github", &[]).await;
    let policy = policy_of(&direct).await;
    assert!(policy
        .verify_jwt(&idp_token(&["engineering"]), now())
        .is_ok());

    let t = broker(&Backend::Sqlite, |_| {}).await;
    let policy = policy_of(&t).await;
    let issuers: Vec<&str> = policy.issuers.iter().map(|i| i.issuer.as_str()).collect();
    assert_eq!(issuers, [PUBLIC_URL]);
    assert_eq!(
        policy
            .verify_jwt(&idp_token(&["engineering"]), now())
            .unwrap_err(),
        policy::TokenError::UnknownIssuer
    );
    // The API's own check of IdP tokens is unchanged.
    t.call(
        "GET",
        "/api/servers",
        Some(&token("alice", &["admins"])),
        None,
    )
    .await
    .ok(200);
}
