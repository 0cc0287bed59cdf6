//! Final bookmark failures in the log: the first of a camera system's failures is logged whole at once, the
//! rest within the next minute only counted, and the count logged in one line when the minute is over. A camera
//! id mistyped in the config fails every bookmark of its register the same way; 282 identical ERROR lines
//! would bury whatever else the log says. Every failure is still in the index, with its own error.

use std::collections::HashMap;
use std::time::Duration;

use tokio::time::Instant;

/// How long one line stands for a camera system's failures.
pub const WINDOW: Duration = Duration::from_secs(60);

/// A failure, as the log names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub system: String,
    pub event: String,
    pub device: String,
    pub error: String,
}

/// A line to log at ERROR.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    /// A failure logged whole.
    First(Failure),
    /// How many more of a system's bookmarks failed within the window after its line, and the last error.
    More {
        system: String,
        count: u32,
        last_error: String,
    },
}

#[derive(Debug)]
struct Window {
    began: Instant,
    more: u32,
    last_error: String,
}

/// The open window of each camera system that failed lately.
#[derive(Debug, Default)]
pub struct FailureLog {
    windows: HashMap<String, Window>,
}

impl FailureLog {
    /// What to log for `failure` at `now`: the count of a finished window first, where there is one.
    pub fn failed(&mut self, failure: Failure, now: Instant) -> Vec<Line> {
        let mut lines = Vec::new();
        if let Some(w) = self.windows.get_mut(&failure.system)
            && now.duration_since(w.began) < WINDOW
        {
            w.more += 1;
            w.last_error = failure.error;
            return lines;
        }
        if let Some(w) = self.windows.remove(&failure.system) {
            lines.extend(more(&failure.system, w));
        }
        self.windows.insert(
            failure.system.clone(),
            Window {
                began: now,
                more: 0,
                last_error: String::new(),
            },
        );
        lines.push(Line::First(failure));
        lines
    }

    /// The counts of windows over by `now` (all of them with `now` of `None`, at shutdown), each closed.
    pub fn due(&mut self, now: Option<Instant>) -> Vec<Line> {
        let over: Vec<String> = self
            .windows
            .iter()
            .filter(|(_, w)| now.is_none_or(|now| now.duration_since(w.began) >= WINDOW))
            .map(|(s, _)| s.clone())
            .collect();
        over.into_iter()
            .filter_map(|s| {
                let w = self.windows.remove(&s)?;
                more(&s, w)
            })
            .collect()
    }

    /// When the earliest open window ends.
    pub fn next_due(&self) -> Option<Instant> {
        self.windows.values().map(|w| w.began + WINDOW).min()
    }
}

fn more(system: &str, w: Window) -> Option<Line> {
    (w.more > 0).then(|| Line::More {
        system: system.to_string(),
        count: w.more,
        last_error: w.last_error,
    })
}

/// Logs `lines` at ERROR.
pub fn log(lines: Vec<Line>) {
    for line in lines {
        match line {
            Line::First(f) => {
                tracing::error!(event = %f.event, system = %f.system, device = %f.device, error = %f.error,
                    "Bookmark failed and will not be retried.");
            }
            Line::More {
                system,
                count,
                last_error,
            } => {
                let plural = if count == 1 { "" } else { "s" };
                tracing::error!(%system, count, last_error = %last_error,
                    "{count} more bookmark{plural} of {system} failed within a minute of the line above; each is in the index with its error.");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(system: &str, n: u32) -> Failure {
        Failure {
            system: system.into(),
            event: format!("e-{n}"),
            device: "cam-typo".into(),
            error: format!("no camera \"cam-typo\" ({n})"),
        }
    }

    #[test]
    fn a_systems_failures_within_a_minute_are_one_line_and_a_count() {
        let t0 = Instant::now();
        let mut log = FailureLog::default();
        assert_eq!(
            log.failed(failure("nvr", 0), t0),
            [Line::First(failure("nvr", 0))]
        );
        for n in 1..282 {
            let at = t0 + Duration::from_millis(u64::from(n) * 100);
            assert!(log.failed(failure("nvr", n), at).is_empty(), "{n}");
        }
        // Another system's failure is its own line.
        assert_eq!(
            log.failed(failure("een", 0), t0 + Duration::from_secs(5)),
            [Line::First(failure("een", 0))]
        );
        assert!(log.due(Some(t0 + Duration::from_secs(59))).is_empty());
        assert_eq!(log.next_due(), Some(t0 + WINDOW));
        assert_eq!(
            log.due(Some(t0 + WINDOW)),
            [Line::More {
                system: "nvr".into(),
                count: 281,
                last_error: "no camera \"cam-typo\" (281)".into()
            }]
        );
        // The next failure after the minute is logged whole again.
        assert_eq!(
            log.failed(failure("nvr", 300), t0 + Duration::from_secs(61)),
            [Line::First(failure("nvr", 300))]
        );
        // At shutdown every open window closes; one without more failures says nothing.
        assert!(log.due(None).is_empty());
        assert_eq!(log.next_due(), None);
    }

    #[test]
    fn a_failure_after_a_window_with_no_timer_run_first_logs_the_count_then_itself() {
        let t0 = Instant::now();
        let mut log = FailureLog::default();
        log.failed(failure("nvr", 0), t0);
        log.failed(failure("nvr", 1), t0 + Duration::from_secs(1));
        let lines = log.failed(failure("nvr", 2), t0 + Duration::from_secs(90));
        assert_eq!(
            lines,
            [
                Line::More {
                    system: "nvr".into(),
                    count: 1,
                    last_error: "no camera \"cam-typo\" (1)".into()
                },
                Line::First(failure("nvr", 2)),
            ]
        );
    }
}
