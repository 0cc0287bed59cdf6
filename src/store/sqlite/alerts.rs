//! The alert outbox in SQLite: one writer, so a claim's choosing and marking are one statement and need no lock.

use async_trait::async_trait;
use sqlx::Sqlite;

use super::SqliteStore;
use crate::store::alerts::*;
use crate::store::exceptions::ExceptionRow;
use crate::store::*;

#[async_trait]
impl AlertOutbox for SqliteStore {
    async fn exceptions_found(
        &self,
        from_ms: i64,
        to_ms: i64,
        after: Option<&FoundKey>,
        limit: i64,
    ) -> Result<Vec<ExceptionRecord>, StoreError> {
        let rows: Vec<ExceptionRow> = found::<Sqlite>(from_ms, to_ms, after, limit)
            .build_query_as()
            .fetch_all(self.reader())
            .await?;
        Ok(rows.into_iter().map(ExceptionRecord::from).collect())
    }

    async fn plan_alerts(&self, rows: &[NewAlert], now_ms: i64) -> Result<u64, StoreError> {
        let Some(mut q) = plan::<Sqlite>(rows, now_ms) else {
            return Ok(0);
        };
        Ok(q.build().execute(self.writer()).await?.rows_affected())
    }

    async fn claim_alerts(
        &self,
        holder: &str,
        now_ms: i64,
        lease_ms: i64,
        limit: i64,
    ) -> Result<Vec<AlertJob>, StoreError> {
        let rows: Vec<AlertRow> = claim::<Sqlite>(holder, now_ms, lease_ms, limit, "")
            .build_query_as()
            .fetch_all(self.writer())
            .await?;
        let mut jobs = rows
            .into_iter()
            .map(AlertRow::job)
            .collect::<Result<Vec<_>, _>>()?;
        jobs.sort_by_key(|j| j.id);
        Ok(jobs)
    }

    async fn finish_alert(
        &self,
        id: i64,
        holder: &str,
        outcome: &AlertOutcome,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        finish::<Sqlite>(id, holder, outcome, now_ms)
            .build()
            .execute(self.writer())
            .await?;
        Ok(())
    }

    async fn release_orphaned_alerts(&self, holder: &str) -> Result<u64, StoreError> {
        let done = release::<Sqlite>(holder)
            .build()
            .execute(self.writer())
            .await?;
        Ok(done.rows_affected())
    }

    async fn alert_trouble(&self) -> Result<AlertTrouble, StoreError> {
        let (failed, retrying): (i64, i64) =
            sqlx::query_as(TROUBLE).fetch_one(self.reader()).await?;
        let newest = sqlx::query_as(NEWEST_TROUBLE)
            .fetch_optional(self.reader())
            .await?;
        Ok(AlertTrouble {
            failed,
            retrying,
            newest,
        })
    }
}
