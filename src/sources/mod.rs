//! Pull sources: what the daemon fetches itself (`[[sources]]`: TAXII 2.1
//! collections, HTTP(S) documents, MISP feeds). Whatever a source fetches
//! is written into `watch.dir/<name>/` (temporary name, sync, rename, sync
//! of the directory) where intake takes it as any dropped file; the
//! source's state (cursor, validators, events, health) lives in the queue
//! and moves only after the file is in place. One task per source: a
//! failing source backs off alone and never stops the others, intake or
//! delivery; only a queue error stops the daemon.

mod document;
mod fetch;
mod misp;
mod spool;
mod taxii;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

pub use fetch::{FetchClass, FetchError, Fetcher};
pub use taxii::{ApiRoot, Collection, MEDIA_TYPE, discover};

use crate::config::{Config, SourceConfig, SourceKind};
use crate::metrics::{Metrics, SourcePoll};
use crate::queue::{Queue, SourceAdvance, SourceHealth, SourceState, now_ms};
use spool::Spool;

/// The first wait after a failure; it doubles up to the source's interval.
const BACKOFF_BASE: Duration = Duration::from_secs(5);
/// The longest `Retry-After` honoured.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

/// Why a poll stopped: the source's failure (data: recorded, backed off),
/// or the queue's (the daemon's: it stops).
#[derive(Debug)]
pub(crate) enum Failure {
    Fetch(FetchError),
    Queue(anyhow::Error),
}

impl From<FetchError> for Failure {
    fn from(e: FetchError) -> Self {
        Failure::Fetch(e)
    }
}

/// What one poll brought.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Polled {
    pub files: u64,
    pub objects: u64,
    pub bytes: u64,
    /// Nothing new (a 304, or the same content again).
    pub unchanged: bool,
    /// MISP events the manifest lists but the feed did not serve.
    pub missing: u64,
}

impl Polled {
    fn unchanged() -> Self {
        Self {
            unchanged: true,
            ..Self::default()
        }
    }

    fn add(&mut self, a: &SourceAdvance) {
        self.files += a.files;
        self.objects += a.objects;
        self.bytes += a.bytes;
    }
}

/// What one poll needs.
pub(crate) struct Ctx<'a> {
    cfg: &'a SourceConfig,
    fetcher: &'a Fetcher,
    spool: &'a Spool,
    queue: &'a Queue,
    /// The source's state as the poll began.
    state: SourceState,
}

impl Ctx<'_> {
    /// Records a step once what it wrote is durable.
    async fn advance(&self, a: &SourceAdvance) -> Result<(), Failure> {
        self.queue
            .source_advance(&self.cfg.name, a)
            .await
            .map_err(Failure::Queue)
    }
}

/// What a source's state is of: its URL, and a TAXII collection.
fn origin(cfg: &SourceConfig) -> String {
    format!(
        "{} {}",
        cfg.url,
        cfg.collection.as_deref().unwrap_or_default()
    )
}

/// One poll of `cfg`, recorded in the queue and the metrics; what it
/// brought (or why it failed) and the source's state after it.
///
/// # Errors
/// Queue errors only; the source's own failure is the inner result.
pub async fn poll(
    cfg: &SourceConfig,
    watch_dir: &Path,
    queue: &Queue,
    metrics: &Metrics,
) -> anyhow::Result<(Result<Polled, FetchError>, SourceState)> {
    let state = queue
        .source_open(&cfg.name, cfg.kind.as_str(), &origin(cfg))
        .await?;
    let outcome = async {
        let fetcher = Fetcher::new(cfg)?;
        let spool = Spool::new(watch_dir, &cfg.name)?;
        let ctx = Ctx {
            cfg,
            fetcher: &fetcher,
            spool: &spool,
            queue,
            state,
        };
        match cfg.kind {
            SourceKind::Taxii => taxii::poll(&ctx).await,
            SourceKind::Http => document::poll(&ctx).await,
            SourceKind::Misp => misp::poll(&ctx).await,
        }
    }
    .await;
    let result = match outcome {
        Ok(p) => Ok(p),
        Err(Failure::Fetch(e)) => Err(e),
        Err(Failure::Queue(e)) => return Err(e),
    };
    queue
        .source_polled(
            &cfg.name,
            result
                .as_ref()
                .err()
                .map(|e| (e.class.as_str(), e.message.as_str())),
        )
        .await?;
    let polled = result.as_ref().ok();
    metrics.source_poll(&SourcePoll {
        source: &cfg.name,
        result: match &result {
            Ok(p) if p.files == 0 => "unchanged",
            Ok(_) => "ok",
            Err(e) => e.class.as_str(),
        },
        files: polled.map_or(0, |p| p.files),
        objects: polled.map_or(0, |p| p.objects),
        bytes: polled.map_or(0, |p| p.bytes),
    });
    Ok((result, queue.source_state(&cfg.name).await?))
}

/// The wait before the next poll after a failure: the server's
/// `Retry-After`, else doubling from [`BACKOFF_BASE`] with jitter, never
/// over the interval.
fn retry_wait(e: &FetchError, failures: u32, interval: Duration) -> Duration {
    if let Some(after) = e.retry_after {
        return after.clamp(Duration::from_secs(1), MAX_RETRY_AFTER);
    }
    backoff(failures, interval).mul_f64(0.5 + fastrand::f64() / 2.0)
}

/// The longest wait after `failures` failures in a row.
fn backoff(failures: u32, interval: Duration) -> Duration {
    BACKOFF_BASE
        .saturating_mul(1 << failures.saturating_sub(1).min(20))
        .min(interval)
}

/// The sources of the running config, each in its own task, restarted
/// when its config changes (SIGHUP).
pub struct Sources {
    cfg: watch::Receiver<Arc<Config>>,
    queue: Queue,
    metrics: Arc<Metrics>,
    /// This daemon's id on the queue: on a shared queue one daemon polls
    /// a source at a time, holding its role.
    member: String,
}

impl Sources {
    pub fn new(
        cfg: watch::Receiver<Arc<Config>>,
        queue: Queue,
        metrics: Arc<Metrics>,
        member: String,
    ) -> Self {
        Self {
            cfg,
            queue,
            metrics,
            member,
        }
    }

    /// Polls every source once, in turn (`run --once`); the names of those
    /// that failed.
    ///
    /// # Errors
    /// Queue errors.
    pub async fn poll_all(&self, cancel: &CancellationToken) -> anyhow::Result<Vec<String>> {
        let cfg = self.cfg.borrow().clone();
        let mut failed = Vec::new();
        for source in &cfg.sources {
            if cancel.is_cancelled() {
                break;
            }
            let result = tokio::select! {
                () = cancel.cancelled() => break,
                r = poll(source, &cfg.watch.dir, &self.queue, &self.metrics) => r?.0,
            };
            if let Err(e) = &result {
                tracing::warn!(source = %source.name, class = %e.class, error = %e.message, "source failed");
                failed.push(source.name.clone());
            }
            log_poll(source, &result);
        }
        Ok(failed)
    }

    /// Runs until `cancel`.
    ///
    /// # Errors
    /// A source's queue error.
    pub async fn run(mut self, cancel: CancellationToken) -> anyhow::Result<()> {
        let mut running: HashMap<String, (SourceConfig, CancellationToken)> = HashMap::new();
        let mut tasks: JoinSet<anyhow::Result<()>> = JoinSet::new();
        let mut names: HashMap<tokio::task::Id, String> = HashMap::new();
        loop {
            let cfg = self.cfg.borrow_and_update().clone();
            running.retain(|name, (old, stop)| {
                let keep = cfg.sources.iter().any(|s| s == old);
                if !keep {
                    tracing::info!(source = %name, "source stopped (configuration changed)");
                    stop.cancel();
                }
                keep
            });
            for source in &cfg.sources {
                if running.contains_key(&source.name) {
                    continue;
                }
                let stop = cancel.child_token();
                running.insert(source.name.clone(), (source.clone(), stop.clone()));
                let (s, dir, q, m, me) = (
                    source.clone(),
                    cfg.watch.dir.clone(),
                    self.queue.clone(),
                    self.metrics.clone(),
                    self.member.clone(),
                );
                let id = tasks.spawn(source_loop(s, dir, q, m, me, stop)).id();
                names.insert(id, source.name.clone());
            }
            tokio::select! {
                () = cancel.cancelled() => {
                    while let Some(joined) = tasks.join_next().await {
                        joined.map_err(|e| anyhow::anyhow!("a source task panicked: {e}"))??;
                    }
                    return Ok(());
                }
                changed = self.cfg.changed() => {
                    if changed.is_err() {
                        cancel.cancelled().await;
                    }
                }
                Some(joined) = tasks.join_next_with_id() => {
                    let id = match &joined {
                        Ok((id, _)) => *id,
                        Err(e) => e.id(),
                    };
                    let name = names.remove(&id).unwrap_or_default();
                    match joined {
                        Ok((_, result)) => result?,
                        // A bug met on a server's answer stops that source,
                        // recorded as its failure; it starts again (after
                        // its backoff), the others never stop.
                        Err(e) if e.is_panic() => {
                            tracing::error!(source = %name, error = %e, "source task panicked: restarted after its backoff");
                            self.queue.source_polled(&name, Some(("panic", "the source task panicked (a bug): see the log"))).await?;
                            running.remove(&name);
                        }
                        Err(_) => {}
                    }
                }
            }
        }
    }
}

/// How long a source's role outlives its holder's last renewal (renewed
/// every third of it while a poll runs).
const ROLE_TTL: Duration = Duration::from_secs(30);

/// How soon a daemon asks again for a source another daemon polls.
const ROLE_RETRY: Duration = Duration::from_secs(5);

/// When the next poll is due after `state`'s last attempt (now if never).
fn next_poll_in(cfg: &SourceConfig, state: &SourceState) -> Duration {
    state.last_attempt_at.map_or(Duration::ZERO, |at| {
        let after = match state.consecutive_failures {
            0 => cfg.interval,
            n => backoff(n, cfg.interval),
        };
        let due = at.saturating_add(i64::try_from(after.as_millis()).unwrap_or(i64::MAX));
        Duration::from_millis(u64::try_from(due - now_ms()).unwrap_or(0))
    })
}

/// Polls `cfg` while holding its role (renewed as the poll goes): one
/// daemon at a time polls a source. `None`: another daemon holds it.
async fn poll_holding(
    cfg: &SourceConfig,
    watch_dir: &Path,
    queue: &Queue,
    metrics: &Metrics,
    member: &str,
) -> anyhow::Result<Option<(Result<Polled, FetchError>, SourceState)>> {
    let role = crate::queue::source_role(&cfg.name);
    if !queue.hold_role(&role, member, ROLE_TTL).await? {
        return Ok(None);
    }
    // The last holder may have polled since this daemon last looked.
    let state = queue.source_state(&cfg.name).await?;
    if !next_poll_in(cfg, &state).is_zero() {
        queue.release_role(&role, member).await?;
        return Ok(None);
    }
    let polled = poll(cfg, watch_dir, queue, metrics);
    tokio::pin!(polled);
    let result = loop {
        tokio::select! {
            r = &mut polled => match r {
                // This daemon stalled past the role and another took the
                // source over: its step was refused, the other's stands.
                Err(e) if e.is::<crate::queue::Superseded>() => break None,
                r => break Some(r?),
            },
            () = tokio::time::sleep(ROLE_TTL / 3) => {
                if !queue.hold_role(&role, member, ROLE_TTL).await? {
                    break None;
                }
            }
        }
    };
    if result.is_none() {
        tracing::warn!(source = %cfg.name, "another daemon took over this source: this poll stops");
        return Ok(None);
    }
    queue.release_role(&role, member).await?;
    Ok(result)
}

/// One source: polls when due (a restart does not poll again before the
/// interval since the last poll is over), logs when its health changes.
async fn source_loop(
    cfg: SourceConfig,
    watch_dir: PathBuf,
    queue: Queue,
    metrics: Arc<Metrics>,
    member: String,
    cancel: CancellationToken,
) -> anyhow::Result<()> {
    let mut state = queue
        .source_open(&cfg.name, cfg.kind.as_str(), &origin(&cfg))
        .await?;
    let mut health = state.health(cfg.stale_after, now_ms());
    metrics.source_health(&cfg.name, health, state.last_success_at);
    // Temporaries of a fetch that died with the process.
    if let Ok(spool) = Spool::new(&watch_dir, &cfg.name) {
        spool.clean();
    }
    // Not before the interval since the last poll, or its backoff after a
    // failure: a restart does not hammer a server.
    let mut wait = next_poll_in(&cfg, &state);
    tracing::info!(source = %cfg.name, kind = %cfg.kind, url = %cfg.url, first_poll_in_secs = wait.as_secs(), "source started");
    loop {
        // Until the poll is due, waking when the source turns stale (an
        // error-free source bringing nothing new is what users miss).
        let due = tokio::time::Instant::now() + wait;
        loop {
            let until = match health {
                SourceHealth::Ok => stale_deadline(&state, cfg.stale_after).min(due),
                _ => due,
            };
            tokio::select! {
                () = cancel.cancelled() => return Ok(()),
                () = tokio::time::sleep_until(until) => {}
            }
            if tokio::time::Instant::now() >= due {
                break;
            }
            state = queue.source_state(&cfg.name).await?;
            note_health(&cfg, &metrics, &mut health, &state, None);
        }
        // A reload or shutdown ends a poll where it is: what it made
        // durable is recorded, the rest is fetched again.
        let result;
        (result, state) = match tokio::select! {
            () = cancel.cancelled() => return Ok(()),
            r = poll_holding(&cfg, &watch_dir, &queue, &metrics, &member) => r?,
        } {
            Some(polled) => polled,
            // Another daemon polls it (or just did): ask again soon, from
            // the state it leaves.
            None => {
                state = queue.source_state(&cfg.name).await?;
                wait = next_poll_in(&cfg, &state).max(ROLE_RETRY);
                continue;
            }
        };
        log_poll(&cfg, &result);
        note_health(&cfg, &metrics, &mut health, &state, result.as_ref().err());
        wait = match &result {
            Ok(_) => cfg.interval,
            Err(e) => retry_wait(e, state.consecutive_failures, cfg.interval),
        };
    }
}

/// When `state` turns stale if nothing new comes.
fn stale_deadline(state: &SourceState, stale_after: Duration) -> tokio::time::Instant {
    let since = state.newest_data_at.unwrap_or(state.created_at);
    let at = since.saturating_add(i64::try_from(stale_after.as_millis()).unwrap_or(i64::MAX));
    let left = u64::try_from(at.saturating_sub(now_ms())).unwrap_or(0);
    tokio::time::Instant::now() + Duration::from_millis(left.saturating_add(1))
}

/// A change of health: a WARN line turning failing or stale, an INFO line
/// recovering (never a line per poll); the gauges follow.
fn note_health(
    cfg: &SourceConfig,
    metrics: &Metrics,
    was: &mut SourceHealth,
    state: &SourceState,
    error: Option<&FetchError>,
) {
    let now = state.health(cfg.stale_after, now_ms());
    metrics.source_health(&cfg.name, now, state.last_success_at);
    if now == *was {
        return;
    }
    match (now, error) {
        (SourceHealth::Ok, _) => {
            tracing::info!(source = %cfg.name, was = %was, "source recovered");
        }
        (SourceHealth::Failing, Some(e)) => {
            tracing::warn!(source = %cfg.name, class = %e.class, error = %e.message, failures = state.consecutive_failures, "source failing");
        }
        _ => tracing::warn!(
            source = %cfg.name,
            stale_after_secs = cfg.stale_after.as_secs(),
            "source stale: nothing new within stale_after"
        ),
    }
    *was = now;
}

fn log_poll(cfg: &SourceConfig, result: &Result<Polled, FetchError>) {
    match result {
        Ok(p) if p.files > 0 => tracing::info!(
            source = %cfg.name,
            files = p.files,
            objects = p.objects,
            bytes = p.bytes,
            unchanged = p.unchanged,
            "source fetched"
        ),
        Ok(_) => tracing::debug!(source = %cfg.name, "source polled: nothing new"),
        Err(e) => {
            tracing::debug!(source = %cfg.name, class = %e.class, error = %e.message, "poll failed")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_back_off_to_the_interval_and_retry_after_wins() {
        let e = FetchError::new(FetchClass::ServerError, "x");
        let hour = Duration::from_secs(3600);
        let first = retry_wait(&e, 1, hour);
        assert!(first >= Duration::from_millis(2500) && first <= BACKOFF_BASE);
        assert!(retry_wait(&e, 30, hour) <= hour);
        assert!(retry_wait(&e, 30, hour) >= hour / 2);
        let throttled = FetchError {
            retry_after: Some(Duration::from_secs(120)),
            ..FetchError::new(FetchClass::Throttled, "x")
        };
        assert_eq!(retry_wait(&throttled, 1, hour), Duration::from_secs(120));
    }
}
