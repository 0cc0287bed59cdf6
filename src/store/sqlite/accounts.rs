//! People, sessions and API tokens in SQLite.

use async_trait::async_trait;
use sqlx::{FromRow, Row};

use super::SqliteStore;
use crate::accounts::{NewUser, Role, User};
use crate::store::accounts::{TOKEN_INFO, USER_COLUMNS, UserRow};
use crate::store::*;
use crate::totp::TotpSecret;

fn user_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<User, StoreError> {
    UserRow::from_row(row)?.user()
}

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
            totp: false,
            timezone: None,
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

    async fn set_timezone(
        &self,
        name: &str,
        timezone: Option<&str>,
        now_ms: i64,
    ) -> Result<(), AccountError> {
        let done = sqlx::query("UPDATE users SET timezone = ?, updated_ms = ? WHERE name = ?")
            .bind(timezone)
            .bind(now_ms)
            .bind(name)
            .execute(self.writer())
            .await
            .map_err(StoreError::from)?;
        if done.rows_affected() == 0 {
            return Err(AccountError::Missing(name.to_string()));
        }
        Ok(())
    }

    async fn set_password(
        &self,
        name: &str,
        hash: &str,
        now_ms: i64,
        keep_tokens: bool,
    ) -> Result<u64, AccountError> {
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
        let mut revoked = 0;
        if !keep_tokens {
            revoked = sqlx::query(
                "DELETE FROM api_tokens WHERE user_id = (SELECT id FROM users WHERE name = ?)",
            )
            .bind(name)
            .execute(&mut *tx)
            .await
            .map_err(StoreError::from)?
            .rows_affected();
        }
        tx.commit().await.map_err(StoreError::from)?;
        Ok(revoked)
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
        for table in ["api_tokens", "sessions", "sign_in_challenges"] {
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

    async fn set_access(
        &self,
        name: &str,
        role: Role,
        stores: &[String],
        now_ms: i64,
    ) -> Result<(), AccountError> {
        let stores = serde_json::to_string(stores).unwrap_or_else(|_| "[]".into());
        // One statement, so no second change can come between the count of owners and the update.
        let done = sqlx::query(
            "UPDATE users SET role = ?2, stores = ?3, updated_ms = ?4 WHERE name = ?1 \
             AND (role != 'owner' OR ?2 = 'owner' OR (SELECT COUNT(*) FROM users WHERE role = 'owner') > 1)",
        )
        .bind(name)
        .bind(role.as_str())
        .bind(&stores)
        .bind(now_ms)
        .execute(self.writer())
        .await
        .map_err(StoreError::from)?;
        if done.rows_affected() == 1 {
            return Ok(());
        }
        let exists: Option<i64> = sqlx::query_scalar("SELECT id FROM users WHERE name = ?")
            .bind(name)
            .fetch_optional(self.reader())
            .await
            .map_err(StoreError::from)?;
        Err(match exists {
            Some(_) => AccountError::LastOwner(name.to_string()),
            None => AccountError::Missing(name.to_string()),
        })
    }

    async fn add_token(
        &self,
        user: &str,
        label: &str,
        digest: &str,
        now_ms: i64,
        expires_ms: Option<i64>,
    ) -> Result<(), AccountError> {
        let done = sqlx::query(
            "INSERT INTO api_tokens (user_id, label, digest, created_ms, expires_ms) \
             SELECT id, ?, ?, ?, ? FROM users WHERE name = ?",
        )
        .bind(label)
        .bind(digest)
        .bind(now_ms)
        .bind(expires_ms)
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
            "SELECT {USER_COLUMNS} FROM api_tokens t JOIN users u ON u.id = t.user_id WHERE t.digest = ? \
             AND (t.expires_ms IS NULL OR t.expires_ms > ?)"
        ))
        .bind(digest)
        .bind(now_ms)
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

    async fn tokens(&self, user: Option<&str>) -> Result<Vec<TokenInfo>, StoreError> {
        Ok(sqlx::query_as(&format!(
            "{TOKEN_INFO} WHERE ?1 IS NULL OR u.name = ?1 ORDER BY t.id"
        ))
        .bind(user)
        .fetch_all(self.reader())
        .await?)
    }

    async fn revoke_token(&self, id: i64) -> Result<Option<TokenInfo>, StoreError> {
        let mut tx = self.writer().begin().await?;
        let token: Option<TokenInfo> = sqlx::query_as(&format!("{TOKEN_INFO} WHERE t.id = ?"))
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM api_tokens WHERE id = ?")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(token)
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

    async fn set_totp(
        &self,
        name: &str,
        secret: Option<&TotpSecret>,
        now_ms: i64,
    ) -> Result<bool, AccountError> {
        let mut tx = self.writer().begin().await.map_err(StoreError::from)?;
        let had: Option<bool> =
            sqlx::query_scalar("SELECT totp_secret IS NOT NULL FROM users WHERE name = ?")
                .bind(name)
                .fetch_optional(&mut *tx)
                .await
                .map_err(StoreError::from)?;
        let Some(had) = had else {
            return Err(AccountError::Missing(name.to_string()));
        };
        // A new key starts with no step spent: the old key's codes mean nothing to it.
        sqlx::query(
            "UPDATE users SET totp_secret = ?, totp_last_step = NULL, updated_ms = ? WHERE name = ?",
        )
        .bind(secret.map(TotpSecret::expose_base32))
        .bind(now_ms)
        .bind(name)
        .execute(&mut *tx)
        .await
        .map_err(StoreError::from)?;
        // A sign-in half done under the old key, or under none, finishes under the new rule or not at all.
        sqlx::query(
            "DELETE FROM sign_in_challenges WHERE user_id = (SELECT id FROM users WHERE name = ?)",
        )
        .bind(name)
        .execute(&mut *tx)
        .await
        .map_err(StoreError::from)?;
        tx.commit().await.map_err(StoreError::from)?;
        Ok(had)
    }

    async fn totp(&self, user_id: i64) -> Result<Option<TotpState>, StoreError> {
        // The writer: the step a sign-in just spent must be seen by the next one at once.
        let row: Option<(Option<String>, Option<i64>)> =
            sqlx::query_as("SELECT totp_secret, totp_last_step FROM users WHERE id = ?")
                .bind(user_id)
                .fetch_optional(self.writer())
                .await?;
        let Some((Some(secret), last_step)) = row else {
            return Ok(None);
        };
        let secret = TotpSecret::from_base32(&secret)
            .map_err(|e| StoreError::Invalid(format!("user {user_id}: {e}")))?;
        Ok(Some(TotpState { secret, last_step }))
    }

    async fn use_totp_step(&self, user_id: i64, step: i64) -> Result<bool, StoreError> {
        // One statement on the single writer: two sign-ins with the same code cannot both pass.
        let done = sqlx::query(
            "UPDATE users SET totp_last_step = ?1 WHERE id = ?2 AND totp_secret IS NOT NULL \
             AND (totp_last_step IS NULL OR totp_last_step < ?1)",
        )
        .bind(step)
        .bind(user_id)
        .execute(self.writer())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn add_sign_in_challenge(
        &self,
        digest: &str,
        user_id: i64,
        now_ms: i64,
        expired_before_ms: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.writer().begin().await?;
        sqlx::query("DELETE FROM sign_in_challenges WHERE created_ms < ?")
            .bind(expired_before_ms)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO sign_in_challenges (digest, user_id, created_ms) VALUES (?, ?, ?)",
        )
        .bind(digest)
        .bind(user_id)
        .bind(now_ms)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn sign_in_challenge(
        &self,
        digest: &str,
        since_ms: i64,
    ) -> Result<Option<User>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {USER_COLUMNS} FROM sign_in_challenges c JOIN users u ON u.id = c.user_id \
             WHERE c.digest = ? AND c.created_ms >= ?"
        ))
        .bind(digest)
        .bind(since_ms)
        .fetch_optional(self.writer())
        .await?;
        row.as_ref().map(user_from_row).transpose()
    }

    async fn end_sign_in_challenges(&self, user_id: i64) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM sign_in_challenges WHERE user_id = ?")
            .bind(user_id)
            .execute(self.writer())
            .await?;
        Ok(())
    }
}
