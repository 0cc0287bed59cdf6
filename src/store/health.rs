//! How the database has been answering the daemon's own work (intake and delivery): a failure is logged once
//! when it begins, by its kind (ERROR when an operator must act, WARN when it will pass), once more when it
//! ends, and `/healthz` says what is wrong meanwhile. The retries in between stay at DEBUG.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use serde::Serialize;

use super::{ErrorKind, StoreError};
use crate::clock::now_ms;

/// Shared by every part of one daemon; cloning shares it.
#[derive(Clone, Default)]
pub struct StoreHealth(Arc<Mutex<State>>);

#[derive(Default)]
struct State {
    failing: BTreeMap<&'static str, Problem>,
    /// Every failure since start, by kind: for `/metrics`.
    errors: BTreeMap<ErrorKind, u64>,
    /// When each part's failure of each kind was last logged at ERROR: a disk that fills, frees a little and
    /// fills again is one ERROR per [`ERROR_AGAIN_MS`], the episodes between at WARN.
    logged: BTreeMap<(&'static str, ErrorKind), i64>,
}

/// How long a failure logged at ERROR keeps the same failure's next episodes at WARN.
const ERROR_AGAIN_MS: i64 = 10 * 60_000;

/// A part of the daemon the database is failing, and since when.
#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    /// `ingest` or `delivery`.
    pub part: &'static str,
    pub kind: ErrorKind,
    pub since_ms: i64,
    /// The newest error, as the database said it.
    pub error: String,
    pub advice: &'static str,
    /// Failed attempts since it began.
    pub attempts: u64,
}

impl StoreHealth {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A store call of `part` failed; it will be retried.
    pub fn failed(&self, part: &'static str, e: &StoreError) {
        let kind = e.kind();
        let now = now_ms();
        let mut state = self.state();
        *state.errors.entry(kind).or_default() += 1;
        let recently_logged = state
            .logged
            .get(&(part, kind))
            .is_some_and(|at| now - at < ERROR_AGAIN_MS);
        let problem = state.failing.entry(part).or_insert_with(|| Problem {
            part,
            kind,
            since_ms: now,
            error: String::new(),
            attempts: 0,
            advice: kind.advice(),
        });
        let begins = problem.attempts == 0 || problem.kind != kind;
        problem.kind = kind;
        problem.advice = kind.advice();
        problem.error = e.to_string();
        problem.attempts += 1;
        match (begins, kind.passes() || recently_logged) {
            (true, false) => {
                state.logged.insert((part, kind), now);
                tracing::error!(part, kind = kind.as_str(), error = %e, "{}.", capitalised(kind.advice()))
            }
            (true, true) => {
                tracing::warn!(part, kind = kind.as_str(), error = %e, "{}.", capitalised(kind.advice()))
            }
            (false, _) => tracing::debug!(part, kind = kind.as_str(), error = %e, "Still failing."),
        }
    }

    /// A store call of `part` succeeded: a failure, if there was one, is over.
    pub fn answered(&self, part: &'static str) {
        let mut state = self.state();
        if let Some(p) = state.failing.remove(part) {
            let seconds = (now_ms() - p.since_ms).max(0) / 1000;
            tracing::info!(
                part,
                kind = p.kind.as_str(),
                attempts = p.attempts,
                seconds,
                "The database answers again; {part} resumes."
            );
        }
    }

    /// What is failing now, by part.
    pub fn problems(&self) -> Vec<Problem> {
        self.state().failing.values().cloned().collect()
    }

    /// Failures since start, by kind.
    pub fn errors(&self) -> Vec<(ErrorKind, u64)> {
        self.state().errors.iter().map(|(k, n)| (*k, *n)).collect()
    }
}

fn capitalised(text: &str) -> String {
    let mut chars = text.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_is_one_problem_until_answered_and_counted_by_kind() {
        let health = StoreHealth::default();
        let io = StoreError::Database(sqlx::Error::Io(std::io::Error::other("reset")));
        health.failed("ingest", &io);
        health.failed("ingest", &io);
        let problems = health.problems();
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].kind, ErrorKind::Unavailable);
        assert_eq!(problems[0].attempts, 2);
        assert!(problems[0].error.contains("reset"));
        health.answered("ingest");
        assert!(health.problems().is_empty());
        assert_eq!(health.errors(), vec![(ErrorKind::Unavailable, 2)]);
    }
}
