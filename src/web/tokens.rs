//! Everyone's API tokens as the owner manages them (`/tokens`): whose each is, what it is for, when it was made,
//! last used and when it stops working; and revoking one (`POST /tokens/revoke`, with the session's CSRF
//! token), which stops it at once and is written to the audit log as `tillmark token revoke` is. Tokens are
//! made on the command line, where the secret is printed once and never reaches a page.

use axum::extract::rejection::FormRejection;
use axum::extract::{Form, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::context;
use serde::{Deserialize, Serialize};

use super::AppState;
use super::auth::{Refusal, Signed, Tokens};
use super::format::Zone;
use super::pages::{PageError, nav, render};
use crate::clock::now_ms;

/// One token as the page shows it; never its secret, which is not kept.
#[derive(Debug, Serialize)]
struct Row {
    id: i64,
    user: String,
    label: String,
    made: String,
    last_used: Option<String>,
    expires: Option<String>,
    expired: bool,
}

pub async fn page(
    State(state): State<AppState>,
    Signed(viewer, _): Signed<Tokens>,
) -> Result<Response, PageError> {
    let nav = nav(&state, &viewer).await?;
    let tokens = state.store.tokens(None).await?;
    let zone = Zone::shared_by(state.config.stores.iter());
    let now = now_ms();
    let rows: Vec<Row> = tokens
        .into_iter()
        .map(|t| Row {
            id: t.id,
            user: t.user,
            label: t.label,
            made: zone.datetime(t.created_ms),
            last_used: t.last_used_ms.map(|ms| zone.datetime(ms)),
            expires: t.expires_ms.map(|ms| zone.datetime(ms)),
            expired: t.expires_ms.is_some_and(|ms| ms <= now),
        })
        .collect();
    Ok(render(
        StatusCode::OK,
        "tokens.html",
        context! {
            page => "tokens",
            nav,
            rows,
            csrf => viewer.csrf.clone(),
            zone => zone.label(now),
            lifetime => state.config.web.token_lifetime.to_string(),
        },
    ))
}

#[derive(Debug, Deserialize)]
pub struct RevokeForm {
    csrf: String,
    id: String,
}

pub async fn revoke(
    State(state): State<AppState>,
    Signed(viewer, _): Signed<Tokens>,
    form: Result<Form<RevokeForm>, FormRejection>,
) -> Result<Response, Response> {
    let Ok(Form(form)) = form else {
        return Err(Refusal::BadForm.into_response());
    };
    viewer
        .check_csrf(&form.csrf)
        .map_err(IntoResponse::into_response)?;
    let Ok(id) = form.id.trim().parse::<i64>() else {
        return Err(Refusal::BadForm.into_response());
    };
    let revoked = state
        .store
        .revoke_token(id)
        .await
        .map_err(|e| PageError::from(e).into_response())?;
    // Revoked a moment ago by someone else, or never there: nothing changed, so nothing is recorded.
    if let Some(t) = revoked {
        viewer
            .audit(&state, "token_revoked", Some(t.user), Some(t.label))
            .await;
    }
    Ok(Redirect::to("/tokens").into_response())
}
