//! A chain's central deployment: three daemons on one PostgreSQL database and one broker, sharing the stream
//! through a shared subscription, in front of a slow camera system. One is killed with SIGKILL in the middle of
//! a 5,000-event burst and started again later: every event is stored once, every flagged one bookmarked once at
//! its original moment, and no row is sent twice, which a lease taken from a daemon still alive would do.

use std::sync::atomic::Ordering;
use std::time::Duration;

use tillmark::event::event_key;

use crate::crash::assert_each_once_at_its_moment;
use crate::fake_nx::FakeNx;
use crate::support::*;
use crate::test_database::TestDatabase;

const EVENTS: i64 = 5_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_daemons_on_one_postgres_share_a_burst_and_one_killed_mid_burst_loses_and_repeats_nothing()
 {
    let Some(db) = TestDatabase::postgres() else {
        eprintln!("skipped: TILLMARK_TEST_POSTGRES_URL is not set");
        return;
    };
    let broker = external_broker();
    let nx = FakeNx::start(&[CAM1, CAM2]).await;
    nx.state.faults.create_delay_ms.store(40, Ordering::SeqCst);
    let site = Site::new();
    allow_tests(&db.url).await;
    let group = unique("chain");
    let text = site
        .config_text(Some(&broker.daemon), &nx.url, "")
        .replace(&site.db_url(), &db.url);
    let daemon = |n: usize, run: usize| {
        let port = free_port();
        let config = text
            .replace(
                &format!("client_id = \"{}\"", site.client_id),
                &format!(
                    "client_id = \"{}-{n}\"\nshared_group = \"{group}\"",
                    site.client_id
                ),
            )
            .replace(
                "listen = \"127.0.0.1:0\"",
                &format!("listen = \"127.0.0.1:{port}\""),
            )
            .replace("[delivery]", "[delivery]\ndaemons = 3");
        let path = site.dir.path().join(format!("tillmark-{n}.toml"));
        std::fs::write(&path, config).unwrap();
        let log = site.dir.path().join(format!("daemon-{n}-run-{run}.log"));
        (
            spawn_tillmark(&path, &log, &[("TEST_NX_PASSWORD", NX_PASSWORD)]),
            log,
            port,
        )
    };
    let mut running = Vec::new();
    let mut logs = Vec::new();
    for n in 0..3 {
        let (process, log, port) = daemon(n, 1);
        wait_for_log(&log, "Subscribed.").await;
        running.push((process, port));
        logs.push(log);
    }

    let mut bridge = Bridge::connect(&broker.registers).await;
    let mut expected = Vec::new();
    for i in 0..EVENTS {
        let register = if i % 2 == 0 { "r1" } else { "r2" };
        let kind = if i % 5 == 0 { "void" } else { "sale" };
        let at_ms = AT_MS + i * 100;
        let id = format!("burst-{i}");
        bridge
            .publish(
                &site.topic("shibuya-01", register),
                &event(&id, kind, register, &tokyo(at_ms)),
            )
            .await;
        if kind == "void" {
            let cameras = if register == "r1" {
                vec![CAM1]
            } else {
                vec![CAM1, CAM2]
            };
            expected.push((event_key("shibuya-01", &id), at_ms, cameras));
        }
        if i == 2_000 {
            running[1].0.0.kill().expect("SIGKILL");
            let _ = running[1].0.0.wait();
        }
        if i == 4_000 {
            let (process, log, port) = daemon(1, 2);
            // The broker kept its session, and with it its share of what arrived meanwhile.
            wait_for_log(&log, "session_present=true").await;
            running[1] = (process, port);
        }
    }

    let total: usize = expected.iter().map(|(_, _, c)| c.len()).sum();
    let health = format!("http://127.0.0.1:{}/healthz", running[0].1);
    eventually(
        Duration::from_secs(120),
        "every event stored and every bookmark made",
        || {
            let health = health.clone();
            async move {
                let h = reqwest::get(&health)
                    .await
                    .ok()?
                    .json::<serde_json::Value>()
                    .await
                    .ok()?;
                (h["events"] == EVENTS && h["bookmarks_pending"] == 0).then_some(())
            }
        },
    )
    .await;
    for log in &logs {
        let stored = std::fs::read_to_string(log)
            .unwrap()
            .matches("Event stored.")
            .count();
        assert!(
            stored > 100,
            "each daemon took its share of the stream: {stored} in {}",
            log.display()
        );
    }
    let h = get_json(&health).await;
    assert_eq!(h["bookmarks_failed"], 0, "{h}");
    assert_eq!(
        nx.bookmarks().len(),
        total,
        "each bookmark made once on the camera system"
    );
    assert_each_once_at_its_moment(&nx, &expected);
}
