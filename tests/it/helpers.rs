//! Small helpers: a simulator on a loopback port, a temporary state
//! directory with a config pointing at it, and drivers that run until idle.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tc_ingest::api::{Client, Clock};
use tc_ingest::config::{Config, RawConfig, SecretEnv};
use tc_ingest::sim::{Faults, SimConfig, Simulator};

pub async fn sim() -> Simulator {
    sim_with(SimConfig::default()).await
}

pub async fn sim_with(cfg: SimConfig) -> Simulator {
    Simulator::start_local(cfg).await.expect("simulator starts")
}

pub fn faults() -> Faults {
    SimConfig::default().faults
}

/// A temporary state directory and a config for it.
pub struct Env {
    pub dir: tempfile::TempDir,
    pub base_url: String,
    pub extra: String,
}

impl Env {
    pub fn new(base_url: &str) -> Self {
        Self {
            dir: tempfile::tempdir().expect("temp dir"),
            base_url: base_url.to_string(),
            extra: String::new(),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn incoming(&self) -> PathBuf {
        self.path().join("incoming")
    }

    /// The config text: fast settings for tests, plus `extra` (TOML tables
    /// appended; keys of [delivery] etc. can be given in `delivery_extra`).
    pub fn config_text(&self, secret: &str) -> String {
        let root = self.path().display();
        format!(
            r#"[api]
base_url = "{base}"
access_id = "{id}"
secret_key = "{secret}"
owner = "Common Community"
timeout_secs = 5

[watch]
dir = "{root}/incoming"
settle_ms = 200
rescan_secs = 1

[queue]
path = "{root}/queue.db"
lease_secs = 30

{extra}"#,
            base = self.base_url,
            id = tc_ingest::sim::DEFAULT_ACCESS_ID,
            extra = self.extra,
        )
    }

    pub fn config(&self) -> Config {
        self.config_with_secret(tc_ingest::sim::DEFAULT_SECRET)
    }

    pub fn config_with_secret(&self, secret: &str) -> Config {
        let raw: RawConfig = toml::from_str(&self.config_text(secret)).expect("test config parses");
        raw.validate(self.path(), &SecretEnv::default())
            .unwrap_or_else(|e| panic!("test config invalid: {e}"))
    }

    /// Writes the config file and returns its path.
    pub fn write_config(&self, secret: &str) -> PathBuf {
        let p = self.path().join("tc-ingest.toml");
        std::fs::write(&p, self.config_text(secret)).expect("write config");
        p
    }

    pub fn drop_file(&self, name: &str, content: &[u8]) -> PathBuf {
        let p = self.incoming().join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, content).unwrap();
        p
    }
}

/// A client for the simulator with its default credentials.
pub fn client(sim: &Simulator) -> Client {
    client_with(sim, tc_ingest::sim::DEFAULT_SECRET)
}

pub fn client_with(sim: &Simulator, secret: &str) -> Client {
    let env = Env::new(&sim.base_url());
    let cfg = env.config_with_secret(secret);
    Client::new(&cfg.api, Arc::new(Clock::default())).expect("client")
}

/// The fixture at `tests/data/<name>`.
pub fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

/// Runs SQL on a queue's file through a connection of its own, as an
/// operator's sqlite3 would (rows inserted by hand); returns rows changed.
pub async fn sql(queue: &tc_ingest::queue::Queue, sql: &str) -> u64 {
    use sqlx::{ConnectOptions, Executor};
    let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(queue.path())
        .connect()
        .await
        .expect("open the queue file");
    conn.execute(sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string())))
        .await
        .expect("SQL runs")
        .rows_affected()
}
