//! A queue written by the previous release (`tests/data/queue-v0.1.db`,
//! made by tc-ingest 0.1.0 at commit b8819ec: three feed files, 16 jobs
//! delivered, buried and pending, 5 rejects) opens, migrates and works.

use tc_ingest::names::ErrorClass;
use tc_ingest::normalize::RejectRule;
use tc_ingest::queue::{FileState, JobState, RetryFilter};

use crate::helpers::*;

#[tokio::test]
async fn a_queue_of_the_previous_release_opens_and_delivers() {
    let app = TestApp::builder()
        .extra_config("[delivery]\nrate_per_second = 0\n")
        .start()
        .await;
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
