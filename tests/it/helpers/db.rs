//! The queue file read and written as an operator's `sqlite3` would.

use std::path::Path;

use sqlx::ConnectOptions;
use tc_ingest::queue::Queue;
use tokio::process::Command;

/// A connection of the test's own to the queue file at `file`.
async fn connect(file: &Path) -> sqlx::SqliteConnection {
    sqlx::sqlite::SqliteConnectOptions::new()
        .filename(file)
        .connect()
        .await
        .expect("open the queue file")
}

/// Runs SQL on a queue's file through a connection of its own, as an
/// operator's sqlite3 would (rows inserted by hand); returns rows changed.
pub async fn sql(queue: &Queue, sql: &str) -> u64 {
    use sqlx::Executor;
    connect(queue.path())
        .await
        .execute(sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string())))
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .rows_affected()
}

/// The number a `SELECT` of the queue gives (its first column; 0 for NULL).
pub async fn number(queue: &Queue, sql: &str) -> i64 {
    number_at(queue.path(), sql).await
}

/// The number a `SELECT` of the queue file at `file` gives (its first
/// column; 0 for NULL), through a connection of the test's own.
pub async fn number_at(file: &Path, sql: &str) -> i64 {
    let n: Option<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_string()))
        .fetch_one(&mut connect(file).await)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    n.unwrap_or(0)
}

/// The text a `SELECT` of the queue gives (its first column; empty for NULL).
pub async fn text(queue: &Queue, sql: &str) -> String {
    let t: Option<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_string()))
        .fetch_one(&mut connect(queue.path()).await)
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
