//! The `tillmark` binary as an operator runs it: `check-config` on good, bad and missing files, the
//! `TILLMARK_CONFIG` variable, and `dead-letters` on a fresh and on a used database.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use tillmark::store::{self, Intake};

const GOOD: &str = r#"[mqtt]
url = "mqtt://127.0.0.1:1883"
client_id = "tillmark"
topics = ["pos/+/+/events"]
[web]
listen = "127.0.0.1:8080"
[bookmarks]
types = ["void", "item_void", "correction", "refund", "no_sale", "drawer_open", "paid_out"]
pre_roll = "10s"
post_roll = "20s"
[[stores]]
id = "shibuya-01"
name = "Shibuya"
timezone = "Asia/Tokyo"
[[camera_systems]]
id = "nvr"
integration = "nx-witness"
url = "https://192.0.2.10:7001"
username = "tillmark"
password_env = "NX_PASSWORD"
[[cameras]]
system = "nvr"
device = "0b8c3a52-6d1e-4a53-9d55-51d1b0cfa1e2"
name = "Counter 1"
registers = ["shibuya-01/r1", "shibuya-01/r2"]
"#;

/// Seven errors: a public listen address, a unit-less duration, a misspelt key, a store without a time zone,
/// and a camera system without id or url whose integration does not exist.
const BAD: &str = r#"[web]
listen = "0.0.0.0:8080"
[bookmarks]
pre_roll = "10"
colour = "blue"
[[stores]]
id = "shibuya-01"
[[camera_systems]]
integration = "Milestone XYZ"
"#;

const NX_PASSWORD: &str = "nx-pass-7f3a9c";

/// `tillmark` with none of the caller's configuration leaking in, run from `dir`.
fn tillmark(dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tillmark"));
    cmd.current_dir(dir)
        .env_remove("TILLMARK_CONFIG")
        .env_remove("NX_PASSWORD")
        .env("RUST_LOG", "warn");
    cmd
}

fn run(cmd: &mut Command) -> (Option<i32>, String, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = cmd.output().expect("tillmark runs");
    (
        status.code(),
        String::from_utf8_lossy(&stdout).into_owned(),
        String::from_utf8_lossy(&stderr).into_owned(),
    )
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write the config file");
    path
}

#[test]
fn check_config_on_a_file_with_mistakes_exits_1_and_prints_every_error_with_its_path_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "bad.toml", BAD);
    let (code, stdout, stderr) = run(tillmark(dir.path())
        .args(["check-config", "--config"])
        .arg(&file));
    assert_eq!(code, Some(1), "stderr: {stderr}");
    assert_eq!(stdout, "");
    assert_eq!(
        stderr,
        format!(
            "{} has 7 errors:
  - web.listen (line 2): 0.0.0.0:8080 is reachable from other machines, and sign-in passwords must not cross a network in clear: set tls_cert and tls_key, or behind_proxy = true behind a TLS reverse proxy
  - bookmarks.pre_roll (line 4): \"10\" has no unit: write it like \"10s\", \"250ms\", \"2m\" or \"1h\"
  - bookmarks.colour (line 5): unknown key; expected one of: drawer_open_explained_within, post_roll, pre_roll, types
  - stores[0].timezone (line 6): is required
  - camera_systems[0].id (line 8): is required
  - camera_systems[0].url (line 8): is required
  - camera_systems[0].integration (line 9): \"Milestone XYZ\" is not an integration name: use a definition's name (a-z, 0-9, -), such as nx-witness or webhook
",
            file.display()
        )
    );
}

#[test]
fn check_config_on_a_good_file_exits_0_and_says_it_is_valid_with_a_summary() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "tillmark.toml", GOOD);
    let (code, stdout, stderr) = run(tillmark(dir.path())
        .env("NX_PASSWORD", NX_PASSWORD)
        .args(["check-config", "--config"])
        .arg(&file));
    assert_eq!(code, Some(0), "stderr: {stderr}");
    assert!(
        stdout.starts_with(&format!("{} is valid.\n", file.display())),
        "{stdout}"
    );
    assert!(
        stdout.contains("broker: mqtt://127.0.0.1:1883 (topics: pos/+/+/events)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("database: sqlite://tillmark.db"),
        "{stdout}"
    );
    assert!(
        stdout.contains("web index: http://127.0.0.1:8080/"),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "bookmarks: void, item_void, correction, refund, no_sale, drawer_open, paid_out \
             (pre-roll 10s, post-roll 20s)"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains("stores: 1, camera systems: 1, cameras: 1"),
        "{stdout}"
    );
    assert!(!stdout.contains(NX_PASSWORD) && !stderr.contains(NX_PASSWORD));
}

#[test]
fn check_config_without_the_password_variable_names_the_variable_to_set() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "tillmark.toml", GOOD);
    let (code, _, stderr) = run(tillmark(dir.path())
        .args(["check-config", "--config"])
        .arg(&file));
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains(
            "camera_systems[0].password_env (line 20): environment variable NX_PASSWORD is not set"
        ),
        "{stderr}"
    );
}

#[test]
fn check_config_reads_the_file_named_by_tillmark_config() {
    let dir = tempfile::tempdir().unwrap();
    let bad = write(dir.path(), "bad.toml", BAD);
    let (code, _, stderr) = run(tillmark(dir.path())
        .env("TILLMARK_CONFIG", &bad)
        .arg("check-config"));
    assert_eq!(code, Some(1));
    assert!(
        stderr.starts_with(&format!("{} has 7 errors:", bad.display())),
        "{stderr}"
    );

    let good = write(dir.path(), "good.toml", GOOD);
    let (code, stdout, stderr) = run(tillmark(dir.path())
        .env("TILLMARK_CONFIG", &good)
        .env("NX_PASSWORD", NX_PASSWORD)
        .arg("check-config"));
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stdout.starts_with(&format!("{} is valid.", good.display())),
        "{stdout}"
    );
}

#[test]
fn the_config_flag_wins_over_tillmark_config() {
    let dir = tempfile::tempdir().unwrap();
    let bad = write(dir.path(), "bad.toml", BAD);
    let good = write(dir.path(), "good.toml", GOOD);
    let (code, stdout, stderr) = run(tillmark(dir.path())
        .env("TILLMARK_CONFIG", &bad)
        .env("NX_PASSWORD", NX_PASSWORD)
        .args(["check-config", "--config"])
        .arg(&good));
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.starts_with(&format!("{} is valid.", good.display())));
}

#[test]
fn check_config_without_a_file_validates_the_embedded_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let (code, stdout, stderr) = run(tillmark(dir.path()).arg("check-config"));
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stdout.starts_with("the embedded defaults is valid."),
        "{stdout}"
    );
    assert!(
        stdout.contains("broker: embedded, on 127.0.0.1:1883"),
        "{stdout}"
    );
    assert!(
        stdout.contains("stores: 0, camera systems: 0, cameras: 0"),
        "{stdout}"
    );
}

#[test]
fn check_config_on_a_missing_file_exits_1_saying_it_cannot_read_it() {
    let dir = tempfile::tempdir().unwrap();
    let (code, stdout, stderr) =
        run(tillmark(dir.path()).args(["check-config", "--config", "/nonexistent"]));
    assert_eq!(code, Some(1));
    assert_eq!(stdout, "");
    assert!(
        stderr.starts_with("/nonexistent has 1 error:\n  - cannot read it: "),
        "{stderr}"
    );
}

#[test]
fn check_config_on_a_toml_syntax_error_gives_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "broken.toml", "[mqtt]\nclient_id = tillmark\n");
    let (code, _, stderr) = run(tillmark(dir.path())
        .args(["check-config", "--config"])
        .arg(&file));
    assert_eq!(code, Some(1));
    assert!(
        stderr.starts_with(&format!("{} has 1 error:\n  - line 2: ", file.display())),
        "{stderr}"
    );
}

#[test]
fn check_config_and_run_name_a_key_the_vendor_definition_needs_with_the_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let text = GOOD.replace("password_env = \"NX_PASSWORD\"\n", "");
    let file = write(dir.path(), "tillmark.toml", &text);
    let header = text
        .lines()
        .position(|l| l == "[[camera_systems]]")
        .expect("GOOD has a camera system")
        + 1;
    let expected = format!(
        "{} has 1 error:\n  - camera_systems[0].password_env (line {header}): is required by the nx-witness \
         definition (login auth)\n",
        file.display()
    );
    for command in ["check-config", "run"] {
        let (code, stdout, stderr) =
            run(tillmark(dir.path()).args([command, "--config"]).arg(&file));
        assert_eq!(code, Some(1), "{command}: {stdout}");
        assert_eq!(stderr, expected, "{command}");
    }
    assert!(
        !dir.path().join("tillmark.db").exists(),
        "run refused before opening the database"
    );
}

fn database_config(dir: &Path) -> (PathBuf, String) {
    let url = format!("sqlite://{}", dir.join("x.db").display());
    let file = write(
        dir,
        "tillmark.toml",
        &format!("[database]\nurl = \"{url}\"\n"),
    );
    (file, url)
}

#[test]
fn dead_letters_on_an_empty_database_says_there_are_none() {
    let dir = tempfile::tempdir().unwrap();
    let (file, _) = database_config(dir.path());
    let (code, stdout, stderr) = run(tillmark(dir.path())
        .args(["dead-letters", "--config"])
        .arg(&file));
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(stdout, "No rejected messages.\n");
}

#[tokio::test]
async fn dead_letters_lists_a_rejected_message_with_its_reason_and_masked_payload() {
    let dir = tempfile::tempdir().unwrap();
    let (file, url) = database_config(dir.path());
    let payload = br#"{"id":"e-9","type":"voided","at":"2026-11-21T18:42:07.310","store":"shibuya-01","register":"r2","lines":["VISA 4111111111111111"]}"#;
    let parsed = tillmark::event::parse(payload);
    let reason = parsed.result.expect_err("a bad message").reason();
    let db = store::open(&url).await.expect("open the database");
    db.ingest(
        &[Intake::DeadLetter {
            topic: "pos/shibuya-01/r2/events".into(),
            received_ms: 1_795_254_127_310,
            reason,
            raw: parsed.raw,
            size: payload.len() as u64,
            sha256: store::sha256_hex(payload),
        }],
        1_795_254_127_310,
    )
    .await
    .expect("write the dead letter");
    db.close().await;

    let (code, stdout, stderr) = tokio::task::spawn_blocking(move || {
        run(tillmark(dir.path())
            .args(["dead-letters", "--config"])
            .arg(&file))
    })
    .await
    .unwrap();
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("pos/shibuya-01/r2/events"), "{stdout}");
    assert!(
        stdout.contains("reason: type: unknown type \"voided\""),
        "{stdout}"
    );
    assert!(
        stdout.contains("at: \"2026-11-21T18:42:07.310\" has no UTC offset"),
        "{stdout}"
    );
    assert!(stdout.contains("VISA 411111******1111"), "{stdout}");
    assert!(!stdout.contains("4111111111111111"), "{stdout}");
    assert!(!stdout.contains("No rejected messages."));
}

/// `tillmark integrations check --dir DIR`, with no config around.
fn integrations_check(dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tillmark"))
        .args(["integrations", "check", "--dir"])
        .arg(dir)
        .env_remove("TILLMARK_CONFIG")
        .output()
        .unwrap()
}

#[test]
fn integrations_check_lists_good_definitions_and_every_error_in_a_broken_one_with_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("acme-vms.toml"),
        "name = \"acme-vms\"\n[create]\nurl = \"{{ system.url }}\"\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("broken.toml"),
        "name = \"broken\"\nmoment = \"sometime\"\n[create]\nurl = \"{{ system.url }\"\nretry = [999]\n",
    )
    .unwrap();
    let out = integrations_check(dir.path());
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("webhook") && text.contains("built in"),
        "{text}"
    );
    assert!(
        text.contains("acme-vms") && text.contains("acme-vms.toml"),
        "{text}"
    );
    let broken = dir.path().join("broken.toml").display().to_string();
    assert!(
        text.contains(&format!("{broken}:2: moment: \"sometime\" is not a moment")),
        "{text}"
    );
    assert!(
        text.contains(&format!("{broken}:4: create.url: template error")),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "{broken}:5: create.retry[0]: expected an integer from 100 to 599"
        )),
        "{text}"
    );
}

/// Runs `cmd` with `stdin` fed in; its exit code, stdout and stderr.
fn with_stdin(cmd: &mut Command, stdin: &str) -> (Option<i32>, String, String) {
    use std::io::Write;
    let mut child = cmd
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run tillmark");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs `tillmark ARGS --config tillmark.toml` in `dir` with `stdin` fed in.
fn account_command(dir: &Path, args: &[&str], stdin: &str) -> (Option<i32>, String, String) {
    with_stdin(
        tillmark(dir)
            .args(args)
            .args(["--config", "tillmark.toml"])
            .env("NX_PASSWORD", NX_PASSWORD),
        stdin,
    )
}

#[test]
fn users_and_tokens_are_managed_from_the_command_line_and_no_secret_is_stored_as_typed() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "tillmark.toml", GOOD);
    let (code, out, _) = account_command(dir.path(), &["user", "list"], "");
    assert_eq!(code, Some(0));
    assert_eq!(
        out,
        "No users yet, so nobody can sign in to the index. Create the first owner (a password is made up \
         and printed once) with:\n  tillmark user add NAME --role owner [--config FILE]\n"
    );

    let owner_pw = "owner-passphrase-1";
    let (code, out, err) = account_command(
        dir.path(),
        &["user", "add", "aiko", "--role", "owner", "--password-stdin"],
        &format!("{owner_pw}\n"),
    );
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out, "Added aiko as owner.\n");

    // No password given: a strong one is made up and shown once.
    let (code, out, err) = account_command(
        dir.path(),
        &[
            "user",
            "add",
            "ken",
            "--role",
            "investigator",
            "--stores",
            "shibuya-01",
        ],
        "",
    );
    assert_eq!(code, Some(0), "{err}");
    let made_up = out
        .strip_prefix("Added ken as investigator for shibuya-01.\nPassword (shown once; they can change it after signing in): ")
        .and_then(|rest| rest.strip_suffix('\n'))
        .unwrap_or_else(|| panic!("{out}"));
    assert_eq!(made_up.len(), 43, "32 random bytes, URL-safe: {made_up}");

    for (args, stdin, message) in [
        (
            vec!["user", "add", "mia", "--role", "admin", "--password-stdin"],
            "long-enough-password\n",
            "error: \"admin\" is not a role: use owner, manager, investigator or integrator",
        ),
        (
            vec![
                "user", "add", "mia", "--role", "manager", "--stores", "kyoto-9",
            ],
            "",
            "error: not stores in the config: kyoto-9; the config has: shibuya-01",
        ),
        (
            vec![
                "user",
                "add",
                "mia",
                "--role",
                "manager",
                "--password-stdin",
                "--stores",
                "shibuya-01",
            ],
            "short\n",
            "error: the password is too short: use at least 12 characters",
        ),
        (
            vec!["user", "add", "ken", "--role", "integrator"],
            "",
            "error: there is already a user \"ken\"",
        ),
        (
            vec!["user", "remove", "aiko"],
            "",
            "error: \"aiko\" is the last owner: add another owner first, or nobody could manage users",
        ),
        (
            vec!["token", "create", "nobody"],
            "",
            "error: there is no user \"nobody\"",
        ),
    ] {
        let (code, _, err) = account_command(dir.path(), &args, stdin);
        assert_eq!(code, Some(1), "{args:?}");
        assert_eq!(err.trim_end(), message, "{args:?}");
    }

    let (code, out, _) = account_command(
        dir.path(),
        &["token", "create", "ken", "--label", "nightly export"],
        "",
    );
    assert_eq!(code, Some(0));
    let token = out
        .lines()
        .find_map(|l| l.strip_prefix("Send it as: Authorization: Bearer "))
        .unwrap_or_else(|| panic!("{out}"))
        .to_string();
    assert!(token.starts_with("tm_"), "{token}");

    let (_, out, _) = account_command(dir.path(), &["user", "list"], "");
    assert_eq!(
        out,
        format!(
            "{:<24} {:<13} all stores\n{:<24} {:<13} shibuya-01\n",
            "aiko", "owner", "ken", "investigator"
        )
    );

    let (code, out, _) = account_command(
        dir.path(),
        &["user", "passwd", "ken", "--password-stdin"],
        "a-new-passphrase\n",
    );
    assert_eq!(
        (code, out.as_str()),
        (
            Some(0),
            "Password of ken changed.\nTheir 1 API tokens are revoked (keep them with --keep-tokens).\n"
        )
    );
    let (code, out, _) = account_command(dir.path(), &["user", "remove", "ken"], "");
    assert_eq!(
        (code, out.as_str()),
        (Some(0), "Removed ken and their API tokens.\n")
    );

    // Neither password nor token is anywhere in the database files as typed.
    let mut db = std::fs::read(dir.path().join("tillmark.db")).unwrap();
    db.extend(std::fs::read(dir.path().join("tillmark.db-wal")).unwrap_or_default());
    let db = String::from_utf8_lossy(&db);
    for secret in [owner_pw, made_up, "a-new-passphrase", token.as_str()] {
        assert!(!db.contains(secret), "{secret} is stored as typed");
    }
}

/// Letters received `days_ago` (fractions allowed) before now, each with a 100-byte payload kept whole.
async fn refused_days_ago(url: &str, days_ago: &[f64]) {
    let db = store::open(url).await.expect("open the database");
    let now = tillmark::clock::now_ms();
    let payload = format!("{{\"id\":\"{}\"}}", "x".repeat(91));
    let letters: Vec<Intake> = days_ago
        .iter()
        .map(|d| Intake::DeadLetter {
            topic: "pos/shibuya-01/r2/events".into(),
            received_ms: now - (d * 86_400_000.0) as i64,
            reason: format!("received {d} days ago"),
            raw: payload.clone(),
            size: payload.len() as u64,
            sha256: store::sha256_hex(payload.as_bytes()),
        })
        .collect();
    db.ingest(&letters, now)
        .await
        .expect("write the dead letters");
    db.close().await;
}

fn purge(dir: &Path, file: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    run(tillmark(dir)
        .args(["dead-letters", "purge", "--config"])
        .arg(file)
        .args(args))
}

#[tokio::test]
async fn dead_letters_purge_removes_what_is_older_than_asked_or_everything_and_says_what_it_removed()
 {
    let dir = tempfile::tempdir().unwrap();
    let (file, url) = database_config(dir.path());
    refused_days_ago(&url, &[10.0, 8.0, 0.1]).await;
    let path = dir.path().to_path_buf();
    let (code, stdout, stderr) =
        tokio::task::spawn_blocking(move || purge(&path, &file, &["--older-than", "7d"]))
            .await
            .unwrap();
    assert_eq!(code, Some(0), "{stderr}");
    // Each letter keeps its payload (100 bytes), topic (24) and reason.
    let kept = |reason: &str| 100 + 24 + reason.len();
    assert_eq!(
        stdout,
        format!(
            "Removed 2 dead letters ({} B): 2 older than 7d. 1 kept ({} B).\n",
            kept("received 10 days ago") + kept("received 8 days ago"),
            kept("received 0.1 days ago"),
        )
    );
    let (file, _) = database_config(dir.path());
    let (code, stdout, _) = run(tillmark(dir.path())
        .args(["dead-letters", "--config"])
        .arg(&file));
    assert_eq!(code, Some(0));
    assert!(stdout.contains("received 0.1 days ago"), "{stdout}");
    assert!(!stdout.contains("received 8 days ago"), "{stdout}");
    assert!(stdout.contains("size: 100 bytes, sha256: "), "{stdout}");

    let (code, stdout, stderr) = purge(dir.path(), &file, &["--all"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(
        stdout,
        format!(
            "Removed 1 dead letter ({} B). 0 kept (0 B).\n",
            kept("received 0.1 days ago")
        )
    );
    let (code, stdout, _) = purge(dir.path(), &file, &[]);
    assert_eq!(code, Some(0));
    assert_eq!(stdout, "No dead letters to remove. 0 kept (0 B).\n");
}

#[tokio::test]
async fn dead_letters_purge_without_options_applies_the_configs_bounds() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("x.db").display());
    let file = write(
        dir.path(),
        "tillmark.toml",
        &format!("[database]\nurl = \"{url}\"\n[dead_letters]\nkeep_for = \"2d\"\n"),
    );
    refused_days_ago(&url, &[3.0, 2.5, 1.0]).await;
    let (code, stdout, stderr) = tokio::task::spawn_blocking(move || purge(dir.path(), &file, &[]))
        .await
        .unwrap();
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stdout.starts_with("Removed 2 dead letters (")
            && stdout.contains("): 2 older than 2d, 0 beyond the 64 MiB total. 1 kept ("),
        "{stdout}"
    );
}

#[test]
fn dead_letters_purge_refuses_an_age_without_a_unit_or_in_the_future_and_both_options_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let (file, _) = database_config(dir.path());
    let (code, stdout, stderr) = purge(dir.path(), &file, &["--older-than", "7"]);
    assert_eq!(code, Some(2), "{stdout}");
    assert!(stderr.contains("\"7\" has no unit"), "{stderr}");
    let (code, _, stderr) = purge(dir.path(), &file, &["--older-than=-7d"]);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("\"-7d\" is negative"), "{stderr}");
    let (code, _, stderr) = purge(dir.path(), &file, &["--older-than", "7d", "--all"]);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("cannot be used with"), "{stderr}");
    assert!(!dir.path().join("x.db").exists(), "nothing was opened");
}

#[tokio::test]
async fn audit_verify_passes_an_intact_log_and_names_the_row_altered_or_removed_by_hand() {
    use tillmark::store::NewAuditEntry;
    let dir = tempfile::tempdir().unwrap();
    let (file, url) = database_config(dir.path());
    let db = store::open(&url).await.expect("open the database");
    for (i, action) in ["sign_in", "footage_opened", "case_opened", "sign_out"]
        .iter()
        .enumerate()
    {
        db.record(&NewAuditEntry {
            at_ms: 1_795_254_127_310 + i as i64,
            actor: Some("aiko".into()),
            address: Some("192.0.2.7".into()),
            action: action.to_string(),
            target: Some(format!("event {i}")),
            detail: None,
        })
        .await
        .unwrap();
    }
    db.close().await;
    let verify = |file: PathBuf, dir: PathBuf| {
        tokio::task::spawn_blocking(move || {
            run(tillmark(&dir)
                .args(["audit", "verify", "--config"])
                .arg(&file))
        })
    };
    let (code, stdout, stderr) = verify(file.clone(), dir.path().into()).await.unwrap();
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(
        stdout,
        "The audit log is intact: 4 rows, each chained to the one before.\n"
    );

    // The database itself refuses to change the log.
    let raw = sqlx::SqlitePool::connect(&url).await.unwrap();
    for statement in [
        "UPDATE audit_log SET actor = 'someone else' WHERE id = 2",
        "DELETE FROM audit_log WHERE id = 2",
    ] {
        let refused = sqlx::query(statement).execute(&raw).await.unwrap_err();
        assert!(
            refused
                .to_string()
                .contains("the audit log is only ever added to"),
            "{statement}: {refused}"
        );
    }
    // Someone with the file drops the guards and rewrites who opened the footage.
    sqlx::query("DROP TRIGGER audit_log_kept_on_update")
        .execute(&raw)
        .await
        .unwrap();
    sqlx::query("DROP TRIGGER audit_log_kept_on_delete")
        .execute(&raw)
        .await
        .unwrap();
    sqlx::query("UPDATE audit_log SET actor = 'someone else' WHERE id = 2")
        .execute(&raw)
        .await
        .unwrap();
    let (code, _, stderr) = verify(file.clone(), dir.path().into()).await.unwrap();
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains("the audit log is broken at row 2: it was altered"),
        "{stderr}"
    );
    // Put back as it was, then remove the row instead: the next one no longer follows.
    sqlx::query("UPDATE audit_log SET actor = 'aiko' WHERE id = 2")
        .execute(&raw)
        .await
        .unwrap();
    assert_eq!(
        verify(file.clone(), dir.path().into()).await.unwrap().0,
        Some(0)
    );
    sqlx::query("DELETE FROM audit_log WHERE id = 2")
        .execute(&raw)
        .await
        .unwrap();
    raw.close().await;
    let (code, _, stderr) = verify(file, dir.path().into()).await.unwrap();
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains("broken at row 3: it does not follow row 1"),
        "{stderr}"
    );
}

#[test]
fn integrations_check_names_a_folder_file_that_replaces_a_built_in_and_not_a_copy_of_one() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("integrations");
    let dir = tempfile::tempdir().unwrap();
    // The repository's own file, as shipped: the same definition as the built-in.
    std::fs::copy(repo.join("rhombus.toml"), dir.path().join("rhombus.toml")).unwrap();
    // A webhook that sends elsewhere than the built-in does.
    let webhook = std::fs::read_to_string(repo.join("webhook.toml"))
        .unwrap()
        .replace(
            "url = \"{{ system.url }}\"",
            "url = \"{{ system.url }}/other\"",
        );
    std::fs::write(dir.path().join("webhook.toml"), webhook).unwrap();
    let out = integrations_check(dir.path());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = |name: &str| {
        stdout
            .lines()
            .find(|l| l.trim_start().starts_with(name))
            .unwrap_or_else(|| panic!("no line for {name}: {stdout}"))
            .to_string()
    };
    assert!(
        line("webhook")
            .contains("webhook.toml (replaces the built-in webhook; contacts the same hosts)"),
        "{stdout}"
    );
    assert!(!line("rhombus").contains("replaces"), "{stdout}");
    assert!(line("nx-witness ").contains("built in"), "{stdout}");
}

#[test]
fn a_definition_sending_to_a_host_it_does_not_declare_is_refused_with_file_line_and_host() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("integrations");
    let dir = tempfile::tempdir().unwrap();
    // The system's credentials would go to a collector the definition slips into its URL.
    std::fs::write(
        dir.path().join("acme-vms.toml"),
        "name = \"acme-vms\"\n[auth]\nscheme = \"bearer\"\n[create]\nurl = \"https://collector.example/bookmarks\"\n",
    )
    .unwrap();
    let out = integrations_check(dir.path());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "{}:5: create.url: names the host collector.example, which this definition does not declare",
            dir.path().join("acme-vms.toml").display()
        )),
        "{stdout}"
    );
    assert!(
        !stdout.contains("acme-vms   "),
        "not listed as usable: {stdout}"
    );

    // Declared with the vendor's reason, as a replacement of the built-in webhook: it loads, and the listing
    // says what it contacts that the built-in did not.
    std::fs::remove_file(dir.path().join("acme-vms.toml")).unwrap();
    let webhook = std::fs::read_to_string(repo.join("webhook.toml"))
        .unwrap()
        .replace(
            "url = \"{{ system.url }}\"",
            "url = \"https://collector.example/hook\"",
        )
        + "\n[hosts]\n\"collector.example\" = \"the vendor's collector\"\n";
    std::fs::write(dir.path().join("webhook.toml"), webhook).unwrap();
    let out = integrations_check(dir.path());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains(
            "webhook.toml (replaces the built-in webhook; also contacts collector.example)"
        ),
        "{stdout}"
    );
}

#[test]
fn account_changes_on_the_command_line_are_in_the_audit_log_and_export_as_json_lines() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "tillmark.toml", GOOD);
    let steps: [&[&str]; 4] = [
        &[
            "user",
            "add",
            "ken",
            "--role",
            "manager",
            "--stores",
            "shibuya-01",
            "--password-stdin",
        ],
        &["token", "create", "ken", "--label", "nightly report"],
        &["user", "passwd", "ken", "--password-stdin"],
        &["user", "remove", "ken"],
    ];
    for args in steps {
        let (code, _, err) = account_command(dir.path(), args, "a-long-passphrase-2\n");
        assert_eq!(code, Some(0), "{args:?}: {err}");
    }
    let (code, out, err) = account_command(dir.path(), &["audit", "export", "--since", "1d"], "");
    assert_eq!(code, Some(0), "{err}");
    let rows: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    let actions: Vec<&str> = rows.iter().map(|r| r["action"].as_str().unwrap()).collect();
    assert_eq!(
        actions,
        [
            "user_added",
            "token_created",
            "password_set",
            "user_removed"
        ]
    );
    for r in &rows {
        assert_eq!(r["target"], "ken", "{r}");
        assert_eq!(r["address"], "command line", "{r}");
        assert!(r["actor"].as_str().unwrap().starts_with("cli:"), "{r}");
        assert!(r["at"].as_str().unwrap().ends_with('Z'), "{r}");
    }
    assert_eq!(rows[0]["detail"], "manager shibuya-01");
    assert_eq!(rows[1]["detail"], "nightly report");
    assert!(!out.contains("a-long-passphrase-2"), "{out}");
    let (code, out, _) = account_command(dir.path(), &["audit", "verify"], "");
    assert_eq!(code, Some(0));
    assert!(out.contains("intact: 4 rows"), "{out}");
}

#[tokio::test]
async fn tokens_are_listed_revoked_expire_and_go_with_a_new_password_unless_kept() {
    use tillmark::accounts::token_digest;
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    write(
        dir.path(),
        "tillmark.toml",
        &GOOD.replace("[web]", &format!("[database]\nurl = \"{url}\"\n[web]")),
    );
    let path = dir.path().to_path_buf();
    let cmd = move |args: &'static [&'static str]| {
        let path = path.clone();
        tokio::task::spawn_blocking(move || account_command(&path, args, "a-long-passphrase-3\n"))
    };
    assert_eq!(
        cmd(&["user", "add", "ken", "--role", "owner", "--password-stdin"])
            .await
            .unwrap()
            .0,
        Some(0)
    );
    let token_of = |out: &str| {
        out.split("Bearer ")
            .nth(1)
            .and_then(|rest| rest.lines().next())
            .unwrap()
            .to_string()
    };
    let (_, first, _) = cmd(&[
        "token",
        "create",
        "ken",
        "--label",
        "report",
        "--expires",
        "1d",
    ])
    .await
    .unwrap();
    assert!(first.contains("It works until "), "{first}");
    let (_, second, _) = cmd(&["token", "create", "ken", "--label", "backup"])
        .await
        .unwrap();
    let (first, second) = (token_of(&first), token_of(&second));

    let (code, list, _) = cmd(&["token", "list", "ken"]).await.unwrap();
    assert_eq!(code, Some(0));
    let lines: Vec<&str> = list.lines().collect();
    assert_eq!(lines.len(), 3, "{list}");
    assert!(
        lines[1].starts_with("1  ken  report  ")
            && lines[1].contains(" UTC  never  ")
            && lines[1].ends_with(" UTC"),
        "made, never used, expiring: {list}"
    );
    assert!(lines[2].contains("  ken  backup  "), "{list}");
    assert!(
        !list.contains(&first) && !list.contains(&second),
        "never the token itself"
    );

    let db = store::open(&url).await.unwrap();
    let now = tillmark::clock::now_ms();
    assert!(
        db.token_user(&token_digest(&first), now)
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        db.token_user(&token_digest(&first), now + 86_400_000 + 1)
            .await
            .unwrap()
            .is_none(),
        "a day later the one-day token no longer works"
    );
    db.close().await;

    let (code, out, _) = cmd(&["token", "revoke", "1"]).await.unwrap();
    assert_eq!(code, Some(0));
    assert_eq!(
        out,
        "Revoked token 1 of ken (report): it no longer works.\n"
    );
    let (code, _, err) = cmd(&["token", "revoke", "1"]).await.unwrap();
    assert_eq!(code, Some(1));
    assert!(err.contains("no API token 1"), "{err}");

    let (_, out, _) = cmd(&["user", "passwd", "ken", "--keep-tokens", "--password-stdin"])
        .await
        .unwrap();
    assert!(!out.contains("revoked"), "{out}");
    let (_, out, _) = cmd(&["user", "passwd", "ken", "--password-stdin"])
        .await
        .unwrap();
    assert!(out.contains("Their 1 API tokens are revoked"), "{out}");
    let db = store::open(&url).await.unwrap();
    assert!(
        db.token_user(&token_digest(&second), now)
            .await
            .unwrap()
            .is_none()
    );
    db.close().await;
    let (_, list, _) = cmd(&["token", "list"]).await.unwrap();
    assert_eq!(list, "No API tokens.\n");
}

/// Kills the daemon however the test ends, so a failed assertion leaves no process behind.
struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The otpauth URI and the key typed by hand that `user totp` printed, checked for their form.
fn printed_key(out: &str) -> String {
    let uri = out
        .lines()
        .find_map(|l| l.strip_prefix("  otpauth://"))
        .unwrap_or_else(|| panic!("no otpauth URI in {out}"));
    let key = uri
        .strip_prefix("totp/tillmark:aiko?secret=")
        .and_then(|rest| rest.strip_suffix("&issuer=tillmark&algorithm=SHA1&digits=6&period=30"))
        .unwrap_or_else(|| panic!("not the URI apps read: {uri}"));
    assert_eq!(key.len(), 32, "160 bits in base32: {key}");
    assert!(
        key.bytes()
            .all(|b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b)),
        "{key}"
    );
    let typed = out
        .lines()
        .skip_while(|l| !l.starts_with("Or type the key by hand"))
        .nth(1)
        .unwrap_or_else(|| panic!("no key to type in {out}"));
    assert_eq!(
        typed.replace(' ', ""),
        key,
        "the typed form is the same key"
    );
    key.to_string()
}

/// The current code of an authenticator app holding `key`.
fn current_code(key: &str) -> String {
    let bytes = totp_rs::Secret::Encoded(key.to_string())
        .to_bytes()
        .unwrap();
    totp_rs::TOTP::new(totp_rs::Algorithm::SHA1, 6, 0, 30, bytes)
        .unwrap()
        .generate_current()
        .unwrap()
}

/// Signs in to the daemon at `base` as a browser does; with `code`, answers the code form. The status of the
/// last answer and every page seen.
async fn sign_in_to(base: &str, password: &str, code: Option<&str>) -> (u16, String) {
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_store(true)
        .build()
        .unwrap();
    let form = browser.get(format!("{base}/login")).send().await.unwrap();
    let form = form.text().await.unwrap();
    let field = |html: &str, name: &str| {
        let marker = format!("name=\"{name}\" value=\"");
        let start = html.find(&marker).unwrap() + marker.len();
        html[start..start + html[start..].find('"').unwrap()].to_string()
    };
    let answer = browser
        .post(format!("{base}/login"))
        .form(&[
            ("username", "aiko"),
            ("password", password),
            ("csrf", &field(&form, "csrf")),
        ])
        .send()
        .await
        .unwrap();
    let mut status = answer.status().as_u16();
    let mut pages = answer.text().await.unwrap();
    if let Some(code) = code {
        assert_eq!(status, 200, "the code form: {pages}");
        let answer = browser
            .post(format!("{base}/login/code"))
            .form(&[("code", code), ("csrf", &field(&pages, "csrf"))])
            .send()
            .await
            .unwrap();
        status = answer.status().as_u16();
        pages.push_str(&answer.text().await.unwrap());
    }
    if status == 303 {
        let home = browser.get(format!("{base}/")).send().await.unwrap();
        assert_eq!(home.status().as_u16(), 200, "signed in");
        pages.push_str(&home.text().await.unwrap());
    }
    (status, pages)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_totp_prints_a_key_whose_codes_the_daemon_accepts_off_removes_it_and_no_log_or_audit_row_holds_it()
 {
    let dir = tempfile::tempdir().unwrap();
    let free_port = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    };
    let (broker, web) = (free_port(), free_port());
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    write(
        dir.path(),
        "tillmark.toml",
        &format!(
            "[mqtt]\nembedded_listen = \"127.0.0.1:{broker}\"\n[database]\nurl = \"{url}\"\n\
             [web]\nlisten = \"127.0.0.1:{web}\"\n[[stores]]\nid = \"shibuya-01\"\nname = \"Shibuya\"\n\
             timezone = \"Asia/Tokyo\"\n"
        ),
    );
    let password = "owner-passphrase-1";
    let path = dir.path().to_path_buf();
    let cli = move |args: &'static [&'static str], stdin: &'static str| {
        let path = path.clone();
        async move {
            tokio::task::spawn_blocking(move || account_command(&path, args, stdin))
                .await
                .unwrap()
        }
    };
    let (code, _, err) = cli(
        &["user", "add", "aiko", "--role", "owner", "--password-stdin"],
        "owner-passphrase-1\n",
    )
    .await;
    assert_eq!(code, Some(0), "{err}");

    let (code, out, err) = cli(&["user", "totp", "aiko"], "").await;
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.starts_with(
            "Authenticator code turned on for aiko: from their next sign-in the index asks for it after \
             the password.\n"
        ),
        "{out}"
    );
    let first = printed_key(&out);
    let (code, out, err) = cli(&["user", "totp", "aiko"], "").await;
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.contains("This key replaces their previous one, whose codes no longer work."),
        "{out}"
    );
    let key = printed_key(&out);
    assert_ne!(key, first);
    let (_, out, _) = cli(&["user", "list"], "").await;
    assert_eq!(
        out,
        format!(
            "{:<24} {:<13} all stores, authenticator code\n",
            "aiko", "owner"
        )
    );

    let log = dir.path().join("daemon.log");
    let daemon = Running(
        Command::new(env!("CARGO_BIN_EXE_tillmark"))
            .current_dir(dir.path())
            .args(["run", "--config", "tillmark.toml"])
            .env_remove("TILLMARK_CONFIG")
            .env("RUST_LOG", "debug,rumqttd=off")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start tillmark"),
    );
    let base = format!("http://127.0.0.1:{web}");
    let started = std::time::Instant::now();
    while reqwest::get(format!("{base}/healthz")).await.is_err() {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(20),
            "the daemon did not start: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }

    let mut pages = String::new();
    let (status, page) = sign_in_to(&base, password, None).await;
    assert_eq!(status, 200, "the password alone asks for the code");
    assert!(page.contains(r#"action="/login/code""#), "{page}");
    pages.push_str(&page);
    let (status, page) = sign_in_to(&base, password, Some(&current_code(&first))).await;
    assert_eq!(status, 401, "the replaced key's code is refused");
    pages.push_str(&page);
    let (status, page) = sign_in_to(&base, password, Some(&current_code(&key))).await;
    assert_eq!(status, 303, "the printed key's code signs in: {page}");
    pages.push_str(&page);
    // The key is kept where sign-in reads it, and nowhere a page shows.
    let raw = sqlx::SqlitePool::connect(&url).await.unwrap();
    let stored: Option<String> =
        sqlx::query_scalar("SELECT totp_secret FROM users WHERE name = 'aiko'")
            .fetch_one(&raw)
            .await
            .unwrap();
    assert_eq!(stored.as_deref(), Some(key.as_str()));

    let (code, out, err) = cli(&["user", "totp", "aiko", "--off"], "").await;
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        out,
        "aiko signs in with the password alone from now on: no authenticator code is asked.\n"
    );
    let (status, page) = sign_in_to(&base, password, None).await;
    assert_eq!(status, 303, "the password alone signs in again: {page}");
    pages.push_str(&page);
    let (_, out, _) = cli(&["user", "totp", "aiko", "--off"], "").await;
    assert_eq!(out, "aiko had no authenticator code; nothing changed.\n");
    let (code, _, err) = cli(&["user", "totp", "nobody"], "").await;
    assert_eq!(
        (code, err.trim_end()),
        (Some(1), "error: there is no user \"nobody\"")
    );
    drop(daemon);

    let (code, export, err) = cli(&["audit", "export", "--since", "1d"], "").await;
    assert_eq!(code, Some(0), "{err}");
    let rows: Vec<serde_json::Value> = export
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let actions: Vec<(&str, &str)> = rows
        .iter()
        .map(|r| {
            (
                r["action"].as_str().unwrap(),
                r["detail"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        actions,
        [
            ("user_added", "owner"),
            ("totp_enabled", ""),
            ("totp_enabled", "replaced the previous key"),
            (
                "sign_in_refused",
                "wrong or already used authenticator code"
            ),
            ("sign_in", "with authenticator code"),
            ("totp_disabled", ""),
            ("sign_in", ""),
        ]
    );
    let audit_rows: Vec<(String,)> = sqlx::query_as(
        "SELECT COALESCE(actor, '') || ' ' || COALESCE(address, '') || ' ' || action || ' ' || \
         COALESCE(target, '') || ' ' || COALESCE(detail, '') || ' ' || hash FROM audit_log",
    )
    .fetch_all(&raw)
    .await
    .unwrap();
    assert_eq!(audit_rows.len(), 7);
    let log = std::fs::read(&log).unwrap();
    assert!(
        String::from_utf8_lossy(&log)
            .contains("Password accepted; asking for the authenticator code."),
        "the log is the daemon's"
    );
    for secret in [&first, &key] {
        let lower = secret.to_lowercase();
        let holds = |bytes: &[u8]| {
            bytes
                .windows(secret.len())
                .any(|w| w == secret.as_bytes() || w == lower.as_bytes())
        };
        assert!(!holds(&log), "the daemon's log holds the key");
        assert!(!holds(export.as_bytes()), "the audit export holds the key");
        for (row,) in &audit_rows {
            assert!(!holds(row.as_bytes()), "an audit row holds the key: {row}");
        }
        assert!(!holds(pages.as_bytes()), "a page shows the key");
    }
}

// ---- Retention and a data subject's requests ----

const DAY_MS: i64 = 86_400_000;

/// A register's event `days_ago` before now, as ingest stores it, with one bookmark per device (pending).
fn event_days_ago(id: &str, days_ago: f64, fields: serde_json::Value, devices: &[&str]) -> Intake {
    let at_ms = tillmark::clock::now_ms() - (days_ago * DAY_MS as f64) as i64;
    let at = chrono::DateTime::from_timestamp_millis(at_ms)
        .unwrap()
        .to_rfc3339();
    let mut payload = serde_json::json!({
        "id": id, "type": "void", "at": at, "store": "shibuya-01", "register": "r1",
    });
    payload
        .as_object_mut()
        .unwrap()
        .extend(fields.as_object().unwrap().clone());
    let parsed = tillmark::event::parse(payload.to_string().as_bytes());
    let event = parsed.result.expect("a valid test event");
    let bookmarks = devices
        .iter()
        .map(|device| store::NewBookmark {
            system: "nvr".into(),
            device: (*device).into(),
            camera: (*device).into(),
            moment_ms: event.at_ms(),
            start_ms: event.at_ms() - 10_000,
            duration_ms: 30_000,
        })
        .collect();
    Intake::Event {
        topic: format!("pos/{}/r1/events", event.store),
        received_ms: event.at_ms(),
        raw: parsed.raw,
        digest: tillmark::event::content_digest(&event),
        signed: None,
        flagged: true,
        mapped: true,
        bookmarks,
        drawer: Default::default(),
        event: Box::new(event),
    }
}

/// Stores the events; their sequence numbers by id.
async fn ingest_events(
    db: &dyn store::Store,
    events: &[Intake],
) -> std::collections::HashMap<String, i64> {
    let outcomes = db
        .ingest(events, tillmark::clock::now_ms())
        .await
        .expect("store the events");
    events
        .iter()
        .zip(outcomes)
        .map(|(intake, outcome)| {
            let (Intake::Event { event, .. }, store::IntakeOutcome::Stored { seq, .. }) =
                (intake, outcome)
            else {
                panic!("not stored: {outcome:?}");
            };
            (event.id.clone(), seq)
        })
        .collect()
}

/// Ends every pending bookmark's attempt as made.
async fn deliver_all(db: &dyn store::Store) {
    let now = tillmark::clock::now_ms();
    for job in db
        .claim_due("tillmark", now, 60_000, &store::Room::any(100))
        .await
        .unwrap()
    {
        db.finish(
            "tillmark",
            &[store::Finished {
                bookmark_id: job.bookmark.id,
                outcome: store::Outcome::Made {
                    vendor_id: Some(format!("vendor-{}", job.bookmark.id)),
                    detail: "created".into(),
                    made_as: None,
                },
                at_ms: now,
            }],
        )
        .await
        .unwrap();
    }
}

/// Ken opens the case of event `seq` with a note, or closes it as explained.
async fn set_case(db: &dyn store::Store, seq: i64, open: bool) {
    let change = if open {
        store::CaseChange::Open {
            note: "watch the drawer".into(),
        }
    } else {
        store::CaseChange::Close {
            outcome: store::CaseOutcome::Explained,
            reason: "miscount".into(),
        }
    };
    db.change_case(
        seq,
        &store::StoreScope::All,
        "ken",
        tillmark::clock::now_ms(),
        &change,
    )
    .await
    .unwrap();
}

/// The ids of the events a search lists.
async fn search(db: &dyn store::Store, text: &str) -> Vec<String> {
    let mut ids: Vec<String> = db
        .events(&store::EventQuery {
            search: Some(text.into()),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.id)
        .collect();
    ids.sort();
    ids
}

/// The audit entries with this action, newest first.
async fn audited(db: &dyn store::Store, action: &str) -> Vec<store::AuditEntry> {
    db.audit(&store::AuditQuery {
        action: Some(action.into()),
        limit: 100,
        ..Default::default()
    })
    .await
    .unwrap()
}

fn blocking_run(
    dir: &Path,
    args: &[&str],
    file: &Path,
    stdin: &str,
) -> tokio::task::JoinHandle<(Option<i32>, String, String)> {
    let mut cmd = tillmark(dir);
    cmd.args(args).arg("--config").arg(file);
    let stdin = stdin.to_string();
    tokio::task::spawn_blocking(move || with_stdin(&mut cmd, &stdin))
}

#[tokio::test]
async fn retention_purge_removes_old_events_with_their_search_rows_dead_letters_and_sessions_but_holds_an_open_case_and_audits_the_counts()
 {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("x.db").display());
    let file = write(
        dir.path(),
        "tillmark.toml",
        &format!(
            "[database]\nurl = \"{url}\"\n[retention]\nevents = \"30d\"\ndead_letters = \"7d\"\n"
        ),
    );
    refused_days_ago(&url, &[10.0, 1.0]).await;
    let db = store::open(&url).await.unwrap();
    let seqs = ingest_events(
        &*db,
        &[
            event_days_ago(
                "old-plain",
                40.0,
                serde_json::json!({"lines": ["ZEBRAOLD onigiri"]}),
                &["cam-1"],
            ),
            event_days_ago(
                "old-closed",
                41.0,
                serde_json::json!({"lines": ["ZEBRACLOSED"]}),
                &[],
            ),
            event_days_ago(
                "old-open",
                42.0,
                serde_json::json!({"lines": ["ZEBRAOPEN"]}),
                &[],
            ),
            event_days_ago("new", 5.0, serde_json::json!({"lines": ["ZEBRANEW"]}), &[]),
        ],
    )
    .await;
    deliver_all(&*db).await;
    // An old event whose bookmark is still to make: delivery is not done with it.
    let pending = ingest_events(
        &*db,
        &[event_days_ago(
            "old-pending",
            43.0,
            serde_json::json!({}),
            &["cam-2"],
        )],
    )
    .await;
    while db.index_search(1000).await.unwrap() > 0 {}
    set_case(&*db, seqs["old-open"], true).await;
    set_case(&*db, seqs["old-closed"], true).await;
    set_case(&*db, seqs["old-closed"], false).await;
    let user = db
        .add_user(
            &tillmark::accounts::NewUser {
                name: "aiko".into(),
                role: tillmark::accounts::Role::Owner,
                stores: vec![],
                password_hash: "not a real hash".into(),
            },
            tillmark::clock::now_ms(),
        )
        .await
        .unwrap();
    let now = tillmark::clock::now_ms();
    db.add_session("stale", user.id, "c1", Some("192.0.2.7"), now - 2 * DAY_MS)
        .await
        .unwrap();
    db.add_session("live", user.id, "c2", Some("192.0.2.8"), now - 60_000)
        .await
        .unwrap();
    db.close().await;

    let (code, stdout, stderr) = blocking_run(dir.path(), &["retention", "purge"], &file, "")
        .await
        .unwrap();
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(
        stdout,
        "Removed 2 events (with 1 bookmarks and 1 closed cases), 1 dead letters, 1 sessions, 0 audit rows.\n\
         Kept although old enough: 1 events in an open case (legal hold), 1 with a bookmark still to deliver.\n"
    );

    let db = store::open(&url).await.unwrap();
    for (id, seq) in seqs.iter().chain(&pending) {
        let kept = db.event(*seq, &store::StoreScope::All).await.unwrap();
        let expected = matches!(id.as_str(), "old-open" | "new" | "old-pending");
        assert_eq!(kept.is_some(), expected, "{id}");
    }
    assert!(search(&*db, "ZEBRAOLD").await.is_empty());
    assert!(search(&*db, "ZEBRACLOSED").await.is_empty());
    assert_eq!(search(&*db, "ZEBRAOPEN").await, ["old-open"]);
    assert_eq!(search(&*db, "ZEBRANEW").await, ["new"]);
    let raw = sqlx::SqlitePool::connect(&url).await.unwrap();
    for (index, word) in [
        ("events_search", "\"ZEBRAOLD\""),
        ("events_search", "\"ZEBRACLOSED\""),
    ] {
        let rows: i64 = sqlx::query_scalar(&format!(
            "SELECT COUNT(*) FROM {index} WHERE {index} MATCH ?"
        ))
        .bind(word)
        .fetch_one(&raw)
        .await
        .unwrap();
        assert_eq!(rows, 0, "{word} is still in {index}");
    }
    let (sessions, letters): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT COUNT(*) FROM sessions), (SELECT COUNT(*) FROM dead_letters)",
    )
    .fetch_one(&raw)
    .await
    .unwrap();
    assert_eq!((sessions, letters), (1, 1));
    raw.close().await;
    let entries = audited(&*db, "retention_purge").await;
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert!(entries[0].actor.as_deref().unwrap().starts_with("cli:"));
    assert_eq!(
        entries[0].detail.as_deref(),
        Some(
            "events=2 bookmarks=1 closed_cases=1 dead_letters=1 sessions=1 audit_rows=0 \
             held_open_case=1 held_pending=1"
        )
    );
    db.close().await;

    // Nothing more to remove: no second entry.
    let (code, stdout, _) = blocking_run(dir.path(), &["retention", "purge"], &file, "")
        .await
        .unwrap();
    assert_eq!(code, Some(0));
    assert!(
        stdout.starts_with("Nothing is older than [retention] allows"),
        "{stdout}"
    );
    let db = store::open(&url).await.unwrap();
    assert_eq!(audited(&*db, "retention_purge").await.len(), 1);
    db.close().await;
}

#[tokio::test]
async fn an_audit_purge_leaves_a_checkpoint_verify_passes_from_only_covered_rows_can_be_deleted_and_a_later_row_altered_is_found()
 {
    use tillmark::store::NewAuditEntry;
    let dir = tempfile::tempdir().unwrap();
    let (file, url) = database_config(dir.path());
    let db = store::open(&url).await.unwrap();
    let now = tillmark::clock::now_ms();
    // Three rows from four years ago, two from yesterday: ids 1 to 5.
    for (i, days_ago) in [1500, 1499, 1498, 1, 1].iter().enumerate() {
        db.record(&NewAuditEntry {
            at_ms: now - days_ago * DAY_MS + i as i64,
            actor: Some("aiko".into()),
            address: Some("192.0.2.7".into()),
            action: "footage_opened".into(),
            target: Some(format!("event {i}")),
            detail: None,
        })
        .await
        .unwrap();
    }
    db.close().await;
    let (code, stdout, stderr) = blocking_run(dir.path(), &["retention", "purge"], &file, "")
        .await
        .unwrap();
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains(", 3 audit rows."), "{stdout}");
    assert!(
        stdout.contains("The audit log's rows 1 to 3 went behind checkpoint row 6"),
        "{stdout}"
    );
    let verify = || blocking_run(dir.path(), &["audit", "verify"], &file, "");
    let (code, stdout, stderr) = verify().await.unwrap();
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(
        stdout,
        "The audit log is intact: 4 rows, each chained to the one before, from retention checkpoint row 6 on \
         (3 older rows removed by retention).\n"
    );

    let raw = sqlx::SqlitePool::connect(&url).await.unwrap();
    let left: Vec<i64> = sqlx::query_scalar("SELECT id FROM audit_log ORDER BY id")
        .fetch_all(&raw)
        .await
        .unwrap();
    assert_eq!(
        left,
        [4, 5, 6, 7],
        "the checkpoint (6) and the purge's own entry (7)"
    );
    // No checkpoint covers a row left: the database refuses to delete it.
    for id in [4, 5, 7] {
        let refused = sqlx::query("DELETE FROM audit_log WHERE id = ?")
            .bind(id)
            .execute(&raw)
            .await
            .unwrap_err();
        assert!(
            refused
                .to_string()
                .contains("the audit log is only ever added to"),
            "{refused}"
        );
    }
    // Someone with the file drops the guards and rewrites a row after the checkpoint.
    for trigger in ["audit_log_kept_on_update", "audit_log_kept_on_delete"] {
        sqlx::query(&format!("DROP TRIGGER {trigger}"))
            .execute(&raw)
            .await
            .unwrap();
    }
    sqlx::query("UPDATE audit_log SET actor = 'someone else' WHERE id = 5")
        .execute(&raw)
        .await
        .unwrap();
    let (code, _, stderr) = verify().await.unwrap();
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains("the audit log is broken at row 5: it was altered"),
        "{stderr}"
    );
    sqlx::query("UPDATE audit_log SET actor = 'aiko' WHERE id = 5")
        .execute(&raw)
        .await
        .unwrap();
    assert_eq!(verify().await.unwrap().0, Some(0));
    // Removing the first row left is not a purge: no checkpoint vouches for the row after it.
    sqlx::query("DELETE FROM audit_log WHERE id = 4")
        .execute(&raw)
        .await
        .unwrap();
    raw.close().await;
    let (code, _, stderr) = verify().await.unwrap();
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains("broken at row 5: it is the first chained row but names a row before it"),
        "{stderr}"
    );
}

/// Every byte of the database's files: the file, its write-ahead log and its shared-memory index.
fn database_bytes(dir: &Path) -> String {
    let mut bytes = Vec::new();
    for name in ["x.db", "x.db-wal", "x.db-shm"] {
        bytes.extend(std::fs::read(dir.join(name)).unwrap_or_default());
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

#[tokio::test]
async fn person_export_prints_only_that_cashiers_events_and_erase_replaces_the_id_everywhere_but_in_an_open_case()
 {
    const ID: &str = "kasumi-7731";
    let dir = tempfile::tempdir().unwrap();
    let (file, url) = database_config(dir.path());
    let db = store::open(&url).await.unwrap();
    let seqs = ingest_events(
        &*db,
        &[
            event_days_ago(
                "k1",
                3.0,
                serde_json::json!({"cashier": ID, "lines": ["ONIGIRI 150"], "reason": format!("approved by {ID}.")}),
                &["cam-1"],
            ),
            event_days_ago(
                "k2",
                2.0,
                serde_json::json!({"cashier": "ren-2", "attributes": {"supervisor": ID}}),
                &[],
            ),
            event_days_ago("k3", 1.0, serde_json::json!({"cashier": ID}), &[]),
            event_days_ago(
                "other",
                1.0,
                serde_json::json!({"cashier": "yuki-3", "lines": ["PAN 120"]}),
                &[],
            ),
        ],
    )
    .await;
    deliver_all(&*db).await;
    set_case(&*db, seqs["k3"], true).await;
    while db.index_search(1000).await.unwrap() > 0 {}
    db.ingest(
        &[Intake::DeadLetter {
            topic: "pos/shibuya-01/r1/events".into(),
            received_ms: tillmark::clock::now_ms(),
            reason: "type: unknown type \"voided\"".into(),
            raw: format!("{{\"type\":\"voided\",\"cashier\":\"{ID}\"}}"),
            size: 40,
            sha256: store::sha256_hex(b"x"),
        }],
        tillmark::clock::now_ms(),
    )
    .await
    .unwrap();
    db.close().await;

    let (code, stdout, stderr) = blocking_run(
        dir.path(),
        &["person", "export", "--cashier", ID],
        &file,
        "",
    )
    .await
    .unwrap();
    assert_eq!(code, Some(0), "{stderr}");
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let ids: Vec<&str> = lines.iter().map(|l| l["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["k1", "k2", "k3"], "{stdout}");
    assert_eq!(lines[0]["cashier"], ID);
    assert_eq!(lines[0]["store"], "shibuya-01");
    assert_eq!(lines[0]["register"], "r1");
    assert_eq!(lines[0]["type"], "void");
    assert_eq!(lines[0]["lines"][0], "ONIGIRI 150");
    assert_eq!(lines[0]["reason"], format!("approved by {ID}."));
    assert_eq!(lines[0]["bookmarks"][0]["vendor_id"], "vendor-1");
    assert_eq!(lines[0]["bookmarks"][0]["state"], "made");
    assert_eq!(lines[1]["attributes"]["supervisor"], ID);
    assert_eq!(lines[2]["case"], "open");
    assert!(!stdout.contains("yuki-3"), "another cashier's event");
    assert!(
        stderr.contains("Exported 3 events naming cashier kasumi-7731"),
        "{stderr}"
    );

    // Asked, and not confirmed: nothing changes.
    let (code, _, stderr) = blocking_run(
        dir.path(),
        &["person", "erase", "--cashier", ID],
        &file,
        "no\n",
    )
    .await
    .unwrap();
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains("in 2 events (the events stay; 1 in an open case"),
        "{stderr}"
    );
    assert!(
        stderr.contains("not confirmed; nothing was changed"),
        "{stderr}"
    );

    let (code, stdout, stderr) = blocking_run(
        dir.path(),
        &["person", "erase", "--cashier", ID, "--yes"],
        &file,
        "",
    )
    .await
    .unwrap();
    assert_eq!(code, Some(0), "{stderr}");
    let pseudonym = stdout
        .split_whitespace()
        .find(|w| w.starts_with("erased-"))
        .unwrap()
        .to_string();
    assert!(
        stdout.starts_with(&format!(
            "Replaced cashier {ID} by {pseudonym} in 2 events and 1 dead letters.\n\
             Left 1 events in an open case as they are (legal hold)"
        )),
        "{stdout}"
    );
    let db = store::open(&url).await.unwrap();
    assert_eq!(search(&*db, ID).await, ["k3"], "held by its open case");
    set_case(&*db, seqs["k3"], false).await;
    db.close().await;
    let (code, stdout, stderr) = blocking_run(
        dir.path(),
        &["person", "erase", "--cashier", ID, "--yes"],
        &file,
        "",
    )
    .await
    .unwrap();
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stdout.starts_with(&format!("Replaced cashier {ID} by {pseudonym} in 1 events")),
        "the same person, the same pseudonym: {stdout}"
    );

    let db = store::open(&url).await.unwrap();
    assert!(search(&*db, ID).await.is_empty());
    assert!(search(&*db, "kasumi").await.is_empty());
    assert_eq!(search(&*db, "yuki-3").await, ["other"]);
    assert_eq!(search(&*db, &pseudonym).await, ["k1", "k3"]);
    let k2 = db
        .event(seqs["k2"], &store::StoreScope::All)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(k2.attributes["supervisor"], pseudonym.as_str());
    assert_eq!(k2.cashier.as_deref(), Some("ren-2"));
    let k1 = db
        .event(seqs["k1"], &store::StoreScope::All)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(k1.cashier.as_deref(), Some(pseudonym.as_str()));
    assert_eq!(k1.reason, Some(format!("approved by {pseudonym}.")));
    assert_eq!(k1.lines, ["ONIGIRI 150"]);
    assert_eq!(k1.bookmarks.len(), 1, "its bookmark stays");
    // The cashier chart reads the events: it shows the pseudonym.
    let now = tillmark::clock::now_ms();
    let chart = db
        .cashier_counts(
            &store::StoreScope::All,
            "shibuya-01",
            now - 10 * DAY_MS,
            now,
            None,
        )
        .await
        .unwrap();
    let cashiers: std::collections::BTreeSet<&str> =
        chart.iter().map(|(c, _, _)| c.as_str()).collect();
    assert_eq!(
        cashiers,
        std::collections::BTreeSet::from([pseudonym.as_str(), "ren-2", "yuki-3"])
    );
    for action in ["person_exported", "person_erased"] {
        let entries = audited(&*db, action).await;
        assert!(!entries.is_empty(), "{action} is audited");
        for e in &entries {
            assert!(e.actor.as_deref().unwrap().starts_with("cli:"));
            assert_eq!(e.target, Some(format!("cashier {pseudonym}")));
        }
    }
    assert_eq!(
        audited(&*db, "person_exported").await[0].detail.as_deref(),
        Some("3 events")
    );
    assert_eq!(
        audited(&*db, "person_erased").await[0].detail.as_deref(),
        Some("events=1 held_open_case=0 dead_letters=0 case_notes_kept=0")
    );
    db.close().await;
    // Not in any page of the files: the table, the search indexes' shadow tables, a free page or the
    // write-ahead log; what was kept is there.
    let bytes = database_bytes(dir.path());
    assert!(bytes.contains("ONIGIRI 150") && bytes.contains(&pseudonym));
    assert!(
        !bytes.contains(ID) && !bytes.contains("kasumi"),
        "the erased id is still in the database files"
    );
}

#[test]
fn tillmark_given_only_a_config_runs_the_daemon_on_it() {
    let dir = tempfile::tempdir().unwrap();
    let config = "[mqtt]\nembedded_listen = \"127.0.0.1:0\"\n[web]\nlisten = \"127.0.0.1:0\"\n[database]\n\
                  url = \"sqlite://own.db\"\n";
    write(dir.path(), "own.toml", config);
    let log = dir.path().join("daemon.log");
    let mut daemon = tillmark(dir.path())
        .args(["--config", "own.toml"])
        .env("RUST_LOG", "info")
        .stderr(std::fs::File::create(&log).unwrap())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("run tillmark");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let text = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("Embedded MQTT broker listening.")
            || std::time::Instant::now() > deadline
            || daemon.try_wait().unwrap().is_some()
        {
            break text;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let _ = daemon.kill();
    let _ = daemon.wait();
    assert!(text.contains("Embedded MQTT broker listening."), "{text}");
    assert!(
        dir.path().join("own.db").exists(),
        "the daemon opened the database the config names"
    );
}

#[test]
fn integrations_check_renders_each_systems_templates_and_names_an_undefined_one() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("integrations");
    std::fs::create_dir(&folder).unwrap();
    // A typo only a rendering finds: the template compiles, but `window` has no `start_msec`.
    std::fs::write(
        folder.join("acme-vms.toml"),
        "name = \"acme-vms\"\n[create]\nurl = \"{{ system.url }}/marks\"\n\
         body = '{\"camera\": {{ camera.device | tojson }}, \"at\": {{ window.start_msec }}}'\n",
    )
    .unwrap();
    let config = format!(
        "[mqtt]\nembedded_listen = \"127.0.0.1:0\"\n[integrations]\ndir = \"{}\"\n\
         [[stores]]\nid = \"shibuya-01\"\ntimezone = \"Asia/Tokyo\"\n\
         [[camera_systems]]\nid = \"acme\"\nintegration = \"acme-vms\"\nurl = \"http://192.0.2.10\"\n\
         [[cameras]]\nsystem = \"acme\"\ndevice = \"cam-1\"\nregisters = [\"shibuya-01/r1\"]\n",
        folder.display()
    );
    write(dir.path(), "tillmark.toml", &config);
    let (code, stdout, _) =
        run(tillmark(dir.path()).args(["integrations", "check", "--config", "tillmark.toml"]));
    assert_eq!(code, Some(1), "{stdout}");
    let line = stdout
        .lines()
        .skip_while(|l| !l.contains("acme "))
        .take(2)
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        line.contains("a template fails for a test event")
            && line.contains("create: ")
            && line.contains("start_msec"),
        "{stdout}"
    );

    // Spelt right, the same system is ok.
    let fixed = std::fs::read_to_string(folder.join("acme-vms.toml"))
        .unwrap()
        .replace("start_msec", "start_ms");
    std::fs::write(folder.join("acme-vms.toml"), fixed).unwrap();
    let (code, stdout, _) =
        run(tillmark(dir.path()).args(["integrations", "check", "--config", "tillmark.toml"]));
    assert_eq!(code, Some(0), "{stdout}");
}

/// `NNNN description` of each migration file, in order, as sqlx names them.
fn migration_names() -> Vec<String> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/sqlite");
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|f| f.unwrap().file_name().to_string_lossy().into_owned())
        .filter_map(|f| {
            let (version, rest) = f.strip_suffix(".sql")?.split_once('_')?;
            Some(format!("{version} {}", rest.replace('_', " ")))
        })
        .collect();
    names.sort();
    names
}

fn migrate(dir: &Path, file: &Path) -> (Option<i32>, String, String) {
    run(tillmark(dir).args(["migrate", "--config"]).arg(file))
}

#[test]
fn migrate_applies_every_migration_to_a_fresh_file_names_them_and_then_finds_it_current() {
    let dir = tempfile::tempdir().unwrap();
    let (file, url) = database_config(dir.path());
    let migrations = migration_names();
    let newest = migrations.last().unwrap();
    // It returns by itself: the daemon would run until a signal.
    let (code, stdout, stderr) = migrate(dir.path(), &file);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(
        stdout,
        format!(
            "Applied {} migrations to {url}:\n  {}\nIt is current, at migration {newest}.\n",
            migrations.len(),
            migrations.join("\n  ")
        )
    );
    assert!(
        stdout.contains("\n  0001 events and bookmarks\n"),
        "{stdout}"
    );
    assert!(dir.path().join("x.db").exists());

    let (code, stdout, stderr) = migrate(dir.path(), &file);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(
        stdout,
        format!("Nothing to apply: {url} is current, at migration {newest}.\n")
    );
}

#[tokio::test]
async fn migrate_on_a_database_a_newer_tillmark_migrated_exits_1_naming_the_migration_it_lacks() {
    let dir = tempfile::tempdir().unwrap();
    let (file, url) = database_config(dir.path());
    store::open(&url).await.unwrap().close().await;
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (9999, 'from a newer tillmark', 1, x'00', 0)",
    )
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;
    let (code, stdout, stderr) = migrate(dir.path(), &file);
    assert_eq!(code, Some(1), "{stdout}");
    assert!(
        stderr.contains(&format!("error: migrating {url}: "))
            && stderr.contains("migration 9999 was previously applied"),
        "{stderr}"
    );
}
