//! Storage: SQLite by default, PostgreSQL when `DATABASE_URL` says `postgres://`.
//!
//! One code path for both through sqlx's `Any` driver: the SQL is portable (TEXT and BIGINT
//! columns, JSON text for lists, `$n` placeholders, `ON CONFLICT` upserts), migrations live in
//! `control-plane/migrations/` and run at start.

//!
//! Storage owns the connection and the migrations; each domain keeps its own SQL beside it
//! (`registry` its servers, scopes, mappings and keys; `sync` the snapshot versions; `audit`
//! the trail; `idp::keys` the IdP's keys), as `impl Db` blocks or functions over [`Db::pool`].
//! A write to a snapshot input records what it changed on the handle ([`ChangeSet`]), which
//! `sync` reads to rebuild only that.

mod changes;

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::AnyPool;

use crate::config::{is_postgres_url, Config};

pub use changes::{ChangeSet, Changed};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbKind {
    Sqlite,
    Postgres,
}

/// The database handle; cheap to clone.
#[derive(Debug, Clone)]
pub struct Db {
    pool: AnyPool,
    kind: DbKind,
    /// Snapshot inputs written through this handle (and its clones) since the last rebuild.
    recorded: Arc<Mutex<changes::Recorded>>,
    /// Random hex naming this handle among the replicas on one database (the payload of its
    /// change notifications).
    replica_id: Arc<str>,
}

pub(crate) fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Unix milliseconds.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl Db {
    /// Opens the configured database (creating the SQLite file and its directory on first
    /// start) and runs the migrations.
    pub async fn connect(config: &Config) -> anyhow::Result<Db> {
        let url = match &config.database_url {
            Some(url) => url.clone(),
            None => {
                std::fs::create_dir_all(&config.data_dir).with_context(|| {
                    format!("creating data directory {}", config.data_dir.display())
                })?;
                let file = config.data_dir.join("portcullis.db");
                format!("sqlite://{}?mode=rwc", file.display())
            }
        };
        Db::connect_url(&url).await
    }

    /// Opens `url` (`sqlite:…` or `postgres://…`) and runs the migrations.
    pub async fn connect_url(url: &str) -> anyhow::Result<Db> {
        sqlx::any::install_default_drivers();
        let kind = if is_postgres_url(url) {
            DbKind::Postgres
        } else if url.starts_with("sqlite:") {
            DbKind::Sqlite
        } else {
            anyhow::bail!("DATABASE_URL: expected postgres://… or sqlite:…");
        };
        let mut options = AnyPoolOptions::new()
            .max_connections(if kind == DbKind::Sqlite { 4 } else { 8 })
            .acquire_timeout(std::time::Duration::from_secs(5));
        if kind == DbKind::Sqlite {
            options = options.after_connect(|conn, _| {
                Box::pin(async move {
                    sqlx::query("PRAGMA foreign_keys = ON")
                        .execute(&mut *conn)
                        .await?;
                    sqlx::query("PRAGMA busy_timeout = 5000")
                        .execute(&mut *conn)
                        .await?;
                    Ok(())
                })
            });
        }
        let pool = options
            .connect(url)
            .await
            .with_context(|| format!("connecting to the {kind:?} database"))?;
        if kind == DbKind::Sqlite {
            sqlx::query("PRAGMA journal_mode = WAL")
                .execute(&pool)
                .await
                .context("enabling WAL")?;
        }
        MIGRATOR
            .run(&pool)
            .await
            .context("running database migrations")?;
        Ok(Db {
            pool,
            kind,
            recorded: Arc::default(),
            replica_id: format!("{:016x}", rand::random::<u64>()).into(),
        })
    }

    /// This handle's id among the replicas (see the field).
    pub fn replica_id(&self) -> &str {
        &self.replica_id
    }

    /// Notes that a snapshot input changed (called by the write, after it succeeded).
    pub(crate) fn record_change(&self, change: Changed) {
        let mut recorded = self.recorded.lock().unwrap_or_else(PoisonError::into_inner);
        recorded.generation += 1;
        recorded.changes.add(change);
    }

    /// Notes that something changed and nothing more precise is known: the next rebuild
    /// reads everything.
    pub(crate) fn record_unknown_change(&self) {
        let mut recorded = self.recorded.lock().unwrap_or_else(PoisonError::into_inner);
        recorded.generation += 1;
        recorded.changes.everything = true;
    }

    /// How many changes were recorded so far (to tell whether a request recorded any).
    pub(crate) fn change_generation(&self) -> u64 {
        self.recorded
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .generation
    }

    /// The changes recorded since the last call, emptied.
    pub(crate) fn take_changes(&self) -> ChangeSet {
        std::mem::take(
            &mut self
                .recorded
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .changes,
        )
    }

    /// Puts changes back (a rebuild that failed to read them); merged with newer ones.
    pub(crate) fn restore_changes(&self, changes: ChangeSet) {
        self.recorded
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .changes
            .merge(changes);
    }

    /// The pool, for the domains' own SQL.
    pub(crate) fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub fn kind(&self) -> DbKind {
        self.kind
    }

    /// A transaction that will write. On SQLite it takes the write lock at once (`BEGIN
    /// IMMEDIATE`, so `busy_timeout` queues it behind other writers): a deferred one that reads
    /// first is refused "database is locked" when another connection wrote in between (the
    /// audit trail writes all the time). On PostgreSQL, a plain one.
    pub async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>, sqlx::Error> {
        match self.kind {
            DbKind::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await,
            DbKind::Postgres => self.pool.begin().await,
        }
    }

    /// `SELECT 1`, for readiness.
    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(|_| ())
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Reads a JSON text column into a list.
pub(crate) fn json_list<T: serde::de::DeserializeOwned>(
    row: &AnyRow,
    column: &str,
) -> Result<T, sqlx::Error> {
    use sqlx::Row as _;
    let text: String = row.try_get(column)?;
    serde_json::from_str(&text).map_err(|e| sqlx::Error::Decode(Box::new(e)))
}
