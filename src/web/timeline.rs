//! The shortage timeline (`/timeline`): for one register over a shift, every event that moves cash or undoes a
//! sale, in order, with the cashier on the register at that moment, a footage link on each line, and the
//! amounts summed by type; printable, and as CSV (`/timeline.csv`) for the investigator's report.

use std::collections::BTreeMap;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use minijinja::context;
use serde::{Deserialize, Serialize};

use super::AppState;
use super::auth::{Events, Signed};
use super::format::{LocalTimeError, Zone};
use super::i18n::{event_label, text, type_label};
use super::pages::{PageError, nav, register_clock, render};
use super::view::{CameraFootage, event_cameras};
use crate::camera::Integrations;
use crate::clock::now_ms;
use crate::config::Config;
use crate::event::Severity;
use crate::money::format_amount;
use crate::store::{RegisterActivity, Store, StoreError, StoreScope};

/// What a shortage is made of: drawer opens, no-sales, undone sales and cash taken out.
const CASH_TYPES: [&str; 7] = [
    "drawer_open",
    "no_sale",
    "void",
    "item_void",
    "refund",
    "correction",
    "paid_out",
];
const SIGN_TYPES: [&str; 2] = ["sign_on", "sign_off"];
/// The export's columns, in order; each is named by the catalog's `csv.` message.
pub(super) const CSV_COLUMNS: [&str; 8] = [
    "time",
    "type",
    "type_code",
    "cashier",
    "transaction",
    "amount",
    "reason",
    "footage",
];
/// More lines than a person reads; the page says when it stopped there.
const MAX_LINES: i64 = 5_000;
/// How far back from the span shown shifts are offered.
const SHIFT_DAYS: i64 = 14;
const DAY_MS: i64 = 86_400_000;

#[derive(Debug, Default, Clone, Deserialize)]
pub struct TimelineParams {
    store: Option<String>,
    register: Option<String>,
    from: Option<String>,
    to: Option<String>,
}

/// One line of the timeline.
#[derive(Debug, Serialize)]
struct Line {
    seq: i64,
    time: String,
    kind: String,
    label: String,
    /// Its badge's colour and mark ([`Severity::of`]).
    severity: Severity,
    /// A sign-on or sign-off: context, not cash.
    context: bool,
    cashier: Option<String>,
    transaction: Option<String>,
    amount: Option<String>,
    reason: Option<String>,
    /// Each camera's links, named by the camera: a register often has two (the till and the door).
    cameras: Vec<CameraFootage>,
    /// Some camera watches the register, even if its system offers no link.
    watched: bool,
}

#[derive(Debug, Serialize)]
struct Total {
    label: String,
    count: usize,
    /// Per currency, formatted (`¥12,800`).
    amounts: Vec<String>,
}

#[derive(Debug, Serialize)]
struct Shift {
    cashier: Option<String>,
    from: String,
    to: Option<String>,
    href: String,
}

/// A read timeline, or what is missing to read one.
struct Read {
    store: String,
    register: String,
    zone: Zone,
    from_ms: i64,
    to_ms: i64,
    lines: Vec<Line>,
    totals: Vec<Total>,
    truncated: bool,
}

enum Problem {
    /// Store and register are needed first.
    Incomplete,
    UnknownStore(String),
    Time(&'static str, String, LocalTimeError),
    Order,
}

fn bound(zone: Zone, field: &'static str, text: &Option<String>) -> Result<Option<i64>, Problem> {
    match text.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
        None => Ok(None),
        Some(t) => zone
            .parse_local(t)
            .map(Some)
            .map_err(|e| Problem::Time(field, t.to_string(), e)),
    }
}

async fn read(
    state: &AppState,
    scope: &StoreScope,
    p: &TimelineParams,
) -> Result<Result<Read, Problem>, PageError> {
    let config = &state.config;
    let (Some(store), Some(register)) = (
        p.store.as_deref().map(str::trim).filter(|s| !s.is_empty()),
        p.register
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty()),
    ) else {
        return Ok(Err(Problem::Incomplete));
    };
    // A store outside the viewer's scope is as unknown as one missing from the config.
    if config.store(store).is_none() || !scope.allows(store) {
        return Ok(Err(Problem::UnknownStore(store.to_string())));
    }
    let zone = Zone::of_store(config, Some(store));
    let now = now_ms();
    let (from, to) = match (bound(zone, "from", &p.from), bound(zone, "to", &p.to)) {
        (Ok(f), Ok(t)) => (f, t),
        (Err(e), _) | (_, Err(e)) => return Ok(Err(e)),
    };
    // Without times: the last 24 hours, the span of a day's shifts.
    let to_ms = to.unwrap_or(now);
    let from_ms = from.unwrap_or(to_ms - DAY_MS);
    if from_ms >= to_ms {
        return Ok(Err(Problem::Order));
    }
    let span = Span {
        scope,
        store,
        register,
        from_ms,
        to_ms,
    };
    Ok(Ok(
        lines(&*state.store, config, &state.integrations, &span).await?
    ))
}

/// One register's span of a timeline, for a reader.
pub(crate) struct Span<'a> {
    pub scope: &'a StoreScope,
    pub store: &'a str,
    pub register: &'a str,
    pub from_ms: i64,
    pub to_ms: i64,
}

/// The timeline of a span whose store the caller has found in the config and in the reader's scope.
async fn lines(
    db: &dyn Store,
    config: &Config,
    integrations: &Integrations,
    span: &Span<'_>,
) -> Result<Read, StoreError> {
    let Span {
        scope,
        store,
        register,
        from_ms,
        to_ms,
    } = *span;
    let zone = Zone::of_store(config, Some(store));
    let shown = [CASH_TYPES.as_slice(), SIGN_TYPES.as_slice()].concat();
    let span = RegisterActivity {
        scope,
        store,
        register,
        from_ms,
        to_ms,
        types: &shown,
        limit: MAX_LINES + 1,
        newest_first: false,
    };
    // Who was signed on when the span opened: the last sign-on or sign-off before it.
    let before = db
        .register_activity(&RegisterActivity {
            from_ms: from_ms - 30 * DAY_MS,
            to_ms: from_ms,
            types: &SIGN_TYPES,
            limit: 1,
            newest_first: true,
            ..span.clone()
        })
        .await?;
    let mut on_register = before
        .last()
        .filter(|e| e.kind == "sign_on")
        .and_then(|e| e.cashier.clone());
    let events = db.register_activity(&span).await?;
    let truncated = events.len() as i64 > MAX_LINES;
    let mut totals: BTreeMap<&str, (usize, BTreeMap<String, Sum>)> = BTreeMap::new();
    let mut lines = Vec::new();
    for e in events.iter().take(MAX_LINES as usize) {
        let context = SIGN_TYPES.contains(&e.kind.as_str());
        match e.kind.as_str() {
            "sign_on" => on_register = e.cashier.clone(),
            "sign_off" => {}
            kind => {
                let t = totals
                    .entry(
                        CASH_TYPES
                            .iter()
                            .find(|k| **k == kind)
                            .copied()
                            .unwrap_or("other"),
                    )
                    .or_default();
                t.0 += 1;
                if let Some(amount) = e.amount {
                    t.1.entry(e.currency.clone().unwrap_or_default())
                        .or_default()
                        .add(amount);
                }
            }
        }
        lines.push(Line {
            seq: e.seq,
            time: zone.datetime(e.at_ms),
            kind: e.kind.clone(),
            label: event_label(&e.kind, e.flagged),
            severity: Severity::of(&e.kind, e.flagged),
            context,
            // The register's own word first; else whoever signed on last.
            cashier: e.cashier.clone().or_else(|| on_register.clone()),
            transaction: e.transaction.clone(),
            amount: e.amount.map(|a| format_amount(a, e.currency.as_deref())),
            reason: e.reason.clone(),
            // A line has no room for stills: only cameras with a link to open.
            cameras: event_cameras(config, integrations, e)
                .into_iter()
                .filter(|c| !c.links.is_empty())
                .collect(),
            watched: config
                .cameras
                .iter()
                .any(|c| c.watches(&e.store, &e.register)),
        });
        if e.kind == "sign_off" {
            on_register = None;
        }
    }
    let totals = CASH_TYPES
        .iter()
        .filter_map(|k| {
            totals.get(k).map(|(count, sums)| Total {
                label: type_label(k),
                count: *count,
                amounts: sums
                    .iter()
                    .map(|(cur, sum)| sum.show((!cur.is_empty()).then_some(cur.as_str())))
                    .collect(),
            })
        })
        .collect();
    Ok(Read {
        store: store.to_string(),
        register: register.to_string(),
        zone,
        from_ms,
        to_ms,
        lines,
        totals,
        truncated,
    })
}

/// A timeline's address (or its CSV's, by `path`): the span as wall times in the store's zone, as its form
/// sends them.
pub(super) fn href(
    path: &str,
    store: &str,
    register: &str,
    zone: Zone,
    from_ms: i64,
    to_ms: i64,
) -> String {
    let query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("store", store)
        .append_pair("register", register)
        .append_pair("from", &zone.input_value(from_ms))
        .append_pair("to", &zone.input_value(to_ms))
        .finish();
    format!("{path}?{query}")
}

/// The register's shifts of the two weeks up to the end of the span shown, newest first: a sign-on to the
/// sign-off after it. Counted back from the span, not from today, so an investigator looking into last month's
/// shortage is offered last month's shifts; a day past the span finds the sign-off of a shift it cuts off.
async fn shifts(state: &AppState, scope: &StoreScope, r: &Read) -> Result<Vec<Shift>, PageError> {
    let now = now_ms();
    let signs = state
        .store
        .register_activity(&RegisterActivity {
            scope,
            store: &r.store,
            register: &r.register,
            from_ms: r.to_ms - SHIFT_DAYS * DAY_MS,
            to_ms: r.to_ms + DAY_MS,
            types: &SIGN_TYPES,
            limit: 500,
            newest_first: true,
        })
        .await?;
    let mut out = Vec::new();
    for (i, e) in signs.iter().enumerate() {
        if e.kind != "sign_on" {
            continue;
        }
        let end = signs[i + 1..]
            .iter()
            .find(|n| n.kind == "sign_off" || n.kind == "sign_on");
        let end_ms = end.map(|n| n.at_ms);
        out.push(Shift {
            cashier: e.cashier.clone(),
            from: r.zone.datetime(e.at_ms),
            to: end_ms.map(|ms| r.zone.span_end(e.at_ms, ms)),
            href: href(
                "/timeline",
                &r.store,
                &r.register,
                r.zone,
                e.at_ms,
                end_ms.map(|ms| ms + 1).unwrap_or(now),
            ),
        });
    }
    out.reverse();
    Ok(out)
}

pub async fn page(
    State(state): State<AppState>,
    Signed(viewer, _): Signed<Events>,
    params: Result<Query<TimelineParams>, QueryRejection>,
) -> Result<Response, PageError> {
    let nav = nav(&state, &viewer).await?;
    let params = params.map(|Query(p)| p).unwrap_or_default();
    let stores: Vec<(String, String)> = viewer
        .stores(&state.config)
        .into_iter()
        .map(|s| (s.id.clone(), s.name.clone()))
        .collect();
    let form = context! {
        store => params.store.clone().unwrap_or_default(),
        register => params.register.clone().unwrap_or_default(),
    };
    let scope = viewer.scope();
    let (problem, timeline) = match read(&state, &scope, &params).await? {
        Ok(r) => {
            let shifts = shifts(&state, &scope, &r).await?;
            let clock = register_clock(&state, &scope, &r.store, &r.register).await?;
            let csv = href(
                "/timeline.csv",
                &r.store,
                &r.register,
                r.zone,
                r.from_ms,
                r.to_ms,
            );
            let timeline = context! {
                from_input => r.zone.input_value(r.from_ms),
                to_input => r.zone.input_value(r.to_ms),
                from => r.zone.datetime(r.from_ms),
                to => r.zone.datetime(r.to_ms),
                zone => r.zone.label(r.from_ms),
                lines => r.lines,
                totals => r.totals,
                truncated => r.truncated,
                max_lines => MAX_LINES,
                shifts,
                csv,
                clock,
            };
            (None, Some(timeline))
        }
        Err(Problem::Incomplete) => (None, None),
        Err(Problem::UnknownStore(s)) => {
            (Some(context! { kind => "unknown_store", store => s }), None)
        }
        Err(Problem::Time(field, value, error)) => {
            (Some(context! { kind => "time", field, value, error }), None)
        }
        Err(Problem::Order) => (Some(context! { kind => "order" }), None),
    };
    let status = if problem.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    Ok(render(
        status,
        "timeline.html",
        context! { page => "timeline", nav, stores, f => form, problem, tl => timeline },
    ))
}

/// A CSV cell: quoted, and a leading `=`, `+`, `-`, `@` neutralised so a spreadsheet never runs register
/// text as a formula.
fn cell(text: &str) -> String {
    let guarded = if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text.to_string()
    };
    format!("\"{}\"", guarded.replace('"', "\"\""))
}

pub async fn csv(
    State(state): State<AppState>,
    Signed(viewer, _): Signed<Events>,
    params: Result<Query<TimelineParams>, QueryRejection>,
) -> Result<Response, PageError> {
    let params = params.map(|Query(p)| p).unwrap_or_default();
    let r = match read(&state, &viewer.scope(), &params).await? {
        Ok(r) => r,
        Err(_) => {
            return Ok((StatusCode::BAD_REQUEST, text("csv.needs_choice")).into_response());
        }
    };
    let out = csv_text(&r);
    let zone = r.zone.label(r.from_ms);
    viewer
        .audit(
            &state,
            "exported",
            Some(format!(
                "timeline {}/{} {} to {} {}",
                r.store,
                r.register,
                r.zone.datetime(r.from_ms),
                r.zone.datetime(r.to_ms),
                zone.abbr
            )),
            Some(format!(
                "{} lines",
                r.lines.iter().filter(|l| !l.context).count()
            )),
        )
        .await;
    let name = format!(
        "timeline-{}-{}-{}.csv",
        r.store,
        r.register,
        r.zone.input_value(r.from_ms).replace([':', 'T'], "")
    );
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!(
                    "attachment; filename=\"{}\"",
                    name.replace(
                        |c: char| !c.is_ascii_alphanumeric() && c != '-' && c != '.',
                        "_"
                    )
                ),
            ),
        ],
        out,
    )
        .into_response())
}

/// The timeline as CSV, for the investigator's spreadsheet: column names in the reader's language, the cash
/// lines only.
fn csv_text(r: &Read) -> String {
    let zone = r.zone.label(r.from_ms);
    // A byte-order mark: spreadsheet programs in Japan read UTF-8 without one as Shift_JIS.
    let mut out = String::from("\u{feff}");
    // Column names and type names in the reader's language; the type's code beside them, for scripts and
    // pivot tables that must not depend on who exported.
    let header: Vec<String> = CSV_COLUMNS
        .iter()
        .map(|c| match *c {
            "time" => cell(&format!("{} ({})", text("csv.time"), zone.abbr)),
            other => cell(&text(&format!("csv.{other}"))),
        })
        .collect();
    out.push_str(&header.join(","));
    out.push_str("\r\n");
    for l in r.lines.iter().filter(|l| !l.context) {
        let fields = [
            l.time.as_str(),
            l.label.as_str(),
            l.kind.as_str(),
            l.cashier.as_deref().unwrap_or(""),
            l.transaction.as_deref().unwrap_or(""),
            l.amount.as_deref().unwrap_or(""),
            l.reason.as_deref().unwrap_or(""),
            l.cameras
                .first()
                .and_then(|c| c.links.first())
                .map(|f| f.link.url.as_str())
                .unwrap_or(""),
        ];
        let row: Vec<String> = fields.iter().map(|f| cell(f)).collect();
        out.push_str(&row.join(","));
        out.push_str("\r\n");
    }
    out
}

/// The shortage timeline of one register over a span, as its CSV export has it, with how many cash lines it
/// holds (for an evidence package). The caller vouches that the store is in the reader's scope.
pub(crate) async fn span_csv(
    db: &dyn Store,
    config: &Config,
    integrations: &Integrations,
    span: &Span<'_>,
) -> Result<(String, usize), StoreError> {
    let r = lines(db, config, integrations, span).await?;
    let count = r.lines.iter().filter(|l| !l.context).count();
    Ok((csv_text(&r), count))
}

#[cfg(test)]
mod tests {
    use super::cell;

    #[test]
    fn a_cell_is_quoted_and_never_a_formula() {
        assert_eq!(cell("T-000981"), "\"T-000981\"");
        assert_eq!(cell("-¥500"), "\"'-¥500\"");
        assert_eq!(cell("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(cell("返品 ¥1,280"), "\"返品 ¥1,280\"");
    }
}

/// A total of amounts that says so when it left the range it can hold, instead of wrapping round to a
/// number of the other sign: events stored before amounts were bounded may hold anything.
#[derive(Debug, Default, Clone, Copy)]
struct Sum {
    value: i64,
    overflowed: bool,
}

impl Sum {
    fn add(&mut self, amount: i64) {
        match self.value.checked_add(amount) {
            Some(v) => self.value = v,
            None => {
                self.value = if amount < 0 { i64::MIN } else { i64::MAX };
                self.overflowed = true;
            }
        }
    }

    fn show(&self, currency: Option<&str>) -> String {
        let amount = format_amount(self.value, currency);
        match (self.overflowed, self.value < 0) {
            (false, _) => amount,
            (true, false) => format!("≥ {amount}"),
            (true, true) => format!("≤ {amount}"),
        }
    }
}

#[cfg(test)]
mod sum_tests {
    use super::Sum;

    #[test]
    fn a_total_beyond_the_range_says_so_instead_of_changing_sign() {
        let mut sum = Sum::default();
        sum.add(i64::MAX);
        sum.add(1);
        assert_eq!(sum.show(Some("JPY")), "≥ ¥9,223,372,036,854,775,807");
        let mut sum = Sum::default();
        sum.add(1280);
        sum.add(-300);
        assert_eq!(sum.show(Some("JPY")), "¥980");
    }
}
