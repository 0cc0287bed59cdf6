//! What an event looks like outside the store: the contract's fields, when it was received, and its bookmarks
//! with state, reason and the links that open the footage. Shared by the JSON API and the pages.

use chrono::{TimeZone, Utc};
use serde::Serialize;

use crate::camera::{FootageLink, Integrations, footage_links};
use crate::config::Config;
use crate::store::{BookmarkRecord, EventRecord};

/// The stored event (its fields flattened into the JSON) plus what a reader needs besides.
#[derive(Debug, Serialize)]
pub struct EventView {
    #[serde(flatten)]
    pub event: EventRecord,
    pub received_at: String,
    /// Received minus register time: how far the register's clock (or the network) is behind.
    pub skew_ms: i64,
    /// No camera watches this register (or the store is not in the config).
    pub unmapped: bool,
    pub bookmarks: Vec<BookmarkView>,
}

/// A stored bookmark (flattened) with its times as text and the links that open its footage.
#[derive(Debug, Serialize)]
pub struct BookmarkView {
    #[serde(flatten)]
    pub bookmark: BookmarkRecord,
    pub start: String,
    pub next_attempt: Option<String>,
    pub made_at: Option<String>,
    pub footage: Vec<FootageLink>,
    /// Where tillmark serves a still of the camera at the moment, when the vendor offers one.
    pub thumbnail: Option<String>,
}

pub fn iso_utc(ms: i64) -> String {
    Utc.timestamp_millis_opt(ms)
        .single()
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

fn bookmark_view(
    config: &Config,
    integrations: &Integrations,
    seq: i64,
    b: BookmarkRecord,
) -> BookmarkView {
    let system = config.camera_system(&b.system);
    let footage = system
        .map(|sys| footage_links(sys, integrations, &b.device, b.start_ms))
        .unwrap_or_default();
    let thumbnail = system
        .and_then(|sys| integrations.get(sys.integration.name()))
        .filter(|def| def.thumbnail.is_some())
        .map(|_| format!("/events/{seq}/bookmarks/{}/thumbnail", b.id));
    BookmarkView {
        thumbnail,
        start: iso_utc(b.start_ms),
        next_attempt: b.next_attempt_ms.map(iso_utc),
        made_at: b.made_ms.map(iso_utc),
        footage,
        bookmark: b,
    }
}

pub fn event_view(config: &Config, integrations: &Integrations, mut e: EventRecord) -> EventView {
    let bookmarks = std::mem::take(&mut e.bookmarks)
        .into_iter()
        .map(|b| bookmark_view(config, integrations, e.seq, b))
        .collect();
    EventView {
        received_at: iso_utc(e.received_ms),
        skew_ms: e.received_ms - e.at_ms,
        unmapped: !e.mapped,
        bookmarks,
        event: e,
    }
}
