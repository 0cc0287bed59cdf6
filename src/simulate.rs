//! `tillmark simulate`: owns the synthetic POS event stream used for demos and load tests.
//!
//! [`Generator`] is a broker-free, seedable model of a Japanese convenience store's
//! registers (sign-ons, cash and card sales with drawer events, voids, no-sales, refunds,
//! paid-ins/outs, shift changes) producing payloads in the register event contract.
//! [`run`] publishes that stream to an MQTT broker at a fixed rate with QoS 1 and counts an
//! event as published only once the broker has acknowledged it.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, FixedOffset, SecondsFormat, TimeDelta, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, NetworkOptions, Outgoing, Packet, QoS};
use serde_json::{Map, Value};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::config::BrokerUrl;
use crate::event::EventType;

const DEFAULT_MQTT_PORT: u16 = 1883;
const EXPECTED_BROKER_FORMS: &str = "mqtt://host:port, tcp://host:port or host:port";
const CONNECT_TIMEOUT_SECS: u64 = 5;
/// Publishes sent but not yet acknowledged; bounds memory and keeps the broker's inflight
/// window (rumqttc's, set below) from ever being the thing that blocks.
const MAX_UNACKED: usize = 64;
const MQTT_INFLIGHT: u16 = 100;
/// After the run ends, how long to wait for acknowledgements still outstanding.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
/// Limits that keep a typo such as `--stores 100000000` from exhausting memory.
pub const MAX_STORES: u32 = 999;
pub const MAX_REGISTERS_PER_STORE: u32 = 99;
/// Pacing slower than one event a day is indistinguishable from idle, and larger tokio
/// interval periods can overflow `Instant` arithmetic.
const MAX_PERIOD: Duration = Duration::from_secs(86_400);

/// Options of `tillmark simulate` (clap derives are done by the caller; keep this a plain struct).
#[derive(Debug, Clone)]
pub struct SimulateOptions {
    /// MQTT broker: `mqtt://host:port`, `tcp://host:port` or bare `host:port`
    /// (port 1883 when omitted; IPv6 hosts in brackets).
    pub broker: String,
    /// Number of stores; ids `store-01`, `store-02`, ... (1..=999), unless `store_ids` names them.
    pub stores: u32,
    /// The stores' ids, as a site's config names them (`shibuya-01`); when given, `stores` is their count.
    pub store_ids: Vec<String>,
    /// The stores' time zone: events carry its local time and offset, daylight saving included.
    pub timezone: chrono_tz::Tz,
    /// ISO 4217 code of every amount; amounts are in its minor units (yen, cents).
    pub currency: String,
    /// Registers per store; ids `r1`, `r2`, ... (1..=99).
    pub registers: u32,
    /// Events per second across all registers.
    pub rate: f64,
    /// How long to publish.
    pub duration: Duration,
    /// Makes the sequence of events (types, ids, amounts) reproducible.
    pub seed: Option<u64>,
    /// Topic is `{topic_prefix}/{store}/{register}/events`.
    pub topic_prefix: String,
    /// Signs every event (contract v1.1 envelope) with this key, as a register holding it would.
    pub sign_key: Option<crate::secret::Secret>,
}

impl Default for SimulateOptions {
    fn default() -> Self {
        Self {
            broker: format!("mqtt://localhost:{DEFAULT_MQTT_PORT}"),
            stores: 2,
            store_ids: Vec::new(),
            timezone: chrono_tz::Asia::Tokyo,
            currency: "JPY".into(),
            registers: 2,
            rate: 5.0,
            duration: Duration::from_secs(60),
            seed: None,
            topic_prefix: "pos".to_string(),
            sign_key: None,
        }
    }
}

/// What a run published: only events the broker acknowledged are counted.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct SimulateSummary {
    pub published: u64,
    pub by_type: BTreeMap<String, u64>,
}

impl SimulateSummary {
    fn record(&mut self, kind: EventType) {
        self.published += 1;
        *self.by_type.entry(kind.as_str().to_string()).or_insert(0) += 1;
    }
}

impl fmt::Display for SimulateSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "published {} events", self.published)?;
        let width = self.by_type.keys().map(String::len).max().unwrap_or(0);
        for (kind, count) in &self.by_type {
            writeln!(f, "  {kind:<width$}  {count:>7}")?;
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SimulateError {
    #[error("invalid MQTT broker address {given:?}: {reason} (expected {EXPECTED_BROKER_FORMS})")]
    InvalidBroker { given: String, reason: String },
    #[error("invalid simulate options: {0}")]
    InvalidOptions(String),
    #[error("could not connect to MQTT broker at {broker}: {reason}")]
    Connect { broker: String, reason: String },
    #[error(
        "lost the connection to MQTT broker at {broker} after {} acknowledged events: {reason}",
        summary.published
    )]
    ConnectionLost {
        broker: String,
        reason: String,
        /// What had been acknowledged before the connection was lost.
        summary: SimulateSummary,
    },
}

/// Publishes until `duration` elapses or `cancel` is cancelled, awaiting the broker's PUBACK
/// for every message (QoS 1), pacing to `rate`. Returns what was published.
///
/// Events published but still unacknowledged when the run ends get a few seconds to be
/// acknowledged; any that are not are left out of the summary. A connection lost mid-run
/// ends the run with [`SimulateError::ConnectionLost`] rather than reconnecting, because
/// with a clean session the unacknowledged events would silently vanish.
pub async fn run(
    opts: SimulateOptions,
    cancel: CancellationToken,
) -> Result<SimulateSummary, SimulateError> {
    let broker = broker_url(&opts.broker)?;
    let period = validate(&opts)?;
    let mut generator = Generator::new(&opts, now_in(opts.timezone));

    let client_id = format!("tillmark-sim-{:08x}", rand::random::<u32>());
    let mut mqtt = MqttOptions::new(client_id, broker.host.clone(), broker.port);
    mqtt.set_clean_session(true).set_inflight(MQTT_INFLIGHT);
    let (client, mut eventloop) = AsyncClient::new(mqtt, MAX_UNACKED + 8);
    let mut network = NetworkOptions::new();
    network.set_connection_timeout(CONNECT_TIMEOUT_SECS);
    eventloop.set_network_options(network);

    tokio::select! {
        _ = cancel.cancelled() => return Ok(SimulateSummary::default()),
        connected = tokio::time::timeout(
            Duration::from_secs(CONNECT_TIMEOUT_SECS + 1),
            await_connack(&mut eventloop),
        ) => match connected {
            Ok(Ok(())) => {}
            Ok(Err(reason)) => return Err(SimulateError::Connect { broker: broker.to_string(), reason }),
            Err(_) => {
                return Err(SimulateError::Connect {
                    broker: broker.to_string(),
                    reason: format!("no CONNACK within {CONNECT_TIMEOUT_SECS} s"),
                });
            }
        },
    }
    tracing::info!(%broker, rate = opts.rate, duration = ?opts.duration, "simulating POS events");

    let sent_order: SentOrder = Arc::new(Mutex::new(VecDeque::new()));
    let (acks_tx, mut acks) = mpsc::unbounded_channel();
    let pump = tokio::spawn(pump_eventloop(eventloop, Arc::clone(&sent_order), acks_tx));

    let mut summary = SimulateSummary::default();
    let mut unacked = 0usize;
    // Burst (tokio's default) keeps the average rate even when one tick is late, which
    // matters at rates above the timer's 1 ms resolution.
    let mut ticker = tokio::time::interval(period);
    let deadline = tokio::time::sleep(opts.duration);
    tokio::pin!(deadline);

    let outcome: Result<(), String> = loop {
        tokio::select! {
            biased;
            _ = cancel.cancelled() => break Ok(()),
            _ = &mut deadline => break Ok(()),
            report = acks.recv() => match report {
                Some(PumpReport::Acked(kind)) => {
                    unacked = unacked.saturating_sub(1);
                    summary.record(kind);
                }
                Some(PumpReport::Lost(reason)) => break Err(reason),
                None => break Err("MQTT event loop stopped".to_string()),
            },
            _ = ticker.tick(), if unacked < MAX_UNACKED => {
                let emitted = generator.emit(Some(now_in(opts.timezone)));
                let payload = match serde_json::to_string(&emitted.payload) {
                    Ok(text) => match &opts.sign_key {
                        Some(key) => {
                            let sig = crate::event::sign(&text, key);
                            format!(r#"{{"event":{text},"sig":"{sig}"}}"#).into_bytes()
                        }
                        None => text.into_bytes(),
                    },
                    Err(err) => {
                        tracing::warn!(%err, "skipping an event that could not be serialized");
                        continue;
                    }
                };
                // Registered before the request exists so the pump always finds it when
                // rumqttc reports the packet id it assigned.
                lock(&sent_order).push_back(emitted.kind);
                if let Err(err) = client.publish(emitted.topic, QoS::AtLeastOnce, false, payload).await {
                    lock(&sent_order).pop_back();
                    break Err(err.to_string());
                }
                unacked += 1;
            }
        }
    };

    let outcome = match outcome {
        Ok(()) => drain(&mut acks, &mut unacked, &mut summary).await,
        Err(reason) => Err(reason),
    };
    if let Err(reason) = outcome {
        pump.abort();
        return Err(SimulateError::ConnectionLost {
            broker: broker.to_string(),
            reason,
            summary,
        });
    }
    if unacked > 0 {
        tracing::warn!(
            unacked,
            "some events were not acknowledged in time and are not counted"
        );
    }

    // Disconnecting politely lets the broker drop the session at once instead of waiting
    // for the keep-alive to expire.
    let _ = client.try_disconnect();
    let mut pump = pump;
    if tokio::time::timeout(Duration::from_secs(2), &mut pump)
        .await
        .is_err()
    {
        pump.abort();
    }
    tracing::info!(published = summary.published, "simulation finished");
    Ok(summary)
}

/// Kinds of publishes in the order rumqttc will take them from its request channel.
type SentOrder = Arc<Mutex<VecDeque<EventType>>>;

enum PumpReport {
    Acked(EventType),
    Lost(String),
}

fn lock(order: &SentOrder) -> std::sync::MutexGuard<'_, VecDeque<EventType>> {
    // The queue holds plain data; a panic elsewhere cannot leave it inconsistent.
    order.lock().unwrap_or_else(PoisonError::into_inner)
}

async fn await_connack(eventloop: &mut EventLoop) -> Result<(), String> {
    loop {
        match eventloop.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(_))) => return Ok(()),
            Ok(_) => {}
            Err(err) => return Err(err.to_string()),
        }
    }
}

/// Drives the MQTT connection and turns PUBACKs back into event kinds.
///
/// rumqttc assigns packet ids inside the event loop and reports them as
/// `Outgoing::Publish(pkid)` in the order it takes requests from its channel (a collided
/// publish is reported only when it is finally sent, still in order), so pairing each report
/// with the next entry of `sent_order` identifies which event got which packet id.
async fn pump_eventloop(
    mut eventloop: EventLoop,
    sent_order: SentOrder,
    reports: mpsc::UnboundedSender<PumpReport>,
) {
    let mut in_flight: HashMap<u16, EventType> = HashMap::new();
    loop {
        match eventloop.poll().await {
            Ok(Event::Outgoing(Outgoing::Publish(pkid))) => match lock(&sent_order).pop_front() {
                Some(kind) => {
                    in_flight.insert(pkid, kind);
                }
                None => tracing::warn!(pkid, "publish sent that simulate did not queue"),
            },
            Ok(Event::Incoming(Packet::PubAck(ack))) => match in_flight.remove(&ack.pkid) {
                Some(kind) => {
                    if reports.send(PumpReport::Acked(kind)).is_err() {
                        return;
                    }
                }
                None => tracing::warn!(pkid = ack.pkid, "PUBACK for an unknown packet id"),
            },
            Ok(Event::Outgoing(Outgoing::Disconnect)) => return,
            Ok(_) => {}
            Err(err) => {
                let _ = reports.send(PumpReport::Lost(err.to_string()));
                return;
            }
        }
    }
}

async fn drain(
    acks: &mut mpsc::UnboundedReceiver<PumpReport>,
    unacked: &mut usize,
    summary: &mut SimulateSummary,
) -> Result<(), String> {
    let waiting = async {
        while *unacked > 0 {
            match acks.recv().await {
                Some(PumpReport::Acked(kind)) => {
                    *unacked -= 1;
                    summary.record(kind);
                }
                Some(PumpReport::Lost(reason)) => return Err(reason),
                None => return Err("MQTT event loop stopped".to_string()),
            }
        }
        Ok(())
    };
    tokio::time::timeout(DRAIN_TIMEOUT, waiting)
        .await
        .unwrap_or(Ok(()))
}

/// Checks the options `run` cannot work with and returns the pacing period.
fn validate(opts: &SimulateOptions) -> Result<Duration, SimulateError> {
    if !(1..=MAX_STORES).contains(&opts.stores) {
        return Err(SimulateError::InvalidOptions(format!(
            "stores must be between 1 and {MAX_STORES}, got {}",
            opts.stores
        )));
    }
    if !(1..=MAX_REGISTERS_PER_STORE).contains(&opts.registers) {
        return Err(SimulateError::InvalidOptions(format!(
            "registers must be between 1 and {MAX_REGISTERS_PER_STORE}, got {}",
            opts.registers
        )));
    }
    if let Some(bad) = opts.store_ids.iter().find(|id| {
        id.is_empty() || id.contains(['/', '+', '#', '\0']) || id.chars().any(char::is_whitespace)
    }) {
        return Err(SimulateError::InvalidOptions(format!(
            "store id {bad:?} cannot be a topic level: use letters, digits, - and _"
        )));
    }
    if opts.currency.len() != 3 || !opts.currency.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(SimulateError::InvalidOptions(format!(
            "currency must be an ISO 4217 code such as JPY or USD, got {:?}",
            opts.currency
        )));
    }
    let prefix = &opts.topic_prefix;
    if prefix.is_empty() || prefix.contains(['+', '#', '\0']) {
        return Err(SimulateError::InvalidOptions(format!(
            "topic prefix must be non-empty and free of MQTT wildcards (+, #), got {prefix:?}"
        )));
    }
    if !opts.rate.is_finite() || opts.rate <= 0.0 {
        return Err(SimulateError::InvalidOptions(format!(
            "rate must be a positive number of events per second, got {}",
            opts.rate
        )));
    }
    let period = Duration::try_from_secs_f64(1.0 / opts.rate).unwrap_or(MAX_PERIOD);
    Ok(period.clamp(Duration::from_nanos(1), MAX_PERIOD))
}

/// Now in `zone`, with the offset it has now.
fn now_in(zone: chrono_tz::Tz) -> DateTime<FixedOffset> {
    Utc::now().with_timezone(&zone).fixed_offset()
}

/// The broker to publish to: the daemon's own URL parser, without TLS (the simulator speaks plain MQTT).
fn broker_url(given: &str) -> Result<BrokerUrl, SimulateError> {
    let bad = |reason: String| SimulateError::InvalidBroker {
        given: given.to_string(),
        reason,
    };
    let url = BrokerUrl::parse(given.trim()).map_err(bad)?;
    if url.tls {
        return Err(bad("TLS brokers are not supported".into()));
    }
    Ok(url)
}

struct Item {
    name: &'static str,
    price: i64,
    age_restricted: bool,
}

const fn item(name: &'static str, price: i64) -> Item {
    Item {
        name,
        price,
        age_restricted: false,
    }
}

const fn adult(name: &'static str, price: i64) -> Item {
    Item {
        name,
        price,
        age_restricted: true,
    }
}

/// Tax-included yen prices, as Japanese receipts show them; labels mix kana/kanji and the
/// romaji/English that many chains print.
const CATALOGUE: &[Item] = &[
    item("おにぎり 鮭", 180),
    item("おにぎり ツナマヨ", 150),
    item("ONIGIRI SALMON", 180),
    item("ONIGIRI UME", 140),
    item("幕の内弁当", 598),
    item("KARAAGE BENTO", 540),
    item("サンドイッチ ミックス", 328),
    item("カップヌードル", 236),
    item("メロンパン", 150),
    item("カスタードプリン", 198),
    item("からあげ 5個", 238),
    item("FAMICHIKI", 220),
    item("肉まん", 160),
    item("おでん 大根", 120),
    item("お茶 500ml", 160),
    item("OOLONG TEA 600ML", 150),
    item("BOSS COFFEE 缶", 140),
    item("コカ・コーラ 500ml", 180),
    item("ミネラルウォーター", 110),
    item("ポテトチップス うすしお", 168),
    item("HOT COFFEE R", 120),
    item("ICED CAFE LATTE", 230),
    item("週刊少年ジャンプ", 300),
    item("単3電池 4本", 498),
    item("ビニール傘", 770),
    item("レジ袋 L", 5),
    adult("ビール 350ml", 248),
    adult("STRONG ZERO 350ML", 162),
];

const ITEM_VOID_REASONS: &[&str] = &["二重スキャン", "お客様都合", "scan error", "wrong item"];
const CORRECTION_REASONS: &[&str] = &["売価変更", "棚札相違", "price override"];
const DISCOUNT_REASONS: &[&str] = &["タイムセール", "値引シール", "coupon", "staff discount"];
const VOID_REASONS: &[&str] = &["お客様都合", "支払不可", "customer left", "cancelled"];
const NO_SALE_REASONS: &[&str] = &["両替", "レシート確認", "change request", "no reason"];
const REFUND_REASONS: &[&str] = &["返品", "賞味期限切れ", "破損", "defective", "wrong item"];
const PAID_OUT_REASONS: &[&str] = &["配送料", "切手購入", "清掃用品", "事務用品"];
const PAID_IN_REASONS: &[&str] = &["釣銭補充", "両替金 入金", "change fund"];
const CARD_TENDERS: &[&str] = &["credit", "emoney", "qr"];

#[derive(Clone, Copy)]
enum Scenario {
    CashSale,
    CardSale,
    Void,
    NoSale,
    Refund,
    PaidOut,
    PaidIn,
    ShiftChange,
}

/// Weights per customer/interaction; with the extra drawer events of cash flows and the
/// in-sale item voids, corrections and discounts, about 85% of events are sale-related and
/// voids, no-sales and refunds each make up one to two percent.
const SCENARIOS: &[(Scenario, u32)] = &[
    (Scenario::CashSale, 46),
    (Scenario::CardSale, 30),
    (Scenario::Void, 4),
    (Scenario::NoSale, 4),
    (Scenario::Refund, 4),
    (Scenario::PaidOut, 2),
    (Scenario::PaidIn, 1),
    (Scenario::ShiftChange, 1),
];

/// A shift change is only plausible after a cashier has served a while.
const MIN_TRANSACTIONS_PER_SHIFT: u32 = 10;

/// One planned event of a register, `gap_ms` after the register's previous event.
struct Step {
    kind: EventType,
    gap_ms: i64,
    sign_on_cashier: Option<String>,
    transaction: Option<String>,
    amount: Option<i64>,
    reason: Option<String>,
    lines: Vec<String>,
    attributes: Map<String, Value>,
}

impl Step {
    fn new(kind: EventType, gap_ms: i64) -> Self {
        Self {
            kind,
            gap_ms,
            sign_on_cashier: None,
            transaction: None,
            amount: None,
            reason: None,
            lines: Vec::new(),
            attributes: Map::new(),
        }
    }

    fn txn(mut self, transaction: &str) -> Self {
        self.transaction = Some(transaction.to_string());
        self
    }

    fn amount(mut self, amount: i64) -> Self {
        self.amount = Some(amount);
        self
    }

    fn reason(mut self, reason: &str) -> Self {
        self.reason = Some(reason.to_string());
        self
    }

    fn lines(mut self, lines: Vec<String>) -> Self {
        self.lines = lines;
        self
    }

    fn attr(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.attributes.insert(key.to_string(), value.into());
        self
    }
}

struct Register {
    store: usize,
    id: String,
    topic: String,
    cashier: Option<String>,
    next_transaction: u32,
    transactions_this_shift: u32,
    script: VecDeque<Step>,
}

struct Store {
    id: String,
    off_duty: Vec<String>,
}

/// An event as `run` needs it: where to publish, what, and its kind for the summary.
struct Emitted {
    topic: String,
    payload: Value,
    kind: EventType,
}

/// Deterministic (given a seed) model of every register of every store.
///
/// Each register runs a small state machine: a cashier signs on first, then customers come
/// and go as scripted multi-event scenarios (a cash sale is `sale`, `drawer_open`,
/// `drawer_close` with one transaction number). Registers interleave by simulated time, so
/// timestamps never go backwards.
pub struct Generator {
    rng: StdRng,
    start: DateTime<FixedOffset>,
    stores: Vec<Store>,
    registers: Vec<Register>,
    /// (simulated milliseconds since `start`, register index): the next register to act.
    schedule: BinaryHeap<Reverse<(i64, usize)>>,
    last_ms: i64,
    currency: String,
}

impl Generator {
    /// Stores and registers are clamped to 1..=999 and 1..=99; `run` rejects values outside.
    pub fn new(opts: &SimulateOptions, start: DateTime<FixedOffset>) -> Self {
        let mut rng = match opts.seed {
            Some(seed) => StdRng::seed_from_u64(seed),
            None => StdRng::from_rng(&mut rand::rng()),
        };
        let ids: Vec<String> = if opts.store_ids.is_empty() {
            (1..=opts.stores.clamp(1, MAX_STORES))
                .map(|n| format!("store-{n:02}"))
                .collect()
        } else {
            opts.store_ids.clone()
        };
        let register_count = opts.registers.clamp(1, MAX_REGISTERS_PER_STORE);
        // Twice the registers plus spares: each register can hold one cashier on duty and
        // one already picked for the next shift.
        let cashiers_per_store = register_count * 2 + 2;

        let mut stores = Vec::new();
        let mut registers = Vec::new();
        let mut schedule = BinaryHeap::new();
        for (store_id, store_no) in ids.into_iter().zip(1u32..) {
            let off_duty = (1..=cashiers_per_store)
                .map(|n| format!("c{store_no}{n:02}"))
                .collect();
            let store_index = stores.len();
            for register_no in 1..=register_count {
                let register_id = format!("r{register_no}");
                let topic = format!("{}/{store_id}/{register_id}/events", opts.topic_prefix);
                schedule.push(Reverse((rng.random_range(0..10_000), registers.len())));
                registers.push(Register {
                    store: store_index,
                    id: register_id,
                    topic,
                    cashier: None,
                    // Registers are mid-day when the simulation starts.
                    next_transaction: rng.random_range(1..=900),
                    transactions_this_shift: 0,
                    script: VecDeque::new(),
                });
            }
            stores.push(Store {
                id: store_id,
                off_duty,
            });
        }
        Self {
            rng,
            start,
            stores,
            registers,
            schedule,
            last_ms: 0,
            currency: opts.currency.clone(),
        }
    }

    /// Next event: (topic, JSON payload). Timestamps advance realistically from `start`.
    pub fn next_event(&mut self) -> (String, Value) {
        let emitted = self.emit(None);
        (emitted.topic, emitted.payload)
    }

    /// `at` overrides the simulated clock, for publishing events as "now".
    fn emit(&mut self, at: Option<DateTime<FixedOffset>>) -> Emitted {
        let (when_ms, index) = match self.schedule.pop() {
            Some(Reverse(next)) => next,
            None => (self.last_ms, 0),
        };
        self.last_ms = when_ms;
        // Every plan adds at least one step, so this loops at most twice.
        let step = loop {
            match self.registers[index].script.pop_front() {
                Some(step) => break step,
                None => self.plan(index),
            }
        };

        let at = at.unwrap_or_else(|| {
            self.start
                .checked_add_signed(TimeDelta::milliseconds(when_ms))
                .unwrap_or(self.start)
        });
        let emitted = self.render(index, step, at);

        if self.registers[index].script.is_empty() {
            self.plan(index);
        }
        let gap = self.registers[index]
            .script
            .front()
            .map_or(1_000, |step| step.gap_ms);
        self.schedule
            .push(Reverse((when_ms.saturating_add(gap.max(1)), index)));
        emitted
    }

    fn render(&mut self, index: usize, step: Step, at: DateTime<FixedOffset>) -> Emitted {
        let id = uuid::Builder::from_random_bytes(self.rng.random()).into_uuid();
        let register = &mut self.registers[index];
        let store = &mut self.stores[register.store];

        let cashier = match step.kind {
            EventType::SignOn => {
                register.cashier = step.sign_on_cashier.clone();
                register.transactions_this_shift = 0;
                step.sign_on_cashier
            }
            EventType::SignOff => {
                let leaving = register.cashier.take();
                // Only now may another register sign this cashier on.
                if let Some(name) = &leaving {
                    store.off_duty.push(name.clone());
                }
                leaving
            }
            _ => register.cashier.clone(),
        };

        let mut payload = Map::new();
        payload.insert("id".into(), id.to_string().into());
        payload.insert("type".into(), step.kind.as_str().into());
        payload.insert(
            "at".into(),
            at.to_rfc3339_opts(SecondsFormat::Millis, false).into(),
        );
        payload.insert("store".into(), store.id.clone().into());
        payload.insert("register".into(), register.id.clone().into());
        if let Some(cashier) = cashier {
            payload.insert("cashier".into(), cashier.into());
        }
        if let Some(transaction) = step.transaction {
            payload.insert("transaction".into(), transaction.into());
        }
        if let Some(amount) = step.amount {
            payload.insert("amount".into(), amount.into());
            payload.insert("currency".into(), self.currency.clone().into());
        }
        if let Some(reason) = step.reason {
            payload.insert("reason".into(), reason.into());
        }
        if !step.lines.is_empty() {
            payload.insert("lines".into(), step.lines.into());
        }
        if !step.attributes.is_empty() {
            payload.insert("attributes".into(), Value::Object(step.attributes));
        }
        Emitted {
            topic: register.topic.clone(),
            payload: Value::Object(payload),
            kind: step.kind,
        }
    }

    /// Appends the register's next scenario to its script.
    fn plan(&mut self, index: usize) {
        if self.registers[index].cashier.is_none() {
            let cashier = self.take_off_duty(index);
            let mut step = Step::new(EventType::SignOn, self.rng.random_range(5_000..30_000));
            step.sign_on_cashier = Some(cashier);
            self.registers[index].script.push_back(step);
            return;
        }
        let customer_gap = self.rng.random_range(15_000..90_000);
        let scenario = self.pick_scenario(index);
        let steps = match scenario {
            Scenario::CashSale => self.sale(index, customer_gap, None),
            Scenario::CardSale => {
                let tender = self.pick(CARD_TENDERS);
                self.sale(index, customer_gap, Some(tender))
            }
            Scenario::Void => self.void(index, customer_gap),
            Scenario::NoSale => self.no_sale(index, customer_gap),
            Scenario::Refund => self.refund(index, customer_gap),
            Scenario::PaidOut => self.paid_out(index, customer_gap),
            Scenario::PaidIn => self.paid_in(index, customer_gap),
            Scenario::ShiftChange => self.shift_change(index, customer_gap),
        };
        let register = &mut self.registers[index];
        register.transactions_this_shift = register.transactions_this_shift.saturating_add(1);
        register.script.extend(steps);
    }

    fn pick_scenario(&mut self, index: usize) -> Scenario {
        let total: u32 = SCENARIOS.iter().map(|(_, weight)| weight).sum();
        let mut roll = self.rng.random_range(0..total.max(1));
        let mut chosen = Scenario::CashSale;
        for (scenario, weight) in SCENARIOS {
            if roll < *weight {
                chosen = *scenario;
                break;
            }
            roll -= weight;
        }
        let register = &self.registers[index];
        let store = &self.stores[register.store];
        if matches!(chosen, Scenario::ShiftChange)
            && (register.transactions_this_shift < MIN_TRANSACTIONS_PER_SHIFT
                || store.off_duty.is_empty())
        {
            return Scenario::CashSale;
        }
        chosen
    }

    fn take_off_duty(&mut self, index: usize) -> String {
        let store_index = self.registers[index].store;
        let pool_len = self.stores[store_index].off_duty.len();
        if pool_len == 0 {
            // The pool is sized so this does not happen; a stand-in keeps the stream valid.
            return format!("c{}99", store_index + 1);
        }
        let pick = self.rng.random_range(0..pool_len);
        self.stores[store_index].off_duty.swap_remove(pick)
    }

    fn take_transaction(&mut self, index: usize) -> String {
        let register = &mut self.registers[index];
        let number = register.next_transaction;
        register.next_transaction = if number >= 999_999 { 1 } else { number + 1 };
        format!("T-{number:06}")
    }

    fn pick(&mut self, choices: &[&'static str]) -> &'static str {
        if choices.is_empty() {
            return "";
        }
        choices[self.rng.random_range(0..choices.len())]
    }

    fn pick_item(&mut self) -> &'static Item {
        &CATALOGUE[self.rng.random_range(0..CATALOGUE.len())]
    }

    /// 1–6 lines, mostly small baskets; each line is (item, quantity, line total).
    fn basket(&mut self) -> Vec<(&'static Item, i64, i64)> {
        let count = if self.rng.random_bool(0.6) {
            self.rng.random_range(1..=3)
        } else {
            self.rng.random_range(3..=6)
        };
        (0..count)
            .map(|_| {
                let item = self.pick_item();
                let quantity = if self.rng.random_bool(0.15) { 2 } else { 1 };
                (item, quantity, item.price * quantity)
            })
            .collect()
    }

    fn scan_time(&mut self, lines: usize) -> i64 {
        let per_line: i64 = self.rng.random_range(2_000..5_000);
        per_line.saturating_mul(lines.max(1) as i64)
    }

    /// A sale with optional in-transaction item void, price correction and discount; cash
    /// sales (tender `None`) open and close the drawer.
    fn sale(&mut self, index: usize, customer_gap: i64, card: Option<&'static str>) -> Vec<Step> {
        let transaction = self.take_transaction(index);
        let mut basket = self.basket();
        let mut steps = Vec::new();
        let mut gap = customer_gap;

        if self.rng.random_bool(0.10) {
            let item = self.pick_item();
            let reason = self.pick(ITEM_VOID_REASONS);
            steps.push(
                Step::new(EventType::ItemVoid, gap + self.scan_time(2))
                    .txn(&transaction)
                    .amount(item.price)
                    .reason(reason)
                    .lines(vec![receipt_line(item.name, 1, item.price)]),
            );
            gap = self.rng.random_range(1_000..4_000);
        }

        let mut corrected: Option<usize> = None;
        if self.rng.random_bool(0.06) {
            let line = self.rng.random_range(0..basket.len());
            let (item, quantity, original_total) = basket[line];
            if item.price >= 100 {
                let percent = self.rng.random_range(70..=95);
                let unit = (item.price * percent / 100 / 10 * 10).max(10);
                let total = unit * quantity;
                basket[line].2 = total;
                corrected = Some(line);
                let reason = self.pick(CORRECTION_REASONS);
                steps.push(
                    Step::new(EventType::Correction, gap + self.scan_time(line + 1))
                        .txn(&transaction)
                        .amount(total)
                        .reason(reason)
                        .lines(vec![receipt_line(item.name, quantity, total)])
                        .attr("item", item.name)
                        .attr("original_amount", original_total),
                );
                gap = self.rng.random_range(1_000..4_000);
            }
        }

        let mut lines: Vec<String> = basket
            .iter()
            .map(|(item, quantity, total)| receipt_line(item.name, *quantity, *total))
            .collect();
        let subtotal: i64 = basket.iter().map(|(_, _, total)| total).sum();
        let mut amount = subtotal;

        if subtotal >= 100 && self.rng.random_bool(0.10) {
            let reason = self.pick(DISCOUNT_REASONS);
            let mut step = Step::new(EventType::Discount, gap + self.scan_time(basket.len()))
                .txn(&transaction)
                .reason(reason);
            let discount = if self.rng.random_bool(0.5) {
                let percent: i64 = if self.rng.random_bool(0.5) { 10 } else { 20 };
                step = step.attr("kind", "percent").attr("percent", percent);
                (subtotal * percent / 100).max(1)
            } else {
                step = step.attr("kind", "fixed");
                [10, 20, 30, 50][self.rng.random_range(0..4)]
            };
            steps.push(step.amount(discount));
            lines.push(receipt_line(&format!("値引 {reason}"), 1, -discount));
            amount -= discount;
            gap = self.rng.random_range(2_000..6_000);
        } else {
            gap += self.scan_time(basket.len());
        }

        let items: i64 = basket.iter().map(|(_, quantity, _)| quantity).sum();
        let mut sale = Step::new(EventType::Sale, gap)
            .txn(&transaction)
            .amount(amount)
            .lines(lines)
            .attr("tender", card.unwrap_or("cash"))
            .attr("items", items);
        if card.is_none() {
            let tendered = self.tendered(amount);
            sale = sale
                .attr("tendered", tendered)
                .attr("change", tendered - amount);
        }
        if basket.iter().any(|(item, _, _)| item.age_restricted) {
            sale = sale.attr("age_confirmed", true);
        }
        if corrected.is_some() {
            sale = sale.attr("price_override", true);
        }
        steps.push(sale);
        if card.is_none() {
            steps.extend(self.drawer_cycle(&transaction));
        }
        steps
    }

    /// What a customer hands over: exact change, or the next 1,000 / 5,000 / 10,000 yen.
    fn tendered(&mut self, amount: i64) -> i64 {
        let round_up = |unit: i64| (amount + unit - 1) / unit * unit;
        match self.rng.random_range(0..100) {
            0..25 => amount,
            25..75 => round_up(1_000),
            75..90 => round_up(5_000),
            _ => round_up(10_000),
        }
        .max(amount)
    }

    fn drawer_cycle(&mut self, transaction: &str) -> [Step; 2] {
        [
            Step::new(EventType::DrawerOpen, self.rng.random_range(1_000..4_000)).txn(transaction),
            Step::new(EventType::DrawerClose, self.rng.random_range(4_000..15_000))
                .txn(transaction),
        ]
    }

    /// A whole transaction cancelled before payment.
    fn void(&mut self, index: usize, customer_gap: i64) -> Vec<Step> {
        let transaction = self.take_transaction(index);
        let basket = self.basket();
        let amount: i64 = basket.iter().map(|(_, _, total)| total).sum();
        let items: i64 = basket.iter().map(|(_, quantity, _)| quantity).sum();
        let lines = basket
            .iter()
            .map(|(item, quantity, total)| receipt_line(item.name, *quantity, *total))
            .collect();
        let reason = self.pick(VOID_REASONS);
        let gap =
            customer_gap + self.scan_time(basket.len()) + self.rng.random_range(3_000..20_000);
        vec![
            Step::new(EventType::Void, gap)
                .txn(&transaction)
                .amount(amount)
                .reason(reason)
                .lines(lines)
                .attr("items", items),
        ]
    }

    fn no_sale(&mut self, index: usize, customer_gap: i64) -> Vec<Step> {
        let transaction = self.take_transaction(index);
        let reason = self.pick(NO_SALE_REASONS);
        let mut steps = vec![
            Step::new(EventType::NoSale, customer_gap)
                .txn(&transaction)
                .reason(reason),
        ];
        steps.extend(self.drawer_cycle(&transaction));
        steps
    }

    /// Money returned to a customer for earlier purchases; `amount` is positive.
    fn refund(&mut self, index: usize, customer_gap: i64) -> Vec<Step> {
        let transaction = self.take_transaction(index);
        let current = self.registers[index].next_transaction;
        let original = current.saturating_sub(self.rng.random_range(5..400)).max(1);
        let count = if self.rng.random_bool(0.8) { 1 } else { 2 };
        let returned: Vec<&'static Item> = (0..count).map(|_| self.pick_item()).collect();
        let amount: i64 = returned.iter().map(|item| item.price).sum();
        let lines = returned
            .iter()
            .map(|item| receipt_line(item.name, 1, item.price))
            .collect();
        let reason = self.pick(REFUND_REASONS);
        let cash = self.rng.random_bool(0.7);
        let tender = if cash {
            "cash"
        } else {
            self.pick(CARD_TENDERS)
        };
        let mut steps = vec![
            Step::new(
                EventType::Refund,
                customer_gap + self.rng.random_range(10_000..40_000),
            )
            .txn(&transaction)
            .amount(amount)
            .reason(reason)
            .lines(lines)
            .attr("original_transaction", format!("T-{original:06}"))
            .attr("tender", tender),
        ];
        if cash {
            steps.extend(self.drawer_cycle(&transaction));
        }
        steps
    }

    fn paid_out(&mut self, index: usize, customer_gap: i64) -> Vec<Step> {
        let transaction = self.take_transaction(index);
        let reason = self.pick(PAID_OUT_REASONS);
        let amount = self.rng.random_range(30..=300) * 10;
        let mut steps = vec![
            Step::new(EventType::PaidOut, customer_gap)
                .txn(&transaction)
                .amount(amount)
                .reason(reason),
        ];
        steps.extend(self.drawer_cycle(&transaction));
        steps
    }

    fn paid_in(&mut self, index: usize, customer_gap: i64) -> Vec<Step> {
        let transaction = self.take_transaction(index);
        let reason = self.pick(PAID_IN_REASONS);
        let amount = [5_000, 10_000, 20_000][self.rng.random_range(0..3)];
        let mut steps = vec![
            Step::new(EventType::PaidIn, customer_gap)
                .txn(&transaction)
                .amount(amount)
                .reason(reason),
        ];
        steps.extend(self.drawer_cycle(&transaction));
        steps
    }

    fn shift_change(&mut self, index: usize, customer_gap: i64) -> Vec<Step> {
        let served = self.registers[index].transactions_this_shift;
        let next = self.take_off_duty(index);
        let mut sign_on = Step::new(EventType::SignOn, self.rng.random_range(20_000..90_000));
        sign_on.sign_on_cashier = Some(next);
        vec![
            Step::new(EventType::SignOff, customer_gap).attr("transactions", served),
            sign_on,
        ]
    }
}

/// A receipt line like `ONIGIRI SALMON      180`: the label padded to a fixed column,
/// counting full-width characters as two columns as a receipt printer does.
fn receipt_line(name: &str, quantity: i64, total: i64) -> String {
    let label = if quantity > 1 {
        format!("{name} x{quantity}")
    } else {
        name.to_string()
    };
    let width: usize = label.chars().map(display_width).sum();
    let padding = 20usize.saturating_sub(width).max(1);
    format!("{label}{}{total}", " ".repeat(padding))
}

fn display_width(c: char) -> usize {
    if c.is_ascii() || ('\u{ff61}'..='\u{ff9f}').contains(&c) {
        1
    } else {
        2
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(given: &str) -> (String, u16) {
        let addr = broker_url(given).expect("valid broker address");
        (addr.host, addr.port)
    }

    #[test]
    fn broker_addresses_are_accepted_in_mqtt_tcp_and_bare_forms() {
        assert_eq!(
            parsed("mqtt://broker.local:1884"),
            ("broker.local".into(), 1884)
        );
        assert_eq!(parsed("tcp://10.0.0.5:1883"), ("10.0.0.5".into(), 1883));
        assert_eq!(parsed("localhost:2000"), ("localhost".into(), 2000));
        assert_eq!(parsed("MQTT://localhost/"), ("localhost".into(), 1883));
        assert_eq!(parsed("mqtt://[::1]:1999"), ("[::1]".into(), 1999));
    }

    #[test]
    fn malformed_broker_addresses_are_rejected_with_the_expected_form() {
        for given in [
            "",
            "http://localhost:1883",
            "mqtts://localhost:8883",
            "mqtt://localhost:0",
            "mqtt://localhost:port",
            "mqtt://localhost:70000",
            "mqtt://user:pw@localhost:1883",
            "mqtt://localhost:1883/topic",
            "::1:1883",
            "mqtt://[::1",
            "mqtt://:1883",
        ] {
            let err = broker_url(given).expect_err(given).to_string();
            assert!(err.contains(EXPECTED_BROKER_FORMS), "{given}: {err}");
        }
    }

    #[test]
    fn options_that_cannot_be_simulated_are_rejected() {
        let base = SimulateOptions::default();
        for opts in [
            SimulateOptions {
                stores: 0,
                ..base.clone()
            },
            SimulateOptions {
                registers: 100,
                ..base.clone()
            },
            SimulateOptions {
                rate: 0.0,
                ..base.clone()
            },
            SimulateOptions {
                rate: f64::NAN,
                ..base.clone()
            },
            SimulateOptions {
                topic_prefix: "pos/#".into(),
                ..base.clone()
            },
            SimulateOptions {
                store_ids: vec!["ny/01".into()],
                ..base.clone()
            },
            SimulateOptions {
                currency: "usd".into(),
                ..base.clone()
            },
        ] {
            assert!(validate(&opts).is_err(), "{opts:?}");
        }
    }

    #[test]
    fn stores_named_in_another_zone_and_currency_get_their_local_time_and_amounts() {
        let opts = SimulateOptions {
            store_ids: vec!["ny-01".into(), "ny-02".into()],
            stores: 2,
            timezone: chrono_tz::America::New_York,
            currency: "USD".into(),
            seed: Some(7),
            ..SimulateOptions::default()
        };
        assert!(validate(&opts).is_ok());
        // A December morning in New York: standard time, five hours behind UTC.
        let start = DateTime::parse_from_rfc3339("2026-12-04T09:00:00.000-05:00").unwrap();
        let mut generator = Generator::new(&opts, start);
        let events: Vec<Value> = (0..200).map(|_| generator.next_event().1).collect();
        let stores: std::collections::BTreeSet<&str> =
            events.iter().filter_map(|e| e["store"].as_str()).collect();
        assert_eq!(stores, ["ny-01", "ny-02"].into());
        assert!(
            events
                .iter()
                .all(|e| e["at"].as_str().unwrap().ends_with("-05:00")),
            "local time with New York's offset"
        );
        let currencies: std::collections::BTreeSet<&str> = events
            .iter()
            .filter_map(|e| e["currency"].as_str())
            .collect();
        assert_eq!(currencies, ["USD"].into());
        assert_eq!(
            now_in(chrono_tz::Asia::Tokyo).offset().local_minus_utc(),
            9 * 3600
        );
    }

    #[test]
    fn extreme_rates_give_a_usable_pacing_period() {
        let at = |rate| {
            validate(&SimulateOptions {
                rate,
                ..SimulateOptions::default()
            })
        };
        assert_eq!(at(5.0).ok(), Some(Duration::from_millis(200)));
        assert_eq!(at(1e-300).ok(), Some(MAX_PERIOD));
        assert_eq!(at(1e300).ok(), Some(Duration::from_nanos(1)));
    }

    #[test]
    fn receipt_lines_align_prices_counting_full_width_characters_twice() {
        assert_eq!(
            receipt_line("ONIGIRI SALMON", 1, 180),
            "ONIGIRI SALMON      180"
        );
        assert_eq!(
            receipt_line("おにぎり 鮭", 2, 360),
            "おにぎり 鮭 x2      360"
        );
    }
}
