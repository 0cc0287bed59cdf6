//! The Milestone XProtect definition (`integrations/milestone.toml`) against a fake API Gateway written from
//! VENDORS.md "Milestone":
//!
//! - `POST /idp/connect/token`, a form `grant_type=password&username=&password=&client_id=GrantValidatorClient`
//!   → `{"access_token","expires_in"}`; the token goes as `Authorization: Bearer` and the fake can revoke it.
//! - `POST /api/rest/v1/bookmarks` `{"header","description","timeBegin","timeEnd","timeTriggered" (ISO 8601),
//!   "reference","devicePath":{"type":"cameras","id":<uuid>}}`; errors `{"httpCode","details":[{"errorText",
//!   "property"}]}`.
//!
//! Not in VENDORS.md, so assumed here: a refused login answers as OAuth2 says (RFC 6749 5.2: 400
//! `{"error":"invalid_grant","error_description"}`), a create answers 201 `{"data": {"id", ...}}` (the shape the
//! definition's `id = "data.id"` expects), and a rejected token answers 401 in the error shape above.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tillmark::config::{BrokerUrl, Config};
use tillmark::event::event_key;

use crate::fakes::*;
use crate::support::*;

const USER: &str = "tillmark";
const PASSWORD: &str = "Xpr0tect-pw!2026";
const TOKEN_PATH: &str = "/idp/connect/token";
const BOOKMARKS_PATH: &str = "/api/rest/v1/bookmarks";
const CAMERA: &str = "1b6a2f3c-5d4e-4f60-8a9b-0c1d2e3f4a5b";
/// A GUID this XProtect does not have.
const GONE_CAMERA: &str = "00000000-dead-4bee-8f00-000000000000";

#[derive(Default)]
struct FakeMilestone {
    requests: RequestLog,
    /// Access tokens issued, and those still honoured.
    tokens: Tokens,
    bookmarks: Mutex<Vec<Value>>,
}

impl FakeMilestone {
    /// Revokes every token, as an administrator or a restart of the identity provider would.
    fn revoke_tokens(&self) {
        self.tokens.revoke_all();
    }

    fn issued(&self) -> Vec<String> {
        self.tokens.issued()
    }

    /// The stored bookmarks whose reference is the event `id`'s key.
    fn referencing(&self, id: &str) -> Vec<Value> {
        let key = event_key("shibuya-01", id);
        self.bookmarks
            .lock()
            .unwrap()
            .iter()
            .filter(|b| b["reference"] == key.as_str())
            .cloned()
            .collect()
    }
}

async fn start_fake_milestone() -> (String, Arc<FakeMilestone>) {
    let fake = Arc::new(FakeMilestone::default());
    let app = axum::Router::new()
        .fallback(handle)
        .with_state(fake.clone());
    (fake.requests.serve(app).await, fake)
}

/// Milestone's error shape.
fn refuse(status: StatusCode, text: &str, property: Option<&str>) -> Response {
    let mut detail = json!({ "errorText": text });
    if let Some(p) = property {
        detail["property"] = json!(p);
    }
    answer(
        status,
        json!({ "httpCode": status.as_u16(), "details": [detail] }),
    )
}

/// An OAuth2 token endpoint's refusal.
fn oauth_error(error: &str, description: &str) -> Response {
    answer(
        StatusCode::BAD_REQUEST,
        json!({ "error": error, "error_description": description }),
    )
}

async fn handle(
    State(m): State<Arc<FakeMilestone>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: String,
) -> Response {
    match (method, uri.path()) {
        (Method::POST, TOKEN_PATH) => token(&m, &headers, &body),
        (Method::POST, BOOKMARKS_PATH) => {
            if !m.tokens.honours(bearer(&headers)) {
                return refuse(StatusCode::UNAUTHORIZED, "Unauthorized", None);
            }
            create(&m, serde_json::from_str(&body).unwrap_or(Value::Null))
        }
        _ => refuse(StatusCode::NOT_FOUND, "Not found", None),
    }
}

fn token(m: &FakeMilestone, headers: &HeaderMap, body: &str) -> Response {
    if headers
        .get("content-type")
        .is_none_or(|c| c != "application/x-www-form-urlencoded")
    {
        return oauth_error("invalid_request", "a form is expected");
    }
    let form: BTreeMap<String, String> = url::form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect();
    let field = |k: &str| form.get(k).map(String::as_str).unwrap_or_default();
    if field("grant_type") != "password" {
        return oauth_error("unsupported_grant_type", "");
    }
    if field("client_id") != "GrantValidatorClient" {
        return oauth_error("invalid_client", "");
    }
    if field("username") != USER || field("password") != PASSWORD {
        return oauth_error("invalid_grant", "invalid_username_or_password");
    }
    let access_token = m
        .tokens
        .issue(format!("eyJ{}", uuid::Uuid::new_v4().simple()));
    axum::Json(json!({
        "access_token": access_token,
        "expires_in": 3600,
        "token_type": "Bearer",
        "scope": "managementserver",
    }))
    .into_response()
}

fn create(m: &FakeMilestone, body: Value) -> Response {
    for key in ["header", "reference"] {
        if !body[key].is_string() {
            return refuse(StatusCode::BAD_REQUEST, "Required", Some(key));
        }
    }
    let mut times = Vec::new();
    for key in ["timeBegin", "timeTriggered", "timeEnd"] {
        match body[key]
            .as_str()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        {
            Some(t) => times.push(t),
            None => return refuse(StatusCode::BAD_REQUEST, "Not a valid time", Some(key)),
        }
    }
    if !times.is_sorted() {
        return refuse(
            StatusCode::BAD_REQUEST,
            "timeTriggered must lie between timeBegin and timeEnd",
            Some("timeTriggered"),
        );
    }
    if body["devicePath"]["type"] != "cameras" {
        return refuse(
            StatusCode::BAD_REQUEST,
            "Unsupported device type",
            Some("devicePath.type"),
        );
    }
    let id = body["devicePath"]["id"].as_str().unwrap_or_default();
    if uuid::Uuid::parse_str(id).is_err() {
        return refuse(
            StatusCode::BAD_REQUEST,
            &format!("'{id}' is not a valid id"),
            Some("devicePath.id"),
        );
    }
    if id != CAMERA {
        return refuse(StatusCode::NOT_FOUND, "Camera not found", None);
    }
    let mut stored = body.clone();
    stored["id"] = json!(uuid::Uuid::new_v4().to_string());
    m.bookmarks.lock().unwrap().push(stored.clone());
    answer(StatusCode::CREATED, json!({ "data": stored }))
}

/// One XProtect with the camera on r1; r2 has a device id that is no GUID, r3 a camera it does not have.
fn milestone_config_text(site: &Site, url: &str) -> String {
    format!(
        r#"{header}[[camera_systems]]
id = "xprotect"
integration = "milestone"
url = "{url}"
username = "{USER}"
password_env = "XPROTECT_PASSWORD"
[[cameras]]
system = "xprotect"
device = "{CAMERA}"
name = "Counter"
registers = ["shibuya-01/r1"]
[[cameras]]
system = "xprotect"
device = "door-1"
name = "Door"
registers = ["shibuya-01/r2"]
[[cameras]]
system = "xprotect"
device = "{GONE_CAMERA}"
name = "Removed"
registers = ["shibuya-01/r3"]
"#,
        header = site.header(&repo_integrations()),
    )
}

fn milestone_config(site: &Site, url: &str) -> Config {
    parse_config(
        &milestone_config_text(site, url),
        &[("XPROTECT_PASSWORD", PASSWORD)],
    )
}

/// A daemon on a fresh fake XProtect.
async fn milestone_daemon() -> (Arc<FakeMilestone>, Site, tillmark::Daemon, Bridge) {
    let (url, fake) = start_fake_milestone().await;
    let site = Site::new();
    let (daemon, bridge) = start_daemon(milestone_config(&site, &url)).await;
    (fake, site, daemon, bridge)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn milestone_gets_a_bookmark_over_the_window_in_iso_utc_with_a_password_grant_token_as_bearer()
 {
    let (fake, site, daemon, mut bridge) = milestone_daemon().await;
    publish_voids(
        &site,
        &mut bridge,
        &[
            ("m-1", "r1", AT),
            ("m-2", "r1", "2026-11-21T23:59:55.000+09:00"),
        ],
    )
    .await;
    let events = settled_events(&daemon, 2).await;

    // One token, from the password grant, for both bookmarks.
    let grants = fake.requests.to("POST", TOKEN_PATH);
    assert_eq!(grants.len(), 1, "one token serves both bookmarks");
    assert_eq!(
        grants[0].header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    assert!(grants[0].header("authorization").is_none());
    let form: BTreeMap<String, String> = grants[0].form().into_iter().collect();
    assert_eq!(
        form,
        BTreeMap::from(
            [
                ("grant_type", "password"),
                ("username", USER),
                ("password", PASSWORD),
                ("client_id", "GrantValidatorClient"),
            ]
            .map(|(k, v)| (k.to_string(), v.to_string()))
        )
    );
    let token = fake.issued()[0].clone();

    let creates = fake.requests.to("POST", BOOKMARKS_PATH);
    assert_eq!(creates.len(), 2);
    for seen in &creates {
        assert_eq!(
            seen.header("authorization"),
            Some(format!("Bearer {token}").as_str())
        );
        assert_eq!(seen.header("content-type"), Some("application/json"));
    }
    for (id, begin, triggered, end) in [
        (
            "m-1",
            "2026-11-21T09:41:57.310Z",
            "2026-11-21T09:42:07.310Z",
            "2026-11-21T09:42:27.310Z",
        ),
        // Five seconds before midnight in Tokyo: the window runs into the next day there, not in UTC.
        (
            "m-2",
            "2026-11-21T14:59:45.000Z",
            "2026-11-21T14:59:55.000Z",
            "2026-11-21T15:00:15.000Z",
        ),
    ] {
        let stored = fake.referencing(id);
        assert_eq!(stored.len(), 1, "{id}: one bookmark");
        let description = stored[0]["description"].as_str().unwrap().to_string();
        assert!(
            description.starts_with("VOID at shibuya-01/r1 — 2026-11-21 "),
            "{description}"
        );
        let sent = creates
            .iter()
            .map(Seen::json)
            .find(|b| b["reference"] == event_key("shibuya-01", id).as_str())
            .unwrap();
        assert_eq!(
            sent,
            json!({
                "header": "VOID ¥1,280 · r1 · c117",
                "description": description,
                "timeBegin": begin,
                "timeEnd": end,
                "timeTriggered": triggered,
                "reference": event_key("shibuya-01", id),
                "devicePath": { "type": "cameras", "id": CAMERA },
            }),
            "{id}: pre-roll 10 s, post-roll 20 s, in UTC to the millisecond"
        );
        let made = &events[id][0];
        assert_eq!(made["state"], "made", "{made}");
        assert_eq!(
            made["vendor_id"], stored[0]["id"],
            "the id Milestone gave it"
        );
    }
    daemon.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_milestone_revoked_is_renewed_and_the_bookmark_is_made_once() {
    let (fake, site, daemon, mut bridge) = milestone_daemon().await;
    publish_void(&site, &mut bridge, "m-3", "r1", AT).await;
    assert_eq!(settled_events(&daemon, 1).await["m-3"][0]["state"], "made");

    fake.revoke_tokens();
    publish_void(
        &site,
        &mut bridge,
        "m-4",
        "r1",
        "2026-11-21T18:42:09.000+09:00",
    )
    .await;
    let made = settled_events(&daemon, 2).await["m-4"][0].clone();
    assert_eq!(made["state"], "made", "{made}");
    assert_eq!(made["attempts"], 1, "renewed within the attempt: {made}");

    let issued = fake.issued();
    assert_eq!(issued.len(), 2, "a second password grant after the 401");
    assert_eq!(fake.requests.to("POST", TOKEN_PATH).len(), 2);
    let creates = fake.requests.to("POST", BOOKMARKS_PATH);
    assert_eq!(creates.len(), 3, "m-3, m-4 refused, m-4 again");
    let bearer = |i: usize| format!("Bearer {}", issued[i]);
    assert_eq!(creates[1].header("authorization"), Some(bearer(0).as_str()));
    assert_eq!(creates[2].header("authorization"), Some(bearer(1).as_str()));
    let stored = fake.referencing("m-4");
    assert_eq!(stored.len(), 1, "exactly one bookmark for m-4");
    assert_eq!(stored[0]["timeTriggered"], "2026-11-21T09:42:09.000Z");
    assert_eq!(made["vendor_id"], stored[0]["id"]);
    daemon.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn milestones_error_text_shows_in_the_index_and_a_missing_camera_is_named() {
    let (fake, site, daemon, mut bridge) = milestone_daemon().await;
    publish_voids(
        &site,
        &mut bridge,
        &[
            ("m-5", "r2", AT),
            ("m-6", "r3", "2026-11-21T18:42:08.310+09:00"),
        ],
    )
    .await;
    let events = settled_events(&daemon, 2).await;

    assert_failed(
        &events["m-5"][0],
        "Milestone XProtect create: HTTP 400 Bad Request: 'door-1' is not a valid id",
    );
    assert_failed(
        &events["m-6"][0],
        &format!(
            "Milestone XProtect has no camera \"{GONE_CAMERA}\" (HTTP 404 Not Found): Camera not found"
        ),
    );
    assert_eq!(
        fake.requests.to("POST", BOOKMARKS_PATH).len(),
        2,
        "neither is retried"
    );
    assert!(fake.bookmarks.lock().unwrap().is_empty());
    daemon.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_milestone_refuses_shows_in_the_index_and_never_in_the_api_or_the_log() {
    let (url, fake) = start_fake_milestone().await;
    let site = Site::new();
    let (broker_port, web_port) = (free_port(), free_port());
    // The daemon runs as its own process, so everything it logs can be read.
    let text = milestone_config_text(&site, &url)
        .replace(
            "embedded_listen = \"127.0.0.1:0\"",
            &format!("embedded_listen = \"127.0.0.1:{broker_port}\""),
        )
        .replace(
            "\nlisten = \"127.0.0.1:0\"",
            &format!("\nlisten = \"127.0.0.1:{web_port}\""),
        );
    let config = site.dir.path().join("tillmark.toml");
    std::fs::write(&config, text).unwrap();
    let log = site.dir.path().join("tillmark.log");
    let wrong = "Wr0ng-Xprotect-pw";
    allow_tests(&site.db_url()).await;
    let mut daemon = spawn_tillmark(&config, &log, &[("XPROTECT_PASSWORD", wrong)]);
    wait_for_log(&log, "Embedded MQTT broker listening.").await;
    let broker = BrokerUrl::plain(format!("127.0.0.1:{broker_port}").parse().unwrap());
    let mut bridge = Bridge::connect(&broker).await;
    publish_void(&site, &mut bridge, "m-7", "r1", AT).await;

    let base = format!("http://127.0.0.1:{web_port}");
    let failed = first_bookmark_when(&base, "the refused login", |b| b["state"] == "failed").await;
    assert_eq!(
        failed["last_error"],
        "Milestone XProtect refused the login of user \"tillmark\" (HTTP 400 Bad Request): \
         invalid_grant: invalid_username_or_password",
        "the OAuth2 error and its description"
    );
    let grants = fake.requests.to("POST", TOKEN_PATH);
    assert_eq!(grants.len(), 1, "a refused password is not tried again");
    assert!(
        grants[0]
            .form()
            .contains(&("password".into(), wrong.into())),
        "the daemon sent the configured password"
    );
    assert!(fake.requests.to("POST", BOOKMARKS_PATH).is_empty());

    let page = newest_event_page_at(&base).await;
    assert!(page.contains("refused the login of user"), "{page}");
    assert_shown_nowhere_at(&base, &[wrong]).await;
    daemon.kill().expect("stop the daemon");
    let _ = daemon.wait();
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(
        logged.contains("refused the login of user"),
        "the refusal is logged: {logged}"
    );
    assert!(
        !logged.contains(wrong),
        "the password is in the log: {logged}"
    );
}
