//! The database a test daemon or site runs on: a SQLite file in the test's folder, or, when
//! `TILLMARK_TEST_BACKEND=postgres` (with `TILLMARK_TEST_POSTGRES_URL` naming a database), a PostgreSQL schema
//! of its own, made for the test and dropped after it. CI runs the end-to-end suites both ways.

use std::path::Path;

const BACKEND: &str = "TILLMARK_TEST_BACKEND";
const POSTGRES_URL: &str = "TILLMARK_TEST_POSTGRES_URL";

pub struct TestDatabase {
    pub url: String,
    /// The PostgreSQL server and the schema to drop, when on PostgreSQL.
    schema: Option<(String, String)>,
}

/// Runs `work` to its end on a runtime of its own, on a thread of its own: callable from anywhere, also from
/// a test's runtime and from `Drop`.
fn block_on<T: Send + 'static>(work: impl std::future::Future<Output = T> + Send + 'static) -> T {
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(work)
    })
    .join()
    .unwrap()
}

impl TestDatabase {
    /// The backend the run asks for: PostgreSQL when `TILLMARK_TEST_BACKEND=postgres`, else SQLite.
    pub fn on_postgres() -> bool {
        std::env::var(BACKEND).is_ok_and(|b| b == "postgres")
    }

    /// A fresh database: `tillmark.db` in `dir`, or a new schema.
    pub fn new(dir: &Path) -> TestDatabase {
        if !Self::on_postgres() {
            return TestDatabase {
                url: format!("sqlite://{}", dir.join("tillmark.db").display()),
                schema: None,
            };
        }
        let admin = std::env::var(POSTGRES_URL)
            .unwrap_or_else(|_| panic!("{BACKEND}=postgres needs {POSTGRES_URL}"));
        Self::schema(admin)
    }

    /// A fresh PostgreSQL schema whatever the run's backend, for the tests of what only PostgreSQL serves
    /// (several daemons on one database); `None` when `TILLMARK_TEST_POSTGRES_URL` is not set.
    #[allow(dead_code)]
    pub fn postgres() -> Option<TestDatabase> {
        std::env::var(POSTGRES_URL)
            .ok()
            .filter(|u| !u.is_empty())
            .map(Self::schema)
    }

    fn schema(admin: String) -> TestDatabase {
        let name = format!("e2e_{}", &uuid::Uuid::new_v4().simple().to_string()[..16]);
        let (url, statement) = (admin.clone(), format!("CREATE SCHEMA {name}"));
        block_on(async move {
            let pool = sqlx::PgPool::connect(&url)
                .await
                .expect("connect to PostgreSQL");
            sqlx::query(&statement)
                .execute(&pool)
                .await
                .expect("create a schema");
            pool.close().await;
        });
        let separator = if admin.contains('?') { '&' } else { '?' };
        TestDatabase {
            url: format!("{admin}{separator}options=-c%20search_path%3D{name}%2Cpublic"),
            schema: Some((admin, name)),
        }
    }
}

impl TestDatabase {
    /// Runs `statement` on the database directly, as an operator's SQL console would: for a test to age a
    /// row or damage one.
    #[allow(dead_code)]
    pub async fn execute(&self, statement: &str) {
        let (url, statement) = (self.url.clone(), statement.to_string());
        block_on(async move {
            if url.starts_with("sqlite:") {
                let pool = sqlx::SqlitePool::connect(&url).await.expect("open SQLite");
                sqlx::query(&statement)
                    .execute(&pool)
                    .await
                    .expect("run the statement");
                pool.close().await;
            } else {
                let pool = sqlx::PgPool::connect(&url)
                    .await
                    .expect("connect to PostgreSQL");
                sqlx::query(&statement)
                    .execute(&pool)
                    .await
                    .expect("run the statement");
                pool.close().await;
            }
        });
    }

    /// Everything the database holds, as text, for a test that searches it for what must never be kept: the
    /// bytes of every file in `dir` (SQLite's file, its log and its index), or every row of every table of the
    /// schema as JSON.
    // Not every test crate including this module searches a database.
    #[allow(dead_code)]
    pub fn contents(&self, dir: &Path) -> String {
        let Some((admin, name)) = self.schema.clone() else {
            let mut bytes = Vec::new();
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_file() {
                    bytes.extend(std::fs::read(path).unwrap());
                }
            }
            return String::from_utf8_lossy(&bytes).into_owned();
        };
        block_on(async move {
            let pool = sqlx::PgPool::connect(&admin)
                .await
                .expect("connect to PostgreSQL");
            let tables: Vec<String> = sqlx::query_scalar(
                "SELECT table_name::text FROM information_schema.tables WHERE table_schema = $1",
            )
            .bind(&name)
            .fetch_all(&pool)
            .await
            .expect("list the tables");
            let mut text = String::new();
            for table in tables {
                let rows: Vec<String> = sqlx::query_scalar(&format!(
                    "SELECT row_to_json(t)::text FROM {name}.{table} t"
                ))
                .fetch_all(&pool)
                .await
                .expect("read a table");
                text.extend(rows);
            }
            pool.close().await;
            text
        })
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let Some((admin, name)) = self.schema.take() else {
            return;
        };
        let statement = format!("DROP SCHEMA {name} CASCADE");
        block_on(async move {
            if let Ok(pool) = sqlx::PgPool::connect(&admin).await {
                let _ = sqlx::query(&statement).execute(&pool).await;
                pool.close().await;
            }
        });
    }
}
