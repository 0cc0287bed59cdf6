//! Cases: an event an investigator follows up. It is opened (flagged), noted, closed as explained or escalated
//! with a reason, and reopened; every change is one row of its history, which is only ever added to, with
//! card numbers masked. Every read and change takes the reader's [`StoreScope`], applied in the query, like
//! the events themselves.

use async_trait::async_trait;
use serde::Serialize;

use super::{StoreError, StoreScope};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CaseState {
    Open,
    Explained,
    Escalated,
}

impl CaseState {
    pub fn as_str(self) -> &'static str {
        match self {
            CaseState::Open => "open",
            CaseState::Explained => "explained",
            CaseState::Escalated => "escalated",
        }
    }

    pub(super) fn parse(text: &str) -> Result<CaseState, StoreError> {
        match text {
            "open" => Ok(CaseState::Open),
            "explained" => Ok(CaseState::Explained),
            "escalated" => Ok(CaseState::Escalated),
            other => Err(StoreError::Invalid(format!(
                "case has unknown state \"{other}\""
            ))),
        }
    }
}

/// How a case is closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaseOutcome {
    /// The shortage or the event has an innocent explanation.
    Explained,
    /// Handed on: to the owner, head office, the police.
    Escalated,
}

impl CaseOutcome {
    pub fn parse(text: &str) -> Option<CaseOutcome> {
        match text {
            "explained" => Some(CaseOutcome::Explained),
            "escalated" => Some(CaseOutcome::Escalated),
            _ => None,
        }
    }

    pub(super) fn state(self) -> CaseState {
        match self {
            CaseOutcome::Explained => CaseState::Explained,
            CaseOutcome::Escalated => CaseState::Escalated,
        }
    }
}

/// A change a person makes to the case of an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaseChange {
    /// Flags the event: opens its case, with an optional first note.
    Open {
        note: String,
    },
    Note {
        text: String,
    },
    /// The reason is required: a closed case must say why.
    Close {
        outcome: CaseOutcome,
        reason: String,
    },
    Reopen {
        reason: String,
    },
}

impl CaseChange {
    /// The word the history and the audit log record it as.
    pub fn action(&self) -> &'static str {
        match self {
            CaseChange::Open { .. } => "opened",
            CaseChange::Note { .. } => "noted",
            CaseChange::Close { .. } => "closed",
            CaseChange::Reopen { .. } => "reopened",
        }
    }

    pub(super) fn text(&self) -> &str {
        match self {
            CaseChange::Open { note } => note,
            CaseChange::Note { text } => text,
            CaseChange::Close { reason, .. } | CaseChange::Reopen { reason } => reason,
        }
    }

    /// The outcome its history row records: a closing's only.
    pub(super) fn outcome(&self) -> Option<&'static str> {
        match self {
            CaseChange::Close { outcome, .. } => Some(outcome.state().as_str()),
            _ => None,
        }
    }

    /// The text its history row records, if any. A note is evidence kept for years: a card number typed into
    /// it is masked like one a register sent.
    pub(super) fn recorded_text(&self) -> Option<String> {
        Some(crate::event::mask_card_numbers(self.text().trim()).into_owned())
            .filter(|t| !t.is_empty())
    }
}

/// Where a case stands: what the event list shows beside an event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CaseSummary {
    pub state: CaseState,
    pub opened_ms: i64,
    pub opened_by: String,
    pub changed_ms: i64,
}

/// One change of a case, as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct CaseEntry {
    pub at_ms: i64,
    pub actor: String,
    pub action: String,
    pub outcome: Option<String>,
    pub text: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CaseRecord {
    #[serde(flatten)]
    pub summary: CaseSummary,
    /// Oldest first.
    pub history: Vec<CaseEntry>,
}

/// Which events the list keeps by their case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaseFilter {
    Open,
    Closed,
    /// Any event that has a case, open or closed.
    Any,
}

impl CaseFilter {
    pub fn parse(text: &str) -> Option<CaseFilter> {
        match text {
            "open" => Some(CaseFilter::Open),
            "closed" => Some(CaseFilter::Closed),
            "any" => Some(CaseFilter::Any),
            _ => None,
        }
    }

    pub(super) fn condition(self) -> &'static str {
        match self {
            CaseFilter::Open => " AND e.seq IN (SELECT event_seq FROM cases WHERE state = 'open')",
            CaseFilter::Closed => {
                " AND e.seq IN (SELECT event_seq FROM cases WHERE state <> 'open')"
            }
            CaseFilter::Any => " AND e.seq IN (SELECT event_seq FROM cases)",
        }
    }
}

/// A row of `cases`, as every backend's single and list reads select it.
#[derive(sqlx::FromRow)]
pub(super) struct CaseRow {
    event_seq: i64,
    state: String,
    opened_ms: i64,
    opened_by: String,
    changed_ms: i64,
}

pub(super) const CASE_COLUMNS: &str =
    "SELECT event_seq, state, opened_ms, opened_by, changed_ms FROM cases";

impl CaseRow {
    pub(super) fn summary(self) -> Result<(i64, CaseSummary), StoreError> {
        Ok((
            self.event_seq,
            CaseSummary {
                state: CaseState::parse(&self.state)?,
                opened_ms: self.opened_ms,
                opened_by: self.opened_by,
                changed_ms: self.changed_ms,
            },
        ))
    }
}

/// The longest note or reason kept, in characters: a page of text, not a file pasted by mistake.
pub const CASE_TEXT_MAX_CHARS: usize = 4000;

/// Why a change was refused; the case is as it was.
#[derive(Debug, thiserror::Error)]
pub enum CaseError {
    /// No such event, or not in the reader's stores: the same answer, so nothing can be guessed from it.
    #[error("no event {0}")]
    NoEvent(i64),
    #[error("this event has no case yet: flag it first")]
    NoCase,
    #[error("this event already has a case")]
    AlreadyOpen,
    #[error("this case is closed; reopen it first")]
    Closed,
    #[error("this case is open")]
    NotClosed,
    #[error("a reason is required")]
    ReasonRequired,
    #[error("the note is empty")]
    EmptyNote,
    #[error("at most {CASE_TEXT_MAX_CHARS} characters")]
    TooLong,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for CaseError {
    fn from(e: sqlx::Error) -> CaseError {
        CaseError::Store(e.into())
    }
}

#[async_trait]
pub trait Cases: Send + Sync {
    /// The case of an event in `scope`, with its history.
    async fn case(&self, seq: i64, scope: &StoreScope) -> Result<Option<CaseRecord>, StoreError>;
    /// Makes one change to the case of an event in `scope`, in one transaction, and returns the case after
    /// it. A change the case's state does not allow (closing a closed case, say, from a second tab) is
    /// refused and changes nothing.
    async fn change_case(
        &self,
        seq: i64,
        scope: &StoreScope,
        actor: &str,
        at_ms: i64,
        change: &CaseChange,
    ) -> Result<CaseRecord, CaseError>;
}

/// The state a change leads to from `current`, or why it may not be made.
pub(super) fn next_state(
    current: Option<CaseState>,
    change: &CaseChange,
) -> Result<CaseState, CaseError> {
    let text = change.text().trim();
    if text.chars().count() > CASE_TEXT_MAX_CHARS {
        return Err(CaseError::TooLong);
    }
    match (change, current) {
        (CaseChange::Open { .. }, None) => Ok(CaseState::Open),
        (CaseChange::Open { .. }, Some(_)) => Err(CaseError::AlreadyOpen),
        (_, None) => Err(CaseError::NoCase),
        (CaseChange::Note { .. }, Some(_)) if text.is_empty() => Err(CaseError::EmptyNote),
        (CaseChange::Note { .. }, Some(state)) => Ok(state),
        (CaseChange::Close { .. } | CaseChange::Reopen { .. }, Some(_)) if text.is_empty() => {
            Err(CaseError::ReasonRequired)
        }
        (CaseChange::Close { outcome, .. }, Some(CaseState::Open)) => Ok(outcome.state()),
        (CaseChange::Close { .. }, Some(_)) => Err(CaseError::Closed),
        (CaseChange::Reopen { .. }, Some(CaseState::Open)) => Err(CaseError::NotClosed),
        (CaseChange::Reopen { .. }, Some(_)) => Ok(CaseState::Open),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::store::test_backends::{Kind, postgres_named};
    use crate::store::tests::{NOW_MS, event, stored};

    /// Two daemons closing one case at the same moment (two tabs, two load-balanced requests): one closes it, the
    /// other is told it is closed, and the history holds one closing, as it would had they come in turn.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_case_closed_from_two_daemons_at_once_is_closed_once() {
        if !postgres_named() {
            eprintln!("TILLMARK_TEST_POSTGRES_URL is not set: not run on PostgreSQL");
            return;
        }
        let (store, ids) = stored(Kind::Postgres, &[event("v1", "void", 0, json!({}))], &[]).await;
        let seq = *ids.keys().next().unwrap();
        let (one, two) = (store.again().await, store.again().await);
        let scope = &StoreScope::All;
        let store = &store;
        let change = |c: CaseChange| async move {
            store
                .change_case(seq, scope, "ken", NOW_MS, &c)
                .await
                .unwrap()
        };
        change(CaseChange::Open {
            note: String::new(),
        })
        .await;
        let close = |reason: &str| CaseChange::Close {
            outcome: CaseOutcome::Explained,
            reason: reason.into(),
        };
        let (by_one, by_two) = (close("one"), close("two"));
        for round in 1..=20 {
            let (a, b) = tokio::join!(
                one.change_case(seq, scope, "aiko", NOW_MS, &by_one),
                two.change_case(seq, scope, "ken", NOW_MS, &by_two)
            );
            assert!(
                matches!(
                    (&a, &b),
                    (Ok(_), Err(CaseError::Closed)) | (Err(CaseError::Closed), Ok(_))
                ),
                "round {round}: {a:?} {b:?}"
            );
            change(CaseChange::Reopen {
                reason: "again".into(),
            })
            .await;
        }
        let history = store.case(seq, scope).await.unwrap().unwrap().history;
        let closed = history.iter().filter(|e| e.action == "closed").count();
        assert_eq!((history.len(), closed), (41, 20));
    }
}
