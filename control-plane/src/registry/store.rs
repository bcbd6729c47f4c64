//! The `servers` table.

use sqlx::any::AnyRow;
use sqlx::Row as _;

use crate::registry::{Server, ServerFields};
use crate::storage::{json_list, now, Changed, Db};

const COLUMNS: &str = "path, name, description, proxy_pass_url, tags, oauth_client_id, \
    append_mcp_path, mcp_endpoint, license, num_tools, created_at, updated_at";

fn from_row(row: &AnyRow) -> Result<Server, sqlx::Error> {
    let append: Option<i64> = row.try_get("append_mcp_path")?;
    Ok(Server {
        fields: ServerFields {
            path: row.try_get("path")?,
            name: row.try_get("name")?,
            description: row.try_get("description")?,
            proxy_pass_url: row.try_get("proxy_pass_url")?,
            tags: json_list(row, "tags")?,
            oauth_client_id: row.try_get("oauth_client_id")?,
            append_mcp_path: append.map(|v| v != 0),
            mcp_endpoint: row.try_get("mcp_endpoint")?,
            license: row.try_get("license")?,
            num_tools: row.try_get("num_tools")?,
        },
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

impl Db {
    /// Every server, ordered by path.
    pub async fn list_servers(&self) -> Result<Vec<Server>, sqlx::Error> {
        let rows = sqlx::query(&format!("SELECT {COLUMNS} FROM servers ORDER BY path"))
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(from_row).collect()
    }

    /// Servers with a custom `mcp_endpoint`: the only ones whose MCP URL path cannot be derived
    /// from their registry path.
    pub async fn servers_with_endpoint(&self) -> Result<Vec<Server>, sqlx::Error> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM servers WHERE mcp_endpoint IS NOT NULL AND mcp_endpoint <> '' ORDER BY path"
        ))
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(from_row).collect()
    }

    pub async fn get_server(&self, path: &str) -> Result<Option<Server>, sqlx::Error> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM servers WHERE path = $1"))
            .bind(path)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// The path of the server called `name`, if any.
    pub async fn server_path_by_name(&self, name: &str) -> Result<Option<String>, sqlx::Error> {
        let row = sqlx::query("SELECT path FROM servers WHERE name = $1")
            .bind(name)
            .fetch_optional(self.pool())
            .await?;
        row.map(|r| r.try_get("path")).transpose()
    }

    pub async fn server_names(&self) -> Result<Vec<String>, sqlx::Error> {
        let rows = sqlx::query("SELECT name FROM servers ORDER BY name")
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(|r| r.try_get("name")).collect()
    }

    /// Inserts a new server; a duplicate path or name is a unique violation.
    pub async fn insert_server(&self, fields: &ServerFields) -> Result<Server, sqlx::Error> {
        let ts = now();
        let server = Server::from_fields(fields.clone(), ts, ts);
        sqlx::query(&format!(
            "INSERT INTO servers ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
        ))
        .bind(&server.path)
        .bind(&server.name)
        .bind(&server.description)
        .bind(&server.proxy_pass_url)
        .bind(serde_json::to_string(&server.tags).unwrap_or_else(|_| "[]".into()))
        .bind(&server.oauth_client_id)
        .bind(server.append_mcp_path.map(i64::from))
        .bind(&server.mcp_endpoint)
        .bind(&server.license)
        .bind(server.num_tools)
        .bind(server.created_at)
        .bind(server.updated_at)
        .execute(self.pool())
        .await?;
        self.record_change(Changed::Server(server.path.clone()));
        Ok(server)
    }

    /// Replaces every field of the server at `fields.path`; `None` when there is none.
    pub async fn update_server(
        &self,
        fields: &ServerFields,
    ) -> Result<Option<Server>, sqlx::Error> {
        let ts = now();
        let row = sqlx::query(&format!(
            "UPDATE servers SET name = $2, description = $3, proxy_pass_url = $4, tags = $5, \
             oauth_client_id = $6, append_mcp_path = $7, mcp_endpoint = $8, license = $9, \
             num_tools = $10, updated_at = $11 WHERE path = $1 RETURNING {COLUMNS}"
        ))
        .bind(&fields.path)
        .bind(&fields.name)
        .bind(&fields.description)
        .bind(&fields.proxy_pass_url)
        .bind(serde_json::to_string(&fields.tags).unwrap_or_else(|_| "[]".into()))
        .bind(&fields.oauth_client_id)
        .bind(fields.append_mcp_path.map(i64::from))
        .bind(&fields.mcp_endpoint)
        .bind(&fields.license)
        .bind(fields.num_tools)
        .bind(ts)
        .fetch_optional(self.pool())
        .await?;
        if row.is_some() {
            self.record_change(Changed::Server(fields.path.clone()));
        }
        row.as_ref().map(from_row).transpose()
    }

    /// `true` when a server was deleted.
    pub async fn delete_server(&self, path: &str) -> Result<bool, sqlx::Error> {
        let done = sqlx::query("DELETE FROM servers WHERE path = $1")
            .bind(path)
            .execute(self.pool())
            .await?;
        if done.rows_affected() > 0 {
            self.record_change(Changed::Server(path.to_owned()));
        }
        Ok(done.rows_affected() > 0)
    }
}
