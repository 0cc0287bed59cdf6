//! Dead letters in PostgreSQL.

use std::ops::RangeInclusive;

use async_trait::async_trait;

use super::PgStore;
use crate::store::dead_letters::*;
use crate::store::*;

#[async_trait]
impl DeadLetterStore for PgStore {
    async fn dead_letters(&self, query: &DeadLetterQuery) -> Result<Vec<DeadLetter>, StoreError> {
        // substr counts characters in text, so the cut never splits one.
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT id, received_ms, topic, reason, substr(raw, 1, $1::integer) AS raw, \
             octet_length(raw)::bigint AS raw_bytes, size, sha256, dismissed_ms, dismissed_by \
             FROM dead_letters WHERE $2 OR dismissed_ms IS NULL ORDER BY id DESC LIMIT $3",
        )
        .bind(DEAD_LETTER_EXCERPT_CHARS)
        .bind(query.include_dismissed)
        .bind(query.limit.clamp(1, 1000))
        .fetch_all(self.pool())
        .await?;
        Ok(rows.into_iter().map(DeadLetter::from).collect())
    }

    async fn dead_letter_totals(&self) -> Result<DeadLetterTotals, StoreError> {
        // SUM of a bigint is numeric in PostgreSQL: cast back, the total of kept bytes fits.
        let (letters, dismissed, kept_bytes): (i64, i64, i64) = sqlx::query_as(
            "SELECT COUNT(*), COUNT(*) FILTER (WHERE dismissed_ms IS NOT NULL), \
             COALESCE(SUM(kept_bytes), 0)::bigint FROM dead_letters",
        )
        .fetch_one(self.pool())
        .await?;
        Ok(DeadLetterTotals {
            letters,
            dismissed,
            kept_bytes,
        })
    }

    async fn dismiss_dead_letters(
        &self,
        ids: RangeInclusive<i64>,
        by: &str,
        now_ms: i64,
    ) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "UPDATE dead_letters SET dismissed_ms = $1, dismissed_by = $2 \
             WHERE id BETWEEN $3 AND $4 AND dismissed_ms IS NULL",
        )
        .bind(now_ms)
        .bind(by)
        .bind(ids.start())
        .bind(ids.end())
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected())
    }

    async fn purge_dead_letters(&self, bounds: &DeadLetterBounds) -> Result<Purged, StoreError> {
        let mut tx = self.pool().begin().await?;
        // Two daemons' retention may run together: the second waits for the first's purge and then sees
        // what it left, rather than both counting the same letters.
        sqlx::query("LOCK TABLE dead_letters IN SHARE ROW EXCLUSIVE MODE")
            .execute(&mut *tx)
            .await?;
        let mut purged = Purged::default();
        let removed_bytes = |removed: &[i64]| removed.iter().sum::<i64>().unsigned_abs();
        if let Some(before) = bounds.received_before_ms {
            let removed: Vec<i64> = sqlx::query_scalar(
                "DELETE FROM dead_letters WHERE received_ms < $1 RETURNING kept_bytes",
            )
            .bind(before)
            .fetch_all(&mut *tx)
            .await?;
            purged.by_age = removed.len() as u64;
            purged.bytes += removed_bytes(&removed);
        }
        if let Some(max) = bounds.max_total_bytes {
            // Every letter that, with all newer ones, keeps more than the bound goes.
            let removed: Vec<i64> = sqlx::query_scalar(
                "DELETE FROM dead_letters WHERE id IN (SELECT id FROM (SELECT id, \
                 SUM(kept_bytes) OVER (ORDER BY id DESC) AS with_newer FROM dead_letters) w \
                 WHERE with_newer > $1) RETURNING kept_bytes",
            )
            .bind(i64::try_from(max).unwrap_or(i64::MAX))
            .fetch_all(&mut *tx)
            .await?;
            purged.by_size = removed.len() as u64;
            purged.bytes += removed_bytes(&removed);
        }
        tx.commit().await?;
        Ok(purged)
    }
}
