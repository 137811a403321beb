//! The maintenance tick, every few seconds on every daemon: reclaim
//! expired leases, publish counts (metrics, systemd STATUS, heartbeat) and
//! ping the systemd watchdog. The work of the queue as a whole (pruning,
//! the lifecycle sweeps, counting deliveries for the status page) is done
//! by the one daemon holding the `maintenance` role: on a shared queue
//! another takes it over within `ROLE_TTL` when that one dies.

use std::path::Path;
use std::time::Duration;

use sd_notify::NotifyState;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::deliver::{Delivery, ModeInUse};
use crate::lifecycle::Sweeper;
use crate::queue::{StateCounts, now_ms};

/// How long the maintenance role outlives its holder's last tick.
const ROLE_TTL: Duration = Duration::from_secs(30);

/// The queue-wide part of the tick, when this daemon holds the role.
struct Lead {
    sweeper: Sweeper,
    last_prune: std::time::Instant,
}

impl Lead {
    async fn tick(&mut self, d: &Delivery, cfg: &Config) -> anyhow::Result<()> {
        if !d
            .queue
            .hold_role("maintenance", &d.member.id, ROLE_TTL)
            .await?
        {
            return Ok(());
        }
        if self.last_prune.elapsed() >= Duration::from_secs(300) {
            self.last_prune = std::time::Instant::now();
            let pruned = d
                .queue
                .prune_delivered(cfg.queue.delivered_retention)
                .await?;
            if pruned > 0 {
                tracing::info!(
                    jobs = pruned,
                    "pruned delivered jobs past queue.delivered_retention"
                );
            }
            let rejects = d.queue.prune_rejects(cfg.watch.done_retention).await?;
            if rejects > 0 {
                tracing::info!(rejects, "pruned rejects of files past watch.done_retention");
            }
            d.queue.forget_daemons().await?;
        }
        self.sweeper.tick(cfg, &d.queue, &d.metrics).await?;
        // Deliveries are counted per hour for the status page's chart.
        d.queue.count_deliveries(now_ms()).await
    }
}

/// Every few seconds until `cancel` (see the module's note).
pub(super) async fn maintenance(d: Delivery, cancel: CancellationToken) -> anyhow::Result<()> {
    let watchdog = sd_notify::watchdog_enabled();
    let tick = watchdog
        .map(|w| w / 3)
        .unwrap_or(Duration::from_secs(5))
        .min(Duration::from_secs(5));
    let mut lead = Lead {
        sweeper: Sweeper::default(),
        last_prune: std::time::Instant::now() - Duration::from_secs(3600),
    };
    let mut last_oldest = std::time::Instant::now();
    // The deliveries since the last count of a previous run.
    let cfg = d.cfg.borrow().clone();
    lead.tick(&d, &cfg).await?;
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return Ok(()),
            _ = tokio::time::sleep(tick) => {}
        }
        let cfg = d.cfg.borrow().clone();
        // SQLite keeps writing through the descriptors it has open: a queue
        // file made read-only would only fail much later. access(2), never
        // open-and-close: closing any descriptor of the file drops every
        // POSIX lock this process holds on it, SQLite's included.
        if let Some(path) = d.queue.path()
            && !writable(path)
        {
            anyhow::bail!("the queue file {} is no longer writable", path.display());
        }
        let reclaimed = d.queue.reclaim_expired_leases().await?;
        if reclaimed > 0 {
            tracing::warn!(jobs = reclaimed, "reclaimed expired leases");
        }
        lead.tick(&d, &cfg).await?;
        let counts = d.queue.state_counts(now_ms() - 60_000).await?;
        d.metrics.set_jobs(&counts.by_state());
        // The oldest pending job reads every pending row: twice a minute.
        if last_oldest.elapsed() >= Duration::from_secs(30) {
            last_oldest = std::time::Instant::now();
            d.metrics
                .set_oldest_pending(d.queue.oldest_pending().await?);
        }
        d.metrics.set_queue_open(true);
        let status = status_line(&counts, d.gate.paused().map(|p| p.reason));
        let _ = sd_notify::notify(&[NotifyState::Status(&status)]);
        if watchdog.is_some() {
            let _ = sd_notify::notify(&[NotifyState::Watchdog]);
        }
        d.queue
            .heartbeat(&serde_json::json!({
                "pid": std::process::id(),
                "at": now_ms(),
                "rate_fraction": d.throttle.fraction(),
                "clock_offset_secs": d.api.borrow().client.clock().offset(),
                "modes": d.modes_in_use().iter().map(ModeInUse::heartbeat_entry).collect::<std::collections::BTreeMap<_, _>>(),
                "labels_missing": d.labels.missing(),
            }))
            .await?;
    }
}

/// Whether this process may write `path`, asked without opening it.
fn writable(path: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: `c` is a valid NUL-terminated path for the duration of the call.
    unsafe { libc::access(c.as_ptr(), libc::W_OK) == 0 }
}

/// The one-line summary systemd shows (`systemctl status`).
fn status_line(s: &StateCounts, paused: Option<String>) -> String {
    let mut line = format!(
        "pending {} | leased {} | held {} | dead {} | delivered/min {}",
        s.pending, s.leased, s.held, s.dead, s.delivered_since
    );
    if let Some(p) = paused {
        line.push_str(&format!(" | PAUSED: {p}"));
    }
    line
}
