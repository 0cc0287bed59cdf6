//! MQTT intake: the embedded listener registers publish to (when no external broker is configured) or the
//! poller of an external broker's event loop (plain or TLS), and the writer that commits events before
//! acknowledging them.
//!
//! Guarantee: a message is acknowledged (to the external broker, or to the register on the embedded listener) only
//! after the transaction holding it (as an event or a dead letter) has committed. Everything before that may be
//! lost to a crash; the broker or the register then sends it again.

mod embedded;
pub(crate) mod plan;
mod poller;
mod writer;

use std::sync::Arc;
use std::time::Duration;

use rumqttc::Transport;
use rumqttc::v5::{AsyncClient, MqttOptions};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use embedded::BrokerError;
pub use plan::{Plan, bookmark_for, plan};

use crate::config::{BrokerUrl, Config, MqttConfig, Watchers};
use crate::store::{Store, StoreHealth};
use crate::tls::{MqttTls, Tunnel};

pub use poller::Status;

/// Where events come from: an external broker, or the embedded listener, bound (so a taken port is reported)
/// before the rest of the daemon starts.
pub enum Source {
    /// The broker, and over TLS its settings and the tunnel that carries the client's connections.
    External(BrokerUrl, Option<(MqttTls, Tunnel)>),
    Embedded(embedded::Bound),
}

impl Source {
    pub async fn open(config: &MqttConfig) -> Result<Source, BrokerError> {
        Ok(match &config.url {
            // The config holds TLS settings exactly when the url is mqtts://.
            Some(url) => match config.tls.clone().filter(|_| url.tls) {
                Some(tls) => {
                    let tunnel = Tunnel::open(&url.host, url.port, &tls)
                        .map_err(|cause| BrokerError::Tunnel { cause })?;
                    Source::External(url.clone(), Some((tls, tunnel)))
                }
                None => Source::External(url.clone(), None),
            },
            None => Source::Embedded(embedded::Bound::bind(config).await?),
        })
    }

    /// The broker registers publish to.
    pub fn url(&self) -> &BrokerUrl {
        match self {
            Source::External(url, _) => url,
            Source::Embedded(bound) => bound.url(),
        }
    }
}

pub struct Ingest {
    pub status: Status,
    /// The poller, or the embedded listener.
    feeder: JoinHandle<()>,
    writer: JoinHandle<()>,
    intake: CancellationToken,
    stop: CancellationToken,
}

/// Largest packet accepted from the broker, told to it as MQTT 5's Maximum Packet Size: the protocol's own
/// maximum (a fixed header of at most 5 bytes and a remaining length of 268,435,455), so every message a
/// broker can deliver is read and handed to the writer, which dead-letters what the contract does not allow.
/// A lower limit would be worse either way: an MQTT 5 broker silently drops a message larger than the
/// client's maximum, and one that sent it anyway would fail the connection on every redelivery, stopping
/// intake for good. What bounds memory is the broker's own packet size limit.
const MAX_INCOMING_PACKET: u32 = 268_435_460;

/// Packet ids the MQTT client may have outstanding for what it sends: subscriptions only.
const OUTGOING_IDS: u16 = 16;
/// How long the broker keeps our session (subscription and queued messages) while we are away: the
/// protocol's "never expires", as MQTT 3.1.1's persistent sessions did. The broker's own limits
/// (`max_queued_messages`, `persistent_client_expiration`) still apply; the README's sample configs set them.
const SESSION_NEVER_EXPIRES: u32 = u32::MAX;

pub fn start(
    config: Arc<Config>,
    source: Source,
    store: Arc<dyn Store>,
    id_key: Vec<u8>,
    wake: Arc<Notify>,
    (status, health): (Status, StoreHealth),
    metrics: crate::metrics::Metrics,
) -> Ingest {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let tx = poller::Handoff::new(tx, &metrics);
    let generation = poller::Generation::default();
    let backlog = poller::Backlog::default();
    let intake = CancellationToken::new();
    let stop = CancellationToken::new();
    let (client, feeder) = match source {
        Source::External(broker, tls) => {
            let (client, poller) = connect(
                &config,
                (&broker, tls),
                (tx, backlog.clone()),
                generation.clone(),
                status.clone(),
                (intake.clone(), stop.clone()),
            );
            (Some(client), poller)
        }
        Source::Embedded(bound) => (
            None,
            bound.serve(&config.mqtt, tx, status.clone(), intake.clone()),
        ),
    };
    let watchers = Watchers::new(&config);
    let writer = writer::Writer {
        config,
        watchers,
        store,
        client,
        generation,
        backlog,
        wake,
        id_key,
        health,
        metrics,
    };
    let writer = tokio::spawn(writer.run(rx, intake.clone()));
    Ingest {
        status,
        feeder,
        writer,
        intake,
        stop,
    }
}

/// The external broker's client, and the poller of its event loop.
fn connect(
    config: &Config,
    (broker, tls): (&BrokerUrl, Option<(MqttTls, Tunnel)>),
    (tx, backlog): (poller::Handoff, poller::Backlog),
    generation: poller::Generation,
    status: Status,
    (intake, stop): (CancellationToken, CancellationToken),
) -> (AsyncClient, JoinHandle<()>) {
    // Over TLS the client connects to the tunnel's socket, which carries it to the broker.
    let mut options = match &tls {
        Some((_, tunnel)) => {
            let mut options = MqttOptions::new(
                config.mqtt.client_id.clone(),
                tunnel.path().to_string_lossy(),
                0,
            );
            options.set_transport(Transport::Unix);
            options
        }
        None => MqttOptions::new(
            config.mqtt.client_id.clone(),
            broker.host.clone(),
            broker.port,
        ),
    };
    // MQTT 5, for its Receive Maximum: acknowledging after commit with MQTT 3.1.1's fixed window (20 at
    // Mosquitto) made every batch, and so every fsync, hold at most 20 events. Mosquitto 2 takes the client's
    // Receive Maximum as this client's window, in place of its `max_inflight_messages`.
    options
        .set_clean_start(false)
        .set_session_expiry_interval(Some(SESSION_NEVER_EXPIRES))
        .set_receive_maximum(Some(config.mqtt.receive_maximum))
        .set_manual_acks(true)
        .set_keep_alive(Duration::from_secs(30))
        .set_max_packet_size(Some(MAX_INCOMING_PACKET))
        // The client keeps a slot per outgoing packet id up to this limit, allocated at start: its default,
        // 65,535 slots for publishes, held some 13 MB from start to stop. The daemon publishes nothing; only
        // subscriptions take packet ids.
        .set_outgoing_inflight_upper_limit(OUTGOING_IDS);
    if let (Some(user), Some(password)) = (&config.mqtt.username, &config.mqtt.password) {
        options.set_credentials(user.clone(), password.expose().to_string());
    } else if let Some(user) = &config.mqtt.username {
        options.set_credentials(user.clone(), "");
    }
    // Room for a whole window of acknowledgements, so the writer's acks never wait on the poller.
    let (client, eventloop) =
        AsyncClient::new(options, usize::from(config.mqtt.receive_maximum).max(1024));
    let poller = poller::Poller {
        eventloop,
        tx,
        backlog,
        generation,
        status,
        broker: broker.to_string(),
        tls,
    };
    (client, tokio::spawn(poller.run(intake, stop)))
}

impl Ingest {
    /// Stops taking new messages, writes and acknowledges those already received, then disconnects.
    pub async fn shutdown(self) {
        self.intake.cancel();
        if let Err(e) = self.writer.await {
            tracing::error!(error = %e, "The ingest task ended abnormally.");
        }
        // The poller exits when it has sent the DISCONNECT, the listener when its connections have acknowledged
        // what was committed; the bound covers a broker or a register that is already gone.
        let mut feeder = self.feeder;
        if tokio::time::timeout(Duration::from_secs(3), &mut feeder)
            .await
            .is_err()
        {
            self.stop.cancel();
            feeder.abort();
            let _ = feeder.await;
        }
    }
}
