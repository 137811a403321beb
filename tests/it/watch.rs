//! The watched directory: what is taken when, where files end up, and that
//! every row is accounted for.

use std::io::Write;
use std::time::Duration;
use tc_ingest::queue::{FileState, JobState};

use tokio_util::sync::CancellationToken;

use crate::helpers::*;

#[tokio::test]
async fn files_present_at_startup_are_taken_and_accounted_for() {
    let app = TestApp::start().await;
    let mut d = app.daemon().await;
    app.drop_file("a.txt", b"1.2.3.4\nnot-an-indicator\n5.6.7.8\n");
    app.drop_file("sub/b.csv", b"indicator,tags\nevil.com,x\n");
    app.drop_file(".hidden.txt", b"9.9.9.9\n");
    app.drop_file("c.txt.tmp", b"9.9.9.9\n");
    app.drop_file("d.part", b"9.9.9.9\n");
    let cancel = CancellationToken::new();
    let out = d.intake().scan(&cancel, false).await.unwrap();
    assert_eq!(out.len(), 2);
    assert_eq!(
        names(&app.incoming()),
        vec![".hidden.txt", "c.txt.tmp", "d.part", "sub"]
    );
    let done = names(&app.path().join("done"));
    assert_eq!(done.len(), 3, "{done:?}");
    assert!(done.iter().any(|n| n.ends_with("-a.txt")));
    assert!(done.iter().any(|n| n.ends_with("-a.txt.errors.ndjson")));
    assert!(done.iter().any(|n| n.ends_with("-sub_b.csv")));
    let report = std::fs::read_to_string(
        app.path()
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
    let app = TestApp::start().await;
    let mut d = app.daemon().await;
    let cancel = CancellationToken::new();
    app.drop_file("a.txt", b"1.2.3.4\n");
    d.intake().scan(&cancel, false).await.unwrap();
    app.drop_file("again.txt", b"1.2.3.4\n");
    let out = d.intake().scan(&cancel, false).await.unwrap();
    assert_eq!(out[0].state, FileState::Skipped);
    assert!(out[0].error.as_deref().unwrap().contains("same content"));
    assert_eq!(d.queue.count(None).await.unwrap(), 1);
    assert_eq!(names(&app.path().join("done")).len(), 2);
}

#[tokio::test]
async fn symlinks_and_fifos_are_never_read() {
    let app = TestApp::start().await;
    let mut d = app.daemon().await;
    let outside = app.path().join("secret.txt");
    std::fs::write(&outside, "6.6.6.6\n").unwrap();
    std::fs::create_dir_all(app.incoming()).unwrap();
    std::os::unix::fs::symlink(&outside, app.incoming().join("link.txt")).unwrap();
    let fifo = app.incoming().join("pipe.txt");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let out = d
        .intake()
        .scan(&CancellationToken::new(), false)
        .await
        .unwrap();
    assert_eq!(
        out.iter().filter(|o| o.state == FileState::Failed).count(),
        2
    );
    let failed = names(&app.path().join("failed"));
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
    let app = TestApp::start().await;
    let mut d = app.daemon().await;
    let mut json = String::from("[");
    for i in 0..50 {
        json.push_str(&format!("\"10.0.0.{i}\","));
    }
    json.push_str("{broken");
    app.drop_file("half.json", json.as_bytes());
    let out = d
        .intake()
        .scan(&CancellationToken::new(), false)
        .await
        .unwrap();
    assert_eq!(out[0].state, FileState::Failed);
    assert_eq!(out[0].queued, 50);
    assert_eq!(d.queue.count(None).await.unwrap(), 50);
    let failed = names(&app.path().join("failed"));
    assert_eq!(failed, vec!["half.json", "half.json.errors.ndjson"]);
    let report =
        std::fs::read_to_string(app.path().join("failed/half.json.errors.ndjson")).unwrap();
    assert!(report.contains("JSON syntax error"), "{report}");
}

#[tokio::test]
async fn a_file_left_in_processing_resumes_without_double_or_lost_rows() {
    let app = TestApp::start().await;
    let mut d = app.daemon().await;
    let cfg = app.config();
    // A previous run took the file and committed its first 400 rows, then died.
    let id = app.taken_file(&d.queue, &ips(1000, 0)).await;
    let first: Vec<_> = ips(400, 0)
        .lines()
        .map(|v| job("Common Community", v))
        .collect();
    d.queue
        .commit_chunk(Some(id), &first, &[], 400, 400, Duration::from_secs(60))
        .await
        .unwrap();
    let out = d.intake().resume(&CancellationToken::new()).await.unwrap();
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
    let app = TestApp::start().await;
    let mut d = app.daemon().await;
    let incoming = app.incoming();
    let done = app.path().join("done");
    let watching = d.watch_in_background();

    // Renamed in: the atomic way.
    app.rename_in("renamed.txt", ips(10, 0).as_bytes());
    wait_until(Duration::from_secs(5), "renamed file taken", async || {
        names(&done).iter().any(|n| n.ends_with("renamed.txt"))
    })
    .await;

    // Written slowly in place, kept open: not taken half-written.
    let slow = incoming.join("slow.txt");
    let mut f = std::fs::File::create(&slow).unwrap();
    for i in 0..8 {
        f.write_all(ips(1, 100 + i).as_bytes()).unwrap();
        f.flush().unwrap();
        hold_for(Duration::from_millis(60), "a producer writing slowly").await;
        assert!(
            slow.exists(),
            "taken while still being written (after {i} lines)"
        );
    }
    drop(f);
    wait_until(Duration::from_secs(5), "slow file taken", async || {
        names(&done).iter().any(|n| n.ends_with("slow.txt"))
    })
    .await;

    // Many at once.
    for i in 0..1000 {
        std::fs::write(incoming.join(format!("many-{i:04}.txt")), ips(1, 1000 + i)).unwrap();
    }
    wait_until(
        Duration::from_secs(120),
        "all 1000 files taken",
        async || names(&done).iter().filter(|n| n.contains("many-")).count() == 1000,
    )
    .await;
    watching.stop().await;
    assert_eq!(d.queue.count(None).await.unwrap(), 10 + 8 + 1000);
}

#[tokio::test]
async fn a_file_replaced_while_being_read_is_read_again_as_a_new_file() {
    let app = TestApp::start().await;
    let mut d = app.daemon().await;
    let processing = app.path().join("processing");
    let done = app.path().join("done");
    let watching = d.watch_in_background();
    app.rename_in("feed.txt", ips(200_000, 0).as_bytes());
    wait_until(Duration::from_secs(10), "feed.txt taken", async || {
        !names(&processing).is_empty() || !names(&done).is_empty()
    })
    .await;
    // A new version under the same name while the first is being read.
    app.rename_in("feed.txt", ips(10, 300_000).as_bytes());
    wait_until(
        Duration::from_secs(60),
        std::fmt::from_fn(|f| write!(f, "{:?}", names(&done))),
        async || {
            names(&done)
                .iter()
                // A second copy in the same second is `...-feed-1.txt`.
                .filter(|n| n.contains("-feed") && n.ends_with(".txt"))
                .count()
                == 2
        },
    )
    .await;
    watching.stop().await;
    assert_eq!(d.queue.count(None).await.unwrap(), 200_010);
}

#[tokio::test]
async fn feed_rules_set_owner_type_tags_and_columns() {
    let app = TestApp::builder()
        .extra_config(
            r#"
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
"#,
        )
        .start()
        .await;
    let mut d = app.daemon().await;
    app.drop_file(
        "a.csv",
        b"observable,labels,confidence,owner\n1.2.3.4,row-tag,90,\n5.6.7.8,,,Common Community\n",
    );
    app.drop_file("hosts/list.txt", b"bare-name.example\n");
    app.drop_file("other.txt", b"9.9.9.9\n");
    d.intake()
        .scan(&CancellationToken::new(), false)
        .await
        .unwrap();
    let c = claim(&d.queue, 10, Duration::from_secs(60)).await;
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
