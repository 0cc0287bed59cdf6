//! The Rhombus definition (`integrations/rhombus.toml`) against a fake Rhombus API written from VENDORS.md:
//! `POST /api/camera/createCustomFootageSeekpoints` with `x-auth-scheme: api-token` and `x-auth-apikey`, 401
//! without them, 429 with `Retry-After` when the token bucket is empty, and logical failures as HTTP 200 with
//! `{"error": true, "errorMsg": ...}`.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::IntoResponse;
use serde_json::{Value, json};
use tillmark::config::Config;

use crate::support::*;

const API_KEY: &str = "rh-key-7f3a";
const DOOR_CAM: &str = "AbCdEfGhIjKlMnOpQrStUv";
const TILL_CAM: &str = "ZyXwVuTsRqPoNmLkJiHgFe";
const GONE_CAM: &str = "NoSuchCameraUuid000000";
const PATH: &str = "/api/camera/createCustomFootageSeekpoints";

#[derive(Clone)]
struct Seen {
    at: Instant,
    method: Method,
    path: String,
    headers: HeaderMap,
    body: Value,
}

#[derive(Clone, Default)]
struct FakeRhombus {
    requests: Arc<Mutex<Vec<Seen>>>,
}

impl FakeRhombus {
    fn creates(&self) -> Vec<(Instant, HeaderMap, Value)> {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .map(|s| (s.at, s.headers.clone(), s.body.clone()))
            .collect()
    }
}

/// Serves the create call; the first request finds the token bucket empty.
async fn start_fake_rhombus() -> (String, FakeRhombus) {
    let fake = FakeRhombus::default();
    let state = fake.clone();
    let app = axum::Router::new().fallback(
        move |method: Method, uri: Uri, headers: HeaderMap, body: String| {
            let state = state.clone();
            async move {
                let mut requests = state.requests.lock().unwrap();
                requests.push(Seen {
                    at: Instant::now(),
                    method: method.clone(),
                    path: uri.path().to_string(),
                    headers: headers.clone(),
                    body: serde_json::from_str(&body).unwrap_or(Value::Null),
                });
                if method != Method::POST || uri.path() != PATH {
                    return (StatusCode::NOT_FOUND, "not found").into_response();
                }
                let authorized = headers
                    .get("x-auth-scheme")
                    .is_some_and(|v| v == "api-token")
                    && headers.get("x-auth-apikey").is_some_and(|v| v == API_KEY);
                if !authorized {
                    return (
                        StatusCode::UNAUTHORIZED,
                        axum::Json(json!({"error": true, "errorMsg": "Unauthorized"})),
                    )
                        .into_response();
                }
                if requests.len() == 1 {
                    return (
                        StatusCode::TOO_MANY_REQUESTS,
                        [("retry-after", "1")],
                        "rate limit exceeded",
                    )
                        .into_response();
                }
                let body: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
                let camera = body["cameraUuid"].as_str().unwrap_or_default();
                if camera != DOOR_CAM && camera != TILL_CAM {
                    return axum::Json(json!({"error": true, "errorMsg": "Camera not found"}))
                        .into_response();
                }
                axum::Json(json!({"error": false, "errorMsg": null, "warningMsg": null}))
                    .into_response()
            }
        },
    );
    let url = serve(app).await;
    (url, fake)
}

/// One Rhombus organisation with default options (door camera on r1, a camera Rhombus does not know on r2),
/// and a second one configured for teal seekpoints without the overlay (till camera on r3, its clock 2.5 s behind
/// the registers').
fn rhombus_config(site: &Site, url: &str, api_key: &str) -> Config {
    let text = format!(
        r#"{header}[[camera_systems]]
id = "rhombus"
integration = "rhombus"
url = "{url}"
api_key_env = "RHOMBUS_API_KEY"
[[camera_systems]]
id = "rhombus-teal"
integration = "rhombus"
url = "{url}/"
api_key_env = "RHOMBUS_API_KEY"
[camera_systems.options]
color = "TEAL"
display_overlay = false
[[cameras]]
system = "rhombus"
device = "{DOOR_CAM}"
name = "Door"
registers = ["shibuya-01/r1"]
[[cameras]]
system = "rhombus"
device = "{GONE_CAM}"
name = "Removed"
registers = ["shibuya-01/r2"]
[[cameras]]
system = "rhombus-teal"
device = "{TILL_CAM}"
name = "Till"
registers = ["shibuya-01/r3"]
offset = "-2.5s"
"#,
        header = site.header(&repo_integrations()),
    );
    Config::parse(&text, &|name| {
        (name == "RHOMBUS_API_KEY").then(|| api_key.to_string())
    })
    .unwrap_or_else(|e| panic!("{e:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rhombus_gets_a_seekpoint_at_the_events_millisecond_with_its_api_token_after_waiting_out_a_429()
 {
    let (url, fake) = start_fake_rhombus().await;
    let site = Site::new();
    let (daemon, mut bridge) = start_daemon(rhombus_config(&site, &url, API_KEY)).await;
    let mut item_void = event("iv-1", "item_void", "r1", "2026-11-21T18:42:07.310+09:00");
    item_void["cashier"] = json!("tanaka-hanako-0117");
    bridge
        .publish(&site.topic("shibuya-01", "r1"), &item_void)
        .await;

    let made = settled_bookmarks(&daemon).await.remove(0);
    assert_eq!(made["state"], "made", "{made}");
    assert!(
        made["vendor_id"].is_null(),
        "Rhombus answers no id for a seekpoint: {made}"
    );
    assert_eq!(
        made["footage"][0],
        json!({
            "label": "Rhombus",
            "kind": "vendor",
            "url": format!("https://console.rhombussystems.com/devices/cameras/{DOOR_CAM}/?t=1795254117310"),
            "href": "/events/1/footage/0",
            "camera": "Door",
        })
    );

    let requests = fake.requests.lock().unwrap().clone();
    assert_eq!(requests.len(), 2, "one 429, then one seekpoint");
    let waited = requests[1].at - requests[0].at;
    assert!(
        waited >= Duration::from_millis(950),
        "Retry-After: 1 was honoured (waited {waited:?})"
    );
    let seen = &requests[1];
    assert_eq!(seen.method, Method::POST);
    assert_eq!(seen.path, "/api/camera/createCustomFootageSeekpoints");
    assert_eq!(seen.headers["x-auth-scheme"], "api-token");
    assert_eq!(seen.headers["x-auth-apikey"], API_KEY);
    assert!(seen.headers.get("authorization").is_none());
    assert_eq!(seen.headers["content-type"], "application/json");
    let point = &seen.body["footageSeekPoints"][0];
    let description = point["description"].as_str().unwrap();
    assert_eq!(description.chars().count(), 100, "cut to Rhombus's 100");
    assert!(
        description.starts_with("ITEM VOID at shibuya-01/r1 — 2026-11-21 18:42:07.310 +09:00\n"),
        "{description}"
    );
    assert_eq!(
        seen.body,
        json!({
            "cameraUuid": DOOR_CAM,
            "footageSeekPoints": [{
                "name": "ITEM VOID ¥1,280 · r1 · tanaka-h",
                "timestampMs": 1_795_254_127_310_i64,
                "description": description,
                "color": "RED",
                "displayOverlay": true,
            }],
        }),
        "the name is cut to Rhombus's 32 characters and the seekpoint sits at the event's own millisecond"
    );
    daemon.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_camera_rhombus_does_not_know_fails_with_its_error_message_and_options_set_the_colour() {
    let (url, fake) = start_fake_rhombus().await;
    let site = Site::new();
    let (daemon, mut bridge) = start_daemon(rhombus_config(&site, &url, API_KEY)).await;

    // The first call meets the 429; this one waits it out and is answered 200 with an error inside.
    bridge
        .publish(
            &site.topic("shibuya-01", "r2"),
            &event("void-2", "void", "r2", "2026-11-21T18:42:07.310+09:00"),
        )
        .await;
    let failed = settled_bookmarks(&daemon).await.remove(0);
    assert_eq!(failed["state"], "failed", "{failed}");
    let error = failed["last_error"].as_str().unwrap();
    assert!(error.contains("Camera not found"), "{error}");
    let creates = fake.creates();
    assert_eq!(creates.len(), 2, "a logical error is not retried");
    assert_eq!(creates[1].2["cameraUuid"], GONE_CAM);

    // A camera system with options: its colour and overlay setting, and a trailing slash in its URL is harmless;
    // the camera's clock offset moves the seekpoint.
    bridge
        .publish(
            &site.topic("shibuya-01", "r3"),
            &event("void-3", "void", "r3", "2026-11-21T18:45:00.125+09:00"),
        )
        .await;
    let url = format!("http://{}/api/events", daemon.web_addr());
    eventually(Duration::from_secs(10), "the second event indexed", || {
        let url = url.clone();
        async move { (get_json(&url).await["events"][0]["id"] == "void-3").then_some(()) }
    })
    .await;
    let made = settled_bookmarks(&daemon).await.remove(0);
    assert_eq!(made["state"], "made", "{made}");
    assert_eq!(made["device"], TILL_CAM);
    let creates = fake.creates();
    assert_eq!(creates.len(), 3);
    let (_, headers, body) = &creates[2];
    assert_eq!(headers["x-auth-apikey"], API_KEY);
    assert_eq!(
        fake.requests.lock().unwrap()[2].path,
        "/api/camera/createCustomFootageSeekpoints"
    );
    assert_eq!(body["cameraUuid"], TILL_CAM);
    assert_eq!(
        body["footageSeekPoints"][0]["name"], "VOID ¥1,280 · r3 · c117",
        "a short name is sent whole"
    );
    assert_eq!(
        body["footageSeekPoints"][0]["timestampMs"], 1_795_254_297_625_i64,
        "18:45:00.125 in Tokyo, in epoch ms, 2.5 s earlier on the till camera's clock"
    );
    assert_eq!(body["footageSeekPoints"][0]["color"], "TEAL");
    assert_eq!(body["footageSeekPoints"][0]["displayOverlay"], false);
    daemon.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_api_key_is_refused_by_rhombus_and_the_bookmark_fails_with_the_401() {
    let (url, fake) = start_fake_rhombus().await;
    let site = Site::new();
    let (daemon, mut bridge) = start_daemon(rhombus_config(&site, &url, "revoked-key")).await;
    bridge
        .publish(
            &site.topic("shibuya-01", "r1"),
            &event("void-4", "void", "r1", "2026-11-21T18:42:07.310+09:00"),
        )
        .await;
    let failed = settled_bookmarks(&daemon).await.remove(0);
    assert_eq!(failed["state"], "failed", "{failed}");
    let error = failed["last_error"].as_str().unwrap();
    assert!(error.contains("401"), "{error}");
    let creates = fake.creates();
    assert_eq!(creates.len(), 1, "a refused key is not retried");
    assert_eq!(creates[0].1["x-auth-apikey"], "revoked-key");
    daemon.shutdown().await;
}
