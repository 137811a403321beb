//! One claimed file's life: recorded in the queue, read into it, then moved
//! to `done/` or `failed/` (with its errors report) once its rows are durable.

use std::fs::{File, Metadata};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use tokio_util::sync::CancellationToken;

use super::dir::{file_name, move_unique, write_errors};
use super::ingest::{End, Input, Report, Start, ingest, sha256_of};
use super::settings::Settings;
use super::{FileOutcome, Intake};
use crate::config::Config;
use crate::feed::Format;
use crate::queue::{FileFinish, FileRow, FileState, NewFile, Queue, Reconciled};

/// The metrics label of the feed rule that applies to `rel`.
fn rule_of(cfg: &Config, rel: &Path) -> String {
    crate::metrics::rule_label(cfg, cfg.feeds.iter().position(|r| r.matches(rel)))
}

/// A claimed file, opened and hashed.
struct Opened {
    file: File,
    meta: Metadata,
    sha256: String,
}

/// Opens a claimed file without following a symlink, refuses anything but
/// a regular file, and hashes it. The error is the reason for `failed/`.
fn open_claimed(path: &Path) -> Result<Opened, String> {
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| format!("cannot open: {e}"))?;
    let meta = file.metadata().map_err(|e| format!("cannot read: {e}"))?;
    if !meta.is_file() {
        return Err("not a regular file".into());
    }
    let sha256 = sha256_of(&mut file).map_err(|e| format!("cannot read: {e}"))?;
    Ok(Opened { file, meta, sha256 })
}

impl Intake {
    /// Reads a claimed file into the queue and moves it on. `resume` is the
    /// file's record and where to read on from, for a file left in
    /// `processing/`.
    pub(super) async fn process(
        &self,
        cfg: &Config,
        rel: &Path,
        processing: PathBuf,
        resume: Option<(i64, Start)>,
        cancel: &CancellationToken,
    ) -> anyhow::Result<FileOutcome> {
        let name = file_name(rel);
        let opened = match open_claimed(&processing) {
            Ok(o) => o,
            Err(reason) => {
                if let Some((id, _)) = resume {
                    let finish = FileFinish {
                        state: FileState::Failed,
                        format: None,
                        error: Some(&reason),
                        given_up: false,
                    };
                    let settings = Settings::for_file(cfg, rel, None, None);
                    finish_file(&self.queue, id, finish, &settings).await?;
                }
                return Ok(self.fail_whole(cfg, rel, &processing, &name, reason).await);
            }
        };
        let mut settings = Settings::for_file(cfg, rel, None, None);
        settings.allowlist = self.allowlist.borrow().clone();
        let (file_id, start) = match resume {
            Some(r) => r,
            None => match self
                .record(cfg, rel, &processing, &opened, &settings)
                .await?
            {
                Ok(id) => (
                    id,
                    Start {
                        mark: true,
                        ..Start::default()
                    },
                ),
                Err(skipped) => return Ok(skipped),
            },
        };
        let input = Input {
            id: file_id,
            file: opened.file,
            name: &processing,
        };
        let report = match ingest(&self.queue, input, &settings, start, cancel).await {
            Ok(r) => r,
            Err(e) => {
                // The daemon stops on a database error: that is not a
                // death reading this file (if the database lets us say so).
                let _ = self.queue.file_stopped(file_id).await;
                return Err(e);
            }
        };
        self.finish(cfg, rel, &processing, report).await
    }

    /// Records a new file; one with the content of a file already taken
    /// (when `watch.skip_duplicate_files`) is recorded as skipped and moved
    /// to `done/` at once: that is the `Err`.
    async fn record(
        &self,
        cfg: &Config,
        rel: &Path,
        processing: &Path,
        opened: &Opened,
        settings: &Settings,
    ) -> anyhow::Result<Result<i64, FileOutcome>> {
        let sha = &opened.sha256;
        // A named feed's file is read even when its content was taken
        // before: it says what the feed holds now.
        let previous = if cfg.watch.skip_duplicate_files && settings.feed.is_none() {
            self.queue.file_done_with_sha(sha).await?
        } else {
            None
        };
        let processing_path = processing.to_string_lossy();
        let id = self
            .queue
            .file_begin(&NewFile {
                path: &rel.to_string_lossy(),
                // A skipped file is never resumed.
                processing_path: previous.is_none().then_some(&*processing_path),
                sha256: sha,
                size_bytes: opened.meta.len(),
                owner: &settings.owner,
                feed: settings.feed.as_deref(),
            })
            .await?;
        let Some(prev) = previous else {
            return Ok(Ok(id));
        };
        let why = format!(
            "same content (sha256 {sha}) as file #{} {}, already queued",
            prev.id, prev.path
        );
        self.queue
            .file_finish(id, FileState::Skipped, None, Some(&why), false)
            .await?;
        tracing::info!(file = %rel.display(), previous = %prev.path, "same content as an earlier file: skipped");
        let moved = move_unique(processing, &cfg.watch.done_dir, &file_name(rel), true).ok();
        if let Some(m) = &moved {
            self.queue.file_moved(id, m).await?;
        }
        self.metrics.file_outcome(FileState::Skipped);
        self.metrics
            .feed_file(&rule_of(cfg, rel), FileState::Skipped, 0, 0, 0, 0);
        Ok(Err(FileOutcome {
            rel: rel.to_path_buf(),
            state: FileState::Skipped,
            queued: 0,
            duplicates: 0,
            rejected: 0,
            moved_to: moved,
            error: Some(why),
        }))
    }

    /// After reading: records the file's end (the acknowledgement point),
    /// and only then moves it out of `processing/`, with its errors report.
    /// A file stopped by shutdown stays where it is and resumes.
    async fn finish(
        &self,
        cfg: &Config,
        rel: &Path,
        processing: &Path,
        report: Report,
    ) -> anyhow::Result<FileOutcome> {
        let file_id = report.file_id;
        let format = report.format;
        // Its rows are committed (or it resumes with the count cleared):
        // the mark of where its reader was has served.
        super::mark::remove(processing);
        let Some((state, error)) = report.end.file_state() else {
            // Stopped on purpose: the next start's resume is not counted
            // against the file.
            self.queue.file_stopped(file_id).await?;
            tracing::info!(file = %rel.display(), rows = report.rows_read, "stopped mid-file: it resumes on the next start");
            return Ok(FileOutcome {
                rel: rel.to_path_buf(),
                state: FileState::Processing,
                queued: report.queued,
                duplicates: report.duplicates,
                rejected: report.rejected,
                moved_to: None,
                error: None,
            });
        };
        let dest = if state == FileState::Done {
            &cfg.watch.done_dir
        } else {
            &cfg.watch.failed_dir
        };
        // The rows are committed: only now does the file leave processing/.
        let finish = FileFinish {
            state,
            format,
            error: error.as_deref(),
            given_up: matches!(report.end, End::GivenUp { .. }),
        };
        let settings = Settings::for_file(cfg, rel, None, None);
        finish_file(&self.queue, file_id, finish, &settings).await?;
        let moved = match move_unique(processing, dest, &file_name(rel), state == FileState::Done) {
            Ok(m) => m,
            // The file's failure, not the daemon's: gone from processing/,
            // no permission, disk full.
            Err(e) => {
                return self
                    .move_failed(rel, processing, dest, file_id, error, &e)
                    .await;
            }
        };
        self.queue.file_moved(file_id, &moved).await?;
        let totals = self.queue.file(file_id).await?;
        let brk = match &report.end {
            End::Failed { line, reason } => Some((*line, reason.as_str())),
            End::GivenUp { reason } => Some((None, reason.as_str())),
            End::Complete | End::Stopped => None,
        };
        if totals.rows_rejected > 0 || brk.is_some() {
            write_errors(&self.queue, Some(file_id), &moved, brk).await;
        }
        self.tell_finished(cfg, rel, state, format, &totals, error.as_deref());
        Ok(FileOutcome {
            rel: rel.to_path_buf(),
            state,
            queued: totals.rows_queued,
            duplicates: totals.rows_duplicate,
            rejected: totals.rows_rejected,
            moved_to: Some(moved),
            error,
        })
    }

    /// Counts a finished file in the metrics and logs it: a failed file as
    /// a warning (with why), a finished one as news.
    fn tell_finished(
        &self,
        cfg: &Config,
        rel: &Path,
        state: FileState,
        format: Option<Format>,
        totals: &FileRow,
        error: Option<&str>,
    ) {
        self.metrics.file_outcome(state);
        self.metrics.feed_file(
            &rule_of(cfg, rel),
            state,
            totals.rows_queued,
            totals.rows_duplicate,
            totals.rows_rejected,
            totals.rows_filtered,
        );
        match error {
            None => tracing::info!(
                file = %rel.display(),
                state = %state,
                format = format.map(|f| f.name()).unwrap_or("unknown"),
                rows = totals.rows_read,
                queued = totals.rows_queued,
                duplicates = totals.rows_duplicate,
                rejected = totals.rows_rejected,
                skipped = totals.rows_skipped,
                filtered = totals.rows_filtered,
                "feed file finished"
            ),
            Some(e) => tracing::warn!(
                file = %rel.display(),
                state = %state,
                format = format.map(|f| f.name()).unwrap_or("unknown"),
                rows = totals.rows_read,
                queued = totals.rows_queued,
                duplicates = totals.rows_duplicate,
                rejected = totals.rows_rejected,
                error = %e,
                "feed file failed: moved to failed/"
            ),
        }
    }

    /// A file whose rows are recorded but which cannot be moved out of
    /// `processing/`: recorded as failed with why, logged, and left where it
    /// is (if it is still there, the next start reads it again, and the
    /// queue's deduplication drops the rows already queued).
    async fn move_failed(
        &self,
        rel: &Path,
        processing: &Path,
        dest: &Path,
        file_id: i64,
        error: Option<String>,
        e: &std::io::Error,
    ) -> anyhow::Result<FileOutcome> {
        let why = format!(
            "{}cannot move {} to {}: {e}",
            error.map(|e| format!("{e}; then ")).unwrap_or_default(),
            processing.display(),
            dest.display()
        );
        let why = crate::feed::cut(&why);
        self.queue
            .file_finish(file_id, FileState::Failed, None, Some(&why), false)
            .await?;
        let totals = self.queue.file(file_id).await?;
        self.metrics.file_outcome(FileState::Failed);
        tracing::error!(file = %rel.display(), error = %why, "feed file read, but not moved: marked failed");
        Ok(FileOutcome {
            rel: rel.to_path_buf(),
            state: FileState::Failed,
            queued: totals.rows_queued,
            duplicates: totals.rows_duplicate,
            rejected: totals.rows_rejected,
            moved_to: None,
            error: Some(why),
        })
    }

    /// A file the daemon died reading `stalls` times in a row without
    /// getting any further: to `failed/` with the rows committed before,
    /// not read again until `retry --file` puts it back.
    pub(super) async fn give_up(
        &self,
        cfg: &Config,
        rel: &Path,
        processing: &Path,
        f: &crate::queue::FileRow,
        stalls: u32,
        died_at: Option<super::mark::Mark>,
    ) -> anyhow::Result<FileOutcome> {
        let at = match died_at {
            Some(m) => format!("line {} (position {})", m.line, m.position),
            None => format!("the row after position {}", f.last_position),
        };
        let reason = format!(
            "given up: the daemon died {stalls} times in a row reading {at} (every row before \
             it was queued); once the cause is known (the log), `tc-ingest retry --file {}` \
             reads on from there",
            rel.display()
        );
        tracing::error!(file = %rel.display(), position = f.last_position, stalled_reads = stalls, "{reason}");
        let report = Report {
            file_id: f.id,
            format: None,
            rows_read: f.rows_read,
            queued: f.rows_queued,
            duplicates: f.rows_duplicate,
            rejected: f.rows_rejected,
            skipped: f.rows_skipped,
            filtered: f.rows_filtered,
            retired: 0,
            end: End::GivenUp { reason },
        };
        self.finish(cfg, rel, processing, report).await
    }

    /// Moves a file that cannot be read at all to `failed/` with the reason.
    pub(super) async fn fail_whole(
        &self,
        cfg: &Config,
        rel: &Path,
        processing: &Path,
        name: &str,
        reason: String,
    ) -> FileOutcome {
        tracing::warn!(file = %rel.display(), reason = %reason, "file not read: moved to failed/");
        let moved = move_unique(processing, &cfg.watch.failed_dir, name, false).ok();
        if let Some(m) = &moved {
            write_errors(&self.queue, None, m, Some((None, &reason))).await;
        }
        self.metrics.file_outcome(FileState::Failed);
        self.metrics
            .feed_file(&rule_of(cfg, rel), FileState::Failed, 0, 0, 0, 0);
        FileOutcome {
            rel: rel.to_path_buf(),
            state: FileState::Failed,
            queued: 0,
            duplicates: 0,
            rejected: 0,
            moved_to: moved,
            error: Some(reason),
        }
    }
}

impl Intake {
    /// Puts a given-up file that `retry --file` asked for back into
    /// `processing/`, its errors report gone and its record unfinished
    /// again: the path it is read on from. `None` when the file is no
    /// longer in `failed/` (the request is withdrawn, with a warning).
    ///
    /// Only the daemon moves files into `processing/`, one at a time, so
    /// nothing races the move. A crash between the move and the record
    /// leaves the file in `processing/` without an unfinished record: the
    /// next start reads it as a new file (its rows deduplicated), as it
    /// does a file claimed just before a crash.
    pub(super) async fn put_back(
        &self,
        cfg: &Config,
        f: &crate::queue::FileRow,
    ) -> anyhow::Result<Option<PathBuf>> {
        let Some(moved) = f.moved_to.as_deref().map(PathBuf::from) else {
            self.queue.file_ask_put_back(f.id, false).await?;
            return Ok(None);
        };
        let name = file_name(Path::new(&f.path));
        let processing = match move_unique(&moved, &cfg.watch.processing_dir, &name, false) {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(file = %f.path, from = %moved.display(), error = %e, "cannot put the file back into processing/: request withdrawn");
                self.queue.file_ask_put_back(f.id, false).await?;
                return Ok(None);
            }
        };
        self.queue
            .file_put_back(f.id, &processing.to_string_lossy())
            .await?;
        let mut report = moved.into_os_string();
        report.push(".errors.ndjson");
        let _ = std::fs::remove_file(report);
        Ok(Some(processing))
    }
}

/// Records a file's end (the acknowledgement point) and, for a named
/// feed's file in the same transaction, what it does to the feed: a
/// snapshot's drops retired, or held (logged at WARN).
///
/// # Errors
/// Database errors.
pub async fn finish_file(
    queue: &Queue,
    file_id: i64,
    finish: FileFinish<'_>,
    settings: &Settings,
) -> anyhow::Result<Option<Reconciled>> {
    let Some(end) = settings.feed_end() else {
        queue
            .file_finish(
                file_id,
                finish.state,
                finish.format,
                finish.error,
                finish.given_up,
            )
            .await?;
        return Ok(None);
    };
    let r = queue.file_finish_feed(file_id, finish, &end).await?;
    match &r {
        Reconciled::NotSnapshot => {}
        Reconciled::First { members } => {
            tracing::info!(
                feed = end.feed,
                members,
                "first snapshot of the feed: nothing retired"
            );
        }
        Reconciled::Retired { done, members } => tracing::info!(
            feed = end.feed,
            retire_jobs = done.queued,
            kept = done.kept,
            superseded = done.superseded,
            members,
            "snapshot reconciled: what it dropped is retired"
        ),
        Reconciled::Held {
            would_retire,
            reason,
        } => tracing::warn!(
            feed = end.feed,
            would_retire,
            reason = %reason,
            "snapshot held: nothing retired; `tc-ingest retire --feed {} --dry-run` lists what it would retire, `--confirm` retires it",
            end.feed
        ),
    }
    Ok(Some(r))
}
