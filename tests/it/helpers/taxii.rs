//! OASIS's TAXII 2.1 reference server, medallion (3.0.0 from PyPI), on a
//! loopback port with a memory-backend data file written by
//! `tests/taxii/make_data.py` (facts in `tests/taxii/README.md`).
//!
//! The server comes from `$TC_INGEST_MEDALLION` (`.ci/run` sets it), else
//! `target/test-venv/bin/medallion`, installed there with pip on first use.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use tokio::process::{Child, Command};

use super::{free_port, http, wait_until};

/// The collection `make_data.py` writes.
pub const COLLECTION: &str = "91a7b528-80eb-42ed-a74d-c6fbd5a26116";
const VERSION: &str = "3.0.0";

/// The medallion executable, installed into `target/test-venv` the first
/// time (one install at a time).
fn medallion_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("TC_INGEST_MEDALLION") {
        return PathBuf::from(p);
    }
    static INSTALL: Mutex<()> = Mutex::new(());
    let _one = INSTALL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-venv");
    let bin = venv.join("bin/medallion");
    if !bin.exists() {
        let run = |cmd: &mut std::process::Command| {
            let out = cmd.output().expect("running python3 to install medallion");
            assert!(
                out.status.success(),
                "installing medallion {VERSION} failed (CI installs it in .ci/run): {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        run(std::process::Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv));
        run(std::process::Command::new(venv.join("bin/pip")).args([
            "install",
            "-q",
            &format!("medallion=={VERSION}"),
        ]));
    }
    bin
}

/// A running medallion; killed when dropped.
pub struct Medallion {
    pub port: u16,
    pub dir: tempfile::TempDir,
    child: Child,
}

impl Medallion {
    /// `n` indicators in groups of `ties` sharing a `date_added`.
    pub async fn start(n: usize, ties: usize) -> Medallion {
        Self::start_on(free_port(), n, ties).await
    }

    /// As [`Medallion::start`], on `port`.
    pub async fn start_on(port: u16, n: usize, ties: usize) -> Medallion {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data.json");
        let config = dir.path().join("config.json");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/taxii/make_data.py");
        let out = std::process::Command::new("python3")
            .arg(&script)
            .arg(&data)
            .arg(n.to_string())
            .args(["--ties", &ties.to_string()])
            .args(["--base-url", &format!("http://127.0.0.1:{port}")])
            .arg("--config")
            .arg(&config)
            .output()
            .expect("python3");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let log = std::fs::File::create(dir.path().join("medallion.log")).unwrap();
        let child = Command::new(medallion_bin())
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .arg(&config)
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("starting medallion");
        let m = Medallion { port, dir, child };
        let url = format!("{}/taxii2/", m.base());
        wait_until(Duration::from_secs(30), "medallion answers", async || {
            http().get(&url).send().await.is_ok()
        })
        .await;
        m
    }

    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The API root, as a source's `url`.
    pub fn api_root(&self) -> String {
        format!("{}/api1/", self.base())
    }

    /// Adds indicators for `domains` (one POST: one `date_added`).
    pub async fn add(&self, domains: &[String]) {
        let objects: Vec<serde_json::Value> = domains
            .iter()
            .enumerate()
            .map(|(i, d)| {
                serde_json::json!({
                    "type": "indicator", "spec_version": "2.1",
                    "id": format!("indicator--{:08x}-0000-4000-8000-{:012x}", fastrand::u32(..), i),
                    "created": "2025-01-01T00:00:00.000Z", "modified": "2025-01-01T00:00:00.000Z",
                    "pattern": format!("[domain-name:value = '{d}']"),
                    "pattern_type": "stix", "valid_from": "2025-01-01T00:00:00Z",
                })
            })
            .collect();
        let resp = http()
            .post(format!(
                "{}collections/{COLLECTION}/objects/",
                self.api_root()
            ))
            .basic_auth("writer", Some("writer-pass"))
            .header("Accept", "application/taxii+json;version=2.1")
            .header("Content-Type", "application/taxii+json;version=2.1")
            .json(&serde_json::json!({ "objects": objects }))
            .send()
            .await
            .unwrap();
        assert_eq!(
            resp.status(),
            202,
            "{}",
            resp.text().await.unwrap_or_default()
        );
    }

    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

/// The domains `make_data.py` writes for `n` objects.
pub fn domains(n: usize) -> Vec<String> {
    (1..=n)
        .map(|i| format!("host-{i:05}.example.net"))
        .collect()
}

/// A `[[sources]]` table for `m`'s collection, read with the right password.
pub fn taxii_source(name: &str, m: &Medallion, extra: &str) -> String {
    let pw = m.dir.path().join("password");
    std::fs::write(&pw, "secret-pass\n").unwrap();
    format!(
        "[[sources]]\nname = \"{name}\"\nkind = \"taxii\"\nurl = \"{}\"\ncollection = \"{COLLECTION}\"\n\
         initial_lookback = \"all\"\nusername = \"reader\"\npassword_file = \"{}\"\n{extra}",
        m.api_root(),
        pw.display()
    )
}
