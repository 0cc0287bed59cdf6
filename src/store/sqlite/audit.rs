//! The audit log in SQLite: one chain, appended inside the writer's transactions.

use async_trait::async_trait;
use sqlx::{QueryBuilder, Sqlite};

use super::SqliteStore;
use crate::store::audit::*;
use crate::store::*;

/// Appends `e` to the chain inside `tx`, after the newest row; returns its id.
async fn append(
    tx: &mut sqlx::Transaction<'_, Sqlite>,
    e: &NewAuditEntry,
) -> Result<i64, StoreError> {
    let prev: Option<String> =
        sqlx::query_scalar("SELECT hash FROM audit_log ORDER BY id DESC LIMIT 1")
            .fetch_optional(&mut **tx)
            .await?
            .flatten();
    let prev = prev.unwrap_or_default();
    let hash = chain_hash(&prev, e);
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO audit_log (at_ms, actor, address, action, target, detail, prev_hash, hash) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
    )
    .bind(e.at_ms)
    .bind(&e.actor)
    .bind(&e.address)
    .bind(&e.action)
    .bind(&e.target)
    .bind(&e.detail)
    .bind(&prev)
    .bind(&hash)
    .fetch_one(&mut **tx)
    .await?;
    Ok(id)
}

#[async_trait]
impl AuditLog for SqliteStore {
    async fn record(&self, e: &NewAuditEntry) -> Result<(), StoreError> {
        // The newest row's hash and the new row in one transaction on the single writer: no row can come
        // between them.
        let mut tx = self.writer().begin().await?;
        append(&mut tx, e).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn purge_audit(&self, purge: &AuditPurge) -> Result<Option<Checkpoint>, StoreError> {
        let mut tx = self.writer().begin().await?;
        // The oldest rows up to the first one recorded at or after the bound: a row with a clock gone back
        // among recent ones never pulls the cut forward over rows that must stay.
        let keep_from: Option<i64> =
            sqlx::query_scalar("SELECT id FROM audit_log WHERE at_ms >= ? ORDER BY id LIMIT 1")
                .bind(purge.before_ms)
                .fetch_optional(&mut *tx)
                .await?;
        let (removed, first_id, last_id): (i64, Option<i64>, Option<i64>) =
            sqlx::query_as("SELECT COUNT(*), MIN(id), MAX(id) FROM audit_log WHERE id < ?")
                .bind(keep_from.unwrap_or(i64::MAX))
                .fetch_one(&mut *tx)
                .await?;
        let (Some(first_id), Some(last_id)) = (first_id, last_id) else {
            return Ok(None);
        };
        let last_hash: Option<String> =
            sqlx::query_scalar("SELECT hash FROM audit_log WHERE id = ?")
                .bind(last_id)
                .fetch_one(&mut *tx)
                .await?;
        let mut checkpoint = Checkpoint {
            id: 0,
            removed,
            first_id,
            last_id,
            last_hash: last_hash.unwrap_or_default(),
            before_ms: purge.before_ms,
        };
        checkpoint.id = append(&mut tx, &checkpoint_entry(purge, &checkpoint)?).await?;
        tx.commit().await?;
        // The checkpoint is durable before the first row goes, so a purge stopped half way leaves a log that
        // verifies, and the next purge takes the rest.
        loop {
            let gone = sqlx::query(
                "DELETE FROM audit_log WHERE id IN \
                 (SELECT id FROM audit_log WHERE id <= ? ORDER BY id LIMIT ?)",
            )
            .bind(last_id)
            .bind(AUDIT_PURGE_BATCH)
            .execute(self.writer())
            .await?
            .rows_affected();
            if gone < AUDIT_PURGE_BATCH as u64 {
                break;
            }
        }
        Ok(Some(checkpoint))
    }

    async fn verify_audit(&self) -> Result<AuditCheck, StoreError> {
        let checkpoints = checkpoints(
            sqlx::query_as("SELECT id, detail FROM audit_log WHERE action = ? ORDER BY id")
                .bind(CHECKPOINT_ACTION)
                .fetch_all(self.reader())
                .await?,
        );
        let mut walk = ChainWalk::new(&checkpoints);
        let mut after = 0i64;
        loop {
            let page: Vec<ChainRow> = sqlx::query_as(&format!(
                "SELECT {CHAIN_COLUMNS} FROM audit_log WHERE id > ? ORDER BY id LIMIT ?"
            ))
            .bind(after)
            .bind(VERIFY_PAGE)
            .fetch_all(self.reader())
            .await?;
            let Some(newest) = page.last() else {
                return Ok(walk.finish());
            };
            after = newest.id;
            if !page.into_iter().all(|row| walk.step(row)) {
                return Ok(walk.finish());
            }
        }
    }

    async fn audit(&self, query: &AuditQuery) -> Result<Vec<AuditEntry>, StoreError> {
        let mut q = QueryBuilder::<Sqlite>::new(
            "SELECT id, at_ms, actor, address, action, target, detail FROM audit_log WHERE 1 = 1",
        );
        push_audit_query(&mut q, query);
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
