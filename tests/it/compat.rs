//! A queue written by the previous release (`tests/data/queue-v0.1.db`,
//! made by tc-ingest 0.1.0 at commit b8819ec: three feed files, 16 jobs
//! delivered, buried and pending, 5 rejects) opens, migrates and works.

use tc_ingest::names::ErrorClass;
use tc_ingest::normalize::RejectRule;
use tc_ingest::queue::{FileState, JobState, RetryFilter};

use crate::helpers::*;

#[tokio::test]
async fn a_queue_of_the_previous_release_opens_and_delivers() {
    if skip_on_postgres("a SQLite file of an earlier release") {
        return;
    }
    let app = TestApp::builder().extra_config(UNTHROTTLED).start().await;
    std::fs::copy(data("queue-v0.1.db"), app.queue_path()).unwrap();
    let mut d = app.daemon().await;

    let s = d.queue.stats().await.unwrap();
    assert_eq!(
        (
            s.jobs(JobState::Delivered),
            s.jobs(JobState::Dead),
            s.jobs(JobState::Pending)
        ),
        (9, 5, 2)
    );
    assert_eq!(s.files_by_state.get(&FileState::Done), Some(&3));
    assert_eq!(s.rows_rejected, 5);
    assert_eq!(s.dead_by_class.get("validation"), Some(&5));
    let rules: Vec<RejectRule> = d
        .queue
        .rejects(1, 10)
        .await
        .unwrap()
        .iter()
        .map(|r| r.rule)
        .collect();
    assert_eq!(rules.len(), 3, "the stored rule names parse: {rules:?}");

    let report = d.once().await;
    assert_eq!(report.exit_code(), 0, "{:?}", report.stats);
    assert_eq!(d.queue.count(Some(JobState::Delivered)).await.unwrap(), 11);

    let validation = RetryFilter {
        class: Some(ErrorClass::Validation),
        ..RetryFilter::default()
    };
    assert_eq!(d.queue.requeue_dead(&validation).await.unwrap(), 5);
    d.once().await;
    // Requeued jobs resume at their next call. Those whose create was done
    // on the old run's simulator are unknown to this one (404 on their
    // tags) and are buried again; the others are delivered. None is left.
    let s = d.queue.stats().await.unwrap();
    assert_eq!(s.jobs(JobState::Pending) + s.jobs(JobState::Leased), 0);
    let (delivered, dead) = (s.jobs(JobState::Delivered), s.jobs(JobState::Dead));
    assert_eq!(delivered + dead, 16, "{s:?}");
    assert!(delivered > 11, "{s:?}");
    assert!(s.dead_by_class.keys().all(|c| c == "not_found"), "{s:?}");
}

/// The README's SQL (every `sqlite> ` line and the hand-insert) through the
/// system's `sqlite3` (Debian 12 ships 3.40), on a 0.1.0 queue migrated by
/// this release. Skipped, saying so, where no sqlite3 is installed.
#[tokio::test]
async fn the_readme_sql_runs_in_the_system_sqlite3() {
    if skip_on_postgres("the sqlite3 shell") {
        return;
    }
    let Ok(version) = std::process::Command::new("sqlite3")
        .arg("--version")
        .output()
    else {
        eprintln!("SKIPPED: no sqlite3 on this machine (apt-get install sqlite3)");
        return;
    };
    let version = String::from_utf8_lossy(&version.stdout).to_string();
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let mut statements: Vec<String> = readme
        .lines()
        .filter_map(|l| l.strip_prefix("sqlite> "))
        .map(|l| l.split(" -- ").next().unwrap().trim().to_string())
        .collect();
    let insert = readme
        .split("```sql\n")
        .nth(1)
        .and_then(|s| s.split("```").next())
        .expect("the README's hand-insert")
        .trim()
        .to_string();
    assert!(insert.starts_with("INSERT INTO jobs"), "{insert}");
    statements.insert(0, insert);
    assert!(statements.len() >= 8, "{statements:?}");

    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("queue.db");
    std::fs::copy(data("queue-v0.1.db"), &db).unwrap();
    tc_ingest::queue::Queue::open(&db)
        .await
        .unwrap()
        .close()
        .await;
    for sql in &statements {
        let out = std::process::Command::new("sqlite3")
            .args(["-bail", db.to_str().unwrap(), sql])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "sqlite3 {version}: {sql}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = std::process::Command::new("sqlite3")
        .args([
            db.to_str().unwrap(),
            "SELECT state, abs(next_attempt_at - CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)) < 60000 \
             FROM jobs WHERE value = 'evil.example.com'",
        ])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "pending|1");
    // The daemon takes the hand-inserted row like any other.
    let q = tc_ingest::queue::Queue::open(&db).await.unwrap();
    assert_eq!(q.count(Some(JobState::Pending)).await.unwrap(), 3);
    q.close().await;
}
