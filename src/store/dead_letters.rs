//! Dead letters: messages that were not valid events, kept with why they were refused, the size and SHA-256
//! of the payload as received, and its masked text (only the beginning of an oversized one).
//!
//! The list stays bounded: reads return at most [`DEAD_LETTER_EXCERPT_CHARS`] characters of each letter's text,
//! so no page or answer carries a whole payload, and retention ([`DeadLetterStore::purge_dead_letters`]) removes
//! the oldest letters beyond an age and a total size. A person may dismiss letters they have dealt with: a
//! dismissed letter is kept (until retention removes it) but no longer counted in the index header.

use std::ops::RangeInclusive;

use async_trait::async_trait;
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::StoreError;

/// The most characters of a letter's text a list read returns: enough to see what the sender sent, never a
/// multi-megabyte answer, however many letters are asked for.
pub const DEAD_LETTER_EXCERPT_CHARS: i64 = 1024;

/// The SHA-256 of a payload as a dead letter records it: lowercase hex, as `sha256sum` prints it.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// One dead letter as read for a list.
#[derive(Debug, Clone, Serialize)]
pub struct DeadLetter {
    pub id: i64,
    pub received_ms: i64,
    pub topic: String,
    pub reason: String,
    /// The beginning of the kept text (card numbers masked): at most [`DEAD_LETTER_EXCERPT_CHARS`] characters.
    pub raw: String,
    /// Bytes of the whole kept text: more than `raw` holds when the read cut it, fewer than `size` when only the
    /// beginning of the payload was kept.
    pub raw_bytes: i64,
    /// Bytes of the payload as received.
    pub size: i64,
    /// SHA-256 of the payload as received, lowercase hex; `None` for letters kept before it was recorded.
    pub sha256: Option<String>,
    pub dismissed: Option<Dismissal>,
}

impl DeadLetter {
    /// Whether `raw` is less than the payload: cut by the read, or only the payload's beginning was kept.
    pub fn raw_is_partial(&self) -> bool {
        (self.raw.len() as i64) < self.raw_bytes || self.raw_bytes < self.size
    }
}

/// Who dismissed a letter, and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Dismissal {
    pub at_ms: i64,
    pub by: String,
}

/// Which letters a list read returns: newest first.
#[derive(Debug, Clone, Default)]
pub struct DeadLetterQuery {
    /// Dismissed letters too; by default only those not dismissed.
    pub include_dismissed: bool,
    /// At most this many, within 1 to 1000.
    pub limit: i64,
}

/// What the dead-letter list holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct DeadLetterTotals {
    pub letters: i64,
    pub dismissed: i64,
    /// Bytes the letters keep (their text, topics and reasons): what `[dead_letters] max_total` bounds.
    pub kept_bytes: i64,
}

impl DeadLetterTotals {
    /// Letters not dismissed: what the index header counts.
    pub fn open(&self) -> i64 {
        self.letters - self.dismissed
    }
}

/// What retention removes: letters received before `received_before_ms`, then, oldest first, letters until those
/// left keep at most `max_total_bytes`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeadLetterBounds {
    pub received_before_ms: Option<i64>,
    pub max_total_bytes: Option<u64>,
}

impl DeadLetterBounds {
    /// Every letter.
    pub fn everything() -> DeadLetterBounds {
        DeadLetterBounds {
            received_before_ms: Some(i64::MAX),
            max_total_bytes: None,
        }
    }
}

/// What a purge removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Purged {
    /// Letters older than the age bound.
    pub by_age: u64,
    /// Letters removed, oldest first, to bring the total under the size bound.
    pub by_size: u64,
    /// Bytes the removed letters kept.
    pub bytes: u64,
}

impl Purged {
    pub fn letters(&self) -> u64 {
        self.by_age + self.by_size
    }
}

#[async_trait]
pub trait DeadLetterStore: Send + Sync {
    /// Newest first; see [`DeadLetterQuery`].
    async fn dead_letters(&self, query: &DeadLetterQuery) -> Result<Vec<DeadLetter>, StoreError>;
    async fn dead_letter_totals(&self) -> Result<DeadLetterTotals, StoreError>;
    /// Dismisses the letters with ids in `ids` not dismissed yet, in `by`'s name; returns how many.
    async fn dismiss_dead_letters(
        &self,
        ids: RangeInclusive<i64>,
        by: &str,
        now_ms: i64,
    ) -> Result<u64, StoreError>;
    /// Removes what `bounds` leave out, in one transaction.
    async fn purge_dead_letters(&self, bounds: &DeadLetterBounds) -> Result<Purged, StoreError>;
}

#[derive(sqlx::FromRow)]
pub(super) struct Row {
    id: i64,
    received_ms: i64,
    topic: String,
    reason: String,
    raw: String,
    raw_bytes: i64,
    size: i64,
    sha256: Option<String>,
    dismissed_ms: Option<i64>,
    dismissed_by: Option<String>,
}

impl From<Row> for DeadLetter {
    fn from(r: Row) -> Self {
        let dismissed = r.dismissed_ms.map(|at_ms| Dismissal {
            at_ms,
            by: r.dismissed_by.unwrap_or_default(),
        });
        DeadLetter {
            id: r.id,
            received_ms: r.received_ms,
            topic: r.topic,
            reason: r.reason,
            raw: r.raw,
            raw_bytes: r.raw_bytes,
            size: r.size,
            sha256: r.sha256,
            dismissed,
        }
    }
}
