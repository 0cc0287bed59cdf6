//! The audit log in PostgreSQL: one chain, however many daemons append to it.

use async_trait::async_trait;
use sqlx::{Postgres, QueryBuilder, Transaction};

use super::PgStore;
use crate::store::audit::*;
use crate::store::*;

/// Appends `e` to the chain inside `tx`, after the newest row; returns its id.
///
/// Two daemons appending at once would each read the same newest hash and fork the chain, so the table is
/// locked first, until `tx` ends. A table lock rather than an advisory one: EXCLUSIVE mode waits for, and
/// holds off, every other writer of `audit_log` (each INSERT takes ROW EXCLUSIVE, which it conflicts with),
/// whether or not that writer knows of a lock convention, and it is the table's own, so installations in
/// other schemas of the same database never wait on each other as they would for one advisory key. Readers
/// (the audit page, verify, the sign-in throttle) take ACCESS SHARE, which it leaves alone. The newest row
/// is read after the lock is held: under READ COMMITTED that statement sees every append committed before.
/// Ids come from a sequence at INSERT, under the lock, so id order is the chain's order.
async fn append(tx: &mut Transaction<'_, Postgres>, e: &NewAuditEntry) -> Result<i64, StoreError> {
    sqlx::query("LOCK TABLE audit_log IN EXCLUSIVE MODE")
        .execute(&mut **tx)
        .await?;
    let prev: Option<String> =
        sqlx::query_scalar("SELECT hash FROM audit_log ORDER BY id DESC LIMIT 1")
            .fetch_optional(&mut **tx)
            .await?
            .flatten();
    let prev = prev.unwrap_or_default();
    let hash = chain_hash(&prev, e);
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO audit_log (at_ms, actor, address, action, target, detail, prev_hash, hash) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
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
impl AuditLog for PgStore {
    async fn record(&self, e: &NewAuditEntry) -> Result<(), StoreError> {
        let mut tx = self.pool().begin().await?;
        append(&mut tx, e).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn purge_audit(&self, purge: &AuditPurge) -> Result<Option<Checkpoint>, StoreError> {
        let mut tx = self.pool().begin().await?;
        // The lock first: what the checkpoint names is read as no other append or purge can change it.
        sqlx::query("LOCK TABLE audit_log IN EXCLUSIVE MODE")
            .execute(&mut *tx)
            .await?;
        // The oldest rows up to the first one recorded at or after the bound: a row with a clock gone back
        // among recent ones never pulls the cut forward over rows that must stay.
        let (removed, first_id, last_id): (i64, Option<i64>, Option<i64>) = sqlx::query_as(
            "SELECT COUNT(*), MIN(id), MAX(id) FROM audit_log WHERE id < COALESCE( \
               (SELECT id FROM audit_log WHERE at_ms >= $1 ORDER BY id LIMIT 1), $2)",
        )
        .bind(purge.before_ms)
        .bind(i64::MAX)
        .fetch_one(&mut *tx)
        .await?;
        let (Some(first_id), Some(last_id)) = (first_id, last_id) else {
            return Ok(None);
        };
        let last_hash: Option<String> =
            sqlx::query_scalar("SELECT hash FROM audit_log WHERE id = $1")
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
                 (SELECT id FROM audit_log WHERE id <= $1 ORDER BY id LIMIT $2)",
            )
            .bind(last_id)
            .bind(AUDIT_PURGE_BATCH)
            .execute(self.pool())
            .await?
            .rows_affected();
            if gone < AUDIT_PURGE_BATCH as u64 {
                break;
            }
        }
        Ok(Some(checkpoint))
    }

    async fn verify_audit(&self) -> Result<AuditCheck, StoreError> {
        // One snapshot for the whole walk: another daemon's purge between two pages would otherwise look like
        // rows removed from the middle of the chain.
        let mut tx = self.pool().begin().await?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .execute(&mut *tx)
            .await?;
        let checkpoints = checkpoints(
            sqlx::query_as("SELECT id, detail FROM audit_log WHERE action = $1 ORDER BY id")
                .bind(CHECKPOINT_ACTION)
                .fetch_all(&mut *tx)
                .await?,
        );
        let mut walk = ChainWalk::new(&checkpoints);
        let mut after = 0i64;
        loop {
            let page: Vec<ChainRow> = sqlx::query_as(&format!(
                "SELECT {CHAIN_COLUMNS} FROM audit_log WHERE id > $1 ORDER BY id LIMIT $2"
            ))
            .bind(after)
            .bind(VERIFY_PAGE)
            .fetch_all(&mut *tx)
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
        let mut q = QueryBuilder::<Postgres>::new(
            "SELECT id, at_ms, actor, address, action, target, detail FROM audit_log WHERE TRUE",
        );
        push_audit_query(&mut q, query);
        Ok(q.build_query_as().fetch_all(self.pool()).await?)
    }

    async fn sign_in_record(
        &self,
        name: &str,
        address: &str,
        since: &SignInWindows,
    ) -> Result<SignInRecord, StoreError> {
        let (pair, from_address, name_anywhere, usual): (i64, i64, i64, bool) = sqlx::query_as(
            "SELECT \
               COUNT(*) FILTER (WHERE actor = $1 AND address = $2 AND at_ms >= $3), \
               COUNT(*) FILTER (WHERE address = $2 AND at_ms >= $3), \
               COUNT(*) FILTER (WHERE actor = $1 AND at_ms >= $4), \
               EXISTS (SELECT 1 FROM audit_log WHERE action = 'sign_in' AND actor = $1 AND address = $2 \
                       AND at_ms >= $5) \
             FROM audit_log WHERE action = 'sign_in_refused' AND at_ms >= LEAST($3, $4) \
               AND (actor = $1 OR address = $2)",
        )
        .bind(name)
        .bind(address)
        .bind(since.refused_ms)
        .bind(since.refused_by_name_ms)
        .bind(since.usual_ms)
        .fetch_one(self.pool())
        .await?;
        Ok(SignInRecord {
            refused_here: pair,
            refused_from_address: from_address,
            refused_anywhere: name_anywhere,
            usual_address: usual,
        })
    }
}
