//! The generic webhook: one HTTP request per bookmark to any system without a definition yet. The body is the
//! operator's template (`options.body`) or a documented default JSON; an `Idempotency-Key` header carries the
//! bookmark key, since the webhook cannot be searched after an uncertain outcome.

use async_trait::async_trait;
use serde_json::json;

use super::http::{status_outcome, transport_error};
use super::{CameraSystem, Delivery, template, text};
use crate::config::CameraSystemConfig;
use crate::store::Job;

pub struct Webhook {
    system: CameraSystemConfig,
    http: reqwest::Client,
}

impl Webhook {
    pub fn new(system: &CameraSystemConfig, http: reqwest::Client) -> Self {
        Webhook {
            system: system.clone(),
            http,
        }
    }

    fn body(&self, job: &Job) -> Result<serde_json::Value, String> {
        let name = text::name(&job.event);
        let description = text::description(&job.event);
        if let Some(source) = self.system.option_str("body") {
            let extra = minijinja::context! { name => name, description => description };
            let rendered = template::render_body(source, &self.system, job, extra)?;
            return serde_json::from_str(&rendered)
                .map_err(|e| format!("options.body did not render to JSON: {e}"));
        }
        let b = &job.bookmark;
        Ok(json!({
            "key": job.event.key,
            "name": name,
            "description": description,
            "start_ms": b.start_ms,
            "duration_ms": b.duration_ms,
            "camera": { "system": b.system, "device": b.device, "name": b.camera },
            "event": job.event,
        }))
    }
}

#[async_trait]
impl CameraSystem for Webhook {
    async fn deliver(&self, job: &Job) -> Delivery {
        let body = match self.body(job) {
            Ok(body) => body,
            Err(error) => {
                return Delivery::Failed {
                    error: format!("webhook body: {error}"),
                };
            }
        };
        let method = match self.system.option_str("method").unwrap_or("POST") {
            "PUT" => reqwest::Method::PUT,
            _ => reqwest::Method::POST,
        };
        let idempotency_key = format!("{}:{}", job.event.key, job.bookmark.device);
        let mut req = self
            .http
            .request(method, self.system.url.clone())
            .header("Idempotency-Key", idempotency_key)
            .json(&body);
        if let (Some(user), Some(password)) = (&self.system.username, &self.system.password) {
            req = req.basic_auth(user, Some(password.expose()));
        }
        if let Some(key) = &self.system.api_key {
            req = req.bearer_auth(key.expose());
        }
        let resp = match req.send().await {
            Ok(resp) => resp,
            Err(e) => return transport_error("webhook", &e, job.maybe_created),
        };
        let status = resp.status();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap_or_default();
        if status.is_success() {
            let id = serde_json::from_str::<serde_json::Value>(&text)
                .ok()
                .and_then(|v| match v.get("id") {
                    Some(serde_json::Value::String(s)) => Some(s.clone()),
                    Some(serde_json::Value::Number(n)) => Some(n.to_string()),
                    _ => None,
                });
            return Delivery::Made {
                vendor_id: id,
                detail: format!("delivered (HTTP {})", status.as_u16()),
            };
        }
        match status_outcome("webhook", status, &headers, &text) {
            Delivery::Retry {
                error,
                retry_after,
                maybe_created,
            } => Delivery::Retry {
                error,
                retry_after,
                maybe_created: maybe_created || job.maybe_created,
            },
            other => other,
        }
    }
}
