//! Access tokens of revoked grants, until they expire: every policy snapshot lists them (the
//! broker issuer's `revoked_token_ids`), so Envoy refuses them within one snapshot push.

use sqlx::Row as _;

use crate::storage::Db;

impl Db {
    /// Records revoked `jti`s; `expires_at` bounds how long they need listing.
    pub async fn insert_revoked_tokens(
        &self,
        jtis: &[String],
        expires_at: i64,
    ) -> Result<(), sqlx::Error> {
        for jti in jtis {
            sqlx::query(
                "INSERT INTO oauth_revoked_tokens (jti, expires_at) VALUES ($1, $2) \
                 ON CONFLICT (jti) DO NOTHING",
            )
            .bind(jti)
            .bind(expires_at)
            .execute(self.pool())
            .await?;
        }
        Ok(())
    }

    /// The `jti`s still worth listing at `now`, sorted (the snapshot hash must not depend on
    /// row order).
    pub async fn revoked_token_ids(&self, now: i64) -> Result<Vec<String>, sqlx::Error> {
        let rows =
            sqlx::query("SELECT jti FROM oauth_revoked_tokens WHERE expires_at >= $1 ORDER BY jti")
                .bind(now)
                .fetch_all(self.pool())
                .await?;
        rows.iter().map(|r| r.try_get("jti")).collect()
    }

    pub async fn prune_revoked_tokens(&self, now: i64) -> Result<u64, sqlx::Error> {
        let done = sqlx::query("DELETE FROM oauth_revoked_tokens WHERE expires_at < $1")
            .bind(now)
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected())
    }
}
