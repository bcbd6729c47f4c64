//! OAuth clients as stored: registered by DCR, by an operator (pre-registered), or known by a
//! Client ID Metadata Document. Secrets are kept as SHA-256 only.

use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::Row as _;

use crate::storage::{json_list, Db};

/// A member of client metadata (a DCR request, a metadata document) that must be an array of
/// strings: `None` when absent or null; the error names the member.
pub fn string_list(
    metadata: &serde_json::Map<String, serde_json::Value>,
    name: &str,
) -> Result<Option<Vec<String>>, String> {
    let invalid = || format!("{name} must be an array of strings");
    match metadata.get(name) {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().map(str::to_string).ok_or_else(invalid))
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(_) => Err(invalid()),
    }
}

/// Grant types a client may register (DCR, a metadata document) and use.
pub const GRANT_TYPES: [&str; 2] = ["authorization_code", "refresh_token"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RegistrationType {
    Dcr,
    Prereg,
    Cimd,
}

impl RegistrationType {
    pub fn as_str(self) -> &'static str {
        match self {
            RegistrationType::Dcr => "dcr",
            RegistrationType::Prereg => "prereg",
            RegistrationType::Cimd => "cimd",
        }
    }
    fn parse(text: &str) -> RegistrationType {
        match text {
            "prereg" => RegistrationType::Prereg,
            "cimd" => RegistrationType::Cimd,
            _ => RegistrationType::Dcr,
        }
    }
}

/// How a client authenticates at `/token`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenAuthMethod {
    None,
    ClientSecretBasic,
    ClientSecretPost,
}

impl TokenAuthMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenAuthMethod::None => "none",
            TokenAuthMethod::ClientSecretBasic => "client_secret_basic",
            TokenAuthMethod::ClientSecretPost => "client_secret_post",
        }
    }
    pub fn parse(text: &str) -> Option<TokenAuthMethod> {
        match text {
            "none" => Some(TokenAuthMethod::None),
            "client_secret_basic" => Some(TokenAuthMethod::ClientSecretBasic),
            "client_secret_post" => Some(TokenAuthMethod::ClientSecretPost),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Client {
    pub client_id: String,
    pub registration_type: RegistrationType,
    pub client_name: Option<String>,
    pub redirect_uris: Vec<String>,
    pub token_endpoint_auth_method: TokenAuthMethod,
    #[serde(skip)]
    pub secret_sha256: Option<String>,
    /// `active` or `disabled`.
    pub status: String,
    /// The registration's other metadata, echoed back.
    #[serde(skip)]
    pub metadata: serde_json::Map<String, serde_json::Value>,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub last_used_at: Option<i64>,
    /// A metadata-document client: redirect URIs a newer copy of its document added, unused
    /// until an operator approves them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pending_redirect_uris: Vec<String>,
    /// A metadata-document client: its stored copy is used until then without a fetch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub document_fresh_until: Option<i64>,
    /// A metadata-document client whose document an operator stored: never fetched.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub pinned: bool,
}

impl Client {
    pub fn is_active(&self, now: i64) -> bool {
        self.status == "active" && self.expires_at.is_none_or(|t| t > now)
    }
}

const COLUMNS: &str = "client_id, registration_type, client_name, redirect_uris_json, \
    token_auth_method, secret_sha256, status, metadata_json, created_at, expires_at, last_used_at, \
    pending_redirect_uris_json, document_fresh_until, pinned";

fn client_from_row(row: &AnyRow) -> Result<Client, sqlx::Error> {
    let method: String = row.try_get("token_auth_method")?;
    let metadata: String = row.try_get("metadata_json")?;
    Ok(Client {
        client_id: row.try_get("client_id")?,
        registration_type: RegistrationType::parse(&row.try_get::<String, _>("registration_type")?),
        client_name: row.try_get("client_name")?,
        redirect_uris: json_list(row, "redirect_uris_json")?,
        token_endpoint_auth_method: TokenAuthMethod::parse(&method)
            .ok_or_else(|| sqlx::Error::Decode(format!("token_auth_method {method:?}").into()))?,
        secret_sha256: row.try_get("secret_sha256")?,
        status: row.try_get("status")?,
        metadata: serde_json::from_str(&metadata).map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
        last_used_at: row.try_get("last_used_at")?,
        pending_redirect_uris: json_list(row, "pending_redirect_uris_json")?,
        document_fresh_until: row.try_get("document_fresh_until")?,
        pinned: row.try_get::<i64, _>("pinned")? != 0,
    })
}

impl Db {
    pub async fn insert_oauth_client(&self, c: &Client) -> Result<(), sqlx::Error> {
        sqlx::query(&format!(
            "INSERT INTO oauth_clients ({COLUMNS}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"
        ))
        .bind(&c.client_id)
        .bind(c.registration_type.as_str())
        .bind(&c.client_name)
        .bind(serde_json::to_string(&c.redirect_uris).unwrap_or_else(|_| "[]".into()))
        .bind(c.token_endpoint_auth_method.as_str())
        .bind(&c.secret_sha256)
        .bind(&c.status)
        .bind(serde_json::to_string(&c.metadata).unwrap_or_else(|_| "{}".into()))
        .bind(c.created_at)
        .bind(c.expires_at)
        .bind(c.last_used_at)
        .bind(serde_json::to_string(&c.pending_redirect_uris).unwrap_or_else(|_| "[]".into()))
        .bind(c.document_fresh_until)
        .bind(i64::from(c.pinned))
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// A metadata-document client as its latest copy says: inserted, or its document's fields
    /// replaced (status, creation, expiry and last use stay).
    pub async fn upsert_document_client(&self, c: &Client) -> Result<(), sqlx::Error> {
        let updated = sqlx::query(
            "UPDATE oauth_clients SET client_name = $1, redirect_uris_json = $2, metadata_json = $3, \
             pending_redirect_uris_json = $4, document_fresh_until = $5, pinned = $6 \
             WHERE client_id = $7 AND registration_type = 'cimd'",
        )
        .bind(&c.client_name)
        .bind(serde_json::to_string(&c.redirect_uris).unwrap_or_else(|_| "[]".into()))
        .bind(serde_json::to_string(&c.metadata).unwrap_or_else(|_| "{}".into()))
        .bind(serde_json::to_string(&c.pending_redirect_uris).unwrap_or_else(|_| "[]".into()))
        .bind(c.document_fresh_until)
        .bind(i64::from(c.pinned))
        .bind(&c.client_id)
        .execute(self.pool())
        .await?;
        if updated.rows_affected() == 0 {
            self.insert_oauth_client(c).await?;
        }
        Ok(())
    }

    pub async fn get_oauth_client(&self, client_id: &str) -> Result<Option<Client>, sqlx::Error> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM oauth_clients WHERE client_id = $1"
        ))
        .bind(client_id)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(client_from_row).transpose()
    }

    pub async fn list_oauth_clients(&self) -> Result<Vec<Client>, sqlx::Error> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM oauth_clients ORDER BY created_at, client_id"
        ))
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(client_from_row).collect()
    }

    /// A metadata-document client's pending redirect URIs join its approved ones; `None` when
    /// there is no such client.
    pub async fn approve_pending_redirects(
        &self,
        client_id: &str,
    ) -> Result<Option<Client>, sqlx::Error> {
        let Some(mut client) = self.get_oauth_client(client_id).await? else {
            return Ok(None);
        };
        let pending = std::mem::take(&mut client.pending_redirect_uris);
        for uri in pending {
            if !client.redirect_uris.contains(&uri) {
                client.redirect_uris.push(uri);
            }
        }
        sqlx::query(
            "UPDATE oauth_clients SET redirect_uris_json = $1, pending_redirect_uris_json = '[]' \
             WHERE client_id = $2",
        )
        .bind(serde_json::to_string(&client.redirect_uris).unwrap_or_else(|_| "[]".into()))
        .bind(client_id)
        .execute(self.pool())
        .await?;
        Ok(Some(client))
    }

    /// `false` when there is no such client.
    pub async fn set_oauth_client_status(
        &self,
        client_id: &str,
        status: &str,
    ) -> Result<bool, sqlx::Error> {
        let done = sqlx::query("UPDATE oauth_clients SET status = $1 WHERE client_id = $2")
            .bind(status)
            .bind(client_id)
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Removes a client and every approval people gave it (an id that comes back, a CIMD
    /// URL, is asked again).
    pub async fn delete_oauth_client(&self, client_id: &str) -> Result<bool, sqlx::Error> {
        let done = sqlx::query("DELETE FROM oauth_clients WHERE client_id = $1")
            .bind(client_id)
            .execute(self.pool())
            .await?;
        self.forget_client_consents(client_id).await?;
        Ok(done.rows_affected() > 0)
    }

    /// Records a use; a client that expires when unused (`expires_at` set) gets `lifetime`
    /// more seconds from now.
    pub async fn touch_oauth_client(
        &self,
        client_id: &str,
        now: i64,
        lifetime: Option<i64>,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(
            "UPDATE oauth_clients SET last_used_at = $1, \
             expires_at = CASE WHEN expires_at IS NULL THEN NULL ELSE $2 END WHERE client_id = $3",
        )
        .bind(now)
        .bind(lifetime.map(|l| now.saturating_add(l)))
        .bind(client_id)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// The clients whose registration expired before `now`, removed; returns their ids (their
    /// grants are revoked by the caller).
    pub async fn remove_expired_oauth_clients(&self, now: i64) -> Result<Vec<String>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT client_id FROM oauth_clients WHERE expires_at IS NOT NULL AND expires_at < $1",
        )
        .bind(now)
        .fetch_all(self.pool())
        .await?;
        let mut removed = Vec::new();
        for row in rows {
            let id: String = row.try_get("client_id")?;
            if self.delete_oauth_client(&id).await? {
                removed.push(id);
            }
        }
        Ok(removed)
    }
}
