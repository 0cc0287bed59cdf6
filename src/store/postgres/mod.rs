//! The backend for chains that outgrow one box: PostgreSQL, shared by several daemons at once. Nothing here
//! assumes a single instance: a claim is a lease held by one named daemon (`claimed_by`) and taken over by
//! another only after it expires, rows are claimed with `FOR UPDATE SKIP LOCKED` so two daemons never hand out
//! the same one, and dedupe rests on the unique `(store, id)` key, not on who wrote first.
//!
//! Schema: `migrations/postgres`, the whole of what the SQLite migrations build.

mod accounts;
mod alerts;
mod audit;
mod cases;
mod dead_letters;
mod exceptions;
mod retention;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::{Postgres, QueryBuilder, Row, Transaction};

use super::*;
use crate::event::event_key;

pub struct PgStore {
    pool: PgPool,
}

/// Connections per daemon: ingest, the delivery's claims and answers, the indexer-free search and the index's
/// pages each take one at a time, and PostgreSQL's own limit (100 by default) is shared by every daemon.
const POOL_CONNECTIONS: u32 = 8;

/// Narrows to the events of the stores in `scope`; an empty list matches nothing. One array parameter, not one
/// per store, so a reader's query text, and its cached plan, are the same whatever their stores.
pub(super) fn push_scope(q: &mut QueryBuilder<Postgres>, column: &str, scope: &StoreScope) {
    let StoreScope::Only(stores) = scope else {
        return;
    };
    if stores.is_empty() {
        q.push(" AND false");
        return;
    }
    q.push(format!(" AND {column} = ANY("))
        .push_bind(stores.clone());
    q.push(")");
}

impl reads::Dialect for Postgres {
    fn push_scope(q: &mut QueryBuilder<'_, Postgres>, column: &str, scope: &StoreScope) {
        push_scope(q, column, scope);
    }
}

impl PgStore {
    pub(super) fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Connects to `url` (`postgres://` or `postgresql://`) and brings its schema up to date. Migrations
    /// take PostgreSQL's advisory lock, so daemons starting together migrate once.
    pub async fn open(url: &str) -> Result<PgStore, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(POOL_CONNECTIONS)
            .acquire_timeout(Duration::from_secs(10))
            .connect(url)
            .await?;
        sqlx::migrate!("migrations/postgres").run(&pool).await?;
        Ok(PgStore { pool })
    }
}

/// Whether the event `e` holds `word` in a receipt line, the reason, the transaction number or the cashier
/// ([`EventQuery::search`]), read from `search_text`, which holds exactly those (see migrations/postgres).
///
/// A word of three characters or more is an ILIKE the trigram index serves. A shorter one has no trigram, and
/// an ILIKE would read the whole index to find none: it is a plain test of each row instead, which the list
/// makes walking events newest first and stops when its page is full, as SQLite's list does for a word its
/// indexes match too often. ILIKE under a UTF-8 database lowercases both sides with `lower()` and compares
/// them, so both ways find the same events.
fn push_search(q: &mut QueryBuilder<Postgres>, search: Option<&str>) {
    for word in search.map(search_words).into_iter().flatten() {
        if word.chars().count() >= TRIGRAM_CHARS {
            q.push(" AND e.search_text ILIKE ")
                .push_bind(like_pattern(word))
                .push(ESCAPE);
        } else {
            q.push(" AND strpos(lower(e.search_text), lower(")
                .push_bind(word.to_string())
                .push(")) > 0");
        }
    }
}

/// The shortest word a trigram index can look up: a shorter one yields no trigram at all.
const TRIGRAM_CHARS: usize = 3;

/// Leaves out the rows of camera systems that are busy or cooling down.
fn push_skip(q: &mut QueryBuilder<Postgres>, skip: &[String]) {
    if !skip.is_empty() {
        q.push(" AND system <> ALL(")
            .push_bind(skip.to_vec())
            .push(")");
    }
}

async fn insert_dead_letter(
    tx: &mut Transaction<'_, Postgres>,
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
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
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
/// for something else, kept as a dead letter and marked on the original. Another daemon may have stored it a
/// moment ago: the unique key made this insert wait for that commit, so the row is there to compare.
async fn reused_or_duplicate(
    tx: &mut Transaction<'_, Postgres>,
    e: &EventRow<'_>,
) -> Result<IntakeOutcome, StoreError> {
    let (seq, stored): (i64, Option<String>) =
        sqlx::query_as("SELECT seq, digest FROM events WHERE store = $1 AND id = $2")
            .bind(&e.event.store)
            .bind(&e.event.id)
            .fetch_one(&mut **tx)
            .await?;
    if stored.is_none_or(|d| d == e.digest) {
        return Ok(IntakeOutcome::Duplicate);
    }
    sqlx::query("UPDATE events SET reused = reused + 1 WHERE seq = $1")
        .bind(seq)
        .execute(&mut **tx)
        .await?;
    let (mut reason, mut sha256) = (String::new(), String::new());
    insert_dead_letter(tx, &reused_letter(seq, e, &mut reason, &mut sha256)).await?;
    Ok(IntakeOutcome::Reused { seq })
}

/// Inserts bookmark rows `(event, bookmark, due)`; a camera that already has a row for the event keeps it.
pub(super) async fn insert_bookmarks(
    tx: &mut Transaction<'_, Postgres>,
    planned: &[(i64, &NewBookmark, i64)],
    now_ms: i64,
) -> Result<(), StoreError> {
    if planned.is_empty() {
        return Ok(());
    }
    let text = |f: fn(&NewBookmark) -> &String| -> Vec<String> {
        planned.iter().map(|(_, b, _)| f(b).clone()).collect()
    };
    let number =
        |f: fn(&(i64, &NewBookmark, i64)) -> i64| -> Vec<i64> { planned.iter().map(f).collect() };
    sqlx::query(
        "INSERT INTO bookmarks (event_seq, system, device, camera, moment_ms, start_ms, duration_ms, \
         next_attempt_ms, created_ms, updated_ms) \
         SELECT s, sy, d, c, m, st, du, due, $9, $9 FROM UNNEST($1::bigint[], $2::text[], $3::text[], \
         $4::text[], $5::bigint[], $6::bigint[], $7::bigint[], $8::bigint[]) AS v (s, sy, d, c, m, st, du, due) \
         ON CONFLICT (event_seq, system, device) DO NOTHING",
    )
    .bind(number(|p| p.0))
    .bind(text(|b| &b.system))
    .bind(text(|b| &b.device))
    .bind(text(|b| &b.camera))
    .bind(number(|p| p.1.moment_ms))
    .bind(number(|p| p.1.start_ms))
    .bind(number(|p| p.1.duration_ms))
    .bind(number(|p| p.2))
    .bind(now_ms)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Inserts `events` and their bookmarks, pushing each one's outcome in order. Each column goes as one array
/// (UNNEST), so a batch of any size is one statement with one text, prepared once per connection.
async fn insert_events(
    tx: &mut Transaction<'_, Postgres>,
    events: &[EventRow<'_>],
    now_ms: i64,
    outcomes: &mut Vec<IntakeOutcome>,
) -> Result<(), StoreError> {
    if events.is_empty() {
        return Ok(());
    }
    let rfc3339 = |t: &chrono::DateTime<chrono::FixedOffset>| {
        t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
    };
    let column = |f: &dyn Fn(&EventRow) -> Option<String>| -> Vec<Option<String>> {
        events.iter().map(f).collect()
    };
    let inserted: Vec<(i64, String, String)> = sqlx::query_as(
        "INSERT INTO events (store, id, event_key, type, at, at_ms, received_ms, register, cashier, txn, amount, \
         currency, reason, lines, attributes, raw, topic, flagged, mapped, digest, signed, sent_at, sent_at_ms) \
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[], \
         $7::bigint[], $8::text[], $9::text[], $10::text[], $11::bigint[], $12::text[], $13::text[], $14::text[], \
         $15::text[], $16::text[], $17::text[], $18::boolean[], $19::boolean[], $20::text[], $21::boolean[], \
         $22::text[], $23::bigint[]) \
         ON CONFLICT (store, id) DO NOTHING RETURNING seq, store, id",
    )
    .bind(column(&|e| Some(e.event.store.clone())))
    .bind(column(&|e| Some(e.event.id.clone())))
    .bind(column(&|e| Some(event_key(&e.event.store, &e.event.id))))
    .bind(column(&|e| Some(e.event.kind.as_str().to_string())))
    .bind(column(&|e| Some(rfc3339(&e.event.at))))
    .bind(events.iter().map(|e| e.event.at_ms()).collect::<Vec<_>>())
    .bind(events.iter().map(|e| e.received_ms).collect::<Vec<_>>())
    .bind(column(&|e| Some(e.event.register.clone())))
    .bind(column(&|e| e.event.cashier.clone()))
    .bind(column(&|e| e.event.transaction.clone()))
    .bind(events.iter().map(|e| e.event.amount).collect::<Vec<_>>())
    .bind(column(&|e| e.event.currency.clone()))
    .bind(column(&|e| e.event.reason.clone()))
    .bind(column(&|e| serde_json::to_string(&e.event.lines).ok()))
    .bind(column(&|e| serde_json::to_string(&e.event.attributes).ok()))
    .bind(column(&|e| Some(e.raw.to_string())))
    .bind(column(&|e| Some(e.topic.to_string())))
    .bind(events.iter().map(|e| e.flagged).collect::<Vec<_>>())
    .bind(events.iter().map(|e| e.mapped).collect::<Vec<_>>())
    .bind(column(&|e| Some(e.digest.to_string())))
    .bind(events.iter().map(|e| e.signed).collect::<Vec<_>>())
    .bind(column(&|e| e.event.sent_at.as_ref().map(rfc3339)))
    .bind(events.iter().map(|e| e.event.sent_at_ms()).collect::<Vec<_>>())
    .fetch_all(&mut **tx)
    .await?;
    let mut seqs: HashMap<(String, String), i64> = inserted
        .into_iter()
        .map(|(seq, store, id)| ((store, id), seq))
        .collect();
    // Bookmarks as columns too: (event seq, bookmark, due).
    let mut planned: Vec<(i64, &NewBookmark, i64)> = Vec::new();
    let mut explaining = Vec::new();
    for e in events {
        let event = e.event;
        let Some(seq) = seqs.remove(&(event.store.clone(), event.id.clone())) else {
            outcomes.push(reused_or_duplicate(tx, e).await?);
            continue;
        };
        let due_ms = match e.drawer {
            DrawerRule::Open { within_ms, hold_ms } => {
                if drawer_open_explained(tx, event, within_ms).await? {
                    sqlx::query("UPDATE events SET flagged = false WHERE seq = $1")
                        .bind(seq)
                        .execute(&mut **tx)
                        .await?;
                    outcomes.push(IntakeOutcome::Stored { seq, bookmarks: 0 });
                    continue;
                }
                now_ms.max(e.received_ms.saturating_add(hold_ms))
            }
            DrawerRule::Explains { within_ms } => {
                explaining.push((event, within_ms));
                now_ms
            }
            DrawerRule::None => now_ms,
        };
        planned.extend(e.bookmarks.iter().map(|b| (seq, b, due_ms)));
        outcomes.push(IntakeOutcome::Stored {
            seq,
            bookmarks: e.bookmarks.len(),
        });
    }
    insert_bookmarks(tx, &planned, now_ms).await?;
    // After the drawer opens of this statement are in: a sale may explain one stored beside it.
    if !explaining.is_empty() {
        explain_drawer_opens(tx, &explaining).await?;
    }
    Ok(())
}

/// Whether an event that explains a drawer open is stored at this register within `within_ms` of it.
async fn drawer_open_explained(
    tx: &mut Transaction<'_, Postgres>,
    event: &Event,
    within_ms: i64,
) -> Result<bool, StoreError> {
    let at_ms = event.at_ms();
    let found: Option<i32> = sqlx::query_scalar(&format!(
        "SELECT 1 FROM events WHERE store = $1 AND register = $2 AND at_ms BETWEEN $3 AND $4 \
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
/// lose the bookmarks no attempt has touched, and one left with none is unflagged (see [`DrawerRule`]). One
/// statement each for every explaining event of the batch: most are sales with no drawer open to explain.
async fn explain_drawer_opens(
    tx: &mut Transaction<'_, Postgres>,
    explaining: &[(&Event, i64)],
) -> Result<(), StoreError> {
    let opens: Vec<i64> = sqlx::query_scalar(
        "SELECT DISTINCT e.seq FROM UNNEST($1::text[], $2::text[], $3::bigint[], $4::bigint[]) AS s (store, register, lo, hi) \
         JOIN events e ON e.store = s.store AND e.register = s.register AND e.at_ms BETWEEN s.lo AND s.hi \
         WHERE e.type = 'drawer_open' AND e.flagged",
    )
    .bind(explaining.iter().map(|(e, _)| e.store.clone()).collect::<Vec<_>>())
    .bind(explaining.iter().map(|(e, _)| e.register.clone()).collect::<Vec<_>>())
    .bind(explaining.iter().map(|(e, w)| e.at_ms().saturating_sub(*w)).collect::<Vec<_>>())
    .bind(explaining.iter().map(|(e, w)| e.at_ms().saturating_add(*w)).collect::<Vec<_>>())
    .fetch_all(&mut **tx)
    .await?;
    if opens.is_empty() {
        return Ok(());
    }
    const UNTOUCHED: &str = "event_seq = ANY($1) AND state = 'pending' AND attempts = 0 AND NOT maybe_created \
                             AND NOT in_flight AND claimed_until_ms IS NULL";
    // A row paced before its first attempt has notes in its history: they go with it.
    for statement in [
        format!(
            "DELETE FROM bookmark_attempts WHERE bookmark_id IN (SELECT id FROM bookmarks WHERE {UNTOUCHED})"
        ),
        format!("DELETE FROM bookmarks WHERE {UNTOUCHED}"),
        "UPDATE events SET flagged = false WHERE seq = ANY($1) \
         AND NOT EXISTS (SELECT 1 FROM bookmarks b WHERE b.event_seq = events.seq)"
            .to_string(),
    ] {
        sqlx::query(&statement)
            .bind(&opens)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

impl PgStore {
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
        let rows = sqlx::query(&format!(
            "SELECT b.event_seq, {BOOKMARK_COLUMNS} FROM bookmarks b WHERE b.event_seq = ANY($1) ORDER BY b.id"
        ))
        .bind(&seqs)
        .fetch_all(&self.pool)
        .await?;
        for row in rows {
            let seq: i64 = row.try_get("event_seq")?;
            let bookmark = bookmark_from_row(&row)?;
            if let Some(e) = events.iter_mut().find(|e| e.seq == seq) {
                e.bookmarks.push(bookmark);
            }
        }
        Ok(())
    }

    /// Runs `q`, a list of events, and adds their details.
    async fn listed(
        &self,
        mut q: QueryBuilder<'_, Postgres>,
    ) -> Result<Vec<EventRecord>, StoreError> {
        let rows = q.build().fetch_all(&self.pool).await?;
        let mut events = rows
            .iter()
            .map(event_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        self.attach_details(&mut events).await?;
        Ok(events)
    }
}

/// One arm of a claim: `system`'s earliest due rows (those of no listed system for `None`), up to `limit`,
/// locked for this transaction. SKIP LOCKED passes over rows another daemon's claim holds locked this
/// moment; once that claim commits, its lease keeps them out of the due condition until it expires.
fn push_claim_arm(
    q: &mut QueryBuilder<Postgres>,
    now_ms: i64,
    system: Option<&str>,
    listed: &[String],
    limit: usize,
) {
    q.push("SELECT id FROM bookmarks WHERE state = 'pending' AND next_attempt_ms <= ")
        .push_bind(now_ms)
        .push(" AND (claimed_until_ms IS NULL OR claimed_until_ms <= ")
        .push_bind(now_ms)
        .push(")");
    match system {
        Some(system) => {
            q.push(" AND system = ").push_bind(system.to_string());
        }
        None => push_skip(q, listed),
    }
    q.push(" ORDER BY next_attempt_ms, id LIMIT ")
        .push_bind(limit as i64)
        .push(" FOR UPDATE SKIP LOCKED");
}

#[async_trait]
impl Store for PgStore {
    async fn hold_system(&self, system: &str, until_ms: i64) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO system_holds (system, until_ms) VALUES ($1, $2) \
             ON CONFLICT (system) DO UPDATE SET until_ms = GREATEST(system_holds.until_ms, excluded.until_ms)",
        )
        .bind(system)
        .bind(until_ms)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn held_systems(&self, now_ms: i64) -> Result<Vec<(String, i64)>, StoreError> {
        Ok(
            sqlx::query_as("SELECT system, until_ms FROM system_holds WHERE until_ms > $1")
                .bind(now_ms)
                .fetch_all(&self.pool)
                .await?,
        )
    }

    async fn installation_key(&self, name: &str) -> Result<Vec<u8>, StoreError> {
        // Two daemons starting together both try; the key first committed is everyone's.
        let fresh: [u8; 32] = rand::random();
        sqlx::query(
            "INSERT INTO installation_keys (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(fresh.as_slice())
        .execute(&self.pool)
        .await?;
        Ok(
            sqlx::query_scalar("SELECT value FROM installation_keys WHERE name = $1")
                .bind(name)
                .fetch_one(&self.pool)
                .await?,
        )
    }

    async fn ingest(
        &self,
        batch: &[Intake],
        now_ms: i64,
    ) -> Result<Vec<IntakeOutcome>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let mut outcomes = Vec::with_capacity(batch.len());
        for piece in pieces(batch, usize::MAX) {
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
        let (arms, listed) = room.arms();
        if arms.is_empty() {
            return Ok(Vec::new());
        }
        // Each arm a CTE of its own: PostgreSQL locks rows only in a plain SELECT, never in a UNION's arms.
        let mut q = QueryBuilder::<Postgres>::new("WITH ");
        for (i, (system, limit)) in arms.iter().enumerate() {
            if i > 0 {
                q.push(", ");
            }
            q.push(format!("arm{i} AS ("));
            push_claim_arm(&mut q, now_ms, *system, &listed, *limit);
            q.push(")");
        }
        // SET reads the old row: a claim whose predecessor never reported back (in_flight still set) may
        // have reached the camera system, so it counts as maybe created.
        q.push(" UPDATE bookmarks b SET claimed_until_ms = ")
            .push_bind(now_ms + lease_ms)
            .push(", claimed_by = ")
            .push_bind(holder.to_string())
            .push(", maybe_created = (maybe_created OR in_flight), in_flight = true, attempts = attempts + 1, updated_ms = ")
            .push_bind(now_ms)
            .push(" WHERE b.id IN (");
        for i in 0..arms.len() {
            if i > 0 {
                q.push(" UNION ALL ");
            }
            q.push(format!("SELECT id FROM arm{i}"));
        }
        q.push(") RETURNING b.id, b.maybe_created");
        let mut tx = self.pool.begin().await?;
        let claimed: Vec<(i64, bool)> = q.build_query_as().fetch_all(&mut *tx).await?;
        let ids: Vec<i64> = claimed.iter().map(|(id, _)| *id).collect();
        let rows = sqlx::query(&format!(
            "SELECT {EVENT_COLUMNS}, {BOOKMARK_COLUMNS} FROM bookmarks b JOIN events e ON e.seq = b.event_seq \
             WHERE b.id = ANY($1) ORDER BY b.start_ms, b.id"
        ))
        .bind(&ids)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        rows.iter()
            .map(|row| {
                let bookmark = bookmark_from_row(row)?;
                Ok(Job {
                    maybe_created: claimed.contains(&(bookmark.id, true)),
                    bookmark,
                    event: event_from_row(row)?,
                })
            })
            .collect()
    }

    async fn finish(&self, holder: &str, results: &[Finished]) -> Result<bool, StoreError> {
        // One statement for every outcome of the batch: each row's new values come as arrays, and the CASEs
        // pick what its kind of outcome changes. A lease ends with every outcome.
        let mut ids = Vec::with_capacity(results.len());
        let mut kinds = Vec::with_capacity(results.len());
        let mut due: Vec<Option<i64>> = Vec::with_capacity(results.len());
        let mut texts: Vec<Option<String>> = Vec::with_capacity(results.len());
        let mut vendor_ids: Vec<Option<String>> = Vec::with_capacity(results.len());
        let mut made_as: Vec<Option<String>> = Vec::with_capacity(results.len());
        let mut maybe: Vec<bool> = Vec::with_capacity(results.len());
        let mut at: Vec<i64> = Vec::with_capacity(results.len());
        let mut tx = self.pool.begin().await?;
        // Locked until commit: a lease that is ours now stays ours while its outcome is written.
        let late: HashSet<i64> = sqlx::query_scalar(
            "SELECT id FROM bookmarks WHERE id = ANY($1) AND claimed_by IS DISTINCT FROM $2 FOR UPDATE",
        )
        .bind(results.iter().map(|f| f.bookmark_id).collect::<Vec<_>>())
        .bind(holder)
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .collect();
        for f in results {
            let (kind, when, text, vendor, made, maybe_created) = match &f.outcome {
                Outcome::Unsent => ("unsent", None, None, None, None, false),
                Outcome::Made {
                    vendor_id,
                    detail,
                    made_as,
                } => (
                    "made",
                    None,
                    Some(detail),
                    vendor_id.clone(),
                    made_as.clone(),
                    false,
                ),
                Outcome::Retry {
                    at_ms,
                    error,
                    maybe_created,
                } => (
                    "retry",
                    Some(*at_ms),
                    Some(error),
                    None,
                    None,
                    *maybe_created,
                ),
                Outcome::Paced { at_ms, note } => {
                    ("paced", Some(*at_ms), Some(note), None, None, false)
                }
                Outcome::Failed { error } => ("failed", None, Some(error), None, None, false),
            };
            ids.push(f.bookmark_id);
            kinds.push(kind);
            due.push(when);
            texts.push(text.map(|t| history_detail(&late, f.bookmark_id, t)));
            vendor_ids.push(vendor);
            made_as.push(made);
            maybe.push(maybe_created);
            at.push(f.at_ms);
        }
        // Unsent and paced give back the attempt their claim counted (neither reached the vendor); unsent
        // keeps the last error and due time, paced keeps maybe_created as earlier attempts left it.
        sqlx::query(
            "UPDATE bookmarks b SET \
               state = CASE v.kind WHEN 'made' THEN 'made' WHEN 'failed' THEN 'failed' ELSE b.state END, \
               attempts = CASE WHEN v.kind IN ('unsent', 'paced') THEN GREATEST(b.attempts - 1, 0) ELSE b.attempts END, \
               next_attempt_ms = CASE WHEN v.kind IN ('retry', 'paced') THEN v.due ELSE b.next_attempt_ms END, \
               last_error = CASE v.kind WHEN 'made' THEN NULL WHEN 'unsent' THEN b.last_error ELSE v.text END, \
               maybe_created = CASE v.kind WHEN 'made' THEN false WHEN 'retry' THEN v.maybe ELSE b.maybe_created END, \
               vendor_id = CASE v.kind WHEN 'made' THEN v.vendor_id ELSE b.vendor_id END, \
               made_as = CASE v.kind WHEN 'made' THEN v.made_as ELSE b.made_as END, \
               made_ms = CASE v.kind WHEN 'made' THEN v.at ELSE b.made_ms END, \
               updated_ms = CASE v.kind WHEN 'unsent' THEN b.updated_ms ELSE v.at END, \
               in_flight = false, claimed_until_ms = NULL, claimed_by = NULL \
             FROM UNNEST($1::bigint[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::text[], $7::boolean[], \
               $8::bigint[]) AS v (id, kind, due, text, vendor_id, made_as, maybe, at) \
             WHERE b.id = v.id AND (b.claimed_by = $9 OR (v.kind = 'made' AND b.state = 'pending'))",
        )
        .bind(&ids)
        .bind(&kinds)
        .bind(&due)
        .bind(&texts)
        .bind(&vendor_ids)
        .bind(&made_as)
        .bind(&maybe)
        .bind(&at)
        .bind(holder)
        .execute(&mut *tx)
        .await?;
        // Every attempt's line in the row's history; a claim given back unsent was no attempt.
        sqlx::query(
            "INSERT INTO bookmark_attempts (bookmark_id, at_ms, outcome, detail) \
             SELECT id, at, kind, text FROM UNNEST($1::bigint[], $2::bigint[], $3::text[], $4::text[]) \
             AS v (id, at, kind, text) WHERE kind <> 'unsent'",
        )
        .bind(&ids)
        .bind(&at)
        .bind(&kinds)
        .bind(&texts)
        .execute(&mut *tx)
        .await?;
        // Rows given back, rescheduled or paced have a new due time; made and failed ones are done.
        let mut sooner = kinds.iter().any(|k| !matches!(*k, "made" | "failed"));
        // A bookmark made means its camera system answers again: what waits there after failures goes now.
        let made: Vec<i64> = results
            .iter()
            .filter(|f| matches!(f.outcome, Outcome::Made { .. }))
            .map(|f| f.bookmark_id)
            .collect();
        if let Some(now_ms) = at.iter().max().copied()
            && !made.is_empty()
        {
            let mut q = QueryBuilder::<Postgres>::new("UPDATE bookmarks SET next_attempt_ms = ");
            q.push_bind(now_ms)
                .push(WAITING_AFTER_FAILURE)
                .push_bind(now_ms)
                .push(" AND system IN (SELECT system FROM bookmarks WHERE id = ANY(")
                .push_bind(made)
                .push("))");
            sooner |= q.build().execute(&mut *tx).await?.rows_affected() > 0;
        }
        tx.commit().await?;
        Ok(sooner)
    }

    async fn expedite(&self, systems: &[String], now_ms: i64) -> Result<u64, StoreError> {
        if systems.is_empty() {
            return Ok(0);
        }
        let mut q = QueryBuilder::<Postgres>::new("UPDATE bookmarks SET next_attempt_ms = ");
        q.push_bind(now_ms)
            .push(WAITING_AFTER_FAILURE)
            .push_bind(now_ms)
            .push(" AND system = ANY(")
            .push_bind(systems.to_vec())
            .push(")");
        Ok(q.build().execute(&self.pool).await?.rows_affected())
    }

    async fn next_due_ms(&self, skip: &[String]) -> Result<Option<i64>, StoreError> {
        let mut q = QueryBuilder::<Postgres>::new(
            "SELECT MIN(GREATEST(next_attempt_ms, COALESCE(claimed_until_ms, 0))) FROM bookmarks WHERE state = 'pending'",
        );
        push_skip(&mut q, skip);
        Ok(q.build_query_scalar().fetch_one(&self.pool).await?)
    }

    async fn release_orphaned_claims(&self, holder: &str) -> Result<u64, StoreError> {
        // Only this daemon's own: another daemon's lease may be live, and is taken only once it expires.
        // `in_flight` stays set: that attempt may have reached the camera system.
        let done = sqlx::query(
            "UPDATE bookmarks SET claimed_until_ms = NULL, claimed_by = NULL WHERE claimed_by = $1",
        )
        .bind(holder)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    async fn failed_bookmarks(
        &self,
        system: Option<&str>,
    ) -> Result<Vec<FailedBookmark>, StoreError> {
        let rows: Vec<(i64, String, String, String, String, String, i64)> = sqlx::query_as(
            "SELECT b.id, b.system, b.device, b.camera, e.store, e.register, e.at_ms \
             FROM bookmarks b JOIN events e ON e.seq = b.event_seq \
             WHERE b.state = 'failed' AND ($1::text IS NULL OR b.system = $1) ORDER BY b.id",
        )
        .bind(system)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(
                |(id, system, device, camera, store, register, at_ms)| FailedBookmark {
                    id,
                    system,
                    device,
                    camera,
                    store,
                    register,
                    at_ms,
                },
            )
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
            "UPDATE bookmarks SET state = 'pending', system = $2, device = $3, camera = $4, moment_ms = $5, \
             start_ms = $6, duration_ms = $7, attempts = 0, next_attempt_ms = $8, updated_ms = $8, \
             claimed_until_ms = NULL, claimed_by = NULL, in_flight = false, \
             maybe_created = (maybe_created AND device = $3 AND system = $2) \
             WHERE id = $1 AND state = 'failed' AND NOT EXISTS (SELECT 1 FROM bookmarks o \
             WHERE o.event_seq = bookmarks.event_seq AND o.system = $2 AND o.device = $3 AND o.id <> $1)",
        )
        .bind(id)
        .bind(&plan.system)
        .bind(&plan.device)
        .bind(&plan.camera)
        .bind(plan.moment_ms)
        .bind(plan.start_ms)
        .bind(plan.duration_ms)
        .bind(now_ms)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn events(&self, query: &EventQuery) -> Result<Vec<EventRecord>, StoreError> {
        let mut q = QueryBuilder::<Postgres>::new(format!(
            "SELECT {EVENT_COLUMNS} FROM events e WHERE true"
        ));
        reads::push_filters(&mut q, query);
        push_search(&mut q, query.search.as_deref());
        if let Some(state) = query.bookmark_state {
            q.push(
                " AND EXISTS (SELECT 1 FROM bookmarks b WHERE b.event_seq = e.seq AND b.state = ",
            )
            .push_bind(state.as_str())
            .push(")");
        }
        if let Some((at_ms, seq)) = query.before {
            // A row comparison the time index (at_ms DESC, seq DESC) starts at: page 50 costs what page 1 does.
            q.push(" AND (e.at_ms, e.seq) < (")
                .push_bind(at_ms)
                .push(", ")
                .push_bind(seq)
                .push(")");
        }
        q.push(" ORDER BY e.at_ms DESC, e.seq DESC LIMIT ")
            .push_bind(query.limit.clamp(1, 1000));
        self.listed(q).await
    }

    async fn seen_values(
        &self,
        scope: &StoreScope,
        store: Option<&str>,
        since_ms: i64,
        limit: i64,
    ) -> Result<SeenValues, StoreError> {
        let distinct = async |column: &str| -> Result<Vec<String>, StoreError> {
            Ok(
                reads::seen::<Postgres>(column, scope, store, since_ms, limit)
                    .build_query_scalar()
                    .fetch_all(&self.pool)
                    .await?,
            )
        };
        Ok(SeenValues {
            registers: distinct("register").await?,
            cashiers: distinct("cashier").await?,
            currencies: distinct("currency").await?,
        })
    }

    async fn event(&self, seq: i64, scope: &StoreScope) -> Result<Option<EventRecord>, StoreError> {
        Ok(self.listed(reads::event(seq, scope)).await?.pop())
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
            reads::cashier_counts::<Postgres>(scope, store, from_ms, to_ms, stored_before)
                .build_query_as()
                .fetch_all(&self.pool)
                .await?,
        )
    }

    async fn register_activity(
        &self,
        r: &RegisterActivity<'_>,
    ) -> Result<Vec<EventRecord>, StoreError> {
        let mut events = self.listed(reads::register_activity(r)).await?;
        if r.newest_first {
            events.reverse();
        }
        Ok(events)
    }

    async fn attempts(&self, bookmark_id: i64) -> Result<Vec<AttemptRecord>, StoreError> {
        let rows: Vec<(i64, String, Option<String>)> = sqlx::query_as(
            "SELECT at_ms, outcome, detail FROM bookmark_attempts WHERE bookmark_id = $1 ORDER BY at_ms, id",
        )
        .bind(bookmark_id)
        .fetch_all(&self.pool)
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

    async fn register_timings(
        &self,
        scope: &StoreScope,
        store: &str,
        register: &str,
        limit: i64,
    ) -> Result<Vec<(i64, Option<i64>, i64)>, StoreError> {
        Ok(
            reads::register_timings::<Postgres>(scope, store, register, limit)
                .build_query_as()
                .fetch_all(&self.pool)
                .await?,
        )
    }

    async fn counts(&self, scope: &StoreScope) -> Result<Counts, StoreError> {
        let mut q = QueryBuilder::<Postgres>::new(
            "SELECT COUNT(*), MAX(e.received_ms) FROM events e WHERE true",
        );
        push_scope(&mut q, "e.store", scope);
        let (events, last_received_ms): (i64, Option<i64>) =
            q.build_query_as().fetch_one(&self.pool).await?;
        let mut q = QueryBuilder::<Postgres>::new(
            "SELECT COUNT(*) FILTER (WHERE b.state = 'pending'), COUNT(*) FILTER (WHERE b.state = 'failed') \
             FROM bookmarks b",
        );
        if *scope != StoreScope::All {
            q.push(" JOIN events e ON e.seq = b.event_seq WHERE true");
            push_scope(&mut q, "e.store", scope);
        }
        let (pending, failed): (i64, i64) = q.build_query_as().fetch_one(&self.pool).await?;
        let dead_letters: i64 = if *scope == StoreScope::All {
            sqlx::query_scalar("SELECT COUNT(*) FROM dead_letters WHERE dismissed_ms IS NULL")
                .fetch_one(&self.pool)
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
            // PostgreSQL indexes every row as it is written (migrations/postgres: events_search).
            unindexed: 0,
        })
    }

    async fn system_stats(&self) -> Result<Vec<SystemStats>, StoreError> {
        // Each system's newest error of a bookmark not made, beside its counts, in one read.
        let rows: Vec<(String, i64, i64, i64, Option<i64>, Option<String>, Option<i64>)> =
            sqlx::query_as(
                "SELECT s.system, s.pending, s.failed, s.made, s.last_made_ms, l.last_error, l.updated_ms \
                 FROM (SELECT system, COUNT(*) FILTER (WHERE state = 'pending') AS pending, \
                         COUNT(*) FILTER (WHERE state = 'failed') AS failed, \
                         COUNT(*) FILTER (WHERE state = 'made') AS made, MAX(made_ms) AS last_made_ms \
                       FROM bookmarks GROUP BY system) s \
                 LEFT JOIN LATERAL (SELECT last_error, updated_ms FROM bookmarks b WHERE b.system = s.system \
                   AND b.state <> 'made' AND b.last_error IS NOT NULL ORDER BY b.updated_ms DESC LIMIT 1) l ON true \
                 ORDER BY s.system",
            )
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .into_iter()
            .map(
                |(system, pending, failed, made, last_made_ms, last_error, last_error_ms)| {
                    SystemStats {
                        system,
                        pending,
                        failed,
                        made,
                        last_made_ms,
                        last_error,
                        last_error_ms,
                    }
                },
            )
            .collect())
    }

    async fn index_search(&self, _max_events: i64) -> Result<u64, StoreError> {
        // Nothing trails: PostgreSQL keeps the search index with every write (migrations/postgres).
        Ok(0)
    }

    async fn newest_seq(&self) -> Result<i64, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT COALESCE(MAX(seq), 0) FROM events")
                .fetch_one(&self.pool)
                .await?,
        )
    }

    async fn close(&self) {
        self.pool.close().await;
    }
}
