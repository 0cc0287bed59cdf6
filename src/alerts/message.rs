//! What an alert says, in each shape it is sent in: tillmark's JSON (documented in the README, for programs,
//! in English), Slack's and Teams' incoming-webhook messages and the email's subject and text (for people, in
//! the store's language, from the message catalogs beside the index's).

use chrono::TimeZone;
use serde_json::{Value, json};

use super::plan::DIGEST_MOST;
use crate::config::{AlertConfig, Config, Language, WebhookFormat};
use crate::store::{AlertJob, AlertSubject, ExceptionRecord};
use crate::web::i18n::{self, Lang};

/// One outbox row's message, read from the store when it is sent.
#[derive(Debug, Clone)]
pub struct Message {
    pub alert: String,
    /// The `Idempotency-Key`.
    pub key: String,
    pub store: String,
    store_name: String,
    zone: chrono_tz::Tz,
    pub language: Language,
    /// Oldest first; a digest lists at most [`DIGEST_MOST`], and `more` says how many it left out.
    pub exceptions: Vec<ExceptionRecord>,
    more: usize,
    /// A digest's local day and its span's end.
    digest: Option<(String, i64)>,
    links: Vec<Links>,
}

#[derive(Debug, Clone, Default)]
struct Links {
    event: Option<String>,
    footage: Option<String>,
}

impl Message {
    pub fn new(
        config: &Config,
        alert: &AlertConfig,
        job: &AlertJob,
        mut exceptions: Vec<ExceptionRecord>,
    ) -> Message {
        let shop = config.store(&job.store);
        let more = exceptions.len().saturating_sub(DIGEST_MOST as usize);
        exceptions.truncate(DIGEST_MOST as usize);
        let links = exceptions.iter().map(|x| links(config, x)).collect();
        Message {
            alert: alert.id.clone(),
            key: job.key(),
            store: job.store.clone(),
            store_name: shop.map_or_else(|| job.store.clone(), |s| s.name.clone()),
            zone: shop.map_or(chrono_tz::UTC, |s| s.timezone),
            language: shop.map_or(Language::En, |s| s.language),
            exceptions,
            more,
            digest: match &job.what {
                AlertSubject::Digest { day, to_ms, .. } => Some((day.clone(), *to_ms)),
                AlertSubject::Exception { .. } => None,
            },
            links,
        }
    }

    /// The body a webhook of `format` posts.
    pub fn webhook_body(&self, format: WebhookFormat) -> String {
        let value = match format {
            WebhookFormat::Json => self.json(),
            WebhookFormat::Slack => self.slack(),
            WebhookFormat::Teams => self.teams(),
        };
        value.to_string()
    }

    /// The email's subject and plain text, in the store's language.
    pub fn email(&self) -> (String, String) {
        self.speaking(|| {
            let mut lines = vec![self.headline(), String::new()];
            for (x, links) in self.exceptions.iter().zip(&self.links) {
                lines.extend(self.details(x, links));
                lines.push(String::new());
            }
            if self.more > 0 {
                lines.push(i18n::text_with(
                    "alert.digest_more",
                    &[("count", &self.more.to_string())],
                ));
            }
            (self.subject(), lines.join("\n"))
        })
    }

    fn speaking<R>(&self, f: impl FnOnce() -> R) -> R {
        i18n::in_language(Lang::from(self.language), f)
    }

    fn local(&self, ms: i64) -> String {
        chrono::DateTime::from_timestamp_millis(ms)
            .map(|t| {
                self.zone
                    .from_utc_datetime(&t.naive_utc())
                    .format("%Y-%m-%d %H:%M:%S %Z")
                    .to_string()
            })
            .unwrap_or_default()
    }

    fn subject(&self) -> String {
        match (&self.digest, self.exceptions.first()) {
            (Some((_, to_ms)), _) => i18n::text_with(
                "alert.digest_subject",
                &[
                    ("store", &self.store_name),
                    ("count", &(self.exceptions.len() + self.more).to_string()),
                    ("at", &self.local(*to_ms)),
                ],
            ),
            (None, Some(x)) => i18n::text_with(
                "alert.subject",
                &[
                    ("rule", &x.rule),
                    ("type", &i18n::type_label(&x.kind)),
                    ("store", &self.store_name),
                    ("register", &x.register),
                ],
            ),
            (None, None) => String::new(),
        }
    }

    fn headline(&self) -> String {
        match &self.digest {
            Some((_, to_ms)) => i18n::text_with(
                "alert.digest_found",
                &[
                    ("store", &self.store_name),
                    ("at", &self.local(*to_ms)),
                    ("count", &(self.exceptions.len() + self.more).to_string()),
                ],
            ),
            None => i18n::text_with("alert.found", &[("store", &self.store_name)]),
        }
    }

    /// One exception's lines: the rule, why, the event, its amount and its links.
    fn details(&self, x: &ExceptionRecord, links: &Links) -> Vec<String> {
        let mut lines = vec![
            i18n::text_with(
                "alert.rule",
                &[("rule", &x.rule), ("severity", &x.severity)],
            ),
            i18n::text_with("alert.why", &[("why", &crate::rules::why_text(&x.why))]),
            i18n::text_with(
                "alert.event",
                &[
                    ("type", &i18n::type_label(&x.kind)),
                    ("store", &self.store_name),
                    ("register", &x.register),
                    ("at", &self.local(x.at_ms)),
                ],
            ),
        ];
        if let Some(amount) = x.amount {
            let shown = crate::money::format_amount(amount, x.currency.as_deref());
            lines.push(i18n::text_with("alert.amount", &[("amount", &shown)]));
        }
        for (key, url) in [
            ("alert.event_link", &links.event),
            ("alert.footage_link", &links.footage),
        ] {
            if let Some(url) = url {
                lines.push(i18n::text_with(key, &[("url", url)]));
            }
        }
        lines
    }

    /// tillmark's own JSON: `type` `exception` with one exception's fields, or `digest` with a list of them.
    fn json(&self) -> Value {
        let items: Vec<Value> = self
            .exceptions
            .iter()
            .zip(&self.links)
            .map(|(x, links)| item(x, links))
            .collect();
        match &self.digest {
            Some((day, to_ms)) => json!({
                "type": "digest",
                "alert": self.alert,
                "idempotency_key": self.key,
                "store": self.store,
                "day": day,
                "until": self.iso(*to_ms),
                "count": self.exceptions.len() + self.more,
                "exceptions": items,
            }),
            None => {
                let mut body = json!({
                    "type": "exception",
                    "alert": self.alert,
                    "idempotency_key": self.key,
                });
                if let (Some(map), Some(Value::Object(item))) =
                    (body.as_object_mut(), items.into_iter().next())
                {
                    map.extend(item);
                }
                body
            }
        }
    }

    fn iso(&self, ms: i64) -> String {
        chrono::DateTime::from_timestamp_millis(ms)
            .map(|t| t.with_timezone(&self.zone).to_rfc3339())
            .unwrap_or_default()
    }

    /// Slack's incoming webhook: `text` (the notification's words) and `blocks`: a header, a section per
    /// exception in Slack's `mrkdwn`, its links as `<url|label>`. At most 50 blocks, as Slack allows.
    fn slack(&self) -> Value {
        self.speaking(|| {
            let mut blocks = vec![json!({
                "type": "header",
                "text": {"type": "plain_text", "text": clip(&self.subject(), 150)},
            })];
            for (x, links) in self.exceptions.iter().zip(&self.links).take(45) {
                let mut lines: Vec<String> = self
                    .details(x, &Links::default())
                    .iter()
                    .map(|l| slack_escape(l))
                    .collect();
                let mut link_line = Vec::new();
                for (key, url) in [("alert.event_link", &links.event), ("alert.footage_link", &links.footage)] {
                    if let Some(url) = url {
                        let label = i18n::text_with(key, &[("url", "")]);
                        link_line.push(format!("<{url}|{}>", slack_escape(label.trim_end_matches([':', '：', ' ']))));
                    }
                }
                if !link_line.is_empty() {
                    lines.push(link_line.join("  "));
                }
                blocks.push(json!({
                    "type": "section",
                    "text": {"type": "mrkdwn", "text": clip(&lines.join("\n"), 3000)},
                }));
            }
            let left_out = self.more + self.exceptions.len().saturating_sub(45);
            if left_out > 0 {
                blocks.push(json!({
                    "type": "context",
                    "elements": [{"type": "mrkdwn", "text": slack_escape(&i18n::text_with("alert.digest_more", &[("count", &left_out.to_string())]))}],
                }));
            }
            json!({"text": slack_escape(&self.subject()), "blocks": blocks})
        })
    }

    /// A Teams incoming webhook's MessageCard: a title, a section of facts per exception, and a button to each
    /// event page.
    fn teams(&self) -> Value {
        self.speaking(|| {
            let sections: Vec<Value> = self
                .exceptions
                .iter()
                .zip(&self.links)
                .map(|(x, links)| {
                    json!({
                        "text": self.details(x, links).join("<br>"),
                    })
                })
                .collect();
            let actions: Vec<Value> = self
                .links
                .iter()
                .filter_map(|l| l.event.as_ref())
                .take(4)
                .map(|url| json!({"@type": "OpenUri", "name": i18n::text_with("alert.event_link", &[("url", "")]).trim_end_matches([':', '：', ' ']), "targets": [{"os": "default", "uri": url}]}))
                .collect();
            json!({
                "@type": "MessageCard",
                "@context": "https://schema.org/extensions",
                "summary": self.subject(),
                "themeColor": "D70000",
                "title": self.subject(),
                "text": self.headline(),
                "sections": sections,
                "potentialAction": actions,
            })
        })
    }
}

/// One exception in tillmark's JSON.
fn item(x: &ExceptionRecord, links: &Links) -> Value {
    json!({
        "exception": {"rule": x.rule, "severity": x.severity, "why": crate::rules::english_why(&x.why), "found_ms": x.found_ms},
        "event": {
            "seq": x.event_seq, "store": x.store, "register": x.register, "type": x.kind, "at": x.at,
            "amount": x.amount, "currency": x.currency,
        },
        "links": {"event": links.event, "footage": links.footage},
    })
}

/// The event page and the footage redirect (which records who opened it) at `[web] public_url`; none without
/// one, and no footage link when no camera watches the register.
fn links(config: &Config, x: &ExceptionRecord) -> Links {
    let Some(base) = &config.web.public_url else {
        return Links::default();
    };
    let event = base.join(&format!("events/{}", x.event_seq)).ok();
    let watched = config
        .cameras
        .iter()
        .any(|c| c.watches(&x.store, &x.register));
    let footage = watched
        .then(|| base.join(&format!("events/{}/footage/0", x.event_seq)).ok())
        .flatten();
    Links {
        event: event.map(String::from),
        footage: footage.map(String::from),
    }
}

/// Slack's `mrkdwn` reads `&`, `<` and `>` as markup: escaped, a cashier's text cannot make a link.
fn slack_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// At most `max` characters.
fn clip(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((end, _)) => text[..end].to_string(),
        None => text.to_string(),
    }
}
