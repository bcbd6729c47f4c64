//! The authorization server's endpoints (broker mode) at the edge: parse, call
//! [`AuthorizationServer`], answer. JSON endpoints answer OAuth errors
//! (`{"error", "error_description"}`) with `Cache-Control: no-store`; the login pages are HTML
//! with a strict Content-Security-Policy and `X-Frame-Options: DENY`.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::{json, Value};

use super::state::AppState;
use crate::authz::error::OAuthError;
use crate::authz::pages::CONTENT_SECURITY_POLICY;
use crate::authz::server::{
    AuthorizationServer, AuthorizeOutcome, AuthorizeParams, CallbackParams, ClientAuth, LoginForm,
    RegisterError, TokenParams, UpstreamContext,
};
use crate::storage::{now, now_ms};

fn no_store(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

fn oauth_error(e: &OAuthError) -> Response {
    let status = StatusCode::from_u16(e.token_endpoint_status()).unwrap_or(StatusCode::BAD_REQUEST);
    let mut response = (status, Json(json!(e))).into_response();
    if status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"portcullis\""),
        );
    }
    no_store(response)
}

fn not_broker() -> Response {
    oauth_error(&OAuthError::invalid_request(
        "this control plane is not an authorization server (PORTCULLIS_AUTH_MODE=broker turns it on)",
    ))
    .with_status(StatusCode::NOT_FOUND)
}

trait WithStatus {
    fn with_status(self, status: StatusCode) -> Self;
}

impl WithStatus for Response {
    fn with_status(mut self, status: StatusCode) -> Response {
        *self.status_mut() = status;
        self
    }
}

fn server(state: &AppState) -> Option<Arc<AuthorizationServer>> {
    state.authorization_server.clone()
}

/// The client's address: the last `X-Forwarded-For` entry (what Envoy saw) when there is
/// one, else the peer. Keys the registration and failed-login limits.
fn client_ip(headers: &HeaderMap, peer: Option<SocketAddr>) -> String {
    headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .rfind(|v| !v.is_empty())
        .map(str::to_string)
        .or_else(|| peer.map(|p| p.ip().to_string()))
        .unwrap_or_else(|| "unknown".into())
}

fn peer(request: &Request) -> Option<SocketAddr> {
    request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0)
}

fn page(outcome: AuthorizeOutcome) -> Response {
    match outcome {
        AuthorizeOutcome::Redirect(to) | AuthorizeOutcome::SignedIn { to, .. } => {
            let mut response = StatusCode::SEE_OTHER.into_response();
            if let Ok(value) = HeaderValue::from_str(&to) {
                response.headers_mut().insert(header::LOCATION, value);
            }
            no_store(response)
        }
        AuthorizeOutcome::SignedInPage { html, .. } => {
            page(AuthorizeOutcome::Page { status: 200, html })
        }
        AuthorizeOutcome::Page { status, html } => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
            let mut response = (status, html).into_response();
            let headers = response.headers_mut();
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            );
            headers.insert(
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(CONTENT_SECURITY_POLICY),
            );
            headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
            headers.insert(
                header::REFERRER_POLICY,
                HeaderValue::from_static("no-referrer"),
            );
            no_store(response)
        }
    }
}

/// A form body's pairs: `application/x-www-form-urlencoded` only, each name once except
/// `resource`.
fn form_pairs(headers: &HeaderMap, body: &[u8]) -> Result<Vec<(String, String)>, OAuthError> {
    let form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            v.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if !form {
        return Err(OAuthError::invalid_request(
            "the body must be application/x-www-form-urlencoded",
        ));
    }
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    for (i, (name, _)) in pairs.iter().enumerate() {
        if name != "resource" && pairs[..i].iter().any(|(n, _)| n == name) {
            return Err(OAuthError::invalid_request(format!(
                "{name} is sent more than once"
            )));
        }
    }
    Ok(pairs)
}

fn take(pairs: &[(String, String)], name: &str) -> Option<String> {
    pairs
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.clone())
}

/// `Authorization: Basic` (RFC 6749 §2.3.1: id and secret form-encoded, then base64) and the
/// body's `client_id` / `client_secret`.
fn client_auth(headers: &HeaderMap, pairs: &[(String, String)]) -> Result<ClientAuth, OAuthError> {
    let basic = match headers.get(header::AUTHORIZATION) {
        None => None,
        Some(value) => {
            let bad = || {
                OAuthError::invalid_client(
                    "the Authorization header is not Basic client credentials",
                )
            };
            let text = value.to_str().map_err(|_| bad())?;
            let (scheme, encoded) = text.split_once(' ').ok_or_else(bad)?;
            if !scheme.eq_ignore_ascii_case("basic") {
                return Err(bad());
            }
            let decoded = STANDARD.decode(encoded.trim()).map_err(|_| bad())?;
            let decoded = String::from_utf8(decoded).map_err(|_| bad())?;
            let (id, secret) = decoded.split_once(':').ok_or_else(bad)?;
            let unform = |s: &str| {
                url::form_urlencoded::parse(format!("x={s}").as_bytes())
                    .next()
                    .map(|(_, v)| v.into_owned())
                    .unwrap_or_default()
            };
            Some((unform(id), unform(secret)))
        }
    };
    Ok(ClientAuth {
        basic,
        client_id: take(pairs, "client_id"),
        client_secret: take(pairs, "client_secret"),
    })
}

/// `GET /oauth/jwks`.
pub async fn jwks(State(state): State<AppState>) -> Response {
    match server(&state) {
        Some(s) => {
            let mut response = Json(json!(s.keys().jwks())).into_response();
            response.headers_mut().insert(
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=300"),
            );
            response
        }
        None => not_broker(),
    }
}

/// `POST /oauth/register` (RFC 7591).
pub async fn register(State(state): State<AppState>, request: Request) -> Response {
    let Some(s) = server(&state) else {
        return not_broker();
    };
    let ip = client_ip(request.headers(), peer(&request));
    let Ok(body) = axum::body::to_bytes(request.into_body(), 64 * 1024).await else {
        return oauth_error(&OAuthError::invalid_request(
            "the registration body is larger than 64 KiB",
        ));
    };
    let metadata = match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Object(map)) => map,
        Ok(_) => {
            return oauth_error(&OAuthError::new(
                crate::authz::error::ErrorCode::InvalidClientMetadata,
                "the registration body must be a JSON object",
            ))
        }
        Err(e) => {
            return oauth_error(&OAuthError::new(
                crate::authz::error::ErrorCode::InvalidClientMetadata,
                format!("the registration body is not JSON: {e}"),
            ))
        }
    };
    match s.register(metadata, &ip, now()).await {
        Ok(doc) => no_store((StatusCode::CREATED, Json(doc)).into_response()),
        Err(RegisterError::Invalid(e)) => oauth_error(&e),
        Err(RegisterError::RateLimited(retry)) => {
            let mut response = oauth_error(&OAuthError::invalid_request(
                "too many registrations from this address; retry later",
            ))
            .with_status(StatusCode::TOO_MANY_REQUESTS);
            if let Ok(v) = HeaderValue::from_str(&retry.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, v);
            }
            response
        }
        Err(RegisterError::Disabled) => oauth_error(&OAuthError::invalid_request(
            "dynamic client registration is off (PORTCULLIS_DCR_PER_MINUTE=0)",
        ))
        .with_status(StatusCode::NOT_FOUND),
    }
}

/// The login page's browser binding (ten minutes) and the session after a sign-in.
const BINDING: &str = "portcullis-login";
const SESSION: &str = "portcullis-session";

/// A cookie's name: `__Host-` (Secure, this host only) behind https; plain on an http
/// issuer (loopback installs and tests), where browsers refuse Secure cookies.
fn cookie_name(s: &AuthorizationServer, base: &str) -> String {
    if s.issuer().starts_with("https://") {
        format!("__Host-{base}")
    } else {
        base.to_string()
    }
}

/// `Set-Cookie` for one of ours: `HttpOnly`, `SameSite=Lax` (sent on the person's own form
/// post and on the IdP's redirect back, never on a cross-site post), `Secure` behind https.
fn set_cookie(s: &AuthorizationServer, base: &str, value: &str, max_age: i64) -> String {
    let secure = if s.issuer().starts_with("https://") {
        "; Secure"
    } else {
        ""
    };
    format!(
        "{}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}",
        cookie_name(s, base)
    )
}

/// [`page`], and the session cookie after a sign-in.
fn page_for(s: &AuthorizationServer, outcome: AuthorizeOutcome) -> Response {
    match outcome {
        AuthorizeOutcome::SignedIn { to, session } => {
            with_session(s, page(AuthorizeOutcome::Redirect(to)), &session)
        }
        AuthorizeOutcome::SignedInPage { html, session } => with_session(
            s,
            page(AuthorizeOutcome::Page { status: 200, html }),
            &session,
        ),
        other => page(other),
    }
}

fn with_session(s: &AuthorizationServer, mut response: Response, session: &str) -> Response {
    let set = set_cookie(s, SESSION, session, crate::authz::session::SESSION_SECONDS);
    if let Ok(v) = HeaderValue::from_str(&set) {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
    response
}

/// A cookie's value from the request's `Cookie` headers.
fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.to_string())
}

/// `GET /oauth/authorize`.
pub async fn authorize(State(state): State<AppState>, request: Request) -> Response {
    let Some(s) = server(&state) else {
        return not_broker();
    };
    let query = request.uri().query().unwrap_or_default();
    let pairs = url::form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()));
    match AuthorizeParams::from_pairs(pairs) {
        Ok(params) => {
            // The browser-binding value: a fresh one per page (see `authz::server::authorize`).
            let browser = crate::authz::server::random_token();
            let session = cookie(request.headers(), &cookie_name(&s, SESSION));
            let ip = client_ip(request.headers(), peer(&request));
            let outcome = s
                .authorize(&params, now(), browser.expose(), session.as_deref(), &ip)
                .await;
            let shows_form = matches!(outcome, AuthorizeOutcome::Page { status: 200, .. });
            let mut response = page(outcome);
            if shows_form {
                let set = set_cookie(&s, BINDING, browser.expose(), 600);
                if let Ok(v) = HeaderValue::from_str(&set) {
                    response.headers_mut().append(header::SET_COOKIE, v);
                }
            }
            response
        }
        Err(e) => page(AuthorizeOutcome::Page {
            status: 400,
            html: crate::authz::pages::error("Sign-in request refused", &e),
        }),
    }
}

/// `POST /oauth/authorize`: the login form.
pub async fn login(State(state): State<AppState>, request: Request) -> Response {
    let Some(s) = server(&state) else {
        return not_broker();
    };
    let ip = client_ip(request.headers(), peer(&request));
    let (parts, body) = request.into_parts();
    let body: Bytes = axum::body::to_bytes(body, 16 * 1024)
        .await
        .unwrap_or_default();
    let pairs = match form_pairs(&parts.headers, &body) {
        Ok(p) => p,
        Err(e) => {
            return page(AuthorizeOutcome::Page {
                status: 400,
                html: crate::authz::pages::error("Sign-in refused", &e.error_description),
            })
        }
    };
    let form = LoginForm {
        request: take(&pairs, "request"),
        username: take(&pairs, "username"),
        password: take(&pairs, "password"),
        decision: take(&pairs, "decision"),
        acknowledged: take(&pairs, "acknowledged"),
        browser: cookie(&parts.headers, &cookie_name(&s, BINDING)),
    };
    let session = cookie(&parts.headers, &cookie_name(&s, SESSION));
    let upstream = upstream_context(&state, &s).await;
    page_for(
        &s,
        s.login(
            &form,
            &ip,
            now_ms_u64(),
            upstream.as_ref(),
            session.as_deref(),
        )
        .await,
    )
}

/// The IdP's metadata (cached) and keys (those of the current snapshot) when people log in
/// at an upstream IdP; `None` otherwise, or when the metadata cannot be had (the login then
/// says so).
async fn upstream_context(state: &AppState, s: &AuthorizationServer) -> Option<UpstreamContext> {
    if !s.federated() {
        return None;
    }
    let metadata = match state.idp_metadata.get(state.config.idp.as_ref()).await {
        Ok(m) => m,
        Err(e) => {
            tracing::warn!(error = %e, "the IdP's metadata, for a login there");
            return None;
        }
    };
    let jwks = state.publisher.current().and_then(|p| p.idp_jwks.clone());
    Some(UpstreamContext { metadata, jwks })
}

/// `GET /oauth/callback`: the upstream IdP sends the person back here.
pub async fn callback(State(state): State<AppState>, request: Request) -> Response {
    let Some(s) = server(&state) else {
        return not_broker();
    };
    let query = request.uri().query().unwrap_or_default();
    let params = CallbackParams::from_pairs(
        url::form_urlencoded::parse(query.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned())),
    );
    let upstream = upstream_context(&state, &s).await;
    let browser = cookie(request.headers(), &cookie_name(&s, BINDING));
    page_for(
        &s,
        s.callback(&params, upstream.as_ref(), browser.as_deref(), now_ms_u64())
            .await,
    )
}

fn now_ms_u64() -> u64 {
    u64::try_from(now_ms()).unwrap_or(0)
}

/// `POST /oauth/token`.
pub async fn token(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let Some(s) = server(&state) else {
        return not_broker();
    };
    let result = async {
        let pairs = form_pairs(&headers, &body)?;
        let auth = client_auth(&headers, &pairs)?;
        let params = TokenParams {
            grant_type: take(&pairs, "grant_type"),
            code: take(&pairs, "code"),
            redirect_uri: take(&pairs, "redirect_uri"),
            code_verifier: take(&pairs, "code_verifier"),
            refresh_token: take(&pairs, "refresh_token"),
            client_id: take(&pairs, "client_id"),
            client_secret: take(&pairs, "client_secret"),
            scope: take(&pairs, "scope"),
        };
        let resource: Vec<String> = pairs
            .iter()
            .filter(|(n, _)| n == "resource")
            .map(|(_, v)| v.clone())
            .collect();
        // A refresh for people who log in at an IdP re-reads their groups there.
        let upstream = if params.grant_type.as_deref() == Some("refresh_token") {
            upstream_context(&state, &s).await
        } else {
            None
        };
        s.token(&params, &auth, &resource, now_ms_u64(), upstream.as_ref())
            .await
    }
    .await;
    match result {
        Ok(doc) => no_store(Json(doc).into_response()),
        Err(e) => oauth_error(&e),
    }
}

/// `POST /oauth/revoke` (RFC 7009): 200 whether or not the token was known.
pub async fn revoke(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let Some(s) = server(&state) else {
        return not_broker();
    };
    let result = async {
        let pairs = form_pairs(&headers, &body)?;
        let auth = client_auth(&headers, &pairs)?;
        s.revoke(take(&pairs, "token").as_deref(), &auth, now_ms_u64())
            .await
    }
    .await;
    match result {
        Ok(()) => no_store(StatusCode::OK.into_response()),
        Err(e) => oauth_error(&e),
    }
}
