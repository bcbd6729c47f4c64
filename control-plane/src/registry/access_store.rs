//! The `mcp_scopes` and `group_mappings` tables.

use sqlx::any::AnyRow;
use sqlx::Row as _;

use crate::registry::{GroupMapping, Scope};
use crate::storage::{json_list, now, Changed, Db};

fn scope_from_row(row: &AnyRow) -> Result<Scope, sqlx::Error> {
    Ok(Scope {
        name: row.try_get("name")?,
        description: row.try_get("description")?,
        grants: json_list(row, "grants")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn mapping_from_row(row: &AnyRow) -> Result<GroupMapping, sqlx::Error> {
    Ok(GroupMapping {
        group: row.try_get("group_name")?,
        scopes: json_list(row, "scopes")?,
        updated_at: row.try_get("updated_at")?,
    })
}

impl Db {
    pub async fn list_scopes(&self) -> Result<Vec<Scope>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT name, description, grants, updated_at FROM mcp_scopes ORDER BY name",
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(scope_from_row).collect()
    }

    /// The names of every scope, without their grants (cheap at any registry size).
    pub async fn scope_names(&self) -> Result<std::collections::HashSet<String>, sqlx::Error> {
        let rows = sqlx::query("SELECT name FROM mcp_scopes")
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(|row| row.try_get("name")).collect()
    }

    /// Which of `names` are scopes: one lookup per name, so a call naming a few scopes costs the
    /// same at any registry size.
    pub async fn existing_scopes(
        &self,
        names: &[String],
    ) -> Result<std::collections::HashSet<String>, sqlx::Error> {
        let mut found = std::collections::HashSet::new();
        for name in names {
            if found.contains(name) {
                continue;
            }
            let row = sqlx::query("SELECT name FROM mcp_scopes WHERE name = $1")
                .bind(name)
                .fetch_optional(self.pool())
                .await?;
            if row.is_some() {
                found.insert(name.clone());
            }
        }
        Ok(found)
    }

    pub async fn get_scope(&self, name: &str) -> Result<Option<Scope>, sqlx::Error> {
        let row = sqlx::query(
            "SELECT name, description, grants, updated_at FROM mcp_scopes WHERE name = $1",
        )
        .bind(name)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(scope_from_row).transpose()
    }

    /// Creates or replaces a scope; `true` when it was created.
    pub async fn put_scope(&self, scope: &Scope) -> Result<(Scope, bool), sqlx::Error> {
        let existed = self.get_scope(&scope.name).await?.is_some();
        let mut stored = scope.clone();
        stored.updated_at = now();
        sqlx::query(
            "INSERT INTO mcp_scopes (name, description, grants, updated_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (name) DO UPDATE SET description = excluded.description, \
             grants = excluded.grants, updated_at = excluded.updated_at",
        )
        .bind(&stored.name)
        .bind(&stored.description)
        .bind(serde_json::to_string(&stored.grants).unwrap_or_else(|_| "[]".into()))
        .bind(stored.updated_at)
        .execute(self.pool())
        .await?;
        self.record_change(Changed::Scope(stored.name.clone()));
        Ok((stored, !existed))
    }

    /// After a server is renamed: grants naming the old name follow it.
    pub async fn rename_server_in_grants(&self, old: &str, new: &str) -> Result<(), sqlx::Error> {
        for mut scope in self.list_scopes().await? {
            let mut changed = false;
            for g in scope.grants.iter_mut().filter(|g| g.server == old) {
                g.server = new.to_string();
                changed = true;
            }
            if changed {
                self.put_scope(&scope).await?;
            }
        }
        Ok(())
    }

    pub async fn delete_scope(&self, name: &str) -> Result<bool, sqlx::Error> {
        let done = sqlx::query("DELETE FROM mcp_scopes WHERE name = $1")
            .bind(name)
            .execute(self.pool())
            .await?;
        if done.rows_affected() > 0 {
            self.record_change(Changed::Scope(name.to_owned()));
        }
        Ok(done.rows_affected() > 0)
    }

    pub async fn list_group_mappings(&self) -> Result<Vec<GroupMapping>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT group_name, scopes, updated_at FROM group_mappings ORDER BY group_name",
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(mapping_from_row).collect()
    }

    pub async fn get_group_mapping(
        &self,
        group: &str,
    ) -> Result<Option<GroupMapping>, sqlx::Error> {
        let row = sqlx::query(
            "SELECT group_name, scopes, updated_at FROM group_mappings WHERE group_name = $1",
        )
        .bind(group)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(mapping_from_row).transpose()
    }

    /// Creates or replaces a mapping; `true` when it was created.
    pub async fn put_group_mapping(
        &self,
        group: &str,
        scopes: &[String],
    ) -> Result<(GroupMapping, bool), sqlx::Error> {
        let existed = self.get_group_mapping(group).await?.is_some();
        let stored = GroupMapping {
            group: group.to_string(),
            scopes: scopes.to_vec(),
            updated_at: now(),
        };
        sqlx::query(
            "INSERT INTO group_mappings (group_name, scopes, updated_at) VALUES ($1, $2, $3) \
             ON CONFLICT (group_name) DO UPDATE SET scopes = excluded.scopes, updated_at = excluded.updated_at",
        )
        .bind(&stored.group)
        .bind(serde_json::to_string(&stored.scopes).unwrap_or_else(|_| "[]".into()))
        .bind(stored.updated_at)
        .execute(self.pool())
        .await?;
        self.record_change(Changed::GroupMapping(stored.group.clone()));
        Ok((stored, !existed))
    }

    pub async fn delete_group_mapping(&self, group: &str) -> Result<bool, sqlx::Error> {
        let done = sqlx::query("DELETE FROM group_mappings WHERE group_name = $1")
            .bind(group)
            .execute(self.pool())
            .await?;
        if done.rows_affected() > 0 {
            self.record_change(Changed::GroupMapping(group.to_owned()));
        }
        Ok(done.rows_affected() > 0)
    }

    /// The registry scopes the given IdP groups map to (deduplicated, sorted).
    pub async fn scopes_for_groups(&self, groups: &[String]) -> Result<Vec<String>, sqlx::Error> {
        if groups.is_empty() {
            return Ok(Vec::new());
        }
        let mappings = self.list_group_mappings().await?;
        Ok(policy::snapshot::mapped_scopes(
            mappings
                .iter()
                .map(|m| (m.group.as_str(), m.scopes.as_slice())),
            groups,
        ))
    }
}
