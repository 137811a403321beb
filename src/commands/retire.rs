//! `tc-ingest retire --feed NAME`: a named feed's snapshot held by a
//! safeguard (failed file, many rejects, too much dropped) listed
//! (`--dry-run`, the default) or released (`--confirm`): what it dropped
//! gets retire jobs, which the daemon delivers.

use super::load_config;
use super::queue::open_existing;
use crate::cli::ConfigArg;
use crate::exit;
use crate::lifecycle::{named, retiring};

/// Values listed by a dry run, at most.
const LISTED: u32 = 50;

pub(super) async fn retire_cmd(cmd: crate::cli::Command) -> anyhow::Result<u8> {
    let crate::cli::Command::Retire {
        config,
        feed,
        confirm,
        snapshot,
        dry_run: _,
    } = cmd
    else {
        unreachable!("retire_cmd is given the retire command")
    };
    retire(&config, &feed, confirm, snapshot).await
}

async fn retire(
    arg: &ConfigArg,
    feed: &str,
    confirm: bool,
    snapshot: Option<i64>,
) -> anyhow::Result<u8> {
    let cfg = load_config(arg)?;
    let Some(rule) = named(&cfg, feed) else {
        let names: Vec<&str> = cfg.feeds.iter().filter_map(|r| r.name.as_deref()).collect();
        eprintln!(
            "no feed rule or source named {feed:?}; named: {}",
            if names.is_empty() {
                "none".to_string()
            } else {
                names.join(", ")
            }
        );
        return Ok(exit::ERROR);
    };
    let queue = open_existing(&cfg).await?;
    let state = queue
        .feed_states()
        .await?
        .into_iter()
        .find(|f| f.name == feed);
    let Some(held) = state.and_then(|s| s.held) else {
        println!("feed {feed}: no snapshot held; nothing to retire");
        queue.close().await;
        return Ok(exit::OK);
    };
    println!(
        "feed {feed}: snapshot of file #{} held since {}: {}",
        held.file_id,
        crate::status::iso(held.held_at),
        held.reason
    );
    let code = if confirm {
        if snapshot.is_some_and(|s| s != held.file_id) {
            println!(
                "not released: the snapshot held is file #{}, not #{} (a newer one came): look again",
                held.file_id,
                snapshot.unwrap_or(0)
            );
            queue.close().await;
            return Ok(exit::PARTIAL);
        }
        let released = queue
            .confirm_held(feed, held.file_id, retiring(Some(rule)))
            .await?;
        match released {
            Some(done) => println!(
                "released: {} retire jobs queued ({}); {} left alone (another feed of the owner \
                 holds them, or a source listed them again); {} creates not yet sent dropped",
                done.queued, rule.lifecycle.retire, done.kept, done.superseded
            ),
            None => println!("nothing held any more (the daemon reconciled a newer snapshot)"),
        }
        exit::OK
    } else {
        let (list, total) = queue.held_would_retire(feed, LISTED).await?;
        println!(
            "releasing it would retire {total} indicators ({}):",
            rule.lifecycle.retire
        );
        for (owner, kind, value) in &list {
            println!("  {owner}\t{kind}\t{value}");
        }
        if total > u64::from(LISTED) {
            println!("  ... and {} more", total - u64::from(LISTED));
        }
        println!(
            "dry run: nothing changed; `--confirm --snapshot {}` retires them",
            held.file_id
        );
        exit::OK
    };
    queue.close().await;
    Ok(code)
}
