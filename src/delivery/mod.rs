//! Outbox workers: claim due bookmark rows, hand each to its camera system, record what happened.
//!
//! Guarantees: a row is worked by one task at a time (the store's lease); the outcome is written before the
//! task lets go; a transient failure reschedules the row by the retry schedule, a permanent one marks it failed
//! with the vendor's words; on shutdown no new row is claimed and in-flight attempts finish.

mod schedule;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

pub use schedule::next_delay;

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

impl Worker {
    pub async fn run(self, cancel: CancellationToken) {
        let (done_tx, done_rx) = tokio::sync::mpsc::unbounded_channel();
        let recorder = tokio::spawn(record(self.store.clone(), done_rx, self.wake.clone()));
        let slots = Arc::new(Semaphore::new(self.config.concurrency * 4));
        let mut per_system: HashMap<String, Arc<Semaphore>> = HashMap::new();
        let mut tasks: JoinSet<()> = JoinSet::new();
        let this = Arc::new(self);
        loop {
            if cancel.is_cancelled() {
                break;
            }
            let free = slots.available_permits();
            let mut claimed = 0;
            if free > 0 {
                match this.store.claim_due(now_ms(), LEASE_MS, free as i64).await {
                    Ok(jobs) => {
                        claimed = jobs.len();
                        for job in jobs {
                            let Ok(slot) = slots.clone().acquire_owned().await else {
                                break;
                            };
                            let system = per_system
                                .entry(job.bookmark.system.clone())
                                .or_insert_with(|| {
                                    Arc::new(Semaphore::new(this.config.concurrency))
                                })
                                .clone();
                            let this = this.clone();
                            let done = done_tx.clone();
                            tasks.spawn(async move {
                                let _slot = slot;
                                let Ok(_turn) = system.acquire_owned().await else {
                                    return;
                                };
                                let _ = done.send(this.attempt(job).await);
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
            let sleep = match this.store.next_due_ms().await {
                Ok(Some(due)) => Duration::from_millis(
                    (due - now_ms()).clamp(0, IDLE_POLL.as_millis() as i64) as u64,
                ),
                _ => IDLE_POLL,
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

    async fn attempt(&self, job: Job) -> Finished {
        let b = &job.bookmark;
        let delivery = match self.cameras.get(&b.system) {
            Some(system) => system.deliver(&job).await,
            None => Delivery::Retry {
                error: format!(
                    "no camera system \"{}\" in the config; the bookmark waits for it",
                    b.system
                ),
                retry_after: Some(Duration::from_secs(60)),
                maybe_created: job.maybe_created,
            },
        };
        let now = now_ms();
        let outcome = match delivery {
            Delivery::Made { vendor_id, detail } => {
                tracing::info!(event = %job.event.key, system = %b.system, device = %b.device, start_ms = b.start_ms,
                    vendor_id = vendor_id.as_deref().unwrap_or(""), "Bookmark made.");
                Outcome::Made { vendor_id, detail }
            }
            Delivery::Retry {
                error,
                retry_after,
                maybe_created,
            } => {
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
                    // A made bookmark may have pulled rows forward (the store's recovery rule): look now.
                    if batch
                        .iter()
                        .any(|f| matches!(f.outcome, Outcome::Made { .. }))
                    {
                        wake.notify_one();
                    }
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
