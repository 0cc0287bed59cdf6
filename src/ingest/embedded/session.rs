//! One register's connection to the embedded listener, from CONNECT to close.
//!
//! Guarantees: a QoS 1 PUBLISH is answered with PUBACK (QoS 2: PUBREC) only after the writer has committed it,
//! in the order the register sent them; at most [`MAX_IN_FLIGHT`] messages of a connection wait for their
//! commit (then it is not read, so TCP holds the register back). Anything wrong on a connection (malformed or
//! oversized packet, refused topic, missed keep-alive) closes that connection only. Nothing is kept between a
//! register's connections: CONNACK never reports a session, and a message not yet acknowledged when a
//! connection closes is published again by the register.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use rumqttc::QoS;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::oneshot;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::Shared;
use super::acl::{Identity, Refusal};
use super::codec::{self, DecodeError, Packet, refused};
use crate::clock::now_ms;
use crate::ingest::poller::{Ack, Inbound, Message};

/// Messages of one connection waiting for their commit before the connection reads on.
pub const MAX_IN_FLIGHT: usize = 256;
/// Time from accepting a connection to its CONNECT.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// A register that does not read its acknowledgements for this long is gone.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// At shutdown, how long the messages already handed over may take to commit and be acknowledged.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a connection ended.
#[derive(Debug)]
enum Closed {
    /// DISCONNECT or end of stream.
    ByClient,
    Io(std::io::Error),
    Decode(DecodeError),
    Protocol(&'static str),
    KeepAlive,
    TakenOver,
    Refused,
    /// Intake stopped (shutdown); what arrived was acknowledged as far as it committed.
    Stopping,
    /// The writer dropped a message without committing it (it is stopping).
    NotCommitted,
}

impl From<std::io::Error> for Closed {
    fn from(e: std::io::Error) -> Self {
        Closed::Io(e)
    }
}

impl From<DecodeError> for Closed {
    fn from(e: DecodeError) -> Self {
        Closed::Decode(e)
    }
}

struct Waiting {
    pkid: u16,
    qos: QoS,
    committed: oneshot::Receiver<()>,
}

struct Session<S> {
    stream: S,
    buf: BytesMut,
    peer: SocketAddr,
    client_id: String,
    identity: Identity,
    keep_alive: Option<Duration>,
    waiting: VecDeque<Waiting>,
    shared: Arc<Shared>,
}

/// Serves one connection (plain or TLS) until it closes.
pub async fn run<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    peer: SocketAddr,
    shared: Arc<Shared>,
) {
    let mut buf = BytesMut::with_capacity(4096);
    let connect = match tokio::time::timeout(CONNECT_TIMEOUT, first_packet(&mut stream, &mut buf))
        .await
    {
        Ok(Ok(Packet::Connect(connect))) => connect,
        Ok(Ok(_)) => {
            tracing::warn!(%peer, "Closed an MQTT connection whose first packet was not CONNECT.");
            return;
        }
        Ok(Err(Closed::Decode(DecodeError::UnacceptableProtocol(level)))) => {
            tracing::warn!(%peer, level,
                "Refused an MQTT connection: the embedded broker speaks MQTT 3.1.1 and 3.1; use an external broker for MQTT 5 registers.");
            let _ = send(&mut stream, &codec::connack(refused::PROTOCOL_VERSION)).await;
            let _ = stream.shutdown().await;
            return;
        }
        Ok(Err(closed)) => {
            log_closed(&peer, "", &closed);
            return;
        }
        Err(_) => {
            tracing::debug!(%peer, "Closed an MQTT connection that sent no CONNECT in time.");
            return;
        }
    };
    let identity = match shared
        .acl
        .login(connect.username.as_deref(), connect.password.as_deref())
    {
        Ok(identity) => identity,
        Err(code) => {
            tracing::warn!(%peer, client_id = %connect.client_id, username = ?connect.username,
                "Refused an MQTT login: wrong or missing username or password.");
            let _ = send(&mut stream, &codec::connack(code)).await;
            // Closed in order, so the refusal is read before the connection ends.
            let _ = stream.shutdown().await;
            return;
        }
    };
    let client_id = if connect.client_id.is_empty() {
        format!("anonymous-{peer}")
    } else {
        connect.client_id
    };
    let (serial, taken_over) = shared.claim(&client_id);
    if send(&mut stream, &codec::connack(0)).await.is_ok() {
        tracing::debug!(%peer, %client_id, "Register connected.");
        let mut session = Session {
            stream,
            buf,
            peer,
            client_id: client_id.clone(),
            identity,
            keep_alive: (connect.keep_alive > 0)
                .then(|| Duration::from_millis(u64::from(connect.keep_alive) * 1500)),
            waiting: VecDeque::new(),
            shared: shared.clone(),
        };
        let closed = session.serve(&taken_over).await;
        log_closed(&peer, &client_id, &closed);
    }
    shared.release(&client_id, serial);
}

async fn first_packet<S: AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut BytesMut,
) -> Result<Packet, Closed> {
    loop {
        if let Some(packet) = codec::take(buf, codec::MAX_CONNECT)? {
            return Ok(packet);
        }
        if stream.read_buf(buf).await? == 0 {
            return Err(Closed::ByClient);
        }
    }
}

async fn send<S: AsyncWrite + Unpin>(stream: &mut S, bytes: &[u8]) -> Result<(), Closed> {
    let write = async {
        stream.write_all(bytes).await?;
        stream.flush().await
    };
    match tokio::time::timeout(WRITE_TIMEOUT, write).await {
        Ok(result) => Ok(result?),
        Err(_) => Err(Closed::Io(std::io::ErrorKind::TimedOut.into())),
    }
}

fn log_closed(peer: &SocketAddr, client_id: &str, closed: &Closed) {
    match closed {
        Closed::Decode(e @ DecodeError::TooLarge(_)) => {
            tracing::warn!(%peer, %client_id, error = %e, "Closed an MQTT connection: its packet is too large.")
        }
        Closed::Decode(e) => {
            tracing::warn!(%peer, %client_id, error = %e, "Closed an MQTT connection: protocol error.")
        }
        Closed::Protocol(e) => {
            tracing::warn!(%peer, %client_id, error = %e, "Closed an MQTT connection: protocol error.")
        }
        Closed::KeepAlive => {
            tracing::info!(%peer, %client_id, "Closed an MQTT connection silent for 1.5 times its keep-alive.")
        }
        Closed::TakenOver => {
            tracing::info!(%peer, %client_id, "A new connection with this client id took over; closed the old one.")
        }
        // Said already, rate limited.
        Closed::Refused => {}
        Closed::Io(e) => {
            tracing::debug!(%peer, %client_id, error = %e, "Register connection lost.")
        }
        Closed::ByClient | Closed::Stopping | Closed::NotCommitted => {
            tracing::debug!(%peer, %client_id, reason = ?closed, "Register disconnected.")
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Session<S> {
    async fn serve(&mut self, taken_over: &CancellationToken) -> Closed {
        let intake = self.shared.intake.clone();
        let mut heard = Instant::now();
        loop {
            // What is already buffered is handled first, as far as the in-flight window allows.
            while self.waiting.len() < MAX_IN_FLIGHT {
                match codec::take(&mut self.buf, codec::MAX_PACKET) {
                    Ok(Some(packet)) => {
                        if let Err(closed) = self.handle(packet).await {
                            return closed;
                        }
                    }
                    Ok(None) => break,
                    Err(e) => return Closed::Decode(e),
                }
            }
            let deadline = self.keep_alive.map(|k| heard + k);
            let reading = self.waiting.len() < MAX_IN_FLIGHT;
            tokio::select! {
                biased;
                _ = taken_over.cancelled() => return Closed::TakenOver,
                _ = intake.cancelled() => return self.drain().await,
                committed = next_commit(&mut self.waiting) => {
                    let waiting = self.waiting.pop_front().expect("the commit waited for is first");
                    if committed.is_err() {
                        return Closed::NotCommitted;
                    }
                    if let Err(closed) = self.acknowledge(&waiting).await {
                        return closed;
                    }
                }
                read = self.stream.read_buf(&mut self.buf), if reading => match read {
                    Ok(0) => return Closed::ByClient,
                    Ok(_) => heard = Instant::now(),
                    Err(e) => return Closed::Io(e),
                },
                _ = sleep_until(deadline) => return Closed::KeepAlive,
            }
        }
    }

    async fn handle(&mut self, packet: Packet) -> Result<(), Closed> {
        match packet {
            Packet::Connect(_) => Err(Closed::Protocol("a second CONNECT")),
            Packet::Publish(publish) => self.publish(publish),
            Packet::PubRel { pkid } => send(&mut self.stream, &codec::pubcomp(pkid)).await,
            Packet::Subscribe { pkid, filters } => {
                tracing::debug!(peer = %self.peer, client_id = %self.client_id,
                    "Refused a subscription: registers only publish here.");
                send(&mut self.stream, &codec::suback_refused(pkid, filters)).await
            }
            Packet::Unsubscribe { pkid } => send(&mut self.stream, &codec::unsuback(pkid)).await,
            Packet::PingReq => send(&mut self.stream, &codec::PINGRESP).await,
            Packet::Disconnect => Err(Closed::ByClient),
        }
    }

    fn publish(&mut self, publish: codec::Publish) -> Result<(), Closed> {
        if let Err(refusal) = self.shared.acl.may_publish(&self.identity, &publish.topic) {
            let who = match &self.identity {
                Identity::Login { username, .. } => username.as_str(),
                Identity::Open => self.client_id.as_str(),
            };
            if self.shared.should_warn(who) {
                let why = match refusal {
                    Refusal::Topic => "no [mqtt] topics filter accepts this topic",
                    Refusal::Register => "this login may not publish for that register",
                };
                tracing::warn!(peer = %self.peer, client = %who, topic = %publish.topic, reason = why,
                    "Refused a PUBLISH and closed the connection.");
            }
            return Err(Closed::Refused);
        }
        let qos = match publish.qos {
            0 => QoS::AtMostOnce,
            1 => QoS::AtLeastOnce,
            _ => QoS::ExactlyOnce,
        };
        let (done, committed) = oneshot::channel();
        let message = Inbound::Publish {
            message: Message {
                topic: publish.topic,
                payload: publish.payload,
            },
            received_ms: now_ms(),
            ack: Ack::Embedded(done),
        };
        if self.shared.tx.send(message).is_err() {
            return Err(Closed::Stopping);
        }
        // QoS 0 waits too, unanswered: it is what bounds a flood of them.
        self.waiting.push_back(Waiting {
            pkid: publish.pkid,
            qos,
            committed,
        });
        Ok(())
    }

    async fn acknowledge(&mut self, waiting: &Waiting) -> Result<(), Closed> {
        match waiting.qos {
            QoS::AtMostOnce => Ok(()),
            QoS::AtLeastOnce => send(&mut self.stream, &codec::puback(waiting.pkid)).await,
            QoS::ExactlyOnce => send(&mut self.stream, &codec::pubrec(waiting.pkid)).await,
        }
    }

    /// Intake is stopping: nothing more is read; what was handed over is acknowledged as it commits.
    async fn drain(&mut self) -> Closed {
        let deadline = Instant::now() + DRAIN_TIMEOUT;
        while let Some(mut waiting) = self.waiting.pop_front() {
            match tokio::time::timeout_at(deadline, &mut waiting.committed).await {
                Ok(Ok(())) => {
                    if let Err(closed) = self.acknowledge(&waiting).await {
                        return closed;
                    }
                }
                _ => break,
            }
        }
        Closed::Stopping
    }
}

async fn next_commit(waiting: &mut VecDeque<Waiting>) -> Result<(), oneshot::error::RecvError> {
    match waiting.front_mut() {
        Some(w) => (&mut w.committed).await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
