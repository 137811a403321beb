//! The test harness, the one support module of every test file: a
//! simulator on a loopback port and a temporary state directory with a
//! config pointing at it ([`TestApp`]), the daemon in process
//! ([`TestDaemon`]) or as the real binary ([`DaemonProcess`]), tasks run
//! until stopped ([`Background`]); and, in submodules, waiting (`wait`:
//! polls with a deadline, and the one sanctioned wall-time hold), queue jobs
//! and records (`jobs`), config snippets and edits (`config`), the binary's
//! output (`cli`), HTTP and sockets (`net`), HTTPS with a private CA
//! (`tls`), the queue read as an operator would (`db`) and the state
//! directory's folders (`dirs`).
//!
//! Helpers import nothing from the test modules.

use std::ops::{Deref, DerefMut};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Arc;
use std::time::Duration;

use tc_ingest::api::{Client, Clock};
use tc_ingest::app::{Daemon, OnceReport, drive_once};
use tc_ingest::config::{Config, SecretEnv};
use tc_ingest::intake::Intake;
use tc_ingest::queue::{NewJob, Queue};
use tc_ingest::sim::{Faults, SimConfig, Simulator};
use tokio::process::Command;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

mod cli;
mod config;
mod db;
mod dirs;
mod jobs;
mod net;
mod pg;
mod process;
mod taxii;
mod tls;
mod wait;

pub use cli::{assert_contains_all, exited, output_text};
pub use config::{FAST_POLICY, QUICK_DELIVERY, UNTHROTTLED};
pub use db::{number, number_at, numbers_at, sql, sqlite3_number, text, try_number_at};
pub use dirs::{ended, landed, names};
pub use jobs::{
    DAY, EMPTY_MD5, EMPTY_SHA256, claim, described, description, enqueue, file_record, hosts, ind,
    ips, job,
};
pub use net::{connections_to, free_port, http, http_get, post_sim_faults};
#[allow(unused_imports)]
pub use pg::{on_postgres, skip_on_postgres};
pub use process::{DaemonProcess, Sibling, command};
pub use taxii::{COLLECTION as TAXII_COLLECTION, Medallion, domains, taxii_source};
pub use tls::{https_serve, https_sim, private_ca};
pub use wait::{clock_past, hold_for, poll_every, wait_until, wait_until_or};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_tc-ingest");

/// The simulator's default faults (none), for `..faults()`.
pub fn faults() -> Faults {
    SimConfig::default().faults
}

/// How a [`TestApp`] is set up: `TestApp::builder().faults(..).extra_config(..).start().await`.
pub struct TestAppBuilder {
    sim: SimConfig,
    simulator: Option<Simulator>,
    extra: String,
    api_extra: String,
    token: Option<String>,
    lease_secs: u64,
    /// The queue on PostgreSQL (true) or SQLite (false); unset, as
    /// `TC_INGEST_TEST_QUEUE` says.
    postgres: Option<bool>,
}

impl TestAppBuilder {
    /// The queue on PostgreSQL whatever `TC_INGEST_TEST_QUEUE` says (tests
    /// of several daemons sharing a queue).
    pub fn postgres(mut self) -> Self {
        self.postgres = Some(true);
        self
    }

    /// The queue in a SQLite file whatever `TC_INGEST_TEST_QUEUE` says
    /// (a queue to move into PostgreSQL).
    pub fn sqlite(mut self) -> Self {
        self.postgres = Some(false);
        self
    }

    /// `queue.lease_secs` (30 unless set).
    pub fn lease_secs(mut self, secs: u64) -> Self {
        self.lease_secs = secs;
        self
    }

    /// Faults the simulator starts with.
    pub fn faults(mut self, faults: Faults) -> Self {
        self.sim.faults = faults;
        self
    }

    /// The API secret, both the simulator's and the config's.
    pub fn secret(mut self, secret: &str) -> Self {
        self.sim.secret = secret.into();
        self
    }

    /// The simulator's base path (`"/api"`: sandbox and on-premise).
    pub fn base_path(mut self, path: &str) -> Self {
        self.sim.base_path = path.into();
        self
    }

    /// TOML appended to the config (`[delivery]` settings, `[[feeds]]` rules).
    pub fn extra_config(mut self, toml: &str) -> Self {
        self.extra = toml.into();
        self
    }

    /// TOML lines added to `[api]` (`proxy = ...`, `ca_file = ...`).
    pub fn api_config(mut self, toml: &str) -> Self {
        self.api_extra = toml.into();
        self
    }

    /// Authenticate with this API token (written to a file named by
    /// `api.token_file`) instead of the access id and secret key.
    pub fn token(mut self, token: &str) -> Self {
        self.token = Some(token.into());
        self
    }

    /// A simulator started elsewhere (over HTTPS) instead of a local one.
    pub fn simulator(mut self, sim: Simulator) -> Self {
        self.simulator = Some(sim);
        self
    }

    /// Starts the simulator, creates the state directory and writes the config.
    pub async fn start(self) -> TestApp {
        let secret = self.sim.secret.clone();
        let sim = match self.simulator {
            Some(sim) => sim,
            None => Simulator::start_local(self.sim)
                .await
                .expect("simulator starts"),
        };
        let app = TestApp {
            sim,
            dir: tempfile::tempdir().expect("temp dir"),
            extra: self.extra,
            api_extra: self.api_extra,
            token: self.token.is_some(),
            lease_secs: self.lease_secs,
            queue_url: if self.postgres.unwrap_or_else(pg::on_postgres) {
                Some(pg::fresh_database().await)
            } else {
                None
            },
        };
        if let Some(token) = &self.token {
            std::fs::write(app.path().join("token"), token).expect("write token");
        }
        app.write_config(&secret);
        app
    }
}

/// A simulator and a temporary state directory with a config for both.
pub struct TestApp {
    pub sim: Simulator,
    dir: tempfile::TempDir,
    extra: String,
    api_extra: String,
    /// The credentials are the API token in `<dir>/token`.
    token: bool,
    lease_secs: u64,
    /// A PostgreSQL queue's URL (`TC_INGEST_TEST_QUEUE=postgres`), or
    /// none: the SQLite file `queue.db` in the state directory.
    queue_url: Option<String>,
}

impl TestApp {
    /// A simulator without faults and a config without extras.
    pub async fn start() -> TestApp {
        Self::builder().start().await
    }

    pub fn builder() -> TestAppBuilder {
        TestAppBuilder {
            sim: SimConfig::default(),
            simulator: None,
            extra: String::new(),
            api_extra: String::new(),
            token: None,
            lease_secs: 30,
            postgres: None,
        }
    }

    /// The state directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The watched directory.
    pub fn incoming(&self) -> PathBuf {
        self.path().join("incoming")
    }

    pub fn config_path(&self) -> PathBuf {
        self.path().join("tc-ingest.toml")
    }

    /// The SQLite queue file (the suite on SQLite).
    pub fn queue_path(&self) -> PathBuf {
        self.path().join("queue.db")
    }

    /// Where the queue is: the SQLite file, or the PostgreSQL URL.
    pub fn queue_location(&self) -> String {
        match &self.queue_url {
            Some(url) => url.clone(),
            None => self.queue_path().display().to_string(),
        }
    }

    /// The `[queue]` line that says where the queue is.
    fn queue_line(&self) -> String {
        match &self.queue_url {
            Some(url) => format!("url = \"{url}\""),
            None => format!("path = \"{}/queue.db\"", self.path().display()),
        }
    }

    /// The config text: fast settings for tests, plus the extra config.
    fn config_text(&self, secret: &str) -> String {
        let root = self.path().display();
        let credentials = if self.token {
            format!("token_file = \"{root}/token\"")
        } else {
            format!(
                "access_id = \"{id}\"\nsecret_key = \"{secret}\"",
                id = tc_ingest::sim::DEFAULT_ACCESS_ID
            )
        };
        format!(
            r#"[api]
base_url = "{base}"
{credentials}
owner = "Common Community"
timeout_secs = 5
{api_extra}

[watch]
dir = "{root}/incoming"
settle_ms = 200
rescan_secs = 1

[queue]
{queue}
lease_secs = {lease}

{extra}"#,
            lease = self.lease_secs,
            queue = self.queue_line(),
            base = self.sim.base_url(),
            api_extra = self.api_extra,
            extra = self.extra,
        )
    }

    fn parse_config(&self, text: &str) -> Config {
        // Read as the daemon reads it (presets expanded), with an empty
        // environment; relative paths against the state directory.
        Config::parse_with(
            text,
            &self.path().join("config.toml"),
            &SecretEnv::default(),
        )
        .unwrap_or_else(|e| panic!("test config invalid: {e}"))
    }

    /// (Re)writes the config file with `secret`.
    pub fn write_config(&self, secret: &str) {
        std::fs::write(self.config_path(), self.config_text(secret)).expect("write config");
    }

    /// The config as the file says now.
    pub fn config(&self) -> Config {
        let text = std::fs::read_to_string(self.config_path()).expect("read config");
        self.parse_config(&text)
    }

    /// A client for the simulator with the config's credentials.
    pub fn client(&self) -> Client {
        Client::new(&self.config().api, Arc::new(Clock::default())).expect("client")
    }

    /// A client signing with `secret`.
    pub fn client_with(&self, secret: &str) -> Client {
        let cfg = self.parse_config(&self.config_text(secret));
        Client::new(&cfg.api, Arc::new(Clock::default())).expect("client")
    }

    /// Writes `incoming/<name>` in place.
    pub fn drop_file(&self, name: &str, content: &[u8]) -> PathBuf {
        let p = self.incoming().join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, content).unwrap();
        p
    }

    /// Writes `incoming/<name>` the atomic way: a hidden file renamed in.
    pub fn rename_in(&self, name: &str, content: &[u8]) {
        std::fs::create_dir_all(self.incoming()).unwrap();
        let tmp = self.incoming().join(format!(".{name}.tmp"));
        std::fs::write(&tmp, content).unwrap();
        std::fs::rename(&tmp, self.incoming().join(name)).unwrap();
    }

    /// Another connection to the queue.
    pub async fn queue(&self) -> Queue {
        Queue::connect(&self.config().queue.target().unwrap())
            .await
            .unwrap()
    }

    /// The daemon in process, started on the config file.
    pub async fn daemon(&self) -> TestDaemon {
        TestDaemon(
            Daemon::start(&self.config_path(), self.config())
                .await
                .unwrap(),
        )
    }

    /// Runs the binary with `args` and `--config <the config file>` to the end.
    pub async fn binary(&self, args: &[&str]) -> Output {
        self.command(args).output().await.unwrap()
    }

    /// The binary with `args` and `--config <the config file>`, to adjust.
    pub fn command(&self, args: &[&str]) -> Command {
        command(&self.with_config(args))
    }

    /// Starts `tc-ingest run` on the config file.
    pub fn spawn_daemon(&self) -> DaemonProcess {
        self.spawn_daemon_with(BIN, &[])
    }

    /// Starts `bin run` (this build's binary, or another build of it) on
    /// the config file, with `env` added.
    pub fn spawn_daemon_with(&self, bin: &str, env: &[(&str, &str)]) -> DaemonProcess {
        DaemonProcess::spawn(bin, &self.with_config(&["run"]), env)
    }

    /// Another state directory with this app's config (its paths moved
    /// there): a second daemon on the same simulator and, on PostgreSQL,
    /// the same queue.
    pub fn sibling(&self) -> Sibling {
        let dir = tempfile::tempdir().expect("temp dir");
        let root = self.path().display().to_string();
        let text = std::fs::read_to_string(self.config_path())
            .expect("read config")
            .replace(&root, &dir.path().display().to_string());
        if self.token {
            std::fs::copy(self.path().join("token"), dir.path().join("token")).expect("token");
        }
        let config = dir.path().join("tc-ingest.toml");
        std::fs::write(&config, text).expect("write config");
        Sibling { dir, config }
    }
}

impl TestApp {
    /// Starts `tc-ingest run` and waits until it has opened its queue.
    pub async fn spawn_daemon_with_queue(&self) -> DaemonProcess {
        let daemon = self.spawn_daemon();
        let queue = self.queue_path();
        let location = self.queue_location();
        wait_until(
            Duration::from_secs(10),
            "the daemon opened its queue",
            async || match &self.queue_url {
                None => queue.exists(),
                Some(_) => try_number_at(&location, "SELECT COUNT(*) FROM daemons")
                    .await
                    .is_ok_and(|n| n > 0),
            },
        )
        .await;
        daemon
    }

    /// Asserts that `secret` is in no file of the state directory (the
    /// queue, its WAL, reports) but those named in `except`.
    #[track_caller]
    pub fn assert_secret_in_no_file(&self, secret: &str, except: &[&str]) {
        for f in std::fs::read_dir(self.path()).unwrap() {
            let p = f.unwrap().path();
            let name = p.file_name().unwrap().to_string_lossy().to_string();
            if p.is_file() && !except.contains(&name.as_str()) {
                let bytes = std::fs::read(&p).unwrap();
                assert!(
                    !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                    "secret found in {}",
                    p.display()
                );
            }
        }
    }

    /// Starts `tc-ingest run` and waits until it says it runs (its queue
    /// migrated: another connection may open it).
    pub async fn spawn_daemon_running(&self) -> DaemonProcess {
        let daemon = self.spawn_daemon();
        wait_until(Duration::from_secs(20), "the daemon runs", async || {
            daemon.stderr().contains("tc-ingest running")
        })
        .await;
        daemon
    }

    fn with_config(&self, args: &[&str]) -> Vec<String> {
        let mut all: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        all.push("--config".into());
        all.push(self.config_path().to_str().unwrap().into());
        all
    }
}

/// The in-process daemon (derefs to [`Daemon`]).
pub struct TestDaemon(Daemon);

impl Deref for TestDaemon {
    type Target = Daemon;
    fn deref(&self) -> &Daemon {
        &self.0
    }
}

impl DerefMut for TestDaemon {
    fn deref_mut(&mut self) -> &mut Daemon {
        &mut self.0
    }
}

impl TestDaemon {
    /// `run --once` in process: intake, then delivery until nothing is left to do now.
    pub async fn once(&mut self) -> OnceReport {
        drive_once(&mut self.0, &CancellationToken::new(), None)
            .await
            .unwrap()
    }

    /// Queues jobs outside any file.
    pub async fn enqueue(&self, jobs: &[NewJob]) {
        enqueue(&self.queue, jobs).await;
    }

    pub fn intake(&mut self) -> &mut Intake {
        self.0.intake.as_mut().expect("intake")
    }

    /// Delivery, running until stopped.
    pub fn deliver_in_background(&self) -> Background {
        let delivery = self.delivery.clone();
        Background::spawn(|cancel| delivery.run(cancel))
    }

    /// The watcher, running until stopped (it takes the intake).
    pub fn watch_in_background(&mut self) -> Background {
        let intake = self.0.intake.take().expect("intake");
        Background::spawn(|cancel| intake.run(cancel))
    }
}

/// A task that runs until cancelled.
pub struct Background {
    cancel: CancellationToken,
    task: JoinHandle<anyhow::Result<()>>,
}

impl Background {
    pub fn spawn<F>(run: impl FnOnce(CancellationToken) -> F) -> Self
    where
        F: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        let cancel = CancellationToken::new();
        let task = tokio::spawn(run(cancel.clone()));
        Self { cancel, task }
    }

    /// Cancels it and waits for it to finish without error.
    pub async fn stop(self) {
        self.cancel.cancel();
        self.task.await.unwrap().unwrap();
    }
}

/// Copies the sample feeds of `examples/feeds` into `to` (created).
pub fn copy_examples(to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/feeds");
    for e in std::fs::read_dir(src).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

/// The fixture at `tests/data/<name>`.
pub fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}
