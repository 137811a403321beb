//! `tc-ingest queue migrate --from sqlite:PATH`: a SQLite queue moved into
//! the PostgreSQL queue of the config.
//!
//! The SQLite file is not touched: it is copied (with its WAL) into a
//! temporary directory, and that copy is brought to the current schema and
//! read. The PostgreSQL queue must be empty; its password comes from the
//! config (a file or a systemd credential), never the command line.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use super::load_config;
use crate::cli::ConfigArg;
use crate::exit;
use crate::queue::{DaemonLock, LockHolder, Queue};

pub(super) async fn migrate(arg: &ConfigArg, from: &str) -> anyhow::Result<u8> {
    let cfg = load_config(arg)?;
    if cfg.queue.postgres.is_none() {
        bail!("queue.url is not set: the config names no PostgreSQL queue to migrate into");
    }
    let path = PathBuf::from(from.strip_prefix("sqlite:").unwrap_or(from));
    if !path.is_file() {
        bail!("--from: no SQLite queue at {}", path.display());
    }
    if let LockHolder::Daemon(pid) = DaemonLock::holder(&path)? {
        bail!(
            "a daemon runs on {} (pid {}): stop it first (systemctl stop tc-ingest)",
            path.display(),
            pid.map_or("?".into(), |p| p.to_string())
        );
    }
    let copy = tempfile::tempdir().context("a temporary directory for the copy")?;
    let source = Queue::open(&snapshot(&path, copy.path())?).await?;
    let target = super::queue::open(&cfg).await?;
    let counts = target.copy_from(&source).await?;
    source.close().await;
    target.close().await;
    println!("migrated {} into {}:", path.display(), cfg.queue.location());
    let mut total = 0;
    for (table, n) in &counts {
        println!("  {table:<16}{n:>12}");
        total += n;
    }
    println!("  {:<16}{total:>12}", "rows");
    println!(
        "{} is unchanged; point the daemons at queue.url now.",
        path.display()
    );
    Ok(exit::OK)
}

/// Copies the queue file and its WAL into `dir`: the copy is what gets
/// migrated and read.
fn snapshot(path: &Path, dir: &Path) -> anyhow::Result<PathBuf> {
    let to = dir.join("queue.db");
    std::fs::copy(path, &to).with_context(|| format!("copying {}", path.display()))?;
    let wal = PathBuf::from(format!("{}-wal", path.display()));
    if wal.exists() {
        std::fs::copy(&wal, dir.join("queue.db-wal"))
            .with_context(|| format!("copying {}", wal.display()))?;
    }
    Ok(to)
}
