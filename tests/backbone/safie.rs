//! The Safie definition (`integrations/safie.toml`) against a fake Safie API v2 written from VENDORS.md:
//! `POST /v2/devices/{device_id}/events {"definition_id"}` registers an event at the server's "now", every call
//! carries `Safie-API-Key`, timestamps are ISO 8601 with an offset, a clip of a window is requested with
//! `POST /v2/devices/{device_id}/media_files/requests {"start","end"}` (answered with the `request_id` to poll),
//! and the limits are tight: 429 with `Retry-After`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};
use tillmark::clock::now_ms;
use tillmark::config::Config;

use crate::fakes::*;
use crate::support::*;

const API_KEY: &str = "sf-4b1d9e7c2a";
const DEVICE: &str = "jNrVbtG6YbVhL0qQtGgp";
const DEFINITION: &str = "evdef-8c41f0";
const CLIP_REQUEST: i64 = 4711;

struct Safie {
    /// The next N calls find the rate limit spent.
    busy: AtomicUsize,
    /// Event definitions registered, by device.
    events: Mutex<Vec<(String, String)>>,
    /// Clip requests, by device: start and end as sent.
    clips: Mutex<Vec<(String, String, String)>>,
}

struct FakeSafie {
    url: String,
    requests: RequestLog,
    state: Arc<Safie>,
}

impl FakeSafie {
    async fn start() -> FakeSafie {
        let state = Arc::new(Safie {
            busy: AtomicUsize::new(0),
            events: Mutex::default(),
            clips: Mutex::default(),
        });
        let app = axum::Router::new()
            .route("/v2/devices/{device}/{*what}", post(device_call))
            .fallback(|| async { answer(StatusCode::NOT_FOUND, json!({"message": "Not Found"})) })
            .with_state(state.clone());
        let requests = RequestLog::default();
        let url = requests.serve(app).await;
        FakeSafie {
            url,
            requests,
            state,
        }
    }
}

/// `None` when the call may go ahead: the right key, a device Safie has, and room under the rate limit.
fn refusal(s: &Safie, headers: &HeaderMap, device: &str) -> Option<Response> {
    if headers.get("safie-api-key").is_none_or(|k| k != API_KEY) {
        return Some(answer(
            StatusCode::UNAUTHORIZED,
            json!({"message": "Invalid API key"}),
        ));
    }
    if take(&s.busy) {
        return Some(
            (
                StatusCode::TOO_MANY_REQUESTS,
                [("retry-after", "1")],
                axum::Json(json!({"message": "Too Many Requests"})),
            )
                .into_response(),
        );
    }
    (device != DEVICE).then(|| {
        answer(
            StatusCode::NOT_FOUND,
            json!({"message": "Device not found"}),
        )
    })
}

/// A call on a device: the event register or the clip request, once [`refusal`] lets it through.
async fn device_call(
    State(s): State<Arc<Safie>>,
    Path((device, what)): Path<(String, String)>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let call = match what.as_str() {
        "events" => register,
        "media_files/requests" => clip,
        _ => return answer(StatusCode::NOT_FOUND, json!({"message": "Not Found"})),
    };
    if let Some(r) = refusal(&s, &headers, &device) {
        return r;
    }
    call(&s, device, serde_json::from_str(&body).unwrap_or_default())
}

fn register(s: &Safie, device: String, body: Value) -> Response {
    let Some(definition) = body["definition_id"].as_str() else {
        return answer(
            StatusCode::BAD_REQUEST,
            json!({"message": "definition_id is required"}),
        );
    };
    s.events
        .lock()
        .unwrap()
        .push((device, definition.to_string()));
    answer(StatusCode::OK, json!({}))
}

fn clip(s: &Safie, device: String, body: Value) -> Response {
    let time = |field: &str| {
        body[field].as_str().and_then(|t| {
            chrono::DateTime::parse_from_rfc3339(t)
                .ok()
                .map(|at| (t, at))
        })
    };
    let (Some((start, from)), Some((end, to))) = (time("start"), time("end")) else {
        return answer(
            StatusCode::BAD_REQUEST,
            json!({"message": "start and end must be ISO 8601 with an offset"}),
        );
    };
    if from >= to {
        return answer(
            StatusCode::BAD_REQUEST,
            json!({"message": "start must be before end"}),
        );
    }
    s.clips
        .lock()
        .unwrap()
        .push((device, start.to_string(), end.to_string()));
    answer(StatusCode::OK, json!({"request_id": CLIP_REQUEST}))
}

/// A config with the site's Tokyo store and the given Safie camera systems and cameras; `SAFIE_API_KEY` is the
/// right key and `SAFIE_OLD_KEY` a revoked one.
fn safie_config(site: &Site, systems: &str) -> Config {
    site.vendor_config(
        systems,
        &[
            ("SAFIE_API_KEY", API_KEY),
            ("SAFIE_OLD_KEY", "sf-revoked-0000"),
        ],
    )
}

/// One Safie account with the event definition, its camera on r1 (default 10 s pre-roll, 20 s post-roll).
fn one_camera(url: &str) -> String {
    format!(
        r#"[[camera_systems]]
id = "safie"
integration = "safie"
url = "{url}"
api_key_env = "SAFIE_API_KEY"
[camera_systems.options]
definition_id = "{DEFINITION}"
[[cameras]]
system = "safie"
device = "{DEVICE}"
name = "Register 1"
registers = ["shibuya-01/r1"]
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn safie_registers_a_live_event_of_its_definition_with_the_api_key_after_waiting_out_a_429() {
    let fake = FakeSafie::start().await;
    fake.state.busy.store(1, Ordering::SeqCst);
    let site = Site::new();
    let (daemon, mut bridge) = start_daemon(safie_config(&site, &one_camera(&fake.url))).await;
    publish_void(&site, &mut bridge, "void-1", "r1", &tokyo(now_ms())).await;

    let made = settled_bookmarks(&daemon).await.remove(0);
    assert_eq!(made["state"], "made", "{made}");
    assert_eq!(
        made["attempts"], 1,
        "the 429 paced the system and counted no attempt"
    );
    assert!(
        made["vendor_id"].is_null(),
        "VENDORS.md documents no id in the answer: {made}"
    );
    assert_eq!(
        *fake.state.events.lock().unwrap(),
        [(DEVICE.to_string(), DEFINITION.to_string())]
    );

    let requests = fake.requests.all();
    let path = format!("POST /v2/devices/{DEVICE}/events");
    assert_eq!(fake.requests.calls(), [path.clone(), path]);
    let waited = requests[1].at - requests[0].at;
    assert!(
        waited >= Duration::from_millis(950),
        "Retry-After: 1 was honoured (waited {waited:?})"
    );
    for r in &requests {
        assert_eq!(r.headers["safie-api-key"], API_KEY);
        assert!(r.headers.get("authorization").is_none());
        assert_eq!(r.headers["content-type"], "application/json");
        assert_eq!(
            r.json(),
            json!({"definition_id": DEFINITION}),
            "no time is sent"
        );
    }
    daemon.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_event_on_safie_becomes_a_clip_request_of_its_window_in_the_stores_offset() {
    let fake = FakeSafie::start().await;
    let site = Site::new();
    let (daemon, mut bridge) = start_daemon(safie_config(&site, &one_camera(&fake.url))).await;
    let at_ms = seconds_ago(120);
    publish_void(&site, &mut bridge, "void-2", "r1", &tokyo(at_ms)).await;

    let made = settled_bookmarks(&daemon).await.remove(0);
    assert_eq!(made["state"], "made", "{made}");
    assert_eq!(made["vendor_id"], CLIP_REQUEST.to_string());
    assert!(fake.state.events.lock().unwrap().is_empty());

    let requests = fake.requests.all();
    assert_eq!(
        fake.requests.calls(),
        [format!("POST /v2/devices/{DEVICE}/media_files/requests")]
    );
    assert_eq!(requests[0].headers["safie-api-key"], API_KEY);
    let (start, end) = (tokyo(at_ms - 10_000), tokyo(at_ms + 20_000));
    assert!(
        start.ends_with(".310+09:00") && start.len() == 29,
        "milliseconds and Tokyo's offset: {start}"
    );
    assert_eq!(requests[0].json(), json!({"start": start, "end": end}));
    assert_eq!(
        *fake.state.clips.lock().unwrap(),
        [(DEVICE.to_string(), start, end)]
    );

    let page = newest_event_page(&daemon).await;
    assert!(
        page.contains(
            "<td data-label=\"Detail\">clip request of the window instead (too late for a live mark; HTTP 200)</td>"
        ),
        "{page}"
    );
    daemon.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn safie_without_a_definition_id_fails_before_any_request_and_a_revoked_key_shows_the_401() {
    let fake = FakeSafie::start().await;
    let site = Site::new();
    let url = &fake.url;
    let systems = format!(
        r#"[[camera_systems]]
id = "safie-unset"
integration = "safie"
url = "{url}"
api_key_env = "SAFIE_API_KEY"
[[camera_systems]]
id = "safie-old"
integration = "safie"
url = "{url}"
api_key_env = "SAFIE_OLD_KEY"
[camera_systems.options]
definition_id = "{DEFINITION}"
[[cameras]]
system = "safie-unset"
device = "{DEVICE}"
name = "Register 1"
registers = ["shibuya-01/r1"]
[[cameras]]
system = "safie-old"
device = "{DEVICE}"
name = "Register 1 (old account)"
registers = ["shibuya-01/r1"]
"#
    );
    let (daemon, mut bridge) = start_daemon(safie_config(&site, &systems)).await;
    publish_void(&site, &mut bridge, "void-3", "r1", &tokyo(now_ms())).await;

    let bookmarks = settled_bookmarks(&daemon).await;
    // The template's undefined-variable error, not a request with a null definition.
    assert_failed(
        &bookmark_on(&bookmarks, "system", "safie-unset"),
        "definition safie: template error: undefined value (in <string>:1): \
         {{ options.definition_id | tojson }}",
    );
    assert_failed(
        &bookmark_on(&bookmarks, "system", "safie-old"),
        "Safie create: HTTP 401 Unauthorized: Invalid API key",
    );

    let requests = fake.requests.all();
    assert_eq!(
        requests.len(),
        1,
        "only the revoked key's call went out, and it is not retried"
    );
    assert_eq!(requests[0].headers["safie-api-key"], "sf-revoked-0000");
    assert!(fake.state.events.lock().unwrap().is_empty());
    daemon.shutdown().await;
}
