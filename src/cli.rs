//! Command-line interface (clap derive).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::indicator::IndicatorType;

#[derive(Debug, Parser)]
#[command(
    name = "tc-ingest",
    version,
    about = "Bulk-load threat indicators into ThreatConnect"
)]
pub struct Cli {
    /// Log format: human text, or JSON lines for log shippers.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Args, Clone)]
pub struct ConfigArg {
    /// Config file (default: $TC_INGEST_CONFIG, else /etc/tc-ingest/tc-ingest.toml).
    #[arg(long, short = 'c')]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum SourcesAction {
    /// List a TAXII 2.1 server's API roots and collections (id, title,
    /// can_read), to write a `[[sources]]` table.
    Discover {
        /// The discovery URL (`https://host/taxii2/`) or an API root.
        url: String,
        /// HTTP basic auth user (with --password-file).
        #[arg(long, requires = "password_file")]
        username: Option<String>,
        /// A file holding the password.
        #[arg(long)]
        password_file: Option<PathBuf>,
        /// A file with one `Name: value` header line (API keys, bearer tokens).
        #[arg(long)]
        header_file: Option<PathBuf>,
        /// PEM certificates to trust besides the system's.
        #[arg(long)]
        ca_file: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum QueueAction {
    /// Copy a SQLite queue (pending work, dead letters, files, rejects,
    /// source and lifecycle state) into the config's PostgreSQL queue
    /// (`queue.url`), which must be empty. The SQLite file is left as it
    /// is; stop its daemon first.
    Migrate {
        #[command(flatten)]
        config: ConfigArg,
        /// The SQLite queue: `sqlite:/var/lib/tc-ingest/queue.db`.
        #[arg(long)]
        from: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon: watch the directory, queue feeds, deliver to ThreatConnect.
    Run {
        #[command(flatten)]
        config: ConfigArg,
        /// Take every file present, deliver everything due, then exit
        /// (0: all delivered; 1: something buried, held or paused; 2: config or startup error).
        #[arg(long)]
        once: bool,
    },
    /// List the known public feeds a feed rule can name with `preset`:
    /// where each is published, its terms, and the keys it sets.
    Presets,
    /// Pull sources: each one's kind, health (STALE, FAILING), last success,
    /// last error, cursor and what it fetched; or `discover` a TAXII server.
    Sources {
        #[command(flatten)]
        config: ConfigArg,
        /// Print the sources as JSON (as in `status --json`).
        #[arg(long)]
        json: bool,
        #[command(subcommand)]
        action: Option<SourcesAction>,
    },
    /// Validate the config and print it with the secret redacted (exit 2 on errors).
    CheckConfig {
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Check connectivity and credentials: GET /v2/owners, signed.
    Ping {
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Normalize feed files and print one JSON object per row (no database, no network).
    Normalize {
        /// Apply this config's feed rules (columns, type, owner, tags) to
        /// each file by its name, as the daemon would; no secret needed.
        #[arg(long, short = 'c')]
        config: Option<PathBuf>,
        /// Indicator type of every value (default: detected per value).
        #[arg(long = "type", short = 't', value_parser = indicator_type)]
        kind: Option<IndicatorType>,
        /// Feed files to read.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Normalize feed files and add them to the queue (the daemon delivers them).
    Enqueue {
        #[command(flatten)]
        config: ConfigArg,
        /// Owner of every indicator (default: the feed rules, else api.owner).
        #[arg(long)]
        owner: Option<String>,
        /// Indicator type of every value (default: detected per value).
        #[arg(long = "type", short = 't', value_parser = indicator_type)]
        kind: Option<IndicatorType>,
        /// Feed files to queue.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Show the queue: whether a daemon runs, counts by state, owner and
    /// type, recent files, pauses, holds, dead jobs.
    Status {
        #[command(flatten)]
        config: ConfigArg,
        /// Print one stable JSON object (fields documented in the README).
        #[arg(long, conflicts_with = "watch")]
        json: bool,
        /// A live view, redrawn every --interval: rates, backlog, pauses,
        /// holds, files being read (Ctrl-C to stop).
        #[arg(long)]
        watch: bool,
        /// How often --watch redraws (e.g. 2s, 500ms).
        #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
        interval: std::time::Duration,
        /// With --watch: stop after this many frames.
        #[arg(long, requires = "watch")]
        count: Option<u64>,
    },
    /// Everything known about one indicator: where it came from (file,
    /// line, feed rule), its normalized form, its job's state, attempts,
    /// last error, and what to do next.
    Why {
        #[command(flatten)]
        config: ConfigArg,
        /// A value as written in a feed (it is normalized first), a job id,
        /// or FILE:LINE (the file's name or path as recorded).
        what: String,
    },
    /// Requeue buried (dead) jobs, optionally only of one class, owner or file.
    Retry {
        #[command(flatten)]
        config: ConfigArg,
        /// Only jobs buried with this error class (e.g. validation, server_error).
        #[arg(long)]
        class: Option<crate::names::ErrorClass>,
        /// Only jobs of this owner (exact name).
        #[arg(long)]
        owner: Option<String>,
        /// Only jobs from this feed file: its path as recorded, or its file
        /// name (matched exactly, no patterns); an unknown file is an error.
        #[arg(long)]
        file: Option<String>,
        /// Show what would be requeued (by class), change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Delete delivered jobs older than a duration (e.g. 7d).
    #[command(group = clap::ArgGroup::new("what").required(true).args(["delivered_before", "allowlisted"]))]
    Purge {
        #[command(flatten)]
        config: ConfigArg,
        /// Delete jobs delivered longer ago than this (e.g. 30d, 12h).
        #[arg(long, value_parser = humantime::parse_duration)]
        delivered_before: Option<std::time::Duration>,
        /// Waiting jobs (pending, held) the allowlist now filters: listed,
        /// and deleted with --confirm.
        #[arg(long)]
        allowlisted: bool,
        /// With --allowlisted: delete them.
        #[arg(long, requires = "allowlisted")]
        confirm: bool,
        /// Show how many would be deleted, change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// A named feed's snapshot held by a safeguard: list what releasing it
    /// would retire (the default), or release it with --confirm.
    Retire {
        #[command(flatten)]
        config: ConfigArg,
        /// The feed rule's (or source's) name.
        #[arg(long)]
        feed: String,
        /// Release the held snapshot: what it dropped is retired.
        #[arg(long, conflicts_with = "dry_run")]
        confirm: bool,
        /// With --confirm: release only if the snapshot held is this file
        /// (the number the dry run shows), not a newer one.
        #[arg(long, requires = "confirm")]
        snapshot: Option<i64>,
        /// List what would be retired, change nothing (the default).
        #[arg(long)]
        dry_run: bool,
    },
    /// The queue itself: `migrate` moves a SQLite queue into the
    /// PostgreSQL queue of the config.
    Queue {
        #[command(subcommand)]
        action: QueueAction,
    },
    /// Run the built-in ThreatConnect simulator.
    Sim(SimArgs),
    /// Demo: simulator + daemon + sample feeds, then a report.
    Demo {
        /// Keep the temporary directory (queue, feeds, config) for inspection.
        #[arg(long)]
        keep: bool,
    },
    /// Write shell completions (bash, zsh, fish) and man pages under a
    /// directory: `completions/` and `man/` (packaging runs it).
    #[command(hide = true)]
    Generate {
        /// The directory to write into (created if missing).
        #[arg(long)]
        out: PathBuf,
    },
    /// Benchmarks (numbers in the README come from these).
    Bench {
        /// Which benchmark to run.
        #[arg(value_enum)]
        which: BenchKind,
        /// Size of the run (rows or jobs); each benchmark has a default.
        #[arg(long)]
        n: Option<u64>,
        /// For `deliver`: the rate limit (0 = none; with --mode, default 20,
        /// the daemon's default).
        #[arg(long)]
        rate: Option<u32>,
        /// For `deliver` without --mode: how long to measure.
        #[arg(long, default_value_t = 60)]
        seconds: u64,
        /// For `deliver`: time to deliver a tagged feed (two tags each, a
        /// description on every fourth; 20,000 by default) in this mode.
        #[arg(long)]
        mode: Option<crate::config::DeliveryMode>,
        /// For `deliver --mode`: the simulator's latency per request.
        #[arg(long, default_value_t = 100)]
        latency_ms: u64,
        /// For `deliver --mode`: the simulator's batch processing rate
        /// (items/s, one queue for all batch jobs).
        #[arg(long, default_value_t = 1000)]
        batch_rate: u64,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BenchKind {
    Normalize,
    Queue,
    Intake,
    Deliver,
    /// The hostile corpus into a running daemon: its peak RSS per case
    /// (`--n`: the size that crosses the limits, default 100 MB).
    Hostile,
    /// The same indicators as a CSV, a STIX bundle and a MISP event, file
    /// to queued (`--n`, default 1,000,000).
    Formats,
    /// The same networks as a plain list and as Spamhaus DROP publishes
    /// them, file to queued (`--n`, default 1,000,000).
    Lists,
    /// A mixed feed with no allowlist and with every MISP warninglist of
    /// `$TC_INGEST_WARNINGLISTS` (default /usr/share/misp-warninglists/lists)
    /// loaded, file to queued (`--n`, default 1,000,000).
    Allowlist,
    /// A named snapshot feed of `--n` indicators (default 1,000,000), then
    /// one with 10% gone and 5% new: its reconciliation's time.
    Reconcile,
    /// The status page of a queue of `--n` jobs (default 1,000,000) in 200
    /// named feeds: the time to read and render it.
    Page,
}

#[derive(Debug, Args)]
pub struct SimArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8450")]
    pub listen: SocketAddr,
    /// The access id the simulator accepts.
    #[arg(long, default_value = crate::sim::DEFAULT_ACCESS_ID)]
    pub access_id: String,
    /// The simulator's secret key (a test value, not a real one).
    #[arg(long, default_value = crate::sim::DEFAULT_SECRET)]
    pub secret: String,
    /// The API token it accepts (`Authorization: TC-Token <token>`).
    #[arg(long, default_value = crate::sim::DEFAULT_TOKEN)]
    pub token: String,
    /// Start with the token expired (401 "Unauthorized"); also
    /// `POST /_sim/faults {"token_expired": true}`.
    #[arg(long)]
    pub token_expired: bool,
    /// Base path: "" for public-cloud style paths, "/api" for sandbox/on-premise style.
    #[arg(long, default_value = "")]
    pub base_path: String,
    /// Owners (repeatable); default "Exemplary Organization" and "Common Community".
    #[arg(long = "owner")]
    pub owners: Vec<String>,
    /// Fraction (0..1) of API requests answered with --error-status.
    #[arg(long, default_value_t = 0.0)]
    pub error_rate: f64,
    /// The HTTP status of those errors.
    #[arg(long, default_value_t = 500)]
    pub error_status: u16,
    /// Delay added to every answer, in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,
    /// Fraction (0..1) of API requests whose connection is cut before the answer.
    #[arg(long, default_value_t = 0.0)]
    pub drop_rate: f64,
    /// Fraction (0..1) of API requests processed (what they create is stored)
    /// whose answer is then lost: the connection is cut.
    #[arg(long, default_value_t = 0.0)]
    pub lost_response_rate: f64,
    /// How far the simulator's clock is from ours, in seconds (signatures
    /// outside ±300 s of it are refused).
    #[arg(long, default_value_t = 0, allow_hyphen_values = true)]
    pub clock_skew_secs: i64,
    /// Owners whose access is denied (repeatable).
    #[arg(long = "deny-owner")]
    pub denied_owners: Vec<String>,
}

/// `--type`: a type name as feeds spell it ([`IndicatorType::parse_alias`]).
fn indicator_type(name: &str) -> Result<IndicatorType, String> {
    IndicatorType::parse_alias(name).ok_or_else(|| {
        format!("unknown indicator type {name:?} (ThreatConnect's names such as Address, Host, URL, File, or aliases such as ip, domain, md5)")
    })
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn every_flag_and_argument_has_help_text() {
        let mut missing = Vec::new();
        let cli = super::Cli::command();
        for cmd in std::iter::once(&cli).chain(cli.get_subcommands()) {
            for arg in cmd.get_arguments() {
                let id = arg.get_id().as_str();
                if id == "help" || id == "version" {
                    continue;
                }
                if arg.get_help().is_none() {
                    missing.push(format!("{} --{id}", cmd.get_name()));
                }
            }
        }
        assert!(missing.is_empty(), "no help text: {missing:?}");
    }
}
