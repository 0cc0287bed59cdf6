//! Throughput and latency of the whole pipeline on this machine: register events published over MQTT to the
//! embedded broker, committed to SQLite, and delivered as bookmarks to a local webhook receiver.
//!
//! `cargo bench --bench pipeline` (optional argument: EVENTS for the burst, default 20000). Two phases: a burst
//! published as fast as the broker takes it (throughput), then a steady 100 events/s for 10 s (latency, as a
//! busy store sees it). Prints figures; asserts nothing.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use tillmark::Daemon;
use tillmark::config::Config;

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .map(|l| l.to_string())
        })
        .and_then(|l| {
            l.split_whitespace()
                .nth(1)
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[tokio::main]
async fn main() {
    let events: u64 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(20_000);
    let dir = tempfile::tempdir().expect("tempdir");

    // The receiver records when each bookmark arrived, keyed by the publish instant carried in the body.
    let started = Instant::now();
    let latencies = Arc::new(std::sync::Mutex::new(Vec::<u64>::new()));
    let received = Arc::new(AtomicU64::new(0));
    let app = {
        let latencies = latencies.clone();
        let received = received.clone();
        axum::Router::new().route(
            "/bookmarks",
            axum::routing::post(move |body: String| {
                let latencies = latencies.clone();
                let received = received.clone();
                async move {
                    let sent_us: u64 = serde_json::from_str::<serde_json::Value>(&body)
                        .ok()
                        .and_then(|v| v["sent_us"].as_str().and_then(|s| s.parse().ok()))
                        .unwrap_or(0);
                    let now_us = started.elapsed().as_micros() as u64;
                    latencies
                        .lock()
                        .unwrap()
                        .push(now_us.saturating_sub(sent_us));
                    received.fetch_add(1, Ordering::SeqCst);
                    "{}"
                }
            }),
        )
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook = format!("http://{}/bookmarks", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });

    let text = format!(
        r#"
[mqtt]
embedded_listen = "127.0.0.1:0"
[database]
url = "sqlite://{db}"
[web]
listen = "127.0.0.1:0"
[integrations]
dir = "{defs}"
[delivery]
concurrency = 16
[[stores]]
id = "bench"
timezone = "Asia/Tokyo"
[[camera_systems]]
id = "hook"
integration = "bench-hook"
url = "{hook}"
[[cameras]]
system = "hook"
device = "cam"
registers = ["bench/r1", "bench/r2", "bench/r3", "bench/r4"]
"#,
        db = dir.path().join("bench.db").display(),
        defs = dir.path().display(),
    );
    // A definition whose body carries the publish instant, so the receiver can measure latency.
    std::fs::write(
        dir.path().join("bench-hook.toml"),
        r#"name = "bench-hook"
[create]
url = "{{ system.url }}"
body = '{"sent_us": {{ event.attributes.sent_us | tojson }}, "key": {{ key | tojson }}}'
"#,
    )
    .expect("write the bench definition");
    let config = Config::parse(&text, &|_| None).expect("bench config");
    let daemon = Daemon::start(config).await.expect("daemon");
    while !daemon.receiving() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let broker = daemon.broker().clone();

    let mut options = MqttOptions::new("bench-publisher", broker.host.clone(), broker.port);
    options
        .set_inflight(200)
        .set_keep_alive(Duration::from_secs(30));
    let (client, mut eventloop) = AsyncClient::new(options, 1000);
    let acked = Arc::new(AtomicU64::new(0));
    let acked_in_loop = acked.clone();
    tokio::spawn(async move {
        while let Ok(ev) = eventloop.poll().await {
            if let Event::Incoming(Packet::PubAck(_)) = ev {
                acked_in_loop.fetch_add(1, Ordering::SeqCst);
            }
        }
    });

    let store = tillmark::store::open(&format!(
        "sqlite://{}",
        dir.path().join("bench.db").display()
    ))
    .await
    .unwrap();
    let publish = |from: u64, count: u64, rate: Option<f64>| {
        let client = client.clone();
        async move {
            let mut tick = rate.map(|r| tokio::time::interval(Duration::from_secs_f64(1.0 / r)));
            for i in from..from + count {
                if let Some(t) = tick.as_mut() {
                    t.tick().await;
                }
                let kind = if i % 3 == 0 { "void" } else { "sale" };
                let sent_us = started.elapsed().as_micros() as u64;
                let payload = serde_json::json!({
                    "id": format!("e{i}"), "type": kind, "at": chrono::Utc::now().to_rfc3339(),
                    "store": "bench", "register": format!("r{}", i % 4 + 1), "cashier": "c1",
                    "transaction": format!("T-{i:06}"), "amount": 1280, "currency": "JPY",
                    "lines": ["ONIGIRI SALMON      180", "GREEN TEA 500ML     150"],
                    "attributes": { "sent_us": sent_us.to_string() },
                });
                client
                    .publish(
                        format!("pos/bench/r{}/events", i % 4 + 1),
                        QoS::AtLeastOnce,
                        false,
                        payload.to_string(),
                    )
                    .await
                    .expect("publish");
            }
        }
    };
    let flagged_in =
        |from: u64, count: u64| (from..from + count).filter(|i| i % 3 == 0).count() as u64;

    // Burst.
    let flagged = flagged_in(0, events);
    let publish_start = Instant::now();
    publish(0, events, None).await;
    while acked.load(Ordering::SeqCst) < events {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let publish_time = publish_start.elapsed();
    while (store.counts(&Default::default()).await.unwrap().events as u64) < events {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let stored_time = publish_start.elapsed();
    while received.load(Ordering::SeqCst) < flagged {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let delivered_time = publish_start.elapsed();
    let mut burst = std::mem::take(&mut *latencies.lock().unwrap());
    burst.sort_unstable();

    // Steady.
    let steady = 1000;
    publish(events, steady, Some(100.0)).await;
    let steady_flagged = flagged_in(events, steady);
    while received.load(Ordering::SeqCst) < flagged + steady_flagged {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let mut lat = latencies.lock().unwrap().clone();
    lat.sort_unstable();
    let ms = |us: u64| us as f64 / 1000.0;
    println!(
        "pipeline benchmark: {events} events ({flagged} flagged), embedded broker, SQLite (WAL, full sync), webhook on loopback"
    );
    println!(
        "  published and acknowledged: {:>8.0} events/s ({:.2} s)",
        events as f64 / publish_time.as_secs_f64(),
        publish_time.as_secs_f64()
    );
    println!(
        "  stored:                     {:>8.0} events/s ({:.2} s)",
        events as f64 / stored_time.as_secs_f64(),
        stored_time.as_secs_f64()
    );
    println!(
        "  bookmarks delivered:        {:>8.0} bookmarks/s ({:.2} s)",
        flagged as f64 / delivered_time.as_secs_f64(),
        delivered_time.as_secs_f64()
    );
    println!(
        "  burst publish-to-bookmark latency (backlog): p50 {:.0} ms, p99 {:.0} ms",
        ms(percentile(&burst, 0.5)),
        ms(percentile(&burst, 0.99))
    );
    println!(
        "steady 100 events/s for 10 s: publish-to-bookmark latency p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        ms(percentile(&lat, 0.5)),
        ms(percentile(&lat, 0.99)),
        ms(lat.last().copied().unwrap_or(0))
    );
    println!(
        "  peak resident memory (daemon and bench together): {:.1} MiB",
        peak_rss_mib()
    );
    daemon.shutdown().await;
}
