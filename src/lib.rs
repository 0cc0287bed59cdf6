//! tillmark: cash-register events over MQTT become bookmarks on the store's camera recordings, and a web index
//! leads from any flagged event to its footage.
//!
//! The flow (each stage a module): [`ingest`] (MQTT) → [`store`] (events and the bookmark outbox, one
//! transaction) → [`delivery`] (outbox workers) → [`camera`] (vendor APIs); [`web`] reads the store.
//! This file wires them from a [`config::Config`] and shuts them down in order.

pub mod accounts;
pub mod alerts;
pub mod camera;
pub mod cli;
pub mod clock;
pub mod config;
pub mod delivery;
pub mod event;
pub mod evidence;
pub mod indexer;
pub mod ingest;
pub mod metrics;
pub mod money;
pub mod retention;
pub mod rules;
pub mod secret;
pub mod simulate;
pub mod store;
pub mod tls;
pub mod totp;
pub mod web;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::{BrokerUrl, Config};
use crate::store::Store;

/// The installation key behind the digest that keeps apart identifiers whose masked forms are alike. Its
/// name is fixed: another key would give a redelivered event another id.
pub const ID_KEY: &str = "identifier-digest";

/// A running daemon. Dropping it without [`Daemon::shutdown`] leaves its tasks running.
pub struct Daemon {
    ingest: ingest::Ingest,
    delivery: JoinHandle<()>,
    delivery_cancel: CancellationToken,
    web: JoinHandle<()>,
    web_cancel: CancellationToken,
    watcher: JoinHandle<()>,
    watch_cancel: CancellationToken,
    housekeeping: JoinHandle<()>,
    housekeeping_cancel: CancellationToken,
    indexer: JoinHandle<()>,
    indexer_cancel: CancellationToken,
    /// The rules' evaluator and the config file's watcher.
    rules: JoinHandle<()>,
    rules_cancel: CancellationToken,
    /// The alert sender, when the config has `[[alerts]]`; it trails the rules and stops with them.
    alerts: Option<JoinHandle<()>>,
    store: Arc<dyn Store>,
    web_addr: SocketAddr,
    /// `/metrics`'s own listener and its server, when `[metrics] listen` asks for one; it stops with the web
    /// index.
    metrics_addr: Option<SocketAddr>,
    metrics_server: Option<JoinHandle<()>>,
    broker: BrokerUrl,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Alerts(#[from] alerts::AlertError),
    #[error(transparent)]
    Broker(#[from] ingest::BrokerError),
    #[error("cannot open the database {url}: {source}")]
    Store {
        url: String,
        source: store::StoreError,
    },
    /// Its camera systems do not fit the vendor definitions they name (`camera::check_site`).
    #[error("{0}")]
    Site(config::ConfigErrors),
    #[error(transparent)]
    Camera(#[from] camera::BuildError),
    #[error(
        "cannot serve the web index on {addr}: {source}. Choose another address with `[web] listen`."
    )]
    Web {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(
        "cannot serve metrics on {addr}: {source}. Choose another address with `[metrics] listen`."
    )]
    Metrics {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(
        "cannot serve HTTPS with [web] tls_cert {cert} and tls_key {key}: {source}. They must be a PEM certificate chain and its private key."
    )]
    Tls {
        cert: std::path::PathBuf,
        key: std::path::PathBuf,
        source: std::io::Error,
    },
}

impl Daemon {
    pub async fn start(config: Config) -> Result<Daemon, StartError> {
        Daemon::start_from(config, None).await
    }

    /// Starts from `config`, read from `file` when given: the file is then watched, and its `[[rules]]`
    /// follow it without a restart.
    pub async fn start_from(
        config: Config,
        file: Option<std::path::PathBuf>,
    ) -> Result<Daemon, StartError> {
        let config = Arc::new(config);
        // Before anything opens: a config the definitions refuse starts nothing, as when the file itself is bad.
        let integrations = camera::Integrations::load(&config.integrations.dir);
        camera::check_site(&config, &integrations.snapshot())
            .map_err(|errors| StartError::Site(config::ConfigErrors { file: None, errors }))?;
        let store =
            store::open(&config.database.url)
                .await
                .map_err(|source| StartError::Store {
                    url: config.database.url.clone(),
                    source,
                })?;
        if store.users().await.is_ok_and(|u| u.is_empty()) {
            tracing::warn!("{}", cli::NO_USERS.trim_end());
        }
        let released = store
            .release_orphaned_claims(&config.mqtt.client_id)
            .await
            .map_err(|source| StartError::Store {
                url: config.database.url.clone(),
                source,
            })?;
        if released > 0 {
            tracing::info!(
                released,
                "Picked up bookmarks a previous run had in flight; each is checked before it is created again."
            );
        }
        let cameras = camera::Cameras::build(&config, &integrations)?;
        for sys in &config.camera_systems {
            let name = sys.integration.name();
            if integrations.get(name).is_none() {
                tracing::warn!(system = %sys.id, integration = %name, dir = %config.integrations.dir.display(),
                    "No valid definition for this camera system; its bookmarks wait until one appears.");
            }
        }
        let watch_cancel = CancellationToken::new();
        let watcher = tokio::spawn(integrations.clone().watch(watch_cancel.clone()));
        let housekeeping_cancel = CancellationToken::new();
        let housekeeping = tokio::spawn(housekeeping(
            config.clone(),
            store.clone(),
            housekeeping_cancel.clone(),
        ));
        let indexer_cancel = CancellationToken::new();
        let health = store::StoreHealth::default();
        let indexer = tokio::spawn(indexer::run(
            store.clone(),
            health.clone(),
            indexer_cancel.clone(),
        ));

        let source = ingest::Source::open(&config.mqtt).await?;
        let broker = source.url().clone();

        let listener = tokio::net::TcpListener::bind(config.web.listen)
            .await
            .map_err(|source| StartError::Web {
                addr: config.web.listen,
                source,
            })?;
        let web_addr = listener.local_addr().map_err(|source| StartError::Web {
            addr: config.web.listen,
            source,
        })?;
        let tls = match &config.web.tls {
            Some(files) => Some(
                axum_server::tls_rustls::RustlsConfig::from_pem_file(&files.cert, &files.key)
                    .await
                    .map_err(|source| StartError::Tls {
                        cert: files.cert.clone(),
                        key: files.key.clone(),
                        source,
                    })?,
            ),
            None => None,
        };
        let scheme = if tls.is_some() { "https" } else { "http" };
        let web_cancel = CancellationToken::new();
        let intake = ingest::Status::default();
        let lanes = delivery::Lanes::default();
        let metrics = metrics::Metrics::default();
        let state = web::AppState {
            store: store.clone(),
            config: config.clone(),
            intake: intake.clone(),
            integrations: integrations.clone(),
            cameras: cameras.clone(),
            lanes: lanes.clone(),
            health: health.clone(),
            metrics: metrics.clone(),
        };
        let (metrics_addr, metrics_server) = match &config.metrics {
            config::MetricsConfig::Listener { listen, .. } => {
                let failed = |source| StartError::Metrics {
                    addr: *listen,
                    source,
                };
                let listener = tokio::net::TcpListener::bind(listen)
                    .await
                    .map_err(failed)?;
                let addr = listener.local_addr().map_err(failed)?;
                let server = tokio::spawn({
                    let (state, cancel) = (state.clone(), web_cancel.clone());
                    async move {
                        if let Err(e) = web::metrics::serve(listener, state, cancel).await {
                            tracing::error!(error = %e, "The metrics listener stopped.");
                        }
                    }
                });
                tracing::info!(url = %format!("http://{addr}/metrics"), "Metrics listening.");
                (Some(addr), Some(server))
            }
            _ => (None, None),
        };
        let web = tokio::spawn({
            let cancel = web_cancel.clone();
            async move {
                if let Err(e) = web::serve(listener, tls, state, cancel).await {
                    tracing::error!(error = %e, "The web index stopped.");
                }
            }
        });
        tracing::info!(url = %format!("{scheme}://{web_addr}/"), "Web index listening.");

        let wake = Arc::new(Notify::new());
        let delivery_cancel = CancellationToken::new();
        let worker = delivery::Worker {
            store: store.clone(),
            holder: config.mqtt.client_id.clone(),
            cameras,
            config: config.delivery.clone(),
            wake: wake.clone(),
            lanes,
            failures: Default::default(),
            health: health.clone(),
            metrics: metrics.clone(),
        };
        let delivery = tokio::spawn(worker.run(delivery_cancel.clone()));
        let rules_cancel = CancellationToken::new();
        let rule_set: rules::Rules =
            Arc::new(arc_swap::ArcSwap::from_pointee(config.rules.clone()));
        if let Some(file) = file {
            tokio::spawn(rules::watch(
                file,
                config.clone(),
                rule_set.clone(),
                rules_cancel.clone(),
            ));
        }
        let rules = tokio::spawn(rules::run(
            store.clone(),
            config.clone(),
            rule_set,
            wake.clone(),
            health.clone(),
            rules_cancel.clone(),
        ));
        let alerts = if config.alerts.is_empty() {
            None
        } else {
            let alerter = alerts::Alerter::new(
                store.clone(),
                config.clone(),
                config.mqtt.client_id.clone(),
                clock::now_ms(),
            )?;
            Some(tokio::spawn(alerts::run(
                alerter,
                health.clone(),
                rules_cancel.clone(),
            )))
        };
        tokio::spawn(expedite_on_new_definitions(
            config.clone(),
            integrations.clone(),
            store.clone(),
            wake.clone(),
            watch_cancel.clone(),
        ));
        let id_key = store
            .installation_key(ID_KEY)
            .await
            .map_err(|source| StartError::Store {
                url: config.database.url.clone(),
                source,
            })?;
        let ingest = ingest::start(
            config.clone(),
            source,
            store.clone(),
            id_key,
            wake,
            (intake, health),
            metrics,
        );
        Ok(Daemon {
            ingest,
            delivery,
            delivery_cancel,
            web,
            web_cancel,
            watcher,
            watch_cancel,
            housekeeping,
            housekeeping_cancel,
            indexer,
            indexer_cancel,
            rules,
            rules_cancel,
            alerts,
            store,
            web_addr,
            metrics_addr,
            metrics_server,
            broker,
        })
    }

    pub fn web_addr(&self) -> SocketAddr {
        self.web_addr
    }

    /// Where `/metrics` has a listener of its own (`[metrics] listen`), if it has.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// Connected to the broker with the subscription in place, or the embedded listener is up.
    pub fn receiving(&self) -> bool {
        self.ingest.status.receiving()
    }

    /// The broker registers publish to (the embedded listener's `mqtt://` or `mqtts://` address when it runs).
    pub fn broker(&self) -> &BrokerUrl {
        &self.broker
    }

    /// Stops in order: intake (what arrived is written and acknowledged), then delivery (in-flight attempts
    /// finish), then the web index, then the search indexer, the rules and the alerts (each one's step in
    /// progress commits), then the database.
    pub async fn shutdown(self) {
        self.ingest.shutdown().await;
        self.delivery_cancel.cancel();
        if let Err(e) = self.delivery.await {
            tracing::error!(error = %e, "The delivery task ended abnormally.");
        }
        self.web_cancel.cancel();
        let _ = self.web.await;
        if let Some(server) = self.metrics_server {
            let _ = server.await;
        }
        self.watch_cancel.cancel();
        let _ = self.watcher.await;
        self.housekeeping_cancel.cancel();
        let _ = self.housekeeping.await;
        self.indexer_cancel.cancel();
        let _ = self.indexer.await;
        self.rules_cancel.cancel();
        let _ = self.rules.await;
        if let Some(alerts) = self.alerts {
            let _ = alerts.await;
        }
        self.store.close().await;
        tracing::info!("Stopped.");
    }
}

/// How often the dead-letter bounds are applied. Dead letters come slowly, so an hour's more of them is nothing
/// to either bound.
const DEAD_LETTER_HOUSEKEEPING: std::time::Duration = std::time::Duration::from_secs(3600);

/// How often `[retention]` is applied: its bounds are days and years, so a day late is nothing, and a daily
/// run removes a day's worth, a short while on the single writer.
const RETENTION_HOUSEKEEPING: std::time::Duration = std::time::Duration::from_secs(86_400);

/// What the dead-letter bounds leave out at `now_ms` (`[retention] dead_letters` and `[dead_letters]
/// max_total`): the daemon's hourly housekeeping and `tillmark dead-letters purge`.
pub fn dead_letter_retention(config: &Config, now_ms: i64) -> store::DeadLetterBounds {
    store::DeadLetterBounds {
        received_before_ms: Some(now_ms.saturating_sub(config.retention.dead_letters.0)),
        max_total_bytes: Some(config.dead_letters.max_total.0),
    }
}

/// Applies the dead-letter bounds once at start and every hour after, and `[retention]` once at start and
/// every day after.
async fn housekeeping(config: Arc<Config>, store: Arc<dyn Store>, cancel: CancellationToken) {
    let mut every = tokio::time::interval(DEAD_LETTER_HOUSEKEEPING);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut retention_due = tokio::time::Instant::now();
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = every.tick() => {}
        }
        keep_dead_letters_bounded(&config, &*store).await;
        if tokio::time::Instant::now() >= retention_due {
            retention_due += RETENTION_HOUSEKEEPING;
            apply_retention(&config, &*store).await;
        }
    }
}

/// Removes the dead letters beyond the bounds.
async fn keep_dead_letters_bounded(config: &Config, store: &dyn Store) {
    match store
        .purge_dead_letters(&dead_letter_retention(config, clock::now_ms()))
        .await
    {
        Ok(purged) if purged.letters() == 0 => {}
        Ok(purged) => tracing::info!(
            older = purged.by_age,
            beyond_total = purged.by_size,
            freed = %config::Bytes(purged.bytes),
            keep_for = %config.retention.dead_letters,
            max_total = %config.dead_letters.max_total,
            "Removed dead letters beyond the [dead_letters] and [retention] bounds."
        ),
        Err(e) => {
            tracing::warn!(error = %e, "Could not remove old dead letters; trying again in an hour.")
        }
    }
}

/// Removes what `[retention]` leaves out, in the name of `system`.
async fn apply_retention(config: &Config, store: &dyn Store) {
    match retention::purge(store, config, clock::now_ms(), &retention::Actor::system()).await {
        Ok(report) if !report.removed_anything() => {}
        Ok(report) => tracing::info!(
            counts = %report.counts(),
            "Removed what [retention] keeps no longer; the audit log records it."
        ),
        Err(e) => tracing::warn!(
            error = %e,
            "Could not apply [retention]; trying again tomorrow, or run `tillmark retention purge`."
        ),
    }
}

/// When new definitions go into service, the bookmarks that waited for them (or failed against the old ones
/// with a retryable error) go now instead of after their backoff.
async fn expedite_on_new_definitions(
    config: Arc<Config>,
    integrations: camera::Integrations,
    store: Arc<dyn Store>,
    wake: Arc<Notify>,
    cancel: CancellationToken,
) {
    let systems: Vec<String> = config.camera_systems.iter().map(|s| s.id.clone()).collect();
    let mut swaps = integrations.swaps();
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            changed = swaps.changed() => if changed.is_err() { return },
        }
        match store.expedite(&systems, clock::now_ms()).await {
            Ok(0) => {}
            Ok(n) => {
                tracing::info!(
                    bookmarks = n,
                    "New vendor definitions in service; retrying waiting bookmarks now."
                );
                wake.notify_one();
            }
            Err(e) => tracing::warn!(error = %e, "Could not reschedule waiting bookmarks."),
        }
    }
}
