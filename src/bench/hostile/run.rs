//! `tc-ingest bench hostile`: the corpus dropped into a running daemon,
//! its peak resident size measured per case.

use std::fs::File;
use std::path::Path;
use std::time::{Duration, Instant};

use super::{CASES, Case};

/// `tc-ingest bench hostile`: starts the daemon (this binary, `run`) with
/// the default limits, drops every case into its `watch.dir` one at a time
/// (renamed in, so taken at once), and measures the daemon's peak resident
/// size while it handles each (VmHWM, reset before each case through
/// `/proc/<pid>/clear_refs`) and its resident size once it is idle again.
///
/// # Errors
/// When the daemon cannot be started or a case cannot be written.
pub async fn bench(big: u64) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let root = dir.path();
    let staging = root.join("staging");
    std::fs::create_dir_all(&staging)?;
    let mut daemon = start_daemon(root)?;
    let pid = daemon.id();
    wait_for_dir(&root.join("failed")).await;
    print_header(big, pid);
    let mut worst = 0f64;
    for case in CASES {
        let staged = case.write(&staging, big)?;
        worst = worst.max(measure(&mut daemon, root, case, &staged).await?);
    }
    let log = std::fs::read(root.join("daemon.log"))?;
    let longest = log
        .split(|&b| b == b'\n')
        .map(<[u8]>::len)
        .max()
        .unwrap_or(0);
    println!(
        "  worst peak RSS: {worst:.0} MiB; longest log line: {longest} bytes; daemon still running: {}",
        daemon.try_wait()?.is_none()
    );
    // SAFETY: kill(2) on the child we started; no memory is touched.
    unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    let _ = daemon.wait();
    Ok(())
}

/// Writes the daemon's configuration into `root` (its `watch.dir` and queue
/// there, default limits) and starts it, its log in `root/daemon.log`.
fn start_daemon(root: &Path) -> anyhow::Result<std::process::Child> {
    use anyhow::Context;
    let config = root.join("tc-ingest.toml");
    std::fs::write(
        &config,
        format!(
            "[api]\nbase_url = \"http://127.0.0.1:9\"\naccess_id = \"bench\"\nsecret_key = \"bench\"\n\
             owner = \"Bench Org\"\n[watch]\ndir = \"{0}/incoming\"\nsettle_ms = 200\nrescan_secs = 1\n\
             [queue]\npath = \"{0}/queue.db\"\n",
            root.display()
        ),
    )?;
    let log = File::create(root.join("daemon.log"))?;
    std::process::Command::new(std::env::current_exe()?)
        .arg("run")
        .arg("--config")
        .arg(&config)
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .context("starting the daemon")
}

/// Waits (at most 30 s) until the daemon has made `dir`, then half a second more.
async fn wait_for_dir(dir: &Path) {
    let started = Instant::now();
    while !dir.is_dir() && started.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
}

/// The bench's title, the CPU, the idle daemon's size and the table's header.
fn print_header(big: u64, pid: u32) {
    println!(
        "bench hostile: each case dropped into a running daemon (default limits: \
         max_line_bytes 1 MiB, max_decompressed_bytes 8 GiB), big = {} MB",
        big / 1_000_000
    );
    println!("  CPU: {}", cpu_model());
    println!(
        "  idle before the first case: RSS {:.0} MiB",
        status_mib(pid, "VmRSS:")
    );
    println!(
        "  {:<46} {:>10} {:>8} {:>10} {:>9} {:>7}",
        "case", "size", "ended", "peak MiB", "idle MiB", "secs"
    );
}

/// Drops the `staged` case into the daemon's `watch.dir`, waits for it to
/// end and prints its row. Returns the daemon's peak RSS (MiB) meanwhile.
async fn measure(
    daemon: &mut std::process::Child,
    root: &Path,
    case: &Case,
    staged: &Path,
) -> anyhow::Result<f64> {
    let pid = daemon.id();
    let size = std::fs::symlink_metadata(staged)?.len();
    // Peak since now: writing 5 to clear_refs resets VmHWM.
    let _ = std::fs::write(format!("/proc/{pid}/clear_refs"), "5");
    let start = Instant::now();
    std::fs::rename(staged, root.join("incoming").join(case.file))?;
    let ended = wait_for_end(daemon, root, case, start).await?;
    let secs = start.elapsed().as_secs_f64();
    let peak = status_mib(pid, "VmHWM:");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle = status_mib(pid, "VmRSS:");
    println!(
        "  {:<46} {:>10} {:>8} {:>10.0} {:>9.0} {:>7.1}",
        case.name,
        human(size),
        ended,
        peak,
        idle,
        secs
    );
    Ok(peak)
}

/// How the case ended (`done`, `failed`, or `timeout` 600 s after
/// `start`), polling `root/done` and `root/failed`.
///
/// # Errors
/// When the daemon exits meanwhile.
async fn wait_for_end(
    daemon: &mut std::process::Child,
    root: &Path,
    case: &Case,
    start: Instant,
) -> anyhow::Result<&'static str> {
    let (done, failed) = (root.join("done"), root.join("failed"));
    while start.elapsed() < Duration::from_secs(600) {
        if let Some(status) = daemon.try_wait()? {
            anyhow::bail!("the daemon exited ({status}) on case {:?}", case.name);
        }
        if landed(&failed, case.file) {
            return Ok("failed");
        }
        if landed(&done, case.file) {
            return Ok("done");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok("timeout")
}

/// Whether `dir` holds the case (under its name, or stamped `...Z-name`).
fn landed(dir: &Path, file: &str) -> bool {
    std::fs::read_dir(dir).is_ok_and(|entries| {
        entries.filter_map(Result::ok).any(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            n == file || n.ends_with(&format!("Z-{file}"))
        })
    })
}

/// A field of `/proc/<pid>/status` in MiB.
fn status_mib(pid: u32, field: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, m)| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

fn human(n: u64) -> String {
    match n {
        n if n >= 1 << 20 => format!("{:.0} MiB", n as f64 / (1 << 20) as f64),
        n if n >= 1 << 10 => format!("{:.0} KiB", n as f64 / 1024.0),
        n => format!("{n} B"),
    }
}
