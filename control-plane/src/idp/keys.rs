//! The IdP's signing keys, fetched by the control plane and carried into every policy snapshot
//! (the filter never fetches keys itself; `docs/idp-keys.md`).
//!
//! For the configured issuer, a refresh reads the OIDC discovery document (through
//! [`IdpMetadata`], the same fetch and cache the authorization-server metadata mirror uses),
//! fetches its `jwks_uri`, validates every key with the policy crate's own parser and stores the
//! keys in the `idp_keys` table, so every control-plane replica compiles the same snapshot:
//!
//! - a key the IdP publishes is stored (or brought back) with `retired_at = NULL`;
//! - a stored key the IdP no longer publishes gets `retired_at = now` and is still trusted for
//!   the rotation overlap (tokens it signed keep working while they live);
//! - a retired key older than the overlap is deleted (and left out of [`IdpKeys::jwks`] as soon
//!   as the overlap has passed, whether or not a refresh ran since).
//!
//! A failed refresh changes nothing: the last good keys stay, so an IdP outage never empties the
//! key set. A JWKS in which no key survives validation is an error for the same reason.
//!
//! When `PORTCULLIS_IDP_JWKS_FILE` is configured, that static JWKS is the issuer's key set and
//! nothing is fetched.
//!
//! Configuration ([`IdpKeysConfig::from_lookup`]):
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `PORTCULLIS_IDP_JWKS_REFRESH_SECONDS` | 300 | time between scheduled refreshes |
//! | `PORTCULLIS_IDP_KEY_OVERLAP_SECONDS` | 86400 | how long a key that left the IdP's JWKS is still trusted |
//! | `PORTCULLIS_IDP_JWKS_MIN_REFRESH_SECONDS` | 10 | least time between on-demand refreshes (unknown `kid`), and the first retry delay after an error |
//! | `PORTCULLIS_IDP_JWKS_URI` | discovery's `jwks_uri` | where to fetch the JWKS (skips discovery) |
//!
//! A JWKS URI must be `https`, or `http` on a loopback host (tests, sidecars).

use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use base64::Engine as _;
use policy::keys::{Algorithm, Jwk, VerifyingKey};
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};
use sqlx::Row as _;

use crate::config::IdpConfig;
pub use crate::config::IdpKeysConfig;
use crate::idp::metadata::{IdpMetadata, IdpMetadataError};
use crate::outbound::RefusedUrl;
use crate::storage::{now, Db};

#[cfg(test)]
mod tests;

/// Largest JWKS document accepted.
pub const MAX_JWKS_BYTES: usize = 1024 * 1024;
/// Most keys accepted in one JWKS (IdPs publish a handful; this bounds the snapshot).
pub const MAX_JWKS_KEYS: usize = 100;
/// Timeout of one JWKS fetch.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// JWK members that only a private or secret key has: a public JWKS carrying them is leaking
/// key material, and such a key is never put in a snapshot.
const PRIVATE_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// Why a refresh failed. Nothing in the database changed when one of these is returned.
#[derive(Debug, thiserror::Error)]
pub enum IdpKeysError {
    #[error("no identity provider is configured (PORTCULLIS_IDP_ISSUER)")]
    NotConfigured,
    #[error("the IdP's discovery document is unavailable: {0}")]
    Discovery(String),
    #[error("the IdP's discovery document has no jwks_uri (set PORTCULLIS_IDP_JWKS_URI)")]
    NoJwksUri,
    #[error(transparent)]
    JwksUri(#[from] RefusedUrl),
    #[error("GET {uri}: {message}")]
    Fetch { uri: String, message: String },
    #[error("GET {uri}: the JWKS is larger than {limit} bytes")]
    TooLarge { uri: String, limit: usize },
    #[error("GET {uri}: content-type {content_type:?} is not JSON (expected application/jwk-set+json or application/json)")]
    ContentType { uri: String, content_type: String },
    #[error("GET {uri}: not a JWKS: {problem}")]
    InvalidJwks { uri: String, problem: String },
    #[error("GET {uri}: none of the {published} published keys can verify tokens for this issuer (refused: {refused})")]
    NoUsableKeys {
        uri: String,
        published: usize,
        refused: String,
    },
    #[error("storing the IdP's keys: {0}")]
    Database(#[from] sqlx::Error),
}

/// A key the IdP publishes, validated, as it will be stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishedKey {
    /// Its `kid`, or its RFC 7638 thumbprint when it has none (storage only: the JWK stays as
    /// published).
    pub kid: String,
    /// The JWK as published, as JSON text.
    pub jwk: String,
}

/// A JWKS sorted into the keys to store and the ones left out, with why.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    pub keys: Vec<PublishedKey>,
    /// Keys refused as malformed, weak, secret or duplicate: `(which, why)`. Logged as warnings.
    pub refused: Vec<(String, String)>,
    /// Well-formed keys we do not verify with (encryption keys, other key types or curves,
    /// algorithms this issuer does not accept): `(which, why)`.
    pub skipped: Vec<(String, String)>,
}

/// Checks where a JWKS may be fetched from ([`crate::outbound::check_jwks_uri`]).
pub fn check_jwks_uri(uri: &str) -> Result<url::Url, IdpKeysError> {
    Ok(crate::outbound::check_jwks_uri(uri)?)
}

/// RFC 7638 JWK thumbprint (SHA-256, base64url): the required members of the key type, in
/// lexicographic order, without whitespace. `None` for a key type without a defined set.
pub fn thumbprint(jwk: &Value) -> Option<String> {
    let obj = jwk.as_object()?;
    let kty = obj.get("kty")?.as_str()?;
    let members: &[&str] = match kty {
        "RSA" => &["e", "kty", "n"],
        "EC" => &["crv", "kty", "x", "y"],
        "OKP" => &["crv", "kty", "x"],
        "oct" => &["k", "kty"],
        _ => return None,
    };
    let mut canonical = String::from("{");
    for (i, name) in members.iter().enumerate() {
        let value = obj.get(*name)?.as_str()?;
        if i > 0 {
            canonical.push(',');
        }
        // serde_json writes the JSON string form RFC 7638 asks for (base64url needs no escapes).
        canonical.push_str(&format!("{}:{}", json!(name), json!(value)));
    }
    canonical.push('}');
    Some(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(canonical)))
}

/// Validates a fetched JWKS document key by key with the policy crate's parser. A key that
/// will not parse is left out, never the whole set.
pub fn select_keys(
    doc: &Value,
    algorithms: &[String],
    uri: &str,
) -> Result<Selection, IdpKeysError> {
    let invalid = |problem: String| IdpKeysError::InvalidJwks {
        uri: uri.to_string(),
        problem,
    };
    let keys = doc
        .as_object()
        .ok_or_else(|| invalid("not a JSON object".into()))?
        .get("keys")
        .and_then(Value::as_array)
        .ok_or_else(|| invalid("no \"keys\" array".into()))?;
    if keys.len() > MAX_JWKS_KEYS {
        return Err(invalid(format!(
            "{} keys published, at most {MAX_JWKS_KEYS} accepted",
            keys.len()
        )));
    }
    let accepted: Vec<Algorithm> = algorithms
        .iter()
        .filter_map(|name| Algorithm::from_name(name))
        .collect();
    let mut selection = Selection::default();
    for (i, key) in keys.iter().enumerate() {
        let which = match key.get("kid").and_then(Value::as_str) {
            Some(kid) => format!("keys[{i}] (kid {kid:?})"),
            None => format!("keys[{i}]"),
        };
        match check_key(key, &accepted) {
            Ok(kid) => {
                if selection.keys.iter().any(|k| k.kid == kid) {
                    selection
                        .refused
                        .push((which, format!("duplicate kid {kid:?}")));
                    continue;
                }
                selection.keys.push(PublishedKey {
                    kid,
                    jwk: key.to_string(),
                });
            }
            Err(KeyVerdict::Refused(why)) => selection.refused.push((which, why)),
            Err(KeyVerdict::Skipped(why)) => selection.skipped.push((which, why)),
        }
    }
    if selection.keys.is_empty() {
        let refused = if selection.refused.is_empty() {
            "none; skipped: ".to_string()
                + &selection
                    .skipped
                    .iter()
                    .map(|(w, why)| format!("{w}: {why}"))
                    .collect::<Vec<_>>()
                    .join("; ")
        } else {
            selection
                .refused
                .iter()
                .map(|(w, why)| format!("{w}: {why}"))
                .collect::<Vec<_>>()
                .join("; ")
        };
        return Err(IdpKeysError::NoUsableKeys {
            uri: uri.to_string(),
            published: keys.len(),
            refused,
        });
    }
    Ok(selection)
}

enum KeyVerdict {
    Refused(String),
    Skipped(String),
}

/// The storage kid of a key we can verify with, or why it is left out.
fn check_key(key: &Value, accepted: &[Algorithm]) -> Result<String, KeyVerdict> {
    let obj = key
        .as_object()
        .ok_or_else(|| KeyVerdict::Refused("not a JSON object".into()))?;
    if let Some(member) = PRIVATE_MEMBERS.iter().find(|m| obj.contains_key(**m)) {
        return Err(KeyVerdict::Refused(format!(
            "carries the private/secret member {member:?}: a public JWKS must not"
        )));
    }
    if obj
        .get("use")
        .and_then(Value::as_str)
        .is_some_and(|u| u != "sig")
    {
        return Err(KeyVerdict::Skipped("not a signature key (use)".into()));
    }
    let jwk: Jwk = serde_json::from_value(key.clone())
        .map_err(|e| KeyVerdict::Refused(format!("not a JWK: {e}")))?;
    let verifying = match VerifyingKey::from_jwk(&jwk) {
        Ok(k) => k,
        Err(e) if e.is_unsupported() => return Err(KeyVerdict::Skipped(e.to_string())),
        Err(e) => return Err(KeyVerdict::Refused(e.to_string())),
    };
    if !accepted.iter().any(|&alg| verifying.accepts(alg)) {
        return Err(KeyVerdict::Skipped(
            "fits none of the issuer's algorithms (PORTCULLIS_IDP_ALGORITHMS)".into(),
        ));
    }
    match jwk.kid.filter(|kid| !kid.is_empty()) {
        Some(kid) => Ok(kid),
        None => thumbprint(key)
            .ok_or_else(|| KeyVerdict::Refused("no kid and no RFC 7638 thumbprint".into())),
    }
}

/// One row of `idp_keys`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredKey {
    pub kid: String,
    pub jwk: String,
    pub first_seen: i64,
    pub retired_at: Option<i64>,
}

/// What a refresh writes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// New keys, keys whose JWK changed, and retired keys published again.
    pub upsert: Vec<PublishedKey>,
    /// Stored keys the IdP no longer publishes (`retired_at = now`).
    pub retire: Vec<String>,
    /// Retired keys past the overlap.
    pub delete: Vec<String>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.upsert.is_empty() && self.retire.is_empty() && self.delete.is_empty()
    }
}

/// Diffs the stored keys against the published ones.
pub fn plan(stored: &[StoredKey], published: &[PublishedKey], now: i64, overlap: i64) -> Plan {
    let mut plan = Plan::default();
    for key in published {
        let unchanged = stored
            .iter()
            .any(|s| s.kid == key.kid && s.jwk == key.jwk && s.retired_at.is_none());
        if !unchanged {
            plan.upsert.push(key.clone());
        }
    }
    for s in stored {
        if published.iter().any(|k| k.kid == s.kid) {
            continue;
        }
        match s.retired_at {
            None => plan.retire.push(s.kid.clone()),
            Some(at) if at < now - overlap => plan.delete.push(s.kid.clone()),
            Some(_) => {}
        }
    }
    plan
}

/// The IdP's keys: refresh, storage and the snapshot's view. Cheap to clone.
#[derive(Clone)]
pub struct IdpKeys(Arc<Inner>);

struct Inner {
    db: Db,
    idp: Option<IdpConfig>,
    keys: IdpKeysConfig,
    metadata: Arc<IdpMetadata>,
    client: reqwest::Client,
    /// One refresh at a time per replica.
    refresh_lock: tokio::sync::Mutex<()>,
    /// When the last refresh started (scheduled or on demand).
    last_attempt: Mutex<Option<Instant>>,
    /// Set by [`IdpKeys::spawn`]: asks for a snapshot rebuild.
    on_change: OnceLock<Box<dyn Fn() + Send + Sync>>,
}

impl IdpKeys {
    /// Sets up key refresh for `idp` (the configured IdP, if any), storing in `db` (whose
    /// migrations have run); the jwks_uri comes from `metadata`, the IdP's discovery document
    /// as the control plane serves it (one cache for both), unless `keys` sets one.
    pub fn new(
        db: &Db,
        idp: Option<IdpConfig>,
        keys: IdpKeysConfig,
        metadata: Arc<IdpMetadata>,
    ) -> anyhow::Result<IdpKeys> {
        let db = db.clone();
        let client = crate::outbound::client_builder(FETCH_TIMEOUT)
            // Every hop must satisfy the same rule as the jwks_uri itself.
            .redirect(reqwest::redirect::Policy::custom(|attempt| {
                if attempt.previous().len() >= crate::outbound::MAX_REDIRECTS {
                    attempt.error("more than 3 redirects")
                } else if let Err(e) = check_jwks_uri(attempt.url().as_str()) {
                    attempt.error(e.to_string())
                } else {
                    attempt.follow()
                }
            }))
            .build()?;
        Ok(IdpKeys(Arc::new(Inner {
            db,
            metadata,
            idp,
            keys,
            client,
            refresh_lock: tokio::sync::Mutex::new(()),
            last_attempt: Mutex::new(None),
            on_change: OnceLock::new(),
        })))
    }

    pub fn config(&self) -> &IdpKeysConfig {
        &self.0.keys
    }

    /// Whether a static JWKS (`PORTCULLIS_IDP_JWKS_FILE`) replaces fetching.
    pub fn is_static(&self) -> bool {
        self.0.idp.as_ref().is_some_and(|idp| idp.jwks.is_some())
    }

    /// Fetches the IdP's JWKS and stores it; `true` when the stored key set changed. With a
    /// static JWKS this does nothing. On error nothing changed.
    pub async fn refresh(&self) -> Result<bool, IdpKeysError> {
        if let Ok(mut last) = self.0.last_attempt.lock() {
            *last = Some(Instant::now());
        }
        self.refresh_now().await
    }

    async fn refresh_now(&self) -> Result<bool, IdpKeysError> {
        let idp = self.0.idp.as_ref().ok_or(IdpKeysError::NotConfigured)?;
        if idp.jwks.is_some() {
            return Ok(false);
        }
        let _one_at_a_time = self.0.refresh_lock.lock().await;
        let uri = self.jwks_uri().await?;
        let doc = fetch_jwks(&self.0.client, &uri).await?;
        let selection = select_keys(&doc, &idp.algorithms, uri.as_str())?;
        for (which, why) in &selection.refused {
            tracing::warn!(issuer = %idp.issuer, key = %which, reason = %why, "IdP key refused; left out of the snapshot");
        }
        for (which, why) in &selection.skipped {
            tracing::debug!(issuer = %idp.issuer, key = %which, reason = %why, "IdP key skipped");
        }
        let changed = self.store(&idp.issuer, &selection.keys).await?;
        if changed {
            tracing::info!(issuer = %idp.issuer, kids = ?selection.keys.iter().map(|k| k.kid.as_str()).collect::<Vec<_>>(), "IdP signing keys changed");
        }
        Ok(changed)
    }

    /// For an `unknown_kid` report: refreshes unless a refresh started less than the minimum
    /// interval ago. `true` when the keys changed (the `spawn` callback has then been called).
    /// Errors are logged.
    pub async fn refresh_if_due_for_unknown_kid(&self) -> bool {
        if self.is_static() || self.0.idp.is_none() {
            return false;
        }
        {
            let Ok(mut last) = self.0.last_attempt.lock() else {
                return false;
            };
            if last.is_some_and(|at| at.elapsed() < self.0.keys.min_refresh_interval) {
                tracing::debug!("unknown kid reported; the IdP's keys were fetched moments ago");
                return false;
            }
            // Claimed under the lock: concurrent reports start one refresh, not several.
            *last = Some(Instant::now());
        }
        match self.refresh_now().await {
            Ok(changed) => {
                if changed {
                    self.notify();
                }
                changed
            }
            Err(e) => {
                tracing::warn!(error = %e, "refresh after an unknown kid failed; keeping the last good keys");
                false
            }
        }
    }

    /// Deletes retired keys past the overlap; `true` when any went.
    pub async fn expire_retired(&self) -> Result<bool, sqlx::Error> {
        let Some(idp) = &self.0.idp else {
            return Ok(false);
        };
        let done = sqlx::query(
            "DELETE FROM idp_keys WHERE issuer = $1 AND retired_at IS NOT NULL AND retired_at < $2",
        )
        .bind(&idp.issuer)
        .bind(now() - self.overlap_seconds())
        .execute(self.0.db.pool())
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// The issuer's JWKS for the snapshot: `{"keys": [...]}` ordered by (storage) kid, the
    /// published JWKs plus retired ones still within the overlap. The static JWKS when one is
    /// configured for this issuer.
    pub async fn jwks(&self, issuer: &str) -> anyhow::Result<Value> {
        if let Some(idp) = &self.0.idp {
            if idp.issuer == issuer {
                if let Some(jwks) = &idp.jwks {
                    return Ok(jwks.clone());
                }
            }
        }
        let mut rows = self.stored(issuer).await?;
        let since = now() - self.overlap_seconds();
        rows.retain(|r| r.retired_at.is_none_or(|at| at >= since));
        // Sorted here, not by the database's collation: every replica orders the same way.
        rows.sort_by(|a, b| a.kid.cmp(&b.kid));
        let keys = rows
            .iter()
            .map(|r| {
                serde_json::from_str::<Value>(&r.jwk)
                    .with_context(|| format!("idp_keys row {issuer:?}/{:?} is not JSON", r.kid))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(json!({ "keys": keys }))
    }

    /// What `compile_snapshot` puts in the issuer's `jwks`: `None` while no key is known yet
    /// (the issuer is left out rather than making the snapshot invalid).
    pub async fn snapshot_jwks(&self, issuer: &str) -> anyhow::Result<Option<Value>> {
        let jwks = self.jwks(issuer).await?;
        if jwks["keys"].as_array().is_some_and(|k| !k.is_empty()) {
            Ok(Some(jwks))
        } else {
            tracing::warn!(%issuer, "no signing keys for the issuer yet; its tokens are refused until the first successful refresh");
            Ok(None)
        }
    }

    /// The stored rows of an issuer, in no particular order.
    pub async fn stored(&self, issuer: &str) -> Result<Vec<StoredKey>, sqlx::Error> {
        let rows =
            sqlx::query("SELECT kid, jwk, first_seen, retired_at FROM idp_keys WHERE issuer = $1")
                .bind(issuer)
                .fetch_all(self.0.db.pool())
                .await?;
        rows.iter().map(stored_key).collect()
    }

    /// Applies the diff between the stored and published keys in one transaction; `true` when
    /// something was written. Idempotent, so replicas refreshing at once converge.
    pub async fn store(
        &self,
        issuer: &str,
        published: &[PublishedKey],
    ) -> Result<bool, sqlx::Error> {
        let at = now();
        let mut tx = self.0.db.begin_write().await?;
        let rows =
            sqlx::query("SELECT kid, jwk, first_seen, retired_at FROM idp_keys WHERE issuer = $1")
                .bind(issuer)
                .fetch_all(&mut *tx)
                .await?;
        let stored = rows
            .iter()
            .map(stored_key)
            .collect::<Result<Vec<_>, sqlx::Error>>()?;
        let plan = plan(&stored, published, at, self.overlap_seconds());
        for key in &plan.upsert {
            sqlx::query(
                "INSERT INTO idp_keys (issuer, kid, jwk, first_seen, retired_at) \
                 VALUES ($1, $2, $3, $4, NULL) \
                 ON CONFLICT (issuer, kid) DO UPDATE SET jwk = excluded.jwk, retired_at = NULL",
            )
            .bind(issuer)
            .bind(&key.kid)
            .bind(&key.jwk)
            .bind(at)
            .execute(&mut *tx)
            .await?;
        }
        for kid in &plan.retire {
            sqlx::query(
                "UPDATE idp_keys SET retired_at = $3 \
                 WHERE issuer = $1 AND kid = $2 AND retired_at IS NULL",
            )
            .bind(issuer)
            .bind(kid)
            .bind(at)
            .execute(&mut *tx)
            .await?;
            tracing::info!(%issuer, %kid, overlap_seconds = self.overlap_seconds(), "IdP stopped publishing a key; trusted until the overlap ends");
        }
        for kid in &plan.delete {
            sqlx::query(
                "DELETE FROM idp_keys WHERE issuer = $1 AND kid = $2 AND retired_at IS NOT NULL",
            )
            .bind(issuer)
            .bind(kid)
            .execute(&mut *tx)
            .await?;
            tracing::info!(%issuer, %kid, "retired IdP key past the overlap; no longer trusted");
        }
        tx.commit().await?;
        Ok(!plan.is_empty())
    }

    /// Runs the schedule: a refresh at once, then every refresh interval; after an error the
    /// next try comes sooner (from the minimum interval, doubling, with jitter, up to the
    /// refresh interval) and the stored keys stay. `on_change` is called whenever the stored
    /// keys change (also from [`IdpKeys::refresh_if_due_for_unknown_kid`]).
    pub fn spawn(
        self,
        on_change: impl Fn() + Send + Sync + 'static,
    ) -> tokio::task::JoinHandle<()> {
        let _ = self.0.on_change.set(Box::new(on_change));
        tokio::spawn(async move { self.run().await })
    }

    async fn run(self) {
        let Some(idp) = &self.0.idp else {
            tracing::debug!("no identity provider configured; no keys to fetch");
            return;
        };
        if idp.jwks.is_some() {
            tracing::info!(issuer = %idp.issuer, "PORTCULLIS_IDP_JWKS_FILE is set: the snapshot uses that static JWKS; the IdP's keys are not fetched");
            return;
        }
        let mut failures: u32 = 0;
        loop {
            let wait = match self.refresh().await {
                Ok(changed) => {
                    if failures > 0 {
                        tracing::info!(issuer = %idp.issuer, "IdP keys fetched again");
                    }
                    failures = 0;
                    if changed {
                        self.notify();
                    }
                    self.0.keys.refresh_interval
                }
                Err(e) => {
                    failures = failures.saturating_add(1);
                    let wait = backoff(
                        failures,
                        self.0.keys.min_refresh_interval,
                        self.0.keys.refresh_interval,
                    );
                    tracing::warn!(issuer = %idp.issuer, error = %e, retry_in_seconds = wait.as_secs(), "IdP key refresh failed; keeping the last good keys");
                    // Retired keys still expire while the IdP is unreachable.
                    match self.expire_retired().await {
                        Ok(true) => self.notify(),
                        Ok(false) => {}
                        Err(e) => tracing::warn!(error = %e, "expiring retired IdP keys failed"),
                    }
                    wait
                }
            };
            tokio::time::sleep(wait).await;
        }
    }

    fn notify(&self) {
        if let Some(on_change) = self.0.on_change.get() {
            on_change();
        }
    }

    fn overlap_seconds(&self) -> i64 {
        i64::try_from(self.0.keys.overlap.as_secs()).unwrap_or(i64::MAX / 2)
    }

    async fn jwks_uri(&self) -> Result<url::Url, IdpKeysError> {
        if let Some(uri) = &self.0.keys.jwks_uri {
            return Ok(uri.clone());
        }
        let doc = self
            .0
            .metadata
            .get(self.0.idp.as_ref())
            .await
            .map_err(|e| match e {
                IdpMetadataError::Unavailable { cause } => IdpKeysError::Discovery(cause),
                other => IdpKeysError::Discovery(other.to_string()),
            })?;
        let uri = doc
            .get("jwks_uri")
            .and_then(Value::as_str)
            .ok_or(IdpKeysError::NoJwksUri)?;
        check_jwks_uri(uri)
    }
}

/// The delay before retry `failures` (1 = first): the minimum interval doubled per failure, at
/// most the refresh interval, ±20 % jitter so replicas do not retry in step.
fn backoff(failures: u32, min: Duration, max: Duration) -> Duration {
    use rand::Rng as _;
    let base = min
        .saturating_mul(1u32 << failures.saturating_sub(1).min(16))
        .min(max);
    base.mul_f64(rand::thread_rng().gen_range(0.8..1.2))
}

/// Fetches and parses a JWKS document: success status, a JSON content type (when one is
/// given), at most [`MAX_JWKS_BYTES`].
pub async fn fetch_jwks(client: &reqwest::Client, uri: &url::Url) -> Result<Value, IdpKeysError> {
    let fail = |message: String| IdpKeysError::Fetch {
        uri: uri.to_string(),
        message,
    };
    let mut response = client
        .get(uri.clone())
        .header(
            reqwest::header::ACCEPT,
            "application/jwk-set+json, application/json",
        )
        .send()
        .await
        .map_err(|e| fail(crate::outbound::error_chain(&e)))?;
    if !response.status().is_success() {
        return Err(fail(format!("HTTP {}", response.status())));
    }
    if let Some(content_type) = response.headers().get(reqwest::header::CONTENT_TYPE) {
        let text = content_type.to_str().unwrap_or("").to_ascii_lowercase();
        let media_type = text.split(';').next().unwrap_or("").trim();
        let is_json = media_type == "application/json"
            || (media_type.starts_with("application/") && media_type.ends_with("+json"));
        if !is_json {
            return Err(IdpKeysError::ContentType {
                uri: uri.to_string(),
                content_type: text,
            });
        }
    }
    let too_large = || IdpKeysError::TooLarge {
        uri: uri.to_string(),
        limit: MAX_JWKS_BYTES,
    };
    if response
        .content_length()
        .is_some_and(|n| n > MAX_JWKS_BYTES as u64)
    {
        return Err(too_large());
    }
    // Read in chunks so a server that lies about (or omits) its length cannot make us buffer
    // more than the limit.
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| fail(crate::outbound::error_chain(&e)))?
    {
        if body.len() + chunk.len() > MAX_JWKS_BYTES {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    serde_json::from_slice(&body).map_err(|e| IdpKeysError::InvalidJwks {
        uri: uri.to_string(),
        problem: format!("not JSON ({e})"),
    })
}

fn stored_key(row: &sqlx::any::AnyRow) -> Result<StoredKey, sqlx::Error> {
    Ok(StoredKey {
        kid: row.try_get("kid")?,
        jwk: row.try_get("jwk")?,
        first_seen: row.try_get("first_seen")?,
        retired_at: row.try_get("retired_at")?,
    })
}
