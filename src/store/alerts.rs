//! The alert outbox: the messages `[[alerts]]` owe (see [`crate::alerts`]), one row each, claimed under a
//! lease and retried like bookmarks.
//!
//! Invariants every backend keeps:
//! - A row is unique by (alert, rule, event) for an exception sent on its own, and by (alert, store, local
//!   day) for a digest: planning the same exception twice (two daemons, a restart) adds nothing, so each is
//!   sent once. Rows are never removed by the planner; the event's rows go when retention removes the event.
//! - A row is handed to one daemon at a time ([`AlertOutbox::claim_alerts`]), leased to it by name until the
//!   lease expires; a live lease is never taken. A daemon that died mid-send leaves its lease to expire (or
//!   releases it when it starts again under the same name), and the row is sent again with the same
//!   `Idempotency-Key`, so a receiver that saw it already can tell.
//! - Only the holder of a row's lease records its outcome.

use async_trait::async_trait;
use sqlx::{Encode, QueryBuilder, Type};

use super::exceptions::EXCEPTION_COLUMNS;
use super::reads::Dialect;
use super::{ExceptionRecord, StoreError};

/// Where a page of [`AlertOutbox::exceptions_found`] ended: `(found_ms, event_seq, rule)`.
pub type FoundKey = (i64, i64, String);

/// A row to plan: an exception for an immediate alert, or a store's day for a digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAlert {
    pub alert: String,
    pub store: String,
    pub what: AlertSubject,
    /// When it may first be sent.
    pub due_ms: i64,
}

/// What one outbox row is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AlertSubject {
    /// One exception, by its rule and event.
    Exception { rule: String, event_seq: i64 },
    /// The exceptions found at a store in `[from_ms, to_ms)`: the digest of the local day `day` (YYYY-MM-DD).
    Digest {
        day: String,
        from_ms: i64,
        to_ms: i64,
    },
}

/// A claimed row, to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertJob {
    pub id: i64,
    pub alert: String,
    pub store: String,
    pub what: AlertSubject,
    /// Counting this one.
    pub attempts: i64,
}

impl AlertJob {
    /// The `Idempotency-Key`: the same for every attempt of the row, and different for every row.
    pub fn key(&self) -> String {
        match &self.what {
            AlertSubject::Exception { rule, event_seq } => {
                format!("{}:{rule}:{event_seq}", self.alert)
            }
            AlertSubject::Digest { day, .. } => format!("{}:{}:{day}", self.alert, self.store),
        }
    }
}

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AlertOutcome {
    Sent,
    /// Try again at `next_ms`.
    Retry {
        error: String,
        next_ms: i64,
    },
    /// Never again: the receiver refused it for good, or its exception is gone.
    Failed {
        error: String,
    },
}

/// What is wrong in the outbox, for `/healthz`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AlertTrouble {
    /// Rows refused for good.
    pub failed: i64,
    /// Rows waiting to be tried again after an error.
    pub retrying: i64,
    /// The newest such row's alert and error (never a secret: status codes, transport errors and redacted
    /// answers).
    pub newest: Option<(String, String)>,
}

#[async_trait]
pub trait AlertOutbox: Send + Sync {
    /// Exceptions found in `[from_ms, to_ms)`, in the order found (then by event and rule), after `after`
    /// (the last one of the page before, as `(found_ms, event_seq, rule)`), at most `limit`.
    async fn exceptions_found(
        &self,
        from_ms: i64,
        to_ms: i64,
        after: Option<&FoundKey>,
        limit: i64,
    ) -> Result<Vec<ExceptionRecord>, StoreError>;

    /// Adds the rows not planned yet (one already planned stays as it was). Returns how many are new.
    async fn plan_alerts(&self, rows: &[NewAlert], now_ms: i64) -> Result<u64, StoreError>;

    /// Up to `limit` due rows nobody holds, earliest due first, leased to `holder` until `now_ms + lease_ms`.
    async fn claim_alerts(
        &self,
        holder: &str,
        now_ms: i64,
        lease_ms: i64,
        limit: i64,
    ) -> Result<Vec<AlertJob>, StoreError>;

    /// Records how the attempt on row `id` ended and releases its lease, if `holder` still holds it.
    async fn finish_alert(
        &self,
        id: i64,
        holder: &str,
        outcome: &AlertOutcome,
        now_ms: i64,
    ) -> Result<(), StoreError>;

    /// Releases the leases `holder` left when it stopped without finishing.
    async fn release_orphaned_alerts(&self, holder: &str) -> Result<u64, StoreError>;

    /// How many rows failed for good and how many wait to be tried again, and the newest error.
    async fn alert_trouble(&self) -> Result<AlertTrouble, StoreError>;
}

pub(super) const ALERT_COLUMNS: &str =
    "id, alert, store, rule, event_seq, day, from_ms, to_ms, attempts";

#[derive(sqlx::FromRow)]
pub(super) struct AlertRow {
    id: i64,
    alert: String,
    store: String,
    rule: Option<String>,
    event_seq: Option<i64>,
    day: Option<String>,
    from_ms: Option<i64>,
    to_ms: Option<i64>,
    attempts: i64,
}

impl AlertRow {
    pub(super) fn job(self) -> Result<AlertJob, StoreError> {
        let what = match (
            self.rule,
            self.event_seq,
            self.day,
            self.from_ms,
            self.to_ms,
        ) {
            (Some(rule), Some(event_seq), ..) => AlertSubject::Exception { rule, event_seq },
            (_, _, Some(day), Some(from_ms), Some(to_ms)) => AlertSubject::Digest {
                day,
                from_ms,
                to_ms,
            },
            _ => {
                return Err(StoreError::Invalid(format!(
                    "alert outbox row {} is neither an exception nor a digest",
                    self.id
                )));
            }
        };
        Ok(AlertJob {
            id: self.id,
            alert: self.alert,
            store: self.store,
            what,
            attempts: self.attempts,
        })
    }
}

/// For [`AlertOutbox::exceptions_found`].
pub(super) fn found<'a, DB: Dialect>(
    from_ms: i64,
    to_ms: i64,
    after: Option<&FoundKey>,
    limit: i64,
) -> QueryBuilder<'a, DB>
where
    for<'q> DB::Arguments<'q>: Default,
    String: for<'q> Encode<'q, DB> + Type<DB>,
    i64: for<'q> Encode<'q, DB> + Type<DB>,
{
    let mut q = QueryBuilder::new(format!(
        "SELECT {EXCEPTION_COLUMNS} FROM exceptions x JOIN events e ON e.seq = x.event_seq WHERE x.found_ms >= "
    ));
    q.push_bind(from_ms)
        .push(" AND x.found_ms < ")
        .push_bind(to_ms);
    if let Some((found_ms, seq, rule)) = after {
        q.push(" AND (x.found_ms > ")
            .push_bind(*found_ms)
            .push(" OR (x.found_ms = ")
            .push_bind(*found_ms)
            .push(" AND (x.event_seq > ")
            .push_bind(*seq)
            .push(" OR (x.event_seq = ")
            .push_bind(*seq)
            .push(" AND x.rule > ")
            .push_bind(rule.clone())
            .push("))))");
    }
    q.push(" ORDER BY x.found_ms, x.event_seq, x.rule LIMIT ")
        .push_bind(limit.clamp(1, 10_000));
    q
}

/// For [`AlertOutbox::plan_alerts`]; `None` for no rows.
pub(super) fn plan<'a, DB: Dialect>(
    rows: &'a [NewAlert],
    now_ms: i64,
) -> Option<QueryBuilder<'a, DB>>
where
    for<'q> DB::Arguments<'q>: Default,
    String: for<'q> Encode<'q, DB> + Type<DB>,
    Option<String>: for<'q> Encode<'q, DB> + Type<DB>,
    i64: for<'q> Encode<'q, DB> + Type<DB>,
    Option<i64>: for<'q> Encode<'q, DB> + Type<DB>,
{
    if rows.is_empty() {
        return None;
    }
    let mut q = QueryBuilder::new(
        "INSERT INTO alert_outbox (alert, store, rule, event_seq, day, from_ms, to_ms, next_attempt_ms, created_ms) ",
    );
    q.push_values(rows, |mut row, a| {
        let (rule, seq, day, from, to) = match &a.what {
            AlertSubject::Exception { rule, event_seq } => {
                (Some(rule.clone()), Some(*event_seq), None, None, None)
            }
            AlertSubject::Digest {
                day,
                from_ms,
                to_ms,
            } => (None, None, Some(day.clone()), Some(*from_ms), Some(*to_ms)),
        };
        row.push_bind(a.alert.clone())
            .push_bind(a.store.clone())
            .push_bind(rule)
            .push_bind(seq)
            .push_bind(day)
            .push_bind(from)
            .push_bind(to)
            .push_bind(a.due_ms)
            .push_bind(now_ms);
    });
    q.push(" ON CONFLICT DO NOTHING");
    Some(q)
}

/// For [`AlertOutbox::claim_alerts`]; `lock` is what the backend adds to the choosing subquery.
pub(super) fn claim<'a, DB: Dialect>(
    holder: &str,
    now_ms: i64,
    lease_ms: i64,
    limit: i64,
    lock: &str,
) -> QueryBuilder<'a, DB>
where
    for<'q> DB::Arguments<'q>: Default,
    String: for<'q> Encode<'q, DB> + Type<DB>,
    i64: for<'q> Encode<'q, DB> + Type<DB>,
{
    let mut q = QueryBuilder::new("UPDATE alert_outbox SET attempts = attempts + 1, claimed_by = ");
    q.push_bind(holder.to_string())
        .push(", claimed_until_ms = ")
        .push_bind(now_ms + lease_ms)
        .push(" WHERE id IN (SELECT id FROM alert_outbox WHERE state = 'pending' AND next_attempt_ms <= ")
        .push_bind(now_ms)
        .push(" AND (claimed_until_ms IS NULL OR claimed_until_ms <= ")
        .push_bind(now_ms)
        .push(") ORDER BY next_attempt_ms, id LIMIT ")
        .push_bind(limit.max(1))
        .push(format!("{lock}) RETURNING {ALERT_COLUMNS}"));
    q
}

/// For [`AlertOutbox::finish_alert`].
pub(super) fn finish<'a, DB: Dialect>(
    id: i64,
    holder: &str,
    outcome: &AlertOutcome,
    now_ms: i64,
) -> QueryBuilder<'a, DB>
where
    for<'q> DB::Arguments<'q>: Default,
    String: for<'q> Encode<'q, DB> + Type<DB>,
    i64: for<'q> Encode<'q, DB> + Type<DB>,
{
    let mut q =
        QueryBuilder::new("UPDATE alert_outbox SET claimed_by = NULL, claimed_until_ms = NULL, ");
    match outcome {
        AlertOutcome::Sent => {
            q.push("state = 'sent', last_error = NULL, sent_ms = ")
                .push_bind(now_ms);
        }
        AlertOutcome::Retry { error, next_ms } => {
            q.push("last_error = ")
                .push_bind(error.clone())
                .push(", next_attempt_ms = ")
                .push_bind(*next_ms);
        }
        AlertOutcome::Failed { error } => {
            q.push("state = 'failed', last_error = ")
                .push_bind(error.clone());
        }
    }
    q.push(" WHERE id = ")
        .push_bind(id)
        .push(" AND claimed_by = ")
        .push_bind(holder.to_string());
    q
}

/// For [`AlertOutbox::release_orphaned_alerts`].
pub(super) fn release<'a, DB: Dialect>(holder: &str) -> QueryBuilder<'a, DB>
where
    for<'q> DB::Arguments<'q>: Default,
    String: for<'q> Encode<'q, DB> + Type<DB>,
{
    let mut q = QueryBuilder::new(
        "UPDATE alert_outbox SET claimed_by = NULL, claimed_until_ms = NULL WHERE state = 'pending' AND claimed_by = ",
    );
    q.push_bind(holder.to_string());
    q
}

/// For [`AlertOutbox::alert_trouble`]: the counts, then the newest error. Both read only rows not sent, which
/// an index keeps few to read however long the outbox grows.
pub(super) const TROUBLE: &str = "SELECT \
     COALESCE(SUM(CASE WHEN state = 'failed' THEN 1 ELSE 0 END), 0), \
     COALESCE(SUM(CASE WHEN state = 'pending' THEN 1 ELSE 0 END), 0) \
     FROM alert_outbox WHERE state <> 'sent' AND last_error IS NOT NULL";
pub(super) const NEWEST_TROUBLE: &str = "SELECT alert, last_error FROM alert_outbox \
     WHERE state <> 'sent' AND last_error IS NOT NULL ORDER BY id DESC LIMIT 1";
