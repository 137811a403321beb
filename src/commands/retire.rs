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

pub(super) async fn retire(arg: &ConfigArg, feed: &str, confirm: bool) -> anyhow::Result<u8> {
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
        match queue.confirm_held(feed, retiring(Some(rule))).await? {
            Some(done) => println!(
                "released: {} retire jobs queued ({}), {} left alone (another feed of the owner holds them)",
                done.queued, rule.lifecycle.retire, done.kept
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
        println!("dry run: nothing changed; `--confirm` retires them");
        exit::OK
    };
    queue.close().await;
    Ok(code)
}
