//! The authorization server's signing keys: ES256 (P-256) key pairs made with `jwt-simple`,
//! kept in `oauth_signing_keys` with the private half sealed under the secret key, rotated
//! on a schedule. A superseded key stays in the JWKS (and so in the policy snapshot) for the
//! overlap, at least an access token's lifetime, so tokens it signed keep verifying.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jwt_simple::prelude::{ECDSAP256KeyPairLike, ECDSAP256PublicKeyLike, ES256KeyPair};
use policy::keys::{Jwk, Jwks};
use rand::RngCore as _;
use sqlx::Row as _;

use super::sealed::{SealError, SecretKey};
use crate::storage::Db;

/// The one algorithm the authorization server signs with.
pub const ALGORITHM: &str = "ES256";

#[derive(Debug, thiserror::Error)]
pub enum SigningError {
    #[error("signing keys in the database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("signing key {kid}: {source}")]
    Sealed {
        kid: String,
        #[source]
        source: SealError,
    },
    #[error("signing key {kid} is not a P-256 private key")]
    Malformed { kid: String },
    #[error("signing an access token: {0}")]
    Sign(String),
}

/// When keys change.
#[derive(Debug, Clone, Copy)]
pub struct RotationSettings {
    /// A key signs for this long, then a new one takes over (default 30 days).
    pub rotate_after: Duration,
    /// A superseded key stays published this long (default 1 day; at least the access-token
    /// lifetime plus leeway, which config checks).
    pub overlap: Duration,
}

impl Default for RotationSettings {
    fn default() -> RotationSettings {
        RotationSettings {
            rotate_after: Duration::from_secs(30 * 24 * 3600),
            overlap: Duration::from_secs(24 * 3600),
        }
    }
}

struct KeySet {
    active: ES256KeyPair,
    active_kid: String,
    published: Jwks,
}

/// The keys in memory, reloaded after every rotation.
pub struct SigningKeys {
    db: Db,
    secret: SecretKey,
    settings: RotationSettings,
    current: RwLock<Arc<KeySet>>,
}

impl std::fmt::Debug for SigningKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKeys")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// The public JWK of a P-256 key pair.
pub fn public_jwk(pair: &ES256KeyPair, kid: &str) -> Result<Jwk, SigningError> {
    // SEC1 uncompressed point: 0x04 ‖ x ‖ y.
    let point = pair.public_key().public_key().to_bytes_uncompressed();
    let malformed = || SigningError::Malformed { kid: kid.into() };
    let (x, y) = match point.as_slice() {
        [4, rest @ ..] if rest.len() == 64 => rest.split_at(32),
        _ => return Err(malformed()),
    };
    serde_json::from_value(serde_json::json!({
        "kty": "EC", "crv": "P-256", "kid": kid, "alg": ALGORITHM, "use": "sig",
        "x": URL_SAFE_NO_PAD.encode(x), "y": URL_SAFE_NO_PAD.encode(y),
    }))
    .map_err(|_| malformed())
}

fn new_kid() -> String {
    let mut bytes = [0u8; 12];
    rand::thread_rng().fill_bytes(&mut bytes);
    format!("pc-{}", URL_SAFE_NO_PAD.encode(bytes))
}

impl SigningKeys {
    /// Loads the keys, creating the first one (or a successor, when the active key is due).
    pub async fn load(
        db: Db,
        secret: SecretKey,
        settings: RotationSettings,
    ) -> Result<SigningKeys, SigningError> {
        let set = Self::refresh(&db, &secret, settings, crate::storage::now()).await?;
        Ok(SigningKeys {
            db,
            secret,
            settings,
            current: RwLock::new(Arc::new(set)),
        })
    }

    /// Rotates when due and reloads (replicas pick up each other's keys here). Returns whether
    /// the set of published keys changed.
    pub async fn tick(&self) -> Result<bool, SigningError> {
        let set =
            Self::refresh(&self.db, &self.secret, self.settings, crate::storage::now()).await?;
        let changed = self.set().published != set.published;
        if let Ok(mut current) = self.current.write() {
            *current = Arc::new(set);
        }
        Ok(changed)
    }

    fn set(&self) -> Arc<KeySet> {
        match self.current.read() {
            Ok(set) => set.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// The JWKS: the active key first, then superseded ones still in their overlap.
    pub fn jwks(&self) -> Jwks {
        self.set().published.clone()
    }

    pub fn active_kid(&self) -> String {
        self.set().active_kid.clone()
    }

    /// Signs `claims` as an RFC 9068 access token (`typ: at+jwt`) with the active key.
    pub fn sign<C: serde::Serialize>(
        &self,
        claims: jwt_simple::claims::JWTClaims<C>,
    ) -> Result<String, SigningError> {
        let set = self.set();
        let options = jwt_simple::common::HeaderOptions {
            signature_type: Some("at+jwt".into()),
            ..Default::default()
        };
        set.active
            .sign_with_options(claims, &options)
            .map_err(|e| SigningError::Sign(e.to_string()))
    }

    async fn refresh(
        db: &Db,
        secret: &SecretKey,
        settings: RotationSettings,
        now: i64,
    ) -> Result<KeySet, SigningError> {
        let rows = Self::rows(db).await?;
        let rotate_after = i64::try_from(settings.rotate_after.as_secs()).unwrap_or(i64::MAX);
        let due = match rows.iter().find(|r| r.superseded_at.is_none()) {
            Some(active) => active.created_at.saturating_add(rotate_after) <= now,
            None => true,
        };
        if due {
            let kid = new_kid();
            let pair = ES256KeyPair::generate().with_key_id(&kid);
            let mut nonce = [0u8; 12];
            rand::thread_rng().fill_bytes(&mut nonce);
            let sealed = secret.seal(&kid, &pair.to_bytes(), nonce);
            let jwk = serde_json::to_string(&public_jwk(&pair, &kid)?).unwrap_or_default();
            sqlx::query(
                "INSERT INTO oauth_signing_keys (kid, alg, private_key_enc, public_jwk, created_at) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(&kid)
            .bind(ALGORITHM)
            .bind(&sealed)
            .bind(&jwk)
            .bind(now)
            .execute(db.pool())
            .await?;
            sqlx::query(
                "UPDATE oauth_signing_keys SET superseded_at = $1 \
                 WHERE kid <> $2 AND superseded_at IS NULL",
            )
            .bind(now)
            .bind(&kid)
            .execute(db.pool())
            .await?;
            tracing::info!(kid = %kid, "authorization server: new signing key");
        }
        let overlap = i64::try_from(settings.overlap.as_secs()).unwrap_or(i64::MAX);
        sqlx::query(
            "DELETE FROM oauth_signing_keys WHERE superseded_at IS NOT NULL AND superseded_at < $1",
        )
        .bind(now.saturating_sub(overlap))
        .execute(db.pool())
        .await?;
        let rows = Self::rows(db).await?;
        let active = rows
            .iter()
            .find(|r| r.superseded_at.is_none())
            .or_else(|| rows.first())
            .ok_or_else(|| SigningError::Malformed {
                kid: "(none)".into(),
            })?;
        let raw =
            secret
                .open(&active.kid, &active.sealed)
                .map_err(|source| SigningError::Sealed {
                    kid: active.kid.clone(),
                    source,
                })?;
        let pair = ES256KeyPair::from_bytes(&raw)
            .map_err(|_| SigningError::Malformed {
                kid: active.kid.clone(),
            })?
            .with_key_id(&active.kid);
        let mut keys = vec![public_jwk(&pair, &active.kid)?];
        for row in rows.iter().filter(|r| r.kid != active.kid) {
            if let Ok(jwk) = serde_json::from_str::<Jwk>(&row.public_jwk) {
                keys.push(jwk);
            }
        }
        Ok(KeySet {
            active: pair,
            active_kid: active.kid.clone(),
            published: Jwks { keys },
        })
    }

    /// Newest first.
    async fn rows(db: &Db) -> Result<Vec<KeyRow>, SigningError> {
        let rows = sqlx::query(
            "SELECT kid, private_key_enc, public_jwk, created_at, superseded_at \
             FROM oauth_signing_keys ORDER BY created_at DESC, kid",
        )
        .fetch_all(db.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(KeyRow {
                    kid: r.try_get("kid")?,
                    sealed: r.try_get("private_key_enc")?,
                    public_jwk: r.try_get("public_jwk")?,
                    created_at: r.try_get("created_at")?,
                    superseded_at: r.try_get("superseded_at")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(SigningError::Db)
    }
}

struct KeyRow {
    kid: String,
    sealed: String,
    public_jwk: String,
    created_at: i64,
    superseded_at: Option<i64>,
}
