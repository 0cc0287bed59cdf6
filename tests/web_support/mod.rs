//! The index on a real port over a real SQLite file, shared by the access and case tests: two stores (Shibuya,
//! Osaka) with a refund each, one user of every role with an API token, and a browser that keeps cookies.

use std::sync::Arc;

#[path = "../test_database/mod.rs"]
mod test_database;
pub use test_database::TestDatabase;

use reqwest::StatusCode;
use reqwest::header::{HeaderMap, LOCATION};
use serde_json::json;
use tillmark::accounts::{NewUser, Role, hash_password, new_token, token_digest};
use tillmark::config::Config;
use tillmark::store::{Finished, Intake, NewBookmark, Outcome, Store, StoreScope};
use tillmark::web::{AppState, router};

pub const CONFIG: &str = r#"
[[stores]]
id = "shibuya-01"
name = "Shibuya"
timezone = "Asia/Tokyo"

[[stores]]
id = "osaka-02"
name = "Osaka"
timezone = "Asia/Tokyo"

[[camera_systems]]
id = "nvr"
integration = "nx-witness"
url = "https://nvr.example:7001"
username = "tillmark"
password_env = "NX_PW"

[[cameras]]
system = "nvr"
device = "cam-shibuya"
name = "Shibuya counter"
registers = ["shibuya-01/r1"]

[[cameras]]
system = "nvr"
device = "cam-osaka"
name = "Osaka counter"
registers = ["osaka-02/r1"]
"#;

pub const PASSWORD: &str = "correct horse battery staple";
/// What only Osaka's events hold: no page or answer an investigator of Shibuya gets may contain any of it.
pub const OSAKA_MARKS: [&str; 4] = ["T-OSAKA-77", "c-osaka-9", "cam-osaka", "osaka-02"];

pub fn intake(id: &str, kind: &str, store: &str, txn: &str, cashier: &str, device: &str) -> Intake {
    let at = "2026-11-21T09:42:07.310Z";
    let payload = json!({
        "id": id, "type": kind, "at": at, "store": store, "register": "r1",
        "transaction": txn, "cashier": cashier, "amount": 5000, "currency": "JPY",
        "reason": "返品 お客様都合", "lines": ["返品 GREEN TEA 500ML 150"],
    });
    let parsed = tillmark::event::parse(payload.to_string().as_bytes());
    let event = parsed.result.expect("a valid test event");
    let at_ms = event.at_ms();
    Intake::Event {
        topic: format!("pos/{store}/r1/events"),
        received_ms: at_ms + 500,
        digest: tillmark::event::content_digest(&event),
        signed: None,
        event: Box::new(event),
        raw: parsed.raw,
        flagged: true,
        mapped: true,
        bookmarks: vec![NewBookmark {
            system: "nvr".into(),
            device: device.into(),
            camera: device.into(),
            moment_ms: at_ms,
            start_ms: at_ms - 10_000,
            duration_ms: 30_000,
        }],
        drawer: Default::default(),
    }
}

pub struct Site {
    pub base: String,
    pub store: Arc<dyn Store>,
    /// Osaka's event and its bookmark, the ones a Shibuya investigator must never reach.
    pub osaka_seq: i64,
    pub osaka_bookmark: i64,
    pub shibuya_seq: i64,
    /// API tokens by user name.
    pub tokens: std::collections::HashMap<&'static str, String>,
    /// Dropped before `_dir`: on PostgreSQL, the test's schema.
    pub db: TestDatabase,
    pub _dir: tempfile::TempDir,
}

impl Site {
    pub async fn start(extra_web: &str) -> Site {
        let dir = tempfile::tempdir().unwrap();
        let db = TestDatabase::new(dir.path());
        let store = tillmark::store::open(&db.url).await.unwrap();
        let config = Config::parse(&format!("{extra_web}\n{CONFIG}"), &|name| {
            (name == "NX_PW").then(|| "secret".to_string())
        })
        .unwrap_or_else(|e| panic!("test config is invalid: {e:?}"));
        let hash = hash_password(PASSWORD).unwrap();
        let mut tokens = std::collections::HashMap::new();
        for (name, role, stores) in [
            ("aiko", Role::Owner, vec![]),
            ("ken", Role::Investigator, vec!["shibuya-01".to_string()]),
            ("mika", Role::Manager, vec!["shibuya-01".to_string()]),
            ("ito", Role::Integrator, vec![]),
        ] {
            let user = NewUser {
                name: name.into(),
                role,
                stores,
                password_hash: hash.clone(),
            };
            store.add_user(&user, 0).await.unwrap();
            let token = new_token();
            store
                .add_token(name, "tests", &token_digest(&token), 0, None)
                .await
                .unwrap();
            tokens.insert(name, token);
        }
        let now = tillmark::clock::now_ms();
        let outcomes = store
            .ingest(
                &[
                    intake(
                        "s-1",
                        "refund",
                        "shibuya-01",
                        "T-SHIBUYA-1",
                        "c117",
                        "cam-shibuya",
                    ),
                    intake(
                        "o-1",
                        "refund",
                        "osaka-02",
                        "T-OSAKA-77",
                        "c-osaka-9",
                        "cam-osaka",
                    ),
                ],
                now,
            )
            .await
            .unwrap();
        let seq = |i: usize| match outcomes[i] {
            tillmark::store::IntakeOutcome::Stored { seq, .. } => seq,
            other => panic!("not stored: {other:?}"),
        };
        for job in store
            .claim_due("tillmark", now, 60_000, &tillmark::store::Room::any(10))
            .await
            .unwrap()
        {
            let made = Outcome::Made {
                vendor_id: Some(format!("bm-{}", job.bookmark.device)),
                detail: "created".into(),
                made_as: None,
            };
            let done = Finished {
                bookmark_id: job.bookmark.id,
                outcome: made,
                at_ms: now,
            };
            store.finish("tillmark", &[done]).await.unwrap();
        }
        let osaka = store
            .event(seq(1), &StoreScope::All)
            .await
            .unwrap()
            .unwrap();
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
        tokio::spawn(async move {
            axum::serve(
                listener,
                router(state).into_make_service_with_connect_info::<std::net::SocketAddr>(),
            )
            .await
        });
        Site {
            base: format!("http://{addr}"),
            store,
            osaka_seq: seq(1),
            osaka_bookmark: osaka.bookmarks[0].id,
            shibuya_seq: seq(0),
            tokens,
            db,
            _dir: dir,
        }
    }

    pub fn client() -> reqwest::Client {
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap()
    }

    pub async fn send(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
    ) -> (StatusCode, HeaderMap, String) {
        let mut req =
            Self::client().request(method.parse().unwrap(), format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.unwrap();
        let (status, headers) = (resp.status(), resp.headers().clone());
        (status, headers, resp.text().await.unwrap())
    }

    pub async fn get_as(&self, user: &str, path: &str) -> (StatusCode, String) {
        let (status, _, body) = self.send("GET", path, Some(&self.tokens[user])).await;
        (status, body)
    }

    /// A route's path with its parameters filled in with Osaka's event and bookmark.
    pub fn osaka_path(&self, path: &str) -> String {
        path.replace("{seq}", &self.osaka_seq.to_string())
            .replace("{id}", &self.osaka_bookmark.to_string())
            .replace("{n}", "0")
    }
}

/// A browser: keeps cookies, does not follow redirects, so each step can be checked.
pub struct Browser {
    pub client: reqwest::Client,
    pub base: String,
}

impl Browser {
    pub fn new(site: &Site) -> Browser {
        Browser {
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .cookie_store(true)
                .build()
                .unwrap(),
            base: site.base.clone(),
        }
    }

    pub async fn get(&self, path: &str) -> (StatusCode, HeaderMap, String) {
        let resp = self
            .client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        let (status, headers) = (resp.status(), resp.headers().clone());
        (status, headers, resp.text().await.unwrap())
    }

    pub async fn post(&self, path: &str, form: &[(&str, &str)]) -> (StatusCode, HeaderMap, String) {
        let resp = self
            .client
            .post(format!("{}{path}", self.base))
            .form(form)
            .send()
            .await
            .unwrap();
        let (status, headers) = (resp.status(), resp.headers().clone());
        (status, headers, resp.text().await.unwrap())
    }

    /// Opens the sign-in form (as a person would, for its token) and submits it.
    pub async fn sign_in(
        &self,
        name: &str,
        password: &str,
        next: &str,
    ) -> (StatusCode, HeaderMap, String) {
        let (_, _, form) = self.get(&format!("/login?next={next}")).await;
        let csrf = hidden(&form, "csrf");
        self.post(
            "/login",
            &[
                ("username", name),
                ("password", password),
                ("csrf", &csrf),
                ("next", next),
            ],
        )
        .await
    }
}

/// The value of a hidden form field.
pub fn hidden(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no {name} field in {html}"))
        + marker.len();
    html[start..start + html[start..].find('"').unwrap()].to_string()
}

pub fn location(headers: &HeaderMap) -> &str {
    headers[LOCATION].to_str().unwrap()
}
