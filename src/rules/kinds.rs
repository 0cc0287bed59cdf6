//! What each rule kind checks, for one stored event, against the events stored before it (the events table is
//! the only state: nothing is remembered between events, so a restart or a second daemon changes nothing).
//!
//! Every read here bounds itself with `stored_before`: an event is judged on what the store held when it
//! arrived, so the back-test, walking history later, reads exactly what live matching read.

use chrono::{Datelike, TimeZone, Timelike};

use super::reason::{Place, Reason};
use super::{Hit, per_100, stands_out};
use crate::config::{Config, Millis, RuleConfig, RuleKind, TextField};
use crate::event::EventType;
use crate::store::{EventQuery, EventRecord, Store, StoreError, StoreScope};

/// Receipt numbers restart (daily, per register): item voids of one number count together only within a day.
const TRANSACTION_SPAN_MS: i64 = 86_400_000;

/// The most partners a `sequence` rule reads from one side: a register does not void fifty sales in a minute.
const PARTNERS_MAX: i64 = 50;

/// The hits of `rule` for `event`.
pub(super) async fn check(
    store: &dyn Store,
    config: &Config,
    rule: &RuleConfig,
    event: &EventRecord,
) -> Result<Vec<Hit>, StoreError> {
    let hit = |why: Reason| Ok(vec![Hit::on(event, why)]);
    match &rule.kind {
        RuleKind::AmountOver {
            types,
            min_amount,
            currency,
        } => {
            let Some(amount) = event.amount else {
                return Ok(Vec::new());
            };
            if of_type(types, event)
                && event.currency.as_deref() == Some(currency)
                && amount.unsigned_abs() >= min_amount.unsigned_abs()
            {
                return hit(Reason::AmountOver {
                    kind: event.kind.clone(),
                    amount,
                    min_amount: *min_amount,
                    currency: currency.clone(),
                });
            }
            Ok(Vec::new())
        }
        RuleKind::Text {
            types,
            field,
            matcher,
            value,
        } => {
            if !of_type(types, event) {
                return Ok(Vec::new());
            }
            for (place, text) in texts(field, event) {
                let Some(number) = matcher.find(&text) else {
                    continue;
                };
                let matched = |value| Reason::Text {
                    place: place.clone(),
                    matcher: matcher.to_string(),
                    value,
                };
                match (value, number) {
                    (None, _) => return hit(matched(None)),
                    (Some(cmp), Some(n)) if cmp.holds(n) => {
                        return hit(matched(Some((n, cmp.to_string()))));
                    }
                    _ => {}
                }
            }
            Ok(Vec::new())
        }
        RuleKind::NoSaleAfterSignOn { within } => {
            pair(
                store,
                event,
                (EventType::SignOn, EventType::NoSale),
                *within,
                false,
            )
            .await
        }
        RuleKind::Sequence {
            first,
            then,
            within,
            same_amount,
        } => pair(store, event, (*first, *then), *within, *same_amount).await,
        RuleKind::RefundWithoutSale { within } => {
            if event.kind != EventType::Refund.as_str() {
                return Ok(Vec::new());
            }
            let Some(original) = attribute(event, "original_transaction") else {
                return Ok(Vec::new());
            };
            let sales = store
                .events(&EventQuery {
                    store: Some(event.store.clone()),
                    kind: Some(EventType::Sale.as_str().into()),
                    transaction: Some(original.clone()),
                    from_ms: Some(event.at_ms - within.0),
                    to_ms: Some(event.at_ms + 1),
                    stored_before: Some(event.seq),
                    limit: 1,
                    ..EventQuery::default()
                })
                .await?;
            if sales.is_empty() {
                return hit(Reason::RefundWithoutSale {
                    transaction: original,
                    within_ms: within.0,
                });
            }
            Ok(Vec::new())
        }
        RuleKind::ItemVoidsInTransaction { min_count } => {
            let Some(transaction) = &event.transaction else {
                return Ok(Vec::new());
            };
            if event.kind != EventType::ItemVoid.as_str() {
                return Ok(Vec::new());
            }
            let before = store
                .events(&EventQuery {
                    store: Some(event.store.clone()),
                    kind: Some(event.kind.clone()),
                    transaction: Some(transaction.clone()),
                    from_ms: Some(event.at_ms - TRANSACTION_SPAN_MS),
                    to_ms: Some(event.at_ms + TRANSACTION_SPAN_MS),
                    stored_before: Some(event.seq),
                    limit: *min_count,
                    ..EventQuery::default()
                })
                .await?;
            // Only the one that reaches the count: one exception per transaction, not one per further void.
            if before.len() as i64 + 1 == *min_count {
                return hit(Reason::ItemVoids {
                    count: *min_count,
                    transaction: transaction.clone(),
                });
            }
            Ok(Vec::new())
        }
        RuleKind::OutsideHours { types } => {
            let Some(shop) = config.store(&event.store) else {
                return Ok(Vec::new());
            };
            let Some(hours) = &shop.hours else {
                return Ok(Vec::new());
            };
            if !of_type(types, event) || hours.is_open(shop.timezone, event.at_ms) {
                return Ok(Vec::new());
            }
            let local = chrono::DateTime::from_timestamp_millis(event.at_ms)
                .map(|t| shop.timezone.from_utc_datetime(&t.naive_utc()));
            hit(Reason::OutsideHours {
                kind: event.kind.clone(),
                at: local.map(|t| (t.weekday(), t.hour(), t.minute())),
            })
        }
        RuleKind::CashierRate {
            types,
            window,
            factor,
            min_count,
        } => {
            let Some(cashier) = &event.cashier else {
                return Ok(Vec::new());
            };
            if !of_type(types, event) {
                return Ok(Vec::new());
            }
            let (from_ms, to_ms) = (event.at_ms - window.0, event.at_ms + 1);
            let counts = async |stored_before| {
                store
                    .cashier_counts(
                        &StoreScope::All,
                        &event.store,
                        from_ms,
                        to_ms,
                        Some(stored_before),
                    )
                    .await
                    .map(|c| Rates::of(&c, cashier, types))
            };
            let with = counts(event.seq + 1).await?;
            if !with.stands_out(*factor, *min_count) {
                return Ok(Vec::new());
            }
            // Only the event that takes the cashier over: one exception, not one per later void.
            if counts(event.seq).await?.stands_out(*factor, *min_count) {
                return Ok(Vec::new());
            }
            hit(with.why(*window))
        }
    }
}

fn of_type(types: &std::collections::BTreeSet<EventType>, event: &EventRecord) -> bool {
    types.is_empty() || types.iter().any(|t| t.as_str() == event.kind)
}

/// An attribute's value as text (a number or a flag as written).
fn attribute(event: &EventRecord, name: &str) -> Option<String> {
    match event.attributes.get(name)? {
        serde_json::Value::String(s) if !s.is_empty() => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        serde_json::Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// The texts a `text` rule reads, each with where it is.
fn texts(field: &TextField, event: &EventRecord) -> Vec<(Place, String)> {
    match field {
        TextField::Lines => event
            .lines
            .iter()
            .enumerate()
            .map(|(i, l)| (Place::Line(i + 1), l.clone()))
            .collect(),
        TextField::Reason => event
            .reason
            .iter()
            .map(|r| (Place::Reason, r.clone()))
            .collect(),
        TextField::Attribute(name) => attribute(event, name)
            .map(|v| (Place::Attribute(name.clone()), v))
            .into_iter()
            .collect(),
    }
}

/// `first` then `then` at one register within `within`: whichever of the two is stored second finds the pair,
/// and the exception is the `then` event's.
async fn pair(
    store: &dyn Store,
    event: &EventRecord,
    (first, then): (EventType, EventType),
    within: Millis,
    same_amount: bool,
) -> Result<Vec<Hit>, StoreError> {
    let partners = async |kind: EventType, from_ms: i64, to_ms: i64| {
        let found = store
            .events(&EventQuery {
                store: Some(event.store.clone()),
                register: Some(event.register.clone()),
                kind: Some(kind.as_str().into()),
                from_ms: Some(from_ms),
                to_ms: Some(to_ms),
                stored_before: Some(event.seq),
                limit: PARTNERS_MAX,
                ..EventQuery::default()
            })
            .await?;
        Ok::<_, StoreError>(
            found
                .into_iter()
                .filter(|p| !same_amount || same_money(p, event))
                .collect::<Vec<_>>(),
        )
    };
    let why = |gap_ms| Reason::Sequence {
        first: first.as_str().into(),
        then: then.as_str().into(),
        gap_ms,
        same_amount,
    };
    let mut hits = Vec::new();
    if event.kind == then.as_str() {
        // The newest earlier `first`: the list is newest first.
        if let Some(a) = partners(first, event.at_ms - within.0, event.at_ms + 1)
            .await?
            .first()
        {
            hits.push(Hit::on(event, why(event.at_ms - a.at_ms)));
        }
    }
    if event.kind == first.as_str() {
        // This `first` arrived after the `then` events it explains: each of them is the exception.
        for b in partners(then, event.at_ms, event.at_ms + within.0 + 1).await? {
            if b.seq != event.seq {
                hits.push(Hit::on(&b, why(b.at_ms - event.at_ms)));
            }
        }
    }
    Ok(hits)
}

fn same_money(a: &EventRecord, b: &EventRecord) -> bool {
    matches!((a.amount, b.amount), (Some(x), Some(y)) if x.unsigned_abs() == y.unsigned_abs())
        && a.currency == b.currency
}

/// One cashier's counted events and sales in a window, beside the store's other cashiers'.
struct Rates {
    count: i64,
    sales: i64,
    others_count: i64,
    others_sales: i64,
}

impl Rates {
    fn of(
        counts: &[(String, String, i64)],
        cashier: &str,
        types: &std::collections::BTreeSet<EventType>,
    ) -> Rates {
        let mut r = Rates {
            count: 0,
            sales: 0,
            others_count: 0,
            others_sales: 0,
        };
        for (who, kind, n) in counts {
            let mine = who == cashier;
            if kind == EventType::Sale.as_str() {
                *if mine {
                    &mut r.sales
                } else {
                    &mut r.others_sales
                } += n;
            } else if types.iter().any(|t| t.as_str() == kind) {
                *if mine {
                    &mut r.count
                } else {
                    &mut r.others_count
                } += n;
            }
        }
        r
    }

    fn stands_out(&self, factor: f64, min_count: i64) -> bool {
        self.count >= min_count
            && stands_out(
                per_100(self.count, self.sales),
                per_100(self.others_count, self.others_sales),
                factor,
            )
    }

    fn why(&self, window: Millis) -> Reason {
        Reason::CashierRate {
            count: self.count,
            sales: self.sales,
            others_count: self.others_count,
            others_sales: self.others_sales,
            window_ms: window.0,
        }
    }
}
