//! Outbox workers: claim due bookmark rows, hand each to its camera system, record what happened.
//!
//! Guarantees: a row is worked by one task at a time (the store's lease); the outcome is written before the
//! task lets go; a transient failure reschedules the row by the retry schedule, a permanent one marks it failed
//! with the vendor's words; on shutdown no new row is claimed and in-flight attempts finish.
//! A vendor asking to slow down (429, or 503 with `Retry-After`) is pacing, not failure: its whole lane pauses
//! and the row goes back with its attempt count and schedule step unchanged, so a rate-limited backlog flows
//! at the rate the vendor allows.
//! Each camera system has its own lane ([`lane`]): its concurrency found by how it answers, up to the
//! configured ceiling ([`concurrency`]), and its vendor's published rate kept ([`rate`]). Each lane holds about
//! one limit's worth of claimed rows beyond those in flight, so its next requests go out the moment answers
//! come back rather than after a database round trip; a lane that cannot send (paused, or at its rate) is
//! not claimed for, and rows held through a long pause go back to the outbox.

mod concurrency;
mod failures;
mod lane;
mod rate;
mod schedule;

use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::sync::mpsc::UnboundedSender;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

pub use lane::{LaneView, Lanes};
pub use schedule::next_delay;

use crate::camera::{Cameras, Delivery};
use crate::clock::now_ms;
use crate::config::DeliveryConfig;
use crate::store::{Finished, Job, Outcome, Room, Store, StoreError, StoreHealth};
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
    /// Whose leases this worker's claims are: the daemon instance's name, unique among the daemons sharing a
    /// database (the MQTT client id, which a broker already requires to be unique).
    pub holder: String,
    pub cameras: Cameras,
    pub config: DeliveryConfig,
    /// Rung by ingest after a commit that added bookmarks.
    pub wake: Arc<Notify>,
    /// Each camera system's lane, also shown by the web index.
    pub lanes: Lanes,
    /// Final failures, logged one line per camera system a minute.
    pub failures: std::sync::Mutex<failures::FailureLog>,
    /// Where a failing database is reported, once, by its kind.
    pub health: StoreHealth,
    /// Each attempt's latency, by camera system.
    pub metrics: crate::metrics::Metrics,
}

/// Most attempts in flight across all camera systems; each system also has its own limit.
const MAX_IN_FLIGHT: usize = 1024;
/// Most rows held at once, in flight or claimed and waiting their lane's turn.
const MAX_HELD: usize = 2 * MAX_IN_FLIGHT;
/// Most rows claimed at once of camera systems no longer in the config; each gets its lane as it comes.
const UNCONFIGURED: usize = 8;
/// How often the pauses other daemons were asked for are read: a pause reaches every daemon within this.
const HOLDS_EVERY: Duration = Duration::from_millis(250);
/// Longest a lane's pause may keep rows it has claimed; past it they go back to the outbox until it ends.
const HOLD_THROUGH_PAUSE_MS: i64 = 10_000;

/// Rows claimed by camera system, in the order they are due, waiting for their lane to have room.
type Waiting = HashMap<String, VecDeque<Job>>;

/// What a claim brought back: its rows, the systems it found fewer due rows of than it asked for, and when
/// the next row of those is due.
struct Claimed {
    jobs: Vec<Job>,
    short: Vec<String>,
    next: Option<i64>,
}

/// A claim in progress.
type Claim = Pin<Box<dyn Future<Output = Result<Claimed, StoreError>> + Send>>;

impl Worker {
    pub async fn run(self, cancel: CancellationToken) {
        let (done_tx, done_rx) = tokio::sync::mpsc::unbounded_channel();
        let recorder = tokio::spawn(record(
            self.store.clone(),
            self.holder.clone(),
            done_rx,
            self.wake.clone(),
            self.health.clone(),
        ));
        let mut tasks: JoinSet<()> = JoinSet::new();
        let this = Arc::new(self);
        for system in this.cameras.ids() {
            this.lanes
                .lane(system, this.config.concurrency, Instant::now());
        }
        // Claims run beside the sending: a lane's next rows are in hand before its current ones are answered,
        // so a fast camera system never waits on the database, and one claim takes what many answers freed.
        let mut waiting = Waiting::new();
        let mut claim: Option<Claim> = None;
        // Systems whose last claim came back short of what they asked: the outbox holds nothing due for them,
        // so they are not asked again until something may have added some (a wake-up, or their next row
        // coming due). An attempt ending gives its lane room, not rows.
        let mut dry: HashSet<String> = HashSet::new();
        // Whether the last claim found nothing at all, and whether anything happened since.
        let mut found_nothing = true;
        let mut poked = true;
        let mut next_due: Option<Instant> = None;
        // How long a claim takes to come back, made durable: how far ahead each lane claims.
        let mut claim_time = Duration::from_millis(5);
        let mut claim_began = Instant::now();
        // When the holds other daemons wrote were last read: at most every HOLDS_EVERY, not on every claim,
        // which under load come hundreds a second.
        let mut holds_read: Option<Instant> = None;
        loop {
            if cancel.is_cancelled() {
                break;
            }
            let now = now_ms();
            let instant = Instant::now();
            let look_again = this.send_waiting(&mut waiting, &mut tasks, &done_tx, now, instant);
            // Looking for rows of systems no longer configured reads past every configured system's due
            // rows: only when the outbox had nothing else and something has changed.
            let others = found_nothing && poked;
            if claim.is_none()
                && let Some(room) = this.room(&waiting, tasks.len(), now, &dry, others, claim_time)
            {
                poked = false;
                claim_began = instant;
                let store = this.store.clone();
                let lanes = this.lanes.clone();
                let holder = this.holder.clone();
                let read_holds = holds_read.is_none_or(|at| instant - at >= HOLDS_EVERY);
                if read_holds {
                    holds_read = Some(instant);
                }
                claim = Some(Box::pin(async move {
                    // Pauses other daemons were asked for hold our lanes too: their rows claimed now wait
                    // for the pause's end rather than meet the same 429.
                    if read_holds {
                        lanes.hold(&store.held_systems(now).await?);
                    }
                    let jobs = store.claim_due(&holder, now, LEASE_MS, &room).await?;
                    let short = room.short(&jobs);
                    // When the next row is due of a system that came back short; the others have rows due now,
                    // or no room to take them.
                    let next = match short.is_empty() {
                        true => None,
                        false => {
                            let skip: Vec<String> = room
                                .systems
                                .iter()
                                .map(|(s, _)| s)
                                .filter(|s| !short.contains(s))
                                .cloned()
                                .collect();
                            store.next_due_ms(&skip).await.unwrap_or_default()
                        }
                    };
                    Ok(Claimed { jobs, short, next })
                }));
            }
            let failing = this.failures.lock().map_or(None, |mut f| {
                failures::log(f.due(Some(instant)));
                f.next_due()
            });
            let wake_at = [
                next_due,
                look_again,
                this.lanes.next_resume(now, instant),
                failing,
            ]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(instant + IDLE_POLL)
            .min(instant + IDLE_POLL);
            tokio::select! {
                _ = cancel.cancelled() => break,
                claimed = async { claim.as_mut().expect("guarded").await }, if claim.is_some() => {
                    claim = None;
                    match claimed {
                        Ok(Claimed { jobs, short, next }) => {
                            this.health.answered("delivery");
                            found_nothing = jobs.is_empty();
                            if !found_nothing {
                                claim_time = (claim_time * 3 + claim_began.elapsed()) / 4;
                            }
                            dry.extend(short);
                            let next = next.map(|at| instant + Duration::from_millis((at - now).max(0) as u64));
                            next_due = next_due.into_iter().chain(next).min();
                            for job in jobs {
                                waiting.entry(job.bookmark.system.clone()).or_default().push_back(job);
                            }
                        }
                        Err(e) => {
                            // Tried again in a second.
                            this.health.failed("delivery", &e);
                            tokio::select! {
                                _ = cancel.cancelled() => break,
                                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                            }
                        }
                    }
                }
                _ = this.wake.notified() => {
                    dry.clear();
                    next_due = None;
                    poked = true;
                }
                _ = tokio::time::sleep_until(wake_at) => {
                    dry.clear();
                    next_due = None;
                    poked = true;
                }
                Some(_) = tasks.join_next(), if !tasks.is_empty() => poked = true,
            }
            while tasks.try_join_next().is_some() {}
        }
        // Rows claimed and not sent go back whole, so a restart neither waits out their lease nor doubts them.
        if let Some(claim) = claim.take()
            && let Ok(Claimed { jobs, .. }) = claim.await
        {
            for job in jobs {
                waiting
                    .entry(job.bookmark.system.clone())
                    .or_default()
                    .push_back(job);
            }
        }
        give_back(waiting.drain().flat_map(|(_, q)| q), &done_tx, now_ms());
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
        if let Ok(mut f) = this.failures.lock() {
            failures::log(f.due(None));
        }
        drop(done_tx);
        if let Err(e) = recorder.await {
            tracing::error!(error = %e, "The delivery recorder ended abnormally.");
        }
    }

    /// Sends each lane's waiting rows as far as it has room, and gives back those of a lane paused for long.
    /// Returns when to look again at a lane held by its vendor's pause or rate.
    fn send_waiting(
        self: &Arc<Self>,
        waiting: &mut Waiting,
        tasks: &mut JoinSet<()>,
        done: &UnboundedSender<Finished>,
        now: i64,
        instant: Instant,
    ) -> Option<Instant> {
        let mut look_again: Option<Instant> = None;
        for (system, queue) in waiting.iter_mut() {
            let lane = self.lanes.lane(system, self.config.concurrency, instant);
            if lane.pace.until() > now + HOLD_THROUGH_PAUSE_MS {
                give_back(queue.drain(..), done, now);
                continue;
            }
            let camera = self.cameras.get(system).map(|c| c.as_ref());
            while !queue.is_empty() && tasks.len() < MAX_IN_FLIGHT {
                let (n, again) = lane.room(now, instant, camera, self.config.daemons);
                if n == 0 {
                    look_again = look_again.into_iter().chain(again).min();
                    break;
                }
                let n = n.min(queue.len()).min(MAX_IN_FLIGHT - tasks.len());
                for job in queue.drain(..n) {
                    // Counted from now: the request goes out next.
                    let ticket = lane.start(Instant::now());
                    let (this, lane, done) = (self.clone(), lane.clone(), done.clone());
                    tasks.spawn(async move {
                        let _ = done.send(this.attempt(job, &lane, ticket).await);
                    });
                }
            }
        }
        waiting.retain(|_, queue| !queue.is_empty());
        look_again
    }

    /// What the next claim asks for: each lane what it wants beyond the rows it holds, except lanes whose
    /// system has nothing due, and with `others`, a few rows of systems no longer configured. None when
    /// nothing is to be asked.
    fn room(
        &self,
        waiting: &Waiting,
        in_flight: usize,
        now: i64,
        dry: &HashSet<String>,
        others: bool,
        claim_time: Duration,
    ) -> Option<Room> {
        let held = in_flight + waiting.values().map(VecDeque::len).sum::<usize>();
        let mut free = MAX_HELD.saturating_sub(held);
        let mut room = Room::default();
        for (system, lane) in self.lanes.all() {
            let queued = waiting.get(&system).map_or(0, VecDeque::len);
            let camera = self.cameras.get(&system).map(|c| c.as_ref());
            let n = match dry.contains(&system) {
                true => 0,
                false => lane.wants(now, queued, camera, claim_time).min(free),
            };
            free -= n;
            room.systems.push((system, n));
        }
        if others {
            room.others = free.min(UNCONFIGURED);
        }
        let any = room.others > 0 || room.systems.iter().any(|(_, n)| *n > 0);
        any.then_some(room)
    }

    /// Tells every daemon of this database to leave `system` alone until `until`. Best effort: should the
    /// database not answer, this daemon still holds its own lane, and the others meet the vendor's own 429.
    async fn hold_everywhere(&self, system: &str, until: i64) {
        if let Err(e) = self.store.hold_system(system, until).await {
            self.health.failed("delivery", &e);
        }
    }

    /// One attempt; its answer moves the lane's concurrency, and a vendor asking to wait pauses the lane.
    async fn attempt(&self, job: Job, lane: &Lane, ticket: Ticket) -> Finished {
        let b = &job.bookmark;
        let pace = &lane.pace;
        let sent = Instant::now();
        let delivery = match self.cameras.get(&b.system) {
            Some(system) => {
                let delivery = system.deliver(&job).await;
                self.metrics.delivered(&b.system, sent.elapsed());
                delivery
            }
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
                    let until = now + after.as_millis() as i64;
                    pace.hold(until);
                    self.hold_everywhere(&b.system, until).await;
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
                self.hold_everywhere(&b.system, until).await;
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
                if let Ok(mut f) = self.failures.lock() {
                    let failure = failures::Failure {
                        system: b.system.clone(),
                        event: job.event.key.to_string(),
                        device: b.device.clone(),
                        error: error.clone(),
                    };
                    failures::log(f.failed(failure, Instant::now()));
                }
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

/// Hands claimed rows that were never sent back to the outbox as they were.
fn give_back(jobs: impl IntoIterator<Item = Job>, done: &UnboundedSender<Finished>, now: i64) {
    for job in jobs {
        let _ = done.send(Finished {
            bookmark_id: job.bookmark.id,
            outcome: Outcome::Unsent,
            at_ms: now,
        });
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
    holder: String,
    mut done: tokio::sync::mpsc::UnboundedReceiver<Finished>,
    wake: Arc<Notify>,
    health: StoreHealth,
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
            match store.finish(&holder, &batch).await {
                Ok(sooner) => {
                    health.answered("delivery");
                    // Due times changed: a retry rescheduled, a claim given back, or a made bookmark pulling its
                    // system's waiting rows forward (the store's recovery rule). Look again; bookmarks only
                    // made change nothing there.
                    if sooner {
                        wake.notify_one();
                    }
                    break;
                }
                Err(e) => {
                    health.failed("delivery", &e);
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            }
        }
        batch.clear();
    }
}
