//! The audit log: who signed in (or was refused), who opened which footage, who exported what, who changed a
//! case. Rows are only ever added (the database refuses edits and removals) and each is chained to the one
//! before by SHA-256, so `tillmark audit verify` finds a row altered or removed in the file; the owner reads
//! them on `/audit`. Refused sign-ins are also what sign-in
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

/// Since when each of a sign-in's counts is taken, in epoch milliseconds.
#[derive(Debug, Clone, Copy)]
pub struct SignInWindows {
    /// Refusals of the name from the address, and from the address over any names.
    pub refused_ms: i64,
    /// Refusals of the name from anywhere.
    pub refused_by_name_ms: i64,
    /// Sign-ins that make an address the name's usual one.
    pub usual_ms: i64,
}

/// Refused sign-ins around one attempt, and whether the name has signed in from its address before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignInRecord {
    /// Of this name from this address.
    pub refused_here: i64,
    /// From this address, over any names.
    pub refused_from_address: i64,
    /// Of this name, from any address.
    pub refused_anywhere: i64,
    /// The name signed in from this address within the window.
    pub usual_address: bool,
}

/// What `tillmark audit verify` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditCheck {
    /// Rows read.
    pub rows: i64,
    /// Rows from before the chain began (recorded before the upgrade that added it).
    pub before_chain: i64,
    /// The first row that breaks the chain, and how.
    pub broken: Option<(i64, String)>,
}

/// A row's hash: SHA-256, in hex, of the previous row's hash and this row's content, one per line, the
/// content as a JSON array so no field can run into the next.
fn chain_hash(prev: &str, e: &NewAuditEntry) -> String {
    use sha2::Digest;
    let content = serde_json::json!([e.at_ms, e.actor, e.address, e.action, e.target, e.detail]);
    hex::encode(sha2::Sha256::digest(format!("{prev}\n{content}")))
}

#[async_trait]
pub trait AuditLog: Send + Sync {
    async fn record(&self, entry: &NewAuditEntry) -> Result<(), StoreError>;
    async fn audit(&self, query: &AuditQuery) -> Result<Vec<AuditEntry>, StoreError>;
    /// Walks the whole log in order, checking each row's link to the one before and its content.
    async fn verify_audit(&self) -> Result<AuditCheck, StoreError>;
    /// What the audit log says of a sign-in of `name` from `address`, for the throttle.
    async fn sign_in_record(
        &self,
        name: &str,
        address: &str,
        since: &SignInWindows,
    ) -> Result<SignInRecord, StoreError>;
}

#[async_trait]
impl AuditLog for SqliteStore {
    async fn record(&self, e: &NewAuditEntry) -> Result<(), StoreError> {
        // The newest row's hash and the new row in one transaction on the single writer: no row can come
        // between them.
        let mut tx = self.writer().begin().await?;
        let prev: Option<String> =
            sqlx::query_scalar("SELECT hash FROM audit_log ORDER BY id DESC LIMIT 1")
                .fetch_optional(&mut *tx)
                .await?
                .flatten();
        let prev = prev.unwrap_or_default();
        let hash = chain_hash(&prev, e);
        sqlx::query(
            "INSERT INTO audit_log (at_ms, actor, address, action, target, detail, prev_hash, hash) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(e.at_ms)
        .bind(&e.actor)
        .bind(&e.address)
        .bind(&e.action)
        .bind(&e.target)
        .bind(&e.detail)
        .bind(&prev)
        .bind(&hash)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn verify_audit(&self) -> Result<AuditCheck, StoreError> {
        type Row = (
            i64,
            i64,
            Option<String>,
            Option<String>,
            String,
            Option<String>,
            Option<String>,
            Option<String>,
            Option<String>,
        );
        let mut check = AuditCheck {
            rows: 0,
            before_chain: 0,
            broken: None,
        };
        // The previous row's id and hash, once the chain has begun.
        let mut last: Option<(i64, String)> = None;
        let mut after = 0i64;
        loop {
            let page: Vec<Row> = sqlx::query_as(
                "SELECT id, at_ms, actor, address, action, target, detail, prev_hash, hash FROM audit_log \
                 WHERE id > ? ORDER BY id LIMIT 1000",
            )
            .bind(after)
            .fetch_all(self.reader())
            .await?;
            let Some(newest) = page.last() else {
                return Ok(check);
            };
            after = newest.0;
            for (id, at_ms, actor, address, action, target, detail, prev_hash, hash) in page {
                check.rows += 1;
                let (Some(prev_hash), Some(hash)) = (prev_hash, hash) else {
                    match last {
                        None => check.before_chain += 1,
                        Some(_) => {
                            check.broken =
                                Some((id, "has no hash, though rows before it do".into()));
                            return Ok(check);
                        }
                    }
                    continue;
                };
                let expected_prev = last.as_ref().map(|(_, h)| h.as_str()).unwrap_or_default();
                if prev_hash != expected_prev {
                    let why = match &last {
                        Some((before, _)) => format!(
                            "does not follow row {before}: a row between them was removed, or one altered"
                        ),
                        None => "is the first chained row but names a row before it".into(),
                    };
                    check.broken = Some((id, why));
                    return Ok(check);
                }
                let entry = NewAuditEntry {
                    at_ms,
                    actor,
                    address,
                    action,
                    target,
                    detail,
                };
                if chain_hash(&prev_hash, &entry) != hash {
                    check.broken = Some((
                        id,
                        "was altered: its content does not match its hash".into(),
                    ));
                    return Ok(check);
                }
                last = Some((id, hash));
            }
        }
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

    async fn sign_in_record(
        &self,
        name: &str,
        address: &str,
        since: &SignInWindows,
    ) -> Result<SignInRecord, StoreError> {
        // The writer connection: a refusal just recorded must count at once, whatever a reader has seen.
        let (pair, from_address, name_anywhere, usual): (i64, i64, i64, bool) = sqlx::query_as(
            "SELECT \
               COALESCE(SUM(action = 'sign_in_refused' AND actor = ?1 AND address = ?2 AND at_ms >= ?3), 0), \
               COALESCE(SUM(action = 'sign_in_refused' AND address = ?2 AND at_ms >= ?3), 0), \
               COALESCE(SUM(action = 'sign_in_refused' AND actor = ?1 AND at_ms >= ?4), 0), \
               EXISTS (SELECT 1 FROM audit_log WHERE action = 'sign_in' AND actor = ?1 AND address = ?2 \
                       AND at_ms >= ?5) \
             FROM audit_log WHERE action = 'sign_in_refused' AND at_ms >= MIN(?3, ?4) \
               AND (actor = ?1 OR address = ?2)",
        )
        .bind(name)
        .bind(address)
        .bind(since.refused_ms)
        .bind(since.refused_by_name_ms)
        .bind(since.usual_ms)
        .fetch_one(self.writer())
        .await?;
        Ok(SignInRecord {
            refused_here: pair,
            refused_from_address: from_address,
            refused_anywhere: name_anywhere,
            usual_address: usual,
        })
    }
}
