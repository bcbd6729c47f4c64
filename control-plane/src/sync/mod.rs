//! Versioned policy snapshots for the filters.
//!
//! The registry is compiled into policy snapshot v1, validated with the same `policy` crate the
//! filters run, and published on a watch channel that `GET /v1/policy` long-polls and the xDS
//! server follows. Versions come from the database (`policy_versions`): the same content keeps
//! its version (no churn), new content gets the next number, and every replica on one database
//! agrees on both.
//!
//! A change costs what it changed: the writes record what they changed
//! ([`crate::storage::ChangeSet`]), the rebuild re-reads only that ([`model`]), the result is a
//! [`SnapshotDelta`] that the policy applies in place and filters that are up to date receive
//! instead of the whole snapshot (the last [`MAX_DELTAS`] are kept). The whole snapshot is
//! written only when a filter asks for it.
//!
//! A rebuild happens when the API changed something here, when another replica announced a change
//! (PostgreSQL `LISTEN portcullis_changes`), when the IdP's keys changed, and every
//! [`SAFETY_NET`] in case a notification was lost (those read everything and compare).

mod model;
mod spec;
#[cfg(test)]
mod tests;
mod versions;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use policy::keys::Jwks;
use policy::snapshot::SnapshotDelta;
use tokio::sync::{watch, Notify};

use crate::idp::keys::IdpKeys;
use crate::registry::{Server, SnapshotKeys, SnapshotSettings};
use crate::storage::{ChangeSet, Db};
use model::Model;
use spec::SpecState;
pub use versions::CHANGES_CHANNEL;

/// Rebuild at least this often even without a notification.
pub const SAFETY_NET: Duration = Duration::from_secs(30);
/// Deltas kept for filters that are behind; one further behind gets the whole snapshot.
pub const MAX_DELTAS: usize = 64;
/// And at most this many bytes of them.
const MAX_DELTA_BYTES: usize = 4 << 20;

/// One compiled, validated snapshot as served.
pub struct Published {
    pub version: u64,
    /// Lowercase hex content hash (without the version), see `spec.rs`.
    pub hash: String,
    /// Quoted entity tag: `"<version>-<first 16 hex of hash>"`.
    pub etag: String,
    /// The content, for the whole snapshot when a filter needs it.
    spec: SpecState,
    /// The whole snapshot JSON, written on first need.
    body: tokio::sync::OnceCell<Bytes>,
    /// The deltas that led here, oldest first: each one's base ETag and its JSON line.
    deltas: Arc<[(String, Bytes)]>,
    /// The registry it was compiled from (routes for xDS); the same `Arc` until a server
    /// changes.
    pub servers: Arc<[Server]>,
    /// The snapshot compiled by the `policy` crate, as every filter will.
    pub policy: Arc<policy::Policy>,
    /// The IdP's keys in it (for the API's own token checks).
    pub idp_jwks: Option<Jwks>,
    /// How long each step of compiling it took.
    pub timings: CompileTimings,
}

/// Where the time of one rebuild went (logged with every published snapshot; a handful of
/// clock reads per rebuild).
#[derive(Debug, Clone, Copy, Default)]
pub struct CompileTimings {
    /// Reading what changed from storage (everything, when the change is not known).
    pub read: Duration,
    /// Compiling the changed entries (or all of them) and comparing them with the last.
    pub compile: Duration,
    /// The content hash, and the delta written as JSON (or the whole snapshot, when there is
    /// no previous one to apply it to).
    pub serialize_hash: Duration,
    /// Assigning the version (`policy_versions`).
    pub version: Duration,
    /// Validating: the delta applied to the last policy (or `Policy::from_json` on the whole
    /// snapshot).
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
            .field("deltas", &self.deltas.len())
            .finish_non_exhaustive()
    }
}

impl Published {
    /// The whole snapshot JSON (written once, off the async threads, on first need).
    pub async fn body(&self) -> Result<Bytes, PublishError> {
        self.body
            .get_or_try_init(|| async {
                let (spec, version) = (self.spec.clone(), self.version);
                tokio::task::spawn_blocking(move || spec.to_json(version))
                    .await
                    .map_err(|e| PublishError::Compile(e.into()))?
                    .map(Bytes::from)
                    .map_err(|e| PublishError::Compile(e.into()))
            })
            .await
            .cloned()
    }

    /// The deltas from the snapshot tagged `etag` (without its quotes) to this one, one JSON
    /// object per line, if they are still kept.
    pub fn deltas_since(&self, etag: &str) -> Option<Bytes> {
        let start = self
            .deltas
            .iter()
            .position(|(base, _)| base.trim_matches('"') == etag)?;
        let lines = &self.deltas[start..];
        let mut body = Vec::with_capacity(lines.iter().map(|(_, l)| l.len()).sum());
        for (_, line) in lines {
            body.extend_from_slice(line);
        }
        Some(Bytes::from(body))
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

/// A whole read of storage made beside the rebuild loop, so that reading 10,000 servers does not
/// hold back the changes recorded meanwhile. The loop keeps applying those and notes them here;
/// the read, done, is caught up with them and compared with the loop's model.
#[derive(Default)]
struct Background {
    running: bool,
    /// Another whole read was asked for while one ran (it may have started too early).
    again: bool,
    /// Change sets the loop applied since the read started, oldest first.
    applied: Vec<ChangeSet>,
    /// More were applied than are kept: the read is thrown away and made again.
    overflowed: bool,
    /// The finished read, compiled.
    done: Option<Model>,
}

/// Change sets kept for a background read to catch up with.
const MAX_APPLIED_DURING_READ: usize = 4096;

/// Called with every newly published snapshot, before long-polls see it.
pub type OnPublish = Box<dyn Fn(&Published) + Send + Sync>;

/// Holds the current snapshot and wakes the rebuild task; cheap to clone.
#[derive(Clone)]
pub struct Publisher {
    inner: Arc<Inner>,
}

struct Inner {
    sources: Sources,
    /// The registry as the current snapshot was compiled from it; `None` before the first
    /// rebuild and after a delta failed to validate (the next rebuild reads everything).
    model: tokio::sync::Mutex<Option<Model>>,
    /// The whole read that runs beside the rebuild loop (see [`Publisher::read_in_background`]).
    background: std::sync::Mutex<Background>,
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
                model: tokio::sync::Mutex::new(None),
                background: std::sync::Mutex::new(Background::default()),
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

    /// Asks this replica's rebuild task for a new snapshot of what was recorded.
    pub fn wake(&self) {
        self.inner.wake.notify_one();
    }

    /// Another replica changed something (or might have): read everything here.
    fn changed_elsewhere(&self) {
        self.inner.sources.db.record_unknown_change();
        self.wake();
    }

    /// Something in the database changed and what is not known: the next rebuild reads
    /// everything, here and on every other replica.
    pub async fn changed(&self, db: &Db) {
        db.record_unknown_change();
        self.notify(db).await;
    }

    /// The signing keys or the revoked tokens changed: the issuers are read again.
    pub async fn issuers_changed(&self, db: &Db) {
        db.record_change(crate::storage::Changed::Issuers);
        self.notify(db).await;
    }

    /// The writes recorded what they changed (see `storage::ChangeSet`): rebuild that here, and
    /// tell the other replicas.
    pub async fn notify(&self, db: &Db) {
        self.wake();
        if let Err(e) = db.notify_change().await {
            // The other replicas still pick it up within SAFETY_NET.
            tracing::warn!(error = %e, "could not notify other replicas of a change");
        }
    }

    /// Compiles, versions, validates and publishes what changed now. Publishing the same
    /// content again changes nothing. A change nothing recorded precisely reads everything
    /// before this returns.
    pub async fn rebuild(&self) -> Result<Arc<Published>, PublishError> {
        self.rebuild_with(false).await
    }

    /// [`Publisher::rebuild`]; with `beside` (the rebuild loop), a whole read of storage runs
    /// in a task of its own once there is a model, and is merged by a later call.
    async fn rebuild_with(&self, beside: bool) -> Result<Arc<Published>, PublishError> {
        let mut model = self.inner.model.lock().await;
        let sources = &self.inner.sources;
        let mut changes = sources.db.take_changes();
        let current = self.current();
        let mut fresh = None;
        if beside && model.is_some() && current.is_some() {
            if changes.everything {
                changes.everything = false;
                self.read_in_background();
            }
            fresh = self.finished_background_read();
        }
        let merging = fresh.is_some();
        let outcome = match fresh {
            Some(fresh) => merge(sources, &mut model, current.as_deref(), fresh, &changes).await,
            None => rebuild_from(sources, &mut model, current.as_deref(), None, &changes).await,
        };
        if outcome.is_ok() {
            self.note_applied(&changes);
        }
        match outcome {
            Ok(None) => Ok(current
                .ok_or_else(|| PublishError::Compile(anyhow::anyhow!("nothing published yet")))?),
            Ok(Some(published)) => {
                let published = Arc::new(published);
                let t = &published.timings;
                tracing::info!(
                    version = published.version,
                    servers = published.spec.server_count(),
                    deltas = published.deltas.len(),
                    delta_bytes = published.deltas.last().map_or(0, |(_, l)| l.len()),
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
            Err(e) => {
                // Read again next time: what failed was not applied.
                sources.db.restore_changes(changes);
                if merging {
                    sources.db.record_unknown_change();
                }
                Err(e)
            }
        }
    }

    fn background(&self) -> std::sync::MutexGuard<'_, Background> {
        self.inner
            .background
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Starts a whole read of storage in a task of its own (or asks for another one after the
    /// one running). Called with the model locked, so the changes applied after it starts are
    /// exactly those [`Publisher::note_applied`] keeps for it.
    fn read_in_background(&self) {
        let mut background = self.background();
        if background.running {
            background.again = true;
            return;
        }
        *background = Background {
            running: true,
            ..Background::default()
        };
        drop(background);
        let publisher = self.clone();
        tokio::spawn(async move {
            let sources = publisher.inner.sources.clone();
            let read = async {
                let (contents, keys) = Model::read_all(&sources).await?;
                tokio::task::spawn_blocking(move || Model::compile_all(&sources, contents, keys))
                    .await
                    .map_err(|e| PublishError::Compile(e.into()))
            }
            .await;
            let mut background = publisher.background();
            background.running = false;
            match read {
                Ok(model) => background.done = Some(model),
                Err(e) => {
                    tracing::error!(error = %e, "reading the whole registry; tried again at the next change or check");
                    background.applied.clear();
                }
            }
            if std::mem::take(&mut background.again) {
                publisher.inner.sources.db.record_unknown_change();
            }
            drop(background);
            publisher.wake();
        });
    }

    /// The finished background read with the change sets applied since it started, unless
    /// too many were to keep (then it is made again).
    fn finished_background_read(&self) -> Option<(Model, Vec<ChangeSet>)> {
        let mut background = self.background();
        let model = background.done.take()?;
        let applied = std::mem::take(&mut background.applied);
        if std::mem::take(&mut background.overflowed) {
            drop(background);
            self.read_in_background();
            return None;
        }
        Some((model, applied))
    }

    /// Keeps a change set the loop applied, for a background read running or done.
    fn note_applied(&self, changes: &ChangeSet) {
        let mut background = self.background();
        if (background.running || background.done.is_some()) && !changes.is_empty() {
            if background.applied.len() >= MAX_APPLIED_DURING_READ {
                background.overflowed = true;
            } else {
                background.applied.push(changes.clone());
            }
        }
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
                match publisher.rebuild_with(true).await {
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
                    _ = safety_net.tick() => publisher.inner.sources.db.record_unknown_change(),
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
        publisher.changed_elsewhere();
        loop {
            match listener.try_recv().await {
                // Our own writes were rebuilt from what they recorded already.
                Ok(Some(n)) if n.payload() == publisher.inner.sources.db.replica_id() => {}
                Ok(Some(_)) => publisher.changed_elsewhere(),
                // The connection was lost and is being re-established; changes may be missed.
                Ok(None) => publisher.changed_elsewhere(),
                Err(e) => {
                    tracing::warn!(error = %e, "LISTEN connection broken; reconnecting");
                    break;
                }
            }
        }
    }
}

/// The snapshot `sources` compile to now, read whole from storage, with `version` (not
/// published, not validated).
pub async fn compile_snapshot(
    sources: &Sources,
    version: u64,
) -> Result<policy::snapshot::Snapshot, PublishError> {
    let (contents, keys) = Model::read_all(sources).await?;
    Ok(crate::registry::compile_snapshot(
        &contents,
        &sources.settings,
        keys,
        version,
    ))
}

/// The signing keys a snapshot carries, read now.
async fn read_keys(sources: &Sources) -> Result<SnapshotKeys, PublishError> {
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
    Ok(SnapshotKeys {
        idp: idp_jwks,
        broker: sources.broker_keys.as_ref().map(|k| k.jwks()),
        broker_revoked,
    })
}

/// The next snapshot from a whole read made beside the loop: the read is brought up to date with
/// the change sets applied since it started and with `changes` (their rows read again now),
/// then compared with the model entry by entry.
async fn merge(
    sources: &Sources,
    slot: &mut Option<Model>,
    current: Option<&Published>,
    (mut fresh, applied): (Model, Vec<ChangeSet>),
    changes: &ChangeSet,
) -> Result<Option<Published>, PublishError> {
    let mut since = ChangeSet::default();
    for set in applied {
        since.merge(set);
    }
    since.merge(changes.clone());
    let rows = Model::read_changes(sources, &since).await?;
    fresh.apply(sources, rows);
    rebuild_from(
        sources,
        slot,
        current,
        Some(fresh),
        &ChangeSet::everything(),
    )
    .await
}

/// The next snapshot after `changes`, or `None` when the content is the same as `current`'s.
/// Recorded changes are re-read alone and published as a delta on `current`; anything else
/// (the first rebuild, an unknown change, a model dropped after a refused delta) reads
/// everything, and is still published as a delta when there is a model to compare with.
/// `fresh`: the whole read, when it was made beside the loop.
async fn rebuild_from(
    sources: &Sources,
    slot: &mut Option<Model>,
    current: Option<&Published>,
    fresh: Option<Model>,
    changes: &ChangeSet,
) -> Result<Option<Published>, PublishError> {
    let mut timings = CompileTimings::default();
    let mut clock = Instant::now();
    let mut lap = || {
        let now = Instant::now();
        std::mem::replace(&mut clock, now).elapsed()
    };
    let delta = match (slot.as_mut(), current) {
        (Some(model), Some(_)) if !changes.everything => {
            if changes.is_empty() {
                return Ok(None);
            }
            let rows = Model::read_changes(sources, changes).await?;
            timings.read = lap();
            Some(model.apply(sources, rows))
        }
        (previous, _) => {
            let mut model = match fresh {
                Some(fresh) => fresh,
                None => {
                    let (contents, keys) = Model::read_all(sources).await?;
                    timings.read = lap();
                    Model::compile_all(sources, contents, keys)
                }
            };
            let delta = match (previous, current) {
                (Some(previous), Some(_)) => {
                    // The same servers keep their `Arc`: xDS follows a new one.
                    if previous.server_list == model.server_list {
                        model.server_list = previous.server_list.clone();
                    }
                    Some(model.spec.delta_from(&previous.spec))
                }
                _ => None,
            };
            *slot = Some(model);
            delta
        }
    };
    let Some(model) = slot.as_ref() else {
        return Err(PublishError::Compile(anyhow::anyhow!("no registry model")));
    };
    if delta.as_ref().is_some_and(SnapshotDelta::is_empty) {
        return Ok(None);
    }
    // What the published snapshot keeps (a copy of the key maps, not of the entries).
    let spec = model.spec.clone();
    timings.compile = lap();
    let hash = spec.hash();
    timings.serialize_hash = lap();
    let version = sources.db.version_for_hash(&hash).await?;
    timings.version = lap();
    let etag = etag(version, &hash);
    let published = match (delta, current) {
        (Some(mut delta), Some(current)) => {
            delta.base = current.etag.clone();
            delta.etag = etag.clone();
            delta.version = version;
            let mut line =
                serde_json::to_vec(&delta).map_err(|e| PublishError::Compile(e.into()))?;
            line.push(b'\n');
            timings.serialize_hash += lap();
            let policy = match current.policy.apply(&delta) {
                Ok(policy) => policy,
                Err(e) => {
                    // Our own delta does not fit our own policy: start again from storage.
                    *slot = None;
                    return Err(PublishError::Invalid(e));
                }
            };
            timings.validate = lap();
            let mut deltas: Vec<(String, Bytes)> = current.deltas.to_vec();
            deltas.push((current.etag.clone(), Bytes::from(line)));
            let mut bytes: usize = deltas.iter().map(|(_, l)| l.len()).sum();
            while deltas.len() > MAX_DELTAS || (bytes > MAX_DELTA_BYTES && deltas.len() > 1) {
                bytes -= deltas[0].1.len();
                deltas.remove(0);
            }
            Published {
                version,
                hash,
                etag,
                spec,
                body: tokio::sync::OnceCell::new(),
                deltas: deltas.into(),
                servers: model.server_list.clone(),
                policy: Arc::new(policy),
                idp_jwks: model.idp_jwks.clone(),
                timings,
            }
        }
        _ => {
            // The first snapshot: written whole and validated as every filter reads it.
            let body = Bytes::from(
                spec.to_json(version)
                    .map_err(|e| PublishError::Compile(e.into()))?,
            );
            timings.serialize_hash += lap();
            let policy = policy::Policy::from_json(&body)?;
            timings.validate = lap();
            Published {
                version,
                hash,
                etag,
                spec,
                body: tokio::sync::OnceCell::new_with(Some(body)),
                deltas: Arc::from([]),
                servers: model.server_list.clone(),
                policy: Arc::new(policy),
                idp_jwks: model.idp_jwks.clone(),
                timings,
            }
        }
    };
    Ok(Some(published))
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

pub fn etag(version: u64, hash: &str) -> String {
    format!("\"{version}-{}\"", &hash[..hash.len().min(16)])
}
