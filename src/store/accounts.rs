//! Where people and their API tokens are kept: a trait every store backend implements, and its SQLite form.

use async_trait::async_trait;
use sqlx::Row;

use super::StoreError;
use super::sqlite::SqliteStore;
use crate::accounts::{NewUser, Role, User};

/// Why an account change was refused, in words for the person at the command line.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("there is already a user \"{0}\"")]
    Exists(String),
    #[error("there is no user \"{0}\"")]
    Missing(String),
    #[error("\"{0}\" is the last owner: add another owner first, or nobody could manage users")]
    LastOwner(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A signed-in browser's session: who, and the token its forms must carry back.
#[derive(Debug, Clone)]
pub struct SessionRecord {
    pub user: User,
    pub csrf: String,
}

#[async_trait]
pub trait Accounts: Send + Sync {
    async fn add_user(&self, user: &NewUser, now_ms: i64) -> Result<User, AccountError>;
    async fn users(&self) -> Result<Vec<User>, StoreError>;
    /// The user and their password hash, to check a sign-in.
    async fn user_with_hash(&self, name: &str) -> Result<Option<(User, String)>, StoreError>;
    async fn set_password(&self, name: &str, hash: &str, now_ms: i64) -> Result<(), AccountError>;
    /// Removes a user and their tokens; the last owner cannot be removed.
    async fn remove_user(&self, name: &str) -> Result<(), AccountError>;
    async fn add_token(
        &self,
        user: &str,
        label: &str,
        digest: &str,
        now_ms: i64,
    ) -> Result<(), AccountError>;
    /// The user a token belongs to, by its digest, noting its use.
    async fn token_user(&self, digest: &str, now_ms: i64) -> Result<Option<User>, StoreError>;

    /// Starts a session for `user_id`, known by the digest of its cookie.
    async fn add_session(
        &self,
        digest: &str,
        user_id: i64,
        csrf: &str,
        address: Option<&str>,
        now_ms: i64,
    ) -> Result<(), StoreError>;
    /// The session a cookie digest names, if it was used within `idle_ms`; an idle one is ended. Notes the
    /// use, at most once a minute, so reading pages does not turn into a write each.
    async fn session(
        &self,
        digest: &str,
        now_ms: i64,
        idle_ms: i64,
    ) -> Result<Option<SessionRecord>, StoreError>;
    async fn end_session(&self, digest: &str) -> Result<(), StoreError>;
}

fn user_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<User, StoreError> {
    let role: String = row.try_get("role")?;
    let stores: String = row.try_get("stores")?;
    Ok(User {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        role: Role::parse(&role)
            .ok_or_else(|| StoreError::Invalid(format!("user role \"{role}\"")))?,
        stores: serde_json::from_str(&stores)
            .map_err(|e| StoreError::Invalid(format!("user stores: {e}")))?,
        created_ms: row.try_get("created_ms")?,
    })
}

const USER_COLUMNS: &str = "u.id, u.name, u.role, u.stores, u.created_ms";

#[async_trait]
impl Accounts for SqliteStore {
    async fn add_user(&self, user: &NewUser, now_ms: i64) -> Result<User, AccountError> {
        let stores = serde_json::to_string(&user.stores).unwrap_or_else(|_| "[]".into());
        let id = sqlx::query(
            "INSERT INTO users (name, role, stores, password_hash, created_ms, updated_ms) \
             VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO NOTHING",
        )
        .bind(&user.name)
        .bind(user.role.as_str())
        .bind(&stores)
        .bind(&user.password_hash)
        .bind(now_ms)
        .bind(now_ms)
        .execute(self.writer())
        .await
        .map_err(StoreError::from)?;
        if id.rows_affected() == 0 {
            return Err(AccountError::Exists(user.name.clone()));
        }
        Ok(User {
            id: id.last_insert_rowid(),
            name: user.name.clone(),
            role: user.role,
            stores: user.stores.clone(),
            created_ms: now_ms,
        })
    }

    async fn users(&self) -> Result<Vec<User>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {USER_COLUMNS} FROM users u ORDER BY u.name"
        ))
        .fetch_all(self.reader())
        .await?;
        rows.iter().map(user_from_row).collect()
    }

    async fn user_with_hash(&self, name: &str) -> Result<Option<(User, String)>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {USER_COLUMNS}, u.password_hash FROM users u WHERE u.name = ?"
        ))
        .bind(name)
        .fetch_optional(self.reader())
        .await?;
        row.map(|r| Ok((user_from_row(&r)?, r.try_get("password_hash")?)))
            .transpose()
    }

    async fn set_password(&self, name: &str, hash: &str, now_ms: i64) -> Result<(), AccountError> {
        let mut tx = self.writer().begin().await.map_err(StoreError::from)?;
        let done = sqlx::query("UPDATE users SET password_hash = ?, updated_ms = ? WHERE name = ?")
            .bind(hash)
            .bind(now_ms)
            .bind(name)
            .execute(&mut *tx)
            .await
            .map_err(StoreError::from)?;
        if done.rows_affected() == 0 {
            return Err(AccountError::Missing(name.to_string()));
        }
        // A new password signs out every browser the old one signed in: that is why people change it.
        sqlx::query("DELETE FROM sessions WHERE user_id = (SELECT id FROM users WHERE name = ?)")
            .bind(name)
            .execute(&mut *tx)
            .await
            .map_err(StoreError::from)?;
        tx.commit().await.map_err(StoreError::from)?;
        Ok(())
    }

    async fn remove_user(&self, name: &str) -> Result<(), AccountError> {
        let mut tx = self.writer().begin().await.map_err(StoreError::from)?;
        let role: Option<String> = sqlx::query_scalar("SELECT role FROM users WHERE name = ?")
            .bind(name)
            .fetch_optional(&mut *tx)
            .await
            .map_err(StoreError::from)?;
        let Some(role) = role else {
            return Err(AccountError::Missing(name.to_string()));
        };
        if role == Role::Owner.as_str() {
            let owners: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users WHERE role = 'owner'")
                .fetch_one(&mut *tx)
                .await
                .map_err(StoreError::from)?;
            if owners <= 1 {
                return Err(AccountError::LastOwner(name.to_string()));
            }
        }
        for table in ["api_tokens", "sessions"] {
            sqlx::query(&format!(
                "DELETE FROM {table} WHERE user_id = (SELECT id FROM users WHERE name = ?)"
            ))
            .bind(name)
            .execute(&mut *tx)
            .await
            .map_err(StoreError::from)?;
        }
        sqlx::query("DELETE FROM users WHERE name = ?")
            .bind(name)
            .execute(&mut *tx)
            .await
            .map_err(StoreError::from)?;
        tx.commit().await.map_err(StoreError::from)?;
        Ok(())
    }

    async fn add_token(
        &self,
        user: &str,
        label: &str,
        digest: &str,
        now_ms: i64,
    ) -> Result<(), AccountError> {
        let done = sqlx::query(
            "INSERT INTO api_tokens (user_id, label, digest, created_ms) \
             SELECT id, ?, ?, ? FROM users WHERE name = ?",
        )
        .bind(label)
        .bind(digest)
        .bind(now_ms)
        .bind(user)
        .execute(self.writer())
        .await
        .map_err(StoreError::from)?;
        if done.rows_affected() == 0 {
            return Err(AccountError::Missing(user.to_string()));
        }
        Ok(())
    }

    async fn token_user(&self, digest: &str, now_ms: i64) -> Result<Option<User>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {USER_COLUMNS} FROM api_tokens t JOIN users u ON u.id = t.user_id WHERE t.digest = ?"
        ))
        .bind(digest)
        .fetch_optional(self.reader())
        .await?;
        let Some(row) = row else { return Ok(None) };
        sqlx::query("UPDATE api_tokens SET last_used_ms = ? WHERE digest = ?")
            .bind(now_ms)
            .bind(digest)
            .execute(self.writer())
            .await?;
        Ok(Some(user_from_row(&row)?))
    }

    async fn add_session(
        &self,
        digest: &str,
        user_id: i64,
        csrf: &str,
        address: Option<&str>,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO sessions (digest, user_id, csrf, created_ms, seen_ms, address) VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(digest)
        .bind(user_id)
        .bind(csrf)
        .bind(now_ms)
        .bind(now_ms)
        .bind(address)
        .execute(self.writer())
        .await?;
        Ok(())
    }

    async fn session(
        &self,
        digest: &str,
        now_ms: i64,
        idle_ms: i64,
    ) -> Result<Option<SessionRecord>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {USER_COLUMNS}, s.csrf, s.seen_ms FROM sessions s JOIN users u ON u.id = s.user_id \
             WHERE s.digest = ?"
        ))
        .bind(digest)
        .fetch_optional(self.reader())
        .await?;
        let Some(row) = row else { return Ok(None) };
        let seen_ms: i64 = row.try_get("seen_ms")?;
        if now_ms - seen_ms > idle_ms {
            self.end_session(digest).await?;
            return Ok(None);
        }
        if now_ms - seen_ms > 60_000 {
            sqlx::query("UPDATE sessions SET seen_ms = ? WHERE digest = ?")
                .bind(now_ms)
                .bind(digest)
                .execute(self.writer())
                .await?;
        }
        Ok(Some(SessionRecord {
            user: user_from_row(&row)?,
            csrf: row.try_get("csrf")?,
        }))
    }

    async fn end_session(&self, digest: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM sessions WHERE digest = ?")
            .bind(digest)
            .execute(self.writer())
            .await?;
        Ok(())
    }
}
