//! The queue file read and written as an operator's `sqlite3` would.

use std::path::Path;

use tokio::process::Command;

/// Runs SQL on a queue's file through a connection of its own, as an
/// operator's sqlite3 would (rows inserted by hand); returns rows changed.
pub async fn sql(queue: &tc_ingest::queue::Queue, sql: &str) -> u64 {
    use sqlx::{ConnectOptions, Executor};
    let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(queue.path())
        .connect()
        .await
        .expect("open the queue file");
    conn.execute(sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string())))
        .await
        .expect("SQL runs")
        .rows_affected()
}

/// The number a `SELECT` of the queue file gives (its first column).
pub async fn number(queue: &tc_ingest::queue::Queue, sql: &str) -> i64 {
    use sqlx::ConnectOptions;
    let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(queue.path())
        .connect()
        .await
        .expect("open the queue file");
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_string()))
        .fetch_one(&mut conn)
        .await
        .expect("SQL runs")
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
