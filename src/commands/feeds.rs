//! The commands that read feed files without a daemon: `normalize` (to
//! standard output) and `enqueue` (into the queue).

use std::collections::BTreeMap;
use std::io::Write;

use anyhow::Context;
use serde_json::json;

use super::{counts, load_config};
use crate::cli::ConfigArg;
use crate::config::Config;
use crate::exit;
use crate::feed::{self, ReadOptions};
use crate::indicator::IndicatorType;
use crate::intake::{self, Settings};
use crate::normalize::{FeedDefaults, RejectRule};
use crate::queue::{FileState, NewFile, Queue};

pub(super) fn normalize_files(
    config: Option<&std::path::Path>,
    kind: Option<IndicatorType>,
    files: &[std::path::PathBuf],
) -> anyhow::Result<u8> {
    // With --config, each file gets the feed rule its name matches (as in
    // watch.dir); without, only the type default applies.
    let cfg = config
        .map(|c| {
            load_config(&ConfigArg {
                config: Some(c.to_path_buf()),
            })
        })
        .transpose()?;
    let allowlist = cfg.as_ref().map(super::allowlist).transpose()?;
    let mut normalized = Normalized::new(cfg.is_some());
    let mut code = exit::OK;
    for path in files {
        let mut settings = normalize_settings(cfg.as_ref(), kind, path);
        if let Some(a) = &allowlist {
            settings.allowlist = a.clone();
        }
        if let Err(e) = normalized.read(path, &settings) {
            eprintln!("error: {}: {e}", path.display());
            code = exit::ERROR;
        }
    }
    normalized.finish()?;
    Ok(code)
}

/// The settings `normalize` reads `path` with: with a configuration, the
/// feed rule its file name matches; without, only the type default.
fn normalize_settings(
    cfg: Option<&Config>,
    kind: Option<IndicatorType>,
    path: &std::path::Path,
) -> Settings {
    match cfg {
        Some(cfg) => {
            let name = path
                .file_name()
                .map(std::path::PathBuf::from)
                .unwrap_or_else(|| path.to_path_buf());
            Settings::for_file(cfg, &name, None, kind)
        }
        None => Settings {
            owner: String::new(),
            defaults: FeedDefaults {
                kind,
                ..FeedDefaults::default()
            },
            read: ReadOptions::default(),
            dedup_window: std::time::Duration::ZERO,
            allowlist: std::sync::Arc::new(crate::lifecycle::Allowlist::empty()),
            feed: None,
            snapshot: false,
            lifecycle: crate::config::FeedLifecycle::default(),
        },
    }
}

/// What `normalize` prints (a JSON line per row, on standard output) and
/// counts (rows by type, rejects by rule).
struct Normalized {
    out: std::io::BufWriter<std::io::StdoutLock<'static>>,
    /// The first error writing to standard output; nothing is written after it.
    write_err: Option<std::io::Error>,
    by_type: BTreeMap<&'static str, u64>,
    by_rule: BTreeMap<RejectRule, u64>,
    skipped: BTreeMap<String, u64>,
    /// Rows the allowlist filtered, by what matched (lists are few).
    filtered: BTreeMap<String, u64>,
    /// Bounds the reasons counted (a file may name millions of types).
    skip_names: intake::SkipNames,
    /// Whether rows show their owner and payload (with --config).
    with_owner: bool,
}

impl Normalized {
    /// Nothing printed or counted yet.
    fn new(with_owner: bool) -> Self {
        Self {
            out: std::io::BufWriter::new(std::io::stdout().lock()),
            write_err: None,
            by_type: BTreeMap::new(),
            by_rule: BTreeMap::new(),
            skipped: BTreeMap::new(),
            filtered: BTreeMap::new(),
            skip_names: intake::SkipNames::default(),
            with_owner,
        }
    }

    /// Reads `path` (`-`: standard input) with `settings`, a line per row.
    fn read(
        &mut self,
        path: &std::path::Path,
        settings: &Settings,
    ) -> Result<feed::Format, feed::FeedError> {
        let name = path.display().to_string();
        let mut sink = |item| {
            self.item(item, settings, &name);
            std::ops::ControlFlow::Continue(())
        };
        match open_input(path) {
            Ok(Input::File(file)) => feed::read_from(file, path, &settings.read, &mut sink),
            // Spooled: a reader may read its input twice (STIX, MISP).
            Ok(Input::Stdin) => match spool_stdin(settings.read.max_decompressed_bytes) {
                Ok(file) => feed::read_from(file, path, &settings.read, &mut sink),
                Err(e) => Err(feed::FeedError::Unreadable(e)),
            },
            Err(e) => Err(feed::FeedError::Unreadable(e)),
        }
    }

    /// One row of the file `name`: its indicator (counted by type) or its
    /// reject (counted by rule).
    fn item(&mut self, item: feed::Item, settings: &Settings, name: &str) {
        match intake::classify(item, settings) {
            intake::Classified::Skip(what, _) => {
                *self.skipped.entry(self.skip_names.name(what)).or_default() += 1;
            }
            intake::Classified::Job(job) => {
                let kind = job.indicator.kind().tc_name();
                *self.by_type.entry(kind).or_default() += 1;
                let mut row = json!({"file": name, "line": job.line, "type": kind, "summary": job.indicator.summary()});
                if self.with_owner {
                    row["owner"] = json!(job.owner);
                    row["payload"] = json!(job.payload);
                }
                self.emit(row);
            }
            intake::Classified::Filtered(job, by) => {
                *self.filtered.entry(by.0.to_string()).or_default() += 1;
                self.emit(
                    json!({"file": name, "line": job.line, "type": job.indicator.kind().tc_name(),
                    "summary": job.indicator.summary(), "filtered": &*by.0}),
                );
            }
            intake::Classified::Reject(r) => {
                self.emit(
                    json!({"file": name, "line": r.line, "input": r.input, "error": r.reason}),
                );
                *self.by_rule.entry(r.rule).or_default() += 1;
            }
        }
    }

    /// Prints one JSON line, unless writing has failed before.
    fn emit(&mut self, v: serde_json::Value) {
        if self.write_err.is_none()
            && let Err(e) = writeln!(self.out, "{v}")
        {
            self.write_err = Some(e);
        }
    }

    /// Flushes standard output and prints the counts on standard error.
    ///
    /// # Errors
    /// When writing to standard output failed.
    fn finish(mut self) -> anyhow::Result<()> {
        self.out.flush()?;
        if let Some(e) = self.write_err {
            return Err(e).context("writing to stdout");
        }
        let accepted: u64 = self.by_type.values().sum();
        let rejected: u64 = self.by_rule.values().sum();
        let skipped: u64 = self.skipped.values().sum();
        let skipped = if skipped == 0 {
            String::new()
        } else {
            format!(", {skipped} skipped ({})", counts(&self.skipped))
        };
        let filtered: u64 = self.filtered.values().sum();
        let filtered = if filtered == 0 {
            String::new()
        } else {
            format!(
                ", {filtered} filtered by the allowlist ({})",
                counts(&self.filtered)
            )
        };
        eprintln!(
            "normalize: {accepted} accepted ({}), {rejected} rejected ({}){skipped}{filtered}",
            counts(&self.by_type),
            counts(&self.by_rule)
        );
        Ok(())
    }
}

/// What `normalize` and `enqueue` read: a regular file, or standard input.
enum Input {
    File(std::fs::File),
    Stdin,
}

/// Opens an input of `normalize` or `enqueue`: `-` is standard input, any
/// other path must be a regular file (a device such as `/dev/zero`, a FIFO
/// or a directory is refused before a byte is read). Opened non-blocking so
/// that a FIFO without a writer cannot hang the command.
fn open_input(path: &std::path::Path) -> Result<Input, String> {
    use std::os::unix::fs::OpenOptionsExt;
    if path.as_os_str() == "-" {
        return Ok(Input::Stdin);
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| format!("cannot open: {e}"))?;
    let meta = file.metadata().map_err(|e| format!("cannot read: {e}"))?;
    if !meta.is_file() {
        return Err("not a regular file (give a file, or - for standard input)".into());
    }
    Ok(Input::File(file))
}

/// Standard input copied to an unnamed temporary file (`enqueue` hashes a
/// file before it reads it), at most `max` bytes.
fn spool_stdin(max: u64) -> Result<std::fs::File, String> {
    use std::io::{Read, Seek};
    let mut file = tempfile::tempfile().map_err(|e| format!("cannot spool standard input: {e}"))?;
    let copied = std::io::copy(&mut std::io::stdin().take(max + 1), &mut file)
        .map_err(|e| format!("cannot read standard input: {e}"))?;
    if copied > max {
        return Err(format!(
            "standard input is longer than {max} bytes (watch.max_decompressed_bytes)"
        ));
    }
    file.rewind()
        .map_err(|e| format!("cannot spool standard input: {e}"))?;
    Ok(file)
}

pub(super) async fn enqueue(
    arg: &ConfigArg,
    owner: Option<&str>,
    kind: Option<IndicatorType>,
    files: &[std::path::PathBuf],
) -> anyhow::Result<u8> {
    let cfg = load_config(arg)?;
    let allowlist = super::allowlist(&cfg)?;
    let queue = super::queue::open(&cfg).await?;
    let cancel = tokio_util::sync::CancellationToken::new();
    let mut code = exit::OK;
    for path in files {
        let name = path
            .file_name()
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| path.clone());
        let mut settings = Settings::for_file(&cfg, &name, owner, kind);
        settings.allowlist = allowlist.clone();
        let error = match open_to_enqueue(path, cfg.watch.max_decompressed_bytes) {
            Ok(file) => enqueue_file(&queue, file, path, &settings, &cancel).await?,
            Err(e) => Some(e),
        };
        if let Some(e) = error {
            eprintln!("error: {}: {e}", path.display());
            code = exit::ERROR;
        }
    }
    queue.close().await;
    Ok(code)
}

/// Opens an input of `enqueue`: a regular file, or standard input spooled
/// to a temporary file (at most `max` bytes).
fn open_to_enqueue(path: &std::path::Path, max: u64) -> Result<std::fs::File, String> {
    match open_input(path)? {
        Input::File(f) => Ok(f),
        Input::Stdin => spool_stdin(max),
    }
}

/// Queues the rows of `file` (opened from `path`) as one file of the queue
/// and prints its report. Returns the error the file ended with, if any.
async fn enqueue_file(
    queue: &Queue,
    mut file: std::fs::File,
    path: &std::path::Path,
    settings: &Settings,
    cancel: &tokio_util::sync::CancellationToken,
) -> anyhow::Result<Option<String>> {
    let meta = file.metadata()?;
    let sha =
        intake::sha256_of(&mut file).with_context(|| format!("reading {}", path.display()))?;
    let id = queue
        .file_begin(&NewFile {
            path: &path.to_string_lossy(),
            processing_path: None,
            sha256: &sha,
            size_bytes: meta.len(),
            owner: &settings.owner,
            feed: settings.feed.as_deref(),
        })
        .await?;
    let input = intake::Input {
        id,
        file,
        name: path,
    };
    let report = intake::ingest(queue, input, settings, intake::Start::default(), cancel).await?;
    let (state, error) = report
        .end
        .file_state()
        .unwrap_or((FileState::Failed, Some("stopped before the end".into())));
    let finish = crate::queue::FileFinish {
        state,
        format: report.format,
        error: error.as_deref(),
        given_up: false,
    };
    intake::finish_file(queue, id, finish, settings).await?;
    print_report(queue, id, path, &report, &settings.owner).await?;
    Ok(error)
}

/// `enqueue`'s report on one file (`id` in the queue): its counts and its
/// first 20 rejects.
async fn print_report(
    queue: &Queue,
    id: i64,
    path: &std::path::Path,
    report: &intake::Report,
    owner: &str,
) -> anyhow::Result<()> {
    println!(
        "{}: {} rows: {} queued, {} duplicate, {} rejected (owner {})",
        path.display(),
        report.rows_read,
        report.queued,
        report.duplicates,
        report.rejected,
        owner
    );
    for r in queue.rejects(id, 20).await? {
        println!("  line {}: {} ({})", r.line, r.reason, r.input);
    }
    if report.rejected > 20 {
        println!(
            "  ... {} more: SELECT * FROM rejects WHERE file_id = {id}",
            report.rejected - 20
        );
    }
    Ok(())
}
