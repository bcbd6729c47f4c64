//! The records of [`Grants`] as storage keeps them: one row per code, family and refresh
//! token, each its JSON. `authz::store` imports the rows an operation needs, runs it, and
//! writes back the rows whose JSON changed (compare-and-set on a version).

use super::{CodeRecord, Family, FamilyId, Grants, RefreshRecord, Timestamp};
use crate::authz::token::TokenHash;

/// Which map a record belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RecordKind {
    Code,
    Family,
    Refresh,
}

impl RecordKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RecordKind::Code => "code",
            RecordKind::Family => "family",
            RecordKind::Refresh => "refresh",
        }
    }
    pub fn parse(text: &str) -> Option<RecordKind> {
        match text {
            "code" => Some(RecordKind::Code),
            "family" => Some(RecordKind::Family),
            "refresh" => Some(RecordKind::Refresh),
            _ => None,
        }
    }
}

/// One record, ready for a row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRecord {
    pub kind: RecordKind,
    /// A token hash in hex, or a family id.
    pub key: String,
    /// The client the record belongs to (what deleting a client looks up).
    pub client_id: String,
    /// Its JSON.
    pub record: String,
    /// After this it only serves replay detection.
    pub expires_at: Timestamp,
    /// For a code: the family its redemption issued; for a refresh token: its family.
    pub family: Option<FamilyId>,
}

/// A record that could not be read back (a row written by a newer or broken version).
#[derive(Debug, thiserror::Error)]
#[error("stored {kind:?} record {key}: {source}")]
pub struct RecordError {
    pub kind: RecordKind,
    pub key: String,
    #[source]
    pub source: serde_json::Error,
}

impl Grants {
    /// Every record held, sorted by kind and key.
    pub fn export(&self) -> Vec<StoredRecord> {
        let json = |value: serde_json::Result<String>| value.unwrap_or_default();
        let mut out = Vec::new();
        for (hash, code) in &self.codes {
            out.push(StoredRecord {
                kind: RecordKind::Code,
                key: hash.to_hex(),
                client_id: code.request.grant.client_id.clone(),
                record: json(serde_json::to_string(code)),
                expires_at: code.expires_at,
                family: code.issued.clone(),
            });
        }
        for (id, family) in &self.families {
            let expires_at = family
                .access
                .iter()
                .map(|a| a.expires_at)
                .max()
                .unwrap_or(Timestamp(0));
            out.push(StoredRecord {
                kind: RecordKind::Family,
                key: id.0.clone(),
                client_id: family.grant.client_id.clone(),
                record: json(serde_json::to_string(family)),
                expires_at,
                family: Some(id.clone()),
            });
        }
        for (hash, refresh) in &self.refresh {
            out.push(StoredRecord {
                kind: RecordKind::Refresh,
                key: hash.to_hex(),
                client_id: self
                    .families
                    .get(&refresh.family)
                    .map(|f| f.grant.client_id.clone())
                    .unwrap_or_default(),
                record: json(serde_json::to_string(refresh)),
                expires_at: refresh.expires_at,
                family: Some(refresh.family.clone()),
            });
        }
        out.sort_by(|a, b| (a.kind, &a.key).cmp(&(b.kind, &b.key)));
        out
    }

    /// Adds a stored record (replacing one with the same key). Returns the family it points
    /// to, so the caller can load that next.
    pub fn import(
        &mut self,
        kind: RecordKind,
        key: &str,
        record: &str,
    ) -> Result<Option<FamilyId>, RecordError> {
        let fail = |source| RecordError {
            kind,
            key: key.to_string(),
            source,
        };
        let hash = || {
            TokenHash::from_hex(key)
                .ok_or_else(|| fail(serde::de::Error::custom("record key is not a SHA-256 hex")))
        };
        match kind {
            RecordKind::Code => {
                let code: CodeRecord = serde_json::from_str(record).map_err(fail)?;
                let family = code.issued.clone();
                self.codes.insert(hash()?, code);
                Ok(family)
            }
            RecordKind::Family => {
                let family: Family = serde_json::from_str(record).map_err(fail)?;
                self.families.insert(FamilyId(key.to_string()), family);
                Ok(None)
            }
            RecordKind::Refresh => {
                let refresh: RefreshRecord = serde_json::from_str(record).map_err(fail)?;
                let family = refresh.family.clone();
                self.refresh.insert(hash()?, refresh);
                Ok(Some(family))
            }
        }
    }
}
