//! A PostgreSQL server for the tests, started once per test process on a
//! loopback port in a temporary directory (Debian's `postgresql` binaries),
//! and a fresh database per test.
//!
//! `TC_INGEST_TEST_QUEUE=postgres` runs every test's queue on it (the same
//! suite as on SQLite); tests of several daemons sharing a queue use it
//! whatever that says. The server dies with the test process.

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Whether the suite runs its queues on PostgreSQL.
pub fn on_postgres() -> bool {
    std::env::var("TC_INGEST_TEST_QUEUE").is_ok_and(|v| v == "postgres")
}

struct Server {
    port: u16,
    _dir: tempfile::TempDir,
}

static SERVER: OnceLock<Server> = OnceLock::new();
static NEXT_DB: AtomicU32 = AtomicU32::new(0);

/// The directory of PostgreSQL's server programs (the newest installed).
fn bin_dir() -> PathBuf {
    if let Ok(d) = std::env::var("PG_BIN") {
        return d.into();
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL is installed (apt-get install postgresql)")
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("postgres").exists())
        .collect();
    versions.sort();
    versions
        .pop()
        .expect("a PostgreSQL server in /usr/lib/postgresql")
}

/// As root, the server runs as the `postgres` user (initdb refuses root).
fn server_user() -> Option<(u32, u32)> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return None;
    }
    let out = Command::new("id").args(["-u", "postgres"]).output().ok()?;
    let uid = String::from_utf8_lossy(&out.stdout).trim().parse().ok()?;
    let out = Command::new("id").args(["-g", "postgres"]).output().ok()?;
    let gid = String::from_utf8_lossy(&out.stdout).trim().parse().ok()?;
    Some((uid, gid))
}

fn as_server_user(cmd: &mut Command, user: Option<(u32, u32)>) -> &mut Command {
    if let Some((uid, gid)) = user {
        cmd.uid(uid).gid(gid);
    }
    cmd
}

fn start() -> Server {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let user = server_user();
    if let Some((uid, gid)) = user {
        std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).expect("chown");
    }
    let bin = bin_dir();
    let init = as_server_user(
        Command::new(bin.join("initdb"))
            .args(["-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8"])
            .args(["--locale", "C"])
            .arg("-D")
            .arg(&data),
        user,
    )
    .output()
    .expect("initdb runs");
    assert!(init.status.success(), "initdb: {init:?}");
    let port = super::free_port();
    let socket_dir = dir.path().to_path_buf();
    // Started from a thread that lives as long as the process, so that
    // the parent-death signal comes when the test process ends.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut cmd = Command::new(bin.join("postgres"));
        cmd.arg("-D")
            .arg(&data)
            .args(["-p", &port.to_string(), "-c", "listen_addresses=127.0.0.1"])
            .arg("-c")
            .arg(format!("unix_socket_directories={}", socket_dir.display()))
            .args(["-c", "max_connections=300", "-c", "fsync=off"])
            .args(["-c", "synchronous_commit=off", "-c", "full_page_writes=off"])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        as_server_user(&mut cmd, user);
        // SAFETY: prctl is async-signal-safe; it runs in the child
        // between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let mut child = cmd.spawn().expect("postgres starts");
        tx.send(child.id()).unwrap();
        // It runs until the test process ends.
        let _ = child.wait();
    });
    rx.recv().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "postgres did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    Server { port, _dir: dir }
}

/// The server's base URL (user `postgres`, no password: trust on
/// loopback).
pub fn server_url() -> String {
    let s = SERVER.get_or_init(start);
    format!("postgres://postgres@127.0.0.1:{}", s.port)
}

/// A new, empty database on the test server: its URL.
pub async fn fresh_database() -> String {
    let base = server_url();
    let name = format!(
        "t{}_{}",
        std::process::id(),
        NEXT_DB.fetch_add(1, Ordering::Relaxed)
    );
    let mut conn = loop {
        use sqlx::Connection;
        match sqlx::PgConnection::connect(&format!("{base}/postgres")).await {
            Ok(c) => break c,
            // Just started: it may still be recovering.
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    };
    use sqlx::Executor;
    conn.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .await
        .expect("create a database");
    format!("{base}/{name}")
}

/// True, saying so, when the suite runs on PostgreSQL: the test is of
/// what only a SQLite queue has (its file, the `sqlite3` shell, the lock
/// file), and returns at once.
pub fn skip_on_postgres(what: &str) -> bool {
    let skip = on_postgres();
    if skip {
        eprintln!("skipped on PostgreSQL: {what}");
    }
    skip
}
