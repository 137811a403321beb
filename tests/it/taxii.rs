//! TAXII 2.1 pull sources against OASIS's reference server, medallion:
//! pages, the cursor across ties, SIGKILL during a poll, objects added
//! while the daemon runs, a wrong password, the server down then back, and
//! `sources discover`.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::helpers::*;

/// The values the simulator holds.
fn delivered(app: &TestApp) -> BTreeSet<String> {
    app.sim.indicators().into_iter().map(|i| i.value).collect()
}

fn expected(n: usize) -> BTreeSet<String> {
    domains(n).into_iter().collect()
}

#[tokio::test]
async fn a_collection_is_read_page_by_page_and_every_object_delivered_once() {
    // 250 objects, 7 to a date_added: ties straddle both page ends.
    let m = Medallion::start(250, 7).await;
    let app = TestApp::builder()
        .extra_config(&format!(
            "{UNTHROTTLED}{}",
            taxii_source("partner", &m, "page_size = 100\n")
        ))
        .start()
        .await;
    let mut d = app.daemon().await;
    let report = d.once().await;
    assert_eq!(report.exit_code(), 0, "{:?}", report.stats);
    assert_eq!(delivered(&app), expected(250));
    assert!(app.sim.indicators().iter().all(|i| i.create_count == 1));
    let states = d.queue.source_states().await.unwrap();
    let s = &states[0];
    assert_eq!((s.files_fetched, s.objects_fetched), (3, 250), "{s:?}");
    // 36 groups a second apart from 2024-01-01: the poll ended, so the
    // cursor is the last date_added itself.
    assert_eq!(s.cursor.as_deref(), Some("2024-01-01T00:00:35.000000Z"));
    assert!(s.last_success_at.is_some() && s.consecutive_failures == 0);
    // Each page went through intake as a STIX bundle file.
    let done = names(&app.path().join("done"));
    assert_eq!(
        done.iter().filter(|n| n.contains("page-")).count(),
        3,
        "{done:?}"
    );
    // Polling again finds nothing new and writes nothing.
    let again = d.once().await;
    assert_eq!(again.exit_code(), 0);
    let s = &d.queue.source_states().await.unwrap()[0];
    assert_eq!(s.files_fetched, 3, "{s:?}");
    assert_eq!(s.cursor.as_deref(), Some("2024-01-01T00:00:35.000000Z"));
}

#[tokio::test]
async fn objects_added_while_the_daemon_runs_come_with_the_next_poll() {
    let m = Medallion::start(20, 1).await;
    let app = TestApp::builder()
        .extra_config(&format!(
            "{UNTHROTTLED}{}",
            taxii_source("live", &m, "interval = \"1s\"\n")
        ))
        .start()
        .await;
    let daemon = app.spawn_daemon();
    wait_until(
        Duration::from_secs(30),
        "the first 20 delivered",
        async || delivered(&app).len() == 20,
    )
    .await;
    let added: Vec<String> = (1..=5).map(|i| format!("late-{i}.example.org")).collect();
    m.add(&added).await;
    let mut want = expected(20);
    want.extend(added);
    wait_until(
        Duration::from_secs(30),
        "the added objects delivered",
        async || delivered(&app) == want,
    )
    .await;
    let (code, log) = daemon.stop().await;
    assert_eq!(code, Some(0), "{log}");
    let out = app.binary(&["sources"]).await;
    let text = output_text(&out);
    assert!(text.contains("live") && text.contains("ok"), "{text}");
}

#[tokio::test]
async fn sigkill_during_polls_skips_nothing_and_queues_every_object_once() {
    let m = Medallion::start(300, 9).await;
    let app = TestApp::builder()
        .extra_config(&format!(
            "{UNTHROTTLED}{}",
            taxii_source("killed", &m, "page_size = 20\ninterval = \"1s\"\n")
        ))
        .start()
        .await;
    // Killed at moments spread over the polls (the first page alone takes
    // a second or more: medallion's memory backend filters slowly).
    for delay_ms in [700, 1500, 2300, 3100] {
        let daemon = app.spawn_daemon();
        hold_for(
            Duration::from_millis(delay_ms),
            "a kill at an arbitrary moment of the polls",
        )
        .await;
        daemon.kill().await;
    }
    // Running (its signal handlers in place) before it may be stopped: the
    // killed ones may have delivered everything already.
    let daemon = app.spawn_daemon_running().await;
    wait_until(
        Duration::from_secs(60),
        "every object delivered",
        async || delivered(&app).len() >= 300,
    )
    .await;
    let (code, log) = daemon.stop().await;
    assert_eq!(code, Some(0), "{log}");
    assert_eq!(delivered(&app), expected(300));
    // Pages fetched again after a kill were absorbed by the queue's dedup:
    // one job per object.
    let q = app.queue().await;
    assert_eq!(
        number(
            &q,
            "SELECT COUNT(*) FROM (SELECT value FROM jobs GROUP BY value HAVING COUNT(*) > 1) AS repeated"
        )
        .await,
        0
    );
    assert_eq!(number(&q, "SELECT COUNT(*) FROM jobs").await, 300);
}

#[tokio::test]
async fn a_wrong_password_is_a_credentials_failure_shown_by_sources_and_status() {
    let m = Medallion::start(5, 1).await;
    let app = TestApp::builder()
        .extra_config(&taxii_source("locked", &m, ""))
        .start()
        .await;
    std::fs::write(m.dir.path().join("password"), "wrong\n").unwrap();
    let mut d = app.daemon().await;
    d.once().await;
    assert!(app.sim.indicators().is_empty());
    let s = &d.queue.source_states().await.unwrap()[0];
    assert_eq!(s.last_error_class.as_deref(), Some("credentials"), "{s:?}");
    assert_eq!(s.consecutive_failures, 1);
    assert!(s.last_error.as_deref().unwrap().contains("401"), "{s:?}");
    assert!(
        !s.last_error.as_deref().unwrap().contains("wrong"),
        "no secret in {s:?}"
    );
    drop(d);
    let text = output_text(&app.binary(&["sources"]).await);
    assert_contains_all(&text, &["locked", "FAILING", "[credentials]", "401"]);
    let status = app.status_json().await;
    assert_eq!(status["sources"][0]["health"], "failing", "{status}");
    assert_eq!(status["sources"][0]["last_error_class"], "credentials");
}

#[tokio::test]
async fn a_server_down_then_back_is_polled_again_and_recovers() {
    let port = free_port();
    let pw = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(pw.path(), "secret-pass").unwrap();
    let app = TestApp::builder()
        .extra_config(&format!(
            "{UNTHROTTLED}[[sources]]\nname = \"flaky\"\nkind = \"taxii\"\n\
             url = \"http://127.0.0.1:{port}/api1/\"\ncollection = \"{}\"\n\
             initial_lookback = \"all\"\ninterval = \"2s\"\nusername = \"reader\"\npassword_file = \"{}\"\n",
            crate::helpers::TAXII_COLLECTION,
            pw.path().display()
        ))
        .start()
        .await;
    let daemon = app.spawn_daemon_running().await;
    let q = app.queue().await;
    let failed = wait_until_or(Duration::from_secs(20), async || {
        number(
            &q,
            "SELECT COALESCE(MAX(consecutive_failures), 0) FROM sources",
        )
        .await
            >= 1
    })
    .await;
    assert!(failed, "no failed poll recorded: {}", daemon.stderr());
    assert_eq!(
        text(&q, "SELECT last_error_class FROM sources").await,
        "transport"
    );
    let m = Medallion::start_on(port, 10, 1).await;
    wait_until(
        Duration::from_secs(30),
        "delivered once the server is back",
        async || delivered(&app) == expected(10),
    )
    .await;
    assert_eq!(
        number(&q, "SELECT consecutive_failures FROM sources").await,
        0
    );
    let (code, log) = daemon.stop().await;
    assert_eq!(code, Some(0));
    assert_contains_all(&log, &["source failing", "source recovered"]);
    m.stop().await;
}

#[tokio::test]
async fn discover_lists_the_api_roots_and_collections() {
    let m = Medallion::start(1, 1).await;
    let pw = m.dir.path().join("pw");
    std::fs::write(&pw, "secret-pass").unwrap();
    let out = command(&[
        "sources",
        "discover",
        &format!("{}/taxii2/", m.base()),
        "--username",
        "reader",
        "--password-file",
        pw.to_str().unwrap(),
    ])
    .output()
    .await
    .unwrap();
    let text = exited(&out, 0);
    assert_contains_all(
        &text,
        &[
            &m.api_root(),
            crate::helpers::TAXII_COLLECTION,
            "Indicators",
            "can_read=true",
        ],
    );
    // Without the password: a credentials error, exit 2.
    let out = command(&["sources", "discover", &m.api_root()])
        .output()
        .await
        .unwrap();
    let text = exited(&out, 2);
    assert!(
        text.contains("401") && text.contains("credentials"),
        "{text}"
    );
}

/// A TAXII server without `next` (paging by `added_after` alone, as the
/// standard allows), one object of which no JSON value can hold (`1e400`).
async fn fake_taxii_without_next() -> u16 {
    use axum::extract::Query;
    use axum::response::IntoResponse;
    let objects: Vec<(&str, String)> = [
        ("2025-01-01T00:00:00.000000Z", "a"),
        ("2025-01-01T00:00:01.000000Z", "b"),
        ("2025-01-01T00:00:01.000000Z", "c"),
        ("2025-01-01T00:00:01.000000Z", "d"),
        ("2025-01-01T00:00:02.000000Z", "e"),
    ]
    .iter()
    .map(|(t, n)| {
        let extra = if *n == "e" { ",\"x_score\":1e400" } else { "" };
        (*t, format!(
            "{{\"type\":\"indicator\",\"spec_version\":\"2.1\",\"id\":\"indicator--0000000{n}-0000-4000-8000-000000000000\",\
             \"created\":\"2025-01-01T00:00:00Z\",\"modified\":\"2025-01-01T00:00:00Z\",\"pattern_type\":\"stix\",\
             \"valid_from\":\"2025-01-01T00:00:00Z\",\"pattern\":\"[domain-name:value = '{n}.tie-test.org']\"{extra}}}"
        ))
    })
    .collect();
    let objects = std::sync::Arc::new(objects);
    let handler = move |Query(q): Query<std::collections::HashMap<String, String>>| {
        let objects = objects.clone();
        async move {
            let limit: usize = q
                .get("limit")
                .and_then(|l| l.parse().ok())
                .unwrap_or(100)
                .min(3);
            let after = q.get("added_after").cloned().unwrap_or_default();
            let fresh: Vec<&(&str, String)> = objects
                .iter()
                .filter(|(t, _)| *t > after.as_str())
                .collect();
            let page = &fresh[..fresh.len().min(limit)];
            let body = format!(
                "{{\"more\":{},\"objects\":[{}]}}",
                fresh.len() > page.len(),
                page.iter()
                    .map(|(_, o)| o.as_str())
                    .collect::<Vec<_>>()
                    .join(",")
            );
            let mut headers = axum::http::HeaderMap::new();
            if let (Some(f), Some(l)) = (page.first(), page.last()) {
                headers.insert("X-TAXII-Date-Added-First", f.0.parse().unwrap());
                headers.insert("X-TAXII-Date-Added-Last", l.0.parse().unwrap());
            }
            (headers, body).into_response()
        }
    };
    let router = axum::Router::new().route(
        &format!(
            "/api1/collections/{}/objects/",
            crate::helpers::TAXII_COLLECTION
        ),
        axum::routing::get(handler),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, router).await });
    port
}

#[tokio::test]
async fn a_server_without_next_is_paged_by_time_without_skipping_a_tie_or_dying_on_odd_json() {
    let port = fake_taxii_without_next().await;
    let app = TestApp::builder()
        .extra_config(&format!(
            "{UNTHROTTLED}[[sources]]\nname = \"plain\"\nkind = \"taxii\"\n\
             url = \"http://127.0.0.1:{port}/api1/\"\ncollection = \"{}\"\ninitial_lookback = \"all\"\n",
            crate::helpers::TAXII_COLLECTION
        ))
        .start()
        .await;
    let mut d = app.daemon().await;
    let report = d.once().await;
    let s = &d.queue.source_states().await.unwrap()[0];
    assert_eq!(s.consecutive_failures, 0, "{s:?}");
    // Pages a-b-c, b-c-d (the tie at 00:01 read again), e.
    assert_eq!((s.files_fetched, s.objects_fetched), (3, 7), "{s:?}");
    assert_eq!(s.cursor.as_deref(), Some("2025-01-01T00:00:02.000000Z"));
    let got: std::collections::BTreeSet<String> =
        app.sim.indicators().into_iter().map(|i| i.value).collect();
    for v in ["a", "b", "c", "d"] {
        assert!(got.contains(&format!("{v}.tie-test.org")), "{v}: {got:?}");
    }
    assert!(report.sources_failed.is_empty());
}
