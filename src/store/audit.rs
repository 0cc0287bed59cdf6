//! The audit log: who signed in (or was refused), who opened which footage, who exported what, who changed a
//! case. Rows are only ever added (the database refuses edits and removals) and each is chained to the one
//! before by SHA-256, so `tillmark audit verify` finds a row altered or removed in the file; the owner reads
//! them on `/audit`.
//!
//! Retention removes the oldest rows, and only so: [`AuditLog::purge_audit`] first appends a checkpoint row
//! (chained like any other) naming the rows it removes and the hash of the last of them, and the database lets
//! a row go only when a checkpoint after it covers it (migration 0014). The chain then begins at the first row
//! left, whose link a checkpoint vouches for; every row after it is checked as before. Refused sign-ins are also what sign-in
//! throttling counts, so the limit holds across restarts and across daemons sharing one database.

use async_trait::async_trait;
use serde::Serialize;

use super::StoreError;

/// What is recorded: `action` is a word such as `sign_in`, `target` what it was done to.
#[derive(Debug, Clone, Default)]
pub struct NewAuditEntry {
    pub at_ms: i64,
    pub actor: Option<String>,
    pub address: Option<String>,
    pub action: String,
    pub target: Option<String>,
    pub detail: Option<String>,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct AuditEntry {
    pub id: i64,
    pub at_ms: i64,
    pub actor: Option<String>,
    pub address: Option<String>,
    pub action: String,
    pub target: Option<String>,
    pub detail: Option<String>,
}

/// Filters of the audit page; newest first, `before` an entry id for the next page.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    pub actor: Option<String>,
    pub action: Option<String>,
    pub from_ms: Option<i64>,
    pub to_ms: Option<i64>,
    pub before: Option<i64>,
    pub limit: i64,
}

/// Since when each of a sign-in's counts is taken, in epoch milliseconds.
#[derive(Debug, Clone, Copy)]
pub struct SignInWindows {
    /// Refusals of the name from the address, and from the address over any names.
    pub refused_ms: i64,
    /// Refusals of the name from anywhere.
    pub refused_by_name_ms: i64,
    /// Sign-ins that make an address the name's usual one.
    pub usual_ms: i64,
}

/// Refused sign-ins around one attempt, and whether the name has signed in from its address before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignInRecord {
    /// Of this name from this address.
    pub refused_here: i64,
    /// From this address, over any names.
    pub refused_from_address: i64,
    /// Of this name, from any address.
    pub refused_anywhere: i64,
    /// The name signed in from this address within the window.
    pub usual_address: bool,
}

/// What `tillmark audit verify` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditCheck {
    /// Rows read.
    pub rows: i64,
    /// Rows from before the chain began (recorded before the upgrade that added it).
    pub before_chain: i64,
    /// The checkpoint the chain begins at, when retention removed the rows before it.
    pub checkpoint: Option<Checkpoint>,
    /// The first row that breaks the chain, and how.
    pub broken: Option<(i64, String)>,
}

/// The action of a checkpoint row.
pub const CHECKPOINT_ACTION: &str = "audit_checkpoint";

/// What a checkpoint row records (its `detail`, as JSON) of the rows a purge removes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Checkpoint {
    /// The checkpoint row's own id (not part of its detail).
    #[serde(skip)]
    pub id: i64,
    /// How many rows it removes.
    pub removed: i64,
    pub first_id: i64,
    pub last_id: i64,
    /// The hash of row `last_id`: the `prev_hash` of the row after it ("" when it had none).
    pub last_hash: String,
    /// Rows recorded before this moment went.
    pub before_ms: i64,
}

/// Who purges the audit log, and when: the checkpoint row is recorded in their name.
#[derive(Debug, Clone)]
pub struct AuditPurge {
    pub at_ms: i64,
    pub actor: String,
    pub address: Option<String>,
    /// Rows recorded before this go, oldest first, up to the first row recorded at or after it.
    pub before_ms: i64,
}

/// A row's hash: SHA-256, in hex, of the previous row's hash and this row's content, one per line, the
/// content as a JSON array so no field can run into the next.
pub(super) fn chain_hash(prev: &str, e: &NewAuditEntry) -> String {
    use sha2::Digest;
    let content = serde_json::json!([e.at_ms, e.actor, e.address, e.action, e.target, e.detail]);
    hex::encode(sha2::Sha256::digest(format!("{prev}\n{content}")))
}

/// The checkpoint that vouches for the first chained row left, `id`, naming `prev_hash` before it: one that
/// removed the rows up to just before it and recorded the hash it names, or one whose removal is under way
/// (stopped half way) and covers the row itself, whose predecessor went by that checkpoint's leave. Only a
/// checkpoint recorded after the row counts.
pub(super) fn anchor<'c>(
    checkpoints: &'c [Checkpoint],
    id: i64,
    prev_hash: &str,
) -> Option<&'c Checkpoint> {
    checkpoints.iter().rev().find(|c| {
        c.id >= id
            && ((c.last_id < id && c.last_hash == prev_hash)
                || (c.first_id <= id && id <= c.last_id))
    })
}

/// Audit rows removed in one transaction: a purge of a large log never holds a writer long.
pub(super) const AUDIT_PURGE_BATCH: i64 = 1_000;
/// Rows read at a time by [`AuditLog::verify_audit`].
pub(super) const VERIFY_PAGE: i64 = 1_000;

/// The checkpoints among `(id, detail)` rows of checkpoint action; a detail that is not one is left out, and
/// the walk then finds nothing to vouch for the rows it would have covered.
pub(super) fn checkpoints(rows: Vec<(i64, Option<String>)>) -> Vec<Checkpoint> {
    rows.into_iter()
        .filter_map(|(id, detail)| {
            let mut c: Checkpoint = serde_json::from_str(detail.as_deref()?).ok()?;
            c.id = id;
            Some(c)
        })
        .collect()
}

/// The row a purge appends before it removes anything: `checkpoint` as its detail, in the purger's name.
pub(super) fn checkpoint_entry(
    purge: &AuditPurge,
    checkpoint: &Checkpoint,
) -> Result<NewAuditEntry, StoreError> {
    Ok(NewAuditEntry {
        at_ms: purge.at_ms,
        actor: Some(purge.actor.clone()),
        address: purge.address.clone(),
        action: CHECKPOINT_ACTION.into(),
        target: Some("audit_log".into()),
        detail: Some(
            serde_json::to_string(checkpoint)
                .map_err(|e| StoreError::Invalid(format!("cannot write a checkpoint: {e}")))?,
        ),
    })
}

/// The audit page's filters, after a `WHERE` that the query builder's text ends in, and its order and limit.
pub(super) fn push_audit_query<'a, DB: sqlx::Database>(
    q: &mut sqlx::QueryBuilder<'a, DB>,
    query: &'a AuditQuery,
) where
    i64: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    &'a String: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
{
    if let Some(actor) = &query.actor {
        q.push(" AND actor = ").push_bind(actor);
    }
    if let Some(action) = &query.action {
        q.push(" AND action = ").push_bind(action);
    }
    if let Some(from) = query.from_ms {
        q.push(" AND at_ms >= ").push_bind(from);
    }
    if let Some(to) = query.to_ms {
        q.push(" AND at_ms < ").push_bind(to);
    }
    if let Some(before) = query.before {
        q.push(" AND id < ").push_bind(before);
    }
    q.push(" ORDER BY id DESC LIMIT ")
        .push_bind(query.limit.clamp(1, 1000));
}

/// One row of the log as [`AuditLog::verify_audit`] reads it, in id order.
#[derive(Debug, sqlx::FromRow)]
pub(super) struct ChainRow {
    pub id: i64,
    pub at_ms: i64,
    pub actor: Option<String>,
    pub address: Option<String>,
    pub action: String,
    pub target: Option<String>,
    pub detail: Option<String>,
    pub prev_hash: Option<String>,
    pub hash: Option<String>,
}

/// The columns of [`ChainRow`], as a backend selects them.
pub(super) const CHAIN_COLUMNS: &str =
    "id, at_ms, actor, address, action, target, detail, prev_hash, hash";

/// The walk of `verify_audit` over the rows, fed oldest first by whichever backend reads them: every backend
/// judges a log by the same rules.
pub(super) struct ChainWalk<'c> {
    checkpoints: &'c [Checkpoint],
    check: AuditCheck,
    /// The previous row's id and hash, once the chain has begun.
    last: Option<(i64, String)>,
}

impl<'c> ChainWalk<'c> {
    /// A walk from the first row; `checkpoints` are every checkpoint of the log, read first: the chain's
    /// beginning is vouched for by one of them. A checkpoint's own row is checked like any other in the walk,
    /// so a forged or altered one breaks the chain there.
    pub(super) fn new(checkpoints: &'c [Checkpoint]) -> ChainWalk<'c> {
        ChainWalk {
            checkpoints,
            check: AuditCheck {
                rows: 0,
                before_chain: 0,
                checkpoint: None,
                broken: None,
            },
            last: None,
        }
    }

    /// Checks the next row; false once the chain is broken (there, or before), when reading on is pointless.
    pub(super) fn step(&mut self, row: ChainRow) -> bool {
        if self.check.broken.is_some() {
            return false;
        }
        self.check.rows += 1;
        let id = row.id;
        if let Err(why) = self.link(row) {
            self.check.broken = Some((id, why));
            return false;
        }
        true
    }

    pub(super) fn finish(self) -> AuditCheck {
        self.check
    }

    fn link(&mut self, row: ChainRow) -> Result<(), String> {
        let (Some(prev_hash), Some(hash)) = (row.prev_hash, row.hash) else {
            return match self.last {
                None => {
                    self.check.before_chain += 1;
                    Ok(())
                }
                Some(_) => Err("has no hash, though rows before it do".into()),
            };
        };
        match &self.last {
            Some((before, expected)) if prev_hash != *expected => {
                return Err(format!(
                    "does not follow row {before}: a row between them was removed, or one altered"
                ));
            }
            Some(_) => {}
            None if prev_hash.is_empty() => {}
            None => match anchor(self.checkpoints, row.id, &prev_hash) {
                Some(c) => self.check.checkpoint = Some(c.clone()),
                None => {
                    return Err(
                        "is the first chained row but names a row before it, and no retention \
                         checkpoint accounts for the rows removed before it"
                            .into(),
                    );
                }
            },
        }
        let entry = NewAuditEntry {
            at_ms: row.at_ms,
            actor: row.actor,
            address: row.address,
            action: row.action,
            target: row.target,
            detail: row.detail,
        };
        if chain_hash(&prev_hash, &entry) != hash {
            return Err("was altered: its content does not match its hash".into());
        }
        if let Some(c) = self
            .checkpoints
            .iter()
            .find(|c| c.last_id == row.id && c.last_hash != hash)
        {
            return Err(format!(
                "is not the row checkpoint row {} says it removes up to: its hash differs",
                c.id
            ));
        }
        self.last = Some((row.id, hash));
        Ok(())
    }
}

#[async_trait]
pub trait AuditLog: Send + Sync {
    async fn record(&self, entry: &NewAuditEntry) -> Result<(), StoreError>;
    async fn audit(&self, query: &AuditQuery) -> Result<Vec<AuditEntry>, StoreError>;
    /// Walks the whole log in order, checking each row's link to the one before and its content; the chain
    /// may begin at a retention checkpoint.
    async fn verify_audit(&self) -> Result<AuditCheck, StoreError>;
    /// Removes the oldest rows recorded before `purge.before_ms` behind a checkpoint row (see the module
    /// documentation), in batches; returns the checkpoint, or `None` when no row was old enough.
    async fn purge_audit(&self, purge: &AuditPurge) -> Result<Option<Checkpoint>, StoreError>;
    /// What the audit log says of a sign-in of `name` from `address`, for the throttle.
    async fn sign_in_record(
        &self,
        name: &str,
        address: &str,
        since: &SignInWindows,
    ) -> Result<SignInRecord, StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::test_backends::{Kind, TestStore, backend_tests};

    backend_tests!(
        a_purge_leaves_a_checkpoint_the_chain_verifies_from_and_the_log_refuses_every_other_edit,
        refused_sign_ins_are_counted_by_name_and_address_within_their_windows,
    );

    fn entry(at_ms: i64, actor: &str, action: &str) -> NewAuditEntry {
        NewAuditEntry {
            at_ms,
            actor: Some(actor.into()),
            address: Some("192.0.2.7".into()),
            action: action.into(),
            target: None,
            detail: None,
        }
    }

    fn intact(check: &AuditCheck, rows: i64) {
        assert_eq!(check.broken, None);
        assert_eq!(check.rows, rows);
    }

    async fn a_purge_leaves_a_checkpoint_the_chain_verifies_from_and_the_log_refuses_every_other_edit(
        store: &TestStore,
    ) {
        for at in 1..=5 {
            store
                .record(&entry(at * 1_000, "aiko", "sign_in"))
                .await
                .unwrap();
        }
        intact(&store.verify_audit().await.unwrap(), 5);
        let purge = AuditPurge {
            at_ms: 10_000,
            actor: "retention".into(),
            address: None,
            before_ms: 3_500,
        };
        let checkpoint = store.purge_audit(&purge).await.unwrap().unwrap();
        assert_eq!(
            (checkpoint.removed, checkpoint.first_id, checkpoint.last_id),
            (3, 1, 3)
        );
        let check = store.verify_audit().await.unwrap();
        intact(&check, 3);
        assert_eq!(check.checkpoint, Some(checkpoint.clone()));
        let left: Vec<i64> = store
            .audit(&AuditQuery {
                limit: 10,
                ..AuditQuery::default()
            })
            .await
            .unwrap()
            .iter()
            .map(|e| e.id)
            .collect();
        assert_eq!(left, [checkpoint.id, 5, 4], "newest first");
        assert!(
            store.purge_audit(&purge).await.unwrap().is_none(),
            "nothing left before the bound"
        );

        for statement in [
            "UPDATE audit_log SET actor = 'someone else' WHERE id = 5",
            "DELETE FROM audit_log WHERE id = 4",
        ] {
            let refused = store.execute(statement).await.unwrap_err();
            assert!(
                refused
                    .to_string()
                    .contains("the audit log is only ever added to"),
                "{statement}: {refused}"
            );
        }
        intact(&store.verify_audit().await.unwrap(), 3);
    }

    async fn refused_sign_ins_are_counted_by_name_and_address_within_their_windows(
        store: &TestStore,
    ) {
        let refused = |at, actor: &str, address: &str| NewAuditEntry {
            address: Some(address.into()),
            ..entry(at, actor, "sign_in_refused")
        };
        for e in [
            refused(1_000, "ken", "192.0.2.7"),
            refused(5_000, "ken", "192.0.2.7"),
            refused(6_000, "ken", "198.51.100.1"),
            refused(7_000, "aiko", "192.0.2.7"),
            entry(2_000, "ken", "sign_in"),
        ] {
            store.record(&e).await.unwrap();
        }
        let windows = SignInWindows {
            refused_ms: 4_000,
            refused_by_name_ms: 0,
            usual_ms: 0,
        };
        let record = store
            .sign_in_record("ken", "192.0.2.7", &windows)
            .await
            .unwrap();
        assert_eq!(
            record,
            SignInRecord {
                refused_here: 1,
                refused_from_address: 2,
                refused_anywhere: 3,
                usual_address: true,
            }
        );
        let later = SignInWindows {
            usual_ms: 3_000,
            ..windows
        };
        let record = store
            .sign_in_record("ken", "192.0.2.7", &later)
            .await
            .unwrap();
        assert!(
            !record.usual_address,
            "the sign-in is older than the window"
        );
    }

    /// Two daemons sharing one PostgreSQL database, each recording as fast as it can: every row must still
    /// follow the one before it, or `tillmark audit verify` would call the log broken.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_daemons_appending_at_once_leave_one_chain_that_verifies() {
        let Some(store) = TestStore::new(Kind::Postgres).await else {
            return;
        };
        let mut daemons = Vec::new();
        for name in ["one", "two"] {
            let handle = store.again().await;
            daemons.push(tokio::spawn(async move {
                for at in 0..200 {
                    handle
                        .record(&entry(at, name, "footage_opened"))
                        .await
                        .unwrap();
                }
            }));
        }
        for daemon in daemons {
            daemon.await.unwrap();
        }
        intact(&store.verify_audit().await.unwrap(), 400);
    }
}
