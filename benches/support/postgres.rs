//! The PostgreSQL database a benchmark runs on, when `TILLMARK_BENCH_POSTGRES_URL` names one
//! (`postgres://postgres@127.0.0.1:5432/test`): each run gets a schema of its own, made for it and dropped
//! after it, as the tests do (tests/test_database), so a run leaves nothing behind and needs no empty database.

/// Names the database the PostgreSQL figures are measured on; without it they are left out.
pub const POSTGRES_URL: &str = "TILLMARK_BENCH_POSTGRES_URL";

/// The database `TILLMARK_BENCH_POSTGRES_URL` names, if any.
pub fn admin_url() -> Option<String> {
    std::env::var(POSTGRES_URL).ok().filter(|u| !u.is_empty())
}

/// `url` without its password, to print.
pub fn shown(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(Some("***"));
            }
            u.set_query(None);
            u.to_string()
        }
        Err(_) => "(unparsable URL)".into(),
    }
}

/// A schema made for one run, and the URL that puts it first on the search path.
pub struct Schema {
    admin: String,
    name: String,
    pub url: String,
}

impl Schema {
    /// Makes an empty schema named `tillmark_bench_{what}_…`. The trigram extension goes to `public` first,
    /// which the search path ends in: made from the schema, it would live there and go with it.
    pub async fn create(admin: &str, what: &str) -> Result<Schema, sqlx::Error> {
        let name = format!(
            "tillmark_bench_{what}_{}",
            &uuid::Uuid::new_v4().simple().to_string()[..12]
        );
        let pool = sqlx::PgPool::connect(admin).await?;
        let made = async {
            if let Err(e) = sqlx::query("CREATE EXTENSION IF NOT EXISTS pg_trgm WITH SCHEMA public")
                .execute(&pool)
                .await
            {
                // Another session may have made it meanwhile.
                let there: bool = sqlx::query_scalar(
                    "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm')",
                )
                .fetch_one(&pool)
                .await?;
                if !there {
                    return Err(e);
                }
            }
            sqlx::query(&format!("CREATE SCHEMA {name}"))
                .execute(&pool)
                .await
        }
        .await;
        pool.close().await;
        made?;
        let separator = if admin.contains('?') { '&' } else { '?' };
        Ok(Schema {
            url: format!("{admin}{separator}options=-c%20search_path%3D{name}%2Cpublic"),
            admin: admin.to_string(),
            name,
        })
    }

    /// Drops the schema and all it holds.
    pub async fn drop(self) {
        if let Ok(pool) = sqlx::PgPool::connect(&self.admin).await {
            let _ = sqlx::query(&format!("DROP SCHEMA {} CASCADE", self.name))
                .execute(&pool)
                .await;
            pool.close().await;
        }
    }
}
