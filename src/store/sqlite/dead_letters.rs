//! Dead letters in SQLite.

use std::ops::RangeInclusive;

use async_trait::async_trait;
use sqlx::{QueryBuilder, Sqlite};

use super::SqliteStore;
use crate::store::dead_letters::*;
use crate::store::*;

#[async_trait]
impl DeadLetterStore for SqliteStore {
    async fn dead_letters(&self, query: &DeadLetterQuery) -> Result<Vec<DeadLetter>, StoreError> {
        // substr counts characters in text, so the cut never splits one.
        let mut q =
            QueryBuilder::<Sqlite>::new("SELECT id, received_ms, topic, reason, substr(raw, 1, ");
        q.push_bind(DEAD_LETTER_EXCERPT_CHARS);
        q.push(
            ") AS raw, length(CAST(raw AS BLOB)) AS raw_bytes, size, sha256, dismissed_ms, dismissed_by \
             FROM dead_letters",
        );
        if !query.include_dismissed {
            q.push(" WHERE dismissed_ms IS NULL");
        }
        q.push(" ORDER BY id DESC LIMIT ")
            .push_bind(query.limit.clamp(1, 1000));
        let rows: Vec<Row> = q.build_query_as().fetch_all(self.reader()).await?;
        Ok(rows.into_iter().map(DeadLetter::from).collect())
    }

    async fn dead_letter_totals(&self) -> Result<DeadLetterTotals, StoreError> {
        let (letters, dismissed, kept_bytes): (i64, i64, i64) = sqlx::query_as(
            "SELECT COUNT(*), COALESCE(SUM(dismissed_ms IS NOT NULL), 0), COALESCE(SUM(kept_bytes), 0) \
             FROM dead_letters",
        )
        .fetch_one(self.reader())
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
            "UPDATE dead_letters SET dismissed_ms = ?, dismissed_by = ? \
             WHERE id BETWEEN ? AND ? AND dismissed_ms IS NULL",
        )
        .bind(now_ms)
        .bind(by)
        .bind(ids.start())
        .bind(ids.end())
        .execute(self.writer())
        .await?;
        Ok(done.rows_affected())
    }

    async fn purge_dead_letters(&self, bounds: &DeadLetterBounds) -> Result<Purged, StoreError> {
        let mut tx = self.writer().begin().await?;
        let mut purged = Purged::default();
        if let Some(before) = bounds.received_before_ms {
            let removed: Vec<i64> = sqlx::query_scalar(
                "DELETE FROM dead_letters WHERE received_ms < ? RETURNING kept_bytes",
            )
            .bind(before)
            .fetch_all(&mut *tx)
            .await?;
            purged.by_age = removed.len() as u64;
            purged.bytes += removed.iter().sum::<i64>().unsigned_abs();
        }
        if let Some(max) = bounds.max_total_bytes {
            // The newest letter that, with every newer one, keeps more than the bound: it and all older go.
            let cut: Option<i64> = sqlx::query_scalar(
                "SELECT id FROM (SELECT id, SUM(kept_bytes) OVER (ORDER BY id DESC) AS with_newer \
                 FROM dead_letters) WHERE with_newer > ? ORDER BY id DESC LIMIT 1",
            )
            .bind(i64::try_from(max).unwrap_or(i64::MAX))
            .fetch_optional(&mut *tx)
            .await?;
            if let Some(cut) = cut {
                let removed: Vec<i64> = sqlx::query_scalar(
                    "DELETE FROM dead_letters WHERE id <= ? RETURNING kept_bytes",
                )
                .bind(cut)
                .fetch_all(&mut *tx)
                .await?;
                purged.by_size = removed.len() as u64;
                purged.bytes += removed.iter().sum::<i64>().unsigned_abs();
            }
        }
        tx.commit().await?;
        Ok(purged)
    }
}
