//! An external broker over TLS (`mqtts://`): a Mosquitto TLS listener started by each test with certificates made
//! here, and what an operator reads when the CA, the client certificate or the scheme is wrong. Also: a message far
//! larger than the contract allows does not stop intake. Run when `TILLMARK_TEST_MQTT_URL` is set (Mosquitto is
//! installed there), skipped with a note otherwise.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use tillmark::config::{BrokerUrl, Config};
use tillmark::ingest::tls::{MqttTls, MqttTlsFiles};

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

/// A process of the test's, stopped when dropped: even when the test fails half-way.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A Mosquitto with one TLS listener on a free loopback port, stopped when dropped.
struct TlsBroker {
    _process: Running,
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
            _process: Running(child),
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

/// A register bridge publishing over TLS to `broker`, trusting `ca`, presenting `identity` when given.
async fn tls_bridge(broker: &BrokerUrl, ca: &Path, identity: Option<(PathBuf, PathBuf)>) -> Bridge {
    let tls = MqttTls::load(&MqttTlsFiles {
        ca: Some(ca.to_path_buf()),
        identity,
    })
    .expect("the test's TLS files load");
    let mut options = Bridge::options(broker);
    options.set_transport(tls.transport());
    Bridge::with_options(options).await
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
    let daemon = Running(spawn_tillmark(
        &config_path,
        &log,
        &[("TEST_NX_PASSWORD", NX_PASSWORD)],
    ));
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
    let mut bridge = tls_bridge(&broker.url, &pki.ca(), None).await;
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
    let mut bridge = tls_bridge(&broker.url, &pki.ca(), Some(bridge_identity)).await;
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
    let _daemon = Running(spawn_tillmark(
        &config_path,
        &log,
        &[("TEST_NX_PASSWORD", NX_PASSWORD)],
    ));
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

#[tokio::test]
async fn a_ten_megabyte_message_does_not_stop_intake() {
    let Some(broker) = mosquitto_available("a_ten_megabyte_message") else {
        return;
    };
    let site = Site::new();
    let (daemon, _) = start_daemon(site.config(Some(&broker), "http://127.0.0.1:9", "")).await;
    let mut options = Bridge::options(&broker);
    options.set_max_packet_size(16 << 20, 16 << 20);
    let mut bridge = Bridge::with_options(options).await;
    let huge = vec![b'x'; 10 << 20];
    bridge
        .publish_bytes(&site.topic("shibuya-01", "r1"), huge)
        .await;
    publish_voids(
        &site,
        &mut bridge,
        &[("after-1", "r1", AT), ("after-2", "r2", AT)],
    )
    .await;
    let api = format!("{}/api/events", web_base(&daemon));
    eventually(
        Duration::from_secs(20),
        "the events after the big one",
        || async {
            let events = get_json(&api).await["events"].as_array()?.clone();
            let ids: Vec<&str> = events.iter().filter_map(|e| e["id"].as_str()).collect();
            (ids.contains(&"after-1") && ids.contains(&"after-2")).then_some(())
        },
    )
    .await;
    let health = get(format!("{}/healthz", web_base(&daemon))).await.unwrap();
    assert_eq!(health.status(), 200, "{}", health.text().await.unwrap());
    daemon.shutdown().await;
}
