//! Exceptions and the rules' backlog in PostgreSQL.

use async_trait::async_trait;
use sqlx::Postgres;

use super::{PgStore, insert_bookmarks};
use crate::store::exceptions::*;
use crate::store::*;

#[async_trait]
impl Exceptions for PgStore {
    async fn rule_backlog(
        &self,
        received_by_ms: i64,
        limit: i64,
    ) -> Result<Vec<EventRecord>, StoreError> {
        let rows = backlog::<Postgres>(received_by_ms, limit)
            .build()
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(event_from_row).collect()
    }

    async fn record_rule_results(
        &self,
        results: &RuleResults,
        now_ms: i64,
    ) -> Result<u64, StoreError> {
        let mut tx = self.pool().begin().await?;
        let [found, done] = result_statements::<Postgres>(results, now_ms);
        let new = match found {
            Some(mut q) => q.build().execute(&mut *tx).await?.rows_affected(),
            None => 0,
        };
        let planned: Vec<(i64, &NewBookmark, i64)> = results
            .bookmarks
            .iter()
            .map(|(seq, b)| (*seq, b, now_ms))
            .collect();
        insert_bookmarks(&mut tx, &planned, now_ms).await?;
        if let Some(mut q) = done {
            q.build().execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(new)
    }

    async fn events_stored_since(
        &self,
        since_ms: i64,
        after_seq: i64,
        limit: i64,
    ) -> Result<Vec<EventRecord>, StoreError> {
        let rows = stored_since::<Postgres>(since_ms, after_seq, limit)
            .build()
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(event_from_row).collect()
    }

    async fn exceptions(&self, query: &ExceptionQuery) -> Result<Vec<ExceptionRecord>, StoreError> {
        let rows: Vec<ExceptionRow> = list::<Postgres>(query)
            .build_query_as()
            .fetch_all(self.pool())
            .await?;
        Ok(rows.into_iter().map(ExceptionRecord::from).collect())
    }

    async fn exception_counts(
        &self,
        scope: &StoreScope,
        since_ms: i64,
    ) -> Result<Vec<(String, i64)>, StoreError> {
        Ok(counts::<Postgres>(scope, since_ms)
            .build_query_as()
            .fetch_all(self.pool())
            .await?)
    }
}
