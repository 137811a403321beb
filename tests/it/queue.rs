//! The queue against real SQLite files in temp dirs.

use std::time::Duration;
use tc_ingest::feed::Format;
use tc_ingest::queue::BatchOwners;
use tc_ingest::queue::{ErrorClass, FileState, JobState};

use tc_ingest::indicator::{IndicatorType, Payload};
use tc_ingest::queue::{
    DaemonLock, JobError, JobUpdate, Lease, NewJob, NewReject, Queue, RetryFilter, now_ms,
};

use crate::helpers::*;

fn err(class: &str) -> JobError {
    JobError {
        class: class.parse().unwrap(),
        http_status: Some(400),
        message: format!("{class} happened"),
    }
}

const LEASE: Duration = Duration::from_secs(60);

#[tokio::test]
async fn enqueue_claim_complete_with_dedup() {
    let app = TestApp::start().await;
    let q = app.queue().await;
    let jobs: Vec<NewJob> = (0..1000)
        .map(|i| job("O", &format!("10.0.{}.{}", i / 256, i % 256)))
        .collect();
    let mut with_repeat = jobs.clone();
    with_repeat.push(job("O", "10.0.0.0"));
    let r = q
        .commit_chunk(None, &with_repeat, &[], 1001, 1001, DAY)
        .await
        .unwrap();
    assert_eq!((r.queued, r.duplicates), (1000, 1));
    // The same again: all pending already.
    let r = q
        .commit_chunk(None, &jobs[..10], &[], 10, 10, DAY)
        .await
        .unwrap();
    assert_eq!((r.queued, r.duplicates), (0, 10));
    // Another owner or payload is not a duplicate.
    let mut tagged = job("O", "10.0.0.0");
    tagged.payload.tags = vec!["t".into()];
    let r = q
        .commit_chunk(None, &[job("P", "10.0.0.0"), tagged], &[], 2, 2, DAY)
        .await
        .unwrap();
    assert_eq!(r.queued, 2);

    let claimed = claim(&q, 100, Duration::from_secs(30)).await;
    assert_eq!(claimed.len(), 100);
    assert_eq!(q.count(Some(JobState::Leased)).await.unwrap(), 100);
    let (ind, payload) = claimed[0].parse().unwrap();
    assert_eq!(ind.kind(), IndicatorType::Address);
    assert_eq!(payload, Payload::default());
    let updates: Vec<(Lease, JobUpdate)> = claimed
        .iter()
        .map(|j| (j.lease, JobUpdate::Delivered))
        .collect();
    assert!(q.apply(&updates, LEASE).await.unwrap().iter().all(|ok| *ok));
    assert_eq!(q.count(Some(JobState::Delivered)).await.unwrap(), 100);
    // Delivered within the window: still a duplicate. With a zero window: queued again.
    let value = &claimed[0].value;
    let r = q
        .commit_chunk(None, &[job(&claimed[0].owner, value)], &[], 1, 1, DAY)
        .await
        .unwrap();
    assert_eq!(r.duplicates, 1);
    let r = q
        .commit_chunk(
            None,
            &[job(&claimed[0].owner, value)],
            &[],
            1,
            1,
            Duration::ZERO,
        )
        .await
        .unwrap();
    assert_eq!(r.queued, 1);
}

#[tokio::test]
async fn leases_expire_and_return() {
    let app = TestApp::start().await;
    let q = app.queue().await;
    enqueue(&q, &[job("O", "1.1.1.1"), job("O", "2.2.2.2")]).await;
    let a = claim(&q, 1, Duration::from_millis(1)).await;
    let b = claim(&q, 10, LEASE).await;
    assert_eq!((a.len(), b.len()), (1, 1));
    assert!(
        claim(&q, 10, LEASE).await.is_empty(),
        "leased jobs are not claimed twice"
    );
    // The 1 ms lease has run out.
    clock_past(now_ms() + 1).await;
    assert_eq!(q.reclaim_expired_leases().await.unwrap(), 1);
    let again = claim(&q, 10, LEASE).await;
    assert_eq!(
        again.iter().map(|j| j.lease.id).collect::<Vec<_>>(),
        vec![a[0].lease.id]
    );
    // Daemon start: every lease is an orphan.
    assert_eq!(q.release_all_leases().await.unwrap(), 2);
    assert_eq!(q.count(Some(JobState::Pending)).await.unwrap(), 2);
}

/// A job rescheduled after a server error, buried, requeued.
mod reschedule_bury_requeue {
    use super::*;

    /// Three jobs of feeds/a.csv claimed: the first (of "O") rescheduled a
    /// minute on after one call, the second (of "P") buried for a
    /// validation error, the third (of "O") for an unexpected one.
    async fn one_rescheduled_two_buried(q: &Queue) {
        let fid = file_record(q, "feeds/a.csv", None, "x", "O").await;
        let jobs = [
            job("O", "1.1.1.1"),
            job("P", "2.2.2.2"),
            job("O", "3.3.3.3"),
        ];
        q.commit_chunk(Some(fid), &jobs, &[], 3, 3, DAY)
            .await
            .unwrap();
        let c = claim(q, 10, LEASE).await;
        let retry = JobUpdate::Retry {
            at: now_ms() + 60_000,
            failed: true,
            uncertain: false,
            error: Some(err("server_error")),
        };
        let bury = |class| JobUpdate::Bury { error: err(class) };
        q.apply(
            &[
                (c[0].lease, JobUpdate::Progress { steps_done: 1 }),
                (c[0].lease, retry),
                (c[1].lease, bury("validation")),
                (c[2].lease, bury("unexpected")),
            ],
            LEASE,
        )
        .await
        .unwrap();
    }

    #[tokio::test]
    async fn rescheduled_and_buried() {
        let app = TestApp::start().await;
        let q = app.queue().await;
        one_rescheduled_two_buried(&q).await;
        assert!(claim(&q, 10, LEASE).await.is_empty(), "not due yet");
        let dead = q.jobs_in_state(JobState::Dead).await.unwrap();
        assert_eq!(dead.len(), 2);
        assert_eq!(
            dead[0].last_error_class.map(ErrorClass::as_str),
            Some("validation")
        );
        assert_eq!(dead[0].last_http_status, Some(400));
        let pending = q.jobs_in_state(JobState::Pending).await.unwrap();
        assert_eq!((pending[0].steps_done, pending[0].attempts), (1, 1));
    }

    #[tokio::test]
    async fn requeued_by_class_owner_or_file() {
        let app = TestApp::start().await;
        let q = app.queue().await;
        one_rescheduled_two_buried(&q).await;
        let by_class = RetryFilter {
            class: Some(ErrorClass::Validation),
            ..RetryFilter::default()
        };
        assert_eq!(q.requeue_dead(&by_class).await.unwrap(), 1);
        let by_owner = RetryFilter {
            owner: Some("nobody".into()),
            ..RetryFilter::default()
        };
        assert_eq!(q.requeue_dead(&by_owner).await.unwrap(), 0);
        let by_file = RetryFilter {
            file: Some("a.csv".into()),
            ..RetryFilter::default()
        };
        assert_eq!(q.requeue_dead(&by_file).await.unwrap(), 1);
        assert_eq!(q.count(Some(JobState::Dead)).await.unwrap(), 0);
        assert_eq!(claim(&q, 10, LEASE).await.len(), 2);
    }
}

#[tokio::test]
async fn held_owners_wait_and_others_go_on() {
    let app = TestApp::start().await;
    let q = app.queue().await;
    enqueue(&q, &[job("A", "1.1.1.1"), job("B", "2.2.2.2")]).await;
    assert!(
        q.hold_owner("A", ErrorClass::AccessDenied, "Access Denied")
            .await
            .unwrap()
    );
    assert!(
        !q.hold_owner("A", ErrorClass::AccessDenied, "Access Denied")
            .await
            .unwrap(),
        "holding twice is one hold"
    );
    enqueue(&q, &[job("A", "3.3.3.3")]).await;
    assert_eq!(
        q.count(Some(JobState::Held)).await.unwrap(),
        2,
        "new jobs of a held owner are held too"
    );
    let c = claim(&q, 10, LEASE).await;
    assert_eq!(
        c.iter().map(|j| j.owner.as_str()).collect::<Vec<_>>(),
        vec!["B"]
    );
    let s = q.stats().await.unwrap();
    assert_eq!(s.held_owners.len(), 1);
    assert_eq!(q.release_owner("A").await.unwrap(), 2);
    assert_eq!(claim(&q, 10, LEASE).await.len(), 2);
}

#[tokio::test]
async fn files_rejects_progress_and_stats() {
    let app = TestApp::start().await;
    let q = app.queue().await;
    let fid = file_record(&q, "x.txt", Some("/p/x.txt"), "abc", "O").await;
    let rejects = vec![NewReject {
        line: 2,
        input: "bad".into(),
        rule: tc_ingest::normalize::RejectRule::InvalidUrl,
        reason: "why".into(),
    }];
    q.commit_chunk(
        Some(fid),
        &[job("O", "1.1.1.1"), job("O", "1.1.1.1")],
        &rejects,
        3,
        3,
        DAY,
    )
    .await
    .unwrap();
    let f = q.file_in_progress("/p/x.txt").await.unwrap().unwrap();
    assert_eq!(
        (
            f.rows_read,
            f.rows_queued,
            f.rows_duplicate,
            f.rows_rejected,
            f.last_position
        ),
        (3, 1, 1, 1, 3)
    );
    assert_eq!(q.rejects(fid, 10).await.unwrap(), rejects);
    q.file_finish(fid, FileState::Done, Some(Format::Text), None, false)
        .await
        .unwrap();
    assert!(q.file_in_progress("/p/x.txt").await.unwrap().is_none());
    assert_eq!(q.file_done_with_sha("abc").await.unwrap().unwrap().id, fid);

    let s = q.stats().await.unwrap();
    assert_eq!(s.by_state.get(&JobState::Pending), Some(&1));
    assert_eq!(s.by_type["Address"][&JobState::Pending], 1);
    assert_eq!(s.files_by_state.get(&FileState::Done), Some(&1));
    assert_eq!(s.rows_rejected, 1);
    assert!(s.oldest_pending_secs.is_some());
}

#[tokio::test]
async fn prune_removes_old_delivered_jobs_only() {
    let app = TestApp::start().await;
    let q = app.queue().await;
    enqueue(&q, &[job("O", "1.1.1.1"), job("O", "2.2.2.2")]).await;
    let c = claim(&q, 1, LEASE).await;
    q.apply(&[(c[0].lease, JobUpdate::Delivered)], LEASE)
        .await
        .unwrap();
    assert_eq!(q.prune_delivered(DAY).await.unwrap(), 0);
    clock_past(now_ms()).await;
    assert_eq!(q.prune_delivered(Duration::ZERO).await.unwrap(), 1);
    assert_eq!(q.count(None).await.unwrap(), 1);
}

#[tokio::test]
async fn rejects_of_old_files_are_pruned_and_counts_kept() {
    let app = TestApp::start().await;
    let q = app.queue().await;
    let fid = file_record(&q, "x.txt", None, "abc", "O").await;
    let rejects = vec![NewReject {
        line: 1,
        input: "x".into(),
        rule: tc_ingest::normalize::RejectRule::InvalidUrl,
        reason: "why".into(),
    }];
    q.commit_chunk(Some(fid), &[], &rejects, 1, 1, DAY)
        .await
        .unwrap();
    assert_eq!(
        q.prune_rejects(Duration::ZERO).await.unwrap(),
        0,
        "an unfinished file keeps its rejects"
    );
    q.file_finish(fid, FileState::Done, Some(Format::Text), None, false)
        .await
        .unwrap();
    assert_eq!(q.prune_rejects(DAY).await.unwrap(), 0);
    clock_past(now_ms()).await;
    assert_eq!(q.prune_rejects(Duration::ZERO).await.unwrap(), 1);
    assert!(q.rejects(fid, 10).await.unwrap().is_empty());
    assert_eq!(q.file(fid).await.unwrap().rows_rejected, 1);
}

#[tokio::test]
async fn a_row_inserted_by_hand_is_delivered_like_any_other() {
    let app = TestApp::start().await;
    let q = app.queue().await;
    sql(&q, "INSERT INTO jobs (owner, type, value, payload) VALUES ('O', 'Host', 'hand.example.com', '{\"tags\":[\"manual\"]}')").await;
    let c = claim(&q, 10, LEASE).await;
    assert_eq!(c.len(), 1);
    let (ind, payload) = c[0].parse().unwrap();
    assert_eq!(
        (ind.summary(), payload.tags),
        ("hand.example.com", vec!["manual".to_string()])
    );
}

#[tokio::test]
async fn only_one_daemon_per_queue_and_readers_alongside() {
    if skip_on_postgres("the SQLite queue's lock file") {
        return;
    }
    let app = TestApp::start().await;
    let path = app.queue_path();
    let lock = DaemonLock::acquire(&path).unwrap();
    let e = DaemonLock::acquire(&path).unwrap_err().to_string();
    assert!(e.contains(&format!("pid {}", std::process::id())), "{e}");
    drop(lock);
    let _again = DaemonLock::acquire(&path).unwrap();

    // A reader holding a read transaction open does not block writers (WAL).
    let q = Queue::open(&path).await.unwrap();
    enqueue(&q, &[job("O", "1.1.1.1")]).await;
    let reader = Queue::open(&path).await.unwrap();
    reader.count(None).await.unwrap();
    let conn = rusqlite_like_reader(&path).await;
    enqueue(&q, &[job("O", "2.2.2.2")]).await;
    let c = claim(&q, 10, LEASE).await;
    assert_eq!(c.len(), 2);
    drop(conn);
}

/// Opens a separate connection and keeps a read transaction open on it, as
/// `sqlite3` does while a query's result is being paged.
async fn rusqlite_like_reader(path: &std::path::Path) -> sqlx::SqliteConnection {
    use sqlx::Connection;
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    sqlx::raw_sql("BEGIN; SELECT COUNT(*) FROM jobs;")
        .execute(&mut conn)
        .await
        .unwrap();
    conn
}

#[tokio::test]
async fn intake_and_delivery_write_at_the_same_time_without_busy_errors() {
    if skip_on_postgres("SQLite's one writer at a time") {
        return;
    }
    let app = TestApp::start().await;
    let path = app.queue_path();
    let writer = Queue::open(&path).await.unwrap();
    let deliverer = Queue::open(&path).await.unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = stop.clone();
    let delivering = tokio::spawn(async move {
        let mut done = 0;
        while !flag.load(std::sync::atomic::Ordering::Relaxed) {
            let c = deliverer
                .claim(50, Duration::from_secs(60), &BatchOwners::None)
                .await?;
            let updates: Vec<(Lease, JobUpdate)> =
                c.iter().map(|j| (j.lease, JobUpdate::Delivered)).collect();
            deliverer.apply(&updates, LEASE).await?;
            done += c.len();
            tokio::task::yield_now().await;
        }
        anyhow::Ok(done)
    });
    for chunk in 0..40 {
        let jobs: Vec<NewJob> = (0..500)
            .map(|i| job("O", &format!("10.{chunk}.{}.{}", i / 256, i % 256)))
            .collect();
        writer
            .commit_chunk(None, &jobs, &[], 500, 500, DAY)
            .await
            .unwrap();
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    delivering.await.unwrap().unwrap();
    assert_eq!(writer.count(None).await.unwrap(), 20_000);
}

/// One daemon's writers take turns in order: while intake commits big
/// chunks back to back, a claim and its results each wait for at most the
/// chunk being written, never for the whole file (SQLite's busy handler
/// alone let back-to-back chunks keep them out past the busy timeout).
#[tokio::test]
async fn a_write_waits_for_one_chunk_not_for_a_whole_file() {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
    let app = TestApp::start().await;
    let q = app.queue().await;
    let first: Vec<NewJob> = (0..100)
        .map(|i| job("O", &format!("10.255.0.{i}")))
        .collect();
    q.commit_chunk(None, &first, &[], 100, 100, DAY)
        .await
        .unwrap();
    let chunks = std::sync::Arc::new(AtomicUsize::new(0));
    let done = std::sync::Arc::new(AtomicBool::new(false));
    let intake = tokio::spawn({
        let (q, chunks, done) = (q.clone(), chunks.clone(), done.clone());
        async move {
            let mut n = 0;
            while !done.load(SeqCst) && n < 400 {
                let jobs: Vec<NewJob> = (0..4000)
                    .map(|i| {
                        job(
                            "O",
                            &format!("10.{}.{}.{}", n % 250, n / 250 * 16 + i / 256, i % 256),
                        )
                    })
                    .collect();
                q.commit_chunk(None, &jobs, &[], 4000, 4000, DAY).await?;
                n += 1;
                chunks.store(n, SeqCst);
            }
            anyhow::Ok(n)
        }
    });
    while chunks.load(SeqCst) == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut waited = Vec::new();
    for _ in 0..5 {
        let before = chunks.load(SeqCst);
        let claimed = claim(&q, 10, LEASE).await;
        let updates: Vec<(Lease, JobUpdate)> = claimed
            .iter()
            .map(|j| (j.lease, JobUpdate::Delivered))
            .collect();
        q.apply(&updates, LEASE).await.unwrap();
        waited.push(chunks.load(SeqCst) - before);
    }
    done.store(true, SeqCst);
    let written = intake.await.unwrap().unwrap();
    assert!(
        written < 400,
        "the intake loop ran out before the writes: {written}"
    );
    // A claim and an apply: each waits for the chunk in progress at most.
    assert!(
        waited.iter().all(|w| *w <= 3),
        "chunks committed while one claim and its results waited: {waited:?}"
    );
    assert_eq!(q.count(Some(JobState::Delivered)).await.unwrap(), 50);
}

/// With some owners going by batch, a claim takes every other owner's due
/// jobs and, of a batch owner, only those that cannot go by batch (a call
/// of unknown outcome), oldest due first; held owners are left alone; the
/// batch backlog counts each owner up to the asked number.
#[tokio::test]
async fn claims_beside_batch_owners_take_only_what_cannot_go_by_batch() {
    let app = TestApp::start().await;
    let q = app.queue().await;
    let values = |n: usize, prefix: &str| -> Vec<String> {
        (0..n).map(|i| format!("{prefix}{i}.example.com")).collect()
    };
    let jobs = |owner: &str, values: &[String]| -> Vec<NewJob> {
        values.iter().map(|v| job(owner, v)).collect()
    };
    // Two of A's jobs whose call outcome is unknown: they go per indicator.
    enqueue(&q, &jobs("A", &values(2, "started"))).await;
    let started = claim(&q, 2, LEASE).await;
    let retry = JobUpdate::Retry {
        at: now_ms(),
        failed: true,
        uncertain: true,
        error: None,
    };
    let updates: Vec<(Lease, JobUpdate)> =
        started.iter().map(|j| (j.lease, retry.clone())).collect();
    q.apply(&updates, LEASE).await.unwrap();
    // What comes next is due after the started jobs.
    clock_past(now_ms()).await;
    enqueue(&q, &jobs("A", &values(50, "fresh"))).await;
    enqueue(&q, &jobs("B", &values(5, "b"))).await;
    enqueue(&q, &jobs("C", &values(3, "c"))).await;
    q.hold_owner("C", ErrorClass::AccessDenied, "no access")
        .await
        .unwrap();

    let mut backlog = q.batch_backlog(10).await.unwrap();
    backlog.sort();
    assert_eq!(backlog, vec![("A".into(), 10), ("B".into(), 5)]);
    // Only what can go by batch counts: not A's two started jobs.
    let mut backlog = q.batch_backlog(1000).await.unwrap();
    backlog.sort();
    assert_eq!(backlog, vec![("A".into(), 50), ("B".into(), 5)]);

    let mut expected: Vec<String> = values(2, "started");
    expected.extend(values(5, "b"));
    for batching in [
        BatchOwners::Only(vec!["A".into()]),
        BatchOwners::AllBut(vec!["B".into(), "C".into()]),
    ] {
        let claimed = q.claim(100, LEASE, &batching).await.unwrap();
        let mut got: Vec<String> = claimed.iter().map(|j| j.value.clone()).collect();
        got.sort();
        let mut want = expected.clone();
        want.sort();
        assert_eq!(got, want, "{batching:?}");
        let release: Vec<(Lease, JobUpdate)> = claimed
            .iter()
            .map(|j| {
                // B's due before A's, whatever their owner names and ids.
                let update = JobUpdate::Retry {
                    at: if j.owner == "B" { 0 } else { 1 },
                    failed: false,
                    uncertain: j.uncertain.call_may_have_arrived(),
                    error: None,
                };
                (j.lease, update)
            })
            .collect();
        q.apply(&release, LEASE).await.unwrap();
    }
    // Oldest due first across owners: B's (due at 0) before A's started
    // ones (due at 1), though A's owner name and ids come first.
    let claimed = q
        .claim(3, LEASE, &BatchOwners::Only(vec!["A".into()]))
        .await
        .unwrap();
    let got: Vec<&str> = claimed.iter().map(|j| j.value.as_str()).collect();
    assert_eq!(got, ["b0.example.com", "b1.example.com", "b2.example.com"]);
}
