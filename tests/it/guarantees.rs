//! Delivery's guarantees, against the simulator counting every call: a job
//! is worked on by one worker at a time (fenced, renewed leases), a call's
//! success is durable before the next call, SIGKILL repeats at most the
//! calls in flight, attributes are never posted twice, retries belong to one
//! call, the circuit recovers within seconds, and a failed writer stops the
//! daemon.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use tc_ingest::queue::{JobState, JobUpdate, Lease, NewJob, now_ms};
use tc_ingest::sim::{Faults, SimConfig, SimStats, Simulator};

use crate::helpers::*;

/// POSTs that reached the simulator, by path (creates of one type share one).
fn posts(stats: &SimStats) -> BTreeMap<String, u64> {
    stats
        .by_endpoint
        .iter()
        .filter(|(k, _)| k.starts_with("POST /v2/indicators/"))
        .map(|(k, v)| (k.clone(), *v))
        .collect()
}

/// Calls sent more often than once: for the create path, more than `creates`.
fn repeats(posts: &BTreeMap<String, u64>, creates: u64) -> u64 {
    posts
        .iter()
        .map(|(k, n)| {
            let expected = if k == "POST /v2/indicators/hosts" {
                creates
            } else {
                1
            };
            n.saturating_sub(expected)
        })
        .sum()
}

fn attribute_posts(posts: &BTreeMap<String, u64>) -> Vec<(&String, &u64)> {
    posts
        .iter()
        .filter(|(k, _)| k.ends_with("/attributes"))
        .collect()
}

#[tokio::test]
async fn a_stale_lease_cannot_record_a_result() {
    let app = TestApp::start().await;
    let q = app.queue().await;
    enqueue(&q, &[job("O", "1.1.1.1")]).await;
    let first = claim(&q, 1, Duration::from_millis(10)).await;
    // The 10 ms lease has run out.
    clock_past(now_ms() + 10).await;
    assert_eq!(q.reclaim_expired_leases().await.unwrap(), 1);
    let second = claim(&q, 1, Duration::from_secs(60)).await;
    assert_eq!(first[0].lease.id, second[0].lease.id);
    assert_ne!(first[0].lease.token, second[0].lease.token);
    assert!(
        second[0].uncertain.call_may_have_arrived(),
        "a reclaimed call may be in flight"
    );

    let late = [(first[0].lease, JobUpdate::Delivered)];
    assert_eq!(q.apply(&late, DAY).await.unwrap(), vec![false]);
    assert_eq!(q.renew_leases(&[first[0].lease], DAY).await.unwrap(), 0);
    assert_eq!(q.count(Some(JobState::Leased)).await.unwrap(), 1);
    let stale_progress = [(first[0].lease, JobUpdate::Progress { steps_done: 1 })];
    assert_eq!(q.apply(&stale_progress, DAY).await.unwrap(), vec![false]);

    let current: [(Lease, JobUpdate); 1] = [(second[0].lease, JobUpdate::Delivered)];
    assert_eq!(q.apply(&current, DAY).await.unwrap(), vec![true]);
    assert_eq!(q.count(Some(JobState::Delivered)).await.unwrap(), 1);
    let done = q.jobs_in_state(JobState::Delivered).await.unwrap();
    assert_eq!(done[0].steps_done, 0, "the stale progress was not applied");
}

/// A server slower than the lease and a throttled rate: the lease is renewed
/// while the job is worked on, so the maintenance tick never hands it to a
/// second worker, and every call reaches the server once.
#[tokio::test]
async fn calls_slower_than_the_lease_are_sent_exactly_once() {
    let app = TestApp::builder()
        .lease_secs(1)
        .faults(Faults {
            latency_ms: 300,
            ..faults()
        })
        .extra_config("[delivery]\nworkers = 4\nrate_per_second = 4\nburst = 1\n")
        .start()
        .await;
    let mut jobs = vec![described(
        hosts("Common Community", 1, 10).remove(0),
        "ten tags",
    )];
    for (i, j) in hosts("Common Community", 6, 3)
        .into_iter()
        .skip(1)
        .enumerate()
    {
        jobs.push(described(j, &format!("three tags {i}")));
    }
    let calls: usize = jobs.iter().map(|j| j.payload.steps()).sum();
    assert_eq!(calls, 12 + 5 * 5);
    enqueue(&app.queue().await, &jobs).await;
    let daemon = app.spawn_daemon();
    let q = app.queue().await;
    wait_until(Duration::from_secs(40), "every job delivered", async || {
        q.count(Some(JobState::Delivered)).await.unwrap() == 6
    })
    .await;
    let (code, log) = daemon.stop().await;
    assert_eq!(code, Some(0), "{log}");
    assert!(!log.contains("reclaimed expired leases"), "{log}");
    let posts = posts(&app.sim.stats());
    assert_eq!(posts.values().sum::<u64>(), calls as u64, "{posts:#?}");
    assert_eq!(repeats(&posts, 6), 0, "{posts:#?}");
    for i in app.sim.indicators() {
        assert_eq!((i.create_count, i.attributes.len()), (1, 1), "{i:?}");
    }
}

/// SIGKILL during delivery, three times: the calls sent again are at most
/// those in flight at each kill (one per worker), and no attribute is
/// posted twice.
#[tokio::test]
async fn sigkill_repeats_at_most_the_calls_in_flight() {
    const WORKERS: u64 = 4;
    const JOBS: usize = 300;
    let app = TestApp::builder()
        .faults(Faults {
            latency_ms: 3,
            ..faults()
        })
        .extra_config(&format!(
            "[delivery]\nworkers = {WORKERS}\nrate_per_second = 0\n"
        ))
        .start()
        .await;
    let jobs: Vec<NewJob> = hosts("Common Community", JOBS, 1)
        .into_iter()
        .enumerate()
        .map(|(i, j)| described(j, &format!("described {i}")))
        .collect();
    enqueue(&app.queue().await, &jobs).await;
    let q = app.queue().await;
    let mut kills = 0;
    for at in [150, 400, 650] {
        let daemon = app.spawn_daemon();
        wait_until(
            Duration::from_secs(30),
            format_args!("{at} requests"),
            async || app.sim.stats().requests >= at,
        )
        .await;
        daemon.kill().await;
        kills += 1;
    }
    let daemon = app.spawn_daemon();
    wait_until(Duration::from_secs(60), "every job delivered", async || {
        q.count(Some(JobState::Delivered)).await.unwrap() == JOBS as u64
    })
    .await;
    let (code, log) = daemon.stop().await;
    assert_eq!(code, Some(0), "{log}");

    let posts = posts(&app.sim.stats());
    let again = repeats(&posts, JOBS as u64);
    assert!(
        again <= kills * WORKERS,
        "{again} calls sent again after {kills} kills of {WORKERS} workers"
    );
    let attributes = attribute_posts(&posts);
    assert_eq!(attributes.len(), JOBS);
    assert!(attributes.iter().all(|(_, n)| **n == 1), "{attributes:?}");
    for i in app.sim.indicators() {
        assert_eq!(i.attributes.len(), 1, "{i:?}");
    }
}

/// Answers lost after the server applied the call: the attribute is checked
/// before it is sent again, and is never there twice.
#[tokio::test]
async fn attributes_with_lost_answers_are_checked_not_posted_again() {
    let app = TestApp::builder()
        .faults(Faults {
            lost_response_rate: 0.25,
            ..faults()
        })
        .extra_config(
            "[delivery]\nworkers = 4\nrate_per_second = 0\nbackoff_base_ms = 5\nmax_attempts = 30\n",
        )
        .start()
        .await;
    let mut d = app.daemon().await;
    let jobs: Vec<NewJob> = hosts("Common Community", 60, 1)
        .into_iter()
        .enumerate()
        .map(|(i, j)| described(j, &format!("lost {i}")))
        .collect();
    d.enqueue(&jobs).await;
    let report = d.once().await;
    assert_eq!(report.exit_code(), 0, "{:?}", report.stats);
    let stats = app.sim.stats();
    assert!(stats.by_class["lost_response"] > 10, "{stats:?}");
    let posts = posts(&stats);
    let attributes = attribute_posts(&posts);
    assert_eq!(attributes.len(), 60);
    assert!(attributes.iter().all(|(_, n)| **n == 1), "{attributes:?}");
    let checks = stats
        .by_endpoint
        .iter()
        .filter(|(k, _)| k.starts_with("GET ") && k.ends_with("/attributes"))
        .count();
    assert!(checks > 0, "lost attribute answers were checked: {stats:?}");
    for i in app.sim.indicators() {
        assert_eq!(i.attributes.len(), 1, "{i:?}");
    }
}

/// 30% 503s on jobs of eleven calls: each call has its own retry budget,
/// so nothing is buried, no finished call is sent again, and the requests
/// stay near the minimum. (A run of failures may trip the circuit breaker:
/// its probes are GETs, not counted as writes.)
#[tokio::test]
async fn thirty_percent_503s_on_many_call_jobs_bury_nothing() {
    let app = TestApp::builder()
        .faults(Faults {
            error_rate: 0.3,
            error_status: 503,
            ..faults()
        })
        .extra_config(
            "[delivery]\nworkers = 8\nrate_per_second = 0\nbackoff_base_ms = 5\nbackoff_max_secs = 1\nmax_attempts = 12\n",
        )
        .start()
        .await;
    let mut d = app.daemon().await;
    d.enqueue(&hosts("Common Community", 400, 10)).await;
    let report = d.once().await;
    assert_eq!(report.exit_code(), 0, "{:?}", report.stats);
    assert_eq!(d.queue.count(Some(JobState::Delivered)).await.unwrap(), 400);
    let stats = app.sim.stats();
    let successes = 400 * 11;
    assert_eq!(stats.writes_succeeded, successes, "{stats:?}");
    assert!(
        stats.requests as f64 <= 1.5 * successes as f64,
        "{} requests for {successes} calls",
        stats.requests
    );
}

/// The server gone for a while: the breaker opens, probes every couple of
/// seconds, and delivery resumes within seconds of its return.
#[tokio::test]
async fn delivery_resumes_within_seconds_of_the_server_coming_back() {
    let mut app = TestApp::builder()
        .extra_config("[delivery]\nworkers = 4\nrate_per_second = 0\n")
        .start()
        .await;
    let d = app.daemon().await;
    d.enqueue(&hosts("Common Community", 200, 0)).await;
    let addr = app.sim.addr;
    let stand_in = Simulator::start_local(SimConfig::default()).await.unwrap();
    std::mem::replace(&mut app.sim, stand_in).stop().await;
    let delivery = d.deliver_in_background();
    // The outage lasts until the prober has found the server gone four
    // times (each failed probe sets the circuit's next probe on). Were an
    // open circuit probed at a doubling interval, as other pauses are
    // (2, 4, 8 s...), the next probe would now be 16 s away, far past the
    // 5 s within which delivery must resume below.
    let (mut probes, mut next_probe) = (0, None);
    wait_until(
        Duration::from_secs(30),
        "four failed probes of the open circuit",
        async || {
            let until = d.delivery.gate.paused().and_then(|p| p.until);
            if until.is_some() && next_probe.is_some() && until != next_probe {
                probes += 1;
            }
            next_probe = until.or(next_probe);
            probes >= 4
        },
    )
    .await;
    assert!(
        d.delivery.gate.paused().is_some(),
        "the circuit is open during the outage"
    );
    let back = Instant::now();
    let sim = Simulator::start_on_addr(SimConfig::default(), addr)
        .await
        .unwrap();
    wait_until(
        Duration::from_secs(15),
        "a delivery after the return",
        async || !sim.indicators().is_empty(),
    )
    .await;
    let after = back.elapsed();
    assert!(
        after < Duration::from_secs(5),
        "first success {after:?} after the return"
    );
    wait_until(
        Duration::from_secs(30),
        "everything delivered",
        async || d.queue.count(Some(JobState::Delivered)).await.unwrap() == 200,
    )
    .await;
    delivery.stop().await;
    sim.stop().await;
}

/// The result writer failing (here: the database refuses every delivered
/// update) stops the daemon with exit code 3, instead of a silent stall.
#[tokio::test]
async fn a_failing_result_writer_stops_the_daemon_with_exit_3() {
    if skip_on_postgres("a SQLite trigger that fails the writer") {
        return;
    }
    let app = TestApp::builder().extra_config(UNTHROTTLED).start().await;
    let q = app.queue().await;
    sql(
        &q,
        "CREATE TRIGGER refuse_delivered BEFORE UPDATE OF state ON jobs \
         WHEN NEW.state = 'delivered' BEGIN SELECT RAISE(ABORT, 'disk gone'); END",
    )
    .await;
    let daemon = app.spawn_daemon();
    enqueue(&q, &hosts("Common Community", 5, 0)).await;
    let started = Instant::now();
    let (code, log) = daemon.exited_within(Duration::from_secs(15)).await;
    assert_eq!(code, Some(3), "{log}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert!(log.contains("result writer failed"), "{log}");
    assert!(log.contains("disk gone"), "{log}");
}

/// An operator's `sqlite3` polling the queue beside a running daemon, across
/// its maintenance tick, loses nothing: the daemon keeps its SQLite locks
/// (closing any descriptor of the file drops a process's POSIX locks, and
/// the last-looking connection then deletes the WAL the daemon writes to).
#[tokio::test]
async fn an_operators_sqlite3_beside_the_daemon_loses_nothing() {
    if skip_on_postgres("the sqlite3 shell beside the daemon") {
        return;
    }
    let app = TestApp::builder()
        .faults(Faults {
            latency_ms: 400,
            ..faults()
        })
        .extra_config(UNTHROTTLED)
        .start()
        .await;
    // Queued by another process (`enqueue`): no connection of this test
    // stays open beside the daemon's.
    let tags: Vec<String> = (0..17).map(|t| format!("t{t}")).collect();
    let feed = format!("value,tags\nslow.example.com,{}\n", tags.join("|"));
    app.enqueue_file("one.csv", &feed).await;
    let file = app.queue_path();
    let delivered = "SELECT COUNT(*) FROM jobs WHERE state = 'delivered'";
    if sqlite3_number(&file, delivered).await.is_none() {
        eprintln!("SKIPPED: python3 (the system's SQLite) is not installed");
        return;
    }
    let daemon = app.spawn_daemon();
    // 18 calls of 0.4 s: the job is being worked on when the maintenance
    // tick (every 5 s) runs, and another process looks every 300 ms.
    let mut seen_steps = Vec::new();
    let seen_delivered = poll_every(
        Duration::from_millis(300),
        Duration::from_secs(25),
        async || {
            if sqlite3_number(&file, delivered).await == Some(1) {
                return true;
            }
            seen_steps.push(sqlite3_number(&file, "SELECT MAX(steps_done) FROM jobs").await);
            false
        },
    )
    .await;
    assert!(
        seen_delivered,
        "never seen delivered; steps seen: {seen_steps:?}"
    );
    let (code, log) = daemon.stop().await;
    assert_eq!(code, Some(0), "{log}");
    assert_eq!(
        sqlite3_number(&file, delivered).await,
        Some(1),
        "still there after the daemon stopped"
    );
    assert_eq!(app.sim.stats().by_class["success"], 18);
}
