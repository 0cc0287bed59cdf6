//! `tillmark integrations test --camera ID`, the real binary against the fake Nx server: one test bookmark
//! made now, every exchange printed with the secrets blanked, and the exit status telling the integrator
//! whether the wiring works.

use std::process::Command;

use crate::fake_nx::FakeNx;
use crate::support::*;

fn run_probe(site: &Site, nx_url: &str, camera: &str) -> (bool, String, String) {
    let path = site.dir.path().join("tillmark.toml");
    std::fs::write(&path, site.config_text(None, nx_url, "")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_tillmark"))
        .args(["integrations", "test", "--camera", camera, "--config"])
        .arg(&path)
        .env("TEST_NX_PASSWORD", NX_PASSWORD)
        .output()
        .expect("run tillmark");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_test_bookmark_is_made_now_and_every_exchange_is_shown_without_secrets() {
    let nx = FakeNx::start(&[CAM1]).await;
    let site = Site::new();
    let url = nx.url.clone();
    let before = chrono::Utc::now().timestamp_millis();
    let (ok, out, err) = tokio::task::spawn_blocking(move || run_probe(&site, &url, "Counter 1"))
        .await
        .unwrap();
    let after = chrono::Utc::now().timestamp_millis();
    assert!(ok, "exit status; stdout:\n{out}\nstderr:\n{err}");
    assert!(
        out.starts_with("Test bookmark on camera Counter 1 (system nvr, definition nx-witness)"),
        "{out}"
    );
    assert!(
        out.contains("--- Nx Witness login\n> POST http://"),
        "{out}"
    );
    assert!(out.contains("/rest/v4/login/sessions"), "{out}");
    assert!(
        out.contains(r#""password":"[redacted]""#),
        "the password is blanked: {out}"
    );
    assert!(
        out.contains("--- Nx Witness create\n> POST http://"),
        "{out}"
    );
    assert!(out.contains("> authorization: [redacted]"), "{out}");
    assert!(out.contains("< HTTP 200 OK"), "{out}");
    assert!(!out.contains(NX_PASSWORD), "no secret in the output: {out}");
    // The session token in the login answer is a credential too.
    assert!(out.contains(r#""token":"[redacted]""#), "{out}");
    assert!(!out.contains("vms-"), "the fake's tokens start vms-: {out}");
    let last = out.lines().last().unwrap();
    assert!(
        last.starts_with("Made: created (HTTP 200); vendor id "),
        "{last}"
    );
    // The fake server holds the one test bookmark, at this moment less the default 10 s pre-roll.
    let stored = nx.bookmarks();
    assert_eq!(stored.len(), 1);
    let b = &stored[0];
    assert_eq!(b.device, CAM1);
    assert!(b.name.starts_with("TEST · "), "{}", b.name);
    assert_eq!(b.duration_ms, 30_000);
    assert!(
        (before - 10_000..=after - 10_000).contains(&b.start_ms),
        "start {} within [{}, {}]",
        b.start_ms,
        before - 10_000,
        after - 10_000
    );
    assert!(last.ends_with(&b.id), "{last} names {}", b.id);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_camera_the_vendor_does_not_know_fails_with_its_words_and_exit_1() {
    let nx = FakeNx::start(&[CAM1]).await;
    let site = Site::new();
    let url = nx.url.clone();
    let (ok, out, _) = tokio::task::spawn_blocking(move || run_probe(&site, &url, "Counter 2"))
        .await
        .unwrap();
    assert!(!ok, "exit 1 when not made: {out}");
    let last = out.lines().last().unwrap();
    assert!(
        last.starts_with(&format!(
            "Failed: Nx Witness has no camera \"{CAM2}\" (HTTP 404 Not Found): "
        )),
        "{last}"
    );
    assert!(nx.bookmarks().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_camera_id_lists_the_cameras_there_are() {
    let site = Site::new();
    let (ok, _, err) =
        tokio::task::spawn_blocking(move || run_probe(&site, "http://127.0.0.1:9", "Till 9"))
            .await
            .unwrap();
    assert!(!ok);
    assert!(
        err.contains(
            "no camera \"Till 9\" in the config; cameras: Counter 1 (nvr), Counter 2 (nvr)"
        ),
        "{err}"
    );
}
