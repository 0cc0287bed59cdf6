//! The daemon's search indexer: what ingest stores is indexed a moment later, and stays indexed across a restart.

use std::time::Duration;

use tillmark::store::{SqliteStore, Store};

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_indexes_stored_events_for_search_a_moment_later_and_keeps_them_indexed_after_a_restart()
 {
    let site = Site::new();
    if site.sqlite_only("the trailing search indexer") {
        return;
    }
    let (daemon, mut bridge) = start_daemon(site.config(None, "http://127.0.0.1:9", "")).await;
    for id in ["s1", "s2", "s3"] {
        bridge
            .publish_as_register(&site, &event(id, "sale", "r1", AT))
            .await;
    }
    let base = web_base(&daemon);
    eventually(
        Duration::from_secs(10),
        "three events listed, none waiting for the index",
        || {
            let base = base.clone();
            async move {
                let html = get_text(&format!("{base}/?q=ON")).await;
                (html.matches("class=\"event-link\"").count() == 3 && !html.contains("Indexing"))
                    .then_some(())
            }
        },
    )
    .await;
    daemon.shutdown().await;

    let store = SqliteStore::open(&site.db_url()).await.expect("reopen");
    let counts = store.counts(&Default::default()).await.expect("counts");
    assert_eq!((counts.events, counts.unindexed), (3, 0));
    assert_eq!(
        store.index_search(100).await.expect("index"),
        0,
        "nothing is indexed twice"
    );
    store.close().await;
}
