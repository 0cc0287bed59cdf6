//! The search indexer: puts what ingest stored into the search indexes a moment later, in transactions of its
//! own, so that ingest's transactions pay for the events and their bookmarks only. Until it has, a search reads
//! the events it has not indexed from the events table (see `push_search` in src/store/sqlite.rs), so a
//! just-stored event is found at once, and the events list says how many wait.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::store::{Store, StoreHealth};

/// How far behind ingest the indexer looks: events stored within a tick are indexed together.
const TICK: Duration = Duration::from_millis(250);

/// Events a transaction indexes: one takes the single writer connection for about 30 ms (trigram and gram
/// tokens cost some 60 µs an event), a wait that neither ingest nor delivery's claims notice; the fsync it adds
/// is a few percent of the step.
pub const STEP: i64 = 500;

/// The rate of arrivals that means ingest is working through a burst (a chain's registers send a few hundred
/// events a second at their busiest): every millisecond of the writer goes to ingest then.
///
/// The signal is the newest event's sequence number, read each tick and after each step: how fast it grows is
/// the rate ingest commits at, whatever its batches. Ingest needs no handle to tell the indexer anything, and a
/// burst is seen however it is batched.
const BURST_PER_SECOND: f64 = 2_000.0;

/// The longest the indexer waits out a burst before it takes one step anyway: a burst that never ends still
/// leaves the indexes only a little further behind at each step, not frozen.
const LONGEST_WAIT: Duration = Duration::from_secs(10);

/// Indexes events until `cancel`; a step in progress commits first.
pub async fn run(store: Arc<dyn Store>, health: StoreHealth, cancel: CancellationToken) {
    let mut every = tokio::time::interval(TICK);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut mark: Option<(Instant, i64)> = None;
    let mut waited_since = Instant::now();
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = every.tick() => {}
        }
        let Some(now) = newest(&*store, &health).await else {
            continue;
        };
        let bursting = mark.is_some_and(|before| burst(before, now));
        mark = Some(now);
        if bursting && waited_since.elapsed() < LONGEST_WAIT {
            continue;
        }
        waited_since = Instant::now();
        // Catch up, a step at a time, until done, stopped, or a burst begins.
        loop {
            match store.index_search(STEP).await {
                Ok(n) if n < STEP as u64 => {
                    health.answered("search index");
                    break;
                }
                Ok(_) => health.answered("search index"),
                Err(e) => {
                    // Tried again at the next tick; searches still find every event meanwhile.
                    health.failed("search index", &e);
                    break;
                }
            }
            if cancel.is_cancelled() || bursting {
                break;
            }
            let Some(now) = newest(&*store, &health).await else {
                break;
            };
            let before = mark.replace(now);
            if before.is_some_and(|before| burst(before, now)) {
                break;
            }
        }
    }
}

/// When the newest event's sequence number was read, and what it was.
async fn newest(store: &dyn Store, health: &StoreHealth) -> Option<(Instant, i64)> {
    match store.newest_seq().await {
        Ok(seq) => Some((Instant::now(), seq)),
        Err(e) => {
            // The search index waits for the next tick.
            health.failed("search index", &e);
            None
        }
    }
}

/// Whether events arrived between two readings at a burst's rate. A span shorter than a tick counts as a tick,
/// so that a few events right after a step are not a burst.
fn burst((then, before): (Instant, i64), (now, after): (Instant, i64)) -> bool {
    let span = now.duration_since(then).max(TICK).as_secs_f64();
    (after - before) as f64 >= BURST_PER_SECOND * span
}
