//! Delivery against the simulator over real HTTP on loopback: each row of
//! the error policy, asserting what reached the simulator and the final
//! queue state.

use std::time::{Duration, Instant};
use tc_ingest::queue::{ErrorClass, JobState};

use tc_ingest::app::{Daemon, drive_once};
use tc_ingest::indicator::Payload;
use tc_ingest::queue::NewJob;
use tc_ingest::sim::{Faults, SimConfig, Simulator};
use tokio_util::sync::CancellationToken;

use crate::helpers::*;

const FAST: &str = "[delivery]
workers = 4
rate_per_second = 0
backoff_base_ms = 10
backoff_max_secs = 1
max_attempts = 5
probe_min_secs = 1
probe_max_secs = 2
shutdown_grace_secs = 2
";

async fn daemon(env: &Env, secret: &str) -> Daemon {
    let path = env.write_config(secret);
    Daemon::start(&path, env.config_with_secret(secret))
        .await
        .unwrap()
}

fn jobs(owner: &str, n: usize, tags: usize) -> Vec<NewJob> {
    (0..n)
        .map(|i| NewJob {
            owner: owner.into(),
            indicator: tc_ingest::normalize::value(&format!("h{i}.example.com"), None).unwrap(),
            payload: Payload {
                tags: (0..tags).map(|t| format!("tag{t}")).collect(),
                ..Payload::default()
            },
            line: None,
        })
        .collect()
}

async fn setup(faults: Faults, extra: &str) -> (Simulator, Env) {
    let sim = sim_with(SimConfig {
        faults,
        ..SimConfig::default()
    })
    .await;
    let mut env = Env::new(&sim.base_url());
    env.extra = extra.to_string();
    (sim, env)
}

/// `run --once` in-process: intake, then delivery until nothing is left to do now.
async fn once(d: &mut Daemon) -> tc_ingest::app::OnceReport {
    drive_once(d, &CancellationToken::new(), |_| {})
        .await
        .unwrap()
}

async fn enqueue(d: &Daemon, jobs: &[NewJob]) {
    d.queue
        .commit_chunk(None, jobs, &[], 0, 0, Duration::from_secs(3600))
        .await
        .unwrap();
}

/// Polls `check` until true or `secs` pass.
async fn eventually(secs: u64, mut check: impl AsyncFnMut() -> bool) -> bool {
    let end = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < end {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

#[tokio::test]
async fn created_and_already_existing_are_delivered_with_every_step_once() {
    let (sim, env) = setup(
        Faults {
            file_exists_400: true,
            ..faults()
        },
        FAST,
    )
    .await;
    let mut d = daemon(&env, tc_ingest::sim::DEFAULT_SECRET).await;
    let mut all = jobs("Common Community", 20, 2);
    for owner in ["Common Community", "Exemplary Organization"] {
        all.push(NewJob {
            owner: owner.into(),
            indicator: tc_ingest::normalize::value("d41d8cd98f00b204e9800998ecf8427e", None)
                .unwrap(),
            payload: Payload::default(),
            line: None,
        });
    }
    enqueue(&d, &all).await;
    // The same file created again in the same owner answers 400 "already exists".
    crate::helpers::sql(&d.queue, "INSERT INTO jobs (owner, type, value) VALUES ('Common Community', 'File', 'd41d8cd98f00b204e9800998ecf8427e')").await;
    let report = once(&mut d).await;
    assert_eq!(report.exit_code(), 0, "{:?}", report.stats);
    assert_eq!(d.queue.count(Some(JobState::Delivered)).await.unwrap(), 23);
    let stats = sim.stats();
    assert_eq!(stats.by_class.get("duplicate"), Some(&1));
    assert_eq!(stats.by_class["success"], 20 * 3 + 2);
    for ind in sim.indicators().iter().filter(|i| i.kind == "Host") {
        assert_eq!((ind.create_count, ind.tags.len()), (1, 2), "{ind:?}");
    }
}

#[tokio::test]
async fn validation_errors_bury_the_job_with_the_apis_message() {
    let (sim, env) = setup(faults(), FAST).await;
    let mut d = daemon(&env, tc_ingest::sim::DEFAULT_SECRET).await;
    enqueue(&d, &jobs("Common Community", 3, 0)).await;
    // Values the normalizer would never produce, inserted by hand.
    crate::helpers::sql(
        &d.queue,
        "INSERT INTO jobs (owner, type, value) VALUES ('Common Community', 'ASN', 'AS 12')",
    )
    .await;
    crate::helpers::sql(
        &d.queue,
        "INSERT INTO jobs (owner, type, value) VALUES ('Common Community', 'Nonsense', 'x')",
    )
    .await;
    let report = once(&mut d).await;
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
        sim.stats().by_class["validation"],
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
    let (sim, env) = setup(
        Faults {
            fail_next: 3,
            error_status: 500,
            ..faults()
        },
        FAST,
    )
    .await;
    let mut d = daemon(&env, tc_ingest::sim::DEFAULT_SECRET).await;
    enqueue(&d, &jobs("Common Community", 1, 0)).await;
    let report = once(&mut d).await;
    assert_eq!(report.exit_code(), 0);
    let done = d.queue.jobs_in_state(JobState::Delivered).await.unwrap();
    assert_eq!(done[0].attempts, 3, "three failures counted");
    assert_eq!(sim.stats().by_class["injected_error"], 3);

    sim.set_faults(Faults {
        error_rate: 1.0,
        error_status: 503,
        ..faults()
    });
    enqueue(&d, &jobs("Exemplary Organization", 2, 0)).await;
    let mut d2 = d;
    let report = once(&mut d2).await;
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
    let extra = FAST.replace("max_attempts = 5", "max_attempts = 50");
    let (sim, env) = setup(
        Faults {
            error_rate: 0.3,
            error_status: 503,
            ..faults()
        },
        &extra,
    )
    .await;
    let mut d = daemon(&env, tc_ingest::sim::DEFAULT_SECRET).await;
    enqueue(&d, &jobs("Common Community", 150, 1)).await;
    let report = once(&mut d).await;
    assert_eq!(report.exit_code(), 0, "{:?}", report.stats);
    assert_eq!(d.queue.count(Some(JobState::Delivered)).await.unwrap(), 150);
    let stats = sim.stats();
    assert_eq!(
        stats.by_class["success"], 300,
        "each create and each tag succeeded exactly once"
    );
    assert!(stats.by_class["injected_error"] > 50, "{stats:?}");
    let held = sim.indicators();
    assert_eq!(held.len(), 150);
    assert!(
        held.iter()
            .all(|i| i.create_count == 1 && i.tags.len() == 1)
    );
}

#[tokio::test]
async fn rate_limited_answers_are_waited_out_and_slow_the_rate() {
    let (sim, env) = setup(
        Faults {
            rate_limit_next: 1,
            retry_after_secs: 1,
            ..faults()
        },
        &FAST.replace("rate_per_second = 0", "rate_per_second = 100"),
    )
    .await;
    let mut d = daemon(&env, tc_ingest::sim::DEFAULT_SECRET).await;
    enqueue(&d, &jobs("Common Community", 1, 0)).await;
    let start = Instant::now();
    let report = once(&mut d).await;
    assert_eq!(report.exit_code(), 0);
    assert!(
        start.elapsed() >= Duration::from_millis(900),
        "Retry-After was honoured"
    );
    let done = d.queue.jobs_in_state(JobState::Delivered).await.unwrap();
    assert_eq!(done[0].attempts, 0, "a 429 is not the job's fault");
    assert!(d.delivery.throttle.fraction() < 1.0);
    assert_eq!(sim.stats().by_class["rate_limited"], 1);
}

#[tokio::test]
async fn the_rate_limit_is_never_exceeded() {
    let extra = FAST
        .replace("rate_per_second = 0", "rate_per_second = 20")
        .replace("workers = 4", "workers = 8");
    let (sim, env) = setup(faults(), &format!("{extra}burst = 1\n")).await;
    let mut d = daemon(&env, tc_ingest::sim::DEFAULT_SECRET).await;
    enqueue(&d, &jobs("Common Community", 30, 0)).await;
    let start = Instant::now();
    once(&mut d).await;
    // 30 requests at 20/s with a burst of 1 take at least 29/20 s.
    assert!(
        start.elapsed() >= Duration::from_millis(1400),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(sim.stats().requests, 30);
}

#[tokio::test]
async fn clock_skew_of_ten_minutes_is_corrected_without_attempts() {
    let (sim, env) = setup(
        Faults {
            clock_skew_secs: 600,
            ..faults()
        },
        FAST,
    )
    .await;
    let mut d = daemon(&env, tc_ingest::sim::DEFAULT_SECRET).await;
    enqueue(&d, &jobs("Common Community", 10, 1)).await;
    let report = once(&mut d).await;
    assert_eq!(report.exit_code(), 0);
    let delivered = d.queue.jobs_in_state(JobState::Delivered).await.unwrap();
    assert_eq!(delivered.len(), 10);
    assert!(delivered.iter().all(|j| j.attempts == 0));
    let offset = d.delivery.api.borrow().client.clock().offset();
    assert!((595..=605).contains(&offset), "{offset}");
    let stats = sim.stats();
    assert!(
        stats.by_class["timestamp"] >= 1 && stats.by_class["timestamp"] <= 4,
        "{stats:?}"
    );
    assert_eq!(stats.by_class["success"], 20);
}

#[tokio::test]
async fn a_clock_that_stays_wrong_after_correction_pauses_with_ntp_advice() {
    let f = Faults {
        clock_skew_secs: 900,
        date_header_unskewed: true,
        ..faults()
    };
    let (sim, env) = setup(f, FAST).await;
    let mut d = daemon(&env, tc_ingest::sim::DEFAULT_SECRET).await;
    enqueue(&d, &jobs("Common Community", 3, 0)).await;
    let report = once(&mut d).await;
    let paused = report
        .paused
        .clone()
        .unwrap_or_else(|| panic!("not paused: {:?} {:?}", report.stats.by_state, sim.stats()));
    assert!(
        paused.starts_with("timestamp") && paused.contains("NTP"),
        "{paused}"
    );
    assert_eq!(report.exit_code(), 1);
    let pending = d.queue.jobs_in_state(JobState::Pending).await.unwrap();
    assert_eq!(pending.len(), 3);
    assert!(pending.iter().all(|j| j.attempts == 0));
    assert!(sim.stats().by_class["timestamp"] <= 8, "paused at once");
}

#[tokio::test]
async fn signature_mismatch_pauses_everything_until_the_secret_is_fixed() {
    let (sim, env) = setup(faults(), FAST).await;
    let d = daemon(&env, "wrong-secret").await;
    enqueue(&d, &jobs("Common Community", 5, 1)).await;
    let cancel = CancellationToken::new();
    let task = tokio::spawn(d.delivery.clone().run(cancel.clone()));
    assert!(
        eventually(5, async || d.delivery.gate.paused().is_some()).await,
        "delivery paused"
    );
    let p = d
        .queue
        .pause()
        .await
        .unwrap()
        .expect("pause recorded for status");
    assert_eq!(p.class, ErrorClass::Signature);
    assert!(p.reason.contains("secret key"), "{}", p.reason);
    let status = tc_ingest::status::table(&d.queue.stats().await.unwrap(), "q");
    assert!(
        status.contains("DELIVERY PAUSED: signature mismatch"),
        "{status}"
    );
    assert!(!status.contains("wrong-secret"));
    let signature_requests = sim.stats().by_class["signature"];
    assert!(
        signature_requests <= 8,
        "paused at once: {signature_requests} requests"
    );
    let rows = d.queue.jobs_in_state(JobState::Pending).await.unwrap();
    assert!(rows.iter().all(|j| j.attempts == 0), "no attempt burned");

    // Fix the secret in the config file and reload (what SIGHUP does).
    env.write_config(tc_ingest::sim::DEFAULT_SECRET);
    assert!(d.reload());
    assert!(
        eventually(10, async || d
            .queue
            .count(Some(JobState::Delivered))
            .await
            .unwrap()
            == 5)
        .await,
        "delivery resumed after the reload"
    );
    assert!(d.queue.pause().await.unwrap().is_none());
    cancel.cancel();
    task.await.unwrap().unwrap();
    assert_eq!(sim.indicators().len(), 5);
}

#[tokio::test]
async fn a_reload_with_a_broken_config_keeps_the_old_one() {
    let (_sim, env) = setup(faults(), FAST).await;
    let d = daemon(&env, tc_ingest::sim::DEFAULT_SECRET).await;
    std::fs::write(env.path().join("tc-ingest.toml"), "[api]\nbogus = 1\n").unwrap();
    assert!(!d.reload());
    assert_eq!(d.cfg_tx.borrow().api.owner, "Common Community");
}

#[tokio::test]
async fn a_denied_owner_is_held_while_others_are_delivered_then_released() {
    let (sim, env) = setup(
        Faults {
            denied_owners: vec!["Common Community".into()],
            ..faults()
        },
        FAST,
    )
    .await;
    let mut d = daemon(&env, tc_ingest::sim::DEFAULT_SECRET).await;
    enqueue(&d, &jobs("Common Community", 5, 0)).await;
    enqueue(&d, &jobs("Exemplary Organization", 5, 0)).await;
    let report = once(&mut d).await;
    assert_eq!(report.exit_code(), 1);
    assert_eq!(d.queue.count(Some(JobState::Delivered)).await.unwrap(), 5);
    let held = d.queue.jobs_in_state(JobState::Held).await.unwrap();
    assert_eq!(held.len(), 5);
    assert!(
        held.iter()
            .all(|j| j.owner == "Common Community" && j.attempts == 0)
    );
    let stats = d.queue.stats().await.unwrap();
    assert_eq!(stats.held_owners[0].owner, "Common Community");
    assert!(
        sim.stats().by_class["access_denied"] <= 4,
        "held at once, not hammered"
    );

    // Access restored: the prober releases the owner.
    sim.set_faults(faults());
    let cancel = CancellationToken::new();
    let task = tokio::spawn(d.delivery.clone().run(cancel.clone()));
    assert!(
        eventually(10, async || d
            .queue
            .count(Some(JobState::Delivered))
            .await
            .unwrap()
            == 10)
        .await
    );
    assert!(d.queue.held_owners().await.unwrap().is_empty());
    cancel.cancel();
    task.await.unwrap().unwrap();
}

#[tokio::test]
async fn every_owner_held_is_said_in_status() {
    let (_sim, env) = setup(
        Faults {
            denied_owners: vec!["Common Community".into()],
            ..faults()
        },
        FAST,
    )
    .await;
    let mut d = daemon(&env, tc_ingest::sim::DEFAULT_SECRET).await;
    enqueue(&d, &jobs("Common Community", 2, 0)).await;
    once(&mut d).await;
    let s = d.queue.stats().await.unwrap();
    assert!(tc_ingest::status::all_owners_held(&s));
    assert!(tc_ingest::status::table(&s, "q").contains("EVERY OWNER WITH WORK IS HELD"));
    assert_eq!(tc_ingest::status::json(&s, "q")["all_owners_held"], true);
}

#[tokio::test]
async fn a_sick_server_opens_the_circuit_breaker() {
    let extra = FAST
        .replace("max_attempts = 5", "max_attempts = 1000")
        .replace("backoff_base_ms = 10", "backoff_base_ms = 1");
    let (sim, env) = setup(
        Faults {
            error_rate: 1.0,
            error_status: 500,
            ..faults()
        },
        &extra,
    )
    .await;
    let d = daemon(&env, tc_ingest::sim::DEFAULT_SECRET).await;
    enqueue(&d, &jobs("Common Community", 40, 0)).await;
    let cancel = CancellationToken::new();
    let task = tokio::spawn(d.delivery.clone().run(cancel.clone()));
    assert!(
        eventually(10, async || d
            .delivery
            .gate
            .paused()
            .is_some_and(|p| p.class == ErrorClass::CircuitOpen))
        .await,
        "circuit opened"
    );
    let shown = d
        .queue
        .pause()
        .await
        .unwrap()
        .expect("status shows the open circuit");
    assert_eq!(shown.class, ErrorClass::CircuitOpen);
    assert!(
        tc_ingest::status::table(&d.queue.stats().await.unwrap(), "q")
            .contains("DELIVERY PAUSED: circuit open")
    );
    let during = sim.stats().requests;
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert!(
        sim.stats().requests <= during + 8,
        "no new requests while open (in-flight ones may finish)"
    );
    sim.set_faults(faults());
    assert!(
        eventually(15, async || d
            .queue
            .count(Some(JobState::Delivered))
            .await
            .unwrap()
            == 40)
        .await
    );
    assert!(
        eventually(5, async || d.queue.pause().await.unwrap().is_none()).await,
        "status says running again once the circuit closed"
    );
    cancel.cancel();
    task.await.unwrap().unwrap();
}

#[tokio::test]
async fn shutdown_finishes_in_flight_requests_and_returns_leases() {
    let (sim, env) = setup(
        Faults {
            latency_ms: 300,
            ..faults()
        },
        FAST,
    )
    .await;
    let d = daemon(&env, tc_ingest::sim::DEFAULT_SECRET).await;
    enqueue(&d, &jobs("Common Community", 20, 0)).await;
    let cancel = CancellationToken::new();
    let task = tokio::spawn(d.delivery.clone().run(cancel.clone()));
    tokio::time::sleep(Duration::from_millis(150)).await;
    cancel.cancel();
    task.await.unwrap().unwrap();
    let delivered = d.queue.count(Some(JobState::Delivered)).await.unwrap();
    assert_eq!(d.queue.count(Some(JobState::Leased)).await.unwrap(), 0);
    assert_eq!(
        d.queue.count(Some(JobState::Pending)).await.unwrap() + delivered,
        20
    );
    assert_eq!(
        delivered as usize,
        sim.indicators().len(),
        "every request that reached the server was recorded"
    );
    assert!((1..=8).contains(&delivered), "{delivered}");
}

#[tokio::test]
async fn metrics_endpoint_reports_requests_jobs_and_files() {
    let (_sim, env) = setup(faults(), FAST).await;
    let mut d = daemon(&env, tc_ingest::sim::DEFAULT_SECRET).await;
    env.drop_file("m.txt", b"1.1.1.1\n2.2.2.2\nnope\n");
    once(&mut d).await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let cancel = CancellationToken::new();
    let server = tokio::spawn(tc_ingest::metrics::serve(
        addr,
        d.metrics.clone(),
        cancel.clone(),
    ));
    d.metrics.set_jobs(&d.queue.stats().await.unwrap().by_state);
    let mut text = String::new();
    for _ in 0..50 {
        if let Ok(r) = reqwest::get(format!("http://{addr}/metrics")).await {
            text = r.text().await.unwrap();
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for line in [
        "tc_ingest_requests_total{class=\"success\"} 2",
        "tc_ingest_jobs{state=\"delivered\"} 2",
        "tc_ingest_files_total{outcome=\"done\"} 1",
        "tc_ingest_request_duration_seconds_count 2",
        "tc_ingest_paused 0",
    ] {
        assert!(text.contains(line), "{line} missing from:\n{text}");
    }
    cancel.cancel();
    server.await.unwrap().unwrap();
}
