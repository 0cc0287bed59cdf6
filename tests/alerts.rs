//! Alerts as their receivers see them: a webhook receiver that checks `Tillmark-Signature` with the README's
//! steps, Slack's and Teams' incoming-webhook shapes, an SMTP server started here, and a digest at the store's
//! local time. Events are stored and judged as the daemon does (ingest's planning, the rules' step) in a real
//! SQLite file; the alerter is stepped with the time given, so a digest's hour comes without waiting for it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

#[path = "test_database/mod.rs"]
mod test_database;

use test_database::TestDatabase;
use tillmark::alerts::Alerter;
use tillmark::config::{Config, Watchers};
use tillmark::store::{Intake, IntakeOutcome, Store};

const SECRET: &str = "whsec-5b1f0c7e9a";

/// One Tokyo store whose register r1 a camera watches, a rule for refunds of 50,000 yen or more, and the
/// index's outside address; `alerts` follow.
fn config(alerts: &str) -> Config {
    let text = format!(
        r#"
[web]
public_url = "https://lp.example/tillmark"
[delivery]
retry = ["1s", "5s"]
[[stores]]
id = "shibuya-01"
name = "Shibuya"
timezone = "Asia/Tokyo"
[[camera_systems]]
id = "nvr"
integration = "webhook"
url = "https://nvr.example.com/"
[[cameras]]
system = "nvr"
device = "counter"
registers = ["shibuya-01/r1"]
[[rules]]
id = "big-refund"
kind = "amount_over"
types = ["refund"]
min_amount = 50000
currency = "JPY"
severity = "high"
{alerts}
"#
    );
    Config::parse(&text, &|name| {
        (name == "ALERT_SECRET").then(|| SECRET.to_string())
    })
    .unwrap_or_else(|e| panic!("a valid config: {e:#?}"))
}

struct Shop {
    store: Arc<dyn Store>,
    config: Arc<Config>,
    /// Dropped before `_dir`: on PostgreSQL, the test's schema.
    _db: TestDatabase,
    _dir: tempfile::TempDir,
}

/// A database of the run's backend (SQLite, or PostgreSQL with `TILLMARK_TEST_BACKEND=postgres`).
async fn shop(alerts: &str) -> Shop {
    let dir = tempfile::tempdir().unwrap();
    let db = TestDatabase::new(dir.path());
    Shop {
        store: tillmark::store::open(&db.url).await.unwrap(),
        config: Arc::new(config(alerts)),
        _db: db,
        _dir: dir,
    }
}

impl Shop {
    /// Stores a refund of `yen` at Shibuya's register r1 at `at_ms`, received then, as ingest would; returns its
    /// sequence number.
    async fn refund(&self, id: &str, yen: i64, at_ms: i64) -> i64 {
        let at = chrono::DateTime::from_timestamp_millis(at_ms)
            .unwrap()
            .to_rfc3339();
        let payload = json!({"id": id, "type": "refund", "at": at, "store": "shibuya-01", "register": "r1",
            "amount": -yen, "currency": "JPY"});
        let parsed = tillmark::event::parse(payload.to_string().as_bytes());
        let event = parsed.result.expect("a valid test event");
        let plan = tillmark::ingest::plan(&self.config, &Watchers::new(&self.config), &event);
        let intake = Intake::Event {
            topic: "pos/shibuya-01/r1/events".into(),
            received_ms: at_ms,
            raw: parsed.raw,
            digest: tillmark::event::content_digest(&event),
            signed: None,
            flagged: plan.flagged,
            mapped: plan.mapped,
            bookmarks: plan.bookmarks,
            drawer: plan.drawer,
            event: Box::new(event),
        };
        match &self.store.ingest(&[intake], at_ms).await.unwrap()[0] {
            IntakeOutcome::Stored { seq, .. } => *seq,
            other => panic!("not stored: {other:?}"),
        }
    }

    /// The rules judge what is stored, at `now_ms`.
    async fn judge(&self, now_ms: i64) {
        let watchers = Watchers::new(&self.config);
        tillmark::rules::step(
            &*self.store,
            &self.config,
            &watchers,
            &self.config.rules,
            now_ms,
        )
        .await
        .unwrap();
    }

    fn alerter(&self, holder: &str, now_ms: i64) -> Alerter {
        Alerter::new(
            self.store.clone(),
            self.config.clone(),
            holder.into(),
            now_ms,
        )
        .unwrap()
    }
}

fn now_ms() -> i64 {
    tillmark::clock::now_ms()
}

// ---- A webhook receiver, as the README tells one to be written ----

#[derive(Debug, Clone)]
struct Received {
    key: String,
    body: Value,
}

#[derive(Clone)]
struct Receiver {
    url: String,
    got: Arc<Mutex<Vec<Received>>>,
    /// Answer 503 to everything, as a receiver that is down does.
    down: Arc<AtomicBool>,
    /// How many requests it answered 503.
    refused: Arc<std::sync::atomic::AtomicUsize>,
}

/// The README's verification: split the header at commas, take `t` and every `v1`, compute the HMAC-SHA256 of
/// `t`, a dot and the raw body under the secret, compare in constant time, and refuse a `t` more than five
/// minutes from now.
fn verify(secret: &str, header: &str, body: &[u8], now_s: i64) -> bool {
    let mut t = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", value)) => t = value.parse::<i64>().ok(),
            Some(("v1", value)) => signatures.extend(hex::decode(value).ok()),
            _ => {}
        }
    }
    let Some(t) = t else { return false };
    if (now_s - t).abs() > 300 {
        return false;
    }
    signatures.iter().any(|signature| {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(format!("{t}.").as_bytes());
        mac.update(body);
        mac.verify_slice(signature).is_ok()
    })
}

/// What a receiver checks of a body before it takes it: a signature for tillmark's JSON, Slack's documented
/// shape for Slack, a MessageCard for Teams. `Err` is the 400 the real one answers.
type Check = fn(&HeaderMap, &[u8]) -> Result<(), String>;

fn signed(headers: &HeaderMap, body: &[u8]) -> Result<(), String> {
    let header = headers
        .get("tillmark-signature")
        .and_then(|v| v.to_str().ok())
        .ok_or("no Tillmark-Signature")?;
    verify(SECRET, header, body, now_ms() / 1000)
        .then_some(())
        .ok_or_else(|| "bad signature".into())
}

async fn receiver(check: Check) -> Receiver {
    let state = Receiver {
        url: String::new(),
        got: Default::default(),
        down: Default::default(),
        refused: Default::default(),
    };
    async fn hook(
        State((r, check)): State<(Receiver, Check)>,
        headers: HeaderMap,
        body: Bytes,
    ) -> (StatusCode, String) {
        if r.down.load(Ordering::SeqCst) {
            r.refused.fetch_add(1, Ordering::SeqCst);
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                "down for maintenance".into(),
            );
        }
        if let Err(e) = check(&headers, &body) {
            return (StatusCode::BAD_REQUEST, e);
        }
        let key = headers
            .get("idempotency-key")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
        r.got.lock().unwrap().push(Received { key, body });
        (StatusCode::OK, "ok".into())
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(hook))
        .with_state((state.clone(), check));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Receiver {
        url: format!("http://{addr}/hook"),
        ..state
    }
}

impl Receiver {
    fn got(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }
}

fn webhook(id: &str, url: &str, format: &str) -> String {
    format!(
        "[[alerts]]\nid = \"{id}\"\nchannel = \"webhook\"\nurl = \"{url}\"\nsecret_env = \"ALERT_SECRET\"\nformat = \"{format}\"\nrules = [\"big-refund\"]\n"
    )
}

#[tokio::test]
async fn a_webhook_alert_carries_the_exception_its_links_and_a_signature_the_readmes_steps_verify()
{
    let hook = receiver(signed).await;
    let shop = shop(&webhook("lp-desk", &hook.url, "json")).await;
    let now = now_ms();
    let seq = shop.refund("r-1", 60_000, now - 60_000).await;
    shop.refund("r-2", 1_000, now - 50_000).await;
    shop.judge(now).await;
    let step = shop.alerter("d1", now).step(now).await.unwrap();
    assert_eq!((step.sent, step.retried, step.failed), (1, 0, 0));

    let got = hook.got();
    assert_eq!(got.len(), 1, "the small refund is no exception");
    assert_eq!(got[0].key, format!("lp-desk:big-refund:{seq}"));
    let body = &got[0].body;
    assert_eq!(body["type"], "exception");
    assert_eq!(body["idempotency_key"], got[0].key.as_str());
    assert_eq!(body["exception"]["rule"], "big-refund");
    assert_eq!(body["exception"]["severity"], "high");
    // The JSON is for programs: its reason is in English whatever the store's language.
    assert_eq!(
        body["exception"]["why"],
        "refund of -¥60,000, at or above ¥50,000"
    );
    let event = &body["event"];
    assert_eq!(
        (
            &event["store"],
            &event["register"],
            &event["type"],
            &event["amount"],
            &event["currency"]
        ),
        (
            &json!("shibuya-01"),
            &json!("r1"),
            &json!("refund"),
            &json!(-60000),
            &json!("JPY")
        )
    );
    assert_eq!(
        body["links"]["event"],
        format!("https://lp.example/tillmark/events/{seq}")
    );
    assert_eq!(
        body["links"]["footage"],
        format!("https://lp.example/tillmark/events/{seq}/footage/0")
    );

    // The receiver's check is no formality: one changed byte, another secret or an old time fails it.
    let text = serde_json::to_string(body).unwrap();
    let t = now / 1000;
    let header = tillmark::alerts::signature(SECRET, t, &text);
    assert!(verify(SECRET, &header, text.as_bytes(), t));
    assert!(!verify(
        SECRET,
        &header,
        text.replace("60000", "6000").as_bytes(),
        t
    ));
    assert!(!verify("another-secret", &header, text.as_bytes(), t));
    assert!(!verify(SECRET, &header, text.as_bytes(), t + 301));
}

#[tokio::test]
async fn an_exception_is_alerted_once_through_a_receiver_outage_a_crash_mid_send_and_a_restart() {
    let hook = receiver(signed).await;
    let shop = shop(&webhook("lp-desk", &hook.url, "json")).await;
    let now = now_ms();
    let seq = shop.refund("r-1", 80_000, now - 60_000).await;
    shop.judge(now).await;

    hook.down.store(true, Ordering::SeqCst);
    let mut first = shop.alerter("d1", now);
    assert_eq!(first.step(now).await.unwrap().retried, 1);
    // Not before its retry time (1s, less a fifth at most), even from a second daemon.
    let mut second = shop.alerter("d2", now);
    let early = second.step(now + 700).await.unwrap();
    assert_eq!((early.planned, early.sent, early.retried), (0, 0, 0));
    assert!(hook.got().is_empty());
    // The outage shows on /healthz's alerts, in the receiver's words, without its URL.
    let trouble = shop.store.alert_trouble().await.unwrap();
    let (alert, error) = trouble.newest.clone().unwrap();
    assert_eq!(
        (trouble.retrying, trouble.failed, alert.as_str()),
        (1, 0, "lp-desk")
    );
    assert!(
        error.contains("HTTP 503: down for maintenance") && !error.contains(&hook.url),
        "{error}"
    );

    hook.down.store(false, Ordering::SeqCst);
    assert_eq!(second.step(now + 1_300).await.unwrap().sent, 1);
    // A restarted daemon looks a day back and finds it owed nothing.
    let mut restarted = shop.alerter("d1", now + 2_000);
    assert_eq!(
        restarted.step(now + 2_000).await.unwrap(),
        Default::default()
    );
    let keys: Vec<String> = hook.got().into_iter().map(|r| r.key).collect();
    assert_eq!(keys, [format!("lp-desk:big-refund:{seq}")]);

    // A daemon killed after its request went out, before it recorded it: the row goes out again once its
    // lease is over, under the same key, so the receiver knows it has it.
    let later = shop.refund("r-2", 90_000, now + 3_000).await;
    shop.judge(now + 6_000).await;
    // The receiver is down for the first try; the retry is claimed by d1, which dies with it in flight.
    hook.down.store(true, Ordering::SeqCst);
    assert_eq!(restarted.step(now + 6_000).await.unwrap().retried, 1);
    hook.down.store(false, Ordering::SeqCst);
    let in_flight = shop
        .store
        .claim_alerts("d1", now + 8_000, 120_000, 10)
        .await
        .unwrap();
    assert_eq!(in_flight.len(), 1);
    assert_eq!(
        second.step(now + 60_000).await.unwrap().sent,
        0,
        "a live lease is never taken"
    );
    assert_eq!(second.step(now + 128_001).await.unwrap().sent, 1);
    let keys: Vec<String> = hook.got().into_iter().map(|r| r.key).collect();
    assert_eq!(
        keys,
        [
            format!("lp-desk:big-refund:{seq}"),
            format!("lp-desk:big-refund:{later}")
        ]
    );
}

#[tokio::test]
async fn a_receiver_that_is_down_is_asked_once_a_pass_not_once_for_every_alert_it_is_owed() {
    let hook = receiver(signed).await;
    let shop = shop(&webhook("lp-desk", &hook.url, "json")).await;
    let now = now_ms();
    for i in 0..6 {
        shop.refund(&format!("r-{i}"), 60_000, now - 60_000 + i)
            .await;
    }
    shop.judge(now).await;
    hook.down.store(true, Ordering::SeqCst);
    let mut alerter = shop.alerter("d1", now);
    assert_eq!(alerter.step(now).await.unwrap().retried, 6);
    assert_eq!(hook.refused.load(Ordering::SeqCst), 1);
    hook.down.store(false, Ordering::SeqCst);
    assert_eq!(alerter.step(now + 1_300).await.unwrap().sent, 6);
}

/// Slack's incoming webhooks (api.slack.com/messaging/webhooks, and the Block Kit reference): a JSON object
/// with `text`, the notification's words, and `blocks`, at most 50, each a known type; a `section`'s text is
/// `mrkdwn` or `plain_text` of at most 3000 characters, a `header`'s `plain_text` of at most 150, a
/// `context` has at most 10 elements. Anything else is answered 400 `invalid_blocks`.
fn slack_shape(_: &HeaderMap, body: &[u8]) -> Result<(), String> {
    let invalid = || "invalid_blocks".to_string();
    let v: Value = serde_json::from_slice(body).map_err(|_| "invalid_payload".to_string())?;
    let text = v["text"].as_str().ok_or("no_text")?;
    if text.is_empty() {
        return Err("no_text".into());
    }
    let blocks = v["blocks"].as_array().ok_or_else(invalid)?;
    if blocks.is_empty() || blocks.len() > 50 {
        return Err(invalid());
    }
    let text_object = |t: &Value, kinds: &[&str], max: usize| {
        let kind = t["type"].as_str().unwrap_or_default();
        let words = t["text"].as_str().unwrap_or_default();
        kinds.contains(&kind) && !words.is_empty() && words.chars().count() <= max
    };
    for block in blocks {
        let ok = match block["type"].as_str() {
            Some("section") => text_object(&block["text"], &["mrkdwn", "plain_text"], 3000),
            Some("header") => text_object(&block["text"], &["plain_text"], 150),
            Some("context") => block["elements"].as_array().is_some_and(|e| {
                !e.is_empty()
                    && e.len() <= 10
                    && e.iter()
                        .all(|x| text_object(x, &["mrkdwn", "plain_text"], 3000))
            }),
            Some("divider") => true,
            _ => false,
        };
        if !ok {
            return Err(invalid());
        }
    }
    Ok(())
}

/// A Teams incoming webhook's MessageCard (learn.microsoft.com, "Create and send messages"): `@type`
/// `MessageCard`, `@context`, a `summary` or `text`, and `OpenUri` actions with targets.
fn teams_shape(_: &HeaderMap, body: &[u8]) -> Result<(), String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let card = v["@type"] == "MessageCard" && v["@context"] == "https://schema.org/extensions";
    let summary = v["summary"].as_str().is_some_and(|s| !s.is_empty());
    let actions = v["potentialAction"].as_array().is_some_and(|a| {
        a.iter()
            .all(|x| x["@type"] == "OpenUri" && x["targets"][0]["uri"].is_string())
    });
    (card && summary && actions)
        .then_some(())
        .ok_or_else(|| "Summary or Text is required.".into())
}

#[tokio::test]
async fn slack_and_teams_take_the_alert_in_their_documented_shapes_in_the_stores_language() {
    let slack = receiver(slack_shape).await;
    let teams = receiver(teams_shape).await;
    let shop = shop(&format!(
        "{}{}",
        webhook("slack", &slack.url, "slack"),
        webhook("teams", &teams.url, "teams")
    ))
    .await;
    let now = now_ms();
    let seq = shop.refund("r-1", 60_000, now - 60_000).await;
    shop.judge(now).await;
    let step = shop.alerter("d1", now).step(now).await.unwrap();
    assert_eq!((step.sent, step.failed), (2, 0), "{step:?}");

    let message = &slack.got()[0].body;
    // Shibuya is a Tokyo store: its alerts are in Japanese.
    assert_eq!(message["text"], "【tillmark】big-refund：Shibuya/r1 の返品");
    let section = message["blocks"][1]["text"]["text"].as_str().unwrap();
    assert!(
        section.contains("ルール：big-refund（重要度 high）"),
        "{section}"
    );
    assert!(
        section.contains("理由：返品 -¥60,000（¥50,000 以上）"),
        "{section}"
    );
    assert!(
        section.contains(&format!(
            "<https://lp.example/tillmark/events/{seq}/footage/0|映像>"
        )),
        "{section}"
    );
    let card = &teams.got()[0].body;
    assert_eq!(
        card["potentialAction"][0]["targets"][0]["uri"],
        format!("https://lp.example/tillmark/events/{seq}")
    );
}

// ---- An SMTP server, enough of one to take a message ----

/// Takes messages on 127.0.0.1 (EHLO, MAIL, RCPT, DATA, QUIT) and keeps each one's envelope recipients and
/// text.
async fn smtp_sink() -> (u16, Arc<Mutex<Vec<(Vec<String>, String)>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let mail = Arc::new(Mutex::new(Vec::new()));
    let kept = mail.clone();
    tokio::spawn(async move {
        loop {
            let (socket, _) = listener.accept().await.unwrap();
            let kept = kept.clone();
            tokio::spawn(async move {
                let (read, mut write) = socket.into_split();
                let mut lines = BufReader::new(read).lines();
                write.write_all(b"220 sink ESMTP\r\n").await.unwrap();
                let mut to = Vec::new();
                while let Ok(Some(line)) = lines.next_line().await {
                    let verb = line.get(..4).unwrap_or_default().to_ascii_uppercase();
                    let answer: &[u8] = match verb.as_str() {
                        "EHLO" | "HELO" => b"250-sink\r\n250 8BITMIME\r\n",
                        "MAIL" | "RSET" | "NOOP" => b"250 OK\r\n",
                        "RCPT" => {
                            to.push(line[8..].trim().to_string());
                            b"250 OK\r\n"
                        }
                        "DATA" => {
                            write.write_all(b"354 go on\r\n").await.unwrap();
                            let mut text = String::new();
                            while let Ok(Some(l)) = lines.next_line().await {
                                if l == "." {
                                    break;
                                }
                                text.push_str(l.strip_prefix('.').unwrap_or(&l));
                                text.push_str("\r\n");
                            }
                            kept.lock().unwrap().push((std::mem::take(&mut to), text));
                            b"250 OK queued\r\n"
                        }
                        "QUIT" => {
                            write.write_all(b"221 bye\r\n").await.unwrap();
                            return;
                        }
                        _ => b"502 not here\r\n",
                    };
                    write.write_all(answer).await.unwrap();
                }
            });
        }
    });
    (port, mail)
}

/// A header's value, its folded lines joined and its RFC 2047 encoded words decoded.
fn header(message: &str, name: &str) -> String {
    let head = message.split("\r\n\r\n").next().unwrap();
    let unfolded = head.replace("\r\n ", " ").replace("\r\n\t", " ");
    let value = unfolded
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name}: ")))
        .unwrap_or_else(|| panic!("no {name} in {head}"));
    let mut out = String::new();
    for word in value.split_whitespace() {
        match word.strip_prefix("=?").and_then(|w| w.strip_suffix("?=")) {
            Some(encoded) => {
                let mut parts = encoded.splitn(3, '?');
                let (_, how, data) = (parts.next(), parts.next().unwrap(), parts.next().unwrap());
                assert!(how.eq_ignore_ascii_case("b"), "{word}");
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(data)
                    .unwrap();
                out.push_str(&String::from_utf8(bytes).unwrap());
            }
            None => {
                if !out.is_empty() {
                    out.push(' ');
                }
                out.push_str(word);
            }
        }
    }
    out
}

/// A message's base64 body, decoded.
fn body(message: &str) -> String {
    assert!(
        message.contains("Content-Transfer-Encoding: base64"),
        "{message}"
    );
    let text: String = message
        .split_once("\r\n\r\n")
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .unwrap(),
    )
    .unwrap()
}

#[tokio::test]
async fn an_email_alert_for_a_japanese_store_arrives_in_japanese_with_the_rule_the_event_and_the_footage_link()
 {
    let (port, mail) = smtp_sink().await;
    let shop = shop(&format!(
        r#"
[smtp]
url = "smtp://127.0.0.1:{port}"
from = "tillmark <alerts@shop.example>"
[[alerts]]
id = "owner"
channel = "email"
to = ["owner@shop.example", "lp@shop.example"]
severities = ["high"]
"#
    ))
    .await;
    let now = now_ms();
    let seq = shop.refund("r-1", 60_000, now - 60_000).await;
    shop.judge(now).await;
    let step = shop.alerter("d1", now).step(now).await.unwrap();
    assert_eq!((step.sent, step.retried, step.failed), (1, 0, 0));

    let mail = mail.lock().unwrap().clone();
    assert_eq!(mail.len(), 1);
    let (to, message) = &mail[0];
    assert_eq!(to, &["<owner@shop.example>", "<lp@shop.example>"]);
    assert!(
        message.to_ascii_lowercase().contains("subject: =?utf-8?b?"),
        "the subject is MIME-encoded: {message}"
    );
    assert_eq!(
        header(message, "Subject"),
        "【tillmark】big-refund：Shibuya/r1 の返品"
    );
    // The same for every attempt of this alert: a mail client shows a message sent twice once.
    let id = header(message, "Message-ID");
    assert!(id.starts_with('<') && id.ends_with("@tillmark>"), "{id}");
    let text = body(message);
    for line in [
        "Shibuya でルールが例外を見つけました。",
        "ルール：big-refund（重要度 high）",
        "理由：返品 -¥60,000（¥50,000 以上）",
        "イベント：Shibuya/r1 の返品、",
        "金額：",
        &format!("イベントのページ：https://lp.example/tillmark/events/{seq}"),
        &format!("映像：https://lp.example/tillmark/events/{seq}/footage/0"),
    ] {
        assert!(text.contains(line), "{line:?} missing from:\n{text}");
    }
}

fn tokyo(local: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(&format!("{local}+09:00"))
        .unwrap()
        .timestamp_millis()
}

#[tokio::test]
async fn a_digest_goes_out_once_at_the_stores_local_time_listing_the_exceptions_of_the_day_before_it()
 {
    let hook = receiver(signed).await;
    let shop = shop(&format!(
        "{}digest = \"18:00\"\n",
        webhook("daily", &hook.url, "json")
    ))
    .await;
    // Two big refunds on Saturday morning, one that evening after the digest.
    let morning = shop
        .refund("r-1", 60_000, tokyo("2026-11-21T10:00:00"))
        .await;
    let noon = shop
        .refund("r-2", 70_000, tokyo("2026-11-21T12:00:00"))
        .await;
    shop.judge(tokyo("2026-11-21T12:30:00")).await;
    let mut alerter = shop.alerter("d1", tokyo("2026-11-21T09:00:00"));
    let nothing = alerter.step(tokyo("2026-11-21T17:59:59")).await.unwrap();
    assert_eq!((nothing.planned, nothing.sent), (0, 0));
    assert!(hook.got().is_empty(), "nothing before 18:00 Tokyo");

    let evening = shop
        .refund("r-3", 90_000, tokyo("2026-11-21T19:00:00"))
        .await;
    shop.judge(tokyo("2026-11-21T19:00:30")).await;
    // The digest waits a few seconds past 18:00 for exceptions stamped just before it to be committed.
    assert_eq!(
        alerter
            .step(tokyo("2026-11-21T18:00:11"))
            .await
            .unwrap()
            .sent,
        1
    );
    assert_eq!(
        alerter
            .step(tokyo("2026-11-21T23:00:00"))
            .await
            .unwrap()
            .sent,
        0
    );
    let got = hook.got();
    assert_eq!(got[0].key, "daily:shibuya-01:2026-11-21");
    let digest = &got[0].body;
    assert_eq!(
        (&digest["type"], &digest["day"], &digest["count"]),
        (&json!("digest"), &json!("2026-11-21"), &json!(2))
    );
    assert_eq!(digest["until"], "2026-11-21T18:00:00+09:00");
    let seqs: Vec<i64> = digest["exceptions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["event"]["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(seqs, [morning, noon]);

    // A restarted daemon sends Saturday's again to nobody; Sunday's lists the evening refund.
    let mut restarted = shop.alerter("d1", tokyo("2026-11-22T09:00:00"));
    assert_eq!(
        restarted
            .step(tokyo("2026-11-22T17:00:00"))
            .await
            .unwrap()
            .sent,
        0
    );
    assert_eq!(
        restarted
            .step(tokyo("2026-11-22T18:00:11"))
            .await
            .unwrap()
            .sent,
        1
    );
    let sunday = &hook.got()[1].body;
    assert_eq!(
        (&sunday["day"], &sunday["exceptions"][0]["event"]["seq"]),
        (&json!("2026-11-22"), &json!(evening))
    );
}

// ---- The daemon binary, killed mid-send ----

/// A receiver that takes each `Idempotency-Key` once, as the README tells one to: a repeat is answered 200
/// and dropped. It answers slowly, so a daemon killed while sending leaves a request in flight.
#[derive(Clone, Default)]
struct Deduplicating {
    taken: Arc<Mutex<Vec<String>>>,
    repeats: Arc<Mutex<Vec<String>>>,
    down: Arc<AtomicBool>,
}

async fn deduplicating() -> (String, Deduplicating) {
    async fn hook(
        State(r): State<Deduplicating>,
        headers: HeaderMap,
        body: Bytes,
    ) -> (StatusCode, &'static str) {
        if r.down.load(Ordering::SeqCst) {
            return (StatusCode::SERVICE_UNAVAILABLE, "down");
        }
        if signed(&headers, &body).is_err() {
            return (StatusCode::BAD_REQUEST, "bad signature");
        }
        let key = headers["idempotency-key"].to_str().unwrap().to_string();
        {
            let mut taken = r.taken.lock().unwrap();
            if taken.contains(&key) {
                r.repeats.lock().unwrap().push(key);
            } else {
                taken.push(key);
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        (StatusCode::OK, "ok")
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let state = Deduplicating::default();
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(hook))
        .with_state(state.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, state)
}

/// The daemon binary on `config`, its log in `log`; killed when dropped.
struct Daemon(std::process::Child);

impl Daemon {
    fn spawn(config: &std::path::Path, log: &std::path::Path) -> Daemon {
        Daemon(
            std::process::Command::new(env!("CARGO_BIN_EXE_tillmark"))
                .args(["run", "--config"])
                .arg(config)
                .env("ALERT_SECRET", SECRET)
                .env("RUST_LOG", "info,rumqttd=off")
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::fs::File::create(log).unwrap())
                .spawn()
                .expect("start tillmark"),
        )
    }

    /// `kill -9`.
    fn kill(mut self) {
        self.0.kill().unwrap();
        self.0.wait().unwrap();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn until(what: &str, secs: u64, check: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while !check() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_killed_mid_send_and_a_receiver_outage_still_leave_exactly_one_alert_per_exception()
 {
    let (url, hook) = deduplicating().await;
    let dir = tempfile::tempdir().unwrap();
    let db = TestDatabase::new(dir.path());
    let port = free_port();
    let config = dir.path().join("tillmark.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[mqtt]
embedded_listen = "127.0.0.1:{port}"
client_id = "alerts-crash"
[database]
url = "{db}"
[web]
listen = "127.0.0.1:0"
[delivery]
retry = ["200ms"]
[[stores]]
id = "shibuya-01"
timezone = "Asia/Tokyo"
[[rules]]
id = "big-refund"
kind = "amount_over"
types = ["refund"]
min_amount = 50000
currency = "JPY"
{alert}"#,
            db = db.url,
            alert = webhook("lp-desk", &url, "json"),
        ),
    )
    .unwrap();
    let (log1, log2) = (dir.path().join("run1.log"), dir.path().join("run2.log"));
    let daemon = Daemon::spawn(&config, &log1);
    until("the embedded broker to listen", 30, || {
        std::fs::read_to_string(&log1).is_ok_and(|l| l.contains("Embedded MQTT broker listening."))
    })
    .await;

    let mut options = rumqttc::MqttOptions::new("register-r1", "127.0.0.1", port);
    options.set_keep_alive(std::time::Duration::from_secs(10));
    let (client, mut events) = rumqttc::AsyncClient::new(options, 100);
    let acks = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = acks.clone();
    tokio::spawn(async move {
        while let Ok(event) = events.poll().await {
            if let rumqttc::Event::Incoming(rumqttc::Packet::PubAck(_)) = event {
                counted.fetch_add(1, Ordering::SeqCst);
            }
        }
    });
    const REFUNDS: usize = 20;
    for i in 0..REFUNDS {
        let at = chrono::DateTime::from_timestamp_millis(now_ms() - 1_000)
            .unwrap()
            .to_rfc3339();
        let event = json!({"id": format!("r-{i}"), "type": "refund", "at": at, "store": "shibuya-01",
            "register": "r1", "amount": -60_000, "currency": "JPY"});
        client
            .publish(
                "pos/shibuya-01/r1/events",
                rumqttc::QoS::AtLeastOnce,
                false,
                event.to_string(),
            )
            .await
            .unwrap();
    }
    until("every refund acknowledged", 20, || {
        acks.load(Ordering::SeqCst) == REFUNDS
    })
    .await;

    // Killed while it sends: some alerts taken, one perhaps in flight, the rest still owed.
    until("the first alerts", 30, || {
        hook.taken.lock().unwrap().len() >= 5
    })
    .await;
    daemon.kill();
    let before = hook.taken.lock().unwrap().len();
    assert!(
        before < REFUNDS,
        "killed mid-send ({before} of {REFUNDS} sent)"
    );

    // It comes back to a receiver that is down for a while.
    hook.down.store(true, Ordering::SeqCst);
    let daemon = Daemon::spawn(&config, &log2);
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    hook.down.store(false, Ordering::SeqCst);
    until("an alert for every refund", 60, || {
        hook.taken.lock().unwrap().len() == REFUNDS
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    daemon.kill();

    let taken = hook.taken.lock().unwrap().clone();
    let mut distinct = taken.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), REFUNDS, "one key per exception: {taken:?}");
    // Only a request in flight at the kill may come again, under its own key.
    let repeats = hook.repeats.lock().unwrap().clone();
    assert!(repeats.len() <= 1, "{repeats:?}");
    let second = std::fs::read_to_string(&log2).unwrap();
    assert!(
        second.contains("it is tried again"),
        "the outage is in the log: {second}"
    );
    assert!(
        !second.contains(SECRET) && !second.contains(&url),
        "no secret or URL in the log"
    );
}
