//! One camera system's connection: renders a definition's request, counts it against the vendor's rate limit,
//! authenticates it (a static credential, a Digest answer, or a session token renewed before it expires and
//! whenever the vendor says it has), sends it, and records the exchange when asked to (for
//! `tillmark integrations test`), with every secret blanked. A download (a clip) is read only up to its limit,
//! and leaves the system's origin only for a host both the definition and the site name, without credentials.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex as SyncMutex};
use std::time::{Duration, Instant};

use minijinja::Value;
use reqwest::header::HeaderMap;
use tokio::sync::Mutex;

use super::Delivery;
use super::definition::{Auth, Body, Definition, Request, Session, TokenFrom};
use super::digest::Challenge;
use super::http::{retry_after, transport_error, vendor_message};
use super::template;
use crate::config::CameraSystemConfig;

/// A request with its templates rendered, ready to send (and to send again after a new token).
#[derive(Debug, Clone)]
pub struct Rendered {
    pub method: reqwest::Method,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: RenderedBody,
}

#[derive(Debug, Clone)]
pub enum RenderedBody {
    None,
    Json(serde_json::Value),
    Form(Vec<(String, String)>),
}

pub fn render(req: &Request, ctx: &Value) -> Result<Rendered, String> {
    let url = template::render(&req.url, ctx)?.trim().to_string();
    let headers = req
        .headers
        .iter()
        .map(|(k, v)| Ok((k.clone(), template::render(v, ctx)?)))
        .collect::<Result<Vec<_>, String>>()?;
    let body = match &req.body {
        Body::None => RenderedBody::None,
        Body::Json(tpl) => {
            let text = template::render(tpl, ctx)?;
            RenderedBody::Json(
                serde_json::from_str(&text)
                    .map_err(|e| format!("the body did not render to JSON: {e}"))?,
            )
        }
        Body::Form(fields) => RenderedBody::Form(
            fields
                .iter()
                .map(|(k, v)| Ok((k.clone(), template::render(v, ctx)?)))
                .collect::<Result<Vec<_>, String>>()?,
        ),
    };
    Ok(Rendered {
        method: req.method.clone(),
        url,
        headers,
        body,
    })
}

/// What came back.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: reqwest::StatusCode,
    pub headers: HeaderMap,
    /// Bytes, not text: a thumbnail is an image.
    pub body: Vec<u8>,
    /// The body went past the limit it was read with, and reading stopped there: `body` is not all of it.
    pub cut: bool,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_default()
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// How long the vendor wants to be left alone: its `Retry-After`, or the definition's cooldown after a 429.
pub fn pause(def: &Definition, reply: &Reply) -> Option<Duration> {
    retry_after(&reply.headers).or_else(|| {
        (reply.status == reqwest::StatusCode::TOO_MANY_REQUESTS)
            .then_some(def.cooldown)
            .flatten()
    })
}

/// A vendor asking to slow down rather than failing: a 429, or a 503 that says when to come back. Either way
/// it did not act on the request, so the bookmark keeps its place and its attempt count.
pub fn paced(def: &Definition, reply: &Reply, error: &str) -> Option<Delivery> {
    let asked = retry_after(&reply.headers);
    let slow_down = reply.status == reqwest::StatusCode::TOO_MANY_REQUESTS
        || (reply.status == reqwest::StatusCode::SERVICE_UNAVAILABLE && asked.is_some());
    slow_down.then(|| Delivery::Paced {
        wait: pause(def, reply),
        note: error.to_string(),
    })
}

/// A value at a dotted path (`data.id`, `items.0.id`) in a JSON answer, as text.
pub fn at_path(value: &serde_json::Value, path: &str) -> Option<String> {
    let found = if path.is_empty() {
        value
    } else {
        path.split('.').try_fold(value, |v, key| match v {
            serde_json::Value::Array(items) => key.parse::<usize>().ok().and_then(|i| items.get(i)),
            _ => v.get(key),
        })?
    };
    match found {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        serde_json::Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A body read up to `limit` bytes: empty and cut at once when the answer says it is larger, cut where it
/// passes the limit otherwise.
async fn read_capped(
    mut resp: reqwest::Response,
    limit: u64,
) -> Result<(Vec<u8>, bool), reqwest::Error> {
    if resp.content_length().is_some_and(|n| n > limit) {
        return Ok((Vec::new(), true));
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await? {
        if (body.len() + chunk.len()) as u64 > limit {
            return Ok((body, true));
        }
        body.extend_from_slice(&chunk);
    }
    Ok((body, false))
}

/// A session token and when to renew it.
struct Token {
    value: String,
    renew_at: Instant,
}

/// Whether a field's name says its value is a credential.
fn sensitive(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    [
        "authorization",
        "token",
        "password",
        "secret",
        "apikey",
        "api-key",
        "api_key",
        "cookie",
    ]
    .iter()
    .any(|s| name.contains(s))
        || name.ends_with("auth")
        || name.ends_with("-key")
        || name == "key"
}

/// A body with the values of credential fields blanked: JSON fields at any depth, or form fields.
fn blank_fields(body: &str) -> String {
    fn walk(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Object(map) => {
                for (k, v) in map.iter_mut() {
                    if sensitive(k) && v.is_string() {
                        *v = serde_json::Value::from("[redacted]");
                    } else {
                        walk(v);
                    }
                }
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(walk),
            _ => {}
        }
    }
    if let Ok(mut json) = serde_json::from_str::<serde_json::Value>(body) {
        walk(&mut json);
        return json.to_string();
    }
    if body.contains('=') && !body.contains(char::is_whitespace) {
        return body
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((k, _)) if sensitive(k) => format!("{k}=[redacted]"),
                _ => pair.to_string(),
            })
            .collect::<Vec<_>>()
            .join("&");
    }
    body.to_string()
}

/// Exchanges written down for `tillmark integrations test`, secrets already blanked.
pub type Trace = Arc<SyncMutex<Vec<String>>>;

pub struct Wire {
    pub system: CameraSystemConfig,
    http: reqwest::Client,
    session: Mutex<Option<Token>>,
    /// The newest refresh token, when the vendor rotates them (OAuth2).
    refresh_token: SyncMutex<Option<String>>,
    digest: SyncMutex<Option<Challenge>>,
    /// Every request sent, for the delivery lane to count against the vendor's rate limit.
    requests: AtomicU64,
    trace: Option<Trace>,
}

/// An expired or revoked token, by the definition's signals.
fn expired(s: &Session, reply: &Reply) -> bool {
    s.expired_status.contains(&reply.status.as_u16())
        || s.expired_header.as_ref().is_some_and(|(name, value)| {
            reply
                .headers
                .get(name.as_str())
                .and_then(|v| v.to_str().ok())
                == Some(value.as_str())
        })
}

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|c| {
            let pair = c.split(';').next()?;
            let (k, v) = pair.split_once('=')?;
            (k.trim() == name).then(|| v.trim().to_string())
        })
}

impl Wire {
    pub fn new(system: &CameraSystemConfig, http: reqwest::Client, trace: Option<Trace>) -> Wire {
        Wire {
            system: system.clone(),
            http,
            session: Mutex::new(None),
            refresh_token: SyncMutex::new(None),
            digest: SyncMutex::new(None),
            requests: AtomicU64::new(0),
            trace,
        }
    }

    /// How many requests have been sent since start: logins, lookups and creates alike.
    pub fn requests_sent(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    fn secrets(&self) -> Vec<String> {
        let mut out: Vec<String> = [
            self.system.password.as_ref(),
            self.system.api_key.as_ref(),
            self.system.client_secret.as_ref(),
            self.system.refresh_token.as_ref(),
        ]
        .into_iter()
        .flatten()
        .map(|s| s.expose().to_string())
        .collect();
        if let Ok(t) = self.session.try_lock()
            && let Some(t) = t.as_ref()
        {
            out.push(t.value.clone());
        }
        if let Some(r) = self.refresh_token.lock().ok().and_then(|r| r.clone()) {
            out.push(r);
        }
        // Basic auth sends the pair, so a vendor echoing its header echoes the pair's base64.
        if let (Some(user), Some(password)) = (&self.system.username, &self.system.password) {
            out.push(format!("{user}:{}", password.expose()));
        }
        out
    }

    /// `text` from or about the camera system with every secret it holds blanked, in any form the vendor may
    /// echo it in (see [`crate::secret::redact`]): what the vendor says goes to the database, the log, the
    /// pages and the CLI.
    pub fn redact(&self, text: &str) -> String {
        let secrets = self.secrets();
        let secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();
        crate::secret::redact(text, &secrets)
    }

    fn record(&self, what: &str, req: &reqwest::Request, reply: Result<&Reply, &str>) {
        let Some(trace) = &self.trace else {
            return;
        };
        let mut text = format!("--- {what}\n> {} {}\n", req.method(), req.url());
        for (k, v) in req.headers() {
            let value = if sensitive(k.as_str()) {
                "[redacted]"
            } else {
                v.to_str().unwrap_or("(binary)")
            };
            text.push_str(&format!("> {k}: {value}\n"));
        }
        if let Some(body) = req.body().and_then(|b| b.as_bytes()) {
            text.push_str(&format!(
                "> {}\n",
                blank_fields(&String::from_utf8_lossy(body))
            ));
        }
        match reply {
            Ok(r) => {
                text.push_str(&format!("< HTTP {}\n", r.status));
                for (k, v) in &r.headers {
                    let value = if k == reqwest::header::SET_COOKIE || sensitive(k.as_str()) {
                        "[redacted]"
                    } else {
                        v.to_str().unwrap_or("(binary)")
                    };
                    text.push_str(&format!("< {k}: {value}\n"));
                }
                let body: String = blank_fields(&r.text()).chars().take(2000).collect();
                text.push_str(&format!("< {body}\n"));
            }
            Err(e) => text.push_str(&format!("< {e}\n")),
        }
        if let Ok(mut t) = trace.lock() {
            t.push(self.redact(&text));
        }
    }

    /// A request bound for anywhere but the camera system's origin or a host its config allows: refused
    /// before it leaves, since it would carry the system's credentials (a definition's URL template, or an
    /// option, can name any host). Says where, by origin only: an address's query may hold a token.
    fn elsewhere(&self, what: &str, url: &url::Url) -> Option<Delivery> {
        if url.origin() == self.system.url.origin() {
            return None;
        }
        let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
        let allowed = self.system.allowed_hosts.iter().any(|a| match url.port() {
            // An entry without a port stands for the scheme's own.
            None => *a == host,
            Some(port) => *a == format!("{host}:{port}"),
        });
        (!allowed).then(|| Delivery::Failed {
            error: format!(
                "{what} would go to {}, not to camera system {}'s own {}: refused, so its credentials stay \
                 with it. If the vendor's API really uses that host, add \"{}\" to the system's allowed_hosts.",
                url.origin().ascii_serialization(),
                self.system.id,
                self.system.url.origin().ascii_serialization(),
                match url.port() {
                    None => host.clone(),
                    Some(port) => format!("{host}:{port}"),
                }
            ),
        })
    }

    fn build(&self, r: &Rendered) -> Result<reqwest::Request, String> {
        let mut req = self.http.request(r.method.clone(), &r.url);
        for (k, v) in &r.headers {
            req = req.header(k.as_str(), v.as_str());
        }
        req = match &r.body {
            RenderedBody::None => req,
            RenderedBody::Json(v) => req.json(v),
            RenderedBody::Form(fields) => req.form(fields),
        };
        req.build()
            .map_err(|e| format!("cannot build the request: {e}"))
    }

    /// Sends one request, no auth added: the login itself, or a vendor without auth. With a `limit`, the body
    /// is read only that far (a clip: never all of a file too big to keep).
    async fn exchange(
        &self,
        what: &str,
        mut req: reqwest::Request,
        maybe_created: bool,
        auth_header: Option<(&str, String)>,
        limit: Option<u64>,
    ) -> Result<Reply, Delivery> {
        if let Some(refused) = self.elsewhere(what, req.url()) {
            return Err(refused);
        }
        if let Some((name, value)) = auth_header {
            let value =
                reqwest::header::HeaderValue::from_str(&value).map_err(|_| Delivery::Failed {
                    error: format!("{what}: the credential is not a valid header value"),
                })?;
            let name = reqwest::header::HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
                Delivery::Failed {
                    error: format!("{what}: \"{name}\" is not a valid header name"),
                }
            })?;
            req.headers_mut().insert(name, value);
        }
        self.requests.fetch_add(1, Ordering::Relaxed);
        let copy = self.trace.as_ref().and_then(|_| req.try_clone());
        let resp = match self.http.execute(req).await {
            Ok(resp) => resp,
            Err(e) => {
                if let Some(c) = &copy {
                    self.record(what, c, Err(&e.to_string()));
                }
                return Err(transport_error(what, &e, maybe_created));
            }
        };
        let (status, headers) = (resp.status(), resp.headers().clone());
        let (body, cut) = match limit {
            None => (
                resp.bytes().await.map(|b| b.to_vec()).unwrap_or_default(),
                false,
            ),
            Some(limit) => read_capped(resp, limit)
                .await
                .map_err(|e| transport_error(what, &e, maybe_created))?,
        };
        let reply = Reply {
            status,
            headers,
            body,
            cut,
        };
        if let Some(c) = &copy {
            self.record(what, c, Ok(&reply));
        }
        Ok(reply)
    }

    /// The credential for a request, by the definition's scheme; `None` when it sends none.
    async fn credential(
        &self,
        def: &Definition,
        r: &Rendered,
        renew: bool,
    ) -> Result<Option<(String, String)>, Delivery> {
        let sys = &self.system;
        if let Some(when) = &def.auth_when {
            let ctx = template::login_context(sys, "");
            let on = template::render(when, &ctx).map_err(|e| Delivery::Failed {
                error: format!("definition {}: auth.when: {e}", def.name),
            })?;
            if !on.trim().eq_ignore_ascii_case("true") {
                return Ok(None);
            }
        }
        Ok(match &def.auth {
            Auth::None => None,
            Auth::Basic => sys.username.as_ref().map(|user| {
                use base64::Engine;
                let pass = sys.password.as_ref().map(|p| p.expose()).unwrap_or("");
                let pair =
                    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
                ("Authorization".into(), format!("Basic {pair}"))
            }),
            Auth::Bearer => sys
                .api_key
                .as_ref()
                .map(|k| ("Authorization".into(), format!("Bearer {}", k.expose()))),
            Auth::Header(name) => sys
                .api_key
                .as_ref()
                .map(|k| (name.clone(), k.expose().to_string())),
            Auth::Digest => {
                let mut cached = self.digest.lock().map_err(|_| Delivery::Failed {
                    error: "digest state poisoned".into(),
                })?;
                match cached.as_mut() {
                    Some(challenge) => {
                        let url = url::Url::parse(&r.url).map_err(|e| Delivery::Failed {
                            error: format!("bad URL {}: {e}", r.url),
                        })?;
                        let uri = match url.query() {
                            Some(q) => format!("{}?{q}", url.path()),
                            None => url.path().to_string(),
                        };
                        Some((
                            "Authorization".into(),
                            challenge.authorization(
                                r.method.as_str(),
                                &uri,
                                sys.username.as_deref().unwrap_or(""),
                                sys.password.as_ref().map(|p| p.expose()).unwrap_or(""),
                            ),
                        ))
                    }
                    // The first request goes without: the server's challenge tells how to answer.
                    None => None,
                }
            }
            Auth::Session(s) => {
                let token = self.token(def, s, renew).await?;
                let ctx = minijinja::context! { token => token };
                let value = template::render(&s.value, &ctx).map_err(|e| Delivery::Failed {
                    error: format!("definition {}: auth.value: {e}", def.name),
                })?;
                Some((s.header.clone(), value))
            }
        })
    }

    /// A valid token: logs in when there is none, when it is near its end, or when `renew` says the vendor
    /// rejected it.
    async fn token(&self, def: &Definition, s: &Session, renew: bool) -> Result<String, Delivery> {
        let mut session = self.session.lock().await;
        if !renew
            && let Some(t) = session.as_ref()
            && Instant::now() < t.renew_at
        {
            return Ok(t.value.clone());
        }
        let refresh = self
            .refresh_token
            .lock()
            .ok()
            .and_then(|r| r.clone())
            .or_else(|| {
                self.system
                    .refresh_token
                    .as_ref()
                    .map(|r| r.expose().to_string())
            })
            .unwrap_or_default();
        let ctx = template::login_context(&self.system, &refresh);
        let rendered = render(&s.login, &ctx).map_err(|e| Delivery::Failed {
            error: format!("definition {}: auth login: {e}", def.name),
        })?;
        let req = self
            .build(&rendered)
            .map_err(|error| Delivery::Failed { error })?;
        let what = format!("{} login", def.title);
        let reply = self.exchange(&what, req, false, None, None).await?;
        if !reply.status.is_success() {
            // An OAuth2 refresh grant logs in as a client, not a user: name what the operator should look for.
            let who = match (&self.system.username, &self.system.client_id) {
                (None, Some(client)) => format!("OAuth2 client \"{client}\""),
                (user, _) => format!("user \"{}\"", user.as_deref().unwrap_or("")),
            };
            let message = format!(
                "{} refused the login of {who} (HTTP {}): {}",
                def.title,
                reply.status,
                vendor_message(&reply.text())
            );
            let status = reply.status.as_u16();
            if let Some(slow_down) = paced(def, &reply, &message) {
                return Err(slow_down);
            }
            // A failed login makes no bookmark: retrying it is safe, and only worth it when the vendor is busy.
            return Err(if status == 408 || status == 429 || status >= 500 {
                Delivery::Retry {
                    error: message,
                    retry_after: pause(def, &reply),
                    maybe_created: false,
                }
            } else {
                Delivery::Failed { error: message }
            });
        }
        let answer = reply.json();
        let token = match &s.token {
            TokenFrom::Body(path) => at_path(&answer, path),
            TokenFrom::Cookie(name) => cookie(&reply.headers, name),
        };
        let Some(token) = token.filter(|t| !t.is_empty()) else {
            return Err(Delivery::Retry {
                error: format!("{what} answered without a token"),
                retry_after: None,
                maybe_created: false,
            });
        };
        if let Some(path) = &s.refresh_token_path
            && let Some(next) = at_path(&answer, path)
            && let Ok(mut r) = self.refresh_token.lock()
        {
            *r = Some(next);
        }
        let lifetime = s
            .lifetime_path
            .as_ref()
            .and_then(|p| at_path(&answer, p))
            .and_then(|v| v.parse::<f64>().ok())
            .filter(|secs| *secs > 0.0)
            .map(Duration::from_secs_f64)
            .unwrap_or(s.lifetime);
        // Renew at 90% of the lifetime, so a token never expires between check and use.
        *session = Some(Token {
            value: token.clone(),
            renew_at: Instant::now() + lifetime.mul_f64(0.9),
        });
        Ok(token)
    }

    /// Sends a rendered request with the definition's auth. A rejected session token is renewed and the
    /// request sent once more; a Digest challenge is answered the same way.
    pub async fn send(
        &self,
        def: &Definition,
        what: &str,
        r: &Rendered,
        maybe_created: bool,
    ) -> Result<Reply, Delivery> {
        self.send_with(def, what, r, maybe_created, None).await
    }

    /// Fetches a file (a clip), its body read at most to `limit`. On the camera system's own origin it goes
    /// with the system's credentials, as any request; to another allowed host (a vendor's pre-signed download
    /// link) without them: such a link carries its own authorisation, and the credentials stay at home.
    pub async fn download(
        &self,
        def: &Definition,
        what: &str,
        r: &Rendered,
        limit: u64,
    ) -> Result<Reply, Delivery> {
        let url = url::Url::parse(&r.url).map_err(|e| Delivery::Failed {
            error: format!("{what}: \"{}\" is not an address: {e}", r.url),
        })?;
        if url.origin() == self.system.url.origin() {
            return self.send_with(def, what, r, false, Some(limit)).await;
        }
        // An address the vendor answered with: its host must be one the definition declares, besides being
        // allowed by the site (checked as the request leaves).
        let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
        let host = match url.port() {
            Some(port) => format!("{host}:{port}"),
            None => host,
        };
        if !def.hosts.contains_key(&host) {
            return Err(Delivery::Failed {
                error: format!(
                    "{what} would go to {}, a host the {} definition does not declare: not fetched",
                    url.origin().ascii_serialization(),
                    def.name
                ),
            });
        }
        let req = self.build(r).map_err(|error| Delivery::Failed { error })?;
        self.exchange(what, req, false, None, Some(limit)).await
    }

    async fn send_with(
        &self,
        def: &Definition,
        what: &str,
        r: &Rendered,
        maybe_created: bool,
        limit: Option<u64>,
    ) -> Result<Reply, Delivery> {
        let mut renew = false;
        for attempt in 0..2 {
            let req = self.build(r).map_err(|error| Delivery::Failed { error })?;
            let credential = self.credential(def, r, renew).await?;
            let reply = self
                .exchange(
                    what,
                    req,
                    maybe_created,
                    credential.as_ref().map(|(k, v)| (k.as_str(), v.clone())),
                    limit,
                )
                .await?;
            if attempt == 1 {
                if matches!(def.auth, Auth::Digest)
                    && reply.status == reqwest::StatusCode::UNAUTHORIZED
                    && let Ok(mut d) = self.digest.lock()
                {
                    // Our answer to a fresh challenge was refused: wrong credentials. Forget the challenge, so
                    // the next request asks for a new one instead of sending an answer known to be refused.
                    *d = None;
                }
                return Ok(reply);
            }
            match &def.auth {
                Auth::Session(s) if expired(s, &reply) => {
                    tracing::info!(system = %self.system.id, "{} session ended; logging in again.", def.title);
                    renew = true;
                }
                Auth::Digest if reply.status == reqwest::StatusCode::UNAUTHORIZED => {
                    let headers = reply
                        .headers
                        .get_all(reqwest::header::WWW_AUTHENTICATE)
                        .iter()
                        .filter_map(|v| v.to_str().ok());
                    match super::digest::pick(headers) {
                        Some(Ok(challenge)) => {
                            // Answered once. A refused answer to a kept challenge says nothing about the
                            // credentials: its nonce expired (`stale=true`), or a restarted server forgot it and
                            // can only send a fresh challenge (RFC 7616 section 3.3).
                            tracing::debug!(
                                system = %self.system.id,
                                answered = credential.is_some(),
                                stale = challenge.is_stale(),
                                "{} sent a Digest challenge; answering it.",
                                def.title
                            );
                            if let Ok(mut d) = self.digest.lock() {
                                *d = Some(challenge);
                            }
                        }
                        Some(Err(e)) => {
                            return Err(Delivery::Failed {
                                error: format!(
                                    "{what}: cannot answer the server's Digest challenge: {e}"
                                ),
                            });
                        }
                        None => return Ok(reply),
                    }
                }
                _ => return Ok(reply),
            }
        }
        Err(Delivery::Failed {
            error: format!("{what}: the server kept refusing fresh credentials"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_in_bodies_are_blanked_at_any_depth_in_json_and_in_forms() {
        assert_eq!(
            blank_fields(r#"{"username":"u","password":"p","data":{"access_token":"t","n":1}}"#),
            r#"{"username":"u","password":"[redacted]","data":{"access_token":"[redacted]","n":1}}"#
        );
        assert_eq!(
            blank_fields("grant_type=refresh_token&refresh_token=abc&client_id=c"),
            "grant_type=refresh_token&refresh_token=[redacted]&client_id=c"
        );
        assert_eq!(blank_fields("plain text"), "plain text");
    }
}
