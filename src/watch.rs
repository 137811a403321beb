//! The watched directory: finding complete files, claiming them into
//! `processing/`, reading them into the queue, and moving them to `done/`
//! or `failed/` with an errors report.
//!
//! notify (inotify) gives low latency; a periodic rescan catches what events
//! miss (overflow, network filesystems, files present at startup). A file is
//! taken when it was renamed in or closed after writing, or when its size and
//! mtime have been stable for `watch.settle_ms`.

use std::collections::HashSet;
use std::fs::{File, Metadata};
use std::io::Write;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;
use notify::{EventKind, RecursiveMode, Watcher as _};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::config::{Config, WatchConfig};
use crate::intake::{self, End, Settings};
use crate::metrics::Metrics;
use crate::queue::{NewFile, Queue};

/// Names never taken: hidden files and files still being written.
pub fn is_ignored(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    name.starts_with('.')
        || [
            ".tmp",
            ".part",
            ".partial",
            ".swp",
            ".crdownload",
            ".errors.ndjson",
        ]
        .iter()
        .any(|s| lower.ends_with(s))
        || name.ends_with('~')
}

/// Creates the watch, processing, done and failed directories.
///
/// # Errors
/// When one cannot be created.
pub fn create_dirs(w: &WatchConfig) -> anyhow::Result<()> {
    for d in [&w.dir, &w.processing_dir, &w.done_dir, &w.failed_dir] {
        std::fs::create_dir_all(d)
            .with_context(|| format!("creating directory {}", d.display()))?;
    }
    Ok(())
}

/// What happened to one file, for logs, tests and `run --once`.
#[derive(Debug, Clone, PartialEq)]
pub struct FileOutcome {
    pub rel: PathBuf,
    pub state: &'static str,
    pub queued: u64,
    pub duplicates: u64,
    pub rejected: u64,
    pub moved_to: Option<PathBuf>,
    pub error: Option<String>,
}

/// The directory watcher and file lifecycle.
pub struct Intake {
    cfg: watch::Receiver<Arc<Config>>,
    queue: Queue,
    metrics: Arc<Metrics>,
    /// A file was seen that has not settled yet: scan again next tick.
    waiting: bool,
    /// Paths an event said are complete (closed after writing, renamed in).
    complete_hints: HashSet<PathBuf>,
}

impl Intake {
    pub fn new(cfg: watch::Receiver<Arc<Config>>, queue: Queue, metrics: Arc<Metrics>) -> Self {
        Self {
            cfg,
            queue,
            metrics,
            waiting: false,
            complete_hints: HashSet::new(),
        }
    }

    fn config(&self) -> Arc<Config> {
        self.cfg.borrow().clone()
    }

    /// Resumes every file left in `processing/` by a previous run.
    ///
    /// # Errors
    /// Database or filesystem errors.
    pub async fn resume(&mut self, cancel: &CancellationToken) -> anyhow::Result<Vec<FileOutcome>> {
        let cfg = self.config();
        let mut names: Vec<PathBuf> = std::fs::read_dir(&cfg.watch.processing_dir)
            .with_context(|| format!("listing {}", cfg.watch.processing_dir.display()))?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .is_some_and(|n| !is_ignored(&n.to_string_lossy()))
            })
            .collect();
        names.sort();
        let mut out = Vec::new();
        for p in names {
            if cancel.is_cancelled() {
                break;
            }
            let key = p.to_string_lossy().into_owned();
            let previous = self.queue.file_in_progress(&key).await?;
            let rel = previous
                .as_ref()
                .map(|f| PathBuf::from(&f.path))
                .unwrap_or_else(|| PathBuf::from(p.file_name().unwrap_or_default()));
            tracing::info!(file = %rel.display(), resumed_after = previous.as_ref().map(|f| f.last_position), "resuming a file left in processing/");
            out.push(
                self.process(
                    &cfg,
                    &rel,
                    p,
                    previous.map(|f| (f.id, f.last_position)),
                    cancel,
                )
                .await?,
            );
        }
        Ok(out)
    }

    /// Scans `watch.dir` once and processes every file that is ready.
    /// With `settled_only == false` (for `run --once`) every regular file is
    /// taken at once.
    ///
    /// # Errors
    /// Database or filesystem errors.
    pub async fn scan(
        &mut self,
        cancel: &CancellationToken,
        settled_only: bool,
    ) -> anyhow::Result<Vec<FileOutcome>> {
        let cfg = self.config();
        let mut candidates = Vec::new();
        let mut odd = Vec::new();
        walk(&cfg.watch.dir, &mut candidates, &mut odd);
        let mut out = Vec::new();
        for (path, why) in odd {
            let rel = path
                .strip_prefix(&cfg.watch.dir)
                .unwrap_or(&path)
                .to_path_buf();
            let name = file_name(&rel);
            out.push(
                self.fail_whole(&cfg, &rel, &path, &name, why.to_string())
                    .await,
            );
        }
        self.waiting = false;
        let live: HashSet<PathBuf> = candidates.iter().map(|(p, _)| p.clone()).collect();
        self.complete_hints.retain(|p| live.contains(p));
        for (path, meta) in candidates {
            if cancel.is_cancelled() {
                break;
            }
            let ready = !settled_only
                || self.complete_hints.contains(&path)
                || self.settled(&meta, cfg.watch.settle);
            if !ready {
                continue;
            }
            self.complete_hints.remove(&path);
            let rel = path
                .strip_prefix(&cfg.watch.dir)
                .unwrap_or(&path)
                .to_path_buf();
            let name = file_name(&rel);
            let processing = match move_unique(&path, &cfg.watch.processing_dir, &name, false) {
                Ok(p) => p,
                Err(e) => {
                    // Gone (taken by someone else, or deleted): nothing to do.
                    tracing::debug!(file = %rel.display(), error = %e, "could not claim a file");
                    continue;
                }
            };
            out.push(self.process(&cfg, &rel, processing, None, cancel).await?);
        }
        Ok(out)
    }

    /// Whether a file has been left alone for `settle`: every write moves
    /// the mtime, so an mtime that old means size and content were stable
    /// that long. A file not yet settled keeps the scanner ticking.
    fn settled(&mut self, meta: &Metadata, settle: Duration) -> bool {
        let settled = meta
            .modified()
            .ok()
            .and_then(|m| SystemTime::now().duration_since(m).ok())
            .is_some_and(|age| age >= settle);
        if !settled {
            self.waiting = true;
        }
        settled
    }

    /// Reads a claimed file into the queue and moves it on.
    async fn process(
        &self,
        cfg: &Config,
        rel: &Path,
        processing: PathBuf,
        resume: Option<(i64, u64)>,
        cancel: &CancellationToken,
    ) -> anyhow::Result<FileOutcome> {
        let name = file_name(rel);
        // Never follow a symlink, and read only regular files.
        let mut file = match std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(&processing)
        {
            Ok(f) => f,
            Err(e) => {
                let reason = format!("cannot open: {e}");
                if let Some((id, _)) = resume {
                    self.queue
                        .file_finish(id, "failed", None, Some(&reason))
                        .await?;
                }
                return Ok(self.fail_whole(cfg, rel, &processing, &name, reason).await);
            }
        };
        let meta = file.metadata()?;
        if !meta.is_file() {
            return Ok(self
                .fail_whole(cfg, rel, &processing, &name, "not a regular file".into())
                .await);
        }
        let sha = match intake::sha256_of(&mut file) {
            Ok(s) => s,
            Err(e) => {
                return Ok(self
                    .fail_whole(cfg, rel, &processing, &name, format!("cannot read: {e}"))
                    .await);
            }
        };
        let settings = Settings::for_file(cfg, rel, None, None);
        let (file_id, resume_after) = match resume {
            Some(r) => r,
            None => {
                let previous = if cfg.watch.skip_duplicate_files {
                    self.queue.file_done_with_sha(&sha).await?
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
                        sha256: &sha,
                        size_bytes: meta.len(),
                        owner: &settings.owner,
                    })
                    .await?;
                if let Some(prev) = previous {
                    let why = format!(
                        "same content (sha256 {sha}) as file #{} {}, already queued",
                        prev.id, prev.path
                    );
                    self.queue
                        .file_finish(id, "skipped", None, Some(&why))
                        .await?;
                    tracing::info!(file = %rel.display(), previous = %prev.path, "same content as an earlier file: skipped");
                    let moved = move_unique(&processing, &cfg.watch.done_dir, &name, true).ok();
                    self.metrics.file_outcome("skipped");
                    return Ok(FileOutcome {
                        rel: rel.to_path_buf(),
                        state: "skipped",
                        queued: 0,
                        duplicates: 0,
                        rejected: 0,
                        moved_to: moved,
                        error: Some(why),
                    });
                }
                (id, 0)
            }
        };
        let report = intake::ingest(
            &self.queue,
            file_id,
            file,
            &processing,
            &settings,
            resume_after,
            cancel,
        )
        .await?;
        let format = report.format.map(|f| f.name());
        let Some((state, error)) = report.end.file_state() else {
            tracing::info!(file = %rel.display(), rows = report.rows_read, "stopped mid-file: it resumes on the next start");
            return Ok(FileOutcome {
                rel: rel.to_path_buf(),
                state: "processing",
                queued: report.queued,
                duplicates: report.duplicates,
                rejected: report.rejected,
                moved_to: None,
                error: None,
            });
        };
        let dest = if state == "done" {
            &cfg.watch.done_dir
        } else {
            &cfg.watch.failed_dir
        };
        // The rows are committed: only now does the file leave processing/.
        self.queue
            .file_finish(file_id, state, format, error.as_deref())
            .await?;
        let moved = move_unique(&processing, dest, &name, state == "done")
            .with_context(|| format!("moving {} to {}", processing.display(), dest.display()))?;
        let totals = self.queue.file(file_id).await?;
        let brk = match &report.end {
            End::Failed { line, reason } => Some((*line, reason.as_str())),
            _ => None,
        };
        if totals.rows_rejected > 0 || brk.is_some() {
            write_errors(&self.queue, Some(file_id), &moved, brk).await;
        }
        self.metrics.file_outcome(state);
        tracing::info!(
            file = %rel.display(),
            state,
            format = format.unwrap_or("unknown"),
            rows = totals.rows_read,
            queued = totals.rows_queued,
            duplicates = totals.rows_duplicate,
            rejected = totals.rows_rejected,
            error = error.as_deref().unwrap_or(""),
            "feed file finished"
        );
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

    /// Moves a file that cannot be read at all to `failed/` with the reason.
    async fn fail_whole(
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
        self.metrics.file_outcome("failed");
        FileOutcome {
            rel: rel.to_path_buf(),
            state: "failed",
            queued: 0,
            duplicates: 0,
            rejected: 0,
            moved_to: moved,
            error: Some(reason),
        }
    }

    /// Runs until cancelled: events and periodic rescans.
    ///
    /// # Errors
    /// Database or filesystem errors (a task failure: the daemon stops).
    pub async fn run(mut self, cancel: CancellationToken) -> anyhow::Result<()> {
        let (tx, mut rx) = mpsc::channel::<notify::Result<notify::Event>>(1024);
        let dir = self.config().watch.dir.clone();
        let mut watcher = notify::recommended_watcher(move |ev| {
            // A full channel only drops an event: the rescan catches up.
            let _ = tx.try_send(ev);
        })
        .context("starting the directory watcher")?;
        watcher
            .watch(&dir, RecursiveMode::Recursive)
            .with_context(|| format!("watching {}", dir.display()))?;
        self.resume(&cancel).await?;
        let mut last_scan = Instant::now() - Duration::from_secs(3600);
        let mut pending_event = true;
        loop {
            let cfg = self.config();
            let tick = cfg
                .watch
                .settle
                .clamp(Duration::from_millis(100), Duration::from_millis(500));
            tokio::select! {
                _ = cancel.cancelled() => break,
                ev = rx.recv() => {
                    let Some(first) = ev else {
                        anyhow::bail!("the directory watcher stopped");
                    };
                    // Take every queued event at once: a burst causes one scan.
                    let mut next = Some(first);
                    while let Some(ev) = next {
                        if let Ok(ev) = ev {
                            note_complete(ev, &mut self.complete_hints);
                        }
                        next = rx.try_recv().ok();
                    }
                    pending_event = true;
                }
                _ = tokio::time::sleep(tick) => {}
            }
            let due = pending_event || self.waiting || last_scan.elapsed() >= cfg.watch.rescan;
            if due {
                pending_event = false;
                last_scan = Instant::now();
                self.scan(&cancel, true).await?;
                prune_done(&cfg.watch.done_dir, cfg.watch.done_retention);
            }
        }
        Ok(())
    }
}

/// Records the paths an event says are complete: closed after writing, or
/// renamed in.
fn note_complete(ev: notify::Event, hints: &mut HashSet<PathBuf>) {
    use notify::event::{AccessKind, AccessMode, ModifyKind, RenameMode};
    if matches!(
        ev.kind,
        EventKind::Access(AccessKind::Close(AccessMode::Write))
            | EventKind::Modify(ModifyKind::Name(RenameMode::To | RenameMode::Both))
    ) {
        hints.extend(ev.paths);
    }
}

/// Regular files under `dir` (not following symlinks), and things that are
/// not regular files (symlinks, FIFOs, devices, sockets) with why.
fn walk(dir: &Path, files: &mut Vec<(PathBuf, Metadata)>, odd: &mut Vec<(PathBuf, &'static str)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.filter_map(Result::ok) {
        let name = entry.file_name().to_string_lossy().into_owned();
        if is_ignored(&name) {
            continue;
        }
        let path = entry.path();
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        let ft = meta.file_type();
        if ft.is_dir() {
            walk(&path, files, odd);
        } else if ft.is_file() {
            files.push((path, meta));
        } else if ft.is_symlink() {
            odd.push((path, "symlinks are not followed"));
        } else if ft.is_fifo() {
            odd.push((path, "FIFOs are not read"));
        } else if ft.is_block_device() || ft.is_char_device() {
            odd.push((path, "devices are not read"));
        } else if ft.is_socket() {
            odd.push((path, "sockets are not read"));
        }
    }
    files.sort_by(|a, b| a.0.cmp(&b.0));
}

/// A flat file name for a path relative to `watch.dir` (`a/b.csv` → `a_b.csv`).
fn file_name(rel: &Path) -> String {
    rel.to_string_lossy().replace('/', "_")
}

/// Moves `from` into `dir` as `name`, with a UTC time prefix when `stamp`,
/// adding `.1`, `.2`, ... if the name is taken. Renames are atomic within a
/// filesystem; across filesystems the file is copied, synced, then removed.
fn move_unique(from: &Path, dir: &Path, name: &str, stamp: bool) -> std::io::Result<PathBuf> {
    let base = if stamp {
        let now = time::OffsetDateTime::now_utc();
        format!(
            "{:04}{:02}{:02}T{:02}{:02}{:02}Z-{name}",
            now.year(),
            now.month() as u8,
            now.day(),
            now.hour(),
            now.minute(),
            now.second()
        )
    } else {
        name.to_string()
    };
    let mut target = dir.join(&base);
    let mut n = 1;
    while std::fs::symlink_metadata(&target).is_ok() {
        target = dir.join(format!("{base}.{n}"));
        n += 1;
    }
    match std::fs::rename(from, &target) {
        Ok(()) => Ok(target),
        Err(e) if e.raw_os_error() == Some(libc::EXDEV) => {
            std::fs::copy(from, &target)?;
            File::open(&target)?.sync_all()?;
            std::fs::remove_file(from)?;
            Ok(target)
        }
        Err(e) => Err(e),
    }
}

/// Writes `<file>.errors.ndjson`: one line per reject, and the break if any.
/// Writes `<file>.errors.ndjson`: one line per reject (streamed from the
/// queue), then the break if the file broke.
async fn write_errors(
    queue: &Queue,
    file_id: Option<i64>,
    moved: &Path,
    brk: Option<(Option<u64>, &str)>,
) {
    let mut path = moved.as_os_str().to_owned();
    path.push(".errors.ndjson");
    let path = PathBuf::from(path);
    let result = async {
        let mut f = std::io::BufWriter::new(File::create(&path)?);
        if let Some(id) = file_id {
            queue
                .for_each_reject(id, u64::MAX, |r| {
                    serde_json::to_writer(&mut f, &r)?;
                    f.write_all(b"\n")
                })
                .await?;
        }
        if let Some((line, reason)) = brk {
            serde_json::to_writer(
                &mut f,
                &serde_json::json!({"line": line, "error": reason, "rule": "file-unreadable"}),
            )?;
            f.write_all(b"\n")?;
        }
        f.flush()?;
        anyhow::Ok(())
    }
    .await;
    if let Err(e) = result {
        tracing::warn!(file = %path.display(), error = %format!("{e:#}"), "cannot write the errors report");
    }
}

/// Deletes files in `done/` older than the retention.
fn prune_done(dir: &Path, retention: Duration) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.filter_map(Result::ok) {
        let old = e
            .metadata()
            .ok()
            .and_then(|m| m.modified().ok())
            .and_then(|m| SystemTime::now().duration_since(m).ok())
            .is_some_and(|age| age > retention);
        if old && e.file_type().is_ok_and(|t| t.is_file()) {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_and_hidden_names_are_ignored() {
        for name in [
            ".x.csv",
            "a.tmp",
            "a.PART",
            "a.partial",
            ".a.swp",
            "a.swp",
            "a.csv~",
            "a.crdownload",
            "a.csv.errors.ndjson",
        ] {
            assert!(is_ignored(name), "{name}");
        }
        for name in ["a.csv", "feed.json.gz", "list.txt", "tmp.csv"] {
            assert!(!is_ignored(name), "{name}");
        }
    }

    #[test]
    fn done_files_past_retention_are_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let old = dir.path().join("old.csv");
        let new = dir.path().join("new.csv");
        std::fs::write(&old, "x").unwrap();
        std::fs::write(&new, "x").unwrap();
        let f = std::fs::File::options().write(true).open(&old).unwrap();
        f.set_modified(SystemTime::now() - Duration::from_secs(7200))
            .unwrap();
        prune_done(dir.path(), Duration::from_secs(3600));
        assert!(!old.exists());
        assert!(new.exists());
    }

    #[test]
    fn moves_never_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        std::fs::create_dir(dir.path().join("to")).unwrap();
        for i in 0..3 {
            std::fs::write(&a, format!("{i}")).unwrap();
            move_unique(&a, &dir.path().join("to"), "f.csv", false).unwrap();
        }
        let mut names: Vec<String> = std::fs::read_dir(dir.path().join("to"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, vec!["f.csv", "f.csv.1", "f.csv.2"]);
    }
}
