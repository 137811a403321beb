//! The commands that read or repair the queue without a daemon: `status`
//! (once, as JSON, or `--watch`), `why`, `retry`, `purge`.

use std::collections::BTreeMap;
use std::io::Write;

use super::load_config;
use crate::cli::ConfigArg;
use crate::config::Config;
use crate::exit;
use crate::queue::{Queue, RetryFilter};

/// `name n, name n` (or `none`), for the counts line.
pub(super) fn counts<K: std::fmt::Display>(m: &BTreeMap<K, u64>) -> String {
    if m.is_empty() {
        return "none".into();
    }
    m.iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The configured sources' `stale_after`, for their health.
pub(super) fn source_limits(cfg: &Config) -> Vec<(String, std::time::Duration)> {
    cfg.sources
        .iter()
        .map(|s| (s.name.clone(), s.stale_after))
        .collect()
}

/// The named feeds and their `stale_after`, for their health.
pub(super) fn feed_limits(cfg: &Config) -> Vec<(String, Option<std::time::Duration>)> {
    cfg.feeds
        .iter()
        .filter_map(|r| Some((r.name.clone()?, r.lifecycle.stale_after)))
        .collect()
}

/// Opens an existing queue (commands that only read or repair it).
pub(super) async fn open_existing(cfg: &Config) -> anyhow::Result<Queue> {
    if let Some(path) = cfg.queue.sqlite_path()
        && !path.exists()
    {
        anyhow::bail!(
            "no queue at {} (queue.path): the daemon has not run yet",
            path.display()
        );
    }
    open(cfg).await
}

/// Opens (creating if needed) the queue of `cfg`.
pub(super) async fn open(cfg: &Config) -> anyhow::Result<Queue> {
    Queue::connect(&cfg.queue.target().map_err(anyhow::Error::msg)?).await
}

pub(super) async fn status(arg: &ConfigArg, as_json: bool) -> anyhow::Result<u8> {
    let cfg = load_config(arg)?;
    let queue = open_existing(&cfg).await?;
    let view = crate::status::StatusView::read(&queue)
        .await?
        .with_sources(&source_limits(&cfg))
        .with_feeds(&feed_limits(&cfg));
    if as_json {
        println!(
            "{}",
            serde_json::to_string_pretty(&crate::status::json(&view))?
        );
    } else {
        print!("{}", crate::status::table(&view));
    }
    queue.close().await;
    Ok(exit::OK)
}

/// `status --watch`: a frame every `interval` (the screen cleared first on
/// a terminal), `count` frames or until Ctrl-C.
pub(super) async fn status_watch(
    arg: &ConfigArg,
    interval: std::time::Duration,
    count: Option<u64>,
) -> anyhow::Result<u8> {
    let cfg = load_config(arg)?;
    let queue = open_existing(&cfg).await?;
    let clear = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let mut prev: Option<crate::status::StatusView> = None;
    let mut frames = 0u64;
    loop {
        let view = crate::status::StatusView::read(&queue)
            .await?
            .with_sources(&source_limits(&cfg))
            .with_feeds(&feed_limits(&cfg));
        let frame = crate::status::watch_frame(&view, prev.as_ref());
        {
            let mut out = std::io::stdout().lock();
            if clear {
                write!(out, "\x1b[H\x1b[2J")?;
            } else if frames > 0 {
                writeln!(out)?;
            }
            write!(out, "{frame}")?;
            out.flush()?;
        }
        prev = Some(view);
        frames += 1;
        if count.is_some_and(|c| frames >= c) {
            break;
        }
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = tokio::time::sleep(interval) => {}
        }
    }
    queue.close().await;
    Ok(exit::OK)
}

pub(super) async fn why(arg: &ConfigArg, what: &str) -> anyhow::Result<u8> {
    let cfg = load_config(arg)?;
    let queue = open_existing(&cfg).await?;
    let allowlist = super::allowlist(&cfg)?;
    let (text, found) = crate::why::explain(&queue, &cfg, &allowlist, what).await?;
    print!("{text}");
    queue.close().await;
    Ok(if found { exit::OK } else { exit::PARTIAL })
}

pub(super) async fn retry(
    arg: &ConfigArg,
    filter: RetryFilter,
    dry_run: bool,
) -> anyhow::Result<u8> {
    let cfg = load_config(arg)?;
    let queue = open_existing(&cfg).await?;
    if let Some(f) = &filter.file
        && queue.files_named(f).await?.is_empty()
    {
        queue.close().await;
        anyhow::bail!(
            "--file {f:?}: no feed file recorded with that path or name \
             (the recorded paths: SELECT path FROM feed_files)"
        );
    }
    if let Some(name) = &filter.file {
        put_back_given_up(&queue, name, dry_run).await?;
    }
    let by_class = queue.dead_matching(&filter).await?;
    let total: u64 = by_class.values().sum();
    if dry_run {
        println!(
            "would requeue {total} buried job(s){}{}",
            if total > 0 { ": " } else { "" },
            counts(&by_class).replace("none", "")
        );
    } else {
        let n = queue.requeue_dead(&filter).await?;
        println!(
            "requeued {n} buried job(s){}{}",
            if n > 0 { ": " } else { "" },
            counts(&by_class).replace("none", "")
        );
    }
    queue.close().await;
    Ok(exit::OK)
}

/// `retry --file` of a file given up after stalled reads: the daemon is
/// asked to put it back into `processing/` and read it on from its
/// committed position (only the daemon moves files into `processing/`).
async fn put_back_given_up(queue: &Queue, name: &str, dry_run: bool) -> anyhow::Result<()> {
    let Some(f) = queue.file_given_up(name).await? else {
        return Ok(());
    };
    if dry_run {
        println!(
            "would ask the daemon to put {} back, to be read on after position {}",
            f.path, f.last_position
        );
        return Ok(());
    }
    queue.file_ask_put_back(f.id, true).await?;
    println!(
        "asked the daemon to put {} back and read it on after position {}: a running daemon \
         does at its next scan (within watch.rescan_secs), a stopped one at its start",
        f.path, f.last_position
    );
    Ok(())
}

/// `purge`: delivered jobs past an age, or waiting jobs the allowlist
/// now filters.
pub(super) async fn purge_cmd(cmd: crate::cli::Command) -> anyhow::Result<u8> {
    let crate::cli::Command::Purge {
        config,
        delivered_before,
        allowlisted,
        confirm,
        dry_run,
    } = cmd
    else {
        unreachable!("purge_cmd is given a purge");
    };
    match delivered_before {
        Some(before) if !allowlisted => purge(&config, before, dry_run).await,
        _ => purge_allowlisted(&config, confirm && !dry_run).await,
    }
}

/// `purge --allowlisted`: the waiting jobs the allowlist now filters,
/// listed (by what matched), and deleted when `delete`.
async fn purge_allowlisted(arg: &ConfigArg, delete: bool) -> anyhow::Result<u8> {
    let cfg = load_config(arg)?;
    let allowlist = super::allowlist(&cfg)?;
    let queue = open_existing(&cfg).await?;
    let mut by: BTreeMap<String, u64> = BTreeMap::new();
    let (mut after, mut deleted) = (0, 0);
    loop {
        let page = queue.waiting_values(after, 10_000).await?;
        let Some(last) = page.last() else { break };
        after = last.0;
        let mut ids = Vec::new();
        for (id, kind, value) in page {
            let Some(kind) = crate::indicator::IndicatorType::from_tc_name(&kind) else {
                continue;
            };
            let ind = crate::indicator::Indicator::from_normalized(kind, value);
            if let Some(m) = allowlist.check(&ind) {
                *by.entry(m.0.to_string()).or_default() += 1;
                ids.push(id);
            }
        }
        if delete {
            deleted += queue.delete_waiting(&ids).await?;
        }
    }
    let found: u64 = by.values().sum();
    if delete {
        println!(
            "deleted {deleted} waiting job(s) the allowlist filters ({})",
            counts(&by)
        );
    } else {
        println!(
            "would delete {found} waiting job(s) the allowlist filters ({}); add --confirm to delete them",
            counts(&by)
        );
    }
    queue.close().await;
    Ok(exit::OK)
}

async fn purge(arg: &ConfigArg, before: std::time::Duration, dry_run: bool) -> anyhow::Result<u8> {
    let cfg = load_config(arg)?;
    let queue = open_existing(&cfg).await?;
    let age = humantime::format_duration(before);
    if dry_run {
        let n = queue.delivered_before(before).await?;
        println!("would delete {n} delivered job(s) older than {age}");
    } else {
        let n = queue.prune_delivered(before).await?;
        println!("deleted {n} delivered job(s) older than {age}");
    }
    queue.close().await;
    Ok(exit::OK)
}
