//! MQTT intake: the embedded broker (when no external one is configured), TLS to an external one, the event-loop
//! poller, and the writer that commits events before acknowledging them.
//!
//! Guarantee: a message is acknowledged to the broker only after the transaction holding it (as an event or a
//! dead letter) has committed. Everything before that may be lost to a crash; the broker then redelivers.

mod broker;
mod plan;
mod poller;
mod writer;

use std::sync::Arc;
use std::time::Duration;

use rumqttc::{AsyncClient, MqttOptions};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use broker::{BrokerError, start as start_embedded_broker};
pub use plan::{Plan, bookmark_for, plan};

use crate::config::{BrokerUrl, Config, Watchers};
use crate::store::Store;

pub use poller::Status;

pub struct Ingest {
    pub status: Status,
    poller: JoinHandle<()>,
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
    broker: &BrokerUrl,
    store: Arc<dyn Store>,
    id_key: Vec<u8>,
    wake: Arc<Notify>,
    status: Status,
) -> Ingest {
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
    // The config holds TLS settings exactly when the url is mqtts://; the embedded broker is always plain.
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
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let generation = poller::Generation::default();
    let intake = CancellationToken::new();
    let stop = CancellationToken::new();
    let poller = poller::Poller {
        eventloop,
        tx,
        generation: generation.clone(),
        status: status.clone(),
        broker: broker.to_string(),
        tls,
    };
    let poller = tokio::spawn(poller.run(intake.clone(), stop.clone()));
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
        poller,
        writer,
        intake,
        stop,
    }
}

impl Ingest {
    /// Stops taking new messages, writes and acknowledges those already received, then disconnects.
    pub async fn shutdown(self) {
        self.intake.cancel();
        if let Err(e) = self.writer.await {
            tracing::error!(error = %e, "The ingest task ended abnormally.");
        }
        // The poller exits when it has sent the DISCONNECT; the bound covers a broker that is already gone.
        let stop = self.stop.clone();
        let mut poller = self.poller;
        if tokio::time::timeout(Duration::from_secs(3), &mut poller)
            .await
            .is_err()
        {
            stop.cancel();
            let _ = poller.await;
        }
    }
}
