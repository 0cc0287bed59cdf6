//! The event reads whose SQL is the same on every backend, built once: only the scope condition is each
//! backend's own ([`Dialect::push_scope`]), since each has its own way to keep it fast. The backends run what
//! these build on their own pools.

use sqlx::{Database, Encode, QueryBuilder, Type};

use super::{
    EVENT_COLUMNS, EventQuery, ExceptionFilter, RegisterActivity, StoreScope, severity_condition,
};

/// What a backend adds to the shared reads.
pub(crate) trait Dialect: Database {
    /// Narrows to the events of the stores in `scope`; an empty list matches nothing.
    fn push_scope(q: &mut QueryBuilder<'_, Self>, column: &str, scope: &StoreScope);
}

/// The list's plain filters on `e` (see [`EventQuery`]): its scope, and every field compared by value. The
/// search, the bookmark state and the page's cursor are each backend's own, since each has its own fast way.
pub(crate) fn push_filters<DB: Dialect>(q: &mut QueryBuilder<'_, DB>, query: &EventQuery)
where
    String: for<'q> Encode<'q, DB> + Type<DB>,
    i64: for<'q> Encode<'q, DB> + Type<DB>,
{
    DB::push_scope(q, "e.store", &query.scope);
    let equal = [
        ("e.store", &query.store),
        ("e.register", &query.register),
        ("e.type", &query.kind),
        ("e.cashier", &query.cashier),
        ("e.txn", &query.transaction),
        ("e.currency", &query.currency),
    ];
    for (column, value) in equal {
        if let Some(value) = value {
            q.push(format!(" AND {column} = ")).push_bind(value.clone());
        }
    }
    let bounds = [
        (" AND e.at_ms >= ", query.from_ms),
        (" AND e.at_ms < ", query.to_ms),
        (" AND e.amount >= ", query.min_amount),
        (" AND e.amount <= ", query.max_amount),
    ];
    for (condition, bound) in bounds {
        if let Some(bound) = bound {
            q.push(condition).push_bind(bound);
        }
    }
    if !query.days.is_empty() {
        q.push(" AND (");
        for (i, day) in query.days.iter().enumerate() {
            if i > 0 {
                q.push(" OR ");
            }
            q.push("(e.store = ")
                .push_bind(day.store.clone())
                .push(" AND e.at_ms >= ")
                .push_bind(day.from_ms)
                .push(" AND e.at_ms < ")
                .push_bind(day.to_ms)
                .push(")");
        }
        q.push(")");
    }
    if query.flagged_only {
        q.push(" AND e.flagged = TRUE");
    }
    if let Some(severity) = query.severity {
        q.push(" AND ").push(severity_condition(severity));
    }
    if let Some(case) = query.case {
        q.push(case.condition());
    }
    match &query.exception {
        Some(ExceptionFilter::Any) => {
            q.push(" AND e.seq IN (SELECT event_seq FROM exceptions)");
        }
        Some(ExceptionFilter::Rule(rule)) => {
            q.push(" AND e.seq IN (SELECT event_seq FROM exceptions WHERE rule = ")
                .push_bind(rule.clone())
                .push(")");
        }
        None => {}
    }
    if let Some(seq) = query.stored_before {
        q.push(" AND e.seq < ").push_bind(seq);
    }
}

/// The distinct non-empty values of `column` among the events in `scope` (at `store` when given) at or after
/// `since_ms`, sorted, at most `limit`.
pub(crate) fn seen<'a, DB: Dialect>(
    column: &str,
    scope: &StoreScope,
    store: Option<&str>,
    since_ms: i64,
    limit: i64,
) -> QueryBuilder<'a, DB>
where
    for<'q> DB::Arguments<'q>: Default,
    String: for<'q> Encode<'q, DB> + Type<DB>,
    i64: for<'q> Encode<'q, DB> + Type<DB>,
{
    // Recent events only: the time index bounds the read, and a cashier who left a year ago is not one to offer.
    let mut q = QueryBuilder::new(format!(
        "SELECT DISTINCT e.{column} FROM events e WHERE e.at_ms >= "
    ));
    q.push_bind(since_ms);
    DB::push_scope(&mut q, "e.store", scope);
    if let Some(store) = store {
        q.push(" AND e.store = ").push_bind(store.to_string());
    }
    q.push(format!(
        " AND e.{column} IS NOT NULL AND e.{column} <> '' ORDER BY 1 LIMIT "
    ))
    .push_bind(limit);
    q
}

/// `(cashier, type, count)` of a store's events in `[from_ms, to_ms)`, for [`super::Store::cashier_counts`].
pub(crate) fn cashier_counts<'a, DB: Dialect>(
    scope: &StoreScope,
    store: &str,
    from_ms: i64,
    to_ms: i64,
    stored_before: Option<i64>,
) -> QueryBuilder<'a, DB>
where
    for<'q> DB::Arguments<'q>: Default,
    String: for<'q> Encode<'q, DB> + Type<DB>,
    i64: for<'q> Encode<'q, DB> + Type<DB>,
{
    let mut q =
        QueryBuilder::new("SELECT e.cashier, e.type, COUNT(*) FROM events e WHERE e.store = ");
    q.push_bind(store.to_string())
        .push(" AND e.at_ms >= ")
        .push_bind(from_ms)
        .push(" AND e.at_ms < ")
        .push_bind(to_ms)
        .push(" AND e.cashier IS NOT NULL");
    if let Some(seq) = stored_before {
        q.push(" AND e.seq < ").push_bind(seq);
    }
    DB::push_scope(&mut q, "e.store", scope);
    q.push(" GROUP BY e.cashier, e.type ORDER BY e.cashier, e.type");
    q
}

/// One register's events, for [`super::Store::register_activity`]: in the order `r` asks, which the caller
/// turns oldest first.
pub(crate) fn register_activity<'a, DB: Dialect>(r: &RegisterActivity<'_>) -> QueryBuilder<'a, DB>
where
    for<'q> DB::Arguments<'q>: Default,
    String: for<'q> Encode<'q, DB> + Type<DB>,
    i64: for<'q> Encode<'q, DB> + Type<DB>,
{
    let mut q = QueryBuilder::new(format!(
        "SELECT {EVENT_COLUMNS} FROM events e WHERE e.store = "
    ));
    q.push_bind(r.store.to_string())
        .push(" AND e.register = ")
        .push_bind(r.register.to_string())
        .push(" AND e.at_ms >= ")
        .push_bind(r.from_ms)
        .push(" AND e.at_ms < ")
        .push_bind(r.to_ms);
    DB::push_scope(&mut q, "e.store", r.scope);
    if !r.types.is_empty() {
        let mut types = q.push(" AND e.type IN (").separated(", ");
        for t in r.types {
            types.push_bind(t.to_string());
        }
        types.push_unseparated(")");
    }
    let order = if r.newest_first { "DESC" } else { "ASC" };
    q.push(format!(" ORDER BY e.at_ms {order}, e.seq {order} LIMIT "))
        .push_bind(r.limit.max(1));
    q
}

/// One event by its sequence number, if in `scope`.
pub(crate) fn event<'a, DB: Dialect>(seq: i64, scope: &StoreScope) -> QueryBuilder<'a, DB>
where
    for<'q> DB::Arguments<'q>: Default,
    i64: for<'q> Encode<'q, DB> + Type<DB>,
{
    let mut q = QueryBuilder::new(format!(
        "SELECT {EVENT_COLUMNS} FROM events e WHERE e.seq = "
    ));
    q.push_bind(seq);
    DB::push_scope(&mut q, "e.store", scope);
    q
}

/// A register's newest `limit` events' `(at_ms, sent_at_ms, received_ms)`, for
/// [`super::Store::register_timings`].
pub(crate) fn register_timings<'a, DB: Dialect>(
    scope: &StoreScope,
    store: &str,
    register: &str,
    limit: i64,
) -> QueryBuilder<'a, DB>
where
    for<'q> DB::Arguments<'q>: Default,
    String: for<'q> Encode<'q, DB> + Type<DB>,
    i64: for<'q> Encode<'q, DB> + Type<DB>,
{
    let mut q = QueryBuilder::new(
        "SELECT e.at_ms, e.sent_at_ms, e.received_ms FROM events e WHERE e.store = ",
    );
    q.push_bind(store.to_string())
        .push(" AND e.register = ")
        .push_bind(register.to_string());
    DB::push_scope(&mut q, "e.store", scope);
    q.push(" ORDER BY e.at_ms DESC LIMIT ").push_bind(limit);
    q
}
