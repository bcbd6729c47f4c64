//! Step 6 (with `--token`): the token's groups claims, decoded without verification. The token
//! itself is never printed.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde_json::{Map, Value};

use super::Doctor;
use crate::findings::Code;
use crate::report::TokenSummary;

/// Claims that carry groups at the IdPs we know (`realm_access.roles` is Keycloak's nested one).
pub const GROUP_CLAIMS: &[&str] = &["groups", "cognito:groups", "roles", "realm_access.roles"];

impl Doctor {
    /// Step 6: the token's groups claims, read without verification. The token itself is
    /// never printed.
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
            self.token = Some(TokenSummary {
                jwt: false,
                groups_claims: BTreeMap::new(),
                expired: None,
            });
            return;
        };
        let mut groups = BTreeMap::new();
        for name in GROUP_CLAIMS {
            if let Some(v) = claim(&claims, name) {
                let n = match v {
                    Value::Array(a) => a.len(),
                    Value::String(_) => 1,
                    _ => 0,
                };
                groups.insert((*name).to_string(), n);
            }
        }
        if let Some(iss) = claims.get("iss").and_then(Value::as_str) {
            self.note(format!("iss = {iss}"));
        }
        match claims.get("aud") {
            Some(Value::String(a)) => self.note(format!("aud = {a}")),
            Some(Value::Array(a)) => {
                let list: Vec<&str> = a.iter().filter_map(Value::as_str).collect();
                self.note(format!("aud = {}", list.join(", ")));
            }
            _ => self
                .note("no aud (IdPs like Cognito: list the client id in the issuer's client_ids)"),
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        let expired = claims.get("exp").and_then(Value::as_i64).map(|e| e < now);
        if expired == Some(true) {
            self.find(
                Code::TokenExpired,
                "the token has expired (exp is in the past)",
            );
        }
        if groups.is_empty() {
            self.find(
                Code::TokenNoGroups,
                format!("the token has none of the claims {}: Portcullis maps groups to scopes, so every request would be denied (no_groups). Configure the IdP to put groups in access tokens, or set the issuer's groups_claim", GROUP_CLAIMS.join(", ")),
            );
        } else {
            for (k, n) in &groups {
                self.note(format!("groups claim `{k}` present ({n} value(s))"));
            }
        }
        self.token = Some(TokenSummary {
            jwt: true,
            groups_claims: groups,
            expired,
        });
    }
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
