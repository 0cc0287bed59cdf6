//! Why a rule matched, as data: [`Reason`] holds only types, numbers, moments and the rule's own parameters
//! (never receipt text or names, since exceptions outlive the names retention erases), is stored in the
//! exceptions' `why` column as compact JSON, and is put into words in the reader's language from the message
//! catalogs ([`why_text`]). A stored `why` that is not that JSON (written before reasons were data) is shown
//! as it is.

use chrono::Weekday;
use serde::{Deserialize, Serialize};

use crate::config::Millis;
use crate::money::format_amount;
use crate::web::i18n;

/// One kind of reason per sentence the rules say.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum Reason {
    /// An amount at or above the rule's minimum.
    AmountOver {
        #[serde(rename = "type")]
        kind: String,
        amount: i64,
        min_amount: i64,
        currency: String,
    },
    /// A text matched the rule's pattern (and its number the rule's comparison, when it has one).
    Text {
        place: Place,
        matcher: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        value: Option<(f64, String)>,
    },
    /// `then` came `gap_ms` after `first` at the same register.
    Sequence {
        first: String,
        then: String,
        gap_ms: i64,
        same_amount: bool,
    },
    /// A refund whose original transaction was not seen as a sale in `within_ms` before it.
    RefundWithoutSale { transaction: String, within_ms: i64 },
    /// The `count`th item void in one transaction.
    ItemVoids { count: i64, transaction: String },
    /// An event outside the store's hours, at its local weekday and time (none for a moment chrono cannot
    /// place).
    OutsideHours {
        #[serde(rename = "type")]
        kind: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        at: Option<(Weekday, u32, u32)>,
    },
    /// A cashier's count of events per 100 sales over `window_ms`, beside the store's other cashiers'.
    CashierRate {
        count: i64,
        sales: i64,
        others_count: i64,
        others_sales: i64,
        window_ms: i64,
    },
}

/// Which text of an event a `text` rule found its match in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Place {
    /// A receipt line, counted from 1.
    Line(usize),
    Reason,
    /// The attribute of the rule's name.
    Attribute(String),
}

impl Reason {
    /// The form kept in the `why` column.
    pub fn stored(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The reason as a sentence in the current language ([`i18n::in_language`] or the request's).
    pub fn text(&self) -> String {
        let key = |k: &str| format!("reason.{k}");
        match self {
            Reason::AmountOver {
                kind,
                amount,
                min_amount,
                currency,
            } => i18n::text_with(
                &key("amount_over"),
                &[
                    ("type", &word(kind)),
                    ("amount", &format_amount(*amount, Some(currency))),
                    ("min", &format_amount(*min_amount, Some(currency))),
                ],
            ),
            Reason::Text {
                place,
                matcher,
                value,
            } => {
                let place = match place {
                    Place::Line(n) => i18n::text_with(&key("line"), &[("n", &n.to_string())]),
                    Place::Reason => i18n::text(&key("the_reason")),
                    Place::Attribute(name) => i18n::text_with(&key("attribute"), &[("name", name)]),
                };
                match value {
                    None => {
                        i18n::text_with(&key("text"), &[("place", &place), ("matcher", matcher)])
                    }
                    Some((n, cmp)) => i18n::text_with(
                        &key("text_value"),
                        &[
                            ("place", &place),
                            ("matcher", matcher),
                            ("value", &n.to_string()),
                            ("cmp", cmp),
                        ],
                    ),
                }
            }
            Reason::Sequence {
                first,
                then,
                gap_ms,
                same_amount,
            } => i18n::text_with(
                &key(if *same_amount {
                    "sequence_same_amount"
                } else {
                    "sequence"
                }),
                &[
                    ("first", &word(first)),
                    ("then", &word(then)),
                    ("gap", &gap(*gap_ms)),
                ],
            ),
            Reason::RefundWithoutSale {
                transaction,
                within_ms,
            } => i18n::text_with(
                &key("refund_without_sale"),
                &[
                    ("transaction", transaction),
                    ("within", &Millis(*within_ms).to_string()),
                ],
            ),
            Reason::ItemVoids { count, transaction } => i18n::text_with(
                &key("item_voids"),
                &[("count", &count.to_string()), ("transaction", transaction)],
            ),
            Reason::OutsideHours { kind, at: None } => {
                i18n::text_with(&key("outside_hours_unplaced"), &[("type", &word(kind))])
            }
            Reason::OutsideHours {
                kind,
                at: Some((day, hour, minute)),
            } => i18n::text_with(
                &key("outside_hours"),
                &[
                    ("type", &word(kind)),
                    ("weekday", &i18n::text(&format!("reason.weekday.{day}"))),
                    ("time", &format!("{hour:02}:{minute:02}")),
                ],
            ),
            Reason::CashierRate {
                count,
                sales,
                others_count,
                others_sales,
                window_ms,
            } => {
                let rate = |count, sales| {
                    format!("{:.1}", super::per_100(count, sales).unwrap_or_default())
                };
                i18n::text_with(
                    &key("cashier_rate"),
                    &[
                        ("count", &count.to_string()),
                        ("sales", &sales.to_string()),
                        ("window", &Millis(*window_ms).to_string()),
                        ("rate", &rate(*count, *sales)),
                        ("others", &rate(*others_count, *others_sales)),
                    ],
                )
            }
        }
    }
}

/// A stored `why` in the current language: a [`Reason`] put into words, or older text as it was written.
pub fn why_text(stored: &str) -> String {
    serde_json::from_str::<Reason>(stored).map_or_else(|_| stored.to_string(), |r| r.text())
}

/// A stored `why` in English, as `/api/exceptions` and the alerts' JSON for programs say it.
pub fn english_why(stored: &str) -> String {
    i18n::in_language(i18n::Lang::En, || why_text(stored))
}

/// An event type as a reason's sentence names it: the catalog's word for it, else the type as sent.
fn word(kind: &str) -> String {
    let key = format!("reason.type.{kind}");
    if i18n::has(&key) {
        i18n::text(&key)
    } else {
        kind.to_string()
    }
}

/// A gap as people say it: `12s`, `1m 05s` (`12秒`, `1分05秒`).
fn gap(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    if s < 60 {
        i18n::text_with("reason.gap_seconds", &[("s", &s.to_string())])
    } else {
        i18n::text_with(
            "reason.gap_minutes",
            &[
                ("m", &(s / 60).to_string()),
                ("s", &format!("{:02}", s % 60)),
            ],
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn in_both(reason: &Reason) -> (String, String) {
        let stored = reason.stored();
        (
            english_why(&stored),
            i18n::in_language(i18n::Lang::Ja, || why_text(&stored)),
        )
    }

    #[test]
    fn a_void_right_after_a_sale_reads_naturally_in_english_and_japanese() {
        let void = Reason::Sequence {
            first: "sale".into(),
            then: "void".into(),
            gap_ms: 65_400,
            same_amount: false,
        };
        assert_eq!(
            in_both(&void),
            (
                "void 1m 05s after a sale at the same register".into(),
                "売上の1分05秒後に同じレジで取消".into()
            )
        );
    }

    #[test]
    fn a_no_sale_outside_hours_names_the_stores_weekday_in_the_readers_language() {
        let late = Reason::OutsideHours {
            kind: "no_sale".into(),
            at: Some((Weekday::Mon, 8, 43)),
        };
        assert_eq!(
            in_both(&late),
            (
                "no sale at 08:43 on a Mon, outside the store's hours".into(),
                "営業時間外のノーセール（月 08:43）".into()
            )
        );
    }

    #[test]
    fn a_why_written_before_reasons_were_data_is_shown_as_it_was_written() {
        let old = "void 0s after a sale at the same register";
        assert_eq!(why_text(old), old);
        assert_eq!(
            i18n::in_language(i18n::Lang::Ja, || why_text("{\"reason\":\"unknown\"}")),
            "{\"reason\":\"unknown\"}"
        );
    }
}
