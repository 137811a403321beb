//! The real binary: `run --once`, the daemon with signals, `enqueue` beside
//! it, SIGKILL and restart, and the secret never leaking.

use std::path::Path;
use std::time::{Duration, Instant};
use tc_ingest::queue::JobState;

use crate::helpers::*;

const SECRET: &str = "e2e-Secret-Value-42";

/// The app with the secret the tests look for, and quick delivery.
async fn secret_app() -> TestApp {
    TestApp::builder()
        .secret(SECRET)
        .extra_config(QUICK_DELIVERY)
        .start()
        .await
}

#[tokio::test]
async fn run_once_delivers_every_sample_feed() {
    let app = secret_app().await;
    copy_examples(&app.incoming());
    let stderr = app.run_once_exits(0).await;
    let held = app.sim.indicators();
    let count = |t: &str| held.iter().filter(|i| i.kind == t).count();
    assert_eq!(
        [
            count("Address"),
            count("Host"),
            count("URL"),
            count("EmailAddress"),
            count("File"),
            count("ASN"),
            count("CIDR"),
            count("Registry Key"),
            count("Mutex"),
            count("User Agent")
        ],
        [5, 4, 5, 2, 3, 2, 3, 2, 1, 1],
        "{held:#?}"
    );
    for v in [
        "xn--sterreich-z7a.icom.museum",
        "http://login-micros0ft.com/owa/auth.php?session=AbC",
        "ASN13335",
        "2001:db8:1234:0:0:0:0:0/48",
        "HKEY_LOCAL_MACHINE\\Software\\Microsoft\\Windows\\CurrentVersion\\Run : updater : REG_SZ",
    ] {
        assert!(held.iter().any(|i| i.value == v), "{v} missing");
    }
    let c2 = held.iter().find(|i| i.value == "45.133.1.20").unwrap();
    assert_eq!(c2.tags.len(), 2);
    assert_eq!(c2.attributes[0].value, "Cobalt Strike team server");
    // Every row is accounted for: queued or rejected with its file and line.
    let q = app.queue().await;
    let s = q.stats().await.unwrap();
    assert_eq!(
        s.by_state.get(&JobState::Delivered).copied().unwrap_or(0) as usize,
        held.len()
    );
    assert_eq!(s.rows_rejected, 7);
    assert!(!stderr.contains(SECRET));
}

#[tokio::test]
async fn daemon_delivers_dropped_files_and_stops_cleanly_on_sigterm() {
    let app = secret_app().await;
    let daemon = app.spawn_daemon_with_queue().await;
    app.rename_in("drop.txt", b"1.1.1.1\n2.2.2.2\nevil[.]example[.]com\n");
    wait_until(Duration::from_secs(10), "delivered", async || {
        app.sim.indicators().len() == 3
    })
    .await;

    // `enqueue` beside the running daemon: picked up within about a second.
    let extra = app.path().join("extra.txt");
    std::fs::write(&extra, "3.3.3.3\n4.4.4.4\n").unwrap();
    let out = app
        .binary(&[
            "enqueue",
            "--owner",
            "Exemplary Organization",
            extra.to_str().unwrap(),
        ])
        .await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("2 queued"));
    let start = Instant::now();
    wait_until(
        Duration::from_secs(5),
        "the enqueued indicators delivered",
        async || app.sim.indicators().len() == 5,
    )
    .await;
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
    assert!(
        app.sim
            .indicators()
            .iter()
            .any(|i| i.owner == "Exemplary Organization")
    );

    // A second daemon on the same queue is refused, naming the first.
    let second = app.binary(&["run"]).await;
    assert_eq!(second.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&second.stderr).contains(&format!("pid {}", daemon.pid())));

    // `status` reads the queue while the daemon runs.
    assert_eq!(app.status_json().await["jobs"]["delivered"], 5);

    let (code, stderr) = daemon.stop().await;
    assert_eq!(code, Some(0));
    assert!(stderr.contains("feed file finished"), "{stderr}");
    assert!(!stderr.contains(SECRET), "the secret leaked into the logs");
    let q = app.queue().await;
    assert_eq!(q.count(Some(JobState::Leased)).await.unwrap(), 0);
}

#[tokio::test]
async fn sighup_with_a_broken_config_keeps_the_old_one_running() {
    let app = secret_app().await;
    let daemon = app.spawn_daemon_with_queue().await;
    std::fs::write(app.config_path(), "[api]\nbase_url = 42\n").unwrap();
    daemon.signal(libc::SIGHUP);
    wait_until(
        Duration::from_secs(10),
        "the reload was refused",
        async || daemon.stderr().contains("invalid configuration"),
    )
    .await;
    app.rename_in("a.txt", b"7.7.7.7\n");
    wait_until(
        Duration::from_secs(10),
        "still delivering with the old config",
        async || app.sim.indicators().len() == 1,
    )
    .await;
    let (code, stderr) = daemon.stop().await;
    assert_eq!(code, Some(0));
    assert!(
        stderr.contains("invalid configuration: keeping the running one"),
        "{stderr}"
    );
}

#[tokio::test]
async fn sigkill_at_any_moment_then_restart_loses_nothing() {
    let app = secret_app().await;
    let n = 20_000;
    std::fs::create_dir_all(app.incoming()).unwrap();
    std::fs::write(app.incoming().join("big.txt"), ips(12_000, 0)).unwrap();
    // Kill it at different moments (while reading a file, while delivering),
    // with a second file arriving in between, then let it finish.
    for (i, wait_ms) in [40, 250, 700].into_iter().enumerate() {
        if i == 1 {
            std::fs::write(app.incoming().join("more.txt"), ips(n - 12_000, 12_000)).unwrap();
        }
        let daemon = app.spawn_daemon();
        hold_for(
            Duration::from_millis(wait_ms),
            "a moment to kill the daemon at",
        )
        .await;
        daemon.kill().await;
    }
    app.run_once_exits(0).await;
    let held = app.sim.indicators();
    assert_eq!(held.len(), n, "every row delivered");
    let q = app.queue().await;
    assert_eq!(
        q.count(Some(JobState::Delivered)).await.unwrap(),
        n as u64,
        "no row queued twice"
    );
    let redelivered: u64 = held.iter().map(|i| i.create_count - 1).sum();
    assert!(
        redelivered <= 64,
        "duplicates bounded by what was in flight: {redelivered}"
    );
}

#[tokio::test]
async fn the_secret_never_reaches_the_database_status_or_check_config() {
    let app = secret_app().await;
    copy_examples(&app.incoming());
    let run = app.binary(&["run", "--once"]).await;
    let status = app.binary(&["status"]).await;
    let check = app.binary(&["check-config"]).await;
    assert_eq!(check.status.code(), Some(0));
    assert!(
        String::from_utf8_lossy(&check.stdout)
            .contains("#   credentials  HMAC secret key from api.secret_key (inline")
    );
    for bytes in [
        &run.stdout,
        &run.stderr,
        &status.stdout,
        &status.stderr,
        &check.stdout,
        &check.stderr,
    ] {
        assert!(!String::from_utf8_lossy(bytes).contains(SECRET));
    }
    app.assert_secret_in_no_file(SECRET, &["tc-ingest.toml"]);
}

#[tokio::test]
async fn cli_exit_codes_and_normalize_output() {
    let out = command(&["normalize", data("tricky.txt").to_str().unwrap()])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 7);
    assert_eq!(lines[0]["type"], "Address");
    assert_eq!(lines[0]["line"], 3);
    assert_eq!(lines[2]["summary"], "http://example.com/Path");
    assert!(lines.iter().any(|l| {
        l["error"]
            .as_str()
            .is_some_and(|e| e.contains("cannot determine"))
    }));
    assert!(String::from_utf8_lossy(&out.stderr).contains("6 accepted"));
    let missing = command(&["normalize", "/nonexistent/feed.txt"])
        .output()
        .await
        .unwrap();
    assert_eq!(missing.status.code(), Some(2));
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[api]\nbase_url = \"ftp://x\"\nsurprise = true\n").unwrap();
    let out = command(&["check-config", "--config", bad.to_str().unwrap()])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("surprise"));
}

#[tokio::test]
async fn systemd_unit_verifies() {
    let unit = Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/tc-ingest.service");
    let Ok(out) = std::process::Command::new("systemd-analyze")
        .arg("--version")
        .output()
    else {
        println!("SKIPPED: systemd-analyze is not installed, so the unit file was not verified");
        return;
    };
    assert!(out.status.success());
    // The unit names /usr/bin/tc-ingest (the package's): verify against a
    // copy that points at the binary just built.
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(&unit)
        .unwrap()
        .replace("/usr/bin/tc-ingest", BIN);
    let copy = dir.path().join("tc-ingest.service");
    std::fs::write(&copy, text).unwrap();
    let out = std::process::Command::new("systemd-analyze")
        // The man page its Documentation= names is installed by the
        // package (.ci/run verifies the installed unit with it).
        .args(["verify", "--man=no", copy.to_str().unwrap()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let problems: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("tc-ingest.service"))
        .collect();
    assert!(
        out.status.success() && problems.is_empty(),
        "systemd-analyze verify:\n{stderr}"
    );
}
