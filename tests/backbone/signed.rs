//! Signed events and reused ids through the running daemon: only a holder of a register's key puts an event on
//! its record, and an id used again for something else is shown, never silently dropped.

use std::time::Duration;

use serde_json::{Value, json};
use tillmark::event::sign;
use tillmark::secret::Secret;

use crate::fake_nx::FakeNx;
use crate::support::*;

const KEY_R1: &str = "c1f0e7a25b3d49e8a6b7c8d9e0f1a2b3";
const KEY_STORE: &str = "9a8b7c6d5e4f30211203f4e5d6c7b8a9";

fn signed(event: &Value, key: &str) -> Vec<u8> {
    let text = event.to_string();
    let sig = sign(&text, &Secret::new(key));
    format!(r#"{{"event":{text},"sig":"{sig}"}}"#).into_bytes()
}

fn signing_config(site: &Site, nx_url: &str, mode: &str) -> tillmark::config::Config {
    let extra = format!(
        r#"[signing]
mode = "{mode}"
[[signing.keys]]
register = "shibuya-01/r1"
key_env = "TEST_KEY_R1"
[[signing.keys]]
register = "shibuya-01/*"
key_env = "TEST_KEY_STORE""#
    );
    parse_config(
        &site.config_text(None, nx_url, &extra),
        &[
            ("TEST_NX_PASSWORD", NX_PASSWORD),
            ("TEST_KEY_R1", KEY_R1),
            ("TEST_KEY_STORE", KEY_STORE),
        ],
    )
}

async fn dead_letters(base: &str, count: usize) -> Vec<Value> {
    eventually(Duration::from_secs(10), "the dead letters", || {
        let url = format!("{base}/api/dead-letters?limit=100");
        async move {
            let list = get_json(&url).await["dead_letters"].as_array()?.clone();
            (list.len() == count).then_some(list)
        }
    })
    .await
}

fn reasons(letters: &[Value]) -> Vec<String> {
    letters
        .iter()
        .map(|d| d["reason"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_signing_required_only_events_signed_with_their_registers_key_are_recorded() {
    let nx = FakeNx::start(&[CAM1, CAM2]).await;
    let site = Site::new();
    let (daemon, mut bridge) = start_daemon(signing_config(&site, &nx.url, "required")).await;
    let base = format!("http://{}", daemon.web_addr());
    let (r1, r2) = (
        site.topic("shibuya-01", "r1"),
        site.topic("shibuya-01", "r2"),
    );

    let void = event("signed-1", "void", "r1", AT);
    bridge.publish_bytes(&r1, signed(&void, KEY_R1)).await;
    // r2 has no key of its own: the store's key signs for it.
    let refund = event("signed-2", "refund", "r2", AT);
    bridge.publish_bytes(&r2, signed(&refund, KEY_STORE)).await;
    // Unsigned, tampered with, signed with the wrong key, and r1's key used for r2's topic.
    bridge
        .publish(&r1, &event("unsigned-1", "void", "r1", AT))
        .await;
    let tampered = String::from_utf8(signed(&event("t-1", "void", "r1", AT), KEY_R1))
        .unwrap()
        .replace("1280", "12800");
    bridge.publish_bytes(&r1, tampered.into_bytes()).await;
    bridge
        .publish_bytes(&r1, signed(&event("w-1", "void", "r1", AT), KEY_STORE))
        .await;
    bridge
        .publish_bytes(&r2, signed(&event("x-1", "void", "r2", AT), KEY_R1))
        .await;

    let letters = dead_letters(&base, 4).await;
    let reasons = reasons(&letters);
    assert!(
        reasons[..].iter().any(|r| r.starts_with("unsigned")),
        "{reasons:?}"
    );
    assert_eq!(
        reasons
            .iter()
            .filter(|r| *r == "signature mismatch")
            .count(),
        3,
        "{reasons:?}"
    );
    let events = get_json(&format!("{base}/api/events")).await;
    let ids: Vec<&str> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 2, "{ids:?}");
    assert!(
        events["events"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["signed"] == true)
    );
    // Both signed events reach the camera system, at their register's moment.
    let marks = eventually(Duration::from_secs(10), "two bookmarks", || async {
        let marks = nx.bookmarks();
        (marks.len() >= 3).then_some(marks)
    })
    .await;
    assert!(marks.iter().all(|m| m.start_ms == AT_MS - 10_000));
    daemon.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn optional_signing_records_unsigned_events_marked_as_unsigned() {
    let nx = FakeNx::start(&[CAM1, CAM2]).await;
    let site = Site::new();
    let (daemon, mut bridge) = start_daemon(signing_config(&site, &nx.url, "optional")).await;
    let base = format!("http://{}", daemon.web_addr());
    let r1 = site.topic("shibuya-01", "r1");
    bridge
        .publish(&r1, &event("plain-1", "sale", "r1", AT))
        .await;
    let event_json = eventually(Duration::from_secs(10), "the unsigned sale", || {
        let url = format!("{base}/api/events");
        async move {
            let list = get_json(&url).await["events"].as_array()?.clone();
            list.into_iter().next()
        }
    })
    .await;
    assert_eq!(event_json["signed"], false);
    let page = get_text(&format!("{base}/events/{}", event_json["seq"])).await;
    assert!(
        page.contains("unsigned: the register sent no signature"),
        "{page}"
    );
    daemon.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_id_with_other_content_is_a_dead_letter_and_the_original_carries_a_warning() {
    let nx = FakeNx::start(&[CAM1, CAM2]).await;
    let site = Site::new();
    let (daemon, mut bridge) = start_daemon(site.config(None, &nx.url, "")).await;
    let base = format!("http://{}", daemon.web_addr());
    let r1 = site.topic("shibuya-01", "r1");
    let void = event("void-77", "void", "r1", AT);
    bridge.publish(&r1, &void).await;
    // A redelivery changes nothing; a forged sale under the void's id must not hide the void.
    bridge.publish(&r1, &void).await;
    let mut forged = void.clone();
    forged["type"] = json!("sale");
    bridge.publish(&r1, &forged).await;

    let letters = dead_letters(&base, 1).await;
    assert!(
        reasons(&letters)[0].starts_with("id reused with different content"),
        "{:?}",
        reasons(&letters)
    );
    let events = get_json(&format!("{base}/api/events")).await;
    let list = events["events"].as_array().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(
        (list[0]["type"].as_str(), list[0]["reused"].as_i64()),
        (Some("void"), Some(1))
    );
    let page = get_text(&format!("{base}/events/{}", list[0]["seq"])).await;
    assert!(
        page.contains("used this event&#x27;s id with other content")
            || page.contains("used this event's id with other content"),
        "{page}"
    );
    // The void still becomes its bookmarks: one per camera watching r1.
    let marks = eventually(Duration::from_secs(10), "the void's bookmark", || async {
        let marks = nx.bookmarks();
        (!marks.is_empty()).then_some(marks)
    })
    .await;
    assert_eq!(marks.len(), 1);
    daemon.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_refunds_whose_numeric_ids_mask_alike_stay_two_events_with_their_own_bookmarks() {
    let nx = FakeNx::start(&[CAM1, CAM2]).await;
    let site = Site::new();
    let (daemon, mut bridge) = start_daemon(site.config(None, &nx.url, "")).await;
    let base = format!("http://{}", daemon.web_addr());
    let r1 = site.topic("shibuya-01", "r1");
    for (id, amount) in [("2026120000020018", 500), ("2026120000100018", 900)] {
        let mut refund = event(id, "refund", "r1", AT);
        refund["amount"] = json!(amount);
        bridge.publish(&r1, &refund).await;
    }
    let list = eventually(Duration::from_secs(10), "both refunds", || {
        let url = format!("{base}/api/events");
        async move {
            let list = get_json(&url).await["events"].as_array()?.clone();
            (list.len() == 2).then_some(list)
        }
    })
    .await;
    let mut amounts: Vec<i64> = list.iter().map(|e| e["amount"].as_i64().unwrap()).collect();
    amounts.sort();
    assert_eq!(amounts, [500, 900]);
    for e in &list {
        let id = e["id"].as_str().unwrap();
        assert!(id.starts_with("202612******0018~"), "{id}");
    }
    let marks = eventually(Duration::from_secs(10), "a bookmark each", || async {
        let marks = nx.bookmarks();
        (marks.len() == 2).then_some(marks)
    })
    .await;
    assert_ne!(marks[0].tags, marks[1].tags);
    for m in &marks {
        assert!(!m.body.contains("2026120000020018") && !m.body.contains("2026120000100018"));
    }
    daemon.shutdown().await;
}
