//! Bulk modes (issue 12): v3 one-call creates, the batch API with its
//! durable steps, and `auto` choosing between them.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use tc_ingest::queue::JobState;
use tc_ingest::sim::{Faults, SimIndicator};

use crate::helpers::*;

const BATCH_POLLS: &str = "[batch]\npoll_min_ms = 20\npoll_max_ms = 200\n";

fn config(mode: &str, batch: &str) -> String {
    format!("{QUICK_DELIVERY}mode = \"{mode}\"\n{BATCH_POLLS}{batch}")
}

/// A simulator with `sim_faults`, and a config for it in `mode` with
/// fast batch polls and `batch` added to `[batch]`.
async fn bulk_app(mode: &str, batch: &str, sim_faults: Faults) -> TestApp {
    TestApp::builder()
        .faults(sim_faults)
        .extra_config(&config(mode, batch))
        .start()
        .await
}

/// A CSV of `n` hosts with two tags each and a description on every fourth.
fn tagged_feed(dir: &Path, name: &str, n: usize) {
    std::fs::create_dir_all(dir).unwrap();
    let mut s = String::from("indicator,type,tags,description\n");
    for i in 0..n {
        let desc = if i % 4 == 0 {
            format!("seen {i}")
        } else {
            String::new()
        };
        s.push_str(&format!("b{i}.example.net,host,red;blue{},{desc}\n", i % 3));
    }
    std::fs::write(dir.join(name), s).unwrap();
}

/// Every host of [`tagged_feed`] is held with its tags and description.
fn check_tagged(held: &[SimIndicator], n: usize) {
    let by_value: BTreeMap<&str, &SimIndicator> =
        held.iter().map(|i| (i.value.as_str(), i)).collect();
    for i in 0..n {
        let v = format!("b{i}.example.net");
        let ind = by_value
            .get(v.as_str())
            .unwrap_or_else(|| panic!("{v} missing"));
        assert!(
            ind.tags.contains("red") && ind.tags.contains(&format!("blue{}", i % 3)),
            "{ind:?}"
        );
        let descriptions = ind
            .attributes
            .iter()
            .filter(|a| a.kind == "Description")
            .count();
        assert_eq!(descriptions, usize::from(i % 4 == 0), "{ind:?}");
    }
}

/// A feed of `n` hosts of [`tagged_feed`] delivered by `run --once` in
/// `mode` (with `batch` settings) against a simulator with `sim_faults`:
/// the app, what the run logged, and the hosts held, each checked.
async fn deliver_tagged(
    mode: &str,
    batch: &str,
    sim_faults: Faults,
    n: usize,
) -> (TestApp, String, Vec<SimIndicator>) {
    let app = bulk_app(mode, batch, sim_faults).await;
    tagged_feed(&app.incoming(), "feed.csv", n);
    let stderr = app.run_once_exits(0).await;
    let held = app.sim.indicators();
    assert_eq!(held.len(), n);
    check_tagged(&held, n);
    (app, stderr, held)
}

#[tokio::test]
async fn every_mode_delivers_the_samples_and_a_tagged_feed() {
    for (mode, rows) in [("v2", 300), ("v3", 2000), ("batch", 20_000), ("auto", 3000)] {
        let app = bulk_app(mode, "max_indicators = 5000\n", faults()).await;
        copy_examples(&app.incoming());
        tagged_feed(&app.incoming(), "tagged.csv", rows);
        app.run_once_exits(0).await;
        let held = app.sim.indicators();
        assert_eq!(held.len(), 28 + rows, "{mode}");
        check_tagged(&held, rows);
        let stats = app.sim.stats();
        let endpoint = |e: &str| stats.by_endpoint.get(e).copied().unwrap_or(0);
        let batches = app.sim.batches();
        match mode {
            "v2" => assert!(batches.is_empty() && endpoint("POST /v3/indicators") == 0),
            "v3" => {
                assert_eq!(
                    endpoint("POST /v3/indicators"),
                    (28 + rows) as u64,
                    "{stats:?}"
                );
                assert!(batches.is_empty());
            }
            // 20,000 in jobs of at most 5,000, each uploaded once; the 28
            // samples go by batch too.
            "batch" => {
                assert!(
                    batches.len() >= 4
                        && batches
                            .iter()
                            .all(|b| b.uploads == 1 && b.summaries.len() <= 5000),
                    "{}",
                    batches.len()
                );
                assert!(stats.requests < 200, "{stats:?}");
                // Never ThreatConnect's default Replace, which would remove
                // the tags and labels the indicators already have.
                assert!(
                    batches
                        .iter()
                        .all(|b| b.tag_write_type == "Append"
                            && b.security_label_write_type == "Append"),
                    "{batches:?}"
                );
            }
            // 3,000 due for one owner: over `min_indicators`, so batch.
            _ => assert!(!batches.is_empty() && stats.requests < 200, "{stats:?}"),
        }
        // The samples are all there, attributes included.
        let attr = held
            .iter()
            .find(|i| i.value == "http://login-micros0ft.com/owa/auth.php?session=AbC")
            .unwrap();
        assert_eq!(attr.attributes.len(), 1, "{mode}: {attr:?}");
        let q = app.queue().await;
        assert_eq!(
            number(&q, "SELECT COUNT(*) FROM jobs WHERE state != 'delivered'").await,
            0,
            "{mode}"
        );
    }
}

#[tokio::test]
async fn refused_batch_items_and_only_those_are_buried_with_reason_file_and_line() {
    for legacy in [false, true] {
        let sim_faults = Faults {
            batch_refuse: vec!["b3.example.net".into(), "b17.example.net".into()],
            batch_legacy_errors: legacy,
            ..faults()
        };
        let app = bulk_app("batch", "", sim_faults).await;
        tagged_feed(&app.incoming(), "feed.csv", 40);
        app.run_once_exits(1).await;
        let q = app.queue().await;
        for cond in [
            "true",
            "class = 'validation'",
            "message LIKE '%exclusion list%'",
            "file = 'feed.csv'",
        ] {
            let dead = number(
                &q,
                &format!("SELECT COUNT(*) FROM dead_letters WHERE {cond}"),
            )
            .await;
            assert_eq!(dead, 2, "legacy {legacy}: {cond}");
        }
        // Lines: header is line 1, b3 is on line 5, b17 on line 19.
        assert_eq!(
            number(&q, "SELECT SUM(line) FROM dead_letters").await,
            5 + 19,
            "legacy {legacy}"
        );
        assert_eq!(
            number(&q, "SELECT COUNT(*) FROM jobs WHERE state = 'delivered'").await,
            38
        );
        assert_eq!(app.sim.indicators().len(), 38);
    }
}

#[tokio::test]
async fn an_upload_over_the_instance_limit_is_split_and_delivered() {
    let sim_faults = Faults {
        batch_max_bytes: 4000,
        ..faults()
    };
    let (app, stderr, held) = deliver_tagged("batch", "", sim_faults, 300).await;
    assert!(stderr.contains("splitting"), "{stderr}");
    let batches = app.sim.batches();
    // The first job never got its data; every later one got under 4,000 bytes.
    assert_eq!(batches[0].uploads, 0);
    assert!(batches[1..].iter().all(|b| b.uploads == 1), "{batches:?}");
    assert!(held.iter().all(|i| i.batch_items == 1));
}

#[tokio::test]
async fn batch_not_available_falls_back_to_per_indicator_and_says_so_once() {
    let sim_faults = Faults {
        batch_unavailable: true,
        ..faults()
    };
    let (app, stderr, _) = deliver_tagged("batch", "", sim_faults, 60).await;
    assert_eq!(
        stderr.matches("batch API not usable").count(),
        1,
        "{stderr}"
    );
    assert!(app.sim.batches().is_empty());
}

#[tokio::test]
async fn errors_that_are_counted_but_not_listed_send_the_items_per_indicator() {
    // errorCount says 2, yet /results and /errors both answer 404: which
    // items failed is unknown, so none is counted delivered or buried on a
    // guess; all go per indicator (here they pass), at once, not after
    // batch.timeout_secs.
    let sim_faults = Faults {
        batch_refuse: vec!["b3.example.net".into(), "b17.example.net".into()],
        batch_errors_unlisted: true,
        ..faults()
    };
    let (app, stderr, _) = deliver_tagged("batch", "", sim_faults, 40).await;
    assert!(stderr.contains("lists none"), "{stderr}");
    let batches = app.sim.batches();
    assert_eq!(batches.len(), 1, "{batches:?}");
    assert_eq!(batches[0].status, "Completed");
    let q = app.queue().await;
    assert_eq!(
        number(&q, "SELECT COUNT(*) FROM batch_jobs WHERE state = 'done'").await,
        1
    );
}

#[tokio::test]
async fn a_user_without_batch_rights_goes_per_indicator_and_no_owner_is_held() {
    // "Access Denied" to the batch API only (it needs rights that
    // per-indicator calls do not): the owner falls back, it is not held.
    let sim_faults = Faults {
        batch_access_denied: true,
        ..faults()
    };
    let (app, stderr, _) = deliver_tagged("batch", "", sim_faults, 40).await;
    assert!(stderr.contains("Access Denied"), "{stderr}");
    let q = app.queue().await;
    assert_eq!(
        number(&q, "SELECT COUNT(*) FROM held_owners").await,
        0,
        "no owner held"
    );
}

#[tokio::test]
async fn an_upload_whose_outcome_is_unknown_is_checked_before_it_is_sent_again() {
    // The first upload is cut before it arrives (upload again); the second
    // arrives and its answer is lost (poll it, never upload again).
    let sim_faults = Faults {
        batch_upload_drop_next: 1,
        batch_upload_lost_next: 1,
        ..faults()
    };
    let app = bulk_app("batch", "", sim_faults).await;
    tagged_feed(&app.incoming(), "feed.csv", 50);
    app.run_once_exits(0).await;
    let batches = app.sim.batches();
    assert_eq!(batches.len(), 1, "{batches:?}");
    assert_eq!(batches[0].uploads, 1);
    let held = app.sim.indicators();
    assert_eq!(held.len(), 50);
    assert!(held.iter().all(|i| i.batch_items == 1));
    let stats = app.sim.stats();
    assert_eq!(stats.by_class.get("dropped"), Some(&1), "{stats:?}");
    assert_eq!(stats.by_class.get("lost_response"), Some(&1), "{stats:?}");
}

#[tokio::test]
async fn a_lost_or_halted_batch_job_returns_its_jobs_and_nothing_is_doubled() {
    let sim_faults = Faults {
        batch_lose_next: 1,
        ..faults()
    };
    // The lost job's jobs went per indicator (their outcome was unknown).
    let (app, _, _) = deliver_tagged("batch", "", sim_faults, 30).await;
    assert!(app.sim.batches()[0].lost);

    // Every job stops with an exception at its sixth item, which it does
    // not apply: that item is not counted delivered but goes per indicator;
    // the unprocessed go in later jobs, and from their third try per
    // indicator (an item that stops every job must not stop the others for
    // ever).
    let sim_faults = Faults {
        batch_halt_after: 5,
        ..faults()
    };
    let (app, _, held) = deliver_tagged("batch", "", sim_faults, 30).await;
    assert!(
        held.iter().all(|i| i.batch_items <= 1),
        "an item processed twice"
    );
    assert!(
        held.iter().any(|i| i.batch_items == 0),
        "none went per indicator"
    );
    let batches = app.sim.batches();
    assert!(
        batches.len() >= 2 && batches[0].summaries.len() == 30,
        "{batches:?}"
    );
}

#[tokio::test]
async fn sigkill_while_batch_jobs_are_processed_uploads_nothing_twice() {
    let sim_faults = Faults {
        batch_items_per_sec: 1500,
        ..faults()
    };
    let batch = "max_indicators = 500\njobs_in_flight = 2\n";
    let app = bulk_app("batch", batch, sim_faults).await;
    tagged_feed(&app.incoming(), "feed.csv", 3000);
    let open_jobs = "SELECT COUNT(*) FROM batch_jobs WHERE state NOT IN ('done', 'failed')";
    let queue = app.queue_location();
    let mut killed_in_flight = 0;
    for round in 0..4u64 {
        let before = app.sim.stats().requests;
        let daemon = app.spawn_daemon();
        // Killed while a batch job is in flight, each round a few calls
        // further into its run than the last.
        wait_until(
            Duration::from_secs(30),
            format_args!("round {round}: a batch job in flight"),
            async || {
                daemon.stderr().contains("tc-ingest running")
                    && app.sim.stats().requests > before + 3 * round
                    && number_at(&queue, open_jobs).await > 0
            },
        )
        .await;
        daemon.kill().await;
        let open = number_at(&queue, open_jobs).await;
        killed_in_flight += i64::from(open > 0);
    }
    // At least one kill left a batch job in flight (else this test proves
    // nothing).
    assert!(killed_in_flight > 0);
    // What a SIGKILL left in flight, `status` shows.
    let out = app.binary(&["status", "--json"]).await;
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let batched = status["jobs"]["batched"].as_u64().unwrap();
    let listed: u64 = status["batches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["items"].as_u64().unwrap())
        .sum();
    assert!(listed >= batched, "{status}");
    assert_eq!(batched > 0, listed > 0, "{status}");
    app.run_once_exits(0).await;
    let held = app.sim.indicators();
    assert_eq!(held.len(), 3000);
    check_tagged(&held, 3000);
    let batches = app.sim.batches();
    assert!(
        batches.iter().all(|b| b.upload_attempts <= 1),
        "{batches:?}"
    );
    let mut times: BTreeMap<&str, u32> = BTreeMap::new();
    for b in batches.iter().filter(|b| b.uploads == 1) {
        for s in &b.summaries {
            *times.entry(s.as_str()).or_default() += 1;
        }
    }
    assert!(
        times.values().all(|n| *n == 1),
        "an indicator uploaded in two batch jobs"
    );
    assert!(held.iter().all(|i| i.batch_items <= 1));
}

#[tokio::test]
async fn v3_sends_one_request_per_indicator_with_everything_inline() {
    let app = bulk_app("v3", "", faults()).await;
    std::fs::create_dir_all(app.incoming()).unwrap();
    std::fs::write(
        app.incoming().join("seen.csv"),
        "indicator,type,tags,description,first_seen,last_seen\n\
         x1.example.org,host,a;b,first one,2026-10-04T12:34:56Z,2026-11-20\n",
    )
    .unwrap();
    app.run_once_exits(0).await;
    let held = app.sim.indicators();
    assert_eq!(held.len(), 1);
    let i = &held[0];
    assert_eq!(i.tags.len(), 2);
    assert_eq!(i.attributes.len(), 1);
    assert_eq!(i.first_seen.as_deref(), Some("2026-10-04T12:34:56Z"));
    assert_eq!(i.last_seen.as_deref(), Some("2026-11-20T00:00:00Z"));
    let stats = app.sim.stats();
    assert_eq!(
        stats.by_endpoint.get("POST /v3/indicators"),
        Some(&1),
        "{stats:?}"
    );
    assert!(
        !stats.by_endpoint.keys().any(|e| e.starts_with("POST /v2/")),
        "{stats:?}"
    );
}

#[tokio::test]
async fn v3_retries_after_lost_answers_add_no_attribute_twice() {
    // A third of the answers are lost after the server applied the request:
    // a blind retry of a v3 create would append its attributes again.
    let sim_faults = Faults {
        lost_response_rate: 0.3,
        ..faults()
    };
    // Each retry is a GET (is the indicator there?) and a create, either
    // of which may be lost: a call fails half the time, so ten attempts
    // bury a job now and then. The point here is the attributes.
    let app = TestApp::builder()
        .faults(sim_faults)
        .extra_config(&config("v3", "").replace(
            "backoff_base_ms = 10\n",
            "backoff_base_ms = 10\nmax_attempts = 40\n",
        ))
        .start()
        .await;
    tagged_feed(&app.incoming(), "feed.csv", 80);
    app.run_once_exits(0).await;
    let held = app.sim.indicators();
    assert_eq!(held.len(), 80);
    check_tagged(&held, 80);
    let stats = app.sim.stats();
    assert!(
        stats.by_class.get("lost_response").copied().unwrap_or(0) > 5,
        "{stats:?}"
    );
}

#[tokio::test]
async fn a_batch_job_given_up_after_it_was_processed_adds_no_attribute_twice() {
    // ThreatConnect processes the job but its status never says so: the
    // daemon gives it up after batch.timeout_secs and sends the jobs per
    // indicator (v2), looking for each attribute before adding it.
    let sim_faults = Faults {
        batch_status_stuck: true,
        ..faults()
    };
    let (app, stderr, _) = deliver_tagged("batch", "timeout_secs = 1\n", sim_faults, 40).await;
    assert!(stderr.contains("not completed after"), "{stderr}");
    let stats = app.sim.stats();
    assert!(
        stats.by_endpoint.keys().any(|e| e.ends_with("/attributes")),
        "{stats:?}"
    );
}

#[tokio::test]
async fn failing_batch_calls_open_the_circuit_breaker() {
    // Every request fails with a 503: the batch calls alone trip the
    // breaker, before any batch job gives up and goes per indicator.
    let app = TestApp::builder()
        .faults(Faults {
            error_rate: 1.0,
            error_status: 503,
            ..faults()
        })
        .extra_config(
            &config("batch", "max_indicators = 5\njobs_in_flight = 4\n").replace(
                "backoff_base_ms = 10\n",
                "backoff_base_ms = 10\nbackoff_max_secs = 1\nmax_attempts = 50\n",
            ),
        )
        .start()
        .await;
    let mut d = app.daemon().await;
    d.enqueue(&hosts("Common Community", 20, 1)).await;
    let report = d.once().await;
    let paused = report.paused.clone().unwrap_or_default();
    assert!(paused.starts_with("circuit_open"), "{paused:?}");
    let stats = app.sim.stats();
    assert!(
        stats.by_endpoint.contains_key("POST /v2/batch"),
        "{stats:?}"
    );
    assert!(
        !stats
            .by_endpoint
            .keys()
            .any(|e| e.starts_with("POST /v2/indicators")),
        "nothing went per indicator: {stats:?}"
    );
    for state in [JobState::Delivered, JobState::Dead] {
        assert_eq!(d.queue.count(Some(state)).await.unwrap(), 0, "{state:?}");
    }
}
