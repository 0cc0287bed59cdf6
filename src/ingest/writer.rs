//! The ingest task: validates, masks, plans bookmarks, commits a batch in one transaction, and only then
//! acknowledges the batch's messages, in arrival order: to the external broker through its client, or to the
//! register through the embedded listener's connection.

use std::sync::Arc;

use rumqttc::{AsyncClient, QoS};
use tokio::sync::Notify;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio_util::sync::CancellationToken;

use super::plan::plan;
use super::poller::{Ack, Generation, Inbound};
use crate::clock::now_ms;
use crate::config::{Config, Watchers};
use crate::event;
use crate::store::{Intake, IntakeOutcome, Store};

/// Most messages in one transaction: large enough to amortise the fsync, small enough to ack promptly.
const MAX_BATCH: usize = 500;

pub struct Writer {
    pub config: Arc<Config>,
    pub watchers: Watchers,
    pub store: Arc<dyn Store>,
    /// The external broker's client; `None` behind the embedded listener.
    pub client: Option<AsyncClient>,
    pub generation: Generation,
    pub wake: Arc<Notify>,
    /// Keys the digest that keeps apart identifiers whose masked forms are alike.
    pub id_key: Vec<u8>,
}

impl Writer {
    pub async fn run(self, mut rx: UnboundedReceiver<Inbound>, intake: CancellationToken) {
        let mut batch: Vec<(rumqttc::Publish, Ack, i64)> = Vec::new();
        loop {
            let first = tokio::select! {
                msg = rx.recv() => msg,
                _ = intake.cancelled() => None,
            };
            let Some(first) = first else { break };
            self.take(first, &mut batch).await;
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(msg) => self.take(msg, &mut batch).await,
                    Err(_) => break,
                }
            }
            self.commit(&mut batch).await;
        }
        // Intake stopped: what already arrived is still written and acknowledged.
        while let Ok(msg) = rx.try_recv() {
            self.take(msg, &mut batch).await;
            if batch.len() >= MAX_BATCH {
                self.commit(&mut batch).await;
            }
        }
        self.commit(&mut batch).await;
        if let Some(client) = &self.client
            && let Err(e) = client.disconnect().await
        {
            tracing::debug!(error = %e, "MQTT disconnect was not sent.");
        }
    }

    async fn take(&self, msg: Inbound, batch: &mut Vec<(rumqttc::Publish, Ack, i64)>) {
        match msg {
            Inbound::Publish {
                publish,
                received_ms,
                ack,
            } => batch.push((publish, ack, received_ms)),
            Inbound::Subscribe => {
                let Some(client) = &self.client else { return };
                let topics = self
                    .config
                    .mqtt
                    .topics
                    .iter()
                    .map(|t| rumqttc::SubscribeFilter::new(t.clone(), QoS::AtLeastOnce));
                match client.subscribe_many(topics).await {
                    Ok(()) => tracing::info!(topics = ?self.config.mqtt.topics, "Subscribed."),
                    Err(e) => {
                        tracing::error!(error = %e, "Could not subscribe; no events will arrive.")
                    }
                }
            }
        }
    }

    async fn commit(&self, batch: &mut Vec<(rumqttc::Publish, Ack, i64)>) {
        if batch.is_empty() {
            return;
        }
        let intakes: Vec<Intake> = batch
            .iter()
            .map(|(p, _, received_ms)| self.read(p, *received_ms))
            .collect();
        let mut delay = std::time::Duration::from_millis(100);
        let outcomes = loop {
            match self.store.ingest(&intakes, now_ms()).await {
                Ok(outcomes) => break outcomes,
                Err(e) => {
                    // Nothing is acknowledged until this succeeds: the broker keeps the messages meanwhile.
                    tracing::error!(error = %e, batch = intakes.len(), "Could not store received events; retrying.");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(std::time::Duration::from_secs(10));
                }
            }
        };
        let mut new_bookmarks = 0;
        for (intake, outcome) in intakes.iter().zip(&outcomes) {
            match (intake, outcome) {
                (Intake::Event { event, .. }, IntakeOutcome::Stored { bookmarks, .. }) => {
                    new_bookmarks += bookmarks;
                    tracing::debug!(store = %event.store, register = %event.register, id = %event::shown(&event.id),
                        kind = %event.kind, bookmarks, "Event stored.");
                }
                (Intake::Event { event, .. }, IntakeOutcome::Duplicate) => {
                    tracing::debug!(store = %event.store, id = %event::shown(&event.id), "Duplicate event ignored.");
                }
                (Intake::DeadLetter { topic, reason, .. }, _) => {
                    tracing::warn!(topic = %event::shown(topic), reason = %event::shown(reason),
                        "Message rejected; kept in the dead-letter list.");
                }
                (Intake::Event { event, .. }, IntakeOutcome::Reused { seq }) => {
                    tracing::warn!(store = %event.store, register = %event.register, id = %event::shown(&event.id), seq,
                        "A message used a stored event's id with other content; kept in the dead-letter list and marked on the event.");
                }
                _ => {}
            }
        }
        if new_bookmarks > 0 {
            self.wake.notify_one();
        }
        let current = self.generation.current();
        for (publish, ack, _) in batch.drain(..) {
            match ack {
                Ack::Broker { generation } => {
                    let Some(client) = &self.client else { continue };
                    if publish.qos == QoS::AtMostOnce || generation != current {
                        continue;
                    }
                    if let Err(e) = client.ack(&publish).await {
                        tracing::debug!(error = %e, "Acknowledgement not sent; the broker will redeliver.");
                    }
                }
                // A register already gone is no error: it publishes again and the store drops the copy.
                Ack::Embedded(done) => {
                    let _ = done.send(());
                }
            }
        }
    }

    fn read(&self, publish: &rumqttc::Publish, received_ms: i64) -> Intake {
        let arrival = event::Arrival {
            topic: &publish.topic,
            received_ms,
            max_age_ms: self.config.intake.max_age.0,
            max_ahead_ms: self.config.intake.max_ahead.0,
            signing: &self.config.signing,
            id_key: &self.id_key,
        };
        let parsed = event::read(&publish.payload, &arrival);
        // What is kept of the topic is masked like the rest: a card number typed into it is not kept either.
        let topic = event::mask_topic(&publish.topic);
        match parsed.result {
            Ok(event) => {
                let plan = plan(&self.config, &self.watchers, &event);
                Intake::Event {
                    digest: event::content_digest(&event),
                    event: Box::new(event),
                    raw: parsed.raw,
                    signed: parsed.signature.as_flag(),
                    topic,
                    received_ms,
                    flagged: plan.flagged,
                    mapped: plan.mapped,
                    bookmarks: plan.bookmarks,
                }
            }
            Err(rejected) => Intake::DeadLetter {
                topic,
                received_ms,
                reason: rejected.reason(),
                raw: parsed.raw,
                size: publish.payload.len() as u64,
                sha256: crate::store::sha256_hex(&publish.payload),
            },
        }
    }
}
