//! Several daemons on one PostgreSQL queue: a backlog delivered once, a
//! daemon killed and its jobs finished by the other after its leases, a
//! pull source polled by one daemon at a time across a kill (and a
//! stalled poller's cursor refused), the rate shared.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::helpers::*;

/// Daemons on the queue with a heartbeat and no stop.
const LIVE: &str = "SELECT COUNT(*) FROM daemons WHERE stopped_at IS NULL";

async fn wait_for_daemons(app: &TestApp, n: i64) {
    let q = app.queue_location();
    wait_until(Duration::from_secs(20), "the daemons joined", async || {
        try_number_at(&q, LIVE).await.is_ok_and(|live| live == n)
    })
    .await;
}

/// Two daemons on one PostgreSQL queue with this `[delivery]` section,
/// both counted: the app, the second's state directory, the two daemons.
async fn two_daemons(delivery: &str) -> (TestApp, Sibling, DaemonProcess, DaemonProcess) {
    let app = TestApp::builder()
        .postgres()
        .extra_config(delivery)
        .start()
        .await;
    let other = app.sibling();
    let a = app.spawn_daemon();
    let b = other.spawn_daemon();
    wait_for_daemons(&app, 2).await;
    (app, other, a, b)
}

/// `n` addresses, one per line.
fn addresses(n: u32) -> String {
    (0..n)
        .map(|i| format!("10.{}.{}.{}\n", i >> 16 & 255, i >> 8 & 255, i & 255))
        .collect()
}

async fn delivered(app: &TestApp) -> i64 {
    number_at(
        app.queue_location(),
        "SELECT COUNT(*) FROM jobs WHERE state = 'delivered'",
    )
    .await
}

#[tokio::test]
async fn two_daemons_deliver_a_backlog_of_100000_with_no_indicator_created_twice() {
    let (app, _other, a, b) =
        two_daemons("[delivery]\nworkers = 4\nrate_per_second = 0\nmode = \"v2\"\n").await;
    app.rename_in("backlog.txt", addresses(100_000).as_bytes());
    let q = app.queue_location();
    // Both daemons hold leases at some moment: both deliver.
    let mut both_worked = false;
    wait_until(
        Duration::from_secs(300),
        "the backlog delivered",
        async || {
            let working = number_at(
                &q,
                "SELECT COUNT(*) FROM daemons WHERE stopped_at IS NULL \
                 AND details NOT LIKE '{\"leases_held\":0,%'",
            )
            .await;
            both_worked |= working == 2;
            delivered(&app).await == 100_000
        },
    )
    .await;
    assert!(both_worked, "both daemons held leases during the backlog");
    let held = app.sim.indicators();
    assert_eq!(held.len(), 100_000);
    let twice: Vec<_> = held.iter().filter(|i| i.create_count != 1).collect();
    assert!(
        twice.is_empty(),
        "created more than once: {:?}",
        &twice[..twice.len().min(5)]
    );
    let (_, log_a) = a.stop().await;
    let (_, log_b) = b.stop().await;
    for log in [&log_a, &log_b] {
        assert!(!log.contains("ERROR"), "{log}");
    }
}

#[tokio::test]
async fn a_daemon_killed_mid_delivery_leaves_its_jobs_to_the_other_after_its_leases() {
    let app = TestApp::builder()
        .postgres()
        .lease_secs(3)
        .extra_config("[delivery]\nworkers = 4\nrate_per_second = 300\nburst = 10\nmode = \"v2\"\n")
        .start()
        .await;
    let other = app.sibling();
    let mut a = app.spawn_daemon();
    let b = other.spawn_daemon();
    wait_for_daemons(&app, 2).await;
    app.rename_in("backlog.txt", addresses(3000).as_bytes());
    wait_until(Duration::from_secs(60), "delivery under way", async || {
        delivered(&app).await >= 500
    })
    .await;
    let leased = number_at(
        app.queue_location(),
        "SELECT COUNT(*) FROM jobs WHERE state = 'leased'",
    )
    .await;
    a.signal(libc::SIGKILL);
    wait_until(Duration::from_secs(5), "the daemon died", async || {
        a.has_exited()
    })
    .await;
    let at_kill = delivered(&app).await;
    assert!(
        at_kill < 3000,
        "killed mid-delivery ({at_kill} delivered, {leased} leased)"
    );
    wait_until(
        Duration::from_secs(90),
        "the other daemon finished",
        async || delivered(&app).await == 3000,
    )
    .await;
    let held = app.sim.indicators();
    assert_eq!(held.len(), 3000);
    // A call in flight at the kill may go again (as on one host): at most
    // one per worker of the daemon killed.
    let again = held.iter().filter(|i| i.create_count > 1).count();
    assert!(again <= 4, "{again} indicators created twice");
    // `status` lists both, the killed one as gone once it is silent.
    wait_until(
        Duration::from_secs(30),
        "the killed daemon shown as gone",
        async || {
            let out = other.binary(&["status", "--json"]).await;
            let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            let states: Vec<&str> = v["daemons"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d["state"].as_str().unwrap())
                .collect();
            states.contains(&"gone") && states.contains(&"running")
        },
    )
    .await;
    let text = other.binary(&["status"]).await;
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("daemons:") && text.contains("GONE"), "{text}");
    b.stop().await;
}

/// One poll of the list: which daemon asked (its `X-Daemon` header),
/// when it began and ended, and whether it came with the stored ETag.
#[derive(Debug, Clone)]
struct Poll {
    daemon: String,
    start: Instant,
    end: Instant,
    conditional: bool,
}

type Polls = Arc<Mutex<Vec<Poll>>>;

async fn slow_list(State(polls): State<Polls>, headers: HeaderMap) -> Response {
    let start = Instant::now();
    // Long enough that two polls at once would overlap.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let daemon = headers
        .get("x-daemon")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("?")
        .to_string();
    let conditional = headers.get(header::IF_NONE_MATCH).is_some();
    polls.lock().unwrap().push(Poll {
        daemon,
        start,
        end: Instant::now(),
        conditional,
    });
    if conditional {
        return StatusCode::NOT_MODIFIED.into_response();
    }
    ([(header::ETAG, "\"v1\"")], "192.0.2.10\n192.0.2.11\n").into_response()
}

/// `/list.txt` served by [`slow_list`] on a loopback port: its polls and
/// the port.
async fn serve_slow_list() -> (Polls, u16) {
    let polls: Polls = Arc::default();
    let router = axum::Router::new()
        .route("/list.txt", axum::routing::get(slow_list))
        .with_state(polls.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, router).await });
    (polls, port)
}

#[tokio::test]
async fn a_pull_source_is_polled_by_one_daemon_at_a_time_across_a_kill() {
    let (polls, port) = serve_slow_list().await;
    let app = TestApp::builder()
        .postgres()
        .extra_config(&format!(
            "{UNTHROTTLED}[[sources]]\nname = \"list\"\nkind = \"http\"\n\
             url = \"http://127.0.0.1:{port}/list.txt\"\ninterval = \"1s\"\n\
             header_file = \"{}/daemon.header\"\n",
            "@ROOT@"
        ))
        .start()
        .await;
    // Each daemon's header file names it.
    app.edit_config(|t| t.replace("@ROOT@", &app.path().display().to_string()));
    std::fs::write(app.path().join("daemon.header"), "X-Daemon: a\n").unwrap();
    let other = app.sibling();
    std::fs::write(
        other.incoming().parent().unwrap().join("daemon.header"),
        "X-Daemon: b\n",
    )
    .unwrap();
    let mut a = app.spawn_daemon();
    let mut b = other.spawn_daemon();
    hold_for(
        Duration::from_secs(6),
        "both daemons run the source a while",
    )
    .await;
    let before: Vec<Poll> = polls.lock().unwrap().clone();
    if before.len() < 3 {
        let (_, log_a) = a.stop().await;
        let (_, log_b) = b.stop().await;
        panic!("polled: {before:?}\n--- a:\n{log_a}\n--- b:\n{log_b}");
    }
    // The one that polled last dies; the other goes on, from the ETag
    // the first stored.
    let last = before.last().unwrap().daemon.clone();
    let (killed, survivor) = if last == "a" {
        (&mut a, "b")
    } else {
        (&mut b, "a")
    };
    killed.signal(libc::SIGKILL);
    let since = polls.lock().unwrap().len();
    wait_until(
        Duration::from_secs(60),
        "the other daemon polls",
        async || {
            polls.lock().unwrap()[since..]
                .iter()
                .filter(|p| p.daemon == survivor)
                .count()
                >= 2
        },
    )
    .await;
    let all = polls.lock().unwrap().clone();
    for pair in all.windows(2) {
        assert!(
            pair[1].start >= pair[0].end,
            "two polls at once: {:?} and {:?}",
            pair[0],
            pair[1]
        );
    }
    // One daemon at a time, each poll after the interval: no more polls
    // than one daemon alone would make.
    let span = all.last().unwrap().end - all[0].start;
    assert!(
        all.len() as f64 <= span.as_secs_f64() / 1.0 + 2.0,
        "{} polls in {span:?}",
        all.len()
    );
    let taken_over = all[since..].iter().find(|p| p.daemon == survivor).unwrap();
    assert!(
        taken_over.conditional,
        "the survivor polled with the stored ETag"
    );
    let indicators = app.sim.indicators();
    assert_eq!(indicators.len(), 2, "{indicators:?}");
    a.stop().await;
    b.stop().await;
}

/// A daemon that stalled past a source's role while another daemon took
/// the source over writes no step of its poll: its cursor is refused (the
/// queue's `Superseded`), the other's stands.
#[tokio::test]
async fn a_poller_that_stalled_past_its_role_writes_no_cursor_over_the_new_holders() {
    use tc_ingest::queue::{SourceAdvance, Superseded, source_role};
    let app = TestApp::builder().postgres().start().await;
    let (a, b) = ("host-a:0001", "host-b:0002");
    let qa = app.queue().await.working_for(a);
    let qb = app.queue().await.working_for(b);
    let role = source_role("feed");
    let step = |cursor: &str| SourceAdvance {
        cursor: Some(cursor.into()),
        ..SourceAdvance::default()
    };
    qa.source_open("feed", "taxii", "https://x c")
        .await
        .unwrap();
    assert!(
        qa.hold_role(&role, a, Duration::from_millis(500))
            .await
            .unwrap()
    );
    qa.source_advance("feed", &step("a1")).await.unwrap();
    // A live role is not taken over; one that ran out is.
    assert!(
        !qb.hold_role(&role, b, Duration::from_secs(30))
            .await
            .unwrap()
    );
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(
        qb.hold_role(&role, b, Duration::from_secs(30))
            .await
            .unwrap()
    );
    qb.source_advance("feed", &step("b1")).await.unwrap();
    let refused = qa.source_advance("feed", &step("a2")).await.unwrap_err();
    assert!(refused.is::<Superseded>(), "{refused:#}");
    let state = qb.source_state("feed").await.unwrap();
    assert_eq!(state.cursor.as_deref(), Some("b1"));
}

/// A pause is each daemon's own on a shared queue: one that starts (or
/// resumes) clears only its own, `status` shows the pause while the paused
/// daemon lives, and not after it has stopped.
#[tokio::test]
async fn a_daemon_starting_on_a_shared_queue_does_not_clear_anothers_pause() {
    use tc_ingest::queue::{ErrorClass, Member, Pause};
    let app = TestApp::builder().postgres().start().await;
    let member = |id: &str| Member {
        id: id.into(),
        host: id.into(),
        pid: 1,
        version: "test".into(),
    };
    let (a, b) = (member("host-a:0001"), member("host-b:0002"));
    let qa = app.queue().await.working_for(&a.id);
    let qb = app.queue().await.working_for(&b.id);
    qa.heartbeat_member(&a, &serde_json::json!({}))
        .await
        .unwrap();
    let denied = Pause {
        class: ErrorClass::AccessDenied,
        reason: "the API user was denied".into(),
        since: 1,
    };
    qa.set_pause(Some(&denied)).await.unwrap();
    // b starts: it clears the pause of a previous run of its own.
    qb.heartbeat_member(&b, &serde_json::json!({}))
        .await
        .unwrap();
    qb.set_pause(None).await.unwrap();
    assert_eq!(qb.pause().await.unwrap(), Some(denied.clone()));
    let status = app.status_json().await;
    assert_eq!(
        status["paused"]["reason"], "the API user was denied",
        "{status}"
    );
    // a stops: its pause no longer stands for the queue.
    qa.leave(&a).await.unwrap();
    assert_eq!(qb.pause().await.unwrap(), None);
}

#[tokio::test]
async fn two_daemons_hold_the_shared_rate_within_ten_percent() {
    let (app, _other, a, b) =
        two_daemons("[delivery]\nworkers = 4\nrate_per_second = 100\nburst = 5\nmode = \"v2\"\n")
            .await;
    app.rename_in("backlog.txt", addresses(1500).as_bytes());
    wait_until(
        Duration::from_secs(60),
        "the backlog delivered",
        async || delivered(&app).await == 1500,
    )
    .await;
    // Every job was one request: their delivery times are the rate.
    let times = numbers_at(
        app.queue_location(),
        "SELECT delivered_at FROM jobs WHERE state = 'delivered' ORDER BY delivered_at",
    )
    .await;
    assert_eq!(times.len(), 1500);
    let window = 5000;
    let (mut most, mut j) = (0, 0);
    for i in 0..times.len() {
        while times[i] - times[j] >= window {
            j += 1;
        }
        most = most.max(i - j + 1);
    }
    // 100/s over 5 s is 500; a tenth over is 550.
    assert!(most <= 550, "{most} requests in a 5 s window");
    let took = (times[times.len() - 1] - times[0]) as f64 / 1000.0;
    assert!(took >= 1500.0 / 110.0, "1500 requests in {took} s");
    assert!(
        took <= 1500.0 / 70.0,
        "the two used the rate: 1500 requests in {took} s"
    );
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn queue_migrate_moves_a_sqlite_queue_and_status_reads_the_same() {
    // A queue of the previous release: delivered, buried and pending jobs,
    // rejects; its status read from the SQLite file, then from PostgreSQL.
    let old = TestApp::builder()
        .sqlite()
        .extra_config(UNTHROTTLED)
        .start()
        .await;
    std::fs::copy(data("queue-v0.1.db"), old.queue_path()).unwrap();
    let before = old.status_json().await;
    let file = std::fs::read(old.queue_path()).unwrap();
    let app = TestApp::builder().postgres().start().await;
    let from = format!("sqlite:{}", old.queue_path().display());
    let out = app.binary(&["queue", "migrate", "--from", &from]).await;
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    let printed = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        printed.contains("jobs") && printed.contains("rejects"),
        "{printed}"
    );
    let after = app.status_json().await;
    for key in [
        "jobs",
        "by_owner",
        "by_type",
        "dead_by_class",
        "files",
        "rows_rejected",
    ] {
        assert_eq!(before[key], after[key], "{key}");
    }
    assert_eq!(
        before["recent_files"].as_array().map(Vec::len),
        after["recent_files"].as_array().map(Vec::len)
    );
    // The SQLite file is untouched; a queue that holds anything is refused.
    assert_eq!(std::fs::read(old.queue_path()).unwrap(), file);
    let again = app.binary(&["queue", "migrate", "--from", &from]).await;
    assert_eq!(again.status.code(), Some(2), "{}", output_text(&again));
    // What was pending is delivered from PostgreSQL.
    let pending = after["jobs"]["pending"].as_i64().unwrap();
    assert!(pending > 0, "{after}");
    let daemon = app.spawn_daemon();
    wait_until(
        Duration::from_secs(30),
        "the migrated jobs delivered",
        async || app.status_json().await["jobs"]["pending"] == 0,
    )
    .await;
    daemon.stop().await;
}
