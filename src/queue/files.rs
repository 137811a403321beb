//! Feed files and their rejects.

use super::sql::{Conn, DbRow, Dialect, query};
use anyhow::Context;
use sqlx::Row;

use super::{FileFinish, FileRow, FileState, NewFile, NewReject, Queue, now_ms};
use crate::feed::Format;

impl Queue {
    /// Records a file taken in.
    ///
    /// # Errors
    /// Database errors.
    pub async fn file_begin(&self, f: &NewFile<'_>) -> anyhow::Result<i64> {
        let id = query(
            "INSERT INTO files (path, processing_path, sha256, size_bytes, owner, feed, started_at, taken_by) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        )
        .bind(f.path)
        .bind(f.processing_path)
        .bind(f.sha256)
        .bind(f.size_bytes as i64)
        .bind(f.owner)
        .bind(f.feed)
        .bind(now_ms())
        .bind(&*self.member)
        .fetch_one(&mut *self.writer().await?)
        .await
        .context("recording a feed file")?
        .get::<i64, _>(0);
        Ok(id)
    }

    /// The unfinished record of the file at `processing_path`, to resume it.
    ///
    /// # Errors
    /// Database errors.
    pub async fn file_in_progress(&self, processing_path: &str) -> anyhow::Result<Option<FileRow>> {
        let row = query(
            "SELECT * FROM files WHERE processing_path = ? AND state = 'processing' \
             AND (taken_by = ? OR taken_by IS NULL) ORDER BY id DESC LIMIT 1",
        )
        .bind(processing_path)
        .bind(&*self.member)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| file_row(&r)).transpose()
    }

    /// A read of the file begins (from its `last_position`): a daemon that
    /// finds this still set at startup died reading it.
    ///
    /// # Errors
    /// Database errors.
    pub async fn file_reading(&self, id: i64) -> anyhow::Result<()> {
        query("UPDATE files SET reading = 1, read_from = last_position WHERE id = ?")
            .bind(id)
            .execute(&mut *self.writer().await?)
            .await
            .context("recording a file being read")?;
        Ok(())
    }

    /// Records the format a file is read as, before its first row.
    ///
    /// # Errors
    /// Database errors.
    pub async fn file_format(&self, id: i64, format: &str) -> anyhow::Result<()> {
        query("UPDATE files SET format = ? WHERE id = ?")
            .bind(format)
            .bind(id)
            .execute(&mut *self.writer().await?)
            .await
            .context("recording a file's format")?;
        Ok(())
    }

    /// The daemon died reading the file: counts the read as stalled if it
    /// committed no row (any progress sets the count back to 0), and
    /// returns the stalled reads in a row (see migration 0007).
    ///
    /// # Errors
    /// Database errors.
    pub async fn file_interrupted(&self, id: i64) -> anyhow::Result<u32> {
        let n = query(
            "UPDATE files SET stalls = CASE WHEN last_position > read_from THEN 0 ELSE stalls + 1 END, \
             reading = 0 WHERE id = ? RETURNING stalls",
        )
        .bind(id)
        .fetch_one(&mut *self.writer().await?)
        .await
        .context("counting an interrupted read")?
        .get::<i64, _>(0);
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    }

    /// A file's reading was stopped on purpose (shutdown): the next start
    /// resumes it without counting the read as interrupted.
    ///
    /// # Errors
    /// Database errors.
    pub async fn file_stopped(&self, id: i64) -> anyhow::Result<()> {
        query(
            "UPDATE files SET stalls = CASE WHEN last_position > read_from THEN 0 ELSE stalls END, \
             reading = 0 WHERE id = ?",
        )
        .bind(id)
        .execute(&mut *self.writer().await?)
        .await
        .context("recording a stopped file")?;
        Ok(())
    }

    /// Given-up files `retry --file` asked to put back, oldest first.
    ///
    /// # Errors
    /// Database errors.
    pub async fn files_put_back(&self) -> anyhow::Result<Vec<FileRow>> {
        query("SELECT * FROM files WHERE put_back = 1 AND (taken_by = ? OR taken_by IS NULL) ORDER BY id")
            .bind(&*self.member)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(file_row)
            .collect()
    }

    /// Asks the daemon to put a given-up file back (or, with `false`,
    /// withdraws the request: the file is gone).
    ///
    /// # Errors
    /// Database errors.
    pub async fn file_ask_put_back(&self, id: i64, ask: bool) -> anyhow::Result<()> {
        query("UPDATE files SET put_back = ? WHERE id = ?")
            .bind(i64::from(ask))
            .bind(id)
            .execute(&mut *self.writer().await?)
            .await
            .context("asking for a file to be put back")?;
        Ok(())
    }

    /// The newest record of a file given up after stalled reads, by its
    /// path as recorded or its file name, if that record was given up.
    ///
    /// # Errors
    /// Database errors.
    pub async fn file_given_up(&self, name: &str) -> anyhow::Result<Option<FileRow>> {
        let Some((id, _)) = self.files_named(name).await?.into_iter().next() else {
            return Ok(None);
        };
        let f = self.file(id).await?;
        Ok((f.given_up() && f.moved_to.is_some()).then_some(f))
    }

    /// A given-up file the daemon moved back to `processing_path`: unfinished again,
    /// its count of stalled reads cleared, to be read on from its
    /// `last_position`.
    ///
    /// # Errors
    /// Database errors.
    pub async fn file_put_back(&self, id: i64, processing_path: &str) -> anyhow::Result<()> {
        query(
            "UPDATE files SET state = 'processing', processing_path = ?, error = NULL, \
             finished_at = NULL, moved_to = NULL, stalls = 0, reading = 0, put_back = 0 WHERE id = ?",
        )
        .bind(processing_path)
        .bind(id)
        .execute(&mut *self.writer().await?)
        .await
        .context("putting a file back")?;
        Ok(())
    }

    /// A finished file with this content, if one was taken before.
    ///
    /// # Errors
    /// Database errors.
    pub async fn file_done_with_sha(&self, sha256: &str) -> anyhow::Result<Option<FileRow>> {
        let row = query(
            "SELECT * FROM files WHERE sha256 = ? AND state = 'done' ORDER BY id DESC LIMIT 1",
        )
        .bind(sha256)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| file_row(&r)).transpose()
    }

    /// # Errors
    /// Database errors.
    pub async fn file(&self, id: i64) -> anyhow::Result<FileRow> {
        let row = query("SELECT * FROM files WHERE id = ?")
            .bind(id)
            .fetch_one(&self.pool)
            .await?;
        file_row(&row)
    }

    /// Marks a file finished: `done`, `failed` or `skipped`. Its count of
    /// stalled reads is cleared, unless the file is `given_up` because of
    /// it (a failed file with stalls is one given up).
    ///
    /// # Errors
    /// Database errors.
    pub async fn file_finish(
        &self,
        id: i64,
        state: FileState,
        format: Option<Format>,
        error: Option<&str>,
        given_up: bool,
    ) -> anyhow::Result<()> {
        // The acknowledgement point: commit with synchronous=FULL so this
        // commit, and every chunk before it, is on disk before the caller
        // moves the file out of processing/.
        let finish = FileFinish {
            state,
            format,
            error,
            given_up,
        };
        self.fully_synced(async |conn| record_finish(conn, id, &finish).await)
            .await
    }

    /// Records where a finished file was moved (`done/` or `failed/`):
    /// retention deletes it once the file's `finished_at` is old enough.
    ///
    /// # Errors
    /// Database errors.
    pub async fn file_moved(&self, id: i64, moved_to: &std::path::Path) -> anyhow::Result<()> {
        query("UPDATE files SET moved_to = ? WHERE id = ?")
            .bind(moved_to.to_string_lossy().into_owned())
            .bind(id)
            .execute(&mut *self.writer().await?)
            .await
            .context("recording where a file was moved")?;
        Ok(())
    }

    /// Where finished files were moved, with when they finished (Unix ms):
    /// what retention goes by.
    ///
    /// # Errors
    /// Database errors.
    pub async fn finished_moves(&self) -> anyhow::Result<Vec<(String, i64)>> {
        Ok(query(
            "SELECT moved_to, COALESCE(finished_at, started_at) FROM files \
             WHERE moved_to IS NOT NULL AND (taken_by = ? OR taken_by IS NULL)",
        )
        .bind(&*self.member)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect())
    }

    /// Forgets the moves of files finished before `before_ms` (retention
    /// has deleted them).
    ///
    /// # Errors
    /// Database errors.
    pub async fn forget_moves_before(&self, before_ms: i64) -> anyhow::Result<u64> {
        Ok(query(
            "UPDATE files SET moved_to = NULL WHERE moved_to IS NOT NULL AND finished_at < ? \
             AND (taken_by = ? OR taken_by IS NULL)",
        )
        .bind(before_ms)
        .bind(&*self.member)
        .execute(&mut *self.writer().await?)
        .await?
        .rows_affected())
    }

    /// The first `limit` rejects of a file, in file order.
    ///
    /// # Errors
    /// Database errors.
    pub async fn rejects(&self, file_id: i64, limit: u64) -> anyhow::Result<Vec<NewReject>> {
        let mut out = Vec::new();
        self.for_each_reject(file_id, limit, |r| {
            out.push(r);
            Ok(())
        })
        .await?;
        Ok(out)
    }

    /// Streams the rejects of a file, in file order, to `f` (a file's
    /// rejects can be millions: they are never all in memory).
    ///
    /// # Errors
    /// Database errors, or the first error `f` returns.
    pub async fn for_each_reject(
        &self,
        file_id: i64,
        limit: u64,
        mut f: impl FnMut(NewReject) -> std::io::Result<()>,
    ) -> anyhow::Result<()> {
        use futures::TryStreamExt;
        let mut rows = query(
            "SELECT line, input, rule, reason FROM rejects WHERE file_id = ? ORDER BY id LIMIT ?",
        )
        .bind(file_id)
        .bind(limit.min(i64::MAX as u64) as i64)
        .fetch(&self.pool);
        while let Some(r) = rows.try_next().await? {
            f(NewReject {
                line: r.get::<i64, _>(0) as u64,
                input: r.get(1),
                rule: r.get::<String, _>(2).parse()?,
                reason: r.get(3),
            })?;
        }
        Ok(())
    }
}

fn file_row(r: &DbRow) -> anyhow::Result<FileRow> {
    Ok(FileRow {
        id: r.get("id"),
        path: r.get("path"),
        processing_path: r.get("processing_path"),
        sha256: r.get("sha256"),
        state: r.get::<String, _>("state").parse()?,
        owner: r.get("owner"),
        rows_read: r.get::<i64, _>("rows_read") as u64,
        rows_queued: r.get::<i64, _>("rows_queued") as u64,
        rows_rejected: r.get::<i64, _>("rows_rejected") as u64,
        rows_duplicate: r.get::<i64, _>("rows_duplicate") as u64,
        rows_skipped: r.get::<i64, _>("rows_skipped") as u64,
        rows_filtered: r.get::<i64, _>("rows_filtered") as u64,
        format: r.get("format"),
        last_position: r.get::<i64, _>("last_position") as u64,
        error: r.get("error"),
        moved_to: r.get("moved_to"),
        stalls: u32::try_from(r.get::<i64, _>("stalls")).unwrap_or(u32::MAX),
        reading: r.get::<i64, _>("reading") != 0,
    })
}

impl Queue {
    /// Runs `f` on a connection whose commits are `synchronous=FULL` (the
    /// acknowledgement points), set back to NORMAL after. PostgreSQL's
    /// commits are durable as they are.
    pub(super) async fn fully_synced<T>(
        &self,
        f: impl AsyncFnOnce(&mut Conn) -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        let mut conn = self.writer().await?;
        if self.dialect != Dialect::Sqlite {
            return f(&mut conn).await;
        }
        query("PRAGMA synchronous = FULL")
            .execute(&mut *conn)
            .await?;
        let result = f(&mut conn).await;
        query("PRAGMA synchronous = NORMAL")
            .execute(&mut *conn)
            .await?;
        result
    }
}

/// A file's end as recorded: state, format, error, finished time.
pub(super) async fn record_finish(
    conn: &mut Conn,
    id: i64,
    f: &FileFinish<'_>,
) -> anyhow::Result<()> {
    query(
        "UPDATE files SET state = ?, format = COALESCE(?, format), error = ?, finished_at = ?, \
         processing_path = NULL, reading = 0, stalls = CASE WHEN ? THEN stalls ELSE 0 END WHERE id = ?",
    )
    .bind(f.state.as_str())
    .bind(f.format.map(Format::name))
    .bind(f.error)
    .bind(now_ms())
    .bind(f.given_up)
    .bind(id)
    .execute(&mut *conn)
    .await
    .context("recording a finished file")?;
    Ok(())
}
