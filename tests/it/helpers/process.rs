//! The binary as a child process: `DaemonProcess` (a running daemon, its
//! log read as it comes), `command` (nothing for the config from the
//! environment), and `Sibling`, a second daemon's state directory.

use std::path::PathBuf;
use std::process::{Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;

use super::BIN;

/// A second state directory sharing a [`TestApp`]'s simulator and queue.
pub struct Sibling {
    pub(super) dir: tempfile::TempDir,
    pub(super) config: PathBuf,
}

impl Sibling {
    /// The watched directory.
    pub fn incoming(&self) -> PathBuf {
        self.dir.path().join("incoming")
    }

    /// Starts `tc-ingest run` on its config.
    pub fn spawn_daemon(&self) -> DaemonProcess {
        let args = [
            "run".to_string(),
            "--config".into(),
            self.config.display().to_string(),
        ];
        DaemonProcess::spawn(BIN, &args, &[])
    }

    /// Runs the binary with `args` and `--config` to the end.
    pub async fn binary(&self, args: &[&str]) -> Output {
        let mut all: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        all.extend(["--config".to_string(), self.config.display().to_string()]);
        command(&all).output().await.unwrap()
    }
}

impl DaemonProcess {
    /// `bin` with `args` (and `env` added) as a child process, its stderr
    /// read as it comes.
    pub fn spawn(bin: &str, args: &[String], env: &[(&str, &str)]) -> DaemonProcess {
        let mut cmd = command_of(bin, args);
        cmd.envs(env.iter().copied());
        let mut child = cmd.stderr(Stdio::piped()).spawn().unwrap();
        // Read stderr as it comes so the daemon never blocks on a full pipe.
        let mut pipe = child.stderr.take().unwrap();
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let sink = stderr.clone();
        let reader = tokio::spawn(async move {
            let mut buf = [0; 8192];
            while let Ok(n @ 1..) = pipe.read(&mut buf).await {
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        DaemonProcess {
            child,
            stderr,
            reader,
        }
    }
}

/// What the environment may give the config: tcex's names, the systemd
/// credentials, the standard proxy variables.
const CONFIG_ENV: &[&str] = &[
    "TC_INGEST_CONFIG",
    "TC_API_PATH",
    "TC_API_ACCESS_ID",
    "TC_API_SECRET_KEY",
    "TC_TOKEN",
    "API_DEFAULT_ORG",
    "TC_PROXY_HOST",
    "TC_PROXY_PORT",
    "TC_PROXY_USERNAME",
    "TC_PROXY_PASSWORD",
    "CREDENTIALS_DIRECTORY",
    "HTTPS_PROXY",
    "https_proxy",
    "HTTP_PROXY",
    "http_proxy",
    "ALL_PROXY",
    "all_proxy",
    "NO_PROXY",
    "no_proxy",
];

/// The binary with `args`, with nothing for the config from the environment.
pub fn command(args: &[impl AsRef<std::ffi::OsStr>]) -> Command {
    command_of(BIN, args)
}

/// `bin` (a build of the binary) with `args`, as [`command`].
pub fn command_of(bin: &str, args: &[impl AsRef<std::ffi::OsStr>]) -> Command {
    let mut c = Command::new(bin);
    c.args(args);
    for var in CONFIG_ENV {
        c.env_remove(var);
    }
    c.env("RUST_LOG", "info,tc_ingest=debug")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    c
}

/// `tc-ingest run` as a child process.
pub struct DaemonProcess {
    child: Child,
    stderr: Arc<Mutex<Vec<u8>>>,
    reader: JoinHandle<()>,
}

impl DaemonProcess {
    pub fn pid(&self) -> u32 {
        self.child.id().expect("running")
    }

    pub fn signal(&self, sig: i32) {
        assert_eq!(unsafe { libc::kill(self.pid() as i32, sig) }, 0);
    }

    /// Whether it has exited (by itself, or killed).
    pub fn has_exited(&mut self) -> bool {
        self.child.try_wait().unwrap().is_some()
    }

    /// What it logged so far.
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.stderr.lock().unwrap()).into_owned()
    }

    /// SIGTERM, then its exit code (within 15 s) and everything it logged.
    pub async fn stop(mut self) -> (Option<i32>, String) {
        self.signal(libc::SIGTERM);
        let status = tokio::time::timeout(Duration::from_secs(15), self.child.wait())
            .await
            .expect("stopped within 15 s")
            .unwrap();
        (&mut self.reader).await.unwrap();
        (status.code(), self.stderr())
    }

    /// Waits for it to exit by itself: its exit code and everything it
    /// logged; panics if it still runs after `timeout`.
    pub async fn exited_within(mut self, timeout: Duration) -> (Option<i32>, String) {
        let status = tokio::time::timeout(timeout, self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("still running after {timeout:?}: {}", self.stderr()))
            .unwrap();
        (&mut self.reader).await.unwrap();
        (status.code(), self.stderr())
    }

    /// SIGKILL, and waits for it to be gone.
    pub async fn kill(mut self) {
        self.child.start_kill().unwrap();
        self.child.wait().await.unwrap();
    }
}
