//! How fast the event list answers its searches and filters on a big store file.
//!
//! `cargo bench --bench search` fills a SQLite file with 1,000,000 events (`TILLMARK_BENCH_EVENTS=100000` for a
//! quick run): eight stores, four registers each, forty cashiers, half the stores printing Japanese receipts and
//! half English ones, about a third of the events flagged, each flagged one with a bookmark (most made, some
//! pending, a few failed), and some events arriving late, out of time order. Rows go in with sqlx directly, in
//! transactions of 20,000, 100 to a statement, with `synchronous = OFF`, so the fill measures the schema rather
//! than the durability of ingest; `cargo bench --bench pipeline` measures that. The search indexer's steps then
//! index them, as the daemon's indexer does after ingest, and the rate is printed with the indexes' size. The
//! queries run through the store the daemon uses, `Store::events`, as the API and the pages call it: every kind
//! of word the indexes answer, alone and with filters and store scopes, and again while 20,000 new events wait
//! for the indexer.
//!
//! With `TILLMARK_BENCH_POSTGRES_URL` naming a PostgreSQL database (`postgres://postgres@127.0.0.1:5432/test`;
//! the bench makes a schema of its own there and drops it after), the same events (the same generator and
//! seed; `TILLMARK_BENCH_POSTGRES_EVENTS` for another count, default the SQLite count) go into PostgreSQL too:
//! many rows to a statement (UNNEST, 5,000 rows each) in transactions of 20,000 with `synchronous_commit =
//! off`, the trigram index dropped for the fill and built again from its own definition after it, then
//! `VACUUM ANALYZE`. The same searches run through `PgStore`, and a last table puts each kind's p50 and p95
//! beside SQLite's, the ratio of the 95th percentiles first. Prints figures; asserts nothing.

use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;
use sqlx::{Connection, QueryBuilder, Sqlite};
use tillmark::indexer::STEP;
use tillmark::store::{
    BookmarkState, CaseChange, CaseFilter, CaseOutcome, EventQuery, Intake, NewBookmark, PgStore,
    RegisterActivity, SqliteStore, Store, StoreScope,
};

#[path = "support/postgres.rs"]
mod postgres;
use postgres::{POSTGRES_URL, Schema};

const PAGE: i64 = 50;
const RUNS: usize = 30;
/// 2026-01-01T00:00:00Z: the first event; the rest follow over about half a year.
const START_MS: i64 = 1_767_225_600_000;
const SPAN_MS: i64 = 180 * 24 * 3_600_000;
const BATCH: usize = 20_000;
/// 100 rows of 19 columns stay well under SQLite's 32,766 bound parameters.
const ROWS_PER_STATEMENT: usize = 100;

const STORES: [(&str, bool); 8] = [
    ("shibuya-01", true),
    ("shinjuku-02", true),
    ("ikebukuro-03", true),
    ("umeda-04", true),
    ("seattle-01", false),
    ("portland-02", false),
    ("denver-03", false),
    ("austin-04", false),
];

const JA_ITEMS: [(&str, i64); 9] = [
    ("おにぎり 鮭", 180),
    ("おにぎり 梅", 150),
    ("緑茶 500ml", 150),
    ("からあげ弁当", 550),
    ("サンドイッチ たまご", 320),
    ("ホットコーヒー M", 180),
    ("レジ袋", 3),
    ("週刊誌", 450),
    ("ワイン 赤 750ml", 2_980),
];
const EN_ITEMS: [(&str, i64); 7] = [
    ("COFFEE 12OZ", 350),
    ("BAGEL PLAIN", 225),
    ("TURKEY SANDWICH", 895),
    ("BOTTLED WATER", 199),
    ("GUM MINT", 149),
    ("NEWSPAPER", 300),
    ("WINE RED 750ML", 2_499),
];

/// Type, share in a thousand, flagged; flagged ones make up a third.
const TYPES: [(&str, u32, bool); 11] = [
    ("sale", 560, false),
    ("void", 60, true),
    ("item_void", 90, true),
    ("refund", 70, true),
    ("correction", 40, true),
    ("no_sale", 30, true),
    ("drawer_open", 30, true),
    ("paid_out", 13, true),
    ("drawer_close", 50, false),
    ("discount", 37, false),
    ("sign_on", 20, false),
];

fn pick_type(rng: &mut StdRng) -> (&'static str, bool) {
    let mut roll = rng.random_range(0..1000);
    for (kind, share, flagged) in TYPES {
        if roll < share {
            return (kind, flagged);
        }
        roll -= share;
    }
    ("sale", false)
}

fn reason(rng: &mut StdRng, kind: &str, japanese: bool) -> Option<&'static str> {
    let choices: &[&str] = match (kind, japanese) {
        ("refund", true) => &["お客様都合による返品", "商品不良のため返品", "レシート忘れ"],
        ("refund", false) => &["customer changed mind", "damaged item", "wrong size"],
        ("void" | "item_void", true) => &["打ち間違い", "取消", "お客様都合"],
        ("void" | "item_void", false) => &["keyed in error", "customer changed mind"],
        ("correction", true) => &["価格訂正", "数量訂正"],
        ("correction", false) => &["price override", "quantity fix"],
        _ => return None,
    };
    Some(choices[rng.random_range(0..choices.len())])
}

/// One event's columns, as ingest would write them.
struct Row {
    store: &'static str,
    id: String,
    kind: &'static str,
    at: String,
    at_ms: i64,
    register: String,
    cashier: String,
    txn: String,
    amount: i64,
    currency: &'static str,
    reason: Option<&'static str>,
    lines: String,
    raw: String,
    flagged: bool,
}

fn row(rng: &mut StdRng, i: usize, n: usize) -> Row {
    let store_no = rng.random_range(0..STORES.len());
    let (store, japanese) = STORES[store_no];
    let (kind, flagged) = pick_type(rng);
    // One in fifty arrives up to an hour late, after newer events: seq order is not time order.
    let late = if rng.random_ratio(1, 50) {
        rng.random_range(0..3_600_000)
    } else {
        0
    };
    let at_ms = START_MS + (i as i64 * SPAN_MS / n as i64) - late;
    let (items, currency): (&[(&str, i64)], _) = if japanese {
        (&JA_ITEMS, "JPY")
    } else {
        (&EN_ITEMS, "USD")
    };
    let mut lines = Vec::new();
    let mut amount = 0;
    for _ in 0..rng.random_range(1..5) {
        let (name, price) = items[rng.random_range(0..items.len())];
        amount += price;
        lines.push(if japanese {
            format!("{name:<16} ¥{price}")
        } else {
            format!("{name:<20} {}.{:02}", price / 100, price % 100)
        });
    }
    match (kind, japanese) {
        ("refund", true) => lines.insert(0, format!("返品 ¥{amount}")),
        ("refund", false) => lines.insert(0, format!("RETURN {amount}")),
        ("void", true) => lines.push("*** 取消 ***".into()),
        ("void", false) => lines.push("*** VOID ***".into()),
        _ => {}
    }
    let cashier = format!("c{}", 100 + store_no * 5 + rng.random_range(0..5));
    let register = format!("r{}", rng.random_range(1..5));
    let txn = format!("T-{i:07}");
    let reason = reason(rng, kind, japanese);
    let at = chrono::DateTime::from_timestamp_millis(at_ms)
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let id = format!("{store}-{i}");
    let raw = json!({
        "id": id, "type": kind, "at": at, "store": store, "register": register, "cashier": cashier,
        "transaction": txn, "amount": amount, "currency": currency, "reason": reason, "lines": lines,
    })
    .to_string();
    Row {
        store,
        id,
        kind,
        at,
        at_ms,
        register,
        cashier,
        txn,
        amount,
        currency,
        reason,
        lines: serde_json::to_string(&lines).unwrap(),
        raw,
        flagged,
    }
}

/// An event to write: `(seq, row, its bookmark's state when flagged)`.
type Generated = (i64, Row, Option<&'static str>);

/// The events of a run of `n`, in runs of up to [`ROWS_PER_STATEMENT`], each flagged one with its bookmark's
/// state: the same, in the same order, for every backend.
struct Generator {
    rng: StdRng,
    i: usize,
    n: usize,
}

impl Generator {
    fn new(n: usize) -> Generator {
        Generator {
            rng: StdRng::seed_from_u64(7),
            i: 0,
            n,
        }
    }

    /// The next transaction's events, up to [`BATCH`], in statements of `per_statement` (a multiple of
    /// [`ROWS_PER_STATEMENT`], so that every backend draws the same numbers in the same order); `None` after
    /// the last.
    fn next_transaction(&mut self, per_statement: usize) -> Option<Vec<Vec<Generated>>> {
        let end = (self.i + BATCH).min(self.n);
        let mut statements = Vec::new();
        while self.i < end {
            let mut rows = Vec::with_capacity(per_statement);
            while self.i < end && rows.len() < per_statement {
                rows.extend(self.next_run(end));
            }
            statements.push(rows);
        }
        (!statements.is_empty()).then_some(statements)
    }

    /// The next events up to (not past) event `end`. The table starts empty, so event `i` gets seq `i + 1`.
    fn next_run(&mut self, end: usize) -> Vec<Generated> {
        let (from, n) = (self.i, self.n);
        let rows: Vec<(i64, Row)> = (from..(from + ROWS_PER_STATEMENT).min(end))
            .map(|i| (i as i64 + 1, row(&mut self.rng, i, n)))
            .collect();
        self.i += rows.len();
        rows.into_iter()
            .map(|(seq, r)| {
                // Most made; a backlog of pending ones; a few failed for good.
                let state = r.flagged.then(|| match self.rng.random_range(0..100) {
                    0..2 => "failed",
                    2..6 => "pending",
                    _ => "made",
                });
                (seq, r, state)
            })
            .collect()
    }
}

/// Fills the file through its own connection; returns how long that took. Both tables take many rows per
/// statement.
async fn fill(url: &str, n: usize) -> Duration {
    let started = Instant::now();
    let mut conn = sqlx::SqliteConnection::connect(url).await.unwrap();
    sqlx::query("PRAGMA synchronous = OFF")
        .execute(&mut conn)
        .await
        .unwrap();
    let mut generator = Generator::new(n);
    while let Some(statements) = generator.next_transaction(ROWS_PER_STATEMENT) {
        let mut tx = conn.begin().await.unwrap();
        for rows in statements {
            let mut q = QueryBuilder::<Sqlite>::new(
                "INSERT INTO events (seq, store, id, event_key, type, at, at_ms, received_ms, register, cashier, \
                 txn, amount, currency, reason, lines, raw, topic, flagged, mapped) ",
            );
            q.push_values(&rows, |mut b, (seq, r, _)| {
                b.push_bind(seq)
                    .push_bind(r.store)
                    .push_bind(&r.id)
                    .push_bind(tillmark::event::event_key(r.store, &r.id))
                    .push_bind(r.kind)
                    .push_bind(&r.at)
                    .push_bind(r.at_ms)
                    .push_bind(r.at_ms + 800)
                    .push_bind(&r.register)
                    .push_bind(&r.cashier)
                    .push_bind(&r.txn)
                    .push_bind(r.amount)
                    .push_bind(r.currency)
                    .push_bind(r.reason)
                    .push_bind(&r.lines)
                    .push_bind(&r.raw)
                    .push_bind(format!("pos/{}/{}/events", r.store, r.register))
                    .push_bind(r.flagged)
                    .push_bind(true);
            });
            q.build().execute(&mut *tx).await.unwrap();
            let flagged: Vec<_> = rows.iter().filter(|(_, r, _)| r.flagged).collect();
            if flagged.is_empty() {
                continue;
            }
            let mut q = QueryBuilder::<Sqlite>::new(
                "INSERT INTO bookmarks (event_seq, system, device, camera, moment_ms, start_ms, duration_ms, \
                 state, attempts, next_attempt_ms, created_ms, updated_ms) ",
            );
            q.push_values(flagged, |mut b, (seq, r, state)| {
                b.push_bind(seq)
                    .push_bind("nvr")
                    .push_bind(format!("{}-{}", r.store, r.register))
                    .push_bind(&r.register)
                    .push_bind(r.at_ms)
                    .push_bind(r.at_ms - 10_000)
                    .push_bind(30_000)
                    .push_bind(state)
                    .push_bind(1)
                    .push_bind(r.at_ms)
                    .push_bind(r.at_ms)
                    .push_bind(r.at_ms);
            });
            q.build().execute(&mut *tx).await.unwrap();
        }
        tx.commit().await.unwrap();
    }
    sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    started.elapsed()
}

/// Rows a statement of the PostgreSQL fill takes: each column goes as one array, so the count is not bounded by
/// the protocol's 65,535 parameters.
const PG_ROWS_PER_STATEMENT: usize = 5_000;

/// What the PostgreSQL fill took: the rows, the trigram index built after them, and `VACUUM ANALYZE`.
struct PgFill {
    rows: Duration,
    index: Duration,
    vacuum: Duration,
}

/// Fills the schema at `url` (migrated, empty) with the same events and bookmarks as [`fill`], through its own
/// connection with `synchronous_commit = off`, the trigram index dropped for the fill and made again from its
/// own definition after it (a bulk build, as `CREATE INDEX` on a filled table would be). Then the identity
/// goes past the last seq, for ingest after it, and `VACUUM ANALYZE` leaves the tables as autovacuum would.
async fn fill_postgres(url: &str, n: usize) -> PgFill {
    let started = Instant::now();
    let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
    sqlx::query("SET synchronous_commit = off")
        .execute(&mut conn)
        .await
        .unwrap();
    let search_index: String =
        sqlx::query_scalar("SELECT pg_get_indexdef('events_search'::regclass)")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    sqlx::query("DROP INDEX events_search")
        .execute(&mut conn)
        .await
        .unwrap();
    let mut generator = Generator::new(n);
    while let Some(statements) = generator.next_transaction(PG_ROWS_PER_STATEMENT) {
        let mut tx = conn.begin().await.unwrap();
        for rows in statements {
            let text = |f: &dyn Fn(&Row) -> String| -> Vec<String> {
                rows.iter().map(|(_, r, _)| f(r)).collect()
            };
            let number = |f: &dyn Fn(&Row) -> i64| -> Vec<i64> {
                rows.iter().map(|(_, r, _)| f(r)).collect()
            };
            sqlx::query(
                "INSERT INTO events (seq, store, id, event_key, type, at, at_ms, received_ms, register, cashier, \
                 txn, amount, currency, reason, lines, raw, topic, flagged, mapped) \
                 SELECT * FROM UNNEST($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], \
                 $7::bigint[], $8::bigint[], $9::text[], $10::text[], $11::text[], $12::bigint[], $13::text[], \
                 $14::text[], $15::text[], $16::text[], $17::text[], $18::boolean[], $19::boolean[])",
            )
            .bind(rows.iter().map(|(seq, _, _)| *seq).collect::<Vec<_>>())
            .bind(text(&|r| r.store.to_string()))
            .bind(text(&|r| r.id.clone()))
            .bind(text(&|r| tillmark::event::event_key(r.store, &r.id)))
            .bind(text(&|r| r.kind.to_string()))
            .bind(text(&|r| r.at.clone()))
            .bind(number(&|r| r.at_ms))
            .bind(number(&|r| r.at_ms + 800))
            .bind(text(&|r| r.register.clone()))
            .bind(text(&|r| r.cashier.clone()))
            .bind(text(&|r| r.txn.clone()))
            .bind(number(&|r| r.amount))
            .bind(text(&|r| r.currency.to_string()))
            .bind(
                rows.iter()
                    .map(|(_, r, _)| r.reason.map(str::to_string))
                    .collect::<Vec<_>>(),
            )
            .bind(text(&|r| r.lines.clone()))
            .bind(text(&|r| r.raw.clone()))
            .bind(text(&|r| format!("pos/{}/{}/events", r.store, r.register)))
            .bind(rows.iter().map(|(_, r, _)| r.flagged).collect::<Vec<_>>())
            .bind(vec![true; rows.len()])
            .execute(&mut *tx)
            .await
            .unwrap();
            let flagged: Vec<_> = rows
                .iter()
                .filter_map(|(seq, r, state)| state.map(|state| (*seq, r, state)))
                .collect();
            let text = |f: &dyn Fn(&Row) -> String| -> Vec<String> {
                flagged.iter().map(|(_, r, _)| f(r)).collect()
            };
            let at = flagged.iter().map(|(_, r, _)| r.at_ms).collect::<Vec<_>>();
            sqlx::query(
                "INSERT INTO bookmarks (event_seq, system, device, camera, moment_ms, start_ms, duration_ms, \
                 state, attempts, next_attempt_ms, created_ms, updated_ms) \
                 SELECT s, 'nvr', d, c, m, m - 10000, 30000, st, 1, m, m, m \
                 FROM UNNEST($1::bigint[], $2::text[], $3::text[], $4::bigint[], $5::text[]) AS v (s, d, c, m, st)",
            )
            .bind(flagged.iter().map(|(seq, _, _)| *seq).collect::<Vec<_>>())
            .bind(text(&|r| format!("{}-{}", r.store, r.register)))
            .bind(text(&|r| r.register.clone()))
            .bind(&at)
            .bind(flagged.iter().map(|(_, _, state)| state.to_string()).collect::<Vec<_>>())
            .execute(&mut *tx)
            .await
            .unwrap();
        }
        tx.commit().await.unwrap();
    }
    let rows = started.elapsed();
    let started = Instant::now();
    sqlx::query(&search_index).execute(&mut conn).await.unwrap();
    let index = started.elapsed();
    sqlx::query(
        "SELECT setval(pg_get_serial_sequence('events', 'seq'), (SELECT MAX(seq) FROM events))",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    let started = Instant::now();
    sqlx::query("VACUUM ANALYZE events, bookmarks")
        .execute(&mut conn)
        .await
        .unwrap();
    let vacuum = started.elapsed();
    conn.close().await.unwrap();
    PgFill {
        rows,
        index,
        vacuum,
    }
}

/// Bytes the tables of the schema at `url` take, with their indexes and TOAST; and the trigram index's.
async fn postgres_bytes(url: &str) -> (i64, i64) {
    let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
    let sizes = sqlx::query_as(
        "SELECT COALESCE(SUM(pg_total_relation_size(c.oid)), 0)::bigint, \
         pg_relation_size('events_search'::regclass) \
         FROM pg_class c JOIN pg_namespace s ON s.oid = c.relnamespace \
         WHERE s.nspname = current_schema() AND c.relkind = 'r'",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    conn.close().await.unwrap();
    sizes
}

/// The same events and reads on PostgreSQL, when `TILLMARK_BENCH_POSTGRES_URL` names a database, then each
/// kind beside SQLite's `sqlite` figures (of a run of `n`).
async fn on_postgres(n: usize, sqlite: &[Timing]) {
    let Some(admin) = postgres::admin_url() else {
        println!("PostgreSQL: not measured ({POSTGRES_URL} names no database)");
        return;
    };
    let shown = postgres::shown(&admin);
    let n_pg: usize = std::env::var("TILLMARK_BENCH_POSTGRES_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(n);
    let schema = match Schema::create(&admin, "search").await {
        Ok(schema) => schema,
        Err(e) => {
            println!("PostgreSQL at {shown}: not measured (cannot make a schema: {e})");
            return;
        }
    };
    println!();
    println!("search benchmark: PostgreSQL ({shown}, a fresh schema), pages of {PAGE}");
    // Opening runs the migrations: the schema under test.
    PgStore::open(&schema.url).await.unwrap().close().await;
    let fill = fill_postgres(&schema.url, n_pg).await;
    println!(
        "  filled with {n_pg} events in {:.1} s ({:.0} events/s, synchronous_commit = off, no trigram index on \
         the way in); trigram index built in {:.1} s; VACUUM ANALYZE {:.1} s",
        fill.rows.as_secs_f64(),
        n_pg as f64 / fill.rows.as_secs_f64(),
        fill.index.as_secs_f64(),
        fill.vacuum.as_secs_f64()
    );
    let store = PgStore::open(&schema.url).await.unwrap();
    let events = store.counts(&Default::default()).await.unwrap().events;
    let (size, index) = postgres_bytes(&schema.url).await;
    println!(
        "  database size: {:.0} MiB for {events} events ({:.0} bytes each, indexes included); trigram index: \
         {:.0} MiB ({:.0} bytes an event)",
        size as f64 / 1_048_576.0,
        size as f64 / events as f64,
        index as f64 / 1_048_576.0,
        index as f64 / events as f64
    );
    let timings = searches(&store, n_pg, events).await;
    store.close().await;
    schema.drop().await;

    println!();
    let data = if n_pg == n {
        format!("the same {n} events on both")
    } else {
        format!("SQLite on {n} events, PostgreSQL on {n_pg}: the same generator, not the same data")
    };
    println!(
        "search on both backends, p50 / p95 in ms ({data}); the ratio is PostgreSQL's p95 over SQLite's"
    );
    println!();
    println!("| ratio | what | PostgreSQL | SQLite | listed (PostgreSQL / SQLite) |");
    println!("|---:|---|---|---|---|");
    for (p, s) in timings.iter().zip(sqlite) {
        let what = if p.label == s.label {
            s.label.clone()
        } else {
            format!("{} (PostgreSQL: {})", s.label, p.label)
        };
        println!(
            "| {:.2} | {} | {:.2} / {:.2} | {:.2} / {:.2} | {} / {} |",
            p.p95_ms / s.p95_ms,
            what,
            p.p50_ms,
            p.p95_ms,
            s.p50_ms,
            s.p95_ms,
            p.listed,
            s.listed
        );
    }
}

/// Median and 95th percentile of `runs` answers to the query `make(run)` builds, and how many events the last
/// one listed.
async fn measure(
    store: &dyn Store,
    label: &str,
    runs: usize,
    make: impl Fn(usize) -> EventQuery,
) -> Timing {
    time(label, runs, async |run| {
        store.events(&make(run)).await.unwrap().len()
    })
    .await
}

/// One kind of read's figures, as printed.
struct Timing {
    label: String,
    p50_ms: f64,
    p95_ms: f64,
    listed: usize,
}

/// Median and 95th percentile of `runs` calls of `read(run)`, which answers how many rows it got.
async fn time(label: &str, runs: usize, read: impl AsyncFn(usize) -> usize) -> Timing {
    let mut times = Vec::with_capacity(runs);
    let mut listed = 0;
    // One run first, not counted: the first touch of a cold page cache is not what a person waits for twice.
    read(runs).await;
    for run in 0..runs {
        let started = Instant::now();
        listed = read(run).await;
        times.push(started.elapsed());
    }
    times.sort_unstable();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let (p50_ms, p95_ms) = (ms(times[runs / 2]), ms(times[(runs - 1) * 95 / 100]));
    println!("  {label:<44} p50 {p50_ms:>8.2} ms   p95 {p95_ms:>8.2} ms   ({listed} listed)");
    Timing {
        label: label.to_string(),
        p50_ms,
        p95_ms,
        listed,
    }
}

/// Stores events `from..to` of a run of `n` through `Store::ingest`, 2,000 a transaction; returns how long it took.
async fn ingest_burst(store: &dyn Store, from: usize, to: usize, n: usize) -> Duration {
    let mut rng = StdRng::seed_from_u64(from as u64);
    let intakes: Vec<Intake> = (from..to)
        .map(|i| {
            let r = row(&mut rng, i, n);
            let parsed = tillmark::event::parse(r.raw.as_bytes());
            let event = parsed.result.expect("a valid bench event");
            let bookmarks = if r.flagged {
                vec![NewBookmark {
                    system: "nvr".into(),
                    device: format!("{}-{}", r.store, r.register),
                    camera: r.register.clone(),
                    moment_ms: r.at_ms,
                    start_ms: r.at_ms - 10_000,
                    duration_ms: 30_000,
                }]
            } else {
                Vec::new()
            };
            Intake::Event {
                digest: tillmark::event::content_digest(&event),
                event: Box::new(event),
                raw: parsed.raw,
                signed: None,
                topic: format!("pos/{}/{}/events", r.store, r.register),
                received_ms: r.at_ms + 800,
                flagged: r.flagged,
                mapped: true,
                bookmarks,
                drawer: Default::default(),
            }
        })
        .collect();
    let started = Instant::now();
    for batch in intakes.chunks(2_000) {
        store.ingest(batch, START_MS + SPAN_MS).await.unwrap();
    }
    started.elapsed()
}

/// Runs the indexer's steps until it has nothing left: how many events it indexed, in how long.
async fn catch_up(store: &dyn Store) -> (u64, Duration) {
    let started = Instant::now();
    let mut indexed = 0;
    loop {
        let step = store.index_search(STEP).await.unwrap();
        indexed += step;
        if step < STEP as u64 {
            return (indexed, started.elapsed());
        }
    }
}

/// Bytes the pages of an FTS5 index's shadow tables take.
async fn index_bytes(url: &str, index: &str) -> i64 {
    let mut conn = sqlx::SqliteConnection::connect(url).await.unwrap();
    let bytes =
        sqlx::query_scalar("SELECT COALESCE(SUM(pgsize), 0) FROM dbstat WHERE name LIKE ? || '%'")
            .bind(index)
            .fetch_one(&mut conn)
            .await
            .unwrap_or(0);
    conn.close().await.unwrap();
    bytes
}

/// The cursor after `pages` pages of `query`, walked as the "older events" link walks them.
async fn cursor_after(store: &dyn Store, query: &EventQuery, pages: usize) -> Option<(i64, i64)> {
    let mut before = None;
    for _ in 0..pages {
        let page = store
            .events(&EventQuery {
                before,
                ..query.clone()
            })
            .await
            .unwrap();
        let last = page.last()?;
        before = Some((last.at_ms, last.seq));
    }
    before
}

/// Times every kind of read on `store`, filled with the `events` of a run of `n`, printing each: the searches,
/// filters, cursors, scopes, timelines and cases, then again after a burst of 20,000 through the store's
/// ingest.
async fn searches(store: &dyn Store, n: usize, events: i64) -> Vec<Timing> {
    let mut timings = Vec::new();
    let page = EventQuery {
        limit: PAGE,
        ..EventQuery::default()
    };
    let search = |text: &str| EventQuery {
        search: Some(text.into()),
        ..page.clone()
    };
    let day_ms = 24 * 3_600_000;
    timings.push(measure(store, "first page, no filter", RUNS, |_| page.clone()).await);
    let english_stores = StoreScope::Only(vec!["seattle-01".into(), "portland-02".into()]);
    let searches = [
        ("q=鮭 (one character, common)", search("鮭")),
        ("q=該 (one character, in no event)", search("該")),
        ("q=返品 (two characters, common)", search("返品")),
        ("q=該当 (two characters, in no event)", search("該当")),
        ("q=c1 (two characters, every cashier)", search("c1")),
        ("q=お客様都合 (phrase, common)", search("お客様都合")),
        ("q=商品不良 (phrase)", search("商品不良")),
        ("q=該当なし (phrase, in no event)", search("該当なし")),
        ("q=customer (English word, common)", search("customer")),
        ("q=damaged (English word)", search("damaged")),
        ("q=返品 お客様都合 (two words)", search("返品 お客様都合")),
        (
            "q=鮭 返品 (two short words, rare together)",
            search("鮭 返品"),
        ),
        (
            "q=返品 + store + flagged + state=made",
            EventQuery {
                store: Some("umeda-04".into()),
                flagged_only: true,
                bookmark_state: Some(BookmarkState::Made),
                ..search("返品")
            },
        ),
        (
            "q=返品 + one day",
            EventQuery {
                from_ms: Some(START_MS + 40 * day_ms),
                to_ms: Some(START_MS + 41 * day_ms),
                ..search("返品")
            },
        ),
        (
            "q=鮭 + store=seattle-01 (none of its events)",
            EventQuery {
                store: Some("seattle-01".into()),
                ..search("鮭")
            },
        ),
        (
            "English stores' scope: q=返品 (none there)",
            EventQuery {
                scope: english_stores.clone(),
                ..search("返品")
            },
        ),
        (
            "English stores' scope: q=お客様都合 (none there)",
            EventQuery {
                scope: english_stores.clone(),
                ..search("お客様都合")
            },
        ),
        (
            "English stores' scope: q=customer",
            EventQuery {
                scope: english_stores.clone(),
                ..search("customer")
            },
        ),
    ];
    for (label, query) in &searches {
        timings.push(measure(store, label, RUNS, |_| query.clone()).await);
    }
    timings.push(
        measure(
            store,
            "q=<transaction number> (phrase, one event)",
            RUNS,
            |run| search(&format!("T-{:07}", run * 7919 % n)),
        )
        .await,
    );
    timings.push(
        measure(store, "cashier + one day", RUNS, |run| EventQuery {
            cashier: Some(format!("c{}", 100 + run % 40)),
            from_ms: Some(START_MS + (run as i64 % 150) * day_ms),
            to_ms: Some(START_MS + (run as i64 % 150 + 1) * day_ms),
            ..page.clone()
        })
        .await,
    );
    for (min, max) in [(1_000, 2_000), (5_000, 6_000)] {
        timings.push(
            measure(store, &format!("amount {min} to {max}"), RUNS, |_| {
                EventQuery {
                    min_amount: Some(min),
                    max_amount: Some(max),
                    ..page.clone()
                }
            })
            .await,
        );
    }
    timings.push(
        measure(store, "state=failed", RUNS, |_| EventQuery {
            bookmark_state: Some(BookmarkState::Failed),
            ..page.clone()
        })
        .await,
    );
    for (label, query) in [
        ("page 50 via cursor, no filter", page.clone()),
        ("page 50 via cursor, q=返品", search("返品")),
        (
            "page 50 via cursor, state=failed",
            EventQuery {
                bookmark_state: Some(BookmarkState::Failed),
                ..page.clone()
            },
        ),
    ] {
        let before = cursor_after(store, &query, 49).await;
        timings.push(
            measure(store, label, RUNS, |_| EventQuery {
                before,
                ..query.clone()
            })
            .await,
        );
    }
    // What an investigator of two stores reads: the same queries, narrowed to their stores in the query.
    let two_stores = StoreScope::Only(vec!["shibuya-01".into(), "umeda-04".into()]);
    let scoped = |query: EventQuery| EventQuery {
        scope: two_stores.clone(),
        ..query
    };
    timings.push(
        measure(store, "two stores' scope: first page", RUNS, |_| {
            scoped(page.clone())
        })
        .await,
    );
    timings.push(
        measure(store, "two stores' scope: q=返品", RUNS, |_| {
            scoped(search("返品"))
        })
        .await,
    );
    // The shortage timeline: every cash event and sign-on of one register over a shift, then a whole day.
    let cash_and_signs = [
        "drawer_open",
        "no_sale",
        "void",
        "item_void",
        "refund",
        "correction",
        "paid_out",
        "sign_on",
        "sign_off",
    ];
    for (label, span_ms) in [
        ("timeline: one register, 8 h shift", 8 * 3_600_000),
        ("timeline: one register, 24 h", day_ms),
    ] {
        timings.push(
            time(label, RUNS, async |run| {
                let from_ms = START_MS + (run as i64 % 150) * day_ms + 9 * 3_600_000;
                store
                    .register_activity(&RegisterActivity {
                        scope: &two_stores,
                        store: "shibuya-01",
                        register: "r2",
                        from_ms,
                        to_ms: from_ms + span_ms,
                        types: &cash_and_signs,
                        limit: 5_001,
                        newest_first: false,
                    })
                    .await
                    .unwrap()
                    .len()
            })
            .await,
        );
    }
    timings.push(
        time("cashier chart: one store, one week", RUNS, async |run| {
            let from_ms = START_MS + (run as i64 % 20) * 7 * day_ms;
            store
                .cashier_counts(
                    &two_stores,
                    "shibuya-01",
                    from_ms,
                    from_ms + 7 * day_ms,
                    None,
                )
                .await
                .unwrap()
                .len()
        })
        .await,
    );
    // Cases: a few hundred events followed up among a million, a third of them closed. (A reused file has them
    // already; opening again is refused and changes nothing.)
    for (i, seq) in (1..=events)
        .step_by((events as usize / 300).max(1))
        .enumerate()
    {
        let open = CaseChange::Open {
            note: "till short".into(),
        };
        store
            .change_case(seq, &StoreScope::All, "bench", START_MS, &open)
            .await
            .ok();
        if i % 3 == 0 {
            let close = CaseChange::Close {
                outcome: CaseOutcome::Explained,
                reason: "miscount".into(),
            };
            store
                .change_case(seq, &StoreScope::All, "bench", START_MS, &close)
                .await
                .ok();
        }
    }
    timings.push(
        measure(store, "case=open: first page", RUNS, |_| EventQuery {
            case: Some(CaseFilter::Open),
            ..page.clone()
        })
        .await,
    );
    timings.push(
        measure(store, "two stores' scope: case=any", RUNS, |_| {
            scoped(EventQuery {
                case: Some(CaseFilter::Any),
                ..page.clone()
            })
        })
        .await,
    );
    // A burst of 20,000 new events through the store's own ingest, as the daemon commits them (synchronous =
    // FULL, 2,000 a transaction, a bookmark for each flagged one); then searches while the indexer has not taken
    // them yet, which read them from the events table (on PostgreSQL, the index has them as they commit).
    let newest = store.newest_seq().await.unwrap() as usize;
    let burst_time = ingest_burst(store, newest, newest + 20_000, n).await;
    let lagging = store.counts(&Default::default()).await.unwrap().unindexed;
    println!(
        "  ingest: 20000 events in {:.2} s ({:.0} events/s, 2,000 a transaction, search index {})",
        burst_time.as_secs_f64(),
        20_000.0 / burst_time.as_secs_f64(),
        if lagging > 0 {
            "trailing"
        } else {
            "in the same transactions"
        }
    );
    for text in ["該当", "返品", "該当なし", "お客様都合"] {
        timings.push(
            measure(
                store,
                &if lagging > 0 {
                    format!("{lagging} not indexed yet: q={text}")
                } else {
                    // PostgreSQL's index takes each event as it is written.
                    format!("20000 just stored: q={text}")
                },
                RUNS,
                |_| search(text),
            )
            .await,
        );
    }
    let (indexed, index_time) = catch_up(store).await;
    if lagging > 0 {
        println!(
            "  indexer caught up {indexed} events in {:.2} s",
            index_time.as_secs_f64()
        );
    }
    timings
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::var("TILLMARK_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    // TILLMARK_BENCH_DB keeps the filled file there and reuses it on the next run, to try queries without
    // waiting for a fill; otherwise it lives in a temporary folder.
    let dir = tempfile::tempdir().expect("tempdir");
    let path = std::env::var_os("TILLMARK_BENCH_DB")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| dir.path().join("search.db"));
    let url = format!("sqlite://{}", path.display());
    println!("search benchmark: SQLite (WAL), pages of {PAGE}");
    if path.exists() {
        println!("  reusing {}", path.display());
    } else {
        // Opening runs the migrations: the schema under test.
        SqliteStore::open(&url).await.unwrap().close().await;
        let fill_time = fill(&url, n).await;
        println!(
            "  filled with {n} events in {:.1} s ({:.0} events/s, no search index on the way in)",
            fill_time.as_secs_f64(),
            n as f64 / fill_time.as_secs_f64()
        );
    }
    let store = SqliteStore::open(&url).await.unwrap();
    let (indexed, index_time) = catch_up(&store).await;
    if indexed > 0 {
        println!(
            "  indexer: {indexed} events in {:.1} s ({:.0} events/s, {STEP} a transaction, synchronous = FULL)",
            index_time.as_secs_f64(),
            indexed as f64 / index_time.as_secs_f64()
        );
    }
    let events = store.counts(&Default::default()).await.unwrap().events;
    let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    println!(
        "  database size: {:.0} MiB for {events} events ({:.0} bytes each)",
        size as f64 / 1_048_576.0,
        size as f64 / events as f64
    );
    for (label, index) in [
        ("trigram index", "events_search"),
        ("gram index", "events_grams"),
    ] {
        let bytes = index_bytes(&url, index).await;
        println!(
            "  {label}: {:.0} MiB ({:.0} bytes an event)",
            bytes as f64 / 1_048_576.0,
            bytes as f64 / events as f64
        );
    }
    let timings = searches(&store, n, events).await;
    store.close().await;
    on_postgres(n, &timings).await;
}
