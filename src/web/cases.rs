//! `POST /events/{seq}/case`: an investigator (or the owner) flags an event, notes it, closes its case as
//! explained or escalated with a reason, or reopens it. Each change goes in the case's history and in the
//! audit log; a refused one shows the event page again with the reason and the text as typed.

use axum::extract::rejection::FormRejection;
use axum::extract::{Form, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::{Deserialize, Serialize};

use super::AppState;
use super::auth::{Cases as CasesAccess, Refusal, Signed};
use super::pages::{PageError, event_response};
use crate::clock::now_ms;
use crate::store::{CaseChange, CaseError, CaseOutcome};

#[derive(Debug, Deserialize)]
pub struct CaseParams {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    action: String,
    outcome: Option<String>,
    #[serde(default)]
    text: String,
}

/// A refused change, for the page to word (`problem`) and to fill its form again.
#[derive(Debug, Serialize)]
pub struct CaseForm {
    pub action: String,
    pub outcome: Option<String>,
    pub text: String,
    pub problem: &'static str,
}

/// What the form asks for; `Err` names what is missing.
fn change(p: &CaseParams) -> Result<CaseChange, &'static str> {
    let text = p.text.clone();
    match p.action.as_str() {
        "open" => Ok(CaseChange::Open { note: text }),
        "note" => Ok(CaseChange::Note { text }),
        "close" => {
            let outcome = p
                .outcome
                .as_deref()
                .and_then(CaseOutcome::parse)
                .ok_or("outcome_required")?;
            Ok(CaseChange::Close {
                outcome,
                reason: text,
            })
        }
        "reopen" => Ok(CaseChange::Reopen { reason: text }),
        _ => Err("unknown_action"),
    }
}

/// How a refusal is answered: its status and the page's sentence; `None` for what is not the form's fault.
fn refusal(e: &CaseError) -> Option<(StatusCode, &'static str)> {
    let invalid = |p| Some((StatusCode::BAD_REQUEST, p));
    // The case moved on since the page was loaded (another tab, another investigator).
    let conflict = |p| Some((StatusCode::CONFLICT, p));
    match e {
        CaseError::ReasonRequired => invalid("reason_required"),
        CaseError::EmptyNote => invalid("empty_note"),
        CaseError::TooLong => invalid("too_long"),
        CaseError::NoCase => conflict("no_case"),
        CaseError::AlreadyOpen => conflict("already_open"),
        CaseError::Closed => conflict("closed"),
        CaseError::NotClosed => conflict("not_closed"),
        CaseError::NoEvent(_) | CaseError::Store(_) => None,
    }
}

pub async fn change_case(
    State(state): State<AppState>,
    Signed(viewer, _): Signed<CasesAccess>,
    Path(seq): Path<String>,
    form: Result<Form<CaseParams>, FormRejection>,
) -> Result<Response, Response> {
    let Ok(Form(params)) = form else {
        return Err(Refusal::BadForm.into_response());
    };
    viewer
        .check_csrf(&params.csrf)
        .map_err(IntoResponse::into_response)?;
    let again = async |status: StatusCode, problem: &'static str| {
        let form = CaseForm {
            action: params.action.clone(),
            outcome: params.outcome.clone(),
            text: params.text.clone(),
            problem,
        };
        event_response(&state, &viewer, &seq, status, Some(form))
            .await
            .into_response()
    };
    // The page's own answer for an event that is not there, or not in this person's stores.
    let not_found = async || {
        event_response(&state, &viewer, &seq, StatusCode::NOT_FOUND, None)
            .await
            .into_response()
    };
    let Ok(number) = seq.parse::<i64>() else {
        return Err(not_found().await);
    };
    let change = match change(&params) {
        Ok(c) => c,
        Err(p) => return Err(again(StatusCode::BAD_REQUEST, p).await),
    };
    let event = match state.store.event(number, &viewer.scope()).await {
        Ok(Some(e)) => e,
        Ok(None) => return Err(not_found().await),
        Err(e) => return Err(PageError::from(e).into_response()),
    };
    let case = state
        .store
        .change_case(
            number,
            &viewer.scope(),
            &viewer.user.name,
            now_ms(),
            &change,
        )
        .await;
    match case {
        Ok(case) => {
            // The text as kept (card numbers masked), not as typed.
            let text = case.history.last().and_then(|h| h.text.clone());
            let detail = match &change {
                CaseChange::Close { .. } => Some(format!(
                    "{}: {}",
                    case.summary.state.as_str(),
                    text.unwrap_or_default()
                )),
                _ => text,
            };
            viewer
                .audit(
                    &state,
                    &format!("case_{}", change.action()),
                    Some(super::footage::target(&event)),
                    detail,
                )
                .await;
            Ok(Redirect::to(&format!("/events/{number}#case")).into_response())
        }
        Err(CaseError::Store(e)) => Err(PageError::from(e).into_response()),
        Err(e) => match refusal(&e) {
            Some((status, problem)) => Err(again(status, problem).await),
            None => Err(not_found().await),
        },
    }
}
