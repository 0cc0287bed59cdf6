//! The register event contract (EVENTS.md, version 1): parsing, validation and masking of one MQTT payload.
//!
//! Guarantees: what leaves this module — an [`Event`] or a [`Rejected`] payload — has every card number masked;
//! a rejection names each field that broke a rule and the rule; nothing here panics on any input.

mod mask;
mod signature;
mod timing;
mod topic;

use std::fmt;

use chrono::{DateTime, FixedOffset};
use serde::Serialize;
use serde_json::{Map, Value};

pub use mask::{contains_card_number, mask_card_numbers, mask_json, mask_text_payload};
pub use signature::{RegisterKey, Signature, Signing, SigningMode, sign};
pub use timing::{LIVE_WITHIN_MS, Lateness, Timing, median_skew, timing};
pub use topic::{RegisterScope, mask_topic, topic_identity};

/// Largest payload the contract allows.
pub const MAX_PAYLOAD: usize = 64 * 1024;

/// How much of a payload over [`MAX_PAYLOAD`] is kept, masked, in its dead letter: enough to see what sent it.
pub const OVERSIZED_EXCERPT: usize = 1024;

/// The largest amount, either way, in minor units (contract v1.1): ten billion yen or dollars is beyond any
/// till, and keeps every sum of amounts far from overflowing.
pub const MAX_AMOUNT: i64 = 1_000_000_000_000;

/// What kind of register event it is. Names follow ARTS POSLog / UnifiedPOS and cloud POS vocabularies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventType {
    Void,
    ItemVoid,
    Correction,
    Refund,
    NoSale,
    DrawerOpen,
    DrawerClose,
    Discount,
    Sale,
    PaidIn,
    PaidOut,
    SignOn,
    SignOff,
}

impl EventType {
    pub const ALL: [EventType; 13] = [
        EventType::Void,
        EventType::ItemVoid,
        EventType::Correction,
        EventType::Refund,
        EventType::NoSale,
        EventType::DrawerOpen,
        EventType::DrawerClose,
        EventType::Discount,
        EventType::Sale,
        EventType::PaidIn,
        EventType::PaidOut,
        EventType::SignOn,
        EventType::SignOff,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Void => "void",
            EventType::ItemVoid => "item_void",
            EventType::Correction => "correction",
            EventType::Refund => "refund",
            EventType::NoSale => "no_sale",
            EventType::DrawerOpen => "drawer_open",
            EventType::DrawerClose => "drawer_close",
            EventType::Discount => "discount",
            EventType::Sale => "sale",
            EventType::PaidIn => "paid_in",
            EventType::PaidOut => "paid_out",
            EventType::SignOn => "sign_on",
            EventType::SignOff => "sign_off",
        }
    }

    pub fn parse(name: &str) -> Option<EventType> {
        EventType::ALL.into_iter().find(|t| t.as_str() == name)
    }

    pub fn names() -> Vec<&'static str> {
        EventType::ALL.iter().map(|t| t.as_str()).collect()
    }

    /// The contract's default for which types become bookmarks: those of [`Severity::Medium`] and above, so
    /// what a camera marks is what the index colours (a drawer open is bookmarked only when nothing explains
    /// it, see [`EventType::explains_drawer_open`]).
    pub fn bookmarked_by_default(self) -> bool {
        self.severity() >= Severity::Medium
    }

    /// How much an event of this type asks for a look. A drawer open is high only when no sale, refund or paid
    /// in/out explains it: an explained one is not flagged, and the store reads it as low
    /// ([`Severity::of`]).
    pub fn severity(self) -> Severity {
        match self {
            EventType::Void | EventType::Refund | EventType::NoSale | EventType::DrawerOpen => {
                Severity::High
            }
            EventType::ItemVoid | EventType::Correction => Severity::Medium,
            _ => Severity::Low,
        }
    }

    /// A cash sale, a refund or cash put in or taken out opens the drawer: a drawer open near one of these at
    /// the same register is explained, and is no reason to look at the footage.
    pub fn explains_drawer_open(self) -> bool {
        matches!(
            self,
            EventType::Sale | EventType::Refund | EventType::PaidIn | EventType::PaidOut
        )
    }

    /// How the type reads on a camera's timeline, in capitals like a receipt: `VOID`, `NO SALE`.
    pub fn label(self) -> String {
        self.as_str().replace('_', " ").to_uppercase()
    }
}

/// How much an event asks for a look: what colours its badge and what `severity=high` keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Low,
    Medium,
    High,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
        }
    }

    pub fn parse(text: &str) -> Option<Severity> {
        match text {
            "low" => Some(Severity::Low),
            "medium" => Some(Severity::Medium),
            "high" => Some(Severity::High),
            _ => None,
        }
    }

    /// A stored event's severity: its type's, except that a drawer open counts only while it is flagged (no
    /// sale explained it). An unknown type name (a newer daemon's) is low.
    pub fn of(kind: &str, flagged: bool) -> Severity {
        match EventType::parse(kind) {
            Some(EventType::DrawerOpen) if !flagged => Severity::Low,
            Some(kind) => kind.severity(),
            None => Severity::Low,
        }
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A valid, masked register event.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: EventType,
    /// When it happened at the register, with the register's own offset.
    pub at: DateTime<FixedOffset>,
    /// When the register or bridge sent the message (v1.1): tells a message that waited in a queue from a
    /// register whose clock is off ([`timing`]). Not part of what the event says: a resend may carry another.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sent_at: Option<DateTime<FixedOffset>>,
    pub store: String,
    pub register: String,
    pub cashier: Option<String>,
    pub transaction: Option<String>,
    pub amount: Option<i64>,
    pub currency: Option<String>,
    pub reason: Option<String>,
    pub lines: Vec<String>,
    pub attributes: Map<String, Value>,
}

impl Event {
    /// Milliseconds since the epoch; finer precision is cut, as no camera API takes it.
    pub fn at_ms(&self) -> i64 {
        self.at.timestamp_millis()
    }

    pub fn sent_at_ms(&self) -> Option<i64> {
        self.sent_at.map(|t| t.timestamp_millis())
    }
}

/// One broken rule: which field, and what it must be.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// The field (`at`, `lines[3]`), or `None` for the payload as a whole.
    pub field: Option<String>,
    pub rule: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.field {
            Some(field) => write!(f, "{field}: {}", self.rule),
            None => f.write_str(&self.rule),
        }
    }
}

/// A payload that is not a valid event: kept, masked, with every reason.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejected {
    pub problems: Vec<Problem>,
}

impl Rejected {
    fn one(field: Option<&str>, rule: impl Into<String>) -> Self {
        Rejected {
            problems: vec![Problem {
                field: field.map(str::to_string),
                rule: rule.into(),
            }],
        }
    }

    /// All reasons on one line, as the dead-letter list shows them.
    pub fn reason(&self) -> String {
        self.problems
            .iter()
            .map(|p| p.to_string())
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// The outcome of reading one payload. `raw` is what is kept: the payload itself when it holds no card number,
/// else its masked form, re-serialised.
#[derive(Debug, Clone)]
pub struct Parsed {
    pub raw: String,
    pub result: Result<Event, Rejected>,
    /// What the signature check found (always `Unchecked` for [`parse`]).
    pub signature: Signature,
}

/// Where and when a message arrived, and what the site asks of it beyond the contract.
#[derive(Debug, Clone, Copy)]
pub struct Arrival<'a> {
    /// The topic as received; its store and register levels are the event's identity.
    pub topic: &'a str,
    pub received_ms: i64,
    /// How far before and after its arrival an event's `at` may lie.
    pub max_age_ms: i64,
    pub max_ahead_ms: i64,
    pub signing: &'a Signing,
    /// Keys the digest that keeps apart identifiers whose masked forms are alike.
    pub id_key: &'a [u8],
}

/// Reads one payload by the contract alone (v1: `store` and `register` in the body, no signature, no time
/// window). Never fails: a bad payload comes back as `Err` in `result`, with its masked text.
pub fn parse(payload: &[u8]) -> Parsed {
    read_payload(payload, None)
}

/// Reads one payload as it arrived on `arrival.topic` (contract v1.1): the topic names the register, the
/// signature is checked as `[signing]` asks, and `at` must lie in the window around its arrival.
pub fn read(payload: &[u8], arrival: &Arrival) -> Parsed {
    read_payload(payload, Some(arrival))
}

fn rejected(raw: String, rejected: Rejected) -> Parsed {
    Parsed {
        raw,
        result: Err(rejected),
        signature: Signature::Unchecked,
    }
}

fn read_payload(payload: &[u8], arrival: Option<&Arrival>) -> Parsed {
    if payload.len() > MAX_PAYLOAD {
        return rejected(
            oversized_excerpt(payload),
            Rejected::one(
                None,
                format!(
                    "payload is {} bytes; the limit is {MAX_PAYLOAD}",
                    payload.len()
                ),
            ),
        );
    }
    let text = match std::str::from_utf8(payload) {
        Ok(text) => text,
        Err(e) => {
            let lossy = String::from_utf8_lossy(payload);
            return rejected(
                mask_text_payload(&lossy).into_owned(),
                Rejected::one(
                    None,
                    format!(
                        "payload is not UTF-8 (invalid byte at offset {})",
                        e.valid_up_to()
                    ),
                ),
            );
        }
    };
    // A payload kept as text may spell digits as JSON escapes: only the escape-aware masker sees them.
    let masked_text = || mask_text_payload(text).into_owned();
    // Level by level: `/` separates digit groups too, and two all-digit ids side by side are no card.
    if let Some(arrival) = arrival
        && mask_topic(arrival.topic) != arrival.topic
    {
        return rejected(
            masked_text(),
            Rejected::one(
                Some("topic"),
                "a level of the topic is a card number: publish to pos/{store}/{register}/events",
            ),
        );
    }
    let mut value: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            return rejected(
                masked_text(),
                Rejected::one(None, format!("payload is not valid JSON: {e}")),
            );
        }
    };
    // A signed envelope: the event is its `event` value; the signature is checked over its bytes as sent.
    let sealed = match signature::envelope(&value, text) {
        Ok(sealed) => sealed,
        Err(rule) => {
            let changed = mask_json(&mut value);
            return rejected(kept(text, changed, &value), Rejected::one(None, rule));
        }
    };
    let body = if sealed.is_some() {
        &value["event"]
    } else {
        &value
    };
    let as_sent = AsSent::of(body);
    let body_type = json_type(body);
    let changed = mask_json(&mut value);
    let raw = kept(text, changed, &value);
    let body = if sealed.is_some() {
        value.get_mut("event").map(Value::take).unwrap_or_default()
    } else {
        value
    };
    let Value::Object(map) = body else {
        return rejected(
            raw,
            Rejected::one(
                None,
                format!("payload must be a JSON object, found {body_type}"),
            ),
        );
    };
    let identity = arrival.and_then(|a| topic_identity(a.topic));
    let signature = match arrival {
        Some(arrival) => match check_signature(
            arrival,
            identity,
            &as_sent,
            sealed.as_ref().map(|(e, s)| (e.as_str(), s.as_str())),
        ) {
            Ok(signature) => signature,
            Err(problem) => return rejected(raw, problem),
        },
        None => Signature::Unchecked,
    };
    let window = arrival.map(|a| Window {
        received_ms: a.received_ms,
        max_age_ms: a.max_age_ms,
        max_ahead_ms: a.max_ahead_ms,
    });
    let topic = arrival.map(|a| a.topic);
    let mut result = validate(map, identity.zip(topic), window);
    if let (Ok(event), Some(arrival)) = (&mut result, arrival) {
        keep_apart(event, &as_sent, arrival.id_key);
    }
    Parsed {
        raw,
        result,
        signature,
    }
}

/// The payload as kept: the received text when masking found nothing, else the masked value re-serialised
/// (the text may spell a card number in ways only the parsed value shows: escapes, exponents).
fn kept(text: &str, changed: bool, masked: &Value) -> String {
    if !changed {
        text.to_string()
    } else {
        masked.to_string()
    }
}

/// The first [`OVERSIZED_EXCERPT`] bytes of an oversized payload, masked. A card number cut in two at the end
/// would survive masking, so the digits and separators the cut runs into are dropped.
fn oversized_excerpt(payload: &[u8]) -> String {
    let head = &payload[..payload.len().min(OVERSIZED_EXCERPT + 64)];
    let masked = mask_text_payload(&String::from_utf8_lossy(head)).into_owned();
    let mut cut: String = masked.chars().take(OVERSIZED_EXCERPT).collect();
    if cut.len() < masked.len() {
        let trimmed = cut
            .trim_end_matches(|c: char| c.is_numeric() || c.is_whitespace() || "-./".contains(c))
            .len();
        cut.truncate(trimmed);
        cut.push('…');
    }
    cut
}

/// The register a message speaks for: the topic's, else (a topic without the contract's shape) the body's.
fn register_of<'a>(
    identity: Option<(&'a str, &'a str)>,
    body: &'a AsSent,
) -> Option<(&'a str, &'a str)> {
    identity.or_else(|| match (body.store.as_deref(), body.register.as_deref()) {
        (Some(s), Some(r)) if is_valid_id(s) && is_valid_id(r) => Some((s, r)),
        _ => None,
    })
}

/// What the checks need of an event as it was sent, before masking: the register its body names (for a topic
/// without one) and the identifiers, whose originals key the digests that keep masked-alike ids apart.
struct AsSent {
    store: Option<String>,
    register: Option<String>,
    id: Option<String>,
    transaction: Option<String>,
}

impl AsSent {
    fn of(body: &Value) -> AsSent {
        let field = |name: &str| body.get(name).and_then(Value::as_str).map(str::to_string);
        AsSent {
            store: field("store"),
            register: field("register"),
            id: field("id"),
            transaction: field("transaction"),
        }
    }
}

fn check_signature(
    arrival: &Arrival,
    identity: Option<(&str, &str)>,
    body: &AsSent,
    sealed: Option<(&str, &str)>,
) -> Result<Signature, Rejected> {
    let signing = arrival.signing;
    if signing.mode == SigningMode::Off {
        return Ok(Signature::Unchecked);
    }
    let Some((event_text, sig)) = sealed else {
        return match signing.mode {
            SigningMode::Required => Err(Rejected::one(
                None,
                "unsigned: [signing] mode is required and this message carries no signature",
            )),
            _ => Ok(Signature::Unsigned),
        };
    };
    let Some((store, register)) = register_of(identity, body) else {
        return Err(Rejected::one(
            None,
            "signature cannot be checked: the message names no register",
        ));
    };
    let Some(key) = signing.key_for(store, register) else {
        return Err(Rejected::one(
            None,
            format!(
                "signature cannot be checked: no [[signing.keys]] entry for {store}/{register}"
            ),
        ));
    };
    signature::verify(event_text, sig, key)
        .map(|()| Signature::Verified)
        .map_err(|rule| Rejected::one(None, rule))
}

/// An `id` or `transaction` that held a card number is kept masked, which could make two different ones
/// alike and merge two events. A keyed digest of the original, appended, keeps them apart without keeping it.
fn keep_apart(event: &mut Event, original: &AsSent, key: &[u8]) {
    if let Some(id) = original.id.as_deref()
        && id != event.id
    {
        event.id = format!(
            "{}~{}",
            event.id,
            signature::id_digest(key, &event.store, id)
        );
    }
    if let (Some(txn), Some(masked)) = (original.transaction.as_deref(), event.transaction.as_mut())
        && txn != masked
    {
        *masked = format!("{masked}~{}", signature::id_digest(key, &event.store, txn));
    }
}

/// Store and register ids: `[A-Za-z0-9._-]{1,64}`.
pub fn is_valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

struct Check {
    problems: Vec<Problem>,
}

impl Check {
    fn fail(&mut self, field: &str, rule: impl Into<String>) {
        self.problems.push(Problem {
            field: Some(field.to_string()),
            rule: rule.into(),
        });
    }

    /// A string field; `null` counts as absent for optional fields, as bridges often send it.
    fn string(
        &mut self,
        map: &Map<String, Value>,
        field: &str,
        required: bool,
        max_chars: usize,
    ) -> Option<String> {
        match map.get(field) {
            None | Some(Value::Null) => {
                if required {
                    self.fail(field, "is required");
                }
                None
            }
            Some(Value::String(s)) => {
                let n = s.chars().count();
                if required && n == 0 {
                    self.fail(field, "must not be empty");
                    None
                } else if n > max_chars {
                    self.fail(
                        field,
                        format!("must be at most {max_chars} characters, found {n}"),
                    );
                    None
                } else {
                    Some(s.clone())
                }
            }
            Some(other) => {
                self.fail(
                    field,
                    format!("must be a string, found {}", json_type(other)),
                );
                None
            }
        }
    }

    /// `store` or `register`: the topic's when it names one (the body may repeat it, not contradict it), else
    /// the body's.
    fn identity(
        &mut self,
        map: &Map<String, Value>,
        field: &str,
        from_topic: Option<(&str, &str)>,
    ) -> Option<String> {
        let Some((expected, topic)) = from_topic else {
            return self.id(map, field);
        };
        if matches!(map.get(field), None | Some(Value::Null)) {
            return Some(expected.to_string());
        }
        let body = self.id(map, field)?;
        if body == expected {
            Some(body)
        } else {
            self.fail(
                field,
                format!(
                    "\"{body}\" does not match the topic's {field} \"{expected}\" ({}): the topic names the register",
                    shown(topic)
                ),
            );
            None
        }
    }

    /// A time field: RFC 3339 with an offset, inside the window around arrival when there is one.
    fn time(
        &mut self,
        map: &Map<String, Value>,
        field: &str,
        required: bool,
        window: Option<Window>,
    ) -> Option<DateTime<FixedOffset>> {
        let text = self.string(map, field, required, 64)?;
        match parse_time(&text).and_then(|t| window.map_or(Ok(()), |w| w.check(&t)).map(|()| t)) {
            Ok(t) => Some(t),
            Err(rule) => {
                self.fail(field, rule);
                None
            }
        }
    }

    fn id(&mut self, map: &Map<String, Value>, field: &str) -> Option<String> {
        let s = self.string(map, field, true, 64)?;
        if is_valid_id(&s) {
            Some(s)
        } else {
            self.fail(
                field,
                "must use only A-Z a-z 0-9 . _ - (1 to 64 characters)",
            );
            None
        }
    }
}

/// The window of believable register times around a message's arrival.
#[derive(Debug, Clone, Copy)]
struct Window {
    received_ms: i64,
    max_age_ms: i64,
    max_ahead_ms: i64,
}

impl Window {
    fn check(&self, at: &DateTime<FixedOffset>) -> Result<(), String> {
        let at_ms = at.timestamp_millis();
        let days = |ms: i64| match ms {
            86_400_000 => "1 day".to_string(),
            ms => format!("{} days", ms as f64 / 86_400_000.0),
        };
        if at_ms < self.received_ms.saturating_sub(self.max_age_ms) {
            Err(format!(
                "{} is more than {} before it arrived: check the register's clock",
                at.to_rfc3339(),
                days(self.max_age_ms)
            ))
        } else if at_ms > self.received_ms.saturating_add(self.max_ahead_ms) {
            Err(format!(
                "{} is more than {} after it arrived: check the register's clock",
                at.to_rfc3339(),
                days(self.max_ahead_ms)
            ))
        } else {
            Ok(())
        }
    }
}

/// A value the register sent, fit to quote in a reason that goes to logs and pages: control characters
/// (newlines, terminal escapes) written as escapes, so no message can forge a log line.
pub fn shown(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control()
            || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
        {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    out
}

fn validate(
    map: Map<String, Value>,
    identity: Option<((&str, &str), &str)>,
    window: Option<Window>,
) -> Result<Event, Rejected> {
    let mut c = Check {
        problems: Vec::new(),
    };
    let id = c.string(&map, "id", true, 128);
    let kind = c
        .string(&map, "type", true, 64)
        .and_then(|t| match EventType::parse(&t) {
            Some(k) => Some(k),
            None => {
                c.fail(
                    "type",
                    format!(
                        "unknown type \"{}\"; expected one of {}",
                        shown(&t),
                        EventType::names().join(", ")
                    ),
                );
                None
            }
        });
    let at = c.time(&map, "at", true, window);
    // Optional (v1.1), and read by the same rules as `at`: a bad one is named, never ignored.
    let sent_at = c.time(&map, "sent_at", false, window);
    let store = c.identity(&map, "store", identity.map(|((s, _), t)| (s, t)));
    let register = c.identity(&map, "register", identity.map(|((_, r), t)| (r, t)));
    let cashier = c.string(&map, "cashier", false, 128);
    let transaction = c.string(&map, "transaction", false, 128);
    let amount = match map.get("amount") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => {
            match n.as_i64() {
                Some(a) if (-MAX_AMOUNT..=MAX_AMOUNT).contains(&a) => Some(a),
                Some(a) => {
                    c.fail("amount", format!("{a} is beyond ±{MAX_AMOUNT} minor units: no register takes such an amount"));
                    None
                }
                None => {
                    c.fail("amount", format!("must be an integer in the currency's minor unit (yen, cents), found {n}"));
                    None
                }
            }
        }
        Some(other) => {
            c.fail(
                "amount",
                format!("must be an integer, found {}", json_type(other)),
            );
            None
        }
    };
    let currency = c.string(&map, "currency", false, 3).and_then(|cur| {
        if cur.len() == 3 && cur.bytes().all(|b| b.is_ascii_uppercase()) {
            Some(cur)
        } else {
            c.fail(
                "currency",
                format!(
                    "must be an ISO 4217 code such as JPY, found \"{}\"",
                    shown(&cur)
                ),
            );
            None
        }
    });
    let reason = c.string(&map, "reason", false, 500);
    let lines = match map.get("lines") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => {
            if items.len() > 200 {
                c.fail(
                    "lines",
                    format!("must have at most 200 lines, found {}", items.len()),
                );
            }
            let mut lines = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate().take(200) {
                let field = format!("lines[{i}]");
                match item {
                    Value::String(s) if s.chars().count() <= 500 => lines.push(s.clone()),
                    Value::String(s) => c.fail(
                        &field,
                        format!(
                            "must be at most 500 characters, found {}",
                            s.chars().count()
                        ),
                    ),
                    other => c.fail(
                        &field,
                        format!("must be a string, found {}", json_type(other)),
                    ),
                }
            }
            lines
        }
        Some(other) => {
            c.fail(
                "lines",
                format!("must be an array of strings, found {}", json_type(other)),
            );
            Vec::new()
        }
    };
    let attributes = match map.get("attributes") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(attrs)) => {
            for (k, v) in attrs {
                if !matches!(v, Value::String(_) | Value::Number(_) | Value::Bool(_)) {
                    c.fail(
                        &format!("attributes.{}", shown(k)),
                        format!(
                            "must be a string, number or boolean, found {}",
                            json_type(v)
                        ),
                    );
                }
            }
            attrs.clone()
        }
        Some(other) => {
            c.fail(
                "attributes",
                format!("must be an object, found {}", json_type(other)),
            );
            Map::new()
        }
    };
    if !c.problems.is_empty() {
        return Err(Rejected {
            problems: c.problems,
        });
    }
    match (id, kind, at, store, register) {
        (Some(id), Some(kind), Some(at), Some(store), Some(register)) => Ok(Event {
            id,
            kind,
            at,
            sent_at,
            store,
            register,
            cashier,
            transaction,
            amount,
            currency,
            reason,
            lines,
            attributes,
        }),
        // Every None above recorded a problem, so this arm is never reached; it keeps the function total.
        _ => Err(Rejected::one(None, "incomplete event")),
    }
}

/// RFC 3339 with an explicit offset. A local time without offset is named as such: it is the most common
/// bridge bug, and guessing the zone would put the bookmark hours off.
fn parse_time(text: &str) -> Result<DateTime<FixedOffset>, String> {
    match DateTime::parse_from_rfc3339(text) {
        Ok(t) => Ok(t),
        Err(_) => {
            let local = ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"]
                .iter()
                .any(|f| chrono::NaiveDateTime::parse_from_str(text, f).is_ok());
            let text = shown(text);
            if local {
                Err(format!(
                    "\"{text}\" has no UTC offset: add one, e.g. \"{text}+09:00\" or \"{text}Z\""
                ))
            } else {
                Err(format!(
                    "\"{text}\" is not an RFC 3339 time such as 2026-11-21T18:42:07.310+09:00"
                ))
            }
        }
    }
}

#[cfg(test)]
mod read_tests;
#[cfg(test)]
mod tests;

/// The stable key of an event (`tm-` and a UUID v5 of store and id): its tag on the camera system, so a
/// bookmark can be found again after an uncertain create, and the same on every retry and every instance.
pub fn event_key(store: &str, id: &str) -> String {
    // A fixed namespace: changing it would make tillmark lose track of every bookmark it ever made.
    const NAMESPACE: uuid::Uuid = uuid::Uuid::from_u128(0x6f1c_2a7e_4b3d_5e9f_8a10_c2d4_e6f8_0a1b);
    let name = format!("{store}\u{0}{id}");
    format!(
        "tm-{}",
        uuid::Uuid::new_v5(&NAMESPACE, name.as_bytes()).simple()
    )
}

/// SHA-256 of what an event says (its fields, masked, objects' keys in sorted order), as hex. A redelivery
/// has the same digest; an id used again for something else has another, and is never mistaken for a copy.
pub fn content_digest(event: &Event) -> String {
    use sha2::{Digest, Sha256};
    fn canonical(value: &Value, out: &mut String) {
        match value {
            Value::Object(map) => {
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                out.push('{');
                for (i, k) in keys.into_iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&Value::String(k.clone()).to_string());
                    out.push(':');
                    canonical(&map[k], out);
                }
                out.push('}');
            }
            Value::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    canonical(item, out);
                }
                out.push(']');
            }
            other => out.push_str(&other.to_string()),
        }
    }
    let mut value = serde_json::to_value(event).unwrap_or_default();
    // When it was sent is not what it says: a register resending an event after a reconnect stamps it anew,
    // and that copy is a redelivery, not an id used again.
    if let Some(map) = value.as_object_mut() {
        map.remove("sent_at");
    }
    let mut text = String::new();
    canonical(&value, &mut text);
    hex::encode(Sha256::digest(text.as_bytes()))
}
