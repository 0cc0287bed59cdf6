//! The backends a store test runs against: SQLite on a temporary file always, and PostgreSQL as well when
//! `TILLMARK_TEST_POSTGRES_URL` names a database (`postgres://postgres@127.0.0.1:5432/test`). Each PostgreSQL
//! test gets a schema of its own, made for it and dropped after it, so tests run side by side and leave
//! nothing behind.
//!
//! [`backend_tests!`] turns one scenario into a test per backend; the PostgreSQL one passes at once, saying
//! so, when no database is named.

use std::ops::Deref;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::{PgStore, SqliteStore, Store};

/// What the tests here ask of a store: all of it.
pub(crate) trait Tested: Store {}
impl<T: Store> Tested for T {}

/// A store to test, or a second handle on its database: what the scenarios' helpers take.
pub(crate) trait Handle: Deref<Target = dyn Tested> {}
impl<T: Deref<Target = dyn Tested>> Handle for T {}

const POSTGRES_URL: &str = "TILLMARK_TEST_POSTGRES_URL";

#[derive(Debug, Clone, Copy)]
pub(crate) enum Kind {
    Sqlite,
    Postgres,
}

enum Backend {
    Sqlite(SqliteStore),
    Postgres(PgStore),
}

/// A store to test, on a database of its own.
pub(crate) struct TestStore {
    backend: Backend,
    /// Where a second handle connects.
    url: String,
    place: Place,
}

/// What is removed after the test.
enum Place {
    File { _dir: tempfile::TempDir },
    Schema { admin_url: String, name: String },
}

impl Deref for TestStore {
    type Target = dyn Tested;

    fn deref(&self) -> &(dyn Tested + 'static) {
        match &self.backend {
            Backend::Sqlite(s) => s,
            Backend::Postgres(s) => s,
        }
    }
}

impl TestStore {
    /// A fresh database of `kind`, migrated; `None` for PostgreSQL when no database is named, which it says.
    pub(crate) async fn new(kind: Kind) -> Option<TestStore> {
        match kind {
            Kind::Sqlite => {
                let dir = tempfile::tempdir().unwrap();
                let url = format!("sqlite://{}", dir.path().join("t.db").display());
                Some(TestStore {
                    backend: Backend::Sqlite(SqliteStore::open(&url).await.unwrap()),
                    url,
                    place: Place::File { _dir: dir },
                })
            }
            Kind::Postgres => {
                let Ok(admin_url) = std::env::var(POSTGRES_URL) else {
                    eprintln!("{POSTGRES_URL} is not set: not run on PostgreSQL");
                    return None;
                };
                let name = fresh_schema(&admin_url).await;
                let url = format!(
                    "{admin_url}{}options=-c%20search_path%3D{name}%2Cpublic",
                    if admin_url.contains('?') { '&' } else { '?' }
                );
                Some(TestStore {
                    backend: Backend::Postgres(PgStore::open(&url).await.unwrap()),
                    url,
                    place: Place::Schema { admin_url, name },
                })
            }
        }
    }

    /// A second handle on the same database, as a second daemon would have.
    pub(crate) async fn again(&self) -> Box<dyn Tested> {
        match &self.backend {
            Backend::Sqlite(_) => Box::new(SqliteStore::open(&self.url).await.unwrap()),
            Backend::Postgres(_) => Box::new(PgStore::open(&self.url).await.unwrap()),
        }
    }

    /// The SQLite store underneath, for a test of SQLite's own machinery.
    pub(crate) fn sqlite(&self) -> &SqliteStore {
        match &self.backend {
            Backend::Sqlite(s) => s,
            Backend::Postgres(_) => panic!("a SQLite test was given PostgreSQL"),
        }
    }

    /// Runs `sql` as it is, outside the store's own methods: what an operator with a connection could do.
    pub(crate) async fn execute(&self, sql: &str) -> Result<u64, sqlx::Error> {
        Ok(match &self.backend {
            Backend::Sqlite(s) => sqlx::query(sql).execute(s.writer()).await?.rows_affected(),
            Backend::Postgres(s) => sqlx::query(sql).execute(s.pool()).await?.rows_affected(),
        })
    }
}

/// Whether the tests have a PostgreSQL database to run on.
pub(crate) fn postgres_named() -> bool {
    std::env::var_os(POSTGRES_URL).is_some()
}

/// Makes an empty schema of a name no other test uses. The trigram extension goes to `public` first, which
/// every test's search path ends in: made from a test's own schema, it would live there and go with it.
async fn fresh_schema(admin_url: &str) -> String {
    static COUNT: AtomicUsize = AtomicUsize::new(0);
    let name = format!(
        "tillmark_test_{}_{}_{}",
        std::process::id(),
        COUNT.fetch_add(1, Ordering::Relaxed),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos()
    );
    let pool = sqlx::PgPool::connect(admin_url).await.unwrap();
    // Tests starting together may race to make the extension: the loser's error leaves it made all the same.
    if let Err(e) = sqlx::query("CREATE EXTENSION IF NOT EXISTS pg_trgm WITH SCHEMA public")
        .execute(&pool)
        .await
    {
        let made: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm')",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        assert!(made, "cannot make pg_trgm: {e}");
    }
    sqlx::query(&format!("CREATE SCHEMA {name}"))
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    name
}

impl Drop for TestStore {
    fn drop(&mut self) {
        let Place::Schema { admin_url, name } = &self.place else {
            return;
        };
        // Drop cannot wait on the test's runtime, which may be unwinding: a runtime of its own, on a thread
        // of its own, drops the schema, also after a failed test.
        let (admin_url, statement) = (admin_url.clone(), format!("DROP SCHEMA {name} CASCADE"));
        let dropped = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(async {
                    let pool = sqlx::PgPool::connect(&admin_url).await?;
                    sqlx::query(&statement).execute(&pool).await?;
                    pool.close().await;
                    Ok::<_, sqlx::Error>(())
                })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("could not drop test schema {name}: {dropped:?}");
        }
    }
}

/// `backend_tests!(a, b)`: for each scenario `async fn a(store: &TestStore)` in scope, a module `a` with a test
/// `sqlite` and a test `postgres`, each running it on a fresh store of its backend.
///
/// `backend_tests!(kind: a, b)` does the same for scenarios `async fn a(kind: Kind)` that make their stores
/// themselves (several, or one of another shape).
macro_rules! backend_tests {
    (kind: $($scenario:ident),+ $(,)?) => {$(
        mod $scenario {
            use $crate::store::test_backends::{Kind, postgres_named};

            #[tokio::test]
            async fn sqlite() {
                super::$scenario(Kind::Sqlite).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if !postgres_named() {
                    eprintln!("TILLMARK_TEST_POSTGRES_URL is not set: not run on PostgreSQL");
                    return;
                }
                super::$scenario(Kind::Postgres).await;
            }
        }
    )+};
    ($($scenario:ident),+ $(,)?) => {$(
        mod $scenario {
            use $crate::store::test_backends::{Kind, TestStore};

            #[tokio::test]
            async fn sqlite() {
                let store = TestStore::new(Kind::Sqlite).await.unwrap();
                super::$scenario(&store).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let Some(store) = TestStore::new(Kind::Postgres).await else {
                    return;
                };
                super::$scenario(&store).await;
            }
        }
    )+};
}
pub(crate) use backend_tests;
