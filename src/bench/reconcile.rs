//! `bench reconcile`: a named snapshot feed of `n` indicators, then a
//! second snapshot with 10% gone and 5% new: the time its reconciliation
//! takes (the finishing transaction that queues the retire jobs), and the
//! queue's size per member held. Nothing is delivered: the first
//! snapshot's creates are all still waiting, the worst case (each dropped
//! one's create is found in the backlog and dropped).

use std::time::{Duration, Instant};

use crate::indicator::{Indicator, IndicatorType, Payload};
use crate::names::JobAction;
use crate::queue::{
    FeedEnd, FileChunk, FileFinish, FileState, NewFile, NewJob, Queue, Reconciled, Retiring,
};

/// One snapshot file of `values`, committed chunk by chunk as intake does.
async fn snapshot(
    q: &Queue,
    name: &str,
    values: &[u32],
    feed: Option<&str>,
) -> anyhow::Result<(i64, Duration)> {
    let id = q
        .file_begin(&NewFile {
            path: name,
            processing_path: None,
            sha256: name,
            size_bytes: 0,
            owner: "Bench",
            feed,
        })
        .await?;
    let started = Instant::now();
    for (n, part) in values.chunks(crate::intake::CHUNK_ROWS).enumerate() {
        let jobs: Vec<NewJob> = part
            .iter()
            .map(|v| NewJob {
                owner: "Bench".into(),
                indicator: Indicator::from_normalized(
                    IndicatorType::Host,
                    format!("h{v}.bench-feed.example"),
                ),
                payload: Payload::default(),
                line: None,
            })
            .collect();
        let chunk = FileChunk {
            jobs: &jobs,
            rejects: &[],
            skipped: &[],
            filtered: &[],
            rows_read: jobs.len() as u64,
            last_position: (n * crate::intake::CHUNK_ROWS + part.len()) as u64,
            feed,
            withdrawn: &[],
            retiring: Retiring::default(),
        };
        q.commit_file_chunk(Some(id), &chunk, Duration::from_secs(86_400))
            .await?;
    }
    Ok((id, started.elapsed()))
}

/// # Errors
/// Queue errors.
pub async fn bench(n: usize) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let q = Queue::open(&dir.path().join("queue.db")).await?;
    let end = FeedEnd {
        feed: "bench",
        snapshot: true,
        retiring: Retiring {
            action: JobAction::Deactivate,
            tag: "",
        },
        max_retire_fraction: 0.25,
        max_reject_fraction: 0.5,
    };
    let finish = FileFinish {
        state: FileState::Done,
        format: None,
        error: None,
        given_up: false,
    };
    let a: Vec<u32> = (0..n as u32).collect();
    // The same rows into a queue of their own, for no feed: what keeping
    // the members costs intake.
    let plain_dir = tempfile::tempdir()?;
    let plain = Queue::open(&plain_dir.path().join("queue.db")).await?;
    let (_, untracked) = snapshot(&plain, "a", &a, None).await?;
    plain.close().await;
    println!(
        "reconcile: {n} rows for no named feed read in {:.1} s ({:.0} rows/s)",
        untracked.as_secs_f64(),
        n as f64 / untracked.as_secs_f64()
    );
    let (id, read) = snapshot(&q, "a", &a, Some("bench")).await?;
    let first = q.file_finish_feed(id, finish, &end).await?;
    println!(
        "  snapshot A of {n} read in {:.1} s ({:.0} rows/s): {first:?}",
        read.as_secs_f64(),
        n as f64 / read.as_secs_f64()
    );
    let gone = n / 10;
    let b: Vec<u32> = (gone as u32..n as u32 + (n / 20) as u32).collect();
    let (id, read) = snapshot(&q, "b", &b, Some("bench")).await?;
    let started = Instant::now();
    let second = q.file_finish_feed(id, finish, &end).await?;
    let took = started.elapsed();
    println!(
        "  snapshot B ({} rows, 10% gone, 5% new) read in {:.1} s; reconciled in {:.2} s: {second:?}",
        b.len(),
        read.as_secs_f64(),
        took.as_secs_f64()
    );
    anyhow::ensure!(
        matches!(second, Reconciled::Retired { done, .. } if done.queued == gone as u64),
        "expected {gone} retired"
    );
    q.checkpoint().await?;
    let bytes = std::fs::metadata(dir.path().join("queue.db"))?.len();
    let jobs = q.state_counts(0).await?.pending;
    println!(
        "  queue file {:.0} MiB after both ({jobs} jobs, {} members): {:.0} bytes per row held",
        bytes as f64 / (1 << 20) as f64,
        b.len(),
        bytes as f64 / (jobs as usize + b.len()) as f64
    );
    q.close().await;
    Ok(())
}
