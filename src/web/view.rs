//! What an event looks like outside the store: the contract's fields, when it was received, and its bookmarks
//! with state, reason and the links that open the footage. Shared by the JSON API and the pages.

use chrono::{TimeZone, Utc};
use serde::Serialize;

use crate::camera::{FootageLink, footage_links};
use crate::config::Config;
use crate::store::{BookmarkRecord, BookmarkState, EventRecord};

#[derive(Debug, Serialize)]
pub struct EventView {
    pub seq: i64,
    pub key: String,
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub at: String,
    pub store: String,
    pub register: String,
    pub cashier: Option<String>,
    pub transaction: Option<String>,
    pub amount: Option<i64>,
    pub currency: Option<String>,
    pub reason: Option<String>,
    pub lines: Vec<String>,
    pub attributes: serde_json::Map<String, serde_json::Value>,
    pub received_at: String,
    /// Received minus register time: how far the register's clock (or the network) is behind.
    pub skew_ms: i64,
    pub flagged: bool,
    /// No camera watches this register (or the store is not in the config).
    pub unmapped: bool,
    pub bookmarks: Vec<BookmarkView>,
}

#[derive(Debug, Serialize)]
pub struct BookmarkView {
    pub system: String,
    pub device: String,
    pub camera: String,
    pub start_ms: i64,
    pub start: String,
    pub duration_ms: i64,
    pub state: BookmarkState,
    pub attempts: i64,
    pub next_attempt: Option<String>,
    pub vendor_id: Option<String>,
    pub error: Option<String>,
    pub made_at: Option<String>,
    pub footage: Vec<FootageLink>,
}

pub fn iso_utc(ms: i64) -> String {
    Utc.timestamp_millis_opt(ms)
        .single()
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

fn bookmark_view(config: &Config, b: BookmarkRecord) -> BookmarkView {
    let footage = config
        .camera_system(&b.system)
        .map(|sys| footage_links(sys, &b.device, b.start_ms))
        .unwrap_or_default();
    BookmarkView {
        start: iso_utc(b.start_ms),
        next_attempt: b.next_attempt_ms.map(iso_utc),
        made_at: b.made_ms.map(iso_utc),
        error: b.last_error,
        system: b.system,
        device: b.device,
        camera: b.camera,
        start_ms: b.start_ms,
        duration_ms: b.duration_ms,
        state: b.state,
        attempts: b.attempts,
        vendor_id: b.vendor_id,
        footage,
    }
}

pub fn event_view(config: &Config, e: EventRecord) -> EventView {
    EventView {
        received_at: iso_utc(e.received_ms),
        skew_ms: e.received_ms - e.at_ms,
        unmapped: !e.mapped,
        bookmarks: e
            .bookmarks
            .into_iter()
            .map(|b| bookmark_view(config, b))
            .collect(),
        seq: e.seq,
        key: e.key,
        id: e.id,
        kind: e.kind,
        at: e.at,
        store: e.store,
        register: e.register,
        cashier: e.cashier,
        transaction: e.transaction,
        amount: e.amount,
        currency: e.currency,
        reason: e.reason,
        lines: e.lines,
        attributes: e.attributes,
        flagged: e.flagged,
    }
}
