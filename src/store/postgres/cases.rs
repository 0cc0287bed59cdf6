//! Cases and their history in PostgreSQL.

use async_trait::async_trait;
use sqlx::{PgConnection, Postgres, QueryBuilder};

use super::{PgStore, push_scope};
use crate::store::cases::*;
use crate::store::*;

async fn summary(conn: &mut PgConnection, seq: i64) -> Result<Option<CaseSummary>, StoreError> {
    let row: Option<CaseRow> = sqlx::query_as(&format!("{CASE_COLUMNS} WHERE event_seq = $1"))
        .bind(seq)
        .fetch_optional(&mut *conn)
        .await?;
    row.map(|r| r.summary().map(|(_, s)| s)).transpose()
}

async fn record(conn: &mut PgConnection, seq: i64) -> Result<Option<CaseRecord>, StoreError> {
    let Some(summary) = summary(conn, seq).await? else {
        return Ok(None);
    };
    let history = sqlx::query_as(
        "SELECT at_ms, actor, action, outcome, text FROM case_history WHERE event_seq = $1 ORDER BY id",
    )
    .bind(seq)
    .fetch_all(&mut *conn)
    .await?;
    Ok(Some(CaseRecord { summary, history }))
}

/// Whether event `seq` is in `scope`; `lock` is a locking clause for its row, or "".
async fn in_scope(
    conn: &mut PgConnection,
    seq: i64,
    scope: &StoreScope,
    lock: &str,
) -> Result<bool, StoreError> {
    let mut q = QueryBuilder::<Postgres>::new("SELECT 1 FROM events e WHERE e.seq = ");
    q.push_bind(seq);
    push_scope(&mut q, "e.store", scope);
    q.push(lock);
    Ok(q.build().fetch_optional(&mut *conn).await?.is_some())
}

impl PgStore {
    /// The cases of these events, for the list's badges.
    pub(super) async fn case_summaries(
        &self,
        seqs: &[i64],
    ) -> Result<Vec<(i64, CaseSummary)>, StoreError> {
        if seqs.is_empty() {
            return Ok(Vec::new());
        }
        let rows: Vec<CaseRow> =
            sqlx::query_as(&format!("{CASE_COLUMNS} WHERE event_seq = ANY($1)"))
                .bind(seqs)
                .fetch_all(self.pool())
                .await?;
        rows.into_iter().map(CaseRow::summary).collect()
    }
}

#[async_trait]
impl Cases for PgStore {
    async fn case(&self, seq: i64, scope: &StoreScope) -> Result<Option<CaseRecord>, StoreError> {
        let mut conn = self.pool().acquire().await?;
        if !in_scope(&mut conn, seq, scope, "").await? {
            return Ok(None);
        }
        record(&mut conn, seq).await
    }

    async fn change_case(
        &self,
        seq: i64,
        scope: &StoreScope,
        actor: &str,
        at_ms: i64,
        change: &CaseChange,
    ) -> Result<CaseRecord, CaseError> {
        let mut tx = self.pool().begin().await?;
        // The event's row locked until the change commits: a second change of its case (a second tab, another
        // daemon) waits, then reads the state this one left, as SQLite's single writer would have it. NO KEY:
        // ingest's and the case's foreign-key checks on the event are not held up.
        if !in_scope(&mut tx, seq, scope, " FOR NO KEY UPDATE OF e").await? {
            return Err(CaseError::NoEvent(seq));
        }
        let current = summary(&mut tx, seq).await?.map(|s| s.state);
        let state = next_state(current, change)?;
        if current.is_none() {
            sqlx::query(
                "INSERT INTO cases (event_seq, state, opened_ms, opened_by, changed_ms) \
                 VALUES ($1, $2, $3, $4, $3)",
            )
            .bind(seq)
            .bind(state.as_str())
            .bind(at_ms)
            .bind(actor)
            .execute(&mut *tx)
            .await?;
        } else {
            sqlx::query("UPDATE cases SET state = $1, changed_ms = $2 WHERE event_seq = $3")
                .bind(state.as_str())
                .bind(at_ms)
                .bind(seq)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query(
            "INSERT INTO case_history (event_seq, at_ms, actor, action, outcome, text) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(seq)
        .bind(at_ms)
        .bind(actor)
        .bind(change.action())
        .bind(change.outcome())
        .bind(change.recorded_text())
        .execute(&mut *tx)
        .await?;
        let case = record(&mut tx, seq)
            .await?
            .ok_or_else(|| StoreError::Invalid(format!("case of event {seq} vanished")))?;
        tx.commit().await?;
        Ok(case)
    }
}
