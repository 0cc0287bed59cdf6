//! Exceptions: what the `[[rules]]` found (see [`crate::rules`]), and the backlog of events the rules have not
//! looked at yet.
//!
//! Invariants every backend keeps:
//! - Every stored event joins the backlog in the transaction that stores it (a trigger does it), and leaves it
//!   only in the transaction that records what the rules found for it: a crash between the two evaluates it
//!   again, never skips it.
//! - An exception is unique by (rule, event): evaluating an event twice (two daemons, a restart) changes
//!   nothing, and neither do the bookmark rows a rule asks for, unique by (event, camera) as ingest's are.
//! - Every read of exceptions takes the reader's [`StoreScope`], applied in the query, like the events.

use async_trait::async_trait;
use serde::Serialize;
use sqlx::{Encode, QueryBuilder, Type};

use super::reads::Dialect;
use super::{EVENT_COLUMNS, EventRecord, NewBookmark, StoreError, StoreScope};
use crate::event::Severity;

/// An exception a rule found, to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewException {
    pub rule: String,
    pub event_seq: i64,
    pub severity: Severity,
    /// Why it matched, from the rule and numbers only: kept beside events that retention may erase names from.
    pub why: String,
}

/// What one step of the evaluator writes, in one transaction.
#[derive(Debug, Clone, Default)]
pub struct RuleResults {
    /// The events looked at: they leave the backlog.
    pub looked_at: Vec<i64>,
    pub found: Vec<NewException>,
    /// Bookmarks that `bookmark = true` rules ask for, `(event, bookmark)`, due at once.
    pub bookmarks: Vec<(i64, NewBookmark)>,
}

/// An exception as listed: the rule's finding with its event's place and moment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExceptionRecord {
    pub rule: String,
    pub event_seq: i64,
    pub severity: String,
    pub why: String,
    pub found_ms: i64,
    pub store: String,
    pub register: String,
    #[serde(rename = "type")]
    pub kind: String,
    /// The event's moment as the register sent it, and in milliseconds.
    pub at: String,
    pub at_ms: i64,
    pub amount: Option<i64>,
    pub currency: Option<String>,
}

/// Filters of the exceptions list; every field narrows, `None` does not.
#[derive(Debug, Clone, Default)]
pub struct ExceptionQuery {
    /// Whose stores: applied before every other filter.
    pub scope: StoreScope,
    pub rule: Option<String>,
    pub store: Option<String>,
    /// Only exceptions of this severity or above.
    pub severity: Option<Severity>,
    /// Only the exceptions of this event.
    pub event_seq: Option<i64>,
    pub from_ms: Option<i64>,
    pub to_ms: Option<i64>,
    /// Only exceptions older than this one (by the event's time, then sequence, then rule): the next page.
    pub before: Option<(i64, i64, String)>,
    pub limit: i64,
}

/// Which events the event list keeps by their exceptions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExceptionFilter {
    /// Any event some rule matched.
    Any,
    /// The events this rule matched.
    Rule(String),
}

impl ExceptionFilter {
    /// `any`, or a rule id.
    pub fn parse(text: &str) -> Option<ExceptionFilter> {
        match text.trim() {
            "" => None,
            "any" => Some(ExceptionFilter::Any),
            rule => Some(ExceptionFilter::Rule(rule.to_string())),
        }
    }
}

/// The severities at or above `severity`, as stored.
pub(super) fn severities_from(severity: Severity) -> &'static [&'static str] {
    match severity {
        Severity::Low => &["low", "medium", "high"],
        Severity::Medium => &["medium", "high"],
        Severity::High => &["high"],
    }
}

/// The columns [`ExceptionRecord`] is read from, over `exceptions x JOIN events e`.
pub(super) const EXCEPTION_COLUMNS: &str = "x.rule, x.event_seq, x.severity, x.why, x.found_ms, e.store, \
     e.register, e.type, e.at, e.at_ms, e.amount, e.currency";

#[derive(sqlx::FromRow)]
pub(super) struct ExceptionRow {
    rule: String,
    event_seq: i64,
    severity: String,
    why: String,
    found_ms: i64,
    store: String,
    register: String,
    #[sqlx(rename = "type")]
    kind: String,
    at: String,
    at_ms: i64,
    amount: Option<i64>,
    currency: Option<String>,
}

impl From<ExceptionRow> for ExceptionRecord {
    fn from(r: ExceptionRow) -> ExceptionRecord {
        ExceptionRecord {
            rule: r.rule,
            event_seq: r.event_seq,
            severity: r.severity,
            why: r.why,
            found_ms: r.found_ms,
            store: r.store,
            register: r.register,
            kind: r.kind,
            at: r.at,
            at_ms: r.at_ms,
            amount: r.amount,
            currency: r.currency,
        }
    }
}

#[async_trait]
pub trait Exceptions: Send + Sync {
    /// Up to `limit` events of the backlog received at or before `received_by_ms`, by sequence number.
    async fn rule_backlog(
        &self,
        received_by_ms: i64,
        limit: i64,
    ) -> Result<Vec<EventRecord>, StoreError>;

    /// Records one step's results in one transaction: the exceptions (one already recorded stays as it was),
    /// the bookmark rows, and the events looked at leaving the backlog. Returns how many exceptions are new.
    async fn record_rule_results(
        &self,
        results: &RuleResults,
        now_ms: i64,
    ) -> Result<u64, StoreError>;

    /// Events with `at >= since_ms` and a sequence number above `after_seq`, by sequence number, at most
    /// `limit`: what `tillmark rules test` walks, in the order they were stored.
    async fn events_stored_since(
        &self,
        since_ms: i64,
        after_seq: i64,
        limit: i64,
    ) -> Result<Vec<EventRecord>, StoreError>;

    /// Exceptions newest event first (then by sequence and rule).
    async fn exceptions(&self, query: &ExceptionQuery) -> Result<Vec<ExceptionRecord>, StoreError>;

    /// How many exceptions each rule has in `scope` among events at or after `since_ms`, by rule id.
    async fn exception_counts(
        &self,
        scope: &StoreScope,
        since_ms: i64,
    ) -> Result<Vec<(String, i64)>, StoreError>;
}

/// The exceptions list's query, for [`Exceptions::exceptions`].
pub(super) fn list<'a, DB: Dialect>(query: &ExceptionQuery) -> QueryBuilder<'a, DB>
where
    for<'q> DB::Arguments<'q>: Default,
    String: for<'q> Encode<'q, DB> + Type<DB>,
    i64: for<'q> Encode<'q, DB> + Type<DB>,
{
    let mut q = QueryBuilder::new(format!(
        "SELECT {EXCEPTION_COLUMNS} FROM exceptions x JOIN events e ON e.seq = x.event_seq WHERE 1 = 1"
    ));
    DB::push_scope(&mut q, "e.store", &query.scope);
    for (column, value) in [("x.rule", &query.rule), ("e.store", &query.store)] {
        if let Some(value) = value {
            q.push(format!(" AND {column} = ")).push_bind(value.clone());
        }
    }
    if let Some(severity) = query.severity {
        let mut list = q.push(" AND x.severity IN (").separated(", ");
        for s in severities_from(severity) {
            list.push_bind(s.to_string());
        }
        list.push_unseparated(")");
    }
    let bounds = [
        (" AND x.event_seq = ", query.event_seq),
        (" AND e.at_ms >= ", query.from_ms),
        (" AND e.at_ms < ", query.to_ms),
    ];
    for (condition, bound) in bounds {
        if let Some(bound) = bound {
            q.push(condition).push_bind(bound);
        }
    }
    if let Some((at_ms, seq, rule)) = &query.before {
        q.push(" AND (e.at_ms < ")
            .push_bind(*at_ms)
            .push(" OR (e.at_ms = ")
            .push_bind(*at_ms)
            .push(" AND (x.event_seq < ")
            .push_bind(*seq)
            .push(" OR (x.event_seq = ")
            .push_bind(*seq)
            .push(" AND x.rule < ")
            .push_bind(rule.clone())
            .push("))))");
    }
    q.push(" ORDER BY e.at_ms DESC, x.event_seq DESC, x.rule DESC LIMIT ")
        .push_bind(query.limit.clamp(1, 1000));
    q
}

/// Each rule's count, for [`Exceptions::exception_counts`].
pub(super) fn counts<'a, DB: Dialect>(scope: &StoreScope, since_ms: i64) -> QueryBuilder<'a, DB>
where
    for<'q> DB::Arguments<'q>: Default,
    String: for<'q> Encode<'q, DB> + Type<DB>,
    i64: for<'q> Encode<'q, DB> + Type<DB>,
{
    let mut q = QueryBuilder::new(
        "SELECT x.rule, COUNT(*) FROM exceptions x JOIN events e ON e.seq = x.event_seq WHERE e.at_ms >= ",
    );
    q.push_bind(since_ms);
    DB::push_scope(&mut q, "e.store", scope);
    q.push(" GROUP BY x.rule ORDER BY x.rule");
    q
}

/// The backlog's oldest events, for [`Exceptions::rule_backlog`].
pub(super) fn backlog<'a, DB: Dialect>(received_by_ms: i64, limit: i64) -> QueryBuilder<'a, DB>
where
    for<'q> DB::Arguments<'q>: Default,
    i64: for<'q> Encode<'q, DB> + Type<DB>,
{
    let mut q = QueryBuilder::new(format!(
        "SELECT {EVENT_COLUMNS} FROM rule_backlog r JOIN events e ON e.seq = r.event_seq WHERE e.received_ms <= "
    ));
    q.push_bind(received_by_ms)
        .push(" ORDER BY r.event_seq LIMIT ")
        .push_bind(limit.max(1));
    q
}

/// Events in the order stored, for [`Exceptions::events_stored_since`].
pub(super) fn stored_since<'a, DB: Dialect>(
    since_ms: i64,
    after_seq: i64,
    limit: i64,
) -> QueryBuilder<'a, DB>
where
    for<'q> DB::Arguments<'q>: Default,
    i64: for<'q> Encode<'q, DB> + Type<DB>,
{
    let mut q = QueryBuilder::new(format!(
        "SELECT {EVENT_COLUMNS} FROM events e WHERE e.seq > "
    ));
    q.push_bind(after_seq)
        .push(" AND e.at_ms >= ")
        .push_bind(since_ms)
        .push(" ORDER BY e.seq LIMIT ")
        .push_bind(limit.max(1));
    q
}

/// The statements of [`Exceptions::record_rule_results`], in order; `None` where there is nothing to write.
pub(super) fn result_statements<'a, DB: Dialect>(
    results: &'a RuleResults,
    now_ms: i64,
) -> [Option<QueryBuilder<'a, DB>>; 2]
where
    for<'q> DB::Arguments<'q>: Default,
    String: for<'q> Encode<'q, DB> + Type<DB>,
    i64: for<'q> Encode<'q, DB> + Type<DB>,
{
    let found = (!results.found.is_empty()).then(|| {
        let mut q =
            QueryBuilder::new("INSERT INTO exceptions (rule, event_seq, severity, why, found_ms) ");
        q.push_values(&results.found, |mut row, x| {
            row.push_bind(x.rule.clone())
                .push_bind(x.event_seq)
                .push_bind(x.severity.as_str().to_string())
                .push_bind(x.why.clone())
                .push_bind(now_ms);
        });
        q.push(" ON CONFLICT (rule, event_seq) DO NOTHING");
        q
    });
    let done = (!results.looked_at.is_empty()).then(|| {
        let mut q = QueryBuilder::new("DELETE FROM rule_backlog WHERE event_seq IN (");
        let mut list = q.separated(", ");
        for seq in &results.looked_at {
            list.push_bind(*seq);
        }
        list.push_unseparated(")");
        q
    });
    [found, done]
}
