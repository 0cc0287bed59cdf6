//! The Genetec Security Center definition (`integrations/genetec.toml`) against a fake Web SDK: the call in
//! the `q` query value, the bookmark's time and text, the `user;appId:password` Basic credentials, and what
//! a refused password looks like in the index.

use std::sync::{Arc, Mutex};

use axum::extract::RawQuery;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use base64::Engine;
use serde_json::json;
use tillmark::config::Config;

use crate::support::*;

const APP_ID: &str = "KxsD11z743Hf5Gq9mv3+5ekxzemlCiUXkTFY5ba1NOGcLCmGstt2n0zYE9NsNimv";
const PASSWORD: &str = "Gen3tec-s3cret!";
const CAMERA_GUID: &str = "00000001-0000-babe-0000-080023e940a1";
/// 2026-11-21T18:42:07.310+09:00 less the default 10 s pre-roll, in UTC.
const BOOKMARK_TIME: &str = "2026-11-21T09:41:57.310Z";

/// One `AddCameraBookmark(guid,time,text)` the fake Web SDK accepted or refused.
#[derive(Clone, Debug)]
struct Call {
    /// The query string as it came over the wire.
    raw: String,
    /// The `q` value, decoded.
    q: String,
    guid: String,
    time: String,
    text: String,
    authorized: bool,
}

#[derive(Clone, Default)]
struct WebSdk {
    calls: Arc<Mutex<Vec<Call>>>,
}

impl WebSdk {
    fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }
}

/// Splits `AddCameraBookmark(guid,time,text)` the strict way: exactly three arguments, no parenthesis or
/// comma in any of them, nothing after the closing parenthesis.
fn parse_call(q: &str) -> Option<(String, String, String)> {
    let args = q.strip_prefix("AddCameraBookmark(")?.strip_suffix(')')?;
    if args.contains('(') || args.contains(')') {
        return None;
    }
    let parts: Vec<&str> = args.split(',').collect();
    match parts.as_slice() {
        [guid, time, text] => Some((guid.to_string(), time.to_string(), text.to_string())),
        _ => None,
    }
}

async fn start_web_sdk() -> (String, WebSdk) {
    let sdk = WebSdk::default();
    let state = sdk.clone();
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("tillmark;{APP_ID}:{PASSWORD}"))
    );
    let app = axum::Router::new().route(
        "/WebSdk/action",
        axum::routing::post(move |RawQuery(query): RawQuery, headers: HeaderMap| {
            let state = state.clone();
            let expected = expected.clone();
            async move {
                let query = query.unwrap_or_default();
                let q = url::form_urlencoded::parse(query.as_bytes())
                    .find(|(k, _)| k == "q")
                    .map(|(_, v)| v.into_owned())
                    .unwrap_or_default();
                let authorized = headers
                    .get("authorization")
                    .is_some_and(|v| v.as_bytes() == expected.as_bytes());
                let accept_json = headers
                    .get("accept")
                    .is_some_and(|v| v.as_bytes() == b"text/json");
                let parsed = parse_call(&q);
                let (guid, time, text) = parsed.clone().unwrap_or_default();
                state.calls.lock().unwrap().push(Call {
                    raw: query.clone(),
                    q: q.clone(),
                    guid,
                    time,
                    text,
                    authorized,
                });
                if !authorized {
                    return (StatusCode::UNAUTHORIZED, "Unauthorized").into_response();
                }
                if !accept_json || parsed.is_none() {
                    return (StatusCode::BAD_REQUEST, format!("bad call: {q}")).into_response();
                }
                (
                    StatusCode::OK,
                    axum::Json(json!({ "Rsp": { "Status": "Ok" } })),
                )
                    .into_response()
            }
        }),
    );
    let url = serve(app).await;
    (url, sdk)
}

/// A site with one Genetec system and one camera, whose password variable holds `password`.
fn genetec_config(site: &Site, url: &str, password: &str) -> Config {
    let text = format!(
        r#"{header}[[camera_systems]]
id = "genetec"
integration = "genetec"
url = "{url}"
username = "tillmark"
password_env = "GENETEC_PASSWORD"
[camera_systems.options]
app_id = "{APP_ID}"
[[cameras]]
system = "genetec"
device = "{CAMERA_GUID}"
name = "Door"
registers = ["shibuya-01/r1"]
"#,
        header = site.header(&repo_integrations()),
    );
    let password = password.to_string();
    Config::parse(&text, &|name| {
        (name == "GENETEC_PASSWORD").then(|| password.clone())
    })
    .unwrap_or_else(|e| panic!("{e:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_void_becomes_a_genetec_camera_bookmark_at_the_start_of_the_window_named_like_the_bookmark()
 {
    let (url, sdk) = start_web_sdk().await;
    let site = Site::new();
    let (daemon, mut bridge) = start_daemon(genetec_config(&site, &url, PASSWORD)).await;
    bridge
        .publish(
            &site.topic("shibuya-01", "r1"),
            &event("void-1", "void", "r1", "2026-11-21T18:42:07.310+09:00"),
        )
        .await;

    let bookmark = settled_bookmarks(&daemon).await.remove(0);
    assert_eq!(bookmark["state"], "made", "{bookmark}");
    let calls = sdk.calls();
    assert_eq!(calls.len(), 1, "{calls:?}");
    let call = &calls[0];
    assert!(
        call.authorized,
        "Basic base64(\"tillmark;<app id>:<password>\")"
    );
    assert_eq!(call.guid, CAMERA_GUID);
    assert_eq!(call.time, BOOKMARK_TIME);
    // The name's comma would split the call's last argument; it arrives as a full-width comma, and the
    // non-ASCII `¥` and `·` survive URL-encoding.
    assert_eq!(call.text, "VOID ¥1，280 · r1 · c117");
    assert!(
        call.raw.starts_with("q=AddCameraBookmark%28")
            && !call.raw.contains([',', '(', ')', ' ', ':', '¥']),
        "the call is URL-encoded in q: {}",
        call.raw
    );
    assert_eq!(
        call.q,
        format!("AddCameraBookmark({CAMERA_GUID},{BOOKMARK_TIME},VOID ¥1，280 · r1 · c117)")
    );
    daemon.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_is_refused_with_401_and_the_bookmark_fails_without_showing_the_password()
{
    let (url, sdk) = start_web_sdk().await;
    let site = Site::new();
    let wrong = "not-the-Genetec-password";
    let (daemon, mut bridge) = start_daemon(genetec_config(&site, &url, wrong)).await;
    bridge
        .publish(
            &site.topic("shibuya-01", "r1"),
            &event("void-2", "void", "r1", "2026-11-21T18:42:07.310+09:00"),
        )
        .await;

    let bookmark = settled_bookmarks(&daemon).await.remove(0);
    assert_eq!(bookmark["state"], "failed", "{bookmark}");
    let error = bookmark["last_error"].as_str().unwrap();
    assert!(error.contains("HTTP 401"), "{error}");
    assert!(!error.contains(wrong), "the password leaked: {error}");
    let calls = sdk.calls();
    assert_eq!(calls.len(), 1, "a 401 is final, not retried: {calls:?}");
    assert!(!calls[0].authorized);
    daemon.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commas_and_parentheses_in_the_bookmark_name_still_make_a_well_formed_call() {
    let (url, sdk) = start_web_sdk().await;
    let site = Site::new();
    let (daemon, mut bridge) = start_daemon(genetec_config(&site, &url, PASSWORD)).await;
    let mut void = event("void-3", "void", "r1", "2026-11-21T18:42:07.310+09:00");
    void["cashier"] = json!("Sato (trainee), c9)");
    void["reason"] = json!("wrong item), rescanned (twice)");
    bridge.publish(&site.topic("shibuya-01", "r1"), &void).await;

    let bookmark = settled_bookmarks(&daemon).await.remove(0);
    assert_eq!(bookmark["state"], "made", "{bookmark}");
    let calls = sdk.calls();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0].guid, CAMERA_GUID);
    assert_eq!(calls[0].time, BOOKMARK_TIME);
    assert_eq!(calls[0].text, "VOID ¥1，280 · r1 · Sato （trainee）， c9）");
    daemon.shutdown().await;
}
