//! `[[alerts]]`, `[smtp]`, `[web] public_url` and `[[stores]] language`: who hears about exceptions, how, and
//! in which language. Read strictly, like every section: every problem at once, with its key path and line.
//! Sending lives in `crate::alerts`; this module only says what an alert is. Secrets (the webhook's signing
//! secret, the SMTP password) are read from the environment variables the file names, never from the file.

use std::collections::HashSet;
use std::net::IpAddr;

use super::reader::{At, Table};
use super::{Builder, Secret};
use crate::event::{Severity, is_valid_id};

/// One `[[alerts]]` section.
#[derive(Debug, Clone)]
pub struct AlertConfig {
    /// `id`, required: the alert's name in logs, in the outbox and in the `Idempotency-Key` header; the same
    /// alphabet as store ids. Renaming an alert sends its exceptions afresh.
    pub id: String,
    /// `rules`: the rule ids whose exceptions it reports. Default: none listed (then `severities` decides).
    pub rules: Vec<String>,
    /// `severities`: the severities whose exceptions it reports. Default: none listed (then `rules` decides).
    /// At least one of `rules` and `severities` is required; with both, an exception matching either counts.
    pub severities: Vec<Severity>,
    /// `stores`: the store ids it reports on. Default: none listed, which is every store.
    pub stores: Vec<String>,
    /// `digest = "HH:MM"`: one message per store and day at that time on the store's clock, listing the
    /// exceptions found in the 24 hours before it. Default: none, each exception is sent as it is found.
    pub digest: Option<DigestTime>,
    /// `channel` and its own keys.
    pub channel: Channel,
}

impl AlertConfig {
    /// Whether an exception of `rule` with `severity` at `store` is this alert's to send.
    pub fn covers(&self, rule: &str, severity: &str, store: &str) -> bool {
        let in_store = self.stores.is_empty() || self.stores.iter().any(|s| s == store);
        let by_rule = self.rules.iter().any(|r| r == rule);
        let by_severity = self.severities.iter().any(|s| s.as_str() == severity);
        in_store && (by_rule || by_severity)
    }
}

/// A digest's time of day on the store's clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DigestTime {
    /// 0 to 23; no default (`digest` is written whole).
    pub hour: u32,
    /// 0 to 59; no default.
    pub minute: u32,
}

/// Where an alert goes (`channel = "webhook" | "email"`).
#[derive(Debug, Clone)]
pub enum Channel {
    Webhook {
        /// `url`, required: `https://`, or `http://` to a loopback address.
        url: url::Url,
        /// From `secret_env`: the key of the `Tillmark-Signature` HMAC. Required for `format = "json"`; Slack and
        /// Teams check no signature, so there it is optional.
        secret: Option<Secret>,
        /// `format`: `json` (default), `slack` or `teams`.
        format: WebhookFormat,
    },
    Email {
        /// `to`, required: one address or more.
        to: Vec<lettre::message::Mailbox>,
        /// `from`: default `[smtp] from`; one of them is required.
        from: lettre::message::Mailbox,
        /// `smtp_url` with `smtp_password_env`: this alert's own server. Default: `[smtp]`; one of them is
        /// required.
        smtp: SmtpConfig,
    },
}

/// What a webhook's body looks like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookFormat {
    /// tillmark's own JSON, signed.
    Json,
    /// A Slack incoming webhook's `text` and `blocks`.
    Slack,
    /// A Microsoft Teams incoming webhook's MessageCard.
    Teams,
}

/// `[smtp]`, or an alert's `smtp_url` and `smtp_password_env`.
#[derive(Debug, Clone)]
pub struct SmtpConfig {
    /// `url`, required: `smtps://[USER@]HOST[:465]` (TLS from the start) or `smtp://[USER@]HOST[:587]`
    /// (STARTTLS, required); plain SMTP only to a loopback address.
    pub host: String,
    /// The URL's port. Default 465 for `smtps://`, 587 for `smtp://`.
    pub port: u16,
    /// From the scheme and the host, as above.
    pub security: SmtpSecurity,
    /// The user part of `url`. Default: none (no login).
    pub username: Option<String>,
    /// From `password_env`. Default: none. Only with a user.
    pub password: Option<Secret>,
    /// `from`: the sender for alerts that name none. Default: none.
    pub from: Option<lettre::message::Mailbox>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpSecurity {
    /// `smtps://`: TLS from the first byte.
    Tls,
    /// `smtp://` beyond loopback: STARTTLS, and no mail without it.
    StartTls,
    /// `smtp://` to a loopback address: a relay on this machine.
    Plain,
}

/// `[[stores]] language`: the language of a store's alerts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Language {
    En,
    Ja,
}

impl Language {
    pub fn code(self) -> &'static str {
        match self {
            Language::En => "en",
            Language::Ja => "ja",
        }
    }

    /// A store in Japan speaks Japanese unless told otherwise; everywhere else English.
    pub fn default_for(zone: chrono_tz::Tz) -> Language {
        match zone {
            chrono_tz::Asia::Tokyo => Language::Ja,
            _ => Language::En,
        }
    }
}

fn is_loopback(host: &url::Host<&str>) -> bool {
    match host {
        // An smtp:// URL's host is not parsed as an address (the scheme is not one the URL standard knows).
        url::Host::Domain(d) => {
            d.eq_ignore_ascii_case("localhost")
                || d.trim_matches(['[', ']'])
                    .parse::<IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        }
        url::Host::Ipv4(ip) => IpAddr::V4(*ip).is_loopback(),
        url::Host::Ipv6(ip) => IpAddr::V6(*ip).is_loopback(),
    }
}

/// `"HH:MM"`, 00:00 to 23:59.
fn digest_time(text: &str) -> Result<DigestTime, String> {
    let parsed = text.trim().split_once(':').and_then(|(h, m)| {
        let (hour, minute) = (h.parse::<u32>().ok()?, m.parse::<u32>().ok()?);
        (hour < 24 && minute < 60 && m.len() == 2).then_some(DigestTime { hour, minute })
    });
    parsed.ok_or_else(|| format!("\"{text}\" is not a time of day such as \"18:00\""))
}

fn mailbox(text: &At<String>) -> Result<lettre::message::Mailbox, String> {
    text.value
        .parse()
        .map_err(|e| format!("\"{}\" is not an email address: {e}", text.value))
}

impl Builder<'_> {
    /// `[web] public_url`: how people outside reach the index, for the links alerts carry.
    pub(super) fn public_url(&self, t: &Table) -> Option<url::Url> {
        let text = t.opt_str("public_url")?;
        match url::Url::parse(&text.value) {
            Ok(u)
                if matches!(u.scheme(), "http" | "https")
                    && u.host().is_some()
                    && u.username().is_empty()
                    && u.password().is_none()
                    && u.query().is_none() =>
            {
                // A base to join `events/...` to: without the slash, its last segment would be replaced.
                let mut u = u;
                if !u.path().ends_with('/') {
                    let path = format!("{}/", u.path());
                    u.set_path(&path);
                }
                Some(u)
            }
            _ => {
                t.error(
                    "public_url",
                    format!("\"{}\" is not an http:// or https:// URL without a user or query, such as \"https://tillmark.example.com/\"", text.value),
                );
                None
            }
        }
    }

    /// `language` of a `[[stores]]` section.
    pub(super) fn language(&self, t: &Table, zone: Option<chrono_tz::Tz>) -> Language {
        match t.opt_str("language") {
            None => zone.map_or(Language::En, Language::default_for),
            Some(l) => {
                match l.value.as_str() {
                    "en" => Language::En,
                    "ja" => Language::Ja,
                    other => {
                        t.error("language", format!("\"{other}\" is not a language tillmark speaks: use \"en\" or \"ja\""));
                        Language::En
                    }
                }
            }
        }
    }

    /// `[smtp]`, or an alert's own server.
    pub(super) fn smtp(&self, t: Option<&Table>) -> Option<SmtpConfig> {
        let t = t?;
        let smtp = self.smtp_server(t, "url", "password_env");
        let from = t.opt_str("from").and_then(|f| {
            mailbox(&f)
                .map_err(|e| self.doc.push(f.path.clone(), Some(f.line), e))
                .ok()
        });
        t.finish();
        let mut smtp = smtp?;
        smtp.from = from;
        Some(smtp)
    }

    fn smtp_server(
        &self,
        t: &Table,
        url_key: &'static str,
        password_key: &'static str,
    ) -> Option<SmtpConfig> {
        let text = t.req_str(url_key)?;
        let password = self.secret(t, password_key);
        let url = match url::Url::parse(&text.value) {
            Ok(u) if matches!(u.scheme(), "smtp" | "smtps") && u.host().is_some() => u,
            _ => {
                t.error(
                    url_key,
                    format!("\"{}\" is not an smtps:// or smtp:// URL such as \"smtps://alerts@mail.example.com\"", text.value),
                );
                return None;
            }
        };
        if url.password().is_some() {
            t.error(
                url_key,
                format!("must not carry a password: name its variable with {password_key}"),
            );
            return None;
        }
        let host = url.host()?;
        let security = match (url.scheme(), is_loopback(&host)) {
            ("smtps", _) => SmtpSecurity::Tls,
            ("smtp", true) => SmtpSecurity::Plain,
            _ => SmtpSecurity::StartTls,
        };
        let username =
            (!url.username().is_empty()).then(|| percent_encoding_decode(url.username()));
        if password.is_some() && username.is_none() {
            t.error(
                url_key,
                format!("needs a user (smtps://USER@HOST) when {password_key} is set"),
            );
        }
        let default_port = if security == SmtpSecurity::Tls {
            465
        } else {
            587
        };
        Some(SmtpConfig {
            host: url.host_str()?.trim_matches(['[', ']']).to_string(),
            port: url.port().unwrap_or(default_port),
            security,
            username,
            password,
            from: None,
        })
    }

    /// Every `[[alerts]]` section; ids must be unique, and each rule and store an alert names must exist.
    pub(super) fn alerts(
        &self,
        tables: &[Table],
        store_ids: &[At<String>],
        rule_ids: &[At<String>],
        smtp: Option<&SmtpConfig>,
        smtp_given: bool,
    ) -> Vec<AlertConfig> {
        let ids: Vec<At<String>> = tables.iter().filter_map(|t| t.peek_str("id")).collect();
        self.unique(&ids);
        let stores: HashSet<&str> = store_ids.iter().map(|s| s.value.as_str()).collect();
        let rules: HashSet<&str> = rule_ids.iter().map(|s| s.value.as_str()).collect();
        tables
            .iter()
            .filter_map(|t| self.alert(t, &stores, &rules, smtp, smtp_given))
            .collect()
    }

    fn alert(
        &self,
        t: &Table,
        stores: &HashSet<&str>,
        rules: &HashSet<&str>,
        smtp: Option<&SmtpConfig>,
        smtp_given: bool,
    ) -> Option<AlertConfig> {
        let id = t.req_str("id");
        if let Some(id) = &id
            && !is_valid_id(&id.value)
        {
            t.error("id", "must be 1 to 64 of A-Z a-z 0-9 . _ - (as store ids)");
        }
        let named = |key: &'static str, known: &HashSet<&str>, section: &str| {
            let mut out = Vec::new();
            for name in t.opt_str_list(key).unwrap_or_default() {
                if known.contains(name.value.as_str()) {
                    out.push(name.value);
                } else {
                    self.doc.push(
                        name.path,
                        Some(name.line),
                        format!("no [[{section}]] section has id \"{}\"", name.value),
                    );
                }
            }
            out
        };
        let listed_rules = named("rules", rules, "rules");
        let listed_stores = named("stores", stores, "stores");
        let mut severities = Vec::new();
        for s in t.opt_str_list("severities").unwrap_or_default() {
            match Severity::parse(&s.value) {
                Some(severity) => severities.push(severity),
                None => self.doc.push(
                    s.path,
                    Some(s.line),
                    format!("\"{}\" is not a severity: use low, medium or high", s.value),
                ),
            }
        }
        if !t.has("rules") && !t.has("severities") {
            t.error(
                "rules",
                "is required (or severities): which exceptions to send, such as [\"big-refund\"] or severities = [\"high\"]",
            );
        }
        let digest = t.opt_str("digest").and_then(|d| {
            digest_time(&d.value)
                .map_err(|e| self.doc.push(d.path.clone(), Some(d.line), e))
                .ok()
        });
        let channel = t
            .req_str("channel")
            .and_then(|c| self.channel(t, &c, smtp, smtp_given));
        t.finish();
        Some(AlertConfig {
            id: id?.value,
            rules: listed_rules,
            severities,
            stores: listed_stores,
            digest,
            channel: channel?,
        })
    }

    fn channel(
        &self,
        t: &Table,
        channel: &At<String>,
        smtp: Option<&SmtpConfig>,
        smtp_given: bool,
    ) -> Option<Channel> {
        match channel.value.as_str() {
            "webhook" => {
                let format = match t.opt_str("format") {
                    None => Some(WebhookFormat::Json),
                    Some(f) => match f.value.as_str() {
                        "json" => Some(WebhookFormat::Json),
                        "slack" => Some(WebhookFormat::Slack),
                        "teams" => Some(WebhookFormat::Teams),
                        other => {
                            t.error(
                                "format",
                                format!("\"{other}\" is not a format: use json, slack or teams"),
                            );
                            None
                        }
                    },
                };
                let secret = self.secret(t, "secret_env");
                if format == Some(WebhookFormat::Json) && !t.has("secret_env") {
                    t.error(
                        "secret_env",
                        "is required for format = \"json\": the variable holding the key the receiver checks Tillmark-Signature with",
                    );
                }
                if t.has("secret") {
                    t.error("secret", "secrets do not belong in the file: put it in an environment variable and name it with secret_env");
                }
                let url = t.req_str("url").and_then(|u| match url::Url::parse(&u.value) {
                    Ok(url) if !url.username().is_empty() || url.password().is_some() => {
                        t.error("url", "must not carry a user or password");
                        None
                    }
                    Ok(url) if url.scheme() == "https" && url.host().is_some() => Some(url),
                    Ok(url) if url.scheme() == "http" && url.host().as_ref().is_some_and(is_loopback) => Some(url),
                    _ => {
                        t.error("url", format!("\"{}\" is not an https:// URL (plain http:// only to a loopback address)", u.value));
                        None
                    }
                });
                Some(Channel::Webhook {
                    url: url?,
                    secret,
                    format: format?,
                })
            }
            "email" => {
                let to: Vec<_> = match t.opt_str_list("to") {
                    None => {
                        t.error("to", "is required: the addresses to send to");
                        Vec::new()
                    }
                    Some(list) => {
                        if list.is_empty() {
                            t.error("to", "must name at least one address");
                        }
                        list.iter()
                            .filter_map(|a| {
                                mailbox(a)
                                    .map_err(|e| self.doc.push(a.path.clone(), Some(a.line), e))
                                    .ok()
                            })
                            .collect()
                    }
                };
                let own = t
                    .has("smtp_url")
                    .then(|| self.smtp_server(t, "smtp_url", "smtp_password_env"));
                if !t.has("smtp_url") && t.has("smtp_password_env") {
                    t.error("smtp_password_env", "goes with smtp_url");
                }
                let server = match own {
                    Some(own) => own,
                    None if smtp.is_some() => smtp.cloned(),
                    // An invalid [smtp] has its own errors already.
                    None if smtp_given => None,
                    None => {
                        t.error("smtp_url", "is required without an [smtp] section: the server to send through, such as \"smtps://alerts@mail.example.com\"");
                        None
                    }
                };
                let from = match t.opt_str("from") {
                    Some(f) => mailbox(&f)
                        .map_err(|e| self.doc.push(f.path.clone(), Some(f.line), e))
                        .ok(),
                    None => match smtp.and_then(|s| s.from.clone()) {
                        Some(from) => Some(from),
                        None => {
                            t.error("from", "is required (or [smtp] from): the sender's address");
                            None
                        }
                    },
                };
                let server = server?;
                (!to.is_empty()).then_some(())?;
                Some(Channel::Email {
                    to,
                    from: from?,
                    smtp: server,
                })
            }
            other => {
                self.doc.push(
                    channel.path.clone(),
                    Some(channel.line),
                    format!("\"{other}\" is not a channel: use webhook or email"),
                );
                None
            }
        }
    }
}

/// The user part of a URL as written, `%40` and the like decoded.
fn percent_encoding_decode(text: &str) -> String {
    url::form_urlencoded::parse(format!("u={}", text.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| text.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::config::tests::{error_at, with_site};

    fn env(name: &str) -> Option<String> {
        match name {
            "HOOK_SECRET" => Some("whsec-test".into()),
            "SMTP_PASSWORD" => Some("smtp-password".into()),
            other => crate::config::tests::env(other),
        }
    }

    const RULE: &str = r#"
[[rules]]
id = "big-refund"
kind = "amount_over"
types = ["refund"]
min_amount = 50000
currency = "JPY"
"#;

    #[test]
    fn webhook_and_email_alerts_are_read_with_their_defaults() {
        let text = with_site(&format!(
            r#"{RULE}
[web]
public_url = "https://lp.example/tillmark/"
[smtp]
url = "smtps://alerts%40shop.example@mail.example.com"
password_env = "SMTP_PASSWORD"
from = "tillmark <alerts@shop.example>"
[[alerts]]
id = "lp-desk"
channel = "webhook"
url = "https://lp.example/hooks/tillmark"
secret_env = "HOOK_SECRET"
rules = ["big-refund"]
[[alerts]]
id = "owner"
channel = "email"
to = ["owner@shop.example"]
severities = ["high"]
stores = ["shibuya-01"]
digest = "18:00"
[[alerts]]
id = "slack"
channel = "webhook"
url = "http://127.0.0.1:9/hook"
format = "slack"
severities = ["medium", "high"]
"#
        ));
        let config = Config::parse(&text, &env).expect("valid");
        assert_eq!(
            config.web.public_url.as_ref().unwrap().as_str(),
            "https://lp.example/tillmark/"
        );
        let a = &config.alerts;
        assert_eq!(a.len(), 3);
        assert!(
            matches!(&a[0].channel, Channel::Webhook { format: WebhookFormat::Json, secret: Some(s), .. } if s.expose() == "whsec-test")
        );
        assert_eq!((a[0].digest, a[0].stores.len()), (None, 0));
        assert!(a[0].covers("big-refund", "low", "ny-01"));
        assert!(!a[0].covers("other", "high", "ny-01"));
        let Channel::Email { to, from, smtp } = &a[1].channel else {
            panic!("an email alert")
        };
        assert_eq!(to[0].email.to_string(), "owner@shop.example");
        assert_eq!(from.email.to_string(), "alerts@shop.example");
        assert_eq!(
            (smtp.host.as_str(), smtp.port, smtp.security),
            ("mail.example.com", 465, SmtpSecurity::Tls)
        );
        assert_eq!(smtp.username.as_deref(), Some("alerts@shop.example"));
        assert_eq!(
            a[1].digest,
            Some(DigestTime {
                hour: 18,
                minute: 0
            })
        );
        assert!(a[1].covers("any", "high", "shibuya-01") && !a[1].covers("any", "high", "ny-01"));
        assert!(matches!(
            &a[2].channel,
            Channel::Webhook {
                format: WebhookFormat::Slack,
                secret: None,
                ..
            }
        ));
        // Tokyo speaks Japanese unless told otherwise.
        assert_eq!(config.store("shibuya-01").unwrap().language, Language::Ja);
    }

    #[test]
    fn mistakes_in_alerts_come_back_with_their_key_and_line() {
        let text = with_site(&format!(
            r#"{RULE}
[[stores]]
id = "ny-01"
timezone = "America/New_York"
language = "fr"
[[alerts]]
id = "a"
channel = "webhook"
url = "http://lp.example/hook"
rules = ["no-such-rule"]
stores = ["nowhere"]
format = "discord"
[[alerts]]
id = "b"
channel = "email"
to = ["not an address"]
smtp_url = "smtp://mail.example.com"
smtp_password_env = "SMTP_PASSWORD"
digest = "25:00"
severities = ["urgent"]
[[alerts]]
id = "c"
channel = "pager"
severities = ["high"]
[[alerts]]
id = "d"
channel = "webhook"
url = "https://lp.example/hook"
"#
        ));
        let errors = match Config::parse(&text, &env) {
            Ok(_) => panic!("expected errors"),
            Err(errors) => errors,
        };
        let line = |needle: &str| {
            text.lines()
                .position(|l| l.contains(needle))
                .map(|i| i + 1)
                .unwrap()
        };
        let at = |path: &str, needle: &str, says: &str| {
            let e = error_at(&errors, path);
            assert_eq!(e.line, Some(line(needle)), "{e}");
            assert!(e.message.contains(says), "{e}");
        };
        at("stores[1].language", "\"fr\"", "use \"en\" or \"ja\"");
        at("alerts[0].url", "http://lp.example", "https://");
        at("alerts[0].rules[0]", "no-such-rule", "no [[rules]] section");
        at("alerts[0].stores[0]", "nowhere", "no [[stores]] section");
        at("alerts[0].format", "discord", "json, slack or teams");
        // Without a format the body is tillmark's JSON, which is signed.
        let secret = error_at(&errors, "alerts[3].secret_env");
        assert!(secret.message.contains("is required"), "{secret}");
        at("alerts[1].to[0]", "not an address", "not an email address");
        at(
            "alerts[1].smtp_url",
            "smtp://mail.example.com",
            "needs a user",
        );
        at("alerts[1].digest", "25:00", "time of day");
        at("alerts[1].severities[0]", "urgent", "low, medium or high");
        let from = error_at(&errors, "alerts[1].from");
        assert!(from.message.contains("is required"), "{from}");
        at("alerts[2].channel", "pager", "webhook or email");
        let which = error_at(&errors, "alerts[3].rules");
        assert!(which.message.contains("or severities"), "{which}");
    }

    #[test]
    fn plain_smtp_is_only_for_a_relay_on_this_machine() {
        let server = |url: &str| {
            let text = with_site(&format!(
                "[smtp]\nurl = \"{url}\"\nfrom = \"a@b.example\"\n"
            ));
            Config::parse(&text, &env).expect("valid").smtp.unwrap()
        };
        assert_eq!(
            server("smtp://127.0.0.1:2525").security,
            SmtpSecurity::Plain
        );
        assert_eq!(server("smtp://localhost").port, 587);
        let remote = server("smtp://mail.example.com");
        assert_eq!(
            (remote.security, remote.port),
            (SmtpSecurity::StartTls, 587)
        );
    }
}
