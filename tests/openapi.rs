//! The JSON API answers in the shapes `docs/openapi.json` (served at `/api/openapi.json`) describes: the fields
//! of each answer against its schema's properties, both ways, on the real router over a real SQLite file. The
//! routes and query parameters are held to the document by the unit tests beside `src/web/openapi.rs`.

#[allow(dead_code)]
mod web_support;

use std::collections::BTreeSet;

use reqwest::StatusCode;
use serde_json::Value;
use tillmark::store::Intake;
use web_support::*;

fn keys(value: &Value) -> BTreeSet<String> {
    value
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {value}"))
        .keys()
        .cloned()
        .collect()
}

/// The properties a schema of the document lists.
fn properties(doc: &Value, schema: &str) -> BTreeSet<String> {
    keys(&doc["components"]["schemas"][schema]["properties"])
}

fn json(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

#[tokio::test]
async fn every_field_the_api_answers_is_in_its_openapi_schema_and_every_property_there_is_answered()
{
    let site = Site::start("").await;
    let now = tillmark::clock::now_ms();
    site.store
        .ingest(
            &[Intake::DeadLetter {
                topic: "pos/shibuya-01/r1/events".into(),
                received_ms: now,
                reason: "not JSON: expected value at line 1 column 1".into(),
                raw: "not json".into(),
                size: 8,
                sha256: tillmark::store::sha256_hex(b"not json"),
            }],
            now,
        )
        .await
        .unwrap();

    // Anyone may read the document: no token.
    let (status, headers, body) = site.send("GET", "/api/openapi.json", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "application/json");
    let doc = json(&body);

    let (status, body) = site.get_as("aiko", "/api/events").await;
    assert_eq!(status, StatusCode::OK);
    let list = json(&body);
    assert_eq!(
        keys(&list),
        BTreeSet::from(["events".into(), "next".into()])
    );
    let event = &list["events"][0];
    assert_eq!(keys(event), properties(&doc, "Event"));
    let bookmark = &event["bookmarks"][0];
    assert_eq!(keys(bookmark), properties(&doc, "Bookmark"));
    assert_eq!(keys(&bookmark["footage"][0]), properties(&doc, "Footage"));
    let arrival = keys(&event["arrival"]);
    assert!(
        doc["components"]["schemas"]["Arrival"]["oneOf"]
            .as_array()
            .unwrap()
            .iter()
            .any(|variant| keys(&variant["properties"]) == arrival),
        "{arrival:?}"
    );

    let (status, body) = site
        .get_as("aiko", &format!("/api/events/{}", event["seq"]))
        .await;
    assert_eq!(status, StatusCode::OK);
    let one = json(&body);
    assert_eq!(
        keys(&one),
        BTreeSet::from(["event".into(), "case_history".into()])
    );
    assert_eq!(keys(&one["event"]), properties(&doc, "Event"));

    let (status, body) = site.get_as("aiko", "/api/dead-letters").await;
    assert_eq!(status, StatusCode::OK);
    let letter = &json(&body)["dead_letters"][0];
    assert_eq!(keys(letter), properties(&doc, "DeadLetter"));

    let (_, _, body) = site.send("GET", "/healthz", None).await;
    assert_eq!(keys(&json(&body)), properties(&doc, "Health"));

    // A refusal is the documented error shape, naming the parameter.
    let (status, body) = site.get_as("aiko", "/api/events?limit=0").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let error = json(&body);
    assert_eq!(keys(&error), properties(&doc, "Error"));
    assert!(error["error"].as_str().unwrap().starts_with("limit: "));
}
