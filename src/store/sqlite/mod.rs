//! The embedded backend: one SQLite file in WAL mode with `synchronous = FULL`, so a committed batch survives
//! a power cut, not only a crash. All writes go through one connection (SQLite has one writer anyway, and a
//! single writer never meets `SQLITE_BUSY`); reads use a small pool of their own so the index never waits on
//! ingest.

mod accounts;
mod alerts;
mod audit;
mod cases;
mod dead_letters;
mod exceptions;
mod retention;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt::Write;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{QueryBuilder, Row, Sqlite, SqlitePool};

use super::*;
use crate::event::event_key;

pub struct SqliteStore {
    writer: SqlitePool,
    reader: SqlitePool,
}

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

impl reads::Dialect for Sqlite {
    fn push_scope(q: &mut QueryBuilder<'_, Sqlite>, column: &str, scope: &StoreScope) {
        push_scope(q, column, scope);
    }
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

/// On a small store file every index lists its matches: reading a thousand rows is quick either way.
const LISTED_AT_LEAST: i64 = 1_000;

/// The words of a search by the index that finds them, and whether each index lists its matches or each row
/// of the list is tested instead (see [`SqliteStore::plan_search`]).
struct SearchPlan<'a> {
    /// Three characters or more: events_search, the trigram index, finds them.
    long: Vec<&'a str>,
    /// The trigram index's query, when it lists its matches.
    long_listed: Option<String>,
    /// One or two characters: events_grams holds each as one token.
    short: Vec<&'a str>,
    /// The gram index's query, when it lists its matches: the short words, the bigrams of the long ones when
    /// the trigram index does not list theirs (an event holding a word holds its bigrams; LIKE then says whether
    /// side by side), and the stores the list may show.
    grams_listed: Option<String>,
}

/// One index's part of a plan: its words, its query when it lists its matches, its table and the column of
/// search_watermark that says how far it reaches.
type IndexPart<'p> = (
    &'p [&'p str],
    &'p Option<String>,
    &'static str,
    &'static str,
);

impl SearchPlan<'_> {
    fn parts(&self) -> [IndexPart<'_>; 2] {
        [
            (&self.long, &self.long_listed, "events_search", "seq"),
            (&self.short, &self.grams_listed, "events_grams", "grams_seq"),
        ]
    }

    /// The index whose list leads the query: the trigram index's, which holds only true matches, else the
    /// gram index's.
    fn lead(&self) -> Option<usize> {
        self.parts()
            .iter()
            .position(|(_, listed, _, _)| listed.is_some())
    }
}

/// The events the list's query starts from. When an index lists its matches, those few thousand at most come
/// first and each is read by its seq: left to itself, the planner may rather walk a store's or the time index
/// to save the sort, and test every one of a store's events against a list that holds none of them.
fn push_from(q: &mut QueryBuilder<Sqlite>, plan: &SearchPlan) {
    match plan.lead() {
        Some(lead) => {
            q.push("(");
            push_listed(q, plan.parts()[lead]);
            q.push(") c CROSS JOIN events e ON e.seq = c.seq");
        }
        None => {
            q.push("events e");
        }
    }
}

/// Narrows to events holding every word of the plan's search (see [`EventQuery::search`]), but for the
/// leading index's, whose matches the query starts from ([`push_from`]).
///
/// An index is used two ways, and the plan says which. When it matches few events, it lists them, together
/// with the events it does not hold yet (stored after its watermark, or changed since they were indexed),
/// which are tested with LIKE: a just-stored event is found at once. When it matches many, the list walks
/// events newest first and tests each row's text with LIKE, which fills a page after a few rows instead of
/// reading thousands of matches to sort them by time.
fn push_search(q: &mut QueryBuilder<Sqlite>, plan: &SearchPlan) {
    let lead = plan.lead();
    for (i, part) in plan.parts().into_iter().enumerate() {
        let (words, listed, _, _) = part;
        if listed.is_none() {
            for word in words {
                q.push(" AND ");
                push_like(q, "e", word);
            }
        } else if lead != Some(i) {
            q.push(" AND e.seq IN (");
            push_listed(q, part);
            q.push(")");
        }
    }
}

/// The seqs of the events an index lists, and of those it does not hold yet that hold its words. UNION, not
/// UNION ALL: an event changed while the gram index is still being filled is both stale and past its watermark.
fn push_listed(q: &mut QueryBuilder<Sqlite>, (words, listed, index, watermark): IndexPart) {
    let expression = listed.clone().unwrap_or_default();
    q.push(format!(
        "SELECT rowid AS seq FROM {index} WHERE {index} MATCH "
    ))
    .push_bind(expression);
    q.push(format!(
        " UNION SELECT u.seq FROM events u WHERE u.seq > (SELECT {watermark} FROM search_watermark)"
    ));
    for word in words {
        q.push(" AND ");
        push_like(q, "u", word);
    }
    // CROSS JOIN keeps the few stale rows outermost: the planner, knowing neither table's size, would
    // otherwise read every event to look each up in search_stale.
    q.push(
        " UNION SELECT u.seq FROM search_stale s CROSS JOIN events u ON u.seq = s.seq WHERE 1 = 1",
    );
    for word in words {
        q.push(" AND ");
        push_like(q, "u", word);
    }
}

/// Whether the event `alias` holds `word` in a receipt line, the reason, the transaction number or the cashier:
/// what the indexes find, read from the row itself.
fn push_like(q: &mut QueryBuilder<Sqlite>, alias: &str, word: &str) {
    let pattern = like_pattern(word);
    // Lines are stored as a JSON array. A LIKE on that text, with the word escaped as JSON escapes it, is a
    // cheap test every matching event passes; json_each then checks the decoded lines, so that `,` or `"` does
    // not match the array's own punctuation.
    let as_json = serde_json::Value::from(word).to_string();
    let in_json = like_pattern(&as_json[1..as_json.len() - 1]);
    q.push(format!("({alias}.reason LIKE "))
        .push_bind(pattern.clone());
    q.push(ESCAPE)
        .push(format!(" OR {alias}.txn LIKE "))
        .push_bind(pattern.clone());
    q.push(ESCAPE)
        .push(format!(" OR {alias}.cashier LIKE "))
        .push_bind(pattern.clone());
    q.push(ESCAPE)
        .push(format!(" OR ({alias}.lines LIKE "))
        .push_bind(in_json);
    q.push(ESCAPE).push(format!(
        " AND EXISTS (SELECT 1 FROM json_each({alias}.lines) WHERE value LIKE "
    ));
    q.push_bind(pattern).push(ESCAPE).push(")))");
}

/// The trigram index's query for `words`: each a quoted FTS5 string (inner quotes doubled), so `*`, `NEAR(`,
/// `OR`, `-` and quotes a person types are text, never query syntax; all must match.
fn trigram_expression(words: &[&str]) -> String {
    let phrases: Vec<String> = words
        .iter()
        .map(|w| format!("\"{}\"", w.replace('"', "\"\"")))
        .collect();
    phrases.join(" ")
}

/// The gram index's query for `plan`'s words (see [`SearchPlan::grams_listed`]), narrowed to the stores the list may show: their tokens are in the
/// index too, so a word common in other stores only is rare here. None when no word has a gram to look up.
fn grams_expression(plan: &SearchPlan, stores: Option<&[&String]>) -> Option<String> {
    let mut terms: BTreeSet<String> = plan.short.iter().map(|w| gram_token(w)).collect();
    // Only when the trigram index does not list its matches: a transaction number's bigrams are each in most
    // events, and counting the few thousand that hold them all would read far more than its trigrams do.
    let long = if plan.long_listed.is_none() {
        &plan.long[..]
    } else {
        &[]
    };
    for word in long.iter().filter(|w| like_folds_as_trigrams_do(w)) {
        let chars: Vec<char> = word.chars().collect();
        terms.extend(
            chars
                .windows(2)
                .map(|pair| gram_token(&pair.iter().collect::<String>())),
        );
    }
    if terms.is_empty() {
        return None;
    }
    let mut terms: Vec<String> = terms.into_iter().collect();
    if let Some(stores) = stores {
        let any: Vec<String> = stores.iter().map(|s| store_token(s)).collect();
        terms.push(format!("({})", any.join(" OR ")));
    }
    Some(terms.join(" AND "))
}

/// Whether LIKE finds `word` wherever the trigram index does. The trigram index ignores the case of every
/// letter, LIKE (and the gram index, which follows it) only of ASCII ones: a word with another cased letter
/// ('École', 'ＡＢＣ') is left to the trigram index alone, so that its answer does not depend on the way taken.
fn like_folds_as_trigrams_do(word: &str) -> bool {
    word.chars()
        .all(|c| c.is_ascii() || !(c.is_lowercase() || c.is_uppercase()))
}

/// A gram as its token: ASCII letters lowercased, as LIKE compares them, then the hex of its UTF-8 bytes, which
/// the ascii tokenizer keeps as one token and which is never FTS5 syntax. A one-character gram's hex is never a
/// two-character one's: UTF-8 is prefix-free.
pub(super) fn gram_token(gram: &str) -> String {
    let mut token = String::with_capacity(gram.len() * 2);
    for b in gram.to_ascii_lowercase().bytes() {
        let _ = write!(token, "{b:02x}");
    }
    token
}

/// A store's token in the gram index: `x` is not a hex digit, so it is never a gram's.
fn store_token(store: &str) -> String {
    format!("x{}", gram_token(store))
}

/// The distinct grams of an event's searched text as tokens, and its store's: what events_grams holds for it.
/// Grams across a whitespace or control character are left out: no word of a search holds one.
fn event_grams<'a>(store: &str, texts: impl Iterator<Item = &'a str>) -> String {
    let mut grams = BTreeSet::new();
    for text in texts {
        let chars: Vec<char> = text.chars().collect();
        for (i, c) in chars.iter().enumerate() {
            if c.is_whitespace() || c.is_control() {
                continue;
            }
            grams.insert(gram_token(&c.to_string()));
            if let Some(next) = chars.get(i + 1)
                && !(next.is_whitespace() || next.is_control())
            {
                grams.insert(gram_token(&format!("{c}{next}")));
            }
        }
    }
    let mut tokens: Vec<String> = grams.into_iter().collect();
    tokens.push(store_token(store));
    tokens.join(" ")
}

/// Each index connection's SQLite page cache, in KiB. SQLite's default (2,000 KiB) on every pooled connection
/// kept the pages of each page read (the 24-hour timeline, the cashier chart) in the daemon's memory long after:
/// about 11 MB more after 150 page renders (`cargo bench --bench memory`). The operating system caches the file
/// anyway, so a page not held here costs a read from memory, not from disk.
const READER_CACHE_KIB: u32 = 256;

/// Whether a connection given back is outside any transaction, as a connection back in the pool must be;
/// one that is not is closed, and the pool opens a fresh one.
///
/// sqlx counts transactions itself. When SQLite has already rolled a transaction back on its own (a full disk,
/// an I/O error), sqlx's ROLLBACK fails and its count stays at one: its next BEGIN becomes a SAVEPOINT, a
/// later ROLLBACK TO leaves the real transaction open, and from then on every COMMIT reports success while
/// committing nothing. Asking SQLite (a BEGIN is refused inside a transaction) catches that before the
/// connection is used again, so no acknowledged batch sits in a transaction that never commits.
async fn in_autocommit(conn: &mut SqliteConnection) -> bool {
    use sqlx::Executor;
    conn.execute("BEGIN; ROLLBACK").await.is_ok()
}

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
            .after_release(|conn, _| Box::pin(async move { Ok(in_autocommit(conn).await) }))
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

    /// Decides how each index answers `query`'s search. An index whose words match at most a few thousand of
    /// the events it holds lists them; one that matches more leaves the list to test rows newest first. The
    /// count stops at the bound, so deciding reads no more of an index than listing would.
    ///
    /// The bound is where the two ways cost alike: listing c matches reads c rows to sort them by time, while
    /// testing rows reads about limit × events / c before a page is full; they meet at √(limit × events), 7,000
    /// for a page of 50 in a million events.
    async fn plan_search<'a>(&self, query: &'a EventQuery) -> Result<SearchPlan<'a>, StoreError> {
        let (long, short): (Vec<&str>, Vec<&str>) = query
            .search
            .as_deref()
            .map(search_words)
            .into_iter()
            .flatten()
            .partition(|w| w.chars().count() >= TRIGRAM_CHARS);
        let mut plan = SearchPlan {
            long_listed: None,
            grams_listed: None,
            long,
            short,
        };
        if plan.long.is_empty() && plan.short.is_empty() {
            return Ok(plan);
        }
        let newest: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(seq), 0) FROM events")
            .fetch_one(&self.reader)
            .await?;
        let bound = ((query.limit.clamp(1, 1000) as f64 * newest as f64).sqrt() as i64)
            .max(LISTED_AT_LEAST);
        let stores: Option<Vec<&String>> = match (&query.scope, &query.store) {
            (_, Some(store)) => Some(vec![store]),
            (StoreScope::Only(stores), None) if !stores.is_empty() => Some(stores.iter().collect()),
            _ => None,
        };
        if !plan.long.is_empty() {
            let expression = trigram_expression(&plan.long);
            if !plan.long.iter().all(|w| like_folds_as_trigrams_do(w))
                || self
                    .matches_within("events_search", &expression, bound)
                    .await?
            {
                plan.long_listed = Some(expression);
            }
        }
        if let Some(expression) = grams_expression(&plan, stores.as_deref())
            && self
                .matches_within("events_grams", &expression, bound)
                .await?
        {
            plan.grams_listed = Some(expression);
        }
        Ok(plan)
    }

    /// Whether `index` holds at most `bound` events matching `expression`.
    async fn matches_within(
        &self,
        index: &str,
        expression: &str,
        bound: i64,
    ) -> Result<bool, StoreError> {
        let found: i64 = sqlx::query_scalar(&format!(
            "SELECT COUNT(*) FROM (SELECT 1 FROM {index} WHERE {index} MATCH ? LIMIT ?)"
        ))
        .bind(expression)
        .bind(bound + 1)
        .fetch_one(&self.reader)
        .await?;
        Ok(found <= bound)
    }

    /// Adds each event's bookmarks and case.
    pub(super) async fn attach_details(
        &self,
        events: &mut [EventRecord],
    ) -> Result<(), StoreError> {
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

async fn insert_dead_letter(
    tx: &mut sqlx::Transaction<'_, Sqlite>,
    letter: &LetterRow<'_>,
) -> Result<(), StoreError> {
    let LetterRow {
        received_ms,
        topic,
        reason,
        raw,
        size,
        sha256,
    } = *letter;
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
    e: &EventRow<'_>,
) -> Result<IntakeOutcome, StoreError> {
    let (seq, stored): (i64, Option<String>) =
        sqlx::query_as("SELECT seq, digest FROM events WHERE store = ? AND id = ?")
            .bind(&e.event.store)
            .bind(&e.event.id)
            .fetch_one(&mut **tx)
            .await?;
    // Events stored before digests existed cannot be compared: a copy is the likelier reading.
    if stored.is_none_or(|d| d == e.digest) {
        return Ok(IntakeOutcome::Duplicate);
    }
    sqlx::query("UPDATE events SET reused = reused + 1 WHERE seq = ?")
        .bind(seq)
        .execute(&mut **tx)
        .await?;
    let (mut reason, mut sha256) = (String::new(), String::new());
    insert_dead_letter(tx, &reused_letter(seq, e, &mut reason, &mut sha256)).await?;
    Ok(IntakeOutcome::Reused { seq })
}

/// Events written by one INSERT statement: one statement (and one trip to the database thread) for many rows is
/// what lets a batch of thousands commit at the disk's pace rather than the statements'. 23 columns a row keep
/// it far below SQLite's 32,766 bound variables. Only a full statement is kept prepared: each shorter one has
/// its own text, and a cache of a hundred such programs (about a megabyte each) would hold the memory.
const ROWS_PER_INSERT: usize = 256;

/// Runs one statement built for `rows` rows: only full chunks keep a prepared statement, since each shorter
/// count is a text of its own that would sit in the connection's cache.
async fn run_chunk(
    mut q: QueryBuilder<'_, Sqlite>,
    rows: usize,
    conn: &mut SqliteConnection,
) -> Result<(), sqlx::Error> {
    q.build()
        .persistent(rows == ROWS_PER_INSERT)
        .execute(conn)
        .await?;
    Ok(())
}

/// The rows among `results` whose lease is no longer `holder`'s (see [`Store::finish`]).
async fn late_outcomes(
    tx: &mut sqlx::Transaction<'_, Sqlite>,
    holder: &str,
    results: &[Finished],
) -> Result<HashSet<i64>, StoreError> {
    let mut late = HashSet::new();
    for chunk in results.chunks(ROWS_PER_INSERT) {
        let mut q =
            QueryBuilder::<Sqlite>::new("SELECT id FROM bookmarks WHERE claimed_by IS NOT ");
        q.push_bind(holder).push(" AND id IN (");
        let mut ids = q.separated(", ");
        for f in chunk {
            ids.push_bind(f.bookmark_id);
        }
        q.push(")");
        late.extend(q.build_query_scalar::<i64>().fetch_all(&mut **tx).await?);
    }
    Ok(late)
}

/// Whether an event that explains a drawer open is stored at this register within `within_ms` of `at_ms`.
async fn drawer_open_explained(
    tx: &mut sqlx::Transaction<'_, Sqlite>,
    event: &Event,
    within_ms: i64,
) -> Result<bool, StoreError> {
    let at_ms = event.at_ms();
    let found: Option<i64> = sqlx::query_scalar(&format!(
        "SELECT 1 FROM events WHERE store = ? AND register = ? AND at_ms BETWEEN ? AND ? \
         AND type IN {EXPLAINING_TYPES} LIMIT 1"
    ))
    .bind(&event.store)
    .bind(&event.register)
    .bind(at_ms.saturating_sub(within_ms))
    .bind(at_ms.saturating_add(within_ms))
    .fetch_optional(&mut **tx)
    .await?;
    Ok(found.is_some())
}

/// Explaining events were stored: the flagged drawer opens of their registers within each one's `within_ms`
/// are explained. Their bookmarks that no attempt has touched are withdrawn; a drawer open left with no
/// bookmark is unflagged. One whose bookmark an attempt may already have reached stays flagged, as it is on
/// the camera. Most events of a busy register are sales and seldom is any drawer open left to explain: one
/// query looks for them all, not one a sale.
async fn explain_drawer_opens(
    tx: &mut sqlx::Transaction<'_, Sqlite>,
    explaining: &[(&Event, i64)],
) -> Result<(), StoreError> {
    let mut opens: Vec<i64> = Vec::new();
    for chunk in explaining.chunks(ROWS_PER_INSERT) {
        let mut q = QueryBuilder::<Sqlite>::new("WITH s (store, register, lo, hi) AS (");
        q.push_values(chunk, |mut row, (event, within_ms)| {
            let at_ms = event.at_ms();
            row.push_bind(&event.store)
                .push_bind(&event.register)
                .push_bind(at_ms.saturating_sub(*within_ms))
                .push_bind(at_ms.saturating_add(*within_ms));
        });
        q.push(
            ") SELECT DISTINCT e.seq FROM s JOIN events e ON e.store = s.store AND e.register = s.register \
             AND e.at_ms BETWEEN s.lo AND s.hi WHERE e.type = 'drawer_open' AND e.flagged = 1",
        );
        opens.extend(
            q.build_query_scalar::<i64>()
                .persistent(chunk.len() == ROWS_PER_INSERT)
                .fetch_all(&mut **tx)
                .await?,
        );
    }
    opens.sort_unstable();
    opens.dedup();
    const UNTOUCHED: &str = "event_seq = ? AND state = 'pending' AND attempts = 0 AND maybe_created = 0 \
                             AND in_flight = 0 AND claimed_until_ms IS NULL";
    for seq in opens {
        // A row paced before its first attempt has notes in its history: they go with it.
        sqlx::query(&format!(
            "DELETE FROM bookmark_attempts WHERE bookmark_id IN (SELECT id FROM bookmarks WHERE {UNTOUCHED})"
        ))
        .bind(seq)
        .execute(&mut **tx)
        .await?;
        sqlx::query(&format!("DELETE FROM bookmarks WHERE {UNTOUCHED}"))
            .bind(seq)
            .execute(&mut **tx)
            .await?;
        sqlx::query(
            "UPDATE events SET flagged = 0 WHERE seq = ? \
             AND NOT EXISTS (SELECT 1 FROM bookmarks b WHERE b.event_seq = events.seq)",
        )
        .bind(seq)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// Inserts bookmark rows `(event, bookmark, due)`; a camera that already has a row for the event keeps it.
pub(super) async fn insert_bookmarks(
    tx: &mut sqlx::Transaction<'_, Sqlite>,
    planned: &[(i64, &NewBookmark, i64)],
    now_ms: i64,
) -> Result<(), StoreError> {
    for chunk in planned.chunks(ROWS_PER_INSERT) {
        let mut q = QueryBuilder::<Sqlite>::new(
            "INSERT INTO bookmarks (event_seq, system, device, camera, moment_ms, start_ms, duration_ms, \
             next_attempt_ms, created_ms, updated_ms) ",
        );
        q.push_values(chunk, |mut row, (seq, b, due_ms)| {
            row.push_bind(*seq)
                .push_bind(&b.system)
                .push_bind(&b.device)
                .push_bind(&b.camera)
                .push_bind(b.moment_ms)
                .push_bind(b.start_ms)
                .push_bind(b.duration_ms)
                .push_bind(*due_ms)
                .push_bind(now_ms)
                .push_bind(now_ms);
        });
        q.push(" ON CONFLICT (event_seq, system, device) DO NOTHING");
        q.build()
            .persistent(chunk.len() == ROWS_PER_INSERT)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

/// Inserts `events` and their bookmarks, pushing each one's outcome in order. An event whose (store, id) is
/// already stored, earlier or in this very statement, is a copy or a reused id.
async fn insert_events(
    tx: &mut sqlx::Transaction<'_, Sqlite>,
    events: &[EventRow<'_>],
    now_ms: i64,
    outcomes: &mut Vec<IntakeOutcome>,
) -> Result<(), StoreError> {
    if events.is_empty() {
        return Ok(());
    }
    let mut q = QueryBuilder::<Sqlite>::new(
        "INSERT INTO events (store, id, event_key, type, at, at_ms, received_ms, register, cashier, txn, amount, \
         currency, reason, lines, attributes, raw, topic, flagged, mapped, digest, signed, sent_at, sent_at_ms) ",
    );
    q.push_values(events, |mut row, e| {
        let event = e.event;
        row.push_bind(&event.store)
            .push_bind(&event.id)
            .push_bind(event_key(&event.store, &event.id))
            .push_bind(event.kind.as_str())
            .push_bind(
                event
                    .at
                    .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
            )
            .push_bind(event.at_ms())
            .push_bind(e.received_ms)
            .push_bind(&event.register)
            .push_bind(&event.cashier)
            .push_bind(&event.transaction)
            .push_bind(event.amount)
            .push_bind(&event.currency)
            .push_bind(&event.reason)
            .push_bind(serde_json::to_string(&event.lines).unwrap_or_else(|_| "[]".into()))
            .push_bind(serde_json::to_string(&event.attributes).unwrap_or_else(|_| "{}".into()))
            .push_bind(e.raw)
            .push_bind(e.topic)
            .push_bind(e.flagged)
            .push_bind(e.mapped)
            .push_bind(e.digest)
            .push_bind(e.signed)
            .push_bind(
                event
                    .sent_at
                    .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)),
            )
            .push_bind(event.sent_at_ms());
    });
    // RETURNING names rows in no particular order: they are matched back by (store, id).
    q.push(" ON CONFLICT (store, id) DO NOTHING RETURNING seq, store, id");
    let inserted: Vec<(i64, String, String)> = q
        .build_query_as()
        .persistent(events.len() == ROWS_PER_INSERT)
        .fetch_all(&mut **tx)
        .await?;
    let mut seqs: HashMap<(String, String), i64> = inserted
        .into_iter()
        .map(|(seq, store, id)| ((store, id), seq))
        .collect();
    let mut planned = Vec::new();
    let mut explaining = Vec::new();
    for e in events {
        let event = e.event;
        // The first message with a (store, id) is the one inserted; a later one in the same statement met it.
        match seqs.remove(&(event.store.clone(), event.id.clone())) {
            Some(seq) => {
                // Bookmarks are due at once, but a drawer open's wait for a sale that may still arrive.
                let mut due_ms = now_ms;
                match e.drawer {
                    DrawerRule::Open { within_ms, hold_ms } => {
                        if drawer_open_explained(tx, event, within_ms).await? {
                            sqlx::query("UPDATE events SET flagged = 0 WHERE seq = ?")
                                .bind(seq)
                                .execute(&mut **tx)
                                .await?;
                            outcomes.push(IntakeOutcome::Stored { seq, bookmarks: 0 });
                            continue;
                        }
                        due_ms = due_ms.max(e.received_ms.saturating_add(hold_ms));
                    }
                    DrawerRule::Explains { within_ms } => explaining.push((event, within_ms)),
                    DrawerRule::None => {}
                }
                planned.extend(e.bookmarks.iter().map(|b| (seq, b, due_ms)));
                outcomes.push(IntakeOutcome::Stored {
                    seq,
                    bookmarks: e.bookmarks.len(),
                });
            }
            None => outcomes.push(reused_or_duplicate(tx, e).await?),
        }
    }
    insert_bookmarks(tx, &planned, now_ms).await?;
    // After the drawer opens of this statement are in: a sale may explain one stored beside it.
    if !explaining.is_empty() {
        explain_drawer_opens(tx, &explaining).await?;
    }
    Ok(())
}

/// What the search indexes hold of an event.
const INDEX_COLUMNS: &str = "e.seq, e.store, e.lines, e.reason, e.txn, e.cashier";

#[derive(sqlx::FromRow)]
struct IndexRow {
    seq: i64,
    store: String,
    lines: String,
    reason: Option<String>,
    txn: Option<String>,
    cashier: Option<String>,
}

/// Puts an event into the trigram index, the gram index or both.
async fn index_event(
    tx: &mut sqlx::Transaction<'_, Sqlite>,
    row: &IndexRow,
    trigrams: bool,
    grams: bool,
) -> Result<(), StoreError> {
    let lines: Vec<String> = serde_json::from_str(&row.lines).unwrap_or_default();
    if trigrams {
        // One line of text a line, as the trigger before the indexer wrote them: a trigram never spans two.
        sqlx::query(
            "INSERT INTO events_search (rowid, lines, reason, txn, cashier) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(row.seq)
        .bind(lines.join("\n"))
        .bind(&row.reason)
        .bind(&row.txn)
        .bind(&row.cashier)
        .execute(&mut **tx)
        .await?;
    }
    if grams {
        let texts = lines.iter().map(String::as_str).chain(
            [&row.reason, &row.txn, &row.cashier]
                .into_iter()
                .flatten()
                .map(String::as_str),
        );
        sqlx::query("INSERT INTO events_grams (rowid, grams) VALUES (?, ?)")
            .bind(row.seq)
            .bind(event_grams(&row.store, texts))
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

#[async_trait]
impl Store for SqliteStore {
    async fn hold_system(&self, system: &str, until_ms: i64) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO system_holds (system, until_ms) VALUES (?, ?) \
             ON CONFLICT (system) DO UPDATE SET until_ms = max(until_ms, excluded.until_ms)",
        )
        .bind(system)
        .bind(until_ms)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn held_systems(&self, now_ms: i64) -> Result<Vec<(String, i64)>, StoreError> {
        Ok(
            sqlx::query_as("SELECT system, until_ms FROM system_holds WHERE until_ms > ?")
                .bind(now_ms)
                .fetch_all(&self.reader)
                .await?,
        )
    }

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
        for piece in pieces(batch, ROWS_PER_INSERT) {
            match piece {
                Piece::Events(events) => {
                    insert_events(&mut tx, &events, now_ms, &mut outcomes).await?;
                }
                Piece::Letter(letter) => {
                    insert_dead_letter(&mut tx, &letter).await?;
                    outcomes.push(IntakeOutcome::DeadLettered);
                }
            }
        }
        tx.commit().await?;
        Ok(outcomes)
    }

    async fn claim_due(
        &self,
        holder: &str,
        now_ms: i64,
        lease_ms: i64,
        room: &Room,
    ) -> Result<Vec<Job>, StoreError> {
        // One arm per camera system with room, each its own earliest due rows up to its limit, and one for
        // every system not listed; systems with no room are not read at all.
        let (arms, listed) = room.arms();
        if arms.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self.writer.begin().await?;
        // SET reads the old row: a claim whose predecessor never reported back (in_flight still 1) may have
        // reached the camera system, so it counts as maybe created.
        let mut q = QueryBuilder::<Sqlite>::new("UPDATE bookmarks SET claimed_until_ms = ");
        q.push_bind(now_ms + lease_ms);
        q.push(", claimed_by = ").push_bind(holder.to_string());
        q.push(", maybe_created = (maybe_created OR in_flight), in_flight = 1, attempts = attempts + 1, updated_ms = ");
        q.push_bind(now_ms);
        q.push(" WHERE id IN (");
        for (i, (system, limit)) in arms.iter().enumerate() {
            if i > 0 {
                q.push(" UNION ALL ");
            }
            q.push("SELECT id FROM (SELECT id FROM bookmarks WHERE state = 'pending' AND next_attempt_ms <= ");
            q.push_bind(now_ms);
            q.push(" AND (claimed_until_ms IS NULL OR claimed_until_ms <= ");
            q.push_bind(now_ms);
            q.push(")");
            match system {
                Some(system) => {
                    q.push(" AND system = ");
                    q.push_bind(system.to_string());
                }
                None => push_skip(&mut q, &listed),
            }
            q.push(" ORDER BY next_attempt_ms, id LIMIT ");
            q.push_bind(*limit as i64);
            q.push(")");
        }
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

    async fn finish(&self, holder: &str, results: &[Finished]) -> Result<bool, StoreError> {
        let mut tx = self.writer.begin().await?;
        let late = late_outcomes(&mut tx, holder, results).await?;
        // One statement per kind of outcome and chunk of rows, not two per row: a batch of hundreds of
        // outcomes takes the writer for a few statements, so claims and ingest do not queue behind it.
        let of = |kind: fn(&Outcome) -> bool| -> Vec<&Finished> {
            results.iter().filter(|f| kind(&f.outcome)).collect()
        };
        for chunk in of(|o| matches!(o, Outcome::Unsent)).chunks(ROWS_PER_INSERT) {
            // Never sent: the claim's attempt and in_flight are taken back; maybe_created keeps what the claim
            // found.
            let mut q = QueryBuilder::<Sqlite>::new(
                "UPDATE bookmarks SET attempts = MAX(attempts - 1, 0), in_flight = 0, claimed_until_ms = NULL, claimed_by = NULL \
                 WHERE claimed_by = ",
            );
            q.push_bind(holder).push(" AND id IN (");
            let mut ids = q.separated(", ");
            for f in chunk {
                ids.push_bind(f.bookmark_id);
            }
            q.push(")");
            run_chunk(q, chunk.len(), &mut tx).await?;
        }
        for chunk in of(|o| matches!(o, Outcome::Made { .. })).chunks(ROWS_PER_INSERT) {
            let mut q = QueryBuilder::<Sqlite>::new(
                "UPDATE bookmarks SET state = 'made', vendor_id = v.column2, made_as = v.column3, made_ms = v.column4, \
                 updated_ms = v.column4, in_flight = 0, maybe_created = 0, claimed_until_ms = NULL, claimed_by = NULL, last_error = NULL \
                 FROM (",
            );
            q.push_values(chunk, |mut row, f| {
                let Outcome::Made {
                    vendor_id, made_as, ..
                } = &f.outcome
                else {
                    unreachable!("filtered")
                };
                row.push_bind(f.bookmark_id)
                    .push_bind(vendor_id)
                    .push_bind(made_as)
                    .push_bind(f.at_ms);
            });
            q.push(") AS v WHERE bookmarks.id = v.column1 AND (bookmarks.claimed_by = ")
                .push_bind(holder)
                .push(" OR bookmarks.state = 'pending')");
            run_chunk(q, chunk.len(), &mut tx).await?;
        }
        for chunk in of(|o| matches!(o, Outcome::Retry { .. })).chunks(ROWS_PER_INSERT) {
            let mut q = QueryBuilder::<Sqlite>::new(
                "UPDATE bookmarks SET next_attempt_ms = v.column2, last_error = v.column3, maybe_created = v.column4, \
                 in_flight = 0, claimed_until_ms = NULL, claimed_by = NULL, updated_ms = v.column5 FROM (",
            );
            q.push_values(chunk, |mut row, f| {
                let Outcome::Retry {
                    at_ms,
                    error,
                    maybe_created,
                } = &f.outcome
                else {
                    unreachable!("filtered")
                };
                row.push_bind(f.bookmark_id)
                    .push_bind(at_ms)
                    .push_bind(error)
                    .push_bind(maybe_created)
                    .push_bind(f.at_ms);
            });
            q.push(") AS v WHERE bookmarks.id = v.column1 AND bookmarks.claimed_by = ")
                .push_bind(holder);
            run_chunk(q, chunk.len(), &mut tx).await?;
        }
        for chunk in of(|o| matches!(o, Outcome::Paced { .. })).chunks(ROWS_PER_INSERT) {
            // The claim counted an attempt and set in_flight; the vendor turned the request away unread, so
            // neither stands. maybe_created keeps what earlier attempts left.
            let mut q = QueryBuilder::<Sqlite>::new(
                "UPDATE bookmarks SET next_attempt_ms = v.column2, last_error = v.column3, \
                 attempts = MAX(attempts - 1, 0), in_flight = 0, claimed_until_ms = NULL, claimed_by = NULL, updated_ms = v.column4 \
                 FROM (",
            );
            q.push_values(chunk, |mut row, f| {
                let Outcome::Paced { at_ms, note } = &f.outcome else {
                    unreachable!("filtered")
                };
                row.push_bind(f.bookmark_id)
                    .push_bind(at_ms)
                    .push_bind(note)
                    .push_bind(f.at_ms);
            });
            q.push(") AS v WHERE bookmarks.id = v.column1 AND bookmarks.claimed_by = ")
                .push_bind(holder);
            run_chunk(q, chunk.len(), &mut tx).await?;
        }
        for chunk in of(|o| matches!(o, Outcome::Failed { .. })).chunks(ROWS_PER_INSERT) {
            let mut q = QueryBuilder::<Sqlite>::new(
                "UPDATE bookmarks SET state = 'failed', last_error = v.column2, in_flight = 0, \
                 claimed_until_ms = NULL, claimed_by = NULL, updated_ms = v.column3 FROM (",
            );
            q.push_values(chunk, |mut row, f| {
                let Outcome::Failed { error } = &f.outcome else {
                    unreachable!("filtered")
                };
                row.push_bind(f.bookmark_id)
                    .push_bind(error)
                    .push_bind(f.at_ms);
            });
            q.push(") AS v WHERE bookmarks.id = v.column1 AND bookmarks.claimed_by = ")
                .push_bind(holder);
            run_chunk(q, chunk.len(), &mut tx).await?;
        }
        // Every attempt's line in the row's history; a claim given back unsent was no attempt.
        for chunk in of(|o| !matches!(o, Outcome::Unsent)).chunks(ROWS_PER_INSERT) {
            let mut q = QueryBuilder::<Sqlite>::new(
                "INSERT INTO bookmark_attempts (bookmark_id, at_ms, outcome, detail) ",
            );
            q.push_values(chunk, |mut row, f| {
                let (label, detail) = match &f.outcome {
                    Outcome::Made { detail, .. } => ("made", detail),
                    Outcome::Retry { error, .. } => ("retry", error),
                    Outcome::Paced { note, .. } => ("paced", note),
                    Outcome::Failed { error } => ("failed", error),
                    Outcome::Unsent => unreachable!("filtered"),
                };
                row.push_bind(f.bookmark_id)
                    .push_bind(f.at_ms)
                    .push_bind(label)
                    .push_bind(history_detail(&late, f.bookmark_id, detail));
            });
            run_chunk(q, chunk.len(), &mut tx).await?;
        }
        // Rows given back, rescheduled or paced have a new due time; made and failed ones are done.
        let mut sooner = results
            .iter()
            .any(|f| !matches!(f.outcome, Outcome::Made { .. } | Outcome::Failed { .. }));
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
            sooner |= q.build().execute(&mut *tx).await?.rows_affected() > 0;
        }
        tx.commit().await?;
        Ok(sooner)
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

    async fn release_orphaned_claims(&self, holder: &str) -> Result<u64, StoreError> {
        // `in_flight` stays set: that attempt may have reached the camera system. A lease with no holder was
        // taken before holders were recorded (migration 0018), when one file had one daemon: it is this
        // daemon's own.
        let done = sqlx::query(
            "UPDATE bookmarks SET claimed_until_ms = NULL, claimed_by = NULL \
             WHERE claimed_until_ms IS NOT NULL AND (claimed_by = ? OR claimed_by IS NULL)",
        )
        .bind(holder)
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected())
    }

    async fn failed_bookmarks(
        &self,
        system: Option<&str>,
    ) -> Result<Vec<FailedBookmark>, StoreError> {
        let rows = sqlx::query(
            "SELECT b.id, b.system, b.device, b.camera, e.store, e.register, e.at_ms \
             FROM bookmarks b JOIN events e ON e.seq = b.event_seq \
             WHERE b.state = 'failed' AND (?1 IS NULL OR b.system = ?1) ORDER BY b.id",
        )
        .bind(system)
        .fetch_all(&self.reader)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| FailedBookmark {
                id: r.get(0),
                system: r.get(1),
                device: r.get(2),
                camera: r.get(3),
                store: r.get(4),
                register: r.get(5),
                at_ms: r.get(6),
            })
            .collect())
    }

    async fn requeue_failed(
        &self,
        id: i64,
        plan: &NewBookmark,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        // A camera the event already has a bookmark on keeps that one: (event, system, device) is unique.
        let done = sqlx::query(
            "UPDATE bookmarks SET state = 'pending', system = ?2, device = ?3, camera = ?4, moment_ms = ?5, \
             start_ms = ?6, duration_ms = ?7, attempts = 0, next_attempt_ms = ?8, updated_ms = ?8, \
             claimed_until_ms = NULL, claimed_by = NULL, in_flight = 0, \
             maybe_created = CASE WHEN device = ?3 AND system = ?2 THEN maybe_created ELSE 0 END \
             WHERE id = ?1 AND state = 'failed' AND NOT EXISTS (SELECT 1 FROM bookmarks o \
             WHERE o.event_seq = bookmarks.event_seq AND o.system = ?2 AND o.device = ?3 AND o.id != ?1)",
        )
        .bind(id)
        .bind(&plan.system)
        .bind(&plan.device)
        .bind(&plan.camera)
        .bind(plan.moment_ms)
        .bind(plan.start_ms)
        .bind(plan.duration_ms)
        .bind(now_ms)
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn events(&self, query: &EventQuery) -> Result<Vec<EventRecord>, StoreError> {
        let plan = self.plan_search(query).await?;
        // The page's sequence numbers first, then their rows: when the search index or a bookmark state hands
        // over thousands of candidates to sort by time, the sort reads two integers of each instead of whole
        // events (four times faster for a common word), and only the page's rows are read in full.
        let mut q = QueryBuilder::<Sqlite>::new(format!(
            "SELECT {EVENT_COLUMNS} FROM events e WHERE e.seq IN (SELECT e.seq FROM "
        ));
        push_from(&mut q, &plan);
        q.push(" WHERE 1 = 1");
        reads::push_filters(&mut q, query);
        push_search(&mut q, &plan);
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

    async fn seen_values(
        &self,
        scope: &StoreScope,
        store: Option<&str>,
        since_ms: i64,
        limit: i64,
    ) -> Result<SeenValues, StoreError> {
        let distinct = async |column: &str| -> Result<Vec<String>, StoreError> {
            Ok(reads::seen::<Sqlite>(column, scope, store, since_ms, limit)
                .build_query_scalar()
                .fetch_all(&self.reader)
                .await?)
        };
        Ok(SeenValues {
            registers: distinct("register").await?,
            cashiers: distinct("cashier").await?,
            currencies: distinct("currency").await?,
        })
    }

    async fn cashier_counts(
        &self,
        scope: &StoreScope,
        store: &str,
        from_ms: i64,
        to_ms: i64,
        stored_before: Option<i64>,
    ) -> Result<Vec<(String, String, i64)>, StoreError> {
        Ok(
            reads::cashier_counts::<Sqlite>(scope, store, from_ms, to_ms, stored_before)
                .build_query_as()
                .fetch_all(&self.reader)
                .await?,
        )
    }

    async fn register_activity(
        &self,
        r: &RegisterActivity<'_>,
    ) -> Result<Vec<EventRecord>, StoreError> {
        let rows = reads::register_activity::<Sqlite>(r)
            .build()
            .fetch_all(&self.reader)
            .await?;
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
        let row = reads::event::<Sqlite>(seq, scope)
            .build()
            .fetch_optional(&self.reader)
            .await?;
        let Some(row) = row else { return Ok(None) };
        let mut events = vec![event_from_row(&row)?];
        self.attach_details(&mut events).await?;
        Ok(events.pop())
    }

    async fn register_timings(
        &self,
        scope: &StoreScope,
        store: &str,
        register: &str,
        limit: i64,
    ) -> Result<Vec<(i64, Option<i64>, i64)>, StoreError> {
        Ok(
            reads::register_timings::<Sqlite>(scope, store, register, limit)
                .build_query_as()
                .fetch_all(&self.reader)
                .await?,
        )
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
        let mut q = QueryBuilder::<Sqlite>::new(
            "SELECT (SELECT COUNT(*) FROM events e WHERE e.seq > (SELECT grams_seq FROM search_watermark)",
        );
        push_scope(&mut q, "e.store", scope);
        q.push(
            ") + (SELECT COUNT(*) FROM search_stale s CROSS JOIN events e ON e.seq = s.seq WHERE 1 = 1",
        );
        push_scope(&mut q, "e.store", scope);
        q.push(")");
        let unindexed: i64 = q.build_query_scalar().fetch_one(&self.reader).await?;
        Ok(Counts {
            unindexed,
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

    async fn index_search(&self, max_events: i64) -> Result<u64, StoreError> {
        let mut tx = self.writer.begin().await?;
        let (mut seq, mut grams_seq): (i64, i64) =
            sqlx::query_as("SELECT seq, grams_seq FROM search_watermark")
                .fetch_one(&mut *tx)
                .await?;
        // Changed events first: they are out of both indexes meanwhile.
        let stale: Vec<IndexRow> = sqlx::query_as(&format!(
            "SELECT {INDEX_COLUMNS} FROM search_stale s CROSS JOIN events e ON e.seq = s.seq ORDER BY s.seq LIMIT ?"
        ))
        .bind(max_events)
        .fetch_all(&mut *tx)
        .await?;
        for row in &stale {
            index_event(&mut tx, row, true, row.seq <= grams_seq).await?;
        }
        if let Some(last) = stale.last() {
            sqlx::query("DELETE FROM search_stale WHERE seq <= ?")
                .bind(last.seq)
                .execute(&mut *tx)
                .await?;
        }
        let mut room = max_events - stale.len() as i64;
        let mut indexed = stale.len() as u64;
        // Events indexed before the gram index existed get their grams first, oldest first; then both indexes
        // take what ingest stored since.
        while room > 0 {
            let backfill = grams_seq < seq;
            let rows: Vec<IndexRow> = sqlx::query_as(&format!(
                "SELECT {INDEX_COLUMNS} FROM events e WHERE e.seq > ? AND e.seq <= ? \
                 AND e.seq NOT IN (SELECT seq FROM search_stale) ORDER BY e.seq LIMIT ?"
            ))
            .bind(grams_seq)
            .bind(if backfill { seq } else { i64::MAX })
            .bind(room)
            .fetch_all(&mut *tx)
            .await?;
            for row in &rows {
                index_event(&mut tx, row, !backfill, true).await?;
            }
            let full = rows.len() as i64 == room;
            indexed += rows.len() as u64;
            room -= rows.len() as i64;
            let last = rows.last().map(|r| r.seq);
            if backfill {
                // With room to spare, the backfill reached the trigram watermark. Stale events it passed get
                // their grams when the stale ones are taken.
                grams_seq = if full { last.unwrap_or(seq) } else { seq };
            } else {
                if let Some(last) = last {
                    (seq, grams_seq) = (last, last);
                }
                break;
            }
        }
        sqlx::query("UPDATE search_watermark SET seq = ?, grams_seq = ?")
            .bind(seq)
            .bind(grams_seq)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(indexed)
    }

    async fn newest_seq(&self) -> Result<i64, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT COALESCE(MAX(seq), 0) FROM events")
                .fetch_one(&self.reader)
                .await?,
        )
    }

    async fn close(&self) {
        self.reader.close().await;
        self.writer.close().await;
    }
}
