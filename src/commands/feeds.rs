//! The commands that read feed files without a daemon: `normalize` (to
//! standard output) and `enqueue` (into the queue).

use std::collections::BTreeMap;
use std::io::Write;

use anyhow::Context;
use serde_json::json;

use super::{counts, load_config};
use crate::cli::ConfigArg;
use crate::exit;
use crate::feed::{self, ReadOptions};
use crate::indicator::IndicatorType;
use crate::intake::{self, Settings};
use crate::normalize::FeedDefaults;
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
    let settings_for = |path: &std::path::Path| match &cfg {
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
        },
    };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut by_type: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut by_rule: BTreeMap<crate::normalize::RejectRule, u64> = BTreeMap::new();
    let mut code = exit::OK;
    let mut write_err: Option<std::io::Error> = None;
    for path in files {
        let settings = settings_for(path);
        let with_owner = cfg.is_some();
        let name = path.display().to_string();
        let mut emit = |v: serde_json::Value| {
            if write_err.is_none()
                && let Err(e) = writeln!(out, "{v}")
            {
                write_err = Some(e);
            }
        };
        let mut sink = |item| {
            match intake::classify(item, &settings) {
                Ok(job) => {
                    let kind = job.indicator.kind().tc_name();
                    *by_type.entry(kind).or_default() += 1;
                    let mut row = json!({"file": name, "line": job.line, "type": kind, "summary": job.indicator.summary()});
                    if with_owner {
                        row["owner"] = json!(job.owner);
                        row["payload"] = json!(job.payload);
                    }
                    emit(row);
                }
                Err(r) => {
                    emit(
                        json!({"file": name, "line": r.line, "input": r.input, "error": r.reason}),
                    );
                    *by_rule.entry(r.rule).or_default() += 1;
                }
            }
            std::ops::ControlFlow::Continue(())
        };
        let result = match open_input(path) {
            Ok(Input::File(file)) => feed::read_from(file, path, &settings.read, &mut sink),
            Ok(Input::Stdin) => feed::read_from(std::io::stdin(), path, &settings.read, &mut sink),
            Err(e) => Err(feed::FeedError::Unreadable(e)),
        };
        if let Err(e) = result {
            eprintln!("error: {}: {e}", path.display());
            code = exit::ERROR;
        }
    }
    out.flush()?;
    if let Some(e) = write_err {
        return Err(e).context("writing to stdout");
    }
    let accepted: u64 = by_type.values().sum();
    let rejected: u64 = by_rule.values().sum();
    eprintln!(
        "normalize: {accepted} accepted ({}), {rejected} rejected ({})",
        counts(&by_type),
        counts(&by_rule)
    );
    Ok(code)
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
    let queue = Queue::open(&cfg.queue.path).await?;
    let cancel = tokio_util::sync::CancellationToken::new();
    let mut code = exit::OK;
    for path in files {
        let name = path
            .file_name()
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| path.clone());
        let settings = Settings::for_file(&cfg, &name, owner, kind);
        let opened = match open_input(path) {
            Ok(Input::File(f)) => Ok(f),
            Ok(Input::Stdin) => spool_stdin(cfg.watch.max_decompressed_bytes),
            Err(e) => Err(e),
        };
        let mut file = match opened {
            Ok(f) => f,
            Err(e) => {
                eprintln!("error: {}: {e}", path.display());
                code = exit::ERROR;
                continue;
            }
        };
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
            })
            .await?;
        let report = intake::ingest(
            &queue,
            id,
            file,
            path,
            &settings,
            intake::Start::default(),
            &cancel,
        )
        .await?;
        let (state, error) = report
            .end
            .file_state()
            .unwrap_or((FileState::Failed, Some("stopped before the end".into())));
        queue
            .file_finish(id, state, report.format, error.as_deref(), false)
            .await?;
        println!(
            "{}: {} rows: {} queued, {} duplicate, {} rejected (owner {})",
            path.display(),
            report.rows_read,
            report.queued,
            report.duplicates,
            report.rejected,
            settings.owner
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
        if let Some(e) = error {
            eprintln!("error: {}: {e}", path.display());
            code = exit::ERROR;
        }
    }
    queue.close().await;
    Ok(code)
}
