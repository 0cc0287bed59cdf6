//! The camera system goes away and comes back: 503s for a while, sessions that end mid-run, creates that the
//! server stored but answered with an error. Every bookmark is made exactly once, at its original moment.

use std::sync::atomic::Ordering;
use std::time::Duration;

use tillmark::event::event_key;

use crate::fake_nx::FakeNx;
use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_nx_outage_with_expiring_sessions_and_lost_answers_still_makes_every_bookmark_exactly_once()
 {
    // Tokens live one second, so they are renewed many times during the run.
    let nx = FakeNx::start_with_token_lifetime(&[CAM1, CAM2], 1).await;
    nx.state.faults.outage.store(true, Ordering::SeqCst);
    let site = Site::new();
    let (daemon, mut bridge) = start_daemon(site.config(None, &nx.url, "")).await;

    // 30 voids, a second apart at the register, alternating r1 (one camera) and r2 (two cameras).
    let mut expected = Vec::new();
    for i in 0..30 {
        let register = if i % 2 == 0 { "r1" } else { "r2" };
        let at_ms = 1_795_254_127_000 + i * 1000;
        let at = chrono::DateTime::from_timestamp_millis(at_ms)
            .unwrap()
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let id = format!("void-{i}");
        bridge
            .publish(
                &site.topic("shibuya-01", register),
                &event(&id, "void", register, &at),
            )
            .await;
        let cameras = if register == "r1" {
            vec![CAM1]
        } else {
            vec![CAM1, CAM2]
        };
        expected.push((event_key("shibuya-01", &id), at_ms, cameras));
        if i == 10 {
            // The server comes back, but its first three answers to creates are lost after it stored them.
            tokio::time::sleep(Duration::from_millis(1500)).await;
            nx.state.faults.store_then_fail.store(3, Ordering::SeqCst);
            nx.state.faults.outage.store(false, Ordering::SeqCst);
            eventually(Duration::from_secs(10), "deliveries resuming", || async {
                (nx.bookmarks().len() > 3).then_some(())
            })
            .await;
            // Then every session ends, as when the server restarts: the next calls are refused with 403.
            nx.expire_sessions();
        }
    }
    let total: usize = expected.iter().map(|(_, _, c)| c.len()).sum();
    let base = format!("http://{}", daemon.web_addr());
    eventually(
        Duration::from_secs(30),
        "every bookmark made in the index",
        || {
            let url = format!("{base}/api/events?limit=100");
            async move {
                let v = get_json(&url).await;
                let made = v["events"]
                    .as_array()?
                    .iter()
                    .flat_map(|e| e["bookmarks"].as_array().cloned().unwrap_or_default())
                    .filter(|b| b["state"] == "made")
                    .count();
                (made == total).then_some(())
            }
        },
    )
    .await;

    for (key, at_ms, cameras) in &expected {
        let marks = nx.with_tag(key);
        assert_eq!(
            marks.len(),
            cameras.len(),
            "exactly one bookmark per camera for {key}: {marks:?}"
        );
        for cam in cameras {
            let on_cam: Vec<_> = marks.iter().filter(|m| m.device == *cam).collect();
            assert_eq!(on_cam.len(), 1, "{key} on {cam}");
            assert_eq!(
                on_cam[0].start_ms,
                at_ms - 10_000,
                "{key} keeps its original moment"
            );
            assert_eq!(on_cam[0].duration_ms, 30_000);
        }
    }
    assert_eq!(nx.bookmarks().len(), total, "no duplicates on the server");
    assert!(
        nx.state.logins.load(Ordering::SeqCst) >= 2,
        "sessions were renewed"
    );
    daemon.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_camera_ends_as_a_failed_bookmark_with_the_vendors_message_in_the_index() {
    // The server knows only CAM1: the void on r2 fails on CAM2 and is made on CAM1.
    let nx = FakeNx::start(&[CAM1]).await;
    let site = Site::new();
    let (daemon, mut bridge) = start_daemon(site.config(None, &nx.url, "")).await;
    bridge
        .publish(
            &site.topic("shibuya-01", "r2"),
            &event("void-x", "void", "r2", "2026-11-21T18:42:07.310+09:00"),
        )
        .await;
    let bookmarks = settled_bookmarks(&daemon).await;
    let failed = bookmarks.iter().find(|b| b["device"] == CAM2).unwrap();
    assert_eq!(failed["state"], "failed");
    let error = failed["last_error"].as_str().unwrap();
    assert!(
        error.contains(&format!("Nx Witness has no camera \"{CAM2}\"")),
        "{error}"
    );
    assert!(
        error.contains("Resource"),
        "the vendor's own words are kept: {error}"
    );
    let made = bookmarks.iter().find(|b| b["device"] == CAM1).unwrap();
    assert_eq!(made["state"], "made");
    daemon.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_camera_id_is_fixed_retry_failed_sends_the_bookmark_to_the_new_id_at_its_moment() {
    // Counter 2's id in the config has a typo: Nx knows the camera as CAM3.
    const CAM3: &str = "5a1c0de0-2222-4a53-9d55-51d1b0cfa1e4";
    let nx = FakeNx::start(&[CAM1, CAM3]).await;
    let site = Site::new();
    let (daemon, mut bridge) = start_daemon(site.config(None, &nx.url, "")).await;
    bridge
        .publish(
            &site.topic("shibuya-01", "r2"),
            &event("void-typo", "void", "r2", "2026-11-21T18:42:07.310+09:00"),
        )
        .await;
    let bookmarks = settled_bookmarks(&daemon).await;
    assert!(
        bookmarks
            .iter()
            .any(|b| b["device"] == CAM2 && b["state"] == "failed"),
        "{bookmarks:?}"
    );
    daemon.shutdown().await;

    // An unknown system is refused by name, not answered with "0 queued".
    let fixed_text = site.config_text(None, &nx.url, "").replace(CAM2, CAM3);
    let fixed =
        tillmark::config::Config::parse(&fixed_text, &|_| Some(NX_PASSWORD.into())).unwrap();
    let e = tillmark::cli::retry_failed(&fixed, Some("nvr-typo"))
        .await
        .unwrap_err();
    assert!(
        e.to_string()
            .starts_with("no camera system \"nvr-typo\" in the config; its camera systems: "),
        "{e}"
    );
    let out = tillmark::cli::retry_failed(&fixed, None).await.unwrap();
    assert!(
        out.starts_with("1 failed bookmark queued again")
            && out.contains(&format!("{CAM2} → {CAM3} (Counter 2)")),
        "{out}"
    );
    let (daemon, _bridge) = start_daemon(fixed).await;
    let bookmarks = settled_bookmarks(&daemon).await;
    assert!(
        bookmarks.iter().all(|b| b["state"] == "made"),
        "{bookmarks:?}"
    );
    let on_cam3: Vec<_> = nx
        .bookmarks()
        .into_iter()
        .filter(|b| b.device == CAM3)
        .collect();
    assert_eq!(on_cam3.len(), 1, "the fixed camera got the void's bookmark");
    assert_eq!(
        on_cam3[0].start_ms,
        1_795_254_127_310 - 10_000,
        "at the void's moment less the pre-roll"
    );
    daemon.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_nx_credentials_fail_the_bookmark_with_a_message_naming_the_user_and_never_the_password()
 {
    let nx = FakeNx::start(&[CAM1]).await;
    let site = Site::new();
    let text = site.config_text(None, &nx.url, "");
    let config =
        tillmark::config::Config::parse(&text, &|_| Some("wrong-password-123".into())).unwrap();
    let (daemon, mut bridge) = start_daemon(config).await;
    bridge
        .publish(
            &site.topic("shibuya-01", "r1"),
            &event("void-pw", "void", "r1", "2026-11-21T18:42:07.310+09:00"),
        )
        .await;
    let b = settled_bookmarks(&daemon).await.remove(0);
    assert_eq!(b["state"], "failed");
    let error = b["last_error"].as_str().unwrap();
    assert!(
        error.contains("refused the login of user \"tillmark\""),
        "{error}"
    );
    assert!(error.contains("Wrong user name or password."), "{error}");
    assert!(!error.contains("wrong-password-123"));
    assert!(nx.bookmarks().is_empty());
    daemon.shutdown().await;

    // The operator fixes the password and queues the failed bookmark again (`tillmark retry-failed`).
    let fixed = site.config(None, &nx.url, "");
    let out = tillmark::cli::retry_failed(&fixed, None).await.unwrap();
    assert!(out.starts_with("1 failed bookmark queued again"), "{out}");
    let (daemon, _bridge) = start_daemon(fixed).await;
    let b = settled_bookmarks(&daemon).await.remove(0);
    assert_eq!(b["state"], "made", "{b}");
    assert_eq!(nx.bookmarks().len(), 1);
    assert_eq!(
        nx.bookmarks()[0].start_ms,
        1_795_254_127_310 - 10_000,
        "still at the original moment"
    );
    daemon.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_the_camera_system_answers_again_the_bookmarks_waiting_out_their_backoff_go_at_once() {
    let nx = FakeNx::start(&[CAM1, CAM2]).await;
    nx.state.faults.outage.store(true, Ordering::SeqCst);
    let site = Site::new();
    // After one quick retry, a failed bookmark would wait ten minutes on its own.
    let text = site.config_text(None, &nx.url, "").replace(
        "retry = [\"100ms\", \"200ms\", \"400ms\"]",
        "retry = [\"100ms\", \"10m\"]",
    );
    let config = tillmark::config::Config::parse(&text, &|_| Some(NX_PASSWORD.into())).unwrap();
    let (daemon, mut bridge) = start_daemon(config).await;
    for i in 0..5 {
        let id = format!("early-{i}");
        bridge
            .publish(
                &site.topic("shibuya-01", "r1"),
                &event(&id, "void", "r1", "2026-11-21T18:42:07.310+09:00"),
            )
            .await;
    }
    let base = format!("http://{}", daemon.web_addr());
    eventually(
        Duration::from_secs(10),
        "every early bookmark in its long wait",
        || {
            let url = format!("{base}/api/events");
            async move {
                let v = get_json(&url).await;
                let waiting = v["events"]
                    .as_array()?
                    .iter()
                    .filter(|e| e["bookmarks"][0]["attempts"].as_i64() >= Some(2))
                    .count();
                (waiting == 5).then_some(())
            }
        },
    )
    .await;
    nx.state.faults.outage.store(false, Ordering::SeqCst);
    // A new event is tried at once; its success shows the system is back.
    bridge
        .publish(
            &site.topic("shibuya-01", "r1"),
            &event("late", "void", "r1", "2026-11-21T18:45:00+09:00"),
        )
        .await;
    eventually(
        Duration::from_secs(10),
        "all six bookmarks made within seconds, not minutes",
        || async { (nx.bookmarks().len() == 6).then_some(()) },
    )
    .await;
    daemon.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bookmarks_of_events_from_while_the_network_was_down_are_made_once_it_is_back_at_their_moments()
 {
    // Nothing answers at the camera system's address yet: connections are refused, as with a pulled cable.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let site = Site::new();
    let (daemon, mut bridge) = start_daemon(site.config(None, &format!("http://{addr}"), "")).await;
    let moments = [
        "2026-11-21T18:42:07.310+09:00",
        "2026-11-21T18:50:00.000+09:00",
        "2026-11-21T19:01:30.500+09:00",
    ];
    for (i, at) in moments.iter().enumerate() {
        bridge
            .publish(
                &site.topic("shibuya-01", "r1"),
                &event(&format!("down-{i}"), "no_sale", "r1", at),
            )
            .await;
    }
    let base = format!("http://{}", daemon.web_addr());
    let error = eventually(
        Duration::from_secs(10),
        "retries that could not connect",
        || {
            let url = format!("{base}/api/events");
            async move {
                let b = get_json(&url).await["events"][0]["bookmarks"][0].clone();
                (b["attempts"].as_i64() >= Some(2))
                    .then(|| b["last_error"].as_str().unwrap_or_default().to_string())
            }
        },
    )
    .await;
    assert!(error.contains("could not connect"), "{error}");

    let nx = FakeNx::start_at(&addr.to_string(), &[CAM1, CAM2], 3600).await;
    eventually(Duration::from_secs(15), "the three bookmarks", || async {
        (nx.bookmarks().len() >= 3).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut starts: Vec<i64> = nx.bookmarks().iter().map(|b| b.start_ms).collect();
    starts.sort_unstable();
    assert_eq!(
        starts,
        [1_795_254_117_310, 1_795_254_590_000, 1_795_255_280_500],
        "each at its own moment, once"
    );
    daemon.shutdown().await;
}
