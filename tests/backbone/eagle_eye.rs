//! The Eagle Eye Networks definition (`integrations/eagle-eye.toml`) against a fake written from VENDORS.md: an
//! OAuth2 token endpoint on its own host taking the refresh grant (Basic `client_id:client_secret`, form
//! `grant_type=refresh_token&refresh_token=...`) and rotating the refresh token on every use, as RFC 6749 allows,
//! and the account's API host taking `POST /api/v3.0/events` with the Bearer access token.
//!
//! Not in VENDORS.md, so the fake's own: the error bodies (RFC 6749 section 5.2 on the token endpoint,
//! `{"code","status","message"}` on the API), a 201 answer carrying the event's `id`, and the list of event types
//! it accepts (only the one these tests configure).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde_json::{Value, json};
use tillmark::config::Config;

use crate::fakes::*;
use crate::support::*;

const CLIENT_ID: &str = "een-client-7b21";
const CLIENT_SECRET: &str = "een-secret-9XqP-kept";
const FIRST_REFRESH: &str = "een-refresh-0-granted-in-a-browser";
const ACCOUNT: &str = "00001234";
const CAMERA: &str = "1000f60d";
const EVENT_TYPE: &str = "een.posTransactionEvent.v1";

#[derive(Debug, Clone)]
struct TokenRequest {
    /// The client's Basic credentials, decoded.
    basic: Option<(String, String)>,
    content_type: String,
    form: HashMap<String, String>,
    status: u16,
}

#[derive(Debug, Clone)]
struct Create {
    bearer: Option<String>,
    body: Value,
    status: u16,
}

#[derive(Default)]
struct EenState {
    /// The one refresh token that works: each refresh replaces it.
    refresh_token: String,
    access_tokens: Vec<String>,
    tokens_issued: usize,
    events_stored: usize,
    token_requests: Vec<TokenRequest>,
    creates: Vec<Create>,
}

#[derive(Clone)]
struct FakeEen {
    /// The API host (`system.url`) and the token endpoint (`options.token_url`).
    api_url: String,
    token_url: String,
    state: Arc<Mutex<EenState>>,
}

impl FakeEen {
    fn token_requests(&self) -> Vec<TokenRequest> {
        self.state.lock().unwrap().token_requests.clone()
    }

    fn creates(&self) -> Vec<Create> {
        self.state.lock().unwrap().creates.clone()
    }

    /// Access tokens end before their `expires_in` (revoked, or the account's sessions reset).
    fn revoke_access_tokens(&self) {
        self.state.lock().unwrap().access_tokens.clear();
    }
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    answer(
        status,
        json!({"error": error, "error_description": description}),
    )
}

fn basic(headers: &HeaderMap) -> Option<(String, String)> {
    let encoded = headers
        .get("authorization")?
        .to_str()
        .ok()?
        .strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()?;
    let pair = String::from_utf8(decoded).ok()?;
    let (id, secret) = pair.split_once(':')?;
    Some((id.to_string(), secret.to_string()))
}

impl EenState {
    fn token(&mut self, request: &TokenRequest) -> Response {
        if request.basic != Some((CLIENT_ID.into(), CLIENT_SECRET.into())) {
            return oauth_error(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "Client authentication failed.",
            );
        }
        if !request
            .content_type
            .starts_with("application/x-www-form-urlencoded")
        {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "The request must be a form.",
            );
        }
        if request.form.get("grant_type").map(String::as_str) != Some("refresh_token") {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "Only the refresh grant is taken here.",
            );
        }
        if request.form.get("refresh_token") != Some(&self.refresh_token) {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_grant",
                "The refresh token is invalid, expired or revoked.",
            );
        }
        self.tokens_issued += 1;
        let n = self.tokens_issued;
        let access = format!("een-access-{n}-for-api");
        self.access_tokens.push(access.clone());
        self.refresh_token = format!("een-refresh-{n}-rotated");
        axum::Json(json!({
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": 3600,
            "refresh_token": self.refresh_token,
            "scope": "vms.all",
        }))
        .into_response()
    }

    fn create(&mut self, bearer: Option<&str>, body: &Value) -> Response {
        let api_error = |status: StatusCode, name: &str, message: String| {
            answer(
                status,
                json!({"code": status.as_u16(), "status": name, "message": message}),
            )
        };
        if !bearer.is_some_and(|t| self.access_tokens.iter().any(|a| a == t)) {
            return api_error(
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                "The access token is invalid or expired.".into(),
            );
        }
        if let Err(why) = check_event(body) {
            return api_error(StatusCode::BAD_REQUEST, "badRequest", why);
        }
        self.events_stored += 1;
        let mut event = body.clone();
        event["id"] = json!(format!("evt-{}", self.events_stored));
        answer(StatusCode::CREATED, event)
    }
}

/// The body as VENDORS.md lists it, with ISO 8601 times to the millisecond and a type from the accepted list.
fn check_event(body: &Value) -> Result<(), String> {
    let object = body.as_object().ok_or("the body must be an object")?;
    let mut keys: Vec<&str> = object.keys().map(String::as_str).collect();
    keys.sort();
    let expected = [
        "accountId",
        "actorAccountId",
        "actorId",
        "actorType",
        "creatorId",
        "data",
        "dataSchemas",
        "endTimestamp",
        "span",
        "startTimestamp",
        "type",
    ];
    if keys != expected {
        return Err(format!("fields {keys:?}, expected {expected:?}"));
    }
    let time = |key: &str| {
        let text = body[key].as_str().unwrap_or_default();
        let millis = text
            .get(19..23)
            .filter(|f| f.starts_with('.') && f[1..].bytes().all(|b| b.is_ascii_digit()));
        match (millis, chrono::DateTime::parse_from_rfc3339(text)) {
            (Some(_), Ok(t)) => Ok(t),
            _ => Err(format!("{key} {text:?} is not ISO 8601 with milliseconds")),
        }
    };
    if time("endTimestamp")? < time("startTimestamp")? {
        return Err("endTimestamp is before startTimestamp".into());
    }
    if body["actorType"] != "camera" {
        return Err(format!("actorType {} is not camera", body["actorType"]));
    }
    for key in ["accountId", "actorAccountId", "actorId", "creatorId"] {
        if !body[key].is_string() {
            return Err(format!("{key} must be a string"));
        }
    }
    if body["type"] != EVENT_TYPE {
        return Err(format!("event type {} is not supported", body["type"]));
    }
    let schemas_ok = body["dataSchemas"]
        .as_array()
        .is_some_and(|s| s.iter().all(Value::is_string));
    let data_ok = body["data"]
        .as_array()
        .is_some_and(|d| d.iter().all(Value::is_object));
    if !schemas_ok || !data_ok || !body["span"].is_boolean() {
        return Err("dataSchemas must be strings, data objects, span a boolean".into());
    }
    Ok(())
}

async fn start_fake_een() -> FakeEen {
    let state = Arc::new(Mutex::new(EenState {
        refresh_token: FIRST_REFRESH.to_string(),
        ..EenState::default()
    }));
    let tokens = state.clone();
    let auth = axum::Router::new().route(
        "/oauth2/token",
        axum::routing::post(move |headers: HeaderMap, body: String| {
            let state = tokens.clone();
            async move {
                let mut request = TokenRequest {
                    basic: basic(&headers),
                    content_type: headers
                        .get("content-type")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_string(),
                    form: url::form_urlencoded::parse(body.as_bytes())
                        .into_owned()
                        .collect(),
                    status: 0,
                };
                let mut s = state.lock().unwrap();
                let response = s.token(&request);
                request.status = response.status().as_u16();
                s.token_requests.push(request);
                response
            }
        }),
    );
    let events = state.clone();
    let api = axum::Router::new().route(
        "/api/v3.0/events",
        axum::routing::post(move |headers: HeaderMap, body: String| {
            let state = events.clone();
            async move {
                let bearer = bearer(&headers).map(str::to_string);
                let body: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
                let mut s = state.lock().unwrap();
                let response = s.create(bearer.as_deref(), &body);
                s.creates.push(Create {
                    bearer,
                    body,
                    status: response.status().as_u16(),
                });
                response
            }
        }),
    );
    FakeEen {
        api_url: serve(api).await,
        token_url: format!("{}/oauth2/token", serve(auth).await),
        state,
    }
}

/// A `[[camera_systems]]` entry for one fake, its refresh token in the variable `refresh_env`, and a camera on
/// `register` whose clock runs 1.25 s ahead of the registers', with its own rolls.
fn een_system(
    id: &str,
    een: &FakeEen,
    refresh_env: &str,
    event_type: bool,
    register: &str,
) -> String {
    let event_type = if event_type {
        format!("event_type = \"{EVENT_TYPE}\"\n")
    } else {
        String::new()
    };
    format!(
        r#"[[camera_systems]]
id = "{id}"
integration = "eagle-eye"
url = "{api}"
client_id = "{CLIENT_ID}"
client_secret_env = "TEST_EEN_CLIENT_SECRET"
refresh_token_env = "{refresh_env}"
allowed_hosts = ["{token_host}"]
[camera_systems.options]
account_id = "{ACCOUNT}"
token_url = "{token_url}"
{event_type}[[cameras]]
system = "{id}"
device = "{CAMERA}"
name = "Till 1"
registers = ["shibuya-01/{register}"]
offset = "1.25s"
pre_roll = "5s"
post_roll = "15s"
"#,
        api = een.api_url,
        token_url = een.token_url,
        token_host = url::Url::parse(&een.token_url)
            .map(|u| format!("{}:{}", u.host_str().unwrap(), u.port().unwrap()))
            .unwrap(),
    )
}

fn een_config(site: &Site, systems: &[String]) -> Config {
    site.vendor_config(
        &systems.concat(),
        &[
            ("TEST_EEN_CLIENT_SECRET", CLIENT_SECRET),
            ("TEST_EEN_REFRESH_TOKEN", FIRST_REFRESH),
            (
                "TEST_EEN_REVOKED_REFRESH_TOKEN",
                "een-refresh-revoked-last-week",
            ),
        ],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eagle_eye_gets_an_event_spanning_the_window_and_an_expired_token_is_refreshed_with_the_rotated_one()
 {
    let een = start_fake_een().await;
    let site = Site::new();
    let config = een_config(
        &site,
        &[een_system(
            "een",
            &een,
            "TEST_EEN_REFRESH_TOKEN",
            true,
            "r1",
        )],
    );
    let (daemon, mut bridge) = start_daemon(config).await;
    publish_void(&site, &mut bridge, "void-1", "r1", AT).await;
    let first = settled_event(&daemon, "void-1").await["bookmarks"][0].clone();
    assert_eq!(first["state"], "made", "{first}");
    assert_eq!(first["vendor_id"], "evt-1", "Eagle Eye's id for the event");

    een.revoke_access_tokens();
    bridge
        .publish_as_register(
            &site,
            &event("refund-2", "refund", "r1", "2026-11-21T18:45:00.000+09:00"),
        )
        .await;
    let second = settled_event(&daemon, "refund-2").await["bookmarks"][0].clone();
    assert_eq!(second["state"], "made", "{second}");
    assert_eq!(
        second["attempts"], 1,
        "an expired token costs no attempt: {second}"
    );
    assert_eq!(second["vendor_id"], "evt-2");

    let tokens = een.token_requests();
    let refresh_tokens: Vec<&str> = tokens
        .iter()
        .map(|t| t.form["refresh_token"].as_str())
        .collect();
    assert_eq!(
        refresh_tokens,
        [FIRST_REFRESH, "een-refresh-1-rotated"],
        "the configured refresh token first, then the one Eagle Eye rotated it to"
    );
    for t in &tokens {
        assert_eq!(t.status, 200, "{t:?}");
        assert_eq!(t.basic, Some((CLIENT_ID.into(), CLIENT_SECRET.into())));
        assert_eq!(t.content_type, "application/x-www-form-urlencoded");
        assert_eq!(
            t.form.len(),
            2,
            "grant_type and refresh_token, no secret in the form: {t:?}"
        );
        assert_eq!(t.form["grant_type"], "refresh_token");
    }

    let creates = een.creates();
    let summary: Vec<(Option<&str>, u16)> = creates
        .iter()
        .map(|c| (c.bearer.as_deref(), c.status))
        .collect();
    assert_eq!(
        summary,
        [
            (Some("een-access-1-for-api"), 201),
            (Some("een-access-1-for-api"), 401),
            (Some("een-access-2-for-api"), 201)
        ],
        "refused once with the expired token, made once with the new one"
    );
    assert_eq!(
        creates[1].body, creates[2].body,
        "the same event, sent again"
    );
    assert_eq!(
        creates[0].body,
        json!({
            // 18:42:07.310 in Tokyo is 09:42:07.310 UTC, 09:42:08.560 on the camera; 5 s before, 15 s after.
            "startTimestamp": "2026-11-21T09:42:03.560+00:00",
            "endTimestamp": "2026-11-21T09:42:23.560+00:00",
            "span": true,
            "accountId": ACCOUNT,
            "actorId": CAMERA,
            "actorAccountId": ACCOUNT,
            "actorType": "camera",
            "creatorId": "tillmark",
            "type": EVENT_TYPE,
            "dataSchemas": [],
            "data": [],
        })
    );
    assert_eq!(
        creates[2].body["startTimestamp"],
        "2026-11-21T09:44:56.250+00:00"
    );
    assert_eq!(
        creates[2].body["endTimestamp"],
        "2026-11-21T09:45:16.250+00:00"
    );
    assert_shown_nowhere(
        &daemon,
        &[
            CLIENT_SECRET,
            FIRST_REFRESH,
            "een-refresh-1-rotated",
            "een-refresh-2-rotated",
            "een-access-1-for-api",
            "een-access-2-for-api",
        ],
    )
    .await;
    daemon.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_refresh_token_names_the_client_and_a_missing_event_type_fails_before_any_request()
 {
    let (revoked, untyped) = (start_fake_een().await, start_fake_een().await);
    let site = Site::new();
    let config = een_config(
        &site,
        &[
            een_system(
                "een-revoked",
                &revoked,
                "TEST_EEN_REVOKED_REFRESH_TOKEN",
                true,
                "r1",
            ),
            een_system(
                "een-untyped",
                &untyped,
                "TEST_EEN_REFRESH_TOKEN",
                false,
                "r1",
            ),
        ],
    );
    let (daemon, mut bridge) = start_daemon(config).await;
    publish_void(&site, &mut bridge, "void-1", "r1", AT).await;
    let bookmarks = settled_bookmarks_of(&daemon, "void-1").await;

    assert_failed(
        &bookmark_on(&bookmarks, "system", "een-revoked"),
        &format!(
            "Eagle Eye Networks refused the login of OAuth2 client \"{CLIENT_ID}\" (HTTP 400 Bad Request): \
             invalid_grant: The refresh token is invalid, expired or revoked."
        ),
    );
    let tokens = revoked.token_requests();
    assert_eq!(
        tokens.len(),
        1,
        "a refused grant is not retried: {tokens:?}"
    );
    assert_eq!(
        tokens[0].form["refresh_token"],
        "een-refresh-revoked-last-week"
    );
    assert!(revoked.creates().is_empty(), "no event without a token");

    // The expression that needs the missing option.
    assert_failed(
        &bookmark_on(&bookmarks, "system", "een-untyped"),
        "definition eagle-eye: template error: undefined value (in <string>:10): \
         {{ options.event_type | tojson }}",
    );
    assert!(
        untyped.token_requests().is_empty() && untyped.creates().is_empty(),
        "nothing is sent to Eagle Eye"
    );
    assert_shown_nowhere(
        &daemon,
        &[
            CLIENT_SECRET,
            FIRST_REFRESH,
            "een-refresh-revoked-last-week",
        ],
    )
    .await;
    daemon.shutdown().await;
}
