//! The register event contract (EVENTS.md, version 1): parsing, validation and masking of one MQTT payload.
//!
//! Guarantees: what leaves this module — an [`Event`] or a [`Rejected`] payload — has every card number masked;
//! a rejection names each field that broke a rule and the rule; nothing here panics on any input.

mod mask;
mod topic;

use std::fmt;

use chrono::{DateTime, FixedOffset};
use serde::Serialize;
use serde_json::{Map, Value};

pub use mask::{contains_card_number, mask_card_numbers, mask_json, mask_text_payload};
pub use topic::topic_identity;

/// Largest payload the contract allows.
pub const MAX_PAYLOAD: usize = 64 * 1024;

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

    /// The contract's default for which types become bookmarks.
    pub fn bookmarked_by_default(self) -> bool {
        matches!(
            self,
            EventType::Void
                | EventType::ItemVoid
                | EventType::Correction
                | EventType::Refund
                | EventType::NoSale
                | EventType::DrawerOpen
                | EventType::PaidOut
        )
    }

    /// How the type reads on a camera's timeline, in capitals like a receipt: `VOID`, `NO SALE`.
    pub fn label(self) -> String {
        self.as_str().replace('_', " ").to_uppercase()
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

/// The outcome of reading one payload. `raw` is the payload as text with card numbers masked: what is kept.
#[derive(Debug, Clone)]
pub struct Parsed {
    pub raw: String,
    pub result: Result<Event, Rejected>,
}

/// Store and register ids: `[A-Za-z0-9._-]{1,64}`.
pub fn is_valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Reads one payload. Never fails: a bad payload comes back as `Err` in `result`, with its masked text.
pub fn parse(payload: &[u8]) -> Parsed {
    let text = String::from_utf8_lossy(payload);
    let raw = mask_card_numbers(&text).into_owned();
    if payload.len() > MAX_PAYLOAD {
        return Parsed {
            raw,
            result: Err(Rejected::one(
                None,
                format!(
                    "payload is {} bytes; the limit is {MAX_PAYLOAD}",
                    payload.len()
                ),
            )),
        };
    }
    if let Err(e) = std::str::from_utf8(payload) {
        return Parsed {
            raw,
            result: Err(Rejected::one(
                None,
                format!(
                    "payload is not UTF-8 (invalid byte at offset {})",
                    e.valid_up_to()
                ),
            )),
        };
    }
    let mut value: Value = match serde_json::from_slice(payload) {
        Ok(v) => v,
        Err(e) => {
            return Parsed {
                raw,
                result: Err(Rejected::one(
                    None,
                    format!("payload is not valid JSON: {e}"),
                )),
            };
        }
    };
    mask_json(&mut value);
    let result = match value {
        Value::Object(map) => validate(map),
        other => Err(Rejected::one(
            None,
            format!("payload must be a JSON object, found {}", json_type(&other)),
        )),
    };
    Parsed { raw, result }
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

fn validate(map: Map<String, Value>) -> Result<Event, Rejected> {
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
                        "unknown type \"{t}\"; expected one of {}",
                        EventType::names().join(", ")
                    ),
                );
                None
            }
        });
    let at = c
        .string(&map, "at", true, 64)
        .and_then(|t| match parse_time(&t) {
            Ok(at) => Some(at),
            Err(rule) => {
                c.fail("at", rule);
                None
            }
        });
    let store = c.id(&map, "store");
    let register = c.id(&map, "register");
    let cashier = c.string(&map, "cashier", false, 128);
    let transaction = c.string(&map, "transaction", false, 128);
    let amount = match map.get("amount") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => {
            match n.as_i64() {
                Some(a) => Some(a),
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
                format!("must be an ISO 4217 code such as JPY, found \"{cur}\""),
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
                        &format!("attributes.{k}"),
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
