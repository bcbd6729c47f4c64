//! The `api_keys` table.

use sqlx::any::AnyRow;
use sqlx::Row as _;

use crate::registry::ApiKey;
use crate::storage::{json_list, Changed, Db};

fn key_from_row(row: &AnyRow) -> Result<ApiKey, sqlx::Error> {
    Ok(ApiKey {
        name: row.try_get("name")?,
        sha256: row.try_get("sha256")?,
        subject: row.try_get("subject")?,
        groups: json_list(row, "groups_json")?,
        scopes: json_list(row, "scopes_json")?,
        expires_at: row.try_get("expires_at")?,
        created_at: row.try_get("created_at")?,
    })
}

const COLUMNS: &str = "name, sha256, subject, groups_json, scopes_json, expires_at, created_at";

impl Db {
    pub async fn list_api_keys(&self) -> Result<Vec<ApiKey>, sqlx::Error> {
        let rows = sqlx::query(&format!("SELECT {COLUMNS} FROM api_keys ORDER BY name"))
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(key_from_row).collect()
    }

    /// Stores a new key; a taken name (or, astronomically unlikely, hash) is a unique violation.
    pub async fn insert_api_key(&self, key: &ApiKey) -> Result<(), sqlx::Error> {
        sqlx::query(&format!(
            "INSERT INTO api_keys ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)"
        ))
        .bind(&key.name)
        .bind(&key.sha256)
        .bind(&key.subject)
        .bind(serde_json::to_string(&key.groups).unwrap_or_else(|_| "[]".into()))
        .bind(serde_json::to_string(&key.scopes).unwrap_or_else(|_| "[]".into()))
        .bind(key.expires_at)
        .bind(key.created_at)
        .execute(self.pool())
        .await?;
        self.record_change(Changed::ApiKeys);
        Ok(())
    }

    /// Revokes a key; `false` when there was none by that name.
    pub async fn delete_api_key(&self, name: &str) -> Result<bool, sqlx::Error> {
        let done = sqlx::query("DELETE FROM api_keys WHERE name = $1")
            .bind(name)
            .execute(self.pool())
            .await?;
        if done.rows_affected() > 0 {
            self.record_change(Changed::ApiKeys);
        }
        Ok(done.rows_affected() > 0)
    }
}
