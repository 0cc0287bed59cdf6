//! `tillmark simulate` against a real embedded MQTT broker (rumqttd on a free loopback
//! port), and its event generator on large seeded samples.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use chrono::{DateTime, FixedOffset, Utc};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use rumqttd::{Broker, Config, ConnectionSettings, RouterConfig, ServerSettings};
use serde_json::Value;
use tillmark::simulate::{self, Generator, SimulateError, SimulateOptions};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

const REQUIRED_FIELDS: [&str; 5] = ["id", "type", "at", "store", "register"];
const EVENT_TYPES: [&str; 13] = [
    "void",
    "item_void",
    "correction",
    "refund",
    "no_sale",
    "drawer_open",
    "drawer_close",
    "discount",
    "sale",
    "paid_in",
    "paid_out",
    "sign_on",
    "sign_off",
];
const SAMPLE_START: &str = "2026-11-21T09:00:00.000+09:00";

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free loopback port")
        .port()
}

/// Starts rumqttd on a free loopback port and returns the port once it accepts connections.
fn start_broker() -> u16 {
    let port = free_port();
    let listen = SocketAddr::from(([127, 0, 0, 1], port));
    let server = ServerSettings {
        name: format!("v4-{port}"),
        listen,
        tls: None,
        next_connection_delay_ms: 1,
        connections: ConnectionSettings {
            connection_timeout_ms: 60_000,
            max_payload_size: 256 * 1024,
            max_inflight_count: 100,
            auth: None,
            external_auth: None,
            dynamic_filters: true,
        },
    };
    let config = Config {
        router: RouterConfig {
            max_connections: 100,
            max_outgoing_packet_count: 200,
            max_segment_size: 100 * 1024 * 1024,
            max_segment_count: 10,
            ..RouterConfig::default()
        },
        v4: Some(HashMap::from([("1".to_string(), server)])),
        ..Config::default()
    };
    std::thread::spawn(move || {
        let mut broker = Broker::new(config);
        broker.start().expect("embedded broker runs");
    });

    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(listen).is_err() {
        assert!(
            Instant::now() < deadline,
            "broker did not start on {listen}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    port
}

/// Subscribes to every register's events and forwards (topic, payload) once subscribed.
async fn subscribe_all(port: u16) -> mpsc::UnboundedReceiver<(String, Vec<u8>)> {
    let mut options = MqttOptions::new(format!("tillmark-test-sub-{port}"), "127.0.0.1", port);
    options.set_max_packet_size(256 * 1024, 256 * 1024);
    let (client, mut eventloop) = AsyncClient::new(options, 100);
    let (messages_tx, messages_rx) = mpsc::unbounded_channel();
    let (subscribed_tx, subscribed_rx) = oneshot::channel();
    tokio::spawn(async move {
        let mut subscribed_tx = Some(subscribed_tx);
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::SubAck(_))) => {
                    if let Some(tx) = subscribed_tx.take() {
                        let _ = tx.send(());
                    }
                }
                Ok(Event::Incoming(Packet::Publish(publish))) => {
                    let _ = messages_tx.send((publish.topic, publish.payload.to_vec()));
                }
                Ok(_) => {}
                Err(err) => panic!("test subscriber lost its broker: {err}"),
            }
        }
    });
    client
        .subscribe("pos/+/+/events", QoS::AtLeastOnce)
        .await
        .expect("subscribe request queued");
    tokio::time::timeout(Duration::from_secs(5), subscribed_rx)
        .await
        .expect("SUBACK within 5 s")
        .expect("subscriber task alive");
    // The client must outlive the test body or the event loop ends; leaking is fine in tests.
    std::mem::forget(client);
    messages_rx
}

fn options_for(broker: String) -> SimulateOptions {
    SimulateOptions {
        broker,
        ..SimulateOptions::default()
    }
}

fn sample_start() -> DateTime<FixedOffset> {
    DateTime::parse_from_rfc3339(SAMPLE_START).expect("valid sample start")
}

fn sample(opts: &SimulateOptions, count: usize) -> Vec<(String, Value)> {
    let mut generator = Generator::new(opts, sample_start());
    (0..count).map(|_| generator.next_event()).collect()
}

fn seeded(seed: u64) -> SimulateOptions {
    SimulateOptions {
        seed: Some(seed),
        stores: 2,
        registers: 3,
        ..SimulateOptions::default()
    }
}

fn field<'a>(event: &'a Value, name: &str) -> &'a str {
    event[name].as_str().unwrap_or_default()
}

/// Checks the contract's shape and returns `at`; panics with the offending payload.
fn assert_contract(topic: &str, event: &Value) -> DateTime<FixedOffset> {
    let object = event
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {event}"));
    for name in REQUIRED_FIELDS {
        let value = object.get(name).and_then(Value::as_str);
        assert!(
            value.is_some_and(|v| !v.is_empty()),
            "missing {name}: {event}"
        );
    }
    assert!(
        EVENT_TYPES.contains(&field(event, "type")),
        "unknown type: {event}"
    );
    assert!(
        uuid::Uuid::parse_str(field(event, "id")).is_ok_and(|id| id.get_version_num() == 4),
        "id is not a UUID v4: {event}"
    );

    let at_text = field(event, "at");
    let at = DateTime::parse_from_rfc3339(at_text)
        .unwrap_or_else(|err| panic!("`at` is not RFC 3339 ({err}): {event}"));
    assert!(
        at_text.ends_with("+09:00") && at_text.as_bytes().get(19) == Some(&b'.'),
        "`at` lacks milliseconds or the +09:00 offset: {at_text}"
    );
    assert_eq!(
        at_text.len(),
        "2026-11-21T18:42:07.310+09:00".len(),
        "{at_text}"
    );

    let parts: Vec<&str> = topic.split('/').collect();
    assert_eq!(parts.len(), 4, "topic {topic}");
    assert_eq!(parts[3], "events", "topic {topic}");
    assert_eq!(
        parts[1],
        field(event, "store"),
        "store vs topic {topic}: {event}"
    );
    assert_eq!(
        parts[2],
        field(event, "register"),
        "register vs topic {topic}: {event}"
    );

    if let Some(amount) = object.get("amount") {
        assert!(amount.is_i64(), "amount is not an integer: {event}");
        assert_eq!(field(event, "currency"), "JPY", "{event}");
    }
    if let Some(lines) = object.get("lines") {
        let lines = lines.as_array().unwrap_or_else(|| panic!("lines: {event}"));
        assert!(lines.iter().all(Value::is_string), "{event}");
    }
    if let Some(attributes) = object.get("attributes") {
        let attributes = attributes.as_object().unwrap_or_else(|| panic!("{event}"));
        assert!(
            attributes
                .values()
                .all(|v| v.is_string() || v.is_number() || v.is_boolean()),
            "attributes must be flat: {event}"
        );
    }
    at
}

#[tokio::test]
async fn every_acknowledged_event_reaches_a_subscriber_intact_and_exactly_once() {
    let port = start_broker();
    let mut received = subscribe_all(port).await;
    let opts = SimulateOptions {
        broker: format!("mqtt://127.0.0.1:{port}"),
        stores: 2,
        registers: 3,
        rate: 50.0,
        duration: Duration::from_secs(2),
        seed: Some(7),
        ..SimulateOptions::default()
    };
    let before = Utc::now();
    let summary = simulate::run(opts, CancellationToken::new())
        .await
        .expect("simulation against a live broker succeeds");
    let after = Utc::now();

    assert!(
        (50..=110).contains(&summary.published),
        "2 s at 50/s published {}",
        summary.published
    );
    assert_eq!(summary.by_type.values().sum::<u64>(), summary.published);

    let mut messages = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while (messages.len() as u64) < summary.published {
        match tokio::time::timeout_at(deadline, received.recv()).await {
            Ok(Some(message)) => messages.push(message),
            _ => break,
        }
    }
    // Anything beyond the summary would be an uncounted or duplicated publish.
    while let Ok(Some(message)) =
        tokio::time::timeout(Duration::from_millis(300), received.recv()).await
    {
        messages.push(message);
    }
    assert_eq!(messages.len() as u64, summary.published);

    let mut ids = HashSet::new();
    let mut by_type: BTreeMap<String, u64> = BTreeMap::new();
    for (topic, payload) in &messages {
        let event: Value = serde_json::from_slice(payload)
            .unwrap_or_else(|err| panic!("unparseable payload ({err}) on {topic}"));
        let at = assert_contract(topic, &event);
        assert!(
            at >= before - chrono::TimeDelta::seconds(1) && at <= after,
            "`at` {at} is not the publishing time"
        );
        assert!(topic.starts_with("pos/store-0"), "topic {topic}");
        assert!(
            ids.insert(field(&event, "id").to_string()),
            "duplicate id: {event}"
        );
        *by_type
            .entry(field(&event, "type").to_string())
            .or_insert(0) += 1;
    }
    assert_eq!(by_type, summary.by_type);
    assert!(
        summary
            .to_string()
            .contains(&format!("published {}", summary.published))
    );
}

#[tokio::test]
async fn with_a_signing_key_every_event_is_an_envelope_whose_signature_the_daemon_accepts() {
    let port = start_broker();
    let mut received = subscribe_all(port).await;
    let key = "5e1f0c9b8a7d6e5f4a3b2c1d0e9f8a7b";
    let opts = SimulateOptions {
        broker: format!("mqtt://127.0.0.1:{port}"),
        rate: 20.0,
        duration: Duration::from_secs(1),
        seed: Some(11),
        sign_key: Some(tillmark::secret::Secret::new(key)),
        ..SimulateOptions::default()
    };
    let summary = simulate::run(opts, CancellationToken::new())
        .await
        .expect("simulation against a live broker succeeds");
    assert!(summary.published > 0);
    let signing = tillmark::event::Signing {
        mode: tillmark::event::SigningMode::Required,
        keys: vec![tillmark::event::RegisterKey {
            scope: tillmark::event::RegisterScope {
                store: "store-01".into(),
                register: None,
            },
            key: tillmark::secret::Secret::new(key),
        }],
    };
    let mut checked = 0;
    while let Ok(Some((topic, payload))) =
        tokio::time::timeout(Duration::from_millis(500), received.recv()).await
    {
        if !topic.starts_with("pos/store-01/") {
            continue;
        }
        let parsed = tillmark::event::read(
            &payload,
            &tillmark::event::Arrival {
                topic: &topic,
                received_ms: Utc::now().timestamp_millis(),
                max_age_ms: 86_400_000,
                max_ahead_ms: 86_400_000,
                signing: &signing,
                id_key: b"k",
            },
        );
        assert_eq!(
            parsed.signature,
            tillmark::event::Signature::Verified,
            "{:?}",
            parsed.result
        );
        checked += 1;
    }
    assert!(checked > 0, "no event of store-01 arrived");
}

#[tokio::test]
async fn a_cancelled_run_stops_promptly_and_reports_what_was_acknowledged() {
    let port = start_broker();
    let cancel = CancellationToken::new();
    let opts = SimulateOptions {
        rate: 100.0,
        duration: Duration::from_secs(60),
        ..options_for(format!("127.0.0.1:{port}"))
    };
    let canceller = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(500)).await;
        canceller.cancel();
    });
    let started = Instant::now();
    let summary = simulate::run(opts, cancel)
        .await
        .expect("a cancelled run is not an error");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert!(summary.published > 0);
    assert_eq!(summary.by_type.values().sum::<u64>(), summary.published);
}

#[tokio::test]
async fn a_malformed_broker_url_is_rejected_with_the_accepted_forms_named() {
    for broker in ["http://localhost:1883", "mqtt://localhost:notaport", ""] {
        let err = simulate::run(options_for(broker.to_string()), CancellationToken::new())
            .await
            .expect_err(broker);
        assert!(
            matches!(err, SimulateError::InvalidBroker { .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains("mqtt://host:port"), "{err}");
    }
}

#[tokio::test]
async fn an_unreachable_broker_fails_within_seconds_naming_its_address() {
    let port = free_port();
    let started = Instant::now();
    let err = simulate::run(
        options_for(format!("tcp://127.0.0.1:{port}")),
        CancellationToken::new(),
    )
    .await
    .expect_err("nothing listens on a freshly released port");
    assert!(
        started.elapsed() < Duration::from_secs(7),
        "{:?}",
        started.elapsed()
    );
    assert!(matches!(err, SimulateError::Connect { .. }), "{err:?}");
    assert!(
        err.to_string().contains(&format!("127.0.0.1:{port}")),
        "{err}"
    );
}

#[tokio::test]
async fn a_broker_that_never_answers_the_handshake_times_out_instead_of_hanging() {
    // The kernel completes the TCP handshake for a listener that never accepts, so only the
    // MQTT CONNACK is missing.
    let silent = TcpListener::bind("127.0.0.1:0").expect("bind a silent listener");
    let port = silent.local_addr().expect("local address").port();
    let started = Instant::now();
    let err = simulate::run(
        options_for(format!("mqtt://127.0.0.1:{port}")),
        CancellationToken::new(),
    )
    .await
    .expect_err("no CONNACK ever arrives");
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_secs(8), "{elapsed:?}");
    assert!(matches!(err, SimulateError::Connect { .. }), "{err:?}");
    assert!(
        err.to_string().contains(&format!("127.0.0.1:{port}")),
        "{err}"
    );
    drop(silent);
}

#[test]
fn a_seeded_generator_reproduces_the_same_stream_and_another_seed_does_not() {
    let first = sample(&seeded(11), 500);
    assert_eq!(first, sample(&seeded(11), 500));
    assert_ne!(first, sample(&seeded(12), 500));
}

#[test]
fn generated_events_follow_the_contract_and_time_advances_from_the_start() {
    let events = sample(&seeded(3), 2_000);
    let start = sample_start();
    let mut previous = start;
    for (topic, event) in &events {
        let at = assert_contract(topic, event);
        assert!(at >= previous, "time went backwards at {event}");
        previous = at;
    }
    assert!(
        previous > start + chrono::TimeDelta::minutes(30),
        "last event at {previous}"
    );
    let ids: HashSet<&str> = events.iter().map(|(_, e)| field(e, "id")).collect();
    assert_eq!(ids.len(), events.len());
}

#[test]
fn a_large_seeded_sample_contains_every_flagged_type_and_is_mostly_sales() {
    let events = sample(&seeded(2026), 2_000);
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for (_, event) in &events {
        *counts.entry(field(event, "type")).or_insert(0) += 1;
    }
    for kind in EVENT_TYPES {
        assert!(
            counts.get(kind).copied().unwrap_or(0) >= 1,
            "no {kind} in {counts:?}"
        );
    }
    let sale_related: usize = [
        "sale",
        "drawer_open",
        "drawer_close",
        "item_void",
        "discount",
        "correction",
    ]
    .iter()
    .map(|kind| counts.get(kind).copied().unwrap_or(0))
    .sum();
    let share = sale_related as f64 / events.len() as f64;
    assert!(
        (0.7..0.95).contains(&share),
        "sale-related share {share}: {counts:?}"
    );
    for flagged in ["void", "no_sale", "refund"] {
        let share = counts[flagged] as f64 / events.len() as f64;
        assert!((0.005..0.05).contains(&share), "{flagged} share {share}");
    }
}

#[test]
fn every_drawer_open_is_followed_by_a_close_of_the_same_transaction_on_that_register() {
    let opts = seeded(99);
    let mut generator = Generator::new(&opts, sample_start());
    let mut open: HashMap<String, String> = HashMap::new();
    let mut last: HashMap<String, Value> = HashMap::new();
    let mut opened = 0;
    let mut produced = 0;
    // Past 2,000 events, keep going only until every open drawer has closed.
    while produced < 2_000 || !open.is_empty() {
        assert!(produced < 2_200, "drawers never closed: {open:?}");
        let (topic, event) = generator.next_event();
        produced += 1;
        let transaction = field(&event, "transaction").to_string();
        match field(&event, "type") {
            "drawer_open" => {
                opened += 1;
                let before = last.get(&topic).cloned().unwrap_or_default();
                assert!(
                    ["sale", "no_sale", "refund", "paid_in", "paid_out"]
                        .contains(&field(&before, "type"))
                        && field(&before, "transaction") == transaction,
                    "drawer opened without a cash transaction: {before} then {event}"
                );
                assert!(
                    field(&before, "type") != "sale" || before["attributes"]["tender"] == "cash"
                );
                open.insert(topic.clone(), transaction);
            }
            "drawer_close" => {
                assert_eq!(open.remove(&topic), Some(transaction), "{event}");
            }
            _ => assert!(
                !open.contains_key(&topic),
                "register busy with an open drawer: {event}"
            ),
        }
        last.insert(topic, event);
    }
    assert!(opened > 100, "only {opened} drawer opens");
}

#[test]
fn card_sales_never_open_the_drawer() {
    let events = sample(&seeded(5), 2_000);
    let mut previous: HashMap<&str, &Value> = HashMap::new();
    let mut card_sales = 0;
    for (topic, event) in &events {
        if field(event, "type") == "drawer_open" {
            let before = previous[topic.as_str()];
            if field(before, "type") == "sale" {
                assert_eq!(before["attributes"]["tender"], "cash", "{before}");
            }
        }
        if field(event, "type") == "sale" && event["attributes"]["tender"] != "cash" {
            card_sales += 1;
        }
        previous.insert(topic, event);
    }
    assert!(card_sales > 50, "only {card_sales} card sales");
}

#[test]
fn cashiers_sign_on_before_ringing_anything_up_and_work_one_register_at_a_time() {
    let events = sample(&seeded(1234), 2_000);
    let mut on_duty: HashMap<&str, String> = HashMap::new();
    let mut shift_changes = 0;
    for (topic, event) in &events {
        let cashier = field(event, "cashier").to_string();
        assert!(!cashier.is_empty(), "no cashier: {event}");
        match field(event, "type") {
            "sign_on" => {
                assert!(
                    !on_duty.contains_key(topic.as_str()),
                    "double sign-on: {event}"
                );
                let store = field(event, "store");
                let elsewhere = on_duty.iter().any(|(other, name)| {
                    *name == cashier && other.split('/').nth(1) == Some(store)
                });
                assert!(
                    !elsewhere,
                    "{cashier} is already on another register: {event}"
                );
                on_duty.insert(topic, cashier);
            }
            "sign_off" => {
                assert_eq!(on_duty.remove(topic.as_str()), Some(cashier), "{event}");
                shift_changes += 1;
            }
            _ => assert_eq!(
                on_duty.get(topic.as_str()),
                Some(&cashier),
                "event by a cashier who is not signed on: {event}"
            ),
        }
    }
    assert!(shift_changes >= 1, "no shift change in 2,000 events");
}

#[test]
fn sale_and_void_amounts_equal_the_sum_of_their_receipt_lines() {
    let events = sample(&seeded(8), 2_000);
    let mut checked = 0;
    for (_, event) in &events {
        if !["sale", "void", "refund"].contains(&field(event, "type")) {
            continue;
        }
        let lines = event["lines"].as_array().expect("sales carry lines");
        let sum: i64 = lines
            .iter()
            .map(|line| {
                let text = line.as_str().unwrap_or_default();
                let price = text.rsplit(' ').next().unwrap_or_default();
                price
                    .parse::<i64>()
                    .unwrap_or_else(|_| panic!("no price in {text:?}"))
            })
            .sum();
        assert_eq!(event["amount"].as_i64(), Some(sum), "{event}");
        assert!(sum > 0, "{event}");
        assert!(field(event, "transaction").starts_with("T-"), "{event}");
        checked += 1;
    }
    assert!(checked > 500, "only {checked} sales checked");
}

#[test]
fn topics_are_prefix_store_register_events_for_every_register() {
    let opts = SimulateOptions {
        topic_prefix: "demo".into(),
        stores: 3,
        registers: 2,
        seed: Some(4),
        ..SimulateOptions::default()
    };
    let topics: HashSet<String> = sample(&opts, 500).into_iter().map(|(t, _)| t).collect();
    let expected: HashSet<String> = (1..=3)
        .flat_map(|s| (1..=2).map(move |r| format!("demo/store-{s:02}/r{r}/events")))
        .collect();
    assert_eq!(topics, expected);
}

#[test]
fn no_payload_carries_anything_resembling_a_card_number() {
    for (_, mut event) in sample(&seeded(77), 2_000) {
        // A UUID's last group is 12 hex digits that can happen to be all decimal.
        if let Some(object) = event.as_object_mut() {
            object.remove("id");
        }
        let text = event.to_string();
        let longest_digit_run = text
            .split(|c: char| !c.is_ascii_digit())
            .map(str::len)
            .max()
            .unwrap_or(0);
        assert!(longest_digit_run < 12, "{text}");
    }
}
