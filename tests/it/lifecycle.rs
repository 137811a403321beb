//! Indicator lifecycle against the simulator: snapshot feeds retire what a
//! later snapshot dropped (inactive, delete, tag), a truncated snapshot is
//! held until `retire --confirm`, another feed's holding keeps an
//! indicator, a retired indicator listed again comes back active, what a
//! source withdrew or let expire is retired, `max_age`, feed health, and
//! every retirement once across SIGKILLs.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::helpers::*;

/// A named snapshot feed reading `incoming/<name>/`.
pub(super) fn snapshot_rule(name: &str, extra: &str) -> String {
    format!("[[feeds]]\ndir = \"{name}\"\nname = \"{name}\"\nsnapshot = true\n{extra}\n")
}

pub(super) fn config(mode: &str, rules: &str) -> String {
    format!("{QUICK_DELIVERY}mode = \"{mode}\"\n{rules}")
}

/// `n` addresses from `from`: `45.0.<i / 250>.<i % 250 + 1>`.
pub(super) fn addresses(from: usize, n: usize) -> Vec<String> {
    (from..from + n)
        .map(|i| format!("45.0.{}.{}", i / 250, i % 250 + 1))
        .collect()
}

pub(super) fn list(values: &[String]) -> Vec<u8> {
    let mut s = String::from("# a blocklist\n");
    for v in values {
        s.push_str(v);
        s.push('\n');
    }
    s.into_bytes()
}

/// Deactivating retire jobs delivered.
pub(super) async fn retire_jobs_delivered(q: &tc_ingest::queue::Queue) -> i64 {
    number(
        q,
        "SELECT COUNT(*) FROM jobs WHERE action = 'deactivate' AND state = 'delivered'",
    )
    .await
}

/// The simulator's held indicators by value: (active, deactivations, reactivations).
pub(super) fn held(app: &TestApp) -> std::collections::BTreeMap<String, (bool, u64, u64)> {
    app.sim
        .indicators()
        .into_iter()
        .map(|i| (i.value, (i.active, i.deactivations, i.reactivations)))
        .collect()
}

pub(super) fn inactive(app: &TestApp) -> BTreeSet<String> {
    held(app)
        .into_iter()
        .filter(|(_, (active, _, _))| !active)
        .map(|(v, _)| v)
        .collect()
}

#[tokio::test]
async fn snapshot_b_retires_exactly_what_a_dropped_and_creates_what_is_new() {
    let app = TestApp::builder()
        .extra_config(&config("v3", &snapshot_rule("blocklist", "")))
        .start()
        .await;
    let a = addresses(0, 200);
    app.drop_file("blocklist/a.txt", &list(&a));
    let mut d = app.daemon().await;
    assert_eq!(d.once().await.exit_code(), 0);
    assert_eq!(app.sim.indicators().len(), 200);
    let writes_after_a = app.sim.stats().writes_succeeded;

    // B: 10% gone, 5% new.
    let gone: BTreeSet<String> = a[..20].iter().cloned().collect();
    let mut b: Vec<String> = a[20..].to_vec();
    let new = addresses(1000, 10);
    b.extend(new.iter().cloned());
    app.drop_file("blocklist/b.txt", &list(&b));
    assert_eq!(d.once().await.exit_code(), 0);

    let now = held(&app);
    assert_eq!(now.len(), 210, "the 5% new created, nothing deleted");
    assert_eq!(inactive(&app), gone, "exactly the 10% dropped are inactive");
    for v in &gone {
        assert_eq!(now[v], (false, 1, 0), "{v} deactivated once");
    }
    for v in &new {
        assert_eq!(now[v], (true, 0, 0), "{v} created active");
    }
    // Nothing else touched: 10 creates and 20 status changes, no more.
    let stats = app.sim.stats();
    assert_eq!(stats.writes_succeeded - writes_after_a, 30, "{stats:?}");
    let q = app.queue().await;
    assert_eq!(retire_jobs_delivered(&q).await, 20);
    assert_eq!(
        number(
            &q,
            "SELECT COUNT(*) FROM feed_members WHERE feed = 'blocklist'"
        )
        .await,
        190
    );
    drop(d);
    let status = output_text(&app.binary(&["status"]).await);
    assert!(status.contains("blocklist"), "{status}");
    assert!(status.contains("holds 190, retired 20"), "{status}");
    let json: serde_json::Value =
        serde_json::from_str(&output_text(&app.binary(&["status", "--json"]).await)).unwrap();
    let feed = &json["feeds"][0];
    assert_eq!(feed["name"], "blocklist");
    assert_eq!(feed["owners"][0]["files"], 2);
    assert_eq!(feed["owners"][0]["new"], 210);
    assert_eq!(feed["owners"][0]["duplicate"], 180);
    assert_eq!(feed["retired"], 20);
    let gone_one = gone.iter().next().unwrap();
    let why = exited(&app.binary(&["why", gone_one]).await, 0);
    assert!(
        why.contains("retired (deactivate)") && why.contains("by feed blocklist"),
        "{why}"
    );
    assert!(why.contains(": retire (deactivate) Address"), "{why}");
}

#[tokio::test]
async fn a_truncated_snapshot_retires_nothing_until_confirmed() {
    let app = TestApp::builder()
        .extra_config(&config("v3", &snapshot_rule("drop", "")))
        .start()
        .await;
    let a = addresses(0, 100);
    app.drop_file("drop/a.txt", &list(&a));
    let mut d = app.daemon().await;
    assert_eq!(d.once().await.exit_code(), 0);
    // B cut to 30%: a truncated download.
    app.drop_file("drop/b.txt", &list(&a[..30]));
    assert_eq!(d.once().await.exit_code(), 0);
    assert!(inactive(&app).is_empty(), "nothing retired while held");
    drop(d);

    let status = output_text(&app.binary(&["status"]).await);
    assert!(status.contains("SNAPSHOT HELD"), "{status}");
    assert!(status.contains("would retire 70"), "{status}");
    let dry = app.binary(&["retire", "--feed", "drop", "--dry-run"]).await;
    let text = exited(&dry, 0);
    assert!(
        text.contains("would retire 70 indicators (inactive)"),
        "{text}"
    );
    assert!(text.contains(&a[99]), "{text}");
    assert!(!text.contains(&format!("\t{}\n", a[0])), "{text}");
    assert!(inactive(&app).is_empty(), "a dry run changes nothing");
    let unknown = app.binary(&["retire", "--feed", "nope", "--confirm"]).await;
    assert_eq!(unknown.status.code(), Some(2));

    // A snapshot other than the one held (a newer one came): refused.
    let stale = app
        .binary(&["retire", "--feed", "drop", "--confirm", "--snapshot", "999"])
        .await;
    assert_eq!(stale.status.code(), Some(1), "{}", output_text(&stale));
    let held_file = number(&app.queue().await, "SELECT held_file FROM feeds").await;
    let confirm = app
        .binary(&[
            "retire",
            "--feed",
            "drop",
            "--confirm",
            "--snapshot",
            &held_file.to_string(),
        ])
        .await;
    let text = exited(&confirm, 0);
    assert!(text.contains("70 retire jobs queued"), "{text}");
    let mut d = app.daemon().await;
    assert_eq!(d.once().await.exit_code(), 0);
    let expected: BTreeSet<String> = a[30..].iter().cloned().collect();
    assert_eq!(inactive(&app), expected);
    drop(d);
    let again = app.binary(&["retire", "--feed", "drop", "--confirm"]).await;
    assert!(exited(&again, 0).contains("no snapshot held"));
}

#[tokio::test]
async fn a_feed_first_snapshot_and_an_empty_one_retire_nothing() {
    let app = TestApp::builder()
        .extra_config(&config("v3", &snapshot_rule("s", "")))
        .start()
        .await;
    app.drop_file("s/a.txt", &list(&addresses(0, 50)));
    let mut d = app.daemon().await;
    assert_eq!(d.once().await.exit_code(), 0);
    app.drop_file("s/b.txt", b"# nothing today\n");
    assert_eq!(d.once().await.exit_code(), 0);
    assert!(inactive(&app).is_empty());
    let q = app.queue().await;
    assert_eq!(
        number(&q, "SELECT held_retire FROM feeds WHERE name = 's'").await,
        50
    );
}

#[tokio::test]
async fn an_indicator_still_in_another_feed_of_the_owner_is_not_retired() {
    let rules = format!(
        "{}{}",
        snapshot_rule("one", "max_retire_fraction = 1.0"),
        snapshot_rule("two", "max_retire_fraction = 1.0")
    );
    let app = TestApp::builder()
        .extra_config(&config("v3", &rules))
        .start()
        .await;
    let a = addresses(0, 10);
    app.drop_file("one/a.txt", &list(&a));
    app.drop_file("two/a.txt", &list(&a[..1]));
    let mut d = app.daemon().await;
    assert_eq!(d.once().await.exit_code(), 0);
    // One drops a[0] (still in two) and a[1] (in no other feed).
    app.drop_file("one/b.txt", &list(&a[2..]));
    assert_eq!(d.once().await.exit_code(), 0);
    assert_eq!(inactive(&app), BTreeSet::from([a[1].clone()]));
    // Two drops a[0]: no feed holds it now.
    app.drop_file("two/b.txt", &list(&a[5..6]));
    assert_eq!(d.once().await.exit_code(), 0);
    assert_eq!(inactive(&app), BTreeSet::from([a[0].clone(), a[1].clone()]));
}

/// A retired indicator that a snapshot lists again is active again, in
/// each per-indicator mode (v2: the create, then a v3 PUT), and
/// whatever the deduplication window says.
#[tokio::test]
async fn a_retired_indicator_listed_again_comes_back_active() {
    for mode in ["v2", "v3", "batch"] {
        let app = TestApp::builder()
            .extra_config(&config(
                mode,
                &snapshot_rule("back", "max_retire_fraction = 1.0"),
            ))
            .start()
            .await;
        let a = addresses(0, 4);
        app.drop_file("back/1.txt", &list(&a));
        let mut d = app.daemon().await;
        assert_eq!(d.once().await.exit_code(), 0);
        app.drop_file("back/2.txt", &list(&a[1..]));
        assert_eq!(d.once().await.exit_code(), 0);
        assert_eq!(inactive(&app), BTreeSet::from([a[0].clone()]), "{mode}");
        app.drop_file("back/3.txt", &list(&a));
        assert_eq!(d.once().await.exit_code(), 0);
        let now = held(&app);
        assert_eq!(now[&a[0]], (true, 1, 1), "{mode}: active again");
        assert!(inactive(&app).is_empty(), "{mode}");
        // And retired again when dropped again.
        app.drop_file("back/4.txt", &list(&a[1..]));
        assert_eq!(d.once().await.exit_code(), 0);
        assert_eq!(held(&app)[&a[0]], (false, 2, 1), "{mode}");
    }
}

#[tokio::test]
async fn retire_by_delete_and_by_tag() {
    let rules = format!(
        "{}{}",
        snapshot_rule("del", "retire = \"delete\"\nmax_retire_fraction = 1.0"),
        snapshot_rule(
            "tagged",
            "retire = \"tag\"\nretire_tag = \"Expired Feed Entry\"\nmax_retire_fraction = 1.0"
        )
    );
    let app = TestApp::builder()
        .extra_config(&config("v2", &rules))
        .start()
        .await;
    let a = addresses(0, 3);
    let t = addresses(100, 3);
    app.drop_file("del/1.txt", &list(&a));
    app.drop_file("tagged/1.txt", &list(&t));
    let mut d = app.daemon().await;
    assert_eq!(d.once().await.exit_code(), 0);
    app.drop_file("del/2.txt", &list(&a[1..]));
    app.drop_file("tagged/2.txt", &list(&t[1..]));
    assert_eq!(d.once().await.exit_code(), 0);
    let deleted: Vec<String> = app.sim.deleted().into_iter().map(|i| i.value).collect();
    assert_eq!(deleted, vec![a[0].clone()]);
    let now = app.sim.indicators();
    let tagged = now.iter().find(|i| i.value == t[0]).unwrap();
    assert!(tagged.active, "a tag leaves the status alone");
    assert!(tagged.tags.contains("Expired Feed Entry"), "{tagged:?}");
    for i in now.iter().filter(|i| i.value != t[0]) {
        assert!(!i.tags.contains("Expired Feed Entry"), "{i:?}");
    }
    assert!(inactive(&app).is_empty());
}

/// A snapshot that drops what the previous one queued and nothing has sent
/// yet: those creates are dropped, never sent; the retire jobs find
/// nothing and are done.
#[tokio::test]
async fn creates_not_yet_sent_of_what_a_snapshot_dropped_are_never_sent() {
    let app = TestApp::builder()
        .extra_config(&config(
            "v3",
            &snapshot_rule("fast", "max_retire_fraction = 1.0"),
        ))
        .start()
        .await;
    let a = addresses(0, 10);
    let mut d = app.daemon().await;
    let cancel = tokio_util::sync::CancellationToken::new();
    app.drop_file("fast/1.txt", &list(&a));
    d.intake().scan(&cancel, false).await.unwrap();
    app.drop_file("fast/2.txt", &list(&a[..4]));
    d.intake().scan(&cancel, false).await.unwrap();
    assert!(app.sim.indicators().is_empty(), "nothing sent yet");
    assert_eq!(d.once().await.exit_code(), 0);
    let sent: BTreeSet<String> = app.sim.indicators().into_iter().map(|i| i.value).collect();
    let expected: BTreeSet<String> = a[..4].iter().cloned().collect();
    assert_eq!(sent, expected, "the dropped six were never created");
    let q = app.queue().await;
    assert_eq!(retire_jobs_delivered(&q).await, 6);
    assert_eq!(
        number(&q, "SELECT COUNT(*) FROM jobs WHERE state != 'delivered'").await,
        0
    );
}

/// A retire job whose indicator is gone (deleted by someone else) is done:
/// its summary and its id look-up find nothing.
#[tokio::test]
async fn retiring_what_is_not_there_is_done() {
    let app = TestApp::builder()
        .extra_config(&config(
            "v3",
            &snapshot_rule("gone", "max_retire_fraction = 1.0"),
        ))
        .start()
        .await;
    let a = addresses(0, 2);
    app.drop_file("gone/1.txt", &list(&a));
    let mut d = app.daemon().await;
    assert_eq!(d.once().await.exit_code(), 0);
    let q = app.queue().await;
    // Someone else deleted a[0] in ThreatConnect meanwhile.
    app.sim.delete_value(&a[0]);
    app.drop_file("gone/2.txt", &list(&a[1..]));
    assert_eq!(d.once().await.exit_code(), 0);
    assert_eq!(retire_jobs_delivered(&q).await, 1);
    assert_eq!(
        number(&q, "SELECT COUNT(*) FROM jobs WHERE state = 'dead'").await,
        0
    );
}

/// SIGKILL at random moments while a snapshot is read, reconciled and its
/// retirements delivered: afterwards each dropped indicator was retired
/// once, by one retire job, and nothing else was touched.
#[tokio::test]
async fn sigkill_during_reconciliation_and_retire_delivery_retires_each_once() {
    let mut faults = faults();
    faults.latency_ms = 20;
    let app = TestApp::builder()
        .faults(faults)
        .extra_config(&config("v3", &snapshot_rule("big", "")))
        .start()
        .await;
    let a = addresses(0, 3000);
    app.drop_file("big/a.txt", &list(&a));
    {
        let mut d = app.daemon().await;
        assert_eq!(d.once().await.exit_code(), 0);
    }
    let gone: BTreeSet<String> = a[..300].iter().cloned().collect();
    app.drop_file("big/b.txt", &list(&a[300..]));
    let seed = fastrand::u64(..);
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut kills = 0;
    // Where each kill landed: B still being read, or retire jobs delivered.
    // Kills go on until B is done and every retirement delivered.
    let mut landed = Vec::new();
    while landed.last() != Some(&(1, 300)) && kills < 40 {
        // The first kills land early (B read and reconciled, or not yet);
        // the later ones a moment after the daemon runs, however slowly
        // a loaded machine starts it, so that they land mid-delivery.
        let daemon = if kills < 3 {
            app.spawn_daemon()
        } else {
            app.spawn_daemon_running().await
        };
        tokio::time::sleep(Duration::from_millis(rng.u64(50..400))).await;
        daemon.kill().await;
        kills += 1;
        let q = app.queue().await;
        let b_done = number(
            &q,
            "SELECT COUNT(*) FROM files WHERE path LIKE '%b.txt' AND state = 'done'",
        )
        .await;
        let retired = number(
            &q,
            "SELECT COUNT(*) FROM jobs WHERE action = 'deactivate' AND state = 'delivered'",
        )
        .await;
        q.close().await;
        landed.push((b_done, retired));
    }
    eprintln!("kills (B done, retire jobs delivered) after each: {landed:?}, seed {seed}");
    let mid = landed.iter().filter(|(_, r)| (1..300).contains(r)).count();
    assert!(
        mid >= 1,
        "no kill landed mid-delivery: {landed:?}, seed {seed}"
    );
    let mut d = app.daemon().await;
    assert_eq!(d.once().await.exit_code(), 0, "seed {seed}");
    assert_eq!(inactive(&app), gone, "seed {seed}, {kills} kills");
    for (v, (active, deactivations, _)) in held(&app) {
        let dropped = gone.contains(&v);
        assert_eq!(active, !dropped, "{v} (seed {seed})");
        assert_eq!(deactivations, u64::from(dropped), "{v} (seed {seed})");
    }
    let q = app.queue().await;
    assert_eq!(
        number(&q, "SELECT COUNT(*) FROM jobs WHERE action = 'deactivate'").await,
        300,
        "one retire job each (seed {seed})"
    );
    assert_eq!(
        number(&q, "SELECT COUNT(*) FROM jobs WHERE state != 'delivered'").await,
        0
    );
}
