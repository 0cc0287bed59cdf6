//! Cases as an investigator works them in the index: flag an event, write notes, close it as explained or
//! escalated with a required reason, reopen it; the history kept in order, the list's badge and filter, the
//! JSON API, the audit log, and who may do what (managers read, other stores' events stay out of reach).

// Shared with the access tests, which use the parts these do not.
#[allow(dead_code)]
mod web_support;

use reqwest::StatusCode;
use serde_json::Value;
use tillmark::store::{AuditEntry, AuditQuery, CaseRecord, StoreScope};
use web_support::*;

const CASE_PATH: &str = "/case";

impl Site {
    fn event_path(&self, seq: i64) -> String {
        format!("/events/{seq}")
    }

    /// The case as the database holds it.
    async fn case_of(&self, seq: i64) -> Option<CaseRecord> {
        self.store.case(seq, &StoreScope::All).await.unwrap()
    }

    /// The audit log, newest first.
    async fn audited(&self, actor: Option<&str>, action: Option<&str>) -> Vec<AuditEntry> {
        let query = AuditQuery {
            actor: actor.map(str::to_string),
            action: action.map(str::to_string),
            limit: 100,
            ..Default::default()
        };
        self.store.audit(&query).await.unwrap()
    }
}

/// Ken, the investigator of Shibuya, signed in through the form, at the case form of Shibuya's event.
struct Ken {
    browser: Browser,
    csrf: String,
    path: String,
}

impl Ken {
    async fn sign_in(site: &Site) -> Ken {
        let browser = Browser::new(site);
        let (status, _, _) = browser.sign_in("ken", PASSWORD, "/").await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        let (_, _, page) = browser.get(&site.event_path(site.shibuya_seq)).await;
        Ken {
            csrf: hidden(&page, "csrf"),
            path: format!("{}{CASE_PATH}", site.event_path(site.shibuya_seq)),
            browser,
        }
    }

    /// Posts the case form: `outcome` empty when none is chosen. Answers status, redirect and page.
    async fn send(&self, action: &str, outcome: &str, text: &str) -> (StatusCode, String, String) {
        self.send_with(&self.csrf, action, outcome, text).await
    }

    async fn send_with(
        &self,
        csrf: &str,
        action: &str,
        outcome: &str,
        text: &str,
    ) -> (StatusCode, String, String) {
        let mut form = vec![("csrf", csrf), ("action", action), ("text", text)];
        if !outcome.is_empty() {
            form.push(("outcome", outcome));
        }
        let (status, headers, body) = self.browser.post(&self.path, &form).await;
        let to = headers
            .get(reqwest::header::LOCATION)
            .map(|l| l.to_str().unwrap().to_string())
            .unwrap_or_default();
        (status, to, body)
    }
}

fn api_events(body: &str) -> Vec<Value> {
    serde_json::from_str::<Value>(body).unwrap()["events"]
        .as_array()
        .unwrap()
        .clone()
}

#[tokio::test]
async fn an_investigator_flags_notes_closes_with_a_reason_and_reopens_and_the_history_is_kept_in_order()
 {
    let site = Site::start("").await;
    let ken = Ken::sign_in(&site).await;
    let event = site.event_path(site.shibuya_seq);
    let (_, _, page) = ken.browser.get(&event).await;
    assert!(page.contains("No case."), "{page}");
    assert!(page.contains("Flag this event"), "{page}");

    let (status, to, _) = ken.send("open", "", "Drawer ¥5,000 short at close").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(to, format!("{event}#case"));
    let (_, _, page) = ken.browser.get(&event).await;
    assert!(
        page.contains(r#"<span class="case-badge case-open">Open</span>"#),
        "{page}"
    );
    assert!(page.contains("opened by ken on 2026"), "{page}");
    assert!(page.contains("Drawer ¥5,000 short at close"), "{page}");

    // The list: a badge on the row, and the open-cases filter finds it and nothing else.
    let (_, _, list) = ken.browser.get("/?case=open").await;
    assert!(list.contains("T-SHIBUYA-1"), "{list}");
    assert!(list.contains("case open"), "{list}");
    let (_, _, api) = ken.browser.get("/api/events?case=open").await;
    let open = api_events(&api);
    assert_eq!(open.len(), 1, "{api}");
    assert_eq!(open[0]["case"]["state"], "open");
    assert_eq!(open[0]["case"]["opened_by"], "ken");

    // Closing needs a reason: refused, nothing changes, and what was typed is still in the form.
    let (status, _, page) = ken.send("close", "escalated", "  ").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        page.contains("Write why: a case is closed or reopened with a reason."),
        "{page}"
    );
    assert!(
        page.contains(r#"value="escalated" required checked"#),
        "{page}"
    );
    let (status, _, page) = ken.send("close", "", "counted twice").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(page.contains("Choose how it is closed"), "{page}");
    assert!(page.contains(">counted twice</textarea>"), "{page}");

    let (status, _, _) = ken
        .send("note", "", "Footage: cashier pockets a note at 18:41:55")
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (status, _, _) = ken
        .send(
            "close",
            "escalated",
            "Handed to head office with the footage",
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (_, _, page) = ken.browser.get(&event).await;
    assert!(page.contains("Closed: escalated"), "{page}");
    assert!(page.contains("Reopen case"), "{page}");
    assert!(!page.contains("Close case"), "{page}");

    // A second tab still showing the open case: closing again is refused, and the history does not grow.
    let (status, _, page) = ken.send("close", "explained", "again").await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(page.contains("This case was closed meanwhile"), "{page}");

    let (_, _, list) = ken.browser.get("/?case=open").await;
    assert!(!list.contains("T-SHIBUYA-1"), "{list}");
    let (_, _, list) = ken.browser.get("/?case=closed").await;
    assert!(list.contains("case escalated"), "{list}");

    let (status, _, _) = ken
        .send("reopen", "", "Head office asks for the 18:30 sale too")
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);

    let (_, _, detail) = ken
        .browser
        .get(&format!("/api/events/{}", site.shibuya_seq))
        .await;
    let detail: Value = serde_json::from_str(&detail).unwrap();
    assert_eq!(detail["event"]["case"]["state"], "open");
    let history: Vec<(String, String, Value, String)> = detail["case_history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["actor"].as_str().unwrap().to_string(),
                h["action"].as_str().unwrap().to_string(),
                h["outcome"].clone(),
                h["text"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    let entry = |action: &str, outcome: Value, text: &str| {
        (
            "ken".to_string(),
            action.to_string(),
            outcome,
            text.to_string(),
        )
    };
    assert_eq!(
        history,
        vec![
            entry("opened", Value::Null, "Drawer ¥5,000 short at close"),
            entry(
                "noted",
                Value::Null,
                "Footage: cashier pockets a note at 18:41:55"
            ),
            entry(
                "closed",
                "escalated".into(),
                "Handed to head office with the footage"
            ),
            entry(
                "reopened",
                Value::Null,
                "Head office asks for the 18:30 sale too"
            ),
        ]
    );

    let audit = site.audited(Some("ken"), None).await;
    let actions: Vec<(&str, Option<&str>)> = audit
        .iter()
        .rev()
        .filter(|a| a.action.starts_with("case_"))
        .map(|a| (a.action.as_str(), a.detail.as_deref()))
        .collect();
    assert_eq!(
        actions,
        vec![
            ("case_opened", Some("Drawer ¥5,000 short at close")),
            (
                "case_noted",
                Some("Footage: cashier pockets a note at 18:41:55")
            ),
            (
                "case_closed",
                Some("escalated: Handed to head office with the footage")
            ),
            (
                "case_reopened",
                Some("Head office asks for the 18:30 sale too")
            ),
        ]
    );
    assert!(
        audit
            .iter()
            .filter(|a| a.action.starts_with("case_"))
            .all(
                |a| a.target.as_deref().is_some_and(|t| t.starts_with(&format!(
                    "event {}: refund at shibuya-01/r1",
                    site.shibuya_seq
                )))
            ),
        "{audit:?}"
    );
}

#[tokio::test]
async fn a_note_is_shown_as_text_and_one_too_long_or_empty_is_refused_with_the_reason() {
    let site = Site::start("").await;
    let ken = Ken::sign_in(&site).await;
    ken.send("open", "", "<script>alert(1)</script>").await;
    let (_, _, page) = ken.browser.get(&site.event_path(site.shibuya_seq)).await;
    assert!(page.contains("&lt;script&gt;alert(1)&lt;"), "{page}");
    assert!(!page.contains("<script>alert(1)"), "{page}");

    // A card number typed into a note is masked before it is kept, in the history and in the audit log.
    ken.send("note", "", "Customer card 4111 1111 1111 1111 was declined")
        .await;
    let (_, _, page) = ken.browser.get(&site.event_path(site.shibuya_seq)).await;
    assert!(
        page.contains("Customer card 4111 11** **** 1111 was declined"),
        "{page}"
    );
    assert!(!page.contains("4111 1111 1111 1111"), "{page}");
    let audit = site.audited(None, Some("case_noted")).await;
    assert_eq!(
        audit[0].detail.as_deref(),
        Some("Customer card 4111 11** **** 1111 was declined")
    );

    let (status, _, page) = ken.send("note", "", "").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(page.contains("The note is empty."), "{page}");
    let long = "万".repeat(4001);
    let (status, _, page) = ken.send("note", "", &long).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(page.contains("At most 4000 characters."), "{page}");
    let case = site.case_of(site.shibuya_seq).await.unwrap();
    assert_eq!(case.history.len(), 2, "nothing refused was kept: {case:?}");
}

#[tokio::test]
async fn a_manager_reads_the_case_but_cannot_change_it() {
    let site = Site::start("").await;
    let ken = Ken::sign_in(&site).await;
    ken.send("open", "", "Refund without a receipt").await;
    let (status, page) = site
        .get_as("mika", &site.event_path(site.shibuya_seq))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("Refund without a receipt"), "{page}");
    assert!(
        !page.contains(CASE_PATH),
        "no case form for a manager: {page}"
    );

    let resp = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .post(format!(
            "{}{}{CASE_PATH}",
            site.base,
            site.event_path(site.shibuya_seq)
        ))
        .bearer_auth(&site.tokens["mika"])
        .form(&[
            ("action", "close"),
            ("outcome", "explained"),
            ("text", "fine"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let case = site.case_of(site.shibuya_seq).await.unwrap();
    assert_eq!(case.history.len(), 1);
}

#[tokio::test]
async fn another_stores_case_cannot_be_read_or_changed_and_a_form_without_its_token_changes_nothing()
 {
    let site = Site::start("").await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let post = |user: &'static str, seq: i64, action: &'static str| {
        client
            .post(format!("{}/events/{seq}{CASE_PATH}", site.base))
            .bearer_auth(&site.tokens[user])
            .form(&[("action", action), ("text", "Osaka till short")])
            .send()
    };
    // The owner opens a case in Osaka; Ken, of Shibuya, cannot see it, add to it, or open one there.
    assert_eq!(
        post("aiko", site.osaka_seq, "open").await.unwrap().status(),
        StatusCode::SEE_OTHER
    );
    let resp = post("ken", site.osaka_seq, "note").await.unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    let body = resp.text().await.unwrap();
    assert!(!body.contains("Osaka till short"), "{body}");
    let (_, list) = site.get_as("ken", "/?case=any").await;
    assert!(!list.contains("T-OSAKA-77"), "{list}");
    let (_, api) = site.get_as("ken", "/api/events?case=any").await;
    assert!(api_events(&api).is_empty(), "{api}");
    let (_, owner) = site.get_as("aiko", "/api/events?case=open").await;
    assert_eq!(api_events(&owner)[0]["transaction"], "T-OSAKA-77");
    let osaka = site.case_of(site.osaka_seq).await.unwrap();
    assert_eq!(osaka.history.len(), 1, "{osaka:?}");

    // Signed in through the browser, a form must carry the session's token.
    let ken = Ken::sign_in(&site).await;
    let (status, _, _) = ken.send_with("forged", "open", "", "").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(site.case_of(site.shibuya_seq).await.is_none());
    let (_, api) = site.get_as("ken", "/api/events?case=shut").await;
    assert!(
        api.contains("case: unknown case filter \\\"shut\\\"; expected open, closed or any"),
        "{api}"
    );
}

#[tokio::test]
async fn an_investigator_downloads_the_signed_evidence_package_of_a_case_and_the_audit_log_holds_its_manifest_hash()
 {
    let site = Site::start("").await;
    let ken = Ken::sign_in(&site).await;
    let event = site.event_path(site.shibuya_seq);
    let evidence = format!("{event}/evidence");
    // No case yet: no button, and a package is refused with the page's reason.
    let (_, _, page) = ken.browser.get(&event).await;
    assert!(!page.contains(&evidence), "{page}");
    let (status, _, page) = ken.browser.post(&evidence, &[("csrf", &ken.csrf)]).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(
        page.contains("This event has no case yet: flag it first."),
        "{page}"
    );

    ken.send("open", "", "Refund without a receipt").await;
    let (_, _, page) = ken.browser.get(&event).await;
    assert!(page.contains(&evidence), "{page}");
    assert!(page.contains("Evidence package"), "{page}");
    let resp = ken
        .browser
        .client
        .post(format!("{}{evidence}", site.base))
        .form(&[("csrf", ken.csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let headers = resp.headers().clone();
    assert_eq!(headers[reqwest::header::CONTENT_TYPE], "application/zip");
    assert_eq!(
        headers[reqwest::header::CONTENT_DISPOSITION],
        format!(
            "attachment; filename=\"evidence-event-{}.zip\"",
            site.shibuya_seq
        )
        .as_str()
    );
    let zip = resp.bytes().await.unwrap();
    let package = tillmark::evidence::verify(std::io::Cursor::new(&zip), None).unwrap();
    assert_eq!(package.manifest.event, site.shibuya_seq);
    assert_eq!(package.manifest.made_by, "ken");
    let paths: Vec<&str> = package
        .manifest
        .files
        .iter()
        .map(|f| f.path.as_str())
        .collect();
    assert!(
        paths.contains(&format!("events/{}.json", site.shibuya_seq).as_str()),
        "{paths:?}"
    );
    let audited = site.audited(Some("ken"), Some("evidence_exported")).await;
    assert_eq!(audited.len(), 1, "{audited:?}");
    assert!(
        audited[0]
            .detail
            .as_deref()
            .unwrap_or_default()
            .contains(&package.manifest_sha256),
        "{audited:?}"
    );

    // A manager reads the case but gets no package; nor does a form without the session's token, nor a
    // request for another store's event.
    let resp = Site::client()
        .post(format!("{}{evidence}", site.base))
        .bearer_auth(&site.tokens["mika"])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let (status, _, _) = ken.browser.post(&evidence, &[("csrf", "forged")]).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let osaka = format!("{}/evidence", site.event_path(site.osaka_seq));
    let (status, _, page) = ken.browser.post(&osaka, &[("csrf", &ken.csrf)]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(!page.contains("T-OSAKA-77"), "{page}");
    let audited = site.audited(None, Some("evidence_exported")).await;
    assert_eq!(audited.len(), 1, "only the one package: {audited:?}");
}
