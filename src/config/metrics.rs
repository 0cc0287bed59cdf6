//! `[metrics]`: where Prometheus scrapes `/metrics`, and the token it must send.

use std::net::SocketAddr;

use super::Builder;
use super::reader::Table;
use crate::secret::Secret;

/// Shorter tokens can be guessed; `openssl rand -hex 32` gives 64 characters.
const MIN_TOKEN_CHARS: usize = 16;

/// `[metrics]`. Default (no section): off, nothing is served.
#[derive(Debug, Clone, Default)]
pub enum MetricsConfig {
    #[default]
    Off,
    /// `listen`: a listener of its own that serves only `/metrics`, behind the bearer token of `token_env` when
    /// that is set. An address beyond loopback needs the token.
    Listener {
        listen: SocketAddr,
        token: Option<Secret>,
    },
    /// `token_env` without `listen`: `/metrics` on the web index's port, behind that bearer token.
    WebPort { token: Secret },
}

impl MetricsConfig {
    /// The bearer token a scrape must send, if any.
    pub fn token(&self) -> Option<&Secret> {
        match self {
            MetricsConfig::Off => None,
            MetricsConfig::Listener { token, .. } => token.as_ref(),
            MetricsConfig::WebPort { token } => Some(token),
        }
    }
}

impl Builder<'_> {
    pub(super) fn metrics(&self, t: Option<&Table>) -> MetricsConfig {
        let Some(t) = t else {
            return MetricsConfig::Off;
        };
        let token = self.secret(t, "token_env");
        if let Some(token) = &token
            && token.expose().chars().count() < MIN_TOKEN_CHARS
        {
            t.error(
                "token_env",
                format!(
                    "the token is shorter than {MIN_TOKEN_CHARS} characters; make one with `openssl rand -hex 32`"
                ),
            );
        }
        let listen = t.opt_str("listen").and_then(|listen| {
            // "localhost" is what people write; it means the IPv4 loopback here, as in [web] listen.
            let text = listen.value.replace("localhost:", "127.0.0.1:");
            match text.parse::<SocketAddr>() {
                Ok(a) => Some(a),
                Err(_) => {
                    t.error(
                        "listen",
                        format!("\"{}\" is not an address like 127.0.0.1:9464", listen.value),
                    );
                    None
                }
            }
        });
        let has_token = t.has("token_env");
        t.finish();
        match (listen, token) {
            (Some(listen), _) if !listen.ip().is_loopback() && !has_token => {
                t.error(
                    "listen",
                    format!(
                        "{listen} is reachable from other machines, and the metrics name the stores' camera systems: \
                         set token_env, the bearer token Prometheus sends, or listen on 127.0.0.1"
                    ),
                );
                MetricsConfig::Off
            }
            (Some(listen), token) => MetricsConfig::Listener { listen, token },
            (None, Some(token)) => MetricsConfig::WebPort { token },
            (None, None) => {
                if !has_token && !t.has("listen") {
                    t.error(
                        "listen",
                        "[metrics] serves nothing without listen (a listener of its own, like \"127.0.0.1:9464\") or \
                         token_env (on the web index's port, behind that bearer token)",
                    );
                }
                MetricsConfig::Off
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, ConfigError};

    const TOKEN: &str = "0123456789abcdef0123456789abcdef";

    fn parse(text: &str) -> Result<Config, Vec<ConfigError>> {
        Config::parse(text, &|name| match name {
            "METRICS_TOKEN" | "TILLMARK_METRICS_TOKEN" => Some(TOKEN.to_string()),
            "NX_PASSWORD" => Some("nx-password".to_string()),
            "SHORT_TOKEN" => Some("hunter2".to_string()),
            _ => None,
        })
    }

    fn only_error(text: &str) -> ConfigError {
        let mut errors = parse(text).expect_err("expected an error");
        assert_eq!(errors.len(), 1, "{errors:#?}");
        errors.remove(0)
    }

    #[test]
    fn metrics_are_off_unless_the_file_asks_for_them() {
        assert!(matches!(parse("").unwrap().metrics, MetricsConfig::Off));
    }

    #[test]
    fn a_loopback_listener_needs_no_token_and_a_token_alone_serves_on_the_web_port() {
        let config = parse("[metrics]\nlisten = \"localhost:9464\"\n").unwrap();
        match config.metrics {
            MetricsConfig::Listener { listen, token } => {
                assert_eq!(listen, "127.0.0.1:9464".parse().unwrap());
                assert!(token.is_none());
            }
            other => panic!("{other:?}"),
        }
        let config = parse("[metrics]\ntoken_env = \"METRICS_TOKEN\"\n").unwrap();
        match &config.metrics {
            MetricsConfig::WebPort { token } => assert_eq!(token.expose(), TOKEN),
            other => panic!("{other:?}"),
        }
        // The token is never printed with the config.
        assert!(!format!("{config:?}").contains(TOKEN));
    }

    #[test]
    fn a_listener_beyond_loopback_is_refused_without_a_token_and_taken_with_one() {
        let error = only_error("[metrics]\nlisten = \"0.0.0.0:9464\"\n");
        assert_eq!(error.path, "metrics.listen");
        assert_eq!(error.line, Some(2));
        assert!(
            error
                .message
                .starts_with("0.0.0.0:9464 is reachable from other machines"),
            "{}",
            error.message
        );
        let config =
            parse("[metrics]\nlisten = \"0.0.0.0:9464\"\ntoken_env = \"METRICS_TOKEN\"\n").unwrap();
        assert!(matches!(
            config.metrics,
            MetricsConfig::Listener { token: Some(_), .. }
        ));
    }

    #[test]
    fn an_empty_section_a_short_or_unset_token_and_a_bad_address_are_each_named() {
        let error = only_error("[metrics]\n");
        assert!(
            error.message.contains("serves nothing"),
            "{}",
            error.message
        );
        let error = only_error("[metrics]\ntoken_env = \"SHORT_TOKEN\"\n");
        assert_eq!(error.path, "metrics.token_env");
        assert!(
            error.message.contains("shorter than 16"),
            "{}",
            error.message
        );
        let error = only_error("[metrics]\ntoken_env = \"NOT_SET\"\n");
        assert_eq!(error.message, "environment variable NOT_SET is not set");
        let error = only_error("[metrics]\nlisten = \"9464\"\n");
        assert_eq!(
            error.message,
            "\"9464\" is not an address like 127.0.0.1:9464"
        );
        let error = only_error("[metrics]\nlisten = \"127.0.0.1:9464\"\nport = 9464\n");
        assert_eq!(error.path, "metrics.port");
    }

    #[test]
    fn the_sample_files_metrics_keys_uncommented_are_a_valid_config() {
        let sample = include_str!("../../examples/tillmark.toml");
        let uncommented: String = sample
            .lines()
            .map(|line| {
                match ["# [metrics]", "# listen = ", "# token_env = "]
                    .iter()
                    .any(|key| line.starts_with(key))
                {
                    true => &line[2..],
                    false => line,
                }
            })
            .collect::<Vec<_>>()
            .join("\n");
        let config = parse(&uncommented).unwrap_or_else(|e| panic!("{e:#?}"));
        assert!(matches!(
            config.metrics,
            MetricsConfig::Listener { token: Some(_), .. }
        ));
    }
}
