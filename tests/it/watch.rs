//! The watched directory: what is taken when, where files end up, and that
//! every row is accounted for.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tc_ingest::queue::{FileState, JobState};

use tc_ingest::intake::Intake;
use tc_ingest::metrics::Metrics;
use tc_ingest::queue::Queue;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::helpers::Env;

struct Dir {
    env: Env,
    queue: Queue,
    intake: Intake,
}

async fn dir() -> Dir {
    let env = Env::new("http://127.0.0.1:9");
    let cfg = env.config();
    tc_ingest::intake::create_dirs(&cfg.watch).unwrap();
    let queue = Queue::open(&cfg.queue.path).await.unwrap();
    let (_tx, rx) = watch::channel(Arc::new(cfg));
    // The sender may drop: the receiver keeps the last config.
    let intake = Intake::new(rx, queue.clone(), Arc::new(Metrics::default()));
    Dir { env, queue, intake }
}

fn names(p: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(p)
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

async fn until(secs: u64, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < end {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    false
}

fn ips(n: usize, offset: usize) -> String {
    (offset..offset + n)
        .map(|i| format!("10.{}.{}.{}\n", i / 65536, (i / 256) % 256, i % 256))
        .collect()
}

#[tokio::test]
async fn files_present_at_startup_are_taken_and_accounted_for() {
    let mut d = dir().await;
    d.env
        .drop_file("a.txt", b"1.2.3.4\nnot-an-indicator\n5.6.7.8\n");
    d.env
        .drop_file("sub/b.csv", b"indicator,tags\nevil.com,x\n");
    d.env.drop_file(".hidden.txt", b"9.9.9.9\n");
    d.env.drop_file("c.txt.tmp", b"9.9.9.9\n");
    d.env.drop_file("d.part", b"9.9.9.9\n");
    let cancel = CancellationToken::new();
    let out = d.intake.scan(&cancel, false).await.unwrap();
    assert_eq!(out.len(), 2);
    assert_eq!(
        names(&d.env.incoming()),
        vec![".hidden.txt", "c.txt.tmp", "d.part", "sub"]
    );
    let done = names(&d.env.path().join("done"));
    assert_eq!(done.len(), 3, "{done:?}");
    assert!(done.iter().any(|n| n.ends_with("-a.txt")));
    assert!(done.iter().any(|n| n.ends_with("-a.txt.errors.ndjson")));
    assert!(done.iter().any(|n| n.ends_with("-sub_b.csv")));
    let report = std::fs::read_to_string(
        d.env
            .path()
            .join("done")
            .join(done.iter().find(|n| n.ends_with(".errors.ndjson")).unwrap()),
    )
    .unwrap();
    let line: serde_json::Value = serde_json::from_str(report.lines().next().unwrap()).unwrap();
    assert_eq!(
        (line["line"].as_u64(), line["input"].as_str()),
        (Some(2), Some("not-an-indicator"))
    );
    assert_eq!(d.queue.count(Some(JobState::Pending)).await.unwrap(), 3);
    let stats = d.queue.stats().await.unwrap();
    assert_eq!(stats.files_by_state.get(&FileState::Done), Some(&2));
    assert_eq!(stats.rows_rejected, 1);
}

#[tokio::test]
async fn the_same_content_again_is_skipped() {
    let mut d = dir().await;
    let cancel = CancellationToken::new();
    d.env.drop_file("a.txt", b"1.2.3.4\n");
    d.intake.scan(&cancel, false).await.unwrap();
    d.env.drop_file("again.txt", b"1.2.3.4\n");
    let out = d.intake.scan(&cancel, false).await.unwrap();
    assert_eq!(out[0].state, FileState::Skipped);
    assert!(out[0].error.as_deref().unwrap().contains("same content"));
    assert_eq!(d.queue.count(None).await.unwrap(), 1);
    assert_eq!(names(&d.env.path().join("done")).len(), 2);
}

#[tokio::test]
async fn symlinks_and_fifos_are_never_read() {
    let mut d = dir().await;
    let outside = d.env.path().join("secret.txt");
    std::fs::write(&outside, "6.6.6.6\n").unwrap();
    std::fs::create_dir_all(d.env.incoming()).unwrap();
    std::os::unix::fs::symlink(&outside, d.env.incoming().join("link.txt")).unwrap();
    let fifo = d.env.incoming().join("pipe.txt");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let out = d
        .intake
        .scan(&CancellationToken::new(), false)
        .await
        .unwrap();
    assert_eq!(
        out.iter().filter(|o| o.state == FileState::Failed).count(),
        2
    );
    let failed = names(&d.env.path().join("failed"));
    assert!(
        failed.contains(&"link.txt".to_string()) && failed.contains(&"pipe.txt".to_string()),
        "{failed:?}"
    );
    assert!(failed.contains(&"link.txt.errors.ndjson".to_string()));
    assert_eq!(
        d.queue.count(None).await.unwrap(),
        0,
        "nothing behind the link was read"
    );
    assert_eq!(std::fs::read_to_string(&outside).unwrap(), "6.6.6.6\n");
}

#[tokio::test]
async fn a_file_that_breaks_midway_keeps_its_rows_and_goes_to_failed() {
    let mut d = dir().await;
    let mut json = String::from("[");
    for i in 0..50 {
        json.push_str(&format!("\"10.0.0.{i}\","));
    }
    json.push_str("{broken");
    d.env.drop_file("half.json", json.as_bytes());
    let out = d
        .intake
        .scan(&CancellationToken::new(), false)
        .await
        .unwrap();
    assert_eq!(out[0].state, FileState::Failed);
    assert_eq!(out[0].queued, 50);
    assert_eq!(d.queue.count(None).await.unwrap(), 50);
    let failed = names(&d.env.path().join("failed"));
    assert_eq!(failed, vec!["half.json", "half.json.errors.ndjson"]);
    let report =
        std::fs::read_to_string(d.env.path().join("failed/half.json.errors.ndjson")).unwrap();
    assert!(report.contains("JSON syntax error"), "{report}");
}

#[tokio::test]
async fn a_file_left_in_processing_resumes_without_double_or_lost_rows() {
    let mut d = dir().await;
    let cfg = d.env.config();
    // A previous run took the file and committed its first 400 rows, then died.
    let processing = cfg.watch.processing_dir.join("big.txt");
    std::fs::write(&processing, ips(1000, 0)).unwrap();
    let id = d
        .queue
        .file_begin(&tc_ingest::queue::NewFile {
            path: "big.txt",
            processing_path: Some(&processing.to_string_lossy()),
            sha256: "x",
            size_bytes: 1,
            owner: "Common Community",
        })
        .await
        .unwrap();
    let first: Vec<_> = ips(400, 0)
        .lines()
        .map(|v| tc_ingest::queue::NewJob {
            owner: "Common Community".into(),
            indicator: tc_ingest::normalize::value(v, None).unwrap(),
            payload: Default::default(),
            line: None,
        })
        .collect();
    d.queue
        .commit_chunk(Some(id), &first, &[], 400, 400, Duration::from_secs(60))
        .await
        .unwrap();
    let out = d.intake.resume(&CancellationToken::new()).await.unwrap();
    assert_eq!(out[0].state, FileState::Done);
    let f = d.queue.file(id).await.unwrap();
    assert_eq!(
        (f.rows_read, f.rows_queued, f.rows_duplicate),
        (1000, 1000, 0),
        "the rest was read once, the start not again"
    );
    assert_eq!(d.queue.count(None).await.unwrap(), 1000);
    assert!(names(&cfg.watch.processing_dir).is_empty());
}

#[tokio::test]
async fn the_running_watcher_takes_renamed_slow_and_many_files() {
    let d = dir().await;
    let incoming = d.env.incoming();
    let done = d.env.path().join("done");
    let queue = d.queue.clone();
    let cancel = CancellationToken::new();
    let task = tokio::spawn(d.intake.run(cancel.clone()));

    // Renamed in: the atomic way.
    let tmp = incoming.join(".x.tmp");
    std::fs::write(&tmp, ips(10, 0)).unwrap();
    std::fs::rename(&tmp, incoming.join("renamed.txt")).unwrap();
    assert!(
        until(5, || names(&done)
            .iter()
            .any(|n| n.ends_with("renamed.txt")))
        .await,
        "renamed file taken"
    );

    // Written slowly in place, kept open: not taken half-written.
    let slow = incoming.join("slow.txt");
    let mut f = std::fs::File::create(&slow).unwrap();
    for i in 0..8 {
        f.write_all(ips(1, 100 + i).as_bytes()).unwrap();
        f.flush().unwrap();
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert!(
            slow.exists(),
            "taken while still being written (after {i} lines)"
        );
    }
    drop(f);
    assert!(until(5, || names(&done).iter().any(|n| n.ends_with("slow.txt"))).await);

    // Many at once.
    for i in 0..1000 {
        std::fs::write(incoming.join(format!("many-{i:04}.txt")), ips(1, 1000 + i)).unwrap();
    }
    assert!(
        until(120, || names(&done)
            .iter()
            .filter(|n| n.contains("many-"))
            .count()
            == 1000)
        .await,
        "all 1000 files taken"
    );
    cancel.cancel();
    task.await.unwrap().unwrap();
    assert_eq!(queue.count(None).await.unwrap(), 10 + 8 + 1000);
}

#[tokio::test]
async fn a_file_replaced_while_being_read_is_read_again_as_a_new_file() {
    let d = dir().await;
    let incoming = d.env.incoming();
    let processing = d.env.path().join("processing");
    let done = d.env.path().join("done");
    let queue = d.queue.clone();
    let cancel = CancellationToken::new();
    let task = tokio::spawn(d.intake.run(cancel.clone()));
    let tmp = incoming.join(".feed.tmp");
    std::fs::write(&tmp, ips(200_000, 0)).unwrap();
    std::fs::rename(&tmp, incoming.join("feed.txt")).unwrap();
    assert!(
        until(10, || !names(&processing).is_empty()
            || !names(&done).is_empty())
        .await
    );
    // A new version under the same name while the first is being read.
    std::fs::write(&tmp, ips(10, 300_000)).unwrap();
    std::fs::rename(&tmp, incoming.join("feed.txt")).unwrap();
    assert!(
        until(60, || names(&done)
            .iter()
            .filter(|n| n.ends_with("feed.txt") || n.contains("feed.txt."))
            .count()
            == 2)
        .await,
        "{:?}",
        names(&done)
    );
    cancel.cancel();
    task.await.unwrap().unwrap();
    assert_eq!(queue.count(None).await.unwrap(), 200_010);
}

#[tokio::test]
async fn feed_rules_set_owner_type_tags_and_columns() {
    let mut env = Env::new("http://127.0.0.1:9");
    env.extra = r#"
[[feeds]]
match = "*.csv"
owner = "Exemplary Organization"
tags = ["from-rule"]
rating = 2
confidence = 40
columns = { value = "observable", tags = "labels" }

[[feeds]]
dir = "hosts"
type = "host"
"#
    .into();
    let cfg = env.config();
    tc_ingest::intake::create_dirs(&cfg.watch).unwrap();
    let queue = Queue::open(&cfg.queue.path).await.unwrap();
    let (_tx, rx) = watch::channel(Arc::new(cfg));
    let mut intake = Intake::new(rx, queue.clone(), Arc::new(Metrics::default()));
    env.drop_file(
        "a.csv",
        b"observable,labels,confidence,owner\n1.2.3.4,row-tag,90,\n5.6.7.8,,,Common Community\n",
    );
    env.drop_file("hosts/list.txt", b"bare-name.example\n");
    env.drop_file("other.txt", b"9.9.9.9\n");
    intake.scan(&CancellationToken::new(), false).await.unwrap();
    let c = queue.claim(10, Duration::from_secs(60)).await.unwrap();
    let get = |v: &str| {
        c.iter()
            .find(|j| j.value == v)
            .unwrap_or_else(|| panic!("{v} not queued: {c:?}"))
    };
    let a = get("1.2.3.4");
    assert_eq!(a.owner, "Exemplary Organization");
    let (_, p) = a.parse().unwrap();
    assert_eq!(
        (p.rating, p.confidence),
        (Some(2.0), Some(90)),
        "the row's confidence wins"
    );
    assert_eq!(p.tags, vec!["from-rule", "row-tag"]);
    assert_eq!(
        get("5.6.7.8").owner,
        "Common Community",
        "the row's owner wins"
    );
    assert_eq!(get("bare-name.example").kind, "Host");
    assert_eq!(
        get("9.9.9.9").owner,
        "Common Community",
        "no rule: api.owner"
    );
}
