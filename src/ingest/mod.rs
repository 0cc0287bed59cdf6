//! MQTT intake: the embedded listener registers publish to (when no external broker is configured) or the
//! poller of an external broker's event loop (plain or TLS), and the writer that commits events before
//! acknowledging them.
//!
//! Guarantee: a message is acknowledged (to the external broker, or to the register on the embedded listener) only
//! after the transaction holding it (as an event or a dead letter) has committed. Everything before that may be
//! lost to a crash; the broker or the register then sends it again.

mod embedded;
mod plan;
mod poller;
mod writer;

use std::sync::Arc;
use std::time::Duration;

use rumqttc::{AsyncClient, MqttOptions};
use tokio::sync::Notify;
use tokio::sync::mpsc::UnboundedSender;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use embedded::BrokerError;
pub use plan::{Plan, bookmark_for, plan};

use crate::config::{BrokerUrl, Config, MqttConfig, Watchers};
use crate::store::Store;

pub use poller::Status;

/// Where events come from: an external broker, or the embedded listener, bound (so a taken port is reported)
/// before the rest of the daemon starts.
pub enum Source {
    External(BrokerUrl),
    Embedded(embedded::Bound),
}

impl Source {
    pub async fn open(config: &MqttConfig) -> Result<Source, BrokerError> {
        Ok(match &config.url {
            Some(url) => Source::External(url.clone()),
            None => Source::Embedded(embedded::Bound::bind(config).await?),
        })
    }

    /// The broker registers publish to.
    pub fn url(&self) -> &BrokerUrl {
        match self {
            Source::External(url) => url,
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

/// Largest packet accepted from the broker: the protocol's own maximum (a remaining length of 268,435,455 bytes),
/// so every message a broker can deliver is read and handed to the writer, which dead-letters what the contract
/// does not allow. A lower limit fails the connection instead, and the broker redelivers the same message on
/// every reconnect: intake stops for good. What bounds memory is the broker's own packet size limit.
const MAX_INCOMING_PACKET: usize = 268_435_455;

pub fn start(
    config: Arc<Config>,
    source: Source,
    store: Arc<dyn Store>,
    id_key: Vec<u8>,
    wake: Arc<Notify>,
    status: Status,
) -> Ingest {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let generation = poller::Generation::default();
    let intake = CancellationToken::new();
    let stop = CancellationToken::new();
    let (client, feeder) = match source {
        Source::External(broker) => {
            let (client, poller) = connect(
                &config,
                &broker,
                tx,
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
        wake,
        id_key,
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
    broker: &BrokerUrl,
    tx: UnboundedSender<poller::Inbound>,
    generation: poller::Generation,
    status: Status,
    (intake, stop): (CancellationToken, CancellationToken),
) -> (AsyncClient, JoinHandle<()>) {
    let mut options = MqttOptions::new(
        config.mqtt.client_id.clone(),
        broker.host.clone(),
        broker.port,
    );
    options
        .set_clean_session(false)
        .set_manual_acks(true)
        .set_keep_alive(Duration::from_secs(30))
        .set_max_packet_size(MAX_INCOMING_PACKET, 1024 * 1024);
    // The config holds TLS settings exactly when the url is mqtts://.
    let tls = config.mqtt.tls.clone().filter(|_| broker.tls);
    if let Some(tls) = &tls {
        options.set_transport(tls.transport());
    }
    if let (Some(user), Some(password)) = (&config.mqtt.username, &config.mqtt.password) {
        options.set_credentials(user.clone(), password.expose().to_string());
    } else if let Some(user) = &config.mqtt.username {
        options.set_credentials(user.clone(), "");
    }
    let (client, eventloop) = AsyncClient::new(options, 1024);
    let poller = poller::Poller {
        eventloop,
        tx,
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
