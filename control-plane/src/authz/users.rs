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

/// One person of `PORTCULLIS_USERS_FILE`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct FileUser {
    username: String,
    /// An argon2 PHC string (`portcullis hash-password` makes one); never a password.
    password_hash: String,
    #[serde(default)]
    groups: Vec<String>,
    #[serde(default)]
    display_name: Option<String>,
    #[serde(default)]
    disabled: bool,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct UsersFile {
    users: Vec<FileUser>,
}

/// Reads `PORTCULLIS_USERS_FILE` (JSON: `{"users": [{"username", "password_hash", "groups",
/// "display_name", "disabled"}]}`): each user with their password hash, checked as the admin
/// API checks them. Any mistake names the entry and stops the start.
pub fn read_users_file(text: &str, now: i64) -> Result<Vec<(User, String)>, String> {
    let file: UsersFile = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let mut seen = std::collections::HashSet::new();
    file.users
        .into_iter()
        .enumerate()
        .map(|(i, u)| {
            let at = format!("users[{i}]");
            if !valid_username(&u.username) {
                return Err(format!(
                    "{at}.username: 1 to 64 letters, digits and . _ - @"
                ));
            }
            if !seen.insert(u.username.clone()) {
                return Err(format!("{at}.username: {} is listed twice", u.username));
            }
            let usable = PasswordHash::new(&u.password_hash).is_ok_and(|h| {
                h.algorithm.as_str().starts_with("argon2") && h.salt.is_some() && h.hash.is_some()
            });
            if !usable {
                return Err(format!(
                    "{at}.password_hash: not an argon2 hash (make one with `portcullis hash-password`)"
                ));
            }
            for g in &u.groups {
                crate::registry::validate::group_name(g)
                    .map_err(|_| format!("{at}.groups: invalid group {g:?}"))?;
            }
            if u
                .display_name
                .as_deref()
                .is_some_and(|n| n.chars().count() > 128 || n.chars().any(char::is_control))
            {
                return Err(format!(
                    "{at}.display_name: at most 128 characters, no control characters"
                ));
            }
            Ok((
                User {
                    username: u.username,
                    groups: u.groups,
                    display_name: u.display_name,
                    disabled: u.disabled,
                    created_at: now,
                    updated_at: now,
                },
                u.password_hash,
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests;
