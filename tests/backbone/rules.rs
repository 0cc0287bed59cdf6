//! Exception rules through the real daemon: a sale and its void split by a restart are found as a pair, and a
//! rule that bookmarks a sale gets that sale to the camera at its moment, once.

use std::time::Duration;

use serde_json::{Value, json};
use tillmark::event::event_key;

use crate::fake_nx::FakeNx;
use crate::support::*;

const RULES: &str = r#"
[[rules]]
id = "sweetheart"
kind = "sequence"
first = "sale"
then = "void"
within = "2m"
same_amount = true

[[rules]]
id = "big-sale"
kind = "amount_over"
types = ["sale"]
min_amount = 100000
currency = "JPY"
bookmark = true
"#;

fn with_amount(mut e: Value, amount: i64) -> Value {
    e["amount"] = json!(amount);
    e
}

/// The ids of the events `/api/events?exception=RULE` lists.
async fn excepted(base: &str, rule: &str) -> Vec<String> {
    let list = get_json(&format!("{base}/api/events?exception={rule}")).await;
    let mut ids: Vec<String> = list["events"]
        .as_array()
        .map(|events| {
            events
                .iter()
                .filter_map(|e| e["id"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    ids.sort();
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sale_and_its_void_across_a_restart_are_a_pair_and_a_rule_bookmarks_a_big_sale_at_its_moment()
 {
    let nx = FakeNx::start(&[CAM1, CAM2]).await;
    let site = Site::new();
    let (daemon, mut bridge) = start_daemon(site.config(None, &nx.url, RULES)).await;
    let r1 = site.topic("shibuya-01", "r1");
    let sale_at = "2026-11-21T18:00:00.000+09:00";
    bridge
        .publish(&r1, &event("sale-a", "sale", "r1", sale_at))
        .await;
    bridge
        .publish(
            &r1,
            &with_amount(event("sale-big", "sale", "r1", AT), 150_000),
        )
        .await;
    let base = web_base(&daemon);
    eventually(Duration::from_secs(15), "the big sale found", || {
        let base = base.clone();
        async move { (excepted(&base, "big-sale").await == ["sale-big"]).then_some(()) }
    })
    .await;
    // Its bookmark is the rule's: a sale's type alone makes none. It lands on Counter 1 at the sale's moment.
    let marks = settled_bookmarks_of(&daemon, "sale-big").await;
    assert_eq!(marks.len(), 1, "{marks:?}");
    assert_eq!(marks[0]["state"], "made");
    daemon.shutdown().await;
    let made = nx.bookmarks();
    assert_eq!(made.len(), 1, "{made:?}");
    assert!(made[0].tags.contains(&event_key("shibuya-01", "sale-big")));
    assert_eq!(
        made[0].start_ms,
        AT_MS - 10_000,
        "the default pre-roll before the sale"
    );

    // The void of the first sale reaches a new daemon on the same database.
    let (daemon, mut bridge) = start_daemon(site.config(None, &nx.url, RULES)).await;
    bridge
        .publish(
            &r1,
            &event("void-a", "void", "r1", "2026-11-21T18:01:30.000+09:00"),
        )
        .await;
    let base = web_base(&daemon);
    eventually(Duration::from_secs(15), "the pair found", || {
        let base = base.clone();
        async move { (excepted(&base, "sweetheart").await == ["void-a"]).then_some(()) }
    })
    .await;
    assert_eq!(excepted(&base, "any").await, ["sale-big", "void-a"]);
    daemon.shutdown().await;
}
