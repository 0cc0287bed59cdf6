//! Evidence packages end to end: a case in a real database, a fake Frigate that exports clips as Frigate's own
//! API does (`POST /api/export/{camera}/start/{start}/end/{end}` answered `{"success","message","export_id"}`,
//! `GET /api/exports/{id}` answering the export with `in_progress` and `video_path`, the file served under
//! `/exports/`, and the recording's still at `/api/{camera}/recordings/{ts}/snapshot.png`), and the
//! `tillmark evidence` commands as an investigator or a court's expert runs them.

#[path = "test_database/mod.rs"]
mod test_database;

use std::collections::BTreeMap;
use std::io::{Cursor, Read, Write};
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};

use axum::extract::{Path as UrlPath, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use test_database::TestDatabase;
use tillmark::camera::{Cameras, Integrations};
use tillmark::config::Config;
use tillmark::evidence::{EvidenceError, Sources, export, verify};
use tillmark::retention::Actor;
use tillmark::store::{
    AuditQuery, CaseChange, Finished, Intake, NewBookmark, Outcome, Room, Store, StoreScope,
};

const TILL: &str = "till_front";
const SAFIE_DEVICE: &str = "dev-safie-till";
const SAFIE_KEY: &str = "sk-live-7f3a9c";
const EXPORT_ID: &str = "till_front_x7k2q9";
/// What the fake serves as the exported recording: not a real MP4, but bytes whose every one is checked.
fn clip_bytes() -> Vec<u8> {
    (0..4096u32).map(|i| (i * 7 % 251) as u8).collect()
}
const STILL: &[u8] = b"\x89PNG\r\n\x1a\nfake still";

/// The fake's state: exports asked for, and how often each was polled.
#[derive(Default)]
struct Frigate {
    exports: Mutex<Vec<(String, String, String)>>,
    polls: Mutex<usize>,
}

async fn start_export(
    State(f): State<Arc<Frigate>>,
    UrlPath((camera, start, end)): UrlPath<(String, String, String)>,
) -> Response {
    if camera != TILL {
        let message = format!("{camera} is not a valid camera.");
        return (
            StatusCode::NOT_FOUND,
            axum::Json(json!({"success": false, "message": message})),
        )
            .into_response();
    }
    f.exports.lock().unwrap().push((camera, start, end));
    axum::Json(json!({
        "success": true,
        "message": "Starting export of recording.",
        "export_id": EXPORT_ID,
    }))
    .into_response()
}

/// In progress at the first poll, done from the second: the package waits for it.
async fn get_export(State(f): State<Arc<Frigate>>, UrlPath(id): UrlPath<String>) -> Response {
    if id != EXPORT_ID {
        return (
            StatusCode::NOT_FOUND,
            axum::Json(json!({"success": false, "message": "Export not found."})),
        )
            .into_response();
    }
    let mut polls = f.polls.lock().unwrap();
    *polls += 1;
    axum::Json(json!({
        "id": EXPORT_ID,
        "camera": TILL,
        "name": "evidence",
        "date": 1_795_000_000.0,
        "video_path": format!("/media/frigate/exports/{EXPORT_ID}.mp4"),
        "thumb_path": format!("/media/frigate/clips/export/{EXPORT_ID}.webp"),
        "in_progress": *polls < 2,
    }))
    .into_response()
}

async fn download(UrlPath(file): UrlPath<String>) -> Response {
    if file != format!("{EXPORT_ID}.mp4") {
        return StatusCode::NOT_FOUND.into_response();
    }
    ([(header::CONTENT_TYPE, "video/mp4")], clip_bytes()).into_response()
}

async fn snapshot(UrlPath((camera, _ts)): UrlPath<(String, String)>) -> Response {
    if camera != TILL {
        return StatusCode::NOT_FOUND.into_response();
    }
    ([(header::CONTENT_TYPE, "image/png")], STILL).into_response()
}

async fn fake_frigate() -> (String, Arc<Frigate>) {
    let state = Arc::new(Frigate::default());
    let app = axum::Router::new()
        .route(
            "/api/export/{camera}/start/{start}/end/{end}",
            post(start_export),
        )
        .route("/api/exports/{id}", get(get_export))
        .route("/exports/{file}", get(download))
        .route("/api/{camera}/recordings/{ts}/snapshot.png", get(snapshot))
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, state)
}

/// The site: Shibuya's register r1 watched by the till camera on Frigate, and `more` (another camera system).
fn config_text(frigate: &str, database: &str, integrations: &Path, more: &str) -> String {
    format!(
        r#"
[database]
url = "{database}"

[integrations]
dir = "{}"

[[stores]]
id = "shibuya-01"
name = "Shibuya"
timezone = "Asia/Tokyo"

[[camera_systems]]
id = "frigate"
integration = "frigate"
url = "{frigate}"

[[cameras]]
system = "frigate"
device = "{TILL}"
name = "Till front"
registers = ["shibuya-01/r1"]
{more}"#,
        integrations.display()
    )
}

/// A refund at Shibuya's register r1, bookmarked on the till camera (made as Frigate's export), with a case.
struct Case {
    store: Arc<dyn Store>,
    config: Config,
    integrations: Integrations,
    seq: i64,
    bookmark: i64,
    frigate: Arc<Frigate>,
    config_file: std::path::PathBuf,
    _db: TestDatabase,
    dir: tempfile::TempDir,
}

impl Case {
    /// `definitions`: files for the integrations folder (a changed frigate.toml), by name.
    async fn open(definitions: &[(&str, String)]) -> Case {
        Case::open_on(definitions, "", ("frigate", TILL)).await
    }

    /// With `more` in the config, the bookmark on `(system, device)`.
    async fn open_on(definitions: &[(&str, String)], more: &str, on: (&str, &str)) -> Case {
        let dir = tempfile::tempdir().unwrap();
        let db = TestDatabase::new(dir.path());
        let store = tillmark::store::open(&db.url).await.unwrap();
        let (url, frigate) = fake_frigate().await;
        let folder = dir.path().join("integrations");
        std::fs::create_dir(&folder).unwrap();
        for (name, text) in definitions {
            std::fs::write(folder.join(name), text).unwrap();
        }
        let text = config_text(&url, &db.url, &folder, more);
        let config_file = dir.path().join("tillmark.toml");
        std::fs::write(&config_file, &text).unwrap();
        let config = Config::parse(&text, &|name| {
            (name == "SAFIE_API_KEY").then(|| SAFIE_KEY.to_string())
        })
        .unwrap();
        let integrations = Integrations::load(&folder);
        let payload = json!({
            "id": "s-1", "type": "refund", "at": "2026-11-21T09:42:07.310Z", "store": "shibuya-01",
            "register": "r1", "transaction": "T-SHIBUYA-1", "cashier": "c117", "amount": 5000,
            "currency": "JPY", "reason": "返品 お客様都合", "lines": ["返品 GREEN TEA 500ML 150"],
        });
        let parsed = tillmark::event::parse(payload.to_string().as_bytes());
        let event = parsed.result.unwrap();
        let at_ms = event.at_ms();
        let intake = Intake::Event {
            topic: "pos/shibuya-01/r1/events".into(),
            received_ms: at_ms + 500,
            digest: tillmark::event::content_digest(&event),
            signed: None,
            event: Box::new(event),
            raw: parsed.raw,
            flagged: true,
            mapped: true,
            bookmarks: vec![NewBookmark {
                system: on.0.into(),
                device: on.1.into(),
                camera: "Till front".into(),
                moment_ms: at_ms,
                start_ms: at_ms - 12_500,
                duration_ms: 57_500,
            }],
            drawer: Default::default(),
        };
        let now = tillmark::clock::now_ms();
        let outcomes = store.ingest(&[intake], now).await.unwrap();
        let tillmark::store::IntakeOutcome::Stored { seq, .. } = outcomes[0] else {
            panic!("not stored: {outcomes:?}");
        };
        let jobs = store
            .claim_due("tillmark", now, 60_000, &Room::any(10))
            .await
            .unwrap();
        let bookmark = jobs[0].bookmark.id;
        let made = Outcome::Made {
            vendor_id: Some("till_front_a1b2c3".into()),
            detail: "export of the window instead".into(),
            made_as: Some("export of the window".into()),
        };
        store
            .finish(
                "tillmark",
                &[Finished {
                    bookmark_id: bookmark,
                    outcome: made,
                    at_ms: now,
                }],
            )
            .await
            .unwrap();
        let open = CaseChange::Open {
            note: "Drawer ¥5,000 short at close".into(),
        };
        store
            .change_case(seq, &StoreScope::All, "ken", now, &open)
            .await
            .unwrap();
        Case {
            store,
            config,
            integrations,
            seq,
            bookmark,
            frigate,
            config_file,
            _db: db,
            dir,
        }
    }

    async fn export_as_ken(&self) -> Result<Package, EvidenceError> {
        self.export_in(&StoreScope::Only(vec!["shibuya-01".into()]))
            .await
    }

    async fn export_in(&self, scope: &StoreScope) -> Result<Package, EvidenceError> {
        let cameras = Cameras::build(&self.config, &self.integrations).unwrap();
        let sources = Sources {
            store: &*self.store,
            config: &self.config,
            integrations: &self.integrations,
            cameras: &cameras,
        };
        let ken = Actor {
            name: "ken".into(),
            address: Some("192.0.2.7".into()),
        };
        let now = tillmark::clock::now_ms();
        let made = export(
            &sources,
            self.seq,
            scope,
            &ken,
            now,
            Cursor::new(Vec::new()),
        )
        .await?;
        Ok(Package {
            zip: made.out.into_inner(),
            manifest_sha256: made.manifest_sha256,
            fingerprint: made.fingerprint,
        })
    }

    fn tillmark(&self, args: &[&str]) -> (Option<i32>, String, String) {
        let out = Command::new(env!("CARGO_BIN_EXE_tillmark"))
            .args(args)
            .current_dir(self.dir.path())
            .env("RUST_LOG", "warn")
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    fn write(&self, name: &str, bytes: &[u8]) -> String {
        let path = self.dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        path.display().to_string()
    }
}

/// A package made in memory.
struct Package {
    zip: Vec<u8>,
    manifest_sha256: String,
    fingerprint: String,
}

/// The archive's files by name.
fn entries(zip: &[u8]) -> BTreeMap<String, Vec<u8>> {
    let mut archive = zip::ZipArchive::new(Cursor::new(zip)).unwrap();
    (0..archive.len())
        .map(|i| {
            let mut file = archive.by_index(i).unwrap();
            let mut bytes = Vec::new();
            file.read_to_end(&mut bytes).unwrap();
            (file.name().unwrap().into_owned(), bytes)
        })
        .collect()
}

/// An archive of these files, as someone re-packing a changed package would make it.
fn repack(files: &BTreeMap<String, Vec<u8>>) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    for (name, bytes) in files {
        zip.start_file(name, zip::write::SimpleFileOptions::default())
            .unwrap();
        zip.write_all(bytes).unwrap();
    }
    zip.finish().unwrap().into_inner()
}

fn sha256(bytes: &[u8]) -> String {
    tillmark::store::sha256_hex(bytes)
}

#[tokio::test]
async fn an_exported_case_verifies_and_holds_its_history_the_event_the_timeline_the_still_and_the_frigate_export_as_its_clip()
 {
    let case = Case::open(&[]).await;
    let package = case.export_as_ken().await.unwrap();
    let files = entries(&package.zip);
    let b = case.bookmark;
    let clip = format!("clips/{b}.mp4");
    let names: Vec<&str> = files.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            format!("bookmarks/{b}.json").as_str(),
            "case.json",
            clip.as_str(),
            format!("events/{}.json", case.seq).as_str(),
            "manifest.json",
            "manifest.sig",
            format!("stills/{b}.png").as_str(),
            "timeline.csv",
        ]
    );

    // The clip is Frigate's export of the bookmark's window, asked for once, waited for, and downloaded whole.
    assert_eq!(files[&clip], clip_bytes());
    let asked = case.frigate.exports.lock().unwrap().clone();
    assert_eq!(
        asked,
        [(
            TILL.to_string(),
            "1795254114.81".to_string(),
            "1795254172.31".to_string()
        )]
    );
    assert_eq!(*case.frigate.polls.lock().unwrap(), 2, "polled until ready");
    assert_eq!(files[&format!("stills/{b}.png")], STILL);

    // The manifest lists every file with its SHA-256: the clip's is the hash of the bytes Frigate served.
    let manifest: Value = serde_json::from_slice(&files["manifest.json"]).unwrap();
    let listed: BTreeMap<&str, (&str, u64)> = manifest["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["path"].as_str().unwrap(),
                (f["sha256"].as_str().unwrap(), f["size"].as_u64().unwrap()),
            )
        })
        .collect();
    assert_eq!(listed.len(), 6, "{manifest}");
    assert_eq!(
        listed[clip.as_str()],
        (sha256(&clip_bytes()).as_str(), 4096)
    );
    assert_eq!(manifest["event"], case.seq);
    assert_eq!(manifest["made_by"], "ken");
    assert_eq!(package.manifest_sha256, sha256(&files["manifest.json"]));

    // What an investigator reads: the case, the receipt line, the timeline's line, the bookmark's window.
    let history: Value = serde_json::from_slice(&files["case.json"]).unwrap();
    assert_eq!(
        history["case"]["history"][0]["text"],
        "Drawer ¥5,000 short at close"
    );
    assert_eq!(history["case"]["state"], "open");
    let event: Value =
        serde_json::from_slice(&files[&format!("events/{}.json", case.seq)]).unwrap();
    assert_eq!(event["lines"][0], "返品 GREEN TEA 500ML 150");
    let timeline = String::from_utf8(files["timeline.csv"].clone()).unwrap();
    assert!(timeline.contains("T-SHIBUYA-1"), "{timeline}");
    let bookmark: Value = serde_json::from_slice(&files[&format!("bookmarks/{b}.json")]).unwrap();
    assert_eq!(bookmark["camera"], "Till front");
    assert_eq!(bookmark["vendor_id"], "till_front_a1b2c3");
    assert_eq!(bookmark["window"]["start"], "2026-11-21T09:41:54.810Z");
    assert_eq!(bookmark["window"]["end"], "2026-11-21T09:42:52.310Z");
    assert_eq!(bookmark["clip"], clip);
    assert_eq!(
        bookmark["footage"][0]["index_path"],
        format!("/events/{}/footage/0", case.seq)
    );

    // The audit log holds the export with the manifest's hash.
    let audit = case
        .store
        .audit(&AuditQuery {
            action: Some("evidence_exported".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(audit.len(), 1, "{audit:?}");
    assert_eq!(audit[0].actor.as_deref(), Some("ken"));
    assert!(
        audit[0]
            .detail
            .as_deref()
            .unwrap()
            .contains(&package.manifest_sha256),
        "{audit:?}"
    );

    // And the command a court's expert runs says so.
    let path = case.write("package.zip", &package.zip);
    let (code, out, err) = case.tillmark(&["evidence", "verify", &path]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("intact"), "{out}");
    assert!(out.contains("the key inside the package"), "{out}");
    assert!(out.contains(&package.fingerprint), "{out}");
}

#[tokio::test]
async fn changing_one_byte_of_any_file_or_of_the_manifest_makes_verify_exit_1_naming_it() {
    let case = Case::open(&[]).await;
    let package = case.export_as_ken().await.unwrap();
    let files = entries(&package.zip);
    for name in files.keys() {
        let mut changed = files.clone();
        let bytes = changed.get_mut(name).unwrap();
        let at = bytes.len() / 2;
        bytes[at] ^= 0x01;
        let path = case.write("changed.zip", &repack(&changed));
        let (code, out, err) = case.tillmark(&["evidence", "verify", &path]);
        assert_eq!(code, Some(1), "{name}: {out}{err}");
        let named = match name.as_str() {
            // The manifest is what the signature covers: a change to it, or to the signature, breaks that.
            "manifest.json" => "manifest.json".to_string(),
            "manifest.sig" => {
                "manifest.sig: the signature of manifest.json does not verify".to_string()
            }
            file => format!("{file}: SHA-256 differs"),
        };
        assert!(err.contains(&named), "{name}: {err}");
    }
    // A byte changed in the archive itself, not re-packed: the file it falls in (the first, case.json) is named.
    let mut raw = package.zip.clone();
    let at = raw
        .windows(4)
        .position(|w| w == b"PK\x03\x04")
        .map(|start| start + 60)
        .unwrap();
    raw[at] ^= 0xff;
    let problems = verify(Cursor::new(&raw), None).unwrap_err();
    assert!(
        problems
            .iter()
            .any(|p| p.starts_with("case.json: cannot be read from the archive")),
        "{problems:?}"
    );
}

#[tokio::test]
async fn a_missing_file_an_extra_file_and_another_installations_key_are_each_named() {
    let case = Case::open(&[]).await;
    let package = case.export_as_ken().await.unwrap();
    let files = entries(&package.zip);

    let mut fewer = files.clone();
    fewer.remove("timeline.csv");
    let problems = verify(Cursor::new(repack(&fewer)), None).unwrap_err();
    assert_eq!(problems, ["timeline.csv: missing"]);

    let mut more = files.clone();
    more.insert("clips/extra.mp4".into(), b"planted".to_vec());
    let problems = verify(Cursor::new(repack(&more)), None).unwrap_err();
    assert_eq!(
        problems,
        ["clips/extra.mp4: extra file, not in the manifest"]
    );

    // Checked with this installation's key it passes; with another's it is refused, naming the signature.
    let (code, key, err) = case.tillmark(&[
        "evidence",
        "key",
        "--config",
        case.config_file.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "{err}");
    let hex = key
        .lines()
        .find_map(|l| l.strip_prefix("public key (hex):"))
        .unwrap()
        .trim()
        .to_string();
    assert!(key.contains(&package.fingerprint), "{key}");
    let path = case.write("package.zip", &package.zip);
    let (code, out, err) = case.tillmark(&["evidence", "verify", &path, "--key", &hex]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("the key given"), "{out}");
    let other = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
    let (code, _, err) = case.tillmark(&["evidence", "verify", &path, "--key", other]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains(
            "manifest.sig: the signature of manifest.json does not verify with the key given"
        ),
        "{err}"
    );
    let (code, _, err) = case.tillmark(&["evidence", "verify", &path, "--key", "not-a-key"]);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("--key: \"not-a-key\" is not a public key"),
        "{err}"
    );
}

#[tokio::test]
async fn a_clip_over_the_size_limit_is_left_out_and_its_bookmark_keeps_the_link_and_the_window() {
    let small = include_str!("../integrations/frigate.toml")
        .replace("max_size = \"500MB\"", "max_size = \"1KB\"");
    let case = Case::open(&[("frigate.toml", small)]).await;
    let package = case.export_as_ken().await.unwrap();
    let files = entries(&package.zip);
    assert!(
        !files.keys().any(|f| f.starts_with("clips/")),
        "{:?}",
        files.keys()
    );
    let bookmark: Value =
        serde_json::from_slice(&files[&format!("bookmarks/{}.json", case.bookmark)]).unwrap();
    assert_eq!(bookmark["clip"], Value::Null);
    assert_eq!(
        bookmark["clip_note"],
        "clip over 0.001 MB: link and window only"
    );
    assert_eq!(bookmark["window"]["start_ms"], 1_795_254_114_810_i64);
    assert!(
        bookmark["footage"][0]["url"].as_str().is_some(),
        "{bookmark}"
    );
    assert!(verify(Cursor::new(&package.zip), None).is_ok());
}

#[tokio::test]
async fn the_cli_writes_a_package_of_a_case_never_over_another_file_and_none_of_an_event_out_of_reach()
 {
    let case = Case::open(&[]).await;
    let out = case.dir.path().join("case.zip");
    let config = case.config_file.to_str().unwrap();
    let seq = case.seq.to_string();
    let args = [
        "evidence",
        "export",
        "--config",
        config,
        "--case",
        &seq,
        "--out",
        out.to_str().unwrap(),
    ];
    let (code, said, err) = case.tillmark(&args);
    assert_eq!(code, Some(0), "{said}{err}");
    assert!(said.contains("manifest SHA-256"), "{said}");
    let written = std::fs::read(&out).unwrap();
    assert!(verify(Cursor::new(&written), None).is_ok());
    let (code, _, err) = case.tillmark(&args);
    assert_eq!(code, Some(1));
    assert!(err.contains("it must not exist yet"), "{err}");
    assert_eq!(std::fs::read(&out).unwrap(), written, "left as it was");

    // Another store's reader gets the same answer as for an event that does not exist.
    let osaka = StoreScope::Only(vec!["osaka-02".into()]);
    assert!(matches!(
        case.export_in(&osaka).await,
        Err(EvidenceError::NoEvent(_))
    ));
    let other = case.dir.path().join("none.zip");
    let (code, _, err) = case.tillmark(&[
        "evidence",
        "export",
        "--config",
        config,
        "--case",
        "999999",
        "--out",
        other.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(1));
    assert!(err.contains("no event 999999"), "{err}");
    assert!(!other.exists(), "no file for no package");
}

/// What the fake Safie and the host its clip links point at saw.
#[derive(Default)]
struct Safie {
    /// The bodies of clip requests, each with the API key it came with.
    requests: Mutex<Vec<(Value, Option<String>)>>,
    /// Whether each download came with an API key.
    downloads: Mutex<Vec<Option<String>>>,
    /// Where the clip link points: the other host.
    clip_host: Mutex<String>,
}

fn api_key(headers: &axum::http::HeaderMap) -> Option<String> {
    headers
        .get("Safie-API-Key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        axum::Json(json!({"message": "Unauthorized"})),
    )
        .into_response()
}

async fn safie_request(
    State(s): State<Arc<Safie>>,
    UrlPath(device): UrlPath<String>,
    headers: axum::http::HeaderMap,
    axum::Json(body): axum::Json<Value>,
) -> Response {
    let key = api_key(&headers);
    if key.as_deref() != Some(SAFIE_KEY) || device != SAFIE_DEVICE {
        return unauthorized();
    }
    s.requests.lock().unwrap().push((body, key));
    axum::Json(json!({"request_id": 42})).into_response()
}

async fn safie_poll(
    State(s): State<Arc<Safie>>,
    UrlPath((device, id)): UrlPath<(String, String)>,
    headers: axum::http::HeaderMap,
) -> Response {
    if api_key(&headers).as_deref() != Some(SAFIE_KEY) || device != SAFIE_DEVICE || id != "42" {
        return unauthorized();
    }
    let host = s.clip_host.lock().unwrap().clone();
    axum::Json(json!({
        "request_id": 42,
        "state": "AVAILABLE",
        "url": format!("{host}/media/42.mp4?Expires=1795260000&Signature=abc"),
    }))
    .into_response()
}

async fn safie_clip(State(s): State<Arc<Safie>>, headers: axum::http::HeaderMap) -> Response {
    s.downloads.lock().unwrap().push(api_key(&headers));
    ([(header::CONTENT_TYPE, "video/mp4")], clip_bytes()).into_response()
}

/// Safie's API, and the other host its clip links point at. Answers the URLs of both.
async fn fake_safie() -> (String, String, Arc<Safie>) {
    let state = Arc::new(Safie::default());
    let api = axum::Router::new()
        .route(
            "/v2/devices/{device}/media_files/requests",
            post(safie_request),
        )
        .route(
            "/v2/devices/{device}/media_files/requests/{id}",
            get(safie_poll),
        )
        .with_state(state.clone());
    let files = axum::Router::new()
        .route("/media/{file}", get(safie_clip))
        .with_state(state.clone());
    let mut urls = Vec::new();
    for app in [api, files] {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        urls.push(format!("http://{}", listener.local_addr().unwrap()));
        tokio::spawn(async move { axum::serve(listener, app).await });
    }
    *state.clip_host.lock().unwrap() = urls[1].clone();
    (urls[0].clone(), urls[1].clone(), state)
}

fn safie_site(api: &str, allowed: &[&str]) -> String {
    format!(
        r#"
[[camera_systems]]
id = "safie"
integration = "safie"
url = "{api}"
api_key_env = "SAFIE_API_KEY"
allowed_hosts = {allowed:?}
[camera_systems.options]
definition_id = "def-1"

[[cameras]]
system = "safie"
device = "{SAFIE_DEVICE}"
name = "Till (Safie)"
registers = ["shibuya-01/r1"]
"#
    )
}

#[tokio::test]
async fn a_safie_clip_comes_from_the_link_it_answers_on_an_allowed_host_without_the_api_key_and_never_from_another()
 {
    let (api, files, safie) = fake_safie().await;
    let clip_host = files.trim_start_matches("http://").to_string();
    let declared = declaring(&clip_host);
    let site = safie_site(&api, &[clip_host.as_str()]);
    let case = Case::open_on(&declared, &site, ("safie", SAFIE_DEVICE)).await;
    let package = case.export_as_ken().await.unwrap();
    let files_in = entries(&package.zip);
    let clip = format!("clips/{}.mp4", case.bookmark);
    assert_eq!(files_in[&clip], clip_bytes());
    let (body, key) = safie.requests.lock().unwrap()[0].clone();
    assert_eq!(
        body,
        json!({"start": "2026-11-21T18:41:54.810+09:00", "end": "2026-11-21T18:42:52.310+09:00"})
    );
    assert_eq!(key.as_deref(), Some(SAFIE_KEY), "the API gets the key");
    assert_eq!(
        *safie.downloads.lock().unwrap(),
        [None],
        "the clip's own host never sees the key"
    );
    for (name, bytes) in &files_in {
        assert!(
            !String::from_utf8_lossy(bytes).contains(SAFIE_KEY),
            "{name} holds the API key"
        );
    }

    // A link to a host the site does not allow, or the definition does not declare, is not followed: the
    // package keeps the link and the window.
    for (definitions, why) in [
        (true, "refused, so its credentials stay with it"),
        (
            false,
            "a host the safie definition does not declare: not fetched",
        ),
    ] {
        let (api, files, safie) = fake_safie().await;
        let host = files.trim_start_matches("http://").to_string();
        let (declared, allowed) = match definitions {
            true => (declaring(&host), vec![]),
            false => (vec![], vec![host.as_str()]),
        };
        let site = safie_site(&api, &allowed);
        let case = Case::open_on(&declared, &site, ("safie", SAFIE_DEVICE)).await;
        let package = case.export_as_ken().await.unwrap();
        let files_in = entries(&package.zip);
        assert!(!files_in.keys().any(|f| f.starts_with("clips/")));
        let bookmark: Value =
            serde_json::from_slice(&files_in[&format!("bookmarks/{}.json", case.bookmark)])
                .unwrap();
        let note = bookmark["clip_note"].as_str().unwrap();
        assert!(note.contains(why), "{note}");
        assert!(note.ends_with("link and window only"), "{note}");
        assert!(safie.downloads.lock().unwrap().is_empty());
    }
}

/// Safie's definition with `host` declared as where its clip links point, as an integrator would write it.
fn declaring(host: &str) -> Vec<(&'static str, String)> {
    let text = format!(
        "{}\n[hosts]\n\"{host}\" = \"Safie's clip links (media_files requests' url)\"\n",
        include_str!("../integrations/safie.toml")
    );
    vec![("safie.toml", text)]
}
