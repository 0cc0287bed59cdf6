//! The exceptions page (`/exceptions`): what the `[[rules]]` found, newest event first, each with its rule,
//! severity, store and register, moment on the store's clock, and why, linking to its event; how many each rule
//! found in the last 30 days, each count a link to that rule's list. The reader's stores apply in the query,
//! like the events list's.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use minijinja::context;
use serde::{Deserialize, Serialize};

use super::AppState;
use super::api::non_empty;
use super::auth::{Events, Signed};
use super::format::Zone;
use super::i18n::type_label;
use super::pages::{PageError, nav, render};
use crate::clock::now_ms;
use crate::event::Severity;
use crate::money::format_amount;
use crate::store::{ExceptionQuery, ExceptionRecord};

/// How many exceptions the page lists.
const SHOWN: i64 = 200;

/// The span the counts cover.
const COUNTED_MS: i64 = 30 * 86_400_000;

#[derive(Debug, Default, Deserialize)]
pub struct PageParams {
    rule: Option<String>,
    store: Option<String>,
    severity: Option<String>,
}

/// One exception as the page shows it.
#[derive(Debug, Serialize)]
struct Row {
    rule: String,
    severity: String,
    why: String,
    seq: i64,
    store: String,
    register: String,
    type_label: String,
    time: String,
    zone: String,
    amount: Option<String>,
}

/// A rule with its count, for the counts' table: the config's rules, then any the config no longer has.
#[derive(Debug, Serialize)]
struct Count {
    rule: String,
    kind: Option<&'static str>,
    severity: Option<&'static str>,
    count: i64,
}

fn row(config: &crate::config::Config, x: ExceptionRecord) -> Row {
    let zone = Zone::of_event(config, &x.store, &x.at);
    Row {
        time: zone.datetime(x.at_ms),
        zone: zone.label(x.at_ms).abbr,
        type_label: type_label(&x.kind),
        amount: x.amount.map(|a| format_amount(a, x.currency.as_deref())),
        rule: x.rule,
        severity: x.severity,
        why: crate::rules::why_text(&x.why),
        seq: x.event_seq,
        store: x.store,
        register: x.register,
    }
}

pub async fn page(
    State(state): State<AppState>,
    Signed(viewer, _): Signed<Events>,
    params: Result<Query<PageParams>, QueryRejection>,
) -> Result<Response, PageError> {
    let nav = nav(&state, &viewer).await?;
    let params = params.map(|Query(p)| p).unwrap_or_default();
    let config = &state.config;
    let scope = viewer.scope();
    let rule = non_empty(&params.rule);
    let store = non_empty(&params.store);
    // A value the page never links to lists what it lists without it.
    let severity = non_empty(&params.severity).and_then(|s| Severity::parse(&s));
    let query = ExceptionQuery {
        scope: scope.clone(),
        rule: rule.clone(),
        store: store.clone(),
        severity,
        limit: SHOWN,
        ..ExceptionQuery::default()
    };
    let rows: Vec<Row> = state
        .store
        .exceptions(&query)
        .await?
        .into_iter()
        .map(|x| row(config, x))
        .collect();
    let counted = state
        .store
        .exception_counts(&scope, now_ms() - COUNTED_MS)
        .await?;
    let count_of = |id: &str| counted.iter().find(|(r, _)| r == id).map_or(0, |(_, n)| *n);
    let mut counts: Vec<Count> = config
        .rules
        .iter()
        .map(|r| Count {
            rule: r.id.clone(),
            kind: Some(r.kind.name()),
            severity: Some(r.severity.as_str()),
            count: count_of(&r.id),
        })
        .collect();
    counts.extend(
        counted
            .iter()
            .filter(|(id, _)| !config.rules.iter().any(|r| &r.id == id))
            .map(|(id, n)| Count {
                rule: id.clone(),
                kind: None,
                severity: None,
                count: *n,
            }),
    );
    let stores: Vec<(String, String)> = viewer
        .stores(config)
        .iter()
        .map(|s| (s.id.clone(), s.name.clone()))
        .collect();
    Ok(render(
        StatusCode::OK,
        "exceptions.html",
        context! {
            page => "exceptions",
            nav,
            rows,
            counts,
            stores,
            rule => rule.unwrap_or_default(),
            store => store.unwrap_or_default(),
            severity => severity.map(Severity::as_str).unwrap_or_default(),
            shown => SHOWN,
        },
    ))
}
