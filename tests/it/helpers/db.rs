//! The queue file read and written as an operator's `sqlite3` would.

use std::path::Path;

use sqlx::Connection;
use tc_ingest::queue::Queue;
use tokio::process::Command;

/// A connection of the test's own to the queue at `location` (a SQLite
/// file, or a PostgreSQL URL).
async fn connect(location: &str) -> sqlx::AnyConnection {
    try_connect(location).await.expect("open the queue")
}

async fn try_connect(location: &str) -> Result<sqlx::AnyConnection, sqlx::Error> {
    sqlx::any::install_default_drivers();
    let url = if location.starts_with("postgres://") {
        location.to_string()
    } else {
        format!("sqlite://{location}")
    };
    sqlx::AnyConnection::connect(&url).await
}

/// Runs SQL on a queue through a connection of its own, as an operator's
/// sqlite3 or psql would (rows inserted by hand); returns rows changed.
pub async fn sql(queue: &Queue, sql: &str) -> u64 {
    use sqlx::Executor;
    connect(queue.location())
        .await
        .execute(sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string())))
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .rows_affected()
}

/// The number a `SELECT` of the queue gives (its first column; 0 for NULL).
pub async fn number(queue: &Queue, sql: &str) -> i64 {
    number_at(queue.location(), sql).await
}

/// The number a `SELECT` of the queue at `location` (a SQLite file or a
/// PostgreSQL URL) gives (its first column; 0 for NULL), through a
/// connection of the test's own.
pub async fn number_at(location: impl AsRef<Path>, sql: &str) -> i64 {
    try_number_at(location, sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// [`number_at`], or the error (a queue not created yet).
pub async fn try_number_at(location: impl AsRef<Path>, sql: &str) -> Result<i64, sqlx::Error> {
    let location = location.as_ref().to_string_lossy();
    let mut conn = try_connect(&location).await?;
    // PostgreSQL's SUM is NUMERIC, which the Any driver does not read.
    let sql = if location.starts_with("postgres") {
        format!("SELECT CAST(({sql}) AS BIGINT)")
    } else {
        sql.to_string()
    };
    let n: Option<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .fetch_one(&mut conn)
        .await?;
    Ok(n.unwrap_or(0))
}

/// The first column of every row a `SELECT` of the queue at `location`
/// gives.
pub async fn numbers_at(location: impl AsRef<Path>, sql: &str) -> Vec<i64> {
    let location = location.as_ref().to_string_lossy();
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_string()))
        .fetch_all(&mut connect(&location).await)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// The text a `SELECT` of the queue gives (its first column; empty for NULL).
pub async fn text(queue: &Queue, sql: &str) -> String {
    let t: Option<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_string()))
        .fetch_one(&mut connect(queue.location()).await)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    t.unwrap_or_default()
}

/// One number from the queue file as an operator's `sqlite3` gets it: the
/// system's SQLite library (through python3), in another process, opened and
/// closed for this one query. `None` when python3 is not installed.
pub async fn sqlite3_number(queue_file: &Path, sql: &str) -> Option<i64> {
    let out = Command::new("python3")
        .args([
            "-c",
            "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); \
             print(c.execute(sys.argv[2]).fetchone()[0] or 0); c.close()",
        ])
        .arg(queue_file)
        .arg(sql)
        .output()
        .await
        .ok()?;
    assert!(out.status.success(), "{out:?}");
    Some(
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .expect("a number"),
    )
}
