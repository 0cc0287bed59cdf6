//! The database fails mid-run, its disk full or PostgreSQL stopped: intake pauses without acknowledging
//! anything, `/healthz` says why, and once the database is back everything waiting is stored, each event once.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use crate::support::*;

/// A small tmpfs mounted for the test and unmounted after it. Mounting needs root (CI runs as root); elsewhere
/// the test says it was skipped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(dir).unwrap();
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        mounted.then(|| Tmpfs(dir.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// Something else filling the disk (a runaway log, say): it takes every byte the file system has, and any byte
/// freed later, until stopped; then its file is removed.
struct Filler {
    path: PathBuf,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Filler {
    fn start(path: PathBuf) -> Filler {
        use std::io::Write;
        use std::sync::atomic::Ordering;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut file = std::fs::File::create(&path).unwrap();
        let fill = move |file: &mut std::fs::File| {
            for size in [64 * 1024, 4096, 512, 1] {
                let block = vec![0u8; size];
                while file
                    .write_all(&block)
                    .and_then(|_| file.sync_data())
                    .is_ok()
                {}
            }
        };
        fill(&mut file);
        let thread = std::thread::spawn({
            let stop = stop.clone();
            move || {
                while !stop.load(Ordering::SeqCst) {
                    fill(&mut file);
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        });
        Filler {
            path,
            stop,
            thread: Some(thread),
        }
    }

    fn free(mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
        std::fs::remove_file(&self.path).unwrap();
    }
}

async fn health(base: &str) -> (u16, Value) {
    let response = reqwest::get(format!("{base}/healthz"))
        .await
        .expect("GET /healthz");
    let status = response.status().as_u16();
    (status, response.json().await.expect("JSON"))
}

/// A void with a long receipt, at a register no camera watches: the disk fills in a few hundred of them.
fn void(id: &str) -> Value {
    let mut e = event(id, "void", "r9", AT);
    e["lines"] = (0..40)
        .map(|i| format!("ONIGIRI SALMON {i:>3}                180"))
        .collect();
    e
}

#[tokio::test]
async fn a_full_disk_pauses_intake_without_acknowledging_says_so_on_health_and_loses_nothing_when_freed()
 {
    let site = Site::new();
    let Some(disk) = Tmpfs::mount(&site.dir.path().join("disk"), "8m") else {
        eprintln!("skipped: this machine does not let the test mount a tmpfs (it needs root)");
        return;
    };
    let mut config = site.config(None, "http://127.0.0.1:9/", "");
    config.database.url = format!("sqlite://{}", disk.0.join("tillmark.db").display());
    let (daemon, mut bridge) = start_daemon(config).await;
    let base = web_base(&daemon);
    let topic = site.topic("shibuya-01", "r9");
    for i in 0..10 {
        bridge.publish(&topic, &void(&format!("before-{i}"))).await;
    }
    assert_eq!(health(&base).await.0, 200);

    let filler = Filler::start(disk.0.join("filler"));
    // SQLite first fills the room its files already hold (a checkpointed WAL is written over from its start),
    // then needs more: from there on nothing is stored, so nothing is acknowledged.
    let mut sent = Vec::new();
    loop {
        let id = format!("during-{}", sent.len());
        bridge.publish_unacked(&topic, &void(&id)).await;
        sent.push(id);
        if !bridge.acked_within(Duration::from_secs(2)).await {
            break;
        }
        assert!(sent.len() < 1_500, "the disk never filled up");
    }
    let (status, body) = eventually(
        Duration::from_secs(20),
        "health to name the full disk",
        || {
            let base = base.clone();
            async move {
                let (status, body) = health(&base).await;
                (status == 503).then_some((status, body))
            }
        },
    )
    .await;
    assert_eq!(status, 503, "{body}");
    let problem = &body["database"]["problems"][0];
    assert_eq!(problem["part"], "ingest", "{body}");
    assert_eq!(problem["kind"], "full", "{body}");
    assert!(
        body["status"].as_str().unwrap().contains("disk is full"),
        "{body}"
    );
    let waiting = 5;
    for _ in 1..waiting {
        let id = format!("during-{}", sent.len());
        bridge.publish_unacked(&topic, &void(&id)).await;
        sent.push(id);
    }
    assert!(
        !bridge.acked_within(Duration::from_secs(2)).await,
        "a message was acknowledged while the disk was full"
    );

    filler.free();
    for _ in 0..waiting {
        assert!(
            bridge.acked_within(Duration::from_secs(20)).await,
            "each message is acknowledged once the disk has room"
        );
    }
    let (status, body) = eventually(Duration::from_secs(20), "health to recover", || {
        let base = base.clone();
        async move {
            let (status, body) = health(&base).await;
            (status == 200).then_some((status, body))
        }
    })
    .await;
    assert_eq!(body["database"]["ok"], true, "{status} {body}");
    assert_stored_once(&base, sent).await;
    daemon.shutdown().await;
}

#[tokio::test]
async fn postgresql_stopped_mid_run_pauses_intake_without_acknowledging_and_everything_resumes_when_it_is_back()
 {
    if std::env::var("TILLMARK_TEST_POSTGRES_URL").is_err() {
        eprintln!("skipped: TILLMARK_TEST_POSTGRES_URL is not set");
        return;
    }
    let Some(pg) = crate::private_postgres::PrivatePostgres::start() else {
        eprintln!("skipped: no PostgreSQL server programs (initdb, pg_ctl) on this machine");
        return;
    };
    let site = Site::new();
    let mut config = site.config(None, "http://127.0.0.1:9/", "");
    config.database.url = pg.url();
    let (daemon, mut bridge) = start_daemon(config).await;
    let base = web_base(&daemon);
    let topic = site.topic("shibuya-01", "r9");
    for i in 0..10 {
        bridge.publish(&topic, &void(&format!("before-{i}"))).await;
    }
    assert_eq!(health(&base).await.0, 200);

    assert!(pg.down(), "PostgreSQL stops");
    let mut sent = Vec::new();
    for i in 0..5 {
        let id = format!("during-{i}");
        bridge.publish_unacked(&topic, &void(&id)).await;
        sent.push(id);
    }
    let (_, body) = eventually(
        Duration::from_secs(30),
        "health to say the database is unreachable",
        || {
            let base = base.clone();
            async move {
                let (status, body) = health(&base).await;
                let ingest = body["database"]["problems"]
                    .as_array()?
                    .iter()
                    .any(|p| p["part"] == "ingest" && p["kind"] == "unavailable");
                (status == 503 && ingest).then_some((status, body))
            }
        },
    )
    .await;
    assert!(
        body["status"].as_str().unwrap().contains("unreachable"),
        "{body}"
    );
    assert!(
        !bridge.acked_within(Duration::from_secs(1)).await,
        "a message was acknowledged while PostgreSQL was down"
    );

    assert!(pg.up(), "PostgreSQL starts again");
    for _ in 0..sent.len() {
        assert!(
            bridge.acked_within(Duration::from_secs(30)).await,
            "each message is acknowledged once PostgreSQL is back"
        );
    }
    eventually(Duration::from_secs(30), "health to recover", || {
        let base = base.clone();
        async move { (health(&base).await.0 == 200).then_some(()) }
    })
    .await;
    assert_stored_once(&base, sent).await;
    daemon.shutdown().await;
}

/// The ten events published before the failure and `sent` during it are stored, each once.
async fn assert_stored_once(base: &str, sent: Vec<String>) {
    let events = get_json(&format!("{base}/api/events?limit=1000")).await;
    let mut ids: Vec<&str> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    ids.sort();
    let mut expected: Vec<String> = (0..10).map(|i| format!("before-{i}")).chain(sent).collect();
    expected.sort();
    assert_eq!(ids, expected, "every event stored once");
}
