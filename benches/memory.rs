//! How much memory the daemon holds, and whether it gives it back after people stop browsing.
//!
//! `cargo bench --bench memory` runs the built `tillmark` binary as its own process (so the figures are the
//! daemon's alone, with the allocator its `main` chooses) on a temporary SQLite file with the embedded broker.
//! It reads the daemon's resident memory (VmRSS) idle; while `tillmark simulate` publishes a few thousand events
//! at full rate (the highest reading) and once they are in; right after ~150 renders of the heavy pages (the
//! 24-hour timeline of each register, the event list, event pages, the cashier chart, three at a time as a
//! browser's parallel connections fetch them); and 10 s later. Each is printed against its limit: 30 MB idle,
//! 60 MB for everything else. Takes about half a minute. Prints figures; asserts nothing.
//!
//! Environment: `TILLMARK_BENCH_EVENTS` (default 5000) events to fill, `TILLMARK_BENCH_RENDERS` (default 150).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tillmark::simulate::{SimulateOptions, run as simulate};
use tokio_util::sync::CancellationToken;

#[path = "support/process.rs"]
mod process;
use process::{free_port, rss_kib};

const PASSWORD: &str = "a long benchmark password";
const FILL_RATE: f64 = 1000.0;
const IDLE_LIMIT_MB: f64 = 30.0;
const BUSY_LIMIT_MB: f64 = 60.0;
const SETTLE: Duration = Duration::from_secs(10);
/// A browser opens a few connections to one site; so do we.
const PARALLEL: usize = 3;

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The process's resident memory in MB (10^6 bytes, as the limits are stated).
fn rss_mb(pid: u32) -> f64 {
    rss_kib(pid) * 1024.0 / 1e6
}

/// Ends the daemon when the benchmark ends, however it ends.
struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn tillmark(dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tillmark"));
    command.current_dir(dir).env("RUST_LOG", "warn");
    command
}

fn hidden(html: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker)? + marker.len();
    Some(html[start..start + html[start..].find('"')?].to_string())
}

/// The event pages the list links to.
fn event_links(html: &str) -> Vec<String> {
    let mut links: Vec<String> = html
        .split("href=\"/events/")
        .skip(1)
        .filter_map(|rest| {
            let seq: String = rest.chars().take_while(char::is_ascii_digit).collect();
            (!seq.is_empty()).then(|| format!("/events/{seq}"))
        })
        .collect();
    links.dedup();
    links
}

#[tokio::main]
async fn main() {
    let events = env_number("TILLMARK_BENCH_EVENTS", 5000);
    let renders = env_number("TILLMARK_BENCH_RENDERS", 150) as usize;
    let dir = tempfile::tempdir().expect("tempdir");
    let (broker_port, web_port) = (free_port(), free_port());
    let config = dir.path().join("tillmark.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[mqtt]
embedded_listen = "127.0.0.1:{broker_port}"

[database]
url = "sqlite://{db}"

[web]
listen = "127.0.0.1:{web_port}"

[[stores]]
id = "store-01"
name = "Store 1"
timezone = "Asia/Tokyo"

[[stores]]
id = "store-02"
name = "Store 2"
timezone = "Asia/Tokyo"
"#,
            db = dir.path().join("tillmark.db").display()
        ),
    )
    .expect("write the config");

    let mut add = tillmark(dir.path())
        .args([
            "user",
            "add",
            "bench",
            "--role",
            "owner",
            "--password-stdin",
        ])
        .arg("--config")
        .arg(&config)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("run tillmark user add");
    {
        use std::io::Write;
        let mut stdin = add.stdin.take().expect("stdin");
        writeln!(stdin, "{PASSWORD}").expect("write the password");
    }
    assert!(add.wait().expect("user add").success(), "user add failed");

    let daemon = Daemon(
        tillmark(dir.path())
            .arg("run")
            .arg("--config")
            .arg(&config)
            .stdout(Stdio::null())
            .spawn()
            .expect("start the daemon"),
    );
    let pid = daemon.0.id();
    let base = format!("http://127.0.0.1:{web_port}");
    let client = reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .expect("http client");
    let started = Instant::now();
    while client.get(format!("{base}/healthz")).send().await.is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the daemon did not answer"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let login = client
        .get(format!("{base}/login"))
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .expect("the sign-in form");
    let csrf = hidden(&login.text().await.unwrap_or_default(), "csrf").expect("a csrf field");
    client
        .post(format!("{base}/login"))
        .form(&[
            ("username", "bench"),
            ("password", PASSWORD),
            ("csrf", &csrf),
            ("next", "/"),
        ])
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .expect("sign in");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle = rss_mb(pid);

    // Full-rate intake: the highest reading while events arrive.
    let peak = Arc::new(AtomicU64::new(0));
    let sampling = CancellationToken::new();
    let sampler = tokio::spawn({
        let (peak, sampling) = (peak.clone(), sampling.clone());
        async move {
            while !sampling.is_cancelled() {
                peak.fetch_max(rss_mb(pid).to_bits(), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    });
    let fill = Instant::now();
    let summary = simulate(
        SimulateOptions {
            broker: format!("mqtt://127.0.0.1:{broker_port}"),
            rate: FILL_RATE,
            duration: Duration::from_secs_f64(events as f64 / FILL_RATE),
            seed: Some(11),
            ..SimulateOptions::default()
        },
        CancellationToken::new(),
    )
    .await
    .expect("simulate");
    let fill_secs = fill.elapsed().as_secs_f64();
    sampling.cancel();
    sampler.await.expect("sampler");
    let intake = f64::from_bits(peak.load(Ordering::Relaxed));
    tokio::time::sleep(Duration::from_secs(1)).await;
    let filled = rss_mb(pid);

    let list = client
        .get(format!("{base}/"))
        .send()
        .await
        .expect("the event list");
    let mut pages = vec![
        "/timeline?store=store-01&register=r1".to_string(),
        "/timeline?store=store-01&register=r2".to_string(),
        "/timeline?store=store-02&register=r1".to_string(),
        "/timeline?store=store-02&register=r2".to_string(),
        "/".to_string(),
        "/?flagged=1".to_string(),
        "/cashiers?store=store-01".to_string(),
        "/cashiers?store=store-02".to_string(),
    ];
    pages.extend(
        event_links(&list.text().await.unwrap_or_default())
            .into_iter()
            .take(8),
    );

    let browse = Instant::now();
    let bytes = Arc::new(AtomicU64::new(0));
    let failures = Arc::new(AtomicU64::new(0));
    let mut browsers = Vec::new();
    for b in 0..PARALLEL {
        let (client, base, pages) = (client.clone(), base.clone(), pages.clone());
        let (bytes, failures) = (bytes.clone(), failures.clone());
        browsers.push(tokio::spawn(async move {
            for i in (b..renders).step_by(PARALLEL) {
                let url = format!("{base}{}", pages[i % pages.len()]);
                match client
                    .get(url)
                    .send()
                    .await
                    .and_then(|r| r.error_for_status())
                {
                    Ok(r) => {
                        let body = r.bytes().await.unwrap_or_default();
                        bytes.fetch_add(body.len() as u64, Ordering::Relaxed);
                    }
                    Err(_) => {
                        failures.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    for b in browsers {
        b.await.expect("browser");
    }
    let browse_secs = browse.elapsed().as_secs_f64();
    let browsed = rss_mb(pid);
    let timeline_kb = client
        .get(format!("{base}{}", pages[0]))
        .send()
        .await
        .expect("the timeline")
        .bytes()
        .await
        .map(|b| b.len() / 1000)
        .unwrap_or(0);
    tokio::time::sleep(SETTLE).await;
    let settled = rss_mb(pid);
    drop(daemon);
    let db_mb = std::fs::metadata(dir.path().join("tillmark.db"))
        .map(|m| m.len() as f64 / 1e6)
        .unwrap_or(f64::NAN);

    println!(
        "filled {} events ({db_mb:.1} MB of database) in {fill_secs:.1} s; {renders} renders of {} pages ({} KB, the 24-hour timeline {timeline_kb} KB; {} failed) in {browse_secs:.1} s",
        summary.published,
        pages.len(),
        bytes.load(Ordering::Relaxed) / 1000,
        failures.load(Ordering::Relaxed),
    );
    println!(
        "{:<34} {:>8} {:>8} {:>7}",
        "daemon RSS", "MB", "limit", "ratio"
    );
    for (label, mb, limit) in [
        ("idle, signed in", idle, IDLE_LIMIT_MB),
        ("full-rate intake (highest)", intake, BUSY_LIMIT_MB),
        ("after filling", filled, BUSY_LIMIT_MB),
        ("right after browsing", browsed, BUSY_LIMIT_MB),
        ("10 s after browsing", settled, BUSY_LIMIT_MB),
    ] {
        println!("{label:<34} {mb:>8.1} {limit:>8.0} {:>7.2}", mb / limit);
    }
}
