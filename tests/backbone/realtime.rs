//! A realtime vendor written by an integrator (`acme-cam`, a definition in the test's own integrations folder):
//! a live event becomes a live mark; one that comes too late becomes a clip of its window instead, which the
//! index says; and the still the vendor serves at the moment appears in the event's row through tillmark,
//! with the camera system's key never reaching the browser.

use std::sync::{Arc, Mutex};

use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::IntoResponse;
use serde_json::{Value, json};
use tillmark::config::Config;

use crate::support::*;

const KEY: &str = "acme-key-51c0";
const CAMERA: &str = "till-cam-1";
/// The start of a PNG file: what the fake serves as the still.
const STILL: &[u8] = b"\x89PNG\r\n\x1a\nstill-of-till-cam-1";

const DEFINITION: &str = r#"
name = "acme-cam"
title = "Acme Cam"
moment = "realtime"

[auth]
scheme = "header"
header = "x-acme-key"

[create]
when = "{{ window.since_moment_ms <= 5000 }}"
url = "{{ system.url }}/marks"
body = '{"camera": {{ camera.device | tojson }}}'
id = "id"

[fallback]
label = "clip of the window"
url = "{{ system.url }}/clips"
body = '{"camera": {{ camera.device | tojson }}, "start_ms": {{ window.start_ms }}, "end_ms": {{ window.end_ms }}}'
id = "clip_id"

[thumbnail]
url = "{{ system.url }}/still?camera={{ camera.device | urlencode }}&at={{ window.moment_ms }}"
"#;

#[derive(Clone, Default)]
struct Fake {
    /// Path and query of each request, and whether it carried the key.
    seen: Arc<Mutex<Vec<(String, Value, bool)>>>,
}

async fn start_fake() -> (String, Fake) {
    let fake = Fake::default();
    let state = fake.clone();
    let app = axum::Router::new().fallback(move |uri: Uri, headers: HeaderMap, body: String| {
        let state = state.clone();
        async move {
            let keyed = headers.get("x-acme-key").is_some_and(|v| v == KEY);
            let target = uri
                .path_and_query()
                .map(|p| p.to_string())
                .unwrap_or_default();
            let body: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
            state.seen.lock().unwrap().push((target, body, keyed));
            if !keyed {
                return (StatusCode::UNAUTHORIZED, "no key").into_response();
            }
            match uri.path() {
                "/marks" => axum::Json(json!({"id": "mark-1"})).into_response(),
                "/clips" => axum::Json(json!({"clip_id": "clip-1"})).into_response(),
                "/still" if uri.query().is_some_and(|q| q.contains(CAMERA)) => {
                    ([("content-type", "image/png")], STILL).into_response()
                }
                _ => (StatusCode::NOT_FOUND, "no such thing").into_response(),
            }
        }
    });
    (serve(app).await, fake)
}

fn config(site: &Site, dir: &std::path::Path, url: &str) -> Config {
    let systems = format!(
        r#"[[camera_systems]]
id = "acme"
integration = "acme-cam"
url = "{url}"
api_key_env = "ACME_KEY"
[[cameras]]
system = "acme"
device = "{CAMERA}"
name = "Till"
registers = ["shibuya-01/r1"]
"#
    );
    site.config_in(dir, &systems, &[("ACME_KEY", KEY)])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_event_becomes_a_clip_of_its_window_said_so_in_the_index_with_the_still_beside_it() {
    let (url, fake) = start_fake().await;
    let site = Site::new();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("acme-cam.toml"), DEFINITION).unwrap();
    let (daemon, mut bridge) = start_daemon(config(&site, dir.path(), &url)).await;
    let base = web_base(&daemon);

    // Live: published as it happens.
    let now = chrono::Utc::now().timestamp_millis();
    publish_void(&site, &mut bridge, "live-1", "r1", &tokyo(now)).await;
    let live = settled_bookmarks_of(&daemon, "live-1").await.remove(0);
    assert_eq!(live["state"], "made", "{live}");
    assert_eq!(live["vendor_id"], "mark-1");
    assert_eq!(live["made_as"], Value::Null);

    // Ten minutes late: the vendor would place a live mark at its own now, ten minutes off.
    let late_ms = now - 600_000;
    publish_void(&site, &mut bridge, "late-1", "r1", &tokyo(late_ms)).await;
    let late = settled_bookmarks_of(&daemon, "late-1").await.remove(0);
    assert_eq!(late["state"], "made", "{late}");
    assert_eq!(late["vendor_id"], "clip-1");
    assert_eq!(late["made_as"], "clip of the window");
    let seen = fake.seen.lock().unwrap().clone();
    let clips: Vec<&Value> = seen
        .iter()
        .filter(|s| s.0 == "/clips")
        .map(|s| &s.1)
        .collect();
    assert_eq!(
        clips,
        [&json!({"camera": CAMERA, "start_ms": late_ms - 10_000, "end_ms": late_ms + 20_000})],
        "the clip spans the default 10 s before to 20 s after"
    );
    assert_eq!(
        seen.iter().filter(|s| s.0 == "/marks").count(),
        1,
        "only the live one"
    );

    // The index says what was made, and shows the still through tillmark.
    let events = get_json(&format!("{base}/api/events")).await;
    let seq = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["id"] == "late-1")
        .unwrap()["seq"]
        .as_i64()
        .unwrap();
    let id = late["id"].as_i64().unwrap();
    // Attribute values come HTML-escaped (`/` as `&#x2f;`); a browser undoes that.
    let page = |path: String| async move {
        let html = get(path).await.unwrap().text().await.unwrap();
        html.replace("&#x2f;", "/")
    };
    let html = page(format!("{base}/events/{seq}")).await;
    assert!(
        html.contains("clip of the window instead: the event came too late for a live mark"),
        "{html}"
    );
    let src = format!("/events/{seq}/bookmarks/{id}/thumbnail");
    // At the top of the event page, above its details: the still is what an investigator looks at first.
    let still_at = html
        .find(&format!(r#"<img class="still" src="{src}""#))
        .unwrap_or_else(|| panic!("no still on the event page: {html}"));
    assert!(still_at < html.find("fields-list").unwrap(), "{html}");
    let list = page(format!("{base}/")).await;
    assert!(list.contains(&src), "the row shows it too");

    let still = get(format!("{base}{src}")).await.unwrap();
    assert_eq!(still.status(), 200);
    assert_eq!(still.headers()["content-type"], "image/png");
    assert_eq!(still.headers()["cache-control"], "private, max-age=86400");
    assert_eq!(still.bytes().await.unwrap().as_ref(), STILL);
    let asked = fake.seen.lock().unwrap().last().cloned().unwrap();
    assert_eq!(
        asked.0,
        format!("/still?camera={CAMERA}&at={late_ms}"),
        "the still at the moment"
    );
    assert!(asked.2, "fetched with the system's key");
    assert!(!html.contains(KEY), "the key never reaches the page");

    // No such bookmark: no image.
    let missing = get(format!("{base}/events/{seq}/bookmarks/999999/thumbnail"))
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    daemon.shutdown().await;
}
