//! `bench page`: the status page of a queue of `n` jobs (one in ten
//! delivered, one in a hundred buried) and 200 named feeds holding them:
//! the time to read and render it, as the listener does for each request.

use std::time::{Duration, Instant};

use crate::indicator::{Indicator, IndicatorType, Payload};
use crate::queue::{FileChunk, NewFile, NewJob, Queue, Retiring};

/// Named feeds in the queue.
const FEEDS: usize = 200;

/// # Errors
/// Queue errors.
pub async fn bench(n: usize) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let q = Queue::open(&dir.path().join("queue.db")).await?;
    let started = Instant::now();
    let per_feed = n.div_ceil(FEEDS);
    for f in 0..FEEDS {
        let feed = format!("feed-{f:03}");
        let id = q
            .file_begin(&NewFile {
                path: &format!("{feed}/list.txt"),
                processing_path: None,
                sha256: &feed,
                size_bytes: 0,
                owner: "Bench",
                feed: Some(&feed),
            })
            .await?;
        let jobs: Vec<NewJob> = (0..per_feed)
            .map(|i| NewJob {
                owner: "Bench".into(),
                indicator: Indicator::from_normalized(
                    IndicatorType::Host,
                    format!("h{i}.{feed}.example"),
                ),
                payload: Payload::default(),
                line: Some(i as u64 + 1),
            })
            .collect();
        let chunk = FileChunk {
            jobs: &jobs,
            rejects: &[],
            skipped: &[],
            filtered: &[],
            rows_read: jobs.len() as u64,
            last_position: jobs.len() as u64,
            feed: Some(&feed),
            withdrawn: &[],
            retiring: Retiring::default(),
        };
        q.commit_file_chunk(Some(id), &chunk, Duration::ZERO)
            .await?;
        q.file_finish(id, crate::queue::FileState::Done, None, None, false)
            .await?;
    }
    q.bench_settle_jobs(10, 100).await?;
    q.count_members(None).await?;
    q.checkpoint().await?;
    println!(
        "page: {} jobs in {FEEDS} named feeds built in {:.1} s",
        per_feed * FEEDS,
        started.elapsed().as_secs_f64()
    );
    let mut times = Vec::new();
    for _ in 0..20 {
        let t = Instant::now();
        let html = crate::web::page_html_of(&q).await?;
        times.push(t.elapsed());
        anyhow::ensure!(html.contains("feed-199"), "the page lists every feed");
    }
    times.sort();
    println!(
        "  read and rendered in {:.1} ms median, {:.1} ms min, {:.1} ms max (20 runs)",
        times[10].as_secs_f64() * 1000.0,
        times[0].as_secs_f64() * 1000.0,
        times[19].as_secs_f64() * 1000.0
    );
    q.close().await;
    Ok(())
}
