//! Bad messages end in the dead-letter list with a reason naming the field, and card numbers never reach
//! the database file or the camera system.

use std::time::Duration;

use serde_json::{Value, json};

use crate::fake_nx::FakeNx;
use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_kind_of_bad_message_is_dead_lettered_with_a_reason_naming_the_field() {
    let nx = FakeNx::start(&[CAM1, CAM2]).await;
    let site = Site::new();
    let (daemon, mut bridge) = start_daemon(site.config(None, &nx.url, "")).await;
    let topic = site.topic("shibuya-01", "r1");
    let good = event("ok-1", "sale", "r1", "2026-11-21T18:42:07.310+09:00");
    let with = |key: &str, value: Value| {
        let mut e = good.clone();
        e[key] = value;
        e
    };
    let without = |key: &str| {
        let mut e = good.clone();
        e.as_object_mut().unwrap().remove(key);
        e
    };
    // At the end, after the bad ones: the daemon kept going, and the topic alone named its register.
    let good = without("store");
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (b"{not json".to_vec(), "payload is not valid JSON"),
        (
            b"[1,2,3]".to_vec(),
            "payload must be a JSON object, found an array",
        ),
        (without("id").to_string().into_bytes(), "id: is required"),
        (
            without("type").to_string().into_bytes(),
            "type: is required",
        ),
        (without("at").to_string().into_bytes(), "at: is required"),
        // The topic names the register: a body may leave store and register out, but not contradict it.
        (
            with("store", json!("osaka-01")).to_string().into_bytes(),
            "store: \"osaka-01\" does not match the topic's store \"shibuya-01\"",
        ),
        (
            with("register", json!("r9")).to_string().into_bytes(),
            "register: \"r9\" does not match the topic's register \"r1\"",
        ),
        (
            with("at", json!("0000-01-01T00:00:00Z"))
                .to_string()
                .into_bytes(),
            "is more than 3650 days before it arrived: check the register's clock",
        ),
        (
            with("at", json!("9999-12-31T23:59:59+09:00"))
                .to_string()
                .into_bytes(),
            "is more than 1 day after it arrived: check the register's clock",
        ),
        (
            with("amount", json!(i64::MIN)).to_string().into_bytes(),
            "amount: -9223372036854775808 is beyond ±1000000000000 minor units",
        ),
        // Register text that tries to write a log line of its own is quoted, escaped.
        (
            with("type", json!("void\n2026-12-01T00:00:00Z INFO ok\u{1b}[2J"))
                .to_string()
                .into_bytes(),
            "type: unknown type \"void\\u{a}2026-12-01T00:00:00Z INFO ok\\u{1b}[2J\"",
        ),
        (
            with("amount", json!("1280")).to_string().into_bytes(),
            "amount: must be an integer, found a string",
        ),
        (
            with("amount", json!(12.5)).to_string().into_bytes(),
            "amount: must be an integer in the currency's minor unit",
        ),
        (
            with("id", json!("x".repeat(129))).to_string().into_bytes(),
            "id: must be at most 128 characters",
        ),
        (
            with("lines", json!(vec!["l"; 201]))
                .to_string()
                .into_bytes(),
            "lines: must have at most 200 lines",
        ),
        (
            with("type", json!("teleport")).to_string().into_bytes(),
            "type: unknown type \"teleport\"",
        ),
        (
            with("at", json!("2026-11-21T18:42:07"))
                .to_string()
                .into_bytes(),
            "at: \"2026-11-21T18:42:07\" has no UTC offset",
        ),
        (
            with("store", json!("shibuya 01")).to_string().into_bytes(),
            "store: must use only A-Z a-z 0-9 . _ -",
        ),
        (
            with("currency", json!("yen")).to_string().into_bytes(),
            "currency: must be an ISO 4217 code",
        ),
        (
            with("attributes", json!({"nested": {"a": 1}}))
                .to_string()
                .into_bytes(),
            "attributes.nested: must be a string, number or boolean",
        ),
        (vec![b'{', 0xff, 0xfe, b'}'], "payload is not UTF-8"),
        (
            with("reason", json!("x".repeat(70_000)))
                .to_string()
                .into_bytes(),
            "payload is 7",
        ),
    ];
    for (payload, _) in &cases {
        bridge.publish_bytes(&topic, payload.clone()).await;
    }
    // A good event after all of them: the daemon kept going.
    bridge.publish(&topic, &good).await;
    let base = format!("http://{}", daemon.web_addr());
    let count = cases.len();
    let letters = eventually(
        Duration::from_secs(10),
        "every bad message dead-lettered",
        || {
            let url = format!("{base}/api/dead-letters?limit=100");
            async move {
                let v = get_json(&url).await;
                let list = v["dead_letters"].as_array()?.clone();
                (list.len() == count).then_some(list)
            }
        },
    )
    .await;
    for (_, reason) in &cases {
        assert!(
            letters
                .iter()
                .any(|d| d["reason"].as_str().unwrap_or_default().contains(reason)),
            "no dead letter says {reason:?}; got {:#?}",
            letters
                .iter()
                .map(|d| d["reason"].clone())
                .collect::<Vec<_>>()
        );
    }
    assert!(letters.iter().all(|d| d["topic"] == topic.as_str()));
    // The daemon kept going: the good event published after the bad ones is stored.
    eventually(
        Duration::from_secs(10),
        "the good event after the bad ones",
        || {
            let url = format!("{base}/api/events");
            async move { (get_json(&url).await["events"][0]["id"] == "ok-1").then_some(()) }
        },
    )
    .await;
    daemon.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn card_numbers_never_reach_the_database_file_or_the_camera_system() {
    let nx = FakeNx::start(&[CAM1, CAM2]).await;
    let site = Site::new();
    let (daemon, mut bridge) = start_daemon(site.config(None, &nx.url, "")).await;
    let topic = site.topic("shibuya-01", "r1");
    let mut refund = event(
        "refund-card",
        "refund",
        "r1",
        "2026-11-21T18:42:07.310+09:00",
    );
    refund["lines"] = json!(["REFUND TO CARD", "VISA 4111 1111 1111 1111", "AUTH 123456"]);
    refund["reason"] = json!("card 5500-0000-0000-0004 declined");
    refund["attributes"] = json!({"pan": 4012888888881881_u64, "tender": "card"});
    refund["pos_extra"] = json!("6011000990139424");
    bridge.publish(&topic, &refund).await;
    bridge
        .publish_bytes(&topic, b"{broken json 4111111111111111".to_vec())
        .await;

    let mark = eventually(Duration::from_secs(10), "the refund bookmarked", || async {
        nx.bookmarks().into_iter().next()
    })
    .await;
    let base = format!("http://{}", daemon.web_addr());
    eventually(Duration::from_secs(10), "the dead letter", || {
        let url = format!("{base}/api/dead-letters");
        async move { (get_json(&url).await["dead_letters"].as_array()?.len() == 1).then_some(()) }
    })
    .await;
    let api = get(format!("{base}/api/events"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let dead = get(format!("{base}/api/dead-letters"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    daemon.shutdown().await;

    let cards = [
        "4111111111111111",
        "4111 1111 1111 1111",
        "5500-0000-0000-0004",
        "4012888888881881",
        "6011000990139424",
    ];
    let stored = site.db.contents(site.dir.path());
    for card in cards {
        assert!(!stored.contains(card), "{card} reached the database files");
        assert!(
            !mark.body.contains(card),
            "{card} reached the camera system"
        );
        assert!(
            !api.contains(card) && !dead.contains(card),
            "{card} shown by the API"
        );
    }
    assert!(
        mark.description.contains("VISA 4111 11** **** 1111"),
        "{}",
        mark.description
    );
    assert!(
        stored.contains("411111******1111"),
        "the masked form is what is kept"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_letter_records_the_size_and_sha256_of_exactly_what_the_register_sent() {
    let site = Site::new();
    let (daemon, mut bridge) = start_daemon(site.config(None, "http://127.0.0.1:9", "")).await;
    let topic = site.topic("shibuya-01", "r1");
    // 200 KiB, three times the contract's limit, with a card number at the start.
    let mut oversized = b"{\"note\":\"4111111111111111 ".to_vec();
    oversized.resize(200 * 1024, b'z');
    let broken = b"{not json".to_vec();
    for payload in [&oversized, &broken] {
        bridge.publish_bytes(&topic, payload.clone()).await;
    }
    let base = web_base(&daemon);
    let letters = eventually(Duration::from_secs(10), "both dead-lettered", || {
        let url = format!("{base}/api/dead-letters");
        async move {
            let list = get_json(&url).await["dead_letters"].as_array()?.clone();
            (list.len() == 2).then_some(list)
        }
    })
    .await;
    daemon.shutdown().await;
    let sha256 = |bytes: &[u8]| tillmark::store::sha256_hex(bytes);
    let (small, big) = (&letters[0], &letters[1]);
    assert_eq!(small["size"], broken.len());
    assert_eq!(small["sha256"], sha256(&broken));
    assert_eq!(small["raw"], "{not json");
    assert_eq!(small["raw_complete"], true);
    assert_eq!(big["size"], 200 * 1024);
    assert_eq!(big["sha256"], sha256(&oversized));
    // What `sha256sum` would print for the same bytes, so a sender can find the message in its own log.
    assert_eq!(big["sha256"].as_str().unwrap().len(), 64);
    assert_eq!(big["raw_complete"], false);
    let raw = big["raw"].as_str().unwrap();
    assert!(
        raw.len() <= 4 * 1024,
        "an excerpt, not the body: {} bytes",
        raw.len()
    );
    assert!(raw.starts_with("{\"note\":\"411111******1111 zzz"), "{raw}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_start_the_daemon_removes_dead_letters_older_than_keep_for() {
    let site = Site::new();
    let now = tillmark::clock::now_ms();
    let letter = |days_ago: i64, reason: &str| tillmark::store::Intake::DeadLetter {
        topic: site.topic("shibuya-01", "r1"),
        received_ms: now - days_ago * 86_400_000,
        reason: reason.into(),
        raw: "{".into(),
        size: 1,
        sha256: tillmark::store::sha256_hex(b"{"),
    };
    let store = tillmark::store::open(&site.db_url()).await.unwrap();
    store
        .ingest(
            &[letter(9, "nine days old"), letter(2, "two days old")],
            now,
        )
        .await
        .unwrap();
    store.close().await;
    let config = site.config(
        None,
        "http://127.0.0.1:9",
        "[dead_letters]\nkeep_for = \"7d\"\n",
    );
    let daemon = start(config).await.expect("daemon starts");
    let base = web_base(&daemon);
    let reasons = eventually(Duration::from_secs(10), "the old letter removed", || {
        let url = format!("{base}/api/dead-letters");
        async move {
            let list = get_json(&url).await["dead_letters"].as_array()?.clone();
            let reasons: Vec<String> = list
                .iter()
                .map(|d| d["reason"].as_str().unwrap_or_default().to_string())
                .collect();
            (list.len() == 1).then_some(reasons)
        }
    })
    .await;
    daemon.shutdown().await;
    assert_eq!(reasons, ["two days old"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_start_the_daemon_applies_retention_in_the_name_of_system_and_the_audit_log_still_verifies()
 {
    use tillmark::store::{AuditQuery, NewAuditEntry};
    let site = Site::new();
    let now = tillmark::clock::now_ms();
    let store = tillmark::store::open(&site.db_url()).await.unwrap();
    for (days_ago, target) in [(1500, "four years ago"), (1, "yesterday")] {
        store
            .record(&NewAuditEntry {
                at_ms: now - days_ago * 86_400_000,
                actor: Some("aiko".into()),
                action: "footage_opened".into(),
                target: Some(target.into()),
                ..Default::default()
            })
            .await
            .unwrap();
    }
    store.close().await;
    let config = site.config(None, "http://127.0.0.1:9", "");
    let daemon = start(config).await.expect("daemon starts");
    let url = site.db_url();
    let entries = eventually(
        Duration::from_secs(10),
        "the retention purge audited",
        || {
            let url = url.clone();
            async move {
                let store = tillmark::store::open(&url).await.ok()?;
                let entries = store
                    .audit(&AuditQuery {
                        limit: 100,
                        ..Default::default()
                    })
                    .await
                    .ok();
                store.close().await;
                entries.filter(|e| e.iter().any(|e| e.action == "retention_purge"))
            }
        },
    )
    .await;
    daemon.shutdown().await;
    let actions: Vec<(&str, Option<&str>, Option<&str>)> = entries
        .iter()
        .rev()
        .map(|e| (e.action.as_str(), e.actor.as_deref(), e.target.as_deref()))
        .collect();
    assert_eq!(
        actions[..3],
        [
            ("footage_opened", Some("aiko"), Some("yesterday")),
            ("audit_checkpoint", Some("system"), Some("audit_log")),
            ("retention_purge", Some("system"), actions[2].2),
        ]
    );
    assert!(
        entries.iter().any(|e| e
            .detail
            .as_deref()
            .is_some_and(|d| d.contains("audit_rows=1"))),
        "{entries:?}"
    );
    let store = tillmark::store::open(&site.db_url()).await.unwrap();
    let check = store.verify_audit().await.unwrap();
    store.close().await;
    assert_eq!(check.broken, None);
    assert_eq!(check.checkpoint.map(|c| c.removed), Some(1));
}
