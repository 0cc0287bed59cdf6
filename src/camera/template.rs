//! Templates written by operators and integrators (request URLs, headers and bodies in definitions, footage
//! links), rendered with minijinja. Undefined variables are errors, so a typo fails `integrations check` or
//! the attempt, loudly, instead of sending an empty field to a camera system.
//!
//! The variables each kind of template sees are listed in `integrations/README.md`; request templates see
//! the event, the bookmark window (on the camera's clock: its offset applied) in the units vendors ask for,
//! the camera, the system and its `secret`s, which are never logged; `mark.rs` builds that context from the
//! values made here. Filters beyond Jinja's: `tojson`, `urlencode` (query values), `b64encode`, `utc` (epoch
//! ms in a strftime layout); and the function `version_at_least`.

use chrono::{TimeZone, Utc};
use chrono_tz::Tz;
use minijinja::{Environment, UndefinedBehavior, Value, context};

use crate::config::CameraSystemConfig;

fn env() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    // Strict mode lets a filter taking any value see an undefined one; as JSON it would be a silent `null`,
    // and in a URL an empty query value.
    env.add_filter("tojson", |v: Value| -> Result<String, minijinja::Error> {
        defined(&v)?;
        serde_json::to_string(&v).map_err(|e| {
            minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, e.to_string())
        })
    });
    env.add_filter(
        "urlencode",
        |v: Value| -> Result<String, minijinja::Error> {
            defined(&v)?;
            minijinja::filters::urlencode(&v)
        },
    );
    // Vendors that want a time in their own layout (Axis: `2024-05-01 09:30:00`, UTC).
    env.add_filter(
        "utc",
        |ms: i64, layout: String| -> Result<String, minijinja::Error> {
            let bad = |what: &str| {
                minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, what.to_string())
            };
            let at = Utc
                .timestamp_millis_opt(ms)
                .single()
                .ok_or_else(|| bad("time out of range"))?;
            let items = chrono::format::StrftimeItems::new(&layout)
                .parse()
                .map_err(|_| bad(&format!("bad time layout {layout:?}")))?;
            Ok(at.format_with_items(items.into_iter()).to_string())
        },
    );
    // Vendors whose API changed between versions (Frigate's pre_capture from 0.18).
    env.add_function("version_at_least", |have: String, want: String| -> bool {
        version_at_least(&have, &want)
    });
    // For vendors whose Basic credentials are not plain `user:password` (Genetec: `user;appId:password`).
    env.add_filter("b64encode", |v: String| -> String {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(v.as_bytes())
    });
    env
}

fn defined(v: &Value) -> Result<(), minijinja::Error> {
    if v.is_undefined() {
        Err(minijinja::Error::from(minijinja::ErrorKind::UndefinedError))
    } else {
        Ok(())
    }
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
    tpl.render(ctx)
        .map_err(|e| match e.range().and_then(|r| tag(source, r)) {
            Some(tag) => format!("template error: {e}: {tag}"),
            None => format!("template error: {e}"),
        })
}

/// The `{{ ... }}` or `{% ... %}` around a failed part of a template: minijinja points at the part alone
/// (`tojson`), which does not say which value was undefined.
fn tag(source: &str, failed: std::ops::Range<usize>) -> Option<&str> {
    let before = source.get(..failed.start)?;
    let start = before.rfind("{{").max(before.rfind("{%"))?;
    let after = source.get(failed.end..)?;
    let end = [after.find("}}"), after.find("%}")]
        .into_iter()
        .flatten()
        .min()?;
    source.get(start..failed.end + end + 2)
}

/// Dotted version numbers compared numerically (`0.18.1` ≥ `0.18`); a part that is not a number counts as 0.
fn version_at_least(have: &str, want: &str) -> bool {
    let parts = |v: &str| -> Vec<u64> {
        v.trim_start_matches('v')
            .split('.')
            .map(|p| {
                p.chars()
                    .take_while(char::is_ascii_digit)
                    .collect::<String>()
                    .parse()
                    .unwrap_or(0)
            })
            .collect()
    };
    let (have, want) = (parts(have), parts(want));
    for i in 0..have.len().max(want.len()) {
        let (h, w) = (
            have.get(i).copied().unwrap_or(0),
            want.get(i).copied().unwrap_or(0),
        );
        if h != w {
            return h > w;
        }
    }
    true
}

fn iso(ms: i64) -> String {
    Utc.timestamp_millis_opt(ms)
        .single()
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

fn local(ms: i64, zone: Tz) -> String {
    zone.timestamp_millis_opt(ms)
        .single()
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, false))
        .unwrap_or_default()
}

/// The times of a request: the window and the event's own moment in the units vendors ask for, in the
/// store's zone too, and how long ago they were (realtime vendors place marks at their own "now").
#[derive(Debug, Clone, Copy)]
pub struct Times {
    pub start_ms: i64,
    pub duration_ms: i64,
    pub moment_ms: i64,
    pub now_ms: i64,
    pub zone: Tz,
}

pub fn window(t: Times) -> Value {
    let Times {
        start_ms,
        duration_ms,
        moment_ms,
        now_ms,
        zone,
    } = t;
    let end_ms = start_ms + duration_ms;
    let ago_s = |ms: i64| ((now_ms - ms).max(0) + 999) / 1000;
    context! {
        start_local => local(start_ms, zone),
        end_local => local(end_ms, zone),
        moment_local => local(moment_ms, zone),
        since_start_s => ago_s(start_ms),
        since_moment_s => ago_s(moment_ms),
        since_moment_ms => now_ms - moment_ms,
        until_end_s => ((end_ms - now_ms).max(0) + 999) / 1000,
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

pub fn system_value(system: &CameraSystemConfig) -> Value {
    context! {
        id => system.id.clone(),
        url => system.url.as_str().trim_end_matches('/').to_string(),
        host => host(system),
        username => system.username.clone().unwrap_or_default(),
        client_id => system.client_id.clone().unwrap_or_default(),
        options => Value::from_serialize(&system.options),
    }
}

fn link_window(start_ms: i64) -> Value {
    window(Times {
        start_ms,
        duration_ms: 0,
        moment_ms: start_ms,
        now_ms: start_ms,
        zone: Tz::UTC,
    })
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
        window => link_window(start_ms),
        ..link_window(start_ms)
    };
    render(source, &ctx)
}

/// The system's secrets, for the templates that send them.
pub fn secret_value(system: &CameraSystemConfig) -> Value {
    let expose = |s: &Option<crate::config::Secret>| {
        s.as_ref()
            .map(|s| s.expose().to_string())
            .unwrap_or_default()
    };
    context! {
        password => expose(&system.password),
        api_key => expose(&system.api_key),
        client_secret => expose(&system.client_secret),
        refresh_token => expose(&system.refresh_token),
    }
}

/// What a login, setup or `auth.when` template can use: the camera system, its secrets, and the newest
/// refresh token (OAuth2 vendors rotate them).
pub fn login_context(system: &CameraSystemConfig, refresh_token: &str) -> Value {
    context! {
        system => system_value(system),
        options => Value::from_serialize(&system.options),
        secret => secret_value(system),
        refresh_token => refresh_token,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_undefined_value_is_an_error_naming_its_expression_even_through_tojson() {
        let ctx = context! { options => context! { label => "pos" } };
        assert_eq!(
            render(r#"{"id": {{ options.definition_id | tojson }}}"#, &ctx),
            Err(
                "template error: undefined value (in <string>:1): {{ options.definition_id | tojson }}"
                    .to_string()
            )
        );
        assert_eq!(
            render("{{ options.missing }}", &ctx),
            Err(
                "template error: undefined value (in <string>:1): {{ options.missing }}"
                    .to_string()
            )
        );
        assert_eq!(
            render(
                r#"{{ options.label | tojson }} {{ options.x | default(1) | tojson }}"#,
                &ctx
            ),
            Ok(r#""pos" 1"#.to_string())
        );
    }

    #[test]
    fn an_undefined_query_value_is_an_error_not_an_empty_parameter() {
        let ctx = context! { options => context! { site => "渋谷 1" } };
        assert_eq!(
            render("?site={{ options.site | urlencode }}", &ctx).unwrap(),
            "?site=%E6%B8%8B%E8%B0%B7%201"
        );
        assert_eq!(
            render("?id={{ options.camera_id | urlencode }}", &ctx).unwrap_err(),
            "template error: undefined value (in <string>:1): {{ options.camera_id | urlencode }}"
        );
    }
}
