//! The login at the upstream IdP: after consent, the person goes to the IdP with a fresh
//! single-use `state` (its row holds the checked request, the PKCE verifier and the nonce);
//! `GET /oauth/callback` takes the IdP's code, verifies the ID token, records the person and
//! their groups as the IdP states them, and sends them back to the client with our own code.

use policy::keys::Jwks;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::Row as _;

use super::authorize::{other_browser, same_browser, Pending};
use super::{random_token, server_error, AuthorizationServer, AuthorizeOutcome};
use crate::authz::error::{ErrorCode, OAuthError};
use crate::authz::pages;
use crate::authz::token::TokenHash;
use crate::authz::users::User;

/// How long a login at the IdP may take.
const UPSTREAM_SECONDS: i64 = 600;

/// What the edge fetched for a login at the IdP: its metadata (endpoints) and, for the
/// callback, its signing keys (from the current snapshot).
#[derive(Debug, Clone)]
pub struct UpstreamContext {
    pub metadata: Value,
    pub jwks: Option<Jwks>,
}

/// The IdP's redirect to `/oauth/callback`.
#[derive(Debug, Default, Clone)]
pub struct CallbackParams {
    pub code: Option<String>,
    pub state: Option<String>,
    pub error: Option<String>,
    pub error_description: Option<String>,
}

impl CallbackParams {
    pub fn from_pairs(pairs: impl Iterator<Item = (String, String)>) -> CallbackParams {
        let mut p = CallbackParams::default();
        for (name, value) in pairs {
            let slot = match name.as_str() {
                "code" => &mut p.code,
                "state" => &mut p.state,
                "error" => &mut p.error,
                "error_description" => &mut p.error_description,
                _ => continue,
            };
            // A repeated parameter is ambiguous: keep none.
            if slot.replace(value).is_some() {
                *slot = Some(String::new());
            }
        }
        p
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct LoginRow {
    pending: Pending,
    verifier: String,
    nonce: String,
}

fn page(status: u16, title: &str, detail: &str) -> AuthorizeOutcome {
    AuthorizeOutcome::Page {
        status,
        html: pages::error(title, detail),
    }
}

/// Federated people are kept as users without a password (this hash never verifies).
const NO_PASSWORD: &str = "!federated";

impl AuthorizationServer {
    pub(super) async fn start_upstream_login(
        &self,
        pending: &Pending,
        context: Option<&UpstreamContext>,
        now: i64,
    ) -> AuthorizeOutcome {
        let state_to_client = pending.state.as_deref();
        let fail = |e: OAuthError| self.error_redirect(&pending.redirect_to, state_to_client, &e);
        let (Some(upstream), Some(context)) = (&self.upstream, context) else {
            return fail(OAuthError::new(
                ErrorCode::TemporarilyUnavailable,
                "the IdP's metadata is unavailable; try again shortly",
            ));
        };
        let state = random_token();
        let row = LoginRow {
            pending: pending.clone(),
            verifier: random_token().expose().to_string(),
            nonce: random_token().expose().to_string(),
        };
        let url = match upstream.authorize_url(
            &context.metadata,
            state.expose(),
            &row.verifier,
            &row.nonce,
        ) {
            Ok(u) => u,
            Err(e) => return fail(server_error("the IdP's authorization endpoint", &e)),
        };
        let stored = sqlx::query(
            "INSERT INTO oauth_upstream_logins (state_sha256, login, expires_at) VALUES ($1, $2, $3)",
        )
        .bind(state.hash().to_hex())
        .bind(serde_json::to_string(&row).unwrap_or_default())
        .bind(now + UPSTREAM_SECONDS)
        .execute(self.db.pool())
        .await;
        if let Err(e) = stored {
            return fail(server_error("storing the login", &e));
        }
        // Old rows of logins never finished.
        let _ = sqlx::query("DELETE FROM oauth_upstream_logins WHERE expires_at < $1")
            .bind(now)
            .execute(self.db.pool())
            .await;
        AuthorizeOutcome::Redirect(url)
    }

    /// Takes the login row for `state`, once: a replayed or expired callback finds nothing.
    async fn take_login(&self, state: &str, now: i64) -> Result<Option<LoginRow>, sqlx::Error> {
        let key = TokenHash::of(state).to_hex();
        let row = sqlx::query(
            "SELECT login FROM oauth_upstream_logins WHERE state_sha256 = $1 AND expires_at >= $2",
        )
        .bind(&key)
        .bind(now)
        .fetch_optional(self.db.pool())
        .await?;
        let Some(row) = row else { return Ok(None) };
        let taken = sqlx::query("DELETE FROM oauth_upstream_logins WHERE state_sha256 = $1")
            .bind(&key)
            .execute(self.db.pool())
            .await?;
        if taken.rows_affected() != 1 {
            // Another request took it first.
            return Ok(None);
        }
        let text: String = row.try_get("login")?;
        Ok(serde_json::from_str(&text).ok())
    }

    /// `GET /oauth/callback`. `browser`: the browser-binding cookie (the login must come
    /// back to the browser that consented).
    pub async fn callback(
        &self,
        params: &CallbackParams,
        context: Option<&UpstreamContext>,
        browser: Option<&str>,
        now_ms: u64,
    ) -> AuthorizeOutcome {
        let now = i64::try_from(now_ms / 1000).unwrap_or(i64::MAX);
        let Some(upstream) = &self.upstream else {
            return page(
                404,
                "No sign-in in progress",
                "This server does not log people in at an IdP.",
            );
        };
        let Some(state) = params.state.as_deref().filter(|s| !s.is_empty()) else {
            return page(400, "Sign-in refused", "The IdP's answer has no state.");
        };
        let login = match self.take_login(state, now).await {
            Ok(Some(login)) => login,
            Ok(None) => {
                return page(
                    400,
                    "This sign-in expired or was already used",
                    "Start the login again from the application.",
                )
            }
            Err(e) => {
                server_error("reading the login", &e);
                return page(
                    500,
                    "Sign-in failed",
                    "The authorization server could not read the login.",
                );
            }
        };
        let pending = &login.pending;
        if !same_browser(pending, browser) {
            return other_browser();
        }
        let to_client =
            |e: OAuthError| self.error_redirect(&pending.redirect_to, pending.state.as_deref(), &e);
        if let Some(error) = params.error.as_deref() {
            tracing::info!(
                error,
                description = params.error_description.as_deref().unwrap_or_default(),
                "the IdP refused a login"
            );
            let detail = params.error_description.as_deref().unwrap_or_default();
            return to_client(OAuthError::new(
                ErrorCode::AccessDenied,
                format!("the IdP refused the login: {error} {detail}"),
            ));
        }
        let Some(code) = params.code.as_deref().filter(|c| !c.is_empty()) else {
            return to_client(OAuthError::new(
                ErrorCode::AccessDenied,
                "the IdP's answer has no code",
            ));
        };
        let Some(context) = context else {
            return to_client(OAuthError::new(
                ErrorCode::TemporarilyUnavailable,
                "the IdP's metadata is unavailable; try again shortly",
            ));
        };
        let person = match upstream
            .exchange(&context.metadata, code, &login.verifier)
            .await
            .and_then(|id_token| {
                upstream.verify_id_token(
                    context.jwks.clone(),
                    &id_token,
                    &login.nonce,
                    now_ms / 1000,
                )
            }) {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "login at the IdP failed");
                return to_client(OAuthError::new(ErrorCode::AccessDenied, e.to_string()));
            }
        };
        // The person as the IdP states them now, kept for refreshes (groups as of this login).
        let subject = format!("idp:{}", person.subject);
        let existing = match self.db.get_user(&subject).await {
            Ok(u) => u,
            Err(e) => return to_client(server_error("reading the user", &e)),
        };
        let user = User {
            username: subject.clone(),
            groups: person.groups.clone(),
            display_name: Some(person.username.clone()),
            disabled: existing.as_ref().is_some_and(|(u, _)| u.disabled),
            created_at: existing.as_ref().map_or(now, |(u, _)| u.created_at),
            updated_at: now,
        };
        if user.disabled {
            return to_client(OAuthError::new(
                ErrorCode::AccessDenied,
                "an administrator disabled this account here",
            ));
        }
        if let Err(e) = self.db.put_user(&user, Some(NO_PASSWORD)).await {
            return to_client(server_error("recording the user", &e));
        }
        tracing::info!(client_id = %pending.client_id, user = %subject, groups = ?user.groups, "signed in at the IdP");
        self.signed_in(pending, &subject, now_ms, false).await
    }
}
