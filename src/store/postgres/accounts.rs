//! People, sessions and API tokens in PostgreSQL.
//!
//! Several daemons may share the database, so what SQLite gets from its single writer is asked for here:
//! a rule across rows (the last owner stays) locks the owners' rows first, and a rule on one row (a TOTP step
//! is spent once) is a conditional UPDATE, which PostgreSQL re-checks against the row another transaction just
//! committed.

use async_trait::async_trait;
use sqlx::postgres::PgRow;
use sqlx::{FromRow, Postgres, Row, Transaction};

use super::PgStore;
use crate::accounts::{NewUser, Role, User};
use crate::store::accounts::{TOKEN_INFO, USER_COLUMNS, UserRow};
use crate::store::*;
use crate::totp::TotpSecret;

fn user_from_row(row: &PgRow) -> Result<User, StoreError> {
    UserRow::from_row(row)?.user()
}

/// Locks every owner's row until `tx` ends, so that counting the owners and then demoting or removing one is
/// not raced by a second daemon doing the same to another owner: both would see two owners, and leave none.
async fn lock_owners(tx: &mut Transaction<'_, Postgres>) -> Result<i64, StoreError> {
    let owners: Vec<i64> =
        sqlx::query_scalar("SELECT id FROM users WHERE role = 'owner' FOR UPDATE")
            .fetch_all(&mut **tx)
            .await?;
    Ok(owners.len() as i64)
}

#[async_trait]
impl Accounts for PgStore {
    async fn add_user(&self, user: &NewUser, now_ms: i64) -> Result<User, AccountError> {
        let stores = serde_json::to_string(&user.stores).unwrap_or_else(|_| "[]".into());
        let id: Option<i64> = sqlx::query_scalar(
            "INSERT INTO users (name, role, stores, password_hash, created_ms, updated_ms) \
             VALUES ($1, $2, $3, $4, $5, $5) ON CONFLICT (name) DO NOTHING RETURNING id",
        )
        .bind(&user.name)
        .bind(user.role.as_str())
        .bind(&stores)
        .bind(&user.password_hash)
        .bind(now_ms)
        .fetch_optional(self.pool())
        .await
        .map_err(StoreError::from)?;
        let Some(id) = id else {
            return Err(AccountError::Exists(user.name.clone()));
        };
        Ok(User {
            id,
            name: user.name.clone(),
            role: user.role,
            stores: user.stores.clone(),
            created_ms: now_ms,
            totp: false,
            timezone: None,
        })
    }

    async fn users(&self) -> Result<Vec<User>, StoreError> {
        let rows: Vec<UserRow> = sqlx::query_as(&format!(
            "SELECT {USER_COLUMNS} FROM users u ORDER BY u.name"
        ))
        .fetch_all(self.pool())
        .await?;
        rows.into_iter().map(UserRow::user).collect()
    }

    async fn user_with_hash(&self, name: &str) -> Result<Option<(User, String)>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {USER_COLUMNS}, u.password_hash FROM users u WHERE u.name = $1"
        ))
        .bind(name)
        .fetch_optional(self.pool())
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
        let done = sqlx::query("UPDATE users SET timezone = $1, updated_ms = $2 WHERE name = $3")
            .bind(timezone)
            .bind(now_ms)
            .bind(name)
            .execute(self.pool())
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
        let mut tx = self.pool().begin().await.map_err(StoreError::from)?;
        let id: Option<i64> = sqlx::query_scalar(
            "UPDATE users SET password_hash = $1, updated_ms = $2 WHERE name = $3 RETURNING id",
        )
        .bind(hash)
        .bind(now_ms)
        .bind(name)
        .fetch_optional(&mut *tx)
        .await
        .map_err(StoreError::from)?;
        let Some(id) = id else {
            return Err(AccountError::Missing(name.to_string()));
        };
        // A new password signs out every browser the old one signed in: that is why people change it.
        sqlx::query("DELETE FROM sessions WHERE user_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(StoreError::from)?;
        let mut revoked = 0;
        if !keep_tokens {
            revoked = sqlx::query("DELETE FROM api_tokens WHERE user_id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(StoreError::from)?
                .rows_affected();
        }
        tx.commit().await.map_err(StoreError::from)?;
        Ok(revoked)
    }

    async fn remove_user(&self, name: &str) -> Result<(), AccountError> {
        let mut tx = self.pool().begin().await.map_err(StoreError::from)?;
        let owners = lock_owners(&mut tx).await?;
        let user: Option<(i64, String)> =
            sqlx::query_as("SELECT id, role FROM users WHERE name = $1 FOR UPDATE")
                .bind(name)
                .fetch_optional(&mut *tx)
                .await
                .map_err(StoreError::from)?;
        let Some((id, role)) = user else {
            return Err(AccountError::Missing(name.to_string()));
        };
        if role == Role::Owner.as_str() && owners <= 1 {
            return Err(AccountError::LastOwner(name.to_string()));
        }
        // Their tokens, sessions and sign-ins waiting for a code go with them: ON DELETE CASCADE.
        sqlx::query("DELETE FROM users WHERE id = $1")
            .bind(id)
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
        let mut tx = self.pool().begin().await.map_err(StoreError::from)?;
        let owners = lock_owners(&mut tx).await?;
        let done = sqlx::query(
            "UPDATE users SET role = $2, stores = $3, updated_ms = $4 WHERE name = $1 \
             AND (role <> 'owner' OR $2 = 'owner' OR $5 > 1)",
        )
        .bind(name)
        .bind(role.as_str())
        .bind(&stores)
        .bind(now_ms)
        .bind(owners)
        .execute(&mut *tx)
        .await
        .map_err(StoreError::from)?;
        if done.rows_affected() == 1 {
            tx.commit().await.map_err(StoreError::from)?;
            return Ok(());
        }
        let exists: Option<i64> = sqlx::query_scalar("SELECT id FROM users WHERE name = $1")
            .bind(name)
            .fetch_optional(&mut *tx)
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
             SELECT id, $1, $2, $3, $4 FROM users WHERE name = $5",
        )
        .bind(label)
        .bind(digest)
        .bind(now_ms)
        .bind(expires_ms)
        .bind(user)
        .execute(self.pool())
        .await
        .map_err(StoreError::from)?;
        if done.rows_affected() == 0 {
            return Err(AccountError::Missing(user.to_string()));
        }
        Ok(())
    }

    async fn token_user(&self, digest: &str, now_ms: i64) -> Result<Option<User>, StoreError> {
        // Noting the use and reading whose it is in one statement: a token revoked meanwhile is no one's.
        let row = sqlx::query(&format!(
            "WITH used AS (UPDATE api_tokens SET last_used_ms = $2 WHERE digest = $1 \
               AND (expires_ms IS NULL OR expires_ms > $2) RETURNING user_id) \
             SELECT {USER_COLUMNS} FROM used JOIN users u ON u.id = used.user_id"
        ))
        .bind(digest)
        .bind(now_ms)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(user_from_row).transpose()
    }

    async fn tokens(&self, user: Option<&str>) -> Result<Vec<TokenInfo>, StoreError> {
        Ok(sqlx::query_as(&format!(
            "{TOKEN_INFO} WHERE $1::text IS NULL OR u.name = $1 ORDER BY t.id"
        ))
        .bind(user)
        .fetch_all(self.pool())
        .await?)
    }

    async fn revoke_token(&self, id: i64) -> Result<Option<TokenInfo>, StoreError> {
        let mut tx = self.pool().begin().await?;
        let token: Option<TokenInfo> = sqlx::query_as(&format!("{TOKEN_INFO} WHERE t.id = $1"))
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM api_tokens WHERE id = $1")
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
            "INSERT INTO sessions (digest, user_id, csrf, created_ms, seen_ms, address) \
             VALUES ($1, $2, $3, $4, $4, $5)",
        )
        .bind(digest)
        .bind(user_id)
        .bind(csrf)
        .bind(now_ms)
        .bind(address)
        .execute(self.pool())
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
             WHERE s.digest = $1"
        ))
        .bind(digest)
        .fetch_optional(self.pool())
        .await?;
        let Some(row) = row else { return Ok(None) };
        let seen_ms: i64 = row.try_get("seen_ms")?;
        if now_ms - seen_ms > idle_ms {
            self.end_session(digest).await?;
            return Ok(None);
        }
        if now_ms - seen_ms > 60_000 {
            sqlx::query("UPDATE sessions SET seen_ms = $1 WHERE digest = $2")
                .bind(now_ms)
                .bind(digest)
                .execute(self.pool())
                .await?;
        }
        Ok(Some(SessionRecord {
            user: user_from_row(&row)?,
            csrf: row.try_get("csrf")?,
        }))
    }

    async fn end_session(&self, digest: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM sessions WHERE digest = $1")
            .bind(digest)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    async fn set_totp(
        &self,
        name: &str,
        secret: Option<&TotpSecret>,
        now_ms: i64,
    ) -> Result<bool, AccountError> {
        let mut tx = self.pool().begin().await.map_err(StoreError::from)?;
        // The row locked: two changes at once each see the key the other replaced, as they would in turn.
        let had: Option<(i64, bool)> = sqlx::query_as(
            "SELECT id, totp_secret IS NOT NULL FROM users WHERE name = $1 FOR UPDATE",
        )
        .bind(name)
        .fetch_optional(&mut *tx)
        .await
        .map_err(StoreError::from)?;
        let Some((id, had)) = had else {
            return Err(AccountError::Missing(name.to_string()));
        };
        // A new key starts with no step spent: the old key's codes mean nothing to it.
        sqlx::query(
            "UPDATE users SET totp_secret = $1, totp_last_step = NULL, updated_ms = $2 WHERE id = $3",
        )
        .bind(secret.map(TotpSecret::expose_base32))
        .bind(now_ms)
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(StoreError::from)?;
        // A sign-in half done under the old key, or under none, finishes under the new rule or not at all.
        sqlx::query("DELETE FROM sign_in_challenges WHERE user_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(StoreError::from)?;
        tx.commit().await.map_err(StoreError::from)?;
        Ok(had)
    }

    async fn totp(&self, user_id: i64) -> Result<Option<TotpState>, StoreError> {
        let row: Option<(Option<String>, Option<i64>)> =
            sqlx::query_as("SELECT totp_secret, totp_last_step FROM users WHERE id = $1")
                .bind(user_id)
                .fetch_optional(self.pool())
                .await?;
        let Some((Some(secret), last_step)) = row else {
            return Ok(None);
        };
        let secret = TotpSecret::from_base32(&secret)
            .map_err(|e| StoreError::Invalid(format!("user {user_id}: {e}")))?;
        Ok(Some(TotpState { secret, last_step }))
    }

    async fn use_totp_step(&self, user_id: i64, step: i64) -> Result<bool, StoreError> {
        // One conditional UPDATE: a second sign-in with the same code waits for the first one's row lock,
        // then PostgreSQL checks the condition again against the step just spent, and updates nothing.
        let done = sqlx::query(
            "UPDATE users SET totp_last_step = $1 WHERE id = $2 AND totp_secret IS NOT NULL \
             AND (totp_last_step IS NULL OR totp_last_step < $1)",
        )
        .bind(step)
        .bind(user_id)
        .execute(self.pool())
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
        let mut tx = self.pool().begin().await?;
        sqlx::query("DELETE FROM sign_in_challenges WHERE created_ms < $1")
            .bind(expired_before_ms)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO sign_in_challenges (digest, user_id, created_ms) VALUES ($1, $2, $3)",
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
             WHERE c.digest = $1 AND c.created_ms >= $2"
        ))
        .bind(digest)
        .bind(since_ms)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(user_from_row).transpose()
    }

    async fn end_sign_in_challenges(&self, user_id: i64) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM sign_in_challenges WHERE user_id = $1")
            .bind(user_id)
            .execute(self.pool())
            .await?;
        Ok(())
    }
}
