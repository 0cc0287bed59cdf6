//! The harness: brokers (the daemon's embedded listener, rumqttd in the test process, or Mosquitto when
//! `TILLMARK_TEST_MQTT_URL` is set), a publisher that waits for PUBACK, configs, and polling helpers.

use std::future::Future;
use std::time::Duration;

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde_json::Value;
use tillmark::Daemon;
use tillmark::config::{BrokerUrl, Config};
use tillmark::tls::{MqttTls, Tunnel};

/// An external broker for tests that need one to outlive the daemon: Mosquitto when its URL is given,
/// otherwise a broker started in this test process.
pub struct ExternalBroker {
    /// Where the daemon subscribes (MQTT 5).
    pub daemon: BrokerUrl,
    /// Where the registers' bridges publish (MQTT 3.1.1, as most bridges do).
    pub registers: BrokerUrl,
}

pub fn external_broker() -> ExternalBroker {
    match std::env::var("TILLMARK_TEST_MQTT_URL") {
        Ok(url) if !url.is_empty() => {
            let url = BrokerUrl::parse(&url).expect("TILLMARK_TEST_MQTT_URL");
            ExternalBroker {
                daemon: url.clone(),
                registers: url,
            }
        }
        _ => {
            let (v4, v5) = start_rumqttd();
            ExternalBroker {
                daemon: BrokerUrl::plain(v5),
                registers: BrokerUrl::plain(v4),
            }
        }
    }
}

/// Starts rumqttd on free loopback ports, MQTT 3.1.1 on the first and MQTT 5 on the second, on its own
/// threads for the rest of the test process.
fn start_rumqttd() -> (std::net::SocketAddr, std::net::SocketAddr) {
    use rumqttd::{Broker, Config, ConnectionSettings, RouterConfig, ServerSettings};
    let server = |name: &str| {
        let listen = std::net::SocketAddr::from(([127, 0, 0, 1], free_port()));
        let settings = ServerSettings {
            name: name.into(),
            listen,
            tls: None,
            next_connection_delay_ms: 1,
            connections: ConnectionSettings {
                connection_timeout_ms: 60_000,
                // Above the contract's 64 KiB, so oversized events reach the daemon and are dead-lettered.
                max_payload_size: 4 * 1024 * 1024,
                max_inflight_count: 200,
                auth: None,
                external_auth: None,
                dynamic_filters: true,
            },
        };
        (
            listen,
            std::collections::HashMap::from([("1".to_string(), settings)]),
        )
    };
    let (v4_listen, v4) = server("tests-v4");
    let (v5_listen, v5) = server("tests-v5");
    let config = Config {
        router: RouterConfig {
            max_connections: 10_000,
            max_outgoing_packet_count: 200,
            max_segment_size: 100 * 1024 * 1024,
            max_segment_count: 10,
            ..RouterConfig::default()
        },
        v4: Some(v4),
        v5: Some(v5),
        ..Config::default()
    };
    std::thread::spawn(move || Broker::new(config).start().expect("the test broker runs"));
    for listen in [v4_listen, v5_listen] {
        let mut up = false;
        for _ in 0..200 {
            if std::net::TcpStream::connect(listen).is_ok() {
                up = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(up, "the test broker did not start on {listen}");
    }
    (v4_listen, v5_listen)
}

/// A unique name, so tests sharing one Mosquitto never see each other's messages.
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}

pub struct Site {
    pub dir: tempfile::TempDir,
    pub topic_root: String,
    pub client_id: String,
    /// Dropped before `dir`: a PostgreSQL schema goes with the test.
    pub db: crate::test_database::TestDatabase,
}

impl Site {
    pub fn new() -> Site {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(
                "info,rumqttd=off,tillmark=debug",
            ))
            .with_test_writer()
            .try_init();
        let dir = tempfile::tempdir().expect("tempdir");
        Site {
            db: crate::test_database::TestDatabase::new(dir.path()),
            dir,
            topic_root: unique("pos"),
            client_id: unique("tillmark"),
        }
    }

    pub fn db_url(&self) -> String {
        self.db.url.clone()
    }

    /// Whether this run is on PostgreSQL, for the tests that read SQLite's file themselves: they say so and
    /// pass, since what they check is SQLite's.
    pub fn sqlite_only(&self, what: &str) -> bool {
        let skip = crate::test_database::TestDatabase::on_postgres();
        if skip {
            eprintln!("not run on PostgreSQL: {what} is SQLite's");
        }
        skip
    }

    pub fn topic(&self, store: &str, register: &str) -> String {
        format!("{}/{store}/{register}/events", self.topic_root)
    }

    /// A config for one Tokyo store with two cameras on an Nx system at `nx_url`: "Counter 1" watches r1 and
    /// r2, "Counter 2" watches r2. `broker` of `None` runs the daemon's embedded broker on a free port.
    pub fn config_text(&self, broker: Option<&BrokerUrl>, nx_url: &str, extra: &str) -> String {
        let mqtt = match broker {
            Some(b) => format!("url = \"{b}\""),
            None => "embedded_listen = \"127.0.0.1:0\"".to_string(),
        };
        format!(
            r#"
[mqtt]
{mqtt}
client_id = "{client}"
topics = ["{root}/+/+/events"]

[database]
url = "{db}"

[web]
listen = "127.0.0.1:0"

[delivery]
retry = ["100ms", "200ms", "400ms"]
timeout = "2s"

# The tests' register times are fixed (November 2026): keep them believable for years to come.
[intake]
max_age = "3650d"

{extra}

[[stores]]
id = "shibuya-01"
name = "Shibuya"
timezone = "Asia/Tokyo"

[[camera_systems]]
id = "nvr"
integration = "nx-witness"
url = "{nx_url}"
username = "tillmark"
password_env = "TEST_NX_PASSWORD"

[[cameras]]
system = "nvr"
device = "{CAM1}"
name = "Counter 1"
registers = ["shibuya-01/r1", "shibuya-01/r2"]

[[cameras]]
system = "nvr"
device = "{CAM2}"
name = "Counter 2"
registers = ["shibuya-01/r2"]
"#,
            client = self.client_id,
            root = self.topic_root,
            db = self.db_url(),
        )
    }

    /// The start of a vendor test's config: the embedded broker, this site's database and topics, quick retries,
    /// definitions from `integrations`, and the Tokyo store. The test appends its camera systems and cameras.
    pub fn header(&self, integrations: &std::path::Path) -> String {
        format!(
            r#"
[mqtt]
embedded_listen = "127.0.0.1:0"
client_id = "{client}"
topics = ["{root}/+/+/events"]
[database]
url = "{db}"
[web]
listen = "127.0.0.1:0"
[delivery]
retry = ["100ms"]
[intake]
max_age = "3650d"
[integrations]
dir = "{dir}"
[[stores]]
id = "shibuya-01"
timezone = "Asia/Tokyo"
"#,
            client = self.client_id,
            root = self.topic_root,
            db = self.db_url(),
            dir = integrations.display(),
        )
    }

    /// [`Site::config_text`] written to `tillmark.toml` for the real binary, its index on a port chosen now so
    /// the test knows where to read it: the file's path and that port.
    pub fn config_file(&self, broker: &BrokerUrl, nx_url: &str) -> (std::path::PathBuf, u16) {
        let web_port = free_port();
        let text = self.config_text(Some(broker), nx_url, "").replace(
            "listen = \"127.0.0.1:0\"",
            &format!("listen = \"127.0.0.1:{web_port}\""),
        );
        let path = self.dir.path().join("tillmark.toml");
        std::fs::write(&path, text).unwrap();
        (path, web_port)
    }

    pub fn config(&self, broker: Option<&BrokerUrl>, nx_url: &str, extra: &str) -> Config {
        let text = self.config_text(broker, nx_url, extra);
        parse_config(&text, &[("TEST_NX_PASSWORD", NX_PASSWORD)])
    }

    /// A vendor test's config: [`Site::header`] with the repository's definitions, then `systems` (its camera
    /// systems and cameras); `secrets` are the environment variables it may read, by name.
    pub fn vendor_config(&self, systems: &str, secrets: &[(&str, &str)]) -> Config {
        self.config_in(&repo_integrations(), systems, secrets)
    }

    /// Like [`Site::vendor_config`], with the definitions in `integrations`.
    pub fn config_in(
        &self,
        integrations: &std::path::Path,
        systems: &str,
        secrets: &[(&str, &str)],
    ) -> Config {
        parse_config(&format!("{}{systems}", self.header(integrations)), secrets)
    }
}

/// Parses a test config whose environment holds just `secrets` (name, value).
pub fn parse_config(text: &str, secrets: &[(&str, &str)]) -> Config {
    Config::parse(text, &|name| {
        secrets
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.to_string())
    })
    .unwrap_or_else(|e| panic!("test config is invalid: {e:?}"))
}

pub const CAM1: &str = "0b8c3a52-6d1e-4a53-9d55-51d1b0cfa1e2";
pub const CAM2: &str = "7d2e1f00-1111-4a53-9d55-51d1b0cfa1e3";
pub const NX_PASSWORD: &str = "s3cret-pw";

/// Publishes every `(topic, payload)` at QoS 1 with a wide window, as a busy store's bridge does, and returns
/// once the broker acknowledged them all.
pub async fn publish_all(broker: &BrokerUrl, messages: Vec<(String, Vec<u8>)>) {
    let mut options = MqttOptions::new(unique("burst"), broker.host.clone(), broker.port);
    options
        .set_inflight(1000)
        .set_keep_alive(Duration::from_secs(30));
    let (client, mut eventloop) = AsyncClient::new(options, 1000);
    let total = messages.len();
    let acked = tokio::spawn(async move {
        let mut acked = 0;
        while acked < total {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::PubAck(_))) => acked += 1,
                Ok(_) => {}
                Err(e) => panic!("the burst's connection failed: {e}"),
            }
        }
    });
    for (topic, payload) in messages {
        client
            .publish(topic, QoS::AtLeastOnce, false, payload)
            .await
            .expect("publish");
    }
    tokio::time::timeout(Duration::from_secs(120), acked)
        .await
        .expect("every message acknowledged within 2 minutes")
        .expect("the burst's poller");
}

/// A register bridge: publishes QoS 1 and returns once the broker acknowledged.
pub struct Bridge {
    client: AsyncClient,
    acks: tokio::sync::mpsc::UnboundedReceiver<()>,
}

impl Bridge {
    pub async fn connect(broker: &BrokerUrl) -> Bridge {
        Bridge::with_options(Bridge::options(broker)).await
    }

    /// What [`Bridge::connect`] connects with, for a test to adjust (TLS, packet size) before
    /// [`Bridge::with_options`].
    pub fn options(broker: &BrokerUrl) -> MqttOptions {
        let mut options = MqttOptions::new(unique("bridge"), broker.host.clone(), broker.port);
        options
            .set_keep_alive(Duration::from_secs(10))
            .set_max_packet_size(1 << 20, 1 << 20);
        options
    }

    /// What a register reaching `broker` over TLS connects with: plain MQTT to a tunnel of tillmark's that
    /// carries it over TLS with `tls` (the MQTT client has no TLS of its own in this build). Keep the tunnel
    /// as long as the client.
    pub fn tls_options(id: &str, broker: &BrokerUrl, tls: &MqttTls) -> (MqttOptions, Tunnel) {
        let tunnel = Tunnel::open(&broker.host, broker.port, tls).expect("the TLS tunnel's socket");
        let mut options = MqttOptions::new(id, tunnel.path().to_string_lossy(), 0);
        options
            .set_keep_alive(Duration::from_secs(10))
            .set_max_packet_size(1 << 20, 1 << 20)
            .set_transport(rumqttc::Transport::Unix);
        (options, tunnel)
    }

    pub async fn with_options(options: MqttOptions) -> Bridge {
        let (client, mut eventloop) = AsyncClient::new(options, 100);
        let (tx, acks) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::PubAck(_))) => {
                        let _ = tx.send(());
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        });
        Bridge { client, acks }
    }

    pub async fn publish_bytes(&mut self, topic: &str, payload: Vec<u8>) {
        self.client
            .publish(topic, QoS::AtLeastOnce, false, payload)
            .await
            .expect("publish");
        tokio::time::timeout(Duration::from_secs(10), self.acks.recv())
            .await
            .expect("PUBACK within 10 s");
    }

    /// Publishes QoS 1 without waiting for the acknowledgement: [`Bridge::acked_within`] tells whether it came.
    pub async fn publish_unacked(&mut self, topic: &str, event: &Value) {
        self.client
            .publish(
                topic,
                QoS::AtLeastOnce,
                false,
                event.to_string().into_bytes(),
            )
            .await
            .expect("publish");
    }

    /// Whether the broker acknowledged one more message within `wait`.
    pub async fn acked_within(&mut self, wait: Duration) -> bool {
        tokio::time::timeout(wait, self.acks.recv()).await.is_ok()
    }

    pub async fn publish(&mut self, topic: &str, event: &Value) {
        self.publish_bytes(topic, event.to_string().into_bytes())
            .await;
    }

    /// Publishes `event` on the topic of its own store and register at `site`.
    pub async fn publish_as_register(&mut self, site: &Site, event: &Value) {
        let topic = site.topic(
            event["store"].as_str().expect("a store"),
            event["register"].as_str().expect("a register"),
        );
        self.publish(&topic, event).await;
    }
}

/// Polls `check` until it returns `Some`, or panics with `what` after `timeout`.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The API token every test daemon knows: an owner's ([`allow_tests`]).
pub const TOKEN: &str = "tm_backbone-tests-owner-token";

/// Gives the database at `url` an owner whose API token is [`TOKEN`], so the tests read the index as an owner
/// would. Its password hash is no hash, so nobody signs in with it.
pub async fn allow_tests(url: &str) {
    use tillmark::accounts::{NewUser, Role, token_digest};
    let store = tillmark::store::open(url)
        .await
        .expect("open the test database");
    let owner = NewUser {
        name: "tester".into(),
        role: Role::Owner,
        stores: Vec::new(),
        password_hash: "!".into(),
    };
    if store.add_user(&owner, 0).await.is_ok() {
        store
            .add_token("tester", "tests", &token_digest(TOKEN), 0, None)
            .await
            .expect("add the test token");
    }
    store.close().await;
}

/// Starts a daemon whose index the tests may read ([`allow_tests`]).
pub async fn start(config: Config) -> Result<Daemon, tillmark::StartError> {
    allow_tests(&config.database.url).await;
    Daemon::start(config).await
}

/// GET with the tests' API token.
pub async fn get(url: impl reqwest::IntoUrl) -> reqwest::Result<reqwest::Response> {
    reqwest::Client::new()
        .get(url)
        .bearer_auth(TOKEN)
        .send()
        .await
}

pub async fn get_json(url: &str) -> Value {
    get(url).await.expect("GET").json().await.expect("JSON")
}

/// The register time most tests publish at: 18:42:07.310 in Tokyo, 09:42:07.310 UTC.
pub const AT: &str = "2026-11-21T18:42:07.310+09:00";
/// [`AT`] in milliseconds since the epoch.
pub const AT_MS: i64 = 1_795_254_127_310;

/// An event per the contract at a fixed register time.
pub fn event(id: &str, kind: &str, register: &str, at: &str) -> Value {
    serde_json::json!({
        "id": id, "type": kind, "at": at, "store": "shibuya-01", "register": register,
        "cashier": "c117", "transaction": "T-000981", "amount": 1280, "currency": "JPY",
        "reason": "customer changed mind",
        "lines": ["ONIGIRI SALMON      180", "GREEN TEA 500ML     150", "*** VOID ***"],
    })
}

/// Starts a daemon, waits until it receives events, and connects a register bridge to its broker.
pub async fn start_daemon(config: Config) -> (Daemon, Bridge) {
    let daemon = start(config).await.expect("daemon starts");
    eventually(
        Duration::from_secs(10),
        "the daemon to subscribe",
        || async { daemon.receiving().then_some(()) },
    )
    .await;
    let bridge = Bridge::connect(daemon.broker()).await;
    (daemon, bridge)
}

/// The bookmarks of the newest event, once none is pending any more.
pub async fn settled_bookmarks(daemon: &Daemon) -> Vec<Value> {
    bookmarks_of(settled(daemon, None).await)
}

/// The bookmarks of the event with this id, once none is pending any more.
pub async fn settled_bookmarks_of(daemon: &Daemon, event_id: &str) -> Vec<Value> {
    bookmarks_of(settled(daemon, Some(event_id)).await)
}

fn bookmarks_of(event: Value) -> Vec<Value> {
    event["bookmarks"].as_array().cloned().unwrap_or_default()
}

/// The newest event, or the one with this id, once it has bookmarks and none is pending.
async fn settled(daemon: &Daemon, event_id: Option<&str>) -> Value {
    let url = format!("http://{}/api/events", daemon.web_addr());
    let what = format!(
        "the bookmarks of event {} to settle",
        event_id.unwrap_or("(newest)")
    );
    eventually(Duration::from_secs(10), &what, || {
        let url = url.clone();
        async move {
            let events = get_json(&url).await["events"].as_array()?.clone();
            let event = match event_id {
                None => events.first()?,
                Some(id) => events.iter().find(|e| e["id"] == id)?,
            };
            let b = event["bookmarks"].as_array()?;
            (!b.is_empty() && b.iter().all(|b| b["state"] != "pending")).then(|| event.clone())
        }
    })
    .await
}

/// The repository's integrations folder, where the built-in definitions' files live.
pub fn repo_integrations() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("integrations")
}

/// Serves a fake vendor on a free loopback port until the test ends; returns `http://127.0.0.1:PORT`.
pub async fn serve(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a fake server");
    let url = format!("http://{}", listener.local_addr().expect("its address"));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    url
}

/// The event `id` with its bookmarks, once none of them is pending any more: for tests that publish several
/// events and check each.
pub async fn settled_event(daemon: &Daemon, id: &str) -> Value {
    settled(daemon, Some(id)).await
}

/// The daemon's web address, `http://127.0.0.1:PORT`.
pub fn web_base(daemon: &Daemon) -> String {
    format!("http://{}", daemon.web_addr())
}

/// Asserts that no secret appears in anything the daemon shows: the JSON API and the pages, every event's too.
pub async fn assert_shown_nowhere(daemon: &Daemon, secrets: &[&str]) {
    assert_shown_nowhere_at(&web_base(daemon), secrets).await
}

/// [`assert_shown_nowhere`] for the daemon whose web address is `base`.
pub async fn assert_shown_nowhere_at(base: &str, secrets: &[&str]) {
    let mut paths: Vec<String> = ["/api/events", "/api/dead-letters", "/", "/integrations"]
        .map(String::from)
        .to_vec();
    let events = get_json(&format!("{base}/api/events")).await;
    for event in events["events"].as_array().expect("events") {
        let seq = &event["seq"];
        paths.push(format!("/api/events/{seq}"));
        paths.push(format!("/events/{seq}"));
    }
    for path in paths {
        let text = get_text(&format!("{base}{path}")).await;
        for secret in secrets {
            assert!(!text.contains(secret), "{path} shows a secret: {text}");
        }
    }
}

/// The newest event's page (`/events/{seq}`), where each bookmark's attempts are listed with their details.
pub async fn newest_event_page(daemon: &Daemon) -> String {
    newest_event_page_at(&web_base(daemon)).await
}

/// [`newest_event_page`] of the daemon whose web address is `base`.
pub async fn newest_event_page_at(base: &str) -> String {
    let seq = get_json(&format!("{base}/api/events")).await["events"][0]["seq"].clone();
    get_text(&format!("{base}/events/{seq}")).await
}

pub async fn get_text(url: &str) -> String {
    get(url).await.expect("GET").text().await.expect("text")
}

/// The first bookmark of the newest event, once `done` holds for it (within 10 s), from the daemon at `base`.
pub async fn first_bookmark_when(base: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let api = format!("{base}/api/events");
    eventually(Duration::from_secs(10), what, || {
        let api = api.clone();
        let done = &done;
        async move {
            let b = get_json(&api).await["events"][0]["bookmarks"][0].clone();
            done(&b).then_some(b)
        }
    })
    .await
}

/// Publishes `event(id, "void", register, at)` on that register's topic.
pub async fn publish_void(site: &Site, bridge: &mut Bridge, id: &str, register: &str, at: &str) {
    bridge
        .publish_as_register(site, &event(id, "void", register, at))
        .await;
}

/// Publishes a void for each `(id, register, at)`, in order.
pub async fn publish_voids(site: &Site, bridge: &mut Bridge, voids: &[(&str, &str, &str)]) {
    for (id, register, at) in voids {
        publish_void(site, bridge, id, register, at).await;
    }
}

/// The one bookmark whose `field` is `value` ("device", "system", ...).
pub fn bookmark_on(bookmarks: &[Value], field: &str, value: &str) -> Value {
    bookmarks
        .iter()
        .find(|b| b[field] == value)
        .cloned()
        .unwrap_or_else(|| panic!("a bookmark with {field} {value}: {bookmarks:?}"))
}

/// Asserts that a bookmark failed, and with this error.
#[track_caller]
pub fn assert_failed(bookmark: &Value, last_error: &str) {
    assert_eq!(bookmark["state"], "failed", "{bookmark}");
    assert_eq!(bookmark["last_error"], last_error, "{bookmark}");
}

/// A register time as a Tokyo register writes it in `at`: `2026-11-21T18:42:07.310+09:00`.
pub fn tokyo(ms: i64) -> String {
    use chrono::TimeZone;
    chrono::FixedOffset::east_opt(9 * 3600)
        .unwrap()
        .timestamp_millis_opt(ms)
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, false)
}

/// A moment `secs` seconds ago, at .310 of its second (so a test can write the fractions it expects), in epoch ms.
pub fn seconds_ago(secs: i64) -> i64 {
    (tillmark::clock::now_ms() - secs * 1000) / 1000 * 1000 + 310
}

/// The bookmarks of each event by the event's id, once `count` events are stored and none of their
/// bookmarks is pending.
pub async fn settled_events(
    daemon: &Daemon,
    count: usize,
) -> std::collections::HashMap<String, Vec<Value>> {
    let url = format!("http://{}/api/events", daemon.web_addr());
    eventually(Duration::from_secs(20), "the events to settle", || {
        let url = url.clone();
        async move {
            let events = get_json(&url).await["events"].as_array()?.clone();
            let settled = events.len() == count
                && events.iter().all(|e| {
                    e["bookmarks"]
                        .as_array()
                        .is_some_and(|b| !b.is_empty() && b.iter().all(|b| b["state"] != "pending"))
                });
            settled.then(|| {
                events
                    .iter()
                    .map(|e| {
                        let id = e["id"].as_str().unwrap_or_default().to_string();
                        (id, e["bookmarks"].as_array().cloned().unwrap_or_default())
                    })
                    .collect()
            })
        }
    })
    .await
}

/// A free loopback port, for a daemon run as its own process.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Runs the tillmark binary on `config` with `env` set, everything it logs (debug level) going to `log`.
/// A process of a test's, killed when dropped: a failed assertion leaves no daemon behind.
pub struct Process(pub std::process::Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl std::ops::Deref for Process {
    type Target = std::process::Child;
    fn deref(&self) -> &std::process::Child {
        &self.0
    }
}

impl std::ops::DerefMut for Process {
    fn deref_mut(&mut self) -> &mut std::process::Child {
        &mut self.0
    }
}

pub fn spawn_tillmark(
    config: &std::path::Path,
    log: &std::path::Path,
    env: &[(&str, &str)],
) -> Process {
    Process(
        std::process::Command::new(env!("CARGO_BIN_EXE_tillmark"))
            .args(["run", "--config"])
            .arg(config)
            .env("RUST_LOG", "debug,rumqttd=off")
            .envs(env.iter().copied())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .expect("start tillmark"),
    )
}

/// Waits until the log holds `text`.
pub async fn wait_for_log(log: &std::path::Path, text: &str) {
    eventually(Duration::from_secs(15), text, || async {
        std::fs::read_to_string(log)
            .ok()
            .filter(|l| l.contains(text))
            .map(|_| ())
    })
    .await;
}
