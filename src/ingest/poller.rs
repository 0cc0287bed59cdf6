//! The task that polls the MQTT event loop. It does nothing else: it never awaits the client (the request
//! channel is bounded, and waiting on it from here deadlocks) and never blocks on the writer (the channel to it
//! is unbounded; the broker's in-flight window for unacknowledged QoS 1 messages is what bounds it).
//!
//! When the broker cannot be reached it retries with capped, jittered backoff, says why in an operator's words
//! ([`Status::last_error`]), and logs one WARN when an outage starts and one INFO when it ends, never a line per
//! retry above DEBUG.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use rumqttc::Outgoing;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::{ConnectReturnCode, Packet};
use rumqttc::v5::{ConnectionError, Event, EventLoop, StateError};
use tokio::sync::Notify;
use tokio::sync::mpsc::UnboundedSender;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::clock::now_ms;
use crate::tls::{MqttTls, Tunnel};

/// What the poller or the embedded listener hands to the writer.
pub enum Inbound {
    Publish {
        message: Message,
        received_ms: i64,
        /// How to acknowledge it once committed.
        ack: Ack,
    },
    /// The broker has no session for us (first start, or it forgot): subscribe again.
    Subscribe,
}

/// The writer's inbox, as the poller and the embedded listener hand messages to it: each published message is
/// counted as waiting until the committer has committed its batch ([`crate::metrics::Metrics::waiting`]).
#[derive(Clone)]
pub struct Handoff {
    tx: UnboundedSender<Inbound>,
    waiting: prometheus_client::metrics::gauge::Gauge,
}

impl Handoff {
    pub fn new(tx: UnboundedSender<Inbound>, metrics: &crate::metrics::Metrics) -> Handoff {
        Handoff {
            tx,
            waiting: metrics.waiting().clone(),
        }
    }

    /// Hands `inbound` to the writer; `Err` once the writer has stopped.
    pub fn send(&self, inbound: Inbound) -> Result<(), ()> {
        let publish = matches!(inbound, Inbound::Publish { .. });
        if publish {
            self.waiting.inc();
        }
        self.tx.send(inbound).map_err(|_| {
            if publish {
                self.waiting.dec();
            }
        })
    }
}

/// A published message as either source received it.
pub struct Message {
    pub topic: String,
    pub payload: Bytes,
}

/// How a message is acknowledged after its commit.
pub enum Ack {
    /// Through the external broker's client, and only on the connection (`generation`) it arrived on. `pkid`
    /// and `qos` name the acknowledgement (PUBACK or PUBREC); a QoS 0 message has none.
    Broker {
        generation: u64,
        pkid: u16,
        qos: QoS,
    },
    /// The embedded listener's connection writes PUBACK or PUBREC when told; dropping it means not committed.
    Embedded(tokio::sync::oneshot::Sender<()>),
}

/// Whether intake is live: connected, with the subscription in place, and if not, why. Shown by health checks.
#[derive(Clone, Default)]
pub struct Status {
    connected: Arc<AtomicBool>,
    subscribed: Arc<AtomicBool>,
    last_error: Arc<Mutex<Option<String>>>,
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

    /// While the broker cannot be reached: why, in an operator's words (the latest failure's reason). `None`
    /// once connected.
    pub fn last_error(&self) -> Option<String> {
        self.last_error
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    fn set_last_error(&self, error: Option<String>) {
        *self
            .last_error
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = error;
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

/// Most payload bytes received from the broker and not yet taken by the writer. The broker's window counts
/// messages, not bytes: 10,000 messages of a megabyte would otherwise all be held at once. Past this the
/// poller stops reading, and TCP holds the broker back until the writer catches up.
const MAX_WAITING_BYTES: usize = 32 * 1024 * 1024;

/// Payload bytes on their way from the poller to the writer.
#[derive(Clone, Default)]
pub struct Backlog {
    bytes: Arc<AtomicUsize>,
    taken: Arc<Notify>,
}

impl Backlog {
    fn add(&self, n: usize) {
        self.bytes.fetch_add(n, Ordering::SeqCst);
    }

    /// The writer took a message of `n` payload bytes.
    pub fn taken(&self, n: usize) {
        self.bytes.fetch_sub(n, Ordering::SeqCst);
        self.taken.notify_one();
    }

    /// Returns when the poller may read more.
    async fn room(&self) {
        while self.bytes.load(Ordering::SeqCst) > MAX_WAITING_BYTES {
            self.taken.notified().await;
        }
    }
}

/// What the polling task owns; [`Poller::run`] polls until `stop`, or until the DISCONNECT that shutdown sends.
pub struct Poller {
    pub eventloop: EventLoop,
    pub tx: Handoff,
    pub backlog: Backlog,
    pub generation: Generation,
    pub status: Status,
    /// The broker's URL, for log lines.
    pub broker: String,
    /// The TLS settings and the tunnel that carries the connection over them; `None` for plain MQTT.
    pub tls: Option<(MqttTls, Tunnel)>,
}

impl Poller {
    pub async fn run(mut self, intake: CancellationToken, stop: CancellationToken) {
        let mut reconnect = Reconnect::new(self.broker.clone());
        // No CONNACK yet on the current connection: a failure now is a failed connection attempt.
        let mut handshaking = true;
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = self.backlog.room() => {}
            }
            let polled = tokio::select! {
                _ = stop.cancelled() => return,
                polled = self.eventloop.poll() => polled,
            };
            match polled {
                Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                    self.generation.0.fetch_add(1, Ordering::SeqCst);
                    handshaking = false;
                    reconnect.connected(ack.session_present);
                    self.status.set_last_error(None);
                    self.status.connected.store(true, Ordering::SeqCst);
                    self.status
                        .subscribed
                        .store(ack.session_present, Ordering::SeqCst);
                    if !ack.session_present && self.tx.send(Inbound::Subscribe).is_err() {
                        return;
                    }
                }
                Ok(Event::Incoming(Packet::SubAck(_))) => {
                    self.status.subscribed.store(true, Ordering::SeqCst);
                }
                Ok(Event::Incoming(Packet::Publish(publish))) => {
                    // After intake stops, a message is left unacknowledged for the broker to redeliver next start.
                    if !intake.is_cancelled() {
                        self.backlog.add(publish.payload.len());
                        let msg = Inbound::Publish {
                            message: Message {
                                // The protocol requires UTF-8 topics; a broker that sends otherwise gets its
                                // bytes kept visibly replaced rather than the message refused unseen.
                                topic: String::from_utf8_lossy(&publish.topic).into_owned(),
                                payload: publish.payload,
                            },
                            received_ms: now_ms(),
                            ack: Ack::Broker {
                                generation: self.generation.current(),
                                pkid: publish.pkid,
                                qos: publish.qos,
                            },
                        };
                        if self.tx.send(msg).is_err() {
                            return;
                        }
                    }
                }
                Ok(Event::Outgoing(Outgoing::Disconnect)) => return,
                Ok(_) => {}
                Err(e) => {
                    self.status.connected.store(false, Ordering::SeqCst);
                    // A failure on the tunnel's side reaches the client only as its socket closing: the tunnel
                    // knows why.
                    let cause = match &self.tls {
                        Some((tls, tunnel)) => match tunnel.take_failure() {
                            Some(failure) => failure.explain(tls),
                            None => explain(&e, true, handshaking),
                        },
                        None => explain(&e, false, handshaking),
                    };
                    handshaking = true;
                    self.status.set_last_error(Some(cause.clone()));
                    let delay = reconnect.failed(cause);
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = tokio::time::sleep(delay) => {}
                    }
                }
            }
        }
    }
}

const FIRST_BACKOFF: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Paces reconnection (doubling from 250 ms to 30 s, each delay jittered down to half so that several daemons
/// do not return in step) and keeps an outage to two log lines: a WARN with the cause when it starts and an INFO
/// with its length when it ends. Each retry logs at DEBUG only, so a long outage cannot flood the log.
struct Reconnect {
    broker: String,
    backoff: Duration,
    outage: Option<Outage>,
}

struct Outage {
    since: Instant,
    /// Connection attempts that failed, the one that began the outage included.
    attempts: u32,
    cause: String,
}

impl Reconnect {
    fn new(broker: String) -> Reconnect {
        Reconnect {
            broker,
            backoff: FIRST_BACKOFF,
            outage: None,
        }
    }

    /// Records a failure; returns how long to wait before the next attempt.
    fn failed(&mut self, cause: String) -> Duration {
        let broker = &self.broker;
        match &mut self.outage {
            None => {
                tracing::warn!(%broker, error = %cause, "Cannot reach the MQTT broker; intake waits and retries with backoff until it answers.");
                self.outage = Some(Outage {
                    since: Instant::now(),
                    attempts: 1,
                    cause,
                });
            }
            Some(outage) => {
                outage.attempts += 1;
                tracing::debug!(%broker, error = %cause, attempts = outage.attempts, "Still cannot reach the MQTT broker.");
                outage.cause = cause;
            }
        }
        let delay = self.backoff.mul_f64(rand::random_range(0.5..=1.0));
        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
        delay
    }

    fn connected(&mut self, session_present: bool) {
        let broker = &self.broker;
        self.backoff = FIRST_BACKOFF;
        match self.outage.take() {
            Some(outage) => {
                let lasted = format!("{:.1}s", outage.since.elapsed().as_secs_f64());
                let plural = if outage.attempts == 1 { "" } else { "s" };
                tracing::info!(%broker, %lasted, attempts = outage.attempts, last_error = %outage.cause,
                    "Connected to the MQTT broker again after {lasted} and {} failed attempt{plural}.", outage.attempts);
            }
            None => {
                tracing::info!(%broker, session_present, "Connected to the MQTT broker.");
            }
        }
    }
}

/// Why a connection failed, in an operator's words. `handshaking`: it failed before the broker's CONNACK.
fn explain(e: &ConnectionError, tls: bool, handshaking: bool) -> String {
    let closed = closed_by_peer(e);
    // A TLS listener drops a plain CONNECT (or answers it with a TLS alert, which reads as a bad MQTT packet).
    let garbled = match e {
        ConnectionError::NotConnAck(_) => true,
        ConnectionError::MqttState(StateError::Deserialization(inner)) => {
            !matches!(inner, rumqttc::v5::mqttbytes::Error::Io(_))
        }
        _ => false,
    };
    match e {
        ConnectionError::ConnectionRefused(code)
        | ConnectionError::MqttState(StateError::ConnFail { reason: code }) => refused(*code),
        ConnectionError::MqttState(StateError::ServerDisconnect {
            reason_code,
            reason_string,
        }) => match reason_string {
            Some(why) => format!("the broker ended the connection ({reason_code:?}): {why}"),
            None => format!("the broker ended the connection ({reason_code:?})"),
        },
        ConnectionError::Timeout(_) => {
            "the broker did not answer in time: is the host reachable, and is a firewall dropping the port?"
                .into()
        }
        _ if io_kind(e) == Some(std::io::ErrorKind::ConnectionRefused) => {
            "nothing accepts connections at this address (connection refused): is the broker running, and is the \
             port in [mqtt] url right?"
                .into()
        }
        _ if handshaking && !tls && (closed || garbled) => {
            "the broker closed the connection during the MQTT handshake: is this a TLS port? use mqtts://".into()
        }
        _ if closed => "the broker closed the connection".into(),
        other => other.to_string(),
    }
}

fn refused(code: ConnectReturnCode) -> String {
    match code {
        ConnectReturnCode::BadUserNamePassword => {
            "the broker refused the login: check [mqtt] username and the password in password_env".into()
        }
        ConnectReturnCode::NotAuthorized => {
            "the broker refused the login (not authorized): check [mqtt] username and the broker's ACL".into()
        }
        ConnectReturnCode::BadClientId | ConnectReturnCode::ClientIdentifierNotValid => {
            "the broker refused the client id in [mqtt] client_id".into()
        }
        ConnectReturnCode::ServiceUnavailable
        | ConnectReturnCode::ServerUnavailable
        | ConnectReturnCode::ServerBusy => {
            "the broker refused the connection: service unavailable".into()
        }
        ConnectReturnCode::UnsupportedProtocolVersion | ConnectReturnCode::RefusedProtocolVersion => {
            "the broker does not speak MQTT 5, which intake needs (Mosquitto 1.6 or later, EMQX, HiveMQ, VerneMQ)"
                .into()
        }
        other => format!("the broker refused the connection ({other:?})"),
    }
}

/// The errors this one is made of, outermost first. An `io::Error` reports its inner error's source rather than
/// the inner error itself, so the walk looks inside it explicitly.
fn causes(e: &ConnectionError) -> Vec<&(dyn std::error::Error + 'static)> {
    let mut chain = Vec::new();
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = next {
        chain.push(err);
        if let Some(inner) = err
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            chain.push(inner);
        }
        // MQTT 5's client reports a failed read (a TLS alert, a reset) as a decoding error that holds the I/O
        // error without naming it as its source.
        if let Some(StateError::Deserialization(inner)) = err.downcast_ref::<StateError>() {
            next = Some(inner);
            continue;
        }
        next = err.source();
    }
    chain
}

fn io_kind(e: &ConnectionError) -> Option<std::io::ErrorKind> {
    causes(e)
        .into_iter()
        .find_map(|err| err.downcast_ref::<std::io::Error>())
        .map(|io| io.kind())
}

fn closed_by_peer(e: &ConnectionError) -> bool {
    use std::io::ErrorKind::*;
    matches!(e, ConnectionError::MqttState(StateError::ConnectionAborted))
        || matches!(
            io_kind(e),
            Some(UnexpectedEof | ConnectionReset | ConnectionAborted | BrokenPipe)
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Everything logged at DEBUG and above on this thread while it lives, as text.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Captured {
        fn start(&self) -> tracing::subscriber::DefaultGuard {
            let writer = self.clone();
            let subscriber = tracing_subscriber::fmt()
                .with_max_level(tracing::Level::DEBUG)
                .with_ansi(false)
                .with_writer(move || writer.clone())
                .finish();
            tracing::subscriber::set_default(subscriber)
        }

        fn lines(&self, level: &str) -> Vec<String> {
            String::from_utf8_lossy(&self.0.lock().unwrap())
                .lines()
                .filter(|l| l.contains(&format!(" {level} ")))
                .map(str::to_string)
                .collect()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn an_outage_of_many_retries_logs_one_warning_when_it_starts_and_one_line_when_it_ends() {
        let log = Captured::default();
        let _guard = log.start();
        let mut reconnect = Reconnect::new("mqtts://broker:8883".into());
        reconnect.connected(false);
        for _ in 0..200 {
            let delay = reconnect.failed("the broker closed the connection".into());
            tokio::time::advance(delay).await;
        }
        reconnect.connected(true);

        let warnings = log.lines("WARN");
        assert_eq!(warnings.len(), 1, "{warnings:#?}");
        assert!(warnings[0].contains("error=the broker closed the connection"));
        let infos = log.lines("INFO");
        assert_eq!(
            infos.len(),
            2,
            "connected, then connected again: {infos:#?}"
        );
        assert!(infos[1].contains("attempts=200"), "{}", infos[1]);
        assert!(log.lines("ERROR").is_empty());
        // Each retry is at DEBUG. Not counted exactly: tracing rebuilds its callsites' interest whenever another
        // test's thread sets its own subscriber, and a line logged in that moment can be dropped (one run in
        // a few hundred lost one). What matters is above: no retry reaches WARN or INFO.
        let debug = log.lines("DEBUG").len();
        assert!((150..=199).contains(&debug), "each retry at DEBUG: {debug}");
    }

    #[tokio::test(start_paused = true)]
    async fn the_line_that_ends_an_outage_says_how_long_it_lasted() {
        let log = Captured::default();
        let _guard = log.start();
        let mut reconnect = Reconnect::new("mqtt://broker:1883".into());
        reconnect.failed("nothing accepts connections".into());
        tokio::time::advance(Duration::from_secs(90)).await;
        reconnect.connected(false);
        let infos = log.lines("INFO");
        assert!(
            infos[0]
                .contains("Connected to the MQTT broker again after 90.0s and 1 failed attempt."),
            "{infos:#?}"
        );
    }

    #[test]
    fn retries_back_off_to_thirty_seconds_with_jitter_and_start_over_after_a_connection() {
        let mut reconnect = Reconnect::new("mqtt://broker:1883".into());
        let delays: Vec<Duration> = (0..12)
            .map(|_| reconnect.failed("refused".into()))
            .collect();
        let mut nominal = FIRST_BACKOFF;
        for delay in &delays {
            assert!(
                *delay >= nominal / 2 && *delay <= nominal,
                "{delay:?} for {nominal:?}"
            );
            nominal = (nominal * 2).min(MAX_BACKOFF);
        }
        assert!(delays.iter().all(|d| *d <= MAX_BACKOFF));
        assert!(
            delays[11] >= MAX_BACKOFF / 2,
            "capped, not reset: {delays:?}"
        );
        reconnect.connected(false);
        assert!(reconnect.failed("refused".into()) <= FIRST_BACKOFF);
    }
}
