//! The backend for chains that outgrow one box: PostgreSQL, shared by several daemons at once. Nothing here
//! assumes a single instance: a claim is a lease held by one named daemon (`claimed_by`) and taken over by
//! another only after it expires, rows are claimed with `FOR UPDATE SKIP LOCKED` so two daemons never hand out
//! the same one, and dedupe rests on the unique `(store, id)` key, not on who wrote first.
//!
//! Schema: `migrations/postgres`, the whole of what the SQLite migrations build.

mod accounts;
mod audit;
mod cases;
mod dead_letters;
mod retention;

use std::time::Duration;

use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::{Postgres, QueryBuilder};

use super::*;

// Until the Store impl lands: the skeleton the sub-trait implementations build on.
#[allow(dead_code)]
pub struct PgStore {
    pool: PgPool,
}

/// Connections per daemon: ingest, the delivery's claims and answers, the indexer-free search and the index's
/// pages each take one at a time, and PostgreSQL's own limit (100 by default) is shared by every daemon.
const POOL_CONNECTIONS: u32 = 8;

/// Narrows to the events of the stores in `scope`; an empty list matches nothing. One array parameter, not one
/// per store, so a reader's query text, and its cached plan, are the same whatever their stores.
#[allow(dead_code)]
pub(super) fn push_scope(q: &mut QueryBuilder<Postgres>, column: &str, scope: &StoreScope) {
    let StoreScope::Only(stores) = scope else {
        return;
    };
    if stores.is_empty() {
        q.push(" AND false");
        return;
    }
    q.push(format!(" AND {column} = ANY("))
        .push_bind(stores.clone());
    q.push(")");
}

impl PgStore {
    #[allow(dead_code)]
    pub(super) fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Connects to `url` (`postgres://` or `postgresql://`) and brings its schema up to date. Migrations
    /// take PostgreSQL's advisory lock, so daemons starting together migrate once.
    pub async fn open(url: &str) -> Result<PgStore, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(POOL_CONNECTIONS)
            .acquire_timeout(Duration::from_secs(10))
            .connect(url)
            .await?;
        sqlx::migrate!("migrations/postgres").run(&pool).await?;
        Ok(PgStore { pool })
    }
}
