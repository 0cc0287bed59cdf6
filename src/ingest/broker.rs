//! The embedded MQTT broker (rumqttd), for a store box with no broker of its own. It runs on its own threads
//! for the life of the process; persistent sessions keep a stopped consumer's QoS 1 messages.

use std::collections::HashMap;
use std::net::SocketAddr;

use rumqttd::{Broker, Config, ConnectionSettings, RouterConfig, ServerSettings};

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
    #[error("cannot start the embedded MQTT broker: {0}")]
    Start(String),
}

/// Starts the broker on `addr` (port 0 picks a free one) and returns the address it listens on.
pub fn start(addr: SocketAddr) -> Result<SocketAddr, BrokerError> {
    // rumqttd reports a failed bind only in its own log, from its own thread, so find out first.
    let probe =
        std::net::TcpListener::bind(addr).map_err(|cause| BrokerError::Bind { addr, cause })?;
    let listen = probe
        .local_addr()
        .map_err(|cause| BrokerError::Bind { addr, cause })?;
    drop(probe);

    let connections = ConnectionSettings {
        connection_timeout_ms: 60_000,
        // Above the contract's 64 KiB, so an oversized event arrives and is dead-lettered with its reason
        // instead of the broker dropping the bridge's connection.
        max_payload_size: 4 * 1024 * 1024,
        max_inflight_count: 200,
        auth: None,
        external_auth: None,
        dynamic_filters: true,
    };
    let server = ServerSettings {
        name: "tillmark-embedded".into(),
        listen,
        tls: None,
        next_connection_delay_ms: 1,
        connections,
    };
    let config = Config {
        id: 0,
        router: RouterConfig {
            max_connections: 10_000,
            max_outgoing_packet_count: 200,
            max_segment_size: 100 * 1024 * 1024,
            max_segment_count: 10,
            custom_segment: None,
            initialized_filters: None,
            shared_subscriptions_strategy: Default::default(),
        },
        v4: Some(HashMap::from([("1".to_string(), server)])),
        v5: None,
        ws: None,
        cluster: None,
        console: None,
        bridge: None,
        prometheus: None,
        metrics: None,
    };
    let mut broker = Broker::new(config);
    std::thread::Builder::new()
        .name("mqtt-broker".into())
        .spawn(move || {
            if let Err(e) = broker.start() {
                tracing::error!(error = %e, "The embedded MQTT broker stopped.");
            }
        })
        .map_err(|e| BrokerError::Start(e.to_string()))?;
    wait_until_listening(listen)?;
    Ok(listen)
}

fn wait_until_listening(addr: SocketAddr) -> Result<(), BrokerError> {
    for _ in 0..100 {
        if std::net::TcpStream::connect(addr).is_ok() {
            return Ok(());
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    Err(BrokerError::Start(format!(
        "it did not start listening on {addr} within 2 s"
    )))
}
