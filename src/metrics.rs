//! Counters and gauges for the optional Prometheus endpoint
//! (`metrics.listen`), rendered in the text exposition format.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::queue::{ErrorClass, FileState, JobState};

/// Upper bounds (seconds) of the delivery latency histogram.
const LATENCY_BUCKETS: [f64; 10] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

#[derive(Debug, Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<ErrorClass, u64>>,
    files: Mutex<BTreeMap<FileState, u64>>,
    latency_buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    latency_count: AtomicU64,
    latency_sum_micros: AtomicU64,
    limiter_wait_micros: AtomicU64,
    paused: AtomicU64,
    jobs_by_state: Mutex<BTreeMap<JobState, u64>>,
    batch_jobs: Mutex<BTreeMap<&'static str, u64>>,
    batch_items: Mutex<BTreeMap<&'static str, u64>>,
}

impl Metrics {
    pub fn request(&self, class: ErrorClass, latency: Duration) {
        *self
            .requests
            .lock()
            .expect("metrics")
            .entry(class)
            .or_default() += 1;
        let secs = latency.as_secs_f64();
        for (i, b) in LATENCY_BUCKETS.iter().enumerate() {
            if secs <= *b {
                self.latency_buckets[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.latency_count.fetch_add(1, Ordering::Relaxed);
        self.latency_sum_micros
            .fetch_add(latency.as_micros() as u64, Ordering::Relaxed);
    }

    /// A batch job ended: `done` or `failed`.
    pub fn batch_job(&self, result: &'static str) {
        *self
            .batch_jobs
            .lock()
            .expect("metrics")
            .entry(result)
            .or_default() += 1;
    }

    /// `n` jobs of batch jobs ended: `delivered`, `refused` or `returned`.
    pub fn batch_items(&self, result: &'static str, n: u64) {
        *self
            .batch_items
            .lock()
            .expect("metrics")
            .entry(result)
            .or_default() += n;
    }

    pub fn file_outcome(&self, state: FileState) {
        *self
            .files
            .lock()
            .expect("metrics")
            .entry(state)
            .or_default() += 1;
    }

    pub fn limiter_wait(&self, d: Duration) {
        self.limiter_wait_micros
            .fetch_add(d.as_micros() as u64, Ordering::Relaxed);
    }

    pub fn set_paused(&self, paused: bool) {
        self.paused.store(u64::from(paused), Ordering::Relaxed);
    }

    pub fn set_jobs(&self, by_state: &BTreeMap<JobState, u64>) {
        *self.jobs_by_state.lock().expect("metrics") = by_state.clone();
    }

    /// The Prometheus text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str(
            "# HELP tc_ingest_jobs Jobs in the queue by state.\n# TYPE tc_ingest_jobs gauge\n",
        );
        for (state, n) in self.jobs_by_state.lock().expect("metrics").iter() {
            let _ = writeln!(out, "tc_ingest_jobs{{state=\"{state}\"}} {n}");
        }
        out.push_str("# HELP tc_ingest_requests_total API requests by outcome class.\n# TYPE tc_ingest_requests_total counter\n");
        for (class, n) in self.requests.lock().expect("metrics").iter() {
            let _ = writeln!(out, "tc_ingest_requests_total{{class=\"{class}\"}} {n}");
        }
        out.push_str("# HELP tc_ingest_files_total Feed files by outcome.\n# TYPE tc_ingest_files_total counter\n");
        for (state, n) in self.files.lock().expect("metrics").iter() {
            let _ = writeln!(out, "tc_ingest_files_total{{outcome=\"{state}\"}} {n}");
        }
        out.push_str("# HELP tc_ingest_request_duration_seconds API request latency.\n# TYPE tc_ingest_request_duration_seconds histogram\n");
        for (i, b) in LATENCY_BUCKETS.iter().enumerate() {
            let _ = writeln!(
                out,
                "tc_ingest_request_duration_seconds_bucket{{le=\"{b}\"}} {}",
                self.latency_buckets[i].load(Ordering::Relaxed)
            );
        }
        let count = self.latency_count.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "tc_ingest_request_duration_seconds_bucket{{le=\"+Inf\"}} {count}"
        );
        let _ = writeln!(
            out,
            "tc_ingest_request_duration_seconds_sum {}",
            self.latency_sum_micros.load(Ordering::Relaxed) as f64 / 1e6
        );
        let _ = writeln!(out, "tc_ingest_request_duration_seconds_count {count}");
        out.push_str("# HELP tc_ingest_rate_limiter_wait_seconds_total Time workers waited on the rate limiter.\n# TYPE tc_ingest_rate_limiter_wait_seconds_total counter\n");
        let _ = writeln!(
            out,
            "tc_ingest_rate_limiter_wait_seconds_total {}",
            self.limiter_wait_micros.load(Ordering::Relaxed) as f64 / 1e6
        );
        out.push_str("# HELP tc_ingest_batch_jobs_total Batch jobs ended, by result (done, failed).\n# TYPE tc_ingest_batch_jobs_total counter\n");
        for result in ["done", "failed"] {
            let n = self
                .batch_jobs
                .lock()
                .expect("metrics")
                .get(result)
                .copied()
                .unwrap_or(0);
            let _ = writeln!(out, "tc_ingest_batch_jobs_total{{result=\"{result}\"}} {n}");
        }
        out.push_str("# HELP tc_ingest_batch_items_total Jobs of batch jobs, by what became of them (delivered, refused, returned).\n# TYPE tc_ingest_batch_items_total counter\n");
        for result in ["delivered", "refused", "returned"] {
            let n = self
                .batch_items
                .lock()
                .expect("metrics")
                .get(result)
                .copied()
                .unwrap_or(0);
            let _ = writeln!(
                out,
                "tc_ingest_batch_items_total{{result=\"{result}\"}} {n}"
            );
        }
        out.push_str("# HELP tc_ingest_paused Whether all delivery is paused (1) or not (0).\n# TYPE tc_ingest_paused gauge\n");
        let _ = writeln!(
            out,
            "tc_ingest_paused {}",
            self.paused.load(Ordering::Relaxed)
        );
        out
    }
}

/// Serves `GET /metrics` until cancelled.
///
/// # Errors
/// When the address cannot be bound.
pub async fn serve(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    cancel: CancellationToken,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("metrics.listen: cannot bind {addr}: {e}"))?;
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let m = metrics.clone();
            async move {
                (
                    [(
                        axum::http::header::CONTENT_TYPE,
                        "text/plain; version=0.0.4",
                    )],
                    m.render(),
                )
            }
        }),
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { cancel.cancelled().await })
        .await?;
    Ok(())
}
