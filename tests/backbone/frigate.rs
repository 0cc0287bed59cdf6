//! The Frigate definition (`integrations/frigate.toml`) against a fake Frigate written from VENDORS.md:
//! `POST /api/events/{camera}/{label}/create` with its request model (`sub_label` str, `score` float, `duration`
//! int seconds, `include_recording` bool, `draw` object; 0.18+ also `pre_capture` int seconds) answered
//! `{"success","message","event_id"}` and 404 for an unknown camera; the export fallback
//! `POST /api/export/{camera}/start/{start_s}/end/{end_s}` (float unix seconds, 202 queued, 503 queue full); and on
//! the authenticated port, `POST /api/login {"user","password"}` with the JWT only in the `frigate_token` cookie,
//! sent back as `Authorization: Bearer`.
//!
//! Frigate places an event at its own "now", so these tests publish events whose `at` is now (delivered live) or
//! two minutes ago (too late for a live event before 0.18).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};
use tillmark::clock::now_ms;
use tillmark::config::Config;

use crate::fakes::*;
use crate::support::*;

const TILL: &str = "till_front";
/// A camera in the config that Frigate's own config does not have.
const GONE: &str = "till_back";
const PASSWORD: &str = "fr1gate-Pw";
/// The till camera's window: 12.5 s before the event to 45 s after (57.5 s).
const PRE_ROLL_MS: i64 = 12_500;
const POST_ROLL_MS: i64 = 45_000;
const NAME: &str = "VOID ¥1,280 · r1 · c117";
const REFUSED: &str = "Camera till_front is not recording";

struct Frigate {
    /// `0.14` or `0.18`: only 0.18+ knows `pre_capture`.
    version: &'static str,
    /// The authenticated port (8971): every API call needs a live JWT.
    login_required: bool,
    /// JWTs handed out, and those still valid.
    jwts: Tokens,
    /// The ids of the events created.
    events: Mutex<Vec<String>>,
    exports: AtomicUsize,
    /// The next N exports find the queue full.
    queue_full: AtomicUsize,
    /// The next create answers 200 with `success: false` and this message.
    refuse_next: Mutex<Option<String>>,
}

struct FakeFrigate {
    url: String,
    requests: RequestLog,
    state: Arc<Frigate>,
}

/// What FastAPI answers when a request model rejects a field.
fn unprocessable(field: &str, msg: &str) -> Response {
    answer(
        StatusCode::UNPROCESSABLE_ENTITY,
        json!({"detail": [{"loc": ["body", field], "msg": msg}]}),
    )
}

impl FakeFrigate {
    async fn start(version: &'static str, login_required: bool) -> FakeFrigate {
        let state = Arc::new(Frigate {
            version,
            login_required,
            jwts: Tokens::default(),
            events: Mutex::default(),
            exports: AtomicUsize::new(0),
            queue_full: AtomicUsize::new(0),
            refuse_next: Mutex::default(),
        });
        let app = axum::Router::new()
            .route("/api/login", post(login))
            .route("/api/events/{camera}/{label}/create", post(create))
            .route("/api/export/{camera}/start/{start}/end/{end}", post(export))
            .fallback(|| async { answer(StatusCode::NOT_FOUND, json!({"detail": "Not Found"})) })
            .with_state(state.clone());
        let requests = RequestLog::default();
        let url = requests.serve(app).await;
        FakeFrigate {
            url,
            requests,
            state,
        }
    }

    /// Logs every session out, as a restart with a new JWT secret would.
    fn revoke_tokens(&self) {
        self.state.jwts.revoke_all();
    }

    fn issued(&self) -> Vec<String> {
        self.state.jwts.issued()
    }

    fn events(&self) -> Vec<String> {
        self.state.events.lock().unwrap().clone()
    }
}

async fn login(State(s): State<Arc<Frigate>>, body: String) -> Response {
    let body: Value = serde_json::from_str(&body).unwrap_or_default();
    if body["user"] != "tillmark" || body["password"] != PASSWORD {
        return answer(StatusCode::UNAUTHORIZED, json!({"message": "Login failed"}));
    }
    let jwt = s.jwts.issue(format!(
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.{}.c2ln",
        uuid::Uuid::new_v4().simple()
    ));
    // The JWT comes only in the cookie, never in the body.
    (
        [(
            "set-cookie",
            format!("frigate_token={jwt}; Path=/; HttpOnly; SameSite=lax"),
        )],
        axum::Json(json!({})),
    )
        .into_response()
}

/// `None` when the call may go ahead: the internal port, or a live JWT as Bearer on the authenticated one.
fn unauthorized(s: &Frigate, headers: &HeaderMap) -> Option<Response> {
    if !s.login_required {
        return None;
    }
    (!s.jwts.honours(bearer(headers)))
        .then(|| answer(StatusCode::UNAUTHORIZED, json!({"message": "Unauthorized"})))
}

/// The create request model: every field optional, each of its type; 0.18+ adds `pre_capture`. Unknown fields
/// are not part of VENDORS.md, so they are left to the tests' assertions.
fn invalid_field(version: &str, body: &Value) -> Option<(&'static str, &'static str)> {
    let Some(fields) = body.as_object() else {
        return Some(("body", "Input should be a valid dictionary"));
    };
    let integer = |v: &Value| v.is_i64() || v.is_u64();
    type Field = (&'static str, fn(&Value) -> bool, &'static str);
    let mut model: Vec<Field> = vec![
        (
            "sub_label",
            Value::is_string,
            "Input should be a valid string",
        ),
        ("score", Value::is_number, "Input should be a valid number"),
        ("duration", integer, "Input should be a valid integer"),
        (
            "include_recording",
            Value::is_boolean,
            "Input should be a valid boolean",
        ),
        (
            "draw",
            Value::is_object,
            "Input should be a valid dictionary",
        ),
    ];
    if version != "0.14" {
        model.push(("pre_capture", integer, "Input should be a valid integer"));
    }
    model.into_iter().find_map(|(field, ok, msg)| {
        fields
            .get(field)
            .is_some_and(|v| !v.is_null() && !ok(v))
            .then_some((field, msg))
    })
}

fn known_camera(camera: &str) -> Option<Response> {
    (camera != TILL).then(|| {
        answer(
            StatusCode::NOT_FOUND,
            json!({"success": false, "message": format!("{camera} is not a valid camera.")}),
        )
    })
}

async fn create(
    State(s): State<Arc<Frigate>>,
    Path((camera, _label)): Path<(String, String)>,
    headers: HeaderMap,
    body: String,
) -> Response {
    if let Some(refusal) = unauthorized(&s, &headers) {
        return refusal;
    }
    let body: Value = serde_json::from_str(&body).unwrap_or_default();
    if let Some((field, msg)) = invalid_field(s.version, &body) {
        return unprocessable(field, msg);
    }
    if let Some(refusal) = known_camera(&camera) {
        return refusal;
    }
    if let Some(message) = s.refuse_next.lock().unwrap().take() {
        return answer(
            StatusCode::OK,
            json!({"success": false, "message": message}),
        );
    }
    let now = now_ms();
    let event_id = format!(
        "{}.{:03}000-{}",
        now / 1000,
        now % 1000,
        &uuid::Uuid::new_v4().simple().to_string()[..6]
    );
    s.events.lock().unwrap().push(event_id.clone());
    answer(
        StatusCode::OK,
        json!({"success": true, "message": "Successfully created event.", "event_id": event_id}),
    )
}

async fn export(
    State(s): State<Arc<Frigate>>,
    Path((camera, start, end)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Response {
    if let Some(refusal) = unauthorized(&s, &headers) {
        return refusal;
    }
    for (field, value) in [("start_time", &start), ("end_time", &end)] {
        if value.parse::<f64>().is_err() {
            return unprocessable(field, "Input should be a valid number");
        }
    }
    if let Some(refusal) = known_camera(&camera) {
        return refusal;
    }
    if take(&s.queue_full) {
        return answer(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"success": false, "message": "Export queue is full"}),
        );
    }
    s.exports.fetch_add(1, Ordering::SeqCst);
    answer(
        StatusCode::ACCEPTED,
        json!({"success": true, "message": "Starting export of recording."}),
    )
}

/// One Frigate server: the till camera (r1 and r2) with a 12.5 s pre-roll and a 45 s post-roll, and a camera
/// Frigate does not have (r2). `login` configures the authenticated port's user.
fn frigate_config(site: &Site, url: &str, version: &str, login: bool) -> Config {
    let user = if login {
        "username = \"tillmark\"\npassword_env = \"FRIGATE_PASSWORD\"\n"
    } else {
        ""
    };
    let systems = format!(
        r#"[[camera_systems]]
id = "frigate"
integration = "frigate"
url = "{url}"
{user}[camera_systems.options]
version = "{version}"
[[cameras]]
system = "frigate"
device = "{TILL}"
name = "Till"
registers = ["shibuya-01/r1", "shibuya-01/r2"]
pre_roll = "12.5s"
post_roll = "45s"
[[cameras]]
system = "frigate"
device = "{GONE}"
name = "Back office"
registers = ["shibuya-01/r2"]
"#
    );
    site.vendor_config(&systems, &[("FRIGATE_PASSWORD", PASSWORD)])
}

fn create_call(camera: &str) -> String {
    format!("POST /api/events/{camera}/pos/create")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frigate_0_14_gets_a_live_event_lasting_whole_seconds_to_the_windows_end_without_pre_capture_or_login()
 {
    let fake = FakeFrigate::start("0.14", false).await;
    let site = Site::new();
    let (daemon, mut bridge) = start_daemon(frigate_config(&site, &fake.url, "0.14", false)).await;
    let at_ms = now_ms();
    publish_void(&site, &mut bridge, "void-1", "r1", &tokyo(at_ms)).await;

    let made = settled_bookmarks(&daemon).await.remove(0);
    assert_eq!(made["state"], "made", "{made}");
    assert_eq!(made["attempts"], 1);
    let events = fake.events();
    assert_eq!(events.len(), 1);
    assert_eq!(
        made["vendor_id"], events[0],
        "Frigate's event_id is the vendor id"
    );
    assert_eq!(
        made["footage"][0],
        json!({"label": "Frigate", "kind": "vendor", "url": format!("{}/review", fake.url), "href": "/events/1/footage/0", "camera": "Till"})
    );

    let requests = fake.requests.all();
    assert_eq!(
        fake.requests.calls(),
        [create_call(TILL)],
        "no login without a username"
    );
    let create = &requests[0];
    let body = create.json();
    assert!(create.headers.get("authorization").is_none());
    assert_eq!(create.headers["content-type"], "application/json");
    // Frigate's event starts at its "now": it must last until the window's end, in whole seconds.
    let until_end_s = (at_ms + POST_ROLL_MS - create.at_ms + 999) / 1000;
    let duration = body["duration"]
        .as_i64()
        .unwrap_or_else(|| panic!("duration is an integer: {body}"));
    assert!(
        (until_end_s..=until_end_s + 2).contains(&duration),
        "duration {duration} s, {until_end_s} s from Frigate's receipt to the window's end"
    );
    assert!(
        body.get("pre_capture").is_none(),
        "0.14 has no pre_capture: {body}"
    );
    assert_eq!(
        body,
        json!({"sub_label": NAME, "include_recording": true, "duration": duration})
    );
    daemon.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_event_on_frigate_0_14_becomes_an_export_of_its_window_retried_while_the_queue_is_full()
 {
    let fake = FakeFrigate::start("0.14", false).await;
    fake.state.queue_full.store(1, Ordering::SeqCst);
    let site = Site::new();
    let (daemon, mut bridge) = start_daemon(frigate_config(&site, &fake.url, "0.14", false)).await;
    let at_ms = seconds_ago(120);
    publish_void(&site, &mut bridge, "void-2", "r1", &tokyo(at_ms)).await;

    let made = settled_bookmarks(&daemon).await.remove(0);
    assert_eq!(made["state"], "made", "{made}");
    assert_eq!(made["attempts"], 2, "one 503, then the export");
    assert!(
        made["vendor_id"].is_null(),
        "VENDORS.md documents no id in the export's answer: {made}"
    );
    // The window in float unix seconds: 12.5 s before the event's .310 and 45 s after it.
    let export = format!(
        "POST /api/export/{TILL}/start/{}.81/end/{}.31",
        (at_ms - PRE_ROLL_MS) / 1000,
        (at_ms + POST_ROLL_MS) / 1000
    );
    assert_eq!(
        fake.requests.calls(),
        [export.clone(), export],
        "no live event two minutes late: the export, again after the 503"
    );
    assert_eq!(fake.state.exports.load(Ordering::SeqCst), 1);
    assert!(fake.events().is_empty());

    let page = newest_event_page(&daemon).await;
    assert!(
        page.contains(
            "Frigate export of the window: HTTP 503 Service Unavailable: Export queue is full"
        ),
        "{page}"
    );
    assert!(
        page.contains(
            "<td data-label=\"Detail\">export of the window instead (too late for a live mark; HTTP 202)</td>"
        ),
        "{page}"
    );
    daemon.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frigate_0_18_places_a_late_event_with_pre_capture_back_to_the_windows_start() {
    let fake = FakeFrigate::start("0.18", false).await;
    let site = Site::new();
    let (daemon, mut bridge) =
        start_daemon(frigate_config(&site, &fake.url, "0.18.1", false)).await;
    let at_ms = seconds_ago(120);
    publish_void(&site, &mut bridge, "void-3", "r1", &tokyo(at_ms)).await;

    let made = settled_bookmarks(&daemon).await.remove(0);
    assert_eq!(made["state"], "made", "{made}");
    assert_eq!(made["vendor_id"], fake.events()[0]);
    let start_ms = at_ms - PRE_ROLL_MS;
    assert_eq!(
        made["footage"][0]["url"],
        format!("{}/review?timestamp={TILL}_{}", fake.url, start_ms / 1000)
    );

    let requests = fake.requests.all();
    assert_eq!(fake.requests.calls(), [create_call(TILL)]);
    let create = &requests[0];
    let body = create.json();
    let since_start_s = (create.at_ms - start_ms + 999) / 1000;
    let pre_capture = body["pre_capture"]
        .as_i64()
        .unwrap_or_else(|| panic!("pre_capture is an integer: {body}"));
    assert!(
        (since_start_s - 2..=since_start_s).contains(&pre_capture),
        "pre_capture {pre_capture} s, {since_start_s} s from the window's start to Frigate's receipt"
    );
    assert_eq!(
        body,
        json!({
            "sub_label": NAME,
            "include_recording": true,
            "pre_capture": pre_capture,
            "duration": 58,
        }),
        "the whole 57.5 s window, rounded up to whole seconds"
    );
    daemon.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frigate_refusals_show_in_the_index_an_unknown_camera_and_success_false() {
    let fake = FakeFrigate::start("0.14", false).await;
    *fake.state.refuse_next.lock().unwrap() = Some(REFUSED.to_string());
    let site = Site::new();
    let (daemon, mut bridge) = start_daemon(frigate_config(&site, &fake.url, "0.14", false)).await;
    publish_void(&site, &mut bridge, "void-4", "r2", &tokyo(now_ms())).await;

    let bookmarks = settled_bookmarks(&daemon).await;
    assert_failed(
        &bookmark_on(&bookmarks, "device", GONE),
        &format!(
            "Frigate has no camera \"{GONE}\" (HTTP 404 Not Found): {GONE} is not a valid camera."
        ),
    );
    assert_failed(
        &bookmark_on(&bookmarks, "device", TILL),
        &format!("Frigate create: HTTP 200 OK with an error: {REFUSED}"),
    );
    let mut calls = fake.requests.calls();
    calls.sort();
    assert_eq!(
        calls,
        [create_call(GONE), create_call(TILL)],
        "neither is retried"
    );
    assert!(fake.events().is_empty());
    daemon.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frigate_on_its_authenticated_port_logs_in_for_the_cookie_jwt_and_again_once_it_is_revoked()
{
    let fake = FakeFrigate::start("0.18", true).await;
    let site = Site::new();
    let (daemon, mut bridge) = start_daemon(frigate_config(&site, &fake.url, "0.18", true)).await;
    publish_void(&site, &mut bridge, "void-5", "r1", &tokyo(now_ms())).await;
    let first = settled_bookmarks_of(&daemon, "void-5").await.remove(0);
    assert_eq!(first["state"], "made", "{first}");

    fake.revoke_tokens();
    publish_void(&site, &mut bridge, "void-6", "r1", &tokyo(now_ms())).await;
    let second = settled_bookmarks_of(&daemon, "void-6").await.remove(0);
    assert_eq!(second["state"], "made", "{second}");
    assert_eq!(
        second["attempts"], 1,
        "the 401 is answered by a new login within the attempt"
    );

    let create = create_call(TILL);
    let create = create.as_str();
    assert_eq!(
        fake.requests.calls(),
        ["POST /api/login", create, create, "POST /api/login", create]
    );
    let requests = fake.requests.all();
    assert_eq!(
        requests[0].json(),
        json!({"user": "tillmark", "password": PASSWORD})
    );
    let jwts = fake.issued();
    assert_eq!(jwts.len(), 2);
    let bearer = |i: usize| requests[i].headers["authorization"].to_str().unwrap();
    assert_eq!(bearer(1), format!("Bearer {}", jwts[0]));
    assert_eq!(bearer(2), format!("Bearer {}", jwts[0]), "the revoked one");
    assert_eq!(bearer(4), format!("Bearer {}", jwts[1]));
    let events = fake.events();
    assert_eq!(
        events.len(),
        2,
        "one Frigate event per bookmark, none twice"
    );
    assert_eq!(second["vendor_id"], events[1]);
    daemon.shutdown().await;
}
