//! `[intake]` and `[signing]`: what a message must be, beyond the contract's own rules, to go on the record.

use std::collections::HashSet;

use super::reader::Table;
use super::{Builder, Millis, parse_scope};
use crate::event::{RegisterKey, Signing, SigningMode};

/// `[intake]`: the window of believable register times around a message's arrival.
#[derive(Debug, Clone)]
pub struct IntakeConfig {
    /// How far before its arrival an event's `at` may lie: a register that queued events while offline sends
    /// them late, but not years late. Default `400d`.
    pub max_age: Millis,
    /// How far after its arrival an event's `at` may lie: a register clock a day fast is broken, and its
    /// events would top every list. Default `1d`.
    pub max_ahead: Millis,
}

impl Default for IntakeConfig {
    fn default() -> Self {
        IntakeConfig {
            max_age: Millis(400 * 86_400_000),
            max_ahead: Millis(86_400_000),
        }
    }
}

/// Shorter keys can be guessed; the documented way to make one (`openssl rand -hex 32`) gives 64 characters.
const MIN_KEY_CHARS: usize = 16;

impl Builder<'_> {
    pub(super) fn intake(&self, t: Option<&Table>) -> IntakeConfig {
        let mut cfg = IntakeConfig::default();
        let Some(t) = t else { return cfg };
        for (key, field) in [
            ("max_age", &mut cfg.max_age),
            ("max_ahead", &mut cfg.max_ahead),
        ] {
            if let Some(d) = t.opt_duration(key) {
                if d.0 < 60_000 {
                    t.error(key, "must be at least 1m");
                }
                *field = d;
            }
        }
        t.finish();
        cfg
    }

    pub(super) fn signing(&self, t: Option<&Table>) -> Signing {
        let mut cfg = Signing::default();
        let Some(t) = t else { return cfg };
        if let Some(mode) = t.opt_str("mode") {
            cfg.mode = match mode.value.as_str() {
                "off" => SigningMode::Off,
                "optional" => SigningMode::Optional,
                "required" => SigningMode::Required,
                other => {
                    t.error(
                        "mode",
                        format!("\"{other}\" is not a signing mode: use off, optional or required"),
                    );
                    SigningMode::Off
                }
            };
        }
        let mut seen = HashSet::new();
        for k in t.tables("keys") {
            let register = k.req_str("register");
            let key = self.secret(&k, "key_env");
            if !k.has("key_env") {
                k.error(
                    "key_env",
                    "is required: the variable that holds this register's key",
                );
            }
            if let Some(key) = &key
                && key.expose().chars().count() < MIN_KEY_CHARS
            {
                k.error(
                    "key_env",
                    format!(
                        "the key is shorter than {MIN_KEY_CHARS} characters: make one with `openssl rand -hex 32`"
                    ),
                );
            }
            let parsed = register.as_ref().and_then(|r| match parse_scope(&r.value) {
                Err(e) => {
                    self.doc.push(r.path.clone(), Some(r.line), e);
                    None
                }
                Ok(_) if !seen.insert(r.value.clone()) => {
                    self.doc.push(
                        r.path.clone(),
                        Some(r.line),
                        format!("\"{}\" has a key already", r.value),
                    );
                    None
                }
                Ok(scope) => Some(scope),
            });
            k.finish();
            if let (Some(scope), Some(key)) = (parsed, key) {
                cfg.keys.push(RegisterKey { scope, key });
            }
        }
        if cfg.mode != SigningMode::Off && cfg.keys.is_empty() && !t.has("keys") {
            t.error(
                "mode",
                "needs at least one [[signing.keys]]: without keys no signature can be checked",
            );
        }
        t.finish();
        cfg
    }
}
