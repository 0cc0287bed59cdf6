//! Templates written by operators and integrators (request URLs, headers and bodies in definitions, footage
//! links), rendered with minijinja. Undefined variables are errors, so a typo fails `integrations check` or
//! the attempt, loudly, instead of sending an empty field to a camera system.
//!
//! Variables of a request: `event` (the contract's fields), `key` (the event key), `bookmark_uuid` (a UUID v5
//! of key and camera, stable across retries), `camera` (`system`, `device`, `name`), `system` (`id`, `url`
//! without a trailing slash, `host`, `username`, `client_id`, `options`), `options`, `name` and `description`
//! (the bookmark's text, cut to the definition's limits), and `window`: `start_ms`, `end_ms`, `duration_ms`,
//! `start_s`, `end_s` (float seconds), `start_iso`, `end_iso` (UTC, milliseconds), `moment_ms`, `moment_s`,
//! `moment_iso` (the event's moment on the camera's clock, its offset applied like the window's). Filters
//! beyond Jinja's: `tojson`, `urlencode` (query values), `b64encode`; and `secret`, the camera system's
//! secrets, for vendors that want them in a header or body (`secret.password`, `secret.api_key`,
//! `secret.client_secret`, `secret.refresh_token`), never logged. An unset one is the empty string.

use chrono::{TimeZone, Utc};
use minijinja::{Environment, UndefinedBehavior, Value, context};

use crate::config::{CameraSystemConfig, Secret};
use crate::store::Job;

fn env() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.add_filter("tojson", |v: Value| -> Result<String, minijinja::Error> {
        serde_json::to_string(&v).map_err(|e| {
            minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, e.to_string())
        })
    });
    // For vendors whose Basic credentials are not plain `user:password` (Genetec: `user;appId:password`).
    env.add_filter("b64encode", |v: String| -> String {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(v.as_bytes())
    });
    env
}

/// Compiles a template, for validation.
pub fn check(source: &str) -> Result<(), String> {
    env()
        .template_from_str(source)
        .map(|_| ())
        .map_err(|e| format!("template error: {e}"))
}

pub fn render(source: &str, ctx: &Value) -> Result<String, String> {
    let env = env();
    let tpl = env
        .template_from_str(source)
        .map_err(|e| format!("template error: {e}"))?;
    tpl.render(ctx).map_err(|e| format!("template error: {e}"))
}

fn iso(ms: i64) -> String {
    Utc.timestamp_millis_opt(ms)
        .single()
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

/// A span of time in the units vendors ask for; `moment_ms` is the event's moment on the camera's clock.
pub fn window(start_ms: i64, duration_ms: i64, moment_ms: i64) -> Value {
    let end_ms = start_ms + duration_ms;
    context! {
        start_ms => start_ms,
        end_ms => end_ms,
        duration_ms => duration_ms,
        start_s => start_ms as f64 / 1000.0,
        end_s => end_ms as f64 / 1000.0,
        start_iso => iso(start_ms),
        end_iso => iso(end_ms),
        moment_ms => moment_ms,
        moment_s => moment_ms as f64 / 1000.0,
        moment_iso => iso(moment_ms),
    }
}

fn host(system: &CameraSystemConfig) -> String {
    let host = system.url.host_str().unwrap_or_default();
    match system.url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_string(),
    }
}

fn system_value(system: &CameraSystemConfig) -> Value {
    context! {
        id => system.id.clone(),
        url => system.url.as_str().trim_end_matches('/').to_string(),
        host => host(system),
        username => system.username.clone().unwrap_or_default(),
        client_id => system.client_id.clone().unwrap_or_default(),
        options => Value::from_serialize(&system.options),
    }
}

/// A footage link at `start_ms` on a camera.
pub fn render_link(
    source: &str,
    system: &CameraSystemConfig,
    device: &str,
    start_ms: i64,
) -> Result<String, String> {
    let ctx = context! {
        device => device,
        host => host(system),
        system => system_value(system),
        options => Value::from_serialize(&system.options),
        camera => context! { device => device },
        window => window(start_ms, 0, start_ms),
        ..window(start_ms, 0, start_ms)
    };
    render(source, &ctx)
}

/// A secret's value for a template, or the empty string when the system has none.
fn exposed(secret: &Option<Secret>) -> String {
    secret
        .as_ref()
        .map(|s| s.expose().to_string())
        .unwrap_or_default()
}

/// Everything a request template can use, for one attempt at one bookmark.
pub fn request_context(
    system: &CameraSystemConfig,
    job: &Job,
    window: Value,
    name: String,
    description: String,
) -> Value {
    let b = &job.bookmark;
    let uuid_name = format!("{}:{}", job.event.key, b.device);
    context! {
        event => Value::from_serialize(&job.event),
        key => job.event.key.clone(),
        bookmark_uuid => uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, uuid_name.as_bytes()).to_string(),
        camera => context! { system => b.system.clone(), device => b.device.clone(), name => b.camera.clone() },
        system => system_value(system),
        options => Value::from_serialize(&system.options),
        secret => context! {
            password => exposed(&system.password),
            api_key => exposed(&system.api_key),
            client_secret => exposed(&system.client_secret),
            refresh_token => exposed(&system.refresh_token),
        },
        name => name,
        description => description,
        window => window,
    }
}
