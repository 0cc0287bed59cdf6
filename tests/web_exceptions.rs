//! Exceptions as the index shows them: the exceptions page with each rule's count, the event page's list, the
//! events list's and the API's `exception=` filter, all within the reader's stores.

#[allow(dead_code)]
mod web_support;

use reqwest::StatusCode;
use serde_json::Value;
use tillmark::config::{Config, Watchers};
use web_support::*;

const RULE: &str = r#"
[[rules]]
id = "big-refund"
kind = "amount_over"
types = ["refund"]
min_amount = 1000
currency = "JPY"
severity = "high"
"#;

/// The site with its two refunds (Shibuya's and Osaka's, ¥5,000 each) judged by the rule, as the daemon's
/// evaluator judges them.
async fn judged() -> Site {
    let site = Site::start(RULE).await;
    let config = Config::parse(&format!("{RULE}\n{CONFIG}"), &|name| {
        (name == "NX_PW").then(|| "secret".to_string())
    })
    .unwrap();
    let later = tillmark::clock::now_ms() + 60_000;
    let (judged, _) = tillmark::rules::step(
        &*site.store,
        &config,
        &Watchers::new(&config),
        &config.rules,
        later,
    )
    .await
    .unwrap();
    assert_eq!(judged, 2);
    site
}

#[tokio::test]
async fn the_exceptions_page_lists_what_the_rules_found_in_the_readers_stores_only() {
    let site = judged().await;
    let link = |seq: i64| format!("href=\"/events/{seq}\"");
    let (status, owner) = site.get_as("aiko", "/exceptions").await;
    assert_eq!(status, StatusCode::OK, "{owner}");
    assert!(owner.contains(&link(site.shibuya_seq)) && owner.contains(&link(site.osaka_seq)));
    assert!(
        owner.contains("refund of ¥5,000, at or above ¥1,000"),
        "{owner}"
    );
    assert!(owner.contains("href=\"/?exception=big-refund\""), "{owner}");

    let (status, ken) = site.get_as("ken", "/exceptions").await;
    assert_eq!(status, StatusCode::OK);
    assert!(ken.contains(&link(site.shibuya_seq)), "{ken}");
    assert!(!ken.contains(&link(site.osaka_seq)), "{ken}");
    for mark in OSAKA_MARKS {
        assert!(!ken.contains(mark), "the page shows {mark}: {ken}");
    }
    // Narrowed to a rule that found nothing: nothing.
    let (_, none) = site.get_as("aiko", "/exceptions?rule=other").await;
    assert!(!none.contains(&link(site.shibuya_seq)), "{none}");
    // An integrator sees no events, so no exceptions either.
    let (status, _) = site.get_as("ito", "/exceptions").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn an_event_page_shows_its_exceptions_and_the_list_and_api_filter_by_rule() {
    let site = judged().await;
    let (_, page) = site
        .get_as("ken", &format!("/events/{}", site.shibuya_seq))
        .await;
    assert!(page.contains("id=\"exceptions\""), "{page}");
    assert!(
        page.contains("refund of ¥5,000, at or above ¥1,000"),
        "{page}"
    );

    let listed = |html: &str, seq: i64| html.contains(&format!("href=\"/events/{seq}\""));
    let (status, list) = site.get_as("ken", "/?exception=big-refund").await;
    assert_eq!(status, StatusCode::OK);
    assert!(listed(&list, site.shibuya_seq) && !listed(&list, site.osaka_seq));
    let (_, other) = site.get_as("aiko", "/?exception=other").await;
    assert!(!listed(&other, site.shibuya_seq) && !listed(&other, site.osaka_seq));

    let count = |body: &str| {
        serde_json::from_str::<Value>(body).unwrap()["events"]
            .as_array()
            .map(Vec::len)
    };
    let (_, api) = site.get_as("aiko", "/api/events?exception=any").await;
    assert_eq!(count(&api), Some(2), "{api}");
    let (_, api) = site.get_as("ken", "/api/events?exception=big-refund").await;
    assert_eq!(count(&api), Some(1), "{api}");
    let (status, api) = site.get_as("ken", "/api/events?exception=no%20such").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        api.contains("exception: \\\"no such\\\" is neither any nor a rule id"),
        "{api}"
    );
}

#[tokio::test]
async fn the_exceptions_api_answers_in_its_documented_shape_within_the_readers_stores() {
    let site = judged().await;
    let (status, body) = site.get_as("ken", "/api/exceptions").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let answer: Value = serde_json::from_str(&body).unwrap();
    let list = answer["exceptions"].as_array().unwrap();
    assert_eq!(list.len(), 1, "only Shibuya's: {body}");
    assert_eq!(list[0]["event_seq"], site.shibuya_seq);
    assert_eq!(list[0]["severity"], "high");
    assert_eq!(
        answer["counts_30d"].as_object().map(|c| c.len() <= 1),
        Some(true)
    );
    for mark in OSAKA_MARKS {
        assert!(!body.contains(mark), "{mark}: {body}");
    }
    // Every field is in the document's schema, and every property there is answered.
    let (_, _, doc) = site.send("GET", "/api/openapi.json", None).await;
    let doc: Value = serde_json::from_str(&doc).unwrap();
    let keys = |v: &Value| {
        v.as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect::<std::collections::BTreeSet<_>>()
    };
    assert_eq!(
        keys(&list[0]),
        keys(&doc["components"]["schemas"]["Exception"]["properties"])
    );
    let (status, body) = site.get_as("aiko", "/api/exceptions?severity=urgent").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("severity: unknown severity"), "{body}");
    let (_, body) = site.get_as("aiko", "/api/exceptions?rule=other").await;
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["exceptions"],
        serde_json::json!([])
    );
    let (status, _) = site.get_as("ito", "/api/exceptions").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_reader_of_the_index_in_japanese_reads_why_in_japanese_and_the_api_keeps_english() {
    let site = judged().await;
    let get = |path: String| {
        Site::client()
            .get(format!("{}{path}", site.base))
            .bearer_auth(&site.tokens["aiko"])
            .header("cookie", "lang=ja")
            .send()
    };
    let page = get("/exceptions".into())
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("返品 ¥5,000（¥1,000 以上）"), "{page}");
    assert!(!page.contains("at or above"), "{page}");
    let page = get(format!("/events/{}", site.shibuya_seq))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("返品 ¥5,000（¥1,000 以上）"), "{page}");
    let api: Value = get("/api/exceptions".into())
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        api["exceptions"][0]["why"],
        "refund of ¥5,000, at or above ¥1,000"
    );
}

/// A script's read of exceptions is a read of events: the audit log says who asked what and got how many.
#[tokio::test]
async fn a_scripts_read_of_exceptions_is_in_the_audit_log() {
    let site = judged().await;
    site.get_as("ken", "/api/exceptions?rule=big-refund").await;
    let entries = site
        .store
        .audit(&tillmark::store::AuditQuery {
            action: Some("api_read".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    let read = entries
        .iter()
        .find(|e| e.actor.as_deref() == Some("ken"))
        .unwrap_or_else(|| panic!("{entries:?}"));
    assert_eq!(
        read.target.as_deref(),
        Some("/api/exceptions?rule=big-refund")
    );
    assert_eq!(read.detail.as_deref(), Some("1 event"));
}
