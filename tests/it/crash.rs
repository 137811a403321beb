//! The README's crash-safety promise, broken the way an outside kill would
//! break it: the daemon process SIGKILLed at random moments while it reads
//! feeds, restarted each time; the crash-loop guard against a file that
//! kills the daemon at the same row every time; and an idle daemon that
//! rests.
//!
//! The kill test runs the binary named by `TC_INGEST_BIN` when set
//! (`.ci/run` sets it to the release build), else this build's. A debug
//! build reads so slowly that random kills land, three in a row, between a
//! read's start and its first commit often enough to trip the crash-loop
//! guard as it should; with it, the test raises `watch.max_stalled_reads`
//! and proves only that nothing is lost or repeated.

use std::path::Path;
use std::time::{Duration, Instant};

use tc_ingest::queue::FileState;

use crate::helpers::*;

/// CPU time (user + system) the process `pid` has used.
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // After the command's ")": state is field 3 of the line, utime 14, stime 15.
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Duration::from_millis(ticks * 1000 / hz)
}

#[tokio::test]
async fn an_idle_daemon_rests() {
    let app = TestApp::start().await;
    let daemon = app.spawn_daemon_with_queue().await;
    // Past its start (migrations, the tasks started), then measured.
    wait_until(Duration::from_secs(10), "the daemon running", async || {
        daemon.stderr().contains("tc-ingest running")
    })
    .await;
    let pid = daemon.pid();
    let (before, at) = (cpu_time(pid), Instant::now());
    hold_for(
        Duration::from_secs(4),
        "the window an idle daemon's CPU time is measured over",
    )
    .await;
    let (used, over) = (cpu_time(pid) - before, at.elapsed());
    // Before the watcher ignored its own scans' events it used a whole
    // core: about as much CPU time as time went by.
    assert!(
        used < over / 10,
        "an idle daemon used {used:?} of CPU in {over:?}: {}",
        daemon.stderr()
    );
    let (code, _) = daemon.stop().await;
    assert_eq!(code, Some(0));
}

/// Feeds of distinct hosts with one invalid row after every 100th, as CSV
/// and NDJSON (`valid_csv`, `valid_ndjson`), and as a STIX bundle and a
/// MISP event (`valid_ndjson` each: read in two passes, positions of their
/// own); the valid and invalid counts written.
fn write_feeds(dir: &Path, valid_csv: usize, valid_ndjson: usize) -> (usize, usize) {
    use std::io::Write;
    let mut invalid = 0;
    let mut csv = std::io::BufWriter::new(std::fs::File::create(dir.join("big.csv")).unwrap());
    writeln!(csv, "value,description").unwrap();
    for i in 0..valid_csv {
        writeln!(csv, "c{i}.kill-test.net,row {i}").unwrap();
        if i % 100 == 99 {
            writeln!(csv, "bad value {i},invalid").unwrap();
            invalid += 1;
        }
    }
    csv.flush().unwrap();
    let mut nd = std::io::BufWriter::new(std::fs::File::create(dir.join("more.ndjson")).unwrap());
    for i in 0..valid_ndjson {
        writeln!(nd, "{{\"value\": \"n{i}.kill-test.net\"}}").unwrap();
        if i % 100 == 99 {
            writeln!(nd, "{{\"value\": \"bad value {i}\"}}").unwrap();
            invalid += 1;
        }
    }
    nd.flush().unwrap();
    let (stix, misp) = (valid_ndjson, valid_ndjson);
    invalid += write_stix_and_misp(dir, stix, misp);
    (valid_csv + valid_ndjson + stix + misp, invalid)
}

/// A STIX bundle of `stix` indicators and a MISP event of `misp`
/// attributes (an object each a line), with one the formats refuse after
/// every 100th of each; how many were refused.
fn write_stix_and_misp(dir: &Path, stix: usize, misp: usize) -> usize {
    use std::io::Write;
    let mut invalid = 0;
    let mut b = std::io::BufWriter::new(std::fs::File::create(dir.join("bundle.json")).unwrap());
    writeln!(
        b,
        "{{\"type\": \"bundle\", \"id\": \"bundle--1\", \"objects\": ["
    )
    .unwrap();
    for i in 0..stix {
        let pattern = format!("[domain-name:value = 's{i}.kill-test.net']");
        writeln!(b, "{{\"type\": \"indicator\", \"id\": \"indicator--{i}\", \"pattern_type\": \"stix\", \"pattern\": \"{pattern}\"}},").unwrap();
        if i % 100 == 99 {
            writeln!(b, "{{\"type\": \"indicator\", \"id\": \"indicator--like-{i}\", \"pattern_type\": \"stix\", \"pattern\": \"[url:value LIKE 'http://x{i}/%']\"}},").unwrap();
            invalid += 1;
        }
    }
    writeln!(
        b,
        "{{\"type\": \"identity\", \"id\": \"identity--1\", \"name\": \"kill test\"}}]}}"
    )
    .unwrap();
    b.flush().unwrap();
    let mut e = std::io::BufWriter::new(std::fs::File::create(dir.join("event.json")).unwrap());
    writeln!(
        e,
        "{{\"Event\": {{\"info\": \"kill test\", \"Attribute\": ["
    )
    .unwrap();
    for i in 0..misp {
        writeln!(
            e,
            "{{\"type\": \"domain\", \"value\": \"m{i}.kill-test.net\", \"to_ids\": true}},"
        )
        .unwrap();
        if i % 100 == 99 {
            writeln!(e, "{{\"type\": \"url\", \"value\": \"m{i}.kill-test.net/no-scheme\", \"to_ids\": true}},").unwrap();
            invalid += 1;
        }
    }
    writeln!(e, "{{\"type\": \"comment\", \"value\": \"the end\", \"to_ids\": false}}], \"Tag\": [{{\"name\": \"tlp:green\"}}]}}}}").unwrap();
    e.flush().unwrap();
    invalid
}

/// The feeds [`write_feeds`] writes.
const FEEDS: [&str; 4] = ["big.csv", "more.ndjson", "bundle.json", "event.json"];

/// Whether every feed of [`write_feeds`] is done under `root`.
fn every_feed_done(root: &Path) -> bool {
    FEEDS.iter().all(|f| ended(root, f, FileState::Done))
}

/// Kills the daemon (the build `bin`) at random moments (of `seed`),
/// restarting it each time, twenty times or until every feed is done:
/// the kills, and how many landed mid-file (a file in processing/).
async fn kill_at_random_moments(app: &TestApp, bin: &str, seed: u64) -> (u32, u32) {
    let mut rng = fastrand::Rng::with_seed(seed);
    let processing = app.config().watch.processing_dir;
    let (mut kills, mut mid_file) = (0, 0);
    while kills < 20 {
        let daemon = app.spawn_daemon_with(bin, &[]);
        let moment = Duration::from_millis(rng.u64(20..=500));
        hold_for(moment, "a random moment of intake to kill the daemon at").await;
        if !names(&processing).is_empty() {
            mid_file += 1;
        }
        daemon.kill().await;
        kills += 1;
        if every_feed_done(app.path()) {
            break;
        }
    }
    (kills, mid_file)
}

#[tokio::test]
async fn sigkill_at_twenty_random_moments_of_intake_loses_and_repeats_no_row() {
    let release = std::env::var("TC_INGEST_BIN").ok();
    let bin = release.clone().unwrap_or_else(|| BIN.to_string());
    let app = TestApp::start().await;
    if release.is_none() {
        app.set_watch("max_stalled_reads = 1000\n");
    }
    let staging = app.path().join("staging");
    std::fs::create_dir_all(&staging).unwrap();
    std::fs::create_dir_all(app.incoming()).unwrap();
    let (valid, invalid) = write_feeds(&staging, 200_000, 20_000);
    for f in FEEDS {
        std::fs::rename(staging.join(f), app.incoming().join(f)).unwrap();
    }
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let (kills, mid_file) = kill_at_random_moments(&app, &bin, seed).await;
    // Left to finish.
    let daemon = app.spawn_daemon_with(&bin, &[]);
    let root = app.path().to_path_buf();
    let finished = wait_until_or(Duration::from_secs(300), async || every_feed_done(&root)).await;
    if !finished {
        let log = daemon.stderr();
        let files = app.binary(&["status"]).await.stdout;
        panic!(
            "the feeds not all in done/ after {kills} kills (seed {seed}):\n{}\n{}",
            String::from_utf8_lossy(&files),
            &log[log.len().saturating_sub(4000)..]
        );
    }
    let (code, log) = daemon.stop().await;
    assert_eq!(code, Some(0), "{log}");
    let q = app.queue().await;
    let context = format!("seed {seed}, {kills} kills, {mid_file} mid-file, binary {bin}");
    eprintln!("kill test: {context}");
    assert!(
        mid_file >= 5,
        "too few kills landed mid-file to prove anything: {context}"
    );
    // Every file done, every valid row queued exactly once (none skipped,
    // none counted again as a duplicate of itself), every invalid one
    // rejected once.
    let (valid, invalid) = (valid as i64, invalid as i64);
    for (sql, expected) in [
        ("SELECT COUNT(*) FROM files WHERE state != 'done'", 0),
        ("SELECT COUNT(*) FROM jobs", valid),
        ("SELECT COUNT(DISTINCT value) FROM jobs", valid),
        ("SELECT SUM(rows_queued) FROM files", valid),
        ("SELECT SUM(rows_duplicate) FROM files", 0),
        ("SELECT COUNT(*) FROM rejects", invalid),
        (
            "SELECT COUNT(*) FROM (SELECT DISTINCT file_id, line FROM rejects) AS r",
            invalid,
        ),
        ("SELECT SUM(rows_rejected) FROM files", invalid),
    ] {
        assert_eq!(number(&q, sql).await, expected, "{sql}: {context}");
    }
}

#[tokio::test]
async fn a_file_that_kills_the_daemon_at_one_row_is_given_up_with_every_row_before_it_queued() {
    let app = TestApp::start().await;
    // Within a read's first chunk (256 rows): the first death commits nothing.
    let rows = 1_000;
    let poison = 200;
    let text: String = (1..=rows)
        .map(|i| format!("p{i}.kill-test.net\n"))
        .collect();
    app.rename_in("poison.txt", text.as_bytes());
    let trigger = format!("p{poison}.kill-test.net");
    let root = app.path().to_path_buf();
    let mut deaths = 0;
    // Each start reads on and dies at the same row, until one finds the
    // file stalled three times in a row and gives it up.
    let daemon = loop {
        let mut daemon = app.spawn_daemon_with(BIN, &[("TC_INGEST_TEST_ABORT_ON", &trigger)]);
        let given_up = wait_until_or(Duration::from_secs(60), async || {
            ended(&root, "poison.txt", FileState::Failed) || daemon.has_exited()
        })
        .await;
        assert!(given_up, "neither died nor gave up: {}", daemon.stderr());
        if ended(&root, "poison.txt", FileState::Failed) {
            break daemon;
        }
        deaths += 1;
        assert!(deaths <= 8, "still not given up after {deaths} deaths");
        daemon.kill().await;
    };
    let log = daemon.stderr();
    assert!(log.contains("given up"), "{log}");
    // The first death committed nothing (its chunk was not full), the
    // second every row before the poison (the row the first died at, as
    // its read mark said), then three without progress.
    assert_eq!(deaths, 5);
    let q = app.queue().await;
    let f = q
        .file(number(&q, "SELECT MAX(id) FROM files").await)
        .await
        .unwrap();
    assert_eq!((f.state, f.stalls), (FileState::Failed, 3));
    assert!(f.given_up());
    assert_eq!(f.rows_queued, poison - 1, "every row before it queued");
    assert_eq!(f.last_position, poison - 1);
    let status = app.binary(&["status"]).await;
    let said = String::from_utf8_lossy(&status.stdout);
    assert!(
        said.contains("given up")
            && said.contains(&format!("line {poison}"))
            && said.contains("retry --file poison.txt"),
        "{said}"
    );
    let (code, _) = daemon.stop().await;
    assert_eq!(code, Some(0), "the daemon that gave the file up runs on");
    // The operator fixed the cause (here: no trigger) and puts it back.
    let daemon = app.spawn_daemon_with_queue().await;
    let out = app.binary(&["retry", "--file", "poison.txt"]).await;
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("asked the daemon to put poison.txt back"),
        "{said}"
    );
    wait_until(
        Duration::from_secs(60),
        "the file put back is read on by the running daemon",
        async || ended(&root, "poison.txt", FileState::Done),
    )
    .await;
    daemon.kill().await;
    let f = q.file(f.id).await.unwrap();
    assert_eq!(f.state, FileState::Done);
    assert_eq!(
        (f.rows_queued, f.rows_duplicate, f.rows_rejected),
        (rows, 0, 0)
    );
}
