//! TLS to an `mqtts://` broker, carried for the MQTT client. rumqttc's own TLS feature links rustls-webpki 0.102
//! (for one error type), a line that is no longer maintained and carries advisories; so the client speaks plain
//! MQTT over a Unix socket in a folder only this user may enter, and the tunnel carries each of its connections to
//! the broker over TLS with the config's client configuration ([`MqttTls`]: ring, the CA in `tls_ca`, the client
//! certificate). Certificates are checked by rustls's own, current, verifier.
//!
//! The client only sees its socket close when this side fails, so the tunnel keeps why its newest connection
//! failed ([`Tunnel::take_failure`]) for the poller to tell the operator.

use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use rustls::pki_types::ServerName;
use tokio::net::{TcpStream, UnixListener, UnixStream};
use tokio::task::JoinHandle;
use tokio_rustls::TlsConnector;

use super::MqttTls;

/// Why a carried connection failed.
#[derive(Debug)]
pub enum Failure {
    /// The broker's address could not be reached.
    Connect(std::io::Error),
    /// The host cannot be a TLS server name.
    BadName(String),
    /// TLS refused: a certificate, an alert, a plain-MQTT port answering.
    Tls(rustls::Error),
    /// The broker closed the connection before the handshake finished.
    ClosedInHandshake,
    /// The connection broke after the handshake.
    Lost(std::io::Error),
}

impl Failure {
    /// In an operator's words, for the log and `/healthz`.
    pub fn explain(&self, tls: &MqttTls) -> String {
        match self {
            Failure::Connect(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                "nothing accepts connections at this address (connection refused): is the broker running, and is \
                 the port in [mqtt] url right?"
                    .into()
            }
            Failure::Connect(e) => format!("cannot reach the broker: {e}"),
            Failure::BadName(host) => format!(
                "the host in [mqtt] url ({host}) cannot be checked against a TLS certificate: use the broker's DNS \
                 name or IP address"
            ),
            Failure::Tls(e) => tls.explain(e),
            Failure::ClosedInHandshake => {
                "the broker closed the connection during the TLS handshake: is this a plain-MQTT port? use mqtt://"
                    .into()
            }
            Failure::Lost(e) => format!("the TLS connection to the broker broke: {e}"),
        }
    }
}

/// The newest connection's failure; older connections' ends are stale and not kept.
#[derive(Default)]
struct Failures {
    newest: AtomicU64,
    failure: Mutex<Option<Failure>>,
}

impl Failures {
    fn record(&self, connection: u64, failure: Failure) {
        if self.newest.load(Ordering::SeqCst) == connection
            && let Ok(mut slot) = self.failure.lock()
        {
            *slot = Some(failure);
        }
    }
}

/// A Unix socket the MQTT client connects to, each connection carried to the broker over TLS; the socket and its
/// folder go when it is dropped.
pub struct Tunnel {
    dir: PathBuf,
    path: PathBuf,
    failures: Arc<Failures>,
    task: JoinHandle<()>,
}

impl Tunnel {
    /// Listens on a new socket for connections to `host:port`. Must be called within a Tokio runtime.
    pub fn open(host: &str, port: u16, tls: &MqttTls) -> std::io::Result<Tunnel> {
        // The folder, not the socket, keeps other users out: connecting needs search permission on it.
        let dir = std::env::temp_dir().join(format!(
            "tillmark-mqtt-{}-{:016x}",
            std::process::id(),
            rand::random::<u64>()
        ));
        std::fs::DirBuilder::new().mode(0o700).create(&dir)?;
        let path = dir.join("broker.sock");
        let listener = match UnixListener::bind(&path) {
            Ok(l) => l,
            Err(e) => {
                let _ = std::fs::remove_dir(&dir);
                return Err(e);
            }
        };
        let failures = Arc::new(Failures::default());
        let name = ServerName::try_from(host.to_string()).map_err(|_| host.to_string());
        let carry = Carry {
            host: host.to_string(),
            port,
            name,
            connector: TlsConnector::from(tls.client_config()),
            failures: failures.clone(),
        };
        let task = tokio::spawn(async move {
            let carry = Arc::new(carry);
            while let Ok((client, _)) = listener.accept().await {
                let connection = carry.failures.newest.fetch_add(1, Ordering::SeqCst) + 1;
                if let Ok(mut slot) = carry.failures.failure.lock() {
                    *slot = None;
                }
                tokio::spawn(carry.clone().run(client, connection));
            }
        });
        Ok(Tunnel {
            dir,
            path,
            failures,
            task,
        })
    }

    /// The socket the MQTT client connects to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Why the newest connection failed, once: `None` when it did not fail on this side.
    pub fn take_failure(&self) -> Option<Failure> {
        self.failures.failure.lock().ok()?.take()
    }
}

impl Drop for Tunnel {
    fn drop(&mut self) {
        self.task.abort();
        let _ = std::fs::remove_file(&self.path);
        let _ = std::fs::remove_dir(&self.dir);
    }
}

struct Carry {
    host: String,
    port: u16,
    name: Result<ServerName<'static>, String>,
    connector: TlsConnector,
    failures: Arc<Failures>,
}

impl Carry {
    async fn run(self: Arc<Self>, mut client: UnixStream, connection: u64) {
        let fail = |failure| self.failures.record(connection, failure);
        let name = match &self.name {
            Ok(name) => name.clone(),
            Err(host) => return fail(Failure::BadName(host.clone())),
        };
        let tcp = match TcpStream::connect((self.host.as_str(), self.port)).await {
            Ok(tcp) => tcp,
            Err(e) => return fail(Failure::Connect(e)),
        };
        // MQTT's packets are small and each waits for its answer.
        let _ = tcp.set_nodelay(true);
        let mut broker = match self.connector.connect(name, tcp).await {
            Ok(stream) => stream,
            Err(e) => {
                return fail(match rustls_error(&e) {
                    Some(tls) => Failure::Tls(tls),
                    None if closed(&e) => Failure::ClosedInHandshake,
                    None => Failure::Connect(e),
                });
            }
        };
        if let Err(e) = tokio::io::copy_bidirectional(&mut client, &mut broker).await {
            // The client hanging up first is its own doing, not a failure to report.
            if !closed(&e) || rustls_error(&e).is_some() {
                fail(match rustls_error(&e) {
                    Some(tls) => Failure::Tls(tls),
                    None => Failure::Lost(e),
                });
            }
        }
    }
}

fn rustls_error(e: &std::io::Error) -> Option<rustls::Error> {
    e.get_ref()?.downcast_ref::<rustls::Error>().cloned()
}

fn closed(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        UnexpectedEof | ConnectionReset | BrokenPipe | ConnectionAborted
    )
}
