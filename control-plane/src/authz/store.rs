//! The grant state machine over the database: load the records an operation needs into a
//! [`Grants`], run it, write back what changed. Every write is a compare-and-set on the row's
//! version (an insert of a new row must not find one), so two replicas racing on one code
//! or refresh token cannot both win: the loser starts again from the new rows.

use std::collections::HashMap;

use sqlx::Row as _;

use super::grant::{FamilyId, GrantPolicy, Grants, RecordKind};
use super::token::TokenHash;
use crate::storage::Db;

#[derive(Debug, thiserror::Error)]
pub enum GrantStoreError {
    #[error("grant records in the database: {0}")]
    Db(#[from] sqlx::Error),
    #[error(transparent)]
    Record(#[from] super::grant::records::RecordError),
    #[error("grant records kept changing under this request (tried {0} times)")]
    Contended(u32),
}

/// Where an operation starts.
#[derive(Debug, Clone)]
pub enum Start<'a> {
    /// A code (and the family it issued).
    Code(TokenHash),
    /// A refresh token (and its family).
    Refresh(TokenHash),
    /// Every code and family of a client.
    Client(&'a str),
    /// Nothing to load (issuing a code).
    Empty,
}

const ATTEMPTS: u32 = 5;

type Versions = HashMap<(RecordKind, String), (i64, String)>;

impl Db {
    /// Runs `op` on the records `start` names, writing back the changes; retried on a
    /// concurrent change (so `op` must be free of side effects beyond `Grants`).
    pub async fn with_grants<T>(
        &self,
        policy: GrantPolicy,
        start: Start<'_>,
        mut op: impl FnMut(&mut Grants) -> T,
    ) -> Result<T, GrantStoreError> {
        for _ in 0..ATTEMPTS {
            let mut tx = self.begin_write().await?;
            let mut grants = Grants::new(policy);
            let mut versions = Versions::new();
            let mut families = Vec::new();
            let rows = match &start {
                Start::Code(hash) => {
                    load(&mut tx, "kind = 'code' AND record_key = $1", &hash.to_hex()).await?
                }
                Start::Refresh(hash) => {
                    load(
                        &mut tx,
                        "kind = 'refresh' AND record_key = $1",
                        &hash.to_hex(),
                    )
                    .await?
                }
                Start::Client(client) => {
                    load(&mut tx, "client_id = $1 AND kind <> 'refresh'", client).await?
                }
                Start::Empty => Vec::new(),
            };
            for (kind, key, record, version) in rows {
                if let Some(family) = grants.import(kind, &key, &record)? {
                    families.push(family);
                }
                versions.insert((kind, key), (version, record));
            }
            for FamilyId(family) in families {
                if versions.contains_key(&(RecordKind::Family, family.clone())) {
                    continue;
                }
                for (kind, key, record, version) in
                    load(&mut tx, "kind = 'family' AND record_key = $1", &family).await?
                {
                    grants.import(kind, &key, &record)?;
                    versions.insert((kind, key), (version, record));
                }
            }
            let out = op(&mut grants);
            let mut conflict = false;
            for r in grants.export() {
                let expires_at = i64::try_from(r.expires_at.0 / 1000).unwrap_or(i64::MAX);
                let done = match versions.get(&(r.kind, r.key.clone())) {
                    Some((_, before)) if *before == r.record => continue,
                    Some((version, _)) => sqlx::query(
                        "UPDATE oauth_grant_records SET record = $1, version = $2, \
                             expires_at = $3 WHERE kind = $4 AND record_key = $5 AND version = $6",
                    )
                    .bind(&r.record)
                    .bind(version + 1)
                    .bind(expires_at)
                    .bind(r.kind.as_str())
                    .bind(&r.key)
                    .bind(*version)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected(),
                    None => sqlx::query(
                        "INSERT INTO oauth_grant_records \
                             (kind, record_key, client_id, record, version, expires_at) \
                             VALUES ($1, $2, $3, $4, 1, $5) ON CONFLICT DO NOTHING",
                    )
                    .bind(r.kind.as_str())
                    .bind(&r.key)
                    .bind(&r.client_id)
                    .bind(&r.record)
                    .bind(expires_at)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected(),
                };
                if done != 1 {
                    conflict = true;
                    break;
                }
            }
            if conflict {
                tx.rollback().await?;
                continue;
            }
            tx.commit().await?;
            return Ok(out);
        }
        Err(GrantStoreError::Contended(ATTEMPTS))
    }

    /// Removes records past their life plus `keep_seconds` (replays of older codes and
    /// refresh tokens are simply unknown then). Returns how many went.
    pub async fn prune_grant_records(
        &self,
        now: i64,
        keep_seconds: i64,
    ) -> Result<u64, sqlx::Error> {
        let done = sqlx::query("DELETE FROM oauth_grant_records WHERE expires_at < $1")
            .bind(now.saturating_sub(keep_seconds))
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected())
    }
}

async fn load(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    condition: &str,
    value: &str,
) -> Result<Vec<(RecordKind, String, String, i64)>, sqlx::Error> {
    let rows = sqlx::query(&format!(
        "SELECT kind, record_key, record, version FROM oauth_grant_records WHERE {condition}"
    ))
    .bind(value)
    .fetch_all(&mut **tx)
    .await?;
    let mut out = Vec::new();
    for row in rows {
        let kind: String = row.try_get("kind")?;
        let Some(kind) = RecordKind::parse(&kind) else {
            return Err(sqlx::Error::Decode(
                format!("grant record kind {kind:?}").into(),
            ));
        };
        out.push((
            kind,
            row.try_get("record_key")?,
            row.try_get("record")?,
            row.try_get("version")?,
        ));
    }
    Ok(out)
}
