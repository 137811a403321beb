//! The queue's SQL, one text for both backends.
//!
//! Statements are written once, in the SQL that SQLite and PostgreSQL
//! share, and run through sqlx's `Any` driver. Placeholders are written as
//! SQLite's `?` and `?N`; [`query`] turns them into `$N`, which both read.
//! What the two dialects do differently (how a write transaction begins,
//! `FOR UPDATE SKIP LOCKED`, SQLite's pragmas) is asked of [`Dialect`].

use std::borrow::Cow;

use sqlx::any::AnyArguments;
use sqlx::{Any, AssertSqlSafe, SqlSafeStr};

pub(crate) type Conn = sqlx::AnyConnection;
/// A write transaction, holding the daemon's write turn.
pub(crate) type Tx = Turn<sqlx::Transaction<'static, Any>>;
/// A connection for a write outside a transaction, holding the turn.
pub(crate) type Writer = Turn<sqlx::pool::PoolConnection<Any>>;
pub(crate) type DbRow = sqlx::any::AnyRow;

/// A connection used for writing while this handle's write turn is held
/// (see `Queue::begin_write`): the daemon's writers take turns in order
/// rather than in SQLite's busy handler, which favours whoever asks again
/// first, so a big file's back-to-back chunks could keep a result or a
/// heartbeat out past the busy timeout. The turn ends when this is dropped.
pub(crate) struct Turn<C> {
    conn: C,
    _turn: tokio::sync::OwnedMutexGuard<()>,
}

impl<C> Turn<C> {
    pub(super) fn new(conn: C, turn: tokio::sync::OwnedMutexGuard<()>) -> Self {
        Self { conn, _turn: turn }
    }
}

impl Tx {
    pub(crate) async fn commit(self) -> Result<(), sqlx::Error> {
        self.conn.commit().await
    }
}

impl<C: std::ops::Deref<Target = Conn>> std::ops::Deref for Turn<C> {
    type Target = Conn;
    fn deref(&self) -> &Conn {
        &self.conn
    }
}

impl<C: std::ops::DerefMut<Target = Conn>> std::ops::DerefMut for Turn<C> {
    fn deref_mut(&mut self) -> &mut Conn {
        &mut self.conn
    }
}

/// Which database holds the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    /// How a write transaction begins: SQLite takes its write lock at
    /// BEGIN (a deferred transaction that reads first fails with
    /// SQLITE_BUSY_SNAPSHOT when another connection wrote in between);
    /// PostgreSQL locks rows as it writes them.
    pub(crate) fn begin_write(self) -> &'static str {
        match self {
            Dialect::Sqlite => "BEGIN IMMEDIATE",
            Dialect::Postgres => "BEGIN",
        }
    }

    /// Appended to a `SELECT` that picks rows to claim: PostgreSQL lets
    /// several daemons claim at once, each skipping the rows another is
    /// claiming; SQLite has one writer at a time, so nothing to skip.
    pub(crate) fn skip_locked(self) -> &'static str {
        match self {
            Dialect::Sqlite => "",
            Dialect::Postgres => " FOR UPDATE SKIP LOCKED",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Dialect::Sqlite => "sqlite",
            Dialect::Postgres => "postgres",
        }
    }
}

/// `sql` with SQLite's placeholders (`?`, `?N`) written as `$N`, outside
/// quoted text. A bare `?` takes the number after the largest one before
/// it, as in SQLite.
pub(crate) fn dollars(sql: &str) -> Cow<'_, str> {
    if !sql.contains('?') {
        return Cow::Borrowed(sql);
    }
    let mut out = String::with_capacity(sql.len() + 16);
    let mut highest = 0u32;
    let mut quoted = false;
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                quoted = !quoted;
                out.push(c);
            }
            '?' if !quoted => {
                let mut digits = String::new();
                while let Some(d) = chars.peek().copied().filter(char::is_ascii_digit) {
                    digits.push(d);
                    chars.next();
                }
                let n = if digits.is_empty() {
                    highest + 1
                } else {
                    digits.parse().unwrap_or(highest + 1)
                };
                highest = highest.max(n);
                out.push('$');
                out.push_str(&n.to_string());
            }
            _ => out.push(c),
        }
    }
    Cow::Owned(out)
}

fn statement(sql: impl SqlSafeStr) -> AssertSqlSafe<String> {
    let sql = sql.into_sql_str();
    AssertSqlSafe(dollars(sql.as_str()).into_owned())
}

/// A statement of the queue's SQL (see the module's note on placeholders).
pub(crate) fn query<'q>(sql: impl SqlSafeStr) -> sqlx::query::Query<'q, Any, AnyArguments> {
    sqlx::query(statement(sql))
}

/// A statement whose first column is the answer.
pub(crate) fn query_scalar<'q, O>(
    sql: impl SqlSafeStr,
) -> sqlx::query::QueryScalar<'q, Any, O, AnyArguments>
where
    (O,): for<'r> sqlx::FromRow<'r, DbRow>,
{
    sqlx::query_scalar(statement(sql))
}

#[cfg(test)]
mod tests {
    use super::dollars;

    #[test]
    fn placeholders_become_numbered_dollars_outside_quotes() {
        assert_eq!(dollars("SELECT 1"), "SELECT 1");
        assert_eq!(
            dollars("UPDATE t SET a = ?, b = ? WHERE c = ?"),
            "UPDATE t SET a = $1, b = $2 WHERE c = $3"
        );
        assert_eq!(
            dollars("SELECT ?2, ?1, ?12 FROM t WHERE x = ?"),
            "SELECT $2, $1, $12 FROM t WHERE x = $13"
        );
        assert_eq!(
            dollars("SELECT '?', ? WHERE y = 'it''s ?'"),
            "SELECT '?', $1 WHERE y = 'it''s ?'"
        );
    }
}
