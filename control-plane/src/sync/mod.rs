//! Versioned policy snapshots for the filters.
//!
//! The registry is compiled into policy snapshot v1 after every change, validated with the same
//! `policy` crate the filters run, and published on a watch channel that `GET /v1/policy`
//! long-polls and the xDS server follows. Versions come from the database (`policy_versions`):
//! the same content keeps its version (no churn), new content gets the next number, and every
//! replica on one database agrees on both.
//!
//! A rebuild happens when the API changed something here, when another replica announced a change
//! (PostgreSQL `LISTEN portcullis_changes`), when the IdP's keys changed, and every
//! [`SAFETY_NET`] in case a notification was lost.

#[cfg(test)]
mod tests;
mod versions;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use policy::keys::Jwks;
use policy::snapshot::Snapshot;
use sha2::{Digest as _, Sha256};
use tokio::sync::{watch, Notify};

use crate::idp::keys::IdpKeys;
use crate::registry::{self, RegistryContents, Server, SnapshotKeys, SnapshotSettings};
use crate::storage::Db;
pub use versions::CHANGES_CHANNEL;

/// Rebuild at least this often even without a notification.
pub const SAFETY_NET: Duration = Duration::from_secs(30);

/// One compiled, validated snapshot as served.
pub struct Published {
    pub version: u64,
    /// Lowercase hex SHA-256 of the content without its version.
    pub hash: String,
    /// Quoted entity tag: `"<version>-<first 16 hex of hash>"`.
    pub etag: String,
    /// The snapshot JSON.
    pub body: Bytes,
    /// The registry it was compiled from (routes for xDS).
    pub servers: Arc<[Server]>,
    /// The snapshot compiled by the `policy` crate, as every filter will.
    pub policy: Arc<policy::Policy>,
    /// The IdP's keys in it (for the API's own token checks).
    pub idp_jwks: Option<Jwks>,
    /// How long each step of compiling it took.
    pub timings: CompileTimings,
}

/// Where the time of one [`compile`] went (logged with every published snapshot; a handful of
/// clock reads per rebuild).
#[derive(Debug, Clone, Copy, Default)]
pub struct CompileTimings {
    /// Reading the registry and the IdP's keys from storage.
    pub read: Duration,
    /// `registry::compile_snapshot`: the registry as the `policy` crate's snapshot types.
    pub compile: Duration,
    /// Writing the snapshot as JSON (once, with version 0), hashing it, and putting the
    /// version into the bytes.
    pub serialize_hash: Duration,
    /// Assigning the version (`policy_versions`).
    pub version: Duration,
    /// `policy::Policy::from_json` on the served bytes.
    pub validate: Duration,
}

impl CompileTimings {
    pub fn total(&self) -> Duration {
        self.read + self.compile + self.serialize_hash + self.version + self.validate
    }
}

impl std::fmt::Debug for Published {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Published")
            .field("version", &self.version)
            .field("etag", &self.etag)
            .field("bytes", &self.body.len())
            .finish_non_exhaustive()
    }
}

/// Why a snapshot could not be published; the previous one stays.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("reading the registry: {0:#}")]
    Compile(anyhow::Error),
    #[error("assigning a version: {0}")]
    Version(#[from] sqlx::Error),
    #[error("the compiled snapshot does not validate: {0}")]
    Invalid(#[from] policy::SnapshotError),
}

/// What a snapshot is compiled from: the registry in storage, the IdP's keys, and the settings
/// that shape it.
#[derive(Clone)]
pub struct Sources {
    pub db: Db,
    pub idp_keys: IdpKeys,
    pub settings: Arc<SnapshotSettings>,
    /// Broker mode: the authorization server's signing keys, published in every snapshot.
    pub broker_keys: Option<Arc<crate::authz::signing::SigningKeys>>,
    /// PostgreSQL URL to `LISTEN` on for other replicas' changes (`None`: a single replica).
    pub listen_url: Option<String>,
}

/// Called with every newly published snapshot, before long-polls see it.
pub type OnPublish = Box<dyn Fn(&Published) + Send + Sync>;

/// Holds the current snapshot and wakes the rebuild task; cheap to clone.
#[derive(Clone)]
pub struct Publisher {
    inner: Arc<Inner>,
}

struct Inner {
    sources: Sources,
    on_publish: OnPublish,
    tx: watch::Sender<Option<Arc<Published>>>,
    wake: Notify,
    /// Set at shutdown so held long-polls answer at once instead of delaying it.
    closing: watch::Sender<bool>,
}

impl Publisher {
    pub fn new(sources: Sources, on_publish: OnPublish) -> Publisher {
        Publisher {
            inner: Arc::new(Inner {
                sources,
                on_publish,
                tx: watch::Sender::new(None),
                wake: Notify::new(),
                closing: watch::Sender::new(false),
            }),
        }
    }

    /// What this publisher compiles from.
    pub fn sources(&self) -> &Sources {
        &self.inner.sources
    }

    /// Follows every published snapshot (`None` until the first one).
    pub fn subscribe(&self) -> watch::Receiver<Option<Arc<Published>>> {
        self.inner.tx.subscribe()
    }

    pub fn current(&self) -> Option<Arc<Published>> {
        self.inner.tx.borrow().clone()
    }

    /// Releases every held long-poll (the server is shutting down).
    pub fn close(&self) {
        self.inner.closing.send_replace(true);
    }

    /// Resolves once [`Publisher::close`] was called.
    pub async fn closed(&self) {
        let mut rx = self.inner.closing.subscribe();
        let _ = rx.wait_for(|closing| *closing).await;
    }

    /// Asks this replica's rebuild task for a new snapshot.
    pub fn wake(&self) {
        self.inner.wake.notify_one();
    }

    /// Something in the database changed: rebuild here and tell the other replicas.
    pub async fn changed(&self, db: &Db) {
        self.wake();
        if let Err(e) = db.notify_change().await {
            // The other replicas still pick it up within SAFETY_NET.
            tracing::warn!(error = %e, "could not notify other replicas of a change");
        }
    }

    /// Compiles, versions, validates and publishes the registry now. Publishing the same
    /// content again changes nothing.
    pub async fn rebuild(&self) -> Result<Arc<Published>, PublishError> {
        let published = Arc::new(compile(&self.inner.sources).await?);
        let unchanged = self
            .inner
            .tx
            .borrow()
            .as_ref()
            .is_some_and(|p| p.etag == published.etag);
        if unchanged {
            if let Some(current) = self.current() {
                return Ok(current);
            }
        }
        let t = &published.timings;
        tracing::info!(
            version = published.version,
            servers = published.servers.len(),
            bytes = published.body.len(),
            total_us = micros(t.total()),
            read_us = micros(t.read),
            compile_us = micros(t.compile),
            serialize_hash_us = micros(t.serialize_hash),
            version_us = micros(t.version),
            validate_us = micros(t.validate),
            "policy snapshot published"
        );
        (self.inner.on_publish)(&published);
        self.inner.tx.send_replace(Some(published.clone()));
        Ok(published)
    }

    /// Runs the rebuild loop (and, on PostgreSQL, the listener for other replicas' changes)
    /// until the process ends.
    pub fn spawn(&self) {
        if let Some(url) = self.inner.sources.listen_url.clone() {
            tokio::spawn(listen_for_changes(url, self.clone()));
        }
        let publisher = self.clone();
        tokio::spawn(async move {
            let mut safety_net = tokio::time::interval(SAFETY_NET);
            let mut retry = Duration::from_millis(200);
            loop {
                match publisher.rebuild().await {
                    Ok(_) => retry = Duration::from_millis(200),
                    Err(e) => {
                        tracing::error!(error = %e, "policy snapshot not published; the previous one stays");
                        tokio::time::sleep(retry).await;
                        retry = (retry * 2).min(Duration::from_secs(10));
                        continue;
                    }
                }
                tokio::select! {
                    _ = publisher.inner.wake.notified() => {}
                    _ = safety_net.tick() => {}
                }
            }
        });
    }
}

/// Wakes the rebuild task whenever another replica announces a change. A lost connection is
/// re-established by `PgListener`; a rebuild follows it since notifications may have been missed.
async fn listen_for_changes(url: String, publisher: Publisher) {
    let mut backoff = Duration::from_millis(500);
    loop {
        let mut listener = match sqlx::postgres::PgListener::connect(&url).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "LISTEN connection failed; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(10));
                continue;
            }
        };
        if let Err(e) = listener.listen(CHANGES_CHANNEL).await {
            tracing::warn!(error = %e, "LISTEN failed; retrying");
            tokio::time::sleep(backoff).await;
            continue;
        }
        backoff = Duration::from_millis(500);
        publisher.wake();
        loop {
            match listener.try_recv().await {
                Ok(Some(_)) => publisher.wake(),
                // The connection was lost and is being re-established; changes may be missed.
                Ok(None) => publisher.wake(),
                Err(e) => {
                    tracing::warn!(error = %e, "LISTEN connection broken; reconnecting");
                    break;
                }
            }
        }
    }
}

/// The registry and the IdP's keys, read once.
async fn read_inputs(sources: &Sources) -> Result<(RegistryContents, SnapshotKeys), PublishError> {
    let contents = RegistryContents::read(&sources.db)
        .await
        .map_err(|e| PublishError::Compile(e.into()))?;
    let idp_jwks = match &sources.settings.idp {
        Some(idp) => sources
            .idp_keys
            .snapshot_jwks(&idp.issuer)
            .await
            .map_err(PublishError::Compile)?
            .map(serde_json::from_value::<Jwks>)
            .transpose()
            .map_err(|e| {
                PublishError::Compile(anyhow::anyhow!(
                    "the signing keys of {} are not a JWKS: {e}",
                    idp.issuer
                ))
            })?,
        None => None,
    };
    let broker_revoked = match &sources.broker_keys {
        Some(_) => sources
            .db
            .revoked_token_ids(crate::storage::now())
            .await
            .map_err(|e| PublishError::Compile(e.into()))?,
        None => Vec::new(),
    };
    let keys = SnapshotKeys {
        idp: idp_jwks,
        broker: sources.broker_keys.as_ref().map(|k| k.jwks()),
        broker_revoked,
    };
    Ok((contents, keys))
}

/// The snapshot `sources` compile to now, with `version` (not published, not validated).
pub async fn compile_snapshot(sources: &Sources, version: u64) -> Result<Snapshot, PublishError> {
    let (contents, keys) = read_inputs(sources).await?;
    Ok(registry::compile_snapshot(
        &contents,
        &sources.settings,
        keys,
        version,
    ))
}

/// The registry as a snapshot, its version and hash, validated. The snapshot is built as the
/// `policy` crate's types and written once as served; what is validated is those bytes, read
/// as every filter reads them.
async fn compile(sources: &Sources) -> Result<Published, PublishError> {
    let mut timings = CompileTimings::default();
    let mut clock = Instant::now();
    let mut lap = || {
        let now = Instant::now();
        std::mem::replace(&mut clock, now).elapsed()
    };
    let (contents, keys) = read_inputs(sources).await?;
    timings.read = lap();
    let settings = &sources.settings;
    let idp_jwks = keys.idp.clone();
    let mut snapshot = registry::compile_snapshot(&contents, settings, keys, 0);
    timings.compile = lap();
    // Written once: the hash is of these bytes (version 0), the body is them with the version.
    let (hash, unversioned) =
        content_hash(&mut snapshot).map_err(|e| PublishError::Compile(e.into()))?;
    timings.serialize_hash = lap();
    let version = sources.db.version_for_hash(&hash).await?;
    timings.version = lap();
    snapshot.version = version;
    let body = Bytes::from(
        with_version(unversioned, &snapshot).map_err(|e| PublishError::Compile(e.into()))?,
    );
    timings.serialize_hash += lap();
    // Validated as every filter will read it: these bytes, by the same crate.
    let policy = policy::Policy::from_json(&body)?;
    timings.validate = lap();
    Ok(Published {
        version,
        etag: etag(version, &hash),
        hash,
        body,
        servers: contents.servers,
        policy: Arc::new(policy),
        idp_jwks,
        timings,
    })
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// `serde_json::to_vec(snapshot)`, made from the bytes the snapshot was written as with version
/// 0: `format` and `version` are its first two fields, so only that head differs and the rest is
/// kept (a second write of a 10,000-server snapshot costs tens of ms). Written again in full
/// if the bytes do not start as expected.
fn with_version(unversioned: Vec<u8>, snapshot: &Snapshot) -> Result<Vec<u8>, serde_json::Error> {
    let head = format!("{{\"format\":{},\"version\":", snapshot.format);
    let zero = [head.as_bytes(), b"0,"].concat();
    if !unversioned.starts_with(&zero) {
        return serde_json::to_vec(snapshot);
    }
    let version = snapshot.version.to_string();
    let mut body = Vec::with_capacity(unversioned.len() + version.len());
    body.extend_from_slice(head.as_bytes());
    body.extend_from_slice(version.as_bytes());
    body.extend_from_slice(&unversioned[zero.len() - 1..]);
    Ok(body)
}

/// The snapshot as written with version 0 in place of its own (restored after), and the
/// SHA-256 of those bytes: the same content hashes the same whatever version it was given.
pub fn content_hash(snapshot: &mut Snapshot) -> Result<(String, Vec<u8>), serde_json::Error> {
    let version = std::mem::take(&mut snapshot.version);
    let bytes = serde_json::to_vec(snapshot);
    snapshot.version = version;
    let bytes = bytes?;
    Ok((hex(&Sha256::digest(&bytes)), bytes))
}

pub fn etag(version: u64, hash: &str) -> String {
    format!("\"{version}-{}\"", &hash[..hash.len().min(16)])
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
