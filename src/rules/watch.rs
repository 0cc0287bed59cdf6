//! Follows the config file for `[[rules]]`: a change that reads as a valid config swaps the rule set in whole;
//! an invalid one is reported, every problem with its key and line, and the rules running stay. What else the
//! file configures is built once at start: a change to it is said at WARN, with what to do (restart).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::Rules;
use crate::config::Config;

/// Editors write a file in several steps (truncate, write, rename): what they leave is read once they settle.
const SETTLE: Duration = Duration::from_millis(500);

/// A slow look that catches what file events miss (a network file system, a watch lost to a rename).
const LOOK_EVERY: Duration = Duration::from_secs(5);

/// Watches `path` until `cancel`, swapping `rules` for each valid version of the file. `running` is the config
/// the daemon started with: a change outside `[[rules]]` is compared with it.
pub async fn watch(path: PathBuf, running: Arc<Config>, rules: Rules, cancel: CancellationToken) {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let mut watcher = notify::recommended_watcher(move |_event: notify::Result<notify::Event>| {
        let _ = tx.send(());
    })
    .ok();
    // The folder, not the file: an editor that saves by rename replaces the file the watch was on.
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    let mut watching = false;
    let mut seen = std::fs::read(&path).ok();
    let mut tick = tokio::time::interval(LOOK_EVERY);
    loop {
        if !watching && let Some(w) = watcher.as_mut() {
            use notify::Watcher;
            watching = w.watch(&dir, notify::RecursiveMode::NonRecursive).is_ok();
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            Some(()) = rx.recv() => {
                tokio::time::sleep(SETTLE).await;
                while rx.try_recv().is_ok() {}
            }
            _ = tick.tick() => {}
        }
        let now = std::fs::read(&path).ok();
        if now.is_none() || now == seen {
            // A file gone for a moment (between an editor's delete and its write) changes nothing.
            continue;
        }
        seen = now;
        reload(&path, &running, &rules);
    }
}

/// Reads the file again and swaps the rules if it is valid.
pub fn reload(path: &Path, running: &Config, rules: &Rules) {
    match Config::load(Some(path)) {
        Ok(new) => {
            if without_rules(&new) != without_rules(running) {
                tracing::warn!(file = %path.display(),
                    "The config file changed outside [[rules]]; those changes take effect at the next restart.");
            }
            tracing::info!(file = %path.display(), rules = new.rules.len(),
                "Rules reloaded from the config file.");
            rules.store(Arc::new(new.rules));
        }
        Err(errors) => {
            for e in &errors.errors {
                tracing::warn!(file = %path.display(), line = e.line, key = %e.path, "{}", e.message);
            }
            tracing::warn!(file = %path.display(),
                "The config file has errors; the rules running stay until it is fixed.");
        }
    }
}

/// What the daemon built at start from a config: all of it but the rules, as text (secrets print redacted).
fn without_rules(config: &Config) -> String {
    format!(
        "{:?}",
        Config {
            rules: Vec::new(),
            ..config.clone()
        }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const STORE: &str = "[[stores]]\nid = \"shibuya-01\"\ntimezone = \"Asia/Tokyo\"\n";

    fn rule(id: &str) -> String {
        format!("[[rules]]\nid = \"{id}\"\nkind = \"outside_hours\"\n")
    }

    fn ids(rules: &Rules) -> Vec<String> {
        rules.load().iter().map(|r| r.id.clone()).collect()
    }

    /// Waits up to 10 s for the running rules to become `want`.
    async fn until(rules: &Rules, want: &[&str]) {
        for _ in 0..100 {
            if ids(rules) == want {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(ids(rules), want);
    }

    #[tokio::test]
    async fn a_saved_config_swaps_the_rules_and_a_broken_one_keeps_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tillmark.toml");
        std::fs::write(&path, format!("{STORE}{}", rule("night"))).unwrap();
        let running = Arc::new(Config::load(Some(&path)).unwrap());
        let rules: Rules = Arc::new(arc_swap::ArcSwap::from_pointee(running.rules.clone()));
        let cancel = CancellationToken::new();
        let watcher = tokio::spawn(watch(
            path.clone(),
            running.clone(),
            rules.clone(),
            cancel.clone(),
        ));
        tokio::time::sleep(Duration::from_millis(200)).await;
        std::fs::write(&path, format!("{STORE}{}{}", rule("night"), rule("late"))).unwrap();
        until(&rules, &["night", "late"]).await;
        // Saved by rename, as many editors do, with a mistake in it: the rules running stay.
        let draft = dir.path().join("tillmark.toml.swp");
        std::fs::write(&draft, format!("{STORE}{}kind = \"velocity\"\n", rule("x"))).unwrap();
        std::fs::rename(&draft, &path).unwrap();
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(ids(&rules), ["night", "late"]);
        // Fixed: taken.
        std::fs::write(&path, format!("{STORE}{}", rule("fixed"))).unwrap();
        until(&rules, &["fixed"]).await;
        cancel.cancel();
        watcher.await.unwrap();
    }
}
