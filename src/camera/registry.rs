//! The running set of vendor definitions, swapped atomically on reload. A reload that finds any broken file
//! keeps the definitions that were running and records the errors, so one typo never stops deliveries; a
//! file that is gone takes its definition with it, and that system's bookmarks wait until one returns.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use tokio_util::sync::CancellationToken;

use super::definition::{self, Definition, Set};

#[derive(Clone)]
pub struct Integrations {
    dir: PathBuf,
    current: Arc<ArcSwap<Set>>,
    /// Counts swaps, so others can act on a change (pending bookmarks may now have a definition).
    swaps: Arc<tokio::sync::watch::Sender<u64>>,
}

/// What the folder looked like at the last look: file names, sizes and modification times.
type Fingerprint = Vec<(PathBuf, u64, Option<SystemTime>)>;

fn fingerprint(dir: &Path) -> Fingerprint {
    let mut files: Fingerprint = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .filter(|e| e.path().extension().is_some_and(|x| x == "toml"))
                .filter_map(|e| {
                    e.metadata()
                        .ok()
                        .map(|m| (e.path(), m.len(), m.modified().ok()))
                })
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

impl Integrations {
    /// Loads the built-in definitions and the folder's; errors are logged and kept for display.
    pub fn load(dir: &Path) -> Integrations {
        let set = definition::load_all(dir);
        log_errors(&set);
        Integrations::of(dir, set)
    }

    /// Definitions already read from `dir`, without logging their problems again (`integrations check`
    /// reports them itself).
    pub fn of(dir: &Path, set: Set) -> Integrations {
        Integrations {
            dir: dir.to_path_buf(),
            current: Arc::new(ArcSwap::from_pointee(set)),
            swaps: Arc::new(tokio::sync::watch::Sender::new(0)),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn get(&self, name: &str) -> Option<Arc<Definition>> {
        self.current.load().definitions.get(name).cloned()
    }

    /// Changes each time a new set of definitions goes into service.
    pub fn swaps(&self) -> tokio::sync::watch::Receiver<u64> {
        self.swaps.subscribe()
    }

    pub fn snapshot(&self) -> Arc<Set> {
        self.current.load_full()
    }

    /// Reads the folder again and swaps the new set in, unless a file is broken.
    pub fn reload(&self) {
        let new = definition::load_all(&self.dir);
        log_errors(&new);
        if new.errors.is_empty() {
            let names: Vec<&str> = new.definitions.keys().map(String::as_str).collect();
            tracing::info!(dir = %self.dir.display(), definitions = ?names, "Vendor definitions reloaded.");
            self.current.store(Arc::new(new));
            self.swaps.send_modify(|n| *n += 1);
        } else {
            tracing::warn!(dir = %self.dir.display(), "Kept the running vendor definitions; fix the errors above.");
            let running = self.current.load();
            self.current.store(Arc::new(Set {
                definitions: running.definitions.clone(),
                errors: new.errors,
                replaced: running.replaced.clone(),
            }));
        }
    }

    /// Watches the folder until `cancel`: file events (including editors that save by rename) trigger a
    /// reload after things settle; a slow look every few seconds catches what events miss, such as the folder
    /// being created after start.
    pub async fn watch(self, cancel: CancellationToken) {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<()>();
        let mut watcher =
            notify::recommended_watcher(move |_event: notify::Result<notify::Event>| {
                let _ = tx.send(());
            })
            .ok();
        let mut watching = false;
        let mut seen = fingerprint(&self.dir);
        let mut tick = tokio::time::interval(Duration::from_secs(3));
        loop {
            if !watching && let Some(w) = watcher.as_mut() {
                use notify::Watcher;
                watching = w
                    .watch(&self.dir, notify::RecursiveMode::NonRecursive)
                    .is_ok();
            }
            tokio::select! {
                _ = cancel.cancelled() => return,
                Some(()) = rx.recv() => {
                    // Let a burst of events (write, rename, chmod) settle before reading.
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    while rx.try_recv().is_ok() {}
                }
                _ = tick.tick() => {}
            }
            let now = fingerprint(&self.dir);
            if now != seen {
                seen = now;
                self.reload();
            }
            if !self.dir.is_dir() {
                watching = false;
            }
        }
    }
}

fn log_errors(set: &Set) {
    for name in set.replaced.keys() {
        if let Some(def) = set.definitions.get(name) {
            tracing::warn!(definition = %name, source = %set.source_of(def),
                "A file in the integrations folder replaces a built-in definition; its requests are what run.");
        }
    }
    for file in &set.errors {
        for e in &file.errors {
            tracing::error!(file = %file.file, line = e.line, key = %e.path, "{}", e.message);
        }
    }
}
