//! Nx Witness (and Wisenet WAVE, DW Spectrum) over REST v4: session login, bookmarks on a device.
//!
//! The API takes no client id for a bookmark, so after an uncertain create (timeout, 5xx) the next attempt
//! searches the device's bookmarks for the event key tag before creating again: no duplicates.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde_json::json;
use tokio::sync::Mutex;

use super::http::{status_outcome, transport_error, vendor_message};
use super::{CameraSystem, Delivery, text};
use crate::config::{CameraSystemConfig, Secret};
use crate::store::Job;

pub struct NxWitness {
    base: url::Url,
    http: reqwest::Client,
    username: String,
    password: Secret,
    session: Mutex<Option<Session>>,
}

struct Session {
    token: String,
    renew_at: Instant,
}

/// `nx-vms://` link that opens the desktop client on the camera at the moment.
pub fn client_link(system: &CameraSystemConfig, device: &str, start_ms: i64) -> String {
    let cloud = system.option_str("cloud_host").unwrap_or("nxvms.com");
    let host = system.url.host_str().unwrap_or_default();
    let port = system.url.port_or_known_default().unwrap_or(7001);
    format!("nx-vms://{cloud}/client/{host}:{port}/view?resources={device}&timestamp={start_ms}")
}

/// An expired or revoked session: 401, or 403 with `x-auth-result: Auth_WrongSessionToken`.
fn session_expired(resp: &reqwest::Response) -> bool {
    resp.status() == reqwest::StatusCode::UNAUTHORIZED
        || (resp.status() == reqwest::StatusCode::FORBIDDEN
            && resp
                .headers()
                .get("x-auth-result")
                .and_then(|v| v.to_str().ok())
                == Some("Auth_WrongSessionToken"))
}

enum Found {
    Yes(Option<String>),
    No,
}

impl NxWitness {
    pub fn new(system: &CameraSystemConfig, http: reqwest::Client) -> Self {
        NxWitness {
            base: system.url.clone(),
            http,
            username: system.username.clone().unwrap_or_default(),
            password: system.password.clone().unwrap_or_else(|| Secret::new("")),
            session: Mutex::new(None),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.base.as_str().trim_end_matches('/'), path)
    }

    /// A valid session token; logs in when there is none, when it is near its end, or when `renew` says the
    /// server rejected it.
    async fn token(&self, renew: bool) -> Result<String, Delivery> {
        let mut session = self.session.lock().await;
        if !renew
            && let Some(s) = session.as_ref()
            && Instant::now() < s.renew_at
        {
            return Ok(s.token.clone());
        }
        let resp = self
            .http
            .post(self.url("/rest/v4/login/sessions"))
            .json(&json!({ "username": self.username, "password": self.password.expose() }))
            .send()
            .await
            .map_err(|e| transport_error("Nx login", &e, false))?;
        let status = resp.status();
        let body = resp.text().await.unwrap_or_default();
        if !status.is_success() {
            return Err(
                match status_outcome(
                    "Nx login",
                    status,
                    &reqwest::header::HeaderMap::new(),
                    &body,
                ) {
                    Delivery::Failed { .. } => Delivery::Failed {
                        error: format!(
                            "Nx Witness refused the login of user \"{}\" (HTTP {status}): {}",
                            self.username,
                            vendor_message(&body)
                        ),
                    },
                    // A failed login creates no bookmark.
                    Delivery::Retry {
                        error, retry_after, ..
                    } => Delivery::Retry {
                        error,
                        retry_after,
                        maybe_created: false,
                    },
                    made => made,
                },
            );
        }
        let parsed: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        let Some(token) = parsed.get("token").and_then(|t| t.as_str()) else {
            return Err(Delivery::Retry {
                error: "Nx login answered without a token".into(),
                retry_after: None,
                maybe_created: false,
            });
        };
        let lifetime = parsed
            .get("expiresInS")
            .and_then(|v| v.as_u64())
            .unwrap_or(60);
        // Renew at 90% of the lifetime, so a token never expires between check and use.
        let renew_in = Duration::from_millis(lifetime * 900);
        *session = Some(Session {
            token: token.to_string(),
            renew_at: Instant::now() + renew_in,
        });
        Ok(token.to_string())
    }

    /// Sends a request with the session token, logging in again once if the server says the session ended.
    async fn send(
        &self,
        what: &str,
        maybe_created: bool,
        build: impl Fn(&str) -> reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, Delivery> {
        let mut token = self.token(false).await?;
        for attempt in 0..2 {
            let resp = build(&token)
                .send()
                .await
                .map_err(|e| transport_error(what, &e, maybe_created))?;
            if attempt == 0 && session_expired(&resp) {
                tracing::info!(url = %self.base, "Nx session ended; logging in again.");
                token = self.token(true).await?;
                continue;
            }
            return Ok(resp);
        }
        Err(Delivery::Failed {
            error: format!("{what}: the Nx server rejected a fresh session token"),
        })
    }

    async fn find(&self, job: &Job) -> Result<Found, Delivery> {
        let b = &job.bookmark;
        let url = self.url(&format!("/rest/v4/devices/{}/bookmarks", b.device));
        let resp = self
            .send("Nx bookmark search", true, |token| {
                self.http.get(&url).bearer_auth(token).query(&[
                    ("startTimeMs", b.start_ms.to_string()),
                    ("endTimeMs", (b.start_ms + b.duration_ms).to_string()),
                    ("text", job.event.key.clone()),
                ])
            })
            .await?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp.text().await.unwrap_or_default();
        if !status.is_success() {
            return Err(
                match status_outcome("Nx bookmark search", status, &headers, &body) {
                    Delivery::Retry {
                        error, retry_after, ..
                    } => Delivery::Retry {
                        error,
                        retry_after,
                        maybe_created: true,
                    },
                    other => other,
                },
            );
        }
        let list: Vec<serde_json::Value> =
            serde_json::from_str(&body).map_err(|e| Delivery::Retry {
                error: format!("Nx bookmark search answered something that is not a list: {e}"),
                retry_after: None,
                maybe_created: true,
            })?;
        let found = list.iter().find(|bm| {
            bm.get("tags")
                .and_then(|t| t.as_array())
                .is_some_and(|tags| {
                    tags.iter()
                        .any(|t| t.as_str() == Some(job.event.key.as_str()))
                })
        });
        Ok(match found {
            Some(bm) => Found::Yes(bm.get("id").and_then(|i| i.as_str()).map(str::to_string)),
            None => Found::No,
        })
    }

    async fn create(&self, job: &Job) -> Delivery {
        let b = &job.bookmark;
        let url = self.url(&format!("/rest/v4/devices/{}/bookmarks", b.device));
        let body = json!({
            "name": text::name(&job.event),
            "description": text::description(&job.event),
            "startTimeMs": b.start_ms,
            "durationMs": b.duration_ms,
            "tags": text::tags(&job.event),
        });
        let resp = match self
            .send("Nx bookmark create", false, |token| {
                self.http.post(&url).bearer_auth(token).json(&body)
            })
            .await
        {
            Ok(resp) => resp,
            Err(outcome) => return outcome,
        };
        let status = resp.status();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap_or_default();
        if status.is_success() {
            let id = serde_json::from_str::<serde_json::Value>(&text)
                .ok()
                .and_then(|v| v.get("id").and_then(|i| i.as_str()).map(str::to_string));
            return Delivery::Made {
                vendor_id: id,
                detail: format!("created (HTTP {})", status.as_u16()),
            };
        }
        if status == reqwest::StatusCode::NOT_FOUND {
            return Delivery::Failed {
                error: format!(
                    "Nx Witness has no camera \"{}\" (HTTP 404): {}",
                    b.device,
                    vendor_message(&text)
                ),
            };
        }
        status_outcome("Nx bookmark create", status, &headers, &text)
    }
}

#[async_trait]
impl CameraSystem for NxWitness {
    async fn deliver(&self, job: &Job) -> Delivery {
        if job.maybe_created {
            match self.find(job).await {
                Ok(Found::Yes(vendor_id)) => {
                    return Delivery::Made {
                        vendor_id,
                        detail: "found from an earlier attempt".into(),
                    };
                }
                Ok(Found::No) => {}
                // The search failed, so the earlier attempt is still unaccounted for.
                Err(Delivery::Retry {
                    error, retry_after, ..
                }) => {
                    return Delivery::Retry {
                        error,
                        retry_after,
                        maybe_created: true,
                    };
                }
                Err(outcome) => return outcome,
            }
        }
        self.create(job).await
    }
}
