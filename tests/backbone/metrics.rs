//! `/metrics` as Prometheus scrapes it after events went through the daemon: on a listener of its own, and on
//! the web port behind its bearer token; and the sample alert rules, held to the names the daemon exports.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::fake_nx::FakeNx;
use crate::support::*;

const METRICS_TOKEN: &str = "metrics-token-5d1c7a0e9b2f4c86";

/// A second camera system that never answers (nothing listens on its port), watching r1: its bookmarks stay
/// pending, retried.
fn unreachable_system() -> String {
    format!(
        r#"
[[camera_systems]]
id = "offsite"
integration = "webhook"
url = "http://127.0.0.1:{}/bookmarks"

[[cameras]]
system = "offsite"
device = "door"
name = "Door"
registers = ["shibuya-01/r1"]
"#,
        free_port()
    )
}

async fn scrape(url: &str, token: Option<&str>) -> reqwest::Response {
    let mut request = reqwest::Client::new().get(url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.expect("GET /metrics")
}

/// The value of the sample named exactly `series` (name and labels), as a scraper reads it.
fn value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {series} in:\n{text}"))
        .parse()
        .unwrap()
}

/// Every metric name a query may use: the families' names and, for histograms, their series'.
fn exported_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("# TYPE ") else {
            continue;
        };
        let (name, kind) = rest.split_once(' ').unwrap();
        names.insert(name.to_string());
        if kind == "histogram" {
            for suffix in ["_bucket", "_sum", "_count"] {
                names.insert(format!("{name}{suffix}"));
            }
        }
    }
    names
}

#[tokio::test]
async fn metrics_after_events_through_the_daemon_count_what_was_stored_pending_and_how_fast_it_went()
 {
    let site = Site::new();
    let nx = FakeNx::start(&[CAM1, CAM2]).await;
    let extra = format!(
        "[metrics]\nlisten = \"127.0.0.1:0\"\n{}",
        unreachable_system()
    );
    let (daemon, mut bridge) = start_daemon(site.config(None, &nx.url, &extra)).await;
    let void = event("void-1", "void", "r2", AT);
    bridge.publish_as_register(&site, &void).await;
    bridge.publish_as_register(&site, &void).await;
    bridge
        .publish_as_register(&site, &event("sale-1", "sale", "r2", AT))
        .await;
    bridge
        .publish_as_register(&site, &event("void-2", "void", "r1", AT))
        .await;
    bridge
        .publish_bytes(&site.topic("shibuya-01", "r1"), b"not json".to_vec())
        .await;
    // void-1 on both cameras watching r2, void-2 on Counter 1; void-2's door bookmark never goes.
    eventually(Duration::from_secs(15), "three bookmarks on Nx", || async {
        (nx.bookmarks().len() >= 3).then_some(())
    })
    .await;

    let addr = daemon.metrics_addr().expect("a metrics listener");
    let url = format!("http://{addr}/metrics");
    let text = eventually(
        Duration::from_secs(10),
        "Nx's bookmarks recorded as made",
        || async {
            let response = scrape(&url, None).await;
            assert_eq!(response.status(), 200, "a loopback listener asks no token");
            assert_eq!(
                response.headers()["content-type"],
                "text/plain; version=0.0.4; charset=utf-8"
            );
            let text = response.text().await.unwrap();
            (value(&text, "tillmark_bookmarks_pending{system=\"nvr\"}") == 0.0).then_some(text)
        },
    )
    .await;
    let series = |s: &str| value(&text, s);
    assert_eq!(
        series("tillmark_intake_messages_total{outcome=\"stored\"}"),
        3.0
    );
    assert_eq!(
        series("tillmark_intake_messages_total{outcome=\"duplicate\"}"),
        1.0
    );
    assert_eq!(
        series("tillmark_intake_messages_total{outcome=\"dead_letter\"}"),
        1.0
    );
    assert_eq!(series("tillmark_intake_waiting_messages"), 0.0);
    assert_eq!(series("tillmark_mqtt_receiving"), 1.0);
    assert_eq!(series("tillmark_dead_letters"), 1.0);
    assert_eq!(
        series("tillmark_bookmarks_pending{system=\"offsite\"}"),
        1.0
    );
    assert_eq!(series("tillmark_bookmarks_failed{system=\"nvr\"}"), 0.0);
    // One request each, all answered by the fake on loopback well within a second.
    assert_eq!(
        series("tillmark_delivery_latency_seconds_count{system=\"nvr\"}"),
        3.0
    );
    assert_eq!(
        series("tillmark_delivery_latency_seconds_bucket{system=\"nvr\",le=\"1\"}"),
        3.0
    );
    assert!(series("tillmark_delivery_latency_seconds_count{system=\"offsite\"}") >= 1.0);
    assert!(series("tillmark_delivery_concurrency_limit{system=\"nvr\"}") >= 1.0);
    let received = series("tillmark_last_event_received_timestamp_seconds");
    let now = tillmark::clock::now_ms() as f64 / 1000.0;
    assert!(now - received < 60.0, "{received} is a minute or more ago");

    // The listener is the only place: the index's port has no /metrics, signed in or not.
    let on_web = get(format!("{}/metrics", web_base(&daemon))).await.unwrap();
    assert_eq!(on_web.status(), 404);

    // Each metric the sample alert rules use is one the daemon exports.
    let exported = exported_names(&text);
    let used = alert_rule_metric_names();
    assert!(used.len() >= 4, "{used:?}");
    for name in &used {
        assert!(
            exported.contains(name),
            "contrib/prometheus/tillmark-alerts.yml uses {name}, which /metrics does not export: {exported:?}"
        );
    }
    daemon.shutdown().await;
}

#[tokio::test]
async fn metrics_on_the_web_port_answer_only_the_metrics_token() {
    let site = Site::new();
    let nx = FakeNx::start(&[CAM1, CAM2]).await;
    let text = site.config_text(
        None,
        &nx.url,
        "[metrics]\ntoken_env = \"TEST_METRICS_TOKEN\"\n",
    );
    let config = parse_config(
        &text,
        &[
            ("TEST_NX_PASSWORD", NX_PASSWORD),
            ("TEST_METRICS_TOKEN", METRICS_TOKEN),
        ],
    );
    let (daemon, mut bridge) = start_daemon(config).await;
    bridge
        .publish_as_register(&site, &event("void-1", "void", "r2", AT))
        .await;
    assert_eq!(daemon.metrics_addr(), None, "no listener of its own");
    let url = format!("{}/metrics", web_base(&daemon));

    for (token, why) in [
        (None, "no token"),
        (Some("metrics-token-5d1c7a0e9b2f4c87"), "a wrong token"),
        (Some(TOKEN), "a person's API token"),
    ] {
        let response = scrape(&url, token).await;
        assert_eq!(response.status(), 401, "{why}");
        assert_eq!(response.headers()["www-authenticate"], "Bearer", "{why}");
        let body = response.text().await.unwrap();
        assert!(!body.contains("tillmark_"), "{why}: {body}");
    }

    let stored = eventually(Duration::from_secs(10), "the void counted", || async {
        let text = scrape(&url, Some(METRICS_TOKEN))
            .await
            .text()
            .await
            .unwrap();
        (value(&text, "tillmark_intake_messages_total{outcome=\"stored\"}") == 1.0).then_some(text)
    })
    .await;
    assert!(
        stored.contains("# TYPE tillmark_bookmarks_pending gauge"),
        "{stored}"
    );
    daemon.shutdown().await;
}

/// The `tillmark_*` names in the sample rules' expressions; the file must be valid YAML with at least the
/// alerts the README promises.
fn alert_rule_metric_names() -> BTreeSet<String> {
    use yaml_rust2::YamlLoader;
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/contrib/prometheus/tillmark-alerts.yml"
    );
    let text = std::fs::read_to_string(path).unwrap();
    let docs = YamlLoader::load_from_str(&text).expect("the alert rules are valid YAML");
    let rules: Vec<&yaml_rust2::Yaml> = docs[0]["groups"]
        .as_vec()
        .expect("groups")
        .iter()
        .flat_map(|g| g["rules"].as_vec().expect("rules"))
        .collect();
    let alerts: BTreeSet<&str> = rules.iter().filter_map(|r| r["alert"].as_str()).collect();
    for alert in [
        "TillmarkBookmarksFailing",
        "TillmarkNothingReceived",
        "TillmarkDeadLettersRising",
        "TillmarkStoreErrors",
    ] {
        assert!(alerts.contains(alert), "{alert} missing: {alerts:?}");
    }
    let mut names = BTreeSet::new();
    for rule in rules {
        let expr = rule["expr"].as_str().expect("every rule has an expr");
        assert!(rule["labels"]["severity"].as_str().is_some(), "{expr}");
        assert!(rule["annotations"]["summary"].as_str().is_some(), "{expr}");
        let mut rest = expr;
        while let Some(at) = rest.find("tillmark_") {
            let name: String = rest[at..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            rest = &rest[at + name.len()..];
            names.insert(name);
        }
    }
    names
}
