//! Command-line interface (clap derive).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

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
        /// Indicator type of every value (default: detected per value).
        #[arg(long = "type", short = 't')]
        kind: Option<String>,
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
        #[arg(long = "type", short = 't')]
        kind: Option<String>,
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Show the queue: counts by state, owner and type, pauses, holds, dead jobs.
    Status {
        #[command(flatten)]
        config: ConfigArg,
        /// Print one stable JSON object (fields documented in the README).
        #[arg(long)]
        json: bool,
    },
    /// Requeue buried (dead) jobs, optionally only of one class, owner or file.
    Retry {
        #[command(flatten)]
        config: ConfigArg,
        #[arg(long)]
        class: Option<crate::names::ErrorClass>,
        #[arg(long)]
        owner: Option<String>,
        /// Source file name or path (as recorded in the queue).
        #[arg(long)]
        file: Option<String>,
    },
    /// Delete delivered jobs older than a duration (e.g. 7d).
    Purge {
        #[command(flatten)]
        config: ConfigArg,
        #[arg(long, value_parser = humantime::parse_duration)]
        delivered_before: std::time::Duration,
    },
    /// Run the built-in ThreatConnect simulator.
    Sim(SimArgs),
    /// Demo: simulator + daemon + sample feeds, then a report.
    Demo {
        /// Keep the temporary directory (queue, feeds, config) for inspection.
        #[arg(long)]
        keep: bool,
    },
    /// Benchmarks (numbers in the README come from these).
    Bench {
        #[arg(value_enum)]
        which: BenchKind,
        /// Size of the run (rows or jobs); each benchmark has a default.
        #[arg(long)]
        n: Option<u64>,
        /// For `deliver`: the rate limit (0 = none) and how long to measure.
        #[arg(long, default_value_t = 0)]
        rate: u32,
        #[arg(long, default_value_t = 60)]
        seconds: u64,
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
}

#[derive(Debug, Args)]
pub struct SimArgs {
    #[arg(long, default_value = "127.0.0.1:8450")]
    pub listen: SocketAddr,
    #[arg(long, default_value = crate::sim::DEFAULT_ACCESS_ID)]
    pub access_id: String,
    /// The simulator's secret key (a test value, not a real one).
    #[arg(long, default_value = crate::sim::DEFAULT_SECRET)]
    pub secret: String,
    /// Base path: "" for public-cloud style paths, "/api" for sandbox/on-premise style.
    #[arg(long, default_value = "")]
    pub base_path: String,
    /// Owners (repeatable); default "Exemplary Organization" and "Common Community".
    #[arg(long = "owner")]
    pub owners: Vec<String>,
    #[arg(long, default_value_t = 0.0)]
    pub error_rate: f64,
    #[arg(long, default_value_t = 500)]
    pub error_status: u16,
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,
    #[arg(long, default_value_t = 0.0)]
    pub drop_rate: f64,
    /// Fraction (0..1) of API requests processed (what they create is stored)
    /// whose answer is then lost: the connection is cut.
    #[arg(long, default_value_t = 0.0)]
    pub lost_response_rate: f64,
    #[arg(long, default_value_t = 0, allow_hyphen_values = true)]
    pub clock_skew_secs: i64,
    /// Owners whose access is denied (repeatable).
    #[arg(long = "deny-owner")]
    pub denied_owners: Vec<String>,
}
