//! The subcommands: each parses what it needs, calls into the library, and
//! maps the result to an exit code (0 ok, 1 partial, 2 config or input error).

use std::collections::BTreeMap;
use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use serde_json::json;

use crate::api::{Client, Clock, Outcome};
use crate::cli::{Cli, Command, ConfigArg, SimArgs};
use crate::config::{self, Config};
use crate::exit;
use crate::feed::{self, ReadOptions};
use crate::indicator::IndicatorType;
use crate::intake::{self, Settings};
use crate::normalize::FeedDefaults;
use crate::queue::{FileState, NewFile, Queue, RetryFilter};
use crate::sim::{SimConfig, SimOwner, Simulator};

pub fn main(cli: Cli) -> ExitCode {
    // The demo prints its own report: only warnings and errors go beside it.
    let default_filter = if matches!(cli.command, Command::Demo { .. }) {
        "warn"
    } else {
        "info"
    };
    crate::logs::init(cli.log_format, default_filter);
    // Commands that only print (and open no sockets) end quietly when their
    // reader goes away (`tc-ingest normalize x | head`), as Unix tools do.
    // Rust ignores SIGPIPE by default, which the network commands need.
    if matches!(
        cli.command,
        Command::Normalize { .. }
            | Command::Status { .. }
            | Command::CheckConfig { .. }
            | Command::Enqueue { .. }
            | Command::Retry { .. }
            | Command::Purge { .. }
    ) {
        // SAFETY: restoring the default disposition of a signal, before any
        // thread is started, has no memory-safety preconditions.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(exit::ERROR);
        }
    };
    let code = rt.block_on(dispatch(cli.command));
    ExitCode::from(code)
}

async fn dispatch(cmd: Command) -> u8 {
    let result = match cmd {
        Command::CheckConfig { config } => check_config(&config),
        Command::Ping { config } => ping(&config).await,
        Command::Sim(args) => sim(args).await,
        Command::Normalize { kind, files } => normalize_files(kind.as_deref(), &files),
        Command::Run { config, once } => {
            Ok(crate::app::run(&Config::locate(config.config.as_deref()), once).await)
        }
        Command::Enqueue {
            config,
            owner,
            kind,
            files,
        } => enqueue(&config, owner.as_deref(), kind.as_deref(), &files).await,
        Command::Status { config, json } => status(&config, json).await,
        Command::Retry {
            config,
            class,
            owner,
            file,
        } => retry(&config, RetryFilter { class, owner, file }).await,
        Command::Purge {
            config,
            delivered_before,
        } => purge(&config, delivered_before).await,
        Command::Demo { keep } => crate::demo::run(keep).await,
        Command::Bench {
            which,
            n,
            rate,
            seconds,
        } => crate::bench::run(which, n, rate, seconds).await,
    };
    result.unwrap_or_else(|e| {
        eprintln!("error: {e:#}");
        exit::ERROR
    })
}

/// Loads the config or prints every error.
pub fn load_config(arg: &ConfigArg) -> anyhow::Result<Config> {
    let path = Config::locate(arg.config.as_deref());
    Config::load(&path)
        .map_err(|e| anyhow::anyhow!("invalid configuration {}:\n{e}", path.display()))
}

fn check_config(arg: &ConfigArg) -> anyhow::Result<u8> {
    let cfg = load_config(arg)?;
    print!("{}", config::render(&cfg));
    Ok(exit::OK)
}

async fn ping(arg: &ConfigArg) -> anyhow::Result<u8> {
    let cfg = load_config(arg)?;
    let client = Client::new(&cfg.api, Arc::new(Clock::default()))?;
    match client.owners().await {
        Ok(owners) => {
            println!("connected to {} as {}", cfg.api.base_url, cfg.api.access_id);
            println!("owners visible to this API user:");
            for o in &owners {
                let mark = if o.name == cfg.api.owner {
                    "  (api.owner)"
                } else {
                    ""
                };
                println!("  {:>6}  {:<14} {}{mark}", o.id, o.kind, o.name);
            }
            if !owners.iter().any(|o| o.name == cfg.api.owner) {
                println!("warning: api.owner {:?} is not among them", cfg.api.owner);
                return Ok(exit::PARTIAL);
            }
            Ok(exit::OK)
        }
        Err(outcome) => {
            eprintln!("ping failed: {} ({})", outcome.class(), outcome.message());
            if let Some(advice) = outcome.advice() {
                eprintln!("what to check: {advice}");
            }
            if let Outcome::TimestampOutOfRange {
                server_date: Some(t),
            } = &outcome
            {
                let skew = t
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs() as i64)
                    .unwrap_or(0)
                    - crate::api::sign::unix_now();
                eprintln!("the server's clock is {skew:+} s from ours");
            }
            Ok(exit::ERROR)
        }
    }
}

async fn sim(a: SimArgs) -> anyhow::Result<u8> {
    let mut cfg = SimConfig {
        access_id: a.access_id,
        secret: a.secret,
        base_path: a.base_path,
        ..SimConfig::default()
    };
    if !a.owners.is_empty() {
        cfg.owners = a
            .owners
            .iter()
            .enumerate()
            .map(|(i, name)| SimOwner {
                id: i as i64,
                name: name.clone(),
                kind: "Organization".into(),
            })
            .collect();
    }
    cfg.faults.error_rate = a.error_rate;
    cfg.faults.error_status = a.error_status;
    cfg.faults.latency_ms = a.latency_ms;
    cfg.faults.drop_rate = a.drop_rate;
    cfg.faults.lost_response_rate = a.lost_response_rate;
    cfg.faults.clock_skew_secs = a.clock_skew_secs;
    cfg.faults.denied_owners = a.denied_owners;
    let listener = tokio::net::TcpListener::bind(a.listen)
        .await
        .with_context(|| format!("binding {}", a.listen))?;
    let owners: Vec<String> = cfg.owners.iter().map(|o| o.name.clone()).collect();
    let access_id = cfg.access_id.clone();
    let sim = Simulator::start(cfg, listener)?;
    println!("ThreatConnect simulator listening on {}", sim.base_url());
    println!("  access id: {access_id}   owners: {}", owners.join(", "));
    println!("  inspect: GET /_sim/indicators, GET /_sim/stats; faults: POST /_sim/faults");
    tokio::signal::ctrl_c().await?;
    sim.stop().await;
    Ok(exit::OK)
}

/// Parses `--type`.
pub fn parse_kind(kind: Option<&str>) -> anyhow::Result<Option<IndicatorType>> {
    kind.map(|k| {
        IndicatorType::parse_alias(k).ok_or_else(|| anyhow::anyhow!("unknown indicator type {k:?}"))
    })
    .transpose()
}

fn normalize_files(kind: Option<&str>, files: &[std::path::PathBuf]) -> anyhow::Result<u8> {
    // Only the type default applies: no feed rule, no owner.
    let settings = Settings {
        owner: String::new(),
        defaults: FeedDefaults {
            kind: parse_kind(kind)?,
            ..FeedDefaults::default()
        },
        read: ReadOptions::default(),
        dedup_window: std::time::Duration::ZERO,
    };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut by_type: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut by_rule: BTreeMap<crate::normalize::RejectRule, u64> = BTreeMap::new();
    let mut code = exit::OK;
    let mut write_err: Option<std::io::Error> = None;
    for path in files {
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
                    emit(
                        json!({"file": name, "line": job.line, "type": kind, "summary": job.indicator.summary()}),
                    );
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

/// `name n, name n` (or `none`), for the counts line.
fn counts<K: std::fmt::Display>(m: &BTreeMap<K, u64>) -> String {
    if m.is_empty() {
        return "none".into();
    }
    m.iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

async fn enqueue(
    arg: &ConfigArg,
    owner: Option<&str>,
    kind: Option<&str>,
    files: &[std::path::PathBuf],
) -> anyhow::Result<u8> {
    let cfg = load_config(arg)?;
    let kind = parse_kind(kind)?;
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
        let report = intake::ingest(&queue, id, file, path, &settings, 0, &cancel).await?;
        let (state, error) = report
            .end
            .file_state()
            .unwrap_or((FileState::Failed, Some("stopped before the end".into())));
        queue
            .file_finish(id, state, report.format, error.as_deref())
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

async fn status(arg: &ConfigArg, as_json: bool) -> anyhow::Result<u8> {
    let cfg = load_config(arg)?;
    if !cfg.queue.path.exists() {
        anyhow::bail!(
            "no queue at {} (queue.path): the daemon has not run yet",
            cfg.queue.path.display()
        );
    }
    let queue = Queue::open(&cfg.queue.path).await?;
    let stats = queue.stats().await?;
    let path = cfg.queue.path.display().to_string();
    if as_json {
        println!(
            "{}",
            serde_json::to_string_pretty(&crate::status::json(&stats, &path))?
        );
    } else {
        print!("{}", crate::status::table(&stats, &path));
    }
    queue.close().await;
    Ok(exit::OK)
}

async fn retry(arg: &ConfigArg, filter: RetryFilter) -> anyhow::Result<u8> {
    let cfg = load_config(arg)?;
    let queue = Queue::open(&cfg.queue.path).await?;
    let n = queue.requeue_dead(&filter).await?;
    println!("requeued {n} buried job(s)");
    queue.close().await;
    Ok(exit::OK)
}

async fn purge(arg: &ConfigArg, before: std::time::Duration) -> anyhow::Result<u8> {
    let cfg = load_config(arg)?;
    let queue = Queue::open(&cfg.queue.path).await?;
    let n = queue.prune_delivered(before).await?;
    println!(
        "deleted {n} delivered job(s) older than {}",
        humantime::format_duration(before)
    );
    queue.close().await;
    Ok(exit::OK)
}
