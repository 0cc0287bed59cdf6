//! Several daemons share one stream: with `[mqtt] shared_group`, the broker hands each message to one daemon
//! of the group, so two daemons (each with its own client id) store every event exactly once between them.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::support::*;

async fn ids(base: &str) -> BTreeSet<String> {
    get_json(&format!("{base}/api/events?limit=1000")).await["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn two_daemons_in_one_shared_group_split_the_stream_and_store_each_event_once() {
    let broker = external_broker();
    let a = Site::new();
    let mut b = Site::new();
    b.topic_root = a.topic_root.clone();
    let group = unique("lp");
    let config = |site: &Site| {
        let mut config = site.config(Some(&broker.daemon), "http://127.0.0.1:9/", "");
        config.mqtt.shared_group = Some(group.clone());
        config
    };
    let (config_a, config_b) = (config(&a), config(&b));
    let (daemon_a, _) = start_daemon(config_a).await;
    let (daemon_b, _) = start_daemon(config_b).await;
    let mut bridge = Bridge::connect(&broker.registers).await;
    let sent: BTreeSet<String> = (0..200).map(|i| format!("shared-{i:03}")).collect();
    for id in &sent {
        // A register no camera watches: this is about who stores what, not bookmarks.
        bridge
            .publish(&a.topic("shibuya-01", "r9"), &event(id, "void", "r9", AT))
            .await;
    }
    let (base_a, base_b) = (web_base(&daemon_a), web_base(&daemon_b));
    let (got_a, got_b) = eventually(Duration::from_secs(30), "all 200 events stored", || {
        let (base_a, base_b) = (base_a.clone(), base_b.clone());
        async move {
            let (got_a, got_b) = (ids(&base_a).await, ids(&base_b).await);
            (got_a.len() + got_b.len() >= 200).then_some((got_a, got_b))
        }
    })
    .await;
    assert!(
        got_a.is_disjoint(&got_b),
        "an event went to both daemons: {:?}",
        got_a.intersection(&got_b).collect::<Vec<_>>()
    );
    let union: BTreeSet<String> = got_a.union(&got_b).cloned().collect();
    assert_eq!(union, sent, "every event stored once between them");
    assert!(
        !got_a.is_empty() && !got_b.is_empty(),
        "the broker handed every message to one daemon: {} and {}",
        got_a.len(),
        got_b.len()
    );
    daemon_a.shutdown().await;
    daemon_b.shutdown().await;
}
