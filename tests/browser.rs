//! The index as a person uses it, in headless Chromium: the real binary with its embedded broker, SQLite file
//! and a fake Nx Witness, people made with `tillmark user add`, events published over MQTT, then the node
//! tests in tests/browser drive Chromium through sign-in, search, footage links, the shortage timeline and its
//! CSV, store scopes and the phone and tablet layouts.
//!
//! Runs only when `TILLMARK_TEST_CHROMIUM` names a Chromium binary (CI sets it): `cargo test` on a machine
//! without node or Chromium passes without it.

// Shared with the backbone tests, which use the parts this one does not.
#[allow(dead_code)]
#[path = "backbone/fake_nx.rs"]
mod fake_nx;
#[allow(dead_code)]
#[path = "backbone/support.rs"]
mod support;
#[path = "test_database/mod.rs"]
mod test_database;

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::Uri;
use serde_json::{Value, json};
use tillmark::config::BrokerUrl;

use fake_nx::FakeNx;
use support::{Bridge, NX_PASSWORD, Site, eventually, free_port, tokyo, wait_for_log};

const CAM_SHIBUYA: &str = "0b8c3a52-6d1e-4a53-9d55-51d1b0cfa1e2";
const CAM_OSAKA: &str = "7d2e1f00-1111-4a53-9d55-51d1b0cfa1e3";
/// A second camera on Shibuya's r1, so its timeline rows and event pages show two cameras by name.
const CAM_SHIBUYA_DOOR: &str = "3f9a6c10-2222-4a53-9d55-51d1b0cfa1e4";
const OWNER: (&str, &str) = ("aiko", "correct horse battery staple");
const INVESTIGATOR: (&str, &str) = ("ken", "ken's own long passphrase");
const PRE_ROLL_MS: i64 = 10_000;
const MINUTE_MS: i64 = 60_000;

/// Where a footage link lands: it stands in for the vendor's web viewer and tells what it was asked for, so the
/// browser tests can check that the link carried the bookmark's device and moment.
async fn start_landing() -> String {
    type Seen = Arc<Mutex<Vec<String>>>;
    async fn view(State(seen): State<Seen>, uri: Uri) -> axum::response::Html<&'static str> {
        seen.lock().unwrap().push(uri.to_string());
        axum::response::Html("<!doctype html><title>viewer</title><p>footage</p>")
    }
    async fn seen(State(seen): State<Seen>) -> axum::Json<Vec<String>> {
        axum::Json(seen.lock().unwrap().clone())
    }
    let app = axum::Router::new()
        .route("/seen", axum::routing::get(seen))
        .fallback(view)
        .with_state(Seen::default());
    support::serve(app).await
}

/// Runs `tillmark ARGS --config FILE` with `stdin` fed in, and returns what it printed; panics if it failed.
fn tillmark(config: &Path, args: &[&str], stdin: &str) -> String {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tillmark"))
        .args(args)
        .arg("--config")
        .arg(config)
        .env("TEST_NX_PASSWORD", NX_PASSWORD)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run tillmark");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "tillmark {args:?}: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn config_text(site: &Site, broker_port: u16, web_port: u16, nx: &str, landing: &str) -> String {
    format!(
        r#"
[mqtt]
embedded_listen = "127.0.0.1:{broker_port}"
client_id = "{client}"
topics = ["{root}/+/+/events"]

[database]
url = "{db}"

[web]
listen = "127.0.0.1:{web_port}"

[delivery]
retry = ["100ms", "200ms", "400ms"]
timeout = "2s"

# The tests' register times are fixed: keep them believable for years to come.
[intake]
max_age = "3650d"

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
url = "{nx}"
username = "tillmark"
password_env = "TEST_NX_PASSWORD"
web_viewer_url = "{landing}/view/{{{{ device }}}}?time={{{{ start_ms }}}}"

[[cameras]]
system = "nvr"
device = "{CAM_SHIBUYA}"
name = "Shibuya counter"
registers = ["shibuya-01/r1", "shibuya-01/r2"]

[[cameras]]
system = "nvr"
device = "{CAM_SHIBUYA_DOOR}"
name = "Shibuya door"
registers = ["shibuya-01/r1"]

[[cameras]]
system = "nvr"
device = "{CAM_OSAKA}"
name = "Osaka counter"
registers = ["osaka-02/r1"]
"#,
        client = site.client_id,
        root = site.topic_root,
        db = site.db_url(),
    )
}

/// One event per the contract; `extra` adds or replaces fields.
fn event(id: &str, kind: &str, store: &str, register: &str, at_ms: i64, extra: Value) -> Value {
    let mut e = json!({
        "id": id, "type": kind, "at": tokyo(at_ms), "store": store, "register": register,
        "cashier": if store == "osaka-02" { "c-osaka-9" } else { "c117" },
    });
    e.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    e
}

/// A Tokyo wall-clock time as a `datetime-local` input takes it, to the second.
fn tokyo_input(ms: i64) -> String {
    tokyo(ms)[..19].to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_index_works_in_a_real_browser_on_a_phone_and_a_tablet() {
    let Some(chromium) = std::env::var_os("TILLMARK_TEST_CHROMIUM").filter(|c| !c.is_empty())
    else {
        eprintln!(
            "browser tests skipped: set TILLMARK_TEST_CHROMIUM to a Chromium binary to run them"
        );
        return;
    };

    let nx = FakeNx::start(&[CAM_SHIBUYA, CAM_SHIBUYA_DOOR, CAM_OSAKA]).await;
    let landing = start_landing().await;
    let site = Site::new();
    let (broker_port, web_port) = (free_port(), free_port());
    let config = site.dir.path().join("tillmark.toml");
    std::fs::write(
        &config,
        config_text(&site, broker_port, web_port, &nx.url, &landing),
    )
    .unwrap();

    tillmark(
        &config,
        &[
            "user",
            "add",
            OWNER.0,
            "--role",
            "owner",
            "--password-stdin",
        ],
        &format!("{}\n", OWNER.1),
    );
    tillmark(
        &config,
        &[
            "user",
            "add",
            INVESTIGATOR.0,
            "--role",
            "investigator",
            "--stores",
            "shibuya-01",
            "--password-stdin",
        ],
        &format!("{}\n", INVESTIGATOR.1),
    );
    let printed = tillmark(&config, &["token", "create", OWNER.0], "");
    let token = printed
        .split_whitespace()
        .find(|w| w.starts_with("tm_"))
        .unwrap_or_else(|| panic!("no token in {printed}"))
        .to_string();

    let log = site.dir.path().join("tillmark.log");
    // Killed when dropped, however the test ends.
    let _daemon = support::spawn_tillmark(&config, &log, &[("TEST_NX_PASSWORD", NX_PASSWORD)]);
    wait_for_log(&log, "Embedded MQTT broker listening.").await;
    let base = format!("http://127.0.0.1:{web_port}");
    let http = reqwest::Client::new();
    eventually(Duration::from_secs(15), "the index to answer", || async {
        let r = http.get(format!("{base}/healthz")).send().await.ok()?;
        r.status().is_success().then_some(())
    })
    .await;

    // Half an hour ago, within the timeline's default day and its two weeks of shifts; on the minute, so each
    // event's time reads plainly in a failure.
    let t0 = (tillmark::clock::now_ms() - 30 * MINUTE_MS) / MINUTE_MS * MINUTE_MS + 310;
    let at = |minutes: i64| t0 + minutes * MINUTE_MS;
    let events = [
        event("sign-on", "sign_on", "shibuya-01", "r1", at(0), json!({})),
        event(
            "sale",
            "sale",
            "shibuya-01",
            "r1",
            at(1),
            json!({"transaction": "T-1001", "amount": 1280, "currency": "JPY",
                   "lines": ["ONIGIRI SALMON      180", "GREEN TEA 500ML     150"]}),
        ),
        event(
            "no-sale",
            "no_sale",
            "shibuya-01",
            "r1",
            at(2),
            json!({"reason": "両替"}),
        ),
        event(
            "void-script",
            "void",
            "shibuya-01",
            "r1",
            at(3),
            json!({"transaction": "T-1002", "amount": 980, "currency": "JPY",
                   "reason": "customer changed mind",
                   "lines": ["<script>alert(1)</script>", "*** VOID ***"]}),
        ),
        event(
            "refund",
            "refund",
            "shibuya-01",
            "r1",
            at(4),
            json!({"transaction": "T-1003", "amount": 1500, "currency": "JPY",
                   "reason": "返品 お客様都合", "lines": ["返品 GREEN TEA 500ML 150"]}),
        ),
        event(
            "item-void",
            "item_void",
            "shibuya-01",
            "r1",
            at(5),
            json!({"transaction": "T-1004", "amount": 150, "currency": "JPY"}),
        ),
        event(
            "r2-void",
            "void",
            "shibuya-01",
            "r2",
            at(6),
            json!({"transaction": "T-1005", "amount": 2400, "currency": "JPY"}),
        ),
        event(
            "osaka-void",
            "void",
            "osaka-02",
            "r1",
            at(7),
            json!({"transaction": "T-OSAKA-77", "amount": 3300, "currency": "JPY"}),
        ),
        event(
            "osaka-refund",
            "refund",
            "osaka-02",
            "r1",
            at(8),
            json!({"transaction": "T-OSAKA-78", "amount": 700, "currency": "JPY",
                   "reason": "返品 破損"}),
        ),
    ];
    let broker = BrokerUrl::plain(format!("127.0.0.1:{broker_port}").parse().unwrap());
    let mut bridge = Bridge::connect(&broker).await;
    for e in &events {
        bridge.publish_as_register(&site, e).await;
    }

    // Every event stored and every bookmark made, so the pages show their final state.
    let api = format!("{base}/api/events?limit=100");
    let seqs: HashMap<String, i64> = eventually(
        Duration::from_secs(20),
        "the events to be indexed and bookmarked",
        || async {
            let list: Value = http
                .get(&api)
                .bearer_auth(&token)
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            let list = list["events"].as_array()?;
            let settled = list.len() == events.len()
                && list.iter().all(|e| {
                    e["bookmarks"]
                        .as_array()
                        .is_some_and(|b| b.iter().all(|b| b["state"] == "made"))
                });
            settled.then(|| {
                list.iter()
                    .map(|e| {
                        (
                            e["id"].as_str().unwrap().to_string(),
                            e["seq"].as_i64().unwrap(),
                        )
                    })
                    .collect()
            })
        },
    )
    .await;
    let seq = |id: &str| seqs[id];
    let timeline_seqs = ["sign-on", "no-sale", "void-script", "refund", "item-void"].map(seq);

    let fixture = json!({
        "base": base,
        "landing": landing,
        "owner": {"name": OWNER.0, "password": OWNER.1},
        "investigator": {"name": INVESTIGATOR.0, "password": INVESTIGATOR.1},
        "seqs": seqs,
        "footage": {
            "seq": seq("refund"),
            "path": format!("/view/{CAM_SHIBUYA}?time={}", at(4) - PRE_ROLL_MS),
        },
        "timeline": {
            "store": "shibuya-01",
            "register": "r1",
            // Off the minute: a browser leaves out ":00" seconds of a datetime-local value.
            "from": tokyo_input(at(-1) - 30_000),
            "to": tokyo_input(at(10) + 30_000),
            "seqs": timeline_seqs,
            "csv_types": ["no_sale", "void", "refund", "item_void"],
            // Both watch r1: every cash line of its timeline has footage of each, named.
            "cameras": ["Shibuya counter", "Shibuya door"],
        },
        "other_store": {
            "id": "osaka-02",
            "seqs": [seq("osaka-void"), seq("osaka-refund")],
        },
    });

    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    if !dir.join("node_modules").exists() {
        let npm = tokio::process::Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&dir)
            .status()
            .await
            .expect("run npm ci in tests/browser");
        assert!(npm.success(), "npm ci in tests/browser failed");
    }
    let run = tokio::process::Command::new("node")
        .arg("--test")
        .current_dir(&dir)
        .env("TILLMARK_TEST_CHROMIUM", &chromium)
        .env("TILLMARK_TEST_FIXTURE", fixture.to_string())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(300), run)
        .await
        .expect("the browser tests finish within 5 minutes")
        .expect("run node --test in tests/browser");
    eprintln!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if !out.status.success() {
        // The temporary directory goes with the test: what the daemon warned of has to be shown now.
        let log = std::fs::read_to_string(&log).unwrap_or_default();
        let warnings: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("WARN") || l.contains("ERROR"))
            .collect();
        panic!(
            "the browser tests failed (their output is above); the daemon's warnings and errors:\n{}",
            warnings.join("\n")
        );
    }
}
