//! The event list's search and filters, dead letters and claims against real databases: what a person searching
//! for a receipt finds. Each scenario in [`backend_tests!`] runs on SQLite and, when a database is named, on
//! PostgreSQL; the rest test SQLite's own machinery (its trailing search indexes, its old migrations).

use std::collections::{BTreeSet, HashMap};
use std::str::FromStr;

use sha2::Digest;

use serde_json::{Value, json};

use super::test_backends::{Handle, Kind, TestStore, Tested, backend_tests};
use super::*;

pub(super) const NOW_MS: i64 = 1_800_000_000_000;

/// A store on a temporary file, and the sequence numbers of what was put in it, by event id; beside it, the same
/// events in a store whose search indexer has taken them all. Every list is read from both and must agree: a
/// search finds what it finds whether the indexes hold the events yet or not.
struct Seeded {
    store: TestStore,
    indexed: TestStore,
    ids: HashMap<i64, String>,
}

fn url(dir: &tempfile::TempDir) -> String {
    format!("sqlite://{}", dir.path().join("t.db").display())
}

/// An event as a register would send it; `minute` orders them in time.
pub(super) fn event(id: &str, kind: &str, minute: i64, fields: Value) -> Value {
    let at = chrono::DateTime::from_timestamp_millis(NOW_MS + minute * 60_000)
        .unwrap()
        .to_rfc3339();
    let mut e =
        json!({ "id": id, "type": kind, "at": at, "store": "shibuya-01", "register": "r1" });
    e.as_object_mut()
        .unwrap()
        .extend(fields.as_object().unwrap().clone());
    e
}

/// Stores the events, each with one bookmark per camera named in `cameras[id]`, twice: the second time the
/// indexer takes them too.
async fn seed(kind: Kind, events: &[Value], cameras: &[(&str, &[&str])]) -> Seeded {
    let (store, ids) = stored(kind, events, cameras).await;
    let (indexed, indexed_ids) = stored(kind, events, cameras).await;
    assert_eq!(ids, indexed_ids);
    index_all(&indexed).await;
    Seeded {
        store,
        indexed,
        ids,
    }
}

/// Runs the indexer's steps until nothing is left to index.
async fn index_all(store: &impl Handle) {
    while store.index_search(100).await.unwrap() == 100 {}
}

pub(super) async fn stored(
    kind: Kind,
    events: &[Value],
    cameras: &[(&str, &[&str])],
) -> (TestStore, HashMap<i64, String>) {
    let store = TestStore::new(kind).await.unwrap();
    let batch: Vec<Intake> = events
        .iter()
        .map(|payload| {
            let id = payload["id"].as_str().unwrap_or_default();
            let devices = cameras
                .iter()
                .filter(|(cam_id, _)| *cam_id == id)
                .flat_map(|(_, devices)| devices.iter().copied())
                .collect::<Vec<_>>();
            intake(payload, &devices)
        })
        .collect();
    let mut ids = HashMap::new();
    for (outcome, payload) in store
        .ingest(&batch, NOW_MS)
        .await
        .unwrap()
        .iter()
        .zip(events)
    {
        let IntakeOutcome::Stored { seq, .. } = outcome else {
            panic!("{payload} was not stored: {outcome:?}");
        };
        ids.insert(*seq, payload["id"].as_str().unwrap().to_string());
    }
    (store, ids)
}

/// What ingest makes of a register's message: the event, its digest, one bookmark per device.
fn intake(payload: &Value, devices: &[&str]) -> Intake {
    let parsed = crate::event::parse(payload.to_string().as_bytes());
    let event = parsed.result.expect("a valid test event");
    let bookmarks = devices
        .iter()
        .map(|device| NewBookmark {
            system: "nvr".into(),
            device: (*device).into(),
            camera: (*device).into(),
            moment_ms: event.at_ms(),
            start_ms: event.at_ms() - 10_000,
            duration_ms: 30_000,
        })
        .collect();
    Intake::Event {
        topic: "pos/shibuya-01/r1/events".into(),
        received_ms: event.at_ms(),
        raw: parsed.raw,
        digest: crate::event::content_digest(&event),
        signed: None,
        flagged: event.kind.bookmarked_by_default(),
        mapped: true,
        bookmarks,
        drawer: Default::default(),
        event: Box::new(event),
    }
}

impl Seeded {
    /// The ids of the events the query lists, in the list's order.
    async fn list(&self, query: EventQuery) -> Vec<String> {
        let query = EventQuery {
            limit: 1000,
            ..query
        };
        let mut lists = Vec::new();
        for store in [&self.store, &self.indexed] {
            let ids: Vec<String> = store
                .events(&query)
                .await
                .unwrap_or_else(|e| panic!("{query:?} failed: {e}"))
                .iter()
                .map(|e| self.ids[&e.seq].clone())
                .collect();
            lists.push(ids);
        }
        let indexed = lists.pop().unwrap();
        let unindexed = lists.pop().unwrap();
        assert_eq!(
            unindexed, indexed,
            "{query:?}: not indexed yet, and indexed"
        );
        indexed
    }

    async fn search(&self, text: &str) -> Vec<String> {
        self.list(EventQuery {
            search: Some(text.into()),
            ..EventQuery::default()
        })
        .await
    }

    /// Ends every bookmark's first attempt in both stores: made on `cam-made`, failed on `cam-failed`,
    /// retried elsewhere.
    async fn deliver(&self) {
        for store in [&self.store, &self.indexed] {
            deliver(store).await;
        }
    }
}

async fn deliver(store: &impl Handle) {
    for job in store
        .claim_due("tillmark", NOW_MS, 60_000, &Room::any(100))
        .await
        .unwrap()
    {
        let outcome = match job.bookmark.device.as_str() {
            "cam-made" => Outcome::Made {
                vendor_id: None,
                detail: "created".into(),
                made_as: None,
            },
            "cam-failed" => Outcome::Failed {
                error: "unknown camera".into(),
            },
            _ => Outcome::Retry {
                at_ms: NOW_MS + 5_000,
                error: "connection refused".into(),
                maybe_created: false,
            },
        };
        let done = Finished {
            bookmark_id: job.bookmark.id,
            outcome,
            at_ms: NOW_MS,
        };
        store.finish("tillmark", &[done]).await.unwrap();
    }
}

/// A morning at a Tokyo convenience store, newest last.
async fn shop(kind: Kind) -> Seeded {
    let events = [
        event(
            "ret-1",
            "refund",
            1,
            json!({ "cashier": "c101", "transaction": "T-1001", "amount": 1280, "currency": "JPY",
                    "reason": "レシート忘れ", "lines": ["返品 ¥1,280", "おにぎり 鮭"] }),
        ),
        event(
            "ret-2",
            "refund",
            2,
            json!({ "cashier": "c102", "transaction": "T-1002", "amount": 150, "currency": "JPY",
                    "reason": "お客様都合による返品", "lines": ["緑茶 500ml ¥150"] }),
        ),
        event(
            "void-1",
            "void",
            3,
            json!({ "cashier": "c117", "transaction": "T-000981", "amount": 180, "currency": "JPY",
                    "reason": "customer changed mind", "lines": ["ONIGIRI SALMON      180", "*** VOID ***"] }),
        ),
        // 返 and 品, but never side by side.
        event(
            "sale-1",
            "sale",
            4,
            json!({ "cashier": "c101", "lines": ["返金なし", "品出し"] }),
        ),
        event(
            "sale-2",
            "sale",
            5,
            json!({ "cashier": "c2", "lines": ["12\" PIZZA 100% OFF_ITEM"] }),
        ),
        event(
            "corr-1",
            "correction",
            6,
            json!({ "cashier": "c101", "amount": -100, "currency": "JPY", "reason": "価格訂正",
                    "lines": ["値引 ¥-100"] }),
        ),
    ];
    let seeded = seed(
        kind,
        &events,
        &[
            ("ret-1", &["cam-made", "cam-failed"]),
            ("ret-2", &["cam-offline"]),
            ("void-1", &["cam-made"]),
        ],
    )
    .await;
    seeded.deliver().await;
    seeded
}

async fn a_two_character_japanese_word_finds_the_receipt_line_and_the_reason_holding_it_and_nothing_else(
    kind: Kind,
) {
    let shop = shop(kind).await;
    assert_eq!(shop.search("返品").await, ["ret-2", "ret-1"]);
    assert_eq!(shop.search("鮭").await, ["ret-1"]);
}

async fn a_longer_japanese_phrase_is_found_anywhere_inside_a_reason(kind: Kind) {
    let shop = shop(kind).await;
    assert_eq!(shop.search("お客様").await, ["ret-2"]);
    assert_eq!(shop.search("都合による返品").await, ["ret-2"]);
    assert_eq!(shop.search("返金なし").await, ["sale-1"]);
    assert!(shop.search("返品なし").await.is_empty());
}

async fn a_transaction_number_and_a_cashier_id_are_found_in_any_case(kind: Kind) {
    let shop = shop(kind).await;
    assert_eq!(shop.search("T-000981").await, ["void-1"]);
    assert_eq!(shop.search("t-000981").await, ["void-1"]);
    assert_eq!(shop.search("c117").await, ["void-1"]);
    assert_eq!(shop.search("c2").await, ["sale-2"]);
    assert_eq!(shop.search("onigiri").await, ["void-1"]);
}

async fn every_word_of_a_search_must_appear_whatever_its_length(kind: Kind) {
    let shop = shop(kind).await;
    assert_eq!(shop.search("返品 鮭").await, ["ret-1"]);
    assert_eq!(shop.search("返品\u{3000}T-1002").await, ["ret-2"]);
    assert_eq!(shop.search("SALMON 180").await, ["void-1"]);
    assert!(shop.search("SALMON 鮭").await.is_empty());
}

async fn quotes_stars_and_query_syntax_in_a_search_are_plain_text(kind: Kind) {
    let shop = shop(kind).await;
    assert_eq!(shop.search("12\"").await, ["sale-2"]);
    assert_eq!(shop.search("\"").await, ["sale-2"]);
    assert_eq!(shop.search("100%").await, ["sale-2"]);
    assert_eq!(shop.search("%").await, ["sale-2"]);
    assert_eq!(shop.search("_").await, ["sale-2"]);
    assert_eq!(shop.search("***").await, ["void-1"]);
    assert_eq!(shop.search("*").await, ["void-1"]);
    // A comma is in one receipt line, not in the JSON array every event's lines are stored as.
    assert_eq!(shop.search(",").await, ["ret-1"]);
    // Not a prefix query, not a column filter, not an operator.
    assert!(shop.search("c11*").await.is_empty());
    assert!(shop.search("cashier:c117").await.is_empty());
    for text in [
        "NEAR(",
        "NEAR(c117 T-1002)",
        "\"c117\" OR \"c101\"",
        "-c117",
        "a\"b",
        "'",
        "\\",
        "');DROP TABLE events;--",
        "^返品",
        "\0",
        "返\0品",
    ] {
        shop.search(text).await;
    }
    assert_eq!(shop.list(EventQuery::default()).await.len(), 6);
}

async fn amount_bounds_include_both_ends_and_leave_out_events_without_an_amount(kind: Kind) {
    let shop = shop(kind).await;
    let between = |min, max| EventQuery {
        min_amount: min,
        max_amount: max,
        ..EventQuery::default()
    };
    assert_eq!(
        shop.list(between(Some(150), Some(1280))).await,
        ["void-1", "ret-2", "ret-1"]
    );
    assert_eq!(
        shop.list(between(Some(151), None)).await,
        ["void-1", "ret-1"]
    );
    assert_eq!(shop.list(between(None, Some(0))).await, ["corr-1"]);
}

async fn the_bookmark_state_filter_lists_events_with_a_bookmark_in_that_state(kind: Kind) {
    let shop = shop(kind).await;
    let state = |s| EventQuery {
        bookmark_state: Some(s),
        ..EventQuery::default()
    };
    assert_eq!(shop.list(state(BookmarkState::Failed)).await, ["ret-1"]);
    assert_eq!(
        shop.list(state(BookmarkState::Made)).await,
        ["void-1", "ret-1"]
    );
    assert_eq!(shop.list(state(BookmarkState::Pending)).await, ["ret-2"]);
}

async fn search_combines_with_every_other_filter(kind: Kind) {
    let shop = shop(kind).await;
    let search = |q: &str| EventQuery {
        search: Some(q.into()),
        ..EventQuery::default()
    };
    let cases = [
        (
            EventQuery {
                bookmark_state: Some(BookmarkState::Pending),
                ..search("返品")
            },
            vec!["ret-2"],
        ),
        (
            EventQuery {
                cashier: Some("c101".into()),
                ..search("返品")
            },
            vec!["ret-1"],
        ),
        (
            EventQuery {
                min_amount: Some(1000),
                ..search("返品")
            },
            vec!["ret-1"],
        ),
        (
            EventQuery {
                kind: Some("sale".into()),
                ..search("c101")
            },
            vec!["sale-1"],
        ),
        (
            EventQuery {
                flagged_only: true,
                ..search("c101")
            },
            vec!["corr-1", "ret-1"],
        ),
        (
            EventQuery {
                from_ms: Some(NOW_MS + 2 * 60_000),
                to_ms: Some(NOW_MS + 6 * 60_000),
                ..search("c101")
            },
            vec!["sale-1"],
        ),
        (
            EventQuery {
                store: Some("shibuya-01".into()),
                register: Some("r2".into()),
                ..search("返品")
            },
            vec![],
        ),
    ];
    for (query, want) in cases {
        assert_eq!(shop.list(query.clone()).await, want, "{query:?}");
    }
}

async fn paging_through_a_filtered_search_returns_every_match_once(kind: Kind) {
    // 90 events in 30 distinct milliseconds, so pages break inside runs of equal times.
    let events: Vec<Value> = (0..90)
        .map(|i| {
            let line = match i % 3 {
                0 => "返品 ¥500",
                1 => "RETURN ¥500",
                _ => "おにぎり ¥500",
            };
            let mut e = event(
                &format!("e{i}"),
                "refund",
                i / 3,
                json!({ "amount": i * 10, "lines": [line] }),
            );
            e["cashier"] = json!(format!("c{}", i % 2));
            e
        })
        .collect();
    let seeded = seed(kind, &events, &[]).await;
    let matching = |pred: &dyn Fn(i64) -> bool| -> BTreeSet<String> {
        (0..90)
            .filter(|i| pred(*i))
            .map(|i| format!("e{i}"))
            .collect()
    };
    let cases: [(EventQuery, BTreeSet<String>); 3] = [
        (
            EventQuery {
                search: Some("返品".into()),
                ..EventQuery::default()
            },
            matching(&|i| i % 3 == 0),
        ),
        (
            EventQuery {
                search: Some("return ¥500".into()),
                cashier: Some("c1".into()),
                ..EventQuery::default()
            },
            matching(&|i| i % 3 == 1 && i % 2 == 1),
        ),
        (
            EventQuery {
                search: Some("¥500".into()),
                min_amount: Some(200),
                max_amount: Some(700),
                ..EventQuery::default()
            },
            matching(&|i| (20..=70).contains(&i)),
        ),
    ];
    for (query, want) in cases {
        let mut seen = Vec::new();
        let mut before = None;
        loop {
            let page = seeded
                .store
                .events(&EventQuery {
                    before,
                    limit: 4,
                    ..query.clone()
                })
                .await
                .unwrap();
            let Some(last) = page.last() else { break };
            before = Some((last.at_ms, last.seq));
            seen.extend(page.iter().map(|e| seeded.ids[&e.seq].clone()));
        }
        let unique: BTreeSet<String> = seen.iter().cloned().collect();
        assert_eq!(unique.len(), seen.len(), "{query:?}: {seen:?}");
        assert_eq!(unique, want, "{query:?}");
    }
}

#[tokio::test]
async fn events_stored_before_search_existed_are_found() {
    let dir = tempfile::tempdir().unwrap();
    let pool = sqlx::SqlitePool::connect(&format!("{}?mode=rwc", url(&dir)))
        .await
        .unwrap();
    let mut before_search = sqlx::migrate!("migrations/sqlite");
    before_search.migrations = before_search
        .migrations
        .iter()
        .filter(|m| m.version < 4)
        .cloned()
        .collect();
    before_search.run(&pool).await.unwrap();
    sqlx::query(
        "INSERT INTO events (store, id, event_key, type, at, at_ms, received_ms, register, cashier, txn, \
         reason, lines, raw, topic, flagged, mapped) VALUES ('shibuya-01', 'old-1', 'k1', 'refund', \
         '2026-11-21T09:00:00Z', 0, 0, 'r1', 'c117', 'T-0001', 'お客様都合', '[\"返品 ¥1,280\"]', '{}', 't', 1, 1)",
    )
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;

    let store = SqliteStore::open(&url(&dir)).await.unwrap();
    for text in ["返品", "¥1,280", "お客様都合", "T-0001", "c117"] {
        let found = store
            .events(&EventQuery {
                search: Some(text.into()),
                limit: 10,
                ..EventQuery::default()
            })
            .await
            .unwrap();
        assert_eq!(found.len(), 1, "{text}");
    }
}

async fn a_case_moves_only_as_its_state_allows_and_its_history_cannot_be_rewritten(kind: Kind) {
    let seeded = seed(kind, &[event("v1", "void", 0, json!({}))], &[]).await;
    let store = &seeded.store;
    let seq = *seeded.ids.keys().next().unwrap();
    let scope = &StoreScope::All;
    let change =
        |c: CaseChange| async move { store.change_case(seq, scope, "ken", NOW_MS, &c).await };
    let note = |t: &str| CaseChange::Note { text: t.into() };
    let close = |o, r: &str| CaseChange::Close {
        outcome: o,
        reason: r.into(),
    };

    assert!(matches!(
        change(note("early")).await,
        Err(CaseError::NoCase)
    ));
    let opened = change(CaseChange::Open {
        note: String::new(),
    })
    .await
    .unwrap();
    assert_eq!(opened.summary.state, CaseState::Open);
    assert_eq!(
        opened.history[0].text, None,
        "an empty first note is no text"
    );
    assert!(matches!(
        change(CaseChange::Open {
            note: "again".into()
        })
        .await,
        Err(CaseError::AlreadyOpen)
    ));
    assert!(matches!(
        change(CaseChange::Reopen {
            reason: "why".into()
        })
        .await,
        Err(CaseError::NotClosed)
    ));
    assert!(matches!(
        change(close(CaseOutcome::Explained, " \n ")).await,
        Err(CaseError::ReasonRequired)
    ));
    let closed = change(close(CaseOutcome::Explained, "  miscount  "))
        .await
        .unwrap();
    assert_eq!(closed.summary.state, CaseState::Explained);
    assert_eq!(closed.history[1].outcome.as_deref(), Some("explained"));
    assert_eq!(closed.history[1].text.as_deref(), Some("miscount"));
    assert!(matches!(
        change(close(CaseOutcome::Escalated, "twice")).await,
        Err(CaseError::Closed)
    ));
    // A note after closing is kept; the case stays closed.
    let noted = change(note("receipt found in the drawer")).await.unwrap();
    assert_eq!(noted.summary.state, CaseState::Explained);
    assert_eq!(noted.history.len(), 3);
    assert!(matches!(
        store
            .change_case(
                seq,
                &StoreScope::Only(vec!["osaka-02".into()]),
                "ken",
                NOW_MS,
                &note("x")
            )
            .await,
        Err(CaseError::NoEvent(_))
    ));

    for statement in [
        "UPDATE case_history SET text = 'rewritten'",
        "DELETE FROM case_history",
    ] {
        let refused = seeded.store.execute(statement).await.unwrap_err();
        assert!(
            refused
                .to_string()
                .contains("the case history is only ever added to"),
            "{statement}: {refused}"
        );
    }
    let kept = store.case(seq, scope).await.unwrap().unwrap();
    assert_eq!(kept.history, noted.history);
}

async fn an_id_used_again_with_other_content_is_a_dead_letter_and_marks_the_original(kind: Kind) {
    let seeded = seed(
        kind,
        &[event("r-1", "refund", 0, json!({"amount": 900}))],
        &[],
    )
    .await;
    let store = &seeded.store;
    let forged = intake(&event("r-1", "sale", 0, json!({"amount": 900})), &["cam-1"]);
    let copy = intake(
        &event("r-1", "refund", 0, json!({"amount": 900})),
        &["cam-1"],
    );
    let outcomes = store.ingest(&[forged, copy], NOW_MS).await.unwrap();
    let original = *seeded.ids.keys().next().unwrap();
    assert_eq!(
        outcomes,
        vec![
            IntakeOutcome::Reused { seq: original },
            IntakeOutcome::Duplicate
        ]
    );
    let kept = store
        .event(original, &StoreScope::All)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((kept.kind.as_str(), kept.reused), ("refund", 1));
    assert!(
        kept.bookmarks.is_empty(),
        "the forged copy made no bookmark"
    );
    let letters = store
        .dead_letters(&DeadLetterQuery {
            include_dismissed: false,
            limit: 10,
        })
        .await
        .unwrap();
    assert_eq!(letters.len(), 1);
    assert!(
        letters[0].reason.starts_with(&format!(
            "id reused with different content: event {original}"
        )),
        "{}",
        letters[0].reason
    );
    assert!(letters[0].raw.contains("\"sale\""));
}

// ---- Dead letters ----

const DAY_MS: i64 = 86_400_000;

/// A message refused as the writer would keep it: `payload` is what arrived, `raw` what is kept of it.
pub(super) fn letter(received_ms: i64, payload: &[u8], raw: &str) -> Intake {
    Intake::DeadLetter {
        topic: "pos/shibuya-01/r1/events".into(),
        received_ms,
        reason: "payload is not valid JSON".into(),
        raw: raw.into(),
        size: payload.len() as u64,
        sha256: sha256_hex(payload),
    }
}

async fn letters_store(kind: Kind, letters: &[Intake]) -> TestStore {
    let store = TestStore::new(kind).await.unwrap();
    store.ingest(letters, NOW_MS).await.unwrap();
    store
}

async fn all_letters(store: &impl Handle) -> Vec<DeadLetter> {
    let query = DeadLetterQuery {
        include_dismissed: true,
        limit: 1000,
    };
    store.dead_letters(&query).await.unwrap()
}

/// The days ago each letter kept was received, newest first.
async fn ages_in_days(store: &impl Handle) -> Vec<i64> {
    all_letters(store)
        .await
        .iter()
        .map(|d| (NOW_MS - d.received_ms) / DAY_MS)
        .collect()
}

async fn a_dead_letter_keeps_the_size_and_sha256_of_the_payload_as_received_beside_its_excerpt(
    kind: Kind,
) {
    // Four megabytes of text arrive; what is kept is its beginning, as event::parse keeps it.
    let payload = format!("{{\"id\":\"big\",\"lines\":[\"{}\"]}}", "x".repeat(4 << 20));
    let kept = &payload[..1024];
    let store = letters_store(kind, &[letter(NOW_MS, payload.as_bytes(), kept)]).await;
    let [d] = &all_letters(&store).await[..] else {
        panic!("one letter")
    };
    assert_eq!(d.size, payload.len() as i64);
    // What `sha256sum` prints for the same bytes.
    let expected: String = sha2::Sha256::digest(payload.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(d.sha256.as_deref(), Some(expected.as_str()));
    assert_eq!(d.raw, kept);
    assert!(
        d.raw_is_partial(),
        "only the beginning of the payload is kept"
    );
    assert_eq!(d.topic, "pos/shibuya-01/r1/events");
    assert_eq!(d.reason, "payload is not valid JSON");
}

async fn a_list_read_returns_at_most_an_excerpt_of_each_letter_and_says_when_it_cut(kind: Kind) {
    // 60 KiB, under the size limit, so kept whole; a list read returns only its beginning.
    let payload = "é".repeat(30 * 1024);
    let small = "{\"id\":1}";
    let store = letters_store(
        kind,
        &[
            letter(NOW_MS, payload.as_bytes(), &payload),
            letter(NOW_MS, small.as_bytes(), small),
        ],
    )
    .await;
    let list = all_letters(&store).await;
    let (whole, cut) = (&list[0], &list[1]);
    assert_eq!(whole.raw, small);
    assert!(!whole.raw_is_partial());
    assert_eq!(
        cut.raw.chars().count(),
        DEAD_LETTER_EXCERPT_CHARS as usize,
        "cut between characters, never inside one"
    );
    assert_eq!(cut.raw_bytes, payload.len() as i64);
    assert!(cut.raw_is_partial());
}

async fn purging_by_age_removes_only_the_letters_received_before_the_bound(kind: Kind) {
    let letters: Vec<Intake> = [40, 31, 29, 1]
        .iter()
        .map(|days| letter(NOW_MS - days * DAY_MS, b"{", "{"))
        .collect();
    let store = letters_store(kind, &letters).await;
    let bounds = DeadLetterBounds {
        received_before_ms: Some(NOW_MS - 30 * DAY_MS),
        max_total_bytes: None,
    };
    let purged = store.purge_dead_letters(&bounds).await.unwrap();
    assert_eq!((purged.by_age, purged.by_size), (2, 0));
    assert_eq!(ages_in_days(&store).await, [1, 29]);
    let again = store.purge_dead_letters(&bounds).await.unwrap();
    assert_eq!(again.letters(), 0, "nothing is left beyond the bound");
}

async fn purging_by_total_size_removes_the_oldest_until_the_rest_fit(kind: Kind) {
    // Five letters of 1,000 bytes of text each, topic and reason included, received 5 to 1 days ago.
    let topic_and_reason = "pos/shibuya-01/r1/events".len() + "payload is not valid JSON".len();
    let raw = "r".repeat(1_000 - topic_and_reason);
    let letters: Vec<Intake> = (1..=5)
        .rev()
        .map(|days| letter(NOW_MS - days * DAY_MS, raw.as_bytes(), &raw))
        .collect();
    let store = letters_store(kind, &letters).await;
    assert_eq!(store.dead_letter_totals().await.unwrap().kept_bytes, 5_000);
    let bounds = DeadLetterBounds {
        received_before_ms: None,
        max_total_bytes: Some(2_500),
    };
    let purged = store.purge_dead_letters(&bounds).await.unwrap();
    assert_eq!((purged.by_age, purged.by_size), (0, 3));
    assert_eq!(purged.bytes, 3_000);
    assert_eq!(ages_in_days(&store).await, [1, 2], "the newest two stay");
    assert_eq!(store.dead_letter_totals().await.unwrap().kept_bytes, 2_000);

    // Exactly at the bound is within it.
    let bounds = DeadLetterBounds {
        received_before_ms: None,
        max_total_bytes: Some(2_000),
    };
    assert_eq!(
        store.purge_dead_letters(&bounds).await.unwrap().letters(),
        0
    );
    let purged = store
        .purge_dead_letters(&DeadLetterBounds::everything())
        .await
        .unwrap();
    assert_eq!(purged.by_age, 2);
    assert!(all_letters(&store).await.is_empty());
}

async fn both_bounds_apply_in_one_purge_age_first(kind: Kind) {
    let raw = "r".repeat(951);
    let letters: Vec<Intake> = [60, 50, 3, 2, 1]
        .iter()
        .map(|days| letter(NOW_MS - days * DAY_MS, raw.as_bytes(), &raw))
        .collect();
    let store = letters_store(kind, &letters).await;
    let bounds = DeadLetterBounds {
        received_before_ms: Some(NOW_MS - 30 * DAY_MS),
        max_total_bytes: Some(2_100),
    };
    let purged = store.purge_dead_letters(&bounds).await.unwrap();
    assert_eq!((purged.by_age, purged.by_size), (2, 1));
    assert_eq!(ages_in_days(&store).await, [1, 2]);
}

async fn a_dismissed_letter_leaves_the_count_and_the_default_list_but_is_kept(kind: Kind) {
    let letters: Vec<Intake> = (0..4).map(|i| letter(NOW_MS + i, b"{", "{")).collect();
    let store = letters_store(kind, &letters).await;
    assert_eq!(
        store.counts(&StoreScope::All).await.unwrap().dead_letters,
        4
    );
    let ids: Vec<i64> = all_letters(&store).await.iter().map(|d| d.id).collect();
    let (newest, oldest) = (ids[0], ids[3]);

    let n = store
        .dismiss_dead_letters(newest..=newest, "aiko", NOW_MS + 60_000)
        .await
        .unwrap();
    assert_eq!(n, 1);
    assert_eq!(
        store.counts(&StoreScope::All).await.unwrap().dead_letters,
        3
    );
    let open = store
        .dead_letters(&DeadLetterQuery {
            include_dismissed: false,
            limit: 100,
        })
        .await
        .unwrap();
    assert_eq!(open.len(), 3);
    assert!(open.iter().all(|d| d.id != newest));
    let kept = all_letters(&store).await;
    assert_eq!(
        kept[0].dismissed,
        Some(Dismissal {
            at_ms: NOW_MS + 60_000,
            by: "aiko".into()
        })
    );
    let totals = store.dead_letter_totals().await.unwrap();
    assert_eq!((totals.letters, totals.dismissed, totals.open()), (4, 1, 3));

    // A range dismisses what is not dismissed yet and leaves the first dismissal's name alone.
    let n = store
        .dismiss_dead_letters(oldest..=newest, "ito", NOW_MS + 120_000)
        .await
        .unwrap();
    assert_eq!(n, 3);
    assert_eq!(
        store.counts(&StoreScope::All).await.unwrap().dead_letters,
        0
    );
    assert_eq!(
        all_letters(&store).await[0].dismissed.as_ref().unwrap().by,
        "aiko"
    );
}

#[tokio::test]
async fn letters_kept_before_sizes_were_recorded_get_one_from_their_text_and_an_oversized_one_is_cut()
 {
    let dir = tempfile::tempdir().unwrap();
    let options = sqlx::sqlite::SqliteConnectOptions::from_str(&url(&dir))
        .unwrap()
        .create_if_missing(true);
    let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
    let mut before = sqlx::migrate!("migrations/sqlite");
    before.migrations = before
        .migrations
        .iter()
        .filter(|m| m.version < 9)
        .cloned()
        .collect::<Vec<_>>()
        .into();
    before.run(&pool).await.unwrap();
    let huge = format!("{{\"lines\":[\"{}\"]}}", "y".repeat(3 << 20));
    for raw in ["{\"id\":\"short\"}", huge.as_str()] {
        sqlx::query(
            "INSERT INTO dead_letters (received_ms, topic, reason, raw) VALUES (?, 't', 'bad', ?)",
        )
        .bind(NOW_MS)
        .bind(raw)
        .execute(&pool)
        .await
        .unwrap();
    }
    pool.close().await;

    let store: Box<dyn Tested> = Box::new(SqliteStore::open(&url(&dir)).await.unwrap());
    let list = all_letters(&store).await;
    let (big, short) = (&list[0], &list[1]);
    assert_eq!(short.size, 14);
    assert_eq!(short.raw, "{\"id\":\"short\"}");
    assert_eq!(short.sha256, None);
    assert_eq!(big.size, huge.len() as i64);
    assert_eq!(
        big.raw_bytes, 1024,
        "the body kept whole before is cut to 1 KiB"
    );
    assert!(big.raw_is_partial());
    assert_eq!(
        store.dead_letter_totals().await.unwrap().kept_bytes,
        (14 + 1 + 3) + (1024 + 1 + 3),
        "raw, topic and reason of each"
    );
}

async fn a_paced_bookmark_keeps_its_attempt_count_and_what_earlier_attempts_left_and_waits_as_told(
    kind: Kind,
) {
    let seeded = seed(
        kind,
        &[event("p-1", "void", 0, json!({}))],
        &[("p-1", &["cam-a"])],
    )
    .await;
    let store = &seeded.store;
    let claim = |at: i64| async move {
        store
            .claim_due("tillmark", at, 60_000, &Room::any(10))
            .await
            .unwrap()
    };
    let end = |id: i64, at: i64, outcome: Outcome| async move {
        let done = Finished {
            bookmark_id: id,
            outcome,
            at_ms: at,
        };
        store.finish("tillmark", &[done]).await.unwrap();
    };
    let paced = |at_ms: i64| Outcome::Paced {
        at_ms,
        note: "cam asked to wait 2 s: HTTP 429".into(),
    };

    let first = claim(NOW_MS).await.remove(0);
    let id = first.bookmark.id;
    end(id, NOW_MS, paced(NOW_MS + 2_000)).await;
    assert!(claim(NOW_MS + 1_999).await.is_empty(), "waits as told");
    let second = claim(NOW_MS + 2_000).await.remove(0);
    assert_eq!(
        second.bookmark.attempts, 1,
        "the paced claim was given back"
    );
    assert!(!second.maybe_created, "a 429 created nothing");

    end(
        id,
        NOW_MS + 2_000,
        Outcome::Retry {
            at_ms: NOW_MS + 3_000,
            error: "timed out".into(),
            maybe_created: true,
        },
    )
    .await;
    claim(NOW_MS + 3_000).await;
    end(id, NOW_MS + 3_000, paced(NOW_MS + 5_000)).await;
    let third = claim(NOW_MS + 5_000).await.remove(0);
    assert_eq!(third.bookmark.attempts, 2, "one timeout, one attempt now");
    assert!(third.maybe_created, "the timeout's doubt stands");
    assert_eq!(
        third.bookmark.last_error.as_deref(),
        Some("cam asked to wait 2 s: HTTP 429")
    );
    let history: Vec<String> = store
        .attempts(id)
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.outcome)
        .collect();
    assert_eq!(history, ["paced", "retry", "paced"]);
}

async fn a_claim_given_back_unsent_is_claimable_at_once_as_before_and_leaves_no_history(
    kind: Kind,
) {
    let seeded = seed(
        kind,
        &[event("u-1", "void", 0, json!({}))],
        &[("u-1", &["cam-a"])],
    )
    .await;
    let store = &seeded.store;
    let claim = |at: i64| async move {
        store
            .claim_due("tillmark", at, 60_000, &Room::any(10))
            .await
            .unwrap()
    };
    let give_back = |id: i64, at_ms: i64| async move {
        let done = Finished {
            bookmark_id: id,
            outcome: Outcome::Unsent,
            at_ms,
        };
        assert!(
            store.finish("tillmark", &[done]).await.unwrap(),
            "due again: the outbox's reader is told"
        );
    };

    let first = claim(NOW_MS).await.remove(0);
    let id = first.bookmark.id;
    give_back(id, NOW_MS).await;
    let again = claim(NOW_MS).await;
    assert_eq!(again.len(), 1, "claimable at once, not after the lease");
    assert_eq!(
        again[0].bookmark.attempts, 1,
        "the unsent claim counted nothing"
    );
    assert!(!again[0].maybe_created, "nothing was sent");

    // That claim's worker died mid-request: the next claim doubts it, and giving that claim back keeps the doubt.
    let after_lease = claim(NOW_MS + 60_000).await.remove(0);
    assert!(after_lease.maybe_created);
    give_back(id, NOW_MS + 60_000).await;
    let last = claim(NOW_MS + 60_000).await.remove(0);
    assert_eq!(last.bookmark.attempts, 2);
    assert!(
        last.maybe_created,
        "the dead worker's request may have reached the camera system"
    );
    assert!(store.attempts(id).await.unwrap().is_empty());

    let made = Finished {
        bookmark_id: id,
        outcome: Outcome::Made {
            vendor_id: None,
            detail: "201".into(),
            made_as: None,
        },
        at_ms: NOW_MS + 60_000,
    };
    assert!(
        !store.finish("tillmark", &[made]).await.unwrap(),
        "a bookmark made, nothing waiting after failures: no row is due sooner"
    );
}

async fn one_batch_holding_an_event_its_copy_and_a_forgery_of_its_id_stores_the_first_and_tells_the_others_apart(
    kind: Kind,
) {
    let seeded = seed(kind, &[], &[]).await;
    let store = &seeded.store;
    let mut batch: Vec<Intake> = (0..300)
        .map(|i| intake(&event(&format!("e-{i}"), "void", i, json!({})), &["cam-1"]))
        .collect();
    // Past the first statement's rows, so the copies meet their original in another INSERT as well as in one.
    batch.push(intake(&event("e-7", "void", 7, json!({})), &["cam-1"]));
    batch.push(intake(&event("e-290", "sale", 290, json!({})), &["cam-1"]));
    batch.insert(3, intake(&event("e-1", "void", 1, json!({})), &["cam-1"]));
    let outcomes = store.ingest(&batch, NOW_MS).await.unwrap();
    assert_eq!(outcomes.len(), 303);
    let stored: Vec<i64> = outcomes
        .iter()
        .filter_map(|o| match o {
            IntakeOutcome::Stored { seq, bookmarks: 1 } => Some(*seq),
            _ => None,
        })
        .collect();
    assert_eq!(
        stored.len(),
        300,
        "every distinct event stored once, with its bookmark"
    );
    assert!(
        stored.windows(2).all(|w| w[0] < w[1]),
        "stored in arrival order"
    );
    assert_eq!(
        outcomes[3],
        IntakeOutcome::Duplicate,
        "a copy within the same statement"
    );
    assert_eq!(
        outcomes[301],
        IntakeOutcome::Duplicate,
        "a copy in a later statement"
    );
    assert!(
        matches!(outcomes[302], IntakeOutcome::Reused { .. }),
        "another content under a stored id: {:?}",
        outcomes[302]
    );
    let counts = store.counts(&StoreScope::All).await.unwrap();
    assert_eq!(
        (counts.events, counts.pending, counts.dead_letters),
        (300, 300, 1)
    );
}
/// How many events the store says its search indexes do not hold yet.
async fn unindexed(store: &impl Handle) -> i64 {
    store.counts(&StoreScope::All).await.unwrap().unindexed
}

/// The ids of the events `store` lists for a search.
async fn found(store: &impl Handle, ids: &HashMap<i64, String>, text: &str) -> Vec<String> {
    store
        .events(&EventQuery {
            search: Some(text.into()),
            limit: 1000,
            ..EventQuery::default()
        })
        .await
        .unwrap()
        .iter()
        .map(|e| ids[&e.seq].clone())
        .collect()
}

#[tokio::test]
async fn a_stored_event_is_found_at_once_and_still_after_the_indexer_took_it() {
    let (store, ids) = stored(
        Kind::Sqlite,
        &[event(
            "ret-1",
            "refund",
            1,
            json!({ "cashier": "c101", "transaction": "T-1001", "reason": "お客様都合による返品",
                    "lines": ["おにぎり 鮭 ¥180"] }),
        )],
        &[],
    )
    .await;
    assert_eq!(unindexed(&store).await, 1);
    for text in ["鮭", "返品", "お客様都合", "t-1001", "おにぎり 180"] {
        assert_eq!(
            found(&store, &ids, text).await,
            ["ret-1"],
            "{text}, not indexed yet"
        );
    }
    assert_eq!(store.index_search(1000).await.unwrap(), 1);
    assert_eq!(unindexed(&store).await, 0);
    for text in ["鮭", "返品", "お客様都合", "t-1001", "おにぎり 180"] {
        assert_eq!(
            found(&store, &ids, text).await,
            ["ret-1"],
            "{text}, indexed"
        );
    }
    assert!(found(&store, &ids, "返金").await.is_empty());
    assert_eq!(
        store.index_search(1000).await.unwrap(),
        0,
        "nothing left to index"
    );
}

#[tokio::test]
async fn one_and_two_character_words_are_found_through_the_gram_index_once_indexed() {
    let shop = shop(Kind::Sqlite).await;
    for (word, seqs) in [
        ("鮭", vec!["ret-1"]),
        ("返品", vec!["ret-2", "ret-1"]),
        ("C2", vec!["sale-2"]),
    ] {
        let held: Vec<i64> = sqlx::query_scalar(
            "SELECT rowid FROM events_grams WHERE events_grams MATCH ? ORDER BY rowid DESC",
        )
        .bind(super::sqlite::gram_token(word))
        .fetch_all(shop.indexed.sqlite().reader())
        .await
        .unwrap();
        let held: Vec<&str> = held.iter().map(|seq| shop.ids[seq].as_str()).collect();
        assert_eq!(held, seqs, "{word} in the gram index");
        assert_eq!(shop.search(word).await, seqs, "{word} searched");
    }
    // Grams never span two receipt lines, nor a line and the reason.
    assert!(shop.search("鮭レ").await.is_empty());
}

async fn a_word_in_more_events_than_an_index_lists_is_found_newest_first_all_the_same(kind: Kind) {
    // Enough refunds that every index leaves the list to test rows newest first.
    let events: Vec<Value> = (0..1_200)
        .map(|i| {
            let store = if i % 2 == 0 { "shibuya-01" } else { "umeda-04" };
            let mut e = event(
                &format!("e{i}"),
                "refund",
                i,
                json!({ "reason": "お客様都合による返品", "lines": [format!("返品 ¥{i}")] }),
            );
            e["store"] = json!(store);
            e
        })
        .collect();
    let seeded = seed(kind, &events, &[]).await;
    let newest = |n: usize, step: usize| -> Vec<String> {
        (0..1_200)
            .rev()
            .step_by(step)
            .take(n)
            .map(|i| format!("e{i}"))
            .collect()
    };
    for text in ["返品", "お客様都合", "返品 お客様都合", "¥"] {
        let page = seeded
            .list(EventQuery {
                search: Some(text.into()),
                ..EventQuery::default()
            })
            .await;
        assert_eq!(page, newest(1_000, 1), "{text}");
    }
    let umeda = seeded
        .list(EventQuery {
            search: Some("返品".into()),
            store: Some("umeda-04".into()),
            ..EventQuery::default()
        })
        .await;
    assert_eq!(umeda, newest(600, 2));
    assert_eq!(
        seeded
            .list(EventQuery {
                search: Some("¥1199".into()),
                ..EventQuery::default()
            })
            .await,
        ["e1199"]
    );
}

#[tokio::test]
async fn the_index_watermark_survives_a_restart() {
    let events: Vec<Value> = (0..5)
        .map(|i| {
            event(
                &format!("e{i}"),
                "refund",
                i,
                json!({ "lines": [format!("返品 {i}")] }),
            )
        })
        .collect();
    let (first, ids) = stored(Kind::Sqlite, &events, &[]).await;
    assert_eq!(first.index_search(3).await.unwrap(), 3);
    assert_eq!(unindexed(&first).await, 2);
    first.close().await;

    let store = first.again().await;
    assert_eq!(
        unindexed(&store).await,
        2,
        "what was committed stays indexed"
    );
    assert_eq!(found(&store, &ids, "返品").await.len(), 5);
    assert_eq!(
        store.index_search(100).await.unwrap(),
        2,
        "only the rest is indexed again"
    );
    store.close().await;

    let store = first.again().await;
    assert_eq!(unindexed(&store).await, 0);
    assert_eq!(store.index_search(100).await.unwrap(), 0);
    assert_eq!(found(&store, &ids, "返品").await.len(), 5);
    assert_eq!(found(&store, &ids, "返品 4").await, ["e4"]);
}

#[tokio::test]
async fn changing_or_deleting_an_event_keeps_its_search_right_before_and_after_reindexing() {
    let shop = shop(Kind::Sqlite).await;
    for store in [&shop.store, &shop.indexed] {
        // An operator's fix in the sqlite3 shell: the reason of ret-2 and a receipt line of ret-1 change, and
        // sale-1 goes (its bookmarks first; it has none).
        for fix in [
            "UPDATE events SET reason = '商品不良' WHERE id = 'ret-2'",
            "UPDATE events SET lines = '[\"返金 ¥1,280\"]' WHERE id = 'ret-1'",
            "DELETE FROM events WHERE id = 'sale-1'",
        ] {
            store.execute(fix).await.unwrap();
        }
    }
    assert_eq!(unindexed(&shop.indexed).await, 2, "the two changed events");
    for _ in 0..2 {
        assert!(shop.search("お客様都合").await.is_empty());
        assert!(shop.search("鮭").await.is_empty());
        assert!(
            shop.search("返品").await.is_empty(),
            "neither the new reason nor the new line"
        );
        assert_eq!(shop.search("商品不良").await, ["ret-2"]);
        assert_eq!(shop.search("不良").await, ["ret-2"]);
        assert_eq!(shop.search("返金").await, ["ret-1"]);
        assert!(shop.search("品出し").await.is_empty());
        assert!(shop.search("出").await.is_empty());
        index_all(&shop.indexed).await;
    }
    assert_eq!(unindexed(&shop.indexed).await, 0);
    let held: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM events_search WHERE events_search MATCH '\"品出し\" OR \"お客様都合\"'",
    )
    .fetch_one(shop.indexed.sqlite().reader())
    .await
    .unwrap();
    assert_eq!(held, 0, "the old text is out of the index");
}

#[tokio::test]
async fn events_the_old_trigger_indexed_keep_their_place_and_get_their_grams() {
    let dir = tempfile::tempdir().unwrap();
    let pool = sqlx::SqlitePool::connect(&format!("{}?mode=rwc", url(&dir)))
        .await
        .unwrap();
    let mut before = sqlx::migrate!("migrations/sqlite");
    before.migrations = before
        .migrations
        .iter()
        .filter(|m| m.version < 10)
        .cloned()
        .collect();
    before.run(&pool).await.unwrap();
    for i in 1..=3 {
        sqlx::query(
            "INSERT INTO events (store, id, event_key, type, at, at_ms, received_ms, register, reason, lines, raw, \
             topic, flagged, mapped) VALUES ('shibuya-01', ?1, ?1, 'refund', '2026-11-21T09:00:00Z', ?2, 0, 'r1', \
             'お客様都合', '[\"返品 ¥1,280\"]', '{}', 't', 1, 1)",
        )
        .bind(format!("old-{i}"))
        .bind(i)
        .execute(&pool)
        .await
        .unwrap();
    }
    pool.close().await;

    let sqlite = SqliteStore::open(&url(&dir)).await.unwrap();
    let reader = sqlite.reader().clone();
    let store: Box<dyn Tested> = Box::new(sqlite);
    let (seq, grams_seq): (i64, i64) =
        sqlx::query_as("SELECT seq, grams_seq FROM search_watermark")
            .fetch_one(&reader)
            .await
            .unwrap();
    assert_eq!(
        (seq, grams_seq),
        (3, 0),
        "trigrams are there; grams are not yet"
    );
    assert_eq!(unindexed(&store).await, 3);
    let ids: HashMap<i64, String> = (1..=3).map(|i| (i, format!("old-{i}"))).collect();
    for text in ["返品", "お客様都合", "¥"] {
        assert_eq!(
            found(&store, &ids, text).await,
            ["old-3", "old-2", "old-1"],
            "{text}"
        );
    }
    assert_eq!(store.index_search(2).await.unwrap(), 2);
    assert_eq!(unindexed(&store).await, 1);
    index_all(&store).await;
    assert_eq!(unindexed(&store).await, 0);
    for text in ["返品", "お客様都合", "¥"] {
        assert_eq!(
            found(&store, &ids, text).await,
            ["old-3", "old-2", "old-1"],
            "{text}"
        );
    }
    let trigram_rows: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM events_search WHERE events_search MATCH '\"お客様都合\"'",
    )
    .fetch_one(&reader)
    .await
    .unwrap();
    assert_eq!(trigram_rows, 3, "indexed once each, not again");
}

async fn a_claim_takes_each_camera_systems_rows_up_to_its_own_room_and_leaves_the_rest_due(
    kind: Kind,
) {
    let store = TestStore::new(kind).await.unwrap();
    let batch: Vec<Intake> = (0..3)
        .map(|n| {
            let mut intake = intake(
                &event(&format!("r-{n}"), "void", n, json!({})),
                &["cam-a", "cam-b", "cam-c"],
            );
            let Intake::Event { bookmarks, .. } = &mut intake else {
                unreachable!()
            };
            for (b, system) in bookmarks.iter_mut().zip(["slow", "fast", "gone"]) {
                b.system = system.into();
            }
            intake
        })
        .collect();
    store.ingest(&batch, NOW_MS).await.unwrap();
    let systems = |jobs: &[Job]| {
        let mut s: Vec<String> = jobs.iter().map(|j| j.bookmark.system.clone()).collect();
        s.sort();
        s
    };
    let later = NOW_MS + 3_600_000;
    let room = Room {
        systems: vec![("slow".into(), 1), ("fast".into(), 2)],
        others: 1,
    };
    let first = store
        .claim_due("tillmark", later, 60_000, &room)
        .await
        .unwrap();
    assert_eq!(systems(&first), ["fast", "fast", "gone", "slow"]);
    let slow = first.iter().find(|j| j.bookmark.system == "slow").unwrap();
    assert_eq!(slow.event.id, "r-0", "each system's earliest first");

    let room = Room {
        systems: vec![("slow".into(), 0), ("fast".into(), 5)],
        others: 0,
    };
    let second = store
        .claim_due("tillmark", later, 60_000, &room)
        .await
        .unwrap();
    assert_eq!(systems(&second), ["fast"], "no room, no rows: slow's wait");
    assert!(
        store
            .claim_due("tillmark", later, 60_000, &Room::default())
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn reading_pages_holds_at_most_a_small_page_cache_on_each_index_connection() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&url(&dir)).await.unwrap();
    // Every connection the pool may open at once, held together so none is handed out twice.
    let mut held = Vec::new();
    for _ in 0..store.reader().options().get_max_connections() {
        held.push(store.reader().acquire().await.unwrap());
    }
    for connection in &mut held {
        let cache: i64 = sqlx::query_scalar("PRAGMA cache_size")
            .fetch_one(&mut **connection)
            .await
            .unwrap();
        // Negative: a size in KiB rather than in pages. SQLite's own default, -2000, held about 11 MB more after
        // 150 page renders.
        assert!(
            (-512..0).contains(&cache),
            "an index connection may cache {cache} (negative: KiB, else pages)"
        );
    }
}

backend_tests!(kind:
    a_two_character_japanese_word_finds_the_receipt_line_and_the_reason_holding_it_and_nothing_else,
    a_longer_japanese_phrase_is_found_anywhere_inside_a_reason,
    a_transaction_number_and_a_cashier_id_are_found_in_any_case,
    every_word_of_a_search_must_appear_whatever_its_length,
    quotes_stars_and_query_syntax_in_a_search_are_plain_text,
    amount_bounds_include_both_ends_and_leave_out_events_without_an_amount,
    the_bookmark_state_filter_lists_events_with_a_bookmark_in_that_state,
    search_combines_with_every_other_filter,
    paging_through_a_filtered_search_returns_every_match_once,
    a_case_moves_only_as_its_state_allows_and_its_history_cannot_be_rewritten,
    an_id_used_again_with_other_content_is_a_dead_letter_and_marks_the_original,
    a_dead_letter_keeps_the_size_and_sha256_of_the_payload_as_received_beside_its_excerpt,
    a_list_read_returns_at_most_an_excerpt_of_each_letter_and_says_when_it_cut,
    purging_by_age_removes_only_the_letters_received_before_the_bound,
    purging_by_total_size_removes_the_oldest_until_the_rest_fit,
    both_bounds_apply_in_one_purge_age_first,
    a_dismissed_letter_leaves_the_count_and_the_default_list_but_is_kept,
    a_paced_bookmark_keeps_its_attempt_count_and_what_earlier_attempts_left_and_waits_as_told,
    a_claim_given_back_unsent_is_claimable_at_once_as_before_and_leaves_no_history,
    one_batch_holding_an_event_its_copy_and_a_forgery_of_its_id_stores_the_first_and_tells_the_others_apart,
    a_word_in_more_events_than_an_index_lists_is_found_newest_first_all_the_same,
    a_claim_takes_each_camera_systems_rows_up_to_its_own_room_and_leaves_the_rest_due,
);

// ---- Leases across daemons ----

/// Stores `n` voids, each with one bookmark due now.
async fn outbox(store: &TestStore, n: i64) {
    let batch: Vec<Intake> = (0..n)
        .map(|i| intake(&event(&format!("v{i}"), "void", i, json!({})), &["cam-1"]))
        .collect();
    store.ingest(&batch, NOW_MS).await.unwrap();
}

/// Every row `store` claims for `holder`, a few at a time, until none is left due.
async fn claim_all(store: &impl Handle, holder: &str) -> Vec<i64> {
    let mut ids = Vec::new();
    loop {
        let jobs = store
            .claim_due(holder, NOW_MS + 3_600_000, 60_000, &Room::any(7))
            .await
            .unwrap();
        if jobs.is_empty() {
            return ids;
        }
        ids.extend(jobs.iter().map(|j| j.bookmark.id));
    }
}

async fn two_daemons_claiming_at_once_never_get_the_same_row(store: &TestStore) {
    outbox(store, 300).await;
    let other = store.again().await;
    let (mine, theirs) = tokio::join!(claim_all(store, "a"), claim_all(&other, "b"));
    let mine: BTreeSet<i64> = mine.into_iter().collect();
    let theirs: BTreeSet<i64> = theirs.into_iter().collect();
    assert!(
        mine.is_disjoint(&theirs),
        "both claimed {:?}",
        mine.intersection(&theirs).collect::<Vec<_>>()
    );
    assert_eq!(mine.len() + theirs.len(), 300, "every row claimed once");
}

async fn a_live_lease_is_never_taken_and_an_expired_one_is_with_its_attempt_marked(
    store: &TestStore,
) {
    outbox(store, 1).await;
    let other = store.again().await;
    let first = store
        .claim_due("a", NOW_MS, 60_000, &Room::any(10))
        .await
        .unwrap();
    assert_eq!(first.len(), 1);
    assert!(!first[0].maybe_created);
    for at in [NOW_MS, NOW_MS + 59_999] {
        let taken = other
            .claim_due("b", at, 60_000, &Room::any(10))
            .await
            .unwrap();
        assert!(taken.is_empty(), "a's lease is live at {at}");
    }
    let taken = other
        .claim_due("b", NOW_MS + 60_000, 60_000, &Room::any(10))
        .await
        .unwrap();
    assert_eq!(taken.len(), 1, "a's lease has expired");
    assert_eq!(taken[0].bookmark.id, first[0].bookmark.id);
    assert!(
        taken[0].maybe_created,
        "a never reported back: its attempt may have reached the camera"
    );
}

async fn an_outcome_after_its_lease_passed_on_leaves_the_new_holder_alone_unless_it_was_made(
    store: &TestStore,
) {
    outbox(store, 2).await;
    let other = store.again().await;
    let first = store
        .claim_due("a", NOW_MS, 60_000, &Room::any(10))
        .await
        .unwrap();
    let taken = other
        .claim_due("b", NOW_MS + 60_000, 60_000, &Room::any(10))
        .await
        .unwrap();
    assert_eq!(
        (first.len(), taken.len()),
        (2, 2),
        "a's leases expired and b took both rows"
    );
    let (timed_out, made) = (&first[0], &first[1]);
    let at = NOW_MS + 61_000;
    let finished = |id: i64, outcome: Outcome| Finished {
        bookmark_id: id,
        outcome,
        at_ms: at,
    };
    let vendor = |id: &str| Outcome::Made {
        vendor_id: Some(id.into()),
        detail: "201".into(),
        made_as: None,
    };
    // a was slow, not dead: its answers arrive while b's requests are under way.
    store
        .finish(
            "a",
            &[
                finished(
                    timed_out.bookmark.id,
                    Outcome::Retry {
                        at_ms: at,
                        error: "timed out".into(),
                        maybe_created: true,
                    },
                ),
                finished(made.bookmark.id, vendor("vms-a")),
            ],
        )
        .await
        .unwrap();
    assert!(
        store
            .claim_due("c", at, 60_000, &Room::any(10))
            .await
            .unwrap()
            .is_empty(),
        "b's lease on the timed-out row still holds, and the made row is done"
    );
    other
        .finish(
            "b",
            &[
                finished(timed_out.bookmark.id, vendor("vms-b")),
                finished(
                    made.bookmark.id,
                    Outcome::Failed {
                        error: "409 exists".into(),
                    },
                ),
            ],
        )
        .await
        .unwrap();
    let bookmark = |job: &Job| {
        let seq = job.event.seq;
        async move {
            let event = store.event(seq, &StoreScope::All).await.unwrap().unwrap();
            event.bookmarks.into_iter().next().unwrap()
        }
    };
    let (b_made, a_made) = (bookmark(timed_out).await, bookmark(made).await);
    assert_eq!(
        (b_made.state, b_made.vendor_id.as_deref()),
        (BookmarkState::Made, Some("vms-b"))
    );
    assert_eq!(
        (a_made.state, a_made.vendor_id.as_deref()),
        (BookmarkState::Made, Some("vms-a")),
        "the camera system has a's bookmark: b's late failure does not undo it"
    );
    let history = store.attempts(made.bookmark.id).await.unwrap();
    let lines: Vec<(&str, &str)> = history
        .iter()
        .map(|a| (a.outcome.as_str(), a.detail.as_deref().unwrap_or("")))
        .collect();
    assert_eq!(
        lines,
        [
            ("made", "late, the lease had passed to another daemon: 201"),
            (
                "failed",
                "late, the lease had passed to another daemon: 409 exists"
            ),
        ]
    );
    let history = store.attempts(timed_out.bookmark.id).await.unwrap();
    assert_eq!(
        history[0].detail.as_deref(),
        Some("late, the lease had passed to another daemon: timed out")
    );
}

async fn a_restarted_daemon_releases_only_its_own_leases(store: &TestStore) {
    outbox(store, 2).await;
    let other = store.again().await;
    let mine = store
        .claim_due("a", NOW_MS, 60_000, &Room::any(1))
        .await
        .unwrap();
    let theirs = other
        .claim_due("b", NOW_MS, 60_000, &Room::any(1))
        .await
        .unwrap();
    assert_eq!((mine.len(), theirs.len()), (1, 1));
    assert_eq!(store.release_orphaned_claims("a").await.unwrap(), 1);
    let again = store
        .claim_due("a", NOW_MS + 1, 60_000, &Room::any(10))
        .await
        .unwrap();
    let ids: Vec<i64> = again.iter().map(|j| j.bookmark.id).collect();
    assert_eq!(
        ids,
        [mine[0].bookmark.id],
        "a's own row at once; b's stays b's while its lease lasts"
    );
    assert_eq!(store.release_orphaned_claims("c").await.unwrap(), 0);
}

async fn a_camera_system_hold_only_lengthens_and_ends_when_its_time_has_passed(store: &TestStore) {
    store.hold_system("verkada", 10_000).await.unwrap();
    store.hold_system("verkada", 8_000).await.unwrap();
    store.hold_system("nvr", 5_000).await.unwrap();
    let mut held = store.held_systems(4_000).await.unwrap();
    held.sort();
    assert_eq!(
        held,
        vec![("nvr".to_string(), 5_000), ("verkada".to_string(), 10_000)],
        "a shorter hold asked later does not cut a longer one short"
    );
    assert_eq!(
        store.held_systems(5_000).await.unwrap(),
        vec![("verkada".to_string(), 10_000)]
    );
    assert!(store.held_systems(10_000).await.unwrap().is_empty());
}

backend_tests!(
    a_camera_system_hold_only_lengthens_and_ends_when_its_time_has_passed,
    two_daemons_claiming_at_once_never_get_the_same_row,
    a_live_lease_is_never_taken_and_an_expired_one_is_with_its_attempt_marked,
    an_outcome_after_its_lease_passed_on_leaves_the_new_holder_alone_unless_it_was_made,
    a_restarted_daemon_releases_only_its_own_leases,
);
