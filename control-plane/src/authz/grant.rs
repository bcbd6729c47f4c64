//! Authorization codes and refresh-token families as a state machine over an in-memory
//! struct ([`Grants`]) holding as many records as an operation needs; `authz::store` loads
//! them, runs the operation and writes back what changed (`grant/records.rs`). No clock, no randomness:
//! `now`, fresh tokens and ids come in as arguments, and every change that must reach outside
//! (revoking a family's access tokens, in the snapshot) comes back as an [`Effect`].
//!
//! Codes ([`Grants::issue_code`], [`Grants::redeem_code`]):
//! - kept by hash, live [`GrantPolicy::code_ttl`] (60 s), single use: the first presentation
//!   consumes the code whatever its outcome (as Keycloak does), so a wrong verifier or another
//!   client's attempt burns it;
//! - checked in this order: client standing (`invalid_client`), code known, not used before,
//!   issued to this client, not expired, same `redirect_uri` as at `/authorize`, PKCE, resource
//!   (all `invalid_grant` except PKCE's `invalid_request` for a malformed verifier and
//!   `invalid_target`);
//! - a second presentation is `invalid_grant` and revokes the family the code issued
//!   ([`Effect::RevokeFamily`], RFC 6749 §4.1.2); so redeemed codes must be kept as long as
//!   their family lives, not just for the code's 60 s.
//!
//! Refresh tokens ([`Grants::refresh`], in `grant/refresh.rs`): rotate on every use; reuse of
//! a rotated token within [`GrantPolicy::refresh_grace`] (5 s) returns the same new pair,
//! after it (or once the pair moved on) revokes the family.
//!
//! Clients: a client that is unknown (deleted, expired) or disabled gets `invalid_client`
//! before any token is looked at ([`ClientStanding`]); deleting one also revokes its families
//! and unused codes ([`Grants::revoke_client`]) so a client id that comes back (a CIMD URL) does
//! not bring old tokens back.

use std::collections::HashMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::error::OAuthError;
use super::pkce::{self, CodeChallenge};
use super::resource;
use super::token::{SecretToken, TokenHash};

pub mod records;
mod refresh;
mod revoke;
pub use records::{RecordKind, StoredRecord};
pub use refresh::RefreshRequest;

/// Milliseconds since the Unix epoch; the caller reads the clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Timestamp(pub u64);

impl Timestamp {
    pub fn plus(self, d: Duration) -> Timestamp {
        let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        Timestamp(self.0.saturating_add(ms))
    }
}

/// Lifetimes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GrantPolicy {
    /// How long a code may be redeemed (default 60 s).
    pub code_ttl: Duration,
    /// How long after a rotation the rotated refresh token still gets the same new pair
    /// (default 5 s).
    pub refresh_grace: Duration,
    /// How long an unused refresh token lives; each rotation starts it again (default 30 days).
    pub refresh_ttl: Duration,
}

impl Default for GrantPolicy {
    fn default() -> GrantPolicy {
        GrantPolicy {
            code_ttl: Duration::from_secs(60),
            refresh_grace: Duration::from_secs(5),
            refresh_ttl: Duration::from_secs(30 * 24 * 3600),
        }
    }
}

/// The client as the caller found it when it authenticated the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientStanding {
    Active,
    Disabled,
    /// Registered by DCR where an administrator approves registrations, not approved yet.
    Pending,
    /// Deleted, expired, or never registered: the client should register again.
    Unknown,
}

impl ClientStanding {
    fn check(self) -> Result<(), OAuthError> {
        match self {
            ClientStanding::Active => Ok(()),
            ClientStanding::Disabled => Err(OAuthError::invalid_client("client is disabled")),
            ClientStanding::Pending => Err(OAuthError::invalid_client(
                "client is waiting for an administrator's approval",
            )),
            ClientStanding::Unknown => {
                Err(OAuthError::invalid_client("unknown client: register again"))
            }
        }
    }
}

/// A family: every token issued from one code, through all its rotations.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct FamilyId(pub String);

/// An access token as issued: its `jti` and expiry (the caller signs it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessGrant {
    pub id: String,
    pub expires_at: Timestamp,
}

/// What the tokens of a family say.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    pub client_id: String,
    /// The person (the broker's user id).
    pub subject: String,
    /// The token audience: one MCP server's URL ([`resource::resolve_audience`]).
    pub audience: String,
    pub scopes: Vec<String>,
}

/// What `/authorize` records with a code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CodeRequest {
    pub grant: Grant,
    /// The `redirect_uri` parameter as sent (`None` when omitted), compared at `/token`.
    pub redirect_uri: Option<String>,
    pub challenge: CodeChallenge,
}

/// A `/token` request with `grant_type=authorization_code`.
#[derive(Debug, Clone)]
pub struct CodeRedemption<'a> {
    pub code: &'a SecretToken,
    pub client_id: &'a str,
    pub client: ClientStanding,
    pub redirect_uri: Option<&'a str>,
    pub code_verifier: Option<&'a str>,
    pub resource: &'a [&'a str],
}

/// Fresh values for a new family, drawn by the caller before redeeming.
#[derive(Debug, Clone)]
pub struct NewFamily {
    pub id: FamilyId,
    /// `None` when the client gets no refresh token.
    pub refresh: Option<SecretToken>,
    pub access: AccessGrant,
}

/// Tokens to send: mint the access token from `grant` and `access`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issued {
    pub family: FamilyId,
    pub grant: Grant,
    pub refresh: Option<SecretToken>,
    pub access: AccessGrant,
    /// A refresh retried within the grace window: the same pair as before.
    pub repeated: bool,
}

/// Why a family was revoked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RevokeReason {
    CodeReplayed,
    RefreshReused,
    /// A refresh token came from a client it was not issued to.
    WrongClient,
    ClientRemoved,
    /// Revoked on request (RFC 7009, an operator).
    Requested,
}

/// A change the caller must carry out beyond this struct.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Persist the revocation and deny the family's access tokens that have not expired yet
    /// (their ids) until they do.
    RevokeFamily {
        family: FamilyId,
        reason: RevokeReason,
        access_tokens: Vec<String>,
    },
}

/// A refused request: the error to answer and what to do besides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub error: OAuthError,
    pub effects: Vec<Effect>,
}

impl From<OAuthError> for Refusal {
    fn from(error: OAuthError) -> Refusal {
        Refusal {
            error,
            effects: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct CodeRecord {
    request: CodeRequest,
    expires_at: Timestamp,
    state: CodeState,
    /// The family a redemption issued (so a replay can revoke it).
    #[serde(default)]
    issued: Option<FamilyId>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum CodeState {
    Unused,
    /// Presented once (`issued` says whether that issued a family).
    Consumed,
    Revoked,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Family {
    grant: Grant,
    /// The code it came from.
    code: TokenHash,
    revoked: Option<RevokeReason>,
    access: Vec<AccessGrant>,
    /// The refresh token that may be used now.
    current: Option<TokenHash>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct RefreshRecord {
    family: FamilyId,
    expires_at: Timestamp,
    /// `Some` once used: when, what it was replaced with, and the access token issued with it.
    rotated: Option<Rotation>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Rotation {
    at: Timestamp,
    successor: TokenHash,
    access: AccessGrant,
}

/// The state: codes, families and refresh tokens, all by hash.
#[derive(Debug, Clone, Default)]
pub struct Grants {
    policy: GrantPolicy,
    codes: HashMap<TokenHash, CodeRecord>,
    families: HashMap<FamilyId, Family>,
    refresh: HashMap<TokenHash, RefreshRecord>,
}

impl Grants {
    pub fn new(policy: GrantPolicy) -> Grants {
        Grants {
            policy,
            ..Grants::default()
        }
    }

    pub fn policy(&self) -> GrantPolicy {
        self.policy
    }

    /// Record a code `/authorize` is about to send.
    pub fn issue_code(
        &mut self,
        code: &SecretToken,
        request: CodeRequest,
        now: Timestamp,
    ) -> Result<(), OAuthError> {
        let hash = code.hash();
        if self.codes.contains_key(&hash) {
            return Err(OAuthError::server_error("authorization code collision"));
        }
        let expires_at = now.plus(self.policy.code_ttl);
        self.codes.insert(
            hash,
            CodeRecord {
                request,
                expires_at,
                state: CodeState::Unused,
                issued: None,
            },
        );
        Ok(())
    }

    /// Exchange a code for tokens (see the module documentation for the order of checks).
    pub fn redeem_code(
        &mut self,
        req: &CodeRedemption<'_>,
        new: NewFamily,
        now: Timestamp,
    ) -> Result<Issued, Refusal> {
        req.client.check()?;
        let hash = req.code.hash();
        let invalid = || OAuthError::invalid_grant("authorization code is not valid");
        let record = self.codes.get_mut(&hash).ok_or_else(invalid)?;
        match record.state {
            CodeState::Unused => record.state = CodeState::Consumed,
            CodeState::Revoked => return Err(invalid().into()),
            CodeState::Consumed => {
                let effects = match record.issued.clone() {
                    Some(family) => self
                        .revoke_family(&family, RevokeReason::CodeReplayed, now)
                        .into_iter()
                        .collect(),
                    None => Vec::new(),
                };
                return Err(Refusal {
                    error: OAuthError::invalid_grant(
                        "authorization code was already used; the tokens it issued are revoked",
                    ),
                    effects,
                });
            }
        }
        let request = record.request.clone();
        if request.grant.client_id != req.client_id {
            return Err(OAuthError::invalid_grant("code was issued to another client").into());
        }
        if now >= record.expires_at {
            return Err(OAuthError::invalid_grant("authorization code expired").into());
        }
        if let Some(sent) = &request.redirect_uri {
            if req.redirect_uri != Some(sent.as_str()) {
                return Err(OAuthError::invalid_grant(
                    "redirect_uri differs from the authorization request",
                )
                .into());
            }
        }
        pkce::verify(Some(&request.challenge), req.code_verifier)?;
        resource::check_token_resource(req.resource, &request.grant.audience)?;
        if self.families.contains_key(&new.id)
            || new
                .refresh
                .as_ref()
                .is_some_and(|r| self.refresh.contains_key(&r.hash()))
        {
            return Err(OAuthError::server_error("token id collision").into());
        }
        let current = new.refresh.as_ref().map(SecretToken::hash);
        if let Some(h) = current {
            self.refresh.insert(
                h,
                RefreshRecord {
                    family: new.id.clone(),
                    expires_at: now.plus(self.policy.refresh_ttl),
                    rotated: None,
                },
            );
        }
        self.families.insert(
            new.id.clone(),
            Family {
                grant: request.grant.clone(),
                code: hash,
                revoked: None,
                access: vec![new.access.clone()],
                current,
            },
        );
        if let Some(code) = self.codes.get_mut(&hash) {
            code.issued = Some(new.id.clone());
        }
        Ok(Issued {
            family: new.id,
            grant: request.grant,
            refresh: new.refresh,
            access: new.access,
            repeated: false,
        })
    }
}

#[cfg(test)]
mod tests;
