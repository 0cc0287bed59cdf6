//! The embedded MQTT listener as registers meet it: logins, what each login may publish, TLS, acknowledgements
//! that mean "on disk", and connections that misbehave without disturbing the others. A raw MQTT client speaks
//! the bytes, so each refusal is seen exactly as a register sees it.

use std::time::Duration;

use rumqttc::{AsyncClient, Event, Packet, QoS};
use tillmark::Daemon;
use tillmark::config::BrokerUrl;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::*;

const LOGINS: &str = r#"
[[mqtt.clients]]
username = "shibuya-01-r1"
password_env = "R1_PASSWORD"
register = "shibuya-01/r1"

[[mqtt.clients]]
username = "shibuya-01-all"
password_env = "STORE_PASSWORD"
register = "shibuya-01/*"
"#;
const R1_PASSWORD: &str = "r1-pass-5c1e";
const STORE_PASSWORD: &str = "store-pass-9d02";

/// A daemon on the embedded listener; `mqtt` is added to its `[mqtt]` section, `extra` after it.
async fn daemon(site: &Site, mqtt: &str, extra: &str) -> Daemon {
    let text = site
        .config_text(None, "http://127.0.0.1:9", extra)
        .replace("client_id = ", &format!("{mqtt}client_id = "));
    let config = parse_config(
        &text,
        &[
            ("TEST_NX_PASSWORD", NX_PASSWORD),
            ("R1_PASSWORD", R1_PASSWORD),
            ("STORE_PASSWORD", STORE_PASSWORD),
        ],
    );
    let daemon = start(config).await.expect("daemon starts");
    eventually(Duration::from_secs(10), "the listener", || async {
        daemon.receiving().then_some(())
    })
    .await;
    daemon
}

/// The ids of the events in the database, oldest first, read from the database itself.
async fn stored_ids(site: &Site) -> Vec<String> {
    let store = tillmark::store::open(&site.db_url())
        .await
        .expect("open the database");
    let query = tillmark::store::EventQuery {
        limit: 10_000,
        ..Default::default()
    };
    let mut events = store.events(&query).await.expect("read events");
    store.close().await;
    events.sort_by_key(|e| e.seq);
    events.into_iter().map(|e| e.id).collect()
}

async fn wait_stored(site: &Site, id: &str) {
    eventually(Duration::from_secs(10), id, || async {
        stored_ids(site).await.iter().any(|i| i == id).then_some(())
    })
    .await;
}

/// A register speaking MQTT byte by byte.
struct Raw {
    stream: TcpStream,
}

impl Raw {
    async fn open(broker: &BrokerUrl) -> Raw {
        let stream = TcpStream::connect((broker.host.as_str(), broker.port))
            .await
            .expect("connect");
        Raw { stream }
    }

    /// Opens a connection and sends CONNECT; returns it with the CONNACK's return code.
    async fn login(broker: &BrokerUrl, client_id: &str, login: Option<(&str, &str)>) -> (Raw, u8) {
        let mut raw = Raw::open(broker).await;
        raw.send(&connect_packet(4, client_id, login, 30)).await;
        let connack = raw.next().await.expect("a CONNACK");
        assert_eq!(
            connack[..3],
            [0x20, 2, 0],
            "CONNACK, no session: {connack:?}"
        );
        (raw, connack[3])
    }

    async fn send(&mut self, bytes: &[u8]) {
        // A write may fail once the listener has closed the connection; `closed` is what tests look at.
        let _ = self.stream.write_all(bytes).await;
    }

    /// The next whole packet, or `None` once the listener closed the connection.
    async fn next(&mut self) -> Option<Vec<u8>> {
        tokio::time::timeout(Duration::from_secs(10), async {
            let mut packet = vec![self.stream.read_u8().await.ok()?];
            let mut len = 0usize;
            for shift in [0, 7, 14, 21] {
                let byte = self.stream.read_u8().await.ok()?;
                packet.push(byte);
                len |= usize::from(byte & 0x7F) << shift;
                if byte & 0x80 == 0 {
                    break;
                }
            }
            let mut body = vec![0; len];
            self.stream.read_exact(&mut body).await.ok()?;
            packet.extend(body);
            Some(packet)
        })
        .await
        .expect("the listener answers or closes within 10 s")
    }

    async fn closed(&mut self) -> bool {
        self.next().await.is_none()
    }
}

fn remaining_length(out: &mut Vec<u8>, mut len: usize) {
    loop {
        let byte = (len % 128) as u8;
        len /= 128;
        out.push(if len > 0 { byte | 0x80 } else { byte });
        if len == 0 {
            return;
        }
    }
}

fn string(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(&(s.len() as u16).to_be_bytes());
    out.extend_from_slice(s);
}

fn connect_packet(
    level: u8,
    client_id: &str,
    login: Option<(&str, &str)>,
    keep_alive: u16,
) -> Vec<u8> {
    let mut body = Vec::new();
    string(&mut body, if level == 3 { b"MQIsdp" } else { b"MQTT" });
    body.push(level);
    body.push(if login.is_some() { 0xC2 } else { 0x02 });
    body.extend_from_slice(&keep_alive.to_be_bytes());
    if level == 5 {
        body.push(0); // no properties
    }
    string(&mut body, client_id.as_bytes());
    if let Some((user, password)) = login {
        string(&mut body, user.as_bytes());
        string(&mut body, password.as_bytes());
    }
    let mut out = vec![0x10];
    remaining_length(&mut out, body.len());
    out.extend(body);
    out
}

fn publish_packet(topic: &str, qos: u8, pkid: u16, payload: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    string(&mut body, topic.as_bytes());
    if qos > 0 {
        body.extend_from_slice(&pkid.to_be_bytes());
    }
    body.extend_from_slice(payload);
    let mut out = vec![0x30 | (qos << 1)];
    remaining_length(&mut out, body.len());
    out.extend(body);
    out
}

fn void(id: &str, register: &str) -> Vec<u8> {
    event(id, "void", register, AT).to_string().into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_logins_a_wrong_or_missing_password_is_refused_and_the_right_one_stores_events() {
    let site = Site::new();
    let daemon = daemon(&site, "", LOGINS).await;
    let broker = daemon.broker().clone();

    let (mut wrong, code) = Raw::login(&broker, "r1", Some(("shibuya-01-r1", "guess"))).await;
    assert_eq!(code, 4, "bad user name or password");
    assert!(wrong.closed().await);
    let (mut other, code) = Raw::login(&broker, "r1", Some(("nobody", R1_PASSWORD))).await;
    assert_eq!(code, 4);
    assert!(other.closed().await);
    let (mut none, code) = Raw::login(&broker, "r1", None).await;
    assert_eq!(code, 5, "not authorised");
    assert!(none.closed().await);

    let (mut r1, code) = Raw::login(&broker, "r1", Some(("shibuya-01-r1", R1_PASSWORD))).await;
    assert_eq!(code, 0);
    r1.send(&publish_packet(
        &site.topic("shibuya-01", "r1"),
        1,
        1,
        &void("e-1", "r1"),
    ))
    .await;
    assert_eq!(r1.next().await, Some(vec![0x40, 2, 0, 1]), "PUBACK");
    assert_eq!(stored_ids(&site).await, ["e-1"]);
    daemon.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_register_cannot_publish_for_another_register_nor_subscribe_to_everything() {
    let site = Site::new();
    let daemon = daemon(&site, "", LOGINS).await;
    let broker = daemon.broker().clone();
    let r1_login = Some(("shibuya-01-r1", R1_PASSWORD));

    let (mut r1, _) = Raw::login(&broker, "r1", r1_login).await;
    // SUBSCRIBE to "#" (packet id 7): refused, 0x80.
    r1.send(&[0x82, 6, 0, 7, 0, 1, b'#', 1]).await;
    assert_eq!(r1.next().await, Some(vec![0x90, 3, 0, 7, 0x80]));

    r1.send(&publish_packet(
        &site.topic("shibuya-01", "r2"),
        1,
        2,
        &void("forged", "r2"),
    ))
    .await;
    assert!(
        r1.closed().await,
        "a PUBLISH for another register closes the connection"
    );

    // The register's own events still go in, and the forged one never did.
    let (mut r1, _) = Raw::login(&broker, "r1", r1_login).await;
    r1.send(&publish_packet(
        &site.topic("shibuya-01", "r1"),
        1,
        3,
        &void("own", "r1"),
    ))
    .await;
    assert_eq!(r1.next().await, Some(vec![0x40, 2, 0, 3]));
    assert_eq!(stored_ids(&site).await, ["own"]);
    daemon.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_login_publishes_for_every_register_of_its_store_and_no_other_store() {
    let site = Site::new();
    let daemon = daemon(&site, "", LOGINS).await;
    let broker = daemon.broker().clone();
    let login = Some(("shibuya-01-all", STORE_PASSWORD));

    let (mut store, _) = Raw::login(&broker, "bridge", login).await;
    for (pkid, register) in [(1u16, "r1"), (2, "r2"), (3, "r9")] {
        let id = format!("{register}-e");
        store
            .send(&publish_packet(
                &site.topic("shibuya-01", register),
                1,
                pkid,
                &void(&id, register),
            ))
            .await;
        assert_eq!(store.next().await, Some(vec![0x40, 2, 0, pkid as u8]));
    }
    let mut elsewhere = event("osaka", "void", "r1", AT);
    elsewhere["store"] = "osaka-03".into();
    store
        .send(&publish_packet(
            &site.topic("osaka-03", "r1"),
            1,
            4,
            elsewhere.to_string().as_bytes(),
        ))
        .await;
    assert!(store.closed().await);
    assert_eq!(stored_ids(&site).await, ["r1-e", "r2-e", "r9-e"]);
    daemon.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_logins_a_topic_no_filter_accepts_closes_the_connection() {
    let site = Site::new();
    let daemon = daemon(&site, "", "").await;
    let (mut raw, code) = Raw::login(daemon.broker(), "anyone", None).await;
    assert_eq!(code, 0, "loopback without logins is open");
    raw.send(&publish_packet(
        "elsewhere/shibuya-01/r1/events",
        1,
        1,
        &void("x", "r1"),
    ))
    .await;
    assert!(raw.closed().await);
    assert!(stored_ids(&site).await.is_empty());
    daemon.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_puback_comes_only_once_the_event_is_in_the_database_file() {
    let site = Site::new();
    let daemon = daemon(&site, "", "").await;
    let (mut raw, _) = Raw::login(daemon.broker(), "r1", None).await;
    let topic = site.topic("shibuya-01", "r1");
    for pkid in 1..=20u16 {
        let id = format!("acked-{pkid}");
        raw.send(&publish_packet(&topic, 1, pkid, &void(&id, "r1")))
            .await;
        assert_eq!(raw.next().await, Some(vec![0x40, 2, 0, pkid as u8]));
        assert!(
            stored_ids(&site).await.contains(&id),
            "{id} is in the file when its PUBACK arrives"
        );
    }
    daemon.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qos_0_and_qos_2_publishes_are_stored_and_qos_2_completes_with_pubrec_and_pubcomp() {
    let site = Site::new();
    let daemon = daemon(&site, "", "").await;
    let (mut raw, _) = Raw::login(daemon.broker(), "r1", None).await;
    let topic = site.topic("shibuya-01", "r1");
    raw.send(&publish_packet(&topic, 0, 0, &void("q0", "r1")))
        .await;
    raw.send(&publish_packet(&topic, 2, 9, &void("q2", "r1")))
        .await;
    assert_eq!(
        raw.next().await,
        Some(vec![0x50, 2, 0, 9]),
        "PUBREC, after the commit"
    );
    assert!(stored_ids(&site).await.contains(&"q2".to_string()));
    raw.send(&[0x62, 2, 0, 9]).await;
    assert_eq!(raw.next().await, Some(vec![0x70, 2, 0, 9]), "PUBCOMP");
    wait_stored(&site, "q0").await;
    // PINGREQ, UNSUBSCRIBE and DISCONNECT are answered as the protocol says.
    raw.send(&[0xC0, 0]).await;
    assert_eq!(raw.next().await, Some(vec![0xD0, 0]));
    raw.send(&[0xA2, 5, 0, 4, 0, 1, b'#']).await;
    assert_eq!(raw.next().await, Some(vec![0xB0, 2, 0, 4]));
    raw.send(&[0xE0, 0]).await;
    assert!(raw.closed().await);
    daemon.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_mqtt_3_1_register_is_served_and_an_mqtt_5_one_is_told_the_version_is_unacceptable() {
    let site = Site::new();
    let daemon = daemon(&site, "", "").await;
    let mut v5 = Raw::open(daemon.broker()).await;
    v5.send(&connect_packet(5, "r5", None, 30)).await;
    assert_eq!(v5.next().await, Some(vec![0x20, 2, 0, 1]));
    assert!(v5.closed().await);

    let mut v3 = Raw::open(daemon.broker()).await;
    v3.send(&connect_packet(3, "r3", None, 30)).await;
    assert_eq!(v3.next().await, Some(vec![0x20, 2, 0, 0]));
    v3.send(&publish_packet(
        &site.topic("shibuya-01", "r1"),
        1,
        1,
        &void("v3", "r1"),
    ))
    .await;
    assert_eq!(v3.next().await, Some(vec![0x40, 2, 0, 1]));
    daemon.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_connection_with_the_same_client_id_takes_over_and_the_first_is_closed() {
    let site = Site::new();
    let daemon = daemon(&site, "", "").await;
    let (mut first, _) = Raw::login(daemon.broker(), "till-3", None).await;
    let (mut second, code) = Raw::login(daemon.broker(), "till-3", None).await;
    assert_eq!(code, 0);
    assert!(first.closed().await);
    second.send(&[0xC0, 0]).await;
    assert_eq!(second.next().await, Some(vec![0xD0, 0]));
    daemon.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_register_silent_past_one_and_a_half_keep_alives_is_disconnected() {
    let site = Site::new();
    let daemon = daemon(&site, "", "").await;
    let mut raw = Raw::open(daemon.broker()).await;
    raw.send(&connect_packet(4, "quiet", None, 1)).await;
    assert_eq!(raw.next().await, Some(vec![0x20, 2, 0, 0]));
    let started = std::time::Instant::now();
    assert!(raw.closed().await);
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(1400) && waited < Duration::from_secs(4),
        "closed after {waited:?}"
    );
    daemon.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_packet_above_16_mib_closes_its_connection_and_an_oversized_event_below_it_is_dead_lettered()
 {
    let site = Site::new();
    let daemon = daemon(&site, "", "").await;
    let (mut other, _) = Raw::login(daemon.broker(), "bystander", None).await;
    let (mut huge, _) = Raw::login(daemon.broker(), "huge", None).await;
    // A PUBLISH announcing 16 MiB + 1 byte: refused from its header, before any of it is sent.
    let mut header = vec![0x32];
    remaining_length(&mut header, 16 * 1024 * 1024 + 1);
    huge.send(&header).await;
    assert!(huge.closed().await);

    // 100 KiB: above the contract's 64 KiB, so it is acknowledged and kept as a dead letter.
    let topic = site.topic("shibuya-01", "r1");
    other
        .send(&publish_packet(&topic, 1, 1, &vec![b'x'; 100 * 1024]))
        .await;
    assert_eq!(other.next().await, Some(vec![0x40, 2, 0, 1]));
    let store = tillmark::store::open(&site.db_url()).await.unwrap();
    let dead = store
        .counts(&tillmark::store::StoreScope::All)
        .await
        .unwrap()
        .dead_letters;
    store.close().await;
    assert_eq!(dead, 1);
    daemon.shutdown().await;
}

/// Random, truncated and corrupted packets on many connections: each is closed or answered, none stops the
/// listener, and a register afterwards is served as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_on_many_connections_never_stops_the_listener() {
    let site = Site::new();
    let daemon = daemon(&site, "", "").await;
    let broker = daemon.broker().clone();
    let topic = site.topic("shibuya-01", "r1");
    let mut seeds = vec![
        connect_packet(4, "fuzz", Some(("u", "p")), 5),
        connect_packet(3, "fuzz", None, 5),
        connect_packet(5, "fuzz", None, 5),
    ];
    let connect = connect_packet(4, "", None, 5);
    for packet in [
        publish_packet(&topic, 1, 1, &void("fz", "r1")),
        publish_packet(&topic, 2, 1, b"{}"),
        vec![0x82, 6, 0, 1, 0, 1, b'#', 1],
        vec![0x62, 2, 0, 1],
    ] {
        seeds.push([connect.clone(), packet].concat());
    }
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for round in 0..300usize {
        let mut bytes = seeds[round % seeds.len()].clone();
        match next() % 4 {
            0 => bytes.truncate((next() as usize) % bytes.len()),
            1 => {
                for _ in 0..1 + next() % 3 {
                    let i = (next() as usize) % bytes.len();
                    bytes[i] ^= 1 << (next() % 8);
                }
            }
            2 => bytes = (0..1 + next() % 40).map(|_| next() as u8).collect(),
            _ => bytes.extend((0..1 + next() % 8).map(|_| next() as u8)),
        }
        let mut raw = Raw::open(&broker).await;
        raw.send(&bytes).await;
        // Half are closed at once, half only stop sending: both must be harmless.
        if round % 2 == 0 {
            drop(raw);
        } else {
            let _ = raw.stream.shutdown().await;
        }
    }
    let (mut register, code) = Raw::login(&broker, "after-the-storm", None).await;
    assert_eq!(code, 0);
    register
        .send(&publish_packet(&topic, 1, 1, &void("calm", "r1")))
        .await;
    assert_eq!(register.next().await, Some(vec![0x40, 2, 0, 1]));
    assert!(stored_ids(&site).await.contains(&"calm".to_string()));
    daemon.shutdown().await;
}

/// A CA, and a certificate it signed for 127.0.0.1 and localhost with its key, as PEM.
fn private_ca() -> (String, String, String) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    (ca.pem(), cert.pem(), key.serialize_pem())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_register_trusting_the_private_ca_publishes_over_tls_with_its_login() {
    let _ = tokio_rustls::rustls::crypto::ring::default_provider().install_default();
    let site = Site::new();
    let (ca, cert, key) = private_ca();
    let cert_path = site.dir.path().join("mqtt-cert.pem");
    let key_path = site.dir.path().join("mqtt-key.pem");
    std::fs::write(&cert_path, cert).unwrap();
    std::fs::write(&key_path, key).unwrap();
    let tls = format!(
        "embedded_tls_cert = \"{}\"\nembedded_tls_key = \"{}\"\n",
        cert_path.display(),
        key_path.display()
    );
    let daemon = daemon(&site, &tls, LOGINS).await;
    let broker = daemon.broker().clone();
    assert!(broker.tls, "the daemon names an mqtts:// broker: {broker}");

    let ca_path = site.dir.path().join("mqtt-ca.pem");
    std::fs::write(&ca_path, ca).unwrap();
    let tls = tillmark::tls::MqttTls::load(&tillmark::tls::MqttTlsFiles {
        ca: Some(ca_path),
        identity: None,
    })
    .unwrap();
    let (mut options, _tunnel) = Bridge::tls_options("r1-tls", &broker, &tls);
    options.set_credentials("shibuya-01-r1", R1_PASSWORD);
    let (client, mut eventloop) = AsyncClient::new(options, 10);
    client
        .publish(
            site.topic("shibuya-01", "r1"),
            QoS::AtLeastOnce,
            false,
            void("tls-1", "r1"),
        )
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::PubAck(_))) => return,
                Ok(_) => {}
                Err(e) => panic!("the TLS connection failed: {e}"),
            }
        }
    })
    .await
    .expect("PUBACK over TLS");
    assert_eq!(stored_ids(&site).await, ["tls-1"]);

    // Plain MQTT on the TLS port gets at most a TLS alert, never a CONNACK, and the connection ends.
    let mut plain = Raw::open(&broker).await;
    plain
        .send(&connect_packet(
            4,
            "plain",
            Some(("shibuya-01-r1", R1_PASSWORD)),
            30,
        ))
        .await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(
        Duration::from_secs(10),
        plain.stream.read_to_end(&mut answer),
    )
    .await
    .expect("the connection ends");
    assert_ne!(
        answer.first(),
        Some(&0x20),
        "no CONNACK in clear: {answer:?}"
    );
    daemon.shutdown().await;
}
