//! An external broker over TLS (`mqtts://`): a Mosquitto TLS listener started by each test with certificates made
//! here, and what an operator reads when the CA, the client certificate or the scheme is wrong. Also: a message far
//! larger than the contract allows does not stop intake. Run when `TILLMARK_TEST_MQTT_URL` is set (Mosquitto is
//! installed there), skipped with a note otherwise.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use tillmark::config::{BrokerUrl, Config};
use tillmark::tls::{MqttTls, MqttTlsFiles, Tunnel};

use crate::support::*;

/// The plain Mosquitto of `TILLMARK_TEST_MQTT_URL`, or `None` (and a note) when the tests should not run.
fn mosquitto_available(test: &str) -> Option<BrokerUrl> {
    match std::env::var("TILLMARK_TEST_MQTT_URL") {
        Ok(url) if !url.is_empty() => Some(BrokerUrl::parse(&url).expect("TILLMARK_TEST_MQTT_URL")),
        _ => {
            eprintln!(
                "{test} skipped: set TILLMARK_TEST_MQTT_URL (and install mosquitto) to run the MQTT TLS tests"
            );
            None
        }
    }
}

/// A private CA, and PEM files it signed, in a folder of the test's site.
struct Pki {
    dir: PathBuf,
    issuer: Issuer<'static, KeyPair>,
}

impl Pki {
    fn new(dir: &Path, name: &str) -> Pki {
        let dir = dir.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let mut params = CertificateParams::new(Vec::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, format!("{name} test CA"));
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        std::fs::write(dir.join("ca.pem"), cert.pem()).unwrap();
        Pki {
            dir,
            issuer: Issuer::new(params, key),
        }
    }

    fn ca(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// A certificate for `names`, signed by this CA: `(cert.pem, key.pem)`.
    fn issue(&self, file: &str, names: &[&str]) -> (PathBuf, PathBuf) {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let params = CertificateParams::new(names).unwrap();
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let (cert_path, key_path) = (
            self.dir.join(format!("{file}.pem")),
            self.dir.join(format!("{file}.key")),
        );
        std::fs::write(&cert_path, cert.pem()).unwrap();
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        (cert_path, key_path)
    }
}

/// A Mosquitto with one TLS listener on a free loopback port, stopped when dropped.
struct TlsBroker {
    _process: Process,
    url: BrokerUrl,
}

impl TlsBroker {
    /// Serves a certificate from `pki`; with `require_client_certificate`, clients must present one it signed.
    async fn start(pki: &Pki, require_client_certificate: bool) -> TlsBroker {
        let (cert, key) = pki.issue("server", &["localhost", "127.0.0.1"]);
        let port = free_port();
        let conf = pki.dir.join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!(
                "per_listener_settings false\nallow_anonymous true\npersistence false\nlog_dest stderr\n\
                 listener {port} 127.0.0.1\ncafile {ca}\ncertfile {cert}\nkeyfile {key}\n\
                 require_certificate {require_client_certificate}\n",
                ca = pki.ca().display(),
                cert = cert.display(),
                key = key.display(),
            ),
        )
        .unwrap();
        let log = std::fs::File::create(pki.dir.join("mosquitto.log")).unwrap();
        let spawn = |program: &str| {
            Command::new(program)
                .arg("-c")
                .arg(&conf)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log.try_clone().unwrap())
                .spawn()
        };
        let child = spawn("mosquitto")
            .or_else(|_| spawn("/usr/sbin/mosquitto"))
            .expect("start mosquitto (TILLMARK_TEST_MQTT_URL is set, so it should be installed)");
        eventually(Duration::from_secs(10), "mosquitto to listen", || async {
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .ok()
                .map(|_| ())
        })
        .await;
        TlsBroker {
            _process: Process(child),
            url: BrokerUrl::parse(&format!("mqtts://127.0.0.1:{port}")).unwrap(),
        }
    }

    /// The same listener addressed as plain MQTT.
    fn plain_url(&self) -> BrokerUrl {
        BrokerUrl::parse(&format!("mqtt://127.0.0.1:{}", self.url.port)).unwrap()
    }
}

/// The site's config text for `broker`, with `tls` (lines of `[mqtt]`) after its url.
fn config_text(site: &Site, broker: &BrokerUrl, tls: &str) -> String {
    let url = format!("url = \"{broker}\"");
    site.config_text(Some(broker), "http://127.0.0.1:9", "")
        .replacen(&url, &format!("{url}\n{tls}"), 1)
}

fn config(site: &Site, broker: &BrokerUrl, tls: &str) -> Config {
    parse_config(
        &config_text(site, broker, tls),
        &[("TEST_NX_PASSWORD", NX_PASSWORD)],
    )
}

fn tls_lines(ca: &Path, identity: Option<&(PathBuf, PathBuf)>) -> String {
    let mut lines = format!("tls_ca = \"{}\"\n", ca.display());
    if let Some((cert, key)) = identity {
        lines += &format!(
            "client_cert = \"{}\"\nclient_key = \"{}\"\n",
            cert.display(),
            key.display()
        );
    }
    lines
}

/// A register bridge publishing over TLS to `broker`, trusting `ca`, presenting `identity` when given; with the
/// tunnel it publishes through, to keep while it does.
async fn tls_bridge(
    broker: &BrokerUrl,
    ca: &Path,
    identity: Option<(PathBuf, PathBuf)>,
) -> (Bridge, Tunnel) {
    let tls = MqttTls::load(&MqttTlsFiles {
        ca: Some(ca.to_path_buf()),
        identity,
    })
    .expect("the test's TLS files load");
    let (options, tunnel) = Bridge::tls_options(&unique("bridge"), broker, &tls);
    (Bridge::with_options(options).await, tunnel)
}

/// Publishes a void over TLS and waits until the daemon's index lists it.
async fn void_arrives(site: &Site, bridge: &mut Bridge, daemon: &tillmark::Daemon, id: &str) {
    publish_void(site, bridge, id, "r1", AT).await;
    let api = format!("{}/api/events", web_base(daemon));
    eventually(Duration::from_secs(10), "the void in the index", || {
        let api = api.clone();
        async move {
            let events = get_json(&api).await["events"].as_array()?.clone();
            events.iter().any(|e| e["id"] == id).then_some(())
        }
    })
    .await;
}

/// Runs the tillmark binary on `config` until its log holds `expected`; returns the log.
async fn log_of_refused_daemon(site: &Site, config: &str, expected: &str) -> String {
    let config_path = site.dir.path().join("tillmark.toml");
    std::fs::write(&config_path, config).unwrap();
    let log = site.dir.path().join("tillmark.log");
    let daemon = spawn_tillmark(&config_path, &log, &[("TEST_NX_PASSWORD", NX_PASSWORD)]);
    let waited = tokio::time::timeout(Duration::from_secs(15), wait_for_log(&log, expected)).await;
    drop(daemon);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(waited.is_ok(), "the log never said \"{expected}\":\n{text}");
    text
}

#[tokio::test]
async fn events_arrive_over_tls_from_a_broker_whose_certificate_the_ca_in_tls_ca_signed() {
    if mosquitto_available("events_arrive_over_tls").is_none() {
        return;
    }
    let site = Site::new();
    let pki = Pki::new(site.dir.path(), "site");
    let broker = TlsBroker::start(&pki, false).await;
    let (daemon, _) = start_daemon(config(&site, &broker.url, &tls_lines(&pki.ca(), None))).await;
    let (mut bridge, _tunnel) = tls_bridge(&broker.url, &pki.ca(), None).await;
    void_arrives(&site, &mut bridge, &daemon, "void-tls-1").await;
    daemon.shutdown().await;
}

#[tokio::test]
async fn a_broker_signed_by_another_ca_is_refused_and_the_log_names_tls_ca() {
    if mosquitto_available("a_broker_signed_by_another_ca").is_none() {
        return;
    }
    let site = Site::new();
    let broker_pki = Pki::new(site.dir.path(), "broker");
    let other = Pki::new(site.dir.path(), "other");
    let broker = TlsBroker::start(&broker_pki, false).await;
    let text = config_text(&site, &broker.url, &tls_lines(&other.ca(), None));
    let log = log_of_refused_daemon(
        &site,
        &text,
        "the broker's certificate is not signed by the CA in [mqtt] tls_ca",
    )
    .await;
    assert!(
        log.contains(&other.ca().display().to_string()),
        "the line names the file: {log}"
    );
}

#[tokio::test]
async fn a_broker_that_requires_a_client_certificate_accepts_client_cert_and_refuses_a_daemon_without_one()
 {
    if mosquitto_available("a_broker_that_requires_a_client_certificate").is_none() {
        return;
    }
    let site = Site::new();
    let pki = Pki::new(site.dir.path(), "site");
    let broker = TlsBroker::start(&pki, true).await;

    let without = config_text(&site, &broker.url, &tls_lines(&pki.ca(), None));
    log_of_refused_daemon(
        &site,
        &without,
        "the broker requires a client certificate: set [mqtt] client_cert and client_key",
    )
    .await;

    let daemon_identity = pki.issue("tillmark", &["tillmark"]);
    let tls = tls_lines(&pki.ca(), Some(&daemon_identity));
    let (daemon, _) = start_daemon(config(&site, &broker.url, &tls)).await;
    let bridge_identity = pki.issue("bridge", &["bridge"]);
    let (mut bridge, _tunnel) = tls_bridge(&broker.url, &pki.ca(), Some(bridge_identity)).await;
    void_arrives(&site, &mut bridge, &daemon, "void-mtls-1").await;
    daemon.shutdown().await;
}

#[tokio::test]
async fn a_client_certificate_from_a_ca_the_broker_does_not_trust_is_refused_with_client_cert_named()
 {
    if mosquitto_available("a_client_certificate_from_a_ca_the_broker_does_not_trust").is_none() {
        return;
    }
    let site = Site::new();
    let pki = Pki::new(site.dir.path(), "site");
    let stranger = Pki::new(site.dir.path(), "stranger");
    let broker = TlsBroker::start(&pki, true).await;
    let identity = stranger.issue("tillmark", &["tillmark"]);
    let text = config_text(&site, &broker.url, &tls_lines(&pki.ca(), Some(&identity)));
    log_of_refused_daemon(
        &site,
        &text,
        "the broker refused the client certificate in [mqtt] client_cert",
    )
    .await;
}

#[tokio::test]
async fn plain_mqtt_against_the_tls_port_is_refused_with_one_warning_that_says_use_mqtts() {
    if mosquitto_available("plain_mqtt_against_the_tls_port").is_none() {
        return;
    }
    let site = Site::new();
    let pki = Pki::new(site.dir.path(), "site");
    let broker = TlsBroker::start(&pki, false).await;
    let text = config_text(&site, &broker.plain_url(), "");
    let config_path = site.dir.path().join("tillmark.toml");
    std::fs::write(&config_path, text).unwrap();
    let log = site.dir.path().join("tillmark.log");
    let _daemon = spawn_tillmark(&config_path, &log, &[("TEST_NX_PASSWORD", NX_PASSWORD)]);
    wait_for_log(&log, "is this a TLS port? use mqtts://").await;
    // Retries go on (each at DEBUG); the operator's log keeps the one warning.
    let retried = eventually(Duration::from_secs(15), "three retries", || async {
        let text = std::fs::read_to_string(&log).ok()?;
        (text.matches("Still cannot reach the MQTT broker").count() >= 3).then_some(text)
    })
    .await;
    let warnings: Vec<&str> = retried
        .lines()
        .filter(|l| l.contains("WARN") && l.contains("tillmark::ingest"))
        .collect();
    assert_eq!(
        warnings.len(),
        1,
        "one warning for the outage: {warnings:#?}"
    );
    assert!(warnings[0].contains("is this a TLS port? use mqtts://"));
}

/// The database file's size once its write-ahead log is folded in: what the events take on disk.
async fn checkpointed_size(site: &Site) -> u64 {
    use sqlx::ConnectOptions;
    let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(site.dir.path().join("tillmark.db"))
        .connect()
        .await
        .expect("open the database");
    sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
        .execute(&mut conn)
        .await
        .expect("checkpoint");
    drop(conn);
    std::fs::metadata(site.dir.path().join("tillmark.db"))
        .expect("the database file")
        .len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ten_and_a_five_megabyte_message_become_two_small_dead_letters_and_the_hundred_events_after_them_are_bookmarked()
 {
    let Some(broker) = mosquitto_available("a_ten_and_a_five_megabyte_message") else {
        return;
    };
    let nx = crate::fake_nx::FakeNx::start(&[CAM1, CAM2]).await;
    let site = Site::new();
    if site.sqlite_only("the database file's size") {
        return;
    }
    let (daemon, _) = start_daemon(site.config(Some(&broker), &nx.url, "")).await;
    let base = web_base(&daemon);
    let before = checkpointed_size(&site).await;
    // /healthz, every 50 ms for the whole run: it must never say intake stopped.
    let stop = tokio_util::sync::CancellationToken::new();
    let health = tokio::spawn({
        let (url, stop) = (format!("{base}/healthz"), stop.clone());
        async move {
            let mut statuses = Vec::new();
            while !stop.is_cancelled() {
                statuses.push(get(&url).await.map(|r| r.status().as_u16()).unwrap_or(0));
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            statuses
        }
    });

    let mut options = Bridge::options(&broker);
    options.set_max_packet_size(16 << 20, 16 << 20);
    let mut bridge = Bridge::with_options(options).await;
    let topic = site.topic("shibuya-01", "r1");
    let ten = vec![b'x'; 10 << 20];
    let five = [b"{\"id\": \"".as_slice(), &vec![b'7'; 5 << 20]].concat();
    bridge.publish_bytes(&topic, ten.clone()).await;
    bridge.publish_bytes(&topic, five.clone()).await;
    for i in 0..100 {
        bridge
            .publish(&topic, &event(&format!("after-{i}"), "void", "r1", AT))
            .await;
    }
    // Each void on r1 is one bookmark, on "Counter 1".
    eventually(Duration::from_secs(60), "100 bookmarks", || async {
        (nx.bookmarks().len() == 100).then_some(())
    })
    .await;
    let events = get_json(&format!("{base}/api/events?limit=1000")).await;
    assert_eq!(events["events"].as_array().unwrap().len(), 100);
    let letters = get_json(&format!("{base}/api/dead-letters")).await["dead_letters"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(letters.len(), 2, "{letters:#?}");
    for (payload, letter) in [(&five, &letters[0]), (&ten, &letters[1])] {
        assert_eq!(letter["size"].as_u64(), Some(payload.len() as u64));
        assert_eq!(
            letter["sha256"].as_str(),
            Some(tillmark::store::sha256_hex(payload).as_str())
        );
        assert!(letter["raw"].as_str().unwrap().len() <= 1100);
        assert!(
            letter["reason"]
                .as_str()
                .unwrap()
                .starts_with("payload is ")
        );
    }
    stop.cancel();
    let statuses = health.await.unwrap();
    assert!(
        statuses.len() > 10 && statuses.iter().all(|s| *s == 200),
        "{statuses:?}"
    );
    daemon.shutdown().await;
    let grown = checkpointed_size(&site).await.saturating_sub(before);
    assert!(grown < 1 << 20, "the database grew by {grown} bytes");
}

#[tokio::test]
async fn mqtts_to_a_plain_port_is_refused_with_a_line_that_says_use_mqtt() {
    let Some(plain) = mosquitto_available("mqtts_to_a_plain_port") else {
        return;
    };
    let site = Site::new();
    let pki = Pki::new(site.dir.path(), "site");
    let url = BrokerUrl::parse(&format!("mqtts://{}:{}", plain.host, plain.port)).unwrap();
    let text = config_text(&site, &url, &tls_lines(&pki.ca(), None));
    log_of_refused_daemon(&site, &text, "plain-MQTT port? use mqtt://").await;
}

#[tokio::test]
async fn the_tunnels_socket_is_in_a_folder_only_its_user_may_enter_and_goes_with_it() {
    use std::os::unix::fs::PermissionsExt;
    let site = Site::new();
    let pki = Pki::new(site.dir.path(), "site");
    let tls = MqttTls::load(&MqttTlsFiles {
        ca: Some(pki.ca()),
        identity: None,
    })
    .unwrap();
    let tunnel = Tunnel::open("127.0.0.1", free_port(), &tls).unwrap();
    let socket = tunnel.path().to_path_buf();
    let folder = socket.parent().unwrap().to_path_buf();
    assert!(socket.exists());
    let mode = std::fs::metadata(&folder).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700, "{}", folder.display());
    // Nothing listens at the broker's port: the client's connection ends, and the tunnel says why.
    let mut client = tokio::net::UnixStream::connect(&socket).await.unwrap();
    let mut buf = Vec::new();
    use tokio::io::AsyncReadExt;
    let _ = client.read_to_end(&mut buf).await;
    let why = tunnel.take_failure().expect("a failure").explain(&tls);
    assert!(
        why.starts_with("nothing accepts connections at this address"),
        "{why}"
    );
    drop(tunnel);
    assert!(!socket.exists() && !folder.exists(), "{}", folder.display());
}
