//! Delivery paused or held, against the simulator over real HTTP: a clock
//! that stays wrong, a wrong secret, a broken reload, an owner denied, a
//! sick server opening the circuit breaker; what `status` says meanwhile,
//! and how delivery resumes.

use std::time::Duration;

use tc_ingest::queue::{ErrorClass, JobState};
use tc_ingest::sim::Faults;

use crate::helpers::*;

#[tokio::test]
async fn a_clock_that_stays_wrong_after_correction_pauses_with_ntp_advice() {
    let f = Faults {
        clock_skew_secs: 900,
        date_header_unskewed: true,
        ..faults()
    };
    let app = TestApp::builder()
        .faults(f)
        .extra_config(FAST_POLICY)
        .start()
        .await;
    let mut d = app.daemon().await;
    d.enqueue(&hosts("Common Community", 3, 0)).await;
    let report = d.once().await;
    let paused = report.paused.clone().unwrap_or_else(|| {
        panic!(
            "not paused: {:?} {:?}",
            report.stats.by_state,
            app.sim.stats()
        )
    });
    assert!(
        paused.starts_with("timestamp") && paused.contains("NTP"),
        "{paused}"
    );
    assert_eq!(report.exit_code(), 1);
    let pending = d.queue.jobs_in_state(JobState::Pending).await.unwrap();
    assert_eq!(pending.len(), 3);
    assert!(pending.iter().all(|j| j.attempts == 0));
    assert!(app.sim.stats().by_class["timestamp"] <= 8, "paused at once");
}

#[tokio::test]
async fn signature_mismatch_pauses_everything_until_the_secret_is_fixed() {
    let app = TestApp::builder().extra_config(FAST_POLICY).start().await;
    app.write_config("wrong-secret");
    let d = app.daemon().await;
    d.enqueue(&hosts("Common Community", 5, 1)).await;
    let delivering = d.deliver_in_background();
    // The gate pauses first, then the pause is written: wait for the row.
    wait_until(
        Duration::from_secs(5),
        "delivery paused and recorded",
        async || d.delivery.gate.paused().is_some() && d.queue.pause().await.unwrap().is_some(),
    )
    .await;
    let p = d
        .queue
        .pause()
        .await
        .unwrap()
        .expect("pause recorded for status");
    assert_eq!(p.class, ErrorClass::Signature);
    assert!(p.reason.contains("secret key"), "{}", p.reason);
    let status =
        tc_ingest::status::table(&tc_ingest::status::StatusView::read(&d.queue).await.unwrap());
    assert!(
        status.contains("DELIVERY PAUSED: signature mismatch"),
        "{status}"
    );
    assert!(!status.contains("wrong-secret"));
    let signature_requests = app.sim.stats().by_class["signature"];
    assert!(
        signature_requests <= 8,
        "paused at once: {signature_requests} requests"
    );
    let rows = d.queue.jobs_in_state(JobState::Pending).await.unwrap();
    assert!(rows.iter().all(|j| j.attempts == 0), "no attempt burned");

    // Fix the secret in the config file and reload (what SIGHUP does).
    app.write_config(tc_ingest::sim::DEFAULT_SECRET);
    assert!(d.reload());
    wait_until(
        Duration::from_secs(10),
        "delivery resumed after the reload",
        async || d.queue.count(Some(JobState::Delivered)).await.unwrap() == 5,
    )
    .await;
    assert!(d.queue.pause().await.unwrap().is_none());
    delivering.stop().await;
    assert_eq!(app.sim.indicators().len(), 5);
}

#[tokio::test]
async fn a_reload_with_a_broken_config_keeps_the_old_one() {
    let app = TestApp::builder().extra_config(FAST_POLICY).start().await;
    let d = app.daemon().await;
    std::fs::write(app.config_path(), "[api]\nbogus = 1\n").unwrap();
    assert!(!d.reload());
    assert_eq!(d.cfg_tx.borrow().api.owner, "Common Community");
}

/// A simulator that denies "Common Community" access, and the sped-up
/// error policy.
async fn denied_app() -> TestApp {
    TestApp::builder()
        .faults(Faults {
            denied_owners: vec!["Common Community".into()],
            ..faults()
        })
        .extra_config(FAST_POLICY)
        .start()
        .await
}

#[tokio::test]
async fn a_denied_owner_is_held_while_others_are_delivered_then_released() {
    let app = denied_app().await;
    let mut d = app.daemon().await;
    d.enqueue(&hosts("Common Community", 5, 0)).await;
    d.enqueue(&hosts("Exemplary Organization", 5, 0)).await;
    let report = d.once().await;
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
        app.sim.stats().by_class["access_denied"] <= 4,
        "held at once, not hammered"
    );

    // Access restored: the prober releases the owner.
    app.sim.set_faults(faults());
    let delivering = d.deliver_in_background();
    wait_until(
        Duration::from_secs(10),
        "the released owner's 5 jobs delivered too",
        async || d.queue.count(Some(JobState::Delivered)).await.unwrap() == 10,
    )
    .await;
    assert!(d.queue.held_owners().await.unwrap().is_empty());
    delivering.stop().await;
}

#[tokio::test]
async fn every_owner_held_is_said_in_status() {
    let app = denied_app().await;
    let mut d = app.daemon().await;
    d.enqueue(&hosts("Common Community", 2, 0)).await;
    d.once().await;
    let s = d.queue.stats().await.unwrap();
    assert!(tc_ingest::status::all_owners_held(&s));
    let view = tc_ingest::status::StatusView::read(&d.queue).await.unwrap();
    assert!(tc_ingest::status::table(&view).contains("EVERY OWNER WITH WORK IS HELD"));
    assert_eq!(tc_ingest::status::json(&view)["all_owners_held"], true);
}

#[tokio::test]
async fn a_sick_server_opens_the_circuit_breaker() {
    let extra = FAST_POLICY
        .replace("max_attempts = 5", "max_attempts = 1000")
        .replace("backoff_base_ms = 10", "backoff_base_ms = 1");
    let app = TestApp::builder()
        .faults(Faults {
            error_rate: 1.0,
            error_status: 500,
            ..faults()
        })
        .extra_config(&extra)
        .start()
        .await;
    let d = app.daemon().await;
    d.enqueue(&hosts("Common Community", 40, 0)).await;
    let delivering = d.deliver_in_background();
    wait_until(Duration::from_secs(10), "circuit opened", async || {
        d.delivery
            .gate
            .paused()
            .is_some_and(|p| p.class == ErrorClass::CircuitOpen)
    })
    .await;
    // The pause is recorded in the queue just after it is taken.
    wait_until(Duration::from_secs(10), "the pause recorded", async || {
        d.queue.pause().await.unwrap().is_some()
    })
    .await;
    let shown = d
        .queue
        .pause()
        .await
        .unwrap()
        .expect("status shows the open circuit");
    assert_eq!(shown.class, ErrorClass::CircuitOpen);
    assert!(
        tc_ingest::status::table(&tc_ingest::status::StatusView::read(&d.queue).await.unwrap())
            .contains("DELIVERY PAUSED: circuit open")
    );
    let opened = d.delivery.gate.paused().and_then(|p| p.until);
    let during = app.sim.stats().requests;
    // The open period ends with the prober's probe (it fails: the server
    // is still sick, and the circuit's next probe is set on): until then,
    // only calls already in flight may reach the server.
    wait_until(
        Duration::from_secs(5),
        "the prober probed the open circuit",
        async || d.delivery.gate.paused().and_then(|p| p.until) != opened,
    )
    .await;
    assert!(
        app.sim.stats().requests <= during + 8,
        "no new requests while open (in-flight ones may finish)"
    );
    app.sim.set_faults(faults());
    wait_until(
        Duration::from_secs(15),
        "all 40 delivered once the server recovered",
        async || d.queue.count(Some(JobState::Delivered)).await.unwrap() == 40,
    )
    .await;
    wait_until(
        Duration::from_secs(5),
        "status says running again once the circuit closed",
        async || d.queue.pause().await.unwrap().is_none(),
    )
    .await;
    delivering.stop().await;
}
