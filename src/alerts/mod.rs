//! Alerts: the `[[alerts]]` sections turned into messages — a signed webhook (tillmark's JSON, or Slack's or
//! Teams' incoming-webhook shape) or an email in the store's language — for each exception the rules record,
//! or as one digest per store and day at a store-local time.
//!
//! What it guarantees:
//! - Trailing the rules, a planner ([`plan`]) writes one outbox row per (alert, exception), or per (alert,
//!   store, local day) for a digest, unique in the store: however many daemons plan and however often they
//!   restart, an exception is owed once. The outbox is the only state; the planner's cursor is a speed-up.
//! - A row is sent under a lease, like a bookmark; a failure is retried on the `[delivery] retry` schedule
//!   (`Retry-After` honoured), a refusal (a 4xx other than 408 and 429, an SMTP permanent error) fails it for
//!   good, and either is logged with the alert's id and never its URL or secret. A daemon killed between
//!   sending and recording sends the row again after its lease, with the same `Idempotency-Key` (and, by email,
//!   the same `Message-ID`), so the receiver can tell it has it already.
//! - Every webhook body is signed when the alert has a secret: `Tillmark-Signature: t=<unix seconds>,v1=<hex
//!   HMAC-SHA256 of "<t>.<body>">`.

mod email;
mod message;
mod plan;
mod webhook;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::config::{AlertConfig, Channel, Config};
use crate::store::{
    AlertJob, AlertOutcome, AlertSubject, ExceptionQuery, Store, StoreError, StoreHealth,
};

use message::Message;
pub use webhook::signature;

/// How long a claimed row is a daemon's own: longer than a batch of sends at their time limits takes, so
/// another daemon never takes a row this one is still going to send.
const LEASE_MS: i64 = 300_000;

/// Rows one claim takes: few, so the last of them is sent well within its lease.
const BATCH: i64 = 4;

/// Claims one step makes at most: the rest wait for the next tick, so a shutdown waits for a few sends, not
/// for a backlog.
const CLAIMS_PER_STEP: usize = 8;

/// How often the alerter looks for work.
const TICK: Duration = Duration::from_secs(1);

/// Time limit of one webhook request or SMTP exchange.
const TIMEOUT: Duration = Duration::from_secs(15);

#[derive(Debug, thiserror::Error)]
pub enum AlertError {
    #[error("cannot build an HTTP client for webhooks: {0}")]
    Client(String),
}

/// What one [`Alerter::step`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    /// Rows planned.
    pub planned: u64,
    pub sent: usize,
    pub retried: usize,
    pub failed: usize,
}

/// One daemon's alert sender: plans rows for new exceptions and digests, and sends the due ones.
pub struct Alerter {
    store: Arc<dyn Store>,
    config: Arc<Config>,
    /// Names this daemon's leases, as `[mqtt] client_id` names its bookmark leases.
    holder: String,
    http: reqwest::Client,
    planner: plan::Planner,
}

impl Alerter {
    pub fn new(
        store: Arc<dyn Store>,
        config: Arc<Config>,
        holder: String,
        now_ms: i64,
    ) -> Result<Alerter, AlertError> {
        let http = webhook::client(TIMEOUT).map_err(AlertError::Client)?;
        Ok(Alerter {
            store,
            config,
            holder,
            http,
            planner: plan::Planner::new(now_ms),
        })
    }

    /// Plans what is owed as of `now_ms`, then sends the due rows, a batch at a time, up to
    /// [`CLAIMS_PER_STEP`] batches.
    pub async fn step(&mut self, now_ms: i64) -> Result<Step, StoreError> {
        let mut step = Step {
            planned: self
                .planner
                .plan(&*self.store, &self.config, now_ms)
                .await?,
            ..Step::default()
        };
        let mut failing: HashMap<String, String> = HashMap::new();
        for _ in 0..CLAIMS_PER_STEP {
            let jobs = self
                .store
                .claim_alerts(&self.holder, now_ms, LEASE_MS, BATCH)
                .await?;
            let claimed = jobs.len();
            for job in jobs {
                // An alert whose receiver just failed is not tried again in the same pass: a receiver that is
                // down would otherwise cost every row owed to it a time limit.
                let outcome = match failing.get(&job.alert) {
                    Some(error) => AlertOutcome::Retry {
                        error: format!(
                            "not tried: the alert's previous message just failed ({error})"
                        ),
                        next_ms: self.retry_at(job.attempts, None, now_ms),
                    },
                    None => self.attempt(&job, now_ms).await?,
                };
                match &outcome {
                    AlertOutcome::Sent => step.sent += 1,
                    AlertOutcome::Retry { error, .. } => {
                        step.retried += 1;
                        failing
                            .entry(job.alert.clone())
                            .or_insert_with(|| error.clone());
                        tracing::warn!(alert = %job.alert, key = %job.key(), attempts = job.attempts, %error,
                            "An alert was not delivered; it is tried again.");
                    }
                    AlertOutcome::Failed { error } => {
                        step.failed += 1;
                        tracing::error!(alert = %job.alert, key = %job.key(), %error,
                            "An alert was refused and will not be tried again; fix the alert's settings.");
                    }
                }
                self.store
                    .finish_alert(job.id, &self.holder, &outcome, now_ms)
                    .await?;
            }
            if (claimed as i64) < BATCH {
                break;
            }
        }
        Ok(step)
    }

    /// One attempt at one row.
    async fn attempt(&self, job: &AlertJob, now_ms: i64) -> Result<AlertOutcome, StoreError> {
        let Some(alert) = self.config.alerts.iter().find(|a| a.id == job.alert) else {
            return Ok(AlertOutcome::Failed {
                error: "no [[alerts]] section has this id any more".into(),
            });
        };
        let Some(message) = self.message(alert, job).await? else {
            return Ok(AlertOutcome::Failed {
                error: "its exceptions are gone (retention removed their events)".into(),
            });
        };
        let result = match &alert.channel {
            Channel::Webhook {
                url,
                secret,
                format,
            } => {
                let body = message.webhook_body(*format);
                webhook::send(&self.http, url, secret.as_ref(), &job.key(), &body).await
            }
            Channel::Email { to, from, smtp } => {
                email::send(smtp, from, to, &message, &job.key(), TIMEOUT).await
            }
        };
        Ok(match result {
            Ok(()) => AlertOutcome::Sent,
            Err(Failure::Refused(error)) => AlertOutcome::Failed { error },
            Err(Failure::Retry { error, retry_after }) => AlertOutcome::Retry {
                error,
                next_ms: self.retry_at(job.attempts, retry_after, now_ms),
            },
        })
    }

    /// When a row that failed its `attempts`th try is tried again: the `[delivery] retry` schedule, as for
    /// bookmarks.
    fn retry_at(&self, attempts: i64, retry_after: Option<Duration>, now_ms: i64) -> i64 {
        let wait = crate::delivery::next_delay(
            &self.config.delivery.retry,
            attempts,
            retry_after,
            rand::random::<f64>(),
        );
        now_ms + wait.as_millis() as i64
    }

    /// What a row says, read now: its exception, or the digest's exceptions. `None` when nothing is left.
    async fn message(
        &self,
        alert: &AlertConfig,
        job: &AlertJob,
    ) -> Result<Option<Message>, StoreError> {
        let exceptions = match &job.what {
            AlertSubject::Exception { rule, event_seq } => {
                self.store
                    .exceptions(&ExceptionQuery {
                        rule: Some(rule.clone()),
                        event_seq: Some(*event_seq),
                        limit: 1,
                        ..ExceptionQuery::default()
                    })
                    .await?
            }
            AlertSubject::Digest { from_ms, to_ms, .. } => {
                plan::digest_exceptions(&*self.store, alert, &job.store, *from_ms, *to_ms).await?
            }
        };
        if exceptions.is_empty() {
            return Ok(None);
        }
        Ok(Some(Message::new(&self.config, alert, job, exceptions)))
    }
}

/// Why a send did not go through.
#[derive(Debug)]
pub(crate) enum Failure {
    /// Worth trying again (a timeout, a 5xx, a 429, a temporary SMTP error).
    Retry {
        error: String,
        retry_after: Option<Duration>,
    },
    /// The receiver will not take it as it is.
    Refused(String),
}

/// Sends alerts until `cancel`; a pass in progress finishes first. Leases this daemon (`holder`) left when it
/// last stopped are released first.
pub async fn run(mut alerter: Alerter, health: StoreHealth, cancel: CancellationToken) {
    match alerter.store.release_orphaned_alerts(&alerter.holder).await {
        Ok(0) => {}
        Ok(released) => tracing::info!(
            released,
            "Picked up alerts a previous run had in flight; each goes out again with its idempotency key."
        ),
        Err(e) => health.failed("alerts", &e),
    }
    let mut every = tokio::time::interval(TICK);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = every.tick() => {}
        }
        match alerter.step(crate::clock::now_ms()).await {
            Ok(_) => health.answered("alerts"),
            // Tried again at the next tick: what is owed waits in the outbox.
            Err(e) => health.failed("alerts", &e),
        }
    }
}
