//! The shared rate limiter (governor): every request of every worker, the
//! probes and checks included, waits for a permit.

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;

/// The shared rate limiter: `rate_per_second` with `burst`, lowered after a
/// 429 and recovering slowly. On a queue shared by several daemons, the
/// rate and the burst are the cluster's: each daemon takes its share.
pub struct Throttle {
    limiter: RwLock<Option<Arc<DefaultDirectRateLimiter>>>,
    base_rate: AtomicU64,
    burst: AtomicU64,
    /// Current fraction of the base rate, in thousandths.
    factor_milli: AtomicU64,
    /// The live daemons sharing the rate (1 alone).
    sharing: AtomicU64,
    /// On a shared queue: since when the daemon has been counted among
    /// the live ones without a gap, and when that was last confirmed.
    membership: Mutex<Option<Membership>>,
    metrics: Arc<Metrics>,
}

/// This daemon's standing among the daemons sharing the rate.
#[derive(Debug, Clone, Copy)]
struct Membership {
    since: Instant,
    confirmed: Instant,
}

/// Requests wait while the last heartbeat is older than this: a daemon
/// that stalled (paused, say) learns how many share the rate before it
/// sends again.
pub const SHARE_FRESH_FOR: Duration = Duration::from_millis(2500);

/// After joining, or coming back from a stall, a daemon waits this long
/// before sending: every other daemon has seen it by then (heartbeats come
/// every second) and lowered its share.
pub const SETTLE: Duration = Duration::from_millis(1500);

impl Throttle {
    pub fn new(rate: u32, burst: u32, metrics: Arc<Metrics>) -> Self {
        let t = Self {
            limiter: RwLock::new(None),
            base_rate: AtomicU64::new(u64::from(rate)),
            burst: AtomicU64::new(u64::from(burst.max(1))),
            factor_milli: AtomicU64::new(1000),
            sharing: AtomicU64::new(1),
            membership: Mutex::new(None),
            metrics,
        };
        t.rebuild();
        t
    }

    fn rebuild(&self) {
        let sharing = self.sharing.load(Ordering::Relaxed).max(1);
        let rate = self.base_rate.load(Ordering::Relaxed) as f64
            * self.factor_milli.load(Ordering::Relaxed) as f64
            / 1000.0
            / sharing as f64;
        let limiter = (self.base_rate.load(Ordering::Relaxed) > 0).then(|| {
            let burst = self.burst.load(Ordering::Relaxed).div_ceil(sharing);
            let burst = NonZeroU32::new(burst as u32).unwrap_or(NonZeroU32::MIN);
            let period = Duration::from_secs_f64(1.0 / rate.max(0.01));
            let quota = Quota::with_period(period)
                .expect("non-zero period")
                .allow_burst(burst);
            Arc::new(RateLimiter::direct(quota))
        });
        *self.limiter.write().expect("throttle") = limiter;
    }

    /// Applies a reloaded rate and burst.
    pub fn set(&self, rate: u32, burst: u32) {
        self.base_rate.store(u64::from(rate), Ordering::Relaxed);
        self.burst.store(u64::from(burst.max(1)), Ordering::Relaxed);
        self.rebuild();
    }

    /// A heartbeat on a shared queue: `live` daemons share the rate now,
    /// this one among them.
    pub fn shared_by(&self, live: u32) {
        let now = Instant::now();
        {
            let mut m = self.membership.lock().expect("membership");
            *m = Some(match *m {
                Some(m) if now.duration_since(m.confirmed) < SHARE_FRESH_FOR => Membership {
                    since: m.since,
                    confirmed: now,
                },
                // First heartbeat, or the first after a stall: the others
                // counted this daemon out meanwhile (alone, nobody did).
                _ => Membership {
                    since: if live > 1 {
                        now
                    } else {
                        now.checked_sub(SETTLE).unwrap_or(now)
                    },
                    confirmed: now,
                },
            });
        }
        let live = u64::from(live.max(1));
        if self.sharing.swap(live, Ordering::Relaxed) != live {
            self.rebuild();
        }
    }

    /// How many daemons share the rate (1 alone).
    pub fn sharing(&self) -> u64 {
        self.sharing.load(Ordering::Relaxed)
    }

    /// On a shared queue, until this daemon's share is current: its last
    /// heartbeat fresh, and the others given time to count it in.
    async fn share_current(&self) {
        loop {
            let Some(m) = *self.membership.lock().expect("membership") else {
                return;
            };
            let now = Instant::now();
            if now.duration_since(m.confirmed) < SHARE_FRESH_FOR
                && now.duration_since(m.since) >= SETTLE
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits for a permit for one request.
    pub async fn wait(&self) {
        self.share_current().await;
        let limiter = self.limiter.read().expect("throttle").clone();
        if let Some(l) = limiter {
            let start = Instant::now();
            l.until_ready().await;
            self.metrics.limiter_wait(start.elapsed());
        }
    }

    /// Halves the effective rate (down to a tenth of the base).
    pub fn slow_down(&self) {
        let f = self.factor_milli.load(Ordering::Relaxed);
        let next = (f / 2).max(100);
        if next != f {
            self.factor_milli.store(next, Ordering::Relaxed);
            self.rebuild();
            tracing::warn!(
                rate_fraction = next as f64 / 1000.0,
                "rate limited by the server: lowering the request rate"
            );
        }
    }

    /// Raises the effective rate by a tenth, back up to the base.
    pub fn recover(&self) {
        let f = self.factor_milli.load(Ordering::Relaxed);
        if f < 1000 {
            let next = (f + f / 10 + 1).min(1000);
            self.factor_milli.store(next, Ordering::Relaxed);
            self.rebuild();
            if next == 1000 {
                tracing::info!("request rate recovered to delivery.rate_per_second");
            }
        }
    }

    pub fn fraction(&self) -> f64 {
        self.factor_milli.load(Ordering::Relaxed) as f64 / 1000.0
    }
}

/// Lets the rate climb back after a 429: a tenth more every 10 s.
pub(super) async fn recovery(throttle: Arc<Throttle>, cancel: CancellationToken) {
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(10)) => throttle.recover(),
        }
    }
}
