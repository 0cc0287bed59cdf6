//! Cases and their history in SQLite.

use async_trait::async_trait;
use sqlx::{QueryBuilder, Sqlite, SqliteConnection};

use super::{SqliteStore, push_scope};
use crate::store::cases::*;
use crate::store::*;

async fn summary(conn: &mut SqliteConnection, seq: i64) -> Result<Option<CaseSummary>, StoreError> {
    let row: Option<CaseRow> = sqlx::query_as(&format!("{CASE_COLUMNS} WHERE event_seq = ?"))
        .bind(seq)
        .fetch_optional(&mut *conn)
        .await?;
    row.map(|r| r.summary().map(|(_, s)| s)).transpose()
}

async fn record(conn: &mut SqliteConnection, seq: i64) -> Result<Option<CaseRecord>, StoreError> {
    let Some(summary) = summary(conn, seq).await? else {
        return Ok(None);
    };
    let history = sqlx::query_as(
        "SELECT at_ms, actor, action, outcome, text FROM case_history WHERE event_seq = ? ORDER BY id",
    )
    .bind(seq)
    .fetch_all(&mut *conn)
    .await?;
    Ok(Some(CaseRecord { summary, history }))
}

async fn in_scope(
    conn: &mut SqliteConnection,
    seq: i64,
    scope: &StoreScope,
) -> Result<bool, StoreError> {
    let mut q = QueryBuilder::<Sqlite>::new("SELECT 1 FROM events e WHERE e.seq = ");
    q.push_bind(seq);
    push_scope(&mut q, "e.store", scope);
    Ok(q.build().fetch_optional(&mut *conn).await?.is_some())
}

impl SqliteStore {
    /// The cases of these events, for the list's badges.
    pub(super) async fn case_summaries(
        &self,
        seqs: &[i64],
    ) -> Result<Vec<(i64, CaseSummary)>, StoreError> {
        if seqs.is_empty() {
            return Ok(Vec::new());
        }
        let mut q = QueryBuilder::<Sqlite>::new(format!("{CASE_COLUMNS} WHERE event_seq IN ("));
        let mut list = q.separated(", ");
        for seq in seqs {
            list.push_bind(*seq);
        }
        q.push(")");
        let rows: Vec<CaseRow> = q.build_query_as().fetch_all(self.reader()).await?;
        rows.into_iter().map(CaseRow::summary).collect()
    }
}

#[async_trait]
impl Cases for SqliteStore {
    async fn case(&self, seq: i64, scope: &StoreScope) -> Result<Option<CaseRecord>, StoreError> {
        let mut conn = self.reader().acquire().await?;
        if !in_scope(&mut conn, seq, scope).await? {
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
        let mut tx = self.writer().begin().await?;
        if !in_scope(&mut tx, seq, scope).await? {
            return Err(CaseError::NoEvent(seq));
        }
        let current = summary(&mut tx, seq).await?.map(|s| s.state);
        let state = next_state(current, change)?;
        if current.is_none() {
            sqlx::query(
                "INSERT INTO cases (event_seq, state, opened_ms, opened_by, changed_ms) VALUES (?, ?, ?, ?, ?)",
            )
            .bind(seq)
            .bind(state.as_str())
            .bind(at_ms)
            .bind(actor)
            .bind(at_ms)
            .execute(&mut *tx)
            .await?;
        } else {
            sqlx::query("UPDATE cases SET state = ?, changed_ms = ? WHERE event_seq = ?")
                .bind(state.as_str())
                .bind(at_ms)
                .bind(seq)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query(
            "INSERT INTO case_history (event_seq, at_ms, actor, action, outcome, text) VALUES (?, ?, ?, ?, ?, ?)",
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
