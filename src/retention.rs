//! Retention and a data subject's requests: personal data (cashier ids, receipt lines, footage links) is kept
//! only as long as it serves.
//!
//! [`purge`] removes what `[retention]` leaves out: the daemon runs it once a day (and at start) beside the
//! hourly dead-letter bound, `tillmark retention purge` runs it now. Every purge that removes anything is in
//! the audit log with its counts. The audit log's own old rows go behind a checkpoint row, so the chain stays
//! verifiable (see [`crate::store::AuditLog::purge_audit`]).
//!
//! [`pseudonym`] is what `tillmark person erase` puts in place of a cashier id: the same id always maps to the
//! same pseudonym in one database (a keyed hash under a random key made for it and kept in the database), and
//! the id cannot be read back from it. The audit log names a person by this pseudonym, never by the id, so
//! recording an export or an erasure does not itself keep what the erasure removes.

use std::fmt;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::config::Config;
use crate::store::{AuditPurge, Checkpoint, DeadLetterBounds, EventsPurged, NewAuditEntry, Store};

/// The installation key behind pseudonyms. Its name is fixed: another key would give a person another one.
pub const PSEUDONYM_KEY: &str = "person-pseudonym";

/// The audit log's action for a purge that removed something.
pub const PURGE_ACTION: &str = "retention_purge";

/// Who runs a purge, for the audit log: the daemon (`system`) or a person on the command line.
#[derive(Debug, Clone)]
pub struct Actor {
    pub name: String,
    pub address: Option<String>,
}

impl Actor {
    /// The daemon's own housekeeping.
    pub fn system() -> Actor {
        Actor {
            name: "system".into(),
            address: None,
        }
    }
}

/// What one purge removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    pub events: EventsPurged,
    pub dead_letters: u64,
    pub sessions: u64,
    /// The checkpoint the audit log's old rows went behind.
    pub audit: Option<Checkpoint>,
}

impl Report {
    pub fn removed_anything(&self) -> bool {
        self.events.events + self.dead_letters + self.sessions > 0 || self.audit.is_some()
    }

    fn audit_rows(&self) -> i64 {
        self.audit.as_ref().map_or(0, |c| c.removed)
    }

    /// The counts as the audit log keeps them: `key=value` words, for people and for grep alike.
    pub fn counts(&self) -> String {
        let e = &self.events;
        format!(
            "events={} bookmarks={} closed_cases={} dead_letters={} sessions={} audit_rows={} \
             held_open_case={} held_pending={}",
            e.events,
            e.bookmarks,
            e.closed_cases,
            self.dead_letters,
            self.sessions,
            self.audit_rows(),
            e.held_open_case,
            e.held_pending
        )
    }
}

impl fmt::Display for Report {
    /// What `tillmark retention purge` prints.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let e = &self.events;
        writeln!(
            f,
            "Removed {} events (with {} bookmarks and {} closed cases), {} dead letters, {} sessions, {} audit rows.",
            e.events,
            e.bookmarks,
            e.closed_cases,
            self.dead_letters,
            self.sessions,
            self.audit_rows()
        )?;
        if e.held_open_case + e.held_pending > 0 {
            writeln!(
                f,
                "Kept although old enough: {} events in an open case (legal hold), {} with a bookmark still to deliver.",
                e.held_open_case, e.held_pending
            )?;
        }
        if let Some(c) = &self.audit {
            writeln!(
                f,
                "The audit log's rows {} to {} went behind checkpoint row {}; `tillmark audit verify` checks the chain from there.",
                c.first_id, c.last_id, c.id
            )?;
        }
        Ok(())
    }
}

/// Removes what `[retention]` leaves out at `now_ms`, in `actor`'s name; writes the counts to the audit log
/// when anything went.
pub async fn purge(
    store: &dyn Store,
    config: &Config,
    now_ms: i64,
    actor: &Actor,
) -> Result<Report, crate::store::StoreError> {
    let keep = &config.retention;
    let mut report = Report {
        events: store
            .purge_events(now_ms.saturating_sub(keep.events.0))
            .await?,
        ..Report::default()
    };
    report.dead_letters = store
        .purge_dead_letters(&DeadLetterBounds {
            received_before_ms: Some(now_ms.saturating_sub(keep.dead_letters.0)),
            max_total_bytes: None,
        })
        .await?
        .letters();
    report.sessions = store
        .purge_sessions(now_ms.saturating_sub(keep.sessions.0))
        .await?;
    report.audit = store
        .purge_audit(&AuditPurge {
            at_ms: now_ms,
            actor: actor.name.clone(),
            address: actor.address.clone(),
            before_ms: now_ms.saturating_sub(keep.audit_log.0),
        })
        .await?;
    if report.removed_anything() {
        store
            .record(&NewAuditEntry {
                at_ms: now_ms,
                actor: Some(actor.name.clone()),
                address: actor.address.clone(),
                action: PURGE_ACTION.into(),
                target: Some(format!(
                    "events before {}, audit rows before {}",
                    crate::web::iso_utc(now_ms.saturating_sub(keep.events.0)),
                    crate::web::iso_utc(now_ms.saturating_sub(keep.audit_log.0)),
                )),
                detail: Some(report.counts()),
            })
            .await?;
    }
    Ok(report)
}

/// The pseudonym of a person's identifier in this database: `erased-` and 8 hex digits of HMAC-SHA256 under
/// the installation's [`PSEUDONYM_KEY`].
pub async fn pseudonym(store: &dyn Store, id: &str) -> Result<String, crate::store::StoreError> {
    let key = store.installation_key(PSEUDONYM_KEY).await?;
    Ok(pseudonym_with(&key, id))
}

fn pseudonym_with(key: &[u8], id: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(id.as_bytes());
    let digest = mac.finalize().into_bytes();
    format!("erased-{}", hex::encode(&digest[..4]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pseudonym_is_the_same_for_the_same_id_and_key_and_differs_with_either() {
        let a = pseudonym_with(b"key one", "c117");
        assert_eq!(a, pseudonym_with(b"key one", "c117"));
        assert_ne!(a, pseudonym_with(b"key two", "c117"));
        assert_ne!(a, pseudonym_with(b"key one", "c118"));
        assert!(
            a.starts_with("erased-") && a.len() == "erased-".len() + 8,
            "{a}"
        );
    }
}
