//! The daemon's Prometheus metrics, rendered in the OpenMetrics text format
//! (through `prometheus-client`, which escapes label values) for `web/`'s
//! `/metrics`; [`Metrics::ready`] answers its `/ready`.
//!
//! Every series with a fixed label set (each class, state, outcome, feed
//! rule) exists from the start at zero; series labelled by owner and type
//! appear with their first request. A new series is one field, registered
//! in [`Metrics::new`].

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::config::Config;
use crate::queue::{ErrorClass, FileState, JobState, SourceHealth};

/// Upper bounds (seconds) of the request latency histogram.
const LATENCY_BUCKETS: [f64; 10] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

type One = [(&'static str, String); 1];
type Two = [(&'static str, String); 2];
type Three = [(&'static str, String); 3];

/// The daemon's counters and gauges.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<One, Counter>,
    owner_requests: Family<Three, Counter>,
    latency: Histogram,
    limiter_wait: Counter<f64, AtomicU64>,
    files: Family<One, Counter>,
    feed_files: Family<Two, Counter>,
    feed_rows: Family<Two, Counter>,
    paused: Gauge,
    jobs: Family<One, Gauge>,
    oldest_pending: Gauge<f64, AtomicU64>,
    batch_jobs: Family<One, Counter>,
    batch_items: Family<One, Counter>,
    sources: SourceMetrics,
    feeds: FeedMetrics,
    queue_open: AtomicBool,
}

/// Named feeds' lifecycle series, labelled by feed.
#[derive(Debug)]
struct FeedMetrics {
    stale: Family<One, Gauge>,
    held: Family<One, Gauge>,
    retired: Family<One, Gauge>,
    members: Family<One, Gauge>,
}

impl FeedMetrics {
    fn register(r: &mut Registry) -> Self {
        Self {
            stale: registered(
                r,
                "tc_ingest_feed_stale",
                "Whether a named feed had no file within its stale_after (1) or not (0)",
                Family::default(),
            ),
            held: registered(
                r,
                "tc_ingest_feed_snapshot_held",
                "Whether a named feed's snapshot waits for `retire --confirm` (1) or not (0)",
                Family::default(),
            ),
            retired: registered(
                r,
                "tc_ingest_feed_retired",
                "Indicators a named feed retired that no feed brought back",
                Family::default(),
            ),
            members: registered(
                r,
                "tc_ingest_feed_members",
                "Indicators a named feed holds",
                Family::default(),
            ),
        }
    }
}

/// A named feed's lifecycle, for its series.
#[derive(Debug, Clone, Copy, Default)]
pub struct FeedGauges {
    pub stale: bool,
    pub held: bool,
    pub retired: u64,
    pub members: u64,
}

/// The pull sources' series, labelled by source.
#[derive(Debug)]
struct SourceMetrics {
    fetches: Family<Two, Counter>,
    files: Family<One, Counter>,
    objects: Family<One, Counter>,
    bytes: Family<One, Counter>,
    last_success: Family<One, Gauge>,
    stale: Family<One, Gauge>,
    failing: Family<One, Gauge>,
}

impl SourceMetrics {
    fn register(r: &mut Registry) -> Self {
        Self {
            fetches: registered(
                r,
                "tc_ingest_source_fetches",
                "Polls of pull sources by source and result (ok, unchanged, or the failure's class)",
                Family::default(),
            ),
            files: registered(
                r,
                "tc_ingest_source_files",
                "Files pull sources wrote into the watched directory",
                Family::default(),
            ),
            objects: registered(
                r,
                "tc_ingest_source_objects",
                "Objects pull sources fetched (TAXII objects, MISP events)",
                Family::default(),
            ),
            bytes: registered(
                r,
                "tc_ingest_source_bytes",
                "Bytes pull sources fetched",
                Family::default(),
            ),
            last_success: registered(
                r,
                "tc_ingest_source_last_success_timestamp_seconds",
                "When a source's last poll succeeded (Unix time; 0: never)",
                Family::default(),
            ),
            stale: registered(
                r,
                "tc_ingest_source_stale",
                "Whether a source brought nothing new within its stale_after (1) or not (0)",
                Family::default(),
            ),
            failing: registered(
                r,
                "tc_ingest_source_failing",
                "Whether a source's last poll failed (1) or not (0)",
                Family::default(),
            ),
        }
    }

    /// A configured source's series, at zero.
    fn create(&self, source: &str) {
        let one = [("source", source.to_string())];
        let _ = self
            .fetches
            .get_or_create(&[("source", source.into()), ("result", "ok".into())]);
        let _ = self.files.get_or_create(&one);
        let _ = self.objects.get_or_create(&one);
        let _ = self.bytes.get_or_create(&one);
        let _ = self.last_success.get_or_create(&one);
        let _ = self.stale.get_or_create(&one);
        let _ = self.failing.get_or_create(&one);
    }
}

/// One poll of a pull source, for its series.
#[derive(Debug)]
pub struct SourcePoll<'a> {
    pub source: &'a str,
    /// `ok`, `unchanged`, or the failure's class.
    pub result: &'a str,
    pub files: u64,
    pub objects: u64,
    pub bytes: u64,
}

impl Default for Metrics {
    /// Metrics without feed rules (benchmarks, tests).
    fn default() -> Self {
        Self::new(&[])
    }
}

/// A feed rule's label: its `name`, else `feeds[i]`; `none` for files no rule matches.
pub fn rule_label(cfg: &Config, index: Option<usize>) -> String {
    match index {
        None => "none".into(),
        Some(i) => match cfg.feeds.get(i).and_then(|r| r.name.as_deref()) {
            Some(name) => name.to_string(),
            None => format!("feeds[{i}]"),
        },
    }
}

crate::names::named_enum! {
    /// How a batch job ended (`tc_ingest_batch_jobs{result}`).
    pub enum BatchJobEnd ("batch job result") {
        Done => "done",
        Failed => "failed",
    }
}

crate::names::named_enum! {
    /// What became of a batch job's jobs (`tc_ingest_batch_items{result}`).
    pub enum BatchItemEnd ("batch item result") {
        Delivered => "delivered",
        Refused => "refused",
        /// Back to pending (unprocessed, of unknown outcome, or the batch
        /// job given up).
        Returned => "returned",
    }
}

crate::names::named_enum! {
    /// What became of a feed row (`tc_ingest_feed_rows{outcome}`).
    pub enum RowOutcome ("row outcome") {
        Queued => "queued",
        Duplicate => "duplicate",
        Rejected => "rejected",
        /// Filtered by the allowlist.
        Filtered => "filtered",
    }
}

/// Registers `metric` under `name` and gives it back.
fn registered<M: prometheus_client::registry::Metric + Clone>(
    r: &mut Registry,
    name: &str,
    help: &str,
    metric: M,
) -> M {
    r.register(name, help, metric.clone());
    metric
}

impl Metrics {
    /// Every series registered, those with fixed labels at zero; `rules`
    /// are the feed rules' labels ([`rule_label`]). Long because it is the
    /// one list of every family: one registration each.
    #[expect(
        clippy::too_many_lines,
        reason = "one registration per family, in one list"
    )]
    pub fn new(rules: &[String]) -> Self {
        let r = &mut Registry::default();
        let m = Self {
            requests: registered(
                r,
                "tc_ingest_requests",
                "API requests by outcome class",
                Family::default(),
            ),
            owner_requests: registered(
                r,
                "tc_ingest_owner_requests",
                "API requests by owner, indicator type and outcome class",
                Family::default(),
            ),
            latency: registered(
                r,
                "tc_ingest_request_duration_seconds",
                "API request latency",
                Histogram::new(LATENCY_BUCKETS),
            ),
            limiter_wait: registered(
                r,
                "tc_ingest_rate_limiter_wait_seconds",
                "Time workers waited on the rate limiter",
                Counter::default(),
            ),
            files: registered(
                r,
                "tc_ingest_files",
                "Feed files by outcome",
                Family::default(),
            ),
            feed_files: registered(
                r,
                "tc_ingest_feed_files",
                "Feed files by feed rule and outcome",
                Family::default(),
            ),
            feed_rows: registered(
                r,
                "tc_ingest_feed_rows",
                "Feed rows by feed rule and outcome (queued, duplicate, rejected)",
                Family::default(),
            ),
            paused: registered(
                r,
                "tc_ingest_paused",
                "Whether all delivery is paused (1) or not (0)",
                Gauge::default(),
            ),
            jobs: registered(
                r,
                "tc_ingest_jobs",
                "Jobs in the queue by state",
                Family::default(),
            ),
            oldest_pending: registered(
                r,
                "tc_ingest_oldest_pending_seconds",
                "Age of the oldest pending job (0 when none)",
                Gauge::default(),
            ),
            batch_jobs: registered(
                r,
                "tc_ingest_batch_jobs",
                "Batch jobs ended, by result (done, failed)",
                Family::default(),
            ),
            batch_items: registered(
                r,
                "tc_ingest_batch_items",
                "Jobs of batch jobs by what became of them (delivered, refused, returned)",
                Family::default(),
            ),
            sources: SourceMetrics::register(r),
            feeds: FeedMetrics::register(r),
            registry: std::mem::take(r),
            queue_open: AtomicBool::new(false),
        };
        m.create_fixed_series(rules);
        m
    }

    /// Every series whose labels are known in advance, at zero.
    fn create_fixed_series(&self, rules: &[String]) {
        for c in ErrorClass::ALL {
            let _ = self.requests.get_or_create(&[("class", c.as_str().into())]);
        }
        let mut labels: Vec<String> = rules.to_vec();
        labels.push("none".into());
        for o in [FileState::Done, FileState::Failed, FileState::Skipped] {
            let _ = self.files.get_or_create(&[("outcome", o.as_str().into())]);
            for rule in &labels {
                let _ = self
                    .feed_files
                    .get_or_create(&[("rule", rule.clone()), ("outcome", o.as_str().into())]);
            }
        }
        for rule in &labels {
            for o in RowOutcome::ALL {
                let _ = self
                    .feed_rows
                    .get_or_create(&[("rule", rule.clone()), ("outcome", o.as_str().into())]);
            }
        }
        for s in JobState::ALL {
            let _ = self.jobs.get_or_create(&[("state", s.as_str().into())]);
        }
        for result in BatchJobEnd::ALL {
            let _ = self
                .batch_jobs
                .get_or_create(&[("result", result.as_str().into())]);
        }
        for result in BatchItemEnd::ALL {
            let _ = self
                .batch_items
                .get_or_create(&[("result", result.as_str().into())]);
        }
    }

    /// The metrics for a config's feed rules and sources.
    pub fn for_config(cfg: &Config) -> Self {
        let rules: Vec<String> = (0..cfg.feeds.len())
            .map(|i| rule_label(cfg, Some(i)))
            .collect();
        let m = Self::new(&rules);
        for s in &cfg.sources {
            m.sources.create(&s.name);
        }
        for name in cfg.feeds.iter().filter_map(|r| r.name.as_deref()) {
            m.feed_gauges(name, FeedGauges::default());
        }
        m
    }

    /// A named feed's lifecycle gauges.
    pub fn feed_gauges(&self, feed: &str, g: FeedGauges) {
        let one = [("feed", feed.to_string())];
        let m = &self.feeds;
        m.stale.get_or_create(&one).set(i64::from(g.stale));
        m.held.get_or_create(&one).set(i64::from(g.held));
        m.retired.get_or_create(&one).set(g.retired as i64);
        m.members.get_or_create(&one).set(g.members as i64);
    }

    /// A pull source's health (its stale and failing gauges).
    pub fn source_health(&self, source: &str, health: SourceHealth, last_success_ms: Option<i64>) {
        let one = [("source", source.to_string())];
        let m = &self.sources;
        if let Some(ms) = last_success_ms {
            m.last_success.get_or_create(&one).set(ms / 1000);
        }
        m.stale
            .get_or_create(&one)
            .set(i64::from(health == SourceHealth::Stale));
        m.failing
            .get_or_create(&one)
            .set(i64::from(health == SourceHealth::Failing));
    }

    /// One poll of a pull source.
    pub fn source_poll(&self, p: &SourcePoll<'_>) {
        let m = &self.sources;
        let one = [("source", p.source.to_string())];
        m.fetches
            .get_or_create(&[("source", p.source.into()), ("result", p.result.into())])
            .inc();
        m.files.get_or_create(&one).inc_by(p.files);
        m.objects.get_or_create(&one).inc_by(p.objects);
        m.bytes.get_or_create(&one).inc_by(p.bytes);
    }

    /// One API request of a job of `owner` and `kind`, and how it ended.
    pub fn request(&self, owner: &str, kind: &str, class: ErrorClass, latency: Duration) {
        self.requests
            .get_or_create(&[("class", class.as_str().into())])
            .inc();
        self.owner_requests
            .get_or_create(&[
                ("owner", owner.into()),
                ("type", kind.into()),
                ("class", class.as_str().into()),
            ])
            .inc();
        self.latency.observe(latency.as_secs_f64());
    }

    /// A batch job ended.
    pub fn batch_job(&self, result: BatchJobEnd) {
        self.batch_jobs
            .get_or_create(&[("result", result.as_str().into())])
            .inc();
    }

    /// `n` jobs of batch jobs ended so.
    pub fn batch_items(&self, result: BatchItemEnd, n: u64) {
        self.batch_items
            .get_or_create(&[("result", result.as_str().into())])
            .inc_by(n);
    }

    pub fn file_outcome(&self, state: FileState) {
        self.files
            .get_or_create(&[("outcome", state.as_str().into())])
            .inc();
    }

    /// A finished file of feed rule `rule` ([`rule_label`]) and its rows.
    pub fn feed_file(
        &self,
        rule: &str,
        state: FileState,
        queued: u64,
        duplicates: u64,
        rejected: u64,
        filtered: u64,
    ) {
        self.feed_files
            .get_or_create(&[("rule", rule.into()), ("outcome", state.as_str().into())])
            .inc();
        for (o, n) in [
            (RowOutcome::Queued, queued),
            (RowOutcome::Duplicate, duplicates),
            (RowOutcome::Rejected, rejected),
            (RowOutcome::Filtered, filtered),
        ] {
            self.feed_rows
                .get_or_create(&[("rule", rule.into()), ("outcome", o.as_str().into())])
                .inc_by(n);
        }
    }

    pub fn limiter_wait(&self, d: Duration) {
        self.limiter_wait.inc_by(d.as_secs_f64());
    }

    pub fn set_paused(&self, paused: bool) {
        self.paused.set(i64::from(paused));
    }

    pub fn set_jobs(&self, by_state: &BTreeMap<JobState, u64>) {
        for (state, n) in by_state {
            self.jobs
                .get_or_create(&[("state", state.as_str().into())])
                .set(*n as i64);
        }
    }

    pub fn set_oldest_pending(&self, age: Option<Duration>) {
        self.oldest_pending
            .set(age.unwrap_or(Duration::ZERO).as_secs_f64());
    }

    /// Whether the queue answers (set by the maintenance tick).
    pub fn set_queue_open(&self, open: bool) {
        self.queue_open.store(open, Ordering::Relaxed);
    }

    /// `Ok` when the daemon is ready to deliver; else why not.
    pub fn ready(&self) -> Result<(), &'static str> {
        if !self.queue_open.load(Ordering::Relaxed) {
            return Err("queue not open");
        }
        if self.paused.get() != 0 {
            return Err("delivery paused");
        }
        Ok(())
    }

    /// The OpenMetrics text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            out = format!("# cannot encode metrics: {e}\n");
        }
        out
    }
}
