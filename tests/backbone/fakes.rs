//! What the fake vendors share: one recorder of the requests they receive, their JSON answers, the Bearer
//! token a request carries, and fault counters.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::support::serve;

/// One request a fake vendor received.
#[derive(Clone, Debug)]
pub struct Seen {
    /// When it arrived: the monotonic clock, for waits, and epoch ms, to compare with the times in it.
    pub at: std::time::Instant,
    pub at_ms: i64,
    pub method: Method,
    /// The path as it came over the wire, percent-encoding and all.
    pub path: String,
    pub query: Vec<(String, String)>,
    pub headers: HeaderMap,
    pub body: String,
}

impl Seen {
    /// The body as JSON, `Null` when there was none or it was not JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }

    /// The body's `application/x-www-form-urlencoded` fields, in order.
    pub fn form(&self) -> Vec<(String, String)> {
        url::form_urlencoded::parse(self.body.as_bytes())
            .into_owned()
            .collect()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn query(&self, key: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Every request a fake vendor received, in order of arrival.
#[derive(Clone, Default)]
pub struct RequestLog(Arc<Mutex<Vec<Seen>>>);

impl RequestLog {
    pub fn all(&self) -> Vec<Seen> {
        self.0.lock().unwrap().clone()
    }

    /// The requests of one method to one path.
    pub fn to(&self, method: &str, path: &str) -> Vec<Seen> {
        self.all()
            .into_iter()
            .filter(|s| s.method == method && s.path == path)
            .collect()
    }

    /// The calls made, in order, as `POST /path`.
    pub fn calls(&self) -> Vec<String> {
        self.all()
            .into_iter()
            .map(|r| format!("{} {}", r.method, r.path))
            .collect()
    }

    /// Serves a fake vendor like [`serve`], recording here every request before the fake answers it.
    pub async fn serve(&self, app: axum::Router) -> String {
        let log = self.clone();
        let app = app.layer(axum::middleware::from_fn(
            move |req: axum::extract::Request, next: axum::middleware::Next| {
                let log = log.clone();
                async move {
                    let (parts, body) = req.into_parts();
                    let bytes = axum::body::to_bytes(body, 1 << 20)
                        .await
                        .unwrap_or_default();
                    log.0.lock().unwrap().push(Seen {
                        at: std::time::Instant::now(),
                        at_ms: tillmark::clock::now_ms(),
                        method: parts.method.clone(),
                        path: parts.uri.path().to_string(),
                        query: url::form_urlencoded::parse(
                            parts.uri.query().unwrap_or_default().as_bytes(),
                        )
                        .into_owned()
                        .collect(),
                        headers: parts.headers.clone(),
                        body: String::from_utf8_lossy(&bytes).into_owned(),
                    });
                    next.run(axum::extract::Request::from_parts(parts, bytes.into()))
                        .await
                }
            },
        ));
        serve(app).await
    }
}

/// A JSON answer with this status.
pub fn answer(status: StatusCode, body: Value) -> Response {
    (status, axum::Json(body)).into_response()
}

/// The token of an `Authorization: Bearer` header.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
}

/// Takes one away from a fault counter ("the next N requests ..."); true when it was set.
pub fn take(counter: &AtomicUsize) -> bool {
    counter
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
}

/// The tokens a fake vendor handed out, in order, and those it still honours.
#[derive(Default)]
pub struct Tokens {
    issued: Mutex<Vec<String>>,
    live: Mutex<HashSet<String>>,
}

impl Tokens {
    /// Hands `token` out: it is honoured until [`Tokens::revoke_all`].
    pub fn issue(&self, token: String) -> String {
        self.issued.lock().unwrap().push(token.clone());
        self.live.lock().unwrap().insert(token.clone());
        token
    }

    /// Ends every token handed out so far, as a revocation, a restart or an early expiry does.
    pub fn revoke_all(&self) {
        self.live.lock().unwrap().clear();
    }

    /// Whether the request's token is one still honoured.
    pub fn honours(&self, token: Option<&str>) -> bool {
        token.is_some_and(|t| self.live.lock().unwrap().contains(t))
    }

    pub fn issued(&self) -> Vec<String> {
        self.issued.lock().unwrap().clone()
    }
}
