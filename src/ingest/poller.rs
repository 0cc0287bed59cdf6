//! The task that polls the MQTT event loop. It does nothing else: it never awaits the client (the request
//! channel is bounded, and waiting on it from here deadlocks) and never blocks on the writer (the channel to it
//! is unbounded; the broker's in-flight window for unacknowledged QoS 1 messages is what bounds it).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use rumqttc::{ConnectionError, Event, EventLoop, Outgoing, Packet};
use tokio::sync::mpsc::UnboundedSender;
use tokio_util::sync::CancellationToken;

use crate::clock::now_ms;

/// What the poller or the embedded listener hands to the writer.
pub enum Inbound {
    Publish {
        /// Topic, payload and QoS, as either source received them.
        publish: rumqttc::Publish,
        received_ms: i64,
        /// How to acknowledge it once committed.
        ack: Ack,
    },
    /// The broker has no session for us (first start, or it forgot): subscribe again.
    Subscribe,
}

/// How a message is acknowledged after its commit.
pub enum Ack {
    /// Through the external broker's client, and only on the connection (`generation`) it arrived on.
    Broker { generation: u64 },
    /// The embedded listener's connection writes PUBACK or PUBREC when told; dropping it means not committed.
    Embedded(tokio::sync::oneshot::Sender<()>),
}

const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Whether intake is live: connected, with the subscription in place. Shown by health checks.
#[derive(Clone, Default)]
pub struct Status {
    connected: Arc<AtomicBool>,
    subscribed: Arc<AtomicBool>,
}

impl Status {
    /// The embedded listener is up (or no longer): it is the subscription.
    pub(super) fn set_listening(&self, up: bool) {
        self.connected.store(up, Ordering::SeqCst);
        self.subscribed.store(up, Ordering::SeqCst);
    }

    pub fn connected(&self) -> bool {
        self.connected.load(Ordering::SeqCst)
    }

    /// Connected, and the broker holds our subscription (from this connection or a kept session).
    pub fn receiving(&self) -> bool {
        self.connected() && self.subscribed.load(Ordering::SeqCst)
    }
}

/// Counts connections, so a message received on an earlier connection is never acknowledged on a later one,
/// where its packet id may name a different message. The broker redelivers it instead; the store drops the copy.
#[derive(Clone, Default)]
pub struct Generation(Arc<AtomicU64>);

impl Generation {
    pub fn current(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

pub async fn run(
    mut eventloop: EventLoop,
    tx: UnboundedSender<Inbound>,
    generation: Generation,
    status: Status,
    broker: String,
    intake: CancellationToken,
    stop: CancellationToken,
) {
    let mut backoff = Duration::from_millis(250);
    let mut failures = 0u32;
    loop {
        let polled = tokio::select! {
            _ = stop.cancelled() => return,
            polled = eventloop.poll() => polled,
        };
        match polled {
            Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                generation.0.fetch_add(1, Ordering::SeqCst);
                backoff = Duration::from_millis(250);
                if failures > 0 {
                    tracing::info!(%broker, "Connected to the MQTT broker again.");
                } else {
                    tracing::info!(%broker, session_present = ack.session_present, "Connected to the MQTT broker.");
                }
                failures = 0;
                status.connected.store(true, Ordering::SeqCst);
                status
                    .subscribed
                    .store(ack.session_present, Ordering::SeqCst);
                if !ack.session_present && tx.send(Inbound::Subscribe).is_err() {
                    return;
                }
            }
            Ok(Event::Incoming(Packet::SubAck(_))) => {
                status.subscribed.store(true, Ordering::SeqCst);
            }
            Ok(Event::Incoming(Packet::Publish(publish))) => {
                // After intake stops, a message is left unacknowledged for the broker to redeliver next start.
                if !intake.is_cancelled() {
                    let msg = Inbound::Publish {
                        publish,
                        received_ms: now_ms(),
                        ack: Ack::Broker {
                            generation: generation.current(),
                        },
                    };
                    if tx.send(msg).is_err() {
                        return;
                    }
                }
            }
            Ok(Event::Outgoing(Outgoing::Disconnect)) => return,
            Ok(_) => {}
            Err(e) => {
                status.connected.store(false, Ordering::SeqCst);
                failures += 1;
                log_failure(&broker, &e, failures);
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

fn log_failure(broker: &str, e: &ConnectionError, failures: u32) {
    // Say it loudly once, then quietly while it lasts: an outage must not flood the log.
    let refused = matches!(e, ConnectionError::ConnectionRefused(_));
    if failures == 1 || refused {
        tracing::warn!(%broker, error = %e, "Lost the MQTT broker; reconnecting with backoff.");
    } else {
        tracing::debug!(%broker, error = %e, failures, "Still reconnecting to the MQTT broker.");
    }
}
