//! What `/metrics` tells Prometheus (served by [`crate::web::metrics`] when `[metrics]` asks for it): what the
//! daemon's stages count as they work (intake outcomes, messages waiting to be written, each camera system's
//! request latency; store errors as [`StoreHealth`] counts them), and what is read at each scrape (bookmarks
//! pending and failed, dead letters, each lane's concurrency limit).
//!
//! What the database holds is read from it at scrape time, never tallied in memory: a tally would drift from the
//! rows after `tillmark retry-failed`, a purge or a dismissal, and would be wrong for every daemon but one once
//! several share a database. The names are an interface: the sample alert rules
//! (`contrib/prometheus/tillmark-alerts.yml`) and people's dashboards use them, and a test checks that every
//! name the rules use is exported.

use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::delivery::Lanes;
use crate::store::{ErrorKind, IntakeOutcome, Store, StoreError, StoreHealth, StoreScope};

/// The `Content-Type` of what [`Metrics::render`] writes: Prometheus's text exposition format 0.0.4, which
/// every Prometheus and every agent that scrapes like it (VictoriaMetrics, Grafana Alloy) reads.
pub use prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct System {
    system: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Outcome {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Kind {
    kind: &'static str,
}

/// Seconds, from a store NVR's few milliseconds on the LAN to past the default request timeout (10 s).
const LATENCY_BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

type Latency = Family<System, Histogram, fn() -> Histogram>;

/// The instruments the daemon counts into; clones share them.
#[derive(Clone)]
pub struct Metrics {
    intake: Family<Outcome, Counter>,
    waiting: Gauge,
    latency: Latency,
}

impl Default for Metrics {
    fn default() -> Self {
        let intake = Family::<Outcome, Counter>::default();
        // Every outcome from the start, at zero: a series that appears only at its first increment hides that
        // increment from `increase()`, so the first dead letter would never raise an alert.
        for outcome in ["stored", "duplicate", "dead_letter"] {
            intake.get_or_create(&Outcome { outcome }).inc_by(0);
        }
        Metrics {
            intake,
            waiting: Gauge::default(),
            latency: Family::new_with_constructor(|| Histogram::new(LATENCY_BUCKETS)),
        }
    }
}

/// Why a scrape could not be answered.
#[derive(Debug, thiserror::Error)]
pub enum ScrapeError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("could not write the metrics: {0}")]
    Encode(#[from] std::fmt::Error),
}

impl Metrics {
    /// A message's batch committed and this is what became of it.
    pub fn committed(&self, outcome: &IntakeOutcome) {
        let outcome = match outcome {
            IntakeOutcome::Stored { .. } => "stored",
            IntakeOutcome::Duplicate => "duplicate",
            // A reused id with other content is kept as a dead letter, like a malformed message.
            IntakeOutcome::DeadLettered | IntakeOutcome::Reused { .. } => "dead_letter",
        };
        self.intake.get_or_create(&Outcome { outcome }).inc();
    }

    /// Messages received and not yet committed: raised as intake hands a message to the writer, lowered once
    /// its batch has committed.
    pub fn waiting(&self) -> &Gauge {
        &self.waiting
    }

    /// One attempt's requests to `system` took `took`, whatever they ended in.
    pub fn delivered(&self, system: &str, took: Duration) {
        self.latency
            .get_or_create(&System {
                system: system.to_string(),
            })
            .observe(took.as_secs_f64());
    }

    /// The exposition of everything, reading the store for what it holds now. `systems` are the configured
    /// camera systems: each has its series from the start, at zero, so a rule can tell "none pending" from
    /// "not reported".
    pub async fn render(
        &self,
        store: &dyn Store,
        (lanes, health): (&Lanes, &StoreHealth),
        receiving: bool,
        systems: &[String],
    ) -> Result<String, ScrapeError> {
        let stats = store.system_stats().await?;
        let counts = store.counts(&StoreScope::All).await?;

        let pending = Family::<System, Gauge>::default();
        let failed = Family::<System, Gauge>::default();
        for system in systems {
            let label = System {
                system: system.clone(),
            };
            pending.get_or_create(&label).set(0);
            failed.get_or_create(&label).set(0);
            let _made = self.latency.get_or_create(&label);
        }
        for s in stats {
            let label = System { system: s.system };
            pending.get_or_create(&label).set(s.pending);
            failed.get_or_create(&label).set(s.failed);
        }
        let store_errors = Family::<Kind, Counter>::default();
        for kind in ERROR_KINDS {
            store_errors
                .get_or_create(&Kind {
                    kind: kind.as_str(),
                })
                .inc_by(0);
        }
        for (kind, n) in health.errors() {
            store_errors
                .get_or_create(&Kind {
                    kind: kind.as_str(),
                })
                .inc_by(n);
        }
        let limits = Family::<System, Gauge>::default();
        for (system, lane) in lanes.all() {
            limits
                .get_or_create(&System { system })
                .set(lane.view().limit as i64);
        }

        let mut registry = Registry::with_prefix("tillmark");
        registry.register(
            "intake_messages",
            "Messages received and committed, by what became of them: stored as an event, a duplicate of a stored \
             one, or a dead letter",
            self.intake.clone(),
        );
        registry.register(
            "intake_waiting_messages",
            "Messages received and not yet committed to the database (not yet acknowledged)",
            self.waiting.clone(),
        );
        registry.register(
            "mqtt_receiving",
            "1 while events can arrive: connected to the broker with the subscription in place, or the embedded \
             listener up",
            gauge(i64::from(receiving)),
        );
        if let Some(ms) = counts.last_received_ms {
            let received = Gauge::<f64, AtomicU64>::default();
            received.set(ms as f64 / 1000.0);
            registry.register(
                "last_event_received_timestamp_seconds",
                "When the newest stored event was received, in seconds since the epoch",
                received,
            );
        }
        registry.register(
            "bookmarks_pending",
            "Bookmarks waiting to be made, by camera system",
            pending,
        );
        registry.register(
            "bookmarks_failed",
            "Bookmarks that failed for good (bad credentials, unknown camera) until `tillmark retry-failed`, by \
             camera system",
            failed,
        );
        registry.register(
            "delivery_latency_seconds",
            "How long each delivery attempt's requests to the camera system took, by camera system",
            self.latency.clone(),
        );
        registry.register(
            "delivery_concurrency_limit",
            "Requests the camera system's lane may have in flight now, as its adaptive limit found",
            limits,
        );
        registry.register(
            "dead_letters",
            "Rejected messages in the dead-letter list, not dismissed",
            gauge(counts.dead_letters),
        );
        registry.register(
            "store_errors",
            "Database operations of the daemon's own work (intake, delivery, the search index, health checks, scrapes) that failed, by kind of error",
            store_errors,
        );
        let mut text = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut text, &registry)?;
        Ok(text)
    }
}

/// A gauge of a value read for this scrape.
fn gauge(value: i64) -> Gauge {
    let gauge = Gauge::default();
    gauge.set(value);
    gauge
}

/// Every kind of store error, so each has its series from the start, at zero (see [`Metrics::default`] for
/// why); a test holds the list to the enum.
const ERROR_KINDS: [ErrorKind; 4] = [
    ErrorKind::Unavailable,
    ErrorKind::Full,
    ErrorKind::Conflict,
    ErrorKind::Corrupt,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_of_store_error_is_listed() {
        // A new kind fails to compile here until it is in the list.
        let listed = |kind: ErrorKind| match kind {
            ErrorKind::Unavailable | ErrorKind::Full | ErrorKind::Conflict | ErrorKind::Corrupt => {
                ERROR_KINDS.contains(&kind)
            }
        };
        assert!(ERROR_KINDS.into_iter().all(listed));
    }

    #[tokio::test]
    async fn a_store_error_shows_in_the_scrape_under_its_kind_and_the_others_at_zero() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("m.db").display());
        let store = crate::store::open(&url).await.unwrap();
        let health = StoreHealth::default();
        health.failed(
            "ingest",
            &StoreError::Invalid("a stored value this build cannot read".into()),
        );
        let text = Metrics::default()
            .render(&*store, (&Lanes::default(), &health), true, &["nvr".into()])
            .await
            .unwrap();
        for line in [
            "# TYPE tillmark_store_errors_total counter",
            "tillmark_store_errors_total{kind=\"corrupt\"} 1",
            "tillmark_store_errors_total{kind=\"full\"} 0",
            "tillmark_bookmarks_pending{system=\"nvr\"} 0",
            "tillmark_mqtt_receiving 1",
        ] {
            assert!(text.lines().any(|l| l == line), "no {line} in:\n{text}");
        }
    }
}
