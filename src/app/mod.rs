//! The running daemon: wiring, supervision, signals and shutdown order.
//!
//! `run` starts intake (the watched directory), pull sources, delivery and
//! maintenance as tasks under one supervisor. A task that stops on its own is a failure: the
//! daemon logs which and why, shuts the rest down, and exits non-zero so
//! systemd restarts it. SIGTERM/SIGINT shut down in order; a second signal
//! exits at once. SIGHUP reloads the config, keeping the old one if the new
//! one is invalid.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use sd_notify::NotifyState;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

mod maintenance;

use crate::api::{Client, Clock, Endpoints};

use crate::config::Config;
use crate::deliver::{Api, Delivery};
use crate::exit;
use crate::intake::{FileOutcome, Intake};
use crate::lifecycle::Allowlist;
use crate::metrics::Metrics;
use crate::names::ErrorClass;
use crate::queue::{DaemonLock, FileState, JobState, Queue, StateCounts, Stats, Target, now_ms};
use crate::sources::Sources;

/// How often `run --once` says what it is still waiting for.
const ONCE_WAIT_NOTICE: Duration = Duration::from_secs(30);

/// Everything a running daemon holds.
pub struct Daemon {
    pub config_path: PathBuf,
    pub queue: Queue,
    pub cfg_tx: watch::Sender<Arc<Config>>,
    pub api_tx: watch::Sender<Arc<Api>>,
    /// The allowlist of the running config, its lists loaded.
    pub allowlist_tx: watch::Sender<Arc<Allowlist>>,
    pub delivery: Delivery,
    pub intake: Option<Intake>,
    pub metrics: Arc<Metrics>,
    clock: Arc<Clock>,
    /// The queue's database, for connections of their own (the listener).
    pub target: Target,
    _lock: DaemonLock,
}

impl Daemon {
    /// Takes the queue lock, opens the queue, recovers leases and builds
    /// every part.
    ///
    /// # Errors
    /// Startup errors: directories, the lock, the database, the HTTP client.
    pub async fn start(config_path: &Path, cfg: Config) -> anyhow::Result<Self> {
        crate::intake::create_dirs(&cfg.watch)?;
        // One daemon per SQLite queue (the lock file beside it); on a
        // shared PostgreSQL queue, one daemon per watched directory (a lock
        // file beside it), each daemon known on the queue by its heartbeat.
        let lock = match cfg.queue.sqlite_path() {
            Some(path) => DaemonLock::acquire(path)?,
            None => DaemonLock::acquire_dir(&cfg.watch.processing_dir)?,
        };
        let target = cfg.queue.target().map_err(anyhow::Error::msg)?;
        let member = crate::queue::Member::this_process(&cfg.watch.dir);
        let queue = Queue::connect(&target).await?.working_for(&member.id);
        if queue.dialect() == crate::queue::Dialect::Sqlite {
            // Alone on the queue: every role is of a previous run.
            queue.clear_roles().await?;
        }
        // This daemon's leases of a run before (killed): on SQLite every
        // lease; on a shared queue, those its claims took.
        let released = queue.release_own_leases().await?;
        if released > 0 {
            tracing::info!(
                jobs = released,
                "returned leases of a previous run to pending"
            );
        }
        // A pause of a previous run is rediscovered if it still holds.
        queue.set_pause(None).await?;
        let clock = Arc::new(Clock::default());
        let api = Api {
            client: Client::new(&cfg.api, clock.clone())?,
            endpoints: Endpoints::new(cfg.api.types.clone()),
        };
        // Every series exists from the start: the job counts are read now,
        // not at the first maintenance tick.
        let metrics = Arc::new(Metrics::for_config(&cfg));
        metrics.set_jobs(&queue.state_counts(now_ms()).await?.by_state());
        metrics.set_oldest_pending(queue.oldest_pending().await?);
        metrics.set_queue_open(true);
        for note in cfg.notes() {
            tracing::warn!("{note}");
        }
        let named: Vec<&str> = cfg.feeds.iter().filter_map(|r| r.name.as_deref()).collect();
        queue.declare_feeds(&named).await?;
        let allowlist = load_allowlist(&cfg).map_err(anyhow::Error::msg)?;
        let (cfg_tx, cfg_rx) = watch::channel(Arc::new(cfg));
        let (api_tx, api_rx) = watch::channel(Arc::new(api));
        let (allowlist_tx, allowlist_rx) = watch::channel(Arc::new(allowlist));
        let delivery = Delivery::new(
            queue.clone(),
            api_rx,
            cfg_rx.clone(),
            metrics.clone(),
            member,
        );
        // On the queue from the start: `status` lists this daemon, and on
        // a shared queue the others take it into the rate.
        delivery.heartbeat().await?;
        let intake = Intake::new(cfg_rx, allowlist_rx, queue.clone(), metrics.clone());
        Ok(Self {
            config_path: config_path.to_path_buf(),
            queue,
            cfg_tx,
            api_tx,
            allowlist_tx,
            delivery,
            intake: Some(intake),
            metrics,
            clock,
            target,
            _lock: lock,
        })
    }

    /// The pull sources, following the running config.
    pub fn sources(&self) -> Sources {
        Sources::new(
            self.cfg_tx.subscribe(),
            self.queue.clone(),
            self.metrics.clone(),
            self.delivery.member.id.clone(),
        )
    }

    /// Re-reads the config file. An invalid one is refused and the old one
    /// kept; paths that need a restart are reported.
    pub fn reload(&self) -> bool {
        let new = match Config::load(&self.config_path) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(config = %self.config_path.display(), errors = %e.to_string().replace('\n', "; "), "invalid configuration: keeping the running one");
                return false;
            }
        };
        let client = match Client::new(&new.api, self.clock.clone()) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "cannot build the API client from the new configuration: keeping the running one");
                return false;
            }
        };
        let allowlist = match load_allowlist(&new) {
            Ok(a) => a,
            Err(e) => {
                tracing::error!(errors = %e.replace('\n', "; "), "invalid allowlist: keeping the running configuration");
                return false;
            }
        };
        let _ = self.allowlist_tx.send(Arc::new(allowlist));
        let old = self.cfg_tx.borrow().clone();
        if old.queue.location() != new.queue.location() || old.watch.dir != new.watch.dir {
            tracing::warn!(
                "queue.path, queue.url and watch.dir changes take effect after a restart"
            );
        }
        self.delivery
            .throttle
            .set(new.delivery.rate_per_second, new.delivery.burst);
        let _ = self.api_tx.send(Arc::new(Api {
            client,
            endpoints: Endpoints::new(new.api.types.clone()),
        }));
        let _ = self.cfg_tx.send(Arc::new(new));
        self.delivery.probe_now.notify_one();
        tracing::info!(config = %self.config_path.display(), "configuration reloaded");
        true
    }
}

/// `cfg`'s allowlist, its lists loaded and logged (warnings too).
///
/// # Errors
/// Every entry or list that fails, by key, in one text.
pub fn load_allowlist(cfg: &Config) -> Result<Allowlist, String> {
    let (list, warnings) = Allowlist::build(&cfg.allowlist)
        .map_err(|e| format!("invalid allowlist:\n{}", e.join("\n")))?;
    for w in warnings {
        tracing::warn!("allowlist: {w}");
    }
    if !list.is_empty() {
        let (entries, lists) = list.size();
        tracing::info!(entries, lists, "allowlist loaded");
    }
    Ok(list)
}

/// `tc-ingest run`: loads the config and runs until stopped (or, with
/// `once`, until the queue has nothing left to do now).
pub async fn run(config_path: &Path, once: bool) -> u8 {
    // Signal handlers first: a signal that arrives during startup is acted
    // on once the daemon runs, instead of killing it half-started.
    let cancel = CancellationToken::new();
    let hup = match spawn_signal_handler(cancel.clone())
        .and_then(|()| signal(SignalKind::hangup()).context("installing the SIGHUP handler"))
    {
        Ok(h) => h,
        Err(e) => {
            eprintln!("error: {e:#}");
            return exit::ERROR;
        }
    };
    let cfg = match Config::load(config_path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!(
                "error: invalid configuration {}:\n{e}",
                config_path.display()
            );
            return exit::ERROR;
        }
    };
    let daemon = match Daemon::start(config_path, cfg).await {
        Ok(d) => d,
        Err(e) => {
            // Said once, on stderr (the journal under systemd).
            eprintln!("error: cannot start: {e:#}");
            return exit::ERROR;
        }
    };
    let result = if once {
        run_once(daemon, &cancel).await
    } else {
        run_daemon(daemon, cancel, hup).await
    };
    result.unwrap_or_else(|e| {
        tracing::error!(error = %format!("{e:#}"), "stopped by an error");
        exit::TASK_FAILED
    })
}

/// Cancels `cancel` on the first SIGTERM/SIGINT; exits the process on the second.
fn spawn_signal_handler(cancel: CancellationToken) -> anyhow::Result<()> {
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    tokio::spawn(async move {
        let mut first = true;
        loop {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            if first {
                first = false;
                tracing::info!(
                    "shutting down: finishing in-flight requests (a second signal exits at once)"
                );
                let _ = sd_notify::notify(&[NotifyState::Stopping]);
                cancel.cancel();
            } else {
                tracing::warn!(
                    "second signal: exiting at once; leases are reclaimed on the next start"
                );
                std::process::exit(i32::from(exit::SECOND_SIGNAL));
            }
        }
    });
    Ok(())
}

async fn run_daemon(
    mut daemon: Daemon,
    cancel: CancellationToken,
    mut hup: tokio::signal::unix::Signal,
) -> anyhow::Result<u8> {
    let mut tasks: JoinSet<(&'static str, anyhow::Result<()>)> = JoinSet::new();
    let (intake, c) = (
        daemon.intake.take().expect("intake runs once"),
        cancel.clone(),
    );
    tasks.spawn(async move { ("intake", intake.run(c).await) });
    let (d, c) = (daemon.delivery.clone(), cancel.clone());
    tasks.spawn(async move { ("delivery", d.run(c).await) });
    let (d, c) = (daemon.delivery.clone(), cancel.clone());
    tasks.spawn(async move { ("maintenance", maintenance::maintenance(d, c).await) });
    let (sources, c) = (daemon.sources(), cancel.clone());
    tasks.spawn(async move { ("sources", sources.run(c).await) });
    let listen = daemon.cfg_tx.borrow().metrics.clone();
    if let Some(addr) = listen.listen {
        let (m, c) = (daemon.metrics.clone(), cancel.clone());
        let (cfg, target) = (daemon.cfg_tx.subscribe(), daemon.target.clone());
        tasks.spawn(async move {
            let served = crate::web::serve(addr, listen.token_file, m, cfg, target, c).await;
            ("metrics", served)
        });
    }
    let _ = sd_notify::notify(&[NotifyState::Ready, NotifyState::Status("running")]);
    tracing::info!(
        pid = std::process::id(),
        queue = %daemon.queue.location(),
        watch = %daemon.cfg_tx.borrow().watch.dir.display(),
        "tc-ingest running"
    );

    let mut failed = false;
    loop {
        tokio::select! {
            _ = hup.recv() => {
                // systemd 253+ (Type=notify-reload) takes RELOADING=1 only
                // with the monotonic time it was sent at.
                let mut reloading = vec![NotifyState::Reloading];
                if let Ok(now) = NotifyState::monotonic_usec_now() {
                    reloading.push(now);
                }
                let _ = sd_notify::notify(&reloading);
                daemon.reload();
                let _ = sd_notify::notify(&[NotifyState::Ready]);
            }
            joined = tasks.join_next() => {
                let Some(joined) = joined else { break };
                let (name, result) = joined.unwrap_or_else(|e| ("a task", Err(anyhow::anyhow!("panicked: {e}"))));
                if !cancel.is_cancelled() {
                    let why = match &result {
                        Ok(()) => "it stopped on its own".to_string(),
                        Err(e) => format!("{e:#}"),
                    };
                    tracing::error!(task = name, error = %why, "a task failed: stopping the daemon");
                    failed = true;
                    cancel.cancel();
                } else if let Err(e) = result {
                    tracing::error!(task = name, error = %format!("{e:#}"), "a task failed while stopping");
                    failed = true;
                }
            }
        }
    }
    daemon.leave().await;
    daemon.queue.close().await;
    tracing::info!("stopped");
    Ok(if failed { exit::TASK_FAILED } else { exit::OK })
}

/// What `run --once` did.
#[derive(Debug, Clone, Default)]
pub struct OnceReport {
    pub files: Vec<FileOutcome>,
    pub paused: Option<String>,
    pub stats: Stats,
    pub dead_before: u64,
    /// Jobs this run delivered (not the queue's total).
    pub delivered: u64,
    /// Jobs this run buried.
    pub buried: u64,
    /// Pull sources whose poll failed.
    pub sources_failed: Vec<String>,
}

impl OnceReport {
    /// 0 when everything was delivered; 1 when something was buried, held,
    /// paused, left pending, or a file or a pull source failed.
    pub fn exit_code(&self) -> u8 {
        let n = |s| self.stats.jobs(s);
        let unfinished = self.paused.is_some()
            || n(JobState::Dead) > self.dead_before
            || n(JobState::Held) > 0
            || !self.stats.held_owners.is_empty()
            || n(JobState::Pending) > 0
            || n(JobState::Leased) > 0
            || self.files.iter().any(|f| f.state == FileState::Failed)
            || !self.sources_failed.is_empty();
        if unfinished { exit::PARTIAL } else { exit::OK }
    }
}

async fn run_once(mut daemon: Daemon, cancel: &CancellationToken) -> anyhow::Result<u8> {
    let report = drive_once(&mut daemon, cancel, None).await?;
    daemon.queue.close().await;
    let n = |s| report.stats.jobs(s);
    tracing::info!(
        files = report.files.len(),
        delivered = report.delivered,
        buried = report.buried,
        pending = n(JobState::Pending),
        held = n(JobState::Held),
        sources_failed = report.sources_failed.len(),
        dead_in_queue = n(JobState::Dead),
        paused = report.paused.as_deref().unwrap_or("no"),
        "run --once finished"
    );
    Ok(report.exit_code())
}

impl Daemon {
    /// Expiry and `max_age` once (after the files, which may list again
    /// what would age out).
    /// Marks this daemon stopped on its queue and gives up its roles.
    async fn leave(&self) {
        if let Err(e) = self.queue.leave(&self.delivery.member).await {
            tracing::warn!(error = %format!("{e:#}"), "cannot mark the daemon stopped in the queue");
        }
    }

    async fn sweep_once(&self) -> anyhow::Result<()> {
        let cfg = self.cfg_tx.borrow().clone();
        crate::lifecycle::Sweeper::default()
            .tick(&cfg, &self.queue, &self.delivery.metrics)
            .await
    }
}

/// Takes every file, delivers everything due, and returns when nothing is
/// left to do now; `progress`, if any, sees the state counts while it waits
/// (the demo draws its bars with it). Without it nothing is counted while
/// waiting: a count reads a state's whole index, which at a million
/// pending jobs costs more than the wait.
///
/// # Errors
/// Database or filesystem errors.
pub async fn drive_once(
    daemon: &mut Daemon,
    cancel: &CancellationToken,
    mut progress: Option<&mut dyn FnMut(&StateCounts)>,
) -> anyhow::Result<OnceReport> {
    let started = now_ms();
    let dead_before = daemon.queue.state_counts(started).await?.dead;
    let delivery_cancel = CancellationToken::new();
    let d = daemon.delivery.clone();
    let dc = delivery_cancel.clone();
    let mut delivery = tokio::spawn(async move { d.run(dc).await });
    let sources_failed = daemon.sources().poll_all(cancel).await?;
    let intake = daemon.intake.as_mut().expect("intake");
    let mut files = intake.resume(cancel).await?;
    files.extend(intake.scan(cancel, false).await?);
    daemon.sweep_once().await?;
    let mut paused = None;
    let mut last_notice: Option<Instant> = None;
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            // Delivery ends only when told to: ending now is a failure.
            ended = &mut delivery => {
                ended.map_err(|e| anyhow::anyhow!("the delivery task failed: {e}"))??;
                anyhow::bail!("the delivery task stopped on its own");
            }
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
        if let Some(progress) = progress.as_mut() {
            progress(&daemon.queue.state_counts(started).await?);
        }
        if let Some(p) = daemon.delivery.gate.paused() {
            // A circuit that stays open longer than the longest backoff, and
            // through several failed probes, is a server that is not coming
            // back soon: stop, as for a pause. (One failed probe is not
            // enough: under a 30% error rate a probe fails 30% of the time.)
            let open_for = Duration::from_millis((now_ms() - p.since_ms).max(0) as u64);
            let limit = daemon
                .cfg_tx
                .borrow()
                .delivery
                .backoff_max
                .max(crate::deliver::ONCE_CIRCUIT_PATIENCE);
            if p.class != ErrorClass::CircuitOpen || open_for > limit {
                paused = Some(format!("{}: {}", p.class, p.reason));
                break;
            }
        }
        // Done when nothing is in flight and no retry is scheduled, however
        // far away.
        let left = daemon.queue.outstanding().await?;
        let Some(next_due) = left.next_due else {
            if !left.in_flight {
                break;
            }
            continue;
        };
        let wait_ms = next_due - now_ms();
        if !left.in_flight
            && wait_ms > 1000
            && last_notice.is_none_or(|t| t.elapsed() >= ONCE_WAIT_NOTICE)
        {
            last_notice = Some(Instant::now());
            tracing::info!(
                jobs = daemon.queue.state_counts(started).await?.pending,
                next_retry_in_secs = wait_ms / 1000,
                "run --once: waiting for scheduled retries"
            );
        }
    }
    delivery_cancel.cancel();
    delivery
        .await
        .map_err(|e| anyhow::anyhow!("delivery task failed: {e}"))??;
    daemon.leave().await;
    let last = daemon.queue.state_counts(started).await?;
    if let Some(progress) = progress.as_mut() {
        progress(&last);
    }
    let stats = daemon.queue.stats().await?;
    Ok(OnceReport {
        files,
        paused,
        sources_failed,
        buried: stats.jobs(JobState::Dead).saturating_sub(dead_before),
        delivered: last.delivered_since,
        stats,
        dead_before,
    })
}
