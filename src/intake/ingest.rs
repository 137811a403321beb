//! One feed file to queued jobs and recorded rejects.
//!
//! A reader thread streams and normalizes rows into chunks; the async side
//! commits each chunk in one transaction together with the file's progress
//! (`last_position`), so a crash loses nothing and a resumed file queues no
//! row twice. The channel between them is bounded: memory stays flat.

use std::fs::File;
use std::io::{Read, Seek};

use sha2::{Digest, Sha256};
use std::path::Path;

use tokio_util::sync::CancellationToken;

use super::settings::Settings;
use crate::feed::{self, FeedError, Format, Item};
use crate::lifecycle::Matched;
use crate::normalize::{self, RejectRule};
use crate::queue::{FileChunk, FileState, NewJob, NewReject, Queue};

/// Rows per committed chunk.
pub const CHUNK_ROWS: usize = 16384;

/// Rows of a read's first chunk; each next one is twice as large, up to
/// [`CHUNK_ROWS`]. A read commits within milliseconds of its start, so a
/// daemon stopped from outside (SIGKILL, a host restart) has almost always
/// made progress, which the crash-loop guard goes by.
const FIRST_CHUNK_ROWS: usize = 256;

/// What reading a file came to.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub file_id: i64,
    pub format: Option<Format>,
    pub rows_read: u64,
    pub queued: u64,
    pub duplicates: u64,
    pub rejected: u64,
    pub skipped: u64,
    pub filtered: u64,
    /// Retire jobs queued for objects the source withdrew.
    pub retired: u64,
    pub end: End,
}

#[derive(Debug, Clone, PartialEq)]
pub enum End {
    /// Every row queued, duplicate or rejected.
    Complete,
    /// The file could not be read (at all, or past `line`): the rows before
    /// were kept.
    Failed { line: Option<u64>, reason: String },
    /// Shutdown: progress is committed, the file resumes on the next start.
    Stopped,
    /// Not read again: the daemon died reading it without progress
    /// `watch.max_stalled_reads` times in a row.
    GivenUp { reason: String },
}

impl End {
    /// The file's final state (`done` or `failed`) and error, as the queue
    /// records them. A stopped file is not finished: `None`.
    pub fn file_state(&self) -> Option<(FileState, Option<String>)> {
        match self {
            End::Complete => Some((FileState::Done, None)),
            End::Stopped => None,
            End::Failed {
                line: Some(l),
                reason,
            } => Some((FileState::Failed, Some(format!("line {l}: {reason}")))),
            End::Failed { line: None, reason } | End::GivenUp { reason } => {
                Some((FileState::Failed, Some(reason.clone())))
            }
        }
    }
}

/// Where a read of a file starts, and what it keeps on the way.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Start {
    /// Rows at or before this position were committed by an earlier read.
    pub after: u64,
    /// A previous read died at this row: every row before it is committed
    /// before it is read, so a row that kills the daemon stops reading with
    /// every row before it kept.
    pub pin: Option<u64>,
    /// Keep a read mark beside the file (see `mark`): the daemon's own
    /// reads of `processing/`, not `enqueue`'s of a user's file.
    pub mark: bool,
    /// The format an earlier read of the file took it as: a resumed read
    /// takes it as that again, whatever the feed rules say now (positions
    /// mean different things in different formats).
    pub format: Option<Format>,
}

struct Chunk {
    jobs: Vec<NewJob>,
    rejects: Vec<NewReject>,
    /// Rows skipped, by reason.
    skipped: Vec<(String, u64)>,
    /// Rows the allowlist filtered, by what matched.
    filtered: Vec<(String, u64)>,
    /// Source object ids withdrawn (their indicators are retired).
    withdrawn: Vec<String>,
    rows: u64,
    last_position: u64,
    /// Told once the chunk is committed, for a reader that waits for that.
    committed: Option<tokio::sync::oneshot::Sender<()>>,
    /// No rows: the file is recorded as being read before the reader goes on.
    begins: bool,
}

impl Chunk {
    /// Counts one row under `what` in `counts` (skipped, filtered).
    fn count(counts: &mut Vec<(String, u64)>, what: &str) {
        match counts.iter_mut().find(|(w, _)| w == what) {
            Some((_, n)) => *n += 1,
            None => counts.push((what.to_string(), 1)),
        }
    }

    fn new() -> Self {
        Self {
            jobs: Vec::with_capacity(CHUNK_ROWS),
            rejects: Vec::new(),
            skipped: Vec::new(),
            filtered: Vec::new(),
            withdrawn: Vec::new(),
            rows: 0,
            last_position: 0,
            committed: None,
            begins: false,
        }
    }
}

/// How often a file being read logs its progress.
const PROGRESS_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// A feed file opened for reading, under its record in the queue.
pub struct Input<'a> {
    /// Its `files.id`.
    pub id: i64,
    pub file: File,
    /// Its path, for messages and the read mark.
    pub name: &'a Path,
}

/// Reads `input` and commits its rows to the queue, from `start`.
///
/// # Errors
/// Only database errors: a problem with the file is `End::Failed`.
pub async fn ingest(
    queue: &Queue,
    input: Input<'_>,
    settings: &Settings,
    start: Start,
    cancel: &CancellationToken,
) -> anyhow::Result<Report> {
    let Input { id, mut file, name } = input;
    let large = file.metadata().is_ok_and(|m| m.len() >= LARGE_FILE);
    // The format is settled, and recorded, before the first row: a resumed
    // read goes on in the same one.
    let format = match start.format {
        Some(f) => Ok(f),
        None => feed::format_of(&mut file, name, &settings.read),
    };
    let mut settings = settings.clone();
    match format {
        Ok(f) => {
            settings.read.format = Some(f);
            queue.file_format(id, f.name()).await?;
        }
        // Left to the read, which fails the file saying why.
        Err(e) => tracing::debug!(file = %name.display(), error = %e, "cannot tell the format"),
    }
    let settings = &settings;
    let (tx, rx) = tokio::sync::mpsc::channel::<Chunk>(2);
    let reader = {
        let (settings, name, cancel) = (settings.clone(), name.to_path_buf(), cancel.clone());
        tokio::task::spawn_blocking(move || {
            let result = read_chunks(file, &name, &settings, start, &cancel, &tx);
            if large {
                release_memory();
            }
            result
        })
    };
    let mut report = Report {
        file_id: id,
        format: None,
        rows_read: 0,
        queued: 0,
        duplicates: 0,
        rejected: 0,
        skipped: 0,
        filtered: 0,
        retired: 0,
        end: End::Complete,
    };
    let committed = commit_chunks(queue, rx, name, settings, &mut report).await;
    let read_result = reader
        .await
        .map_err(|e| anyhow::anyhow!("feed reader thread failed: {e}"))?;
    if large {
        // The rows were built on the reader thread and freed here.
        release_memory();
    }
    committed?;
    if let Ok(format) = &read_result {
        report.format = Some(*format);
    }
    report.end = end_of(read_result);
    if report.format.is_none() {
        report.format = settings.read.format.or_else(|| Format::from_path(name));
    }
    Ok(report)
}

/// Commits the reader's chunks as they come, counting them into `report`
/// and logging a big file's progress every few seconds. On a database
/// error it stops taking chunks (the reader then stops too).
async fn commit_chunks(
    queue: &Queue,
    mut rx: tokio::sync::mpsc::Receiver<Chunk>,
    name: &Path,
    settings: &Settings,
    report: &mut Report,
) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let mut last_progress = started;
    while let Some(mut chunk) = rx.recv().await {
        if chunk.begins {
            // Reading new rows begins: from here a death is a death
            // reading this file (see `read_chunks`).
            queue.file_reading(report.file_id).await?;
        } else {
            let c = FileChunk {
                jobs: &chunk.jobs,
                rejects: &chunk.rejects,
                skipped: &chunk.skipped,
                filtered: &chunk.filtered,
                rows_read: chunk.rows,
                last_position: chunk.last_position,
                feed: settings.feed.as_deref(),
                withdrawn: &chunk.withdrawn,
                retiring: settings.retiring(),
            };
            let r = queue
                .commit_file_chunk(Some(report.file_id), &c, settings.dedup_window)
                .await?;
            report.rows_read += chunk.rows;
            report.queued += r.queued;
            report.duplicates += r.duplicates;
            report.retired += r.retired;
            report.rejected += chunk.rejects.len() as u64;
            report.skipped += chunk.skipped.iter().map(|(_, n)| n).sum::<u64>();
            report.filtered += chunk.filtered.iter().map(|(_, n)| n).sum::<u64>();
        }
        if let Some(tell) = chunk.committed.take() {
            let _ = tell.send(());
        }
        if last_progress.elapsed() >= PROGRESS_EVERY {
            last_progress = std::time::Instant::now();
            let secs = started.elapsed().as_secs_f64().max(0.001);
            tracing::info!(
                file = %name.display(),
                rows = report.rows_read,
                queued = report.queued,
                rejected = report.rejected,
                rows_per_sec = (report.rows_read as f64 / secs) as u64,
                "reading a feed file"
            );
        }
    }
    Ok(())
}

/// How a read ended, from the reader's result.
fn end_of(read: Result<Format, FeedError>) -> End {
    match read {
        Ok(_) => End::Complete,
        Err(FeedError::Stopped) => End::Stopped,
        // Reasons are bounded where they are built; cut again so that no
        // reader's message can reach files.error, the log or a report whole.
        Err(FeedError::Unreadable(reason)) => End::Failed {
            line: None,
            reason: feed::cut(&reason),
        },
        Err(FeedError::Broken { line, reason }) => End::Failed {
            line: Some(line),
            reason: feed::cut(&reason),
        },
    }
}

/// A file this large (on disk) is followed by [`release_memory`].
const LARGE_FILE: u64 = 8 << 20;

/// Returns the memory freed after a large file to the system at once:
/// mimalloc (the binary's allocator) keeps freed pages of a thread's heap
/// for a while, and rows allocated on the reader thread are freed on
/// another. Outside the binary (tests use the system allocator) this only
/// tidies mimalloc's own empty heap.
fn release_memory() {
    // SAFETY: mi_collect has no preconditions; it only frees what no
    // allocation uses.
    unsafe { libmimalloc_sys::mi_collect(true) };
}

/// The reader's end of the channel to the side that commits.
struct Out<'a> {
    tx: &'a tokio::sync::mpsc::Sender<Chunk>,
    /// The other side is gone (a database error): reading stops.
    closed: bool,
}

impl Out<'_> {
    /// Sends `c` on; with `wait`, returns once it is committed. False when
    /// the other side is gone.
    fn send(&mut self, mut c: Chunk, wait: bool) -> bool {
        let committed = wait.then(|| {
            let (tell, committed) = tokio::sync::oneshot::channel();
            c.committed = Some(tell);
            committed
        });
        let sent =
            self.tx.blocking_send(c).is_ok() && committed.is_none_or(|r| r.blocking_recv().is_ok());
        self.closed |= !sent;
        sent
    }

    /// Records the file as being read, and waits for that to be committed.
    fn begin(&mut self) -> bool {
        let mut c = Chunk::new();
        c.begins = true;
        self.send(c, true)
    }
}

/// The reader thread: reads and classifies rows after `start.after` into
/// chunks growing from [`FIRST_CHUNK_ROWS`] to [`CHUNK_ROWS`] (one ends,
/// and is waited for, before the row `start.pin`) and sends them on,
/// ending with what was read before a break or a stop. With `start.mark`,
/// each row's position and line go to the read mark before it is touched.
///
/// The file is recorded as being read once the row at `start.after` is
/// read again (at once for a new read): the rows before it were read
/// without harm by an earlier run, so a death while skipping them is no
/// sign of a file that kills the daemon, but one while parsing the next is.
fn read_chunks(
    file: File,
    name: &Path,
    settings: &Settings,
    start: Start,
    cancel: &CancellationToken,
    tx: &tokio::sync::mpsc::Sender<Chunk>,
) -> Result<Format, FeedError> {
    let mut out = Out { tx, closed: false };
    let mut mark = start
        .mark
        .then(|| super::mark::ReadMark::create(name))
        .flatten();
    let mut chunk = Chunk::new();
    let mut chunk_rows = FIRST_CHUNK_ROWS;
    let mut pin = start.pin;
    let mut begun = start.after == 0;
    let mut skips = SkipNames::default();
    if begun && !out.begin() {
        return Err(FeedError::Stopped);
    }
    let result = feed::read_from(file, name, &settings.read, &mut |item| {
        let position = item.position();
        if cancel.is_cancelled() || out.closed {
            return std::ops::ControlFlow::Break(());
        }
        // Begun at the row read last time (always read again): a death
        // parsing the next one, or bytes after the last row, counts.
        if !begun && position >= start.after {
            begun = true;
            out.begin();
        }
        if position <= start.after {
            return std::ops::ControlFlow::Continue(());
        }
        if pin.is_some_and(|p| position >= p) {
            // The row a previous read died at: every row before it is
            // committed before it is touched.
            pin = None;
            if chunk.rows > 0 {
                out.send(std::mem::replace(&mut chunk, Chunk::new()), true);
            }
        }
        if let Some(m) = &mut mark {
            m.set(super::mark::Mark {
                position,
                line: item.line(),
            });
        }
        #[cfg(debug_assertions)]
        test_trigger::abort_on(&item);
        chunk.rows += 1;
        chunk.last_position = position;
        match classify(item, settings) {
            Classified::Job(job) => chunk.jobs.push(job),
            Classified::Reject(reject) => chunk.rejects.push(reject),
            Classified::Skip(what, withdraws) => {
                Chunk::count(&mut chunk.skipped, &skips.name(what));
                chunk.withdrawn.extend(withdraws);
            }
            Classified::Filtered(_, by) => Chunk::count(&mut chunk.filtered, &by.0),
        }
        if chunk.rows as usize >= chunk_rows {
            chunk_rows = (chunk_rows * 2).min(CHUNK_ROWS);
            out.send(std::mem::replace(&mut chunk, Chunk::new()), false);
        }
        if out.closed {
            return std::ops::ControlFlow::Break(());
        }
        std::ops::ControlFlow::Continue(())
    });
    if chunk.rows > 0 && !out.closed {
        out.send(chunk, false);
    }
    result
}

/// The reasons a file's rows are skipped for, bounded: a file naming
/// thousands of object types counts the ones past [`SkipNames::MAX`] as one.
#[derive(Debug, Default)]
pub struct SkipNames(std::collections::HashSet<String>);

impl SkipNames {
    const MAX: usize = 64;

    /// The reason `what` is counted under.
    pub fn name(&mut self, what: String) -> String {
        if self.0.contains(&what) {
            return what;
        }
        if self.0.len() >= Self::MAX {
            return "other".into();
        }
        let what = feed::cut(&what);
        self.0.insert(what.clone());
        what
    }
}

/// Test builds only (compiled out of release builds): with
/// `TC_INGEST_TEST_ABORT_ON` set, reading a row whose value is exactly that
/// aborts the process, as a row that crashes the daemon would, so tests can
/// prove the crash-loop guard on the real binary.
#[cfg(debug_assertions)]
mod test_trigger {
    use std::sync::OnceLock;

    pub(super) fn abort_on(item: &crate::feed::Item) {
        static VALUE: OnceLock<Option<String>> = OnceLock::new();
        let Some(trigger) = VALUE.get_or_init(|| std::env::var("TC_INGEST_TEST_ABORT_ON").ok())
        else {
            return;
        };
        if let crate::feed::Item::Row(r) = item
            && r.value.as_deref() == Some(trigger.as_str())
        {
            std::process::abort();
        }
    }
}

/// What becomes of one item a reader handed over.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // jobs are the common case: boxing them would cost an allocation each
pub enum Classified {
    Job(NewJob),
    /// Which line broke which rule.
    Reject(NewReject),
    /// Counted under this reason, neither queued nor rejected.
    Skip(String, Option<String>),
    /// A valid indicator the allowlist keeps out: counted under what
    /// matched, not queued.
    Filtered(NewJob, Matched),
}

/// One item a reader handed over: a job to queue, the reject that says
/// which line broke which rule, or a row skipped and why.
pub fn classify(item: Item, settings: &Settings) -> Classified {
    let reject = |line, input, rule, reason| {
        Classified::Reject(NewReject {
            line,
            input,
            rule,
            reason,
        })
    };
    match item {
        Item::Row(rec) => match normalize::record(&rec, &settings.defaults) {
            Ok(n) => {
                let by = settings.allowlist.check(&n.indicator).cloned();
                let job = NewJob {
                    owner: n.owner.unwrap_or_else(|| settings.owner.clone()),
                    indicator: n.indicator,
                    payload: n.payload,
                    line: Some(rec.line),
                };
                match by {
                    Some(by) => Classified::Filtered(job, by),
                    None => Classified::Job(job),
                }
            }
            Err(r) => reject(rec.line, rec.input(), r.rule, r.message),
        },
        Item::Skipped {
            what, withdraws, ..
        } => Classified::Skip(what, withdraws),
        Item::Bad {
            line,
            input,
            reason,
            ..
        } => reject(line, input, RejectRule::UnreadableRow, reason),
        Item::Refused {
            line,
            input,
            rule,
            reason,
            ..
        } => reject(line, input, normalize::refusal_rule(rule), reason),
    }
}

/// The sha256 of a file's content (hex), leaving it rewound.
///
/// # Errors
/// Read errors.
pub fn sha256_of(file: &mut File) -> std::io::Result<String> {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 256 << 10];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    file.rewind()?;
    Ok(hex::encode(h.finalize()))
}
