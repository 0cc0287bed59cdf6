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
    pub footage: Vec<Footage>,
    /// Where tillmark serves a still of the camera at the moment, when the vendor offers one.
    pub thumbnail: Option<String>,
}

/// A footage link and tillmark's own address for it, which notes the opening in the audit log and then
/// opens `url`: the pages link there, never to the vendor directly.
#[derive(Debug, Clone, Serialize)]
pub struct Footage {
    #[serde(flatten)]
    pub link: FootageLink,
    pub href: String,
}

/// The links of one event numbered as `/events/{seq}/footage/{n}` finds them again.
pub fn numbered(seq: i64, first: usize, links: Vec<FootageLink>) -> Vec<Footage> {
    links
        .into_iter()
        .enumerate()
        .map(|(i, link)| Footage {
            href: format!("/events/{seq}/footage/{}", first + i),
            link,
        })
        .collect()
}

/// Every footage link of an event, in the order the pages number them: each bookmark's, or when it has none,
/// those of every camera watching its register at its moment (a drawer open is not bookmarked by default,
/// yet an investigator must see it).
pub fn event_footage(
    config: &Config,
    integrations: &Integrations,
    e: &EventRecord,
) -> Vec<FootageLink> {
    if !e.bookmarks.is_empty() {
        return e
            .bookmarks
            .iter()
            .flat_map(|b| bookmark_footage(config, integrations, b))
            .collect();
    }
    config
        .cameras
        .iter()
        .filter(|c| c.watches(&e.store, &e.register))
        .filter_map(|c| {
            let start = e.at_ms + c.offset.0 - c.pre_roll.0;
            config
                .camera_system(&c.system)
                .map(|sys| footage_links(sys, integrations, &c.device, start))
        })
        .flatten()
        .collect()
}

fn bookmark_footage(
    config: &Config,
    integrations: &Integrations,
    b: &BookmarkRecord,
) -> Vec<FootageLink> {
    config
        .camera_system(&b.system)
        .map(|sys| footage_links(sys, integrations, &b.device, b.start_ms))
        .unwrap_or_default()
}

pub fn iso_utc(ms: i64) -> String {
    Utc.timestamp_millis_opt(ms)
        .single()
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

/// `first`: the number of the bookmark's first footage link among its event's.
fn bookmark_view(
    config: &Config,
    integrations: &Integrations,
    seq: i64,
    first: usize,
    b: BookmarkRecord,
) -> BookmarkView {
    let footage = numbered(seq, first, bookmark_footage(config, integrations, &b));
    let thumbnail = config
        .camera_system(&b.system)
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
    let mut first = 0;
    let bookmarks = std::mem::take(&mut e.bookmarks)
        .into_iter()
        .map(|b| {
            let view = bookmark_view(config, integrations, e.seq, first, b);
            first += view.footage.len();
            view
        })
        .collect();
    EventView {
        received_at: iso_utc(e.received_ms),
        skew_ms: e.received_ms - e.at_ms,
        unmapped: !e.mapped,
        bookmarks,
        event: e,
    }
}
