//! A fake Nx Witness server, written from VENDORS.md and the REST v4 spec excerpt: session login with
//! `expiresInS`, Bearer tokens, expired sessions answered with 403 + `x-auth-result: Auth_WrongSessionToken`,
//! bookmark create and search on `/rest/v4/devices/{deviceId}/bookmarks`, errors as
//! `{"error","errorId","errorString"}`. It records every create it stores and can be told to fail.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

pub const SERVER_ID: &str = "5a2f9c1e-0000-4000-8000-00000000c0de";

#[derive(Debug, Clone)]
pub struct StoredBookmark {
    pub id: String,
    pub device: String,
    pub name: String,
    pub description: String,
    pub start_ms: i64,
    pub duration_ms: i64,
    pub tags: Vec<String>,
    /// The raw JSON body the server received, as text.
    pub body: String,
}

#[derive(Default)]
pub struct Faults {
    /// Every request answers 503 while set.
    pub outage: AtomicBool,
    /// The next N creates store the bookmark, then answer 500 (the outcome the client sees is a failure).
    pub store_then_fail: AtomicUsize,
    /// Delay before answering a create, in ms.
    pub create_delay_ms: AtomicU64,
}

pub struct NxState {
    pub username: String,
    pub password: String,
    pub token_lifetime_s: u64,
    pub devices: Vec<String>,
    sessions: Mutex<HashMap<String, Instant>>,
    pub bookmarks: Mutex<Vec<StoredBookmark>>,
    pub logins: AtomicUsize,
    pub faults: Faults,
    next: AtomicU64,
}

#[derive(Clone)]
pub struct FakeNx {
    pub url: String,
    pub state: Arc<NxState>,
}

fn nx_error(status: StatusCode, id: &str, text: &str) -> Response {
    let code = match status.as_u16() {
        400 | 422 => "2",
        401 => "11",
        403 => "12",
        404 => "4",
        _ => "100",
    };
    (
        status,
        Json(json!({ "error": code, "errorId": id, "errorString": text })),
    )
        .into_response()
}

impl FakeNx {
    pub async fn start(devices: &[&str]) -> FakeNx {
        Self::start_with_token_lifetime(devices, 3600).await
    }

    pub async fn start_with_token_lifetime(devices: &[&str], token_lifetime_s: u64) -> FakeNx {
        Self::start_at("127.0.0.1:0", devices, token_lifetime_s).await
    }

    /// A server on a given address: one that was unreachable until now, as after a network outage.
    pub async fn start_at(addr: &str, devices: &[&str], token_lifetime_s: u64) -> FakeNx {
        let state = Arc::new(NxState {
            username: "tillmark".into(),
            password: "s3cret-pw".into(),
            token_lifetime_s,
            devices: devices.iter().map(|d| d.to_string()).collect(),
            sessions: Mutex::new(HashMap::new()),
            bookmarks: Mutex::new(Vec::new()),
            logins: AtomicUsize::new(0),
            faults: Faults::default(),
            next: AtomicU64::new(1),
        });
        Self::serve(state, addr).await
    }

    async fn serve(state: Arc<NxState>, addr: &str) -> FakeNx {
        let app = axum::Router::new()
            .route("/rest/v4/login/sessions", post(login))
            .route(
                "/rest/v4/devices/{device}/bookmarks",
                post(create).get(search),
            )
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .expect("bind fake Nx");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeNx { url, state }
    }

    /// Ends every session, as a server restart or an admin would: the next call with an old token gets 403.
    pub fn expire_sessions(&self) {
        self.state.sessions.lock().unwrap().clear();
    }

    pub fn bookmarks(&self) -> Vec<StoredBookmark> {
        self.state.bookmarks.lock().unwrap().clone()
    }

    /// Bookmarks carrying `tag` (an event key).
    pub fn with_tag(&self, tag: &str) -> Vec<StoredBookmark> {
        self.bookmarks()
            .into_iter()
            .filter(|b| b.tags.iter().any(|t| t == tag))
            .collect()
    }
}

async fn login(State(s): State<Arc<NxState>>, body: String) -> Response {
    if s.faults.outage.load(Ordering::SeqCst) {
        return nx_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "serviceUnavailable",
            "Server is starting",
        );
    }
    let v: Value = match serde_json::from_str(&body) {
        Ok(v) => v,
        Err(_) => return nx_error(StatusCode::BAD_REQUEST, "invalidParameter", "Invalid JSON"),
    };
    let (Some(user), Some(pw)) = (
        v.get("username").and_then(|u| u.as_str()),
        v.get("password").and_then(|p| p.as_str()),
    ) else {
        return nx_error(
            StatusCode::BAD_REQUEST,
            "missingParameter",
            "Missing required parameter: username",
        );
    };
    if user != s.username || pw != s.password {
        return nx_error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Wrong user name or password.",
        );
    }
    s.logins.fetch_add(1, Ordering::SeqCst);
    let token = format!("vms-{}", uuid::Uuid::new_v4().simple());
    s.sessions.lock().unwrap().insert(
        token.clone(),
        Instant::now() + Duration::from_secs(s.token_lifetime_s),
    );
    Json(json!({
        "id": uuid::Uuid::new_v4().to_string(),
        "username": user,
        "token": token,
        "ageS": 0,
        "expiresInS": s.token_lifetime_s,
    }))
    .into_response()
}

/// `None` when the request carries a live session token, else the server's refusal.
fn refusal(s: &NxState, headers: &HeaderMap) -> Option<Response> {
    let Some(auth) = headers.get("authorization").and_then(|h| h.to_str().ok()) else {
        return Some(nx_error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Authorization required",
        ));
    };
    let token = auth.strip_prefix("Bearer ").unwrap_or_default();
    let valid = s
        .sessions
        .lock()
        .unwrap()
        .get(token)
        .is_some_and(|exp| Instant::now() < *exp);
    if valid {
        None
    } else {
        let mut resp = nx_error(StatusCode::FORBIDDEN, "forbidden", "Session expired");
        resp.headers_mut()
            .insert("x-auth-result", "Auth_WrongSessionToken".parse().unwrap());
        Some(resp)
    }
}

/// Numbers may be sent as numbers or numeric strings.
fn int_field(v: &Value, key: &str) -> Option<i64> {
    match v.get(key)? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

async fn create(
    State(s): State<Arc<NxState>>,
    Path(device): Path<String>,
    headers: HeaderMap,
    body: String,
) -> Response {
    if s.faults.outage.load(Ordering::SeqCst) {
        return nx_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "serviceUnavailable",
            "Server is unavailable",
        );
    }
    if let Some(resp) = refusal(&s, &headers) {
        return resp;
    }
    let delay = s.faults.create_delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    if !s.devices.contains(&device) {
        return nx_error(
            StatusCode::NOT_FOUND,
            "notFound",
            &format!("Resource '{device}' not found"),
        );
    }
    let v: Value = match serde_json::from_str(&body) {
        Ok(v) => v,
        Err(_) => return nx_error(StatusCode::BAD_REQUEST, "invalidParameter", "Invalid JSON"),
    };
    let Some(name) = v.get("name").and_then(|n| n.as_str()) else {
        return nx_error(
            StatusCode::BAD_REQUEST,
            "missingParameter",
            "Missing required parameter: name",
        );
    };
    let Some(duration_ms) = int_field(&v, "durationMs") else {
        return nx_error(
            StatusCode::BAD_REQUEST,
            "missingParameter",
            "Missing required parameter: durationMs",
        );
    };
    let start_ms = int_field(&v, "startTimeMs").unwrap_or(0);
    let tags: Vec<String> = v
        .get("tags")
        .and_then(|t| t.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|t| t.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let n = s.next.fetch_add(1, Ordering::SeqCst);
    let bookmark = StoredBookmark {
        id: format!("{}_{SERVER_ID}", uuid::Uuid::from_u128(n as u128)),
        device: device.clone(),
        name: name.to_string(),
        description: v
            .get("description")
            .and_then(|d| d.as_str())
            .unwrap_or_default()
            .to_string(),
        start_ms,
        duration_ms,
        tags: tags.clone(),
        body: body.clone(),
    };
    s.bookmarks.lock().unwrap().push(bookmark.clone());
    let pending_failures = s.faults.store_then_fail.load(Ordering::SeqCst);
    if pending_failures > 0 {
        s.faults.store_then_fail.fetch_sub(1, Ordering::SeqCst);
        return nx_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internalError",
            "Database write timeout",
        );
    }
    Json(json!({
        "id": bookmark.id,
        "deviceId": device,
        "name": bookmark.name,
        "description": bookmark.description,
        "startTimeMs": start_ms,
        "durationMs": duration_ms,
        "tags": tags,
        "creationTimeMs": chrono::Utc::now().timestamp_millis(),
    }))
    .into_response()
}

async fn search(
    State(s): State<Arc<NxState>>,
    Path(device): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if s.faults.outage.load(Ordering::SeqCst) {
        return nx_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "serviceUnavailable",
            "Server is unavailable",
        );
    }
    if let Some(resp) = refusal(&s, &headers) {
        return resp;
    }
    let from = q
        .get("startTimeMs")
        .and_then(|v| v.parse::<i64>().ok())
        .unwrap_or(i64::MIN);
    let to = q
        .get("endTimeMs")
        .and_then(|v| v.parse::<i64>().ok())
        .unwrap_or(i64::MAX);
    let words: Vec<String> = q
        .get("text")
        .map(|t| t.split_whitespace().map(str::to_string).collect())
        .unwrap_or_default();
    let list: Vec<Value> = s
        .bookmarks
        .lock()
        .unwrap()
        .iter()
        .filter(|b| b.device == device && b.start_ms >= from && b.start_ms + b.duration_ms <= to)
        .filter(|b| {
            words.iter().all(|w| {
                b.name.contains(w.as_str())
                    || b.description.contains(w.as_str())
                    || b.tags.iter().any(|t| t.contains(w.as_str()))
            })
        })
        .map(|b| {
            json!({ "id": b.id, "deviceId": b.device, "name": b.name, "description": b.description,
                    "startTimeMs": b.start_ms, "durationMs": b.duration_ms, "tags": b.tags })
        })
        .collect();
    Json(Value::Array(list)).into_response()
}
