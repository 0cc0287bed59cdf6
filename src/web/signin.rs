//! Signing in and out, and changing one's password (`/login`, `/login/code`, `/logout`, `/account/password`).
//!
//! Sign-in is throttled per name and address, per address, and (more slowly) per name everywhere but where
//! its person signs in, counted from the audit log's refused sign-ins, so the limits hold across restarts and
//! nobody elsewhere can lock an owner out. A name that does not exist costs the same password check as one that does,
//! so the answer's timing does not tell which names exist. The sign-in form has its own CSRF token, held in
//! a short cookie, since there is no session yet to hold it.
//!
//! A person with an authenticator code (`tillmark user totp`) is not signed in by the password alone: a right
//! password starts a challenge, held server side and named by a short cookie, and the session begins only when
//! a code follows within [`CODE_WAIT_MS`]. A wrong or spent code is a refused sign-in like a wrong password,
//! so the same throttle holds guesses at codes.

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
use super::format::{FALLBACK, Zone};
use super::pages::render;
use crate::accounts::User;
use crate::accounts::{self, MIN_PASSWORD, random_secret, token_digest};
use crate::clock::now_ms;
use crate::store::{NewAuditEntry, SignInRecord, SignInWindows};

const SIGN_IN_COOKIE: &str = "tillmark_signin";
/// Names the challenge of a sign-in whose password was right and whose code is still to come.
const CODE_COOKIE: &str = "tillmark_code";
/// How long after the password the code may come: time to open an app, not to go for lunch.
pub const CODE_WAIT_MS: i64 = 5 * 60_000;
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

fn windows(now: i64) -> SignInWindows {
    SignInWindows {
        refused_ms: now - THROTTLE_WINDOW_MS,
        refused_by_name_ms: now - DAY_MS,
        usual_ms: now - USUAL_ADDRESS_MS,
    }
}

/// An audit entry of a sign-in attempt, in the name typed.
fn attempt(
    now: i64,
    name: &str,
    address: &str,
    action: &str,
    detail: Option<&str>,
) -> NewAuditEntry {
    NewAuditEntry {
        at_ms: now,
        actor: Some(name.to_string()),
        address: Some(address.to_string()),
        action: action.to_string(),
        detail: detail.map(str::to_string),
        ..Default::default()
    }
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

/// Which form the sign-in page shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// Name and password.
    Password,
    /// The authenticator code, after a right password.
    Code,
}

fn sign_in_page(
    state: &AppState,
    status: StatusCode,
    step: Step,
    next: &str,
    name: &str,
    problem: Option<&str>,
) -> Response {
    let token = random_secret();
    let step = match step {
        Step::Password => "password",
        Step::Code => "code",
    };
    let mut page = render(
        status,
        "login.html",
        context! {
            page => "login", nav => (), step, next, name, problem, csrf => &token, min => MIN_PASSWORD,
            digits => crate::totp::DIGITS, wait => CODE_WAIT_MS / 60_000,
        },
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
        Step::Password,
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
    let page =
        |status, problem| sign_in_page(&state, status, Step::Password, &next, name, Some(problem));
    let expected = cookie(
        &headers,
        &auth::cookie_name(&state.config, SIGN_IN_COOKIE, "/login"),
    )
    .unwrap_or("");
    if expected.is_empty() || !constant_time_eq(expected.as_bytes(), f.csrf.as_bytes()) {
        return page(StatusCode::FORBIDDEN, "expired_form");
    }
    let now = now_ms();
    let Ok(record) = state
        .store
        .sign_in_record(name, &address, &windows(now))
        .await
    else {
        return page(StatusCode::SERVICE_UNAVAILABLE, "unavailable");
    };
    if throttled(&record) {
        return throttled_page(&state, now, name, &address, &next).await;
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
        let refused = attempt(now, name, &address, "sign_in_refused", None);
        let _ = state.store.record(&refused).await;
        tracing::warn!(user = name, %address, "Sign-in refused.");
        return page(StatusCode::UNAUTHORIZED, "refused");
    };
    if user.totp {
        return ask_for_code(&state, &user, &address, &next).await;
    }
    finish_sign_in(&state, &user, &address, &next, None).await
}

/// The answer to a sign-in held by the throttle. Not counted as refused: waiting out the limit must end it,
/// not extend it.
async fn throttled_page(
    state: &AppState,
    now: i64,
    name: &str,
    address: &str,
    next: &str,
) -> Response {
    let entry = attempt(now, name, address, "sign_in_throttled", None);
    let _ = state.store.record(&entry).await;
    let mut r = sign_in_page(
        state,
        StatusCode::TOO_MANY_REQUESTS,
        Step::Password,
        next,
        name,
        Some("throttled"),
    );
    r.headers_mut().insert(
        header::RETRY_AFTER,
        (THROTTLE_WINDOW_MS / 1000).to_string().parse().unwrap(),
    );
    r
}

/// The person proved who they are: a session, the audit entry, and back to the page they asked for.
async fn finish_sign_in(
    state: &AppState,
    user: &User,
    address: &str,
    next: &str,
    detail: Option<&str>,
) -> Response {
    let Ok(cookie) = start_session(state, user.id, address).await else {
        let problem = Some("unavailable");
        return sign_in_page(
            state,
            StatusCode::SERVICE_UNAVAILABLE,
            Step::Password,
            next,
            &user.name,
            problem,
        );
    };
    let entry = attempt(now_ms(), &user.name, address, "sign_in", detail);
    let _ = state.store.record(&entry).await;
    tracing::info!(user = %user.name, %address, "Signed in.");
    let mut r = Redirect::to(next).into_response();
    r.headers_mut().append(header::SET_COOKIE, cookie);
    for name in [SIGN_IN_COOKIE, CODE_COOKIE] {
        r.headers_mut().append(
            header::SET_COOKIE,
            set_cookie(&state.config, name, "", "/login", Some(0)),
        );
    }
    r
}

/// The password was right and the person has an authenticator code: a challenge, and the page that asks for
/// the code. Nobody is signed in yet.
async fn ask_for_code(state: &AppState, user: &User, address: &str, next: &str) -> Response {
    let secret = random_secret();
    let now = now_ms();
    let added = state
        .store
        .add_sign_in_challenge(&token_digest(&secret), user.id, now, now - CODE_WAIT_MS)
        .await;
    if added.is_err() {
        let problem = Some("unavailable");
        let status = StatusCode::SERVICE_UNAVAILABLE;
        return sign_in_page(state, status, Step::Password, next, &user.name, problem);
    }
    tracing::info!(user = %user.name, %address, "Password accepted; asking for the authenticator code.");
    let mut page = sign_in_page(state, StatusCode::OK, Step::Code, next, &user.name, None);
    page.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(
            &state.config,
            CODE_COOKIE,
            &secret,
            "/login",
            Some(CODE_WAIT_MS / 1000),
        ),
    );
    page
}

#[derive(Debug, Deserialize)]
pub struct CodeForm {
    code: String,
    csrf: String,
    next: Option<String>,
}

/// The second step: the code from the person's authenticator app, for the challenge their cookie names.
pub async fn sign_in_code(
    State(state): State<AppState>,
    ClientAddress(address): ClientAddress,
    headers: HeaderMap,
    Form(f): Form<CodeForm>,
) -> Response {
    let next = local_path(f.next.as_deref());
    let start_again =
        |status, problem| sign_in_page(&state, status, Step::Password, &next, "", Some(problem));
    let expected = cookie(
        &headers,
        &auth::cookie_name(&state.config, SIGN_IN_COOKIE, "/login"),
    )
    .unwrap_or("");
    if expected.is_empty() || !constant_time_eq(expected.as_bytes(), f.csrf.as_bytes()) {
        return start_again(StatusCode::FORBIDDEN, "expired_form");
    }
    let challenge = cookie(
        &headers,
        &auth::cookie_name(&state.config, CODE_COOKIE, "/login"),
    )
    .unwrap_or("");
    let now = now_ms();
    let user = match challenge {
        "" => None,
        c => match state
            .store
            .sign_in_challenge(&token_digest(c), now - CODE_WAIT_MS)
            .await
        {
            Ok(user) => user,
            Err(_) => return start_again(StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
        },
    };
    // Gone, too old, or its person's code was turned off since: the password again.
    let Some(user) = user.filter(|u| u.totp) else {
        return start_again(StatusCode::FORBIDDEN, "code_expired");
    };
    let Ok(record) = state
        .store
        .sign_in_record(&user.name, &address, &windows(now))
        .await
    else {
        return start_again(StatusCode::SERVICE_UNAVAILABLE, "unavailable");
    };
    if throttled(&record) {
        // The password must come again once the wait is over, not only a code.
        let _ = state.store.end_sign_in_challenges(user.id).await;
        return throttled_page(&state, now, &user.name, &address, &next).await;
    }
    let totp = match state.store.totp(user.id).await {
        Ok(Some(totp)) => totp,
        Ok(None) => return start_again(StatusCode::FORBIDDEN, "code_expired"),
        Err(_) => return start_again(StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
    };
    let step =
        crate::totp::accepted_step(&totp.secret, &f.code, now.div_euclid(1000), totp.last_step);
    let spent = match step {
        Some(step) => match state.store.use_totp_step(user.id, step).await {
            Ok(spent) => spent,
            Err(_) => return start_again(StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
        },
        None => false,
    };
    if !spent {
        let detail = Some("wrong or already used authenticator code");
        let refused = attempt(now, &user.name, &address, "sign_in_refused", detail);
        let _ = state.store.record(&refused).await;
        tracing::warn!(user = %user.name, %address, "Sign-in refused: wrong or already used authenticator code.");
        let status = StatusCode::UNAUTHORIZED;
        return sign_in_page(
            &state,
            status,
            Step::Code,
            &next,
            &user.name,
            Some("code_refused"),
        );
    }
    let _ = state.store.end_sign_in_challenges(user.id).await;
    finish_sign_in(
        &state,
        &user,
        &address,
        &next,
        Some("with authenticator code"),
    )
    .await
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
    // The zones of the stores, and UTC: the ones a person of this chain reads times in.
    let mut zones: Vec<&str> = state
        .config
        .stores
        .iter()
        .map(|s| s.timezone.name())
        .chain(std::iter::once("UTC"))
        .chain(viewer.user.timezone.as_deref())
        .collect();
    zones.sort_unstable();
    zones.dedup();
    let stores_zone = viewer.stores_zone(&state.config);
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
            zones,
            stores_zone => stores_zone.name(),
            stores_zone_differs => stores_zone == FALLBACK && state.config.stores.len() > 1,
            chosen_zone => &viewer.user.timezone,
        },
    )
}

#[derive(Debug, Deserialize)]
pub struct Changed {
    changed: Option<String>,
    zone: Option<String>,
}

pub async fn password_form(
    State(state): State<AppState>,
    Signed(viewer, _): Signed<Account>,
    Query(q): Query<Changed>,
) -> Response {
    let note = match (q.changed, q.zone) {
        (Some(_), _) => Some("changed"),
        (None, Some(_)) => Some("zone_saved"),
        (None, None) => None,
    };
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

#[derive(Debug, Deserialize)]
pub struct ZoneForm {
    csrf: String,
    /// An IANA name, or empty for the person's stores' zone.
    timezone: String,
}

/// Saves the zone a person reads times in where no store names one.
pub async fn change_timezone(
    State(state): State<AppState>,
    Signed(viewer, _): Signed<Account>,
    Form(f): Form<ZoneForm>,
) -> Result<Response, Refusal> {
    viewer.check_csrf(&f.csrf)?;
    let chosen = match f.timezone.trim() {
        "" => None,
        name => match Zone::named(name).and_then(|z| z.name()) {
            Some(name) => Some(name),
            None => {
                return Ok(password_page(
                    &state,
                    &viewer,
                    StatusCode::BAD_REQUEST,
                    Some("zone_unknown"),
                )
                .await);
            }
        },
    };
    state
        .store
        .set_timezone(&viewer.user.name, chosen, now_ms())
        .await
        .map_err(|_| Refusal::Unavailable { api: false })?;
    Ok(Redirect::to("/account/password?zone=1").into_response())
}
