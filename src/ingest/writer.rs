//! The ingest tasks: the writer validates, masks and plans each message; the committer commits what the writer
//! has read in one transaction, and only then acknowledges those messages, in arrival order: to the external
//! broker through its client, or to the register through the embedded listener's connection.
//!
//! Group commit: the two overlap (the writer reads the next messages while a commit and its fsync run), and
//! the committer takes everything read while it was busy into its next transaction. Under load a transaction
//! holds thousands of events (one fsync for all of them); when idle, each message is committed as soon as it is
//! read, so a single event waits for no one.

use std::sync::Arc;

use bytes::Bytes;
use rumqttc::v5::AsyncClient;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::{Filter, Publish};
use tokio::sync::Notify;
use tokio::sync::mpsc::{Receiver, UnboundedReceiver};
use tokio_util::sync::CancellationToken;

use super::plan::plan;
use super::poller::{Ack, Backlog, Generation, Inbound, Message};
use crate::clock::now_ms;
use crate::config::{Config, Watchers};
use crate::event;
use crate::store::{Intake, IntakeOutcome, Store, StoreHealth};

/// Most messages in one transaction: a thousand amortise the fsync, and such a transaction holds the single
/// database writer for some 40 ms, so delivery's claims and outcomes are never kept long behind a burst. Intake
/// measured no slower for it (`cargo bench --bench pipeline`: 26,800 events/s at 1,024, 21,200 at 8,192).
const MAX_BATCH: usize = 1_024;
/// Batches read ahead of the committer; when they are full the writer waits, and the messages wait unread at
/// the broker's in-flight window.
const READ_AHEAD: usize = 4;

pub struct Writer {
    pub config: Arc<Config>,
    pub watchers: Watchers,
    pub store: Arc<dyn Store>,
    /// The external broker's client; `None` behind the embedded listener.
    pub client: Option<AsyncClient>,
    pub generation: Generation,
    /// What the poller has handed over and the writer not yet taken.
    pub backlog: Backlog,
    pub wake: Arc<Notify>,
    /// Keys the digest that keeps apart identifiers whose masked forms are alike.
    pub id_key: Vec<u8>,
    /// Where a failing database is reported, once, by its kind.
    pub health: StoreHealth,
    /// Counts what became of each message, and how many wait to be committed.
    pub metrics: crate::metrics::Metrics,
}

/// A message read into what the store keeps, with how to acknowledge it.
struct Read {
    intake: Intake,
    ack: Ack,
}

impl Writer {
    pub async fn run(self, mut rx: UnboundedReceiver<Inbound>, intake: CancellationToken) {
        let (batches, to_commit) = tokio::sync::mpsc::channel(READ_AHEAD);
        let committer = Committer {
            store: self.store.clone(),
            client: self.client.clone(),
            generation: self.generation.clone(),
            wake: self.wake.clone(),
            health: self.health.clone(),
            metrics: self.metrics.clone(),
        };
        let committer = tokio::spawn(committer.run(to_commit));
        let mut batch = Vec::new();
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
            if !batch.is_empty() && batches.send(std::mem::take(&mut batch)).await.is_err() {
                break;
            }
        }
        // Intake stopped: what already arrived is still written and acknowledged.
        while let Ok(msg) = rx.try_recv() {
            self.take(msg, &mut batch).await;
            if batch.len() >= MAX_BATCH {
                let _ = batches.send(std::mem::take(&mut batch)).await;
            }
        }
        if !batch.is_empty() {
            let _ = batches.send(batch).await;
        }
        drop(batches);
        if let Err(e) = committer.await {
            tracing::error!(error = %e, "The ingest committer ended abnormally.");
        }
        if let Some(client) = &self.client
            && let Err(e) = client.disconnect().await
        {
            tracing::debug!(error = %e, "MQTT disconnect was not sent.");
        }
    }

    async fn take(&self, msg: Inbound, batch: &mut Vec<Read>) {
        match msg {
            Inbound::Publish {
                message,
                received_ms,
                ack,
            } => {
                if matches!(ack, Ack::Broker { .. }) {
                    self.backlog.taken(message.payload.len());
                }
                batch.push(Read {
                    intake: self.read(&message, received_ms),
                    ack,
                })
            }
            Inbound::Subscribe => {
                let Some(client) = &self.client else { return };
                let topics = self
                    .config
                    .mqtt
                    .topics
                    .iter()
                    .map(|t| Filter::new(self.config.mqtt.filter(t), QoS::AtLeastOnce));
                match client.subscribe_many(topics).await {
                    Ok(()) => {
                        tracing::info!(topics = ?self.config.mqtt.topics, shared_group = ?self.config.mqtt.shared_group, "Subscribed.")
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "Could not subscribe; no events will arrive.")
                    }
                }
            }
        }
    }

    fn read(&self, publish: &Message, received_ms: i64) -> Intake {
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
                    drawer: plan.drawer,
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

/// Commits what the writer read, and acknowledges it after the commit.
struct Committer {
    store: Arc<dyn Store>,
    client: Option<AsyncClient>,
    generation: Generation,
    wake: Arc<Notify>,
    health: StoreHealth,
    metrics: crate::metrics::Metrics,
}

impl Committer {
    async fn run(self, mut batches: Receiver<Vec<Read>>) {
        while let Some(mut batch) = batches.recv().await {
            // Everything read while the last commit ran goes into this one.
            while batch.len() < MAX_BATCH {
                match batches.try_recv() {
                    Ok(more) => batch.extend(more),
                    Err(_) => break,
                }
            }
            self.commit(batch).await;
        }
    }

    async fn commit(&self, batch: Vec<Read>) {
        let (intakes, acks): (Vec<Intake>, Vec<Ack>) =
            batch.into_iter().map(|r| (r.intake, r.ack)).unzip();
        let mut delay = std::time::Duration::from_millis(100);
        let outcomes = loop {
            match self.store.ingest(&intakes, now_ms()).await {
                Ok(outcomes) => {
                    self.health.answered("ingest");
                    break outcomes;
                }
                Err(e) => {
                    // Nothing is acknowledged until this succeeds: the broker keeps the messages meanwhile, and
                    // stops sending once its in-flight window is full, so intake pauses rather than piles up.
                    self.health.failed("ingest", &e);
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(std::time::Duration::from_secs(10));
                }
            }
        };
        self.metrics.waiting().dec_by(intakes.len() as i64);
        let mut new_bookmarks = 0;
        for (intake, outcome) in intakes.iter().zip(&outcomes) {
            self.metrics.committed(outcome);
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
        for ack in acks {
            match ack {
                Ack::Broker {
                    generation,
                    pkid,
                    qos,
                } => {
                    let Some(client) = &self.client else { continue };
                    if qos == QoS::AtMostOnce || generation != current {
                        continue;
                    }
                    // The acknowledgement names the message by packet id and QoS alone.
                    let mut acked = Publish::new("", qos, Bytes::new(), None);
                    acked.pkid = pkid;
                    if let Err(e) = client.ack(&acked).await {
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
}
