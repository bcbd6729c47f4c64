//! The `policy_versions` table: one version per distinct snapshot content, shared by every
//! control-plane replica on the same database.

use sqlx::Row as _;

use crate::storage::{now, Db};

/// How often a version is retried when another replica took the same number first.
const MAX_VERSION_RACES: usize = 8;

impl Db {
    /// The version of the snapshot whose content hashes to `hash`: the newest version when its
    /// content is the same (no churn), else a new one, one above the newest.
    pub async fn version_for_hash(&self, hash: &str) -> Result<u64, sqlx::Error> {
        for _ in 0..MAX_VERSION_RACES {
            let newest = sqlx::query(
                "SELECT version, hash FROM policy_versions ORDER BY version DESC LIMIT 1",
            )
            .fetch_optional(self.pool())
            .await?;
            let next = match &newest {
                Some(row) => {
                    let version: i64 = row.try_get("version")?;
                    let newest_hash: String = row.try_get("hash")?;
                    if newest_hash == hash {
                        return Ok(version as u64);
                    }
                    version + 1
                }
                None => 1,
            };
            let inserted = sqlx::query(
                "INSERT INTO policy_versions (version, hash, created_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (version) DO NOTHING",
            )
            .bind(next)
            .bind(hash)
            .bind(now())
            .execute(self.pool())
            .await?;
            if inserted.rows_affected() == 1 {
                return Ok(next as u64);
            }
            // Another replica assigned `next` first; look again (it may be our content).
        }
        Err(sqlx::Error::Protocol(
            "could not assign a policy version: too many concurrent writers".into(),
        ))
    }

    /// Sends the cross-replica change notification (PostgreSQL `NOTIFY`, with this handle's
    /// [`Db::replica_id`] as payload so its own listener can ignore it); nothing on SQLite,
    /// where one process owns the file.
    pub async fn notify_change(&self) -> Result<(), sqlx::Error> {
        if self.kind() == crate::storage::DbKind::Postgres {
            // A plain statement: the `Any` driver cannot decode `pg_notify`'s `void` result.
            // The payload is our own hex id, safe in a literal.
            let statement = format!("NOTIFY {CHANGES_CHANNEL}, '{}'", self.replica_id());
            sqlx::query(&statement).execute(self.pool()).await?;
        }
        Ok(())
    }
}

/// The PostgreSQL channel replicas announce registry changes on.
pub const CHANGES_CHANNEL: &str = "portcullis_changes";
