//! Retention in PostgreSQL: purges in batches, erasure of one person.

use async_trait::async_trait;
use sqlx::{Postgres, QueryBuilder};

use super::PgStore;
use crate::store::retention::*;
use crate::store::*;

/// The tables whose rows held text that a purge removed or an erasure replaced.
const SCRUBBED_TABLES: &str = "events, bookmarks, bookmark_attempts, cases, case_history, dead_letters, sessions, sign_in_challenges, audit_log";

#[async_trait]
impl Retention for PgStore {
    async fn purge_events(&self, before_ms: i64) -> Result<EventsPurged, StoreError> {
        let mut purged = EventsPurged::default();
        loop {
            let mut tx = self.pool().begin().await?;
            // The oldest first, walking the time index; held events are skipped, and are few. The rows of
            // retention_purging are this transaction's own until it empties the table again: another daemon's
            // purge marking the same event waits for this one, then finds it gone.
            let marked = sqlx::query(
                "INSERT INTO retention_purging (event_seq) \
                 SELECT e.seq FROM events e WHERE e.at_ms < $1 \
                   AND NOT EXISTS (SELECT 1 FROM cases c WHERE c.event_seq = e.seq AND c.state = 'open') \
                   AND NOT EXISTS (SELECT 1 FROM bookmarks b WHERE b.event_seq = e.seq AND b.state = 'pending') \
                 ORDER BY e.at_ms LIMIT $2",
            )
            .bind(before_ms)
            .bind(PURGE_BATCH)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if marked == 0 {
                tx.rollback().await?;
                break;
            }
            for statement in [
                "DELETE FROM bookmark_attempts WHERE bookmark_id IN \
                 (SELECT b.id FROM bookmarks b JOIN retention_purging p ON p.event_seq = b.event_seq)",
                "DELETE FROM case_history WHERE event_seq IN (SELECT event_seq FROM retention_purging)",
            ] {
                sqlx::query(statement).execute(&mut *tx).await?;
            }
            let delete = |table: &str, column: &str| {
                format!(
                    "DELETE FROM {table} WHERE {column} IN (SELECT event_seq FROM retention_purging)"
                )
            };
            purged.bookmarks += sqlx::query(&delete("bookmarks", "event_seq"))
                .execute(&mut *tx)
                .await?
                .rows_affected();
            purged.closed_cases += sqlx::query(&delete("cases", "event_seq"))
                .execute(&mut *tx)
                .await?
                .rows_affected();
            // The search rows go with the row: the search text is a column of events.
            purged.events += sqlx::query(&delete("events", "seq"))
                .execute(&mut *tx)
                .await?
                .rows_affected();
            sqlx::query("DELETE FROM retention_purging")
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            if (marked as i64) < PURGE_BATCH {
                break;
            }
        }
        let (open, pending): (i64, i64) = sqlx::query_as(
            "SELECT \
               COUNT(*) FILTER (WHERE EXISTS (SELECT 1 FROM cases c WHERE c.event_seq = e.seq AND c.state = 'open')), \
               COUNT(*) FILTER (WHERE NOT EXISTS (SELECT 1 FROM cases c WHERE c.event_seq = e.seq AND c.state = 'open') \
                 AND EXISTS (SELECT 1 FROM bookmarks b WHERE b.event_seq = e.seq AND b.state = 'pending')) \
             FROM events e WHERE e.at_ms < $1",
        )
        .bind(before_ms)
        .fetch_one(self.pool())
        .await?;
        purged.held_open_case = open.unsigned_abs();
        purged.held_pending = pending.unsigned_abs();
        Ok(purged)
    }

    async fn purge_sessions(&self, seen_before_ms: i64) -> Result<u64, StoreError> {
        let sessions = sqlx::query("DELETE FROM sessions WHERE seen_ms < $1")
            .bind(seen_before_ms)
            .execute(self.pool())
            .await?
            .rows_affected();
        // Sign-ins abandoned at the authenticator code: each lasts minutes, so these are long dead.
        let challenges = sqlx::query("DELETE FROM sign_in_challenges WHERE created_ms < $1")
            .bind(seen_before_ms)
            .execute(self.pool())
            .await?
            .rows_affected();
        Ok(sessions + challenges)
    }

    async fn events_naming(
        &self,
        id: &str,
        store: Option<&str>,
        after_seq: i64,
        limit: i64,
    ) -> Result<Vec<EventRecord>, StoreError> {
        let mut found = naming(id, after_seq, limit, |after| async move {
            let mut q = QueryBuilder::<Postgres>::new(format!(
                "SELECT {EVENT_COLUMNS}, e.raw FROM events e WHERE e.seq > "
            ));
            q.push_bind(after);
            push_naming(&mut q, "strpos", id, store);
            q.push(" ORDER BY e.seq LIMIT ").push_bind(PURGE_BATCH);
            let rows = q.build().fetch_all(self.pool()).await?;
            rows.iter()
                .map(|row| Ok((event_from_row(row)?, sqlx::Row::try_get(row, "raw")?)))
                .collect()
        })
        .await?;
        self.attach_details(&mut found).await?;
        Ok(found)
    }

    async fn erase_identifier(
        &self,
        id: &str,
        store: Option<&str>,
        pseudonym: &str,
    ) -> Result<Erased, StoreError> {
        let mut erased = Erased::default();
        let mut after = 0i64;
        loop {
            let mut tx = self.pool().begin().await?;
            // The candidates' rows locked first, as a case change locks them, and read in a second statement:
            // under READ COMMITTED it sees every case committed before the locks were had, and a case opened
            // by another daemon after them waits for this batch. Either way an event in an open case is held.
            let mut q = QueryBuilder::<Postgres>::new("SELECT e.seq FROM events e WHERE e.seq > ");
            q.push_bind(after);
            push_naming(&mut q, "strpos", id, store);
            q.push(" ORDER BY e.seq LIMIT ")
                .push_bind(PURGE_BATCH)
                .push(" FOR NO KEY UPDATE OF e");
            let seqs: Vec<i64> = q.build_query_scalar().fetch_all(&mut *tx).await?;
            let Some(&last) = seqs.last() else {
                tx.rollback().await?;
                break;
            };
            after = last;
            let full = seqs.len() as i64 == PURGE_BATCH;
            let rows: Vec<NamingEvent> = sqlx::query_as(&format!(
                "SELECT {NAMING_COLUMNS} FROM events e WHERE e.seq = ANY($1) ORDER BY e.seq"
            ))
            .bind(&seqs)
            .fetch_all(&mut *tx)
            .await?;
            let mut changed = Vec::new();
            for event in rows {
                if !event.names(id) {
                    continue;
                }
                if event.held {
                    erased.held += 1;
                    continue;
                }
                changed.push(event.erased(id, pseudonym));
            }
            // One statement for the batch; the search text is regenerated with each row.
            if !changed.is_empty() {
                let mut q = QueryBuilder::<Postgres>::new(
                    "UPDATE events e SET cashier = v.cashier, raw = v.raw, attributes = v.attributes, \
                     lines = v.lines, reason = v.reason, digest = NULL FROM (",
                );
                q.push_values(&changed, |mut row, event| {
                    row.push_bind(event.seq)
                        .push_bind(&event.cashier)
                        .push_bind(&event.raw)
                        .push_bind(&event.attributes)
                        .push_bind(&event.lines)
                        .push_bind(&event.reason);
                });
                q.push(") AS v (seq, cashier, raw, attributes, lines, reason) WHERE e.seq = v.seq");
                erased.events += q.build().execute(&mut *tx).await?.rows_affected();
            }
            let changed_seqs: Vec<i64> = changed.iter().map(|e| e.seq).collect();
            let notes: Vec<String> = sqlx::query_scalar(
                "SELECT text FROM case_history WHERE event_seq = ANY($1) AND text IS NOT NULL",
            )
            .bind(&changed_seqs)
            .fetch_all(&mut *tx)
            .await?;
            erased.case_notes += notes.iter().filter(|t| names(t, id)).count() as u64;
            tx.commit().await?;
            if !full {
                break;
            }
        }
        let mut q = letters_naming::<Postgres>("strpos", id, store);
        let letters: Vec<(i64, String, String, String)> =
            q.build_query_as().fetch_all(self.pool()).await?;
        let mut tx = self.pool().begin().await?;
        for (letter, raw, topic, reason) in letters {
            let Some((raw, reason, kept)) = erased_letter(&raw, &topic, reason, id, pseudonym)
            else {
                continue;
            };
            sqlx::query(
                "UPDATE dead_letters SET raw = $1, reason = $2, kept_bytes = $3 WHERE id = $4",
            )
            .bind(&raw)
            .bind(&reason)
            .bind(kept)
            .bind(letter)
            .execute(&mut *tx)
            .await?;
            erased.dead_letters += 1;
        }
        tx.commit().await?;
        Ok(erased)
    }

    async fn scrub(&self) -> Result<Scrubbed, StoreError> {
        // VACUUM FULL writes each table and its indexes anew holding live rows only: no dead row version of a
        // removed or replaced text is left in a page, nor in the trigram index's pending list. Only this
        // installation's tables, by name: a shared database's others are not ours to rewrite.
        sqlx::query(&format!("VACUUM FULL {SCRUBBED_TABLES}"))
            .execute(self.pool())
            .await?;
        // The old texts also sit in write-ahead log segments until a checkpoint lets PostgreSQL recycle them.
        // CHECKPOINT needs a superuser or pg_checkpoint; without either, the server's own next checkpoint does it.
        let checkpointed = sqlx::query("CHECKPOINT").execute(self.pool()).await.is_ok();
        Ok(Scrubbed {
            wal_emptied: checkpointed,
        })
    }
}
