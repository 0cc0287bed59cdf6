//! What an event looks like outside the store: the contract's fields, when it was received, and its bookmarks
//! with state, reason and the links that open the footage. Shared by the JSON API and the pages.

use chrono::{TimeZone, Utc};
use serde::Serialize;

use crate::camera::{FootageLink, Integrations, footage_links};
use crate::config::Config;
use crate::event::{Severity, Timing, timing};
use crate::ingest::bookmark_for;
use crate::store::{BookmarkRecord, EventRecord};

/// The stored event (its fields flattened into the JSON) plus what a reader needs besides.
#[derive(Debug, Serialize)]
pub struct EventView {
    #[serde(flatten)]
    pub event: EventRecord,
    pub received_at: String,
    /// Received minus register time: the register's clock skew when it arrived live, else how late it was
    /// (`arrival` tells which).
    pub skew_ms: i64,
    /// Whether it arrived live (and so measures the register's clock) or late, and why.
    pub arrival: Timing,
    /// How much it asks for a look: its type's, a drawer open's only while nothing explains it.
    pub severity: Severity,
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
    /// The camera it shows, by its name in the config (its device id when the config no longer has it): what
    /// a person knows it by, where `label` is only the kind of link (the vendor's client, the web viewer).
    pub camera: String,
}

/// One camera's footage of an event: the pages show it as a button per link, named by the camera.
#[derive(Debug, Clone, Serialize)]
pub struct CameraFootage {
    pub camera: String,
    /// Where tillmark serves a still of the camera at the moment, when its bookmark's vendor offers one.
    pub thumbnail: Option<String>,
    pub links: Vec<Footage>,
}

/// The links of one event numbered as `/events/{seq}/footage/{n}` finds them again.
pub fn numbered(seq: i64, first: usize, camera: &str, links: Vec<FootageLink>) -> Vec<Footage> {
    links
        .into_iter()
        .enumerate()
        .map(|(i, link)| Footage {
            href: format!("/events/{seq}/footage/{}", first + i),
            camera: camera.to_string(),
            link,
        })
        .collect()
}

/// What a person calls a camera: its name in the config, found by system and device; else the name it had
/// when bookmarked; else its device id.
pub fn camera_name(config: &Config, system: &str, device: &str, recorded: Option<&str>) -> String {
    config
        .cameras
        .iter()
        .find(|c| c.system == system && c.device == device)
        .map(|c| c.name.as_str())
        .or(recorded)
        .filter(|n| !n.trim().is_empty())
        .unwrap_or(device)
        .to_string()
}

/// One camera's links before they are numbered.
struct CameraLinks {
    camera: String,
    thumbnail: Option<String>,
    links: Vec<FootageLink>,
}

/// The footage of an event camera by camera, in the order the pages number the links: each bookmark's, or
/// when it has none, those of every camera watching its register at its moment (a drawer open is not
/// bookmarked by default, yet an investigator must see it).
fn camera_links(config: &Config, integrations: &Integrations, e: &EventRecord) -> Vec<CameraLinks> {
    if !e.bookmarks.is_empty() {
        return e
            .bookmarks
            .iter()
            .map(|b| CameraLinks {
                camera: camera_name(config, &b.system, &b.device, Some(&b.camera)),
                thumbnail: thumbnail_href(config, integrations, e.seq, b),
                links: bookmark_footage(config, integrations, b),
            })
            .collect();
    }
    config
        .cameras
        .iter()
        .filter(|c| c.watches(&e.store, &e.register))
        .filter_map(|c| {
            // Where its bookmark would have started, by the plan's own rule.
            let start = bookmark_for(c, e.at_ms).start_ms;
            config.camera_system(&c.system).map(|sys| CameraLinks {
                camera: camera_name(config, &c.system, &c.device, None),
                thumbnail: None,
                links: footage_links(sys, integrations, &c.device, start),
            })
        })
        .collect()
}

/// Every footage link of an event, in the order the pages number them (see [`event_cameras`]).
pub fn event_footage(
    config: &Config,
    integrations: &Integrations,
    e: &EventRecord,
) -> Vec<FootageLink> {
    camera_links(config, integrations, e)
        .into_iter()
        .flat_map(|c| c.links)
        .collect()
}

/// Every camera with footage of an event, its links numbered as `/events/{seq}/footage/{n}` finds them.
/// A camera whose system offers neither a link nor a still is left out: there is nothing to show.
pub fn event_cameras(
    config: &Config,
    integrations: &Integrations,
    e: &EventRecord,
) -> Vec<CameraFootage> {
    let mut first = 0;
    camera_links(config, integrations, e)
        .into_iter()
        .filter_map(|c| {
            let count = c.links.len();
            let links = numbered(e.seq, first, &c.camera, c.links);
            first += count;
            (count > 0 || c.thumbnail.is_some()).then_some(CameraFootage {
                camera: c.camera,
                thumbnail: c.thumbnail,
                links,
            })
        })
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

fn thumbnail_href(
    config: &Config,
    integrations: &Integrations,
    seq: i64,
    b: &BookmarkRecord,
) -> Option<String> {
    config
        .camera_system(&b.system)
        .and_then(|sys| integrations.get(sys.integration.name()))
        .filter(|def| def.thumbnail.is_some())
        .map(|_| format!("/events/{seq}/bookmarks/{}/thumbnail", b.id))
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
    let camera = camera_name(config, &b.system, &b.device, Some(&b.camera));
    let footage = numbered(
        seq,
        first,
        &camera,
        bookmark_footage(config, integrations, &b),
    );
    let thumbnail = thumbnail_href(config, integrations, seq, &b);
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
        arrival: timing(e.at_ms, e.sent_at_ms, e.received_ms),
        severity: Severity::of(&e.kind, e.flagged),
        unmapped: !e.mapped,
        bookmarks,
        event: e,
    }
}
