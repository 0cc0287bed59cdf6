//! The pages people use: the event list with its filters (`/`), one event with its bookmarks and their attempts
//! (`/events/{seq}`), the integrations page, the templates every page renders with, and their stylesheet.
//!
//! Templates and stylesheet are compiled into the binary, so the daemon serves them from any directory.
//! Everything a register sends is untrusted text: templates are auto-escaped and pages carry a Content-Security-
//! Policy that allows no script at all. The words a person reads are messages of the catalogs in `web/i18n`
//! (see [`super::i18n`]), in Japanese or English; this module hands the templates data: times already in the
//! right zone, amounts already formatted. Left in English: what only an edited address can be refused for (in
//! the API's words), why a message was dead-lettered (the daemon's words, as in its log), camera systems'
//! own errors, and the plain-text answer when a template itself fails.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::LazyLock;

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use minijinja::{Environment, UndefinedBehavior, Value, context};
use serde::Serialize;

use super::AppState;
use super::api::{
    EventParams, SEARCH_MAX_CHARS, cursor, non_empty, parse_bound, parse_day, parse_flagged,
    store_id,
};
use super::auth::{Events, Integrations as IntegrationsAccess, Signed, Viewer};
use super::error::ApiError;
use super::format::{self, FALLBACK, LocalTimeError, SKEW_WARNING_MS, Zone, ZoneLabel};
use super::i18n::{event_label, type_label};
use super::view::{BookmarkView, CameraFootage, EventView, event_cameras, event_view};
use crate::camera::Integrations;
use crate::clock::now_ms;
use crate::config::Config;
use crate::event::{EventType, Lateness, Timing, median_skew, timing};
use crate::money::{AmountError, TypedAmount, format_amount, parse_amount};
use crate::store::{
    AttemptRecord, CASE_TEXT_MAX_CHARS, CaseRecord, CaseState, ErrorKind, EventQuery, EventRecord,
    ExceptionQuery, StoreError, StoreScope,
};

use super::cases::CaseForm;

pub(super) const TEMPLATES: [(&str, &str); 15] = [
    ("login.html", include_str!("../../web/templates/login.html")),
    (
        "password.html",
        include_str!("../../web/templates/password.html"),
    ),
    ("audit.html", include_str!("../../web/templates/audit.html")),
    (
        "tokens.html",
        include_str!("../../web/templates/tokens.html"),
    ),
    (
        "people.html",
        include_str!("../../web/templates/people.html"),
    ),
    (
        "cashiers.html",
        include_str!("../../web/templates/cashiers.html"),
    ),
    (
        "exceptions.html",
        include_str!("../../web/templates/exceptions.html"),
    ),
    (
        "timeline.html",
        include_str!("../../web/templates/timeline.html"),
    ),
    (
        "integrations.html",
        include_str!("../../web/templates/integrations.html"),
    ),
    ("base.html", include_str!("../../web/templates/base.html")),
    (
        "macros.html",
        include_str!("../../web/templates/macros.html"),
    ),
    (
        "events.html",
        include_str!("../../web/templates/events.html"),
    ),
    ("event.html", include_str!("../../web/templates/event.html")),
    (
        "dead_letters.html",
        include_str!("../../web/templates/dead_letters.html"),
    ),
    ("error.html", include_str!("../../web/templates/error.html")),
];

const STYLE: &str = include_str!("../../web/static/style.css");

/// No script, no inline style, nothing from elsewhere; forms post only here; no framing.
const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; \
                   frame-ancestors 'none'; base-uri 'none'";

/// The stylesheet's address carries a hash of its content, so browsers may keep it forever and still get a new
/// one with a new build.
static STYLE_HREF: LazyLock<String> = LazyLock::new(|| {
    let mut hasher = DefaultHasher::new();
    STYLE.hash(&mut hasher);
    format!("/static/style.css?v={:016x}", hasher.finish())
});

static TEMPLATE_ENV: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    // A misspelt variable fails the render (and the tests) instead of printing nothing.
    env.set_undefined_behavior(UndefinedBehavior::SemiStrict);
    // Our own constant: written as is, not entity-escaped like text from a register.
    env.add_global("style_href", Value::from_safe_string(STYLE_HREF.clone()));
    env.add_global("case_text_max", CASE_TEXT_MAX_CHARS);
    env.add_function("t", super::i18n::t);
    env.add_function("lang", super::i18n::lang);
    env.add_function("switch_to", super::i18n::switch_to);
    for (name, source) in TEMPLATES {
        if let Err(e) = env.add_template(name, source) {
            tracing::error!(template = name, error = %e, "A page template does not compile; its pages answer 500.");
        }
    }
    env
});

pub(super) async fn security_headers(
    State(state): State<AppState>,
    mut response: Response,
) -> Response {
    let headers = response.headers_mut();
    // Over TLS, a browser that has seen the index once never tries it over plain HTTP again, where a sign-in
    // could be read or changed on the way (a year, as browsers' preload lists expect).
    if state.config.web.served_over_tls() {
        headers.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        );
    }
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // Footage links name the recorder and the moment: they must not leak to another site.
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    // Pages are evidence and change by the second; only the stylesheet sets a cache policy of its own.
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}

pub(super) async fn style() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
        ],
        STYLE,
    )
}

pub(super) fn render(status: StatusCode, name: &str, ctx: Value) -> Response {
    match TEMPLATE_ENV.get_template(name).and_then(|t| t.render(ctx)) {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => {
            tracing::error!(
                template = name,
                error = format!("{e:#}"),
                "A page could not be rendered."
            );
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                super::i18n::text("problem.not_rendered"),
            )
                .into_response()
        }
    }
}

/// The header's and footer's counts, and who is signed in.
#[derive(Debug, Serialize)]
pub(super) struct Nav {
    user: String,
    role: &'static str,
    /// For the sign-out form.
    csrf: Option<String>,
    /// Which parts of the index the header links to.
    events_access: bool,
    cases_access: bool,
    integrations_access: bool,
    dead_letters_access: bool,
    audit_access: bool,
    tokens_access: bool,
    people_access: bool,
    events: i64,
    pending: i64,
    failed: i64,
    dead_letters: i64,
    /// Events the search indexes do not hold yet: the events list says so while there are any.
    unindexed: i64,
    last_received: Option<String>,
    zone: ZoneLabel,
}

pub(super) async fn nav(state: &AppState, viewer: &Viewer) -> Result<Nav, PageError> {
    use super::auth::Access;
    let c = state.store.counts(&viewer.scope()).await?;
    let zone = viewer.zone(&state.config);
    Ok(Nav {
        user: viewer.user.name.clone(),
        role: viewer.user.role.as_str(),
        csrf: viewer.csrf.clone(),
        events_access: viewer.may(Access::Events),
        cases_access: viewer.may(Access::Cases),
        integrations_access: viewer.may(Access::Integrations),
        dead_letters_access: viewer.may(Access::DeadLetters),
        audit_access: viewer.may(Access::Audit),
        tokens_access: viewer.may(Access::Tokens),
        people_access: viewer.may(Access::People),
        events: c.events,
        pending: c.pending,
        failed: c.failed,
        // Not `c.dead_letters`: an integrator's scope has no store, and dead letters belong to none.
        dead_letters: if viewer.may(Access::DeadLetters) {
            state.store.dead_letter_totals().await?.open()
        } else {
            0
        },
        unindexed: c.unindexed,
        last_received: c.last_received_ms.map(|ms| zone.datetime(ms)),
        zone: zone.label(c.last_received_ms.unwrap_or_else(now_ms)),
    })
}

/// A page that could not be shown as asked; `problem` picks the template's sentence.
#[derive(Debug)]
pub struct PageError {
    status: StatusCode,
    problem: &'static str,
    detail: Option<String>,
    nav: Option<Nav>,
}

impl PageError {
    /// Something the person cannot fix, already logged by the caller: the page says to try again later.
    pub(super) fn unavailable() -> Self {
        PageError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            problem: "unavailable",
            detail: None,
            nav: None,
        }
    }

    fn not_found(what: String, nav: Nav) -> Self {
        PageError {
            status: StatusCode::NOT_FOUND,
            problem: "no_event",
            detail: Some(what),
            nav: Some(nav),
        }
    }
}

impl From<StoreError> for PageError {
    fn from(e: StoreError) -> Self {
        // ApiError logs the cause once; the page gives the user one sentence and no internals.
        let kind = e.kind();
        let api = ApiError::from(e);
        PageError {
            status: api.status,
            problem: match kind {
                ErrorKind::Unavailable => "unavailable",
                ErrorKind::Full => "full",
                ErrorKind::Conflict => "conflict",
                ErrorKind::Corrupt => "corrupt",
            },
            detail: None,
            nav: None,
        }
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        render(
            self.status,
            "error.html",
            context! { page => "error", problem => self.problem, detail => self.detail, nav => self.nav },
        )
    }
}

/// One event as the pages show it: the API's view plus what a person reads (local times, labels, amounts).
#[derive(Debug, Serialize)]
struct EventPage {
    e: EventView,
    time: String,
    zone: ZoneLabel,
    received: String,
    skew: String,
    skew_high: bool,
    /// How late it arrived and why, when it did not arrive live: then the skew row is not shown, since a
    /// late message says nothing about the register's clock.
    late: Option<Late>,
    /// Its register's recent skew: the event page reads it; the list leaves it out.
    register_clock: Option<RegisterClock>,
    type_label: String,
    store_name: String,
    store_known: bool,
    amount: Option<String>,
    /// In the register's order, values as text.
    attributes: Vec<(String, String)>,
    marks: Vec<Mark>,
    /// Its footage camera by camera: what the event page shows first.
    cameras: Vec<CameraFootage>,
    /// The timeline of its register from five minutes before to five minutes after it, when its store is in
    /// the config (the timeline reads no other).
    timeline: Option<String>,
    /// The list of every event of its transaction at its store, when it has a transaction.
    same_transaction: Option<String>,
    /// The zone its times are shown in, for what the page adds (its case).
    #[serde(skip)]
    tz: Zone,
}

#[derive(Debug, Serialize)]
struct Late {
    text: String,
    why: Lateness,
}

/// A register's clock as its recent live events measure it: the event page and the timeline show it, and warn
/// past 2 s.
#[derive(Debug, Serialize)]
pub(super) struct RegisterClock {
    text: String,
    n: usize,
    high: bool,
}

/// How many of a register's newest events its clock's median skew is read from.
const CLOCK_SAMPLE: i64 = 50;

/// A register's clock as its recent live events measure it; `None` when none of them arrived live.
pub(super) async fn register_clock(
    state: &AppState,
    scope: &StoreScope,
    store: &str,
    register: &str,
) -> Result<Option<RegisterClock>, StoreError> {
    let timings = state
        .store
        .register_timings(scope, store, register, CLOCK_SAMPLE)
        .await?;
    let median = median_skew(
        timings
            .into_iter()
            .map(|(at, sent, received)| timing(at, sent, received)),
    );
    Ok(median.map(|(skew_ms, n)| RegisterClock {
        text: format::skew(skew_ms),
        n,
        high: skew_high(skew_ms),
    }))
}

fn skew_high(skew_ms: i64) -> bool {
    skew_ms.unsigned_abs() > SKEW_WARNING_MS.unsigned_abs()
}

/// One bookmark of an event, its times in the event's zone.
#[derive(Debug, Serialize)]
struct Mark {
    b: BookmarkView,
    /// `nx-witness`, `webhook`; `None` when the system left the config.
    integration: Option<String>,
    start: String,
    end: String,
    next_attempt: Option<String>,
    made: Option<String>,
    history: Vec<Attempt>,
}

#[derive(Debug, Serialize)]
struct Attempt {
    at: String,
    outcome: String,
    detail: Option<String>,
}

/// How far either side of an event its page's timeline link reaches: the minutes in which a drawer left open,
/// a no-sale or a void before or after it are part of the same story.
const AROUND_MS: i64 = 5 * 60_000;

/// `attempts`: each bookmark's history by bookmark id, for the event page; the list passes none.
fn event_page(
    config: &Config,
    integrations: &Integrations,
    record: EventRecord,
    mut attempts: HashMap<i64, Vec<AttemptRecord>>,
) -> EventPage {
    let zone = Zone::of_event(config, &record.store, &record.at);
    let store = config.store(&record.store);
    let (at_ms, received_ms) = (record.at_ms, record.received_ms);
    let cameras = event_cameras(config, integrations, &record);
    let timeline = store.map(|s| {
        super::timeline::href(
            "/timeline",
            &s.id,
            &record.register,
            Zone::Named(s.timezone),
            at_ms - AROUND_MS,
            at_ms + AROUND_MS,
        )
    });
    let same_transaction = record
        .transaction
        .as_deref()
        .filter(|t| !t.trim().is_empty())
        .map(|txn| {
            let query = url::form_urlencoded::Serializer::new(String::new())
                .append_pair("store", &record.store)
                .append_pair("txn", txn)
                .finish();
            format!("/?{query}")
        });
    let mut e = event_view(config, integrations, record);
    let marks = std::mem::take(&mut e.bookmarks)
        .into_iter()
        .map(|b| {
            let r = &b.bookmark;
            Mark {
                integration: config
                    .camera_system(&r.system)
                    .map(|s| s.integration.name().to_string()),
                start: zone.datetime(r.start_ms),
                end: zone.span_end(r.start_ms, r.start_ms.saturating_add(r.duration_ms)),
                next_attempt: r.next_attempt_ms.map(|ms| zone.datetime(ms)),
                made: r.made_ms.map(|ms| zone.datetime(ms)),
                history: attempts
                    .remove(&r.id)
                    .unwrap_or_default()
                    .into_iter()
                    .map(|a| Attempt {
                        at: zone.datetime(a.at_ms),
                        outcome: a.outcome,
                        detail: a.detail,
                    })
                    .collect(),
                b,
            }
        })
        .collect();
    EventPage {
        time: zone.datetime(at_ms),
        zone: zone.label(at_ms),
        received: zone.datetime(received_ms),
        skew: format::skew(e.skew_ms),
        skew_high: e.arrival.skew_ms().is_some_and(skew_high),
        late: match e.arrival {
            Timing::Late { late_ms, why } => Some(Late {
                text: format::late(late_ms),
                why,
            }),
            Timing::Live { .. } => None,
        },
        register_clock: None,
        type_label: event_label(&e.event.kind, e.event.flagged),
        store_name: store
            .map(|s| s.name.clone())
            .unwrap_or_else(|| e.event.store.clone()),
        store_known: store.is_some(),
        amount: e
            .event
            .amount
            .map(|a| format_amount(a, e.event.currency.as_deref())),
        attributes: e
            .event
            .attributes
            .iter()
            .map(|(k, v)| {
                let text = match v {
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                (k.clone(), text)
            })
            .collect(),
        marks,
        cameras,
        timeline,
        same_transaction,
        tz: zone,
        e,
    }
}

/// A filter the list cannot apply; the template words it.
#[derive(Debug, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Problem {
    /// `from` or `to` is neither a wall time nor RFC 3339.
    Time {
        field: &'static str,
        value: String,
        error: LocalTimeError,
    },
    /// An amount that cannot be read as the currency writes it.
    Amount {
        field: &'static str,
        value: String,
        error: AmountError,
    },
    /// The amount range runs backwards (as typed).
    AmountOrder { min: String, max: String },
    /// Longer than a search is read.
    SearchLength { max: usize },
    /// Refused by the API's own checks, in its words: what only an edited address can send (an unknown
    /// type or state, a limit, a cursor).
    Filter { message: String },
    /// The query string itself cannot be read (a field given twice, say).
    Unreadable { message: String },
}

/// The form as the user left it, to show it again.
#[derive(Debug, Default, Serialize)]
struct Form {
    store: String,
    register: String,
    #[serde(rename = "type")]
    kind: String,
    cashier: String,
    txn: String,
    from: String,
    to: String,
    /// The zone `from` and `to` are written in, sent back with them.
    tz: String,
    /// Only each store's today.
    today: bool,
    flagged: bool,
    severity: String,
    q: String,
    min_amount: String,
    max_amount: String,
    state: String,
    case: String,
    exception: String,
    limit: String,
}

#[derive(Debug, Serialize)]
struct TypeOption {
    value: &'static str,
    label: String,
    flagged: bool,
}

#[derive(Debug, Serialize)]
struct StoreOption<'a> {
    id: &'a str,
    name: &'a str,
}

/// One store's quick links to tonight's voids, refunds and no-sales.
#[derive(Debug, Serialize)]
struct Tonight {
    name: String,
    /// Its local midnight, as the form shows times.
    since: String,
    links: Vec<QuickLink>,
}

#[derive(Debug, Serialize)]
struct QuickLink {
    label: String,
    href: String,
}

/// "Tonight" is since the store's local 00:00 today: a shift that runs past midnight starts a new list, which
/// is when an owner closing up looks, and the same day the "today" preset means.
fn tonight(store: &crate::config::StoreConfig, now: i64) -> Tonight {
    let since = Zone::Named(store.timezone).day_start_input(now);
    let links = ["void", "refund", "no_sale"]
        .into_iter()
        .map(|kind| {
            let query = url::form_urlencoded::Serializer::new(String::new())
                .append_pair("store", &store.id)
                .append_pair("type", kind)
                .append_pair("from", &since)
                .finish();
            QuickLink {
                label: type_label(kind),
                href: format!("/?{query}"),
            }
        })
        .collect();
    Tonight {
        name: store.name.clone(),
        since: since.replace('T', " "),
        links,
    }
}

/// A time bound from the form: a wall time in `zone` (what `datetime-local` sends), or what the API takes.
fn read_bound(
    zone: Zone,
    field: &'static str,
    text: &Option<String>,
) -> Result<Option<i64>, Problem> {
    let Some(text) = non_empty(text) else {
        return Ok(None);
    };
    if let Ok(ms) = parse_bound(field, &text) {
        return Ok(Some(ms));
    }
    zone.parse_local(&text)
        .map(Some)
        .map_err(|error| Problem::Time {
            field,
            value: text,
            error,
        })
}

/// The list's address with the same filters, and optionally a page cursor.
fn list_href(params: &EventParams, before: Option<&str>) -> String {
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    let fields = [
        ("store", &params.store),
        ("register", &params.register),
        ("type", &params.kind),
        ("cashier", &params.cashier),
        ("txn", &params.txn),
        ("from", &params.from),
        ("to", &params.to),
        ("flagged", &params.flagged),
        ("severity", &params.severity),
        ("q", &params.q),
        ("min_amount", &params.min_amount),
        ("max_amount", &params.max_amount),
        ("state", &params.state),
        ("case", &params.case),
        ("exception", &params.exception),
        ("limit", &params.limit),
        ("day", &params.day),
        ("tz", &params.tz),
    ];
    for (name, value) in fields {
        if let Some(v) = non_empty(value) {
            query.append_pair(name, &v);
        }
    }
    if let Some(b) = before {
        query.append_pair("before", b);
    }
    let query = query.finish();
    if query.is_empty() {
        "/".into()
    } else {
        format!("/?{query}")
    }
}

/// One page of events, and the cursor of the next when older events exist.
async fn list(
    state: &AppState,
    query: &EventQuery,
) -> Result<(Vec<EventRecord>, Option<String>), StoreError> {
    let events = state.store.events(query).await?;
    let next = match events.last() {
        // A full page may be the last one: look for one older event so "older" never leads to an empty page.
        Some(last) if events.len() as i64 >= query.limit => {
            let probe = EventQuery {
                before: Some((last.at_ms, last.seq)),
                limit: 1,
                ..query.clone()
            };
            let more = !state.store.events(&probe).await?.is_empty();
            more.then(|| cursor(last.at_ms, last.seq))
        }
        _ => None,
    };
    Ok((events, next))
}

/// How far back the filters look for the registers, cashiers and currencies they offer.
const SEEN_WITHIN_MS: i64 = 90 * 86_400_000;
/// The most registers or cashiers a filter offers.
const SEEN_MAX: i64 = 500;

/// An amount bound from the form, as the pages write amounts (`1,280`, `¥1,280`, `42.50`), in the currency
/// the text names or else `assumed`.
fn read_amount(
    field: &'static str,
    text: &Option<String>,
    assumed: Option<&str>,
) -> Result<Option<TypedAmount>, Problem> {
    let Some(text) = non_empty(text) else {
        return Ok(None);
    };
    parse_amount(&text, assumed)
        .map(Some)
        .map_err(|error| Problem::Amount {
            field,
            value: text,
            error,
        })
}

pub async fn events(
    State(state): State<AppState>,
    Signed(viewer, _): Signed<Events>,
    params: Result<Query<EventParams>, QueryRejection>,
) -> Result<Response, PageError> {
    let nav = nav(&state, &viewer).await?;
    let mut problems = Vec::new();
    let params = match params {
        Ok(Query(p)) => p,
        Err(e) => {
            problems.push(Problem::Unreadable {
                message: e.body_text(),
            });
            EventParams::default()
        }
    };
    let config = &state.config;
    let now = now_ms();
    let my_stores = viewer.stores(config);
    // A store is chosen by its id or typed by its name; the id is what is kept.
    let store = non_empty(&params.store).map(|s| store_id(config, &my_stores, &s));
    let params = EventParams {
        store: store.clone(),
        ..params
    };
    // Without a store, times are read in the zone the person's stores share, so a chain in one country
    // never types UTC; across zones, in the person's own.
    let shared = Zone::shared_by(my_stores.iter().copied());
    let mine = viewer.zone(config);
    let form_store = store.as_deref().and_then(|id| config.store(id));
    let zone = match form_store {
        Some(s) => Zone::Named(s.timezone),
        None if store.is_none() && shared != FALLBACK => shared,
        None if store.is_none() => mine,
        None => FALLBACK,
    };
    // From and to are read in the zone the form showed them in: choosing another store keeps the moments
    // the person saw, shown again on the new store's clock.
    let read_zone = non_empty(&params.tz)
        .and_then(|z| Zone::named(&z))
        .unwrap_or(zone);

    let from = read_bound(read_zone, "from", &params.from);
    let to = read_bound(read_zone, "to", &params.to);
    // Shown again as the input expects it; a bound that does not parse is shown as typed, next to its error.
    let shown = |bound: &Result<Option<i64>, Problem>, typed: &Option<String>| match bound {
        Ok(Some(ms)) => zone.input_value(*ms),
        _ => typed.clone().unwrap_or_default(),
    };
    let day = non_empty(&params.day);
    let form = Form {
        store: params.store.clone().unwrap_or_default(),
        register: params.register.clone().unwrap_or_default(),
        kind: params.kind.clone().unwrap_or_default(),
        cashier: params.cashier.clone().unwrap_or_default(),
        txn: params.txn.clone().unwrap_or_default(),
        from: shown(&from, &params.from),
        to: shown(&to, &params.to),
        tz: zone.name().unwrap_or_default().to_string(),
        today: day.as_deref() == Some("today"),
        // An unreadable value leaves the box unticked; to_query reports it.
        flagged: parse_flagged(&params.flagged).unwrap_or(false),
        severity: params.severity.clone().unwrap_or_default(),
        q: params.q.clone().unwrap_or_default(),
        min_amount: params.min_amount.clone().unwrap_or_default(),
        max_amount: params.max_amount.clone().unwrap_or_default(),
        state: params.state.clone().unwrap_or_default(),
        case: params.case.clone().unwrap_or_default(),
        exception: params.exception.clone().unwrap_or_default(),
        limit: params.limit.clone().unwrap_or_default(),
    };
    let mut as_ms = |bound: Result<Option<i64>, Problem>| match bound {
        Ok(ms) => ms.map(|ms| ms.to_string()),
        Err(p) => {
            problems.push(p);
            None
        }
    };
    let from = as_ms(from);
    let to = as_ms(to);

    // What the filters offer, and the currency amounts are typed in when the events in view have one.
    let seen = state
        .store
        .seen_values(
            &viewer.scope(),
            store.as_deref(),
            now - SEEN_WITHIN_MS,
            SEEN_MAX,
        )
        .await?;
    let assumed = match seen.currencies.as_slice() {
        [one] => Some(one.as_str()),
        _ => None,
    };
    let min = read_amount("min_amount", &params.min_amount, assumed);
    let max = read_amount("max_amount", &params.max_amount, assumed);
    let (min, max) = match (min, max) {
        (Ok(min), Ok(max)) => (min, max),
        (min, max) => {
            problems.extend(min.err());
            problems.extend(max.err());
            (None, None)
        }
    };
    if let (Some(lo), Some(hi)) = (&min, &max)
        && lo.minor > hi.minor
    {
        problems.push(Problem::AmountOrder {
            min: form.min_amount.clone(),
            max: form.max_amount.clone(),
        });
    }
    let currency = min
        .as_ref()
        .or(max.as_ref())
        .and_then(|a| a.currency.clone());
    // The API's checks see the bounds as epoch milliseconds and minor units, already read.
    let checked = EventParams {
        from,
        to,
        min_amount: min.as_ref().map(|a| a.minor.to_string()),
        max_amount: max.as_ref().map(|a| a.minor.to_string()),
        ..params.clone()
    };
    if non_empty(&params.q).is_some_and(|q| q.chars().count() > SEARCH_MAX_CHARS) {
        problems.push(Problem::SearchLength {
            max: SEARCH_MAX_CHARS,
        });
    }
    let days = match parse_day(&params.day, &my_stores, store.as_deref(), now) {
        Ok(days) => days,
        Err(e) => {
            problems.push(Problem::Filter { message: e.message });
            Vec::new()
        }
    };
    let query = match checked.to_query(viewer.scope()) {
        Ok(q) => Some(EventQuery {
            days,
            currency,
            ..q
        }),
        Err(_) if !problems.is_empty() => None,
        Err(e) => {
            problems.push(Problem::Filter { message: e.message });
            None
        }
    };

    let (rows, older) = match query {
        Some(q) if problems.is_empty() => {
            let (records, next) = list(&state, &q).await?;
            let rows: Vec<EventPage> = records
                .into_iter()
                .map(|r| event_page(config, &state.integrations, r, HashMap::new()))
                .collect();
            (rows, next.map(|c| list_href(&params, Some(&c))))
        }
        _ => (Vec::new(), None),
    };
    // One zone for every row is said once, in the column header; a mix is said on each row.
    let common_zone = rows
        .first()
        .map(|r| &r.zone)
        .filter(|z| rows.iter().all(|r| &r.zone == *z));

    let types: Vec<TypeOption> = EventType::ALL
        .iter()
        .map(|t| TypeOption {
            value: t.as_str(),
            label: type_label(t.as_str()),
            flagged: config.bookmarks.types.contains(t),
        })
        .collect();
    let stores: Vec<StoreOption> = my_stores
        .iter()
        .map(|s| StoreOption {
            id: &s.id,
            name: &s.name,
        })
        .collect();
    let form_store = store.as_deref().and_then(|id| config.store(id));
    let now = now_ms();
    let tonight: Vec<Tonight> = viewer
        .stores(config)
        .into_iter()
        .map(|s| tonight(s, now))
        .collect();
    let store_listed = stores.iter().any(|s| s.id == form.store);
    // How many filters are set, on the folded filters' button: a phone shows the list, and says it is narrowed.
    let active_filters = [
        &form.store,
        &form.register,
        &form.kind,
        &form.cashier,
        &form.txn,
        &form.from,
        &form.to,
        &form.min_amount,
        &form.max_amount,
        &form.state,
        &form.case,
        &form.exception,
    ]
    .iter()
    .filter(|v| !v.is_empty())
    .count()
        + usize::from(form.flagged)
        + usize::from(form.today);
    let amount_example = assumed.map(|c| format_amount(1280, Some(c)));
    let status = if problems.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::BAD_REQUEST
    };
    Ok(render(
        status,
        "events.html",
        context! {
            // The list of open cases is a place of its own in the header.
            page => if form.case == "open" { "cases" } else { "events" },
            nav,
            f => form,
            rules => config.rules.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
            types,
            stores,
            store_listed,
            active_filters,
            amount_example,
            registers => seen.registers,
            cashiers => seen.cashiers,
            form_zone => zone.label(now),
            form_store => form_store.map(|s| &s.name),
            form_store_unknown => store.is_some() && form_store.is_none(),
            shared_zone => store.is_none() && shared != FALLBACK,
            high_only => "/?severity=high",
            tonight,
            // Stores in several zones, none chosen: from and to are in the person's zone.
            own_zone => store.is_none() && shared == FALLBACK && my_stores.len() > 1,
            today_flagged => "/?flagged=true&day=today",
            problems,
            rows,
            common_zone,
            paged => non_empty(&params.before).is_some(),
            older,
            newest => list_href(&params, None),
        },
    ))
}

pub async fn event(
    State(state): State<AppState>,
    Signed(viewer, _): Signed<Events>,
    seq: Result<Path<String>, PathRejection>,
) -> Result<Response, PageError> {
    let text = seq.map(|Path(s)| s).unwrap_or_default();
    event_response(&state, &viewer, &text, StatusCode::OK, None).await
}

/// The event page; `case_form` is a case change that was refused, shown again with its reason and the text
/// as typed, so nothing written is lost.
pub(super) async fn event_response(
    state: &AppState,
    viewer: &Viewer,
    text: &str,
    status: StatusCode,
    case_form: Option<CaseForm>,
) -> Result<Response, PageError> {
    let nav = nav(state, viewer).await?;
    // Another store's event is "not found", exactly as one that does not exist: nothing to guess from.
    let record = match text.parse::<i64>() {
        Ok(seq) => state.store.event(seq, &viewer.scope()).await?,
        Err(_) => None,
    };
    let Some(record) = record else {
        return Err(PageError::not_found(text.to_string(), nav));
    };
    let mut attempts = HashMap::new();
    for b in &record.bookmarks {
        attempts.insert(b.id, state.store.attempts(b.id).await?);
    }
    let case = match &record.case {
        Some(_) => state.store.case(record.seq, &viewer.scope()).await?,
        None => None,
    };
    let clock = register_clock(state, &viewer.scope(), &record.store, &record.register).await?;
    let mut exceptions = state
        .store
        .exceptions(&ExceptionQuery {
            scope: viewer.scope(),
            event_seq: Some(record.seq),
            limit: 100,
            ..ExceptionQuery::default()
        })
        .await?;
    // The reasons in the reader's language: the page is rendered in the request's.
    for x in &mut exceptions {
        x.why = crate::rules::why_text(&x.why);
    }
    let mut page = event_page(&state.config, &state.integrations, record, attempts);
    page.register_clock = clock;
    let case = case.map(|c| case_view(&page, c));
    Ok(render(
        status,
        "event.html",
        context! { page => "event", nav, p => page, case, case_form, exceptions },
    ))
}

/// A case as the event page shows it: times in the event's zone.
#[derive(Debug, Serialize)]
struct CaseView {
    state: CaseState,
    opened: String,
    opened_by: String,
    history: Vec<CaseLine>,
}

#[derive(Debug, Serialize)]
struct CaseLine {
    at: String,
    actor: String,
    action: String,
    outcome: Option<String>,
    text: Option<String>,
}

fn case_view(page: &EventPage, case: CaseRecord) -> CaseView {
    let zone = page.tz;
    CaseView {
        state: case.summary.state,
        opened: zone.datetime(case.summary.opened_ms),
        opened_by: case.summary.opened_by,
        history: case
            .history
            .into_iter()
            .map(|h| CaseLine {
                at: zone.datetime(h.at_ms),
                actor: h.actor,
                action: h.action,
                outcome: h.outcome,
                text: h.text,
            })
            .collect(),
    }
}

/// Where a definition comes from, for the page to say in the reader's language: built in, or a file of
/// the integrations folder, and when that file replaces a built-in, how the hosts it contacts differ.
#[derive(Debug, Serialize)]
struct Source {
    file: Option<String>,
    replaces: bool,
    added: Vec<String>,
    dropped: Vec<String>,
}

impl Source {
    fn of(
        set: &crate::camera::definition::Set,
        def: &crate::camera::definition::Definition,
    ) -> Source {
        let change = set.replaced.get(&def.name);
        Source {
            file: def.source.as_ref().map(|p| p.display().to_string()),
            replaces: change.is_some(),
            added: change.map(|c| c.added.clone()).unwrap_or_default(),
            dropped: change.map(|c| c.dropped.clone()).unwrap_or_default(),
        }
    }
}

/// One camera system as the integrations page shows it.
#[derive(Debug, Serialize)]
struct SystemRow {
    id: String,
    integration: String,
    /// Where its definition comes from; none when it has no valid one.
    definition: Option<Source>,
    pending: i64,
    failed: i64,
    made: i64,
    last_made: Option<String>,
    last_error: Option<String>,
    last_error_at: Option<String>,
    /// The definition's rate limit (`300/min`).
    rate_limit: Option<String>,
    /// Requests its lane may have in flight now, and its usual latency in milliseconds once it has answered.
    limit: usize,
    latency: Option<String>,
}

/// A latency as the integrations page shows it in milliseconds: tenths below ten (`0.4`), whole above (`38`).
fn milliseconds(latency: std::time::Duration) -> String {
    let ms = latency.as_secs_f64() * 1000.0;
    if ms < 10.0 {
        format!("{ms:.1}")
    } else {
        format!("{ms:.0}")
    }
}

/// Camera systems, their definitions, how their bookmarks stand, and what is wrong with any definition file.
pub async fn integrations(
    State(state): State<AppState>,
    Signed(viewer, _): Signed<IntegrationsAccess>,
) -> Result<Response, PageError> {
    let nav = nav(&state, &viewer).await?;
    let zone = viewer.zone(&state.config);
    let stats = state.store.system_stats().await?;
    let set = state.integrations.snapshot();
    let systems: Vec<SystemRow> = state
        .config
        .camera_systems
        .iter()
        .map(|sys| {
            let stat = stats
                .iter()
                .find(|s| s.system == sys.id)
                .cloned()
                .unwrap_or_default();
            let def = set.definitions.get(sys.integration.name());
            let lane = state.lanes.view(&sys.id);
            let definition = def.map(|def| Source::of(&set, def));
            SystemRow {
                id: sys.id.clone(),
                integration: sys.integration.name().to_string(),
                definition,
                pending: stat.pending,
                failed: stat.failed,
                made: stat.made,
                last_made: stat.last_made_ms.map(|ms| zone.datetime(ms)),
                last_error: stat.last_error,
                last_error_at: stat.last_error_ms.map(|ms| zone.datetime(ms)),
                rate_limit: def.and_then(|d| d.rate_limit).map(|r| r.to_string()),
                limit: lane.map_or(1, |l| l.limit),
                latency: lane.and_then(|l| l.latency).map(milliseconds),
            }
        })
        .collect();
    let errors: Vec<String> = set.errors.iter().map(|f| f.to_string()).collect();
    let definitions: Vec<(String, String, Source)> = set
        .definitions
        .values()
        .map(|d| (d.name.clone(), d.title.clone(), Source::of(&set, d)))
        .collect();
    Ok(render(
        StatusCode::OK,
        "integrations.html",
        context! {
            page => "integrations", nav, systems, errors, definitions, zone => zone.label(now_ms()),
            dir => state.integrations.dir().display().to_string(),
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::{TEMPLATE_ENV, TEMPLATES};

    #[test]
    fn every_embedded_template_compiles() {
        for (name, _) in TEMPLATES {
            if let Err(e) = TEMPLATE_ENV.get_template(name) {
                panic!("{name}: {e:#}");
            }
        }
    }
}
