//! The generic webhook: the operator's body template, auth, the idempotency header, and `Retry-After`.

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

async fn start_receiver() -> (String, Receiver) {
    let receiver = Receiver::default();
    let state = receiver.clone();
    let app = axum::Router::new().route(
        "/hooks/bookmarks",
        axum::routing::post(move |headers: HeaderMap, body: String| {
            let state = state.clone();
            async move {
                let mut requests = state.requests.lock().unwrap();
                requests.push((Instant::now(), headers, body));
                if requests.len() == 1 {
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
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hooks/bookmarks", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, receiver)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_gets_the_templated_body_with_auth_and_idempotency_key_and_honours_retry_after() {
    let (url, receiver) = start_receiver().await;
    let site = Site::new();
    let text = format!(
        r#"
[mqtt]
embedded_listen = "127.0.0.1:0"
client_id = "{client}"
topics = ["{root}/+/+/events"]
[database]
url = "{db}"
[web]
listen = "127.0.0.1:0"
[delivery]
retry = ["100ms"]
[[stores]]
id = "shibuya-01"
timezone = "Asia/Tokyo"
[[camera_systems]]
id = "hook"
integration = "webhook"
url = "{url}"
api_key_env = "HOOK_TOKEN"
[camera_systems.options]
body = '{{"camera": {{{{ camera.device | tojson }}}}, "at_ms": {{{{ window.start_ms }}}}, "until": {{{{ window.end_iso | tojson }}}}, "title": {{{{ name | tojson }}}}, "receipt": {{{{ event.lines | tojson }}}}}}'
[[cameras]]
system = "hook"
device = "door-cam"
registers = ["shibuya-01/r1"]
"#,
        client = site.client_id,
        root = site.topic_root,
        db = site.db_url(),
    );
    let config = Config::parse(&text, &|name| {
        (name == "HOOK_TOKEN").then(|| "tok-123".to_string())
    })
    .unwrap_or_else(|e| panic!("{e:?}"));
    let (daemon, mut bridge) = start_daemon(config).await;
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
    assert_eq!(
        headers["idempotency-key"],
        format!("{}:door-cam", event_key("shibuya-01", "ref-1"))
    );
    let body: Value = serde_json::from_str(body).unwrap();
    assert_eq!(
        body,
        json!({
            "camera": "door-cam",
            "at_ms": 1_795_254_127_310_i64 - 10_000,
            "until": "2026-11-21T09:42:27.310Z",
            "title": "REFUND ¥1,280 · r1 · c117",
            "receipt": ["ONIGIRI SALMON      180", "GREEN TEA 500ML     150", "*** VOID ***"],
        })
    );
    daemon.shutdown().await;
}
