//! Exceptions and the rules' backlog in SQLite.

use async_trait::async_trait;
use sqlx::Sqlite;

use super::{SqliteStore, insert_bookmarks};
use crate::store::exceptions::*;
use crate::store::*;

#[async_trait]
impl Exceptions for SqliteStore {
    async fn rule_backlog(
        &self,
        received_by_ms: i64,
        limit: i64,
    ) -> Result<Vec<EventRecord>, StoreError> {
        let rows = backlog::<Sqlite>(received_by_ms, limit)
            .build()
            .fetch_all(self.reader())
            .await?;
        rows.iter().map(event_from_row).collect()
    }

    async fn record_rule_results(
        &self,
        results: &RuleResults,
        now_ms: i64,
    ) -> Result<u64, StoreError> {
        let mut tx = self.writer().begin().await?;
        let [found, done] = result_statements::<Sqlite>(results, now_ms);
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
        let rows = stored_since::<Sqlite>(since_ms, after_seq, limit)
            .build()
            .fetch_all(self.reader())
            .await?;
        rows.iter().map(event_from_row).collect()
    }

    async fn exceptions(&self, query: &ExceptionQuery) -> Result<Vec<ExceptionRecord>, StoreError> {
        let rows: Vec<ExceptionRow> = list::<Sqlite>(query)
            .build_query_as()
            .fetch_all(self.reader())
            .await?;
        Ok(rows.into_iter().map(ExceptionRecord::from).collect())
    }

    async fn exception_counts(
        &self,
        scope: &StoreScope,
        since_ms: i64,
    ) -> Result<Vec<(String, i64)>, StoreError> {
        Ok(counts::<Sqlite>(scope, since_ms)
            .build_query_as()
            .fetch_all(self.reader())
            .await?)
    }
}
