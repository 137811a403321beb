//! Queue jobs and records built for tests: indicators, jobs, feed rows,
//! claims and file records.

use std::time::Duration;

use tc_ingest::indicator::{Attribute, Indicator, IndicatorType, Payload};
use tc_ingest::queue::{BatchOwners, ChunkResult, Job, NewFile, NewJob, Queue};

use super::TestApp;

/// The MD5 and SHA256 of the empty file.
pub const EMPTY_MD5: &str = "d41d8cd98f00b204e9800998ecf8427e";
pub const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

pub const DAY: Duration = Duration::from_secs(86_400);

/// `s` normalized as an indicator of `kind`; panics when it is not one.
pub fn ind(kind: IndicatorType, s: &str) -> Indicator {
    tc_ingest::normalize::value(s, Some(kind)).unwrap_or_else(|e| panic!("{s}: {e}"))
}

/// A Description attribute of `text`.
pub fn description(text: &str) -> Attribute {
    Attribute {
        kind: "Description".into(),
        value: text.into(),
    }
}

/// A job for `value` (type detected), no payload.
pub fn job(owner: &str, value: &str) -> NewJob {
    NewJob {
        owner: owner.into(),
        indicator: tc_ingest::normalize::value(value, None).unwrap(),
        payload: Payload::default(),
        line: Some(1),
    }
}

/// `n` hosts `h<i>.example.com` of `owner`, each with `tags` tags.
pub fn hosts(owner: &str, n: usize, tags: usize) -> Vec<NewJob> {
    (0..n)
        .map(|i| {
            let mut j = job(owner, &format!("h{i}.example.com"));
            j.payload.tags = (0..tags).map(|t| format!("tag{t}")).collect();
            j
        })
        .collect()
}

/// `j` with a Description attribute of `text`.
pub fn described(mut j: NewJob, text: &str) -> NewJob {
    j.payload.attributes.push(description(text));
    j
}

/// `n` distinct addresses from the `offset`-th on (`10.x.y.z`), one a line.
pub fn ips(n: usize, offset: usize) -> String {
    (offset..offset + n)
        .map(|i| format!("10.{}.{}.{}\n", i / 65536, (i / 256) % 256, i % 256))
        .collect()
}

/// Queues jobs outside any file, deduplicating over a day.
pub async fn enqueue(q: &Queue, jobs: &[NewJob]) -> ChunkResult {
    q.commit_chunk(None, jobs, &[], jobs.len() as u64, 0, DAY)
        .await
        .unwrap()
}

/// Claims up to `n` due jobs for `lease`, no owner going by batch.
pub async fn claim(q: &Queue, n: usize, lease: Duration) -> Vec<Job> {
    q.claim(n, lease, &BatchOwners::None).await.unwrap()
}

/// Records a feed file `path` of `owner` (one byte, content hash `sha256`),
/// being read from `processing` when given; its id.
pub async fn file_record(
    q: &Queue,
    path: &str,
    processing: Option<&str>,
    sha256: &str,
    owner: &str,
) -> i64 {
    q.file_begin(&NewFile {
        path,
        processing_path: processing,
        sha256,
        size_bytes: 1,
        owner,
        feed: None,
    })
    .await
    .unwrap()
}

impl TestApp {
    /// `big.txt` in processing/ holding `content`, with its record in the
    /// queue `q`, as a run that took the file and died left it; its id.
    pub async fn taken_file(&self, q: &Queue, content: &str) -> i64 {
        let processing = self.config().watch.processing_dir.join("big.txt");
        std::fs::write(&processing, content).unwrap();
        let path = processing.to_string_lossy();
        file_record(q, "big.txt", Some(&path), "x", "Common Community").await
    }
}
