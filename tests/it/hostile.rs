//! Hostile input: the corpus of `tc_ingest::bench::hostile` (generated here,
//! small, against small configured limits) dropped into a running daemon;
//! a file's failure stays the file's; no crash loop; appended files wait to
//! settle; `normalize` and `enqueue` read only regular files or stdin.
//! Memory figures come from `tc-ingest bench hostile`, not from here.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tc_ingest::bench::hostile::{CASES, Case};
use tc_ingest::queue::FileState;
use tokio::io::AsyncWriteExt;
use tokio_util::sync::CancellationToken;

use crate::helpers::*;

/// The limits the corpus is built to cross, and the size it crosses them by.
const MAX_LINE: u64 = 1024;
const MAX_GZ: u64 = 16 << 10;
const BIG: u64 = 16 << 10;

/// The test app with small limits (and `settle_ms`) written into `[watch]`.
async fn app_with(watch: &str) -> TestApp {
    let app = TestApp::start().await;
    app.set_watch(watch);
    app
}

fn small_limits() -> String {
    format!("max_line_bytes = {MAX_LINE}\nmax_decompressed_bytes = {MAX_GZ}\n")
}

/// Where a case of the corpus must end (`None`: either place is right).
fn expected_end(file: &str) -> Option<FileState> {
    match file {
        "long-header.csv"
        | "zeros.csv.gz"
        | "open-quote.csv"
        | "bomb.txt.gz"
        | "bomb-lines.csv.gz"
        | "truncated.csv.gz"
        | "wide.csv"
        | "link.csv"
        | "fifo.csv"
        | "truncated-bundle.json" => Some(FileState::Failed),
        "long-string.json"
        | "long-key.json"
        | "deep.json"
        | "blank.json"
        | "long-line.ndjson"
        | "long-line.txt"
        | "nul-tags.csv"
        | "nul-values.txt"
        | "invalid-utf8.txt"
        | "empty.csv"
        | "header-only.csv"
        | "valid.csv"
        | "untyped.json"
        | "long-pattern.json"
        | "many-objects.json"
        | "attribute-object.json" => Some(FileState::Done),
        _ => None,
    }
}

/// Drops `case` (written in `staging`, renamed in) into the running
/// daemon's watched directory; it must end in done/ or failed/, where
/// [`expected_end`] says, with a sound errors report.
async fn drop_case(app: &TestApp, daemon: &DaemonProcess, staging: &Path, case: &Case) {
    let staged = case.write(staging, BIG).unwrap();
    std::fs::rename(&staged, app.incoming().join(case.file)).unwrap();
    let root = app.path().to_path_buf();
    wait_until(
        Duration::from_secs(30),
        format!("{} ({}) ends in done/ or failed/", case.name, case.file),
        async || landed(&root, case.file).is_some(),
    )
    .await;
    let (state, moved) = landed(&root, case.file).unwrap();
    let mut report = moved.into_os_string();
    report.push(".errors.ndjson");
    check_report(case.file, state, &PathBuf::from(report)).await;
    if let Some(expected) = expected_end(case.file) {
        assert_eq!(state, expected, "{}: {}", case.name, daemon.stderr());
    }
}

/// A case's errors report: a failed file's names the line and reason of
/// its last row; no line of any is long.
async fn check_report(file: &str, state: FileState, report: &Path) {
    if state == FileState::Failed {
        // The report is written just after the move.
        wait_until(
            Duration::from_secs(10),
            format!("{file}: errors report"),
            async || std::fs::read_to_string(report).is_ok_and(|t| t.ends_with('\n')),
        )
        .await;
        let text = std::fs::read_to_string(report)
            .unwrap_or_else(|e| panic!("{file}: no errors report: {e}"));
        let last: serde_json::Value = serde_json::from_str(
            text.lines()
                .last()
                .unwrap_or_else(|| panic!("{file}: an empty errors report")),
        )
        .unwrap();
        assert!(
            last["reason"].as_str().is_some_and(|e| !e.is_empty()) && last.get("line").is_some(),
            "{file}: the report names line and reason: {last}"
        );
    }
    if report.exists() {
        let text = std::fs::read_to_string(report).unwrap();
        for l in text.lines() {
            assert!(l.len() < 2048, "{file}: a report line of {} bytes", l.len());
        }
    }
}

/// What the corpus left in the queue at `q`: the rows before a break kept
/// (queued, or duplicates of rows of earlier cases), oversized lines and
/// elements as rejects, echoes of input cut, no control character in a
/// payload.
async fn check_the_queue_after_the_corpus(q: &Path) {
    let per_file = async |file: &str, column: &str| {
        number_at(
            q,
            &format!("SELECT {column} FROM files WHERE path = '{file}' ORDER BY id DESC LIMIT 1"),
        )
        .await
    };
    assert_eq!(
        per_file("open-quote.csv", "rows_queued + rows_duplicate").await,
        1
    );
    // An oversized JSON element is skipped like an oversized line.
    for file in ["long-string.json", "long-line.ndjson", "long-line.txt"] {
        assert_eq!(
            per_file(file, "rows_queued + rows_duplicate").await,
            2,
            "{file}"
        );
        assert_eq!(per_file(file, "rows_rejected").await, 1, "{file}");
    }
    assert_eq!(
        per_file("long-key.json", "rows_queued + rows_duplicate").await,
        1
    );
    assert_eq!(per_file("deep.json", "rows_rejected").await, 1);
    // STIX and MISP: the object before the cut is kept; an untyped object,
    // an oversized one and a non-list `Attribute` are one reject each and
    // the rest is read; tiny objects of no indicator type are counted.
    for (file, queued, rejected) in [
        ("truncated-bundle.json", 1, 0),
        ("untyped.json", 1, 1),
        ("long-pattern.json", 1, 1),
        ("attribute-object.json", 1, 1),
    ] {
        assert_eq!(
            per_file(file, "rows_queued + rows_duplicate").await,
            queued,
            "{file}"
        );
        assert_eq!(per_file(file, "rows_rejected").await, rejected, "{file}");
    }
    assert!(per_file("many-objects.json", "rows_skipped").await > 1000);
    for (rule, n) in [("stix-invalid", 1), ("misp-invalid", 1)] {
        assert_eq!(
            number_at(
                q,
                &format!("SELECT COUNT(*) FROM rejects WHERE rule = '{rule}'")
            )
            .await,
            n,
            "{rule}"
        );
    }
    // Echoes of input are cut before they are stored.
    for sql in [
        "SELECT MAX(LENGTH(error)) FROM files",
        "SELECT MAX(LENGTH(input)) FROM rejects",
        "SELECT MAX(LENGTH(reason)) FROM rejects",
    ] {
        let n = number_at(q, sql).await;
        assert!(n <= 1024, "{sql}: {n}");
    }
    // No control character left in tags or attributes (PostgreSQL's text
    // cannot hold a NUL at all).
    let raw_nul = if on_postgres() {
        ""
    } else {
        " OR instr(payload, char(0)) > 0"
    };
    let sql = format!(
        "SELECT COUNT(*) FROM jobs WHERE payload LIKE '%\\u0000%' OR payload LIKE '%\\u0001%' \
         OR payload LIKE '%\\u007f%'{raw_nul}"
    );
    assert_eq!(number_at(q, &sql).await, 0);
}

#[tokio::test]
async fn every_hostile_case_ends_in_done_or_failed_and_the_daemon_goes_on() {
    let app = app_with(&small_limits()).await;
    let daemon = app.spawn_daemon_with_queue().await;
    let staging = app.path().join("staging");
    std::fs::create_dir_all(&staging).unwrap();
    // A directory named like a feed is a folder of feeds, not a file: the
    // daemon walks into it and goes on.
    std::fs::create_dir_all(app.incoming().join("feed.csv")).unwrap();
    for case in CASES {
        drop_case(&app, &daemon, &staging, case).await;
    }
    check_the_queue_after_the_corpus(app.queue_location().as_ref()).await;
    // Still up, still taking files.
    app.rename_in("after.txt", b"192.0.2.1\n");
    let root = app.path().to_path_buf();
    wait_until(
        Duration::from_secs(10),
        "a file after the corpus is taken",
        async || ended(&root, "after.txt", FileState::Done),
    )
    .await;
    assert!(app.incoming().join("feed.csv").is_dir());
    let (code, log) = daemon.stop().await;
    assert_eq!(code, Some(0), "{log}");
    let longest = log.lines().map(str::len).max().unwrap_or(0);
    assert!(longest < 8192, "a log line of {longest} bytes");
}

#[tokio::test]
async fn a_failed_move_fails_the_file_not_the_daemon() {
    let app = TestApp::start().await;
    let daemon = app.spawn_daemon_with_queue().await;
    // The daemon has migrated its queue once it takes a file.
    app.rename_in("zero.txt", b"");
    let done = app.path().join("done");
    wait_until(
        Duration::from_secs(10),
        "the first file is handled",
        async || names(&done).iter().any(|n| n.ends_with("zero.txt")),
    )
    .await;
    // done/ replaced by a plain file: every move there fails (ENOTDIR), as
    // a full disk or a vanished file would fail it.
    std::fs::remove_dir_all(&done).unwrap();
    std::fs::write(&done, b"not a directory").unwrap();
    app.rename_in("first.txt", b"192.0.2.1\n");
    let q = app.queue_location();
    wait_until(
        Duration::from_secs(10),
        "the file is recorded as failed",
        async || {
            try_number_at(
                &q,
                "SELECT COUNT(*) FROM files WHERE path = 'first.txt' AND state = 'failed' \
                 AND error LIKE '%cannot move%'",
            )
            .await
            .is_ok_and(|n| n == 1)
        },
    )
    .await;
    std::fs::remove_file(&done).unwrap();
    std::fs::create_dir(&done).unwrap();
    app.rename_in("second.txt", b"192.0.2.2\n");
    wait_until(
        Duration::from_secs(10),
        "the next file is taken",
        async || names(&done).iter().any(|n| n.ends_with("second.txt")),
    )
    .await;
    let (code, log) = daemon.stop().await;
    assert_eq!(code, Some(0), "the daemon kept running: {log}");
    assert!(log.contains("not moved"), "{log}");
}

/// A file in `processing/` with its record, as a run that died reading it
/// `deaths` times left it, with `progress` rows committed between the
/// deaths (a list, one entry per death: the position committed by then).
async fn left_in_processing(d: &TestDaemon, app: &TestApp, committed: &[u64]) -> i64 {
    let id = app
        .taken_file(&d.queue, "192.0.2.1\n192.0.2.2\n192.0.2.3\n")
        .await;
    for (i, &position) in committed.iter().enumerate() {
        if i > 0 {
            // The start after a death: counted, then read again.
            d.queue.file_interrupted(id).await.unwrap();
        }
        d.queue.file_reading(id).await.unwrap();
        if position > 0 {
            d.queue
                .commit_chunk(Some(id), &[], &[], 0, position, Duration::from_secs(60))
                .await
                .unwrap();
        }
    }
    id
}

#[tokio::test]
async fn a_file_the_daemon_died_reading_without_progress_three_times_is_given_up() {
    let app = TestApp::start().await;
    let mut d = app.daemon().await;
    // Three deaths, the first after committing row 1, then none further.
    let id = left_in_processing(&d, &app, &[1, 1, 1]).await;
    let out = d.intake().resume(&CancellationToken::new()).await.unwrap();
    assert_eq!(
        out[0].state,
        FileState::Done,
        "two stalls are not three: {out:?}"
    );
    let id2 = left_in_processing(&d, &app, &[0, 0, 0]).await;
    assert_ne!(id, id2);
    let out = d.intake().resume(&CancellationToken::new()).await.unwrap();
    assert_eq!(out[0].state, FileState::Failed);
    let f = d.queue.file(id2).await.unwrap();
    assert_eq!(f.state, FileState::Failed);
    assert!(f.given_up(), "{f:?}");
    let error = f.error.as_deref().unwrap();
    assert!(
        error.contains("given up")
            && error.contains("3 times")
            && error.contains("retry --file big.txt"),
        "{error}"
    );
    assert_eq!(f.rows_read, 0, "not read again");
    let failed = names(&app.path().join("failed"));
    assert!(failed.contains(&"big.txt".to_string()), "{failed:?}");
    assert!(
        failed.contains(&"big.txt.errors.ndjson".to_string()),
        "{failed:?}"
    );
    // The operator puts it back: it is read on from where it stopped.
    let out = app.binary(&["retry", "--file", "big.txt"]).await;
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && said.contains("asked the daemon to put big.txt back"),
        "{said}"
    );
    let out = d
        .intake()
        .resume_put_back(&CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(out[0].state, FileState::Done);
    assert!(
        names(&app.path().join("failed")).is_empty(),
        "moved back, report gone"
    );
    let f = d.queue.file(id2).await.unwrap();
    assert_eq!(
        (f.state, f.stalls, f.rows_queued + f.rows_duplicate),
        (FileState::Done, 0, 3)
    );
    // Once read, nothing is left to put back.
    let out = app.binary(&["retry", "--file", "big.txt"]).await;
    assert!(!String::from_utf8_lossy(&out.stdout).contains("put big.txt back"));
    assert!(d.queue.files_put_back().await.unwrap().is_empty());
}

#[tokio::test]
async fn deaths_with_progress_between_them_never_give_a_file_up() {
    let app = TestApp::start().await;
    let mut d = app.daemon().await;
    // Nine deaths, never three in a row without a row more committed.
    let id = left_in_processing(&d, &app, &[1, 1, 1, 2, 2, 2, 3, 3, 3]).await;
    let out = d.intake().resume(&CancellationToken::new()).await.unwrap();
    assert_eq!(out[0].state, FileState::Done, "{out:?}");
    let f = d.queue.file(id).await.unwrap();
    assert_eq!(
        (f.rows_read, f.stalls),
        (0, 0),
        "every row was committed before"
    );
}

#[tokio::test]
async fn a_file_stopped_on_purpose_resumes_however_often() {
    let app = TestApp::start().await;
    let mut d = app.daemon().await;
    // Two stalled deaths, then a stop on purpose: the start after it is
    // not counted, however often it happens.
    let id = left_in_processing(&d, &app, &[0, 0, 0]).await;
    for _ in 0..5 {
        d.queue.file_stopped(id).await.unwrap();
        d.queue.file_reading(id).await.unwrap();
    }
    d.queue.file_stopped(id).await.unwrap();
    let out = d.intake().resume(&CancellationToken::new()).await.unwrap();
    assert_eq!(out[0].state, FileState::Done);
    assert_eq!(d.queue.file(id).await.unwrap().rows_queued, 3);
}

#[tokio::test]
async fn a_file_appended_line_by_line_is_taken_once_when_settled() {
    let app = app_with("settle_ms = 1500\n").await;
    let mut d = app.daemon().await;
    let watching = d.watch_in_background();
    let path = app.incoming().join("appended.txt");
    // Open, write one line, close: every line is a close-after-write.
    for i in 0..10 {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .unwrap();
        writeln!(f, "192.0.2.{}", i + 1).unwrap();
        drop(f);
        hold_for(
            Duration::from_millis(30),
            "a producer appending a line at a time",
        )
        .await;
    }
    let done = app.path().join("done");
    wait_until(
        Duration::from_secs(15),
        "the appended file is taken",
        async || names(&done).iter().any(|n| n.ends_with("appended.txt")),
    )
    .await;
    watching.stop().await;
    let files: Vec<String> = names(&done);
    assert_eq!(files.len(), 1, "taken once: {files:?}");
    assert_eq!(
        d.queue.count(None).await.unwrap(),
        10,
        "all ten lines, in one file"
    );
}

/// Runs the binary with `args`, feeding `stdin`; exit code, stdout, stderr.
async fn run_with_stdin(args: &[&str], stdin: &[u8]) -> (Option<i32>, String, String) {
    let mut child = command(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin).await.unwrap();
    drop(input);
    let out = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .expect("finished")
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn normalize_and_enqueue_read_regular_files_and_stdin_only() {
    let app = TestApp::start().await;
    let fifo = app.path().join("fifo.csv");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let dir = app.path().to_str().unwrap().to_string();
    for bad in ["/dev/zero", fifo.to_str().unwrap(), &dir] {
        let (code, _, err) = run_with_stdin(&["normalize", bad], b"").await;
        assert_eq!(code, Some(2), "normalize {bad}: {err}");
        assert!(err.contains("not a regular file"), "normalize {bad}: {err}");
        let out = app.binary(&["enqueue", bad]).await;
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "enqueue {bad}: {err}");
        assert!(err.contains("not a regular file"), "enqueue {bad}: {err}");
    }
    let (code, out, err) =
        run_with_stdin(&["normalize", "-"], b"192.0.2.1\nhxxp://evil[.]example/x\n").await;
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out.lines().count(), 2, "{out}");
    let config = app.config_path();
    let (code, out, err) = run_with_stdin(
        &["enqueue", "--config", config.to_str().unwrap(), "-"],
        b"192.0.2.1\n192.0.2.2\n",
    )
    .await;
    assert_eq!(code, Some(0), "{out}{err}");
    assert_eq!(app.queue().await.count(None).await.unwrap(), 2);
    // The same limits as the daemon: a line past max_line_bytes is a reject.
    let mut long = b"192.0.2.9\n".to_vec();
    long.extend(std::iter::repeat_n(b'x', (1 << 20) + 10));
    long.extend(b"\n192.0.2.10\n");
    let (code, out, err) = run_with_stdin(&["normalize", "-"], &long).await;
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out.lines().count(), 3, "{err}");
    assert!(out.lines().all(|l| l.len() < 2048));
    assert!(out.contains("max_line_bytes"), "{out}");
}
