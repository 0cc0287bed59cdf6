//! The generic webhook and definitions derived from it: the built-in body, an integrator's own definition
//! file, hot reload of that file while events flow, auth, the idempotency header, and `Retry-After`.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use serde_json::{Value, json};
use tillmark::config::Config;
use tillmark::event::event_key;

use crate::support::*;

#[derive(Clone, Default)]
struct Receiver {
    requests: Arc<Mutex<Vec<(Instant, HeaderMap, String)>>>,
}

async fn start_receiver(first_busy: bool) -> (String, Receiver) {
    let receiver = Receiver::default();
    let state = receiver.clone();
    let app = axum::Router::new().route(
        "/hooks/bookmarks",
        axum::routing::post(move |headers: HeaderMap, body: String| {
            let state = state.clone();
            async move {
                let mut requests = state.requests.lock().unwrap();
                requests.push((Instant::now(), headers, body));
                if first_busy && requests.len() == 1 {
                    // Busy: come back in a second.
                    (
                        StatusCode::TOO_MANY_REQUESTS,
                        [("retry-after", "1")],
                        "slow down",
                    )
                        .into_response()
                } else {
                    (StatusCode::CREATED, axum::Json(json!({ "id": 4242 }))).into_response()
                }
            }
        }),
    );
    let url = format!("{}/hooks/bookmarks", serve(app).await);
    (url, receiver)
}

fn hook_config(site: &Site, url: &str, integration: &str, dir: &std::path::Path) -> Config {
    let text = format!(
        r#"{header}[[camera_systems]]
id = "hook"
integration = "{integration}"
url = "{url}"
api_key_env = "HOOK_TOKEN"
[[cameras]]
system = "hook"
device = "door-cam"
name = "Door"
registers = ["shibuya-01/r1"]
"#,
        header = site.header(dir),
    );
    Config::parse(&text, &|name| {
        (name == "HOOK_TOKEN").then(|| "tok-123".to_string())
    })
    .unwrap_or_else(|e| panic!("{e:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_built_in_webhook_posts_its_documented_body_with_bearer_auth_and_honours_retry_after() {
    let (url, receiver) = start_receiver(true).await;
    let site = Site::new();
    let (daemon, mut bridge) = start_daemon(hook_config(
        &site,
        &url,
        "webhook",
        &site.dir.path().join("none"),
    ))
    .await;
    bridge
        .publish(
            &site.topic("shibuya-01", "r1"),
            &event("ref-1", "refund", "r1", "2026-11-21T18:42:07.310+09:00"),
        )
        .await;

    let bookmark = settled_bookmarks(&daemon).await.remove(0);
    assert_eq!(bookmark["state"], "made");
    assert_eq!(bookmark["vendor_id"], "4242");
    let requests = receiver.requests.lock().unwrap().clone();
    assert_eq!(requests.len(), 2, "one 429, then one success");
    let waited = requests[1].0 - requests[0].0;
    assert!(
        waited >= Duration::from_millis(950),
        "Retry-After: 1 was honoured (waited {waited:?})"
    );
    let (_, headers, body) = &requests[1];
    assert_eq!(headers["authorization"], "Bearer tok-123");
    let key = event_key("shibuya-01", "ref-1");
    assert_eq!(headers["idempotency-key"], format!("{key}:door-cam"));
    let body: Value = serde_json::from_str(body).unwrap();
    assert_eq!(body["key"], key);
    assert_eq!(body["name"], "REFUND ¥1,280 · r1 · c117");
    assert_eq!(body["start_ms"], 1_795_254_127_310_i64 - 10_000);
    assert_eq!(body["duration_ms"], 30_000);
    assert_eq!(
        body["camera"],
        json!({"system": "hook", "device": "door-cam", "name": "Door"})
    );
    assert_eq!(body["event"]["id"], "ref-1");
    assert_eq!(body["event"]["at"], "2026-11-21T18:42:07.310+09:00");
    assert_eq!(body["event"]["lines"][2], "*** VOID ***");
    assert!(uuid::Uuid::parse_str(body["bookmark_id"].as_str().unwrap()).is_ok());
    daemon.shutdown().await;
}

const ACME_V1: &str = r#"
name = "acme-vms"
title = "ACME VMS"
moment = "point"
[auth]
scheme = "header"
header = "X-Acme-Key"
[create]
url = "{{ system.url }}"
body = '{"v": 1, "camera": {{ camera.device | tojson }}, "at_ms": {{ window.start_ms }}, "until": {{ window.end_iso | tojson }}, "title": {{ name | tojson }}, "receipt": {{ event.lines | tojson }}}'
id = "id"
[links]
footage = "https://vms.example/cameras/{{ camera.device }}?t={{ start_ms }}"
[limits]
name = 12
"#;

/// Writes like an editor that saves by rename.
fn save(path: &std::path::Path, text: &str) {
    let tmp = path.with_extension("toml.swp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// Publishes a void every half second until the receiver gets a body `accept`s.
async fn publish_until<F: Fn(&Value) -> bool>(
    bridge: &mut Bridge,
    site: &Site,
    receiver: &Receiver,
    what: &str,
    accept: F,
) {
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let before = receiver.requests.lock().unwrap().len();
        let id = format!("probe-{}", uuid::Uuid::new_v4().simple());
        bridge
            .publish(
                &site.topic("shibuya-01", "r1"),
                &event(&id, "void", "r1", "2026-11-21T18:42:07.310+09:00"),
            )
            .await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let requests = receiver.requests.lock().unwrap().clone();
        let seen = requests[before..]
            .iter()
            .filter_map(|(_, _, body)| serde_json::from_str::<Value>(body).ok())
            .any(|b| accept(&b));
        if seen {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_integrators_definition_file_is_used_and_edits_apply_while_events_flow_without_a_restart()
 {
    let (url, receiver) = start_receiver(false).await;
    let site = Site::new();
    let dir = site.dir.path().join("integrations");
    std::fs::create_dir(&dir).unwrap();
    let file = dir.join("acme-vms.toml");
    save(&file, ACME_V1);
    let (daemon, mut bridge) = start_daemon(hook_config(&site, &url, "acme-vms", &dir)).await;

    // Version 1: its own body, a point in time (the event's moment), the name cut to 12 characters.
    bridge
        .publish(
            &site.topic("shibuya-01", "r1"),
            &event("acme-1", "void", "r1", "2026-11-21T18:42:07.310+09:00"),
        )
        .await;
    let made = settled_bookmarks(&daemon).await.remove(0);
    assert_eq!(made["state"], "made");
    assert_eq!(made["vendor_id"], "4242");
    assert_eq!(
        made["footage"][0],
        json!({"label": "ACME VMS", "kind": "vendor", "url": "https://vms.example/cameras/door-cam?t=1795254117310", "href": "/events/1/footage/0", "camera": "Door"}),
        "the definition's footage link opens at the start of the bookmark window"
    );
    let (_, headers, body) = receiver.requests.lock().unwrap()[0].clone();
    assert_eq!(headers["x-acme-key"], "tok-123");
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        body,
        json!({
            "v": 1,
            "camera": "door-cam",
            "at_ms": 1_795_254_127_310_i64,
            "until": "2026-11-21T09:42:07.310Z",
            "title": "VOID ¥1,280 ",
            "receipt": ["ONIGIRI SALMON      180", "GREEN TEA 500ML     150", "*** VOID ***"],
        })
    );

    // An edit is picked up within seconds.
    save(&file, &ACME_V1.replace("\"v\": 1", "\"v\": 2"));
    publish_until(&mut bridge, &site, &receiver, "version 2 in use", |b| {
        b["v"] == 2
    })
    .await;

    // A broken edit is reported and version 2 keeps delivering.
    save(
        &file,
        &ACME_V1
            .replace("\"v\": 1", "\"v\": 3")
            .replace("{{ name | tojson }}", "{{ name | tojson }"),
    );
    tokio::time::sleep(Duration::from_secs(4)).await;
    let page = get(format!("http://{}/integrations", daemon.web_addr()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("Definition files with errors"), "{page}");
    assert!(
        page.contains("acme-vms.toml:10: create.body: template error"),
        "the file, line and key: {page}"
    );
    assert!(
        page.contains("acme-vms") && page.contains(" made · 0 pending"),
        "{page}"
    );
    publish_until(
        &mut bridge,
        &site,
        &receiver,
        "version 2 still in use",
        |b| b["v"] == 2,
    )
    .await;

    // Deleted: bookmarks wait, visibly. Back: they go out.
    std::fs::remove_file(&file).unwrap();
    tokio::time::sleep(Duration::from_secs(4)).await;
    bridge
        .publish(
            &site.topic("shibuya-01", "r1"),
            &event("while-gone", "void", "r1", "2026-11-21T18:50:00+09:00"),
        )
        .await;
    let base = format!("http://{}", daemon.web_addr());
    let waiting = eventually(
        Duration::from_secs(10),
        "the bookmark waiting for its definition",
        || {
            let url = format!("{base}/api/events?limit=1");
            async move {
                let b = get_json(&url).await["events"][0]["bookmarks"][0].clone();
                let error = b["last_error"].as_str()?.to_string();
                (b["state"] == "pending" && error.contains("no valid definition")).then_some(error)
            }
        },
    )
    .await;
    assert!(waiting.contains("acme-vms"), "{waiting}");
    save(&file, &ACME_V1.replace("\"v\": 1", "\"v\": 4"));
    eventually(
        Duration::from_secs(45),
        "the waiting bookmark made with version 4",
        || async {
            let requests = receiver.requests.lock().unwrap().clone();
            requests
                .iter()
                .filter_map(|(_, _, b)| serde_json::from_str::<Value>(b).ok())
                .any(|b| b["v"] == 4 && b["at_ms"] == 1_795_254_600_000_i64)
                .then_some(())
        },
    )
    .await;
    daemon.shutdown().await;
}

/// A receiver that always answers 429 with `Retry-After: 3`.
async fn start_rate_limited() -> (String, Receiver) {
    let receiver = Receiver::default();
    let state = receiver.clone();
    let app = axum::Router::new().route(
        "/busy",
        axum::routing::post(move |headers: HeaderMap, body: String| {
            let state = state.clone();
            async move {
                state
                    .requests
                    .lock()
                    .unwrap()
                    .push((Instant::now(), headers, body));
                (
                    StatusCode::TOO_MANY_REQUESTS,
                    [("retry-after", "3")],
                    "rate limited",
                )
                    .into_response()
            }
        }),
    );
    let url = format!("{}/busy", serve(app).await);
    (url, receiver)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limited_camera_system_cools_down_alone_and_never_delays_another() {
    let (busy_url, busy) = start_rate_limited().await;
    let (ok_url, ok) = start_receiver(false).await;
    let site = Site::new();
    let header = site.header(&repo_integrations()).replace(
        "retry = [\"100ms\"]",
        "retry = [\"100ms\"]\nconcurrency = 2",
    );
    let text = format!(
        r#"{header}
[[camera_systems]]
id = "busy"
integration = "webhook"
url = "{busy_url}"
[[camera_systems]]
id = "fine"
integration = "webhook"
url = "{ok_url}"
[[cameras]]
system = "busy"
device = "cam-busy"
registers = ["shibuya-01/r1"]
[[cameras]]
system = "fine"
device = "cam-fine"
registers = ["shibuya-01/r1"]
"#
    );
    let config = Config::parse(&text, &|_| None).unwrap_or_else(|e| panic!("{e:?}"));
    let (daemon, mut bridge) = start_daemon(config).await;
    let started = Instant::now();
    for i in 0..10 {
        bridge
            .publish(
                &site.topic("shibuya-01", "r1"),
                &event(
                    &format!("v{i}"),
                    "void",
                    "r1",
                    "2026-11-21T18:42:07.310+09:00",
                ),
            )
            .await;
    }
    eventually(
        Duration::from_secs(5),
        "all ten bookmarks on the healthy system",
        || async { (ok.requests.lock().unwrap().len() >= 10).then_some(()) },
    )
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "the healthy system was not held up: {:?}",
        started.elapsed()
    );
    tokio::time::sleep(
        Duration::from_millis(2500) - started.elapsed().min(Duration::from_millis(2500)),
    )
    .await;
    let sent_while_cooling = busy
        .requests
        .lock()
        .unwrap()
        .iter()
        .filter(|(t, _, _)| *t < started + Duration::from_millis(2500))
        .count();
    assert!(
        (1..=2).contains(&sent_while_cooling),
        "the rate-limited system got only what was in flight (concurrency 2) before its Retry-After: 3, not {sent_while_cooling}"
    );
    daemon.shutdown().await;
}
