//! Removing what retention leaves out, and a data subject's requests, in the database.
//!
//! Guarantees:
//! - An event goes with everything tied to it (bookmarks, their attempts, its search rows by trigger, its case
//!   and case history when the case is closed), in one transaction per batch of at most [`PURGE_BATCH`]
//!   events, so ingest never waits long for the single writer.
//! - An event in an open case is never removed (legal hold), nor one with a bookmark still to deliver: its
//!   footage link does not exist yet.
//! - Erasing a person replaces their identifier, never removes the events: the register's record stays
//!   complete, with a pseudonym where the name was. Events in an open case are left as they are and counted.

use async_trait::async_trait;
use serde_json::Value;
use sqlx::{QueryBuilder, Sqlite};

use super::sqlite::{EVENT_COLUMNS, SqliteStore, event_from_row};
use super::{EventRecord, StoreError};

/// Events removed (or rewritten, for an erasure) in one transaction.
pub const PURGE_BATCH: i64 = 1_000;

/// What an events purge removed, and what it kept although it was old enough.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EventsPurged {
    pub events: u64,
    pub bookmarks: u64,
    /// Closed cases removed with their events (with their history).
    pub closed_cases: u64,
    /// Old enough, kept: in an open case.
    pub held_open_case: u64,
    /// Old enough, kept: a bookmark still to deliver.
    pub held_pending: u64,
}

/// What an erasure changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Erased {
    /// Events whose identifier was replaced.
    pub events: u64,
    /// Events naming the identifier left as they are: in an open case.
    pub held: u64,
    /// Dead letters whose text named it.
    pub dead_letters: u64,
    /// Notes in the case history of the events that name it, kept as written: the history is evidence.
    pub case_notes: u64,
}

/// What a scrub after an erasure did to the file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Scrubbed {
    /// The write-ahead log was emptied into the file and cut to nothing; false when a reader (a running
    /// daemon's) held it, and it empties at the next checkpoint instead.
    pub wal_emptied: bool,
}

#[async_trait]
pub trait Retention: Send + Sync {
    /// Removes the events whose moment is before `before_ms`, with what is tied to them, in batches of
    /// [`PURGE_BATCH`], leaving those held (see the module documentation).
    async fn purge_events(&self, before_ms: i64) -> Result<EventsPurged, StoreError>;
    /// Removes the sign-in sessions last used before `seen_before_ms`, and sign-ins left at the authenticator
    /// code since before then; returns how many.
    async fn purge_sessions(&self, seen_before_ms: i64) -> Result<u64, StoreError>;
    /// Up to `limit` events (with bookmarks and cases) that name `id` as their cashier or anywhere in their
    /// payload as a word, of `store` or any, with a sequence number above `after_seq`, in order.
    async fn events_naming(
        &self,
        id: &str,
        store: Option<&str>,
        after_seq: i64,
        limit: i64,
    ) -> Result<Vec<EventRecord>, StoreError>;
    /// Replaces `id` by `pseudonym` in every event that names it (cashier, payload, attributes, lines,
    /// reason), of `store` or any, except those in an open case, and in the dead letters' text; the search
    /// indexes take the new text by trigger and indexer. Forgets the events' content digests, which a guessed
    /// id could be checked against.
    async fn erase_identifier(
        &self,
        id: &str,
        store: Option<&str>,
        pseudonym: &str,
    ) -> Result<Erased, StoreError>;
    /// Leaves no copy of removed or replaced text in the files: merges the search indexes (dropping the
    /// entries deleted from them), rewrites the database without free pages, and empties the write-ahead log.
    async fn scrub(&self) -> Result<Scrubbed, StoreError>;
}

/// Whether `text` holds `id` as a word: not inside a longer identifier (letters, digits, `-`, `_`, `.` on
/// either side), so erasing `c11` leaves `c117` alone.
pub fn names(text: &str, id: &str) -> bool {
    word_matches(text, id).next().is_some()
}

/// `text` with every word `id` replaced by `with`, or `None` when it holds none.
pub fn replace_word(text: &str, id: &str, with: &str) -> Option<String> {
    let found: Vec<usize> = word_matches(text, id).collect();
    if found.is_empty() {
        return None;
    }
    let mut out = String::with_capacity(text.len());
    let mut from = 0;
    for at in found {
        out.push_str(&text[from..at]);
        out.push_str(with);
        from = at + id.len();
    }
    out.push_str(&text[from..]);
    Some(out)
}

fn word_matches<'t>(text: &'t str, id: &'t str) -> impl Iterator<Item = usize> + 't {
    let part = |c: char| c.is_alphanumeric() || matches!(c, '-' | '_' | '.');
    // A trailing full stop ends a sentence, not the id: "approved by c117." names c117.
    let starts_word = move |at: usize| !text[..at].chars().next_back().is_some_and(part);
    let ends_word = move |end: usize| {
        let mut rest = text[end..].chars();
        match rest.next() {
            None => true,
            Some('.') => !rest.next().is_some_and(part),
            Some(c) => !part(c),
        }
    };
    text.match_indices(id)
        .map(|(at, _)| at)
        .filter(move |&at| !id.is_empty() && starts_word(at) && ends_word(at + id.len()))
}

/// Replaces `id` in every string of a JSON value: a whole string equal to it, or a word of a longer one.
/// Returns whether anything changed.
pub fn replace_in_json(value: &mut Value, id: &str, with: &str) -> bool {
    match value {
        Value::String(s) => match replace_word(s, id, with) {
            Some(new) => {
                *s = new;
                true
            }
            None => false,
        },
        // Every string is visited: `any` would stop at the first one changed.
        Value::Array(items) => {
            let mut changed = false;
            for v in items {
                changed |= replace_in_json(v, id, with);
            }
            changed
        }
        Value::Object(map) => {
            let mut changed = false;
            for v in map.values_mut() {
                changed |= replace_in_json(v, id, with);
            }
            changed
        }
        _ => false,
    }
}

/// The JSON text `text` with `id` replaced in its strings, or as a word of the text when it is not JSON
/// (a payload cut short).
fn replace_in_json_text(text: &str, id: &str, with: &str) -> Option<String> {
    match serde_json::from_str::<Value>(text) {
        Ok(mut value) => replace_in_json(&mut value, id, with).then(|| value.to_string()),
        Err(_) => replace_word(text, id, with),
    }
}

/// The candidates' condition: `id` as the cashier, or somewhere in the payload (a word of it is checked in
/// Rust, since SQL has no such test), of `store` if given.
fn push_naming(q: &mut QueryBuilder<Sqlite>, id: &str, store: Option<&str>) {
    q.push(" AND (e.cashier = ")
        .push_bind(id.to_string())
        .push(" OR instr(e.raw, ")
        .push_bind(id.to_string())
        .push(") > 0)");
    if let Some(store) = store {
        q.push(" AND e.store = ").push_bind(store.to_string());
    }
}

fn event_names(e: &EventRecord, raw: &str, id: &str) -> bool {
    e.cashier.as_deref() == Some(id) || names(raw, id)
}

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
        let mut found = Vec::new();
        let mut after = after_seq;
        // Candidates hold the text somewhere; only those naming it as a word are the person's.
        while (found.len() as i64) < limit {
            let mut q = QueryBuilder::<Sqlite>::new(format!(
                "SELECT {EVENT_COLUMNS}, e.raw FROM events e WHERE e.seq > "
            ));
            q.push_bind(after);
            push_naming(&mut q, id, store);
            q.push(" ORDER BY e.seq LIMIT ").push_bind(PURGE_BATCH);
            let rows = q.build().fetch_all(self.reader()).await?;
            let Some(last) = rows.last() else { break };
            after = sqlx::Row::try_get(last, "seq")?;
            for row in &rows {
                let raw: String = sqlx::Row::try_get(row, "raw")?;
                let event = event_from_row(row)?;
                if event_names(&event, &raw, id) && (found.len() as i64) < limit {
                    found.push(event);
                }
            }
            if (rows.len() as i64) < PURGE_BATCH {
                break;
            }
        }
        self.attach_details(&mut found).await?;
        Ok(found)
    }

    async fn erase_identifier(
        &self,
        id: &str,
        store: Option<&str>,
        pseudonym: &str,
    ) -> Result<Erased, StoreError> {
        type Row = (
            i64,
            Option<String>,
            String,
            String,
            String,
            Option<String>,
            bool,
        );
        let mut erased = Erased::default();
        let mut after = 0i64;
        loop {
            let mut tx = self.writer().begin().await?;
            let mut q = QueryBuilder::<Sqlite>::new(
                "SELECT e.seq, e.cashier, e.raw, e.attributes, e.lines, e.reason, \
                 EXISTS (SELECT 1 FROM cases c WHERE c.event_seq = e.seq AND c.state = 'open') \
                 FROM events e WHERE e.seq > ",
            );
            q.push_bind(after);
            push_naming(&mut q, id, store);
            q.push(" ORDER BY e.seq LIMIT ").push_bind(PURGE_BATCH);
            let rows: Vec<Row> = q.build_query_as().fetch_all(&mut *tx).await?;
            let Some(last) = rows.last() else {
                tx.rollback().await?;
                break;
            };
            after = last.0;
            let full = rows.len() as i64 == PURGE_BATCH;
            for (seq, cashier, raw, attributes, lines, reason, held) in rows {
                let own = cashier.as_deref() == Some(id);
                if !own && !names(&raw, id) {
                    continue;
                }
                if held {
                    erased.held += 1;
                    continue;
                }
                let cashier = if own {
                    Some(pseudonym.to_string())
                } else {
                    cashier.map(|c| replace_word(&c, id, pseudonym).unwrap_or(c))
                };
                let raw = replace_in_json_text(&raw, id, pseudonym).unwrap_or(raw);
                let attributes =
                    replace_in_json_text(&attributes, id, pseudonym).unwrap_or(attributes);
                let lines = replace_in_json_text(&lines, id, pseudonym).unwrap_or(lines);
                let reason = reason.map(|r| replace_word(&r, id, pseudonym).unwrap_or(r));
                // The update trigger takes the event out of both search indexes until the indexer reads it
                // again; meanwhile a search reads its new text from the row.
                sqlx::query(
                    "UPDATE events SET cashier = ?, raw = ?, attributes = ?, lines = ?, reason = ?, \
                     digest = NULL WHERE seq = ?",
                )
                .bind(cashier)
                .bind(raw)
                .bind(attributes)
                .bind(lines)
                .bind(reason)
                .bind(seq)
                .execute(&mut *tx)
                .await?;
                erased.events += 1;
                let notes: Vec<String> = sqlx::query_scalar(
                    "SELECT text FROM case_history WHERE event_seq = ? AND text IS NOT NULL",
                )
                .bind(seq)
                .fetch_all(&mut *tx)
                .await?;
                erased.case_notes += notes.iter().filter(|t| names(t, id)).count() as u64;
            }
            tx.commit().await?;
            if !full {
                break;
            }
        }
        // Dead letters belong to no event; a store's are those that came on its topics.
        let mut q = QueryBuilder::<Sqlite>::new(
            "SELECT id, raw, topic, reason FROM dead_letters WHERE instr(raw, ",
        );
        q.push_bind(id.to_string()).push(") > 0");
        if let Some(store) = store {
            q.push(" AND instr(topic, ")
                .push_bind(format!("/{store}/"))
                .push(") > 0");
        }
        let letters: Vec<(i64, String, String, String)> =
            q.build_query_as().fetch_all(self.writer()).await?;
        let mut tx = self.writer().begin().await?;
        for (letter, raw, topic, reason) in letters {
            let Some(raw) = replace_word(&raw, id, pseudonym) else {
                continue;
            };
            let reason = replace_word(&reason, id, pseudonym).unwrap_or(reason);
            sqlx::query("UPDATE dead_letters SET raw = ?, reason = ?, kept_bytes = ? WHERE id = ?")
                .bind(&raw)
                .bind(&reason)
                .bind((raw.len() + topic.len() + reason.len()) as i64)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_identifier_is_replaced_as_a_word_and_never_inside_a_longer_one() {
        assert_eq!(
            replace_word("void approved by c117.", "c117", "erased-1"),
            Some("void approved by erased-1.".into())
        );
        assert_eq!(
            replace_word("c1170 and c117-2 and xc117", "c117", "e"),
            None
        );
        assert_eq!(replace_word("c117", "c117", "e"), Some("e".into()));
        assert_eq!(replace_word("c117,c117", "c117", "e"), Some("e,e".into()));
        assert!(!names("c117.5", "c117"));
        let mut v =
            serde_json::json!({"cashier": "c117", "attributes": {"supervisor": "c117"}, "n": 5});
        assert!(replace_in_json(&mut v, "c117", "e"));
        assert_eq!(v["attributes"]["supervisor"], "e");
        assert_eq!(v["cashier"], "e");
    }
}
