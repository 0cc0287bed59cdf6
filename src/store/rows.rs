//! Reading events and bookmarks out of result rows, for every backend: the columns each query selects and how
//! a row becomes an [`EventRecord`] or a [`BookmarkRecord`], written once so the backends cannot read a column
//! differently.

use sqlx::{ColumnIndex, Decode, Row, Type};

use super::{BookmarkRecord, BookmarkState, EventRecord, StoreError};

/// An event's columns, from `events e`, as [`event_from_row`] reads them.
pub(crate) const EVENT_COLUMNS: &str = "e.seq, e.event_key, e.id AS event_id, e.type, e.at, e.at_ms, e.received_ms, e.store, e.register, \
     e.cashier, e.txn, e.amount, e.currency, e.reason, e.lines, e.attributes, e.flagged, e.mapped, e.topic, e.signed, e.reused, e.sent_at, e.sent_at_ms";

/// A bookmark's columns, from `bookmarks b`, as [`bookmark_from_row`] reads them.
pub(crate) const BOOKMARK_COLUMNS: &str = "b.id, b.system, b.device, b.camera, b.moment_ms, b.start_ms, b.duration_ms, b.state, \
     b.attempts, b.next_attempt_ms, b.vendor_id, b.last_error, b.made_ms, b.made_as";

/// Every backend's rows decode text, 64-bit integers and booleans, each maybe NULL: what these readers ask.
pub(crate) fn bookmark_from_row<R: Row>(row: &R) -> Result<BookmarkRecord, StoreError>
where
    for<'r> &'r str: ColumnIndex<R>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> bool: Decode<'r, R::Database> + Type<R::Database>,
{
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

pub(crate) fn event_from_row<R: Row>(row: &R) -> Result<EventRecord, StoreError>
where
    for<'r> &'r str: ColumnIndex<R>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> bool: Decode<'r, R::Database> + Type<R::Database>,
{
    let lines: String = row.try_get("lines")?;
    let attributes: String = row.try_get("attributes")?;
    Ok(EventRecord {
        seq: row.try_get("seq")?,
        key: row.try_get("event_key")?,
        id: row.try_get("event_id")?,
        kind: row.try_get("type")?,
        at: row.try_get("at")?,
        at_ms: row.try_get("at_ms")?,
        sent_at: row.try_get("sent_at")?,
        sent_at_ms: row.try_get("sent_at_ms")?,
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
