//! `tc-ingest status`: the queue as a table for people, one stable JSON
//! object for programs (fields documented in the README), or a live view
//! (`--watch`).
//!
//! Everything shown is read into one [`StatusView`]; the table is a list of
//! sections ([`SECTIONS`]) and the JSON a list of parts ([`json`]): a new
//! part of the status (say, batch jobs) is one function and one entry in each.

mod daemons;
mod feeds;
mod json;
mod sources;

use std::fmt::Write as _;

use serde_json::Value;

pub use feeds::FeedView;
pub use json::json;
pub use sources::{SourceView, table as sources_table};

use crate::queue::{
    DaemonLock, DaemonRow, FileProgress, FileState, JobState, LockHolder, Queue, Stats, now_ms,
};

const STATES: [JobState; 6] = [
    JobState::Pending,
    JobState::Leased,
    JobState::Batched,
    JobState::Held,
    JobState::Dead,
    JobState::Delivered,
];

/// How many recent files `status` lists (files being read are always listed).
const RECENT_FILES: u64 = 10;

/// The daemon as `status` sees it: the lock says whether one runs; the
/// heartbeat says when it last reported.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DaemonView {
    /// Whether the lock was asked (false in a report of counts alone).
    pub asked: bool,
    pub running: bool,
    /// From the lock file (a running daemon) or the last heartbeat.
    pub pid: Option<u64>,
    /// Unix ms of the last heartbeat.
    pub heartbeat_at: Option<i64>,
    pub rate_fraction: Option<f64>,
    pub clock_offset_secs: Option<i64>,
}

/// Everything `status` shows, read at one moment.
#[derive(Debug, Clone)]
pub struct StatusView {
    pub queue_path: String,
    pub stats: Stats,
    pub files: Vec<FileProgress>,
    pub daemon: DaemonView,
    /// The daemons on a shared PostgreSQL queue (none listed on SQLite).
    pub daemons: Vec<DaemonRow>,
    /// Pull sources, by name.
    pub sources: Vec<SourceView>,
    /// Named feeds, by name.
    pub feeds: Vec<FeedView>,
    /// Unix ms when it was read.
    pub at: i64,
}

impl StatusView {
    /// Reads the queue and asks the lock whether a daemon runs.
    ///
    /// # Errors
    /// Database or lock file errors.
    pub async fn read(queue: &Queue) -> anyhow::Result<Self> {
        let stats = queue.stats().await?;
        let files = queue.file_progress(RECENT_FILES).await?;
        Self::read_with(queue, stats, files).await
    }

    /// What the status page shows, read through the partial indexes only
    /// (no counts by owner or type, no files): cheap on a queue of
    /// millions.
    ///
    /// # Errors
    /// Database or lock file errors.
    pub async fn read_page(queue: &Queue) -> anyhow::Result<Self> {
        let stats = queue.page_stats().await?;
        Self::read_with(queue, stats, Vec::new()).await
    }

    async fn read_with(
        queue: &Queue,
        stats: Stats,
        files: Vec<FileProgress>,
    ) -> anyhow::Result<Self> {
        // Listed on a shared queue; a SQLite queue's one daemon is the
        // lock file's.
        let daemons = match queue.dialect() {
            crate::queue::Dialect::Postgres => queue.daemons().await?,
            crate::queue::Dialect::Sqlite => Vec::new(),
        };
        // A SQLite queue's daemon holds its lock file; a shared queue's
        // daemons are known by their heartbeats.
        let holder = match queue.path() {
            Some(path) => DaemonLock::holder(path)?,
            None => match daemons.iter().find(|d| d.state() == "running") {
                Some(d) => LockHolder::Daemon(u32::try_from(d.pid).ok()),
                None => LockHolder::Nobody,
            },
        };
        let h = stats.heartbeat.as_ref();
        let field = |k: &str| h.and_then(|h| h.get(k)).cloned();
        let daemon = DaemonView {
            asked: true,
            running: matches!(holder, LockHolder::Daemon(_)),
            pid: match holder {
                LockHolder::Daemon(Some(pid)) => Some(u64::from(pid)),
                _ => field("pid").and_then(|v| v.as_u64()),
            },
            heartbeat_at: field("at").and_then(|v| v.as_i64()),
            rate_fraction: field("rate_fraction").and_then(|v| v.as_f64()),
            clock_offset_secs: field("clock_offset_secs").and_then(|v| v.as_i64()),
        };
        let sources = sources::read(queue).await?;
        let feeds = feeds::read(queue).await?;
        Ok(Self {
            queue_path: queue.location().to_string(),
            stats,
            files,
            daemon,
            daemons,
            sources,
            feeds,
            at: now_ms(),
        })
    }

    /// A view of counts alone (no file list; no daemon: the lock is not
    /// asked), for reports printed after an in-process run.
    pub fn of_stats(stats: Stats, queue_path: &str) -> Self {
        Self {
            queue_path: queue_path.to_string(),
            stats,
            files: Vec::new(),
            daemon: DaemonView::default(),
            daemons: Vec::new(),
            sources: Vec::new(),
            feeds: Vec::new(),
            at: now_ms(),
        }
    }

    pub fn since(&self, ms: i64) -> String {
        ago((self.at - ms).max(0) / 1000)
    }
}

pub(crate) fn iso(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

/// `42s`, `3m 20s`, `2h 5m`, `3d 4h`.
pub fn ago(secs: i64) -> String {
    let secs = secs.max(0);
    match secs {
        0..60 => format!("{secs}s"),
        60..3600 => format!("{}m {}s", secs / 60, secs % 60),
        3600..86_400 => format!("{}h {}m", secs / 3600, secs % 3600 / 60),
        _ => format!("{}d {}h", secs / 86_400, secs % 86_400 / 3600),
    }
}

/// Whether every owner with waiting work is held.
pub fn all_owners_held(s: &Stats) -> bool {
    let waiting: Vec<&String> = s
        .by_owner
        .iter()
        .filter(|(_, states)| {
            [JobState::Pending, JobState::Leased, JobState::Held]
                .iter()
                .any(|k| states.get(k).copied().unwrap_or(0) > 0)
        })
        .map(|(o, _)| o)
        .collect();
    !waiting.is_empty()
        && waiting
            .iter()
            .all(|o| s.held_owners.iter().any(|h| &&h.owner == o))
}

/// `running`, `paused` or `stopped` (no daemon).
pub fn delivery_word(v: &StatusView) -> &'static str {
    match (v.daemon.running, &v.stats.pause) {
        (false, _) => "stopped",
        (true, Some(_)) => "paused",
        (true, None) => "running",
    }
}

type Section = fn(&mut String, &StatusView);

/// The table's sections, in order.
const SECTIONS: &[Section] = &[
    daemons::overview,
    counts,
    breakdown,
    bulk,
    files,
    sources::section,
    feeds::section,
    problems,
];

/// The table for people.
pub fn table(v: &StatusView) -> String {
    let mut o = String::new();
    for section in SECTIONS {
        section(&mut o, v);
    }
    o
}

/// The delivery mode per owner (as the running daemon last said) and the
/// batch jobs in flight.
fn bulk(o: &mut String, v: &StatusView) {
    let s = &v.stats;
    if let Some(modes) = s
        .heartbeat
        .as_ref()
        .and_then(|h| h.get("modes"))
        .and_then(Value::as_object)
    {
        let list: Vec<String> = modes
            .iter()
            .map(|(owner, mode)| format!("{owner}: {}", mode.as_str().unwrap_or("?")))
            .collect();
        let _ = writeln!(o, "\ndelivery mode: {}", list.join(", "));
    }
    if let Some(missing) = s
        .heartbeat
        .as_ref()
        .and_then(|h| h.get("labels_missing"))
        .and_then(Value::as_array)
        .filter(|m| !m.is_empty())
    {
        let names: Vec<&str> = missing.iter().filter_map(Value::as_str).collect();
        let _ = writeln!(
            o,
            "security labels the instance lacks (indicators go without them): {}",
            names.join(", ")
        );
    }
    if s.batches.is_empty() {
        return;
    }
    let _ = writeln!(
        o,
        "\nbatch jobs in flight:\n  {:<8}{:<10}{:<28}{:>8}  {:<18}{:>8}",
        "id", "tc id", "owner", "items", "state", "age"
    );
    for b in &s.batches {
        let state = match &b.tc_status {
            Some(st) => format!("{} ({st})", b.state),
            None => b.state.to_string(),
        };
        let _ = writeln!(
            o,
            "  {:<8}{:<10}{:<28}{:>8}  {:<18}{:>7}s",
            b.id,
            b.tc_batch_id
                .map(|i| i.to_string())
                .unwrap_or_else(|| "-".into()),
            b.owner,
            b.items,
            state,
            (now_ms() - b.created_at).max(0) / 1000
        );
    }
}

/// Jobs by state, the backlog's age, recent deliveries.
fn counts(o: &mut String, v: &StatusView) {
    let s = &v.stats;
    let _ = writeln!(o);
    let _ = writeln!(o, "{:<12}{:>10}", "state", "jobs");
    for k in STATES {
        let _ = writeln!(o, "{:<12}{:>10}", k.as_str(), s.jobs(k));
    }
    if let Some(age) = s.oldest_pending_secs {
        let _ = writeln!(o, "oldest pending: {}", ago(age as i64));
    }
    let _ = writeln!(
        o,
        "delivered: {} in the last minute, {} in the last hour",
        s.delivered_last_minute, s.delivered_last_hour
    );
}

/// Jobs by owner and by type.
fn breakdown(o: &mut String, v: &StatusView) {
    let s = &v.stats;
    let header = |o: &mut String, title: &str| {
        let _ = writeln!(
            o,
            "\n{title:<28}{:>10}{:>10}{:>10}{:>10}{:>11}",
            "pending", "leased", "held", "dead", "delivered"
        );
    };
    let row = |o: &mut String, name: &str, m: &std::collections::BTreeMap<JobState, u64>| {
        let g = |k: JobState| m.get(&k).copied().unwrap_or(0);
        let _ = writeln!(
            o,
            "{name:<28}{:>10}{:>10}{:>10}{:>10}{:>11}",
            g(JobState::Pending),
            g(JobState::Leased),
            g(JobState::Held),
            g(JobState::Dead),
            g(JobState::Delivered)
        );
    };
    if !s.by_owner.is_empty() {
        header(o, "owner");
        for (owner, m) in &s.by_owner {
            row(o, owner, m);
        }
        header(o, "type");
        for (t, m) in &s.by_type {
            row(o, t, m);
        }
    }
}

/// Recent files: rows read, queued, rejected; their jobs delivered, dead.
fn files(o: &mut String, v: &StatusView) {
    if v.files.is_empty() {
        return;
    }
    let _ = writeln!(
        o,
        "\n{:<30}{:>11}{:>9}{:>9}{:>9}{:>9}{:>10}{:>7}",
        "file (newest first)",
        "state",
        "read",
        "queued",
        "rejected",
        "waiting",
        "delivered",
        "dead"
    );
    for f in &v.files {
        let _ = writeln!(
            o,
            "{:<30}{:>11}{:>9}{:>9}{:>9}{:>9}{:>10}{:>7}",
            short(&f.path, 29),
            f.state.as_str(),
            f.rows_read,
            f.rows_queued,
            f.rows_rejected,
            f.waiting,
            f.delivered,
            f.dead
        );
        if let Some(e) = &f.error
            && f.state == FileState::Failed
        {
            // Why, from its start (the line, the rule, what to do).
            let _ = writeln!(o, "  {}", first(e, 200));
        }
        for (label, counts) in [("skipped", &f.skipped), ("filtered", &f.filtered)] {
            if counts.is_empty() {
                continue;
            }
            let list: Vec<String> = counts
                .iter()
                .take(6)
                .map(|(what, n)| match label {
                    "skipped" => format!("{n} x {what}"),
                    _ => format!("{n} by {what:?}"),
                })
                .collect();
            let more = if counts.len() > 6 { ", ..." } else { "" };
            let _ = writeln!(o, "  {label}: {}{more}", list.join(", "));
        }
    }
}

/// The first `n` characters of a long text, marked with `…`.
fn first(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        return s.to_string();
    }
    let head: String = s.chars().take(n - 1).collect();
    format!("{head}…")
}

/// The last `n` characters of a long name, marked with `…`.
fn short(s: &str, n: usize) -> String {
    let count = s.chars().count();
    if count <= n {
        return s.to_string();
    }
    let tail: String = s.chars().skip(count - (n - 1)).collect();
    format!("…{tail}")
}

/// Held owners, dead jobs by class, files by state.
fn problems(o: &mut String, v: &StatusView) {
    let s = &v.stats;
    if !s.held_owners.is_empty() {
        let _ = writeln!(o, "\nheld owners:");
        for h in &s.held_owners {
            let _ = writeln!(
                o,
                "  {} ({}: {}) since {}",
                h.owner,
                h.class,
                h.reason,
                iso(h.held_at)
            );
        }
        if all_owners_held(s) {
            let _ = writeln!(
                o,
                "  EVERY OWNER WITH WORK IS HELD: nothing can be delivered until access is restored"
            );
        }
    }
    if !s.dead_by_class.is_empty() {
        let _ = writeln!(
            o,
            "\ndead jobs by class (requeue with `tc-ingest retry --class C`; one job: `tc-ingest why ID`):"
        );
        for (c, k) in &s.dead_by_class {
            let _ = writeln!(o, "  {c:<20}{k:>10}");
        }
    }
    if !s.files_by_state.is_empty() {
        let files: Vec<String> = s
            .files_by_state
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        let _ = writeln!(
            o,
            "\nfiles: {} ({} rows rejected)",
            files.join(", "),
            s.rows_rejected
        );
    }
}

/// One frame of `status --watch`: rates since the previous frame, the
/// backlog, pauses and holds, files being read.
pub fn watch_frame(v: &StatusView, prev: Option<&StatusView>) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "tc-ingest status --watch   {}   (Ctrl-C to stop)",
        iso(v.at)
    );
    daemons::overview(&mut o, v);
    watch_rates(&mut o, v, prev);
    watch_backlog(&mut o, v);
    watch_holds(&mut o, v);
    watch_reading(&mut o, v);
    o
}

/// `status --watch`: jobs delivered and rows read per second since `prev`
/// (`-` on the first frame).
fn watch_rates(o: &mut String, v: &StatusView, prev: Option<&StatusView>) {
    let s = &v.stats;
    let secs = prev.map(|p| ((v.at - p.at).max(1)) as f64 / 1000.0);
    let rate = |now: u64, then: u64| match secs {
        Some(t) => format!("{:.1}/s", now.saturating_sub(then) as f64 / t),
        None => "-".into(),
    };
    let read = |x: &StatusView| x.files.iter().map(|f| f.rows_read).sum::<u64>();
    let delivered = s.jobs(JobState::Delivered);
    let _ = writeln!(
        o,
        "\nrates:    delivered {}   rows read {}   ({} delivered in the last minute)",
        rate(
            delivered,
            prev.map_or(delivered, |p| p.stats.jobs(JobState::Delivered))
        ),
        rate(read(v), prev.map_or(read(v), read)),
        s.delivered_last_minute
    );
}

/// `status --watch`: jobs still to deliver, and those done.
fn watch_backlog(o: &mut String, v: &StatusView) {
    let s = &v.stats;
    let backlog = s.jobs(JobState::Pending) + s.jobs(JobState::Leased) + s.jobs(JobState::Held);
    let _ = writeln!(
        o,
        "backlog:  {backlog} jobs (pending {}, leased {}, held {}), oldest pending {}",
        s.jobs(JobState::Pending),
        s.jobs(JobState::Leased),
        s.jobs(JobState::Held),
        s.oldest_pending_secs.map_or("-".into(), |a| ago(a as i64))
    );
    let _ = writeln!(
        o,
        "done:     {} delivered, {} dead",
        s.jobs(JobState::Delivered),
        s.jobs(JobState::Dead)
    );
}

/// `status --watch`: a slowed rate and the held owners.
fn watch_holds(o: &mut String, v: &StatusView) {
    if let Some(f) = v.daemon.rate_fraction
        && f < 1.0
    {
        let _ = writeln!(o, "rate:     slowed to {:.0}% (429/503 answers)", f * 100.0);
    }
    if v.stats.held_owners.is_empty() {
        let _ = writeln!(o, "holds:    none");
    }
    for h in &v.stats.held_owners {
        let _ = writeln!(
            o,
            "held:     {} ({}: {}) for {}",
            h.owner,
            h.class,
            h.reason,
            v.since(h.held_at)
        );
    }
}

/// `status --watch`: the files being read.
fn watch_reading(o: &mut String, v: &StatusView) {
    let reading: Vec<&FileProgress> = v
        .files
        .iter()
        .filter(|f| f.state == FileState::Processing)
        .collect();
    if reading.is_empty() {
        let _ = writeln!(o, "reading:  no file");
    }
    for f in reading {
        let _ = writeln!(
            o,
            "reading:  {} ({} rows read, {} queued, {} rejected, for {})",
            f.path,
            f.rows_read,
            f.rows_queued,
            f.rows_rejected,
            v.since(f.started_at)
        );
    }
}
