//! The IdP's OIDC discovery document, as direct mode republishes it (RFC 8414 authorization-
//! server metadata): fetched on demand, checked and normalised, cached for a TTL, and served
//! stale when the IdP cannot be reached.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::sync::Mutex;

use crate::config::IdpConfig;

/// Largest discovery document accepted from the IdP.
const MAX_DISCOVERY_BYTES: usize = 256 * 1024;

/// Why the IdP's document cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum IdpMetadataError {
    #[error("no identity provider configured (PORTCULLIS_IDP_ISSUER)")]
    NotConfigured,
    /// `cause` says what failed (logged, not sent to clients).
    #[error("the identity provider's discovery document is unavailable")]
    Unavailable { cause: String },
}

/// The IdP's discovery document, fetched on demand and cached for the configured TTL.
pub struct IdpMetadata {
    client: reqwest::Client,
    ttl: Duration,
    cache: Mutex<Option<(Instant, Value)>>,
}

impl IdpMetadata {
    pub fn new(client: reqwest::Client, ttl: Duration) -> IdpMetadata {
        IdpMetadata {
            client,
            ttl,
            cache: Mutex::new(None),
        }
    }

    /// How long a fetched document is served from cache.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// The normalised document: fresh from cache, else fetched; a stale copy is served when
    /// the IdP cannot be reached.
    pub async fn get(&self, idp: Option<&IdpConfig>) -> Result<Value, IdpMetadataError> {
        let Some(idp) = idp else {
            return Err(IdpMetadataError::NotConfigured);
        };
        let mut cache = self.cache.lock().await;
        if let Some((at, doc)) = cache.as_ref() {
            if at.elapsed() < self.ttl {
                return Ok(doc.clone());
            }
        }
        match self.fetch(&idp.discovery_url, &idp.issuer).await {
            Ok(doc) => {
                *cache = Some((Instant::now(), doc.clone()));
                Ok(doc)
            }
            Err(cause) => match cache.as_ref() {
                Some((_, stale)) => {
                    tracing::warn!(%cause, "IdP discovery failed; serving the cached copy");
                    Ok(stale.clone())
                }
                None => Err(IdpMetadataError::Unavailable { cause }),
            },
        }
    }

    async fn fetch(&self, url: &str, issuer: &str) -> Result<Value, String> {
        let response = self
            .client
            .get(url)
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| format!("GET {url}: {e}"))?;
        if !response.status().is_success() {
            return Err(format!("GET {url}: HTTP {}", response.status()));
        }
        if response
            .content_length()
            .is_some_and(|n| n as usize > MAX_DISCOVERY_BYTES)
        {
            return Err(format!(
                "GET {url}: document larger than {MAX_DISCOVERY_BYTES} bytes"
            ));
        }
        let bytes = response
            .bytes()
            .await
            .map_err(|e| format!("GET {url}: {e}"))?;
        if bytes.len() > MAX_DISCOVERY_BYTES {
            return Err(format!(
                "GET {url}: document larger than {MAX_DISCOVERY_BYTES} bytes"
            ));
        }
        let doc: Value =
            serde_json::from_slice(&bytes).map_err(|e| format!("GET {url}: not JSON: {e}"))?;
        normalize_as_metadata(doc, issuer).map_err(|e| format!("GET {url}: {e}"))
    }
}

/// Checks the IdP's document and fills in what MCP clients need: `issuer` must be the
/// configured issuer; `code_challenge_methods_supported: ["S256"]` is added when missing
/// (MCP clients refuse an AS without it; every IdP we front does PKCE S256). The IdP's
/// endpoints are kept as they are.
pub fn normalize_as_metadata(mut doc: Value, issuer: &str) -> Result<Value, String> {
    let obj = doc.as_object_mut().ok_or("not a JSON object")?;
    match obj.get("issuer").and_then(Value::as_str) {
        Some(i) if i == issuer => {}
        Some(i) => return Err(format!("issuer is {i:?}, expected {issuer:?}")),
        None => return Err("no issuer".into()),
    }
    for required in ["authorization_endpoint", "token_endpoint"] {
        if !obj.get(required).is_some_and(Value::is_string) {
            return Err(format!("no {required}"));
        }
    }
    if !obj.contains_key("code_challenge_methods_supported") {
        obj.insert("code_challenge_methods_supported".into(), json!(["S256"]));
    }
    Ok(doc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize() {
        let doc = json!({"issuer": "https://idp", "authorization_endpoint": "https://idp/a", "token_endpoint": "https://idp/t"});
        let n = normalize_as_metadata(doc.clone(), "https://idp").unwrap();
        assert_eq!(n["code_challenge_methods_supported"], json!(["S256"]));
        assert_eq!(n["authorization_endpoint"], "https://idp/a");
        let kept = json!({"issuer": "https://idp", "authorization_endpoint": "a", "token_endpoint": "t", "code_challenge_methods_supported": ["plain", "S256"]});
        assert_eq!(
            normalize_as_metadata(kept, "https://idp").unwrap()["code_challenge_methods_supported"],
            json!(["plain", "S256"])
        );
        assert!(normalize_as_metadata(doc.clone(), "https://other")
            .unwrap_err()
            .contains("issuer"));
        assert!(normalize_as_metadata(json!([1]), "https://idp").is_err());
        assert!(normalize_as_metadata(json!({"issuer": "https://idp"}), "https://idp").is_err());
    }
}
