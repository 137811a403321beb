//! Intake: feed files into the queue.
//!
//! [`Intake`] watches the directory: it finds complete files, claims them
//! into `processing/`, reads them into the queue (`ingest`), and moves them to
//! `done/` or `failed/` with an errors report (`lifecycle`); `dir` holds the
//! filesystem side. notify (inotify) gives low latency; a periodic rescan
//! catches what events miss (overflow, network filesystems, files present at
//! startup). A file is taken when it was renamed in or closed after writing,
//! or when its size and mtime have been stable for `watch.settle_ms`.

mod dir;
mod ingest;
mod lifecycle;
mod mark;
mod settings;

use std::collections::HashSet;
use std::fs::Metadata;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;
use notify::{RecursiveMode, Watcher as _};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

pub use dir::{create_dirs, is_ignored};
pub use ingest::{
    CHUNK_ROWS, Classified, End, Input, Report, SkipNames, Start, classify, ingest, sha256_of,
};
pub use lifecycle::finish_file;
pub use settings::Settings;

use crate::config::Config;
use crate::feed::Format;
use crate::lifecycle::Allowlist;
use crate::metrics::Metrics;
use crate::queue::{FileState, Queue};
use dir::{file_name, move_unique, note_event, prune_finished, walk};

/// What happened to one file, for logs, tests and `run --once`.
#[derive(Debug, Clone, PartialEq)]
pub struct FileOutcome {
    pub rel: PathBuf,
    pub state: FileState,
    pub queued: u64,
    pub duplicates: u64,
    pub rejected: u64,
    pub moved_to: Option<PathBuf>,
    pub error: Option<String>,
}

/// The directory watcher and file lifecycle.
pub struct Intake {
    cfg: watch::Receiver<Arc<Config>>,
    /// The allowlist of the running config (built where it is loaded).
    allowlist: watch::Receiver<Arc<Allowlist>>,
    queue: Queue,
    metrics: Arc<Metrics>,
    /// A file was seen that has not settled yet: scan again next tick.
    waiting: bool,
    /// Paths an event said are complete (closed after writing, renamed in).
    complete_hints: HashSet<PathBuf>,
    /// When retention last ran (at most once a minute).
    last_prune: Option<Instant>,
}

impl Intake {
    pub fn new(
        cfg: watch::Receiver<Arc<Config>>,
        allowlist: watch::Receiver<Arc<Allowlist>>,
        queue: Queue,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            cfg,
            allowlist,
            queue,
            metrics,
            waiting: false,
            complete_hints: HashSet::new(),
            last_prune: None,
        }
    }

    fn config(&self) -> Arc<Config> {
        self.cfg.borrow().clone()
    }

    /// Resumes every file left in `processing/` by a previous run, then
    /// the given-up files `retry --file` asked for.
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
            let mut start = None;
            if let Some(f) = &previous {
                // A mark past the committed rows: the row a read died at.
                let died_at = mark::read(&p).filter(|m| m.position > f.last_position);
                if f.reading {
                    // Reads that died without committing a row, N in a row,
                    // make a crash loop.
                    let stalls = self.queue.file_interrupted(f.id).await?;
                    if stalls >= cfg.watch.max_stalled_reads {
                        out.push(self.give_up(&cfg, &rel, &p, f, stalls, died_at).await?);
                        continue;
                    }
                    tracing::warn!(file = %rel.display(), position = f.last_position, died_at_line = died_at.map(|m| m.line), stalled_reads = stalls, "the daemon died reading this file: reading on");
                } else {
                    tracing::info!(file = %rel.display(), position = f.last_position, "resuming a file left in processing/");
                }
                start = Some((
                    f.id,
                    Start {
                        after: f.last_position,
                        pin: died_at.map(|m| m.position),
                        mark: true,
                        format: f.format.as_deref().and_then(Format::from_name),
                    },
                ));
            }
            out.push(self.process(&cfg, &rel, p, start, cancel).await?);
        }
        out.extend(self.resume_put_back(cancel).await?);
        Ok(out)
    }

    /// Puts the given-up files that `retry --file` asked for back into
    /// `processing/` and reads each on after its committed position (at
    /// start, and before every scan).
    ///
    /// # Errors
    /// Database or filesystem errors.
    pub async fn resume_put_back(
        &mut self,
        cancel: &CancellationToken,
    ) -> anyhow::Result<Vec<FileOutcome>> {
        let cfg = self.config();
        let mut out = Vec::new();
        for f in self.queue.files_put_back().await? {
            if cancel.is_cancelled() {
                break;
            }
            let Some(path) = self.put_back(&cfg, &f).await? else {
                continue;
            };
            tracing::info!(file = %f.path, position = f.last_position, "reading on a file put back by retry --file");
            let start = Start {
                after: f.last_position,
                pin: None,
                mark: true,
                format: f.format.as_deref().and_then(Format::from_name),
            };
            out.push(
                self.process(&cfg, Path::new(&f.path), path, Some((f.id, start)), cancel)
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

    /// Deletes files in `done/` and `failed/`, with their errors reports,
    /// that finished more than `watch.done_retention` ago (as the queue
    /// recorded); returns how many files were deleted.
    ///
    /// # Errors
    /// Database errors.
    pub async fn prune(&self) -> anyhow::Result<u64> {
        let cfg = self.config();
        let finished = self
            .queue
            .finished_moves()
            .await?
            .into_iter()
            .map(|(p, at)| (PathBuf::from(p), at))
            .collect();
        let removed = prune_finished(
            &[&cfg.watch.done_dir, &cfg.watch.failed_dir],
            cfg.watch.done_retention,
            &finished,
        );
        if removed > 0 {
            let before = crate::queue::now_ms() - crate::queue::ms(cfg.watch.done_retention);
            self.queue.forget_moves_before(before).await?;
            tracing::info!(
                files = removed,
                "deleted finished files past watch.done_retention"
            );
        }
        Ok(removed)
    }

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
                    // Take every queued event at once: a burst causes one
                    // scan, and only events that can mean a new or finished
                    // file cause one (a scan's own opening of the directory
                    // raises an event: reacting to it would scan for ever).
                    let mut next = Some(first);
                    while let Some(ev) = next {
                        pending_event |= match ev {
                            Ok(ev) => note_event(ev, &mut self.complete_hints),
                            // An error (a queue overflow): rescan.
                            Err(_) => true,
                        };
                        next = rx.try_recv().ok();
                    }
                }
                _ = tokio::time::sleep(tick) => {}
            }
            let due = pending_event || self.waiting || last_scan.elapsed() >= cfg.watch.rescan;
            if due {
                pending_event = false;
                last_scan = Instant::now();
                self.resume_put_back(&cancel).await?;
                self.scan(&cancel, true).await?;
                if self
                    .last_prune
                    .is_none_or(|t| t.elapsed() >= Duration::from_secs(60))
                {
                    self.last_prune = Some(Instant::now());
                    self.prune().await?;
                }
            }
        }
        Ok(())
    }
}
