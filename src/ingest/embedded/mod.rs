//! The embedded MQTT listener, for a store box with no broker of its own: registers connect to the daemon itself
//! (MQTT 3.1.1 or 3.1, plain or TLS) and publish; each PUBLISH goes straight to the writer.
//!
//! Guarantees: a register's QoS 1 PUBLISH is acknowledged only after the event (or its dead letter) is committed,
//! so a queue in between would add nothing: the register keeps what is not acknowledged. With logins configured,
//! only a logged-in register publishes, and only for its own register or store ([`acl`]). Nothing is ever
//! published to a client: subscriptions are refused. A misbehaving connection is closed alone; the listener and
//! the other registers go on.

mod acl;
mod codec;
mod session;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;
use tokio_util::sync::CancellationToken;

use super::poller::{Handoff, Status};
use crate::config::{BrokerUrl, MqttConfig, TlsFiles};

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error(
        "cannot start the embedded MQTT broker on {addr}: {cause}. If a broker already runs there, point tillmark \
         at it with `[mqtt] url = \"mqtt://{addr}\"`; otherwise choose a free port with `[mqtt] embedded_listen`."
    )]
    Bind {
        addr: SocketAddr,
        cause: std::io::Error,
    },
    #[error(
        "cannot serve MQTT over TLS with [mqtt] embedded_tls_cert {cert} and embedded_tls_key {key}: {cause}. They \
         must be a PEM certificate chain and its private key."
    )]
    Tls {
        cert: PathBuf,
        key: PathBuf,
        cause: String,
    },
    #[error(
        "cannot open the local socket through which the MQTT client's connections are carried to the broker over \
         TLS: {cause}. It is made in the temporary folder ({}), which must be writable; set TMPDIR to another.",
        std::env::temp_dir().display()
    )]
    Tunnel { cause: std::io::Error },
}

/// The listener, bound but not yet serving, so a taken port is reported before anything else starts.
pub struct Bound {
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    url: BrokerUrl,
}

impl Bound {
    pub async fn bind(config: &MqttConfig) -> Result<Bound, BrokerError> {
        let addr = config.embedded_listen;
        let tls = config.embedded_tls.as_ref().map(acceptor).transpose()?;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|cause| BrokerError::Bind { addr, cause })?;
        let mut local = listener
            .local_addr()
            .map_err(|cause| BrokerError::Bind { addr, cause })?;
        // Clients on this machine reach an every-address listener on loopback.
        match local.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => local.set_ip(Ipv4Addr::LOCALHOST.into()),
            IpAddr::V6(ip) if ip.is_unspecified() => local.set_ip(Ipv6Addr::LOCALHOST.into()),
            _ => {}
        }
        let url = BrokerUrl {
            tls: tls.is_some(),
            ..BrokerUrl::plain(local)
        };
        Ok(Bound { listener, tls, url })
    }

    /// Where registers on this machine connect: `mqtt://` or, with TLS, `mqtts://`.
    pub fn url(&self) -> &BrokerUrl {
        &self.url
    }

    /// Serves registers until `intake` is cancelled, handing their messages to `tx`.
    pub fn serve(
        self,
        config: &MqttConfig,
        tx: Handoff,
        status: Status,
        intake: CancellationToken,
    ) -> JoinHandle<()> {
        let shared = Arc::new(Shared {
            acl: acl::Acl::new(config),
            tx,
            intake,
            clients: Mutex::new(HashMap::new()),
            serial: AtomicU64::new(0),
            warned: Mutex::new(HashMap::new()),
        });
        tokio::spawn(accept(self, shared, status))
    }
}

fn acceptor(files: &TlsFiles) -> Result<TlsAcceptor, BrokerError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let fail = |cause: String| BrokerError::Tls {
        cert: files.cert.clone(),
        key: files.key.clone(),
        cause,
    };
    let certs = CertificateDer::pem_file_iter(&files.cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| fail(e.to_string()))?;
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| fail(e.to_string()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| fail(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| fail(e.to_string()))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// What every connection of one listener shares.
pub(crate) struct Shared {
    acl: acl::Acl,
    tx: Handoff,
    intake: CancellationToken,
    /// Client id → the connection holding it, which a new connection with the same id closes.
    clients: Mutex<HashMap<String, (u64, CancellationToken)>>,
    serial: AtomicU64,
    /// When each client was last warned about a refused PUBLISH.
    warned: Mutex<HashMap<String, Instant>>,
}

/// One WARN a minute per client for refused publishes: a register retrying in a loop must not flood the log.
const WARN_EVERY: Duration = Duration::from_secs(60);

impl Shared {
    /// Takes `client_id` for a new connection, closing the one that held it (MQTT 3.1.1, 3.1.4-2).
    fn claim(&self, client_id: &str) -> (u64, CancellationToken) {
        let serial = self.serial.fetch_add(1, Ordering::Relaxed);
        let token = CancellationToken::new();
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, old)) = clients.insert(client_id.to_string(), (serial, token.clone())) {
            old.cancel();
        }
        (serial, token)
    }

    /// Gives up `client_id` when its connection `serial` ends, unless a newer connection already took it.
    fn release(&self, client_id: &str, serial: u64) {
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        if clients.get(client_id).is_some_and(|(s, _)| *s == serial) {
            clients.remove(client_id);
        }
    }

    fn should_warn(&self, client: &str) -> bool {
        let now = Instant::now();
        let mut warned = self.warned.lock().unwrap_or_else(|e| e.into_inner());
        if warned.len() > 10_000 {
            warned.retain(|_, at| now.duration_since(*at) < WARN_EVERY);
        }
        match warned.get(client) {
            Some(at) if now.duration_since(*at) < WARN_EVERY => false,
            _ => {
                warned.insert(client.to_string(), now);
                true
            }
        }
    }
}

/// How long a TLS handshake may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

async fn accept(bound: Bound, shared: Arc<Shared>, status: Status) {
    let Bound { listener, tls, url } = bound;
    tracing::info!(%url, logins = !shared.acl.is_open(), "Embedded MQTT broker listening.");
    status.set_listening(true);
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = shared.intake.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((tcp, peer)) => {
                    let _ = tcp.set_nodelay(true);
                    connections.spawn(connection(tcp, peer, tls.clone(), shared.clone()));
                }
                Err(e) => {
                    // Out of file descriptors, most likely: wait rather than spin.
                    tracing::warn!(error = %e, "Could not accept an MQTT connection.");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    status.set_listening(false);
    // Each connection acknowledges what was committed, then closes.
    while connections.join_next().await.is_some() {}
}

async fn connection(
    tcp: tokio::net::TcpStream,
    peer: SocketAddr,
    tls: Option<TlsAcceptor>,
    shared: Arc<Shared>,
) {
    let Some(acceptor) = tls else {
        return session::run(tcp, peer, shared).await;
    };
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
        Ok(Ok(stream)) => session::run(stream, peer, shared).await,
        Ok(Err(e)) => {
            tracing::info!(%peer, error = %e, "An MQTT client's TLS handshake failed.")
        }
        Err(_) => tracing::info!(%peer, "An MQTT client's TLS handshake timed out."),
    }
}
