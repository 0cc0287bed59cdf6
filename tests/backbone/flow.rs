//! Events in, exact bookmark requests out, rows in the index: through the daemon's embedded broker, and
//! through an external broker (Mosquitto when TILLMARK_TEST_MQTT_URL is set).

use std::time::Duration;

use serde_json::Value;
use tillmark::Daemon;
use tillmark::config::BrokerUrl;
use tillmark::event::event_key;

use crate::fake_nx::FakeNx;
use crate::support::*;

/// 2026-11-21T18:42:07.310+09:00 in epoch milliseconds.
const VOID_AT_MS: i64 = 1_795_254_127_310;

async fn wait_receiving(daemon: &Daemon) {
    eventually(
        Duration::from_secs(10),
        "the daemon to subscribe",
        || async { daemon.receiving().then_some(()) },
    )
    .await;
}

async fn events_through(daemon: &Daemon, broker: &BrokerUrl, site: &Site, nx: &FakeNx) {
    wait_receiving(daemon).await;
    let mut bridge = Bridge::connect(broker).await;
    let void = event("void-1", "void", "r2", "2026-11-21T18:42:07.310+09:00");
    bridge.publish(&site.topic("shibuya-01", "r2"), &void).await;
    bridge
        .publish(
            &site.topic("shibuya-01", "r2"),
            &event("sale-1", "sale", "r2", "2026-11-21T18:41:00+09:00"),
        )
        .await;
    let mut no_sale = event("nosale-1", "no_sale", "r1", "2026-11-21T09:50:00.001Z");
    no_sale["amount"] = Value::Null;
    no_sale["cashier"] = "c200".into();
    bridge
        .publish(&site.topic("shibuya-01", "r1"), &no_sale)
        .await;
    bridge
        .publish(
            &site.topic("shibuya-01", "r9"),
            &event("void-r9", "void", "r9", "2026-11-21T18:43:00+09:00"),
        )
        .await;
    // At-least-once delivery: the same event again must not make a second bookmark.
    bridge.publish(&site.topic("shibuya-01", "r2"), &void).await;

    let bookmarks = eventually(
        Duration::from_secs(15),
        "three bookmarks on the Nx server",
        || async {
            let b = nx.bookmarks();
            (b.len() >= 3).then_some(b)
        },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        nx.bookmarks().len(),
        3,
        "no extra bookmarks: {:?}",
        nx.bookmarks()
    );

    let void_key = event_key("shibuya-01", "void-1");
    let mut void_marks: Vec<_> = bookmarks
        .iter()
        .filter(|b| b.tags.contains(&void_key))
        .collect();
    void_marks.sort_by(|a, b| a.device.cmp(&b.device));
    assert_eq!(
        void_marks.len(),
        2,
        "the void is bookmarked on both cameras watching r2"
    );
    assert_eq!(void_marks[0].device, CAM1);
    assert_eq!(void_marks[1].device, CAM2);
    for b in &void_marks {
        assert_eq!(
            b.start_ms,
            VOID_AT_MS - 10_000,
            "start = register time minus the 10 s pre-roll"
        );
        assert_eq!(b.duration_ms, 30_000, "duration = pre-roll + post-roll");
        assert_eq!(b.name, "VOID ¥1,280 · r2 · c117");
        assert!(b.tags.contains(&"tillmark".to_string()));
        assert!(
            b.description.contains("Transaction: T-000981"),
            "{}",
            b.description
        );
        assert!(b.description.contains("Reason: customer changed mind"));
        assert!(b.description.contains("ONIGIRI SALMON      180"));
        let body: Value = serde_json::from_str(&b.body).unwrap();
        assert_eq!(body["startTimeMs"], VOID_AT_MS - 10_000);
        assert_eq!(body["durationMs"], 30_000);
    }
    let no_sale_mark = bookmarks
        .iter()
        .find(|b| b.tags.contains(&event_key("shibuya-01", "nosale-1")))
        .unwrap();
    assert_eq!(no_sale_mark.device, CAM1, "only Counter 1 watches r1");
    assert_eq!(no_sale_mark.start_ms, 1_795_254_600_001 - 10_000);
    assert_eq!(no_sale_mark.name, "NO SALE · r1 · c200");

    // The index shows every event, with its bookmarks' state and vendor ids.
    let base = format!("http://{}", daemon.web_addr());
    let api = eventually(
        Duration::from_secs(10),
        "both void bookmarks made in the index",
        || {
            let url = format!("{base}/api/events?store=shibuya-01&register=r2&type=void");
            async move {
                let v = get_json(&url).await;
                let made = v["events"][0]["bookmarks"]
                    .as_array()?
                    .iter()
                    .filter(|b| b["state"] == "made")
                    .count();
                (made == 2).then_some(v)
            }
        },
    )
    .await;
    let events = api["events"].as_array().unwrap();
    assert_eq!(events.len(), 1);
    let row = &events[0];
    assert_eq!(row["id"], "void-1");
    assert_eq!(row["at"], "2026-11-21T18:42:07.310+09:00");
    assert_eq!(row["amount"], 1280);
    assert_eq!(row["key"], void_key);
    for b in row["bookmarks"].as_array().unwrap() {
        assert_eq!(b["start_ms"], VOID_AT_MS - 10_000);
        let vendor_id = b["vendor_id"].as_str().unwrap();
        assert!(
            void_marks.iter().any(|m| m.id == vendor_id),
            "vendor id {vendor_id} is the Nx bookmark id"
        );
        let link = b["footage"][0]["url"].as_str().unwrap();
        assert!(
            link.starts_with("nx-vms://nxvms.com/client/127.0.0.1:"),
            "{link}"
        );
        assert!(
            link.ends_with(&format!(
                "/view?resources={}&timestamp={}",
                b["device"].as_str().unwrap(),
                VOID_AT_MS - 10_000
            )),
            "{link}"
        );
    }

    let all = get_json(&format!("{base}/api/events")).await;
    let all = all["events"].as_array().unwrap();
    assert_eq!(
        all.len(),
        4,
        "duplicate absorbed; sale, no-sale and the unmapped void kept"
    );
    let sale = all.iter().find(|e| e["id"] == "sale-1").unwrap();
    assert_eq!(sale["flagged"], false);
    assert_eq!(sale["bookmarks"].as_array().unwrap().len(), 0);
    let unmapped = all.iter().find(|e| e["id"] == "void-r9").unwrap();
    assert_eq!(
        unmapped["unmapped"], true,
        "a register no camera watches is shown as unmapped"
    );
    assert_eq!(unmapped["flagged"], true);

    let health = get(format!("{base}/healthz")).await.unwrap();
    assert_eq!(health.status(), 200);
    let health: Value = health.json().await.unwrap();
    assert_eq!(health["mqtt"]["receiving"], true);
    assert_eq!(health["events"], 4);
    assert_eq!(health["bookmarks_pending"], 0);

    let by_cashier = get_json(&format!("{base}/api/events?cashier=c200")).await;
    assert_eq!(by_cashier["events"].as_array().unwrap().len(), 1);
    let window = get_json(&format!(
        "{base}/api/events?from=2026-11-21T18:42:00%2B09:00&to=2026-11-21T18:42:30%2B09:00"
    ))
    .await;
    let ids: Vec<&str> = window["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["void-1"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flagged_events_through_the_embedded_broker_become_nx_bookmarks_at_the_register_moment() {
    let nx = FakeNx::start(&[CAM1, CAM2]).await;
    let site = Site::new();
    let daemon = start(site.config(None, &nx.url, ""))
        .await
        .expect("daemon starts");
    let broker = daemon.broker().clone();
    events_through(&daemon, &broker, &site, &nx).await;
    daemon.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flagged_events_through_an_external_broker_become_nx_bookmarks_at_the_register_moment() {
    let broker = external_broker();
    let nx = FakeNx::start(&[CAM1, CAM2]).await;
    let site = Site::new();
    let daemon = start(site.config(Some(&broker.daemon), &nx.url, ""))
        .await
        .expect("daemon starts");
    events_through(&daemon, &broker.registers, &site, &nx).await;
    daemon.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_embedded_broker_port_already_taken_fails_start_up_and_says_how_to_use_the_existing_broker()
 {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let site = Site::new();
    let extra = "";
    let text = site.config_text(None, "http://127.0.0.1:9", extra).replace(
        "127.0.0.1:0\"\nclient_id",
        &format!("127.0.0.1:{port}\"\nclient_id"),
    );
    let config = tillmark::config::Config::parse(&text, &|_| Some(NX_PASSWORD.into())).unwrap();
    let err = match start(config).await {
        Ok(_) => panic!("start-up must fail on a taken port"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
    assert!(
        err.contains(&format!("url = \"mqtt://127.0.0.1:{port}\"")),
        "{err}"
    );
}

#[test]
fn the_sample_config_in_examples_is_valid() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/tillmark.toml"
    ))
    .unwrap();
    let config =
        tillmark::config::Config::parse(&text, &|_| Some("secret".into())).expect("valid sample");
    assert_eq!(config.cameras[0].registers.len(), 2);
    assert_eq!(
        config.cameras[0].offset.0, 0,
        "the sample shows the default offset"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_turns_503_while_the_broker_is_unreachable() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let broker = BrokerUrl::plain(closed);
    let site = Site::new();
    let daemon = start(site.config(Some(&broker), "http://127.0.0.1:9", ""))
        .await
        .expect("daemon starts");
    let resp = get(format!("http://{}/healthz", daemon.web_addr()))
        .await
        .unwrap();
    assert_eq!(resp.status(), 503);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["mqtt"]["connected"], false);
    assert!(
        body["status"]
            .as_str()
            .unwrap()
            .contains("not receiving events"),
        "{body}"
    );
    daemon.shutdown().await;
}

#[test]
fn the_readme_shows_the_broker_settings_the_tests_run_mosquitto_with() {
    let root = env!("CARGO_MANIFEST_DIR");
    let readme = std::fs::read_to_string(format!("{root}/README.md")).unwrap();
    let sample = std::fs::read_to_string(format!("{root}/examples/mosquitto/store.conf")).unwrap();
    assert!(
        readme.contains(&format!("```conf\n{sample}```")),
        "README.md must show examples/mosquitto/store.conf as it is"
    );
    for setting in [
        "max_queued_messages 200000",
        "persistence true",
        "persistent_client_expiration",
    ] {
        assert!(sample.contains(setting), "the store sample keeps {setting}");
    }
    // The tests' Mosquitto differs from the sample only in where it listens and keeps its data.
    let dir = std::path::Path::new("/tmp/example");
    let run = crate::sample_mosquitto::SampleMosquitto::config(dir, 18_830);
    let differing: Vec<(&str, &str)> = sample
        .lines()
        .zip(run.lines())
        .filter(|(a, b)| a != b)
        .collect();
    assert_eq!(
        differing,
        vec![
            ("listener 1883 127.0.0.1", "listener 18830 127.0.0.1"),
            (
                "persistence_location /var/lib/mosquitto/",
                "persistence_location /tmp/example/"
            )
        ]
    );
}
