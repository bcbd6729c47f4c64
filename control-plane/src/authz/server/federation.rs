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
        let (person, upstream_refresh) = match upstream
            .exchange(&context.metadata, code, &login.verifier)
            .await
            .and_then(|tokens| {
                let person = upstream.verify_id_token(
                    context.jwks.clone(),
                    &tokens.id_token,
                    Some(&login.nonce),
                    now_ms / 1000,
                )?;
                Ok((person, tokens.refresh_token))
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
        if let Err(e) = self
            .keep_upstream_refresh(&subject, upstream_refresh.as_deref(), now)
            .await
        {
            return to_client(server_error("keeping the IdP's refresh token", &e));
        }
        tracing::info!(client_id = %pending.client_id, user = %subject, groups = ?user.groups, "signed in at the IdP");
        self.signed_in(pending, &subject, now_ms, false).await
    }

    /// Keeps the IdP's refresh token of `user`'s latest login there, sealed; `None` (the IdP
    /// gave none) forgets an older one.
    async fn keep_upstream_refresh(
        &self,
        user: &str,
        refresh: Option<&str>,
        now: i64,
    ) -> Result<(), sqlx::Error> {
        let Some(refresh) = refresh else {
            sqlx::query("DELETE FROM oauth_upstream_tokens WHERE username = $1")
                .bind(user)
                .execute(self.db.pool())
                .await?;
            return Ok(());
        };
        let mut nonce = [0u8; 12];
        rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut nonce);
        let sealed = self
            .secret
            .seal(&upstream_label(user), refresh.as_bytes(), nonce);
        sqlx::query(
            "INSERT INTO oauth_upstream_tokens (username, refresh_sealed, updated_at) \
             VALUES ($1, $2, $3) ON CONFLICT (username) DO UPDATE SET \
             refresh_sealed = excluded.refresh_sealed, updated_at = excluded.updated_at",
        )
        .bind(user)
        .bind(sealed)
        .bind(now)
        .execute(self.db.pool())
        .await?;
        Ok(())
    }

    async fn upstream_refresh_token(&self, user: &str) -> Result<Option<String>, sqlx::Error> {
        let row =
            sqlx::query("SELECT refresh_sealed FROM oauth_upstream_tokens WHERE username = $1")
                .bind(user)
                .fetch_optional(self.db.pool())
                .await?;
        let Some(row) = row else { return Ok(None) };
        let sealed: String = row.try_get("refresh_sealed")?;
        Ok(self
            .secret
            .open(&upstream_label(user), &sealed)
            .ok()
            .and_then(|plain| String::from_utf8(plain).ok()))
    }

    /// A refresh here for a person who logged in at the IdP: refresh there too and take their
    /// groups from the new ID token, so a group removed at the IdP stops working within one
    /// access-token lifetime. The IdP refusing the refresh (`invalid_grant`: their session
    /// there ended, or they were removed) refuses this one. The IdP unreachable, or answering
    /// anything else: the groups stay as they were (logged), so an IdP outage does not end
    /// every session. Without a refresh token of the IdP's, groups are those of the last login.
    pub(super) async fn reread_upstream_groups(
        &self,
        subject: &str,
        context: Option<&UpstreamContext>,
        now_ms: u64,
    ) -> Result<(), OAuthError> {
        let (Some(upstream), Some(idp_sub)) = (&self.upstream, subject.strip_prefix("idp:")) else {
            return Ok(());
        };
        let now = i64::try_from(now_ms / 1000).unwrap_or(i64::MAX);
        let refresh = self
            .upstream_refresh_token(subject)
            .await
            .map_err(|e| server_error("reading the IdP's refresh token", &e))?;
        let Some(refresh) = refresh else {
            return Ok(());
        };
        let Some(context) = context else {
            tracing::warn!(
                user = subject,
                "the IdP's metadata is unavailable: groups as of the last check"
            );
            return Ok(());
        };
        let tokens = match upstream.refresh(&context.metadata, &refresh).await {
            Ok(t) => t,
            Err(super::super::upstream::UpstreamError::Refused { error, description })
                if error == "invalid_grant" =>
            {
                tracing::info!(
                    user = subject,
                    description = description.as_deref().unwrap_or_default(),
                    "the IdP refused to refresh: the person must log in again"
                );
                self.keep_upstream_refresh(subject, None, now)
                    .await
                    .map_err(|e| server_error("forgetting the IdP's refresh token", &e))?;
                return Err(OAuthError::invalid_grant(
                    "the IdP ended this person's session there: log in again",
                ));
            }
            Err(e) => {
                tracing::warn!(user = subject, error = %e, "refreshing at the IdP failed: groups as of the last check");
                return Ok(());
            }
        };
        let person = match upstream.verify_id_token(
            context.jwks.clone(),
            &tokens.id_token,
            None,
            now_ms / 1000,
        ) {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(user = subject, error = %e, "the IdP's refreshed ID token was refused: groups as of the last check");
                return Ok(());
            }
        };
        if person.subject != idp_sub {
            return Err(OAuthError::invalid_grant(
                "the IdP's refreshed ID token is for someone else: log in again",
            ));
        }
        let existing = self
            .db
            .get_user(subject)
            .await
            .map_err(|e| server_error("reading the user", &e))?;
        let Some((mut user, hash)) = existing else {
            return Ok(());
        };
        if user.groups != person.groups {
            tracing::info!(user = subject, before = ?user.groups, now = ?person.groups, "groups changed at the IdP");
        }
        user.groups = person.groups;
        user.updated_at = now;
        self.db
            .put_user(&user, Some(&hash))
            .await
            .map_err(|e| server_error("recording the user", &e))?;
        // Rotating IdPs give a new refresh token: keep it; others keep the old one valid.
        if let Some(newer) = tokens.refresh_token.as_deref() {
            self.keep_upstream_refresh(subject, Some(newer), now)
                .await
                .map_err(|e| server_error("keeping the IdP's refresh token", &e))?;
        }
        Ok(())
    }
}

/// What a sealed IdP refresh token is bound to (it opens for this person's row only).
fn upstream_label(user: &str) -> String {
    format!("upstream-refresh:{user}")
}
