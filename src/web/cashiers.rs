//! Cashier comparison (`/cashiers`): per cashier at one store over a week, voids, no-sales and refunds per 100
//! sales, beside the same rate for the store's other cashiers, drawn as server-rendered SVG bars; each bar
//! links to the events behind it.

use std::collections::BTreeMap;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{Datelike, Duration, NaiveDate};
use minijinja::context;
use serde::{Deserialize, Serialize};

use super::AppState;
use super::auth::{Events, Signed};
use super::format::Zone;
use super::i18n::text;
use super::pages::{PageError, nav, render};
use crate::clock::now_ms;
use crate::rules::{per_100, stands_out};

/// What is compared: one event type each, so a bar links to exactly the events behind it.
pub(super) const MEASURES: [(&str, &str); 3] = [
    ("void", "cashiers.voids"),
    ("no_sale", "cashiers.no_sales"),
    ("refund", "cashiers.refunds"),
];
const WEEK_MS: i64 = 7 * 86_400_000;
/// Chart geometry, in SVG units.
const BAR_AREA: f64 = 360.0;

/// A bar is marked when its rate is this many times the other cashiers' (a `cashier_rate` rule sets its own).
const HIGH_FACTOR: f64 = 1.5;

#[derive(Debug, Default, Deserialize)]
pub struct CashierParams {
    store: Option<String>,
    /// Any day of the week to show (`2026-11-18`); default: this week.
    week: Option<String>,
}

#[derive(Debug, Serialize)]
struct Bar {
    cashier: String,
    count: i64,
    sales: i64,
    /// Per 100 sales, one decimal; `None` without sales to compare with.
    rate: Option<String>,
    width: f64,
    /// Above the store's other cashiers by half again or more: worth a look.
    high: bool,
    href: String,
}

#[derive(Debug, Serialize)]
struct Chart {
    key: &'static str,
    label: String,
    bars: Vec<Bar>,
    /// The rate of every cashier together, and where it falls on the bars' scale.
    store_rate: Option<String>,
    store_x: Option<f64>,
}

pub async fn page(
    State(state): State<AppState>,
    Signed(viewer, _): Signed<Events>,
    params: Result<Query<CashierParams>, QueryRejection>,
) -> Result<Response, PageError> {
    let nav = nav(&state, &viewer).await?;
    let params = params.map(|Query(p)| p).unwrap_or_default();
    let config = &state.config;
    let scope = viewer.scope();
    let mine = viewer.stores(config);
    let stores: Vec<(String, String)> = mine
        .iter()
        .map(|s| (s.id.clone(), s.name.clone()))
        .collect();
    let store = params
        .store
        .as_deref()
        .filter(|s| mine.iter().any(|m| m.id == *s))
        .or(mine.first().map(|s| s.id.as_str()));
    let Some(store) = store else {
        return Ok(render(
            StatusCode::OK,
            "cashiers.html",
            context! { page => "cashiers", nav, stores, charts => Vec::<Chart>::new() },
        ));
    };
    let zone = Zone::of_store(config, Some(store));
    // The week (Monday to Monday, in the store's zone) holding the chosen day, or today.
    let today = zone.input_value(now_ms());
    let day = params
        .week
        .as_deref()
        .and_then(|w| NaiveDate::parse_from_str(w.trim(), "%Y-%m-%d").ok())
        .or_else(|| NaiveDate::parse_from_str(&today[..10], "%Y-%m-%d").ok())
        .unwrap_or_default();
    let monday = day - Duration::days(i64::from(day.weekday().num_days_from_monday()));
    let from_ms = zone
        .parse_local(&monday.format("%Y-%m-%d").to_string())
        .unwrap_or(0);
    let to_ms = from_ms + WEEK_MS;
    let counts = state
        .store
        .cashier_counts(&scope, store, from_ms, to_ms, None)
        .await?;
    let mut by_cashier: BTreeMap<&str, BTreeMap<&str, i64>> = BTreeMap::new();
    for (cashier, kind, n) in &counts {
        *by_cashier
            .entry(cashier)
            .or_default()
            .entry(kind.as_str())
            .or_default() += n;
    }
    let sales = |types: &BTreeMap<&str, i64>| types.get("sale").copied().unwrap_or(0);
    let all_sales: i64 = by_cashier.values().map(sales).sum();
    let href = |cashier: &str, kind: &str| {
        let q = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("store", store)
            .append_pair("cashier", cashier)
            .append_pair("type", kind)
            .append_pair("from", &zone.input_value(from_ms))
            .append_pair("to", &zone.input_value(to_ms))
            .finish();
        format!("/?{q}")
    };
    let charts: Vec<Chart> = MEASURES
        .iter()
        .map(|(key, label)| {
            let count = |t: &BTreeMap<&str, i64>| -> i64 { t.get(key).copied().unwrap_or(0) };
            let all: i64 = by_cashier.values().map(count).sum();
            let store_rate = per_100(all, all_sales);
            let rates: Vec<(&str, i64, i64, Option<f64>)> = by_cashier
                .iter()
                .map(|(c, t)| (*c, count(t), sales(t), per_100(count(t), sales(t))))
                .collect();
            let max = rates
                .iter()
                .filter_map(|r| r.3)
                .chain(store_rate)
                .fold(0.0_f64, f64::max);
            let scale = |rate: f64| {
                if max > 0.0 {
                    rate / max * BAR_AREA
                } else {
                    0.0
                }
            };
            let bars: Vec<Bar> = rates
                .iter()
                .map(|(cashier, n, s, rate)| {
                    // Compared with the others, not with a total that includes this cashier.
                    let others = per_100(all - n, all_sales - s);
                    Bar {
                        cashier: cashier.to_string(),
                        count: *n,
                        sales: *s,
                        rate: rate.map(|r| format!("{r:.1}")),
                        width: rate.map(scale).unwrap_or(0.0),
                        high: stands_out(*rate, others, HIGH_FACTOR),
                        href: href(cashier, key),
                    }
                })
                .collect();
            Chart {
                key,
                label: text(label),
                store_rate: store_rate.map(|r| format!("{r:.1}")),
                store_x: store_rate.map(scale),
                bars,
            }
        })
        .collect();
    Ok(render(
        StatusCode::OK,
        "cashiers.html",
        context! {
            page => "cashiers",
            nav,
            stores,
            store,
            week => monday.format("%Y-%m-%d").to_string(),
            week_end => (monday + Duration::days(6)).format("%Y-%m-%d").to_string(),
            previous => (monday - Duration::days(7)).format("%Y-%m-%d").to_string(),
            next => (monday + Duration::days(7)).format("%Y-%m-%d").to_string(),
            zone => zone.label(from_ms),
            charts,
            bar_area => BAR_AREA,
        },
    ))
}
