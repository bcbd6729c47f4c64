//! Signing in once: after a successful sign-in the browser gets a session cookie (the user
//! name and an expiry, sealed under the secret key: it cannot be read or forged), and the
//! person's approval of that client is remembered. A later `/oauth/authorize` for a client
//! they allowed, in a browser with a live session, gets its code without a page.

use rand::RngCore as _;
use serde::{Deserialize, Serialize};
use sqlx::Row as _;

use super::sealed::SecretKey;
use crate::storage::Db;

/// How long a session lasts (then the person signs in again).
pub const SESSION_SECONDS: i64 = 12 * 3600;

#[derive(Serialize, Deserialize)]
struct Session {
    user: String,
    expires: i64,
}

/// The cookie value for `user`, valid [`SESSION_SECONDS`] from `now`.
pub fn seal_session(key: &SecretKey, user: &str, now: i64) -> String {
    let mut nonce = [0u8; 12];
    rand::thread_rng().fill_bytes(&mut nonce);
    let body = serde_json::to_vec(&Session {
        user: user.to_string(),
        expires: now + SESSION_SECONDS,
    })
    .unwrap_or_default();
    key.seal("session", &body, nonce)
}

/// The user of a live session cookie; `None` for anything else (expired, altered, another
/// installation's).
pub fn open_session(key: &SecretKey, cookie: &str, now: i64) -> Option<String> {
    let body = key.open("session", cookie).ok()?;
    let session: Session = serde_json::from_slice(&body).ok()?;
    (now < session.expires).then_some(session.user)
}

impl Db {
    pub async fn record_consent(
        &self,
        user: &str,
        client_id: &str,
        now: i64,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO oauth_consents (username, client_id, approved_at) VALUES ($1, $2, $3) \
             ON CONFLICT (username, client_id) DO UPDATE SET approved_at = excluded.approved_at",
        )
        .bind(user)
        .bind(client_id)
        .bind(now)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    pub async fn has_consent(&self, user: &str, client_id: &str) -> Result<bool, sqlx::Error> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS n FROM oauth_consents WHERE username = $1 AND client_id = $2",
        )
        .bind(user)
        .bind(client_id)
        .fetch_one(self.pool())
        .await?;
        Ok(row.try_get::<i64, _>("n")? > 0)
    }

    /// Forgets every approval given to a client (deleted).
    pub async fn forget_client_consents(&self, client_id: &str) -> Result<(), sqlx::Error> {
        sqlx::query("DELETE FROM oauth_consents WHERE client_id = $1")
            .bind(client_id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Forgets every approval a person gave (deleted).
    pub async fn forget_user_consents(&self, user: &str) -> Result<(), sqlx::Error> {
        sqlx::query("DELETE FROM oauth_consents WHERE username = $1")
            .bind(user)
            .execute(self.pool())
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;

    use super::*;

    #[test]
    fn sessions_open_until_they_expire_and_only_with_their_key() {
        let key = SecretKey::new([3; 32]);
        let cookie = seal_session(&key, "alice", 1000);
        assert!(!cookie.contains("alice"), "sealed, not just signed");
        assert_eq!(open_session(&key, &cookie, 1001).as_deref(), Some("alice"));
        assert_eq!(open_session(&key, &cookie, 1000 + SESSION_SECONDS), None);
        assert_eq!(open_session(&SecretKey::new([4; 32]), &cookie, 1001), None);
        let mut altered = URL_SAFE_NO_PAD.decode(&cookie).unwrap();
        altered[20] ^= 1;
        assert_eq!(
            open_session(&key, &URL_SAFE_NO_PAD.encode(altered), 1001),
            None
        );
        assert_eq!(open_session(&key, "garbage", 1001), None);
        // A sealed value of another purpose (a signing key's) is not a session.
        let other = key.seal(
            "kid-1",
            br#"{"user":"root","expires":99999999999}"#,
            [1; 12],
        );
        assert_eq!(open_session(&key, &other, 1001), None);
    }
}
