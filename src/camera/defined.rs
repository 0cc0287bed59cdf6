//! The definition-driven adapter: makes a bookmark by rendering a vendor definition's requests and reading
//! the answers as the definition says. The definition is looked up at every attempt, so an edited file
//! applies to the next bookmark, and a missing one holds bookmarks until it appears.
//!
//! One attempt: prepare the definition's setup values once (Verkada's event type); after an uncertain
//! earlier attempt, look the bookmark up before making another; for a realtime vendor, make the fallback
//! (an export of the window) when the mark can no longer land at the right moment; then create, and read it
//! back when the definition asks.
//!
//! For an evidence package it also exports a clip of a bookmark's window where the definition has `[clip]`:
//! request, poll until ready, download within `max_size`, all within `time_limit`.

use std::collections::BTreeMap;

use async_trait::async_trait;
use minijinja::Value;
use tokio::sync::Mutex;

use super::definition::{Answer, Clip, Definition, IdFrom, Lookup, RateLimit, Setup};
use super::http::{redirected_to, vendor_message};
use super::mark::Mark;
use super::registry::Integrations;
use super::wire::{Reply, Trace, Wire, at_path, paced, pause, render};
use super::{CameraSystem, ClipFile, ClipOutcome, Delivery, Thumbnail, Zones, template};
use crate::clock::now_ms;
use crate::config::CameraSystemConfig;
use crate::store::Job;

pub struct Defined {
    name: String,
    wire: Wire,
    integrations: Integrations,
    /// Each store's time zone, for `window.*_local`.
    zones: Zones,
    /// Setup values found or made, by definition and setup name: prepared once, not per bookmark.
    prepared: Mutex<BTreeMap<(String, String), String>>,
}

/// A template that answers yes or no (`create.when`, `lookup.match`).
fn yes(source: &str, ctx: &Value) -> Result<bool, String> {
    Ok(template::render(source, ctx)?
        .trim()
        .eq_ignore_ascii_case("true"))
}

/// An error field set in a success answer: `true`, a non-zero code, or a non-empty text.
fn flagged(value: Option<String>) -> bool {
    value.is_some_and(|v| !(v.is_empty() || v == "false" || v == "0"))
}

/// The id the create request itself supplies (`vendor_id`: Nx 4.x's `guid`, Verkada's natural key).
fn supplied_id(answer: &Answer, ctx: &Value) -> Option<String> {
    match &answer.id {
        IdFrom::Template(t) => template::render(t, ctx).ok(),
        _ => None,
    }
}

/// How to read one answer: which definition and answer rules, what the request was, its template context,
/// and whether an earlier attempt may already have made the bookmark.
#[derive(Clone, Copy)]
struct Reading<'a> {
    def: &'a Definition,
    answer: &'a Answer,
    what: &'a str,
    ctx: &'a Value,
    maybe_created: bool,
}

impl Reading<'_> {
    /// A failure answer in the operator's words: the definition's message for the status, else the vendor's.
    fn refusal(&self, reply: &Reply) -> Delivery {
        let Reading {
            def,
            answer,
            what,
            ctx,
            maybe_created,
        } = *self;
        if let Some(elsewhere) = redirected_to(reply.status, &reply.headers) {
            return Delivery::Failed {
                error: format!(
                    "{what}: HTTP {}: the camera system sends its requests on to {elsewhere}, another origin than \
                     its url; not followed, so its credentials stay with it. If it has moved, change its url.",
                    reply.status
                ),
            };
        }
        let status = reply.status.as_u16();
        let said = answer
            .error_message
            .as_ref()
            .and_then(|p| at_path(&reply.json(), p))
            .unwrap_or_else(|| vendor_message(&reply.text()));
        let error = match answer.messages.get(&status) {
            Some(tpl) => match template::render(tpl, ctx) {
                Ok(m) => format!("{} {m} (HTTP {}): {said}", def.title, reply.status),
                Err(e) => format!(
                    "{what}: HTTP {}: {said} (messages.{status}: {e})",
                    reply.status
                ),
            },
            None => format!("{what}: HTTP {}: {said}", reply.status),
        };
        if !answer.retry.contains(&status) {
            Delivery::Failed { error }
        } else if let Some(slow_down) = paced(def, reply, &error) {
            slow_down
        } else {
            Delivery::Retry {
                error,
                retry_after: pause(def, reply),
                // The server may have stored it before failing: look before creating again.
                maybe_created: maybe_created || reply.status.is_server_error(),
            }
        }
    }

    /// Reads the answer to a creating request.
    fn made(&self, reply: &Reply) -> Delivery {
        let Reading {
            answer, what, ctx, ..
        } = *self;
        let succeeded = if answer.success.is_empty() {
            reply.status.is_success()
        } else {
            answer.success.contains(&reply.status.as_u16())
        };
        if !succeeded {
            return self.refusal(reply);
        }
        let json = reply.json();
        let failed = answer
            .error_flag
            .as_ref()
            .is_some_and(|flag| flagged(at_path(&json, flag)))
            || answer
                .success_flag
                .as_ref()
                .is_some_and(|flag| !flagged(at_path(&json, flag)));
        if failed {
            let why = answer
                .error_message
                .as_ref()
                .and_then(|p| at_path(&json, p))
                .unwrap_or_else(|| vendor_message(&reply.text()));
            return Delivery::Failed {
                error: format!("{what}: HTTP {} with an error: {why}", reply.status),
            };
        }
        let vendor_id = match &answer.id {
            IdFrom::Path(p) => at_path(&json, p),
            _ => supplied_id(answer, ctx),
        };
        Delivery::Made {
            vendor_id,
            detail: format!("created (HTTP {})", reply.status.as_u16()),
            made_as: None,
        }
    }
}

enum Found {
    Yes(Option<String>),
    No,
}

/// Nothing to do with the definition's author: the attempt failed before a request went out.
fn broken(def: &Definition, e: String) -> Delivery {
    Delivery::Failed {
        error: format!("definition {}: {e}", def.name),
    }
}

impl Defined {
    pub fn new(
        name: &str,
        system: &CameraSystemConfig,
        http: reqwest::Client,
        integrations: Integrations,
        zones: Zones,
        trace: Option<Trace>,
    ) -> Self {
        Defined {
            name: name.to_string(),
            wire: Wire::new(system, http, trace),
            integrations,
            zones,
            prepared: Mutex::new(BTreeMap::new()),
        }
    }

    /// The setup values, found or created on first use.
    async fn setup(&self, def: &Definition) -> Result<Value, Delivery> {
        let mut values = BTreeMap::new();
        for step in &def.setup {
            let key = (def.name.clone(), step.name.clone());
            let mut prepared = self.prepared.lock().await;
            let value = match prepared.get(&key) {
                Some(v) => v.clone(),
                None => {
                    let v = self.prepare(def, step).await?;
                    prepared.insert(key, v.clone());
                    v
                }
            };
            values.insert(step.name.clone(), value);
        }
        Ok(Value::from_serialize(&values))
    }

    async fn prepare(&self, def: &Definition, step: &Setup) -> Result<String, Delivery> {
        let ctx = template::login_context(&self.wire.system, "");
        let what = format!("{} setup {}", def.title, step.name);
        if let Found::Yes(Some(value)) = self.find(def, &step.find, &ctx, &what, false).await? {
            return Ok(value);
        }
        let rendered = render(&step.create, &ctx).map_err(|e| broken(def, e))?;
        let reply = self.wire.send(def, &what, &rendered, false).await?;
        if !reply.status.is_success() {
            let reading = Reading {
                def,
                answer: &def.create.answer,
                what: &what,
                ctx: &ctx,
                maybe_created: false,
            };
            return Err(reading.refusal(&reply));
        }
        at_path(&reply.json(), &step.create_value).ok_or_else(|| Delivery::Retry {
            error: format!("{what}: the answer has no {}", step.create_value),
            retry_after: None,
            maybe_created: false,
        })
    }

    /// Runs a lookup: our bookmark (or setup value) with its id, or none.
    async fn find(
        &self,
        def: &Definition,
        lookup: &Lookup,
        ctx: &Value,
        what: &str,
        maybe_created: bool,
    ) -> Result<Found, Delivery> {
        let rendered = render(&lookup.request, ctx).map_err(|e| broken(def, e))?;
        let reply = self.wire.send(def, what, &rendered, maybe_created).await?;
        if lookup.not_found.contains(&reply.status.as_u16()) {
            return Ok(Found::No);
        }
        if !reply.status.is_success() {
            let status = reply.status.as_u16();
            let error = format!(
                "{what}: HTTP {}: {}",
                reply.status,
                vendor_message(&reply.text())
            );
            if let Some(slow_down) = paced(def, &reply, &error) {
                return Err(slow_down);
            }
            // A search that cannot be made leaves an earlier attempt unaccounted for: wait, never guess.
            return Err(if status == 408 || status == 429 || status >= 500 {
                Delivery::Retry {
                    error,
                    retry_after: pause(def, &reply),
                    maybe_created,
                }
            } else {
                Delivery::Failed { error }
            });
        }
        let answer = reply.json();
        let candidates: Vec<serde_json::Value> = match &lookup.items {
            None => vec![answer],
            Some(path) => {
                let list = if path.is_empty() {
                    Some(&answer)
                } else {
                    path.split('.').try_fold(&answer, |v, k| v.get(k))
                };
                match list {
                    Some(serde_json::Value::Array(items)) => items.clone(),
                    _ => {
                        return Err(Delivery::Retry {
                            error: format!("{what}: the answer has no list at \"{path}\""),
                            retry_after: None,
                            maybe_created,
                        });
                    }
                }
            }
        };
        for item in candidates {
            let ours = match &lookup.matches {
                None => true,
                Some(m) => {
                    let item_ctx =
                        minijinja::context! { item => Value::from_serialize(&item), ..ctx.clone() };
                    yes(m, &item_ctx).map_err(|e| broken(def, format!("lookup.match: {e}")))?
                }
            };
            if ours {
                return Ok(Found::Yes(
                    lookup.id.as_ref().and_then(|p| at_path(&item, p)),
                ));
            }
        }
        Ok(Found::No)
    }

    /// The one context of an attempt: the job's [`Mark`] as `def` places it, now.
    fn context(&self, def: &Definition, job: &Job, setup: Value) -> Value {
        Mark::new(job, &self.zones).context(&self.wire.system, def, setup, now_ms())
    }

    async fn attempt(&self, def: &Definition, job: &Job) -> Delivery {
        let setup = match self.setup(def).await {
            Ok(s) => s,
            Err(d) => return d,
        };
        let ctx = self.context(def, job, setup);
        if job.maybe_created
            && let Some(lookup) = &def.lookup
        {
            let what = format!("{} search", def.title);
            match self.find(def, lookup, &ctx, &what, true).await {
                Ok(Found::Yes(vendor_id)) => {
                    return Delivery::Made {
                        // Verkada's natural key: the id the request supplies, whether this attempt made it or not.
                        vendor_id: vendor_id.or_else(|| supplied_id(&def.create.answer, &ctx)),
                        detail: "found from an earlier attempt".into(),
                        made_as: None,
                    };
                }
                Ok(Found::No) => {}
                Err(d) => return d,
            }
        }
        if let (Some(when), Some(fallback)) = (&def.create.when, &def.fallback) {
            match yes(when, &ctx) {
                Ok(true) => {}
                Ok(false) => {
                    let what = format!("{} {}", def.title, fallback.label);
                    let rendered = match render(&fallback.request, &ctx) {
                        Ok(r) => r,
                        Err(e) => return broken(def, format!("fallback: {e}")),
                    };
                    return match self
                        .wire
                        .send(def, &what, &rendered, job.maybe_created)
                        .await
                    {
                        Ok(reply) => match (Reading {
                            def,
                            answer: &fallback.answer,
                            what: &what,
                            ctx: &ctx,
                            maybe_created: job.maybe_created,
                        })
                        .made(&reply)
                        {
                            Delivery::Made { vendor_id, .. } => Delivery::Made {
                                vendor_id,
                                made_as: Some(fallback.label.clone()),
                                detail: format!(
                                    "{} instead (too late for a live mark; HTTP {})",
                                    fallback.label,
                                    reply.status.as_u16()
                                ),
                            },
                            other => other,
                        },
                        Err(d) => d,
                    };
                }
                Err(e) => return broken(def, format!("create.when: {e}")),
            }
        }
        let what = format!("{} create", def.title);
        let rendered = match render(&def.create.request, &ctx) {
            Ok(r) => r,
            Err(e) => return broken(def, e),
        };
        let reply = match self
            .wire
            .send(def, &what, &rendered, job.maybe_created)
            .await
        {
            Ok(reply) => reply,
            Err(d) => return d,
        };
        let made = Reading {
            def,
            answer: &def.create.answer,
            what: &what,
            ctx: &ctx,
            maybe_created: job.maybe_created,
        }
        .made(&reply);
        match (made, &def.lookup) {
            (
                Delivery::Made {
                    vendor_id,
                    detail,
                    made_as,
                },
                Some(lookup),
            ) if def.create.read_back => {
                let what = format!("{} read-back", def.title);
                match self.find(def, lookup, &ctx, &what, true).await {
                    Ok(Found::Yes(found)) => Delivery::Made {
                        vendor_id: vendor_id.or(found),
                        detail: format!("{detail}, read back"),
                        made_as,
                    },
                    Ok(Found::No) => Delivery::Retry {
                        error: format!(
                            "{what}: accepted (HTTP {}) but not there when read back",
                            reply.status.as_u16()
                        ),
                        retry_after: None,
                        maybe_created: true,
                    },
                    Err(d) => d,
                }
            }
            (made, _) => made,
        }
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
        // What the vendor said leaves here only with the system's secrets blanked: it is stored, logged and
        // shown. An earlier attempt's uncertainty stands until a lookup or a create settles it.
        let redact = |text: String| self.wire.redact(&text);
        match self.attempt(&def, job).await {
            Delivery::Made {
                vendor_id,
                detail,
                made_as,
            } => Delivery::Made {
                vendor_id,
                detail: redact(detail),
                made_as,
            },
            Delivery::Retry {
                error,
                retry_after,
                maybe_created,
            } => Delivery::Retry {
                error: redact(error),
                retry_after,
                maybe_created: maybe_created || job.maybe_created,
            },
            Delivery::Paced { wait, note } => Delivery::Paced {
                wait,
                note: redact(note),
            },
            Delivery::Failed { error } => Delivery::Failed {
                error: redact(error),
            },
        }
    }

    fn requests_sent(&self) -> u64 {
        self.wire.requests_sent()
    }

    fn rate_limit(&self) -> Option<RateLimit> {
        self.integrations.get(&self.name).and_then(|d| d.rate_limit)
    }

    async fn thumbnail(&self, job: &Job) -> Result<Option<Thumbnail>, String> {
        self.still(job).await.map_err(|e| self.wire.redact(&e))
    }

    async fn clip(&self, job: &Job) -> ClipOutcome {
        let Some(def) = self.integrations.get(&self.name) else {
            return ClipOutcome::NotOffered;
        };
        let Some(clip) = &def.clip else {
            return ClipOutcome::NotOffered;
        };
        let limit = clip.time_limit;
        match tokio::time::timeout(limit, self.export_clip(&def, clip, job)).await {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(why)) => ClipOutcome::Failed(self.wire.redact(&why)),
            Err(_) => ClipOutcome::Failed(format!(
                "{} clip export: not done within its time limit of {} s",
                def.title,
                limit.as_secs()
            )),
        }
    }
}

/// The words of a request that did not get an answer to read.
fn unanswered(d: Delivery) -> String {
    match d {
        Delivery::Retry { error, .. }
        | Delivery::Paced { note: error, .. }
        | Delivery::Failed { error } => error,
        Delivery::Made { detail, .. } => detail,
    }
}

/// A clip file's extension: the download address's own (`.mp4`), else one for its content type.
fn extension(url: &str, content_type: &str) -> String {
    let from_path = url::Url::parse(url).ok().and_then(|u| {
        let name = u.path_segments()?.next_back()?.to_string();
        let (_, ext) = name.rsplit_once('.')?;
        (!ext.is_empty() && ext.len() <= 5 && ext.chars().all(|c| c.is_ascii_alphanumeric()))
            .then(|| ext.to_ascii_lowercase())
    });
    from_path.unwrap_or_else(|| {
        match content_type.split(';').next().unwrap_or("").trim() {
            "video/mp4" => "mp4",
            "video/quicktime" => "mov",
            "video/x-matroska" => "mkv",
            "video/mp2t" => "ts",
            "video/webm" => "webm",
            _ => "bin",
        }
        .to_string()
    })
}

impl Defined {
    /// Requests the export, polls until it is ready, downloads it within the size limit; the time limit is
    /// the caller's. An error is the vendor's words, not yet redacted.
    async fn export_clip(
        &self,
        def: &Definition,
        clip: &Clip,
        job: &Job,
    ) -> Result<ClipOutcome, String> {
        let ctx = self.context(
            def,
            job,
            Value::from_serialize(BTreeMap::<String, String>::new()),
        );
        let what = format!("{} clip export", def.title);
        let rendered = render(&clip.request, &ctx)
            .map_err(|e| format!("definition {}: clip: {e}", def.name))?;
        let reply = self
            .wire
            .send(def, &what, &rendered, false)
            .await
            .map_err(unanswered)?;
        let reading = Reading {
            def,
            answer: &clip.answer,
            what: &what,
            ctx: &ctx,
            maybe_created: false,
        };
        let id = match reading.made(&reply) {
            Delivery::Made {
                vendor_id: Some(id),
                ..
            } => id,
            Delivery::Made { .. } => {
                return Err(format!(
                    "{what}: HTTP {} without the export's id",
                    reply.status
                ));
            }
            other => return Err(unanswered(other)),
        };
        let job_ctx = minijinja::context! { job => id, ..ctx };
        let what = format!("{} clip export {id}", def.title);
        let ready = loop {
            let rendered = render(&clip.poll, &job_ctx)
                .map_err(|e| format!("definition {}: clip.poll: {e}", def.name))?;
            let reply = self
                .wire
                .send(def, &what, &rendered, false)
                .await
                .map_err(unanswered)?;
            let status = reply.status.as_u16();
            if reply.status.is_success() {
                let answer_ctx = minijinja::context! {
                    answer => Value::from_serialize(reply.json()),
                    ..job_ctx.clone()
                };
                if let Some(failed) = &clip.failed
                    && yes(failed, &answer_ctx)
                        .map_err(|e| format!("definition {}: clip.poll.failed: {e}", def.name))?
                {
                    return Err(format!(
                        "{what}: the camera system says the export failed: {}",
                        vendor_message(&reply.text())
                    ));
                }
                if yes(&clip.ready, &answer_ctx)
                    .map_err(|e| format!("definition {}: clip.poll.ready: {e}", def.name))?
                {
                    break answer_ctx;
                }
            } else if !(status == 408 || status == 429 || status >= 500) {
                return Err(format!(
                    "{what}: HTTP {}: {}",
                    reply.status,
                    vendor_message(&reply.text())
                ));
            }
            // Not ready, or the vendor is busy: ask again after the definition's pause (or the vendor's).
            tokio::time::sleep(pause(def, &reply).unwrap_or(clip.every)).await;
        };
        let rendered = render(&clip.download, &ready)
            .map_err(|e| format!("definition {}: clip.download: {e}", def.name))?;
        let what = format!("{} clip download", def.title);
        let reply = self
            .wire
            .download(def, &what, &rendered, clip.max_size.0)
            .await
            .map_err(unanswered)?;
        if reply.cut {
            return Ok(ClipOutcome::TooLarge {
                limit: clip.max_size,
            });
        }
        if !reply.status.is_success() {
            return Err(format!(
                "{what}: HTTP {}: {}",
                reply.status,
                vendor_message(&reply.text())
            ));
        }
        let content_type = reply
            .headers
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("application/octet-stream")
            .to_string();
        Ok(ClipOutcome::Downloaded(ClipFile {
            extension: extension(&rendered.url, &content_type),
            content_type,
            bytes: reply.body,
        }))
    }
}

impl Defined {
    /// Renders every template a delivery of `job` could render, sending nothing, with made-up values where a
    /// vendor's answer would give them (setup values, a refresh token): an undefined name such as
    /// `window.start_msec` is found by `integrations check`, not by the first bookmark that needs it. Templates
    /// that read a vendor's answer (`id` paths, messages, lookup matches) are checked when they compile only.
    pub fn check_templates(&self, job: &Job) -> Vec<String> {
        let Some(def) = self.integrations.get(&self.name) else {
            return Vec::new();
        };
        let mut errors = Vec::new();
        let mut check = |what: &str, rendered: Result<(), String>| {
            if let Err(e) = rendered {
                errors.push(format!("{what}: {e}"));
            }
        };
        let login = template::login_context(&self.wire.system, "refresh-token");
        if let Some(when) = &def.auth_when {
            check("auth.when", template::render(when, &login).map(drop));
        }
        if let super::definition::Auth::Session(session) = &def.auth {
            check("auth login", render(&session.login, &login).map(drop));
        }
        for step in &def.setup {
            let what = format!("setup {}", step.name);
            check(&what, render(&step.find.request, &login).map(drop));
            check(&what, render(&step.create, &login).map(drop));
        }
        let setup: BTreeMap<&str, String> = def
            .setup
            .iter()
            .map(|s| (s.name.as_str(), format!("{}-value", s.name)))
            .collect();
        let ctx = self.context(&def, job, Value::from_serialize(&setup));
        check("create", render(&def.create.request, &ctx).map(drop));
        if let Some(when) = &def.create.when {
            check("create.when", template::render(when, &ctx).map(drop));
        }
        if let Some(fallback) = &def.fallback {
            check("fallback", render(&fallback.request, &ctx).map(drop));
        }
        if let Some(lookup) = &def.lookup {
            check("lookup", render(&lookup.request, &ctx).map(drop));
        }
        if let Some(thumbnail) = &def.thumbnail {
            check("thumbnail", render(thumbnail, &ctx).map(drop));
        }
        if let Some(clip) = &def.clip {
            check("clip", render(&clip.request, &ctx).map(drop));
        }
        if let Some(link) = &def.footage_link {
            let b = &job.bookmark;
            let link = template::render_link(link, &self.wire.system, &b.device, b.start_ms);
            check("links.footage", link.map(drop));
        }
        errors
    }

    /// The thumbnail, its error still as the vendor worded it.
    async fn still(&self, job: &Job) -> Result<Option<Thumbnail>, String> {
        let Some(def) = self.integrations.get(&self.name) else {
            return Ok(None);
        };
        let Some(request) = &def.thumbnail else {
            return Ok(None);
        };
        let ctx = self.context(
            &def,
            job,
            Value::from_serialize(BTreeMap::<String, String>::new()),
        );
        let rendered = render(request, &ctx)
            .map_err(|e| format!("definition {}: thumbnail: {e}", def.name))?;
        let what = format!("{} thumbnail", def.title);
        let reply = match self.wire.send(&def, &what, &rendered, false).await {
            Ok(reply) => reply,
            Err(
                Delivery::Retry { error, .. }
                | Delivery::Paced { note: error, .. }
                | Delivery::Failed { error },
            ) => return Err(error),
            Err(Delivery::Made { .. }) => return Err(format!("{what}: no image")),
        };
        if !reply.status.is_success() {
            return Err(format!(
                "{what}: HTTP {}: {}",
                reply.status,
                vendor_message(&reply.text())
            ));
        }
        let content_type = reply
            .headers
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        // Only an image goes back to the browser: anything else from a vendor is not shown as one.
        if !content_type.starts_with("image/") {
            return Err(format!(
                "{what}: the answer is not an image ({content_type})"
            ));
        }
        Ok(Some(Thumbnail {
            content_type,
            bytes: reply.body,
        }))
    }
}
