//! The audit log: who signed in (or was refused), who opened which footage, who exported what, who changed a
//! case. Rows are only ever added; the owner reads them on `/audit`. Refused sign-ins are also what sign-in
//! throttling counts, so the limit holds across restarts and across daemons sharing one database.

use async_trait::async_trait;
use serde::Serialize;
use sqlx::{QueryBuilder, Sqlite};

use super::StoreError;
use super::sqlite::SqliteStore;

/// What is recorded: `action` is a word such as `sign_in`, `target` what it was done to.
#[derive(Debug, Clone, Default)]
pub struct NewAuditEntry {
    pub at_ms: i64,
    pub actor: Option<String>,
    pub address: Option<String>,
    pub action: String,
    pub target: Option<String>,
    pub detail: Option<String>,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct AuditEntry {
    pub id: i64,
    pub at_ms: i64,
    pub actor: Option<String>,
    pub address: Option<String>,
    pub action: String,
    pub target: Option<String>,
    pub detail: Option<String>,
}

/// Filters of the audit page; newest first, `before` an entry id for the next page.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    pub actor: Option<String>,
    pub action: Option<String>,
    pub from_ms: Option<i64>,
    pub to_ms: Option<i64>,
    pub before: Option<i64>,
    pub limit: i64,
}

#[async_trait]
pub trait AuditLog: Send + Sync {
    async fn record(&self, entry: &NewAuditEntry) -> Result<(), StoreError>;
    async fn audit(&self, query: &AuditQuery) -> Result<Vec<AuditEntry>, StoreError>;
    /// Refused sign-ins since `since_ms`: for the name typed, and from the address.
    async fn refused_sign_ins(
        &self,
        name: &str,
        address: &str,
        since_ms: i64,
    ) -> Result<(i64, i64), StoreError>;
}

#[async_trait]
impl AuditLog for SqliteStore {
    async fn record(&self, e: &NewAuditEntry) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO audit_log (at_ms, actor, address, action, target, detail) VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(e.at_ms)
        .bind(&e.actor)
        .bind(&e.address)
        .bind(&e.action)
        .bind(&e.target)
        .bind(&e.detail)
        .execute(self.writer())
        .await?;
        Ok(())
    }

    async fn audit(&self, query: &AuditQuery) -> Result<Vec<AuditEntry>, StoreError> {
        let mut q = QueryBuilder::<Sqlite>::new(
            "SELECT id, at_ms, actor, address, action, target, detail FROM audit_log WHERE 1 = 1",
        );
        if let Some(actor) = &query.actor {
            q.push(" AND actor = ").push_bind(actor);
        }
        if let Some(action) = &query.action {
            q.push(" AND action = ").push_bind(action);
        }
        if let Some(from) = query.from_ms {
            q.push(" AND at_ms >= ").push_bind(from);
        }
        if let Some(to) = query.to_ms {
            q.push(" AND at_ms < ").push_bind(to);
        }
        if let Some(before) = query.before {
            q.push(" AND id < ").push_bind(before);
        }
        q.push(" ORDER BY id DESC LIMIT ")
            .push_bind(query.limit.clamp(1, 1000));
        Ok(q.build_query_as().fetch_all(self.reader()).await?)
    }

    async fn refused_sign_ins(
        &self,
        name: &str,
        address: &str,
        since_ms: i64,
    ) -> Result<(i64, i64), StoreError> {
        // The writer connection: a refusal just recorded must count at once, whatever a reader has seen.
        let (by_name, by_address): (i64, i64) = sqlx::query_as(
            "SELECT COALESCE(SUM(actor = ?1), 0), COALESCE(SUM(address = ?2), 0) FROM audit_log \
             WHERE action = 'sign_in_refused' AND at_ms >= ?3 AND (actor = ?1 OR address = ?2)",
        )
        .bind(name)
        .bind(address)
        .bind(since_ms)
        .fetch_one(self.writer())
        .await?;
        Ok((by_name, by_address))
    }
}
