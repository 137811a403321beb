//! The daemon's lifecycle sweeps, run by the maintenance tick: indicators
//! whose source-given end of validity came (each tick, one index probe
//! when none did), each named feed's `max_age` (at most hourly, from the
//! time recorded in the queue, so a restart does not sweep again), and the
//! named feeds' health (gauges, and one log line per STALE transition).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::config::{Config, FeedLifecycle, FeedRule};
use crate::metrics::{FeedGauges, Metrics};
use crate::names::JobAction;
use crate::queue::{FeedHealth, Queue, Retiring, now_ms};

/// A named feed's `max_age` is swept at most this often (or every
/// `max_age`, when shorter).
pub const SWEEP_EVERY: Duration = Duration::from_secs(3600);
/// Feed health is read this often (it counts the feeds' files).
const HEALTH_EVERY: Duration = Duration::from_secs(60);

/// How a feed with this lifecycle retires.
pub fn retiring_by(l: &FeedLifecycle) -> Retiring<'_> {
    Retiring {
        action: JobAction::retiring(l.retire),
        tag: &l.retire_tag,
    }
}

/// How `rule`'s feed retires (the default without one).
pub fn retiring(rule: Option<&FeedRule>) -> Retiring<'_> {
    rule.map_or_else(Retiring::default, |r| retiring_by(&r.lifecycle))
}

/// The named feed rule called `name`.
pub fn named<'a>(cfg: &'a Config, name: &str) -> Option<&'a FeedRule> {
    cfg.feeds.iter().find(|r| r.name.as_deref() == Some(name))
}

/// The sweeps' memory between ticks.
#[derive(Debug, Default)]
pub struct Sweeper {
    /// Each named feed's health as last told.
    stale: HashMap<String, bool>,
    health_read: Option<Instant>,
}

impl Sweeper {
    /// One maintenance tick's sweeps.
    ///
    /// # Errors
    /// Database errors.
    pub async fn tick(
        &mut self,
        cfg: &Config,
        queue: &Queue,
        metrics: &Metrics,
    ) -> anyhow::Result<()> {
        let now = now_ms();
        let expired = queue
            .sweep_expired(now, |feed| retiring(feed.and_then(|f| named(cfg, f))))
            .await?;
        if expired.queued > 0 || expired.kept > 0 {
            tracing::info!(
                retire_jobs = expired.queued,
                kept_by_other_feeds = expired.kept,
                "indicators past the end of validity their source gave: retiring"
            );
        }
        for rule in &cfg.feeds {
            let (Some(name), Some(max_age)) = (&rule.name, rule.lifecycle.max_age) else {
                continue;
            };
            let due = queue
                .feed_swept_at(name)
                .await?
                .is_none_or(|at| now - at >= SWEEP_EVERY.min(max_age).as_millis() as i64);
            if !due {
                continue;
            }
            let cutoff = now - max_age.as_millis() as i64;
            let done = queue.sweep_aged(name, cutoff, retiring(Some(rule))).await?;
            if done.queued > 0 || done.kept > 0 {
                tracing::info!(
                    feed = %name,
                    retire_jobs = done.queued,
                    kept_by_other_feeds = done.kept,
                    max_age = %humantime::format_duration(max_age),
                    "indicators no file of the feed listed within max_age: retiring"
                );
            }
        }
        if self.health_read.is_none_or(|t| t.elapsed() >= HEALTH_EVERY) {
            self.health_read = Some(Instant::now());
            self.health(cfg, queue, metrics, now).await?;
        }
        Ok(())
    }

    /// The named feeds' gauges, and a line per STALE transition.
    async fn health(
        &mut self,
        cfg: &Config,
        queue: &Queue,
        metrics: &Metrics,
        now: i64,
    ) -> anyhow::Result<()> {
        // A reload may have named, renamed or removed feeds.
        let names: Vec<&str> = cfg.feeds.iter().filter_map(|r| r.name.as_deref()).collect();
        queue.declare_feeds(&names).await?;
        // Sweeps and withdrawals change what feeds hold between files.
        queue.count_members(None).await?;
        for feed in queue.feed_states().await? {
            let rule = named(cfg, &feed.name);
            let stale = rule
                .and_then(|r| r.lifecycle.stale_after)
                .is_some_and(|s| feed.health(s, now) == FeedHealth::Stale);
            metrics.feed_gauges(
                &feed.name,
                FeedGauges {
                    stale,
                    held: feed.held.is_some(),
                    retired: feed.retired(),
                    members: feed.members,
                },
            );
            let before = self.stale.insert(feed.name.clone(), stale);
            match (before, stale) {
                (Some(false) | None, true) => tracing::warn!(
                    feed = %feed.name,
                    last_file = %feed.last_file_at.map_or_else(|| "never".into(), rfc3339),
                    "feed STALE: no file within its stale_after"
                ),
                (Some(true), false) => {
                    tracing::info!(feed = %feed.name, "feed flowing again");
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// Unix ms as RFC 3339 (seconds), for a log line.
fn rfc3339(ms: i64) -> String {
    let at = std::time::UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0));
    humantime::format_rfc3339_seconds(at).to_string()
}
