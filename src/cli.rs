//! What the subcommands do, kept out of `main.rs` so they can be tested and reused.

use std::path::Path;

use anyhow::Context;

use crate::Daemon;
use crate::config::Config;
use crate::store;

/// Runs until SIGINT or SIGTERM, then shuts down in order; a second signal exits at once.
pub async fn run(config: Config, file: Option<&Path>) -> anyhow::Result<()> {
    let daemon = Daemon::start_from(config, file.map(Path::to_path_buf)).await?;
    wait_for_signal().await;
    tracing::info!(
        "Shutting down: stopping intake, then finishing deliveries. Signal again to exit at once."
    );
    tokio::spawn(async {
        wait_for_signal().await;
        tracing::warn!("Second signal: exiting now.");
        std::process::exit(130);
    });
    daemon.shutdown().await;
    Ok(())
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// A summary of a valid config, for `check-config`.
pub fn describe(config: &Config, file: Option<&Path>) -> String {
    let source = file
        .map(|f| f.display().to_string())
        .unwrap_or_else(|| "the embedded defaults".into());
    let broker = match &config.mqtt.url {
        Some(url) => url.to_string(),
        None => format!("embedded, on {}", config.mqtt.embedded_listen),
    };
    let types: Vec<&str> = config.bookmarks.types.iter().map(|t| t.as_str()).collect();
    format!(
        "{source} is valid.\n  broker: {broker} (topics: {})\n  database: {}\n  web index: http://{}/\n  \
         bookmarks: {} (pre-roll {}, post-roll {})\n  stores: {}, camera systems: {}, cameras: {}",
        config.mqtt.topics.join(", "),
        config.database.url,
        config.web.listen,
        types.join(", "),
        config.bookmarks.pre_roll,
        config.bookmarks.post_roll,
        config.stores.len(),
        config.camera_systems.len(),
        config.cameras.len(),
    )
}

/// `tillmark migrate`: applies the database's migrations without starting the daemon, and says which it applied
/// or that there were none: the deployment step that upgrades a database before the new version's daemons
/// start on it.
pub async fn migrate(config: &Config) -> anyhow::Result<String> {
    let url = &config.database.url;
    let before = applied_migrations(url).await?;
    // Opening the store is what migrates it, in one place for the daemon and this command.
    let store = store::open(url)
        .await
        .with_context(|| format!("migrating {url}"))?;
    store.close().await;
    let after = applied_migrations(url).await?;
    let named = |(version, description): &(i64, String)| format!("{version:04} {description}");
    let newest = after
        .last()
        .map(named)
        .unwrap_or_else(|| "none".to_string());
    let applied: Vec<String> = after
        .iter()
        .filter(|m| !before.contains(m))
        .map(named)
        .collect();
    Ok(match applied.len() {
        0 => format!("Nothing to apply: {url} is current, at migration {newest}.\n"),
        n => format!(
            "Applied {n} migration{} to {url}:\n  {}\nIt is current, at migration {newest}.\n",
            if n == 1 { "" } else { "s" },
            applied.join("\n  ")
        ),
    })
}

/// The migrations a SQLite database records as applied, `(version, description)` oldest first; none when the
/// file cannot be opened yet (it does not exist: `store::open` makes it). Read beside the store rather than
/// through it: it is sqlx's own record of the migrations that `store::open` runs, not the store's data.
async fn applied_migrations(url: &str) -> anyhow::Result<Vec<(i64, String)>> {
    use std::str::FromStr;

    use sqlx::sqlite::SqliteConnectOptions;
    use sqlx::{ConnectOptions, Connection};
    if !url.starts_with("sqlite:") {
        return Ok(Vec::new());
    }
    let Ok(mut conn) = SqliteConnectOptions::from_str(url)?
        .read_only(true)
        .connect()
        .await
    else {
        return Ok(Vec::new());
    };
    let recorded: Option<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'",
    )
    .fetch_optional(&mut conn)
    .await?;
    let applied =
        match recorded {
            Some(_) => sqlx::query_as(
                "SELECT version, description FROM _sqlx_migrations WHERE success ORDER BY version",
            )
            .fetch_all(&mut conn)
            .await?,
            None => Vec::new(),
        };
    conn.close().await?;
    Ok(applied)
}

/// `tillmark dead-letters`: the newest `limit`, dismissed ones marked, each payload's beginning only.
pub async fn dead_letters(config: &Config, limit: i64) -> anyhow::Result<()> {
    let store = store::open(&config.database.url)
        .await
        .with_context(|| format!("opening {}", config.database.url))?;
    let query = store::DeadLetterQuery {
        include_dismissed: true,
        limit,
    };
    let list = store.dead_letters(&query).await?;
    if list.is_empty() {
        println!("No rejected messages.");
    }
    for d in list {
        let dismissed = d
            .dismissed
            .as_ref()
            .map(|x| {
                format!(
                    " (dismissed by {} at {})",
                    x.by,
                    crate::web::iso_utc(x.at_ms)
                )
            })
            .unwrap_or_default();
        println!(
            "{}  {}{dismissed}\n  reason: {}\n  size: {} bytes, sha256: {}\n  payload: {}{}\n",
            crate::web::iso_utc(d.received_ms),
            d.topic,
            d.reason,
            d.size,
            d.sha256.as_deref().unwrap_or("not recorded"),
            d.raw,
            if d.raw_is_partial() { "…" } else { "" },
        );
    }
    store.close().await;
    Ok(())
}

/// What `tillmark dead-letters purge` removes: everything, what is older than `older_than`, or else what the
/// config's bounds (`[retention] dead_letters`, `[dead_letters] max_total`) leave out, as the daemon does every
/// hour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purge {
    Configured,
    OlderThan(crate::config::Millis),
    All,
}

/// `--older-than`: a duration (`7d`, `12h`) that is not negative, which would reach into the future and
/// remove every letter.
pub fn parse_age(text: &str) -> Result<crate::config::Millis, String> {
    let age = crate::config::parse_duration(text)?;
    if age.0 < 0 {
        return Err(format!(
            "\"{text}\" is negative: give how long ago, like \"7d\""
        ));
    }
    Ok(age)
}

/// Removes dead letters now and says what went and what is left.
pub async fn dead_letters_purge(config: &Config, purge: Purge) -> anyhow::Result<String> {
    use crate::config::Bytes;
    let store = store::open(&config.database.url)
        .await
        .with_context(|| format!("opening {}", config.database.url))?;
    let now = crate::clock::now_ms();
    let (bounds, age) = match purge {
        Purge::Configured => (
            crate::dead_letter_retention(config, now),
            config.retention.dead_letters,
        ),
        Purge::OlderThan(age) => (
            store::DeadLetterBounds {
                received_before_ms: Some(now.saturating_sub(age.0)),
                max_total_bytes: None,
            },
            age,
        ),
        Purge::All => (store::DeadLetterBounds::everything(), Default::default()),
    };
    let purged = store.purge_dead_letters(&bounds).await?;
    let left = store.dead_letter_totals().await?;
    store.close().await;
    let plural = |n: u64| if n == 1 { "" } else { "s" };
    let mut out = if purged.letters() == 0 {
        "No dead letters to remove.".to_string()
    } else {
        let n = purged.letters();
        let why = match purge {
            Purge::All => String::new(),
            _ => {
                let mut parts = vec![format!("{} older than {age}", purged.by_age)];
                if bounds.max_total_bytes.is_some() {
                    parts.push(format!(
                        "{} beyond the {} total",
                        purged.by_size, config.dead_letters.max_total
                    ));
                }
                format!(": {}", parts.join(", "))
            }
        };
        format!(
            "Removed {n} dead letter{} ({}){why}.",
            plural(n),
            Bytes(purged.bytes)
        )
    };
    let kept = left.letters.unsigned_abs();
    out.push_str(&format!(
        " {kept} kept ({}).\n",
        Bytes(left.kept_bytes.unsigned_abs())
    ));
    Ok(out)
}

/// `tillmark retry-failed`: what was queued again, on which camera, and what was left failed.
pub async fn retry_failed(config: &Config, system: Option<&str>) -> anyhow::Result<String> {
    if let Some(id) = system
        && !config.camera_systems.iter().any(|s| s.id == id)
    {
        let known: Vec<&str> = config
            .camera_systems
            .iter()
            .map(|s| s.id.as_str())
            .collect();
        anyhow::bail!(
            "no camera system \"{id}\" in the config; its camera systems: {}",
            if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            }
        );
    }
    let store = open_store(config).await?;
    let result = requeue_failed(config, &*store, system).await;
    store.close().await;
    result
}

/// Plans each failed bookmark again from the config as it is now, as intake would plan its event today: the
/// camera of the same system on the event's register (the same device, else the same name, else the one
/// camera of that system there), with that camera's offset and rolls. What no camera watches is left failed.
async fn requeue_failed(
    config: &Config,
    store: &dyn store::Store,
    system: Option<&str>,
) -> anyhow::Result<String> {
    let watchers = crate::config::Watchers::new(config);
    let now = crate::clock::now_ms();
    let (mut queued, mut moved, mut kept) = (0, Vec::new(), Vec::new());
    for failed in store.failed_bookmarks(system).await? {
        let cameras: Vec<&crate::config::CameraConfig> = watchers
            .cameras(&failed.store, &failed.register)
            .iter()
            .filter_map(|&i| config.cameras.get(i))
            .filter(|c| c.system == failed.system)
            .collect();
        let camera = cameras
            .iter()
            .find(|c| c.device == failed.device)
            .or_else(|| cameras.iter().find(|c| c.name == failed.camera))
            .or_else(|| (cameras.len() == 1).then(|| &cameras[0]));
        let Some(camera) = camera else {
            kept.push(format!(
                "{}/{}: no camera of {} watches it in the config",
                failed.store, failed.register, failed.system
            ));
            continue;
        };
        let plan = crate::ingest::bookmark_for(camera, failed.at_ms);
        if !store.requeue_failed(failed.id, &plan, now).await? {
            kept.push(format!(
                "bookmark {}: the event already has a bookmark on {} ({})",
                failed.id, camera.name, camera.device
            ));
            continue;
        }
        queued += 1;
        if plan.device != failed.device {
            moved.push(format!(
                "bookmark {}: {} → {} ({})",
                failed.id, failed.device, camera.device, camera.name
            ));
        }
    }
    let mut out = format!(
        "{queued} failed bookmark{} queued again, planned from the config as it is now; a running daemon delivers \
         them within seconds.\n",
        if queued == 1 { "" } else { "s" }
    );
    if !moved.is_empty() {
        out.push_str(&format!(
            "On another camera than before:\n  {}\n",
            moved.join("\n  ")
        ));
    }
    if !kept.is_empty() {
        out.push_str(&format!("Left failed:\n  {}\n", kept.join("\n  ")));
    }
    Ok(out)
}

/// Publishes until the duration ends or Ctrl-C, then prints what was published.
pub async fn simulate(options: crate::simulate::SimulateOptions) -> anyhow::Result<()> {
    let cancel = tokio_util::sync::CancellationToken::new();
    let on_signal = cancel.clone();
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        on_signal.cancel();
    });
    println!(
        "Publishing about {} events/s to {} for {} s (Ctrl-C stops)...",
        options.rate,
        options.broker,
        options.duration.as_secs()
    );
    let summary = crate::simulate::run(options, cancel).await?;
    println!("{summary}");
    Ok(())
}

/// The report of `tillmark integrations check` on the definitions `set` read from `dir` (else the config's
/// folder), and whether everything would deliver.
pub fn integrations_check(
    config: &Config,
    dir: Option<&Path>,
    set: crate::camera::definition::Set,
) -> (String, bool) {
    use std::fmt::Write;
    let dir = dir.unwrap_or(&config.integrations.dir);
    let mut out = String::new();
    let mut ok = true;
    let _ = writeln!(out, "Definitions (built in, and in {}):", dir.display());
    for (name, def) in &set.definitions {
        let from = set.source_of(def);
        let _ = writeln!(out, "  {name:<20} {from:<40} ok  ({})", def.title);
    }
    for file in &set.errors {
        ok = false;
        let _ = write!(out, "{file}");
    }
    if !config.camera_systems.is_empty() {
        let _ = writeln!(out, "Camera systems:");
    }
    let integrations = crate::camera::Integrations::of(dir, set.clone());
    for sys in &config.camera_systems {
        let name = sys.integration.name();
        let state = if set.definitions.contains_key(name) {
            // Every template rendered for a test event on one of the system's cameras, nothing sent.
            let problems = config
                .cameras
                .iter()
                .find(|c| c.system == sys.id)
                .map(
                    |cam| match crate::camera::adapter(config, sys, &integrations, None) {
                        Ok(adapter) => adapter.check_templates(&test_job(config, cam)),
                        Err(e) => vec![e.to_string()],
                    },
                )
                .unwrap_or_default();
            if problems.is_empty() {
                "ok".to_string()
            } else {
                ok = false;
                format!(
                    "a template fails for a test event:\n      {}",
                    problems.join("\n      ")
                )
            }
        } else {
            ok = false;
            format!(
                "no valid definition: its bookmarks will wait until {}/{name}.toml is valid",
                dir.display()
            )
        };
        let _ = writeln!(out, "  {:<20} -> {name:<20} {state}", sys.id);
    }
    (out, ok)
}

/// `tillmark integrations test --camera ID`: makes one real test bookmark on a camera now, through the same
/// adapter the daemon uses, and returns every exchange (secrets blanked) and whether it was made.
pub async fn integrations_test(
    config: &Config,
    dir: Option<&Path>,
    camera: &str,
    system: Option<&str>,
) -> anyhow::Result<(String, bool)> {
    use std::fmt::Write;
    let matches: Vec<&crate::config::CameraConfig> = config
        .cameras
        .iter()
        .filter(|c| {
            (c.device == camera || c.name == camera) && system.is_none_or(|s| c.system == s)
        })
        .collect();
    let cam = match matches.as_slice() {
        [one] => *one,
        [] => anyhow::bail!(
            "no camera \"{camera}\"{} in the config; cameras: {}",
            system
                .map(|s| format!(" on system \"{s}\""))
                .unwrap_or_default(),
            config
                .cameras
                .iter()
                .map(|c| format!("{} ({})", c.name, c.system))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        _ => anyhow::bail!("\"{camera}\" is a camera of several systems; name one with --system"),
    };
    let sys = config
        .camera_system(&cam.system)
        .context("the camera's system is not in the config")?;
    let dir = dir.unwrap_or(&config.integrations.dir);
    let integrations = crate::camera::Integrations::load(dir);
    let def = integrations.get(sys.integration.name()).with_context(|| {
        format!(
            "no valid definition \"{}\": run tillmark integrations check",
            sys.integration.name()
        )
    })?;
    let trace = crate::camera::Trace::default();
    let adapter = crate::camera::adapter(config, sys, &integrations, Some(trace.clone()))?;
    let job = test_job(config, cam);
    let mut out = String::new();
    let b = &job.bookmark;
    let _ = writeln!(
        out,
        "Test bookmark on camera {} (system {}, definition {}): moment {}, window {} to {}\n",
        cam.name,
        sys.id,
        def.name,
        crate::web::iso_utc(b.moment_ms),
        crate::web::iso_utc(b.start_ms),
        crate::web::iso_utc(b.start_ms + b.duration_ms),
    );
    let outcome = crate::camera::CameraSystem::deliver(&adapter, &job).await;
    for exchange in trace.lock().map(|t| t.clone()).unwrap_or_default() {
        let _ = writeln!(out, "{exchange}");
    }
    let made = matches!(outcome, crate::camera::Delivery::Made { .. });
    let _ = match outcome {
        crate::camera::Delivery::Made {
            vendor_id, detail, ..
        } => writeln!(
            out,
            "Made: {detail}{}",
            vendor_id
                .map(|v| format!("; vendor id {v}"))
                .unwrap_or_default()
        ),
        crate::camera::Delivery::Retry { error, .. } => {
            writeln!(out, "Not made (the daemon would retry): {error}")
        }
        crate::camera::Delivery::Paced { note, .. } => {
            writeln!(
                out,
                "Not made (the vendor asked to slow down; the daemon would wait): {note}"
            )
        }
        crate::camera::Delivery::Failed { error } => writeln!(out, "Failed: {error}"),
    };
    Ok((out, made))
}

/// A test event at this moment on the camera's first register, planned as the daemon plans any other.
fn test_job(config: &Config, cam: &crate::config::CameraConfig) -> store::Job {
    use chrono::TimeZone;
    let now = crate::clock::now_ms();
    let (store_id, register) = cam
        .registers
        .first()
        .map(|r| (r.store.clone(), r.register.clone()))
        .unwrap_or_else(|| ("test".into(), "test".into()));
    let zone = config
        .stores
        .iter()
        .find(|s| s.id == store_id)
        .map(|s| s.timezone)
        .unwrap_or(chrono_tz::UTC);
    let at = zone
        .timestamp_millis_opt(now)
        .single()
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, false))
        .unwrap_or_else(|| crate::web::iso_utc(now));
    let event = store::EventRecord {
        seq: 0,
        key: format!("tm-test-{}", uuid::Uuid::new_v4()),
        id: format!("tillmark-test-{now}"),
        kind: "test".into(),
        at,
        at_ms: now,
        sent_at: None,
        sent_at_ms: None,
        received_ms: now,
        store: store_id,
        register,
        cashier: None,
        transaction: None,
        amount: None,
        currency: None,
        reason: Some("tillmark integrations test".into()),
        lines: Vec::new(),
        attributes: serde_json::Map::new(),
        flagged: true,
        mapped: true,
        topic: String::new(),
        signed: None,
        reused: 0,
        bookmarks: Vec::new(),
        case: None,
    };
    let planned = crate::ingest::bookmark_for(cam, now);
    store::Job {
        bookmark: store::BookmarkRecord {
            id: 0,
            system: planned.system,
            device: planned.device,
            camera: planned.camera,
            moment_ms: planned.moment_ms,
            start_ms: planned.start_ms,
            duration_ms: planned.duration_ms,
            state: store::BookmarkState::Pending,
            attempts: 0,
            next_attempt_ms: None,
            vendor_id: None,
            last_error: None,
            made_ms: None,
            made_as: None,
        },
        maybe_created: false,
        event,
    }
}

/// The password for `user add` or `user passwd`: one line from standard input, or a new random one that is
/// printed once.
fn password(from_stdin: bool) -> anyhow::Result<(String, bool)> {
    if !from_stdin {
        return Ok((crate::accounts::random_secret(), true));
    }
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .context("reading the password from standard input")?;
    Ok((line.trim_end_matches(['\r', '\n']).to_string(), false))
}

async fn open_store(config: &Config) -> anyhow::Result<std::sync::Arc<dyn store::Store>> {
    store::open(&config.database.url)
        .await
        .with_context(|| format!("opening {}", config.database.url))
}

/// `tillmark user add`: returns what to print.
pub async fn user_add(
    config: &Config,
    name: &str,
    role: &str,
    stores: &[String],
    password_stdin: bool,
) -> anyhow::Result<String> {
    use crate::accounts::{Role, check_name, check_stores, hash_password};
    check_name(name).map_err(anyhow::Error::msg)?;
    let role = Role::parse(role).with_context(|| {
        format!("\"{role}\" is not a role: use owner, manager, investigator or integrator")
    })?;
    let known: Vec<&str> = config.stores.iter().map(|s| s.id.as_str()).collect();
    check_stores(role, stores, &known).map_err(anyhow::Error::msg)?;
    let (password, made_up) = password(password_stdin)?;
    let hash = hash_password(&password).map_err(anyhow::Error::msg)?;
    let store = open_store(config).await?;
    let new = crate::accounts::NewUser {
        name: name.to_string(),
        role,
        stores: stores.to_vec(),
        password_hash: hash,
    };
    let added = store.add_user(&new, crate::clock::now_ms()).await;
    if let Ok(user) = &added {
        let detail = format!("{} {}", user.role, user.stores.join(","));
        audit_cli(&*store, "user_added", name, Some(detail.trim().to_string())).await?;
    }
    store.close().await;
    let user = added?;
    let scope = if user.stores.is_empty() {
        String::new()
    } else {
        format!(" for {}", user.stores.join(", "))
    };
    let mut out = format!("Added {} as {}{scope}.\n", user.name, user.role);
    if made_up {
        out.push_str(&format!(
            "Password (shown once; they can change it after signing in): {password}\n"
        ));
    }
    Ok(out)
}

/// `tillmark user passwd`.
pub async fn user_passwd(
    config: &Config,
    name: &str,
    password_stdin: bool,
    keep_tokens: bool,
) -> anyhow::Result<String> {
    let (password, made_up) = password(password_stdin)?;
    let hash = crate::accounts::hash_password(&password).map_err(anyhow::Error::msg)?;
    let store = open_store(config).await?;
    let set = store
        .set_password(name, &hash, crate::clock::now_ms(), keep_tokens)
        .await;
    if let Ok(revoked) = &set {
        let detail = (*revoked > 0).then(|| format!("{revoked} API tokens revoked"));
        audit_cli(&*store, "password_set", name, detail).await?;
    }
    store.close().await;
    let revoked = set?;
    let mut out = if made_up {
        format!("New password for {name} (shown once): {password}\n")
    } else {
        format!("Password of {name} changed.\n")
    };
    if revoked > 0 {
        out.push_str(&format!(
            "Their {revoked} API tokens are revoked (keep them with --keep-tokens).\n"
        ));
    }
    Ok(out)
}

/// `tillmark user list`.
pub async fn user_list(config: &Config) -> anyhow::Result<String> {
    let store = open_store(config).await?;
    let users = store.users().await;
    store.close().await;
    let users = users?;
    if users.is_empty() {
        return Ok(NO_USERS.to_string());
    }
    let mut out = String::new();
    for u in users {
        let stores = if u.stores.is_empty() {
            match u.role {
                crate::accounts::Role::Owner => "all stores".to_string(),
                _ => "no events".to_string(),
            }
        } else {
            u.stores.join(", ")
        };
        let code = if u.totp { ", authenticator code" } else { "" };
        out.push_str(&format!(
            "{:<24} {:<13} {stores}{code}\n",
            u.name,
            u.role.as_str()
        ));
    }
    Ok(out)
}

/// `tillmark user totp NAME [--off]`: gives the person a new authenticator key (replacing any they had) and
/// returns what to print, the key once; or with `off` removes it. Any role may have one; it is meant for the
/// owners and investigators, who reach footage and cases.
pub async fn user_totp(config: &Config, name: &str, off: bool) -> anyhow::Result<String> {
    use crate::totp::{DIGITS, STEP_S, TotpSecret};
    let store = open_store(config).await?;
    let secret = (!off).then(TotpSecret::generate);
    let set = store
        .set_totp(name, secret.as_ref(), crate::clock::now_ms())
        .await;
    match (&set, &secret) {
        (Ok(had), Some(_)) => {
            let detail = had.then(|| "replaced the previous key".to_string());
            audit_cli(&*store, "totp_enabled", name, detail).await?
        }
        (Ok(true), None) => audit_cli(&*store, "totp_disabled", name, None).await?,
        _ => {}
    }
    store.close().await;
    let had = set?;
    let Some(secret) = secret else {
        return Ok(if had {
            format!(
                "{name} signs in with the password alone from now on: no authenticator code is asked.\n"
            )
        } else {
            format!("{name} had no authenticator code; nothing changed.\n")
        });
    };
    let key = secret.expose_base32();
    let grouped: Vec<String> = key
        .as_bytes()
        .chunks(4)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect();
    let mut out = format!(
        "Authenticator code turned on for {name}: from their next sign-in the index asks for it after the \
         password.\n"
    );
    if had {
        out.push_str("This key replaces their previous one, whose codes no longer work.\n");
    }
    out.push_str(&format!(
        "Add it to their authenticator app (shown once; keep it as secret as a password):\n  {}\n\
         Or type the key by hand (time-based, {DIGITS} digits, every {STEP_S} seconds):\n  {}\n",
        secret.otpauth_uri(name),
        grouped.join(" "),
    ));
    Ok(out)
}

/// `tillmark user remove`.
pub async fn user_remove(config: &Config, name: &str) -> anyhow::Result<String> {
    let store = open_store(config).await?;
    let removed = store.remove_user(name).await;
    if removed.is_ok() {
        audit_cli(&*store, "user_removed", name, None).await?;
    }
    store.close().await;
    removed?;
    Ok(format!("Removed {name} and their API tokens.\n"))
}

/// Writes a change made on the command line to the audit log, in the name of the system account that ran
/// it: people act in the index as themselves; on the machine, as whoever holds it.
async fn audit_cli(
    store: &dyn store::Store,
    action: &str,
    target: &str,
    detail: Option<String>,
) -> anyhow::Result<()> {
    let actor = cli_actor();
    store
        .record(&store::NewAuditEntry {
            at_ms: crate::clock::now_ms(),
            actor: Some(actor.name),
            address: actor.address,
            action: action.to_string(),
            target: Some(target.to_string()),
            detail,
        })
        .await
        .context("the change was made, but the audit log could not record it")?;
    Ok(())
}

/// The system account running a command, as the audit log names it: `cli:` and the account (the one behind
/// `sudo`, if any).
fn cli_actor() -> crate::retention::Actor {
    let who = std::env::var("SUDO_USER")
        .or_else(|_| std::env::var("USER"))
        .unwrap_or_else(|_| "unknown".into());
    crate::retention::Actor {
        name: format!("cli:{who}"),
        address: Some("command line".into()),
    }
}

/// `tillmark retention purge`: applies `[retention]` now; returns what to print.
pub async fn retention_purge(config: &Config) -> anyhow::Result<String> {
    let store = open_store(config).await?;
    let report =
        crate::retention::purge(&*store, config, crate::clock::now_ms(), &cli_actor()).await;
    store.close().await;
    let report = report?;
    if !report.removed_anything() {
        let mut out = String::from("Nothing is older than [retention] allows; nothing removed.\n");
        if report.events.held_open_case + report.events.held_pending > 0 {
            out.push_str(
                &report
                    .to_string()
                    .lines()
                    .skip(1)
                    .collect::<Vec<_>>()
                    .join("\n"),
            );
            out.push('\n');
        }
        return Ok(out);
    }
    Ok(report.to_string())
}

/// A cashier id as given on the command line: what the event contract allows in the field.
fn person_id(id: &str) -> anyhow::Result<&str> {
    if id.trim().is_empty() || id.chars().count() > 128 {
        anyhow::bail!("--cashier: give the id as the registers send it (1 to 128 characters)");
    }
    Ok(id)
}

/// Every event naming `id`, oldest first, read in pages.
async fn events_naming(
    store: &dyn store::Store,
    id: &str,
    only: Option<&str>,
) -> anyhow::Result<Vec<store::EventRecord>> {
    let mut all = Vec::new();
    let mut after = 0;
    loop {
        let page = store.events_naming(id, only, after, 1000).await?;
        let Some(last) = page.last() else {
            return Ok(all);
        };
        after = last.seq;
        all.extend(page);
    }
}

/// One exported event: everything the index keeps of it, with its bookmarks and where their footage opens.
fn export_line(
    config: &Config,
    integrations: &crate::camera::Integrations,
    e: &store::EventRecord,
) -> serde_json::Value {
    let bookmarks: Vec<serde_json::Value> = e
        .bookmarks
        .iter()
        .map(|b| {
            let links = config
                .camera_system(&b.system)
                .map(|sys| crate::camera::footage_links(sys, integrations, &b.device, b.start_ms))
                .unwrap_or_default();
            serde_json::json!({
                "system": b.system, "device": b.device, "camera": b.camera,
                "start": crate::web::iso_utc(b.start_ms), "duration_ms": b.duration_ms,
                "state": b.state, "vendor_id": b.vendor_id, "made": b.made_ms.map(crate::web::iso_utc),
                "made_as": b.made_as, "footage": links,
            })
        })
        .collect();
    serde_json::json!({
        "store": e.store, "register": e.register, "id": e.id, "key": e.key, "type": e.kind, "at": e.at,
        "received": crate::web::iso_utc(e.received_ms), "cashier": e.cashier, "transaction": e.transaction,
        "amount": e.amount, "currency": e.currency, "reason": e.reason, "lines": e.lines,
        "attributes": e.attributes, "topic": e.topic,
        "case": e.case.as_ref().map(|c| c.state.as_str()), "bookmarks": bookmarks,
    })
}

/// `tillmark person export`: every event naming the cashier as JSON lines, to `out` or standard output; the
/// count goes to standard error (or standard output with `--out`), and to the audit log under the person's
/// pseudonym.
pub async fn person_export(
    config: &Config,
    id: &str,
    only: Option<&str>,
    out: Option<&Path>,
) -> anyhow::Result<()> {
    use std::io::Write;
    let id = person_id(id)?;
    let store = open_store(config).await?;
    let found = events_naming(&*store, id, only).await;
    let pseudonym = crate::retention::pseudonym(&*store, id).await;
    let (found, pseudonym) = match (found, pseudonym) {
        (Ok(f), Ok(p)) => (f, p),
        (Err(e), _) => {
            store.close().await;
            return Err(e);
        }
        (_, Err(e)) => {
            store.close().await;
            return Err(e.into());
        }
    };
    let integrations = crate::camera::Integrations::load(&config.integrations.dir);
    let mut text = String::new();
    for e in &found {
        text.push_str(&export_line(config, &integrations, e).to_string());
        text.push('\n');
    }
    let written = match out {
        Some(file) => {
            std::fs::write(file, &text).with_context(|| format!("writing {}", file.display()))
        }
        None => std::io::stdout()
            .lock()
            .write_all(text.as_bytes())
            .context("writing to standard output"),
    };
    if let Err(e) = written {
        store.close().await;
        return Err(e);
    }
    let scope = only.map(|s| format!(" of store {s}")).unwrap_or_default();
    let audited = audit_cli(
        &*store,
        "person_exported",
        &format!("cashier {pseudonym}"),
        Some(format!("{} events{scope}", found.len())),
    )
    .await;
    store.close().await;
    audited?;
    let summary = format!(
        "Exported {} events naming cashier {id}{scope} (the audit log names them {pseudonym}).",
        found.len()
    );
    match out {
        Some(file) => println!("{summary} Written to {}.", file.display()),
        None => eprintln!("{summary}"),
    }
    Ok(())
}

/// `tillmark person erase`: asks (unless `yes`), replaces the id by its pseudonym, re-indexes, scrubs the
/// files; returns what to print.
pub async fn person_erase(
    config: &Config,
    id: &str,
    only: Option<&str>,
    yes: bool,
) -> anyhow::Result<String> {
    let id = person_id(id)?;
    let store = open_store(config).await?;
    let result = erase(&*store, id, only, yes).await;
    store.close().await;
    result
}

async fn erase(
    store: &dyn store::Store,
    id: &str,
    only: Option<&str>,
    yes: bool,
) -> anyhow::Result<String> {
    let pseudonym = crate::retention::pseudonym(store, id).await?;
    let scope = only.map(|s| format!(" of store {s}")).unwrap_or_default();
    if !yes {
        let found = events_naming(store, id, only).await?;
        let open = found
            .iter()
            .filter(|e| {
                e.case
                    .as_ref()
                    .is_some_and(|c| c.state == store::CaseState::Open)
            })
            .count();
        eprint!(
            "This replaces cashier {id} by {pseudonym} in {} events{scope} (the events stay; {open} in an open \
             case are left as they are), in the search index and in the dead letters. It cannot be undone.\n\
             Type yes to go on: ",
            found.len() - open
        );
        let mut answer = String::new();
        std::io::stdin()
            .read_line(&mut answer)
            .context("reading the answer from standard input")?;
        if answer.trim() != "yes" {
            anyhow::bail!("not confirmed; nothing was changed");
        }
    }
    let erased = store.erase_identifier(id, only, &pseudonym).await?;
    // The changed events left the search indexes; put them back with their new text before the indexes are
    // merged, so the scrub leaves a whole index.
    while store.index_search(1000).await? == 1000 {}
    audit_cli(
        store,
        "person_erased",
        &format!("cashier {pseudonym}"),
        Some(format!(
            "events={} held_open_case={} dead_letters={} case_notes_kept={}{}",
            erased.events,
            erased.held,
            erased.dead_letters,
            erased.case_notes,
            only.map(|s| format!(" store={s}")).unwrap_or_default()
        )),
    )
    .await?;
    let scrubbed = store.scrub().await?;
    let mut out = format!(
        "Replaced cashier {id} by {pseudonym} in {} events{scope} and {} dead letters.\n",
        erased.events, erased.dead_letters
    );
    if erased.held > 0 {
        out.push_str(&format!(
            "Left {} events in an open case as they are (legal hold): erase again once their cases are closed.\n",
            erased.held
        ));
    }
    if erased.case_notes > 0 {
        out.push_str(&format!(
            "{} case notes name the id and are kept as written: the case history is evidence, only ever added to.\n",
            erased.case_notes
        ));
    }
    if !scrubbed.wal_emptied {
        out.push_str(
            "The write-ahead log is in use by a running daemon and still holds old pages; it is emptied at its next \
             checkpoint.\n",
        );
    }
    out.push_str(
        "Bookmarks already made on camera systems keep the names they were given there: \
         `tillmark person export` lists them by vendor id.\n",
    );
    Ok(out)
}

/// `tillmark person pseudonym`: what the audit log calls the person with this id.
pub async fn person_pseudonym(config: &Config, id: &str) -> anyhow::Result<String> {
    let id = person_id(id)?;
    let store = open_store(config).await?;
    let pseudonym = crate::retention::pseudonym(&*store, id).await;
    store.close().await;
    Ok(pseudonym?)
}

/// `tillmark audit export --since AGE`: the log's rows from then on, oldest first, one JSON object a line,
/// for a SIEM.
pub async fn audit_export(config: &Config, since: crate::config::Millis) -> anyhow::Result<()> {
    use std::io::Write;
    let store = open_store(config).await?;
    let from_ms = crate::clock::now_ms() - since.0;
    let mut rows = Vec::new();
    let mut before = None;
    let result = loop {
        let page = store
            .audit(&store::AuditQuery {
                from_ms: Some(from_ms),
                before,
                limit: 1000,
                ..Default::default()
            })
            .await;
        match page {
            Ok(page) if page.is_empty() => break Ok(()),
            Ok(page) => {
                before = page.last().map(|e| e.id);
                rows.extend(page);
            }
            Err(e) => break Err(e),
        }
    };
    store.close().await;
    result?;
    let mut out = std::io::stdout().lock();
    for e in rows.iter().rev() {
        let at = chrono::DateTime::from_timestamp_millis(e.at_ms)
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
        let line = serde_json::json!({
            "id": e.id, "at": at, "actor": e.actor, "address": e.address, "action": e.action,
            "target": e.target, "detail": e.detail,
        });
        writeln!(out, "{line}")?;
    }
    Ok(())
}

/// `tillmark audit verify`: the chain's state on stdout; an error (exit 1) naming the first broken row.
pub async fn audit_verify(config: &Config) -> anyhow::Result<()> {
    let store = open_store(config).await?;
    let check = store.verify_audit().await;
    store.close().await;
    let check = check?;
    let before = match check.before_chain {
        0 => String::new(),
        n => format!(" ({n} from before the chain began are not covered)"),
    };
    let from = match &check.checkpoint {
        Some(c) => format!(
            ", from retention checkpoint row {} on ({} older rows removed by retention)",
            c.id, c.removed
        ),
        None => String::new(),
    };
    match check.broken {
        None => {
            println!(
                "The audit log is intact: {} rows, each chained to the one before{from}{before}.",
                check.rows
            );
            Ok(())
        }
        Some((id, why)) => anyhow::bail!(
            "the audit log is broken at row {id}: it {why}. Rows before it are intact; keep the file as it is \
             for whoever investigates."
        ),
    }
}

/// `tillmark token create`: the token is printed once and only its digest is kept.
pub async fn token_create(
    config: &Config,
    user: &str,
    label: &str,
    expires: Option<crate::config::Millis>,
) -> anyhow::Result<String> {
    let expires = expires.unwrap_or(config.web.token_lifetime);
    let token = crate::accounts::new_token();
    let store = open_store(config).await?;
    let now = crate::clock::now_ms();
    let expires_ms = now + expires.0;
    let added = store
        .add_token(
            user,
            label,
            &crate::accounts::token_digest(&token),
            now,
            Some(expires_ms),
        )
        .await;
    if added.is_ok() {
        audit_cli(&*store, "token_created", user, Some(label.to_string())).await?;
    }
    store.close().await;
    added?;
    Ok(format!(
        "API token for {user} ({label}), shown once: keep it where scripts read secrets.\n\
         Send it as: Authorization: Bearer {token}\n\
         It works until {}.\n",
        utc(expires_ms)
    ))
}

/// A moment as the token list shows it: UTC to the minute.
fn utc(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_else(|| ms.to_string())
}

/// `tillmark token list [NAME]`.
pub async fn token_list(config: &Config, user: Option<&str>) -> anyhow::Result<String> {
    let store = open_store(config).await?;
    let tokens = store.tokens(user).await;
    store.close().await;
    let tokens = tokens?;
    if tokens.is_empty() {
        return Ok("No API tokens.\n".into());
    }
    let now = crate::clock::now_ms();
    let mut out = String::from("id  user  label  made  last used  expires\n");
    for t in tokens {
        let expires = match t.expires_ms {
            None => "never".to_string(),
            Some(at) if at <= now => format!("expired {}", utc(at)),
            Some(at) => utc(at),
        };
        out.push_str(&format!(
            "{}  {}  {}  {}  {}  {expires}\n",
            t.id,
            t.user,
            t.label,
            utc(t.created_ms),
            t.last_used_ms.map(utc).unwrap_or_else(|| "never".into()),
        ));
    }
    Ok(out)
}

/// `tillmark token revoke ID`.
pub async fn token_revoke(config: &Config, id: i64) -> anyhow::Result<String> {
    let store = open_store(config).await?;
    let revoked = store.revoke_token(id).await;
    if let Ok(Some(t)) = &revoked {
        audit_cli(&*store, "token_revoked", &t.user, Some(t.label.clone())).await?;
    }
    store.close().await;
    match revoked? {
        Some(t) => Ok(format!(
            "Revoked token {id} of {} ({}): it no longer works.\n",
            t.user, t.label
        )),
        None => anyhow::bail!("no API token {id}: `tillmark token list` shows their ids"),
    }
}

/// What to do when nobody can sign in yet.
pub const NO_USERS: &str = "No users yet, so nobody can sign in to the index. Create the first owner \
    (a password is made up and printed once) with:\n  tillmark user add NAME --role owner [--config FILE]\n";

/// How far back `tillmark rules list` counts.
const RULES_LIST_SPAN_MS: i64 = 30 * 86_400_000;

/// `tillmark rules list`: each rule, what it looks for, and its exceptions in the last 30 days.
pub async fn rules_list(config: &Config) -> anyhow::Result<String> {
    use std::fmt::Write;
    if config.rules.is_empty() {
        return Ok("No [[rules]] in the config.\n".into());
    }
    let store = store::open(&config.database.url)
        .await
        .with_context(|| format!("opening {}", config.database.url))?;
    let counts = store
        .exception_counts(
            &store::StoreScope::All,
            crate::clock::now_ms() - RULES_LIST_SPAN_MS,
        )
        .await;
    store.close().await;
    let counts = counts?;
    let mut out = String::new();
    for rule in &config.rules {
        let n = counts
            .iter()
            .find(|(id, _)| *id == rule.id)
            .map_or(0, |(_, n)| *n);
        let stores = if rule.stores.is_empty() {
            "every store".to_string()
        } else {
            rule.stores.join(", ")
        };
        writeln!(
            out,
            "{}  {}  {}  {stores}{}  {n} in the last 30 days",
            rule.id,
            rule.kind.name(),
            rule.severity.as_str(),
            if rule.bookmark { "  bookmarks" } else { "" },
        )?;
    }
    Ok(out)
}

/// `tillmark rules test`: the matches `rule_id` would have made among the events of the last `since`, one a
/// line (store-local moment, store and register, type, amount, why), then their count. Records nothing.
pub async fn rules_test(
    config: &Config,
    rule_id: &str,
    since: crate::config::Millis,
) -> anyhow::Result<String> {
    use std::fmt::Write;
    let Some(rule) = config.rules.iter().find(|r| r.id == rule_id) else {
        let known: Vec<&str> = config.rules.iter().map(|r| r.id.as_str()).collect();
        anyhow::bail!(
            "no rule \"{rule_id}\" in the config; its rules are: {}",
            if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            }
        );
    };
    let store = store::open(&config.database.url)
        .await
        .with_context(|| format!("opening {}", config.database.url))?;
    let since_ms = crate::clock::now_ms() - since.0;
    let found = crate::rules::backtest(&*store, config, rule, since_ms).await;
    store.close().await;
    let found = found?;
    let mut out = String::new();
    for (hit, event) in &found {
        let amount = event
            .amount
            .map(|a| crate::money::format_amount(a, event.currency.as_deref()))
            .unwrap_or_else(|| "-".into());
        writeln!(
            out,
            "{}  {}/{}  {}  {amount}  event {}  {}",
            crate::rules::local_time(config, &event.store, event.at_ms),
            event.store,
            event.register,
            event.kind,
            hit.event_seq,
            hit.why.text()
        )?;
    }
    writeln!(
        out,
        "{} match{} of rule {} ({}) in the last {since}.",
        found.len(),
        if found.len() == 1 { "" } else { "es" },
        rule.id,
        rule.kind.name()
    )?;
    Ok(out)
}

/// `tillmark evidence export`: writes the evidence package of event `seq`'s case to `out`, which must not
/// exist yet (an earlier package is never overwritten); returns what to print.
pub async fn evidence_export(config: &Config, seq: i64, out: &Path) -> anyhow::Result<String> {
    // Before anything is fetched or recorded: a package that cannot be written is not made.
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(out)
        .with_context(|| format!("cannot create {} (it must not exist yet)", out.display()))?;
    let made = async {
        let store = open_store(config).await?;
        let integrations = crate::camera::Integrations::load(&config.integrations.dir);
        let made = async {
            let cameras = crate::camera::Cameras::build(config, &integrations)?;
            let sources = crate::evidence::Sources {
                store: &*store,
                config,
                integrations: &integrations,
                cameras: &cameras,
            };
            let actor = cli_actor();
            let now = crate::clock::now_ms();
            let made =
                crate::evidence::export(&sources, seq, &store::StoreScope::All, &actor, now, file)
                    .await?;
            made.out
                .sync_all()
                .with_context(|| format!("writing {}", out.display()))?;
            anyhow::Ok(made)
        }
        .await;
        store.close().await;
        made
    }
    .await;
    let made = match made {
        Ok(made) => made,
        Err(e) => {
            // What was written is no package.
            let _ = std::fs::remove_file(out);
            return Err(e);
        }
    };
    Ok(format!(
        "Wrote {}: the case of event {seq}, {} files, manifest SHA-256 {}, signed with the key of fingerprint {}.\n",
        out.display(),
        made.files,
        made.manifest_sha256,
        made.fingerprint
    ))
}

/// `tillmark evidence key`: the installation's public key (made on first use) and its fingerprint.
pub async fn evidence_key(config: &Config) -> anyhow::Result<String> {
    let store = open_store(config).await?;
    let key = crate::evidence::EvidenceKey::of(&*store).await;
    store.close().await;
    let key = key?.public();
    Ok(format!(
        "Evidence packages of this installation are signed with this Ed25519 key.\n\
         public key (hex):    {}\n\
         public key (base64): {}\n\
         fingerprint:         {}\n\
         Give the fingerprint (or the key) to whoever checks a package: without --key, `tillmark evidence verify` \
         checks a package against the key inside it, which anyone could have made.\n",
        key.hex(),
        key.base64(),
        key.fingerprint()
    ))
}

/// `tillmark evidence verify`: what to print for an intact package; an error (exit 1) naming every file that
/// fails.
pub fn evidence_verify(file: &Path, key: Option<&str>) -> anyhow::Result<String> {
    let key = key
        .map(crate::evidence::PublicKey::parse)
        .transpose()
        .map_err(|e| anyhow::anyhow!("--key: {e}"))?;
    let archive = std::fs::File::open(file)
        .map(std::io::BufReader::new)
        .with_context(|| format!("reading {}", file.display()))?;
    match crate::evidence::verify(archive, key) {
        Ok(v) => {
            let against = if v.given {
                format!("the key given (fingerprint {})", v.key.fingerprint())
            } else {
                format!(
                    "the key inside the package (fingerprint {}). A package signed by any key verifies against \
                     itself: compare this fingerprint with the installation's (`tillmark evidence key`), or check \
                     with --key",
                    v.key.fingerprint()
                )
            };
            Ok(format!(
                "{}: intact. The case of event {}, made {} by {}: {} files match their SHA-256 in {}, whose \
                 SHA-256 is {}; its signature verifies with {against}.\n",
                file.display(),
                v.manifest.event,
                v.manifest.made_at,
                v.manifest.made_by,
                v.manifest.files.len(),
                crate::evidence::MANIFEST,
                v.manifest_sha256
            ))
        }
        Err(problems) => anyhow::bail!(
            "{} does not verify:\n  {}",
            file.display(),
            problems.join("\n  ")
        ),
    }
}
