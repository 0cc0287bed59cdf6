//! Outbox workers: claim due bookmark rows, hand each to its camera system, record what happened.
//!
//! Guarantees: a row is worked by one task at a time (the store's lease); the outcome is written before the
//! task lets go; a transient failure reschedules the row by the retry schedule, a permanent one marks it failed
//! with the vendor's words; on shutdown no new row is claimed and in-flight attempts finish.
//! A vendor asking to slow down (429, or 503 with `Retry-After`) is pacing, not failure: its whole lane pauses
//! and the row goes back with its attempt count and schedule step unchanged, so a rate-limited backlog flows
//! at the rate the vendor allows.

mod schedule;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

pub use schedule::next_delay;
use schedule::pause;

use crate::camera::{Cameras, Delivery};
use crate::clock::now_ms;
use crate::config::DeliveryConfig;
use crate::store::{Finished, Job, Outcome, Store};

/// How long a claimed row stays with its worker; far above any attempt's requests, so a live worker never
/// loses its row, and a row of a worker that died is picked up again after this.
const LEASE_MS: i64 = 120_000;
/// Longest sleep between looks at the outbox, in case a wake-up was missed.
const IDLE_POLL: Duration = Duration::from_secs(5);
/// How long in-flight attempts get to finish at shutdown.
const DRAIN: Duration = Duration::from_secs(15);

pub struct Worker {
    pub store: Arc<dyn Store>,
    pub cameras: Cameras,
    pub config: DeliveryConfig,
    /// Rung by ingest after a commit that added bookmarks.
    pub wake: Arc<Notify>,
}

/// Most attempts in flight across all camera systems; each system also has its own limit.
const MAX_IN_FLIGHT: usize = 256;
/// Most rows claimed in one look at the outbox.
const CLAIM_BATCH: usize = 64;

/// One camera system's lane: its own concurrency, and a pause when the vendor asked to wait, so one system
/// being slow or rate limited never holds up another.
struct Lane {
    permits: Arc<Semaphore>,
    pace: Arc<Pace>,
}

/// When a camera system may be called again; shared by the tasks of its lane.
#[derive(Default)]
struct Pace {
    /// Epoch milliseconds until which nothing is sent to this system.
    until: AtomicI64,
    /// The last pause taken when the vendor named no time, in milliseconds; zero after a bookmark is made.
    unnamed_ms: AtomicI64,
}

impl Pace {
    fn until(&self) -> i64 {
        self.until.load(Ordering::SeqCst)
    }

    /// Sends nothing to the system before `until`.
    fn hold(&self, until: i64) {
        self.until.fetch_max(until, Ordering::SeqCst);
    }

    /// Pauses the system after it asked to slow down; returns when it may be called again.
    fn slow_down(&self, now: i64, asked: Option<Duration>) -> i64 {
        let current = self.until();
        // Requests sent before the pause began meet the same limit: only a new one lengthens an unnamed pause.
        if asked.is_none() && current > now {
            return current;
        }
        let previous = Duration::from_millis(self.unnamed_ms.load(Ordering::SeqCst) as u64);
        let wait = pause(asked, previous);
        if asked.is_none() {
            self.unnamed_ms
                .store(wait.as_millis() as i64, Ordering::SeqCst);
        }
        let until = now + wait.as_millis() as i64;
        self.hold(until);
        until.max(current)
    }

    /// The vendor answered with a bookmark: an unnamed pause starts again from its shortest.
    fn answered(&self) {
        self.unnamed_ms.store(0, Ordering::SeqCst);
    }
}

impl Worker {
    pub async fn run(self, cancel: CancellationToken) {
        let (done_tx, done_rx) = tokio::sync::mpsc::unbounded_channel();
        let recorder = tokio::spawn(record(self.store.clone(), done_rx, self.wake.clone()));
        let slots = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
        let mut lanes: HashMap<String, Lane> = HashMap::new();
        let mut tasks: JoinSet<()> = JoinSet::new();
        let this = Arc::new(self);
        loop {
            if cancel.is_cancelled() {
                break;
            }
            let now = now_ms();
            let skip: Vec<String> = lanes
                .iter()
                .filter(|(_, l)| l.permits.available_permits() == 0 || l.pace.until() > now)
                .map(|(id, _)| id.clone())
                .collect();
            let free = slots.available_permits().min(CLAIM_BATCH);
            let mut claimed = 0;
            if free > 0 {
                match this
                    .store
                    .claim_due(now, LEASE_MS, free as i64, &skip)
                    .await
                {
                    Ok(jobs) => {
                        claimed = jobs.len();
                        for job in jobs {
                            let Ok(slot) = slots.clone().acquire_owned().await else {
                                break;
                            };
                            let lane =
                                lanes
                                    .entry(job.bookmark.system.clone())
                                    .or_insert_with(|| Lane {
                                        permits: Arc::new(Semaphore::new(this.config.concurrency)),
                                        pace: Arc::default(),
                                    });
                            let (permits, pace) = (lane.permits.clone(), lane.pace.clone());
                            let this = this.clone();
                            let done = done_tx.clone();
                            tasks.spawn(async move {
                                let _slot = slot;
                                let Ok(_turn) = permits.acquire_owned().await else {
                                    return;
                                };
                                // The system may have asked to wait while this row queued for its turn.
                                let until = pace.until();
                                if until > now_ms() {
                                    let _ = done.send(this.postpone(&job, until));
                                    return;
                                }
                                let _ = done.send(this.attempt(job, &pace).await);
                            });
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "Could not read the bookmark outbox; trying again in a second.");
                        tokio::select! {
                            _ = cancel.cancelled() => break,
                            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                        }
                        continue;
                    }
                }
            }
            while tasks.try_join_next().is_some() {}
            if claimed > 0 && claimed == free {
                continue;
            }
            // Sleep until the next row of a system we may send to is due, or a cooldown ends.
            let cooldown_ends = lanes
                .values()
                .map(|l| l.pace.until())
                .filter(|t| *t > now)
                .min();
            let due: Option<i64> = this.store.next_due_ms(&skip).await.unwrap_or_default();
            let wake_at = [due, cooldown_ends].into_iter().flatten().min();
            let sleep = match wake_at {
                Some(at) => Duration::from_millis(
                    (at - now_ms()).clamp(0, IDLE_POLL.as_millis() as i64) as u64,
                ),
                None => IDLE_POLL,
            };
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = this.wake.notified() => {}
                _ = tokio::time::sleep(sleep) => {}
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            }
        }
        if !tasks.is_empty() {
            tracing::info!(
                in_flight = tasks.len(),
                "Finishing bookmark deliveries in flight."
            );
            if tokio::time::timeout(DRAIN, async { while tasks.join_next().await.is_some() {} })
                .await
                .is_err()
            {
                tracing::warn!(
                    "Some deliveries did not finish in time; they will be checked before being retried."
                );
            }
        }
        // Attempts cut off above never report; their rows stay in flight and are checked before a retry.
        drop(tasks);
        drop(done_tx);
        if let Err(e) = recorder.await {
            tracing::error!(error = %e, "The delivery recorder ended abnormally.");
        }
    }

    /// Gives a claimed row back unsent, due when its system's pause ends; no attempt is counted.
    fn postpone(&self, job: &Job, until: i64) -> Finished {
        let now = now_ms();
        let b = &job.bookmark;
        Finished {
            bookmark_id: b.id,
            outcome: Outcome::Paced {
                at_ms: until,
                note: format!(
                    "not sent: {} asked to slow down; waits {}",
                    b.system,
                    seconds(until - now)
                ),
            },
            at_ms: now,
        }
    }

    /// One attempt; a vendor asking to wait pauses the system's lane (`pace`).
    async fn attempt(&self, job: Job, pace: &Pace) -> Finished {
        let b = &job.bookmark;
        let delivery = match self.cameras.get(&b.system) {
            Some(system) => system.deliver(&job).await,
            None => Delivery::Retry {
                error: format!(
                    "no camera system \"{}\" in the config; the bookmark waits for it",
                    b.system
                ),
                retry_after: None,
                maybe_created: job.maybe_created,
            },
        };
        let now = now_ms();
        let outcome = match delivery {
            Delivery::Made {
                vendor_id,
                detail,
                made_as,
            } => {
                tracing::info!(event = %job.event.key, system = %b.system, device = %b.device, start_ms = b.start_ms,
                    vendor_id = vendor_id.as_deref().unwrap_or(""), "Bookmark made.");
                pace.answered();
                Outcome::Made {
                    vendor_id,
                    detail,
                    made_as,
                }
            }
            Delivery::Retry {
                error,
                retry_after,
                maybe_created,
            } => {
                if let Some(after) = retry_after {
                    pace.hold(now + after.as_millis() as i64);
                }
                let wait = next_delay(
                    &self.config.retry,
                    b.attempts,
                    retry_after,
                    rand::random::<f64>(),
                );
                tracing::warn!(event = %job.event.key, system = %b.system, attempts = b.attempts,
                    retry_in_ms = wait.as_millis() as u64, %error, "Bookmark not made yet; will retry.");
                Outcome::Retry {
                    at_ms: now + wait.as_millis() as i64,
                    error,
                    maybe_created,
                }
            }
            Delivery::Paced { wait, note } => {
                let until = pace.slow_down(now, wait);
                tracing::info!(event = %job.event.key, system = %b.system, wait_ms = until - now, %note,
                    "Camera system asked to slow down; its bookmarks wait, no attempt counted.");
                Outcome::Paced {
                    at_ms: until,
                    note: format!(
                        "{} asked to wait {}: {note}",
                        b.system,
                        seconds(until - now)
                    ),
                }
            }
            Delivery::Failed { error } => {
                tracing::error!(event = %job.event.key, system = %b.system, device = %b.device, %error,
                    "Bookmark failed and will not be retried.");
                Outcome::Failed { error }
            }
        };
        Finished {
            bookmark_id: b.id,
            outcome,
            at_ms: now,
        }
    }
}

/// A wait for the history, as people read it: `2 s`, `0.5 s`.
fn seconds(ms: i64) -> String {
    let secs = ms.max(0) as f64 / 1000.0;
    if secs.fract() == 0.0 {
        format!("{secs:.0} s")
    } else {
        format!("{secs:.1} s")
    }
}

/// Writes outcomes as they come, many to a transaction under load, so delivery does not take the database
/// writer from ingest one fsync per bookmark. Until an outcome is written its row stays leased to us.
async fn record(
    store: Arc<dyn Store>,
    mut done: tokio::sync::mpsc::UnboundedReceiver<Finished>,
    wake: Arc<Notify>,
) {
    let mut batch = Vec::new();
    while let Some(first) = done.recv().await {
        batch.push(first);
        while batch.len() < 500 {
            match done.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        let mut delay = Duration::from_millis(100);
        // If the database stays unavailable past the lease, the rows are claimed again and, being in flight,
        // checked on the camera system before anything is created again.
        for _ in 0..10 {
            match store.finish(&batch).await {
                Ok(()) => {
                    // Due times changed: a retry is rescheduled, a lease is released, and a made bookmark may
                    // have pulled its system's waiting rows forward (the store's recovery rule). Look again.
                    wake.notify_one();
                    break;
                }
                Err(e) => {
                    tracing::error!(error = %e, outcomes = batch.len(), "Could not record delivery outcomes; retrying.");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            }
        }
        batch.clear();
    }
}
