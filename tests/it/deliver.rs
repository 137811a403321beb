//! Delivery against the simulator over real HTTP on loopback: each row of
//! the error policy, asserting what reached the simulator and the final
//! queue state. Pauses and held owners: `pauses.rs`.

use std::time::{Duration, Instant};
use tc_ingest::queue::{ErrorClass, JobState};

use tc_ingest::sim::Faults;

use crate::helpers::*;

/// A simulator that answers a repeated File create with 400 "already
/// exists", and fast delivery.
async fn file_exists_app() -> TestApp {
    TestApp::builder()
        .faults(Faults {
            file_exists_400: true,
            ..faults()
        })
        .extra_config(FAST_POLICY)
        .start()
        .await
}

#[tokio::test]
async fn created_and_already_existing_are_delivered_with_every_step_once() {
    let app = file_exists_app().await;
    let mut d = app.daemon().await;
    let mut all = hosts("Common Community", 20, 2);
    for owner in ["Common Community", "Exemplary Organization"] {
        all.push(job(owner, "d41d8cd98f00b204e9800998ecf8427e"));
    }
    d.enqueue(&all).await;
    // The same file created again in the same owner answers 400 "already exists".
    sql(&d.queue, "INSERT INTO jobs (owner, type, value) VALUES ('Common Community', 'File', 'd41d8cd98f00b204e9800998ecf8427e')").await;
    let report = d.once().await;
    assert_eq!(report.exit_code(), 0, "{:?}", report.stats);
    assert_eq!(d.queue.count(Some(JobState::Delivered)).await.unwrap(), 23);
    let stats = app.sim.stats();
    assert_eq!(stats.by_class.get("duplicate"), Some(&1));
    assert_eq!(stats.by_class["success"], 20 * 3 + 2);
    for ind in app.sim.indicators().iter().filter(|i| i.kind == "Host") {
        assert_eq!((ind.create_count, ind.tags.len()), (1, 2), "{ind:?}");
    }
}

/// ThreatConnect holds the File under its MD5 only; a create of the same
/// File with MD5 and SHA256 answers 400 "a File with this MD5 already
/// exists", and the File is not found under the SHA256: its tag and
/// attribute go to it under the next hash instead of the job being buried.
#[tokio::test]
async fn a_file_known_under_another_hash_gets_its_tags_and_attributes() {
    let app = file_exists_app().await;
    let mut d = app.daemon().await;
    d.enqueue(&[job("Common Community", EMPTY_MD5)]).await;
    assert_eq!(d.once().await.exit_code(), 0);
    let both = format!("{EMPTY_MD5} : {EMPTY_SHA256}");
    let mut both = described(job("Common Community", &both), "with its sha256");
    both.payload.tags = vec!["seen-again".into()];
    d.enqueue(&[both]).await;
    let report = d.once().await;
    assert_eq!(report.exit_code(), 0, "{:?}", report.stats);
    assert_eq!(d.queue.count(Some(JobState::Dead)).await.unwrap(), 0);
    let held = app.sim.indicators();
    assert_eq!(held.len(), 1, "{held:?}");
    assert!(held[0].tags.contains("seen-again"), "{held:?}");
    assert_eq!(held[0].attributes.len(), 1, "{held:?}");
    let stats = app.sim.stats();
    assert_eq!(stats.by_class.get("duplicate"), Some(&1), "{stats:?}");
    // One 404 (the tag under the sha256); the attribute went straight to
    // the md5 that worked.
    assert_eq!(stats.by_status.get(&404), Some(&1), "{stats:?}");
}

/// The same in v3 with `attribute_check = "always"`: the File's attribute,
/// held under its MD5 only, is found there before the create, not under the
/// SHA256, and is not sent again.
#[tokio::test]
async fn v3_looks_for_a_files_attributes_under_each_of_its_hashes() {
    let app = TestApp::builder()
        .extra_config(&format!(
            "{FAST_POLICY}mode = \"v3\"\nattribute_check = \"always\"\n"
        ))
        .start()
        .await;
    let mut d = app.daemon().await;
    let file = |value: &str| described(job("Common Community", value), "the empty file");
    d.enqueue(&[file(EMPTY_MD5)]).await;
    assert_eq!(d.once().await.exit_code(), 0);
    d.enqueue(&[file(&format!("{EMPTY_MD5} : {EMPTY_SHA256}"))])
        .await;
    assert_eq!(d.once().await.exit_code(), 0);
    let held = app.sim.indicators();
    assert_eq!(held.len(), 1, "{held:?}");
    assert_eq!(held[0].attributes.len(), 1, "{held:?}");
}

/// The same indicator and description fed again after the dedup window:
/// attributes append, so by default the description is there twice; with
/// `delivery.attribute_check = "always"` it is looked for first, in v2 and
/// v3 alike.
#[tokio::test]
async fn attribute_check_always_adds_no_attribute_twice_when_fed_again() {
    for (mode, check, expected) in [
        ("v2", "uncertain", 2),
        ("v2", "always", 1),
        ("v3", "always", 1),
    ] {
        let app = TestApp::builder()
            .extra_config(&format!(
                "{FAST_POLICY}mode = \"{mode}\"\nattribute_check = \"{check}\"\n"
            ))
            .start()
            .await;
        let mut d = app.daemon().await;
        let fed = described(
            job("Common Community", "fed-again.example.com"),
            "seen in the daily feed",
        );
        for _ in 0..2 {
            // Outside the dedup window: queued again.
            d.queue
                .commit_chunk(None, std::slice::from_ref(&fed), &[], 1, 1, Duration::ZERO)
                .await
                .unwrap();
            assert_eq!(d.once().await.exit_code(), 0);
        }
        let held = app.sim.indicators();
        assert_eq!(held.len(), 1);
        assert_eq!(
            held[0].attributes.len(),
            expected,
            "{mode} {check}: {held:?}"
        );
    }
}

#[tokio::test]
async fn validation_errors_bury_the_job_with_the_apis_message() {
    let app = TestApp::builder().extra_config(FAST_POLICY).start().await;
    let mut d = app.daemon().await;
    d.enqueue(&hosts("Common Community", 3, 0)).await;
    // Values the normalizer would never produce, inserted by hand.
    sql(
        &d.queue,
        "INSERT INTO jobs (owner, type, value) VALUES ('Common Community', 'ASN', 'AS 12')",
    )
    .await;
    sql(
        &d.queue,
        "INSERT INTO jobs (owner, type, value) VALUES ('Common Community', 'Nonsense', 'x')",
    )
    .await;
    let report = d.once().await;
    assert_eq!(report.exit_code(), 1);
    let dead = d.queue.jobs_in_state(JobState::Dead).await.unwrap();
    assert_eq!(dead.len(), 2);
    assert_eq!(
        dead[0].last_error_class.map(ErrorClass::as_str),
        Some("validation")
    );
    assert_eq!(dead[0].last_http_status, Some(400));
    assert_eq!(
        dead[0].last_error.as_deref(),
        Some("Please enter a valid ASN")
    );
    assert_eq!(
        dead[1].last_error_class.map(ErrorClass::as_str),
        Some("invalid_job")
    );
    assert_eq!(d.queue.count(Some(JobState::Delivered)).await.unwrap(), 3);
    assert_eq!(
        app.sim.stats().by_class["validation"],
        1,
        "a buried job is not retried"
    );
    // `retry` requeues it; it fails the same way.
    let n = d
        .queue
        .requeue_dead(&tc_ingest::queue::RetryFilter {
            class: Some(ErrorClass::Validation),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(n, 1);
}

#[tokio::test]
async fn transient_errors_back_off_then_deliver_or_bury_after_max_attempts() {
    let app = TestApp::builder()
        .faults(Faults {
            fail_next: 3,
            error_status: 500,
            ..faults()
        })
        .extra_config(FAST_POLICY)
        .start()
        .await;
    let mut d = app.daemon().await;
    d.enqueue(&hosts("Common Community", 1, 0)).await;
    let report = d.once().await;
    assert_eq!(report.exit_code(), 0);
    let done = d.queue.jobs_in_state(JobState::Delivered).await.unwrap();
    assert_eq!(done[0].attempts, 3, "three failures counted");
    assert_eq!(app.sim.stats().by_class["injected_error"], 3);

    app.sim.set_faults(Faults {
        error_rate: 1.0,
        error_status: 503,
        ..faults()
    });
    d.enqueue(&hosts("Exemplary Organization", 2, 0)).await;
    let mut d2 = d;
    let report = d2.once().await;
    assert_eq!(report.exit_code(), 1);
    let dead = d2.queue.jobs_in_state(JobState::Dead).await.unwrap();
    assert_eq!(
        dead.len(),
        2,
        "{:?} {:?} {:?}",
        report.stats.by_state,
        report.paused,
        d2.queue.jobs_in_state(JobState::Pending).await.unwrap()
    );
    for j in dead {
        assert_eq!(
            (
                j.attempts,
                j.last_error_class.map(ErrorClass::as_str),
                j.last_http_status
            ),
            (5, Some("server_error"), Some(503))
        );
    }
}

#[tokio::test]
async fn thirty_percent_503s_still_deliver_everything_exactly_once_per_step() {
    let extra = FAST_POLICY.replace("max_attempts = 5", "max_attempts = 50");
    let app = TestApp::builder()
        .faults(Faults {
            error_rate: 0.3,
            error_status: 503,
            ..faults()
        })
        .extra_config(&extra)
        .start()
        .await;
    let mut d = app.daemon().await;
    d.enqueue(&hosts("Common Community", 150, 1)).await;
    let report = d.once().await;
    assert_eq!(report.exit_code(), 0, "{:?}", report.stats);
    assert_eq!(d.queue.count(Some(JobState::Delivered)).await.unwrap(), 150);
    let stats = app.sim.stats();
    assert_eq!(
        stats.writes_succeeded, 300,
        "each create and each tag succeeded exactly once (breaker probes are GETs)"
    );
    assert!(stats.by_class["injected_error"] > 50, "{stats:?}");
    let held = app.sim.indicators();
    assert_eq!(held.len(), 150);
    assert!(
        held.iter()
            .all(|i| i.create_count == 1 && i.tags.len() == 1)
    );
}

#[tokio::test]
async fn rate_limited_answers_are_waited_out_and_slow_the_rate() {
    let app = TestApp::builder()
        .faults(Faults {
            rate_limit_next: 1,
            retry_after_secs: 1,
            ..faults()
        })
        .extra_config(&FAST_POLICY.replace("rate_per_second = 0", "rate_per_second = 100"))
        .start()
        .await;
    let mut d = app.daemon().await;
    d.enqueue(&hosts("Common Community", 1, 0)).await;
    let start = Instant::now();
    let report = d.once().await;
    assert_eq!(report.exit_code(), 0);
    assert!(
        start.elapsed() >= Duration::from_millis(900),
        "Retry-After was honoured"
    );
    let done = d.queue.jobs_in_state(JobState::Delivered).await.unwrap();
    assert_eq!(done[0].attempts, 0, "a 429 is not the job's fault");
    assert!(d.delivery.throttle.fraction() < 1.0);
    assert_eq!(app.sim.stats().by_class["rate_limited"], 1);
}

#[tokio::test]
async fn the_rate_limit_is_never_exceeded() {
    let extra = FAST_POLICY
        .replace("rate_per_second = 0", "rate_per_second = 20")
        .replace("workers = 4", "workers = 8");
    let app = TestApp::builder()
        .extra_config(&format!("{extra}burst = 1\n"))
        .start()
        .await;
    let mut d = app.daemon().await;
    d.enqueue(&hosts("Common Community", 30, 0)).await;
    let start = Instant::now();
    d.once().await;
    // 30 requests at 20/s with a burst of 1 take at least 29/20 s.
    assert!(
        start.elapsed() >= Duration::from_millis(1400),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(app.sim.stats().requests, 30);
}

#[tokio::test]
async fn clock_skew_of_ten_minutes_is_corrected_without_attempts() {
    let app = TestApp::builder()
        .faults(Faults {
            clock_skew_secs: 600,
            ..faults()
        })
        .extra_config(FAST_POLICY)
        .start()
        .await;
    let mut d = app.daemon().await;
    d.enqueue(&hosts("Common Community", 10, 1)).await;
    let report = d.once().await;
    assert_eq!(report.exit_code(), 0);
    let delivered = d.queue.jobs_in_state(JobState::Delivered).await.unwrap();
    assert_eq!(delivered.len(), 10);
    assert!(delivered.iter().all(|j| j.attempts == 0));
    let offset = d.delivery.api.borrow().client.clock().offset();
    assert!((595..=605).contains(&offset), "{offset}");
    let stats = app.sim.stats();
    assert!(
        stats.by_class["timestamp"] >= 1 && stats.by_class["timestamp"] <= 4,
        "{stats:?}"
    );
    assert_eq!(stats.by_class["success"], 20);
}

#[tokio::test]
async fn shutdown_finishes_in_flight_requests_and_returns_leases() {
    let app = TestApp::builder()
        .faults(Faults {
            latency_ms: 300,
            ..faults()
        })
        .extra_config(FAST_POLICY)
        .start()
        .await;
    let d = app.daemon().await;
    d.enqueue(&hosts("Common Community", 20, 0)).await;
    let delivering = d.deliver_in_background();
    // The first answers are back (300 ms each): the workers have gone on
    // to the next jobs, whose calls are in flight.
    wait_until(Duration::from_secs(5), "the first answers", async || {
        app.sim.stats().requests >= 1
    })
    .await;
    delivering.stop().await;
    let delivered = d.queue.count(Some(JobState::Delivered)).await.unwrap();
    assert_eq!(d.queue.count(Some(JobState::Leased)).await.unwrap(), 0);
    assert_eq!(
        d.queue.count(Some(JobState::Pending)).await.unwrap() + delivered,
        20
    );
    assert_eq!(
        delivered as usize,
        app.sim.indicators().len(),
        "every request that reached the server was recorded"
    );
    assert!((1..=8).contains(&delivered), "{delivered}");
}
