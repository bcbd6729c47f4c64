//! `/oauth/authorize`: the request is checked (client, redirect URI, PKCE, resource), then
//! the built-in login-and-consent page is shown; its form carries the checked request signed
//! with the form key (no server-side session, nothing to fixate), valid for ten minutes, and
//! bound to the browser that opened it: the edge sets a random value in a `SameSite=Lax`
//! cookie, the signed request holds its hash, and the form (and, in a login at the IdP, the
//! callback) is refused from any other browser, so a page elsewhere cannot post a consent.
//!
//! Before the redirect URI is known to be the client's, every error is a page of ours (never
//! a redirect: RFC 6749 §4.1.2.1); after it, errors go back to the client with `state` and
//! `iss` (RFC 9207).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq as _;

use super::{loopback_only, random_token, server_error, AuthorizationServer};
use crate::authz::cimd;
use crate::authz::clients::RegistrationType;
use crate::authz::error::{ErrorCode, OAuthError};
use crate::authz::grant::{CodeRequest, Grant, Timestamp};
use crate::authz::pages::{self, LoginPage};
use crate::authz::pkce;
use crate::authz::redirect::{self, RedirectUri};
use crate::authz::resource;
use crate::authz::store::Start;
use crate::authz::token::{hmac_sha256, TokenHash};
use crate::authz::users::{valid_username, verify_password};

/// How long a login page may be submitted after it was shown.
const FORM_SECONDS: i64 = 600;

/// The query of `GET /oauth/authorize`, each parameter at most once (`resource` may repeat).
#[derive(Debug, Default, Clone)]
pub struct AuthorizeParams {
    pub response_type: Option<String>,
    pub client_id: Option<String>,
    pub redirect_uri: Option<String>,
    pub code_challenge: Option<String>,
    pub code_challenge_method: Option<String>,
    pub state: Option<String>,
    pub scope: Option<String>,
    pub resource: Vec<String>,
    /// OIDC `prompt`: `login` or `consent` show the page even in a signed-in browser.
    pub prompt: Option<String>,
}

impl AuthorizeParams {
    /// From the query's pairs; a repeated parameter is an error (RFC 6749 §3.1).
    pub fn from_pairs(pairs: impl Iterator<Item = (String, String)>) -> Result<Self, String> {
        let mut p = AuthorizeParams::default();
        for (name, value) in pairs {
            let slot = match name.as_str() {
                "response_type" => &mut p.response_type,
                "client_id" => &mut p.client_id,
                "redirect_uri" => &mut p.redirect_uri,
                "code_challenge" => &mut p.code_challenge,
                "code_challenge_method" => &mut p.code_challenge_method,
                "state" => &mut p.state,
                "scope" => &mut p.scope,
                "prompt" => &mut p.prompt,
                "resource" => {
                    p.resource.push(value);
                    continue;
                }
                _ => continue,
            };
            if slot.replace(value).is_some() {
                return Err(format!("{name} is sent more than once"));
            }
        }
        Ok(p)
    }
}

/// The login form as posted.
#[derive(Debug, Default, Deserialize)]
pub struct LoginForm {
    pub request: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub decision: Option<String>,
    /// `yes` when the page told the person their groups do not open the server.
    pub acknowledged: Option<String>,
    /// The browser-binding cookie's value (not a form field).
    #[serde(skip)]
    pub browser: Option<String>,
}

/// What a login page shows besides the request.
#[derive(Default)]
struct Shown<'a> {
    /// Why the last attempt failed.
    error: Option<&'a str>,
    /// The username typed last time.
    username: &'a str,
    /// The browser's session names this person: no password asked.
    signed_in_as: Option<&'a str>,
    /// Their groups do not open the server; these would.
    lacking_groups: Option<&'a [String]>,
}

/// What the edge sends back.
#[derive(Debug)]
pub enum AuthorizeOutcome {
    /// An HTML page with this status.
    Page { status: u16, html: String },
    /// 303 to this URL (the client's redirect URI with the result).
    Redirect(String),
    /// 303 to this URL after a sign-in, setting this session cookie value.
    SignedIn { to: String, session: String },
    /// A page after a sign-in (the person lacks the groups for the server and is told so
    /// before going on), setting this session cookie value.
    SignedInPage { html: String, session: String },
}

/// The checked request, carried by the login form (and, during a login at the upstream IdP,
/// by its row).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Pending {
    pub(super) client_id: String,
    /// The URI the person goes back to.
    pub(super) redirect_to: String,
    /// `redirect_uri` as sent (`/token` compares it).
    redirect_param: Option<String>,
    challenge: pkce::CodeChallenge,
    pub(super) state: Option<String>,
    scopes: Vec<String>,
    audience: String,
    expires: i64,
    /// SHA-256 of the browser-binding cookie set with the page.
    browser: String,
}

/// Whether `cookie` is the value whose hash the request holds.
pub(super) fn same_browser(pending: &Pending, cookie: Option<&str>) -> bool {
    cookie.is_some_and(|c| {
        bool::from(
            TokenHash::of(c)
                .to_hex()
                .as_bytes()
                .ct_eq(pending.browser.as_bytes()),
        )
    })
}

/// The answer to a form or callback from another browser than the one the page was shown in.
pub(super) fn other_browser() -> AuthorizeOutcome {
    page(
        403,
        "This sign-in was started elsewhere",
        "The sign-in page was opened in another browser (or its cookie was blocked). Start the \
         login again from the application, in this browser.",
    )
}

fn page(status: u16, title: &str, detail: &str) -> AuthorizeOutcome {
    AuthorizeOutcome::Page {
        status,
        html: pages::error(title, detail),
    }
}

fn with_params(base: &str, params: &[(&str, &str)]) -> String {
    let mut url = base.to_string();
    let mut sep = if url.contains('?') { '&' } else { '?' };
    for (name, value) in params {
        url.push(sep);
        url.push_str(name);
        url.push('=');
        url.extend(url::form_urlencoded::byte_serialize(value.as_bytes()));
        sep = '&';
    }
    url
}

impl AuthorizationServer {
    pub(super) fn error_redirect(
        &self,
        to: &str,
        state: Option<&str>,
        e: &OAuthError,
    ) -> AuthorizeOutcome {
        let mut params = vec![
            ("error", e.error.as_str()),
            ("error_description", e.error_description.as_ref()),
        ];
        if let Some(state) = state {
            params.push(("state", state));
        }
        params.push(("iss", self.issuer.as_str()));
        AuthorizeOutcome::Redirect(with_params(to, &params))
    }

    fn sign_form(&self, pending: &Pending) -> String {
        let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(pending).unwrap_or_default());
        let mac = hmac_sha256(&self.secret.form_key(), body.as_bytes());
        format!("{body}.{}", URL_SAFE_NO_PAD.encode(mac))
    }

    fn open_form(&self, signed: &str, now: i64) -> Option<Pending> {
        let (body, mac) = signed.split_once('.')?;
        let expected = hmac_sha256(&self.secret.form_key(), body.as_bytes());
        let mac = URL_SAFE_NO_PAD.decode(mac).ok()?;
        if !bool::from(mac.as_slice().ct_eq(&expected)) {
            return None;
        }
        let pending: Pending = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(body).ok()?).ok()?;
        (now < pending.expires).then_some(pending)
    }

    /// `GET /oauth/authorize`.
    /// `browser`: the browser-binding value the edge sets as a cookie with the page.
    /// `session`: the session cookie, when the browser has one.
    pub async fn authorize(
        &self,
        params: &AuthorizeParams,
        now: i64,
        browser: &str,
        session: Option<&str>,
        ip: &str,
    ) -> AuthorizeOutcome {
        let Some(client_id) = params.client_id.as_deref().filter(|c| !c.is_empty()) else {
            return page(
                400,
                "Sign-in request is incomplete",
                "client_id is missing.",
            );
        };
        let found = if cimd::is_document_url(client_id) {
            match self.document_client(client_id, ip, now).await {
                Ok(found) => Ok(found),
                Err(page) => return page,
            }
        } else {
            self.db.get_oauth_client(client_id).await
        };
        let client =
            match found {
                Ok(Some(c)) if c.is_active(now) => c,
                Ok(Some(c)) if c.status == "disabled" => {
                    return page(
                        403,
                        "Application disabled",
                        "An administrator disabled this application.",
                    )
                }
                Ok(Some(c)) if c.status == "pending" => {
                    return page(
                        403,
                        "Application waiting for approval",
                        &format!(
                            "An administrator approves new applications here, and has not \
                             approved this one yet. Ask them to approve client {} \
                             (PUT /api/oauth-clients/{{client_id}}/status with \
                             {{\"status\": \"active\"}}), then start the login again.",
                            c.client_id
                        ),
                    )
                }
                Ok(_) => return page(
                    400,
                    "Unknown application",
                    "This application is not registered here (or its registration was removed). \
                     It should register again.",
                ),
                Err(e) => {
                    server_error("reading the client", &e);
                    return page(
                        500,
                        "Sign-in failed",
                        "The authorization server could not read its clients.",
                    );
                }
            };
        let registered: Vec<RedirectUri> = client
            .redirect_uris
            .iter()
            .filter_map(|u| redirect::validate_registered(u).ok())
            .collect();
        let redirect_to = match redirect::resolve(params.redirect_uri.as_deref(), &registered) {
            Ok(r) => r.to_string(),
            Err(e) => return page(400, "Sign-in request refused", &e.error_description),
        };
        let state = params.state.as_deref();
        let fail = |e: OAuthError| self.error_redirect(&redirect_to, state, &e);
        match params.response_type.as_deref() {
            Some("code") => {}
            Some(other) => {
                return fail(OAuthError::new(
                    ErrorCode::InvalidRequest,
                    format!("response_type {other:?} is not supported (only code)"),
                ))
            }
            None => return fail(OAuthError::invalid_request("response_type is required")),
        }
        let challenge = match pkce::validate_challenge(
            params.code_challenge.as_deref(),
            params.code_challenge_method.as_deref(),
        ) {
            Ok(c) => c,
            Err(e) => return fail(e),
        };
        let servers = match self.db.list_servers().await {
            Ok(s) => s,
            Err(e) => return fail(server_error("reading the registry", &e)),
        };
        let known: Vec<String> = servers.iter().map(|s| s.mcp_url(&self.issuer)).collect();
        let requested: Vec<&str> = params.resource.iter().map(String::as_str).collect();
        let audience = match resource::resolve_audience(&requested, &known) {
            Ok(a) => a.to_string(),
            Err(e) => return fail(e),
        };
        let scopes: Vec<String> = params
            .scope
            .as_deref()
            .unwrap_or_default()
            .split(' ')
            .filter(|s| !s.is_empty() && self.advertised_scopes.iter().any(|a| a == s))
            .map(str::to_string)
            .collect();
        let pending = Pending {
            client_id: client.client_id.clone(),
            redirect_to: redirect_to.clone(),
            redirect_param: params.redirect_uri.clone(),
            challenge,
            state: params.state.clone(),
            scopes,
            audience,
            expires: now + FORM_SECONDS,
            browser: TokenHash::of(browser).to_hex(),
        };
        let asks_again = params
            .prompt
            .as_deref()
            .unwrap_or_default()
            .split(' ')
            .any(|p| p == "login" || p == "consent");
        let signed_in = match asks_again {
            true => None,
            false => self.session_user(session, now).await,
        };
        let mut lacking = None;
        if let Some(user) = &signed_in {
            lacking = self.user_lacks(&pending, user).await;
            // Signed in here before and this client allowed: the code, no page (unless the
            // person must first hear that their groups do not open the server).
            if lacking.is_none()
                && self
                    .db
                    .has_consent(user, &client.client_id)
                    .await
                    .unwrap_or(false)
            {
                let now_ms = u64::try_from(now).unwrap_or(0).saturating_mul(1000);
                return self.issue_code(&pending, user, now_ms).await;
            }
        }
        let shown = Shown {
            signed_in_as: signed_in.as_deref(),
            lacking_groups: lacking.as_deref(),
            ..Shown::default()
        };
        self.login_page(&pending, &client, 200, &shown)
    }

    /// The person a live session cookie names, if they still exist and are not disabled.
    pub(super) async fn session_user(&self, cookie: Option<&str>, now: i64) -> Option<String> {
        let user = crate::authz::session::open_session(&self.secret, cookie?, now)?;
        match self.db.get_user(&user).await {
            Ok(Some((u, _))) if !u.disabled => Some(user),
            _ => None,
        }
    }

    /// The groups that would open the request's server when `user`'s do not.
    async fn user_lacks(&self, pending: &Pending, user: &str) -> Option<Vec<String>> {
        let groups = match self.db.get_user(user).await {
            Ok(Some((u, _))) => u.groups,
            _ => return None,
        };
        self.lacking_groups(&pending.audience, &groups)
    }

    /// A code after a sign-in: the approval is remembered and the browser gets a session.
    /// A person whose groups do not open the server is told so first, on the consent page
    /// (`acknowledged` once they read it and went on): the login works, the calls would not.
    pub(super) async fn signed_in(
        &self,
        pending: &Pending,
        user: &str,
        now_ms: u64,
        acknowledged: bool,
    ) -> AuthorizeOutcome {
        let now = i64::try_from(now_ms / 1000).unwrap_or(i64::MAX);
        if !acknowledged {
            if let Some(lacking) = self.user_lacks(pending, user).await {
                tracing::info!(client_id = %pending.client_id, user, audience = %pending.audience, "signed in without a group that opens the server: told so");
                let session = crate::authz::session::seal_session(&self.secret, user, now);
                let Ok(Some(client)) = self.db.get_oauth_client(&pending.client_id).await else {
                    return self.issue_code(pending, user, now_ms).await;
                };
                let shown = Shown {
                    signed_in_as: Some(user),
                    lacking_groups: Some(&lacking),
                    ..Shown::default()
                };
                return match self.login_page(pending, &client, 200, &shown) {
                    AuthorizeOutcome::Page { html, .. } => {
                        AuthorizeOutcome::SignedInPage { html, session }
                    }
                    other => other,
                };
            }
        }
        if let Err(e) = self.db.record_consent(user, &pending.client_id, now).await {
            tracing::warn!(error = %e, "remembering an approval (the person will be asked again)");
        }
        match self.issue_code(pending, user, now_ms).await {
            AuthorizeOutcome::Redirect(to) => AuthorizeOutcome::SignedIn {
                to,
                session: crate::authz::session::seal_session(&self.secret, user, now),
            },
            other => other,
        }
    }

    fn login_page(
        &self,
        pending: &Pending,
        client: &crate::authz::clients::Client,
        status: u16,
        shown: &Shown<'_>,
    ) -> AuthorizeOutcome {
        let host = url::Url::parse(&pending.redirect_to)
            .ok()
            .and_then(|u| u.host_str().map(str::to_string))
            .unwrap_or_else(|| pending.redirect_to.clone());
        let upstream = self.upstream.as_ref().map(|u| {
            url::Url::parse(&u.idp.issuer)
                .ok()
                .and_then(|i| i.host_str().map(str::to_string))
                .unwrap_or_else(|| u.idp.issuer.clone())
        });
        // A metadata-document client is who its URL's host says: that is what the person
        // trusts, not the name the document gives itself.
        let published_by = (client.registration_type == RegistrationType::Cimd)
            .then(|| url::Url::parse(&client.client_id).ok())
            .flatten()
            .and_then(|u| u.host_str().map(str::to_string));
        AuthorizeOutcome::Page {
            status,
            html: pages::login(&LoginPage {
                published_by: published_by.as_deref(),
                client_name: &client_name(client),
                client_id: &pending.client_id,
                redirect_host: &host,
                loopback_only: loopback_only(client),
                server: &pending.audience,
                scopes: &pending.scopes,
                request: &self.sign_form(pending),
                error: shown.error,
                username: shown.username,
                upstream: upstream.as_deref(),
                signed_in_as: shown.signed_in_as,
                lacking_groups: shown.lacking_groups,
            }),
        }
    }

    /// `POST /oauth/authorize`: the login form. `ip` keys the failed-login limit; `upstream`
    /// is the IdP's metadata and keys when people log in there ([`Self::federated`]).
    pub async fn login(
        &self,
        form: &LoginForm,
        ip: &str,
        now_ms: u64,
        upstream: Option<&super::UpstreamContext>,
        session: Option<&str>,
    ) -> AuthorizeOutcome {
        let now = i64::try_from(now_ms / 1000).unwrap_or(i64::MAX);
        let Some(pending) = form.request.as_deref().and_then(|r| self.open_form(r, now)) else {
            return page(
                400,
                "This sign-in page expired",
                "The form was too old or altered. Start the login again from the application.",
            );
        };
        if !same_browser(&pending, form.browser.as_deref()) {
            return other_browser();
        }
        let state = pending.state.as_deref();
        let client = match self.db.get_oauth_client(&pending.client_id).await {
            Ok(Some(c)) if c.is_active(now) => c,
            Ok(_) => {
                return self.error_redirect(
                    &pending.redirect_to,
                    state,
                    &OAuthError::new(
                        ErrorCode::UnauthorizedClient,
                        "the client was removed or disabled",
                    ),
                )
            }
            Err(e) => {
                return self.error_redirect(
                    &pending.redirect_to,
                    state,
                    &server_error("reading the client", &e),
                )
            }
        };
        if form.decision.as_deref() != Some("approve") {
            return self.error_redirect(
                &pending.redirect_to,
                state,
                &OAuthError::new(ErrorCode::AccessDenied, "the person denied the request"),
            );
        }
        let acknowledged = form.acknowledged.as_deref() == Some("yes");
        // Signed in already (the page asked for no password): the approval is all it takes.
        if form.password.as_deref().unwrap_or_default().is_empty() {
            if let Some(user) = self.session_user(session, now).await {
                return self.signed_in(&pending, &user, now_ms, acknowledged).await;
            }
        }
        if self.upstream.is_some() {
            // Consent given: only now does anything go to the IdP (a fresh `state`).
            return self.start_upstream_login(&pending, upstream, now).await;
        }
        let username = form.username.as_deref().unwrap_or_default().trim();
        let password = form.password.as_deref().unwrap_or_default();
        let retry = |status, error: &str| {
            let shown = Shown {
                error: Some(error),
                username,
                ..Shown::default()
            };
            self.login_page(&pending, &client, status, &shown)
        };
        let user_key = format!("user:{username}");
        let ip_key = format!("ip:{ip}");
        if let Some(wait) = self
            .login_limit
            .blocked(&ip_key, now)
            .or_else(|| self.login_limit.blocked(&user_key, now))
        {
            return retry(
                429,
                &format!("Too many failed sign-ins. Try again in {wait} seconds."),
            );
        }
        let user = if valid_username(username) {
            match self.db.get_user(username).await {
                Ok(u) => u,
                Err(e) => {
                    server_error("reading the user", &e);
                    return retry(500, "Sign-in failed on our side. Try again.");
                }
            }
        } else {
            None
        };
        let hash = user.as_ref().map(|(_, h)| h.clone());
        // argon2 is deliberately slow: off the async workers.
        let password = password.to_string();
        let ok = tokio::task::spawn_blocking(move || verify_password(hash.as_deref(), &password))
            .await
            .unwrap_or(false);
        let user = match user {
            Some((user, _)) if ok => user,
            _ => {
                let _ = self.login_limit.hit(&ip_key, now);
                let _ = self.login_limit.hit(&user_key, now);
                tracing::info!(client_id = %client.client_id, "failed sign-in");
                return retry(401, "Wrong username or password.");
            }
        };
        if user.disabled {
            return retry(403, "This account is disabled.");
        }
        tracing::info!(client_id = %client.client_id, user = %user.username, "signed in");
        self.signed_in(&pending, &user.username, now_ms, false)
            .await
    }

    /// The person is known: a single-use code back to the client, with `state` and `iss`.
    pub(super) async fn issue_code(
        &self,
        pending: &Pending,
        subject: &str,
        now_ms: u64,
    ) -> AuthorizeOutcome {
        let state = pending.state.as_deref();
        let code = random_token();
        let request = CodeRequest {
            grant: Grant {
                client_id: pending.client_id.clone(),
                subject: subject.to_string(),
                audience: pending.audience.clone(),
                scopes: pending.scopes.clone(),
            },
            redirect_uri: pending.redirect_param.clone(),
            challenge: pending.challenge.clone(),
        };
        let stored = self
            .db
            .with_grants(self.grants, Start::Empty, |g| {
                g.issue_code(&code, request.clone(), Timestamp(now_ms))
            })
            .await;
        match stored {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return self.error_redirect(&pending.redirect_to, state, &e),
            Err(e) => {
                return self.error_redirect(
                    &pending.redirect_to,
                    state,
                    &server_error("storing the code", &e),
                )
            }
        }
        let mut params = vec![("code", code.expose())];
        if let Some(state) = state {
            params.push(("state", state));
        }
        params.push(("iss", self.issuer.as_str()));
        AuthorizeOutcome::Redirect(with_params(&pending.redirect_to, &params))
    }
}

fn client_name(client: &crate::authz::clients::Client) -> String {
    client
        .client_name
        .clone()
        .unwrap_or_else(|| "An application".to_string())
}
