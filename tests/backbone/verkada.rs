//! The Verkada Helix definition (`integrations/verkada-helix.toml`) against a fake Verkada API written from
//! VENDORS.md "Verkada":
//!
//! - `POST /token` with `x-api-key` → `{"token"}`, good for 30 minutes; every other call carries
//!   `x-verkada-auth`, and a token the server no longer honours gets 401 "Token expired".
//! - `GET|POST /cameras/v1/video_tagging/event_type`: the create takes `{"name","event_schema"}` (attribute →
//!   `string|integer|float|boolean`) and answers the `event_type_uid`.
//! - `POST /cameras/v1/video_tagging/event` `{"camera_id","event_type_uid","time_ms" (int, epoch ms),
//!   "attributes","flagged"}`; `GET` on the same path with `camera_id`, `time_ms` and `event_type_uid` finds one.
//! - 429, then a 5 s cooldown: the fake answers 429 to every request until the cooldown is over.
//! - Attribute values of at most 200 characters (unverified, enforced here).
//!
//! Not in VENDORS.md, so assumed here as the definition assumes it: the event type list answers
//! `{"event_types": [{"event_type_uid","name","event_schema"}]}`, the event type create answers
//! `{"event_type_uid", ...}` at the top level, the event GET answers the event (200) or 404 when there is none,
//! and error bodies are `{"message": ...}`.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tillmark::config::Config;
use tillmark::event::event_key;

use crate::fakes::*;
use crate::support::*;

const API_KEY: &str = "vk-api-key-9d41c7";
const TOKEN_PATH: &str = "/token";
const TYPE_PATH: &str = "/cameras/v1/video_tagging/event_type";
const EVENT_PATH: &str = "/cameras/v1/video_tagging/event";
/// The till camera, its clock 2.5 s behind the registers'.
const TILL_CAM: &str = "5f0c6a3e-2b8d-4c1e-9a77-0d1b2c3e4f50";
const DOOR_CAM: &str = "a3c81e27-77d4-4f0b-8e2a-6b5c4d3e2f10";
const COOLDOWN: Duration = Duration::from_secs(5);

#[derive(Default)]
struct Faults {
    /// The next N event creates answer 200 without storing anything.
    drop_creates: AtomicUsize,
    /// The next N event creates store the event, then answer 500.
    store_then_fail: AtomicUsize,
    /// The next N event creates find the organisation over its rate limit.
    rate_limit_creates: AtomicUsize,
}

#[derive(Default)]
struct FakeVerkada {
    requests: RequestLog,
    /// Tokens minted, and those still honoured.
    tokens: Tokens,
    event_types: Mutex<Vec<Value>>,
    events: Mutex<Vec<Value>>,
    /// 429s answered, and until when the organisation is cooling down.
    rate_limited: AtomicUsize,
    cooling_until: Mutex<Option<Instant>>,
    faults: Faults,
}

impl FakeVerkada {
    /// Ends every token early, as Verkada does when one is revoked or its 30 minutes are up.
    fn expire_tokens(&self) {
        self.tokens.revoke_all();
    }

    fn minted(&self) -> Vec<String> {
        self.tokens.issued()
    }

    fn events(&self) -> Vec<Value> {
        self.events.lock().unwrap().clone()
    }

    fn uid_of(&self, name: &str) -> String {
        self.event_types
            .lock()
            .unwrap()
            .iter()
            .find(|t| t["name"] == name)
            .and_then(|t| t["event_type_uid"].as_str())
            .unwrap_or_else(|| panic!("no event type {name:?}"))
            .to_string()
    }
}

/// Verkada's error shape (assumed).
fn refuse(status: StatusCode, message: &str) -> Response {
    answer(status, json!({ "message": message }))
}

async fn start_fake_verkada(event_types: &[(&str, &str)]) -> (String, Arc<FakeVerkada>) {
    let fake = Arc::new(FakeVerkada::default());
    fake.event_types.lock().unwrap().extend(
        event_types
            .iter()
            .map(|(uid, name)| json!({"event_type_uid": uid, "name": name, "event_schema": tillmark_schema()})),
    );
    let app = axum::Router::new()
        .fallback(handle)
        .with_state(fake.clone());
    (fake.requests.serve(app).await, fake)
}

async fn handle(
    State(v): State<Arc<FakeVerkada>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: String,
) -> Response {
    {
        let cooling = v.cooling_until.lock().unwrap();
        if cooling.is_some_and(|until| Instant::now() < until) {
            v.rate_limited.fetch_add(1, Ordering::SeqCst);
            return refuse(StatusCode::TOO_MANY_REQUESTS, "Too many requests");
        }
    }
    if (&method, uri.path()) == (&Method::POST, TOKEN_PATH) {
        if headers.get("x-api-key").is_none_or(|k| k != API_KEY) {
            return refuse(StatusCode::UNAUTHORIZED, "Invalid API key");
        }
        let token = v
            .tokens
            .issue(format!("vt-{}", uuid::Uuid::new_v4().simple()));
        return axum::Json(json!({ "token": token })).into_response();
    }
    let Some(token) = headers.get("x-verkada-auth").and_then(|t| t.to_str().ok()) else {
        return refuse(StatusCode::UNAUTHORIZED, "Missing x-verkada-auth");
    };
    if !v.tokens.honours(Some(token)) {
        return refuse(StatusCode::UNAUTHORIZED, "Token expired");
    }
    let query: Vec<(String, String)> =
        url::form_urlencoded::parse(uri.query().unwrap_or_default().as_bytes())
            .into_owned()
            .collect();
    let body: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    match (method, uri.path()) {
        (Method::GET, TYPE_PATH) => {
            axum::Json(json!({ "event_types": *v.event_types.lock().unwrap() })).into_response()
        }
        (Method::POST, TYPE_PATH) => create_event_type(&v, body),
        (Method::POST, EVENT_PATH) => create_event(&v, body),
        (Method::GET, EVENT_PATH) => {
            let q = |k: &str| {
                query
                    .iter()
                    .find(|(key, _)| key == k)
                    .map(|(_, v)| v.clone())
            };
            let found = v.events().into_iter().find(|e| {
                Some(e["camera_id"].as_str().unwrap_or_default().to_string()) == q("camera_id")
                    && Some(e["event_type_uid"].as_str().unwrap_or_default().to_string())
                        == q("event_type_uid")
                    && Some(e["time_ms"].to_string()) == q("time_ms")
            });
            match found {
                Some(e) => axum::Json(e).into_response(),
                None => refuse(StatusCode::NOT_FOUND, "Event not found"),
            }
        }
        _ => refuse(StatusCode::NOT_FOUND, "Not found"),
    }
}

fn create_event_type(v: &FakeVerkada, body: Value) -> Response {
    let (Some(name), Some(schema)) = (body["name"].as_str(), body["event_schema"].as_object())
    else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "name and event_schema are required",
        );
    };
    let kinds = ["string", "integer", "float", "boolean"];
    if !schema
        .values()
        .all(|k| k.as_str().is_some_and(|k| kinds.contains(&k)))
    {
        return refuse(StatusCode::BAD_REQUEST, "invalid event_schema");
    }
    let made = json!({
        "event_type_uid": uuid::Uuid::new_v4().to_string(),
        "name": name,
        "event_schema": schema,
    });
    v.event_types.lock().unwrap().push(made.clone());
    axum::Json(made).into_response()
}

fn create_event(v: &FakeVerkada, body: Value) -> Response {
    if take(&v.faults.rate_limit_creates) {
        *v.cooling_until.lock().unwrap() = Some(Instant::now() + COOLDOWN);
        v.rate_limited.fetch_add(1, Ordering::SeqCst);
        return refuse(StatusCode::TOO_MANY_REQUESTS, "Too many requests");
    }
    let schema = v
        .event_types
        .lock()
        .unwrap()
        .iter()
        .find(|t| t["event_type_uid"] == body["event_type_uid"])
        .map(|t| t["event_schema"].clone());
    let Some(schema) = schema else {
        return refuse(StatusCode::BAD_REQUEST, "Unknown event_type_uid");
    };
    if !body["camera_id"].is_string() {
        return refuse(StatusCode::BAD_REQUEST, "camera_id is required");
    }
    // An integer: not a string, not a float, not seconds.
    if body["time_ms"]
        .as_i64()
        .is_none_or(|ms| ms < 1_000_000_000_000)
    {
        return refuse(
            StatusCode::BAD_REQUEST,
            "time_ms must be epoch milliseconds",
        );
    }
    if !body["flagged"].is_boolean() && !body["flagged"].is_null() {
        return refuse(StatusCode::BAD_REQUEST, "flagged must be a boolean");
    }
    let Some(attributes) = body["attributes"].as_object() else {
        return refuse(StatusCode::BAD_REQUEST, "attributes must be an object");
    };
    for (key, value) in attributes {
        let fits = match schema[key].as_str() {
            Some("string") => value.as_str().is_some_and(|s| s.chars().count() <= 200),
            Some("integer") => value.is_i64(),
            Some("float") => value.is_number(),
            Some("boolean") => value.is_boolean(),
            _ => false,
        };
        if !fits {
            return refuse(
                StatusCode::BAD_REQUEST,
                &format!("attribute {key} does not fit the event type's schema"),
            );
        }
    }
    if take(&v.faults.drop_creates) {
        return axum::Json(body).into_response();
    }
    v.events.lock().unwrap().push(body.clone());
    if take(&v.faults.store_then_fail) {
        return refuse(StatusCode::INTERNAL_SERVER_ERROR, "Internal server error");
    }
    axum::Json(body).into_response()
}

/// The attributes of tillmark's event type, all text.
fn tillmark_schema() -> Value {
    json!({
        "type": "string", "amount": "string", "register": "string", "cashier": "string",
        "transaction": "string", "reason": "string", "key": "string",
    })
}

/// One Verkada organisation: the till camera (2.5 s slow) on r1, the door camera on r2. `options` goes under
/// `[camera_systems.options]`.
fn verkada_config(site: &Site, url: &str, options: &str) -> Config {
    let systems = format!(
        r#"[[camera_systems]]
id = "verkada"
integration = "verkada-helix"
url = "{url}"
api_key_env = "VERKADA_API_KEY"
[camera_systems.options]
{options}
[[cameras]]
system = "verkada"
device = "{TILL_CAM}"
name = "Till"
registers = ["shibuya-01/r1"]
offset = "-2.5s"
[[cameras]]
system = "verkada"
device = "{DOOR_CAM}"
name = "Door"
registers = ["shibuya-01/r2"]
"#
    );
    site.vendor_config(&systems, &[("VERKADA_API_KEY", API_KEY)])
}

/// A daemon on a fresh fake Verkada that already lists `event_types` (uid, name), with these options.
async fn verkada_daemon(
    event_types: &[(&str, &str)],
    options: &str,
) -> (Arc<FakeVerkada>, Site, tillmark::Daemon, Bridge) {
    let (url, fake) = start_fake_verkada(event_types).await;
    let site = Site::new();
    let (daemon, bridge) = start_daemon(verkada_config(&site, &url, options)).await;
    (fake, site, daemon, bridge)
}

/// The event body Verkada should receive for `event(id, "void", register, ..)` on `camera` at `time_ms`.
fn expected_event(id: &str, register: &str, camera: &str, uid: &str, time_ms: i64) -> Value {
    json!({
        "camera_id": camera,
        "event_type_uid": uid,
        "time_ms": time_ms,
        "attributes": {
            "type": "void",
            "amount": "¥1,280",
            "register": register,
            "cashier": "c117",
            "transaction": "T-000981",
            "reason": "customer changed mind",
            "key": event_key("shibuya-01", id),
        },
        "flagged": true,
    })
}

/// What Verkada stored for the event `id`.
fn stored(fake: &FakeVerkada, id: &str) -> Vec<Value> {
    let key = event_key("shibuya-01", id);
    fake.events()
        .into_iter()
        .filter(|e| e["attributes"]["key"] == key.as_str())
        .collect()
}

/// 18:42:07.310 in Tokyo, in epoch ms.
const AT_0742: i64 = 1_795_254_127_310;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verkada_gets_events_at_the_moment_in_epoch_ms_on_the_cameras_clock_with_one_token_and_one_event_type()
 {
    let (fake, site, daemon, mut bridge) = verkada_daemon(&[], "").await;
    publish_voids(
        &site,
        &mut bridge,
        &[
            ("v-1", "r1", AT),
            ("v-2", "r2", "2026-11-21T18:43:00.001+09:00"),
            ("v-3", "r1", "2026-11-21T18:44:59.999+09:00"),
        ],
    )
    .await;

    let events = settled_events(&daemon, 3).await;
    let uid = fake.uid_of("tillmark POS");
    let expected = [
        ("v-1", "r1", TILL_CAM, AT_0742 - 2_500),
        ("v-2", "r2", DOOR_CAM, AT_0742 + 52_691),
        ("v-3", "r1", TILL_CAM, AT_0742 + 172_689 - 2_500),
    ];
    for (id, register, camera, time_ms) in expected {
        let made = &events[id][0];
        assert_eq!(made["state"], "made", "{made}");
        assert_eq!(
            made["vendor_id"],
            format!("{camera}/{uid}/{time_ms}"),
            "the natural key is the vendor id"
        );
        assert_eq!(
            stored(&fake, id),
            vec![expected_event(id, register, camera, &uid, time_ms)],
            "{id}: one event at the moment, in epoch ms, on the camera's clock"
        );
    }
    assert_eq!(
        events["v-1"][0]["footage"][0]["url"],
        format!(
            "https://command.verkada.com/cameras/{TILL_CAM}/history/86400/1795254114/?duration=86400&initialVideoTime=1795254114810"
        ),
        "the footage opens 10 s (the pre-roll) before the moment"
    );
    assert_eq!(fake.events().len(), 3);

    // One token for everything, minted with the API key and sent as x-verkada-auth.
    let mints = fake.requests.to("POST", TOKEN_PATH);
    assert_eq!(mints.len(), 1, "one token serves all three events");
    assert_eq!(mints[0].header("x-api-key"), Some(API_KEY));
    let token = fake.minted()[0].clone();
    for seen in fake.requests.all().iter().skip(1) {
        assert_eq!(
            seen.header("x-verkada-auth"),
            Some(token.as_str()),
            "{} {}",
            seen.method,
            seen.path
        );
        assert!(seen.header("x-api-key").is_none() && seen.header("authorization").is_none());
    }

    // The event type: looked for once, made once, before any event.
    assert_eq!(fake.requests.to("GET", TYPE_PATH).len(), 1);
    let made_types = fake.requests.to("POST", TYPE_PATH);
    assert_eq!(made_types.len(), 1, "the event type is made once");
    assert_eq!(
        made_types[0].json(),
        json!({ "name": "tillmark POS", "event_schema": tillmark_schema() })
    );

    // Each create read back by its natural key.
    let reads = fake.requests.to("GET", EVENT_PATH);
    assert_eq!(reads.len(), 3, "one read-back per event");
    let till = reads
        .iter()
        .find(|r| r.query("time_ms") == Some("1795254124810"))
        .expect("the read-back of v-1");
    assert_eq!(
        till.query,
        vec![
            ("camera_id".to_string(), TILL_CAM.to_string()),
            ("time_ms".to_string(), "1795254124810".to_string()),
            ("event_type_uid".to_string(), uid.clone()),
        ]
    );
    daemon.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_type_verkada_already_lists_under_the_configured_name_is_used_and_none_is_made() {
    let (fake, site, daemon, mut bridge) = verkada_daemon(
        &[
            ("3d7e4c10-0000-4000-8000-000000000001", "tillmark POS"),
            ("3d7e4c10-0000-4000-8000-000000000002", "Register events"),
        ],
        r#"event_type = "Register events""#,
    )
    .await;
    publish_voids(
        &site,
        &mut bridge,
        &[
            ("v-4", "r2", AT),
            ("v-5", "r2", "2026-11-21T18:42:08.310+09:00"),
        ],
    )
    .await;

    let events = settled_events(&daemon, 2).await;
    assert_eq!(events["v-4"][0]["state"], "made", "{:?}", events["v-4"]);
    assert_eq!(events["v-5"][0]["state"], "made", "{:?}", events["v-5"]);
    assert!(
        fake.requests.to("POST", TYPE_PATH).is_empty(),
        "no event type is made when one of that name exists"
    );
    assert_eq!(fake.requests.to("GET", TYPE_PATH).len(), 1);
    let uids: Vec<Value> = fake
        .events()
        .iter()
        .map(|e| e["event_type_uid"].clone())
        .collect();
    assert_eq!(
        uids,
        vec![json!("3d7e4c10-0000-4000-8000-000000000002"); 2],
        "the type named in the options, not the default one"
    );
    daemon.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_verkada_expired_early_is_replaced_by_a_new_one_and_the_event_is_made_once() {
    let (fake, site, daemon, mut bridge) = verkada_daemon(&[], "").await;
    publish_void(&site, &mut bridge, "v-6", "r2", AT).await;
    assert_eq!(settled_events(&daemon, 1).await["v-6"][0]["state"], "made");

    fake.expire_tokens();
    publish_void(
        &site,
        &mut bridge,
        "v-7",
        "r2",
        "2026-11-21T18:42:09.000+09:00",
    )
    .await;
    let made = settled_events(&daemon, 2).await["v-7"][0].clone();
    assert_eq!(made["state"], "made", "{made}");
    assert_eq!(made["attempts"], 1, "renewed within the attempt: {made}");

    let minted = fake.minted();
    assert_eq!(minted.len(), 2, "a new token after the 401");
    let creates = fake.requests.to("POST", EVENT_PATH);
    assert_eq!(creates.len(), 3, "v-6, v-7 refused, v-7 again");
    assert_eq!(
        creates[1].header("x-verkada-auth"),
        Some(minted[0].as_str())
    );
    assert_eq!(
        creates[2].header("x-verkada-auth"),
        Some(minted[1].as_str())
    );
    assert_eq!(
        creates[1].body, creates[2].body,
        "the same event sent again"
    );
    assert_eq!(
        stored(&fake, "v-7"),
        vec![expected_event(
            "v-7",
            "r2",
            DOOR_CAM,
            &fake.uid_of("tillmark POS"),
            AT_0742 + 1_690
        )],
        "exactly once"
    );
    daemon.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_429_verkada_is_left_alone_for_its_5_s_cooldown_then_the_event_is_made() {
    let (fake, site, daemon, mut bridge) = verkada_daemon(&[], "").await;
    fake.faults.rate_limit_creates.store(1, Ordering::SeqCst);
    publish_void(&site, &mut bridge, "v-8", "r2", AT).await;

    // While it waits, the index shows the 429 and when the next attempt is due.
    let waiting = first_bookmark_when(&web_base(&daemon), "the 429 in the index", |b| {
        b["state"] == "pending"
            && b["last_error"]
                .as_str()
                .is_some_and(|e| e.contains("HTTP 429"))
    })
    .await;
    let refused = fake.requests.to("POST", EVENT_PATH)[0].clone();
    let next = chrono::DateTime::parse_from_rfc3339(waiting["next_attempt"].as_str().unwrap())
        .unwrap()
        .timestamp_millis();
    assert!(
        next >= refused.at_ms + 5_000,
        "the next attempt is due {} ms after the 429: {waiting}",
        next - refused.at_ms
    );

    let made = settled_bookmarks(&daemon).await.remove(0);
    assert_eq!(made["state"], "made", "{made}");
    assert_eq!(
        fake.rate_limited.load(Ordering::SeqCst),
        1,
        "nothing was sent during the cooldown"
    );
    let requests = fake.requests.all();
    let after = requests
        .iter()
        .find(|s| s.at > refused.at)
        .expect("a request after the 429");
    let waited = after.at - refused.at;
    assert!(
        waited >= Duration::from_millis(4_990),
        "the next request came {waited:?} after the 429"
    );
    assert_eq!(fake.events().len(), 1);
    daemon.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_verkada_accepted_but_does_not_have_is_not_counted_until_it_is_really_there() {
    let (fake, site, daemon, mut bridge) = verkada_daemon(&[], "").await;
    fake.faults.drop_creates.store(1, Ordering::SeqCst);
    publish_void(&site, &mut bridge, "v-9", "r2", AT).await;

    let made = settled_bookmarks(&daemon).await.remove(0);
    assert_eq!(made["state"], "made", "{made}");
    assert_eq!(made["attempts"], 2, "the first 200 was not counted: {made}");
    let uid = fake.uid_of("tillmark POS");
    assert_eq!(made["vendor_id"], format!("{DOOR_CAM}/{uid}/{AT_0742}"));
    assert_eq!(
        stored(&fake, "v-9"),
        vec![expected_event("v-9", "r2", DOOR_CAM, &uid, AT_0742)],
        "exactly one event in the end"
    );
    assert_eq!(fake.requests.to("POST", EVENT_PATH).len(), 2);
    assert_eq!(
        fake.requests.to("GET", EVENT_PATH).len(),
        3,
        "read back (missing), looked up before trying again (missing), read back (there)"
    );
    let page = newest_event_page(&daemon).await;
    assert!(
        page.contains("Verkada Helix read-back: accepted (HTTP 200) but not there when read back"),
        "{page}"
    );
    daemon.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_verkada_stored_before_answering_500_is_found_by_its_natural_key_and_not_made_twice()
 {
    let (fake, site, daemon, mut bridge) = verkada_daemon(&[], "").await;
    fake.faults.store_then_fail.store(1, Ordering::SeqCst);
    publish_void(&site, &mut bridge, "v-10", "r1", AT).await;

    let made = settled_bookmarks(&daemon).await.remove(0);
    assert_eq!(made["state"], "made", "{made}");
    assert_eq!(made["attempts"], 2, "{made}");
    let uid = fake.uid_of("tillmark POS");
    let time_ms = AT_0742 - 2_500;
    assert_eq!(
        made["vendor_id"],
        format!("{TILL_CAM}/{uid}/{time_ms}"),
        "found by its natural key, which is its id"
    );
    assert_eq!(
        stored(&fake, "v-10"),
        vec![expected_event("v-10", "r1", TILL_CAM, &uid, time_ms)],
        "no duplicate"
    );
    assert_eq!(
        fake.requests.to("POST", EVENT_PATH).len(),
        1,
        "no second create"
    );
    let lookups = fake.requests.to("GET", EVENT_PATH);
    assert_eq!(lookups.len(), 1);
    assert_eq!(lookups[0].query("time_ms"), Some("1795254124810"));
    let page = newest_event_page(&daemon).await;
    assert!(page.contains("HTTP 500"), "{page}");
    assert!(page.contains("found from an earlier attempt"), "{page}");
    daemon.shutdown().await;
}
