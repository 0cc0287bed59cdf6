//! Drawer opens through the real daemon: one that nothing explains is bookmarked once the window has passed,
//! one whose sale arrives after it, even across a restart of the daemon in between, is neither flagged nor
//! bookmarked.

use std::time::Duration;

use tillmark::event::event_key;

use crate::fake_nx::FakeNx;
use crate::support::*;

/// A short window, so the test waits seconds: drawer opens' bookmarks wait 3 s + 5 s after arrival.
const WINDOW: &str = "[bookmarks]\ndrawer_open_explained_within = \"3s\"\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drawer_open_is_bookmarked_only_when_no_sale_explains_it_even_when_the_sale_comes_after_a_restart()
 {
    let nx = FakeNx::start(&[CAM1, CAM2]).await;
    let site = Site::new();
    let (daemon, mut bridge) = start_daemon(site.config(None, &nx.url, WINDOW)).await;
    let r1 = site.topic("shibuya-01", "r1");
    // Explained by a sale 2 s before it (stored first), and one 2 s after it (arriving after the restart).
    bridge
        .publish(
            &r1,
            &event("sale-a", "sale", "r1", "2026-11-21T18:00:00.000+09:00"),
        )
        .await;
    bridge
        .publish(
            &r1,
            &event(
                "open-a",
                "drawer_open",
                "r1",
                "2026-11-21T18:00:02.000+09:00",
            ),
        )
        .await;
    bridge
        .publish(
            &r1,
            &event(
                "open-b",
                "drawer_open",
                "r1",
                "2026-11-21T18:10:00.000+09:00",
            ),
        )
        .await;
    // Nothing within 3 s of this one: the sale 4 s later is beyond the window.
    bridge
        .publish(
            &r1,
            &event(
                "open-c",
                "drawer_open",
                "r1",
                "2026-11-21T18:20:00.000+09:00",
            ),
        )
        .await;
    bridge
        .publish(
            &r1,
            &event("sale-c", "sale", "r1", "2026-11-21T18:20:04.000+09:00"),
        )
        .await;
    let base = web_base(&daemon);
    eventually(Duration::from_secs(10), "five events stored", || {
        let url = format!("{base}/api/events");
        async move { (get_json(&url).await["events"].as_array()?.len() == 5).then_some(()) }
    })
    .await;
    daemon.shutdown().await;

    // The sale that explains open-b reaches a new daemon on the same database, within open-b's window.
    let (daemon, mut bridge) = start_daemon(site.config(None, &nx.url, WINDOW)).await;
    bridge
        .publish(
            &site.topic("shibuya-01", "r1"),
            &event("sale-b", "sale", "r1", "2026-11-21T18:10:02.000+09:00"),
        )
        .await;

    let c = settled_event(&daemon, "open-c").await;
    assert_eq!(c["flagged"], true);
    assert_eq!(c["severity"], "high");
    tokio::time::sleep(Duration::from_secs(9)).await;
    let events = get_json(&format!("{}/api/events", web_base(&daemon))).await;
    let by_id = |id: &str| {
        events["events"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["id"] == id)
            .cloned()
            .unwrap_or_else(|| panic!("{id} not listed"))
    };
    for id in ["open-a", "open-b"] {
        let e = by_id(id);
        assert_eq!(e["flagged"], false, "{id} is explained: {e}");
        assert_eq!(e["bookmarks"], serde_json::json!([]), "{id}: no bookmark");
        assert_eq!(e["severity"], "low");
    }
    let marks = nx.bookmarks();
    assert_eq!(marks.len(), 1, "only open-c on Counter 1: {marks:?}");
    assert!(marks[0].tags.contains(&event_key("shibuya-01", "open-c")));
    daemon.shutdown().await;
}
