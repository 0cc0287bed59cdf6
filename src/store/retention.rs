//! Removing what retention leaves out, and a data subject's requests, in the database.
//!
//! Guarantees:
//! - An event goes with everything tied to it (bookmarks, their attempts, its search rows by trigger, its case
//!   and case history when the case is closed), in one transaction per batch of at most [`PURGE_BATCH`]
//!   events, so ingest never waits long for the single writer.
//! - An event in an open case is never removed (legal hold), nor one with a bookmark still to deliver: its
//!   footage link does not exist yet.
//! - Erasing a person replaces their identifier, never removes the events: the register's record stays
//!   complete, with a pseudonym where the name was. Events in an open case are left as they are and counted.

use async_trait::async_trait;
use serde_json::Value;

use super::{EventRecord, StoreError};

/// Events removed (or rewritten, for an erasure) in one transaction.
pub const PURGE_BATCH: i64 = 1_000;

/// What an events purge removed, and what it kept although it was old enough.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EventsPurged {
    pub events: u64,
    pub bookmarks: u64,
    /// Closed cases removed with their events (with their history).
    pub closed_cases: u64,
    /// Old enough, kept: in an open case.
    pub held_open_case: u64,
    /// Old enough, kept: a bookmark still to deliver.
    pub held_pending: u64,
}

/// What an erasure changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Erased {
    /// Events whose identifier was replaced.
    pub events: u64,
    /// Events naming the identifier left as they are: in an open case.
    pub held: u64,
    /// Dead letters whose text named it.
    pub dead_letters: u64,
    /// Notes in the case history of the events that name it, kept as written: the history is evidence.
    pub case_notes: u64,
}

/// What a scrub after an erasure did to the file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Scrubbed {
    /// The write-ahead log was emptied into the file and cut to nothing; false when a reader (a running
    /// daemon's) held it, and it empties at the next checkpoint instead.
    pub wal_emptied: bool,
}

#[async_trait]
pub trait Retention: Send + Sync {
    /// Removes the events whose moment is before `before_ms`, with what is tied to them, in batches of
    /// [`PURGE_BATCH`], leaving those held (see the module documentation).
    async fn purge_events(&self, before_ms: i64) -> Result<EventsPurged, StoreError>;
    /// Removes the sign-in sessions last used before `seen_before_ms`, and sign-ins left at the authenticator
    /// code since before then; returns how many.
    async fn purge_sessions(&self, seen_before_ms: i64) -> Result<u64, StoreError>;
    /// Up to `limit` events (with bookmarks and cases) that name `id` as their cashier or anywhere in their
    /// payload as a word, of `store` or any, with a sequence number above `after_seq`, in order.
    async fn events_naming(
        &self,
        id: &str,
        store: Option<&str>,
        after_seq: i64,
        limit: i64,
    ) -> Result<Vec<EventRecord>, StoreError>;
    /// Replaces `id` by `pseudonym` in every event that names it (cashier, payload, attributes, lines,
    /// reason), of `store` or any, except those in an open case, and in the dead letters' text; the search
    /// indexes take the new text by trigger and indexer. Forgets the events' content digests, which a guessed
    /// id could be checked against.
    async fn erase_identifier(
        &self,
        id: &str,
        store: Option<&str>,
        pseudonym: &str,
    ) -> Result<Erased, StoreError>;
    /// Leaves no copy of removed or replaced text in the files: merges the search indexes (dropping the
    /// entries deleted from them), rewrites the database without free pages, and empties the write-ahead log.
    async fn scrub(&self) -> Result<Scrubbed, StoreError>;
}

/// Whether `text` holds `id` as a word: not inside a longer identifier (letters, digits, `-`, `_`, `.` on
/// either side), so erasing `c11` leaves `c117` alone.
pub fn names(text: &str, id: &str) -> bool {
    word_matches(text, id).next().is_some()
}

/// `text` with every word `id` replaced by `with`, or `None` when it holds none.
pub fn replace_word(text: &str, id: &str, with: &str) -> Option<String> {
    let found: Vec<usize> = word_matches(text, id).collect();
    if found.is_empty() {
        return None;
    }
    let mut out = String::with_capacity(text.len());
    let mut from = 0;
    for at in found {
        out.push_str(&text[from..at]);
        out.push_str(with);
        from = at + id.len();
    }
    out.push_str(&text[from..]);
    Some(out)
}

fn word_matches<'t>(text: &'t str, id: &'t str) -> impl Iterator<Item = usize> + 't {
    let part = |c: char| c.is_alphanumeric() || matches!(c, '-' | '_' | '.');
    // A trailing full stop ends a sentence, not the id: "approved by c117." names c117.
    let starts_word = move |at: usize| !text[..at].chars().next_back().is_some_and(part);
    let ends_word = move |end: usize| {
        let mut rest = text[end..].chars();
        match rest.next() {
            None => true,
            Some('.') => !rest.next().is_some_and(part),
            Some(c) => !part(c),
        }
    };
    text.match_indices(id)
        .map(|(at, _)| at)
        .filter(move |&at| !id.is_empty() && starts_word(at) && ends_word(at + id.len()))
}

/// Replaces `id` in every string of a JSON value: a whole string equal to it, or a word of a longer one.
/// Returns whether anything changed.
pub fn replace_in_json(value: &mut Value, id: &str, with: &str) -> bool {
    match value {
        Value::String(s) => match replace_word(s, id, with) {
            Some(new) => {
                *s = new;
                true
            }
            None => false,
        },
        // Every string is visited: `any` would stop at the first one changed.
        Value::Array(items) => {
            let mut changed = false;
            for v in items {
                changed |= replace_in_json(v, id, with);
            }
            changed
        }
        Value::Object(map) => {
            let mut changed = false;
            for v in map.values_mut() {
                changed |= replace_in_json(v, id, with);
            }
            changed
        }
        _ => false,
    }
}

/// The JSON text `text` with `id` replaced in its strings, or as a word of the text when it is not JSON
/// (a payload cut short).
pub(super) fn replace_in_json_text(text: &str, id: &str, with: &str) -> Option<String> {
    match serde_json::from_str::<Value>(text) {
        Ok(mut value) => replace_in_json(&mut value, id, with).then(|| value.to_string()),
        Err(_) => replace_word(text, id, with),
    }
}

fn event_names(e: &EventRecord, raw: &str, id: &str) -> bool {
    e.cashier.as_deref() == Some(id) || names(raw, id)
}

/// The candidates' condition: `id` as the cashier, or somewhere in the payload (a word of it is checked in
/// Rust, since SQL has no such test), of `store` if given. `find` is the backend's function for the position of
/// its second argument in its first (SQLite's `instr`, PostgreSQL's `strpos`).
pub(super) fn push_naming<'a, DB: sqlx::Database>(
    q: &mut sqlx::QueryBuilder<'a, DB>,
    find: &str,
    id: &str,
    store: Option<&str>,
) where
    String: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
{
    q.push(" AND (e.cashier = ")
        .push_bind(id.to_string())
        .push(format!(" OR {find}(e.raw, "))
        .push_bind(id.to_string())
        .push(") > 0)");
    if let Some(store) = store {
        q.push(" AND e.store = ").push_bind(store.to_string());
    }
}

/// The dead letters whose text holds `id`, as `(id, raw, topic, reason)`; a store's are those that came on its
/// topics. `find` as for [`push_naming`].
pub(super) fn letters_naming<'a, DB: sqlx::Database>(
    find: &str,
    id: &str,
    store: Option<&str>,
) -> sqlx::QueryBuilder<'a, DB>
where
    String: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    DB::Arguments<'a>: Default,
{
    let mut q = sqlx::QueryBuilder::new(format!(
        "SELECT id, raw, topic, reason FROM dead_letters WHERE {find}(raw, "
    ));
    q.push_bind(id.to_string()).push(") > 0");
    if let Some(store) = store {
        q.push(format!(" AND {find}(topic, "))
            .push_bind(format!("/{store}/"))
            .push(") > 0");
    }
    q
}

/// What [`Retention::events_naming`] returns, from candidates `page(after)` reads: those with a sequence number
/// above `after`, in order, with their payload, at most [`PURGE_BATCH`] of them. Candidates hold the text
/// somewhere; only those naming it as a word are the person's.
pub(super) async fn naming<Fut>(
    id: &str,
    after_seq: i64,
    limit: i64,
    mut page: impl FnMut(i64) -> Fut,
) -> Result<Vec<EventRecord>, StoreError>
where
    Fut: std::future::Future<Output = Result<Vec<(EventRecord, String)>, StoreError>>,
{
    let mut found = Vec::new();
    let mut after = after_seq;
    while (found.len() as i64) < limit {
        let rows = page(after).await?;
        let Some((last, _)) = rows.last() else { break };
        after = last.seq;
        let full = rows.len() as i64 == PURGE_BATCH;
        for (event, raw) in rows {
            if event_names(&event, &raw, id) && (found.len() as i64) < limit {
                found.push(event);
            }
        }
        if !full {
            break;
        }
    }
    Ok(found)
}

/// An event's texts as an erasure reads them: a candidate, which may hold the id only inside a longer word.
#[derive(sqlx::FromRow)]
pub(super) struct NamingEvent {
    pub seq: i64,
    pub cashier: Option<String>,
    pub raw: String,
    /// JSON text, as `raw`.
    pub attributes: String,
    pub lines: String,
    pub reason: Option<String>,
    /// In an open case: left as it is.
    pub held: bool,
}

/// The columns of [`NamingEvent`], from `events e`, and whether an open case holds it.
pub(super) const NAMING_COLUMNS: &str = "e.seq, e.cashier, e.raw, e.attributes, e.lines, e.reason, \
     EXISTS (SELECT 1 FROM cases c WHERE c.event_seq = e.seq AND c.state = 'open') AS held";

impl NamingEvent {
    /// Whether it names `id`: as its cashier, or as a word of its payload.
    pub(super) fn names(&self, id: &str) -> bool {
        self.cashier.as_deref() == Some(id) || names(&self.raw, id)
    }

    /// Its texts with `id` replaced by `pseudonym` wherever it is a word.
    pub(super) fn erased(self, id: &str, pseudonym: &str) -> NamingEvent {
        let cashier = match self.cashier {
            Some(c) if c == id => Some(pseudonym.to_string()),
            other => other.map(|c| replace_word(&c, id, pseudonym).unwrap_or(c)),
        };
        let json = |text: String| replace_in_json_text(&text, id, pseudonym).unwrap_or(text);
        NamingEvent {
            seq: self.seq,
            cashier,
            raw: json(self.raw),
            attributes: json(self.attributes),
            lines: json(self.lines),
            reason: self
                .reason
                .map(|r| replace_word(&r, id, pseudonym).unwrap_or(r)),
            held: self.held,
        }
    }
}

/// A dead letter's text and reason with `id` replaced, and the bytes it then keeps; `None` when its text does
/// not hold `id` as a word.
pub(super) fn erased_letter(
    raw: &str,
    topic: &str,
    reason: String,
    id: &str,
    pseudonym: &str,
) -> Option<(String, String, i64)> {
    let raw = replace_word(raw, id, pseudonym)?;
    let reason = replace_word(&reason, id, pseudonym).unwrap_or(reason);
    let kept = (raw.len() + topic.len() + reason.len()) as i64;
    Some((raw, reason, kept))
}

#[cfg(test)]
mod tests {
    use super::*;

    use serde_json::json;

    use crate::store::test_backends::{Kind, TestStore, backend_tests};
    use crate::store::tests::{NOW_MS, event, letter, stored};
    use crate::store::{CaseChange, CaseOutcome, StoreScope};

    backend_tests!(kind:
        an_events_purge_takes_old_events_with_their_bookmarks_and_closed_cases_and_holds_open_cases_and_pending_bookmarks,
        erasing_a_cashier_replaces_the_id_as_a_word_everywhere_but_in_an_open_case,
    );
    backend_tests!(sign_ins_left_before_the_bound_are_purged_and_later_ones_kept);

    /// Opens the case of event `seq` with `note`, and closes it as explained unless `open`.
    async fn case(store: &TestStore, seq: i64, note: &str, open: bool) {
        let change = |c: CaseChange| async move {
            store
                .change_case(seq, &StoreScope::All, "ken", NOW_MS, &c)
                .await
                .unwrap()
        };
        change(CaseChange::Open { note: note.into() }).await;
        if !open {
            change(CaseChange::Close {
                outcome: CaseOutcome::Explained,
                reason: "counted again".into(),
            })
            .await;
        }
    }

    async fn an_events_purge_takes_old_events_with_their_bookmarks_and_closed_cases_and_holds_open_cases_and_pending_bookmarks(
        kind: Kind,
    ) {
        let (store, ids) = stored(
            kind,
            &[
                event("old", "sale", 0, json!({})),
                event("old-closed", "void", 1, json!({})),
                event("old-open", "void", 2, json!({})),
                event("old-pending", "void", 3, json!({})),
                event("old-failed", "void", 4, json!({})),
                event("new", "void", 60, json!({})),
            ],
            &[("old-pending", &["cam-1"]), ("old-failed", &["cam-1"])],
        )
        .await;
        let seq = |id: &str| *ids.iter().find(|(_, v)| *v == id).unwrap().0;
        case(&store, seq("old-closed"), "a note", false).await;
        case(&store, seq("old-open"), "a note", true).await;
        store
            .execute(&format!(
                "UPDATE bookmarks SET state = 'failed' WHERE event_seq = {}",
                seq("old-failed")
            ))
            .await
            .unwrap();

        let bound = NOW_MS + 30 * 60_000;
        let held = EventsPurged {
            held_open_case: 1,
            held_pending: 1,
            ..EventsPurged::default()
        };
        assert_eq!(
            store.purge_events(bound).await.unwrap(),
            EventsPurged {
                events: 3,
                bookmarks: 1,
                closed_cases: 1,
                ..held
            }
        );
        let mut left = Vec::new();
        for (seq, id) in &ids {
            if store.event(*seq, &StoreScope::All).await.unwrap().is_some() {
                left.push(id.as_str());
            }
        }
        left.sort();
        assert_eq!(left, ["new", "old-open", "old-pending"]);
        let open = store
            .case(seq("old-open"), &StoreScope::All)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(open.history.len(), 1, "an open case keeps its history");
        assert_eq!(store.purge_events(bound).await.unwrap(), held, "again");
    }

    async fn erasing_a_cashier_replaces_the_id_as_a_word_everywhere_but_in_an_open_case(
        kind: Kind,
    ) {
        let (store, ids) = stored(
            kind,
            &[
                event(
                    "s-1",
                    "void",
                    0,
                    json!({"cashier": "c117", "lines": ["void approved by c117."],
                           "attributes": {"supervisor": "c117"}}),
                ),
                event(
                    "s-2",
                    "refund",
                    1,
                    json!({"cashier": "c1170", "reason": "approved by c117"}),
                ),
                event("s-3", "void", 2, json!({"cashier": "c117"})),
                event("s-4", "void", 3, json!({"cashier": "c1170"})),
            ],
            &[],
        )
        .await;
        let seq = |id: &str| *ids.iter().find(|(_, v)| *v == id).unwrap().0;
        case(&store, seq("s-1"), "c117 counted it", false).await;
        case(&store, seq("s-3"), "ask c117", true).await;
        store
            .ingest(
                &[
                    letter(NOW_MS, b"{", "{\"cashier\": \"c117\""),
                    letter(NOW_MS, b"{", "{\"cashier\": \"c1170\""),
                ],
                NOW_MS,
            )
            .await
            .unwrap();
        let naming = |after: i64| {
            let store = &store;
            async move {
                let found = store.events_naming("c117", None, after, 10).await.unwrap();
                found.into_iter().map(|e| e.id).collect::<Vec<_>>()
            }
        };
        assert_eq!(naming(0).await, ["s-1", "s-2", "s-3"]);
        assert_eq!(naming(seq("s-1")).await, ["s-2", "s-3"]);
        let s1 = store.events_naming("c117", None, 0, 1).await.unwrap();
        assert_eq!(
            s1[0].case.as_ref().map(|c| c.state),
            Some(crate::store::CaseState::Explained),
            "with its case"
        );
        assert!(
            store
                .events_naming("c117", Some("osaka-02"), 0, 10)
                .await
                .unwrap()
                .is_empty()
        );

        let erased = store
            .erase_identifier("c117", None, "erased-1")
            .await
            .unwrap();
        assert_eq!(
            erased,
            Erased {
                events: 2,
                held: 1,
                dead_letters: 1,
                case_notes: 1,
            }
        );
        let s1 = store
            .event(seq("s-1"), &StoreScope::All)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(s1.cashier.as_deref(), Some("erased-1"));
        assert_eq!(s1.lines, ["void approved by erased-1."]);
        assert_eq!(s1.attributes["supervisor"], "erased-1");
        let s2 = store
            .event(seq("s-2"), &StoreScope::All)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (s2.cashier.as_deref(), s2.reason.as_deref()),
            (Some("c1170"), Some("approved by erased-1"))
        );
        assert_eq!(naming(0).await, ["s-3"], "held in its open case");
        let letters = store
            .dead_letters(&crate::store::DeadLetterQuery {
                include_dismissed: true,
                limit: 10,
            })
            .await
            .unwrap();
        assert_eq!(
            letters
                .iter()
                .filter(|l| l.raw.contains("erased-1"))
                .count(),
            1
        );
        store.scrub().await.unwrap();
        assert_eq!(naming(0).await, ["s-3"], "the same after the scrub");
    }

    async fn sign_ins_left_before_the_bound_are_purged_and_later_ones_kept(store: &TestStore) {
        let user = store
            .add_user(
                &crate::accounts::NewUser {
                    name: "aiko".into(),
                    role: crate::accounts::Role::Owner,
                    stores: vec![],
                    password_hash: "x".into(),
                },
                0,
            )
            .await
            .unwrap();
        store
            .add_session("old", user.id, "c", None, 100)
            .await
            .unwrap();
        store
            .add_session("new", user.id, "c", None, 900)
            .await
            .unwrap();
        store
            .add_sign_in_challenge("waiting", user.id, 200, 0)
            .await
            .unwrap();
        assert_eq!(store.purge_sessions(500).await.unwrap(), 2);
        assert!(store.session("new", 950, 1_000).await.unwrap().is_some());
        assert!(store.session("old", 950, 1_000).await.unwrap().is_none());
        assert_eq!(store.purge_sessions(500).await.unwrap(), 0);
    }

    #[test]
    fn an_identifier_is_replaced_as_a_word_and_never_inside_a_longer_one() {
        assert_eq!(
            replace_word("void approved by c117.", "c117", "erased-1"),
            Some("void approved by erased-1.".into())
        );
        assert_eq!(
            replace_word("c1170 and c117-2 and xc117", "c117", "e"),
            None
        );
        assert_eq!(replace_word("c117", "c117", "e"), Some("e".into()));
        assert_eq!(replace_word("c117,c117", "c117", "e"), Some("e,e".into()));
        assert!(!names("c117.5", "c117"));
        let mut v =
            serde_json::json!({"cashier": "c117", "attributes": {"supervisor": "c117"}, "n": 5});
        assert!(replace_in_json(&mut v, "c117", "e"));
        assert_eq!(v["attributes"]["supervisor"], "e");
        assert_eq!(v["cashier"], "e");
    }
}
