//! The Axis Camera Station definition (`integrations/axis-camera-station.toml`) against a fake ACS written from
//! VENDORS.md: `POST /Acs/Api/ExternalDataFacade/AddExternalData` with
//! `{"addExternalDataRequest":{"occurrenceTime","source","externalDataType","data"}}`, behind HTTP Digest.
//!
//! The fake does the server side of Digest itself, from RFC 7616 and independently of tillmark's client: a
//! request without credentials gets a 401 challenge (`qop="auth"`, MD5, or MD5 and SHA-256 both offered); an
//! answer is checked by computing its `response` hash here; a wrong hash gets a fresh challenge; a right hash on a
//! nonce the server has retired gets `stale=true`; a nonce count that does not go up is refused as a replay.
//! What ACS says in a 401 body is not documented: the fake's words are its own.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use md5::Md5;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use tillmark::config::Config;

use crate::support::*;

const PATH: &str = "/Acs/Api/ExternalDataFacade/AddExternalData";
const USER: &str = "tillmark";
const PASSWORD: &str = "Ax1s-Stati0n-pw";
const REALM: &str = "AXIS Camera Station";
const OPAQUE: &str = "5ccc069c403ebaf9f0171e9517f40e41";
/// The external data source ACS ties to the till's camera view.
const SOURCE: &str = "Shibuya till 1";
const REFUSED: &str = "The user name or password is incorrect.";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Algorithm {
    Md5,
    Sha256,
}

impl Algorithm {
    fn name(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Sha256 => "SHA-256",
        }
    }

    fn hash(self, data: &str) -> String {
        match self {
            Algorithm::Md5 => format!("{:x}", Md5::digest(data)),
            Algorithm::Sha256 => format!("{:x}", Sha256::digest(data)),
        }
    }
}

/// What the fake made of one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// No credentials: 401 with a challenge.
    Challenged,
    /// The right hash on a retired nonce: 401 with a new challenge and `stale=true`.
    Stale,
    /// A hash that does not match the password (or an unknown user or nonce): 401 with a fresh challenge.
    WrongCredentials,
    /// A nonce count not above the last one on that nonce: refused as a replay.
    Replayed,
    /// Malformed credentials or body: 400.
    BadRequest,
    Stored,
}

#[derive(Debug, Clone)]
struct Seen {
    /// The client's Digest parameters, when it sent any.
    auth: Option<HashMap<String, String>>,
    body: Value,
    outcome: Outcome,
}

struct Nonce {
    offered: Vec<Algorithm>,
    last_nc: u32,
    retired: bool,
}

struct AcsState {
    password: String,
    offered: Vec<Algorithm>,
    nonces: HashMap<String, Nonce>,
    /// Nonces in the order they were issued.
    issued: Vec<String>,
    seen: Vec<Seen>,
}

#[derive(Clone)]
struct FakeAcs {
    state: Arc<Mutex<AcsState>>,
}

impl FakeAcs {
    fn seen(&self) -> Vec<Seen> {
        self.state.lock().unwrap().seen.clone()
    }

    fn outcomes(&self) -> Vec<Outcome> {
        self.seen().iter().map(|s| s.outcome).collect()
    }

    fn issued(&self) -> Vec<String> {
        self.state.lock().unwrap().issued.clone()
    }

    /// Forgets every nonce, as a restarted server does: an answer on an old nonce gets a fresh challenge, not
    /// `stale=true`, since the server cannot tell whether its hash was right (RFC 7616 section 3.3).
    fn restart(&self) {
        self.state.lock().unwrap().nonces.clear();
    }

    /// Retires every nonce issued so far, as a server does after its nonce lifetime.
    fn retire_nonces(&self) {
        for nonce in self.state.lock().unwrap().nonces.values_mut() {
            nonce.retired = true;
        }
    }
}

/// The parameters of an `Authorization: Digest ...` value; `None` when it is not one, or malformed (an unclosed
/// quote, a repeated parameter, parameters not separated by commas).
fn digest_params(value: &str) -> Option<HashMap<String, String>> {
    let mut rest = value.strip_prefix("Digest ")?.trim();
    let mut params = HashMap::new();
    while !rest.is_empty() {
        let (name, after) = rest.split_once('=')?;
        let after = after.trim_start();
        let (value, after) = match after.strip_prefix('"') {
            Some(quoted) => {
                let mut value = String::new();
                let mut chars = quoted.char_indices();
                let mut end = None;
                while let Some((i, c)) = chars.next() {
                    match c {
                        '\\' => value.push(chars.next()?.1),
                        '"' => {
                            end = Some(i + 1);
                            break;
                        }
                        c => value.push(c),
                    }
                }
                (value, &quoted[end?..])
            }
            None => {
                let end = after.find(',').unwrap_or(after.len());
                (after[..end].trim().to_string(), &after[end..])
            }
        };
        if params
            .insert(name.trim().to_ascii_lowercase(), value)
            .is_some()
        {
            return None;
        }
        let after = after.trim_start();
        rest = match after.strip_prefix(',') {
            Some(next) => next.trim_start(),
            None if after.is_empty() => after,
            None => return None,
        };
    }
    Some(params)
}

impl AcsState {
    /// A 401 with a new nonce, one challenge per algorithm offered.
    fn challenge(&mut self, stale: bool, words: &str) -> Response {
        let nonce = format!("{:032x}", rand::random::<u128>());
        self.nonces.insert(
            nonce.clone(),
            Nonce {
                offered: self.offered.clone(),
                last_nc: 0,
                retired: false,
            },
        );
        self.issued.push(nonce.clone());
        let mut response = (StatusCode::UNAUTHORIZED, words.to_string()).into_response();
        for alg in &self.offered {
            let mut value = format!(
                "Digest realm=\"{REALM}\", qop=\"auth\", algorithm={}, nonce=\"{nonce}\", opaque=\"{OPAQUE}\"",
                alg.name()
            );
            if stale {
                value.push_str(", stale=true");
            }
            response
                .headers_mut()
                .append("www-authenticate", HeaderValue::from_str(&value).unwrap());
        }
        response
    }

    /// Checks a Digest answer (RFC 7616 section 3.4) and the body; the outcome and the response.
    fn answer(
        &mut self,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        body: &Value,
    ) -> (Outcome, Response) {
        let Some(value) = headers.get("authorization").and_then(|v| v.to_str().ok()) else {
            return (Outcome::Challenged, self.challenge(false, "Unauthorized"));
        };
        let bad = |why: &str| {
            (
                Outcome::BadRequest,
                (StatusCode::BAD_REQUEST, why.to_string()).into_response(),
            )
        };
        let Some(p) = digest_params(value) else {
            return bad("malformed Authorization header");
        };
        let fields = [
            "username",
            "realm",
            "nonce",
            "uri",
            "response",
            "algorithm",
            "qop",
            "nc",
            "cnonce",
            "opaque",
        ];
        if let Some(missing) = fields.iter().find(|f| !p.contains_key(**f)) {
            return bad(&format!("Digest parameter {missing} is missing"));
        }
        let target = uri
            .path_and_query()
            .map(|pq| pq.as_str())
            .unwrap_or_default();
        if p["uri"] != target || p["realm"] != REALM || p["opaque"] != OPAQUE || p["qop"] != "auth"
        {
            return bad(
                "Digest uri, realm, opaque or qop does not match the request and challenge",
            );
        }
        let nc = match u32::from_str_radix(&p["nc"], 16) {
            Ok(nc) if p["nc"].len() == 8 => nc,
            _ => return bad("nc must be 8 hex digits"),
        };
        let Some(nonce) = self.nonces.get(&p["nonce"]) else {
            return (Outcome::WrongCredentials, self.challenge(false, REFUSED));
        };
        let Some(alg) = nonce
            .offered
            .iter()
            .copied()
            .find(|a| a.name() == p["algorithm"])
        else {
            return bad("the algorithm was not offered");
        };
        let ha1 = alg.hash(&format!("{USER}:{REALM}:{}", self.password));
        let ha2 = alg.hash(&format!("{method}:{}", p["uri"]));
        let expected = alg.hash(&format!(
            "{ha1}:{}:{}:{}:auth:{ha2}",
            p["nonce"], p["nc"], p["cnonce"]
        ));
        if p["username"] != USER || p["response"] != expected {
            return (Outcome::WrongCredentials, self.challenge(false, REFUSED));
        }
        if nonce.retired {
            return (Outcome::Stale, self.challenge(true, "Unauthorized"));
        }
        if nc <= nonce.last_nc {
            return (
                Outcome::Replayed,
                self.challenge(false, "nonce count replayed"),
            );
        }
        self.nonces.get_mut(&p["nonce"]).unwrap().last_nc = nc;
        if let Err(why) = check_body(body) {
            return bad(&why);
        }
        (Outcome::Stored, axum::Json(json!({})).into_response())
    }
}

/// The body as VENDORS.md gives it: exactly these fields, the time as `YYYY-MM-DD HH:MM:SS`, string data values.
fn check_body(body: &Value) -> Result<(), String> {
    let request = body
        .get("addExternalDataRequest")
        .and_then(Value::as_object)
        .filter(|_| body.as_object().is_some_and(|b| b.len() == 1))
        .ok_or("the body must be {\"addExternalDataRequest\": {...}}")?;
    let mut keys: Vec<&str> = request.keys().map(String::as_str).collect();
    keys.sort();
    if keys != ["data", "externalDataType", "occurrenceTime", "source"] {
        return Err(format!("unexpected fields {keys:?}"));
    }
    let time = request["occurrenceTime"].as_str().unwrap_or_default();
    if time.len() != 19 || chrono::NaiveDateTime::parse_from_str(time, "%Y-%m-%d %H:%M:%S").is_err()
    {
        return Err(format!(
            "occurrenceTime {time:?} is not YYYY-MM-DD HH:MM:SS"
        ));
    }
    if !request["source"].is_string() || !request["externalDataType"].is_string() {
        return Err("source and externalDataType must be strings".into());
    }
    let data = request["data"]
        .as_object()
        .ok_or("data must be an object")?;
    match data.iter().find(|(_, v)| !v.is_string()) {
        Some((k, v)) => Err(format!("data value {k} is not a string: {v}")),
        None => Ok(()),
    }
}

async fn start_fake_acs(offered: &[Algorithm]) -> (String, FakeAcs) {
    let fake = FakeAcs {
        state: Arc::new(Mutex::new(AcsState {
            password: PASSWORD.to_string(),
            offered: offered.to_vec(),
            nonces: HashMap::new(),
            issued: Vec::new(),
            seen: Vec::new(),
        })),
    };
    let state = fake.state.clone();
    let app = axum::Router::new().fallback(
        move |method: Method, uri: Uri, headers: HeaderMap, body: String| {
            let state = state.clone();
            async move {
                if method != Method::POST || uri.path() != PATH {
                    return (StatusCode::NOT_FOUND, "not found").into_response();
                }
                let body: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
                let mut s = state.lock().unwrap();
                let (outcome, response) = s.answer(&method, &uri, &headers, &body);
                let auth = headers
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                    .and_then(digest_params);
                s.seen.push(Seen {
                    auth,
                    body,
                    outcome,
                });
                response
            }
        },
    );
    (serve(app).await, fake)
}

/// One ACS with one external data source, on a till camera whose clock runs 2.5 s behind the registers'.
fn acs_config(site: &Site, url: &str, password: &str, data_type: Option<&str>) -> Config {
    let options = data_type
        .map(|t| format!("[camera_systems.options]\ndata_type = \"{t}\"\n"))
        .unwrap_or_default();
    let systems = format!(
        r#"[[camera_systems]]
id = "acs"
integration = "axis-camera-station"
url = "{url}"
username = "{USER}"
password_env = "TEST_ACS_PASSWORD"
{options}[[cameras]]
system = "acs"
device = "{SOURCE}"
name = "Till 1"
registers = ["shibuya-01/r1"]
offset = "-2.5s"
"#
    );
    site.vendor_config(&systems, &[("TEST_ACS_PASSWORD", password)])
}

fn auth(seen: &Seen) -> &HashMap<String, String> {
    seen.auth.as_ref().expect("Digest credentials")
}

/// The nonce (by issue order) and nonce count of each request that carried credentials.
fn counts(acs: &FakeAcs) -> Vec<(usize, String)> {
    let issued = acs.issued();
    acs.seen()
        .iter()
        .filter_map(|s| s.auth.as_ref())
        .map(|a| {
            let n = issued
                .iter()
                .position(|n| *n == a["nonce"])
                .expect("an issued nonce");
            (n, a["nc"].clone())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn axis_gets_external_data_at_the_moment_on_the_cameras_clock_answering_the_digest_challenge()
{
    let (url, acs) = start_fake_acs(&[Algorithm::Md5]).await;
    let site = Site::new();
    let (daemon, mut bridge) = start_daemon(acs_config(&site, &url, PASSWORD, None)).await;
    publish_void(&site, &mut bridge, "void-1", "r1", AT).await;
    let first = settled_event(&daemon, "void-1").await;
    assert_eq!(first["bookmarks"][0]["state"], "made", "{first}");
    assert_eq!(first["bookmarks"][0]["attempts"], 1, "{first}");

    // A no-sale carries no amount, cashier, transaction or reason: still strings, empty.
    let mut no_sale = event("ns-2", "no_sale", "r1", "2026-11-21T18:43:00.000+09:00");
    for key in ["amount", "currency", "cashier", "transaction", "reason"] {
        no_sale.as_object_mut().unwrap().remove(key);
    }
    bridge.publish_as_register(&site, &no_sale).await;
    let second = settled_event(&daemon, "ns-2").await;
    assert_eq!(second["bookmarks"][0]["state"], "made", "{second}");

    let seen = acs.seen();
    assert_eq!(
        acs.outcomes(),
        [Outcome::Challenged, Outcome::Stored, Outcome::Stored],
        "one challenge, answered, then kept for the next request: {seen:#?}"
    );
    assert!(
        seen[0].auth.is_none(),
        "the first request goes without credentials"
    );
    let a = auth(&seen[1]);
    assert_eq!(a["username"], USER);
    assert_eq!(a["realm"], REALM);
    assert_eq!(a["uri"], PATH);
    assert_eq!(a["algorithm"], "MD5");
    assert_eq!(a["qop"], "auth");
    assert_eq!(a["opaque"], OPAQUE, "the opaque value comes back unchanged");
    assert_ne!(
        a["cnonce"],
        auth(&seen[2])["cnonce"],
        "a fresh cnonce per request"
    );
    assert_eq!(
        counts(&acs),
        [(0, "00000001".to_string()), (0, "00000002".to_string())],
        "the one nonce, its count going up"
    );
    assert_eq!(
        seen[1].body,
        json!({"addExternalDataRequest": {
            // 18:42:07.310 in Tokyo is 09:42:07.310 UTC; 2.5 s earlier on the camera's clock, in whole seconds.
            "occurrenceTime": "2026-11-21 09:42:04",
            "source": SOURCE,
            "externalDataType": "POS",
            "data": {
                "Event": "VOID ¥1,280 · r1 · c117",
                "Type": "void",
                "Amount": "¥1,280",
                "Register": "r1",
                "Cashier": "c117",
                "Transaction": "T-000981",
                "Reason": "customer changed mind",
                "Key": first["key"],
            },
        }})
    );
    assert_eq!(
        seen[2].body,
        json!({"addExternalDataRequest": {
            "occurrenceTime": "2026-11-21 09:42:57",
            "source": SOURCE,
            "externalDataType": "POS",
            "data": {
                "Event": "NO SALE · r1",
                "Type": "no_sale",
                "Amount": "",
                "Register": "r1",
                "Cashier": "",
                "Transaction": "",
                "Reason": "",
                "Key": second["key"],
            },
        }})
    );
    daemon.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn axis_is_answered_with_sha256_and_a_stale_nonce_is_answered_again_without_failing_the_bookmark()
 {
    let (url, acs) = start_fake_acs(&[Algorithm::Md5, Algorithm::Sha256]).await;
    let site = Site::new();
    let (daemon, mut bridge) =
        start_daemon(acs_config(&site, &url, PASSWORD, Some("Register"))).await;
    publish_void(&site, &mut bridge, "void-1", "r1", AT).await;
    let first = settled_event(&daemon, "void-1").await;
    assert_eq!(first["bookmarks"][0]["state"], "made", "{first}");

    acs.retire_nonces();
    bridge
        .publish_as_register(
            &site,
            &event("refund-2", "refund", "r1", "2026-11-21T18:50:00.999+09:00"),
        )
        .await;
    let second = settled_event(&daemon, "refund-2").await;
    let bookmark = &second["bookmarks"][0];
    assert_eq!(bookmark["state"], "made", "{second}");
    assert_eq!(
        bookmark["attempts"], 1,
        "a stale nonce is no failed attempt: {bookmark}"
    );
    assert!(bookmark["last_error"].is_null(), "{bookmark}");

    let seen = acs.seen();
    assert_eq!(
        acs.outcomes(),
        [
            Outcome::Challenged,
            Outcome::Stored,
            Outcome::Stale,
            Outcome::Stored
        ],
        "{seen:#?}"
    );
    assert!(
        seen[1..].iter().all(|s| auth(s)["algorithm"] == "SHA-256"),
        "SHA-256 chosen over the MD5 offered first: {seen:#?}"
    );
    assert_eq!(
        counts(&acs),
        [
            (0, "00000001".to_string()),
            (0, "00000002".to_string()),
            (1, "00000001".to_string())
        ],
        "the retired nonce's next count, then the new nonce counted from 1"
    );
    assert_eq!(seen[2].body, seen[3].body, "the same request, sent again");
    let data = &seen[3].body["addExternalDataRequest"];
    assert_eq!(
        data["occurrenceTime"], "2026-11-21 09:49:58",
        "18:50:00.999 less 2.5 s, UTC"
    );
    assert_eq!(data["externalDataType"], "Register", "options.data_type");
    assert_eq!(data["data"]["Type"], "refund");
    assert_eq!(data["data"]["Key"], second["key"]);
    daemon.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_is_refused_by_axis_and_the_index_shows_its_words_without_the_password() {
    let (url, acs) = start_fake_acs(&[Algorithm::Md5]).await;
    let site = Site::new();
    let wrong = "not-the-ACS-password";
    let (daemon, mut bridge) = start_daemon(acs_config(&site, &url, wrong, None)).await;
    publish_void(&site, &mut bridge, "void-1", "r1", AT).await;
    let failed = settled_event(&daemon, "void-1").await["bookmarks"][0].clone();
    assert_failed(
        &failed,
        &format!(
            "Axis Camera Station refused the Digest login of user \"{USER}\" (HTTP 401 Unauthorized): {REFUSED}"
        ),
    );
    publish_void(
        &site,
        &mut bridge,
        "void-2",
        "r1",
        "2026-11-21T18:45:00.000+09:00",
    )
    .await;
    let second = settled_event(&daemon, "void-2").await["bookmarks"][0].clone();
    assert_eq!(second["state"], "failed", "{second}");
    assert_eq!(second["last_error"], failed["last_error"]);
    assert_eq!(
        acs.outcomes(),
        [
            Outcome::Challenged,
            Outcome::WrongCredentials,
            Outcome::Challenged,
            Outcome::WrongCredentials
        ],
        "each bookmark answers a fresh challenge once: one failed login each, the refusal final"
    );
    assert_shown_nowhere(&daemon, &[wrong]).await;
    daemon.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_axis_restarts_and_forgets_its_nonces_the_next_bookmark_is_still_made() {
    let (url, acs) = start_fake_acs(&[Algorithm::Md5]).await;
    let site = Site::new();
    let (daemon, mut bridge) = start_daemon(acs_config(&site, &url, PASSWORD, None)).await;
    for (n, id) in ["void-1", "void-2", "void-3"].into_iter().enumerate() {
        if n == 1 {
            acs.restart();
        }
        publish_void(&site, &mut bridge, id, "r1", AT).await;
        let bookmark = settled_event(&daemon, id).await["bookmarks"][0].clone();
        assert_eq!(bookmark["state"], "made", "{bookmark}");
        assert_eq!(bookmark["attempts"], 1, "{bookmark}");
    }
    assert_eq!(
        acs.outcomes(),
        [
            Outcome::Challenged,
            Outcome::Stored,
            Outcome::WrongCredentials,
            Outcome::Stored,
            Outcome::Stored
        ],
        "the forgotten nonce refused, the fresh challenge answered and kept"
    );
    assert_eq!(
        counts(&acs),
        [
            (0, "00000001".to_string()),
            (0, "00000002".to_string()),
            (1, "00000001".to_string()),
            (1, "00000002".to_string())
        ]
    );
    daemon.shutdown().await;
}
