//! The shared rate limiter (governor): every request of every worker, the
//! probes and checks included, waits for a permit.

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;

/// The shared rate limiter: `rate_per_second` with `burst`, lowered after a
/// 429 and recovering slowly.
pub struct Throttle {
    limiter: RwLock<Option<Arc<DefaultDirectRateLimiter>>>,
    base_rate: AtomicU64,
    burst: AtomicU64,
    /// Current fraction of the base rate, in thousandths.
    factor_milli: AtomicU64,
    metrics: Arc<Metrics>,
}

impl Throttle {
    pub fn new(rate: u32, burst: u32, metrics: Arc<Metrics>) -> Self {
        let t = Self {
            limiter: RwLock::new(None),
            base_rate: AtomicU64::new(u64::from(rate)),
            burst: AtomicU64::new(u64::from(burst.max(1))),
            factor_milli: AtomicU64::new(1000),
            metrics,
        };
        t.rebuild();
        t
    }

    fn rebuild(&self) {
        let rate = self.base_rate.load(Ordering::Relaxed) as f64
            * self.factor_milli.load(Ordering::Relaxed) as f64
            / 1000.0;
        let limiter = (self.base_rate.load(Ordering::Relaxed) > 0).then(|| {
            let burst = NonZeroU32::new(self.burst.load(Ordering::Relaxed) as u32)
                .unwrap_or(NonZeroU32::MIN);
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

    /// Waits for a permit for one request.
    pub async fn wait(&self) {
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
