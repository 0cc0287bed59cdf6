//! The dead-letter list as an owner or an integrator works it in the index: excerpts rather than whole
//! payloads, each letter's size and SHA-256, dismissing one letter or every one shown (with the session's CSRF
//! token, recorded in the audit log), the header's badge counting only what is left, and the JSON API's cap.

// Shared with the access tests, which use the parts these do not.
#[allow(dead_code)]
mod web_support;

use reqwest::StatusCode;
use serde_json::Value;
use tillmark::store::{AuditEntry, AuditQuery, DeadLetterQuery, Intake, sha256_hex};
use web_support::*;

const TOPIC: &str = "pos/shibuya-01/r7/events";

/// A refused message as the writer keeps it: the whole payload when it is within the size limit.
fn refused(reason: &str, payload: &str) -> Intake {
    Intake::DeadLetter {
        topic: TOPIC.into(),
        received_ms: tillmark::clock::now_ms(),
        reason: reason.into(),
        raw: payload.into(),
        size: payload.len() as u64,
        sha256: sha256_hex(payload.as_bytes()),
    }
}

impl Site {
    async fn refuse(&self, letters: &[Intake]) {
        self.store
            .ingest(letters, tillmark::clock::now_ms())
            .await
            .unwrap();
    }

    /// The letters' ids, newest first, dismissed ones too.
    async fn letter_ids(&self) -> Vec<i64> {
        let query = DeadLetterQuery {
            include_dismissed: true,
            limit: 1000,
        };
        let list = self.store.dead_letters(&query).await.unwrap();
        list.iter().map(|d| d.id).collect()
    }

    async fn audited(&self, action: &str) -> Vec<AuditEntry> {
        let query = AuditQuery {
            action: Some(action.into()),
            limit: 100,
            ..Default::default()
        };
        self.store.audit(&query).await.unwrap()
    }
}

/// A person signed in through the form.
async fn signed_in(site: &Site, name: &str) -> Browser {
    let browser = Browser::new(site);
    let (status, _, _) = browser.sign_in(name, PASSWORD, "/dead-letters").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    browser
}

/// The number on the header's dead-letter link.
fn badge(html: &str) -> i64 {
    let link = html
        .split_once("href=\"/dead-letters\"")
        .unwrap_or_else(|| panic!("no dead-letter link in {html}"))
        .1;
    let count = link.split_once("<span class=\"count").unwrap().1;
    let number = count.split_once('>').unwrap().1.split_once('<').unwrap().0;
    number.parse().unwrap()
}

/// The article of one letter on the page.
fn article(html: &str, id: i64) -> Option<&str> {
    let start = html.find(&format!("id=\"letter-{id}\""))?;
    Some(&html[start..start + html[start..].find("</article>").unwrap()])
}

#[tokio::test]
async fn an_owner_dismisses_a_letter_on_the_page_the_badge_drops_and_the_audit_log_says_who() {
    let site = Site::start("").await;
    site.refuse(&[
        refused("payload is not valid JSON: EOF", "{\"id\":"),
        refused("type: unknown type \"voided\"", "{\"type\":\"voided\"}"),
    ])
    .await;
    let ids = site.letter_ids().await;
    let (newest, oldest) = (ids[0], ids[1]);
    let aiko = signed_in(&site, "aiko").await;
    let (status, _, page) = aiko.get("/dead-letters").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(badge(&page), 2, "{page}");
    let letter = article(&page, oldest).expect("the letter is listed");
    assert!(
        letter.contains("payload is not valid JSON: EOF"),
        "{letter}"
    );
    assert!(letter.contains(">Dismiss</button>"), "{letter}");
    assert!(letter.contains(&format!("name=\"first\" value=\"{oldest}\"")));
    assert!(letter.contains(&format!("name=\"last\" value=\"{oldest}\"")));

    let form = [
        ("csrf", hidden(letter, "csrf")),
        ("first", hidden(letter, "first")),
        ("last", hidden(letter, "last")),
    ];
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, headers, _) = aiko.post("/dead-letters/dismiss", &form).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(location(&headers), "/dead-letters");

    let (_, _, page) = aiko.get("/dead-letters").await;
    assert_eq!(badge(&page), 1, "the header counts only what is left");
    assert!(
        article(&page, oldest).is_none(),
        "hidden by default: {page}"
    );
    assert!(article(&page, newest).is_some());
    assert!(page.contains("Show 1 dismissed letter"), "{page}");
    let (_, _, all) = aiko.get("/dead-letters?dismissed=1").await;
    let letter = article(&all, oldest).expect("shown when asked for");
    assert!(letter.contains("Dismissed by aiko at "), "{letter}");
    assert!(
        !letter.contains("<button"),
        "nothing left to dismiss: {letter}"
    );
    assert!(all.contains("Hide dismissed letters"));
    assert_eq!(badge(&all), 1);

    let audit = site.audited("dead_letter_dismissed").await;
    assert_eq!(audit.len(), 1, "{audit:?}");
    assert_eq!(audit[0].actor.as_deref(), Some("aiko"));
    assert_eq!(audit[0].target, Some(format!("dead letter {oldest}")));
    assert_eq!(audit[0].detail.as_deref(), Some("1 dismissed"));
    let (_, _, log) = aiko.get("/audit").await;
    assert!(log.contains("dead_letter_dismissed"), "{log}");

    // The same form again (a second click) changes nothing and records nothing.
    let (status, _, _) = aiko.post("/dead-letters/dismiss", &form).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(site.audited("dead_letter_dismissed").await.len(), 1);
}

#[tokio::test]
async fn a_dismissal_without_the_sessions_csrf_token_changes_nothing() {
    let site = Site::start("").await;
    site.refuse(&[refused("payload is not valid JSON", "{")])
        .await;
    let id = site.letter_ids().await[0].to_string();
    let aiko = signed_in(&site, "aiko").await;
    for csrf in ["", "forged"] {
        let (status, _, page) = aiko
            .post(
                "/dead-letters/dismiss",
                &[("csrf", csrf), ("first", &id), ("last", &id)],
            )
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert!(
            page.contains("did not come from your current session"),
            "{page}"
        );
    }
    let (_, _, page) = aiko.get("/dead-letters").await;
    assert_eq!(badge(&page), 1);
    assert!(site.audited("dead_letter_dismissed").await.is_empty());
}

#[tokio::test]
async fn an_integrator_dismisses_every_letter_shown_and_a_manager_may_do_neither() {
    let site = Site::start("").await;
    let letters: Vec<Intake> = (0..3)
        .map(|i| refused(&format!("store: \"shop {i}\" is not an id"), "{}"))
        .collect();
    site.refuse(&letters).await;
    let ito = signed_in(&site, "ito").await;
    let (status, _, page) = ito.get("/dead-letters").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(badge(&page), 3);
    assert!(page.contains("Dismiss all 3 shown"), "{page}");
    // The first form on the page is "dismiss all shown".
    let (csrf, first, last) = (
        hidden(&page, "csrf"),
        hidden(&page, "first"),
        hidden(&page, "last"),
    );
    let ids = site.letter_ids().await;
    assert_eq!(
        (first.clone(), last.clone()),
        (ids[2].to_string(), ids[0].to_string())
    );

    // Meanwhile a manager tries the same: the role does not allow it.
    let mika = signed_in(&site, "mika").await;
    let (status, _, _) = mika.get("/dead-letters").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (_, _, mika_page) = mika.get("/").await;
    let mika_csrf = hidden(&mika_page, "csrf");
    let (status, _, _) = mika
        .post(
            "/dead-letters/dismiss",
            &[("csrf", &mika_csrf), ("first", &first), ("last", &last)],
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // A letter arriving after the page was loaded is not dismissed unseen.
    site.refuse(&[refused("payload is not valid JSON", "[")])
        .await;
    let (status, _, _) = ito
        .post(
            "/dead-letters/dismiss",
            &[("csrf", &csrf), ("first", &first), ("last", &last)],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (_, _, page) = ito.get("/dead-letters").await;
    assert_eq!(badge(&page), 1, "{page}");
    assert!(page.contains("payload is not valid JSON"));
    assert!(page.contains("Show 3 dismissed letters"), "{page}");
    let audit = site.audited("dead_letter_dismissed").await;
    assert_eq!(audit[0].actor.as_deref(), Some("ito"));
    assert_eq!(
        audit[0].target,
        Some(format!("dead letters {first}–{last}"))
    );
    assert_eq!(audit[0].detail.as_deref(), Some("3 dismissed"));
}

#[tokio::test]
async fn a_huge_payload_is_shown_as_an_excerpt_with_its_full_size_and_hash_and_the_page_stays_small()
 {
    let site = Site::start("").await;
    // Under the 64 KiB limit, so kept whole: forty of them once made a page of megabytes.
    let body = format!("{{\"lines\":[\"{}\"]}}", "ab".repeat(30_000));
    let letters: Vec<Intake> = (0..40)
        .map(|_| refused("lines: must be a list of strings", &body))
        .collect();
    site.refuse(&letters).await;
    // Over the limit: 4 MiB arrived, only its first 1 KiB was kept.
    let huge = format!("{{\"id\":\"e-1\",\"note\":\"{}\"}}", "z".repeat(4 << 20));
    site.refuse(&[Intake::DeadLetter {
        topic: TOPIC.into(),
        received_ms: tillmark::clock::now_ms(),
        reason: format!("payload is {} bytes; the limit is 65536", huge.len()),
        raw: huge[..1024].into(),
        size: huge.len() as u64,
        sha256: sha256_hex(huge.as_bytes()),
    }])
    .await;
    let aiko = signed_in(&site, "aiko").await;
    let (status, _, page) = aiko.get("/dead-letters").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        page.len() < 100 * 1024,
        "41 letters of up to 4 MiB make a page of {} bytes",
        page.len()
    );
    let newest = site.letter_ids().await[0];
    let letter = article(&page, newest).unwrap();
    let excerpt = &huge[..300];
    assert!(
        letter.contains(&format!("{}…</pre>", excerpt.replace('"', "&quot;"))),
        "the first 300 characters and an ellipsis: {letter}"
    );
    assert!(!letter.contains(&"z".repeat(300)), "not one character more");
    assert_eq!(huge.len(), 4_194_326);
    assert!(
        letter.contains("4.0 MiB received (4,194,326 bytes)"),
        "{letter}"
    );
    assert!(letter.contains(&sha256_hex(huge.as_bytes())), "{letter}");
    assert!(letter.contains("An excerpt: the whole payload is not shown."));
}

#[tokio::test]
async fn the_api_caps_its_limit_like_the_events_api_and_gives_each_letters_size_and_hash() {
    let site = Site::start("").await;
    let payloads = ["{", "[", "{\"id\":1"];
    let letters: Vec<Intake> = payloads
        .iter()
        .map(|p| refused("payload is not valid JSON", p))
        .collect();
    site.refuse(&letters).await;
    for limit in ["5000", "0", "ten"] {
        let (status, body) = site
            .get_as("aiko", &format!("/api/dead-letters?limit={limit}"))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{limit}: {body}");
        let error = serde_json::from_str::<Value>(&body).unwrap()["error"].clone();
        assert_eq!(
            error,
            format!("limit: \"{limit}\" must be a number from 1 to 1000")
        );
        let (_, events) = site
            .get_as("aiko", &format!("/api/events?limit={limit}"))
            .await;
        assert_eq!(
            serde_json::from_str::<Value>(&events).unwrap()["error"],
            error,
            "the same cap and words as /api/events"
        );
    }
    let (status, body) = site.get_as("ito", "/api/dead-letters?limit=2").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let list = serde_json::from_str::<Value>(&body).unwrap()["dead_letters"].clone();
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 2, "{body}");
    let newest = &list[0];
    assert_eq!(newest["raw"], "{\"id\":1");
    assert_eq!(newest["size"], 7);
    assert_eq!(newest["sha256"], sha256_hex(b"{\"id\":1"));
    assert_eq!(newest["raw_complete"], true);
    assert_eq!(newest["dismissed"], Value::Null);

    let id = newest["id"].as_i64().unwrap();
    site.store
        .dismiss_dead_letters(id..=id, "aiko", 0)
        .await
        .unwrap();
    let (_, body) = site.get_as("aiko", "/api/dead-letters").await;
    let list = serde_json::from_str::<Value>(&body).unwrap()["dead_letters"].clone();
    assert_eq!(
        list.as_array().unwrap().len(),
        2,
        "dismissed ones left out: {body}"
    );
    let (_, body) = site
        .get_as("aiko", "/api/dead-letters?dismissed=true")
        .await;
    let list = serde_json::from_str::<Value>(&body).unwrap()["dead_letters"].clone();
    assert_eq!(list.as_array().unwrap().len(), 3);
    assert_eq!(list[0]["dismissed"]["by"], "aiko");
    let (_, _, health) = site.send("GET", "/healthz", None).await;
    let health = serde_json::from_str::<Value>(&health).unwrap();
    assert_eq!(
        health["dead_letters"], 2,
        "health counts what is not dismissed"
    );
}
