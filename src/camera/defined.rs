//! The definition-driven adapter: makes a bookmark by rendering a vendor definition's create request and
//! reading the answer as the definition says. The definition is looked up at every attempt, so an edited
//! file applies to the next bookmark, and a missing one holds bookmarks until it appears.

use async_trait::async_trait;

use super::definition::{Auth, Definition, Moment};
use super::http::{retry_after, transport_error, vendor_message};
use super::registry::Integrations;
use super::{CameraSystem, Delivery, template, text};
use crate::config::CameraSystemConfig;
use crate::store::Job;

pub struct Defined {
    name: String,
    system: CameraSystemConfig,
    http: reqwest::Client,
    integrations: Integrations,
}

fn cut(text: String, limit: Option<usize>) -> String {
    match limit {
        Some(n) if text.chars().count() > n => text.chars().take(n).collect(),
        _ => text,
    }
}

/// A value at a dotted path (`data.id`) in a JSON answer, as text.
fn at_path(value: &serde_json::Value, path: &str) -> Option<String> {
    let found = path.split('.').try_fold(value, |v, key| match v {
        serde_json::Value::Array(items) => key.parse::<usize>().ok().and_then(|i| items.get(i)),
        _ => v.get(key),
    })?;
    match found {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        serde_json::Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

impl Defined {
    pub fn new(
        name: &str,
        system: &CameraSystemConfig,
        http: reqwest::Client,
        integrations: Integrations,
    ) -> Self {
        Defined {
            name: name.to_string(),
            system: system.clone(),
            http,
            integrations,
        }
    }

    fn request(&self, def: &Definition, job: &Job) -> Result<reqwest::RequestBuilder, String> {
        let b = &job.bookmark;
        // The bookmark's moment, not the event's: it carries the camera's clock offset.
        let window = match def.moment {
            Moment::Range => template::window(b.start_ms, b.duration_ms, b.moment_ms),
            Moment::Point => template::window(b.moment_ms, 0, b.moment_ms),
        };
        let name = cut(text::name(&job.event), def.max_name);
        let description = cut(text::description(&job.event), def.max_description);
        let ctx = template::request_context(&self.system, job, window, name, description);
        let url = template::render(&def.create.url, &ctx)?;
        let mut req = self.http.request(def.create.method.clone(), url.trim());
        for (header, value) in &def.create.headers {
            req = req.header(header.as_str(), template::render(value, &ctx)?);
        }
        if let Some(body) = &def.create.body {
            let rendered = template::render(body, &ctx)?;
            let json: serde_json::Value = serde_json::from_str(&rendered)
                .map_err(|e| format!("the body did not render to JSON: {e}"))?;
            req = req.json(&json);
        }
        Ok(match &def.auth {
            Auth::None => req,
            Auth::Basic => match (&self.system.username, &self.system.password) {
                (Some(user), password) => {
                    req.basic_auth(user, password.as_ref().map(|p| p.expose()))
                }
                _ => req,
            },
            Auth::Bearer => match &self.system.api_key {
                Some(key) => req.bearer_auth(key.expose()),
                None => req,
            },
            Auth::Header(name) => match &self.system.api_key {
                Some(key) => req.header(name.as_str(), key.expose()),
                None => req,
            },
        })
    }
}

#[async_trait]
impl CameraSystem for Defined {
    async fn deliver(&self, job: &Job) -> Delivery {
        let Some(def) = self.integrations.get(&self.name) else {
            return Delivery::Retry {
                error: format!(
                    "no valid definition \"{}\" (built in or {}/{}.toml); the bookmark waits for one",
                    self.name,
                    self.integrations.dir().display(),
                    self.name
                ),
                // Not the vendor's word: no cooldown; the schedule paces it, and a new definition expedites it.
                retry_after: None,
                maybe_created: job.maybe_created,
            };
        };
        let req = match self.request(&def, job) {
            Ok(req) => req,
            Err(e) => {
                return Delivery::Failed {
                    error: format!("definition {}: {e}", def.name),
                };
            }
        };
        let what = format!("{} create", def.name);
        let resp = match req.send().await {
            Ok(resp) => resp,
            Err(e) => return transport_error(&what, &e, job.maybe_created),
        };
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp.text().await.unwrap_or_default();
        let succeeded = if def.success.is_empty() {
            status.is_success()
        } else {
            def.success.contains(&status.as_u16())
        };
        if succeeded {
            let answer: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
            if let Some(flag) = &def.error_flag
                && at_path(&answer, flag).as_deref() == Some("true")
            {
                let why = def
                    .error_message
                    .as_ref()
                    .and_then(|p| at_path(&answer, p))
                    .unwrap_or_else(|| vendor_message(&body));
                return Delivery::Failed {
                    error: format!("{what}: HTTP {status} with an error: {why}"),
                };
            }
            let vendor_id = def.id_path.as_ref().and_then(|p| at_path(&answer, p));
            return Delivery::Made {
                vendor_id,
                detail: format!("created (HTTP {})", status.as_u16()),
            };
        }
        let message = format!("{what}: HTTP {status}: {}", vendor_message(&body));
        if def.retry.contains(&status.as_u16()) {
            Delivery::Retry {
                error: message,
                retry_after: retry_after(&headers),
                maybe_created: job.maybe_created || status.is_server_error(),
            }
        } else {
            Delivery::Failed { error: message }
        }
    }
}
