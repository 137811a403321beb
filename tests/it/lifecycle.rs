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
fn snapshot_rule(name: &str, extra: &str) -> String {
    format!("[[feeds]]\ndir = \"{name}\"\nname = \"{name}\"\nsnapshot = true\n{extra}\n")
}

fn config(mode: &str, rules: &str) -> String {
    format!("{QUICK_DELIVERY}mode = \"{mode}\"\n{rules}")
}

/// `n` addresses from `from`: `45.0.<i / 250>.<i % 250 + 1>`.
fn addresses(from: usize, n: usize) -> Vec<String> {
    (from..from + n)
        .map(|i| format!("45.0.{}.{}", i / 250, i % 250 + 1))
        .collect()
}

fn list(values: &[String]) -> Vec<u8> {
    let mut s = String::from("# a blocklist\n");
    for v in values {
        s.push_str(v);
        s.push('\n');
    }
    s.into_bytes()
}

/// The simulator's held indicators by value: (active, deactivations, reactivations).
fn held(app: &TestApp) -> std::collections::BTreeMap<String, (bool, u64, u64)> {
    app.sim
        .indicators()
        .into_iter()
        .map(|i| (i.value, (i.active, i.deactivations, i.reactivations)))
        .collect()
}

fn inactive(app: &TestApp) -> BTreeSet<String> {
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
    assert_eq!(
        number(
            &q,
            "SELECT COUNT(*) FROM jobs WHERE action = 'deactivate' AND state = 'delivered'"
        )
        .await,
        20
    );
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

    let confirm = app.binary(&["retire", "--feed", "drop", "--confirm"]).await;
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

/// A retire job whose indicator is gone (deleted by someone else) is done;
/// one whose summary does not find it is looked up by id.
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
    assert_eq!(
        number(
            &q,
            "SELECT COUNT(*) FROM jobs WHERE action = 'deactivate' AND state = 'delivered'"
        )
        .await,
        1
    );
    assert_eq!(
        number(&q, "SELECT COUNT(*) FROM jobs WHERE state = 'dead'").await,
        0
    );
}

/// A STIX indicator revoked by a later version, and a MISP attribute that
/// comes back deleted, retire what they gave; `valid_until` retires at
/// that time, and is sent as `externalDateExpires`.
#[tokio::test]
async fn withdrawn_and_expiring_objects_retire_what_they_gave() {
    let app = TestApp::builder()
        .extra_config(&config("v3", ""))
        .start()
        .await;
    let until =
        humantime::format_rfc3339_seconds(std::time::SystemTime::now() + Duration::from_secs(4));
    let bundle = |revoked: bool, modified: &str| {
        format!(
            r#"{{"type": "bundle", "id": "bundle--1", "objects": [
            {{"type": "indicator", "spec_version": "2.1", "id": "indicator--11111111-1111-4111-8111-111111111111",
              "created": "2026-01-01T00:00:00Z", "modified": "{modified}", "revoked": {revoked},
              "pattern": "[ipv4-addr:value = '45.9.9.1']", "pattern_type": "stix", "valid_from": "2026-01-01T00:00:00Z"}},
            {{"type": "indicator", "spec_version": "2.1", "id": "indicator--22222222-2222-4222-8222-222222222222",
              "created": "2026-01-01T00:00:00Z", "modified": "2026-01-01T00:00:00Z",
              "pattern": "[domain-name:value = 'soon-gone.example-threat.net']", "pattern_type": "stix",
              "valid_from": "2026-01-01T00:00:00Z", "valid_until": "{until}"}}]}}"#
        )
    };
    let misp = |deleted: bool| {
        format!(
            r#"{{"Event": {{"info": "test", "uuid": "5f0a1111-0000-4000-8000-000000000001", "Attribute": [
            {{"type": "ip-dst", "value": "45.9.9.2", "to_ids": true, "deleted": {deleted},
              "uuid": "5f0a1111-0000-4000-8000-0000000000aa", "timestamp": "1700000000"}}]}}}}"#
        )
    };
    app.drop_file(
        "stix-1.json",
        bundle(false, "2026-01-01T00:00:00Z").as_bytes(),
    );
    app.drop_file("misp-1.json", misp(false).as_bytes());
    let mut d = app.daemon().await;
    assert_eq!(d.once().await.exit_code(), 0);
    let now = held(&app);
    assert_eq!(now.len(), 3, "{now:?}");
    assert!(now.values().all(|(active, _, _)| *active));
    let soon = app
        .sim
        .indicators()
        .into_iter()
        .find(|i| i.value == "soon-gone.example-threat.net")
        .unwrap();
    assert_eq!(
        soon.external_date_expires.as_deref(),
        Some(&*until.to_string())
    );

    app.drop_file(
        "stix-2.json",
        bundle(true, "2026-02-01T00:00:00Z").as_bytes(),
    );
    app.drop_file("misp-2.json", misp(true).as_bytes());
    assert_eq!(d.once().await.exit_code(), 0);
    assert_eq!(
        inactive(&app),
        BTreeSet::from(["45.9.9.1".to_string(), "45.9.9.2".to_string()])
    );
    // valid_until passes: the next sweep retires it.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(d.once().await.exit_code(), 0);
    assert!(inactive(&app).contains("soon-gone.example-threat.net"));
    let q = app.queue().await;
    assert_eq!(number(&q, "SELECT COUNT(*) FROM expiries").await, 0);
    assert_eq!(
        number(
            &q,
            "SELECT COUNT(*) FROM retired WHERE reason = 'withdrawn'"
        )
        .await,
        2
    );
}

/// `max_age`: what no file of the feed listed within it is retired, by a
/// sweep that repeats nothing.
#[tokio::test]
async fn max_age_retires_what_the_feed_stopped_listing() {
    let rule = "[[feeds]]\ndir = \"aging\"\nname = \"aging\"\nmax_age = \"3s\"\n";
    let app = TestApp::builder()
        .extra_config(&config("v3", rule))
        .start()
        .await;
    let a = addresses(0, 3);
    app.drop_file("aging/1.txt", &list(&a));
    let mut d = app.daemon().await;
    assert_eq!(d.once().await.exit_code(), 0);
    tokio::time::sleep(Duration::from_millis(2000)).await;
    // An append-only feed (no snapshot) lists a[0] again.
    app.drop_file("aging/2.txt", &list(&a[..1]));
    assert_eq!(d.once().await.exit_code(), 0);
    assert!(inactive(&app).is_empty());
    tokio::time::sleep(Duration::from_millis(2000)).await;
    assert_eq!(d.once().await.exit_code(), 0);
    let expected: BTreeSet<String> = a[1..].iter().cloned().collect();
    assert_eq!(inactive(&app), expected);
    tokio::time::sleep(Duration::from_millis(3500)).await;
    assert_eq!(d.once().await.exit_code(), 0);
    assert_eq!(inactive(&app).len(), 3, "a[0] aged out in turn");
    let q = app.queue().await;
    assert_eq!(
        number(&q, "SELECT COUNT(*) FROM jobs WHERE action = 'deactivate'").await,
        3,
        "each retired once"
    );
}

#[tokio::test]
async fn a_feed_without_a_file_within_stale_after_is_stale() {
    let rule = "[[feeds]]\ndir = \"quiet\"\nname = \"quiet\"\nstale_after = \"1s\"\n\
                [[feeds]]\ndir = \"busy\"\nname = \"busy\"\nstale_after = \"1h\"\n";
    let app = TestApp::builder()
        .extra_config(&config("v3", rule))
        .start()
        .await;
    app.drop_file("busy/1.txt", &list(&addresses(0, 1)));
    let mut d = app.daemon().await;
    assert_eq!(d.once().await.exit_code(), 0);
    drop(d);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let json: serde_json::Value =
        serde_json::from_str(&output_text(&app.binary(&["status", "--json"]).await)).unwrap();
    let health: Vec<(String, String)> = json["feeds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["name"].as_str().unwrap().to_string(),
                f["health"].as_str().unwrap_or("-").to_string(),
            )
        })
        .collect();
    assert_eq!(
        health,
        vec![
            ("busy".to_string(), "ok".to_string()),
            ("quiet".to_string(), "stale".to_string())
        ]
    );
    let table = output_text(&app.binary(&["status"]).await);
    assert!(table.contains("STALE"), "{table}");
    // The daemon says it once, at its first look.
    let daemon = app.spawn_daemon_running().await;
    wait_until(
        Duration::from_secs(20),
        "the daemon says the feed is stale",
        async || daemon.stderr().contains("feed STALE"),
    )
    .await;
    let (_, log) = daemon.stop().await;
    let lines: Vec<&str> = log.lines().filter(|l| l.contains("feed STALE")).collect();
    assert_eq!(lines.len(), 1, "{log}");
    assert!(lines[0].contains("quiet"), "{log}");
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
    while landed.last() != Some(&(1, 300)) && kills < 30 {
        let daemon = app.spawn_daemon();
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
