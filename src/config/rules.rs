//! `[[rules]]` and `[[stores]] hours`: the exception rules an owner writes, and the opening hours the
//! `outside_hours` rule reads. Read strictly, like every section: every problem at once, with its key path and
//! line. The rules' meaning lives in `crate::rules`; this module only says what a rule is.

use std::collections::{BTreeSet, HashSet};
use std::fmt;

use chrono::{Datelike, TimeZone, Timelike};

use super::reader::{At, StrOrTable, Table};
use super::{Builder, Millis};
use crate::event::{EventType, Severity, is_valid_id};

/// One `[[rules]]` section.
#[derive(Debug, Clone)]
pub struct RuleConfig {
    /// `id`, required: what the exceptions page, the API and `tillmark rules test --rule` call it; the same
    /// alphabet as store ids. Exceptions are kept by it: renaming a rule starts its exceptions afresh.
    pub id: String,
    /// `severity`: `low`, `medium` or `high`. Default `medium`.
    pub severity: Severity,
    /// `stores`: the store ids it applies to. Default: none listed, which is every store.
    pub stores: Vec<String>,
    /// `bookmark`: a match also bookmarks its event on the cameras watching its register when the event's type
    /// alone would not. Default `false`.
    pub bookmark: bool,
    /// `kind` and its own keys.
    pub kind: RuleKind,
}

impl RuleConfig {
    pub fn applies_to(&self, store: &str) -> bool {
        self.stores.is_empty() || self.stores.iter().any(|s| s == store)
    }
}

/// What a rule looks for (`kind = "..."`). Each kind's keys are documented on its fields.
#[derive(Debug, Clone)]
pub enum RuleKind {
    /// `amount_over`: an event of `types` whose amount, in `currency`, is at least `min_amount` (its size: a
    /// refund sent as a negative amount counts as much as a positive one).
    AmountOver {
        /// `types`: default every type.
        types: BTreeSet<EventType>,
        /// `min_amount`, required: in the minor unit of `currency` (yen, cents).
        min_amount: i64,
        /// `currency`, required: ISO 4217; an event in another currency never matches.
        currency: String,
    },
    /// `text`: a receipt line, the reason or an attribute matching `pattern` (wildcards) or `regex`, with
    /// `value` optionally comparing a number read from the matching text.
    Text {
        /// `types`: default every type.
        types: BTreeSet<EventType>,
        /// `field`: `lines` (default), `reason`, or `attributes.NAME`.
        field: TextField,
        /// `pattern` (`*` any text, `?` one character, whole text, ignoring case) or `regex` (found anywhere;
        /// `(?i)` for no case). One of them is required.
        matcher: Matcher,
        /// `value`: `"> 1000"`, `">= 1000"`, `"< 0"`, `"= 0"`: the number read from the matching text (a
        /// `regex`'s first group, else the text's last number, `1,280` and `-12.80` read as written) must
        /// compare so. Default: none, the match alone is enough.
        value: Option<Comparison>,
    },
    /// `no_sale_after_sign_on`: a `no_sale` within `within` after a `sign_on` at the same register.
    NoSaleAfterSignOn {
        /// `within`. Default `60s`.
        within: Millis,
    },
    /// `refund_without_sale`: a refund whose `original_transaction` attribute names no `sale` stored at its store
    /// in the `within` before it. A refund that names no original transaction is left alone.
    RefundWithoutSale {
        /// `within`. Default `30d`.
        within: Millis,
    },
    /// `item_voids_in_transaction`: the `min_count`th `item_void` of one transaction (within a day of one
    /// another, since receipt numbers restart).
    ItemVoidsInTransaction {
        /// `min_count`. Default 3.
        min_count: i64,
    },
    /// `sequence`: a `then` event within `within` after a `first` event at the same register, optionally of the
    /// same amount. Whichever of the two is stored second finds the pair; the exception is on the `then` event.
    Sequence {
        /// `first`, required: an event type.
        first: EventType,
        /// `then`, required: an event type.
        then: EventType,
        /// `within`, required.
        within: Millis,
        /// `same_amount`: both events' amounts (and currencies) equal. Default `false`.
        same_amount: bool,
    },
    /// `outside_hours`: an event of `types` outside its store's `hours`. A store without `hours` is always open.
    OutsideHours {
        /// `types`: default every type.
        types: BTreeSet<EventType>,
    },
    /// `cashier_rate`: a cashier's events of `types` per 100 sales over the trailing `window` reach `factor`
    /// times the rate of the store's other cashiers over the same window (the cashiers chart's comparison),
    /// with at least `min_count` of them. The exception is on the event that takes the cashier over.
    CashierRate {
        /// `types`, required: what is counted, e.g. `["void"]`, `["refund"]` or `["no_sale"]`.
        types: BTreeSet<EventType>,
        /// `window`. Default `7d`.
        window: Millis,
        /// `factor`. Default 2.0; at least 1.
        factor: f64,
        /// `min_count`. Default 5.
        min_count: i64,
    },
}

impl RuleKind {
    pub fn name(&self) -> &'static str {
        match self {
            RuleKind::AmountOver { .. } => "amount_over",
            RuleKind::Text { .. } => "text",
            RuleKind::NoSaleAfterSignOn { .. } => "no_sale_after_sign_on",
            RuleKind::RefundWithoutSale { .. } => "refund_without_sale",
            RuleKind::ItemVoidsInTransaction { .. } => "item_voids_in_transaction",
            RuleKind::Sequence { .. } => "sequence",
            RuleKind::OutsideHours { .. } => "outside_hours",
            RuleKind::CashierRate { .. } => "cashier_rate",
        }
    }
}

const KINDS: &str = "amount_over, text, no_sale_after_sign_on, refund_without_sale, \
                     item_voids_in_transaction, sequence, outside_hours, cashier_rate";

/// Where a `text` rule looks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TextField {
    Lines,
    Reason,
    Attribute(String),
}

/// A `pattern` or `regex`, compiled once at load; shown as written.
#[derive(Clone)]
pub struct Matcher {
    written: String,
    regex: regex::Regex,
}

impl fmt::Debug for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.written)
    }
}

impl fmt::Display for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.written)
    }
}

/// Receipt lines are short: a pattern that compiles to more than this is a mistake, not a rule.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

impl Matcher {
    /// A wildcard pattern: `*` any text, `?` one character, the whole text, ignoring case.
    pub fn wildcard(pattern: &str) -> Matcher {
        let mut re = String::from("(?is)^");
        for c in pattern.chars() {
            match c {
                '*' => re.push_str(".*"),
                '?' => re.push('.'),
                c => re.push_str(&regex::escape(c.encode_utf8(&mut [0; 4]))),
            }
        }
        re.push('$');
        Matcher {
            written: pattern.to_string(),
            regex: regex::Regex::new(&re).expect("an escaped wildcard is a valid regex"),
        }
    }

    pub fn regex(pattern: &str) -> Result<Matcher, String> {
        regex::RegexBuilder::new(pattern)
            .size_limit(REGEX_SIZE_LIMIT)
            .build()
            .map(|regex| Matcher {
                written: pattern.to_string(),
                regex,
            })
            .map_err(|e| format!("is not a regular expression: {e}"))
    }

    /// Whether `text` matches, and the number it gives for a comparison: the first group's, else the text's
    /// last number.
    pub fn find(&self, text: &str) -> Option<Option<f64>> {
        let caps = self.regex.captures(text)?;
        let number = match caps.get(1) {
            Some(group) => last_number(group.as_str()),
            None => last_number(text),
        };
        Some(number)
    }
}

/// The last number written in `text`: digits with `,` thousands separators, an optional sign and decimals.
fn last_number(text: &str) -> Option<f64> {
    let chars: Vec<char> = text.chars().collect();
    let end = chars.iter().rposition(|c| c.is_ascii_digit())? + 1;
    let mut start = end;
    while start > 0 && (chars[start - 1].is_ascii_digit() || matches!(chars[start - 1], ',' | '.'))
    {
        start -= 1;
    }
    while start < end && !chars[start].is_ascii_digit() {
        start += 1;
    }
    let negative = start > 0 && matches!(chars[start - 1], '-' | '−');
    let digits: String = chars[start..end].iter().filter(|c| **c != ',').collect();
    let n: f64 = digits.parse().ok()?;
    Some(if negative { -n } else { n })
}

/// A `value` comparison of a `text` rule.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Comparison {
    pub op: CompareOp,
    pub value: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    Above,
    AtLeast,
    Below,
    Equal,
}

impl Comparison {
    pub fn parse(text: &str) -> Result<Comparison, String> {
        let text = text.trim();
        let (op, rest) = if let Some(rest) = text.strip_prefix(">=") {
            (CompareOp::AtLeast, rest)
        } else if let Some(rest) = text.strip_prefix('>') {
            (CompareOp::Above, rest)
        } else if let Some(rest) = text.strip_prefix('<') {
            (CompareOp::Below, rest)
        } else if let Some(rest) = text.strip_prefix('=') {
            (CompareOp::Equal, rest)
        } else {
            return Err(format!(
                "\"{text}\" is not a comparison: write \"> 1000\", \">= 1000\", \"< 0\" or \"= 0\""
            ));
        };
        let value = rest
            .trim()
            .replace(',', "")
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite())
            .ok_or_else(|| format!("\"{}\" is not a number", rest.trim()))?;
        Ok(Comparison { op, value })
    }

    pub fn holds(&self, n: f64) -> bool {
        match self.op {
            CompareOp::Above => n > self.value,
            CompareOp::AtLeast => n >= self.value,
            CompareOp::Below => n < self.value,
            CompareOp::Equal => n == self.value,
        }
    }
}

impl fmt::Display for Comparison {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = match self.op {
            CompareOp::Above => ">",
            CompareOp::AtLeast => ">=",
            CompareOp::Below => "<",
            CompareOp::Equal => "=",
        };
        write!(f, "{op} {}", self.value)
    }
}

/// `[[stores]] hours`: when a store is open, per weekday, in its time zone. A span whose end is not after its
/// start crosses midnight (`"22:00-02:00"`): its early hours belong to the day it began.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OpeningHours {
    /// Monday first; each day's spans as minutes from midnight, `[start, end)`.
    days: [Vec<(u32, u32)>; 7],
}

const WEEKDAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
const DAY_MINUTES: u32 = 24 * 60;

impl OpeningHours {
    /// Whether the store is open at `at_ms`, read on its clock in `zone`.
    pub fn is_open(&self, zone: chrono_tz::Tz, at_ms: i64) -> bool {
        let Some(utc) = chrono::DateTime::from_timestamp_millis(at_ms) else {
            return true;
        };
        let local = zone.from_utc_datetime(&utc.naive_utc());
        let minute = local.hour() * 60 + local.minute();
        let today = local.weekday().num_days_from_monday() as usize;
        let yesterday = (today + 6) % 7;
        let open_today = self.days[today]
            .iter()
            .any(|&(start, end)| minute >= start && (end <= start || minute < end));
        let open_from_yesterday = self.days[yesterday]
            .iter()
            .any(|&(start, end)| end <= start && minute < end);
        open_today || open_from_yesterday
    }

    /// `"09:00-22:00"`, or spans separated by commas (`"09:00-12:00, 13:00-18:00"`), or `"closed"`.
    fn day(text: &str) -> Result<Vec<(u32, u32)>, String> {
        if text.trim().eq_ignore_ascii_case("closed") {
            return Ok(Vec::new());
        }
        text.split(',')
            .map(|span| {
                let (start, end) = span.trim().split_once('-').ok_or_else(|| {
                    format!("\"{}\" is not a span such as \"09:00-22:00\"", span.trim())
                })?;
                let (start, end) = (minutes(start)?, minutes(end)?);
                if start == end {
                    return Err(format!(
                        "\"{}\" is empty: for a store open around the clock write \"00:00-24:00\"",
                        span.trim()
                    ));
                }
                Ok((start, end))
            })
            .collect()
    }
}

/// `"HH:MM"` as minutes from midnight; `24:00` is the end of the day.
fn minutes(text: &str) -> Result<u32, String> {
    let text = text.trim();
    let parsed = text.split_once(':').and_then(|(h, m)| {
        let (h, m) = (h.parse::<u32>().ok()?, m.parse::<u32>().ok()?);
        (m < 60 && m.to_string().len() <= 2 && h * 60 + m <= DAY_MINUTES).then_some(h * 60 + m)
    });
    parsed.ok_or_else(|| format!("\"{text}\" is not a time such as \"09:00\""))
}

impl Builder<'_> {
    /// `hours` of a `[[stores]]` section: one span list for every day, or a table by weekday (`mon` ... `sun`;
    /// a day left out is closed).
    pub(super) fn hours(&self, t: &Table) -> Option<OpeningHours> {
        let mut hours = OpeningHours::default();
        match t.opt_str_or_table("hours")? {
            StrOrTable::Str(text) => match OpeningHours::day(&text.value) {
                Ok(spans) => hours.days = std::array::from_fn(|_| spans.clone()),
                Err(e) => self.doc.push(text.path, Some(text.line), e),
            },
            StrOrTable::Table(days) => {
                for (i, day) in WEEKDAYS.iter().enumerate() {
                    if let Some(text) = days.opt_str(day) {
                        match OpeningHours::day(&text.value) {
                            Ok(spans) => hours.days[i] = spans,
                            Err(e) => self.doc.push(text.path, Some(text.line), e),
                        }
                    }
                }
                days.finish();
            }
        }
        Some(hours)
    }

    /// Event type names, each checked; an unknown one is reported where it is.
    pub(super) fn event_types(&self, names: Vec<At<String>>) -> BTreeSet<EventType> {
        let mut types = BTreeSet::new();
        for name in names {
            match EventType::parse(&name.value) {
                Some(kind) => {
                    types.insert(kind);
                }
                None => self.doc.push(
                    name.path,
                    Some(name.line),
                    format!(
                        "unknown event type \"{}\"; known types: {}",
                        name.value,
                        EventType::names().join(", ")
                    ),
                ),
            }
        }
        types
    }

    fn event_type(&self, t: &Table, key: &'static str) -> Option<EventType> {
        let name = t.req_str(key)?;
        self.event_types(vec![name]).into_iter().next()
    }

    /// Every `[[rules]]` section; ids must be unique, and each store a rule names must be a `[[stores]]` id.
    pub(super) fn rules(&self, tables: &[Table], store_ids: &[At<String>]) -> Vec<RuleConfig> {
        let ids: Vec<At<String>> = tables.iter().filter_map(|t| t.peek_str("id")).collect();
        self.unique(&ids);
        let known: HashSet<&str> = store_ids.iter().map(|s| s.value.as_str()).collect();
        tables.iter().filter_map(|t| self.rule(t, &known)).collect()
    }

    fn rule(&self, t: &Table, stores: &HashSet<&str>) -> Option<RuleConfig> {
        let id = t.req_str("id");
        if let Some(id) = &id
            && !is_valid_id(&id.value)
        {
            t.error("id", "must be 1 to 64 of A-Z a-z 0-9 . _ - (as store ids)");
        }
        let severity = match t.opt_str("severity") {
            None => Some(Severity::Medium),
            Some(s) => Severity::parse(&s.value).or_else(|| {
                t.error(
                    "severity",
                    format!("\"{}\" is not a severity: use low, medium or high", s.value),
                );
                None
            }),
        };
        let mut listed = Vec::new();
        for store in t.opt_str_list("stores").unwrap_or_default() {
            if stores.contains(store.value.as_str()) {
                listed.push(store.value);
            } else {
                self.doc.push(
                    store.path,
                    Some(store.line),
                    format!("no [[stores]] section has id \"{}\"", store.value),
                );
            }
        }
        let bookmark = t.opt_bool("bookmark").unwrap_or(false);
        let kind = t.req_str("kind").and_then(|k| self.rule_kind(t, &k));
        t.finish();
        Some(RuleConfig {
            id: id?.value,
            severity: severity?,
            stores: listed,
            bookmark,
            kind: kind?,
        })
    }

    fn rule_kind(&self, t: &Table, kind: &At<String>) -> Option<RuleKind> {
        let types = |key| {
            t.opt_str_list(key)
                .map(|names| self.event_types(names))
                .unwrap_or_default()
        };
        let within = |default: i64| {
            let d = t.opt_duration("within").unwrap_or(Millis(default));
            if d.0 <= 0 {
                t.error("within", "must be longer than 0s");
            }
            d
        };
        let count = |key, default| t.opt_int(key, 1..1_000_000).unwrap_or(default);
        Some(match kind.value.as_str() {
            "amount_over" => {
                let min_amount = t.opt_int("min_amount", 0..1_000_000_000_001);
                if !t.has("min_amount") {
                    t.error("min_amount", "is required: in the minor unit of `currency`");
                }
                let currency = t.req_str("currency").and_then(|c| {
                    let valid =
                        c.value.len() == 3 && c.value.bytes().all(|b| b.is_ascii_uppercase());
                    if !valid {
                        t.error(
                            "currency",
                            format!("\"{}\" is not an ISO 4217 code such as JPY", c.value),
                        );
                    }
                    valid.then_some(c.value)
                });
                RuleKind::AmountOver {
                    types: types("types"),
                    min_amount: min_amount?,
                    currency: currency?,
                }
            }
            "text" => {
                let field = match t.opt_str("field") {
                    None => Some(TextField::Lines),
                    Some(f) => match f.value.as_str() {
                        "lines" => Some(TextField::Lines),
                        "reason" => Some(TextField::Reason),
                        other => match other.strip_prefix("attributes.") {
                            Some(name) if !name.is_empty() => {
                                Some(TextField::Attribute(name.to_string()))
                            }
                            _ => {
                                t.error(
                                    "field",
                                    format!("\"{other}\" is not a field: use lines, reason or attributes.NAME"),
                                );
                                None
                            }
                        },
                    },
                };
                let matcher = match (t.opt_str("pattern"), t.opt_str("regex")) {
                    (Some(p), None) => Some(Matcher::wildcard(&p.value)),
                    (None, Some(r)) => Matcher::regex(&r.value)
                        .map_err(|e| self.doc.push(r.path, Some(r.line), e))
                        .ok(),
                    (Some(_), Some(_)) => {
                        t.error("regex", "give pattern or regex, not both");
                        None
                    }
                    (None, None) => {
                        t.error("pattern", "is required (or regex): what to look for, such as \"*PRICE OVERRIDE*\"");
                        None
                    }
                };
                let value = match t.opt_str("value") {
                    None => Some(None),
                    Some(v) => Comparison::parse(&v.value)
                        .map(Some)
                        .map_err(|e| self.doc.push(v.path, Some(v.line), e))
                        .ok(),
                };
                RuleKind::Text {
                    types: types("types"),
                    field: field?,
                    matcher: matcher?,
                    value: value?,
                }
            }
            "no_sale_after_sign_on" => RuleKind::NoSaleAfterSignOn {
                within: within(60_000),
            },
            "refund_without_sale" => RuleKind::RefundWithoutSale {
                within: within(30 * 86_400_000),
            },
            "item_voids_in_transaction" => RuleKind::ItemVoidsInTransaction {
                min_count: count("min_count", 3),
            },
            "sequence" => {
                let within = if t.has("within") {
                    within(0)
                } else {
                    t.error(
                        "within",
                        "is required: how soon after `first` the `then` event counts",
                    );
                    Millis(0)
                };
                let (first, then) = (self.event_type(t, "first"), self.event_type(t, "then"));
                RuleKind::Sequence {
                    within,
                    same_amount: t.opt_bool("same_amount").unwrap_or(false),
                    first: first?,
                    then: then?,
                }
            }
            "outside_hours" => RuleKind::OutsideHours {
                types: types("types"),
            },
            "cashier_rate" => {
                let counted = types("types");
                if counted.is_empty() && !t.has("types") {
                    t.error(
                        "types",
                        "is required: what to count per 100 sales, such as [\"void\"]",
                    );
                }
                if counted.contains(&EventType::Sale) {
                    t.error("types", "cannot count sales per 100 sales");
                }
                let window = t.opt_duration("window").unwrap_or(Millis(7 * 86_400_000));
                if window.0 < 60_000 {
                    t.error("window", "must be at least 1m");
                }
                let factor = t.opt_float("factor").unwrap_or(2.0);
                if !(1.0..=1000.0).contains(&factor) {
                    t.error("factor", "must be between 1 and 1000");
                }
                RuleKind::CashierRate {
                    types: counted,
                    window,
                    factor,
                    min_count: count("min_count", 5),
                }
            }
            other => {
                self.doc.push(
                    kind.path.clone(),
                    Some(kind.line),
                    format!("\"{other}\" is not a rule kind; known kinds: {KINDS}"),
                );
                return None;
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::config::tests::{env, error_at, with_site};

    #[test]
    fn rules_of_every_kind_are_read_with_their_defaults() {
        let text = with_site(
            r#"
[[rules]]
id = "big-refund"
kind = "amount_over"
types = ["refund"]
min_amount = 500000
currency = "JPY"
severity = "high"
stores = ["shibuya-01"]
bookmark = true
[[rules]]
id = "override"
kind = "text"
pattern = "*PRICE OVERRIDE*"
value = ">= 1,000"
[[rules]]
id = "no-sale"
kind = "no_sale_after_sign_on"
[[rules]]
id = "refund"
kind = "refund_without_sale"
[[rules]]
id = "voids"
kind = "item_voids_in_transaction"
[[rules]]
id = "sweetheart"
kind = "sequence"
first = "sale"
then = "void"
within = "2m"
[[rules]]
id = "night"
kind = "outside_hours"
[[rules]]
id = "rate"
kind = "cashier_rate"
types = ["void", "refund"]
factor = 2.5
"#,
        );
        let config = Config::parse(&text, &env).expect("valid");
        let r = &config.rules;
        assert_eq!(r.len(), 8);
        assert_eq!(
            (r[0].severity, r[0].bookmark, r[0].stores.as_slice()),
            (Severity::High, true, ["shibuya-01".to_string()].as_slice())
        );
        assert_eq!(
            (r[1].severity, r[1].bookmark, r[1].stores.len()),
            (Severity::Medium, false, 0)
        );
        assert!(
            matches!(&r[1].kind, RuleKind::Text { value: Some(c), field: TextField::Lines, .. }
            if *c == Comparison { op: CompareOp::AtLeast, value: 1000.0 })
        );
        assert!(matches!(
            r[2].kind,
            RuleKind::NoSaleAfterSignOn {
                within: Millis(60_000)
            }
        ));
        assert!(matches!(
            r[3].kind,
            RuleKind::RefundWithoutSale {
                within: Millis(2_592_000_000)
            }
        ));
        assert!(matches!(
            r[4].kind,
            RuleKind::ItemVoidsInTransaction { min_count: 3 }
        ));
        assert!(matches!(
            r[5].kind,
            RuleKind::Sequence {
                within: Millis(120_000),
                same_amount: false,
                ..
            }
        ));
        assert!(
            matches!(&r[7].kind, RuleKind::CashierRate { factor, min_count: 5, window: Millis(604_800_000), .. }
            if *factor == 2.5)
        );
    }

    #[test]
    fn mistakes_in_rules_and_hours_come_back_with_their_key_and_line() {
        let text = with_site(
            r#"
[[stores]]
id = "ny-01"
timezone = "America/New_York"
hours = { mon = "9:00-25:00", tue = "closed", fry = "09:00-17:00" }
[[rules]]
id = "a"
kind = "amount_over"
currency = "yen"
[[rules]]
id = "a"
kind = "text"
pattern = "*X*"
regex = "x"
value = "about 5"
[[rules]]
id = "b"
kind = "text"
regex = "(unclosed"
stores = ["nowhere"]
severity = "urgent"
[[rules]]
id = "c"
kind = "sequence"
first = "sale"
then = "voided"
[[rules]]
id = "d"
kind = "cashier_rate"
types = ["sale"]
factor = 0.5
within = "1m"
[[rules]]
id = "e"
kind = "velocity"
"#,
        );
        let errors = match Config::parse(&text, &env) {
            Ok(_) => panic!("expected errors"),
            Err(errors) => errors,
        };
        let line = |needle: &str| {
            text.lines()
                .position(|l| l.contains(needle))
                .map(|i| i + 1)
                .unwrap()
        };
        let at = |path: &str, needle: &str, says: &str| {
            let e = error_at(&errors, path);
            assert_eq!(e.line, Some(line(needle)), "{e}");
            assert!(e.message.contains(says), "{e}");
        };
        at(
            "stores[1].hours.mon",
            "9:00-25:00",
            "\"25:00\" is not a time",
        );
        at("stores[1].hours.fry", "9:00-25:00", "unknown key");
        // A missing key is placed on its section's header, the line before the section's first key.
        let missing = |path: &str, first_key: &str| {
            let e = error_at(&errors, path);
            assert_eq!(e.line, Some(line(first_key) - 1), "{e}");
            assert!(e.message.contains("is required"), "{e}");
        };
        missing("rules[0].min_amount", "id = \"a\"");
        at("rules[0].currency", "currency = \"yen\"", "ISO 4217");
        let twice = error_at(&errors, "rules[1].id");
        assert!(twice.message.contains("used twice"), "{twice}");
        assert!(twice.line > Some(line("id = \"a\"")), "{twice}");
        at("rules[1].regex", "regex = \"x\"", "not both");
        at("rules[1].value", "about 5", "not a comparison");
        at("rules[2].regex", "(unclosed", "not a regular expression");
        at("rules[2].stores[0]", "nowhere", "no [[stores]] section");
        at("rules[2].severity", "urgent", "use low, medium or high");
        missing("rules[3].within", "id = \"c\"");
        at("rules[3].then", "voided", "unknown event type");
        at("rules[4].types", "types = [\"sale\"]", "cannot count sales");
        at("rules[4].factor", "factor = 0.5", "between 1 and 1000");
        at("rules[4].within", "within = \"1m\"", "unknown key");
        at("rules[5].kind", "velocity", "not a rule kind");
    }

    fn at(local: &str) -> i64 {
        chrono::DateTime::parse_from_rfc3339(&format!("{local}+09:00"))
            .unwrap()
            .timestamp_millis()
    }

    #[test]
    fn opening_hours_follow_the_weekday_and_a_late_span_runs_past_midnight() {
        let tokyo: chrono_tz::Tz = "Asia/Tokyo".parse().unwrap();
        let mut hours = OpeningHours::default();
        // Friday 2026-11-20 to 02:00 Saturday; Saturday 10:00-12:00 and 13:00-24:00.
        hours.days[4] = OpeningHours::day("17:00-02:00").unwrap();
        hours.days[5] = OpeningHours::day("10:00-12:00, 13:00-24:00").unwrap();
        let open = |local: &str| hours.is_open(tokyo, at(local));
        assert!(!open("2026-11-20T16:59:00"));
        assert!(open("2026-11-20T23:59:00"));
        assert!(open("2026-11-21T01:59:00"));
        assert!(!open("2026-11-21T02:00:00"));
        assert!(!open("2026-11-21T12:30:00"));
        assert!(open("2026-11-21T23:30:00"));
        // Sunday: closed, and Saturday's span ended at midnight.
        assert!(!open("2026-11-22T00:30:00"));
        assert!(OpeningHours::day("10:00-10:00").is_err());
        assert!(OpeningHours::day("closed").unwrap().is_empty());
    }

    #[test]
    fn a_number_is_read_from_a_receipt_line_as_printed() {
        assert_eq!(last_number("PRICE OVERRIDE      1,280"), Some(1280.0));
        assert_eq!(last_number("REFUND -12.80 USD"), Some(-12.8));
        assert_eq!(last_number("ITEM 3 x 150"), Some(150.0));
        assert_eq!(last_number("NO NUMBER"), None);
        let m = Matcher::regex(r"OVERRIDE\s+(\d+) ->").unwrap();
        assert_eq!(m.find("OVERRIDE 980 -> 100"), Some(Some(980.0)));
        assert_eq!(
            Matcher::wildcard("*gift card*").find("1 GIFT CARD 5000"),
            Some(Some(5000.0))
        );
        assert_eq!(Matcher::wildcard("gift card").find("1 GIFT CARD"), None);
    }
}
