//! The whole pipeline on this machine, against the limits that bound it, measured in one run and printed as a
//! table (`cargo bench --bench pipeline`; optional argument: the burst size, default 20000).
//!
//! The daemon runs as its own process (the built binary), subscribed to a Mosquitto started here with the
//! README's store settings (`examples/mosquitto/store.conf`), its database a SQLite file in WAL mode with full
//! sync. Its camera systems are receivers in this process: one that answers at once, one that adds 20 ms to
//! every request, one that allows 10 requests a second (429 with `Retry-After` beyond). Rows:
//! - durable intake of a burst queued at the broker while the daemon was down, against `mosquitto_sub -q 1`
//!   draining the same queue (the broker's own limit);
//! - bookmarks per second to each receiver, against what it allows: the concurrency ceiling over 20 ms for the
//!   slow one, 10/s for the limited one;
//! - publish-to-request latency at a steady 2,500 events/s;
//! - the daemon's resident memory, idle and at full rate.
//!
//! With `TILLMARK_BENCH_POSTGRES_URL` naming a PostgreSQL database (`postgres://postgres@127.0.0.1:5432/test`;
//! the bench makes a schema of its own there for each measurement and drops it after), the same rows again
//! with the daemon on PostgreSQL, each beside SQLite's figure and on a Mosquitto of its own; then the intake of
//! the same queued burst by 1, 2 and 3 daemons (each its own process and `client_id`) of one
//! `[mqtt] shared_group` on one database and one Mosquitto, against one daemon. Without the variable, only
//! SQLite's rows.
//!
//! Prints figures; asserts nothing. Needs `mosquitto` and `mosquitto_sub` on the PATH; says so and measures
//! nothing without `mosquitto`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use axum::response::IntoResponse;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};

#[path = "../tests/backbone/sample_mosquitto.rs"]
mod sample_mosquitto;
use sample_mosquitto::SampleMosquitto;

#[path = "support/process.rs"]
mod process;
use process::{free_port, rss_kib};

#[path = "support/postgres.rs"]
mod postgres;
use postgres::{POSTGRES_URL, Schema};

/// Every tenth event is a void (a bookmark); the rest are sales, as at a till.
const FLAGGED_EVERY: u64 = 10;
/// The daemon's `[delivery] concurrency`, the ceiling its adaptive limit may reach.
const CEILING: usize = 64;
/// Added by the slow receiver to every request.
const SLOW: Duration = Duration::from_millis(20);
/// Requests a second the limited receiver allows.
const LIMITED_RATE: f64 = 10.0;
const STEADY_RATE: u64 = 2_500;
const STEADY_SECONDS: u64 = 4;

fn rss_mib(pid: u32) -> f64 {
    rss_kib(pid) / 1024.0
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// A process killed when dropped.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// What the receivers saw: each request's arrival, and its delay from the publish instant in the body.
#[derive(Default)]
struct Seen {
    arrivals: Mutex<Vec<(Instant, u64)>>,
    refused: AtomicU64,
}

impl Seen {
    fn count(&self) -> usize {
        self.arrivals.lock().unwrap().len()
    }

    /// Requests per second from the first arrival to the last.
    fn rate(&self) -> f64 {
        let a = self.arrivals.lock().unwrap();
        match (a.first(), a.last()) {
            (Some(first), Some(last)) if a.len() > 1 => {
                (a.len() - 1) as f64 / last.0.duration_since(first.0).as_secs_f64()
            }
            _ => f64::NAN,
        }
    }

    fn take(&self) -> Vec<(Instant, u64)> {
        std::mem::take(&mut *self.arrivals.lock().unwrap())
    }
}

struct Receivers {
    fast: Arc<Seen>,
    slow: Arc<Seen>,
    limited: Arc<Seen>,
    url: String,
}

async fn start_receivers(epoch: Instant) -> Receivers {
    let (fast, slow, limited): (Arc<Seen>, Arc<Seen>, Arc<Seen>) = Default::default();
    let record = move |seen: &Arc<Seen>, body: &str| {
        let sent_us: u64 = serde_json::from_str::<serde_json::Value>(body)
            .ok()
            .and_then(|v| v["sent_us"].as_str().and_then(|s| s.parse().ok()))
            .unwrap_or(0);
        let now = Instant::now();
        let delay = (now.duration_since(epoch).as_micros() as u64).saturating_sub(sent_us);
        seen.arrivals.lock().unwrap().push((now, delay));
    };
    // The limited receiver's window: requests allowed in the current second.
    let window = Arc::new(Mutex::new((Instant::now(), 0u32)));
    // A receiver that answers after `delay`, recording each request in `seen`.
    let answering = move |seen: &Arc<Seen>, delay: Duration| {
        let seen = Arc::clone(seen);
        axum::routing::post(move |body: String| async move {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            record(&seen, &body);
            "{}".into_response()
        })
    };
    let app = axum::Router::new()
        .route("/fast", answering(&fast, Duration::ZERO))
        .route("/slow", answering(&slow, SLOW))
        .route(
            "/limited",
            axum::routing::post({
                let seen = Arc::clone(&limited);
                move |body: String| async move {
                    let allowed = {
                        let mut w = window.lock().unwrap();
                        if w.0.elapsed() >= Duration::from_secs(1) {
                            *w = (Instant::now(), 0);
                        }
                        w.1 += 1;
                        w.1 as f64 <= LIMITED_RATE
                    };
                    if !allowed {
                        seen.refused.fetch_add(1, Ordering::SeqCst);
                        return (
                            StatusCode::TOO_MANY_REQUESTS,
                            [("retry-after", "1")],
                            "slow down",
                        )
                            .into_response();
                    }
                    record(&seen, &body);
                    "{}".into_response()
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Receivers {
        fast,
        slow,
        limited,
        url,
    }
}

/// Where a daemon keeps its events, and whom it shares the broker's stream with.
struct Setup<'a> {
    database: &'a str,
    client_id: &'a str,
    shared_group: Option<&'a str>,
    /// `[delivery] daemons`: how many share the database's deliveries.
    daemons: usize,
}

fn write_config(dir: &Path, broker: u16, web: u16, receivers: &str, setup: &Setup) -> PathBuf {
    // The body carries the publish instant, so the receiver measures latency.
    std::fs::create_dir_all(dir.join("integrations")).unwrap();
    std::fs::write(
        dir.join("integrations/bench-hook.toml"),
        r#"name = "bench-hook"
[create]
url = "{{ system.url }}"
body = '{"sent_us": {{ event.attributes.sent_us | tojson }}, "key": {{ key | tojson }}}'
"#,
    )
    .unwrap();
    let shared = setup
        .shared_group
        .map(|g| format!("shared_group = \"{g}\""))
        .unwrap_or_default();
    let daemons = match setup.daemons {
        1 => String::new(),
        n => format!("daemons = {n}"),
    };
    let text = format!(
        r#"
[mqtt]
url = "mqtt://127.0.0.1:{broker}"
client_id = "{client_id}"
{shared}
[database]
url = "{database}"
[web]
listen = "127.0.0.1:{web}"
[integrations]
dir = "{defs}"
[intake]
max_age = "3650d"
[delivery]
concurrency = {CEILING}
{daemons}
[[stores]]
id = "bench"
timezone = "Asia/Tokyo"
[[camera_systems]]
id = "fast"
integration = "bench-hook"
url = "{receivers}/fast"
[[camera_systems]]
id = "slow"
integration = "bench-hook"
url = "{receivers}/slow"
[[camera_systems]]
id = "limited"
integration = "bench-hook"
url = "{receivers}/limited"
[[cameras]]
system = "fast"
device = "cam"
registers = ["bench/fast"]
[[cameras]]
system = "slow"
device = "cam"
registers = ["bench/slow"]
[[cameras]]
system = "limited"
device = "cam"
registers = ["bench/limited"]
"#,
        client_id = setup.client_id,
        database = setup.database,
        defs = dir.join("integrations").display(),
    );
    let path = dir.join("tillmark.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// The daemon, as a user runs it.
struct Daemon {
    process: Process,
    web: u16,
    http: reqwest::Client,
}

impl Daemon {
    fn start(config: &Path, web: u16) -> Daemon {
        let child = Command::new(env!("CARGO_BIN_EXE_tillmark"))
            .arg("run")
            .arg("--config")
            .arg(config)
            .env("RUST_LOG", "tillmark=warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the tillmark binary");
        Daemon {
            process: Process(child),
            web,
            http: reqwest::Client::new(),
        }
    }

    fn pid(&self) -> u32 {
        self.process.0.id()
    }

    async fn health(&self) -> Option<serde_json::Value> {
        let url = format!("http://127.0.0.1:{}/healthz", self.web);
        self.http.get(url).send().await.ok()?.json().await.ok()
    }

    async fn stored(&self) -> u64 {
        self.health()
            .await
            .and_then(|h| h["events"].as_u64())
            .unwrap_or(0)
    }

    async fn until_receiving(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            assert!(
                Instant::now() < deadline,
                "the daemon on port {} was not receiving after a minute",
                self.web
            );
            if let Some(h) = self.health().await
                && h["mqtt"]["receiving"] == true
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// SIGTERM, and wait for the orderly exit.
    fn stop(mut self) {
        let _ = Command::new("kill").arg(self.pid().to_string()).status();
        let _ = self.process.0.wait();
    }
}

/// A register's bridge: QoS 1 publishes with a wide window, counting the broker's acknowledgements.
struct Publisher {
    client: AsyncClient,
    acked: Arc<AtomicU64>,
    epoch: Instant,
}

impl Publisher {
    fn connect(port: u16, epoch: Instant) -> Publisher {
        let mut options = MqttOptions::new("bench-publisher", "127.0.0.1", port);
        options
            .set_inflight(1000)
            .set_keep_alive(Duration::from_secs(30));
        let (client, mut eventloop) = AsyncClient::new(options, 10_000);
        let acked = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&acked);
        tokio::spawn(async move {
            while let Ok(ev) = eventloop.poll().await {
                if let Event::Incoming(Packet::PubAck(_)) = ev {
                    counter.fetch_add(1, Ordering::SeqCst);
                }
            }
        });
        Publisher {
            client,
            acked,
            epoch,
        }
    }

    /// Event `i` on `register`: a void every `flagged_every`, else a sale, about 400 bytes.
    async fn publish(&self, register: &str, i: u64, flagged_every: u64) {
        let kind = if i.is_multiple_of(flagged_every) {
            "void"
        } else {
            "sale"
        };
        let sent_us = self.epoch.elapsed().as_micros() as u64;
        let payload = serde_json::json!({
            "id": format!("{register}-{i}"), "type": kind, "at": chrono::Utc::now().to_rfc3339(),
            "store": "bench", "register": register, "cashier": "c1",
            "transaction": format!("T-{i:06}"), "amount": 1280, "currency": "JPY",
            "lines": ["ONIGIRI SALMON      180", "GREEN TEA 500ML     150", "お茶 500ml          150"],
            "attributes": { "sent_us": sent_us.to_string() },
        });
        self.client
            .publish(
                format!("pos/bench/{register}/events"),
                QoS::AtLeastOnce,
                false,
                payload.to_string(),
            )
            .await
            .expect("publish");
    }

    async fn until_acked(&self, n: u64) {
        while self.acked.load(Ordering::SeqCst) < n {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

/// `mosquitto_sub -q 1` draining `n` messages queued for its persistent session.
fn raw_drain(port: u16, publish: impl FnOnce()) -> Duration {
    let sub = |extra: &[&str]| {
        let mut c = Command::new("mosquitto_sub");
        c.args(["-h", "127.0.0.1", "-p", &port.to_string()])
            .args(["-q", "1", "-c", "-i", "raw-drain", "-t", "pos/+/+/events"])
            .args(extra)
            .stdout(Stdio::null());
        c
    };
    // -E: subscribe, then leave, so the session queues what follows.
    sub(&["-E"]).status().expect("mosquitto_sub on the PATH");
    publish();
    let started = Instant::now();
    let n = RAW_N.load(Ordering::SeqCst).to_string();
    sub(&["-C", &n]).status().expect("mosquitto_sub");
    started.elapsed()
}

static RAW_N: AtomicU64 = AtomicU64::new(0);

struct Row {
    what: String,
    figure: String,
    limit: String,
    ratio: Option<f64>,
}

fn row(what: &str, figure: String, limit: String, ratio: Option<f64>) -> Row {
    Row {
        what: what.into(),
        figure,
        limit,
        ratio,
    }
}

/// One backend's rows: intake against a Mosquitto of its own (and `mosquitto_sub`'s rate on it), delivery,
/// latency and memory, with the daemon's database at `database`. `None` when no Mosquitto can be started.
async fn pass(dir: &Path, database: &str, backend: &str, burst: u64) -> Option<Pass> {
    let epoch = Instant::now();
    let mosquitto = SampleMosquitto::start(&dir.join("mosquitto"))?;
    let broker = mosquitto.port;
    let receivers = start_receivers(epoch).await;
    let web = free_port();
    let setup = Setup {
        database,
        client_id: "tillmark-bench",
        shared_group: None,
        daemons: 1,
    };
    let config = write_config(dir, broker, web, &receivers.url, &setup);
    let publisher = Publisher::connect(broker, epoch);
    let mut published = 0u64;
    let mut rows = Vec::new();

    // The broker's own limit: the same burst, drained by mosquitto_sub.
    RAW_N.store(burst, Ordering::SeqCst);
    let raw = {
        let handle = tokio::runtime::Handle::current();
        let publisher = &publisher;
        let published = &mut published;
        tokio::task::block_in_place(|| {
            raw_drain(broker, || {
                handle.block_on(async {
                    for i in 0..burst {
                        publisher.publish("queued", i, FLAGGED_EVERY).await;
                    }
                    *published += burst;
                    publisher.until_acked(*published).await;
                })
            })
        })
    };
    let raw_rate = burst as f64 / raw.as_secs_f64();

    // The daemon's session, then the same burst queued while it is down.
    let daemon = Daemon::start(&config, web);
    daemon.until_receiving().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let idle_rss = rss_mib(daemon.pid());
    daemon.stop();
    for i in 0..burst {
        publisher.publish("queued", burst + i, FLAGGED_EVERY).await;
    }
    published += burst;
    publisher.until_acked(published).await;
    let started = Instant::now();
    let daemon = Daemon::start(&config, web);
    let mut peak_rss: f64 = 0.0;
    while daemon.stored().await < burst {
        peak_rss = peak_rss.max(rss_mib(daemon.pid()));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let intake = started.elapsed();
    let intake_rate = burst as f64 / intake.as_secs_f64();
    rows.push(row(
        &format!("durable intake of {burst} queued events ({backend})"),
        format!("{intake_rate:.0} events/s"),
        format!("mosquitto_sub -q 1: {raw_rate:.0} msg/s"),
        Some(intake_rate / raw_rate),
    ));

    // Bookmarks to each receiver: voids of one register published at once, as a backlog after an outage
    // arrives. Intake runs well ahead, so the receiver's figure is delivery's.
    let mut deliver = async |register: &str, seen: &Arc<Seen>, bookmarks: u64| {
        seen.take();
        let from = published;
        for i in 0..bookmarks {
            publisher.publish(register, from + i, 1).await;
        }
        published += bookmarks;
        while (seen.count() as u64) < bookmarks {
            peak_rss = peak_rss.max(rss_mib(daemon.pid()));
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        seen.rate()
    };
    let fast = deliver("fast", &receivers.fast, 5_000).await;
    rows.push(row(
        "bookmarks to a receiver on loopback",
        format!("{fast:.0} bookmarks/s"),
        "target 5000/s".into(),
        Some(fast / 5_000.0),
    ));
    let slow = deliver("slow", &receivers.slow, 10_000).await;
    let slow_limit = CEILING as f64 / SLOW.as_secs_f64();
    rows.push(row(
        "bookmarks to a receiver adding 20 ms",
        format!("{slow:.0} bookmarks/s"),
        format!("ceiling {CEILING} / 20 ms = {slow_limit:.0}/s"),
        Some(slow / slow_limit),
    ));
    let limited = deliver("limited", &receivers.limited, 100).await;
    rows.push(row(
        "bookmarks to a receiver allowing 10/s",
        format!(
            "{limited:.1} bookmarks/s ({} refused with 429)",
            receivers.limited.refused.load(Ordering::SeqCst)
        ),
        format!("{LIMITED_RATE:.0}/s allowed"),
        Some(limited / LIMITED_RATE),
    ));

    // Latency at a steady rate, publishing in ticks of 10 ms.
    receivers.fast.take();
    let ticks = STEADY_SECONDS * 100;
    let per_tick = STEADY_RATE / 100;
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    let from = published;
    for t in 0..ticks {
        tick.tick().await;
        for i in 0..per_tick {
            publisher
                .publish("fast", from + t * per_tick + i, FLAGGED_EVERY)
                .await;
        }
        if t % 10 == 0 {
            peak_rss = peak_rss.max(rss_mib(daemon.pid()));
        }
    }
    published += ticks * per_tick;
    let steady_bookmarks = ticks * per_tick / FLAGGED_EVERY;
    while (receivers.fast.count() as u64) < steady_bookmarks {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut delays: Vec<u64> = receivers.fast.take().into_iter().map(|(_, d)| d).collect();
    delays.sort_unstable();
    let (p50, p99) = (
        percentile(&delays, 0.5) as f64 / 1000.0,
        percentile(&delays, 0.99) as f64 / 1000.0,
    );
    rows.push(row(
        &format!("publish to vendor request at {STEADY_RATE} events/s"),
        format!("p50 {p50:.1} ms, p99 {p99:.1} ms"),
        "target p99 50 ms".into(),
        Some(p99 / 50.0),
    ));
    rows.push(row(
        "daemon resident memory, idle",
        format!("{idle_rss:.1} MiB"),
        "30 MiB".into(),
        Some(idle_rss / 30.0),
    ));
    rows.push(row(
        "daemon resident memory, at full rate (peak)",
        format!("{peak_rss:.1} MiB"),
        "60 MiB".into(),
        Some(peak_rss / 60.0),
    ));
    daemon.stop();
    let _ = published;
    Some(Pass { rows, raw_rate })
}

struct Pass {
    rows: Vec<Row>,
    /// `mosquitto_sub -q 1`'s rate on this pass's broker, msg/s.
    raw_rate: f64,
}

/// Intake of `burst` events queued while `daemons` daemons of one shared group were down, all of them on
/// `database` and one Mosquitto of its own: events per second from their restart until all are stored. `None`
/// when no Mosquitto can be started.
async fn shared_intake(dir: &Path, database: &str, daemons: usize, burst: u64) -> Option<f64> {
    let mosquitto = SampleMosquitto::start(&dir.join("mosquitto"))?;
    let broker = mosquitto.port;
    let configs: Vec<(PathBuf, u16)> = (1..=daemons)
        .map(|i| {
            let client_id = format!("tillmark-bench-{i}");
            let web = free_port();
            let setup = Setup {
                database,
                client_id: &client_id,
                shared_group: Some("bench"),
                daemons,
            };
            // No camera watches the queued register: intake only. The systems' address is never asked.
            let receivers = "http://127.0.0.1:9";
            let config = write_config(&dir.join(&client_id), broker, web, receivers, &setup);
            (config, web)
        })
        .collect();
    let start = || -> Vec<Daemon> {
        configs
            .iter()
            .map(|(config, web)| Daemon::start(config, *web))
            .collect()
    };
    // Each daemon's session and its share of the subscription, then all down while the burst queues: the
    // broker hands each queued message to one session of the group.
    let up = start();
    for daemon in &up {
        daemon.until_receiving().await;
    }
    up.into_iter().for_each(Daemon::stop);
    let publisher = Publisher::connect(broker, Instant::now());
    for i in 0..burst {
        publisher.publish("queued", i, FLAGGED_EVERY).await;
    }
    publisher.until_acked(burst).await;
    let started = Instant::now();
    let up = start();
    // Any daemon's health counts the events of the database they share.
    while up[0].stored().await < burst {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let rate = burst as f64 / started.elapsed().as_secs_f64();
    up.into_iter().for_each(Daemon::stop);
    Some(rate)
}

fn print_table(header: &str, rows: &[Vec<String>]) {
    let columns = header.matches('|').count() - 1;
    println!("{header}");
    println!("|---:|{}", "---|".repeat(columns - 1));
    for r in rows {
        println!("| {} |", r.join(" | "));
    }
}

fn ratio(x: Option<f64>) -> String {
    x.map(|x| format!("{x:.2}")).unwrap_or_default()
}

const NO_MOSQUITTO: &str = "Mosquitto could not be started here (needs `mosquitto` on the PATH)";

#[tokio::main]
async fn main() {
    let burst: u64 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(20_000);
    let dir = tempfile::tempdir().expect("tempdir");
    let sqlite_url = format!("sqlite://{}", dir.path().join("bench.db").display());
    let sqlite = pass(
        &dir.path().join("sqlite"),
        &sqlite_url,
        "SQLite, full sync",
        burst,
    )
    .await;
    let Some(sqlite) = sqlite else {
        println!("pipeline benchmark: {NO_MOSQUITTO}: nothing measured");
        return;
    };

    println!(
        "pipeline benchmark ({} cores): Mosquitto 2 with examples/mosquitto/store.conf, the daemon binary, SQLite WAL full sync",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0)
    );
    println!();
    print_table(
        "| ratio | what | tillmark | the limit |",
        &sqlite
            .rows
            .iter()
            .map(|r| {
                vec![
                    ratio(r.ratio),
                    r.what.clone(),
                    r.figure.clone(),
                    r.limit.clone(),
                ]
            })
            .collect::<Vec<_>>(),
    );

    let Some(admin) = postgres::admin_url() else {
        println!();
        println!("PostgreSQL: not measured ({POSTGRES_URL} names no database)");
        return;
    };
    let shown = postgres::shown(&admin);
    let schema = match Schema::create(&admin, "pipeline").await {
        Ok(schema) => schema,
        Err(e) => {
            println!();
            println!("PostgreSQL at {shown}: not measured (cannot make a schema: {e})");
            return;
        }
    };
    let pg = pass(
        &dir.path().join("postgres"),
        &schema.url,
        "PostgreSQL",
        burst,
    )
    .await;
    schema.drop().await;
    let Some(pg) = pg else {
        println!("PostgreSQL: {NO_MOSQUITTO}: not measured");
        return;
    };
    println!();
    println!(
        "the same on PostgreSQL ({shown}, a fresh schema), each row beside SQLite's; the intake limit is \
         mosquitto_sub on this pass's own Mosquitto"
    );
    println!();
    print_table(
        "| ratio | what | tillmark on PostgreSQL | on SQLite | the limit |",
        &pg.rows
            .iter()
            .zip(&sqlite.rows)
            .map(|(p, s)| {
                vec![
                    ratio(p.ratio),
                    p.what.clone(),
                    p.figure.clone(),
                    s.figure.clone(),
                    p.limit.clone(),
                ]
            })
            .collect::<Vec<_>>(),
    );

    // Daemons sharing the database and the stream: the same queued burst, split by the broker.
    let mut shared: Vec<(usize, f64)> = Vec::new();
    for daemons in 1..=3 {
        let schema = match Schema::create(&admin, &format!("shared{daemons}")).await {
            Ok(schema) => schema,
            Err(e) => {
                println!("PostgreSQL: cannot make a schema for {daemons} daemons: {e}");
                break;
            }
        };
        let place = dir.path().join(format!("shared-{daemons}"));
        let rate = shared_intake(&place, &schema.url, daemons, burst).await;
        schema.drop().await;
        let Some(rate) = rate else {
            println!("daemons sharing a group: {NO_MOSQUITTO}: not measured");
            break;
        };
        shared.push((daemons, rate));
    }
    let Some(&(_, one)) = shared.first() else {
        return;
    };
    println!();
    println!(
        "durable intake of {burst} queued events by daemons of one `[mqtt] shared_group`, on one PostgreSQL \
         database (a fresh schema each) and one Mosquitto (a fresh one each), each daemon its own process"
    );
    println!();
    print_table(
        "| ratio to 1 daemon | daemons | events/s | of mosquitto_sub -q 1 (the PostgreSQL pass's) |",
        &shared
            .iter()
            .map(|&(daemons, rate)| {
                vec![
                    ratio(Some(rate / one)),
                    daemons.to_string(),
                    format!("{rate:.0}"),
                    format!("{:.2} of {:.0} msg/s", rate / pg.raw_rate, pg.raw_rate),
                ]
            })
            .collect::<Vec<_>>(),
    );
}
