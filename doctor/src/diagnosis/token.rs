//! Step 6 (with `--token`): the token's claims, decoded without verification, held against what
//! the filter checks (docs/policy.md): `iss` among the metadata's authorization servers, `aud`
//! (the server's resource, a configured audience, or no `aud` and an allowed `client_id`),
//! `token_use`, the groups claim. The token itself is never printed.

use base64::Engine as _;
use serde_json::{Map, Value};

use super::Doctor;
use crate::findings::Code;
use crate::report::{Audience, TokenSummary};

/// Claims that carry groups at the IdPs we know (`realm_access.roles` is Keycloak's nested one).
pub const GROUP_CLAIMS: &[&str] = &["groups", "cognito:groups", "roles", "realm_access.roles"];

/// Keycloak's default audience: every access token of the realm carries it.
const KEYCLOAK_ACCOUNT: &str = "account";

impl Doctor {
    /// Step 6: the token's claims, read without verification. The token itself is never
    /// printed.
    pub(super) fn inspect_token(&mut self) {
        self.begin("token", "Access token claims (decoded, not verified)");
        let token = self.opts.token.clone().unwrap_or_default();
        let parts: Vec<&str> = token.split('.').collect();
        let payload = (parts.len() == 3).then(|| b64url_json(parts[1])).flatten();
        let Some(claims) = payload else {
            let what = match parts.len() {
                5 => "an encrypted JWT (JWE)",
                3 => "three dot-separated parts whose payload is not base64url JSON",
                _ => "not a JWT (an opaque token)",
            };
            self.find(
                Code::TokenNotJwt,
                format!("the token is {what}; the filter accepts only JWS JWTs it can verify from the snapshot"),
            );
            self.token = Some(TokenSummary::default());
            return;
        };
        let mut t = TokenSummary {
            jwt: true,
            ..TokenSummary::default()
        };
        self.required_claims(&claims);
        t.iss = claims.get("iss").and_then(Value::as_str).map(String::from);
        t.issuer_listed = self.check_issuer(t.iss.as_deref());
        t.client_id = ["client_id", "azp"]
            .iter()
            .find_map(|c| claims.get(*c).and_then(Value::as_str))
            .map(String::from);
        if let Some(c) = &t.client_id {
            self.note(format!("client_id = {c}"));
        }
        t.aud = match claims.get("aud") {
            Some(Value::String(a)) => vec![a.clone()],
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(Value::as_str)
                .map(String::from)
                .collect(),
            _ => Vec::new(),
        };
        let resource = self
            .prm
            .as_ref()
            .and_then(|p| p.get("resource"))
            .and_then(Value::as_str)
            .unwrap_or(self.opts.url.trim())
            .to_string();
        let audience = classify_audience(&t.aud, &resource);
        self.check_audience(audience, &t.aud, &resource, t.client_id.as_deref());
        t.audience = Some(audience);
        t.resource = Some(resource);
        t.token_use = claims
            .get("token_use")
            .and_then(Value::as_str)
            .map(String::from);
        self.check_token_use(&claims);

        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        t.expired = claims.get("exp").and_then(Value::as_i64).map(|e| e < now);
        if t.expired == Some(true) {
            self.find(
                Code::TokenExpired,
                "the token has expired (exp is in the past)",
            );
        }
        for name in GROUP_CLAIMS {
            if let Some(v) = claim(&claims, name) {
                let values: Vec<&str> = match v {
                    Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
                    Value::String(s) => vec![s.as_str()],
                    _ => Vec::new(),
                };
                let n = match v {
                    Value::Array(a) => a.len(),
                    Value::String(_) => 1,
                    _ => 0,
                };
                t.groups_claims.insert((*name).to_string(), n);
                for g in values {
                    if !t.groups.iter().any(|x| x == g) {
                        t.groups.push(g.to_string());
                    }
                }
            }
        }
        if t.groups_claims.is_empty() {
            self.find(
                Code::TokenNoGroups,
                format!("the token has none of the claims {}: Portcullis maps groups to scopes, so every request would be denied (no_groups). Configure the IdP to put groups in access tokens, or set the issuer's groups_claim", GROUP_CLAIMS.join(", ")),
            );
        } else {
            let claims: Vec<(String, usize)> = t
                .groups_claims
                .iter()
                .map(|(k, n)| (k.clone(), *n))
                .collect();
            for (k, n) in claims {
                self.note(format!("groups claim `{k}` present ({n} value(s))"));
            }
        }
        t.groups_look_like_guids = t.groups.iter().any(|g| is_guid(g));
        if t.groups_look_like_guids {
            self.note("some groups are GUIDs (Entra object ids): group mappings must name these ids, not the groups' display names");
        }
        self.token = Some(t);
    }

    /// `iss`, `sub` and `exp`: the filter refuses a token without any of them.
    fn required_claims(&mut self, claims: &Map<String, Value>) {
        let missing: Vec<&str> = ["iss", "sub", "exp"]
            .into_iter()
            .filter(|c| !claims.contains_key(*c))
            .collect();
        if !missing.is_empty() {
            self.find(
                Code::TokenMissingClaims,
                format!("the token has no {}: the filter refuses every token without iss, sub and exp (401)", missing.join(", ")),
            );
        }
    }

    /// `iss` against the protected-resource metadata's `authorization_servers` (exactly, as the
    /// filter compares it with its snapshot's issuer). `None`: nothing to compare with.
    fn check_issuer(&mut self, iss: Option<&str>) -> Option<bool> {
        let servers: Vec<String> = self
            .prm
            .as_ref()
            .and_then(|p| p.get("authorization_servers"))
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default();
        let iss = iss?;
        if servers.is_empty() {
            self.note(format!(
                "iss = {iss} (not compared: no protected-resource metadata naming an authorization server)"
            ));
            return None;
        }
        if servers.iter().any(|s| s == iss) {
            self.note(format!(
                "iss = {iss} (an authorization server of the metadata)"
            ));
            return Some(true);
        }
        let near = servers
            .iter()
            .find(|s| s.trim_end_matches('/') == iss.trim_end_matches('/'));
        let hint = match near {
            Some(s) => format!(" It differs from {s} only by a trailing slash, which counts: make PORTCULLIS_IDP_ISSUER exactly the token's iss."),
            None => " The token comes from another IdP or realm, or PORTCULLIS_IDP_ISSUER names another issuer.".to_string(),
        };
        self.find(
            Code::TokenIssuerOther,
            format!(
                "iss `{iss}` is none of the authorization servers the metadata names ({}): the filter verifies tokens of its configured issuer only and refuses this one (401).{hint}",
                servers.join(", ")
            ),
        );
        Some(false)
    }

    /// `aud` as the filter reads it for this server (docs/policy.md).
    fn check_audience(
        &mut self,
        audience: Audience,
        aud: &[String],
        resource: &str,
        client_id: Option<&str>,
    ) {
        match audience {
            Audience::Resource => self.note(format!(
                "aud = {} (contains the server's resource {resource}: accepted)",
                aud.join(", ")
            )),
            Audience::Absent => {
                let msg = match client_id {
                    Some(c) => format!("the token has no aud: the filter accepts it only if the issuer's client_ids lists its client `{c}` (set PORTCULLIS_IDP_CLIENT_IDS={c}; the cognito profile requires it), else 401 `token has no aud claim and its client is not allowed`"),
                    None => "the token has no aud, and no client_id or azp either: no setting makes the filter accept it (every token is checked for whom it was issued to)".to_string(),
                };
                self.find(Code::TokenNoAudience, msg);
            }
            Audience::Weak => self.find(
                Code::TokenWeakAudience,
                format!("aud is only `{KEYCLOAK_ACCOUNT}`, Keycloak's default (the clients' `resource` {resource} was ignored): every access token of the realm carries it, whatever client it was issued to. PORTCULLIS_IDP_AUDIENCE={KEYCLOAK_ACCOUNT} works but lets any realm client's token in; add an Audience mapper to the public client (e.g. `mcp-gateway`) and set PORTCULLIS_IDP_AUDIENCE=mcp-gateway (docs/idp-profiles.md)"),
            ),
            Audience::Other => {
                let others: Vec<&str> = aud
                    .iter()
                    .map(String::as_str)
                    .filter(|a| *a != KEYCLOAK_ACCOUNT)
                    .collect();
                let account = if others.len() < aud.len() {
                    format!(" (not `{KEYCLOAK_ACCOUNT}`: Keycloak puts it in every token of the realm)")
                } else {
                    String::new()
                };
                self.find(
                    Code::TokenAudienceOther,
                    format!("aud is {}, not this server's resource {resource}: the IdP issues a fixed audience (Okta, Entra, a Keycloak Audience mapper). The filter accepts it only if PORTCULLIS_IDP_AUDIENCE lists one of them{account}, else 401 `token audience does not include this resource`", others.join(", ")),
                );
            }
        }
    }

    /// `token_use: id` (Cognito) or `typ: ID` (Keycloak): an ID token sent as an access token.
    fn check_token_use(&mut self, claims: &Map<String, Value>) {
        let token_use = claims.get("token_use").and_then(Value::as_str);
        let typ = claims.get("typ").and_then(Value::as_str);
        if token_use == Some("id") || typ == Some("ID") {
            let what = if token_use == Some("id") {
                "token_use is `id`"
            } else {
                "typ is `ID` (Keycloak)"
            };
            self.find(
                Code::TokenIsIdToken,
                format!("{what}: this is an ID token, not an access token. The filter refuses it where token_use is configured (Cognito: `access`), and an ID token is the wrong credential anyway: send the access token"),
            );
        } else if let Some(u) = token_use {
            self.note(format!("token_use = {u}"));
        }
    }
}

/// Whom `aud` names, next to the server's resource URL.
pub(super) fn classify_audience(aud: &[String], resource: &str) -> Audience {
    if aud.is_empty() {
        Audience::Absent
    } else if aud.iter().any(|a| a == resource) {
        Audience::Resource
    } else if aud.iter().all(|a| a == KEYCLOAK_ACCOUNT) {
        Audience::Weak
    } else {
        Audience::Other
    }
}

/// A GUID (`8-4-4-4-12` hex digits), as Entra writes group object ids.
pub(super) fn is_guid(s: &str) -> bool {
    let lens = [8, 4, 4, 4, 12];
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() == lens.len()
        && parts
            .iter()
            .zip(lens)
            .all(|(p, n)| p.len() == n && p.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// A claim by name, or by dotted path into nested objects (a literal name wins).
fn claim<'a>(claims: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    if let Some(v) = claims.get(name) {
        return Some(v);
    }
    let mut parts = name.split('.');
    let mut cur = claims.get(parts.next()?)?;
    for p in parts {
        cur = cur.as_object()?.get(p)?;
    }
    Some(cur)
}

/// Decodes a base64url (padded or not) JSON object.
fn b64url_json(s: &str) -> Option<Map<String, Value>> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s.trim_end_matches('='))
        .ok()?;
    match serde_json::from_slice(&bytes).ok()? {
        Value::Object(m) => Some(m),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
