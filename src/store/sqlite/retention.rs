//! Retention in SQLite: purges in batches, erasure of one person.

use async_trait::async_trait;
use sqlx::{QueryBuilder, Sqlite};

use super::SqliteStore;
use crate::store::retention::*;
use crate::store::*;

#[async_trait]
impl Retention for SqliteStore {
    async fn purge_events(&self, before_ms: i64) -> Result<EventsPurged, StoreError> {
        let mut purged = EventsPurged::default();
        loop {
            let mut tx = self.writer().begin().await?;
            // The oldest first, walking the time index; held events are skipped, and are few.
            let marked = sqlx::query(
                "INSERT INTO retention_purging (event_seq) \
                 SELECT e.seq FROM events e WHERE e.at_ms < ? \
                   AND NOT EXISTS (SELECT 1 FROM cases c WHERE c.event_seq = e.seq AND c.state = 'open') \
                   AND NOT EXISTS (SELECT 1 FROM bookmarks b WHERE b.event_seq = e.seq AND b.state = 'pending') \
                 ORDER BY e.at_ms LIMIT ?",
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
            purged.bookmarks += sqlx::query(
                "DELETE FROM bookmarks WHERE event_seq IN (SELECT event_seq FROM retention_purging)",
            )
            .execute(&mut *tx)
            .await?
            .rows_affected();
            purged.closed_cases += sqlx::query(
                "DELETE FROM cases WHERE event_seq IN (SELECT event_seq FROM retention_purging)",
            )
            .execute(&mut *tx)
            .await?
            .rows_affected();
            // The search rows go by trigger (events_search_delete).
            purged.events += sqlx::query(
                "DELETE FROM events WHERE seq IN (SELECT event_seq FROM retention_purging)",
            )
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
               COALESCE(SUM(EXISTS (SELECT 1 FROM cases c WHERE c.event_seq = e.seq AND c.state = 'open')), 0), \
               COALESCE(SUM(NOT EXISTS (SELECT 1 FROM cases c WHERE c.event_seq = e.seq AND c.state = 'open') \
                 AND EXISTS (SELECT 1 FROM bookmarks b WHERE b.event_seq = e.seq AND b.state = 'pending')), 0) \
             FROM events e WHERE e.at_ms < ?",
        )
        .bind(before_ms)
        .fetch_one(self.writer())
        .await?;
        purged.held_open_case = open.unsigned_abs();
        purged.held_pending = pending.unsigned_abs();
        Ok(purged)
    }

    async fn purge_sessions(&self, seen_before_ms: i64) -> Result<u64, StoreError> {
        let sessions = sqlx::query("DELETE FROM sessions WHERE seen_ms < ?")
            .bind(seen_before_ms)
            .execute(self.writer())
            .await?
            .rows_affected();
        // Sign-ins abandoned at the authenticator code: each lasts minutes, so these are long dead.
        let challenges = sqlx::query("DELETE FROM sign_in_challenges WHERE created_ms < ?")
            .bind(seen_before_ms)
            .execute(self.writer())
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
            let mut q = QueryBuilder::<Sqlite>::new(format!(
                "SELECT {EVENT_COLUMNS}, e.raw FROM events e WHERE e.seq > "
            ));
            q.push_bind(after);
            push_naming(&mut q, "instr", id, store);
            q.push(" ORDER BY e.seq LIMIT ").push_bind(PURGE_BATCH);
            let rows = q.build().fetch_all(self.reader()).await?;
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
            let mut tx = self.writer().begin().await?;
            let mut q = QueryBuilder::<Sqlite>::new(format!(
                "SELECT {NAMING_COLUMNS} FROM events e WHERE e.seq > "
            ));
            q.push_bind(after);
            push_naming(&mut q, "instr", id, store);
            q.push(" ORDER BY e.seq LIMIT ").push_bind(PURGE_BATCH);
            let rows: Vec<NamingEvent> = q.build_query_as().fetch_all(&mut *tx).await?;
            let Some(last) = rows.last() else {
                tx.rollback().await?;
                break;
            };
            after = last.seq;
            let full = rows.len() as i64 == PURGE_BATCH;
            for event in rows {
                if !event.names(id) {
                    continue;
                }
                if event.held {
                    erased.held += 1;
                    continue;
                }
                let event = event.erased(id, pseudonym);
                // The update trigger takes the event out of both search indexes until the indexer reads it
                // again; meanwhile a search reads its new text from the row.
                sqlx::query(
                    "UPDATE events SET cashier = ?, raw = ?, attributes = ?, lines = ?, reason = ?, \
                     digest = NULL WHERE seq = ?",
                )
                .bind(&event.cashier)
                .bind(&event.raw)
                .bind(&event.attributes)
                .bind(&event.lines)
                .bind(&event.reason)
                .bind(event.seq)
                .execute(&mut *tx)
                .await?;
                erased.events += 1;
                let notes: Vec<String> = sqlx::query_scalar(
                    "SELECT text FROM case_history WHERE event_seq = ? AND text IS NOT NULL",
                )
                .bind(event.seq)
                .fetch_all(&mut *tx)
                .await?;
                erased.case_notes += notes.iter().filter(|t| names(t, id)).count() as u64;
            }
            tx.commit().await?;
            if !full {
                break;
            }
        }
        let mut q = letters_naming::<Sqlite>("instr", id, store);
        let letters: Vec<(i64, String, String, String)> =
            q.build_query_as().fetch_all(self.writer()).await?;
        let mut tx = self.writer().begin().await?;
        for (letter, raw, topic, reason) in letters {
            let Some((raw, reason, kept)) = erased_letter(&raw, &topic, reason, id, pseudonym)
            else {
                continue;
            };
            sqlx::query("UPDATE dead_letters SET raw = ?, reason = ?, kept_bytes = ? WHERE id = ?")
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
        // Merging each full-text index into one segment drops what was deleted from it; contentless tables
        // otherwise keep a deleted row's tokens until some later merge.
        for index in ["events_search", "events_grams"] {
            sqlx::query(&format!(
                "INSERT INTO {index} ({index}) VALUES ('optimize')"
            ))
            .execute(self.writer())
            .await?;
        }
        // VACUUM writes a new copy of the database holding live rows only: no free page or free space in a
        // page keeps an old value. In WAL mode the copy goes through the log, which the checkpoint then
        // writes into the file and cuts to nothing.
        sqlx::query("VACUUM").execute(self.writer()).await?;
        let (busy, _, _): (i64, i64, i64) = sqlx::query_as("PRAGMA wal_checkpoint(TRUNCATE)")
            .fetch_one(self.writer())
            .await?;
        Ok(Scrubbed {
            wal_emptied: busy == 0,
        })
    }
}
