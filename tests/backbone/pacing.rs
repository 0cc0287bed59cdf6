//! A camera system that rate-limits is paced, not failed: its 429s with `Retry-After` pause its lane and put
//! bookmarks back without counting attempts, so a backlog flows at the rate the vendor allows, and another
//! camera system's bookmarks are not held up meanwhile. The fakes are Rhombus APIs (`integrations/rhombus.toml`)
//! that allow so many seekpoints per fixed window and answer 429 with the seconds left in it.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde_json::Value;
use tillmark::config::Config;

use crate::support::*;

const API_KEY: &str = "rh-key-7f3a";
const LIMITED_CAM: &str = "AbCdEfGhIjKlMnOpQrStUv";
const FAST_CAM: &str = "ZyXwVuTsRqPoNmLkJiHgFe";

/// What a fake Rhombus saw: when each seekpoint was made, and how many requests it turned away.
#[derive(Clone, Default)]
struct Limited {
    made: Arc<Mutex<Vec<(Instant, String)>>>,
    refused: Arc<Mutex<usize>>,
    first: Arc<Mutex<Option<Instant>>>,
    /// Answers 500 to everything while set.
    down: Arc<AtomicBool>,
}

impl Limited {
    fn made(&self) -> Vec<(Instant, String)> {
        self.made.lock().unwrap().clone()
    }

    /// From the first request to the last seekpoint made.
    fn span(&self) -> Duration {
        let first = self.first.lock().unwrap().expect("a request");
        self.made().iter().map(|(at, _)| *at - first).max().unwrap()
    }
}

/// A Rhombus that makes `per_window` seekpoints per `window` (windows counted from its first request) and
/// answers the rest 429 with `Retry-After` in whole seconds to the next window; each answer takes `latency`.
async fn start_limited_rhombus(
    per_window: usize,
    window: Duration,
    latency: Duration,
) -> (String, Limited) {
    let fake = Limited::default();
    let state = fake.clone();
    let app = axum::Router::new().fallback(move |body: String| {
        let state = state.clone();
        async move {
            tokio::time::sleep(latency).await;
            if state.down.load(Ordering::SeqCst) {
                return (StatusCode::INTERNAL_SERVER_ERROR, "down").into_response();
            }
            let now = Instant::now();
            let first = *state.first.lock().unwrap().get_or_insert(now);
            let elapsed = now - first;
            let index = (elapsed.as_nanos() / window.as_nanos()) as u32;
            let window_start = first + window * index;
            let mut made = state.made.lock().unwrap();
            let in_window = made.iter().filter(|(at, _)| *at >= window_start).count();
            if in_window >= per_window {
                *state.refused.lock().unwrap() += 1;
                let left = (window_start + window) - now;
                let secs = left.as_secs_f64().ceil().max(1.0) as u64;
                return (
                    StatusCode::TOO_MANY_REQUESTS,
                    [("retry-after", secs.to_string())],
                    "rate limit exceeded",
                )
                    .into_response();
            }
            let body: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
            let name = body["footageSeekPoints"][0]["timestampMs"].to_string();
            made.push((now, name));
            axum::Json(serde_json::json!({"error": false, "errorMsg": null})).into_response()
        }
    });
    (serve(app).await, fake)
}

/// The rate-limited Rhombus on register r1, and, when given, a second one on r2.
fn config(site: &Site, limited: &str, fast: Option<&str>) -> Config {
    let mut text = format!(
        r#"{header}[[camera_systems]]
id = "limited"
integration = "rhombus"
url = "{limited}"
api_key_env = "RHOMBUS_API_KEY"
[[cameras]]
system = "limited"
device = "{LIMITED_CAM}"
name = "Door"
registers = ["shibuya-01/r1"]
"#,
        header = site.header(&repo_integrations()),
    );
    if let Some(fast) = fast {
        text.push_str(&format!(
            r#"[[camera_systems]]
id = "fast"
integration = "rhombus"
url = "{fast}"
api_key_env = "RHOMBUS_API_KEY"
[[cameras]]
system = "fast"
device = "{FAST_CAM}"
name = "Till"
registers = ["shibuya-01/r2"]
"#
        ));
    }
    parse_config(&text, &[("RHOMBUS_API_KEY", API_KEY)])
}

/// Publishes `count` voids on `register`, a second apart, ids `{prefix}-{n}`.
async fn publish_backlog(
    site: &Site,
    bridge: &mut Bridge,
    prefix: &str,
    register: &str,
    count: usize,
) {
    let start = seconds_ago(600);
    for n in 0..count {
        let id = format!("{prefix}-{n}");
        publish_void(site, bridge, &id, register, &tokyo(start + n as i64 * 1000)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limited_backlog_is_made_at_the_vendors_rate_without_counting_its_429s_as_attempts()
{
    const BOOKMARKS: usize = 40;
    const PER_WINDOW: usize = 8;
    const WINDOW: Duration = Duration::from_secs(2);
    let (url, fake) = start_limited_rhombus(PER_WINDOW, WINDOW, Duration::ZERO).await;
    let site = Site::new();
    let (daemon, mut bridge) = start_daemon(config(&site, &url, None)).await;
    publish_backlog(&site, &mut bridge, "v", "r1", BOOKMARKS).await;

    let events = settled_events(&daemon, BOOKMARKS).await;
    let made = fake.made();
    assert_eq!(made.len(), BOOKMARKS, "each seekpoint made once");
    let refused = *fake.refused.lock().unwrap();
    assert!(refused > 0, "the vendor did turn requests away");
    for bookmarks in events.values() {
        let b = &bookmarks[0];
        assert_eq!(b["state"], "made", "{b}");
        assert_eq!(b["attempts"], 1, "429s are no attempts: {b}");
    }
    // Five windows of eight: the last seekpoint can be made at the start of the fifth.
    let allowed = WINDOW * (BOOKMARKS.div_ceil(PER_WINDOW) as u32 - 1);
    let span = fake.span();
    assert!(
        span <= allowed.mul_f64(1.1),
        "{BOOKMARKS} seekpoints took {span:?}; the vendor's rate allows {allowed:?} ({refused} 429s)"
    );
    daemon.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limited_slow_camera_system_does_not_delay_another_systems_bookmarks() {
    let (limited_url, limited) =
        start_limited_rhombus(2, Duration::from_secs(2), Duration::from_millis(300)).await;
    let (fast_url, fast) =
        start_limited_rhombus(1000, Duration::from_secs(60), Duration::ZERO).await;
    let site = Site::new();
    let (daemon, mut bridge) = start_daemon(config(&site, &limited_url, Some(&fast_url))).await;
    let published = Instant::now();
    publish_backlog(&site, &mut bridge, "slow", "r1", 20).await;
    publish_backlog(&site, &mut bridge, "quick", "r2", 10).await;

    let quick_done = eventually(
        Duration::from_secs(5),
        "the fast system's bookmarks",
        || {
            let fast = fast.clone();
            async move {
                let made = fast.made();
                (made.len() == 10).then(|| made.iter().map(|(at, _)| *at).max().unwrap())
            }
        },
    )
    .await;
    let limited_so_far = limited.made().len();
    assert!(
        quick_done - published < Duration::from_secs(3),
        "the fast system's ten were made {:?} after publishing",
        quick_done - published
    );
    assert!(
        limited_so_far < 20,
        "the limited system is still working through its backlog ({limited_so_far} of 20)"
    );

    let events = settled_events(&daemon, 30).await;
    assert_eq!(limited.made().len(), 20);
    assert_eq!(fast.made().len(), 10);
    for bookmarks in events.values() {
        assert_eq!(bookmarks[0]["state"], "made", "{}", bookmarks[0]);
        assert_eq!(bookmarks[0]["attempts"], 1, "{}", bookmarks[0]);
    }
    daemon.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_an_outage_a_backlog_drains_at_the_definitions_published_rate_with_hardly_a_429() {
    const BOOKMARKS: usize = 40;
    const PER_SECOND: f64 = 10.0;
    // Rhombus's definition with a published rate of ten a second, against a Rhombus that allows ten a second
    // and answers 429 beyond.
    let integrations = tempfile::tempdir().unwrap();
    let rhombus = std::fs::read_to_string(repo_integrations().join("rhombus.toml")).unwrap();
    std::fs::write(
        integrations.path().join("metered.toml"),
        rhombus.replace("name = \"rhombus\"", "name = \"metered\"") + "rate_limit = \"10/s\"\n",
    )
    .unwrap();
    let (url, fake) = start_limited_rhombus(10, Duration::from_secs(1), Duration::ZERO).await;
    fake.down.store(true, Ordering::SeqCst);
    let site = Site::new();
    let text = format!(
        r#"{header}[[camera_systems]]
id = "metered"
integration = "metered"
url = "{url}"
api_key_env = "RHOMBUS_API_KEY"
[[cameras]]
system = "metered"
device = "{LIMITED_CAM}"
name = "Door"
registers = ["shibuya-01/r1"]
"#,
        header = site.header(integrations.path()),
    );
    let (daemon, mut bridge) =
        start_daemon(parse_config(&text, &[("RHOMBUS_API_KEY", API_KEY)])).await;
    publish_backlog(&site, &mut bridge, "v", "r1", BOOKMARKS).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let back = Instant::now();
    fake.down.store(false, Ordering::SeqCst);

    settled_events(&daemon, BOOKMARKS).await;
    let made = fake.made();
    assert_eq!(made.len(), BOOKMARKS);
    let refused = *fake.refused.lock().unwrap();
    assert!(refused <= 1, "{refused} requests were turned away with 429");
    // The drain's rate, from its first bookmark to its last; noticing that the system is back (the retry
    // schedule's step) comes before it and is no part of the rate.
    let first = made.iter().map(|(at, _)| *at).min().unwrap();
    let last = made.iter().map(|(at, _)| *at).max().unwrap();
    assert!(first >= back, "nothing was made while the system was down");
    let rate = (BOOKMARKS - 1) as f64 / (last - first).as_secs_f64();
    assert!(
        rate >= 0.95 * PER_SECOND,
        "the backlog drained at {rate:.2} a second; the published rate is {PER_SECOND} ({refused} 429s)"
    );
    daemon.shutdown().await;
}

/// A webhook receiver that answers after `latency(requests in flight)` and remembers the most it had at once.
#[derive(Clone, Default)]
struct Crowd {
    in_flight: Arc<AtomicUsize>,
    most: Arc<AtomicUsize>,
    answered: Arc<AtomicUsize>,
}

impl Crowd {
    async fn all_answered(&self, count: usize) {
        eventually(
            Duration::from_secs(30),
            "every bookmark answered",
            || async { (self.answered.load(Ordering::SeqCst) >= count).then_some(()) },
        )
        .await;
    }
}

async fn start_crowded_receiver(latency: fn(usize) -> Duration) -> (String, Crowd) {
    let crowd = Crowd::default();
    let state = crowd.clone();
    let app = axum::Router::new().fallback(move || {
        let state = state.clone();
        async move {
            let now = state.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            state.most.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(latency(now)).await;
            state.in_flight.fetch_sub(1, Ordering::SeqCst);
            state.answered.fetch_add(1, Ordering::SeqCst);
            (
                StatusCode::CREATED,
                axum::Json(serde_json::json!({"id": 1})),
            )
                .into_response()
        }
    });
    (serve(app).await, crowd)
}

/// A webhook camera system at `url` on register r1, with `delivery` as the `[delivery]` section.
fn webhook_config(site: &Site, url: &str, delivery: &str) -> Config {
    let text = format!(
        r#"{header}[[camera_systems]]
id = "hook"
integration = "webhook"
url = "{url}"
[[cameras]]
system = "hook"
device = "door-cam"
name = "Door"
registers = ["shibuya-01/r1"]
"#,
        header = site
            .header(&repo_integrations())
            .replace("[delivery]\n", &format!("[delivery]\n{delivery}\n")),
    );
    parse_config(&text, &[])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configured_concurrency_of_four_is_a_ceiling_the_lane_never_passes() {
    const BOOKMARKS: usize = 60;
    let (url, crowd) = start_crowded_receiver(|_| Duration::from_millis(40)).await;
    let site = Site::new();
    let (daemon, mut bridge) = start_daemon(webhook_config(&site, &url, "concurrency = 4")).await;
    publish_backlog(&site, &mut bridge, "v", "r1", BOOKMARKS).await;
    crowd.all_answered(BOOKMARKS).await;
    let most = crowd.most.load(Ordering::SeqCst);
    assert_eq!(most, 4, "the most requests at once");
    daemon.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_slows_beyond_eight_at_once_gets_about_eight_and_the_page_shows_the_limit()
{
    const BOOKMARKS: usize = 300;
    // Flat up to eight at once, then slower in proportion: the knee is at eight.
    let (url, crowd) =
        start_crowded_receiver(|n| Duration::from_millis(50).mul_f64((n as f64 / 8.0).max(1.0)))
            .await;
    let site = Site::new();
    let (daemon, mut bridge) = start_daemon(webhook_config(&site, &url, "")).await;
    publish_backlog(&site, &mut bridge, "v", "r1", BOOKMARKS).await;
    // Slow start doubles the limit until the latency clearly rises: once past the knee, and no further.
    crowd.all_answered(BOOKMARKS / 3).await;
    let peak = crowd
        .most
        .swap(crowd.in_flight.load(Ordering::SeqCst), Ordering::SeqCst);
    assert!(
        (8..=18).contains(&peak),
        "{peak} requests at once while finding the knee"
    );
    crowd.all_answered(BOOKMARKS).await;
    let most = crowd.most.load(Ordering::SeqCst);
    assert!(
        (6..=14).contains(&most),
        "settled at most {most} requests at once, against a ceiling of 64"
    );
    let page = get_text(&format!("{}/integrations", web_base(&daemon))).await;
    assert!(
        page.contains("limit ") && page.contains(" ms"),
        "the integrations page shows the lane's limit and latency: {page}"
    );
    daemon.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_stopping_gives_back_the_rows_it_claimed_ahead_and_after_a_restart_each_goes_once()
{
    const BOOKMARKS: usize = 40;
    let (url, crowd) = start_crowded_receiver(|_| Duration::from_millis(200)).await;
    let site = Site::new();
    if site.sqlite_only("reading the outbox's columns from the file") {
        return;
    }
    let config = webhook_config(&site, &url, "");
    let (daemon, mut bridge) = start_daemon(config.clone()).await;
    publish_backlog(&site, &mut bridge, "v", "r1", BOOKMARKS).await;
    // The lane has grown past one and holds rows claimed ahead of its requests.
    crowd.all_answered(3).await;
    daemon.shutdown().await;

    // What was claimed and never sent is as it was before the claim: no attempt counted, no lease to wait out,
    // no doubt that would make the next attempt look for a bookmark first.
    let pool = sqlx::SqlitePool::connect(&site.db_url()).await.unwrap();
    let waiting: Vec<(i64, i64, bool, Option<i64>)> = sqlx::query_as(
        "SELECT attempts, in_flight, maybe_created, claimed_until_ms FROM bookmarks WHERE state = 'pending'",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    pool.close().await;
    assert!(!waiting.is_empty(), "the stop came mid-backlog");
    assert!(
        waiting.iter().all(|row| *row == (0, 0, false, None)),
        "rows waiting after the stop (attempts, in flight, maybe created, lease): {waiting:?}"
    );

    let (daemon, _bridge) = start_daemon(config).await;
    let events = settled_events(&daemon, BOOKMARKS).await;
    for bookmarks in events.values() {
        assert_eq!(bookmarks.len(), 1);
        assert_eq!(bookmarks[0]["state"], "made", "{}", bookmarks[0]);
        assert_eq!(bookmarks[0]["attempts"], 1, "{}", bookmarks[0]);
    }
    assert_eq!(
        crowd.answered.load(Ordering::SeqCst),
        BOOKMARKS,
        "each bookmark sent once across both runs"
    );
    daemon.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_met_by_one_daemon_pauses_the_camera_system_for_every_daemon_of_the_database() {
    // Turns every request away with a Retry-After to the end of its 8 s window.
    const WINDOW: Duration = Duration::from_secs(8);
    let (url, fake) = start_limited_rhombus(0, WINDOW, Duration::ZERO).await;
    let site = Site::new();
    let (first, mut bridge) = start_daemon(config(&site, &url, None)).await;
    let (second, _) = start_daemon(config(&site, &url, None)).await;

    publish_void(&site, &mut bridge, "opener", "r1", &tokyo(seconds_ago(60))).await;
    eventually(
        Duration::from_secs(10),
        "the vendor's first 429",
        || async { (*fake.refused.lock().unwrap() == 1).then_some(()) },
    )
    .await;
    let paused_at = fake.first.lock().unwrap().expect("a request");
    // The pause is in the database before any daemon claims what comes next: neither daemon calls the vendor
    // again until it ends, whichever of them met the 429 and whichever claims the new rows.
    tokio::time::sleep(Duration::from_millis(300)).await;
    publish_backlog(&site, &mut bridge, "later", "r1", 10).await;
    let quiet_until = paused_at + WINDOW - Duration::from_millis(500);
    tokio::time::sleep_until(quiet_until.into()).await;
    assert_eq!(
        *fake.refused.lock().unwrap(),
        1,
        "a daemon called the paused camera system before its Retry-After ended"
    );
    // After it, they go on (and this vendor turns them away again).
    eventually(
        Duration::from_secs(10),
        "requests after the pause",
        || async { (*fake.refused.lock().unwrap() > 1).then_some(()) },
    )
    .await;
    first.shutdown().await;
    second.shutdown().await;
}
