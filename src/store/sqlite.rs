//! The embedded backend: one SQLite file in WAL mode with `synchronous = FULL`, so a committed batch survives
//! a power cut, not only a crash. All writes go through one connection (SQLite has one writer anyway, and a
//! single writer never meets `SQLITE_BUSY`); reads use a small pool of their own so the index never waits on
//! ingest.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{QueryBuilder, Row, Sqlite, SqlitePool};

use super::*;
use crate::event::event_key;

pub struct SqliteStore {
    writer: SqlitePool,
    reader: SqlitePool,
}

const EVENT_COLUMNS: &str = "e.seq, e.event_key, e.id AS event_id, e.type, e.at, e.at_ms, e.received_ms, e.store, e.register, \
     e.cashier, e.txn, e.amount, e.currency, e.reason, e.lines, e.attributes, e.flagged, e.mapped, e.topic, e.signed, e.reused";
/// Leaves out the rows of camera systems that are busy or cooling down.
fn push_skip(q: &mut QueryBuilder<Sqlite>, skip: &[String]) {
    if skip.is_empty() {
        return;
    }
    q.push(" AND system NOT IN (");
    let mut list = q.separated(", ");
    for system in skip {
        list.push_bind(system.clone());
    }
    q.push(")");
}

/// Narrows to the events of the stores in `scope`; an empty list matches nothing.
pub(super) fn push_scope(q: &mut QueryBuilder<Sqlite>, column: &str, scope: &StoreScope) {
    let StoreScope::Only(stores) = scope else {
        return;
    };
    if stores.is_empty() {
        q.push(" AND 0");
        return;
    }
    // `+`: the scope narrows, it never leads. Walking the time index newest first and skipping other
    // stores' rows fills a page of a common word at once; letting the store index lead would read every event
    // of the scope's stores first (0.6 s for `返品` in two stores of a million events, 2.6 ms this way).
    q.push(format!(" AND +{column} IN ("));
    let mut list = q.separated(", ");
    for store in stores {
        list.push_bind(store.clone());
    }
    q.push(")");
}

/// The shortest word the trigram index can find: a shorter one yields no trigram at all.
const TRIGRAM_CHARS: usize = 3;

/// Narrows to events holding every word of `search` (see [`EventQuery::search`]).
///
/// Words of three characters or more are looked up in the trigram index, all in one MATCH, each as a quoted
/// FTS5 string (inner quotes doubled), so `*`, `NEAR(`, `OR`, `-` and quotes a person types are text, never
/// query syntax. Shorter words, common in Japanese ('返品', '取消'), have no trigram: each is a LIKE on the
/// same columns of the events table. The list walks events newest first, so a short word that occurs often
/// fills a page after a few rows; one that matches nothing reads every event the other filters leave.
fn push_search(q: &mut QueryBuilder<Sqlite>, search: &str) {
    let (indexed, short): (Vec<&str>, Vec<&str>) =
        search_words(search).partition(|w| w.chars().count() >= TRIGRAM_CHARS);
    if !indexed.is_empty() {
        let phrases: Vec<String> = indexed
            .iter()
            .map(|w| format!("\"{}\"", w.replace('"', "\"\"")))
            .collect();
        q.push(" AND e.seq IN (SELECT rowid FROM events_search WHERE events_search MATCH ")
            .push_bind(phrases.join(" "))
            .push(")");
    }
    for word in short {
        let pattern = like_pattern(word);
        // Lines are stored as a JSON array. A LIKE on that text, with the word escaped as JSON escapes it, is a
        // cheap test every matching event passes; json_each then checks the decoded lines, so that `,` or `"`
        // does not match the array's own punctuation.
        let as_json = serde_json::Value::from(word).to_string();
        let in_json = like_pattern(&as_json[1..as_json.len() - 1]);
        q.push(" AND (e.reason LIKE ").push_bind(pattern.clone());
        q.push(ESCAPE)
            .push(" OR e.txn LIKE ")
            .push_bind(pattern.clone());
        q.push(ESCAPE)
            .push(" OR e.cashier LIKE ")
            .push_bind(pattern.clone());
        q.push(ESCAPE).push(" OR (e.lines LIKE ").push_bind(in_json);
        q.push(ESCAPE)
            .push(" AND EXISTS (SELECT 1 FROM json_each(e.lines) WHERE value LIKE ");
        q.push_bind(pattern).push(ESCAPE).push(")))");
    }
}

/// The escape character of [`like_pattern`].
const ESCAPE: &str = " ESCAPE '\\'";

/// A LIKE pattern finding `word` anywhere: its own `%`, `_` and `\` are escaped to mean themselves.
fn like_pattern(word: &str) -> String {
    let mut pattern = String::with_capacity(word.len() + 2);
    pattern.push('%');
    for c in word.chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

/// Rows sleeping out a backoff after a failure, waiting past the bound that follows.
const WAITING_AFTER_FAILURE: &str = " WHERE state = 'pending' AND claimed_until_ms IS NULL AND last_error IS NOT NULL AND next_attempt_ms > ";

/// Each index connection's SQLite page cache, in KiB. SQLite's default (2,000 KiB) on every pooled connection
/// kept the pages of each page read (the 24-hour timeline, the cashier chart) in the daemon's memory long after:
/// about 11 MB more after 150 page renders (`cargo bench --bench memory`). The operating system caches the file
/// anyway, so a page not held here costs a read from memory, not from disk.
const READER_CACHE_KIB: u32 = 256;

const BOOKMARK_COLUMNS: &str = "b.id, b.system, b.device, b.camera, b.moment_ms, b.start_ms, b.duration_ms, b.state, \
     b.attempts, b.next_attempt_ms, b.vendor_id, b.last_error, b.made_ms, b.made_as";

impl SqliteStore {
    pub(super) fn writer(&self) -> &SqlitePool {
        &self.writer
    }

    pub(super) fn reader(&self) -> &SqlitePool {
        &self.reader
    }

    pub async fn open(url: &str) -> Result<SqliteStore, StoreError> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options.clone())
            .await?;
        sqlx::migrate!("migrations/sqlite").run(&writer).await?;
        let reader = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(
                options
                    .read_only(true)
                    .pragma("cache_size", format!("-{READER_CACHE_KIB}")),
            )
            .await?;
        Ok(SqliteStore { writer, reader })
    }

    /// Adds each event's bookmarks and case.
    async fn attach_details(&self, events: &mut [EventRecord]) -> Result<(), StoreError> {
        if events.is_empty() {
            return Ok(());
        }
        let seqs: Vec<i64> = events.iter().map(|e| e.seq).collect();
        for (seq, case) in self.case_summaries(&seqs).await? {
            if let Some(e) = events.iter_mut().find(|e| e.seq == seq) {
                e.case = Some(case);
            }
        }
        let mut q = QueryBuilder::<Sqlite>::new(format!(
            "SELECT b.event_seq, {BOOKMARK_COLUMNS} FROM bookmarks b WHERE b.event_seq IN ("
        ));
        let mut list = q.separated(", ");
        for e in events.iter() {
            list.push_bind(e.seq);
        }
        q.push(") ORDER BY b.id");
        let rows = q.build().fetch_all(&self.reader).await?;
        for row in rows {
            let seq: i64 = row.try_get("event_seq")?;
            let bookmark = bookmark_from_row(&row)?;
            if let Some(e) = events.iter_mut().find(|e| e.seq == seq) {
                e.bookmarks.push(bookmark);
            }
        }
        Ok(())
    }
}

fn bookmark_from_row(row: &SqliteRow) -> Result<BookmarkRecord, StoreError> {
    let state: String = row.try_get("state")?;
    let state = BookmarkState::parse(&state)
        .ok_or_else(|| StoreError::Invalid(format!("bookmark has unknown state \"{state}\"")))?;
    Ok(BookmarkRecord {
        id: row.try_get("id")?,
        system: row.try_get("system")?,
        device: row.try_get("device")?,
        camera: row.try_get("camera")?,
        moment_ms: row.try_get("moment_ms")?,
        start_ms: row.try_get("start_ms")?,
        duration_ms: row.try_get("duration_ms")?,
        next_attempt_ms: if state == BookmarkState::Pending {
            row.try_get("next_attempt_ms")?
        } else {
            None
        },
        state,
        attempts: row.try_get("attempts")?,
        vendor_id: row.try_get("vendor_id")?,
        last_error: row.try_get("last_error")?,
        made_ms: row.try_get("made_ms")?,
        made_as: row.try_get("made_as")?,
    })
}

fn event_from_row(row: &SqliteRow) -> Result<EventRecord, StoreError> {
    let lines: String = row.try_get("lines")?;
    let attributes: String = row.try_get("attributes")?;
    Ok(EventRecord {
        seq: row.try_get("seq")?,
        key: row.try_get("event_key")?,
        id: row.try_get("event_id")?,
        kind: row.try_get("type")?,
        at: row.try_get("at")?,
        at_ms: row.try_get("at_ms")?,
        received_ms: row.try_get("received_ms")?,
        store: row.try_get("store")?,
        register: row.try_get("register")?,
        cashier: row.try_get("cashier")?,
        transaction: row.try_get("txn")?,
        amount: row.try_get("amount")?,
        currency: row.try_get("currency")?,
        reason: row.try_get("reason")?,
        lines: serde_json::from_str(&lines).unwrap_or_default(),
        attributes: serde_json::from_str(&attributes).unwrap_or_default(),
        flagged: row.try_get("flagged")?,
        mapped: row.try_get("mapped")?,
        topic: row.try_get("topic")?,
        signed: row.try_get("signed")?,
        reused: row.try_get("reused")?,
        bookmarks: Vec::new(),
        case: None,
    })
}

/// `size` and `sha256` are of the payload as it arrived; `raw` is what is kept of it (masked, maybe cut).
async fn insert_dead_letter(
    tx: &mut sqlx::Transaction<'_, Sqlite>,
    received_ms: i64,
    topic: &str,
    reason: &str,
    raw: &str,
    size: u64,
    sha256: &str,
) -> Result<(), StoreError> {
    let kept_bytes = raw.len() + topic.len() + reason.len();
    sqlx::query(
        "INSERT INTO dead_letters (received_ms, topic, reason, raw, size, sha256, kept_bytes) \
         VALUES (?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(received_ms)
    .bind(topic)
    .bind(reason)
    .bind(raw)
    .bind(i64::try_from(size).unwrap_or(i64::MAX))
    .bind(sha256)
    .bind(i64::try_from(kept_bytes).unwrap_or(i64::MAX))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// An event whose (store, id) is stored already: a redelivery when it says the same, else an id used again
/// for something else, which is kept as a dead letter and marked on the original, never dropped in silence.
async fn reused_or_duplicate(
    tx: &mut sqlx::Transaction<'_, Sqlite>,
    event: &Event,
    digest: &str,
    topic: &str,
    received_ms: i64,
    raw: &str,
) -> Result<IntakeOutcome, StoreError> {
    let (seq, stored): (i64, Option<String>) =
        sqlx::query_as("SELECT seq, digest FROM events WHERE store = ? AND id = ?")
            .bind(&event.store)
            .bind(&event.id)
            .fetch_one(&mut **tx)
            .await?;
    // Events stored before digests existed cannot be compared: a copy is the likelier reading.
    if stored.is_none_or(|d| d == digest) {
        return Ok(IntakeOutcome::Duplicate);
    }
    sqlx::query("UPDATE events SET reused = reused + 1 WHERE seq = ?")
        .bind(seq)
        .execute(&mut **tx)
        .await?;
    let reason = format!(
        "id reused with different content: event {seq} ({}/{}, id {}) was stored first and is kept; this message is not",
        event.store, event.register, event.id
    );
    // The event's payload was not kept byte for byte: size and digest are of the text kept, which is the
    // payload itself unless masking changed it.
    let size = raw.len() as u64;
    insert_dead_letter(
        tx,
        received_ms,
        topic,
        &reason,
        raw,
        size,
        &sha256_hex(raw.as_bytes()),
    )
    .await?;
    Ok(IntakeOutcome::Reused { seq })
}

#[async_trait]
impl Store for SqliteStore {
    async fn installation_key(&self, name: &str) -> Result<Vec<u8>, StoreError> {
        let fresh: [u8; 32] = rand::random();
        sqlx::query("INSERT INTO installation_keys (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING")
            .bind(name)
            .bind(fresh.as_slice())
            .execute(&self.writer)
            .await?;
        let key: Vec<u8> = sqlx::query_scalar("SELECT value FROM installation_keys WHERE name = ?")
            .bind(name)
            .fetch_one(&self.writer)
            .await?;
        Ok(key)
    }

    async fn ingest(
        &self,
        batch: &[Intake],
        now_ms: i64,
    ) -> Result<Vec<IntakeOutcome>, StoreError> {
        let mut tx = self.writer.begin().await?;
        let mut outcomes = Vec::with_capacity(batch.len());
        for intake in batch {
            match intake {
                Intake::Event {
                    event,
                    raw,
                    digest,
                    signed,
                    topic,
                    received_ms,
                    flagged,
                    mapped,
                    bookmarks,
                } => {
                    let lines = serde_json::to_string(&event.lines).unwrap_or_else(|_| "[]".into());
                    let attributes =
                        serde_json::to_string(&event.attributes).unwrap_or_else(|_| "{}".into());
                    let seq: Option<i64> = sqlx::query_scalar(
                        "INSERT INTO events (store, id, event_key, type, at, at_ms, received_ms, register, cashier, \
                         txn, amount, currency, reason, lines, attributes, raw, topic, flagged, mapped, digest, signed) \
                         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
                         ON CONFLICT (store, id) DO NOTHING RETURNING seq",
                    )
                    .bind(&event.store)
                    .bind(&event.id)
                    .bind(event_key(&event.store, &event.id))
                    .bind(event.kind.as_str())
                    .bind(event.at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
                    .bind(event.at_ms())
                    .bind(received_ms)
                    .bind(&event.register)
                    .bind(&event.cashier)
                    .bind(&event.transaction)
                    .bind(event.amount)
                    .bind(&event.currency)
                    .bind(&event.reason)
                    .bind(lines)
                    .bind(attributes)
                    .bind(raw)
                    .bind(topic)
                    .bind(flagged)
                    .bind(mapped)
                    .bind(digest)
                    .bind(signed)
                    .fetch_optional(&mut *tx)
                    .await?;
                    let Some(seq) = seq else {
                        outcomes.push(
                            reused_or_duplicate(&mut tx, event, digest, topic, *received_ms, raw)
                                .await?,
                        );
                        continue;
                    };
                    for b in bookmarks {
                        sqlx::query(
                            "INSERT INTO bookmarks (event_seq, system, device, camera, moment_ms, start_ms, duration_ms, \
                             next_attempt_ms, created_ms, updated_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
                             ON CONFLICT (event_seq, system, device) DO NOTHING",
                        )
                        .bind(seq)
                        .bind(&b.system)
                        .bind(&b.device)
                        .bind(&b.camera)
                        .bind(b.moment_ms)
                        .bind(b.start_ms)
                        .bind(b.duration_ms)
                        .bind(now_ms)
                        .bind(now_ms)
                        .bind(now_ms)
                        .execute(&mut *tx)
                        .await?;
                    }
                    outcomes.push(IntakeOutcome::Stored {
                        seq,
                        bookmarks: bookmarks.len(),
                    });
                }
                Intake::DeadLetter {
                    topic,
                    received_ms,
                    reason,
                    raw,
                    size,
                    sha256,
                } => {
                    insert_dead_letter(&mut tx, *received_ms, topic, reason, raw, *size, sha256)
                        .await?;
                    outcomes.push(IntakeOutcome::DeadLettered);
                }
            }
        }
        tx.commit().await?;
        Ok(outcomes)
    }

    async fn claim_due(
        &self,
        now_ms: i64,
        lease_ms: i64,
        limit: i64,
        skip: &[String],
    ) -> Result<Vec<Job>, StoreError> {
        let mut tx = self.writer.begin().await?;
        // SET reads the old row: a claim whose predecessor never reported back (in_flight still 1) may have
        // reached the camera system, so it counts as maybe created.
        let mut q = QueryBuilder::<Sqlite>::new("UPDATE bookmarks SET claimed_until_ms = ");
        q.push_bind(now_ms + lease_ms);
        q.push(", maybe_created = (maybe_created OR in_flight), in_flight = 1, attempts = attempts + 1, updated_ms = ");
        q.push_bind(now_ms);
        q.push(" WHERE id IN (SELECT id FROM bookmarks WHERE state = 'pending' AND next_attempt_ms <= ");
        q.push_bind(now_ms);
        q.push(" AND (claimed_until_ms IS NULL OR claimed_until_ms <= ");
        q.push_bind(now_ms);
        q.push(")");
        push_skip(&mut q, skip);
        q.push(" ORDER BY next_attempt_ms, id LIMIT ");
        q.push_bind(limit);
        q.push(") RETURNING id, maybe_created");
        let claimed: Vec<(i64, bool)> = q.build_query_as().fetch_all(&mut *tx).await?;
        let mut jobs = Vec::with_capacity(claimed.len());
        if !claimed.is_empty() {
            let mut q = QueryBuilder::<Sqlite>::new(format!(
                "SELECT {EVENT_COLUMNS}, {BOOKMARK_COLUMNS} FROM bookmarks b JOIN events e ON e.seq = b.event_seq \
                 WHERE b.id IN ("
            ));
            let mut list = q.separated(", ");
            for (id, _) in &claimed {
                list.push_bind(*id);
            }
            q.push(")");
            for row in q.build().fetch_all(&mut *tx).await? {
                let bookmark = bookmark_from_row(&row)?;
                let maybe_created = claimed
                    .iter()
                    .any(|(id, maybe)| *id == bookmark.id && *maybe);
                jobs.push(Job {
                    bookmark,
                    maybe_created,
                    event: event_from_row(&row)?,
                });
            }
        }
        tx.commit().await?;
        jobs.sort_by_key(|j| (j.bookmark.start_ms, j.bookmark.id));
        Ok(jobs)
    }

    async fn finish(&self, results: &[Finished]) -> Result<(), StoreError> {
        let mut tx = self.writer.begin().await?;
        for Finished {
            bookmark_id,
            outcome,
            at_ms: now_ms,
        } in results
        {
            let (label, detail) = match outcome {
                Outcome::Made {
                    vendor_id,
                    detail,
                    made_as,
                } => {
                    sqlx::query(
                        "UPDATE bookmarks SET state = 'made', vendor_id = ?, made_as = ?, made_ms = ?, updated_ms = ?, \
                         in_flight = 0, maybe_created = 0, claimed_until_ms = NULL, last_error = NULL WHERE id = ?",
                    )
                    .bind(vendor_id)
                    .bind(made_as)
                    .bind(now_ms)
                    .bind(now_ms)
                    .bind(bookmark_id)
                    .execute(&mut *tx)
                    .await?;
                    ("made", detail)
                }
                Outcome::Retry {
                    at_ms,
                    error,
                    maybe_created,
                } => {
                    sqlx::query(
                        "UPDATE bookmarks SET next_attempt_ms = ?, last_error = ?, maybe_created = ?, in_flight = 0, \
                         claimed_until_ms = NULL, updated_ms = ? WHERE id = ?",
                    )
                    .bind(at_ms)
                    .bind(error)
                    .bind(maybe_created)
                    .bind(now_ms)
                    .bind(bookmark_id)
                    .execute(&mut *tx)
                    .await?;
                    ("retry", error)
                }
                Outcome::Paced { at_ms, note } => {
                    // The claim counted an attempt and set in_flight; the vendor turned the request away
                    // unread, so neither stands. maybe_created keeps what earlier attempts left.
                    sqlx::query(
                        "UPDATE bookmarks SET next_attempt_ms = ?, last_error = ?, attempts = MAX(attempts - 1, 0), \
                         in_flight = 0, claimed_until_ms = NULL, updated_ms = ? WHERE id = ?",
                    )
                    .bind(at_ms)
                    .bind(note)
                    .bind(now_ms)
                    .bind(bookmark_id)
                    .execute(&mut *tx)
                    .await?;
                    ("paced", note)
                }
                Outcome::Failed { error } => {
                    sqlx::query(
                        "UPDATE bookmarks SET state = 'failed', last_error = ?, in_flight = 0, \
                         claimed_until_ms = NULL, updated_ms = ? WHERE id = ?",
                    )
                    .bind(error)
                    .bind(now_ms)
                    .bind(bookmark_id)
                    .execute(&mut *tx)
                    .await?;
                    ("failed", error)
                }
            };
            sqlx::query("INSERT INTO bookmark_attempts (bookmark_id, at_ms, outcome, detail) VALUES (?, ?, ?, ?)")
                .bind(bookmark_id)
                .bind(now_ms)
                .bind(label)
                .bind(detail)
                .execute(&mut *tx)
                .await?;
        }
        // A bookmark made means its camera system answers again: what waits there after failures goes now,
        // rather than each row sleeping out its own backoff.
        let mut made_ids: Vec<i64> = Vec::new();
        for f in results {
            if matches!(f.outcome, Outcome::Made { .. }) {
                made_ids.push(f.bookmark_id);
            }
        }
        if let Some(now_ms) = results.iter().map(|f| f.at_ms).max()
            && !made_ids.is_empty()
        {
            let mut q = QueryBuilder::<Sqlite>::new("UPDATE bookmarks SET next_attempt_ms = ");
            q.push_bind(now_ms);
            q.push(WAITING_AFTER_FAILURE);
            q.push_bind(now_ms);
            q.push(" AND system IN (SELECT DISTINCT system FROM bookmarks WHERE id IN (");
            let mut list = q.separated(", ");
            for id in &made_ids {
                list.push_bind(*id);
            }
            q.push("))");
            q.build().execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn expedite(&self, systems: &[String], now_ms: i64) -> Result<u64, StoreError> {
        if systems.is_empty() {
            return Ok(0);
        }
        let mut q = QueryBuilder::<Sqlite>::new("UPDATE bookmarks SET next_attempt_ms = ");
        q.push_bind(now_ms);
        q.push(WAITING_AFTER_FAILURE);
        q.push_bind(now_ms);
        q.push(" AND system IN (");
        let mut list = q.separated(", ");
        for system in systems {
            list.push_bind(system);
        }
        q.push(")");
        Ok(q.build().execute(&self.writer).await?.rows_affected())
    }

    async fn next_due_ms(&self, skip: &[String]) -> Result<Option<i64>, StoreError> {
        let mut q = QueryBuilder::<Sqlite>::new(
            "SELECT MIN(MAX(next_attempt_ms, COALESCE(claimed_until_ms, 0))) FROM bookmarks WHERE state = 'pending'",
        );
        push_skip(&mut q, skip);
        Ok(q.build_query_scalar().fetch_one(&self.reader).await?)
    }

    async fn release_orphaned_claims(&self) -> Result<u64, StoreError> {
        // One SQLite file has one daemon, so at start-up every lease is a dead process's. `in_flight` stays set:
        // that attempt may have reached the camera system.
        let done = sqlx::query(
            "UPDATE bookmarks SET claimed_until_ms = NULL WHERE claimed_until_ms IS NOT NULL",
        )
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected())
    }

    async fn retry_failed(&self, system: Option<&str>, now_ms: i64) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "UPDATE bookmarks SET state = 'pending', next_attempt_ms = ?1, updated_ms = ?1 \
             WHERE state = 'failed' AND (?2 IS NULL OR system = ?2)",
        )
        .bind(now_ms)
        .bind(system)
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected())
    }

    async fn events(&self, query: &EventQuery) -> Result<Vec<EventRecord>, StoreError> {
        // The page's sequence numbers first, then their rows: when the search index or a bookmark state hands
        // over thousands of candidates to sort by time, the sort reads two integers of each instead of whole
        // events (four times faster for a common word), and only the page's rows are read in full.
        let mut q = QueryBuilder::<Sqlite>::new(format!(
            "SELECT {EVENT_COLUMNS} FROM events e WHERE e.seq IN (SELECT e.seq FROM events e WHERE 1 = 1"
        ));
        push_scope(&mut q, "e.store", &query.scope);
        if let Some(store) = &query.store {
            q.push(" AND e.store = ").push_bind(store);
        }
        if let Some(register) = &query.register {
            q.push(" AND e.register = ").push_bind(register);
        }
        if let Some(kind) = &query.kind {
            q.push(" AND e.type = ").push_bind(kind);
        }
        if let Some(cashier) = &query.cashier {
            q.push(" AND e.cashier = ").push_bind(cashier);
        }
        if let Some(from) = query.from_ms {
            q.push(" AND e.at_ms >= ").push_bind(from);
        }
        if let Some(to) = query.to_ms {
            q.push(" AND e.at_ms < ").push_bind(to);
        }
        if query.flagged_only {
            q.push(" AND e.flagged = 1");
        }
        if let Some(search) = &query.search {
            push_search(&mut q, search);
        }
        if let Some(min) = query.min_amount {
            q.push(" AND e.amount >= ").push_bind(min);
        }
        if let Some(max) = query.max_amount {
            q.push(" AND e.amount <= ").push_bind(max);
        }
        match query.bookmark_state {
            // Made is what most bookmarks become: walking events newest first fills a page at once.
            Some(BookmarkState::Made) => {
                q.push(" AND EXISTS (SELECT 1 FROM bookmarks b WHERE b.event_seq = e.seq AND b.state = 'made')");
            }
            // Failed and pending are the exceptions an operator looks for, perhaps a handful in a million events:
            // start from the bookmarks in that state (index bookmarks_state_event) rather than from every event.
            Some(state) => {
                q.push(" AND e.seq IN (SELECT b.event_seq FROM bookmarks b WHERE b.state = ")
                    .push_bind(state.as_str())
                    .push(")");
            }
            None => {}
        }
        if let Some(case) = query.case {
            q.push(case.condition());
        }
        if let Some((at_ms, seq)) = query.before {
            // `at_ms <=` is implied by the OR, but only a plain range lets the time indexes start at the cursor
            // instead of skipping every newer row: page 50 costs what page 1 does.
            q.push(" AND e.at_ms <= ").push_bind(at_ms);
            q.push(" AND (e.at_ms < ").push_bind(at_ms);
            q.push(" OR e.seq < ").push_bind(seq).push(")");
        }
        q.push(" ORDER BY e.at_ms DESC, e.seq DESC LIMIT ")
            .push_bind(query.limit.clamp(1, 1000));
        q.push(") ORDER BY e.at_ms DESC, e.seq DESC");
        let rows = q.build().fetch_all(&self.reader).await?;
        let mut events = rows
            .iter()
            .map(event_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        self.attach_details(&mut events).await?;
        Ok(events)
    }

    async fn cashier_counts(
        &self,
        scope: &StoreScope,
        store: &str,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<(String, String, i64)>, StoreError> {
        let mut q = QueryBuilder::<Sqlite>::new(
            "SELECT cashier, type, COUNT(*) FROM events WHERE store = ",
        );
        q.push_bind(store)
            .push(" AND at_ms >= ")
            .push_bind(from_ms)
            .push(" AND at_ms < ")
            .push_bind(to_ms)
            .push(" AND cashier IS NOT NULL");
        push_scope(&mut q, "store", scope);
        q.push(" GROUP BY cashier, type ORDER BY cashier, type");
        Ok(q.build_query_as().fetch_all(&self.reader).await?)
    }

    async fn register_activity(
        &self,
        r: &RegisterActivity<'_>,
    ) -> Result<Vec<EventRecord>, StoreError> {
        let mut q = QueryBuilder::<Sqlite>::new(format!(
            "SELECT {EVENT_COLUMNS} FROM events e WHERE e.store = "
        ));
        q.push_bind(r.store)
            .push(" AND e.register = ")
            .push_bind(r.register)
            .push(" AND e.at_ms >= ")
            .push_bind(r.from_ms)
            .push(" AND e.at_ms < ")
            .push_bind(r.to_ms);
        push_scope(&mut q, "e.store", r.scope);
        if !r.types.is_empty() {
            let mut types = q.push(" AND e.type IN (").separated(", ");
            for t in r.types {
                types.push_bind(*t);
            }
            types.push_unseparated(")");
        }
        let order = if r.newest_first { "DESC" } else { "ASC" };
        q.push(format!(" ORDER BY e.at_ms {order}, e.seq {order} LIMIT "))
            .push_bind(r.limit.max(1));
        let rows = q.build().fetch_all(&self.reader).await?;
        let mut events = rows
            .iter()
            .map(event_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        if r.newest_first {
            events.reverse();
        }
        self.attach_details(&mut events).await?;
        Ok(events)
    }

    async fn event(&self, seq: i64, scope: &StoreScope) -> Result<Option<EventRecord>, StoreError> {
        let mut q = QueryBuilder::<Sqlite>::new(format!(
            "SELECT {EVENT_COLUMNS} FROM events e WHERE e.seq = "
        ));
        q.push_bind(seq);
        push_scope(&mut q, "e.store", scope);
        let row = q.build().fetch_optional(&self.reader).await?;
        let Some(row) = row else { return Ok(None) };
        let mut events = vec![event_from_row(&row)?];
        self.attach_details(&mut events).await?;
        Ok(events.pop())
    }

    async fn attempts(&self, bookmark_id: i64) -> Result<Vec<AttemptRecord>, StoreError> {
        let rows: Vec<(i64, String, Option<String>)> = sqlx::query_as(
            "SELECT at_ms, outcome, detail FROM bookmark_attempts WHERE bookmark_id = ? ORDER BY at_ms, rowid",
        )
        .bind(bookmark_id)
        .fetch_all(&self.reader)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(at_ms, outcome, detail)| AttemptRecord {
                at_ms,
                outcome,
                detail,
            })
            .collect())
    }

    async fn counts(&self, scope: &StoreScope) -> Result<Counts, StoreError> {
        let mut q = QueryBuilder::<Sqlite>::new(
            "SELECT COUNT(*), MAX(received_ms) FROM events e WHERE 1 = 1",
        );
        push_scope(&mut q, "e.store", scope);
        let (events, last_received_ms): (i64, Option<i64>) =
            q.build_query_as().fetch_one(&self.reader).await?;
        let mut q = QueryBuilder::<Sqlite>::new(
            "SELECT COALESCE(SUM(b.state = 'pending'), 0), COALESCE(SUM(b.state = 'failed'), 0) \
             FROM bookmarks b",
        );
        if *scope != StoreScope::All {
            q.push(" JOIN events e ON e.seq = b.event_seq WHERE 1 = 1");
            push_scope(&mut q, "e.store", scope);
        }
        let (pending, failed): (i64, i64) = q.build_query_as().fetch_one(&self.reader).await?;
        let dead_letters: i64 = if *scope == StoreScope::All {
            sqlx::query_scalar("SELECT COUNT(*) FROM dead_letters WHERE dismissed_ms IS NULL")
                .fetch_one(&self.reader)
                .await?
        } else {
            0
        };
        Ok(Counts {
            events,
            pending,
            failed,
            dead_letters,
            last_received_ms,
        })
    }

    async fn system_stats(&self) -> Result<Vec<SystemStats>, StoreError> {
        let rows: Vec<(String, i64, i64, i64, Option<i64>)> = sqlx::query_as(
            "SELECT system, COALESCE(SUM(state = 'pending'), 0), COALESCE(SUM(state = 'failed'), 0), \
             COALESCE(SUM(state = 'made'), 0), MAX(made_ms) FROM bookmarks GROUP BY system ORDER BY system",
        )
        .fetch_all(&self.reader)
        .await?;
        let mut stats = Vec::with_capacity(rows.len());
        for (system, pending, failed, made, last_made_ms) in rows {
            let last: Option<(String, i64)> = sqlx::query_as(
                "SELECT last_error, updated_ms FROM bookmarks WHERE system = ? AND state != 'made' \
                 AND last_error IS NOT NULL ORDER BY updated_ms DESC LIMIT 1",
            )
            .bind(&system)
            .fetch_optional(&self.reader)
            .await?;
            let (last_error, last_error_ms) =
                last.map(|(e, t)| (Some(e), Some(t))).unwrap_or_default();
            stats.push(SystemStats {
                system,
                pending,
                failed,
                made,
                last_made_ms,
                last_error,
                last_error_ms,
            });
        }
        Ok(stats)
    }

    async fn close(&self) {
        self.reader.close().await;
        self.writer.close().await;
    }
}
