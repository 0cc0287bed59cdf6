//! Durable state: events, the bookmark outbox, attempts and dead letters, behind one [`Store`] trait so a
//! PostgreSQL backend can join the SQLite one without touching callers.
//!
//! Invariants every backend keeps:
//! - [`Store::ingest`] writes a whole batch (events, their bookmark rows, dead letters) in one transaction and
//!   returns only once it is durable: the caller acknowledges the broker after it returns, never before.
//! - `(store, id)` is unique: a redelivered event changes nothing and makes no second bookmark.
//! - A bookmark row is handed to one worker at a time ([`Store::claim_due`]), leased to one named daemon until
//!   the lease expires, and remembers when an attempt may have reached the camera system (`maybe_created`), so
//!   the next attempt looks before it creates.

mod accounts;
#[cfg(test)]
mod alert_tests;
mod alerts;
mod audit;
mod cases;
mod dead_letters;
#[cfg(test)]
mod drawer_tests;
mod error;
mod exceptions;
mod health;
mod postgres;
mod reads;
mod retention;
mod rows;
mod sql;
pub(crate) mod sqlite;
#[cfg(test)]
pub(crate) mod test_backends;
#[cfg(test)]
mod tests;

use async_trait::async_trait;
use serde::Serialize;
use std::collections::HashSet;

pub use accounts::{AccountError, Accounts, SessionRecord, TokenInfo, TotpState};
pub use alerts::{
    AlertJob, AlertOutbox, AlertOutcome, AlertSubject, AlertTrouble, FoundKey, NewAlert,
};
pub use audit::{
    AuditCheck, AuditEntry, AuditLog, AuditPurge, AuditQuery, CHECKPOINT_ACTION, Checkpoint,
    NewAuditEntry, SignInRecord, SignInWindows,
};
pub use cases::{
    CASE_TEXT_MAX_CHARS, CaseChange, CaseEntry, CaseError, CaseFilter, CaseOutcome, CaseRecord,
    CaseState, CaseSummary, Cases,
};
pub use dead_letters::{
    DEAD_LETTER_EXCERPT_CHARS, DeadLetter, DeadLetterBounds, DeadLetterQuery, DeadLetterStore,
    DeadLetterTotals, Dismissal, Purged, sha256_hex,
};
pub use error::{ErrorKind, StoreError};
pub use exceptions::{
    ExceptionFilter, ExceptionQuery, ExceptionRecord, Exceptions, NewException, RuleResults,
};
pub use health::{Problem, StoreHealth};
pub use postgres::PgStore;
pub use retention::{
    Erased, EventsPurged, PURGE_BATCH, Retention, Scrubbed, names, replace_in_json, replace_word,
};
use rows::{BOOKMARK_COLUMNS, EVENT_COLUMNS, bookmark_from_row, event_from_row};
use sql::{ESCAPE, EXPLAINING_TYPES, WAITING_AFTER_FAILURE, like_pattern, severity_condition};
pub use sqlite::SqliteStore;

use crate::event::Event;

/// A bookmark to make for a new event: which camera, which window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewBookmark {
    pub system: String,
    pub device: String,
    pub camera: String,
    /// The event's moment on this camera's clock (the register's moment plus the camera's offset).
    pub moment_ms: i64,
    pub start_ms: i64,
    pub duration_ms: i64,
}

/// A failed bookmark and where its event happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedBookmark {
    pub id: i64,
    pub system: String,
    pub device: String,
    pub camera: String,
    pub store: String,
    pub register: String,
    /// The event's moment on the register's clock.
    pub at_ms: i64,
}

/// What a drawer open, and an event that may explain one, ask of the store when written. Decided by
/// [`crate::ingest::plan`] from `[bookmarks]`; the store applies it inside the ingest transaction.
///
/// Why the decision is held in the bookmark rows: a drawer open's explaining sale may arrive after it (a bridge
/// that reorders, or a sale rung up just after the drawer popped). Its bookmark rows are written at once, so an
/// acknowledged drawer open can never be lost, but due only `hold_ms` after arrival; a sale that arrives
/// meanwhile deletes them while no attempt has started. A restart keeps the rows and their due times, so the
/// decision survives it. A sale that arrives after the bookmark was made only adds context: a made bookmark
/// is never taken back.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum DrawerRule {
    /// Nothing to decide.
    #[default]
    None,
    /// A flagged drawer open: unflagged, with no bookmarks, when an explaining event of its register is stored
    /// within `within_ms` of it; else its bookmarks are due `hold_ms` after it arrived.
    Open { within_ms: i64, hold_ms: i64 },
    /// A sale, refund or paid in/out: explains the drawer opens of its register within `within_ms` of it,
    /// withdrawing their bookmarks that no attempt has touched yet.
    Explains { within_ms: i64 },
}

/// One received message, ready to be written.
#[derive(Debug, Clone)]
pub enum Intake {
    Event {
        event: Box<Event>,
        raw: String,
        /// [`crate::event::content_digest`]: tells a redelivery from an id used again.
        digest: String,
        /// What the signature check found: `None` not checked, `Some(false)` unsigned.
        signed: Option<bool>,
        topic: String,
        received_ms: i64,
        flagged: bool,
        mapped: bool,
        bookmarks: Vec<NewBookmark>,
        /// Whether it is a drawer open to decide or an event that explains one.
        drawer: DrawerRule,
    },
    DeadLetter {
        topic: String,
        received_ms: i64,
        reason: String,
        /// The payload as text, card numbers masked; only its beginning when the payload was oversized.
        raw: String,
        /// Bytes of the payload as received.
        size: u64,
        /// SHA-256 of the payload as received, lowercase hex: matches what the sender can compute.
        sha256: String,
    },
}

/// An [`Intake::Event`]'s parts as a backend writes them.
pub(crate) struct EventRow<'a> {
    pub event: &'a Event,
    pub raw: &'a str,
    pub digest: &'a str,
    pub signed: Option<bool>,
    pub topic: &'a str,
    pub received_ms: i64,
    pub flagged: bool,
    pub mapped: bool,
    pub bookmarks: &'a [NewBookmark],
    pub drawer: DrawerRule,
}

/// A dead letter as a backend writes it: `size` and `sha256` are of the payload as it arrived, `raw` what is
/// kept of it (masked, maybe cut).
pub(crate) struct LetterRow<'a> {
    pub received_ms: i64,
    pub topic: &'a str,
    pub reason: &'a str,
    pub raw: &'a str,
    pub size: u64,
    pub sha256: &'a str,
}

/// The dead letter of a message that used stored event `seq`'s id with other content: the original is kept and
/// marked, this message kept as the letter. The event's payload was not kept byte for byte: size and digest
/// are of the text kept, which is the payload itself unless masking changed it.
pub(crate) fn reused_letter<'a>(
    seq: i64,
    e: &EventRow<'a>,
    reason: &'a mut String,
    sha256: &'a mut String,
) -> LetterRow<'a> {
    let event = e.event;
    *reason = format!(
        "id reused with different content: event {seq} ({}/{}, id {}) was stored first and is kept; this message is not",
        event.store, event.register, event.id
    );
    *sha256 = sha256_hex(e.raw.as_bytes());
    LetterRow {
        received_ms: e.received_ms,
        topic: e.topic,
        reason,
        raw: e.raw,
        size: e.raw.len() as u64,
        sha256,
    }
}

/// One write of a batch: a run of consecutive events, or a dead letter between them.
pub(crate) enum Piece<'a> {
    Events(Vec<EventRow<'a>>),
    Letter(LetterRow<'a>),
}

/// A batch as its writes, in its order (outcomes follow it): runs of at most `per_run` consecutive events, and
/// each dead letter where it stood.
pub(crate) fn pieces(batch: &[Intake], per_run: usize) -> Vec<Piece<'_>> {
    let mut pieces = Vec::new();
    let mut events = Vec::new();
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
                drawer,
            } => {
                events.push(EventRow {
                    event,
                    raw,
                    digest,
                    signed: *signed,
                    topic,
                    received_ms: *received_ms,
                    flagged: *flagged,
                    mapped: *mapped,
                    bookmarks,
                    drawer: *drawer,
                });
                if events.len() == per_run {
                    pieces.push(Piece::Events(std::mem::take(&mut events)));
                }
            }
            Intake::DeadLetter {
                topic,
                received_ms,
                reason,
                raw,
                size,
                sha256,
            } => {
                if !events.is_empty() {
                    pieces.push(Piece::Events(std::mem::take(&mut events)));
                }
                pieces.push(Piece::Letter(LetterRow {
                    received_ms: *received_ms,
                    topic,
                    reason,
                    raw,
                    size: *size,
                    sha256,
                }));
            }
        }
    }
    if !events.is_empty() {
        pieces.push(Piece::Events(events));
    }
    pieces
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntakeOutcome {
    Stored {
        seq: i64,
        bookmarks: usize,
    },
    Duplicate,
    DeadLettered,
    /// The id was stored before with other content: this message is a dead letter, the original is marked.
    Reused {
        seq: i64,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BookmarkState {
    Pending,
    Made,
    Failed,
}

impl BookmarkState {
    pub fn as_str(self) -> &'static str {
        match self {
            BookmarkState::Pending => "pending",
            BookmarkState::Made => "made",
            BookmarkState::Failed => "failed",
        }
    }

    pub fn parse(text: &str) -> Option<BookmarkState> {
        match text {
            "pending" => Some(BookmarkState::Pending),
            "made" => Some(BookmarkState::Made),
            "failed" => Some(BookmarkState::Failed),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct BookmarkRecord {
    pub id: i64,
    pub system: String,
    pub device: String,
    pub camera: String,
    /// The event's moment on this camera's clock: where a point marker goes.
    pub moment_ms: i64,
    pub start_ms: i64,
    pub duration_ms: i64,
    pub state: BookmarkState,
    pub attempts: i64,
    pub next_attempt_ms: Option<i64>,
    pub vendor_id: Option<String>,
    pub last_error: Option<String>,
    pub made_ms: Option<i64>,
    /// What a realtime vendor made instead of a live mark, when the event came too late.
    pub made_as: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct AttemptRecord {
    pub at_ms: i64,
    pub outcome: String,
    pub detail: Option<String>,
}

/// An event as stored, with its bookmarks: what the index and the API show.
#[derive(Debug, Clone, Serialize)]
pub struct EventRecord {
    pub seq: i64,
    pub key: String,
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub at: String,
    pub at_ms: i64,
    /// When the register or bridge sent it (contract v1.1), if it said.
    pub sent_at: Option<String>,
    pub sent_at_ms: Option<i64>,
    pub received_ms: i64,
    pub store: String,
    pub register: String,
    pub cashier: Option<String>,
    pub transaction: Option<String>,
    pub amount: Option<i64>,
    pub currency: Option<String>,
    pub reason: Option<String>,
    pub lines: Vec<String>,
    pub attributes: serde_json::Map<String, serde_json::Value>,
    pub flagged: bool,
    pub mapped: bool,
    pub topic: String,
    /// What the signature check found: `None` not checked (signing off), `Some(false)` unsigned.
    pub signed: Option<bool>,
    /// How many later messages used this event's id with other content (each one a dead letter).
    pub reused: i64,
    /// Shown by the views beside the event, not inside it.
    #[serde(skip)]
    pub bookmarks: Vec<BookmarkRecord>,
    /// Where its case stands, if anyone opened one.
    pub case: Option<CaseSummary>,
}

/// The stores whose events a reader may see. Every read of events takes one, and the backend applies it in
/// the query itself, so no page or API route can show another store's event by forgetting a check.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum StoreScope {
    /// Every store: an owner, or the daemon's own commands.
    #[default]
    All,
    /// Only these stores; none at all for a reader who sees no events (an integrator).
    Only(Vec<String>),
}

impl StoreScope {
    pub fn allows(&self, store: &str) -> bool {
        match self {
            StoreScope::All => true,
            StoreScope::Only(stores) => stores.iter().any(|s| s == store),
        }
    }
}

/// Filters of the event list; every field narrows, `None` does not.
#[derive(Debug, Clone, Default)]
pub struct EventQuery {
    /// Whose stores: applied before every other filter.
    pub scope: StoreScope,
    pub store: Option<String>,
    pub register: Option<String>,
    pub kind: Option<String>,
    pub cashier: Option<String>,
    /// Only the events of this transaction number, compared exactly: a void and the sale it undoes share one.
    pub transaction: Option<String>,
    pub from_ms: Option<i64>,
    pub to_ms: Option<i64>,
    /// Each store's own span (its "today"): when not empty, only events inside their store's span, so a
    /// Tokyo store's day and a New York store's day are each read on their own clock.
    pub days: Vec<StoreDay>,
    pub flagged_only: bool,
    /// Only events of this severity or above (`High`: voids, refunds, no-sales, unexplained drawer opens).
    pub severity: Option<crate::event::Severity>,
    /// Words to find in receipt lines, reason, transaction number or cashier: every word ([`search_words`])
    /// must occur in one of them, as a substring, ignoring ASCII case.
    pub search: Option<String>,
    /// Amount bounds, both inclusive, in the currency's minor unit as stored. An event without an amount
    /// passes no bound.
    pub min_amount: Option<i64>,
    pub max_amount: Option<i64>,
    /// Only events in this currency (ISO 4217): an amount typed as `¥1,280` is not $12.80.
    pub currency: Option<String>,
    /// Only events with at least one bookmark in this state.
    pub bookmark_state: Option<BookmarkState>,
    /// Only events with a case in this state.
    pub case: Option<CaseFilter>,
    /// Only events a rule matched (any rule, or this one).
    pub exception: Option<ExceptionFilter>,
    /// Only events stored before this sequence number: what the store held when that event arrived, which is
    /// what a rule evaluating it reads, live or in a back-test.
    pub stored_before: Option<i64>,
    /// Only events older than this one (by time, then sequence): the next page.
    pub before: Option<(i64, i64)>,
    pub limit: i64,
}

/// One store's span `[from_ms, to_ms)` of [`EventQuery::days`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreDay {
    pub store: String,
    pub from_ms: i64,
    pub to_ms: i64,
}

/// What the list's filters offer to pick from: the registers, cashiers and currencies of recent events.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SeenValues {
    pub registers: Vec<String>,
    pub cashiers: Vec<String>,
    pub currencies: Vec<String>,
}

/// What [`Store::register_activity`] reads: one register's events in a span.
#[derive(Debug, Clone)]
pub struct RegisterActivity<'a> {
    pub scope: &'a StoreScope,
    pub store: &'a str,
    pub register: &'a str,
    pub from_ms: i64,
    pub to_ms: i64,
    pub types: &'a [&'a str],
    pub limit: i64,
    /// The newest `limit` (still returned oldest first): what came just before a span.
    pub newest_first: bool,
}

/// The words of a search: split on whitespace (the ideographic space a Japanese keyboard types too) and on
/// control characters, which no receipt line is searched for and which would only confuse a query parser.
pub fn search_words(search: &str) -> impl Iterator<Item = &str> {
    search
        .split(|c: char| c.is_whitespace() || c.is_control())
        .filter(|w| !w.is_empty())
}

/// A bookmark handed to a worker, with its event.
#[derive(Debug, Clone)]
pub struct Job {
    pub bookmark: BookmarkRecord,
    /// An earlier attempt may have created it on the camera system.
    pub maybe_created: bool,
    pub event: EventRecord,
}

/// How many due bookmarks one claim may hand out: up to the number given for each listed camera system (none
/// for a zero), and up to `others` in all for camera systems not listed. Each system's rows go by their own
/// limit, so one system's backlog never takes another's turn.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Room {
    pub systems: Vec<(String, usize)>,
    pub others: usize,
}

impl Room {
    /// The listed systems of which `claimed` holds fewer rows than were asked for: nothing more is due there.
    pub fn short(&self, claimed: &[Job]) -> Vec<String> {
        self.systems
            .iter()
            .filter(|(system, n)| {
                *n > 0
                    && claimed
                        .iter()
                        .filter(|j| &j.bookmark.system == system)
                        .count()
                        < *n
            })
            .map(|(system, _)| system.clone())
            .collect()
    }

    /// A claim's arms: each listed system with room and its limit, then `None` with `others` for every system
    /// not listed; systems with no room are not read at all. Beside them, the listed systems.
    pub(crate) fn arms(&self) -> (Vec<(Option<&str>, usize)>, Vec<String>) {
        let mut arms: Vec<(Option<&str>, usize)> = self
            .systems
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(s, n)| (Some(s.as_str()), *n))
            .collect();
        if self.others > 0 {
            arms.push((None, self.others));
        }
        let listed = self.systems.iter().map(|(s, _)| s.clone()).collect();
        (arms, listed)
    }

    /// Up to `n` rows, of any camera systems.
    pub fn any(n: usize) -> Room {
        Room {
            systems: Vec::new(),
            others: n,
        }
    }
}

/// What an attempt ended in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Made {
        vendor_id: Option<String>,
        detail: String,
        made_as: Option<String>,
    },
    Retry {
        at_ms: i64,
        error: String,
        maybe_created: bool,
    },
    /// Not an attempt: the camera system asked to slow down, or was pausing when the row's turn came. The row
    /// waits until `at_ms` with its attempt count, schedule step and `maybe_created` as they were before the
    /// claim; `note` becomes its last error and goes to its history, so the event page shows why it waits.
    Paced {
        at_ms: i64,
        note: String,
    },
    Failed {
        error: String,
    },
    /// Claimed but never sent (the worker stopped, or the row's camera system paused for longer than a claim
    /// should be held): the claim is given back whole, as if it had not been made, and nothing goes to the
    /// row's history.
    Unsent,
}

/// The end of one attempt, to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finished {
    pub bookmark_id: i64,
    pub outcome: Outcome,
    pub at_ms: i64,
}

/// Begins the history line of an outcome that arrived after its lease had passed to another daemon.
pub const LATE_OUTCOME: &str = "late, the lease had passed to another daemon: ";

/// An attempt's line in its row's history: marked when the outcome came late (see [`Store::finish`]).
pub(crate) fn history_detail(late: &HashSet<i64>, bookmark_id: i64, detail: &str) -> String {
    if late.contains(&bookmark_id) {
        format!("{LATE_OUTCOME}{detail}")
    } else {
        detail.to_string()
    }
}

/// How one camera system's bookmarks stand, for the integrations page.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SystemStats {
    pub system: String,
    pub pending: i64,
    pub failed: i64,
    pub made: i64,
    pub last_made_ms: Option<i64>,
    /// The newest error of a bookmark not made, and when it was recorded.
    pub last_error: Option<String>,
    pub last_error_ms: Option<i64>,
}

/// Counts for health and the index header.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Counts {
    pub events: i64,
    pub pending: i64,
    pub failed: i64,
    /// Dead letters not dismissed: what the header's badge shows.
    pub dead_letters: i64,
    pub last_received_ms: Option<i64>,
    /// Events the search indexes do not hold yet (the indexer trails ingest): still found, by a slower read.
    pub unindexed: i64,
}

#[async_trait]
pub trait Store:
    Accounts
    + AlertOutbox
    + AuditLog
    + Cases
    + DeadLetterStore
    + Exceptions
    + Retention
    + Send
    + Sync
    + 'static
{
    /// Writes a batch in one transaction and returns once it is durable, one outcome per intake, in order.
    async fn ingest(&self, batch: &[Intake], now_ms: i64)
    -> Result<Vec<IntakeOutcome>, StoreError>;

    /// Hands out due bookmarks, as many of each camera system's as `room` says (each system's earliest due
    /// first), leased to `holder` (the daemon instance) until `now_ms + lease_ms`, in one transaction. A row
    /// leased to anyone is handed out again only once the lease has expired: several daemons may share one
    /// database, and a live lease is never taken.
    async fn claim_due(
        &self,
        holder: &str,
        now_ms: i64,
        lease_ms: i64,
        room: &Room,
    ) -> Result<Vec<Job>, StoreError>;

    /// Records the ends of attempts, releasing their leases, in one transaction. A bookmark made on a camera
    /// system makes that system's rows waiting after failures due now: it answers again. A paced row gives back
    /// the attempt its claim counted. Says whether any row got a new due time (given back, rescheduled, paced,
    /// or pulled forward), which the outbox's reader wants to know; made and failed rows are done.
    ///
    /// Only `holder`'s own leases are ended: an outcome that arrives after its lease passed to another daemon
    /// changes nothing but the row's history (marked [`LATE_OUTCOME`]), since the new holder's attempt is under
    /// way and ending its lease would let a third daemon send the same bookmark again. A late *made* is the
    /// exception: the camera system has that bookmark, so a row still pending is recorded as made.
    async fn finish(&self, holder: &str, results: &[Finished]) -> Result<bool, StoreError>;

    /// Makes the bookmarks of these camera systems that wait after a failure due now, for when what failed
    /// them is fixed (a definition appeared or changed).
    async fn expedite(&self, systems: &[String], now_ms: i64) -> Result<u64, StoreError>;

    /// When the earliest pending bookmark is due (a claimed one counts from its lease end), leaving out the
    /// `skip` systems'.
    async fn next_due_ms(&self, skip: &[String]) -> Result<Option<i64>, StoreError>;

    /// Sends nothing to camera system `system` before `until_ms`, on every daemon of this database: it asked
    /// to slow down. A later hold only lengthens an earlier one.
    async fn hold_system(&self, system: &str, until_ms: i64) -> Result<(), StoreError>;

    /// The camera systems held past `now_ms`, and until when.
    async fn held_systems(&self, now_ms: i64) -> Result<Vec<(String, i64)>, StoreError>;

    /// The installation's key of this name, made (32 random bytes) and kept on first use.
    async fn installation_key(&self, name: &str) -> Result<Vec<u8>, StoreError>;

    /// Releases the leases `holder` left when it stopped without finishing, so a restarted daemon takes its
    /// rows again at once instead of waiting out its own old leases. Other holders' leases are theirs until
    /// they expire: that daemon may be alive.
    async fn release_orphaned_claims(&self, holder: &str) -> Result<u64, StoreError>;

    /// The failed bookmarks (of `system`), each with its event's store, register and moment, oldest first: for
    /// `tillmark retry-failed` to plan them again from the config as it is now.
    async fn failed_bookmarks(
        &self,
        system: Option<&str>,
    ) -> Result<Vec<FailedBookmark>, StoreError>;

    /// Queues failed bookmark `id` again as `plan` says (its camera and window may have changed since), due now
    /// and counted from a first attempt. `false` when it is no longer failed, or when its event already has a
    /// bookmark on the camera `plan` names.
    async fn requeue_failed(
        &self,
        id: i64,
        plan: &NewBookmark,
        now_ms: i64,
    ) -> Result<bool, StoreError>;

    async fn events(&self, query: &EventQuery) -> Result<Vec<EventRecord>, StoreError>;
    /// The distinct registers, cashiers and currencies of the events in `scope` (at `store` when given) at or
    /// after `since_ms`, each sorted, at most `limit` of each.
    async fn seen_values(
        &self,
        scope: &StoreScope,
        store: Option<&str>,
        since_ms: i64,
        limit: i64,
    ) -> Result<SeenValues, StoreError>;
    /// One event, if it exists and is in `scope`.
    async fn event(&self, seq: i64, scope: &StoreScope) -> Result<Option<EventRecord>, StoreError>;
    /// How many events of each type each cashier had at a store in `[from_ms, to_ms)`: `(cashier, type,
    /// count)`; events without a cashier are left out, and a store outside `scope` has none. With
    /// `stored_before`, only the events stored before that sequence number.
    async fn cashier_counts(
        &self,
        scope: &StoreScope,
        store: &str,
        from_ms: i64,
        to_ms: i64,
        stored_before: Option<i64>,
    ) -> Result<Vec<(String, String, i64)>, StoreError>;
    /// Events at one register with `from_ms <= at < to_ms`, oldest first, of the given types (all when
    /// empty), with their bookmarks; at most `limit`. `newest_first` gives the last ones before `to_ms`.
    async fn register_activity(
        &self,
        register: &RegisterActivity<'_>,
    ) -> Result<Vec<EventRecord>, StoreError>;
    async fn attempts(&self, bookmark_id: i64) -> Result<Vec<AttemptRecord>, StoreError>;
    /// When a register's newest `limit` events happened, were sent and were received: `(at_ms, sent_at_ms,
    /// received_ms)`, newest first, for its clock's recent skew ([`crate::event::median_skew`]). None for a
    /// store outside `scope`.
    async fn register_timings(
        &self,
        scope: &StoreScope,
        store: &str,
        register: &str,
        limit: i64,
    ) -> Result<Vec<(i64, Option<i64>, i64)>, StoreError>;
    /// Events and bookmarks in `scope`; dead letters (those not dismissed) belong to no store and are counted
    /// only for `All`.
    async fn counts(&self, scope: &StoreScope) -> Result<Counts, StoreError>;
    async fn system_stats(&self) -> Result<Vec<SystemStats>, StoreError>;

    /// Puts up to `max_events` events the search indexes do not hold yet into them, oldest first, in one
    /// transaction that also moves the indexes' watermark; returns how many. Searches find every event either
    /// way: this only makes them faster. See [`crate::indexer`].
    async fn index_search(&self, max_events: i64) -> Result<u64, StoreError>;

    /// The sequence number of the newest event stored, 0 when there is none.
    async fn newest_seq(&self) -> Result<i64, StoreError>;

    /// Closes connections after the last write.
    async fn close(&self);
}

/// Opens the backend a URL names, running its migrations.
pub async fn open(url: &str) -> Result<std::sync::Arc<dyn Store>, StoreError> {
    if url.starts_with("sqlite:") {
        Ok(std::sync::Arc::new(SqliteStore::open(url).await?))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(std::sync::Arc::new(PgStore::open(url).await?))
    } else {
        Err(StoreError::Invalid(format!(
            "unsupported database URL \"{url}\": use sqlite://FILE or postgres://USER@HOST/DATABASE"
        )))
    }
}
