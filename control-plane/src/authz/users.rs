//! The built-in user store: people and their groups for installations without an upstream
//! IdP (and the demo). Passwords are argon2id PHC strings; a wrong password and an unknown
//! user cost the same (a dummy hash is verified), so timing does not tell which names exist.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use serde::Serialize;
use sqlx::Row as _;

use crate::storage::{json_list, Db};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct User {
    pub username: String,
    pub groups: Vec<String>,
    pub display_name: Option<String>,
    pub disabled: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

/// Hashes a password (argon2id, default parameters, a random salt).
pub fn hash_password(password: &str) -> Result<String, String> {
    let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

/// A valid hash of nothing anyone knows, verified when the user does not exist.
const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$7VJ0ETi1p5Xw7Zs8d3BGx2oGbOcOuAm8o1i3QK7m2mQ";

pub fn verify_password(stored: Option<&str>, password: &str) -> bool {
    let hash = stored.unwrap_or(DUMMY_HASH);
    let Ok(parsed) = PasswordHash::new(hash) else {
        return false;
    };
    let ok = Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok();
    ok && stored.is_some()
}

/// Usernames: what a login form and a `sub` claim carry safely.
pub fn valid_username(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'@'))
}

fn user_from_row(row: &sqlx::any::AnyRow) -> Result<(User, String), sqlx::Error> {
    Ok((
        User {
            username: row.try_get("username")?,
            groups: json_list(row, "groups_json")?,
            display_name: row.try_get("display_name")?,
            disabled: row.try_get::<i64, _>("disabled")? != 0,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
        },
        row.try_get("password_hash")?,
    ))
}

const COLUMNS: &str =
    "username, password_hash, groups_json, display_name, disabled, created_at, updated_at";

impl Db {
    /// The user and their password hash.
    pub async fn get_user(&self, username: &str) -> Result<Option<(User, String)>, sqlx::Error> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM users WHERE username = $1"))
            .bind(username)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(user_from_row).transpose()
    }

    pub async fn list_users(&self) -> Result<Vec<User>, sqlx::Error> {
        let rows = sqlx::query(&format!("SELECT {COLUMNS} FROM users ORDER BY username"))
            .fetch_all(self.pool())
            .await?;
        rows.iter()
            .map(|r| user_from_row(r).map(|(u, _)| u))
            .collect()
    }

    /// Creates or replaces a user; `password_hash: None` keeps the stored one (an update of
    /// groups only). Returns whether the user was created.
    pub async fn put_user(
        &self,
        user: &User,
        password_hash: Option<&str>,
    ) -> Result<bool, sqlx::Error> {
        let groups = serde_json::to_string(&user.groups).unwrap_or_else(|_| "[]".into());
        if let Some(hash) = password_hash {
            let existed = self.get_user(&user.username).await?.is_some();
            sqlx::query(&format!(
                "INSERT INTO users ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7) \
                 ON CONFLICT (username) DO UPDATE SET password_hash = excluded.password_hash, \
                 groups_json = excluded.groups_json, display_name = excluded.display_name, \
                 disabled = excluded.disabled, updated_at = excluded.updated_at"
            ))
            .bind(&user.username)
            .bind(hash)
            .bind(&groups)
            .bind(&user.display_name)
            .bind(i64::from(user.disabled))
            .bind(user.created_at)
            .bind(user.updated_at)
            .execute(self.pool())
            .await?;
            Ok(!existed)
        } else {
            sqlx::query(
                "UPDATE users SET groups_json = $1, display_name = $2, disabled = $3, \
                 updated_at = $4 WHERE username = $5",
            )
            .bind(&groups)
            .bind(&user.display_name)
            .bind(i64::from(user.disabled))
            .bind(user.updated_at)
            .bind(&user.username)
            .execute(self.pool())
            .await?;
            Ok(false)
        }
    }

    /// Removes a person and the approvals they gave (their sessions then open to nobody).
    pub async fn delete_user(&self, username: &str) -> Result<bool, sqlx::Error> {
        let done = sqlx::query("DELETE FROM users WHERE username = $1")
            .bind(username)
            .execute(self.pool())
            .await?;
        self.forget_user_consents(username).await?;
        Ok(done.rows_affected() > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_verify_against_their_hash_only() {
        let hash = hash_password("correct horse").unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(!hash.contains("correct"));
        assert!(verify_password(Some(&hash), "correct horse"));
        assert!(!verify_password(Some(&hash), "correct horsE"));
        assert!(!verify_password(None, "correct horse"), "unknown user");
        assert!(!verify_password(Some("not a hash"), "x"));
        assert!(
            PasswordHash::new(DUMMY_HASH).is_ok(),
            "the dummy hash parses"
        );
    }

    #[test]
    fn usernames_are_plain() {
        assert!(valid_username("alice"));
        assert!(valid_username("a.b-c_d@example.com"));
        assert!(!valid_username(""));
        assert!(!valid_username("a b"));
        assert!(!valid_username("<script>"));
        assert!(!valid_username(&"a".repeat(65)));
    }
}
