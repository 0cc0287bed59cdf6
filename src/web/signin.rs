//! Signing in and out, and changing one's password (`/login`, `/logout`, `/account/password`).
//!
//! Sign-in is throttled per name and address, per address, and (more slowly) per name everywhere but where
//! its person signs in, counted from the audit log's refused sign-ins, so the limits hold across restarts and
//! nobody elsewhere can lock an owner out. A name that does not exist costs the same password check as one that does,
//! so the answer's timing does not tell which names exist. The sign-in form has its own CSRF token, held in
//! a short cookie, since there is no session yet to hold it.

use std::sync::LazyLock;

use axum::Form;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::context;
use serde::Deserialize;

use super::AppState;
use super::auth::{
    self, Account, ClientAddress, Refusal, SESSION_COOKIE, Signed, constant_time_eq, cookie,
    set_cookie,
};
use super::pages::render;
use crate::accounts::{self, MIN_PASSWORD, random_secret, token_digest};
use crate::clock::now_ms;
use crate::store::{NewAuditEntry, SignInRecord, SignInWindows};

const SIGN_IN_COOKIE: &str = "tillmark_signin";
/// The window refused sign-ins are counted in.
pub const THROTTLE_WINDOW_MS: i64 = 15 * 60_000;
/// Refused sign-ins for one name from one address within the window before that name must wait there:
/// enough for typos, far too few to guess a password of twelve characters or more. Someone guessing from
/// elsewhere does not lock the name out where its person signs in.
pub const MAX_REFUSED_PER_ACCOUNT: i64 = 5;
/// From one address, over any names: a shop's tablets share one address behind its router.
pub const MAX_REFUSED_PER_ADDRESS: i64 = 20;
/// The slower limit on a name over every address, for guesses spread across many: a day's refusals. It holds
/// the name everywhere except at the addresses its person signed in from in the last 90 days.
pub const MAX_REFUSED_PER_NAME_A_DAY: i64 = 50;
const DAY_MS: i64 = 24 * 3_600_000;
const USUAL_ADDRESS_MS: i64 = 90 * DAY_MS;

/// Whether a sign-in must wait: too many refusals of the name here or from this address, or of the name
/// everywhere when this is not an address it signs in from.
fn throttled(r: &SignInRecord) -> bool {
    r.refused_here >= MAX_REFUSED_PER_ACCOUNT
        || r.refused_from_address >= MAX_REFUSED_PER_ADDRESS
        || (r.refused_anywhere >= MAX_REFUSED_PER_NAME_A_DAY && !r.usual_address)
}

/// Checked against when the name is unknown, so both answers take one argon2 verification.
static DECOY_HASH: LazyLock<String> =
    LazyLock::new(|| accounts::hash_password(&random_secret()).unwrap_or_default());

#[derive(Debug, Deserialize)]
pub struct NextParam {
    next: Option<String>,
}

/// Where to go after signing in: `next` when it is a path of this site, else the list.
fn local_path(next: Option<&str>) -> String {
    next.and_then(super::local_path::local_path)
        .unwrap_or("/")
        .to_string()
}

fn sign_in_page(
    state: &AppState,
    status: StatusCode,
    next: &str,
    name: &str,
    problem: Option<&str>,
) -> Response {
    let token = random_secret();
    let mut page = render(
        status,
        "login.html",
        context! { page => "login", nav => (), next, name, problem, csrf => &token, min => MIN_PASSWORD },
    );
    page.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(&state.config, SIGN_IN_COOKIE, &token, "/login", Some(1800)),
    );
    page
}

pub async fn form(State(state): State<AppState>, Query(p): Query<NextParam>) -> Response {
    sign_in_page(
        &state,
        StatusCode::OK,
        &local_path(p.next.as_deref()),
        "",
        None,
    )
}

#[derive(Debug, Deserialize)]
pub struct SignInForm {
    username: String,
    password: String,
    csrf: String,
    next: Option<String>,
}

pub async fn sign_in(
    State(state): State<AppState>,
    ClientAddress(address): ClientAddress,
    headers: HeaderMap,
    Form(f): Form<SignInForm>,
) -> Response {
    let next = local_path(f.next.as_deref());
    let name = f.username.trim();
    let page = |status, problem| sign_in_page(&state, status, &next, name, Some(problem));
    let expected = cookie(
        &headers,
        &auth::cookie_name(&state.config, SIGN_IN_COOKIE, "/login"),
    )
    .unwrap_or("");
    if expected.is_empty() || !constant_time_eq(expected.as_bytes(), f.csrf.as_bytes()) {
        return page(StatusCode::FORBIDDEN, "expired_form");
    }
    let now = now_ms();
    let windows = SignInWindows {
        refused_ms: now - THROTTLE_WINDOW_MS,
        refused_by_name_ms: now - DAY_MS,
        usual_ms: now - USUAL_ADDRESS_MS,
    };
    let Ok(record) = state.store.sign_in_record(name, &address, &windows).await else {
        return page(StatusCode::SERVICE_UNAVAILABLE, "unavailable");
    };
    let audit = |action: &str| NewAuditEntry {
        at_ms: now,
        actor: Some(name.to_string()),
        address: Some(address.clone()),
        action: action.to_string(),
        ..Default::default()
    };
    if throttled(&record) {
        // Not counted as refused: waiting out the limit must end it, not extend it.
        let _ = state.store.record(&audit("sign_in_throttled")).await;
        let mut r = page(StatusCode::TOO_MANY_REQUESTS, "throttled");
        r.headers_mut().insert(
            header::RETRY_AFTER,
            (THROTTLE_WINDOW_MS / 1000).to_string().parse().unwrap(),
        );
        return r;
    }
    let found = match state.store.user_with_hash(name).await {
        Ok(found) => found,
        Err(_) => return page(StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
    };
    let password = f.password;
    let (user, hash) = match found {
        Some((user, hash)) => (Some(user), hash),
        None => (None, DECOY_HASH.clone()),
    };
    // argon2 takes tens of milliseconds of CPU: off the async threads.
    let matches = tokio::task::spawn_blocking(move || accounts::verify_password(&password, &hash))
        .await
        .unwrap_or(false);
    let Some(user) = user.filter(|_| matches) else {
        let _ = state.store.record(&audit("sign_in_refused")).await;
        tracing::warn!(user = name, %address, "Sign-in refused.");
        return page(StatusCode::UNAUTHORIZED, "refused");
    };
    let Ok(cookie) = start_session(&state, user.id, &address).await else {
        return page(StatusCode::SERVICE_UNAVAILABLE, "unavailable");
    };
    let _ = state.store.record(&audit("sign_in")).await;
    tracing::info!(user = name, %address, "Signed in.");
    let mut r = Redirect::to(&next).into_response();
    r.headers_mut().append(header::SET_COOKIE, cookie);
    r.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(&state.config, SIGN_IN_COOKIE, "", "/login", Some(0)),
    );
    r
}

/// A new session for `user_id`; returns its cookie.
async fn start_session(
    state: &AppState,
    user_id: i64,
    address: &str,
) -> Result<axum::http::HeaderValue, crate::store::StoreError> {
    let secret = random_secret();
    state
        .store
        .add_session(
            &token_digest(&secret),
            user_id,
            &random_secret(),
            Some(address),
            now_ms(),
        )
        .await?;
    Ok(set_cookie(
        &state.config,
        SESSION_COOKIE,
        &secret,
        "/",
        None,
    ))
}

#[derive(Debug, Deserialize)]
pub struct CsrfForm {
    csrf: String,
}

pub async fn sign_out(
    State(state): State<AppState>,
    headers: HeaderMap,
    Signed(viewer, _): Signed<Account>,
    Form(f): Form<CsrfForm>,
) -> Result<Response, Refusal> {
    viewer.check_csrf(&f.csrf)?;
    if let Some(secret) = cookie(
        &headers,
        &auth::cookie_name(&state.config, SESSION_COOKIE, "/"),
    ) {
        state
            .store
            .end_session(&token_digest(secret))
            .await
            .map_err(|_| Refusal::Unavailable { api: false })?;
    }
    viewer.audit(&state, "sign_out", None, None).await;
    let mut r = Redirect::to("/login").into_response();
    r.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(&state.config, SESSION_COOKIE, "", "/", Some(0)),
    );
    Ok(r)
}

async fn password_page(
    state: &AppState,
    viewer: &auth::Viewer,
    status: StatusCode,
    note: Option<&str>,
) -> Response {
    let nav = super::pages::nav(state, viewer).await.ok();
    render(
        status,
        "password.html",
        context! {
            page => "password",
            nav,
            me => &viewer.user,
            csrf => &viewer.csrf,
            note,
            min => MIN_PASSWORD,
        },
    )
}

#[derive(Debug, Deserialize)]
pub struct Changed {
    changed: Option<String>,
}

pub async fn password_form(
    State(state): State<AppState>,
    Signed(viewer, _): Signed<Account>,
    Query(q): Query<Changed>,
) -> Response {
    let note = q.changed.is_some().then_some("changed");
    password_page(&state, &viewer, StatusCode::OK, note).await
}

#[derive(Debug, Deserialize)]
pub struct PasswordForm {
    csrf: String,
    current: String,
    new: String,
    confirm: String,
}

pub async fn change_password(
    State(state): State<AppState>,
    Signed(viewer, _): Signed<Account>,
    Form(f): Form<PasswordForm>,
) -> Result<Response, Refusal> {
    viewer.check_csrf(&f.csrf)?;
    let problem =
        async |p| Ok(password_page(&state, &viewer, StatusCode::BAD_REQUEST, Some(p)).await);
    if f.new != f.confirm {
        return problem("mismatch").await;
    }
    if f.new.chars().count() < MIN_PASSWORD {
        return problem("short").await;
    }
    let Some((_, hash)) = state
        .store
        .user_with_hash(&viewer.user.name)
        .await
        .map_err(|_| Refusal::Unavailable { api: false })?
    else {
        return Err(Refusal::Unavailable { api: false });
    };
    let (current, new) = (f.current, f.new);
    let checked = tokio::task::spawn_blocking(move || {
        accounts::verify_password(&current, &hash).then(|| accounts::hash_password(&new))
    })
    .await
    .unwrap_or(None);
    let new_hash = match checked {
        None => return problem("wrong_current").await,
        Some(Err(_)) => return problem("short").await,
        Some(Ok(h)) => h,
    };
    // The person's API tokens go with the old password: it may have leaked with them.
    let revoked = state
        .store
        .set_password(&viewer.user.name, &new_hash, now_ms(), false)
        .await
        .map_err(|_| Refusal::Unavailable { api: false })?;
    // Every session of the old password has ended; this browser continues in a new one.
    let cookie = start_session(&state, viewer.user.id, &viewer.address)
        .await
        .map_err(|_| Refusal::Unavailable { api: false })?;
    let detail = (revoked > 0).then(|| format!("{revoked} API tokens revoked"));
    viewer.audit(&state, "password_changed", None, detail).await;
    let mut r = Redirect::to("/account/password?changed=1").into_response();
    r.headers_mut().append(header::SET_COOKIE, cookie);
    Ok(r)
}
