//! Templates an operator writes in the config (web viewer links, webhook bodies), rendered with minijinja over
//! the event, the bookmark window and the camera. Undefined variables are errors, so a typo shows up in
//! `check-config` rather than as an empty field on the camera system.

use chrono::{TimeZone, Utc};
use minijinja::{Environment, UndefinedBehavior, Value, context};

use crate::config::CameraSystemConfig;
use crate::store::Job;

fn env() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.add_filter("tojson", |v: Value| -> Result<String, minijinja::Error> {
        serde_json::to_string(&v).map_err(|e| {
            minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, e.to_string())
        })
    });
    env
}

/// Compiles a template, for config validation.
pub fn check(source: &str) -> Result<(), String> {
    let env = env();
    env.template_from_str(source)
        .map(|_| ())
        .map_err(|e| format!("template error: {e}"))
}

fn iso(ms: i64) -> String {
    Utc.timestamp_millis_opt(ms)
        .single()
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

fn window(start_ms: i64, duration_ms: i64) -> Value {
    context! {
        start_ms => start_ms,
        end_ms => start_ms + duration_ms,
        duration_ms => duration_ms,
        start_s => start_ms / 1000,
        end_s => (start_ms + duration_ms) / 1000,
        start_iso => iso(start_ms),
        end_iso => iso(start_ms + duration_ms),
    }
}

fn host(system: &CameraSystemConfig) -> String {
    let host = system.url.host_str().unwrap_or_default();
    match system.url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_string(),
    }
}

pub fn render_link(
    source: &str,
    system: &CameraSystemConfig,
    device: &str,
    start_ms: i64,
) -> Result<String, String> {
    let env = env();
    let tpl = env.template_from_str(source).map_err(|e| e.to_string())?;
    let w = window(start_ms, 0);
    tpl.render(context! { device => device, host => host(system), options => Value::from_serialize(&system.options), ..w })
        .map_err(|e| e.to_string())
}

/// Renders a webhook body over the whole job.
pub fn render_body(
    source: &str,
    system: &CameraSystemConfig,
    job: &Job,
    extra: Value,
) -> Result<String, String> {
    let env = env();
    let tpl = env.template_from_str(source).map_err(|e| e.to_string())?;
    let b = &job.bookmark;
    let ctx = context! {
        event => Value::from_serialize(&job.event),
        key => job.event.key.clone(),
        camera => context! { system => b.system.clone(), device => b.device.clone(), name => b.camera.clone() },
        host => host(system),
        options => Value::from_serialize(&system.options),
        window => window(b.start_ms, b.duration_ms),
        ..extra
    };
    tpl.render(ctx).map_err(|e| e.to_string())
}
