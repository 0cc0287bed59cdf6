//! Outbox workers: claim due bookmark rows, hand each to its camera system, record what happened.
//!
//! Guarantees: a row is worked by one task at a time (the store's lease); the outcome is written before the
//! task lets go; a transient failure reschedules the row by the retry schedule, a permanent one marks it failed
//! with the vendor's words; on shutdown no new row is claimed and in-flight attempts finish.
//! A vendor asking to slow down (429, or 503 with `Retry-After`) is pacing, not failure: its whole lane pauses
//! and the row goes back with its attempt count and schedule step unchanged, so a rate-limited backlog flows
//! at the rate the vendor allows.
//! Each camera system has its own lane ([`lane`]): its concurrency found by how it answers, up to the
//! configured ceiling ([`concurrency`]), and its vendor's published rate kept ([`rate`]). Rows are claimed only
//! as far as each lane has room, so no row waits in memory on a busy system while holding a lease.

mod concurrency;
mod lane;
mod rate;
mod schedule;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

pub use lane::{LaneView, Lanes};
pub use schedule::next_delay;

use crate::camera::{Cameras, Delivery};
use crate::clock::now_ms;
use crate::config::DeliveryConfig;
use crate::store::{Finished, Job, Outcome, Room, Store};
use concurrency::{Answer, Ticket};
use lane::Lane;

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
    /// Each camera system's lane, also shown by the web index.
    pub lanes: Lanes,
}

/// Most attempts in flight across all camera systems; each system also has its own limit.
const MAX_IN_FLIGHT: usize = 1024;
/// Most rows claimed at once of camera systems no longer in the config; each gets its lane as it comes.
const UNCONFIGURED: usize = 8;

impl Worker {
    pub async fn run(self, cancel: CancellationToken) {
        let (done_tx, done_rx) = tokio::sync::mpsc::unbounded_channel();
        let recorder = tokio::spawn(record(self.store.clone(), done_rx, self.wake.clone()));
        let mut tasks: JoinSet<()> = JoinSet::new();
        let this = Arc::new(self);
        // Whether the last look claimed anything.
        let mut flowing = false;
        for system in this.cameras.ids() {
            this.lanes
                .lane(system, this.config.concurrency, Instant::now());
        }
        loop {
            if cancel.is_cancelled() {
                break;
            }
            let now = now_ms();
            let instant = Instant::now();
            // Each lane takes what it has room for now; one held by its vendor's pause or rate is left out of
            // the claim, and looked at again when that ends.
            let mut free = MAX_IN_FLIGHT.saturating_sub(tasks.len());
            let mut room = Room::default();
            let mut skip = Vec::new();
            let mut look_again: Option<Instant> = None;
            for (system, lane) in this.lanes.all() {
                let (n, again) =
                    lane.room(now, instant, this.cameras.get(&system).map(|c| c.as_ref()));
                let n = n.min(free);
                free -= n;
                if n == 0 {
                    skip.push(system.clone());
                }
                look_again = look_again.into_iter().chain(again).min();
                room.systems.push((system, n));
            }
            // Looking for them reads past every configured system's due rows: not while a backlog is flowing.
            if !flowing {
                room.others = free.min(UNCONFIGURED);
            }
            let claimed = match this.store.claim_due(now, LEASE_MS, &room).await {
                Ok(jobs) => {
                    let claimed = jobs.len();
                    for job in jobs {
                        let lane =
                            this.lanes
                                .lane(&job.bookmark.system, this.config.concurrency, instant);
                        // Counted from now, after the claim: the request goes out next, not when the loop began.
                        let ticket = lane.start(Instant::now());
                        let this = this.clone();
                        let done = done_tx.clone();
                        tasks.spawn(async move {
                            let _ = done.send(this.attempt(job, &lane, ticket).await);
                        });
                    }
                    claimed
                }
                Err(e) => {
                    tracing::warn!(error = %e, "Could not read the bookmark outbox; trying again in a second.");
                    tokio::select! {
                        _ = cancel.cancelled() => break,
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    }
                    continue;
                }
            };
            while tasks.try_join_next().is_some() {}
            flowing = claimed > 0;
            if flowing {
                continue;
            }
            // Sleep until the next row of a lane with room is due, a held lane may go again, or an attempt ends.
            let due: Option<i64> = this.store.next_due_ms(&skip).await.unwrap_or_default();
            let due = due.map(|at| instant + Duration::from_millis((at - now).max(0) as u64));
            let wake_at = [due, look_again]
                .into_iter()
                .flatten()
                .min()
                .unwrap_or(instant + IDLE_POLL)
                .min(instant + IDLE_POLL);
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = this.wake.notified() => {}
                _ = tokio::time::sleep_until(wake_at) => {}
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

    /// One attempt; its answer moves the lane's concurrency, and a vendor asking to wait pauses the lane.
    async fn attempt(&self, job: Job, lane: &Lane, ticket: Ticket) -> Finished {
        let b = &job.bookmark;
        let pace = &lane.pace;
        let sent = Instant::now();
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
        let answer = match delivery {
            Delivery::Made { .. } | Delivery::Failed { .. } => Answer::Good(sent.elapsed()),
            Delivery::Retry { .. } | Delivery::Paced { .. } => Answer::Overloaded,
        };
        lane.finished(Instant::now(), ticket, answer);
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
