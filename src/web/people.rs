//! The people who sign in, as the owner manages them (`/people`): add someone with a role and stores, change
//! what they may see, reset a forgotten password, remove them. Every change carries the session's CSRF token and
//! is written to the audit log as the command line's are. A password made here is shown once, on the page that
//! answers the form, and never stored as typed: the owner hands it over, the person changes it after signing in.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::context;
use serde::{Deserialize, Serialize};

use super::AppState;
use super::auth::{People, Refusal, Signed, Viewer};
use super::format::Zone;
use super::i18n::text;
use super::pages::{PageError, nav, render};
use crate::accounts::{NewUser, Role, check_name, hash_password, random_secret};
use crate::clock::now_ms;
use crate::store::{AccountError, StoreError};

/// One person as the page shows them.
#[derive(Debug, Serialize)]
struct Row {
    name: String,
    role: &'static str,
    stores: Vec<String>,
    totp: bool,
    made: String,
    me: bool,
}

/// What the page says after a change: what happened, and a password to hand over when one was made.
#[derive(Debug, Default, Serialize)]
struct Outcome {
    done: Option<String>,
    problem: Option<String>,
    password_for: Option<String>,
    password: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct PageParams {
    done: Option<String>,
    who: Option<String>,
}

pub async fn page(
    State(state): State<AppState>,
    Signed(viewer, _): Signed<People>,
    params: Result<Query<PageParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, PageError> {
    let params = params.map(|Query(p)| p).unwrap_or_default();
    // Only the page's own redirects set these; a message key outside the list shows nothing.
    let done = match (params.done.as_deref(), params.who) {
        (Some(key @ ("access_changed" | "removed")), Some(who)) => {
            Some(text(&format!("people.{key}")).replace("{name}", &who))
        }
        _ => None,
    };
    show(
        &state,
        &viewer,
        StatusCode::OK,
        Outcome {
            done,
            ..Outcome::default()
        },
    )
    .await
}

async fn show(
    state: &AppState,
    viewer: &Viewer,
    status: StatusCode,
    outcome: Outcome,
) -> Result<Response, PageError> {
    let nav = nav(state, viewer).await?;
    let zone = Zone::shared_by(state.config.stores.iter());
    let rows: Vec<Row> = state
        .store
        .users()
        .await?
        .into_iter()
        .map(|u| Row {
            me: u.name == viewer.user.name,
            role: u.role.as_str(),
            stores: u.stores,
            totp: u.totp,
            made: zone.datetime(u.created_ms),
            name: u.name,
        })
        .collect();
    let stores: Vec<(String, String)> = state
        .config
        .stores
        .iter()
        .map(|s| (s.id.clone(), s.name.clone()))
        .collect();
    Ok(render(
        status,
        "people.html",
        context! {
            page => "people",
            nav,
            rows,
            stores,
            roles => Role::ALL.map(Role::as_str),
            csrf => viewer.csrf.clone(),
            outcome,
        },
    ))
}

/// A form of the page: who, and for adding or changing access, the role and stores.
#[derive(Debug, Deserialize)]
pub struct PersonForm {
    csrf: String,
    name: String,
    role: Option<String>,
    /// Checked store ids, one field each.
    #[serde(default)]
    stores: Vec<String>,
}

/// Reads a form whose store checkboxes repeat one field (`stores=a&stores=b`), which axum's own form reader
/// does not collect into a list.
fn read_form(body: &str) -> Option<PersonForm> {
    let mut form = PersonForm {
        csrf: String::new(),
        name: String::new(),
        role: None,
        stores: Vec::new(),
    };
    for (k, v) in url::form_urlencoded::parse(body.as_bytes()) {
        match k.as_ref() {
            "csrf" => form.csrf = v.into_owned(),
            "name" => form.name = v.trim().to_string(),
            "role" => form.role = Some(v.into_owned()),
            "stores" => form.stores.push(v.into_owned()),
            _ => return None,
        }
    }
    Some(form)
}

/// The form, once its CSRF token is the session's.
fn checked(
    viewer: &Viewer,
    body: Result<String, impl std::fmt::Debug>,
) -> Result<PersonForm, Refusal> {
    let form = body
        .ok()
        .as_deref()
        .and_then(read_form)
        .ok_or(Refusal::BadForm)?;
    viewer.check_csrf(&form.csrf)?;
    Ok(form)
}

/// The role and stores a form asks for, checked against the config; the problem in the reader's words.
fn access(state: &AppState, form: &PersonForm) -> Result<(Role, Vec<String>), String> {
    let role = form
        .role
        .as_deref()
        .and_then(Role::parse)
        .ok_or_else(|| text("people.bad_role"))?;
    let known: Vec<&str> = state.config.stores.iter().map(|s| s.id.as_str()).collect();
    if form.stores.iter().any(|s| !known.contains(&s.as_str())) {
        return Err(text("people.bad_store"));
    }
    match (role.scoped(), form.stores.is_empty()) {
        (true, true) => Err(text("people.needs_stores")),
        // An owner sees every store and an integrator none: stores ticked for them mean nothing.
        (false, _) => Ok((role, Vec::new())),
        (true, false) => Ok((role, form.stores.clone())),
    }
}

async fn answer(state: &AppState, viewer: &Viewer, outcome: Outcome) -> Response {
    let status = match outcome.problem {
        Some(_) => StatusCode::UNPROCESSABLE_ENTITY,
        None => StatusCode::OK,
    };
    show(state, viewer, status, outcome)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

fn problem(message: String) -> Outcome {
    Outcome {
        problem: Some(message),
        ..Outcome::default()
    }
}

fn account_problem(e: AccountError) -> Result<Outcome, StoreError> {
    match e {
        AccountError::Exists(name) => Ok(problem(text("people.exists").replace("{name}", &name))),
        AccountError::Missing(name) => Ok(problem(text("people.missing").replace("{name}", &name))),
        AccountError::LastOwner(name) => {
            Ok(problem(text("people.last_owner").replace("{name}", &name)))
        }
        AccountError::Store(e) => Err(e),
    }
}

pub async fn add(
    State(state): State<AppState>,
    Signed(viewer, _): Signed<People>,
    body: Result<String, axum::extract::rejection::StringRejection>,
) -> Result<Response, Response> {
    let form = checked(&viewer, body).map_err(IntoResponse::into_response)?;
    let outcome = match (check_name(&form.name), access(&state, &form)) {
        (Err(_), _) => problem(text("people.bad_name")),
        (_, Err(message)) => problem(message),
        (Ok(()), Ok((role, stores))) => {
            let password = random_secret();
            let hash = hash_password(&password).map_err(|_| Refusal::BadForm.into_response())?;
            let new = NewUser {
                name: form.name.clone(),
                role,
                stores,
                password_hash: hash,
            };
            match state.store.add_user(&new, now_ms()).await {
                Ok(user) => {
                    let detail = format!("{} {}", user.role, user.stores.join(","));
                    viewer
                        .audit(
                            &state,
                            "user_added",
                            Some(user.name.clone()),
                            Some(detail.trim().into()),
                        )
                        .await;
                    Outcome {
                        done: Some(text("people.added").replace("{name}", &user.name)),
                        password_for: Some(user.name),
                        password: Some(password),
                        ..Outcome::default()
                    }
                }
                Err(e) => account_problem(e).map_err(|e| PageError::from(e).into_response())?,
            }
        }
    };
    Ok(answer(&state, &viewer, outcome).await)
}

pub async fn change_access(
    State(state): State<AppState>,
    Signed(viewer, _): Signed<People>,
    body: Result<String, axum::extract::rejection::StringRejection>,
) -> Result<Response, Response> {
    let form = checked(&viewer, body).map_err(IntoResponse::into_response)?;
    let (role, stores) = match access(&state, &form) {
        Ok(access) => access,
        Err(message) => return Ok(answer(&state, &viewer, problem(message)).await),
    };
    match state
        .store
        .set_access(&form.name, role, &stores, now_ms())
        .await
    {
        Ok(()) => {
            let detail = format!("{role} {}", stores.join(","));
            viewer
                .audit(
                    &state,
                    "access_changed",
                    Some(form.name.clone()),
                    Some(detail.trim().into()),
                )
                .await;
            Ok(done_redirect("access_changed", &form.name))
        }
        Err(e) => {
            let outcome = account_problem(e).map_err(|e| PageError::from(e).into_response())?;
            Ok(answer(&state, &viewer, outcome).await)
        }
    }
}

pub async fn reset_password(
    State(state): State<AppState>,
    Signed(viewer, _): Signed<People>,
    body: Result<String, axum::extract::rejection::StringRejection>,
) -> Result<Response, Response> {
    let form = checked(&viewer, body).map_err(IntoResponse::into_response)?;
    let password = random_secret();
    let hash = hash_password(&password).map_err(|_| Refusal::BadForm.into_response())?;
    // A reset is for a password that may be known to someone else: the person's browsers and tokens go too.
    let outcome = match state
        .store
        .set_password(&form.name, &hash, now_ms(), false)
        .await
    {
        Ok(revoked) => {
            let detail = format!("reset on the people page; {revoked} API tokens revoked");
            viewer
                .audit(
                    &state,
                    "password_set",
                    Some(form.name.clone()),
                    Some(detail),
                )
                .await;
            Outcome {
                done: Some(text("people.reset").replace("{name}", &form.name)),
                password_for: Some(form.name),
                password: Some(password),
                ..Outcome::default()
            }
        }
        Err(e) => account_problem(e).map_err(|e| PageError::from(e).into_response())?,
    };
    Ok(answer(&state, &viewer, outcome).await)
}

pub async fn remove(
    State(state): State<AppState>,
    Signed(viewer, _): Signed<People>,
    body: Result<String, axum::extract::rejection::StringRejection>,
) -> Result<Response, Response> {
    let form = checked(&viewer, body).map_err(IntoResponse::into_response)?;
    match state.store.remove_user(&form.name).await {
        Ok(()) => {
            viewer
                .audit(&state, "user_removed", Some(form.name.clone()), None)
                .await;
            Ok(done_redirect("removed", &form.name))
        }
        Err(e) => {
            let outcome = account_problem(e).map_err(|e| PageError::from(e).into_response())?;
            Ok(answer(&state, &viewer, outcome).await)
        }
    }
}

/// Back to the list after a change with nothing to hand over, so a reload does not send the form again.
fn done_redirect(key: &str, name: &str) -> Response {
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    q.append_pair("done", key).append_pair("who", name);
    Redirect::to(&format!("/people?{}", q.finish())).into_response()
}
