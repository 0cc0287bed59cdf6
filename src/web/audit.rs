//! The audit log as the owner reads it (`/audit`): who signed in or was refused, who opened which footage,
//! who exported what, who changed a case; newest first, filtered by person and action.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use minijinja::context;
use serde::{Deserialize, Serialize};

use super::AppState;
use super::api::non_empty;
use super::auth::{Audit, Signed};
use super::format::Zone;
use super::i18n::text;
use super::pages::{PageError, nav, render};
use crate::clock::now_ms;
use crate::store::AuditQuery;

const PAGE: i64 = 200;

/// The actions the log holds, for the filter; in the order a reader thinks of them.
pub(super) const ACTIONS: [&str; 26] = [
    "sign_in",
    "sign_in_refused",
    "sign_in_throttled",
    "sign_out",
    "password_changed",
    "footage_opened",
    "exported",
    "api_read",
    "case_opened",
    "case_noted",
    "case_closed",
    "case_reopened",
    "evidence_exported",
    "dead_letter_dismissed",
    "user_added",
    "password_set",
    "user_removed",
    "access_changed",
    "token_created",
    "token_revoked",
    "totp_enabled",
    "totp_disabled",
    "retention_purge",
    "audit_checkpoint",
    "person_exported",
    "person_erased",
];

#[derive(Debug, Default, Deserialize)]
pub struct AuditParams {
    actor: Option<String>,
    action: Option<String>,
    before: Option<String>,
}

#[derive(Debug, Serialize)]
struct Row {
    id: i64,
    at: String,
    actor: Option<String>,
    address: Option<String>,
    action: String,
    action_label: String,
    target: Option<String>,
    detail: Option<String>,
}

/// An action in the reader's language; an action this build does not list, as recorded.
fn action_label(action: &str) -> String {
    if ACTIONS.contains(&action) {
        text(&format!("audit.actions.{action}"))
    } else {
        action.to_string()
    }
}

pub async fn page(
    State(state): State<AppState>,
    Signed(viewer, _): Signed<Audit>,
    params: Result<Query<AuditParams>, QueryRejection>,
) -> Result<Response, PageError> {
    let nav = nav(&state, &viewer).await?;
    let params = params.map(|Query(p)| p).unwrap_or_default();
    let query = AuditQuery {
        actor: non_empty(&params.actor),
        action: non_empty(&params.action),
        before: non_empty(&params.before).and_then(|b| b.parse().ok()),
        limit: PAGE,
        ..Default::default()
    };
    let entries = state.store.audit(&query).await?;
    // The person's zone: the one they chose, else their stores' common one.
    let zone: Zone = viewer.zone(&state.config);
    let older = (entries.len() as i64 == PAGE)
        .then(|| entries.last().map(|e| e.id))
        .flatten()
        .map(|id| {
            let mut q = url::form_urlencoded::Serializer::new(String::new());
            for (k, v) in [("actor", &query.actor), ("action", &query.action)] {
                if let Some(v) = v {
                    q.append_pair(k, v);
                }
            }
            q.append_pair("before", &id.to_string());
            format!("/audit?{}", q.finish())
        });
    let rows: Vec<Row> = entries
        .into_iter()
        .map(|e| Row {
            id: e.id,
            at: zone.datetime(e.at_ms),
            actor: e.actor,
            address: e.address,
            action_label: action_label(&e.action),
            action: e.action,
            target: e.target,
            detail: e.detail,
        })
        .collect();
    Ok(render(
        StatusCode::OK,
        "audit.html",
        context! {
            page => "audit",
            nav,
            rows,
            actions => ACTIONS.map(|a| (a, action_label(a))),
            f => context! { actor => query.actor, action => query.action },
            zone => zone.label(now_ms()),
            older,
        },
    ))
}
