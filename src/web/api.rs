//! The JSON API: `/api/events`, `/api/events/{seq}`, `/api/dead-letters`, `/healthz`.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, RawQuery, State};
use axum::http::StatusCode;
use chrono::DateTime;
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::auth::{DeadLetters, Events, Signed, Viewer};
use super::error::ApiError;
use super::view::{event_view, iso_utc};
use crate::config::{Config, StoreConfig};
use crate::event::{EventType, Severity};
use crate::store::{
    BookmarkState, CaseFilter, DeadLetterQuery, EventQuery, ExceptionFilter, ExceptionQuery,
    StoreDay, StoreScope,
};

#[derive(Debug, Clone, Default, Deserialize)]
pub struct EventParams {
    pub store: Option<String>,
    pub register: Option<String>,
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub cashier: Option<String>,
    /// Only the events of this transaction number, exactly as the register sent it.
    pub txn: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub flagged: Option<String>,
    /// Only events of this severity or above: `high`, `medium` or `low`.
    pub severity: Option<String>,
    /// Words to search for in receipt lines, reason, transaction and cashier.
    pub q: Option<String>,
    pub min_amount: Option<String>,
    pub max_amount: Option<String>,
    /// Only events with a bookmark in this state: `pending`, `made` or `failed`.
    pub state: Option<String>,
    /// Only events with a case: `open`, `closed` or `any`.
    pub case: Option<String>,
    /// `any`, or a rule's id: only the events a rule matched.
    pub exception: Option<String>,
    pub limit: Option<String>,
    pub before: Option<String>,
    /// `today`: only events on their store's today, each store on its own clock.
    pub day: Option<String>,
    /// The zone the form wrote `from` and `to` in (an IANA name), so they are read as the person saw them
    /// even after the store, and with it the form's zone, changed. The pages' only.
    pub tz: Option<String>,
}

/// The longest search accepted, in characters: longer than any receipt line is worth typing, short enough that
/// one request cannot make a query of thousands of terms.
pub(super) const SEARCH_MAX_CHARS: usize = 200;

pub(super) fn non_empty(v: &Option<String>) -> Option<String> {
    v.as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// A time bound: RFC 3339 with an offset, or milliseconds since the epoch.
pub fn parse_bound(name: &str, text: &str) -> Result<i64, ApiError> {
    if let Ok(ms) = text.parse::<i64>() {
        return Ok(ms);
    }
    DateTime::parse_from_rfc3339(text).map(|t| t.timestamp_millis()).map_err(|_| {
        ApiError::bad_request(format!(
            "{name}: \"{text}\" is not a time; use RFC 3339 with an offset (2026-11-21T18:00:00+09:00) or epoch milliseconds"
        ))
    })
}

/// `store` as typed: a store's id, or the name of one of `stores` (the person's), in any case. Anything else
/// is kept as it is, and matches no event.
pub(super) fn store_id(config: &Config, stores: &[&StoreConfig], text: &str) -> String {
    let text = text.trim();
    if config.store(text).is_some() {
        return text.to_string();
    }
    stores
        .iter()
        .find(|s| s.name.trim().to_lowercase() == text.to_lowercase())
        .map(|s| s.id.clone())
        .unwrap_or_else(|| text.to_string())
}

/// `day`: `today` is each of `stores`' today at `now_ms`, on its own clock (only the chosen store's when
/// `store` is given); nothing else is a day.
pub(super) fn parse_day(
    v: &Option<String>,
    stores: &[&StoreConfig],
    store: Option<&str>,
    now_ms: i64,
) -> Result<Vec<StoreDay>, ApiError> {
    match non_empty(v).as_deref() {
        None => Ok(Vec::new()),
        Some("today") => {
            let days = super::format::todays(
                stores
                    .iter()
                    .copied()
                    .filter(|s| store.is_none_or(|id| s.id == id)),
                now_ms,
            );
            // No store of theirs has a today: nothing is today's, rather than everything.
            Ok(if days.is_empty() {
                vec![StoreDay {
                    store: String::new(),
                    from_ms: 0,
                    to_ms: 0,
                }]
            } else {
                days
            })
        }
        Some(other) => Err(ApiError::bad_request(format!(
            "day: \"{other}\" must be today"
        ))),
    }
}

impl EventParams {
    /// The query these parameters ask for, within `scope`: whatever `store` says, no other store is read.
    pub fn to_query(&self, scope: StoreScope) -> Result<EventQuery, ApiError> {
        let kind = non_empty(&self.kind);
        if let Some(k) = &kind
            && EventType::parse(k).is_none()
        {
            return Err(ApiError::bad_request(format!(
                "type: unknown type \"{k}\"; expected one of {}",
                EventType::names().join(", ")
            )));
        }
        let limit = parse_limit(&self.limit)?;
        let flagged_only = parse_flagged(&self.flagged)?;
        let search = non_empty(&self.q);
        if let Some(q) = &search
            && q.chars().count() > SEARCH_MAX_CHARS
        {
            return Err(ApiError::bad_request(format!(
                "q: the search is {} characters long; at most {SEARCH_MAX_CHARS} are searched",
                q.chars().count()
            )));
        }
        let min_amount = parse_amount("min_amount", &self.min_amount)?;
        let max_amount = parse_amount("max_amount", &self.max_amount)?;
        if let (Some(min), Some(max)) = (min_amount, max_amount)
            && min > max
        {
            return Err(ApiError::bad_request(format!(
                "max_amount: {max} is less than min_amount {min}, so no event could match"
            )));
        }
        let bookmark_state = match non_empty(&self.state) {
            Some(s) => Some(BookmarkState::parse(&s).ok_or_else(|| {
                ApiError::bad_request(format!(
                    "state: unknown bookmark state \"{s}\"; expected pending, made or failed"
                ))
            })?),
            None => None,
        };
        let case = match non_empty(&self.case) {
            Some(c) => Some(CaseFilter::parse(&c).ok_or_else(|| {
                ApiError::bad_request(format!(
                    "case: unknown case filter \"{c}\"; expected open, closed or any"
                ))
            })?),
            None => None,
        };
        let exception = match non_empty(&self.exception) {
            Some(e) if e == "any" || crate::event::is_valid_id(&e) => ExceptionFilter::parse(&e),
            Some(e) => {
                return Err(ApiError::bad_request(format!(
                    "exception: \"{e}\" is neither any nor a rule id"
                )));
            }
            None => None,
        };
        let severity = match non_empty(&self.severity) {
            Some(s) => Some(Severity::parse(&s).ok_or_else(|| {
                ApiError::bad_request(format!(
                    "severity: unknown severity \"{s}\"; expected high, medium or low"
                ))
            })?),
            None => None,
        };
        let before = match non_empty(&self.before) {
            Some(cursor) => Some(parse_cursor(&cursor)?),
            None => None,
        };
        Ok(EventQuery {
            scope,
            store: non_empty(&self.store),
            register: non_empty(&self.register),
            kind,
            cashier: non_empty(&self.cashier),
            transaction: non_empty(&self.txn),
            from_ms: non_empty(&self.from)
                .map(|f| parse_bound("from", &f))
                .transpose()?,
            to_ms: non_empty(&self.to)
                .map(|t| parse_bound("to", &t))
                .transpose()?,
            days: Vec::new(),
            flagged_only,
            severity,
            search,
            min_amount,
            max_amount,
            currency: None,
            bookmark_state,
            case,
            exception,
            stored_before: None,
            before,
            limit,
        })
    }
}

/// `flagged`: `true`, `1` or `on` (what a checked checkbox sends); absent, `false` or `0`.
/// The most rows one API answer lists; a script pages on for more.
pub(super) const API_LIMIT_MAX: i64 = 1000;

/// `limit`: 1 to [`API_LIMIT_MAX`], 100 when not given.
pub(super) fn parse_limit(v: &Option<String>) -> Result<i64, ApiError> {
    match non_empty(v) {
        Some(l) => l
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=API_LIMIT_MAX).contains(n))
            .ok_or_else(|| {
                ApiError::bad_request(format!(
                    "limit: \"{l}\" must be a number from 1 to {API_LIMIT_MAX}"
                ))
            }),
        None => Ok(100),
    }
}

pub(super) fn parse_flagged(v: &Option<String>) -> Result<bool, ApiError> {
    parse_switch("flagged", v)
}

/// A yes-or-no parameter: `true`, `1` or `on`; `false`, `0` or absent.
pub(super) fn parse_switch(name: &str, v: &Option<String>) -> Result<bool, ApiError> {
    match non_empty(v).as_deref() {
        None | Some("false") | Some("0") => Ok(false),
        Some("true") | Some("1") | Some("on") => Ok(true),
        Some(other) => Err(ApiError::bad_request(format!(
            "{name}: \"{other}\" must be true or false"
        ))),
    }
}

/// An amount bound: a whole number in the currency's minor unit (yen, cents), as events carry it.
fn parse_amount(name: &str, v: &Option<String>) -> Result<Option<i64>, ApiError> {
    non_empty(v)
        .map(|text| {
            text.parse::<i64>().map_err(|_| {
                ApiError::bad_request(format!(
                    "{name}: \"{text}\" is not a whole number; amounts are in the currency's minor unit (yen, cents)"
                ))
            })
        })
        .transpose()
}

/// The cursor of the next page: `<at_ms>.<seq>` of the last event shown.
pub fn cursor(at_ms: i64, seq: i64) -> String {
    format!("{at_ms}.{seq}")
}

fn parse_cursor(text: &str) -> Result<(i64, i64), ApiError> {
    text.split_once('.')
        .and_then(|(a, s)| Some((a.parse().ok()?, s.parse().ok()?)))
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "before: \"{text}\" is not a cursor from a previous page"
            ))
        })
}

/// Writes a read of events through the API to the audit log: who, what they asked (decoded, with any card
/// number typed into it masked) and how many rows they got. A person's pages are not logged read by read; a
/// script's reads are how data leaves in bulk.
async fn audit_read(
    state: &AppState,
    viewer: &Viewer,
    path: &str,
    query: Option<&str>,
    rows: usize,
) {
    let asked = query
        .map(|q| {
            let decoded: Vec<String> = url::form_urlencoded::parse(q.as_bytes())
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            format!("{path}?{}", decoded.join("&"))
        })
        .unwrap_or_else(|| path.to_string());
    let asked = crate::event::mask_card_numbers(&asked).into_owned();
    let detail = match rows {
        1 => "1 event".to_string(),
        n => format!("{n} events"),
    };
    viewer
        .audit(state, "api_read", Some(asked), Some(detail))
        .await;
}

pub async fn events(
    State(state): State<AppState>,
    Signed(viewer, _): Signed<Events>,
    RawQuery(raw): RawQuery,
    Query(mut params): Query<EventParams>,
) -> Result<Json<Value>, ApiError> {
    let stores = viewer.stores(&state.config);
    params.store = non_empty(&params.store).map(|s| store_id(&state.config, &stores, &s));
    let mut query = params.to_query(viewer.scope())?;
    query.days = parse_day(
        &params.day,
        &stores,
        query.store.as_deref(),
        crate::clock::now_ms(),
    )?;
    let events = state.store.events(&query).await?;
    audit_read(&state, &viewer, "/api/events", raw.as_deref(), events.len()).await;
    let next = if events.len() as i64 == query.limit {
        events.last().map(|e| cursor(e.at_ms, e.seq))
    } else {
        None
    };
    let events: Vec<_> = events
        .into_iter()
        .map(|e| event_view(&state.config, &state.integrations, e))
        .collect();
    Ok(Json(json!({ "events": events, "next": next })))
}

pub async fn event(
    State(state): State<AppState>,
    Signed(viewer, _): Signed<Events>,
    Path(seq): Path<i64>,
) -> Result<Json<Value>, ApiError> {
    let event = state
        .store
        .event(seq, &viewer.scope())
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no event {seq}")))?;
    audit_read(&state, &viewer, &format!("/api/events/{seq}"), None, 1).await;
    let history = match &event.case {
        Some(_) => state
            .store
            .case(seq, &viewer.scope())
            .await?
            .map(|c| c.history)
            .unwrap_or_default(),
        None => Vec::new(),
    };
    Ok(Json(json!({
        "event": event_view(&state.config, &state.integrations, event),
        "case_history": history,
    })))
}

#[derive(Debug, Default, Deserialize)]
pub struct DeadLetterParams {
    pub limit: Option<String>,
    /// Dismissed letters too: `true`; by default only those not dismissed.
    pub dismissed: Option<String>,
}

/// Newest first, each with the payload's size and SHA-256 and the beginning of its masked text (`raw`,
/// `raw_complete` false when there is more); a bad parameter answers 400 like `/api/events`.
pub async fn dead_letters(
    State(state): State<AppState>,
    Signed(_, _): Signed<DeadLetters>,
    params: Result<Query<DeadLetterParams>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(params) =
        params.map_err(|e| ApiError::bad_request(format!("bad query: {}", e.body_text())))?;
    let query = DeadLetterQuery {
        include_dismissed: parse_switch("dismissed", &params.dismissed)?,
        limit: parse_limit(&params.limit)?,
    };
    let list: Vec<Value> = state
        .store
        .dead_letters(&query)
        .await?
        .into_iter()
        .map(|d| {
            json!({
                "id": d.id,
                "received_at": iso_utc(d.received_ms),
                "topic": d.topic,
                "reason": d.reason,
                "size": d.size,
                "sha256": d.sha256,
                "raw_complete": !d.raw_is_partial(),
                "raw": d.raw,
                "dismissed": d.dismissed.map(|x| json!({ "at": iso_utc(x.at_ms), "by": x.by })),
            })
        })
        .collect();
    Ok(Json(json!({ "dead_letters": list })))
}

/// `/api/exceptions`'s query.
#[derive(Debug, Default, Deserialize)]
pub struct ExceptionParams {
    pub rule: Option<String>,
    pub store: Option<String>,
    pub severity: Option<String>,
    pub limit: Option<String>,
}

/// How far back `/api/exceptions` counts each rule's exceptions.
const COUNTED_MS: i64 = 30 * 86_400_000;

/// What the rules found in the reader's stores, newest event first, and each rule's count over the last 30
/// days; a bad parameter answers 400 like `/api/events`.
pub async fn exceptions(
    State(state): State<AppState>,
    Signed(viewer, _): Signed<Events>,
    RawQuery(raw): RawQuery,
    params: Result<Query<ExceptionParams>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(params) =
        params.map_err(|e| ApiError::bad_request(format!("bad query: {}", e.body_text())))?;
    let rule = non_empty(&params.rule);
    if let Some(r) = &rule
        && !crate::event::is_valid_id(r)
    {
        return Err(ApiError::bad_request(format!(
            "rule: \"{r}\" is not a rule id"
        )));
    }
    let severity = match non_empty(&params.severity) {
        Some(s) => Some(Severity::parse(&s).ok_or_else(|| {
            ApiError::bad_request(format!(
                "severity: unknown severity \"{s}\"; expected high, medium or low"
            ))
        })?),
        None => None,
    };
    let scope = viewer.scope();
    let query = ExceptionQuery {
        scope: scope.clone(),
        rule,
        store: non_empty(&params.store),
        severity,
        limit: parse_limit(&params.limit)?,
        ..ExceptionQuery::default()
    };
    let mut list = state.store.exceptions(&query).await?;
    // `why` stays the English sentence it always was, whatever language the request asks for.
    for x in &mut list {
        x.why = crate::rules::english_why(&x.why);
    }
    // An exception names its event's store, register, type and amount: read in bulk like the events.
    audit_read(
        &state,
        &viewer,
        "/api/exceptions",
        raw.as_deref(),
        list.len(),
    )
    .await;
    let counts: serde_json::Map<String, Value> = state
        .store
        .exception_counts(&scope, crate::clock::now_ms() - COUNTED_MS)
        .await?
        .into_iter()
        .map(|(rule, n)| (rule, json!(n)))
        .collect();
    Ok(Json(json!({ "exceptions": list, "counts_30d": counts })))
}

/// 200 while events can arrive and the database answers; 503 otherwise, so monitoring can alert, with what
/// is wrong: the broker, or the database failing intake or delivery (full, unreachable, damaged).
pub async fn healthz(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let receiving = state.intake.receiving();
    let mut problems = state.health.problems();
    let counts = match state.store.counts(&StoreScope::All).await {
        Ok(counts) => Some(counts),
        Err(e) => {
            state.health.failed("web", &e);
            problems = state.health.problems();
            None
        }
    };
    if counts.is_some() {
        state.health.answered("web");
        problems.retain(|p| p.part != "web");
    }
    let status_text = match (problems.first(), receiving) {
        (Some(p), _) => format!("database failing {}: {}", p.part, p.advice),
        (None, false) => {
            "not receiving events: the MQTT broker is unreachable or the subscription is missing"
                .into()
        }
        (None, true) => "ok".into(),
    };
    let status = if receiving && problems.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let counts = counts.unwrap_or_default();
    // What the alerts could not deliver: no reason to call the daemon unhealthy, but an operator's to fix.
    let alerts = match state.store.alert_trouble().await {
        Ok(t) => json!({
            "failed": t.failed,
            "retrying": t.retrying,
            "newest_error": t.newest.map(|(alert, error)| json!({"alert": alert, "error": error})),
        }),
        Err(e) => {
            tracing::warn!(error = %e, "Cannot read the alert outbox for /healthz.");
            Value::Null
        }
    };
    let database: Vec<Value> = problems
        .iter()
        .map(|p| {
            json!({ "part": p.part, "kind": p.kind, "since": iso_utc(p.since_ms), "attempts": p.attempts,
                    "advice": p.advice, "error": p.error })
        })
        .collect();
    (
        status,
        Json(json!({
            "status": status_text,
            "mqtt": { "connected": state.intake.connected(), "receiving": receiving, "error": state.intake.last_error() },
            "database": { "ok": database.is_empty(), "problems": database },
            "events": counts.events,
            "bookmarks_pending": counts.pending,
            "bookmarks_failed": counts.failed,
            "dead_letters": counts.dead_letters,
            "last_received_at": counts.last_received_ms.map(iso_utc),
            "alerts": alerts,
        })),
    )
}
