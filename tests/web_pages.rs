//! The index pages as a user meets them: a real database (SQLite, or PostgreSQL with
//! `TILLMARK_TEST_BACKEND=postgres`) filled through `Store::ingest`, bookmarks moved to
//! made, failed and pending through `claim_due` + `finish`, the real router on a real port, fetched over HTTP.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{Value, json};
use tillmark::accounts::{NewUser, Role, token_digest};
use tillmark::config::Config;
use tillmark::event::event_key;
use tillmark::store::{Finished, Intake, IntakeOutcome, NewBookmark, Outcome, Store};

#[path = "test_database/mod.rs"]
mod test_database;
use test_database::TestDatabase;
use tillmark::web::{AppState, router};

const CONFIG: &str = r#"
[[stores]]
id = "shibuya-01"
name = "Shibuya"
timezone = "Asia/Tokyo"

[[camera_systems]]
id = "nvr"
integration = "nx-witness"
url = "https://nvr.example:7001"
username = "tillmark"
password_env = "NX_PW"

[[cameras]]
system = "nvr"
device = "cam-1"
name = "Counter 1"
registers = ["shibuya-01/r1", "shibuya-01/r2"]

[[cameras]]
system = "nvr"
device = "cam-2"
name = "Counter 2"
registers = ["shibuya-01/r2"]
"#;

const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; \
                   frame-ancestors 'none'; base-uri 'none'";

const TOKEN: &str = "tm_page-tests-owner";

const VOID_AT: &str = "2026-11-21T09:42:07.310Z";
const PRE_ROLL_MS: i64 = 10_000;
const WINDOW_MS: i64 = 30_000;
const CAMERA_NOT_FOUND: &str = "Nx answered 404: camera cam-2 is not on this server";

fn ms(rfc3339: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(rfc3339)
        .unwrap()
        .timestamp_millis()
}

/// One register event as a bridge would publish it.
fn payload(id: &str, kind: &str, store: &str, register: &str, at: &str) -> Value {
    json!({ "id": id, "type": kind, "at": at, "store": store, "register": register })
}

/// An event the daemon would have stored: bookmarked on `cameras` when flagged.
fn intake(payload: &Value, flagged: bool, mapped: bool, cameras: &[(&str, &str)]) -> Intake {
    let bytes = payload.to_string().into_bytes();
    let parsed = tillmark::event::parse(&bytes);
    let event = parsed.result.expect("a valid test event");
    let at_ms = event.at_ms();
    let bookmarks = cameras
        .iter()
        .map(|(device, name)| NewBookmark {
            system: "nvr".into(),
            device: (*device).into(),
            camera: (*name).into(),
            moment_ms: at_ms,
            start_ms: at_ms - PRE_ROLL_MS,
            duration_ms: WINDOW_MS,
        })
        .collect();
    Intake::Event {
        topic: format!("pos/{}/{}/events", event.store, event.register),
        // The register's clock is 1.2 s behind the daemon's.
        received_ms: at_ms + 1_200,
        digest: tillmark::event::content_digest(&event),
        signed: None,
        event: Box::new(event),
        raw: parsed.raw,
        flagged,
        mapped,
        bookmarks,
        drawer: Default::default(),
    }
}

struct Site {
    base: String,
    store: Arc<dyn Store>,
    /// Sequence numbers by event id.
    seqs: HashMap<String, i64>,
    /// Dropped before `_dir`: on PostgreSQL, the test's schema.
    _db: TestDatabase,
    _dir: tempfile::TempDir,
}

impl Site {
    async fn empty() -> Site {
        Site::with_config(CONFIG).await
    }

    async fn with_config(config: &str) -> Site {
        let dir = tempfile::tempdir().unwrap();
        let db = TestDatabase::new(dir.path());
        let store = tillmark::store::open(&db.url).await.unwrap();
        // The pages are read as an owner would, with an API token.
        let owner = NewUser {
            name: "owner".into(),
            role: Role::Owner,
            stores: Vec::new(),
            password_hash: "!".into(),
        };
        store.add_user(&owner, 0).await.unwrap();
        store
            .add_token("owner", "tests", &token_digest(TOKEN), 0, None)
            .await
            .unwrap();
        let config = Config::parse(config, &|name| {
            (name == "NX_PW").then(|| "secret".to_string())
        })
        .unwrap_or_else(|e| panic!("test config is invalid: {e:?}"));
        let state = AppState {
            store: store.clone(),
            config: Arc::new(config),
            intake: Default::default(),
            integrations: tillmark::camera::Integrations::load(std::path::Path::new(
                "integrations",
            )),
            cameras: Default::default(),
            lanes: Default::default(),
            health: Default::default(),
            metrics: Default::default(),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router(state)).await });
        Site {
            base: format!("http://{addr}"),
            store,
            seqs: HashMap::new(),
            _db: db,
            _dir: dir,
        }
    }

    /// A void with a made and a failed bookmark, a refund still pending, a sale, a drawer opened at a register
    /// no camera watches, a void from a store the config does not know, and one dead letter.
    async fn filled() -> Site {
        let mut site = Site::empty().await;
        let mut void = payload("void-1", "void", "shibuya-01", "r2", VOID_AT);
        void["cashier"] = json!("c117");
        void["transaction"] = json!("T-000981");
        void["amount"] = json!(1280);
        void["currency"] = json!("JPY");
        void["reason"] = json!("customer changed mind");
        void["lines"] = json!([
            "ONIGIRI SALMON      180",
            "<script>alert(1)</script>",
            "*** VOID ***"
        ]);
        void["attributes"] = json!({ "manager": "m-07", "note": "<img src=x onerror=alert(2)>" });
        let mut refund = payload(
            "refund-1",
            "refund",
            "shibuya-01",
            "r1",
            "2026-11-21T18:50:00+09:00",
        );
        refund["amount"] = json!(500);
        refund["currency"] = json!("JPY");
        let mut sale = payload(
            "sale-1",
            "sale",
            "shibuya-01",
            "r1",
            "2026-11-21T18:30:00+09:00",
        );
        sale["amount"] = json!(330);
        sale["currency"] = json!("JPY");
        let drawer = payload(
            "drawer-1",
            "no_sale",
            "shibuya-01",
            "r9",
            "2026-11-21T18:20:00+09:00",
        );
        let elsewhere = payload(
            "osaka-1",
            "void",
            "osaka-02",
            "r1",
            "2026-11-21T20:00:00+09:00",
        );
        let batch = vec![
            intake(
                &void,
                true,
                true,
                &[("cam-1", "Counter 1"), ("cam-2", "Counter 2")],
            ),
            intake(&refund, true, true, &[("cam-1", "Counter 1")]),
            intake(&sale, false, true, &[]),
            intake(&drawer, true, false, &[]),
            intake(&elsewhere, true, false, &[]),
            Intake::DeadLetter {
                topic: "pos/shibuya-01/r3/events".into(),
                received_ms: ms("2026-11-21T09:00:00Z"),
                reason: "amount: must be an integer, found a string".into(),
                raw: r#"{"id":"x","amount":"1280","note":"<b>bold</b>"}"#.into(),
                size: 47,
                sha256: tillmark::store::sha256_hex(
                    br#"{"id":"x","amount":"1280","note":"<b>bold</b>"}"#,
                ),
            },
        ];
        let now = ms("2026-11-21T10:00:00Z");
        site.ingest(&batch, now).await;
        site.deliver(now, |id, device| match (id, device) {
            ("void-1", "cam-1") => Outcome::Made {
                vendor_id: Some("{bm-0001}".into()),
                detail: "created".into(),
                made_as: None,
            },
            ("void-1", _) => Outcome::Failed {
                error: CAMERA_NOT_FOUND.into(),
            },
            _ => Outcome::Retry {
                at_ms: now + 5_000,
                error: "connection refused".into(),
                maybe_created: false,
            },
        })
        .await;
        site
    }

    /// A separate site for search: Japanese refunds (one made, one pending, twelve more without bookmarks), a
    /// void whose bookmark failed, and a sale whose receipt holds 返 and 品 but not 返品.
    async fn searchable() -> Site {
        let mut site = Site::empty().await;
        let event = |id: &str, kind: &str, at: &str, fields: Value| {
            let mut e = payload(id, kind, "shibuya-01", "r1", at);
            e.as_object_mut()
                .unwrap()
                .extend(fields.as_object().unwrap().clone());
            e
        };
        let ret_1 = event(
            "ret-1",
            "refund",
            "2026-11-21T18:01:00+09:00",
            json!({ "cashier": "c101", "transaction": "T-2001", "amount": 1280, "currency": "JPY",
                    "reason": "レシート忘れ", "lines": ["返品 ¥1,280"] }),
        );
        let ret_2 = event(
            "ret-2",
            "refund",
            "2026-11-21T18:02:00+09:00",
            json!({ "cashier": "c102", "transaction": "T-2002", "amount": 300, "currency": "JPY",
                    "reason": "お客様都合による返品" }),
        );
        let void = event(
            "void-1",
            "void",
            "2026-11-21T18:03:00+09:00",
            json!({ "cashier": "c117", "transaction": "T-000981", "amount": 180, "currency": "JPY",
                    "reason": "打ち間違い", "lines": ["おにぎり 鮭 ¥180"] }),
        );
        let sale = event(
            "sale-1",
            "sale",
            "2026-11-21T18:04:00+09:00",
            json!({ "amount": 5000, "currency": "JPY", "lines": ["返金なし", "品出し"] }),
        );
        let mut batch = vec![
            intake(&ret_1, true, true, &[("cam-1", "Counter 1")]),
            intake(&ret_2, true, true, &[("cam-1", "Counter 1")]),
            intake(&void, true, true, &[("cam-1", "Counter 1")]),
            intake(&sale, false, true, &[]),
        ];
        for i in 0..12 {
            let bulk = event(
                &format!("bulk-{i}"),
                "refund",
                &format!("2026-11-21T17:{i:02}:00+09:00"),
                json!({ "amount": 100, "currency": "JPY", "lines": [format!("返品 ¥{i}00")] }),
            );
            batch.push(intake(&bulk, true, false, &[]));
        }
        let now = ms("2026-11-21T10:00:00Z");
        site.ingest(&batch, now).await;
        site.deliver(now, |id, _| match id {
            "ret-1" => Outcome::Made {
                vendor_id: None,
                detail: "created".into(),
                made_as: None,
            },
            "void-1" => Outcome::Failed {
                error: CAMERA_NOT_FOUND.into(),
            },
            _ => Outcome::Retry {
                at_ms: now + 5_000,
                error: "connection refused".into(),
                maybe_created: false,
            },
        })
        .await;
        site
    }

    async fn ingest(&mut self, batch: &[Intake], now: i64) {
        let outcomes = self.store.ingest(batch, now).await.unwrap();
        for (item, outcome) in batch.iter().zip(outcomes) {
            if let (Intake::Event { event, .. }, IntakeOutcome::Stored { seq, .. }) =
                (item, outcome)
            {
                self.seqs.insert(event.id.clone(), seq);
            }
        }
    }

    /// Ends the first attempt of every bookmark due at `now` as `outcome(event id, device)` says.
    async fn deliver(&self, now: i64, outcome: impl Fn(&str, &str) -> Outcome) {
        for job in self
            .store
            .claim_due("tillmark", now, 60_000, &tillmark::store::Room::any(100))
            .await
            .unwrap()
        {
            let done = Finished {
                bookmark_id: job.bookmark.id,
                outcome: outcome(&job.event.id, &job.bookmark.device),
                at_ms: now + 100,
            };
            self.store.finish("tillmark", &[done]).await.unwrap();
        }
    }

    /// The ids of the events a page lists, in its order.
    fn listed(&self, html: &str) -> Vec<String> {
        row_seqs(html)
            .into_iter()
            .map(|seq| {
                self.seqs
                    .iter()
                    .find(|(_, s)| **s == seq)
                    .map(|(id, _)| id.clone())
                    .unwrap_or_else(|| panic!("event {seq} was not seeded"))
            })
            .collect()
    }

    /// The ids of the events the API lists, and its cursor to the next page.
    async fn api_events(&self, query: &str) -> (Vec<String>, Option<String>) {
        let (status, _, body) = self.get(&format!("/api/events?{query}")).await;
        assert_eq!(status, 200, "{query}: {body}");
        let body: Value = serde_json::from_str(&body).unwrap();
        let ids = body["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["id"].as_str().unwrap().to_string())
            .collect();
        (ids, body["next"].as_str().map(str::to_string))
    }

    fn seq(&self, id: &str) -> i64 {
        self.seqs[id]
    }

    /// GET as the owner; a redirect is answered, not followed.
    async fn get(&self, path: &str) -> (u16, reqwest::header::HeaderMap, String) {
        self.get_with(path, &[]).await
    }

    async fn get_with(
        &self,
        path: &str,
        headers: &[(&str, &str)],
    ) -> (u16, reqwest::header::HeaderMap, String) {
        let mut req = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap()
            .get(format!("{}{path}", self.base))
            .bearer_auth(TOKEN);
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        (status, headers, resp.text().await.unwrap())
    }

    /// Where each footage link of a page leads: through tillmark (which notes who opened it) to the vendor.
    async fn footage_opened(&self, html: &str) -> Vec<String> {
        let mut opened = Vec::new();
        for href in hrefs(html).iter().filter(|h| h.contains("/footage/")) {
            let (status, headers, _) = self.get(href).await;
            assert_eq!(status, 303, "{href}");
            opened.push(headers["location"].to_str().unwrap().to_string());
        }
        opened
    }

    async fn page(&self, path: &str) -> String {
        let (status, _, body) = self.get(path).await;
        assert_eq!(status, 200, "GET {path}:\n{body}");
        body
    }
}

/// Undoes the HTML escaping of an attribute value, as a browser does before following a link.
fn unescape(text: &str) -> String {
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#x27;", "'")
        .replace("&#x2f;", "/")
        .replace("&amp;", "&")
}

fn hrefs(html: &str) -> Vec<String> {
    html.split("href=\"")
        .skip(1)
        .filter_map(|rest| rest.split_once('"').map(|(v, _)| unescape(v)))
        .collect()
}

/// The rows of the event table (empty when there is no table).
fn rows(html: &str) -> Vec<String> {
    let Some((_, body)) = html.split_once("<tbody>") else {
        return Vec::new();
    };
    let body = body.split("</tbody>").next().unwrap_or_default();
    body.split("<tr").skip(1).map(str::to_string).collect()
}

#[tokio::test]
async fn the_list_shows_register_time_in_the_stores_zone_and_the_amount_in_yen() {
    let site = Site::filled().await;
    let html = site.page("/").await;
    let void = rows(&html)
        .into_iter()
        .find(|r| r.contains(&format!("/events/{}", site.seq("void-1"))))
        .expect("a row for the void");
    // 09:42:07 UTC is 18:42:07 in Tokyo.
    assert!(
        visible_text(&void).contains("2026-11-21 18:42:07"),
        "{void}"
    );
    assert!(void.contains("¥1,280"), "{void}");
    assert!(void.contains("Shibuya"), "{void}");
    assert!(void.contains("VOID"), "{void}");
    assert!(void.contains("c117") && void.contains("T-000981"), "{void}");
    assert!(
        void.contains(
            r#"<code class="vendor-id" title="The camera system's id for it">{bm-0001}</code>"#
        ),
        "the made bookmark's id at the vendor: {void}"
    );
    assert!(html.contains("JST"), "the zone is named");
}

/// The sequence numbers of the events in the table, in its order.
fn row_seqs(html: &str) -> Vec<i64> {
    rows(html)
        .iter()
        .filter_map(|r| {
            let rest = r.split("/events/").nth(1)?;
            rest.split('"').next()?.parse().ok()
        })
        .collect()
}

/// A query string value as a form sends it.
fn encoded(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

#[tokio::test]
async fn the_list_lists_newest_first() {
    let site = Site::filled().await;
    let html = site.page("/").await;
    let order = row_seqs(&html);
    let expected: Vec<i64> = ["osaka-1", "refund-1", "void-1", "sale-1", "drawer-1"]
        .iter()
        .map(|id| site.seq(id))
        .collect();
    assert_eq!(order, expected);
}

#[tokio::test]
async fn a_failed_bookmark_shows_the_vendors_reason_as_text_beside_a_made_one() {
    let site = Site::filled().await;
    let html = site.page("/").await;
    let void = rows(&html)
        .into_iter()
        .find(|r| r.contains("¥1,280"))
        .unwrap();
    assert!(void.contains(">failed<"), "{void}");
    assert!(void.contains(&escaped_slashes(CAMERA_NOT_FOUND)), "{void}");
    assert!(void.contains(">made<"), "{void}");
    assert!(
        void.contains("Counter 1") && void.contains("Counter 2"),
        "{void}"
    );
    let refund = rows(&html)
        .into_iter()
        .find(|r| r.contains("REFUND"))
        .unwrap();
    assert!(refund.contains(">pending<"), "{refund}");
    assert!(
        refund.contains(r#"1 attempt: <span lang="en">connection refused</span>"#),
        "the vendor's words, marked as English: {refund}"
    );
}

/// What minijinja's escaping leaves of plain text: `/` becomes `&#x2f;`.
fn escaped_slashes(text: &str) -> String {
    text.replace('/', "&#x2f;")
}

#[tokio::test]
async fn each_bookmark_opens_its_footage_in_the_nx_client_at_the_windows_start() {
    let site = Site::filled().await;
    let html = site.page("/").await;
    let start_ms = ms(VOID_AT) - PRE_ROLL_MS;
    let links = site.footage_opened(&html).await;
    for device in ["cam-1", "cam-2"] {
        let want = format!(
            "nx-vms://nxvms.com/client/nvr.example:7001/view?resources={device}&timestamp={start_ms}"
        );
        assert!(links.contains(&want), "no {want} in {links:#?}");
    }
}

#[tokio::test]
async fn a_register_no_camera_watches_is_named_so_a_forgotten_one_is_found() {
    let site = Site::filled().await;
    let html = site.page("/").await;
    assert!(html.contains("No camera watches shibuya-01/r9"), "{html}");
    assert!(html.contains("store osaka-02 is not in the config"));
}

#[tokio::test]
async fn an_event_from_a_store_missing_from_the_config_shows_the_registers_own_offset() {
    let site = Site::filled().await;
    let html = site.page("/").await;
    let row = rows(&html)
        .into_iter()
        .find(|r| r.contains(&format!("/events/{}", site.seq("osaka-1"))))
        .unwrap();
    assert!(visible_text(&row).contains("2026-11-21 20:00:00"), "{row}");
    assert!(row.contains("+09:00"), "{row}");
}

#[tokio::test]
async fn filtering_by_type_lists_only_events_of_that_type() {
    let site = Site::filled().await;
    let html = site.page("/?type=refund").await;
    let rows = rows(&html);
    assert_eq!(rows.len(), 1, "{html}");
    assert!(rows[0].contains("REFUND"));
    assert!(html.contains(r#"<option value="refund" selected>"#));
}

#[tokio::test]
async fn flagged_only_and_register_filters_narrow_the_list() {
    let site = Site::filled().await;
    let flagged = rows(&site.page("/?flagged=true").await);
    assert_eq!(flagged.len(), 4);
    assert!(flagged.iter().all(|r| !r.contains(">SALE<")));
    let r1 = rows(&site.page("/?store=shibuya-01&register=r1").await);
    assert_eq!(r1.len(), 2);
}

#[tokio::test]
async fn a_from_time_typed_in_the_form_is_read_in_the_chosen_stores_zone() {
    let site = Site::filled().await;
    // 18:45 in Tokyo: only the refund at 18:50 is later. Read as UTC it would exclude everything.
    let html = site
        .page("/?store=shibuya-01&from=2026-11-21T18%3A45")
        .await;
    let listed = rows(&html);
    assert_eq!(listed.len(), 1, "{html}");
    assert!(listed[0].contains("REFUND"));
    assert!(
        html.contains("From and to are in Shibuya's time zone, Asia/Tokyo (JST)."),
        "the zone is named by the inputs"
    );
    assert!(html.contains(r#"name="from" value="2026-11-21T18:45:00""#));

    // The same moment as RFC 3339 in the query string.
    let html = site.page("/?from=2026-11-21T09%3A45%3A00Z").await;
    assert_eq!(rows(&html).len(), 2, "the refund and the Osaka void");
    // No store chosen: the zone every store of the config shares, not UTC.
    assert!(
        html.contains("From and to are in your stores' time zone, Asia/Tokyo (JST)."),
        "{html}"
    );
    assert!(html.contains(r#"name="from" value="2026-11-21T18:45:00""#));
    let html = site.page("/?store=nowhere-99").await;
    assert!(html.contains("Store nowhere-99 is not in the config, so from and to are in UTC."));
}

/// A Tokyo store and a New York store, each with its own camera.
const TWO_ZONES: &str = r#"
[[stores]]
id = "shibuya-01"
name = "Shibuya"
timezone = "Asia/Tokyo"

[[stores]]
id = "nyc-01"
name = "New York"
timezone = "America/New_York"

[[camera_systems]]
id = "nvr"
integration = "nx-witness"
url = "https://nvr.example:7001"
username = "tillmark"
password_env = "NX_PW"

[[cameras]]
system = "nvr"
device = "cam-1"
name = "Counter 1"
registers = ["shibuya-01/r1", "nyc-01/r1"]
"#;

/// The first moment of today in `tz`, as RFC 3339 with its offset, `minutes` later (or earlier).
fn today_at(tz: chrono_tz::Tz, minutes: i64) -> String {
    use chrono::TimeZone;
    let today = chrono::Utc::now().with_timezone(&tz).date_naive();
    let midnight = tz
        .from_local_datetime(&today.and_hms_opt(0, 0, 0).unwrap())
        .earliest()
        .unwrap();
    (midnight + chrono::Duration::minutes(minutes)).to_rfc3339()
}

#[tokio::test]
async fn todays_flagged_events_are_each_stores_own_day_from_its_midnight() {
    let mut site = Site::with_config(TWO_ZONES).await;
    let tokyo = chrono_tz::Asia::Tokyo;
    let new_york = chrono_tz::America::New_York;
    let batch: Vec<Intake> = [
        ("tokyo-0030", "shibuya-01", today_at(tokyo, 30)),
        ("tokyo-yesterday-2330", "shibuya-01", today_at(tokyo, -30)),
        ("nyc-0030", "nyc-01", today_at(new_york, 30)),
        ("nyc-yesterday-2330", "nyc-01", today_at(new_york, -30)),
    ]
    .iter()
    .map(|(id, store, at)| intake(&payload(id, "void", store, "r1", at), true, true, &[]))
    .collect();
    site.ingest(&batch, tillmark::clock::now_ms()).await;

    let html = site.page("/").await;
    assert!(
        unescape(&html).contains(r#"href="/?flagged=true&day=today">Today's flagged events</a>"#),
        "{html}"
    );
    let html = site.page("/?flagged=true&day=today").await;
    let mut listed = site.listed(&html);
    listed.sort();
    assert_eq!(listed, ["nyc-0030", "tokyo-0030"], "{html}");
    assert!(
        html.contains(r#"name="day" value="today" checked"#),
        "{html}"
    );
    // Two zones: each row says its own, and the form says how from and to are read.
    let zones: Vec<bool> = rows(&html)
        .iter()
        .map(|r| r.contains(">JST<") || r.contains(">EST<") || r.contains(">EDT<"))
        .collect();
    assert_eq!(zones, [true, true], "{html}");
    assert!(
        html.contains("Your stores are in several time zones: from and to are in yours, UTC (UTC)"),
        "{html}"
    );

    // One store: only its today.
    let html = site.page("/?day=today&store=shibuya-01").await;
    assert_eq!(site.listed(&html), ["tokyo-0030"]);
}

#[tokio::test]
async fn a_person_who_chooses_a_zone_reads_the_audit_log_and_dead_letters_in_it() {
    let site = Site::with_config(TWO_ZONES).await;
    // Stores in two zones and nothing chosen: UTC, and the page says so.
    let html = site.page("/audit").await;
    assert!(html.contains("Times in UTC (UTC)"), "{html}");
    let account = site.page("/account/password").await;
    assert!(
        account.contains(r#"<option value="Asia&#x2f;Tokyo">Asia&#x2f;Tokyo</option>"#),
        "{account}"
    );
    let resp = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .post(format!("{}/account/timezone", site.base))
        .bearer_auth(TOKEN)
        .form(&[("csrf", ""), ("timezone", "Asia/Tokyo")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 303);
    let html = site.page("/audit").await;
    assert!(html.contains("Times in Asia/Tokyo (JST)"), "{html}");
    let html = site.page("/integrations").await;
    assert!(html.contains(r#"<span class="zone">JST</span>"#), "{html}");
    for path in ["/audit", "/dead-letters", "/integrations"] {
        let html = site.page(path).await;
        assert!(
            !html.contains("(UTC)") && !html.contains(">UTC<"),
            "{path}: {html}"
        );
    }
    let account = site.page("/account/password").await;
    assert!(
        account.contains(r#"<option value="Asia&#x2f;Tokyo" selected>"#),
        "{account}"
    );
}

#[tokio::test]
async fn the_store_filter_takes_a_stores_name_as_well_as_its_id() {
    let site = Site::filled().await;
    let by_id = site.listed(&site.page("/?store=shibuya-01").await);
    assert_eq!(by_id.len(), 4);
    for name in ["Shibuya", "shibuya", "%20Shibuya%20"] {
        let html = site.page(&format!("/?store={name}")).await;
        assert_eq!(site.listed(&html), by_id, "{name}");
        assert!(
            html.contains(r#"<option value="shibuya-01" selected>Shibuya</option>"#),
            "{name}: {html}"
        );
    }
    let (listed, _) = site.api_events("store=Shibuya").await;
    assert_eq!(listed.len(), 4);
}

/// Yen and dollars side by side: ¥1,280, ¥500, $42.50 and $12.80 (1280 cents, the same number as the yen).
async fn two_currencies() -> Site {
    let mut site = Site::with_config(TWO_ZONES).await;
    let batch: Vec<Intake> = [
        ("yen-1280", "shibuya-01", 1280, "JPY"),
        ("yen-500", "shibuya-01", 500, "JPY"),
        ("usd-4250", "nyc-01", 4250, "USD"),
        ("usd-1280", "nyc-01", 1280, "USD"),
    ]
    .iter()
    .map(|(id, store, amount, currency)| {
        // Recent: the filters assume the currency of the events of the last weeks.
        let at = (chrono::Utc::now() - chrono::Duration::hours(1)).to_rfc3339();
        let mut p = payload(id, "refund", store, "r1", &at);
        p["amount"] = json!(amount);
        p["currency"] = json!(currency);
        intake(&p, true, true, &[])
    })
    .collect();
    site.ingest(&batch, tillmark::clock::now_ms()).await;
    site
}

#[tokio::test]
async fn amounts_are_typed_as_the_currency_shows_them() {
    let site = two_currencies().await;
    let listed = |html: &str| {
        let mut l = site.listed(html);
        l.sort();
        l
    };
    // A store's one currency is assumed: 1,280 is yen at Shibuya, 42.50 dollars in New York.
    let html = site
        .page(&format!(
            "/?store=shibuya-01&min_amount={}",
            encoded("1,280")
        ))
        .await;
    assert_eq!(listed(&html), ["yen-1280"], "{html}");
    assert!(
        html.contains(r#"name="min_amount" value="1,280""#),
        "{html}"
    );
    let html = site.page("/?store=nyc-01&min_amount=42.50").await;
    assert_eq!(listed(&html), ["usd-4250"], "{html}");
    let html = site.page("/?store=nyc-01&max_amount=12.80").await;
    assert_eq!(listed(&html), ["usd-1280"], "{html}");
    // Across both, the symbol says which: ¥1,280 is not $12.80.
    let html = site
        .page(&format!(
            "/?min_amount={}&max_amount={}",
            encoded("¥1,280"),
            encoded("¥1,280")
        ))
        .await;
    assert_eq!(listed(&html), ["yen-1280"], "{html}");
    let html = site
        .page(&format!("/?min_amount={}", encoded("$42.50")))
        .await;
    assert_eq!(listed(&html), ["usd-4250"], "{html}");
}

#[tokio::test]
async fn an_amount_that_cannot_be_read_is_explained_beside_the_form_with_a_400() {
    let site = two_currencies().await;
    let (status, _, html) = site.get("/?min_amount=abc").await;
    assert_eq!(status, 400);
    assert!(html.contains("“abc” is not an amount"), "{html}");
    assert!(html.contains(r#"name="min_amount" value="abc""#), "{html}");
    assert!(rows(&html).is_empty());
    let (status, _, html) = site.get("/?store=shibuya-01&max_amount=12.5").await;
    assert_eq!(status, 400);
    assert!(
        html.contains("“12.5” has more decimals than JPY has (0)."),
        "{html}"
    );
    // Yen and dollars in view, no symbol: decimals say nothing of which.
    let (status, _, html) = site.get("/?min_amount=42.50").await;
    assert_eq!(status, 400);
    assert!(html.contains("write its symbol, as in $42.50"), "{html}");
}

#[tokio::test]
async fn a_time_that_does_not_parse_is_explained_beside_the_form_with_a_400() {
    let site = Site::filled().await;
    let (status, _, html) = site.get("/?from=yesterday&type=refund").await;
    assert_eq!(status, 400);
    assert!(
        html.contains("“yesterday” is not a date and time"),
        "{html}"
    );
    assert!(rows(&html).is_empty());
    assert!(
        html.contains(r#"value="yesterday""#),
        "what was typed stays"
    );
    assert!(html.contains(r#"<option value="refund" selected>"#));
}

#[tokio::test]
async fn no_query_string_can_make_the_list_fail() {
    let site = Site::filled().await;
    for query in [
        "?store=a&store=b",
        "?limit=abc",
        "?limit=0",
        "?before=zzz",
        "?type=teleport",
        "?flagged=maybe",
        "?from=%FF%FE",
        "?from=99999999999999999999",
        "?min_amount=abc",
        "?max_amount=1.5",
        "?min_amount=500&max_amount=100",
        "?state=lost",
    ] {
        let (status, _, html) = site.get(&format!("/{query}")).await;
        assert_eq!(status, 400, "{query}: {html}");
        assert!(html.contains("These filters cannot be used"), "{query}");
    }
    let (status, _, _) = site.get("/?unknown=1&from=").await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn receipt_lines_and_attributes_from_a_register_show_as_text_never_as_markup() {
    let site = Site::filled().await;
    let html = site.page(&format!("/events/{}", site.seq("void-1"))).await;
    assert!(
        html.contains("&lt;script&gt;alert(1)&lt;&#x2f;script&gt;"),
        "{html}"
    );
    assert!(!html.contains("<script"));
    assert!(html.contains("&lt;img src=x onerror=alert(2)&gt;"));
    assert!(!html.contains("<img"));
    // Receipt spacing is kept.
    assert!(html.contains("ONIGIRI SALMON      180\n"));
}

#[tokio::test]
async fn the_event_page_shows_every_field_each_bookmark_and_its_attempts() {
    let site = Site::filled().await;
    let html = site.page(&format!("/events/{}", site.seq("void-1"))).await;
    for text in [
        "2026-11-21 18:42:07",
        "2026-11-21T09:42:07.310Z",
        "2026-11-21 18:42:08",
        "+1.2 s",
        "Shibuya",
        "shibuya-01",
        "c117",
        "T-000981",
        "¥1,280",
        "JPY",
        "customer changed mind",
        "void-1",
        &event_key("shibuya-01", "void-1"),
        "manager",
        "m-07",
        "Counter 1",
        "Counter 2",
        "nx-witness",
        "2026-11-21 18:41:57 – 18:42:27",
        "{bm-0001}",
        &escaped_slashes(CAMERA_NOT_FOUND),
        "created",
    ] {
        assert!(html.contains(text), "the event page lacks {text}:\n{html}");
    }
    let start_ms = ms(VOID_AT) - PRE_ROLL_MS;
    assert!(
        site.footage_opened(&html)
            .await
            .iter()
            .any(|h| h.ends_with(&format!("resources=cam-1&timestamp={start_ms}")))
    );
    assert!(
        !html.contains("skew-high"),
        "1.2 s of skew is not highlighted"
    );
}

#[tokio::test]
async fn an_unknown_or_non_numeric_event_number_is_a_404_page() {
    let site = Site::filled().await;
    for path in ["/events/999999", "/events/abc", "/events/%FF"] {
        let (status, headers, html) = site.get(path).await;
        assert_eq!(status, 404, "{path}");
        assert!(html.contains("There is no event"), "{path}: {html}");
        assert_eq!(headers["content-security-policy"], CSP);
    }
}

#[tokio::test]
async fn pages_carry_a_strict_policy_and_the_stylesheet_they_name_is_served() {
    let site = Site::filled().await;
    for path in ["/", "/dead-letters"] {
        let (_, headers, _) = site.get(path).await;
        assert_eq!(headers["content-security-policy"], CSP, "{path}");
        assert_eq!(headers["x-content-type-options"], "nosniff");
        assert_eq!(headers["referrer-policy"], "no-referrer");
        assert_eq!(headers["cache-control"], "no-store");
    }
    let html = site.page("/").await;
    let style = hrefs(&html)
        .into_iter()
        .find(|h| h.starts_with("/static/style.css"))
        .expect("a stylesheet link");
    let (status, headers, css) = site.get(&style).await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "text/css; charset=utf-8");
    assert!(
        headers["cache-control"]
            .to_str()
            .unwrap()
            .contains("max-age")
    );
    assert!(
        headers.get("vary").is_none(),
        "one stylesheet for every language"
    );
    assert!(css.contains("table.events"));
}

#[tokio::test]
async fn the_dead_letter_page_shows_why_a_message_was_refused_and_its_payload_as_text() {
    let site = Site::filled().await;
    let html = site.page("/dead-letters").await;
    assert!(html.contains("amount: must be an integer, found a string"));
    assert!(html.contains("pos&#x2f;shibuya-01&#x2f;r3&#x2f;events"));
    // 09:00 UTC, in the zone of the stores: the one an owner of Tokyo stores reads.
    assert!(html.contains("2026-11-21 18:00:00"), "{html}");
    assert!(html.contains("&lt;b&gt;bold&lt;&#x2f;b&gt;"));
    assert!(!html.contains("<b>bold"));
    // The header counts it.
    assert!(html.contains(r#"<span class="count count-warn">1</span>"#));
}

#[tokio::test]
async fn an_older_events_link_appears_only_when_older_events_exist_and_keeps_the_filters() {
    let site = Site::filled().await;
    let html = site.page("/?store=shibuya-01&limit=2").await;
    assert_eq!(rows(&html).len(), 2);
    let older = hrefs(&html)
        .into_iter()
        .find(|h| h.contains("before="))
        .expect("an older events link");
    assert!(older.contains("store=shibuya-01") && older.contains("limit=2"));
    assert!(html.contains("older events →"));

    let html = site.page(&older).await;
    let second = rows(&html);
    assert_eq!(second.len(), 2, "{html}");
    assert!(html.contains("← newest events"));
    assert!(
        !hrefs(&html).iter().any(|h| h.contains("before=")),
        "four Shibuya events fill exactly two pages: no link to an empty third"
    );

    let html = site.page("/?limit=100").await;
    assert!(!html.contains("older events"));
}

#[tokio::test]
async fn an_empty_index_says_how_to_get_events() {
    let site = Site::empty().await;
    let html = site.page("/").await;
    assert!(html.contains("No events yet."));
    assert!(html.contains("tillmark simulate"));
    let html = site.page("/dead-letters").await;
    assert!(html.contains("No dead letters"));
}

#[tokio::test]
async fn a_database_that_cannot_be_read_gives_a_503_page() {
    let site = Site::filled().await;
    site.store.close().await;
    for path in ["/", "/events/1", "/dead-letters"] {
        let (status, headers, html) = site.get(path).await;
        assert_eq!(status, 503, "{path}");
        assert!(html.contains("The database cannot be read right now"));
        assert_eq!(headers["content-security-policy"], CSP);
    }
}

/// A shift at Shibuya r1 on 2026-11-22 (Tokyo): c201 signs on, the drawer opens without a cashier on the
/// message, a sale, a no-sale, a refund, a paid-out whose reason looks like a formula, c201 signs off, then a
/// void nobody is signed on for. Plus what must stay out: another register, and a refund after the span.
async fn shift_site() -> Site {
    let mut site = Site::empty().await;
    let at = |hm: &str| format!("2026-11-22T{hm}:00+09:00");
    let mut events = Vec::new();
    let mut add = |id: &str, kind: &str, register: &str, hm: &str, edit: &dyn Fn(&mut Value)| {
        let mut p = payload(id, kind, "shibuya-01", register, &at(hm));
        edit(&mut p);
        events.push(p);
    };
    add("on", "sign_on", "r1", "09:00", &|p| {
        p["cashier"] = json!("c201")
    });
    add("open", "drawer_open", "r1", "09:05", &|_| {});
    add("sale", "sale", "r1", "09:06", &|p| {
        p["amount"] = json!(880);
        p["currency"] = json!("JPY");
    });
    add("nosale", "no_sale", "r1", "09:10", &|p| {
        p["cashier"] = json!("c201")
    });
    add("ref", "refund", "r1", "09:20", &|p| {
        p["amount"] = json!(500);
        p["currency"] = json!("JPY");
        p["cashier"] = json!("c201");
        p["reason"] = json!("返品");
    });
    add("out", "paid_out", "r1", "09:30", &|p| {
        p["amount"] = json!(3000);
        p["currency"] = json!("JPY");
        p["reason"] = json!("=HYPERLINK(\"http://x\")");
    });
    add("off", "sign_off", "r1", "09:40", &|p| {
        p["cashier"] = json!("c201")
    });
    add("void", "void", "r1", "09:50", &|p| {
        p["amount"] = json!(1280);
        p["currency"] = json!("JPY");
    });
    add("other", "refund", "r2", "09:15", &|p| {
        p["amount"] = json!(999)
    });
    add("later", "refund", "r1", "10:30", &|p| {
        p["amount"] = json!(777)
    });
    let batch: Vec<Intake> = events.iter().map(|p| intake(p, false, true, &[])).collect();
    let now = ms("2026-11-22T03:00:00Z");
    for (item, outcome) in batch
        .iter()
        .zip(site.store.ingest(&batch, now).await.unwrap())
    {
        if let (Intake::Event { event, .. }, IntakeOutcome::Stored { seq, .. }) = (item, outcome) {
            site.seqs.insert(event.id.clone(), seq);
        }
    }
    site
}

const SHIFT: &str =
    "/timeline?store=shibuya-01&register=r1&from=2026-11-22T09:00&to=2026-11-22T10:00";

#[tokio::test]
async fn a_shift_timeline_lists_every_cash_event_in_order_with_the_cashier_on_the_register_and_totals()
 {
    let site = shift_site().await;
    let html = site.page(SHIFT).await;
    let table = html
        .split("timeline-lines")
        .nth(1)
        .expect("the lines table");
    let lines = rows(table);
    let kinds: Vec<&str> = lines
        .iter()
        .map(|r| {
            let t = r.split("data-label=\"Type\">").nth(1).unwrap();
            let t = t.split("class=\"type-name\">").nth(1).unwrap();
            t.split('<').next().unwrap()
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "SIGN ON",
            "DRAWER OPEN",
            "NO SALE",
            "REFUND",
            "PAID OUT",
            "SIGN OFF",
            "VOID"
        ],
        "in order; the sale, the other register and the later refund stay out"
    );
    // The drawer open carried no cashier: c201 was signed on. The void after sign-off has nobody.
    assert!(
        lines[1].contains("data-label=\"Cashier\">c201<"),
        "{}",
        lines[1]
    );
    assert!(
        lines[6].contains("data-label=\"Cashier\">—<"),
        "{}",
        lines[6]
    );
    assert!(
        visible_text(&lines[1]).contains("2026-11-22 09:05:00"),
        "{}",
        lines[1]
    );
    // Not bookmarked, yet its footage is there: the camera watching r1 at the moment less the pre-roll.
    let open_ms = ms("2026-11-22T09:05:00+09:00") - PRE_ROLL_MS;
    let opened = site.footage_opened(&lines[1]).await;
    assert!(
        opened[0].ends_with(&format!("resources=cam-1&timestamp={open_ms}")),
        "{opened:?}"
    );
    for (label, count, total) in [
        ("DRAWER OPEN", "1", "—"),
        ("NO SALE", "1", "—"),
        ("VOID", "1", "¥1,280"),
        ("REFUND", "1", "¥500"),
        ("PAID OUT", "1", "¥3,000"),
    ] {
        let row = format!(
            "<td data-label=\"Type\">{label}</td><td data-label=\"Count\" class=\"num\">{count}</td><td data-label=\"Total\" class=\"num\">{total}</td>"
        );
        assert!(html.contains(&row), "totals row {row}");
    }
    // The shift itself is offered as a one-click span.
    assert!(html.contains("2026-11-22 09:00:00 – 09:40:00"), "{html}");
}

#[tokio::test]
async fn the_timeline_exports_as_csv_a_spreadsheet_reads_without_running_register_text() {
    let site = shift_site().await;
    let csv = site
        .get(&SHIFT.replace("/timeline?", "/timeline.csv?"))
        .await;
    assert_eq!(csv.0, 200);
    assert_eq!(csv.1["content-type"], "text/csv; charset=utf-8");
    assert_eq!(
        csv.1["content-disposition"],
        "attachment; filename=\"timeline-shibuya-01-r1-2026-11-22090000.csv\""
    );
    let text = csv.2;
    assert!(
        text.starts_with('\u{feff}'),
        "a BOM for spreadsheet programs"
    );
    let rows: Vec<&str> = text.trim_start_matches('\u{feff}').split("\r\n").collect();
    assert_eq!(
        rows[0],
        r#""time (JST)","type","type code","cashier","transaction","amount","reason","footage""#
    );
    assert_eq!(
        rows.len(),
        7,
        "header, five cash lines, and the final empty line: {rows:?}"
    );
    assert!(
        rows[3].starts_with(
            r#""2026-11-22 09:20:00","REFUND","refund","c201","","¥500","返品","nx-vms://"#
        ),
        "{}",
        rows[3]
    );
    assert!(
        rows[4].contains(r#""'=HYPERLINK(""http://x"")""#),
        "a formula is neutralised: {}",
        rows[4]
    );

    // Exported from a Japanese browser: the columns and types as a Japanese spreadsheet reads them.
    let (_, _, text) = site
        .get_with(
            &SHIFT.replace("/timeline?", "/timeline.csv?"),
            &[("accept-language", "ja")],
        )
        .await;
    let rows: Vec<&str> = text.trim_start_matches('\u{feff}').split("\r\n").collect();
    assert_eq!(
        rows[0],
        r#""日時 (JST)","種別","種別コード","担当者","取引番号","金額","理由","映像""#
    );
    assert!(
        rows[3].starts_with(r#""2026-11-22 09:20:00","返品","refund","c201""#),
        "{}",
        rows[3]
    );
}

#[tokio::test]
async fn a_timeline_needs_a_known_store_and_a_span_that_runs_forward() {
    let site = shift_site().await;
    let (status, _, html) = site.get("/timeline?store=nowhere&register=r1").await;
    assert_eq!(status, 400);
    assert!(
        html.contains("Store nowhere is not in the config."),
        "{html}"
    );
    let (status, _, html) = site
        .get("/timeline?store=shibuya-01&register=r1&from=2026-11-22T10:00&to=2026-11-22T09:00")
        .await;
    assert_eq!(status, 400);
    assert!(html.contains("From must be before to."), "{html}");
    let html = site.page("/timeline").await;
    assert!(html.contains("Choose a store"), "a form, no lines yet");
    assert!(!html.contains("class=\"events timeline-lines\""));
}

#[tokio::test]
async fn cashiers_are_compared_per_100_sales_with_the_others_and_each_bar_opens_its_events() {
    let mut site = Site::empty().await;
    let mut batch = Vec::new();
    let mut n = 0;
    let mut add = |cashier: &str, kind: &str, count: usize, day: &str| {
        for _ in 0..count {
            n += 1;
            let mut p = payload(
                &format!("e{n}"),
                kind,
                "shibuya-01",
                "r1",
                &format!("{day}T12:00:00+09:00"),
            );
            p["cashier"] = json!(cashier);
            batch.push(intake(&p, false, true, &[]));
        }
    };
    add("c1", "sale", 20, "2026-11-18");
    add("c1", "void", 2, "2026-11-18");
    add("c2", "sale", 10, "2026-11-19");
    add("c2", "void", 5, "2026-11-19");
    add("c2", "refund", 1, "2026-11-19");
    add("c3", "void", 1, "2026-11-20");
    // The week before and the week after stay out.
    add("c1", "void", 9, "2026-11-15");
    add("c1", "void", 9, "2026-11-23");
    site.store
        .ingest(&batch, ms("2026-11-24T00:00:00Z"))
        .await
        .unwrap();
    site.seqs.clear();

    let html = site
        .page("/cashiers?store=shibuya-01&week=2026-11-19")
        .await;
    assert!(
        html.contains("2026-11-16 – 2026-11-22"),
        "Monday to Sunday: {html}"
    );
    let voids = html.split("<h2>Voids per 100 sales").nth(1).unwrap();
    let voids = voids.split("</section>").next().unwrap();
    // All voids (8) over all sales (30).
    assert!(
        voids.contains("<span class=\"sub\">store: 26.7</span>"),
        "{voids}"
    );
    assert!(
        voids.contains(">10.0 (2)</span>"),
        "c1: 2 per 20 sales: {voids}"
    );
    assert!(
        voids.contains(">50.0 ▲ (5)</span>"),
        "c2: 5 per 10, far above the others' 3 per 20: {voids}"
    );
    assert!(
        voids.contains(">no sales (1)</span>"),
        "c3 sold nothing: {voids}"
    );
    assert!(
        unescape(voids).contains(
            "href=\"/?store=shibuya-01&cashier=c2&type=void&from=2026-11-16T00%3A00%3A00&to=2026-11-23T00%3A00%3A00\""
        ),
        "{voids}"
    );
    // The bar's link lists exactly the events behind it.
    let list = site
        .page("/?store=shibuya-01&cashier=c2&type=void&from=2026-11-16T00%3A00%3A00&to=2026-11-23T00%3A00%3A00")
        .await;
    assert_eq!(rows(&list).len(), 5);
}

#[tokio::test]
async fn searching_a_japanese_word_lists_the_events_holding_it_and_keeps_it_in_the_box() {
    let site = Site::searchable().await;
    let html = site.page(&format!("/?q={}", encoded("返品"))).await;
    let listed = site.listed(&html);
    assert_eq!(listed.len(), 14, "{listed:?}");
    assert_eq!(listed[..2], ["ret-2", "ret-1"]);
    assert!(listed[2..].iter().all(|id| id.starts_with("bulk-")));
    assert!(html.contains(r#"name="q" value="返品""#), "{html}");
    assert!(html.contains("¥1,280"));

    let html = site.page(&format!("/?q={}", encoded("お客様都合"))).await;
    assert_eq!(site.listed(&html), ["ret-2"]);
}

#[tokio::test]
async fn a_transaction_number_or_a_cashier_typed_in_the_search_box_finds_its_event() {
    let site = Site::searchable().await;
    for q in ["T-000981", "t-000981", "c117", "鮭"] {
        let html = site.page(&format!("/?q={}", encoded(q))).await;
        assert_eq!(site.listed(&html), ["void-1"], "{q}");
    }
    let html = site.page("/?q=T-999999").await;
    assert!(rows(&html).is_empty());
    assert!(html.contains("No events match these filters."));
}

#[tokio::test]
async fn amount_and_bookmark_state_filters_narrow_the_list_and_stay_filled_in() {
    let site = Site::searchable().await;
    let html = site
        .page("/?min_amount=200&max_amount=1280&state=made")
        .await;
    assert_eq!(site.listed(&html), ["ret-1"]);
    assert!(html.contains(r#"name="min_amount" value="200""#), "{html}");
    assert!(html.contains(r#"name="max_amount" value="1280""#));
    assert!(html.contains(r#"<option value="made" selected>"#));

    let html = site.page("/?state=failed").await;
    assert_eq!(site.listed(&html), ["void-1"]);
    let html = site.page("/?min_amount=1000").await;
    assert_eq!(site.listed(&html), ["sale-1", "ret-1"]);

    let (listed, _) = site
        .api_events(&format!("q={}&state=pending", encoded("返品")))
        .await;
    assert_eq!(listed, ["ret-2"]);
    let (listed, _) = site
        .api_events(&format!(
            "q={}&flagged=true&min_amount=150&max_amount=300",
            encoded("返品")
        ))
        .await;
    assert_eq!(listed, ["ret-2"]);
}

#[tokio::test]
async fn quotes_stars_or_near_in_a_search_never_break_the_page_or_the_api() {
    let site = Site::searchable().await;
    for q in [
        "\"",
        "返品\"",
        "*",
        "返品*",
        "NEAR(",
        "NEAR(返品 鮭, 2)",
        "\"返品\" OR \"x\"",
        "'",
        "%",
        "\\",
        "c117 AND",
    ] {
        let (status, _, html) = site.get(&format!("/?q={}", encoded(q))).await;
        assert_eq!(status, 200, "{q}: {html}");
        let (listed, _) = site.api_events(&format!("q={}", encoded(q))).await;
        assert!(
            listed.is_empty(),
            "{q} is text no receipt holds: {listed:?}"
        );
    }
    // A control character is no word: nothing is searched for.
    let (listed, _) = site.api_events("q=%00").await;
    assert_eq!(listed.len(), 16);
}

#[tokio::test]
async fn paging_the_api_through_a_filtered_search_returns_every_match_once() {
    let site = Site::searchable().await;
    let mut seen = Vec::new();
    let mut query = format!("q={}&flagged=true&limit=5", encoded("返品"));
    loop {
        let (listed, next) = site.api_events(&query).await;
        seen.extend(listed);
        let Some(next) = next else { break };
        query = format!("q={}&flagged=true&limit=5&before={next}", encoded("返品"));
    }
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), seen.len(), "{seen:?}");
    assert_eq!(seen.len(), 14, "{seen:?}");
}

#[tokio::test]
async fn the_older_events_link_keeps_the_search_amount_and_state() {
    let site = Site::searchable().await;
    let html = site
        .page(&format!(
            "/?q={}&min_amount=100&state=&limit=5",
            encoded("返品")
        ))
        .await;
    assert_eq!(rows(&html).len(), 5);
    let older = hrefs(&html)
        .into_iter()
        .find(|h| h.contains("before="))
        .expect("an older events link");
    assert!(older.contains(&format!("q={}", encoded("返品"))), "{older}");
    assert!(older.contains("min_amount=100"), "{older}");
    let mut seen = site.listed(&html);
    let mut next = Some(older);
    while let Some(href) = next {
        let html = site.page(&href).await;
        seen.extend(site.listed(&html));
        next = hrefs(&html).into_iter().find(|h| h.contains("before="));
    }
    assert_eq!(seen.len(), 14, "{seen:?}");
}

#[tokio::test]
async fn the_api_answers_400_naming_the_parameter_for_a_bad_search_or_filter() {
    let site = Site::searchable().await;
    let long = "返".repeat(201);
    for (query, parameter) in [
        ("min_amount=abc", "min_amount"),
        ("max_amount=1.5", "max_amount"),
        ("min_amount=500&max_amount=100", "max_amount"),
        ("state=lost", "state"),
        ("state=MADE", "state"),
        ("flagged=maybe", "flagged"),
        (&*format!("q={}", encoded(&long)), "q"),
    ] {
        let (status, headers, body) = site.get(&format!("/api/events?{query}")).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert_eq!(headers["content-type"], "application/json");
        let body: Value = serde_json::from_str(&body).unwrap();
        let error = body["error"].as_str().unwrap();
        assert!(
            error.starts_with(&format!("{parameter}: ")),
            "{query}: {error}"
        );
    }
}

/// What a person reads: the page without its tags, scripts-free as all our pages are.
fn visible_text(html: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' => {
                in_tag = false;
                out.push(' ');
            }
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Runs of three or more English words: a sentence left untranslated.
fn english_sentences(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut run: Vec<&str> = Vec::new();
    for word in text.split(|c: char| c.is_whitespace() || c == ',' || c == '.' || c == ':') {
        if !word.is_empty() && word.chars().all(|c| c.is_ascii_lowercase() || c == '\'') {
            run.push(word);
            continue;
        }
        if run.len() >= 3 {
            found.push(run.join(" "));
        }
        if !word.is_empty() {
            run.clear();
        }
    }
    if run.len() >= 3 {
        found.push(run.join(" "));
    }
    found
}

#[tokio::test]
async fn a_browser_asking_for_japanese_gets_every_page_in_japanese_with_yen_and_tokyo_times() {
    let site = Site::filled().await;
    let ja = [("accept-language", "ja-JP,ja;q=0.9,en;q=0.8")];
    let (_, headers, list) = site.get_with("/", &ja).await;
    assert!(
        list.starts_with("<!doctype html>\n<html lang=\"ja\">"),
        "{list}"
    );
    assert!(
        headers["vary"]
            .to_str()
            .unwrap()
            .contains("accept-language")
    );
    assert!(list.contains(">イベント</a>"), "{list}");
    assert!(
        list.contains(">返品</span>"),
        "the type in Japanese: {list}"
    );
    assert!(list.contains("¥1,280"), "{list}");
    assert!(list.contains("映像を開く"), "{list}");
    assert!(
        list.contains("lang=\"en\" hreflang=\"en\">English</a>"),
        "{list}"
    );
    let seq = rows(&list)
        .iter()
        .find_map(|r| {
            r.split("href=\"/events/")
                .nth(1)
                .and_then(|r| r.split('"').next())
        })
        .unwrap()
        .to_string();
    let timeline =
        "/timeline?store=shibuya-01&register=r1&from=2026-11-21T00%3A00&to=2026-11-22T00%3A00";
    for path in [
        "/".to_string(),
        format!("/events/{seq}"),
        timeline.to_string(),
        "/cashiers?store=shibuya-01&week=2026-11-18".to_string(),
        "/integrations".to_string(),
        "/dead-letters".to_string(),
        "/audit".to_string(),
        "/account/password".to_string(),
        "/?min_amount=500&max_amount=100".to_string(),
        format!("/?q={}", "返".repeat(201)),
        "/events/999999".to_string(),
    ] {
        let (_, _, html) = site.get_with(&path, &ja).await;
        if let Some(at) = html.find(&escaped_slashes(CAMERA_NOT_FOUND)) {
            let lead = html.find("カメラシステムからのメッセージ(原文):");
            assert!(
                lead.is_some_and(|l| l < at),
                "a camera system's English words follow a Japanese lead-in: {html}"
            );
        }
        if path == "/integrations" {
            // The repository's own copies of the definitions: files, said to replace nothing.
            assert!(
                html.contains("<code>integrations&#x2f;nx-witness.toml</code>")
                    && !html.contains("built in")
                    && !html.contains("置き換え"),
                "where a definition comes from: {html}"
            );
        }
        // A camera system's error is its words, and why a message was refused is the daemon's (as in its
        // log and the API): neither is the page's.
        let without_reasons: String = html
            .split(r#"<p class="reason">"#)
            .enumerate()
            .map(|(i, part)| {
                if i == 0 {
                    part
                } else {
                    part.split_once("</p>").map_or("", |(_, rest)| rest)
                }
            })
            .collect();
        let text = visible_text(&without_reasons).replace(CAMERA_NOT_FOUND, "");
        assert!(
            english_sentences(&text).is_empty(),
            "{path} still speaks English: {:?}\n{text}",
            english_sentences(&text)
        );
    }
}

#[tokio::test]
async fn the_language_switch_remembers_the_choice_and_returns_only_to_this_sites_pages() {
    let site = Site::filled().await;
    let (status, headers, _) = site
        .get("/lang?to=ja&next=%2Ftimeline%3Fstore%3Dshibuya-01")
        .await;
    assert_eq!(status, 303);
    assert_eq!(headers["location"], "/timeline?store=shibuya-01");
    let cookie = headers["set-cookie"].to_str().unwrap();
    assert!(
        cookie.starts_with("lang=ja; Path=/; Max-Age=31536000; SameSite=Lax"),
        "{cookie}"
    );
    // The cookie wins over the browser's own preference, both ways.
    let (_, _, html) = site
        .get_with(
            "/timeline",
            &[("cookie", "lang=ja"), ("accept-language", "en-US")],
        )
        .await;
    assert!(html.contains("<h1>現金過不足タイムライン</h1>"), "{html}");
    let (_, _, html) = site
        .get_with(
            "/timeline",
            &[("cookie", "lang=en"), ("accept-language", "ja")],
        )
        .await;
    assert!(html.contains("<h1>Shortage timeline</h1>"), "{html}");
    // The switch on a page comes back to that very page, query and all.
    let (_, _, html) = site
        .get_with(
            "/?q=%E8%BF%94%E5%93%81&flagged=true",
            &[("accept-language", "ja")],
        )
        .await;
    assert!(
        html.contains(r#"href="/lang?to=en&amp;next=%2F%3Fq%3D%25E8%25BF%2594%25E5%2593%2581%26flagged%3Dtrue""#),
        "{html}"
    );
    // Browsers drop tabs and line breaks in a URL: `/\t/evil.example` is `//evil.example`, another site.
    for away in [
        "//evil.example/",
        "https://evil.example/",
        "/\\evil.example",
        "/\t/evil.example",
        "/\r\n/evil.example",
        "/x\r\nSet-Cookie: lang=xx",
        "javascript:alert(1)",
    ] {
        let (status, headers, _) = site
            .get(&format!(
                "/lang?to=en&next={}",
                url::form_urlencoded::byte_serialize(away.as_bytes()).collect::<String>()
            ))
            .await;
        assert_eq!(status, 303);
        assert_eq!(headers["location"], "/", "{away}");
    }
    let (status, _, _) = site.get("/lang?to=fr&next=/").await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn the_events_list_says_how_many_events_wait_for_the_search_index_until_it_has_them() {
    if TestDatabase::on_postgres() {
        eprintln!(
            "not run on PostgreSQL: its search index is kept as events are written, none trails"
        );
        return;
    }
    let site = Site::filled().await;
    let waiting = site.store.counts(&Default::default()).await.unwrap().events;
    assert!(waiting > 0);
    let html = site.page("/").await;
    assert!(
        html.contains(&format!("Indexing {waiting} events for search.")),
        "{html}"
    );
    let (_, _, html) = site.get_with("/", &[("cookie", "lang=ja")]).await;
    assert!(html.contains(&format!(
        "{waiting} 件のイベントを検索用に索引付けしています。"
    )));

    site.store.index_search(1_000).await.unwrap();
    for html in [
        site.page("/").await,
        site.get_with("/", &[("cookie", "lang=ja")]).await.2,
    ] {
        assert!(
            !html.contains("Indexing") && !html.contains("索引付け"),
            "{html}"
        );
    }
}

/// A sale and the void that undoes it (one transaction, at r2), and another transaction's refund at r1.
async fn transaction_site() -> Site {
    let mut site = Site::empty().await;
    let event = |id: &str, kind: &str, register: &str, at: &str, txn: &str| {
        let mut e = payload(id, kind, "shibuya-01", register, at);
        e["transaction"] = json!(txn);
        e
    };
    let batch = vec![
        intake(
            &event(
                "sale-1",
                "sale",
                "r2",
                "2026-11-21T18:40:00+09:00",
                "T-000981",
            ),
            false,
            true,
            &[],
        ),
        intake(
            &event("void-1", "void", "r2", VOID_AT, "T-000981"),
            true,
            true,
            &[("cam-1", "Counter 1"), ("cam-2", "Counter 2")],
        ),
        intake(
            &event(
                "refund-1",
                "refund",
                "r1",
                "2026-11-21T18:50:00+09:00",
                "T-000982",
            ),
            true,
            true,
            &[("cam-1", "Counter 1")],
        ),
    ];
    site.ingest(&batch, ms("2026-11-21T10:00:00Z")).await;
    site
}

#[tokio::test]
async fn the_event_page_opens_on_each_cameras_footage_by_name_before_its_details() {
    let site = transaction_site().await;
    let html = site.page(&format!("/events/{}", site.seq("void-1"))).await;
    let first_button = html
        .find("class=\"button footage\"")
        .expect("a footage button");
    for later in ["class=\"case\"", "class=\"fields-list\"", "T-000981</dd>"] {
        let at = html.find(later).unwrap_or_else(|| panic!("no {later}"));
        assert!(first_button < at, "the footage comes before {later}");
    }
    // A button per camera, named by the camera; each camera has one link here, so no kind of link is added.
    for name in ["Counter 1", "Counter 2"] {
        assert!(
            html.contains(&format!("<span class=\"footage-camera\">{name}</span>")),
            "no button named {name}:\n{html}"
        );
    }
    assert!(!html.contains("footage-kind"), "{html}");
    // Still opened through the audited redirect, each at its camera's window.
    let start_ms = ms(VOID_AT) - PRE_ROLL_MS;
    let opened = site.footage_opened(&html).await;
    for device in ["cam-1", "cam-2"] {
        let want = format!("resources={device}&timestamp={start_ms}");
        assert_eq!(
            opened.iter().filter(|l| l.ends_with(&want)).count(),
            1,
            "{want} once in {opened:#?}"
        );
    }
}

#[tokio::test]
async fn the_event_page_links_its_register_five_minutes_either_side_in_the_stores_zone_and_its_transaction()
 {
    let site = transaction_site().await;
    let html = site.page(&format!("/events/{}", site.seq("void-1"))).await;
    let links = hrefs(&html);
    // 09:42:07.310 UTC is 18:42:07 in Tokyo: the timeline's form reads wall times in the store's zone.
    let timeline = links
        .iter()
        .find(|h| h.starts_with("/timeline?"))
        .expect("a link to the timeline");
    assert_eq!(
        timeline,
        "/timeline?store=shibuya-01&register=r2&from=2026-11-21T18%3A37%3A07&to=2026-11-21T18%3A47%3A07"
    );
    let around = site.page(timeline).await;
    assert!(
        around.contains(&format!("href=\"/events/{}\"", site.seq("void-1"))),
        "the timeline it opens lists the void:\n{around}"
    );
    assert!(around.contains("2026-11-21 18:37:07 – 2026-11-21 18:47:07"));

    let same = links
        .iter()
        .find(|h| h.contains("txn="))
        .expect("a link to the transaction's events");
    assert_eq!(same, "/?store=shibuya-01&txn=T-000981");
    let listed = site.page(same).await;
    assert_eq!(site.listed(&listed), ["void-1", "sale-1"]);
    assert!(
        listed.contains("name=\"txn\" value=\"T-000981\""),
        "the filter stays filled in"
    );
    // The other transaction's page has its own link, and no event without a transaction gets one.
    let refund = site
        .page(&format!("/events/{}", site.seq("refund-1")))
        .await;
    assert!(hrefs(&refund).contains(&"/?store=shibuya-01&txn=T-000982".to_string()));
}

#[tokio::test]
async fn the_transaction_filter_lists_only_that_transactions_events_in_the_list_and_the_api() {
    let site = transaction_site().await;
    let html = site.page("/?txn=T-000981").await;
    assert_eq!(site.listed(&html), ["void-1", "sale-1"]);
    let (ids, next) = site.api_events("txn=T-000981").await;
    assert_eq!(ids, ["void-1", "sale-1"]);
    assert_eq!(next, None);
    // Exactly: a number that only begins like another finds nothing, and filters combine.
    assert!(site.listed(&site.page("/?txn=T-00098").await).is_empty());
    assert_eq!(
        site.api_events("txn=T-000981&type=void").await.0,
        ["void-1"]
    );
    // Kept by the older-events link along with the other filters.
    let paged = site.page("/?txn=T-000981&limit=1").await;
    assert!(
        hrefs(&paged)
            .iter()
            .any(|h| h.starts_with("/?txn=T-000981&limit=1&before=")),
        "{paged}"
    );
}

/// `intake`, received at `received_ms` rather than 1.2 s after its `at`.
fn received_at(payload: &Value, received_ms: i64) -> Intake {
    let mut i = intake(payload, true, true, &[("cam-1", "Counter 1")]);
    if let Intake::Event { received_ms: r, .. } = &mut i {
        *r = received_ms;
    }
    i
}

#[tokio::test]
async fn a_late_event_says_it_arrived_late_and_a_live_one_from_a_register_five_seconds_off_warns_of_its_clock()
 {
    let mut site = Site::empty().await;
    // Queued at r1 for 20 minutes while it was offline: sent 20 min after it happened, delivered at once.
    let at = "2026-11-21T18:00:00+09:00";
    let mut late = payload("late-1", "void", "shibuya-01", "r1", at);
    late["sent_at"] = json!("2026-11-21T18:20:00+09:00");
    let late_received = ms(at) + 20 * 60_000 + 150;
    // r2's clock is 5 s behind: sent and received at once, 5 s after its `at` on tillmark's clock.
    let at2 = "2026-11-21T18:30:00+09:00";
    let mut live = payload("live-1", "void", "shibuya-01", "r2", at2);
    live["sent_at"] = json!(at2);
    let live_received = ms(at2) + 5_000;
    site.ingest(
        &[
            received_at(&late, late_received),
            received_at(&live, live_received),
        ],
        live_received,
    )
    .await;

    let (status, _, html) = site.get(&format!("/events/{}", site.seqs["late-1"])).await;
    assert_eq!(status, 200);
    assert!(
        html.contains("Arrived 20 min late (queued at the register)"),
        "{html}"
    );
    assert!(
        !html.contains("skew-high"),
        "a late message is no clock warning:\n{html}"
    );
    assert!(!html.contains("More than 2 s between"), "{html}");
    let footage = html.find("class=\"desk\"").expect("footage section");
    let arrival = html.find("Arrived 20 min late").unwrap();
    assert!(footage < arrival, "the footage stays first");

    let (status, _, html) = site.get(&format!("/events/{}", site.seqs["live-1"])).await;
    assert_eq!(status, 200);
    assert!(html.contains("+5.0 s"), "{html}");
    assert!(
        html.contains("skew-high") && html.contains("More than 2 s between"),
        "{html}"
    );
    assert!(!html.contains("Arrived"), "{html}");
    // And the register's own clock: the median of its live events.
    assert!(
        html.contains("+5.0 s (median of its last 1 live events)")
            && html.contains("clock is more than 2 s off"),
        "{html}"
    );

    // The register's timeline warns of its clock above its lines; r1, whose only message came late, has no
    // measured clock and no warning.
    let timeline = |register: &str| {
        format!(
            "/timeline?store=shibuya-01&register={register}&from=2026-11-21T17%3A00&to=2026-11-21T19%3A00"
        )
    };
    let (status, _, html) = site.get(&timeline("r2")).await;
    assert_eq!(status, 200, "{html}");
    let warning = html
        .find("Register clock: +5.0 s (median of its last 1 live events)")
        .expect("r2's clock on its timeline");
    assert!(html.contains("clock is more than 2 s off"), "{html}");
    assert!(
        warning < html.find("timeline-lines").unwrap(),
        "above the lines"
    );
    let (status, _, html) = site.get(&timeline("r1")).await;
    assert_eq!(status, 200, "{html}");
    assert!(
        html.contains("VOID") || html.contains("Void"),
        "r1's timeline shows its void:\n{html}"
    );
    assert!(
        !html.contains("Register clock") && !html.contains("skew-high"),
        "{html}"
    );

    // The API says the same in fields.
    let (status, _, api) = site
        .get(&format!("/api/events/{}", site.seqs["late-1"]))
        .await;
    assert_eq!(status, 200, "{api}");
    let api: Value = serde_json::from_str(&api).unwrap();
    assert_eq!(api["event"]["arrival"]["timing"], "late");
    assert_eq!(api["event"]["arrival"]["why"], "queued");
    assert_eq!(api["event"]["sent_at"], "2026-11-21T18:20:00+09:00");
}

#[tokio::test]
async fn a_drawer_open_no_sale_explained_is_named_so_and_wears_the_high_badge() {
    let mut site = Site::empty().await;
    let drawer = payload("d-1", "drawer_open", "shibuya-01", "r1", VOID_AT);
    site.ingest(
        &[intake(&drawer, true, true, &[("cam-1", "Counter 1")])],
        ms(VOID_AT),
    )
    .await;
    let (_, _, list) = site.get("/").await;
    assert!(list.contains("DRAWER OPEN WITHOUT SALE"), "{list}");
    assert!(list.contains(r#"class="type sev-high""#), "{list}");
    let (_, _, list) = site.get("/?severity=high").await;
    assert!(list.contains(&format!("href=\"/events/{}\"", site.seqs["d-1"])));
}

#[tokio::test]
async fn choosing_another_store_keeps_the_moment_from_was_shown_as_on_the_new_stores_clock() {
    let site = Site::with_config(TWO_ZONES).await;
    // The form showed 18:45 in Tokyo; the person then picked New York and pressed the button.
    let html = site
        .page("/?store=nyc-01&from=2026-11-21T18%3A45&tz=Asia%2FTokyo")
        .await;
    // 18:45 JST is 04:45 in New York (EST): the same moment, not 18:45 New York time.
    assert!(
        html.contains(r#"name="from" value="2026-11-21T04:45:00""#),
        "{html}"
    );
    assert!(
        html.contains(r#"name="tz" value="America&#x2f;New_York""#),
        "{html}"
    );
    // Without the zone it was shown in, a typed time is the chosen store's.
    let html = site.page("/?store=nyc-01&from=2026-11-21T18%3A45").await;
    assert!(
        html.contains(r#"name="from" value="2026-11-21T18:45:00""#),
        "{html}"
    );
}
