//! Evidence packages: one case as a single signed ZIP, for whoever must rely on it later (head office, the
//! police, a court). It owns what goes in and the guarantees around it:
//!
//! - Inside: the case and its full history (`case.json`); the event as the index shows it, receipt lines and
//!   all (`events/{seq}.json`); the register's shortage timeline around it (`timeline.csv`); each bookmark
//!   with its camera, window, vendor id and footage links (`bookmarks/{id}.json`); the camera's still at the
//!   moment where the vendor serves one (`stills/`), and the clip of the window where the camera system
//!   exports one (`clips/`, see `[clip]` in the definitions), else its link and window only.
//! - `manifest.json` lists every file with its size and SHA-256 and is signed with the installation's Ed25519
//!   key ([`key`]); [`verify`] checks all of it and names each file that fails.
//! - Nothing secret goes in: footage links are the vendor's own deep links (rendered without credentials) and
//!   tillmark's audited `/events/{seq}/footage/{n}`; stills and clips are fetched server-side with the camera
//!   system's credentials, which stay there. Card numbers were masked before the event was stored.
//! - Only a case the person may see, by the store scope applied in the store's reads.
//! - Every package handed out is in the audit log with its manifest's SHA-256, recorded before it is handed
//!   out: when the log cannot record it, nobody gets it.

pub mod key;
mod package;

use std::collections::BTreeMap;
use std::io::{Seek, Write};

use serde_json::json;

use crate::camera::{Cameras, ClipOutcome, Integrations};
use crate::config::Config;
use crate::retention::Actor;
use crate::store::{
    BookmarkRecord, EventRecord, Job, NewAuditEntry, Store, StoreError, StoreScope,
};
use crate::web::{TimelineSpan, audit_target, event_view, iso_utc, timeline_csv};
pub use key::{EvidenceKey, PublicKey};
use package::Writer;
pub use package::{Entry, FORMAT, MANIFEST, Manifest, SIGNATURE, Verified, verify};

/// How far the timeline in a package reaches either side of the event: a shift's worth.
const TIMELINE_SPAN_MS: i64 = 6 * 3_600_000;

/// What a package is made from: the daemon's parts, or those a command builds.
pub struct Sources<'a> {
    pub store: &'a dyn Store,
    pub config: &'a Config,
    pub integrations: &'a Integrations,
    pub cameras: &'a Cameras,
}

#[derive(Debug, thiserror::Error)]
pub enum EvidenceError {
    /// No such event, or not in the reader's stores: the same answer.
    #[error("no event {0}")]
    NoEvent(i64),
    #[error("event {0} has no case: flag it first")]
    NoCase(i64),
    #[error("the evidence key: {0}")]
    Key(String),
    #[error("cannot write the package: {0}")]
    Write(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(
        "the package was made, but the audit log could not record it, so it is not handed out: {0}"
    )]
    Audit(StoreError),
}

/// A made package.
pub struct Exported<W> {
    /// Where it was written.
    pub out: W,
    pub manifest_sha256: String,
    /// Files listed in the manifest.
    pub files: usize,
    /// The signing key's fingerprint.
    pub fingerprint: String,
    /// A file name for it: `evidence-event-{seq}.zip`.
    pub name: String,
}

/// A file's name in a package for a content type, by its kind (`image/png` → `png`).
fn image_extension(content_type: &str) -> &'static str {
    match content_type.split(';').next().unwrap_or("").trim() {
        "image/png" => "png",
        "image/jpeg" => "jpg",
        "image/webp" => "webp",
        "image/gif" => "gif",
        _ => "img",
    }
}

/// One bookmark's entry, its still and its clip, written to the package.
async fn bookmark<W: Write + Seek>(
    src: &Sources<'_>,
    event: &EventRecord,
    b: &BookmarkRecord,
    footage: serde_json::Value,
    package: &mut Writer<W>,
) -> Result<(), EvidenceError> {
    let job = Job {
        bookmark: b.clone(),
        maybe_created: false,
        event: event.clone(),
    };
    let system = src.cameras.get(&b.system);
    let (mut still, mut still_note) = (None, None);
    let (mut clip, mut clip_note) = (None, None);
    match system {
        None => {
            let gone = format!(
                "camera system {} is not in the config: link and window only",
                b.system
            );
            still_note = Some(gone.clone());
            clip_note = Some(gone);
        }
        Some(system) => {
            match system.thumbnail(&job).await {
                Ok(Some(image)) => {
                    let path = format!("stills/{}.{}", b.id, image_extension(&image.content_type));
                    package
                        .add(&path, &image.bytes)
                        .map_err(EvidenceError::Write)?;
                    still = Some(path);
                }
                Ok(None) => {}
                Err(e) => still_note = Some(format!("no still: {e}")),
            }
            match system.clip(&job).await {
                ClipOutcome::Downloaded(file) => {
                    let path = format!("clips/{}.{}", b.id, file.extension);
                    package
                        .add(&path, &file.bytes)
                        .map_err(EvidenceError::Write)?;
                    clip = Some(path);
                }
                ClipOutcome::NotOffered => {
                    clip_note = Some(
                        "the camera system offers no clip export: link and window only".into(),
                    );
                }
                ClipOutcome::TooLarge { limit } => {
                    // In decimal megabytes, as the limit is usually written (`500MB`).
                    clip_note = Some(format!(
                        "clip over {} MB: link and window only",
                        limit.0 as f64 / 1e6
                    ));
                }
                ClipOutcome::Failed(why) => {
                    clip_note = Some(format!("no clip ({why}): link and window only"));
                }
            }
        }
    }
    let end_ms = b.start_ms + b.duration_ms;
    let entry = json!({
        "id": b.id,
        "camera": crate::web::camera_name(src.config, &b.system, &b.device, Some(&b.camera)),
        "system": b.system,
        "device": b.device,
        "window": {
            "start": iso_utc(b.start_ms),
            "end": iso_utc(end_ms),
            "moment": iso_utc(b.moment_ms),
            "start_ms": b.start_ms,
            "end_ms": end_ms,
            "moment_ms": b.moment_ms,
        },
        "state": b.state,
        "vendor_id": b.vendor_id,
        "made_at": b.made_ms.map(iso_utc),
        "made_as": b.made_as,
        "footage": footage,
        "still": still,
        "still_note": still_note,
        "clip": clip,
        "clip_note": clip_note,
    });
    package
        .add(&format!("bookmarks/{}.json", b.id), &json_file(&entry))
        .map_err(EvidenceError::Write)
}

/// Pretty JSON with a final newline, as every JSON file of a package is written.
fn json_file(value: &impl serde::Serialize) -> Vec<u8> {
    let mut bytes = serde_json::to_vec_pretty(value).unwrap_or_default();
    bytes.push(b'\n');
    bytes
}

/// Writes the package of event `seq`'s case to `out` for `actor`, who sees `scope`, and records it in the
/// audit log. On an error what is in `out` is no package: the caller throws it away.
pub async fn export<W: Write + Seek>(
    src: &Sources<'_>,
    seq: i64,
    scope: &StoreScope,
    actor: &Actor,
    now_ms: i64,
    out: W,
) -> Result<Exported<W>, EvidenceError> {
    let event = src
        .store
        .event(seq, scope)
        .await?
        .ok_or(EvidenceError::NoEvent(seq))?;
    let case = src
        .store
        .case(seq, scope)
        .await?
        .ok_or(EvidenceError::NoCase(seq))?;
    let mut package = Writer::new(out);
    let write = EvidenceError::Write;
    package
        .add(
            "case.json",
            &json_file(&json!({ "event": seq, "case": case })),
        )
        .map_err(write)?;
    let view = event_view(src.config, src.integrations, event.clone());
    let footage: BTreeMap<i64, serde_json::Value> = view
        .bookmarks
        .iter()
        .map(|b| {
            let links = b
                .footage
                .iter()
                .map(|f| json!({ "label": f.link.label, "url": f.link.url, "index_path": f.href }))
                .collect();
            (b.bookmark.id, serde_json::Value::Array(links))
        })
        .collect();
    package
        .add(&format!("events/{seq}.json"), &json_file(&view))
        .map_err(write)?;
    let span = TimelineSpan {
        scope,
        store: &event.store,
        register: &event.register,
        from_ms: event.at_ms - TIMELINE_SPAN_MS,
        to_ms: event.at_ms + TIMELINE_SPAN_MS,
    };
    let (csv, _) = timeline_csv(src.store, src.config, src.integrations, &span).await?;
    package.add("timeline.csv", csv.as_bytes()).map_err(write)?;
    for b in &event.bookmarks {
        let links = footage.get(&b.id).cloned().unwrap_or_default();
        bookmark(src, &event, b, links, &mut package).await?;
    }
    let key = EvidenceKey::of(src.store).await?;
    let public = key.public();
    let head = Manifest {
        format: FORMAT.to_string(),
        event: seq,
        made_at: iso_utc(now_ms),
        made_by: actor.name.clone(),
        public_key: public.hex(),
        fingerprint: public.fingerprint(),
        files: Vec::new(),
    };
    let written = package.finish(head, &key).map_err(write)?;
    src.store
        .record(&NewAuditEntry {
            at_ms: now_ms,
            actor: Some(actor.name.clone()),
            address: actor.address.clone(),
            action: "evidence_exported".into(),
            target: Some(audit_target(&event)),
            detail: Some(format!(
                "manifest sha256 {}, {} files",
                written.manifest_sha256, written.files
            )),
        })
        .await
        .map_err(EvidenceError::Audit)?;
    Ok(Exported {
        out: written.out,
        manifest_sha256: written.manifest_sha256,
        files: written.files,
        fingerprint: public.fingerprint(),
        name: format!("evidence-event-{seq}.zip"),
    })
}
