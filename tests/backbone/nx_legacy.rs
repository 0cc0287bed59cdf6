//! The legacy Nx Witness 4.x definition (`integrations/nx-witness-legacy.toml`) against a fake server written
//! from VENDORS.md: `GET /ec2/bookmarks/add?guid=&cameraId=&name=&description=&startTime=<ms>&duration=<ms>&tag=`,
//! Basic auth (401 without it), the client's `guid` making a repeated create idempotent.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::IntoResponse;
use base64::Engine;
use serde_json::{Value, json};
use tillmark::config::Config;
use tillmark::event::event_key;

use crate::support::*;

const PATH: &str = "/ec2/bookmarks/add";

#[derive(Clone)]
struct Seen {
    method: Method,
    path: String,
    raw_query: String,
    query: BTreeMap<String, String>,
    headers: HeaderMap,
}

#[derive(Clone, Default)]
struct FakeNx4 {
    requests: Arc<Mutex<Vec<Seen>>>,
    /// Bookmarks by guid.
    bookmarks: Arc<Mutex<BTreeMap<String, Value>>>,
}

/// The first create is stored and then answered 500, as a server that fails after committing would.
async fn start_fake_nx4() -> (String, FakeNx4) {
    let fake = FakeNx4::default();
    let state = fake.clone();
    let app = axum::Router::new().fallback(move |method: Method, uri: Uri, headers: HeaderMap| {
        let state = state.clone();
        async move {
            let raw_query = uri.query().unwrap_or_default().to_string();
            let query: BTreeMap<String, String> =
                url::form_urlencoded::parse(raw_query.as_bytes())
                    .into_owned()
                    .collect();
            let first = {
                let mut requests = state.requests.lock().unwrap();
                requests.push(Seen {
                    method: method.clone(),
                    path: uri.path().to_string(),
                    raw_query,
                    query: query.clone(),
                    headers: headers.clone(),
                });
                requests.len() == 1
            };
            let error = |status: StatusCode, id: &str, text: &str| {
                (
                    status,
                    axum::Json(json!({"error": status.as_u16().to_string(), "errorId": id, "errorString": text})),
                )
                    .into_response()
            };
            if uri.path() != PATH || (method != Method::GET && method != Method::POST) {
                return error(StatusCode::NOT_FOUND, "notFound", "no such API");
            }
            let expected = format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("tillmark:{NX_PASSWORD}"))
            );
            if headers.get("authorization").is_none_or(|v| v != expected.as_str()) {
                return error(StatusCode::UNAUTHORIZED, "unauthorized", "Unauthorized");
            }
            let Some(guid) = query.get("guid").filter(|g| uuid::Uuid::parse_str(g).is_ok()) else {
                return error(StatusCode::UNPROCESSABLE_ENTITY, "invalidParameter", "guid");
            };
            let mut bookmarks = state.bookmarks.lock().unwrap();
            let stored = bookmarks
                .entry(guid.clone())
                .or_insert_with(|| json!(query))
                .clone();
            if first {
                return error(StatusCode::INTERNAL_SERVER_ERROR, "internal", "Internal server error");
            }
            axum::Json(stored).into_response()
        }
    });
    let url = serve(app).await;
    (url, fake)
}

fn nx4_config(site: &Site, url: &str) -> Config {
    let text = format!(
        r#"{header}[[camera_systems]]
id = "nvr4"
integration = "nx-witness-legacy"
url = "{url}"
username = "tillmark"
password_env = "NX4_PASSWORD"
[[cameras]]
system = "nvr4"
device = "{CAM1}"
name = "Counter 1"
registers = ["shibuya-01/r1"]
"#,
        header = site.header(&repo_integrations()),
    );
    Config::parse(&text, &|name| {
        (name == "NX4_PASSWORD").then(|| NX_PASSWORD.to_string())
    })
    .unwrap_or_else(|e| panic!("{e:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nx_4_gets_a_bookmark_over_the_window_in_milliseconds_and_a_retry_after_a_500_reuses_its_guid()
 {
    let (url, fake) = start_fake_nx4().await;
    let site = Site::new();
    let (daemon, mut bridge) = start_daemon(nx4_config(&site, &url)).await;
    bridge
        .publish(
            &site.topic("shibuya-01", "r1"),
            &event("void-1", "void", "r1", "2026-11-21T18:42:07.310+09:00"),
        )
        .await;

    let made = settled_bookmarks(&daemon).await.remove(0);
    assert_eq!(made["state"], "made", "{made}");

    let requests = fake.requests.lock().unwrap().clone();
    assert_eq!(requests.len(), 2, "one 500, then one retry");
    let key = event_key("shibuya-01", "void-1");
    for seen in requests.iter() {
        assert_eq!(seen.method, Method::GET);
        assert_eq!(seen.path, "/ec2/bookmarks/add");
        let expected = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("tillmark:{NX_PASSWORD}"))
        );
        assert_eq!(seen.headers["authorization"], expected.as_str());
        assert!(
            !seen.raw_query.contains(' ') && seen.raw_query.contains("%C2%A5"),
            "every value is URL-encoded: {}",
            seen.raw_query
        );
    }
    assert_eq!(
        requests[0].query, requests[1].query,
        "the retry sends the same guid and fields"
    );
    let query = &requests[1].query;
    let guid = query["guid"].clone();
    assert!(uuid::Uuid::parse_str(&guid).is_ok(), "{guid}");
    assert_eq!(
        made["vendor_id"], guid,
        "Nx 4.x answers without an id: the index shows the guid tillmark supplied"
    );
    assert_eq!(query["cameraId"], CAM1);
    assert_eq!(query["name"], "VOID ¥1,280 · r1 · c117");
    assert!(
        query["description"]
            .starts_with("VOID at shibuya-01/r1 — 2026-11-21 18:42:07.310 +09:00\nCashier: c117\n"),
        "{}",
        query["description"]
    );
    assert!(query["description"].ends_with(&format!("\ntillmark {key}")));
    assert_eq!(
        query["startTime"], "1795254117310",
        "pre-roll of 10 s, in ms"
    );
    assert_eq!(query["duration"], "30000", "10 s + 20 s, in ms");
    assert_eq!(query["tag"], key);
    assert_eq!(
        query.keys().collect::<Vec<_>>(),
        [
            "cameraId",
            "description",
            "duration",
            "guid",
            "name",
            "startTime",
            "tag"
        ]
    );

    let bookmarks = fake.bookmarks.lock().unwrap().clone();
    assert_eq!(bookmarks.len(), 1, "exactly one bookmark on the server");
    assert!(bookmarks.contains_key(guid.as_str()));
    daemon.shutdown().await;
}
