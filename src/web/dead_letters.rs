//! The dead-letter list as a person works it (`/dead-letters`): why each message was refused, its topic, the
//! size and SHA-256 of what was received, and an excerpt of its masked text, never the whole payload. Letters
//! dealt with are dismissed (`POST /dead-letters/dismiss`, one or every one shown, with the session's CSRF
//! token); a dismissal is written to the audit log, hides the letter unless asked for, and takes it out of the
//! header's count. Retention (`[dead_letters]`) removes old letters whether dismissed or not.

use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Form, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::context;
use serde::{Deserialize, Serialize};

use super::AppState;
use super::api::{non_empty, parse_switch};
use super::auth::{DeadLetters, Refusal, Signed};
use super::format::Zone;
use super::pages::{PageError, nav, render};
use crate::clock::now_ms;
use crate::config::Bytes;
use crate::store::{DeadLetter, DeadLetterQuery};

const DAY_MS: i64 = 86_400_000;

/// How many letters the page lists, newest first.
const SHOWN: i64 = 200;

/// Characters of a letter's text the page shows: enough to recognise the sender's mistake, and 200 letters
/// still make a page of a few hundred kilobytes at most.
const EXCERPT_CHARS: usize = 300;

#[derive(Debug, Default, Deserialize)]
pub struct PageParams {
    dismissed: Option<String>,
}

/// One letter as the page shows it.
#[derive(Debug, Serialize)]
struct Letter {
    id: i64,
    received: String,
    topic: String,
    reason: String,
    excerpt: String,
    /// The excerpt is less than the payload: the page shows an ellipsis.
    cut: bool,
    /// In the largest unit (`4.5 MiB`), and in bytes with thousands grouped; `small` under 1 KiB, where the
    /// bytes say it all.
    size: String,
    size_bytes: String,
    small: bool,
    sha256: Option<String>,
    dismissed_by: Option<String>,
    dismissed_at: Option<String>,
}

fn letter(zone: Zone, d: DeadLetter) -> Letter {
    let mut chars = d.raw.char_indices();
    let end = chars.nth(EXCERPT_CHARS).map(|(i, _)| i);
    let cut = end.is_some() || d.raw_is_partial();
    let excerpt = end.map_or(d.raw.as_str(), |end| &d.raw[..end]).to_string();
    Letter {
        id: d.id,
        received: zone.datetime(d.received_ms),
        topic: d.topic,
        reason: d.reason,
        excerpt,
        cut,
        size: Bytes(d.size.unsigned_abs()).to_string(),
        size_bytes: crate::money::format_amount(d.size, None),
        small: d.size < 1024,
        sha256: d.sha256,
        dismissed_at: d.dismissed.as_ref().map(|x| zone.datetime(x.at_ms)),
        dismissed_by: d.dismissed.map(|x| x.by),
    }
}

pub async fn page(
    State(state): State<AppState>,
    Signed(viewer, _): Signed<DeadLetters>,
    params: Result<Query<PageParams>, QueryRejection>,
) -> Result<Response, PageError> {
    let params = params.map(|Query(p)| p).unwrap_or_default();
    // A value the page never links to shows what it shows by default.
    let show_dismissed = parse_switch("dismissed", &params.dismissed).unwrap_or(false);
    let nav = nav(&state, &viewer).await?;
    let zone = viewer.zone(&state.config);
    let totals = state.store.dead_letter_totals().await?;
    let query = DeadLetterQuery {
        include_dismissed: show_dismissed,
        limit: SHOWN,
    };
    let letters: Vec<Letter> = state
        .store
        .dead_letters(&query)
        .await?
        .into_iter()
        .map(|d| letter(zone, d))
        .collect();
    // "Dismiss all shown" covers the ids from the oldest to the newest letter listed: those between that are
    // hidden are dismissed already, and a letter that arrives meanwhile has a higher id.
    let open: Vec<i64> = letters
        .iter()
        .filter(|l| l.dismissed_by.is_none())
        .map(|l| l.id)
        .collect();
    let dismiss_all = match (open.last(), open.first()) {
        (Some(&first), Some(&last)) if open.len() > 1 => Some((first, last)),
        _ => None,
    };
    let bounds = &state.config.dead_letters;
    let keep_for = state.config.retention.dead_letters;
    let keep_for_days = (keep_for.0 % DAY_MS == 0).then_some(keep_for.0 / DAY_MS);
    Ok(render(
        StatusCode::OK,
        "dead_letters.html",
        context! {
            page => "dead_letters",
            nav,
            letters,
            show_dismissed,
            dismiss_all,
            open_shown => open.len(),
            total => if show_dismissed { totals.letters } else { totals.open() },
            dismissed => totals.dismissed,
            kept => Bytes(totals.kept_bytes.unsigned_abs()).to_string(),
            keep_for => keep_for.to_string(),
            keep_for_days,
            max_total => bounds.max_total.to_string(),
            zone => zone.label(now_ms()),
        },
    ))
}

#[derive(Debug, Deserialize)]
pub struct DismissParams {
    #[serde(default)]
    csrf: String,
    /// The ids to dismiss, `first` to `last`: one letter has both the same.
    first: Option<String>,
    last: Option<String>,
    /// The list showed dismissed letters too: it is shown so again.
    dismissed: Option<String>,
}

pub async fn dismiss(
    State(state): State<AppState>,
    Signed(viewer, _): Signed<DeadLetters>,
    form: Result<Form<DismissParams>, FormRejection>,
) -> Result<Response, Response> {
    let Ok(Form(params)) = form else {
        return Err(Refusal::BadForm.into_response());
    };
    viewer
        .check_csrf(&params.csrf)
        .map_err(IntoResponse::into_response)?;
    let id = |v: &Option<String>| non_empty(v).and_then(|v| v.parse::<i64>().ok());
    // The page's forms always carry both ids: anything else was not made by it, and changes nothing.
    let (Some(first), Some(last)) = (id(&params.first), id(&params.last)) else {
        return Err(Refusal::BadForm.into_response());
    };
    if first > last {
        return Err(Refusal::BadForm.into_response());
    }
    let dismissed = state
        .store
        .dismiss_dead_letters(first..=last, &viewer.user.name, now_ms())
        .await
        .map_err(|e| PageError::from(e).into_response())?;
    // A second click, or another person's dismissal first, changes nothing and records nothing.
    if dismissed > 0 {
        let target = if first == last {
            format!("dead letter {first}")
        } else {
            format!("dead letters {first}–{last}")
        };
        viewer
            .audit(
                &state,
                "dead_letter_dismissed",
                Some(target),
                Some(format!("{dismissed} dismissed")),
            )
            .await;
    }
    let back = if parse_switch("dismissed", &params.dismissed).unwrap_or(false) {
        "/dead-letters?dismissed=1"
    } else {
        "/dead-letters"
    };
    Ok(Redirect::to(back).into_response())
}
