//! Each rule kind against streams that match and streams that do not, on real databases (SQLite, and
//! PostgreSQL when one is named), through ingest's own planning; across a restart (a second handle on the same
//! database, as a restarted or second daemon has); and the back-test against what live matching recorded.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use super::*;
use crate::config::{Millis, Watchers};
use crate::store::test_backends::{Handle, Kind, TestStore, backend_tests};
use crate::store::{
    EventQuery, ExceptionFilter, ExceptionQuery, Intake, IntakeOutcome, StoreScope,
};

/// Shibuya keeps Tokyo time and is open 09:00 to 22:00, but to 02:00 the next morning on Fridays and Saturdays
/// and not at all on Mondays. Its register r1 is watched by one camera; the New York store by none.
const SITE: &str = r#"
[[stores]]
id = "shibuya-01"
timezone = "Asia/Tokyo"
hours = { tue = "09:00-22:00", wed = "09:00-22:00", thu = "09:00-22:00", fri = "09:00-02:00", sat = "09:00-02:00", sun = "10:00-20:00" }
[[stores]]
id = "ny-01"
timezone = "America/New_York"
hours = "07:00-23:00"
[[camera_systems]]
id = "nvr"
integration = "webhook"
url = "https://nvr.example.com/"
[[cameras]]
system = "nvr"
device = "counter"
registers = ["shibuya-01/r1"]
"#;

fn config(rules: &str) -> Config {
    Config::parse(&format!("{SITE}\n{rules}"), &|_| None).expect("a valid site")
}

/// A Shibuya event on register r1 at `local` (Tokyo time on Saturday 2026-11-21, or a full date and time),
/// with `fields` added or replaced.
fn ev(id: &str, kind: &str, local: &str, fields: Value) -> Value {
    let at = if local.len() > 8 {
        format!("{local}+09:00")
    } else {
        format!("2026-11-21T{local}+09:00")
    };
    let mut e = json!({"id": id, "type": kind, "at": at, "store": "shibuya-01", "register": "r1"});
    e.as_object_mut()
        .unwrap()
        .extend(fields.as_object().unwrap().clone());
    e
}

/// When the tests judge: long after every event arrived.
const LATER_MS: i64 = 1_900_000_000_000;

/// Stores `events` as ingest does (the same planning of flags and bookmarks), received at their own moments.
async fn put(store: &impl Handle, config: &Config, events: &[Value]) {
    let watchers = Watchers::new(config);
    let batch: Vec<Intake> = events
        .iter()
        .map(|payload| {
            let parsed = crate::event::parse(payload.to_string().as_bytes());
            let event = parsed.result.expect("a valid test event");
            let plan = crate::ingest::plan::plan(config, &watchers, &event);
            Intake::Event {
                topic: format!("pos/{}/{}/events", event.store, event.register),
                received_ms: event.at_ms(),
                raw: parsed.raw,
                digest: crate::event::content_digest(&event),
                signed: None,
                flagged: plan.flagged,
                mapped: plan.mapped,
                bookmarks: plan.bookmarks,
                drawer: plan.drawer,
                event: Box::new(event),
            }
        })
        .collect();
    for outcome in store.ingest(&batch, LATER_MS).await.unwrap() {
        assert!(
            matches!(outcome, IntakeOutcome::Stored { .. }),
            "{outcome:?}"
        );
    }
}

/// Runs the evaluator's steps until the backlog is empty, as the daemon's would.
async fn judge(store: &impl Handle, config: &Config) {
    let watchers = Watchers::new(config);
    while step(&**store, config, &watchers, &config.rules, LATER_MS)
        .await
        .unwrap()
        .0
        > 0
    {}
}

/// The exceptions recorded, as `(rule, event id)`, sorted.
async fn found(store: &impl Handle) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for x in store
        .exceptions(&ExceptionQuery {
            limit: 1000,
            ..ExceptionQuery::default()
        })
        .await
        .unwrap()
    {
        let event = store
            .event(x.event_seq, &StoreScope::All)
            .await
            .unwrap()
            .unwrap();
        out.push((x.rule, event.id));
    }
    out.sort();
    out
}

/// The ids of the events `rule` matched.
async fn matched(store: &impl Handle, rule: &str) -> BTreeSet<String> {
    found(store)
        .await
        .into_iter()
        .filter(|(r, _)| r == rule)
        .map(|(_, id)| id)
        .collect()
}

fn ids(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|s| s.to_string()).collect()
}

const AMOUNT: &str = r#"
[[rules]]
id = "big-refund"
kind = "amount_over"
types = ["refund"]
min_amount = 500000
currency = "JPY"
severity = "high"
stores = ["shibuya-01"]
"#;

async fn a_refund_at_or_above_the_amount_in_its_currency_is_an_exception(store: &TestStore) {
    let config = config(AMOUNT);
    let yen = |id: &str, kind: &str, amount: i64, currency: &str| {
        ev(
            id,
            kind,
            "12:00:00",
            json!({"amount": amount, "currency": currency}),
        )
    };
    put(
        store,
        &config,
        &[
            yen("exact", "refund", 500_000, "JPY"),
            yen("negative", "refund", -720_000, "JPY"),
            yen("small", "refund", 499_999, "JPY"),
            yen("dollars", "refund", 900_000, "USD"),
            yen("a-sale", "sale", 900_000, "JPY"),
            json!({"id": "elsewhere", "type": "refund", "at": "2026-11-21T12:00:00-05:00", "store": "ny-01",
                   "register": "r1", "amount": 900_000, "currency": "JPY"}),
        ],
    )
    .await;
    judge(store, &config).await;
    assert_eq!(
        matched(store, "big-refund").await,
        ids(&["exact", "negative"])
    );
    let listed = store
        .exceptions(&ExceptionQuery {
            rule: Some("big-refund".into()),
            limit: 10,
            ..ExceptionQuery::default()
        })
        .await
        .unwrap();
    assert!(listed.iter().all(|x| x.severity == "high"));
    assert!(
        listed
            .iter()
            .any(|x| why_text(&x.why) == "refund of ¥500,000, at or above ¥500,000"),
        "{listed:?}"
    );
}

const TEXT: &str = r#"
[[rules]]
id = "override"
kind = "text"
pattern = "*PRICE OVERRIDE*"
value = "> 1000"
[[rules]]
id = "gift-card-return"
kind = "text"
types = ["refund"]
field = "reason"
regex = "(?i)gift\\s*card"
[[rules]]
id = "no-manager"
kind = "text"
field = "attributes.manager"
pattern = "none"
"#;

async fn receipt_lines_reasons_and_attributes_match_wildcards_regexes_and_values(
    store: &TestStore,
) {
    let config = config(TEXT);
    let lines = |id: &str, line: &str| {
        ev(
            id,
            "correction",
            "12:00:00",
            json!({"lines": ["ONIGIRI 180", line]}),
        )
    };
    put(
        store,
        &config,
        &[
            lines("big-override", "price override      1,280"),
            lines("small-override", "PRICE OVERRIDE       980"),
            lines("other-line", "DISCOUNT            1,280"),
            ev(
                "gift",
                "refund",
                "12:01:00",
                json!({"reason": "Gift Card returned"}),
            ),
            ev(
                "gift-sale",
                "sale",
                "12:01:00",
                json!({"reason": "gift card"}),
            ),
            ev(
                "unapproved",
                "void",
                "12:02:00",
                json!({"attributes": {"manager": "NONE"}}),
            ),
            ev(
                "approved",
                "void",
                "12:02:00",
                json!({"attributes": {"manager": "m7"}}),
            ),
        ],
    )
    .await;
    judge(store, &config).await;
    assert_eq!(matched(store, "override").await, ids(&["big-override"]));
    assert_eq!(matched(store, "gift-card-return").await, ids(&["gift"]));
    assert_eq!(matched(store, "no-manager").await, ids(&["unapproved"]));
    let why = &store
        .exceptions(&ExceptionQuery {
            rule: Some("override".into()),
            limit: 1,
            ..ExceptionQuery::default()
        })
        .await
        .unwrap()[0]
        .why;
    assert_eq!(
        why_text(why),
        "line 2 matches \"*PRICE OVERRIDE*\" with value 1280 (> 1000)"
    );
}

const SIGN_ON: &str = r#"
[[rules]]
id = "quick-no-sale"
kind = "no_sale_after_sign_on"
within = "60s"
"#;

async fn a_no_sale_within_a_minute_of_sign_on_is_an_exception_and_a_later_one_is_not(
    store: &TestStore,
) {
    let config = config(SIGN_ON);
    put(
        store,
        &config,
        &[
            ev("on", "sign_on", "12:00:00", json!({})),
            ev("quick", "no_sale", "12:00:40", json!({})),
            ev("later", "no_sale", "12:05:00", json!({})),
            // Another register's sign-on explains nothing here.
            ev("other-on", "sign_on", "13:00:00", json!({"register": "r2"})),
            ev("other-register", "no_sale", "13:00:10", json!({})),
        ],
    )
    .await;
    judge(store, &config).await;
    // The sign-on arrives after its no-sale (a register that queued): still found.
    put(
        store,
        &config,
        &[ev("queued-no-sale", "no_sale", "14:00:30", json!({}))],
    )
    .await;
    judge(store, &config).await;
    put(
        store,
        &config,
        &[ev("queued-on", "sign_on", "14:00:00", json!({}))],
    )
    .await;
    judge(store, &config).await;
    assert_eq!(
        matched(store, "quick-no-sale").await,
        ids(&["quick", "queued-no-sale"])
    );
}

const REFUND: &str = r#"
[[rules]]
id = "refund-no-sale"
kind = "refund_without_sale"
within = "30d"
"#;

async fn a_refund_whose_original_sale_was_not_seen_is_an_exception_and_one_with_its_sale_is_not(
    store: &TestStore,
) {
    let config = config(REFUND);
    let refund = |id: &str, original: &str| {
        ev(
            id,
            "refund",
            "12:00:00",
            json!({"attributes": {"original_transaction": original}}),
        )
    };
    put(
        store,
        &config,
        &[
            ev("sale", "sale", "2026-11-10T18:00:00", json!({"transaction": "T-1"})),
            ev("old-sale", "sale", "2026-09-01T18:00:00", json!({"transaction": "T-2"})),
            json!({"id": "ny-sale", "type": "sale", "at": "2026-11-20T12:00:00-05:00", "store": "ny-01",
                   "register": "r1", "transaction": "T-3"}),
            refund("with-sale", "T-1"),
            refund("sale-too-old", "T-2"),
            refund("sale-at-another-store", "T-3"),
            refund("never-sold", "T-4"),
            ev("no-reference", "refund", "12:00:00", json!({})),
        ],
    )
    .await;
    judge(store, &config).await;
    assert_eq!(
        matched(store, "refund-no-sale").await,
        ids(&["sale-too-old", "sale-at-another-store", "never-sold"])
    );
}

const ITEM_VOIDS: &str = r#"
[[rules]]
id = "many-item-voids"
kind = "item_voids_in_transaction"
min_count = 3
"#;

async fn the_third_item_void_of_a_transaction_is_its_one_exception(store: &TestStore) {
    let config = config(ITEM_VOIDS);
    let void =
        |id: &str, txn: &str, local: &str| ev(id, "item_void", local, json!({"transaction": txn}));
    put(
        store,
        &config,
        &[
            void("a1", "T-10", "12:00:01"),
            void("a2", "T-10", "12:00:02"),
            void("b1", "T-11", "12:00:03"),
            void("a3", "T-10", "12:00:04"),
            void("a4", "T-10", "12:00:05"),
            void("b2", "T-11", "12:00:06"),
        ],
    )
    .await;
    judge(store, &config).await;
    assert_eq!(matched(store, "many-item-voids").await, ids(&["a3"]));
}

const SEQUENCE: &str = r#"
[[rules]]
id = "sweetheart"
kind = "sequence"
first = "sale"
then = "void"
within = "2m"
same_amount = true
bookmark = true
"#;

/// Sale then void of the same amount within two minutes, whichever is stored second, and across a restart.
async fn sweethearting(kind: Kind) {
    let store = TestStore::new(kind).await.unwrap();
    let config = config(SEQUENCE);
    let money = |id: &str, kind: &str, local: &str, amount: i64| {
        ev(
            id,
            kind,
            local,
            json!({"amount": amount, "currency": "JPY"}),
        )
    };
    put(
        &store,
        &config,
        &[
            money("s1", "sale", "12:00:00", 1280),
            money("v1", "void", "12:01:00", -1280),
            money("s2", "sale", "12:10:00", 1280),
            money("v2-other-amount", "void", "12:10:30", 980),
            money("s3", "sale", "12:20:00", 1280),
            money("v3-too-late", "void", "12:23:00", 1280),
        ],
    )
    .await;
    judge(&store, &config).await;
    // The void is stored, judged; the daemon stops; its sale arrives, an hour late, at a restarted daemon.
    put(&store, &config, &[money("v4", "void", "12:30:50", 4500)]).await;
    judge(&store, &config).await;
    let again = store.again().await;
    put(
        &again,
        &config,
        &[money("s4-late", "sale", "12:30:00", 4500)],
    )
    .await;
    judge(&again, &config).await;
    assert_eq!(matched(&again, "sweetheart").await, ids(&["v1", "v4"]));
    // A void is bookmarked by its type already: the rule's `bookmark` adds no second one.
    let voids = again
        .events(&EventQuery {
            kind: Some("void".into()),
            limit: 10,
            ..EventQuery::default()
        })
        .await
        .unwrap();
    assert!(voids.iter().all(|e| e.bookmarks.len() == 1), "{voids:?}");
}

const HOURS: &str = r#"
[[rules]]
id = "after-hours"
kind = "outside_hours"
types = ["no_sale", "refund", "drawer_open"]
bookmark = true
"#;

async fn events_outside_the_stores_hours_on_its_own_clock_are_exceptions(store: &TestStore) {
    let config = config(HOURS);
    put(
        store,
        &config,
        &[
            // Saturday: open to 02:00 Sunday morning, Tokyo time.
            ev("sat-evening", "no_sale", "2026-11-21T23:30:00", json!({})),
            ev("sun-01", "no_sale", "2026-11-22T01:30:00", json!({})),
            ev("sun-03", "no_sale", "2026-11-22T03:00:00", json!({})),
            // Sunday opens at 10:00 and closes at 20:00.
            ev("sun-0930", "refund", "2026-11-22T09:30:00", json!({})),
            ev("sun-2030", "drawer_open", "2026-11-22T20:30:00", json!({})),
            // Monday is closed all day; a sale is not a type this rule watches.
            ev("mon-noon", "no_sale", "2026-11-23T12:00:00", json!({})),
            ev("mon-sale", "sale", "2026-11-23T12:00:00", json!({})),
            ev("tue-noon", "no_sale", "2026-11-24T12:00:00", json!({})),
            // 22:30 in New York is open there, though it is 12:30 in Tokyo.
            json!({"id": "ny-late", "type": "no_sale", "at": "2026-11-24T22:30:00-05:00", "store": "ny-01",
                   "register": "r1"}),
            json!({"id": "ny-night", "type": "no_sale", "at": "2026-11-24T23:30:00-05:00", "store": "ny-01",
                   "register": "r1"}),
        ],
    )
    .await;
    judge(store, &config).await;
    assert_eq!(
        matched(store, "after-hours").await,
        ids(&["sun-03", "sun-0930", "sun-2030", "mon-noon", "ny-night"])
    );
    // A drawer open no sale explained is bookmarked by its type: the rule's `bookmark` adds no second one.
    let event = store
        .events(&EventQuery {
            kind: Some("drawer_open".into()),
            limit: 1,
            ..EventQuery::default()
        })
        .await
        .unwrap()
        .remove(0);
    assert_eq!(event.bookmarks.len(), 1);
    assert_eq!(event.bookmarks[0].moment_ms, event.at_ms);
}

const CASHIER: &str = r#"
[[rules]]
id = "void-rate"
kind = "cashier_rate"
types = ["void"]
window = "7d"
factor = 2
min_count = 3
"#;

/// Aiko and Ken each ring 20 sales; Ken voids twice. Aiko's third void (3 per 20 sales = 15 per 100, against
/// Ken's 10) is not twice the others'; her fourth (20 per 100) is, and is the one exception; her fifth is not
/// another. The judging stops and restarts between her voids: the counts are read from the store.
async fn a_cashier_whose_void_rate_reaches_the_factor_is_one_exception_across_a_restart(
    kind: Kind,
) {
    let store = TestStore::new(kind).await.unwrap();
    let config = config(CASHIER);
    let mut events = Vec::new();
    for (cashier, register) in [("aiko", "r1"), ("ken", "r2")] {
        for i in 0..20 {
            events.push(ev(
                &format!("{cashier}-sale-{i}"),
                "sale",
                &format!("2026-11-20T10:{i:02}:00"),
                json!({"cashier": cashier, "register": register}),
            ));
        }
    }
    let void =
        |id: &str, cashier: &str, local: &str| ev(id, "void", local, json!({"cashier": cashier}));
    events.push(void("ken-v1", "ken", "11:00:00"));
    events.push(void("ken-v2", "ken", "11:01:00"));
    events.push(void("aiko-v1", "aiko", "11:02:00"));
    events.push(void("aiko-v2", "aiko", "11:03:00"));
    events.push(void("aiko-v3", "aiko", "11:04:00"));
    put(&store, &config, &events).await;
    judge(&store, &config).await;
    assert_eq!(matched(&store, "void-rate").await, ids(&[]));
    let again = store.again().await;
    put(&again, &config, &[void("aiko-v4", "aiko", "11:05:00")]).await;
    judge(&again, &config).await;
    put(&again, &config, &[void("aiko-v5", "aiko", "11:06:00")]).await;
    judge(&again, &config).await;
    assert_eq!(matched(&again, "void-rate").await, ids(&["aiko-v4"]));
    let why = &again
        .exceptions(&ExceptionQuery {
            limit: 1,
            ..ExceptionQuery::default()
        })
        .await
        .unwrap()[0]
        .why;
    assert_eq!(
        why_text(why),
        "the cashier's 4 in 20 sales over 7d are 20.0 per 100 sales, against 10.0 for the store's other cashiers"
    );
}

/// Every kind at once, the stream stored in pieces with judging between them (so live matching saw each piece
/// with only what came before, and one pair's first half arrived late): the back-test over the same events
/// reports exactly what live matching recorded.
async fn the_back_test_reports_exactly_what_live_matching_recorded(store: &TestStore) {
    let config = config(
        &[
            AMOUNT, TEXT, SIGN_ON, REFUND, ITEM_VOIDS, SEQUENCE, HOURS, CASHIER,
        ]
        .concat(),
    );
    let yen = |amount: i64| json!({"amount": amount, "currency": "JPY"});
    let with = |fields: Value, cashier: &str| {
        let mut f = fields;
        f["cashier"] = json!(cashier);
        f
    };
    let mut pieces = vec![
        vec![
            ev("big", "refund", "12:00:00", yen(600_000)),
            ev(
                "override",
                "correction",
                "12:00:10",
                json!({"lines": ["PRICE OVERRIDE 2,000"]}),
            ),
            ev("on", "sign_on", "12:01:00", json!({})),
            ev("quick", "no_sale", "12:01:30", json!({})),
            ev(
                "refund-unseen",
                "refund",
                "12:02:00",
                json!({"attributes": {"original_transaction": "T-9"}}),
            ),
        ],
        vec![
            ev(
                "iv1",
                "item_void",
                "12:03:00",
                json!({"transaction": "T-5"}),
            ),
            ev(
                "iv2",
                "item_void",
                "12:03:10",
                json!({"transaction": "T-5"}),
            ),
            ev("late-void", "void", "12:04:30", yen(3300)),
            ev("closed", "no_sale", "2026-11-23T12:00:00", json!({})),
        ],
        vec![
            ev(
                "iv3",
                "item_void",
                "12:03:20",
                json!({"transaction": "T-5"}),
            ),
            ev("late-sale", "sale", "12:04:00", yen(3300)),
        ],
    ];
    let mut rate = Vec::new();
    for i in 0..10 {
        rate.push(ev(
            &format!("ken-sale-{i}"),
            "sale",
            &format!("10:{i:02}:00"),
            with(json!({"register": "r2"}), "ken"),
        ));
    }
    rate.push(ev(
        "ken-void",
        "void",
        "10:30:00",
        with(json!({"register": "r2"}), "ken"),
    ));
    for i in 0..2 {
        rate.push(ev(
            &format!("aiko-sale-{i}"),
            "sale",
            &format!("10:4{i}:00"),
            with(json!({}), "aiko"),
        ));
    }
    for i in 0..4 {
        rate.push(ev(
            &format!("aiko-void-{i}"),
            "void",
            &format!("10:5{i}:00"),
            with(json!({}), "aiko"),
        ));
    }
    pieces.push(rate);
    // Noise around them: every type, amounts and texts that mostly miss.
    let kinds = [
        "sale",
        "void",
        "item_void",
        "refund",
        "no_sale",
        "sign_on",
        "correction",
    ];
    let noise: Vec<Value> = (0..120_i64)
        .map(|i| {
            let cashier = ["aiko", "ken", "yuki"][(i % 3) as usize];
            let register = ["r1", "r2"][(i % 2) as usize];
            let amount = [1280, 500_000, 4500][(i % 3) as usize];
            ev(
                &format!("n{i}"),
                kinds[(i * 7 % 11 % 7) as usize],
                &format!(
                    "2026-11-24T{:02}:{:02}:{:02}",
                    8 + i % 15,
                    i % 60,
                    (i * 13) % 60
                ),
                json!({
                    "cashier": cashier,
                    "register": register,
                    "transaction": format!("N-{}", i / 4),
                    "amount": amount,
                    "currency": "JPY",
                    "lines": [format!("PRICE OVERRIDE {}", i * 37)],
                    "attributes": {"original_transaction": format!("N-{}", i / 3)},
                }),
            )
        })
        .collect();
    pieces.extend(noise.chunks(17).map(<[Value]>::to_vec));
    for piece in &pieces {
        put(store, &config, piece).await;
        judge(store, &config).await;
    }
    let live = found(store).await;
    let mut backtested = Vec::new();
    for rule in &config.rules {
        for (hit, event) in backtest(&**store, &config, rule, 0).await.unwrap() {
            assert_eq!(hit.event_seq, event.seq);
            backtested.push((rule.id.clone(), event.id));
        }
    }
    backtested.sort();
    assert_eq!(backtested, live);
    // Each kind found what it was given: the equality covers all eight.
    for (rule, id) in [
        ("big-refund", "big"),
        ("override", "override"),
        ("quick-no-sale", "quick"),
        ("refund-no-sale", "refund-unseen"),
        ("many-item-voids", "iv3"),
        ("sweetheart", "late-void"),
        ("after-hours", "closed"),
        ("void-rate", "aiko-void-2"),
    ] {
        assert!(
            live.contains(&(rule.to_string(), id.to_string())),
            "{rule} did not find {id}: {live:?}"
        );
    }
}

/// A rule may ask for a bookmark its event's type would not make: a sale, here, which goes to the camera of its
/// register through ingest's own planning, due at once, and only once however often it is judged.
async fn a_rule_with_bookmark_bookmarks_a_sale_once(store: &TestStore) {
    let config = config(
        r#"
[[rules]]
id = "big-sale"
kind = "amount_over"
types = ["sale"]
min_amount = 100000
currency = "JPY"
bookmark = true
"#,
    );
    put(
        store,
        &config,
        &[ev(
            "big",
            "sale",
            "12:00:00",
            json!({"amount": 150_000, "currency": "JPY"}),
        )],
    )
    .await;
    judge(store, &config).await;
    // Judged again, as a second daemon that read the backlog before the first committed would.
    let event = store
        .events(&EventQuery {
            limit: 1,
            ..EventQuery::default()
        })
        .await
        .unwrap()
        .remove(0);
    let again = RuleResults {
        looked_at: vec![event.seq],
        found: vec![NewException {
            rule: "big-sale".into(),
            event_seq: event.seq,
            severity: crate::event::Severity::Medium,
            why: "again".into(),
        }],
        bookmarks: vec![(
            event.seq,
            crate::ingest::plan::bookmark_for(&config.cameras[0], event.at_ms),
        )],
    };
    assert_eq!(
        store.record_rule_results(&again, LATER_MS).await.unwrap(),
        0
    );
    let event = store
        .event(event.seq, &StoreScope::All)
        .await
        .unwrap()
        .unwrap();
    assert!(!event.flagged, "a sale's own type flags nothing");
    assert_eq!(event.bookmarks.len(), 1);
    assert_eq!(event.bookmarks[0].device, "counter");
    assert_eq!(event.bookmarks[0].moment_ms, event.at_ms);
    assert_eq!(event.bookmarks[0].next_attempt_ms, Some(LATER_MS));
    let listed = store
        .exceptions(&ExceptionQuery {
            limit: 10,
            ..ExceptionQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(
        why_text(&listed[0].why),
        "sale of ¥150,000, at or above ¥100,000"
    );
}

/// The exceptions list, its counts and the events list's filter keep to the reader's stores, in the query.
async fn exceptions_are_listed_filtered_and_counted_within_the_readers_stores(store: &TestStore) {
    let config = config(AMOUNT.replace("stores = [\"shibuya-01\"]", "").as_str());
    let refund = |id: &str, store: &str, at: &str| {
        json!({"id": id, "type": "refund", "at": at, "store": store, "register": "r1",
               "amount": 600_000, "currency": "JPY"})
    };
    put(
        store,
        &config,
        &[
            refund("tokyo", "shibuya-01", "2026-11-21T12:00:00+09:00"),
            refund("ny", "ny-01", "2026-11-21T12:00:00-05:00"),
            ev("plain", "refund", "12:30:00", json!({})),
        ],
    )
    .await;
    judge(store, &config).await;
    let tokyo_only = StoreScope::Only(vec!["shibuya-01".into()]);
    let listed = store
        .exceptions(&ExceptionQuery {
            scope: tokyo_only.clone(),
            limit: 10,
            ..ExceptionQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(
        listed.iter().map(|x| x.store.as_str()).collect::<Vec<_>>(),
        ["shibuya-01"]
    );
    let nobody = store
        .exceptions(&ExceptionQuery {
            scope: StoreScope::Only(Vec::new()),
            limit: 10,
            ..ExceptionQuery::default()
        })
        .await
        .unwrap();
    assert!(nobody.is_empty());
    assert_eq!(
        store.exception_counts(&StoreScope::All, 0).await.unwrap(),
        [("big-refund".to_string(), 2)]
    );
    assert_eq!(
        store.exception_counts(&tokyo_only, 0).await.unwrap(),
        [("big-refund".to_string(), 1)]
    );
    let listed_events = |filter: ExceptionFilter, scope: StoreScope| {
        let store = &store;
        async move {
            store
                .events(&EventQuery {
                    scope,
                    exception: Some(filter),
                    limit: 10,
                    ..EventQuery::default()
                })
                .await
                .unwrap()
                .into_iter()
                .map(|e| e.id)
                .collect::<BTreeSet<_>>()
        }
    };
    assert_eq!(
        listed_events(ExceptionFilter::Any, StoreScope::All).await,
        ids(&["tokyo", "ny"])
    );
    assert_eq!(
        listed_events(ExceptionFilter::Rule("big-refund".into()), tokyo_only).await,
        ids(&["tokyo"])
    );
    assert_eq!(
        listed_events(ExceptionFilter::Rule("other".into()), StoreScope::All).await,
        ids(&[])
    );
}

backend_tests!(
    a_refund_at_or_above_the_amount_in_its_currency_is_an_exception,
    receipt_lines_reasons_and_attributes_match_wildcards_regexes_and_values,
    a_no_sale_within_a_minute_of_sign_on_is_an_exception_and_a_later_one_is_not,
    a_refund_whose_original_sale_was_not_seen_is_an_exception_and_one_with_its_sale_is_not,
    the_third_item_void_of_a_transaction_is_its_one_exception,
    events_outside_the_stores_hours_on_its_own_clock_are_exceptions,
    the_back_test_reports_exactly_what_live_matching_recorded,
    a_rule_with_bookmark_bookmarks_a_sale_once,
    exceptions_are_listed_filtered_and_counted_within_the_readers_stores,
);
backend_tests!(
    kind: sweethearting,
    a_cashier_whose_void_rate_reaches_the_factor_is_one_exception_across_a_restart,
);

/// A stored event with no rules in force still leaves the backlog: the rules added later start from there.
#[tokio::test]
async fn with_no_rules_the_backlog_is_emptied_and_nothing_is_found() {
    let store = TestStore::new(Kind::Sqlite).await.unwrap();
    let config = config("");
    put(&store, &config, &[ev("v", "void", "12:00:00", json!({}))]).await;
    judge(&store, &config).await;
    assert!(store.rule_backlog(LATER_MS, 10).await.unwrap().is_empty());
    assert!(found(&store).await.is_empty());
}

/// An event is judged only once it has settled: one that arrived a moment ago waits for the next tick.
#[tokio::test]
async fn an_event_that_just_arrived_waits_to_settle_before_it_is_judged() {
    let store = TestStore::new(Kind::Sqlite).await.unwrap();
    let config = config(SIGN_ON);
    let event = ev("n", "no_sale", "12:00:00", json!({}));
    put(&store, &config, std::slice::from_ref(&event)).await;
    let at_ms = crate::event::parse(event.to_string().as_bytes())
        .result
        .unwrap()
        .at_ms();
    let watchers = Watchers::new(&config);
    let judged = |now| step(&*store, &config, &watchers, &config.rules, now);
    assert_eq!(judged(at_ms + SETTLE_MS - 1).await.unwrap().0, 0);
    assert_eq!(judged(at_ms + SETTLE_MS).await.unwrap().0, 1);
}

/// `tillmark rules test` on a site's database: each match on its store's clock, and the count; nothing is
/// recorded, so the rule can be tuned and tried again. `tillmark rules list` then shows no exceptions.
#[tokio::test]
async fn the_rules_test_command_prints_each_match_in_store_time_and_records_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("site.db").display());
    let config = config(&format!("[database]\nurl = \"{url}\"\n{AMOUNT}"));
    let store: Box<dyn crate::store::test_backends::Tested> =
        Box::new(crate::store::SqliteStore::open(&url).await.unwrap());
    let yen = |amount: i64| json!({"amount": amount, "currency": "JPY"});
    put(
        &store,
        &config,
        &[
            ev("small", "refund", "12:00:00", yen(1_000)),
            ev("big", "refund", "18:42:07", yen(600_000)),
        ],
    )
    .await;
    store.close().await;
    let out = crate::cli::rules_test(&config, "big-refund", Millis(3650 * 86_400_000))
        .await
        .unwrap();
    assert_eq!(
        out,
        "2026-11-21 18:42:07 JST  shibuya-01/r1  refund  ¥600,000  event 2  refund of ¥600,000, at or above ¥500,000\n\
         1 match of rule big-refund (amount_over) in the last 10y.\n"
    );
    assert_eq!(
        crate::cli::rules_list(&config).await.unwrap(),
        "big-refund  amount_over  high  shibuya-01  0 in the last 30 days\n"
    );
    let unknown = crate::cli::rules_test(&config, "nope", Millis(86_400_000))
        .await
        .unwrap_err();
    assert_eq!(
        unknown.to_string(),
        "no rule \"nope\" in the config; its rules are: big-refund"
    );
}
