//! The queue's types: what goes in, what comes out, and the closed sets of
//! job and file states (stored as their names, which the schema's CHECKs list).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::indicator::{Indicator, IndicatorType, Payload};
pub use crate::names::{ErrorClass, JobAction};
use crate::normalize::RejectRule;

crate::names::named_enum! {
    /// Where a job is in its life (`jobs.state`).
    pub enum JobState ("job state") {
        /// Waiting for `next_attempt_at`.
        Pending => "pending",
        /// Claimed by a delivery worker until `lease_expires_at`.
        Leased => "leased",
        /// In a ThreatConnect batch job (`batch_ref`), waiting for its result.
        Batched => "batched",
        /// Every call succeeded.
        Delivered => "delivered",
        /// Its owner is held: it waits until the owner is released.
        Held => "held",
        /// Buried: refused by the API or out of attempts (`retry` requeues it).
        Dead => "dead",
    }
}

crate::names::named_enum! {
    /// Where a feed file is in its life (`files.state`).
    pub enum FileState ("file state") {
        /// Being read (or left mid-read by a stopped daemon: it resumes).
        Processing => "processing",
        /// Every row queued, duplicate or rejected.
        Done => "done",
        /// Not readable (at all, or past a line).
        Failed => "failed",
        /// Same content as a file already taken.
        Skipped => "skipped",
    }
}

#[derive(Debug, Clone)]
pub struct NewJob {
    pub owner: String,
    pub indicator: Indicator,
    pub payload: Payload,
    pub line: Option<u64>,
}

impl NewJob {
    pub(super) fn payload_json(&self) -> String {
        serde_json::to_string(&self.payload).expect("payload serializes")
    }

    /// Same owner, type, value and payload give the same key.
    pub(super) fn dedup_key(&self, payload_json: &str) -> i64 {
        let mut h = Sha256::new();
        for part in [
            self.owner.as_str(),
            self.indicator.kind().tc_name(),
            self.indicator.summary(),
            payload_json,
        ] {
            h.update(part.as_bytes());
            h.update([0u8]);
        }
        let digest = h.finalize();
        i64::from_le_bytes(digest[..8].try_into().expect("8 bytes"))
    }
}

/// A row refused before queuing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewReject {
    pub line: u64,
    pub input: String,
    pub rule: RejectRule,
    pub reason: String,
}

/// Which owners' batchable jobs (nothing of their delivery started) the
/// batcher has, so that per-indicator claims leave them alone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum BatchOwners {
    /// None: every job may go per indicator.
    #[default]
    None,
    /// These owners'.
    Only(Vec<String>),
    /// Every owner's but these.
    AllBut(Vec<String>),
}

impl BatchOwners {
    /// Whether `owner`'s batchable jobs go by batch.
    pub fn batches(&self, owner: &str) -> bool {
        match self {
            BatchOwners::None => false,
            BatchOwners::Only(o) => o.iter().any(|x| x == owner),
            BatchOwners::AllBut(o) => !o.iter().any(|x| x == owner),
        }
    }

    /// Whether no owner goes by batch.
    pub fn is_none(&self) -> bool {
        matches!(self, BatchOwners::None) || matches!(self, BatchOwners::Only(o) if o.is_empty())
    }
}

/// A claim on one job: a result applies only while the job is still leased
/// under this token (a fenced lease).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Lease {
    pub id: i64,
    pub token: i64,
}

/// A job as claimed for delivery.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    pub lease: Lease,
    pub owner: String,
    pub kind: String,
    pub value: String,
    pub payload: String,
    /// Calls already done (durably): 1 = created, then one per tag, then per attribute.
    pub steps_done: u32,
    /// Consecutive failures of the current call.
    pub attempts: u32,
    /// What of its delivery may have reached ThreatConnect unrecorded.
    pub uncertain: Uncertainty,
    /// Create the indicator, or retire it.
    pub action: JobAction,
}

/// What of a job's delivery may have reached ThreatConnect unrecorded: the
/// `call_uncertain` column, whose integers (0, 1, 2) it reads and writes
/// unchanged. Ordered: a job's uncertainty only grows until a call's
/// success is recorded, and `Batch` stays until the job is delivered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub enum Uncertainty {
    /// Every call's result is known.
    #[default]
    None,
    /// The current call may have reached the server (a crash, a lost
    /// answer, a reclaimed lease): an attribute is looked for before it is
    /// sent again.
    Call,
    /// The job was in a batch job that may have been processed: every
    /// attribute is looked for before it is sent, and it never goes by
    /// batch again.
    Batch,
}

impl Uncertainty {
    /// The `call_uncertain` value.
    pub fn column(self) -> i64 {
        match self {
            Uncertainty::None => 0,
            Uncertainty::Call => 1,
            Uncertainty::Batch => 2,
        }
    }

    /// From `call_uncertain`; a value written by hand past 2 reads as the
    /// most careful.
    pub fn from_column(v: i64) -> Self {
        match v {
            0 => Uncertainty::None,
            1 => Uncertainty::Call,
            _ => Uncertainty::Batch,
        }
    }

    /// Whether the current call may have reached the server.
    pub fn call_may_have_arrived(self) -> bool {
        self != Uncertainty::None
    }

    /// Whether every attribute is looked for before it is sent.
    pub fn recheck_attributes(self) -> bool {
        self == Uncertainty::Batch
    }
}

impl Job {
    /// The typed indicator and payload. A row inserted by hand may not parse.
    ///
    /// # Errors
    /// A message saying what is wrong with the row.
    pub fn parse(&self) -> Result<(Indicator, Payload), String> {
        let kind = IndicatorType::from_tc_name(&self.kind).ok_or_else(|| {
            format!(
                "unknown type {:?} (use ThreatConnect's type name)",
                self.kind
            )
        })?;
        let payload: Payload = serde_json::from_str(&self.payload)
            .map_err(|e| format!("invalid payload JSON: {e}"))?;
        Ok((
            Indicator::from_normalized(kind, self.value.clone()),
            payload,
        ))
    }
}

/// What a worker reports about a claimed job. `Progress` keeps the lease;
/// the others end it.
#[derive(Debug, Clone, PartialEq)]
pub enum JobUpdate {
    /// A call succeeded and more follow: `steps_done` calls are done, the
    /// next call starts with a fresh retry budget, and the lease is renewed.
    Progress { steps_done: u32 },
    /// Every call succeeded.
    Delivered,
    /// Try the current call again at `at` (Unix ms). `failed` counts an
    /// attempt of the call (false for what is not its fault: a pause, a
    /// held owner, shutdown); `uncertain` says it may have reached the
    /// server.
    Retry {
        at: i64,
        failed: bool,
        uncertain: bool,
        error: Option<JobError>,
    },
    /// Buried: `retry` requeues it.
    Bury { error: JobError },
    /// The owner is held: park the job as `held` until the owner is released.
    Hold { error: JobError },
}

#[derive(Debug, Clone, PartialEq)]
pub struct JobError {
    pub class: ErrorClass,
    pub http_status: Option<u16>,
    pub message: String,
}

/// Why delivery is paused, as shown by `status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pause {
    pub class: ErrorClass,
    pub reason: String,
    /// Unix ms.
    pub since: i64,
}

/// A held owner.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeldOwner {
    pub owner: String,
    pub class: ErrorClass,
    pub reason: String,
    pub held_at: i64,
}

/// A file as the queue records it.
#[derive(Debug, Clone, PartialEq)]
pub struct FileRow {
    pub id: i64,
    pub path: String,
    pub processing_path: Option<String>,
    pub sha256: String,
    pub state: FileState,
    pub owner: String,
    pub rows_read: u64,
    pub rows_queued: u64,
    pub rows_rejected: u64,
    pub rows_duplicate: u64,
    pub rows_skipped: u64,
    pub rows_filtered: u64,
    /// The format it is read as (`csv`, `stix`...), once reading began.
    pub format: Option<String>,
    pub last_position: u64,
    pub error: Option<String>,
    /// Where the file was moved when it finished.
    pub moved_to: Option<String>,
    /// Interrupted reads in a row that committed no row.
    pub stalls: u32,
    /// A daemon is reading it (or died doing so).
    pub reading: bool,
}

impl FileRow {
    /// Given up after reads that the daemon died in without progress:
    /// `retry --file` puts it back.
    pub fn given_up(&self) -> bool {
        self.state == FileState::Failed && self.stalls > 0
    }
}

/// A new file to record.
#[derive(Debug, Clone)]
pub struct NewFile<'a> {
    pub path: &'a str,
    pub processing_path: Option<&'a str>,
    pub sha256: &'a str,
    pub size_bytes: u64,
    pub owner: &'a str,
    /// The named feed it is read for.
    pub feed: Option<&'a str>,
}

/// How a file ended, as [`Queue::file_finish`](super::Queue::file_finish) records it.
#[derive(Debug, Clone, Copy)]
pub struct FileFinish<'a> {
    pub state: FileState,
    pub format: Option<crate::feed::Format>,
    pub error: Option<&'a str>,
    /// Given up after stalled reads (`files.stalls` kept).
    pub given_up: bool,
}

/// One chunk of a file's rows, as [`Queue::commit_file_chunk`](super::Queue::commit_file_chunk) takes it.
#[derive(Debug, Clone, Copy)]
pub struct FileChunk<'a> {
    pub jobs: &'a [NewJob],
    pub rejects: &'a [NewReject],
    /// Rows skipped, by reason.
    pub skipped: &'a [(String, u64)],
    /// Rows the allowlist filtered, by what matched.
    pub filtered: &'a [(String, u64)],
    /// The named feed the file is read for: its jobs' indicators are the
    /// feed's members.
    pub feed: Option<&'a str>,
    /// Source object ids the source withdrew (revoked, deleted, expired):
    /// the indicators they gave are retired.
    pub withdrawn: &'a [String],
    /// How this file's feed retires.
    pub retiring: super::Retiring<'a>,
    pub rows_read: u64,
    pub last_position: u64,
}

/// What one committed chunk did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChunkResult {
    pub queued: u64,
    pub duplicates: u64,
    /// Retire jobs queued for what the source withdrew.
    pub retired: u64,
}

/// Which buried jobs `retry` requeues.
#[derive(Debug, Clone, Default)]
pub struct RetryFilter {
    pub class: Option<ErrorClass>,
    pub owner: Option<String>,
    /// Matches the file's recorded path exactly or by its final name.
    pub file: Option<String>,
}

/// What [`Queue::outstanding`] found: jobs leased or in a batch job, and when the next
/// pending job of an owner that is not held falls due (Unix ms).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Outstanding {
    /// Whether any job is leased, or in a batch job at ThreatConnect.
    pub in_flight: bool,
    pub next_due: Option<i64>,
}

/// The cheap counts of [`Queue::state_counts`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StateCounts {
    pub pending: u64,
    pub leased: u64,
    pub batched: u64,
    pub held: u64,
    pub dead: u64,
    /// Jobs delivered since the time asked about.
    pub delivered_since: u64,
}

impl StateCounts {
    /// The counts by state (for the metrics gauge).
    pub fn by_state(&self) -> BTreeMap<JobState, u64> {
        BTreeMap::from([
            (JobState::Pending, self.pending),
            (JobState::Leased, self.leased),
            (JobState::Batched, self.batched),
            (JobState::Held, self.held),
            (JobState::Dead, self.dead),
        ])
    }
}

/// Counts for `status`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Stats {
    pub by_state: BTreeMap<JobState, u64>,
    pub by_owner: BTreeMap<String, BTreeMap<JobState, u64>>,
    pub by_type: BTreeMap<String, BTreeMap<JobState, u64>>,
    /// Keyed by the stored class name (`unknown` where none was recorded).
    pub dead_by_class: BTreeMap<String, u64>,
    pub held_owners: Vec<HeldOwner>,
    pub pause: Option<Pause>,
    /// Age in seconds of the oldest pending job.
    pub oldest_pending_secs: Option<u64>,
    pub delivered_last_minute: u64,
    pub delivered_last_hour: u64,
    pub files_by_state: BTreeMap<FileState, u64>,
    pub rows_rejected: u64,
    /// The daemon's last heartbeat (JSON it wrote), if any.
    pub heartbeat: Option<serde_json::Value>,
    /// Batch jobs not done or failed, oldest first.
    pub batches: Vec<super::BatchJob>,
}

impl Stats {
    /// Jobs in `state`.
    pub fn jobs(&self, state: JobState) -> u64 {
        self.by_state.get(&state).copied().unwrap_or(0)
    }
}

/// A job row for reports and tests.
#[derive(Debug, Clone, PartialEq)]
pub struct JobRow {
    pub id: i64,
    pub owner: String,
    pub kind: String,
    pub value: String,
    pub steps_done: u32,
    pub attempts: u32,
    pub last_error_class: Option<ErrorClass>,
    pub last_http_status: Option<u16>,
    pub last_error: Option<String>,
}
