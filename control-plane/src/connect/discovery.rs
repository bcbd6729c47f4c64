//! Finding out what the IdP can do from its own metadata (RFC 8414 / OpenID Connect discovery),
//! never from its name, with a small TTL cache that never keeps failures.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Deserialize;
use url::Url;

use super::IdpCapabilities;

/// Largest metadata document read.
const MAX_METADATA_BYTES: usize = 256 * 1024;
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
const MAX_CACHE_ENTRIES: usize = 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DiscoveryError {
    #[error("{0:?} is not an absolute http(s) URL")]
    InvalidUrl(String),
    #[error("no usable authorization server metadata; tried: {}", .attempts.join("; "))]
    NoMetadata { attempts: Vec<String> },
    #[error("metadata at {url} names issuer {found:?}, expected {expected:?}")]
    IssuerMismatch {
        url: String,
        expected: String,
        found: String,
    },
    #[error("could not build the HTTP client: {0}")]
    Client(String),
}

#[derive(Debug, Deserialize)]
struct Metadata {
    issuer: Option<String>,
    registration_endpoint: Option<String>,
    #[serde(default)]
    client_id_metadata_document_supported: Option<bool>,
}

/// The metadata locations tried for an issuer, in the MCP specification's order: RFC 8414 path
/// insertion, OIDC discovery path insertion, OIDC discovery path appending (the last only for
/// issuers with a path). A URL that already points into `/.well-known/` is used as is.
pub fn metadata_candidates(issuer_or_metadata_url: &str) -> Result<Vec<Url>, DiscoveryError> {
    let bad = || DiscoveryError::InvalidUrl(issuer_or_metadata_url.to_string());
    let u = Url::parse(issuer_or_metadata_url.trim()).map_err(|_| bad())?;
    if !matches!(u.scheme(), "http" | "https") || u.host().is_none() {
        return Err(bad());
    }
    if u.path().contains("/.well-known/") {
        return Ok(vec![u]);
    }
    let path = u.path().trim_end_matches('/').to_string();
    let at = |p: &str| {
        let mut c = u.clone();
        c.set_path(p);
        c.set_query(None);
        c.set_fragment(None);
        c
    };
    let mut out = vec![
        at(&format!("/.well-known/oauth-authorization-server{path}")),
        at(&format!("/.well-known/openid-configuration{path}")),
    ];
    if !path.is_empty() {
        out.push(at(&format!("{path}/.well-known/openid-configuration")));
    }
    Ok(out)
}

fn default_client() -> Result<reqwest::Client, DiscoveryError> {
    reqwest::Client::builder()
        .timeout(FETCH_TIMEOUT)
        .redirect(reqwest::redirect::Policy::limited(3))
        .user_agent(concat!("portcullis/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| DiscoveryError::Client(e.to_string()))
}

/// Fetches the IdP's metadata and reports whether it offers DCR (`registration_endpoint`) and
/// Client ID Metadata Documents (`client_id_metadata_document_supported`). Accepts an issuer
/// (tries the locations of [`metadata_candidates`] in order) or the metadata URL itself.
/// `strict_redirects` is left `false`: metadata does not tell it.
pub async fn discover_capabilities(
    issuer_or_metadata_url: &str,
) -> Result<IdpCapabilities, DiscoveryError> {
    discover_capabilities_with(&default_client()?, issuer_or_metadata_url).await
}

/// [`discover_capabilities`] with a caller-supplied HTTP client.
pub async fn discover_capabilities_with(
    client: &reqwest::Client,
    issuer_or_metadata_url: &str,
) -> Result<IdpCapabilities, DiscoveryError> {
    let input = issuer_or_metadata_url.trim();
    let candidates = metadata_candidates(input)?;
    let is_issuer = !Url::parse(input).is_ok_and(|u| u.path().contains("/.well-known/"));
    let mut attempts = Vec::new();
    for url in candidates {
        let md = match fetch(client, &url).await {
            Ok(md) => md,
            Err(why) => {
                attempts.push(format!("{url}: {why}"));
                continue;
            }
        };
        if is_issuer {
            let found = md.issuer.clone().unwrap_or_default();
            if found.trim_end_matches('/') != input.trim_end_matches('/') {
                return Err(DiscoveryError::IssuerMismatch {
                    url: url.to_string(),
                    expected: input.to_string(),
                    found,
                });
            }
        }
        return Ok(IdpCapabilities {
            issuer: md.issuer,
            registration_endpoint: md
                .registration_endpoint
                .as_deref()
                .and_then(|r| Url::parse(r).ok())
                .filter(|r| matches!(r.scheme(), "http" | "https")),
            cimd_supported: md.client_id_metadata_document_supported == Some(true),
            strict_redirects: false,
        });
    }
    Err(DiscoveryError::NoMetadata { attempts })
}

async fn fetch(client: &reqwest::Client, url: &Url) -> Result<Metadata, String> {
    let resp = client
        .get(url.clone())
        .header(reqwest::header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(|e| format!("request failed: {e}"))?;
    let status = resp.status();
    if !status.is_success() {
        return Err(format!("HTTP {}", status.as_u16()));
    }
    if resp
        .content_length()
        .is_some_and(|n| n > MAX_METADATA_BYTES as u64)
    {
        return Err("document too large".to_string());
    }
    let body = resp
        .bytes()
        .await
        .map_err(|e| format!("reading the body failed: {e}"))?;
    if body.len() > MAX_METADATA_BYTES {
        return Err("document too large".to_string());
    }
    serde_json::from_slice::<Metadata>(&body).map_err(|e| format!("not metadata JSON: {e}"))
}

/// Discovered capabilities per issuer (or metadata URL), kept for a TTL. Failures are never
/// cached: the next call tries again.
pub struct CapabilityCache {
    ttl: Duration,
    client: Option<reqwest::Client>,
    entries: Mutex<HashMap<String, (Instant, IdpCapabilities)>>,
}

impl std::fmt::Debug for CapabilityCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CapabilityCache")
            .field("ttl", &self.ttl)
            .field("entries", &self.len())
            .finish()
    }
}

impl CapabilityCache {
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            client: None,
            entries: Mutex::new(HashMap::new()),
        }
    }

    pub fn with_client(client: reqwest::Client, ttl: Duration) -> Self {
        Self {
            client: Some(client),
            ..Self::new(ttl)
        }
    }

    /// Cached capabilities if fresh, else discovered now (and cached on success).
    pub async fn get(
        &self,
        issuer_or_metadata_url: &str,
    ) -> Result<IdpCapabilities, DiscoveryError> {
        let key = issuer_or_metadata_url.trim().to_string();
        if let Some(c) = self.cached(&key) {
            return Ok(c);
        }
        let caps = match &self.client {
            Some(client) => discover_capabilities_with(client, &key).await?,
            None => discover_capabilities_with(&default_client()?, &key).await?,
        };
        self.insert(key, caps.clone());
        Ok(caps)
    }

    /// The cached entry, if present and younger than the TTL.
    pub fn cached(&self, issuer_or_metadata_url: &str) -> Option<IdpCapabilities> {
        let entries = self
            .entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        entries
            .get(issuer_or_metadata_url.trim())
            .filter(|(at, _)| at.elapsed() < self.ttl)
            .map(|(_, c)| c.clone())
    }

    fn insert(&self, key: String, caps: IdpCapabilities) {
        let mut entries = self
            .entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if entries.len() >= MAX_CACHE_ENTRIES && !entries.contains_key(&key) {
            let ttl = self.ttl;
            entries.retain(|_, (at, _)| at.elapsed() < ttl);
            if entries.len() >= MAX_CACHE_ENTRIES {
                if let Some(oldest) = entries
                    .iter()
                    .min_by_key(|(_, (at, _))| *at)
                    .map(|(k, _)| k.clone())
                {
                    entries.remove(&oldest);
                }
            }
        }
        entries.insert(key, (Instant::now(), caps));
    }

    /// Forgets one entry (e.g. after the operator changed the IdP).
    pub fn invalidate(&self, issuer_or_metadata_url: &str) {
        let mut entries = self
            .entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        entries.remove(issuer_or_metadata_url.trim());
    }

    pub fn clear(&self) {
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clear();
    }

    pub fn len(&self) -> usize {
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::metadata_candidates;

    #[test]
    fn candidate_order() {
        let c: Vec<String> = metadata_candidates("https://idp.example.com/realms/acme")
            .unwrap()
            .into_iter()
            .map(String::from)
            .collect();
        assert_eq!(
            c,
            [
                "https://idp.example.com/.well-known/oauth-authorization-server/realms/acme",
                "https://idp.example.com/.well-known/openid-configuration/realms/acme",
                "https://idp.example.com/realms/acme/.well-known/openid-configuration",
            ]
        );
        let c: Vec<String> = metadata_candidates("https://idp.example.com/")
            .unwrap()
            .into_iter()
            .map(String::from)
            .collect();
        assert_eq!(
            c,
            [
                "https://idp.example.com/.well-known/oauth-authorization-server",
                "https://idp.example.com/.well-known/openid-configuration",
            ]
        );
        let direct = "https://idp.example.com/realms/x/.well-known/openid-configuration";
        assert_eq!(metadata_candidates(direct).unwrap()[0].as_str(), direct);
        assert!(metadata_candidates("ftp://x/").is_err());
        assert!(metadata_candidates("not a url").is_err());
    }
}
