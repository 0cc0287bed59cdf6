//! Exception rules: `[[rules]]` matched against events as they are stored, each match an *exception* kept in
//! the store (one per rule and event), listed on its own page and beside its event.
//!
//! What it guarantees:
//! - One stored event is judged against the events stored before it, read from the store ([`kinds`]): the
//!   events table is the rules' only state, so a restart or a second daemon changes nothing, and
//!   [`backtest`] walking history "as of" each event produces what live matching produced, by construction.
//! - Live matching trails ingest ([`run`]), like the search indexer, in transactions of its own: intake's speed
//!   is untouched. Each event waits in the store's backlog until the step that judged it commits, with its
//!   exceptions and the bookmark rows `bookmark = true` asks for: a crash judges it again, never skips it, and
//!   judging again doubles nothing.
//! - A pair split by the network (a sale, then its void arriving an hour later from a register that was
//!   offline) is found whichever of the two is stored second.
//! - The rule set follows the config file ([`watch`]): a valid change is swapped in, an invalid one is reported
//!   and the rules running stay.

mod kinds;
mod reason;
#[cfg(test)]
mod tests;
mod watch;

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, RuleConfig, Watchers};
use crate::store::{EventRecord, NewException, RuleResults, Store, StoreError, StoreHealth};

pub use reason::{Place, Reason, english_why, why_text};
pub use watch::watch;

/// The running rule set: swapped whole when the config file changes.
pub type Rules = Arc<ArcSwap<Vec<RuleConfig>>>;

/// A rule's finding: the event it is on (not always the one being judged: a `sequence` pair found from its
/// first event is the later one's exception) and why.
#[derive(Debug, Clone)]
pub struct Hit {
    pub event: EventRecord,
    pub why: Reason,
}

impl Hit {
    fn on(event: &EventRecord, why: Reason) -> Hit {
        Hit {
            event: event.clone(),
            why,
        }
    }
}

/// Count per 100 sales; none without sales.
pub fn per_100(count: i64, sales: i64) -> Option<f64> {
    (sales > 0).then(|| count as f64 * 100.0 / sales as f64)
}

/// Whether a cashier's rate stands out from the others' by `factor`: the cashiers chart's comparison.
pub fn stands_out(rate: Option<f64>, others: Option<f64>, factor: f64) -> bool {
    matches!((rate, others), (Some(r), Some(o)) if r > 0.0 && r >= o * factor)
}

/// What `rule` finds for `event`, judged against the events stored before it. A rule for other stores finds
/// nothing.
pub async fn evaluate(
    store: &dyn Store,
    config: &Config,
    rule: &RuleConfig,
    event: &EventRecord,
) -> Result<Vec<Hit>, StoreError> {
    if !rule.applies_to(&event.store) {
        return Ok(Vec::new());
    }
    kinds::check(store, config, rule, event).await
}

/// Events one step judges: a step's reads are a few indexed lookups per rule and event, and its one write
/// transaction is short.
pub const STEP: i64 = 200;

/// How long after its arrival an event is judged. On PostgreSQL two daemons' ingest transactions may commit
/// out of sequence order; waiting this long lets an event stored a moment before another be in the store when
/// the later one is judged, so "stored before" means what it says.
pub const SETTLE_MS: i64 = 2_000;

/// How often the evaluator looks at the backlog.
const TICK: Duration = Duration::from_millis(500);

/// Judges up to [`STEP`] events of the backlog received by `now_ms - SETTLE_MS` with `rules`, and records what
/// they found in one transaction. Returns how many events it judged and how many bookmark rows it added.
pub async fn step(
    store: &dyn Store,
    config: &Config,
    watchers: &Watchers,
    rules: &[RuleConfig],
    now_ms: i64,
) -> Result<(usize, usize), StoreError> {
    let events = store.rule_backlog(now_ms - SETTLE_MS, STEP).await?;
    let mut results = RuleResults::default();
    for event in &events {
        results.looked_at.push(event.seq);
        for rule in rules {
            for hit in evaluate(store, config, rule, event).await? {
                if rule.bookmark && !hit.event.flagged {
                    results.bookmarks.extend(
                        watchers
                            .cameras(&hit.event.store, &hit.event.register)
                            .iter()
                            .filter_map(|&i| config.cameras.get(i))
                            .map(|c| {
                                (
                                    hit.event.seq,
                                    crate::ingest::plan::bookmark_for(c, hit.event.at_ms),
                                )
                            }),
                    );
                }
                results.found.push(NewException {
                    rule: rule.id.clone(),
                    event_seq: hit.event.seq,
                    severity: rule.severity,
                    why: hit.why.stored(),
                });
            }
        }
    }
    if !events.is_empty() {
        let new = store.record_rule_results(&results, now_ms).await?;
        if new > 0 {
            tracing::debug!(
                exceptions = new,
                "Rules found exceptions; the exceptions page lists them."
            );
        }
    }
    Ok((events.len(), results.bookmarks.len()))
}

/// Judges stored events with the rules in force until `cancel`; a step in progress commits first. Bookmark
/// rows a rule adds wake delivery.
pub async fn run(
    store: Arc<dyn Store>,
    config: Arc<Config>,
    rules: Rules,
    wake: Arc<Notify>,
    health: StoreHealth,
    cancel: CancellationToken,
) {
    let watchers = Watchers::new(&config);
    let mut every = tokio::time::interval(TICK);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = every.tick() => {}
        }
        loop {
            let current = rules.load();
            match step(
                &*store,
                &config,
                &watchers,
                &current,
                crate::clock::now_ms(),
            )
            .await
            {
                Ok((judged, bookmarks)) => {
                    health.answered("rules");
                    if bookmarks > 0 {
                        wake.notify_one();
                    }
                    if judged < STEP as usize || cancel.is_cancelled() {
                        break;
                    }
                }
                Err(e) => {
                    // Tried again at the next tick: the events wait in the backlog.
                    health.failed("rules", &e);
                    break;
                }
            }
        }
    }
}

/// A match the back-test reports.
#[derive(Debug, Clone, PartialEq)]
pub struct Backtested {
    pub event_seq: i64,
    pub why: Reason,
}

/// Events a back-test reads at a time.
const BACKTEST_PAGE: i64 = 500;

/// The matches `rule` would have made among the events at or after `since_ms`, walking them in the order they
/// were stored and judging each against what was stored before it, exactly as live matching does; one per
/// event (the first found), as the store keeps them.
pub async fn backtest(
    store: &dyn Store,
    config: &Config,
    rule: &RuleConfig,
    since_ms: i64,
) -> Result<Vec<(Backtested, EventRecord)>, StoreError> {
    let mut found: Vec<(Backtested, EventRecord)> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut after = 0;
    loop {
        let events = store
            .events_stored_since(since_ms, after, BACKTEST_PAGE)
            .await?;
        let Some(last) = events.last() else {
            break;
        };
        after = last.seq;
        for event in &events {
            for hit in evaluate(store, config, rule, event).await? {
                if seen.insert(hit.event.seq) {
                    found.push((
                        Backtested {
                            event_seq: hit.event.seq,
                            why: hit.why,
                        },
                        hit.event,
                    ));
                }
            }
        }
        if (events.len() as i64) < BACKTEST_PAGE {
            break;
        }
    }
    Ok(found)
}

/// A moment on its store's clock, with the zone's abbreviation: `2026-11-21 18:42:07 JST`. A store missing
/// from the config reads in UTC, and says so.
pub fn local_time(config: &Config, store: &str, at_ms: i64) -> String {
    use chrono::TimeZone;
    let zone = config.store(store).map_or(chrono_tz::UTC, |s| s.timezone);
    chrono::DateTime::from_timestamp_millis(at_ms).map_or_else(
        || at_ms.to_string(),
        |t| {
            zone.from_utc_datetime(&t.naive_utc())
                .format("%Y-%m-%d %H:%M:%S %Z")
                .to_string()
        },
    )
}
