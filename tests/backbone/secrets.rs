//! A camera system that echoes its credential back in an error, in every form a vendor might: the key reaches
//! no file the daemon writes, no log line, no page, no API answer and no CLI output; what stands there is
//! `[redacted]`.

use std::time::Duration;

use axum::http::StatusCode;
use axum::response::IntoResponse;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::support::*;

/// The webhook's API key: characters that differ between its raw, URL-encoded, base64 and JSON forms.
const KEY: &str = "tok+en/S3cret=&q~42";

/// Every form of [`KEY`] the fake vendor echoes, each of which must be found nowhere.
fn forms() -> Vec<String> {
    let form: String = url::form_urlencoded::byte_serialize(KEY.as_bytes()).collect();
    // As Python's quote writes it: `~` left as it is.
    let quoted = form.replace("%7E", "~");
    vec![KEY.to_string(), form, STANDARD.encode(KEY), quoted]
}

/// A vendor refusing every bookmark with 400, its error and a header quoting the key it was sent.
async fn start_echoing_vendor() -> String {
    let app = axum::Router::new().fallback(|| async {
        let [raw, form, base64, quoted] = <[String; 4]>::try_from(forms()).unwrap();
        (
            StatusCode::BAD_REQUEST,
            [(
                "www-authenticate",
                format!("Bearer error=\"invalid_token\", token=\"{raw}\""),
            )],
            axum::Json(serde_json::json!({
                "error": format!(
                    "api key {raw} is not valid here (as sent: {form}, or {quoted}; decoded from {base64})"
                ),
                "key": raw,
            })),
        )
            .into_response()
    });
    serve(app).await
}

fn leaks(text: &str) -> Option<String> {
    forms().into_iter().find(|f| text.contains(f.as_str()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vendor_echoing_the_key_in_its_error_shows_it_nowhere_the_daemon_stores_logs_or_shows() {
    let vendor = start_echoing_vendor().await;
    let broker = external_broker();
    let site = Site::new();
    let web_port = free_port();
    let text = format!(
        r#"{header}[[camera_systems]]
id = "hook"
integration = "webhook"
url = "{vendor}/bookmarks"
api_key_env = "HOOK_TOKEN"
[[cameras]]
system = "hook"
device = "door-cam"
name = "Door"
registers = ["shibuya-01/r1"]
"#,
        header = site
            .header(&repo_integrations())
            .replace(
                "embedded_listen = \"127.0.0.1:0\"",
                &format!("url = \"{}\"", broker.daemon)
            )
            .replace(
                "listen = \"127.0.0.1:0\"",
                &format!("listen = \"127.0.0.1:{web_port}\"")
            ),
    );
    let config = site.dir.path().join("tillmark.toml");
    std::fs::write(&config, &text).unwrap();
    let log = site.dir.path().join("run.log");
    allow_tests(&site.db_url()).await;
    let mut daemon = spawn_tillmark(&config, &log, &[("HOOK_TOKEN", KEY)]);
    wait_for_log(&log, "Subscribed.").await;
    let mut bridge = Bridge::connect(&broker.registers).await;
    bridge
        .publish(
            &site.topic("shibuya-01", "r1"),
            &event("v-1", "void", "r1", AT),
        )
        .await;

    let base = format!("http://127.0.0.1:{web_port}");
    let failed = eventually(Duration::from_secs(20), "the bookmark to fail", || {
        let url = format!("{base}/api/events");
        async move {
            let events = get_json(&url).await["events"].as_array()?.clone();
            let event = events.first()?.clone();
            (event["bookmarks"][0]["state"] == "failed").then_some(event)
        }
    })
    .await;
    let error = failed["bookmarks"][0]["last_error"].as_str().unwrap();
    assert!(
        error.contains("HTTP 400") && error.contains("api key [redacted] is not valid here"),
        "the vendor's words, its key blanked: {error}"
    );
    let shown = [
        get_text(&format!("{base}/api/events")).await,
        get_text(&format!("{base}/events/{}", failed["seq"])).await,
        get_text(&format!("{base}/integrations")).await,
    ];
    daemon.kill().expect("SIGKILL");
    let _ = daemon.wait();

    // The integrator's probe prints every exchange and the outcome.
    let probe = std::process::Command::new(env!("CARGO_BIN_EXE_tillmark"))
        .args(["integrations", "test", "--camera", "Door", "--config"])
        .arg(&config)
        .env("HOOK_TOKEN", KEY)
        .output()
        .expect("run tillmark");
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&probe.stdout),
        String::from_utf8_lossy(&probe.stderr)
    );
    assert!(printed.contains("[redacted]"), "{printed}");

    for (what, text) in [
        ("the API", &shown[0]),
        ("the event page", &shown[1]),
        ("the integrations page", &shown[2]),
        ("integrations test", &printed),
    ] {
        assert_eq!(leaks(text), None, "{what} shows the key");
    }
    for entry in std::fs::read_dir(site.dir.path()).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            let bytes = String::from_utf8_lossy(&std::fs::read(&path).unwrap()).into_owned();
            assert_eq!(leaks(&bytes), None, "{} holds the key", path.display());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_to_another_origin_is_not_followed_and_one_within_the_origin_is() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    // Another server, counting every request that reaches it: none may, or the key would go with it.
    let reached = Arc::new(AtomicUsize::new(0));
    let counter = reached.clone();
    let elsewhere = serve(axum::Router::new().fallback(move || {
        counter.fetch_add(1, Ordering::SeqCst);
        async {
            (
                StatusCode::CREATED,
                axum::Json(serde_json::json!({"id": 9})),
            )
        }
    }))
    .await;
    let away = format!("{elsewhere}/bookmarks?token=abcd1234");
    let app = axum::Router::new()
        .route(
            "/moved",
            axum::routing::post(move || {
                let away = away.clone();
                async move { (StatusCode::TEMPORARY_REDIRECT, [("location", away)]).into_response() }
            }),
        )
        .route(
            "/hop",
            axum::routing::post(|| async {
                (StatusCode::TEMPORARY_REDIRECT, [("location", "/bookmarks")]).into_response()
            }),
        )
        .route(
            "/bookmarks",
            axum::routing::post(|| async {
                (StatusCode::CREATED, axum::Json(serde_json::json!({"id": 7})))
            }),
        );
    let vendor = serve(app).await;
    let site = Site::new();
    let config = site.config_in(
        &repo_integrations(),
        &format!(
            r#"[[camera_systems]]
id = "moved"
integration = "webhook"
url = "{vendor}/moved"
api_key_env = "HOOK_TOKEN"
[[camera_systems]]
id = "hop"
integration = "webhook"
url = "{vendor}/hop"
api_key_env = "HOOK_TOKEN"
[[cameras]]
system = "moved"
device = "door-cam"
registers = ["shibuya-01/r1"]
[[cameras]]
system = "hop"
device = "till-cam"
registers = ["shibuya-01/r2"]
"#
        ),
        &[("HOOK_TOKEN", KEY)],
    );
    let (daemon, mut bridge) = start_daemon(config).await;
    bridge
        .publish(
            &site.topic("shibuya-01", "r1"),
            &event("v-away", "void", "r1", AT),
        )
        .await;
    bridge
        .publish(
            &site.topic("shibuya-01", "r2"),
            &event("v-hop", "void", "r2", AT),
        )
        .await;

    let away = settled_bookmarks_of(&daemon, "v-away").await.remove(0);
    assert_eq!(away["state"], "failed", "{away}");
    let error = away["last_error"].as_str().unwrap();
    assert!(
        error.contains(&format!(
            "sends its requests on to {elsewhere}, another origin"
        )),
        "{error}"
    );
    assert!(
        !error.contains("abcd1234"),
        "the address's query is not repeated: {error}"
    );
    assert_eq!(
        reached.load(Ordering::SeqCst),
        0,
        "nothing reached the other origin"
    );

    let hop = settled_bookmarks_of(&daemon, "v-hop").await.remove(0);
    assert_eq!(
        hop["state"], "made",
        "a redirect within the origin is followed: {hop}"
    );
    daemon.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_definition_sending_to_a_second_host_is_refused_unless_the_config_allows_that_host() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let reached = Arc::new(AtomicUsize::new(0));
    let counter = reached.clone();
    let collector = serve(axum::Router::new().fallback(move || {
        counter.fetch_add(1, Ordering::SeqCst);
        async {
            (
                StatusCode::CREATED,
                axum::Json(serde_json::json!({"id": 3})),
            )
        }
    }))
    .await;
    // The system's own server is never asked: the definition sends its bookmarks to the collector instead.
    let own = serve(axum::Router::new()).await;
    let site = Site::new();
    let dir = site.dir.path().join("integrations");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("exfil.toml"),
        r#"name = "exfil"
[auth]
scheme = "bearer"
[create]
url = "{{ options.collector }}/bookmarks"
body = '{"key": {{ key | tojson }}}'
"#,
    )
    .unwrap();
    let systems = |allowed: &str| {
        format!(
            r#"[[camera_systems]]
id = "hook"
integration = "exfil"
url = "{own}"
api_key_env = "HOOK_TOKEN"
{allowed}
[camera_systems.options]
collector = "{collector}"
[[cameras]]
system = "hook"
device = "door-cam"
registers = ["shibuya-01/r1"]
"#
        )
    };
    let config = site.config_in(&dir, &systems(""), &[("HOOK_TOKEN", KEY)]);
    let (daemon, mut bridge) = start_daemon(config).await;
    bridge
        .publish(
            &site.topic("shibuya-01", "r1"),
            &event("v-1", "void", "r1", AT),
        )
        .await;
    let b = settled_bookmarks(&daemon).await.remove(0);
    daemon.shutdown().await;
    assert_eq!(b["state"], "failed", "{b}");
    let error = b["last_error"].as_str().unwrap();
    assert!(
        error.contains(&format!(
            "would go to {collector}, not to camera system hook's own {own}"
        )) && error.contains("allowed_hosts"),
        "{error}"
    );
    assert_eq!(
        reached.load(Ordering::SeqCst),
        0,
        "nothing, and no key, reached the other host"
    );

    // The operator decides the collector is the vendor's: the config allows its host.
    let host = collector.trim_start_matches("http://");
    let config = site.config_in(
        &dir,
        &systems(&format!("allowed_hosts = [\"{host}\"]")),
        &[("HOOK_TOKEN", KEY)],
    );
    let (daemon, mut bridge) = start_daemon(config).await;
    bridge
        .publish(
            &site.topic("shibuya-01", "r1"),
            &event("v-2", "void", "r1", AT),
        )
        .await;
    let b = settled_bookmarks_of(&daemon, "v-2").await.remove(0);
    assert_eq!(b["state"], "made", "{b}");
    assert_eq!(reached.load(Ordering::SeqCst), 1);
    daemon.shutdown().await;
}
