//! The alert outbox on each backend: a row per (alert, exception) or (alert, store, day), planned once however
//! many daemons plan it; claimed under leases that only expire; outcomes recorded only by the lease's holder.

use serde_json::json;

use super::test_backends::{Kind, backend_tests};
use super::tests::{NOW_MS, event, stored};
use super::*;
use crate::event::Severity;

/// A store holding two events with an exception each (`big-refund` on the first, `night` on the second), and
/// their sequence numbers.
async fn with_exceptions(kind: Kind) -> (test_backends::TestStore, Vec<i64>) {
    let events = [
        event(
            "a",
            "refund",
            0,
            json!({"amount": -60000, "currency": "JPY"}),
        ),
        event("b", "no_sale", 1, json!({})),
    ];
    let (store, ids) = stored(kind, &events, &[]).await;
    let mut seqs: Vec<i64> = ids.keys().copied().collect();
    seqs.sort();
    let results = RuleResults {
        looked_at: seqs.clone(),
        found: vec![
            NewException {
                rule: "big-refund".into(),
                event_seq: seqs[0],
                severity: Severity::High,
                why: "refund of 60,000 JPY".into(),
            },
            NewException {
                rule: "night".into(),
                event_seq: seqs[1],
                severity: Severity::Medium,
                why: "outside opening hours".into(),
            },
        ],
        bookmarks: Vec::new(),
    };
    assert_eq!(
        store.record_rule_results(&results, NOW_MS).await.unwrap(),
        2
    );
    (store, seqs)
}

fn owed(alert: &str, rule: &str, event_seq: i64) -> NewAlert {
    NewAlert {
        alert: alert.into(),
        store: "shibuya-01".into(),
        what: AlertSubject::Exception {
            rule: rule.into(),
            event_seq,
        },
        due_ms: NOW_MS,
    }
}

async fn planning_an_exception_again_from_another_daemon_adds_nothing(kind: Kind) {
    let (store, seqs) = with_exceptions(kind).await;
    let found = store
        .exceptions_found(NOW_MS - 1, NOW_MS + 1, None, 10)
        .await
        .unwrap();
    let rules: Vec<&str> = found.iter().map(|x| x.rule.as_str()).collect();
    assert_eq!(rules, ["big-refund", "night"]);
    // Both were found in the same moment: a page that ends between them goes on from the second.
    let first = store
        .exceptions_found(NOW_MS - 1, NOW_MS + 1, None, 1)
        .await
        .unwrap();
    let after = (first[0].found_ms, first[0].event_seq, first[0].rule.clone());
    let rest = store
        .exceptions_found(NOW_MS - 1, NOW_MS + 1, Some(&after), 10)
        .await
        .unwrap();
    assert_eq!(
        rest.iter().map(|x| x.rule.as_str()).collect::<Vec<_>>(),
        ["night"]
    );
    let rows = [
        owed("lp-desk", "big-refund", seqs[0]),
        owed("lp-desk", "night", seqs[1]),
    ];
    assert_eq!(store.plan_alerts(&rows, NOW_MS).await.unwrap(), 2);
    let other = store.again().await;
    assert_eq!(other.plan_alerts(&rows, NOW_MS + 5).await.unwrap(), 0);
    // Another alert owes the same exception a message of its own; so does each store's digest, once a day.
    let digest = NewAlert {
        alert: "owner".into(),
        store: "shibuya-01".into(),
        what: AlertSubject::Digest {
            day: "2027-01-15".into(),
            from_ms: NOW_MS - 86_400_000,
            to_ms: NOW_MS,
        },
        due_ms: NOW_MS,
    };
    let more = [owed("slack", "big-refund", seqs[0]), digest.clone(), digest];
    assert_eq!(other.plan_alerts(&more, NOW_MS).await.unwrap(), 2);
    let jobs = store.claim_alerts("d1", NOW_MS, 60_000, 10).await.unwrap();
    let keys: Vec<String> = jobs.iter().map(AlertJob::key).collect();
    assert_eq!(
        keys,
        [
            format!("lp-desk:big-refund:{}", seqs[0]),
            format!("lp-desk:night:{}", seqs[1]),
            format!("slack:big-refund:{}", seqs[0]),
            "owner:shibuya-01:2027-01-15".to_string(),
        ]
    );
}

async fn a_live_alert_lease_is_never_taken_and_an_expired_one_is_claimed_again(kind: Kind) {
    let (store, seqs) = with_exceptions(kind).await;
    store
        .plan_alerts(&[owed("lp-desk", "big-refund", seqs[0])], NOW_MS)
        .await
        .unwrap();
    let first = store.claim_alerts("d1", NOW_MS, 60_000, 10).await.unwrap();
    assert_eq!((first.len(), first[0].attempts), (1, 1));
    let other = store.again().await;
    assert!(
        other
            .claim_alerts("d2", NOW_MS + 59_999, 60_000, 10)
            .await
            .unwrap()
            .is_empty()
    );
    // d1 died mid-send: once its lease is over, d2 sends it again, under the same key.
    let again = other
        .claim_alerts("d2", NOW_MS + 60_000, 60_000, 10)
        .await
        .unwrap();
    assert_eq!((again[0].key(), again[0].attempts), (first[0].key(), 2));
    // d1's late report changes nothing: the row is d2's now.
    store
        .finish_alert(first[0].id, "d1", &AlertOutcome::Sent, NOW_MS + 60_001)
        .await
        .unwrap();
    assert!(
        store
            .claim_alerts("d3", NOW_MS + 120_001, 60_000, 10)
            .await
            .unwrap()
            .len()
            == 1
    );
}

async fn a_retried_alert_waits_for_its_time_and_a_sent_or_failed_one_is_never_claimed_again(
    kind: Kind,
) {
    let (store, seqs) = with_exceptions(kind).await;
    let rows = [
        owed("a", "big-refund", seqs[0]),
        owed("b", "big-refund", seqs[0]),
        owed("c", "night", seqs[1]),
    ];
    store.plan_alerts(&rows, NOW_MS).await.unwrap();
    let jobs = store.claim_alerts("d1", NOW_MS, 60_000, 10).await.unwrap();
    let outcomes = [
        AlertOutcome::Sent,
        AlertOutcome::Failed {
            error: "HTTP 410".into(),
        },
        AlertOutcome::Retry {
            error: "HTTP 503".into(),
            next_ms: NOW_MS + 5_000,
        },
    ];
    for (job, outcome) in jobs.iter().zip(&outcomes) {
        store
            .finish_alert(job.id, "d1", outcome, NOW_MS + 1)
            .await
            .unwrap();
    }
    // What /healthz shows: one refused for good, one to be tried again, and the newest error.
    assert_eq!(
        store.alert_trouble().await.unwrap(),
        AlertTrouble {
            failed: 1,
            retrying: 1,
            newest: Some(("c".into(), "HTTP 503".into())),
        }
    );
    assert!(
        store
            .claim_alerts("d1", NOW_MS + 4_999, 60_000, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let retried = store
        .claim_alerts("d1", NOW_MS + 5_000, 60_000, 10)
        .await
        .unwrap();
    assert_eq!(
        retried
            .iter()
            .map(|j| (j.alert.as_str(), j.attempts))
            .collect::<Vec<_>>(),
        [("c", 2)]
    );
}

async fn a_restarted_daemon_releases_only_its_own_alert_leases(kind: Kind) {
    let (store, seqs) = with_exceptions(kind).await;
    store
        .plan_alerts(
            &[
                owed("a", "big-refund", seqs[0]),
                owed("b", "night", seqs[1]),
            ],
            NOW_MS,
        )
        .await
        .unwrap();
    store.claim_alerts("d1", NOW_MS, 60_000, 1).await.unwrap();
    store.claim_alerts("d2", NOW_MS, 60_000, 1).await.unwrap();
    assert_eq!(store.release_orphaned_alerts("d1").await.unwrap(), 1);
    let taken = store
        .claim_alerts("d1", NOW_MS + 1, 60_000, 10)
        .await
        .unwrap();
    assert_eq!(
        taken.iter().map(|j| j.alert.as_str()).collect::<Vec<_>>(),
        ["a"]
    );
}

backend_tests!(kind:
    planning_an_exception_again_from_another_daemon_adds_nothing,
    a_live_alert_lease_is_never_taken_and_an_expired_one_is_claimed_again,
    a_retried_alert_waits_for_its_time_and_a_sent_or_failed_one_is_never_claimed_again,
    a_restarted_daemon_releases_only_its_own_alert_leases,
);
