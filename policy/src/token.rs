//! Credential verification: compact JWS bearer tokens and static API keys.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::claims::{claim_at, parse_object, JsonProblem};
use crate::compiled::{Issuer, Policy};
use crate::identity::{Identity, IdentityHeaders};
use crate::idset::IdSet;
use crate::keys::{Algorithm, SignatureError};

/// Which part of a compact JWS a problem is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Segment {
    Header,
    Claims,
    Signature,
}

impl Segment {
    fn name(self) -> &'static str {
        match self {
            Segment::Header => "header",
            Segment::Claims => "claims",
            Segment::Signature => "signature",
        }
    }
}

/// Why a credential was refused. Every variant answers 401 `invalid_token`; `reason()` is the
/// stable machine-readable name used in metrics and audit, `Display` the description sent to
/// the client. Neither ever contains the credential.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("token is larger than {0} bytes")]
    TooLarge(usize),
    #[error("token is not a compact JWS (header.claims.signature)")]
    Malformed,
    #[error("token {} is not valid base64url", .0.name())]
    BadBase64(Segment),
    #[error("token {} is not a JSON object", .0.name())]
    BadJson(Segment),
    #[error("token {} has a duplicate member", .0.name())]
    DuplicateMember(Segment),
    #[error("token header has no alg")]
    MissingAlg,
    #[error("alg \"none\" is never accepted")]
    AlgNone,
    #[error("unsupported alg {0:?}")]
    UnsupportedAlg(String),
    #[error("token header lists critical extensions, none of which are supported")]
    CriticalHeader,
    #[error("token header typ {0:?} is not a JWT access token type")]
    BadType(String),
    #[error("token has no iss claim")]
    MissingIssuer,
    #[error("untrusted issuer")]
    UnknownIssuer,
    #[error("alg {0} is not accepted for this issuer")]
    AlgNotAllowed(&'static str),
    #[error("no key with this kid")]
    UnknownKid,
    #[error("token has no kid and the issuer has several keys for its alg")]
    AmbiguousKey,
    #[error("alg {0} does not match the key type")]
    AlgKeyMismatch(&'static str),
    #[error("signature does not verify")]
    BadSignature,
    #[error("claim {0} has the wrong type")]
    BadClaimType(&'static str),
    #[error("token has no exp claim")]
    MissingExp,
    #[error("token has expired")]
    Expired,
    #[error("token is not valid yet (nbf)")]
    NotYetValid,
    #[error("token was issued in the future (iat)")]
    IssuedInFuture,
    #[error("token has no sub claim")]
    MissingSubject,
    #[error("token audience does not include this resource")]
    WrongAudience,
    #[error("token has no aud claim and its client is not allowed")]
    MissingAudience,
    #[error("token_use must be {0:?}")]
    WrongTokenUse(String),
    #[error("groups claim has the wrong type")]
    GroupsClaimType,
    #[error("unknown API key")]
    UnknownApiKey,
    #[error("API key has expired")]
    ApiKeyExpired,
    #[error("token was revoked")]
    Revoked,
}

impl TokenError {
    /// Whether a negative cache may remember this refusal. Shape errors (size, encoding, JSON,
    /// header fields) cost less to find again than to remember, and an attacker could fill a
    /// cache with them; time-dependent refusals (`nbf`, `iat`) may turn valid.
    pub fn is_worth_caching(&self) -> bool {
        !matches!(
            self,
            TokenError::TooLarge(_)
                | TokenError::Malformed
                | TokenError::BadBase64(_)
                | TokenError::BadJson(_)
                | TokenError::DuplicateMember(_)
                | TokenError::MissingAlg
                | TokenError::AlgNone
                | TokenError::UnsupportedAlg(_)
                | TokenError::CriticalHeader
                | TokenError::BadType(_)
                | TokenError::NotYetValid
                | TokenError::IssuedInFuture
        )
    }

    /// Stable machine-readable reason.
    pub fn reason(&self) -> &'static str {
        match self {
            TokenError::TooLarge(_) => "token_too_large",
            TokenError::Malformed => "malformed_token",
            TokenError::BadBase64(_) => "bad_base64",
            TokenError::BadJson(_) => "bad_json",
            TokenError::DuplicateMember(_) => "duplicate_member",
            TokenError::MissingAlg => "missing_alg",
            TokenError::AlgNone => "alg_none",
            TokenError::UnsupportedAlg(_) => "unsupported_alg",
            TokenError::CriticalHeader => "critical_header",
            TokenError::BadType(_) => "bad_typ",
            TokenError::MissingIssuer => "missing_iss",
            TokenError::UnknownIssuer => "unknown_issuer",
            TokenError::AlgNotAllowed(_) => "alg_not_allowed",
            TokenError::UnknownKid => "unknown_kid",
            TokenError::AmbiguousKey => "ambiguous_key",
            TokenError::AlgKeyMismatch(_) => "alg_key_mismatch",
            TokenError::BadSignature => "bad_signature",
            TokenError::BadClaimType(_) => "bad_claim_type",
            TokenError::MissingExp => "missing_exp",
            TokenError::Expired => "expired",
            TokenError::NotYetValid => "not_yet_valid",
            TokenError::IssuedInFuture => "issued_in_future",
            TokenError::MissingSubject => "missing_sub",
            TokenError::WrongAudience => "wrong_audience",
            TokenError::MissingAudience => "missing_audience",
            TokenError::WrongTokenUse(_) => "wrong_token_use",
            TokenError::GroupsClaimType => "groups_claim_type",
            TokenError::UnknownApiKey => "unknown_api_key",
            TokenError::ApiKeyExpired => "api_key_expired",
            TokenError::Revoked => "revoked_token",
        }
    }
}

/// Tells a JWT from an opaque API key carried as a bearer token.
pub fn looks_like_jwt(credential: &str) -> bool {
    credential.contains('.')
}

fn decode(segment: &str, which: Segment) -> Result<Vec<u8>, TokenError> {
    URL_SAFE_NO_PAD
        .decode(segment)
        .map_err(|_| TokenError::BadBase64(which))
}

fn parse(bytes: &[u8], which: Segment) -> Result<Map<String, Value>, TokenError> {
    parse_object(bytes).map_err(|p| match p {
        JsonProblem::Duplicate => TokenError::DuplicateMember(which),
        JsonProblem::Invalid | JsonProblem::NotAnObject => TokenError::BadJson(which),
    })
}

/// A NumericDate claim: absent, or a number (fractions are truncated).
fn numeric_date(
    claims: &Map<String, Value>,
    name: &'static str,
) -> Result<Option<u64>, TokenError> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::Number(n)) => match (n.as_u64(), n.as_f64()) {
            (Some(v), _) => Ok(Some(v)),
            (None, Some(f)) if f >= 0.0 && f.is_finite() => Ok(Some(f as u64)),
            _ => Err(TokenError::BadClaimType(name)),
        },
        Some(_) => Err(TokenError::BadClaimType(name)),
    }
}

fn optional_str<'a>(
    claims: &'a Map<String, Value>,
    name: &'static str,
) -> Result<Option<&'a str>, TokenError> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(TokenError::BadClaimType(name)),
    }
}

impl Policy {
    /// Verifies a compact JWS against the snapshot at unix time `now` (seconds).
    pub fn verify_jwt(&self, token: &str, now: u64) -> Result<Identity, TokenError> {
        if token.len() > self.settings.max_token_bytes {
            return Err(TokenError::TooLarge(self.settings.max_token_bytes));
        }
        let mut parts = token.split('.');
        let (Some(header_b64), Some(claims_b64), Some(signature_b64), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed);
        };
        if header_b64.is_empty() || claims_b64.is_empty() {
            return Err(TokenError::Malformed);
        }

        let header = parse(&decode(header_b64, Segment::Header)?, Segment::Header)?;
        let alg_name = optional_str(&header, "alg")?.ok_or(TokenError::MissingAlg)?;
        if alg_name.eq_ignore_ascii_case("none") {
            return Err(TokenError::AlgNone);
        }
        let alg = Algorithm::from_name(alg_name)
            .ok_or_else(|| TokenError::UnsupportedAlg(alg_name.chars().take(32).collect()))?;
        if header.contains_key("crit") {
            return Err(TokenError::CriticalHeader);
        }
        if let Some(typ) = optional_str(&header, "typ")? {
            let typ_lower = typ.to_ascii_lowercase();
            let accepted = ["jwt", "at+jwt", "application/jwt", "application/at+jwt"];
            if !accepted.contains(&typ_lower.as_str()) {
                return Err(TokenError::BadType(typ.chars().take(32).collect()));
            }
        }
        let kid = optional_str(&header, "kid")?;

        let claims = parse(&decode(claims_b64, Segment::Claims)?, Segment::Claims)?;
        let iss = optional_str(&claims, "iss")?.ok_or(TokenError::MissingIssuer)?;
        let issuer = self.issuer(iss).ok_or(TokenError::UnknownIssuer)?;
        if !issuer.algorithms.contains(&alg) {
            return Err(TokenError::AlgNotAllowed(alg.name()));
        }
        let key = match kid {
            Some(kid) => {
                let &index = issuer.keys_by_kid.get(kid).ok_or(TokenError::UnknownKid)?;
                &issuer.keys[index]
            }
            None => {
                let mut fitting = issuer.keys.iter().filter(|k| k.accepts(alg));
                match (fitting.next(), fitting.next()) {
                    (Some(key), None) => key,
                    (Some(_), Some(_)) => return Err(TokenError::AmbiguousKey),
                    (None, _) => return Err(TokenError::AlgKeyMismatch(alg.name())),
                }
            }
        };
        if !key.accepts(alg) {
            return Err(TokenError::AlgKeyMismatch(alg.name()));
        }
        let signature = decode(signature_b64, Segment::Signature)?;
        let signing_input_len = header_b64.len() + 1 + claims_b64.len();
        key.verify(alg, &token.as_bytes()[..signing_input_len], &signature)
            .map_err(|e| match e {
                SignatureError::AlgorithmMismatch => TokenError::AlgKeyMismatch(alg.name()),
                SignatureError::BadLength | SignatureError::Invalid => TokenError::BadSignature,
            })?;

        self.check_claims(issuer, &claims, now)
    }

    fn check_claims(
        &self,
        issuer: &Issuer,
        claims: &Map<String, Value>,
        now: u64,
    ) -> Result<Identity, TokenError> {
        let leeway = issuer.leeway_seconds;
        let exp = numeric_date(claims, "exp")?.ok_or(TokenError::MissingExp)?;
        if now > exp.saturating_add(leeway) {
            return Err(TokenError::Expired);
        }
        if let Some(nbf) = numeric_date(claims, "nbf")? {
            if nbf > now.saturating_add(leeway) {
                return Err(TokenError::NotYetValid);
            }
        }
        if let Some(iat) = numeric_date(claims, "iat")? {
            if iat > now.saturating_add(leeway) {
                return Err(TokenError::IssuedInFuture);
            }
        }
        let subject = optional_str(claims, "sub")?.ok_or(TokenError::MissingSubject)?;
        if !issuer.revoked.is_empty()
            && optional_str(claims, "jti")?.is_some_and(|jti| issuer.revoked.contains(jti))
        {
            return Err(TokenError::Revoked);
        }
        if let Some(required) = &issuer.token_use {
            if optional_str(claims, "token_use")? != Some(required.as_str()) {
                return Err(TokenError::WrongTokenUse(required.clone()));
            }
        }
        let client_id = match optional_str(claims, "client_id")? {
            Some(id) => Some(id),
            None => optional_str(claims, "azp")?,
        };
        let audience_servers = self.audience_servers(issuer, claims, client_id)?;

        let groups: Vec<String> = match claim_at(claims, &issuer.groups_claim) {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::String(one)) => vec![one.clone()],
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| {
                    v.as_str()
                        .map(str::to_owned)
                        .ok_or(TokenError::GroupsClaimType)
                })
                .collect::<Result<_, _>>()?,
            Some(_) => return Err(TokenError::GroupsClaimType),
        };
        let username = match claim_at(claims, &issuer.username_claim) {
            Some(Value::String(name)) if !name.is_empty() => name.as_str(),
            _ => subject,
        };
        let scopes = self.scopes_for_groups(&groups);
        // A space-separated string (RFC 9068 `scope`, Entra `scp`) or a list; a claim of another
        // shape grants nothing here and is not worth refusing the token over.
        let token_scopes: Box<[String]> = match claims.get("scope").or_else(|| claims.get("scp")) {
            Some(Value::String(s)) => s
                .split(' ')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
            _ => Box::default(),
        };
        let headers = IdentityHeaders::build(
            username,
            &groups,
            scopes.iter().map(|s| &self.scope_names[s]),
        );
        Ok(Identity {
            subject: subject.to_owned(),
            username: username.to_owned(),
            issuer: issuer.issuer.clone(),
            client_id: client_id.map(str::to_owned),
            groups: groups.into_boxed_slice(),
            scopes,
            token_scopes,
            audience_servers,
            expires_at: Some(exp.saturating_add(leeway)),
            headers,
        })
    }

    /// Which servers the token may be used at: all of them when `aud` names a configured
    /// audience (or, without `aud`, the client is allowlisted); else those whose resource
    /// URL is in `aud`.
    fn audience_servers(
        &self,
        issuer: &Issuer,
        claims: &Map<String, Value>,
        client_id: Option<&str>,
    ) -> Result<IdSet, TokenError> {
        let all = || IdSet::full(self.servers.len());
        let audiences: Vec<&str> = match claims.get("aud") {
            None => {
                return match client_id {
                    Some(id) if issuer.client_ids.iter().any(|c| c == id) => Ok(all()),
                    _ => Err(TokenError::MissingAudience),
                }
            }
            Some(Value::String(one)) => vec![one.as_str()],
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| v.as_str().ok_or(TokenError::BadClaimType("aud")))
                .collect::<Result<_, _>>()?,
            Some(_) => return Err(TokenError::BadClaimType("aud")),
        };
        if audiences
            .iter()
            .any(|a| issuer.audiences.iter().any(|c| c == a))
        {
            return Ok(all());
        }
        let mut servers = IdSet::empty(self.servers.len());
        if issuer.audience_is_resource {
            for (id, server) in self.servers.iter().enumerate() {
                if !server.is_vacant() && audiences.contains(&server.resource.as_str()) {
                    servers.insert(id);
                }
            }
        }
        if servers.is_empty() {
            return Err(TokenError::WrongAudience);
        }
        Ok(servers)
    }

    /// Checks a static API key (from `X-API-Key` or an opaque bearer token) by its SHA-256,
    /// comparing against every configured hash in constant time.
    pub fn verify_api_key(&self, key: &str, now: u64) -> Result<Identity, TokenError> {
        if key.len() > self.settings.max_token_bytes {
            return Err(TokenError::TooLarge(self.settings.max_token_bytes));
        }
        let digest: [u8; 32] = Sha256::digest(key.as_bytes()).into();
        let mut found = None;
        for candidate in self.api_keys.iter() {
            let difference = candidate
                .sha256
                .iter()
                .zip(digest.iter())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b));
            if difference == 0 {
                found = Some(candidate);
            }
        }
        let key = found.ok_or(TokenError::UnknownApiKey)?;
        if key.expires_at.is_some_and(|at| now >= at) {
            return Err(TokenError::ApiKeyExpired);
        }
        let headers = IdentityHeaders::build(
            &key.subject,
            &key.groups,
            key.scopes.iter().map(|s| &self.scope_names[s]),
        );
        Ok(Identity {
            subject: key.subject.clone(),
            username: key.subject.clone(),
            issuer: format!("api-key:{}", key.name),
            client_id: None,
            groups: key.groups.clone(),
            scopes: key.scopes.clone(),
            token_scopes: Box::default(),
            audience_servers: IdSet::full(self.servers.len()),
            expires_at: key.expires_at,
            headers,
        })
    }
}
