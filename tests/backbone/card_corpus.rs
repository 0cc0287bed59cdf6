//! Every card-number spelling of the corpus, in every field of an event and in the topic, through the real
//! daemon: the digits reach no file the daemon writes, no log line, no API answer, no page, no dead letter and
//! no camera system, and the events are otherwise intact.

use std::time::Duration;

use serde_json::{Value, json};

#[path = "../card_spellings/mod.rs"]
mod card_spellings;

use card_spellings::{Masked, Spelling, holds_pan, masked_form, spellings};

use crate::fake_nx::FakeNx;
use crate::support::*;

/// `text` as it goes between a JSON string's quotes: spellings written with JSON escapes go in as written, so
/// the payload's bytes hold `\u0034...` and only a JSON reader sees digits.
fn in_json_string(s: &Spelling) -> String {
    if s.json_escaped {
        s.text.clone()
    } else {
        let quoted = serde_json::to_string(&s.text).unwrap();
        quoted[1..quoted.len() - 1].to_string()
    }
}

/// A refund with the card in every free-text field, an attribute's name and value, an unknown field, the
/// transaction and the id; the number itself where the spelling is a JSON number.
fn payload(i: usize, s: &Spelling) -> Vec<u8> {
    const CARD: &str = "@@CARD@@";
    let template = json!({
        "id": format!("{CARD} #{i}"), "type": "refund", "at": AT,
        "cashier": format!("c {CARD}"), "transaction": format!("T {CARD}"),
        "amount": 1280, "currency": "JPY", "reason": format!("refund to {CARD}"),
        "lines": ["REFUND", format!("CARD {CARD}"), "THANK YOU"],
        "attributes": {"tender": format!("card {CARD}"), CARD: true, "number": 0},
        "pos_extra": CARD,
    });
    let mut text = template.to_string().replace(CARD, &in_json_string(s));
    if let Some(number) = s.json_number {
        text = text.replace("\"number\":0", &format!("\"number\":{number}"));
    }
    text.into_bytes()
}

fn spawn(config: &std::path::Path, log: &std::path::Path) -> Process {
    spawn_tillmark(config, log, &[("TEST_NX_PASSWORD", NX_PASSWORD)])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_spelling_of_a_card_number_in_any_field_or_topic_reaches_anything_the_daemon_keeps_or_shows()
 {
    let corpus = spellings();
    assert!(
        corpus.len() >= 40,
        "the corpus has {} spellings",
        corpus.len()
    );
    let broker = external_broker();
    let nx = FakeNx::start(&[CAM1, CAM2]).await;
    let site = Site::new();
    let (config_path, web_port) = site.config_file(&broker.daemon, &nx.url);
    let log = site.dir.path().join("run.log");
    allow_tests(&site.db_url()).await;
    let mut daemon = spawn(&config_path, &log);
    wait_for_log(&log, "Subscribed.").await;

    let mut bridge = Bridge::connect(&broker.registers).await;
    let topic = site.topic("shibuya-01", "r1");
    let mut letters = 0;
    for (i, s) in corpus.iter().enumerate() {
        bridge.publish_bytes(&topic, payload(i, s)).await;
        // Brokers refuse topics with control characters (a tab) and close the connection: such a spelling
        // never reaches tillmark as a topic.
        if s.fits_a_topic_level() && !s.json_escaped && !s.text.chars().any(char::is_control) {
            let on_topic = site.topic("shibuya-01", &s.text);
            bridge
                .publish(&on_topic, &event(&format!("t-{i}"), "void", "r1", AT))
                .await;
            letters += 1;
        }
        // A broken payload is kept as text: its card is masked there too.
        bridge
            .publish_bytes(
                &topic,
                format!("{{\"reason\": \"{}\" ", in_json_string(s)).into_bytes(),
            )
            .await;
        letters += 1;
    }

    let base = format!("http://127.0.0.1:{web_port}");
    let events = eventually(Duration::from_secs(30), "every refund stored", || {
        let url = format!("{base}/api/events?limit=1000");
        let n = corpus.len();
        async move {
            let list = get_json(&url).await["events"].as_array()?.clone();
            (list.len() == n).then_some(list)
        }
    })
    .await;
    let dead = eventually(Duration::from_secs(30), "every dead letter", || {
        let url = format!("{base}/api/dead-letters?limit=1000");
        async move {
            let list = get_json(&url).await["dead_letters"].as_array()?.clone();
            (list.len() == letters).then_some(list)
        }
    })
    .await;
    let marks = eventually(
        Duration::from_secs(30),
        "a bookmark for every refund",
        || async {
            let marks = nx.bookmarks();
            (marks.len() == corpus.len()).then_some(marks)
        },
    )
    .await;
    // Everything a person or a script can read.
    let mut shown = vec![
        get_text(&format!("{base}/api/events?limit=1000")).await,
        get_text(&format!("{base}/api/dead-letters?limit=1000")).await,
        get_text(&format!("{base}/?limit=200")).await,
        get_text(&format!("{base}/dead-letters?dismissed=true")).await,
    ];
    for e in &events {
        shown.push(get_text(&format!("{base}/events/{}", e["seq"])).await);
    }
    daemon.kill().expect("SIGKILL");
    let _ = daemon.wait();

    // The events are otherwise intact: a refund of ¥1,280 each, its card masked where it stood.
    for e in &events {
        assert_eq!(
            (e["type"].as_str(), e["amount"].as_i64()),
            (Some("refund"), Some(1280))
        );
        assert_eq!(e["lines"][0], "REFUND");
        assert_eq!(
            e["attributes"]["tender"]
                .as_str()
                .map(|t| t.starts_with("card ")),
            Some(true)
        );
    }
    let masked_somewhere = corpus
        .iter()
        .filter(|s| s.masked == Masked::FirstSixLastFour)
        .all(|s| {
            events
                .iter()
                .any(|e| card_spellings::normalise(&e.to_string()).contains(&masked_form(s.pan)))
        });
    assert!(
        masked_somewhere,
        "a masked form (first 6, last 4) is what is kept"
    );
    assert!(dead.iter().all(|d| d["reason"].as_str().is_some()));

    let mut files = Vec::new();
    for entry in std::fs::read_dir(site.dir.path()).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            files.push((path.display().to_string(), std::fs::read(&path).unwrap()));
        }
    }
    for s in &corpus {
        for (name, bytes) in &files {
            assert!(
                !holds_pan(&String::from_utf8_lossy(bytes), s.pan),
                "{} ({}) reached {name}",
                s.name,
                s.pan
            );
        }
        for text in &shown {
            assert!(!holds_pan(text, s.pan), "{} ({}) is shown", s.name, s.pan);
        }
        for m in &marks {
            assert!(
                !holds_pan(&m.body, s.pan),
                "{} ({}) reached the camera system",
                s.name,
                s.pan
            );
        }
    }
}

#[test]
fn the_corpus_payloads_are_json_that_carries_each_card() {
    // The test above is only as good as its payloads: each must parse and, read plainly, hold the card.
    for (i, s) in spellings().iter().enumerate() {
        let bytes = payload(i, s);
        let value: Value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("{}: {e}: {}", s.name, String::from_utf8_lossy(&bytes)));
        // An exponent keeps no exact digits to find: such a spelling is carried as the number itself.
        if s.masked != Masked::AllStars {
            assert!(holds_pan(&value["reason"].to_string(), s.pan), "{}", s.name);
        }
    }
}
